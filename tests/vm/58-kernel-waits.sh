#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 58-kernel-waits.sh: what the module's I/O and status paths wait for
# (issue #18, review kmod.md M8, M9 and the shape of the waits).
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/58-kernel-waits.sh
#   - M9: an append upper's files on ext4 on a dm-linear device; that device
#     suspended (--nolockfs: its bios queue, the file system is not frozen),
#     a writer's writes + fsync of ours stick in the upper's flush (a task's
#     stack shows obd_upper_flush, the writer still runs); meanwhile
#     `dmsetup status` of ours returns within 2 s with sane fields (the old
#     module took the upper's write lock, held across the fsync); after
#     the resume the fsync completes and the device = the model
#   - M8: a FAN_ACCESS_PERM listener that never answers (fanotify_hold.py)
#     on the ext4 holding a layer; with its page cache dropped, O_DIRECT
#     reads of a device over it (buffered layer, and direct_io) are served
#     by the worker within 10 s with the right bytes (the old worker read
#     through vfs_iter_read, whose permission hook waits for the listener),
#     while a plain cat of the layer blocks (the listener works); the
#     listener logs no event of a kernel thread
#   - the waits' shape: 100 O_DIRECT reads parked on cold misses (stand-in
#     daemon silent) leave at most 2 kernel threads with a frame of the
#     module on their stack (the old module parked one work item per bio:
#     a kworker each); once a daemon answers, every read has its bytes
#   - dmesg: no WARN, hung task or leak.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/upper_lib.sh
. "$OBD_TOP/tests/vm/upper_lib.sh"
vm_test_begin 58-kernel-waits
modprobe ext4 2>/dev/null
modprobe loop 2>/dev/null
ref=$OBD_TOP/tests/data/overlaybd-ref
R="$PY $OBD_TOP/tests/vm/remote_lib.py"
param=/sys/module/dm_overlaybd/parameters
alive() { kill -0 "$1" 2>/dev/null; }
ended() { ! kill -0 "$1" 2>/dev/null; }
# stacks_with RE: "k|u tid comm: frame" for each task (k: a kernel thread,
# u: a user process) with a stack frame matching RE
stacks_with() {
	$PY - "$1" <<'PY'
import os, re, sys
pat = re.compile(sys.argv[1])
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        st = open("/proc/%s/stat" % p).read()
        kind = "k" if int(st[st.rindex(")") + 2:].split()[6]) & 0x00200000 else "u"	# PF_KTHREAD
        for t in os.listdir("/proc/%s/task" % p):
            comm = open("/proc/%s/task/%s/comm" % (p, t)).read().strip()
            for line in open("/proc/%s/task/%s/stack" % (p, t)):
                if pat.search(line):
                    print("%s %s %s: %s" % (kind, t, comm, line.split(None, 1)[-1].strip()))
                    break
    except (OSError, ValueError):
        pass
PY
}
# done_ms FILE MS: FILE is non-empty within MS ms (scaled by vm_slow); prints the ms
done_ms() {
	local t0 t
	t0=$(date +%s%N)
	while :; do
		t=$((($(date +%s%N) - t0) / 1000000))
		[ -s "$1" ] && { echo "$t"; return 0; }
		[ "$t" -lt $(($2 * $(vm_slow))) ] || { echo "$t"; return 1; }
		sleep 0.05
	done
}

check "obd cat of the lower stack (the model)" "$obd" cat --no-progress -o lower.raw "$L1" "$L2" ||
	bail "no model"

# --- M9: status while the upper's fsync waits ------------------------------------------
truncate -s 96M lin.img
lo=$(vm_loop_attach "$d/lin.img") || bail "loop"
vm_on_exit losetup -d "$lo"
check "dm-linear over $lo" dmsetup create obd58-lin --table "0 $((96 << 11)) linear $lo 0" ||
	bail "no dm-linear"
vm_on_exit dmsetup remove obd58-lin
mkfs.ext4 -q -F /dev/mapper/obd58-lin && mkdir -p lin && mount /dev/mapper/obd58-lin lin ||
	bail "ext4 on dm-linear"
vm_on_exit umount "$d/lin"
check "obd create (append upper on ext4 on dm-linear)" "$obd" create "$d/lin/u.data" "$d/lin/u.index" 64M
check "dmsetup create" dmsetup create obd58-u --table "$(table "$d/lin/u.data" "$d/lin/u.index")" ||
	bail "no upper device"
vm_on_exit dmsetup remove obd58-u
vm_on_exit dmsetup resume obd58-lin
cp lower.raw model
head -c $((64 * 4096)) /dev/urandom > w1
head -c $((16 * 4096)) /dev/urandom > w2
check "64 direct writes (the upper's data and records not yet flushed)" \
	dd if=w1 of=/dev/mapper/obd58-u bs=4K seek=1000 oflag=direct conv=notrunc status=none
dd if=w1 of=model bs=4K seek=1000 conv=notrunc status=none
f0=$(stat_field obd58-u flushes)
check "suspend the dm-linear device under the upper's ext4 (--nolockfs)" \
	within 5 dmsetup suspend --nolockfs obd58-lin
dd if=w2 of=/dev/mapper/obd58-u bs=4K seek=3000 oflag=direct conv=notrunc,fsync \
	status=none 2>writer.err &
writer=$!
dd if=w2 of=model bs=4K seek=3000 conv=notrunc status=none
flushing=
in_flush() { flushing=$(stacks_with 'obd_upper_flush'); [ -n "$flushing" ]; }
check "the writer's fsync is stuck in the upper's flush (a stack shows obd_upper_flush)" \
	until_true 15 in_flush
diag "$flushing"
rm -f st.out st.rc
(dmsetup status obd58-u > st.out 2>&1; echo $? > st.rc) &
stpid=$!
ms=$(done_ms st.rc 2000)
check "meanwhile dmsetup status returns within 2 s ($ms ms)" test -s st.rc
check "... the writer still waits for its fsync" alive $writer
check "... in the upper's flush" in_flush
st=$(cat st.out)
diag "status: $st"
# fields: upper append data N records N live N dead N writes N written N discards N flushes N
sane=$(awk -v f0="$f0" '{ for (i = 1; i < NF; i++) v[$i] = $(i + 1) }
	END { print (v["upper"] == "append" && v["writes"] >= 80 && v["written"] >= 80 * 4096 &&
		v["records"] >= 1 && v["data"] >= 80 * 4096 && v["flushes"] >= f0 &&
		v["flushes"] <= f0 + 1 && v["write_errors"] == 0) ? "sane" : "not sane" }' <<< "$st")
check_eq "... its fields are sane (80 writes, no error, at most the stuck flush begun)" "$sane" sane
check "resume the dm-linear device" dmsetup resume obd58-lin
check "the fsync completes" until_true 20 ended $writer
wait $writer
check "... successfully" test $? -eq 0 || diag "$(cat writer.err)"
wait $stpid
check "flushes advanced" test "$(stat_field obd58-u flushes)" -gt "$f0"
check_eq "the device = the model" "$(devsha obd58-u)" "$(shaof model)"
check "remove" dmsetup remove obd58-u
rm -f model lower.raw w1 w2

diag "M9 case: $SECONDS s"
# --- M8: a permission listener that never answers --------------------------------------
truncate -s 32M e4.img && mkfs.ext4 -q -F e4.img && mkdir -p e4 && mount -o loop e4.img e4 ||
	bail "ext4 for the layer"
vm_on_exit umount "$d/e4"
cp "$ref/l1.commit" e4/ || bail "copy the layer"
l1=$d/e4/l1.commit
# (l1.commit.lz4.zfile of the last case holds the same bytes)
check "obd cat of the layer (the model)" "$obd" cat --no-progress -o l1.raw "$ref/l1.commit"
check "create A over the layer on ext4 (buffered)" \
	dmsetup create obd58-a --readonly --table "0 $len overlaybd 1 $l1"
vm_on_exit dmsetup remove obd58-a
check "create B over it with direct_io" \
	dmsetup create obd58-b --readonly --table "0 $len overlaybd 1 $l1 1 direct_io"
vm_on_exit dmsetup remove obd58-b
sync
echo 3 > /proc/sys/vm/drop_caches
# [8M, 8.5M) and [0, 64K): data of the layer, random bytes (and a discard)
want8=$(dd if=l1.raw bs=64K skip=128 count=8 status=none | sha256sum)
want0=$(dd if=l1.raw bs=64K count=1 status=none | sha256sum)
rm -f fan.log
$PY "$OBD_TOP/tests/vm/fanotify_hold.py" "$d/e4" fan.log 2>fan.err &
fan=$!
vm_on_exit kill $fan
fan_ready() { grep -q '^ready' fan.log 2>/dev/null; }
fan_settled() { fan_ready || ended $fan; }
until_true 10 fan_settled
if fan_ready; then
	ok "a FAN_ACCESS_PERM listener that never answers marks the layer's ext4"
	cat "$l1" > /dev/null 2>cat.err &
	catp=$!
	vm_on_exit kill -9 $catp
	r0=$(stat_field obd58-a reads) i0=$(stat_field obd58-a inline)
	rm -f a.done b.done
	(dd if=/dev/mapper/obd58-a bs=64K skip=128 count=8 iflag=direct status=none | sha256sum > a.sum
		touch a.done) &
	(dd if=/dev/mapper/obd58-b bs=64K count=1 iflag=direct status=none | sha256sum > b.sum
		dd if=/dev/mapper/obd58-b bs=64K skip=128 count=8 iflag=direct status=none |
			sha256sum >> b.sum
		touch b.done) &
	check "cold O_DIRECT reads of A complete within 10 s" until_true 10 test -e a.done
	check "... and of B (direct_io)" until_true 10 test -e b.done
	r1=$(stat_field obd58-a reads) i1=$(stat_field obd58-a inline)
	check "A's worker served reads (reads $r0 -> $r1, inline $i0 -> $i1)" \
		test $((r1 - r0)) -gt $((i1 - i0))
	check "meanwhile a plain cat of the layer blocks (the listener holds it)" alive $catp
	catpid=$(awk -v p=$catp '$2 == p' fan.log)
	check "... the listener saw the cat's read" test -n "$catpid"
	kpids=
	while read -r w pid _; do
		[ "$w" = pid ] && [ "$pid" != "$catp" ] || continue
		[ -r "/proc/$pid/stat" ] || continue
		fl=$(awk '{ sub(/.*\) /, ""); print $7 }' "/proc/$pid/stat")
		[ $((fl & 0x00200000)) -ne 0 ] && kpids="$kpids $pid"
	done < fan.log
	check_eq "... and no event of a kernel thread (the workers read past the hook)" "$kpids" ""
	diag "listener log: $(tr '\n' ';' < fan.log)"
	kill $fan
	wait $fan 2>/dev/null
	check "the listener gone, the cat ends" until_true 10 ended $catp
	# the old module's reads complete only now: the sums still say what they read
	until_true 10 test -e a.done -a -e b.done
	check_eq "A read the layer's bytes" "$(cat a.sum)" "$want8"
	check_eq "B read the layer's bytes" "$(cat b.sum)" "$(printf '%s\n%s' "$want0" "$want8")"
else
	rc=0
	if ended $fan; then wait $fan || rc=$?; else kill $fan; rc=timeout; fi
	# every test kernel has fanotify permission events (the debug kernel since
	# scripts/debug-kernel.config turned them on): no listener is a failure
	bail "no fanotify permission listener (status $rc): $(cat fan.err)"
fi
check "remove A and B" bash -c "dmsetup remove obd58-a && dmsetup remove obd58-b"

diag "M8 case: $SECONDS s"
# --- the waits' shape: parked bios, not parked threads ---------------------------------
echo 300 > $param/request_timeout
mkdir -p src cache
# shellcheck source=tests/vm/miss_lib.sh
. "$OBD_TOP/tests/vm/miss_lib.sh"
tz=$(entry "$ref/l1.commit.lz4.zfile") || bail "no cache entry"
start_daemon d1.log || bail "no stand-in daemon"
check "create C over the cold remote layer (the daemon answers)" \
	dmsetup create obd58-c --readonly --table "0 $len overlaybd 1 $tz"
vm_on_exit dmsetup remove --force obd58-c
start_daemon d2.log --silent || bail "no silent daemon"
readers=()
# 100 O_DIRECT 4 KiB reads of C's cold ZFile data [8M+96K, 8M+496K)
for i in $(seq 0 99); do
	dd if=/dev/mapper/obd58-c of=r.$i bs=4K count=1 skip=$((2048 + 24 + i)) \
		iflag=direct status=none 2>/dev/null &
	readers+=($!)
done
pending_ge() { [ "$(stat_field obd58-c pending)" -ge "$1" ]; }
check "100 cold reads of C wait (status pending >= 90)" until_true 60 pending_ge 90
sleep 1
inmod=$(stacks_with 'obd_|\[dm_overlaybd\]')
nk=$(grep -c '^k ' <<< "$inmod")
diag "pending $(stat_field obd58-c pending); tasks in the module: $(grep -c . <<< "$inmod"), kernel threads $nk" \
	"$inmod"
check "at most 2 kernel threads sit in the module's code ($nk)" test "$nk" -le 2
start_daemon d3.log || bail "no stand-in daemon"
none_running() {
	local p
	for p in "${readers[@]}"; do kill -0 "$p" 2>/dev/null && return 1; done
	return 0
}
check "a daemon answers: the reads end" until_true 60 none_running
bad=0
for p in "${readers[@]}"; do wait "$p" || bad=$((bad + 1)); done
check_eq "every read succeeded" "$bad" 0
cat r.{0..99} > got
check_eq "... with the layer's bytes (the 100 blocks in order)" "$(shaof got)" \
	"$(dd if=l1.raw bs=4K count=100 skip=$((2048 + 24)) status=none | sha256sum | cut -d' ' -f1)"
stop_daemon
check "remove C" dmsetup remove obd58-c
diag "the waits' shape: $SECONDS s"
check_eq "no overlaybd device left behind" "$(dmsetup ls --target overlaybd 2>&1 | grep -v 'No devices found')" ""
vm_dmesg_check 58-kernel-waits
tap_done
