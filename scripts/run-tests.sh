#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Runs the test suites and adds up their TAP counts.
#
#   scripts/run-tests.sh all|unit|tools|fetchd|san|fuzz|pkg|host|vm|debug [...]
#   ("all" is every suite but debug, the debug-kernel run of make check-debug;
#   "host" is all of it before the VM suite: unit, tools, fetchd, san, fuzz, pkg;
#   pkg builds the Debian packages and boots each test kernel with them)
#
# Every test program or script prints TAP lines and a closing
# "# passed: P failed: F" line; a suite whose program exits non-zero without
# reporting a failure still counts as one failure (a crash is a failure).
# The last line is "N passed, N failed" for CI.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
logdir=${OBD_TEST_LOGS:-$top/build/test-logs}
mkdir -p "$logdir"
jobs=${OBD_JOBS:-$(nproc)}

# One line per test program: "<passed> <failed> <name>". A file, not shell
# variables, so suites run in parallel subshells add up too.
results=$logdir/results
: > "$results"

# run_one NAME CMD...: run, tee to a log, add its counts.
run_one() {
	local name=$1; shift
	local log="$logdir/${name//\//_}.log"
	local start=$SECONDS rc
	"$@" >"$log" 2>&1
	rc=$?
	account "$name" "$log" "$rc" $((SECONDS - start))
}

# account NAME LOG RC SECS: add the counts of a finished test's log, say how it went.
account() {
	local name=$1 log=$2 rc=$3 secs=$4 p f
	p=$(sed -n 's/^# passed: \([0-9]*\) failed: \([0-9]*\).*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^# passed: \([0-9]*\) failed: \([0-9]*\).*/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	echo "$p $f $name" >> "$results"
	if [ "$f" -ne 0 ]; then
		printf 'FAIL %-40s %4d passed %3d failed  (%ds, log %s)\n' "$name" "$p" "$f" \
			"$secs" "$log"
		grep -E '^(not ok|Bail out|# )' "$log" | grep -v '^# passed' | head -n 40 | sed 's/^/     /'
		if ! grep -qE '^(not ok|Bail out)' "$log"; then
			tail -n 30 "$log" | sed 's/^/     /'
		fi
	else
		printf 'ok   %-40s %4d passed  (%ds)\n' "$name" "$p" "$secs"
	fi
}

build() {
	local out
	if ! out=$(make -s -j"$jobs" "$@" 2>&1); then
		echo "$out"
		echo "build failed: make $*"
		echo "0 1 build:$*" >> "$results"
		return 1
	fi
}

suite_unit() {
	local dir=${1:-build} t
	for t in "$dir"/tests/test_*; do
		[ -x "$t" ] || continue
		case "$t" in *.d|*.o) continue;; esac
		run_one "unit${dir#build}/$(basename "$t")" "$t"
	done
}

suite_tools() {
	local obd=${1:-$top/build/obd} s
	for s in tests/tools/*.sh; do
		[ -f "$s" ] || continue
		run_one "tools${2:-}/$(basename "$s" .sh)" env OBD="$obd" bash "$s"
	done
}

# Host-side daemon tests (tests/fetchd/*.sh): overlaybd-fetchd against a
# real registry on 127.0.0.1 and a kernel stand-in on a socket.
# suite_fetchd [DIR [SUFFIX [K/N]]]: K/N runs only every Nth file from the
# Kth (1-based, in name order), so N streams share the files out.
suite_fetchd() {
	local dir=${1:-$top/build} part=${3:-1/1} s i=0
	for s in tests/fetchd/*.sh; do
		[ -f "$s" ] || continue
		i=$((i + 1))
		[ $(((i - ${part%/*}) % ${part#*/})) -eq 0 ] || continue
		run_one "fetchd${2:-}/$(basename "$s" .sh)" env OBD="$dir/obd" \
			FETCHD="$dir/overlaybd-fetchd" bash "$s"
	done
}

san_env() {
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
}

suite_san() {
	build SAN=1 all || return
	san_env
	suite_unit build-san
	suite_tools "$top/build-san/obd" "-san"
	suite_fetchd "$top/build-san" "-san"
}

# make check's short run: 10 s a target (make fuzz runs them for longer).
suite_fuzz() {
	run_one "fuzz/short" env FUZZ_SECONDS="${FUZZ_SECONDS:-10}" scripts/fuzz.sh short
}

# The host suites of `all` in seven streams at once, after both builds: the
# CLI tests (CPU-bound), the daemon tests (mostly waiting on daemons,
# registries and timeouts: about 40 % of a core each) in two streams of
# alternate files, plain and sanitized, and the package check. The fuzz run
# follows the second plain daemon stream and the sanitized unit tests the
# second sanitized one, so that the streams end about together. They share
# nothing (own build trees, temp dirs, free ports, per-process user names).
# The Debian packages built, installed in a clean root, booted on both test
# kernels, upgraded and purged (scripts/pkg-check.sh).
suite_pkg() {
	run_one "pkg/check" scripts/pkg-check.sh
}

suite_host() {
	local plain=0 san=0

	build all && plain=1
	build SAN=1 all && san=1
	if [ $plain = 1 ]; then
		( suite_unit; suite_tools ) &
		suite_fetchd "$top/build" "" 1/2 &
		( suite_fetchd "$top/build" "" 2/2; suite_fuzz ) &
		# the packages: mostly compiling while the daemon tests above wait
		suite_pkg &
	else
		suite_fuzz &
	fi
	if [ $san = 1 ]; then
		( san_env; suite_tools "$top/build-san/obd" "-san" ) &
		( san_env; suite_fetchd "$top/build-san" "-san" 1/2 ) &
		( san_env; suite_fetchd "$top/build-san" "-san" 2/2; suite_unit build-san ) &
	fi
	wait
}

# Both kernels' VM suites run at once: each QEMU (single-threaded TCG)
# keeps one host core busy, so on 2 cores this halves the wall time.
# Header lines of a test: "# vm-disk-mb: N" gets a scratch virtio disk of N MiB;
# "# vm-boots: N" runs it in N boots on that disk, all but the last ended by
# a SIGKILL of QEMU (a crash test, see docs/vm-testing.md); "# vm-smp: N"
# gives the guest N CPUs (default 2).
# OBD_VM_TESTS="00-boot 32-reset" runs only those (names or globs, without .sh),
# OBD_VM_KERNELS="6.12" only those kernels, OBD_VM_BUILD=0 skips the module
# builds (kmod-check.sh) and dkms, using the .ko files already built.
vm_selected() {
	local n=$1 p
	[ -n "${OBD_VM_TESTS:-}" ] || return 0
	for p in ${OBD_VM_TESTS//,/ }; do
		# shellcheck disable=SC2053  # a glob on purpose
		[[ $n == ${p%.sh} ]] && return 0
	done
	return 1
}

# A test without vm-disk-mb, vm-boots and vm-smp headers needs nothing of its own
# from vm-run.sh: on 6.1 and 6.12 these run in one boot (tests/vm/batch.sh; a boot
# is 10-15 s of TCG), unless OBD_VM_BATCH=0. The debug kernel boots one a test
# (kmemleak is scanned after each boot; the ledger counts tests).
vm_batchable() {
	[ "$1" != debug ] && [ "${OBD_VM_BATCH:-1}" != 0 ] &&
		! grep -qE '^# vm-(disk-mb|boots|smp):' "$2"
}

# vm_batch KERNEL TEST...: the tests in one boot; each gets its own result line
# from its log in the share, and the boot one of its own (dmesg scan, timeout).
vm_batch() {
	local k=$1
	local share=$logdir/vm-$k-batch t name rc secs
	shift
	[ $# -gt 0 ] || return 0
	rm -rf "$share"
	mkdir -p "$share"
	run_one "vm-$k/batch-boot" scripts/vm-run.sh --kernel "$k" --share "$share" \
		--timeout $((600 * $# + 120)) -- bash tests/vm/batch.sh /mnt/share/out "$@"
	for t in "$@"; do
		name=$(basename "$t" .sh)
		rc=$(cat "$share/out/$name.rc" 2>/dev/null || echo 125)
		secs=$(cat "$share/out/$name.secs" 2>/dev/null || echo 0)
		cp "$share/out/$name.log" "$logdir/vm-${k}_$name.log" 2>/dev/null ||
			echo "Bail out! no log: the batch boot ended before $name" > "$logdir/vm-${k}_$name.log"
		account "vm-$k/$name" "$logdir/vm-${k}_$name.log" "$rc" "$secs"
	done
}

suite_vm_kernel() {
	local k=$1 t mb boots smp disk start
	local -a batch=()
	for t in tests/vm/[0-9]*.sh; do
		[ -f "$t" ] || continue
		vm_selected "$(basename "$t" .sh)" || continue
		if vm_batchable "$k" "$t"; then
			batch+=("$t")
			continue
		fi
		disk=()
		mb=$(sed -n 's/^# vm-disk-mb: \([0-9]*\)$/\1/p' "$t")
		[ -z "$mb" ] || disk=(--scratch-disk "$mb")
		boots=$(sed -n 's/^# vm-boots: \([0-9]*\)$/\1/p' "$t")
		[ -z "$boots" ] || disk+=(--boots "$boots")
		smp=$(sed -n 's/^# vm-smp: \([0-9]*\)$/\1/p' "$t")
		[ -z "$smp" ] || disk+=(--smp "$smp")
		if [ "$k" = debug ] && debug_skip "$(basename "$t" .sh)"; then
			continue
		fi
		start=$SECONDS
		run_one "vm-$k/$(basename "$t" .sh)" scripts/vm-run.sh --kernel "$k" \
			${disk[@]+"${disk[@]}"} -- bash "$t"
		[ "$k" != debug ] || debug_record "$(basename "$t" .sh)" $((SECONDS - start))
	done
	vm_batch "$k" ${batch[@]+"${batch[@]}"}
}

# The debug-kernel ledger (scripts/debug-ledger.sh, docs/debug-ledger.tsv): every
# clean pass is recorded for this module source, debug kernel and test file; with
# OBD_DEBUG_RESUME=1 a test already recorded is not run again.
# 00-boot always runs: the rest waits on it.
debug_skip() {
	[ "${OBD_DEBUG_RESUME:-0}" = 1 ] && [ "$1" != 00-boot ] &&
		scripts/debug-ledger.sh passed "$1" || return 1
	printf 'skip %-40s (passed on this module and kernel: docs/debug-ledger.tsv)\n' "vm-debug/$1"
}

debug_record() {	# NAME SECONDS: if it passed
	awk -v n="vm-debug/$1" '$3 == n { r = ($2 == 0 && $1 > 0) } END { exit !r }' "$results" ||
		return 0
	scripts/debug-ledger.sh add "$1" "$2"
}

suite_vm() {
	local k kernels=${OBD_VM_KERNELS:-6.1 6.12}
	# Builds first, both at once: each writes only its kmod/build-<kver>/
	# and Kbuild compiles one file at a time.
	if [ "${OBD_VM_BUILD:-1}" != 0 ]; then
		for k in $kernels; do
			run_one "kmod/build-$k" scripts/kmod-check.sh "$k" &
		done
		wait
	fi
	for k in $kernels; do
		suite_vm_kernel "$k" &
	done
	wait
	# dkms: the package check (pkg/check) builds and installs the module
	# through dkms for both kernels; scripts/dkms-check.sh is the same round
	# trip from the source tree, for manual runs.
}

# make check-debug: the debug kernel (scripts/debug-kernel.sh: built once, cached),
# our module built for it, every VM test on it (OBD_VM_TESTS selects, as above), then
# the fault-injection pass (tests/vm/debug-failslab.sh: failslab confined to the
# module's code). vm-run.sh --kernel debug adds the kmemleak scan after each test.
# OBD_DEBUG_FAILSLAB=0 skips the pass. Not part of `all` (far over make check's budget).
# The selected VM tests (OBD_VM_TESTS, default all but 00-boot) on the debug
# kernel in OBD_DEBUG_JOBS streams at once (default 2: one TCG guest a core),
# the tests dealt out in turn.
debug_vm_streams() {
	local sel=${OBD_VM_TESTS:-[1-9]*} jobs=${OBD_DEBUG_JOBS:-2} t i=0 j
	local -a group=()

	for t in tests/vm/[0-9]*.sh; do
		OBD_VM_TESTS=$sel vm_selected "$(basename "$t" .sh)" || continue
		group[i % jobs]+="$(basename "$t" .sh) "
		i=$((i + 1))
	done
	for ((j = 0; j < jobs && j < i; j++)); do
		OBD_VM_TESTS=${group[j]} suite_vm_kernel debug &
	done
	wait
}

suite_debug() {
	local kdir start
	run_one "debug-kernel/build" scripts/debug-kernel.sh build || true
	kdir=$(scripts/kernels.sh kdir debug 2>/dev/null) || return 0
	run_one "kmod/build-debug" make -C kmod KDIR="$kdir"
	awk '$3 == "kmod/build-debug" && $2 == 0 { ok = 1 } END { exit !ok }' "$results" || return 0
	# A kernel that cannot boot fails every test the same way: say it once.
	OBD_VM_TESTS=00-boot suite_vm_kernel debug
	awk '$3 == "vm-debug/00-boot" && $2 == 0 { ok = 1 } END { exit !ok }' "$results" || return 0
	debug_vm_streams
	if [ "${OBD_DEBUG_FAILSLAB:-1}" != 0 ]; then
		if ! debug_skip failslab; then
			start=$SECONDS
			run_one "vm-debug/failslab" scripts/vm-run.sh --kernel debug -- \
				bash tests/vm/debug-failslab.sh
			debug_record failslab $((SECONDS - start))
		fi
	fi
}

suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(all)
for s in "${suites[@]}"; do
	case "$s" in
	all)
		suite_host
		suite_vm
		;;
	unit) build all && suite_unit ;;
	tools) build all && suite_tools ;;
	fetchd) build all && suite_fetchd ;;
	san) suite_san ;;
	host) suite_host ;;
	fuzz) suite_fuzz ;;
	pkg) suite_pkg ;;
	vm) suite_vm ;;
	debug) build all && suite_debug ;;
	*) echo "unknown suite: $s" >&2; exit 2 ;;
	esac
done

total_pass=$(awk '{s += $1} END {print s + 0}' "$results")
total_fail=$(awk '{s += $2} END {print s + 0}' "$results")
failed_names=$(awk '$2 > 0 {printf "%s ", $3}' "$results")
if [ -n "$failed_names" ]; then
	echo "failed: $failed_names"
fi
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
