# SPDX-License-Identifier: GPL-2.0-only
"""Test doubles for the miss channel (include/obd_uapi.h), used by the VM tests.

    remote_lib.py entry BLOB CACHEDIR [URL]   make the cache entry of a local blob
                                              (sparse sha256:<hex> + .meta with an
                                              empty bitmap); prints the table token
    remote_lib.py daemon SRCDIR LOG [opts]    a stand-in for overlaybd-fetchd that
                                              answers misses from local copies of
                                              the blobs (SRCDIR/sha256:<hex>)
    remote_lib.py garbage                     writes malformed answers; each must
                                              be refused with EINVAL
    remote_lib.py meta-bits CACHEFILE         granules marked present in the .meta

The stand-in daemon is not overlaybd-fetchd: it lets the kernel side be
tested alone, with faults the real daemon never makes (corrupt data, no
answer, a kill -9 at a chosen moment). Its LOG has one line per message:
"OPEN <blob_id> <size> <path>", "READ <id> <blob_id> <off> <len> <flags>",
"DONE <id> <blob_id> <off> <len> <status>", "CLOSE <blob_id>"
(and with --inval-test, "INVAL <case>: ok|not ok ...").

With --ctl DIR the test steers the daemon: it runs each file put in DIR (one
command a file, files in name order) and deletes it when done, so the test
waits for the file to go. Commands: "pause" (stop reading the channel, so
requests stay NEW in the kernel), "resume", "have-bad OFF LEN" (XOR the
bytes [OFF, OFF + LEN) of the last OPENed blob's cache file and send HAVE
for the granules they touch: data that arrived by a background download,
bad), "have-bad-held" (the same for every held request's range) and
"release" (answer the held requests, writing nothing: the daemon found the
range in its cache). --hold-prefetch holds PREFETCH-flagged READs until
"release". Each command logs "CTL <command>".
"""
import argparse
import errno
import hashlib
import os
import select
import signal
import struct
import sys
import time

MAGIC = 0x3144424F
VERSION = 3
OP_OPEN, OP_CLOSE, OP_READ, OP_DONE, OP_HAVE, OP_INVALIDATE = 1, 2, 3, 16, 17, 18
F_REFETCH, F_PREFETCH = 1, 2
HDR = struct.Struct("<IHHIIQ")  # 24
OPEN = struct.Struct("<QQ32sIIQII4000s")
READ = struct.Struct("<QQQII")
DONE = struct.Struct("<IHHIIQQQQiI")  # 56
GRANULE = 4096
MSG_MAX = 4096
DEV = "/dev/overlaybd"

CACHE_HDR_SPACE = 4096
URL_MAX = 2048


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc32c_table()


def crc32c_raw(data, crc=0):
    """overlaybd's CRC32C: the raw update, no inversion (lib/core/obd.h)."""
    for b in data:
        crc = _T[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def bitmap_bytes(size):
    granules = (size + GRANULE - 1) // GRANULE
    return ((granules + 7) // 8 + 7) // 8 * 8


def cache_header(size, digest, url, flags=0):
    """include/obd_format.h, struct obd_cache_hdr."""
    h = bytearray(CACHE_HDR_SPACE)
    u = url.encode()
    struct.pack_into("<8sIIIIQ32sQQI", h, 0, b"OBDCACHE", 1, CACHE_HDR_SPACE, 12, flags,
                     size, digest, CACHE_HDR_SPACE, bitmap_bytes(size), len(u))
    h[128:128 + len(u)] = u
    crc = crc32c_raw(bytes(h[:84]) + b"\0\0\0\0" + bytes(h[88:]))
    struct.pack_into("<I", h, 84, crc)
    return bytes(h)


def make_entry(blob, cachedir, url=None):
    data = open(blob, "rb").read()
    dg = hashlib.sha256(data).digest()
    name = "sha256:" + dg.hex()
    path = os.path.join(cachedir, name)
    os.makedirs(cachedir, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(len(data))
    url = url or "http://127.0.0.1:5000/v2/test/blobs/" + name
    with open(path + ".meta", "wb") as f:
        f.write(cache_header(len(data), dg, url))
        f.write(bytes(bitmap_bytes(len(data))))
    return "remote:%d:%s:%s" % (len(data), name, os.path.abspath(path))


def meta_bits(cachefile):
    m = open(cachefile + ".meta", "rb").read()
    size = struct.unpack_from("<Q", m, 24)[0]
    bits = m[CACHE_HDR_SPACE:]
    n = (size + GRANULE - 1) // GRANULE
    return [g for g in range(n) if bits[g // 8] >> (g % 8) & 1]


def hdr(op, size, rid=0):
    return HDR.pack(MAGIC, VERSION, op, size, 0, rid)


def done_msg(rid, blob_id, off, length, status=0, op=OP_DONE):
    return DONE.pack(MAGIC, VERSION, op, DONE.size, 0, rid, blob_id, off, length,
                     status, 0)


def have_msg(blob_id, off, length):
    return done_msg(0, blob_id, off, length, op=OP_HAVE)


class Daemon:
    """Answers READs from SRCDIR/<digest>; see the option help for faults."""

    def __init__(self, a):
        self.a = a
        self.blobs = {}  # blob_id -> dict(size, path, src, fd, sent_bits)
        self.log = open(a.log, "a", buffering=1)
        self.fd = os.open(DEV, os.O_RDWR | os.O_NONBLOCK)
        self.pending = []  # (due, rid, blob_id, off, len, flags)
        self.answered = set()
        self.corrupted = {}  # (blob_id, off) -> times served bad
        self.dirty = {}  # blob_id -> set of granules written but not yet durable
        self.last_sync = time.monotonic()
        self.stop = False
        self.reads = 0
        self.paused = False
        self.held = []  # (rid, blob_id, off, len) of PREFETCH READs held (--hold-prefetch)
        self.last_blob = None

    def msg(self, line):
        self.log.write(line + "\n")

    def on_open(self, body):
        blob_id, size, dg, plen, _flags, _ino, _dev, _res, path = OPEN.unpack_from(body)
        path = path[:plen].decode()
        src = os.path.join(self.a.srcdir, "sha256:" + dg.hex())
        self.blobs[blob_id] = dict(size=size, path=path, src=open(src, "rb").read(),
                                   fd=os.open(path, os.O_RDWR), mfd=os.open(path + ".meta", os.O_RDWR))
        self.last_blob = blob_id
        self.msg("OPEN %d %d %s" % (blob_id, size, path))
        if self.a.inval_test:
            self.inval_test(blob_id, size)
        if self.a.have:
            # a background download done at once: the whole blob, announced unasked
            b = self.blobs[blob_id]
            os.pwrite(b["fd"], b["src"], 0)
            self.mark_dirty(blob_id, 0, size)
            os.write(self.fd, have_msg(blob_id, 0, size))
            self.msg("HAVE %d 0 %d" % (blob_id, size))

    def inval_test(self, blob_id, size):
        """INVALIDATEs the kernel must refuse (EINVAL), then a valid one of the whole blob:
        one line each, "INVAL <case>: ok|not ok <why>"""
        end = (size + GRANULE - 1) // GRANULE * GRANULE
        good = done_msg(0, blob_id, 0, size, op=OP_INVALIDATE)
        cases = {
            "unaligned offset": done_msg(0, blob_id, 1, GRANULE, op=OP_INVALIDATE),
            "zero length": done_msg(0, blob_id, 0, 0, op=OP_INVALIDATE),
            "past the blob's end": done_msg(0, blob_id, 0, end + GRANULE, op=OP_INVALIDATE),
            "offset past the end": done_msg(0, blob_id, end + GRANULE, GRANULE, op=OP_INVALIDATE),
            "huge length (wraps)": done_msg(0, blob_id, GRANULE, (1 << 64) - GRANULE, op=OP_INVALIDATE),
            "end unaligned inside the blob": done_msg(0, blob_id, 0, GRANULE + 1, op=OP_INVALIDATE),
            "a blob not OPENed": done_msg(0, blob_id + 1000, 0, GRANULE, op=OP_INVALIDATE),
            "a request id": done_msg(9, blob_id, 0, GRANULE, op=OP_INVALIDATE),
            "a status": done_msg(0, blob_id, 0, GRANULE, -5, op=OP_INVALIDATE),
            "header reserved": good[:12] + b"\1\0\0\0" + good[16:],
            "reserved": good[:-4] + b"\1\0\0\0",
            "version 2": good[:4] + struct.pack("<H", 2) + good[6:],
            "size 24": good[:8] + struct.pack("<I", 24) + good[12:],
        }
        for name, m in cases.items():
            try:
                os.write(self.fd, m)
                self.msg("INVAL %s: not ok, accepted" % name)
            except OSError as e:
                self.msg("INVAL %s: %s" % (name, "ok" if e.errno == errno.EINVAL else "not ok, " + str(e)))
        try:
            os.write(self.fd, good)
            self.msg("INVAL valid whole blob: ok")
        except OSError as e:
            self.msg("INVAL valid whole blob: not ok, %s" % e)

    def answer(self, rid, blob_id, off, length, flags):
        b = self.blobs[blob_id]
        r = self.a.refill
        lo = off // r * r
        hi = min((off + length + r - 1) // r * r, b["size"])
        data = b["src"][lo:hi]
        key = (blob_id, lo)
        if self.a.corrupt and self.corrupted.get(key, 0) < self.a.corrupt:
            self.corrupted[key] = self.corrupted.get(key, 0) + 1
            data = bytes(x ^ 0x5A for x in data)
        status = 0
        if self.a.fail:
            status = -errno.EIO
        else:
            os.pwrite(b["fd"], data, lo)
            self.mark_dirty(blob_id, lo, hi)
        self.send_done(rid, blob_id, lo, hi - lo, status)

    def mark_dirty(self, blob_id, lo, hi):
        """Granules of [lo, hi) written: made durable, then marked, at the next sync."""
        self.dirty.setdefault(blob_id, set()).update(range(lo // GRANULE, (hi + GRANULE - 1) // GRANULE))

    def send_done(self, rid, blob_id, off, length, status=0):
        os.write(self.fd, done_msg(rid, blob_id, off, length, status))
        self.answered.add(rid)
        self.msg("DONE %d %d %d %d %d" % (rid, blob_id, off, length, status))

    def have_bad(self, blob_id, off, length):
        """Bad bytes at [off, off + len) that came by a background download: HAVE them."""
        b = self.blobs[blob_id]
        end = min(off + length, b["size"])
        os.pwrite(b["fd"], bytes(x ^ 0x5A for x in b["src"][off:end]), off)
        lo = off // GRANULE * GRANULE
        hi = min((end + GRANULE - 1) // GRANULE * GRANULE, b["size"])
        self.mark_dirty(blob_id, lo, hi)
        os.write(self.fd, have_msg(blob_id, lo, hi - lo))
        self.msg("HAVE %d %d %d" % (blob_id, lo, hi - lo))

    def control(self):
        """One command a file in --ctl DIR (see the module's doc)."""
        for name in sorted(os.listdir(self.a.ctl)):
            path = os.path.join(self.a.ctl, name)
            words = open(path).read().split()
            self.msg("CTL %s" % " ".join(words))
            if words == ["pause"]:
                self.paused = True
            elif words == ["resume"]:
                self.paused = False
            elif words[:1] == ["have-bad"] and len(words) == 3:
                self.have_bad(self.last_blob, int(words[1]), int(words[2]))
            elif words == ["have-bad-held"]:
                for _rid, blob_id, off, length in self.held:
                    self.have_bad(blob_id, off, length)
            elif words == ["release"]:
                for rid, blob_id, off, length in self.held:
                    self.send_done(rid, blob_id, off, length)
                self.held = []
            else:
                raise SystemExit("unknown control command %r" % words)
            os.unlink(path)

    def sync(self):
        """Data durable first, then its bits (the rule of obd_cache.h)."""
        for blob_id, gs in self.dirty.items():
            b = self.blobs[blob_id]
            os.fdatasync(b["fd"])
            bits = bytearray(os.pread(b["mfd"], bitmap_bytes(b["size"]), CACHE_HDR_SPACE))
            for g in gs:
                bits[g // 8] |= 1 << (g % 8)
            os.pwrite(b["mfd"], bytes(bits), CACHE_HDR_SPACE)
            os.fdatasync(b["mfd"])
        self.dirty = {}
        self.last_sync = time.monotonic()

    def on_read(self, rid, body):
        blob_id, off, length, flags, _ = READ.unpack_from(body)
        self.reads += 1
        self.msg("READ %d %d %d %d %d" % (rid, blob_id, off, length, flags))
        if rid in self.answered:
            raise SystemExit("request %d sent twice to one daemon" % rid)
        if self.a.silent:
            return
        if self.a.hold_prefetch and flags & F_PREFETCH:
            self.held.append((rid, blob_id, off, length))
            return
        self.pending.append((time.monotonic() + self.a.delay / 1000.0, rid, blob_id, off,
                             length, flags))
        if self.a.exit_after and self.reads >= self.a.exit_after:
            self.msg("EXIT after %d reads" % self.reads)
            os.kill(os.getpid(), signal.SIGKILL)

    def pump(self):
        while True:
            try:
                m = os.read(self.fd, MSG_MAX)
            except BlockingIOError:
                return
            magic, ver, op, size, _res, rid = HDR.unpack_from(m)
            if magic != MAGIC or ver != VERSION or size != len(m):
                raise SystemExit("bad message from the kernel: %r" % m[:24])
            body = m[HDR.size:]
            if op == OP_OPEN:
                self.on_open(body)
            elif op == OP_READ:
                self.on_read(rid, body)
            elif op == OP_CLOSE:
                blob_id = struct.unpack_from("<Q", body)[0]
                self.msg("CLOSE %d" % blob_id)
            else:
                raise SystemExit("unknown opcode %d" % op)

    def run(self):
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stop", True))
        open(self.a.log + ".ready", "w").close()
        while not self.stop:
            now = time.monotonic()
            due = [p for p in self.pending if p[0] <= now]
            self.pending = [p for p in self.pending if p[0] > now]
            for p in due:
                self.answer(*p[1:])
            if self.dirty and now - self.last_sync > 0.1:
                self.sync()
            if self.a.ctl:
                self.control()
            try:
                select.select([] if self.paused else [self.fd], [], [], 0.02)
            except InterruptedError:
                pass
            if not self.paused:
                self.pump()
        for p in self.pending:
            self.answer(*p[1:])
        self.sync()
        self.msg("STOP")


def garbage():
    """Every malformed answer must be refused with EINVAL (and nothing else)."""
    fd = os.open(DEV, os.O_RDWR | os.O_NONBLOCK)
    try:
        os.open(DEV, os.O_RDWR)
        print("not ok second open of %s was allowed" % DEV)
        return 1
    except OSError as e:
        print("%s second open: %s" % ("ok" if e.errno == errno.EBUSY else "not ok", e))
    good = done_msg(1, 1, 0, GRANULE)
    cases = {
        "short write": good[:40],
        "long write": good + b"\0" * 8,
        "one byte": b"\0",
        "random bytes": os.urandom(DONE.size),
        "bad magic": struct.pack("<I", 0x12345678) + good[4:],
        "bad version": good[:4] + struct.pack("<H", 9) + good[6:],
        "bad opcode": good[:6] + struct.pack("<H", OP_READ) + good[8:],
        "bad size": good[:8] + struct.pack("<I", 24) + good[12:],
        "unknown id": done_msg(0xFFFFFFF0, 1, 0, GRANULE),
        "id zero": done_msg(0, 1, 0, GRANULE),
        "id above u32": done_msg(1 << 40, 1, 0, GRANULE),
        "positive status": done_msg(1, 1, 0, GRANULE, 5),
        "huge negative status": done_msg(1, 1, 0, GRANULE, -100000),
        "reserved set": good[:-4] + b"\1\0\0\0",
        "HAVE for an unknown blob": have_msg(0xFFFF, 0, GRANULE),
        "HAVE with a request id": done_msg(7, 1, 0, GRANULE, op=OP_HAVE),
        "HAVE with a status": done_msg(0, 1, 0, GRANULE, -5, op=OP_HAVE),
        "INVALIDATE for an unknown blob": done_msg(0, 0xFFFF, 0, GRANULE, op=OP_INVALIDATE),
        "INVALIDATE with a request id": done_msg(7, 1, 0, GRANULE, op=OP_INVALIDATE),
        "INVALIDATE with a status": done_msg(0, 1, 0, GRANULE, -5, op=OP_INVALIDATE),
        "INVALIDATE with reserved set": done_msg(0, 1, 0, GRANULE, op=OP_INVALIDATE)[:-4] + b"\1\0\0\0",
        "INVALIDATE of version 2": done_msg(0, 1, 0, GRANULE, op=OP_INVALIDATE)[:4] +
            struct.pack("<H", 2) + done_msg(0, 1, 0, GRANULE, op=OP_INVALIDATE)[6:],
    }
    bad = 0
    for name, m in cases.items():
        try:
            n = os.write(fd, m)
            print("not ok %s accepted (%d bytes)" % (name, n))
            bad += 1
        except OSError as e:
            ok = e.errno == errno.EINVAL
            bad += not ok
            print("%s %s: %s" % ("ok" if ok else "not ok", name, e))
    small = bytearray(100)
    try:
        os.readv(fd, [small])
        print("not ok read into a 100-byte buffer succeeded")
        bad += 1
    except OSError as e:
        ok = e.errno == errno.EINVAL
        bad += not ok
        print("%s read into a small buffer: %s" % ("ok" if ok else "not ok", e))
    try:
        os.read(fd, MSG_MAX)
        print("not ok read with nothing queued returned a message")
        bad += 1
    except BlockingIOError:
        print("ok empty queue: EAGAIN")
    os.close(fd)
    return 1 if bad else 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("entry")
    e.add_argument("blob")
    e.add_argument("cachedir")
    e.add_argument("url", nargs="?")
    d = sub.add_parser("daemon")
    d.add_argument("srcdir")
    d.add_argument("log")
    d.add_argument("--refill", type=int, default=65536, help="answer this aligned unit")
    d.add_argument("--delay", type=int, default=0, help="ms before each answer")
    d.add_argument("--corrupt", type=int, default=0,
                   help="serve each refill unit XOR-ed this many times first")
    d.add_argument("--fail", action="store_true", help="answer every READ with -EIO")
    d.add_argument("--have", action="store_true",
                   help="at OPEN fill the whole blob and send HAVE for it")
    d.add_argument("--silent", action="store_true", help="never answer")
    d.add_argument("--inval-test", action="store_true",
                   help="at OPEN write malformed INVALIDATEs (each must get EINVAL), then a valid "
                        "one of the whole blob; lines \"INVAL <case>: ok|not ok\"")
    d.add_argument("--exit-after", type=int, default=0, help="kill -9 self after N READs")
    d.add_argument("--ctl", help="run the commands put in this directory (see the doc)")
    d.add_argument("--hold-prefetch", action="store_true",
                   help="hold PREFETCH-flagged READs until the \"release\" command")
    sub.add_parser("garbage")
    m = sub.add_parser("meta-bits")
    m.add_argument("cachefile")
    a = p.parse_args()
    if a.cmd == "entry":
        print(make_entry(a.blob, a.cachedir, a.url))
    elif a.cmd == "daemon":
        Daemon(a).run()
    elif a.cmd == "garbage":
        sys.exit(garbage())
    elif a.cmd == "meta-bits":
        print(len(meta_bits(a.cachefile)))


if __name__ == "__main__":
    main()
