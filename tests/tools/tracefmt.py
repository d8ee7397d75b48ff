#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""The overlaybd reference's trace file (spec 6.7), written and read
independently of obd's C codec (struct.pack, a table CRC32C of our own):
the oracle of tests/tools/10-trace.sh and tests/vm/35-trace.sh.

  tracefmt.py write OUT [TEXT]   records "OP LAYER OFFSET COUNT" (stdin or TEXT)
  tracefmt.py read FILE          validate; print "OP LAYER OFFSET COUNT" lines
  tracefmt.py corrupt IN OUT KIND   KIND: magic short size trailing checksum op
                                     count layer overflow pad
"""
import struct
import sys

MAGIC = 0xC2EF1820
HDR = struct.Struct("<I4xQI4x")    # magic, pad, data_size, checksum, pad
REC = struct.Struct("<B3xIQQ")     # op, pad[3], layer_index, count, offset

_TAB = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
    _TAB.append(_c)


def crc32c_raw(data, crc=0):
    """Castagnoli, reflected, seed as given, no inversion (overlaybd's crc32c_extend)."""
    for b in data:
        crc = (crc >> 8) ^ _TAB[(crc ^ b) & 0xFF]
    return crc


def encode(recs):
    body = b"".join(REC.pack(ord(op), layer, count, off) for op, layer, off, count in recs)
    return HDR.pack(MAGIC, len(body), crc32c_raw(body)) + body


def decode(data):
    if len(data) < HDR.size:
        raise ValueError("file size %d < 24" % len(data))
    magic, dsize, csum = HDR.unpack_from(data)
    if magic != MAGIC:
        raise ValueError("magic 0x%08x" % magic)
    if dsize != len(data) - HDR.size or dsize % REC.size:
        raise ValueError("data_size %d for a %d-byte file" % (dsize, len(data)))
    if crc32c_raw(data[HDR.size:]) != csum:
        raise ValueError("checksum")
    out = []
    for i in range(dsize // REC.size):
        op, layer, count, off = REC.unpack_from(data, HDR.size + i * REC.size)
        if chr(op) not in "RW" or layer >= 255 or count == 0:
            raise ValueError("record %d" % i)
        out.append((chr(op), layer, off, count))
    return out


def parse_text(text):
    recs = []
    for line in text.splitlines():
        w = line.split()
        if not w or w[0].startswith("#"):
            continue
        op = "R"
        if w[0] in ("R", "W"):
            op = w.pop(0)
        recs.append((op, int(w[0]), int(w[1]), int(w[2])))
    return recs


def corrupt(data, kind):
    b = bytearray(data)

    def reseal():
        struct.pack_into("<I", b, 16, crc32c_raw(bytes(b[24:])))

    if kind == "magic":
        b[0] ^= 1
    elif kind == "short":
        del b[10:]
    elif kind == "size":
        struct.pack_into("<Q", b, 8, len(b) - 24 + 24)
    elif kind == "trailing":
        b += b"\0" * 5
    elif kind == "checksum":
        b[16] ^= 0xFF
    elif kind == "op":
        b[24] = ord("X")
        reseal()
    elif kind == "count":
        struct.pack_into("<Q", b, 24 + 8, 1 << 62)
        reseal()
    elif kind == "layer":
        struct.pack_into("<I", b, 24 + 4, 255)
        reseal()
    elif kind == "overflow":
        struct.pack_into("<QQ", b, 24 + 8, 1 << 20, (1 << 64) - 4096)
        reseal()
    elif kind == "pad":     # not guaranteed zero by the reference: still valid
        b[25:28] = b"\xaa\xbb\xcc"
        reseal()
    else:
        raise SystemExit("unknown corruption " + kind)
    return bytes(b)


def main(argv):
    if len(argv) >= 3 and argv[1] == "write":
        text = open(argv[3]).read() if len(argv) > 3 else sys.stdin.read()
        open(argv[2], "wb").write(encode(parse_text(text)))
    elif len(argv) == 3 and argv[1] == "read":
        try:
            recs = decode(open(argv[2], "rb").read())
        except ValueError as e:
            print("%s: %s" % (argv[2], e), file=sys.stderr)
            return 1
        for op, layer, off, count in recs:
            print(op, layer, off, count)
    elif len(argv) == 5 and argv[1] == "corrupt":
        open(argv[3], "wb").write(corrupt(open(argv[2], "rb").read(), argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
