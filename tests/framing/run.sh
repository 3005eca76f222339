#!/bin/sh
# ctest entry for the framing differential test: runs it, or exits 77 (skipped) without Node.js.
# Usage: run.sh --probe PATH/TO/framing_probe | --latch PATH/TO/latch
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null 2>&1 || { echo "SKIPPED: Node.js not installed"; exit 77; }
exec node "$here/differential.mjs" "$@"
