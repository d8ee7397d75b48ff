/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Streaming ZFile writer (spec 3.8), userspace only. Output is byte-for-byte
 * what the reference writer (overlaybd-commit -z / overlaybd-zfile) produces
 * for the same input: header 0x13, blocks (raw LZ4 block from
 * LZ4_compress_default, or a zstd level-3 frame) each followed by its
 * CRC32C (seed 100007) when verify is on, the u32 jump table, trailer 0x16,
 * and optionally the header rewritten with the index info (flags 0x1B).
 *
 * The output goes to fd with pwrite at base_offset + position, so a tar
 * prefix (lib/user/tar_write.h) can be left in front of it. fd must therefore be
 * seekable and not O_APPEND; the file position is not used.
 */
#ifndef OBD_ZFILE_WRITE_H
#define OBD_ZFILE_WRITE_H

#include "obd.h"

/* Called after each flushed chunk: input bytes consumed so far, total (as set). */
typedef void (*obd_progress_fn)(void *ctx, u64 done, u64 total);

struct obd_zfile_writer {
	int fd;
	u64 base;		/* where the ZFile starts in fd */
	u64 pos;		/* bytes of ZFile emitted (flushed + buffered) */
	u8 algo;
	u32 block_size;
	bool verify;
	bool overwrite_header;
	int error;		/* sticky -errno */

	u8 *in;			/* partial input block */
	u32 in_len;
	u8 *out;		/* output buffer, flushed with pwrite */
	size_t out_len, out_cap;
	size_t cbound;		/* compressor worst case for one block */

	u32 *table;		/* stored size per block */
	u64 nblocks, table_cap;
	u64 original_size;

	void *cctx;		/* ZSTD_CCtx */

	obd_progress_fn progress;
	void *progress_ctx;
	u64 progress_total;
};

/*
 * algo: OBD_ZFILE_ALGO_LZ4 or _ZSTD; block_size: 4..64 KiB power of two.
 * Writes the initial header. Returns 0 or -errno (err filled).
 */
int obd_zfile_writer_init(struct obd_zfile_writer *w, int fd, u64 base_offset,
			  u8 algo, u32 block_size, bool verify,
			  bool overwrite_header, struct obd_err *err);

void obd_zfile_writer_set_progress(struct obd_zfile_writer *w, obd_progress_fn fn,
				   void *ctx, u64 total);

/* Append uncompressed bytes. Returns 0 or -errno. */
int obd_zfile_writer_write(struct obd_zfile_writer *w, const void *buf, size_t len,
			   struct obd_err *err);

/*
 * Flush the last block, write table and trailer (and the overwritten
 * header). Returns the ZFile length in bytes (excluding base_offset) or
 * -errno. Frees the writer's memory either way.
 */
s64 obd_zfile_writer_finish(struct obd_zfile_writer *w, struct obd_err *err);

/* Free everything without finishing (error paths). */
void obd_zfile_writer_abort(struct obd_zfile_writer *w);

/*
 * Compress all of in_fd (read sequentially from its current position to
 * EOF) into out_fd at out_base. progress may be NULL; its total is the
 * input size from fstat (0 if unknown). Returns the ZFile length or -errno.
 */
s64 obd_zfile_compress_fd(int in_fd, int out_fd, u64 out_base, u8 algo,
			  u32 block_size, bool verify, bool overwrite_header,
			  obd_progress_fn progress, void *progress_ctx,
			  struct obd_err *err);

#endif /* OBD_ZFILE_WRITE_H */
