#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 35-trace.sh: trace prefetch (spec 6.7) end to end, inside the VM with
# Debian's docker-registry on 127.0.0.1 and overlaybd-fetchd:
#   - record (recordTracePath an empty file): obd attach starts recording,
#     a start-up workload reads part of an ext4 image, deleting PATH.lock
#     makes the watcher write PATH (validated by obd and by the independent
#     Python reader, tests/tools/tracefmt.py) and PATH.ok;
#   - replay (recordTracePath the trace) on a fresh cache: once the
#     prefetch is done, the workload fetches (nearly) nothing more, counted
#     at the registry's proxy, and reads the source's bytes;
#   - obd trace record / stop / replay --wait, obd detach of a recording
#     device writes its trace;
#   - an acceleration layer (a tar holding `trace`, the last lower; local,
#     then remote) is left out of the stack and replayed;
#   - dynamic mode: a file list, prefetched through FIEMAP extents.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/35-trace.sh
#   (obd under ASan: --env OBD_TEST_OBD=$PWD/build-san/obd --env ASAN_OPTIONS=detect_leaks=1)
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
reg_test_begin 35-trace
# OBD_TEST_OBD: another obd build, e.g. --env OBD_TEST_OBD=$PWD/build-san/obd
obd=${OBD_TEST_OBD:-$obd}
PYT="$PY $OBD_TOP/tests/tools/tracefmt.py"
modprobe ext4 2>/dev/null

# --- the image: ext4 over 150 files --------------------------------------------------
$PY - <<'EOF' || bail "cannot make the tree"
import os, random
random.seed(35)
for i in range(150):
    d = "tree/d%02d/s%d" % (i % 17, i % 3)
    os.makedirs(d, exist_ok=True)
    n = random.choice([1, 100, 4096, 5000, 20000, 65536, 130000, 300000])
    open("%s/f%03d.bin" % (d, i), "wb").write(os.urandom(n))
EOF
# the start-up workload: every 4th file
(cd tree && find . -type f | sort | awk 'NR % 4 == 1' | sed 's|^\./||') > workload.txt
(cd tree && xargs sha256sum < ../workload.txt) > workload.sha
check "mkfs.ext4 -d, import, commit -z -t (32 MiB image)" bash -c "
	truncate -s 32M fs.raw && mkfs.ext4 -q -F -b 4096 -d tree fs.raw &&
	'$obd' create fs.data fs.index 32M && '$obd' import --no-progress fs.data fs.index fs.raw &&
	'$obd' commit --no-progress -z -t fs.data fs.index fs.tar"
check "push it" bash -c "'$obd' push http://127.0.0.1:$REG/trace/fs:v1 fs.tar > fs-direct.json"
via_proxy fs-direct.json fs.json

# svc CACHE: a service config with its own cache directory (a cold cache)
svc() {
	mkdir -p "$d/$1"
	cat > "$1.svc.json" <<-JSON
	{ "logConfig": { "logLevel": 1 },
	  "cacheConfig": { "cacheDir": "$d/$1", "refillSize": 65536 },
	  "prefetchConfig": { "concurrency": 8 },
	  "fetchConfig": { "requestTimeout": 20, "syncIntervalMs": 50, "readaheadMB": 0 } }
	JSON
}
# with_trace IN OUT KEY VALUE: a config with one more top-level key
with_key() {
	$PY -c "import json, sys; c = json.load(open(sys.argv[1])); c[sys.argv[3]] = json.loads(sys.argv[4]); json.dump(c, open(sys.argv[2], 'w'))" "$@"
}
# workload NAME: mount the device, read the workload's files, check them, unmount
workload() {
	mkdir -p "$d/mnt" && mount -t ext4 -o ro,noload "/dev/mapper/$1" "$d/mnt" || return 1
	(cd "$d/mnt" && sha256sum -c --quiet "$d/workload.sha") > "$d/wl.out" 2>&1
	local rc=$?
	umount "$d/mnt"
	return $rc
}
wait_file() {	# wait_file PATH SECONDS
	local i
	for i in $(seq $(($2 * 10))); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
# prefetch_idle NAME: the module's prefetch queue drained
prefetch_idle() {
	local i s
	for i in $(seq 600); do
		s=$(dmsetup message "$1" 0 prefetch_status 2>/dev/null)
		case $s in *"queued=0 running=0"*) return 0 ;; esac
		sleep 0.1
	done
	diag "prefetch_status: $s"
	return 1
}
# replay_sent NAME: the background `obd trace replay NAME` of attach has exited
# (it sends every range before; only then can an idle queue mean done)
replay_sent() {
	local i
	for i in $(seq 600); do
		pgrep -f "^obd trace replay $1 " > /dev/null || return 0
		sleep 0.1
	done
	return 1
}
wait_log() {	# wait_log FILE PATTERN SECONDS
	local i
	for i in $(seq $(($3 * 10))); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	diag "$1: $(tail -5 "$1" 2>/dev/null)"
	return 1
}
attach() {	# attach NAME CONFIG SVC: obd attach, stderr in attach.err
	"$obd" attach --service-config "$3" --name "$1" "$2" > /dev/null 2> attach.err
	local rc=$?
	[ $rc -eq 0 ] || diag "$(cat attach.err)"
	vm_on_exit dmsetup remove "$1"
	return $rc
}

svc c0
if fetchd_start c0.svc.json; then ok "overlaybd-fetchd starts"; else bail "fetchd: $(tail -5 fetchd.log)"; fi

# --- record at attach (recordTracePath: an empty file) -----------------------------------
mkdir -p t
: > t/app.trace
with_key fs.json rec.json recordTracePath "\"$d/t/app.trace\""
svc c1
b0=$(px_bytes)
check "attach with an empty recordTracePath" attach r1 rec.json c1.svc.json
check "  recording started (PATH.lock)" test -e t/app.trace.lock
check "  the module says recording=1 with the path" bash -c \
	"dmsetup message r1 0 trace dump 0 0 | grep -q 'recording=1 .*path=$d/t/app.trace '"
check "the start-up workload reads the source's bytes" workload r1
cold=$(( $(px_bytes) - b0 ))
diag "cold start-up workload: $cold bytes fetched of a $(stat -c %s fs.tar)-byte blob"
check "rm PATH.lock: the watcher writes the trace" rm t/app.trace.lock
check "  PATH.ok appears" wait_file t/app.trace.ok 15
check "  the trace is written (non-empty)" test -s t/app.trace
check "  obd trace show validates it" "$obd" trace show t/app.trace
check "  the Python reader validates it (byte-compatible)" bash -c "$PYT read t/app.trace > app.recs"
nrec=$(wc -l < app.recs)
check "  it has records ($nrec), all reads of layer 0" bash -c \
	"[ $nrec -gt 10 ] && ! grep -qv '^R 0 ' app.recs"
check_eq "  and the records the module has are freed (trace clear)" \
	"$(dmsetup message r1 0 trace dump 0 0 | head -1 | grep -o 'total=[0-9]*')" "total=0"
check "  the watcher has exited" bash -c \
	"for i in \$(seq 300); do pgrep -f '^obd trace watch r1\$' > /dev/null || exit 0; sleep 0.1; done; exit 1"
check "detach" "$obd" detach r1

# --- replay at attach on a fresh cache -------------------------------------------------
with_key fs.json rep.json recordTracePath "\"$d/t/app.trace\""
svc c2
b0=$(px_bytes)
check "attach with the trace as recordTracePath (replay)" attach r2 rep.json c2.svc.json
check "  the replay runs in the background" wait_log t/app.trace.log "prefetch ranges" 60
check "  the module's prefetch queue drains" prefetch_idle r2
pre=$(( $(px_bytes) - b0 ))
b1=$(px_bytes)
check "the workload after the replay reads the source's bytes" workload r2
after=$(( $(px_bytes) - b1 ))
diag "replay fetched $pre bytes; the workload then fetched $after bytes (cold: $cold)"
check "  and fetches (nearly) nothing more: $after <= 5 % of $cold" test $((after * 20)) -le "$cold"
check "  the device is fine" bash -c "[ \"\$(dmsetup status r2 | grep -o 'io_errors [0-9]*')\" = 'io_errors 0' ]"
check "detach" "$obd" detach r2

# --- obd trace record / stop / replay --wait -------------------------------------------------
svc c3
check "attach a plain device" attach r3 fs.json c3.svc.json
check "obd trace record" bash -c "'$obd' trace record r3 t/cmd.trace | grep -q 'recording'"
check "  a second record is refused (EBUSY)" bash -c \
	"! '$obd' trace record r3 t/other.trace 2> err && grep -q 'already recording' err"
check "workload on r3" workload r3
out=$("$obd" trace stop r3 2>&1)
check "obd trace stop writes the trace" bash -c "grep -q 'trace written to $d/t/cmd.trace: [1-9][0-9]* records' <<< '$out'"
check "  .ok made, .lock removed" bash -c "test -e t/cmd.trace.ok && ! test -e t/cmd.trace.lock"
check "  the Python reader validates it" $PYT read t/cmd.trace
check "  stop again: not recording, exit 1" bash -c \
	"! '$obd' trace stop r3 2> err && grep -q 'not recording' err"
check "detach" "$obd" detach r3
svc c4
check "attach (fresh cache)" attach r4 fs.json c4.svc.json
b0=$(px_bytes)
check "obd trace replay --wait" "$obd" trace replay --wait --timeout 120 r4 t/cmd.trace
b1=$(px_bytes)
check "the workload then" workload r4
after=$(( $(px_bytes) - b1 ))
diag "replay --wait fetched $((b1 - b0)) bytes, the workload then $after"
check "  fetches (nearly) nothing more: $after <= 5 % of $cold" test $((after * 20)) -le "$cold"
check "replay of a malformed trace is refused before anything is sent" bash -c \
	"$PYT corrupt t/cmd.trace bad.trace checksum && ! '$obd' trace replay r4 bad.trace 2> err && grep -q 'bad.trace: trace header checksum' err"
check "detach" "$obd" detach r4

# obd detach of a recording device writes the trace
: > t/det.trace
with_key fs.json det.json recordTracePath "\"$d/t/det.trace\""
svc c5
check "attach recording" attach r5 det.json c5.svc.json
dd if=/dev/mapper/r5 of=/dev/null bs=64K count=16 iflag=direct status=none
check "obd detach of a recording device" "$obd" detach r5
check "  wrote the trace and .ok first" bash -c "test -s t/det.trace && test -e t/det.trace.ok && $PYT read t/det.trace > /dev/null"

# --- acceleration layer: a tar holding `trace`, the last lower ---------------------------
$PY - "$d" <<'EOF' || bail "cannot make accel.tar"
import io, sys, tarfile
d = sys.argv[1]
data = open(d + "/t/app.trace", "rb").read()
with tarfile.open(d + "/accel.tar", "w") as t:
    ti = tarfile.TarInfo("trace")
    ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))
EOF
$PY - "$d" <<'EOF' || bail "cannot write accel-local.json"
import json, sys
d = sys.argv[1]
c = json.load(open(d + "/fs.json"))
c["lowers"].append({"file": d + "/accel.tar"})
c["accelerationLayer"] = True
json.dump(c, open(d + "/accel-local.json", "w"))
EOF
svc c6
b0=$(px_bytes)
check "attach with a local acceleration layer" attach r6 accel-local.json c6.svc.json
check "  the stack has 1 layer (the acceleration layer left out)" bash -c \
	"[ \"\$(dmsetup table r6 | awk '{print \$4}')\" = 1 ]"
check "  its trace is replayed" bash -c "grep -q 'replaying the trace $d/accel.tar' attach.err"
check "  the replay has sent its ranges (it exits)" replay_sent r6
check "  the prefetch queue drains" prefetch_idle r6
b1=$(px_bytes)
check "  the workload then" workload r6
after=$(( $(px_bytes) - b1 ))
diag "local acceleration layer: replay fetched $((b1 - b0)), the workload then $after"
check "  fetches (nearly) nothing more: $after <= 5 % of $cold" test $((after * 20)) -le "$cold"
check "detach" "$obd" detach r6

# remote: the tar as a blob in the image's repository (upload by the registry API)
hex=$(sha256sum accel.tar | cut -d' ' -f1)
loc=$(curl -si -X POST "http://127.0.0.1:$REG/v2/trace/fs/blobs/uploads/" | tr -d '\r' |
	awk 'tolower($1) == "location:" { print $2 }')
case $loc in /*) loc="http://127.0.0.1:$REG$loc" ;; esac
case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
check "upload the acceleration layer's tar as a blob" curl -sf -X PUT \
	-H 'Content-Type: application/octet-stream' --data-binary @accel.tar "$loc${sep}digest=sha256:$hex"
$PY - "$d" "$hex" "$(stat -c %s accel.tar)" <<'EOF' || bail "cannot write accel-remote.json"
import json, sys
d, hexd, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = json.load(open(d + "/fs.json"))
c["lowers"].append({"digest": "sha256:" + hexd, "size": size})
c["accelerationLayer"] = True
json.dump(c, open(d + "/accel-remote.json", "w"))
EOF
svc c7
check "attach with a remote acceleration layer" attach r7 accel-remote.json c7.svc.json
check "  the stack has 1 layer" bash -c "[ \"\$(dmsetup table r7 | awk '{print \$4}')\" = 1 ]"
check "  the blob was fetched whole into its cache entry" cmp -s "$d/c7/sha256:$hex" accel.tar
check "  its trace is replayed" bash -c "grep -q 'replaying the trace $d/c7/sha256:$hex' attach.err"
check "  the replay has sent its ranges (it exits)" replay_sent r7
check "  the prefetch queue drains" prefetch_idle r7
b1=$(px_bytes)
check "  the workload then" workload r7
after=$(( $(px_bytes) - b1 ))
check "  fetches (nearly) nothing more: $after <= 5 % of $cold" test $((after * 20)) -le "$cold"
check "detach" "$obd" detach r7
with_key accel-local.json both.json recordTracePath "\"$d/t/x.trace\""
check "accelerationLayer + recordTracePath is refused" bash -c \
	"! '$obd' attach --service-config c7.svc.json --name r8 both.json 2> err && grep -q 'recordTracePath: cannot record' err && ! dmsetup info r8 >/dev/null 2>&1"

# --- dynamic mode: a file list ---------------------------------------------------------------
# the workload's files, half of them named, the other half by their directories
awk 'NR % 2 == 1 { print "/" $0 }' workload.txt > t/list
awk 'NR % 2 == 0' workload.txt | sed 's|/[^/]*$||' | sort -u | sed 's|^|/|; s|$|/|' >> t/list
echo "/no/such/file" >> t/list
with_key fs.json dyn.json recordTracePath "\"$d/t/list\""
svc c9
b0=$(px_bytes)
check "attach with a file list as recordTracePath (dynamic)" attach r9 dyn.json c9.svc.json
check "  the files are prefetched in the background" wait_log t/list.log "extents, [0-9]* bytes read" 120
diag "$(grep 'extents' t/list.log)"
check "  a missing file is a warning, not a failure" grep -q "/no/such/file" t/list.log
check "  the temporary mount is gone" bash -c "! grep -q obd-prefetch /proc/mounts"
b1=$(px_bytes)
check "  the workload then" workload r9
after=$(( $(px_bytes) - b1 ))
diag "dynamic: prefetch fetched $((b1 - b0)), the workload then $after"
check "  fetches (nearly) nothing more: $after <= 5 % of $cold" test $((after * 20)) -le "$cold"
check "detach" "$obd" detach r9

fetchd_stop
vm_dmesg_check 35-trace
tap_done
