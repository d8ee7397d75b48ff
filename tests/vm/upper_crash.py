#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
Crash-consistency writer and checker for a writable dm-overlaybd device
(tests/vm/41-upper-crash.sh). Units of 4 KiB; the data of write i at unit u
is derived from (seed, i, u), so the log holds no data.

  upper_crash.py write DEV LOG SEED FIRST
      forever: rounds of random writes (1..16 units, O_DIRECT), each one's
      intent "w I UNIT COUNT" appended to LOG and fsynced before the write is
      issued; after each round fsync(DEV) and, once it returned, "a I" (every
      write of this session up to I is acknowledged by a completed flush)
      appended and fsynced. A session starts with "s FIRST"; writes are
      numbered from FIRST (a later boot goes on).
  upper_crash.py check DEV LOG SEED LOWER
      every unit holds what the last acknowledged write to it wrote (or the
      lower image's bytes if none), or what a later, unacknowledged write
      wrote; prints "ok UNITS WRITES ACKED" or the first bad unit. Also
      prints the next write number ("next N") for a following writer.
"""
import hashlib, mmap, os, random, sys

UNIT = 4096


def data(seed, i, u):
    h = hashlib.sha256(b"%d/%d/%d" % (seed, i, u)).digest()
    return (h * (UNIT // len(h) + 1))[:UNIT]


def write(dev, log, seed, first):
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    units = os.lseek(fd, 0, os.SEEK_END) // UNIT
    lg = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    # a session: its acknowledgements cover only its own writes
    os.write(lg, b"s %d\n" % first)
    os.fsync(lg)
    rnd = random.Random(seed * 7919 + first)
    buf = mmap.mmap(-1, 16 * UNIT)
    i = first
    while True:
        for _ in range(rnd.randint(1, 12)):
            n = rnd.randint(1, 16)
            u = rnd.randrange(0, units - n + 1)
            for k in range(n):
                buf[k * UNIT:(k + 1) * UNIT] = data(seed, i, u + k)
            os.write(lg, b"w %d %d %d\n" % (i, u, n))
            os.fsync(lg)
            os.pwritev(fd, [memoryview(buf)[:n * UNIT]], u * UNIT)
            i += 1
        os.fsync(fd)
        os.write(lg, b"a %d\n" % (i - 1))
        os.fsync(lg)


def check(dev, log, seed, lower):
    # writes in log order; a write is acknowledged by an "a I" of its own
    # session (a crash loses what a session had not flushed, and the next
    # session's flushes do not cover it)
    writes, acked, session = [], set(), []
    for line in open(log, errors="replace"):
        # after a reset the log may end in NUL bytes (its size durable before
        # its data); the next session's lines follow them on the same line
        p = line.replace("\0", "").split()
        if len(p) == 2 and p[0] == "s":
            session = []
        elif len(p) == 4 and p[0] == "w":
            writes.append((int(p[1]), int(p[2]), int(p[3])))
            session.append(int(p[1]))
        elif len(p) == 2 and p[0] == "a":
            acked.update(i for i in session if i <= int(p[1]))
        # a torn last line (the crash) is ignored
    low = open(lower, "rb")
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    units = os.lseek(fd, 0, os.SEEK_END) // UNIT
    last = {}       # unit -> last acknowledged write
    later = {}      # unit -> unacknowledged writes after it
    for i, u, n in writes:
        for k in range(u, u + n):
            if i in acked:
                last[k] = i
                later.pop(k, None)
            else:
                later.setdefault(k, []).append(i)
    buf = mmap.mmap(-1, UNIT)
    for k in range(units):
        os.preadv(fd, [buf], k * UNIT)
        got = bytes(buf)
        if k in last:
            ok = [data(seed, last[k], k)]
        else:
            low.seek(k * UNIT)
            ok = [low.read(UNIT)]
        ok += [data(seed, j, k) for j in later.get(k, [])]
        if got not in ok:
            what = "write %d" % last[k] if k in last else "the lower image"
            print("unit %d: neither %s nor one of %d later writes" % (k, what, len(later.get(k, []))))
            return 1
    nxt = max([w[0] for w in writes] + [-1]) + 1
    print("ok %d %d %d" % (units, len(writes), len(acked)))
    print("next %d" % nxt)
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) == 5 and a[0] == "write":
        write(a[1], a[2], int(a[3]), int(a[4]))
    elif len(a) == 5 and a[0] == "check":
        sys.exit(check(a[1], a[2], int(a[3]), a[4]))
    else:
        sys.exit(__doc__)
