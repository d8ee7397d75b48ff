#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# obd trace on the host (no kernel): traces written by an independent Python
# writer of the reference's format (tests/tools/tracefmt.py: struct.pack and
# its own CRC32C) validate and print; every malformed class exits 1 naming
# the file and the field; what obd trace build writes, the Python reader
# reads (byte-identical to the Python writer's bytes); an acceleration layer
# (a tar holding `trace`) is read as its trace and left out of the stack by
# the config reader; accelerationLayer + recordTracePath is refused.
. "$(dirname "$0")/common.bash"

pyt() { python3 "$top/tests/tools/tracefmt.py" "$@"; }

# --- a reference-format trace, written in Python -------------------------------
python3 - > recs.txt <<'EOF'
import random
random.seed(10)
for i in range(300):
    op = "W" if i % 50 == 7 else "R"
    print(op, random.randrange(3), random.randrange(1 << 34) & ~511, random.choice([512, 4096, 65536, 1 << 20]))
EOF
pyt write py.trace recs.txt
t "show a trace written by the Python writer" "$OBD" trace show py.trace
grep -q "^py.trace: trace, 300 records (294 reads, 6 writes)" "$T/.out"; ok $? "  300 records, 294 reads, 6 writes"
[ "$(grep -c '^  layer [0-2]:' "$T/.out")" = 3 ]; ok $? "  per-layer totals for 3 layers"
t "show --json --records" "$OBD" trace show --json --records py.trace
cp "$T/.out" py.json
is "  JSON records = the Python writer's records" \
	"$(python3 -c "import json; j=json.load(open('py.json')); print('\n'.join('%s %d %d %d' % (r['op'], r['layer'], r['offset'], r['count']) for r in j['trace']))" | sha)" \
	"$(sha recs.txt)"
is "  JSON bytes = sum of counts" "$(jget py.json 'j["bytes"]')" \
	"$(awk '{s += $4} END {print s}' recs.txt)"
t "dump is show" "$OBD" trace dump py.trace

# --- obd's encoder, read by Python ---------------------------------------------
t "obd trace build from text records" "$OBD" trace build obd.trace recs.txt
t "the Python reader validates obd's trace" pyt read obd.trace
is "  and reads the same records" "$(sha "$T/.out")" "$(sha recs.txt)"
is "obd's trace is byte-identical to the Python writer's" "$(sha obd.trace)" "$(sha py.trace)"
printf '' | "$OBD" trace build empty.trace -
is "an empty trace is a 24-byte header" "$(stat -c %s empty.trace)" 24
t "  which the Python reader accepts" pyt read empty.trace
t "  and obd too" "$OBD" trace show empty.trace
fails "build: a bad line names the line" 1 "^obd: bad.txt: line 2: " \
	bash -c "printf 'R 0 0 512\nX 1 2\n' > bad.txt && '$OBD' trace build o.trace bad.txt"
fails "build: count 0 is refused naming the record" 1 "record 0: count" \
	bash -c "echo 'R 0 0 0' | '$OBD' trace build o.trace"

# --- malformed traces ------------------------------------------------------------
check_bad() {	# KIND FIELD_PATTERN
	pyt corrupt py.trace "bad-$1.trace" "$1"
	fails "malformed ($1): exit 1, names the file and the field" 1 \
		"^obd: bad-$1.trace: trace .*$2" "$OBD" trace show "bad-$1.trace"
}
check_bad magic "magic: got 0xc2ef1821"
check_bad short "file size: got 10"
check_bad size "data_size: got 7224, expected 7200"
check_bad trailing "data_size"
check_bad checksum "checksum"
check_bad op "record 0: op got 0x58"
check_bad count "record 0: count got 4611686018427387904"
check_bad layer "record 0: layer_index got 255"
check_bad overflow "record 0: offset .* overflows"
pyt corrupt py.trace pad.trace pad
t "non-zero padding with its checksum is valid (the reference does not zero it)" \
	"$OBD" trace show pad.trace
fails "an empty file is not a trace" 1 "^obd: empty: trace file size: got 0" \
	bash -c ": > empty && '$OBD' trace show empty"
fails "a missing file" 1 "^obd: nonexistent: " "$OBD" trace show nonexistent
fails "a directory" 1 "^obd: \.: not a regular file" "$OBD" trace show .
fails "show with several files: one bad, exit 1" 1 "bad-op.trace" \
	"$OBD" trace show py.trace bad-op.trace
grep -q "^py.trace: trace" "$T/.out"; ok $? "  the good one is still shown"

# --- acceleration layer: a tar holding one file `trace` ---------------------------
python3 - <<'EOF'
import io, tarfile
for name, member, data in (("accel.tar", "trace", open("py.trace", "rb").read()),
                           ("accel-dot.tar", "./trace", open("py.trace", "rb").read()),
                           ("accel-empty.tar", "trace", b""),
                           ("notrace.tar", "other", b"x" * 100)):
    with tarfile.open(name, "w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo(member)
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
EOF
t "show an acceleration layer (tar)" "$OBD" trace show accel.tar
grep -q "^accel.tar:trace: trace, 300 records" "$T/.out"; ok $? "  its trace, named tar:trace"
t "  ./trace works too" "$OBD" trace show accel-dot.tar
fails "a tar without 'trace'" 1 "^obd: notrace.tar: tar: no member named 'trace'" \
	"$OBD" trace show notrace.tar
fails "a tar with an empty trace is no trace to show" 1 "accel-empty.tar:trace: trace file size: got 0" \
	"$OBD" trace show accel-empty.tar

# config.v1.json: the acceleration layer is not a data layer (spec 5.1)
cp "$REF/l1.commit" l1.commit
cat > accel.json <<EOF
{ "lowers": [ { "file": "l1.commit" }, { "file": "accel.tar" } ], "accelerationLayer": true }
EOF
cat > plain.json <<EOF
{ "lowers": [ { "file": "l1.commit" } ] }
EOF
t "attach --table of an image with an acceleration layer" "$OBD" attach --table accel.json
cp "$T/.out" accel.table
"$OBD" attach --table plain.json > plain.table 2>/dev/null
is "  the table has only the data layers" "$(cat accel.table)" "$(cat plain.table)"
t "  obd info reads the same stack" "$OBD" info accel.json
cat > accel-dir.json <<EOF
{ "lowers": [ { "file": "l1.commit" }, { "dir": "accel-dir" } ], "accelerationLayer": true }
EOF
mkdir -p accel-dir && cp py.trace accel-dir/trace
t "  a dir acceleration layer (unpacked by the snapshotter) is left out too" \
	"$OBD" attach --table accel-dir.json
cat > both.json <<EOF
{ "lowers": [ { "file": "l1.commit" }, { "file": "accel.tar" } ], "accelerationLayer": true,
  "recordTracePath": "$T/rec.trace" }
EOF
fails "accelerationLayer + recordTracePath is an error (spec 5.1)" 1 \
	"^obd: both.json: recordTracePath: cannot record" "$OBD" attach --table both.json
echo '{ "lowers": [ { "file": "l1.commit" } ], "accelerationLayer": "yes" }' > badbool.json
fails "accelerationLayer must be a boolean" 1 "^obd: badbool.json: accelerationLayer: expected true or false" \
	"$OBD" attach --table badbool.json
echo '{ "lowers": [ { "file": "l1.commit" } ], "accelerationLayer": false, "recordTracePath": "x" }' > recno.json
t "recordTracePath alone is fine for --table (nothing recorded)" "$OBD" attach --table recno.json
[ ! -e x.lock ]; ok $? "  --table starts no recording"

# --- usage -------------------------------------------------------------------------
fails "trace without a subcommand: usage" 2 "expected record" "$OBD" trace
fails "unknown subcommand" 2 "unknown subcommand 'frob'" "$OBD" trace frob
fails "stop without NAME" 2 "expected NAME" "$OBD" trace stop
fails "replay: bad --concurrency" 2 "bad concurrency" "$OBD" trace replay -c x dev py.trace
t "help trace" "$OBD" help trace
grep -q "obd trace replay" "$T/.out"; ok $? "  documents replay"

done_testing
