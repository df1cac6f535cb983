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
# Then the profile scenario (issue 13, docs/profiles.md): the same
# payloads stripped of every consent object (bench/e2e/strip_consent.lua)
# so that each event is routed on its user's profile, through a fourth
# gateway, "profiles" (consent.conf plus consent_profiles on a
# redis-server started here), whose profiles were recorded first by
# posting the original payloads through it, against the plain consent
# gateway with the same consent-less traffic, interleaved in the same
# run; it prints, before the last line:
#
#   profiles: single X req/s vs Y req/s without (ratio R), batch50 ...
#
# E2E_PROFILES=0 skips it (no redis-server needed).
#
# Also before the last line, the batch mode's line, U the upstream
# requests (batches that got 2xx, from its consent_status) per single
# event answered 200:
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
PROFILES=${E2E_PROFILES:-1}
REDIS_PID=""

[ -f "$MODULE" ] || { echo "e2e: $MODULE missing (make)" >&2; exit 1; }
for cmd in wrk curl lua5.4 perl; do
    command -v $cmd > /dev/null \
        || { echo "e2e: $cmd missing (sh bench/deps.sh)" >&2; exit 1; }
done
if [ "$PROFILES" = 1 ] && ! command -v redis-server > /dev/null; then
    echo "e2e: redis-server missing (sh scripts/deps.sh), or E2E_PROFILES=0" >&2
    exit 1
fi
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
        -e "s|@REDIS@|${REDIS_PORT:-0}|" \
        "$(case $2 in /*) echo "$2" ;; *) echo "$E2E/$2" ;; esac)" \
        > "$W/$1/nginx.conf"
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
    if [ -n "$REDIS_PID" ]; then
        kill -TERM "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
    fi
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
[ "$PROFILES" = 1 ] && lua5.4 "$E2E/strip_consent.lua" "$W/payloads" \
    "$W/payloads-nc" $NSINGLE $NBATCH

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

# the profile scenario's gateway: consent.conf plus consent_profiles
# (defaults: timeout=100ms, ttl=395d, prefix=consent:) and a status
# location, on its own redis-server (no persistence)
if [ "$PROFILES" = 1 ]; then
    REDIS_PORT=$(port)
    mkdir -p "$W/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$W/redis" --daemonize no \
        --logfile "$W/redis/redis.log" > /dev/null 2>&1 &
    REDIS_PID=$!
    i=0
    until [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; do
        i=$((i + 1))
        [ $i -lt 200 ] || { echo "e2e: redis-server did not start" >&2;
                            exit 1; }
        sleep 0.05
    done
    sed -e '/include @E2E@\/http.conf;/a\
    consent_profiles 127.0.0.1:@REDIS@;' \
        -e '/location \/v1\/ { consent_ingest; }/a\
        location = /status { consent_status; }' \
        "$E2E/consent.conf" > "$W/profiles.conf.in"
    PORT_profiles=$(port)
    start profiles "$W/profiles.conf.in" "$PORT_profiles" "$DST"
fi

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
    case $2 in
        single) n=$NSINGLE path=/v1/track dir=payloads/single ;;
        batch) n=$NBATCH path=/v1/batch dir=payloads/batch ;;
        psingle) n=$NSINGLE path=/v1/track dir=payloads-nc/single ;;
        pbatch) n=$NBATCH path=/v1/batch dir=payloads-nc/batch ;;
    esac
    wrk -t1 -c"$CONNS" -d"${3}s" --latency -s "$E2E/post.lua" \
        "http://127.0.0.1:$p" -- "$W/$dir" $n $path \
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

# measure KIND FILE "GATEWAY ...": a warm-up run of each gateway, then
# ROUNDS runs of each, interleaved, appended to FILE as
# "kind gateway run req/s p50 p99 cpu faults"; fails on any error
measure() {
    m_kind=$1 m_file=$2 m_gws=$3
    for g in $m_gws; do
        wrk_run "$g" "$m_kind" 1 > /dev/null   # warm-up (JIT, keepalive)
    done
    for r in $(seq "$ROUNDS"); do
        for g in $m_gws; do
            set -- $(wrk_run "$g" "$m_kind" "$SECS")
            echo "  $m_kind $g run $r: $1 req/s, p50 $2 ms, p99 $3 ms," \
                 "worker CPU $6 us and $7 page faults per request," \
                 "non-2xx $4, socket errors $5"
            if [ "$4" != 0 ] || [ "$5" != - ]; then
                echo "e2e: $g had errors, see $W/wrk-$g-$m_kind.txt" >&2
                exit 1
            fi
            echo "$m_kind $g $r $1 $2 $3 $6 $7" >> "$m_file"
        done
    done
}

: > "$W/results.txt"
for kind in single batch; do
    measure "$kind" "$W/results.txt" "$GATEWAYS"
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

# ---- profile scenario ---------------------------------------------------

# status COUNTER: a profile counter of the profiles gateway
prof_counter() {
    curl -s "http://127.0.0.1:$PORT_profiles/status" \
        | awk -v m="$1" '$1 == m { print $2 }'
}

: > "$W/results-prof.txt"
if [ "$PROFILES" = 1 ]; then
    # record: the original payloads (consent-carrying) through it once
    for i in $(seq $NSINGLE); do
        post "$W/payloads/single/$i.json" "$PORT_profiles" /v1/track \
            > /dev/null
    done
    for i in $(seq $NBATCH); do
        post "$W/payloads/batch/$i.json" "$PORT_profiles" /v1/batch \
            > /dev/null
    done
    stored=$(prof_counter 'ngx_consent_profile_records_total{result="stored"}')
    body=$(curl -s -X POST -H 'Content-Type: text/plain' \
           --data-binary "@$W/payloads-nc/single/1.json" \
           "http://127.0.0.1:$PORT_profiles/v1/track")
    case $body in
        *'"profiled":1'*) ;;
        *) echo "e2e: profiles: a consent-less event was not routed on its" \
                "profile: $body" >&2
           exit 1 ;;
    esac
    echo
    echo "profile scenario: $(redis-server --version | sed 's/ sha=.*//'),"\
         "$stored profile keys recorded from the payloads; consent-less" \
         "copies of the same payloads through consent (no store) and" \
         "profiles (each event routed on its user's stored profile)"
    for kind in psingle pbatch; do
        measure "$kind" "$W/results-prof.txt" "consent profiles"
    done
    hit=$(prof_counter 'ngx_consent_profile_lookups_total{result="hit"}')
    miss=$(prof_counter 'ngx_consent_profile_lookups_total{result="miss"}')
    err=$(prof_counter 'ngx_consent_profile_lookups_total{result="error"}')
    rt=$(prof_counter ngx_consent_profile_round_trips_total)
    echo "  profiles gateway: lookups hit $hit, miss $miss, error $err;" \
         "$rt store round trips"
    if [ "${err:-1}" != 0 ] || [ "${hit:-0}" = 0 ]; then
        echo "e2e: profiles: lookups failed or missed (error ${err:-?})," \
             "the figures do not measure enforcement from Redis" >&2
        exit 1
    fi
fi

for g in $GATEWAYS $([ "$PROFILES" = 1 ] && echo profiles); do
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

# the median run (by req/s) of KIND GATEWAY in FILE: "req/s p50 p99"
median() {
    awk -v k="$2" -v g="$3" '$1 == k && $2 == g { print $4, $5, $6 }' "$1" \
        | sort -n | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'
}

: > "$W/profline.txt"
if [ "$PROFILES" = 1 ]; then
    set -- $(median "$W/results-prof.txt" psingle consent) \
           $(median "$W/results-prof.txt" psingle profiles) \
           $(median "$W/results-prof.txt" pbatch consent) \
           $(median "$W/results-prof.txt" pbatch profiles) \
           $(median "$W/results.txt" single consent) \
           $(median "$W/results.txt" batch consent)
    awk -v c="$CONNS" -v ev=$BATCH_EVENTS -v cs="${13}" -v cb="${16}" \
        -v s0="$1" -v s0p99="$3" -v s1="$4" -v s1p99="$6" \
        -v b0="$7" -v b0p99="$9" -v b1="${10}" -v b1p99="${12}" 'BEGIN {
        printf "target profiles: single >= 0.8x without:      %.2fx  %s\n",
               s1 / s0, (s1 >= 0.8 * s0 ? "met" : "NOT met")
        printf "target profiles: batch50 >= 0.8x without:     %.2fx  %s\n",
               b1 / b0, (b1 >= 0.8 * b0 ? "met" : "NOT met")
        printf "target profiles: p99 added < 1 ms (single):   %.2f ms  %s\n",
               s1p99 - s0p99, (s1p99 - s0p99 < 1 ? "met" : "NOT met")
        # the same events carrying the consent they recorded, through
        # the plain gateway (the main measurement): the same routing
        printf "profiles vs the same events carrying their consent: " \
               "single %.2fx (%.0f req/s), batch50 %.2fx (%.0f req/s)\n",
               s1 / cs, cs, b1 / cb, cb
        printf "profiles: single %.0f req/s vs %.0f req/s without (ratio " \
               "%.2f), batch50 %.0f req/s vs %.0f req/s without (ratio " \
               "%.2f), p99 added %.2f ms single, %.2f ms batch50 at %d " \
               "connections\n", s1, s0, s1 / s0, b1, b0, b1 / b0,
               s1p99 - s0p99, b1p99 - b0p99, c }' > "$W/profline.txt"
fi

echo
awk -v ev=$BATCH_EVENTS -v conns=$CONNS -v pf="$W/profline.txt" '
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
        print ""
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
        # the targets and line of the profile scenario (bench/README.md)
        first = 1
        while ((getline l < pf) > 0) {
            if (first) print ""
            first = 0
            print l
        }
        printf "e2e: gateway %.0f req/s, mirror %.0f req/s, ratio %.2f\n",
               gs, ms, gs / ms
    }' "$W/results.txt"
