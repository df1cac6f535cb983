# ngx_consent: build the dynamic module against the installed Debian nginx,
# run the demo, run the tests.

SHELL      := /bin/bash
NGX_SRC    := /usr/share/nginx/src
BUILD      := build
NGX_BUILD  := $(BUILD)/nginx
MODULE     := $(BUILD)/ngx_http_consent_module.so
SRCS       := $(wildcard ngx_consent_module/*.c ngx_consent_module/*.h)
CORE_SRCS  := ngx_consent_module/consent_json.c \
              ngx_consent_module/consent_event.c \
              ngx_consent_module/consent_split.c \
              ngx_consent_module/consent_policy.c \
              ngx_consent_module/consent_json_str.c \
              ngx_consent_module/consent_prefs.c \
              ngx_consent_module/consent_profile.c

CC         ?= cc
CFLAGS_T   := -O1 -g -Wall -Wextra -Werror -std=c99 -Ingx_consent_module

FUZZ_TIME  ?= 60

.PHONY: all deps npm-deps run test test-unit test-prove fuzz fuzz-smoke clean \
        fuzz-profile

all: $(MODULE)

deps: $(BUILD)/.deps

$(BUILD)/.deps: scripts/deps.sh
	sh scripts/deps.sh
	mkdir -p $(BUILD) && touch $@

# npm packages, pinned in package.json and package-lock.json: Segment's
# analytics.js (@segment/analytics-next) for the demo page and the
# browser tests, playwright-core to drive Debian's chromium in them
# (docs/browser.md).  npm ci installs exactly the lock file's versions.
NPM_STAMP := node_modules/.package-lock.json

npm-deps: $(NPM_STAMP)

$(NPM_STAMP): package.json package-lock.json $(BUILD)/.deps
	npm ci --no-audit --no-fund
	touch $@

# configure once with the flags Debian's nginx was built with
# (--with-compat), so the module loads into the stock /usr/sbin/nginx
$(NGX_BUILD)/objs/Makefile: config $(BUILD)/.deps
	rm -rf $(NGX_BUILD) && mkdir -p $(BUILD) && cp -r $(NGX_SRC) $(NGX_BUILD)
	cd $(NGX_BUILD) && source ./conf_flags && ./configure \
	    "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt='-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -fPIC -D_FORTIFY_SOURCE=2' \
	    --with-ld-opt='-Wl,-z,relro -Wl,-z,now -fPIC' \
	    --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }

# installed by renaming a new file over the old one: a running nginx keeps
# its mapping of the old one (cp over it crashed running workers)
$(MODULE): $(NGX_BUILD)/objs/Makefile $(SRCS)
	$(MAKE) -C $(NGX_BUILD) -f objs/Makefile modules
	cp $(NGX_BUILD)/objs/ngx_http_consent_module.so $@.tmp && mv -f $@.tmp $@

run: $(MODULE) npm-deps
	sh demo/run.sh

test: $(MODULE) test-unit test-json test-lua fuzz-smoke test-prove \
      test-memcheck test-valgrind soak

$(BUILD)/unit: t/unit/test_core.c $(CORE_SRCS) ngx_consent_module/consent_core.h
	$(CC) $(CFLAGS_T) -fsanitize=address,undefined -o $@ t/unit/test_core.c \
	    $(CORE_SRCS)

test-unit: $(BUILD)/.deps $(BUILD)/unit
	$(BUILD)/unit

test-prove: $(MODULE) npm-deps
	prove -j2 t/

$(BUILD)/fuzz_core: t/fuzz/fuzz_core.c t/json/test_alloc.h t/fuzz/fuzz_check.h \
                   $(CORE_SRCS) ngx_consent_module/consent_core.h $(BUILD)/.deps
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Ingx_consent_module -o $@ \
	    t/fuzz/fuzz_core.c $(CORE_SRCS)

# the seed corpus stays read-only; new inputs go to build/fuzz-corpus
fuzz: $(BUILD)/fuzz_core
	mkdir -p $(BUILD)/fuzz-corpus
	$(BUILD)/fuzz_core -max_total_time=$(FUZZ_TIME) -max_len=4096 \
	    -print_final_stats=1 $(BUILD)/fuzz-corpus t/fuzz/corpus

# consent_profile.c on its own (t/fuzz/fuzz_profile.c): timestamps,
# RESP2, the stored value
FUZZ_PROFILE_TIME ?= 60

$(BUILD)/fuzz_profile: t/fuzz/fuzz_profile.c t/json/test_alloc.h \
                      t/fuzz/fuzz_check.h \
                      $(CORE_SRCS) ngx_consent_module/consent_core.h \
                      $(BUILD)/.deps
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Ingx_consent_module -o $@ \
	    t/fuzz/fuzz_profile.c $(CORE_SRCS)

fuzz-profile: $(BUILD)/fuzz_profile
	mkdir -p $(BUILD)/fuzz-profile-corpus
	$(BUILD)/fuzz_profile -max_total_time=$(FUZZ_PROFILE_TIME) \
	    -max_len=1024 -print_final_stats=1 $(BUILD)/fuzz-profile-corpus \
	    t/fuzz/corpus-profile

fuzz-smoke:
	$(MAKE) fuzz FUZZ_TIME=15
	$(MAKE) fuzz-profile FUZZ_PROFILE_TIME=10

clean:
	rm -rf $(BUILD)

# standalone Lua tests of the shipped CMP mappings (lua/consent, t/lua)
.PHONY: test-lua
test-lua:
	lua5.4 t/lua/run.lua

# JSON conformance corpus (t/json): y_/n_/i_ files, truncations, and the
# scanner (SSE2 and portable builds) compared with the reference one
.PHONY: test-json
$(BUILD)/run_corpus: t/json/run_corpus.c t/json/ref_json.c t/json/ref_json.h \
                     t/json/test_alloc.h \
                     t/json/portable_json.c ngx_consent_module/consent_json.c \
                     ngx_consent_module/consent_core.h
	mkdir -p $(BUILD)
	$(CC) $(CFLAGS_T) -It/json -fsanitize=address,undefined -o $@ \
	    t/json/run_corpus.c t/json/ref_json.c t/json/portable_json.c \
	    ngx_consent_module/consent_json.c

test-json: $(BUILD)/.deps $(BUILD)/run_corpus
	$(BUILD)/run_corpus t/json

# core benchmark (bench/README.md): the C core, the same work in Lua 5.4 +
# lua-cjson, memchr/strlen ceilings; built with the module's flags
.PHONY: bench-core
BENCH_CFLAGS := -g -O2 -fstack-protector-strong -fPIC -D_FORTIFY_SOURCE=2 \
                -Wall -Wextra -std=gnu99 -Ingx_consent_module -Ibench

$(BUILD)/bench_core: bench/bench_core.c bench/gen_batch.c bench/gen_batch.h \
                     $(CORE_SRCS) ngx_consent_module/consent_core.h
	mkdir -p $(BUILD)
	$(CC) $(BENCH_CFLAGS) -o $@ bench/bench_core.c bench/gen_batch.c \
	    $(CORE_SRCS)

bench-core: $(BUILD)/.deps $(BUILD)/bench_core
	sh bench/core.sh

# ---------------------------------------------------------------------
# memcheck: the prove suite with an AddressSanitizer build of the module
# preloaded into the stock nginx (README, "Testing").  build/asan is a
# second nginx tree configured like the one above (same Debian flags)
# with -fsanitize=address; t/asan/ngx_palloc.h and ngx_buf.h wrap the
# nginx headers there so that each pool allocation the module makes is
# its own malloc() chunk (red zones; freed by a pool cleanup), otherwise
# an overflow inside a pool block would go unseen.  nginx's own sources
# are not in nginx-dev, hence the preload (libasan) instead of an ASan
# nginx binary (gcc's libasan, hence CC=gcc).  t/lib/ConsentTest.pm
# sets ASAN_OPTIONS (a report file per process in the test prefix, leak
# checking on) and fails a test on any report, alert or crash.  About
# 40 s on 2 cores, so `make test` runs it whole.
.PHONY: asan test-memcheck
ASAN_BUILD   := $(BUILD)/asan
ASAN_SRC     := $(ASAN_BUILD)/nginx
ASAN_MODULE  := $(ASAN_BUILD)/ngx_http_consent_module.so
ASAN_CC_OPT  := -I$(CURDIR)/t/asan -g -O1 -fno-omit-frame-pointer \
                -fsanitize=address,undefined -fPIC
ASAN_LD_OPT  := -fsanitize=address,undefined -fPIC
ASAN_PRELOAD := $(shell gcc -print-file-name=libasan.so)

$(ASAN_SRC)/objs/Makefile: config $(BUILD)/.deps $(wildcard t/asan/*.h)
	rm -rf $(ASAN_SRC) && mkdir -p $(ASAN_BUILD) \
	    && cp -r $(NGX_SRC) $(ASAN_SRC)
	cd $(ASAN_SRC) && source ./conf_flags && CC=gcc ./configure \
	    "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt='$(ASAN_CC_OPT)' --with-ld-opt='$(ASAN_LD_OPT)' \
	    --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }

$(ASAN_MODULE): $(ASAN_SRC)/objs/Makefile $(SRCS)
	$(MAKE) -C $(ASAN_SRC) -f objs/Makefile modules
	cp $(ASAN_SRC)/objs/ngx_http_consent_module.so $@.tmp && mv -f $@.tmp $@

asan: $(ASAN_MODULE)

test-memcheck: $(ASAN_MODULE) npm-deps
	CONSENT_TEST_MODULE=$(CURDIR)/$(ASAN_MODULE) \
	CONSENT_TEST_PRELOAD=$(ASAN_PRELOAD) \
	CONSENT_TEST_ASAN=1 prove -j2 t/

# ---------------------------------------------------------------------
# soak (bench/README.md, "Soak"): 10^5 mixed requests (after 10^4 of
# warm-up) against the stock nginx with the module, one worker; fails on
# a crash, an unexpected 5xx or worker VmRSS growth over 1 MB.  About
# 15 s, so `make test` runs it.  SOAK_REQUESTS, SOAK_WARMUP, SOAK_CONNS,
# SOAK_MAX_GROWTH_KB: see bench/soak.sh.
.PHONY: soak
soak: $(BUILD)/.deps $(MODULE)
	sh bench/soak.sh

# ---------------------------------------------------------------------
# end-to-end benchmark (bench/README.md, "End-to-end"): the gateway,
# nginx's mirror fan-out and the same rules in OpenResty, driven by wrk
# in one run on loopback.  bench/deps.sh installs what it needs on top
# of the project's packages (libnginx-mod-http-lua, wrk, linux-perf).
# E2E_SECONDS, E2E_ROUNDS, E2E_CONNS, E2E_PERF=1, E2E_NO_TRIM=1: see
# bench/e2e.sh.
.PHONY: bench
bench: $(MODULE)
	sh bench/deps.sh
	sh bench/e2e.sh

# ---------------------------------------------------------------------
# valgrind: the prove suite once more with every nginx process (stock
# binary, normal module) under valgrind's memcheck, which sees what ASan
# does not: branches on uninitialised memory.  No leak check (the ASan
# run has it).  About 90 s on 2 cores, so `make test` runs it.
.PHONY: test-valgrind
test-valgrind: $(BUILD)/.deps $(MODULE) npm-deps
	CONSENT_TEST_VALGRIND=1 prove -j2 t/

# ---------------------------------------------------------------------
# Debian package (docs/install.md): build/libnginx-mod-http-consent_
# VERSION_ARCH.deb, built by dpkg-buildpackage from debian/ with nginx-dev's
# dh-sequence-nginx (as Debian builds its libnginx-mod-* packages) in a
# copy of the tree under build/deb, then checked by lintian.  make test-deb
# installs it on this machine's stock nginx, runs a gateway with it and
# removes it again (scripts/test-deb.sh); not part of make test.
.PHONY: deb lintian test-deb
DEB_VERSION := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
DEB_ARCH    := $(shell dpkg --print-architecture)
DEB         := $(BUILD)/libnginx-mod-http-consent_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_DEPS    := debhelper dpkg-dev lintian nginx nginx-dev liblua5.4-dev lua-cjson \
               pkg-config zlib1g-dev libpcre2-dev libssl-dev

$(BUILD)/.deps-deb: scripts/deps.sh
	sh scripts/deps.sh $(DEB_DEPS)
	mkdir -p $(BUILD) && touch $@

deb: $(DEB)

$(DEB): $(BUILD)/.deps-deb config $(SRCS) $(wildcard debian/* debian/*/*) \
        $(wildcard lua/consent/*.lua lua/examples/*.lua) README.md docs/install.md
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/src
	git ls-files -co --exclude-standard \
	    | grep -v -e '^build/' -e '^node_modules/' \
	    | while read -r f; do [ -e "$$f" ] && echo "$$f"; done \
	    | tar -cf - -T - | tar -xf - -C $(BUILD)/deb/src
	cd $(BUILD)/deb/src && dpkg-buildpackage -b -us -uc > ../build.log 2>&1 \
	    || { tail -40 ../build.log; exit 1; }
	cp $(BUILD)/deb/$(notdir $(DEB)) $@
	dpkg-deb -I $@ | sed -n '/Package:/,$$p'
	dpkg-deb -c $@ | awk '{print $$6, $$7, $$8}'
	@echo "deb: $@"

lintian: $(DEB)
	lintian --info --display-info --pedantic $(BUILD)/deb/*.changes

test-deb: $(DEB)
	sh scripts/test-deb.sh $(DEB)

# ---------------------------------------------------------------------
# matrix (docs/install.md): nginx of bookworm, trixie and sid, each with
# the module: built from the suite's Debian source package (or its orig
# tarball), or, where the archive has neither, the suite's own nginx
# binary with the module built against its nginx-dev; the prove suite
# against each, t/26-http3.t with sid's curl (scripts/matrix.sh; about 10
# minutes).  Not part of make test.
.PHONY: matrix
matrix: $(BUILD)/.deps $(BUILD)/.deps-deb npm-deps
	sh scripts/matrix.sh
