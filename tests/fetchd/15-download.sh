#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Background download (download{}, spec 5.4/6.6) with kstub.py standing in
# for the kernel and a counting proxy in front of docker-registry: whole
# blobs fetched in blockSize pieces, every piece announced with HAVE, the
# sha256 checked and the entry marked complete (durably: a restarted
# daemon fetches nothing and does not verify again); present ranges are
# skipped; a corrupted piece fails the digest and the blob comes again
# (tryCnt); maxMBps throttles while a miss is still answered at once; the
# policy an image put in the .meta beats the daemon's default.
. "$(dirname "$0")/lib.bash"

K=4096
BS=262144
mkdir -p "$T/cache"
start_registry reg
start_proxy "$REG_PORT"
ASZ=$((3 * 1048576 + 1234)); BSZ=$((1048576 + 100)); CSZ=$((2 * 1048576)); DSZ=$((3 * 1048576))
mkblob "$T/a.bin" $ASZ; mkblob "$T/b.bin" $BSZ; mkblob "$T/c.bin" $CSZ; mkblob "$T/d.bin" $DSZ
for f in a b c d; do upload "$REG_PORT" test/repo "$T/$f.bin" || bail "upload $f"; done
ok 0 "blobs uploaded"
url() { echo "http://127.0.0.1:$PX_PORT/v2/test/repo/blobs/sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
A=$(mkentry "$(url "$T/a.bin")" "$T/a.bin")
B=$(mkentry "$(url "$T/b.bin")" "$T/b.bin")
C=$(mkentry "$(url "$T/c.bin")" "$T/c.bin")
D=$(mkentry "$(url "$T/d.bin")" "$T/d.bin")
echo '{}' > "$T/cred.json"
dl_config() {	# dl_config DOWNLOAD_JSON
	write_config '"requestTimeout": 20, "syncIntervalMs": 50, "readaheadMB": 0, "isolatedRefillKB": 0' "\"download\": $1"
}
granules() { echo $(( ($1 + K - 1) / K )); }
all_bits() { python3 -c "print(list(range($(granules "$1"))))"; }
COMPLETE_FLAGS="{'flags': 1, 'dl_flags': 0}"
# the union of the HAVE ranges of blob ID in run NAME, as "off+len" runs
have_runs() {
	jget "$T/$1.json" "(lambda r: ' '.join('%d+%d' % x for x in r))((lambda hs: (lambda m: m)(
	__import__('functools').reduce(lambda acc, h: acc[:-1] + [(acc[-1][0], max(acc[-1][0] + acc[-1][1], h[0] + h[1]) - acc[-1][0])]
	if acc and h[0] <= acc[-1][0] + acc[-1][1] else acc + [h], sorted((h[1], h[2]) for h in hs if h[0] == $2), [])))(j['haves']))"
}

# --- run 1: A and B downloaded in the background, one miss on A first ---------
dl_config '{ "enable": true, "delay": 0, "delayExtra": 0, "maxMBps": 0, "blockSize": 262144 }'
run_stub r1 "[{\"id\":1,\"cache\":\"$A\",\"data\":\"$T/a.bin\"},{\"id\":2,\"cache\":\"$B\",\"data\":\"$T/b.bin\"}]" "[
	{\"read\": [[1, 1048576, $K]]},
	{\"sleep\": 4}]"
ok $? "run 1: miss answered, daemon stopped cleanly"
is "A: every granule durable in the .meta" "$(jget "$T/r1.json" 'j["meta"]["1"]')" "$(all_bits $ASZ)"
is "B: every granule durable in the .meta" "$(jget "$T/r1.json" 'j["meta"]["2"]')" "$(all_bits $BSZ)"
is "A: header says complete (sha256 verified)" "$(jget "$T/r1.json" 'j["flags"]["1"]')" "$COMPLETE_FLAGS"
is "B: header says complete" "$(jget "$T/r1.json" 'j["flags"]["2"]')" "$COMPLETE_FLAGS"
cmp -s "$A" "$T/a.bin" && cmp -s "$B" "$T/b.bin"
ok $? "cache files hold the blobs' bytes"
is "A: HAVE messages cover the blob except the window the miss brought" \
	"$(have_runs r1 1)" "0+1048576 1310720+$((ASZ - 1310720))"
is "B: HAVE messages cover the whole blob" "$(have_runs r1 2)" "0+$BSZ"
px /__stats > "$T/s1.json"
is "pieces are blockSize GETs (none larger)" \
	"$(jget "$T/s1.json" 'max(int(b) - int(a) + 1 for a, b in (g[1][6:].split("-") for g in j["gets"] if g[1]))')" $BS
is "nothing fetched twice: bytes through the proxy = A + B" "$(jget "$T/s1.json" 'j["bytes"]')" $((ASZ + BSZ))
grep -q "blob 1 ($A): background download done (attempt 1)" "$T/daemon.log"
ok $? "download of A logged as done"
grep -q "blob 1 ($A): marked complete" "$T/daemon.log"
ok $? "A marked complete"

# --- run 2: restart: complete entries fetch nothing, verify nothing ----------------
px /__reset > /dev/null
run_stub r2 "[{\"id\":1,\"cache\":\"$A\",\"data\":\"$T/a.bin\"},{\"id\":2,\"cache\":\"$B\",\"data\":\"$T/b.bin\"}]" "[
	{\"read\": [[1, 0, $ASZ], [2, 0, $BSZ]]}, {\"sleep\": 0.5}]"
ok $? "run 2: whole-blob reads answered"
is "run 2: no HTTP request" "$(px_requests)" 0
runlog r2 | grep -q 'sha256 verified'
ok $((! $?)) "run 2: no second sha256 check of a complete entry"
runlog r2 | grep -q 'background download in'
ok $((! $?)) "run 2: no download job for a complete blob"

# --- run 3: a corrupted piece: digest mismatch, attempt 2 succeeds ---------------
px /__reset > /dev/null
px "/__fault?mode=corrupt&n=1" > /dev/null
run_stub r3 "[{\"id\":3,\"cache\":\"$C\",\"data\":\"$T/c.bin\"}]" "[{\"sleep\": 6}]"
ok $? "run 3: daemon ran and stopped"
runlog r3 | grep -q "blob 3 ($C): sha256 mismatch"
ok $? "run 3: mismatch detected"
runlog r3 | grep -q "background download attempt 1 of 5 failed: sha256 mismatch; trying again"
ok $? "run 3: attempt 1 logged as failed"
runlog r3 | grep -q "background download done (attempt 2)"
ok $? "run 3: attempt 2 done"
cmp -s "$C" "$T/c.bin"
ok $? "run 3: cache file right after the second attempt"
is "run 3: complete" "$(jget "$T/r3.json" 'j["flags"]["3"]')" "$COMPLETE_FLAGS"
is "run 3: fetched twice in all" "$(jget <(px /__stats) 'j["bytes"]')" $((2 * CSZ))

# --- run 4: throttled to 1 MiB/s; a miss meanwhile is answered at once; .meta policy ---
# the daemon's default is off: the image's policy in D's .meta turns it on
px /__reset > /dev/null
dl_config '{ "enable": false }'
python3 "$here/kstub.py" set-download "$D" 1 0 0 1 5 262144
run_stub r4 "[{\"id\":4,\"cache\":\"$D\",\"data\":\"$T/d.bin\"}]" "[
	{\"sleep\": 1.2},
	{\"read\": [[4, $((DSZ - K)), $K]]},
	{\"sleep\": 0.2}]"
ok $? "run 4: daemon ran; the miss was answered"
runlog r4 | grep -q "background download in 0 s (1 MiB/s max"
ok $? "run 4: the .meta's policy used (1 MiB/s)"
ms=$(jget "$T/r4.json" 'j["steps"][1]["dones"][0]["ms"]')
[ "$ms" -lt 1500 ]
ok $? "run 4: a miss during the throttled download answered in $ms ms"
got=$(jget "$T/r4.json" 'len(j["meta"]["4"])')
[ "$got" -lt "$(granules $DSZ)" ]
ok $? "run 4: throttled: not all of 3 MiB in 1.4 s at 1 MiB/s (1 s burst): $got granules"
b4=$(jget <(px /__stats) 'j["bytes"]')
[ "$b4" -ge $((1048576)) ]
ok $? "run 4: but downloading: $b4 bytes fetched"
is "run 4: the policy stays in the header" "$(jget "$T/r4.json" 'j["flags"]["4"]["dl_flags"]')" 3

# --- prefetch READs (OBD_READ_F_PREFETCH) queue behind misses -----------------------------
# one transfer slot: a slow prefetch holds it; a miss that then needs the
# range of a queued prefetch promotes it, and is answered before the
# prefetches queued ahead of it
E=$(mkentry "$(url "$T/d.bin")" "$T/d.bin")
rm -f "$E" "$E.meta"; E=$(mkentry "$(url "$T/d.bin")" "$T/d.bin")
px /__reset > /dev/null
px "/__fault?mode=slow&n=1&ms=1000" > /dev/null
LOGLEVEL=0 write_config '"requestTimeout": 20, "maxConcurrent": 1, "readaheadMB": 0' '"prefetchConfig": { "concurrency": 1 }'
M=524288
run_stub r5 "[{\"id\":5,\"cache\":\"$E\",\"data\":\"$T/d.bin\"}]" "[
	{\"read\": [[5, 0, $M, 2], [5, $M, $M, 2], [5, $((2 * M)), $M, 2], [5, $((3 * M)), $M, 2]], \"wait\": false},
	{\"sleep\": 0.2},
	{\"read\": [[5, $((3 * M + K)), $K]]},
	{\"sleep\": 3}]"
ok $? "run 5: prefetch READs and a miss all answered, bytes right"
first() { runlog r5 | grep -n "DONE id $1 " | head -1 | cut -d: -f1; }
fg=$(first 1004); p2=$(first 1001); p4=$(first 1003)
[ -n "$fg" ] && [ -n "$p2" ] && [ "$fg" -lt "$p2" ]
ok $? "run 5: the miss (DONE line $fg) answered before the prefetch queued ahead of it (line $p2)"
[ -n "$p4" ] && [ "$p4" -le "$fg" ]
ok $? "run 5: the prefetch it needed was promoted and answered with it"

# prefetch waits in its queue by design: requestTimeout counts from when a fetch starts
rm -f "$E" "$E.meta"; E=$(mkentry "$(url "$T/d.bin")" "$T/d.bin")
px /__reset > /dev/null
px "/__fault?mode=slow&n=6&ms=1000" > /dev/null
write_config '"requestTimeout": 3, "maxConcurrent": 1, "readaheadMB": 0' '"prefetchConfig": { "concurrency": 1 }'
steps=""
for i in 0 1 2 3 4 5; do steps="$steps${steps:+, }[5, $((i * M)), $M, 2]"; done
run_stub r6 "[{\"id\":5,\"cache\":\"$E\",\"data\":\"$T/d.bin\"}]" "[ {\"read\": [ $steps ]} ]"
ok $? "run 6: 6 prefetch READs taking 1 s each, one at a time, all answered under a 3 s requestTimeout"
runlog r6 | grep -q 'requestTimeout reached'
ok $((! $?)) "run 6: none timed out in the queue"

# --- bad download config values are refused, naming the key ------------------------
dl_config '{ "enable": true, "blockSize": 1000 }'
"$FETCHD" --service-config "$T/overlaybd.json" --device "$T/none" 2> "$T/bad.log"
[ $? -ne 0 ] && grep -q 'download.blockSize' "$T/bad.log"
ok $? "download.blockSize 1000: refused, key named"
dl_config '{ "enable": "yes" }'
"$FETCHD" --service-config "$T/overlaybd.json" --device "$T/none" 2> "$T/bad.log"
[ $? -ne 0 ] && grep -q 'download.enable: expected a boolean' "$T/bad.log"
ok $? "download.enable \"yes\": refused, key named"
done_testing
