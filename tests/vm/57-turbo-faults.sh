#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 57-turbo-faults.sh: a TurboOCI gzip layer read through the kernel at
# random places, from a corrupt blob and through a lying gzip index (issue
# #20).
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/57-turbo-faults.sh
# The image (tests/tools/turbo-image.py deflate): a gzip layer whose deflate
# stream has a block of > 6 MiB (no access point inside it: a read there
# inflates from the stream's start), stored blocks (points at bit offset 0)
# and Huffman blocks (points at bit offsets 1-7), the first window empty;
# then an uncompressed tar layer. Pushed with skopeo to docker-registry on
# 127.0.0.1, converted with obd convert --turbo-oci, pushed; overlaybd-fetchd
# with gzipCacheConfig (refills of 1 MiB). Checks:
#   - the index has what the test is about (a span > 4 MiB, bit offsets
#     0 and not 0);
#   - the same image from local tar targetFiles (config.v1.json: the gzip
#     blob decompressed, the tar blob as it is): every path equals the
#     layers unpacked (debugfs over the device), no remote layer;
#   - attached by REF on a cold cache: 300 random reads of files (random
#     offsets and lengths, through the mounted ext4) equal the local
#     device's, then every file equals the model, the two devices equal;
#   - one byte of the gzip blob corrupted in the registry's storage, 200
#     bytes before an access point in the stored blocks: reading every file
#     on a cold cache, the file over that interval fails with EIO, every
#     other file reads right, no wrong byte anywhere; overlaybd-fetchd's log
#     names the layer; the registry's blob repaired, once the whole blob is
#     fetched its sha256 fails (the corrupt byte cached) and both entries are
#     cleared: the same mount then reads every file right (refetched and
#     decoded again), every granule present is right;
#   - a gzip index whose window lies (config.v1.json's gzipIndex): the file
#     after it fails with EIO, the others read right, the log names the
#     entry and the layer;
#   - dmesg clean.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
IMG="$PY $OBD_TOP/tests/tools/turbo-image.py"
GZTOOL=$OBD_TOP/build/tests/test_gzindex
[ -x "$GZTOOL" ] || bail "$GZTOOL missing: run make first"
reg_test_begin 57-turbo-faults
RA=127.0.0.1:$REG
REF=http://127.0.0.1:$PX/img:turbo
devsha() { sha256sum <"/dev/mapper/$1" | cut -d' ' -f1; }
modprobe ext4 2>/dev/null
mkdir -p mr ml
turbo_svc
if fetchd_start; then ok "overlaybd-fetchd runs (gzipCacheConfig on)"; else bail "overlaybd-fetchd does not start: $(tail -5 fetchd.log)"; fi
remove_all() {
	local n
	umount mr ml 2>/dev/null
	for n in $(dmsetup ls --target overlaybd | awk '$1 ~ /^[a-z]57$/ { print $1 }'); do
		dmsetup remove "$n"
	done
}
vm_on_exit remove_all
cold() { rm -rf "$d/gz" "$d"/cache/sha256:*; }

$IMG deflate src >/dev/null || bail "cannot make the test image"
SK=(skopeo copy --quiet --dest-tls-verify=false --preserve-digests)
check "push the original OCI image (skopeo)" "${SK[@]}" oci:src "docker://$RA/img:orig"
check "obd convert --turbo-oci" "$obd" convert --turbo-oci --size 1G --no-progress oci:src out
check "push the TurboOCI image next to it (skopeo)" "${SK[@]}" oci:out "docker://$RA/img:turbo"
# the gzip layer's digest (hex) and its blob in the registry's storage
gh=$($PY -c "
import json
i = json.load(open('src/index.json'))['manifests'][0]['digest'].split(':')[1]
print([l for l in json.load(open('src/blobs/sha256/' + i))['layers'] if l['mediaType'].endswith('gzip')][0]['digest'][7:])")
regblob=$d/reg/docker/registry/v2/blobs/sha256/${gh:0:2}/$gh/data
[ -f "$regblob" ] || bail "no $regblob in the registry's storage"
entries() { $IMG entries "$1"; }	# FILE: "de_pos en_pos win_pos bits" a point
# readall MNT OUT: each model file read once: "path ok|EIO|WRONG|ERR"
readall() {
	$PY - "$OBD_TOP" src "$1" > "$2" <<-'PY'
	import errno, hashlib, json, os, subprocess, sys
	m = json.loads(subprocess.check_output([sys.executable, sys.argv[1] + "/tests/tools/turbo-image.py", "model", sys.argv[2]]))
	for p, e in sorted(m.items()):
	    if "sha256" not in e:
	        continue
	    try:
	        with open(os.path.join(sys.argv[3], p), "rb") as f:
	            r = "ok" if hashlib.sha256(f.read()).hexdigest() == e["sha256"] else "WRONG"
	    except OSError as x:
	        r = "EIO" if x.errno == errno.EIO else "ERR " + str(x)
	    print(p, r)
	PY
}

# --- attached by REF, cold ------------------------------------------------------------
cold
dev=$("$obd" attach --service-config svc.json --name r57 "$REF" 2>attach.err)
check_eq "obd attach REF (cold)" "$dev" /dev/mapper/r57
[ -n "$dev" ] || bail "attach failed: $(cat attach.err)"
gzmeta=$(ls "$d"/cache/turbo/sha256:*/gzip.meta 2>/dev/null | head -1)
[ -n "$gzmeta" ] || bail "no gzip.meta unpacked under cacheDir/turbo"
entries "$gzmeta" > ent.txt
diag "access points (de_pos en_pos bits): $(awk '{ printf "%s/%s/%s ", $1, $2, $4 }' ent.txt)"
check "the index has a span of > 4 MiB (one deflate block), points at bit offset 0 and not 0" \
	awk '{ if (NR > 1 && $1 - p > 4194304) big = 1; if (NR > 1 && $4 == 0) z = 1; if ($4 != 0) nz = 1; p = $1 }
	     END { exit !(big && z && nz) }' ent.txt

# --- the local model: the targets as local tar files -------------------------------------
cfg=$(ls "$d"/cache/images/sha256:*.config.v1.json | head -1)
$PY - "$cfg" "$d" local.json <<'PY' || bail "cannot write local.json"
import gzip, json, sys
c, d = json.load(open(sys.argv[1])), sys.argv[2]
for i, l in enumerate(c["lowers"]):
    h = l.pop("targetDigest")[7:]
    blob = "%s/src/blobs/sha256/%s" % (d, h)
    if l.pop("gzipIndex", None):
        open("%s/t%d.tar" % (d, i), "wb").write(gzip.decompress(open(blob, "rb").read()))
        l["targetFile"] = "%s/t%d.tar" % (d, i)
    else:
        l["targetFile"] = blob
json.dump(c, open(sys.argv[3], "w"))
PY
dev=$("$obd" attach --service-config svc.json --name l57 local.json 2>attach.err)
check_eq "obd attach of the config with local tar targetFiles" "$dev" /dev/mapper/l57
check_eq "  its table: two turbo layers, nothing remote" \
	"$(dmsetup table l57 | grep -o ' turbo ' | wc -l) $(dmsetup table l57 | grep -c 'remote:')" "2 0"
check "  every path equals the layers unpacked (debugfs over the device)" $IMG compare src /dev/mapper/l57

# --- random reads through the kernel, cold -------------------------------------------
check "mount both read-only" bash -c "mount -o ro,noload /dev/mapper/r57 mr && mount -o ro,noload /dev/mapper/l57 ml"
check "300 random reads of files (cold, across access points) equal the local device's" $PY - <<'PY'
import os, random, sys
rng = random.Random(57)
files = [os.path.join(r, f)[3:] for r, _, fs in os.walk("ml") for f in fs]
big = [f for f in files if os.path.getsize("ml/" + f) > 1 << 20]
bad = 0
for i in range(300):
    f = rng.choice(big if i % 3 else files)
    size = os.path.getsize("ml/" + f)
    off = rng.randrange(0, max(size, 1))
    ln = rng.randrange(1, 256 * 1024)
    with open("mr/" + f, "rb") as a, open("ml/" + f, "rb") as b:
        if os.pread(a.fileno(), ln, off) != os.pread(b.fileno(), ln, off):
            bad += 1
            print("DIFF %s %d+%d" % (f, off, ln))
print("%d files, %d of them > 1 MiB, %d reads differ" % (len(files), len(big), bad))
sys.exit(1 if bad or not big else 0)
PY
diag "refills: $(grep -c 'refill' fetchd.log) log lines"
check "every file of the REF's mount equals the model" $IMG files src mr
check "every file of the local mount equals the model" $IMG files src ml
umount mr ml
check_eq "the two devices are equal" "$(devsha r57)" "$(devsha l57)"
check "every granule marked present holds the right bytes" $IMG granules "$d/cache" "$d/gz" src out
check "obd detach both" bash -c "'$obd' detach r57 && '$obd' detach l57"

# --- a corrupt byte in the registry's blob -------------------------------------------------
# 200 bytes before an access point that follows one at bit offset 0 inside
# the stored blocks: the output byte is in the window that point checks
read -r de_k _ < <(awk 'NR > 1 && $4 == 0 { print; exit }' ent.txt)
read -r de_k1 en_k1 _ < <(awk -v k="$de_k" '$1 > k { print; exit }' ent.txt)
cp "$regblob" blob.orig
$PY -c "
f = open('$regblob', 'r+b'); o = $en_k1 - 200; f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0x5a]))"
diag "blob byte $((en_k1 - 200)) flipped (points at $de_k and $de_k1)"
cold
check "obd mount of the REF (cold, the blob corrupt)" "$obd" mount --service-config svc.json --name c57 "$REF" mr
readall mr corrupt.txt
diag "$(grep -v ' ok$' corrupt.txt | tr '\n' ';')"
check_eq "the file over the corrupt interval fails with EIO, every other file reads right" \
	"$(grep -v ' ok$' corrupt.txt)" "noise EIO"
check "no file read wrong bytes" bash -c "! grep -q WRONG corrupt.txt"
check "overlaybd-fetchd's log names the layer and the failed refill" \
	grep -q "(layer sha256:$gh): refill \[.*failed" fetchd.log
# The registry's blob repaired; the rest of the file read past the failed
# interval: every compressed byte is fetched, the compressed entry is
# complete, its sha256 fails (the corrupt byte is still in it): the
# compressed entry and the gunzip entry are cleared and taken back, and
# what is read again is refetched and decoded again.
cp blob.orig "$regblob"
dd if=mr/noise of=/dev/null bs=64K iflag=direct conv=noerror status=none 2>/dev/null
check "the whole blob fetched, its sha256 fails: the gunzip entry is cleared and taken back" \
	until_true 60 grep -q "(layer sha256:$gh): its compressed blob failed its sha256 check" fetchd.log
check "then the same mount reads every file right (refetched, decoded again)" \
	$IMG files src mr
check "obd umount" "$obd" umount mr
check "every granule marked present holds the right bytes" $IMG granules "$d/cache" "$d/gz" src out

# --- a gzip index whose window lies ------------------------------------------------
"$GZTOOL" --build "src/blobs/sha256/$gh" raw.meta 1048576 0 >/dev/null || bail "index build"
entries raw.meta > raw.txt
# the middle one of the points at a bit offset (Huffman blocks: "text", some
# 6 MiB): the refills that cross it or start there stay inside that file
read -r rde_k _ rwin_k _ < <(awk '$4 != 0' raw.txt | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }')
$PY -c "
f = open('raw.meta', 'r+b'); o = $rwin_k + 30000; f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 1]))"
$PY - "$cfg" "$d/raw.meta" lying.json <<'PY' || bail "cannot write lying.json"
import json, sys
c = json.load(open(sys.argv[1]))
for l in c["lowers"]:
    if "gzipIndex" in l:
        l["gzipIndex"] = sys.argv[2]
json.dump(c, open(sys.argv[3], "w"))
PY
cold
check "obd mount of the config whose gzipIndex lies (cold)" "$obd" mount --service-config svc.json \
	--name y57 lying.json mr
readall mr lying.txt
diag "$(grep -v ' ok$' lying.txt | tr '\n' ';')"
check_eq "the file after the lying window fails with EIO, every other file reads right" \
	"$(grep -v ' ok$' lying.txt)" "text EIO"
check "overlaybd-fetchd's log names the entry and the layer" \
	grep -q "layer sha256:$gh.*gzip index entry [0-9]* (de_pos $rde_k): its window is not the 32 KiB" fetchd.log
check "obd umount" "$obd" umount mr

fetchd_stop
check_eq "no device of this test left" "$(dmsetup ls --target overlaybd | grep -c '57')" 0
tap_done
