#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
O_DSYNC 4 KiB writes to a device, as a database does (every write durable
before the next): tests/vm/48-upper-index.sh.

  upper_dsync.py DEV MODEL_IN MODEL_OUT SEED COUNT
      COUNT writes of 4 KiB (O_DIRECT | O_DSYNC) at random 4 KiB blocks of
      DEV, each stamped with its number and block; MODEL_IN (the device's
      bytes before) updated with the writes that succeeded goes to
      MODEL_OUT. A write failing with ENOSPC is counted and changes nothing
      in the model; any other error stops. Then fsync. Prints
      "written W nospc N fsync ok|<errno>".
"""
import errno, mmap, os, random, struct, sys


def main(dev, model_in, model_out, seed, count):
    rnd = random.Random(seed)
    model = bytearray(open(model_in, "rb").read())
    blocks = len(model) // 4096
    base = rnd.randbytes(4096)
    buf = mmap.mmap(-1, 4096)
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT | os.O_DSYNC)
    written = nospc = 0
    for i in range(count):
        b = rnd.randrange(blocks)
        buf[:] = base
        buf[0:16] = struct.pack("<QQ", seed * 1000003 + i, b)
        try:
            os.pwritev(fd, [buf], b * 4096)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            nospc += 1
            continue
        model[b * 4096:(b + 1) * 4096] = buf[:]
        written += 1
    try:
        os.fsync(fd)
        fs = "ok"
    except OSError as e:
        fs = errno.errorcode.get(e.errno, str(e.errno))
    os.close(fd)
    open(model_out, "wb").write(model)
    print("written %d nospc %d fsync %s" % (written, nospc, fs))


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
