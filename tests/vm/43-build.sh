#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 43-build.sh: obd build DIR OUT (issue #9), the image made through the
# kernel's writable upper.
#   scripts/vm-run.sh --kernel 6.1 -- bash tests/vm/43-build.sh
#   - a tree with files (random, text, empty, sparse, large), directories
#     with odd modes and owners, setuid/sticky bits, symlinks, a hard-link
#     group, character and block devices, a FIFO, xattrs (trusted.*, and
#     user.* where the source file system takes them), set mtimes
#   - obd build makes an OCI image layout: skopeo inspect reads it, its
#     manifest digest is the printed one; the config.v1.json attaches, the
#     file system passes fsck.ext4 -fn, and mounted read-only it lists
#     exactly as the source (tree_manifest.py: types, modes, owners,
#     mtimes, sizes, sha256, link targets, device numbers, hard-link
#     groups, xattrs)
#   - obd push of the built layer to docker-registry publishes the same
#     manifest (same digest) as OUT holds
#   - the default size (64 GiB) builds too; --no-zfile --no-tar gives a
#     plain committed layer
#   - refused with a message: DIR not a directory, OUT not empty, not root,
#     the module not loaded
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/vm/registry_lib.sh
. "$OBD_TOP/tests/vm/registry_lib.sh"
manifest="$PY $OBD_TOP/tests/vm/tree_manifest.py"
[ -x "$obd" ] || bail "$obd missing: run make first"
vm_test_begin 43-build
modprobe ext4 2>/dev/null

# --- the source tree ---------------------------------------------------------------
check "make the source tree" $PY - "$d/src" <<'PYEOF'
import os, random, sys
r = random.Random(43)
root = sys.argv[1]
os.makedirs(root)
def w(p, data):
    with open(os.path.join(root, p), "wb") as f:
        f.write(data)
os.makedirs(os.path.join(root, "etc/conf.d"))
os.makedirs(os.path.join(root, "usr/lib/deep/a/b/c/d"))
os.makedirs(os.path.join(root, "var/tmp"))
os.makedirs(os.path.join(root, "home/user/.cache"))
w("etc/hostname", b"obd-build\n")
w("etc/conf.d/text.conf", b"".join(b"line %d of a config file\n" % i for i in range(3000)))
w("usr/lib/random.bin", r.randbytes(3 << 20))
w("usr/lib/deep/a/b/c/d/leaf", b"deep\n")
w("empty", b"")
with open(os.path.join(root, "sparse.img"), "wb") as f:
    f.seek(5 << 20); f.write(b"end of a sparse file"); f.truncate(8 << 20)
w("bin-tool", r.randbytes(70000))
for p, uid, gid in (("home/user", 1000, 1000), ("home/user/.cache", 1000, 100),
                    ("etc/hostname", 0, 4), ("bin-tool", 0, 50)):
    os.chown(os.path.join(root, p), uid, gid)
os.chmod(os.path.join(root, "bin-tool"), 0o4755)	# after chown, which clears it
os.chmod(os.path.join(root, "var/tmp"), 0o1777)
os.chmod(os.path.join(root, "home/user/.cache"), 0o700)
w("usr/lib/hard1", b"one inode, three names\n")
os.link(os.path.join(root, "usr/lib/hard1"), os.path.join(root, "usr/lib/hard2"))
os.link(os.path.join(root, "usr/lib/hard1"), os.path.join(root, "etc/hard3"))
os.symlink("../usr/lib/random.bin", os.path.join(root, "etc/link-rel"))
os.symlink("/etc/hostname", os.path.join(root, "link-abs"))
os.symlink("dangling/target", os.path.join(root, "link-dangling"))
os.mknod(os.path.join(root, "null"), 0o20666, os.makedev(1, 3))
os.mknod(os.path.join(root, "loop9"), 0o60660, os.makedev(7, 9))
os.mkfifo(os.path.join(root, "var/fifo"), 0o640)
os.setxattr(os.path.join(root, "etc/hostname"), "trusted.obd-test", b"\x00\x01binary")
os.setxattr(os.path.join(root, "usr/lib"), "trusted.dir-attr", b"on a directory")
try:
    os.setxattr(os.path.join(root, "bin-tool"), "user.comment", b"a user xattr")
except OSError:
    pass  # tmpfs before 6.6 has no user.* xattrs
for i, p in enumerate(("etc/hostname", "usr/lib/random.bin", "etc", "usr/lib/deep")):
    t = 1500000000_123456789 + i * 86400_000000000
    os.utime(os.path.join(root, p), ns=(t, t), follow_symlinks=False)
os.utime(os.path.join(root, "link-abs"), ns=(1600000000_5, 1600000000_5), follow_symlinks=False)
PYEOF
$manifest "$d/src" > src.manifest

# --- build, inspect, attach, compare ----------------------------------------------------
out=$("$obd" build --size 256M -m "built by 43-build" "$d/src" "$d/img" 2> build.err)
check "obd build --size 256M DIR OUT" test -n "$out" || diag "$(cat build.err)"
read -r layer_digest man_digest <<< "$out"
check "OUT is an OCI layout: oci-layout, index.json, the blobs" bash -c "
	test -s img/oci-layout && test -s img/index.json && test -s img/config.v1.json &&
	test -s img/blobs/sha256/${layer_digest#sha256:} && test -s img/blobs/sha256/${man_digest#sha256:} &&
	! ls -A img | grep -q obd-build"
check_eq "skopeo inspect oci:OUT: the printed manifest digest, one layer" \
	"$(skopeo inspect --raw "oci:$d/img:latest" | sha256sum | cut -d' ' -f1) $(skopeo inspect "oci:$d/img:latest" | $PY -c 'import json, sys; j = json.load(sys.stdin); print(j["Layers"])')" \
	"${man_digest#sha256:} ['$layer_digest']"
check_eq "the layer is a ZFile in a tar (the default), virtual size 256 MiB" \
	"$("$obd" info --json "img/blobs/sha256/${layer_digest#sha256:}" | $PY -c 'import json, sys; l = json.load(sys.stdin)["layers"][0]; print(l["wrapping"], l["virtual_size"])')" \
	"['tar', 'zfile'] 268435456"
dev=$("$obd" attach --name b-img img/config.v1.json 2> attach.err)
check_eq "config.v1.json attaches" "$dev" /dev/mapper/b-img || diag "$(cat attach.err)"
check "fsck.ext4 -fn is clean" fsck.ext4 -fn /dev/mapper/b-img
mkdir -p mnt
check "mounts read-only" mount -o ro,noload /dev/mapper/b-img mnt
$manifest mnt > img.manifest
check "the image's tree lists exactly as the source ($(wc -l < src.manifest) entries)" \
	diff src.manifest img.manifest
umount mnt
check "detach" "$obd" detach b-img

reg_start
ok "docker-registry on 127.0.0.1"
pushed=$("$obd" push --json "http://127.0.0.1:$REG/built/img:v1" "img/blobs/sha256/${layer_digest#sha256:}" 2> push.err |
	$PY -c 'import json, sys; print(json.load(sys.stdin)["manifest"]["digest"])')
check_eq "obd push of the layer publishes the manifest OUT holds" "$pushed" "$man_digest" ||
	diag "$(cat push.err)"

# --- default size, plain commit ----------------------------------------------------------
mkdir -p small/dir
echo small > small/dir/file
out=$("$obd" build --no-zfile --no-tar small "$d/img2" 2> build2.err)
check "obd build with the default size, --no-zfile --no-tar" test -n "$out" || diag "$(cat build2.err)"
read -r layer2 _ <<< "$out"
check_eq "a plain committed layer of 64 GiB" \
	"$("$obd" info --json "img2/blobs/sha256/${layer2#sha256:}" | $PY -c 'import json, sys; l = json.load(sys.stdin)["layers"][0]; print(l["kind"], l["wrapping"], l["virtual_size"])')" \
	"committed [] 68719476736"
check "it attaches and mounts, the file is there" bash -c "
	'$obd' attach --name b-img2 img2/config.v1.json > /dev/null && mount -o ro,noload /dev/mapper/b-img2 mnt &&
	[ \"\$(cat mnt/dir/file)\" = small ]"
umount mnt 2>/dev/null
"$obd" detach b-img2 2>/dev/null

# --- refusals ------------------------------------------------------------------------------
refuse() {	# refuse DESC PATTERN CMD...: fails, stderr matches
	local desc=$1 pat=$2 out rc
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	check "$desc: refused ($out)" bash -c "[ $rc -ne 0 ] && grep -q -- '$pat' <<< \"\$1\"" _ "$out"
}
refuse "DIR not a directory" "not a directory" "$obd" build small/dir/file "$d/img3"
refuse "OUT not empty" "exists and is not empty" "$obd" build small "$d/img"
refuse "not root" "needs root" setpriv --reuid=65534 --regid=65534 --clear-groups "$obd" build small "$d/img4"
check "no device left behind" bash -c "! dmsetup ls | grep -q obd-build"
vm_unload_module
refuse "module not loaded" "needs the dm-overlaybd module" "$obd" build small "$d/img5"
vm_load_module || bail "cannot load dm-overlaybd again"
vm_dmesg_check 43-build
tap_done
