#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 20-stacks.sh: generated layer stacks served by the overlaybd target.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/20-stacks.sh
# A seeded generator (OBD_SEED, printed) builds stacks of 1 to 20 writable layers
# with build/obd (import of raw images with holes, sector-sized writes, discards),
# committed as plain LSMT, ZFile lz4/zstd with 4-64 KiB blocks, tar(LSMT),
# tar(ZFile), sealed, sealed+commit_sealed, or re-packed by `obd zfile`, mixed in
# one stack. Each stack is served by `obd attach` or `dmsetup create` with the
# table from `obd attach --table` (some with direct_io / no_verify, one from an
# ext4 file system so direct_io really is O_DIRECT), and must read as:
#   - the generator's own model of the merged disk (sha256),
#   - `obd cat` of the same stack (sha256 of the whole device),
#   - `obd cat` at random 4 KiB / 64 KiB / 1 MiB O_DIRECT reads.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

obd=$OBD_TOP/build/obd
PY=/usr/bin/python3
param=/sys/module/dm_overlaybd/parameters/layers_parsed
seed=${OBD_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
[ -x "$obd" ] || bail "$obd missing: run make first"
diag "seed $seed (replay: --env OBD_SEED=$seed)"
vm_dmesg_mark 20-stacks
vm_load_module || bail "cannot load dm-overlaybd"
vm_on_exit vm_unload_module
d=$(vm_tmpdir)
vm_on_exit rm -rf "$d"

# --- build the stacks (one python process: process starts are slow under TCG) ---
# Writes $d/<stack>/layers (paths, bottom first), $d/<stack>/model.sha256 and
# prints one "OK|FAIL <desc>" line per obd command group.
t0=$SECONDS
"$PY" - "$seed" "$d" "$obd" >"$d/gen.out" 2>&1 <<'EOF'
import hashlib, os, random, subprocess, sys

seed, top, obd = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = random.Random(seed)
S = 512
# (name, #layers, vsize, finalisers cycled through or None = random)
FIN = ["plain", "lz4", "zstd", "tar", "tarz", "sealed", "sealedz", "rezip"]
stacks = [
    ("s20", 20, 4 << 20, FIN),
    ("s1", 1, 16 << 20, ["tarz"]),
    ("s3", 3, (8 << 20) + 3 * S, ["sealed", "lz4", "zstd"]),
    ("s6", 6, 8 << 20, None),
    ("s2", 2, 4 << 20, ["plain", "tar"]),
]


def run(*args):
    r = subprocess.run([obd] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if r.returncode:
        print("FAIL obd %s: exit %d: %s" % (" ".join(map(str, args)), r.returncode,
                                            r.stdout.decode(errors="replace")[:400]))
        sys.exit(1)


def payload(n):
    k = rng.randrange(3)
    if k == 0:
        return os.urandom(n)
    if k == 1:
        return bytes([rng.randrange(1, 256)]) * n
    line = b"obd stack test line %d\n" % rng.randrange(1 << 30)
    return (line * (n // len(line) + 1))[:n]


for name, nl, vs, fins in stacks:
    sd = os.path.join(top, name)
    os.mkdir(sd)
    merged = bytearray(vs)
    paths = []
    desc = []
    for i in range(nl):
        lv = vs
        if i < nl - 1 and rng.random() < 0.15:
            lv = rng.randrange(1, vs // 4096 + 1) * 4096
        dat, idx = os.path.join(sd, "l%d.data" % i), os.path.join(sd, "l%d.index" % i)
        run("create", dat, idx, lv)
        # raw image with holes: 4 KiB-aligned extents, zeros elsewhere
        raw = bytearray(lv)
        for _ in range(rng.randint(1, 4)):
            n = rng.randint(1, 48) * 4096
            if n > lv:
                n = lv // 4096 * 4096
            if n == 0:
                continue
            off = rng.randrange(0, lv // 4096 - n // 4096 + 1) * 4096
            raw[off:off + n] = payload(n)
        rp = os.path.join(sd, "raw%d" % i)
        with open(rp, "wb") as f:
            f.write(raw)
        run("import", "--no-progress", dat, idx, rp)
        os.unlink(rp)
        # what import stored: every 4 KiB block that is not all zeros
        for b in range(0, lv, 4096):
            blk = raw[b:b + 4096]
            if blk.count(0) != len(blk):
                merged[b:b + len(blk)] = blk
        del raw
        for _ in range(rng.randint(0, 2)):
            # a lower layer may be as small as 4 KiB (8 sectors)
            n = rng.randint(1, min(64, lv // S))
            lba = rng.randrange(lv // S - n + 1)
            if rng.random() < 0.4:
                run("discard", dat, idx, "--offset", lba * S, "--length", n * S)
                merged[lba * S:(lba + n) * S] = bytes(n * S)
            else:
                buf = payload(n * S)
                wp = os.path.join(sd, "w")
                with open(wp, "wb") as f:
                    f.write(buf)
                run("write", dat, idx, "--offset", lba * S, wp)
                os.unlink(wp)
                merged[lba * S:(lba + n) * S] = buf
        fin = fins[i % len(fins)] if fins else rng.choice(FIN)
        bs = rng.choice([4, 8, 16, 32, 64])
        algo = "zstd" if fin == "zstd" or (fin != "lz4" and rng.random() < 0.5) else "lz4"
        out = os.path.join(sd, "l%d.%s" % (i, fin))
        if fin == "plain":
            run("commit", "--no-progress", dat, idx, out)
        elif fin in ("lz4", "zstd"):
            run("commit", "--no-progress", "-z", "--algorithm", algo, "--bs", bs, dat, idx, out)
        elif fin == "tar":
            run("commit", "--no-progress", "-t", dat, idx, out)
        elif fin == "tarz":
            run("commit", "--no-progress", "-z", "-t", "--algorithm", algo, "--bs", bs,
                dat, idx, out)
        elif fin == "sealed":
            run("commit", "--seal", dat, idx)
            os.rename(dat, out)
        elif fin == "sealedz":
            run("commit", "--seal", dat, idx)
            run("commit", "--no-progress", "--commit_sealed", "-z", "--algorithm", algo,
                "--bs", bs, dat, out)
            os.unlink(dat)
        elif fin == "rezip":
            run("commit", "--no-progress", dat, idx, out + ".c")
            args = ["zfile", "--algorithm", algo, "--bs", bs]
            if rng.random() < 0.5:
                args.append("-t")
            run(*(args + [out + ".c", out]))
            os.unlink(out + ".c")
        for p in (dat, idx):
            if os.path.exists(p):
                os.unlink(p)
        paths.append(out)
        desc.append("%s%s" % (fin, "" if fin in ("plain", "tar", "sealed")
                                   else "/%s/%dK" % (algo, bs)))
    with open(os.path.join(sd, "layers"), "w") as f:
        f.write(" ".join(paths) + "\n")
    with open(os.path.join(sd, "model.sha256"), "w") as f:
        f.write(hashlib.sha256(merged).hexdigest() + "\n")
    print("OK %s: %d layers, vsize %d: %s" % (name, nl, vs, " ".join(desc)))
EOF
rc=$?
while read -r st rest; do
	case $st in
	OK) ok "build $rest" ;;
	FAIL) not_ok "build: $rest" ;;
	*) diag "$st $rest" ;;
	esac
done <"$d/gen.out"
[ "$rc" -eq 0 ] || bail "stack generator failed (seed $seed)"
diag "stacks built in $((SECONDS - t0)) s"

# --- devices -------------------------------------------------------------------
# s20, s3: obd attach; s1, s6: dmsetup create with `obd attach --table`;
# s2: obd attach --direct-io --no-verify; s6 again from ext4 with direct_io.
declare -A dev
for s in s20 s3; do
	# shellcheck disable=SC2046
	out=$("$obd" attach --name "obd20-$s" $(cat "$d/$s/layers") 2>&1)
	check_eq "obd attach $s prints the node" "$out" "/dev/mapper/obd20-$s" &&
		vm_on_exit "$obd" detach "obd20-$s"
	dev[$s]=obd20-$s
done
for s in s1 s6; do
	# shellcheck disable=SC2046
	t=$("$obd" attach --table $(cat "$d/$s/layers"))
	check "dmsetup create $s (obd attach --table)" dmsetup create "obd20-$s" --readonly --table "$t" &&
		vm_on_exit dmsetup remove "obd20-$s"
	dev[$s]=obd20-$s
done
# shellcheck disable=SC2046
out=$("$obd" attach --name obd20-s2 --direct-io --no-verify $(cat "$d/s2/layers") 2>&1)
check_eq "obd attach --direct-io --no-verify s2" "$out" /dev/mapper/obd20-s2 &&
	vm_on_exit "$obd" detach obd20-s2
dev[s2]=obd20-s2
t=$(dmsetup table obd20-s2)
check "s2 table carries '2 direct_io no_verify' ($t)" bash -c "[[ '$t' == *' 2 direct_io no_verify' ]]"

# s6's layers again on ext4 (tmpfs on 6.1 has no O_DIRECT: the target falls back)
modprobe ext4 2>/dev/null
truncate -s 96M "$d/ext4.img"
mkfs.ext4 -q -F "$d/ext4.img" && loopdev=$(vm_loop_attach "$d/ext4.img")
vm_on_exit losetup -d "${loopdev:-none}"
mkdir -p "$d/ext4"
if check "mount ext4 for layer files" mount "$loopdev" "$d/ext4"; then
	vm_on_exit umount "$d/ext4"
	lay=""
	for p in $(cat "$d/s6/layers"); do cp "$p" "$d/ext4/" && lay="$lay $d/ext4/${p##*/}"; done
	# shellcheck disable=SC2086
	t=$("$obd" attach --table --direct-io $lay)
	mkdir -p "$d/s6x"; echo "$lay" >"$d/s6x/layers"; cp "$d/s6/model.sha256" "$d/s6x/"
	m=$(dmesg | wc -l)
	check "dmsetup create s6 from ext4, direct_io" dmsetup create obd20-s6x --readonly --table "$t" &&
		vm_on_exit dmsetup remove obd20-s6x
	dev[s6x]=obd20-s6x
	w=$(dmesg | tail -n +"$((m + 1))" | grep -c 'O_DIRECT not supported')
	check_eq "ext4 layers opened O_DIRECT (no fallback warning)" "$w" 0
fi

list=$("$obd" list)
for s in "${!dev[@]}"; do
	sz=$(blockdev --getsize64 "/dev/mapper/${dev[$s]}" 2>/dev/null)
	check "obd list shows ${dev[$s]} ($sz bytes, its layers)" \
		grep -qxF "$(printf '%s\t%s\t%s' "${dev[$s]}" "$sz" "$(xargs <"$d/$s/layers")")" <<<"$list" ||
		diag "$list"
done

# --- content ----------------------------------------------------------------------
for s in "${!dev[@]}"; do
	n=${dev[$s]}
	# shellcheck disable=SC2046
	"$obd" cat --no-progress -o "$d/$s.cat" $(cat "$d/$s/layers") || not_ok "obd cat $s"
	want=$(sha256sum <"$d/$s.cat" | cut -d' ' -f1)
	check_eq "$s: obd cat = generator model" "$want" "$(cat "$d/$s/model.sha256")"
	check_eq "$s: sha256 of /dev/mapper/$n = obd cat" \
		"$(sha256sum <"/dev/mapper/$n" | cut -d' ' -f1)" "$want"
	check_eq "$s: size = obd cat size" "$(blockdev --getsize64 "/dev/mapper/$n")" \
		"$(stat -c %s "$d/$s.cat")"
done

# Random O_DIRECT reads (page-aligned buffers from mmap), 4 KiB, 64 KiB, 1 MiB.
pairs=()
for s in "${!dev[@]}"; do pairs+=("/dev/mapper/${dev[$s]}" "$d/$s.cat"); done
"$PY" - "$seed" "${pairs[@]}" >"$d/rr.out" 2>&1 <<'EOF'
import mmap, os, random, sys
rng = random.Random(int(sys.argv[1]) ^ 0x5a5a)
a = sys.argv[2:]
for dev, ref in zip(a[0::2], a[1::2]):
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    size = os.lseek(fd, 0, os.SEEK_END)
    with open(ref, "rb") as f:
        want = f.read()
    for n in (4096, 65536, 1 << 20):
        bad = []
        for k in range(12):
            ln = min(n, size)
            off = rng.randrange((size - ln) // 512 + 1) * 512
            if k == 0:
                off = size - ln          # the tail, unaligned to 4 KiB on s3
            buf = mmap.mmap(-1, ln)
            try:
                got = os.preadv(fd, [buf], off)
                if got != ln or buf[:] != want[off:off + ln]:
                    bad.append("%d: %d bytes differ" % (off, got))
            except OSError as e:
                bad.append("%d: %s" % (off, e))
            buf.close()
        print("%s %s: 12 O_DIRECT reads of %d bytes match obd cat%s" % (
            "FAIL" if bad else "OK", dev, n, (" (" + "; ".join(bad[:4]) + ")") if bad else ""))
    os.close(fd)
EOF
while read -r st rest; do
	case $st in OK) ok "$rest" ;; FAIL) not_ok "$rest" ;; *) not_ok "random reads: $st $rest" ;; esac
done <"$d/rr.out"
# and dd iflag=direct at a random offset of the 20-layer stack
off=$(( (RANDOM % 1000) * 4096 ))
check_eq "s20: dd iflag=direct 64 KiB at $off = obd cat --offset" \
	"$(dd if=/dev/mapper/obd20-s20 bs=64k count=1 iflag=direct,skip_bytes skip=$off status=none | sha256sum)" \
	"$(xargs "$obd" cat --no-progress --offset "$off" --length 64K <"$d/s20/layers" | sha256sum)"

for s in "${!dev[@]}"; do
	st=$(dmsetup status "${dev[$s]}")
	check "$s: status shows no errors ($st)" bash -c "[[ '$st' =~ crc_errors\ 0\ io_errors\ 0\ remote\ 0\ pending\ 0\ fetched\ 0\ daemon\ [01]$ ]]"
done

# --- teardown -----------------------------------------------------------------------
check "obd detach (obd attach devices)" bash -c "'$obd' detach obd20-s20 && '$obd' detach obd20-s3 && '$obd' detach obd20-s2"
check "dmsetup remove (table devices)" dmsetup remove obd20-s1 obd20-s6 obd20-s6x
check_eq "obd list empty" "$("$obd" list)" ""
check_eq "no parsed layers left" "$(cat $param)" 0
check "rmmod" rmmod dm_overlaybd
vm_dmesg_check 20-stacks
tap_done
