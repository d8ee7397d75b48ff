#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
Model and plan generator for tests/tools/diff-random.sh.

    obd-model.py SEED DIR

Picks a random stack of writable layers (append mode or sparse) for SEED,
writes the data files the writes need into DIR, and prints a plan on stdout,
one step per line, fields separated by tabs (paths relative to DIR):

    run  DESC ARGS...          run $OBD ARGS..., it must exit 0
    sha  DESC SHA256 ARGS...   $OBD ARGS... must print bytes with this sha256

The expected digests come from an in-memory model of every layer: per
sector unwritten / zeroed (append-mode discard) / data, where a sparse layer
allocates whole file system blocks (granularity probed in DIR): the unwritten
sectors of a touched block read as zero data and hide the layers below, and a
discard frees only the blocks it covers whole (they fall through, spec 2.6b)
and zeroes the partial ones. The merged disk: top-most owner wins, zeroed
hides, holes fall through, size = top-most layer's virtual size.
"""
import hashlib
import os
import random
import sys

SECT = 512
NONE, ZERO, DATA = 0, 1, 2


def probe_granularity(d):
    """Sparse allocation unit of files in d, or 0 if holes are not kept."""
    p = os.path.join(d, ".probe")
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.ftruncate(fd, 4 << 20)
        at = (2 << 20) + 1536
        os.pwrite(fd, b"\xab" * 512, at)
        os.fsync(fd)
        b = os.lseek(fd, 0, os.SEEK_DATA)
        e = os.lseek(fd, b, os.SEEK_HOLE)
        g = e - b
        if g < 512 or g & (g - 1) or b % g or b > at or e < at + 512:
            return 0
        return g
    except OSError:
        return 0
    finally:
        os.close(fd)
        os.unlink(p)


class Layer:
    def __init__(self, idx, sparse, vsize, nsect, gran):
        self.idx = idx
        self.sparse = sparse
        self.vsize = vsize
        self.lim = vsize // SECT
        self.gran = gran
        self.st = bytearray(nsect)
        self.buf = bytearray(nsect * SECT)

    def args(self):
        if self.sparse:
            return ["l%d.data" % self.idx]
        return ["l%d.data" % self.idx, "l%d.index" % self.idx]

    def _alloc(self, lba, n):
        g = self.gran
        fb = (4096 + lba * SECT) // g * g
        fe = -(-(4096 + (lba + n) * SECT) // g) * g
        s = 0 if fb <= 4096 else (fb - 4096) // SECT
        e = min((fe - 4096) // SECT, self.lim)
        for i in range(s, e):
            if self.st[i] == NONE:
                self.st[i] = DATA   # buf is already zero there

    def write(self, lba, data):
        n = len(data) // SECT
        if self.sparse:
            self._alloc(lba, n)
        self.st[lba:lba + n] = bytes([DATA]) * n
        self.buf[lba * SECT:(lba + n) * SECT] = data

    def discard(self, lba, n):
        zero = bytes(SECT)
        if not self.sparse:
            self.st[lba:lba + n] = bytes([ZERO]) * n
            self.buf[lba * SECT:(lba + n) * SECT] = bytes(n * SECT)
            return
        g = self.gran
        rb, re_ = 4096 + lba * SECT, 4096 + (lba + n) * SECT
        for i in range(lba, lba + n):
            bb = (4096 + i * SECT) // g * g
            if bb >= rb and bb + g <= re_:
                self.st[i] = NONE
            elif self.st[i] != NONE:
                self.st[i] = DATA
            self.buf[i * SECT:(i + 1) * SECT] = zero


def merged(layers, vsize):
    """The disk a stack of these layers (bottom first) must read as."""
    nsect = vsize // SECT
    out = bytearray(nsect * SECT)
    done = bytearray(nsect)
    for lay in reversed(layers):
        st = lay.st
        for s in range(min(nsect, len(st))):
            if not done[s] and st[s] != NONE:
                done[s] = 1
                if st[s] == DATA:
                    out[s * SECT:(s + 1) * SECT] = lay.buf[s * SECT:(s + 1) * SECT]
    return bytes(out)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def main():
    seed = int(sys.argv[1], 0)
    d = sys.argv[2]
    rng = random.Random(seed)
    gran = probe_granularity(d)
    plan = []

    def step(kind, desc, *args):
        plan.append("\t".join([kind, desc] + [str(a) for a in args]))

    vs = rng.choice([rng.randint(1, 8) << 20, rng.randint(16, 512) * 4096])
    if rng.random() < 0.4:
        vs += rng.randint(1, 7) * SECT          # not a multiple of 4 KiB
    nl = rng.randint(1, 6) if rng.random() < 0.8 else rng.randint(7, 12)
    sizes = []
    for i in range(nl):
        v = vs
        if rng.random() < 0.15:
            v = rng.randint(1, vs // SECT) * SECT
        sizes.append(v)
    nsect = max(sizes) // SECT
    uuids = ["%08X-%04X-4%03X-8%03X-%012X" % (rng.getrandbits(32), rng.getrandbits(16),
                                            rng.getrandbits(12), rng.getrandbits(12),
                                            rng.getrandbits(48)) for _ in range(nl)]
    layers = []
    commits = []
    wno = 0
    print("seed %d: %d layers, vsize %d, sparse granularity %d" % (seed, nl, vs, gran),
          file=sys.stderr)
    for i in range(nl):
        lay = Layer(i, bool(gran) and rng.random() < 0.5, sizes[i], nsect, gran)
        layers.append(lay)
        kind = "sparse" if lay.sparse else "append"
        create = ["create"] + (["-s"] if lay.sparse else [])
        if i:
            create += ["-u", uuids[i - 1]]
        step("run", "layer %d: create %s vsize %d" % (i, kind, lay.vsize),
             *(create + lay.args() + [lay.vsize]))
        for _ in range(rng.randint(1, 14)):
            r = rng.random()
            if r < 0.1 and lay.lim > 16384:
                b = 16383 * rng.randint(1, lay.lim // 16383)
                b = min(b, lay.lim - 1)
                lba = b - rng.randint(1, min(b, 64))
                n = rng.randint(1, 200)
            elif r < 0.18:
                n = rng.randint(8192, 10240)     # > 4 MiB: split into records
                lba = rng.randrange(lay.lim)
            elif r < 0.45:
                n = rng.randint(1, 16)
                lba = rng.randrange(lay.lim)
            else:
                n = rng.randint(1, 1024)
                lba = rng.randrange(lay.lim)
            n = min(n, lay.lim)
            lba = min(lba, lay.lim - n)
            if rng.random() < 0.25:
                if lay.sparse and rng.random() < 0.5:
                    g = gran // SECT
                    a = -(-(lba + 8) // g) * g - 8
                    if a < lay.lim:
                        lba = a
                        n = min(-(-n // g) * g, lay.lim - lba)
                step("run", "layer %d: discard %d+%d" % (i, lba, n),
                     "discard", "--offset", lba * SECT, "--length", n * SECT, *lay.args())
                lay.discard(lba, n)
            else:
                style = rng.randrange(3)
                if style == 0:
                    data = rng.randbytes(n * SECT)
                elif style == 1:
                    data = bytes([rng.randrange(1, 256)]) * (n * SECT)
                else:
                    data = b"".join(b"obd%08d%012d" % (wno, lba + k) + bytes(SECT - 23)
                                    for k in range(n))
                name = "w%d.bin" % wno
                wno += 1
                with open(os.path.join(d, name), "wb") as f:
                    f.write(data)
                step("run", "layer %d: write %d+%d" % (i, lba, n),
                     "write", "--offset", lba * SECT, *(lay.args() + [name]))
                lay.write(lba, data)
        # the writable layer on top of the committed ones
        img = merged(layers, lay.vsize)
        step("sha", "layer %d (%s) on top of %d committed: whole disk" % (i, kind, i),
             sha(img), "cat", *(commits + lay.args()))
        out = "c%d.commit" % i
        opts = ["--uuid", uuids[i]]
        how = "plain"
        if rng.random() < 0.7:
            algo = rng.choice(["lz4", "zstd"])
            bs = rng.choice([4, 8, 16, 32, 64])
            opts += ["-z", "--algorithm", algo, "--bs", bs]
            how = "zfile %s %d KiB" % (algo, bs)
            if rng.random() < 0.5:
                opts.append("-t")
                how += " tar"
        if not lay.sparse and rng.random() < 0.3:
            step("run", "layer %d: seal" % i, "commit", "--seal", *lay.args())
            step("run", "layer %d: commit sealed (%s)" % (i, how),
                 "commit", "--commit_sealed", *(opts + [lay.args()[0], out]))
        else:
            step("run", "layer %d: commit (%s)" % (i, how), "commit", *(opts + lay.args() + [out]))
        step("run", "layer %d: check %s" % (i, out), "check", "-q", out)
        commits.append(out)

    top = sizes[-1]
    img = merged(layers, top)
    step("sha", "committed stack of %d: whole disk" % nl, sha(img), "cat", *commits)
    for _ in range(3):
        a = rng.randrange(top // SECT)
        n = rng.randint(1, min(top // SECT - a, 20000))
        step("sha", "committed stack: sectors %d+%d" % (a, n),
             sha(img[a * SECT:(a + n) * SECT]),
             "cat", "--offset", a * SECT, "--length", n * SECT, *commits)
    step("run", "committed stack: check", "check", "-q", *commits)
    print("\n".join(plan))


if __name__ == "__main__":
    main()
