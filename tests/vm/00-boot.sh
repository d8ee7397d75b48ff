#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Smoke test of the VM harness itself (no dm-overlaybd involved): the requested
# kernel booted, its modules load, and a dm-linear device over a loop device
# returns exactly the bytes of the file underneath; a --scratch-disk of vm-run.sh is a
# working virtio disk.
# vm-disk-mb: 16
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

vm_dmesg_mark 00-boot

check_eq "kernel is the requested one" "$(uname -r)" "${OBD_KVER:-unset}"
check "modprobe dm-mod" modprobe dm-mod
check "/dev/mapper/control exists" test -c /dev/mapper/control
check "/mnt/share is writable" sh -c 'echo x >/mnt/share/.probe && rm /mnt/share/.probe'

dir=$(vm_tmpdir)
vm_on_exit rm -rf "$dir"
# 8 MiB of non-repeating content; sha256 over the whole file and the whole device.
if ! head -c 8388608 /dev/urandom >"$dir/disk.img"; then
	bail "cannot write $dir/disk.img"
fi
want=$(sha256sum <"$dir/disk.img" | cut -d' ' -f1)

loop=$(vm_loop_attach "$dir/disk.img" ro) || bail "losetup failed"
vm_on_exit losetup -d "$loop"
ok "loop device $loop"

sectors=$(blockdev --getsz "$loop")
check_eq "loop size in sectors" "$sectors" 16384
name=obd-smoke-$$
if check "dmsetup create dm-linear" dmsetup create "$name" --readonly \
	--table "0 $sectors linear $loop 0"; then
	vm_on_exit dmsetup remove "$name"
	check "/dev/mapper/$name is a block device" test -b "/dev/mapper/$name"
	got=$(sha256sum <"/dev/mapper/$name" | cut -d' ' -f1)
	check_eq "dm-linear bytes equal the file (sha256)" "$got" "$want"
	# A read at an offset inside the table, against the same range of the file.
	got=$(dd if="/dev/mapper/$name" bs=4096 skip=1000 count=3 status=none | sha256sum)
	want_off=$(dd if="$dir/disk.img" bs=4096 skip=1000 count=3 status=none | sha256sum)
	check_eq "dm-linear read at 4000 KiB" "$got" "$want_off"
	check_eq "dmsetup table" "$(dmsetup table "$name")" "0 $sectors linear $(cat "/sys/block/${loop#/dev/}/dev") 0"
	check "dmsetup remove" dmsetup remove "$name"
	check "device gone" test ! -e "/dev/mapper/$name"
else
	skip "dm-linear content" "create failed"
fi

# The scratch disk (scripts/run-tests.sh passes one, see vm-disk-mb above).
if [ -n "${OBD_VM_DISKS:-}" ]; then
	vd=${OBD_VM_DISKS%% *}
	check "modprobe virtio_blk" modprobe virtio_blk
	for _ in $(seq 50); do [ -b "$vd" ] && break; sleep 0.1; done
	check_eq "virtio disk $vd: 16 MiB" "$(blockdev --getsize64 "$vd" 2>/dev/null)" 16777216
	head -c 4194304 /dev/urandom >"$dir/vd.img"
	dd if="$dir/vd.img" of="$vd" bs=1M seek=3 oflag=direct status=none
	check_eq "virtio disk: written bytes read back (O_DIRECT)" \
		"$(dd if="$vd" bs=1M skip=3 count=4 iflag=direct status=none | sha256sum)" \
		"$(sha256sum <"$dir/vd.img")"
else
	skip "virtio disk" "no --scratch-disk given"
fi

vm_dmesg_check 00-boot
tap_done
