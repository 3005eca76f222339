#!/bin/sh
# Every C++ file of the project against .clang-format (the ctest entry `format`): prints each
# difference and fails on any. `make format` applies it. --list prints the files. Without
# clang-format the check is skipped (exit 77), saying so.
cd "$(dirname "$0")/.." || exit 1
files=$(find main.cpp auth db tests bench -name node_modules -prune -o -name out -prune -o \
  \( -name '*.cpp' -o -name '*.h' \) -print | sort)
if [ "$1" = "--list" ]; then echo "$files"; exit 0; fi
if ! command -v clang-format >/dev/null; then
  echo "format: clang-format is not installed (Debian: clang-format; make test installs it): skipped"
  exit 77
fi
# shellcheck disable=SC2086 # the list is split on purpose: no file name has a space
clang-format --dry-run --Werror $files
