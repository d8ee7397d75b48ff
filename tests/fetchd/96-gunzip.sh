#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Gunzip entries (gzipCacheConfig, fetchd/gunzip.c) with kstub.py standing
# in for the kernel and fakereg.py serving a gzip tar layer made here
# (python3 tarfile + gzip, several MiB, its gzip.meta built by
# lib/user/gzindex through test_gzindex --build): random READs across
# access points give the decompressed stream's bytes (every DONE range
# compared, sha256 per range, every bit set in the .meta checked); the
# compressed entry is made by the daemon when absent; the background
# download of the compressed blob completes the entry through the
# whole-stream pass (COMPLETE set, all bits, the file equal to the tar); a
# corrupt compressed byte and a gzip index whose window lies give EIO with
# the layer named, and nothing marked present there; refillSize is checked;
# the gzip cache is evicted within its cacheSizeGB (.gzindex with the entry,
# the entry in use kept); obd cache lists gunzip entries.
. "$(dirname "$0")/lib.bash"

K=4096
MiB=1048576
GZTOOL=$(dirname "$FETCHD")/tests/test_gzindex
OBD=${OBD:-$(dirname "$FETCHD")/obd}
[ -x "$GZTOOL" ] || bail "no $GZTOOL (make all)"
echo '{}' > "$T/cred.json"

# mklayer NAME FILES WORDS: $T/NAME.tar and $T/NAME.tar.gz (one gzip member),
# text-like files of random words (Huffman-coded blocks, never stored ones)
mklayer() {
	python3 - "$T/$1" "$2" "$3" <<-'PY'
	import gzip, io, random, sys, tarfile
	out, nfiles, nwords = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
	rnd = random.Random()
	words = ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9)))
	         for _ in range(4000)]
	buf = io.BytesIO()
	with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
	    for i in range(nfiles):
	        data = " ".join(rnd.choices(words, k=nwords)).encode()
	        ti = tarfile.TarInfo("dir/file%d.txt" % i)
	        ti.size = len(data)
	        tf.addfile(ti, io.BytesIO(data))
	open(out + ".tar", "wb").write(buf.getvalue())
	open(out + ".tar.gz", "wb").write(gzip.compress(buf.getvalue(), 6, mtime=0))
	PY
}
hex() { sha256sum "$1" | cut -d' ' -f1; }
# entries INDEX: "de_pos en_pos win_pos bits" per access point
entries() { python3 "$here/../tools/turbo-image.py" entries "$1"; }
# start_fakereg NAME BLOBFILE: sets FR_PORT
start_fakereg() {
	FR_PORT=$(free_port)
	echo '{}' > "$T/$1.cfg"
	python3 "$here/fakereg.py" "$FR_PORT" "$2" "$T/$1.cfg" "$T/$1.log" >/dev/null 2>&1 &
	pids+=("$!")
	wait_port "$FR_PORT" || bail "fake registry $1 did not start"
}
# gz_config GZDIR CACHEDIR [GZ_MORE] [TOP]: the service config, gunzip entries on
gz_config() {
	cat > "$T/overlaybd.json" <<-JSON
	{ "logConfig": { "logLevel": ${LOGLEVEL:-1} },
	  "cacheConfig": { "cacheDir": "$2", "refillSize": 262144, "evictIntervalMs": 200 },
	  "gzipCacheConfig": { "enable": true, "cacheDir": "$1" ${3:+, $3} },
	  "credentialConfig": { "mode": "file", "path": "$T/cred.json" },
	  "fetchConfig": { "requestTimeout": 20, "syncIntervalMs": 50 } ${4:+, $4} }
	JSON
}
# bits_ok CACHE TAR SIZE: every granule whose bit is set equals the tar's ("ok N")
bits_ok() {
	python3 - "$1" "$2" <<-'PY'
	import os, sys
	sys.path.insert(0, os.environ["here"])
	import kstub
	cache, tar = sys.argv[1], sys.argv[2]
	want = open(tar, "rb").read()
	got = open(cache, "rb").read()
	bits = kstub.meta_bits(cache, len(want))
	bad = [g for g in bits if got[g * 4096:(g + 1) * 4096] != want[g * 4096:(g + 1) * 4096]]
	print("bad %d" % len(bad) if bad else "ok %d" % len(bits))
	PY
}
export here
# bits_in CACHE SIZE LO HI: how many set bits fall in [LO, HI)
bits_in() {
	python3 -c "
import sys; sys.path.insert(0, '$here'); import kstub
print(sum(1 for g in kstub.meta_bits('$1', $2) if $3 <= g * 4096 + 4095 and g * 4096 < $4))"
}

# --- the layer, its index, the registry -------------------------------------------
mklayer layer 8 130000
USZ=$(stat -c %s "$T/layer.tar"); GSZ=$(stat -c %s "$T/layer.tar.gz")
"$GZTOOL" --build "$T/layer.tar.gz" "$T/gzip.meta" 262144 1 > "$T/build.out" || bail "index build"
NENT=$(cut -d' ' -f3 "$T/build.out")
[ "$NENT" -ge 12 ] && [ "$USZ" -ge $((5 * MiB)) ]
ok $? "a $USZ-byte tar layer, $GSZ bytes gzip, its index with $NENT access points"
start_fakereg reg "$T/layer.tar.gz"
GHEX=$(hex "$T/layer.tar.gz")
URL="http://127.0.0.1:$FR_PORT/v2/test/repo/blobs/sha256:$GHEX"
mkdir -p "$T/gz" "$T/cache"
G=$(python3 "$here/kstub.py" mkgunzip "$T/gz" "$URL" "$T/layer.tar.gz" "$T/layer.tar" "$T/gzip.meta")
is "the gunzip entry's name is the compressed digest" "$G" "$T/gz/sha256:$GHEX"
blobs="[{\"id\":1,\"cache\":\"$G\",\"data\":\"$T/layer.tar\",\"digest\":\"$GHEX\"}]"

# --- run 1: random READs across access points -------------------------------------
# (in the first 40 %: the compressed blob stays partial, run 2 completes it)
# rand_reads PERCENT: 40 random granule-aligned READs in the first PERCENT, and
# at 100 % the tail too
rand_reads() {
	python3 - "$USZ" "$1" <<-'PY'
	import random, sys
	size, pc = int(sys.argv[1]), int(sys.argv[2]); g = (size + 4095) // 4096
	r = []
	for _ in range(40):
	    s = random.randrange(g * pc // 100)
	    n = min(random.choice([1, 2, 16, 64]), g - s)
	    r.append([1, s * 4096, min(n * 4096, size - s * 4096)])
	if pc == 100:
	    r.append([1, (g - 1) * 4096, size - (g - 1) * 4096])	# the tail
	print(r)
	PY
}
reads=$(rand_reads 40)
ap_reads=$(entries "$T/gzip.meta" | awk -v u="$USZ" 'NR > 1 { o = int($1 / 4096) * 4096; if (o < u * 0.4) printf "%s[1, %d, 4096]", (n++ ? ", " : ""), o }')
gz_config "$T/gz" "$T/cache"
run_stub r1 "$blobs" "[{\"read\": $reads}, {\"read\": [$ap_reads]}, {\"sleep\": 0.5}]"
ok $? "run 1: $(jget "$T/r1.json" 'len(j["steps"][0]["dones"]) + len(j["steps"][1]["dones"])') READs (random, and at each access point) answered, every DONE range equal to the tar"
# sha256 of every DONE range of the cache file against the tar's
jget "$T/r1.json" '"\n".join("%d %d" % (d["off"], d["len"]) for s in j["steps"][:2] for d in s["dones"])' > "$T/r1.ranges"
python3 - "$G" "$T/layer.tar" "$T/r1.ranges" <<-'PY' > "$T/r1.sha"
	import hashlib, sys
	c, t = open(sys.argv[1], "rb"), open(sys.argv[2], "rb")
	bad = 0
	for line in open(sys.argv[3]):
	    off, ln = map(int, line.split())
	    c.seek(off); t.seek(off)
	    bad += hashlib.sha256(c.read(ln)).digest() != hashlib.sha256(t.read(ln)).digest()
	print(bad)
	PY
is "run 1: sha256 of each DONE range of the cache file = the tar's" "$(cat "$T/r1.sha")" 0
res=$(bits_ok "$G" "$T/layer.tar")
case "$res" in ok*) ok 0 "run 1: every granule marked present in the .meta equals the tar ($res)" ;;
	*) ok 1 "run 1: granules marked present differ from the tar ($res)" ;; esac
[ -f "$T/cache/sha256:$GHEX" ] && [ "$(stat -c %s "$T/cache/sha256:$GHEX")" = "$GSZ" ]
ok $? "run 1: the daemon made the compressed entry in cacheDir, of the index's gzip_file_size"
is "run 1: the gunzip entry is not complete yet (flags GUNZIP)" "$(jget "$T/r1.json" 'j["flags"]["1"]["flags"]')" 2
runlog r1 | grep -q "gunzip entry $G (layer sha256:$GHEX): $USZ bytes from $GSZ compressed, $NENT access points"
ok $? "run 1: the entry's index loaded and logged"
n_get=$(grep -c '"GET"' "$T/reg.log")
[ "$n_get" -ge 1 ]
ok $? "run 1: compressed bytes fetched from the registry ($n_get GETs)"

# --- run 2: the background download completes it -------------------------------------
gz_config "$T/gz" "$T/cache" "" '"download": { "enable": true, "delay": 0, "delayExtra": 0, "maxMBps": 0 }'
run_stub r2 "$blobs" "[{\"sleep\": 5}]"
ok $? "run 2: daemon ran"
is "run 2: the gunzip entry is COMPLETE (flags GUNZIP|COMPLETE)" "$(jget "$T/r2.json" 'j["flags"]["1"]["flags"]')" 3
is "run 2: every granule present" "$(jget "$T/r2.json" 'len(j["meta"]["1"])')" $(( (USZ + K - 1) / K ))
cmp -s "$G" "$T/layer.tar"
ok $? "run 2: the cache file is the decompressed tar"
runlog r2 | grep -q "trailer CRC32 and ISIZE match, $USZ bytes: marking it complete"
ok $? "run 2: the whole-stream pass checked the trailer"
python3 -c "import sys; sys.path.insert(0, '$here'); import kstub; print(kstub.meta_flags('$T/cache/sha256:$GHEX')['flags'])" > "$T/cflags"
is "run 2: the compressed entry is complete (sha256 verified)" "$(cat "$T/cflags")" 1

# --- run 3: a restart serves it all from the cache ---------------------------------
n0=$(grep -c '"GET"' "$T/reg.log")
run_stub r3 "$blobs" "[{\"read\": [[1, 0, $USZ]]}]"
ok $? "run 3: a whole-entry READ answered"
is "run 3: no GET" "$(grep -c '"GET"' "$T/reg.log")" "$n0"

# --- run 4: a corrupt compressed byte: EIO there, nothing marked -------------------------
mapfile -t E < <(entries "$T/gzip.meta")
k=$((NENT / 2))
read -r de_k en_k _ <<< "${E[$k]}"
read -r de_k1 en_k1 _ <<< "${E[$((k + 1))]}"
# the byte 200 before the next access point: its output is in the window
# that point's check compares (a byte whose output lies further from any
# point may decode in step and is caught by the sha256 only: run 4b)
cp "$T/layer.tar.gz" "$T/bad.tar.gz"
python3 -c "
f = open('$T/bad.tar.gz', 'r+b'); o = $en_k1 - 200; f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0xff]))"
start_fakereg bad "$T/bad.tar.gz"
URLB="http://127.0.0.1:$FR_PORT/v2/test/repo/blobs/sha256:$GHEX"
mkdir -p "$T/gz2" "$T/cache2"
G2=$(python3 "$here/kstub.py" mkgunzip "$T/gz2" "$URLB" "$T/layer.tar.gz" "$T/layer.tar" "$T/gzip.meta")
EP=$(free_port)
gz_config "$T/gz2" "$T/cache2" "" "\"exporterConfig\": { \"enable\": true, \"port\": $EP, \"updateInterval\": 1000 }"
mid=$(( (de_k + de_k1) / 2 / K * K ))
run_stub r4 "[{\"id\":1,\"cache\":\"$G2\",\"data\":\"$T/layer.tar\",\"digest\":\"$GHEX\"}]" "[
	{\"read\": [[1, $mid, $K]], \"expect\": \"err\"},
	{\"read\": [[1, 0, $K]]},
	{\"sleep\": 1.3},
	{\"exec\": \"curl -sS -f --max-time 5 -o $T/m4.txt http://127.0.0.1:$EP/metrics\"}]"
ok $? "run 4: the READ inside the corrupt interval (entry $k, $mid) failed, one at the start served"
is "run 4: EIO" "$(jget "$T/r4.json" 'j["steps"][0]["dones"][0]["status"]')" -5
runlog r4 | grep -q "gunzip entry $G2 (layer sha256:$GHEX): refill \[.*failed"
ok $? "run 4: the failure logged naming the layer: $(runlog r4 | grep -m1 'refill \[' | sed 's/.*failed: //' | cut -c1-120)"
is "run 4: nothing marked present in [$de_k, $de_k1)" "$(bits_in "$G2" "$USZ" "$de_k" "$de_k1")" 0
metric() { sed -n "s/^overlaybd_fetchd_$1 //p" "$T/m4.txt"; }
[ "$(metric gunzip_errors_total)" -ge 1 ] && [ "$(metric gunzip_refills_total)" -ge 2 ] &&
	[ "$(metric gunzip_inflated_bytes_total)" -ge "$K" ] && [ -n "$(metric gunzip_cache_limit_bytes)" ]
ok $? "run 4: exporter: gunzip errors $(metric gunzip_errors_total), refills $(metric gunzip_refills_total), inflated $(metric gunzip_inflated_bytes_total) bytes"
res=$(bits_ok "$G2" "$T/layer.tar")
case "$res" in ok*) ok 0 "run 4: what is marked equals the tar ($res)" ;;
	*) ok 1 "run 4: granules marked present differ from the tar ($res)" ;; esac

# --- run 4b: the download finds the compressed blob's sha256 wrong: the entry is cleared ----
gz_config "$T/gz2" "$T/cache2" "" '"download": { "enable": true, "delay": 0, "delayExtra": 0, "maxMBps": 0, "tryCnt": 1 }'
run_stub r4b "[{\"id\":1,\"cache\":\"$G2\",\"data\":\"$T/layer.tar\",\"digest\":\"$GHEX\"}]" "[
	{\"read\": [[1, 0, $K]]}, {\"sleep\": 4}]"
ok $? "run 4b: daemon ran, the download of the bad blob went"
runlog r4b | grep -q "gunzip entry $G2 (layer sha256:$GHEX): its compressed blob failed its sha256 check"
ok $? "run 4b: the sha256 mismatch of the compressed blob clears the gunzip entry"
is "run 4b: no bit left in the gunzip entry's .meta" "$(jget "$T/r4b.json" 'len(j["meta"]["1"])')" 0
is "run 4b: and it was taken back from the kernel" "$(jget "$T/r4b.json" '[i[1:] for i in j["invalidates"] if i[0] == 1][:1]')" "[[0, $USZ]]"

# --- run 5: a gzip index whose window lies: EIO -----------------------------------------
"$GZTOOL" --build "$T/layer.tar.gz" "$T/raw.meta" 262144 0 > /dev/null || bail "raw index"
mapfile -t R < <(entries "$T/raw.meta")
read -r rde_k _ rwin_k _ <<< "${R[$k]}"
read -r rde_k1 _ _ <<< "${R[$((k + 1))]}"
python3 -c "
f = open('$T/raw.meta', 'r+b'); o = $rwin_k + 30000; f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 1]))"
mkdir -p "$T/gz3" "$T/cache3"
G3=$(python3 "$here/kstub.py" mkgunzip "$T/gz3" "$URL" "$T/layer.tar.gz" "$T/layer.tar" "$T/raw.meta")
gz_config "$T/gz3" "$T/cache3"
mid=$(( (rde_k + rde_k1) / 2 / K * K ))
run_stub r5 "[{\"id\":1,\"cache\":\"$G3\",\"data\":\"$T/layer.tar\",\"digest\":\"$GHEX\"}]" "[
	{\"read\": [[1, $mid, $K]], \"expect\": \"err\"},
	{\"read\": [[1, 0, $K]]}]"
ok $? "run 5: the READ after the lying window (entry $k) failed, one at the start served"
runlog r5 | grep -q "layer sha256:$GHEX.*gzip index entry $k (de_pos $rde_k): its window is not the 32 KiB"
ok $? "run 5: the lying window named in the log, with the layer"
is "run 5: nothing marked present in [$rde_k, $rde_k1)" "$(bits_in "$G3" "$USZ" "$rde_k" "$rde_k1")" 0

# --- refillSize and enable are checked ---------------------------------------------------
for v in 1000 0 -4096 '"1M"'; do
	gz_config "$T/gz" "$T/cache" "\"refillSize\": $v"
	"$FETCHD" --service-config "$T/overlaybd.json" --device "$T/none" 2> "$T/bad.log"
	[ $? -ne 0 ] && grep -q 'gzipCacheConfig.refillSize' "$T/bad.log"
	ok $? "refillSize $v refused, key named: $(grep -m1 -o 'gzipCacheConfig.refillSize.*' "$T/bad.log")"
done
gz_config "$T/gz" "$T/cache" '"refillSize": 12288'
"$FETCHD" --service-config "$T/overlaybd.json" --device "$T/none" 2> "$T/ok.log"
grep -q 'gzipCacheConfig' "$T/ok.log"
ok $((! $?)) "refillSize 12288 (3 pages) accepted"
gz_config "$T/gz" "$T/cache" '"cacheSizeGB": 0'
"$FETCHD" --service-config "$T/overlaybd.json" --device "$T/none" 2> "$T/bad.log"
[ $? -ne 0 ] && grep -q 'gzipCacheConfig.cacheSizeGB' "$T/bad.log"
ok $? "cacheSizeGB 0 refused, key named"

# --- refillSize smaller than a span: the same bytes -------------------------------------
mkdir -p "$T/gz6" "$T/cache6"
G6=$(python3 "$here/kstub.py" mkgunzip "$T/gz6" "$URL" "$T/layer.tar.gz" "$T/layer.tar" "$T/gzip.meta")
gz_config "$T/gz6" "$T/cache6" '"refillSize": 65536'
run_stub r6 "[{\"id\":1,\"cache\":\"$G6\",\"data\":\"$T/layer.tar\",\"digest\":\"$GHEX\"}]" "[{\"read\": $(rand_reads 100)}]"
ok $? "run 6: refillSize 64 KiB: the random READs answered, bytes right"

# --- eviction of the gzip cache within its cacheSizeGB -------------------------------------
mkdir -p "$T/gz7" "$T/cache7"
old=()
for i in 1 2 3; do
	mklayer old$i 2 100000
	"$GZTOOL" --build "$T/old$i.tar.gz" "$T/old$i.meta" 262144 1 > /dev/null || bail "index old$i"
	o=$(python3 "$here/kstub.py" mkgunzip "$T/gz7" "$URL" "$T/old$i.tar.gz" "$T/old$i.tar" "$T/old$i.meta")
	dd if="$T/old$i.tar" of="$o" conv=notrunc bs=1M status=none
	touch -d "-$((100 * i)) min" "$o" "$o.meta" "$o.gzindex"
	old+=("$o")
done
G7=$(python3 "$here/kstub.py" mkgunzip "$T/gz7" "$URL" "$T/layer.tar.gz" "$T/layer.tar" "$T/gzip.meta")
dd if="$T/layer.tar" of="$G7" conv=notrunc bs=1M status=none
touch -d "-500 min" "$G7" "$G7.meta" "$G7.gzindex"
# the limit: its water mark (90 %) holds the in-use entry and one and a half old ones
disk() { du -B1 -c "$1" "$1.meta" "$1.gzindex" | tail -1 | cut -f1; }
omax=$(for o in "${old[@]}"; do disk "$o"; done | sort -n | tail -1)
lim=$(python3 -c "print(($(disk "$G7") + 1.5 * $omax) / 0.9 / 1073741824)")
gz_config "$T/gz7" "$T/cache7" "\"cacheSizeGB\": $lim"
sed -i 's/"evictIntervalMs": 200/"evictIntervalMs": 200, "evictGraceSec": 60/' "$T/overlaybd.json"
"$OBD" cache --service-config "$T/overlaybd.json" > "$T/list.txt" 2> "$T/list.err"
ok $? "obd cache lists both caches"
is "obd cache: the four gunzip entries marked [gunzip]" "$(grep -c '\[gunzip\]' "$T/list.txt")" 4
grep -q "gunzip entries (gzipCacheConfig.cacheDir $T/gz7)" "$T/list.txt"
ok $? "obd cache: the gzip cache's own table"
"$OBD" cache --gzip --json --service-config "$T/overlaybd.json" > "$T/list.json" 2> "$T/list.err"
is "obd cache --gzip --json: four entries, gunzip true" \
	"$(jget "$T/list.json" '[e["gunzip"] for e in j["entries"]]')" "[True, True, True, True]"
run_stub r7 "[{\"id\":1,\"cache\":\"$G7\",\"data\":\"$T/layer.tar\",\"digest\":\"$GHEX\"}]" '[{"sleep": 2}]'
ok $? "run 7: daemon ran with the big entry in use"
[ -e "$G7" ] && [ -e "$G7.meta" ] && [ -e "$G7.gzindex" ]
ok $? "run 7: the entry in use stays, though the oldest and the largest"
[ ! -e "${old[2]}" ] && [ ! -e "${old[2]}.meta" ] && [ ! -e "${old[2]}.gzindex" ] &&
	[ ! -e "${old[1]}" ] && [ ! -e "${old[1]}.gzindex" ]
ok $? "run 7: the least recently used unused entries went, .gzindex with them"
[ -e "${old[0]}" ] && [ -e "${old[0]}.gzindex" ]
ok $? "run 7: the most recent unused one stays (under the water mark)"
runlog r7 | grep -q "evicted sha256:$(basename "${old[2]}" | cut -d: -f2)"
ok $? "run 7: eviction logged"
# prune of the gzip cache removes the .gzindex too
"$OBD" cache prune --gzip --all --force --grace 0 --service-config "$T/overlaybd.json" > "$T/prune.txt" 2>&1
[ ! -e "${old[0]}" ] && [ ! -e "${old[0]}.gzindex" ] && [ ! -e "${old[0]}.meta" ]
ok $? "obd cache prune --gzip --all: the unused entry and its .gzindex removed"

# --- a gzip trailer whose CRC32 lies: the whole-stream pass invalidates the entry ---------
cp "$T/layer.tar.gz" "$T/crc.tar.gz"
python3 -c "
f = open('$T/crc.tar.gz', 'r+b'); f.seek(-8, 2); b = f.read(1); f.seek(-8, 2); f.write(bytes([b[0] ^ 0x55]))"
CHEX=$(hex "$T/crc.tar.gz")
start_fakereg crc "$T/crc.tar.gz"
URLC="http://127.0.0.1:$FR_PORT/v2/test/repo/blobs/sha256:$CHEX"
mkdir -p "$T/gz9" "$T/cache9"
G9=$(python3 "$here/kstub.py" mkgunzip "$T/gz9" "$URLC" "$T/crc.tar.gz" "$T/layer.tar" "$T/gzip.meta")
gz_config "$T/gz9" "$T/cache9" "" '"download": { "enable": true, "delay": 0, "delayExtra": 0, "maxMBps": 0 }'
run_stub r9 "[{\"id\":1,\"cache\":\"$G9\",\"data\":\"$T/layer.tar\",\"digest\":\"$CHEX\"}]" "[
	{\"read\": [[1, 0, $K]]}, {\"sleep\": 5}, {\"read\": [[1, 0, $K]], \"expect\": \"err\"}]"
ok $? "run 9: a READ served before the download, one failed after the whole-stream check"
runlog r9 | grep -q "gunzip entry $G9 (layer sha256:$CHEX): invalidated: the whole-stream check failed: .*incorrect data check"
ok $? "run 9: the CRC32 mismatch logged, the entry invalidated"
is "run 9: not complete" "$(jget "$T/r9.json" 'j["flags"]["1"]["flags"]')" 2
is "run 9: no bit left in the .meta" "$(jget "$T/r9.json" 'len(j["meta"]["1"])')" 0
[ "$(jget "$T/r9.json" 'len(j["invalidates"])')" -ge 1 ]
ok $? "run 9: the entry taken back from the kernel (INVALIDATE)"

# --- the kernel OPENs the compressed entry too: one blob object, the kernel's -------------
mkdir -p "$T/gz10" "$T/cache10"
C10=$(python3 "$here/kstub.py" mkentry "$T/cache10" "$URL" "$T/layer.tar.gz")
G10=$(python3 "$here/kstub.py" mkgunzip "$T/gz10" "$URL" "$T/layer.tar.gz" "$T/layer.tar" "$T/gzip.meta")
gz_config "$T/gz10" "$T/cache10"
run_stub r10 "[{\"id\":1,\"cache\":\"$G10\",\"data\":\"$T/layer.tar\",\"digest\":\"$GHEX\"},
	{\"id\":2,\"cache\":\"$C10\",\"data\":\"$T/layer.tar.gz\"}]" "[
	{\"read\": [[1, 0, $K], [2, 0, $K], [1, $((USZ / 2 / K * K)), $K], [2, $((GSZ / 2 / K * K)), $K]]},
	{\"close\": 2}, {\"read\": [[1, $((USZ / 3 / K * K)), $K]]}, {\"sleep\": 0.3}]"
ok $? "run 10: READs of the gunzip entry and of its compressed entry, opened by the kernel too, all right; and after its CLOSE"
runlog r10 | grep -q "blob 2: $C10, held for a gunzip entry as [0-9]*, is the kernel's now"
ok $? "run 10: the daemon's compressed blob became the kernel's blob 2 (one object)"
res=$(bits_ok "$G10" "$T/layer.tar")
case "$res" in ok*) ok 0 "run 10: what is marked equals the tar ($res)" ;;
	*) ok 1 "run 10: granules marked present differ from the tar ($res)" ;; esac

# --- a gunzip entry with the gzip cache disabled: EIO, said why --------------------------
write_config '"requestTimeout": 5'
run_stub r8 "$blobs" "[{\"read\": [[1, 0, $K]], \"expect\": \"err\"}]"
ok $? "run 8: gzipCacheConfig.enable false: the READ fails"
runlog r8 | grep -q 'a gunzip entry, and gzipCacheConfig.enable is false'
ok $? "run 8: the reason logged"
done_testing
