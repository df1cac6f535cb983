#!/bin/sh
# Soak (make soak, bench/README.md "Soak"): SOAK_REQUESTS (default 10^5)
# mixed requests on loopback against the stock nginx with the module, one
# worker, after SOAK_WARMUP (default 10^4) warm-up ones.  The kinds
# (bench/soak/gen.pl) rotate: valid events and batches (some events
# filtered by consent or integrations, some rejected), text/plain, gzip,
# corrupt gzip, gzip bombs, malformed JSON, wrong types, oversized bodies,
# a Lua hook, a failing destination, preflights, unknown endpoints and
# status scrapes.  Destinations are a second nginx answering 200 (503 for
# the failing one).
#
# Prints the statuses per kind (from the access log) and the worker's
# VmRSS after the warm-up and after each quarter of the run.  Fails if
# the worker crashed or was replaced, the error log has an [alert], a
# kind got a 5xx it does not expect, or VmRSS grew by more than
# SOAK_MAX_GROWTH_KB (default 1024: a leak of 10 bytes per request is
# over it; repeated runs move by less than 100 KB).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NGINX=${SOAK_NGINX:-/usr/sbin/nginx}
MODULE=${SOAK_MODULE:-$ROOT/build/ngx_http_consent_module.so}
REQUESTS=${SOAK_REQUESTS:-100000}
WARMUP=${SOAK_WARMUP:-10000}
CONNS=${SOAK_CONNS:-8}
MAX_GROWTH_KB=${SOAK_MAX_GROWTH_KB:-1024}
LIMIT=${SOAK_TIME_LIMIT:-300}          # seconds, per wrk run
DIR=$ROOT/build/soak

command -v wrk >/dev/null || { echo "soak: wrk not found" >&2; exit 1; }
[ -f "$MODULE" ] || { echo "soak: $MODULE not found: make" >&2; exit 1; }

free_port() {
    perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(
        LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 1,
        ReuseAddr => 1)->sockport'
}

rm -rf "$DIR"
mkdir -p "$DIR/gw" "$DIR/sink"
for p in gw sink; do
    mkdir -p "$DIR/$p/client_body" "$DIR/$p/proxy" "$DIR/$p/fastcgi" \
             "$DIR/$p/uwsgi" "$DIR/$p/scgi"
done
perl "$ROOT/bench/soak/gen.pl" "$DIR/kinds"

GW_PORT=$(free_port)
SINK_PORT=$(free_port)
USER_LINE=
[ "$(id -u)" = 0 ] && USER_LINE="user root;"

temp_paths() {
    cat <<CONF
    client_body_temp_path $1/client_body;
    proxy_temp_path       $1/proxy;
    fastcgi_temp_path     $1/fastcgi;
    uwsgi_temp_path       $1/uwsgi;
    scgi_temp_path        $1/scgi;
CONF
}

cat > "$DIR/sink/nginx.conf" <<CONF
$USER_LINE
worker_processes 1;
pid $DIR/sink/nginx.pid;
error_log $DIR/sink/error.log notice;
events { worker_connections 1024; }
http {
    access_log off;
$(temp_paths "$DIR/sink")
    client_max_body_size 1m;
    server {
        listen 127.0.0.1:$SINK_PORT;
        keepalive_requests 100000;
        location / { return 200 '{"success":true}'; }
        location /fail { return 503; }
    }
}
CONF

cat > "$DIR/gw/nginx.conf" <<CONF
load_module $MODULE;
$USER_LINE
worker_processes 1;
pid $DIR/gw/nginx.pid;
error_log $DIR/gw/error.log notice;
events { worker_connections 1024; }
http {
    log_format soak '\$http_x_soak_kind \$status';
    access_log $DIR/gw/access.log soak;
$(temp_paths "$DIR/gw")
    client_max_body_size    1m;
    client_body_buffer_size 128k;
    keepalive_requests      100000;

    consent_max_body_size 64k;
    consent_status_zone 1m;
    consent_category C0002 "Performance";
    consent_category C0004 "Targeting";
    consent_category C0005 "Social" off;
    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination facebook  /_dest/facebook  C0004 C0005;
    consent_destination warehouse /_dest/warehouse enforce=off;
    consent_destination webhook   /_dest/webhook;

    upstream sink {
        server 127.0.0.1:$SINK_PORT;
        keepalive 16;
    }
    proxy_http_version 1.1;
    proxy_set_header   Connection "";
    proxy_set_header   Content-Type application/json;

    server {
        listen 127.0.0.1:$GW_PORT;
        location /v1/ { consent_ingest; }
        location /lua/v1/ {
            consent_ingest;
            consent_lua_hook $ROOT/lua/examples/onetrust_gpc.lua;
        }
        location /fail/v1/ {
            consent_ingest;
            consent_destination webhook /_dest/webhook;
            consent_destination broken  /_dest/broken;
        }
        location = /status { consent_status; }
        location /_dest/ { internal; proxy_pass http://sink; }
        location /_dest/broken { internal; proxy_pass http://sink/fail; }
    }
}
CONF

stop() {
    for p in gw sink; do
        [ -f "$DIR/$p/nginx.pid" ] && kill -QUIT "$(cat "$DIR/$p/nginx.pid")" \
            2>/dev/null || :
    done
}
trap stop EXIT
trap 'exit 1' INT TERM

"$NGINX" -p "$DIR/sink" -c "$DIR/sink/nginx.conf" -e "$DIR/sink/error.log"
"$NGINX" -p "$DIR/gw" -c "$DIR/gw/nginx.conf" -e "$DIR/gw/error.log"

# the daemonised master writes its pid file just after nginx returned
i=0
while [ ! -s "$DIR/gw/nginx.pid" ] && [ $i -lt 100 ]; do
    sleep 0.05; i=$((i + 1))
done
MASTER=$(cat "$DIR/gw/nginx.pid")
i=0
WORKER=
while [ -z "$WORKER" ] && [ $i -lt 100 ]; do
    WORKER=$(pgrep -P "$MASTER" | head -1 || :)
    [ -n "$WORKER" ] || sleep 0.05
    i=$((i + 1))
done
[ -n "$WORKER" ] || { echo "soak: no worker process" >&2; exit 1; }

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$WORKER/status"; }

run() {
    timeout $((LIMIT + 30)) wrk -t1 -c"$CONNS" -d"${LIMIT}s" \
        -s "$ROOT/bench/soak/mix.lua" "http://127.0.0.1:$GW_PORT" \
        -- "$DIR/kinds" "$1" > "$DIR/wrk.$2.txt" 2>&1 \
        || { cat "$DIR/wrk.$2.txt"; echo "soak: wrk failed" >&2; exit 1; }
}

START=$(date +%s)
echo "soak: worker $WORKER, VmRSS at start $(rss) kB"
run "$WARMUP" warmup
RSS0=$(rss)
echo "soak: after $WARMUP warm-up requests: VmRSS $RSS0 kB"
WARM_LINES=$(wc -l < "$DIR/gw/access.log")

Q=$((REQUESTS / 4))
for part in 1 2 3 4; do
    n=$Q
    [ $part = 4 ] && n=$((REQUESTS - 3 * Q))
    run "$n" "part$part"
    echo "soak: after quarter $part ($n requests): VmRSS $(rss) kB"
done
RSS1=$(rss)
END=$(date +%s)

# a worker that crashed was replaced; finished requests are all logged
NOW=$(pgrep -P "$MASTER" | head -1 || :)
TOTAL=$(($(wc -l < "$DIR/gw/access.log") - WARM_LINES))

echo
echo "soak: $TOTAL requests after the warm-up in $((END - START)) s" \
     "(all phases), $CONNS connections"
echo "soak: statuses per kind after the warm-up (expected in brackets):"
tail -n +"$((WARM_LINES + 1))" "$DIR/gw/access.log" | awk -v kinds="$DIR/kinds/kinds.txt" '
    BEGIN {
        while ((getline l < kinds) > 0) {
            split(l, f, " "); order[++n] = f[1]; want[f[1]] = f[2]
        }
    }
    { count[$1 " " $2]++; total[$1]++ }
    END {
        bad = 0
        for (i = 1; i <= n; i++) {
            k = order[i]; line = sprintf("  %-17s [%s] %6d:", k, want[k], total[k])
            for (s = 100; s < 600; s++) {
                if ((k " " s) in count) {
                    line = line sprintf(" %d x%d", s, count[k " " s])
                    if (s >= 500 && s != want[k]) bad = 1
                }
            }
            print line
        }
        for (c in count) {
            split(c, f, " ")
            if (!(f[1] in want)) {
                print "  unknown kind: " c " x" count[c]
                if (f[2] >= 500) bad = 1
            }
        }
        exit bad
    }' || FAIL_5XX=1

GROWTH=$((RSS1 - RSS0))
echo "soak: worker VmRSS after warm-up $RSS0 kB, at the end $RSS1 kB," \
     "growth $GROWTH kB (limit $MAX_GROWTH_KB kB)"

rc=0
if [ "$NOW" != "$WORKER" ] || grep -q "exited on signal" "$DIR/gw/error.log"
then
    echo "soak: FAIL: the worker crashed or was replaced"; rc=1
fi
if grep -q "\[alert\]\|\[emerg\]" "$DIR/gw/error.log"; then
    grep "\[alert\]\|\[emerg\]" "$DIR/gw/error.log" | head -5
    echo "soak: FAIL: [alert] or [emerg] in the error log"; rc=1
fi
if [ -n "${FAIL_5XX:-}" ]; then
    echo "soak: FAIL: a 5xx where none is expected"; rc=1
fi
if [ "$GROWTH" -gt "$MAX_GROWTH_KB" ]; then
    echo "soak: FAIL: VmRSS grew by $GROWTH kB"; rc=1
fi
[ $rc = 0 ] && echo "soak: OK"
exit $rc
