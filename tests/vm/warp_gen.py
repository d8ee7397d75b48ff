#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Test data for TurboOCI (warp) layers, written from the byte format of
include/obd_format.h (LSMT: 4 KiB header, data, 16-byte records, trailer)
with a model of the device they make. Nothing here reads a layer back: the
kernel (tests/vm/53-turbo.sh) and the tools are checked against the model.

  warp_gen.py DIR SEED     writes in DIR:
    target.tar   the target: random sectors (a stand-in for a tar stream)
    lower.lsmt   a plain committed LSMT under the warp layer (tags 0)
    meta.lsmt    the warp layer: tag-0 records (bytes in it), tag-1 records
                 (sectors of target.tar, at any sector, none 8-aligned on
                 purpose), zeroed records, holes falling through
    model.img    what the device "2 lower.lsmt turbo meta.lsmt target.tar" reads
    big.tar      target.tar followed by more sectors (a second target size)
    bad-tag.lsmt meta.lsmt with one record tagged 2
    past.lsmt    meta.lsmt with a tag-1 record ending one sector past target.tar
    shifted.lsmt meta.lsmt with every tag raised by 5 (normalised back: same model)
    vsize        the virtual size in sectors
"""
import os
import random
import struct
import sys

SECT = 512
VSIZE = 65536          # sectors: 32 MiB
TSECT = 20480          # target sectors: 10 MiB
MAGIC0 = 0x00020100544d534c
MAGIC1 = bytes([0x65, 0x7e, 0x63, 0xd2, 0x94, 0x44, 0x08, 0x4c,
                0xa2, 0xd2, 0xc8, 0xec, 0x4f, 0xcf, 0xae, 0x8a])


def ht(flags, ioff, isize, uuid):
    b = struct.pack('<Q16sIIQQQ', MAGIC0, MAGIC1, 390, flags, ioff, isize, VSIZE * SECT)
    b += uuid.encode() + b'\0' + b'\0' * 37 + struct.pack('<HBB', 0, 1, 1)
    b += b'warp_gen'.ljust(256, b'\0')
    assert len(b) == 390
    return b.ljust(4096, b'\0')


def rec(off, length, moff, zeroed, tag):
    w0 = off | (length << 50)
    w1 = moff | (zeroed << 55) | (tag << 56)
    return struct.pack('<QQ', w0, w1)


def write_lsmt(path, records, data, uuid):
    """records: (offset, length, moffset, zeroed, tag); data: bytes from sector 8."""
    ioff = 4096 + len(data)
    idx = b''.join(rec(*r) for r in records)
    with open(path, 'wb') as f:
        f.write(ht(0x07, 0, 0, uuid))
        f.write(data)
        f.write(idx)
        f.write(ht(0x06, ioff, len(records), uuid))


def ranges(rng, count, maxlen, end=VSIZE):
    """count sorted, disjoint (offset, length) ranges in [0, end) with gaps."""
    out, pos = [], rng.randrange(0, 64)
    while len(out) < count and pos < end - 1:
        length = min(rng.randrange(1, maxlen + 1), end - pos)
        out.append((pos, length))
        pos += length + rng.randrange(0, 300)
    return out


def main():
    d, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    os.makedirs(d, exist_ok=True)
    target = rng.randbytes(TSECT * SECT)
    model = bytearray(VSIZE * SECT)

    # the lower: plain data everywhere the meta layer may fall through to
    lrecs, ldata = [], bytearray()
    for off, length in ranges(rng, 60, 900):
        b = rng.randbytes(length * SECT)
        lrecs.append((off, length, 8 + len(ldata) // SECT, 0, 0))
        ldata += b
        model[off * SECT:(off + length) * SECT] = b
    write_lsmt(os.path.join(d, 'lower.lsmt'), lrecs, bytes(ldata),
               '11111111-2222-4333-8444-555555555555')

    mrecs, mdata = [], bytearray()
    first_t = last_t = False
    # and one record of the longest length at the end, pointing into the target
    rs = ranges(rng, 120, 700, VSIZE - 16384) + [(VSIZE - 16383 - 1, 16383)]
    for i, (off, length) in enumerate(rs):
        kind = rng.choice('tttmz') if length < 16383 else 't'
        if kind == 't':
            if not first_t:
                mo, first_t = 0, True
            elif not last_t and length <= TSECT:
                mo, last_t = TSECT - length, True
            else:
                mo = rng.randrange(0, TSECT - length + 1)
                if mo % 8 == 0 and mo + length < TSECT:
                    mo += 1
            mrecs.append((off, length, mo, 0, 1))
            model[off * SECT:(off + length) * SECT] = target[mo * SECT:(mo + length) * SECT]
        elif kind == 'm':
            b = rng.randbytes(length * SECT)
            mrecs.append((off, length, 8 + len(mdata) // SECT, 0, 0))
            mdata += b
            model[off * SECT:(off + length) * SECT] = b
        else:
            # moffset: where the data ends so far, as the reference writes it
            mrecs.append((off, length, 8 + len(mdata) // SECT, 1, rng.choice((0, 1))))
            model[off * SECT:(off + length) * SECT] = bytes(length * SECT)
    uuid = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee'
    write_lsmt(os.path.join(d, 'meta.lsmt'), mrecs, bytes(mdata), uuid)

    tagged = [r for r in mrecs if r[4] == 1 and not r[3]]
    bad = [r if r != tagged[1] else r[:4] + (2,) for r in mrecs]
    write_lsmt(os.path.join(d, 'bad-tag.lsmt'), bad, bytes(mdata), uuid)
    t = tagged[2]
    past = [r if r != t else (t[0], t[1], TSECT - t[1] + 1, 0, 1) for r in mrecs]
    write_lsmt(os.path.join(d, 'past.lsmt'), past, bytes(mdata), uuid)
    shifted = [r[:4] + (r[4] + 5,) for r in mrecs]
    write_lsmt(os.path.join(d, 'shifted.lsmt'), shifted, bytes(mdata), uuid)

    with open(os.path.join(d, 'target.tar'), 'wb') as f:
        f.write(target)
    with open(os.path.join(d, 'big.tar'), 'wb') as f:
        f.write(target + rng.randbytes(64 * SECT))
    with open(os.path.join(d, 'model.img'), 'wb') as f:
        f.write(model)
    with open(os.path.join(d, 'vsize'), 'w') as f:
        f.write('%d\n' % VSIZE)
    print('records: meta %d (target %d), lower %d' % (len(mrecs), len(tagged), len(lrecs)))


if __name__ == '__main__':
    main()
