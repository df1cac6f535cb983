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
#
# No version is written here: each suite's is what the archive's Sources
# index lists for it now (apt-cache madison).  A suite whose source the
# archive does not serve (neither the .dsc nor the orig tarball) is tested
# the way a Debian machine of that suite would run the module: the
# suite's own nginx binary package with the module built against the
# suite's nginx-dev (/usr/share/nginx/src, conf_flags), both from the
# same Sources/Packages version.  That binary and its libraries (libc,
# libssl, ...) are unpacked with dpkg-deb -x into build/matrix/SUITE-root
# (nothing installed) and run through that root's own ld.so
# (build/matrix/SUITE-root/bin/nginx, a wrapper).
#
# HTTP/3: the client is the curl of the last suite (sid: built with
# ngtcp2/nghttp3), unpacked the same way (build/matrix/SUITE-root/bin/curl);
# the prove suite's t/26-http3.t uses it (CONSENT_TEST_H3_CURL) against
# each nginx built with HTTP/3, and skips where there is none.
#
# Last line: "matrix: 1.22.1 ok, 1.26.3 ok, 1.30.6 ok" (the versions
# found; FAIL for any that failed); exit status 1 when one failed.
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

ARCH=$(dpkg --print-architecture)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)

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

# userland SUITE PACKAGE...: SUITE's binary packages PACKAGE... and their
# dependencies (no recommends), unpacked with dpkg-deb -x into
# $M/SUITE-root, never installed; SUITE-root/bin/NAME runs a program of
# it through the root's own ld.so and libraries (then the system's, for
# what the root lacks: the module's liblua5.4).  Sets BIN_OPTS (the
# suite's binary apt configuration, $M/apt-SUITE) and UROOT.
userland() {
    us=$1; shift
    B="$M/apt-$us"
    UROOT="$M/$us-root"
    mkdir -p "$B/lists/partial" "$B/cache/archives/partial" \
        "$B/sources.list.d"
    : > "$B/sources.list"
    : > "$B/status"
    echo "deb [arch=$ARCH signed-by=$KEYRING] $MIRROR $us main" \
        > "$B/sources.list.d/matrix.list"
    BIN_OPTS="-o Dir::Etc::SourceList=$B/sources.list
              -o Dir::Etc::SourceParts=$B/sources.list.d
              -o Dir::State::Lists=$B/lists
              -o Dir::State::status=$B/status
              -o Dir::Cache=$B/cache
              -o Dir::Etc::Preferences=/dev/null
              -o Dir::Etc::PreferencesParts=$B/sources.list.d
              -o APT::Architectures=$ARCH"
    # shellcheck disable=SC2086
    apt-get $BIN_OPTS -q update > "$B/update.log" 2>&1 \
        || { tail -5 "$B/update.log"; return 1; }
    # shellcheck disable=SC2086
    pkgs=$(apt-cache $BIN_OPTS depends --recurse --no-recommends \
               --no-suggests --no-conflicts --no-breaks --no-replaces \
               --no-enhances "$@" 2>/dev/null \
           | grep -E '^[a-z0-9][a-z0-9.+-]*$' | sort -u)
    rm -rf "$UROOT" "$B/debs" && mkdir -p "$UROOT/bin" "$B/debs"
    # shellcheck disable=SC2086
    (cd "$B/debs" && apt-get $BIN_OPTS -q download $pkgs) \
        > "$B/download.log" 2>&1 \
        || { grep -E '^(Err|E):' "$B/download.log" | head; return 1; }
    for d in "$B"/debs/*.deb; do dpkg-deb -x "$d" "$UROOT" || return 1; done
    ld=$(find "$UROOT/lib" "$UROOT/usr/lib" -type f \
             -name 'ld-linux*.so.[0-9]' 2>/dev/null | head -1)
    [ -n "$ld" ] || { echo "matrix: $us: no ld.so in $UROOT"; return 1; }
    for p in usr/sbin/nginx usr/bin/curl; do
        [ -f "$UROOT/$p" ] || continue
        {
            echo '#!/bin/sh'
            echo "exec \"$ld\" --library-path \"$UROOT/usr/lib/$MA:$UROOT/lib/$MA:/usr/lib/$MA:/lib/$MA\" \"$UROOT/$p\" \"\$@\""
        } > "$UROOT/bin/${p##*/}"
        chmod 755 "$UROOT/bin/${p##*/}"
    done
}

# the HTTP/3 client (t/26-http3.t): the last suite's curl, if it has HTTP3
H3S=$(echo "$SUITES" | awk '{print $NF}')
H3ROOT=""
unset CONSENT_TEST_H3_CURL
if userland "$H3S" curl nginx && "$UROOT/bin/curl" --version 2>/dev/null \
        | grep -qw HTTP3; then
    H3ROOT=$UROOT
    CONSENT_TEST_H3_CURL="$UROOT/bin/curl"
    export CONSENT_TEST_H3_CURL
    echo "matrix: HTTP/3 client: $("$UROOT/bin/curl" --version | head -1 | cut -d' ' -f1-2) of $H3S ($CONSENT_TEST_H3_CURL)"
else
    echo "matrix: HTTP/3 client: none ($H3S's curl lacks HTTP3); t/26-http3.t skips"
fi

# configure flags: the modules the prove suite uses, as a stock build has
FLAGS="--with-compat --with-threads --with-pcre-jit --with-http_ssl_module
       --with-http_v2_module --with-http_realip_module --with-http_slice_module
       --with-http_stub_status_module --with-http_gunzip_module"
CC_OPT='-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -fPIC -D_FORTIFY_SOURCE=2'
LD_OPT='-Wl,-z,relro -Wl,-z,now -fPIC'

# the files apt-get source could not fetch, as "matrix: SUITE: not in the
# archive: FILE (404 Not Found)"; always true
missing() {
    sed -n "s|^E: Failed to fetch .*/\([^/ ]*\)  *\([0-9][0-9]* [^[]*[^ []\).*|matrix: $s: not in the archive: \1 (\2)|p" "$1" \
        | sed 's/%2[bB]/+/g; s/  */ /g'
}

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
    rm -rf "$D" && mkdir -p "$D"
    # 1. the Debian source package; 2. its upstream tarball; 3. neither:
    # the suite's nginx binary package and nginx-dev of the same version
    # shellcheck disable=SC2086
    if (cd "$D" && apt-get $APT_OPTS -q source "nginx=$V") \
            > "$D/source.log" 2>&1; then
        how=source
    elif missing "$D/source.log" && [ -f "$D/nginx_$UV.orig.tar.gz" ]; then
        echo "matrix: $s: no Debian source package; building nginx_$UV.orig.tar.gz (upstream, without Debian's patches)"
        rm -rf "$D/nginx-$UV" && (cd "$D" && tar xzf "nginx_$UV.orig.tar.gz")
        how=source
    else
        echo "matrix: $s: no source in the archive; testing $s's nginx $V binary package with the module built against its nginx-dev $V"
        how=binary
    fi
    if [ $how = source ]; then
        NGINX_BIN="$D/nginx-$UV/objs/nginx"
        MODULE_SO="$D/nginx-$UV/objs/ngx_http_consent_module.so"
        (
            set -e
            cd "$D/nginx-$UV"
            v3=""
            case "$UV" in 1.2[5-9].*|1.[3-9]*) v3=--with-http_v3_module ;; esac
            # shellcheck disable=SC2086
            ./configure --prefix="$D/prefix" $FLAGS $v3 \
                --with-cc-opt="$CC_OPT" --with-ld-opt="$LD_OPT" \
                --add-dynamic-module="$MOD" > "$D/build.log" 2>&1 \
                || { tail -30 "$D/build.log"; exit 1; }
            make -j2 >> "$D/build.log" 2>&1 \
                || { grep -E 'error:|Error [0-9]' "$D/build.log" | head -30; exit 1; }
        )
    else
        NGINX_BIN="$M/$s-root/bin/nginx"
        MODULE_SO="$D/src/objs/ngx_http_consent_module.so"
        (
            set -e
            if [ "$s" != "$H3S" ] || [ -z "$H3ROOT" ]; then
                userland "$s" nginx
            fi
            # shellcheck disable=SC2086
            (cd "$D" && apt-get $BIN_OPTS -q download "nginx-dev=$V") \
                >> "$D/source.log" 2>&1 \
                || { grep -E '^(Err|E):' "$D/source.log"; exit 1; }
            dpkg-deb -x "$D"/nginx-dev_*.deb "$D/dev"
            cp -r "$D/dev/usr/share/nginx/src" "$D/src"
            have=$("$NGINX_BIN" -v 2>&1)
            [ "$have" = "nginx version: nginx/$UV" ] \
                || { echo "matrix: $s: $NGINX_BIN: $have"; exit 1; }
            cd "$D/src"
            # as Debian's nginx_mod build system does: configure nginx-dev's
            # tree with the stock binary's flags (conf_flags), make modules
            # shellcheck disable=SC2016
            bash -c '. ./conf_flags && exec ./configure "${NGX_CONF_FLAGS[@]}" "$@"' \
                configure --with-cc-opt="$CC_OPT" --with-ld-opt="$LD_OPT" \
                --add-dynamic-module="$MOD" > "$D/build.log" 2>&1 \
                || { tail -30 "$D/build.log"; exit 1; }
            make -j2 -f objs/Makefile modules >> "$D/build.log" 2>&1 \
                || { grep -E 'error:|Error [0-9]' "$D/build.log" | head -30; exit 1; }
        )
    fi && {
        echo "matrix: $s: built $MODULE_SO; prove against $NGINX_BIN"
        cd "$ROOT" && TEST_NGINX_BINARY="$NGINX_BIN" \
            CONSENT_TEST_MODULE="$MODULE_SO" \
            prove -j2 t/ > "$D/prove.log" 2>&1
    } && result=ok
    [ $result = ok ] || { failed=1; tail -25 "$D/prove.log" 2>/dev/null; }
    [ -f "$D/prove.log" ] && grep -E '^t/26-http3\.t' "$D/prove.log" \
        | sed "s/^/matrix: $s: /"
    echo "matrix: $s: nginx $UV $result"
    summary="$summary, $UV $result"
done

echo "matrix: ${summary#, }"
exit $failed
