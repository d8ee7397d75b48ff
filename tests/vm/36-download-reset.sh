#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 36-download-reset.sh: a multi-layer image downloaded in the background
# (download{} in its config.v1.json) is complete for good: reads need no
# daemon, and after a hard reset (QEMU killed) neither a daemon nor the
# registry. Two boots on one scratch disk:
#   scripts/vm-run.sh --kernel 6.1 --scratch-disk 128 --boots 2 -- bash tests/vm/36-download-reset.sh
# Boot 1: registry and cache on the disk, a 3-layer image (uncompressed, zstd
# ZFile, tar(lz4 ZFile)) pushed, fetchd, obd attach, wait until every entry
# is marked complete; fetchd stopped, the device read whole (no daemon); a
# read runs when QEMU is killed.
# Boot 2: no registry, no daemon: every entry still complete and right
# (tests/tools/cache-check.py), the image attaches and reads to obd cat's
# sha256, status daemon 0, no I/O error; dmesg clean.
# vm-disk-mb: 128
# vm-boots: 2
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

CHECK=$OBD_TOP/tests/tools/cache-check.py
vm_crash_begin 36-download-reset t
REG_ROOT=$d/reg
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
[ -x "$obd" ] && [ -x "$fetchd" ] || bail "build/obd or build/overlaybd-fetchd missing: run make first"
layers=(g.commit u.zstd t.tar)

if [ "$OBD_VM_BOOT" = 1 ]; then
	[ -x /usr/bin/docker-registry ] || bail "docker-registry missing: scripts/deps.sh installs it"
	reg_start
	check "make an uncompressed base, a zstd and a tar(lz4) upper" bash -c "
		head -c 4194304 /dev/urandom > g.raw && head -c 524288 /dev/urandom > u.bin &&
		'$obd' create g.data g.index 8M && '$obd' import --no-progress g.data g.index g.raw &&
		'$obd' commit --no-progress g.data g.index g.commit &&
		'$obd' create u.data u.index 8M && '$obd' write u.data u.index --offset 1M u.bin &&
		'$obd' commit --no-progress -z --algorithm zstd u.data u.index u.zstd &&
		'$obd' create t.data t.index 8M && '$obd' write t.data t.index --offset 3M u.bin &&
		'$obd' commit --no-progress -z -t t.data t.index t.tar" || bail "layers"
	"$obd" cat --no-progress "${layers[@]}" | sha256sum | cut -d' ' -f1 > want.sha
	check "obd push" bash -c "'$obd' push http://127.0.0.1:$REG/dl/img:v1 ${layers[*]} > direct.json" ||
		bail "push"
	$PY - <<-'PYEOF' || bail "config"
	import json
	c = json.load(open("direct.json"))
	c["download"] = {"enable": True, "delay": 0, "delayExtra": 0, "maxMBps": 0}
	json.dump(c, open("img.json", "w"))
	PYEOF
	cat > svc.json <<-JSON
	{ "logConfig": { "logLevel": 1 },
	  "cacheConfig": { "cacheDir": "$d/cache", "refillSize": 65536 },
	  "fetchConfig": { "requestTimeout": 20, "syncIntervalMs": 50 } }
	JSON
	if fetchd_start; then ok "fetchd starts"; else bail "fetchd: $(tail -5 fetchd.log)"; fi
	check "attach the image" "$obd" attach --service-config svc.json --name dl img.json || bail "attach"
	n=0
	for _ in $(seq 240); do
		n=0
		for f in "${layers[@]}"; do
			[ "$(meta_flags "cache/sha256:$(sha256sum "$f" | cut -d' ' -f1)")" = 1 ] && n=$((n + 1))
		done
		[ "$n" -eq 3 ] && break
		sleep 0.5
	done
	check_eq "all 3 layers downloaded in the background and marked complete" "$n" 3
	fetchd_stop
	check_eq "daemon stopped: the device reads whole" "$(devsha dl)" "$(cat want.sha)"
	check_eq "no I/O error" "$(stat_field dl io_errors)" 0
	sync
	# a reader is running when the VM dies
	(while :; do dd if=/dev/mapper/dl of=/dev/null bs=64K iflag=direct status=none; done) &
	vm_kill_now 1000
fi

# --- boot 2: no registry, no daemon -------------------------------------------------
[ -s want.sha ] || bail "boot 1 left no want.sha"
for f in "${layers[@]}"; do
	c=cache/sha256:$(sha256sum "$f" | cut -d' ' -f1)
	check_eq "$f: entry still complete after the reset" "$(meta_flags "$c")" 1
	check "$f: every marked granule right, all present" bash -c \
		"out=\$($PY '$CHECK' '$c' '$f') && read -r _ n _ <<< \"\$out\" && [ \"\$n\" -eq \$(stat -c %s '$f') ]"
done
check "attach with no registry and no daemon" timeout 60 "$obd" attach --service-config svc.json --name dl img.json
check_eq "reads to obd cat's sha256" "$(devsha dl)" "$(cat want.sha)"
check_eq "status: daemon 0" "$(stat_field dl daemon)" 0
check_eq "no I/O error" "$(stat_field dl io_errors)" 0
dmsetup remove dl
vm_dmesg_check "36-download-reset-boot$OBD_VM_BOOT"
tap_done
