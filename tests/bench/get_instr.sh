#!/usr/bin/env bash
# tests/bench/get_instr.sh — instructions per token-dir GET, counted by callgrind, not timed: a figure
# that does not move when other people load the machine. discoveryd runs under
# `valgrind --tool=callgrind`; a 3-member token is seeded; the counters are zeroed; bench_load sends a
# fixed number of keep-alive GETs; the counters are dumped. Instructions / request = the dump's total
# Ir (every thread of the server: HTTP threads, store thread, the kernel not included) / requests.
# --h2o: then the same for h2o (Debian `h2o`) serving discoveryd's answer as a static file
# (application/json), under the same load: the floor an HTTP/1.1 server on this h2o pays per request.
# Usage: tests/bench/get_instr.sh [--count N] [--conns C] [--threads T] [--build DIR] [--keep DIR] [--h2o]
# Installs nothing (valgrind, h2o come with deploy/deps.sh). Not a test: nothing is asserted.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
count=20000
conns=4
threads=2
build="$root/build-bench"
keep=""
with_h2o=0
while (($#)); do
    case "$1" in
    --count) count=${2:?}; shift 2 ;;
    --conns) conns=${2:?}; shift 2 ;;
    --threads) threads=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    --keep) keep=${2:?}; shift 2 ;;
    --h2o) with_h2o=1; shift ;;
    -h | --help) sed -n 2,10p "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
[[ $count =~ ^[1-9][0-9]*$ && $count -le 1000000 ]] || { echo "--count: 1..1000000" >&2; exit 2; }
for tool in valgrind callgrind_control callgrind_annotate python3 cmake; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run deploy/deps.sh first" >&2; exit 1; }
done
if [[ ! -x $build/discoveryd || ! -x $build/tests/bench/bench_load ]]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build" --target discoveryd bench_load -j2 >/dev/null
fi

tmp=$(mktemp -d /tmp/dd-instr.XXXXXX)
pid=""
cleanup() {
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    [[ -n $pid ]] && wait "$pid" 2>/dev/null || true
    if [[ -n $keep ]]; then mkdir -p "$keep" && cp -r "$tmp"/. "$keep"/; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

helper=(python3 "$here/bench_helper.py")
path="/v2/keys/discovery/bench-instr?quorum=false&recursive=false&sorted=false"

# measure NAME PORT: warm up, zero the counters of $pid, run the counted load, dump, print the figures
measure() {
    local name=$1 port=$2
    # warm up (connections, caches, the servers' pools), then count only the measured requests
    "$build/tests/bench/bench_load" --port "$port" --conns "$conns" --count 200 --seconds 120 --get "$path" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    local out sent done ok non2xx dump ir
    out=$("$build/tests/bench/bench_load" --port "$port" --conns "$conns" --count "$count" --seconds 600 --get "$path")
    callgrind_control -d "$pid" >/dev/null 2>&1
    read -r sent done ok non2xx _ <<<"$out"
    dump=$(ls -t "$tmp"/callgrind.out."$pid".* | head -n 1) # the dump of the measured requests
    ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
    echo "== $name"
    echo "requests: sent $sent, answered $done, 2xx $ok, non-2xx $non2xx"
    echo "Ir (all threads, while the requests ran): $ir"
    awk -v ir="$ir" -v n="$done" -v name="$name" 'BEGIN {printf "instructions per GET (%s): %.0f\n", name, ir / n}'
    echo "where they went (inclusive, top 25):"
    callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | sed -n '/file:function/,$p' | sed -n 3,27p
}

stop() {
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
}

port=$("${helper[@]}" freeport)
valgrind --tool=callgrind --callgrind-out-file="$tmp/callgrind.out.%p" \
    "$build/discoveryd" --listen "127.0.0.1:$port" --data-dir "$tmp/data" --public-url "http://127.0.0.1:$port" \
    --threads "$threads" --token-write-rate 1000000 --token-write-burst 1000000 --log-level warn \
    >"$tmp/server.log" 2>&1 &
pid=$!
"${helper[@]}" wait "$port" /health 120 "$pid"
"${helper[@]}" seed-members "$port" bench-instr
measure discoveryd "$port"
((with_h2o)) || exit 0
command -v h2o >/dev/null || { echo "missing h2o: run deploy/deps.sh first" >&2; exit 1; }
mkdir -p "$tmp/h2o/v2/keys/discovery"
curl -sf "http://127.0.0.1:$port$path" -o "$tmp/h2o/v2/keys/discovery/bench-instr"
stop
port=$("${helper[@]}" freeport)
cat >"$tmp/h2o.conf" <<EOC
listen:
  host: 127.0.0.1
  port: $port
num-threads: $threads
$([[ $(id -u) -eq 0 ]] && echo "user: root # as root h2o would switch to nobody, who cannot write the profile")
file.etag: OFF
file.mime.setdefaulttype: application/json
hosts:
  default:
    paths:
      /:
        file.dir: $tmp/h2o
EOC
chmod -R a+rX "$tmp"
valgrind --tool=callgrind --callgrind-out-file="$tmp/callgrind.out.%p" h2o -c "$tmp/h2o.conf" >"$tmp/h2o.log" 2>&1 &
pid=$!
"${helper[@]}" wait "$port" "$path" 120 "$pid"
measure "h2o static file" "$port"
