#!/usr/bin/env bash
# Checks `make install DESTDIR=... PREFIX=...` puts every file where it belongs (no root needed).
#
# Usage: test_install.sh SOURCE_DIR BUILD_DIR (ctest passes both). Runs the Makefile's install
# recipe on the already built BUILD_DIR (make -o build -o deps: ctest runs after the build, and
# reconfiguring a build directory mid-test could rebuild it), into temporary DESTDIRs.
set -euo pipefail

src=$(cd "$1" && pwd)
bin=$(cd "$2" && pwd)
fail() { echo "FAILED: $*" >&2; exit 1; }
step() { echo "== $*"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/latch-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The make running ctest passes its jobserver and variables down; this make needs neither.
unset MAKEFLAGS MFLAGS MAKELEVEL

install_to() { # DESTDIR PREFIX
  make --no-print-directory -C "$src" -o build -o deps install \
    BUILD="$bin" DESTDIR="$1" PREFIX="$2" >"$tmp/install.log" 2>&1 \
    || { cat "$tmp/install.log"; fail "make install DESTDIR=$1 PREFIX=$2 failed"; }
}
expect_file() { # PATH MODE
  [ -f "$1" ] || { (cd "$tmp" && find . | sort); fail "missing: $1"; }
  [ "$(stat -c %a "$1")" = "$2" ] || fail "$1 has mode $(stat -c %a "$1"), expected $2"
}

step "make install DESTDIR=$tmp/pkg PREFIX=/usr (the package layout)"
d=$tmp/pkg
install_to "$d" /usr
expect_file "$d/usr/bin/latch" 755
expect_file "$d/lib/systemd/system/latch.service" 644
expect_file "$d/etc/latch/latch.env" 600
expect_file "$d/usr/share/doc/latch/README.md" 644
expect_file "$d/usr/share/doc/latch/SECURITY.md" 644
grep -qx 'ExecStart=/usr/bin/latch serve --db /var/lib/latch/auth.db' \
  "$d/lib/systemd/system/latch.service" || fail "the unit's ExecStart is not /usr/bin/latch"
expected='\./usr/bin/latch|\./lib/systemd/system/latch\.service|\./etc/latch/latch\.env'
expected+='|\./usr/share/doc/latch/(README|SECURITY)\.md'
unexpected=$(find "$d" -type f -printf "./%P\n" | { grep -vxE "$expected" || true; })
[ -z "$unexpected" ] || fail "unexpected files installed: $unexpected"
version=$("$d/usr/bin/latch" version)
echo "installed: $version"

step "every variable in latch.env is one latch knows"
known=$("$d/usr/bin/latch" help)
names=$(sed -n 's/^#\{0,1\}\([A-Z][A-Z0-9_]*\)=.*/\1/p' "$d/etc/latch/latch.env")
[ -n "$names" ] || fail "latch.env names no variable"
for name in $names; do
  grep -q "\b$name\b" <<<"$known" || fail "latch.env names $name, which latch help does not list"
done
echo "$(wc -w <<<"$names") variables, all listed by latch help"

step "installing again keeps an edited /etc/latch/latch.env"
echo 'LATCH_ADDR=127.0.0.1:9999' >>"$d/etc/latch/latch.env"
install_to "$d" /usr
grep -qx 'LATCH_ADDR=127.0.0.1:9999' "$d/etc/latch/latch.env" || fail "latch.env was overwritten"

step "make install DESTDIR=$tmp/local PREFIX=/usr/local (the default prefix)"
d=$tmp/local
install_to "$d" /usr/local
expect_file "$d/usr/local/bin/latch" 755
expect_file "$d/usr/local/lib/systemd/system/latch.service" 644
expect_file "$d/usr/local/share/doc/latch/latch.env" 644
expect_file "$d/usr/local/share/doc/latch/README.md" 644
grep -qx 'ExecStart=/usr/local/bin/latch serve --db /var/lib/latch/auth.db' \
  "$d/usr/local/lib/systemd/system/latch.service" || fail "the unit's ExecStart is not /usr/local/bin/latch"
if [ -e "$d/etc" ] || [ -e "$d/lib" ]; then fail "PREFIX=/usr/local wrote outside the prefix"; fi
echo "PASSED: make install puts every file where it belongs"
