#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 42-snapshot.sh: obd snapshot, live snapshots of a writable device (issue #9).
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/42-snapshot.sh
#   - two snapshots (default and given names) taken while fsx writes,
#     discards, zeroes, flushes and reads from two threads against a model:
#     every read during and after matches the model (no write lost or
#     reordered), the device equals it at the end; the table stacks the
#     sealed files under the newest upper; each new upper's parent uuid is
#     the sealed layer's
#   - the sealed files are read-only layers: obd cat of the lowers, the
#     sealed files and the last upper = the model; obd commit
#     --commit_sealed of each and obd commit of the last upper stack
#     read-only in the kernel to the same bytes
#   - ext4 mounted on a writable device, files written before, during and
#     after a snapshot: after unmount fsck -fn is clean and the committed
#     layers mounted read-only hold every file
#   - refused, device unchanged: a sparse upper, a device without upper, no
#     such device, a NEW_DATA that exists
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/upper_lib.sh
. "$OBD_TOP/tests/vm/upper_lib.sh"
vm_test_begin 42-snapshot
modprobe ext4 2>/dev/null
seed=${OBD_SEED:-$(date +%s)}
diag "OBD_SEED=$seed"
uuid_of() { "$obd" info --json "$@" | $PY -c 'import json, sys; print(json.load(sys.stdin)["layers"][-1]["uuid"])'; }
parent_of() { "$obd" info --json "$@" | $PY -c 'import json, sys; print(json.load(sys.stdin)["layers"][-1]["parent_uuid"])'; }
check "obd cat of the lower stack" "$obd" cat --no-progress -o lower.raw "$L1" "$L2"

# --- two snapshots under fsx --------------------------------------------------------
check "obd create the upper" "$obd" create "$d/up.data" "$d/up.index" 64M
check "attach read-write" "$obd" attach --name snap "$L1" "$L2" "$d/up.data" "$d/up.index"
vm_on_exit dmsetup remove snap
# 500 operations at least, and on until both snapshots are taken
$fsx run /dev/mapper/snap lower.raw model.out "$seed" 500 --align 512 --threads 2 --until fsx.stop > fsx.out 2>&1 &
fsx_pid=$!
sleep 4
running1=$(kill -0 $fsx_pid 2>/dev/null && echo yes)
out1=$("$obd" snapshot snap 2>&1)
check_eq "snapshot 1 (default names) while fsx runs: sealed + new upper printed" "$out1" \
	"$(printf 'sealed %s\nupper %s %s' "$d/up.data" "$d/up.1.data" "$d/up.1.index")"
sleep 4
running2=$(kill -0 $fsx_pid 2>/dev/null && echo yes)
out2=$("$obd" snapshot snap "$d/u3.data" "$d/u3.index" 2>&1)
check_eq "snapshot 2 (given names) while fsx runs" "$out2" \
	"$(printf 'sealed %s\nupper %s %s' "$d/up.1.data" "$d/u3.data" "$d/u3.index")"
touch fsx.stop
wait $fsx_pid
fsx_rc=$?
check_eq "fsx was still running at both snapshots" "$running1 $running2" "yes yes"
check "fsx: 2 threads x 500 ops, every read right across the snapshots, the device = the model at the end" \
	bash -c "[ $fsx_rc = 0 ] && grep -q '^fsx: ok' fsx.out" || diag "$(cat fsx.out)"
check_eq "the table: lowers, the two sealed files, the newest upper" "$(dmsetup table snap)" \
	"0 $len overlaybd 4 $L1 $L2 $d/up.data $d/up.1.data 3 upper $d/u3.data $d/u3.index"
st=$(dmsetup status snap)
check "status: the new upper took writes, no write errors ($st)" \
	bash -c "[[ '$st' =~ upper\ append\ .*write_errors\ 0 ]]"
check_eq "each new upper's parent is the sealed layer below it" \
	"$(parent_of "$d/up.1.data") $(parent_of "$d/u3.data" "$d/u3.index")" \
	"$(uuid_of "$d/up.data") $(uuid_of "$d/up.1.data")"
check_eq "the device = the model" "$(devsha snap)" "$(shaof model.out)"
check "detach" "$obd" detach snap
check_eq "obd cat of lowers + sealed files + the last upper = the model" \
	"$("$obd" cat --no-progress "$L1" "$L2" "$d/up.data" "$d/up.1.data" "$d/u3.data" "$d/u3.index" | sha256sum | cut -d' ' -f1)" \
	"$(shaof model.out)"
check "obd commit --commit_sealed of both sealed files, obd commit of the last upper" bash -c "
	'$obd' commit --no-progress --commit_sealed '$d/up.data' '$d/c1.commit' &&
	'$obd' commit --no-progress --commit_sealed '$d/up.1.data' '$d/c2.commit' &&
	'$obd' commit --no-progress -z '$d/u3.data' '$d/u3.index' '$d/c3.commit'"
check "the committed layers stack read-only" \
	dmsetup create snapc --readonly --table "0 $len overlaybd 5 $L1 $L2 $d/c1.commit $d/c2.commit $d/c3.commit"
check_eq "... to the model's bytes" "$(devsha snapc)" "$(shaof model.out)"
check "remove" dmsetup remove snapc
check "the sealed files themselves stack read-only in the kernel" \
	dmsetup create snaps --readonly --table "0 $len overlaybd 4 $L1 $L2 $d/up.data $d/up.1.data"
check_eq "... to what obd cat shows of them" "$(devsha snaps)" \
	"$("$obd" cat --no-progress "$L1" "$L2" "$d/up.data" "$d/up.1.data" | sha256sum | cut -d' ' -f1)"
check "remove" dmsetup remove snaps

# --- ext4 mounted, files written around a snapshot -------------------------------------
mkdir -p mnt
check "obd create an upper for ext4" "$obd" create "$d/fs.data" "$d/fs.index" 64M
check "attach it" "$obd" attach --name snapfs "$L1" "$L2" "$d/fs.data" "$d/fs.index"
check "mkfs.ext4 and mount" bash -c "mkfs.ext4 -q -F /dev/mapper/snapfs && mount /dev/mapper/snapfs mnt"
vm_on_exit umount -q "$d/mnt"
# writer N FROM TO: files N.FROM .. N.TO of 64 KiB, random, with their sha256 listed
writer() {
	local i
	for ((i = $2; i <= $3; i++)); do
		head -c 65536 /dev/urandom > "mnt/$1.$i" && sha256sum "mnt/$1.$i" >> "sums.$1"
	done
}
writer a 1 10
writer b 1 80 &
wpid=$!
sleep 2
out=$("$obd" snapshot snapfs 2>&1)
check "snapshot with ext4 mounted and a writer running" test "$out" = \
	"$(printf 'sealed %s\nupper %s %s' "$d/fs.data" "$d/fs.1.data" "$d/fs.1.index")" || diag "$out"
check "the writer was still running when the snapshot returned" kill -0 $wpid
wait $wpid
writer c 1 10
check "umount" umount mnt
check "fsck.ext4 -fn is clean" fsck.ext4 -fn /dev/mapper/snapfs
check "detach" "$obd" detach snapfs
check "commit the sealed layer and the last upper" bash -c "
	'$obd' commit --no-progress --commit_sealed '$d/fs.data' '$d/fs1.commit' &&
	'$obd' commit --no-progress '$d/fs.1.data' '$d/fs.1.index' '$d/fs2.commit'"
check "the committed image attaches read-only" \
	"$obd" attach --name snapfsc "$L1" "$L2" "$d/fs1.commit" "$d/fs2.commit"
check "and mounts" mount -o ro,noload /dev/mapper/snapfsc mnt
check "every file written before, during and after the snapshot is intact (100 files)" \
	bash -c "[ \$(cat sums.a sums.b sums.c | wc -l) = 100 ] && cat sums.a sums.b sums.c | sha256sum -c --quiet"
umount mnt
check "detach" "$obd" detach snapfsc

# --- refused, nothing changed ------------------------------------------------------------
refuse() {	# refuse DESC PATTERN ARGS...: obd snapshot fails, its message matches
	local desc=$1 pat=$2 out rc
	shift 2
	out=$("$obd" snapshot "$@" 2>&1)
	rc=$?
	check "$desc: refused ($out)" bash -c "[ $rc -ne 0 ] && grep -q -- '$pat' <<< \"\$1\"" _ "$out"
}
check "obd create -s (sparse)" "$obd" create -s "$d/sp.data" 64M
check "attach with a sparse upper" "$obd" attach --name snapsp "$L1" "$L2" "$d/sp.data"
t0=$(dmsetup table snapsp)
refuse "a sparse upper" "is sparse: only an append-mode upper can be sealed" snapsp
check_eq "a sparse upper: the table is unchanged" "$(dmsetup table snapsp)" "$t0"
check "a sparse upper: the device still takes writes" \
	dd if=/dev/urandom of=/dev/mapper/snapsp bs=4096 count=4 oflag=direct status=none
check "detach" "$obd" detach snapsp
check "attach read-only (no upper)" "$obd" attach --name snapro "$L1" "$L2"
refuse "no upper" "has no writable upper layer" snapro
check "detach" "$obd" detach snapro
refuse "no such device" "no such device-mapper device" no-such-dev
check "attach the last upper again" "$obd" attach --name snapx "$L1" "$L2" "$d/up.data" "$d/up.1.data" "$d/u3.data" "$d/u3.index"
t0=$(dmsetup table snapx)
: > "$d/taken.data"
refuse "NEW_DATA exists" "taken.data" snapx "$d/taken.data" "$d/taken.index"
check_eq "NEW_DATA exists: the table is unchanged" "$(dmsetup table snapx)" "$t0"
check "NEW_DATA exists: the device is not left suspended" \
	bash -c "dmsetup info snapx | grep -q '^State: *ACTIVE'"
check "NEW_DATA exists: the given index was not made" test ! -e "$d/taken.index"
check "detach" "$obd" detach snapx
vm_dmesg_check 42-snapshot
tap_done
