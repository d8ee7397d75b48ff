#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The review's "download job stall" suspicion (section 2), kstub.py
# standing in for the kernel. A blob's background download ends with the
# sha256 check of the whole blob; a check that never comes left the job
# polling for ever, never done, the entry never marked complete:
#   - an entry fully present when the daemon loads it (obd filled it, or a
#     daemon stopped before checking): checked, marked complete, the
#     download done, without a miss
#   - the cache file cut short under the daemon: the read-back fails; it
#     is tried again (1 s, doubling) and each failure is a failed attempt
#     of the download, which gives up after tryCnt (2) instead of waiting
#   - libcurl resolves names off the loop (AsynchDNS; else a warning)
. "$(dirname "$0")/lib.bash"

mkdir -p "$T/cache"
echo '{}' > "$T/cred.json"
start_registry reg
mkblob "$T/a.bin" 300000
upload "$REG_PORT" test/stall "$T/a.bin"
ok $? "blob uploaded"
url() { echo "http://127.0.0.1:$REG_PORT/v2/test/stall/blobs/sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
# a full entry: the blob's bytes, every bit set, not marked complete
fill() {	# fill CACHE BLOB
	cp "$2" "$1" && python3 - "$1" "$2" <<-'PY'
	import os, sys
	sys.path.insert(0, os.environ["here"])
	import kstub
	size = os.path.getsize(sys.argv[2])
	with open(sys.argv[1] + ".meta", "r+b") as f:
	    f.seek(4096)
	    g = (size + 4095) // 4096
	    bm = bytearray(kstub.bitmap_bytes(size))
	    for i in range(g):
	        bm[i // 8] |= 1 << (i % 8)
	    f.write(bm)
	PY
}
export here
A=$(mkentry "$(url "$T/a.bin")" "$T/a.bin")
fill "$A" "$T/a.bin" && python3 "$here/kstub.py" set-download "$A" 1 0 0 0 2 262144
ok $? "entry filled, every bit set, download on (tryCnt 2), not complete"
write_config '"requestTimeout": 10, "syncIntervalMs": 100'
BL="[{\"id\":1,\"cache\":\"$A\",\"data\":\"$T/a.bin\"}]"

run_stub r1 "$BL" '[{"sleep": 2.5}]'
ok $? "run 1: daemon ran"
runlog r1 | grep -q "blob 1 .*complete, sha256 verified"
ok $? "run 1: the full entry was checked"
is "run 1: and marked complete" "$(jget "$T/r1.json" 'j["flags"]["1"]["flags"]')" 1
runlog r1 | grep -q "blob 1 .*background download done"
ok $? "run 1: its download is done"

# --- the read-back fails --------------------------------------------------------------------
rm -f "$A" "$A.meta"
A=$(mkentry "$(url "$T/a.bin")" "$T/a.bin")
fill "$A" "$T/a.bin" && python3 "$here/kstub.py" set-download "$A" 1 0 0 0 2 262144
# the check starts 1 s after the load: the file is cut short in between.
# Not before the load: a cache file shorter than its blob is refused when
# it is opened (another path, 96 and test_cache_entry), and a daemon slow
# to take the OPEN (a loaded CI machine) met the cut file.
cut="for i in \$(seq 200); do sed -n '/^=== run r2\$/,\$p' '$T/daemon.log' | grep -q 'blob 1: .*granules present' && break; sleep 0.05; done; truncate -s 4096 '$A'"
run_stub r2 "$BL" "[{\"exec\": \"$cut\"}, {\"sleep\": 5}, {\"alive\": 1}]"
ok $? "run 2: daemon ran"
runlog r2 | grep -q "blob 1 .*reading for the sha256 check at .*unexpected end of file"
ok $? "run 2: the failed read-back is said"
n=$(runlog r2 | grep -c 'reading for the sha256 check')
[ "$n" -ge 2 ] && [ "$n" -le 3 ]
ok $? "run 2: it was tried again, after 1 s, then 2 s ($n failed read-backs in 5 s: at 0, 1 and 3 s, the next at 7 s)"
runlog r2 | grep -q "blob 1 .*background download given up after 2 attempts: the sha256 check could not read the cache file"
ok $? "run 2: the download gives up after tryCnt attempts instead of waiting for ever"
is "run 2: not marked complete" "$(jget "$T/r2.json" 'j["flags"]["1"]["flags"]')" 0

# --- names resolved off the loop ----------------------------------------------------------
if curl -V | grep -q '^Features:.*AsynchDNS'; then
	is "libcurl resolves asynchronously (AsynchDNS): no warning" \
		"$(grep -c 'resolves host names synchronously' "$T/daemon.log")" 0
else
	grep -q 'resolves host names synchronously' "$T/daemon.log"
	ok $? "libcurl without AsynchDNS: the daemon warns"
fi
done_testing
