#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# debug-failslab.sh: the fault-injection pass of `make check-debug` (debug kernel only;
# not an NN- test, so `make check` never runs it).
#   scripts/vm-run.sh --kernel debug -- bash tests/vm/debug-failslab.sh
# failslab fails slab allocations at random, confined by its stack-trace filter
# (require-start/-end = the module's core image from /proc/modules) to allocations
# with dm-overlaybd's code on the stack: the module's own kmalloc/kmem_cache calls and
# what the kernel allocates on their behalf. Three phases, each with failures on:
#   - table loads (local two-layer stack): each create either succeeds and the device
#     reads the right bytes (checked with failures off), or fails with nothing left
#   - misses (cold remote layers, the stand-in daemon of 30-miss.sh): each direct read
#     either returns the right bytes or an error; afterwards, failures off, the whole
#     device reads right (nothing stuck, nothing wrong cached)
#   - upper writes (append upper): each 4 KiB write + fsync either is acknowledged or
#     fails; afterwards, failures off, every acknowledged block reads back, also after
#     a remove and a reopen from the files, and a failed one shows old or new bytes
# vm-run.sh then checks dmesg (no oops, KASAN, lockdep...) and kmemleak (the module is
# unloaded at exit, so whatever it lost is unreferenced). The number of failures
# injected in each phase is counted (failslab's "times" counts down) and must not be 0.
# OBD_FAILSLAB_P (percent, default "1 5 20 100": table loads cycle through them).
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/upper_lib.sh
. "$OBD_TOP/tests/vm/upper_lib.sh"
R="$PY $OBD_TOP/tests/vm/remote_lib.py"
FS=/sys/kernel/debug/failslab
[ -e "$FS/require-start" ] ||
	bail "no $FS/require-start: not the debug kernel (CONFIG_FAILSLAB, CONFIG_FAULT_INJECTION_STACKTRACE_FILTER)"
vm_test_begin debug-failslab
seed=${OBD_SEED:-$(date +%s)}
diag "OBD_SEED=$seed"
RANDOM=$seed
read -ra PS <<<"${OBD_FAILSLAB_P:-1 5 20 100}"

# --- failslab, confined to the module ------------------------------------------------
# /proc/modules: name size refs deps state address [taints]; the taints field is
# there for a tainted module (ours, out of tree: "(O)") and must not join the address.
read -r _ msize _ _ _ mbase _ < <(grep '^dm_overlaybd ' /proc/modules) || bail "dm_overlaybd not in /proc/modules"
case "$mbase" in 0x0000000000000000|0x0|'') bail "/proc/modules hides the module address (kptr_restrict)" ;; esac
# Kernel addresses are above 2^63: bash's signed arithmetic wraps, printf %x prints the
# right bits, and the debugfs files read any base (kstrtoull base 0).
mstart=$(printf '0x%x' $((mbase))) mend=$(printf '0x%x' $((mbase + msize)))
diag "module core $mbase size $msize: failures only with [$mstart, $mend) on the stack"
TIMES=1000000000
fs_set() { echo "$2" >"$FS/$1" || bail "cannot set failslab $1=$2"; }
fs_off() { echo 0 >"$FS/probability"; }
fs_on() {	# percent
	fs_set probability 0
	fs_set times $TIMES
	fs_set interval 1
	fs_set space 0
	fs_set verbose 0
	fs_set ignore-gfp-wait N
	fs_set cache-filter N
	fs_set task-filter N
	fs_set stacktrace-depth 32
	fs_set reject-start 0
	fs_set reject-end 0
	fs_set require-start $mstart
	fs_set require-end $mend
	fs_set probability "$1"
}
injected() { echo $((TIMES - $(cat "$FS/times"))); }
vm_on_exit fs_off

# The filter works: at 100 % everything outside the module still allocates.
fs_on 100
check "at 100 %, allocations outside the module succeed (fork, exec, files)" \
	bash -c 'ls / >/dev/null && sha256sum /etc/os-release >/dev/null && echo x > f && rm f'
check_eq "... and none of them was failed" "$(injected)" 0
fs_off

check "obd cat of the lower stack" "$obd" cat --no-progress -o lower.raw "$L1" "$L2"
want=$(shaof lower.raw)
gone() { ! dmsetup info "$1" >/dev/null 2>&1; }

# --- table loads -------------------------------------------------------------------------
ok_n=0 fail_n=0 bad=0 inj=0
for i in $(seq 24); do
	p=${PS[$((i % ${#PS[@]}))]}
	fs_on "$p"
	dmsetup create fsl --readonly --table "0 $len overlaybd 2 $L1 $L2" >/dev/null 2>err.txt
	rc=$?
	inj=$((inj + $(injected)))
	fs_off
	if [ $rc = 0 ]; then
		ok_n=$((ok_n + 1))
		s=$(devsha fsl)
		[ "$s" = "$want" ] || { bad=$((bad + 1)); diag "load $i (p=$p): created, but reads $s"; }
		dmsetup remove fsl || { bad=$((bad + 1)); diag "load $i: remove failed"; }
	else
		fail_n=$((fail_n + 1))
		gone fsl || { bad=$((bad + 1)); diag "load $i (p=$p): refused, but a device is left"; dmsetup remove fsl; }
	fi
done
diag "table loads: $ok_n created, $fail_n refused, $inj failures injected"
check_eq "every table load either worked (right bytes) or was refused, nothing left" $bad 0
check "failures were injected into table loads" test "$inj" -gt 0
check "some table loads were refused" test "$fail_n" -gt 0
check "a table load with every module allocation failing is refused cleanly" bash -c "
	echo 100 > $FS/probability; ! dmsetup create fsl --readonly --table '0 $len overlaybd 2 $L1 $L2' 2>/dev/null
	rc=\$?; echo 0 > $FS/probability; exit \$rc"
check "... and leaves no device" gone fsl
check "with failures off, the stack loads" dmsetup create fsl --readonly --table "0 $len overlaybd 2 $L1 $L2"
check_eq "... and reads right" "$(devsha fsl)" "$want"
dmsetup remove fsl

# --- misses --------------------------------------------------------------------------------
mkdir -p src cache
# shellcheck source=tests/vm/miss_lib.sh
. "$OBD_TOP/tests/vm/miss_lib.sh"
t1=$(entry "$L1") || bail "cache entry"
t2=$(entry "$L2") || bail "cache entry"
start_daemon dm.log || bail "no stand-in daemon"
rtable="0 $len overlaybd 2 $t1 $t2 2 hold_timeout 3"
check "create over two cold remote layers" dmsetup create fsr --readonly --table "$rtable"
vm_on_exit dmsetup remove fsr
good=0 eio=0 bad=0 inj=0 restarts=0
for i in $(seq 0 31); do
	p=${PS[$((RANDOM % ${#PS[@]}))]}
	[ "$p" != 100 ] || p=20	# at 100 % every miss fails: nothing to learn after the first
	kill -0 "$daemon_pid" 2>/dev/null || { start_daemon dm.log && restarts=$((restarts + 1)); }
	fs_on "$p"
	# 32 reads of 64 KiB spread over the 64 MiB device, each a cold miss
	sk=$((i * 32 + RANDOM % 32))
	rm -f rd.bin
	dd if=/dev/mapper/fsr of=rd.bin bs=64K skip=$sk count=1 iflag=direct status=none 2>/dev/null
	rc=$?
	inj=$((inj + $(injected)))
	fs_off
	if [ $rc != 0 ]; then
		eio=$((eio + 1))
	elif [ "$(shaof rd.bin)" = "$(dd if=lower.raw bs=64K skip=$sk count=1 status=none | sha256sum | cut -d' ' -f1)" ]; then
		good=$((good + 1))
	else
		bad=$((bad + 1))
		diag "miss read at 64 KiB unit $sk (p=$p) returned wrong bytes"
	fi
done
kill -0 "$daemon_pid" 2>/dev/null || { start_daemon dm.log && restarts=$((restarts + 1)); }
diag "misses: $good reads right, $eio failed, $inj failures injected, daemon restarted $restarts times"
check_eq "every read under failures returned the right bytes or an error" $bad 0
check "failures were injected into misses" test "$inj" -gt 0
check_eq "failures off: the whole device reads right (nothing stuck or wrongly cached)" "$(devsha fsr)" "$want"
check "remove" dmsetup remove fsr
stop_daemon
start_daemon dm.log || bail "no stand-in daemon"
check "a reopen over the same cache reads right" bash -c "dmsetup create fsr --readonly --table '$rtable' &&
	[ \"\$(sha256sum /dev/mapper/fsr | cut -d' ' -f1)\" = $want ] && dmsetup remove fsr"
stop_daemon

# --- upper writes -------------------------------------------------------------------------
check "obd create (append upper)" "$obd" create "$d/up.data" "$d/up.index" 64M
check "dmsetup create with the upper" dmsetup create fsu --table "$(table "$d/up.data" "$d/up.index")"
vm_on_exit dmsetup remove fsu
acked=() failed=() inj=0
for i in $(seq 0 31); do
	blk=$((i * 512 + RANDOM % 512))	# distinct 4 KiB blocks, one in each 2 MiB
	head -c 4096 /dev/urandom >"w$blk"
	p=${PS[$((RANDOM % ${#PS[@]}))]}
	[ "$p" != 100 ] || p=20
	fs_on "$p"
	if dd if="w$blk" of=/dev/mapper/fsu bs=4096 seek=$blk count=1 oflag=direct conv=fsync status=none 2>/dev/null; then
		acked+=("$blk")
	else
		failed+=("$blk")
	fi
	inj=$((inj + $(injected)))
	fs_off
done
diag "upper writes: ${#acked[@]} acknowledged, ${#failed[@]} failed, $inj failures injected"
diag "status: $(dmsetup status fsu)"
check "failures were injected into upper writes" test "$inj" -gt 0
# O_DIRECT past the page cache for the device; lower.raw's file system (tmpfs) refuses it
blkof() {
	local direct=
	[ -b "$1" ] && direct=iflag=direct
	dd if="$1" bs=4096 skip="$2" count=1 $direct status=none | sha256sum | cut -d' ' -f1
}
verify_writes() {	# device-path what
	local b lost=0 torn=0
	for b in ${acked[@]+"${acked[@]}"}; do
		[ "$(blkof "$1" "$b")" = "$(shaof "w$b")" ] || { lost=$((lost + 1)); diag "$2: acknowledged block $b lost"; }
	done
	for b in ${failed[@]+"${failed[@]}"}; do
		case "$(blkof "$1" "$b")" in
		"$(shaof "w$b")"|"$(blkof lower.raw "$b")") ;;
		*) torn=$((torn + 1)); diag "$2: failed write at block $b shows neither old nor new bytes" ;;
		esac
	done
	check_eq "$2: no acknowledged write lost (${#acked[@]})" $lost 0
	check_eq "$2: each failed write shows old or new bytes (${#failed[@]})" $torn 0
}
verify_writes /dev/mapper/fsu "failures off"
check "remove" dmsetup remove fsu
check "reopen from the upper files" dmsetup create fsu --table "$(table "$d/up.data" "$d/up.index")"
verify_writes /dev/mapper/fsu "after the reopen"
check "remove" dmsetup remove fsu

check "the module unloads" vm_unload_module
vm_dmesg_check debug-failslab
tap_done
