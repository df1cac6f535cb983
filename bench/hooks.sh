#!/bin/sh
# Cost of Lua hooks on single ~1 KB track events: the same gateway, same
# run, three locations: no hook, a trivial hook, the OneTrust mapping.
# Destinations are an nginx "return 200" server (keepalive).  Prints
# requests/s and ratios to the no-hook location.
#
#   sh bench/hooks.sh [seconds] [connections]

set -e

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-8}
CONNS=${2:-16}
W=$ROOT/build/bench-hooks
NGINX=/usr/sbin/nginx
mkdir -p "$W"

port() {
    perl -MIO::Socket::INET -e \
        'print IO::Socket::INET->new(Listen=>1,LocalAddr=>"127.0.0.1:0")->sockport'
}

GW=$(port)
DST=$(port)
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"

cat > "$W/trivial.lua" <<'LUA'
return { event = function(ev, req) return nil end }
LUA

cat > "$W/onetrust.lua" <<'LUA'
return require("consent.onetrust").new{}
LUA

cat > "$W/nginx.conf" <<CONF
load_module $ROOT/build/ngx_http_consent_module.so;
$USER_LINE
worker_processes 1;
pid $W/nginx.pid;
error_log $W/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $W/cb; proxy_temp_path $W/px;
    fastcgi_temp_path $W/fc; uwsgi_temp_path $W/uw; scgi_temp_path $W/sc;

    consent_category C0001; consent_category C0002;
    consent_category C0003; consent_category C0004;
    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination facebook  /_dest/facebook  C0004;
    consent_destination webhook   /_dest/webhook;

    upstream dest { server 127.0.0.1:$DST; keepalive 64; }

    server {
        listen 127.0.0.1:$DST;
        location / { return 200 '{"ok":true}'; }
    }

    server {
        listen 127.0.0.1:$GW;
        location /plain/v1/    { consent_ingest; }
        location /trivial/v1/  { consent_ingest; consent_lua_hook $W/trivial.lua; }
        location /onetrust/v1/ { consent_ingest; consent_lua_hook $W/onetrust.lua; }

        location /_dest/ {
            internal;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://dest;
        }
    }
}
CONF

PAD=$(printf '%0600d' 0 | tr 0 x)
cat > "$W/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain"
wrk.headers["Cookie"] = "OptanonAlertBoxClosed=2026-11-01T10:00:00.000Z; OptanonConsent=isGpcEnabled=0&datestamp=Mon+Nov+23+2026&version=202409.1.0&isIABGlobal=false&hosts=&consentId=0b5e&interactionCount=1&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A1%2CC0003%3A0%2CC0004%3A0&AwaitingReconsent=false"
wrk.body = '{"userId":"user-42","anonymousId":"a1b2c3d4-e5f6","event":"Product Viewed","properties":{"product_id":"sku-1","price":19.99,"currency":"EUR","description":"$PAD"},"context":{"ip":"203.0.113.7","library":{"name":"analytics.js","version":"2.11.0"},"consent":{"categoryPreferences":{"C0001":true,"C0002":true,"C0003":false,"C0004":false}}},"messageId":"msg-1","timestamp":"2026-11-23T09:00:00.000Z"}'
LUA

$NGINX -p "$W" -c "$W/nginx.conf" -e "$W/error.log"
trap '$NGINX -p "$W" -c "$W/nginx.conf" -e "$W/error.log" -s stop' EXIT

run() {
    curl -s -o /dev/null -w '%{http_code}' -X POST \
        --data-binary "{\"userId\":\"warm\",\"event\":\"x\"}" \
        "http://127.0.0.1:$GW/$1/v1/track" | grep -q 200 \
        || { echo "gateway /$1 not answering 200" >&2; exit 1; }
    wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$W/post.lua" \
        "http://127.0.0.1:$GW/$1/v1/track" \
        | awk '/Requests\/sec/ { print $2 }
               /Non-2xx/ { print "non-2xx " $NF > "/dev/stderr" }'
}

echo "single ~1 KB track events, $CONNS connections, ${SECS}s each," \
     "1 gateway worker, 3 destinations"
plain=$(run plain)
trivial=$(run trivial)
onetrust=$(run onetrust)
plain2=$(run plain)

awk -v p="$plain" -v p2="$plain2" -v t="$trivial" -v o="$onetrust" 'BEGIN {
    base = (p + p2) / 2
    printf "no hook:        %8.0f req/s (%.0f and %.0f)\n", base, p, p2
    printf "trivial hook:   %8.0f req/s  ratio %.3f  cost %.1f%%\n",
           t, t / base, 100 * (1 - t / base)
    printf "onetrust hook:  %8.0f req/s  ratio %.3f  cost %.1f%%\n",
           o, o / base, 100 * (1 - o / base)
    printf "hooks: none %.0f req/s, trivial %.0f req/s (%.2f), onetrust %.0f req/s (%.2f)\n",
           base, t, t / base, o, o / base
}'
