#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Cache limits (cacheConfig.cacheSizeGB, minFreeGB; evict.c over
# cache_scan.c) with kstub.py standing in for the kernel: past the risk
# mark, entries no device uses are removed least recently used first down
# to the water mark; entries in use (OPENed) and entries used within
# evictGraceSec stay; when the limit cannot be reached that is said once,
# not on every pass; a free-disk floor evicts even under the size limit.
. "$(dirname "$0")/lib.bash"

MiB=1048576
mkdir -p "$T/cache"
echo '{}' > "$T/cred.json"
# entry NAME MIB AGE_MIN: a cache entry with MIB MiB allocated, last used AGE_MIN minutes ago
entry() {
	mkblob "$T/$1.bin" $(($2 * MiB))
	local c
	c=$(mkentry "http://127.0.0.1:9/v2/r/blobs/sha256:$(sha256sum "$T/$1.bin" | cut -d' ' -f1)" "$T/$1.bin")
	dd if="$T/$1.bin" of="$c" conv=notrunc bs=1M status=none
	touch -d "-$3 min" "$c" "$c.meta"
	echo "$c"
}
evict_config() {	# evict_config CACHE_GB MIN_FREE_GB GRACE_S
	CACHE_MORE="\"cacheSizeGB\": $1, \"minFreeGB\": $2, \"evictIntervalMs\": 100, \"evictGraceSec\": $3" \
		write_config '"requestTimeout": 5'
}
gone() { [ ! -e "$1" ] && [ ! -e "$1.meta" ]; }
kept() { [ -e "$1" ] && [ -e "$1.meta" ]; }

# --- LRU down to the water mark, in-use and recent entries kept --------------------
E1=$(entry e1 2 300)	# oldest of all, but in use
E2=$(entry e2 2 200)
E3=$(entry e3 2 100)
E5=$(entry e5 2 50)
E4=$(entry e4 2 0)	# just used: inside the grace
# 7 MiB limit: water 6.3, risk 6.65; 10 MiB used -> E2, E3 go (LRU), 6 MiB left
evict_config "$(python3 -c 'print(7 / 1024)')" 0 600
run_stub r1 "[{\"id\":1,\"cache\":\"$E1\",\"data\":\"$T/e1.bin\"}]" '[{"sleep": 2}]'
ok $? "run 1: daemon ran with one blob in use"
gone "$E2" && gone "$E3"
ok $? "the two least recently used unused entries went (data and .meta)"
kept "$E1"
ok $? "the entry in use stays, though the oldest"
kept "$E4" && kept "$E5"
ok $? "the entry used within the grace and the newer one stay"
is "two evictions logged" "$(runlog r1 | grep -c 'evicted sha256:')" 2
runlog r1 | grep -q 'cannot get down'
ok $((! $?)) "no warning: the water mark was reached"
order=$(runlog r1 | sed -n 's/.*evicted \(sha256:[0-9a-f]*\).*/\1/p' | tr '\n' ' ')
is "oldest first" "$order" "$(basename "$E2") $(basename "$E3") "

# --- a limit that cannot be reached: said once, no loop --------------------------------
evict_config 0.0001 0 600
run_stub r2 "[{\"id\":1,\"cache\":\"$E1\",\"data\":\"$T/e1.bin\"}]" '[{"sleep": 2}]'
ok $? "run 2: daemon ran"
gone "$E5"
ok $? "run 2: the unused entry past the grace went"
kept "$E1" && kept "$E4"
ok $? "run 2: in use and recent stay"
is "run 2: the limit it cannot reach is said once in ~20 passes" "$(runlog r2 | grep -c 'cannot get down')" 1

# --- the free-disk floor evicts under the size limit ------------------------------------
E6=$(entry e6 1 100)
evict_config 100 1000000 600
run_stub r3 "[{\"id\":1,\"cache\":\"$E1\",\"data\":\"$T/e1.bin\"}]" '[{"sleep": 1.5}]'
ok $? "run 3: daemon ran"
gone "$E6"
ok $? "run 3: below minFreeGB an unused entry goes though the cache is far under its size limit"
kept "$E1" && kept "$E4"
ok $? "run 3: in use and recent still stay"

# --- grace 0: a just-used unused entry may go; other names are never touched -------------------
mkdir -p "$T/cache/images"
echo keep > "$T/cache/images/x.json"
echo keep > "$T/cache/notes.txt"
evict_config 0.0001 0 0
run_stub r4 "[{\"id\":1,\"cache\":\"$E1\",\"data\":\"$T/e1.bin\"}]" '[{"sleep": 1.5}]'
ok $? "run 4: daemon ran"
gone "$E4"
ok $? "run 4: with evictGraceSec 0 the recent unused entry goes"
kept "$E1"
ok $? "run 4: the entry in use stays"
[ -e "$T/cache/images/x.json" ] && [ -e "$T/cache/notes.txt" ]
ok $? "run 4: subdirectories and other files are left alone"

# --- bad values -------------------------------------------------------------------
evict_config -1 0 0
"$FETCHD" --service-config "$T/overlaybd.json" --device "$T/none" 2> "$T/bad.log"
[ $? -ne 0 ] && grep -q 'cacheConfig.cacheSizeGB' "$T/bad.log"
ok $? "cacheSizeGB -1 refused, key named"
evict_config 1 0 -5
"$FETCHD" --service-config "$T/overlaybd.json" --device "$T/none" 2> "$T/bad.log"
[ $? -ne 0 ] && grep -q 'cacheConfig.evictGraceSec' "$T/bad.log"
ok $? "evictGraceSec -5 refused, key named"
done_testing
