/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * overlaybd on-disk formats: LSMT, ZFile and the tar wrapper.
 *
 * This header holds nothing but the format. It has no #include: the kernel
 * includes it after <linux/types.h>, userspace after lib/core/obd_defs.h, which
 * supplies __u8, __le16/32/64 and __packed. All integers are little-endian.
 * Byte offsets and values follow ../shared/spec/overlaybd-format.md (the
 * reference implementation, containerd/overlaybd).
 *
 *   blob = [tar( ] [zfile( ] lsmt [ )] [ )]
 */
#ifndef OBD_FORMAT_H
#define OBD_FORMAT_H

#define OBD_SECTOR_SHIFT	9
#define OBD_SECTOR_SIZE		512u

/* ------------------------------------------------------------------------
 * LSMT (spec section 2)
 *
 *  [0,4096)        header   (struct obd_lsmt_ht + zero padding)
 *  [4096, I)       data     (sectors, addressed by SegmentMapping.moffset)
 *  [I, I+16n)      index    (n struct obd_lsmt_mapping, I = index_offset)
 *  [end-4096,end)  trailer  (struct obd_lsmt_ht + zero padding)
 * ------------------------------------------------------------------------ */
#define OBD_LSMT_HT_SPACE	4096u	/* header/trailer block on disk */
#define OBD_LSMT_HT_SIZE	390u	/* sizeof(struct obd_lsmt_ht), written in ->size */
#define OBD_LSMT_MAGIC0		0x00020100544d534cULL	/* "LSMT\0\1\2\0" */
#define OBD_LSMT_MAGIC1_BYTES \
	{ 0x65, 0x7e, 0x63, 0xd2, 0x94, 0x44, 0x08, 0x4c, \
	  0xa2, 0xd2, 0xc8, 0xec, 0x4f, 0xcf, 0xae, 0x8a }
#define OBD_LSMT_VERSION	1
#define OBD_LSMT_SUB_VERSION	1
#define OBD_UUID_STR_LEN	37	/* 36 chars + NUL */
#define OBD_LSMT_TAG_LEN	256	/* user_tag, not necessarily NUL-terminated */

/* flags (u32 at offset 28) */
#define OBD_LSMT_F_HEADER	0x01u	/* 1 header, 0 trailer */
#define OBD_LSMT_F_DATA		0x02u	/* 1 data file, 0 index file */
#define OBD_LSMT_F_SEALED	0x04u	/* trailer of a sealed/committed file */
#define OBD_LSMT_F_GC_LAYER	0x08u	/* documented, unused */
#define OBD_LSMT_F_SPARSE	0x10u	/* sparse RW data file */
#define OBD_LSMT_F_INFO_VALID	0x20u	/* documented, unused */
#define OBD_LSMT_F_ALL		0x3fu	/* any other bit: reject */

/* values written by the reference writer */
#define OBD_LSMT_FLAGS_RW_DATA		0x03u
#define OBD_LSMT_FLAGS_RW_DATA_SPARSE	0x13u
#define OBD_LSMT_FLAGS_RW_INDEX		0x01u
#define OBD_LSMT_FLAGS_COMMIT_HEADER	0x07u
#define OBD_LSMT_FLAGS_TRAILER		0x06u

/* limits (spec 2.10) */
#define OBD_LSMT_MAX_RO_INDEX	1000000ULL	/* trailer index_size, padding included */
#define OBD_LSMT_MAX_RW_INDEX	128000000ULL
#define OBD_LSMT_MAX_MERGED	128000000ULL
#define OBD_MAX_LAYERS		255
#define OBD_MAP_MAX_LENGTH	16383u		/* sectors, 14 bits */
#define OBD_MAP_INVALID_OFFSET	((1ULL << 50) - 1)	/* padding record */
#define OBD_MAP_OFFSET_MASK	((1ULL << 50) - 1)
#define OBD_MAP_MOFFSET_MASK	((1ULL << 55) - 1)

struct obd_lsmt_ht {			/* 390 bytes, padded to 4096 on disk */
	__le64 magic0;			/*   0: OBD_LSMT_MAGIC0 */
	__u8   magic1[16];		/*   8: OBD_LSMT_MAGIC1_BYTES */
	__le32 size;			/*  24: 390, never checked */
	__le32 flags;			/*  28: OBD_LSMT_F_* */
	__le64 index_offset;		/*  32: bytes from file start */
	__le64 index_size;		/*  40: number of 16-byte records */
	__le64 virtual_size;		/*  48: bytes */
	__u8   uuid[OBD_UUID_STR_LEN];	/*  56: "XXXXXXXX-XXXX-...", uppercase */
	__u8   parent_uuid[OBD_UUID_STR_LEN]; /* 93 */
	__le16 reserved;		/* 130: deprecated from/to */
	__u8   version;			/* 132: 1 */
	__u8   sub_version;		/* 133: 1 */
	__u8   user_tag[OBD_LSMT_TAG_LEN]; /* 134: commit message */
} __packed;

/*
 * SegmentMapping, 16 bytes, as two little-endian words:
 *   w0 = offset:50 | length:14 << 50          (sectors)
 *   w1 = moffset:55 | zeroed:1 << 55 | tag:8 << 56
 */
struct obd_lsmt_mapping {
	__le64 w0;
	__le64 w1;
};

/* ------------------------------------------------------------------------
 * ZFile (spec section 3)
 *
 *  [0,512)           header (struct obd_zfile_ht + zero padding)
 *  [512, 512+dict)   dictionary (always empty)
 *  [D, I)            blocks; each optionally followed by a u32 CRC
 *  [I, I+4n)         jump table: u32 stored size of each block
 *  [I+4n, +512)      trailer (same struct)
 * ------------------------------------------------------------------------ */
#define OBD_ZFILE_HT_SPACE	512u
#define OBD_ZFILE_HT_SIZE	96u
#define OBD_ZFILE_MAGIC0	0x000100656c69465aULL	/* "ZFile\0\1\0" */
#define OBD_ZFILE_MAGIC1_BYTES \
	{ 't', 'u', 'j', 'i', '.', 'y', 'y', 'f', \
	  '@', 'A', 'l', 'i', 'b', 'a', 'b', 'a' }

#define OBD_ZFILE_F_HEADER		0x01ULL
#define OBD_ZFILE_F_DATA		0x02ULL
#define OBD_ZFILE_F_SEALED		0x04ULL
#define OBD_ZFILE_F_HEADER_OVERWRITE	0x08ULL
#define OBD_ZFILE_F_DIGEST		0x10ULL
#define OBD_ZFILE_F_IDX_COMP		0x20ULL	/* defined, never honoured: reject */

#define OBD_ZFILE_FLAGS_HEADER		0x13ULL
#define OBD_ZFILE_FLAGS_TRAILER		0x16ULL
#define OBD_ZFILE_FLAGS_OVERWRITTEN	0x1bULL

#define OBD_ZFILE_ALGO_LZO	0	/* defined, not implemented anywhere */
#define OBD_ZFILE_ALGO_LZ4	1
#define OBD_ZFILE_ALGO_ZSTD	2

#define OBD_ZFILE_MIN_BS	4096u
#define OBD_ZFILE_MAX_BS	65536u
#define OBD_ZFILE_MAX_BLOCKS	1000000000ULL
#define OBD_ZFILE_CRC_SIZE	4u
#define OBD_CRC_SEED_BLOCK	100007u	/* per-block CRC seed */

struct obd_zfile_ht {			/* 96 bytes, padded to 512 on disk */
	__le64 magic0;			/*  0 */
	__u8   magic1[16];		/*  8 */
	__le32 size;			/* 24: 96 */
	__le32 digest;			/* 28: crc32c(512 B block, digest = 0) */
	__le64 flags;			/* 32: OBD_ZFILE_F_* */
	__le64 index_offset;		/* 40: bytes, the jump table */
	__le64 index_size;		/* 48: number of blocks */
	__le64 original_file_size;	/* 56: uncompressed bytes */
	__le32 index_crc;		/* 64: crc32c(jump table), seed 0 */
	__le32 reserved_0;		/* 68 */
	__le32 block_size;		/* 72: bytes */
	__u8   algo;			/* 76: OBD_ZFILE_ALGO_* */
	__u8   level;			/* 77 */
	__u8   use_dict;		/* 78 */
	__u8   pad0;			/* 79 */
	__le32 opt_reserved;		/* 80 */
	__le32 dict_size;		/* 84 */
	__u8   verify;			/* 88: 1 = u32 CRC after each block */
	__u8   pad1[7];			/* 89 */
};

/* ------------------------------------------------------------------------
 * tar wrapper (spec section 4.1): ustar header blocks of 512 bytes.
 *   [0,512) pax 'x' header, [512,1024) pax data "NN size=N\n",
 *   [1024,1536) ustar '0' header "overlaybd.commit", [1536,...) payload
 * ------------------------------------------------------------------------ */
#define OBD_TAR_BLOCK		512u
#define OBD_TAR_PAX_PAYLOAD	1536u

struct obd_tar_header {			/* 512 bytes */
	char name[100];			/*   0 */
	char mode[8];			/* 100 */
	char uid[8];			/* 108 */
	char gid[8];			/* 116 */
	char size[12];			/* 124: octal */
	char mtime[12];			/* 136 */
	char chksum[8];			/* 148: octal, field counted as spaces */
	char typeflag;			/* 156: '0', 'x', ... */
	char linkname[100];		/* 157 */
	char magic[6];			/* 257: "ustar\0" */
	char version[2];		/* 263: "00" */
	char uname[32];			/* 265 */
	char gname[32];			/* 297 */
	char devmajor[8];		/* 329 */
	char devminor[8];		/* 337 */
	char prefix[155];		/* 345 */
	char pad[12];			/* 500 */
};

/* ------------------------------------------------------------------------
 * Cache entry metadata (ours; not in the reference). A remote blob is
 * cached at <cacheDir>/sha256:<hex> with the blob's own byte offsets, as
 * overlaybd's file cache does (spec 6.5); beside it, <that path>.meta:
 *
 *  [0, 4096)            struct obd_cache_hdr (zero padded)
 *  [4096, 4096 + B)     presence bitmap: bit g (byte g / 8, bit g % 8,
 *                       LSB first) set = blob bytes [g << 12, (g + 1) << 12)
 *                       (clipped to the blob size) are in the cache file
 *                       and were made durable (fdatasync) before the bit
 *                       was written. B = obd_cache_bitmap_bytes(blob_size).
 *
 * Written by obd attach (a new entry: empty bitmap) and overlaybd-fetchd
 * (bits, after the data is durable; cleared before a range is fetched
 * again); read by the kernel when a device first uses the blob, and by the
 * daemon after a restart. It names the blob's URL, so a restarted daemon
 * needs nothing else. Credentials are never stored here.
 * ------------------------------------------------------------------------ */
#define OBD_CACHE_MAGIC		"OBDCACHE"	/* 8 bytes, no NUL */
#define OBD_CACHE_VERSION	1
#define OBD_CACHE_HDR_SPACE	4096u
#define OBD_CACHE_GRANULE_SHIFT	12
#define OBD_CACHE_URL_MAX	2048u		/* url[] bytes, NUL included */
#define OBD_CACHE_DIGEST_LEN	32		/* sha256, raw */
/* Largest blob a cache entry describes: 1 TiB (a 32 MiB bitmap). */
#define OBD_CACHE_MAX_BLOB	(1ULL << 40)

/* flags */
#define OBD_CACHE_F_COMPLETE	0x1u	/* every bit set and the sha256 verified */
#define OBD_CACHE_F_GUNZIP	0x2u	/* a gunzip entry: the decompressed tar of the gzip blob digest names (fetchd/gunzip.c) */
#define OBD_CACHE_F_ALL		0x3u

struct obd_cache_hdr {			/* 2176 bytes, padded to 4096 on disk */
	__u8 magic[8];			/* 0: OBD_CACHE_MAGIC */
	__le32 version;			/* 8: OBD_CACHE_VERSION */
	__le32 hdr_space;		/* 12: OBD_CACHE_HDR_SPACE */
	__le32 granule_shift;		/* 16: OBD_CACHE_GRANULE_SHIFT */
	__le32 flags;			/* 20: OBD_CACHE_F_*; unknown bits => reject */
	__le64 blob_size;		/* 24: bytes, 1 .. OBD_CACHE_MAX_BLOB */
	__u8 digest[OBD_CACHE_DIGEST_LEN];	/* 32: sha256 of the blob */
	__le64 bitmap_off;		/* 64: OBD_CACHE_HDR_SPACE */
	__le64 bitmap_bytes;		/* 72: obd_cache_bitmap_bytes(blob_size) */
	__le32 url_len;			/* 80: strlen(url), 0 .. URL_MAX - 1 */
	__le32 hdr_crc;			/* 84: obd_crc32c(0) of the 4096-byte block,
					 *     this field taken as 0 */
	/*
	 * 88: background download policy of the image that attached this blob
	 * last (config.v1.json "download", spec 5.4); used by overlaybd-fetchd
	 * instead of its own default when OBD_CACHE_DL_SET.
	 */
	__le32 dl_flags;		/* 88: OBD_CACHE_DL_*; unknown bits => reject */
	__le32 dl_delay;		/* 92: s */
	__le32 dl_delay_extra;		/* 96: s */
	__le32 dl_max_mbps;		/* 100: MiB/s, 0 = unthrottled */
	__le32 dl_try_cnt;		/* 104: >= 1 when set */
	__le32 dl_block_size;		/* 108: bytes, multiple of 4096 when set */
	__u8 reserved[16];		/* 112: 0 */
	char url[OBD_CACHE_URL_MAX];	/* 128: blob URL, NUL padded */
};

#define OBD_CACHE_DL_SET	0x1u	/* the dl_* fields hold a policy */
#define OBD_CACHE_DL_ENABLE	0x2u	/* ... which says: download it */
#define OBD_CACHE_DL_ALL	0x3u

/* File-scope size asserts: the build fails if the layout drifts. */
_Static_assert(sizeof(struct obd_lsmt_ht) == OBD_LSMT_HT_SIZE, "lsmt ht size");
_Static_assert(__builtin_offsetof(struct obd_lsmt_ht, uuid) == 56, "lsmt uuid");
_Static_assert(__builtin_offsetof(struct obd_lsmt_ht, parent_uuid) == 93, "lsmt parent");
_Static_assert(__builtin_offsetof(struct obd_lsmt_ht, version) == 132, "lsmt version");
_Static_assert(__builtin_offsetof(struct obd_lsmt_ht, user_tag) == 134, "lsmt tag");
_Static_assert(sizeof(struct obd_lsmt_mapping) == 16, "mapping size");
_Static_assert(sizeof(struct obd_zfile_ht) == OBD_ZFILE_HT_SIZE, "zfile ht size");
_Static_assert(__builtin_offsetof(struct obd_zfile_ht, block_size) == 72, "zfile bs");
_Static_assert(__builtin_offsetof(struct obd_zfile_ht, verify) == 88, "zfile verify");
_Static_assert(sizeof(struct obd_tar_header) == OBD_TAR_BLOCK, "tar header size");
_Static_assert(__builtin_offsetof(struct obd_tar_header, magic) == 257, "tar magic");
_Static_assert(sizeof(struct obd_cache_hdr) == 2176, "cache hdr size");
_Static_assert(__builtin_offsetof(struct obd_cache_hdr, blob_size) == 24, "cache blob_size");
_Static_assert(__builtin_offsetof(struct obd_cache_hdr, hdr_crc) == 84, "cache hdr_crc");
_Static_assert(__builtin_offsetof(struct obd_cache_hdr, url) == 128, "cache url");
_Static_assert(__builtin_offsetof(struct obd_cache_hdr, reserved) == 112, "cache reserved");

#endif /* OBD_FORMAT_H */
