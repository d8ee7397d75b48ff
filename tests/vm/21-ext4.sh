#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 21-ext4.sh: a real ext4 file system in two layers.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/21-ext4.sh
# (11-target-fs.sh covers one generated tree in one layer; this adds a real tree,
# an upper layer holding a later version of the file system, deletions, fsck.)
#   - a subset of /usr/share/doc (~30 MiB, a few thousand files and symlinks)
#     -> mkfs.ext4 -d -> raw image -> obd import -> base layer (commit -z -t)
#   - a copy of the raw image is loop-mounted and modified (files added,
#     changed, truncated, renamed, deleted, a directory tree removed) exactly as
#     the source tree is; the changed 4 KiB blocks (only those, adjacent ones
#     joined) go into an upper layer with `obd write --offset`; commit zstd
#   - base alone and base+upper are served by the target and mounted
#     ro,noload: names, types, symlink targets and every file's sha256 equal the
#     source tree (before / after the change), deleted files are gone,
#     fsck.ext4 -fn is clean, and the device equals the modified raw image.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

obd=$OBD_TOP/build/obd
PY=/usr/bin/python3
param=/sys/module/dm_overlaybd/parameters/layers_parsed
docs=${OBD_DOCS:-/usr/share/doc}
[ -x "$obd" ] || bail "$obd missing: run make first"
vm_test_begin 21-ext4
modprobe ext4 2>/dev/null
modprobe loop 2>/dev/null
mkdir src mnt mb mu
t0=$SECONDS

# manifest ROOT: type, path, symlink target, size and sha256 of every entry
manifest() {
	(cd "$1" && find . -mindepth 1 ! -name lost+found ! -path './lost+found/*' \
		-printf '%y %p %l\n' | LC_ALL=C sort &&
		find . -type f ! -path './lost+found/*' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

# --- the source tree: whole package folders, sorted, up to ~36 MiB --------------------
sel=$(cd "$docs" && du -s --apparent-size -k -- * 2>/dev/null | LC_ALL=C sort -k2 |
	awk '$1 < 8192 { s += $1; if (s > 30720) exit; print $2 }')
# shellcheck disable=SC2086
(cd "$docs" && cp -a -- $sel "$d/src/") || bail "cannot copy $docs"
nf=$(find src -type f | wc -l); nl=$(find src -type l | wc -l)
diag "source: $(echo "$sel" | wc -l) folders of $docs, $nf files, $nl symlinks, $(du -sm src | cut -f1) MiB ($((SECONDS - t0)) s)"
check "source tree has thousands of files" [ "$nf" -ge 1000 ]
manifest src >base.manifest

check "mkfs.ext4 -d" mkfs.ext4 -q -F -b 4096 -d src base.raw 96M
check "obd create + import the base" bash -c "
	'$obd' create base.data base.index 96M &&
	'$obd' import --no-progress base.data base.index base.raw"
check "obd commit -z -t (base)" "$obd" commit --no-progress -z -t base.data base.index base.tar
rm -f base.data base.index
diag "base layer: $(stat -c %s base.tar) bytes ($((SECONDS - t0)) s)"

# --- the change: same operations on the source tree and on a loop-mounted copy --------
cp --sparse=always base.raw upper.raw
loopdev=$(vm_loop_attach upper.raw) || bail "losetup"
vm_on_exit losetup -d "$loopdev"
check "mount the copy read-write" mount -t ext4 "$loopdev" mnt || bail "cannot mount the copy"
mkdir new
"$PY" - <<'EOF' || bail "cannot generate new files"
import os, random
rng = random.Random(21)
os.makedirs("new/added/deep/er")
for i in range(40):
    n = rng.choice([0, 1, 100, 4095, 4096, 4097, 65536, 300000, 1 << 20])
    d = "new/added" if i % 3 else "new/added/deep/er"
    with open("%s/f%02d" % (d, i), "wb") as f:
        f.write(os.urandom(n) if i % 2 else (b"added file %d\n" % i) * (n // 14 + 1))
with open("new/blob", "wb") as f:
    f.write(os.urandom(777777))
EOF
cat >modify.py <<'EOF'
import os, shutil, sys
root = sys.argv[1]
files = sorted(l.rstrip("\n") for l in open("files.list"))
dirs = sorted(l.rstrip("\n") for l in open("dirs.list"))
blob = open("new/blob", "rb").read()
p = lambda r: os.path.join(root, r)
shutil.copytree("new/added", p("zz-added"), symlinks=True)
os.symlink("zz-added/f01", p("zz-link"))
gone = []
for k, f in enumerate(files[7::97]):
    m = k % 5
    if m == 0:                               # append
        with open(p(f), "ab") as o:
            o.write(b"appended line %d\n" % k * 50)
    elif m == 1:                             # overwrite in the middle
        with open(p(f), "r+b") as o:
            o.seek(os.path.getsize(p(f)) // 2)
            o.write(blob[k * 1000:k * 1000 + 5000])
    elif m == 2:                             # truncate
        os.truncate(p(f), os.path.getsize(p(f)) // 3)
    elif m == 3:                             # replace with a larger file
        with open(p(f), "wb") as o:
            o.write(blob[:100000 + k * 1000])
    else:                                    # delete
        os.unlink(p(f))
        gone.append(f)
for f in files[3::211]:
    if os.path.exists(p(f)) and f not in gone:
        os.rename(p(f), p(f) + ".renamed")
        gone.append(f)
for dd in dirs[5::60][:3]:                   # whole trees
    shutil.rmtree(p(dd))
    gone.append(dd)
with open("gone.list", "w") as o:
    o.write("\n".join(gone) + "\n")
EOF
(cd src && find . -type f | sed 's|^\./||' >../files.list && find . -mindepth 1 -maxdepth 1 -type d |
	sed 's|^\./||' >../dirs.list)
check "modify the source tree" "$PY" modify.py src
check "modify the mounted copy" "$PY" modify.py mnt
check "unmount the copy" umount mnt
losetup -d "$loopdev"
manifest src >upper.manifest
ngone=$(wc -l <gone.list)
diag "$(grep -c . gone.list) paths deleted or renamed ($((SECONDS - t0)) s)"

# --- the upper layer: the changed blocks only ---------------------------------------------
check "obd create (upper)" "$obd" create upper.data upper.index 96M
"$PY" - "$obd" >upper.out 2>&1 <<'EOF'
import subprocess, sys
obd = sys.argv[1]
B = 4096
a, b = open("base.raw", "rb"), open("upper.raw", "rb")
runs, cur, nblk = [], None, 0
i = 0
while True:
    x, y = a.read(1 << 20), b.read(1 << 20)
    if not y:
        break
    for k in range(0, len(y), B):
        if x[k:k + B] != y[k:k + B]:
            nblk += 1
            blk = i + k // B
            if cur and cur[1] == blk:
                cur[1] += 1
            else:
                cur = [blk, blk + 1]
                runs.append(cur)
    i += len(y) // B
b.seek(0)
for s, e in runs:
    b.seek(s * B)
    subprocess.run([obd, "write", "upper.data", "upper.index", "--offset", str(s * B), "-"],
                   input=b.read((e - s) * B), check=True)
print("%d changed blocks in %d runs" % (nblk, len(runs)))
EOF
rc=$?
check "obd write --offset of the changed blocks ($(tail -1 upper.out))" [ "$rc" = 0 ] || diag "$(cat upper.out)"
check "obd commit -z zstd (upper)" "$obd" commit --no-progress -z --algorithm zstd --bs 32 \
	upper.data upper.index upper.zst
rm -f upper.data upper.index
diag "upper layer: $(stat -c %s upper.zst) bytes ($((SECONDS - t0)) s)"

# --- serve and check ------------------------------------------------------------------------
out=$("$obd" attach --name obd21-base "$d/base.tar")
check_eq "obd attach base" "$out" /dev/mapper/obd21-base && vm_on_exit "$obd" detach obd21-base
out=$("$obd" attach --name obd21-fs "$d/base.tar" "$d/upper.zst")
check_eq "obd attach base+upper" "$out" /dev/mapper/obd21-fs && vm_on_exit "$obd" detach obd21-fs
check_eq "base parsed once for both devices" "$(cat $param)" 2
check_eq "base device = base raw image" "$(sha256sum </dev/mapper/obd21-base | cut -d' ' -f1)" \
	"$(sha256sum <base.raw | cut -d' ' -f1)"
check_eq "base+upper device = modified raw image" "$(sha256sum </dev/mapper/obd21-fs | cut -d' ' -f1)" \
	"$(sha256sum <upper.raw | cut -d' ' -f1)"
rm -f base.raw upper.raw
check "fsck.ext4 -fn base+upper device" fsck.ext4 -fn /dev/mapper/obd21-fs
echo 3 >/proc/sys/vm/drop_caches
check "mount base ro,noload" mount -t ext4 -o ro,noload /dev/mapper/obd21-base mb && vm_on_exit umount "$d/mb"
check "mount base+upper ro,noload" mount -t ext4 -o ro,noload /dev/mapper/obd21-fs mu && vm_on_exit umount "$d/mu"
manifest mb >mb.manifest &
manifest mu >mu.manifest
wait
check "base: names, types, links, sha256 of every file = source before the change" \
	cmp -s mb.manifest base.manifest || diag "$(diff base.manifest mb.manifest | head -20)"
check "base+upper: the same = source after the change" \
	cmp -s mu.manifest upper.manifest || diag "$(diff upper.manifest mu.manifest | head -20)"
diag "$(grep -c '^[0-9a-f]\{64\} ' mu.manifest) files compared"
still=0; was=0
while read -r g; do
	[ -e "mu/$g" ] && still=$((still + 1))
	[ -e "mb/$g" ] && was=$((was + 1))
done <gone.list
check_eq "deleted / renamed paths gone from base+upper" "$still" 0
check_eq "... and present in the base" "$was" "$ngone"
check "added files present (zz-added, zz-link)" bash -c "cmp -s mu/zz-added/f01 new/added/f01 && [ \"\$(readlink mu/zz-link)\" = zz-added/f01 ]"
st=$(dmsetup status obd21-fs)
check "status: no errors ($st)" bash -c "[[ '$st' =~ crc_errors\ 0\ io_errors\ 0\ remote\ 0\ pending\ 0\ fetched\ 0\ daemon\ [01]$ ]]"

umount mb; umount mu
check "detach" bash -c "'$obd' detach obd21-fs && '$obd' detach obd21-base"
check_eq "no parsed layers left" "$(cat $param)" 0
check "rmmod" rmmod dm_overlaybd
diag "total $((SECONDS - t0)) s"
vm_dmesg_check 21-ext4
tap_done
