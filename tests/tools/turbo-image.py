#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Test images for obd convert --turbo-oci, made with python's tarfile and gzip.

turbo-image.py layout DIR              a three-layer OCI layout (gzip, tar, gzip):
                                       odd sizes, > 1 MiB, hard links, symlinks,
                                       devices, a fifo, xattrs, long names, a
                                       whiteout, an opaque directory
turbo-image.py deflate DIR             a two-layer layout (gzip, tar) whose gzip
                                       layer holds a deflate block of > 6 MiB (no
                                       access point inside), stored blocks and
                                       Huffman blocks (access points at bit offsets)
turbo-image.py bad KIND DIR            a one-layer layout with a bad layer:
                                       zstd | lying-size | lying-size-big | gz-trailing | gz-two |
                                       symlink-loop | through-symlinks (not bad)
turbo-image.py model DIR               the file system the layout's layers make
                                       (whiteouts applied), as JSON on stdout
turbo-image.py compare DIR IMG         IMG (an ext4 image, read with debugfs) holds
                                       exactly that file system: every path, kind,
                                       mode, owner, xattr, content, symlink target,
                                       device number and hard-link group
turbo-image.py files DIR MNT [SKIP]    every regular file of the model (but SKIP)
                                       under the mounted MNT has the model's sha256
turbo-image.py entries GZIP.META       its access points, one a line: de_pos en_pos
                                       win_pos bits
turbo-image.py granules CACHE GZ DIR... every granule marked present in the blob
                                       entries of CACHE and the gunzip entries of
                                       GZ equals the blob's bytes (decompressed for
                                       GZ), the blobs found in the layouts DIR...
turbo-image.py bench DIR MB            the image of the TurboOCI benchmark
                                       (tests/vm/bench-turbo.sh): about MB MiB of
                                       files in four gzip layers; prints the files
                                       ("path<TAB>size", sorted: tar order)
"""
import glob
import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib

MT = "application/vnd.oci.image.layer.v1.tar"


def rnd_bytes(seed, n):
    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(n)) if n < 65536 else r.randbytes(n)


def add(t, name, typ=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link="",
        xattrs=None, dev=(0, 0)):
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    ti.mtime = 1700000000
    ti.linkname = link
    ti.devmajor, ti.devminor = dev
    if xattrs:
        ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
    if typ == tarfile.REGTYPE:
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    else:
        t.addfile(ti)


def layer1(t):
    D = tarfile.DIRTYPE
    add(t, "etc", D, mode=0o755)
    add(t, "etc/hello", data=b"hello world\n" * 100 + b"x", xattrs={"user.greeting": "hi there"})
    add(t, "etc/gone", data=b"to be whited out\n")
    add(t, "etc/keep", data=b"kept\n", mode=0o600, uid=1000, gid=1001)
    add(t, "usr", D, mode=0o755)
    add(t, "usr/bin", D, mode=0o755)
    add(t, "usr/bin/tool", data=rnd_bytes(1, 70001), mode=0o4755, uid=0, gid=50)
    add(t, "usr/bin/ln-rel", tarfile.SYMTYPE, link="tool", mode=0o777)
    add(t, "etc/abs", tarfile.SYMTYPE, link="/etc/hello", mode=0o777)
    add(t, "etc/long-target", tarfile.SYMTYPE, link="../" + "x" * 90 + "/target", mode=0o777)
    add(t, "data", D, mode=0o750, uid=33, gid=33)
    add(t, "data/big", data=rnd_bytes(2, 3 * 1024 * 1024 + 17), xattrs={"user.big": "1"})
    add(t, "data/big-link", tarfile.LNKTYPE, link="data/big")
    add(t, "data/empty", data=b"")
    add(t, "data/exact4k", data=rnd_bytes(3, 4096))
    add(t, "data/sector", data=rnd_bytes(4, 512))
    add(t, "data/one", data=b"1")
    add(t, "data/sub", D, mode=0o755)
    add(t, "data/sub/deep", data=rnd_bytes(5, 9000))
    add(t, "dev", D, mode=0o755)
    add(t, "dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3))
    add(t, "dev/sda", tarfile.BLKTYPE, mode=0o660, gid=6, dev=(8, 0))
    add(t, "dev/big-dev", tarfile.CHRTYPE, mode=0o600, dev=(300, 70000))
    add(t, "dev/fifo", tarfile.FIFOTYPE, mode=0o644)
    add(t, "opq", D, mode=0o755)
    add(t, "opq/a", data=b"lower a\n")
    add(t, "opq/sub", D, mode=0o755)
    add(t, "opq/sub/b", data=b"lower b\n")
    longdir = "long/" + "d" * 120
    add(t, "long", D, mode=0o755)
    add(t, longdir, D, mode=0o755)
    add(t, longdir + "/" + "f" * 200, data=rnd_bytes(6, 5000))
    add(t, "caps", data=b"cap\n", xattrs={"security.capability": "\x01\x00\x00\x02 \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"})
    # many entries in one directory: it grows past one block
    add(t, "many", D, mode=0o755)
    for i in range(300):
        add(t, "many/file-with-a-longish-name-%04d" % i, data=b"%d\n" % i)


def layer2(t):
    D = tarfile.DIRTYPE
    add(t, "etc/.wh.gone")
    add(t, "opq", D, mode=0o700)
    add(t, "opq/.wh..wh..opq")
    add(t, "opq/new", data=b"upper new\n")
    add(t, "etc/hello", data=rnd_bytes(7, 1024 * 1024 + 1), mode=0o640,
        xattrs={"user.greeting": "changed", "user.second": "2"})
    add(t, "usr/bin/ln-rel", data=b"now a file\n")
    add(t, "data/big-link2", tarfile.LNKTYPE, link="data/big")
    add(t, "data", D, mode=0o755, uid=0, gid=0)
    add(t, "newdir/nested/file", data=rnd_bytes(8, 12345))   # parents implied


def layer3(t):
    D = tarfile.DIRTYPE
    add(t, "data/.wh.sub")
    add(t, "many/.wh.file-with-a-longish-name-0007")
    add(t, "etc/gone", data=b"back again\n")
    add(t, "hl-a", data=rnd_bytes(9, 20000))
    add(t, "hl-b", tarfile.LNKTYPE, link="hl-a")
    # > 16383 sectors: its mapping is split into records of at most 16383
    add(t, "huge", data=rnd_bytes(10, 9 * 1024 * 1024 + 123))
    add(t, "data/sub", D, mode=0o711)
    add(t, "data/sub/fresh", data=b"fresh\n")


def tar_bytes(fn, fmt=tarfile.PAX_FORMAT):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=fmt) as t:
        fn(t)
    return b.getvalue()


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


def write_layout(d, blobs):
    """blobs: [(bytes, media type, diff_id bytes)]"""
    os.makedirs(d + "/blobs/sha256", exist_ok=True)

    def put(b):
        h = hashlib.sha256(b).hexdigest()
        with open("%s/blobs/sha256/%s" % (d, h), "wb") as f:
            f.write(b)
        return "sha256:" + h

    layers, diffs = [], []
    for b, mt, raw in blobs:
        layers.append({"mediaType": mt, "digest": put(b), "size": len(b)})
        diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/usr/bin/tool"]},
                      "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
    c = put(cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": c, "size": len(cfg)},
                      "layers": layers}).encode()
    m = put(man)
    with open(d + "/oci-layout", "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(d + "/index.json", "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m,
             "size": len(man), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)


def make_layout(d):
    t1, t2, t3 = tar_bytes(layer1), tar_bytes(layer2, tarfile.GNU_FORMAT), tar_bytes(layer3)
    write_layout(d, [(gz(t1), MT + "+gzip", t1), (t2, MT, t2), (gz(t3), MT + "+gzip", t3)])


def deflate_layers():
    r = random.Random(7)
    phrase = r.randbytes(3000)

    def l1(t):
        # long matches only: zlib (memLevel 9) ends a block after 32 Ki
        # symbols, here some 7 MiB of output: one block, no point inside
        add(t, "huge", data=b"".join(phrase[i % 7:][:2900] for i in range(2200)))
        add(t, "noise", data=r.randbytes(3 * 1024 * 1024 + 5))     # stored blocks
        words = [bytes(r.choice(b"abcdefghij") for _ in range(r.randint(2, 8))) for _ in range(3000)]
        add(t, "text", data=b" ".join(r.choices(words, k=1000000)))  # Huffman: bit offsets
        add(t, "small", data=b"small\n")
        add(t, "dir", tarfile.DIRTYPE, mode=0o755)
        for i in range(40):
            add(t, "dir/f%02d" % i, data=r.randbytes(r.randint(1, 70000)))

    def l2(t):
        add(t, "small", data=b"changed in the tar layer\n")
        add(t, "tarfile", data=r.randbytes(300001))
    return tar_bytes(l1), tar_bytes(l2, tarfile.GNU_FORMAT)


def make_deflate(d):
    t1, t2 = deflate_layers()
    co = zlib.compressobj(9, zlib.DEFLATED, 31, 9)
    write_layout(d, [(co.compress(t1) + co.flush(), MT + "+gzip", t1), (t2, MT, t2)])


def make_bad(kind, d):
    def small(t):
        add(t, "a", data=b"a" * 3000)
        add(t, "b", data=b"b" * 10)
    t = tar_bytes(small, tarfile.USTAR_FORMAT)
    if kind == "zstd":
        b = subprocess.run(["zstd", "-q", "-c"], input=t, stdout=subprocess.PIPE, check=True).stdout
        write_layout(d, [(b, MT + "+zstd", t)])
    elif kind in ("lying-size", "lying-size-big"):
        # entry "a" (3000 bytes) claims 100: its data is read as padding and
        # headers; or 1 MB: past the end of the stream
        h = bytearray(t[:512])
        h[124:136] = b"%011o\0" % (100 if kind == "lying-size" else 1000000)
        h[148:156] = b"        "
        h[148:156] = b"%06o\0 " % sum(h)
        b = bytes(h) + t[512:]
        write_layout(d, [(b, MT, b)])
    elif kind == "symlink-loop":
        def loop(t):
            add(t, "a", tarfile.SYMTYPE, link="a")
            add(t, "a/b", data=b"x")
        b = tar_bytes(loop)
        write_layout(d, [(b, MT, b)])
    elif kind == "through-symlinks":
        # not bad: paths through symlinks resolve inside the image (chroot)
        def via(t):
            add(t, "up", tarfile.SYMTYPE, link="/")
            add(t, "up/etc/x", data=b"x")
            add(t, "up2", tarfile.SYMTYPE, link="../../..")
            add(t, "up2/y", data=b"y")
        b = tar_bytes(via)
        write_layout(d, [(gz(b), MT + "+gzip", b)])
    elif kind in ("mislabelled", "nondistributable"):
        # not bad: a gzip blob declared as a plain tar, or with the
        # non-distributable gzip type (skopeo keeps both as declared)
        mt = MT if kind == "mislabelled" else "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        write_layout(d, [(gz(t), mt, t)])
    elif kind == "gz-trailing":
        b = gz(t) + b"garbage!"
        write_layout(d, [(b, MT + "+gzip", t)])
    elif kind == "gz-two":
        b = gz(t[:1024]) + gz(t[1024:])
        write_layout(d, [(b, MT + "+gzip", t)])
    else:
        sys.exit("unknown kind " + kind)


# ---------------------------------------------------------------------------
# The benchmark's image: like a distribution's, many small files and some
# large ones in directories of 40, of three kinds mixed so that gzip gets
# about what it gets from real images (2-3x): text (Zipf-distributed words),
# code-like binaries (random, low-entropy, zero and repeated 256-byte chunks)
# and already-compressed data (random). Files take slices of a text and a
# binary corpus at random offsets (far apart compared with gzip's 32 KiB
# window), so making hundreds of MiB stays quick under TCG.
# ---------------------------------------------------------------------------
BENCH_SIZES = [200, 1500, 4096, 9000, 30000, 120000, 700000]
BENCH_LAYERS = [0.45, 0.25, 0.2, 0.1]           # shares of the bytes, bottom first


def bench_corpora(r):
    letters = "etaoinshrdlucmfwypvbgkqjxz_"
    words = ["".join(r.choices(letters, k=r.randint(2, 11))) for _ in range(3000)]
    text = []
    n = 0
    cum = []
    acc = 0.0
    for i in range(len(words)):
        acc += 1.0 / (i + 1)
        cum.append(acc)
    while n < 1 << 20:
        line = "    " * r.randint(0, 3) + " ".join(r.choices(words, cum_weights=cum, k=r.randint(3, 12)))
        line += r.choice(("\n", ";\n", ":\n", " {\n", ")\n"))
        text.append(line)
        n += len(line)
    low = bytes.maketrans(bytes(range(256)), bytes((0, 0xff, 0x48, 0x89, 0x8b, 0xe8, 0x0f, 0x85,
                                                     0x24, 0x44, 0x01, 0xc3, 0x74, 0x83, 0x10, 0x08) * 16))
    chunks = []
    for _ in range(8192):                      # 2 MiB
        k = r.random()
        if k < 0.3:
            c = r.randbytes(256)
        elif k < 0.6:
            c = r.randbytes(256).translate(low)
        elif k < 0.75:
            c = bytes(256)
        else:
            c = chunks[-r.randint(1, min(64, len(chunks)))] if chunks else bytes(256)
        chunks.append(c)
    return "".join(text).encode(), b"".join(chunks)


def bench_data(r, text, binary, n):
    k = r.random()
    if k < 0.55:
        src = text
    elif k < 0.92:
        src = binary
    else:
        return r.randbytes(n)
    out = b""
    while len(out) < n:
        o = r.randrange(len(src))
        out += src[o:o + n - len(out)]
    return out


def make_bench(d, mb):
    r = random.Random(20)
    text, binary = bench_corpora(r)
    D = tarfile.DIRTYPE
    files, blobs, i = [], [], 0
    for li, share in enumerate(BENCH_LAYERS):
        def layer(t):
            nonlocal i
            budget = int(mb * share * 1024 * 1024)
            base = "usr/lib/l%d" % (li + 1)
            add(t, "usr", D, mode=0o755)
            add(t, "usr/lib", D, mode=0o755)
            add(t, base, D, mode=0o755)
            j = 0
            while budget > 0:
                sub = "%s/p%03d" % (base, j // 40)
                if j % 40 == 0:
                    add(t, sub, D, mode=0o755)
                n = min(r.choice(BENCH_SIZES), max(budget, 1))
                p = "%s/f%05d" % (sub, i)
                add(t, p, data=bench_data(r, text, binary, n), mode=0o755 if j % 7 == 0 else 0o644)
                files.append((p, n))
                budget -= n
                i += 1
                j += 1
        tb = tar_bytes(layer)
        blobs.append((gz(tb), MT + "+gzip", tb))
    write_layout(d, blobs)
    for p, n in sorted(files):
        print("%s\t%d" % (p, n))


# ---------------------------------------------------------------------------
# The model: layers applied as the OCI spec says
# ---------------------------------------------------------------------------
class Node:
    def __init__(self, kind, mode, uid, gid, data=b"", link="", xattrs=None, dev=(0, 0)):
        self.kind, self.mode, self.uid, self.gid = kind, mode, uid, gid
        self.data, self.link, self.xattrs, self.dev = data, link, dict(xattrs or {}), dev


def norm(name):
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts)


def apply_layer(fs, tar):
    members = list(tar)
    for m in members:                      # whiteouts first: they act on the layers below
        n = norm(m.name)
        base = n.rsplit("/", 1)[-1]
        d = n.rsplit("/", 1)[0] if "/" in n else ""
        if base == ".wh..wh..opq":
            for p in [p for p in fs if d == "" or p.startswith(d + "/")]:
                if p != d:
                    del fs[p]
        elif base.startswith(".wh."):
            victim = (d + "/" if d else "") + base[4:]
            for p in [p for p in fs if p == victim or p.startswith(victim + "/")]:
                del fs[p]
    for m in members:
        n = norm(m.name)
        base = n.rsplit("/", 1)[-1]
        if base.startswith(".wh."):
            continue
        parts = n.split("/")
        for i in range(1, len(parts)):     # implied parents
            p = "/".join(parts[:i])
            if p not in fs:
                fs[p] = Node("dir", 0o755, 0, 0)
        x = {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape")
             for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
        old = fs.get(n)
        if m.isdir() and old is not None and old.kind == "dir":
            old.mode, old.uid, old.gid = m.mode & 0o7777, m.uid, m.gid
            old.xattrs.update(x)
            continue
        for p in [p for p in fs if p == n or p.startswith(n + "/")]:
            del fs[p]
        if m.islnk():
            fs[n] = fs[norm(m.linkname)]
            continue
        if m.isreg():
            node = Node("file", m.mode & 0o7777, m.uid, m.gid, tar.extractfile(m).read(), xattrs=x)
        elif m.isdir():
            node = Node("dir", m.mode & 0o7777, m.uid, m.gid, xattrs=x)
        elif m.issym():
            node = Node("symlink", 0o777, m.uid, m.gid, link=m.linkname, xattrs=x)
        elif m.ischr() or m.isblk():
            node = Node("chr" if m.ischr() else "blk", m.mode & 0o7777, m.uid, m.gid,
                        dev=(m.devmajor, m.devminor), xattrs=x)
        elif m.isfifo():
            node = Node("fifo", m.mode & 0o7777, m.uid, m.gid, xattrs=x)
        else:
            raise SystemExit("unexpected member " + m.name)
        fs[n] = node


def model(d):
    idx = json.load(open(d + "/index.json"))
    mdig = idx["manifests"][0]["digest"].split(":")[1]
    man = json.load(open("%s/blobs/sha256/%s" % (d, mdig)))
    fs = {"": Node("dir", 0o755, 0, 0)}
    for l in man["layers"]:
        with tarfile.open("%s/blobs/sha256/%s" % (d, l["digest"].split(":")[1]), "r:*") as t:
            apply_layer(fs, t)
    groups, out = {}, {}
    for p, n in sorted(fs.items()):
        if p == "":
            continue
        e = {"kind": n.kind, "mode": "%04o" % n.mode, "uid": n.uid, "gid": n.gid,
             "xattrs": {k: v.hex() for k, v in sorted(n.xattrs.items())}}
        if n.kind == "file":
            e["sha256"] = hashlib.sha256(n.data).hexdigest()
            e["size"] = len(n.data)
            groups.setdefault(id(n), []).append(p)
        if n.kind == "symlink":
            e["link"] = n.link
            e["mode"] = "0777"
        if n.kind in ("chr", "blk"):
            e["dev"] = list(n.dev)
        out[p] = e
    for p, e in out.items():
        if e["kind"] == "file":
            e["links"] = sorted(groups[id(fs[p])])
    return out


# ---------------------------------------------------------------------------
# An ext4 image, read with debugfs
# ---------------------------------------------------------------------------
def debugfs(img, cmds):
    with tempfile.NamedTemporaryFile("w", suffix=".cmds") as f:
        f.write("\n".join(cmds) + "\n")
        f.flush()
        out = subprocess.run(["debugfs", "-f", f.name, img], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, check=True).stdout
    parts = []
    for line in out.decode("utf-8", "surrogateescape").split("\n"):
        if line.startswith("debugfs: "):
            parts.append([])
        elif parts:
            parts[-1].append(line)
    if len(parts) != len(cmds):
        raise SystemExit("debugfs answered %d of %d commands" % (len(parts), len(cmds)))
    return parts


KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
         stat.S_IFCHR: "chr", stat.S_IFBLK: "blk", stat.S_IFIFO: "fifo"}


def read_image(img):
    ents, level = {}, [""]
    while level:
        outs = debugfs(img, ["ls -p /" + d for d in level])
        nxt = []
        for d, lines in zip(level, outs):
            for line in lines:
                f = line.split("/")
                if len(f) < 7 or f[5] in (".", "..") or f[1] == "0":
                    continue
                p = (d + "/" if d else "") + f[5]
                mode = int(f[2], 8)
                if stat.S_IFMT(mode) not in KINDS:
                    raise SystemExit("%s: %s: unexpected entry %r" % (img, d or "/", line))
                ents[p] = {"ino": int(f[1]), "kind": KINDS[stat.S_IFMT(mode)],
                           "mode": "%04o" % (mode & 0o7777), "uid": int(f[3]), "gid": int(f[4])}
                if ents[p]["kind"] == "dir":
                    nxt.append(p)
        level = nxt
    tmp = tempfile.mkdtemp()
    try:
        paths = sorted(ents)
        cmds = []
        for i, p in enumerate(paths):
            cmds.append("stat /" + p)
            cmds.append("ea_list /" + p)
            if ents[p]["kind"] in ("file", "symlink"):
                cmds.append("dump /%s %s/%d" % (p, tmp, i))
        outs = iter(debugfs(img, cmds))
        for i, p in enumerate(paths):
            e = ents[p]
            st = "\n".join(next(outs))
            ea = next(outs)
            if e["kind"] in ("file", "symlink"):
                next(outs)
                data = open("%s/%d" % (tmp, i), "rb").read() if os.path.exists("%s/%d" % (tmp, i)) else None
            names = [m.group(1) for m in (re.match(r"^  (\S+) \((\d+)\)", l) for l in ea) if m]
            e["xattr_names"] = names
            if e["kind"] == "file":
                e["sha256"] = hashlib.sha256(data).hexdigest()
                e["size"] = len(data)
            elif e["kind"] == "symlink":
                m = re.search(r'Fast link dest: "(.*)"', st)
                e["link"] = m.group(1) if m else data.decode("utf-8", "surrogateescape")
            elif e["kind"] in ("chr", "blk"):
                m = re.search(r"Device major/minor number: (\d+):(\d+)", st)
                e["dev"] = [int(m.group(1)), int(m.group(2))]
        cmds = []
        for p in paths:
            for n in ents[p]["xattr_names"]:
                cmds.append("ea_get -f %s/x /%s %s" % (tmp, p, n))
        # one ea_get per debugfs run: -f FILE is overwritten by the next one
        for p in paths:
            x = {}
            for n in ents[p].pop("xattr_names"):
                if os.path.exists(tmp + "/x"):
                    os.unlink(tmp + "/x")
                debugfs(img, ["ea_get -f %s/x /%s %s" % (tmp, p, n)])
                x[n] = open(tmp + "/x", "rb").read().hex()
            ents[p]["xattrs"] = dict(sorted(x.items()))
    finally:
        shutil.rmtree(tmp)
    return link_groups(ents, "ino")


def link_groups(ents, key):
    """each file's "links": the paths whose entries share its e[key] (an
    inode), which is dropped from every entry"""
    groups = {}
    for p, e in ents.items():
        if e["kind"] == "file":
            groups.setdefault(e[key], []).append(p)
    for e in ents.values():
        if e["kind"] == "file":
            e["links"] = sorted(groups[e[key]])
        del e[key]
    return ents


def compare(d, img):
    want, got = model(d), read_image(img)
    if "lost+found" in got and "lost+found" not in want:
        del got["lost+found"]       # mkfs made it
    return diff_report(want, got)


def diff_report(want, got):
    """every path of two file-system models compared; 1 if any differs"""
    bad = 0
    for p in sorted(set(want) | set(got)):
        if want.get(p) != got.get(p):
            bad += 1
            if bad <= 20:
                print("DIFF %s\n  want %s\n  got  %s" % (p, want.get(p), got.get(p)))
    print("%d paths compared, %d differ" % (len(want), bad))
    return 1 if bad else 0


def files(d, mnt, skip=None):
    m = model(d)
    bad, n = [], 0
    for p, e in sorted(m.items()):
        if "sha256" not in e or p == skip:
            continue
        n += 1
        with open(os.path.join(mnt, p), "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != e["sha256"]:
                bad.append(p)
    print("%d files compared, %d differ %s" % (n, len(bad), bad[:10]))
    return 1 if bad or not n else 0


def entries(path):
    """the access points of a gzip index (gzip.meta, "ddgzidx")"""
    with open(path, "rb") as f:
        b = f.read()
    algo, n = b[10], struct.unpack_from("<q", b, 25)[0]
    start, alen = struct.unpack_from("<qq", b, 313)
    t = b[start:start + alen]
    t = zlib.decompress(t) if algo else t
    for i in range(n):
        de, en, wp, bits = struct.unpack_from("<qqqB", t, i * 29)
        print(de, en, wp, bits)
    return 0


def present(entry):
    """the granules (4 KiB) an entry's .meta marks present"""
    with open(entry + ".meta", "rb") as f:
        m = f.read()
    size = struct.unpack_from("<Q", m, 24)[0]
    bits = m[4096:]
    return [g for g in range((size + 4095) // 4096) if bits[g // 8] >> (g % 8) & 1]


def granules(cache, gz, layouts):
    def blob(dg):
        for root in layouts:
            p = "%s/blobs/sha256/%s" % (root, dg)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    return f.read()
    n = bad = 0
    for gz_entry, top in ((True, gz), (False, cache)):
        for meta in glob.glob("%s/sha256:*.meta" % top):
            entry = meta[:-5]
            want = blob(os.path.basename(entry)[7:])
            if want is None:
                continue
            if gz_entry:
                want = gzip.decompress(want)
            with open(entry, "rb") as f:
                got = f.read()
            p = present(entry)
            wrong = sum(1 for g in p if got[g * 4096:(g + 1) * 4096] != want[g * 4096:(g + 1) * 4096])
            print("%s: %d granules present, %d wrong" % (entry, len(p), wrong))
            n += len(p)
            bad += wrong
    print("%d granules checked, %d wrong" % (n, bad))
    return 1 if bad or not n else 0


if __name__ == "__main__":
    if sys.argv[1] == "files":
        sys.exit(files(*sys.argv[2:5]))
    if sys.argv[1] == "entries":
        sys.exit(entries(sys.argv[2]))
    if sys.argv[1] == "granules":
        sys.exit(granules(sys.argv[2], sys.argv[3], sys.argv[4:]))
    if sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    if sys.argv[1] == "layout":
        make_layout(sys.argv[2])
    elif sys.argv[1] == "deflate":
        make_deflate(sys.argv[2])
    elif sys.argv[1] == "bad":
        make_bad(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "bench":
        make_bench(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "model":
        json.dump(model(sys.argv[2]), sys.stdout, indent=1, sort_keys=True)
    else:
        sys.exit(__doc__)
