#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 56-turbo-crash.sh: a hard reset (QEMU killed) while overlaybd-fetchd
# fetches and inflates the gzip layers of a TurboOCI image (issue #20). By hand:
#   scripts/vm-run.sh --kernel 6.1 --scratch-disk 512 --boots 2 -- bash tests/vm/56-turbo-crash.sh
# Everything lives on the scratch disk's ext4: the registry's storage, the
# blob cache, the gzip cache, the images.
# Boot 1: the three-layer OCI image of tests/tools/turbo-image.py is pushed
# with skopeo, converted with obd convert --turbo-oci and pushed; obd mount of
# the REF on a cold cache; every file is read while the proxy slows the blob
# GETs; once granules of the gunzip entries are durable (bits in a .meta on
# disk), QEMU is killed at a random moment (0-2 s later): refills in flight,
# written, half made durable.
# Boot 2 (the journal replayed, nothing else done): every granule the .meta
# files mark present, in the gunzip entries and in the blob entries, holds
# the right bytes (the decompressed layer, the blob); then a new daemon and
# obd mount of the same REF: every file equals the model, every path of the
# device equals the layers unpacked (debugfs), and the granules again; dmesg
# clean in both boots.
# vm-disk-mb: 512
# vm-boots: 2
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
IMG="$PY $OBD_TOP/tests/tools/turbo-image.py"
[ -x "$obd" ] && [ -x "$fetchd" ] || bail "build/obd or build/overlaybd-fetchd missing: run make first"
[ -x /usr/bin/docker-registry ] || bail "docker-registry missing: scripts/deps.sh installs it"
vm_crash_begin 56-turbo-crash t
modprobe ext4 2>/dev/null
REG_ROOT=$d/reg
reg_start
ok "docker-registry (storage on the scratch disk) and the counting proxy on 127.0.0.1"
RA=127.0.0.1:$REG
REF=http://127.0.0.1:$PX/img:turbo
mkdir -p mnt
turbo_svc
# granules of the gunzip entries whose bits are on disk
gz_durable() {
	$PY - "$d/gz" <<-'PY'
	import glob, sys
	n = 0
	for m in glob.glob(sys.argv[1] + "/sha256:*.meta"):
	    with open(m, "rb") as f:
	        n += sum(bin(b).count("1") for b in f.read()[4096:])
	print(n)
	PY
}

if [ "$OBD_VM_BOOT" = 1 ]; then
	$IMG layout src >/dev/null || bail "cannot make the test image"
	SK=(skopeo copy --quiet --dest-tls-verify=false --preserve-digests)
	check "push the original OCI image (skopeo)" "${SK[@]}" oci:src "docker://$RA/img:orig"
	check "obd convert --turbo-oci" "$obd" convert --turbo-oci --size 1G --no-progress oci:src out
	check "push the TurboOCI image next to it (skopeo)" "${SK[@]}" oci:out "docker://$RA/img:turbo"
	sync
	fetchd_start || bail "overlaybd-fetchd does not start: $(tail -5 fetchd.log)"
	check "obd mount of the REF (cold)" "$obd" mount --service-config svc.json --name t56 "$REF" mnt
	# every GET slowed: refills stay in flight while others are written
	px_fault slow 1000 300
	find mnt -type f -exec cat {} + > /dev/null 2>&1 &
	n=0
	for _ in $(seq 600); do
		n=$(gz_durable)
		[ "$n" -gt 0 ] && break
		sleep 0.1
	done
	check "granules of the gunzip entries became durable before the reset ($n)" test "$n" -gt 0
	diag "refills logged before the kill: $(grep -c 'refill' fetchd.log)"
	vm_kill_now 2000
fi

# --- boot 2: what the reset left --------------------------------------------------
check "every granule marked present after the reset holds the right bytes (gunzip and blob entries)" \
	$IMG granules "$d/cache" "$d/gz" src out
fetchd_start || bail "overlaybd-fetchd does not start: $(tail -5 fetchd.log)"
check "obd mount of the same REF after the reset" "$obd" mount --service-config svc.json --name t56 "$REF" mnt
vm_on_exit "$obd" umount mnt
check "every regular file equals the model" $IMG files src mnt
check "every path of the device equals the layers unpacked (debugfs)" $IMG compare src /dev/mapper/t56
check "obd umount" "$obd" umount mnt
check "every granule marked present holds the right bytes, after the reads" \
	$IMG granules "$d/cache" "$d/gz" src out
fetchd_stop
check_eq "no device left behind" "$(dmsetup ls --target overlaybd 2>&1)" "No devices found"
vm_dmesg_check "56-turbo-crash-boot$OBD_VM_BOOT"
tap_done
