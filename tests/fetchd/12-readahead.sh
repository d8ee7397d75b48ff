#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Sequential readahead (fetchConfig.readaheadMB, fetch_ahead in fetch.c)
# with kstub.py standing in for the kernel and a counting proxy before the
# registry: a whole blob read in 128 KiB steps fetches every byte once in
# far fewer GETs than reads; a stream shorter than 1 MiB (a file) fetches
# nothing past its refill units; a stream fetches at most about three times
# what it read (a window twice the stream); readaheadMB 0 turns it off. A
# lone read is widened to isolatedRefillKB (64 KiB), one continuing it to
# refillSize; bios of one stream arriving out of order still count as the
# stream.
. "$(dirname "$0")/lib.bash"

K=131072
R=262144
MiB=1048576
SZ=$((16 * MiB + 100))
mkdir -p "$T/cache"
start_registry reg
start_proxy "$REG_PORT"
mkblob "$T/a.bin" "$SZ"
upload "$REG_PORT" test/repo "$T/a.bin"
ok $? "blob uploaded to docker-registry"
URL="http://127.0.0.1:$PX_PORT/v2/test/repo/blobs/sha256:$(sha256sum "$T/a.bin" | cut -d' ' -f1)"
echo '{}' > "$T/cred.json"
fresh() { rm -f "$T/cache/sha256:"*; A=$(mkentry "$URL" "$T/a.bin"); BLOBS="[{\"id\":1,\"cache\":\"$A\",\"data\":\"$T/a.bin\"}]"; }
# stream OFF COUNT: COUNT reads of 128 KiB from OFF, one step each (each waits for its DONE)
stream() {
	local i o l s=""
	for ((i = 0; i < $2; i++)); do
		o=$(($1 + i * K)) l=$K
		[ $((o + l)) -le "$SZ" ] || l=$((SZ - o))
		s="$s${s:+,} {\"read\": [[1, $o, $l]]}"
	done
	echo "[ $s ]"
}
served() { px /__stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])'; }
gets() { px /__stats | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["gets"]))'; }
ahead() { runlog "$1" | sed -n 's/.*readahead fetches \([0-9]*\).*/\1/p'; }
# trial NAME STEPS: the stub's STEPS on a cold cache, the proxy's counts reset
trial() { fresh; px /__reset > /dev/null; run_stub "$1" "$BLOBS" "$2"; }

# --- the whole blob, front to back ---------------------------------------------------
write_config '"requestTimeout": 20, "readaheadMB": 8'
trial whole "$(stream 0 $(((SZ + K - 1) / K)))"
ok $? "whole blob in 129 sequential reads: every READ answered, bytes right"
is "whole blob: every byte fetched once" "$(served)" "$SZ"
n=$(gets)
[ "$n" -le 32 ]; ok $? "whole blob: $n GETs for 129 reads (readahead merged them into 1 MiB chunks; at most 32)"
[ "$(ahead whole)" -ge 2 ]; ok $? "whole blob: readahead fetches counted ($(ahead whole))"

# --- a file-sized stream: nothing past it ----------------------------------------------
trial file "$(stream $((8 * MiB)) 6)"
ok $? "768 KiB stream: reads answered"
is "768 KiB stream: exactly its refill units fetched" "$(served)" $((3 * R))
is "768 KiB stream: no readahead" "$(ahead file)" 0

# --- a longer stream fetches at most about twice what it read -----------------------------
trial mid "$(stream $((2 * MiB)) 24)"
ok $? "3 MiB stream from 2 MiB: reads answered"
s=$(served)
[ "$s" -gt $((3 * MiB)) ] && [ "$s" -le $((9 * MiB + R)) ]
ok $? "3 MiB stream: fetched $s bytes, more than it read (readahead) and at most three times + a refill unit"

# --- readaheadMB 0 ------------------------------------------------------------------------
write_config '"requestTimeout": 20, "readaheadMB": 0'
trial off "$(stream 0 24)"
ok $? "readaheadMB 0: reads answered"
is "readaheadMB 0: only the refill units read" "$(served)" $((3 * MiB))
is "readaheadMB 0: no readahead" "$(ahead off)" 0

# --- lone reads: isolatedRefillKB; a read continuing one: refillSize ---------------------
write_config '"requestTimeout": 20, "readaheadMB": 8'
trial lone "[ {\"read\": [[1, $((5 * MiB + 4096)), 4096]]}, {\"read\": [[1, $((9 * MiB)), 4096]]},
	{\"read\": [[1, $((9 * MiB + 65536)), 8192]]} ]"
ok $? "lone reads and a read continuing one: answered"
is "lone 4 KiB reads: 64 KiB each; the one continuing the second: its 256 KiB refill unit" \
	"$(px /__stats | python3 -c 'import json,sys; print(" ".join(g[1] for g in json.load(sys.stdin)["gets"]))')" \
	"bytes=$((5 * MiB))-$((5 * MiB + 65535)) bytes=$((9 * MiB))-$((9 * MiB + 65535)) bytes=$((9 * MiB + 65536))-$((9 * MiB + R - 1))"
write_config '"requestTimeout": 20, "readaheadMB": 8, "isolatedRefillKB": 0'
trial lone0 "[ {\"read\": [[1, $((5 * MiB + 4096)), 4096]]} ]"
ok $? "isolatedRefillKB 0: read answered"
is "isolatedRefillKB 0: a lone read gets its refill unit, as the reference does" "$(served)" "$R"

# --- one stream's reads out of order (parallel bios) ---------------------------------------
write_config '"requestTimeout": 20, "readaheadMB": 8'
steps=""
for ((i = 0; i < 64; i += 2)); do
	steps="$steps${steps:+,} {\"read\": [[1, $(((i + 1) * K)), $K], [1, $((i * K)), $K]]}"
done
trial shuffled "[ $steps ]"
ok $? "8 MiB read as pairs of 128 KiB reads, the second of each pair first: answered"
[ "$(ahead shuffled)" -ge 1 ] && [ "$(gets)" -le 32 ]
ok $? "out-of-order reads still a stream: readahead ran ($(ahead shuffled) fetches), $(gets) GETs"

! grep -qE 'AddressSanitizer|runtime error' "$T/daemon.log"
ok $? "no sanitizer report in the log"
done_testing
