#!/usr/bin/env bash
# README command 1: install what building and running needs (deploy/deps.sh --run: no test tools),
# build discoveryd alone (Release, DISCOVERYD_TESTS=OFF: no cmocka, no python3) and run it on its
# defaults: a single node listening on 0.0.0.0:8087 and [::]:8087, its durable store (write-ahead
# log) in ./discoveryd-data. Extra arguments go to discoveryd (e.g. deploy/run.sh --listen
# 127.0.0.1:8087).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/deps.sh --run
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDISCOVERYD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target discoveryd
exec build/discoveryd --data-dir ./discoveryd-data "$@"
