// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * ZFile reader (spec 3): header/trailer validation, the jump table and
 * random uncompressed reads. Every value from disk is checked before use;
 * block sizes and offsets are bounded so that the compact jump table
 * (u64 per 256 blocks + u32 per block) cannot overflow.
 */
#include "obd.h"

#define ZF_GROUP	(1u << OBD_ZF_GROUP_SHIFT)
#define ZF_CHUNK	65536u	/* jump table read size */

/*
 * Largest stored block we accept: incompressible input grows a little
 * (LZ4: bs + bs/255 + 16; zstd frame: bs + a few hundred bytes), plus the
 * CRC. Twice the block size is generous and keeps 256 of them below 2^32.
 */
static inline u64 zf_max_stored(u32 bs)
{
	return 2ULL * bs + 1024;
}

static const u8 zf_magic1[16] = OBD_ZFILE_MAGIC1_BYTES;

static bool zf_magic_ok(const u8 *blk)
{
	return obd_get_le64(blk) == OBD_ZFILE_MAGIC0 && !memcmp(blk + 8, zf_magic1, 16);
}

/* crc32c of the 512-byte block with the digest field read as zero. */
static u32 zf_digest(const u8 *blk)
{
	static const u8 zero[4];
	u32 c;

	c = obd_crc32c(0, blk, 28);
	c = obd_crc32c(c, zero, 4);
	return obd_crc32c(c, blk + 32, OBD_ZFILE_HT_SPACE - 32);
}

int obd_zfile_probe(struct obd_io *io, struct obd_err *err)
{
	const struct obd_zfile_ht *ht;
	u8 *blk;
	u32 got, want;
	int ret;

	if (io->size < OBD_ZFILE_HT_SPACE)
		return 0;
	blk = obd_zalloc(OBD_ZFILE_HT_SPACE);
	if (!blk)
		return obd_errf(err, -ENOMEM, "%s: zfile: out of memory", io->name);
	ret = obd_io_read(io, blk, OBD_ZFILE_HT_SPACE, 0);
	if (ret) {
		obd_errf(err, ret, "%s: zfile header: read failed (%d)", io->name, ret);
		goto out_free;
	}
	ht = (const struct obd_zfile_ht *)blk;
	if (!zf_magic_ok(blk) || !(le64_to_cpu(ht->flags) & OBD_ZFILE_F_HEADER)) {
		ret = 0;
		goto out_free;
	}
	ret = 1;
	if (le64_to_cpu(ht->flags) & OBD_ZFILE_F_DIGEST) {
		got = zf_digest(blk);
		want = le32_to_cpu(ht->digest);
		if (got != want)
			ret = obd_errf(err, -EFSBADCRC,
				       "%s: zfile header digest: got 0x%08x, expected 0x%08x",
				       io->name, got, want);
	}
out_free:
	obd_free(blk);
	return ret;
}

int obd_zfile_decode_ht(const void *blkv, bool is_header, u64 file_size,
			const char *name, struct obd_zfile_info *zi,
			struct obd_err *err)
{
	const u8 *blk = blkv;
	const struct obd_zfile_ht *ht = blkv;
	const char *what = is_header ? "header" : "trailer";
	u64 flags, limit, want_n, min_stored;
	u32 bs, dict;
	bool index_info;

	memset(zi, 0, sizeof(*zi));
	if (!zf_magic_ok(blk))
		return obd_errf(err, -EFSCORRUPTED, "%s: zfile %s magic: got %02x%02x%02x%02x..., expected \"ZFile\"",
				name, what, blk[0], blk[1], blk[2], blk[3]);
	flags = le64_to_cpu(ht->flags);
	if (flags & ~0x3fULL)
		return obd_errf(err, -EOPNOTSUPP, "%s: zfile %s flags: got 0x%llx, expected bits 0x3f only",
				name, what, (unsigned long long)flags);
	if (flags & OBD_ZFILE_F_IDX_COMP)
		return obd_errf(err, -EOPNOTSUPP, "%s: zfile %s flags: compressed index (0x20) not supported",
				name, what);
	if (is_header) {
		if (!(flags & OBD_ZFILE_F_HEADER))
			return obd_errf(err, -EFSCORRUPTED, "%s: zfile header flags: got 0x%llx, expected HEADER bit",
					name, (unsigned long long)flags);
		if (!(flags & OBD_ZFILE_F_HEADER_OVERWRITE) && !(flags & OBD_ZFILE_F_DATA))
			return obd_errf(err, -EFSCORRUPTED, "%s: zfile header flags: got 0x%llx, expected DATA bit",
					name, (unsigned long long)flags);
		if (flags & OBD_ZFILE_F_DIGEST) {
			u32 got = zf_digest(blk), want = le32_to_cpu(ht->digest);

			if (got != want)
				return obd_errf(err, -EFSBADCRC, "%s: zfile header digest: got 0x%08x, expected 0x%08x",
						name, got, want);
		}
	} else {
		u64 need = OBD_ZFILE_F_DATA | OBD_ZFILE_F_SEALED;

		if ((flags & OBD_ZFILE_F_HEADER) || (flags & need) != need)
			return obd_errf(err, -EFSCORRUPTED, "%s: zfile trailer flags: got 0x%llx, expected DATA|SEALED without HEADER",
					name, (unsigned long long)flags);
	}

	bs = le32_to_cpu(ht->block_size);
	if (bs < OBD_ZFILE_MIN_BS || bs > OBD_ZFILE_MAX_BS || (bs & (bs - 1)))
		return obd_errf(err, -EFSCORRUPTED, "%s: zfile %s block_size: got %u, expected a power of two in 4096..65536",
				name, what, bs);
	if (ht->algo != OBD_ZFILE_ALGO_LZ4 && ht->algo != OBD_ZFILE_ALGO_ZSTD)
		return obd_errf(err, -EOPNOTSUPP, "%s: zfile %s algo: got %u (%s), expected 1 (lz4) or 2 (zstd)",
				name, what, ht->algo, ht->algo == OBD_ZFILE_ALGO_LZO ? "lzo" : "unknown");
	dict = le32_to_cpu(ht->dict_size);
	if (dict)
		return obd_errf(err, -EOPNOTSUPP, "%s: zfile %s dict_size: got %u, expected 0 (dictionaries unsupported)",
				name, what, dict);
	if (ht->verify > 1)
		return obd_errf(err, -EFSCORRUPTED, "%s: zfile %s verify: got %u, expected 0 or 1",
				name, what, ht->verify);

	zi->flags = flags;
	zi->block_size = bs;
	zi->algo = ht->algo;
	zi->verify = ht->verify;
	zi->data_start = OBD_ZFILE_HT_SPACE + dict;
	zi->overwritten = is_header && (flags & OBD_ZFILE_F_HEADER_OVERWRITE);

	index_info = !is_header || zi->overwritten;
	if (!index_info)
		return 0;

	zi->index_offset = le64_to_cpu(ht->index_offset);
	zi->nblocks = le64_to_cpu(ht->index_size);
	zi->original_size = le64_to_cpu(ht->original_file_size);
	zi->index_crc = le32_to_cpu(ht->index_crc);

	if (zi->nblocks > OBD_ZFILE_MAX_BLOCKS)
		return obd_errf(err, -EFSCORRUPTED, "%s: zfile %s index_size: got %llu, expected <= %llu",
				name, what, (unsigned long long)zi->nblocks,
				(unsigned long long)OBD_ZFILE_MAX_BLOCKS);
	if (zi->original_size > OBD_ZFILE_MAX_BLOCKS * OBD_ZFILE_MAX_BS)
		return obd_errf(err, -EFSCORRUPTED, "%s: zfile %s original_file_size: got %llu, too large",
				name, what, (unsigned long long)zi->original_size);
	want_n = OBD_DIV_UP(zi->original_size, bs);
	if (zi->nblocks != want_n)
		return obd_errf(err, -EFSCORRUPTED, "%s: zfile %s index_size: got %llu, expected %llu (ceil(%llu / %u))",
				name, what, (unsigned long long)zi->nblocks,
				(unsigned long long)want_n,
				(unsigned long long)zi->original_size, bs);
	/* The table ends before the trailer (which is always written). */
	if (file_size < zi->data_start + OBD_ZFILE_HT_SPACE)
		return obd_errf(err, -EFSCORRUPTED, "%s: zfile size: got %llu, expected >= %u",
				name, (unsigned long long)file_size,
				zi->data_start + OBD_ZFILE_HT_SPACE);
	limit = file_size - OBD_ZFILE_HT_SPACE;
	if (zi->index_offset < zi->data_start || zi->index_offset > limit ||
	    zi->nblocks * 4 > limit - zi->index_offset)
		return obd_errf(err, -EFSCORRUPTED, "%s: zfile %s index_offset: got %llu (+%llu bytes), expected within [%u, %llu]",
				name, what, (unsigned long long)zi->index_offset,
				(unsigned long long)(zi->nblocks * 4), zi->data_start,
				(unsigned long long)limit);
	/*
	 * Every block is stored in at least 1 byte (5 with a CRC): a count the
	 * data area cannot hold is refused before the jump table is allocated
	 * from it (4 bytes a block).
	 */
	min_stored = zi->verify ? OBD_ZFILE_CRC_SIZE + 1 : 1;
	if (zi->nblocks > (zi->index_offset - zi->data_start) / min_stored)
		return obd_errf(err, -EFSCORRUPTED, "%s: zfile %s index_size: got %llu blocks, but the %llu data bytes before index_offset hold at most %llu",
				name, what, (unsigned long long)zi->nblocks,
				(unsigned long long)(zi->index_offset - zi->data_start),
				(unsigned long long)((zi->index_offset - zi->data_start) / min_stored));
	return 0;
}

u32 obd_zfile_block_ulen(const struct obd_zfile_info *zi, u64 b)
{
	if (b >= zi->nblocks)
		return 0;
	if (b + 1 < zi->nblocks)
		return zi->block_size;
	return (u32)(zi->original_size - b * zi->block_size);
}

int obd_zfile_decode_block(const struct obd_zfile_info *zi, u64 b,
			   const u8 *stored, u32 slen, void *dst,
			   struct obd_codec *codec, bool no_verify,
			   const char *name, struct obd_err *err)
{
	u32 ulen = obd_zfile_block_ulen(zi, b);
	u32 plen = slen;
	int ret;

	if (zi->verify) {
		u32 got, want;

		if (slen <= OBD_ZFILE_CRC_SIZE)
			return obd_errf(err, -EFSCORRUPTED, "%s: zfile block %llu stored size: got %u, expected > 4",
					name, (unsigned long long)b, slen);
		plen = slen - OBD_ZFILE_CRC_SIZE;
		if (!no_verify) {
			got = obd_crc32c(OBD_CRC_SEED_BLOCK, stored, plen);
			want = obd_get_le32(stored + plen);
			if (got != want)
				return obd_errf(err, -EFSBADCRC, "%s: zfile block %llu crc: got 0x%08x, expected 0x%08x",
						name, (unsigned long long)b, got, want);
		}
	} else if (!slen) {
		return obd_errf(err, -EFSCORRUPTED, "%s: zfile block %llu stored size: got 0, expected > 0",
				name, (unsigned long long)b);
	}
	ret = codec->decode(codec, zi->algo, stored, plen, dst, zi->block_size);
	if (ret < 0)
		return obd_errf(err, ret, "%s: zfile block %llu: %s decode failed (%d)",
				name, (unsigned long long)b,
				zi->algo == OBD_ZFILE_ALGO_LZ4 ? "lz4" : "zstd", ret);
	if ((u32)ret != ulen)
		return obd_errf(err, -EFSCORRUPTED, "%s: zfile block %llu decoded length: got %d, expected %u",
				name, (unsigned long long)b, ret, ulen);
	return ret;
}

static struct obd_zfile *zf_of_io(struct obd_io *io)
{
	return (struct obd_zfile *)((char *)io - __builtin_offsetof(struct obd_zfile, io));
}

static int zf_alloc_buffers(struct obd_zfile *zf)
{
	zf->cbuf = obd_zalloc(zf->max_stored ? zf->max_stored : 1);
	zf->dbuf = obd_zalloc(zf->info.block_size);
	if (!zf->cbuf || !zf->dbuf) {
		obd_zfile_drop_buffers(zf);
		return -ENOMEM;
	}
	return 0;
}

static int obd_zfile_read(struct obd_io *io, void *buf, size_t len, u64 off)
{
	struct obd_zfile *zf = zf_of_io(io);
	const struct obd_zfile_info *zi = &zf->info;
	u8 *out = buf;
	int ret;

	if (off > io->size || len > io->size - off)
		return -EIO;
	if (len && !zf->cbuf) {
		ret = zf_alloc_buffers(zf);
		if (ret)
			return ret;
	}
	while (len) {
		u64 b = off / zi->block_size;
		u32 in = (u32)(off % zi->block_size);
		u32 ulen = obd_zfile_block_ulen(zi, b);
		u32 n = ulen - in, slen;
		u64 soff;
		bool direct;

		if (n > len)
			n = (u32)len;
		obd_zfile_block_range(zf, b, &soff, &slen);
		ret = obd_io_read(zf->src, zf->cbuf, slen, soff);
		if (ret)
			return ret;
		/* A whole block lands straight in the caller's buffer. */
		direct = in == 0 && n == ulen && ulen == zi->block_size;
		ret = obd_zfile_decode_block(zi, b, zf->cbuf, slen,
					     direct ? out : zf->dbuf, zf->codec,
					     zf->no_verify, zf->src->name, NULL);
		if (ret < 0)
			return ret;
		if (!direct)
			memcpy(out, zf->dbuf + in, n);
		out += n;
		off += n;
		len -= n;
	}
	return 0;
}

void obd_zfile_drop_buffers(struct obd_zfile *zf)
{
	obd_free(zf->cbuf);
	obd_free(zf->dbuf);
	zf->cbuf = NULL;
	zf->dbuf = NULL;
}

void obd_zfile_close(struct obd_zfile *zf)
{
	obd_free(zf->group_base);
	obd_free(zf->delta);
	zf->group_base = NULL;
	zf->delta = NULL;
	obd_zfile_drop_buffers(zf);
}

/* Read, check and compact the jump table. */
static int zf_load_table(struct obd_zfile *zf, bool check_crc, struct obd_err *err)
{
	const struct obd_zfile_info *zi = &zf->info;
	const char *name = zf->src->name;
	u64 n = zi->nblocks, b = 0, pos = zi->data_start;
	u64 max_s = zf_max_stored(zi->block_size);
	u64 ngroups = (n >> OBD_ZF_GROUP_SHIFT) + 1;
	u32 crc = 0, max_stored = 0;
	u8 *chunk;
	int ret;

	if (n + 1 > ((size_t)-1) / sizeof(u32) || ngroups > ((size_t)-1) / sizeof(u64))
		return obd_errf(err, -ENOMEM, "%s: zfile index_size %llu too large", name,
				(unsigned long long)n);
	zf->delta = obd_zalloc((size_t)(n + 1) * sizeof(u32));
	zf->group_base = obd_zalloc((size_t)ngroups * sizeof(u64));
	chunk = obd_zalloc(ZF_CHUNK);
	if (!zf->delta || !zf->group_base || !chunk) {
		ret = obd_errf(err, -ENOMEM, "%s: zfile jump table (%llu blocks): out of memory",
			       name, (unsigned long long)n);
		goto out_free;
	}
	while (b < n) {
		u64 cnt = n - b, i;

		if (cnt > ZF_CHUNK / 4)
			cnt = ZF_CHUNK / 4;
		ret = obd_io_read(zf->src, chunk, cnt * 4, zi->index_offset + b * 4);
		if (ret) {
			obd_errf(err, ret, "%s: zfile jump table: read failed (%d)", name, ret);
			goto out_free;
		}
		crc = obd_crc32c(crc, chunk, cnt * 4);
		for (i = 0; i < cnt; i++, b++) {
			u32 s = obd_get_le32(chunk + i * 4);

			if (s == 0 || (zi->verify && s <= OBD_ZFILE_CRC_SIZE) || s > max_s) {
				ret = obd_errf(err, -EFSCORRUPTED,
					       "%s: zfile jump table block %llu stored size: got %u, expected %u..%llu",
					       name, (unsigned long long)b, s,
					       zi->verify ? 5 : 1, (unsigned long long)max_s);
				goto out_free;
			}
			if ((b & (ZF_GROUP - 1)) == 0)
				zf->group_base[b >> OBD_ZF_GROUP_SHIFT] = pos;
			zf->delta[b] = (u32)(pos - zf->group_base[b >> OBD_ZF_GROUP_SHIFT]);
			pos += s;
			if (pos > zi->index_offset) {
				ret = obd_errf(err, -EFSCORRUPTED,
					       "%s: zfile jump table block %llu: ends at %llu, expected <= index_offset %llu",
					       name, (unsigned long long)b, (unsigned long long)pos,
					       (unsigned long long)zi->index_offset);
				goto out_free;
			}
			if (s > max_stored)
				max_stored = s;
		}
	}
	if ((n & (ZF_GROUP - 1)) == 0)
		zf->group_base[n >> OBD_ZF_GROUP_SHIFT] = pos;
	zf->delta[n] = (u32)(pos - zf->group_base[n >> OBD_ZF_GROUP_SHIFT]);

	if (check_crc && crc != zi->index_crc) {
		ret = obd_errf(err, -EFSBADCRC, "%s: zfile index_crc: got 0x%08x, expected 0x%08x",
			       name, crc, zi->index_crc);
		goto out_free;
	}
	zf->max_stored = max_stored;
	obd_free(chunk);
	return 0;
out_free:
	obd_free(chunk);
	return ret;
}

int obd_zfile_open(struct obd_zfile *zf, struct obd_io *src,
		   struct obd_codec *codec, struct obd_err *err)
{
	struct obd_zfile_info hi;
	u8 *blk;
	bool check_crc;
	int ret;

	memset(zf, 0, sizeof(*zf));
	zf->src = src;
	zf->codec = codec;
	if (src->size < 2 * OBD_ZFILE_HT_SPACE)
		return obd_errf(err, -EFSCORRUPTED, "%s: zfile size: got %llu, expected >= %u",
				src->name, (unsigned long long)src->size,
				2 * OBD_ZFILE_HT_SPACE);
	blk = obd_zalloc(OBD_ZFILE_HT_SPACE);
	if (!blk)
		return obd_errf(err, -ENOMEM, "%s: zfile: out of memory", src->name);
	ret = obd_io_read(src, blk, OBD_ZFILE_HT_SPACE, 0);
	if (ret) {
		obd_errf(err, ret, "%s: zfile header: read failed (%d)", src->name, ret);
		goto out_blk;
	}
	ret = obd_zfile_decode_ht(blk, true, src->size, src->name, &hi, err);
	if (ret)
		goto out_blk;
	if (hi.overwritten) {
		zf->info = hi;
		check_crc = hi.flags & OBD_ZFILE_F_DIGEST;
	} else {
		ret = obd_io_read(src, blk, OBD_ZFILE_HT_SPACE, src->size - OBD_ZFILE_HT_SPACE);
		if (ret) {
			obd_errf(err, ret, "%s: zfile trailer: read failed (%d)", src->name, ret);
			goto out_blk;
		}
		ret = obd_zfile_decode_ht(blk, false, src->size, src->name, &zf->info, err);
		if (ret)
			goto out_blk;
		/* The trailer's options govern, as in the reference reader. */
		check_crc = zf->info.flags & OBD_ZFILE_F_DIGEST;
		zf->info.flags = hi.flags;
	}
	ret = zf_load_table(zf, check_crc, err);
	if (ret)
		goto out_table;
	if (zf_alloc_buffers(zf)) {
		ret = obd_errf(err, -ENOMEM, "%s: zfile buffers: out of memory", src->name);
		goto out_table;
	}
	zf->io.read = obd_zfile_read;
	zf->io.size = zf->info.original_size;
	zf->io.name = src->name;
	obd_free(blk);
	return 0;
out_table:
	obd_zfile_close(zf);
out_blk:
	obd_free(blk);
	return ret;
}
