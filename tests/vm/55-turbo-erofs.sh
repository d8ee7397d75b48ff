#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 55-turbo-erofs.sh: a TurboOCI image whose meta layer is erofs
# (erofs.fs.meta, the reference's turboOCI-apply --fstype erofs) served
# lazily and mounted, inside the VM (issue #20).
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/55-turbo-erofs.sh
# tests/tools/turbo-erofs.py makes a one-layer gzip OCI image (odd sizes,
# > 16383 sectors, hard links, symlinks, a fifo, a directory of 300
# entries), formats its files with mkfs.erofs and puts the warp meta layer
# (file data mapped into the uncompressed tar, the rest tag 0) into obd
# convert --turbo-oci's output for it. Both are pushed with skopeo to
# Debian's docker-registry on 127.0.0.1; overlaybd-fetchd runs with
# gzipCacheConfig on. Checks:
#   - obd mount REF on a cold cache: one `turbo` layer whose meta is the
#     unpacked erofs.fs.meta and whose target is the gunzip entry; mounted
#     as erofs, read-only;
#   - one small file read: only part of the compressed layer fetched;
#   - every path's kind, mode, size, sha256, symlink target and hard-link
#     group through the mount equals the layer's; the device is
#     mkfs.erofs's image byte for byte;
#   - obd mount --upper over it refused (erofs is read-only), nothing left;
#     obd mount --rw: an overlayfs over it takes a new file;
#   - the config.v1.json form with the uncompressed tar as a local
#     targetFile mounts the same files;
#   - no device left, dmesg clean.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
EROFS="$PY $OBD_TOP/tests/tools/turbo-erofs.py"
reg_test_begin 55-turbo-erofs
RA=127.0.0.1:$REG
command -v mkfs.erofs >/dev/null || bail "mkfs.erofs missing: scripts/deps.sh installs erofs-utils"
modprobe erofs 2>/dev/null
modprobe overlay 2>/dev/null
grep -qw erofs /proc/filesystems || bail "no erofs in this kernel"
turbo_svc
if fetchd_start; then ok "overlaybd-fetchd runs (gzipCacheConfig on)"; else bail "overlaybd-fetchd does not start: $(tail -5 fetchd.log)"; fi

$EROFS layout src >/dev/null || bail "cannot make the test image"
SK=(skopeo copy --quiet --dest-tls-verify=false --preserve-digests)
check "push the original OCI image (skopeo)" "${SK[@]}" oci:src "docker://$RA/img:orig"
check "obd convert --turbo-oci (the template)" "$obd" convert --turbo-oci --size 64M --no-progress oci:src out
check "turbo-erofs.py: the erofs meta layer in its place" \
	$EROFS build src out work "$obd" --vsize $((64 << 20))
check "push the erofs TurboOCI image next to it (skopeo)" "${SK[@]}" oci:out "docker://$RA/img:erofs"

# model.json: what the layer holds
$PY "$OBD_TOP/tests/tools/turbo-image.py" model src > model.json || bail "no model"
# same_files DIR: every path of the model through DIR (kind, mode, size, sha256,
# symlink target, hard-link group), and nothing else there
same_files() {
	$PY - model.json "$1" <<'PY'
import hashlib, json, os, stat, sys
m = json.load(open(sys.argv[1]))
root = sys.argv[2]
kinds = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo"}
got, inos = {}, {}
for d, dirs, files in os.walk(root):
    for n in dirs + files:
        q = os.path.join(d, n)
        p = os.path.relpath(q, root)
        st = os.lstat(q)
        e = {"kind": kinds.get(stat.S_IFMT(st.st_mode), "?"), "mode": "%04o" % (st.st_mode & 0o7777)}
        if e["kind"] == "file":
            e["sha256"] = hashlib.sha256(open(q, "rb").read()).hexdigest()
            e["size"] = st.st_size
            inos.setdefault(st.st_ino, []).append(p)
            e["ino"] = st.st_ino
        elif e["kind"] == "symlink":
            e["link"] = os.readlink(q)
        got[p] = e
for p, e in got.items():
    if e["kind"] == "file":
        e["links"] = sorted(inos[e["ino"]])
keep = ("kind", "mode", "sha256", "size", "link", "links")
bad = 0
for p in sorted(set(m) | set(got)):
    w = {k: v for k, v in m.get(p, {}).items() if k in keep}
    g = {k: v for k, v in got.get(p, {}).items() if k in keep}
    if w != g:
        bad += 1
        if bad <= 10:
            print("DIFF %s\n  want %s\n  got  %s" % (p, w, g))
n = sum(1 for e in m.values() if e["kind"] == "file")
print("%d paths, %d regular files, %d differ" % (len(m), n, bad))
sys.exit(1 if bad or not n else 0)
PY
}

# --- obd mount REF, cold: lazily --------------------------------------------------
targets=$($PY -c "
import json
i = json.load(open('src/index.json'))['manifests'][0]['digest'].split(':')[1]
print(sum(l['size'] for l in json.load(open('src/blobs/sha256/' + i))['layers']))")
mkdir -p mnt
p0=$(px_bytes)
check "obd mount REF (cold cache)" "$obd" mount --service-config svc.json --name t55 \
	"http://127.0.0.1:$PX/img:erofs" mnt
vm_on_exit "$obd" umount mnt
check_eq "  mounted as erofs" "$(awk -v m="$d/mnt" '$2 == m { print $3 }' /proc/mounts)" erofs
check "  read-only" bash -c "awk -v m='$d/mnt' '\$2 == m { print \$4 }' /proc/mounts | grep -q '^ro'"
tbl=$(dmsetup table t55)
check_eq "  the table: one turbo layer over the unpacked erofs.fs.meta and the gunzip entry" \
	"$(grep -cE " 1 turbo $d/cache/turbo/sha256:[0-9a-f]{64}/erofs\.fs\.meta remote:[0-9]+:sha256:[0-9a-f]{64}:$d/gz/sha256:" <<<"$tbl")" 1
small=$($PY -c "
import json
m = json.load(open('model.json'))
print(min((e['size'], p) for p, e in m.items() if e.get('size', 0) > 0)[1])")
check_eq "a small file ($small) reads as the model says" "$(sha256sum < "mnt/$small" | cut -d' ' -f1)" \
	"$($PY -c "import json; print(json.load(open('model.json'))['$small']['sha256'])")"
p1=$(px_bytes)
diag "registry bytes for the mount and one file: $((p1 - p0)) (meta blob included) of $targets bytes of target"
check "  lazily: less than half the target's bytes came from the registry" test $(((p1 - p0) * 2)) -lt "$targets"
check "every path through the mounted erofs equals the layer's" same_files mnt
isz=$(stat -c %s work/erofs.img)
check "the device is mkfs.erofs's image byte for byte" cmp -n "$isz" /dev/mapper/t55 work/erofs.img
check "obd umount" "$obd" umount mnt

# --- --upper refused, --rw works ---------------------------------------------------------
check "an upper sized by the image (obd create ... 0)" "$obd" create up.data up.index 0
out=$("$obd" mount --service-config svc.json --upper up.data up.index --name t55u \
	"http://127.0.0.1:$PX/img:erofs" mnt 2>&1)
rc=$?
check "obd mount --upper over an erofs image is refused, clearly" \
	bash -c "[ $rc = 1 ] && [[ '$out' == *'an erofs file system is read-only: --upper cannot make it writable'* ]]"
check_eq "  no device, no mount left" "$(dmsetup ls --target overlaybd | grep -c '^t55u') $(grep -c " $d/mnt " /proc/mounts)" "0 0"
check "obd mount --rw RWDIR: an overlayfs over the erofs" "$obd" mount --service-config svc.json \
	--rw "$d/rw" --name t55r "http://127.0.0.1:$PX/img:erofs" mnt
printf 'on top of erofs\n' > mnt/etc/new-file && rm mnt/etc/keep
check_eq "  a new file lands in RWDIR/fs" "$(cat rw/fs/etc/new-file 2>&1)" "on top of erofs"
check_eq "  the image's files read through it" "$(sha256sum < "mnt/$small" | cut -d' ' -f1)" \
	"$($PY -c "import json; print(json.load(open('model.json'))['$small']['sha256'])")"
check "  a file removed through it is gone (a whiteout in RWDIR/fs)" \
	bash -c "[ -d mnt/etc ] && [ ! -e mnt/etc/keep ] && [ -c rw/fs/etc/keep ]"
check "obd umount" "$obd" umount mnt

# --- config.v1.json with the uncompressed tar as a local targetFile ----------------------
tdg=$($PY -c "import json; print(json.load(open('out/config.v1.json'))['lowers'][0]['targetDigest'])")
gzip -dc "src/blobs/sha256/${tdg#sha256:}" > layer.tar
$PY - out/config.v1.json tar.json "$d/layer.tar" <<'PY' || bail "cannot write tar.json"
import json, sys
c = json.load(open(sys.argv[1]))
c["lowers"] = [{"file": c["lowers"][0]["file"], "targetFile": sys.argv[3]}]
json.dump(c, open(sys.argv[2], "w"))
PY
check "obd mount of a config.v1.json over the local tar" "$obd" mount --service-config svc.json --name t55t tar.json mnt
check_eq "  the table names the tar" "$(dmsetup table t55t | grep -c " turbo $d/out/turbo/0000/erofs.fs.meta $d/layer.tar\$")" 1
check_eq "  mounted as erofs" "$(awk -v m="$d/mnt" '$2 == m { print $3 }' /proc/mounts)" erofs
check "  every path equals the layer's" same_files mnt
check "obd umount" "$obd" umount mnt

fetchd_stop
check_eq "no device of this test left" "$(dmsetup ls --target overlaybd | grep -c '^t55')" 0
vm_dmesg_check 55-turbo-erofs
tap_done
