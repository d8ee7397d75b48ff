#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# obd convert --turbo-oci (userspace, no device): a three-layer OCI image
# made with python's tarfile and gzip (a gzip layer, a plain tar layer, a
# gzip layer; odd sizes, > 1 MiB, hard links, symlinks, devices, xattrs,
# long names, a whiteout, an opaque directory) converted to TurboOCI; the
# manifest, the meta blobs and the config checked; obd cat of its
# config.v1.json (meta layers over the original layers, gzip read through
# gzip.meta) is an ext4 that e2fsck accepts and that holds exactly the
# files an unpack of the original layers gives; obd check/info read it;
# malformed inputs are refused.
. "$(dirname "$0")/common.bash"

IMG="python3 $top/tests/tools/turbo-image.py"
for tool in skopeo e2fsck debugfs zstd; do
	command -v $tool >/dev/null || { echo "1..0 # SKIP $tool not installed"; exit 0; }
done

$IMG layout src || exit 1
t "convert --turbo-oci oci:src" "$OBD" convert --turbo-oci --size 1G --no-progress oci:src out
read -r -a printed < "$T/.out"
is "  prints the 3 meta layer digests and the manifest digest" "${#printed[@]}" 4
[ -e out/.turbo-work ]; ok $((!$?)) "  the work directory is gone"

# ---------------------------------------------------------------- documents
cat > docs.py <<'PY'
import gzip, hashlib, io, json, sys, tarfile
out, src = sys.argv[1], sys.argv[2]
def blob(d, dg): return open("%s/blobs/sha256/%s" % (d, dg.split(":")[1]), "rb").read()
def man(d):
    i = json.load(open(d + "/index.json"))
    return json.loads(blob(d, i["manifests"][0]["digest"])), i
m, idx = man(out)
sm, _ = man(src)
cfg = json.loads(blob(out, m["config"]["digest"]))
A = "containerd.io/snapshot/overlaybd/"
errs = []
def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond: errs.append(what)
check(idx["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "latest", "index.json tag")
check(len(m["layers"]) == len(sm["layers"]) == 3, "one meta layer per source layer")
for i, (l, s) in enumerate(zip(m["layers"], sm["layers"])):
    a = l["annotations"]
    b = blob(out, l["digest"])
    check(hashlib.sha256(b).hexdigest() == l["digest"][7:] and len(b) == l["size"], "layer %d: blob digest and size" % i)
    check(l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip", "layer %d: media type tar+gzip" % i)
    check(a == {A + "version": "0.1.0-turbo.ociv1", A + "blob-digest": l["digest"],
                A + "blob-size": str(l["size"]), A + "turbo-oci/target-digest": s["digest"],
                A + "turbo-oci/target-media-type": s["mediaType"]}, "layer %d: the five annotations" % i)
    raw = gzip.decompress(b)
    check(cfg["rootfs"]["diff_ids"][i] == "sha256:" + hashlib.sha256(raw).hexdigest(), "layer %d: diff_id = sha256 of turboOCIv1.tar" % i)
    t = tarfile.open(fileobj=io.BytesIO(raw))
    names = t.getnames()
    gz = s["mediaType"].endswith("+gzip")
    check(names == ["ext4.fs.meta", ".turbo.ociv1"] + (["gzip.meta"] if gz else []), "layer %d: members %s" % (i, names))
    for n in names:
        mem = t.getmember(n)
        check(mem.mode == 0o644 and mem.mtime == 0 and mem.isreg(), "layer %d: %s: mode 0644, no time" % (i, n))
        check(t.extractfile(n).read() == open("%s/turbo/%04d/%s" % (out, i, n), "rb").read(), "layer %d: %s = turbo/%04d/%s" % (i, n, i, n))
    meta = t.extractfile("ext4.fs.meta").read()
    check(meta[:8] == b"ZFile\x00\x01\x00", "layer %d: ext4.fs.meta is a ZFile" % i)
    if gz:
        check(t.extractfile("gzip.meta").read()[:8] == b"ddgzidx\x00", "layer %d: gzip.meta magic" % i)
    # the original layer is kept beside the meta layer: the target of config.v1.json
    check(blob(out, s["digest"]) == blob(src, s["digest"]), "layer %d: the original layer blob kept as is" % i)
check(cfg["config"]["Cmd"] == ["/usr/bin/tool"], "the source config is kept (Cmd)")
c1 = json.load(open(out + "/config.v1.json"))
check([("gzipIndex" in l) for l in c1["lowers"]] == [True, False, True], "config.v1.json: gzipIndex for the gzip layers")
check(all(l["targetFile"].endswith(s["digest"][7:]) for l, s in zip(c1["lowers"], sm["layers"])), "config.v1.json: targetFile = the original layers")
sys.exit(1 if errs else 0)
PY
python3 docs.py out src > docs.out; rc=$?
ok $rc "manifest, annotations, meta blobs, diff_ids, config.v1.json ($(grep -c '^ok' docs.out) checks)"
[ $rc -eq 0 ] || grep FAIL docs.out | sed 's/^/#   /'

# ------------------------------------------------------------------ reading
t "obd cat of the TurboOCI config.v1.json" "$OBD" cat --no-progress -o disk.img out/config.v1.json
t "  e2fsck -fn accepts it" e2fsck -fn disk.img
t "  every file equals the unpacked original layers (content, mode, owner, xattrs, symlinks, devices, hard links)" \
	$IMG compare src disk.img
grep -o '[0-9]* paths compared' "$T/.out" | sed 's/^/# /'
"$OBD" cat --no-progress --offset 1048576 --length 8388608 out/config.v1.json > part.img
is "  cat --offset/--length: the same bytes" "$(sha part.img)" \
	"$(dd if=disk.img bs=1M skip=1 count=8 status=none | sha)"
t "obd check of the TurboOCI stack" "$OBD" check out/config.v1.json
grep -q "turbo-oci" "$T/.out"; ok $? "  reports the layers as turbo-oci"
grep -qE "records in the target .*\(gzip," "$T/.out"; ok $? "  checks the target records and the gzip index"
t "obd info of the TurboOCI stack" "$OBD" info --json out/config.v1.json
cp "$T/.out" info.json
is "  info: layer 0's target is gzip with an index" \
	"$(jget info.json 'j["layers"][0]["turbo_oci_target"]["compression"]')" gzip
is "  info: layer 1's target is a plain tar" \
	"$(jget info.json 'j["layers"][1]["turbo_oci_target"]["compression"]')" none

# ------------------------------------------------------- lowers refused
python3 - out/config.v1.json remote.json <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
for l in c["lowers"]:
    del l["targetFile"]
json.dump(c, open(sys.argv[2], "w"))
PY
cp remote.json out/remote.json
fails "cat: a targetDigest-only lower (remote target) is refused" 1 "only in a registry" \
	"$OBD" cat -o x.img out/remote.json
fails "attach: a local gzip target is refused (the kernel reads tar bytes only)" 1 \
	"lowers\[0\]: a local gzip target .* cannot be served by the kernel" \
	"$OBD" attach --table out/config.v1.json
python3 - out/config.v1.json out/tar1.json <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["lowers"] = [c["lowers"][1]]
json.dump(c, open(sys.argv[2], "w"))
PY
t "attach --table: a layer over a local tar target" "$OBD" attach --table out/tar1.json
m1=$(jget out/tar1.json 'j["lowers"][0]["file"]')
t1=$(jget out/tar1.json 'j["lowers"][0]["targetFile"]')
grep -qE "^0 [0-9]+ overlaybd 1 turbo $(realpath "$m1") $(realpath "$t1")\$" "$T/.out"
ok $? "  the table names it: turbo <meta> <target>"

# the plain tar target cut short: its records point past it
l1=$(jget out/config.v1.json 'j["lowers"][1]["targetFile"]')
head -c 4096 "$l1" > short.tar
python3 - out/config.v1.json short.json "$T/short.tar" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["lowers"][1]["targetFile"] = sys.argv[3]
json.dump(c, open(sys.argv[2], "w"))
PY
fails "cat: a target shorter than the meta layer's records is refused" 1 "target" \
	"$OBD" cat -o x.img short.json
fails "check: the same, a problem" 1 "" "$OBD" check short.json

# a damaged gzip index: a window byte flipped (the header CRC does not cover it)
g0=$(jget out/config.v1.json 'j["lowers"][0]["gzipIndex"]')
cp "$g0" bad.meta
printf '\xff' | dd of=bad.meta bs=1 seek=600 conv=notrunc status=none
python3 - out/config.v1.json badidx.json "$T/bad.meta" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["lowers"][0]["gzipIndex"] = sys.argv[3]
json.dump(c, open(sys.argv[2], "w"))
PY
fails "check: a damaged gzip index is a problem" 1 "" "$OBD" check badidx.json
grep -q "gzip index" "$T/.out" "$T/.err"; ok $? "  names the gzip index"

# -------------------------------------------------------- bad layers refused
mkdir bad
for k in zstd lying-size lying-size-big gz-trailing gz-two symlink-loop through-symlinks; do
	$IMG bad $k bad/$k || exit 1
done
fails "convert refuses a zstd layer" 1 "zstd layer" \
	"$OBD" convert --turbo-oci --size 256M --no-progress oci:bad/zstd o-zstd
fails "convert refuses a tar whose entry size is too small (names the layer and the entry)" 1 \
	"layer 1 of 1 .*entry 'a'.*padding" \
	"$OBD" convert --turbo-oci --size 256M --no-progress oci:bad/lying-size o-lie
fails "convert refuses a tar whose entry size runs past its end" 1 \
	"layer 1 of 1 .*entry 'a'.*ends inside" \
	"$OBD" convert --turbo-oci --size 256M --no-progress oci:bad/lying-size-big o-lie2
fails "convert refuses a gzip layer with trailing garbage" 1 "layer 1 of 1.*(gzip|member)" \
	"$OBD" convert --turbo-oci --size 256M --no-progress oci:bad/gz-trailing o-trail
fails "convert refuses a gzip layer of two members" 1 "layer 1 of 1.*(gzip|member)" \
	"$OBD" convert --turbo-oci --size 256M --no-progress oci:bad/gz-two o-two
fails "convert refuses a path through a symlink loop" 1 "entry 'a/b'.*symbolic links" \
	"$OBD" convert --turbo-oci --size 256M --no-progress oci:bad/symlink-loop o-loop
t "convert: paths through symlinks (/, ../../..)" \
	"$OBD" convert --turbo-oci --size 256M --no-progress oci:bad/through-symlinks o-via
t "  cat" "$OBD" cat --no-progress -o via.img o-via/config.v1.json
debugfs -R "cat /etc/x" via.img 2>/dev/null > via.x
debugfs -R "cat /y" via.img 2>/dev/null > via.y
is "  written inside the image, as in a chroot" "$(cat via.x via.y)" "xy"
# target-media-type is the reference builder's (gzip or tar as sniffed), not
# the declared type: the snapshotter sets gzipIndex only for the gzip types
for k in mislabelled nondistributable; do
	$IMG bad $k bad/$k || exit 1
	t "convert: a gzip layer declared $k" \
		"$OBD" convert --turbo-oci --size 256M --no-progress oci:bad/$k o-$k
	python3 - o-$k > $k.out <<'PY'
import json, sys
d = sys.argv[1]
def blob(dg): return open("%s/blobs/sha256/%s" % (d, dg.split(":")[1]), "rb").read()
m = json.loads(blob(json.load(open(d + "/index.json"))["manifests"][0]["digest"]))
c = json.load(open(d + "/config.v1.json"))
print(m["layers"][0]["annotations"]["containerd.io/snapshot/overlaybd/turbo-oci/target-media-type"],
      "gzipIndex" in c["lowers"][0])
PY
	is "  target-media-type tar+gzip, config.v1.json with gzipIndex" "$(cat $k.out)" \
		"application/vnd.oci.image.layer.v1.tar+gzip True"
	t "  cat" "$OBD" cat --no-progress -o $k.img o-$k/config.v1.json
	is "  its file reads back" "$(debugfs -R "cat /a" $k.img 2>/dev/null | sha256sum)" \
		"$(head -c 3000 /dev/zero | tr '\0' a | sha256sum)"
done
fails "convert --turbo-oci refuses the overlaybd commit options" 2 "go without it" \
	"$OBD" convert --turbo-oci --algorithm zstd oci:src o-zstd-algo
fails "convert refuses a non-empty OUTDIR" 1 "not empty" \
	"$OBD" convert --turbo-oci --no-progress oci:src out

done_testing
