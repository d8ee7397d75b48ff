#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 54-turbo-ref.sh: an unmodified OCI image served lazily as TurboOCI (issue
# #20), end to end inside the VM.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/54-turbo-ref.sh
# A three-layer OCI image made by tests/tools/turbo-image.py (gzip, tar,
# gzip; odd sizes, > 8 MiB, hard links, symlinks, devices, xattrs, a
# whiteout, an opaque dir) is pushed with skopeo to Debian's docker-registry
# on 127.0.0.1, converted with obd convert --turbo-oci and pushed next to it
# (the original layers are there already). overlaybd-fetchd runs with
# gzipCacheConfig on. Checks:
#   - obd attach REF on a cold cache: a table of three `turbo` layers (gzip
#     targets as gunzip entries with their .gzindex, the tar target as its
#     blob entry), the meta layers unpacked under <cacheDir>/turbo;
#   - the device: every path of the file system (content, mode, owner,
#     xattrs, links, devices, hard-link groups, read with debugfs from the
#     device) equals the original layers unpacked with whiteouts applied;
#     mounted read-only, every regular file's sha256 equals the model's;
#   - only part of the compressed layers came from the registry before the
#     reads (lazy), the gunzip entries hold granules the reads made present;
#   - obd detach, then attach again (warm): the same bytes with no new blob
#     GET of a target range already present;
#   - overlaybd-fetchd killed (-9) while its refills are in flight (GETs
#     slowed): a new daemon finishes the reads, the file is right, every
#     granule marked present (gunzip and blob entries) holds the right bytes;
#   - a container layer: obd mount --upper over the REF, files written and
#     changed through ext4, the upper committed; three TurboOCI layers + that
#     overlaybd layer mounted: new, changed and untouched files all right;
#   - dmesg clean.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
IMG="$PY $OBD_TOP/tests/tools/turbo-image.py"
reg_test_begin 54-turbo-ref
RA=127.0.0.1:$REG
devsha() { sha256sum <"/dev/mapper/$1" | cut -d' ' -f1; }
modprobe ext4 2>/dev/null
turbo_svc
if fetchd_start; then ok "overlaybd-fetchd runs (gzipCacheConfig on)"; else bail "overlaybd-fetchd does not start: $(tail -5 fetchd.log)"; fi

$IMG layout src >/dev/null || bail "cannot make the test image"
# the layers as they are (the tar one stays a tar: it is a target)
SK=(skopeo copy --quiet --dest-tls-verify=false --preserve-digests)
check "push the original OCI image (skopeo)" "${SK[@]}" oci:src "docker://$RA/img:orig"
check "obd convert --turbo-oci" "$obd" convert --turbo-oci --size 1G --no-progress oci:src out
check "push the TurboOCI image next to it (skopeo)" "${SK[@]}" oci:out "docker://$RA/img:turbo"
p0=$(px_bytes)

# through the counting proxy: what the registry serves is measured
dev=$("$obd" attach --service-config svc.json --name t54 "http://127.0.0.1:$PX/img:turbo" 2>attach.err)
check_eq "obd attach REF of the TurboOCI image prints the device" "$dev" /dev/mapper/t54
[ -n "$dev" ] || bail "attach failed: $(cat attach.err)"
vm_on_exit dmsetup remove t54
tbl=$(dmsetup table t54)
check_eq "the table has three turbo layers" "$(grep -o ' turbo ' <<<"$tbl" | wc -l)" 3
check "gzip targets are gunzip entries in the gzip cache, with their index" bash -c \
	"[ \$(ls '$d'/gz/sha256:*.gzindex | wc -l) = 2 ] && grep -c ' remote:[0-9]*:sha256:[0-9a-f]*:$d/gz/' <<<'$tbl' >/dev/null"
check "the tar target is its blob entry" grep -q "remote:[0-9]*:sha256:[0-9a-f]*:$d/cache/sha256:" <<<"$tbl"
check_eq "the meta layers are unpacked under cacheDir/turbo" "$(ls -d "$d"/cache/turbo/sha256:* | wc -l)" 3
ls "$d"/cache/turbo/sha256:*/ext4.fs.meta >/dev/null 2>&1 || not_ok "ext4.fs.meta in each"

# --- lazy: a mount and one small file fetch a small part of the targets --------------
p1=$(px_bytes)
# the original layers' compressed sizes (the targets' blobs)
targets=$($PY -c "
import json
i = json.load(open('src/index.json'))['manifests'][0]['digest'].split(':')[1]
print(sum(l['size'] for l in json.load(open('src/blobs/sha256/' + i))['layers']))")
mkdir -p mnt
check "mount it read-only" mount -o ro,noload /dev/mapper/t54 mnt
vm_on_exit umount mnt
small=$($IMG model src | $PY -c "
import json, sys
m = json.load(sys.stdin)
print(min((e['size'], p) for p, e in m.items() if e.get('sha256') and e.get('size', 0) > 0)[1])")
check_eq "a small file ($small) reads as the model says" "$(sha256sum < "mnt/$small" | cut -d' ' -f1)" \
	"$($IMG model src | $PY -c "import json, sys; print(json.load(sys.stdin)['$small']['sha256'])")"
p2=$(px_bytes)
diag "registry bytes for the mount and one file: $((p2 - p1)) of $targets bytes of targets"
check "  lazily: less than half the targets' bytes came from the registry" test $(((p2 - p1) * 2)) -lt "$targets"

# --- what the file system holds -------------------------------------------------
check "every path equals the original layers unpacked (debugfs over the device)" \
	$IMG compare src /dev/mapper/t54
check "every regular file's sha256 through the mounted ext4 equals the model's" $IMG files src mnt
check "the gunzip entries hold what the reads made present" bash -c \
	"'$obd' cache --service-config svc.json --gzip | grep -q gunzip"
umount mnt
check "obd detach" "$obd" detach t54

# --- warm: attach again, the same bytes, no new fetch -------------------------------
dev=$("$obd" attach --service-config svc.json --name t54b "http://127.0.0.1:$PX/img:turbo" 2>attach.err)
check_eq "attach again (warm)" "$dev" /dev/mapper/t54b
vm_on_exit dmsetup remove t54b
sha_a=$(devsha t54b)
p2=$(px_bytes)
check_eq "reading the whole device again fetches nothing new" "$(devsha t54b)" "$sha_a"
check_eq "  (registry bytes before and after)" "$(px_bytes)" "$p2"
check "obd detach" "$obd" detach t54b

# --- a container layer on top: written through ext4, committed, a mixed stack ----------
check "an upper sized by the image (obd create ... 0)" "$obd" create up.data up.index 0
check "obd mount --upper over the TurboOCI REF (read-write ext4)" "$obd" mount \
	--service-config svc.json --upper up.data up.index --name t54w "http://127.0.0.1:$PX/img:turbo" mnt
printf 'written on top of a TurboOCI image\n' > mnt/new-file
cp "mnt/$small" mnt/copy-of-small && printf 'appended\n' >> "mnt/$small"
sync
check "obd umount" "$obd" umount mnt
check "obd commit of the upper: an overlaybd layer" "$obd" commit --no-progress up.data up.index top.commit
cfg=$(ls "$d"/cache/images/sha256:*.config.v1.json | head -1)
$PY - "$cfg" "$d/top.commit" mixed.json <<'PY' || bail "cannot write mixed.json"
import json, sys
c = json.load(open(sys.argv[1]))
c["lowers"].append({"file": sys.argv[2]})
json.dump(c, open(sys.argv[3], "w"))
PY
check "obd mount of three TurboOCI layers + one overlaybd layer" "$obd" mount \
	--service-config svc.json --name t54m mixed.json mnt
check_eq "  the table: three turbo layers, then the committed file" \
	"$(dmsetup table t54m | grep -o ' turbo ' | wc -l) $(dmsetup table t54m | grep -c "$d/top.commit")" "3 1"
check_eq "  the new file" "$(cat mnt/new-file)" "written on top of a TurboOCI image"
check "  the changed file: the old bytes, then the appended line" bash -c \
	"{ cat mnt/copy-of-small; printf 'appended\\n'; } | cmp - 'mnt/$small'"
check "  every other file as the model says" $IMG files src mnt "$small"
check "obd umount" "$obd" umount mnt

# --- the daemon killed while it fetches and inflates -----------------------------------
# Cold again (the entries removed, the meta layers kept); the proxy slows the
# blob GETs so a kill -9 lands while refills are in flight. The reads go on
# with a new daemon; every granule marked present, in the gunzip entries and
# in the blob entries, holds the right bytes.
rm -rf "$d/gz" "$d"/cache/sha256:*
big=$($IMG model src | $PY -c "
import json, sys
m = json.load(sys.stdin)
print(max((e['size'], p) for p, e in m.items() if e.get('sha256'))[1])")
check "obd mount (cold)" "$obd" mount --service-config svc.json --name t54k \
	"http://127.0.0.1:$PX/img:turbo" mnt
px_fault slow 6 1500
sha256sum "mnt/$big" > big.sha 2>big.err &
reader=$!
for _ in $(seq 100); do grep -q 'gunzip\|refill' fetchd.log && break; sleep 0.1; done
sleep 1
kill -9 "$fetchd_pid"
wait "$fetchd_pid" 2>/dev/null
fetchd_pid=
check "a new daemon takes over" fetchd_start
wait "$reader"
check_eq "the big file ($big) reads whole and right across the kill" "$(cut -d' ' -f1 big.sha)" \
	"$($IMG model src | $PY -c "import json, sys; print(json.load(sys.stdin)['$big']['sha256'])")"
check "every granule marked present holds the right bytes (gunzip and blob entries)" \
	$IMG granules "$d/cache" "$d/gz" src out
check "obd umount" "$obd" umount mnt

fetchd_stop
tap_done
