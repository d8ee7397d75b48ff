// SPDX-License-Identifier: GPL-2.0-only
/*
 * ZFile: read the reference image, reproduce it with the writer, round
 * trips over every algo and block size, and every malformed class with
 * its errno.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <openssl/sha.h>

#include "env_user.h"
#include "zfile_write.h"
#include "tap.h"
#include "testutil.h"


static void hex(const u8 *d, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static bool ref_sha(const char *name, char out[65])
{
	FILE *f = fopen(REF "SHA256SUMS", "r");
	char line[256], fname[200];

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%64s %199s", out, fname) == 2 && !strcmp(fname, name)) {
			fclose(f);
			return true;
		}
	fclose(f);
	return false;
}

/* Compress buf with the streaming writer (in odd-sized pieces) into memory. */
static u8 *compress_mem(const u8 *buf, size_t len, u8 algo, u32 bs, bool verify,
			bool overwrite, size_t *zlen, struct obd_err *e)
{
	char tmpl[] = "/tmp/obd_test_zfile_XXXXXX";
	struct obd_zfile_writer w;
	size_t pos = 0, piece = 1;
	int fd = mkstemp(tmpl);
	u8 *out = NULL;
	s64 r;

	if (fd < 0)
		return NULL;
	unlink(tmpl);
	if (obd_zfile_writer_init(&w, fd, 0, algo, bs, verify, overwrite, e))
		goto out;
	while (pos < len) {
		size_t n = len - pos < piece ? len - pos : piece;

		if (obd_zfile_writer_write(&w, buf + pos, n, e)) {
			obd_zfile_writer_abort(&w);
			goto out;
		}
		pos += n;
		piece = piece * 3 + 7;	/* cross block boundaries unevenly */
	}
	r = obd_zfile_writer_finish(&w, e);
	if (r < 0)
		goto out;
	out = malloc((size_t)r);
	if (out && pread(fd, out, (size_t)r, 0) != r) {
		free(out);
		out = NULL;
	}
	*zlen = (size_t)r;
out:
	close(fd);
	return out;
}

/* Open zbuf, read it all and at random sub-ranges, compare with want. */
static int check_read(const u8 *zbuf, size_t zlen, const u8 *want, size_t wlen,
		      u32 *max_stored, struct obd_err *e)
{
	struct obd_mem_io m;
	struct obd_zfile zf;
	u8 *got;
	int ret, i;

	obd_mem_io_init(&m, zbuf, zlen, "rt");
	ret = obd_zfile_open(&zf, &m.io, &obd_user_codec, e);
	if (ret)
		return ret;
	if (max_stored)
		*max_stored = zf.max_stored;
	got = malloc(wlen + 1);
	ret = zf.io.size == wlen ? 0 : -EINVAL;
	if (!ret)
		ret = obd_io_read(&zf.io, got, wlen, 0);
	if (!ret && memcmp(got, want, wlen))
		ret = -EILSEQ;
	for (i = 0; !ret && wlen && i < 200; i++) {
		u64 off = (u64)rand() % wlen;
		size_t n = (size_t)rand() % (wlen - off + 1);

		if (i % 4 == 0)
			n = n % 50;
		/* halfway, as the kernel after a parse: reads allocate them again */
		if (i == 100) {
			obd_zfile_drop_buffers(&zf);
			if (zf.cbuf || zf.dbuf)
				ret = -EINVAL;
			n = n ? n : 1;
		}
		ret = ret ? ret : obd_io_read(&zf.io, got, n, off);
		if (!ret && i == 100 && (!zf.cbuf || !zf.dbuf))
			ret = -EINVAL;
		if (!ret && memcmp(got, want + off, n))
			ret = -EILSEQ;
	}
	if (!ret && obd_io_read(&zf.io, got, 1, wlen) != -EIO)
		ret = -EINVAL;
	free(got);
	obd_zfile_close(&zf);
	return ret;
}

static void fix_digest(u8 *blk)
{
	obd_put_le32(blk + 28, 0);
	obd_put_le32(blk + 28, obd_crc32c(0, blk, 512));
}

static void fix_index_crc(u8 *z, u8 *ht)
{
	u64 io = obd_get_le64(ht + 40), n = obd_get_le64(ht + 48);

	obd_put_le32(ht + 64, obd_crc32c(0, z + io, 4 * n));
}

static int open_mem(const u8 *z, size_t len, struct obd_err *e)
{
	struct obd_mem_io m;
	struct obd_zfile zf;
	int ret;

	obd_mem_io_init(&m, z, len, "mut");
	e->msg[0] = 0;
	ret = obd_zfile_open(&zf, &m.io, &obd_user_codec, e);
	if (!ret)
		obd_zfile_close(&zf);
	return ret;
}

static void test_reference(void)
{
	struct obd_err e = { { 0 } };
	struct obd_file_io f;
	struct obd_zfile zf;
	u8 *plain, *zref, *got, md[32];
	size_t plen, zlen, i;
	char want[65] = "", hexd[65];
	int ret, bad;

	plain = slurp(REF "l1.commit", &plen);
	zref = slurp(REF "l1.commit.lz4.zfile", &zlen);
	tap_ok(plain && zref && ref_sha("l1.commit", want), "reference files and SHA256SUMS");
	if (!plain || !zref)
		return;

	ret = obd_file_io_open(&f, REF "l1.commit.lz4.zfile", &e);
	tap_ok(!ret && obd_zfile_probe(&f.io, &e) == 1, "probe l1.commit.lz4.zfile");
	ret = obd_zfile_open(&zf, &f.io, &obd_user_codec, &e);
	tap_ok(ret == 0, "open l1.commit.lz4.zfile (%s)", e.msg);
	if (ret)
		return;
	tap_ok(zf.info.algo == OBD_ZFILE_ALGO_LZ4 && zf.info.block_size == 4096 &&
	       zf.info.verify && zf.info.overwritten && zf.info.nblocks == 413 &&
	       zf.info.original_size == 1691136,
	       "header info: lz4, 4 KiB, verify, overwritten, 413 blocks, 1691136 bytes");
	got = malloc(zf.io.size);
	ret = obd_io_read(&zf.io, got, zf.io.size, 0);
	SHA256(got, zf.io.size, md);
	hex(md, 32, hexd);
	tap_ok(ret == 0 && !strcmp(hexd, want), "decompressed sha256 %s == SHA256SUMS l1.commit", hexd);
	bad = 0;
	for (i = 0; i < 2000; i++) {
		u64 off = (u64)rand() % plen;
		size_t n = (size_t)rand() % 20000;

		if (n > plen - off)
			n = plen - off;
		if (obd_io_read(&zf.io, got, n, off) || memcmp(got, plain + off, n))
			bad++;
	}
	tap_ok(!bad, "2000 random (offset, length) reads match l1.commit (%d bad)", bad);
	free(got);
	obd_zfile_close(&zf);
	obd_file_io_close(&f);

	/* Writer: the exact reference bytes (Debian liblz4 1.9.4 == reference). */
	{
		size_t wlen = 0;
		u8 *w = compress_mem(plain, plen, OBD_ZFILE_ALGO_LZ4, 4096, true, true, &wlen, &e);

		tap_ok(w && wlen == zlen && !memcmp(w, zref, zlen),
		       "writer reproduces l1.commit.lz4.zfile byte-for-byte (%zu vs %zu)", wlen, zlen);
		free(w);
		/* Without header overwrite: header 0x13 with zero index, same body. */
		w = compress_mem(plain, plen, OBD_ZFILE_ALGO_LZ4, 4096, true, false, &wlen, &e);
		{
			u8 h[512];

			memcpy(h, zref, 512);
			obd_put_le64(h + 32, OBD_ZFILE_FLAGS_HEADER);
			memset(h + 40, 0, 28);	/* index_offset .. index_crc */
			fix_digest(h);
			tap_ok(w && wlen == zlen && !memcmp(w, h, 512) &&
			       !memcmp(w + 512, zref + 512, zlen - 512),
			       "no-overwrite output: header 0x13, rest identical");
			tap_ok(w && check_read(w, wlen, plain, plen, NULL, &e) == 0,
			       "no-overwrite output reads back via the trailer (%s)", e.msg);
		}
		free(w);
	}

	/* Malformed classes, on copies of the reference. */
	{
		u8 *z = malloc(zlen);
		u64 idx = obd_get_le64(zref + 40);
		u32 s0;

#define MUT(desc, expect, code) do {					\
		memcpy(z, zref, zlen);					\
		code;							\
		ret = open_mem(z, zlen, &e);				\
		tap_ok(ret == (expect), "%s: got %d, expected %d (%s)",	\
		       desc, ret, expect, e.msg);			\
	} while (0)

		MUT("unchanged copy", 0, (void)0);
		MUT("bad magic", -EFSCORRUPTED, (z[0] = 'X', fix_digest(z)));
		{
			struct obd_mem_io m;

			obd_mem_io_init(&m, z, zlen, "mut");
			tap_ok(obd_zfile_probe(&m.io, &e) == 0, "  -> probe says not a ZFile");
		}
		MUT("bad digest", -EFSBADCRC, z[100] ^= 1);
		{
			struct obd_mem_io m;

			obd_mem_io_init(&m, z, zlen, "mut");
			tap_ok(obd_zfile_probe(&m.io, &e) == -EFSBADCRC, "  -> probe -EFSBADCRC");
		}
		ret = open_mem(zref, 600, &e);
		tap_ok(ret == -EFSCORRUPTED, "truncated to 600 bytes: %d (%s)", ret, e.msg);
		ret = open_mem(zref, zlen - 1000, &e);
		tap_ok(ret == -EFSCORRUPTED, "truncated by 1000 bytes: %d (%s)", ret, e.msg);
		ret = open_mem(zref, 300, &e);
		tap_ok(ret == -EFSCORRUPTED, "truncated to 300 bytes: %d (%s)", ret, e.msg);
		MUT("index_offset past end", -EFSCORRUPTED,
		    (obd_put_le64(z + 40, zlen), fix_digest(z)));
		MUT("index_offset inside header", -EFSCORRUPTED,
		    (obd_put_le64(z + 40, 100), fix_digest(z)));
		MUT("index_offset huge", -EFSCORRUPTED,
		    (obd_put_le64(z + 40, ~0ULL - 10), fix_digest(z)));
		MUT("index_size > limit", -EFSCORRUPTED,
		    (obd_put_le64(z + 48, 2000000000ULL), fix_digest(z)));
		MUT("index_size != ceil(size / bs)", -EFSCORRUPTED,
		    (obd_put_le64(z + 48, 412), fix_digest(z)));
		MUT("bad index_crc", -EFSBADCRC, (z[64] ^= 1, fix_digest(z)));
		/* Swap two entries: sizes and sum stay valid, only the CRC sees it. */
		MUT("jump table entries swapped", -EFSBADCRC,
		    (s0 = obd_get_le32(z + idx), memmove(z + idx, z + idx + 4, 4),
		     obd_put_le32(z + idx + 4, s0)));
		MUT("zero stored size", -EFSCORRUPTED,
		    (obd_put_le32(z + idx + 12, 0), fix_index_crc(z, z), fix_digest(z)));
		MUT("stored size 4 with verify", -EFSCORRUPTED,
		    (obd_put_le32(z + idx + 12, 4), fix_index_crc(z, z), fix_digest(z)));
		MUT("jump table points past index", -EFSCORRUPTED,
		    (s0 = obd_get_le32(z + idx), obd_put_le32(z + idx, s0 + 100),
		     fix_index_crc(z, z), fix_digest(z)));
		MUT("absurd stored size", -EFSCORRUPTED,
		    (obd_put_le32(z + idx + 8, 0x7fffffff), fix_index_crc(z, z), fix_digest(z)));
		MUT("algo lzo", -EOPNOTSUPP, (z[76] = 0, fix_digest(z)));
		MUT("algo unknown", -EOPNOTSUPP, (z[76] = 9, fix_digest(z)));
		MUT("block size 3000", -EFSCORRUPTED, (obd_put_le32(z + 72, 3000), fix_digest(z)));
		MUT("block size 6144", -EFSCORRUPTED, (obd_put_le32(z + 72, 6144), fix_digest(z)));
		MUT("block size 128 KiB", -EFSCORRUPTED, (obd_put_le32(z + 72, 131072), fix_digest(z)));
		MUT("block size 2 KiB", -EFSCORRUPTED, (obd_put_le32(z + 72, 2048), fix_digest(z)));
		MUT("IDX_COMP flag", -EOPNOTSUPP, (z[32] |= 0x20, fix_digest(z)));
		MUT("unknown flag bit", -EOPNOTSUPP, (z[33] |= 0x01, fix_digest(z)));
		MUT("dict_size != 0", -EOPNOTSUPP, (obd_put_le32(z + 84, 16), fix_digest(z)));
		MUT("header bit clear", -EFSCORRUPTED, (z[32] &= ~1, fix_digest(z)));
		MUT("verify = 2", -EFSCORRUPTED, (z[88] = 2, fix_digest(z)));

		/* Block-level damage: open succeeds, the read fails. */
		{
			struct obd_mem_io m;
			struct obd_zfile zf2;
			u8 buf[4096];
			u32 b5len;
			u64 b5;

			memcpy(z, zref, zlen);
			obd_mem_io_init(&m, z, zlen, "blk");
			ret = obd_zfile_open(&zf2, &m.io, &obd_user_codec, &e);
			obd_zfile_block_range(&zf2, 5, &b5, &b5len);
			z[b5 + 3] ^= 0x40;
			ret = ret ? ret : obd_io_read(&zf2.io, buf, 100, 5 * 4096 + 10);
			tap_ok(ret == -EFSBADCRC, "bad block CRC: read -> %d", ret);
			ret = obd_zfile_decode_block(&zf2.info, 5, z + b5, b5len, zf2.dbuf,
						     &obd_user_codec, false, "blk", &e);
			tap_ok(ret == -EFSBADCRC && strstr(e.msg, "block 5 crc: got 0x"),
			       "  -> message: %s", e.msg);
			/* Same damage with the CRC fixed up: decoder must catch it. */
			memset(z + b5, 0xff, b5len - 4);
			obd_put_le32(z + b5 + b5len - 4,
				     obd_crc32c(OBD_CRC_SEED_BLOCK, z + b5, b5len - 4));
			ret = obd_io_read(&zf2.io, buf, 100, 5 * 4096 + 10);
			tap_ok(ret == -EFSCORRUPTED, "undecodable block, good CRC: read -> %d", ret);
			ret = obd_zfile_decode_block(&zf2.info, 5, z + b5, b5len, zf2.dbuf,
						     &obd_user_codec, false, "blk", &e);
			tap_ok(ret == -EFSCORRUPTED && strstr(e.msg, "block 5"),
			       "  -> message: %s", e.msg);
			memcpy(z, zref, zlen);
			ret = obd_io_read(&zf2.io, buf, 4096, 5 * 4096);
			tap_ok(ret == 0 && !memcmp(buf, plain + 5 * 4096, 4096),
			       "restored block reads back");
			obd_zfile_close(&zf2);
		}
		free(z);
	}
	free(plain);
	free(zref);
}

static void test_trailer_rules(void)
{
	struct obd_err e = { { 0 } };
	size_t len = 3 * 8192 + 77, zlen = 0;
	u8 *buf = malloc(len), *z, *t;
	size_t i;
	int ret;

	for (i = 0; i < len; i++)
		buf[i] = (u8)(i / 7);
	z = compress_mem(buf, len, OBD_ZFILE_ALGO_ZSTD, 8192, true, false, &zlen, &e);
	tap_ok(z && check_read(z, zlen, buf, len, NULL, &e) == 0, "zstd no-overwrite file reads");
	if (!z)
		return;
	t = z + zlen - 512;
	tap_ok(obd_get_le64(t + 32) == OBD_ZFILE_FLAGS_TRAILER && obd_get_le64(z + 32) == 0x13,
	       "trailer flags 0x16, header flags 0x13");
	t[32] |= 1;
	ret = open_mem(z, zlen, &e);
	tap_ok(ret == -EFSCORRUPTED, "trailer with HEADER bit: %d (%s)", ret, e.msg);
	t[32] &= ~1;
	t[32] &= ~4;
	ret = open_mem(z, zlen, &e);
	tap_ok(ret == -EFSCORRUPTED, "trailer without SEALED bit: %d (%s)", ret, e.msg);
	t[32] |= 4;
	t[64] ^= 1;
	ret = open_mem(z, zlen, &e);
	tap_ok(ret == -EFSBADCRC, "trailer index_crc wrong: %d (%s)", ret, e.msg);
	t[64] ^= 1;
	obd_put_le64(t + 40, zlen - 512 - 4);
	ret = open_mem(z, zlen, &e);
	tap_ok(ret == -EFSCORRUPTED, "trailer index overlaps itself: %d (%s)", ret, e.msg);
	free(z);
	free(buf);
}

static void fill(u8 *buf, size_t len, int kind)
{
	size_t i;

	for (i = 0; i < len; i++) {
		switch (kind) {
		case 0:	/* random: incompressible */
			buf[i] = (u8)rand();
			break;
		case 1:	/* compressible text-like */
			buf[i] = (u8)("overlaybd zfile "[i % 16] + (i / 4096) % 3);
			break;
		default:	/* zeros with sparse noise */
			buf[i] = (i % 997 == 0) ? (u8)rand() : 0;
			break;
		}
	}
}

static void test_round_trips(void)
{
	static const char *kinds[] = { "random", "compressible", "sparse" };
	static const u32 bss[] = { 4096, 8192, 16384, 32768, 65536 };
	struct obd_err e = { { 0 } };
	u8 algo;
	int k, bi, bad = 0, total = 0;

	for (algo = OBD_ZFILE_ALGO_LZ4; algo <= OBD_ZFILE_ALGO_ZSTD; algo++)
		for (bi = 0; bi < 5; bi++)
			for (k = 0; k < 3; k++) {
				u32 bs = bss[bi];
				size_t sizes[] = { 1, bs, 5 * bs + 333, 3 * bs - 1 };
				int si;

				for (si = 0; si < 4; si++) {
					size_t len = sizes[si], zlen = 0;
					u8 *buf = malloc(len), *z;
					bool ow = (si + k) & 1;
					int ret;

					fill(buf, len, k);
					z = compress_mem(buf, len, algo, bs, true, ow, &zlen, &e);
					ret = z ? check_read(z, zlen, buf, len, NULL, &e) : -ENOMEM;
					total++;
					if (ret) {
						bad++;
						tap_diag("%s bs %u %s len %zu: %d %s",
							 algo == 1 ? "lz4" : "zstd", bs, kinds[k],
							 len, ret, e.msg);
					}
					free(z);
					free(buf);
				}
			}
	tap_ok(!bad, "round trips lz4/zstd x 4..64 KiB x 3 data kinds x 4 sizes (%d/%d bad)",
	       bad, total);

	/* Without per-block CRCs. */
	{
		size_t len = 200000, zlen = 0;
		u8 *buf = malloc(len), *z;

		fill(buf, len, 1);
		z = compress_mem(buf, len, OBD_ZFILE_ALGO_LZ4, 16384, false, true, &zlen, &e);
		tap_ok(z && z[88] == 0 && check_read(z, zlen, buf, len, NULL, &e) == 0,
		       "verify=0 round trip");
		free(z);
		free(buf);
	}

	/* Incompressible 64 KiB blocks grow past 65536 bytes stored. */
	for (algo = OBD_ZFILE_ALGO_LZ4; algo <= OBD_ZFILE_ALGO_ZSTD; algo++) {
		size_t len = 4 * 65536 + 1000, zlen = 0;
		u8 *buf = malloc(len), *z;
		u32 ms = 0;
		int ret;

		fill(buf, len, 0);
		z = compress_mem(buf, len, algo, 65536, true, true, &zlen, &e);
		ret = z ? check_read(z, zlen, buf, len, &ms, &e) : -ENOMEM;
		tap_ok(ret == 0 && ms > 65536, "%s incompressible 64 KiB blocks: max stored %u > 65536, reads back (%d %s)",
		       algo == 1 ? "lz4" : "zstd", ms, ret, ret ? e.msg : "");
		free(z);
		free(buf);
	}

	/* Empty input: zero blocks, still a valid file. */
	{
		size_t zlen = 0;
		u8 *z = compress_mem((const u8 *)"", 0, OBD_ZFILE_ALGO_LZ4, 4096, true, true, &zlen, &e);

		tap_ok(z && zlen == 1024 && check_read(z, zlen, (const u8 *)"", 0, NULL, &e) == 0,
		       "empty input: 1024-byte file opens, size 0");
		free(z);
	}
}

static u64 prog_done, prog_total;
static int prog_calls;

static void prog(void *ctx, u64 done, u64 total)
{
	prog_done = done;
	prog_total = total;
	prog_calls++;
}

static void test_compress_fd(void)
{
	struct obd_err e = { { 0 } };
	int in = open(REF "l1.commit", O_RDONLY);
	char tmpl[] = "/tmp/obd_test_zfile_fd_XXXXXX";
	int out = mkstemp(tmpl);
	size_t zlen;
	u8 *zref = slurp(REF "l1.commit.lz4.zfile", &zlen), *got;
	s64 r;

	r = obd_zfile_compress_fd(in, out, 0, OBD_ZFILE_ALGO_LZ4, 4096, true, true, prog, NULL, &e);
	got = malloc(zlen);
	tap_ok(r == (s64)zlen && pread(out, got, zlen, 0) == (ssize_t)zlen && !memcmp(got, zref, zlen),
	       "obd_zfile_compress_fd reproduces l1.commit.lz4.zfile");
	tap_ok(prog_calls > 0 && prog_done == 1691136 && prog_total == 1691136,
	       "progress reported %llu / %llu", (unsigned long long)prog_done,
	       (unsigned long long)prog_total);
	{
		struct obd_zfile_writer w;

		tap_ok(obd_zfile_writer_init(&w, out, 0, 0, 4096, true, false, &e) == -EINVAL,
		       "writer rejects algo lzo");
		tap_ok(obd_zfile_writer_init(&w, out, 0, 1, 12288, true, false, &e) == -EINVAL,
		       "writer rejects block size 12288");
	}
	free(got);
	free(zref);
	close(in);
	close(out);
	unlink(tmpl);
}

int main(void)
{
	srand(1);
	test_reference();
	test_trailer_rules();
	test_round_trips();
	test_compress_fd();
	return tap_done();
}
