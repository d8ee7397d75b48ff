#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 24-shared.sh: 50 devices over one shared base layer.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/24-shared.sh
# One base layer (ZFile lz4, 4 MiB virtual) under 50 distinct small upper layers
# (five shapes built with build/obd: data, a zeroed range, a hole in the middle,
# ZFile, tar; ten copies of each with their data bytes rewritten so every upper
# is distinct). Some devices name the base through a symlink or a hard link. The
# module's layers_parsed counter must count the base once (51 with all devices),
# all 50 devices read concurrently must each equal `obd cat` of their stack, and
# after removing them the counter is 0 and rmmod works.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

obd=$OBD_TOP/build/obd
PY=/usr/bin/python3
param=/sys/module/dm_overlaybd/parameters/layers_parsed
N=50
[ -x "$obd" ] || bail "$obd missing: run make first"
vm_dmesg_mark 24-shared
# 50 concurrent readers on a single-threaded TCG host can starve a vCPU for 20 s
# (seen: soft lockup in clear_page_erms from a bash page fault, not in the module);
# the soft lockup detector fires at 2 * watchdog_thresh: raise it to 120 s.
read -r wt </proc/sys/kernel/watchdog_thresh
vm_on_exit sysctl -q -w kernel.watchdog_thresh="$wt"
sysctl -q -w kernel.watchdog_thresh=60
vm_load_module || bail "cannot load dm-overlaybd"
vm_on_exit vm_unload_module
d=$(vm_tmpdir)
vm_on_exit rm -rf "$d"
cd "$d" || bail "cd $d"

# --- layers --------------------------------------------------------------------
"$PY" - <<'EOF' || bail "cannot write the base image"
import os
# 4 MiB: random, text and zero regions (the zeros are holes in the layer)
b = bytearray(4 << 20)
for i in range(0, len(b), 1 << 20):
    k = (i >> 20) % 3
    if k == 0:
        b[i:i + (1 << 20)] = os.urandom(1 << 20)
    elif k == 1:
        line = b"base layer line %08d\n" % i
        b[i:i + (1 << 20)] = (line * ((1 << 20) // len(line) + 1))[:1 << 20]
open("base.raw", "wb").write(b)
for s in range(5):
    open("u%d.bin" % s, "wb").write(bytes([0x41 + s]) * (16384 * (s + 1)))
EOF
check "build base layer (zfile lz4)" bash -c "
	'$obd' create base.data base.index 4M &&
	'$obd' import --no-progress base.data base.index base.raw &&
	'$obd' commit --no-progress -z base.data base.index base.zfile &&
	rm base.data base.index base.raw"
ln -s base.zfile base.link
ln base.zfile base.hard
# five upper shapes; data at distinct offsets, so each stack differs from the base
shapes_ok=1
for s in 0 1 2 3 4; do
	off=$(( (s * 768 + 100) * 1024 ))
	"$obd" create "t$s.data" "t$s.index" 4M &&
		"$obd" write "t$s.data" "t$s.index" --offset "$off" "u$s.bin" &&
		{ [ "$s" != 1 ] || "$obd" discard "t$s.data" "t$s.index" --offset 2M --length 64K; } &&
		{ [ "$s" != 2 ] || "$obd" discard "t$s.data" "t$s.index" --offset $((off + 4096)) --length 4096; } &&
		"$obd" commit --no-progress "t$s.data" "t$s.index" "t$s.commit" || shapes_ok=0
done
[ "$shapes_ok" = 1 ] && ok "build 5 upper shapes" || bail "cannot build the upper layers"

# 50 distinct uppers: plain LSMT data is stored as is, so copies of shapes 0-2
# get their data bytes replaced by a per-copy byte (same length, same index).
# Shapes 3 (ZFile) and 4 (tar(LSMT)) are re-committed from a per-copy source.
"$PY" - "$N" "$obd" <<'EOF' || bail "cannot make the upper copies"
import os, subprocess, sys
n = int(sys.argv[1])
for i in range(n):
    s = i % 5
    src = open("t%d.commit" % s, "rb").read()
    b = bytearray(src)
    pat = bytes([0x41 + s])
    run = pat * 16384
    at = b.find(run, 4096)
    assert at >= 4096
    ln = 16384 * (s + 1)
    if s == 2:
        ln -= 4096                     # the discarded 4 KiB is not stored
    b[at:at + ln] = bytes([0x80 + i]) * ln
    if s in (0, 1, 2):
        open("up%02d.layer" % i, "wb").write(b)
    else:
        open("up%02d.commit" % i, "wb").write(b)
        args = ["-z", "--algorithm", "zstd"] if s == 3 else ["-t"]
        subprocess.run([sys.argv[2], "commit",
                        "--no-progress"] + args + ["up%02d.commit" % i, "up%02d.layer" % i],
                       check=True, stdout=subprocess.DEVNULL)
        os.unlink("up%02d.commit" % i)
EOF
check_eq "50 upper layers, all distinct" "$(sha256sum up*.layer | cut -d' ' -f1 | sort -u | wc -l)" "$N"

# --- devices ------------------------------------------------------------------------
diag "layers built in $SECONDS s"
check_eq "no parsed layers before" "$(cat $param)" 0
# Every 5th device through obd attach, the others through dmsetup create with the
# table of `obd attach --table` (made once per base path, then the upper path
# swapped in: process starts are what costs under TCG).
t1=$SECONDS
declare -A tmpl
for b in base.zfile base.link base.hard; do
	tmpl[$b]=$("$obd" attach --table "$d/$b" "$d/up00.layer")
done
created=0
for ((i = 0; i < N; i++)); do
	printf -v u 'up%02d.layer' "$i"
	printf -v name 'obd24-%02d' "$i"
	case $((i % 10)) in 3) b=base.link ;; 7) b=base.hard ;; *) b=base.zfile ;; esac
	if [ $((i % 5)) = 0 ]; then
		"$obd" attach --name "$name" "$d/$b" "$d/$u" >/dev/null
	else
		dmsetup create "$name" --readonly --table "${tmpl[$b]/up00.layer/$u}"
	fi && created=$((created + 1)) && vm_on_exit dmsetup remove "$name"
	echo "$d/$b $d/$u" >"$name.layers"
done
diag "$created devices created in $((SECONDS - t1)) s"
check_eq "$N devices created (obd attach / dmsetup create)" "$created" "$N"
check_eq "obd list shows $N devices" "$("$obd" list | grep -c '^obd24-')" "$N"
check_eq "layers_parsed: the base once (+ $N uppers), symlink and hard link included" \
	"$(cat $param)" $((N + 1))

# expected content: obd cat of each stack
t1=$SECONDS
"$PY" - "$obd" "$N" <<'EOF' || not_ok "obd cat of the stacks"
import hashlib, subprocess, sys
for i in range(int(sys.argv[2])):
    name = "obd24-%02d" % i
    out = subprocess.run([sys.argv[1], "cat", "--no-progress"] + open(name + ".layers").read().split(),
                         stdout=subprocess.PIPE, check=True).stdout
    open(name + ".want", "w").write(hashlib.sha256(out).hexdigest() + "\n")
EOF
diag "$N obd cat in $((SECONDS - t1)) s"
check_eq "the $N stacks differ from each other" "$(sort -u obd24-*.want | wc -l)" "$N"

# all 50 devices at once
echo 3 >/proc/sys/vm/drop_caches
t0=$SECONDS
for ((i = 0; i < N; i++)); do
	printf -v name 'obd24-%02d' "$i"
	sha256sum <"/dev/mapper/$name" | cut -d' ' -f1 >"$name.got" &
done
wait
diag "$N concurrent sha256sum: $((SECONDS - t0)) s"
bad=""
for ((i = 0; i < N; i++)); do
	printf -v name 'obd24-%02d' "$i"
	[ "$(< "$name.got")" = "$(<"$name.want")" ] || bad="$bad $name"
done
check_eq "every device = obd cat of its stack (concurrent readers)" "$bad" ""
st=$(dmsetup status --target overlaybd)
check_eq "dmsetup status lists $N devices" "$(grep -c '^obd24-' <<<"$st")" "$N"
check_eq "no crc/io errors on any device" "$(grep -vEc 'crc_errors 0 io_errors 0 remote 0 pending 0 fetched 0 daemon [01]$' <<<"$st")" 0
check_eq "layers_parsed unchanged by reading" "$(cat $param)" $((N + 1))

# --- teardown ------------------------------------------------------------------------
removed=0
for ((i = 0; i < N; i++)); do
	printf -v name 'obd24-%02d' "$i"
	if [ "$i" = 10 ]; then
		check_eq "layers_parsed after removing 10 (base still shared)" "$(<$param)" $((N + 1 - 10))
		# the other 40 in one dmsetup call
		names=()
		for ((j = 10; j < N; j++)); do printf -v name 'obd24-%02d' "$j"; names+=("$name"); done
		dmsetup remove "${names[@]}" && removed=$((removed + 40))
		break
	fi
	if [ $((i % 5)) = 0 ]; then "$obd" detach "$name"; else dmsetup remove "$name"; fi &&
		removed=$((removed + 1))
done
check_eq "$N devices removed" "$removed" "$N"
check_eq "layers_parsed drops to 0" "$(cat $param)" 0
check_eq "obd list empty" "$("$obd" list)" ""
check "rmmod" rmmod dm_overlaybd
check "module gone" test ! -d /sys/module/dm_overlaybd
vm_dmesg_check 24-shared
tap_done
