#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 49-stalled-registry.sh: a fetch daemon that never answers must stall
# nothing but the readers that need its bytes.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/49-stalled-registry.sh
# A stand-in daemon (inline here, the message layout of remote_lib.py)
# holds /dev/overlaybd and answers only the blobs it has a copy of; the
# others stay unanswered, as behind a registry that never answers.
#   - while one `dmsetup create` of a cold remote layer waits for its
#     headers, create, suspend/resume and remove of a device with only local
#     layers each complete within a few seconds (no global lock is held
#     across the wait);
#   - kill -9 of the waiting dmsetup ends it at once (the wait is
#     killable), and no overlaybd table or parsed layer is left;
#   - a prefetch message of a whole 16 GiB remote blob (sparse cache file,
#     its headers and index present) returns within a few seconds, while a
#     cold read of another remote device and a read of a local one proceed;
#   - dmesg: no soft lockup, no hung task, no WARN.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

obd=$OBD_TOP/build/obd
ref=$OBD_TOP/tests/data/overlaybd-ref
PY=/usr/bin/python3
R="$PY $OBD_TOP/tests/vm/remote_lib.py"
param=/sys/module/dm_overlaybd/parameters
[ -x "$obd" ] || bail "$obd missing: run make first"
vm_test_begin 49-stalled-registry
# bounds the test if the waits are not killable (the code before the fix)
echo 40 >$param/request_timeout
vm_on_exit sh -c "echo 300 >$param/request_timeout"
mkdir -p src cache

check "build a local layer" bash -c "
	head -c 65536 /dev/urandom >r1 &&
	'$obd' create a.data a.index 1M &&
	'$obd' write a.data a.index --offset 0 r1 &&
	'$obd' commit --no-progress a.data a.index l.commit" || bail "cannot build a layer"
# stalled: l1 (never answered); answered: l2 (a copy in src/)
t_stall=$($R entry "$ref/l1.commit.lz4.zfile" cache) || bail "no entry"
cp "$ref/l2.commit.lz4.zfile.tar" "src/sha256:$(sha256sum <"$ref/l2.commit.lz4.zfile.tar" | cut -d' ' -f1)"
t_ans=$($R entry "$ref/l2.commit.lz4.zfile.tar" cache) || bail "no entry"
# a 16 GiB plain LSMT blob: l.commit's header and data, a hole, its index and trailer
t_big=$("$PY" - "$OBD_TOP/tests/vm" <<'PYEOF'
import os, struct, sys, hashlib
sys.path.insert(0, sys.argv[1])
import remote_lib as R
def p64(b, off, v): b[off:off + 8] = struct.pack("<Q", v)
def g64(b, off): return struct.unpack_from("<Q", b, off)[0]
L = bytearray(open("l.commit", "rb").read())
tr = len(L) - 4096
io, n = g64(L, tr + 32), g64(L, tr + 40)
idx = bytes(L[io:io + 16 * n])
t = bytearray(L[tr:])
nio = (16 << 30) - 4096 - len(idx)
nio -= nio % 4096
p64(t, 32, nio)
h = bytearray(L[:4096])
if g64(h, 32):
    p64(h, 32, nio)
size = nio + len(idx) + 4096
dg = hashlib.sha256(b"obd49 sparse %d" % size).digest()
path = os.path.abspath("cache/sha256:" + dg.hex())
with open(path, "wb") as f:
    f.write(h + L[4096:io])
    f.seek(nio)
    f.write(idx + t)
G = R.GRANULE
bits = bytearray(R.bitmap_bytes(size))
for a, b in ((0, io), (nio, size)):
    for g in range(a // G, (b + G - 1) // G):
        bits[g // 8] |= 1 << (g % 8)
with open(path + ".meta", "wb") as f:
    f.write(R.cache_header(size, dg, "http://127.0.0.1:5000/v2/x/blobs/sha256:" + dg.hex()))
    f.write(bits)
print("remote:%d:sha256:%s:%s" % (size, dg.hex(), path))
PYEOF
) || bail "cannot make the 16 GiB entry"

# the daemon: answers READs of blobs with a copy in src/, ignores the rest
cat >daemon.py <<'PYEOF'
import os, select, signal, sys
sys.path.insert(0, sys.argv[1])
import remote_lib as R
log = open("daemon.log", "a", buffering=1)
fd = os.open(R.DEV, os.O_RDWR)
blobs = {}
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
open("daemon.ready", "w").close()
while True:
    m = os.read(fd, R.MSG_MAX)
    _magic, _ver, op, _size, _res, rid = R.HDR.unpack_from(m)
    body = m[R.HDR.size:]
    if op == R.OP_OPEN:
        bid, size, dg, plen, _f, _i, _d, _r, path = R.OPEN.unpack_from(body)
        src = os.path.join("src", "sha256:" + dg.hex())
        blobs[bid] = (path[:plen].decode(), src if os.path.exists(src) else None)
        log.write("OPEN %d %s\n" % (bid, blobs[bid][1]))
    elif op == R.OP_READ:
        bid, off, length, flags, _ = R.READ.unpack_from(body)
        path, src = blobs[bid]
        log.write("READ %d %d %d %d %d\n" % (rid, bid, off, length, flags))
        if src:
            with open(src, "rb") as s:
                s.seek(off)
                data = s.read(length)
            c = os.open(path, os.O_WRONLY)
            os.pwrite(c, data, off)
            os.close(c)
            os.write(fd, R.done_msg(rid, bid, off, len(data)))
            log.write("DONE %d\n" % rid)
PYEOF
"$PY" daemon.py "$OBD_TOP/tests/vm" 2>daemon.err &
dpid=$!
stop_daemon() { kill "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null; }
vm_on_exit stop_daemon
for _ in $(seq 100); do [ -e daemon.ready ] && break; sleep 0.1; done
[ -e daemon.ready ] || bail "stand-in daemon did not start: $(cat daemon.err)"


# --- a create waiting for a registry that never answers -----------------------------
dmsetup create obd49-stall --readonly --table "0 131072 overlaybd 1 $t_stall" 2>stall.err &
spid=$!
for _ in $(seq 100); do grep -q '^READ' daemon.log 2>/dev/null && break; sleep 0.1; done
check "the stalled create waits for a miss (the daemon got a READ)" grep -q '^READ' daemon.log
check "the stalled create is still waiting" kill -0 $spid
check "meanwhile: create of a local device within 5 s" \
	within 5 dmsetup create obd49-local --readonly --table "0 2048 overlaybd 1 $d/l.commit"
check "meanwhile: it reads" within 5 cmp -n 65536 /dev/mapper/obd49-local r1
check "meanwhile: suspend and resume of it within 5 s" \
	within 5 sh -c "dmsetup suspend obd49-local && dmsetup resume obd49-local"
check "meanwhile: reload (same table) and resume within 5 s" \
	within 5 sh -c "dmsetup table obd49-local | dmsetup reload --readonly obd49-local && dmsetup resume obd49-local"
check "meanwhile: remove of it within 5 s" within 5 dmsetup remove obd49-local
check "the stalled create is still waiting after all that" kill -0 $spid

t0=$(date +%s%N)
kill -9 $spid
for _ in $(seq 100); do kill -0 $spid 2>/dev/null || break; sleep 0.05; done
wait $spid 2>/dev/null
ms=$((($(date +%s%N) - t0) / 1000000))
check "kill -9 ends the waiting dmsetup within $((2 * $(vm_slow))) s (took $ms ms)" test "$ms" -le $((2000 * $(vm_slow)))
sleep 0.5
m=$(dmsetup table obd49-stall 2>/dev/null)
check_eq "no table left by the killed create" "$m" ""
dmsetup remove obd49-stall 2>/dev/null	# the name dmsetup made before loading
check_eq "no overlaybd device left" "$(dmsetup ls --target overlaybd 2>&1)" "No devices found"
check_eq "no parsed layer left" "$(cat $param/layers_parsed)" 0

# --- a prefetch of a whole 16 GiB blob -------------------------------------------------
check "create over the 16 GiB remote layer (headers and index present)" \
	dmsetup create obd49-big --readonly --table "0 2048 overlaybd 1 $t_big"
check "create over the answered remote layer" \
	dmsetup create obd49-ans --readonly --table "0 131072 overlaybd 1 $t_ans"
check "create a local device" \
	dmsetup create obd49-local --readonly --table "0 2048 overlaybd 1 $d/l.commit"
echo 3 >/proc/sys/vm/drop_caches
before=$(grep -c '^DONE' daemon.log)
check "prefetch of the whole 16 GiB blob returns within 5 s" \
	within 5 dmsetup message obd49-big 0 prefetch 0 0 $((16 << 30))
dd if=/dev/mapper/obd49-ans of=/dev/null bs=64K count=16 iflag=direct status=none &
rpid=$!
check "meanwhile: a local device reads within 5 s" \
	within 5 dd if=/dev/mapper/obd49-local of=/dev/null bs=64K iflag=direct status=none
ok_r=0
for _ in $(seq 100); do kill -0 $rpid 2>/dev/null || { ok_r=1; break; }; sleep 0.1; done
wait $rpid && [ $ok_r = 1 ]
check "meanwhile: a cold read of another remote device completes within 10 s" test $? = 0
check "its misses were answered" test "$(grep -c '^DONE' daemon.log)" -gt "$before"
st=$(dmsetup message obd49-big 0 prefetch_status 2>&1)
diag "$st"
check "the prefetch is queued: about 1024 requests of 16 MiB" \
	bash -c "[[ '$st' =~ queued=([0-9]+)\ running=([0-9]+) ]] && [ \$((BASH_REMATCH[1] + BASH_REMATCH[2])) -ge 1000 ]"
stop_daemon
for dev in obd49-big obd49-ans obd49-local; do dmsetup remove $dev; done
check_eq "no device left behind" "$(dmsetup ls --target overlaybd 2>&1)" "No devices found"
vm_dmesg_check 49-stalled-registry
tap_done
