#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 40-upper.sh: the writable upper layer (issue #9), both kinds.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/40-upper.sh
#   - a two-layer reference stack with an append-mode upper (data + index)
#     and with a sparse upper: random writes, discards, write zeroes, flushes
#     and reads from two threads against a model (upper_fsx.py), the whole
#     device compared at the end; `obd cat` of the files (the userspace
#     reader) shows the same bytes; a reopen shows them again (a sparse
#     upper's discards of whole blocks show the lowers, as documented;
#     partly written blocks keep the lowers' bytes); `obd commit` of the
#     upper stacks read-only under the lowers to the same bytes
#   (45-upper-shared.sh: four threads over the whole device on 4 vCPUs)
#   - ext4 made on the writable device, a tree copied in, fsck clean, the
#     tree intact after a reopen
#   - bad uppers refused with a message naming the file: a read-only layer
#     as upper, wrong virtual size, index/kind mismatches, a torn index, a
#     read-only file system, a read-only table
#   - a full file system under the upper: ENOSPC to the writer, the layer
#     intact, writes succeed again once space is freed
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/upper_lib.sh
. "$OBD_TOP/tests/vm/upper_lib.sh"
vm_test_begin 40-upper
modprobe ext4 2>/dev/null
modprobe loop 2>/dev/null
seed=${OBD_SEED:-$(date +%s)}
diag "OBD_SEED=$seed"
check "obd cat of the lower stack" "$obd" cat --no-progress -o lower.raw "$L1" "$L2"

for kind in append sparse; do
	if [ $kind = append ]; then
		check "obd create (append)" "$obd" create "$d/up.data" "$d/up.index" 64M
		D=$d/up.data I=$d/up.index fsopt= after=model.append
		files=("$D" "$I")
	else
		check "obd create -s (sparse)" "$obd" create -s "$d/sp.data" 64M
		# after a reopen, blocks a sparse upper's discards freed show the lowers
		D=$d/sp.data I=- fsopt="--fsblock $(stat -f -c %S "$d")" after=model.sparse.reopen
		files=("$D")
	fi
	check "$kind: dmsetup create with the upper" dmsetup create obd40 --table "$(table "$D" "$I")"
	check_eq "$kind: table round trip" "$(dmsetup table obd40)" "$(table "$D" "$I")"
	out=$($fsx run /dev/mapper/obd40 lower.raw model.$kind "$seed" 250 $fsopt --threads 2 2>&1)
	check "$kind: fsx, 2 threads x 250 random writes/discards/zeroes/flushes/reads against the model" \
		grep -q '^fsx: ok' <<<"$out" || diag "$out"
	diag "$out"
	st=$(dmsetup status obd40)
	check "$kind: status names the upper, no write errors ($st)" \
		bash -c "[[ '$st' =~ upper\ $kind\ data\ [0-9]+\ records\ [0-9]+\ live\ [0-9]+\ dead\ [0-9]+\ writes\ [1-9][0-9]*\ .*write_errors\ 0 ]]"
	check_eq "$kind: obd cat of lowers + upper files = the model" \
		"$("$obd" cat --no-progress "$L1" "$L2" "${files[@]}" | sha256sum | cut -d' ' -f1)" \
		"$(shaof $after)"
	check "$kind: dmsetup remove" dmsetup remove obd40
	check "$kind: reopen" dmsetup create obd40 --table "$(table "$D" "$I")"
	check_eq "$kind: after the reopen the device = the model" \
		"$(devsha obd40)" "$(shaof $after)"
	check "$kind: dmsetup remove" dmsetup remove obd40
	check "$kind: obd commit of the upper" "$obd" commit --no-progress "${files[@]}" "$d/up.$kind.commit"
	check "$kind: the committed upper stacks read-only" \
		dmsetup create obd40c --readonly --table "0 $len overlaybd 3 $L1 $L2 $d/up.$kind.commit"
	check_eq "$kind: ... to the same bytes" "$(devsha obd40c)" "$(shaof $after)"
	check "$kind: remove" dmsetup remove obd40c
done

# --- sparse: a write into part of a file-system block ----------------------------------
# (the kernel fills the rest of the block with what the device showed, so
# after a reopen, when the maps come from the file's extents, the rest of
# the block still shows the lowers, not zeros)
check "sparse: obd create -s" "$obd" create -s "$d/pb.data" 64M
check "sparse: dmsetup create" dmsetup create obd40p --table "$(table "$d/pb.data" -)"
head -c 512 /dev/urandom > s512.bin
check "sparse: 512 bytes written at byte 5 MiB + 1536, 1 KiB zeroed at 7 MiB + 512" bash -c \
	"dd if=s512.bin of=/dev/mapper/obd40p bs=512 seek=\$((5 * 2048 + 3)) oflag=direct status=none &&
	 blkdiscard -z -o \$((7 << 20 | 512)) -l 1024 /dev/mapper/obd40p"
{ head -c $((5 * 1048576 + 1536)) lower.raw; cat s512.bin; tail -c +$((5 * 1048576 + 2049)) lower.raw; } > pb.want
{ head -c $((7 * 1048576 + 512)) pb.want; head -c 1024 /dev/zero; tail -c +$((7 * 1048576 + 1537)) pb.want; } > pb.want2
check_eq "sparse: the device shows them over the lowers" "$(devsha obd40p)" "$(shaof pb.want2)"
check "sparse: remove, reopen" bash -c "dmsetup remove obd40p && dmsetup create obd40p --table '$(table "$d/pb.data" -)'"
check_eq "sparse: after the reopen the rest of both blocks still shows the lowers" "$(devsha obd40p)" "$(shaof pb.want2)"
check "sparse: remove" dmsetup remove obd40p

# --- uppers written by obd write (the reference-compatible userspace writer) ----------------
head -c 1M /dev/urandom > w.bin
for kind in append sparse; do
	if [ $kind = append ]; then
		"$obd" create "$d/w.data" "$d/w.index" 64M >/dev/null && W=("$d/w.data" "$d/w.index") WI=$d/w.index
	else
		"$obd" create -s "$d/ws.data" 64M >/dev/null && W=("$d/ws.data") WI=-
	fi
	check "$kind: obd write 1 MiB at 3 MiB and 4 KiB at 60 MiB" bash -c \
		"'$obd' write ${W[*]} --offset 3M w.bin && head -c 4096 w.bin > w4k.bin && '$obd' write ${W[*]} --offset 60M w4k.bin"
	check "$kind: the userspace-written upper attaches" dmsetup create obd40w --table "$(table "${W[0]}" "$WI")"
	check_eq "$kind: the device shows its writes over the lowers (= obd cat)" "$(devsha obd40w)" \
		"$("$obd" cat --no-progress "$L1" "$L2" "${W[@]}" | sha256sum | cut -d' ' -f1)"
	check_eq "$kind: ... the MiB at 3 MiB is the file" \
		"$(dd if=/dev/mapper/obd40w bs=1M skip=3 count=1 iflag=direct status=none | sha256sum | cut -d' ' -f1)" "$(shaof w.bin)"
	check "$kind: remove" dmsetup remove obd40w
done

# --- obd attach of a config with an upper -------------------------------------------------
check "obd create (config upper)" "$obd" create "$d/cfg.data" "$d/cfg.index" 64M
printf '{ "lowers": [ { "file": "%s" }, { "file": "%s" } ], "upper": { "data": "%s", "index": "%s" }, "resultFile": "" }\n' \
	"$L1" "$L2" "$d/cfg.data" "$d/cfg.index" > cfg.json
check "obd attach --table prints the upper option" bash -c \
	"'$obd' attach --table cfg.json | grep -qx '$(table "$d/cfg.data" "$d/cfg.index")'"
check "obd attach of the config" "$obd" attach --name obd40a cfg.json
head -c 1M /dev/urandom > blk.bin
check "write 1 MiB at 5 MiB, flush" dd if=blk.bin of=/dev/mapper/obd40a bs=1M seek=5 oflag=direct,sync status=none
check_eq "read back" "$(dd if=/dev/mapper/obd40a bs=1M skip=5 count=1 iflag=direct status=none | sha256sum | cut -d' ' -f1)" \
	"$(shaof blk.bin)"
before=$(devsha obd40a)
check "obd list shows the device" bash -c "'$obd' list | grep -q '^obd40a'"
check "obd detach" "$obd" detach obd40a
check_eq "obd cat of the files = what the device showed" \
	"$("$obd" cat --no-progress "$L1" "$L2" "$d/cfg.data" "$d/cfg.index" | sha256sum | cut -d' ' -f1)" "$before"
# a writable layer alone is a blank disk (0 lowers; VM 52 serves one)
check_eq "a writable layer alone (no lower): obd attach --table gives 0 lowers, the upper" \
	"$("$obd" attach --table "$d/cfg.data" "$d/cfg.index" | cut -d' ' -f4-6)" "0 3 upper"

# --- ext4 on a writable device --------------------------------------------------------
mkdir -p src mnt
cp -a "$OBD_TOP/lib" "$OBD_TOP/kmod" "$OBD_TOP/docs" src/ 2>/dev/null
rm -rf src/kmod/build-*
manifest() { (cd "$1" && find . -mindepth 1 ! -path './lost+found*' -printf '%y %m %p %l\n' | LC_ALL=C sort &&
	find . -type f ! -path './lost+found/*' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum); }
manifest src > src.manifest
check "obd create (ext4 upper)" "$obd" create "$d/fs.data" "$d/fs.index" 64M
check "dmsetup create (ext4)" dmsetup create obd40f --table "$(table "$d/fs.data" "$d/fs.index")"
check "mkfs.ext4 on the writable device" mkfs.ext4 -q -F -b 4096 -E nodiscard /dev/mapper/obd40f
check "mount, copy $(find src -type f | wc -l) files, umount" bash -c "
	mount -t ext4 /dev/mapper/obd40f '$d/mnt' && cp -a '$d/src/.' '$d/mnt/' && rm -rf '$d/mnt/lib' &&
	cp -a '$d/src/lib' '$d/mnt/' && fstrim '$d/mnt' ; umount '$d/mnt'"
check "fsck.ext4 -fn clean" fsck.ext4 -fn /dev/mapper/obd40f
check "remove, reopen" bash -c "dmsetup remove obd40f && dmsetup create obd40f --table '$(table "$d/fs.data" "$d/fs.index")'"
check "fsck.ext4 -fn clean after the reopen" fsck.ext4 -fn /dev/mapper/obd40f
check "mount ro" mount -t ext4 -o ro /dev/mapper/obd40f mnt
manifest mnt > mnt.manifest
check "every file, mode and link as copied" cmp -s src.manifest mnt.manifest || diag "$(diff src.manifest mnt.manifest | head)"
umount mnt
st=$(dmsetup status obd40f)
diag "ext4 upper: $st"
check "remove" dmsetup remove obd40f

# --- bad uppers --------------------------------------------------------------------------
refused() {	# refused DESC DMESG_PATTERN TABLE [dmsetup options]
	local desc=$1 pat=$2 tab=$3 mark
	shift 3
	mark=40-upper-$RANDOM
	vm_dmesg_mark "$mark"
	if dmsetup create obd40x "$@" --table "$tab" >/dev/null 2>&1; then
		not_ok "$desc: refused"
		dmsetup remove obd40x
		return 1
	fi
	check "$desc: refused, dmesg names it" bash -c "dmesg | awk -v m='obd-test: mark $mark' 'f; index(\$0, m) { f = 1 }' | grep -qE '$pat'"
}
"$obd" create "$d/small.data" "$d/small.index" 32M >/dev/null
"$obd" create -s "$d/sp2.data" 64M >/dev/null
"$obd" create "$d/ok.data" "$d/ok.index" 64M >/dev/null
cp "$L1" "$d/l1.copy"
refused "a committed layer as upper" "not a writable data file" "$(table "$d/l1.copy" -)"
refused "virtual size 32 MiB under a 64 MiB stack" "virtual_size 33554432, the lower layers.* 67108864" \
	"$(table "$d/small.data" "$d/small.index")"
refused "append data without its index" "needs its index file" "$(table "$d/ok.data" -)"
refused "sparse data with an index" "has no index file" "$(table "$d/sp2.data" "$d/ok.index")"
refused "data and index swapped" "not a writable data file" "$(table "$d/ok.index" "$d/ok.data")"
cp "$d/ok.index" "$d/torn.index"
printf 'xxxxxxxx' >> "$d/torn.index"
refused "a torn index record" "torn record" "$(table "$d/ok.data" "$d/torn.index")"
refused "upper without its index argument" "Invalid upper" "0 $len overlaybd 2 $L1 $L2 2 upper $d/ok.data"
refused "two uppers" "Invalid upper" "0 $len overlaybd 2 $L1 $L2 6 upper $d/ok.data $d/ok.index upper $d/ok.data $d/ok.index"
refused "a read-only table" "must be read-write" "$(table "$d/ok.data" "$d/ok.index")" --readonly
truncate -s 16M ro.img && mkfs.ext4 -q -F ro.img && mkdir -p ro && mount -o loop ro.img ro &&
	cp "$d/ok.data" "$d/ok.index" ro/ && umount ro && mount -o loop,ro ro.img ro && vm_on_exit umount "$d/ro"
refused "an upper on a read-only file system" "cannot open read-write" "$(table "$d/ro/ok.data" "$d/ro/ok.index")"

# --- a full file system under the upper ------------------------------------------------------
truncate -s 40M full.img && mkfs.ext4 -q -F -m 0 full.img && mkdir -p full && mount -o loop full.img full &&
	vm_on_exit umount "$d/full"
check "obd create on a 40 MiB ext4" "$obd" create "$d/full/u.data" "$d/full/u.index" 64M
head -c 12M /dev/zero > full/filler
check "dmsetup create (full fs)" dmsetup create obd40n --table "$(table "$d/full/u.data" "$d/full/u.index")"
out=$($PY - /dev/mapper/obd40n lower.raw model.full "$seed" <<'EOF' 2>&1
import mmap, os, random, sys
dev, lower, out, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = bytearray(open(lower, "rb").read())
rnd = random.Random(seed)
fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)
ok = nospc = 0
for i in range(60):      # 60 MiB into ~28 MiB free
    off = rnd.randrange(0, 64) << 20
    data = rnd.randbytes(1 << 20)
    buf[:] = data
    try:
        os.pwritev(fd, [buf], off)
        model[off:off + len(data)] = data
        ok += 1
    except OSError as e:
        if e.errno != 28:
            raise
        nospc += 1
os.close(fd)
open(out, "wb").write(model)
print("written %d, ENOSPC %d" % (ok, nospc))
EOF
)
diag "$out"
check "writes past the free space fail with ENOSPC, the others succeed" bash -c "[[ '$out' =~ ^written\ [1-9][0-9]*,\ ENOSPC\ [1-9] ]]"
check_eq "the device reads the successful writes over the lowers" "$(devsha obd40n)" "$(shaof model.full)"
rm -f full/filler
out=$($PY - /dev/mapper/obd40n model.full "$seed" <<'EOF' 2>&1
import mmap, os, random, sys
dev, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = bytearray(open(out, "rb").read())
rnd = random.Random(seed + 1)
fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)
for i in range(4):
    off = rnd.randrange(0, 64) << 20
    data = rnd.randbytes(1 << 20)
    buf[:] = data
    os.pwritev(fd, [buf], off)
    model[off:off + len(data)] = data
os.fsync(fd)
os.close(fd)
open(out, "wb").write(model)
print("ok")
EOF
)
check_eq "space freed: writes succeed again" "$out" ok
check_eq "... and read back" "$(devsha obd40n)" "$(shaof model.full)"
check "remove, reopen" bash -c "dmsetup remove obd40n && dmsetup create obd40n --table '$(table "$d/full/u.data" "$d/full/u.index")'"
check_eq "the layer is intact after the reopen" "$(devsha obd40n)" "$(shaof model.full)"
check "remove" dmsetup remove obd40n

vm_dmesg_check 40-upper
tap_done
