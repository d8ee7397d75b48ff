#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# overlaybd-fetchd against a real registry (docker-registry) behind a
# counting proxy, with kstub.py standing in for the kernel: widening,
# merging, present ranges answered without HTTP, bytes and .meta bits,
# restart, REFETCH, 404, SIGTERM with requests in flight.
. "$(dirname "$0")/lib.bash"

K=4096
R=262144
mkdir -p "$T/cache"
start_registry reg
start_proxy "$REG_PORT"
mkblob "$T/a.bin" $((3 * 1048576 + 1234))
mkblob "$T/b.bin" $((1048576 + 100))
mkblob "$T/c.bin" 50000		# never uploaded: 404
upload "$REG_PORT" test/repo "$T/a.bin" && upload "$REG_PORT" test/repo "$T/b.bin"
ok $? "blobs uploaded to docker-registry"
url() { echo "http://127.0.0.1:$PX_PORT/v2/test/repo/blobs/sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
A=$(mkentry "$(url "$T/a.bin")" "$T/a.bin")
B=$(mkentry "$(url "$T/b.bin")" "$T/b.bin")
C=$(mkentry "$(url "$T/c.bin")" "$T/c.bin")
ASZ=$((3 * 1048576 + 1234))
BLOBS="[{\"id\":1,\"cache\":\"$A\",\"data\":\"$T/a.bin\"},{\"id\":2,\"cache\":\"$B\",\"data\":\"$T/b.bin\"},
	{\"id\":3,\"cache\":\"$C\",\"data\":\"$T/c.bin\"}]"
echo '{}' > "$T/cred.json"
# isolatedRefillKB 0: every miss widened to refillSize, the reference's rule these cases check
write_config '"requestTimeout": 10, "syncIntervalMs": 100, "isolatedRefillKB": 0'

# --- run 1: cold reads --------------------------------------------------------
run_stub r1 "$BLOBS" "[
	{\"read\": [[1, 0, $K]]},
	{\"read\": [[1, 1048576, $K]], \"repeat\": 32},
	{\"read\": [[1, 524288, $K], [1, $((524288 + 2 * K)), $K]]},
	{\"read\": [[1, 0, $K], [1, $((R - K)), $K]]},
	{\"read\": [[1, $((ASZ - 1234)), 1234]]},
	{\"read\": [[3, 0, $K]], \"expect\": \"err\"},
	{\"sleep\": 0.5}]"
ok $? "run 1: every READ answered once, ranges cover requests, cache bytes match the blob"
is "4 KiB read widened to the 256 KiB refill window" \
	"$(jget "$T/r1.json" '"%d+%d" % (j["steps"][0]["dones"][0]["off"], j["steps"][0]["dones"][0]["len"])')" "0+$R"
px /__stats > "$T/s1.json"
is "32 concurrent reads of one cold range: one ranged GET" \
	"$(jget "$T/s1.json" 'sum(1 for g in j["gets"] if g[1] == "bytes=1048576-1310719")')" 1
is "two reads in one refill window: one GET for both" \
	"$(jget "$T/s1.json" 'sum(1 for g in j["gets"] if g[1].startswith("bytes=524288-"))')" 1
is "tail read: GET of the last window clipped to the blob size" \
	"$(jget "$T/s1.json" "sum(1 for g in j['gets'] if g[1] == 'bytes=3145728-$((ASZ - 1))')")" 1
is "tail DONE ends at the blob size" \
	"$(jget "$T/r1.json" 'j["steps"][4]["dones"][0]["off"] + j["steps"][4]["dones"][0]["len"]')" "$ASZ"
is "present ranges answered without HTTP (A: 4 GETs, C: 1)" \
	"$(jget "$T/s1.json" 'j["requests"]')" 5
is "404 blob: DONE status -ENOENT" "$(jget "$T/r1.json" 'j["steps"][5]["dones"][0]["status"]')" -2
want=$(python3 -c "
g=set()
for o in (0, 1048576, 524288, 3145728):
    g.update(range(o // 4096, min(o + $R, $ASZ + 4095) // 4096))
print(sorted(g))")
is ".meta bits set exactly for the fetched granules" "$(jget "$T/r1.json" 'j["meta"]["1"]')" "$want"
grep -q 'GET http://127.0.0.1:[0-9]*/v2/test/repo/blobs/sha256:[0-9a-f]* bytes 0-49999 failed: not found (HTTP 404' "$T/daemon.log"
ok $? "404 logged with URL, range, status"

# --- run 2: restart keeps the bits ------------------------------------------------
px /__reset > /dev/null
run_stub r2 "$BLOBS" "[
	{\"read\": [[1, 0, $K], [1, 1048576, $K], [1, 524288, $K], [1, $((ASZ - 1234)), 1234]]}]"
ok $? "run 2 (restarted daemon): reads answered"
is "run 2: nothing fetched for ranges made durable by run 1" "$(px_requests)" 0

# --- run 3: REFETCH, whole blob + sha256, SIGTERM with requests in flight -------------
px /__reset > /dev/null
run_stub r3 "$BLOBS" "[
	{\"read\": [[1, 0, $K, 1]]},
	{\"read\": [[2, 0, 1048576], [2, 1048576, 100]]},
	{\"sleep\": 1.6}]"	# the check starts once the blob had no miss for 1 s
ok $? "run 3: REFETCH read and a whole blob"
px /__stats > "$T/s3.json"
# the refill window around it is still present: only the cleared granule goes
is "REFETCH: the range is fetched again (only it: the window around is present)" \
	"$(jget "$T/s3.json" 'sum(1 for g in j["gets"] if g[1] == "bytes=0-4095")')" 1
grep -q 'blob 2 .*sha256 verified' "$T/daemon.log"
ok $? "a blob fully present gets its sha256 verified"
is "REFETCHed bits are durable again" "$(jget "$T/r3.json" '0 in j["meta"]["1"] and 63 in j["meta"]["1"]')" True

px "/__fault?mode=slow&n=1000&ms=1500" > /dev/null
reads=$(python3 -c "print(','.join('[1, %d, 4096]' % (o * 262144) for o in range(4, 12)))")
run_stub r4 "$BLOBS" "[ {\"read\": [$reads], \"wait\": false}, {\"sleep\": 0.3}, {\"sigterm\": true} ]"
ok $? "SIGTERM with requests in flight: every id answered once, exit 0"
is "SIGTERM: all 8 requests answered" "$(jget "$T/r4.json" 'j["steps"][2]["answered"]')" 8
px "/__fault?mode=none" > /dev/null
grep -q 'summary: reads' "$T/daemon.log"
ok $? "a summary line at exit"
! grep -qiE 'authorization:|password' "$T/daemon.log"
ok $? "no credentials in the log"

# --- run 5: a blob whose bytes are not what its digest says ------------------------------
# the entry names d.bin's digest and size; the registry URL serves e.bin (same size)
mkblob "$T/d.bin" 600000
mkblob "$T/e.bin" 600000
upload "$REG_PORT" test/repo "$T/e.bin"
D=$(mkentry "$(url "$T/e.bin")" "$T/d.bin")
DDIG=$(sha256sum "$T/d.bin" | cut -d' ' -f1)
BLOBS5="[{\"id\":4,\"cache\":\"$D\",\"data\":\"$T/e.bin\",\"digest\":\"$DDIG\"}]"
run_stub r5 "$BLOBS5" "[ {\"read\": [[4, 0, 600000]]}, {\"sleep\": 1.0} ]"
ok $? "run 5: the reads themselves are answered"
grep -q 'blob 4 .*sha256 mismatch' "$T/daemon.log"
ok $? "digest mismatch detected and logged once the blob is complete"
is "... and the entry is cleared (no granule left present)" "$(jget "$T/r5.json" 'j["meta"]["4"]')" "[]"
is "the mismatch is logged once" "$(grep -c 'blob 4 .*sha256 mismatch' "$T/daemon.log")" 1

# --- command line -------------------------------------------------------------------
"$FETCHD" --version | grep -q '^overlaybd-fetchd '
ok $? "--version"
"$FETCHD" --help | grep -q -- '--service-config'
ok $? "--help"
"$FETCHD" --service-config "$T/missing.json" --device "$T/chan.sock" 2>"$T/err"
is "an explicit config that does not exist: exit 1" "$?" 1
echo '{ "cacheConfig": { "refillSize": 1000 } }' > "$T/bad.json"
"$FETCHD" --service-config "$T/bad.json" --device "$T/chan.sock" 2>"$T/err"
rc=$?
grep -q 'refillSize' "$T/err"
is "a bad config key: exit 1, the key named" "$rc:$?" "1:0"
"$FETCHD" --service-config "$T/overlaybd.json" --device "$T/nothing-here" 2>"$T/err"
is "a missing device: exit 1" "$?" 1

done_testing
