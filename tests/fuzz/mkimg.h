/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Small, valid overlaybd images built in memory, byte by byte from
 * shared/spec/overlaybd-format.md, for the fuzz seed corpus (gen_corpus.c)
 * and for tests/unit/test_malformed.c, which corrupts them field by field.
 *
 * Deliberately independent of the lib/ writers: a second, literal reading
 * of the spec, so a writer bug and a reader bug cannot cancel out. Only
 * liblz4/libzstd are used (for the block payloads) and a bitwise CRC32C.
 *
 * Header-only (static functions) so that no extra object is linked into
 * every unit test.
 */
#ifndef OBD_MKIMG_H
#define OBD_MKIMG_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lz4.h>
#include <zstd.h>

/* ---------------------------------------------------------------------- */
struct mk_buf {
	uint8_t *p;
	size_t len, cap;
};

static inline void mk_reserve(struct mk_buf *b, size_t add)
{
	if (b->len + add <= b->cap)
		return;
	size_t ncap = b->cap ? b->cap : 4096;

	while (ncap < b->len + add)
		ncap *= 2;
	b->p = realloc(b->p, ncap);
	if (!b->p) {
		fprintf(stderr, "mkimg: out of memory\n");
		abort();
	}
	memset(b->p + b->cap, 0, ncap - b->cap);
	b->cap = ncap;
}

static inline void mk_put(struct mk_buf *b, const void *src, size_t n)
{
	mk_reserve(b, n);
	memcpy(b->p + b->len, src, n);
	b->len += n;
}

static inline void mk_zero(struct mk_buf *b, size_t n)
{
	mk_reserve(b, n);
	memset(b->p + b->len, 0, n);
	b->len += n;
}

static inline void mk_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void mk_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t mk_rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t mk_rd64(const uint8_t *p)
{
	return (uint64_t)mk_rd32(p) | (uint64_t)mk_rd32(p + 4) << 32;
}

/* overlaybd's CRC32C: raw reflected Castagnoli, seed as-is, no inversion. */
static inline uint32_t mk_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return crc;
}

/* Deterministic sector content: some incompressible, some runs. */
static inline void mk_fill_sector(uint8_t *dst, uint64_t lba, uint32_t seed)
{
	uint64_t x = lba * 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed << 32 | 0x5bd1e995u);

	for (int i = 0; i < 512; i++) {
		if (seed & 1) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			dst[i] = (uint8_t)x;
		} else {
			dst[i] = (uint8_t)(seed + (i >> 6));
		}
	}
}

/* ---------------------------------------------------------------------- */
/* LSMT (spec 2.1, 2.4, 2.6d) */

static const uint8_t mk_lsmt_magic1[16] = {
	0x65, 0x7e, 0x63, 0xd2, 0x94, 0x44, 0x08, 0x4c,
	0xa2, 0xd2, 0xc8, 0xec, 0x4f, 0xcf, 0xae, 0x8a };

struct mk_ext {			/* one LBA extent of a layer, sectors */
	uint64_t lba;
	uint32_t nsect;		/* 1..16383 */
	uint8_t zeroed;
	uint32_t seed;		/* content, see mk_fill_sector */
};

#define MK_LSMT_SEALED	0x1	/* sealed layout: header 0x03, index not padded */

static inline void mk_lsmt_ht(uint8_t *blk, uint32_t flags, uint64_t ioff, uint64_t isize,
		       uint64_t vsize, const char *uuid, const char *parent,
		       const char *tag)
{
	memset(blk, 0, 4096);
	memcpy(blk, "LSMT\0\1\2\0", 8);
	memcpy(blk + 8, mk_lsmt_magic1, 16);
	mk_le32(blk + 24, 390);
	mk_le32(blk + 28, flags);
	mk_le64(blk + 32, ioff);
	mk_le64(blk + 40, isize);
	mk_le64(blk + 48, vsize);
	memcpy(blk + 56, uuid, 36);
	memcpy(blk + 93, parent, 36);
	blk[132] = 1;
	blk[133] = 1;
	strncpy((char *)blk + 134, tag, 256);
}

static inline void mk_map_raw(uint8_t *rec, uint64_t off, uint32_t len, uint64_t moff,
		       int zeroed, uint8_t tag)
{
	mk_le64(rec, (off & ((1ull << 50) - 1)) | (uint64_t)len << 50);
	mk_le64(rec + 8, (moff & ((1ull << 55) - 1)) | (uint64_t)(zeroed ? 1 : 0) << 55 |
		(uint64_t)tag << 56);
}

/*
 * A committed (or sealed) LSMT file. ext must be sorted and non-overlapping.
 * Returns the malloc'ed image; *len its size.
 */
static inline uint8_t *mk_lsmt(const struct mk_ext *ext, int n, uint64_t vsize,
			unsigned int opts, size_t *len)
{
	struct mk_buf b = { 0 };
	uint8_t blk[4096], sec[512];
	uint64_t pos = 8;	/* sectors */
	uint8_t *idx = calloc((size_t)n + 256, 16);
	int nrec = 0;

	mk_lsmt_ht(blk, (opts & MK_LSMT_SEALED) ? 0x03 : 0x07, 0, 0, vsize,
		   "11111111-2222-4333-8444-555555555555",
		   "00000000-0000-0000-0000-000000000000", "mkimg layer");
	mk_put(&b, blk, 4096);
	for (int i = 0; i < n; i++) {
		mk_map_raw(idx + 16 * nrec++, ext[i].lba, ext[i].nsect, pos,
			   ext[i].zeroed, 0);
		if (ext[i].zeroed)
			continue;
		for (uint32_t s = 0; s < ext[i].nsect; s++) {
			mk_fill_sector(sec, ext[i].lba + s, ext[i].seed);
			mk_put(&b, sec, 512);
		}
		pos += ext[i].nsect;
	}
	uint64_t ioff = b.len;
	uint64_t isize = (uint64_t)nrec;

	if (!(opts & MK_LSMT_SEALED)) {
		/* committed: pad with invalid records to a 4 KiB multiple */
		while (isize % 256 || isize == 0)
			mk_map_raw(idx + 16 * isize++, (1ull << 50) - 1, 0, 0, 0, 0);
		mk_put(&b, idx, isize * 16);
	} else {
		mk_put(&b, idx, isize * 16);
		mk_zero(&b, (512 - (isize * 16) % 512) % 512);
	}
	mk_lsmt_ht(blk, 0x06, ioff, isize, vsize,
		   "11111111-2222-4333-8444-555555555555",
		   "00000000-0000-0000-0000-000000000000", "mkimg layer");
	mk_put(&b, blk, 4096);
	free(idx);
	*len = b.len;
	return b.p;
}

/* The default small layer: data, a zeroed run, unaligned pieces, a tail. */
static const struct mk_ext mk_small_exts[] = {
	{ 0, 8, 0, 1 },
	{ 8, 4, 0, 2 },
	{ 16, 8, 1, 0 },
	{ 29, 3, 0, 3 },
	{ 64, 16, 0, 4 },
	{ 2047, 1, 0, 5 },
};
#define MK_SMALL_VSIZE	(1024ull * 1024)

static inline uint8_t *mk_lsmt_small(unsigned int opts, size_t *len)
{
	return mk_lsmt(mk_small_exts, (int)(sizeof(mk_small_exts) / sizeof(mk_small_exts[0])),
		       MK_SMALL_VSIZE, opts, len);
}

/* ---------------------------------------------------------------------- */
/* ZFile (spec 3) */

static inline void mk_zfile_ht(uint8_t *blk, uint64_t flags, uint64_t ioff, uint64_t nblk,
			uint64_t osize, uint32_t icrc, uint32_t bs, uint8_t algo,
			uint8_t verify)
{
	memset(blk, 0, 512);
	memcpy(blk, "ZFile\0\1\0", 8);
	memcpy(blk + 8, "tuji.yyf@Alibaba", 16);
	mk_le32(blk + 24, 96);
	mk_le64(blk + 32, flags);
	mk_le64(blk + 40, ioff);
	mk_le64(blk + 48, nblk);
	mk_le64(blk + 56, osize);
	mk_le32(blk + 64, icrc);
	mk_le32(blk + 72, bs);
	blk[76] = algo;
	blk[88] = verify;
}

/* (Re)compute the digest of a 512-byte ZFile header/trailer block. */
static inline void mk_zfile_digest(uint8_t *blk)
{
	mk_le32(blk + 28, 0);
	mk_le32(blk + 28, mk_crc32c(0, blk, 512));
}

#define MK_ZF_OVERWRITE	0x1	/* final header rewritten at 0 (flags 0x1B) */
#define MK_ZF_NOCRC	0x2	/* verify = 0 */

static inline uint8_t *mk_zfile(const uint8_t *src, size_t slen, uint32_t bs, uint8_t algo,
			 unsigned int opts, size_t *len)
{
	struct mk_buf b = { 0 };
	uint8_t blk[512];
	uint64_t n = (slen + bs - 1) / bs;
	uint8_t *table = calloc(n ? n : 1, 4);
	size_t cap = ZSTD_compressBound(bs) + (size_t)LZ4_compressBound((int)bs) + 16;
	uint8_t *cbuf = malloc(cap);
	uint8_t verify = (opts & MK_ZF_NOCRC) ? 0 : 1;

	mk_zfile_ht(blk, 0x13, 0, 0, 0, 0, bs, algo, verify);
	mk_zfile_digest(blk);
	mk_put(&b, blk, 512);
	for (uint64_t i = 0; i < n; i++) {
		size_t ulen = slen - i * bs < bs ? slen - i * bs : bs;
		size_t c;

		if (algo == 1)
			c = (size_t)LZ4_compress_default((const char *)src + i * bs,
							 (char *)cbuf, (int)ulen, (int)cap);
		else
			c = ZSTD_compress(cbuf, cap, src + i * bs, ulen, 3);
		if (verify) {
			mk_le32(cbuf + c, mk_crc32c(100007u, cbuf, c));
			c += 4;
		}
		mk_put(&b, cbuf, c);
		mk_le32(table + 4 * i, (uint32_t)c);
	}
	uint64_t ioff = b.len;
	uint32_t icrc = mk_crc32c(0, table, n * 4);

	mk_put(&b, table, n * 4);
	mk_zfile_ht(blk, 0x16, ioff, n, slen, icrc, bs, algo, verify);
	mk_zfile_digest(blk);
	mk_put(&b, blk, 512);
	if (opts & MK_ZF_OVERWRITE) {
		mk_zfile_ht(b.p, 0x1B, ioff, n, slen, icrc, bs, algo, verify);
		mk_zfile_digest(b.p);
	}
	free(table);
	free(cbuf);
	*len = b.len;
	return b.p;
}

/* ---------------------------------------------------------------------- */
/* tar wrapper (spec 4.1) */

static inline void mk_tar_octal(char *dst, size_t width, uint64_t v)
{
	/* width-1 digits, then NUL (the ustar numeric field convention) */
	char tmp[32];

	snprintf(tmp, sizeof(tmp), "%0*llo", (int)(width - 1), (unsigned long long)v);
	memcpy(dst, tmp, width - 1);
	dst[width - 1] = 0;
}

static inline void mk_tar_cksum(uint8_t *h)
{
	uint32_t sum = 0;

	memset(h + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += h[i];
	char tmp[16];

	snprintf(tmp, sizeof(tmp), "%06o", sum);
	memcpy(h + 148, tmp, 6);
	h[154] = 0;
	h[155] = ' ';
}

static inline void mk_tar_hdr(uint8_t *h, const char *name, char type, uint64_t size)
{
	memset(h, 0, 512);
	strncpy((char *)h, name, 100);
	mk_tar_octal((char *)h + 100, 8, 0644);
	mk_tar_octal((char *)h + 108, 8, 0);
	mk_tar_octal((char *)h + 116, 8, 0);
	mk_tar_octal((char *)h + 124, 12, size);
	mk_tar_octal((char *)h + 136, 12, 0);
	h[156] = (uint8_t)type;
	memcpy(h + 257, "ustar\0", 6);
	memcpy(h + 263, "00", 2);
	memcpy(h + 265, "root", 4);
	memcpy(h + 297, "root", 4);
	mk_tar_cksum(h);
}

/* Build "<len> size=<n>\n" where len counts the whole record. */
static inline size_t mk_pax_record(char *dst, size_t cap, uint64_t size)
{
	char body[64];
	int blen = snprintf(body, sizeof(body), " size=%llu\n", (unsigned long long)size);
	int total = blen + 1;

	for (;;) {
		int l = snprintf(dst, cap, "%d%s", total, body);

		if (l == total)
			return (size_t)l;
		total = l;
	}
}

#define MK_TAR_NOPAX	0x1	/* plain ustar, payload at 512, size in the header */

static inline uint8_t *mk_tar(const uint8_t *payload, size_t plen, unsigned int opts, size_t *len)
{
	struct mk_buf b = { 0 };
	uint8_t h[512];

	if (!(opts & MK_TAR_NOPAX)) {
		char rec[64];
		size_t rl = mk_pax_record(rec, sizeof(rec), plen);

		mk_tar_hdr(h, "overlaybd.pax", 'x', rl);
		mk_put(&b, h, 512);
		memset(h, 0, 512);
		memcpy(h, rec, rl);
		mk_put(&b, h, 512);
		mk_tar_hdr(h, "overlaybd.commit", '0', 0);
	} else {
		mk_tar_hdr(h, "overlaybd.commit", '0', plen);
	}
	mk_put(&b, h, 512);
	mk_put(&b, payload, plen);
	mk_zero(&b, (512 - plen % 512) % 512 + 1024);
	*len = b.len;
	return b.p;
}

/* ---------------------------------------------------------------------- */
/* Reading the structures back, for tests that patch fields in place. */

static inline uint64_t mk_lsmt_trailer_off(size_t len)
{
	return len - 4096;
}

static inline uint8_t *mk_lsmt_rec(uint8_t *img, size_t len, uint64_t i)
{
	return img + mk_rd64(img + mk_lsmt_trailer_off(len) + 32) + 16 * i;
}

#endif /* OBD_MKIMG_H */
