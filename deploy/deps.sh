#!/usr/bin/env bash
# Installs every Debian 12 (bookworm) package discoveryd needs to build, run and test.
# Idempotent: packages already present are skipped by apt-get; safe to run before every build.
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config git ca-certificates
  libh2o-dev libuv1-dev libjansson-dev libssl-dev uuid-dev libpq-dev libcmocka-dev
  etcd-server etcd-client curl wrk python3 postgresql procps iproute2 uuid-runtime
  gcovr openssl
  chromium fonts-dejavu-core  # tests/e2e: the web pages in a real headless browser (never downloaded)
)
# tests/e2e also needs node and npm (playwright-core, axe-core from package-lock.json). A machine
# that already has them (e.g. from another source, with npm bundled) keeps its own.
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

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
