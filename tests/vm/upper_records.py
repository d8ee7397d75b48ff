#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
Diagnostics for the crash tests: the records of an append-mode upper's index
file that overlap a sector range, in log order.

  upper_records.py INDEX START COUNT
      one line per record overlapping [START, START + COUNT) (device
      sectors): its number in the file, offset, length, moffset (data file
      sector), zeroed; invalid (padding) records are skipped.
"""
import struct, sys


def main(index, start, count):
    raw = open(index, "rb").read()
    end = start + count
    n = 0
    for k in range((len(raw) - 4096) // 16):
        w0, w1 = struct.unpack_from("<QQ", raw, 4096 + 16 * k)
        off = w0 & ((1 << 50) - 1)
        length = (w0 >> 50) & 0x3fff
        mo = w1 & ((1 << 55) - 1)
        zero = (w1 >> 55) & 1
        if off == (1 << 50) - 1 or not length:
            continue
        if off < end and start < off + length:
            print("record %d: offset %d length %d moffset %d%s" % (k, off, length, mo, " zeroed" if zero else ""))
            n += 1
    print("%d record(s) of %d in the file overlap [%d, %d)" % (n, (len(raw) - 4096) // 16, start, end))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
