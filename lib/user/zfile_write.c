// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * Streaming ZFile writer, byte-identical to the reference (spec 3.8).
 * Userspace only.
 */
#include <stdlib.h>
#include <unistd.h>
#include <sys/types.h>
#include <lz4.h>
#include <zstd.h>

#include "zfile_write.h"
#include "env_user.h"

#define ZW_OUT_CAP	(1u << 20)
#define ZW_ZSTD_LEVEL	3	/* the reference ignores opt.level */

static int zw_flush(struct obd_zfile_writer *w, struct obd_err *err)
{
	int ret;

	if (!w->out_len)
		return 0;
	ret = obd_pwrite_all(w->fd, w->out, w->out_len, w->base + w->pos - w->out_len);
	if (ret)
		return obd_errf(err, ret, "zfile writer: write at %llu: %s",
				(unsigned long long)(w->base + w->pos - w->out_len),
				strerror(-ret));
	w->out_len = 0;
	if (w->progress)
		w->progress(w->progress_ctx, w->original_size, w->progress_total);
	return 0;
}

/* Queue bytes for output; pos counts them immediately. */
static int zw_emit(struct obd_zfile_writer *w, const void *buf, size_t len,
		   struct obd_err *err)
{
	const u8 *p = buf;
	int ret;

	while (len) {
		size_t n = w->out_cap - w->out_len;

		if (n > len)
			n = len;
		memcpy(w->out + w->out_len, p, n);
		w->out_len += n;
		w->pos += n;
		p += n;
		len -= n;
		if (w->out_len == w->out_cap) {
			ret = zw_flush(w, err);
			if (ret)
				return ret;
		}
	}
	return 0;
}

/* Fill a 512-byte header/trailer block and its digest. */
static void zw_build_ht(const struct obd_zfile_writer *w, u8 *blk, u64 flags,
			u64 index_offset, u64 index_size, u64 orig, u32 index_crc)
{
	static const u8 magic1[16] = OBD_ZFILE_MAGIC1_BYTES;
	struct obd_zfile_ht *ht = (struct obd_zfile_ht *)blk;

	memset(blk, 0, OBD_ZFILE_HT_SPACE);
	ht->magic0 = cpu_to_le64(OBD_ZFILE_MAGIC0);
	memcpy(ht->magic1, magic1, sizeof(magic1));
	ht->size = cpu_to_le32(OBD_ZFILE_HT_SIZE);
	ht->flags = cpu_to_le64(flags);
	ht->index_offset = cpu_to_le64(index_offset);
	ht->index_size = cpu_to_le64(index_size);
	ht->original_file_size = cpu_to_le64(orig);
	ht->index_crc = cpu_to_le32(index_crc);
	ht->block_size = cpu_to_le32(w->block_size);
	ht->algo = w->algo;
	ht->level = 0;
	ht->verify = w->verify ? 1 : 0;
	if (flags & OBD_ZFILE_F_DIGEST)
		ht->digest = cpu_to_le32(obd_crc32c(0, blk, OBD_ZFILE_HT_SPACE));
}

void obd_zfile_writer_abort(struct obd_zfile_writer *w)
{
	free(w->in);
	free(w->out);
	free(w->table);
	if (w->cctx)
		ZSTD_freeCCtx(w->cctx);
	w->in = NULL;
	w->out = NULL;
	w->table = NULL;
	w->cctx = NULL;
}

int obd_zfile_writer_init(struct obd_zfile_writer *w, int fd, u64 base_offset,
			  u8 algo, u32 block_size, bool verify,
			  bool overwrite_header, struct obd_err *err)
{
	u8 blk[OBD_ZFILE_HT_SPACE];

	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->base = base_offset;
	w->algo = algo;
	w->block_size = block_size;
	w->verify = verify;
	w->overwrite_header = overwrite_header;
	if (block_size < OBD_ZFILE_MIN_BS || block_size > OBD_ZFILE_MAX_BS ||
	    (block_size & (block_size - 1)))
		return obd_errf(err, -EINVAL, "zfile writer: block size %u: expected a power of two in 4096..65536",
				block_size);
	if (algo == OBD_ZFILE_ALGO_LZ4)
		w->cbound = (size_t)LZ4_compressBound((int)block_size);
	else if (algo == OBD_ZFILE_ALGO_ZSTD)
		w->cbound = ZSTD_compressBound(block_size);
	else
		return obd_errf(err, -EINVAL, "zfile writer: algo %u: expected 1 (lz4) or 2 (zstd)",
				algo);
	w->out_cap = ZW_OUT_CAP;
	w->in = malloc(block_size);
	w->out = malloc(w->out_cap);
	if (algo == OBD_ZFILE_ALGO_ZSTD)
		w->cctx = ZSTD_createCCtx();
	if (!w->in || !w->out || (algo == OBD_ZFILE_ALGO_ZSTD && !w->cctx)) {
		obd_zfile_writer_abort(w);
		return obd_errf(err, -ENOMEM, "zfile writer: out of memory");
	}
	zw_build_ht(w, blk, OBD_ZFILE_FLAGS_HEADER, 0, 0, 0, 0);
	return zw_emit(w, blk, sizeof(blk), err);
}

void obd_zfile_writer_set_progress(struct obd_zfile_writer *w, obd_progress_fn fn,
				   void *ctx, u64 total)
{
	w->progress = fn;
	w->progress_ctx = ctx;
	w->progress_total = total;
}

/* Compress one block straight into the output buffer. */
static int zw_block(struct obd_zfile_writer *w, const u8 *src, u32 len, struct obd_err *err)
{
	size_t clen;
	u8 *dst;
	int ret;

	if (w->nblocks == w->table_cap) {
		u64 cap = w->table_cap ? w->table_cap * 2 : 1024;
		u32 *t;

		if (cap > OBD_ZFILE_MAX_BLOCKS)
			cap = OBD_ZFILE_MAX_BLOCKS;
		if (w->nblocks >= cap)
			return obd_errf(err, -EFBIG, "zfile writer: more than %llu blocks",
					(unsigned long long)OBD_ZFILE_MAX_BLOCKS);
		t = realloc(w->table, cap * sizeof(*t));
		if (!t)
			return obd_errf(err, -ENOMEM, "zfile writer: out of memory");
		w->table = t;
		w->table_cap = cap;
	}
	if (w->out_cap - w->out_len < w->cbound + OBD_ZFILE_CRC_SIZE) {
		ret = zw_flush(w, err);
		if (ret)
			return ret;
	}
	dst = w->out + w->out_len;
	if (w->algo == OBD_ZFILE_ALGO_LZ4) {
		int r = LZ4_compress_default((const char *)src, (char *)dst, (int)len,
					     (int)w->cbound);

		if (r <= 0)
			return obd_errf(err, -EIO, "zfile writer: LZ4_compress_default failed (%d)", r);
		clen = (size_t)r;
	} else {
		clen = ZSTD_compressCCtx(w->cctx, dst, w->cbound, src, len, ZW_ZSTD_LEVEL);
		if (ZSTD_isError(clen))
			return obd_errf(err, -EIO, "zfile writer: ZSTD_compress failed: %s",
					ZSTD_getErrorName(clen));
	}
	if (w->verify) {
		obd_put_le32(dst + clen, obd_crc32c(OBD_CRC_SEED_BLOCK, dst, clen));
		clen += OBD_ZFILE_CRC_SIZE;
	}
	w->out_len += clen;
	w->pos += clen;
	w->table[w->nblocks++] = (u32)clen;
	w->original_size += len;
	return 0;
}

int obd_zfile_writer_write(struct obd_zfile_writer *w, const void *buf, size_t len,
			   struct obd_err *err)
{
	const u8 *p = buf;
	int ret;

	if (w->error)
		return obd_errf(err, w->error, "zfile writer: earlier error");
	while (len) {
		if (w->in_len == 0 && len >= w->block_size) {
			ret = zw_block(w, p, w->block_size, err);
			if (ret)
				goto fail;
			p += w->block_size;
			len -= w->block_size;
			continue;
		}
		size_t n = w->block_size - w->in_len;

		if (n > len)
			n = len;
		memcpy(w->in + w->in_len, p, n);
		w->in_len += (u32)n;
		p += n;
		len -= n;
		if (w->in_len == w->block_size) {
			ret = zw_block(w, w->in, w->in_len, err);
			if (ret)
				goto fail;
			w->in_len = 0;
		}
	}
	return 0;
fail:
	w->error = ret;
	return ret;
}

s64 obd_zfile_writer_finish(struct obd_zfile_writer *w, struct obd_err *err)
{
	u8 blk[OBD_ZFILE_HT_SPACE];
	u64 index_offset, i;
	u32 crc = 0;
	s64 total;
	int ret;

	if (w->error) {
		ret = obd_errf(err, w->error, "zfile writer: earlier error");
		goto out;
	}
	if (w->in_len) {
		ret = zw_block(w, w->in, w->in_len, err);
		if (ret)
			goto out;
		w->in_len = 0;
	}
	index_offset = w->pos;
	for (i = 0; i < w->nblocks; i++) {
		u8 le[4];

		obd_put_le32(le, w->table[i]);
		crc = obd_crc32c(crc, le, 4);
		ret = zw_emit(w, le, 4, err);
		if (ret)
			goto out;
	}
	zw_build_ht(w, blk, OBD_ZFILE_FLAGS_TRAILER, index_offset, w->nblocks,
		    w->original_size, crc);
	ret = zw_emit(w, blk, sizeof(blk), err);
	if (ret)
		goto out;
	ret = zw_flush(w, err);
	if (ret)
		goto out;
	if (w->overwrite_header) {
		zw_build_ht(w, blk, OBD_ZFILE_FLAGS_OVERWRITTEN, index_offset, w->nblocks,
			    w->original_size, crc);
		ret = obd_pwrite_all(w->fd, blk, sizeof(blk), w->base);
		if (ret) {
			obd_errf(err, ret, "zfile writer: header rewrite: %s", strerror(-ret));
			goto out;
		}
	}
	total = (s64)w->pos;
	obd_zfile_writer_abort(w);
	return total;
out:
	obd_zfile_writer_abort(w);
	return ret;
}

s64 obd_zfile_compress_fd(int in_fd, int out_fd, u64 out_base, u8 algo,
			  u32 block_size, bool verify, bool overwrite_header,
			  obd_progress_fn progress, void *progress_ctx,
			  struct obd_err *err)
{
	struct obd_zfile_writer w;
	const size_t cap = 1u << 20;
	off_t end;
	u8 *buf;
	int ret;

	ret = obd_zfile_writer_init(&w, out_fd, out_base, algo, block_size, verify,
				    overwrite_header, err);
	if (ret)
		return ret;
	if (progress) {
		off_t cur = lseek(in_fd, 0, SEEK_CUR);

		end = lseek(in_fd, 0, SEEK_END);
		if (cur >= 0 && end >= cur && lseek(in_fd, cur, SEEK_SET) == cur)
			obd_zfile_writer_set_progress(&w, progress, progress_ctx,
						      (u64)(end - cur));
		else
			obd_zfile_writer_set_progress(&w, progress, progress_ctx, 0);
	}
	buf = malloc(cap);
	if (!buf) {
		obd_zfile_writer_abort(&w);
		return obd_errf(err, -ENOMEM, "zfile writer: out of memory");
	}
	for (;;) {
		ssize_t r = read(in_fd, buf, cap);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			ret = obd_errf(err, -errno, "zfile writer: read input: %s",
				       strerror(errno));
			free(buf);
			obd_zfile_writer_abort(&w);
			return ret;
		}
		if (r == 0)
			break;
		ret = obd_zfile_writer_write(&w, buf, (size_t)r, err);
		if (ret) {
			free(buf);
			obd_zfile_writer_abort(&w);
			return ret;
		}
	}
	free(buf);
	return obd_zfile_writer_finish(&w, err);
}
