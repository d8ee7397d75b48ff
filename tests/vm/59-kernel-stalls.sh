#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 59-kernel-stalls.sh: three findings of the kernel review (issue #18,
# /work/shared/reviews/kmod.md) that were fixed without a test of their own.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/59-kernel-stalls.sh
# The misses are answered by the stand-in daemon of remote_lib.py
# (miss_lib.sh). Each case fails on the module of commit 1f45303 (6.1, 6.12).
#   - M2: a blob's .meta is read without obd_remote_mutex. The cache entry
#     of a cold remote layer A sits on ext4 on a dm-linear device that is
#     suspended (--nolockfs: its reads wait), with the .meta's pages dropped
#     (fincore says 0): `dmsetup create` of A blocks reading the .meta (D
#     state, obd_blob_get on its stack). Meanwhile a cold 64 KiB read of B,
#     another remote device (cache on tmpfs), is answered within 2 s (its
#     miss needs obd_remote_mutex, which the old module held across that
#     read); A's create is still blocked then. After the resume A's create
#     completes, A reads its layer (cmp with obd cat), B's read was right;
#   - M4: `obd snapshot` of a device whose 20 O_DIRECT reads are parked on
#     misses of a daemon that never answers returns within 15 s (a suspend
#     with flush: the parked reads fail with EIO after 5 s of grace, as
#     docs/dm-overlaybd.rst "Suspend with reads waiting" says; none returns
#     other bytes, and the kernel log says why); once the daemon answers,
#     the device reads the model (the lower and a write before and after
#     the snapshot) and the layers (sealed file, new upper) hold it;
#   - L4: shared objects are keyed by inode identity, not by (s_dev, i_ino,
#     size, mtime): two btrfs subvolumes share one super block and number
#     their first file 257, so two different layers of the same size and
#     mtime, one in each, are two layers (each device reads its own bytes,
#     created in either order), and two remote cache entries, one in each,
#     are two blobs (the old module refused the second with EBUSY). Skipped
#     on a kernel without btrfs;
#   - dmesg: no WARN, hung task or leak.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

ref=$OBD_TOP/tests/data/overlaybd-ref
obd=$OBD_TOP/build/obd
PY=/usr/bin/python3
R="$PY $OBD_TOP/tests/vm/remote_lib.py"
param=/sys/module/dm_overlaybd/parameters
len=131072	# 64 MiB in sectors
[ -x "$obd" ] || bail "$obd missing: run make first"
vm_test_begin 59-kernel-stalls
echo 300 >$param/request_timeout
vm_on_exit sh -c "echo 300 >$param/request_timeout"
mkdir -p src cache cache2 mnt bmnt
# shellcheck source=tests/vm/miss_lib.sh
. "$OBD_TOP/tests/vm/miss_lib.sh"

devsha() { sha256sum <"/dev/mapper/$1" | cut -d' ' -f1; }
catsha() { "$obd" cat --no-progress "$@" | sha256sum | cut -d' ' -f1; }
# entry_in DIR BLOB: a cold cache entry of BLOB in DIR (its copy in src/ for the daemon)
entry_in() {
	cp "$2" "src/sha256:$(sha256sum "$2" | cut -d' ' -f1)"
	$R entry "$2" "$1"
}
lap() { diag "$1 at $SECONDS s"; }
gone() { ! kill -0 "$1" 2>/dev/null; }
nreads() { grep -c '^READ' "$1" 2>/dev/null; }
# cleanup at exit, whatever failed: devices first, then the daemon (it holds
# the cache files open), then the file systems and their block devices
lin=obd59-lin
cleanup_fs() {
	stop_daemon
	umount "$d/bmnt" 2>/dev/null
	umount "$d/mnt" 2>/dev/null
	dmsetup resume $lin 2>/dev/null
	dmsetup remove $lin 2>/dev/null
}
remove_devs() {
	local n
	for n in obd59-a obd59-b obd59-c obd59-s1 obd59-s2 obd59-r3 obd59-r4; do
		dmsetup remove "$n" 2>/dev/null
	done
}
vm_on_exit cleanup_fs
vm_on_exit remove_devs

# --- M2: the .meta of a blob is read without obd_remote_mutex --------------------------
modprobe ext4 2>/dev/null
truncate -s 64M ext4.img
loop=$(vm_loop_attach ext4.img) || bail "no loop device"
vm_on_exit losetup -d "$loop"
check "ext4 on a dm-linear device" bash -c "
	dmsetup create $lin --table '0 131072 linear $loop 0' &&
	mkfs.ext4 -q -F /dev/mapper/$lin && mount -o noatime /dev/mapper/$lin mnt &&
	mkdir mnt/cache" || bail "no ext4 on dm-linear"
lap "ext4 made"
start_daemon d1.log || bail "no stand-in daemon"
lap "daemon started"
# the layers' bytes: l1 (plain or ZFile), l2 alone
"$obd" cat --no-progress -o l1.raw "$ref/l1.commit" || bail "obd cat"
"$obd" cat --no-progress -o l2.raw "$ref/l2.commit.lz4.zfile.tar" || bail "obd cat"
lap "setup done"
tb=$(entry_in cache "$ref/l1.commit.lz4.zfile") || bail "no cache entry"
ta=$(entry_in "$d/mnt/cache" "$ref/l2.commit.lz4.zfile.tar") || bail "no cache entry"
check "create B over a cold remote layer (cache on tmpfs)" \
	dmsetup create obd59-b --readonly --table "0 $len overlaybd 1 $tb"
# B's virtual [8M, 8.5M) is random data (ZFile blocks of ~4 KiB): cold
t0=$(date +%s%N)
dd if=/dev/mapper/obd59-b of=/dev/null bs=64K count=1 skip=128 iflag=direct status=none
diag "B: a cold 64 KiB read before the stall: $((($(date +%s%N) - t0) / 1000000)) ms"

# A's blob file is looked up (dentry and inode cached), its .meta's pages are
# dropped (only those: dropping every cache would make B's reader and the
# daemon fault their code back in); a suspend without lockfs holds every read
# of the device
amet=$(echo "$ta" | cut -d: -f5-).meta
sync
stat "${amet%.meta}" >/dev/null
dd if="$amet" iflag=nocache count=0 status=none
check_eq "no page of A's .meta in memory (fincore)" "$(fincore -n -o RES -b "$amet" | tr -d ' ')" 0
check "suspend the dm-linear device under A's cache" dmsetup suspend --nolockfs $lin
dmsetup create obd59-a --readonly --table "0 $len overlaybd 1 $ta" 2>a.err &
apid=$!
a_blocked() { [ "$(cut -d' ' -f3 "/proc/$apid/stat" 2>/dev/null)" = D ]; }
check "A's create blocks (uninterruptible)" until_true 10 a_blocked
stack=$(cat "/proc/$apid/stack" 2>/dev/null)
diag "A's dmsetup: $(echo "$stack" | grep -o 'obd_[a-z_]*\|filemap_read\|folio_wait[a-z_]*' | tr '\n' ' ')"
if [ -n "$stack" ]; then
	check "... reading its blob's .meta (obd_blob_* on its stack)" grep -q 'obd_blob' <<<"$stack"
fi
before=$(nreads d1.log)
# (the reader notes its own end: polling would add its period to the time)
t0=$(date +%s%N)
(dd if=/dev/mapper/obd59-b of=b.out bs=64K count=1 skip=132 iflag=direct status=none 2>b.err
	echo $? >b.rc; date +%s%N >b.end) &
bpid=$!
until_true 3 test -s b.end
ms=999999
[ -s b.end ] && ms=$((($(cat b.end) - t0) / 1000000))
check "meanwhile: B's cold 64 KiB read completes within 2 s ($ms ms)" \
	test $ms -le $((2000 * $(vm_slow)))
check "A's create is still blocked after B's read" a_blocked
check "B's read went to the daemon (READs $before -> $(nreads d1.log))" \
	test "$(nreads d1.log)" -gt "$before"
check "resume the dm-linear device" dmsetup resume $lin
wait $bpid
check "B's read succeeded" test "$(cat b.rc)" = 0 || diag "$(cat b.err)"
check_eq "... with the layer's bytes" "$(sha256sum <b.out)" \
	"$(dd if=l1.raw bs=64K count=1 skip=132 status=none | sha256sum)"
check "A's create completes after the resume" until_true 30 gone $apid
wait $apid
check "... successfully" test $? -eq 0 || diag "$(cat a.err)"
check "A reads its layer's bytes (cmp with obd cat of it)" cmp /dev/mapper/obd59-a l2.raw
check "remove A and B" bash -c "dmsetup remove obd59-a && dmsetup remove obd59-b"

lap "M2 done"
# --- M4: obd snapshot while reads wait on misses --------------------------------------
# (request_timeout bounds the old module's wait: it had no presuspend)
echo 30 >$param/request_timeout
tc=$(entry_in "$d/cache2" "$ref/l1.commit") || bail "no cache entry"
check "obd create an append upper" "$obd" create "$d/up.data" "$d/up.index" 64M
check "create C: a cold remote layer under the append upper" \
	dmsetup create obd59-c --table "0 $len overlaybd 1 $tc 3 upper $d/up.data $d/up.index"
cp --sparse=always l1.raw model
head -c 65536 /dev/urandom >w1
head -c 65536 /dev/urandom >w2
check "write 64 KiB at 16M of C" \
	dd if=w1 of=/dev/mapper/obd59-c bs=64K seek=256 oflag=direct conv=notrunc,fsync status=none
dd if=w1 of=model bs=64K seek=256 conv=notrunc status=none
start_daemon d2.log --silent || bail "no silent daemon"
readers=()
for i in $(seq 0 19); do
	# 4 KiB of l1's random data [8M+96K, 8M+176K): never fetched
	dd if=/dev/mapper/obd59-c of=rd.$i bs=4K count=1 skip=$((2048 + 24 + i)) \
		iflag=direct status=none 2>rd.$i.err &
	readers+=($!)
done
pending_ge() { [ "$(stat_field obd59-c pending)" -ge "$1" ]; }
lap "readers started"
check "20 cold reads of C wait (status pending >= 20)" until_true 60 pending_ge 20
diag "pending $(stat_field obd59-c pending)"
vm_dmesg_mark 59-snapshot
t0=$(date +%s%N)
check "obd snapshot of C returns within 15 s" within 15 sh -c "'$obd' snapshot obd59-c >snap.out 2>&1"
diag "obd snapshot took $((($(date +%s%N) - t0) / 1000000)) ms"
check_eq "... sealed the upper, a new one on top" "$(cat snap.out)" \
	"$(printf 'sealed %s\nupper %s %s' "$d/up.data" "$d/up.1.data" "$d/up.1.index")"
check_eq "the table: the remote layer, the sealed file, the new upper" "$(dmsetup table obd59-c)" \
	"0 $len overlaybd 2 $tc $d/up.data 3 upper $d/up.1.data $d/up.1.index"
none_running() { local p; for p in "${readers[@]}"; do kill -0 "$p" 2>/dev/null && return 1; done; return 0; }
lap "snapshot done"
check "the parked readers ended" until_true 10 none_running
fails=0
wrong=0
for i in $(seq 0 19); do
	if wait "${readers[$i]}"; then
		cmp -s rd.$i <(dd if=model bs=4K count=1 skip=$((2048 + 24 + i)) status=none) ||
			wrong=$((wrong + 1))
	else
		grep -q 'Input/output error' rd.$i.err && fails=$((fails + 1))
	fi
done
check_eq "each parked read failed with EIO (documented for a suspend with flush)" "$fails" 20
check_eq "no read returned other bytes than the model's" "$wrong" 0
says_why() { vm_dmesg_since 59-snapshot | grep -q 'device suspending: failing a read waiting for bytes'; }
check "the kernel log says why" says_why
start_daemon d3.log || bail "no stand-in daemon"
check "write 64 KiB at 20M of C (the new upper)" \
	dd if=w2 of=/dev/mapper/obd59-c bs=64K seek=320 oflag=direct conv=notrunc,fsync status=none
dd if=w2 of=model bs=64K seek=320 conv=notrunc status=none
lap "daemon answers"
check "the daemon answers: C reads the model (cmp)" cmp /dev/mapper/obd59-c model
check "remove C" dmsetup remove obd59-c
# (the 8 MiB of both writes: the device read the rest of the layers already)
check_eq "the layers (l1, the sealed file, the new upper) hold the model's [16M, 24M)" \
	"$("$obd" cat --no-progress --offset 16M --length 8M "$ref/l1.commit" "$d/up.data" "$d/up.1.data" \
		"$d/up.1.index" | sha256sum)" \
	"$(dd if=model bs=1M skip=16 count=8 status=none | sha256sum)"
echo 300 >$param/request_timeout

lap "M4 done"
# --- L4: layers and blobs on two btrfs subvolumes -------------------------------------
l4() {
	local loop2 s o x y
	truncate -s 256M btrfs.img
	loop2=$(vm_loop_attach btrfs.img) || { not_ok "a loop device for btrfs"; return; }
	vm_on_exit losetup -d "$loop2"
	check "btrfs with subvolumes s1..s4" bash -c "
		mkfs.btrfs -q -f $loop2 >/dev/null && mount $loop2 bmnt &&
		for s in s1 s2 s3 s4; do btrfs -q subvolume create bmnt/\$s || exit 1; done" || return
	# two layers of one size, different bytes
	for s in 1 2; do
		head -c 65536 /dev/urandom >r$s
		"$obd" create l$s.data l$s.index 1M && "$obd" write l$s.data l$s.index --offset 0 r$s &&
			"$obd" commit --no-progress l$s.data l$s.index bmnt/s$s/layer || { not_ok "build layer $s"; return; }
		touch -d '2026-01-01 00:00:00' bmnt/s$s/layer
	done
	check_eq "the two layers: same inode number, size and mtime (ns)" \
		"$(stat -c '%i %s %y' bmnt/s1/layer)" "$(stat -c '%i %s %y' bmnt/s2/layer)"
	check "... different bytes" bash -c "! cmp -s bmnt/s1/layer bmnt/s2/layer"
	lap "btrfs made"
	x=$(catsha bmnt/s1/layer)
	y=$(catsha bmnt/s2/layer)
	for o in "1 2" "2 1"; do
		for s in $o; do
			check "create a device on s$s/layer (order $o)" \
				dmsetup create obd59-s$s --readonly --table "0 2048 overlaybd 1 $d/bmnt/s$s/layer"
		done
		check_eq "each reads its own layer (order $o)" "$(devsha obd59-s1) $(devsha obd59-s2)" "$x $y"
		check_eq "... two layers parsed" "$(cat $param/layers_parsed)" 2
		dmsetup remove obd59-s1
		dmsetup remove obd59-s2
	done
	lap "layers done"
	# two cache entries, each the first file of its subvolume
	entry_in "$d/bmnt/s3" "$ref/l1.commit.lz4.zfile" >t3 || { not_ok "entry in s3"; return; }
	entry_in "$d/bmnt/s4" "$ref/l2.commit.lz4.zfile.tar" >t4 || { not_ok "entry in s4"; return; }
	check_eq "two cache files of one inode number" "$(stat -c %i "$(cut -d: -f5- t3)")" \
		"$(stat -c %i "$(cut -d: -f5- t4)")"
	# (their first 9 MiB, where l1 and l2 differ: whole remote devices were read above)
	check "create a device on the entry in s3" \
		dmsetup create obd59-r3 --readonly --table "0 $len overlaybd 1 $(cat t3)"
	check "create a device on the entry in s4 (another blob)" \
		dmsetup create obd59-r4 --readonly --table "0 $len overlaybd 1 $(cat t4)"
	check "each reads its own blob (cmp of their first 9 MiB)" \
		bash -c "cmp -n 9M /dev/mapper/obd59-r3 l1.raw && cmp -n 9M /dev/mapper/obd59-r4 l2.raw"
	dmsetup remove obd59-r3
	dmsetup remove obd59-r4
}
if modprobe btrfs 2>/dev/null && grep -qw btrfs /proc/filesystems; then
	l4
else
	skip "L4: layers on two btrfs subvolumes" "this kernel has no btrfs"
fi

lap "L4 done"
cleanup_fs
check_eq "no overlaybd device left, nor the linear one" \
	"$(dmsetup ls --target overlaybd 2>&1 | grep -v '^No devices found'; dmsetup info -c --noheadings $lin 2>/dev/null)" ""
check_eq "no parsed layer left" "$(cat $param/layers_parsed)" 0
vm_dmesg_check 59-kernel-stalls
tap_done
