#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# make example-debian: the README's end-to-end example with a real Debian
# image, checked (issue #21). Not part of make check: it downloads Debian
# from its archive and takes minutes.
#
#   scripts/example-debian.sh               the whole job: the image on the
#                                           host, the kernel part in the test VM
#   scripts/example-debian.sh --fresh       the same, after removing the cache
#   scripts/example-debian.sh --kernel-part CACHE [WORK]
#                                           only the kernel part (needs root and
#                                           dm-overlaybd; in the VM WORK is the
#                                           scratch disk, elsewhere a directory)
#
# Host part (cached in build/example-debian, so a rerun goes straight to the VM):
#   - debootstrap --variant=minbase bookworm rootfs http://deb.debian.org/debian
#   - an OCI image layout made with umoci, two layers: layer 1 the debootstrap
#     root as it is (umoci insert), layer 2 what a Dockerfile's
#     "RUN apt-get update && apt-get install hello && apt-get clean && rm -rf
#     /var/lib/apt/lists/*" changes (umoci unpack, chroot, umoci repack): the
#     package's files, dpkg's database, and whiteouts for the .deb files and
#     package lists that debootstrap left
#   - reference listings (tests/vm/tree_manifest.py) of the debootstrap root and
#     of the final tree: every entry's type, mode, owner, mtime, link target,
#     device numbers, xattrs, and every regular file's size, sha256 and
#     hard-link group
# Kernel part, in the test VM (Debian 6.1 by default; OBD_EXAMPLE_KERNELS="6.1
# 6.12" for both), on a scratch disk:
#   - obd convert oci:CACHE/oci:bookworm debian-obd/
#   - obd mount debian-obd/config.v1.json DIR (read-only): chroot DIR runs
#     cat /etc/debian_version, apt-get --version and hello; the tree equals
#     the final tree's listing; obd umount
#   - obd mount of layer 1 alone: the tree equals the debootstrap root
#   - obd mount --rw RWDIR: writes through the overlayfs (a file, dpkg --purge
#     hello) land in RWDIR/fs; mounted again with the same RWDIR they are
#     still there; the image itself is unchanged
#   - nothing left: no device, mount or obd mount record
#
# Environment: OBD_EXAMPLE_DIR (cache, default build/example-debian),
# OBD_EXAMPLE_MIRROR (default http://deb.debian.org/debian), OBD_EXAMPLE_KERNELS
# (default 6.1), OBD_EXAMPLE_TIMEOUT (VM seconds, default 2400).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
obd=$top/build/obd
suite=bookworm
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "example-debian: $*" >&2; exit 1; }
manifest() { python3 "$top/tests/vm/tree_manifest.py" "$1" --mtime-s; }

# The directories the top layer changes without an entry of its own: a file, a
# link or a whiteout in them, or a directory that is new. GNU tar leaves the
# time of the change as their mtime (obd convert says so in docs/obd.md; umoci
# keeps the old one), so their mtime is the conversion's.
changed_dirs() {
	python3 - "$1" "$2" <<'EOF'
import json, os, sys, tarfile
layout, lower_manifest = sys.argv[1:]
lower = {line.split(" ", 1)[0] for line in open(lower_manifest)}
index = json.load(open(os.path.join(layout, "index.json")))
blob = lambda d: os.path.join(layout, "blobs", d.replace(":", "/"))
top = json.load(open(blob(index["manifests"][0]["digest"])))["layers"][-1]["digest"]
own, changed = set(), set()
with tarfile.open(blob(top)) as t:
    for m in t:
        name = os.path.normpath(m.name.lstrip("/"))
        if m.isdir():
            own.add(name)
        if not m.isdir() or name not in lower:
            changed.add(os.path.dirname(name) or ".")
for d in sorted(changed - own):
    print(d)
EOF
}

# --- the kernel part (in the VM, or on a host with dm-overlaybd) ------------------------------
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# The same listing: PASS, or FAIL with the first differences. With CHANGED
# (changed_dirs' list) and T0 (when obd convert started), those directories'
# mtime is expected to be from the conversion (>= T0): "conv" in both lists.
same_tree() {
	local what=$1 want=$2 dir=$3 changed=${4:-/dev/null} t0=${5:-0} got n note=
	got=$(mktemp -d)
	manifest "$dir" > "$got/mounted"
	python3 - "$changed" "$t0" "$want" "$got/mounted" "$got/want" "$got/got" <<'EOF'
import sys
changed, t0, want, mounted, out_want, out_got = sys.argv[1:]
changed = {l.rstrip("\n") for l in open(changed)}
def conv(src, dst, is_mounted):
    with open(dst, "w") as o:
        for line in open(src):
            for d in changed:
                if line.startswith(d + " d "):
                    f = line[len(d) + 1:].split(" ")  # type mode uid gid mtime ...
                    if not is_mounted or int(f[4]) >= int(t0):
                        f[4] = "conv"
                    line = d + " " + " ".join(f)
            o.write(line)
conv(want, out_want, False)
conv(mounted, out_got, True)
EOF
	n=$(wc -l < "$changed")
	[ "$n" = 0 ] || note=" ($n directories the top layer changes without an entry of their own with the conversion's mtime: $(tr '\n' ' ' < "$changed"))"
	if cmp -s "$got/want" "$got/got"; then
		pass "$what: all $(wc -l < "$got/got") entries equal, $(awk '$2 == "f"' "$got/got" | wc -l) regular files by sha256$note"
	else
		fail "$what: the trees differ (- expected, + mounted):"
		diff -u "$got/want" "$got/got" | sed -n '3,60p' || true
	fi
	rm -rf "$got"
}
leftovers() {
	{
		dmsetup ls --target overlaybd 2>/dev/null | grep -v '^No devices found' || true
		findmnt -rn -o TARGET | grep -F "$work/" || true
		ls -A /run/overlaybd/mounts 2>/dev/null || true
	} | tr '\n' ' '
}

kernel_part() {
	local cache=$1 out cfg layer1 mnt rw dev sums t0
	work=${2:-}
	modprobe dm-mod
	modprobe ext4 2>/dev/null || true
	modprobe overlay 2>/dev/null || true
	if ! dmsetup targets | grep -q '^overlaybd'; then
		modprobe dm-overlaybd 2>/dev/null || insmod "$top/kmod/build-$(uname -r)/dm-overlaybd.ko"
	fi
	if [ -z "$work" ]; then
		[ -n "${OBD_VM_DISKS:-}" ] || die "--kernel-part CACHE WORK: WORK missing"
		# the VM's scratch disk: the image and the overlay's upper live there
		dev=${OBD_VM_DISKS%% *}
		modprobe virtio_blk
		for _ in $(seq 100); do [ -b "$dev" ] && break; sleep 0.1; done
		mkfs.ext4 -q -F "$dev"
		work=/tmp/example-debian
		mkdir -p "$work"
		mount "$dev" "$work"
	fi
	mnt=$work/mnt
	rw=$work/rw
	mkdir -p "$mnt"	# the mount point; obd mount makes RWDIR (and its fs/, work/)
	say "kernel $(uname -r): obd convert the OCI image (two layers)"
	out=$work/debian-obd
	t0=$(date +%s)
	time "$obd" convert --no-progress "oci:$cache/oci:$suite" "$out"
	cfg=$out/config.v1.json
	cat "$cfg"; echo
	ls -l "$out/blobs/sha256"
	layer1=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["lowers"][0]["file"])' "$cfg")
	sums=$(cd "$out/blobs/sha256" && sha256sum -- *)

	say "obd mount $cfg $mnt"
	"$obd" mount "$cfg" "$mnt" || die "obd mount failed"
	findmnt "$mnt"
	chroot "$mnt" /bin/sh -c 'cat /etc/debian_version; apt-get --version | head -1; hello' |
		tee "$work/chroot.out" || true
	if [ "$(sed -n 1p "$work/chroot.out")" = "$(cat "$cache/debian_version")" ] &&
	   [[ "$(sed -n 2p "$work/chroot.out")" == "apt "* ]] &&
	   [ "$(sed -n 3p "$work/chroot.out")" = "Hello, world!" ]; then
		pass "chroot: Debian $(cat "$cache/debian_version"), apt and layer 2's hello run"
	else
		fail "chroot: unexpected output"
	fi
	same_tree "the image (both layers) equals the tree umoci packed" "$cache/image.manifest" "$mnt" \
		"$cache/image.changed-dirs" "$t0"
	"$obd" umount "$mnt"

	say "obd mount $layer1 $mnt: layer 1 alone"
	"$obd" mount "$layer1" "$mnt" || die "obd mount of layer 1 failed"
	same_tree "layer 1 equals the debootstrap root" "$cache/rootfs.manifest" "$mnt"
	"$obd" umount "$mnt"

	say "obd mount --rw $rw $cfg $mnt: an overlayfs, writable"
	"$obd" mount --rw "$rw" "$cfg" "$mnt" || die "obd mount --rw failed"
	findmnt "$mnt"
	chroot "$mnt" /bin/sh -c 'echo "written through the overlay" > /root/note && dpkg --purge hello'
	if [ "$(cat "$rw/fs/root/note")" = "written through the overlay" ] &&
	   [ "$(stat -c '%F %t:%T' "$rw/fs/usr/bin/hello")" = "character special file 0:0" ] &&
	   ! chroot "$mnt" /bin/sh -c 'command -v hello' > /dev/null; then
		pass "writes went to $rw/fs (root/note; usr/bin/hello a whiteout: dpkg --purge hello)"
	else
		fail "writes through the overlay"
	fi
	"$obd" umount "$mnt"
	"$obd" mount --rw "$rw" "$cfg" "$mnt" || die "obd mount --rw again failed"
	if [ "$(chroot "$mnt" cat /root/note)" = "written through the overlay" ] &&
	   ! chroot "$mnt" /bin/sh -c 'command -v hello' > /dev/null; then
		pass "mounted again with the same RWDIR: the note is there, hello is gone"
	else
		fail "the changes did not survive obd umount + obd mount --rw"
	fi
	"$obd" umount "$mnt"
	"$obd" mount "$cfg" "$mnt" || die "obd mount failed"
	if [ "$(chroot "$mnt" hello)" = "Hello, world!" ] && [ ! -e "$mnt/root/note" ] &&
	   [ "$(cd "$out/blobs/sha256" && sha256sum -- *)" = "$sums" ]; then
		pass "the image is unchanged: hello is there, no note, the layer blobs' sha256 as before"
	else
		fail "the image changed"
	fi
	"$obd" umount "$mnt"

	if [ -z "$(leftovers)" ]; then
		pass "nothing left: no overlaybd device, no mount, no obd mount record"
	else
		fail "left behind: $(leftovers)"
	fi
	if [ -n "${OBD_VM:-}" ]; then
		umount "$work"
	fi
	say "$fails failed"
	[ "$fails" = 0 ]
}

if [ "${1:-}" = "--kernel-part" ]; then
	[ -n "${2:-}" ] || die "usage: $0 --kernel-part CACHE [WORK]"
	kernel_part "$2" "${3:-}"
	exit
fi

# --- the host part -------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and the VM's module tests need it)"
cache=${OBD_EXAMPLE_DIR:-$top/build/example-debian}
mirror=${OBD_EXAMPLE_MIRROR:-http://deb.debian.org/debian}
kernels=${OBD_EXAMPLE_KERNELS:-6.1}
if [ "${1:-}" = "--fresh" ]; then
	rm -rf "$cache"
elif [ -n "${1:-}" ]; then
	die "usage: $0 [--fresh] | --kernel-part CACHE [WORK]"
fi
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

"$top/scripts/deps.sh"
if ! command -v debootstrap > /dev/null; then
	echo "installing debootstrap"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap > /dev/null
fi
say "build obd and the module ($kernels)"
make -s -C "$top" -j2 all
for k in $kernels; do make -s -C "$top/kmod" KDIR="$("$top/scripts/kernels.sh" kdir "$k")" > /dev/null; done

cd "$cache"
if [ ! -e rootfs.done ]; then
	say "debootstrap --variant=minbase $suite $cache/rootfs $mirror"
	rm -rf rootfs oci.done
	debootstrap --variant=minbase "$suite" rootfs "$mirror" > debootstrap.log 2>&1 ||
		die "debootstrap failed, see $cache/debootstrap.log"
	tail -n 1 debootstrap.log
	touch rootfs.done
else
	say "the debootstrap root (cached): $cache/rootfs"
fi
if [ ! -e oci.done ]; then
	say "umoci: the OCI image $cache/oci:$suite"
	rm -rf oci bundle
	umoci init --layout oci
	umoci new --image "oci:$suite"
	umoci insert --image "oci:$suite" --history.comment "debootstrap --variant=minbase $suite" rootfs /
	umoci unpack --image "oci:$suite" bundle > /dev/null
	chroot bundle/rootfs /bin/sh -c 'apt-get -q update && apt-get install -y -q --no-install-recommends hello &&
		apt-get clean && rm -rf /var/lib/apt/lists/*' > layer2.log 2>&1 ||
		die "apt-get install hello in the chroot failed, see $cache/layer2.log"
	umoci repack --image "oci:$suite" --history.comment "apt-get install hello" bundle
	cp rootfs/etc/debian_version debian_version
	manifest rootfs > rootfs.manifest
	manifest bundle/rootfs > image.manifest
	changed_dirs oci rootfs.manifest > image.changed-dirs
	rm -rf bundle
	touch oci.done
else
	say "the OCI image (cached): $cache/oci:$suite"
fi
umoci stat --image "oci:$suite"
echo "debootstrap root: $(wc -l < rootfs.manifest) entries, $(du -sh rootfs | cut -f1); Debian $(cat debian_version)"

rc=0
for k in $kernels; do
	say "the kernel part in the test VM ($k)"
	"$top/scripts/vm-run.sh" --kernel "$k" --timeout "${OBD_EXAMPLE_TIMEOUT:-2400}" --scratch-disk 4096 \
		-- "$top/scripts/example-debian.sh" --kernel-part "$cache" || rc=1
done
exit $rc
