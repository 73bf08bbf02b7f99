#!/usr/bin/env bash
# Installs the Debian 12 (bookworm) packages discoveryd needs, in two sets:
#   deploy/deps.sh         everything: build and run, plus what the tests and benchmarks need
#                          (deploy/test.sh, CI)
#   deploy/deps.sh --run   only what building and running the service needs (deploy/run.sh):
#                          no cmocka, python3, etcd or other test tools
# Idempotent: packages already present are skipped by apt-get; safe to run before every build.
set -euo pipefail

# Build and run: the toolchain, the libraries the CMake build links (libpq for --postgres), and the two tools the
# README's tour uses (curl, uuidgen).
run_pkgs=(
  build-essential cmake pkg-config git ca-certificates
  libh2o-dev libuv1-dev libssl-dev libpq-dev
  curl uuid-runtime
)
# Tests and benchmarks (DISCOVERYD_TESTS=ON): cmocka for unit tests, python3 for the integration
# tests, real etcd 3.4 members, a real PostgreSQL 15 (the shared rate limiter's tests start their own
# cluster in a temp dir; postgresql brings initdb, postgres, pg_ctl and psql), openssl to mint test
# certificates, wrk and linux-perf (fsync counts, --profile) for tests/bench, with the GET benchmark's
# two peers: h2o (the same bytes as a static file) and etcd-discovery (the upstream discovery
# server, discovery.etcd.io), and valgrind (instructions per GET, tests/bench/get_instr.sh); gcovr
# for the coverage build; chromium and a font for tests/e2e (the web pages in a real headless
# browser, never downloaded).
test_pkgs=(
  libcmocka-dev python3 etcd-server etcd-client postgresql openssl procps iproute2 wrk linux-perf gcovr
  h2o etcd-discovery valgrind
  chromium fonts-dejavu-core
)
# tests/e2e also needs node and npm (playwright-core and axe-core from its package-lock.json). A
# machine that already has them (e.g. from another source, with npm bundled) keeps its own.
command -v node >/dev/null 2>&1 || test_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || test_pkgs+=(npm)

case "${1:-}" in
  "") pkgs=("${run_pkgs[@]}" "${test_pkgs[@]}") ;;
  --run) pkgs=("${run_pkgs[@]}") ;;
  *) echo "usage: deploy/deps.sh [--run]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"

# h2o and etcd-discovery are only the GET benchmark's peers, started by tests/bench/run.sh itself;
# their packages enable system services (h2o on :80, etcd-discovery on :8087, discoveryd's own
# default port). Stop and disable the ones this run just installed.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  for svc in h2o etcd-discovery; do
    [[ " ${missing[*]} " == *" $svc "* ]] && { $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true; }
  done
fi
