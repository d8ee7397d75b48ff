#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# debug-kernel.sh: build (once) and cache the debug test kernel of `make check-debug`:
# Debian's own kernel source package (linux-source-6.1, the version of the installed
# linux-headers-6.1.0-*-amd64, else the archive's candidate; nothing else is
# downloaded), x86_64_defconfig with scripts/debug-kernel.config merged on top
# (everything the VM suite needs built in; KASAN, lockdep, kmemleak, debug objects,
# DEBUG_LIST, hung-task/soft-lockup/workqueue watchdogs, failslab).
#
#   scripts/debug-kernel.sh build    # idempotent: builds only if the cache misses
#   scripts/debug-kernel.sh ver      # kernel release, e.g. 6.1.192-obd-debug
#   scripts/debug-kernel.sh root     # <cache>/root: boot/vmlinux-<ver>, lib/modules/<ver>
#   scripts/debug-kernel.sh kdir     # the build tree (O=): make -C kmod KDIR=...
#   scripts/debug-kernel.sh dir      # the cache folder of the current config + source
#
# Cache: OBD_DEBUG_KCACHE (default /var/cache/dm-overlaybd/debug-kernel):
#   src/linux-source-6.1_<pkgver>_all.deb, src/linux-<pkgver>/ (the unpacked source)
#   <key>/ with key = sha256 of the config fragment, the source package version and
#   the recipe below: build/ (O= tree, KDIR), root/, stamp (written last), build.log
# A changed fragment or source version is a new key, hence a rebuild; old keys are
# left for `rm -rf` by hand. OBD_DEBUG_KJOBS: make -j (default 2); the build runs
# under `nice -n 19` (idle CPU only).
set -euo pipefail
ME=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd)
KCD=${OBD_DEBUG_KCACHE:-/var/cache/dm-overlaybd/debug-kernel}
FRAG=$HERE/debug-kernel.config
JOBS=${OBD_DEBUG_KJOBS:-2}
SRCPKG=linux-source-6.1

die() { echo "$ME: $*" >&2; exit 1; }
log() { echo "$ME: $*" >&2; }

# The one change to Debian's source: FAULT_INJECTION_STACKTRACE_FILTER (failslab's
# require-start/require-end, which confine injected failures to allocations with our
# module's code on the stack) says "depends on !X86_64", a 2006 restriction from when
# x86-64 had no reliable stack trace; its code is arch-neutral (stack_trace_save, here
# the ORC unwinder). Changing this recipe changes the cache key.
RECIPE='base=x86_64_defconfig; patch=drop "depends on !X86_64" from FAULT_INJECTION_STACKTRACE_FILTER; cc=gcc-12'

patch_source() {	# srcdir
	local k=$1/lib/Kconfig.debug
	awk '
	/^config FAULT_INJECTION_STACKTRACE_FILTER$/ { inside = 1 }
	/^config / && !/FAULT_INJECTION_STACKTRACE_FILTER/ { inside = 0 }
	inside && /^\tdepends on !X86_64$/ { done = 1; next }
	{ print }
	END { if (!done) exit 3 }' "$k" >"$k.obd" || die "$k: the stacktrace-filter dependency to lift is not there"
	mv "$k.obd" "$k"
}

# Source package version: the one of the installed 6.1 headers (the packaged test
# kernel, scripts/kernels.sh), else the candidate.
src_version() {
	local v hv
	v=$("$HERE/kernels.sh" ver 6.1 2>/dev/null) || v=
	hv=
	[ -z "$v" ] || hv=$(dpkg-query -W -f='${Version}' "linux-headers-$v" 2>/dev/null) || hv=
	if [ -n "$hv" ] && apt-cache show "$SRCPKG=$hv" >/dev/null 2>&1; then
		echo "$hv"
		return
	fi
	hv=$(apt-cache policy "$SRCPKG" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
	case "$hv" in ''|'(none)') die "$SRCPKG is not in the apt lists (apt-get update?)" ;; esac
	echo "$hv"
}

SRCVER=
srcver() {
	[ -n "$SRCVER" ] || SRCVER=$(cat "$KCD/src/version" 2>/dev/null) || SRCVER=$(src_version)
	echo "$SRCVER"
}

key() {
	{ cat "$FRAG"; echo "$SRCPKG=$(srcver)"; echo "$RECIPE"; } | sha256sum | cut -c1-16
}

fetch_source() {	# -> srcdir
	local sv deb sd tmp m
	sv=$(srcver)
	sd=$KCD/src/linux-$sv
	[ -e "$sd/.obd-ready" ] && { echo "$sd"; return; }
	mkdir -p "$KCD/src"
	deb=$KCD/src/${SRCPKG}_${sv}_all.deb
	if [ ! -s "$deb" ]; then
		log "downloading $SRCPKG=$sv"
		(cd "$KCD/src" && apt-get download -q "$SRCPKG=$sv" >"$KCD/src/download.log" 2>&1) ||
			die "apt-get download $SRCPKG=$sv failed, see $KCD/src/download.log"
	fi
	log "unpacking $SRCPKG=$sv"
	tmp=$KCD/src/unpack.$$
	rm -rf "$tmp" "$sd"
	mkdir -p "$tmp"
	# the member as the package names it ("./usr/src/..." in Debian's debs)
	m=$(dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -m1 -E '^(\./)?usr/src/linux-source-[^/]*\.tar\.xz$') ||
		die "$deb holds no usr/src/linux-source-*.tar.xz"
	dpkg-deb --fsys-tarfile "$deb" | tar -xO "$m" | tar -xJ -C "$tmp" || die "cannot unpack $deb"
	mv "$tmp"/linux-source-* "$sd"
	rmdir "$tmp"
	patch_source "$sd"
	touch "$sd/.obd-ready"
	echo "$sv" >"$KCD/src/version"
	echo "$sd"
}

# Every line of the fragment must hold in the final .config: olddefconfig drops a
# symbol whose dependencies are unmet without a word.
verify_config() {	# .config
	local line sym bad=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*)
			grep -qxF "$line" "$1" || { log "config: wanted '$line', got '$(grep -E "^(# )?${line%%=*}[= ]" "$1" || echo unset)'"; bad=1; } ;;
		"# CONFIG_"*" is not set")
			sym=${line#\# }; sym=${sym%% *}
			! grep -q "^$sym=" "$1" || { log "config: wanted $sym off, got '$(grep "^$sym=" "$1")'"; bad=1; } ;;
		esac
	done <"$FRAG"
	[ "$bad" = 0 ] || die "the merged .config differs from scripts/debug-kernel.config (see above)"
}

do_build() {
	local k dir sd b t0 v
	mkdir -p "$KCD"
	exec 9>"$KCD/.lock"
	flock 9
	k=$(key)
	dir=$KCD/$k
	[ -r "$dir/stamp" ] && return 0
	command -v gcc-12 >/dev/null || die "gcc-12 not found (scripts/deps.sh)"
	for t in flex bison bc; do
		command -v $t >/dev/null || die "$t not found (scripts/deps.sh installs it)"
	done
	sd=$(fetch_source)
	b=$dir/build
	mkdir -p "$b"
	log "building $SRCPKG=$(srcver) into $dir (log: $dir/build.log; nice -n 19, -j$JOBS)"
	t0=$(date +%s)
	{
		make -C "$sd" O="$b" CC=gcc-12 HOSTCC=gcc-12 x86_64_defconfig &&
		"$sd/scripts/kconfig/merge_config.sh" -m -O "$b" "$b/.config" "$FRAG" &&
		make -C "$sd" O="$b" CC=gcc-12 HOSTCC=gcc-12 olddefconfig
	} >"$dir/build.log" 2>&1 || die "configuring failed, see $dir/build.log"
	verify_config "$b/.config"
	nice -n 19 make -C "$sd" O="$b" CC=gcc-12 HOSTCC=gcc-12 -j"$JOBS" vmlinux bzImage modules \
		>>"$dir/build.log" 2>&1 || die "kernel build failed, see $dir/build.log"
	v=$(make -s -C "$sd" O="$b" kernelrelease 2>/dev/null)
	[ -n "$v" ] || die "cannot read the kernel release"
	rm -rf "$dir/root"
	mkdir -p "$dir/root/boot"
	# QEMU boots the ELF vmlinux through its PVH entry (CONFIG_PVH), as for the others.
	cp "$b/vmlinux" "$dir/root/boot/vmlinux-$v"
	cp "$b/arch/x86/boot/bzImage" "$dir/root/boot/vmlinuz-$v"
	cp "$b/.config" "$dir/root/boot/config-$v"
	# modules.builtin lets the tests' `modprobe dm-mod`, `loop`, `ext4` succeed.
	make -C "$sd" O="$b" INSTALL_MOD_PATH="$dir/root" DEPMOD=/sbin/depmod modules_install \
		>>"$dir/build.log" 2>&1 || die "modules_install failed, see $dir/build.log"
	rm -f "$dir/root/lib/modules/$v/build" "$dir/root/lib/modules/$v/source"
	depmod -b "$dir/root" "$v" || die "depmod failed"
	echo "$v" >"$dir/ver"
	printf 'source %s=%s\nbuilt %s in %ss (-j%s, nice 19)\n' "$SRCPKG" "$(srcver)" \
		"$(date -u +%FT%TZ)" "$(($(date +%s) - t0))" "$JOBS" >"$dir/stamp"
	log "built $v in $(($(date +%s) - t0)) s"
}

cached_dir() {
	local dir
	dir=$KCD/$(key)
	[ -r "$dir/stamp" ] || die "debug kernel not built for this config and source (run $ME build; see make check-debug)"
	echo "$dir"
}

case "${1:-}" in
build) do_build ;;
ver) d=$(cached_dir); cat "$d/ver" ;;
root) d=$(cached_dir); echo "$d/root" ;;
kdir) d=$(cached_dir); echo "$d/build" ;;
dir) echo "$KCD/$(key)" ;;
*) echo "usage: $ME build | ver | root | kdir | dir" >&2; exit 2 ;;
esac
