#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 22-qemu-io.sh: an overlaybd device as a VM disk path for QEMU's tools.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/22-qemu-io.sh
# A two-layer stack with known patterns (base ZFile lz4: 0xab, random, 0x11;
# upper tar(ZFile zstd 16K) of a different, odd virtual size: 0xcd over the base,
# a zeroed range hiding 0x11, a 512-byte write at the last sector) is served by
# the target, then:
#   - qemu-img info: raw, virtual size = obd info's
#   - qemu-img convert -O raw (and -O qcow2 + qemu-img compare) = obd cat
#   - qemu-io read -P on each known range (buffered and -n, O_DIRECT), a wrong
#     pattern is detected, read -v dumps the bytes at a layer boundary.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

obd=$OBD_TOP/build/obd
param=/sys/module/dm_overlaybd/parameters/layers_parsed
[ -x "$obd" ] || bail "$obd missing: run make first"
command -v qemu-io >/dev/null && command -v qemu-img >/dev/null || bail "qemu-io / qemu-img missing"
vm_test_begin 22-qemu

fill() { head -c "$2" /dev/zero | tr '\0' "\\$(printf '%03o' "$1")"; }
K=1024 M=$((1024 * 1024))
VS=$((8 * M + 1536))
fill 0xab $M >ab.bin
head -c $M /dev/urandom >rnd.bin
fill 0x11 $((64 * K)) >11.bin
fill 0xcd $((8 * K)) >cd.bin
fill 0xee 512 >ee.bin
check "build the stack" bash -c "
	'$obd' create b.data b.index 8M &&
	'$obd' write b.data b.index --offset 0 ab.bin &&
	'$obd' write b.data b.index --offset 2M rnd.bin &&
	'$obd' write b.data b.index --offset 4M 11.bin &&
	'$obd' commit --no-progress -z b.data b.index base.zfile &&
	'$obd' create u.data u.index $VS &&
	'$obd' write u.data u.index --offset 512K cd.bin &&
	'$obd' discard u.data u.index --offset $((4 * M + 16 * K)) --length 16K &&
	'$obd' write u.data u.index --offset $((VS - 512)) ee.bin &&
	'$obd' commit --no-progress -z -t --algorithm zstd --bs 16 u.data u.index upper.tar &&
	'$obd' cat --no-progress -o want.img base.zfile upper.tar" || bail "cannot build the stack"
want=$(sha256sum <want.img | cut -d' ' -f1)
check_eq "obd cat size = upper's virtual size" "$(stat -c %s want.img)" "$VS"

out=$("$obd" attach --name obd22 "$d/base.zfile" "$d/upper.tar")
check_eq "obd attach" "$out" /dev/mapper/obd22 && vm_on_exit "$obd" detach obd22
dev=/dev/mapper/obd22

# --- qemu-img ----------------------------------------------------------------------
info=$(qemu-img info --output=json "$dev")
check_eq "qemu-img info: format raw" "$(jq -r '.format' <<<"$info")" raw
check_eq "qemu-img info: virtual size" "$(jq -r '.["virtual-size"]' <<<"$info")" "$VS"
check "qemu-img convert -O raw" qemu-img convert -O raw "$dev" out.raw
check_eq "converted raw = obd cat" "$(sha256sum <out.raw | cut -d' ' -f1)" "$want"
check "qemu-img convert -t none -O qcow2" qemu-img convert -T none -O qcow2 "$dev" out.qcow2
check "qemu-img compare qcow2 vs obd cat" qemu-img compare -f qcow2 -F raw out.qcow2 want.img
check "qemu-img compare device vs obd cat" qemu-img compare -f raw -F raw "$dev" want.img

# --- qemu-io: known patterns -------------------------------------------------------------
# <pattern> <offset> <length>, covering base data, upper overrides, zeroed and holes
pats=(
	"0xab 0 512k" "0xcd 512k 8k" "0xab 520k 504k" "0 1M 1M" "0x11 4M 16k"
	"0 $((4 * M + 16 * K)) 16k" "0x11 $((4 * M + 32 * K)) 32k" "0 $((4 * M + 64 * K)) 3M"
	"0 $((8 * M - 4096)) 4096" "0 $((8 * M)) 1024" "0xee $((VS - 512)) 512"
)
for mode in "" "-n"; do
	cmds=()
	for p in "${pats[@]}"; do cmds+=(-c "read -P $p"); done
	out=$(qemu-io -r -f raw $mode "${cmds[@]}" "$dev" 2>&1)
	rc=$?
	nread=$(grep -c '^read [0-9]*/[0-9]* bytes' <<<"$out")
	if [ "$rc" = 0 ] && [ "$nread" = "${#pats[@]}" ] && ! grep -q 'failed' <<<"$out"; then
		ok "qemu-io ${mode:-(buffered)}: ${#pats[@]} pattern reads verified"
	else
		not_ok "qemu-io ${mode:-(buffered)}: pattern reads (exit $rc, $nread reads)"
		diag "$(grep -i 'fail\|error' <<<"$out")"
	fi
done
out=$(qemu-io -r -f raw -n -c "read -P 0xab 512k 4k" "$dev" 2>&1)
check "qemu-io detects a wrong pattern (0xab where the upper has 0xcd)" \
	bash -c "[ $? != 0 ] && grep -q 'Pattern verification failed' <<<'$out'"
# the random MiB against obd cat, through read -v
v=$(qemu-io -r -f raw -n -c "read -v $((2 * M + 4096 - 16)) 32" "$dev" | grep '^0' |
	cut -c11-58 | tr -d ' \n')
check_eq "qemu-io read -v across a 4 KiB boundary of random data" "$v" \
	"$(dd if=want.img bs=32 count=1 skip=$((2 * M + 4096 - 16)) iflag=skip_bytes status=none | od -An -tx1 -v | tr -d ' \n')"
v=$(qemu-io -r -f raw -c "read -v $((512 * K - 16)) 32" "$dev" | grep '^0' | cut -c11-58 | tr -d ' \n')
check_eq "qemu-io read -v across the base/upper boundary" "$v" "$(printf 'ab%.0s' $(seq 16))$(printf 'cd%.0s' $(seq 16))"
check "qemu-io refuses to write (read-only device)" \
	bash -c "! qemu-io -f raw -c 'write -P 0x55 0 4k' '$dev' 2>&1 | grep -q '^wrote'"
check_eq "content unchanged" "$(sha256sum <"$dev" | cut -d' ' -f1)" "$want"
st=$(dmsetup status obd22)
check "status: no errors ($st)" bash -c "[[ '$st' =~ crc_errors\ 0\ io_errors\ 0\ remote\ 0\ pending\ 0\ fetched\ 0\ daemon\ [01]$ ]]"

check "obd detach" "$obd" detach obd22
check_eq "no parsed layers left" "$(cat $param)" 0
check "rmmod" rmmod dm_overlaybd
vm_dmesg_check 22-qemu
tap_done
