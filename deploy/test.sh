#!/usr/bin/env bash
# README command 2: install what is needed, build everything (Release, and ASan+UBSan), and run
# every test: unit (cmocka), the Raft simulation, integration against real etcd 3.4 members,
# conformance with the recorded etcd exchange, and the bad-input table — all under ASan+UBSan.
# Set DISCOVERYD_SIM_SEEDS=N for a longer Raft simulation (default 5000).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/deps.sh # every set: build, run and test
jobs=$(nproc)

# The Release build must compile cleanly too (-O2 finds warnings -O0 does not).
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDISCOVERYD_TESTS=ON >/dev/null
cmake --build build -j"$jobs"

cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DDISCOVERYD_SANITIZE=ON -DDISCOVERYD_TESTS=ON >/dev/null
cmake --build build-test -j"$jobs"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-test --output-on-failure --timeout 900 -j"$jobs" "$@"
