#!/bin/sh
# make bench-core: the C core (bench_core.c), the same work in Lua 5.4 +
# lua-cjson (bench_core.lua) on the same inputs, and the memchr / strlen
# ceilings, in one run.  See bench/README.md.
#
#   BENCH_SECONDS=0.5   time per measurement (each is the best of 3)
#
# The last line is "core: X GB/s, lua-cjson: Y GB/s, ceiling: Z GB/s":
# the 500 KB batch through the C core, through lua-cjson, and memchr over
# the same 500 KB buffer (cache-resident; the 64 MB memory figure is
# printed above it).
set -e
cd "$(dirname "$0")/.."

BIN=${BENCH_BIN:-build/bench_core}
OUT=build/bench
SECS=${BENCH_SECONDS:-0.5}

mkdir -p "$OUT"

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), $(uname -r)"
echo

"$BIN" "$OUT" "$SECS" | tee "$OUT/core.txt"
echo
lua5.4 bench/bench_core.lua "$OUT" "$SECS" | tee "$OUT/lua.txt"
echo

get() {
    sed -n "s/^RESULT.* $2=\([^ ]*\).*/\1/p" "$1"
}

for k in delivered delivered2500 delivered_single; do
    c=$(get "$OUT/core.txt" $k)
    l=$(get "$OUT/lua.txt" $k)
    if [ "$c" != "$l" ]; then
        echo "bench: core and lua-cjson disagree on $k: $c vs $l" >&2
        exit 1
    fi
done

awk -v core="$(get "$OUT/core.txt" core)" \
    -v core2500="$(get "$OUT/core.txt" core2500)" \
    -v single="$(get "$OUT/core.txt" single)" \
    -v scan="$(get "$OUT/core.txt" scan)" \
    -v eps="$(get "$OUT/core.txt" eps)" \
    -v eps1="$(get "$OUT/core.txt" eps_single)" \
    -v memchr="$(get "$OUT/core.txt" memchr)" \
    -v strlen="$(get "$OUT/core.txt" strlen)" \
    -v mem64="$(get "$OUT/core.txt" memchr64m)" \
    -v lua="$(get "$OUT/lua.txt" lua)" \
    -v lua2500="$(get "$OUT/lua.txt" lua2500)" \
    -v luasingle="$(get "$OUT/lua.txt" luasingle)" \
    -v leps="$(get "$OUT/lua.txt" eps)" '
BEGIN {
    print "summary: GB/s of request body, one core, best of 3"
    printf "  %-22s %8s %10s %7s\n", "", "core", "lua-cjson", "ratio"
    printf "  %-22s %8.2f %10.3f %6.0fx\n", "batch 500 KB", core, lua, core / lua
    printf "  %-22s %8.2f %10.3f %6.0fx\n", "batch 2500 events", core2500, lua2500, core2500 / lua2500
    printf "  %-22s %8.2f %10.3f %6.0fx\n", "single 1 KB event", single, luasingle, single / luasingle
    printf "  events/s, 500 KB batch: core %.2f M, lua-cjson %.3f M\n", eps / 1e6, leps / 1e6
    printf "  single events/s: core %.2f M\n", eps1 / 1e6
    printf "  scanner alone, 500 KB batch: %.2f GB/s\n", scan
    printf "  ceiling, memchr 500 KB (cache): %.1f GB/s, core at %.1f%%\n", memchr, 100 * core / memchr
    printf "  ceiling, strlen 500 KB (cache): %.1f GB/s\n", strlen
    printf "  ceiling, memchr 64 MB (memory): %.1f GB/s, core at %.1f%%\n", mem64, 100 * core / mem64
    printf "core: %.2f GB/s, lua-cjson: %.3f GB/s, ceiling: %.2f GB/s\n", core, lua, memchr
}'
