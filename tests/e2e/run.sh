#!/bin/sh
# tests/e2e/run.sh — ctest's entry for the browser tests (tests/CMakeLists.txt): installs the exact
# playwright-core and axe-core of package-lock.json into tests/e2e/node_modules with `npm ci`
# (scripts off, no browser download: the browser is Debian's /usr/bin/chromium), then runs
# web.test.mjs, which starts discoveryd and etcd members itself and prints "N passed, M failed".
set -eu
cd "$(dirname "$0")"
if ! cmp -s package-lock.json node_modules/.installed-lock 2>/dev/null; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
  cp package-lock.json node_modules/.installed-lock
fi
exec node web.test.mjs
