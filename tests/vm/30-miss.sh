#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 30-miss.sh: remote layers and the miss channel, kernel side alone.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/30-miss.sh
# A stand-in daemon (tests/vm/remote_lib.py daemon) answers misses from
# local copies of the blobs, with faults overlaybd-fetchd never makes on
# purpose. Checks: /dev/overlaybd (root only, one opener), a table loading
# on a cold cache (headers, index, jump table through the miss path), device
# bytes equal to the local stack's, table round trip and status fields,
# coalescing (32 readers of one cold block: one request), a stack mixing
# local and remote layers, malformed answers refused with EINVAL, kill -9
# of the daemon during parallel reads with a new daemon taking over, EIO
# after the hold timeout with no daemon, a failed fetch, ZFile CRC failures
# fetched again (and EIO when the data stays bad), ranges made durable not
# fetched again after a daemon restart and a module reload, and dmesg clean.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

obd=$OBD_TOP/build/obd
ref=$OBD_TOP/tests/data/overlaybd-ref
PY=/usr/bin/python3
R="$PY $OBD_TOP/tests/vm/remote_lib.py"
sha_l1l2=fde68d5fbdf5f9582175537e5b942a8debbf33a5d4959cd24fc79adbf424bd81
len=131072	# 64 MiB in sectors
[ -x "$obd" ] || bail "$obd missing: run make first"
vm_test_begin 30-miss
mkdir -p src cache

devsha() { sha256sum "/dev/mapper/$1" 2>/dev/null | cut -d' ' -f1; }
# shellcheck source=tests/vm/miss_lib.sh
. "$OBD_TOP/tests/vm/miss_lib.sh"
reads_in() { awk '$1 == "READ" { n++ } END { print n + 0 }' "$1" 2>/dev/null; }
# distinct granules the daemon answered with status 0 (answers may overlap)
done_granules() {
	awk '$1 == "DONE" && $6 == 0 { for (g = int($4 / 4096); g * 4096 < $4 + $5; g++) seen[$3 " " g] = 1 }
	     END { n = 0; for (k in seen) n++; print n }' "$1"
}

# --- the device node -----------------------------------------------------
check "/dev/overlaybd exists" test -c /dev/overlaybd
check_eq "/dev/overlaybd is root only (0600)" "$(stat -c %a /dev/overlaybd)" 600

# --- a cold cache: the table loads through the miss path ---------------------
t1=$(entry "$ref/l1.commit.lz4.zfile")
t2=$(entry "$ref/l2.commit.lz4.zfile.tar")
start_daemon d1.log || bail "no stand-in daemon"
check "create a device over two cold remote layers" \
	dmsetup create obd-r --readonly --table "0 $len overlaybd 2 $t1 $t2"
vm_on_exit dmsetup remove obd-r
check "ctr fetched headers and index (READs before any I/O)" test "$(reads_in d1.log)" -gt 0
check_eq "remote device sha256 = the local stack's" "$(devsha obd-r)" "$sha_l1l2"
check_eq "dmsetup table prints the remote tokens" \
	"$(dmsetup table obd-r)" "0 $len overlaybd 2 $t1 $t2"
check_eq "status: remote 2" "$(stat_field obd-r remote)" 2
check_eq "status: daemon 1" "$(stat_field obd-r daemon)" 1
check_eq "status: pending 0 when idle" "$(stat_field obd-r pending)" 0
sz=$(( $(stat -c %s "$ref/l1.commit.lz4.zfile") + $(stat -c %s "$ref/l2.commit.lz4.zfile.tar") ))
# fetched counts exact bytes; the last granule of each of the 2 blobs may be short
fetched=$(stat_field obd-r fetched)
ng=$(done_granules d1.log)
check "status: fetched ($fetched) = the granules the daemon made present ($ng)" \
	test "$fetched" -le $((ng * 4096)) -a "$fetched" -gt $(((ng - 2) * 4096))
check "fetched <= the blobs' size" test "$(stat_field obd-r fetched)" -le "$sz"
check "table reloads from dmsetup table" bash -c \
	"dmsetup create obd-r2 --readonly --table \"\$(dmsetup table obd-r)\" && dmsetup remove obd-r2"
r0=$(reads_in d1.log)
check_eq "warm: reading it all again sends no miss" \
	"$(devsha obd-r) $(reads_in d1.log)" "$sha_l1l2 $r0"
dmsetup remove obd-r
stop_daemon

# --- a stack mixing local and remote layers, and a bigger generated one -------
"$PY" -c "
import os
b = os.urandom(6 << 20) + (b'some text, compressible\n' * 100000)[:2 << 20]
open('base.raw', 'wb').write(b)
open('up.bin', 'wb').write(os.urandom(300 * 1024))
" || bail "cannot write test data"
check "build base (uncompressed) and upper (zfile) layers" bash -c "
	'$obd' create base.data base.index 8M && '$obd' import --no-progress base.data base.index base.raw &&
	'$obd' commit --no-progress base.data base.index base.commit &&
	'$obd' create up.data up.index 8M && '$obd' write up.data up.index --offset 1000K up.bin &&
	'$obd' commit --no-progress -z up.data up.index up.zfile"
want=$("$obd" cat base.commit up.zfile | sha256sum | cut -d' ' -f1)
tb=$(entry base.commit)
start_daemon d2.log --delay 300 || bail "no stand-in daemon"
check "create remote base + local upper" \
	dmsetup create obd-m --readonly --table "0 16384 overlaybd 2 $tb $d/up.zfile"
vm_on_exit dmsetup remove obd-m
check_eq "status: remote 1 in a mixed stack" "$(stat_field obd-m remote)" 1

# 32 readers of one cold 4 KiB block at 5 MiB: one request
r0=$(reads_in d2.log)
for i in $(seq 32); do
	dd if=/dev/mapper/obd-m of=/dev/null bs=4096 skip=1280 count=1 iflag=direct status=none &
done
wait_pids=$(jobs -p | grep -v "^$daemon_pid\$")
# shellcheck disable=SC2086
wait $wait_pids
check_eq "32 concurrent readers of one cold block: one request" "$(( $(reads_in d2.log) - r0 ))" 1
check_eq "mixed stack sha256 = obd cat" "$(devsha obd-m)" "$want"
dmsetup remove obd-m
stop_daemon

# --- malformed answers -------------------------------------------------------
vm_dmesg_mark 30-garbage
check "garbage to /dev/overlaybd is refused with EINVAL, second open EBUSY" $R garbage
check "the refusals are logged" bash -c "dmesg | grep -q 'overlaybd: /dev/overlaybd: .*refused'"
vm_dmesg_check 30-garbage

# --- kill -9 of the daemon during parallel reads: a new one takes over ---------
tb=$(entry base.commit)
start_daemon d3.log --delay 200 --exit-after 6 || bail "no stand-in daemon"
check "create (cold)" dmsetup create obd-f --readonly --table "0 16384 overlaybd 2 $tb $d/up.zfile"
vm_on_exit dmsetup remove obd-f
for w in 0 1 2 3; do
	(dd if=/dev/mapper/obd-f bs=64K skip=$((w * 32)) count=32 iflag=direct status=none |
		sha256sum | cut -d' ' -f1 > "part$w") &
done
sleep 3
check "the first daemon died by kill -9 mid-read" bash -c "grep -q EXIT d3.log && ! kill -0 $daemon_pid 2>/dev/null"
daemon_pid=
start_daemon d4.log || bail "no second stand-in daemon"
wait_pids=$(jobs -p | grep -v "^$daemon_pid\$")
# shellcheck disable=SC2086
wait $wait_pids
good=0
for w in 0 1 2 3; do
	exp=$("$obd" cat --offset $((w * 2))M --length 2M base.commit up.zfile | sha256sum | cut -d' ' -f1)
	[ "$(cat "part$w")" = "$exp" ] && good=$((good + 1))
done
check_eq "all 4 parallel readers got correct bytes across the failover" "$good" 4
check "the new daemon got the requests the dead one had read" test "$(reads_in d4.log)" -gt 0
check_eq "no I/O error on the device" "$(stat_field obd-f io_errors)" 0
dmsetup remove obd-f
stop_daemon

# --- no daemon: EIO after the hold timeout --------------------------------------
tb=$(entry base.commit)
start_daemon d5.log || bail "no stand-in daemon"
check "create with hold_timeout 3" dmsetup create obd-h --readonly \
	--table "0 16384 overlaybd 2 $tb $d/up.zfile 2 hold_timeout 3"
vm_on_exit dmsetup remove obd-h
check_eq "table keeps hold_timeout" "$(dmsetup table obd-h | awk '{print $(NF-2), $(NF-1), $NF}')" \
	"2 hold_timeout 3"
stop_daemon
t0=$SECONDS
if dd if=/dev/mapper/obd-h of=/dev/null bs=4096 skip=100 count=1 iflag=direct status=none 2>/dev/null; then
	not_ok "a cold read with no daemon fails"
else
	ok "a cold read with no daemon fails"
fi
el=$((SECONDS - t0))
check "... after the hold timeout, not before and not much later (${el}s)" test "$el" -ge 2 -a "$el" -le 15
check_eq "status: daemon 0" "$(stat_field obd-h daemon)" 0
check "the failure is logged" bash -c "dmesg | grep -q 'no fetch daemon on /dev/overlaybd'"
dmsetup remove obd-h

# --- a failed fetch: EIO for those bios only -------------------------------------
tb=$(entry base.commit)
start_daemon d6.log || bail "no stand-in daemon"
dmsetup create obd-e --readonly --table "0 16384 overlaybd 2 $tb $d/up.zfile" ||
	not_ok "create for the failed-fetch case"
vm_on_exit dmsetup remove obd-e
stop_daemon
start_daemon d7.log --fail || bail "no stand-in daemon"
if dd if=/dev/mapper/obd-e of=/dev/null bs=4096 skip=200 count=1 iflag=direct status=none 2>/dev/null; then
	not_ok "a read whose fetch fails gets EIO"
else
	ok "a read whose fetch fails gets EIO"
fi
stop_daemon
start_daemon d8.log || bail "no stand-in daemon"
check "the same range reads once the daemon succeeds" \
	dd if=/dev/mapper/obd-e of=/dev/null bs=4096 skip=200 count=1 iflag=direct status=none
dmsetup remove obd-e
stop_daemon

# --- ZFile CRC failures in fetched data: fetched again, bounded -------------------
# the daemon serves each 64 KiB unit corrupted once, then right
zt=$(entry "$ref/l1.commit.lz4.zfile")
start_daemon d9.log --corrupt 1 || bail "no stand-in daemon"
# ctr sees a corrupt header: the table does not load, nothing else breaks
if dmsetup create obd-c --readonly --table "0 $len overlaybd 1 $zt" 2>/dev/null; then
	dmsetup remove obd-c
	not_ok "a table over a corrupt fetched header is refused"
else
	ok "a table over a corrupt fetched header is refused"
fi
stop_daemon
# now with good metadata present (fetched by a clean daemon), data corrupted once
zt=$(entry "$ref/l1.commit.lz4.zfile")
start_daemon d10.log || bail "no stand-in daemon"
check "create over a clean-fetched header and index" \
	dmsetup create obd-c --readonly --table "0 $len overlaybd 1 $zt"
vm_on_exit dmsetup remove obd-c
stop_daemon
start_daemon d11.log --corrupt 1 || bail "no stand-in daemon"
sha_l1=2f0aaac9524d2897789b77575cd5c3145b9b634da4a5214c5cad92176545e75b
check_eq "bad data fetched once: device still reads right" "$(devsha obd-c)" "$sha_l1"
check "crc_errors counted" test "$(stat_field obd-c crc_errors)" -gt 0
check "REFETCH requests were sent" bash -c "awk '\$1 == \"READ\" && \$6 == 1' d11.log | grep -q ."
check_eq "no I/O error" "$(stat_field obd-c io_errors)" 0
dmsetup remove obd-c
stop_daemon
zt=$(entry "$ref/l1.commit.lz4.zfile")
start_daemon d12.log || bail "no stand-in daemon"
dmsetup create obd-c --readonly --table "0 $len overlaybd 1 $zt" || not_ok "create obd-c again"
stop_daemon
start_daemon d13.log --corrupt 100 || bail "no stand-in daemon"
if dd if=/dev/mapper/obd-c of=/dev/null bs=64K count=16 iflag=direct status=none 2>/dev/null; then
	not_ok "data that stays bad: EIO"
else
	ok "data that stays bad: EIO"
fi
nref=$(awk '$1 == "READ" && $6 == 1' d13.log | wc -l)
check "refetches are bounded ($nref)" test "$nref" -ge 1 -a "$nref" -le 64
dmsetup remove obd-c
stop_daemon

# --- a CRC refetch that meets a request already made (review: refetch fairness) ----
# The bad bytes came by HAVE (a background download) while a prefetch request
# for them was out. A refetch joining a request the daemon has not read yet
# gives it the REFETCH flag; one joining a request the daemon read without it
# waits for its answer (from the daemon's cache: the same bad bytes), and that
# is not counted as one of the two tries.
"$PY" -c "import os; open('rj.bin', 'wb').write(os.urandom(1 << 20))" || bail "cannot write rj.bin"
check "a 1 MiB ZFile layer of random bytes" bash -c "
	'$obd' create rj.data rj.index 4M && '$obd' write rj.data rj.index --offset 0 rj.bin &&
	'$obd' commit --no-progress -z rj.data rj.index rj.zfile"
want_j=$(dd if=rj.bin bs=4K skip=32 count=1 status=none | sha256sum | cut -d' ' -f1)
mkdir -p ctl
nctl=0
# ctl CMD...: the stand-in daemon runs CMD; wait until it has
ctl() {
	local f
	nctl=$((nctl + 1))
	f=ctl/$(printf %04d $nctl)
	echo "$*" > "$f"
	until_true 10 test ! -e "$f"
}
# jdev LOG: device obd-j over a cold entry of rj.zfile, header and index fetched
# by a clean daemon, then the daemon of LOG [opts] started
jdev() {
	local log=$1 tj
	shift
	dmsetup remove obd-j 2>/dev/null
	tj=$(entry rj.zfile)
	start_daemon "$log.clean" || return 1
	dmsetup create obd-j --readonly --table "0 8192 overlaybd 1 $tj" || return 1
	start_daemon "$log" "$@"
}
j_pending() { [ "$(stat_field obd-j pending)" -ge 1 ]; }
vm_on_exit dmsetup remove obd-j

# the daemon read the prefetch request (and holds it), the HAVE'd bytes are bad
# (not under check: its output capture would wait for the daemon started in it)
jdev dj1.log --ctl ctl --hold-prefetch --corrupt 1 || bail "no device over rj.zfile"
check "prefetch of the layer's first MiB" dmsetup message obd-j 0 prefetch 0 0 1048576
check "the daemon read it (PREFETCH) and holds it" \
	until_true 10 grep -q "^READ .* 2$" dj1.log
check "bad bytes for its range arrive by HAVE" ctl have-bad-held
dd if=/dev/mapper/obd-j of=j1.out bs=4K skip=32 count=1 iflag=direct status=none 2>j1.err &
ypid=$!
check "a reader fails the CRC, fetches again, waits on the prefetch" until_true 10 j_pending
check "the daemon answers the prefetch from its cache (the bad bytes)" ctl release
wait $ypid
check "the read succeeds: two real refetches (the first served bad)" test $? -eq 0 ||
	diag "$(cat j1.err)"
check_eq "... with the right bytes" "$(sha256sum < j1.out | cut -d' ' -f1)" "$want_j"
check_eq "... after two REFETCH requests" "$(awk '$1 == "READ" && $6 == 1' dj1.log | wc -l)" 2

# the prefetch request is still NEW (the daemon is not reading) when the reader joins it
jdev dj2.log --ctl ctl || bail "no device over rj.zfile (again)"
check "the daemon stops reading the channel" ctl pause
check "prefetch of the layer's first MiB (not read yet)" \
	dmsetup message obd-j 0 prefetch 0 0 1048576
check "bad bytes of the prefetched range arrive by HAVE" ctl have-bad 65536 196608
dd if=/dev/mapper/obd-j of=j2.out bs=4K skip=32 count=1 iflag=direct status=none 2>j2.err &
ypid=$!
check "a reader fails the CRC, fetches again, joins the prefetch" until_true 10 j_pending
check "the daemon reads the channel again" ctl resume
wait $ypid
check "the read succeeds" test $? -eq 0 || diag "$(cat j2.err)"
check_eq "... with the right bytes" "$(sha256sum < j2.out | cut -d' ' -f1)" "$want_j"
check_eq "the prefetch request went with REFETCH, no second request" \
	"$(awk '$1 == "READ" && $6 == 1' dj2.log | wc -l) $(awk '$1 == "READ" && $6 == 0' dj2.log | wc -l)" "1 0"
check "crc_errors counted" test "$(stat_field obd-j crc_errors)" -gt 0
check_eq "no I/O error" "$(stat_field obd-j io_errors)" 0
dmsetup remove obd-j
stop_daemon

# --- durability: daemon restart and module reload fetch nothing again -----------
tb=$(entry base.commit)
start_daemon d14.log || bail "no stand-in daemon"
dmsetup create obd-d --readonly --table "0 16384 overlaybd 2 $tb $d/up.zfile" || not_ok "create obd-d"
check_eq "first read of everything" "$(devsha obd-d)" "$want"
stop_daemon	# SIGTERM: data synced, then its bits
cache_file=${tb#remote:*:sha256:*:}
nbits=$($R meta-bits "$cache_file")
check "the .meta marks what was fetched ($nbits granules)" test "$nbits" -gt 0
dmsetup remove obd-d
vm_unload_module
check "module reloads" vm_load_module
start_daemon d15.log || bail "no stand-in daemon"
check "create again after the reload" \
	dmsetup create obd-d --readonly --table "0 16384 overlaybd 2 $tb $d/up.zfile"
check_eq "same bytes after the reload" "$(devsha obd-d)" "$want"
check_eq "and nothing was fetched again" "$(reads_in d15.log)" 0
dmsetup remove obd-d
stop_daemon

# --- HAVE: the daemon fills a blob unasked; then no daemon is needed ------------
tb=$(entry base.commit)
start_daemon d16.log --have || bail "no stand-in daemon"
check "create over a cold entry the daemon fills at OPEN" \
	dmsetup create obd-v --readonly --table "0 16384 overlaybd 2 $tb $d/up.zfile"
check "the blob was OPENed and announced with HAVE" bash -c "grep -q '^OPEN ' d16.log && grep -q '^HAVE ' d16.log"
stop_daemon
check_eq "status: daemon 0" "$(stat_field obd-v daemon)" 0
check_eq "every byte reads with no daemon (HAVE made it present)" "$(devsha obd-v)" "$want"
check_eq "no I/O error" "$(stat_field obd-v io_errors)" 0
dmsetup remove obd-v
# a table loaded with a daemon connected: OPEN at load, before any miss
tb=$(entry base.commit)
$PY -c "
import sys; sys.path.insert(0, '$OBD_TOP/tests/vm'); import remote_lib as r
p = '${tb#remote:*:sha256:*:}'
sz = __import__('os').path.getsize(p)
with open(p + '.meta', 'r+b') as f:
    h = bytearray(f.read(4096)); f.seek(0)
    bits = bytes([0xff]) * r.bitmap_bytes(sz)
    h[20] = 1; h[84:88] = b'\0' * 4
    h[84:88] = r.crc32c_raw(bytes(h)).to_bytes(4, 'little')
    f.write(h); f.write(bits)
with open(p, 'r+b') as f:
    f.write(open('base.commit', 'rb').read())
" || not_ok "mark the entry complete"
start_daemon d17.log || bail "no stand-in daemon"
check "create over a complete entry" \
	dmsetup create obd-w --readonly --table "0 16384 overlaybd 2 $tb $d/up.zfile"
for _ in $(seq 50); do grep -q '^OPEN ' d17.log && break; sleep 0.1; done
check "the daemon hears OPEN at table load though nothing misses" grep -q '^OPEN ' d17.log
check_eq "a complete entry sends no READ" "$(reads_in d17.log)" 0
check_eq "complete entry reads right" "$(devsha obd-w)" "$want"
dmsetup remove obd-w
for _ in $(seq 50); do grep -q '^CLOSE ' d17.log && break; sleep 0.1; done
check "CLOSE when the last device goes" grep -q '^CLOSE ' d17.log
stop_daemon

# --- prefetch and trace messages ----------------------------------------------------
tb=$(entry base.commit)
start_daemon d18.log || bail "no stand-in daemon"
check "create for prefetch" dmsetup create obd-p --readonly --table "0 16384 overlaybd 2 $tb $d/up.zfile"
check "prefetch of 1 MiB of the remote layer is accepted" dmsetup message obd-p 0 prefetch 0 1048576 1048576
for _ in $(seq 50); do
	dmsetup message obd-p 0 prefetch_status 2>/dev/null | grep -q 'queued=0 running=0' && break
	sleep 0.1
done
check "the daemon got READs flagged PREFETCH" bash -c "awk '\$1 == \"READ\" && \$6 == 2' d18.log | grep -q ."
check "prefetch_status: all done" bash -c "dmsetup message obd-p 0 prefetch_status | grep -Eq 'queued=0 running=0 done=[1-9]'"
check "a prefetch of the local layer is accepted (nothing to fetch)" dmsetup message obd-p 0 prefetch 1 0 4096
for m in "prefetch 2 0 4096" "prefetch 0 0 0" "prefetch 0 1" "prefetch 0 x 1" "trace start relative/path" \
	"trace stop" "trace dump x 1" "bogus"; do
	# shellcheck disable=SC2086
	check "message '$m' refused" bash -c "! dmsetup message obd-p 0 $m 2>/dev/null"
done
check "trace start" dmsetup message obd-p 0 trace start "$d/t.trace"
check "a second trace start is refused" bash -c "! dmsetup message obd-p 0 trace start $d/t2 2>/dev/null"
dd if=/dev/mapper/obd-p of=/dev/null bs=64K count=4 iflag=direct status=none
check "trace stop" dmsetup message obd-p 0 trace stop
dump=$(dmsetup message obd-p 0 trace dump 0 100000)
check "the dump names the trace file and holds records" bash -c \
	"grep -q 'recording=0 total=[1-9][0-9]* dropped=0 path=$d/t.trace start=0 count=[1-9]' <<< '$dump'"
tot=$(sed -n 's/.*total=\([0-9]*\).*/\1/p' <<< "$dump")
check_eq "the dump's count lines are all there" "$(tail -n +2 <<< "$dump" | grep -c '^[01] [0-9]* [0-9]*$')" "$tot"
# what was read maps to the layers: the device's first 256 KiB, through obd's own index walk
want_bytes=$(tail -n +2 <<< "$dump" | awk '{ s += $3 } END { print s }')
check "records hold the bytes read ($want_bytes)" test "$want_bytes" -gt 0
check "trace dump 0 1 gives one record" bash -c \
	"dmsetup message obd-p 0 trace dump 0 1 | head -1 | grep -q 'start=0 count=1'"
check "trace dump from the end gives none" bash -c \
	"dmsetup message obd-p 0 trace dump $tot 5 | head -1 | grep -q 'start=$tot count=0'"
check "trace clear" dmsetup message obd-p 0 trace clear
check "after clear: total 0" bash -c "dmsetup message obd-p 0 trace dump 0 10 | grep -q 'total=0 .*path=-'"
dmsetup remove obd-p
stop_daemon

vm_dmesg_check 30-miss
tap_done
