# SPDX-License-Identifier: GPL-2.0-only
#
# dm-overlaybd: top-level build.
#
#   make            build the format core, obd and the tests (userspace)
#   make kmod       build dm-overlaybd.ko against KDIR (default: running kernel)
#   make check      install what is missing, then run every test suite
#   make check-debug  the VM suite on a KASAN/lockdep/kmemleak debug kernel built
#                   from Debian's linux-source-6.1 (cached), plus a failslab pass
#   make demo       build and serve an example image (see README.md)
#   make bench      benchmarks (ratios against a baseline run alongside)
#   make fuzz       long libFuzzer runs (FUZZ_SECONDS per target)
#   make install    install the tools under $(DESTDIR)$(PREFIX)
#
# Conventions: every lib/*.c goes into libobd.a; every registry/*.c into
# libobdreg.a; every fetchd/*.c into overlaybd-fetchd; every tools/*.c into obd;
# every tests/unit/test_*.c is one test program; every tests/bench/bench_*.c
# one benchmark; every tests/fuzz/fuzz_*.c one libFuzzer target.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
CC ?= gcc
O ?= build
SAN ?= 0

# The version: the top entry of debian/changelog (scripts/version.sh).
VERSION := $(shell scripts/version.sh)
CSTD := -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DOBD_VERSION=\"$(VERSION)\"
WARN := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS ?= -O2 -g
ALL_CFLAGS := $(CSTD) $(WARN) $(CFLAGS) -Iinclude -Ilib -Iregistry -MMD -MP -DOBD_SRCDIR=\"$(CURDIR)\"
ifeq ($(SAN),1)
O := build-san
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDSAN := -fsanitize=address,undefined
endif
LIBS := -llz4 -lzstd -lz -ljson-c -ldevmapper -lpthread -lcrypto -lcurl
FETCHD_LIBS := -luring -lcurl -ljson-c -lcrypto -lssl -lpthread

LIB_SRCS := $(wildcard lib/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(O)/%.o)
TOOL_SRCS := $(wildcard tools/*.c)
TOOL_OBJS := $(TOOL_SRCS:%.c=$(O)/%.o)
TEST_SRCS := $(wildcard tests/unit/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(O)/tests/%)
TEST_HELPER_SRCS := $(filter-out tests/unit/test_%.c,$(wildcard tests/unit/*.c))
TEST_HELPER_OBJS := $(TEST_HELPER_SRCS:%.c=$(O)/%.o)
BENCH_SRCS := $(wildcard tests/bench/bench_*.c)
BENCH_BINS := $(BENCH_SRCS:tests/bench/%.c=$(O)/bench/%)
COMPAT_NAMES := overlaybd-create overlaybd-commit overlaybd-zfile
# registry/: the registry library shared by obd and the daemon (config,
# credentials, auth, URLs, HTTP options, the blob cache's entries) is
# libobdreg.a; fetchd/ is the daemon alone.
REG_SRCS := $(wildcard registry/*.c)
REG_OBJS := $(REG_SRCS:%.c=$(O)/%.o)
FETCHD_SRCS := $(wildcard fetchd/*.c)
FETCHD_OBJS := $(FETCHD_SRCS:%.c=$(O)/%.o)
FETCHD_BIN := $(if $(FETCHD_SRCS),$(O)/overlaybd-fetchd)

.PHONY: all kmod check check-unit check-tools check-san check-fuzz check-vm check-debug \
	demo bench fuzz install clean deps

all: $(O)/obd $(addprefix $(O)/,$(COMPAT_NAMES)) $(FETCHD_BIN) $(TEST_BINS) $(BENCH_BINS)

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(O)/libobd.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(O)/libobdreg.a: $(REG_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(O)/obd: $(TOOL_OBJS) $(O)/libobdreg.a $(O)/libobd.a
	$(CC) $(LDSAN) -o $@ $(TOOL_OBJS) $(O)/libobdreg.a $(O)/libobd.a $(LIBS)

$(O)/overlaybd-fetchd: $(FETCHD_OBJS) $(O)/libobdreg.a $(O)/libobd.a
	$(CC) $(LDSAN) -o $@ $(FETCHD_OBJS) $(O)/libobdreg.a $(O)/libobd.a $(FETCHD_LIBS) $(LIBS)

# The reference tools' names: obd dispatches on argv[0].
$(addprefix $(O)/,$(COMPAT_NAMES)): $(O)/obd
	ln -sf obd $@

$(O)/tests/%: tests/unit/%.c $(TEST_HELPER_OBJS) $(O)/libobdreg.a $(O)/libobd.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDSAN) -o $@ $< $(TEST_HELPER_OBJS) $(O)/libobdreg.a \
		$(O)/libobd.a $(LIBS)

# test_fetchd_*: the daemon's parts, linked with its objects (all but main).
$(O)/tests/test_fetchd_%: tests/unit/test_fetchd_%.c $(TEST_HELPER_OBJS) \
		$(filter-out %/main.o,$(FETCHD_OBJS)) $(O)/libobdreg.a $(O)/libobd.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ifetchd $(LDSAN) -o $@ $< $(TEST_HELPER_OBJS) \
		$(filter-out %/main.o,$(FETCHD_OBJS)) $(O)/libobdreg.a $(O)/libobd.a \
		$(FETCHD_LIBS) $(LIBS)

$(O)/bench/%: tests/bench/%.c $(O)/libobd.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O3 -march=x86-64-v2 -o $@ $< $(O)/libobd.a $(LIBS)

# ---------------------------------------------------------------------------
# Kernel module (kmod/Kbuild compiles the reader half of lib/ into it).
KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build
kmod:
	$(MAKE) -C kmod KDIR=$(KDIR)

# ---------------------------------------------------------------------------
# Tests. scripts/deps.sh installs missing Debian packages (quietly, once).
deps:
	@scripts/deps.sh

check: deps
	@scripts/run-tests.sh all

check-unit: all
	@scripts/run-tests.sh unit

check-san:
	@scripts/run-tests.sh san

check-fuzz:
	@scripts/run-tests.sh fuzz

check-tools: all
	@scripts/run-tests.sh tools

check-vm: deps
	@scripts/run-tests.sh vm

# Not part of check: the kernel build and the run are far over its budget (README).
check-debug:
	@scripts/deps.sh --debug-kernel
	@scripts/run-tests.sh debug

demo: deps
	@scripts/demo.sh

bench: deps
	@scripts/bench.sh

FUZZ_SECONDS ?= 300
fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh long

install: all
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(O)/obd $(DESTDIR)$(BINDIR)/obd
	install -m 0755 $(O)/overlaybd-fetchd $(DESTDIR)$(BINDIR)/overlaybd-fetchd
	for n in $(COMPAT_NAMES); do ln -sf obd $(DESTDIR)$(BINDIR)/$$n; done

clean:
	rm -rf build build-san build-fuzz
	-$(MAKE) -C kmod clean KDIR=$(KDIR) >/dev/null 2>&1

-include $(shell find $(O) -name '*.d' 2>/dev/null)
