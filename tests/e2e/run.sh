#!/bin/sh
# ctest entry for a browser test: runs it, or exits 77 (skipped) saying what is missing.
# Usage: run.sh PATH/TO/latch [TEST.mjs]   (default: reset_password.test.mjs)
here=$(cd "$(dirname "$0")" && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}
skip() {
  echo "SKIPPED: $1: run make e2e-deps"
  exit 77
}
[ -x "$chromium" ] || skip "Chromium not installed"
command -v node >/dev/null 2>&1 || skip "Node.js not installed"
[ -f "$here/node_modules/playwright-core/package.json" ] ||
  skip "the browser test's npm packages are not installed (tests/e2e/node_modules)"
exec node "$here/${2:-reset_password.test.mjs}" "$1"
