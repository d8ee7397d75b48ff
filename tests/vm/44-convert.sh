#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 44-convert.sh: obd convert SOURCE OUTDIR (issue #9), each layer written by
# the kernel's upper over the layers before it.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/44-convert.sh
#   - a three-layer OCI image made with umoci (Debian), not by our code:
#     layer 1 a tree with odd modes, owners, setuid/sticky bits, symlinks,
#     a hard-link group, devices, a FIFO, xattrs and set mtimes; layer 2
#     (umoci repack) deletes files and a directory tree (whiteouts),
#     changes files, modes and owners, turns a directory into a file and
#     links a new name to a lower file; layer 3 (a GNU tar made by hand,
#     umoci raw add-layer) makes a directory opaque (.wh..wh..opq), and
#     removes and adds files through a symlinked directory (lib2 -> usr/lib2)
#     and through absolute symlinks of layer 1 (var/run -> /run, opt/app ->
#     /srv/app whose cfg -> /srv/conf: chroot semantics, as containerd and
#     umoci apply them): a directory, a file, a hard link and a whiteout
#     below var/run, a file below opt/app/cfg, a directory member that
#     replaces layer 1's symlink lnkdir -> /srv/app
#   - the reference rootfs: umoci unpack (the layers applied the standard way)
#   - obd convert of oci:DIR:TAG (gzip), of a zstd copy (skopeo
#     --dest-compress-format zstd), of docker-archive:FILE and of
#     docker://127.0.0.1 (docker-registry): three overlaybd layers each,
#     fsck.ext4 -fn clean, the mounted tree lists exactly as the reference
#     rootfs (tree_manifest.py: types, modes, owners, mtimes, sizes,
#     sha256, link targets, devices, hard-link groups, xattrs)
#   - skopeo inspect reads OUTDIR; obd push of its layers publishes the
#     manifest OUTDIR holds
#   - a layer writing through a lower layer's symlink to /tmp/obd-escape
#     (outside the image on the host): written inside the image, at its
#     /tmp/obd-escape, as umoci does; nothing written on the host
#   - refused: a source skopeo cannot read, OUTDIR not empty
#   - a decompression bomb (oci_bomb.py: a 256 KiB gzip layer of 256 MiB of
#     zeros) into an OUTDIR on a 160 MiB tmpfs with --min-free 96M: stopped
#     with a message, the tmpfs never below 48 MiB free (sampled throughout;
#     the old obd filled it), no image, no work files, no device left
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
manifest="$PY $OBD_TOP/tests/vm/tree_manifest.py"
[ -x "$obd" ] || bail "$obd missing: run make first"
command -v umoci > /dev/null || bail "umoci missing: scripts/deps.sh installs it"
vm_test_begin 44-convert
modprobe ext4 2>/dev/null
mkdir -p tmp	# skopeo's temporary files (the guest's /var/tmp is read-only)
skopeo() { command skopeo --insecure-policy --tmpdir "$d/tmp" "$@"; }

# --- the OCI image, made with umoci -----------------------------------------------------
check "umoci init, new, unpack" bash -c \
	"umoci init --layout src && umoci new --image src:v1 && umoci unpack --image src:v1 bundle"
R=$d/bundle/rootfs
check "layer 1: a tree" $PY - "$R" <<'PYEOF'
import os, random, sys
r = random.Random(44)
root = sys.argv[1]
def p(x): return os.path.join(root, x)
def w(x, data):
    with open(p(x), "wb") as f:
        f.write(data)
for x in ("etc/conf.d", "usr/share/gone/sub", "usr/lib", "opq/old/deeper", "swap/inner", "var/tmp", "home/u"):
    os.makedirs(p(x), exist_ok=True)
w("etc/old.conf", b"to be deleted\n")
w("etc/keep.conf", b"".join(b"keep %d\n" % i for i in range(2000)))
w("etc/change.me", b"version 1\n")
w("usr/share/gone/a", b"a"); w("usr/share/gone/sub/b", r.randbytes(5000))
w("usr/lib/big.bin", r.randbytes(2 << 20))
w("opq/old/deeper/x", b"hidden by the opaque directory\n"); w("opq/keepname", b"lower\n")
w("swap/inner/f", b"a directory that becomes a file\n")
w("usr/lib/hard1", b"hard link group\n")
os.link(p("usr/lib/hard1"), p("usr/lib/hard2"))
os.symlink("../usr/lib/big.bin", p("etc/big-link"))
os.symlink("/nonexistent/target", p("dangling"))
os.mknod(p("null"), 0o20666, os.makedev(1, 3))
os.mknod(p("loop7"), 0o60660, os.makedev(7, 7))
os.mkfifo(p("fifo"), 0o600)
w("usr/lib/suid", r.randbytes(3000))
os.makedirs(p("usr/lib2"))
w("usr/lib2/old", b"removed through a symlinked directory\n")
os.symlink("usr/lib2", p("lib2"))
for x in ("run", "srv/app", "srv/conf", "opt"):
    os.makedirs(p(x), exist_ok=True)
w("run/old", b"removed through var/run -> /run\n")
os.symlink("/run", p("var/run"))
os.symlink("/srv/conf", p("srv/app/cfg"))
os.symlink("/srv/app", p("opt/app"))
os.symlink("/srv/app", p("lnkdir"))
for x, u, g in (("home/u", 1000, 1000), ("usr/lib/suid", 0, 50), ("etc/keep.conf", 33, 33)):
    os.chown(p(x), u, g)
os.chmod(p("usr/lib/suid"), 0o4755)
os.chmod(p("var/tmp"), 0o1777)
os.setxattr(p("etc/keep.conf"), "trusted.obd-conv", b"\x01\x02xattr")
os.setxattr(p("usr/lib"), "trusted.on-dir", b"dir attr")
for i, x in enumerate(("etc/keep.conf", "usr/lib/big.bin", "usr/lib")):
    t = 1400000000_000000000 + i * 3600_000000000
    os.utime(p(x), ns=(t, t))
PYEOF
check "umoci repack (layer 1)" umoci repack --refresh-bundle --image src:v1 bundle
check "layer 2: deletions, changes, a directory turned into a file, a link to a lower file" bash -c "
	rm '$R/etc/old.conf' && rm -r '$R/usr/share/gone' && echo 'version 2' > '$R/etc/change.me' &&
	echo new > '$R/etc/new.conf' && rm -r '$R/swap' && echo 'now a file' > '$R/swap' &&
	ln '$R/usr/lib/big.bin' '$R/usr/lib/big-hardlink' && chmod 600 '$R/etc/keep.conf' &&
	chown 1001:1002 '$R/usr/lib/hard1' && touch -d @1450000000 '$R/etc/change.me' &&
	touch -d @1450000100 '$R/etc'"
# (etc's own mtime set too: umoci repack records a changed directory's entry
# only when its mtime moved to another second, so when layer 1 and 2 were made
# within one second the layer had no etc entry and etc's mtime was the
# conversion's, a flake of this test)
check "umoci repack (layer 2)" umoci repack --refresh-bundle --image src:v1 bundle
mkdir -p opq-layer/opq opq-layer/lib2
: > opq-layer/opq/.wh..wh..opq
echo fresh > opq-layer/opq/fresh
echo upper > opq-layer/opq/keepname
: > opq-layer/lib2/.wh.old
echo "written through lib2 -> usr/lib2" > opq-layer/lib2/via-link
mkdir -p opq-layer/var/run/nginx opq-layer/opt/app/cfg opq-layer/lnkdir
echo 4242 > opq-layer/var/run/nginx/pid
echo "through var/run -> /run" > opq-layer/var/run/hello
ln opq-layer/var/run/hello opq-layer/var/run/hello-link
: > opq-layer/var/run/.wh.old
echo "through opt/app -> /srv/app, cfg -> /srv/conf" > opq-layer/opt/app/cfg/app.conf
echo "a directory where layer 1 had a symlink" > opq-layer/lnkdir/inside
touch -d @1460000000 opq-layer/var/run/nginx opq-layer/lnkdir
check "layer 3: an opaque directory, whiteouts and files through symlinked directories (GNU tar, umoci raw add-layer)" bash -c "
	tar -C opq-layer -cf opq.tar opq lib2/.wh.old lib2/via-link var/run/nginx ./var/run/hello \
		var/run/hello-link var/run/.wh.old opt/app/cfg/app.conf lnkdir &&
	umoci raw add-layer --image src:v1 opq.tar"
check "umoci unpack: the reference rootfs" umoci unpack --image src:v1 ref
# directories layer 3 changes through a symlink, without an entry of their own
unentried='s#^\(\(\.\|usr/lib2\|run\|srv/conf\) d [0-7]* [0-9]* [0-9]*\) [0-9]*#\1 -#'
$manifest ref/rootfs | sed "$unentried" > ref.manifest
check "the reference has the opaque directory applied, the deletions done" bash -c "
	test ! -e ref/rootfs/opq/old && test -e ref/rootfs/opq/fresh && test ! -e ref/rootfs/etc/old.conf &&
	test ! -e ref/rootfs/usr/share/gone && test -f ref/rootfs/swap &&
	test -f ref/rootfs/usr/lib2/via-link && test ! -e ref/rootfs/usr/lib2/old"
check "the reference has layer 3 written through the absolute symlinks, in the image" bash -c "
	test -f ref/rootfs/run/nginx/pid && test -f ref/rootfs/run/hello-link && test ! -e ref/rootfs/run/old &&
	test -f ref/rootfs/srv/conf/app.conf && test -d ref/rootfs/lnkdir -a ! -L ref/rootfs/lnkdir &&
	test -L ref/rootfs/var/run"

# converted OUT NAME: attach OUT, fsck, mount, the tree = the reference
converted() {
	local out=$1 name=$2 n
	n=$($PY -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["lowers"]))' "$out/config.v1.json")
	check_eq "$name: three overlaybd layers" "$n" 3
	check "$name: attaches" "$obd" attach --name "c-$name" "$out/config.v1.json"
	check "$name: fsck.ext4 -fn is clean" fsck.ext4 -fn "/dev/mapper/c-$name"
	mkdir -p mnt
	check "$name: mounts read-only" mount -o ro,noload "/dev/mapper/c-$name" mnt
	# the root, usr/lib2, run and srv/conf have no entry in layer 3, which changes them
	# through symlinks: GNU tar leaves them the conversion's mtime, umoci
	# keeps the old one (docs/obd.md)
	$manifest mnt | sed "$unentried" > "$name.manifest"
	check "$name: the tree lists exactly as umoci's rootfs ($(wc -l < ref.manifest) entries)" \
		diff ref.manifest "$name.manifest"
	umount mnt
	"$obd" detach "c-$name"
}

# --- oci:DIR:TAG -----------------------------------------------------------------------------
out=$("$obd" convert --size 256M "oci:$d/src:v1" "$d/o1" 2> conv.err)
check "obd convert oci:DIR:TAG" test -n "$out" || diag "$(cat conv.err)"
converted "$d/o1" oci
man=${out##* }
check_eq "skopeo inspect oci:OUTDIR: the printed manifest digest" \
	"$(skopeo inspect --raw "oci:$d/o1:latest" | sha256sum | cut -d' ' -f1)" "${man#sha256:}"
read -r -a layers <<< "${out% *}"

# --- zstd, docker-archive, docker:// -------------------------------------------------------
check "skopeo: a zstd copy" skopeo copy --quiet --dest-compress --dest-compress-format zstd \
	"oci:$d/src:v1" "oci:$d/srcz:v1"
check "the copy's layers are zstd" bash -c "skopeo inspect --raw 'oci:$d/srcz:v1' | grep -q 'tar+zstd'"
check "obd convert of the zstd image" bash -c "'$obd' convert --size 256M 'oci:$d/srcz:v1' '$d/o2' > /dev/null"
converted "$d/o2" zstd
check "skopeo: a docker-archive" skopeo copy --quiet "oci:$d/src:v1" "docker-archive:$d/img.tar:conv/img:v1"
check "obd convert docker-archive:FILE" bash -c "'$obd' convert --size 256M --insecure-policy 'docker-archive:$d/img.tar' '$d/o3' > /dev/null"
converted "$d/o3" archive
reg_start
ok "docker-registry on 127.0.0.1"
check "skopeo: the image into the registry" skopeo copy --quiet --dest-tls-verify=false \
	"oci:$d/src:v1" "docker://127.0.0.1:$REG/conv/src:v1"
check "obd convert docker://127.0.0.1:PORT/REPO:TAG" bash -c \
	"'$obd' convert --size 256M --src-tls-verify=false 'docker://127.0.0.1:$REG/conv/src:v1' '$d/o4' > /dev/null"
converted "$d/o4" registry

pushed=$("$obd" push --json "http://127.0.0.1:$REG/conv/obd:v1" \
	"${layers[@]/#sha256:/$d/o1/blobs/sha256/}" 2> push.err |
	$PY -c 'import json, sys; print(json.load(sys.stdin)["manifest"]["digest"])')
check_eq "obd push of the converted layers publishes the manifest OUTDIR holds" "$pushed" "$man" ||
	diag "$(cat push.err)"

# --- refusals ---------------------------------------------------------------------------------
out=$("$obd" convert "oci:$d/no-such-layout:v1" "$d/o5" 2>&1)
rc=$?
check "a source skopeo cannot read: refused, no image ($out)" test "$rc" -ne 0 -a ! -e "$d/o5/index.json"
check "... with skopeo's message" grep -q "skopeo failed" <<< "$out"
out=$("$obd" convert "oci:$d/src:v1" "$d/o1" 2>&1)
check "OUTDIR not empty: refused" grep -q "exists and is not empty" <<< "$out"
# a lower layer's symlink to outside the image (on the host), a member written through it
mkdir -p /tmp/obd-escape
check "an image whose layer 2 writes through layer 1's symlink esc -> /tmp/obd-escape (umoci)" bash -c "
	umoci init --layout evil && umoci new --image evil:v1 && umoci unpack --image evil:v1 eb &&
	ln -s /tmp/obd-escape eb/rootfs/esc && umoci repack --refresh-bundle --image evil:v1 eb &&
	mkdir -p evil-layer/esc && echo pwned > evil-layer/esc/pwned &&
	tar -C evil-layer -cf evil.tar esc/pwned && umoci raw add-layer --image evil:v1 evil.tar &&
	umoci unpack --image evil:v1 evil-ref"
check "umoci writes it inside the image, at /tmp/obd-escape/pwned" test -f evil-ref/rootfs/tmp/obd-escape/pwned
out=$("$obd" convert --size 256M "oci:$d/evil:v1" "$d/o6" 2>&1)
check "obd convert of it" test $? -eq 0 || diag "$out"
check "... nothing written on the host" test ! -e /tmp/obd-escape/pwned
if "$obd" attach --name c-evil "$d/o6/config.v1.json" > /dev/null && mount -o ro,noload /dev/mapper/c-evil mnt; then
	check_eq "the member is in the image at /tmp/obd-escape/pwned" "$(cat mnt/tmp/obd-escape/pwned 2>&1)" pwned
	check_eq "... and esc is still the symlink" "$(readlink mnt/esc)" /tmp/obd-escape
	umount mnt
	"$obd" detach c-evil
else
	check "the converted image attaches and mounts" false
fi
rm -rf /tmp/obd-escape

# --- a decompression bomb: the upper grows in OUTDIR, on the host's file system ----------
mkdir -p small
check "a 160 MiB tmpfs for OUTDIR" mount -t tmpfs -o size=160m tmpfs small
vm_on_exit umount -l "$d/small"
check "an OCI image whose gzip layer holds 256 MiB of zeros" $PY "$OBD_TOP/tests/vm/oci_bomb.py" bomb v1 256
rm -f small.stop small.avail
( while [ ! -e small.stop ]; do df -B1 --output=avail small | tail -n 1 >> small.avail; sleep 0.05; done ) &
sampler=$!
out=$("$obd" convert --size 1G --min-free 96M "oci:$d/bomb:v1" small/o 2>&1)
rc=$?
touch small.stop
wait "$sampler"
check "obd convert of the bomb fails" test "$rc" -ne 0
check "... saying OUTDIR's file system ran short" grep -q 'kept free (--min-free)' <<< "$out" || diag "$out"
minavail=$(sort -n small.avail | head -n 1)
check "... and the tmpfs never had less than 48 MiB free (least: $((minavail >> 20)) MiB, $(wc -l < small.avail) samples)" \
	test "$minavail" -ge $((48 << 20))
check "... no image, no work files left in OUTDIR" bash -c "! ls -A small/o | grep -qv -e '^blobs\$' -e '^oci-layout\$'"
check "no device left behind" bash -c "! dmsetup ls | grep -q obd-convert"
vm_dmesg_check 44-convert
tap_done
