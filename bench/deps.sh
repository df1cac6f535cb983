#!/bin/sh
# Installs the Debian packages the end-to-end benchmark (make bench) needs
# on top of scripts/deps.sh: the OpenResty module (libnginx-mod-http-lua,
# LuaJIT, with libnginx-mod-http-ndk), lua-cjson, wrk, curl and linux-perf.
# Idempotent: does nothing when everything is already installed.
set -e

PKGS="libnginx-mod-http-lua libnginx-mod-http-ndk lua-cjson wrk curl perl
      linux-perf"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done

[ -z "$missing" ] && exit 0

echo "bench deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends $missing
