#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Reading the reference images: cat content, info fields, check verdicts.
. "$(dirname "$0")/common.bash"

is "cat l1.commit = expected sha256" "$("$OBD" cat "$REF/l1.commit" | sha)" "$SHA_L1"
is "cat l1.commit.lz4.zfile = expected sha256" \
	"$("$OBD" cat "$REF/l1.commit.lz4.zfile" | sha)" "$SHA_L1"
is "cat l1 + l2.commit.lz4.zfile.tar = expected sha256" \
	"$("$OBD" cat "$REF/l1.commit" "$REF/l2.commit.lz4.zfile.tar" | sha)" "$SHA_L1L2"
is "cat zfile l1 + l2 stack = expected sha256" \
	"$("$OBD" cat "$REF/l1.commit.lz4.zfile" "$REF/l2.commit.lz4.zfile.tar" | sha)" "$SHA_L1L2"

# every 1 MiB chunk of expected_l1l2.json through --offset/--length
bad=0
while read -r off len want; do
	got=$("$OBD" cat --offset "$off" --length "$len" "$REF/l1.commit" \
		"$REF/l2.commit.lz4.zfile.tar" | sha)
	[ "$got" = "$want" ] || { bad=$((bad + 1)); echo "# chunk $off: $got != $want"; }
done < <(python3 -c '
import json,sys
for c in json.load(open(sys.argv[1]))["chunks"]:
    print(c["offset"], c["length"], c["sha256"])' "$REF/expected_l1l2.json")
ok $bad "cat --offset/--length: all 64 chunks of l1+l2 match expected_l1l2.json"

# sparse output file: same bytes, far fewer blocks than 64 MiB
t "cat -o OUT" "$OBD" cat -o disk.img "$REF/l1.commit" "$REF/l2.commit.lz4.zfile.tar"
is "cat -o OUT content" "$(sha disk.img)" "$SHA_L1L2"
is "cat -o OUT size" "$(stat -c %s disk.img)" 67108864
blocks=$(stat -c %b disk.img)
[ "$blocks" -lt 20000 ]; ok $? "cat -o OUT is sparse ($blocks blocks of 512)"

# info --json
t "info --json l1.commit" "$OBD" info --json "$REF/l1.commit"
cp .out i1.json
is "info l1: kind" "$(jget i1.json 'j["layers"][0]["kind"]')" committed
is "info l1: uuid" "$(jget i1.json 'j["layers"][0]["uuid"]')" "$U1"
is "info l1: parent uuid null" "$(jget i1.json 'j["layers"][0]["parent_uuid"]')" \
	00000000-0000-0000-0000-000000000000
is "info l1: user tag" "$(jget i1.json 'j["layers"][0]["user_tag"]')" "oracle layer1"
is "info l1: 7 segments" "$(jget i1.json 'j["layers"][0]["segments"]')" 7
is "info l1: 1 zeroed" "$(jget i1.json 'j["layers"][0]["zeroed"]')" 1
is "info l1: virtual size" "$(jget i1.json 'j["layers"][0]["virtual_size"]')" 67108864
is "info l1: file size" "$(jget i1.json 'j["layers"][0]["file_size"]')" 1691136
is "info l1: no wrapping" "$(jget i1.json 'j["layers"][0]["wrapping"]')" "[]"

t "info --json zfile l1 + tar l2" "$OBD" info --json "$REF/l1.commit.lz4.zfile" \
	"$REF/l2.commit.lz4.zfile.tar"
cp .out i2.json
is "info zfile: algorithm" "$(jget i2.json 'j["layers"][0]["zfile"]["algorithm"]')" lz4
is "info zfile: block size" "$(jget i2.json 'j["layers"][0]["zfile"]["block_size"]')" 4096
is "info zfile: crc" "$(jget i2.json 'j["layers"][0]["zfile"]["crc"]')" True
is "info zfile: blocks = ceil(1691136/4096)" \
	"$(jget i2.json 'j["layers"][0]["zfile"]["blocks"]')" 413
is "info zfile: compressed size" \
	"$(jget i2.json 'j["layers"][0]["zfile"]["compressed_size"]')" 644448
is "info zfile: header overwritten" \
	"$(jget i2.json 'j["layers"][0]["zfile"]["header_overwritten"]')" True
is "info l2: wrapping" "$(jget i2.json 'j["layers"][1]["wrapping"]')" "['tar', 'zfile']"
is "info l2: uuid" "$(jget i2.json 'j["layers"][1]["uuid"]')" "$U2"
is "info l2: parent uuid" "$(jget i2.json 'j["layers"][1]["parent_uuid"]')" "$U1"
is "info l2: user tag" "$(jget i2.json 'j["layers"][1]["user_tag"]')" "oracle layer2"
is "info l2: 3 zeroed" "$(jget i2.json 'j["layers"][1]["zeroed"]')" 3
is "info l2: tar payload at 1536" \
	"$(jget i2.json 'j["layers"][1]["tar"]["payload_offset"]')" 1536
is "info stack: virtual size" "$(jget i2.json 'j["virtual_size"]')" 67108864
merged=$(jget i2.json 'j["merged_segments"]')
[ "$merged" -gt 7 ]; ok $? "info stack: merged segment count ($merged)"
"$OBD" info "$REF/l1.commit" | grep -q "segments: *7 (1 zeroed)"
ok $? "info text output: segments line"

# check
t "check l1.commit clean" "$OBD" check "$REF/l1.commit"
t "check all reference images clean" "$OBD" check "$REF/l1.commit.lz4.zfile" \
	"$REF/l2.commit.lz4.zfile.tar"
grep -q "No problems found" .out; ok $? "check verdict line"
t "check --json" "$OBD" check --json "$REF/l1.commit.lz4.zfile" "$REF/l2.commit.lz4.zfile.tar"
cp .out c.json
is "check --json clean" "$(jget c.json 'j["clean"]')" True

# config.v1.json
mkdir -p lay2
cp "$REF/l2.commit.lz4.zfile.tar" lay2/overlaybd.commit
cat > config.v1.json <<EOC
{ "repoBlobUrl": "https://127.0.0.1/v2/x/blobs",
  "lowers": [ { "file": "$REF/l1.commit.lz4.zfile", "digest": "sha256:00" },
              { "dir": "$T/lay2" } ],
  "resultFile": "" }
EOC
is "cat config.v1.json (file + dir)" "$("$OBD" cat config.v1.json | sha)" "$SHA_L1L2"
t "info config.v1.json" "$OBD" info --json config.v1.json
cp .out ic.json
is "info config: two layers" "$(jget ic.json 'len(j["layers"])')" 2
mkdir -p lay3; cp "$REF/l2.commit.lz4.zfile.tar" lay3/.commit
echo "{\"lowers\":[{\"file\":\"$REF/l1.commit\"},{\"dir\":\"lay3\"}]}" > rel.json
is "config dir/.commit, relative to the config" "$("$OBD" cat rel.json | sha)" "$SHA_L1L2"
t "check config.v1.json" "$OBD" check config.v1.json

done_testing
