// SPDX-License-Identifier: GPL-2.0-only
/*
 * The target of a TurboOCI layer (cli_target.h): a local file, or a
 * remote blob's cache entry read through cli_remote.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cli.h"
#include "cli_remote.h"
#include "cli_target.h"

static int plain_read(struct obd_io *io, void *buf, size_t len, u64 off)
{
	struct cli_target *t = (struct cli_target *)io;

	return obd_io_read(t->src, buf, len, off);
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
	n = obd_gzindex_extract(&t->gi, t->src, t->cache, want, start, &err);
	if (n < 0) {
		cli_err(t->io.name, "%s", err.msg);
		return (int)n;
	}
	if ((size_t)n != want) {
		cli_err(t->io.name, "gzip stream ends at %llu, its index says %llu",
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

/* t->src set: a plain tar, or (gzidx) a gzip stream read through its index. */
static int target_setup(struct cli_target *t, const char *gzidx)
{
	struct obd_err err = { "" };
	int rc;

	t->idx.fd = -1;
	t->io.name = t->src->name;
	if (!gzidx) {
		t->io.read = plain_read;
		t->io.size = t->src->size;
		return 0;
	}
	t->gz = true;
	rc = obd_file_io_open(&t->idx, gzidx, &err);
	if (!rc)
		rc = obd_gzindex_load(&t->idx.io, t->src->size, &t->gi, &err);
	if (rc) {
		cli_err(gzidx, "gzip index of %s: %s", t->src->name, err.msg);
		if (t->idx.io.name)
			obd_file_io_close(&t->idx);
		t->gz = false;
		return rc;
	}
	t->cache = malloc(CLI_TARGET_WIN);
	if (!t->cache)
		return -ENOMEM;
	t->io.read = gz_read;
	t->io.size = t->gi.usize;
	return 0;
}

int cli_target_open(struct cli_target **out, const char *target, const char *gzidx)
{
	struct cli_target *t = calloc(1, sizeof(*t));
	struct obd_err err = { "" };
	int rc;

	if (!t)
		return -ENOMEM;
	t->file.fd = -1;
	rc = obd_file_io_open(&t->file, target, &err);
	if (rc) {
		cli_err_core(target, rc, &err);
		free(t);
		return rc;
	}
	t->file_open = true;
	t->src = &t->file.io;
	rc = target_setup(t, gzidx);
	if (rc) {
		cli_target_close(t);
		return rc;
	}
	*out = t;
	return 0;
}

int cli_target_open_remote(struct cli_target **out, struct cli_remote *r, const char *gzidx)
{
	struct cli_target *t = calloc(1, sizeof(*t));
	int rc;

	if (!t) {
		cli_remote_close(r);
		return -ENOMEM;
	}
	t->file.fd = -1;
	t->remote = r;
	t->src = cli_remote_io(r);
	rc = target_setup(t, gzidx);
	if (rc) {
		cli_target_close(t);
		return rc;
	}
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
	if (t->file_open)
		obd_file_io_close(&t->file);
	if (t->remote)
		cli_remote_close(t->remote);
	free(t->cache);
	free(t);
}

/* ------------------------------------------------------------------------
 * obd check: the gzip index against its target
 * ------------------------------------------------------------------------ */
#define VERIFY_OUT	(256u << 10)
#define VERIFY_PROBE	4096u

struct verify {
	struct cli_target *t;
	u8 *probe;		/* the index's bytes at the pending entry */
	u64 j;			/* the pending entry */
	bool have;		/* probe holds entry j's bytes */
	char *msg;
	size_t cap;
};

static u64 probe_end(const struct cli_target *t, u64 j)
{
	u64 end = t->gi.e[j].de_pos + VERIFY_PROBE;

	return end < t->gi.usize ? end : t->gi.usize;
}

/* Compare the stream bytes [pos, pos + n) with what the index decodes there. */
static int verify_chunk(struct verify *v, const u8 *buf, u64 pos, u64 n)
{
	struct cli_target *t = v->t;
	struct obd_err err = { "" };

	while (v->j < t->gi.n) {
		const struct obd_gzidx_entry *e = &t->gi.e[v->j];
		u64 end = probe_end(t, v->j), a, b;

		if (e->de_pos >= pos + n)
			return 0;
		if (!v->have) {
			ssize_t r = obd_gzindex_extract(&t->gi, t->src, v->probe,
							(size_t)(end - e->de_pos), e->de_pos, &err);

			if (r != (ssize_t)(end - e->de_pos)) {
				snprintf(v->msg, v->cap, "index entry %llu (output %llu, input %llu): does not decode: %s",
					 (unsigned long long)v->j, (unsigned long long)e->de_pos,
					 (unsigned long long)e->en_pos, r < 0 ? err.msg : "short");
				return -EFSCORRUPTED;
			}
			v->have = true;
		}
		a = e->de_pos > pos ? e->de_pos : pos;
		b = end < pos + n ? end : pos + n;
		if (a < b && memcmp(buf + (a - pos), v->probe + (a - e->de_pos), (size_t)(b - a))) {
			snprintf(v->msg, v->cap, "index entry %llu (output %llu, input %llu): decodes to other bytes than the gzip stream",
				 (unsigned long long)v->j, (unsigned long long)e->de_pos,
				 (unsigned long long)e->en_pos);
			return -EFSCORRUPTED;
		}
		if (end > pos + n)
			return 0;
		v->j++;
		v->have = false;
	}
	return 0;
}

int cli_target_verify(struct cli_target *t, char *msg, size_t cap)
{
	struct verify v = { .t = t, .msg = msg, .cap = cap };
	u8 *in = malloc(VERIFY_OUT), *out = malloc(VERIFY_OUT);
	u64 in_off = 0, pos = 0;
	z_stream z = { 0 };
	int rc = 0, zr = Z_OK;

	msg[0] = 0;
	v.probe = malloc(VERIFY_PROBE);
	if (!t->gz)
		goto out;
	if (!in || !out || !v.probe || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
		rc = -ENOMEM;
		goto out;
	}
	while (!rc && zr != Z_STREAM_END) {
		if (!z.avail_in) {
			size_t n = t->src->size - in_off < VERIFY_OUT ?
				   (size_t)(t->src->size - in_off) : VERIFY_OUT;

			if (!n) {
				snprintf(msg, cap, "the gzip stream is truncated at %llu",
					 (unsigned long long)in_off);
				rc = -EFSCORRUPTED;
				break;
			}
			rc = obd_io_read(t->src, in, n, in_off);
			if (rc) {
				snprintf(msg, cap, "read at %llu: %s", (unsigned long long)in_off,
					 strerror(-rc));
				break;
			}
			in_off += n;
			z.next_in = in;
			z.avail_in = (uInt)n;
		}
		z.next_out = out;
		z.avail_out = VERIFY_OUT;
		zr = inflate(&z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END) {
			snprintf(msg, cap, "gzip stream at output %llu: %s", (unsigned long long)pos,
				 z.msg ? z.msg : "corrupt");
			rc = -EFSCORRUPTED;
			break;
		}
		rc = verify_chunk(&v, out, pos, VERIFY_OUT - z.avail_out);
		pos += VERIFY_OUT - z.avail_out;
	}
	if (!rc && (z.avail_in || in_off != t->src->size)) {
		snprintf(msg, cap, "data after the gzip member at %llu",
			 (unsigned long long)(in_off - z.avail_in));
		rc = -EFSCORRUPTED;
	}
	if (!rc && pos != t->gi.usize) {
		snprintf(msg, cap, "the gzip stream holds %llu bytes, its index says %llu",
			 (unsigned long long)pos, (unsigned long long)t->gi.usize);
		rc = -EFSCORRUPTED;
	}
	if (!rc && v.j != t->gi.n) {
		snprintf(msg, cap, "index entry %llu is past the end of the stream",
			 (unsigned long long)v.j);
		rc = -EFSCORRUPTED;
	}
	inflateEnd(&z);
out:
	free(in);
	free(out);
	free(v.probe);
	return rc;
}
