#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""cache-check.py CACHE_FILE BLOB: check a cache entry against its blob.

Reads CACHE_FILE.meta (include/obd_format.h, "Cache entry metadata"):
the header's blob_size must be BLOB's size, the cache file must be that
size, and every granule whose bit is set must hold BLOB's bytes. Prints
"present <bytes> granules <n>"; exit 1 on a mismatch."""
import struct
import sys

G = 4096


def main():
    cache, blob = sys.argv[1], sys.argv[2]
    meta = open(cache + ".meta", "rb").read()
    want = open(blob, "rb").read()
    data = open(cache, "rb").read()
    if meta[:8] != b"OBDCACHE":
        sys.exit("bad magic")
    size, = struct.unpack_from("<Q", meta, 24)
    boff, blen = struct.unpack_from("<QQ", meta, 64)
    if size != len(want) or len(data) != size:
        sys.exit("size: header %d, cache file %d, blob %d" % (size, len(data), len(want)))
    bits = meta[boff:boff + blen]
    present = granules = 0
    for g in range((size + G - 1) // G):
        if bits[g // 8] >> (g % 8) & 1:
            a, b = g * G, min((g + 1) * G, size)
            if data[a:b] != want[a:b]:
                sys.exit("granule %d: cache bytes differ from the blob" % g)
            present += b - a
            granules += 1
    print("present %d granules %d" % (present, granules))


main()
