#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 48-upper-index.sh: an append-mode upper's index under an fsync-heavy
# workload, its record limit, and which upper files the inline read path
# reads (review H2, M1, M9, L7).
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/48-upper-index.sh
#   - 100,000 O_DSYNC 4 KiB writes (a flush each) to an append upper on
#     tmpfs: the index grows by 16 bytes a record (the partly filled block
#     is rewritten in place, not a new padded block per flush), status
#     counts them, the device reopens equal to the model
#     (OBD_48_WRITES=N for fewer)
#   - the record limit lowered (module parameter upper_max_records): status
#     shows the room left, writes and discards fail with ENOSPC exactly at
#     it, flushes still work, the device reads and reopens equal to the
#     model, writes succeed again once the limit is raised, `obd commit`
#     of the files stacks read-only to the same bytes
#   - the index budget bounds the limit too (index_budget_mb / 160 B a
#     record, what loading takes at most): with a 16 MiB budget index_room
#     follows it, the upper reopens within it; a budget so small that the
#     upper cannot load refuses the table naming index_budget_mb
#   - inline reads (lowers on ext4, which honours IOCB_NOWAIT): an upper
#     on 9p (no FMODE_NOWAIT) is read by the worker only, its data right;
#     an upper on ext4 is read inline, and reading it leaves its atime
#     alone (O_NOATIME)
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/upper_lib.sh
. "$OBD_TOP/tests/vm/upper_lib.sh"
vm_test_begin 48-upper-index
modprobe ext4 2>/dev/null
modprobe loop 2>/dev/null
DS="$PY $OBD_TOP/tests/vm/upper_dsync.py"
P=/sys/module/dm_overlaybd/parameters/upper_max_records
B=/sys/module/dm_overlaybd/parameters/index_budget_mb
# A budget that leaves the record limit at 2^23 (8388608 x 160 B = 1.25 GiB)
# for the checks of the limit itself; the budget case sets its own.
LIM=8388608
echo 4096 > $B
vm_on_exit sh -c "echo 0 > $B"
nwrites=${OBD_48_WRITES:-$(vm_scaled 100000)}
seed=${OBD_SEED:-$(date +%s)}
diag "OBD_SEED=$seed"

check "obd cat of the lower stack" "$obd" cat --no-progress -o lower.raw "$L1" "$L2"
check "obd create (append, on tmpfs)" "$obd" create "$d/u.data" "$d/u.index" 64M
check "dmsetup create" dmsetup create obd48 --table "$(table "$d/u.data" "$d/u.index")"
check_eq "a fresh upper: records 0, index_room the default limit" \
	"$(stat_field obd48 records) $(stat_field obd48 index_room) $(cat $P)" "0 $LIM $LIM"
# Reloading builds up to two 24-byte maps a record in one object, and the
# module allocates at most 512 MiB an object: 2^24 records would reopen as
# "Invalid upper layer index" (review H2). A parameter asking for more counts
# as the maximum.
echo $((2 * LIM)) > $P
check_eq "upper_max_records 2^24: index_room stays 2^23 (what a reload can allocate)" \
	"$(stat_field obd48 index_room)" "$LIM"
echo $LIM > $P

# --- H2: a flush per write ---------------------------------------------------------
t0=$(date +%s)
out=$($DS /dev/mapper/obd48 lower.raw model.1 "$seed" "$nwrites" 2>&1)
diag "$nwrites O_DSYNC writes: $out ($(($(date +%s) - t0)) s)"
check_eq "every write succeeded, fsync too" "$out" "written $nwrites nospc 0 fsync ok"
recs=$(stat_field obd48 records)
flushes=$(stat_field obd48 flushes)
isize=$(stat -c %s "$d/u.index")
diag "records $recs flushes $flushes index $isize bytes ($(dmsetup status obd48))"
check_eq "a record a write (a flush after each: none joined)" "$recs" "$nwrites"
check "a flush a write ($flushes >= $nwrites)" test "$flushes" -ge "$nwrites"
check_eq "index = header + a record a write in 4 KiB blocks ($isize bytes, $((isize / nwrites)) a write)" \
	"$isize" "$((4096 + (nwrites + 255) / 256 * 4096))"
check_eq "index_room = limit - records" "$(stat_field obd48 index_room)" "$((LIM - recs))"
check_eq "the device = the model" "$(devsha obd48)" "$(shaof model.1)"
check "remove, reopen" bash -c "dmsetup remove obd48 && dmsetup create obd48 --table '$(table "$d/u.data" "$d/u.index")'"
check_eq "after the reopen the device = the model" "$(devsha obd48)" "$(shaof model.1)"
check_eq "... and status counts the records loaded" "$(stat_field obd48 records)" "$recs"

# --- the index budget bounds the record limit ----------------------------------------
echo 16 > $B
lim=$(((16 << 20) / 160))
check_eq "index_budget_mb 16: index_room = 16 MiB / 160 B - records" \
	"$(stat_field obd48 index_room)" "$((lim > recs ? lim - recs : 0))"
check "remove, reopen within the 16 MiB budget" bash -c "dmsetup remove obd48 && dmsetup create obd48 --table '$(table "$d/u.data" "$d/u.index")'"
check_eq "... the device = the model" "$(devsha obd48)" "$(shaof model.1)"
check "remove" dmsetup remove obd48
echo 1 > $B
vm_dmesg_mark budget
check "index_budget_mb 1: the upper cannot load, the table is refused" \
	bash -c "! dmsetup create obd48 --table '$(table "$d/u.data" "$d/u.index")' 2>/dev/null"
check "... the kernel log names index_budget_mb" grep -q index_budget_mb <<< "$(vm_dmesg_since budget)"
dmsetup remove obd48 2>/dev/null
echo 4096 > $B
check "budget back: reopen" dmsetup create obd48 --table "$(table "$d/u.data" "$d/u.index")"

# --- the limit ------------------------------------------------------------------------
vm_on_exit sh -c "echo $LIM > $P"
echo $((recs + 300)) > $P
check_eq "limit lowered to records + 300: index_room 300" "$(stat_field obd48 index_room)" 300
out=$($DS /dev/mapper/obd48 model.1 model.2 $((seed + 1)) 400 2>&1)
check_eq "400 more writes: 300 succeed, then ENOSPC; the flush still works" \
	"$out" "written 300 nospc 100 fsync ok"
check_eq "index_room 0, records = the limit" \
	"$(stat_field obd48 index_room) $(stat_field obd48 records)" "0 $((recs + 300))"
check "a discard fails too (it needs records)" bash -c "! blkdiscard -o 0 -l 4096 /dev/mapper/obd48 2>/dev/null"
check "write_errors counted" test "$(stat_field obd48 write_errors)" -ge 101
check_eq "the device = the model" "$(devsha obd48)" "$(shaof model.2)"
check "remove, reopen at the limit" bash -c "dmsetup remove obd48 && dmsetup create obd48 --table '$(table "$d/u.data" "$d/u.index")'"
check_eq "after the reopen the device = the model" "$(devsha obd48)" "$(shaof model.2)"
out=$($DS /dev/mapper/obd48 model.2 model.3 $((seed + 2)) 5 2>&1)
check_eq "still full after the reopen" "$out" "written 0 nospc 5 fsync ok"
echo $LIM > $P
out=$($DS /dev/mapper/obd48 model.2 model.3 $((seed + 3)) 50 2>&1)
check_eq "limit raised: writes succeed again" "$out" "written 50 nospc 0 fsync ok"
check_eq "the device = the model" "$(devsha obd48)" "$(shaof model.3)"
check "remove" dmsetup remove obd48
check "obd commit of the upper" "$obd" commit --no-progress "$d/u.data" "$d/u.index" "$d/u.commit"
check "the committed upper stacks read-only" \
	dmsetup create obd48c --readonly --table "0 $len overlaybd 3 $L1 $L2 $d/u.commit"
check_eq "... to the same bytes" "$(devsha obd48c)" "$(shaof model.3)"
check "remove" dmsetup remove obd48c
rm -f "$d/u.data" "$d/u.index" "$d/u.commit"

# --- M1: which uppers are read inline ----------------------------------------------
truncate -s 200M e4.img && mkfs.ext4 -q -F -I 256 e4.img && mkdir -p e4 && mount -o loop e4.img e4 &&
	vm_on_exit umount "$d/e4"
cp "$L1" "$L2" e4/ || bail "copy the lowers to ext4"
l1=$d/e4/$(basename "$L1") l2=$d/e4/$(basename "$L2")
t9=$OBD_SHARE/obd48.$$
mkdir -p "$t9" && vm_on_exit rm -rf "$t9"
head -c 4096 /dev/urandom > blk.bin
# rd NAME BLOCK: one O_DIRECT 4 KiB read of the device (it reaches map(), not the page cache)
rd() { dd if="/dev/mapper/$1" bs=4096 skip="$2" count=1 iflag=direct status=none; }
for where in 9p ext4; do
	[ $where = 9p ] && u=$t9 || u=$d/e4
	check "$where: obd create" "$obd" create "$u/m.data" "$u/m.index" 64M
	check "$where: dmsetup create (lowers on ext4)" dmsetup create obd48m \
		--table "0 $len overlaybd 2 $l1 $l2 3 upper $u/m.data $u/m.index"
	dd if=blk.bin of=/dev/mapper/obd48m bs=4096 seek=100 oflag=direct,dsync status=none
	rd obd48m 200 >/dev/null
	i0=$(stat_field obd48m inline)
	rd obd48m 200 >/dev/null
	i1=$(stat_field obd48m inline)
	check "$where: a lower block in the page cache is read inline ($i0 -> $i1)" test "$i1" -gt "$i0"
	at0=$(stat -c %x "$u/m.data")
	rd obd48m 100 >/dev/null
	i0=$(stat_field obd48m inline)
	got=$(rd obd48m 100 | sha256sum | cut -d' ' -f1)
	i1=$(stat_field obd48m inline)
	check_eq "$where: the upper block reads back" "$got" "$(shaof blk.bin)"
	if [ $where = 9p ]; then
		check_eq "9p (no FMODE_NOWAIT): the upper block is never read inline" "$i1" "$i0"
	else
		check "ext4: the upper block in the page cache is read inline ($i0 -> $i1)" test "$i1" -gt "$i0"
		check_eq "ext4: reading the upper leaves its atime alone (O_NOATIME)" \
			"$(stat -c %x "$u/m.data")" "$at0"
	fi
	check "$where: remove" dmsetup remove obd48m
done

vm_dmesg_check 48-upper-index
tap_done
