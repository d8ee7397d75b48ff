#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 33-attach-ref.sh: obd attach by image reference (issue #8), inside the VM:
# Debian's docker-registry on 127.0.0.1, obd push, overlaybd-fetchd, then
# obd attach REF by tag and by @sha256 digest on a cold cache.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/33-attach-ref.sh
# Checks: the reference stack (zfile + tar(zfile)) read back by tag has its
# expected sha256; an ext4 image (mkfs.ext4 -d of a small tree) attached by
# digest equals obd cat of its layer, mounts, and its files equal their
# sources; a missing tag is refused and creates no device; obd
# detach removes both devices.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

ref=$OBD_TOP/tests/data/overlaybd-ref
sha_l1l2=fde68d5fbdf5f9582175537e5b942a8debbf33a5d4959cd24fc79adbf424bd81
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
reg_test_begin 33-attach-ref
RA=127.0.0.1:$REG	# host:port of the registry in REFs
cat > svc.json <<JSON
{ "logConfig": { "logLevel": 1 },
  "cacheConfig": { "cacheDir": "$d/cache", "refillSize": 262144 },
  "fetchConfig": { "requestTimeout": 20, "syncIntervalMs": 50 } }
JSON
if fetchd_start; then ok "overlaybd-fetchd runs"; else bail "overlaybd-fetchd does not start: $(tail -5 fetchd.log)"; fi

# --- the reference stack, by tag -------------------------------------------------
check "push the reference layers" bash -c \
	"'$obd' push http://$RA/ref/l1l2:v1 '$ref/l1.commit.lz4.zfile' '$ref/l2.commit.lz4.zfile.tar' > ref.json"
dev=$("$obd" attach --service-config svc.json --name a-ref "http://$RA/ref/l1l2:v1" 2>attach.err)
check_eq "obd attach REF (tag) prints the device" "$dev" /dev/mapper/a-ref
[ -n "$dev" ] || diag "$(cat attach.err)"
vm_on_exit dmsetup remove a-ref
check_eq "reference stack by tag: sha256" "$(devsha a-ref)" "$sha_l1l2"
check "the derived config equals what push printed" $PY -c "
import glob, json, sys
c = glob.glob('$d/cache/images/sha256:*.config.v1.json')
sys.exit(len(c) != 1 or json.load(open(c[0])) != json.load(open('ref.json')))"

# --- an ext4 image, by digest --------------------------------------------------------
$PY - <<'EOF' || bail "cannot make the tree"
import os, random
random.seed(33)
for i in range(60):
    d = "tree/d%d" % (i % 7)
    os.makedirs(d, exist_ok=True)
    n = random.choice([0, 1, 4096, 5000, 70000])
    open("%s/f%02d" % (d, i), "wb").write(os.urandom(n))
EOF
check "mkfs.ext4 -d over the tree, import, commit -z -t" bash -c "
	truncate -s 16M fs.raw && mkfs.ext4 -q -F -b 4096 -d tree fs.raw &&
	'$obd' create fs.data fs.index 16M && '$obd' import --no-progress fs.data fs.index fs.raw &&
	'$obd' commit --no-progress -z -t fs.data fs.index fs.tar"
check "push the ext4 image (--json)" bash -c "'$obd' push --json http://$RA/fs/ext4:v1 fs.tar > fs.json"
md=$($PY -c "import json; print(json.load(open('fs.json'))['manifest']['digest'])")
dev=$("$obd" attach --service-config svc.json --name a-fs "http://$RA/fs/ext4@$md" 2>attach.err)
check_eq "obd attach REF@sha256 prints the device" "$dev" /dev/mapper/a-fs
[ -n "$dev" ] || diag "$(cat attach.err)"
vm_on_exit dmsetup remove a-fs
check "its config is <cacheDir>/images/$md.config.v1.json" test -f "cache/images/$md.config.v1.json"
mkdir -p mnt
modprobe ext4 2>/dev/null
check "mount it read-only" mount -t ext4 -o ro,noload /dev/mapper/a-fs mnt
vm_on_exit umount "$d/mnt"
bad=$(cd tree && find . -type f -print0 | xargs -0 sha256sum | (cd ../mnt && sha256sum -c --quiet 2>&1) | wc -l)
check_eq "every file equals its source ($(find tree -type f | wc -l) files)" "$bad" 0
umount mnt
check_eq "ext4 device by digest: sha256 = obd cat" "$(devsha a-fs)" \
	"$("$obd" cat fs.tar | sha256sum | cut -d' ' -f1)"

# --- refusals create nothing ---------------------------------------------------------
out=$("$obd" attach --service-config svc.json --name a-bad "http://$RA/fs/ext4:nope" 2>&1)
check_eq "a missing tag: exit 1" "$?" 1
check "  ... naming it" grep -q "manifests/nope: manifest: HTTP 404" <<< "$out"
check "  ... and no device" bash -c "! dmsetup info a-bad >/dev/null 2>&1"

# --- detach ------------------------------------------------------------------------------
check "obd detach a-ref" "$obd" detach a-ref
check "obd detach /dev/mapper/a-fs" "$obd" detach /dev/mapper/a-fs
check "both gone" bash -c "! dmsetup info a-ref >/dev/null 2>&1 && ! dmsetup info a-fs >/dev/null 2>&1"
fetchd_stop

vm_dmesg_check 33-attach-ref
tap_done
