#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A full cache disk (review D5) with kstub.py standing in for the kernel:
# the cache directory is a 4 MiB tmpfs, the image's blob 24 MiB. A write
# that meets ENOSPC asks for an eviction pass at once and is written again
# after it; still full, its READ fails (EIO) and for a while the next
# misses fail without a GET; the log is rate limited per message, so
# dozens of failures give a few lines; once the disk has grown (remount)
# the blob reads right without a restart. Needs root (mount).
. "$(dirname "$0")/lib.bash"

[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root (tmpfs mount)"; exit 0; }
MiB=1048576
mkdir -p "$T/cache"
mount -t tmpfs -o size=4m,mode=0700 obd-test-cache "$T/cache" || bail "mount tmpfs"
trap 'umount "$T/cache" 2>/dev/null; cleanup' EXIT
echo '{}' > "$T/cred.json"
start_registry reg
start_proxy "$REG_PORT"
mkblob "$T/big.bin" $((24 * MiB))
upload "$REG_PORT" test/full "$T/big.bin"
ok $? "24 MiB blob uploaded"
C=$(mkentry "http://127.0.0.1:$PX_PORT/v2/test/full/blobs/sha256:$(sha256sum "$T/big.bin" | cut -d' ' -f1)" "$T/big.bin")
# evictIntervalMs an hour: besides the daemon's first look (1 s after start,
# before anything is written: the first step waits for it), every pass in this
# run is one that ENOSPC asked for
CACHE_MORE='"evictIntervalMs": 3600000' write_config '"requestTimeout": 10, "syncIntervalMs": 100, "isolatedRefillKB": 0'
BLOBS="[{\"id\":1,\"cache\":\"$C\",\"data\":\"$T/big.bin\"}]"

# 3 MiB fit; then the disk is filled (those reads may or may not fit);
# then 40 misses, one at a time, past what the disk holds
steps="{\"sleep\": 2}, {\"read\": [[1, 0, $((3 * MiB))]]},"
for i in $(seq 0 7); do
	steps="$steps{\"read\": [[1, $((3 * MiB + i * 262144)), 4096]], \"expect\": \"any\"},"
done
for i in $(seq 0 39); do
	steps="$steps{\"read\": [[1, $((4 * MiB + i * 262144)), 4096]], \"expect\": \"err\"},"
done
steps="$steps{\"exec\": \"curl -sS http://127.0.0.1:$PX_PORT/__stats\"},"
steps="$steps{\"exec\": \"mount -o remount,size=64m '$T/cache'\"}, {\"sleep\": 2.5},"
# the whole blob, after the disk grew: every byte right
rd=""
for o in $(seq 0 $((24 * MiB / 1048576 - 1))); do rd="$rd${rd:+,}[1, $((o * MiB)), $MiB]"; done
steps="$steps{\"read\": [$rd]}, {\"sleep\": 0.3}"
run_stub r1 "$BLOBS" "[$steps]"
ok $? "run 1: 3 MiB read, 40 misses on the full disk fail, after the remount the whole 24 MiB read right"
is "the 40 misses on the full disk: EIO" \
	"$(jget "$T/r1.json" 'sorted(set(s["dones"][0]["status"] for s in j["steps"][10:50]))')" "[-5]"
gets=$(jget "$T/r1.json" 'len([g for g in json.loads(j["steps"][50]["out"])["gets"] if int(g[1].split("=")[1].split("-")[0]) >= 4194304])')
[ "$gets" -le 10 ]
ok $? "misses on a disk still full after an eviction pass fail without a GET each ($gets GETs for 40 misses)"
runlog r1 | grep -q "No space left on device"
ok $? "the full disk is said"
n=$(runlog r1 | grep -c 'WARN\|ERROR')
[ "$n" -le 14 ]
ok $? "at most a few WARN/ERROR lines for 40 failures ($n)"
runs=$(runlog r1 | sed -n 's/.*evictions [0-9]* ([0-9]* bytes, \([0-9]*\) runs).*/\1/p')
[ "${runs:-0}" -ge 2 ]
ok $? "an eviction pass ran at once on ENOSPC (the interval is an hour; $runs passes with the first look)"
done_testing
