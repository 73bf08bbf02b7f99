#!/usr/bin/env bash
# deploy/cluster.sh — a local three-member discoveryd cluster on loopback, in one command: builds
# discoveryd (Release) if needed, starts d1, d2, d3 (client ports 8087, 8088, 8089; peer ports
# 2380, 2381, 2382; data in ./cluster-data/dN; logs in ./cluster-data/dN.log), and stops them all
# on Ctrl-C. Any member answers any request. Extra arguments go to every member.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x build/discoveryd ]]; then
  deploy/deps.sh --run
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDISCOVERYD_TESTS=OFF >/dev/null
  cmake --build build -j"$(nproc)" --target discoveryd
fi
cluster="d1=http://127.0.0.1:2380,d2=http://127.0.0.1:2381,d3=http://127.0.0.1:2382"
mkdir -p cluster-data
pids=()
stop() {
  trap - INT TERM EXIT
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  echo "cluster stopped"
  exit 0
}
trap stop INT TERM EXIT
for i in 1 2 3; do
  port=$((8086 + i))
  build/discoveryd --name "d$i" --initial-cluster "$cluster" --listen "127.0.0.1:$port" \
    --data-dir "cluster-data/d$i" --public-url "http://127.0.0.1:$port" "$@" >>"cluster-data/d$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  port=$((8086 + i))
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 "${pids[$((i - 1))]}" 2>/dev/null || { echo "d$i exited; see cluster-data/d$i.log" >&2; exit 1; }
    sleep 0.1
  done
done
echo "discoveryd cluster: http://127.0.0.1:8087 http://127.0.0.1:8088 http://127.0.0.1:8089 (Ctrl-C stops it)"
wait -n "${pids[@]}" || true
echo "a member exited; see cluster-data/*.log" >&2
exit 1
