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
              ngx_consent_module/consent_json_str.c

CC         ?= cc
CFLAGS_T   := -O1 -g -Wall -Wextra -Werror -std=c99 -Ingx_consent_module

FUZZ_TIME  ?= 60

.PHONY: all deps run test test-unit test-prove fuzz fuzz-smoke clean

all: $(MODULE)

deps: $(BUILD)/.deps

$(BUILD)/.deps: scripts/deps.sh
	sh scripts/deps.sh
	mkdir -p $(BUILD) && touch $@

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

$(MODULE): $(NGX_BUILD)/objs/Makefile $(SRCS)
	$(MAKE) -C $(NGX_BUILD) -f objs/Makefile modules
	cp $(NGX_BUILD)/objs/ngx_http_consent_module.so $@

run: $(MODULE)
	sh demo/run.sh

test: $(MODULE) test-unit fuzz-smoke test-prove

$(BUILD)/unit: t/unit/test_core.c $(CORE_SRCS) ngx_consent_module/consent_core.h
	$(CC) $(CFLAGS_T) -fsanitize=address,undefined -o $@ t/unit/test_core.c \
	    $(CORE_SRCS)

test-unit: $(BUILD)/.deps $(BUILD)/unit
	$(BUILD)/unit

test-prove: $(MODULE)
	prove -j2 t/

$(BUILD)/fuzz_core: t/fuzz/fuzz_core.c $(CORE_SRCS) \
                   ngx_consent_module/consent_core.h $(BUILD)/.deps
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Ingx_consent_module -o $@ \
	    t/fuzz/fuzz_core.c $(CORE_SRCS)

# the seed corpus stays read-only; new inputs go to build/fuzz-corpus
fuzz: $(BUILD)/fuzz_core
	mkdir -p $(BUILD)/fuzz-corpus
	$(BUILD)/fuzz_core -max_total_time=$(FUZZ_TIME) -max_len=4096 \
	    -print_final_stats=1 $(BUILD)/fuzz-corpus t/fuzz/corpus

fuzz-smoke:
	$(MAKE) fuzz FUZZ_TIME=15

clean:
	rm -rf $(BUILD)
