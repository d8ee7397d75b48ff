#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# obd zfile / overlaybd-zfile: compress, -x, --verify, -t, stdin; and
# check/verify finding a flipped byte in a ZFile block.
. "$(dirname "$0")/common.bash"

cp "$REF/l1.commit" l1.commit
t "zfile SRC DST" "$OBD" zfile l1.commit l1.z
t "zfile --verify" "$OBD" zfile --verify l1.z
t "zfile -x" "$OBD" zfile -x l1.z l1.back
cmp -s l1.back l1.commit; ok $? "zfile -x round trip is byte-exact"
is "compressed layer reads as expected" "$("$OBD" cat l1.z | sha)" "$SHA_L1"
is "overlaybd-zfile: no header overwrite (flags 0x13)" \
	"$(od -An -tx1 -j32 -N1 l1.z | tr -d ' ')" 13
t "overlaybd-zfile with one path reads stdin" bash -c "'$B/overlaybd-zfile' l1.s.z < l1.commit"
cmp -s l1.s.z l1.z; ok $? "  same bytes as from the file"
t "zfile --verify from stdin" bash -c "'$OBD' zfile --verify < l1.z"

for a in lz4 zstd; do
	for bs in 4 8 16 32 64; do
		"$OBD" zfile -t --algorithm $a --bs $bs l1.commit l1.$a.$bs.tar &&
		"$OBD" zfile --verify l1.$a.$bs.tar &&
		"$OBD" zfile -x l1.$a.$bs.tar l1.$a.$bs.back &&
		cmp -s l1.$a.$bs.back l1.commit
		ok $? "zfile -t --algorithm $a --bs $bs: compress, verify, extract round trip"
	done
done
is "tar + zstd 64K layer reads as expected" "$("$OBD" cat l1.zstd.64.tar | sha)" "$SHA_L1"
"$OBD" info --json l1.zstd.64.tar > zi.json
is "  info: algorithm" "$(jget zi.json 'j["layers"][0]["zfile"]["algorithm"]')" zstd
is "  info: block size" "$(jget zi.json 'j["layers"][0]["zfile"]["block_size"]')" 65536
is "  info: blocks" "$(jget zi.json 'j["layers"][0]["zfile"]["blocks"]')" 26

# arbitrary (non-LSMT) content, not a multiple of the block size
head -c 1000003 /dev/urandom > rnd
t "zfile of arbitrary bytes" "$OBD" zfile --algorithm zstd --bs 8 rnd rnd.z
t "  -x" "$OBD" zfile -x rnd.z rnd.back
cmp -s rnd rnd.back; ok $? "  round trip is byte-exact"
fails "zfile refuses an existing DST" 1 "rnd.z: .*exists" "$OBD" zfile rnd rnd.z
t "zfile -f replaces DST" "$OBD" zfile -f rnd rnd.z
fails "zfile --bs 5 is a usage error" 2 "bad --bs" "$OBD" zfile --bs 5 rnd rnd.z2
fails "zfile --algorithm lzo is a usage error" 2 "bad --algorithm" "$OBD" zfile --algorithm lzo rnd rnd.z2
fails "zfile -x of a non-ZFile" 1 "l1.commit: not a ZFile" "$OBD" zfile -x l1.commit out

# a flipped byte inside block 5 of the reference ZFile
cp "$REF/l1.commit.lz4.zfile" bad.z
chmod u+w bad.z
printf '\xff' | dd of=bad.z bs=1 seek=20000 conv=notrunc status=none
fails "check: flipped byte -> exit 1, names the block" 1 "" "$OBD" check bad.z
grep -q "bad.z: ZFile block 5 (offset 17113, 4118 bytes): .*crc" "$T/.out"
ok $? "check: report says 'bad.z: ZFile block 5 ... crc'"
grep -q "Found 1 problem" "$T/.out"; ok $? "check: verdict line"
"$OBD" check --json bad.z > bad.json
is "check --json: not clean" "$(jget bad.json 'j["clean"]')" False
is "check --json: the problem names block 5" \
	"$(jget bad.json '"block 5" in j["layers"][0]["problems"][0]')" True
fails "zfile --verify: flipped byte -> exit 1, names the block" 1 "bad.z: block 5 .*crc" \
	"$OBD" zfile --verify bad.z
fails "cat of the corrupt layer fails, names the file" 1 "bad.z: read at" "$OBD" cat -o x bad.z
fails "zfile -x of the corrupt layer fails" 1 "bad.z: .*block 5" "$OBD" zfile -x bad.z x.out
[ ! -e x.out ]; ok $? "  no partial output left behind"
# a flipped byte in the tar-wrapped layer
cp "$REF/l2.commit.lz4.zfile.tar" bad.tar; chmod u+w bad.tar
printf '\x00' | dd of=bad.tar bs=1 seek=9000 conv=notrunc status=none
fails "check: flipped byte in a tar-wrapped ZFile" 1 "" "$OBD" check bad.tar
grep -qE "bad.tar: ZFile block [0-9]+ " "$T/.out"; ok $? "  names the block"

done_testing
