// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * A window onto [off, off + len) of another io: how the tar payload is
 * handed to the ZFile and LSMT readers without them knowing about tar.
 */
#include "obd.h"

static int obd_window_read(struct obd_io *io, void *buf, size_t len, u64 off)
{
	struct obd_window *w = (struct obd_window *)((char *)io -
				__builtin_offsetof(struct obd_window, io));

	/* Callers normally go through obd_io_read(); re-check for direct use. */
	if (off > io->size || len > io->size - off)
		return -EIO;
	if (w->off > (u64)-1 - off)
		return -EIO;
	return obd_io_read(w->base, buf, len, w->off + off);
}

void obd_window_init(struct obd_window *w, struct obd_io *base, u64 off, u64 len)
{
	w->base = base;
	w->off = off;
	w->io.read = obd_window_read;
	w->io.size = len;
	w->io.name = base->name;
}
