#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 39-invalidate.sh: a range the daemon takes back is taken back in the
# kernel too (OBD_MSG_INVALIDATE), with the real module, overlaybd-fetchd
# and docker-registry behind the fault proxy in the VM. An uncompressed
# layer (no ZFile CRC to catch anything) gets one GET with a byte flipped;
# a reader reads the wrong bytes through the device, which stays open (as
# a mounted file system keeps it); once the blob is complete the sha256
# check finds the mismatch, the daemon sends INVALIDATE, and the same
# reader reads the right bytes, buffered and O_DIRECT, without a detach:
#   A  no background download: the blob completes by misses and a
#      prefetch; after the mismatch only the kernel's new misses bring the
#      right bytes (the kernel forgot the range was present);
#   B  the image's background download completes it, finds the mismatch
#      and downloads again; the device's page cache held the wrong bytes
#      and was dropped;
#   D  the cache on a file system whose writes fail (dm-flakey,
#      error_writes, under ext4 without a journal): the fetched bytes land
#      in the page cache, their fdatasync fails, the daemon takes the range
#      back and the kernel forgets it; once writes work again the device
#      reads right;
#   C  the kernel alone (tests/vm/remote_lib.py's stand-in daemon):
#      malformed INVALIDATEs (range, ids, status, reserved, version, size)
#      are refused with EINVAL, a valid one makes a complete blob miss.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/39-invalidate.sh
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
reg_test_begin 39-invalidate

check "two 2 MiB uncompressed layers" bash -c "
	$(declare -f rand_layer); obd='$obd' PY='$PY'
	rand_layer a 2 39 && rand_layer b 2 40" || bail "layers"
check "pushed" bash -c "
	'$obd' push http://127.0.0.1:$REG/inval/a:v1 a.commit > a-direct.json &&
	'$obd' push http://127.0.0.1:$REG/inval/b:v1 b.commit > b-direct.json" || bail "push"
via_proxy a-direct.json A.json
via_proxy b-direct.json b.json
$PY - <<'PYEOF' || bail "cannot write B.json"
import json
c = json.load(open("b.json"))
c["download"] = {"enable": True, "delay": 2, "delayExtra": 0, "maxMBps": 0, "blockSize": 262144}
json.dump(c, open("B.json", "w"))
PYEOF
cat > svc.json <<JSON
{ "logConfig": { "logLevel": 1 },
  "cacheConfig": { "cacheDir": "$d/cache", "refillSize": 65536 },
  "fetchConfig": { "requestTimeout": 20, "syncIntervalMs": 50, "readaheadMB": 0 },
  "download": { "enable": false } }
JSON
if fetchd_start; then ok "fetchd starts"; else bail "fetchd: $(tail -5 fetchd.log)"; fi
sha() { sha256sum | cut -d' ' -f1; }
want_a=$("$obd" cat --no-progress a.commit | sha)
want_b=$("$obd" cat --no-progress b.commit | sha)
ent_a=$d/cache/sha256:$(sha256sum a.commit | cut -d' ' -f1)
ent_b=$d/cache/sha256:$(sha256sum b.commit | cut -d' ' -f1)
# wait_log PATTERN [TENTHS]: until fetchd.log has a line matching it
wait_log() {
	local i
	for i in $(seq "${2:-600}"); do
		grep -q "$1" fetchd.log && return 0
		sleep 0.1
	done
	return 1
}

# --- A: misses only ------------------------------------------------------------------------
check "attach A (no background download)" "$obd" attach --service-config svc.json --name ia A.json ||
	bail "attach A"
exec 7< /dev/mapper/ia	# the device stays open: its page cache lives as long as this
vm_dmesg_mark 39-a
px_fault corrupt 1	# the first data GET from here: one byte of its body flipped
bad=$(sha < /dev/mapper/ia)
check "A: the reader read wrong bytes (the corrupted GET)" test "$bad" != "$want_a"
# what no device read asked for (LSMT padding, index tail): the blob completes, the check runs
size_a=$(stat -c %s a.commit)
check "A: prefetch the rest of the blob" dmsetup message ia 0 prefetch 0 0 "$size_a"
check "A: the daemon found the sha256 mismatch" wait_log "($ent_a): sha256 mismatch"
check "A: ... and took the blob back from the kernel" wait_log "($ent_a): \[0, +$size_a) taken back"
check "A: the kernel took it back" bash -c \
	"for i in \$(seq 50); do dmesg | grep -q '${ent_a##*/}: the fetch daemon took bytes 0+$size_a back' && exit 0; sleep 0.1; done; exit 1"
check_eq "A: the same reader now reads the right bytes (buffered)" "$(sha < /dev/mapper/ia)" "$want_a"
check_eq "A: and with O_DIRECT" \
	"$(dd if=/dev/mapper/ia bs=64K iflag=direct status=none | sha)" "$want_a"
dmsetup message ia 0 prefetch 0 0 "$size_a"
check "A: the bytes fetched again verify" wait_log "($ent_a): complete, sha256 verified"
check "A: the cache file holds the layer" cmp -s "$ent_a" a.commit
exec 7<&-
vm_dmesg_check 39-a

# --- B: the background download finds it ---------------------------------------------------
check "attach B (download{}: 2 s delay)" "$obd" attach --service-config svc.json --name ib B.json ||
	bail "attach B"
exec 7< /dev/mapper/ib
vm_dmesg_mark 39-b
px_fault corrupt 1
bad=$(sha < /dev/mapper/ib)
check "B: the reader read wrong bytes (the corrupted GET)" test "$bad" != "$want_b"
check "B: the download's sha256 check found the mismatch" \
	wait_log "($ent_b): background download attempt 1 of [0-9]* failed: sha256 mismatch"
for _ in $(seq 300); do
	[ "$(meta_flags "$ent_b")" = 1 ] && break
	sleep 0.2
done
check_eq "B: downloaded again and marked complete" "$(meta_flags "$ent_b")" 1
check_eq "B: the same reader now reads the right bytes (buffered)" "$(sha < /dev/mapper/ib)" "$want_b"
check_eq "B: and with O_DIRECT" \
	"$(dd if=/dev/mapper/ib bs=64K iflag=direct status=none | sha)" "$want_b"
exec 7<&-
vm_dmesg_check 39-b

if vm_dmesg_since 39-a | grep -q '/dev/overlaybd: .*refused'; then
	not_ok "no channel message refused"
else
	ok "no channel message refused"
fi

# --- D: a failed fdatasync of fetched bytes takes them back --------------------------------
fetchd_stop
modprobe dm-flakey 2>/dev/null
modprobe ext4 2>/dev/null
vm_dmesg_mark 39-d
truncate -s 64M flaky.img
lo=$(vm_loop_attach "$d/flaky.img") || bail "losetup"
vm_on_exit losetup -d "$lo"
fsz=$(blockdev --getsz "$lo")
check "D: a dm device over a loop device, ext4 without a journal, mounted" bash -c "
	dmsetup create obd39fl --table '0 $fsz linear $lo 0' &&
	mkfs.ext4 -q -O ^has_journal /dev/mapper/obd39fl && mkdir -p fl && mount /dev/mapper/obd39fl fl"
vm_on_exit dmsetup remove obd39fl
vm_on_exit umount "$d/fl"
sed "s|\"$d/cache\"|\"$d/fl/cache\"|" svc.json > svcd.json
if fetchd_start svcd.json; then ok "D: fetchd with its cache there"; else bail "fetchd: $(tail -5 fetchd.log)"; fi
check "D: attach A again, cold" "$obd" attach --service-config svcd.json --name id A.json
ent_d=$d/fl/cache/${ent_a##*/}
flaky() {	# flaky 1|0: the cache's writes fail (reads pass) / work
	local t="0 $fsz linear $lo 0"
	[ "$1" = 0 ] || t="0 $fsz flakey $lo 0 0 1 1 error_writes"
	# --noflush: a flush through the failing table would fail the suspend
	dmsetup suspend --noflush obd39fl && dmsetup load obd39fl --table "$t" && dmsetup resume obd39fl
}
check "D: the cache's writes fail from here" flaky 1
dd if=/dev/mapper/id bs=64K skip=8 count=2 iflag=direct status=none > /dev/null
check "D: the daemon's fdatasync failed" wait_log "($ent_d): fdatasync: .*fetched again"
check "D: ... the kernel took the range back" bash -c \
	"for i in \$(seq 50); do dmesg | grep -q '${ent_d##*/}: the fetch daemon took bytes [0-9]*+[0-9]* back' && exit 0; sleep 0.1; done; exit 1"
check "D: writes work again" flaky 0
check_eq "D: the device reads right (O_DIRECT)" \
	"$(dd if=/dev/mapper/id bs=64K iflag=direct status=none | sha)" "$want_a"
check "D: detach" "$obd" detach id
fetchd_stop
vm_dmesg_check 39-d

# --- the kernel alone: malformed INVALIDATEs refused, a valid one makes a complete blob miss ---
fetchd_stop
vm_dmesg_mark 39-c
mkdir -p src && cp a.commit "src/${ent_a##*/}" && cp b.commit "src/${ent_b##*/}"
$PY "$OBD_TOP/tests/vm/remote_lib.py" daemon src inv.log --inval-test 2>> inv.err &
stand_in=$!
vm_on_exit kill $stand_in
for _ in $(seq 100); do
	[ "$(grep -c '^INVAL valid' inv.log 2>/dev/null)" = 2 ] && break
	sleep 0.1
done
check_eq "C: the stand-in daemon tried 13 malformed INVALIDATEs and a valid one per blob" \
	"$(grep -c '^INVAL ' inv.log)" 28
check "C: the kernel refused every malformed one with EINVAL and took the valid ones" \
	bash -c "! grep '^INVAL ' inv.log | grep -v ': ok\$'"
grep '^INVAL .*not ok' inv.log | head -5 | while read -r l; do diag "$l"; done
check_eq "C: A reads right (O_DIRECT)" "$(dd if=/dev/mapper/ia bs=64K iflag=direct status=none | sha)" "$want_a"
check "C: ... through misses: the complete blob was taken back" grep -q '^READ ' inv.log
kill $stand_in
wait $stand_in 2>/dev/null
vm_dmesg_check 39-c
dmsetup remove ia
dmsetup remove ib
fetchd_stop
check "the daemon stopped cleanly" bash -c "! grep -qi 'assert\|sanitizer\|segv' fetchd.log"
tap_done
