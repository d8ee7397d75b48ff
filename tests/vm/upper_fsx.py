#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
fsx-style checker for a writable dm-overlaybd device (tests/vm/40-upper.sh).

  upper_fsx.py run DEV LOWER.raw MODEL.out SEED OPS [--align A] [--threads T] [--shared]
                 [--fsblock B] [--until FILE]
      random writes, discards, write zeroes, flushes and reads on DEV (O_DIRECT),
      each thread in its own stripe of the device so that threads never overlap,
      or with --shared every thread over the whole device: an operation holds
      its byte range (a range lock) from before its I/O until the model has it,
      so ranges that overlap take turns (their order is the model's) while the
      others run at once, in the same 4 KiB blocks and index records;
      every read is checked against the model (the lower image with the writes
      applied); at the end the whole device is compared and the model written to
      MODEL.out. A: alignment and granularity of writes and discards (default
      512). Prints one line per thread and "fsx: ok" or fails. --until FILE:
      OPS is a minimum, each thread goes on until FILE exists.
  MODEL.out.reopen: what the upper shows after a reopen. Append kind (no
      --fsblock): MODEL.out. Sparse kind, --fsblock B = the block size of
      the file system holding the data file (the kernel rebuilds the maps
      from the file's extents, B bytes at a time): a block that a write or
      write zeroes touched is allocated and shows what the device showed
      (the kernel fills the rest of a partly written block), a discard
      frees only the blocks it covers whole (they show the lower image
      again) and zeroes the rest; a block never allocated shows the lower.
"""
import itertools, mmap, os, random, struct, sys, threading, fcntl, hashlib

BLKDISCARD = 0x1277
BLKZEROOUT = 0x127F
MAXW = 1 << 20


def sha(b):
    return hashlib.sha256(b).hexdigest()


def aligned(n):
    return mmap.mmap(-1, max(n, 4096))


def pread_dev(fd, off, n):
    buf = aligned(n)
    got = os.preadv(fd, [memoryview(buf)[:n]], off)
    assert got == n, "short read %d of %d at %d" % (got, n, off)
    return bytes(buf[:n])


def pwrite_dev(fd, off, data):
    buf = aligned(len(data))
    buf[:len(data)] = data
    got = os.pwritev(fd, [memoryview(buf)[:len(data)]], off)
    assert got == len(data), "short write %d of %d at %d" % (got, len(data), off)


class RangeLock:
    """Byte ranges held by threads; an overlapping acquire waits."""

    def __init__(self):
        self.cv = threading.Condition()
        self.held = []

    def acquire(self, off, n):
        with self.cv:
            while any(o < off + n and off < o + m for o, m in self.held):
                self.cv.wait()
            self.held.append((off, n))

    def release(self, off, n):
        with self.cv:
            self.held.remove((off, n))
            self.cv.notify_all()


class NoLock:
    def acquire(self, off, n):
        pass

    def release(self, off, n):
        pass


class Blocks:
    """A sparse upper's allocated file-system blocks (device block b = file block b + 4096 / B)."""

    def __init__(self, bs):
        self.bs = bs
        self.alloc = set()

    def written(self, off, n):
        self.alloc.update(range(off // self.bs, (off + n + self.bs - 1) // self.bs))

    def punched(self, off, n):
        self.alloc.difference_update(range((off + self.bs - 1) // self.bs, (off + n) // self.bs))

    def reopened(self, model, low):
        out = bytearray(low)
        for b in self.alloc:
            out[b * self.bs:(b + 1) * self.bs] = model[b * self.bs:(b + 1) * self.bs]
        return out


def run(dev, lower, out, seed, nops, align, nthreads, shared=False, fsblock=0, until=None):
    low = open(lower, "rb").read()
    model = bytearray(low)
    if fsblock and (fsblock > 4096 or 4096 % fsblock):
        sys.exit("--fsblock %d: the model needs a block size dividing 4096" % fsblock)
    blocks = Blocks(fsblock) if fsblock else None
    size = len(model)
    stripe = size if shared else size // nthreads // align * align
    lock = threading.Lock()
    ranges = RangeLock() if shared else NoLock()
    errors = []

    def worker(t):
        rnd = random.Random(seed * 1000 + t)
        base = 0 if shared else t * stripe
        fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
        counts = dict(write=0, discard=0, zero=0, flush=0, read=0)
        try:
            # at least nops, and on until the file `until` exists (a test's
            # other work has to happen while this runs: no timing guess)
            for i in itertools.count():
                if i >= nops and (not until or os.path.exists(until)):
                    break
                r = rnd.random()
                n = rnd.choice([align, align * 2, 4096, 8192, 65536, 1 << 18, MAXW])
                n = min(n // align * align or align, stripe)
                off = base + rnd.randrange(0, (stripe - n) // align + 1) * align
                ranges.acquire(off, n)
                try:
                    op(rnd, fd, t, i, r, off, n, counts)
                finally:
                    ranges.release(off, n)
                if errors:
                    return
            os.fsync(fd)
        except Exception as e:  # noqa: BLE001 - reported as a failure line
            errors.append("thread %d: %r" % (t, e))
        finally:
            os.close(fd)
            print("thread %d: %s" % (t, " ".join("%s %d" % kv for kv in sorted(counts.items()))))

    def op(rnd, fd, t, i, r, off, n, counts):
        if r < 0.45:
            data = rnd.randbytes(n)
            pwrite_dev(fd, off, data)
            with lock:
                model[off:off + n] = data
                if blocks:
                    blocks.written(off, n)
            counts["write"] += 1
        elif r < 0.55:
            fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", off, n))
            with lock:
                model[off:off + n] = bytes(n)
                if blocks:
                    blocks.punched(off, n)
            counts["discard"] += 1
        elif r < 0.62:
            fcntl.ioctl(fd, BLKZEROOUT, struct.pack("QQ", off, n))
            with lock:
                model[off:off + n] = bytes(n)
                if blocks:
                    blocks.written(off, n)
            counts["zero"] += 1
        elif r < 0.67:
            os.fsync(fd)
            counts["flush"] += 1
        else:
            got = pread_dev(fd, off, n)
            with lock:
                want = bytes(model[off:off + n])
            if got != want:
                errors.append("thread %d op %d: read %d+%d differs from the model" % (t, i, off, n))
                return
            counts["read"] += 1

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        print("\n".join(errors))
        return 1
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    whole = pread_dev(fd, 0, size)
    os.close(fd)
    open(out, "wb").write(model)
    open(out + ".reopen", "wb").write(blocks.reopened(model, low) if blocks else model)
    if whole != bytes(model):
        bad = next(i for i in range(0, size, 512) if whole[i:i + 512] != model[i:i + 512])
        print("device differs from the model, first at byte %d" % bad)
        return 1
    print("fsx: ok, device sha256 %s" % sha(whole))
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "run":
        align, threads, shared, fsblock, until = 512, 1, False, 0, None
        rest = a[6:]
        while rest:
            if rest[0] == "--shared":
                shared = True
                rest = rest[1:]
                continue
            if rest[0] == "--align":
                align = int(rest[1])
            elif rest[0] == "--threads":
                threads = int(rest[1])
            elif rest[0] == "--fsblock":
                fsblock = int(rest[1])
            elif rest[0] == "--until":
                until = rest[1]
            else:
                sys.exit("unknown option " + rest[0])
            rest = rest[2:]
        sys.exit(run(a[1], a[2], a[3], int(a[4]), int(a[5]), align, threads, shared, fsblock, until))
    sys.exit(__doc__)
