#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 53-turbo.sh: TurboOCI (warp) layers in the kernel, issue #20: the table word
# `turbo <meta layer> <target>`.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/53-turbo.sh
# Data from tests/vm/warp_gen.py (a plain lower, a warp meta layer whose
# tag-1 records point at sectors of a target, none of them 4 KiB aligned, one
# 16383 sectors long; zeroed records; holes falling through to the lower) and
# the model of the device it writes. Checks, each against the model's sha256:
#   - a local target file; the meta layer ZFile-compressed; tar-wrapped;
#     tags 5/6 normalised back to 0/1;
#   - `dmsetup table` prints the turbo words (a path with a space escaped)
#     and the line loads again; `obd list` shows the layer;
#   - a loop device as the target: held through dm (slaves/);
#   - a remote target (a cold cache entry, misses answered by the stand-in
#     daemon): only target bytes are fetched, status remote/fetched count it;
#   - reads parked on a remote target (the registry hangs): a table reloaded
#     while they wait, a noflush suspend requeues them and the new instance
#     takes them, an answering daemon completes them with the model's bytes;
#     a suspend with flush fails them (EIO, no wrong bytes); remove --force
#     returns with reads parked;
#   - one meta file as two warp layers over targets of different sizes at once
#     (two parses: the shared-layer key has the target size), and as a plain
#     layer (refused: its tag-1 records point outside it) while both live;
#   - refused with a ti->error and a dmesg line naming the file: a record
#     tagged 2, a tag-1 record past the target's end, a target of 0 bytes,
#     `turbo` without its target, a remote meta layer, a relative target;
#   - dmesg clean.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

obd=$OBD_TOP/build/obd
PY=/usr/bin/python3
R="$PY $OBD_TOP/tests/vm/remote_lib.py"
[ -x "$obd" ] || bail "$obd missing: run make first"
vm_test_begin 53-turbo
mkdir -p src cache

mark() { local m="obd53-$RANDOM$RANDOM"; echo "obd-test: $m" >/dev/kmsg; echo "$m"; }
since() { dmesg | awk -v m="obd-test: $1" 'f; index($0, m) { f = 1 }'; }
devsha() { sha256sum <"/dev/mapper/$1" | cut -d' ' -f1; }
dmnode() { echo "dm-$(dmsetup info -c --noheadings -o minor "$1" | tr -d ' ')"; }
# shellcheck source=tests/vm/miss_lib.sh
. "$OBD_TOP/tests/vm/miss_lib.sh"
refused() {	# <description> <expected dmesg text> <table>
	local desc=$1 want=$2 table=$3 m
	m=$(mark)
	if dmsetup create obd53-bad --readonly --table "0 $len overlaybd $table" 2>/dev/null; then
		dmsetup remove obd53-bad
		not_ok "$desc: accepted"
		return 1
	fi
	if since "$m" | grep -qF -- "$want"; then
		ok "$desc: refused ($want)"
	else
		not_ok "$desc: refused, but dmesg lacks '$want'"
		since "$m" | sed 's/^/# /'
	fi
}
# check runs its command in a subshell: devices are removed by name at exit
create() {	# <name> <table>
	dmsetup create "$1" --readonly --table "0 $len overlaybd $2"
}
remove_all() {
	local n
	for n in $(dmsetup ls --target overlaybd | awk '$1 ~ /^obd53/ { print $1 }'); do
		dmsetup remove "$n"
	done
}
vm_on_exit remove_all

seed=${OBD_SEED:-$RANDOM}
diag "warp_gen seed $seed (OBD_SEED=$seed replays)"
$PY "$OBD_TOP/tests/vm/warp_gen.py" "$d" "$seed" >gen.log || bail "warp_gen failed"
len=$(cat vsize)
want=$(sha256sum <model.img | cut -d' ' -f1)

# --- a local target -----------------------------------------------------------
check "create: lower + turbo meta over a local target" create obd53 "2 $d/lower.lsmt turbo $d/meta.lsmt $d/target.tar"
check_eq "device = model (tag-1 records read from the target)" "$(devsha obd53)" "$want"
check_eq "dmsetup table prints the turbo words" "$(dmsetup table obd53)" \
	"0 $len overlaybd 2 $d/lower.lsmt turbo $d/meta.lsmt $d/target.tar"
check "the table line loads again" bash -c \
	"dmsetup create obd53-again --readonly --table \"\$(dmsetup table obd53)\" && dmsetup remove obd53-again"
check "obd list shows the turbo layer" bash -c "'$obd' list | grep -qF 'turbo $d/meta.lsmt $d/target.tar'"
check_eq "status: 2 layers, remote 0" "$(dmsetup status obd53 | awk '{ print $4 }') $(stat_field obd53 remote)" "2 0"
# random reads of 4 KiB that start at odd sectors, through a second device (cold page cache of the device)
check "random unaligned reads equal the model" $PY - "$len" <<'PY'
import os, random, sys
n = int(sys.argv[1]) * 512
m = open('model.img', 'rb').read()
fd = os.open('/dev/mapper/obd53', os.O_RDONLY)
rng = random.Random(5)
for _ in range(400):
    off = rng.randrange(0, n // 512 - 64) * 512
    ln = rng.randrange(1, 64) * 512
    if os.pread(fd, ln, off) != m[off:off + ln]:
        sys.exit('mismatch at %d+%d' % (off, ln))
PY

# --- the meta layer ZFile-compressed, tar-wrapped, tags shifted --------------------
"$obd" zfile -f meta.lsmt meta.zfile >/dev/null || bail "obd zfile failed"
check "create: ZFile meta layer" create obd53z "2 $d/lower.lsmt turbo $d/meta.zfile $d/target.tar"
check_eq "ZFile meta: device = model" "$(devsha obd53z)" "$want"
tar --format=ustar -cf meta.tar meta.zfile || bail "tar failed"
check "create: tar-wrapped ZFile meta layer" create obd53t "2 $d/lower.lsmt turbo $d/meta.tar $d/target.tar"
check_eq "tar(ZFile) meta: device = model" "$(devsha obd53t)" "$want"
check "create: tags 5/6" create obd53s "2 $d/lower.lsmt turbo $d/shifted.lsmt $d/target.tar"
check_eq "tags normalised by the smallest: device = model" "$(devsha obd53s)" "$want"
dmsetup remove obd53z; dmsetup remove obd53t; dmsetup remove obd53s

# --- a path with a space -----------------------------------------------------------
mkdir -p "sp ace" && cp target.tar "sp ace/t.tar"
check "create: a target path with a space (\\040)" create obd53p \
	"2 $d/lower.lsmt turbo $d/meta.lsmt $d/sp\\040ace/t.tar"
check_eq "its table escapes the space" "$(dmsetup table obd53p | awk '{ print $NF }')" "$d/sp\\040ace/t.tar"
check_eq "device = model" "$(devsha obd53p)" "$want"
dmsetup remove obd53p

# --- a block device as the target ------------------------------------------------------
loop=$(vm_loop_attach "$d/target.tar" ro) || bail "losetup failed"
vm_on_exit losetup -d "$loop"
check "create: a loop device as the target" create obd53l "2 $d/lower.lsmt turbo $d/meta.lsmt $loop"
check_eq "loop target: device = model" "$(devsha obd53l)" "$want"
check "the loop device is under the device's slaves/" test -e "/sys/block/$(dmnode obd53l)/slaves/$(basename "$loop")"
dmsetup remove obd53l

# --- two target sizes at once, and the same file as a plain layer ---------------------
check "create: the same meta over a bigger target, while the first lives" \
	create obd53b "2 $d/lower.lsmt turbo $d/meta.lsmt $d/big.tar"
check_eq "bigger target: device = model (target prefix identical)" "$(devsha obd53b)" "$want"
refused "the meta file as a plain layer while warp parses of it live" "record" \
	"2 $d/lower.lsmt $d/meta.lsmt"
check_eq "the first device is unchanged" "$(devsha obd53)" "$want"
dmsetup remove obd53b

# --- a remote target ------------------------------------------------------------------
tok=$(entry target.tar)
start_daemon d1.log || bail "no stand-in daemon"
check "create: a remote target on a cold cache" create obd53r "2 $d/lower.lsmt turbo $d/meta.lsmt $tok"
check_eq "status: remote 1" "$(stat_field obd53r remote)" 1
check_eq "remote target: device = model" "$(devsha obd53r)" "$want"
check "status: fetched > 0" test "$(stat_field obd53r fetched)" -gt 0
check "only target bytes were asked for (every READ inside the target)" \
	awk -v max="$(stat -c %s target.tar)" '$1 == "READ" && $4 + $5 > max { bad = 1 } END { exit bad }' d1.log
check_eq "dmsetup table prints the remote target token" "$(dmsetup table obd53r | awk '{ print $NF }')" "$tok"
dmsetup remove obd53r
stop_daemon

# --- reads parked on a remote target: reload, suspend, remove --------------------------
# The registry hangs (a --silent daemon holds the channel and never answers):
# whole-device O_DIRECT readers park on the target's first cold range. A new
# table is loaded while the old instance runs with them parked; a noflush
# suspend hands them back to dm, the resume swaps the instance and they park
# again on the new one; an answering daemon completes them with the model's
# bytes. On a second cold device: a suspend with flush fails them (EIO, as
# for remote layers: 50-miss-waits) and remove --force returns with reads
# parked.
pending_ge() { [ "$(stat_field "$1" pending)" -ge "$2" ]; }
readers=()
start_readers() {	# DEV N: N whole-device O_DIRECT readers, sha256 to r<i>.sha
	local i
	readers=()
	for i in $(seq "$2"); do
		rm -f "r$i.sha"
		{ dd if="/dev/mapper/$1" bs=256K iflag=direct status=none | sha256sum | cut -d' ' -f1 > "r$i.sha"
		  exit "${PIPESTATUS[0]}"; } &
		readers+=($!)
	done
}
running() {
	local n=0 p
	for p in "${readers[@]}"; do kill -0 "$p" 2>/dev/null && n=$((n + 1)); done
	echo $n
}
none_running() { [ "$(running)" -eq 0 ]; }
# parked NAME LOG: a turbo device over a fresh cold remote target (table in
# $tq), the registry hanging, 4 whole-device readers parked on it
parked() {
	local tok
	tok=$(entry target.tar)
	start_daemon "$2" --silent || bail "no silent daemon"
	tq="2 $d/lower.lsmt turbo $d/meta.lsmt $tok"
	check "create $1: a turbo layer over a cold remote target, the registry hanging" create "$1" "$tq"
	start_readers "$1" 4
	check "4 whole-device readers park on the target (pending >= 1)" until_true 60 pending_ge "$1" 1
}
parked obd53q d2.log
check "a new table loads while the old instance runs with reads parked" \
	within 5 dmsetup reload obd53q --readonly --table "0 $len overlaybd $tq"
check "suspend --noflush returns within 5 s" within 5 dmsetup suspend --noflush obd53q
check_eq "suspended: no read waits in the target" "$(stat_field obd53q pending)" 0
check_eq "... the readers still wait (requeued, not failed)" "$(running)" 4
check "resume (the new instance) returns within 5 s" within 5 dmsetup resume obd53q
check "the reads park again, on the new instance" until_true 30 pending_ge obd53q 1
start_daemon d3.log || bail "no stand-in daemon"
t0=$SECONDS
check "the daemon answers: every reader ends" until_true 120 none_running
diag "readers ended after $((SECONDS - t0)) s; READs answered: $(grep -c '^READ' d3.log); pending $(stat_field obd53q pending)"
fails=0
for p in "${readers[@]}"; do wait "$p" || fails=$((fails + 1)); done
check_eq "... none failed" "$fails" 0
check_eq "... and each read the model's bytes" "$(sort -u r[1-4].sha)" "$want"
check_eq "the device = model" "$(devsha obd53q)" "$want"
dmsetup remove obd53q

parked obd53f d4.log
check "suspend (with flush) returns within 15 s" within 15 dmsetup suspend obd53f
check "the readers ended" until_true 10 none_running
fails=0
for p in "${readers[@]}"; do wait "$p" || fails=$((fails + 1)); done
check_eq "... their reads failed (EIO), none read wrong bytes" "$fails $(cat r[1-4].sha | grep -c "^$want\$")" "4 0"
check "resume" dmsetup resume obd53f
start_readers obd53f 4
check "4 readers park again" until_true 60 pending_ge obd53f 1
check "remove --force with reads parked returns within 20 s" \
	within 20 dmsetup remove --force --retry obd53f
check "the readers ended" until_true 10 none_running
for p in "${readers[@]}"; do wait "$p"; done
stop_daemon

# --- refused tables ---------------------------------------------------------------------
refused "a record tagged 2" "bad-tag.lsmt: LSMT index record" "2 $d/lower.lsmt turbo $d/bad-tag.lsmt $d/target.tar"
refused "a tag-1 record past the target" "(tag 1, target) moffset" "2 $d/lower.lsmt turbo $d/past.lsmt $d/target.tar"
: >empty.tar
refused "a target of 0 bytes" "turbo target $d/empty.tar: 0 bytes" "2 $d/lower.lsmt turbo $d/meta.lsmt $d/empty.tar"
refused "turbo without its target" "Invalid turbo layer" "1 turbo $d/meta.lsmt"
refused "a remote meta layer" "a turbo meta layer must be a local file" "1 turbo $tok $d/target.tar"
refused "a relative target path" "the path must be absolute" "1 turbo $d/meta.lsmt target.tar"
refused "a missing target" "open failed" "1 turbo $d/meta.lsmt $d/nothere.tar"

dmsetup remove obd53
check_eq "no device of this test left" "$(dmsetup ls --target overlaybd | grep -c '^obd53')" 0
tap_done
