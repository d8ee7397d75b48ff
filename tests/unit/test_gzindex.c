// SPDX-License-Identifier: GPL-2.0-only
/*
 * Description: TurboOCI's gzip index (lib/user/gzindex.c). Gzip streams made
 * here with zlib (several levels and block shapes, incompressible and
 * compressible parts) are indexed with both window encodings; every random
 * range extracted through the index equals the original bytes, across
 * access points with bits != 0, from entry 0 and at the end. The selection
 * rule gives one entry a span at the last boundary <= k * span. Every
 * header and entry field out of range is refused by the loader, and so are
 * a bad CRC, multi-member streams, trailing bytes, a wrong gzip trailer and
 * corrupt deflate data (EFSCORRUPTED, never wrong bytes).
 * The daemon's checked decode (obd_gzindex_decode_checked) gives the data
 * between any two entries and to the stream's end, and fails on an index
 * whose window, en_pos or bits lie, or whose stream's ISIZE or tail do not
 * fit; the whole-stream inflate gives the data and fails on a wrong CRC32,
 * ISIZE, size or trailing bytes. `test_gzindex --build GZ OUT SPAN ALGO`
 * writes the index of a gzip file (tests/fetchd/96-gunzip.sh).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "tap.h"
#include "testutil.h"
#include "gzindex.h"
#include "env_user.h"

#define SPAN	OBD_GZIDX_SPAN_MIN

/* Test data: runs of text-like bytes (compressible) and of random bytes. */
static u8 *make_data(size_t len)
{
	u8 *d = malloc(len);
	size_t i = 0;

	while (d && i < len) {
		size_t run = (size_t)rnd_in(1, 40000);
		bool text = rnd() & 1;

		for (; run-- && i < len; i++)
			d[i] = text ? (u8)("overlaybd turbo oci "[i % 20] + (rnd() % 7 == 0)) : (u8)rnd();
	}
	return d;
}

/* gzip of data (one member), flushing a full block every `flush` bytes if set. */
static u8 *gzip_of(const u8 *d, size_t len, int level, size_t flush, size_t *out_len)
{
	z_stream s = { 0 };
	size_t cap = compressBound(len) + len / 8 + 4096, pos = 0, fed = 0;
	u8 *out = malloc(cap);

	if (!out || deflateInit2(&s, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	s.next_out = out;
	s.avail_out = (uInt)cap;
	while (fed < len) {
		size_t k = flush ? (len - fed < flush ? len - fed : flush) : len - fed;

		s.next_in = (u8 *)d + fed;
		s.avail_in = (uInt)k;
		fed += k;
		deflate(&s, fed < len ? (flush ? Z_FULL_FLUSH : Z_NO_FLUSH) : Z_FINISH);
	}
	if (!len)
		deflate(&s, Z_FINISH);
	pos = cap - s.avail_out;
	deflateEnd(&s);
	*out_len = pos;
	return out;
}

struct built {
	u8 *idx;
	size_t idx_len;
	struct obd_gzidx_build_stats st;
	int rc;
	char msg[256];
};

static void build(const u8 *gz, size_t gz_len, u32 span, u8 algo, struct built *b)
{
	struct obd_mem_io m;
	struct obd_err err = { "" };
	char path[] = "/tmp/obd-gzidx-XXXXXX";
	int fd = mkstemp(path);

	memset(b, 0, sizeof(*b));
	unlink(path);
	obd_mem_io_init(&m, gz, gz_len, "blob.gz");
	b->rc = obd_gzindex_build(&m.io, fd, span, algo, &b->st, &err);
	snprintf(b->msg, sizeof(b->msg), "%s", err.msg);
	if (!b->rc) {
		b->idx_len = (size_t)lseek(fd, 0, SEEK_END);
		b->idx = malloc(b->idx_len);
		if (pread(fd, b->idx, b->idx_len, 0) != (ssize_t)b->idx_len)
			b->rc = -EIO;
	}
	close(fd);
}

/* random extracts and the edges, each compared with the original */
static int check_reads(const struct obd_gzindex *gi, const u8 *gz, size_t gz_len,
		       const u8 *d, size_t len, int nreads, char *why, size_t wlen)
{
	struct obd_mem_io m;
	u8 *buf = malloc(300000);
	int bad = 0;

	obd_mem_io_init(&m, gz, gz_len, "blob.gz");
	for (int i = 0; i < nreads + (int)gi->n + 2 && !bad; i++) {
		struct obd_err err = { "" };
		u64 off, n;
		ssize_t got;

		if (i < nreads) {
			off = rnd_in(0, len ? len - 1 : 0);
			n = rnd_in(1, rnd() & 1 ? 4096 : 300000);
		} else if (i < nreads + (int)gi->n) {	/* 4 KiB at each access point */
			off = gi->e[i - nreads].de_pos;
			n = 4096;
		} else {				/* the tail, and past the end */
			off = i == nreads + (int)gi->n ? (len > 100 ? len - 100 : 0) : len + 10;
			n = 4096;
		}
		got = obd_gzindex_extract(gi, &m.io, buf, n, off, &err);
		u64 want = off >= len ? 0 : (n < len - off ? n : len - off);

		if (got < 0 || (u64)got != want || (want && memcmp(buf, d + off, want))) {
			snprintf(why, wlen, "off %llu len %llu: got %zd want %llu %s",
				 (unsigned long long)off, (unsigned long long)n, got,
				 (unsigned long long)want, err.msg);
			bad++;
		}
	}
	free(buf);
	return bad;
}

static void test_roundtrip(int level, size_t flush, u8 algo, size_t len)
{
	u8 *d = make_data(len);
	size_t gz_len;
	u8 *gz = gzip_of(d, len, level, flush, &gz_len);
	struct built b;
	struct obd_gzindex gi;
	struct obd_mem_io im;
	struct obd_err err = { "" };
	char why[512] = "";
	u64 nbits = 0, i;
	bool rule = true;

	build(gz, gz_len, SPAN, algo, &b);
	tap_ok(!b.rc && b.st.usize == len && b.st.gzip_size == gz_len,
	       "level %d flush %zu algo %u: %zu bytes -> %zu gzip -> index of %llu entries, %llu bytes (%s)",
	       level, flush, algo, len, gz_len, (unsigned long long)b.st.entries,
	       (unsigned long long)b.st.index_size, b.msg);
	obd_mem_io_init(&im, b.idx, b.idx_len, "gzip.meta");
	tap_ok(!obd_gzindex_load(&im.io, gz_len, &gi, &err) && gi.n == b.st.entries &&
	       gi.usize == len && gi.algo == algo && gi.span == SPAN, "  loads (%s)", err.msg);
	for (i = 0; i < gi.n; i++) {
		nbits += gi.e[i].bits != 0;
		/* at most one entry per span interval (k*span, (k+1)*span] */
		if (i && gi.e[i].de_pos / SPAN == gi.e[i - 1].de_pos / SPAN &&
		    gi.e[i].de_pos % SPAN && gi.e[i - 1].de_pos % SPAN)
			rule = false;
	}
	tap_ok(rule, "  at most one entry a span (%llu entries, %llu with bits != 0)",
	       (unsigned long long)gi.n, (unsigned long long)nbits);
	tap_ok(!check_reads(&gi, gz, gz_len, d, len, 300, why, sizeof(why)),
	       "  300 random extracts, 4 KiB at every entry, the tail and past the end equal the data %s", why);
	obd_gzindex_free(&gi);
	free(b.idx);
	free(gz);
	free(d);
}

/*
 * A sync flush exactly at a span boundary, then one block longer than a
 * span: the flush's empty stored block ends at the same output offset as
 * the entry taken there, and the rule takes it too (equal de_pos).
 */
static void test_flush_at_span(void)
{
	size_t len = SPAN + 3000000, gz_len = 0, cap = len + 65536;
	u8 *d = calloc(1, len), *gz = malloc(cap);
	z_stream s = { 0 };
	struct built b;
	struct obd_gzindex gi;
	struct obd_mem_io im;
	struct obd_err err = { "" };
	char why[512] = "";
	u64 dup = 0;

	for (size_t i = 0; i < SPAN; i++)
		d[i] = (u8)rnd();
	deflateInit2(&s, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
	s.next_out = gz;
	s.avail_out = (uInt)cap;
	s.next_in = d;
	s.avail_in = SPAN;
	deflate(&s, Z_SYNC_FLUSH);
	s.next_in = d + SPAN;
	s.avail_in = (uInt)(len - SPAN - 1000);
	deflate(&s, Z_SYNC_FLUSH);	/* ends the long block: a boundary past the span */
	s.next_in = d + len - 1000;
	s.avail_in = 1000;
	deflate(&s, Z_FINISH);
	gz_len = cap - s.avail_out;
	deflateEnd(&s);
	build(gz, gz_len, SPAN, OBD_GZIDX_ALGO_ZLIB, &b);
	obd_mem_io_init(&im, b.idx, b.idx_len, "gzip.meta");
	tap_ok(!b.rc && !obd_gzindex_load(&im.io, gz_len, &gi, &err),
	       "a sync flush at the span, then 3 MB of zeros: builds and loads (%s%s)", b.msg, err.msg);
	if (!b.rc && gi.e) {
		for (u64 i = 1; i < gi.n; i++)
			dup += gi.e[i].de_pos == gi.e[i - 1].de_pos;
		tap_ok(dup == 1, "  two entries at the flush's offset (%llu pairs, %llu entries)",
		       (unsigned long long)dup, (unsigned long long)gi.n);
		tap_ok(!check_reads(&gi, gz, gz_len, d, len, 100, why, sizeof(why)),
		       "  extracts equal the data %s", why);
		obd_gzindex_free(&gi);
	}
	free(b.idx);
	free(gz);
	free(d);
}

/*
 * The reference's record() takes a boundary at once when, past `expected`,
 * it lands exactly on the next multiple of span. Two runs of 2 * SPAN
 * zeros, each one deflate block closed by a sync flush (the data block's
 * end a, then the flush's empty stored block b, both at 2k * SPAN), then
 * a short final block. The reference's trace: entry 0 (de 0; expected
 * SPAN); a1 (de 2S > S: expected -> 2S, equal, taken; expected 3S); b1
 * (2S < 3S: kept); a2 (de 4S > 3S: b1 taken, a2 kept, expected -> 4S,
 * equal, a2 taken; expected 5S); b2 (kept, never taken: no boundary
 * follows but the end of the final block). So: 0, a1, b1, a2.
 */
static int checked(const struct obd_gzindex *gi, struct obd_io *gz, const u8 *d, u64 first,
		   u64 last, char *msg, size_t mlen);

static void test_span_landing(void)
{
	size_t run = 2 * SPAN, len = 2 * run + 1000, cap = len + 65536, gz_len;
	u8 *d = calloc(1, len), *gz = malloc(cap);
	u64 b_end[2];
	z_stream s = { 0 };
	struct built b;
	struct obd_gzindex gi;
	struct obd_mem_io im;
	struct obd_err err = { "" };
	char why[512] = "";

	for (size_t i = len - 1000; i < len; i++)
		d[i] = (u8)rnd();
	deflateInit2(&s, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
	s.next_out = gz;
	s.avail_out = (uInt)cap;
	for (int k = 0; k < 2; k++) {
		s.next_in = d + k * run;
		s.avail_in = (uInt)run;
		deflate(&s, Z_SYNC_FLUSH);
		b_end[k] = cap - s.avail_out;	/* where the empty stored block ends */
	}
	s.next_in = d + 2 * run;
	s.avail_in = 1000;
	deflate(&s, Z_FINISH);
	gz_len = cap - s.avail_out;
	deflateEnd(&s);
	build(gz, gz_len, SPAN, OBD_GZIDX_ALGO_ZLIB, &b);
	obd_mem_io_init(&im, b.idx, b.idx_len, "gzip.meta");
	tap_ok(!b.rc && !obd_gzindex_load(&im.io, gz_len, &gi, &err),
	       "blocks ending exactly on 2 * span and 4 * span: builds and loads (%s%s)", b.msg, err.msg);
	if (b.rc || !gi.e)
		goto out;
	tap_ok(gi.n == 4 && gi.e[1].de_pos == run && gi.e[2].de_pos == run &&
	       gi.e[3].de_pos == 2 * run,
	       "  entries at 0, 2S, 2S, 4S as the reference's record() takes them (%llu entries, last de_pos %llu)",
	       (unsigned long long)gi.n, (unsigned long long)gi.e[gi.n - 1].de_pos);
	if (gi.n == 4)
		tap_ok(gi.e[1].en_pos < b_end[0] && gi.e[2].en_pos == b_end[0] && !gi.e[2].bits &&
		       gi.e[3].en_pos < b_end[1],
		       "  the data block's end, then the flush's, at 2S; the data block's end at 4S (en_pos %llu %llu %llu; flushes end at %llu %llu)",
		       (unsigned long long)gi.e[1].en_pos, (unsigned long long)gi.e[2].en_pos,
		       (unsigned long long)gi.e[3].en_pos, (unsigned long long)b_end[0],
		       (unsigned long long)b_end[1]);
	tap_ok(!check_reads(&gi, gz, gz_len, d, len, 100, why, sizeof(why)),
	       "  extracts equal the data %s", why);
	{
		/* the daemon's checked decode takes both points at 2S */
		struct obd_mem_io gm;
		int bad = 0;

		obd_mem_io_init(&gm, gz, gz_len, "blob.gz");
		for (u64 k = 0; k < gi.n && !bad; k++)
			bad += checked(&gi, &gm.io, d, k, k + 1, why, sizeof(why)) != 0;
		tap_ok(!bad && !checked(&gi, &gm.io, d, 0, gi.n, why, sizeof(why)),
		       "  checked decodes, each entry to the next and the whole stream %s", why);
	}
	obd_gzindex_free(&gi);
out:
	free(b.idx);
	free(gz);
	free(d);
}

/* --- malformed indexes ------------------------------------------------------ */
static void put(u8 *p, u64 v, int n)
{
	for (int i = 0; i < n; i++, v >>= 8)
		p[i] = (u8)v;
}

static void recrc(u8 *h)
{
	put(h + 329, obd_crc32c(0, h, 329), 4);
}

static int load_err(const u8 *idx, size_t len, u64 gz_len, char *msg, size_t mlen)
{
	struct obd_mem_io im;
	struct obd_gzindex gi;
	struct obd_err err = { "" };
	int rc;

	obd_mem_io_init(&im, idx, len, "gzip.meta");
	rc = obd_gzindex_load(&im.io, gz_len, &gi, &err);
	snprintf(msg, mlen, "%s", err.msg);
	if (!rc)
		obd_gzindex_free(&gi);
	return rc;
}

/* a raw-table index (algo 0) so entries can be edited in place */
static void test_malformed(void)
{
	size_t len = 600000, gz_len;
	u8 *d = make_data(len), *gz = gzip_of(d, len, 6, 0, &gz_len), *x;
	struct built b;
	char msg[256];
	u64 start;
	int rc;

	build(gz, gz_len, SPAN, OBD_GZIDX_ALGO_NONE, &b);
	tap_ok(!b.rc && b.st.entries >= 3, "a raw-table index to break (%llu entries)",
	       (unsigned long long)b.st.entries);
	start = b.idx_len - b.st.entries * 29;
	x = malloc(b.idx_len);

#define CASE(desc, edit, want_rc)						\
	do {									\
		memcpy(x, b.idx, b.idx_len);					\
		edit;								\
		rc = load_err(x, b.idx_len, gz_len, msg, sizeof(msg));		\
		tap_ok(rc == (want_rc), "refused: %s (%d: %s)", desc, rc, msg);	\
	} while (0)

	CASE("bad magic", (x[0] = 'x', recrc(x)), -EFSCORRUPTED);
	CASE("header CRC", x[100] ^= 1, -EFSBADCRC);
	CASE("major_version 2", (x[8] = 2, recrc(x)), -EOPNOTSUPP);
	CASE("dict_compress_algo 2", (x[10] = 2, recrc(x)), -EOPNOTSUPP);
	CASE("index_size 28", (put(x + 21, 28, 4), recrc(x)), -EFSCORRUPTED);
	CASE("index_num 0", (put(x + 25, 0, 8), recrc(x)), -EFSCORRUPTED);
	CASE("index_num 2^60", (put(x + 25, 1ULL << 60, 8), recrc(x)), -EFSCORRUPTED);
	CASE("gzip_file_size off by one", (put(x + 33, gz_len + 1, 8), recrc(x)), -EFSCORRUPTED);
	CASE("index_file_size off by one", (put(x + 41, b.idx_len - 1, 8), recrc(x)), -EFSCORRUPTED);
	CASE("index_start past the file", (put(x + 313, b.idx_len + 1, 8), recrc(x)), -EFSCORRUPTED);
	CASE("index_start inside the header", (put(x + 313, 100, 8), put(x + 321, b.idx_len - 100, 8), recrc(x)), -EFSCORRUPTED);
	CASE("index_area_len short", (put(x + 321, b.st.entries * 29 - 1, 8), recrc(x)), -EFSCORRUPTED);
	CASE("entry 0 de_pos 1", put(x + start, 1, 8), -EFSCORRUPTED);
	CASE("entry 2 de_pos below entry 1's", put(x + start + 58, 1, 8), -EFSCORRUPTED);
	CASE("entry 2 en_pos not increasing", put(x + start + 58 + 8, 0, 8), -EFSCORRUPTED);
	CASE("entry 1 en_pos past the blob", put(x + start + 29 + 8, gz_len + 1, 8), -EFSCORRUPTED);
	CASE("entry 1 bits 8", x[start + 29 + 24] = 8, -EFSCORRUPTED);
	CASE("entry 1 de_pos past uncompress_file_size", put(x + start + 29, len + 1, 8), -EFSCORRUPTED);
	CASE("entry 1 window overlapping the table", put(x + start + 29 + 16, start - 100, 8), -EFSCORRUPTED);
	CASE("entry 1 window inside the header", put(x + start + 29 + 16, 10, 8), -EFSCORRUPTED);
	CASE("entry 1 window length 32767 (raw)", put(x + start + 29 + 25, 32767, 4), -EFSCORRUPTED);
	CASE("entry 1 negative de_pos", put(x + start + 29, (u64)-5, 8), -EFSCORRUPTED);
	rc = load_err(b.idx, 200, gz_len, msg, sizeof(msg));
	tap_ok(rc == -EFSCORRUPTED, "refused: shorter than the header (%s)", msg);
	rc = load_err(b.idx, b.idx_len - 1, gz_len, msg, sizeof(msg));
	tap_ok(rc == -EFSCORRUPTED, "refused: the file one byte short (%s)", msg);

	/* compressed table and window corrupt (algo 1) */
	free(b.idx);
	build(gz, gz_len, SPAN, OBD_GZIDX_ALGO_ZLIB, &b);
	free(x);
	x = malloc(b.idx_len);
	memcpy(x, b.idx, b.idx_len);
	x[b.idx_len - 3] ^= 0x55;	/* in the table's zlib stream (adler or data) */
	rc = load_err(x, b.idx_len, gz_len, msg, sizeof(msg));
	tap_ok(rc == -EFSCORRUPTED, "refused: a corrupt zlib table (%s)", msg);
	{
		struct obd_mem_io im, gm;
		struct obd_gzindex gi;
		struct obd_err err = { "" };
		u8 buf[4096];
		ssize_t got;

		memcpy(x, b.idx, b.idx_len);
		x[OBD_GZIDX_HDR_SIZE + 2] ^= 0x55;	/* entry 0's window: its first block header */
		obd_mem_io_init(&im, x, b.idx_len, "gzip.meta");
		obd_mem_io_init(&gm, gz, gz_len, "blob.gz");
		rc = obd_gzindex_load(&im.io, gz_len, &gi, &err);
		got = rc ? rc : obd_gzindex_extract(&gi, &gm.io, buf, sizeof(buf), 100, &err);
		tap_ok(got == -EFSCORRUPTED, "a corrupt window: the extract fails (%zd: %s)", got, err.msg);
		if (!rc)
			obd_gzindex_free(&gi);
	}
	free(x);
	free(b.idx);
	free(gz);
	free(d);
#undef CASE
}

/* --- blobs the builder refuses, deflate data the reader refuses -------------- */
static void test_bad_blobs(void)
{
	size_t len = 300000, gz_len;
	u8 *d = make_data(len), *gz = gzip_of(d, len, 6, 0, &gz_len), *two;
	struct built b;

	two = malloc(gz_len * 2);
	memcpy(two, gz, gz_len);
	memcpy(two + gz_len, gz, gz_len);
	build(two, gz_len * 2, SPAN, 1, &b);
	tap_ok(b.rc == -EOPNOTSUPP && strstr(b.msg, "multi-member"), "two gzip members: refused (%s)", b.msg);
	memset(two + gz_len, 0, 16);
	build(two, gz_len + 16, SPAN, 1, &b);
	tap_ok(b.rc == -EOPNOTSUPP && strstr(b.msg, "bytes after"), "16 bytes after the member: refused (%s)", b.msg);
	build(gz, gz_len - 5, SPAN, 1, &b);
	tap_ok(b.rc == -EFSCORRUPTED, "a truncated blob: refused (%s)", b.msg);
	memcpy(two, gz, gz_len);
	two[gz_len - 6] ^= 1;	/* the CRC32 of the trailer */
	build(two, gz_len, SPAN, 1, &b);
	tap_ok(b.rc == -EFSCORRUPTED, "a wrong trailer CRC32: refused (%s)", b.msg);
	build(gz, gz_len, 1000, 1, &b);
	tap_ok(b.rc == -EINVAL, "span 1000: refused (%s)", b.msg);

	/* data corrupted after the index was made: the extract says so */
	build(gz, gz_len, SPAN, 1, &b);
	{
		struct obd_mem_io im, gm;
		struct obd_gzindex gi;
		struct obd_err err = { "" };
		u8 *buf = malloc(len);
		ssize_t got;
		int rc;

		/* all one bits where the first deflate block starts (after the 10-byte
		 * gzip header): block type 3, which does not exist */
		memcpy(two, gz, gz_len);
		memset(two + 10, 0xff, 2000);
		obd_mem_io_init(&im, b.idx, b.idx_len, "gzip.meta");
		obd_mem_io_init(&gm, two, gz_len, "blob.gz");
		rc = obd_gzindex_load(&im.io, gz_len, &gi, &err);
		got = rc ? rc : obd_gzindex_extract(&gi, &gm.io, buf, len, 0, &err);
		tap_ok(got == -EFSCORRUPTED, "2000 bytes of 0xff at the first block: the whole-stream extract fails (%zd: %s)",
		       got, err.msg);
		/* the blob cut short (a cache file that ends early) */
		obd_mem_io_init(&gm, gz, gz_len / 2, "blob.gz");
		got = rc ? rc : obd_gzindex_extract(&gi, &gm.io, buf, len, 0, &err);
		tap_ok(got == -EFSCORRUPTED && strstr(err.msg, "ends at"),
		       "the blob cut in half: the whole-stream extract fails (%zd: %s)", got, err.msg);
		if (!rc)
			obd_gzindex_free(&gi);
		free(buf);
	}
	free(b.idx);
	free(two);
	free(gz);
	free(d);
}

/* --- the daemon's decodes ---------------------------------------------------- */
struct collect {
	u8 *buf;
	size_t len, cap;
};

static int collect_out(void *ctx, u64 off, const u8 *buf, size_t len)
{
	struct collect *c = ctx;

	if (off != c->len || len > c->cap - c->len)
		return -EINVAL;
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	return 0;
}

/* decode_checked from first to last, compared with d; 0 when equal */
static int checked(const struct obd_gzindex *gi, struct obd_io *gz, const u8 *d, u64 first,
		   u64 last, char *msg, size_t mlen)
{
	u64 a = gi->e[first].de_pos, b = last < gi->n ? gi->e[last].de_pos : gi->usize;
	struct obd_err err = { "" };
	u8 *out = malloc(b - a + 1);
	int rc = obd_gzindex_decode_checked(gi, gz, first, last, out, b - a, &err);

	snprintf(msg, mlen, "%s", err.msg);
	if (!rc && memcmp(out, d + a, b - a))
		rc = 1;
	free(out);
	return rc;
}

static void test_checked(int level, size_t flush, size_t len)
{
	u8 *d = make_data(len);
	size_t gz_len;
	u8 *gz = gzip_of(d, len, level, flush, &gz_len);
	struct collect c = { .buf = malloc(len + 1), .cap = len };
	struct obd_mem_io im, gm;
	struct obd_err err = { "" };
	struct obd_gzindex gi;
	char msg[512] = "";
	struct built b;
	int bad = 0, rc;
	u64 k;

	build(gz, gz_len, SPAN, OBD_GZIDX_ALGO_NONE, &b);
	obd_mem_io_init(&im, b.idx, b.idx_len, "gzip.meta");
	obd_mem_io_init(&gm, gz, gz_len, "blob.gz");
	rc = b.rc ? b.rc : obd_gzindex_load(&im.io, gz_len, &gi, &err);
	tap_ok(!rc && gi.n > 3,
	       "checked decode, level %d flush %zu: %llu entries (%s%s)", level, flush,
	       (unsigned long long)gi.n, b.msg, err.msg);
	if (rc || gi.n <= 3)
		goto out;
	for (k = 0; k < gi.n && !bad; k++)
		bad += checked(&gi, &gm.io, d, k, k + 1, msg, sizeof(msg)) != 0;
	tap_ok(!bad, "  every entry to the next (the last to the stream's end) equals the data %s", msg);
	tap_ok(!checked(&gi, &gm.io, d, 0, gi.n, msg, sizeof(msg)) &&
	       !checked(&gi, &gm.io, d, 1, gi.n - 1, msg, sizeof(msg)),
	       "  the whole stream from entry 0, entry 1 to the last entry %s", msg);
	rc = obd_gzindex_inflate_all(&gm.io, len, collect_out, &c, &err);
	tap_ok(!rc && c.len == len && !memcmp(c.buf, d, len), "  inflate_all gives the data (%s)", err.msg);

	/* a window that lies: found by decoding across its entry */
	k = gi.n / 2;
	b.idx[gi.e[k].win_pos + 32767] ^= 1;
	rc = checked(&gi, &gm.io, d, k - 1, k, msg, sizeof(msg));
	tap_ok(rc == -EFSCORRUPTED && strstr(msg, "window"), "  a lying window of entry %llu: %s",
	       (unsigned long long)k, msg);
	b.idx[gi.e[k].win_pos + 32767] ^= 1;
	/* a lying en_pos, bits */
	gi.e[k].en_pos++;
	rc = checked(&gi, &gm.io, d, k - 1, k + 1, msg, sizeof(msg));
	tap_ok(rc == -EFSCORRUPTED && strstr(msg, "no block boundary"), "  a lying en_pos: %s", msg);
	gi.e[k].en_pos--;
	gi.e[k].bits ^= 1;
	rc = checked(&gi, &gm.io, d, k - 1, k, msg, sizeof(msg));
	tap_ok(rc == -EFSCORRUPTED, "  lying bits: %s", msg);
	gi.e[k].bits ^= 1;
	/* the trailer: ISIZE, CRC32, a byte after it */
	gz[gz_len - 1] ^= 0x40;
	rc = checked(&gi, &gm.io, d, gi.n - 1, gi.n, msg, sizeof(msg));
	tap_ok(rc == -EFSCORRUPTED && strstr(msg, "ISIZE"), "  a wrong ISIZE: %s", msg);
	c.len = 0;
	rc = obd_gzindex_inflate_all(&gm.io, len, collect_out, &c, &err);
	tap_ok(rc == -EFSCORRUPTED, "  ... and inflate_all: %s", err.msg);
	gz[gz_len - 1] ^= 0x40;
	gz[gz_len - 6] ^= 0x01;
	c.len = 0;
	rc = obd_gzindex_inflate_all(&gm.io, len, collect_out, &c, &err);
	tap_ok(rc == -EFSCORRUPTED && strstr(err.msg, "check"), "  a wrong CRC32: %s", err.msg);
	gz[gz_len - 6] ^= 0x01;
	c.len = 0;
	rc = obd_gzindex_inflate_all(&gm.io, len - 1, collect_out, &c, &err);
	tap_ok(rc == -EFSCORRUPTED, "  a size other than the stream's: %s", err.msg);
	obd_mem_io_init(&gm, gz, gz_len - 1, "blob.gz");
	c.len = 0;
	rc = obd_gzindex_inflate_all(&gm.io, len, collect_out, &c, &err);
	tap_ok(rc == -EFSCORRUPTED, "  a truncated blob: %s", err.msg);
	obd_gzindex_free(&gi);
out:
	free(c.buf);
	free(b.idx);
	free(gz);
	free(d);
}

/* test_gzindex --build GZ OUT SPAN ALGO: the index of a gzip file (fetchd tests) */
static int build_file(char **argv)
{
	struct obd_gzidx_build_stats st;
	struct obd_err err = { "" };
	struct obd_file_io f;
	int fd, rc;

	rc = obd_file_io_open(&f, argv[2], &err);
	if (rc) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	fd = open(argv[3], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(argv[3]);
		return 1;
	}
	rc = obd_gzindex_build(&f.io, fd, (u32)strtoul(argv[4], NULL, 0),
			       (u8)strtoul(argv[5], NULL, 0), &st, &err);
	close(fd);
	obd_file_io_close(&f);
	if (rc) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	printf("%llu %llu %llu\n", (unsigned long long)st.usize, (unsigned long long)st.gzip_size,
	       (unsigned long long)st.entries);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "--build"))
		return build_file(argv);
	test_seed();
	test_roundtrip(6, 0, OBD_GZIDX_ALGO_ZLIB, 3000000);
	test_roundtrip(6, 0, OBD_GZIDX_ALGO_NONE, 1500000);
	test_roundtrip(1, 0, OBD_GZIDX_ALGO_ZLIB, 2000000);
	test_roundtrip(9, 70000, OBD_GZIDX_ALGO_ZLIB, 1000000);	/* block edges at full flushes */
	test_roundtrip(0, 0, OBD_GZIDX_ALGO_ZLIB, 500000);		/* stored blocks */
	test_roundtrip(6, 0, OBD_GZIDX_ALGO_ZLIB, 10);			/* one entry */
	test_flush_at_span();
	test_span_landing();
	test_malformed();
	test_bad_blobs();
	test_checked(6, 0, 3000000);
	test_checked(9, 70000, 1500000);
	test_checked(1, 0, 2000000);
	return tap_done();
}
