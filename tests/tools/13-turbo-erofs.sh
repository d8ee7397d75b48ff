#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# TurboOCI images whose meta layer is erofs (erofs.fs.meta, the reference's
# turboOCI-apply --fstype erofs), host side (tests/vm/55-turbo-erofs.sh
# mounts one): tests/tools/turbo-erofs.py makes a one-layer gzip image,
# formats its unpacked files with mkfs.erofs and writes the warp meta layer
# (tag-1 records into the tar, the rest of the image tag 0) into obd
# convert --turbo-oci's output for the same source. Checks:
#   - the documents (annotations, members, diff_id, config.v1.json);
#   - obd cat of config.v1.json (the meta layer over the gzip target, read
#     through gzip.meta) is the erofs image byte for byte, then zeros; its
#     files equal the layer's (the tool's erofs reader; fsck.erofs, and its
#     --extract where erofs-utils has it); the same over the uncompressed
#     tar as a local targetFile, and attach --table names that tar;
#   - obd check and obd info of the stack;
#   - obd attach --table REF (Debian's docker-registry on 127.0.0.1): the
#     meta blob unpacked, the derived config's lower names erofs.fs.meta,
#     the table serves it; a blob with both fs metas is read as erofs (the
#     reference's turboFsType order); a blob with neither is refused; a
#     cached meta directory without either is refused.
. "$(dirname "$0")/common.bash"

skip_without skopeo mkfs.erofs fsck.erofs docker-registry
EROFS="python3 $top/tests/tools/turbo-erofs.py"
VSIZE=$((64 << 20))

$EROFS layout src || exit 1
t "convert --turbo-oci oci:src (the template)" "$OBD" convert --turbo-oci --size 64M --no-progress oci:src tmpl
cp -r tmpl out		# build edits its OUT: the template is kept for the other blobs
t "turbo-erofs.py build: the erofs meta layer in its place" $EROFS build src out work "$OBD" --vsize "$VSIZE"
sed 's/^/# /' "$T/.out"

# ---------------------------------------------------------------- documents
cat > docs.py <<'PY'
import gzip, hashlib, io, json, sys, tarfile
out, src = sys.argv[1], sys.argv[2]
def blob(d, dg): return open("%s/blobs/sha256/%s" % (d, dg.split(":")[1]), "rb").read()
def man(d):
    i = json.load(open(d + "/index.json"))
    return json.loads(blob(d, i["manifests"][0]["digest"]))
m, sm = man(out), man(src)
cfg = json.loads(blob(out, m["config"]["digest"]))
A = "containerd.io/snapshot/overlaybd/"
errs = []
def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond: errs.append(what)
l, s = m["layers"][0], sm["layers"][0]
b = blob(out, l["digest"])
check(hashlib.sha256(b).hexdigest() == l["digest"][7:] and len(b) == l["size"], "blob digest and size")
check(l["annotations"] == {A + "version": "0.1.0-turbo.ociv1", A + "blob-digest": l["digest"],
      A + "blob-size": str(l["size"]), A + "turbo-oci/target-digest": s["digest"],
      A + "turbo-oci/target-media-type": s["mediaType"]}, "the five annotations")
raw = gzip.decompress(b)
check(cfg["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(raw).hexdigest()], "diff_id = sha256 of turboOCIv1.tar")
t = tarfile.open(fileobj=io.BytesIO(raw))
check(t.getnames() == ["erofs.fs.meta", ".turbo.ociv1", "gzip.meta"], "members %s" % t.getnames())
meta = t.extractfile("erofs.fs.meta").read()
check(meta[:8] == b"ZFile\x00\x01\x00", "erofs.fs.meta is a ZFile")
check(meta == open(out + "/turbo/0000/erofs.fs.meta", "rb").read(), "= turbo/0000/erofs.fs.meta")
c1 = json.load(open(out + "/config.v1.json"))
check(c1["lowers"][0]["file"].endswith("/turbo/0000/erofs.fs.meta") and "gzipIndex" in c1["lowers"][0],
      "config.v1.json: file erofs.fs.meta, gzipIndex")
sys.exit(1 if errs else 0)
PY
python3 docs.py out src > docs.out; rc=$?
ok $rc "manifest, annotations, meta blob, diff_id, config.v1.json ($(grep -c '^ok' docs.out) checks)"
[ $rc -eq 0 ] || grep FAIL docs.out | sed 's/^/#   /'
t "mkfs.erofs's image holds the layer (the tool's erofs reader)" $EROFS compare src work/erofs.img

# ------------------------------------------------------------------ reading
isz=$(stat -c %s work/erofs.img)
t "obd cat of the erofs TurboOCI config.v1.json" "$OBD" cat --no-progress -o disk.img out/config.v1.json
is "  the device's size is the meta layer's" "$(stat -c %s disk.img)" "$VSIZE"
t "  the device is the erofs image byte for byte" cmp -n "$isz" disk.img work/erofs.img
is "  and zeros after it" "$(tail -c +$((isz + 1)) disk.img | tr -d '\0' | wc -c)" 0
t "  fsck.erofs accepts it" fsck.erofs disk.img
t "  every path equals the layer's (kind, mode, owner, size, sha256, symlink, hard links)" \
	$EROFS compare src disk.img
grep -o '[0-9]* paths compared' "$T/.out" | sed 's/^/# /'
if fsck.erofs --help 2>&1 | grep -q -- --extract; then
	t "  fsck.erofs --extract of the device" fsck.erofs --extract=ext disk.img
	t "  every regular file and symlink extracted equals the model" python3 - "$top" src ext <<'PY'
import hashlib, json, os, subprocess, sys
top = sys.argv.pop(1)
m = json.loads(subprocess.check_output([sys.executable, top + "/tests/tools/turbo-image.py", "model", sys.argv[1]]))
bad = n = 0
for p, e in m.items():
    q = os.path.join(sys.argv[2], p)
    if e["kind"] == "file":
        n += 1
        if hashlib.sha256(open(q, "rb").read()).hexdigest() != e["sha256"]:
            bad += 1; print("DIFF", p)
    elif e["kind"] == "symlink" and os.readlink(q) != e["link"]:
        bad += 1; print("DIFF", p)
print("%d files, %d differ" % (n, bad))
sys.exit(1 if bad or not n else 0)
PY
else
	echo "# fsck.erofs has no --extract here: the tool's reader alone reads the files"
fi

t "obd check of the erofs TurboOCI stack" "$OBD" check out/config.v1.json
grep -q "turbo-oci" "$T/.out"; ok $? "  reports the layer as turbo-oci"
grep -qE "records in the target .*\(gzip," "$T/.out"; ok $? "  checks the target records and the gzip index"
t "obd info --json of the stack" "$OBD" info --json out/config.v1.json
cp "$T/.out" info.json
is "  the target is gzip with an index" "$(jget info.json 'j["layers"][0]["turbo_oci_target"]["compression"]')" gzip

# the same meta layer over the uncompressed tar, a local targetFile
tdg=$(jget out/config.v1.json 'j["lowers"][0]["targetDigest"]')
gzip -dc "src/blobs/sha256/${tdg#sha256:}" > layer.tar
python3 - out/config.v1.json tar.json "$T/layer.tar" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
l = c["lowers"][0]
c["lowers"] = [{"file": l["file"], "targetFile": sys.argv[3]}]
json.dump(c, open(sys.argv[2], "w"))
PY
t "obd cat over the uncompressed tar (targetFile, no gzipIndex)" "$OBD" cat --no-progress -o disk2.img tar.json
is "  the same device" "$(sha disk2.img)" "$(sha disk.img)"
t "attach --table of it" "$OBD" attach --table tar.json
grep -qE "^0 $((VSIZE / 512)) overlaybd 1 turbo $(realpath out/turbo/0000/erofs.fs.meta) $T/layer.tar\$" "$T/.out"
ok $? "  turbo <erofs.fs.meta> <the tar>"

# ------------------------------------------------------- by reference
PORT=$(free_port)
start_registry reg "$PORT"
ok $? "registry answers on 127.0.0.1:$PORT"
REG=127.0.0.1:$PORT
SK=(skopeo copy --quiet --dest-tls-verify=false --preserve-digests)
t "push the original image (skopeo)" "${SK[@]}" oci:src "docker://$REG/img:orig"
t "push the erofs TurboOCI image next to it" "${SK[@]}" oci:out "docker://$REG/img:erofs"
cat > svc.json <<JSON
{ "cacheConfig": { "cacheDir": "$T/cache", "refillSize": 65536 },
  "gzipCacheConfig": { "enable": true, "cacheDir": "$T/gz" } }
JSON
attach() { "$OBD" attach --service-config svc.json "$@"; }
mdig=$(jget out/index.json 'j["manifests"][0]["digest"]')
meta=$(python3 -c "
import json
m = json.load(open('out/blobs/sha256/${mdig#sha256:}'))
print(m['layers'][0]['digest'])")
t "attach --table REF of the erofs image" attach --table "http://$REG/img:erofs"
tbl=$(cat "$T/.out")
grep -qE "^0 $((VSIZE / 512)) overlaybd 1 turbo $T/cache/turbo/$meta/erofs.fs.meta remote:[0-9]+:$tdg:$T/gz/$tdg\$" <<<"$tbl"
rc=$?
ok $rc "  turbo <cacheDir/turbo/<meta>/erofs.fs.meta> <the gunzip entry>"
[ $rc -eq 0 ] || echo "#   table: $tbl"
is "  the meta blob unpacked: erofs.fs.meta, .turbo.ociv1, gzip.meta" \
	"$(ls -A "cache/turbo/$meta" | sort | tr '\n' ' ')" ".turbo.ociv1 erofs.fs.meta gzip.meta "
cmp -s "cache/turbo/$meta/erofs.fs.meta" out/turbo/0000/erofs.fs.meta; ok $? "  erofs.fs.meta as pushed"
is "  the derived config's lower names erofs.fs.meta" \
	"$(jget "cache/images/$mdig.config.v1.json" 'j["lowers"][0]["file"]')" "$T/cache/turbo/$meta/erofs.fs.meta"
t "attach --table REF again (the meta layer cached)" attach --table "http://$REG/img:erofs"
is "  the same table" "$(cat "$T/.out")" "$tbl"

# a meta blob with both fs metas (turboFsType: erofs first), and one with neither
for v in both none; do
	cp -r tmpl "out-$v"
	t "turbo-erofs.py build --members $v" $EROFS build src "out-$v" "work-$v" "$OBD" --vsize "$VSIZE" --members "$v"
	t "  push it" "${SK[@]}" "oci:out-$v" "docker://$REG/img:$v"
done
t "attach --table REF: a meta blob with ext4.fs.meta and erofs.fs.meta" attach --table "http://$REG/img:both"
grep -qE " turbo $T/cache/turbo/sha256:[0-9a-f]{64}/erofs.fs.meta remote:" "$T/.out"
ok $? "  erofs.fs.meta is served (the reference's turboFsType order: erofs, ext4)"
bdir=$(sed -E 's|.* turbo ([^ ]*)/erofs.fs.meta .*|\1|' "$T/.out")
is "  both unpacked" "$(ls -A "$bdir" | sort | tr '\n' ' ')" ".turbo.ociv1 erofs.fs.meta ext4.fs.meta gzip.meta "
fails "attach --table REF: a meta blob with neither is refused" 1 \
	"not a TurboOCI meta layer: expected erofs.fs.meta or ext4.fs.meta" attach --table "http://$REG/img:none"
is "  nothing of it left under cacheDir/turbo" "$(ls -A cache/turbo | grep -vc '^sha256:')" 0
rm "cache/turbo/$meta/erofs.fs.meta"
fails "a cached meta directory with neither fs meta is refused" 1 \
	"cache/turbo/$meta: neither erofs.fs.meta nor ext4.fs.meta" attach --table "http://$REG/img:erofs"

done_testing
