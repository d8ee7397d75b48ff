#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Writers: create + write/discard + commit reproduce the reference layers
# byte for byte; seal, commit_sealed, sparse layers, import, compat names.
. "$(dirname "$0")/common.bash"
# the virtual_size field of an LSMT header (offset 48, le64: include/obd_format.h)
hdr_vsize() { python3 -c 'import struct,sys; f=open(sys.argv[1],"rb"); f.seek(48); print(struct.unpack("<Q", f.read(8))[0])' "$1"; }

# layer 1, append mode, then every kind of commit
t "create append layer" "$OBD" create l1.data l1.index 64M
t "apply l1.ops (write/discard)" apply_ops l1.data l1.index "$REF/l1.ops"
is "writable layer reads as expected" "$("$OBD" cat l1.data l1.index | sha)" "$SHA_L1"
t "check writable layer" "$OBD" check l1.data l1.index
t "commit --uuid -m" "$OBD" commit --uuid "$U1" -m "oracle layer1" l1.data l1.index l1.commit
cmp -s l1.commit "$REF/l1.commit"; ok $? "commit output = reference l1.commit byte for byte"
t "commit -z" "$OBD" commit -z --uuid "$U1" -m "oracle layer1" l1.data l1.index l1.zfile
cmp -s l1.zfile "$REF/l1.commit.lz4.zfile"; ok $? "commit -z output = reference l1.commit.lz4.zfile"
t "check commit -z output" "$OBD" check l1.zfile

# layer 2 through the compat names, -z -t
t "overlaybd-create (vsize in GiB)" "$B/overlaybd-create" -u "$U1" l2big.data l2big.index 1
is "overlaybd-create: 1 GiB virtual size" \
	"$("$OBD" info --json l2big.data l2big.index | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["virtual_size"])')" 1073741824
is "overlaybd-create -u: parent uuid" \
	"$("$OBD" info --json l2big.data l2big.index | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["parent_uuid"])')" "$U1"
t "create layer 2" "$OBD" create l2.data l2.index 64M
t "apply l2.ops" apply_ops l2.data l2.index "$REF/l2.ops"
is "l1 + writable l2 reads as expected" "$("$OBD" cat l1.commit l2.data l2.index | sha)" "$SHA_L1L2"
echo '{"lowers":[{"file":"l1.commit"}],"upper":{"data":"l2.data","index":"l2.index"}}' > up.json
is "config with upper {data,index} reads as expected" "$("$OBD" cat up.json | sha)" "$SHA_L1L2"
t "check config with upper" "$OBD" check up.json
t "overlaybd-commit -z -t --uuid -p -m" "$B/overlaybd-commit" -z -t --uuid "$U2" -p "$U1" \
	-m "oracle layer2" l2.data l2.index l2.tar
cmp -s l2.tar "$REF/l2.commit.lz4.zfile.tar"; ok $? "commit -z -t output = reference l2.commit.lz4.zfile.tar"
is "l1 + committed l2 reads as expected" "$("$OBD" cat l1.commit l2.tar | sha)" "$SHA_L1L2"
t "check l1 + l2 stack" "$OBD" check l1.zfile l2.tar

# round trips of the other commit forms
for a in lz4 zstd; do
	for bs in 4 64; do
		t "commit -z --algorithm $a --bs $bs" "$OBD" commit -z --algorithm $a --bs $bs \
			l2.data l2.index l2.$a.$bs
		is "  reads back ($a, $bs KiB)" "$("$OBD" cat l1.commit l2.$a.$bs | sha)" "$SHA_L1L2"
		t "  check" "$OBD" check l2.$a.$bs
	done
done
t "commit -t (tar around plain LSMT)" "$OBD" commit -t l2.data l2.index l2.plain.tar
is "  reads back" "$("$OBD" cat l1.commit l2.plain.tar | sha)" "$SHA_L1L2"
is "  tar wrapped, not zfile" "$("$OBD" info --json l2.plain.tar | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["wrapping"])')" "['tar']"
fails "commit refuses to overwrite OUT" 1 "l2.plain.tar: .*exists" \
	"$OBD" commit l2.data l2.index l2.plain.tar
t "commit -f replaces OUT" "$OBD" commit -f l2.data l2.index l2.plain.tar
fails "commit refuses OUT = input" 1 "same file" "$OBD" commit -f l1.commit l1.commit
is "  input intact" "$(sha l1.commit)" "$(sha "$REF/l1.commit")"

# seal in place, then --commit_sealed reproduces the same committed layer
cp l1.data s.data; cp l1.index s.index
t "commit --seal" "$OBD" commit --seal s.data s.index
is "sealed layer kind" "$("$OBD" info --json s.data | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["kind"])')" sealed
is "sealed layer reads as expected" "$("$OBD" cat s.data | sha)" "$SHA_L1"
t "check sealed" "$OBD" check s.data
t "commit --commit_sealed" "$OBD" commit --commit_sealed --uuid "$U1" -m "oracle layer1" s.data s.commit
cmp -s s.commit "$REF/l1.commit"; ok $? "sealed -> committed = reference l1.commit"
t "overlaybd-commit --commit_sealed -z" "$B/overlaybd-commit" --commit_sealed s.data s.zf -z \
	--uuid "$U1" -m "oracle layer1"
cmp -s s.zf "$REF/l1.commit.lz4.zfile"; ok $? "sealed -> -z = reference l1.commit.lz4.zfile"

# sparse layers
t "create --sparse" "$OBD" create --sparse sp.data 64M
t "apply l1.ops to a sparse layer" apply_ops sp.data "$REF/l1.ops"
is "sparse layer reads as expected" "$("$OBD" cat sp.data | sha)" "$SHA_L1"
is "sparse kind" "$("$OBD" info --json sp.data | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["kind"])')" rw-sparse
t "commit sparse layer -z -t" "$OBD" commit -z -t sp.data sp.tar
is "  reads back" "$("$OBD" cat sp.tar | sha)" "$SHA_L1"
t "overlaybd-create -s (index argument ignored)" "$B/overlaybd-create" -s sp2.data sp2.index 1
[ ! -e sp2.index ]; ok $? "  no index file for a sparse layer"

# import a raw image
$GEN raw 67108864 "$REF/l1.ops" "$REF/l2.ops" > raw.img
is "oracle raw image = expected l1+l2" "$(sha raw.img)" "$SHA_L1L2"
t "import into an append layer" bash -c "'$OBD' create im.data im.index 64M && '$OBD' import im.data im.index raw.img"
is "  reads back" "$("$OBD" cat im.data im.index | sha)" "$SHA_L1L2"
writes=$("$OBD" info --json im.data im.index | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["segments"])')
[ "$writes" -le 20 ]; ok $? "  zero blocks skipped, adjacent blocks coalesced ($writes segments)"
t "import --offset into a sparse layer" bash -c "'$OBD' create -s im2.data 128M && '$OBD' import --offset 64M im2.data raw.img"
is "  reads back at the offset" "$("$OBD" cat --offset 64M im2.data | sha)" "$SHA_L1L2"
is "  zeros below the offset" "$("$OBD" cat --length 64M im2.data | sha)" \
	"$(head -c 64M /dev/zero | sha)"
t "commit the imported layer" "$OBD" commit -z im.data im.index im.zf
is "  reads back" "$("$OBD" cat im.zf | sha)" "$SHA_L1L2"

# write from a file argument, then a discard on top
head -c 8192 /dev/urandom > blob
t "write FILE" "$OBD" write l2big.data l2big.index --offset 1073733632 blob
is "  reads back" "$("$OBD" cat --offset 1073733632 --length 8192 l2big.data l2big.index | sha)" "$(sha blob)"
t "discard" "$OBD" discard l2big.data l2big.index --offset 1073733632 --length 4096
is "  discarded half reads as zeros" \
	"$("$OBD" cat --offset 1073733632 --length 4096 l2big.data l2big.index | sha)" \
	"$(head -c 4096 /dev/zero | sha)"
is "  other half intact" \
	"$("$OBD" cat --offset 1073737728 --length 4096 l2big.data l2big.index | sha)" \
	"$(tail -c 4096 blob | sha)"

# vsize 0 (the reference snapshotter's overlaybd-create DATA INDEX 0 for a
# writable layer over a parent): the size comes from the layers below, and
# is persisted in the headers when the layer is first attached over them.
t "overlaybd-create DATA INDEX 0" "$B/overlaybd-create" z.data z.index 0
fails "  alone it has no size" 1 "stack virtual size 0 bytes" "$OBD" info z.data z.index
t "attach --table over l1" "$OBD" attach --table "$REF/l1.commit" z.data z.index
is "  the table has l1's length" "$(cut -d' ' -f2 "$T/.out")" 131072
is "  the size is persisted in the data header" "$(hdr_vsize z.data)" 67108864
is "  ... and in the index header" "$(hdr_vsize z.index)" 67108864
"$OBD" create b128.data b128.index 128M && "$OBD" commit b128.data b128.index b128.commit
fails "  a size once set is not changed: a 128 MiB lower is refused" 1 "differs from the lower layers" \
	"$OBD" attach --table b128.commit z.data z.index
t "overlaybd-create -s DATA INDEX 0" "$B/overlaybd-create" -s zs.data zs.index 0
is "  a 4 KiB sparse file" "$(stat -c %s zs.data)" 4096
t "attach --table over l1 (sparse)" "$OBD" attach --table "$REF/l1.commit" zs.data
is "  the sparse file is vsize + 4 KiB" "$(stat -c %s zs.data)" $((67108864 + 4096))
is "  ... its header says 64 MiB" "$(hdr_vsize zs.data)" 67108864
t "obd create DATA INDEX 0" "$OBD" create z2.data z2.index 0

# An upper and no lowers (the reference's "only one RW layer"): a blank
# writable disk of the upper's own size, a table with 0 lowers.
"$OBD" create u1.data u1.index 8M
printf '{"lowers": [], "upper": {"data": "%s", "index": "%s"}}\n' "$T/u1.data" "$T/u1.index" > u1.json
t "attach --table: a config with an upper and no lowers" "$OBD" attach --table u1.json
is "  0 lowers, the upper, its own length" "$(cat "$T/.out")" \
	"0 16384 overlaybd 0 3 upper $T/u1.data $T/u1.index"
t "attach --table: an upper alone as DATA INDEX" "$OBD" attach --table u1.data u1.index
is "  the same table" "$(cat "$T/.out")" "0 16384 overlaybd 0 3 upper $T/u1.data $T/u1.index"
printf '{"lowers": [], "upper": {"data": "%s", "index": "%s"}}\n' "$T/z2.data" "$T/z2.index" > z2.json
fails "  an upper of size 0 alone: refused" 1 "stack virtual size 0 bytes" \
	"$OBD" attach --table z2.json

done_testing
