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
#
# Then the lazy path: the two layers pushed to a local registry (Debian's
# docker-registry on 127.0.0.1), overlaybd-fetchd started, the image attached
# from its config.v1.json on a cold cache, a few files read, and the bytes
# fetched printed against the image size.
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

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

fetched() { dmsetup status "$1" | awk '{ for (i = 1; i < NF; i++) if ($i == "fetched") print $(i + 1) }'; }

serve_lazy() {
	local d=$1 w port regpid fdpid dev mnt name=obd-lazy rc=0 size f
	w=$(mktemp -d)
	# the test VM starts with lo down; nothing here leaves 127.0.0.1
	ip link show lo | grep -q 'state UNKNOWN\|state UP' || ip link set lo up
	port=$(free_port)
	mkdir -p "$w/registry" "$w/cache"
	printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
		"$w/registry" "$port" > "$w/registry.yml"
	say "lazy: a registry on 127.0.0.1:$port, push the image"
	/usr/bin/docker-registry serve "$w/registry.yml" > "$w/registry.log" 2>&1 &
	regpid=$!
	for f in $(seq 100); do curl -s "http://127.0.0.1:$port/v2/" > /dev/null && break; sleep 0.1; done
	"$obd" push "http://127.0.0.1:$port/demo/image:v1" "$d/base.commit.tar" "$d/upper.commit" \
		> "$w/config.v1.json"
	cat "$w/config.v1.json"
	printf '{ "cacheConfig": { "cacheDir": "%s" }, "logConfig": { "logLevel": 1 } }\n' \
		"$w/cache" > "$w/overlaybd.json"
	say "lazy: overlaybd-fetchd, attach on a cold cache"
	"$top/build/overlaybd-fetchd" --service-config "$w/overlaybd.json" 2> "$w/fetchd.log" &
	fdpid=$!
	sleep 0.5
	dev=$("$obd" attach --service-config "$w/overlaybd.json" --name "$name" "$w/config.v1.json")
	echo "$dev"
	"$obd" list
	size=$(( $(stat -c %s "$d/base.commit.tar") + $(stat -c %s "$d/upper.commit") ))
	mnt=$(mktemp -d)
	mount -t ext4 -o ro,noload "$dev" "$mnt"
	echo "--- hello.txt:"
	cat "$mnt/hello.txt"
	sha256sum "$mnt/docs/obd.md" "$mnt/include/obd_format.h" "$mnt/payload/blob07.bin" | sed "s|$mnt/||"
	echo "fetched by the kernel's misses so far: $(fetched "$name") bytes of the image's $size" \
		"(plus what obd attach read to check the headers and index: $(du -B1 -s "$w/cache" | cut -f1) bytes cached now)"
	say "lazy: every file equals its source"
	if (cd "$d/src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$w/sums" &&
	   (cd "$mnt" && sha256sum --quiet -c "$w/sums"); then
		echo "all $(wc -l < "$w/sums") files match; fetched $(fetched "$name") of $size bytes"
	else
		echo "MISMATCH"; rc=1
	fi
	dmsetup status "$name"
	umount "$mnt"
	rmdir "$mnt"
	"$obd" detach "$name"
	kill "$fdpid" "$regpid" 2>/dev/null
	wait "$fdpid" "$regpid" 2>/dev/null
	tail -n 1 "$w/fetchd.log"
	rm -rf "$w"
	return $rc
}

if [ "${1:-}" = "--serve" ]; then
	rc=0
	serve "$2" || rc=1
	serve_lazy "$2" || rc=1
	exit $rc
fi

say "build"
make -s -C "$top" -j"$(nproc)" all
work=$top/build/demo
rm -rf "$work"
mkdir -p "$work/src"
cp -a "$top/docs" "$top/lib" "$top/include" "$top/kmod" "$top/tools" "$work/src/"
rm -rf "$work"/src/kmod/build-*
# and some incompressible payload, so that the lazy path has something to skip
mkdir -p "$work/src/payload"
for i in $(seq -w 1 24); do head -c 1M /dev/urandom > "$work/src/payload/blob$i.bin"; done

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
	serve "$work" && serve_lazy "$work"
else
	say "this host cannot load modules: serving inside the test VM (Debian 6.1 under QEMU)"
	"$top/scripts/deps.sh"
	make -s -C "$top/kmod" KDIR="$("$top/scripts/kernels.sh" kdir 6.1)"
	"$top/scripts/vm-run.sh" --kernel 6.1 -- "$top/scripts/demo.sh" --serve "$work"
fi
