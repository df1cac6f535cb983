#!/bin/sh
# Installs the Debian packages the end-to-end benchmark (make bench) needs
# on top of scripts/deps.sh: the OpenResty module (libnginx-mod-http-lua,
# LuaJIT, with libnginx-mod-http-ndk), lua-cjson, wrk, curl and linux-perf.
exec sh "$(dirname "$0")/../scripts/deps.sh" libnginx-mod-http-lua \
    libnginx-mod-http-ndk lua-cjson wrk curl perl linux-perf
