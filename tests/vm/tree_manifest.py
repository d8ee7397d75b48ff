#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
A canonical listing of a directory tree, to compare a source tree with the
file system of an image made from it (tests/vm/43-build.sh).

  tree_manifest.py ROOT [--no-root-times] [--mtime-s]

One line per entry, sorted by path ("." is ROOT itself; lost+found at the
top is left out): path, type, mode (octal, with setuid/setgid/sticky),
uid, gid, mtime in ns (not for symlinks' targets, for the link itself),
then by type: regular files their size, sha256 and hard-link group (the
first path of the group when it has more than one link, else "-");
symlinks their target; device nodes major:minor; and every extended
attribute (name=hex value, sorted), or "-".

--mtime-s: mtimes in whole seconds, rounded to the nearest (half up), as
Go's archive/tar writes them in the layers umoci makes; to compare a source
tree with the image made of it (scripts/example-debian.sh).
"""
import hashlib, os, stat, sys


def xattrs(p):
    try:
        names = sorted(os.listxattr(p, follow_symlinks=False))
    except OSError:
        return "-"
    out = []
    for n in names:
        if n.startswith("system.") or n == "security.selinux":
            continue  # ACLs are compared as mode bits; labels are the host's
        out.append("%s=%s" % (n, os.getxattr(p, n, follow_symlinks=False).hex()))
    return ",".join(out) or "-"


def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def main():
    root = sys.argv[1]
    root_times = "--no-root-times" not in sys.argv
    mtime_s = "--mtime-s" in sys.argv
    entries = []
    for dp, dns, fns in os.walk(root):
        rel = os.path.relpath(dp, root)
        if rel == ".":
            dns[:] = [d for d in dns if d != "lost+found"]
        for n in dns + fns + ([] if rel != "." else ["."]):
            p = os.path.join(dp, n) if n != "." else root
            r = os.path.normpath(os.path.join(rel, n)) if n != "." else "."
            entries.append((r, p))
    inodes = {}
    for r, p in sorted(entries):
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            inodes.setdefault((st.st_dev, st.st_ino), r)
    for r, p in sorted(entries):
        st = os.lstat(p)
        m = st.st_mode
        kind = {stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFCHR: "c",
                stat.S_IFBLK: "b", stat.S_IFIFO: "p", stat.S_IFSOCK: "s"}[stat.S_IFMT(m)]
        mtime = st.st_mtime_ns if (r != "." or root_times) else "-"
        if mtime_s and mtime != "-":
            mtime = (mtime + 500000000) // 1000000000
        line = [r, kind, "%o" % stat.S_IMODE(m), str(st.st_uid), str(st.st_gid), str(mtime)]
        if kind == "f":
            group = inodes.get((st.st_dev, st.st_ino), "-")
            line += [str(st.st_size), sha(p), group]
        elif kind == "l":
            line.append(os.readlink(p))
        elif kind in "cb":
            line.append("%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)))
        line.append(xattrs(p))
        print(" ".join(line))


main()
