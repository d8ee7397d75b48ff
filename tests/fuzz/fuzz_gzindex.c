// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: TurboOCI's gzip index (lib/user/gzindex.c).
 *   even first byte: bytes 1-4 split the rest into an index file and a
 *     gzip blob; an index the loader accepts has entries in order and
 *     inside the blob, the index and uncompress_file_size, and extracts
 *     from it return at most what was asked or fail with a message;
 *   odd first byte: the rest is a gzip blob to index (bit 1 picks the
 *     window encoding); an index the builder writes loads back, and ranges
 *     extracted through it equal zlib's own decompression of the blob.
 * Both: the daemon's checked decode (obd_gzindex_decode_checked) between
 * neighbouring entries fails with a message or gives bytes; of a built
 * index it must succeed and equal zlib's decompression, and so must the
 * whole-stream inflate (obd_gzindex_inflate_all).
 */
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "fuzz_common.h"
#include "gzindex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define EXTRACT_MAX	65536u
#define FULL_MAX	(16u << 20)	/* decompressions compared whole up to this */

FUZZ_NOCOV static void check_entries(const struct obd_gzindex *gi)
{
	FUZZ_CHECK(gi->n >= 1 && gi->e[0].de_pos == 0, "n %llu", (unsigned long long)gi->n);
	for (u64 i = 0; i < gi->n; i++) {
		const struct obd_gzidx_entry *e = &gi->e[i];

		FUZZ_CHECK(e->de_pos <= gi->usize && e->en_pos <= gi->gzip_size && e->bits <= 7 &&
			   e->win_pos + e->win_len <= gi->io->size,
			   "entry %llu out of range", (unsigned long long)i);
		FUZZ_CHECK(!i || (e->de_pos >= e[-1].de_pos && e->en_pos > e[-1].en_pos),
			   "entry %llu not in order", (unsigned long long)i);
		u64 k = obd_gzindex_seek(gi, e->de_pos);

		FUZZ_CHECK(k >= i && gi->e[k].de_pos == e->de_pos &&
			   (k + 1 == gi->n || gi->e[k + 1].de_pos > e->de_pos),
			   "seek to entry %llu gave %llu", (unsigned long long)i, (unsigned long long)k);
	}
}

static void extract_some(const struct obd_gzindex *gi, struct obd_io *gz, const uint8_t *sel,
			 size_t nsel, const u8 *full, u64 full_len)
{
	u8 *buf = malloc(EXTRACT_MAX);

	FUZZ_CHECK(buf, "out of memory");
	for (size_t i = 0; i + 4 <= nsel && i < 16; i += 4) {
		u64 off = gi->usize ? (u64)obd_get_le32(sel + i) % (gi->usize + 1) : 0;
		size_t len = 1 + obd_get_le32(sel + i) % EXTRACT_MAX;
		struct obd_err err = { "" };
		ssize_t got = obd_gzindex_extract(gi, gz, buf, len, off, &err);

		fuzz_check_err(got < 0 ? (int)got : 0, &err, "obd_gzindex_extract");
		FUZZ_CHECK(got <= (ssize_t)len, "extract returned %zd for %zu", got, len);
		if (full && got >= 0) {
			u64 want = off >= full_len ? 0 : (len < full_len - off ? len : full_len - off);

			FUZZ_CHECK((u64)got == want && !memcmp(buf, full + off, want),
				   "extract of %zu at %llu differs from zlib's decompression", len,
				   (unsigned long long)off);
		}
	}
	free(buf);
}

/* decode_checked between neighbouring entries (at most 8, each at most FULL_MAX out) */
static void checked_some(const struct obd_gzindex *gi, struct obd_io *gz, const u8 *full)
{
	for (u64 i = 0; i < gi->n && i < 8; i++) {
		u64 a = gi->e[i].de_pos, b = i + 1 < gi->n ? gi->e[i + 1].de_pos : gi->usize;
		struct obd_err err = { "" };
		u8 *out;
		int rc;

		if (b - a > FULL_MAX)
			continue;
		out = malloc(b - a + 1);
		FUZZ_CHECK(out, "out of memory");
		rc = obd_gzindex_decode_checked(gi, gz, i, i + 1, out, b - a, &err);
		fuzz_check_err(rc, &err, "obd_gzindex_decode_checked");
		if (full) {
			FUZZ_CHECK(!rc, "a built index's entries %llu..%llu do not decode: %s",
				   (unsigned long long)i, (unsigned long long)(i + 1), err.msg);
			FUZZ_CHECK(!memcmp(out, full + a, b - a),
				   "checked decode of entries %llu..%llu differs from zlib's",
				   (unsigned long long)i, (unsigned long long)(i + 1));
		}
		free(out);
	}
}

struct cmp_ctx {
	const u8 *full;
	u64 len;
};

static int cmp_out(void *ctx, u64 off, const u8 *buf, size_t len)
{
	struct cmp_ctx *c = ctx;

	FUZZ_CHECK(off + len <= c->len && !memcmp(c->full + off, buf, len),
		   "inflate_all differs from zlib at %llu", (unsigned long long)off);
	return 0;
}

static void fuzz_load(const uint8_t *data, size_t size)
{
	struct obd_mem_io im, gm;
	struct obd_gzindex gi;
	struct obd_err err = { "" };
	size_t split;
	int rc;

	if (size < 5)
		return;
	split = obd_get_le32(data + 1) % (size - 5 + 1);
	obd_mem_io_init(&im, data + 5, split, "fuzz.gzip.meta");
	obd_mem_io_init(&gm, data + 5 + split, size - 5 - split, "fuzz.blob");
	rc = obd_gzindex_load(&im.io, gm.io.size, &gi, &err);
	fuzz_check_err(rc, &err, "obd_gzindex_load");
	if (rc)
		return;
	check_entries(&gi);
	extract_some(&gi, &gm.io, data + 1, size - 1 < 16 ? size - 1 : 16, NULL, 0);
	checked_some(&gi, &gm.io, NULL);
	obd_gzindex_free(&gi);
}

/* zlib's decompression of the first member, or NULL past FULL_MAX */
FUZZ_NOCOV static u8 *inflate_all(const uint8_t *gz, size_t len, u64 usize)
{
	u8 *out;
	z_stream s = { 0 };
	int zr;

	if (usize > FULL_MAX)
		return NULL;
	out = malloc(usize + 1);
	FUZZ_CHECK(out && inflateInit2(&s, 47) == Z_OK, "out of memory");
	s.next_in = (u8 *)gz;
	s.avail_in = (uInt)len;
	s.next_out = out;
	s.avail_out = (uInt)usize + 1;
	zr = inflate(&s, Z_FINISH);
	FUZZ_CHECK(zr == Z_STREAM_END && s.total_out == usize && s.total_in == len,
		   "zlib disagrees with the index: %d, %lu of %llu bytes out, %lu of %zu in", zr,
		   s.total_out, (unsigned long long)usize, s.total_in, len);
	inflateEnd(&s);
	return out;
}

static void fuzz_build(const uint8_t *data, size_t size)
{
	struct obd_gzidx_build_stats st;
	struct obd_mem_io gm;
	struct obd_file_io fio;
	struct obd_gzindex gi;
	struct obd_err err = { "" };
	int fd = memfd_create("fuzz-gzindex", MFD_CLOEXEC), rc;
	u8 *full;

	FUZZ_CHECK(fd >= 0, "memfd_create");
	obd_mem_io_init(&gm, data + 1, size - 1, "fuzz.blob");
	rc = obd_gzindex_build(&gm.io, fd, OBD_GZIDX_SPAN_MIN, (data[0] >> 1) & 1, &st, &err);
	fuzz_check_err(rc, &err, "obd_gzindex_build");
	if (rc) {
		close(fd);
		return;
	}
	rc = obd_file_io_from_fd(&fio, fd, "fuzz.gzip.meta", &err);
	FUZZ_CHECK(!rc, "%s", err.msg);
	rc = obd_gzindex_load(&fio.io, size - 1, &gi, &err);
	FUZZ_CHECK(!rc, "a built index does not load: %s", err.msg);
	FUZZ_CHECK(gi.usize == st.usize && gi.n == st.entries && fio.io.size == st.index_size,
		   "the loaded index differs from what was built");
	check_entries(&gi);
	full = inflate_all(data + 1, size - 1, gi.usize);
	extract_some(&gi, &gm.io, data + 1, size - 1 < 16 ? size - 1 : 16, full, gi.usize);
	if (full) {
		struct cmp_ctx c = { full, gi.usize };

		checked_some(&gi, &gm.io, full);
		rc = obd_gzindex_inflate_all(&gm.io, gi.usize, cmp_out, &c, &err);
		FUZZ_CHECK(!rc, "a blob the builder took does not inflate whole: %s", err.msg);
	}
	free(full);
	obd_gzindex_free(&gi);
	obd_file_io_close(&fio);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (data[0] & 1)
		fuzz_build(data, size);
	else
		fuzz_load(data, size);
	return 0;
}
