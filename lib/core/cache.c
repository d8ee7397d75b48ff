// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * Cache entry metadata (include/obd_format.h, "Cache entry metadata"): the
 * header codec and digest strings. One parser for the kernel (which reads
 * the entry when a device first uses a blob), obd attach (which makes new
 * entries) and overlaybd-fetchd (which keeps the bitmap).
 */
#include "obd.h"

u64 obd_cache_bitmap_bytes(u64 blob_size)
{
	u64 granules = OBD_DIV_UP(blob_size, (u64)1 << OBD_CACHE_GRANULE_SHIFT);

	/* whole 64-bit words, so both sides can use word-sized bit helpers */
	return OBD_ALIGN_UP(OBD_DIV_UP(granules, 8), 8);
}

static u32 obd_cache_hdr_crc(const u8 *blk)
{
	static const u8 zero[4];
	u32 crc;

	crc = obd_crc32c(0, blk, 84);
	crc = obd_crc32c(crc, zero, sizeof(zero));
	return obd_crc32c(crc, blk + 88, OBD_CACHE_HDR_SPACE - 88);
}

/* 0 for a sane policy: known flags; when set, tries >= 1, blocks of 4 KiB..64 MiB. */
static int obd_cache_dl_check(const struct obd_cache_dl *dl)
{
	if (dl->flags & ~OBD_CACHE_DL_ALL)
		return -EINVAL;
	if (!(dl->flags & OBD_CACHE_DL_SET))
		return dl->flags || dl->delay || dl->delay_extra || dl->max_mbps || dl->try_cnt ||
		       dl->block_size ? -EINVAL : 0;
	if (!dl->try_cnt || dl->try_cnt > 100 || !dl->block_size || dl->block_size % 4096 ||
	    dl->block_size > (64u << 20))
		return -EINVAL;
	return 0;
}

int obd_cache_hdr_decode(const void *blk, const char *name, struct obd_cache_info *ci,
			 struct obd_err *err)
{
	const struct obd_cache_hdr *h = blk;
	const u8 *b = blk;
	u32 v, crc, want, flags, ulen;
	u64 size;
	unsigned int i;

	if (memcmp(h->magic, OBD_CACHE_MAGIC, 8))
		return obd_errf(err, -EFSCORRUPTED, "%s: cache header: bad magic", name);
	v = le32_to_cpu(h->version);
	if (v != OBD_CACHE_VERSION)
		return obd_errf(err, -EOPNOTSUPP, "%s: cache header: version %u, expected %u",
				name, v, OBD_CACHE_VERSION);
	crc = le32_to_cpu(h->hdr_crc);
	want = obd_cache_hdr_crc(b);
	if (crc != want)
		return obd_errf(err, -EFSBADCRC,
				"%s: cache header: hdr_crc 0x%08x, computed 0x%08x", name, crc,
				want);
	v = le32_to_cpu(h->hdr_space);
	if (v != OBD_CACHE_HDR_SPACE)
		return obd_errf(err, -EFSCORRUPTED, "%s: cache header: hdr_space %u, expected %u",
				name, v, OBD_CACHE_HDR_SPACE);
	v = le32_to_cpu(h->granule_shift);
	if (v != OBD_CACHE_GRANULE_SHIFT)
		return obd_errf(err, -EOPNOTSUPP,
				"%s: cache header: granule_shift %u, expected %u", name, v,
				OBD_CACHE_GRANULE_SHIFT);
	flags = le32_to_cpu(h->flags);
	if (flags & ~OBD_CACHE_F_ALL)
		return obd_errf(err, -EOPNOTSUPP, "%s: cache header: unknown flags 0x%x", name,
				flags & ~OBD_CACHE_F_ALL);
	size = le64_to_cpu(h->blob_size);
	if (!size || size > OBD_CACHE_MAX_BLOB)
		return obd_errf(err, -EFSCORRUPTED,
				"%s: cache header: blob_size %llu, expected 1..%llu", name,
				(unsigned long long)size, (unsigned long long)OBD_CACHE_MAX_BLOB);
	if (le64_to_cpu(h->bitmap_off) != OBD_CACHE_HDR_SPACE)
		return obd_errf(err, -EFSCORRUPTED,
				"%s: cache header: bitmap_off %llu, expected %u", name,
				(unsigned long long)le64_to_cpu(h->bitmap_off),
				OBD_CACHE_HDR_SPACE);
	if (le64_to_cpu(h->bitmap_bytes) != obd_cache_bitmap_bytes(size))
		return obd_errf(err, -EFSCORRUPTED,
				"%s: cache header: bitmap_bytes %llu, expected %llu", name,
				(unsigned long long)le64_to_cpu(h->bitmap_bytes),
				(unsigned long long)obd_cache_bitmap_bytes(size));
	ulen = le32_to_cpu(h->url_len);
	if (ulen >= OBD_CACHE_URL_MAX)
		return obd_errf(err, -EFSCORRUPTED, "%s: cache header: url_len %u, expected < %u",
				name, ulen, OBD_CACHE_URL_MAX);
	for (i = 0; i < OBD_CACHE_URL_MAX; i++) {
		u8 c = (u8)h->url[i];

		if (i < ulen ? (c <= 0x20 || c >= 0x7f) : c != 0)
			return obd_errf(err, -EFSCORRUPTED,
					"%s: cache header: url byte %u is 0x%02x", name, i, c);
	}
	ci->dl.flags = le32_to_cpu(h->dl_flags);
	ci->dl.delay = le32_to_cpu(h->dl_delay);
	ci->dl.delay_extra = le32_to_cpu(h->dl_delay_extra);
	ci->dl.max_mbps = le32_to_cpu(h->dl_max_mbps);
	ci->dl.try_cnt = le32_to_cpu(h->dl_try_cnt);
	ci->dl.block_size = le32_to_cpu(h->dl_block_size);
	if (obd_cache_dl_check(&ci->dl))
		return obd_errf(err, -EFSCORRUPTED,
				"%s: cache header: bad download policy (flags 0x%x, tries %u, block size %u)",
				name, ci->dl.flags, ci->dl.try_cnt, ci->dl.block_size);
	for (i = 0; i < sizeof(h->reserved); i++)
		if (h->reserved[i])
			return obd_errf(err, -EFSCORRUPTED,
					"%s: cache header: reserved byte %u not zero", name, i);

	ci->blob_size = size;
	ci->flags = flags;
	memcpy(ci->digest, h->digest, OBD_CACHE_DIGEST_LEN);
	ci->bitmap_off = OBD_CACHE_HDR_SPACE;
	ci->bitmap_bytes = obd_cache_bitmap_bytes(size);
	memcpy(ci->url, h->url, ulen);
	ci->url[ulen] = 0;
	return 0;
}

int obd_cache_hdr_encode(const struct obd_cache_info *ci, void *blk, struct obd_err *err)
{
	struct obd_cache_hdr *h = blk;
	size_t ulen = strlen(ci->url);

	if (!ci->blob_size || ci->blob_size > OBD_CACHE_MAX_BLOB)
		return obd_errf(err, -EINVAL, "cache header: blob size %llu out of range",
				(unsigned long long)ci->blob_size);
	if (ulen >= OBD_CACHE_URL_MAX)
		return obd_errf(err, -EINVAL, "cache header: url of %zu bytes, at most %u",
				ulen, OBD_CACHE_URL_MAX - 1);
	if (ci->flags & ~OBD_CACHE_F_ALL)
		return obd_errf(err, -EINVAL, "cache header: unknown flags 0x%x", ci->flags);
	if (obd_cache_dl_check(&ci->dl))
		return obd_errf(err, -EINVAL, "cache header: bad download policy");
	memset(blk, 0, OBD_CACHE_HDR_SPACE);
	memcpy(h->magic, OBD_CACHE_MAGIC, 8);
	h->version = cpu_to_le32(OBD_CACHE_VERSION);
	h->hdr_space = cpu_to_le32(OBD_CACHE_HDR_SPACE);
	h->granule_shift = cpu_to_le32(OBD_CACHE_GRANULE_SHIFT);
	h->flags = cpu_to_le32(ci->flags);
	h->blob_size = cpu_to_le64(ci->blob_size);
	memcpy(h->digest, ci->digest, OBD_CACHE_DIGEST_LEN);
	h->bitmap_off = cpu_to_le64(OBD_CACHE_HDR_SPACE);
	h->bitmap_bytes = cpu_to_le64(obd_cache_bitmap_bytes(ci->blob_size));
	h->dl_flags = cpu_to_le32(ci->dl.flags);
	h->dl_delay = cpu_to_le32(ci->dl.delay);
	h->dl_delay_extra = cpu_to_le32(ci->dl.delay_extra);
	h->dl_max_mbps = cpu_to_le32(ci->dl.max_mbps);
	h->dl_try_cnt = cpu_to_le32(ci->dl.try_cnt);
	h->dl_block_size = cpu_to_le32(ci->dl.block_size);
	h->url_len = cpu_to_le32((u32)ulen);
	memcpy(h->url, ci->url, ulen);
	h->hdr_crc = cpu_to_le32(obd_cache_hdr_crc(blk));
	return 0;
}

static int obd_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int obd_digest_parse(const char *s, size_t len, u8 digest[OBD_CACHE_DIGEST_LEN])
{
	unsigned int i;

	if (len != OBD_DIGEST_STR_LEN || memcmp(s, "sha256:", 7))
		return -EINVAL;
	for (i = 0; i < OBD_CACHE_DIGEST_LEN; i++) {
		int hi = obd_hexval(s[7 + 2 * i]), lo = obd_hexval(s[8 + 2 * i]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		digest[i] = (u8)(hi << 4 | lo);
	}
	return 0;
}

void obd_digest_format(const u8 digest[OBD_CACHE_DIGEST_LEN], char out[OBD_DIGEST_STR_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned int i;

	memcpy(out, "sha256:", 7);
	for (i = 0; i < OBD_CACHE_DIGEST_LEN; i++) {
		out[7 + 2 * i] = hex[digest[i] >> 4];
		out[8 + 2 * i] = hex[digest[i] & 15];
	}
	out[OBD_DIGEST_STR_LEN] = 0;
}
