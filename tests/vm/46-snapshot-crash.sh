#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 46-snapshot-crash.sh: a hard reset (QEMU killed) while live snapshots are
# taken under a write workload (issue #9). By hand:
#   scripts/vm-run.sh --kernel 6.1 --scratch-disk 256 --boots 3 -- bash tests/vm/46-snapshot-crash.sh
# Boot 1: an append upper u0 over the reference stack on the scratch disk's
# ext4; random 4 KiB-unit writes run on it (upper_crash.py: intents logged
# before each write, acknowledgements after each fsync) while `obd snapshot`
# seals the current upper and stacks a fresh one (u1, u2, ...) again and
# again; QEMU is killed at a random moment: before, inside or after a
# snapshot.
# Boot 2: the chain is rebuilt from the files alone, as a user would after
# a crash: each data file whose kind is "sealed" is a read-only layer, the
# first one that is not is the upper (a snapshot cut short leaves either the
# old upper unsealed, or it sealed with the new one in place: never a
# sealed file that does not load). Then: the table loads, every unit holds
# the last write a completed flush acknowledged or a later one, `obd cat`
# of the chain shows the device's bytes, each sealed layer commits with
# --commit_sealed, and the device takes writes again. Boot 2 writes and
# snapshots on from there and is killed again; boot 3 checks as boot 2 did.
# vm-disk-mb: 256
# vm-boots: 3
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/upper_lib.sh
. "$OBD_TOP/tests/vm/upper_lib.sh"
CR="$PY $OBD_TOP/tests/vm/upper_crash.py"
vm_crash_begin 46-snapshot-crash s
seed=${OBD_VM_SEED:-11}

# Writes from write number $1 and snapshots from u$2 on (the upper is u$(($2 - 1))), then the kill.
workload() {
	echo "start $(($2 - 1))" >> snap.log && sync snap.log
	$CR write /dev/mapper/c46 w.log "$seed" "$1" 2>>w.err &
	(
		i=$2
		while :; do
			sleep "0.$((1 + RANDOM % 3))"
			echo "begin $i" >> snap.log && sync snap.log
			"$obd" snapshot c46 "$d/u$i.data" "$d/u$i.index" 2>>snap.err &&
				echo "end $i" >> snap.log && sync snap.log
			i=$((i + 1))
		done
	) &
	sleep 3
	diag "before the kill: $(grep -c '^end' snap.log) snapshots done, $(grep -c '^a' w.log) flushes acknowledged"
	vm_kill_now 3000
}

if [ "$OBD_VM_BOOT" = 1 ]; then
	check "obd cat of the lower stack" "$obd" cat --no-progress -o lower.raw "$L1" "$L2"
	check "obd create u0 (append)" "$obd" create u0.data u0.index 64M || bail "create"
	check "dmsetup create with u0" \
		dmsetup create c46 --table "0 $len overlaybd 2 $L1 $L2 3 upper $d/u0.data $d/u0.index" ||
		bail "table"
	: > snap.log
	sync
	workload 0 1
fi

# --- a boot after the reset: rebuild the chain from the files -----------------------------
diag "snapshot log: $(tr '\n' ' ' < snap.log)"
sealed=() i=0 top=
while [ -e "u$i.data" ]; do
	if "$obd" info "u$i.data" 2>/dev/null | grep -q '^ *kind: *sealed$'; then
		sealed+=("$d/u$i.data")
		i=$((i + 1))
		continue
	fi
	top=$i
	break
done
if [ -z "$top" ]; then
	# every data file sealed: the new upper never reached the disk (obd
	# snapshot makes it before sealing, so this should not happen)
	diag "no unsealed upper left: a fresh u$i"
	check "obd create a fresh upper" "$obd" create "u$i.data" "u$i.index" 64M
	top=$i
fi
# a snapshot cut short may have left the next upper's files unused
for f in u*.data; do
	j=${f#u}
	j=${j%.data}
	[ "$j" -le "$top" ] || rm -f "u$j.data" "u$j.index"
done
lo=$(awk '$1 == "start" || $1 == "end" { v = $2 } END { print v }' snap.log)
hi=$(awk '$1 == "start" || $1 == "begin" { v = $2 } END { print v }' snap.log)
diag "chain: ${#sealed[@]} sealed layer(s), upper u$top (the last finished snapshot left u$lo, the last begun one u$hi)"
check "no snapshot failed before the crash" test ! -s snap.err || diag "$(head -3 snap.err)"
check "the upper is the last finished snapshot's new one, or the one the next snapshot made" \
	test "$top" -ge "$lo" -a "$top" -le "$hi"
n=$((2 + ${#sealed[@]}))
tbl="0 $len overlaybd $n $L1 $L2 ${sealed[*]} 3 upper $d/u$top.data $d/u$top.index"
check "the rebuilt table loads" dmsetup create c46 --table "$tbl" || bail "table: $tbl"
vm_on_exit dmsetup remove c46
touch w.err
check_eq "the writer saw no I/O error before the crash" "$(grep -c . w.err)" 0 || diag "$(head -5 w.err)"
out=$($CR check /dev/mapper/c46 w.log "$seed" lower.raw 2>&1)
check "every unit holds the last acknowledged write or a later one ($(head -1 <<<"$out"))" \
	grep -q '^ok ' <<<"$out" || diag "$out"
check "suspend for the userspace reads" dmsetup suspend c46
check_eq "obd cat of the chain = the device" \
	"$("$obd" cat --no-progress "$L1" "$L2" "${sealed[@]}" "u$top.data" "u$top.index" | sha256sum | cut -d' ' -f1)" \
	"$(dmsetup resume c46 && shaof /dev/mapper/c46)"
if [ "$OBD_VM_BOOT" -lt "$OBD_VM_BOOTS" ]; then
	workload "$(sed -n 's/^next //p' <<<"$out")" $((top + 1))
fi
for s in "${sealed[@]}"; do
	check "$(basename "$s"): commits with --commit_sealed" \
		"$obd" commit --no-progress --commit_sealed "$s" "$s.commit"
	rm -f "$s.commit"
done
head -c 65536 /dev/urandom > new.bin
check "the device takes writes again" dd if=new.bin of=/dev/mapper/c46 bs=64k seek=7 oflag=direct,sync status=none
check_eq "... and reads them back" \
	"$(dd if=/dev/mapper/c46 bs=64k skip=7 count=1 iflag=direct status=none | sha256sum | cut -d' ' -f1)" \
	"$(shaof new.bin)"
check_eq "no write errors" "$(dmsetup status c46 | grep -o 'write_errors [0-9]*')" "write_errors 0"
vm_dmesg_check "46-snapshot-crash-boot$OBD_VM_BOOT"
tap_done
