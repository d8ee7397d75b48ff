// SPDX-License-Identifier: GPL-2.0-only
/*
 * Writes the committed seed corpus, tests/fuzz/corpus/<target>/, from the
 * hand-built images of mkimg.h (small valid LSMT / ZFile / tar files read
 * off the spec) and malformed variants of them. Deterministic: rerunning
 * it rewrites the same bytes.
 *
 *   scripts/fuzz.sh corpus  (builds this with tests/unit/testutil.c and runs
 *   ./gen_corpus tests/fuzz/corpus tests/data/overlaybd-ref)
 *
 * With the reference folder, two seeds come from real images: the whole
 * l2.commit.lz4.zfile.tar (272 KiB, fuzz_layer) and its tar headers with
 * the pax size shrunk to a 512-byte payload (fuzz_tar). The fuzz_config
 * seeds are hand-written JSON files, not generated.
 */
#include <errno.h>
#include <sys/stat.h>
#include "mkimg.h"
#include "../unit/testutil.h"

static const char *root;

static void out(const char *target, const char *name, const uint8_t *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, target);
	if (mkdir(path, 0755) && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* Write a copy of img with one patch applied. */
static void out_patched(const char *target, const char *name, const uint8_t *img, size_t n,
			size_t off, const void *bytes, size_t blen)
{
	uint8_t *c = malloc(n);

	memcpy(c, img, n);
	memcpy(c + off, bytes, blen);
	out(target, name, c, n);
	free(c);
}

static void lsmt_seeds(void)
{
	size_t n, ns, ne;
	uint8_t *l = mk_lsmt_small(0, &n);
	uint8_t *s = mk_lsmt_small(MK_LSMT_SEALED, &ns);
	uint8_t *e = mk_lsmt(NULL, 0, MK_SMALL_VSIZE, 0, &ne);
	uint64_t t = n - 4096, ioff = mk_rd64(l + t + 32);
	uint8_t b8[16];

	out("fuzz_lsmt", "committed", l, n);
	out("fuzz_lsmt", "sealed", s, ns);
	out("fuzz_lsmt", "empty-index", e, ne);
	out_patched("fuzz_lsmt", "bad-magic0", l, n, 0, "X", 1);
	out_patched("fuzz_lsmt", "bad-magic1", l, n, 8, "X", 1);
	mk_le32(b8, 0x06);
	out_patched("fuzz_lsmt", "header-bit-missing", l, n, 28, b8, 4);
	mk_le32(b8, 0x02);
	out_patched("fuzz_lsmt", "trailer-not-sealed", l, n, t + 28, b8, 4);
	mk_le64(b8, 1000001);
	out_patched("fuzz_lsmt", "index-size-huge", l, n, t + 40, b8, 8);
	mk_le64(b8, 2048);
	out_patched("fuzz_lsmt", "index-offset-low", l, n, t + 32, b8, 8);
	/* records 0 and 1 swapped */
	memcpy(b8, l + ioff + 16, 16);
	{
		uint8_t two[32];

		memcpy(two, b8, 16);
		memcpy(two + 16, l + ioff, 16);
		out_patched("fuzz_lsmt", "unsorted", l, n, ioff, two, 32);
	}
	mk_map_raw(b8, 1, 8, 8, 0, 0);
	out_patched("fuzz_lsmt", "overlap", l, n, ioff + 16, b8, 16);
	mk_map_raw(b8, 0, 8, 7, 0, 0);
	out_patched("fuzz_lsmt", "moffset-low", l, n, ioff, b8, 16);
	mk_map_raw(b8, 0, 0, 8, 0, 0);
	out_patched("fuzz_lsmt", "length-0", l, n, ioff, b8, 16);
	out("fuzz_lsmt", "truncated-8191", l, 8191);
	free(l);
	free(s);
	free(e);
}

static void zfile_seeds(void)
{
	size_t n, zn, zo, zz, z8, zc;
	uint8_t *l = mk_lsmt_small(0, &n);
	uint8_t *z = mk_zfile(l, n, 4096, 1, 0, &zn);
	uint8_t *o = mk_zfile(l, n, 4096, 1, MK_ZF_OVERWRITE, &zo);
	uint8_t *s = mk_zfile(l, n, 4096, 2, 0, &zz);
	uint8_t *b8 = mk_zfile(l, n, 8192, 1, MK_ZF_NOCRC, &z8);
	uint8_t *c, v[8];

	out("fuzz_zfile", "lz4", z, zn);
	out("fuzz_zfile", "lz4-overwrite", o, zo);
	out("fuzz_zfile", "zstd", s, zz);
	out("fuzz_zfile", "lz4-8k-nocrc", b8, z8);
	c = mk_zfile((const uint8_t *)"", 0, 4096, 1, 0, &zc);
	out("fuzz_zfile", "empty", c, zc);
	free(c);

	c = malloc(zo);
	memcpy(c, o, zo);
	c[28] ^= 1;
	out("fuzz_zfile", "bad-digest", c, zo);
	memcpy(c, o, zo);
	c[76] = 0;
	mk_zfile_digest(c);
	out("fuzz_zfile", "algo-0", c, zo);
	memcpy(c, o, zo);
	mk_le32(c + 72, 1000);
	mk_zfile_digest(c);
	out("fuzz_zfile", "bs-1000", c, zo);
	memcpy(c, o, zo);
	mk_le32(c + 64, mk_rd32(c + 64) ^ 1);
	mk_zfile_digest(c);
	out("fuzz_zfile", "bad-index-crc", c, zo);
	memcpy(c, o, zo);
	c[512 + mk_rd32(c + mk_rd64(c + 40)) - 1] ^= 0x55;	/* block 0's CRC */
	out("fuzz_zfile", "bad-block-crc", c, zo);
	memcpy(c, o, zo);
	mk_le64(v, mk_rd64(c + 56) + 4096);
	memcpy(c + 56, v, 8);
	mk_zfile_digest(c);
	out("fuzz_zfile", "size-vs-blocks", c, zo);
	free(c);
	free(l);
	free(z);
	free(o);
	free(s);
	free(b8);
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

static void tar_seeds(void)
{
	static const uint8_t payload[1000] = { 1, 2, 3 };
	size_t n, np;
	uint8_t *t = mk_tar(payload, sizeof(payload), 0, &n);
	uint8_t *p = mk_tar(payload, sizeof(payload), MK_TAR_NOPAX, &np);
	uint8_t *c = malloc(n);

	out("fuzz_tar", "pax", t, n);
	out("fuzz_tar", "ustar", p, np);
	memcpy(c, t, n);
	set_pax(c, "abc size=1000\n");
	out("fuzz_tar", "pax-abc", c, n);
	memcpy(c, t, n);
	set_pax(c, "99 size=1000\n");
	out("fuzz_tar", "pax-len-mismatch", c, n);
	memcpy(c, t, n);
	set_pax(c, "13 size=1x00\n");
	out("fuzz_tar", "pax-size-nonnumeric", c, n);
	memcpy(c, t, n);
	set_pax(c, "14 size=99999\n");
	out("fuzz_tar", "pax-size-past-eof", c, n);
	memcpy(c, t, n);
	set_pax(c, "25 path=overlaybd.commit\n13 size=1000\n");
	out("fuzz_tar", "pax-two-records", c, n);
	memcpy(c, t, n);
	c[148] ^= 1;
	out("fuzz_tar", "bad-checksum", c, n);
	memcpy(c, t, n);
	c[263] = '0';
	c[264] = '1';
	mk_tar_cksum(c);
	out("fuzz_tar", "bad-version", c, n);
	free(c);
	free(t);
	free(p);
}

static void layer_seeds(void)
{
	size_t n, zn, tn, tl, gn, gz, gt;
	uint8_t *l = mk_lsmt_small(0, &n);
	uint8_t *z = mk_zfile(l, n, 4096, 1, MK_ZF_OVERWRITE, &zn);
	uint8_t *t = mk_tar(z, zn, 0, &tn);
	uint8_t *tls = mk_tar(l, n, MK_TAR_NOPAX, &tl);
	uint8_t garbage[9000];

	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (uint8_t)(i * 7 + (i >> 5));
	out("fuzz_layer", "lsmt", l, n);
	out("fuzz_layer", "zfile-lsmt", z, zn);
	out("fuzz_layer", "tar-zfile-lsmt", t, tn);
	out("fuzz_layer", "tar-lsmt", tls, tl);
	uint8_t *zg = mk_zfile(garbage, sizeof(garbage), 4096, 2, 0, &gz);
	uint8_t *tg = mk_tar(zg, gz, 0, &gt);

	out("fuzz_layer", "zfile-non-lsmt", zg, gz);
	out("fuzz_layer", "tar-zfile-non-lsmt", tg, gt);
	/* a ZFile header followed by garbage, inside tar */
	memcpy(garbage, z, 512);
	uint8_t *tgg = mk_tar(garbage, sizeof(garbage), 0, &gn);

	out("fuzz_layer", "tar-zfile-garbage", tgg, gn);
	free(tg);
	free(zg);
	free(tgg);
	free(l);
	free(z);
	free(t);
	free(tls);
}

/* fuzz_merge: byte 0 = layers - 1, then [layer][gap lo][gap hi][len lo][len hi|zeroed<<6|big<<7] */
static size_t merge_rec(uint8_t *p, int layer, int gap, int len, int zeroed)
{
	p[0] = (uint8_t)layer;
	p[1] = (uint8_t)gap;
	p[2] = (uint8_t)(gap >> 8);
	p[3] = (uint8_t)len;
	p[4] = (uint8_t)(((len >> 8) & 0x3f) | zeroed << 6 | (len > 255) << 7);
	return 5;
}

/* the same layers at each of the four LBA bases (byte 0 bits 4-5) */
static void out_merge(const char *name, uint8_t *b, size_t n)
{
	char nm[64];

	for (int k = 0; k < 4; k++) {
		b[0] = (uint8_t)((b[0] & 15) | k << 4);
		snprintf(nm, sizeof(nm), "%s-base%d", name, k);
		out("fuzz_merge", nm, b, n);
	}
}

static void merge_seeds(void)
{
	uint8_t b[1 + 5 * 200];
	size_t n = 0;
	uint32_t x = 7;

	b[n++] = 1;
	n += merge_rec(b + n, 0, 0, 100, 0);
	n += merge_rec(b + n, 0, 10, 50, 0);
	n += merge_rec(b + n, 1, 20, 30, 1);
	n += merge_rec(b + n, 1, 5, 200, 0);
	out_merge("two-layers", b, n);
	n = 0;
	b[n++] = 2;
	n += merge_rec(b + n, 0, 0, 16383, 0);
	n += merge_rec(b + n, 1, 100, 16383, 0);
	n += merge_rec(b + n, 2, 16000, 16383, 1);
	n += merge_rec(b + n, 0, 0, 16383, 0);
	out_merge("long-maps", b, n);
	n = 0;
	b[n++] = 15;
	for (int i = 0; i < 200; i++) {
		x = x * 1103515245u + 12345u;
		n += merge_rec(b + n, (int)(x >> 8) % 16, (int)(x >> 12) % 300,
			       1 + (int)(x >> 20) % 255, (int)(x >> 30) & 1);
	}
	out_merge("16-layers", b, n);
}

/* fuzz_rw: byte 0 even = RW index file, odd = a record log to replay */
static void rw_seeds(void)
{
	uint8_t *f = calloc(1, 1 + 4096 + 16 * 8);
	uint8_t log[1 + 5 * 6];
	static const uint8_t recs[6][5] = {
		{ 0, 0, 40, 0, 0 },		/* [0,40) */
		{ 10, 0, 10, 0, 0 },		/* overwrite the middle */
		{ 35, 0, 20, 0x40, 0 },		/* zeroed, across the end */
		{ 0, 0, 5, 0, 3 },		/* front, tag 3 */
		{ 100, 0, 0xff, 0x83, 0 },	/* long: 1023 sectors */
		{ 50, 0, 0, 0, 0 },		/* length 0: ignored */
	};

	mk_lsmt_ht(f + 1, 0x01, 4096, 0, 64ull << 20,
		   "11111111-2222-4333-8444-555555555555",
		   "00000000-0000-0000-0000-000000000000", "");
	mk_map_raw(f + 1 + 4096, 0, 16, 8, 0, 0);
	mk_map_raw(f + 1 + 4096 + 16, 4, 4, 24, 0, 0);
	mk_map_raw(f + 1 + 4096 + 32, 8, 100, 28, 1, 0);
	mk_map_raw(f + 1 + 4096 + 48, (1ull << 50) - 1, 0, 0, 0, 0);
	mk_map_raw(f + 1 + 4096 + 64, 200, 16383, 28, 0, 5);
	mk_map_raw(f + 1 + 4096 + 80, 0, 1, 16411, 0, 0);
	out("fuzz_rw", "index-file", f, 1 + 4096 + 16 * 6);
	out("fuzz_rw", "index-file-empty", f, 1 + 4096);
	log[0] = 1;
	for (int i = 0; i < 6; i++)
		memcpy(log + 1 + 5 * i, recs[i], 5);
	out("fuzz_rw", "replay-log", log, sizeof(log));
	free(f);
}

static void ref_seeds(const char *dir)
{
	size_t n;
	char path[1024];
	uint8_t *t;

	snprintf(path, sizeof(path), "%s/l2.commit.lz4.zfile.tar", dir);
	t = slurp(path, &n);

	if (!t) {
		fprintf(stderr, "gen_corpus: %s/l2.commit.lz4.zfile.tar not readable, skipped\n", dir);
		return;
	}
	out("fuzz_layer", "ref-l2.commit.lz4.zfile.tar", t, n);
	/* the reference's own tar headers around a 512-byte payload */
	char rec[64];
	size_t rl = mk_pax_record(rec, sizeof(rec), 512);
	uint8_t *c = calloc(1, 1536 + 512 + 1024);

	memcpy(c, t, 1536 + 512);
	memset(c + 512, 0, 512);
	memcpy(c + 512, rec, rl);
	mk_tar_octal((char *)c + 124, 12, rl);
	mk_tar_cksum(c);
	out("fuzz_tar", "ref-l2-headers", c, 1536 + 512 + 1024);
	free(c);
	free(t);
}

int main(int argc, char **argv)
{
	root = argc > 1 ? argv[1] : "tests/fuzz/corpus";
	if (mkdir(root, 0755) && errno != EEXIST) {
		perror(root);
		return 1;
	}
	lsmt_seeds();
	zfile_seeds();
	tar_seeds();
	layer_seeds();
	merge_seeds();
	rw_seeds();
	if (argc > 2)
		ref_seeds(argv[2]);
	return 0;
}
