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
#   make example-debian  the README's example end to end: a Debian image made with
#                   debootstrap and umoci, obd convert, obd mount, chroot (in the VM)
#   make bench      benchmarks (ratios against a baseline run alongside)
#   make fuzz       long libFuzzer runs (FUZZ_SECONDS per target)
#   make install    install the tools, their unit, config, man pages and
#                   completion under $(DESTDIR)$(PREFIX)
#   make dkms-install  the module's source into /usr/src, then dkms add, build, install
#   make deb        the Debian packages (dpkg-buildpackage: debian/) into build/deb/
#
# Conventions: every lib/core/*.c (the format core, which kmod/Kbuild also
# compiles into the module) and every lib/user/*.c (userspace only) goes into
# libobd.a; every registry/*.c into libobdreg.a; every fetchd/*.c into
# overlaybd-fetchd; every tools/*.c into obd; every tests/unit/test_*.c is one
# test program; every tests/bench/bench_*.c one benchmark; every
# tests/fuzz/fuzz_*.c one libFuzzer target.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
LOCALSTATEDIR ?= /var
# Where this system's systemd and bash-completion look (Debian bookworm:
# /lib/systemd/system, /usr/lib/sysusers.d, /usr/share/bash-completion/completions).
SYSTEMDUNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
SYSUSERSDIR ?= $(shell pkg-config --variable=sysusersdir systemd 2>/dev/null || echo /usr/lib/sysusers.d)
BASHCOMPDIR ?= $(shell pkg-config --variable=completionsdir bash-completion 2>/dev/null || echo $(PREFIX)/share/bash-completion/completions)
CC ?= gcc
O ?= build
SAN ?= 0

# The version: the top entry of debian/changelog (scripts/version.sh).
VERSION := $(shell scripts/version.sh)
CSTD := -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DOBD_VERSION=\"$(VERSION)\"
WARN := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS ?= -O2 -g
ALL_CFLAGS := $(CSTD) $(WARN) $(CPPFLAGS) $(CFLAGS) -Iinclude -Ilib/core -Ilib/user -Iregistry -MMD -MP -DOBD_SRCDIR=\"$(CURDIR)\"
ifeq ($(SAN),1)
O := build-san
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDSAN := -fsanitize=address,undefined
endif
LIBS := -llz4 -lzstd -lz -ljson-c -ldevmapper -lpthread -lcrypto -lcurl
# obd alone: libext2fs builds the TurboOCI fs meta (tools/turbo_fs.c)
OBD_LIBS := -lext2fs -lcom_err
FETCHD_LIBS := -luring -lcurl -ljson-c -lcrypto -lssl -lpthread

LIB_SRCS := $(wildcard lib/core/*.c lib/user/*.c)
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

.PHONY: all tools man kmod check check-unit check-tools check-san check-fuzz check-vm check-debug \
	demo example-debian bench fuzz install install-tools install-dkms-src dkms-install deb clean deps

all: tools $(TEST_BINS) $(BENCH_BINS)

# What the packages ship: obd, its reference-named links, the daemon.
tools: $(O)/obd $(addprefix $(O)/,$(COMPAT_NAMES)) $(FETCHD_BIN)

# Man pages, made from the docs (scripts/mkman.sh): obd(8), overlaybd-fetchd(8),
# dm-overlaybd(4), overlaybd.json(5).
MAN_PAGES := obd.8 overlaybd-fetchd.8 dm-overlaybd.4 overlaybd.json.5
MAN_SRCS := scripts/mkman.sh docs/obd.md fetchd/README.md docs/dm-overlaybd.rst \
	docs/overlaybd.json.md debian/changelog
man: $(O)/man/.stamp
$(O)/man/.stamp: $(MAN_SRCS)
	@mkdir -p $(O)/man
	scripts/mkman.sh $(O)/man
	@touch $@

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
	$(CC) $(LDSAN) $(LDFLAGS) -o $@ $(TOOL_OBJS) $(O)/libobdreg.a $(O)/libobd.a $(LIBS) \
		$(OBD_LIBS)

$(O)/overlaybd-fetchd: $(FETCHD_OBJS) $(O)/libobdreg.a $(O)/libobd.a
	$(CC) $(LDSAN) $(LDFLAGS) -o $@ $(FETCHD_OBJS) $(O)/libobdreg.a $(O)/libobd.a \
		$(FETCHD_LIBS) $(LIBS)

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
# Kernel module (kmod/Kbuild compiles the format core, lib/core/, into it).
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

# Not part of check: it downloads Debian (debootstrap) and takes minutes.
example-debian: deps
	@scripts/example-debian.sh

bench: deps
	@scripts/bench.sh

FUZZ_SECONDS ?= 300
fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh long

# ---------------------------------------------------------------------------
# Installation. install-tools is what the overlaybd-tools package holds; the
# unit's ExecStart names BINDIR. The service config is installed only where
# there is none (the package makes it a conffile).
install: install-tools

install-tools: tools man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(SYSCONFDIR)/overlaybd $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(MANDIR)/man4 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(O)/obd $(DESTDIR)$(BINDIR)/obd
	install -m 0755 $(O)/overlaybd-fetchd $(DESTDIR)$(BINDIR)/overlaybd-fetchd
	for n in $(COMPAT_NAMES); do ln -sf obd $(DESTDIR)$(BINDIR)/$$n; done
	sed 's|/usr/local/bin/|$(BINDIR)/|g' fetchd/overlaybd-fetchd.service \
		> $(DESTDIR)$(SYSTEMDUNITDIR)/overlaybd-fetchd.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/overlaybd-fetchd.service
	install -m 0644 fetchd/overlaybd-fetchd.sysusers $(DESTDIR)$(SYSUSERSDIR)/overlaybd-fetchd.conf
	# the packaged config's cache: the unit's ReadWritePaths= needs it to exist
	install -d -m 0755 $(DESTDIR)$(LOCALSTATEDIR)/cache/overlaybd
	[ -e $(DESTDIR)$(SYSCONFDIR)/overlaybd/overlaybd.json ] || \
		install -m 0644 fetchd/overlaybd.json $(DESTDIR)$(SYSCONFDIR)/overlaybd/overlaybd.json
	install -m 0644 tools/obd.bash-completion $(DESTDIR)$(BASHCOMPDIR)/obd
	for p in $(MAN_PAGES); do \
		install -m 0644 $(O)/man/$$p $(DESTDIR)$(MANDIR)/man$${p##*.}/$$p; done
	# the reference names are documented in obd(8) (create, commit, zfile)
	for n in $(COMPAT_NAMES); do ln -sf obd.8 $(DESTDIR)$(MANDIR)/man8/$$n.8; done

# The module's source as dkms builds it: kmod/ and what kmod/Kbuild compiles in
# (lib/core/, include/); lib/user/ is not the module's. dkms.conf is added by
# whoever registers it with dkms.
DKMS_SRC := /usr/src/dm-overlaybd-$(VERSION)
install-dkms-src:
	install -d $(DESTDIR)$(DKMS_SRC)/kmod $(DESTDIR)$(DKMS_SRC)/lib/core $(DESTDIR)$(DKMS_SRC)/include
	install -m 0644 kmod/*.c kmod/*.h kmod/Kbuild kmod/Makefile $(DESTDIR)$(DKMS_SRC)/kmod/
	install -m 0644 lib/core/*.c lib/core/*.h $(DESTDIR)$(DKMS_SRC)/lib/core/
	install -m 0644 include/*.h $(DESTDIR)$(DKMS_SRC)/include/

dkms-install: install-dkms-src
	sed 's/#MODULE_VERSION#/$(VERSION)/' dkms.conf > $(DESTDIR)$(DKMS_SRC)/dkms.conf
	dkms add -m dm-overlaybd -v $(VERSION)
	dkms build -m dm-overlaybd -v $(VERSION)
	dkms install -m dm-overlaybd -v $(VERSION)

# dpkg-buildpackage wants its products beside the source tree: it builds in a
# copy (git's tracked files) and leaves the .deb files in build/deb/.
deb:
	@OBD_NO_KERNELS=1 scripts/deps.sh
	scripts/mkdeb.sh $(O)/deb

clean:
	rm -rf build build-san build-fuzz
	-$(MAKE) -C kmod clean KDIR=$(KDIR) >/dev/null 2>&1

# The compiler's dependency files, named from the objects and programs (not
# found by name: build/ also holds other trees, such as make example-debian's
# Debian root with its etc/*.d directories).
-include $(LIB_OBJS:.o=.d) $(TOOL_OBJS:.o=.d) $(TEST_HELPER_OBJS:.o=.d) $(REG_OBJS:.o=.d) \
	$(FETCHD_OBJS:.o=.d) $(TEST_BINS:=.d) $(BENCH_BINS:=.d)
