/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * overlaybd tar wrapper writer (spec 4.1), userspace only. Output is
 * byte-identical to the reference (libtar formatting):
 *   [0,512)     pax 'x' header "overlaybd.pax", size = pax record length
 *   [512,1024)  "<len> size=<payload>\n"
 *   [1024,1536) ustar '0' header "overlaybd.commit", uid/gid 0, root/root,
 *               mode = output file's st_mode, mtime 0, size field 0
 *   payload, zero padding to 512, two zero blocks.
 *
 * Usage: obd_tar_write_begin(fd) (placeholder prefix), write the payload at
 * OBD_TAR_PAX_PAYLOAD (e.g. obd_zfile_writer_init(..., base_offset =
 * OBD_TAR_PAX_PAYLOAD, ...)), then obd_tar_write_finish(fd, payload_size).
 */
#ifndef OBD_TAR_WRITE_H
#define OBD_TAR_WRITE_H

#include "obd.h"

/* The 1536-byte prefix for a payload of payload_size bytes; mode is the
 * full st_mode (the reference writes 0100644 as "100644 "). */
void obd_tar_build_prefix(u8 out[OBD_TAR_PAX_PAYLOAD], u64 payload_size, u32 mode);

/*
 * Write the in-progress prefix at offset 0: zero pax blocks and a block-2
 * "new tar" marker (magic "xxtar", version "xx", name "overlaybd.new"), as
 * the reference does, so a half-written file is never taken for a tar.
 */
int obd_tar_write_begin(int fd, struct obd_err *err);

/*
 * Write the final prefix (mode from fstat(fd)), the zero padding and the
 * two end-of-archive blocks after the payload. Returns the total file
 * length or -errno.
 */
s64 obd_tar_write_finish(int fd, u64 payload_size, struct obd_err *err);

#endif /* OBD_TAR_WRITE_H */
