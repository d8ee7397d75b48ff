#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# fio benchmark, run inside the test VM by scripts/bench.sh (not a test: no
# pass/fail, it prints ratios). For an uncompressed and a zfile-lz4 two-layer
# stack: dm-overlaybd vs a loop device over the flattened raw image of the
# same stack, both reading files on the same ext4 (on a loop device over
# tmpfs, so "cold" = page cache dropped, the bytes still in RAM):
#   4 KiB random read QD1 and QD32, 1 MiB sequential read; cold and warm.
# Output: one line per case with both IOPS and the ratio device/loop.
. "$(dirname "$0")/lib.sh"

SIZE_MB=${OBD_BENCH_MB:-64}
RUNTIME=${OBD_BENCH_RUNTIME:-4}
obd=$OBD_TOP/build/obd
vm_load_module
# No module autoload inside the guest's chroot.
modprobe loop
modprobe ext4

fsimg=/tmp/bench-fs.img
truncate -s $((SIZE_MB * 6 + 256))M "$fsimg"
mkfs.ext4 -q -F "$fsimg"
fsdev=$(losetup -f --show "$fsimg")
d=/tmp/bench
mkdir -p "$d"
mount "$fsdev" "$d"
vm_on_exit losetup -d "$fsdev"
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

iops() {	# iops DEV RW BS QD -> IOPS (or MiB/s for sequential)
	fio --name=b --filename="$1" --rw="$2" --bs="$3" --iodepth="$4" --ioengine=libaio \
		--direct=1 --runtime="$RUNTIME" --time_based --readonly --output-format=json 2>/dev/null |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["jobs"][0]["read"]; print(int(r["iops"]) if sys.argv[1]=="randread" else int(r["bw"]/1024))' "$2"
}

printf '# kernel %s, %d MiB stack, fio runtime %ds per case\n' "$(uname -r)" "$SIZE_MB" "$RUNTIME"
printf '%-10s %-16s %-5s %10s %10s %6s\n' stack workload cache dm loop ratio
loopdev=$(losetup -f --show -r "$d/flat.img")
vm_on_exit losetup -d "$loopdev"
for kind in plain lz4; do
	dev=$("$obd" attach --name bench-$kind "$d/base.$kind" "$d/upper.$kind")
	for w in "randread 4k 1" "randread 4k 32" "read 1M 8"; do
		set -- $w
		for cache in cold warm; do
			# cold: nothing of either stack in the page cache; warm: all of
			# the device's backing files read once just before its own run
			# (O_DIRECT on the device, so only the layer or image files cache).
			prep() {
				if [ "$cache" = cold ]; then
					sync; echo 3 > /proc/sys/vm/drop_caches
				else
					dd if="$1" of=/dev/null bs=1M iflag=direct status=none
				fi
			}
			prep "$dev"
			a=$(iops "$dev" "$1" "$2" "$3")
			prep "$loopdev"
			b=$(iops "$loopdev" "$1" "$2" "$3")
			unit=IOPS; [ "$1" = read ] && unit=MiB/s
			printf '%-10s %-16s %-5s %10s %10s %6s\n' "$kind" "$1 $2 QD$3 $unit" "$cache" "$a" "$b" \
				"$(python3 -c "print('%.2f' % ($a / max($b, 1)))")"
		done
	done
	"$obd" detach bench-$kind
done
dmsetup status 2>/dev/null | sed 's/^/# /'
