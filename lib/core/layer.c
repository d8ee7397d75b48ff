// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * Opening one read-only layer: tar -> ZFile -> LSMT, each wrapping
 * detected from the bytes (spec 4.2).
 */
#include "obd.h"

/*
 * Prefix the message already in err with the wrapping that failed, so a
 * failure deep inside a tar-wrapped ZFile still says where it happened.
 * Done in place: no second 256-byte buffer on the kernel stack.
 */
static int obd_layer_blame(struct obd_err *err, int ret, const char *what)
{
	size_t p, len, room;

	if (!err)
		return ret;
	p = strlen(what);
	len = strlen(err->msg);
	room = sizeof(err->msg) - 1;
	if (p >= room)
		return ret;
	if (len > room - p)
		len = room - p;
	memmove(err->msg + p, err->msg, len);
	memcpy(err->msg, what, p);
	err->msg[p + len] = 0;
	return ret;
}

static int obd_layer_open_any(struct obd_layer *l, struct obd_io *raw, struct obd_codec *codec,
			      bool warp, u64 target_size, struct obd_err *err)
{
	struct obd_io *src;
	int ret;

	memset(l, 0, sizeof(*l));
	l->raw = raw;

	ret = obd_tar_probe(raw, &l->tar, err);
	if (ret < 0)
		return obd_layer_blame(err, ret, "layer tar wrapper: ");
	if (ret == 1) {
		l->wrap |= OBD_WRAP_TAR;
		obd_window_init(&l->window, raw, l->tar.payload_off, l->tar.payload_size);
	} else {
		obd_window_init(&l->window, raw, 0, raw->size);
	}
	src = &l->window.io;

	ret = obd_zfile_probe(src, err);
	if (ret < 0)
		return obd_layer_blame(err, ret, (l->wrap & OBD_WRAP_TAR) ?
				       "layer ZFile header (in tar): " : "layer ZFile header: ");
	if (ret == 1) {
		if (!codec)
			return obd_errf(err, EINVAL, "%s: layer is ZFile-compressed but no codec was given",
					raw->name);
		ret = obd_zfile_open(&l->zf, src, codec, err);
		if (ret < 0)
			return obd_layer_blame(err, ret, (l->wrap & OBD_WRAP_TAR) ?
					       "layer ZFile (in tar): " : "layer ZFile: ");
		l->wrap |= OBD_WRAP_ZFILE;
		l->lsmt_io = &l->zf.io;
	} else {
		l->lsmt_io = src;
	}

	if (warp)
		ret = obd_lsmt_open_warp(l->lsmt_io, &l->info, &l->maps, &l->nmaps,
					 target_size, err);
	else
		ret = obd_lsmt_open_ro(l->lsmt_io, &l->info, &l->maps, &l->nmaps, err);
	if (ret < 0) {
		static const char *const where[4] = {
			"layer LSMT: ",
			"layer LSMT (in tar): ",
			"layer LSMT (in ZFile): ",
			"layer LSMT (in ZFile in tar): ",
		};

		obd_layer_blame(err, ret, where[l->wrap & 3]);
		goto out_close_zfile;
	}
	l->warp = warp;
	l->target_size = target_size;
	return 0;

out_close_zfile:
	if (l->wrap & OBD_WRAP_ZFILE)
		obd_zfile_close(&l->zf);
	l->wrap = 0;
	return ret;
}

int obd_layer_open(struct obd_layer *l, struct obd_io *raw,
		   struct obd_codec *codec, struct obd_err *err)
{
	return obd_layer_open_any(l, raw, codec, false, 0, err);
}

int obd_layer_open_warp(struct obd_layer *l, struct obd_io *raw, struct obd_codec *codec,
			u64 target_size, struct obd_err *err)
{
	return obd_layer_open_any(l, raw, codec, true, target_size, err);
}

void obd_layer_close(struct obd_layer *l)
{
	obd_free(l->maps);
	l->maps = NULL;
	l->nmaps = 0;
	if (l->wrap & OBD_WRAP_ZFILE)
		obd_zfile_close(&l->zf);
	l->wrap = 0;
}

u64 obd_stack_vsize(const struct obd_layer *const *layers, unsigned int n)
{
	unsigned int i;

	for (i = n; i-- > 0;)
		if (layers[i] && layers[i]->info.virtual_size)
			return layers[i]->info.virtual_size;
	return 0;
}

int obd_stack_vsize_check(u64 vsize, struct obd_err *err)
{
	if (!vsize || vsize % OBD_SECTOR_SIZE)
		return obd_errf(err, -EFSCORRUPTED,
				"stack virtual size %llu bytes: expected a non-zero multiple of 512",
				(unsigned long long)vsize);
	return 0;
}
