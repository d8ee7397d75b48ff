#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# make demo: build everything, make an overlaybd image from a directory, serve
# it with dm-overlaybd, mount it, read files back, detach.
#
#   scripts/demo.sh            the whole job (host if it can load the module,
#                              otherwise the serving half runs in the test VM)
#   scripts/demo.sh --serve D  only the serving half, on images in D (used in the VM)
#
# The image: an ext4 file system made with `mkfs.ext4 -d` from the project's
# own docs/ and lib/ folders, imported into a writable layer and committed as
# ZFile(LZ4) in a tar (the registry form); then an upper layer that adds a file
# (written with debugfs), committed as plain LSMT. Two layers, like a container
# image with one change on top.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
obd=$top/build/obd
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

serve() {
	local d=$1 dev mnt name=obd-demo rc=0 sums
	# The kernel cannot autoload modules from inside the test VM's chroot.
	modprobe dm-mod
	modprobe ext4 2>/dev/null || true
	if ! dmsetup targets | grep -q '^overlaybd'; then
		insmod "$top/kmod/build-$(uname -r)/dm-overlaybd.ko"
	fi
	say "attach (kernel $(uname -r))"
	dev=$("$obd" attach --name "$name" "$d/base.commit.tar" "$d/upper.commit")
	echo "$dev"
	"$obd" list
	dmsetup table "$name"
	mnt=$(mktemp -d)
	mount -t ext4 -o ro,noload "$dev" "$mnt"
	say "files in the image"
	ls -l "$mnt" | head -n 20
	echo "--- hello.txt (added by the upper layer):"
	cat "$mnt/hello.txt"
	say "every file equals its source"
	sums=$(mktemp)
	if (cd "$d/src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$sums" &&
	   (cd "$mnt" && sha256sum --quiet -c "$sums"); then
		echo "all $(wc -l < "$sums") files match"
	else
		echo "MISMATCH"; rc=1
	fi
	rm -f "$sums"
	dmsetup status "$name"
	umount "$mnt"
	rmdir "$mnt"
	say "detach"
	"$obd" detach "$name"
	return $rc
}

if [ "${1:-}" = "--serve" ]; then
	serve "$2"
	exit
fi

say "build"
make -s -C "$top" -j"$(nproc)" all
work=$top/build/demo
rm -rf "$work"
mkdir -p "$work/src"
cp -a "$top/docs" "$top/lib" "$top/include" "$top/kmod" "$top/tools" "$work/src/"
rm -rf "$work"/src/kmod/build-*

say "make an image from $work/src"
truncate -s 64M "$work/raw.img"
mkfs.ext4 -q -F -b 4096 -E root_owner=0:0 -d "$work/src" "$work/raw.img"
"$obd" create "$work/base.data" "$work/base.index" 64M
"$obd" import --no-progress "$work/base.data" "$work/base.index" "$work/raw.img"
"$obd" commit -z -t -m "demo base" "$work/base.data" "$work/base.index" "$work/base.commit.tar"

# The upper layer holds only the blocks debugfs changed.
cp "$work/raw.img" "$work/raw2.img"
echo "hello from the upper layer" > "$work/hello.txt"
debugfs -w -R "write $work/hello.txt hello.txt" "$work/raw2.img" >/dev/null 2>&1
cp "$work/hello.txt" "$work/src/hello.txt"
"$obd" create "$work/upper.data" "$work/upper.index" 64M
python3 - "$work/raw.img" "$work/raw2.img" "$obd" "$work/upper.data" "$work/upper.index" <<'EOF'
import subprocess, sys
a, b, obd, data, index = sys.argv[1:]
bs = 4096
with open(a, 'rb') as fa, open(b, 'rb') as fb:
    off = 0
    while True:
        x, y = fa.read(bs), fb.read(bs)
        if not y:
            break
        if x != y:
            subprocess.run([obd, 'write', data, index, '--offset', str(off), '-'], input=y, check=True)
        off += bs
EOF
"$obd" commit -m "demo upper" "$work/upper.data" "$work/upper.index" "$work/upper.commit"
"$obd" info "$work/base.commit.tar" "$work/upper.commit"
"$obd" check "$work/base.commit.tar" "$work/upper.commit"

# Serve where a module can be loaded: here if this kernel has headers and we
# are root and not in a container that forbids it, otherwise in the test VM.
kver=$(uname -r)
if [ "$(id -u)" = 0 ] && [ -d "/lib/modules/$kver/build" ] &&
   make -s -C "$top/kmod" KDIR="/lib/modules/$kver/build" >/dev/null 2>&1 &&
   { lsmod | grep -q '^dm_overlaybd' || insmod "$top/kmod/build-$kver/dm-overlaybd.ko" 2>/dev/null; }; then
	serve "$work"
else
	say "this host cannot load modules: serving inside the test VM (Debian 6.1 under QEMU)"
	"$top/scripts/deps.sh"
	make -s -C "$top/kmod" KDIR="$("$top/scripts/kernels.sh" kdir 6.1)"
	"$top/scripts/vm-run.sh" --kernel 6.1 -- "$top/scripts/demo.sh" --serve "$work"
fi
