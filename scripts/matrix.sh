#!/bin/sh
# make matrix: the module against the nginx of Debian bookworm (1.22.x),
# trixie (1.26.x) and sid (1.30.x or whatever sid has), each built from
# its Debian source package, and the prove suite against each.
#
#   sh scripts/matrix.sh [suite ...]        (default: bookworm trixie sid)
#
# The sources come from Debian's archive by `apt-get source nginx=VERSION`
# through an apt configuration of this script's own (build/matrix/apt:
# its sources list with deb-src lines for the suites, its lists and
# cache), so the system's apt sources are never touched.  The archive's
# address is the one the system's own apt sources use.  For each suite:
# build/matrix/SUITE/nginx-VERSION/ (Debian's patches applied by
# dpkg-source), configured with --with-compat and the modules the tests
# use (+ HTTP/3 from 1.25 on), --add-dynamic-module=. ; then
# TEST_NGINX_BINARY=its objs/nginx CONSENT_TEST_MODULE=its .so prove -j2 t/
# (t/lib/ConsentTest.pm).  Logs: build/matrix/SUITE/{build,prove}.log.
# Last line: "matrix: 1.22.1 ok, 1.26.3 ok, 1.30.0 ok" (FAIL for any that
# failed); exit status 1 when one failed.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# the module's source tree (default: this repository)
MOD=${MATRIX_MODULE_DIR:-$ROOT}
M="$ROOT/build/matrix"
A="$M/apt"
SUITES=${*:-bookworm trixie sid}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# the archive the system's apt already uses (deb822 or one-line sources)
MIRROR=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
         | sed -n 's/^URIs: *\([^ ]*\).*/\1/p' | grep -v -- '-security' | head -1)
[ -n "$MIRROR" ] || MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
         2>/dev/null | sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' \
         | grep -v -- '-security' | head -1)
[ -n "$MIRROR" ] || { echo "matrix: no Debian archive in the apt sources"; exit 1; }

mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/sources.list.d"
: > "$A/sources.list"
for s in $SUITES; do
    echo "deb-src [signed-by=$KEYRING] $MIRROR $s main"
done > "$A/sources.list.d/matrix.list"
APT_OPTS="-o Dir::Etc::SourceList=$A/sources.list
          -o Dir::Etc::SourceParts=$A/sources.list.d
          -o Dir::State::Lists=$A/lists
          -o Dir::Cache=$A/cache
          -o Dir::Etc::Preferences=/dev/null
          -o Dir::Etc::PreferencesParts=$A/sources.list.d
          -o APT::Get::Only-Source=true"

echo "matrix: apt-get update (deb-src $SUITES)"
# shellcheck disable=SC2086
apt-get $APT_OPTS -q update > "$M/apt-update.log" 2>&1 \
    || { cat "$M/apt-update.log"; echo "matrix: FAIL (apt-get update)"; exit 1; }

# configure flags: the modules the prove suite uses, as a stock build has
FLAGS="--with-compat --with-threads --with-pcre-jit --with-http_ssl_module
       --with-http_v2_module --with-http_realip_module --with-http_slice_module
       --with-http_stub_status_module --with-http_gunzip_module"

summary=""
failed=0
for s in $SUITES; do
    D="$M/$s"
    # the suite's version: madison lists "nginx | VERSION | URI SUITE/main Sources"
    # shellcheck disable=SC2086
    V=$(apt-cache $APT_OPTS madison nginx 2>/dev/null \
        | awk -F' *\\| *' -v s=" $s/" 'index($3, s) && /Sources/ {print $2; exit}')
    if [ -z "$V" ]; then
        echo "matrix: $s: no nginx source package"
        summary="$summary, $s FAIL"; failed=1; continue
    fi
    UV=${V#*:}; UV=${UV%%-*}; UV=${UV%%+*}   # 1.26.3-3+deb13u1 -> 1.26.3
    echo "matrix: $s: nginx $V"
    result=FAIL
    (
        set -e
        rm -rf "$D" && mkdir -p "$D" && cd "$D"
        # shellcheck disable=SC2086
        if ! apt-get $APT_OPTS -q source "nginx=$V" > "$D/source.log" 2>&1; then
            # the archive may lack the .dsc / .debian.tar.xz while it has
            # the upstream tarball (nginx_UV.orig.tar.gz, nginx.org's
            # release): build that, without Debian's patches, and say so
            grep -E '^(Err|E):' "$D/source.log"
            [ -f "nginx_$UV.orig.tar.gz" ] || exit 1
            echo "matrix: $s: no Debian source package; building nginx_$UV.orig.tar.gz (upstream, without Debian's patches)"
            rm -rf "nginx-$UV" && tar xzf "nginx_$UV.orig.tar.gz"
            [ -d "nginx-$UV" ] || exit 1
        fi
        cd "$D/nginx-$UV"
        v3=""
        case "$UV" in 1.2[5-9].*|1.[3-9]*) v3=--with-http_v3_module ;; esac
        # shellcheck disable=SC2086
        ./configure --prefix="$D/prefix" $FLAGS $v3 \
            --with-cc-opt='-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -fPIC -D_FORTIFY_SOURCE=2' \
            --with-ld-opt='-Wl,-z,relro -Wl,-z,now -fPIC' \
            --add-dynamic-module="$MOD" > "$D/build.log" 2>&1 \
            || { tail -30 "$D/build.log"; exit 1; }
        make -j2 >> "$D/build.log" 2>&1 \
            || { grep -E 'error:|Error [0-9]' "$D/build.log" | head -30; exit 1; }
    ) && {
        echo "matrix: $s: built $D/nginx-$UV/objs/nginx and the module; prove"
        cd "$ROOT" && TEST_NGINX_BINARY="$D/nginx-$UV/objs/nginx" \
            CONSENT_TEST_MODULE="$D/nginx-$UV/objs/ngx_http_consent_module.so" \
            prove -j2 t/ > "$D/prove.log" 2>&1
    } && result=ok
    [ $result = ok ] || { failed=1; tail -25 "$D/prove.log" 2>/dev/null; }
    echo "matrix: $s: nginx $UV $result"
    summary="$summary, $UV $result"
done

echo "matrix: ${summary#, }"
exit $failed
