#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A range the daemon takes back is taken back in the kernel too (D4 of the
# fetchd review; OBD_MSG_INVALIDATE, include/obd_uapi.h): the fault proxy
# corrupts one GET, the blob completes with wrong bytes, the sha256 check
# finds the mismatch, and the daemon sends INVALIDATE for the whole blob
# (checked by kstub.py as the kernel does) before anything names it present
# again; then it comes again, right. Once by misses alone (the kernel's
# next READs are fetched again, not answered from the cache), once by the
# background download (its HAVEs follow the INVALIDATE).
# Not covered here: the fdatasync-error path (no way to make a host file
# system fail a writeback from a test; the same chan_take_back sends it).
. "$(dirname "$0")/lib.bash"

K=4096
mkdir -p "$T/cache"
start_registry reg
start_proxy "$REG_PORT"
ASZ=$((1048576 + 5000)); BSZ=$((2 * 1048576))
mkblob "$T/a.bin" $ASZ; mkblob "$T/b.bin" $BSZ
for f in a b; do upload "$REG_PORT" test/repo "$T/$f.bin" || bail "upload $f"; done
ok 0 "blobs uploaded"
url() { echo "http://127.0.0.1:$PX_PORT/v2/test/repo/blobs/sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
A=$(mkentry "$(url "$T/a.bin")" "$T/a.bin")
B=$(mkentry "$(url "$T/b.bin")" "$T/b.bin")
echo '{}' > "$T/cred.json"
COMPLETE_FLAGS="{'flags': 1, 'dl_flags': 0}"

# --- run 1: misses only: a corrupted GET, the mismatch, INVALIDATE, fetched again ---
# one READ of the whole blob, one GET (corrupted: one byte flipped);
# the daemon must not answer the second READ from its cache
write_config '"requestTimeout": 20, "syncIntervalMs": 50, "readaheadMB": 0, "isolatedRefillKB": 0' \
	'"download": { "enable": false }'
px /__reset > /dev/null
px "/__fault?mode=corrupt&n=1" > /dev/null
run_stub r1 "[{\"id\":1,\"cache\":\"$A\",\"data\":\"$T/a.bin\"}]" "[
	{\"read\": [[1, 0, $ASZ]], \"check_bytes\": false},
	{\"sleep\": 3},
	{\"read\": [[1, 0, $ASZ]]},
	{\"sleep\": 2.5}]"
ok $? "run 1: both READs answered; the second one's bytes right; every message well-formed"
runlog r1 | grep -q "blob 1 ($A): sha256 mismatch"
ok $? "run 1: the daemon found the mismatch"
is "run 1: one INVALIDATE, of the whole blob" "$(jget "$T/r1.json" 'j["invalidates"]')" "[[1, 0, $ASZ]]"
is "run 1: messages in order: DONE (bad bytes), INVALIDATE, DONE (fetched again)" \
	"$(jget "$T/r1.json" '[e[0] for e in j["events"]]')" "['done', 'invalidate', 'done']"
is "run 1: the blob was fetched twice (the second READ was not answered from the cache)" \
	"$(jget <(px /__stats) 'j["bytes"]')" $((2 * ASZ))
cmp -s "$A" "$T/a.bin"
ok $? "run 1: the cache file holds the right bytes"
runlog r1 | grep -q "blob 1 ($A): complete, sha256 verified"
ok $? "run 1: the second copy verified"
is "run 1: marked complete" "$(jget "$T/r1.json" 'j["flags"]["1"]')" "$COMPLETE_FLAGS"

# --- run 2: background download: HAVEs, the mismatch, INVALIDATE, HAVEs again ---
write_config '"requestTimeout": 20, "syncIntervalMs": 50, "readaheadMB": 0, "isolatedRefillKB": 0' \
	'"download": { "enable": true, "delay": 0, "delayExtra": 0, "maxMBps": 0, "blockSize": 262144 }'
px /__reset > /dev/null
px "/__fault?mode=corrupt&n=1" > /dev/null
run_stub r2 "[{\"id\":2,\"cache\":\"$B\",\"data\":\"$T/b.bin\"}]" "[
	{\"sleep\": 6},
	{\"read\": [[2, 0, $BSZ]]}]"
ok $? "run 2: the READ after it answered with the right bytes; every message well-formed"
is "run 2: one INVALIDATE, of the whole blob" "$(jget "$T/r2.json" 'j["invalidates"]')" "[[2, 0, $BSZ]]"
# the union of the HAVE ranges before and after the INVALIDATE
cover() {
	jget "$T/r2.json" "(lambda ev: (lambda i: sorted(set(g for e in (ev[:i] if '$1' == 'before' else ev[i + 1:])
		if e[0] == 'have' for g in range(e[2] // $K, (e[2] + e[3] + $K - 1) // $K))) == list(range($BSZ // $K)))(
		[e[0] for e in ev].index('invalidate')))(j['events'])"
}
is "run 2: HAVEs before the INVALIDATE covered the blob (attempt 1)" "$(cover before)" True
is "run 2: HAVEs after it cover the blob again (attempt 2)" "$(cover after)" True
runlog r2 | grep -q "background download attempt 1 of 5 failed: sha256 mismatch"
ok $? "run 2: attempt 1 failed on the mismatch"
cmp -s "$B" "$T/b.bin"
ok $? "run 2: the cache file holds the right bytes"
is "run 2: marked complete" "$(jget "$T/r2.json" 'j["flags"]["2"]')" "$COMPLETE_FLAGS"
done_testing
