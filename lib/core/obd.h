/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * The overlaybd format core: one parser for the kernel module and the tools.
 *
 * Plain C, no libc and no kernel API beyond lib/core/obd_defs.h. Bytes come in
 * through struct obd_io (a random-access reader), memory through
 * obd_zalloc()/obd_free() and block decoding through struct obd_codec, all
 * supplied by the environment (lib/user/env_user.c for userspace, kmod/ for the
 * kernel). Every function returns 0 or -errno; on error it fills a
 * struct obd_err with a message that names the object (io->name), the
 * structure and the field, with got and expected values.
 *
 * Error codes: -EFSCORRUPTED (bad on-disk value), -EFSBADCRC (checksum),
 * -EOPNOTSUPP (valid but unsupported feature), -EINVAL (bad argument),
 * -ENOMEM, or whatever io->read returned.
 */
#ifndef OBD_H
#define OBD_H

#include "obd_defs.h"
#include "../../include/obd_format.h"

/* ------------------------------------------------------------------------
 * Environment
 * ------------------------------------------------------------------------ */

/* A message naming file, structure and field. Fixed size: no allocation. */
struct obd_err {
	char msg[256];
};

/*
 * printf-style into err (NULL err allowed). Pass the negative errno
 * (obd_errf(err, -EFSCORRUPTED, ...)); it is returned unchanged so that
 * `return obd_errf(...)` chains. A positive code is negated.
 */
int obd_errf(struct obd_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * A random-access byte source. read() must fill all of len bytes or return
 * -errno (a read past ->size is an error the caller never makes: the core
 * checks ranges against ->size first). ->name is used in messages.
 */
struct obd_io {
	int (*read)(struct obd_io *io, void *buf, size_t len, u64 off);
	u64 size;
	const char *name;
};

static inline int obd_io_read(struct obd_io *io, void *buf, size_t len, u64 off)
{
	if (off > io->size || len > io->size - off)
		return -EIO;
	return io->read(io, buf, len, off);
}

/*
 * Block decoder: returns the number of bytes written to dst (<= dcap) or
 * -errno (-EFSCORRUPTED for undecodable input). algo is OBD_ZFILE_ALGO_*.
 * LZ4 blocks are raw LZ4 blocks, ZSTD blocks are whole zstd frames.
 */
struct obd_codec {
	int (*decode)(struct obd_codec *c, u8 algo, const void *src, size_t slen,
		      void *dst, size_t dcap);
};

/* Supplied by the environment. obd_zalloc returns zeroed memory or NULL. */
void *obd_zalloc(size_t size);
void obd_free(void *p);

/* ------------------------------------------------------------------------
 * CRC32C, overlaybd variant: raw Castagnoli update, seed used as-is, no
 * final inversion. crc("123456789", 0) = 0x58E3FA20, seed 100007:
 * 0x3C9BD4E0. lib/user/crc32c.c is portable (slice-by-8) with an SSE4.2 path in
 * userspace; the kernel build maps it onto __crc32c_le().
 * ------------------------------------------------------------------------ */
u32 obd_crc32c(u32 seed, const void *buf, size_t len);
#ifndef __KERNEL__
/* The two userspace implementations, for tests and benchmarks. _hw falls
 * back to _sw when the CPU lacks SSE4.2. */
u32 obd_crc32c_sw(u32 seed, const void *buf, size_t len);
u32 obd_crc32c_hw(u32 seed, const void *buf, size_t len);
bool obd_crc32c_hw_available(void);
#endif

/* ------------------------------------------------------------------------
 * UUID strings (spec 2.3)
 * ------------------------------------------------------------------------ */
/* 1 if s (37 bytes, NUL at 36) is a well-formed UUID string, else 0. */
int obd_uuid_valid(const u8 *s);
/* 1 if s is all-zero bytes, the null UUID string, or empty. */
int obd_uuid_is_null(const u8 *s);

/* ------------------------------------------------------------------------
 * tar wrapper (spec 4.1)
 * ------------------------------------------------------------------------ */
struct obd_tar_info {
	u64 payload_off;	/* 512 or 1536 */
	u64 payload_size;	/* from the pax size record or the ustar size */
};

/*
 * Probe io for a tar wrapper. Returns 1 and fills ti if block 0 is a ustar
 * header (magic "ustar", version "00", valid checksum), 0 if it is not a
 * tar, or -errno if it is a tar but malformed (bad pax record, payload past
 * the end of io).
 */
int obd_tar_probe(struct obd_io *io, struct obd_tar_info *ti, struct obd_err *err);

/* Verify/compute a ustar header checksum (field counted as spaces). */
u32 obd_tar_checksum(const struct obd_tar_header *h);

/* ------------------------------------------------------------------------
 * A window onto part of another io (the tar payload).
 * ------------------------------------------------------------------------ */
struct obd_window {
	struct obd_io io;	/* what callers read from */
	struct obd_io *base;
	u64 off;
};

void obd_window_init(struct obd_window *w, struct obd_io *base, u64 off, u64 len);

/* ------------------------------------------------------------------------
 * ZFile (spec 3)
 * ------------------------------------------------------------------------ */
struct obd_zfile_info {		/* decoded, validated header (or trailer) */
	u64 flags;		/* of the header block */
	u64 index_offset;	/* bytes */
	u64 nblocks;		/* index_size */
	u64 original_size;	/* bytes */
	u32 index_crc;
	u32 block_size;		/* 4 KiB .. 64 KiB, power of two */
	u32 data_start;		/* 512 + dict_size */
	u8 algo;		/* OBD_ZFILE_ALGO_LZ4 / _ZSTD */
	u8 verify;		/* per-block CRC present */
	u8 overwritten;		/* header carried the index info */
};

/*
 * The jump table, compacted: block b starts at
 * group_base[b >> OBD_ZF_GROUP_SHIFT] + delta[b]; block b's stored size is
 * start(b + 1) - start(b) (nblocks + 1 entries). u32 deltas let a stored
 * block be larger than block_size (incompressible data, e.g. 65550 bytes for
 * a 64 KiB block), which the reference reader wrongly refuses.
 */
#define OBD_ZF_GROUP_SHIFT	8

struct obd_zfile {
	struct obd_zfile_info info;
	struct obd_io *src;	/* the (possibly windowed) ZFile bytes */
	u64 *group_base;
	u32 *delta;
	u32 max_stored;		/* largest stored block, CRC included */
	struct obd_io io;	/* the uncompressed stream, see obd_zfile_read */
	struct obd_codec *codec;
	u8 *cbuf, *dbuf;	/* scratch for io.read: max_stored, block_size; */
				/* NULL after obd_zfile_drop_buffers (io.read */
				/* allocates them again) */
	bool no_verify;		/* skip per-block CRC checks */
};

/*
 * Probe the 512-byte header at offset 0 of io: 1 = ZFile with a good digest
 * (when the DIGEST flag is set), 0 = not a ZFile, -EFSBADCRC = a ZFile
 * header whose digest is wrong.
 */
int obd_zfile_probe(struct obd_io *io, struct obd_err *err);

/* Decode and validate a header/trailer block (512 bytes); is_header selects
 * which flag rules apply. Pure: no I/O. */
int obd_zfile_decode_ht(const void *blk, bool is_header, u64 file_size,
			const char *name, struct obd_zfile_info *zi,
			struct obd_err *err);

/*
 * Open: header, trailer (unless overwritten), jump table + index CRC, and
 * check that every block lies inside [data_start, index_offset). Allocates
 * the table and scratch buffers. On success zf->io reads the uncompressed
 * stream (size original_size) through codec; io.name is src->name.
 */
int obd_zfile_open(struct obd_zfile *zf, struct obd_io *src,
		   struct obd_codec *codec, struct obd_err *err);
void obd_zfile_close(struct obd_zfile *zf);
/*
 * Free the scratch buffers of io.read (up to about 192 KiB) for a user that
 * reads blocks itself (the kernel's data path, with its own buffers); a
 * later io.read allocates them again. Not safe against a concurrent io.read.
 */
void obd_zfile_drop_buffers(struct obd_zfile *zf);

static inline u64 obd_zfile_block_start(const struct obd_zfile *zf, u64 b)
{
	return zf->group_base[b >> OBD_ZF_GROUP_SHIFT] + zf->delta[b];
}

/* Stored byte range of block b in src (CRC included). */
static inline void obd_zfile_block_range(const struct obd_zfile *zf, u64 b,
					 u64 *off, u32 *len)
{
	*off = obd_zfile_block_start(zf, b);
	*len = (u32)(obd_zfile_block_start(zf, b + 1) - *off);
}

/* Uncompressed length of block b (the last one may be short). */
u32 obd_zfile_block_ulen(const struct obd_zfile_info *zi, u64 b);

/*
 * Check the CRC (unless no_verify or the file has none) and decode one
 * stored block into dst (capacity >= block_size). Returns the uncompressed
 * length, which must equal obd_zfile_block_ulen(), or -errno. Used by the
 * kernel data path with its own buffers.
 */
int obd_zfile_decode_block(const struct obd_zfile_info *zi, u64 b,
			   const u8 *stored, u32 slen, void *dst,
			   struct obd_codec *codec, bool no_verify,
			   const char *name, struct obd_err *err);

/* ------------------------------------------------------------------------
 * LSMT (spec 2)
 * ------------------------------------------------------------------------ */

/* In-memory mapping (decoded SegmentMapping), units are sectors. */
struct obd_map {
	u64 offset;	/* LBA */
	u64 moffset;	/* sector inside the layer file (or rw data file) */
	u32 length;	/* 1..16383 in files; merged maps keep the same bound */
	u8 zeroed;	/* reads as zeros, hides lower layers */
	u8 tag;		/* layer in a merged index: 0 = bottom */
	u8 target;	/* warp layer: moffset is a sector of the layer's target */
};

/* Record tags of a warp (TurboOCI meta) layer, after normalisation. */
#define OBD_WARP_TAG_META	0	/* bytes in the meta layer itself */
#define OBD_WARP_TAG_TARGET	1	/* bytes in the target: uncompressed tar sectors */

static inline u64 obd_map_end(const struct obd_map *m)
{
	return m->offset + m->length;
}

static inline u64 obd_map_mend(const struct obd_map *m)
{
	return m->zeroed ? m->moffset : m->moffset + m->length;
}

void obd_map_decode(const struct obd_lsmt_mapping *raw, struct obd_map *m);
void obd_map_encode(const struct obd_map *m, struct obd_lsmt_mapping *raw);
static inline bool obd_map_raw_invalid(const struct obd_lsmt_mapping *raw)
{
	return (le64_to_cpu(raw->w0) & OBD_MAP_OFFSET_MASK) == OBD_MAP_INVALID_OFFSET;
}

enum obd_lsmt_kind {
	OBD_LSMT_COMMITTED,	/* header 0x07, trailer 0x06 */
	OBD_LSMT_SEALED,	/* header 0x03, trailer 0x06 */
	OBD_LSMT_RW_DATA,	/* header 0x03, appended data, separate index */
	OBD_LSMT_RW_SPARSE,	/* header 0x13 */
	OBD_LSMT_RW_INDEX,	/* header 0x01 */
};

struct obd_lsmt_info {
	enum obd_lsmt_kind kind;
	u32 header_flags;
	u32 trailer_flags;	/* 0 for RW files */
	u64 index_offset;	/* bytes (trailer) */
	u64 index_size;		/* records incl. padding (trailer) */
	u64 virtual_size;	/* bytes */
	u8 uuid[OBD_UUID_STR_LEN];	/* NUL-terminated copies */
	u8 parent_uuid[OBD_UUID_STR_LEN];
	u8 user_tag[OBD_LSMT_TAG_LEN + 1];
};

/* Decode/validate a header or trailer block (first 390 bytes are used). */
int obd_lsmt_decode_ht(const void *blk, bool is_header, const char *name,
		       u32 *flags, u64 *index_offset, u64 *index_size,
		       u64 *virtual_size, struct obd_err *err);

/*
 * Open a read-only LSMT stream (committed or sealed): header, trailer,
 * index range and size limits, then load the index: padding records
 * dropped, tags forced to 0, order and moffset ranges verified (spec 2.5,
 * 2.7). *maps is allocated with obd_zalloc; *nmaps may be 0.
 */
int obd_lsmt_open_ro(struct obd_io *io, struct obd_lsmt_info *li,
		     struct obd_map **maps, u64 *nmaps, struct obd_err *err);

/*
 * Open a warp LSMT (a TurboOCI meta layer, spec turbo-oci 2.3): as
 * obd_lsmt_open_ro, but the records' tags are kept, normalised by the
 * smallest and refused unless 0 or 1; tag-1 records get target = 1 and
 * must lie inside the target's target_size bytes (whole sectors), tag-0
 * records inside this file as usual. tag is 0 in every output map.
 */
int obd_lsmt_open_warp(struct obd_io *io, struct obd_lsmt_info *li, struct obd_map **maps,
		       u64 *nmaps, u64 target_size, struct obd_err *err);

/* Read only the header of any LSMT file (any kind); no index. */
int obd_lsmt_read_header(struct obd_io *io, struct obd_lsmt_info *li,
			 struct obd_err *err);

/* ------------------------------------------------------------------------
 * Layers: tar -> zfile -> lsmt, detected automatically (spec 4.2)
 * ------------------------------------------------------------------------ */
enum obd_layer_wrap {
	OBD_WRAP_TAR = 1 << 0,
	OBD_WRAP_ZFILE = 1 << 1,
};

struct obd_layer {
	struct obd_io *raw;		/* the file as given */
	unsigned int wrap;		/* OBD_WRAP_* found */
	struct obd_tar_info tar;
	struct obd_window window;	/* tar payload (or the whole file) */
	struct obd_zfile zf;		/* valid if wrap & OBD_WRAP_ZFILE */
	struct obd_io *lsmt_io;		/* the uncompressed LSMT stream */
	struct obd_lsmt_info info;
	struct obd_map *maps;		/* this layer's index, tags 0 */
	u64 nmaps;
	bool warp;			/* a TurboOCI meta layer: maps may have target set */
	u64 target_size;		/* warp: bytes of its target */
};

/* Open a read-only layer; codec may be NULL only for unwrapped layers. */
int obd_layer_open(struct obd_layer *l, struct obd_io *raw,
		   struct obd_codec *codec, struct obd_err *err);
/* Open a warp layer (TurboOCI meta) whose target holds target_size bytes. */
int obd_layer_open_warp(struct obd_layer *l, struct obd_io *raw, struct obd_codec *codec,
			u64 target_size, struct obd_err *err);
void obd_layer_close(struct obd_layer *l);

/* ------------------------------------------------------------------------
 * Merged index and lookup (spec 2.8, 2.9)
 * ------------------------------------------------------------------------ */

/*
 * A sorted, non-overlapping array of maps (tag = layer, 0 = bottom) plus a
 * static search tree over the maps' end offsets: 16 keys of 32 bits (or 8
 * of 64 bits when an LBA needs them) per 64-byte node, searched without
 * branches per node. See lib/core/lookup.c for the layout.
 */
#define OBD_INDEX_MAX_LEVELS	12

struct obd_index {
	struct obd_map *maps;
	u64 n;
	/* private to lib/core/lookup.c */
	void *tree;		/* 64-byte aligned node array, inside tree_mem */
	void *tree_mem;		/* obd_zalloc'ed */
	u64 tree_bytes;
	u32 levels;		/* 0 when n == 0; level 0 = leaves */
	u32 key_bits;		/* 32 or 64 */
	u64 level_off[OBD_INDEX_MAX_LEVELS];	/* first node of each level */
	u64 level_nodes[OBD_INDEX_MAX_LEVELS];
};

/*
 * Check a map array: every offset and length in range, sorted and
 * non-overlapping. what (e.g. "merge: layer 3") begins the message.
 */
int obd_maps_check(const struct obd_map *maps, u64 n, const char *what,
		   struct obd_err *err);

/*
 * Merge layer indexes, layers[0] = bottom ... layers[nlayers-1] = top:
 * the top-most layer wins, zeroed maps hide lower data, holes fall through.
 * Output maps carry tag = layer position and their source map's target
 * flag. Builds the search tree.
 */
int obd_index_merge(const struct obd_map *const *layers, const u64 *counts,
		    unsigned int nlayers, struct obd_index *out,
		    struct obd_err *err);

/*
 * Build an index over an already sorted, non-overlapping array (taken on
 * success; on error it stays the caller's and idx is zeroed). n may be 0.
 */
int obd_index_build(struct obd_index *idx, struct obd_map *maps, u64 n,
		    struct obd_err *err);
void obd_index_free(struct obd_index *idx);

/* Position of the first map with end > lba (n if none). */
u64 obd_index_find(const struct obd_index *idx, u64 lba);

/* Reference: plain binary search, same contract (tests and benchmark). */
u64 obd_index_find_bsearch(const struct obd_index *idx, u64 lba);

/*
 * Walk [lba, lba + nsect) in order as pieces: a map piece (m != NULL,
 * moff = sector in layer m->tag's stream, or in its target when
 * m->target, for the first sector of the piece; m->zeroed pieces read as
 * zeros) or a hole (m == NULL). fn returns
 * 0 to continue or -errno to stop.
 */
typedef int (*obd_piece_fn)(void *ctx, u64 lba, u64 nsect,
			    const struct obd_map *m, u64 moff);
int obd_index_walk(const struct obd_index *idx, u64 lba, u64 nsect,
		   obd_piece_fn fn, void *ctx);

/* Virtual size of a stack: the top-most non-zero virtual_size. */
u64 obd_stack_vsize(const struct obd_layer *const *layers, unsigned int n);

/*
 * A stack's virtual size must be a non-zero multiple of 512 (the device has
 * 512-byte sectors): the kernel and the tools refuse the same stacks.
 */
int obd_stack_vsize_check(u64 vsize, struct obd_err *err);

/* ------------------------------------------------------------------------
 * Cache entry metadata (obd_format.h): <cache file>.meta
 * ------------------------------------------------------------------------ */
#define OBD_DIGEST_STR_LEN	71	/* "sha256:" + 64 lower-case hex digits */

struct obd_cache_info {		/* a decoded, validated header */
	u64 blob_size;
	u32 flags;		/* OBD_CACHE_F_* */
	u8 digest[OBD_CACHE_DIGEST_LEN];
	u64 bitmap_off;		/* bytes into the .meta file */
	u64 bitmap_bytes;
	struct obd_cache_dl {		/* download policy, OBD_CACHE_DL_* in flags */
		u32 flags, delay, delay_extra, max_mbps, try_cnt, block_size;
	} dl;
	char url[OBD_CACHE_URL_MAX];
};

/* Bytes of the presence bitmap of a blob: whole 8-byte words. */
u64 obd_cache_bitmap_bytes(u64 blob_size);
/* blk: the first OBD_CACHE_HDR_SPACE bytes of the .meta file. */
int obd_cache_hdr_decode(const void *blk, const char *name, struct obd_cache_info *ci,
			 struct obd_err *err);
/* Fill blk (OBD_CACHE_HDR_SPACE bytes) from ci; -EINVAL for a bad ci. */
int obd_cache_hdr_encode(const struct obd_cache_info *ci, void *blk, struct obd_err *err);
/* "sha256:<64 lower-case hex>" <-> raw; parse returns 0 or -EINVAL. */
int obd_digest_parse(const char *s, size_t len, u8 digest[OBD_CACHE_DIGEST_LEN]);
void obd_digest_format(const u8 digest[OBD_CACHE_DIGEST_LEN], char out[OBD_DIGEST_STR_LEN + 1]);

#endif /* OBD_H */
