#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# batch.sh OUTDIR TEST...: several VM tests in one boot (scripts/run-tests.sh,
# OBD_VM_BATCH). A boot costs 10-15 s of TCG a test; the tests that need no
# scratch disk, no crash boots and the default CPUs run one after the other in
# one guest instead, each in its own session and bash, each with its own log
# OUTDIR/NAME.log (in the share: the host reads them) and OUTDIR/NAME.secs.
#
# Each test already cleans up after itself (vm_test_begin: its temp dir, its
# module load). After each one, a last TAP line in its log says whether it left
# the guest as it found it: no overlaybd device, dm-overlaybd unloadable (then
# unloaded, so the next test loads it with default parameters), none of its
# processes left (they are killed), no mount or loop device of its own left
# (then removed, so the next test starts clean). A test that hangs is killed at
# OBD_VM_TEST_TIMEOUT seconds (default 600, vm-run.sh's per-test default).
set -uo pipefail

out=$1
shift
timeout_s=${OBD_VM_TEST_TIMEOUT:-600}
mkdir -p "$out"

mounts_now() { awk '{ print $2 }' /proc/mounts | sort; }
base_mounts=$(mounts_now)

# cleanliness NAME: one TAP line appended to the test's log
cleanliness() {
	local name=$1 log=$out/$1.log left=() m l
	if dmsetup ls --target overlaybd 2>/dev/null | grep -qv '^No devices found'; then
		left+=("overlaybd devices: $(dmsetup ls --target overlaybd | awk '{ print $1 }' | tr '\n' ' ')")
		dmsetup remove_all --force > /dev/null 2>&1
	fi
	if [ -d /sys/module/dm_overlaybd ] && ! rmmod dm_overlaybd 2> /dev/null; then
		left+=("dm-overlaybd would not unload (refcount $(cat /sys/module/dm_overlaybd/refcnt 2>/dev/null))")
	fi
	for m in $(comm -13 <(echo "$base_mounts") <(mounts_now) | sort -r); do
		echo "# batch: $name left a mount at $m (unmounted)" >> "$log"
		umount -l "$m" 2> /dev/null
	done
	for l in $(losetup -n -O NAME 2> /dev/null); do
		echo "# batch: $name left loop device $l (detached)" >> "$log"
		losetup -d "$l" 2> /dev/null
	done
	{
		if [ ${#left[@]} -eq 0 ]; then
			echo "ok - batch: $name left no overlaybd device and the module unloadable"
		else
			echo "not ok - batch: $name left the guest changed"
			printf '# %s\n' "${left[@]}"
		fi
		echo "# passed: $(( ${#left[@]} == 0 )) failed: $(( ${#left[@]} != 0 ))"
	} >> "$log"
}

for t in "$@"; do
	name=$(basename "$t" .sh)
	t0=$(date +%s)
	echo "=== batch: $name"
	# its own session: whatever it starts and leaves is killed with it
	rm -f "$out/$name.sid"
	timeout -s KILL "$timeout_s" setsid bash -c 'echo $$ > "$1"; exec bash "$2"' sid \
		"$out/$name.sid" "$t" > "$out/$name.log" 2>&1
	rc=$?
	[ ! -s "$out/$name.sid" ] || pkill -KILL -s "$(cat "$out/$name.sid")" 2> /dev/null
	echo "$rc" > "$out/$name.rc"
	[ "$rc" -ne 137 ] || echo "# batch: $name killed after ${timeout_s} s" >> "$out/$name.log"
	cleanliness "$name"
	echo $(( $(date +%s) - t0 )) > "$out/$name.secs"
	tail -n 3 "$out/$name.log" | sed "s/^/$name: /"
done
exit 0
