#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""TurboOCI images whose meta layer is erofs (erofs.fs.meta), made the way
the reference's turboOCI-apply --fstype erofs makes them, by hand: Debian's
erofs-utils (1.5) has no tar mode, so mkfs.erofs formats the unpacked layer
and this tool turns its image into a warp LSMT layer (spec turbo-oci 2.3,
4): a tag-1 record per regular file maps the file's data blocks to its data
in the uncompressed tar (the last block only up to round_up_512(size), the
rest of that block a hole), as erofs-utils' map file `blkaddr nblocks toff
[zeroedlen]` does; every other block of the image is tag 0 (all-zero blocks
as zeroed records). The device such a layer makes is the erofs image, byte
for byte (checked while building).

turbo-erofs.py layout DIR        a one-layer OCI layout (a gzip layer; owner
                                 0 throughout, no xattrs, no devices: it is
                                 unpacked without root): odd sizes around 512
                                 and 4096, > 16383 sectors, an empty file,
                                 zeros, hard links, symlinks (a long one), a
                                 fifo, long names, a directory of 300 entries
turbo-erofs.py build SRC OUT WORK OBD [--members erofs|both|none] [--vsize BYTES]
                                 OUT is `obd convert --turbo-oci` of SRC (the
                                 template: a one-layer image): its meta blob
                                 gets erofs.fs.meta in place of ext4.fs.meta
                                 (both: beside it; none: neither, a bad blob),
                                 the manifest, config (diff_ids), index.json,
                                 turbo/0000/ and config.v1.json follow. WORK
                                 keeps root/ (the unpacked layer), erofs.img
                                 (mkfs.erofs's image) and meta.lsmt; OBD is the
                                 obd binary (obd zfile: the ZFile around the
                                 LSMT, as overlaybd-commit -z writes it)
turbo-erofs.py compare SRC IMG   IMG (an erofs image or device, read with the
                                 parser below) holds what SRC's layer makes
                                 (turbo-image.py model): every path, kind, mode,
                                 owner, size, sha256, symlink target, hard-link
                                 group
"""
import gzip
import hashlib
import importlib.util
import io
import json
import os
import random
import stat
import struct
import subprocess
import sys
import tarfile

BLK = 4096
SECT = 512
MT = "application/vnd.oci.image.layer.v1.tar"
A = "containerd.io/snapshot/overlaybd/"
HERE = os.path.dirname(os.path.abspath(__file__))


_TI = []


def turbo_image():
    """tests/tools/turbo-image.py: its tar helpers and its model of a layout."""
    if not _TI:
        spec = importlib.util.spec_from_file_location("turbo_image", HERE + "/turbo-image.py")
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        _TI.append(m)
    return _TI[0]


# ---------------------------------------------------------------------------
# The test layer
# ---------------------------------------------------------------------------
def rnd(seed, n):
    return random.Random(seed).randbytes(n)


def layer(t):
    ti = turbo_image()
    add, D = ti.add, tarfile.DIRTYPE
    add(t, "etc", D, mode=0o755)
    add(t, "etc/hello", data=b"hello world\n" * 100 + b"x")
    add(t, "etc/keep", data=b"kept\n", mode=0o600)
    add(t, "etc/abs", tarfile.SYMTYPE, link="/etc/hello", mode=0o777)
    add(t, "etc/long-target", tarfile.SYMTYPE, link="../" + "x" * 200 + "/target", mode=0o777)
    add(t, "usr", D, mode=0o755)
    add(t, "usr/bin", D, mode=0o755)
    add(t, "usr/bin/tool", data=rnd(1, 70001), mode=0o4755)
    add(t, "usr/bin/ln-rel", tarfile.SYMTYPE, link="tool", mode=0o777)
    add(t, "data", D, mode=0o750)
    for i, n in enumerate((1, 511, 512, 513, 4095, 4096, 4097, 8191, 8192, 12289)):
        add(t, "data/s%d" % n, data=rnd(100 + i, n), mode=0o640 if i % 2 else 0o644)
    add(t, "data/empty", data=b"")
    add(t, "data/zeros", data=bytes(65536 + 100))
    add(t, "data/big", data=rnd(2, 3 * 1024 * 1024 + 17))
    add(t, "data/big-link", tarfile.LNKTYPE, link="data/big")
    add(t, "data/sub", D, mode=0o711)
    add(t, "data/sub/deep", data=rnd(5, 9000), mode=0o600)
    add(t, "dev", D, mode=0o755)
    add(t, "dev/fifo", tarfile.FIFOTYPE, mode=0o644)
    longdir = "long/" + "d" * 120
    add(t, "long", D, mode=0o755)
    add(t, longdir, D, mode=0o755)
    add(t, longdir + "/" + "f" * 200, data=rnd(6, 5000))
    add(t, "many", D, mode=0o755)
    for i in range(300):
        add(t, "many/file-with-a-longish-name-%04d" % i, data=b"%d\n" % i)
    add(t, "hl-a", data=rnd(9, 20000))
    add(t, "hl-b", tarfile.LNKTYPE, link="hl-a")
    # > 16383 sectors: its mapping is split into several records
    add(t, "huge", data=rnd(10, 9 * 1024 * 1024 + 123))
    add(t, "newdir/nested/file", data=rnd(8, 12345))   # parents implied


def make_layout(d):
    ti = turbo_image()
    raw = ti.tar_bytes(layer)
    ti.write_layout(d, [(ti.gz(raw), MT + "+gzip", raw)])


# ---------------------------------------------------------------------------
# An erofs image, read (erofs_fs.h: superblock at 1024, 32/64-byte inodes at
# meta_blkaddr * 4096 + nid * 32, 12-byte dirents followed by their names)
# ---------------------------------------------------------------------------
FLAT_PLAIN, FLAT_INLINE = 0, 2
KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
         stat.S_IFCHR: "chr", stat.S_IFBLK: "blk", stat.S_IFIFO: "fifo",
         stat.S_IFSOCK: "sock"}


class Inode:
    pass


class Erofs:
    def __init__(self, img):
        self.img = img
        sb = img[1024:1024 + 128]
        magic, _, _, bits, _, self.root = struct.unpack_from("<IIIBBH", sb, 0)
        self.blocks, self.meta_blk = struct.unpack_from("<II", sb, 36)
        if magic != 0xE0F5E1E2:
            raise SystemExit("not an erofs image (magic %#x)" % magic)
        if bits != 12:
            raise SystemExit("erofs block size 2^%d: only 4096 is handled" % bits)

    def inode(self, nid):
        pos = self.meta_blk * BLK + nid * 32
        b = self.img
        fmt, xcount, mode = struct.unpack_from("<HHH", b, pos)
        i = Inode()
        i.nid, i.pos, i.mode = nid, pos, mode
        i.layout = (fmt >> 1) & 7
        if fmt & 1:     # extended
            i.isize = 64
            i.size, i.u = struct.unpack_from("<QI", b, pos + 8)
            i.uid, i.gid = struct.unpack_from("<II", b, pos + 24)
            i.nlink = struct.unpack_from("<I", b, pos + 44)[0]
        else:
            i.isize = 32
            i.nlink, i.size, _, i.u = struct.unpack_from("<HIII", b, pos + 6)
            i.uid, i.gid = struct.unpack_from("<HH", b, pos + 24)
        i.xsize = 12 + (xcount - 1) * 4 if xcount else 0
        if i.layout not in (FLAT_PLAIN, FLAT_INLINE):
            raise SystemExit("inode %d: data layout %d (only uncompressed flat ones are handled: mkfs.erofs without -z)"
                             % (nid, i.layout))
        return i

    def extents(self, i):
        """[(byte offset in the image, length)] of the inode's data, in order."""
        if i.size == 0 or stat.S_ISCHR(i.mode) or stat.S_ISBLK(i.mode) or \
                stat.S_ISFIFO(i.mode) or stat.S_ISSOCK(i.mode):
            return []
        nblocks = -(-i.size // BLK)
        if i.layout == FLAT_PLAIN:
            return [(i.u * BLK, i.size)]
        full = nblocks - 1          # FLAT_INLINE: the tail follows the inode's xattrs
        out = [(i.u * BLK, full * BLK)] if full else []
        return out + [(i.pos + i.isize + i.xsize, i.size - full * BLK)]

    def data(self, i):
        return b"".join(self.img[o:o + n] for o, n in self.extents(i))

    def readdir(self, i):
        d = self.data(i)
        out = []
        for start in range(0, len(d), BLK):
            blk = d[start:start + BLK]
            n = struct.unpack_from("<H", blk, 8)[0] // 12
            ents = [struct.unpack_from("<QHB", blk, k * 12) for k in range(n)]
            for k, (nid, off, _) in enumerate(ents):
                end = ents[k + 1][1] if k + 1 < n else len(blk)
                name = blk[off:end].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                if name not in (".", ".."):
                    out.append((name, nid))
        return out

    def walk(self):
        """{path: inode}, the root as ''."""
        out, todo = {}, [("", self.root)]
        while todo:
            p, nid = todo.pop()
            i = self.inode(nid)
            out[p] = i
            if stat.S_ISDIR(i.mode):
                for name, cnid in self.readdir(i):
                    todo.append(((p + "/" if p else "") + name, cnid))
        return out


def read_fs(path):
    with open(path, "rb") as f:
        sb = f.read(2048)
        f.seek(0)
        # the image's own blocks, not the rest of a device
        img = f.read(max(struct.unpack_from("<I", sb, 1024 + 36)[0], 1) * BLK)
    fs = Erofs(img)
    ents = {}
    for p, i in fs.walk().items():
        if p == "":
            continue
        kind = KINDS[stat.S_IFMT(i.mode)]
        e = {"kind": kind, "mode": "%04o" % (i.mode & 0o7777), "uid": i.uid, "gid": i.gid,
             "xattrs": {}}
        if kind == "file":
            data = fs.data(i)
            e["sha256"] = hashlib.sha256(data).hexdigest()
            e["size"] = len(data)
        elif kind == "symlink":
            e["link"] = fs.data(i).decode("utf-8", "surrogateescape")
        elif kind in ("chr", "blk"):
            rdev = i.u
            e["dev"] = [(rdev >> 8) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & 0xfff00)]
        e["_nid"] = i.nid
        ents[p] = e
    return turbo_image().link_groups(ents, "_nid")


def compare(src, img):
    want, got = turbo_image().model(src), read_fs(img)
    return turbo_image().diff_report(want, got)


# ---------------------------------------------------------------------------
# The warp LSMT layer (include/obd_format.h; tests/vm/warp_gen.py)
# ---------------------------------------------------------------------------
MAGIC0 = 0x00020100544d534c
MAGIC1 = bytes([0x65, 0x7e, 0x63, 0xd2, 0x94, 0x44, 0x08, 0x4c,
                0xa2, 0xd2, 0xc8, 0xec, 0x4f, 0xcf, 0xae, 0x8a])
MAXLEN = 16383          # sectors in one record
UUID = "E80F5E1E-0000-4000-8000-0000000000AA"


def ht(flags, ioff, isize, vsize):
    b = struct.pack("<Q16sIIQQQ", MAGIC0, MAGIC1, 390, flags, ioff, isize, vsize)
    b += UUID.encode() + b"\0" + b"\0" * 37 + struct.pack("<HBB", 0, 1, 1)
    b += b"turbo-erofs".ljust(256, b"\0")
    return b.ljust(BLK, b"\0")


def rec(off, length, moff, zeroed, tag):
    return struct.pack("<QQ", off | (length << 50), moff | (zeroed << 55) | (tag << 56))


def write_lsmt(path, records, data, vsize):
    """records: (offset, length, moffset, zeroed, tag) in sectors, sorted."""
    idx = b"".join(rec(*r) for r in records)
    with open(path, "wb") as f:
        f.write(ht(0x07, 0, 0, vsize))
        f.write(data)
        f.write(idx)
        f.write(ht(0x06, BLK + len(data), len(records), vsize))


def tar_offsets(raw):
    """{path: offset of its data in the tar} for every regular file or hard link."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        for m in t:
            n = turbo_image().norm(m.name)
            if m.isreg():
                out[n] = m.offset_data
            elif m.islnk():
                out[n] = out[turbo_image().norm(m.linkname)]
    return out


def meta_records(img, raw):
    """The warp layer of the erofs image img over the tar raw: (records, data)."""
    fs = Erofs(img)
    offs = tar_offsets(raw)
    nblk = -(-len(img) // BLK)
    claimed = bytearray(nblk)
    recs, seen = [], set()
    for p, i in fs.walk().items():
        if not stat.S_ISREG(i.mode) or i.nid in seen or i.size == 0:
            continue
        seen.add(i.nid)
        if p not in offs:
            raise SystemExit("%s: a regular file of the image with no data in the tar" % p)
        toff = offs[p]
        nblocks = -(-i.size // BLK)
        if i.layout == FLAT_PLAIN:
            nmap, nsect = nblocks, -(-i.size // SECT)
        else:                       # FLAT_INLINE: the tail stays in the inode's block (tag 0)
            nmap, nsect = nblocks - 1, (nblocks - 1) * (BLK // SECT)
        if not nmap:
            continue
        dev = i.u * BLK
        if img[dev:dev + nsect * SECT] != raw[toff:toff + nsect * SECT]:
            raise SystemExit("%s: the image's data blocks differ from the tar's bytes" % p)
        tail = img[dev + nsect * SECT:dev + nmap * BLK]
        if tail != bytes(len(tail)):
            raise SystemExit("%s: the image's last data block is not zero past the file" % p)
        for b in range(i.u, i.u + nmap):
            if claimed[b]:
                raise SystemExit("%s: block %d is another file's too" % (p, b))
            claimed[b] = 1
        done = 0
        while done < nsect:
            n = min(MAXLEN, nsect - done)
            recs.append((dev // SECT + done, n, toff // SECT + done, 0, 1))
            done += n
    # every other block: metadata (tag 0), from offset 4096 of the layer; zeros as zeroed
    data = bytearray()
    zblk = bytes(BLK)

    def is_zero(b):
        blk = img[b * BLK:(b + 1) * BLK]
        return blk == zblk[:len(blk)]

    b = 0
    while b < nblk:
        if claimed[b]:
            b += 1
            continue
        zero = is_zero(b)
        e = b
        while e < nblk and not claimed[e] and e - b < MAXLEN // 8 and is_zero(e) == zero:
            e += 1
        moff = BLK // SECT + len(data) // SECT
        if not zero:
            data += img[b * BLK:e * BLK].ljust((e - b) * BLK, b"\0")
        recs.append((b * 8, (e - b) * 8, moff, 1 if zero else 0, 0))
        b = e
    recs.sort()
    return recs, bytes(data)


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def unpack(raw, root):
    """The layer as files (no root needed: owners are the mkfs.erofs --all-root ones)."""
    dirs = []
    os.umask(0o022)     # implied parents 0755, as the model has them
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        for m in t:
            n = turbo_image().norm(m.name)
            p = os.path.join(root, n)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            if m.isdir():
                os.makedirs(p, exist_ok=True)
                dirs.append((p, m.mode & 0o7777))
            elif m.isreg():
                with open(p, "wb") as f:
                    f.write(t.extractfile(m).read())
                os.chmod(p, m.mode & 0o7777)
            elif m.islnk():
                os.link(os.path.join(root, turbo_image().norm(m.linkname)), p)
            elif m.issym():
                os.symlink(m.linkname, p)
            elif m.isfifo():
                os.mkfifo(p, m.mode & 0o7777)
            else:
                raise SystemExit("%s: a member this tool does not unpack" % m.name)
    for p, mode in reversed(dirs):
        os.chmod(p, mode)


def blob(d, dg):
    with open("%s/blobs/sha256/%s" % (d, dg.split(":")[1]), "rb") as f:
        return f.read()


def put(d, b):
    h = hashlib.sha256(b).hexdigest()
    with open("%s/blobs/sha256/%s" % (d, h), "wb") as f:
        f.write(b)
    return "sha256:" + h


def drop(d, dg):
    os.unlink("%s/blobs/sha256/%s" % (d, dg.split(":")[1]))


def build(src, out, work, obd, members, vsize):
    idx = json.load(open(out + "/index.json"))
    mdesc = idx["manifests"][0]
    man = json.loads(blob(out, mdesc["digest"]))
    if len(man["layers"]) != 1:
        raise SystemExit("%s: %d layers: one is handled (an erofs meta layer is a whole file system)"
                         % (out, len(man["layers"])))
    l = man["layers"][0]
    target = l["annotations"][A + "turbo-oci/target-digest"]
    raw = blob(src, target)
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    os.makedirs(work, exist_ok=True)
    root, img_path, lsmt = work + "/root", work + "/erofs.img", work + "/meta.lsmt"
    unpack(raw, root)
    # uncompressed, no inline file data: every file's data in whole blocks of its own
    run("mkfs.erofs", "-E", "noinline_data", "--all-root", "-T", "0",
        "-U", "e80f5e1e-0000-4000-8000-000000000001", img_path, root)
    img = open(img_path, "rb").read()
    if len(img) > vsize:
        raise SystemExit("the erofs image (%d bytes) is larger than --vsize" % len(img))
    recs, data = meta_records(img, raw)
    write_lsmt(lsmt, recs, data, vsize)
    zf = work + "/erofs.fs.meta"
    if os.path.exists(zf):
        os.unlink(zf)
    run(obd, "zfile", lsmt, zf)
    meta = open(zf, "rb").read()

    # the meta blob: obd convert's, its ext4.fs.meta swapped
    old = tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(out, l["digest"]))))
    tb = io.BytesIO()
    with tarfile.open(fileobj=tb, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for m in old.getmembers():
            body = old.extractfile(m).read()
            if m.name == "ext4.fs.meta":
                if members == "both":
                    t.addfile(m, io.BytesIO(body))
                if members == "none":
                    continue
                m.name, m.size, body = "erofs.fs.meta", len(meta), meta
            t.addfile(m, io.BytesIO(body))
    tar = tb.getvalue()
    gzb = gzip.compress(tar, compresslevel=6, mtime=0)
    drop(out, l["digest"])
    l["digest"], l["size"] = put(out, gzb), len(gzb)
    l["annotations"][A + "blob-digest"] = l["digest"]
    l["annotations"][A + "blob-size"] = str(len(gzb))
    cfg = json.loads(blob(out, man["config"]["digest"]))
    cfg["rootfs"]["diff_ids"][0] = "sha256:" + hashlib.sha256(tar).hexdigest()
    cb = json.dumps(cfg).encode()
    drop(out, man["config"]["digest"])
    man["config"]["digest"], man["config"]["size"] = put(out, cb), len(cb)
    mb = json.dumps(man).encode()
    drop(out, mdesc["digest"])
    mdesc["digest"], mdesc["size"] = put(out, mb), len(mb)
    with open(out + "/index.json", "w") as f:
        json.dump(idx, f)

    # what the snapshotter would unpack, and the local config over it
    tdir = out + "/turbo/0000"
    if members != "both":
        os.unlink(tdir + "/ext4.fs.meta")
    if members != "none":
        with open(tdir + "/erofs.fs.meta", "wb") as f:
            f.write(meta)
    c1 = json.load(open(out + "/config.v1.json"))
    if members != "none":
        c1["lowers"][0]["file"] = os.path.abspath(tdir) + "/erofs.fs.meta"
    with open(out + "/config.v1.json", "w") as f:
        json.dump(c1, f, indent=1)
    t1 = sum(1 for r in recs if r[4] == 1)
    print("erofs image %d blocks; meta layer: %d records (%d into the tar), %d bytes of metadata, "
          "erofs.fs.meta %d bytes; meta blob %s" % (len(img) // BLK, len(recs), t1, len(data),
                                                    len(meta), l["digest"]))


def main(a):
    if len(a) == 3 and a[1] == "layout":
        make_layout(a[2])
    elif len(a) >= 6 and a[1] == "build":
        opts = dict(zip(a[6::2], a[7::2]))
        members = opts.get("--members", "erofs")
        if members not in ("erofs", "both", "none") or set(opts) - {"--members", "--vsize"}:
            sys.exit(__doc__)
        build(a[2], a[3], a[4], a[5], members, int(opts.get("--vsize", 256 << 20)))
    elif len(a) == 4 and a[1] == "compare":
        sys.exit(compare(a[2], a[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
