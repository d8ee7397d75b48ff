// SPDX-License-Identifier: GPL-2.0-only
/*
 * Malformed inputs: every class of broken LSMT / ZFile / tar / layer must be
 * refused with the right -errno and a message naming the io and the field.
 *
 * Starting points are valid images: the reference images (tests/data/
 * overlaybd-ref, a copy of what the reference tools wrote) and small ones
 * built byte by byte by tests/fuzz/mkimg.h. Each case patches exactly one
 * defect into a copy (re-sealing digests and CRCs that are not the subject
 * of the case), so a rejection for an unrelated reason does not pass as a
 * success: the message must name the field.
 *
 * Expected errno per class (obd.h):
 *   EFSCORRUPTED (= EUCLEAN)  an on-disk value out of range or inconsistent
 *   EFSBADCRC    (= EBADMSG)  ZFile header digest, index_crc, block CRC
 *   EOPNOTSUPP               valid but unsupported: LZO (algo 0), IDX_COMP,
 *                            dictionaries; tolerated for block_size 128 KiB,
 *                            algo 7 and unknown flag bits (a future feature
 *                            or corruption: EFSCORRUPTED accepted there too)
 *   EIO                      never expected: the core checks sizes before
 *                            reading, so no case may surface the io's -EIO
 *
 * Then a systematic pass: each byte of the ZFile header block and of the
 * LSMT header/trailer blocks flipped on its own; every open must fail
 * cleanly or give content identical to the unmodified image.
 */
#include <stdlib.h>
#include <string.h>
#include "obd.h"
#include "env_user.h"
#include "tap.h"
#include "testutil.h"
#include "../fuzz/mkimg.h"

#define E(...)	((const int[]){ __VA_ARGS__, 0 })
#define T(...)	((const char *const[]){ __VA_ARGS__, NULL })

static const char *errname(int e)
{
	switch (e) {
	case 0: return "0";
	case EFSCORRUPTED: return "EFSCORRUPTED";
	case EFSBADCRC: return "EFSBADCRC";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EIO: return "EIO";
	case EINVAL: return "EINVAL";
	case ENOMEM: return "ENOMEM";
	default: return "E?";
	}
}

static uint8_t *load(const char *name, size_t *n)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s%s", REF, name);
	return slurp(path, n);
}

static uint8_t *img_dup(const uint8_t *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);

	memcpy(c, p, n);
	return c;
}

/*
 * One rejection: rc must be one of -errs, and the message must contain the
 * io name and one of toks (case-insensitive).
 */
static void check_rej(const char *what, int rc, const struct obd_err *e, const char *io,
		      const int *errs, const char *const *toks)
{
	bool eok = false, tok = false, iok = strstr(e->msg, io) != NULL;

	for (int i = 0; errs[i]; i++)
		eok |= rc == -errs[i];
	for (int i = 0; toks[i]; i++)
		tok |= strcasestr(e->msg, toks[i]) != NULL;
	tap_ok(eok && iok && tok, "%s: %s rejected: %s (%d) \"%s\"", io, what,
	       errname(-rc), rc, e->msg);
	if (!eok) {
		char exp[128] = "";

		for (int i = 0; errs[i]; i++)
			snprintf(exp + strlen(exp), sizeof(exp) - strlen(exp), "%s%s",
				 i ? "/" : "", errname(errs[i]));
		tap_diag("expected errno %s", exp);
	}
	if (!iok)
		tap_diag("message does not name the io \"%s\"", io);
	if (!tok)
		tap_diag("message does not name the field (%s...)", toks[0]);
}

/* ====================================================================== */
/* LSMT */

static int lsmt_open(const uint8_t *img, size_t n, const char *name, struct obd_map **maps,
		     u64 *nmaps, struct obd_lsmt_info *li, struct obd_err *err)
{
	struct obd_mem_io m;

	obd_mem_io_init(&m, img, n, name);
	memset(err, 0, sizeof(*err));
	*maps = NULL;
	*nmaps = 0;
	return obd_lsmt_open_ro(&m.io, li, maps, nmaps, err);
}

static int lsmt_try(const uint8_t *img, size_t n, const char *name, struct obd_err *err)
{
	struct obd_map *maps;
	struct obd_lsmt_info li;
	u64 nm;
	int rc = lsmt_open(img, n, name, &maps, &nm, &li, err);

	obd_free(maps);
	return rc;
}

struct rec {
	u64 off, moff;
	u32 len;
	int zeroed;
	u8 tag;
};

static struct rec rec_get(const uint8_t *p)
{
	u64 w0 = mk_rd64(p), w1 = mk_rd64(p + 8);
	struct rec r = {
		.off = w0 & OBD_MAP_OFFSET_MASK, .len = (u32)(w0 >> 50),
		.moff = w1 & OBD_MAP_MOFFSET_MASK, .zeroed = (int)((w1 >> 55) & 1),
		.tag = (u8)(w1 >> 56),
	};
	return r;
}

static void rec_put(uint8_t *p, struct rec r)
{
	mk_map_raw(p, r.off, r.len, r.moff, r.zeroed, r.tag);
}

static bool maps_equal(const struct obd_map *a, u64 na, const struct obd_map *b, u64 nb)
{
	if (na != nb)
		return false;
	for (u64 i = 0; i < na; i++)
		if (a[i].offset != b[i].offset || a[i].moffset != b[i].moffset ||
		    a[i].length != b[i].length || a[i].zeroed != b[i].zeroed ||
		    a[i].tag != b[i].tag)
			return false;
	return true;
}

static void lsmt_cases(const uint8_t *base, size_t n, const char *name)
{
	const size_t t = n - 4096;
	const u64 ioff = mk_rd64(base + t + 32), isz = mk_rd64(base + t + 40);
	struct obd_err err;
	uint8_t *c;
	int rc, zi = -1, di = -1;

	/* find a zeroed and a data record (other than record 0) */
	for (u64 i = 0; i < isz; i++) {
		struct rec r = rec_get(base + ioff + 16 * i);

		if (r.off == OBD_MAP_INVALID_OFFSET)
			break;
		if (r.zeroed && zi < 0)
			zi = (int)i;
		if (!r.zeroed && i > 0 && di < 0)
			di = (int)i;
	}
	if (zi < 0 || di < 0) {
		tap_ok(0, "%s: image has a zeroed and a second data record", name);
		return;
	}

#define LSMT_CASE(what, errs, toks, ...) do {				\
		c = img_dup(base, n);					\
		__VA_ARGS__;							\
		rc = lsmt_try(c, n, name, &err);			\
		check_rej(what, rc, &err, name, errs, toks);		\
		free(c);						\
	} while (0)

	LSMT_CASE("header bad magic0", E(EFSCORRUPTED), T("magic0"), c[0] ^= 0x20);
	LSMT_CASE("header bad magic1", E(EFSCORRUPTED), T("magic1"), c[8] ^= 0x01);
	LSMT_CASE("trailer bad magic0", E(EFSCORRUPTED), T("magic0"), c[t + 7] = 1);
	LSMT_CASE("trailer bad magic1", E(EFSCORRUPTED), T("magic1"), c[t + 23] ^= 0x80);
	LSMT_CASE("header bit missing", E(EFSCORRUPTED), T("flags"),
		  mk_le32(c + 28, mk_rd32(c + 28) & ~1u));
	LSMT_CASE("header is an index file (data bit missing)", E(EFSCORRUPTED), T("flags"),
		  mk_le32(c + 28, mk_rd32(c + 28) & ~2u));
	LSMT_CASE("trailer sealed bit missing", E(EFSCORRUPTED), T("flags"),
		  mk_le32(c + t + 28, 0x02));
	LSMT_CASE("trailer with header bit", E(EFSCORRUPTED), T("flags"),
		  mk_le32(c + t + 28, 0x07));
	LSMT_CASE("header unknown flag bit 0x40", E(EFSCORRUPTED, EOPNOTSUPP), T("flags"),
		  mk_le32(c + 28, mk_rd32(c + 28) | 0x40));
	LSMT_CASE("trailer unknown flag bit 0x80000000", E(EFSCORRUPTED, EOPNOTSUPP), T("flags"),
		  mk_le32(c + t + 28, mk_rd32(c + t + 28) | 0x80000000u));
	LSMT_CASE("index_size 1000001 (over 1,000,000)", E(EFSCORRUPTED), T("index_size"),
		  mk_le64(c + t + 40, 1000001));
	LSMT_CASE("index_size 2^60 (16 * size overflows)", E(EFSCORRUPTED), T("index_size"),
		  mk_le64(c + t + 40, 1ull << 60));
	LSMT_CASE("index runs into the trailer", E(EFSCORRUPTED), T("index_offset", "index_size"),
		  mk_le64(c + t + 40, (t - ioff) / 16 + 1));
	LSMT_CASE("index_offset past EOF", E(EFSCORRUPTED), T("index_offset"),
		  mk_le64(c + t + 32, n + 4096));
	LSMT_CASE("index_offset 2^64-16 (wraps)", E(EFSCORRUPTED), T("index_offset"),
		  mk_le64(c + t + 32, ~0ull - 15));
	LSMT_CASE("index_offset 2048 (< 4096)", E(EFSCORRUPTED), T("index_offset"),
		  mk_le64(c + t + 32, 2048));
	LSMT_CASE("index_offset 0", E(EFSCORRUPTED), T("index_offset"),
		  mk_le64(c + t + 32, 0));
	LSMT_CASE("unsorted records (0 and 1 swapped)", E(EFSCORRUPTED), T("offset"), {
		uint8_t tmp[16];

		memcpy(tmp, c + ioff, 16);
		memcpy(c + ioff, c + ioff + 16, 16);
		memcpy(c + ioff + 16, tmp, 16);
	});
	LSMT_CASE("overlapping records (1 starts inside 0)", E(EFSCORRUPTED), T("offset"), {
		struct rec r0 = rec_get(c + ioff), r1 = rec_get(c + ioff + 16);

		r1.off = r0.off + r0.len - 1;
		rec_put(c + ioff + 16, r1);
	});
	LSMT_CASE("duplicate record", E(EFSCORRUPTED), T("offset"),
		  memcpy(c + ioff + 16, c + ioff, 16));
	LSMT_CASE("data moffset 7 (< 8, inside the header)", E(EFSCORRUPTED), T("moffset"), {
		struct rec r = rec_get(c + ioff + 16 * di);

		r.moff = 7;
		rec_put(c + ioff + 16 * di, r);
	});
	LSMT_CASE("zeroed moffset 7 (< 8)", E(EFSCORRUPTED), T("moffset"), {
		struct rec r = rec_get(c + ioff + 16 * zi);

		r.moff = 7;
		rec_put(c + ioff + 16 * zi, r);
	});
	LSMT_CASE("moffset+length one sector past the index", E(EFSCORRUPTED), T("moffset"), {
		struct rec r = rec_get(c + ioff + 16 * di);

		r.moff = ioff / 512 - r.len + 1;
		rec_put(c + ioff + 16 * di, r);
	});
	LSMT_CASE("moffset 2^55-1 (mend overflows the 55 bits)", E(EFSCORRUPTED), T("moffset"), {
		struct rec r = rec_get(c + ioff + 16 * di);

		r.moff = OBD_MAP_MOFFSET_MASK;
		rec_put(c + ioff + 16 * di, r);
	});
	LSMT_CASE("zeroed moffset past the index", E(EFSCORRUPTED), T("moffset"), {
		struct rec r = rec_get(c + ioff + 16 * zi);

		r.moff = ioff / 512 + 1;
		rec_put(c + ioff + 16 * zi, r);
	});
	LSMT_CASE("record length 0", E(EFSCORRUPTED), T("length"), {
		struct rec r = rec_get(c + ioff + 16 * di);

		r.len = 0;
		rec_put(c + ioff + 16 * di, r);
	});
#undef LSMT_CASE

	/* accepted oddities: on-disk tags are ignored, padding records are skipped anywhere */
	{
		struct obd_map *m0, *m1;
		struct obd_lsmt_info li;
		u64 n0, n1;

		rc = lsmt_open(base, n, name, &m0, &n0, &li, &err);
		c = img_dup(base, n);
		c[ioff + 16 * di + 15] = 0x5a;	/* tag of a data record */
		rc |= lsmt_open(c, n, name, &m1, &n1, &li, &err);
		tap_ok(rc == 0 && maps_equal(m0, n0, m1, n1),
		       "%s: non-zero on-disk tag is read as 0 (rc %d %s)", name, rc, err.msg);
		obd_free(m1);
		mk_map_raw(c + ioff + 16 * di, OBD_MAP_INVALID_OFFSET, 0, 0, 0, 0);
		rc = lsmt_open(c, n, name, &m1, &n1, &li, &err);
		tap_ok(rc == 0 && n1 == n0 - 1 && maps_equal(m0, (u64)di, m1, (u64)di) &&
		       maps_equal(m0 + di + 1, n0 - di - 1, m1 + di, n1 - di),
		       "%s: a padding record in the middle is skipped (rc %d %s)", name, rc, err.msg);
		obd_free(m1);
		obd_free(m0);
		free(c);
	}

	/* truncation: every size class */
	const size_t cuts[] = { 0, 100, 4095, 4096, 8191, 8192, n - 4096, n - 1 };

	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		char what[64];

		snprintf(what, sizeof(what), "truncated to %zu bytes", cuts[i]);
		c = img_dup(base, cuts[i]);
		rc = lsmt_try(c, cuts[i], name, &err);
		check_rej(what, rc, &err, name, E(EFSCORRUPTED),
			  T("size", "magic", "flags", "index"));
		free(c);
	}
	/* a file with extra bytes after the trailer: the trailer is not at the end */
	c = malloc(n + 512);
	memcpy(c, base, n);
	memset(c + n, 0, 512);
	rc = lsmt_try(c, n + 512, name, &err);
	check_rej("512 bytes appended", rc, &err, name, E(EFSCORRUPTED), T("magic", "trailer"));
	free(c);
}

static bool clean_failure(int rc, const struct obd_err *e, const char *io)
{
	return (rc == -EFSCORRUPTED || rc == -EFSBADCRC || rc == -EOPNOTSUPP) &&
	       strstr(e->msg, io) != NULL;
}

/*
 * Flip each byte of the header and trailer blocks. Content = the maps; the
 * virtual size, uuids and tag are free-form values and may change.
 */
static void lsmt_flips(const uint8_t *base, size_t n, const char *name)
{
	struct obd_map *ref, *maps;
	struct obd_lsmt_info li;
	struct obd_err err;
	u64 nref, nm;
	int bad = 0, ok = 0, rej = 0;
	uint8_t *c = img_dup(base, n);

	if (lsmt_open(base, n, name, &ref, &nref, &li, &err)) {
		tap_ok(0, "%s: flip pass: base opens (%s)", name, err.msg);
		free(c);
		return;
	}
	for (int blk = 0; blk < 2; blk++) {
		size_t start = blk ? n - 4096 : 0;

		for (size_t i = start; i < start + 4096; i++) {
			c[i] ^= 0xff;
			int rc = lsmt_open(c, n, name, &maps, &nm, &li, &err);

			if (rc == 0 && maps_equal(ref, nref, maps, nm)) {
				ok++;
			} else if (rc < 0 && clean_failure(rc, &err, name)) {
				rej++;
			} else {
				if (bad++ < 5)
					tap_diag("%s byte %zu ^0xff: rc %d, %s", blk ? "trailer" : "header",
						 i - start, rc, rc ? err.msg : "different maps");
			}
			obd_free(maps);
			c[i] ^= 0xff;
		}
	}
	tap_ok(bad == 0, "%s: 8192 single-byte flips of header+trailer: %d identical, %d rejected, "
	       "%d wrong", name, ok, rej, bad);
	/* the must-reject bytes really were rejected (magic, flags, index fields) */
	tap_ok(rej >= 2 * (24 + 4) + 16, "%s: flips of magic/flags/index fields rejected (%d)",
	       name, rej);
	obd_free(ref);
	free(c);
}

/* ====================================================================== */
/* ZFile */

/* Open, then read the whole stream; *stage 0 = open failed, 1 = read failed. */
static int zfile_try(const uint8_t *img, size_t n, const char *name, struct obd_err *err,
		     uint8_t **out, size_t *olen, int *stage)
{
	struct obd_mem_io m;
	struct obd_zfile zf;
	uint8_t *buf;
	int rc;

	obd_mem_io_init(&m, img, n, name);
	memset(err, 0, sizeof(*err));
	memset(&zf, 0, sizeof(zf));
	*stage = 0;
	if (out)
		*out = NULL;
	rc = obd_zfile_open(&zf, &m.io, &obd_user_codec, err);
	if (rc)
		return rc;
	*stage = 1;
	buf = malloc(zf.io.size ? zf.io.size : 1);
	for (u64 off = 0; off < zf.io.size;) {
		size_t len = zf.io.size - off < 65536 ? (size_t)(zf.io.size - off) : 65536;

		rc = obd_io_read(&zf.io, buf + off, len, off);
		if (rc)
			break;	/* io->read has no err: see zfile_block_err() */
		off += len;
	}
	if (!rc) {
		*stage = 2;
		if (olen)
			*olen = zf.io.size;
	}
	obd_zfile_close(&zf);
	if (rc || !out)
		free(buf);
	else
		*out = buf;
	return rc;
}

/*
 * Read errors come back through io->read, which has no err; check the
 * message with obd_zfile_decode_block on the same stored bytes instead.
 */
static int zfile_block_err(const uint8_t *img, size_t n, const char *name, u64 b,
			   struct obd_err *err)
{
	struct obd_mem_io m;
	struct obd_zfile zf;
	u64 off;
	u32 len;
	int rc;
	uint8_t *dst;

	obd_mem_io_init(&m, img, n, name);
	memset(err, 0, sizeof(*err));
	memset(&zf, 0, sizeof(zf));
	rc = obd_zfile_open(&zf, &m.io, &obd_user_codec, err);
	if (rc)
		return rc;
	obd_zfile_block_range(&zf, b, &off, &len);
	dst = malloc(zf.info.block_size);
	rc = obd_zfile_decode_block(&zf.info, b, img + off, len, dst, &obd_user_codec, false,
				    name, err);
	free(dst);
	obd_zfile_close(&zf);
	return rc < 0 ? rc : 0;
}

struct zf_base {
	const char *name;
	const uint8_t *img;
	size_t n;
	const uint8_t *plain;	/* expected uncompressed stream */
	size_t plen;
	bool ow;		/* header overwritten: the header carries the index */
};

/* the block carrying index_offset/index_size/index_crc/original size */
static size_t zf_active(const struct zf_base *z)
{
	return z->ow ? 0 : z->n - 512;
}

/* set a field in both blocks, re-sealing both digests */
static void zf_both32(uint8_t *c, size_t n, size_t field, u32 v)
{
	mk_le32(c + field, v);
	mk_le32(c + n - 512 + field, v);
	mk_zfile_digest(c);
	mk_zfile_digest(c + n - 512);
}

static void zf_reseal(uint8_t *c, size_t n)
{
	mk_zfile_digest(c);
	mk_zfile_digest(c + n - 512);
}

static void zfile_cases(const struct zf_base *z)
{
	const size_t n = z->n, a = zf_active(z);
	const u64 ioff = mk_rd64(z->img + a + 40), nblk = mk_rd64(z->img + a + 48);
	const u32 bs = mk_rd32(z->img + 72);
	struct obd_err err;
	uint8_t *c;
	int rc, stage;

	/* positive control: opens and reproduces the plain stream */
	{
		uint8_t *out;
		size_t olen = 0;

		rc = zfile_try(z->img, n, z->name, &err, &out, &olen, &stage);
		tap_ok(rc == 0 && olen == z->plen && !memcmp(out, z->plain, olen),
		       "%s: valid image decodes to the expected %zu bytes (rc %d %s)", z->name,
		       z->plen, rc, err.msg);
		free(out);
	}

#define ZF_CASE(what, errs, toks, ...) do {					\
		c = img_dup(z->img, n);						\
		__VA_ARGS__;								\
		rc = zfile_try(c, n, z->name, &err, NULL, NULL, &stage);	\
		if (stage)							\
			tap_diag("opened (stage %d) instead of being refused", stage); \
		check_rej(what, stage ? 0 : rc, &err, z->name, errs, toks);	\
		free(c);							\
	} while (0)

	ZF_CASE("header bad magic0", E(EFSCORRUPTED), T("magic"),
		{ c[0] = 'z'; mk_zfile_digest(c); });
	ZF_CASE("header bad magic1", E(EFSCORRUPTED), T("magic"),
		{ c[20] = 'X'; mk_zfile_digest(c); });
	ZF_CASE("header bad digest", E(EFSBADCRC), T("digest"), c[28] ^= 1);
	ZF_CASE("header digest of a flipped padding byte", E(EFSBADCRC), T("digest"), c[300] = 1);
	ZF_CASE("header bit missing", E(EFSCORRUPTED), T("flags"),
		{ c[32] &= ~1; mk_zfile_digest(c); });
	ZF_CASE("header unknown flag 0x40", E(EFSCORRUPTED, EOPNOTSUPP), T("flags"),
		{ c[32] |= 0x40; mk_zfile_digest(c); });
	ZF_CASE("header unknown flag bit 63", E(EFSCORRUPTED, EOPNOTSUPP), T("flags"),
		{ c[39] |= 0x80; mk_zfile_digest(c); });
	if (!z->ow) {
		ZF_CASE("trailer not sealed (0x12)", E(EFSCORRUPTED), T("flags"),
			{ c[n - 512 + 32] = 0x12; zf_reseal(c, n); });
		ZF_CASE("trailer with header bit (0x17)", E(EFSCORRUPTED), T("flags"),
			{ c[n - 512 + 32] = 0x17; zf_reseal(c, n); });
		ZF_CASE("trailer unknown flag 0x80", E(EFSCORRUPTED, EOPNOTSUPP), T("flags"),
			{ c[n - 512 + 32] |= 0x80; zf_reseal(c, n); });
		ZF_CASE("trailer bad magic", E(EFSCORRUPTED), T("magic"),
			{ c[n - 512 + 1] = 'x'; zf_reseal(c, n); });
	}
	ZF_CASE("index_offset past EOF", E(EFSCORRUPTED), T("index_offset"),
		{ mk_le64(c + a + 40, n + 4096); zf_reseal(c, n); });
	ZF_CASE("index_offset 2^64-8 (wraps)", E(EFSCORRUPTED), T("index_offset"),
		{ mk_le64(c + a + 40, ~0ull - 7); zf_reseal(c, n); });
	ZF_CASE("index_offset 100 (inside the header)", E(EFSCORRUPTED), T("index_offset"),
		{ mk_le64(c + a + 40, 100); zf_reseal(c, n); });
	ZF_CASE("index_size 1e9+1 (and original size to match)", E(EFSCORRUPTED), T("index_size"), {
		mk_le64(c + a + 48, 1000000001ull);
		mk_le64(c + a + 56, 1000000001ull * bs);
		zf_reseal(c, n);
	});
	ZF_CASE("index_size 2^62 (4 * n overflows)", E(EFSCORRUPTED),
		T("index_size", "original_file_size"), {
		mk_le64(c + a + 48, 1ull << 62);
		mk_le64(c + a + 56, ~0ull);
		zf_reseal(c, n);
	});
	ZF_CASE("index_size + 1 runs into the trailer", E(EFSCORRUPTED),
		T("index_offset", "index_size"), {
		mk_le64(c + a + 48, nblk + 1);
		mk_le64(c + a + 56, (nblk + 1) * bs);
		zf_reseal(c, n);
	});
	ZF_CASE("index_crc wrong", E(EFSBADCRC), T("index_crc"),
		{ c[a + 64] ^= 0x10; zf_reseal(c, n); });
	/* two different stored sizes swapped: every range check still passes */
	ZF_CASE("jump table entries swapped, index_crc kept", E(EFSBADCRC), T("index_crc"), {
		for (u64 k = 0; k + 1 < nblk; k++) {
			u32 x = mk_rd32(c + ioff + 4 * k), y = mk_rd32(c + ioff + 4 * k + 4);

			if (x != y) {
				mk_le32(c + ioff + 4 * k, y);
				mk_le32(c + ioff + 4 * k + 4, x);
				break;
			}
		}
	});
	ZF_CASE("stored size 0 (block 0)", E(EFSCORRUPTED), T("stored size", "size"), {
		mk_le32(c + ioff, 0);
		mk_le32(c + a + 64, mk_crc32c(0, c + ioff, nblk * 4));
		zf_reseal(c, n);
	});
	if (z->img[88])
		ZF_CASE("stored size 4 with CRC on (no payload)", E(EFSCORRUPTED),
			T("stored size", "size"), {
			mk_le32(c + ioff, 4);
			mk_le32(c + a + 64, mk_crc32c(0, c + ioff, nblk * 4));
			zf_reseal(c, n);
		});
	ZF_CASE("sum of stored sizes past the index", E(EFSCORRUPTED), T("index_offset", "ends at"), {
		u64 l = ioff + 4 * (nblk - 1);

		mk_le32(c + l, mk_rd32(c + l) + 1);
		mk_le32(c + a + 64, mk_crc32c(0, c + ioff, nblk * 4));
		zf_reseal(c, n);
	});
	ZF_CASE("stored size 0xffffffff (sum overflows u32)", E(EFSCORRUPTED),
		T("stored size", "index_offset", "ends at"), {
		mk_le32(c + ioff, 0xffffffffu);
		mk_le32(c + a + 64, mk_crc32c(0, c + ioff, nblk * 4));
		zf_reseal(c, n);
	});
	ZF_CASE("algo 0 (LZO, unimplemented)", E(EOPNOTSUPP), T("algo"),
		{ c[76] = 0; c[n - 512 + 76] = 0; zf_reseal(c, n); });
	ZF_CASE("algo 7 (undefined)", E(EOPNOTSUPP, EFSCORRUPTED), T("algo"),
		{ c[76] = 7; c[n - 512 + 76] = 7; zf_reseal(c, n); });
	ZF_CASE("block_size 1000 (not a power of two)", E(EFSCORRUPTED), T("block_size"),
		zf_both32(c, n, 72, 1000));
	ZF_CASE("block_size 128 KiB (over 64 KiB)", E(EOPNOTSUPP, EFSCORRUPTED), T("block_size"),
		zf_both32(c, n, 72, 131072));
	ZF_CASE("block_size 0", E(EFSCORRUPTED), T("block_size"), zf_both32(c, n, 72, 0));
	ZF_CASE("block_size 2048 (under 4 KiB)", E(EFSCORRUPTED, EOPNOTSUPP), T("block_size"),
		zf_both32(c, n, 72, 2048));
	ZF_CASE("IDX_COMP flag (0x20)", E(EOPNOTSUPP), T("flags", "compressed index"),
		{ c[32] |= 0x20; c[n - 512 + 32] |= 0x20; zf_reseal(c, n); });
	ZF_CASE("dict_size 512", E(EOPNOTSUPP), T("dict_size"), zf_both32(c, n, 84, 512));
	ZF_CASE("verify 2", E(EFSCORRUPTED), T("verify"),
		{ c[88] = 2; c[n - 512 + 88] = 2; zf_reseal(c, n); });
	ZF_CASE("original size one block larger than the block count", E(EFSCORRUPTED),
		T("index_size", "original_file_size"),
		{ mk_le64(c + a + 56, mk_rd64(c + a + 56) + bs); zf_reseal(c, n); });
	ZF_CASE("original size 0 with blocks", E(EFSCORRUPTED),
		T("index_size", "original_file_size"),
		{ mk_le64(c + a + 56, 0); zf_reseal(c, n); });
	ZF_CASE("original size 2^64-1", E(EFSCORRUPTED),
		T("index_size", "original_file_size"),
		{ mk_le64(c + a + 56, ~0ull); zf_reseal(c, n); });
#undef ZF_CASE

	/* truncation */
	{
		const size_t cuts[] = { 0, 100, 511, 512,
					z->ow ? ioff + 4 * nblk - 1 : n - 1 };

		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
			char what[64];

			snprintf(what, sizeof(what), "truncated to %zu bytes", cuts[i]);
			c = img_dup(z->img, cuts[i]);
			rc = zfile_try(c, cuts[i], z->name, &err, NULL, NULL, &stage);
			check_rej(what, stage ? 0 : rc, &err, z->name, E(EFSCORRUPTED),
				  T("size", "magic", "index_offset", "flags"));
			free(c);
		}
	}

	/* data-path errors: the open succeeds, the read of block 0 fails */
	{
		u32 s0 = mk_rd32(z->img + ioff);
		uint8_t verify = z->img[88];

		if (verify) {
			c = img_dup(z->img, n);
			c[512 + s0 - 1] ^= 0x40;	/* block 0's CRC */
			rc = zfile_try(c, n, z->name, &err, NULL, NULL, &stage);
			tap_ok(stage == 1 && rc == -EFSBADCRC,
			       "%s: block 0 CRC wrong: open ok, read fails with EFSBADCRC (stage %d, %s)",
			       z->name, stage, errname(-rc));
			rc = zfile_block_err(c, n, z->name, 0, &err);
			check_rej("block 0 CRC wrong (decode_block)", rc, &err, z->name,
				  E(EFSBADCRC), T("crc"));
			/* a payload byte changed instead: the CRC still catches it */
			c[512 + s0 - 1] ^= 0x40;
			c[512] ^= 0x01;
			rc = zfile_try(c, n, z->name, &err, NULL, NULL, &stage);
			tap_ok(stage == 1 && rc == -EFSBADCRC,
			       "%s: block 0 payload flipped: read fails with EFSBADCRC (stage %d, %s)",
			       z->name, stage, errname(-rc));
			free(c);
		}

		/* undecodable block with a valid CRC: the decoder must catch it */
		c = img_dup(z->img, n);
		u32 pl = verify ? s0 - 4 : s0;

		/* LZ4: a literal run longer than the input; zstd: a bad magic */
		memset(c + 512, 0xff, pl);
		if (verify)
			mk_le32(c + 512 + pl, mk_crc32c(100007u, c + 512, pl));
		rc = zfile_try(c, n, z->name, &err, NULL, NULL, &stage);
		tap_ok(stage == 1 && rc == -EFSCORRUPTED,
		       "%s: undecodable block 0 with a valid CRC: open ok, read fails with "
		       "EFSCORRUPTED (stage %d, %s)", z->name, stage, errname(-rc));
		rc = zfile_block_err(c, n, z->name, 0, &err);
		check_rej("undecodable block 0 with a valid CRC (decode_block)", rc, &err, z->name,
			  E(EFSCORRUPTED), T("block 0", "decode"));
		free(c);
	}
}

/*
 * Flip each byte of the 512-byte header: as is (the digest must catch all
 * of them when the DIGEST flag is set) and with the digest re-sealed (the
 * field checks must then catch what matters). Either a clean failure or an
 * identical stream.
 */
static void zfile_flips(const struct zf_base *z)
{
	for (int reseal = 0; reseal < 2; reseal++) {
		int bad = 0, ok = 0, rej = 0;
		uint8_t *c = img_dup(z->img, z->n);

		for (size_t i = 0; i < 512; i++) {
			struct obd_err err;
			uint8_t *out;
			size_t olen = 0;
			int rc, stage;

			if (reseal && i >= 28 && i < 32)
				continue;
			c[i] ^= 0xff;
			if (reseal)
				mk_zfile_digest(c);
			rc = zfile_try(c, z->n, z->name, &err, &out, &olen, &stage);
			if (rc == 0 && olen == z->plen && !memcmp(out, z->plain, olen))
				ok++;
			else if (rc < 0 && stage == 0 && clean_failure(rc, &err, z->name))
				rej++;
			else if (rc < 0 && stage == 1 &&
				 (rc == -EFSCORRUPTED || rc == -EFSBADCRC))
				rej++;	/* caught on read, e.g. a shorter original size */
			else if (bad++ < 5)
				tap_diag("byte %zu ^0xff: rc %d stage %d, %s", i, rc, stage,
					 rc ? err.msg : "different content");
			free(out);
			memcpy(c, z->img, 512);
		}
		tap_ok(bad == 0, "%s: 512 single-byte header flips%s: %d identical, %d rejected, "
		       "%d wrong", z->name, reseal ? " (digest re-sealed)" : "", ok, rej, bad);
		if (!reseal)
			tap_ok(ok == 0, "%s: digest catches every header byte flip (%d not caught)",
			       z->name, ok);
		free(c);
	}
}

/* ====================================================================== */
/* tar */

static int tar_try(const uint8_t *img, size_t n, const char *name, struct obd_tar_info *ti,
		   struct obd_err *err)
{
	struct obd_mem_io m;

	obd_mem_io_init(&m, img, n, name);
	memset(err, 0, sizeof(*err));
	memset(ti, 0, sizeof(*ti));
	return obd_tar_probe(&m.io, ti, err);
}

static int layer_try(const uint8_t *img, size_t n, const char *name, struct obd_err *err)
{
	struct obd_mem_io m;
	struct obd_layer l;
	int rc;

	obd_mem_io_init(&m, img, n, name);
	memset(err, 0, sizeof(*err));
	rc = obd_layer_open(&l, &m.io, &obd_user_codec, err);
	if (!rc)
		obd_layer_close(&l);
	return rc;
}

/* Replace the pax record; the 'x' header's size follows, checksum re-sealed. */
static void set_pax(uint8_t *c, const char *rec)
{
	size_t l = strlen(rec);

	memset(c + 512, 0, 512);
	memcpy(c + 512, rec, l);
	mk_tar_octal((char *)c + 124, 12, l);
	mk_tar_cksum(c);
}

static void tar_cases(const uint8_t *base, size_t n, const char *name, u64 payload)
{
	struct obd_tar_info ti;
	struct obd_err err;
	char rec[96];
	uint8_t *c;
	int rc;

	rc = tar_try(base, n, name, &ti, &err);
	tap_ok(rc == 1 && ti.payload_off == 1536 && ti.payload_size == payload,
	       "%s: valid tar: payload at %llu, %llu bytes (rc %d %s)", name,
	       (unsigned long long)ti.payload_off, (unsigned long long)ti.payload_size, rc,
	       err.msg);

	/* not a tar at all: probe says 0, and the layer refuses the bytes */
#define NOT_TAR(what, ...) do {						\
		c = img_dup(base, n);						\
		__VA_ARGS__;								\
		rc = tar_try(c, n, name, &ti, &err);				\
		tap_ok(rc == 0, "%s: %s: probe says not a tar (rc %d %s)", name, what, rc, err.msg); \
		rc = layer_try(c, n, name, &err);				\
		check_rej(what, rc, &err, name, E(EFSCORRUPTED), T("magic"));	\
		free(c);							\
	} while (0)

	NOT_TAR("bad magic \"ustax\"", { c[261] = 'x'; mk_tar_cksum(c); });
	NOT_TAR("bad version \"01\"", { c[264] = '1'; mk_tar_cksum(c); });
	NOT_TAR("GNU version \" \\0\"", { c[263] = ' '; c[264] = 0; mk_tar_cksum(c); });
	NOT_TAR("bad checksum", c[150] = (uint8_t)(c[150] == '7' ? '6' : '7'));
	NOT_TAR("checksum not octal", { memcpy(c + 148, "9999999", 7); });
#undef NOT_TAR

#define PAX_CASE(what, toks, ...) do {					\
		c = img_dup(base, n);						\
		__VA_ARGS__;								\
		rc = tar_try(c, n, name, &ti, &err);				\
		check_rej(what, rc, &err, name, E(EFSCORRUPTED), toks);	\
		free(c);							\
	} while (0)

	snprintf(rec, sizeof(rec), "abc size=%llu\n", (unsigned long long)payload);
	PAX_CASE("pax record \"abc size=..\"", T("pax"), set_pax(c, rec));
	mk_pax_record(rec, sizeof(rec), payload);
	rec[0]++;	/* the length prefix one too large (or 10 more) */
	PAX_CASE("pax record length mismatch", T("pax"), set_pax(c, rec));
	PAX_CASE("pax size not numeric", T("pax"), {
		char r[96];

		mk_pax_record(r, sizeof(r), payload);
		r[strlen(r) - 3] = 'x';
		set_pax(c, r);
	});
	PAX_CASE("pax size empty", T("pax"), set_pax(c, "8 size=\n"));
	PAX_CASE("pax size 2^64 + 1 (overflows)", T("pax", "size"),
		 set_pax(c, "29 size=18446744073709551617\n"));
	PAX_CASE("pax record without newline", T("pax"), {
		char r[96];

		mk_pax_record(r, sizeof(r), payload);
		r[strlen(r) - 1] = ' ';
		set_pax(c, r);
	});
	PAX_CASE("pax record length 0", T("pax"), set_pax(c, "0 size=1\n"));
	PAX_CASE("pax header size 0", T("pax"), {
		mk_tar_octal((char *)c + 124, 12, 0);
		mk_tar_cksum(c);
	});
	PAX_CASE("pax header size 4096 (more than one block)", T("pax"), {
		mk_tar_octal((char *)c + 124, 12, 4096);
		mk_tar_cksum(c);
	});
	PAX_CASE("payload past EOF (pax size = file size)", T("size", "payload"), {
		char r[96];

		mk_pax_record(r, sizeof(r), n);
		set_pax(c, r);
	});
	PAX_CASE("member header after pax not ustar", T("member", "header", "ustar"),
		 { c[1024 + 257] = 'X'; mk_tar_cksum(c + 1024); });
#undef PAX_CASE
	rc = tar_try(base, 700, name, &ti, &err);
	check_rej("truncated to 700 bytes (inside the pax data)", rc, &err, name,
		  E(EFSCORRUPTED), T("size", "pax"));
}

static void ustar_cases(void)
{
	static const uint8_t payload[3000] = { 9, 8, 7 };
	struct obd_tar_info ti;
	struct obd_err err;
	size_t n;
	uint8_t *t = mk_tar(payload, sizeof(payload), MK_TAR_NOPAX, &n);
	int rc;

	rc = tar_try(t, n, "mk.ustar", &ti, &err);
	tap_ok(rc == 1 && ti.payload_off == 512 && ti.payload_size == sizeof(payload),
	       "mk.ustar: plain ustar: payload at 512, 3000 bytes (rc %d)", rc);
	mk_tar_octal((char *)t + 124, 12, n);
	mk_tar_cksum(t);
	rc = tar_try(t, n, "mk.ustar", &ti, &err);
	check_rej("ustar size past EOF", rc, &err, "mk.ustar", E(EFSCORRUPTED), T("size"));
	memcpy(t + 124, "12345678x00", 11);
	mk_tar_cksum(t);
	rc = tar_try(t, n, "mk.ustar", &ti, &err);
	check_rej("ustar size not octal", rc, &err, "mk.ustar", E(EFSCORRUPTED), T("size"));
	free(t);
}

/* ====================================================================== */
/* layers */

static void layer_cases(const uint8_t *lsmt, size_t ln, const uint8_t *zf_ow, size_t zn)
{
	struct obd_err err;
	uint8_t garbage[20000];
	size_t n, gn, tn;
	uint8_t *z, *t;
	int rc;

	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (uint8_t)((i * 2654435761u) >> 13);

	/* positive: lsmt, zfile(lsmt), tar(zfile(lsmt)), tar(lsmt) */
	{
		const char *nm[4] = { "mk.layer.lsmt", "mk.layer.zfile", "mk.layer.tar.zfile",
				      "mk.layer.tar" };
		uint8_t *img[4];
		size_t len[4];
		unsigned int wrap[4] = { 0, OBD_WRAP_ZFILE, OBD_WRAP_TAR | OBD_WRAP_ZFILE,
					 OBD_WRAP_TAR };

		img[0] = img_dup(lsmt, ln);
		len[0] = ln;
		img[1] = img_dup(zf_ow, zn);
		len[1] = zn;
		img[2] = mk_tar(zf_ow, zn, 0, &len[2]);
		img[3] = mk_tar(lsmt, ln, 0, &len[3]);
		for (int i = 0; i < 4; i++) {
			struct obd_mem_io m;
			struct obd_layer l;

			obd_mem_io_init(&m, img[i], len[i], nm[i]);
			rc = obd_layer_open(&l, &m.io, &obd_user_codec, &err);
			tap_ok(rc == 0 && l.wrap == wrap[i] && l.nmaps == 6 &&
			       l.info.virtual_size == MK_SMALL_VSIZE,
			       "%s: opens, wrap 0x%x, 6 maps (rc %d %s)", nm[i], rc ? 0 : l.wrap,
			       rc, rc ? err.msg : "");
			if (!rc)
				obd_layer_close(&l);
			free(img[i]);
		}
	}

	/* tar(zfile(garbage)): a valid ZFile whose content is not an LSMT */
	z = mk_zfile(garbage, sizeof(garbage), 4096, 1, MK_ZF_OVERWRITE, &n);
	t = mk_tar(z, n, 0, &tn);
	rc = layer_try(t, tn, "mk.tar.zfile.garbage", &err);
	check_rej("tar(zfile(garbage)): not an LSMT inside", rc, &err, "mk.tar.zfile.garbage",
		  E(EFSCORRUPTED), T("magic"));
	free(t);
	rc = layer_try(z, n, "mk.zfile.garbage", &err);
	check_rej("zfile(non-LSMT)", rc, &err, "mk.zfile.garbage", E(EFSCORRUPTED), T("magic"));
	free(z);

	/* tar(ZFile header + garbage): the jump table is garbage */
	memcpy(garbage, zf_ow, 512);
	gn = zn < sizeof(garbage) ? zn : sizeof(garbage);
	t = mk_tar(garbage, gn, 0, &tn);
	rc = layer_try(t, tn, "mk.tar.zfilehdr.garbage", &err);
	check_rej("tar(ZFile header + garbage)", rc, &err, "mk.tar.zfilehdr.garbage",
		  E(EFSCORRUPTED, EFSBADCRC), T("zfile"));
	free(t);

	/* zfile(LSMT with a broken index): the error says where */
	{
		uint8_t *l = img_dup(lsmt, ln);
		u64 io = mk_rd64(l + ln - 4096 + 32);
		struct rec r = rec_get(l + io);

		r.len = 0;
		rec_put(l + io, r);
		z = mk_zfile(l, ln, 4096, 2, 0, &n);
		rc = layer_try(z, n, "mk.zfile.badlsmt", &err);
		check_rej("zfile(LSMT with a length-0 record)", rc, &err, "mk.zfile.badlsmt",
			  E(EFSCORRUPTED), T("length"));
		free(z);
		free(l);
	}

	/* tar whose pax size cuts the ZFile short: the trailer is not at the window's end */
	{
		size_t zn2, tn2;
		uint8_t *z2 = mk_zfile(lsmt, ln, 4096, 1, 0, &zn2);
		uint8_t *t2 = mk_tar(z2, zn2, 0, &tn2);

		char r[64];

		mk_pax_record(r, sizeof(r), zn2 - 512);
		set_pax(t2, r);
		rc = layer_try(t2, tn2, "mk.tar.short", &err);
		check_rej("tar(zfile) with the pax size 512 bytes short", rc, &err, "mk.tar.short",
			  E(EFSCORRUPTED), T("trailer", "magic"));
		free(t2);
		free(z2);
	}

	/* nothing recognisable */
	rc = layer_try(garbage + 512, 9000, "mk.garbage", &err);
	check_rej("garbage", rc, &err, "mk.garbage", E(EFSCORRUPTED), T("magic"));
	rc = layer_try(garbage, 0, "mk.empty", &err);
	check_rej("empty file", rc, &err, "mk.empty", E(EFSCORRUPTED), T("size", "magic"));
}

/* ====================================================================== */

int main(void)
{
	size_t ln, lsn, zn, zon, zsn, r1n, r1zn, r2n;
	uint8_t *l = mk_lsmt_small(0, &ln);
	uint8_t *ls = mk_lsmt_small(MK_LSMT_SEALED, &lsn);
	uint8_t *r1, *r1z, *r2;

	r1 = load("l1.commit", &r1n);
	r1z = load("l1.commit.lz4.zfile", &r1zn);
	r2 = load("l2.commit.lz4.zfile.tar", &r2n);
	tap_ok(r1 && r1z && r2, "reference images found in %s", REF);

	/* ---- LSMT ---- */
	{
		struct obd_map *maps;
		struct obd_lsmt_info li;
		struct obd_err err;
		u64 nm;
		int rc = lsmt_open(l, ln, "mk.lsmt", &maps, &nm, &li, &err);

		tap_ok(rc == 0 && nm == 6 && maps[2].zeroed && maps[5].offset == 2047,
		       "mk.lsmt: valid small layer opens with its 6 maps (rc %d %s)", rc, err.msg);
		obd_free(maps);
		rc = lsmt_open(ls, lsn, "mk.lsmt.sealed", &maps, &nm, &li, &err);
		tap_ok(rc == 0 && nm == 6, "mk.lsmt.sealed: sealed layout opens (rc %d %s)", rc,
		       err.msg);
		obd_free(maps);
	}
	lsmt_cases(l, ln, "mk.lsmt");
	lsmt_cases(ls, lsn, "mk.lsmt.sealed");
	if (r1) {
		struct obd_map *maps;
		struct obd_lsmt_info li;
		struct obd_err err;
		u64 nm;
		int rc = lsmt_open(r1, r1n, "l1.commit", &maps, &nm, &li, &err);

		tap_ok(rc == 0 && nm == 7, "l1.commit: reference opens with 7 maps (rc %d %s)", rc,
		       err.msg);
		obd_free(maps);
		lsmt_cases(r1, r1n, "l1.commit");
	}
	lsmt_flips(l, ln, "mk.lsmt");
	if (r1)
		lsmt_flips(r1, r1n, "l1.commit");

	/* ---- ZFile ---- */
	{
		uint8_t *z = mk_zfile(l, ln, 4096, 1, 0, &zn);
		uint8_t *zo = mk_zfile(l, ln, 4096, 1, MK_ZF_OVERWRITE, &zon);
		uint8_t *zs = mk_zfile(l, ln, 8192, 2, MK_ZF_NOCRC, &zsn);
		struct zf_base bases[4] = {
			{ "mk.zfile", z, zn, l, ln, false },
			{ "mk.zfile.ow", zo, zon, l, ln, true },
			{ "mk.zfile.zstd.nocrc", zs, zsn, l, ln, false },
			{ "l1.commit.lz4.zfile", r1z, r1zn, r1, r1n, true },
		};

		for (int i = 0; i < 4; i++) {
			if (!bases[i].img || !bases[i].plain)
				continue;
			zfile_cases(&bases[i]);
		}
		zfile_flips(&bases[0]);
		zfile_flips(&bases[1]);
		if (r1 && r1z)
			zfile_flips(&bases[3]);

		/* ---- tar ---- */
		{
			size_t tn;
			uint8_t *t = mk_tar(zo, zon, 0, &tn);

			tar_cases(t, tn, "mk.tar", zon);
			free(t);
		}
		if (r2)
			tar_cases(r2, r2n, "l2.commit.lz4.zfile.tar", 269429);
		ustar_cases();

		/* ---- layers ---- */
		layer_cases(l, ln, zo, zon);
		if (r2) {
			struct obd_err err;
			uint8_t *c = img_dup(r2, r2n);
			int rc;

			/* a ZFile block CRC in the reference tar: the open (index only) is fine */
			rc = layer_try(c, r2n, "l2.commit.lz4.zfile.tar", &err);
			tap_ok(rc == 0, "l2.commit.lz4.zfile.tar: reference layer opens (rc %d %s)",
			       rc, err.msg);
			c[1536 + 28] ^= 1;
			rc = layer_try(c, r2n, "l2.commit.lz4.zfile.tar", &err);
			check_rej("tar(zfile) with a bad ZFile digest", rc, &err,
				  "l2.commit.lz4.zfile.tar", E(EFSBADCRC), T("digest"));
			free(c);
		}
		free(z);
		free(zo);
		free(zs);
	}

	free(l);
	free(ls);
	free(r1);
	free(r1z);
	free(r2);
	return tap_done();
}
