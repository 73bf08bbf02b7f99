#!/usr/bin/env bash
# README command 1: install what is needed, build discoveryd (Release) and run it on its embedded
# default: a single-node store in ./discoveryd-data, listening on 0.0.0.0:8087 and [::]:8087.
# Extra arguments go to discoveryd (e.g. deploy/run.sh --listen 127.0.0.1:8087).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target discoveryd
exec build/discoveryd --data-dir ./discoveryd-data "$@"
