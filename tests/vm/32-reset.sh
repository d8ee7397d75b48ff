#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 32-reset.sh: a hard reset (QEMU killed with SIGKILL) in the middle of lazy
# fetches, and what survives it. Two boots on one scratch disk (run-tests.sh
# reads the headers below; by hand:
#   scripts/vm-run.sh --kernel 6.1 --scratch-disk 128 --boots 2 -- bash tests/vm/32-reset.sh)
# Boot 1: ext4 on the disk, docker-registry with its storage there, a 2-layer
# image (6 MiB uncompressed LSMT, a zstd ZFile upper) pushed with obd push,
# overlaybd-fetchd with its cacheDir there, obd attach, the first MiB read and
# synced; then readers of the rest, slowed at the proxy, and the kill at a
# random moment 0.5..2 s later (readahead off, so the kill comes mid-fetch).
# Boot 2: the ext4 recovers; every granule the .meta bitmaps mark present holds
# the blob's bytes (tests/tools/cache-check.py) and at least the synced MiB is
# there; the same config attaches again, the device reads to obd cat's sha256,
# the registry (counted at the proxy) serves something (the kill came mid-fetch)
# but no more than the blob bytes that were not durable, the entries are still
# right afterwards; dmesg clean.
# vm-disk-mb: 128
# vm-boots: 2
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

CHECK=$OBD_TOP/tests/tools/cache-check.py
vm_crash_begin 32-reset t
REG_ROOT=$d/reg
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
[ -x "$obd" ] && [ -x "$fetchd" ] || bail "build/obd or build/overlaybd-fetchd missing: run make first"
[ -x /usr/bin/docker-registry ] || bail "docker-registry missing: scripts/deps.sh installs it"
reg_start

# present_bytes: the sum of cache-check.py's "present" over both entries
# (fails on any marked granule whose bytes are not the blob's)
present_bytes() {
	local f h out n sum=0
	for f in g.commit u.zstd; do
		h=$(sha256sum "$f" | cut -d' ' -f1)
		out=$($PY "$CHECK" "cache/sha256:$h" "$f" 2>&1) || { echo "$f: $out" >&2; return 1; }
		read -r _ n _ <<< "$out"
		sum=$((sum + n))
	done
	echo "$sum"
}

if [ "$OBD_VM_BOOT" = 1 ]; then
	# --- boot 1: image, registry, daemon, a partial read, then the crash ---------
	check "make a 6 MiB uncompressed base and a zstd upper" bash -c "
		head -c 6291456 /dev/urandom > g.raw && head -c 1048576 /dev/urandom > u.bin &&
		'$obd' create g.data g.index 8M && '$obd' import --no-progress g.data g.index g.raw &&
		'$obd' commit --no-progress g.data g.index g.commit &&
		'$obd' create u.data u.index 8M && '$obd' write u.data u.index --offset 2M u.bin &&
		'$obd' commit --no-progress -z --algorithm zstd --bs 64 u.data u.index u.zstd &&
		rm -f g.raw g.data g.index u.data u.index" || bail "layers"
	"$obd" cat --no-progress g.commit u.zstd | sha256sum | cut -d' ' -f1 > want.sha
	"$obd" cat --no-progress --offset 0 --length 1M g.commit u.zstd | sha256sum | cut -d' ' -f1 > want1m.sha
	check "obd push to the registry on the disk" bash -c \
		"'$obd' push http://127.0.0.1:$REG/crash/img:v1 g.commit u.zstd > img.json" || bail "push"
	cat > svc.json <<-JSON
	{ "logConfig": { "logLevel": 1 },
	  "cacheConfig": { "cacheDir": "$d/cache", "refillSize": 262144 },
	  "fetchConfig": { "requestTimeout": 20, "syncIntervalMs": 50, "readaheadMB": 0 } }
	JSON
	mkdir -p cache
	sync
	if fetchd_start; then ok "overlaybd-fetchd starts"; else bail "fetchd: $(tail -5 fetchd.log)"; fi
	via_proxy img.json img-px.json
	check "obd attach (cold cache on the disk)" "$obd" attach --service-config svc.json \
		--name r-reset img-px.json || bail "attach"
	check_eq "the first MiB reads right" \
		"$(dd if=/dev/mapper/r-reset bs=64K count=16 iflag=direct status=none | sha256sum | cut -d' ' -f1)" \
		"$(cat want1m.sha)"
	sleep 0.5	# > syncIntervalMs: the daemon made it durable
	sync
	# the rest, slowly: each blob request waits 1 s at the proxy, so the two
	# readers need ~10 s for the remaining 5 MiB and the kill (0.5 .. 2 s
	# from now) lands mid-fetch
	px_fault slow 1000 1000
	for w in 0 1; do
		dd if=/dev/mapper/r-reset bs=64K skip=$((16 + w * 48)) count=48 iflag=direct \
			of=/dev/null status=none &
	done
	sleep 0.5
	diag "proxy served $(px_bytes) bytes before the kill"
	vm_kill_now 1500
fi

# --- boot 2: after the crash ---------------------------------------------------------
want=$(cat want.sha)
[ -n "$want" ] || bail "no want.sha: boot 1 did not get far"
blobs=$(( $(stat -c %s g.commit) + $(stat -c %s u.zstd) ))
p1=$(present_bytes 2>cc.err)
check "after the crash every granule marked present holds the blob's bytes" test -n "$p1" ||
	diag "$(cat cc.err)"
diag "durable after the crash: ${p1:-?} of $blobs blob bytes"
check "the MiB read and synced before the crash is durable (${p1:-0} >= 1048576)" \
	test "${p1:-0}" -ge 1048576

meta0=$(vm_tmpdir)	# the bitmaps as the crash left them
vm_on_exit rm -rf "$meta0"
cp cache/*.meta "$meta0/"
mv fetchd.log fetchd.boot1.log	# fetchd_start waits for its line in fetchd.log
if fetchd_start; then ok "overlaybd-fetchd starts on the recovered cache"; else bail "fetchd: $(tail -5 fetchd.log)"; fi
b0=$(px_bytes)
check "obd attach the same config again" "$obd" attach --service-config svc.json \
	--name r-reset img-px.json || bail "attach"
vm_on_exit dmsetup remove r-reset
b1=$(px_bytes)
check_eq "the device reads to obd cat's sha256" "$(devsha r-reset)" "$want"
b2=$(px_bytes)
diag "fetched in boot 2: attach $((b1 - b0)), reads $((b2 - b1)) bytes; not durable before: $((blobs - ${p1:-0}))"
check "the crash came mid-fetch: boot 2 had to fetch the rest ($((b2 - b0)) > 0)" \
	test "$((b2 - b0))" -gt 0
check "boot 2 fetched at most what was not durable ($((b2 - b0)) <= $((blobs - ${p1:-0})))" \
	test "$((b2 - b0))" -le "$((blobs - ${p1:-0}))"
# refetched: granules of boot 2's blob GETs that the crash had left marked present
refetched=$(curl -s "http://127.0.0.1:$PX/__stats" | $PY -c '
import json, re, struct, sys
n = 0
for path, rng in json.load(sys.stdin)["gets"]:
    m = re.search(r"/blobs/(sha256:[0-9a-f]{64})$", path)
    r = re.match(r"bytes=(\d+)-(\d+)$", rng)
    if not m or not r:
        continue
    meta = open(sys.argv[1] + "/" + m.group(1) + ".meta", "rb").read()
    boff, blen = struct.unpack_from("<QQ", meta, 64)
    bits = meta[boff:boff + blen]
    for g in range(int(r.group(1)) >> 12, (int(r.group(2)) >> 12) + 1):
        n += bits[g // 8] >> (g % 8) & 1
print(n)' "$meta0")
check_eq "no granule durable before the crash was fetched again" "${refetched:-error}" 0
check_eq "no I/O error on the device" "$(stat_field r-reset io_errors)" 0
dmsetup remove r-reset
fetchd_stop
p2=$(present_bytes 2>cc.err)
check "afterwards the entries are right and hold at least what survived (${p2:-bad} >= ${p1:-0})" \
	test "${p2:-0}" -ge "${p1:-0}" -a -n "$p2" || diag "$(cat cc.err)"
check "the daemon logged no assertion or sanitizer report" bash -c "! grep -qi 'assert\|sanitizer\|segv' fetchd.log"

vm_dmesg_check "32-reset-boot$OBD_VM_BOOT"
tap_done
