#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
A kernel stand-in for overlaybd-fetchd host tests: plays /dev/overlaybd on a
SOCK_SEQPACKET Unix socket, with the messages of include/obd_uapi.h.

  kstub.py mkentry DIR URL BLOBFILE         write <DIR>/sha256:<hex> + .meta
  kstub.py mkgunzip DIR URL GZFILE TARFILE GZINDEX
                                            a gunzip entry: <DIR>/sha256:<hex of GZFILE>
                                            of TARFILE's size, flag GUNZIP, + .gzindex
  kstub.py run SCRIPT.json                  one daemon connection

The script: {"socket": path, "daemon": [argv...], "timeout": s,
  "blobs": [{"id": 1, "cache": path, "data": blobfile, "size"?: n, "digest"?: hex}],
  "steps": [ {"read": [[blob, off, len, flags?], ...], "expect": "ok"|"err"|"any",
              "repeat"?: n, "check_bytes"?: true},
             {"sleep": s}, {"close": blob}, {"sigterm": true},
             {"exec": "shell command"} (its status and stdout: "rc", "out") ]}
Every step's reads go out at once; the step waits for all their DONEs.
Each DONE is checked: known id, answered once, same blob, status 0 or
-1..-4095, a status-0 range granule aligned, inside the blob, covering the
request; then the cache file bytes of that range are compared with the
blob's. HAVE and INVALIDATE messages are recorded ("haves", "invalidates",
and with DONEs in arrival order, "events"); an INVALIDATE is checked as the
kernel does (id 0, status 0, a known blob, a granule-aligned range in it).
"sleep" steps keep reading what the daemon sends. "sigterm" sends SIGTERM while the previous step's reads are still
in flight (use "wait": false on it) and checks every id got one DONE and
the daemon exited 0. Prints one JSON object with the results; exit 1 on
any violation.
"""
import hashlib, json, os, signal, socket, struct, subprocess, sys, time, zlib

MAGIC, VERSION = 0x3144424F, 3
OPEN, CLOSE, READ, DONE, HAVE, INVALIDATE = 1, 2, 3, 16, 17, 18
GRAN = 4096
HDR = "<IHHIIQ"  # magic version opcode size reserved id

def crc32c_raw(data, crc=0):
    # overlaybd's crc32c: raw Castagnoli, seed as-is, no inversion
    tab = crc32c_raw.tab
    if tab is None:
        tab = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
            tab.append(c)
        crc32c_raw.tab = tab
    for b in data:
        crc = (crc >> 8) ^ tab[(crc ^ b) & 0xFF]
    return crc
crc32c_raw.tab = None

def bitmap_bytes(size):
    g = (size + GRAN - 1) // GRAN
    return ((g + 7) // 8 + 7) // 8 * 8

def mkentry(d, url, blobfile, flags=0, size=None, index=None):
    data = open(blobfile, "rb").read()
    dig = hashlib.sha256(data).digest()
    path = os.path.join(d, "sha256:" + dig.hex())
    if size is None:
        size = len(data)
    with open(path, "wb") as f:
        f.truncate(size)
    if index is not None:
        with open(path + ".gzindex", "wb") as f:
            f.write(open(index, "rb").read())
    data = bytes(size) if size != len(data) else data
    hdr = bytearray(4096)
    u = url.encode()
    struct.pack_into("<8sIIIIQ32sQQII", hdr, 0, b"OBDCACHE", 1, 4096, 12, flags, len(data), dig,
                     4096, bitmap_bytes(len(data)), len(u), 0)
    hdr[128:128 + len(u)] = u
    struct.pack_into("<I", hdr, 84, crc32c_raw(bytes(hdr)))
    with open(path + ".meta", "wb") as f:
        f.write(hdr)
        f.write(bytes(bitmap_bytes(len(data))))
    print(path)

def meta_bits(path, size):
    with open(path + ".meta", "rb") as f:
        f.seek(4096)
        bm = f.read(bitmap_bytes(size))
    g = (size + GRAN - 1) // GRAN
    return [i for i in range(g) if bm[i // 8] >> (i % 8) & 1]

def meta_flags(cache):
    """flags and dl_flags of an entry's header"""
    with open(cache + ".meta", "rb") as f:
        h = f.read(128)
    return dict(flags=struct.unpack_from("<I", h, 20)[0], dl_flags=struct.unpack_from("<I", h, 88)[0])

def set_download(cache, enable, delay=0, extra=0, mbps=0, tries=5, bs=262144):
    """write a download policy into an entry's header (as obd attach does), crc updated"""
    with open(cache + ".meta", "r+b") as f:
        h = bytearray(f.read(4096))
        struct.pack_into("<6I", h, 88, 1 | (2 if enable else 0), delay, extra, mbps, tries, bs)
        struct.pack_into("<I", h, 84, 0)
        struct.pack_into("<I", h, 84, crc32c_raw(bytes(h)))
        f.seek(0)
        f.write(h)

def hdr(op, size, rid=0):
    return struct.pack(HDR, MAGIC, VERSION, op, size, 0, rid)

def msg_open(bid, size, digest, path):
    p = path.encode()
    st = os.stat(path)  # the daemon checks it writes to the file "the kernel" has
    m = hdr(OPEN, 4096) + struct.pack("<QQ32sIIQII", bid, size, digest, len(p), 0, st.st_ino,
                                      st.st_dev & 0xffffffff, 0) + p
    return m + bytes(4096 - len(m))

def msg_read(rid, bid, off, ln, flags=0):
    return hdr(READ, 56, rid) + struct.pack("<QQQII", bid, off, ln, flags, 0)

def msg_close(bid):
    return hdr(CLOSE, 32) + struct.pack("<Q", bid)

class Stub:
    def __init__(self, sc):
        self.sc = sc
        self.errors = []
        self.next_id = 1000
        self.pending = {}     # id -> (blob, off, len)
        self.answered = {}    # id -> done dict
        self.haves = []       # (blob, off, len) of HAVE messages
        self.invalidates = [] # (blob, off, len) of INVALIDATE messages
        self.events = []      # ("have"|"invalidate"|"done"|"fail", blob, off, len), in order
        self.blobs = {}
        for b in sc["blobs"]:
            data = open(b["data"], "rb").read() if b.get("data") else None
            size = b.get("size", len(data) if data is not None else 0)
            dig = bytes.fromhex(b["digest"]) if b.get("digest") else hashlib.sha256(data).digest()
            self.blobs[b["id"]] = dict(b, bytes=data, size=size, digest_raw=dig)

    def err(self, s):
        self.errors.append(s)

    def start(self):
        path = self.sc["socket"]
        if os.path.exists(path):
            os.unlink(path)
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.ls.bind(path)
        self.ls.listen(1)
        self.log = open(self.sc["log"], "ab") if self.sc.get("log") else None
        self.proc = subprocess.Popen(self.sc["daemon"], stdout=self.log, stderr=self.log)
        self.ls.settimeout(15)
        self.s, _ = self.ls.accept()
        for bid, b in self.blobs.items():
            self.s.send(msg_open(bid, b["size"], b["digest_raw"], b["cache"]))

    def recv_done(self, timeout):
        self.s.settimeout(timeout)
        try:
            m = self.s.recv(8192)
        except socket.timeout:
            return None
        if not m:
            return "eof"
        if len(m) != 56:
            self.err("DONE of %d bytes" % len(m))
            return "bad"
        magic, ver, op, size, res, rid, bid, off, ln, status, res2 = struct.unpack("<IHHIIQQQQiI", m)
        if (magic, ver, op, size, res, rid, status, res2) == (MAGIC, VERSION, HAVE, 56, 0, 0, 0, 0):
            self.haves.append((bid, off, ln))
            self.events.append(("have", bid, off, ln))
            return "have"
        if op == INVALIDATE:
            # checked as the kernel does: header, id 0, status 0, an OPENed blob, an aligned range in it
            size_ok = bid in self.blobs and ln > 0 and off % GRAN == 0 and \
                off + ln <= self.blobs[bid]["size"] and \
                ((off + ln) % GRAN == 0 or off + ln == self.blobs[bid]["size"])
            if (magic, ver, size, res, rid, status, res2) != (MAGIC, VERSION, 56, 0, 0, 0, 0) or not size_ok:
                self.err("bad INVALIDATE: %r" % ((magic, ver, op, size, res, rid, bid, off, ln, status, res2),))
            self.invalidates.append((bid, off, ln))
            self.events.append(("invalidate", bid, off, ln))
            return "invalidate"
        if (magic, ver, op, size, res, res2) != (MAGIC, VERSION, DONE, 56, 0, 0):
            self.err("bad DONE header id %d: %r" % (rid, (magic, ver, op, size, res, res2)))
        if rid in self.answered:
            self.err("id %d answered twice" % rid)
            return "dup"
        if rid not in self.pending:
            self.err("DONE for unknown id %d" % rid)
            return "bad"
        rb, roff, rlen = self.pending.pop(rid)
        d = dict(id=rid, blob=bid, off=off, len=ln, status=status, t=time.time())
        self.events.append(("done", bid, off, ln) if status == 0 else ("fail", bid, off, ln))
        self.answered[rid] = d
        if bid != rb:
            self.err("id %d: blob %d, asked %d" % (rid, bid, rb))
        if status == 0:
            size = self.blobs[rb]["size"]
            if off % GRAN or (off + ln) % GRAN and off + ln != size or off + ln > size:
                self.err("id %d: unaligned/outside range [%d,+%d)" % (rid, off, ln))
            if off > roff or off + ln < roff + rlen:
                self.err("id %d: range [%d,+%d) does not cover [%d,+%d)" % (rid, off, ln, roff, rlen))
        elif not (-4095 <= status <= -1):
            self.err("id %d: status %d" % (rid, status))
        return d

    def drain_for(self, secs):
        """sleep, reading what the daemon sends meanwhile (HAVE, INVALIDATE, late DONEs)"""
        end = time.time() + secs
        while True:
            left = end - time.time()
            if left <= 0:
                return
            if self.recv_done(left) == "eof":
                time.sleep(max(end - time.time(), 0))
                return

    def check_bytes(self, d):
        b = self.blobs[d["blob"]]
        if b["bytes"] is None:
            return
        with open(b["cache"], "rb") as f:
            f.seek(d["off"])
            got = f.read(d["len"])
        if got != b["bytes"][d["off"]:d["off"] + d["len"]]:
            self.err("id %d: cache bytes [%d,+%d) differ from the blob" % (d["id"], d["off"], d["len"]))

    def step_read(self, st):
        ids = []
        for _ in range(st.get("repeat", 1)):
            for r in st["read"]:
                rid = self.next_id
                self.next_id += 1
                bid, off, ln = r[0], r[1], r[2]
                flags = r[3] if len(r) > 3 else 0
                self.pending[rid] = (bid, off, ln)
                self.s.send(msg_read(rid, bid, off, ln, flags))
                ids.append(rid)
        t0 = time.time()
        res = []
        if st.get("wait", True) is False:
            return dict(ids=ids)
        deadline = t0 + st.get("timeout", self.sc.get("timeout", 30))
        while any(i in self.pending for i in ids):
            left = deadline - time.time()
            d = self.recv_done(max(left, 0.01)) if left > 0 else None
            if d is None:
                self.err("step timed out: %d ids unanswered" % sum(i in self.pending for i in ids))
                break
            if d == "eof":
                self.err("daemon closed the channel")
                break
        for i in ids:
            d = self.answered.get(i)
            if not d:
                continue
            res.append(d)
            exp = st.get("expect", "ok")
            if exp == "ok" and d["status"] != 0:
                self.err("id %d: status %d, expected 0" % (i, d["status"]))
            if exp == "err" and d["status"] == 0:
                self.err("id %d: status 0, expected an error" % i)
            if d["status"] == 0 and st.get("check_bytes", True):
                self.check_bytes(d)
        return dict(dones=[dict(off=d["off"], len=d["len"], status=d["status"],
                                ms=int((d["t"] - t0) * 1000)) for d in res],
                    ms=int((time.time() - t0) * 1000))

    def step_sigterm(self, st):
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + st.get("timeout", 20)
        while self.pending and time.time() < deadline:
            d = self.recv_done(0.2)
            if d == "eof":
                break
        try:
            rc = self.proc.wait(timeout=max(deadline - time.time(), 1))
        except subprocess.TimeoutExpired:
            self.err("daemon did not exit after SIGTERM")
            self.proc.kill()
            rc = self.proc.wait()
        # anything the daemon wrote just before exiting
        while True:
            d = self.recv_done(0.1)
            if d in (None, "eof"):
                break
        if self.pending:
            self.err("%d ids unanswered after SIGTERM" % len(self.pending))
        if rc != 0:
            self.err("daemon exit status %d after SIGTERM" % rc)
        self.stopped = True
        return dict(rc=rc, failed=sum(1 for d in self.answered.values() if d["status"]),
                    answered=len(self.answered))

    def run(self):
        out = dict(steps=[])
        self.stopped = False
        self.start()
        for st in self.sc["steps"]:
            if "read" in st:
                out["steps"].append(self.step_read(st))
            elif "sleep" in st:
                self.drain_for(st["sleep"])
                out["steps"].append({})
            elif "close" in st:
                self.s.send(msg_close(st["close"]))
                out["steps"].append({})
            elif "sigterm" in st:
                out["steps"].append(self.step_sigterm(st))
            elif "exec" in st:
                # a shell command at this point of the script (the exporter test scrapes here)
                p = subprocess.run(st["exec"], shell=True, stdout=subprocess.PIPE, text=True)
                out["steps"].append(dict(rc=p.returncode, out=p.stdout))
            elif "alive" in st:
                out["steps"].append(dict(alive=self.proc.poll() is None))
                if self.proc.poll() is not None:
                    self.err("daemon died (status %r)" % self.proc.poll())
        if not self.stopped:
            out["steps"].append(self.step_sigterm({}))
        out["errors"] = self.errors
        out["haves"] = self.haves
        out["invalidates"] = self.invalidates
        out["events"] = self.events
        out["flags"] = {str(bid): meta_flags(b["cache"]) if os.path.exists(b["cache"] + ".meta") else None
                        for bid, b in self.blobs.items()}
        out["meta"] = {str(bid): meta_bits(b["cache"], b["size"]) if os.path.exists(b["cache"] + ".meta") else []
                       for bid, b in self.blobs.items()}
        return out

def main():
    if sys.argv[1] == "mkentry":
        mkentry(sys.argv[2], sys.argv[3], sys.argv[4])
        return 0
    if sys.argv[1] == "mkgunzip":  # mkgunzip DIR URL GZFILE TARFILE GZINDEX
        mkentry(sys.argv[2], sys.argv[3], sys.argv[4], flags=2,
                size=os.path.getsize(sys.argv[5]), index=sys.argv[6])
        return 0
    if sys.argv[1] == "set-download":  # set-download CACHE ENABLE [DELAY EXTRA MBPS TRIES BS]
        set_download(sys.argv[2], sys.argv[3] == "1", *[int(v) for v in sys.argv[4:9]])
        return 0
    if sys.argv[1] == "run":
        sc = json.load(open(sys.argv[2]))
        st = Stub(sc)
        try:
            out = st.run()
        except Exception as e:
            st.err("stub exception: %r" % e)
            out = dict(errors=st.errors)
            try:
                st.proc.kill()
            except Exception:
                pass
        json.dump(out, sys.stdout)
        print()
        return 1 if out["errors"] else 0
    print(__doc__)
    return 2

if __name__ == "__main__":
    sys.exit(main())
