#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""oci_bomb.py DIR TAG MIB: an OCI image layout at DIR whose one gzip layer is a
tar holding one file of MIB MiB of zeros (a decompression bomb: the layer blob
is about 1/1000 of that). The deflate stream is one 1 MiB unit compressed
once and repeated (each unit ends in a full flush, so the compressor starts
afresh and every unit is the same bytes): built in a moment even under TCG."""
import gzip
import hashlib
import json
import os
import struct
import sys
import tarfile
import time
import zlib

MIB = 1 << 20


def blob(d, data):
    dg = hashlib.sha256(data).hexdigest()
    with open(os.path.join(d, "blobs", "sha256", dg), "wb") as f:
        f.write(data)
    return "sha256:" + dg, len(data)


def main():
    d, tag, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(os.path.join(d, "blobs", "sha256"), exist_ok=True)
    ti = tarfile.TarInfo("zeros")
    ti.size = mib * MIB
    ti.mtime = int(time.time())
    head = ti.tobuf(format=tarfile.GNU_FORMAT)
    # the tar: head, the file's bytes (whole blocks), two zero blocks
    tail = 1024
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    parts = [c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)]
    zero = bytes(MIB)
    unit = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)
    assert unit == again, "deflate units differ"
    parts.append(unit * mib)
    parts.append(c.compress(bytes(tail)) + c.flush(zlib.Z_FINISH))
    crc, sha = zlib.crc32(head), hashlib.sha256(head)
    for _ in range(mib):
        crc = zlib.crc32(zero, crc)
        sha.update(zero)
    crc = zlib.crc32(bytes(tail), crc)
    sha.update(bytes(tail))
    total = len(head) + mib * MIB + tail
    gz = (b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x00\xff" + b"".join(parts) +
          struct.pack("<II", crc & 0xffffffff, total & 0xffffffff))
    if mib <= 4:
        assert len(gzip.decompress(gz)) == total
    ldg, lsz = blob(d, gz)
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha.hexdigest()]},
                      "config": {}}).encode()
    cdg, csz = blob(d, cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": cdg, "size": csz},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                  "digest": ldg, "size": lsz}]}).encode()
    mdg, msz = blob(d, man)
    with open(os.path.join(d, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(d, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdg, "size": msz,
             "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
    print(lsz)


if __name__ == "__main__":
    main()
