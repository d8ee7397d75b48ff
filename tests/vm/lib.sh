# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Helpers for in-guest test scripts (tests/vm/NN-*.sh), sourced with
#   . "$(dirname "$0")/lib.sh"
# The script runs inside scripts/vm-run.sh's guest (as root, bash, cwd = the repo
# when started by scripts/run-tests.sh). Output is TAP in the shape of
# tests/unit/tap.h: "ok N desc" / "not ok N desc", "# diag", and a closing
# "1..N" + "# passed: P failed: F skipped: S" written by tap_done.
#
#   ok DESC | not_ok DESC | skip DESC REASON | diag MSG | bail REASON
#   check DESC CMD...          ok if CMD exits 0 (its output is shown on failure)
#   check_eq DESC GOT WANT     ok if the strings are equal
#   tap_done                   totals; exits 1 if anything failed
#   vm_load_module             modprobe dm-mod (+ modinfo depends), insmod our .ko
#   vm_unload_module           rmmod dm_overlaybd if loaded
#   vm_ko                      path of kmod/build-$(uname -r)/dm-overlaybd.ko
#   vm_tmpdir                  fresh dir under /tmp (tmpfs in the guest)
#   vm_loop_attach FILE [ro]   prints the loop device
#   vm_on_exit CMD...          run CMD at exit (LIFO), e.g. dmsetup remove, losetup -d
#   vm_dmesg_mark NAME         write a marker line to the kernel log
#   vm_dmesg_since NAME        kernel log after that marker
#   vm_dmesg_check NAME        one TAP line: no BUG/WARNING/... since the marker
#   vm_disk [N]                the Nth (default 1st) scratch disk, once its node exists
#   vm_kill_now [MAX_MS]       crash tests: end this boot by a SIGKILL of QEMU (below)
#   vm_crash_begin NAME SUBDIR crash tests: each boot's start (below)
#   vm_scaled N [MIN]          a loop count, divided by 20 on the debug kernel
#   within SECS CMD...         CMD succeeds within SECS s (scaled by vm_slow)
#   until_true SECS CMD...     CMD becomes true within SECS s (polled; scaled)
#   stat_field DEV KEY         the word after KEY in `dmsetup status DEV`
#
# Environment from vm-run.sh: OBD_VM=1, OBD_KVER (the release requested),
# OBD_KERNEL (6.1|6.12|debug), OBD_SHARE=/mnt/share (writable, visible on the host),
# DM_DISABLE_UDEV=1 (no udev in the guest: libdevmapper makes /dev/mapper nodes),
# OBD_VM_DISKS (scratch disks), OBD_VM_BOOT / OBD_VM_BOOTS (this boot, 1..N, of
# a "# vm-boots: N" test) and OBD_VM_SEED (the run's seed, printed by vm-run.sh).

set -uo pipefail

OBD_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export DM_DISABLE_UDEV=1

_tap_n=0
_tap_fail=0
_tap_skip=0

# On the debug kernel (about 20 times slower) each result says how long it
# took, so the loops that dominate there can be found and scaled down.
_tap_t=$SECONDS
_tap_time() {
	[ "${OBD_KERNEL:-}" = debug ] || return 0
	echo "# +$((SECONDS - _tap_t)) s"
	_tap_t=$SECONDS
}

ok() {
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n $*"
	_tap_time
}

not_ok() {
	_tap_n=$((_tap_n + 1))
	_tap_fail=$((_tap_fail + 1))
	echo "not ok $_tap_n $*"
	_tap_time
}

# vm_scaled N [MIN]: a loop count: N, or N / 20 (at least MIN, default 1) on the
# debug kernel, whose run looks for KASAN, lockdep and leak reports on every
# path (a path walked 20 times less is still walked); the packaged kernels run
# the full count.
vm_scaled() {
	local n=$1 min=${2:-1}
	if [ "${OBD_KERNEL:-}" = debug ]; then
		n=$((n / 20))
		[ "$n" -ge "$min" ] || n=$min
	fi
	echo "$n"
}

skip() {
	_tap_n=$((_tap_n + 1))
	_tap_skip=$((_tap_skip + 1))
	echo "ok $_tap_n $1 # SKIP ${2:-}"
}

diag() {
	printf '%s\n' "$@" | sed 's/^/# /'
}

check() {
	local desc=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" -eq 0 ]; then
		ok "$desc"
	else
		not_ok "$desc"
		diag "command: $*" "exit status: $rc"
		[ -z "$out" ] || diag "$out"
	fi
	return "$rc"
}

check_eq() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1"
		diag "got:  $2" "want: $3"
		return 1
	fi
}

tap_done() {
	echo "1..$_tap_n"
	echo "# passed: $((_tap_n - _tap_fail - _tap_skip)) failed: $_tap_fail skipped: $_tap_skip"
	[ "$_tap_fail" -eq 0 ] && exit 0
	exit 1
}

# An early stop still ends with the totals line, counting one failure.
bail() {
	echo "Bail out! $*"
	_tap_fail=$((_tap_fail + 1))
	echo "1..$_tap_n"
	echo "# passed: $((_tap_n - _tap_fail + 1 - _tap_skip)) failed: $_tap_fail skipped: $_tap_skip"
	exit 1
}

# These scripts load modules and create devices: never on the build host.
if [ "${OBD_VM:-0}" != 1 ] && [ "${OBD_VM_ALLOW_HOST:-0}" != 1 ]; then
	echo "Bail out! run me inside the VM: scripts/vm-run.sh --kernel 6.1 -- bash $0"
	echo "# passed: 0 failed: 1"
	exit 1
fi

# Cleanup stack: run in reverse order at exit, whatever the outcome.
_vm_exit_cmds=()
vm_on_exit() {
	local q
	q=$(printf '%q ' "$@")
	_vm_exit_cmds+=("$q")
}
_vm_run_exit() {
	local i
	for ((i = ${#_vm_exit_cmds[@]} - 1; i >= 0; i--)); do
		eval "${_vm_exit_cmds[$i]}" >/dev/null 2>&1 || true
	done
}
trap _vm_run_exit EXIT

vm_ko() {
	echo "$OBD_TOP/kmod/build-$(uname -r)/dm-overlaybd.ko"
}

vm_load_module() {
	local ko d
	ko=$(vm_ko)
	modprobe dm-mod || { echo "modprobe dm-mod failed" >&2; return 1; }
	[ -e /dev/mapper/control ] || dmsetup mknodes >/dev/null 2>&1 || true
	if [ -d /sys/module/dm_overlaybd ]; then
		return 0
	fi
	if [ ! -r "$ko" ]; then
		echo "$ko missing: build it on the host with" \
			"make -C kmod KDIR=\$(scripts/kernels.sh kdir ${OBD_KERNEL:-6.1})" >&2
		return 1
	fi
	# Whatever the module links against (dm-mod, maybe libcrc32c) comes from the
	# kernel's own tree, with modprobe resolving softdeps.
	for d in $(modinfo -F depends "$ko" | tr ',' ' '); do
		modprobe "$d" || { echo "modprobe $d (needed by $ko) failed" >&2; return 1; }
	done
	insmod "$ko" || { echo "insmod $ko failed" >&2; return 1; }
}

vm_unload_module() {
	[ ! -d /sys/module/dm_overlaybd ] || rmmod dm_overlaybd
}

# vm_slow: how much longer things take here than on the packaged kernels: 1,
# or 6 on the debug kernel (KASAN and lockdep under TCG start a daemon in tens
# of seconds). Waits and deadlines grow by it; what is checked stays.
vm_slow() {
	if [ "${OBD_KERNEL:-}" = debug ]; then echo 6; else echo 1; fi
}

# within SECS CMD...: CMD succeeds within SECS seconds (killed at 3 x SECS); the
# time taken on stderr. SECS is scaled by vm_slow.
within() {
	local secs=$(($1 * $(vm_slow))) t0 t1
	shift
	t0=$(date +%s%N)
	timeout -s KILL "$((secs * 3))" "$@" || return 1
	t1=$(date +%s%N)
	echo "$(((t1 - t0) / 1000000)) ms" >&2
	[ $(((t1 - t0) / 1000000)) -le $((secs * 1000)) ]
}

# until_true SECS CMD...: CMD (run again every 0.1 s: a function, not a $(...)
# argument, which is expanded once) becomes true within SECS seconds, scaled by
# vm_slow.
until_true() {
	local end=$(($(date +%s) + $1 * $(vm_slow)))
	shift
	while :; do
		"$@" && return 0
		[ "$(date +%s)" -lt $end ] || return 1
		sleep 0.1
	done
}

# The status line is "start len overlaybd KEY VALUE KEY VALUE ...": the first
# KEY wins (a value never equals a key, but a later field could share a name).
stat_field() {
	dmsetup status "$1" | awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) { print $(i + 1); exit } }'
}

vm_tmpdir() {
	mktemp -d /tmp/obd-test.XXXXXX
}

# vm_test_begin NAME: mark the log for NAME, load the module (unloaded at
# exit), make a scratch directory $d (removed at exit) and enter it.
vm_test_begin() {
	vm_dmesg_mark "$1"
	vm_load_module || bail "cannot load dm-overlaybd"
	vm_on_exit vm_unload_module
	d=$(vm_tmpdir)
	vm_on_exit rm -rf "$d"
	cd "$d" || bail "cd $d"
}

vm_loop_attach() {
	local file=$1 ro=${2:-}
	modprobe loop 2>/dev/null || true
	losetup -f --show ${ro:+-r} "$file"
}

vm_dmesg_mark() {
	echo "obd-test: mark $1" >/dev/kmsg
}

vm_dmesg_since() {
	dmesg | awk -v m="obd-test: mark $1" 'found; index($0, m) { found = 1 }'
}

VM_DMESG_BAD='BUG|WARNING|Oops|KASAN|refcount|hung task|leak|Call Trace'
vm_dmesg_check() {
	local hits
	hits=$(vm_dmesg_since "$1" | grep -E "$VM_DMESG_BAD" || true)
	if [ -z "$hits" ]; then
		ok "dmesg clean since mark $1"
	else
		not_ok "dmesg clean since mark $1"
		diag "$hits"
		return 1
	fi
}

# vm_disk [N]: the Nth scratch disk (vm-run.sh --scratch-disk, "# vm-disk-mb: MB"),
# after modprobe virtio_blk and waiting for its node; fails if there is none.
vm_disk() {
	local n=${1:-1} vd i
	# shellcheck disable=SC2086
	set -- ${OBD_VM_DISKS:-}
	vd=${!n:-}
	[ -n "$vd" ] || { echo "no scratch disk $n (OBD_VM_DISKS='${OBD_VM_DISKS:-}')" >&2; return 1; }
	modprobe virtio_blk 2>/dev/null
	for i in $(seq 100); do
		[ -b "$vd" ] && { echo "$vd"; return 0; }
		sleep 0.1
	done
	echo "$vd did not appear" >&2
	return 1
}

# vm_kill_now [MAX_MS]: ends this boot of a crash test (tests with "# vm-boots: N",
# vm-run.sh --boots N) by a hard reset. Prints this boot's TAP totals (so
# run-tests.sh counts its checks), saves the dmesg so far for the host's scan, and
# prints the OBD-VM-KILL-NOW line: the host kills QEMU with SIGKILL, at once or
# after a random 0..MAX_MS ms, during which whatever the test left running in the
# background goes on. Never returns. A boot with a failure exits instead (tap_done:
# the run fails, no further boot); so does the last boot, which has nobody to kill it.
vm_kill_now() {
	local max=${1:-0}
	if [ "${OBD_VM_BOOT:-1}" -ge "${OBD_VM_BOOTS:-1}" ]; then
		bail "vm_kill_now in boot ${OBD_VM_BOOT:-1} of ${OBD_VM_BOOTS:-1}: the test needs '# vm-boots: N' (vm-run.sh --boots N)"
	fi
	[ "$_tap_fail" -eq 0 ] || tap_done
	echo "# passed: $((_tap_n - _tap_fail - _tap_skip)) failed: $_tap_fail skipped: $_tap_skip (boot $OBD_VM_BOOT of $OBD_VM_BOOTS, a hard reset follows)"
	dmesg >"${OBD_SHARE:-/mnt/share}/.obd-vm/dmesg.boot$OBD_VM_BOOT" 2>/dev/null
	echo "OBD-VM-KILL-NOW $max"
	trap - EXIT
	while :; do sleep 10; done
}

# vm_crash_begin NAME SUBDIR: the start of each boot of a crash test: the dmesg
# mark NAME-boot<N> (vm_dmesg_check takes it), the boot and seed said,
# vm_crash_dir SUBDIR as $d (the cwd), the module loaded (unloaded at exit).
vm_crash_begin() {
	vm_dmesg_mark "$1-boot$OBD_VM_BOOT"
	diag "boot ${OBD_VM_BOOT:-?} of ${OBD_VM_BOOTS:-?} (seed ${OBD_VM_SEED:-?})"
	vm_crash_dir "$2"
	d=$CRASH_DIR
	cd "$d" || bail "cd $d"
	vm_load_module || bail "cannot load dm-overlaybd"
	vm_on_exit vm_unload_module
}

# vm_crash_dir SUBDIR: for crash tests ("# vm-boots: N"): the first scratch disk,
# made ext4 in boot 1 and mounted at /mnt/disk in every boot (a boot after a
# hard reset replays the journal), SUBDIR made there and set in CRASH_DIR (not
# a $(...): the checks count in this shell). Bails without a disk or with a
# single boot.
vm_crash_dir() {
	local vd mnt=/mnt/disk
	vd=$(vm_disk) || bail "no scratch disk (run with '--scratch-disk MB --boots N')"
	[ "${OBD_VM_BOOTS:-1}" -ge 2 ] || bail "needs vm-run.sh --boots N (header '# vm-boots: N')"
	mkdir -p "$mnt"
	modprobe ext4 2>/dev/null
	if [ "${OBD_VM_BOOT:-1}" = 1 ]; then
		check "mkfs.ext4 on $vd" mkfs.ext4 -q -F "$vd" || bail "mkfs"
	fi
	check "mount $vd (boot ${OBD_VM_BOOT:-1})" mount -t ext4 "$vd" "$mnt" || bail "mount"
	vm_on_exit umount "$mnt"
	CRASH_DIR=$mnt/$1
	mkdir -p "$CRASH_DIR"
}

# Benchmarks: summary DEV_VALUES BASE_VALUES -> "median_dev median_base ratio min-max"
# (the ratio of the medians and the range of the per-run ratios)
summary() {
	python3 - "$1" "$2" <<'PY'
import statistics as s, sys
a = [int(x) for x in sys.argv[1].split()]
b = [int(x) for x in sys.argv[2].split()]
r = [x / max(y, 1) for x, y in zip(a, b)]
print("%d %d %.2f %.2f-%.2f" % (s.median(a), s.median(b),
      s.median(a) / max(s.median(b), 1), min(r), max(r)))
PY
}
