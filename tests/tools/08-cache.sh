#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# obd cache and obd cache prune: the listing against an independent reading
# of the files (Python, from the .meta bitmap and stat), broken entries,
# LRU pruning (--to, --all, --dry-run, the default water mark, the grace)
# removing exactly the right files, entries made by obd attach against a
# real registry, and the errors.
. "$(dirname "$0")/common.bash"

CHECK="python3 $top/tests/tools/cache-check.py"

# ---------------------------------------------------------------------------
# Helpers. mkentry.py writes an entry as include/obd_format.h describes it
# (its own crc32c), scan.py reads a directory back without obd.
cat > mkentry.py <<'EOF'
"""mkentry.py DIR SEED SIZE GRANULES [complete]: make <DIR>/sha256:<sha256(SEED)>
(+ .meta); GRANULES is "-", "all" or "0-2,8": those granules written and their
bits set. Prints the digest."""
import hashlib, os, struct, sys

G = 4096
TAB = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    TAB.append(c)


def crc32c(data, crc=0):	# raw: seed as is, no inversion (lib/user/crc32c.c)
    for b in data:
        crc = (crc >> 8) ^ TAB[(crc ^ b) & 0xff]
    return crc


d, seed, size, spec = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
flags = 1 if sys.argv[5:] == ["complete"] else 0
hx = hashlib.sha256(seed.encode()).hexdigest()
ngr = (size + G - 1) // G
grs = set()
if spec == "all":
    grs = set(range(ngr))
elif spec != "-":
    for part in spec.split(","):
        a, _, b = part.partition("-")
        grs |= set(range(int(a), int(b or a) + 1))
bm_bytes = ((ngr + 7) // 8 + 7) // 8 * 8
bm = bytearray(bm_bytes)
path = os.path.join(d, "sha256:" + hx)
with open(path, "wb") as f:
    f.truncate(size)
    for g in sorted(grs):
        f.seek(g * G)
        f.write(b"\xab" * (min(size, (g + 1) * G) - g * G))
        bm[g // 8] |= 1 << (g % 8)
url = b"http://127.0.0.1/v2/x/blobs/sha256:" + hx.encode()
h = bytearray(4096)
h[0:8] = b"OBDCACHE"
struct.pack_into("<IIII", h, 8, 1, 4096, 12, flags)
struct.pack_into("<Q", h, 24, size)
h[32:64] = bytes.fromhex(hx)
struct.pack_into("<QQI", h, 64, 4096, bm_bytes, len(url))
h[128:128 + len(url)] = url
crc = crc32c(bytes(h[88:]), crc32c(b"\0\0\0\0", crc32c(bytes(h[:84]))))
struct.pack_into("<I", h, 84, crc)
with open(path + ".meta", "wb") as f:
    f.write(h + bm)
print("sha256:" + hx)
EOF

cat > scan.py <<'EOF'
"""scan.py DIR: {digest: {size, cachedBytes, diskBytes, complete, lastUse, broken}}
read from the files alone; broken is True/False (obd gives the reason)."""
import json, os, re, struct, sys, time

G = 4096
TAB = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    TAB.append(c)


def crc32c(data, crc=0):
    for b in data:
        crc = (crc >> 8) ^ TAB[(crc ^ b) & 0xff]
    return crc


def crc_ok(h):
    want, = struct.unpack_from("<I", h, 84)
    return want == crc32c(h[88:4096], crc32c(b"\0\0\0\0", crc32c(h[:84])))


d = sys.argv[1]
out = {}
names = set(os.listdir(d))
for n in sorted(names):
    m = re.fullmatch(r"(sha256:[0-9a-f]{64})(\.meta)?", n)
    if not m or (m.group(2) and m.group(1) in names):
        continue
    dig = m.group(1)
    p, mp = os.path.join(d, dig), os.path.join(d, dig + ".meta")
    sts = [os.lstat(x) for x in (p, mp) if os.path.lexists(x)]
    if os.path.isdir(p):
        continue
    e = {"diskBytes": sum(s.st_blocks * 512 for s in sts),
         "lastUse": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                  time.gmtime(max(s.st_mtime_ns for s in sts) // 10**9)),
         "size": None, "cachedBytes": None, "complete": False, "broken": True}
    meta = open(mp, "rb").read() if os.path.exists(mp) else b""
    if len(meta) >= 4096 and meta[:8] == b"OBDCACHE" and crc_ok(meta):
        size, = struct.unpack_from("<Q", meta, 24)
        boff, blen = struct.unpack_from("<QQ", meta, 64)
        flags, = struct.unpack_from("<I", meta, 20)
        e["size"] = size
        if (os.path.exists(p) and os.path.getsize(p) == size and len(meta) >= boff + blen
                and meta[32:64].hex() == dig[7:]):
            bits = meta[boff:boff + blen]
            c = 0
            for g in range((size + G - 1) // G):
                if bits[g // 8] >> (g % 8) & 1:
                    c += min(size, (g + 1) * G) - g * G
            e.update(cachedBytes=c, complete=bool(flags & 1), broken=False)
    out[dig] = e
print(json.dumps(out, sort_keys=True))
EOF

# cmp_scan DIR JSON: obd's entries = scan.py's, field by field
cat > cmp.py <<'EOF'
import json, sys
mine = json.loads(open(sys.argv[1]).read())
obd = json.load(open(sys.argv[2]))
got = {}
for e in obd["entries"]:
    got[e["digest"]] = {"size": e["size"], "cachedBytes": e["cachedBytes"],
                        "diskBytes": e["diskBytes"], "complete": e["complete"],
                        "lastUse": e["lastUse"], "broken": e["broken"] is not None}
bad = [k for k in set(mine) | set(got) if mine.get(k) != got.get(k)]
for k in bad:
    print("# %s\n#   scan.py: %s\n#   obd:     %s" % (k, mine.get(k), got.get(k)))
usage = sum(e["diskBytes"] for e in mine.values())
if obd["usageBytes"] != usage:
    print("# usageBytes %d, files %d" % (obd["usageBytes"], usage))
    bad.append("usage")
sys.exit(1 if bad else 0)
EOF
cmp_scan() { python3 scan.py "$1" > scan.json && python3 cmp.py scan.json "$2"; }

mk() { python3 mkentry.py "$@"; }
# files DIR: the names in DIR, sorted, on one line
files() { ls -A "$1" | sort | tr '\n' ' ' | sed 's/ $//'; }
# agev DIGEST DAYS: both files of an entry last used DAYS days into 2020
agev() { touch -c -h -d "2020-01-01 +$2 days" "$D/$1" "$D/$1.meta"; }
disk() { python3 -c 'import os,sys; print(sum(os.lstat(p).st_blocks*512 for p in sys.argv[1:] if os.path.lexists(p)))' "$@"; }

svc() {	# svc FILE CACHEDIR [cacheSizeGB]
	printf '{"cacheConfig": {"cacheDir": "%s"%s}}\n' "$2" "${3:+, \"cacheSizeGB\": $3}" > "$1"
}

# Is dm here? Then in-use is known and prune needs no --force.
echo '{}' > empty.json
"$OBD" cache --dir "$T" --service-config empty.json --json > probe.json 2>/dev/null
KNOWN=$(jget probe.json 'j["inUseKnown"]' 2>/dev/null)
if [ "$KNOWN" = True ]; then FORCE=(); else FORCE=(--force); fi
echo "# in use known: ${KNOWN:-?}"

# ---------------------------------------------------------------------------
# listing: healthy entries, names that are not entries
D=$T/c1
mkdir -p "$D/images"
svc svc1.json "$D"
E1=$(mk "$D" one $((10 * 4096 + 100)) 0-2)		# 3 granules: 12288
E2=$(mk "$D" two $((10 * 4096 + 100)) 8-10)		# the short last one: 8192 + 100
E3=$(mk "$D" three 5000 all complete)			# 5000, complete
E4=$(mk "$D" four $((1 << 20)) -)			# nothing
echo x > "$D/images/$E1"
echo x > "$D/notes.txt"
echo x > "$D/$E1.meta.tmp.99"
mkdir "$D/$(python3 -c 'print("sha256:" + "ab" * 32)')"	# a directory with an entry's name

t "obd cache --json" "$OBD" cache --service-config svc1.json --json
cp "$T/.out" l1.json
cp "$T/.err" l1.err
is "  cacheDir from the service config" "$(jget l1.json 'j["cacheDir"]')" "$D"
is "  4 entries (other names ignored)" "$(jget l1.json 'len(j["entries"])')" 4
is "  cached bytes: 12288, 8292, 5000, 0" \
	"$(jget l1.json '{e["digest"]: e["cachedBytes"] for e in j["entries"]}' | python3 -c "
import ast, sys; d = ast.literal_eval(sys.stdin.read()); print(d['$E1'], d['$E2'], d['$E3'], d['$E4'])")" \
	"12288 8292 5000 0"
cmp_scan "$D" l1.json; ok $? "  every field = the files' (scan.py), usage = their blocks"
is "  complete only for the complete one" \
	"$(jget l1.json '" ".join(e["digest"] for e in j["entries"] if e["complete"])')" "$E3"
is "  limitBytes = cacheSizeGB 4 (default)" "$(jget l1.json 'j["limitBytes"]')" $((4 << 30))
L=$((4 << 30))
is "  water / risk marks" "$(jget l1.json 'str(j["waterMarkBytes"]) + " " + str(j["riskMarkBytes"])')" \
	"$((L - L / 10)) $((L - L / 10 + (L / 10) / 2))"
is "  entries sorted by digest" "$(jget l1.json '[e["digest"] for e in j["entries"]] == sorted(e["digest"] for e in j["entries"])')" True
is "  full digests, paths" "$(jget l1.json 'all(len(e["digest"]) == 71 and e["path"] == j["cacheDir"] + "/" + e["digest"] for e in j["entries"])')" True
is "  broken: null for healthy entries" "$(jget l1.json '[e["broken"] for e in j["entries"]]')" "[None, None, None, None]"
if [ "$KNOWN" = True ]; then
	is "  inUse: [] (nothing attached)" "$(jget l1.json '[e["inUse"] for e in j["entries"]]')" "[[], [], [], []]"
else
	is "  inUse: null (unknown)" "$(jget l1.json '[e["inUse"] for e in j["entries"]]')" "[None, None, None, None]"
	is "  said once on stderr" "$(grep -c 'unknown' l1.err)" 1
fi

t "obd cache (text)" "$OBD" cache --service-config svc1.json
cp "$T/.out" l1.txt
is "  header + 4 lines + total" "$(wc -l < l1.txt)" 6
line() { grep "^${1:0:19} " l1.txt; }
pct() { python3 -c "print('%.1f%%' % (100.0 * $1 / $2))"; }
line "$E1" | grep -q "partial" && line "$E1" | grep -qF "$(pct 12288 41060)"; ok $? "  $E1: partial, $(pct 12288 41060)"
line "$E3" | grep -q "complete" && line "$E3" | grep -qF "100.0%"; ok $? "  $E3: complete, 100.0%"
line "$E4" | grep -qF " 0.0% "; ok $? "  $E4: 0.0%"
line "$E1" | grep -qF "$(jget l1.json "[e['lastUse'] for e in j['entries'] if e['digest'] == '$E1'][0]")"
ok $? "  last use in ISO form"
if [ "$KNOWN" != True ]; then
	is "  in use: unknown on every line" "$(grep -c ' unknown$' l1.txt)" 4
fi
tail -n 1 l1.txt | grep -qE "^total: 4 entries, .* on disk, limit 4.0G \(cacheSizeGB 4\), water mark 3.6G"
ok $? "  total line: usage, limit, water mark"
t "obd cache --dir DIR overrides cacheDir" "$OBD" cache --service-config empty.json --dir "$D/" --json
is "  same entries, canonical dir" "$(jget "$T/.out" 'j["cacheDir"] + " " + str(len(j["entries"]))')" "$D 4"

# ---------------------------------------------------------------------------
# broken entries
E5=$(mk "$D" five 8192 0-1)
printf 'XXXXXXXX' | dd of="$D/$E5.meta" conv=notrunc status=none		# bad magic
E6=$(mk "$D" six 8192 0-1); truncate -s 100 "$D/$E6.meta"		# truncated .meta
E7=$(mk "$D" seven 8192 0-1); rm "$D/$E7.meta"				# .meta missing
E8=$(mk "$D" eight $((100 * 4096)) 0-1); truncate -s 4097 "$D/$E8.meta"	# bitmap short
E9=$(mk "$D" nine 8192 0-1); truncate -s 8191 "$D/$E9"			# other size
E10=$(mk "$D" ten 8192 0-1); rm "$D/$E10"				# cache file missing
E11=$(mk "$D" eleven 8192 0-1)
printf '\x01' | dd of="$D/$E11.meta" bs=1 seek=200 conv=notrunc status=none	# crc
t "obd cache --json with broken entries" "$OBD" cache --service-config svc1.json --json
cp "$T/.out" l2.json
is "  11 entries" "$(jget l2.json 'len(j["entries"])')" 11
reason() { jget l2.json "[e['broken'] for e in j['entries'] if e['digest'] == '$1'][0]"; }
for x in "E5:bad magic" "E6:file too short \(100 bytes\)" "E7:\.meta missing" \
	 "E8:bitmap: file too short \(4097 of 4112 bytes\)" "E9:cache file: 8191 bytes, blob size 8192" \
	 "E10:cache file missing" "E11:hdr_crc"; do
	v=${x%%:*}
	reason "${!v}" | grep -qE "${x#*:}"; ok $? "  $v broken: ${x#*:} ($(reason "${!v}"))"
done
is "  broken: cachedBytes null, not complete" \
	"$(jget l2.json '[(e["cachedBytes"], e["complete"]) for e in j["entries"] if e["broken"]]' | tr -d ' ')" \
	"$(printf '(None,False),%.0s' $(seq 7) | sed 's/,$//; s/^/[/; s/$/]/')"
cmp_scan "$D" l2.json; ok $? "  sizes, disk bytes, usage = the files' (broken ones counted)"
t "obd cache (text) with broken entries" "$OBD" cache --service-config svc1.json
is "  7 broken lines, each with its reason" "$(grep -cE ' broken .*\(.+\)$' "$T/.out")" 7

# broken go first, whatever their age: a target that needs only their bytes
for e in "$E1" "$E2" "$E3" "$E4"; do agev "$e" 1; done
for e in "$E5" "$E6" "$E7" "$E8" "$E9" "$E10" "$E11"; do agev "$e" 300; done
U=$(jget l2.json 'j["usageBytes"]')
BR=$(jget l2.json 'sum(e["diskBytes"] for e in j["entries"] if e["broken"])')
before=$(files "$D")
t "prune --dry-run --to (usage - broken bytes)" "$OBD" cache prune --service-config svc1.json \
	--dry-run --to $((U - BR)) --json
cp "$T/.out" p0.json
is "  dry run: nothing removed" "$(files "$D")" "$before"
is "  would remove the 7 broken ones" "$(jget p0.json 'sorted(e["digest"] for e in j["removed"])')" \
	"$(python3 -c "print(sorted('$E5 $E6 $E7 $E8 $E9 $E10 $E11'.split()))")"
is "  dryRun true, freedBytes = their bytes" "$(jget p0.json 'str(j["dryRun"]) + " " + str(j["freedBytes"])')" "True $BR"
t "prune --to (usage - broken bytes)" "$OBD" cache prune --service-config svc1.json \
	${FORCE[@]+"${FORCE[@]}"} --to $((U - BR))
cp "$T/.out" p1.txt
is "  7 'removed' lines" "$(grep -c '^removed sha256:' p1.txt)" 7
is "  the healthy entries and the other names are left" "$(files "$D")" \
	"$(printf '%s\n' "$E1" "$E1.meta" "$E1.meta.tmp.99" "$E2" "$E2.meta" "$E3" "$E3.meta" "$E4" "$E4.meta" \
	   images notes.txt "sha256:$(python3 -c 'print("ab" * 32)')" | sort | tr '\n' ' ' | sed 's/ $//')"
grep -qE "^freed .* in 7 entries" p1.txt; ok $? "  summary: freed, 7 entries"

# ---------------------------------------------------------------------------
# LRU: --to, --all, the grace, the default water mark
D=$T/c2
mkdir "$D"
svc svc2.json "$D"
A=$(mk "$D" a 40000 all); B=$(mk "$D" b 80000 all); C=$(mk "$D" c 20000 all)
Dd=$(mk "$D" d 120000 all); E=$(mk "$D" e 60000 all)
agev "$A" 5; agev "$B" 1; agev "$C" 4; agev "$Dd" 2; agev "$E" 3	# LRU order: B D E C A
# the .meta touched later than its cache file: the later one counts
touch -d "2020-01-01 +6 days" "$D/$B.meta"				# B is now the newest: D E C A B
dsz() { disk "$D/$1" "$D/$1.meta"; }
U=$(disk "$D"/sha256:*)
before=$(files "$D")
TO=$((U - $(dsz "$Dd") - $(dsz "$E")))
t "prune --dry-run --to: D E would go" "$OBD" cache prune --service-config svc2.json --dry-run \
	--to "$TO" --json
is "  in LRU order" "$(jget "$T/.out" '" ".join(e["digest"] for e in j["removed"])')" "$Dd $E"
is "  dry run: files unchanged" "$(files "$D")" "$before"
t "prune --to $TO" "$OBD" cache prune --service-config svc2.json ${FORCE[@]+"${FORCE[@]}"} \
	--to "$TO" --json
cp "$T/.out" p2.json
is "  removed D, E (oldest first)" "$(jget p2.json '" ".join(e["digest"] for e in j["removed"])')" "$Dd $E"
is "  exactly their files went" "$(files "$D")" \
	"$(printf '%s\n' "$A" "$A.meta" "$B" "$B.meta" "$C" "$C.meta" | sort | tr '\n' ' ' | sed 's/ $//')"
is "  freedBytes, usageBytes, reached" \
	"$(jget p2.json '"%d %d %s" % (j["freedBytes"], j["usageBytes"], j["reached"])')" \
	"$((U - TO)) $TO True"
# one byte less: one more must go (C, the next oldest)
U=$(disk "$D"/sha256:*)
t "prune --to (usage - 1): the oldest one" "$OBD" cache prune --service-config svc2.json \
	${FORCE[@]+"${FORCE[@]}"} --to $((U - 1))
grep -q "^removed $C " "$T/.out" && [ ! -e "$D/$C" ] && [ ! -e "$D/$C.meta" ] && [ -e "$D/$A" ]
ok $? "  C removed, A kept"
t "prune --to above usage: nothing" "$OBD" cache prune --service-config svc2.json \
	${FORCE[@]+"${FORCE[@]}"} --to 1G
grep -q "^nothing to remove" "$T/.out" && [ -e "$D/$A" ]; ok $? "  'nothing to remove', files kept"
t "prune --to 0.0001G --json: fractions" "$OBD" cache prune --service-config svc2.json --dry-run \
	--to 0.0001G --json
is "  targetBytes = floor(0.0001 * 2^30)" "$(jget "$T/.out" 'j["targetBytes"]')" 107374
t "prune --to 12K --json" "$OBD" cache prune --service-config svc2.json --dry-run --to 12KiB --json
is "  targetBytes 12288" "$(jget "$T/.out" 'j["targetBytes"]')" 12288

# grace: an entry used just now survives --all
F=$(mk "$D" f 4096 all)
t "prune --all: every unused one" "$OBD" cache prune --service-config svc2.json \
	${FORCE[@]+"${FORCE[@]}"} --all --json
cp "$T/.out" p3.json
is "  removed A B (not F: used in the last 60 s)" "$(jget p3.json '" ".join(e["digest"] for e in j["removed"])')" "$A $B"
is "  skippedRecent 1" "$(jget p3.json 'j["skippedRecent"]')" 1
is "  only F is left" "$(files "$D")" "$F $F.meta"
t "prune --all --grace 0" "$OBD" cache prune --service-config svc2.json ${FORCE[@]+"${FORCE[@]}"} \
	--all --grace 0
is "  F removed: the directory is empty" "$(files "$D")" ""
printf '{"cacheConfig": {"cacheDir": "%s", "evictGraceSec": 0}}\n' "$D" > svc2g.json
F=$(mk "$D" f 4096 all)
t "evictGraceSec 0 in the service config" "$OBD" cache prune --service-config svc2g.json \
	${FORCE[@]+"${FORCE[@]}"} --all
is "  F removed" "$(files "$D")" ""

# default target: the water mark of cacheSizeGB
D=$T/c3
mkdir "$D"
for i in 1 2 3 4 5 6; do
	eval "G$i=\$(mk \"\$D\" g$i $((i * 50000)) all)"
	agev "$(eval echo \$G$i)" $((10 - i))		# G6 oldest .. G1 newest
done
U=$(disk "$D"/sha256:*)
# a limit whose water mark (90 %) is between usage - G6 - G5 and usage - G6
W=$((U - $(disk "$D/$G6" "$D/$G6.meta") - $(disk "$D/$G5" "$D/$G5.meta") + 4096))
GB=$(python3 -c "print(repr(($W / 0.9 + 2) / 2**30))")
svc svc3.json "$D" "$GB"
t "obd cache --json: limit and water mark of cacheSizeGB $GB" "$OBD" cache --service-config svc3.json --json
cp "$T/.out" l3.json
LIM=$(jget l3.json 'j["limitBytes"]')
is "  limitBytes = floor(cacheSizeGB * 2^30)" "$LIM" "$(python3 -c "import math; print(math.floor($GB * 2**30))")"
is "  waterMarkBytes = max(90 %, limit - 50 GiB)" "$(jget l3.json 'j["waterMarkBytes"]')" "$((LIM - LIM / 10))"
t "prune (default: down to the water mark)" "$OBD" cache prune --service-config svc3.json \
	${FORCE[@]+"${FORCE[@]}"} --json
cp "$T/.out" p4.json
is "  removed G6, G5" "$(jget p4.json '" ".join(e["digest"] for e in j["removed"])')" "$G6 $G5"
is "  targetBytes = the water mark" "$(jget p4.json 'j["targetBytes"]')" "$((LIM - LIM / 10))"
[ "$(disk "$D"/sha256:*)" -le $((LIM - LIM / 10)) ]; ok $? "  usage on disk now <= the water mark"
is "  G1..G4 kept" "$(ls "$D" | grep -vc meta)" 4

# not enough evictable: says so, exits 0
D=$T/c4
mkdir "$D"
svc svc4.json "$D"
H=$(mk "$D" h 8192 all)
t "prune --to 0 with only a fresh entry" "$OBD" cache prune --service-config svc4.json \
	${FORCE[@]+"${FORCE[@]}"} --to 0
grep -q "usage stays above 0B: 0 entries in use, 1 used in the last 60 s" "$T/.err"
ok $? "  warns why the target was not reached"
[ -e "$D/$H" ]; ok $? "  the fresh entry is kept"

# ---------------------------------------------------------------------------
# errors
for v in abc -1G 1.5X 1..5G "" 0x10 1e3 .5G; do
	fails "prune --to '$v': usage error" 2 "--to $v: expected a size" \
		"$OBD" cache prune --service-config svc4.json --to "$v"
done
fails "missing --dir: names it" 1 "obd: $T/nope: No such file or directory" \
	"$OBD" cache --service-config svc4.json --dir "$T/nope"
svc gone.json "$T/gone"
fails "missing cacheDir of the service config: names it" 1 "obd: $T/gone: No such file" \
	"$OBD" cache --service-config gone.json
fails "--dir a file: not a directory" 1 "$T/mkentry.py: Not a directory" \
	"$OBD" cache --service-config svc4.json --dir "$T/mkentry.py"
fails "prune: missing dir" 1 "$T/nope" "$OBD" cache prune --service-config svc4.json --dir "$T/nope" --force
echo '{"cacheConfig": {"cacheSizeGB": "big"}}' > bad.json
fails "bad service config names the file and key" 1 "bad.json.*cacheSizeGB" \
	"$OBD" cache --service-config bad.json
fails "missing service config names it" 1 "$T/none.json" "$OBD" cache --service-config "$T/none.json"
fails "an extra argument" 2 "unexpected argument 'foo'" "$OBD" cache --service-config svc4.json foo
fails "prune options without prune" 2 "go with 'obd cache prune'" \
	"$OBD" cache --service-config svc4.json --all
fails "--all with --to" 2 "exclude each other" "$OBD" cache prune --service-config svc4.json --all --to 1G
fails "--grace not a number" 2 "--grace x" "$OBD" cache prune --service-config svc4.json --grace x
t "obd help cache" "$OBD" help cache
grep -q "obd cache prune" "$T/.out"; ok $? "  help shows prune"
if [ "$KNOWN" != True ]; then
	agev "$H" 1
	fails "prune without dm tables: refused without --force" 1 \
		"cannot tell which entries attached devices use .*--force" \
		"$OBD" cache prune --service-config svc4.json --all
	[ -e "$D/$H" ] && [ -e "$D/$H.meta" ]; ok $? "  nothing removed"
fi

# ---------------------------------------------------------------------------
# entries made by obd attach (05-registry.sh's registry), then pruned and made again
if ! command -v docker-registry >/dev/null; then
	echo "# SKIP registry part: docker-registry missing (scripts/deps.sh)"
	done_testing
fi
PORT=$(free_port)
start_registry reg "$PORT"
up=$?
ok $up "registry answers on 127.0.0.1:$PORT"
[ $up -eq 0 ] || done_testing
D=$T/rc
mkdir "$D"
printf '{"cacheConfig": {"cacheDir": "%s", "refillSize": 65536}}\n' "$D" > svcr.json
ref_layers=("$REF/l1.commit" "$REF/l1.commit.lz4.zfile" "$REF/l2.commit.lz4.zfile.tar")
t "push the reference layers" "$OBD" push "http://127.0.0.1:$PORT/test/img:v1" "${ref_layers[@]}"
cp "$T/.out" img.json
t "attach --table makes 3 entries" "$OBD" attach --service-config svcr.json --table img.json
t "obd cache --json" "$OBD" cache --service-config svcr.json --json
cp "$T/.out" lr.json
is "  3 entries, none broken" "$(jget lr.json 'str(len(j["entries"])) + " " + str([e["broken"] for e in j["entries"]])')" \
	"3 [None, None, None]"
for f in "${ref_layers[@]}"; do
	h=sha256:$(sha "$f")
	b=$(basename "$f")
	$CHECK "$D/$h" "$f" > chk.out
	is "  $b: cachedBytes = cache-check.py's present bytes" \
		"$(jget lr.json "[e['cachedBytes'] for e in j['entries'] if e['digest'] == '$h'][0]")" \
		"$(awk '{print $2}' chk.out)"
	is "  $b: size = the blob's" \
		"$(jget lr.json "[e['size'] for e in j['entries'] if e['digest'] == '$h'][0]")" "$(stat -c %s "$f")"
done
cmp_scan "$D" lr.json; ok $? "  every field = the files' (scan.py)"
t "prune --all --grace 0" "$OBD" cache prune --service-config svcr.json ${FORCE[@]+"${FORCE[@]}"} --all --grace 0
is "  3 removed" "$(grep -c '^removed ' "$T/.out")" 3
is "  cache dir empty" "$(files "$D")" ""
t "attach --table again: fresh entries" "$OBD" attach --service-config svcr.json --table img.json
for f in "${ref_layers[@]}"; do
	t "  $(basename "$f"): present ranges = the blob's bytes" $CHECK "$D/sha256:$(sha "$f")" "$f"
done

done_testing
