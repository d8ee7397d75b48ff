// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * LSMT read-only layers (spec 2.1-2.5, 2.7): header/trailer validation and
 * index loading. Shared with the kernel module: no libc beyond obd_defs.h,
 * no large stack buffers, the index is read in bounded chunks.
 */
#include "obd.h"

static const u8 obd_lsmt_magic1[16] = OBD_LSMT_MAGIC1_BYTES;

/* 64 KiB of records per read: bounded scratch, few I/Os. */
#define OBD_LSMT_CHUNK_RECS	4096u

void obd_map_decode(const struct obd_lsmt_mapping *raw, struct obd_map *m)
{
	u64 w0 = le64_to_cpu(raw->w0);
	u64 w1 = le64_to_cpu(raw->w1);

	m->offset = w0 & OBD_MAP_OFFSET_MASK;
	m->length = (u32)(w0 >> 50);
	m->moffset = w1 & OBD_MAP_MOFFSET_MASK;
	m->zeroed = (u8)((w1 >> 55) & 1);
	m->tag = (u8)(w1 >> 56);
}

void obd_map_encode(const struct obd_map *m, struct obd_lsmt_mapping *raw)
{
	u64 w0 = (m->offset & OBD_MAP_OFFSET_MASK) | ((u64)(m->length & 0x3fff) << 50);
	u64 w1 = (m->moffset & OBD_MAP_MOFFSET_MASK) | ((u64)(m->zeroed & 1) << 55) |
		 ((u64)m->tag << 56);

	raw->w0 = cpu_to_le64(w0);
	raw->w1 = cpu_to_le64(w1);
}

int obd_lsmt_decode_ht(const void *blk, bool is_header, const char *name,
		       u32 *flags, u64 *index_offset, u64 *index_size,
		       u64 *virtual_size, struct obd_err *err)
{
	const u8 *b = blk;
	const char *what = is_header ? "header" : "trailer";
	u64 magic0 = obd_get_le64(b);
	u32 f = obd_get_le32(b + 28);

	if (magic0 != OBD_LSMT_MAGIC0)
		return obd_errf(err, EFSCORRUPTED,
				"%s: LSMT %s magic0: got 0x%016llx, expected 0x%016llx",
				name, what, (unsigned long long)magic0,
				(unsigned long long)OBD_LSMT_MAGIC0);
	if (memcmp(b + 8, obd_lsmt_magic1, sizeof(obd_lsmt_magic1)))
		return obd_errf(err, EFSCORRUPTED,
				"%s: LSMT %s magic1: got %016llx%016llx, expected 657e63d294440"
				"84ca2d2c8ec4fcfae8a", name, what,
				(unsigned long long)__builtin_bswap64(obd_get_le64(b + 8)),
				(unsigned long long)__builtin_bswap64(obd_get_le64(b + 16)));
	if (f & ~OBD_LSMT_F_ALL)
		return obd_errf(err, EFSCORRUPTED,
				"%s: LSMT %s flags: got 0x%x, expected no bits outside 0x%x",
				name, what, f, OBD_LSMT_F_ALL);
	if (!!(f & OBD_LSMT_F_HEADER) != is_header)
		return obd_errf(err, EFSCORRUPTED,
				"%s: LSMT %s flags: got 0x%x, expected header bit %d",
				name, what, f, is_header ? 1 : 0);
	if (flags)
		*flags = f;
	if (index_offset)
		*index_offset = obd_get_le64(b + 32);
	if (index_size)
		*index_size = obd_get_le64(b + 40);
	if (virtual_size)
		*virtual_size = obd_get_le64(b + 48);
	return 0;
}

/* Copy the string fields; a missing NUL is tolerated, not propagated. */
static void obd_lsmt_copy_ids(const u8 *b, struct obd_lsmt_info *li)
{
	const struct obd_lsmt_ht *ht = (const struct obd_lsmt_ht *)b;

	memcpy(li->uuid, ht->uuid, OBD_UUID_STR_LEN);
	li->uuid[OBD_UUID_STR_LEN - 1] = 0;
	memcpy(li->parent_uuid, ht->parent_uuid, OBD_UUID_STR_LEN);
	li->parent_uuid[OBD_UUID_STR_LEN - 1] = 0;
	memcpy(li->user_tag, ht->user_tag, OBD_LSMT_TAG_LEN);
	li->user_tag[OBD_LSMT_TAG_LEN] = 0;
}

/* Reads one 390-byte header/trailer struct at off into a heap buffer. */
static int obd_lsmt_read_ht(struct obd_io *io, u64 off, const char *what, u8 **out,
			    struct obd_err *err)
{
	u8 *b;
	int ret;

	b = obd_zalloc(OBD_LSMT_HT_SIZE);
	if (!b)
		return obd_errf(err, ENOMEM, "%s: LSMT %s: out of memory", io->name, what);
	ret = obd_io_read(io, b, OBD_LSMT_HT_SIZE, off);
	if (ret < 0) {
		obd_free(b);
		return obd_errf(err, -ret, "%s: LSMT %s: read of %u bytes at %llu failed (%d)",
				io->name, what, OBD_LSMT_HT_SIZE, (unsigned long long)off, ret);
	}
	*out = b;
	return 0;
}

int obd_lsmt_read_header(struct obd_io *io, struct obd_lsmt_info *li, struct obd_err *err)
{
	u8 *b;
	u32 flags;
	int ret;

	memset(li, 0, sizeof(*li));
	if (io->size < OBD_LSMT_HT_SPACE)
		return obd_errf(err, EFSCORRUPTED,
				"%s: LSMT file size: got %llu, expected >= %u",
				io->name, (unsigned long long)io->size, OBD_LSMT_HT_SPACE);
	ret = obd_lsmt_read_ht(io, 0, "header", &b, err);
	if (ret)
		return ret;
	ret = obd_lsmt_decode_ht(b, true, io->name, &flags, &li->index_offset,
				 &li->index_size, &li->virtual_size, err);
	if (ret)
		goto out_free;
	li->header_flags = flags;
	switch (flags) {
	case OBD_LSMT_FLAGS_COMMIT_HEADER:
		li->kind = OBD_LSMT_COMMITTED;
		break;
	case OBD_LSMT_FLAGS_RW_DATA:
		li->kind = OBD_LSMT_RW_DATA;
		break;
	case OBD_LSMT_FLAGS_RW_DATA_SPARSE:
		li->kind = OBD_LSMT_RW_SPARSE;
		break;
	case OBD_LSMT_FLAGS_RW_INDEX:
		li->kind = OBD_LSMT_RW_INDEX;
		break;
	default:
		ret = obd_errf(err, EOPNOTSUPP,
			       "%s: LSMT header flags: got 0x%x, expected 0x07, 0x03, 0x13 or 0x01",
			       io->name, flags);
		goto out_free;
	}
	obd_lsmt_copy_ids(b, li);
out_free:
	obd_free(b);
	return ret;
}

/*
 * A warp layer's tag-1 record: its bytes are sectors of the target (the
 * original layer's uncompressed tar stream), which must hold all of them.
 */
static int obd_lsmt_check_target_map(const char *name, u64 i, const struct obd_map *m,
				     u64 target_sectors, struct obd_err *err)
{
	if (m->moffset > target_sectors || m->length > target_sectors - m->moffset)
		return obd_errf(err, EFSCORRUPTED,
				"%s: LSMT index record %llu (tag 1, target) moffset: got %llu+%u, expected end <= %llu (the target's sectors)",
				name, (unsigned long long)i, (unsigned long long)m->moffset,
				m->length, (unsigned long long)target_sectors);
	return 0;
}

static int obd_lsmt_check_map(const char *name, u64 i, const struct obd_map *m,
			      const struct obd_map *prev, u64 mend_max, u64 target_sectors,
			      struct obd_err *err)
{
	const u64 base = OBD_LSMT_HT_SPACE / OBD_SECTOR_SIZE;

	if (m->length == 0)
		return obd_errf(err, EFSCORRUPTED,
				"%s: LSMT index record %llu length: got 0, expected 1..%u",
				name, (unsigned long long)i, OBD_MAP_MAX_LENGTH);
	if (prev && obd_map_end(prev) > m->offset)
		return obd_errf(err, EFSCORRUPTED,
				"%s: LSMT index record %llu offset: got %llu, expected >= %llu (%s)",
				name, (unsigned long long)i, (unsigned long long)m->offset,
				(unsigned long long)obd_map_end(prev),
				m->offset < prev->offset ? "records not sorted" :
				"overlaps the previous record");
	if (m->target)
		return obd_lsmt_check_target_map(name, i, m, target_sectors, err);
	if (m->moffset < base)
		return obd_errf(err, EFSCORRUPTED,
				"%s: LSMT index record %llu moffset: got %llu, expected >= %llu",
				name, (unsigned long long)i, (unsigned long long)m->moffset,
				(unsigned long long)base);
	if (m->zeroed ? m->moffset > mend_max : m->moffset + m->length > mend_max)
		return obd_errf(err, EFSCORRUPTED,
				"%s: LSMT index record %llu moffset: got %llu+%u%s, expected end <= %llu (index start)",
				name, (unsigned long long)i, (unsigned long long)m->moffset,
				m->zeroed ? 0 : m->length, m->zeroed ? " (zeroed)" : "",
				(unsigned long long)mend_max);
	return 0;
}

/*
 * A warp layer's tags, the reference's way (open_warpfile_ro): normalised by
 * the smallest tag present (committed files have 0 as soon as any fsMeta
 * record exists), then 0 = fsMeta (this file) and 1 = remoteData (the
 * target); any other tag is refused instead of being read from nowhere.
 * Zeroed records read as zeros whatever their tag.
 */
static int obd_lsmt_warp_tags(const char *name, struct obd_map *maps, u64 n,
			      u64 mend_max, u64 target_sectors, struct obd_err *err)
{
	u8 min = 255;
	u64 i;
	int ret;

	for (i = 0; i < n; i++)
		if (maps[i].tag < min)
			min = maps[i].tag;
	for (i = 0; i < n; i++) {
		struct obd_map *m = &maps[i];
		u8 tag = m->tag - min;

		if (tag > OBD_WARP_TAG_TARGET)
			return obd_errf(err, EFSCORRUPTED,
					"%s: LSMT index record %llu tag: got %u (%u after the smallest, %u), expected 0 (meta) or 1 (target)",
					name, (unsigned long long)i, m->tag, tag, min);
		m->tag = 0;
		m->target = tag == OBD_WARP_TAG_TARGET && !m->zeroed;
		ret = obd_lsmt_check_map(name, i, m, i ? &maps[i - 1] : NULL, mend_max,
					 target_sectors, err);
		if (ret)
			return ret;
	}
	return 0;
}

/* warp: a TurboOCI meta layer over a target of target_size bytes. */
static int obd_lsmt_open(struct obd_io *io, struct obd_lsmt_info *li, struct obd_map **maps,
			 u64 *nmaps, bool warp, u64 target_size, struct obd_err *err)
{
	struct obd_lsmt_mapping *chunk = NULL;
	struct obd_map *out = NULL;
	u64 trailer_off, isize, ioff, vsize, n = 0, i, mend_max;
	u32 hflags, tflags;
	u8 *b = NULL;
	int ret;

	*maps = NULL;
	*nmaps = 0;
	memset(li, 0, sizeof(*li));
	if (io->size < 2 * OBD_LSMT_HT_SPACE)
		return obd_errf(err, EFSCORRUPTED,
				"%s: LSMT file size: got %llu, expected >= %u (header + trailer)",
				io->name, (unsigned long long)io->size, 2 * OBD_LSMT_HT_SPACE);

	ret = obd_lsmt_read_ht(io, 0, "header", &b, err);
	if (ret)
		return ret;
	ret = obd_lsmt_decode_ht(b, true, io->name, &hflags, NULL, NULL, NULL, err);
	if (ret)
		goto out_free_ht;
	if (!(hflags & OBD_LSMT_F_DATA)) {
		ret = obd_errf(err, EFSCORRUPTED,
			       "%s: LSMT header flags: got 0x%x, expected data bit 0x2 (not an index file)",
			       io->name, hflags);
		goto out_free_ht;
	}
	obd_free(b);
	b = NULL;

	trailer_off = io->size - OBD_LSMT_HT_SPACE;
	ret = obd_lsmt_read_ht(io, trailer_off, "trailer", &b, err);
	if (ret)
		return ret;
	ret = obd_lsmt_decode_ht(b, false, io->name, &tflags, &ioff, &isize, &vsize, err);
	if (ret)
		goto out_free_ht;
	if (!(tflags & OBD_LSMT_F_DATA) || !(tflags & OBD_LSMT_F_SEALED)) {
		ret = obd_errf(err, EFSCORRUPTED,
			       "%s: LSMT trailer flags: got 0x%x, expected data and sealed bits (0x6)",
			       io->name, tflags);
		goto out_free_ht;
	}
	if (isize > OBD_LSMT_MAX_RO_INDEX) {
		ret = obd_errf(err, EFSCORRUPTED,
			       "%s: LSMT trailer index_size: got %llu, expected <= %llu",
			       io->name, (unsigned long long)isize,
			       (unsigned long long)OBD_LSMT_MAX_RO_INDEX);
		goto out_free_ht;
	}
	if (ioff < OBD_LSMT_HT_SPACE || ioff > trailer_off ||
	    isize * sizeof(struct obd_lsmt_mapping) > trailer_off - ioff) {
		ret = obd_errf(err, EFSCORRUPTED,
			       "%s: LSMT trailer index_offset: got %llu (+%llu records), expected the index inside [%u, %llu)",
			       io->name, (unsigned long long)ioff, (unsigned long long)isize,
			       OBD_LSMT_HT_SPACE, (unsigned long long)trailer_off);
		goto out_free_ht;
	}
	li->kind = (hflags & OBD_LSMT_F_SEALED) ? OBD_LSMT_COMMITTED : OBD_LSMT_SEALED;
	li->header_flags = hflags;
	li->trailer_flags = tflags;
	li->index_offset = ioff;
	li->index_size = isize;
	li->virtual_size = vsize;
	obd_lsmt_copy_ids(b, li);
	obd_free(b);
	b = NULL;

	if (isize == 0)
		return 0;
	/* isize <= 1e6: the multiplication cannot overflow. */
	out = obd_zalloc((size_t)isize * sizeof(*out));
	chunk = obd_zalloc(OBD_LSMT_CHUNK_RECS * sizeof(*chunk));
	if (!out || !chunk) {
		ret = obd_errf(err, ENOMEM, "%s: LSMT index: out of memory for %llu records",
			       io->name, (unsigned long long)isize);
		goto out_free_maps;
	}
	mend_max = ioff / OBD_SECTOR_SIZE;
	for (i = 0; i < isize; i += OBD_LSMT_CHUNK_RECS) {
		u64 cnt = isize - i < OBD_LSMT_CHUNK_RECS ? isize - i : OBD_LSMT_CHUNK_RECS;
		u64 j;

		ret = obd_io_read(io, chunk, (size_t)cnt * sizeof(*chunk),
				  ioff + i * sizeof(*chunk));
		if (ret < 0) {
			ret = obd_errf(err, -ret, "%s: LSMT index: read of records %llu..%llu failed (%d)",
				       io->name, (unsigned long long)i,
				       (unsigned long long)(i + cnt), ret);
			goto out_free_maps;
		}
		for (j = 0; j < cnt; j++) {
			struct obd_map *m = &out[n];

			if (obd_map_raw_invalid(&chunk[j]))
				continue;
			obd_map_decode(&chunk[j], m);
			n++;
			if (warp)
				continue;	/* checked once every tag is known */
			m->tag = 0;
			ret = obd_lsmt_check_map(io->name, i + j, m, n > 1 ? &out[n - 2] : NULL,
						 mend_max, 0, err);
			if (ret)
				goto out_free_maps;
		}
	}
	obd_free(chunk);
	chunk = NULL;
	if (warp) {
		ret = obd_lsmt_warp_tags(io->name, out, n, mend_max,
					 target_size / OBD_SECTOR_SIZE, err);
		if (ret)
			goto out_free_maps;
	}
	if (n == 0) {
		obd_free(out);
		out = NULL;
	}
	*maps = out;
	*nmaps = n;
	return 0;

out_free_maps:
	obd_free(chunk);
	obd_free(out);
	return ret;
out_free_ht:
	obd_free(b);
	return ret;
}

int obd_lsmt_open_ro(struct obd_io *io, struct obd_lsmt_info *li,
		     struct obd_map **maps, u64 *nmaps, struct obd_err *err)
{
	return obd_lsmt_open(io, li, maps, nmaps, false, 0, err);
}

int obd_lsmt_open_warp(struct obd_io *io, struct obd_lsmt_info *li, struct obd_map **maps,
		       u64 *nmaps, u64 target_size, struct obd_err *err)
{
	return obd_lsmt_open(io, li, maps, nmaps, true, target_size, err);
}
