#!/bin/sh
# ctest entry for the OpenAPI test: runs it, or exits 77 (skipped) saying what is missing.
# Usage: run.sh PATH/TO/latch
here=$(cd "$(dirname "$0")" && pwd)
skip() {
  echo "SKIPPED: $1: run make openapi-deps"
  exit 77
}
command -v node >/dev/null 2>&1 || skip "Node.js not installed"
command -v sqlite3 >/dev/null 2>&1 || { echo "SKIPPED: sqlite3 not installed: run make test-deps"; exit 77; }
for package in @readme/openapi-parser ajv ajv-formats openapi-fetch openapi-typescript typescript; do
  [ -f "$here/node_modules/$package/package.json" ] ||
    skip "the OpenAPI test's npm packages are not installed (tests/openapi/node_modules)"
done
exec node --test-reporter=spec "$here/openapi.test.mjs" "$1"
