#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# deps.sh: install the Debian packages needed to build, test, demo and benchmark
# dm-overlaybd, then cache the two test kernels (scripts/kernels.sh fetch).
# Quiet and idempotent: apt runs only when something is missing, into a log file.
#
# Environment: OBD_DEPS_LOG (default /var/log/dm-overlaybd-deps.log, or /tmp if
# /var/log is not writable), OBD_KCACHE (see kernels.sh), OBD_NO_KERNELS=1 skips
# the kernel fetch. With --debug-kernel (make check-debug) it also installs what
# building the debug kernel takes (scripts/debug-kernel.sh: flex, bison, bc, libelf-dev).
set -euo pipefail

ME=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd)
die() { echo "$ME: $*" >&2; exit 1; }

PKGS=(
	# build: userspace, format core, kernel module (sparse for C=1, pahole for 6.12 BTF)
	build-essential gcc-12 pkg-config clang libclang-rt-14-dev
	liblz4-dev libzstd-dev zlib1g-dev libjson-c-dev libdevmapper-dev
	libcurl4-openssl-dev liburing-dev libssl-dev libext2fs-dev
	sparse dwarves libelf1 dkms linux-headers-amd64
	# VM tests: kernel runner, guest userspace (dmsetup, losetup, mkfs, modprobe)
	busybox-static qemu-system-x86 qemu-utils cpio xz-utils zstd kmod
	dmsetup e2fsprogs util-linux fio
	# TurboOCI erofs meta layers (tests/tools/turbo-erofs.py: mkfs.erofs, fsck.erofs)
	erofs-utils
	# subvolumes whose files share an inode number (tests/vm/59-kernel-stalls.sh)
	btrfs-progs
	# tests, demo, bench drivers; kernels.sh needs apt + dpkg (always present)
	python3 curl ca-certificates
	# remote layers: a real registry, its clients, htpasswd and a test CA
	docker-registry skopeo umoci apache2-utils openssl
	# the exporter test: promtool check metrics
	prometheus
	# the service test: systemd-analyze security on the unit, strace for its SystemCallFilter
	systemd strace
	# make deb, make man and the package test (scripts/mkdeb.sh, mkman.sh, pkg-check.sh)
	debhelper dh-dkms lintian go-md2man python3-docutils man-db bash-completion
)

case "${1:-}" in
'') ;;
--debug-kernel) PKGS+=(flex bison bc libelf-dev) ;;
*) die "usage: $ME [--debug-kernel]" ;;
esac

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages)"

missing=()
for p in "${PKGS[@]}"; do
	# db:Status-Abbrev is "ii " for an installed package.
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	[ "${st:0:2}" = ii ] || missing+=("$p")
done

LOG=${OBD_DEPS_LOG:-/var/log/dm-overlaybd-deps.log}
{ : >>"$LOG"; } 2>/dev/null || LOG=/tmp/dm-overlaybd-deps.log

if [ ${#missing[@]} -gt 0 ]; then
	{
		echo "== $(date -u +%FT%TZ) installing: ${missing[*]}"
		apt-get update -q &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	} >>"$LOG" 2>&1 || die "apt-get failed installing ${missing[*]}; see $LOG"
	echo "deps: installed ${#missing[@]} package(s): ${missing[*]} (log: $LOG)"
else
	echo "deps: all ${#PKGS[@]} packages present"
fi

if [ "${OBD_NO_KERNELS:-0}" != 1 ]; then
	"$HERE/kernels.sh" fetch >>"$LOG" 2>&1 || {
		tail -n 5 "$LOG" >&2
		die "scripts/kernels.sh fetch failed; see $LOG"
	}
fi
