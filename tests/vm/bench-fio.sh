#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# fio benchmark, run inside the test VM by scripts/bench.sh (not a test: no
# pass/fail, it prints ratios). For an uncompressed and a zfile-lz4 two-layer
# stack: dm-overlaybd vs a loop device over the flattened raw image of the
# same stack, both reading files on the same ext4 (on a virtio disk when
# scripts/bench.sh passes one, else a loop device over tmpfs; "cold" = the
# guest's page cache dropped, the bytes still in the host's RAM):
#   4 KiB random read QD1 and QD32, 1 MiB sequential read; cold and warm.
# Each case runs REPEAT times, alternating which device goes first.
# Output: one line per case: median IOPS (or MiB/s) of each device, the
# ratio of the medians (device/loop) and the range of the per-run ratios.
. "$(dirname "$0")/lib.sh"

SIZE_MB=${OBD_BENCH_MB:-64}
RUNTIME=${OBD_BENCH_RUNTIME:-3}
REPEAT=${OBD_BENCH_REPEAT:-5}
STACKS=${OBD_BENCH_STACKS:-plain lz4}
for kind in $STACKS; do
	case $kind in plain|lz4) ;; *) echo "OBD_BENCH_STACKS: unknown stack '$kind' (plain, lz4)" >&2; exit 2 ;; esac
done
obd=$OBD_TOP/build/obd
vm_load_module
# No module autoload inside the guest's chroot.
modprobe loop
modprobe ext4

# The files below both devices: ext4 on the first --scratch-disk of vm-run.sh (a
# virtio disk over a host file: parallel requests, like real storage), else
# on a loop device over tmpfs (one request at a time).
if [ -n "${OBD_VM_DISKS:-}" ]; then
	modprobe virtio_blk
	fsdev=${OBD_VM_DISKS%% *}
	for _ in $(seq 50); do [ -b "$fsdev" ] && break; sleep 0.1; done
	under="virtio disk $fsdev"
else
	fsimg=/tmp/bench-fs.img
	truncate -s $((SIZE_MB * 6 + 256))M "$fsimg"
	fsdev=$(losetup -f --show "$fsimg")
	vm_on_exit losetup -d "$fsdev"
	under="loop over tmpfs"
fi
mkfs.ext4 -q -F "$fsdev"
d=/tmp/bench
mkdir -p "$d"
mount "$fsdev" "$d"
vm_on_exit umount "$d"

# Half random, half text: compressible like a real image.
half=$((SIZE_MB / 2))
{ head -c "${half}M" /dev/urandom
  yes "$(head -c 3000 /usr/share/common-licenses/GPL-2 | tr '\n' ' ')" | head -c "${half}M"; } > "$d/raw.img"
"$obd" create "$d/b.data" "$d/b.index" "${SIZE_MB}M" >/dev/null
"$obd" import --no-progress "$d/b.data" "$d/b.index" "$d/raw.img"
"$obd" create "$d/u.data" "$d/u.index" "${SIZE_MB}M" >/dev/null
for i in $(seq 0 97 $((SIZE_MB * 16 - 1))); do
	head -c 65536 /dev/urandom | "$obd" write "$d/u.data" "$d/u.index" --offset $((i * 65536)) -
done
"$obd" commit --no-progress "$d/b.data" "$d/b.index" "$d/base.plain"
"$obd" commit --no-progress "$d/u.data" "$d/u.index" "$d/upper.plain"
"$obd" commit --no-progress -z "$d/b.data" "$d/b.index" "$d/base.lz4"
"$obd" commit --no-progress -z "$d/u.data" "$d/u.index" "$d/upper.lz4"
"$obd" cat --no-progress -o "$d/flat.img" "$d/base.plain" "$d/upper.plain"
rm -f "$d/raw.img" "$d"/*.data "$d"/*.index

# fio_val DEV RW BS QD CACHE -> IOPS (random) or MiB/s (sequential).
# cold: each block read at most once (fio's random map; one sequential pass),
# a quarter of the device for random reads, so every read misses the page
# cache of the files below. warm: time based, RUNTIME seconds.
fio_val() {
	local dev=$1 rw=$2 bs=$3 qd=$4 cache=$5 extent
	if [ "$cache" = cold ]; then
		if [ "$rw" = randread ]; then
			extent=(--number_ios=$((SIZE_MB * 256 / 4)))
		else
			extent=(--size="${SIZE_MB}M")
		fi
	else
		extent=(--runtime="$RUNTIME" --time_based)
	fi
	fio --name=b --filename="$dev" --rw="$rw" --bs="$bs" --iodepth="$qd" --ioengine=libaio \
		--direct=1 --readonly "${extent[@]}" --output-format=json 2>/dev/null |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["jobs"][0]["read"]; print(int(r["iops"]) if sys.argv[1]=="randread" else int(r["bw"]/1024))' "$rw"
}

# prep DEV CACHE: cold = nothing of either stack in the page cache; warm =
# all of DEV's backing files read once just before its own run (O_DIRECT on
# the device, so only the layer or image files cache).
prep() {
	if [ "$2" = cold ]; then
		sync; echo 3 > /proc/sys/vm/drop_caches
	else
		dd if="$1" of=/dev/null bs=1M iflag=direct status=none
	fi
}


printf '# ext4 on %s\n' "$under"
printf '# kernel %s, %d MiB stack, %d repetitions per case (order alternates), warm runs %ds\n' \
	"$(uname -r)" "$SIZE_MB" "$REPEAT" "$RUNTIME"
printf '# cold random: %d distinct 4 KiB blocks per run; cold sequential: one pass\n' \
	$((SIZE_MB * 256 / 4))
printf '%-6s %-20s %-5s %9s %9s %6s %11s\n' stack workload cache dm loop ratio range
loopdev=$(losetup -f --show -r "$d/flat.img")
vm_on_exit losetup -d "$loopdev"
for kind in $STACKS; do
	dev=$("$obd" attach --name bench-$kind "$d/base.$kind" "$d/upper.$kind")
	for w in "randread 4k 1" "randread 4k 32" "read 1M 8"; do
		set -- $w
		for cache in cold warm; do
			a=() b=()
			for rep in $(seq "$REPEAT"); do
				# Alternate which device goes first: drift on a busy
				# host then hurts both sides alike.
				if [ $((rep % 2)) = 1 ]; then
					prep "$dev" "$cache"; a+=("$(fio_val "$dev" "$@" "$cache")")
					prep "$loopdev" "$cache"; b+=("$(fio_val "$loopdev" "$@" "$cache")")
				else
					prep "$loopdev" "$cache"; b+=("$(fio_val "$loopdev" "$@" "$cache")")
					prep "$dev" "$cache"; a+=("$(fio_val "$dev" "$@" "$cache")")
				fi
			done
			unit=IOPS; [ "$1" = read ] && unit=MiB/s
			read -r ma mb ratio range <<<"$(summary "${a[*]}" "${b[*]}")"
			printf '%-6s %-20s %-5s %9s %9s %6s %11s\n' "$kind" "$1 $2 QD$3 $unit" \
				"$cache" "$ma" "$mb" "$ratio" "$range"
		done
	done
	"$obd" detach bench-$kind
done
dmsetup status 2>/dev/null | sed 's/^/# /'
