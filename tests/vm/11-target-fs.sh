#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 11-target-fs.sh: an ext4 file system image turned into an overlaybd layer with
# our own tools (obd import + commit -z -t), served by the overlaybd target and
# mounted read-only by two devices sharing the layer at once. Files must match
# the source tree byte for byte; the device must match the raw image.
#   scripts/vm-run.sh --kernel 6.1 -- tests/vm/11-target-fs.sh
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

obd=$OBD_TOP/build/obd
param=/sys/module/dm_overlaybd/parameters/layers_parsed
[ -x "$obd" ] || bail "$obd missing: run make first"
vm_dmesg_mark 11-fs
vm_load_module || bail "cannot load dm-overlaybd"
vm_on_exit vm_unload_module

d=$(vm_tmpdir)
vm_on_exit rm -rf "$d"
mkdir -p "$d/src/a/b/c" "$d/m1" "$d/m2"
# Incompressible and compressible files, odd sizes, a deep path, a symlink.
for i in $(seq 1 24); do
	head -c $((i * 37 * 1024 + i * 11)) /dev/urandom >"$d/src/r$i"
	yes "line $i of a compressible file" | head -c $((i * 20000)) >"$d/src/a/b/c/t$i"
done
ln -s a/b/c/t3 "$d/src/link"
check "mke2fs -d" mke2fs -q -F -t ext4 -b 4096 -d "$d/src" "$d/fs.img" 64M
want=$(sha256sum <"$d/fs.img" | cut -d' ' -f1)

check "obd create" "$obd" create "$d/w.data" "$d/w.index" 64M
check "obd import" "$obd" import --no-progress "$d/w.data" "$d/w.index" "$d/fs.img"
check "obd commit -z -t (zstd, 16K)" "$obd" commit --no-progress -z --algorithm zstd --bs 16 -t \
	"$d/w.data" "$d/w.index" "$d/fs.layer"
rm -f "$d/w.data" "$d/w.index"

t="0 131072 overlaybd 1 $d/fs.layer"
check "create device 1" dmsetup create obd-fs1 --readonly --table "$t"
vm_on_exit dmsetup remove obd-fs1
check "create device 2 (same layer)" dmsetup create obd-fs2 --readonly --table "$t 1 direct_io"
vm_on_exit dmsetup remove obd-fs2
check_eq "layer parsed once" "$(cat $param)" 1
check_eq "device content = raw image" "$(sha256sum </dev/mapper/obd-fs1 | cut -d' ' -f1)" "$want"

check "modprobe ext4" modprobe ext4
check "mount device 1" mount -t ext4 -o ro,noload /dev/mapper/obd-fs1 "$d/m1"
vm_on_exit umount "$d/m1"
check "mount device 2" mount -t ext4 -o ro,noload /dev/mapper/obd-fs2 "$d/m2"
vm_on_exit umount "$d/m2"
check "files on device 1 match the source" diff -r --no-dereference -x lost+found "$d/src" "$d/m1"
check "files on device 2 match the source" diff -r --no-dereference -x lost+found "$d/src" "$d/m2"
echo 3 >/proc/sys/vm/drop_caches
check "files match after dropping caches (parallel)" bash -c "
	diff -r -x lost+found '$d/src' '$d/m1' & p1=\$!; diff -r -x lost+found '$d/src' '$d/m2' & p2=\$!
	wait \$p1 && wait \$p2"
st=$(dmsetup status obd-fs1)
diag "status: $st"
check "zblocks counted" bash -c "[[ '$st' =~ zblocks\ [1-9] ]]"
check "no errors" bash -c "[[ '$st' =~ crc_errors\ 0\ io_errors\ 0\ remote\ 0\ pending\ 0\ fetched\ 0\ daemon\ [01]$ ]]"

umount "$d/m1"; umount "$d/m2"
check "remove devices" dmsetup remove obd-fs1 obd-fs2
check_eq "no parsed layers left" "$(cat $param)" 0
check "rmmod" rmmod dm_overlaybd
vm_dmesg_check 11-fs
tap_done
