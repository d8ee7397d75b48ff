#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Write benchmark of the writable upper layer, run inside the test VM by
# scripts/bench.sh (not a test: no pass/fail, it prints ratios). A lower
# layer of random data with (a) an append-mode upper (data + index) and
# (b) a sparse upper, against a loop device (buffered, --direct-io=off) over
# a sparse file of the same size; the upper files and the loop file on the
# same ext4 (on a virtio disk when scripts/bench.sh passes one, else a loop
# device over tmpfs):
#   4 KiB random write QD1 and QD32 (time based, RUNTIME s), 1 MiB
#   sequential write QD8 (one pass over the device, cut at RUNTIME s).
# fio, libaio, O_DIRECT on both block devices, end_fsync=1: every run ends
# with an fsync of the device (a flush: the upper's data and index synced,
# the loop file synced), and fio counts that time in the run's rate, so the
# figures are of durable writes.
# Each case runs REPEAT times, alternating which device goes first; each run
# gets a fresh upper and a fresh loop file, the page cache dropped before
# each device's run. Output: one line per case and upper kind: median IOPS
# (or MiB/s) of each device, the ratio of the medians (device/loop), the
# range of the per-run ratios and the target (0.8 random, 0.9 sequential).
# Then, as comments: each case's per-run values and the device's status
# after its last run. A device whose status shows write errors after a run
# gets a WARNING line, as do error lines of dm-overlaybd in the kernel log.
# OBD_BENCH_MB (device size, default 256: a sequential run of RUNTIME s
# under TCG fits without wrapping), OBD_BENCH_RUNTIME, OBD_BENCH_REPEAT,
# OBD_BENCH_UPPERS ("append sparse" or either) and OBD_BENCH_UPPER_CASES
# ("1 2 3": 4 KiB random QD1, QD32, 1 MiB sequential) select the work.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

SIZE_MB=${OBD_BENCH_MB:-256}
RUNTIME=${OBD_BENCH_RUNTIME:-3}
REPEAT=${OBD_BENCH_REPEAT:-5}
UPPERS=${OBD_BENCH_UPPERS:-append sparse}
CASES=${OBD_BENCH_UPPER_CASES:-1 2 3}	# 4K random QD1, QD32, 1M sequential
for kind in $UPPERS; do
	case $kind in append|sparse) ;; *) echo "OBD_BENCH_UPPERS: unknown upper '$kind' (append, sparse)" >&2; exit 2 ;; esac
done
obd=$OBD_TOP/build/obd
len=$((SIZE_MB * 2048))	# sectors
name=bench-upper
vm_load_module
# No module autoload inside the guest's chroot.
modprobe loop
modprobe ext4

# The files below both devices: ext4 on the first --scratch-disk of vm-run.sh (a
# virtio disk over a host file: parallel requests, like real storage), else
# on a loop device over tmpfs (one request at a time).
if [ -n "${OBD_VM_DISKS:-}" ]; then
	fsdev=$(vm_disk) || exit 1
	under="virtio disk $fsdev"
else
	fsimg=/tmp/bench-fs.img
	truncate -s $((SIZE_MB * 4 + 1024))M "$fsimg"
	fsdev=$(losetup -f --show "$fsimg")
	vm_on_exit losetup -d "$fsdev"
	under="loop over tmpfs"
fi
# No lazy init: ext4lazyinit would write inode tables during the runs.
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$fsdev"
d=/tmp/bench
mkdir -p "$d"
mount "$fsdev" "$d"
vm_on_exit umount "$d"

# The lower layer: random data (writes never read it; it sets the size).
head -c "${SIZE_MB}M" /dev/urandom > "$d/raw.img"
"$obd" create "$d/b.data" "$d/b.index" "${SIZE_MB}M" >/dev/null
"$obd" import --no-progress "$d/b.data" "$d/b.index" "$d/raw.img"
"$obd" commit --no-progress "$d/b.data" "$d/b.index" "$d/base.plain"
rm -f "$d/raw.img" "$d/b.data" "$d/b.index"

# One run's devices: $dev (dm-overlaybd over the lower with a fresh upper
# of KIND) and $loopdev (loop over a fresh sparse file), files in $r.
r=$d/run
dev='' loopdev=''
teardown() {
	[ -z "$dev" ] || dmsetup remove "$name"
	[ -z "$loopdev" ] || losetup -d "$loopdev"
	dev='' loopdev=''
	rm -rf "$r"
}
vm_on_exit teardown
setup() {
	local kind=$1 table
	mkdir -p "$r"
	if [ "$kind" = append ]; then
		"$obd" create "$r/up.data" "$r/up.index" "${SIZE_MB}M" >/dev/null || return 1
		table="0 $len overlaybd 1 $d/base.plain 3 upper $r/up.data $r/up.index"
	else
		"$obd" create -s "$r/up.data" "${SIZE_MB}M" >/dev/null || return 1
		table="0 $len overlaybd 1 $d/base.plain 3 upper $r/up.data -"
	fi
	dmsetup create "$name" --table "$table" || return 1
	dev=/dev/mapper/$name
	truncate -s "${SIZE_MB}M" "$r/loop.img"
	loopdev=$(losetup --direct-io=off -f --show "$r/loop.img") || return 1
}

# fio_val DEV RW BS QD -> IOPS (random) or MiB/s (sequential) of durable
# writes: end_fsync=1, and fio's runtime includes that fsync. Random:
# time based, RUNTIME s over the whole device. Sequential: one pass over
# the device, cut at RUNTIME s. 0 (and the error on stderr) if fio fails.
fio_val() {
	local dev=$1 rw=$2 bs=$3 qd=$4 extent out
	if [ "$rw" = randwrite ]; then
		extent=(--runtime="$RUNTIME" --time_based)
	else
		extent=(--size="${SIZE_MB}M" --runtime="$RUNTIME")
	fi
	out=$(fio --name=b --filename="$dev" --rw="$rw" --bs="$bs" --iodepth="$qd" --ioengine=libaio \
		--direct=1 --end_fsync=1 "${extent[@]}" --output-format=json 2>"$d/fio.err")
	python3 -c '
import json, sys
try:
    w = json.loads(sys.argv[2])["jobs"][0]["write"]
    print(int(w["iops"]) if sys.argv[1] == "randwrite" else int(w["bw"] / 1024))
except Exception as e:
    print(0)
    sys.exit(1)
' "$rw" "$out" || { echo "fio on $dev ($rw $bs QD$qd) failed: $(head -c 500 "$d/fio.err")" >&2; }
}

prep() {
	sync
	echo 3 > /proc/sys/vm/drop_caches
}


vm_dmesg_mark bench-upper
printf '# ext4 on %s\n' "$under"
printf '# kernel %s, %d MiB device, %d repetitions per case (order alternates), random runs %ds\n' \
	"$(uname -r)" "$SIZE_MB" "$REPEAT" "$RUNTIME"
printf '# libaio, O_DIRECT, end_fsync=1 (the final flush counted); sequential: one pass, at most %ds\n' \
	"$RUNTIME"
printf '%-6s %-21s %9s %9s %6s %11s %6s\n' upper workload dm loop ratio range target
notes=()
for kind in $UPPERS; do
	for c in $CASES; do
		case $c in
		1) set -- randwrite 4k 1; target=0.8 ;;
		2) set -- randwrite 4k 32; target=0.8 ;;
		3) set -- write 1M 8; target=0.9 ;;
		*) echo "OBD_BENCH_UPPER_CASES: unknown case '$c' (1 2 3)" >&2; exit 2 ;;
		esac
		a=() b=()
		for rep in $(seq "$REPEAT"); do
			setup "$kind" || { echo "setup of a $kind upper failed" >&2; exit 1; }
			# Alternate which device goes first: drift on a busy
			# host then hurts both sides alike.
			if [ $((rep % 2)) = 1 ]; then
				prep; a+=("$(fio_val "$dev" "$@")")
				prep; b+=("$(fio_val "$loopdev" "$@")")
			else
				prep; b+=("$(fio_val "$loopdev" "$@")")
				prep; a+=("$(fio_val "$dev" "$@")")
			fi
			st=$(dmsetup status "$name")
			we=$(sed -n 's/.* write_errors \([0-9]*\).*/\1/p' <<<"$st")
			[ "$we" = 0 ] || echo "# WARNING: $kind $1 $2 QD$3 run $rep: write_errors ${we:-?}: $st"
			teardown
		done
		notes+=("runs $kind $1 $2 QD$3: dm ${a[*]}, loop ${b[*]}"
			"status $kind $1 $2 QD$3, last run: ${st#*upper }")
		unit=IOPS; [ "$1" = write ] && unit=MiB/s
		read -r ma mb ratio range <<<"$(summary "${a[*]}" "${b[*]}")"
		printf '%-6s %-21s %9s %9s %6s %11s %6s\n' "$kind" "$1 $2 QD$3 $unit" \
			"$ma" "$mb" "$ratio" "$range" "$target"
	done
done
printf '# %s\n' "${notes[@]}"
errs=$(vm_dmesg_since bench-upper | grep -iE 'overlaybd.*(error|fail)|I/O error' || true)
[ -z "$errs" ] || printf '# WARNING: dmesg: %s\n' "$errs"
