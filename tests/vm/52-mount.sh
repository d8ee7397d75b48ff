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
