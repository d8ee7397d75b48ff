#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Content generator for the reference images' .ops files
(testdata/overlaybd-ref/README.md):

  W off len rand SEED : byte at virtual offset p is byte p % 32 of
                        SHA256("obd-oracle:%d:%d" % (SEED, p // 32))
  W off len fill B    : every byte is B
  D off len           : discard

Usage:
  oracle-gen.py ops FILE            the ops, one per line, comments dropped
  oracle-gen.py data OFF LEN rand SEED | fill B   the bytes of one write
  oracle-gen.py raw VSIZE OPS...    the whole raw disk after the ops
"""
import hashlib
import sys


def parse_ops(path):
    ops = []
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].split()
            if not line:
                continue
            if line[0] == 'W':
                ops.append(('W', int(line[1], 0), int(line[2], 0), line[3], line[4]))
            elif line[0] == 'D':
                ops.append(('D', int(line[1], 0), int(line[2], 0)))
            else:
                raise SystemExit('%s: bad op %r' % (path, line))
    return ops


def data(off, length, kind, arg):
    if kind == 'fill':
        return bytes([int(arg, 0)]) * length
    seed = int(arg, 0)
    out = bytearray()
    p = off
    end = off + length
    while p < end:
        blk = p // 32
        h = hashlib.sha256(b'obd-oracle:%d:%d' % (seed, blk)).digest()
        lo = p - blk * 32
        hi = min(32, end - blk * 32)
        out += h[lo:hi]
        p = blk * 32 + hi
    return bytes(out)


def main():
    a = sys.argv[1:]
    if not a:
        raise SystemExit(__doc__)
    if a[0] == 'ops':
        for op in parse_ops(a[1]):
            print(' '.join(str(x) for x in op))
    elif a[0] == 'data':
        sys.stdout.buffer.write(data(int(a[1], 0), int(a[2], 0), a[3], a[4]))
    elif a[0] == 'raw':
        disk = bytearray(int(a[1], 0))
        for path in a[2:]:
            for op in parse_ops(path):
                if op[0] == 'W':
                    disk[op[1]:op[1] + op[2]] = data(*op[1:])
                else:
                    disk[op[1]:op[1] + op[2]] = bytes(op[2])
        sys.stdout.buffer.write(disk)
    else:
        raise SystemExit(__doc__)


if __name__ == '__main__':
    main()
