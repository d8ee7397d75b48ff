/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * The gzip random-access index of TurboOCI layers (`gzip.meta`, magic
 * "ddgzidx"; ../shared/spec/turbo-oci.md section 1), userspace only (zlib):
 * the builder writes what the reference's build_index writes for the same
 * gzip blob (one access point about every span bytes of output, at the last
 * deflate block boundary at or before k * span, each with the 32 KiB of
 * output before it), the loader takes nothing on trust, and extract decodes
 * any range of the uncompressed stream from the nearest access point.
 *
 * Only single-member gzip streams are indexed: a blob holding more (a
 * second member, or other bytes after the first) is refused, where the
 * reference indexes the first member and reads zeros past it.
 */
#ifndef OBD_GZINDEX_H
#define OBD_GZINDEX_H

#include "obd.h"

#define OBD_GZIDX_MAGIC		"ddgzidx"
#define OBD_GZIDX_HDR_SIZE	333u	/* packed header, windows follow */
#define OBD_GZIDX_CRC_LEN	329u	/* header bytes under the CRC */
#define OBD_GZIDX_ENTRY_SIZE	29u
#define OBD_GZIDX_WINSIZE	32768u
#define OBD_GZIDX_SPAN		1048576u	/* the reference's span */
#define OBD_GZIDX_SPAN_MIN	65536u
#define OBD_GZIDX_ALGO_NONE	0	/* windows and table stored raw */
#define OBD_GZIDX_ALGO_ZLIB	1	/* each window, and the table, one zlib stream */
#define OBD_GZIDX_LEVEL		6

/* One access point: decoding may resume at compressed byte en_pos (less
 * `bits` bits of the byte before) with output offset de_pos. */
struct obd_gzidx_entry {
	u64 de_pos;
	u64 en_pos;
	u64 win_pos;		/* the window's offset in the index file */
	u32 win_len;		/* its stored length */
	u8 bits;
};

struct obd_gzindex {
	struct obd_io *io;		/* the index file */
	u64 gzip_size;			/* the compressed blob's size */
	u64 usize;			/* uncompressed bytes */
	u32 span;
	u8 algo;
	u64 n;
	struct obd_gzidx_entry *e;	/* n, en_pos increasing, de_pos not decreasing, e[0].de_pos = 0 */
};

/*
 * Load and check the index in io for a compressed blob of gzip_size bytes
 * (header fields, CRC, table, every entry). 0 or -errno (err names io and
 * the field); gi owns e afterwards (obd_gzindex_free). io must outlive gi.
 */
int obd_gzindex_load(struct obd_io *io, u64 gzip_size, struct obd_gzindex *gi,
		     struct obd_err *err);
void obd_gzindex_free(struct obd_gzindex *gi);

/* The entry to decode offset off from: the last with de_pos <= off. */
u64 obd_gzindex_seek(const struct obd_gzindex *gi, u64 off);

/*
 * Decode [off, off + len) of the uncompressed stream, reading the
 * compressed blob through gz, into buf. Returns the bytes produced (less
 * than len only where the stream ends: off + len past usize) or -errno:
 * -EFSCORRUPTED for deflate data that does not decode (err says where).
 */
ssize_t obd_gzindex_extract(const struct obd_gzindex *gi, struct obd_io *gz, void *buf,
			    size_t len, u64 off, struct obd_err *err);

/*
 * The gzip_file_size of the index in io, from a header whose magic and CRC
 * hold (nothing else checked: obd_gzindex_load does that). For a caller
 * that must know the compressed size before it can load the index (the
 * daemon making the compressed blob's cache entry). 0 or -errno.
 */
int obd_gzindex_gzip_size(struct obd_io *io, u64 *gzip_size, struct obd_err *err);

/*
 * Decode from entry first to entry last (last == gi->n: to the end of the
 * stream) into out, out_len = (last's de_pos or usize) - first's de_pos
 * bytes, checking the index against what the decoder does: at every
 * entry j in (first, last] the decoder must stop at a block boundary at
 * exactly j's de_pos, en_pos and bits, and the 32 KiB of output before it
 * must equal j's window; at the end of the stream, the stream must end
 * there with an ISIZE of usize and nothing after the 8-byte trailer.
 * 0, or -EFSCORRUPTED / -errno with err saying which entry or offset. The
 * index is only read (several threads may decode with one gi at once).
 */
int obd_gzindex_decode_checked(const struct obd_gzindex *gi, struct obd_io *gz, u64 first,
			       u64 last, u8 *out, size_t out_len, struct obd_err *err);

/*
 * Inflate the whole gzip blob in gz (one member, zlib checking its CRC32
 * and ISIZE), calling fn for each piece of output in order (off = its
 * offset in the stream); fn returning non-zero stops with that value. The
 * stream must end at gz->size and produce exactly usize bytes. 0 or
 * -errno (-EFSCORRUPTED for a bad stream, err saying why).
 */
typedef int (*obd_gzidx_out_fn)(void *ctx, u64 off, const u8 *buf, size_t len);
int obd_gzindex_inflate_all(struct obd_io *gz, u64 usize, obd_gzidx_out_fn fn, void *ctx,
			    struct obd_err *err);

struct obd_gzidx_build_stats {
	u64 gzip_size, usize, entries, index_size;
};

/*
 * Build the index of the gzip blob in gz into fd (from offset 0; fd is
 * truncated to the index's size). span >= OBD_GZIDX_SPAN_MIN, algo
 * OBD_GZIDX_ALGO_*. Reads the whole blob: the gzip trailer (CRC32, ISIZE)
 * is checked, and a blob that is not exactly one gzip member is refused
 * (-EOPNOTSUPP). 0 or -errno.
 */
int obd_gzindex_build(struct obd_io *gz, int fd, u32 span, u8 algo,
		      struct obd_gzidx_build_stats *st, struct obd_err *err);

#endif
