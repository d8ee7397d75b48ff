#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 47-upper-reload.sh: table reloads of a writable device, and who may use
# an upper's files (review H1, L8).
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/47-upper-reload.sh
#   - while fsx writes, discards, zeroes, flushes and reads from two threads
#     against a model (upper_fsx.py), the device's own table is reloaded
#     again and again: dmsetup reload + resume with the same line, with
#     hold_timeout changed, with an explicit dmsetup suspend first, and a
#     plain suspend + resume. Every read matches the model (nothing lost or
#     reordered), the device equals it at the end, again after dmsetup
#     remove and a table made from the files, and obd cat of the files
#     shows the same bytes
#   - refused with EBUSY, the kernel log naming the file: a second device
#     naming the same upper files (data, or only the index); a table whose
#     lower is another device's live upper data file; an upper that is a
#     live lower layer of another device
#   - a failing postsuspend flush: the upper's index on a small full tmpfs,
#     writes completed after the fill; dmsetup suspend reports the failed
#     flush (status suspend_flush_error, a log line); a reload + resume
#     keeps every completed write; obd snapshot is refused (the upper
#     cannot be sealed with records not durable) and leaves the device
#     as it was; once space is back a flush clears the error and the
#     device equals the model after remove and a new table from the files
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/upper_lib.sh
. "$OBD_TOP/tests/vm/upper_lib.sh"
vm_test_begin 47-upper-reload
seed=${OBD_SEED:-$(date +%s)}
diag "OBD_SEED=$seed"
# a 16 MiB lower (random MiBs with holes between), small so that the whole
# device reads quickly: table DATA INDEX, thold S DATA INDEX (hold_timeout S)
L=$d/low.commit len=32768
check "a 16 MiB committed lower layer" bash -c "
	'$obd' create low.data low.index 16M && head -c 3M /dev/urandom > r.bin &&
	'$obd' write low.data low.index --offset 1M r.bin && '$obd' write low.data low.index --offset 9M r.bin &&
	'$obd' commit --no-progress low.data low.index '$L' && '$obd' cat --no-progress -o lower.raw '$L'"
table() { echo "0 $len overlaybd 1 $L 3 upper $1 $2"; }
thold() { echo "0 $len overlaybd 1 $L 5 hold_timeout $1 upper $2 $3"; }
# since MARK: the kernel log after the mark
since() { vm_dmesg_since "$1"; }

# --- reloads under fsx ----------------------------------------------------------------
D=$d/up.data I=$d/up.index
check "obd create the upper" "$obd" create "$D" "$I" 16M
check "dmsetup create" dmsetup create obd47 --table "$(table "$D" "$I")" || bail "create"
vm_on_exit dmsetup remove obd47
t0=$SECONDS
# 400 ops a thread at least, and on until the 8 cycles are done (a fixed count
# alone left room for only 3 cycles in a fast guest)
$fsx run /dev/mapper/obd47 lower.raw model.out "$seed" 400 --threads 2 --until fsx.stop > fsx.out 2>&1 &
fsx_pid=$!
sleep 0.5
cycles=0 bad='' last=''
for i in 1 2 3 4 5 6 7 8; do
	# each cycle starts while fsx writes
	kill -0 $fsx_pid 2>/dev/null || break
	case $((i % 4)) in
	1) last=$(table "$D" "$I")
	   dmsetup reload obd47 --table "$last" && dmsetup resume obd47 ;;
	2) last=$(thold $((i + 5)) "$D" "$I")
	   dmsetup reload obd47 --table "$last" && dmsetup resume obd47 ;;
	3) last=$(table "$D" "$I")
	   dmsetup suspend obd47 && dmsetup reload obd47 --table "$last" && dmsetup resume obd47 ;;
	0) last=$(thold 3 "$D" "$I")
	   dmsetup suspend obd47 && dmsetup reload obd47 --table "$last" && dmsetup resume obd47 &&
		dmsetup suspend obd47 && dmsetup resume obd47 ;;
	esac || bad="$bad $i"
	cycles=$((cycles + 1))
	sleep 0.3
done
touch fsx.stop
wait $fsx_pid
fsx_rc=$?
diag "$cycles reload cycles while fsx ran ($((SECONDS - t0)) s)"
check_eq "every reload, suspend and resume succeeded" "${bad:-none}" none
check "all 8 reload cycles began while fsx wrote ($cycles)" test "$cycles" -eq 8
check "fsx: 2 threads x 400+ ops across the reloads, every read = the model, the device = the model at the end" \
	bash -c "[ $fsx_rc = 0 ] && grep -q '^fsx: ok' fsx.out" || diag "$(cat fsx.out)"
check_eq "the table is the last one loaded" "$(dmsetup table obd47)" "$last"
st=$(dmsetup status obd47)
check "status: no write errors, suspend_flush_error 0 ($st)" \
	bash -c "[[ '$st' =~ write_errors\ 0( |$).*suspend_flush_error\ 0($|\ ) ]]"
check_eq "the device = the model" "$(devsha obd47)" "$(shaof model.out)"
check "dmsetup remove, a table from the files" bash -c \
	"dmsetup remove obd47 && dmsetup create obd47 --table '$(table "$D" "$I")'"
check_eq "after the reopen the device = the model" "$(devsha obd47)" "$(shaof model.out)"
check_eq "obd cat of the lowers and the upper files = the model" \
	"$("$obd" cat --no-progress "$L" "$D" "$I" | sha256sum | cut -d' ' -f1)" "$(shaof model.out)"

# --- who may use an upper's files -------------------------------------------------------
busy() {	# busy DESC DMESG_PATTERN TABLE [dmsetup options]
	local desc=$1 pat=$2 tab=$3 mark out
	shift 3
	mark=47-busy-$RANDOM
	vm_dmesg_mark "$mark"
	if out=$(dmsetup create obd47x "$@" --table "$tab" 2>&1); then
		not_ok "$desc: refused"
		dmsetup remove obd47x
		return 1
	fi
	log=$(since "$mark")
	check "$desc: EBUSY, the log names the file" bash -c \
		"grep -q 'Device or resource busy' <<< \"\$1\" && grep -qE -- '$pat' <<< \"\$2\"" _ "$out" "$log" ||
		diag "$out" "$log"
}
"$obd" create "$d/o.data" "$d/o.index" 16M >/dev/null
busy "a second device on the same upper files" "upper data $D: in use by device" "$(table "$D" "$I")"
busy "a second device on the same index file" "upper index $I: in use by device" "$(table "$d/o.data" "$I")"
busy "another device's live upper data file as a lower layer" \
	"layer $D: an upper layer data file of device" "0 $len overlaybd 2 $L $D" --readonly
cp "$L" "$d/low.copy"
check "a read-only device stacking a copy of the lower" \
	dmsetup create obd47r --readonly --table "0 $len overlaybd 1 $d/low.copy"
busy "another device's live lower layer as an upper" "upper data $d/low.copy: a lower layer of a live table" \
	"$(table "$d/low.copy" -)"
check "the device itself is untouched by the refusals" test "$(devsha obd47)" = "$(shaof model.out)"
check "remove both" bash -c "dmsetup remove obd47r && dmsetup remove obd47"
check "the files are free again: another device takes them" \
	bash -c "dmsetup create obd47y --table '$(table "$D" "$I")' && dmsetup remove obd47y"

# --- a failing postsuspend flush ------------------------------------------------------------
# writes N random 64 KiB blocks (O_DIRECT), the model updated for each one
# that completed, then fsync: prints "fsync ok" or "fsync error ERRNO"
pyw() {
	$PY - "/dev/mapper/$1" "$2" "$3" "$4" <<'EOF'
import mmap, os, random, sys
dev, model_f, seed, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
model = bytearray(open(model_f, "rb").read())
rnd = random.Random(seed)
fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 65536)
for i in range(n):
    off = rnd.randrange(0, len(model) // 4096 - 16) * 4096
    data = rnd.randbytes(65536)
    buf[:] = data
    os.pwritev(fd, [buf], off)
    model[off:off + 65536] = data
open(model_f, "wb").write(model)
try:
    os.fsync(fd)
    print("fsync ok")
except OSError as e:
    print("fsync error %d" % e.errno)
os.close(fd)
EOF
}
mkdir -p ix
check "a 1 MiB tmpfs for the index" mount -t tmpfs -o size=1m tmpfs ix
vm_on_exit umount "$d/ix"
FD=$d/f.data FI=$d/ix/f.index
check "obd create, the index on the small tmpfs" "$obd" create "$FD" "$FI" 16M
check "dmsetup create" dmsetup create obd47f --table "$(table "$FD" "$FI")" || bail "create"
vm_on_exit dmsetup remove obd47f
cp lower.raw model.f
check_eq "8 writes, fsync" "$(pyw obd47f model.f $((seed + 1)) 8)" "fsync ok"
dd if=/dev/zero of=ix/filler bs=4096 status=none 2>/dev/null
check_eq "the index file system is full" "$(df --output=avail ix | tail -1 | tr -d ' ')" 0
# 300 records: more than the partly filled index block takes (a flush rewrites
# that block in place, review H2), so the flush needs a new block on the full fs
out=$(pyw obd47f model.f $((seed + 2)) 300)
check "300 writes complete, their fsync fails: no room for the records ($out)" \
	bash -c "[[ '$out' == 'fsync error '* ]]"
check_eq "the device shows every completed write" "$(devsha obd47f)" "$(shaof model.f)"
mark=47-flush-$RANDOM
vm_dmesg_mark "$mark"
check "dmsetup suspend (its flush fails)" dmsetup suspend obd47f
check_eq "status: suspend_flush_error -28" "$(stat_field obd47f suspend_flush_error)" -28
log=$(since "$mark")
check "the log says the flush at suspend failed" \
	grep -q "upper $FD: the flush at suspend failed (error -28)" <<< "$log" || diag "$log"
check "dmsetup reload (same line) + resume while the records are not durable" bash -c \
	"dmsetup reload obd47f --table '$(table "$FD" "$FI")' && dmsetup resume obd47f"
check_eq "the device still shows every completed write" "$(devsha obd47f)" "$(shaof model.f)"
mark=47-snap-$RANDOM
vm_dmesg_mark "$mark"
t0=$(dmsetup table obd47f)
out=$("$obd" snapshot obd47f "$d/s.data" "$d/s.index" 2>&1)
rc=$?
log=$(since "$mark")
check "obd snapshot refused (exit $rc): the upper's records are not durable, the log says so" \
	bash -c "[ $rc != 0 ] && grep -q -- 'layer $FD: the upper layer data file of this device' <<< \"\$1\"" _ "$log" ||
	diag "$out" "$log"
check_eq "obd snapshot refused: the table is unchanged" "$(dmsetup table obd47f)" "$t0"
check "obd snapshot refused: the device is active" bash -c "dmsetup info obd47f | grep -q '^State: *ACTIVE'"
check_eq "obd snapshot refused: the device still shows every completed write" \
	"$(devsha obd47f)" "$(shaof model.f)"
rm -f ix/filler
check_eq "space back: 4 more writes, fsync succeeds" "$(pyw obd47f model.f $((seed + 3)) 4)" "fsync ok"
check_eq "status: suspend_flush_error 0 after a flush that succeeded" \
	"$(stat_field obd47f suspend_flush_error)" 0
check "dmsetup remove, a table from the files" bash -c \
	"dmsetup remove obd47f && dmsetup create obd47f --table '$(table "$FD" "$FI")'"
check_eq "after the reopen the device = the model (every completed write)" \
	"$(devsha obd47f)" "$(shaof model.f)"
check "remove" dmsetup remove obd47f

diag "$SECONDS s in all"
vm_dmesg_check 47-upper-reload
tap_done
