#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 52-mount.sh: obd mount / obd umount (issue #21).
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/52-mount.sh
#   - a two-layer OCI image made with umoci (a static busybox and files in
#     layer 1; layer 2 changes a file, deletes one, adds a directory),
#     converted by obd convert; its reference rootfs from umoci unpack
#   - obd mount CONFIG DIR: ext4, read-only, the tree equals the reference
#     rootfs; a program of the image runs under chroot; writing fails (EROFS)
#   - obd mount --rw RWDIR: an overlayfs; writes, a change and a delete go to
#     RWDIR/fs; after umount and a new mount with the same RWDIR they are
#     still there, and the image itself is unchanged (a read-only mount)
#   - obd mount --upper DATA INDEX: the device is writable, a file written
#     survives umount and mount again
#   - obd umount refuses a mount point obd did not make, and a busy one
#     (nothing changes); a second obd mount on a mounted DIR is refused
#   - an upper alone (config.v1.json with lowers []: a blank writable disk):
#     attach, O_DIRECT writes equal a model, reload, dmsetup create with the
#     same table, ext4 on it survives detach; tables with 0 lowers refused
#     without an upper, read-only, or with the wrong length
#   - errors with clear messages and nothing left behind: an image without
#     a file system, dm-overlaybd not loaded
#   - at the end no device, no mount, no record is left
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
obd=$OBD_TOP/build/obd
[ -x "$obd" ] || bail "$obd missing: run make first"
command -v umoci > /dev/null || bail "umoci missing: scripts/deps.sh installs it"
vm_test_begin 52-mount
modprobe ext4 2>/dev/null
modprobe overlay 2>/dev/null
state=/run/overlaybd/mounts
mkdir -p mnt rw

# leftovers: what obd mount made that still exists
leftovers() {
	{
		dmsetup ls --target overlaybd 2>/dev/null | grep -v '^No devices found'
		findmnt -rn -o TARGET | grep -F "$d/" || true
		ls -A "$state" 2>/dev/null
	} | tr '\n' ' '
}

# --- the image ---------------------------------------------------------------------------
check "umoci init, new, unpack" bash -c \
	"umoci init --layout src && umoci new --image src:v1 && umoci unpack --image src:v1 bundle" ||
	bail "umoci"
r=bundle/rootfs
mkdir -p $r/bin $r/etc $r/usr/share/doc
cp /bin/busybox $r/bin/busybox && ln -s busybox $r/bin/sh
echo one > $r/etc/greeting
echo gone > $r/etc/gone
head -c 300000 /dev/urandom > $r/usr/share/doc/blob
check "umoci repack (layer 1: busybox, files)" umoci repack --refresh-bundle --image src:v1 bundle
echo two > $r/etc/greeting
rm $r/etc/gone
mkdir -p $r/data && echo data > $r/data/f
check "umoci repack (layer 2: a change, a delete, a directory)" umoci repack --refresh-bundle --image src:v1 bundle
check "umoci unpack: the reference rootfs" umoci unpack --image src:v1 ref
check "obd convert" bash -c "'$obd' convert --size 64M 'oci:$d/src:v1' '$d/out' > conv.out 2>&1" ||
	bail "convert: $(cat conv.out)"
cfg=$d/out/config.v1.json

# --- read-only -----------------------------------------------------------------------------
check "obd mount CONFIG DIR" "$obd" mount "$cfg" mnt || bail "mount"
check_eq "ext4, read-only" "$(findmnt -n -o FSTYPE mnt) $(findmnt -n -o OPTIONS mnt | cut -d, -f1)" "ext4 ro"
check "the tree equals the reference rootfs" diff -r --no-dereference -x lost+found ref/rootfs mnt
check_eq "a program of the image runs under chroot" "$(chroot mnt /bin/sh -c 'busybox cat /etc/greeting')" two
check "layer 2's delete shows" test ! -e mnt/etc/gone
out=$(touch mnt/x 2>&1)
check "writing fails: read-only ($out)" bash -c "[[ '$out' == *'Read-only file system'* ]]"
out=$("$obd" mount "$cfg" mnt 2>&1)
check "a second obd mount on DIR is refused ($out)" bash -c "[[ '$out' == *busy* ]]"
check_eq "... and made no device" "$(dmsetup ls --target overlaybd | wc -l)" 1
# busy: a process inside
(cd mnt && exec sleep 30) &
busy=$!
sleep 0.5
out=$("$obd" umount mnt 2>&1)
check "obd umount of a busy mount is refused ($out)" bash -c "[[ '$out' == *busy* ]]"
check "... the mount and the device stay" bash -c "mountpoint -q mnt && [ \$(dmsetup ls --target overlaybd | wc -l) = 1 ]"
kill $busy; wait $busy 2>/dev/null
check "obd umount DIR" "$obd" umount mnt
check_eq "nothing left" "$(leftovers)" ""

# --- --rw: overlayfs -----------------------------------------------------------------------
check "obd mount --rw RWDIR" "$obd" mount --rw rw "$cfg" mnt || bail "mount --rw"
check_eq "overlayfs at DIR" "$(findmnt -n -o FSTYPE mnt)" overlay
check "write through the overlay: a new file, a change, a delete" bash -c \
	"echo new > mnt/new && echo three > mnt/etc/greeting && rm mnt/data/f && chroot mnt /bin/sh -c 'echo inside > /data/g'"
check "the changes are in RWDIR/fs" bash -c \
	"[ \"\$(cat rw/fs/new)\" = new ] && [ \"\$(cat rw/fs/etc/greeting)\" = three ] && [ -c rw/fs/data/f ] && [ \"\$(cat rw/fs/data/g)\" = inside ]"
check "obd umount" "$obd" umount mnt
check_eq "nothing left" "$(leftovers)" ""
check "obd mount --rw again, the same RWDIR" "$obd" mount --rw rw "$cfg" mnt
check_eq "the changes are still there" "$(cat mnt/new mnt/etc/greeting mnt/data/g 2>&1 | tr '\n' ' '), f: $(test -e mnt/data/f && echo present || echo absent)" \
	"new three inside , f: absent"
check "obd umount" "$obd" umount mnt
check "read-only again" "$obd" mount "$cfg" mnt
check "the image is unchanged" diff -r --no-dereference -x lost+found ref/rootfs mnt
check "obd umount" "$obd" umount mnt

# --- --upper: a writable device ------------------------------------------------------------
check "obd create an upper (64M)" "$obd" create up.data up.index 64M
check "obd mount --upper DATA INDEX" "$obd" mount --upper up.data up.index --name m52u "$cfg" mnt || bail "mount --upper"
check_eq "ext4, read-write, on the named device" \
	"$(findmnt -n -o SOURCE mnt) $(findmnt -n -o FSTYPE mnt) $(findmnt -n -o OPTIONS mnt | cut -d, -f1)" \
	"/dev/mapper/m52u ext4 rw"
check "write a file" bash -c "echo upper > mnt/etc/upper && sync"
check "obd umount" "$obd" umount mnt
check "obd mount --upper again" "$obd" mount --upper up.data up.index "$cfg" mnt
check_eq "the file survived" "$(cat mnt/etc/upper 2>&1)" upper
check "obd umount" "$obd" umount mnt
check_eq "nothing left" "$(leftovers)" ""

# --- an upper alone: a blank writable disk (no lowers) ------------------------------------
# The reference's "only one RW layer": config.v1.json with an upper and lowers [].
check "obd create a blank upper (32M)" "$obd" create blank.data blank.index 32M
printf '{"lowers": [], "upper": {"data": "%s", "index": "%s"}}\n' "$d/blank.data" "$d/blank.index" > blank.json
check "obd attach: upper and no lowers" "$obd" attach --name m52b blank.json || bail "attach blank"
check_eq "the table: 0 lowers, the upper" "$(dmsetup table m52b)" \
	"0 65536 overlaybd 0 3 upper $d/blank.data $d/blank.index"
check_eq "a blank disk reads zeros" "$(cmp -n 33554432 /dev/mapper/m52b /dev/zero 2>&1)" ""
truncate -s 32M blank.model
head -c 1048576 /dev/urandom > w1 && head -c 8192 /dev/urandom > w2
check "O_DIRECT writes at 5 MiB and at the last 8 KiB" bash -c \
	"dd if=w1 of=/dev/mapper/m52b bs=1M seek=5 oflag=direct conv=notrunc status=none && dd if=w2 of=/dev/mapper/m52b bs=8192 seek=4095 oflag=direct conv=notrunc status=none"
dd if=w1 of=blank.model bs=1M seek=5 conv=notrunc status=none
dd if=w2 of=blank.model bs=8192 seek=4095 conv=notrunc status=none
model=$(sha256sum < blank.model)
check_eq "the device equals the model" "$(sha256sum < /dev/mapper/m52b)" "$model"
tbl=$(dmsetup table m52b)
check "dmsetup reload of its own table + resume" bash -c \
	"dmsetup reload m52b --table '$tbl' && dmsetup resume m52b"
check_eq "... the device still equals the model" "$(sha256sum < /dev/mapper/m52b)" "$model"
check "obd detach" "$obd" detach m52b
check_eq "obd cat of the config (the upper alone) equals the model" "$("$obd" cat blank.json | sha256sum)" "$model"
tbl=$("$obd" attach --table blank.json)
check "dmsetup create with the table obd attach --table prints" dmsetup create m52b --table "$tbl"
check_eq "... the device equals the model" "$(sha256sum < /dev/mapper/m52b)" "$model"
check "mkfs.ext4 on it, a file, umount" bash -c \
	"mkfs.ext4 -q /dev/mapper/m52b && mount /dev/mapper/m52b mnt && echo blank > mnt/f && umount mnt"
check "dmsetup remove" dmsetup remove m52b
check "obd attach again: the file system is there" bash -c \
	"'$obd' attach --name m52b blank.json && mount -o ro /dev/mapper/m52b mnt && [ \"\$(cat mnt/f)\" = blank ] && umount mnt && '$obd' detach m52b"
# refused: dmsetup fails, no device is left, dmesg names the reason
# (check runs it in a subshell: the mark is unique by the clock, not a counter)
refused() {
	local why=$1 mark; shift
	mark=52-refused-$(date +%s%N)
	echo "obd-test: mark $mark" > /dev/kmsg
	! dmsetup create m52x "$@" > /dev/null 2>&1 && ! dmsetup info m52x > /dev/null 2>&1 &&
		vm_dmesg_since "$mark" | grep -q "$why"
}
check "table '0' (no lowers, nothing after): refused" refused 'without lower layers needs an upper layer' \
	--table "0 65536 overlaybd 0"
check "no lowers and no upper: refused" refused 'without lower layers needs an upper layer' \
	--table "0 65536 overlaybd 0 1 no_verify"
check "no lowers, an upper, read-only: refused" refused 'upper layer must be read-write' \
	--readonly --table "0 65536 overlaybd 0 3 upper $d/blank.data $d/blank.index"
check "no lowers, a length other than the upper's size: refused" refused 'virtual_size' \
	--table "0 32768 overlaybd 0 3 upper $d/blank.data $d/blank.index"
check "obd create an upper of size 0" "$obd" create zero.data zero.index 0
printf '{"lowers": [], "upper": {"data": "%s", "index": "%s"}}\n' "$d/zero.data" "$d/zero.index" > zero.json
out=$("$obd" attach zero.json 2>&1)
rc=$?
check "obd attach of a size-0 upper alone: refused ($out)" bash -c "[ $rc = 1 ] && [[ '$out' == *'virtual size'* ]]"
check_eq "... nothing left" "$(leftovers)" ""

# --- refusals and errors -------------------------------------------------------------------
mkdir -p other && mount -t tmpfs tmpfs other
out=$("$obd" umount other 2>&1)
check "obd umount of a mount obd did not make is refused ($out)" bash -c "[[ '$out' == *'not mounted by obd mount'* ]]"
check "... it stays mounted" mountpoint -q other
umount other
check "obd create + commit: an image without a file system" bash -c \
	"'$obd' create e.data e.index 16M && '$obd' commit --no-progress e.data e.index empty.commit"
out=$("$obd" mount empty.commit mnt 2>&1)
rc=$?
check "no file system: refused ($out)" bash -c "[ $rc = 1 ] && [[ '$out' == *'no ext4, xfs or erofs file system'* ]]"
check_eq "... nothing left" "$(leftovers)" ""
vm_unload_module
out=$("$obd" mount "$cfg" mnt 2>&1)
rc=$?
check "dm-overlaybd not loaded: refused ($out)" bash -c "[ $rc = 1 ] && [[ '$out' == *'modprobe dm-overlaybd'* ]]"
check_eq "... nothing left" "$(leftovers)" ""
vm_load_module || bail "reload the module"
out=$("$obd" mount --rw rw --upper up.data up.index "$cfg" mnt 2>&1)
check "--rw with --upper: a usage error ($out)" bash -c "[[ '$out' == *'exclude each other'* ]]"

check_eq "at the end: no device, mount or record left" "$(leftovers)" ""
vm_dmesg_check 52-mount
tap_done
