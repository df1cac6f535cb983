#!/bin/sh
# Starts four local destinations and the gateway on 127.0.0.1:8080.
# Ctrl-C stops everything.
set -e

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=$ROOT/build/demo
mkdir -p "$PREFIX"

sed -e "s|@MODULE@|$ROOT/build/ngx_http_consent_module.so|g" \
    -e "s|@PREFIX@|$PREFIX|g" -e "s|@ROOT@|$ROOT|g" -e "s|@PORT@|8080|g" \
    -e "s|@PORT_AMPLITUDE@|9001|g" -e "s|@PORT_FACEBOOK@|9002|g" \
    -e "s|@PORT_WAREHOUSE@|9003|g" -e "s|@PORT_WEBHOOK@|9004|g" \
    "$ROOT/demo/nginx.conf" > "$PREFIX/nginx.conf"

pids=""
cleanup() {
    [ -n "$pids" ] && kill $pids 2>/dev/null || true
}
trap cleanup EXIT INT TERM

port=9001
for name in amplitude facebook warehouse webhook; do
    perl "$ROOT/demo/sink.pl" --name $name --port $port --print \
        --log "$PREFIX/$name.log" &
    pids="$pids $!"
    port=$((port + 1))
done

USER_DIRECTIVE=""
[ "$(id -u)" = 0 ] && USER_DIRECTIVE="user root;"

echo "demo page on http://127.0.0.1:8080/ (consent banner, analytics.js, what each destination got)"
echo "gateway on http://127.0.0.1:8080/v1/{track,identify,page,screen,group,alias,batch}"
echo "destinations print what they receive below; Ctrl-C to stop"
/usr/sbin/nginx -p "$PREFIX" -c "$PREFIX/nginx.conf" -e stderr \
    ${USER_DIRECTIVE:+-g "$USER_DIRECTIVE"}
