#!/bin/sh
# End-to-end benchmark (make bench; bench/README.md "End-to-end"): three
# gateways fanning out to the same 5 destinations, on loopback, each with
# 1 worker, driven by wrk in the same run with the same payloads:
#
#   consent    ngx_consent (bench/e2e/consent.conf): validates, routes by
#              consent category, forwards per destination {"batch":[...]}
#              of slices of the body
#   mirror     nginx's mirror fan-out (bench/e2e/mirror.conf): the whole
#              body to all 5, no validation, no filtering: the floor
#   openresty  the same rules in Lua (bench/e2e/e2e_gateway.lua):
#              cjson.decode, validate, filter, cjson.encode per
#              destination, ngx.location.capture_multi
#   batch      ngx_consent with consent_delivery batch (bench/e2e/
#              batch.conf): the same rules, the events queued per
#              destination and sent 100 at a time (issue 14)
#
# The destinations are one nginx "return 200" server (1 worker), reached
# through upstream keepalive by all three.  First an equivalence check:
# consent and openresty, pointed at a counting destination, must forward
# the same events (messageIds, in order) to the same destinations.  Then
# wrk: single ~1 KB track events (POST /v1/track) and 50-event batches
# (POST /v1/batch), E2E_ROUNDS runs each (interleaved), the median run
# reported.  Prints a table and, as its last line:
#
#   e2e: gateway X req/s, mirror Y req/s, ratio Z    (single events)
#
# and before it the batch mode's line, U the upstream requests (batches
# that got 2xx, from its consent_status) per single event answered 200:
#
#   batch: gateway X req/s, mirror Y req/s, openresty Z req/s,
#          upstream requests per event U
#
# Environment: E2E_SECONDS (5, per run), E2E_ROUNDS (3), E2E_CONNS (32,
# wrk connections), E2E_PERF=1 (also perf record each gateway's worker
# during one more batch run and print the top symbols), E2E_NO_TRIM=1
# (diagnosis: the gateways run with glibc's heap trimming and mmap of
# large blocks turned off, see bench/README.md).

set -e

ROOT=$(cd "$(dirname "$0")/.." && pwd)
E2E=$ROOT/bench/e2e
W=$ROOT/build/bench-e2e
NGINX=/usr/sbin/nginx
MODULE=$ROOT/build/ngx_http_consent_module.so
SECS=${E2E_SECONDS:-5}
ROUNDS=${E2E_ROUNDS:-3}
CONNS=${E2E_CONNS:-32}
NSINGLE=64
NBATCH=16
BATCH_EVENTS=50
GATEWAYS="consent mirror openresty batch"

[ -f "$MODULE" ] || { echo "e2e: $MODULE missing (make)" >&2; exit 1; }
for cmd in wrk curl lua5.4 perl; do
    command -v $cmd > /dev/null \
        || { echo "e2e: $cmd missing (sh bench/deps.sh)" >&2; exit 1; }
done
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] \
    || { echo "e2e: libnginx-mod-http-lua missing (sh bench/deps.sh)" >&2;
         exit 1; }

rm -rf "$W"
mkdir -p "$W"

# a private copy: a rebuild overwriting build/*.so in place must not
# crash the running gateway
cp "$MODULE" "$W/ngx_http_consent_module.so"
MODULE=$W/ngx_http_consent_module.so

USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"

port() {
    perl -MIO::Socket::INET -e \
        'print IO::Socket::INET->new(Listen=>1,LocalAddr=>"127.0.0.1:0")->sockport'
}

STARTED=""
START_ENV=""

# start NAME TEMPLATE PORT [DESTINATION PORT]
start() {
    mkdir -p "$W/$1"
    sed -e "s|@USER@|$USER_LINE|" -e "s|@E2E@|$E2E|g" \
        -e "s|@MODULE@|$MODULE|" -e "s|@PORT@|$3|" -e "s|@DST@|${4:-0}|" \
        "$E2E/$2" > "$W/$1/nginx.conf"
    env $START_ENV $NGINX -p "$W/$1" -c "$W/$1/nginx.conf" \
        -e "$W/$1/error.log" || { echo "e2e: $1 did not start" >&2; exit 1; }
    STARTED="$STARTED $1"
}

stop() {
    pid=$(cat "$W/$1/nginx.pid" 2>/dev/null) || return 0
    kill -TERM "$pid" 2>/dev/null || true
    # the master removes its pid file when it exits
    i=0
    while [ -f "$W/$1/nginx.pid" ] && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if [ -f "$W/$1/nginx.pid" ]; then
        pkill -KILL -P "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$W/$1/nginx.pid"
    fi
}

stop_all() {
    for n in $STARTED; do
        stop "$n"
    done
    STARTED=""
}

trap 'stop_all' EXIT
trap 'exit 1' INT TERM

worker_pid() {
    pgrep -P "$(cat "$W/$1/nginx.pid")" | head -1
}

# POST FILE to PORT PATH, prints the status
post() {
    curl -s -o /dev/null -w '%{http_code}' -X POST \
        -H 'Content-Type: text/plain' --data-binary "@$1" \
        "http://127.0.0.1:$2$3"
}

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'),"\
     "$(uname -r); nginx $($NGINX -v 2>&1 | sed 's/.*nginx\///'),"\
     "wrk $(wrk -v 2>&1 | sed -n '1s/^wrk \([^ ]*\).*/\1/p')"

# wrk, the gateways and the upstream share this machine's CPUs: anything
# else running makes the figures unreliable
busy() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat
}
set -- $(busy)
sleep 1
set -- "$@" $(busy)
busy=$(awk -v b=$(($3 - $1)) -v i=$(($4 - $2)) \
       'BEGIN { printf "%.0f", 100 * b / (b + i + 0.001) }')
echo "CPU busy before the run: $busy% of $(nproc) CPUs"
if [ "$busy" -gt 10 ]; then
    echo "e2e: warning: the machine is busy, the figures will be unreliable"
    ps -eo pcpu,comm --sort=-pcpu | sed -n '2,4p'
fi

lua5.4 "$E2E/gen_payloads.lua" "$W/payloads" $NSINGLE $NBATCH $BATCH_EVENTS

# ---- equivalence check: the same (event, destination) pairs -----------

SINK=$(port)
start sink sink.conf "$SINK"
CHK_GW=$(port)
CHK_OR=$(port)
start chk-consent consent.conf "$CHK_GW" "$SINK"
start chk-openresty openresty.conf "$CHK_OR" "$SINK"

check() {
    curl -s "http://127.0.0.1:$SINK/_reset" > /dev/null
    codes=""
    for i in $(seq $NSINGLE); do
        codes="$codes$(post "$W/payloads/single/$i.json" "$1" /v1/track) "
    done
    for i in $(seq $NBATCH); do
        codes="$codes$(post "$W/payloads/batch/$i.json" "$1" /v1/batch) "
    done
    echo "$codes" | tr ' ' '\n' | grep . | sort | uniq -c \
        | awk '{ printf "status %s x%d\n", $2, $1 }'
    curl -s "http://127.0.0.1:$SINK/_counts"
}

check "$CHK_GW" > "$W/check-consent.txt"
check "$CHK_OR" > "$W/check-openresty.txt"
stop chk-consent
stop chk-openresty
stop sink

total=$((NSINGLE + NBATCH * BATCH_EVENTS))
echo
echo "equivalence check: $NSINGLE single events and $NBATCH batches" \
     "($total events) through consent and openresty into a counting" \
     "destination:"
awk -v t=$total '/^status/ { print "  " $0; next }
    { printf "  %-10s %5d requests %5d events (%3.0f%% of events)  md5 %s\n",
             $1, $3, $5, 100 * $5 / t, substr($8, 1, 12) }' \
    "$W/check-consent.txt"
if ! cmp -s "$W/check-consent.txt" "$W/check-openresty.txt"; then
    echo "e2e: consent and openresty forwarded different events:" >&2
    diff "$W/check-consent.txt" "$W/check-openresty.txt" >&2 || true
    exit 1
fi
grep -q '^status 200 x'"$((NSINGLE + NBATCH))"'$' "$W/check-consent.txt" \
    || { echo "e2e: not every check request answered 200" >&2; exit 1; }
echo "  openresty: identical (statuses, per destination requests, events" \
     "and messageIds in order)"

# ---- measurement -------------------------------------------------------

DST=$(port)
start upstream upstream.conf "$DST"
if [ "${E2E_NO_TRIM:-0}" = 1 ]; then
    # diagnosis only (bench/README.md): glibc keeps freed memory mapped
    START_ENV="GLIBC_TUNABLES=glibc.malloc.trim_threshold=67108864"
    START_ENV="$START_ENV:glibc.malloc.mmap_threshold=4194304"
    echo
    echo "E2E_NO_TRIM=1: the three gateways run with $START_ENV"
fi
for g in $GATEWAYS; do
    p=$(port)
    eval "PORT_$g=$p"
    start "$g" "$g.conf" "$p" "$DST"
done
START_ENV=""

for g in $GATEWAYS; do
    eval "p=\$PORT_$g"
    code=$(post "$W/payloads/single/1.json" "$p" /v1/track)
    [ "$code" = 200 ] || { echo "e2e: $g answers $code" >&2; exit 1; }
done

HZ=$(getconf CLK_TCK)

# CPU time (user + system, clock ticks) and minor page faults of a
# gateway's worker
ticks() {
    awk '{ print $14 + $15, $10 }' "/proc/$(worker_pid "$1")/stat"
}

# wrk GATEWAY KIND SECONDS: prints "req/s p50_ms p99_ms non2xx errors
# cpu_us faults", the gateway worker's CPU time and page faults per request
wrk_run() {
    eval "p=\$PORT_$1"
    set -- "$@" $(ticks "$1")
    if [ "$2" = single ]; then
        n=$NSINGLE path=/v1/track
    else
        n=$NBATCH path=/v1/batch
    fi
    wrk -t1 -c"$CONNS" -d"${3}s" --latency -s "$E2E/post.lua" \
        "http://127.0.0.1:$p" -- "$W/payloads/$2" $n $path \
        > "$W/wrk-$1-$2.txt" 2>&1 || true
    set -- "$@" $(ticks "$1")
    awk -v cpu=$(($6 - $4)) -v flt=$(($7 - $5)) -v hz="$HZ" '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /s$/) return v * 1000
            return v
        }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        /Requests\/sec/ { rps = $2 }
        / requests in / { n = $1 }
        /Non-2xx/ { non2xx = $NF }
        /Socket errors/ { errs = $0; sub(/.*errors: /, "", errs);
                          gsub(/ /, "", errs) }
        END { printf "%s %s %s %d %s %.0f %.1f\n", rps, p50, p99, non2xx,
                     errs == "" ? "-" : errs, n ? cpu / hz * 1e6 / n : 0,
                     n ? flt / n : 0 }' \
        "$W/wrk-$1-$2.txt"
}

rss() {
    awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' \
        "/proc/$(worker_pid "$1")/status"
}

echo
echo "wrk: 1 thread, $CONNS connections, ${SECS}s per run, $ROUNDS runs" \
     "(median reported); 1 worker per gateway, upstream on its own" \
     "1-worker nginx"

: > "$W/results.txt"
for kind in single batch; do
    for g in $GATEWAYS; do
        wrk_run "$g" "$kind" 1 > /dev/null     # warm-up (JIT, keepalive)
    done
    for r in $(seq "$ROUNDS"); do
        for g in $GATEWAYS; do
            set -- $(wrk_run "$g" "$kind" "$SECS")
            echo "  $kind $g run $r: $1 req/s, p50 $2 ms, p99 $3 ms," \
                 "worker CPU $6 us and $7 page faults per request," \
                 "non-2xx $4, socket errors $5"
            if [ "$4" != 0 ] || [ "$5" != - ]; then
                echo "e2e: $g had errors, see $W/wrk-$g-$kind.txt" >&2
                exit 1
            fi
            echo "$kind $g $r $1 $2 $3 $6 $7" >> "$W/results.txt"
        done
    done
    for g in $GATEWAYS; do
        echo "rss $kind $g $(rss "$g")" >> "$W/results.txt"
    done
    # the batch gateway's upstream requests per event and events it
    # dropped (a figure bought with drops would not count); its queues
    # flush within flush= (100ms) once the load stops
    sleep 1
    curl -s "http://127.0.0.1:$PORT_batch/status" | awk -v k=$kind '
        /^ngx_consent_batches_total/ { b += $2 }
        /^ngx_consent_batch_dropped_total/ { d += $2 }
        /^ngx_consent_requests_total\{status="200"\}/ { r += $2 }
        END { printf "upr %s %d %d %d\n", k, b, r, d }' >> "$W/results.txt"
done

for g in $GATEWAYS; do
    if grep -E '\[(alert|emerg|crit)\]' "$W/$g/error.log" > /dev/null; then
        echo "e2e: $g logged alerts:" >&2
        grep -E '\[(alert|emerg|crit)\]' "$W/$g/error.log" | head -5 >&2
        exit 1
    fi
done

if [ "${E2E_PERF:-0}" = 1 ] && command -v perf > /dev/null; then
    for g in consent openresty; do
        perf record -g -o "$W/perf-$g.data" -p "$(worker_pid "$g")" \
            -- sleep "$SECS" > /dev/null 2>&1 &
        perfpid=$!
        wrk_run "$g" batch "$SECS" > /dev/null
        wait $perfpid || true
        echo
        echo "perf, $g worker, 50-event batches (top symbols, self):"
        perf report -i "$W/perf-$g.data" --no-children --sort symbol \
            --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -25
    done
fi

echo
awk -v ev=$BATCH_EVENTS -v conns=$CONNS '
    $1 == "rss" { rss[$2, $3] = $4; next }
    $1 == "upr" && $2 == "single" { upr_b = $3; upr_r = $4; drop = $5; next }
    $1 == "upr" { drop_batch = $5 - drop; next }
    {
        k = $1 SUBSEP $2
        c = ++nrun[k]
        run[k, c] = $0
    }
    END {
        # per gateway and load, the median run by req/s (of an even
        # count, the slower middle one)
        for (k in nrun) {
            c = nrun[k]
            for (a = 1; a <= c; a++) {
                split(run[k, a], f, " ")
                v[a] = f[4]; line[a] = run[k, a]
            }
            for (a = 2; a <= c; a++) {
                for (b = a; b > 1 && v[b - 1] > v[b]; b--) {
                    t = v[b]; v[b] = v[b - 1]; v[b - 1] = t
                    t = line[b]; line[b] = line[b - 1]; line[b - 1] = t
                }
            }
            split(line[int((c + 1) / 2)], f, " ")
            rps[k] = f[4]; p50[k] = f[5]; p99[k] = f[6]; cpu[k] = f[7]
            flt[k] = f[8]
        }

        printf "%-10s %-21s %5s %7s %8s %6s %6s %6s %6s %6s\n", "gateway",
               "load", "conns", "req/s", "events/s", "p50ms", "p99ms",
               "CPUus", "faults", "RSS MB"
        split("single batch", kinds, " ")
        split("consent mirror openresty batch", gws, " ")
        for (i = 1; i <= 2; i++) {
            for (j = 1; j <= 4; j++) {
                k = kinds[i] SUBSEP gws[j]
                n = kinds[i] == "single" ? 1 : ev
                printf "%-10s %-21s %5d %7.0f %8.0f %6.2f %6.2f %6d " \
                       "%6.1f %6s\n",
                       gws[j], kinds[i] == "single" ? "single ~1 KB track" \
                       : ev "-event batch ~52 KB", conns, rps[k],
                       rps[k] * n, p50[k], p99[k], cpu[k], flt[k],
                       rss[kinds[i], gws[j]]
            }
        }
        gs = rps["single", "consent"]; ms = rps["single", "mirror"]
        os = rps["single", "openresty"]
        gb = rps["batch", "consent"] * ev; mb = rps["batch", "mirror"] * ev
        ob = rps["batch", "openresty"] * ev
        print ""
        printf "target single: consent >= openresty req/s:     %.2fx  %s\n",
               gs / os, (gs >= os ? "met" : "NOT met")
        printf "target batch:  consent >= 2.5x openresty ev/s: %.2fx  %s\n",
               gb / ob, (gb >= 2.5 * ob ? "met" : "NOT met")
        printf "target batch:  consent >= 0.9x mirror ev/s:    %.2fx  %s\n",
               gb / mb, (gb >= 0.9 * mb ? "met" : "NOT met")
        bs = rps["single", "batch"]
        printf "batch mode: events dropped (must be 0): %d single, " \
               "%d batches\n", drop, drop_batch
        printf "target batch mode: >= 3x mirror, >= 3x openresty req/s, " \
               "U <= 0.05: %.2fx, %.2fx, U %.3f  %s\n", bs / ms, bs / os,
               upr_b / (upr_r ? upr_r : 1),
               (bs >= 3 * ms && bs >= 3 * os && drop == 0 \
                && upr_b <= 0.05 * upr_r ? "met" : "NOT met")
        printf "batch: gateway %.0f req/s, mirror %.0f req/s, openresty " \
               "%.0f req/s, upstream requests per event %.3f\n", bs, ms, os,
               upr_b / (upr_r ? upr_r : 1)
        printf "e2e: gateway %.0f req/s, mirror %.0f req/s, ratio %.2f\n",
               gs, ms, gs / ms
    }' "$W/results.txt"
