#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 51-table-paths.sh: what the table names and what dm sees of it (issue #18,
# review kmod.md L1, L3, L5, L6, L8).
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/51-table-paths.sh
#   - relative layer and upper paths are refused (ti->error in dmesg);
#   - a layer path with a space and a backslash, written \040 and \134:
#     `dmsetup table` prints it so, `dmsetup reload` of that line + resume
#     gives the same bytes, and `obd list` reads the path back;
#   - no polled I/O: queue/io_poll is 0 (a table of files, and one with a
#     block-device layer);
#   - a loop device as a layer is held through dm: it is under slaves/, and
#     a table naming the device's own node is refused;
#   - a remote layer whose cache file is truncated under the device (the
#     .meta still says present): reads of the lost range fail with EIO
#     instead of returning zeros, io_errors counts them;
#   - all in the page cache (ZFile on ext4, which honours IOCB_NOWAIT): a
#     64 KiB read is served inline, a 1 MiB one is begun inline and the
#     worker decodes past 128 KiB ("resumed"), same bytes.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

obd=$OBD_TOP/build/obd
PY=/usr/bin/python3
[ -x "$obd" ] || bail "$obd missing: run make first"
vm_test_begin 51-table-paths
mark() { local m="obd51-$RANDOM$RANDOM"; echo "obd-test: $m" >/dev/kmsg; echo "$m"; }
since() { dmesg | awk -v m="obd-test: $1" 'f; index($0, m) { f = 1 }'; }
devsha() { sha256sum <"/dev/mapper/$1" | cut -d' ' -f1; }
dmnode() { echo "dm-$(dmsetup info -c --noheadings -o minor "$1" | tr -d ' ')"; }
refused() {	# <description> <expected ti->error> <dmsetup args...>
	local desc=$1 want=$2 m; shift 2
	m=$(mark)
	if dmsetup "$@" 2>/dev/null; then
		not_ok "$desc: accepted"
		return 1
	fi
	if since "$m" | grep -q "overlaybd: $want"; then
		ok "$desc: '$want'"
	else
		not_ok "$desc: no '$want' in dmesg"
		since "$m" | sed 's/^/# /'
	fi
}

# --- a 1 MiB image: 256 KiB at 0, 8 KiB at 256K and 512K; plain and ZFile
head -c 262144 /dev/urandom >r1
head -c 8192 /dev/urandom >r2
check "build layers" bash -c "
	'$obd' create a.data a.index 1M &&
	'$obd' write a.data a.index --offset 0 r1 &&
	'$obd' write a.data a.index --offset 256K r2 &&
	'$obd' write a.data a.index --offset 512K r2 &&
	'$obd' commit --no-progress a.data a.index l.commit &&
	'$obd' commit --no-progress -z a.data a.index l.zfile &&
	'$obd' cat --no-progress -o good.img l.commit" || bail "cannot build layers"
good=$(sha256sum <good.img | cut -d' ' -f1)

# --- L3: relative paths --------------------------------------------------------
refused "relative layer path" "Layer path must be absolute" \
	create obd51-rel --readonly --table "0 2048 overlaybd 1 l.commit"
dmsetup remove obd51-rel 2>/dev/null
check "obd create upper" "$obd" create u.data u.index 1M
refused "relative upper paths" "Upper layer paths must be absolute" \
	create obd51-rel --table "0 2048 overlaybd 1 $d/l.commit 3 upper u.data u.index"
dmsetup remove obd51-rel 2>/dev/null

# --- L3: a path with a space and a backslash survives dmsetup table -> reload.
# libdevmapper doubles each backslash and dm_split_args halves them, so the
# target sees what dmsetup was given: white space and backslashes are written
# \ooo (octal), which the target decodes and prints back.
sp="$d/dir with space"
mkdir "$sp" && cp l.commit "$sp/l\\x.commit"
esc="$d/dir\\040with\\040space/l\\134x.commit"
check "a layer path with a space loads (\\040)" \
	dmsetup create obd51-sp --readonly --table "0 2048 overlaybd 1 $esc"
check_eq "its content" "$(devsha obd51-sp)" "$good"
t=$(dmsetup table obd51-sp)
check_eq "dmsetup table escapes it" "$t" "0 2048 overlaybd 1 $esc"
check "dmsetup reload of that line" dmsetup reload obd51-sp --readonly --table "$t"
check "resume" dmsetup resume obd51-sp
check_eq "same content after the reload" "$(devsha obd51-sp)" "$good"
check "obd list names the path" bash -c "'$obd' list 2>&1 | grep -qF '$sp/l\\x.commit'"

# --- L1: no polled I/O -----------------------------------------------------------
check_eq "io_poll of a table of files" "$(cat "/sys/block/$(dmnode obd51-sp)/queue/io_poll")" 0
dmsetup remove obd51-sp

# --- L5: a block-device layer, and the device's own node
lo=$(vm_loop_attach "$d/l.commit" ro) || bail "losetup"
vm_on_exit losetup -d "$lo"
check "a loop device as the layer" \
	dmsetup create obd51-lo --readonly --table "0 2048 overlaybd 1 $lo"
n=$(dmnode obd51-lo)
check_eq "its content" "$(devsha obd51-lo)" "$good"
check "the loop device is under slaves/" test -e "/sys/block/$n/slaves/$(basename "$lo")"
check "and the dm device under its holders/" test -e "/sys/block/$(basename "$lo")/holders/$n"
check_eq "io_poll with a block-device layer" "$(cat "/sys/block/$n/queue/io_poll")" 0
refused "reload naming the device itself (/dev/mapper)" "A layer cannot be the device itself" \
	reload obd51-lo --table "0 2048 overlaybd 1 /dev/mapper/obd51-lo"
refused "reload naming the device itself (/dev/dm-N)" "A layer cannot be the device itself" \
	reload obd51-lo --table "0 2048 overlaybd 2 $d/l.commit /dev/$n"
check_eq "still serving the loop layer" "$(devsha obd51-lo)" "$good"
dmsetup remove obd51-lo
check "slaves/ link gone with the device" test ! -e "/sys/block/$(basename "$lo")/holders/$n"

# --- L6: a truncated cache file of a remote layer ----------------------------------
tok=$(PYTHONPATH="$OBD_TOP/tests/vm" $PY - "$d/l.commit" "$d/cache" <<'PYEOF'
import hashlib, os, sys
import remote_lib as R
data = open(sys.argv[1], "rb").read()
dg = hashlib.sha256(data).digest()
os.makedirs(sys.argv[2], exist_ok=True)
path = os.path.join(sys.argv[2], "sha256:" + dg.hex())
open(path, "wb").write(data)
bits = bytearray(R.bitmap_bytes(len(data)))
for g in range((len(data) + R.GRANULE - 1) // R.GRANULE):
    bits[g // 8] |= 1 << (g % 8)
with open(path + ".meta", "wb") as f:
    f.write(R.cache_header(len(data), dg, "http://127.0.0.1:5000/v2/x/blobs/sha256:" + dg.hex()))
    f.write(bits)
print("remote:%d:sha256:%s:%s" % (len(data), dg.hex(), path))
PYEOF
) || bail "cannot make the cache entry"
cache=${tok#remote:*:sha256:*:}
check "a complete remote layer loads" \
	dmsetup create obd51-rem --readonly --table "0 2048 overlaybd 1 $tok"
check_eq "its content" "$(devsha obd51-rem)" "$good"
# the data is in the file's first 272 KiB or so; keep the header page only
truncate -s 4096 "$cache"
sync; echo 3 >/proc/sys/vm/drop_caches
m=$(mark)
e0=$(stat_field obd51-rem io_errors)
out=$(dd if=/dev/mapper/obd51-rem of=/dev/null bs=64k count=1 iflag=direct 2>&1)
check "a read of the lost range fails ($out)" bash -c "[[ '$out' == *'Input/output error'* ]]"
e1=$(stat_field obd51-rem io_errors)
check "io_errors counts it ($e0 -> $e1)" test "$e1" -gt "$e0"
check "the log names the truncated cache file" bash -c "dmesg | awk -v m='obd-test: $m' 'f; index(\$0, m) { f = 1 }' | grep -q 'cache file ends at byte'"
check_eq "a hole still reads zeros" \
	"$(dd if=/dev/mapper/obd51-rem bs=64k skip=12 count=1 iflag=direct status=none | tr -d '\0' | wc -c)" 0
dmsetup remove obd51-rem

# --- L8: inline reads decode a bounded amount ----------------------------------------
modprobe ext4 2>/dev/null
truncate -s 64M e4.img && mkfs.ext4 -q -F e4.img && e4lo=$(losetup -f --show e4.img) &&
	mkdir -p e4 && mount "$e4lo" e4 && cp l.zfile e4/
check "ext4 for the layer file" mountpoint -q e4
vm_on_exit losetup -d "$e4lo"
vm_on_exit umount "$d/e4"
check "ZFile layer on ext4" dmsetup create obd51-z --readonly --table "0 2048 overlaybd 1 $d/e4/l.zfile"
check_eq "cold content" "$(dd if=/dev/mapper/obd51-z bs=64k iflag=direct status=none | sha256sum | cut -d' ' -f1)" "$good"
check_eq "warm content" "$(dd if=/dev/mapper/obd51-z bs=64k iflag=direct status=none | sha256sum | cut -d' ' -f1)" "$good"
i0=$(stat_field obd51-z inline); r0=$(stat_field obd51-z resumed)
dd if=/dev/mapper/obd51-z of=/dev/null bs=64k count=1 iflag=direct status=none
i1=$(stat_field obd51-z inline); r1=$(stat_field obd51-z resumed)
check "a warm 64 KiB read (16 blocks) is inline ($i0 -> $i1, resumed $r0 -> $r1)" \
	test "$((i1 - i0))" -eq 1 -a "$r1" -eq "$r0"
check_eq "a warm 1 MiB read" \
	"$(dd if=/dev/mapper/obd51-z bs=1M count=1 iflag=direct status=none | sha256sum | cut -d' ' -f1)" "$good"
i2=$(stat_field obd51-z inline); r2=$(stat_field obd51-z resumed)
check "it is begun inline and resumed by the worker (inline $i1 -> $i2, resumed $r1 -> $r2)" \
	test "$((r2 - r1))" -ge 1 -a "$i2" -eq "$i1"
dmsetup remove obd51-z

vm_dmesg_check 51-table-paths
tap_done
