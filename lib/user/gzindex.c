// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * TurboOCI's gzip index (gzindex.h; ../shared/spec/turbo-oci.md section 1).
 * Userspace only: the kernel never sees gzip (the daemon inflates into a
 * decompressed cache entry, spec section 7, option D).
 *
 * File: header (333 bytes, packed, little-endian) | windows | entry table.
 * A window is the 32 KiB of output before its entry's de_pos; with algo 1
 * each window and the table are one zlib stream each (deflateInit at level
 * 6), which is exactly what compress2() writes.
 */
#ifndef __KERNEL__
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#include "gzindex.h"
#include "env_user.h"

#define GZ_IN_CHUNK	65536u	/* compressed bytes read at a time */
/* obd_gzindex_extract's scratch buffer holds a window first */
_Static_assert(GZ_IN_CHUNK >= OBD_GZIDX_WINSIZE, "GZ_IN_CHUNK below a window");

/* Header field offsets (spec 1.2). */
enum {
	H_MAGIC = 0, H_MAJOR = 8, H_MINOR = 9, H_ALGO = 10, H_LEVEL = 11, H_FLAG = 12,
	H_SPAN = 13, H_WINDOW = 17, H_ENTRY_SIZE = 21, H_NUM = 25, H_GZIP_SIZE = 33,
	H_FILE_SIZE = 41, H_USIZE = 49, H_RESERVE = 57, H_INDEX_START = 313,
	H_INDEX_LEN = 321, H_CRC = 329,
};

/* One zlib stream of exactly want bytes (a window, the table). */
static int zlib_exact(const u8 *in, size_t in_len, u8 *out, size_t want)
{
	uLongf got = want;

	if (want && uncompress(out, &got, in, in_len) != Z_OK)
		return -EFSCORRUPTED;
	return got == want ? 0 : -EFSCORRUPTED;
}

/* ------------------------------------------------------------------------
 * Loading
 */
/* The header, read and its magic and crc checked. */
static int read_header(struct obd_io *io, u8 h[OBD_GZIDX_HDR_SIZE], struct obd_err *err)
{
	u32 crc, want;
	int rc;

	if (io->size < OBD_GZIDX_HDR_SIZE)
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index of %llu bytes, shorter than its header",
				io->name, (unsigned long long)io->size);
	rc = obd_io_read(io, h, OBD_GZIDX_HDR_SIZE, 0);
	if (rc)
		return obd_errf(err, rc, "%s: gzip index header: read: %s", io->name, strerror(-rc));
	if (memcmp(h + H_MAGIC, OBD_GZIDX_MAGIC, 7))
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index magic: not \"ddgzidx\"", io->name);
	crc = obd_get_le32(h + H_CRC);
	want = obd_crc32c(0, h, OBD_GZIDX_CRC_LEN);
	if (crc != want)
		return obd_errf(err, -EFSBADCRC, "%s: gzip index header crc 0x%08x, computed 0x%08x",
				io->name, crc, want);
	return 0;
}

/* The rest of a header read_header passed. */
static int check_header(struct obd_io *io, const u8 *h, u64 gzip_size, struct obd_gzindex *gi,
			u64 *index_start, u64 *index_len, struct obd_err *err)
{
	u64 n = obd_get_le64(h + H_NUM), fsize = obd_get_le64(h + H_FILE_SIZE);

	if (h[H_MAJOR] != 1)
		return obd_errf(err, -EOPNOTSUPP, "%s: gzip index major_version %u (1 known)",
				io->name, h[H_MAJOR]);
	if (h[H_ALGO] > OBD_GZIDX_ALGO_ZLIB)
		return obd_errf(err, -EOPNOTSUPP, "%s: gzip index dict_compress_algo %u (0 or 1)",
				io->name, h[H_ALGO]);
	if (obd_get_le32(h + H_ENTRY_SIZE) != OBD_GZIDX_ENTRY_SIZE)
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index index_size %llu, want 29", io->name,
				(unsigned long long)obd_get_le32(h + H_ENTRY_SIZE));
	if (fsize != io->size)
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index index_file_size %llu, the file has %llu",
				io->name, (unsigned long long)fsize, (unsigned long long)io->size);
	if (obd_get_le64(h + H_GZIP_SIZE) != gzip_size)
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index gzip_file_size %llu, the blob has %llu",
				io->name, (unsigned long long)obd_get_le64(h + H_GZIP_SIZE),
				(unsigned long long)gzip_size);
	*index_start = obd_get_le64(h + H_INDEX_START);
	*index_len = obd_get_le64(h + H_INDEX_LEN);
	if (*index_start < OBD_GZIDX_HDR_SIZE || *index_start > fsize ||
	    *index_len != fsize - *index_start)
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index index_start %llu + index_area_len %llu, file size %llu",
				io->name, (unsigned long long)*index_start,
				(unsigned long long)*index_len, (unsigned long long)fsize);
	/* every entry has a window of at least one stored byte before the table */
	if (!n || n > *index_start - OBD_GZIDX_HDR_SIZE || n > (u64)INT32_MAX / OBD_GZIDX_ENTRY_SIZE)
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index index_num %llu (%llu bytes of windows)",
				io->name, (unsigned long long)n,
				(unsigned long long)(*index_start - OBD_GZIDX_HDR_SIZE));
	if (h[H_ALGO] == OBD_GZIDX_ALGO_NONE && *index_len != n * OBD_GZIDX_ENTRY_SIZE)
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index index_area_len %llu, want %llu (raw table)",
				io->name, (unsigned long long)*index_len,
				(unsigned long long)(n * OBD_GZIDX_ENTRY_SIZE));
	gi->io = io;
	gi->gzip_size = gzip_size;
	gi->usize = obd_get_le64(h + H_USIZE);
	gi->span = obd_get_le32(h + H_SPAN);
	gi->algo = h[H_ALGO];
	gi->n = n;
	return 0;
}

static int check_entry(const struct obd_gzindex *gi, u64 i, const struct obd_gzidx_entry *e,
		       u64 index_start, struct obd_err *err)
{
	const char *name = gi->io->name;
	u32 max_win = gi->algo ? (u32)compressBound(OBD_GZIDX_WINSIZE) : OBD_GZIDX_WINSIZE;

	if (i == 0 && e->de_pos)
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index entry 0: de_pos %llu, want 0",
				name, (unsigned long long)e->de_pos);
	/*
	 * Equal de_pos is legal: a sync flush ends a block and then an empty
	 * stored block at the same output offset, and the selection rule can
	 * take both (the reference's reader, upper_bound - 1, copes too).
	 */
	if (i && (e->de_pos < e[-1].de_pos || e->en_pos <= e[-1].en_pos))
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index entry %llu: de_pos %llu en_pos %llu not past entry %llu's (%llu, %llu)",
				name, (unsigned long long)i, (unsigned long long)e->de_pos,
				(unsigned long long)e->en_pos, (unsigned long long)(i - 1),
				(unsigned long long)e[-1].de_pos, (unsigned long long)e[-1].en_pos);
	if (e->de_pos > gi->usize)
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index entry %llu: de_pos %llu past uncompress_file_size %llu",
				name, (unsigned long long)i, (unsigned long long)e->de_pos,
				(unsigned long long)gi->usize);
	if (e->bits > 7 || e->en_pos > gi->gzip_size || (e->bits && !e->en_pos))
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index entry %llu: en_pos %llu bits %u (blob %llu bytes)",
				name, (unsigned long long)i, (unsigned long long)e->en_pos, e->bits,
				(unsigned long long)gi->gzip_size);
	if (!e->win_len || e->win_len > max_win || (!gi->algo && e->win_len != OBD_GZIDX_WINSIZE) ||
	    e->win_pos < OBD_GZIDX_HDR_SIZE || e->win_pos > index_start ||
	    e->win_len > index_start - e->win_pos)
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index entry %llu: window at %llu, %u bytes (windows end at %llu)",
				name, (unsigned long long)i, (unsigned long long)e->win_pos, e->win_len,
				(unsigned long long)index_start);
	return 0;
}

static int load_table(struct obd_gzindex *gi, u64 index_start, u64 index_len, struct obd_err *err)
{
	size_t raw_len = gi->n * OBD_GZIDX_ENTRY_SIZE;
	u8 *stored = NULL, *raw = NULL;
	int rc = -ENOMEM;

	if (index_len > compressBound(raw_len) + 64)
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index index_area_len %llu for %llu entries",
				gi->io->name, (unsigned long long)index_len, (unsigned long long)gi->n);
	stored = malloc(index_len ? index_len : 1);
	raw = gi->algo ? malloc(raw_len) : stored;
	gi->e = calloc(gi->n, sizeof(*gi->e));
	if (!stored || !raw || !gi->e)
		goto out;
	rc = obd_io_read(gi->io, stored, index_len, index_start);
	if (rc) {
		obd_errf(err, rc, "%s: gzip index table: read: %s", gi->io->name, strerror(-rc));
		goto out;
	}
	if (gi->algo && zlib_exact(stored, index_len, raw, raw_len)) {
		rc = obd_errf(err, -EFSCORRUPTED, "%s: gzip index table: not one zlib stream of %zu bytes",
			      gi->io->name, raw_len);
		goto out;
	}
	for (u64 i = 0; i < gi->n; i++) {
		const u8 *p = raw + i * OBD_GZIDX_ENTRY_SIZE;
		struct obd_gzidx_entry *e = &gi->e[i];

		e->de_pos = obd_get_le64(p);
		e->en_pos = obd_get_le64(p + 8);
		e->win_pos = obd_get_le64(p + 16);
		e->bits = p[24];
		e->win_len = obd_get_le32(p + 25);
		if ((s64)e->de_pos < 0 || (s64)e->en_pos < 0 || (s64)e->win_pos < 0) {
			rc = obd_errf(err, -EFSCORRUPTED, "%s: gzip index entry %llu: negative offset",
				      gi->io->name, (unsigned long long)i);
			goto out;
		}
		rc = check_entry(gi, i, e, index_start, err);
		if (rc)
			goto out;
	}
	rc = 0;
out:
	if (raw != stored)
		free(raw);
	free(stored);
	if (rc) {
		free(gi->e);
		gi->e = NULL;
	}
	return rc;
}

int obd_gzindex_load(struct obd_io *io, u64 gzip_size, struct obd_gzindex *gi,
		     struct obd_err *err)
{
	u8 h[OBD_GZIDX_HDR_SIZE];
	u64 index_start = 0, index_len = 0;
	int rc;

	memset(gi, 0, sizeof(*gi));
	rc = read_header(io, h, err);
	if (!rc)
		rc = check_header(io, h, gzip_size, gi, &index_start, &index_len, err);
	if (!rc)
		rc = load_table(gi, index_start, index_len, err);
	return rc;
}

void obd_gzindex_free(struct obd_gzindex *gi)
{
	free(gi->e);
	gi->e = NULL;
	gi->n = 0;
}

u64 obd_gzindex_seek(const struct obd_gzindex *gi, u64 off)
{
	u64 lo = 0, hi = gi->n;	/* the answer is in [lo, hi) */

	while (hi - lo > 1) {
		u64 mid = lo + (hi - lo) / 2;

		if (gi->e[mid].de_pos <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* ------------------------------------------------------------------------
 * Decoding
 */
static int entry_window(const struct obd_gzindex *gi, const struct obd_gzidx_entry *e, u8 *win,
			struct obd_err *err)
{
	u8 *stored = win;
	int rc;

	if (gi->algo) {
		stored = malloc(e->win_len);
		if (!stored)
			return -ENOMEM;
	}
	rc = obd_io_read(gi->io, stored, e->win_len, e->win_pos);
	if (rc)
		obd_errf(err, rc, "%s: gzip index window at %llu: read: %s", gi->io->name,
			 (unsigned long long)e->win_pos, strerror(-rc));
	else if (gi->algo && zlib_exact(stored, e->win_len, win, OBD_GZIDX_WINSIZE))
		rc = obd_errf(err, -EFSCORRUPTED, "%s: gzip index window at %llu: not 32768 bytes of zlib",
			      gi->io->name, (unsigned long long)e->win_pos);
	if (stored != win)
		free(stored);
	return rc;
}

/*
 * Once s has used up its input: the next GZ_IN_CHUNK (or fewer) compressed
 * bytes from *in_pos into in, as s's input. 1 (no message) at the end of
 * the blob, the caller saying what it was decoding; -errno for a read
 * error, with its message.
 */
static int gz_feed(z_stream *s, struct obd_io *gz, u8 *in, u64 *in_pos, struct obd_err *err)
{
	size_t k;
	int rc;

	if (s->avail_in)
		return 0;
	k = gz->size - *in_pos < GZ_IN_CHUNK ? (size_t)(gz->size - *in_pos) : GZ_IN_CHUNK;
	if (!k)
		return 1;
	rc = obd_io_read(gz, in, k, *in_pos);
	if (rc)
		return obd_errf(err, rc, "%s: read at %llu: %s", gz->name,
				(unsigned long long)*in_pos, strerror(-rc));
	*in_pos += k;
	s->next_in = in;
	s->avail_in = (uInt)k;
	return 0;
}

static int check_tail(struct obd_io *gz, u64 end, struct obd_err *err);

/* A raw inflate positioned at an entry, with its input. */
struct gz_dec {
	z_stream s;
	u8 *in;			/* GZ_IN_CHUNK */
	u64 in_pos;		/* the blob's offset after what is in in */
};

/*
 * d decoding from entry e: e's window read into win (32 KiB) and set as
 * the dictionary, the bits before en_pos primed, input from en_pos on.
 */
static int dec_open(struct gz_dec *d, const struct obd_gzindex *gi, struct obd_io *gz,
		    const struct obd_gzidx_entry *e, u8 *win, struct obd_err *err)
{
	u8 byte = 0;
	int rc;

	memset(d, 0, sizeof(*d));
	d->in = malloc(GZ_IN_CHUNK);
	if (!d->in)
		return -ENOMEM;
	d->in_pos = e->en_pos;
	rc = entry_window(gi, e, win, err);
	if (!rc && e->bits) {
		rc = obd_io_read(gz, &byte, 1, e->en_pos - 1);
		if (rc)
			obd_errf(err, rc, "%s: read at %llu: %s", gz->name,
				 (unsigned long long)(e->en_pos - 1), strerror(-rc));
	}
	if (!rc && inflateInit2(&d->s, -15) != Z_OK) {
		rc = -ENOMEM;
	} else if (!rc && ((e->bits && inflatePrime(&d->s, e->bits, byte >> (8 - e->bits)) != Z_OK) ||
			   inflateSetDictionary(&d->s, win, OBD_GZIDX_WINSIZE) != Z_OK)) {
		inflateEnd(&d->s);
		rc = -EINVAL;
	}
	if (rc)
		free(d->in);
	return rc;
}

static int dec_feed(struct gz_dec *d, struct obd_io *gz, struct obd_err *err)
{
	return gz_feed(&d->s, gz, d->in, &d->in_pos, err);
}

/* The compressed offset the decoder has read up to. */
static u64 dec_pos(const struct gz_dec *d)
{
	return d->in_pos - d->s.avail_in;
}

static void dec_close(struct gz_dec *d)
{
	inflateEnd(&d->s);
	free(d->in);
}

ssize_t obd_gzindex_extract(const struct obd_gzindex *gi, struct obd_io *gz, void *buf,
			    size_t len, u64 off, struct obd_err *err)
{
	const struct obd_gzidx_entry *e;
	struct gz_dec d;
	u8 *scratch;
	size_t done = 0;
	u64 skip;
	int rc, zr = Z_OK;

	if (off >= gi->usize || !len)
		return 0;
	if (len > gi->usize - off)
		len = (size_t)(gi->usize - off);
	e = &gi->e[obd_gzindex_seek(gi, off)];
	/* scratch: e's window for dec_open, then output skipped up to off */
	scratch = malloc(GZ_IN_CHUNK);
	if (!scratch)
		return -ENOMEM;
	rc = dec_open(&d, gi, gz, e, scratch, err);
	if (rc)
		goto out_free;
	skip = off - e->de_pos;
	while (done < len) {
		rc = dec_feed(&d, gz, err);
		if (rc == 1)
			rc = obd_errf(err, -EFSCORRUPTED, "%s: the deflate stream ends at %llu, before output offset %llu",
				      gz->name, (unsigned long long)d.in_pos,
				      (unsigned long long)(off + len));
		if (rc)
			goto out;
		if (skip) {
			d.s.next_out = scratch;
			d.s.avail_out = (uInt)(skip < GZ_IN_CHUNK ? skip : GZ_IN_CHUNK);
		} else {
			d.s.next_out = (u8 *)buf + done;
			d.s.avail_out = (uInt)(len - done < (1u << 30) ? len - done : (1u << 30));
		}
		{
			uInt before = d.s.avail_out;

			zr = inflate(&d.s, Z_NO_FLUSH);
			if (skip)
				skip -= before - d.s.avail_out;
			else
				done += before - d.s.avail_out;
		}
		if (zr == Z_STREAM_END)
			break;
		/* no progress with input and room: zlib says the data cannot go on */
		if (zr != Z_OK && (zr != Z_BUF_ERROR || (d.s.avail_in && d.s.avail_out))) {
			rc = obd_errf(err, -EFSCORRUPTED, "%s: deflate data near compressed offset %llu: %s",
				      gz->name, (unsigned long long)dec_pos(&d),
				      d.s.msg ? d.s.msg : "does not decode");
			goto out;
		}
	}
	if (done < len) {
		/* the stream ended before usize: the index and the blob disagree */
		rc = obd_errf(err, -EFSCORRUPTED, "%s: the deflate stream ends at output %llu, uncompress_file_size is %llu",
			      gz->name, (unsigned long long)(off + done), (unsigned long long)gi->usize);
		goto out;
	}
	rc = 0;
out:
	dec_close(&d);
out_free:
	free(scratch);
	return rc ? rc : (ssize_t)done;
}

int obd_gzindex_gzip_size(struct obd_io *io, u64 *gzip_size, struct obd_err *err)
{
	u8 h[OBD_GZIDX_HDR_SIZE];
	int rc = read_header(io, h, err);

	if (!rc)
		*gzip_size = obd_get_le64(h + H_GZIP_SIZE);
	return rc;
}

/* The byte at stream offset p, decoding from e0: in out, or in e0's window before it. */
static int window_equal(const struct obd_gzindex *gi, const struct obd_gzidx_entry *e0,
			const u8 *win0, const u8 *out, u64 j, u8 *winj, struct obd_err *err)
{
	const struct obd_gzidx_entry *e = &gi->e[j];
	u64 rel = e->de_pos - e0->de_pos;	/* output bytes before entry j */
	u64 from_win0 = rel < OBD_GZIDX_WINSIZE ? OBD_GZIDX_WINSIZE - rel : 0;
	int rc = entry_window(gi, e, winj, err);

	if (rc)
		return rc;
	if (memcmp(winj, win0 + OBD_GZIDX_WINSIZE - from_win0, from_win0) ||
	    memcmp(winj + from_win0, out + rel - (OBD_GZIDX_WINSIZE - from_win0),
		   OBD_GZIDX_WINSIZE - from_win0))
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip index entry %llu (de_pos %llu): its window is not the 32 KiB the stream has before it",
				gi->io->name, (unsigned long long)j, (unsigned long long)e->de_pos);
	return 0;
}

/* After the stream's end at compressed offset pos: an ISIZE of usize, nothing more. */
static int check_trailer(const struct obd_gzindex *gi, struct obd_io *gz, u64 pos,
			 struct obd_err *err)
{
	u8 t[8];
	int rc;

	if (pos > gz->size || gz->size - pos < 8)
		return obd_errf(err, -EFSCORRUPTED, "%s: the deflate stream ends at %llu, no room for the 8-byte gzip trailer",
				gz->name, (unsigned long long)pos);
	rc = obd_io_read(gz, t, 8, pos);
	if (rc)
		return obd_errf(err, rc, "%s: read at %llu: %s", gz->name, (unsigned long long)pos,
				strerror(-rc));
	if (obd_get_le32(t + 4) != (u32)gi->usize)
		return obd_errf(err, -EFSCORRUPTED, "%s: gzip trailer ISIZE %u, the index says %llu bytes",
				gz->name, obd_get_le32(t + 4), (unsigned long long)gi->usize);
	return check_tail(gz, pos + 8, err);
}

/* Entry next is behind the decoder (output or input past it): the index lies. */
static int passed(const struct obd_gzindex *gi, u64 next, u64 out_pos, u64 in_pos,
		  struct obd_err *err)
{
	const struct obd_gzidx_entry *e = &gi->e[next];

	return obd_errf(err, -EFSCORRUPTED, "%s: gzip index entry %llu (de_pos %llu, en_pos %llu, bits %u): the stream has no block boundary there (decoder at output %llu, input %llu)",
			gi->io->name, (unsigned long long)next, (unsigned long long)e->de_pos,
			(unsigned long long)e->en_pos, e->bits, (unsigned long long)out_pos,
			(unsigned long long)in_pos);
}

int obd_gzindex_decode_checked(const struct obd_gzindex *gi, struct obd_io *gz, u64 first,
			       u64 last, u8 *out, size_t out_len, struct obd_err *err)
{
	const struct obd_gzidx_entry *e0;
	u64 de_end, next = first + 1, produced = 0, pos;
	u8 *win0 = NULL, *winj = NULL;
	bool ended = false;
	struct gz_dec d;
	int rc, zr;

	if (first >= gi->n || last < first || last > gi->n || out_len > (1u << 30))
		return obd_errf(err, -EINVAL, "%s: decode from entry %llu to %llu: out of range",
				gi->io->name, (unsigned long long)first, (unsigned long long)last);
	e0 = &gi->e[first];
	de_end = last < gi->n ? gi->e[last].de_pos : gi->usize;
	if (out_len != de_end - e0->de_pos)
		return obd_errf(err, -EINVAL, "%s: decode of %zu bytes from entry %llu: want %llu",
				gi->io->name, out_len, (unsigned long long)first,
				(unsigned long long)(de_end - e0->de_pos));
	win0 = malloc(OBD_GZIDX_WINSIZE);
	winj = malloc(OBD_GZIDX_WINSIZE);
	rc = -ENOMEM;
	if (win0 && winj)
		rc = dec_open(&d, gi, gz, e0, win0, err);
	if (rc)
		goto out_free;
	d.s.next_out = out;
	d.s.avail_out = (uInt)out_len;
	while (next <= last || (last == gi->n && !ended)) {
		rc = dec_feed(&d, gz, err);
		if (rc == 1)
			rc = obd_errf(err, -EFSCORRUPTED, "%s: the deflate stream runs past the blob's end (%llu) before output %llu",
				      gz->name, (unsigned long long)gz->size,
				      (unsigned long long)de_end);
		if (rc)
			goto out;
		/* one block at a time: every boundary is seen */
		zr = inflate(&d.s, Z_BLOCK);
		produced = out_len - d.s.avail_out;
		pos = dec_pos(&d);
		if (zr == Z_STREAM_END) {
			ended = true;
			break;
		}
		if (zr != Z_OK && (zr != Z_BUF_ERROR || d.s.avail_in)) {
			rc = d.s.avail_out ? obd_errf(err, -EFSCORRUPTED, "%s: deflate data near compressed offset %llu: %s",
						      gz->name, (unsigned long long)pos,
						      d.s.msg ? d.s.msg : "does not decode") :
				(next <= last && next < gi->n ? passed(gi, next, e0->de_pos + produced, pos, err) :
				 obd_errf(err, -EFSCORRUPTED, "%s: the deflate stream goes on past uncompress_file_size %llu",
					  gz->name, (unsigned long long)gi->usize));
			goto out;
		}
		if ((d.s.data_type & 128) && !(d.s.data_type & 64)) {
			while (next <= last && next < gi->n &&
			       gi->e[next].de_pos == e0->de_pos + produced && gi->e[next].en_pos == pos &&
			       gi->e[next].bits == (d.s.data_type & 7)) {
				rc = window_equal(gi, e0, win0, out, next, winj, err);
				if (rc)
					goto out;
				next++;
			}
		}
		if (next <= last && next < gi->n &&
		    (e0->de_pos + produced > gi->e[next].de_pos || pos > gi->e[next].en_pos)) {
			rc = passed(gi, next, e0->de_pos + produced, pos, err);
			goto out;
		}
	}
	if (last < gi->n && ended) {
		rc = obd_errf(err, -EFSCORRUPTED, "%s: the deflate stream ends at output %llu, before gzip index entry %llu (de_pos %llu)",
			      gz->name, (unsigned long long)(e0->de_pos + produced),
			      (unsigned long long)last, (unsigned long long)de_end);
		goto out;
	}
	if (last == gi->n) {
		if (produced != out_len || next != gi->n) {
			rc = produced != out_len ?
				obd_errf(err, -EFSCORRUPTED, "%s: the deflate stream ends at output %llu, uncompress_file_size is %llu",
					 gz->name, (unsigned long long)(e0->de_pos + produced),
					 (unsigned long long)gi->usize) :
				passed(gi, next, e0->de_pos + produced, dec_pos(&d), err);
			goto out;
		}
		rc = check_trailer(gi, gz, dec_pos(&d), err);
		if (rc)
			goto out;
	}
	rc = 0;
out:
	dec_close(&d);
out_free:
	free(win0);
	free(winj);
	return rc;
}

#define GZ_OUT_CHUNK	(256u << 10)

int obd_gzindex_inflate_all(struct obd_io *gz, u64 usize, obd_gzidx_out_fn fn, void *ctx,
			    struct obd_err *err)
{
	u8 *in = malloc(GZ_IN_CHUNK), *obuf = malloc(GZ_OUT_CHUNK);
	u64 in_pos = 0, total = 0;
	z_stream s;
	int rc = -ENOMEM, zr = Z_OK;

	memset(&s, 0, sizeof(s));
	/* gzip only: zlib checks the trailer's CRC32 and ISIZE at the end */
	if (!in || !obuf || inflateInit2(&s, 16 + 15) != Z_OK)
		goto out_free;
	while (zr != Z_STREAM_END) {
		size_t n;

		rc = gz_feed(&s, gz, in, &in_pos, err);
		if (rc == 1)
			rc = obd_errf(err, -EFSCORRUPTED, "%s: gzip stream truncated at %llu",
				      gz->name, (unsigned long long)in_pos);
		if (rc)
			goto out;
		s.next_out = obuf;
		s.avail_out = GZ_OUT_CHUNK;
		zr = inflate(&s, Z_NO_FLUSH);
		n = GZ_OUT_CHUNK - s.avail_out;
		if (zr != Z_OK && zr != Z_STREAM_END && (zr != Z_BUF_ERROR || s.avail_in)) {
			rc = obd_errf(err, -EFSCORRUPTED, "%s: gzip data near compressed offset %llu: %s",
				      gz->name, (unsigned long long)(in_pos - s.avail_in),
				      s.msg ? s.msg : "does not decode");
			goto out;
		}
		if (n > usize - total) {
			rc = obd_errf(err, -EFSCORRUPTED, "%s: the gzip stream is longer than %llu bytes",
				      gz->name, (unsigned long long)usize);
			goto out;
		}
		if (n) {
			rc = fn(ctx, total, obuf, n);
			if (rc)
				goto out;
		}
		total += n;
	}
	if (total != usize) {
		rc = obd_errf(err, -EFSCORRUPTED, "%s: the gzip stream has %llu bytes, the index says %llu",
			      gz->name, (unsigned long long)total, (unsigned long long)usize);
		goto out;
	}
	rc = check_tail(gz, in_pos - s.avail_in, err);
out:
	inflateEnd(&s);
out_free:
	free(in);
	free(obuf);
	return rc;
}

/* ------------------------------------------------------------------------
 * Building (spec 1.6)
 */
struct gz_point {
	struct obd_gzidx_entry e;
	u8 win[OBD_GZIDX_WINSIZE];
};

struct gz_builder {
	int fd;
	u8 algo;
	u64 wpos;			/* where the next window goes */
	struct obd_gzidx_entry *v;
	u64 n, cap;
	u8 *zbuf;			/* compressBound(32768) */
	struct obd_err *err;
};

static int emit(struct gz_builder *b, const struct gz_point *p)
{
	const u8 *out = p->win;
	uLongf zlen = compressBound(OBD_GZIDX_WINSIZE);
	int rc;

	if (b->n == b->cap) {
		u64 cap = b->cap ? b->cap * 2 : 64;
		void *v = realloc(b->v, cap * sizeof(*b->v));

		if (!v)
			return -ENOMEM;
		b->v = v;
		b->cap = cap;
	}
	if (b->algo) {
		if (compress2(b->zbuf, &zlen, p->win, OBD_GZIDX_WINSIZE, OBD_GZIDX_LEVEL) != Z_OK)
			return -ENOMEM;
		out = b->zbuf;
	} else {
		zlen = OBD_GZIDX_WINSIZE;
	}
	rc = obd_pwrite_all(b->fd, out, zlen, b->wpos);
	if (rc)
		return obd_errf(b->err, rc, "gzip index: write: %s", strerror(-rc));
	b->v[b->n] = p->e;
	b->v[b->n].win_pos = b->wpos;
	b->v[b->n].win_len = (u32)zlen;
	b->n++;
	b->wpos += zlen;
	return 0;
}

/* the circular output window as the 32 KiB before the current output position */
static void snapshot(struct gz_point *p, const u8 *window, uInt left)
{
	memcpy(p->win, window + OBD_GZIDX_WINSIZE - left, left);
	memcpy(p->win + left, window, OBD_GZIDX_WINSIZE - left);
}

/*
 * The selection rule: one entry a span, at the last boundary <= k * span.
 * Step for step the reference's IndexFilterRecorder::record, including
 * its fall-through: a boundary past `expected` that lands exactly on the
 * next multiple of span (a block ending at k * span after one longer than
 * a span, as pigz-style flushed streams have) is taken at once, not kept
 * as `last`; otherwise the entries (and the index's bytes) would differ.
 */
static int candidate(struct gz_builder *b, struct gz_point *cur, struct gz_point *last,
		     bool *last_valid, u64 *expected, u32 span)
{
	int rc = 0;

	if (cur->e.de_pos < *expected) {
		*last = *cur;
		*last_valid = true;
		return 0;
	}
	if (cur->e.de_pos > *expected) {
		if (*last_valid)
			rc = emit(b, last);
		*last = *cur;
		*last_valid = true;
		while (*expected < cur->e.de_pos)
			*expected += span;
	}
	if (!rc && cur->e.de_pos == *expected) {
		*last_valid = false;
		rc = emit(b, cur);
		*expected += span;
	}
	return rc;
}

static int write_table(struct gz_builder *b, struct obd_gzidx_build_stats *st, u32 span)
{
	size_t raw_len = b->n * OBD_GZIDX_ENTRY_SIZE;
	uLongf zlen = compressBound(raw_len);
	u8 *raw = malloc(raw_len), *z = malloc(zlen), h[OBD_GZIDX_HDR_SIZE];
	const u8 *table = raw;
	u64 index_start = b->wpos, fsize;
	int rc = -ENOMEM;

	if (!raw || !z)
		goto out;
	for (u64 i = 0; i < b->n; i++) {
		u8 *p = raw + i * OBD_GZIDX_ENTRY_SIZE;

		obd_put_le64(p, b->v[i].de_pos);
		obd_put_le64(p + 8, b->v[i].en_pos);
		obd_put_le64(p + 16, b->v[i].win_pos);
		p[24] = b->v[i].bits;
		obd_put_le32(p + 25, b->v[i].win_len);
	}
	if (b->algo) {
		if (compress2(z, &zlen, raw, raw_len, OBD_GZIDX_LEVEL) != Z_OK)
			goto out;
		table = z;
	} else {
		zlen = raw_len;
	}
	fsize = index_start + zlen;
	memset(h, 0, sizeof(h));
	memcpy(h + H_MAGIC, OBD_GZIDX_MAGIC, 7);
	h[H_MAJOR] = 1;
	h[H_ALGO] = b->algo;
	h[H_LEVEL] = OBD_GZIDX_LEVEL;
	obd_put_le32(h + H_SPAN, span);
	obd_put_le32(h + H_WINDOW, OBD_GZIDX_WINSIZE);
	obd_put_le32(h + H_ENTRY_SIZE, OBD_GZIDX_ENTRY_SIZE);
	obd_put_le64(h + H_NUM, b->n);
	obd_put_le64(h + H_GZIP_SIZE, st->gzip_size);
	obd_put_le64(h + H_FILE_SIZE, fsize);
	obd_put_le64(h + H_USIZE, st->usize);
	obd_put_le64(h + H_INDEX_START, index_start);
	obd_put_le64(h + H_INDEX_LEN, zlen);
	obd_put_le32(h + H_CRC, obd_crc32c(0, h, OBD_GZIDX_CRC_LEN));
	rc = obd_pwrite_all(b->fd, table, zlen, index_start);
	if (!rc)
		rc = obd_pwrite_all(b->fd, h, sizeof(h), 0);
	if (!rc && ftruncate(b->fd, (off_t)fsize))
		rc = -errno;
	st->index_size = fsize;
	if (rc)
		obd_errf(b->err, rc, "gzip index: write: %s", strerror(-rc));
out:
	free(raw);
	free(z);
	return rc;
}

/* Whatever follows the first member: refused, with what it is. */
static int check_tail(struct obd_io *gz, u64 end, struct obd_err *err)
{
	u8 m[2];

	if (end == gz->size)
		return 0;
	if (gz->size - end >= 2 && !obd_io_read(gz, m, 2, end) && m[0] == 0x1f && m[1] == 0x8b)
		return obd_errf(err, -EOPNOTSUPP, "%s: a second gzip member at %llu: multi-member gzip layers are not supported",
				gz->name, (unsigned long long)end);
	return obd_errf(err, -EOPNOTSUPP, "%s: %llu bytes after the gzip stream (it ends at %llu)",
			gz->name, (unsigned long long)(gz->size - end), (unsigned long long)end);
}

static int build_pass(struct gz_builder *b, struct obd_io *gz, u32 span,
		      struct obd_gzidx_build_stats *st)
{
	u8 *in = malloc(GZ_IN_CHUNK), *window = calloc(1, OBD_GZIDX_WINSIZE);
	struct gz_point *cur = malloc(sizeof(*cur)), *last = malloc(sizeof(*last));
	u64 ttin = 0, ttout = 0, in_pos = 0, expected = 0;
	bool last_valid = false;
	z_stream s;
	int rc = -ENOMEM, zr = Z_OK;

	memset(&s, 0, sizeof(s));
	if (!in || !window || !cur || !last || inflateInit2(&s, 47) != Z_OK)
		goto out_free;
	do {
		rc = gz_feed(&s, gz, in, &in_pos, b->err);
		if (rc == 1)
			rc = obd_errf(b->err, -EFSCORRUPTED, "%s: gzip stream truncated at %llu",
				      gz->name, (unsigned long long)in_pos);
		if (rc)
			goto out;
		if (!s.avail_out) {
			s.next_out = window;
			s.avail_out = OBD_GZIDX_WINSIZE;
		}
		ttin += s.avail_in;
		ttout += s.avail_out;
		zr = inflate(&s, Z_BLOCK);
		ttin -= s.avail_in;
		ttout -= s.avail_out;
		if (zr == Z_NEED_DICT || zr == Z_DATA_ERROR || zr == Z_MEM_ERROR) {
			rc = obd_errf(b->err, -EFSCORRUPTED, "%s: gzip data near %llu: %s", gz->name,
				      (unsigned long long)ttin, s.msg ? s.msg : "does not decode");
			goto out;
		}
		if ((s.data_type & 128) && !(s.data_type & 64)) {
			cur->e = (struct obd_gzidx_entry){ .de_pos = ttout, .en_pos = ttin,
							   .bits = (u8)(s.data_type & 7) };
			snapshot(cur, window, s.avail_out);
			rc = candidate(b, cur, last, &last_valid, &expected, span);
			if (rc)
				goto out;
		}
	} while (zr != Z_STREAM_END);
	st->gzip_size = gz->size;
	st->usize = ttout;
	rc = check_tail(gz, ttin, b->err);
out:
	inflateEnd(&s);
out_free:
	free(in);
	free(window);
	free(cur);
	free(last);
	return rc;
}

int obd_gzindex_build(struct obd_io *gz, int fd, u32 span, u8 algo,
		      struct obd_gzidx_build_stats *st, struct obd_err *err)
{
	struct gz_builder b = { .fd = fd, .algo = algo, .wpos = OBD_GZIDX_HDR_SIZE, .err = err };
	int rc;

	memset(st, 0, sizeof(*st));
	if (span < OBD_GZIDX_SPAN_MIN || span > INT32_MAX || algo > OBD_GZIDX_ALGO_ZLIB)
		return obd_errf(err, -EINVAL, "gzip index: span %u (at least %u), algo %u",
				span, OBD_GZIDX_SPAN_MIN, algo);
	b.zbuf = malloc(compressBound(OBD_GZIDX_WINSIZE));
	rc = b.zbuf ? build_pass(&b, gz, span, st) : -ENOMEM;
	if (!rc)
		rc = write_table(&b, st, span);
	if (!rc)
		st->entries = b.n;
	free(b.zbuf);
	free(b.v);
	return rc;
}
#endif
