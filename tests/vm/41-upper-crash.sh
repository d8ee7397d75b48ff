#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 41-upper-crash.sh: hard resets (QEMU killed) during write workloads on
# writable devices, both upper kinds, and what survives. Four boots on one
# scratch disk (by hand:
#   scripts/vm-run.sh --kernel 6.1 --scratch-disk 256 --boots 4 -- bash tests/vm/41-upper-crash.sh)
# Boot 1: on the disk's ext4, an append-mode upper and a sparse upper over
# the reference stack, and a third (append) device with ext4 made on it.
# Random 4 KiB-unit writes run on the first two (upper_crash.py: every
# write's intent logged and synced before it is issued, flush
# acknowledgements logged after fsync returns), files are written and synced
# on the ext4 one, then the kill at a random moment.
# Boots 2 to 4: the tables load again (valid layers), every unit holds the
# last write a completed flush acknowledged or a later one, never anything
# else; ext4 mounts (journal replay), fsck.ext4 -fn is clean and every file
# synced before the crash reads back intact; `obd commit` of each upper gives
# the bytes the device showed. Boots 2 and 3 write on and are killed again.
# vm-disk-mb: 256
# vm-boots: 4
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/upper_lib.sh
. "$OBD_TOP/tests/vm/upper_lib.sh"
CR="$PY $OBD_TOP/tests/vm/upper_crash.py"
vm_crash_begin 41-upper-crash u
modprobe ext4 2>/dev/null
seed=${OBD_VM_SEED:-7}
table() { echo "0 $len overlaybd 2 $L1 $L2 3 upper $d/$1 $d/$2"; }

open_all() {
	check "load the append upper (boot $OBD_VM_BOOT)" dmsetup create c41a --table "$(table a.data a.index)" || bail "append"
	vm_on_exit dmsetup remove c41a
	check "load the sparse upper" dmsetup create c41s --table "0 $len overlaybd 2 $L1 $L2 3 upper $d/s.data -" || bail "sparse"
	vm_on_exit dmsetup remove c41s
	check "load the ext4 device's upper" dmsetup create c41f --table "$(table f.data f.index)" || bail "ext4"
	vm_on_exit dmsetup remove c41f
}

# start the workloads (writes numbered from $1, $2 for the two raw devices)
workload() {
	$CR write /dev/mapper/c41a a.log "$seed" "$1" 2>>w.err &
	$CR write /dev/mapper/c41s s.log "$((seed + 1))" "$2" 2>>w.err &
	(
		i=$3
		while :; do
			# a copy on the disk below, for the diagnostics of a bad file
			head -c $((4096 * (1 + RANDOM % 32))) /dev/urandom > exp/f$i &&
				cp exp/f$i mnt/f$i && sync exp/f$i mnt/f$i &&
				echo "$i $(shaof mnt/f$i)" >> fs.log && sync fs.log
			rm -f mnt/f$((i - 40)) exp/f$((i - 40))
			i=$((i + 1))
		done
	) 2>>w.err &
}

# What a file that lost its bytes looks like: where it differs, its extents
# (device sectors) and the upper's records over them.
bad_file() {
	local f=mnt/f$1 ext
	diag "f$1: $(stat -c %s "$f") bytes, first differing bytes: $(cmp -l "exp/f$1" "$f" 2>&1 | head -2 | tr '\n' ' ') ($(cmp -l "exp/f$1" "$f" 2>/dev/null | wc -l) bytes differ)"
	filefrag -v -b512 "$f" 2>&1 | sed -n 's/^ *[0-9]*: *\([0-9]*\)\.\. *[0-9]*: *\([0-9]*\)\.\. *[0-9]*: *\([0-9]*\).*/\1 \2 \3/p' |
		while read -r lo pe len; do
			diag "f$1 extent: file sector $lo, device sector $pe, $len sectors"
			ext=$($PY "$OBD_TOP/tests/vm/upper_records.py" f.index "$pe" "$len" 2>&1 | tail -6)
			diag "$ext"
		done
	diag "f.data $(stat -c %s f.data) bytes, f.index $(stat -c %s f.index) bytes"
}

verify() {
	local out
	touch w.err
	check_eq "the writers saw no I/O error before the crash" "$(grep -c . w.err)" 0 ||
		diag "$(head -5 w.err)"
	out=$($CR check /dev/mapper/c41a a.log "$seed" lower.raw 2>&1)
	check "append upper: every unit the last acknowledged write or a later one ($(head -1 <<<"$out"))" \
		grep -q '^ok ' <<<"$out" || diag "$out"
	next_a=$(sed -n 's/^next //p' <<<"$out")
	out=$($CR check /dev/mapper/c41s s.log "$((seed + 1))" lower.raw 2>&1)
	check "sparse upper: the same ($(head -1 <<<"$out"))" grep -q '^ok ' <<<"$out" || diag "$out"
	next_s=$(sed -n 's/^next //p' <<<"$out")
	check "ext4: mount replays the journal" mount -t ext4 /dev/mapper/c41f mnt
	local bad=0 n=0 i h
	tr -d '\000' < fs.log | tail -n 40 > fs.tail
	while read -r i h; do
		[ -e "mnt/f$i" ] || continue	# removed by the workload later
		n=$((n + 1))
		[ "$(shaof "mnt/f$i")" = "$h" ] || { bad=$((bad + 1)); bad_file "$i"; }
	done < fs.tail
	check "ext4: files synced before the crash are there ($n of the last $(wc -l < fs.tail) logged)" \
		test "$n" -ge 1 -o ! -s fs.tail
	check_eq "ext4: every file synced before the crash reads back intact" "$bad" 0
	# numbers never come back: past every logged file and every file there.
	# (Not the last line: after a reset an appended log can end in NUL
	# bytes, ext4 having made its size durable before the data; a line of
	# NULs taken for the last entry restarted the numbering at 0, so the
	# next boot rewrote files whose old checksums were still logged.)
	next_f=$( { tr -d '\000' < fs.log | awk 'NF == 2 && $2 ~ /^[0-9a-f]+$/ { print $1 }';
		ls mnt | sed -n 's/^f\([0-9][0-9]*\)$/\1/p'; } | sort -n | tail -1)
	next_f=$((${next_f:--1} + 1))
	umount mnt
	check "ext4: fsck.ext4 -fn clean" fsck.ext4 -fn /dev/mapper/c41f
	check "append: obd commit of what the crash left" bash -c \
		"dmsetup suspend c41a && '$obd' commit --no-progress a.data a.index a.commit; r=\$?; dmsetup resume c41a; exit \$r"
	check_eq "append: the committed layer shows the device's bytes" \
		"$("$obd" cat --no-progress "$L1" "$L2" a.commit | sha256sum | cut -d' ' -f1)" "$(shaof /dev/mapper/c41a)"
	rm -f a.commit
}

if [ "$OBD_VM_BOOT" = 1 ]; then
	check "obd cat of the lower stack" "$obd" cat --no-progress -o lower.raw "$L1" "$L2"
	check "obd create: append, sparse and ext4 uppers on the disk" bash -c "
		'$obd' create a.data a.index 64M && '$obd' create -s s.data 64M &&
		'$obd' create f.data f.index 64M" || bail "create"
	open_all
	mkdir -p mnt exp
	check "mkfs.ext4 on the third device" mkfs.ext4 -q -F -E nodiscard /dev/mapper/c41f || bail "mkfs"
	check "mount it" mount -t ext4 /dev/mapper/c41f mnt || bail "mount"
	: > fs.log
	sync
	workload 0 0 0
	sleep 3
	diag "before the kill: $(grep -c '^a' a.log) + $(grep -c '^a' s.log) flushes acknowledged, $(wc -l < fs.log) files synced"
	vm_kill_now 3000
fi

mkdir -p mnt
open_all
verify
if [ "$OBD_VM_BOOT" -lt "$OBD_VM_BOOTS" ]; then
	check "mount ext4 again for more writes" mount -t ext4 /dev/mapper/c41f mnt || bail "mount"
	workload "$next_a" "$next_s" "$next_f"
	sleep 3
	vm_kill_now 3000
fi
check_eq "no write errors on the append device" "$(dmsetup status c41a | grep -o 'write_errors [0-9]*')" "write_errors 0"
vm_dmesg_check "41-upper-crash-boot$OBD_VM_BOOT"
tap_done
