#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""fanotify_hold.py PATH LOG: a FAN_ACCESS_PERM listener that never answers.

Marks the whole file system holding PATH (FAN_MARK_FILESYSTEM) for
FAN_ACCESS_PERM in a FAN_CLASS_CONTENT group, as fapolicyd or a virus
scanner does, writes "ready" to LOG, then reads the permission events and
logs "pid <pid> mask <hex>" for each, and never writes a response: every
read of the file system that raises the event (vfs_read, vfs_iter_read:
rw_verify_area's permission hook) waits until this process exits, when
the kernel allows the events left. A read that goes straight to
f_op->read_iter (loop, the module's workers) raises nothing.

Exit status 3 if fanotify_init fails with ENOSYS (a kernel without
CONFIG_FANOTIFY), 2 on any other failure to set up (EINVAL: no
CONFIG_FANOTIFY_ACCESS_PERMISSIONS), with the reason on stderr.
"""
import ctypes
import errno
import os
import struct
import sys

FAN_CLOEXEC = 0x1
FAN_CLASS_CONTENT = 0x4
FAN_MARK_ADD = 0x1
FAN_MARK_FILESYSTEM = 0x100
FAN_ACCESS_PERM = 0x20000
AT_FDCWD = -100
# struct fanotify_event_metadata: event_len, vers, reserved, metadata_len, mask, fd, pid
META = struct.Struct("=IBBHQii")


def main():
    path, log = sys.argv[1], sys.argv[2]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
    libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64,
                                   ctypes.c_int, ctypes.c_char_p]
    fd = libc.fanotify_init(FAN_CLOEXEC | FAN_CLASS_CONTENT, os.O_RDONLY | os.O_LARGEFILE)
    if fd < 0:
        e = ctypes.get_errno()
        print("fanotify_init(FAN_CLASS_CONTENT): %s (kernel without"
              " CONFIG_FANOTIFY_ACCESS_PERMISSIONS?)" % os.strerror(e), file=sys.stderr)
        sys.exit(3 if e == errno.ENOSYS else 2)
    if libc.fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_ACCESS_PERM,
                          AT_FDCWD, path.encode()) < 0:
        print("fanotify_mark(FAN_MARK_FILESYSTEM, FAN_ACCESS_PERM, %s): %s"
              % (path, os.strerror(ctypes.get_errno())), file=sys.stderr)
        sys.exit(2)
    with open(log, "a") as f:
        f.write("ready\n")
        f.flush()
        while True:
            buf = os.read(fd, 4096)
            off = 0
            while off + META.size <= len(buf):
                ev_len, _, _, _, mask, efd, pid = META.unpack_from(buf, off)
                f.write("pid %d mask %#x\n" % (pid, mask))
                f.flush()
                # the event fd only: closing it answers nothing
                if efd >= 0:
                    os.close(efd)
                off += ev_len


if __name__ == "__main__":
    main()
