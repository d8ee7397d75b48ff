#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 10-target.sh: the overlaybd dm target, inside a test VM (scripts/vm-run.sh):
#   scripts/vm-run.sh --kernel 6.1 -- tests/vm/10-target.sh
# Builds stacks from the reference images and checks their content (sha256 of
# the whole device), read-only behaviour, table validation and round trip,
# status counters, a read-write table without an upper refused, layer sharing, O_DIRECT, block-device layers, a corrupt
# ZFile block, and that rmmod leaves nothing behind. TAP output.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
ref=$top/tests/data/overlaybd-ref
kver=$(uname -r)
ko=$top/kmod/build-$kver/dm-overlaybd.ko
param=/sys/module/dm_overlaybd/parameters/layers_parsed
sha_l1=2f0aaac9524d2897789b77575cd5c3145b9b634da4a5214c5cad92176545e75b
sha_l1l2=fde68d5fbdf5f9582175537e5b942a8debbf33a5d4959cd24fc79adbf424bd81
len=131072	# 64 MiB in sectors
n=0; fail=0

ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; fail=$((fail + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else nok "$d"; fi; }
is() { if [ "$2" = "$3" ]; then ok "$1"; else nok "$1: got '$2', expected '$3'"; fi; }
bail() { echo "Bail out! $*"; exit 1; }
devsha() { sha256sum "/dev/mapper/$1" 2>/dev/null | cut -d' ' -f1; }
# read-only tables: a read-write one needs an upper layer (40-upper.sh)
mk() { local name=$1; shift; dmsetup create "$name" --readonly --table "$*"; }
# this test has its own TAP helpers, not lib.sh's: lib.sh's stat_field, alone
stat_field() { dmsetup status "$1" | awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) { print $(i + 1); exit } }'; }
# The dmesg lines logged since the mark.
mark() { dmesg | wc -l; }
since() { dmesg | tail -n +"$(($1 + 1))"; }

[ -r "$ko" ] || bail "no module for $kver: build it with make -C kmod KDIR=..."
modprobe dm-mod || bail "modprobe dm-mod"
modprobe loop 2>/dev/null
insmod "$ko" || bail "insmod $ko"
ok "insmod dm-overlaybd on $kver"
dmsetup targets | grep -q '^overlaybd ' && ok "target overlaybd registered" || nok "target overlaybd registered"

# Writable copies on tmpfs (page cache without read_folio, O_DIRECT differs by kernel).
cp "$ref/l1.commit" "$ref/l1.commit.lz4.zfile" "$ref/l2.commit.lz4.zfile.tar" /tmp/

# --- content -------------------------------------------------------------
mk obd-l1 "0 $len overlaybd 1 $ref/l1.commit"; check "create l1 (LSMT)" [ $? -eq 0 ]
is "l1 (LSMT) sha256" "$(devsha obd-l1)" "$sha_l1"
mk obd-l1z "0 $len overlaybd 1 $ref/l1.commit.lz4.zfile"
is "l1 (ZFile LZ4) sha256" "$(devsha obd-l1z)" "$sha_l1"
mk obd-l1l2 "0 $len overlaybd 2 $ref/l1.commit.lz4.zfile $ref/l2.commit.lz4.zfile.tar"
is "l1 under l2 (ZFile, tar(ZFile)) sha256" "$(devsha obd-l1l2)" "$sha_l1l2"
mk obd-mix "0 $len overlaybd 2 /tmp/l1.commit /tmp/l2.commit.lz4.zfile.tar"
is "l1 (LSMT on tmpfs) under l2 sha256" "$(devsha obd-mix)" "$sha_l1l2"
is "read with O_DIRECT, 4 KiB blocks" \
	"$(dd if=/dev/mapper/obd-l1l2 bs=4096 iflag=direct status=none | sha256sum | cut -d' ' -f1)" "$sha_l1l2"
is "unaligned-size reads (bs=3584)" \
	"$(dd if=/dev/mapper/obd-l1z bs=3584 iflag=direct status=none | sha256sum | cut -d' ' -f1)" "$sha_l1"

# zstd and 64 KiB blocks (incompressible data: stored blocks larger than 64 KiB),
# written by our own obd tool, if it is built.
obd=$top/build/obd
for v in "zstd 64" "zstd 4" "lz4 64"; do
	set -- $v
	z=/tmp/l1.$1.$2k.zfile
	if [ -x "$obd" ] && "$obd" zfile -f --algorithm "$1" --bs "$2" /tmp/l1.commit "$z" >/dev/null 2>&1; then
		mk "obd-$1-$2" "0 $len overlaybd 1 $z"
		is "l1 as ZFile $1 ${2}K sha256" "$(devsha obd-$1-$2)" "$sha_l1"
		dmsetup remove "obd-$1-$2"
	else
		n=$((n + 1)); echo "ok $n - l1 as ZFile $1 ${2}K # SKIP obd zfile not available"
	fi
done

# Parallel readers, 4 KiB and 12 KiB direct reads in shuffled order, per-chunk
# sha256: two readers a device, each on a quarter of the 64 chunks (every
# fourth line), so each chunk is read once, on one of the two devices, while
# the other three readers run (both devices' whole sha256 is checked above).
# Each reader counts the chunks it compared: the guest once had
# no /dev/fd, shuf --random-source=<(...) failed, and the readers compared
# nothing and passed.
jq -r '.chunks[] | "\(.offset) \(.sha256)"' "$ref/expected_l1l2.json" > /tmp/chunks
nchunks=$(wc -l < /tmp/chunks)
for w in 0 1 2 3; do
	dev=obd-l1l2; bs=4096; [ $((w % 2)) -eq 1 ] && { dev=obd-mix; bs=12288; }
	yes "$w" | head -c 65536 > /tmp/rand.$w
	awk -v w=$w 'NR % 4 == w' /tmp/chunks > /tmp/chunks.$w
	(shuf --random-source=/tmp/rand.$w /tmp/chunks.$w | while read -r off sha; do
		got=$(dd if=/dev/mapper/$dev bs=$bs iflag=direct,skip_bytes,count_bytes \
			skip="$off" count=1048576 status=none | sha256sum | cut -d' ' -f1)
		[ "$got" = "$sha" ] || echo "$dev chunk $off: $got"
		echo "$off" >> /tmp/par.$w.done
	done > /tmp/par.$w) &
done
wait
bad_chunks=$(cat /tmp/par.[0-3])
for w in 0 1 2 3; do
	[ "$(sort -u /tmp/par.$w.done 2>/dev/null | wc -l)" = "$(wc -l < /tmp/chunks.$w)" ] ||
		bad_chunks+=" reader $w compared $(wc -l < /tmp/par.$w.done 2>/dev/null || echo 0) of $(wc -l < /tmp/chunks.$w) chunks"
done
[ "$(sort -u /tmp/par.[0-3].done 2>/dev/null | wc -l)" = "$nchunks" ] ||
	bad_chunks+=" not all $nchunks chunks compared"
check "64 chunks to compare" [ "$nchunks" = 64 ]
is "4 parallel readers (2 devices), 16 chunks each, all 64 compared, per-chunk sha256" "$bad_chunks" ""

# --- status ----------------------------------------------------------------
r0=$(stat_field obd-l1z reads); z0=$(stat_field obd-l1z zblocks)
dd if=/dev/mapper/obd-l1z of=/dev/null bs=1M count=4 iflag=direct status=none
r1=$(stat_field obd-l1z reads); z1=$(stat_field obd-l1z zblocks)
check "status: reads move ($r0 -> $r1)" [ "$r1" -gt "$r0" ]
check "status: zblocks move ($z0 -> $z1)" [ "$z1" -gt "$z0" ]
st=$(dmsetup status obd-l1l2)
check "status INFO format ($st)" bash -c "[[ '$st' =~ ^0\ $len\ overlaybd\ 2\ reads\ [0-9]+\ inline\ [0-9]+\ resumed\ [0-9]+\ bytes\ [0-9]+\ zblocks\ [0-9]+\ crc_errors\ 0\ io_errors\ 0\ remote\ 0\ pending\ 0\ fetched\ 0\ daemon\ [01]$ ]]"

# --- inline reads ----------------------------------------------------------
# Page cache hits are served in map() with IOCB_NOWAIT reads, which needs a
# file system with FMODE_NOWAIT (ext4; not tmpfs on 6.1, not the host share):
# layer files on ext4 over a loop device. Cold misses go to the worker, warm
# reads are inline, with the same bytes (all but a few: a read reaching a
# page still marked for readahead goes to the worker, which starts it and
# clears the mark); direct_io never goes inline.
ddsha() { dd if="/dev/mapper/$1" bs=64k iflag=direct status=none | sha256sum | cut -d' ' -f1; }
modprobe ext4 2>/dev/null
truncate -s 256M /tmp/e4.img && mkfs.ext4 -q -F /tmp/e4.img && e4lo=$(losetup -f --show /tmp/e4.img) &&
	mkdir -p /tmp/e4 && mount "$e4lo" /tmp/e4 && cp "$ref/l1.commit" "$ref/l1.commit.lz4.zfile" \
	"$ref/l2.commit.lz4.zfile.tar" /tmp/e4/
check "ext4 for layer files" mountpoint -q /tmp/e4
mk obd-inp "0 $len overlaybd 1 /tmp/e4/l1.commit"
mk obd-inz "0 $len overlaybd 2 /tmp/e4/l1.commit.lz4.zfile /tmp/e4/l2.commit.lz4.zfile.tar"
mk obd-ind "0 $len overlaybd 1 /tmp/e4/l1.commit 1 direct_io"
for dev in "obd-inp $sha_l1" "obd-inz $sha_l1l2" "obd-ind $sha_l1"; do
	set -- $dev
	sync; echo 3 > /proc/sys/vm/drop_caches
	r0=$(stat_field "$1" reads); i0=$(stat_field "$1" inline)
	is "$1: cold sha256 (64 KiB direct reads)" "$(ddsha "$1")" "$2"
	r1=$(stat_field "$1" reads); i1=$(stat_field "$1" inline)
	is "$1: warm sha256 (64 KiB direct reads)" "$(ddsha "$1")" "$2"
	r2=$(stat_field "$1" reads); i2=$(stat_field "$1" inline)
	# Readahead started by the first misses makes most of a sequential cold pass hits.
	check "$1: cold pass: misses went to the worker (inline $((i1 - i0)) of $((r1 - r0)))" \
		[ $((i1 - i0)) -lt $((r1 - r0)) ]
	if [ "$1" = obd-ind ]; then
		is "$1: direct_io: no inline reads" "$i2" 0
	else
		check "$1: warm pass inline (inline $((i2 - i1)) of $((r2 - r1)))" \
			[ $((i2 - i1)) -ge $((r2 - r1 - (r2 - r1) / 100)) ]
	fi
done
# Half in the page cache: every other 64 KiB of the layer files cached (no
# readahead), then 1 MiB direct reads. Bios start inline, stop at their first
# miss and the worker goes on from there ("resumed"); same bytes.
halfwarm() {
	sync; echo 3 > /proc/sys/vm/drop_caches
	python3 - "$@" <<'PY'
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    for off in range(0, os.fstat(fd).st_size, 128 << 10):
        os.pread(fd, 64 << 10, off)
    os.close(fd)
PY
}
for dev in "obd-inp $sha_l1 l1.commit" "obd-inz $sha_l1l2 l1.commit.lz4.zfile l2.commit.lz4.zfile.tar"; do
	set -- $dev
	files=("${@:3}")
	halfwarm "${files[@]/#//tmp/e4/}"
	r0=$(stat_field "$1" resumed); z0=$(stat_field "$1" zblocks)
	is "$1: half-cached sha256 (1 MiB direct reads)" \
		"$(dd if="/dev/mapper/$1" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1)" "$2"
	r1=$(stat_field "$1" resumed); z1=$(stat_field "$1" zblocks)
	check "$1: half-cached: reads resumed by the worker ($((r1 - r0)))" [ $((r1 - r0)) -gt 0 ]
	if [ "$1" = obd-inz ]; then
		# Now all cached: 1 MiB bios start inline and the worker goes
		# on past 128 KiB of decoded blocks. A resumed bio decodes no
		# block twice, so both passes decode the same number.
		ddsha obd-inz >/dev/null
		dd if=/dev/mapper/obd-inz of=/dev/null bs=1M iflag=direct status=none
		z2=$(stat_field "$1" zblocks)
		dd if=/dev/mapper/obd-inz of=/dev/null bs=1M iflag=direct status=none
		is "$1: ZFile blocks decoded, half-cached pass = warm pass" \
			"$((z1 - z0))" "$(($(stat_field "$1" zblocks) - z2))"
	fi
done
# 3.5 KiB reads: pieces and ZFile blocks cut at odd places, all inline now.
r0=$(stat_field obd-inz reads); i0=$(stat_field obd-inz inline)
is "obd-inz: warm sha256 (3.5 KiB direct reads)" \
	"$(dd if=/dev/mapper/obd-inz bs=3584 iflag=direct status=none | sha256sum | cut -d' ' -f1)" "$sha_l1l2"
r1=$(stat_field obd-inz reads); i1=$(stat_field obd-inz inline)
check "obd-inz: 3.5 KiB reads inline (inline $((i1 - i0)) of $((r1 - r0)))" \
	[ $((i1 - i0)) -ge $((r1 - r0 - (r1 - r0) / 100)) ]
st=$(dmsetup status obd-inz)
check "obd-inz: no errors ($st)" bash -c "[[ '$st' =~ crc_errors\ 0\ io_errors\ 0\ remote\ 0\ pending\ 0\ fetched\ 0\ daemon\ [01]$ ]]"
dmsetup remove obd-inp; dmsetup remove obd-inz; dmsetup remove obd-ind
umount /tmp/e4; losetup -d "$e4lo"; rm -f /tmp/e4.img

# --- read-only -------------------------------------------------------------
dd if=/dev/zero of=/dev/mapper/obd-l1 bs=4096 count=1 oflag=direct status=none 2>/dev/null
check "write fails" [ $? -ne 0 ]
blkdiscard /dev/mapper/obd-l1 2>/dev/null
check "discard fails" [ $? -ne 0 ]
is "content unchanged after write attempts" "$(devsha obd-l1)" "$sha_l1"
blockdev --flushbufs /dev/mapper/obd-l1; check "flush succeeds" [ $? -eq 0 ]

# --- table round trip ---------------------------------------------------------
t=$(dmsetup table obd-l1l2)
is "table prints back" "$t" "0 $len overlaybd 2 $ref/l1.commit.lz4.zfile $ref/l2.commit.lz4.zfile.tar"
mk obd-rt "$t"; check "table output loads again" [ $? -eq 0 ]
is "round-tripped device sha256" "$(devsha obd-rt)" "$sha_l1l2"
dmsetup remove obd-rt
mk obd-opt "0 $len overlaybd 1 $ref/l1.commit 2 no_verify direct_io"
is "optional args recounted" "$(dmsetup table obd-opt)" "0 $len overlaybd 1 $ref/l1.commit 2 direct_io no_verify"
dmsetup remove obd-opt

# --- bad tables ---------------------------------------------------------------
bad() {	# <description> <expected ti->error> <table>
	local d=$1 want=$2 m; shift 2
	m=$(mark)
	if dmsetup create obd-bad --table "$*" 2>/dev/null; then
		nok "$d: accepted"; dmsetup remove obd-bad; return
	fi
	if since "$m" | grep -q "overlaybd: $want"; then ok "$d: '$want'"; else
		nok "$d: no '$want' in dmesg"; since "$m" | sed 's/^/# /'; fi
}
bad "wrong length" "Target length does not match the image size" "0 8 overlaybd 1 $ref/l1.commit"
bad "missing file" "Cannot open layer" "0 $len overlaybd 1 /nonexistent"
bad "not an image" "Invalid layer" "0 $len overlaybd 1 $ref/README.md"
bad "directory" "Layer is not a regular file or block device" "0 $len overlaybd 1 /tmp"
bad "zero layers, no upper" "A table without lower layers needs an upper layer" "0 $len overlaybd 0"
bad "256 layers" "Invalid number of layers" "0 $len overlaybd 256 $ref/l1.commit"
bad "too few paths" "Not enough layer paths" "0 $len overlaybd 3 $ref/l1.commit"
bad "unknown option" "Unrecognized optional argument" "0 $len overlaybd 1 $ref/l1.commit 1 fast"
bad "option count" "Invalid number of optional arguments" "0 $len overlaybd 1 $ref/l1.commit 8 a b c d e f g h"
bad "hold_timeout without a value" "Invalid hold_timeout" "0 $len overlaybd 1 $ref/l1.commit 1 hold_timeout"
bad "hold_timeout not a number" "Invalid hold_timeout" "0 $len overlaybd 1 $ref/l1.commit 2 hold_timeout 3s"
bad "hold_timeout too large" "Invalid hold_timeout" "0 $len overlaybd 1 $ref/l1.commit 2 hold_timeout 86401"
bad "remote: no size" "Invalid remote layer size" "0 $len overlaybd 1 remote:"
bad "remote: size not a number" "Invalid remote layer size" "0 $len overlaybd 1 remote:12x:sha256:0000000000000000000000000000000000000000000000000000000000000000:/tmp/c"
bad "remote: size 0" "Invalid remote layer size" "0 $len overlaybd 1 remote:0:sha256:0000000000000000000000000000000000000000000000000000000000000000:/tmp/c"
bad "remote: bad digest" "Invalid remote layer digest" "0 $len overlaybd 1 remote:4096:sha256:xyz:/tmp/c"
bad "remote: upper-case digest" "Invalid remote layer digest" "0 $len overlaybd 1 remote:4096:sha256:$(printf 'A%.0s' $(seq 64)):/tmp/c"
bad "remote: relative cache path" "Invalid remote layer cache path" "0 $len overlaybd 1 remote:4096:sha256:0000000000000000000000000000000000000000000000000000000000000000:tmp/c"
bad "remote: missing cache file" "Cannot open remote layer cache file" "0 $len overlaybd 1 remote:4096:sha256:0000000000000000000000000000000000000000000000000000000000000000:/nonexistent"
truncate -s 4096 /tmp/obd-nometa
bad "remote: no .meta beside the cache file" "Cannot open remote layer cache metadata" "0 $len overlaybd 1 remote:4096:sha256:0000000000000000000000000000000000000000000000000000000000000000:/tmp/obd-nometa"
bad "remote: cache file of another size" "Invalid remote layer cache file" "0 $len overlaybd 1 remote:8192:sha256:0000000000000000000000000000000000000000000000000000000000000000:/tmp/obd-nometa"
head -c 8192 /dev/urandom > /tmp/obd-nometa.meta
bad "remote: garbage .meta" "Invalid remote layer cache metadata" "0 $len overlaybd 1 remote:4096:sha256:0000000000000000000000000000000000000000000000000000000000000000:/tmp/obd-nometa"
rm -f /tmp/obd-nometa /tmp/obd-nometa.meta
bad "read-write without an upper layer" "A table without an upper layer must be read-only" "0 $len overlaybd 1 $ref/l1.commit"
bad "trailing garbage" "Too many arguments" "0 $len overlaybd 1 $ref/l1.commit 1 no_verify x"
m=$(mark); dmsetup create obd-bad --table "0 $len overlaybd 1 $ref/README.md" 2>/dev/null
since "$m" | grep -q "overlaybd: .*README.md" && ok "DMERR names the layer" || nok "DMERR names the layer"

# --- sharing ------------------------------------------------------------------
p0=$(cat $param)
mk obd-l1b "0 $len overlaybd 1 $ref/l1.commit"
p1=$(cat $param)
is "second device on the same layer parses nothing ($p0 -> $p1)" "$p1" "$p0"
is "shared device sha256" "$(devsha obd-l1b)" "$sha_l1"
dmsetup remove obd-l1b
is "layers_parsed after removing one user" "$(cat $param)" "$p0"
is "distinct layer files parsed (l1, l1z, l2.tar, /tmp l1, /tmp l2.tar)" "$p0" 5

# --- direct_io, block device layers -----------------------------------------------
m=$(mark)
mk obd-dio "0 $len overlaybd 2 /tmp/l1.commit.lz4.zfile /tmp/l2.commit.lz4.zfile.tar 1 direct_io"
check "direct_io on tmpfs loads" [ $? -eq 0 ]
is "direct_io on tmpfs sha256" "$(devsha obd-dio)" "$sha_l1l2"
since "$m" | sed 's/^/# /'
loop1=$(losetup -f --show -r /tmp/l1.commit) && loop2=$(losetup -f --show -r "$ref/l2.commit.lz4.zfile.tar")
if [ -n "${loop2:-}" ]; then
	mk obd-blk "0 $len overlaybd 2 $loop1 $loop2 1 direct_io"
	is "block device layers, direct_io, sha256" "$(devsha obd-blk)" "$sha_l1l2"
	mk obd-blk2 "0 $len overlaybd 1 $loop1"
	is "block device layer, page cache, sha256" "$(devsha obd-blk2)" "$sha_l1"
	# a warm pass too: a block device layer is never read in map(), where a
	# reader of obd-blk2 through its page cache holds its bdev's i_rwsem and
	# the layer's read would take the loop device's (lockdep: one class, nested)
	is "block device layer, warm pass, sha256" "$(devsha obd-blk2)" "$sha_l1"
	is "block device layer: no inline reads" "$(stat_field obd-blk2 inline)" 0
	dmsetup remove obd-blk obd-blk2
	losetup -d "$loop1" "$loop2"
else
	nok "losetup"
fi

# --- corruption ------------------------------------------------------------------
cp /tmp/l1.commit.lz4.zfile /tmp/bad.zfile
sz=$(stat -c %s /tmp/bad.zfile)
printf '\xff\xfe\xfd\xfc' | dd of=/tmp/bad.zfile bs=1 seek=$((sz / 2)) conv=notrunc status=none
m=$(mark)
mk obd-crc "0 $len overlaybd 1 /tmp/bad.zfile"; check "corrupt block: device loads" [ $? -eq 0 ]
dd if=/dev/mapper/obd-crc of=/dev/null bs=64k iflag=direct status=none 2>/dev/null
check "corrupt block: read fails" [ $? -ne 0 ]
check "corrupt block: crc_errors counted" [ "$(stat_field obd-crc crc_errors)" -gt 0 ]
check "corrupt block: io_errors counted" [ "$(stat_field obd-crc io_errors)" -gt 0 ]
since "$m" | grep -q "overlaybd: .*bad.zfile: zfile block [0-9]* crc" && ok "corrupt block logged with layer and block" || { nok "corrupt block logged"; since "$m" | sed 's/^/# /'; }
dd if=/dev/mapper/obd-crc of=/dev/null bs=64k count=1 iflag=direct status=none 2>/dev/null
check "corrupt block: other blocks still read" [ $? -eq 0 ]
dmsetup remove obd-crc

# --- removal ------------------------------------------------------------------------
rmmod dm_overlaybd 2>/dev/null; check "rmmod refused while devices exist" [ -d /sys/module/dm_overlaybd ]
for d in obd-l1 obd-l1z obd-l1l2 obd-mix obd-dio; do dmsetup remove "$d" || nok "remove $d"; done
is "no parsed layers left" "$(cat $param)" 0
rmmod dm_overlaybd; check "rmmod" [ $? -eq 0 ]
check "module gone" [ ! -d /sys/module/dm_overlaybd ]
dmsetup targets | grep -q '^overlaybd ' && nok "target unregistered" || ok "target unregistered"

# the whole boot's log: the debug kernel's "kmemleak: ... initialized" line is no report
m=$(dmesg | grep -E 'BUG|WARNING|Oops|KASAN|refcount|hung task|leak|Call Trace' |
	grep -v 'kmemleak: Kernel memory leak detector initialized')
is "dmesg has no BUG/WARNING/Oops/leak" "$m" ""

echo "1..$n"
echo "# passed: $((n - fail)) failed: $fail"
[ "$fail" -eq 0 ]
