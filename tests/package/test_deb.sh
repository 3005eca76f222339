#!/usr/bin/env bash
# Builds the .deb with cpack, installs it with apt-get, runs the installed latch, then purges it.
#
# Usage: test_deb.sh BUILD_DIR (ctest passes it). Needs root or password-less sudo for apt-get;
# without either it exits 77, which ctest reports as skipped. The machine is left as it was: the
# server is stopped and the package purged, whatever happens (one run at a time, under flock).
set -euo pipefail

bin=$(cd "$1" && pwd)
skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAILED: $*" >&2; exit 1; }
step() { echo "== $*"; }

if [ "$(id -u)" = 0 ]; then
  as_root() { "$@"; }
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root() { sudo -n "$@"; }
else
  skip "installing a package needs root or password-less sudo; run make test as root"
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
  skip "not a Debian-based system (no apt-get/dpkg-query)"
fi
if ! command -v dpkg-shlibdeps >/dev/null || ! command -v file >/dev/null; then
  skip "dpkg-shlibdeps or file missing: run make deb-deps (make test does)"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/latch-deb-test.XXXXXX")
server_pid=
installed_by_us=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$installed_by_us" ]; then
    echo "== cleanup: purging the latch package"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q \
      -o DPkg::Lock::Timeout=120 latch >/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

step "cpack: building the .deb from $bin"
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$bin/CPackConfig.cmake")
[ -n "$version" ] || fail "no CPACK_PACKAGE_VERSION in $bin/CPackConfig.cmake"
deb_name="latch_${version}_$(dpkg --print-architecture).deb"
cpack --config "$bin/CPackConfig.cmake" -G DEB -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1 \
  || { cat "$tmp/cpack.log"; fail "cpack failed"; }
deb="$tmp/pkg/$deb_name"
[ -f "$deb" ] || { ls "$tmp/pkg"; fail "cpack did not make $deb_name"; }
echo "made $deb_name ($(du -k "$deb" | cut -f1) KiB)"

# One package test at a time on this machine (two build directories may run it at once).
exec 9>/run/lock/latch-package-test.lock
flock -w 300 9 || fail "another package test holds /run/lock/latch-package-test.lock"
if dpkg-query -W -f='${Status}' latch 2>/dev/null | grep -q 'ok installed'; then
  skip "a latch package is already installed here and this test would replace it;" \
       "remove it first (apt-get purge latch)"
fi

step "apt-get install ./$deb_name"
installed_by_us=1
# apt reads the local file as root: a private temp dir is fine, the _apt notice is harmless.
(cd "$tmp/pkg" && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
  -o DPkg::Lock::Timeout=120 "./$deb_name") >"$tmp/apt.log" 2>&1 \
  || { cat "$tmp/apt.log"; fail "apt-get install failed"; }

step "dpkg -s latch"
status=$(dpkg -s latch)
echo "$status" | grep -E '^(Package|Status|Version|Section|Maintainer|Depends):'
echo "$status" | grep -qx 'Status: install ok installed' || fail "latch is not installed"
echo "$status" | grep -qx "Version: $version" || fail "version is not $version"
echo "$status" | grep -qx 'Section: net' || fail "section is not net"
depends=$(dpkg-query -W -f='${Depends}' latch)
# libsodium is linked statically (auth/password.cpp says why), so it is no dependency.
for lib in libsqlite3 libssl libcurl libcpp-httplib libicu; do
  echo "$depends" | grep -q "\b$lib" || fail "Depends does not name $lib: $depends"
done
dpkg-query -W -f='${Conffiles}\n' latch | grep -q '^ /etc/latch/latch.env ' \
  || fail "/etc/latch/latch.env is not a conffile"

step "dpkg -L latch"
files=$(dpkg -L latch)
for f in /usr/bin/latch /lib/systemd/system/latch.service /etc/latch/latch.env \
         /usr/share/doc/latch/README.md /usr/share/doc/latch/SECURITY.md; do
  echo "$files" | grep -qx "$f" || fail "dpkg -L latch does not list $f"
  [ -e "$f" ] || fail "$f is listed but missing"
done
[ "$(stat -c %a /etc/latch/latch.env)" = 600 ] || fail "/etc/latch/latch.env is not mode 0600"
/usr/bin/latch version | grep -qx "latch $version" || fail "/usr/bin/latch version is not $version"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /lib/systemd/system/latch.service || fail "systemd-analyze verify"
  echo "systemd-analyze verify latch.service: ok"
fi

step "serving with /usr/bin/latch on a free port"
/usr/bin/latch serve --addr 127.0.0.1:0 --db "$tmp/auth.db" >"$tmp/out.log" 2>"$tmp/err.log" &
server_pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's|^latch: listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$tmp/out.log")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/err.log"; fail "latch exited at start"; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/out.log" "$tmp/err.log"; fail "latch did not say where it listens"; }
url="http://127.0.0.1:$port"
echo "listening on $url"

# call METHOD PATH EXPECTED_STATUS [curl args...]: the body goes to $tmp/body.
call() {
  local method=$1 path=$2 want=$3 got
  shift 3
  got=$(curl -sS --max-time 10 -o "$tmp/body" -w '%{http_code}' -X "$method" "$url$path" "$@")
  [ "$got" = "$want" ] || { cat "$tmp/body"; echo; fail "$method $path: $got, expected $want"; }
  echo "$method $path: $got"
}
json=(-H 'Content-Type: application/json')
call POST /api/auth/signup 201 "${json[@]}" \
  -d '{"email":"deb@example.com","username":"debtest","password":"correct horse"}'
call POST /api/auth/signin 200 "${json[@]}" \
  -d '{"email":"deb@example.com","password":"correct horse"}'
access=$(sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p' "$tmp/body")
[ -n "$access" ] || fail "signin answered no access_token: $(cat "$tmp/body")"
call GET /auth/getuser 200 -H "Authorization: Bearer $access"
grep -q '"debtest"' "$tmp/body" || fail "getuser does not name the user: $(cat "$tmp/body")"

step "SIGTERM"
kill -TERM "$server_pid"
for _ in $(seq 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$server_pid" 2>/dev/null && fail "latch still runs 30 s after SIGTERM"
rc=0
wait "$server_pid" || rc=$?
server_pid=
[ "$rc" = 0 ] || { cat "$tmp/err.log"; fail "latch exited $rc on SIGTERM, expected 0"; }
grep -q '^latch: stopped' "$tmp/out.log" || fail "latch did not say it stopped"
echo "exited 0"

step "apt-get purge latch"
as_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=120 latch \
  >"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log"; fail "apt-get purge failed"; }
installed_by_us=
status=$(dpkg-query -W -f='${Status}' latch 2>/dev/null || true)
case $status in
  "" | *not-installed) ;;
  *) fail "latch is still known to dpkg after purge: $status" ;;
esac
for f in /usr/bin/latch /lib/systemd/system/latch.service /etc/latch/latch.env; do
  [ ! -e "$f" ] || fail "$f is still there after purge"
done
echo "PASSED: $deb_name installs, serves, stops on SIGTERM and purges"
