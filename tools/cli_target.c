// SPDX-License-Identifier: GPL-2.0-only
/*
 * The local target of a TurboOCI layer (cli_target.h).
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_target.h"

static int plain_read(struct obd_io *io, void *buf, size_t len, u64 off)
{
	struct cli_target *t = (struct cli_target *)io;

	return obd_io_read(&t->file.io, buf, len, off);
}

/* Decode the 1 MiB interval holding off into the cache. */
static int fill(struct cli_target *t, u64 off)
{
	struct obd_err err = { "" };
	u64 start = off - off % CLI_TARGET_WIN;
	size_t want = t->gi.usize - start < CLI_TARGET_WIN ? (size_t)(t->gi.usize - start) :
			 CLI_TARGET_WIN;
	ssize_t n;

	t->cache_len = 0;
	n = obd_gzindex_extract(&t->gi, &t->file.io, t->cache, want, start, &err);
	if (n < 0) {
		cli_err(t->file.io.name, "%s", err.msg);
		return (int)n;
	}
	if ((size_t)n != want) {
		cli_err(t->file.io.name, "gzip stream ends at %llu, its index says %llu",
			(unsigned long long)(start + (u64)n), (unsigned long long)t->gi.usize);
		return -EFSCORRUPTED;
	}
	t->cache_off = start;
	t->cache_len = want;
	t->decodes++;
	return 0;
}

static int gz_read(struct obd_io *io, void *buf, size_t len, u64 off)
{
	struct cli_target *t = (struct cli_target *)io;
	u8 *dst = buf;
	int rc;

	if (off > t->gi.usize || len > t->gi.usize - off)
		return -EINVAL;
	while (len) {
		size_t c;

		if (off < t->cache_off || off >= t->cache_off + t->cache_len) {
			rc = fill(t, off);
			if (rc)
				return rc;
		}
		c = (size_t)(t->cache_off + t->cache_len - off);
		if (c > len)
			c = len;
		memcpy(dst, t->cache + (off - t->cache_off), c);
		dst += c;
		off += c;
		len -= c;
	}
	return 0;
}

int cli_target_open(struct cli_target **out, const char *target, const char *gzidx)
{
	struct cli_target *t = calloc(1, sizeof(*t));
	struct obd_err err = { "" };
	int rc;

	if (!t)
		return -ENOMEM;
	t->file.fd = t->idx.fd = -1;
	rc = obd_file_io_open(&t->file, target, &err);
	if (rc) {
		cli_err_core(target, rc, &err);
		free(t);
		return rc;
	}
	t->io.name = t->file.io.name;
	if (!gzidx) {
		t->io.read = plain_read;
		t->io.size = t->file.io.size;
		*out = t;
		return 0;
	}
	t->gz = true;
	rc = obd_file_io_open(&t->idx, gzidx, &err);
	if (!rc)
		rc = obd_gzindex_load(&t->idx.io, t->file.io.size, &t->gi, &err);
	if (rc) {
		cli_err(gzidx, "gzip index of %s: %s", target, err.msg);
		if (t->idx.io.name)
			obd_file_io_close(&t->idx);
		obd_file_io_close(&t->file);
		free(t);
		return rc;
	}
	t->cache = malloc(CLI_TARGET_WIN);
	if (!t->cache) {
		cli_target_close(t);
		return -ENOMEM;
	}
	t->io.read = gz_read;
	t->io.size = t->gi.usize;
	*out = t;
	return 0;
}

void cli_target_close(struct cli_target *t)
{
	if (!t)
		return;
	if (t->gz) {
		obd_gzindex_free(&t->gi);
		obd_file_io_close(&t->idx);
	}
	obd_file_io_close(&t->file);
	free(t->cache);
	free(t);
}
