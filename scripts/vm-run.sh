#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# vm-run.sh: run a command inside a Debian test kernel under QEMU, with the host's
# root file system mounted read-only and the same working directory.
#
#   scripts/vm-run.sh [--kernel 6.1|6.12|debug] [--mem MB] [--smp N] [--timeout S]
#                     [--share DIR] [--env NAME=VALUE]... [--scratch-disk MB]... [--boots N]
#                     [--keep] -- <command...>
#
# In the guest: the command runs as root via bash in the host's current directory
# (same absolute path, so build outputs are visible, read-only). /tmp, /run, /dev/shm
# are tmpfs, /mnt/share is the writable --share directory (default: a fresh temp dir),
# /lib/modules/<ver> is the cached kernel's module tree (modprobe works), and the
# environment holds PATH, HOME=/tmp, DM_DISABLE_UDEV=1, OBD_VM=1, OBD_SHARE=/mnt/share,
# plus each --env. Each --scratch-disk MB is an empty virtio disk of that size (a
# temporary raw file on the host, removed afterwards; host page cache, thread-pool
# I/O): OBD_VM_DISKS lists them as /dev/vda... in order (the guest must modprobe
# virtio_blk). The console (command output, kernel warnings) streams to stdout.
#
# --boots N (crash tests): the command runs in N boots on the same scratch disks and
# share, with OBD_VM_BOOT=1..N and OBD_VM_BOOTS=N in its environment. Each boot but
# the last must print a line with OBD-VM-KILL-NOW [MAX_MS] (lib.sh: vm_kill_now):
# the host then kills QEMU with SIGKILL, at once or after a random 0..MAX_MS ms
# (seed printed; OBD_SEED=<n> replays; the guest gets it as OBD_VM_SEED), and boots
# again. A boot that ends by itself before the last one ends the run with its status
# (1 if it was 0). --timeout is per boot.
#
# Afterwards the guest's dmesg is scanned for BUG, WARNING, Oops, KASAN, refcount,
# hung task, leak and Call Trace. Exit status: the command's; 99 if it succeeded but
# dmesg had a hit; 124 on timeout; 125 if the guest gave no status (panic, init error).
#
# --kernel debug is the debug kernel of `make check-debug` (scripts/debug-kernel.sh;
# not fetched here: build it first). Everything is built in; the default timeout is
# 7200 s (tests run about 19 times slower there); the scan also catches hung-task
# ("blocked for more than"), ODEBUG and lockdep lines; and vm-init.sh's kmemleak scan
# after the command must find nothing.
#
# Environment: OBD_VM_KVM=1 (use KVM; TCG is the default, KVM can hang here),
# OBD_VM_TCG (TCG options, default thread=single; thread=multi for MTTCG),
# OBD_KCACHE (kernel cache, see kernels.sh), OBD_VM_CACHE (initramfs cache, default
# /var/cache/dm-overlaybd/initramfs), OBD_VM_DMESG_IGNORE (extra ERE of dmesg lines
# a test expects), OBD_VM_KEEP=1 (same as --keep: keep the temp share), OBD_SEED
# (seed of the kill delays of --boots).
set -euo pipefail

# One compound command: bash parses it whole before running, so editing this file
# while a VM runs cannot derail the run (bash otherwise reads scripts as it goes).
{
ME=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd)
die() { echo "$ME: $*" >&2; exit 2; }
usage() {
	sed -n 's/^#   //p' "$0" | head -n 2 >&2
	exit 2
}

KERNEL=6.1
MEM=2048
SMP=2
TIMEOUT=
SHARE=
KEEP=${OBD_VM_KEEP:-0}
ENVS=()
DISKS=()
BOOTS=1
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) KERNEL=${2:?--kernel needs 6.1 or 6.12}; shift 2 ;;
	--mem) MEM=${2:?--mem needs MB}; shift 2 ;;
	--smp) SMP=${2:?--smp needs a count}; shift 2 ;;
	--timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
	--share) SHARE=${2:?--share needs a directory}; shift 2 ;;
	--env) ENVS+=("${2:?--env needs NAME=VALUE}"); shift 2 ;;
	--scratch-disk) DISKS+=("${2:?--scratch-disk needs a size in MiB}"); shift 2 ;;
	--boots) BOOTS=${2:?--boots needs a count}; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--) shift; break ;;
	-h|--help) usage ;;
	*) echo "$ME: unknown option '$1' (the command goes after --)" >&2; usage ;;
	esac
done
[ $# -gt 0 ] || usage
case "$KERNEL" in 6.1|6.12|debug) ;; *) die "--kernel must be 6.1, 6.12 or debug, not '$KERNEL'" ;; esac
# KASAN, lockdep and kmemleak make the debug kernel about 2-4 times slower under TCG.
[ -n "$TIMEOUT" ] || { TIMEOUT=600; [ "$KERNEL" != debug ] || TIMEOUT=7200; }
for n in "$MEM" "$SMP" "$TIMEOUT" "$BOOTS" ${DISKS[@]+"${DISKS[@]}"}; do
	case "$n" in ''|*[!0-9]*) die "not a number: '$n'" ;; esac
done
for e in ${ENVS[@]+"${ENVS[@]}"}; do
	case "$e" in [A-Za-z_]*=*) ;; *) die "--env wants NAME=VALUE, got '$e'" ;; esac
done
[ "${#DISKS[@]}" -le 26 ] || die "at most 26 scratch disks"
[ "$BOOTS" -ge 1 ] || die "--boots must be at least 1"
SEED=${OBD_SEED:-$((RANDOM << 15 | RANDOM))}
case "$SEED" in ''|*[!0-9]*) die "OBD_SEED must be a number, not '$SEED'" ;; esac
DISK_ARGS=()
DISK_FILES=()
GUEST_DISKS=
trap 'rm -f ${DISK_FILES[@]+"${DISK_FILES[@]}"}' EXIT
for i in ${DISKS[@]+"${!DISKS[@]}"}; do
	f=$(mktemp "${TMPDIR:-/var/tmp}/obd-disk.XXXXXX") || die "mktemp for a scratch disk failed"
	DISK_FILES+=("$f")
	truncate -s "${DISKS[$i]}M" "$f" || die "cannot size the scratch disk $f"
	case "$f" in *,*) die "scratch disk $f: a comma in the path cannot be passed to QEMU" ;; esac
	# shellcheck disable=SC2054
	DISK_ARGS+=(-drive "file=$f,if=none,id=d$i,format=raw,cache=writeback,aio=threads"
		-device "virtio-blk-pci,drive=d$i")
	l=abcdefghijklmnopqrstuvwxyz
	GUEST_DISKS+="${GUEST_DISKS:+ }/dev/vd${l:i:1}"
done

CWD=$(pwd -P)
# These are replaced by guest mounts, so the host's files there are invisible inside.
# Below /tmp, /run or /mnt it is bind-mounted back over the guest's tmpfs
# (vm-init.sh, obd_cwd= on the kernel command line), so a clone anywhere works.
CWD_BIND=
case "$CWD/" in
/proc/*|/sys/*|/dev/*|/lib/modules/*|/usr/lib/modules/*)
	die "the working directory $CWD is hidden in the guest; run from elsewhere" ;;
/tmp/*|/run/*|/mnt/*)
	case "$CWD" in *[[:space:]]*) die "the working directory $CWD has white space" ;; esac
	CWD_BIND=" obd_cwd=$CWD" ;;
esac
for t in qemu-system-x86_64 busybox cpio modinfo xz; do
	command -v "$t" >/dev/null || die "$t not found (run scripts/deps.sh)"
done

# Kernel: fetched on first use (idempotent, cheap when cached). The debug kernel is
# built by scripts/debug-kernel.sh build (make check-debug), never implicitly here.
if [ "$KERNEL" = debug ]; then
	"$HERE/debug-kernel.sh" ver >/dev/null || die "no debug kernel: run scripts/debug-kernel.sh build (or make check-debug)"
elif ! "$HERE/kernels.sh" list >/dev/null 2>&1; then
	"$HERE/kernels.sh" fetch >&2 || die "scripts/kernels.sh fetch failed"
fi
KVER=$("$HERE/kernels.sh" ver "$KERNEL")
KROOT=$("$HERE/kernels.sh" root "$KERNEL")
VMLINUZ=$KROOT/boot/vmlinuz-$KVER
# kernels.sh unpacks an ELF vmlinux: QEMU boots it through its PVH entry, skipping the
# BIOS and the in-guest decompression (xz on 6.1 costs ~15 s under TCG).
# Not the debug kernel's: its vmlinux (kept for symbolizing reports) dies at once through
# the PVH entry (KASAN's early shadow setup), silently; its bzImage boots.
KIMAGE=$VMLINUZ
if [ "$KERNEL" != debug ] && [ -r "$KROOT/boot/vmlinux-$KVER" ]; then
	KIMAGE=$KROOT/boot/vmlinux-$KVER
fi
MODDIR=$KROOT/lib/modules/$KVER
if [ ! -r "$VMLINUZ" ] || [ ! -d "$MODDIR" ]; then
	die "kernel $KVER incomplete in $KROOT (rm -rf it and run scripts/kernels.sh fetch)"
fi

# ---------------------------------------------------------------------------
# initramfs: busybox + /init + the modules needed to reach the 9p root.
VMC=${OBD_VM_CACHE:-/var/cache/dm-overlaybd/initramfs}
BUSYBOX=$(command -v busybox)
HASH=$(cat "$0" "$HERE/vm-init.sh" "$BUSYBOX" | sha256sum | cut -c1-12)
INITRD=$VMC/initramfs-$KVER-$HASH.cpio

# Post-order walk of modinfo's depends: a module's dependencies are loaded first.
# Built-in modules (6.12's virtio core, virtio_pci) report "(builtin)" and are skipped.
declare -A SEEN=()
ORDER=()
mod_walk() {
	local name=${1//-/_} file deps d
	[ -z "${SEEN[$name]:-}" ] || return 0
	SEEN[$name]=1
	file=$(modinfo -b "$KROOT" -k "$KVER" -F filename "$name" 2>/dev/null) ||
		die "$KVER: module $name not found"
	[ "$file" != "(builtin)" ] || return 0
	deps=$(modinfo -b "$KROOT" -k "$KVER" -F depends "$name")
	for d in ${deps//,/ }; do
		mod_walk "$d"
	done
	ORDER+=("$file")
}

build_initrd() {
	local tmp f base
	mkdir -p "$VMC"
	tmp=$(mktemp -d "$VMC/build.XXXXXX")
	mkdir -p "$tmp/bin" "$tmp/mods"
	cp "$BUSYBOX" "$tmp/bin/busybox"
	cp "$HERE/vm-init.sh" "$tmp/init"
	chmod 0755 "$tmp/init" "$tmp/bin/busybox"
	for m in virtio_pci 9pnet_virtio 9p; do
		mod_walk "$m"
	done
	: >"$tmp/mods/order"
	for f in ${ORDER[@]+"${ORDER[@]}"}; do
		base=${f##*/}
		case "$f" in
		*.ko.xz) base=${base%.xz}; xz -dc "$f" >"$tmp/mods/$base" ;;
		*.ko.zst) base=${base%.zst}; zstd -qdc "$f" >"$tmp/mods/$base" ;;
		*.ko.gz) base=${base%.gz}; gzip -dc "$f" >"$tmp/mods/$base" ;;
		*.ko) cp "$f" "$tmp/mods/$base" ;;
		*) die "unexpected module file $f" ;;
		esac
		echo "$base" >>"$tmp/mods/order"
	done
	(cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$tmp.cpio"
	# Older builds for this kernel (previous script versions) are dead weight.
	rm -f "$VMC/initramfs-$KVER-"*.cpio
	mv "$tmp.cpio" "$INITRD"
	rm -rf "$tmp"
}

if [ ! -r "$INITRD" ]; then
	mkdir -p "$VMC"
	exec 8>"$VMC/.lock"
	flock 8
	[ -r "$INITRD" ] || build_initrd
	exec 8>&-
fi

# ---------------------------------------------------------------------------
# Share: control files in .obd-vm/, everything else is the test's.
TMPSHARE=0
if [ -z "$SHARE" ]; then
	SHARE=$(mktemp -d "${TMPDIR:-/tmp}/obd-vm.XXXXXX")
	TMPSHARE=1
fi
mkdir -p "$SHARE"
SHARE=$(cd "$SHARE" && pwd -P)
C=$SHARE/.obd-vm
rm -rf "$C"
mkdir -p "$C"
printf 'OBD_VM_MODDIR=%q\n' "$MODDIR" >"$C/env"
{
	echo '# generated by scripts/vm-run.sh'
	for e in ${ENVS[@]+"${ENVS[@]}"}; do
		printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"
	done
	printf 'export OBD_KVER=%q OBD_KERNEL=%q OBD_VM_DISKS=%q\n' "$KVER" "$KERNEL" "$GUEST_DISKS"
	printf 'export OBD_VM_BOOTS=%q OBD_VM_SEED=%q\n' "$BOOTS" "$SEED"
	printf 'read -r OBD_VM_BOOT </mnt/share/.obd-vm/boot || exit 126\n'
	printf 'export OBD_VM_BOOT\n'
	printf 'cd %q || exit 126\n' "$CWD"
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$C/run.sh"

if [ "${OBD_VM_KVM:-0}" = 1 ]; then
	ACCEL=(-accel kvm -cpu host)
else
	# One host thread for all vCPUs: with MTTCG, 6.12 sometimes oopses at boot on an
	# int3 left by the kernel's live code patching (another vCPU runs stale code), and
	# on a busy 2-core host it is slower too. The guest still has -smp CPUs.
	ACCEL=(-accel "tcg,${OBD_VM_TCG:-thread=single}" -cpu max)
fi
# watchdog_thresh=60: under emulation on a loaded host a vCPU can go unscheduled
# for tens of seconds; a soft-lockup report would then be noise, not a bug.
# rcu_cpu_stall_timeout=120 for the same reason: a TCG guest starved of host CPU
# reports "rcu_preempt kthread starved" after the default 21 s (seen in CI, the
# stack in clear_page under a user page fault). A CPU really stuck in a loop
# of ours is still caught, by the soft-lockup detector at 2 x 60 s and by RCU
# at 120 s.
APPEND="console=ttyS0 panic=-1 loglevel=4 log_buf_len=4M mitigations=off watchdog_thresh=60"
APPEND+=" rcupdate.rcu_cpu_stall_timeout=120 rdinit=/init$CWD_BIND"
# The debug kernel runs ACPI's AML so slowly under TCG that evaluating the PCI
# interrupt routing (_PRT) hits ACPICA's 30 s loop timeout three times a boot
# (AE_AML_LOOP_TIMEOUT, 90 s of a 170 s boot): route PCI interrupts by
# SeaBIOS's $PIR table instead.
[ "$KERNEL" != debug ] || APPEND+=" pci=noacpi"
# And 4-level paging for it: -cpu max offers LA57, and 6.1's KASAN then took
# an interrupt during boot CPU identification (start_kernel -> identify_cpu,
# before any module) for a wild-memory-access at a 5-level direct-map
# address (ff11...), which taints the kernel and turns lockdep off for the
# whole boot (seen once in 5 debug boots, session 14).
[ "$KERNEL" != debug ] || APPEND+=" no5lvl"
# shellcheck disable=SC2054  # commas belong to QEMU's option syntax
QEMU=(qemu-system-x86_64 "${ACCEL[@]}" -m "$MEM" -smp "$SMP" -nographic -no-reboot
	-nic none -kernel "$KIMAGE" -initrd "$INITRD" -append "$APPEND"
	-fsdev local,id=r,path=/,security_model=none,readonly=on,multidevs=remap
	-device virtio-9p-pci,fsdev=r,mount_tag=hostroot
	-fsdev "local,id=s,path=$SHARE,security_model=none,multidevs=remap"
	-device virtio-9p-pci,fsdev=s,mount_tag=share ${DISK_ARGS[@]+"${DISK_ARGS[@]}"})

BOOTMSG=
[ "$BOOTS" -eq 1 ] || BOOTMSG=", $BOOTS boots (kill seed $SEED)"
echo "$ME: kernel $KVER, $MEM MB, $SMP cpu, timeout ${TIMEOUT}s$BOOTMSG, share $SHARE" >&2

# Lines matched by the scan that are known not to be defects of the code under test.
# - "Spectre V2 : WARNING: Unprivileged eBPF ..." and CPU-bug notices ("... data leak
#   possible", "... BUG ... vulnerable") come from -cpu max under TCG at boot.
BENIGN='Unprivileged eBPF is enabled|data leak possible|SMT on, data leak|Vulnerable'
SCAN='BUG|WARNING|Oops|KASAN|refcount|hung task|leak|Call Trace'
if [ "$KERNEL" = debug ]; then
	# The checkers' own start-up lines; and what they report that the words above miss.
	# kmemleak's "N new suspected memory leaks" line: vm-init.sh's scan before the
	# command prints it for what the boot left (then cleared); after the command the
	# report itself ($C/kmemleak) is what counts.
	BENIGN="$BENIGN|kmemleak: Kernel memory leak detector initialized|kmemleak: Automatic memory scanning thread"
	BENIGN="$BENIGN|rcu:[[:space:]]+RCU lockdep checking is enabled"
	BENIGN="$BENIGN|kmemleak: [0-9]+ new suspected memory leaks \(see /sys/kernel/debug/kmemleak\)"
	SCAN="$SCAN|blocked for more than|ODEBUG|lockdep|kmemleak|list_(add|del) corruption|workqueue lockup"
fi
[ -z "${OBD_VM_DMESG_IGNORE:-}" ] || BENIGN="$BENIGN|$OBD_VM_DMESG_IGNORE"
scan_hits() { cat "$@" 2>/dev/null | grep -E "$SCAN" | grep -vE "$BENIGN" || true; }

# watch_console KILL: the console, line by line, to stdout. With KILL=1 the first
# line holding OBD-VM-KILL-NOW [MAX_MS] arms a SIGKILL of QEMU (pid from -pidfile)
# after 0..MAX_MS ms, drawn from the seed and the boot number, so OBD_SEED replays.
watch_console() {
	local line ms max
	while IFS= read -r line || [ -n "$line" ]; do
		printf '%s\n' "$line"
		[ "$1" = 1 ] || continue
		[ ! -e "$C/killed" ] || continue
		[[ $line =~ OBD-VM-KILL-NOW( ([0-9]+))? ]] || continue
		max=${BASH_REMATCH[2]:-0}
		# one 64-bit LCG step (bash arithmetic wraps) of seed and boot: replayable
		ms=$(( SEED + boot * 7919 ))
		ms=$(( ((ms * 6364136223846793005 + 1442695040888963407) >> 33 & 0x7fffffff) % (max + 1) ))
		echo "$ms" >"$C/killed"
		(
			[ "$ms" = 0 ] || sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
			[ -e "$C/status" ] || kill -KILL "$(cat "$C/qemu.pid")" 2>/dev/null
		) &
	done
}

# A boot that never reaches /init is killed after BOOT_TIMEOUT s and booted once
# more (crash tests excepted): a debug kernel once stayed silent after SeaBIOS's
# "Booting from ROM" for 85 minutes, holding its test's slot until the 2 h timeout.
# A plain kernel reaches /init in about 3 s under TCG, so its 120 s is also
# passed by every longer test: the no-hang path of this watchdog runs in each
# make check (its marker follows SeaBIOS's "Booting from ROM.." on one line,
# which an anchored match missed, killing CI's batch boots at 600 s).
BOOT_TIMEOUT=${OBD_VM_BOOT_TIMEOUT:-120}
[ "$KERNEL" != debug ] || BOOT_TIMEOUT=${OBD_VM_BOOT_TIMEOUT:-600}
hung_retry=0

fail=0
rc=
t0=$(date +%s.%N)
boot=1
while :; do
	rm -f "$C/status" "$C/dmesg" "$C/kmemleak" "$C/killed" "$C/qemu.pid" "$C/boot-hung"
	# Its own stdio on /dev/null and its sleep killed with it: a sleep left
	# holding this script's stdout would keep a reader of it waiting.
	(
		trap 'kill "$wd_sleep" 2>/dev/null; exit 0' TERM
		sleep "$BOOT_TIMEOUT" &
		wd_sleep=$!
		wait "$wd_sleep"
		grep -q 'obd-vm: init start' "$C/console.log" 2>/dev/null && exit 0
		: >"$C/boot-hung"
		kill -KILL "$(cat "$C/qemu.pid" 2>/dev/null)" 2>/dev/null
	) </dev/null >/dev/null 2>&1 &
	boot_wd=$!
	echo "$boot" >"$C/boot"
	kill_ok=0
	[ "$boot" -ge "$BOOTS" ] || kill_ok=1
	[ "$BOOTS" -eq 1 ] || echo "$ME: boot $boot of $BOOTS" >&2
	tb=$(date +%s.%N)
	set +e
	# In a subshell that outlives it: a QEMU killed on purpose is no "Killed" job report.
	(timeout -k 5 "$TIMEOUT" "${QEMU[@]}" -pidfile "$C/qemu.pid" </dev/null 2>"$C/qemu.stderr"
		e=$?; exit "$e") 2>>"$C/qemu.stderr" |
		sed -u 's/\r//g; s/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' | tee "$C/console.log" |
		watch_console "$kill_ok"
	st=("${PIPESTATUS[@]}")
	set -e
	qst=${st[0]}
	kill "$boot_wd" 2>/dev/null || true
	wait "$boot_wd" 2>/dev/null || true
	if [ -e "$C/boot-hung" ] && [ "$BOOTS" -eq 1 ] && [ "$hung_retry" = 0 ]; then
		echo "$ME: boot hung: no /init within ${BOOT_TIMEOUT}s (console: $(tail -n 1 "$C/console.log")); booting again" >&2
		mv "$C/console.log" "$C/console.hung.log"
		hung_retry=1
		continue
	fi
	if [ "$kill_ok" = 1 ] && [ -r "$C/killed" ] && [ ! -r "$C/status" ]; then
		# Killed as asked: not a failure. What the kernel said up to the kill: the
		# dmesg vm_kill_now saved, and the kernel lines of the console after it.
		hits=$(scan_hits "$C/dmesg.boot$boot" <(grep -E '^\[ *[0-9]+\.[0-9]+\]' "$C/console.log"))
		if [ -n "$hits" ]; then
			echo "$ME: FAIL: boot $boot: guest dmesg has suspicious lines:" >&2
			printf '%s\n' "$hits" | head -n 50 | sed 's/^/  /' >&2
			fail=1
		fi
		mv "$C/console.log" "$C/console.boot$boot.log"
		echo "$ME: $KVER: boot $boot of $BOOTS killed (SIGKILL) $(cat "$C/killed") ms after" \
			"OBD-VM-KILL-NOW (seed $SEED: OBD_SEED=$SEED replays), $(awk -v a="$tb" \
			-v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s" >&2
		boot=$((boot + 1))
		continue
	fi
	break
done
t1=$(date +%s.%N)

# ---------------------------------------------------------------------------
if [ -r "$C/status" ]; then
	rc=$(cat "$C/status")
elif [ -e "$C/boot-hung" ]; then
	echo "$ME: FAIL: the boot hung: no /init within ${BOOT_TIMEOUT}s$([ "$hung_retry" = 1 ] && echo ", twice")" >&2
	rc=125
elif [ "$qst" = 124 ] || [ "$qst" = 137 ]; then
	echo "$ME: FAIL: timed out after ${TIMEOUT}s (qemu killed)" >&2
	rc=124
else
	if grep -q 'obd-vm: init start' "$C/console.log"; then
		echo "$ME: FAIL: the guest gave no exit status (qemu status $qst; panic or init failure, see the console above)" >&2
	else
		echo "$ME: FAIL: the kernel died before /init ran (qemu status $qst): a boot problem, not the command's" >&2
	fi
	[ ! -s "$C/qemu.stderr" ] || sed 's/^/qemu: /' "$C/qemu.stderr" >&2
	rc=125
fi
if [ "$boot" -lt "$BOOTS" ] && [ "$rc" != 124 ] && [ "$rc" != 125 ]; then
	echo "$ME: FAIL: boot $boot of $BOOTS ended by itself (status $rc) instead of being killed" \
		"after an OBD-VM-KILL-NOW line" >&2
	[ "$rc" != 0 ] || rc=1
fi

# Without a dmesg (timeout, panic) the console still has every message of loglevel
# <= 4 (warnings, oopses, hung task reports).
LOGF=$C/dmesg
[ -r "$LOGF" ] || LOGF=$C/console.log
if [ -r "$LOGF" ]; then
	hits=$(scan_hits "$LOGF")
	if [ -n "$hits" ]; then
		echo "$ME: FAIL: guest dmesg has suspicious lines:" >&2
		printf '%s\n' "$hits" | head -n 50 | sed 's/^/  /' >&2
		fail=1
	fi
fi
if [ -s "$C/kmemleak" ]; then
	echo "$ME: FAIL: kmemleak found unreferenced objects after the command:" >&2
	head -n 80 "$C/kmemleak" | sed 's/^/  /' >&2
	fail=1
fi
if [ ! -r "$C/dmesg" ] && [ "$rc" = 0 ]; then
	echo "$ME: FAIL: no dmesg in the share" >&2
	fail=1
fi

up_start=$(sed -n 's/^obd-vm: run start uptime=\([0-9.]*\)s.*/\1/p' "$C/console.log" | head -n1)
up_end=$(sed -n 's/^obd-vm: run end uptime=\([0-9.]*\)s.*/\1/p' "$C/console.log" | head -n1)
timing=$(awk -v a="${up_start:-}" -v b="${up_end:-}" -v t0="$t0" -v t1="$t1" 'BEGIN {
	s = sprintf("total %.1fs", t1 - t0)
	if (a != "") s = s sprintf(", boot %.1fs", a)
	if (a != "" && b != "") s = s sprintf(", command %.1fs", b - a)
	print s }')
[ "$BOOTS" -eq 1 ] || timing="boot $boot of $BOOTS, $timing"
echo "$ME: $KVER: status $rc, $timing" >&2

if [ "$rc" = 0 ] && [ "$fail" = 1 ]; then
	rc=99
fi
if [ "$TMPSHARE" = 1 ]; then
	if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
		echo "$ME: logs kept in $C (console.log, dmesg, qemu.stderr; console.bootN.log, dmesg.bootN of killed boots)" >&2
	else
		rm -rf "$SHARE"
	fi
fi
exit "$rc"
}
