#!/bin/sh
# Installs the Debian packages ngx_consent needs to build, run and test,
# or, given package names (bench/deps.sh), those.
# Idempotent: does nothing when everything is already installed.
set -e

PKGS="nginx nginx-dev liblua5.4-dev lua5.4 lua-cjson libpcre2-dev zlib1g-dev
      libssl-dev pkg-config make gcc clang libclang-rt-14-dev wrk perl
      valgrind chromium fonts-liberation fonts-dejavu-core nodejs curl
      redis-server"
# npm: Debian's package, unless nodejs came with its own (NodeSource's
# nodejs ships npm and conflicts with Debian's npm package)
[ $# -eq 0 ] && ! command -v npm >/dev/null 2>&1 && PKGS="$PKGS npm"
[ $# -gt 0 ] && PKGS="$*"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done

[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends $missing
