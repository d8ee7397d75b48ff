/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * LSMT writers (userspace only): writable layers (append-mode pair or
 * sparse), sealing in place, and commit (compaction) into a sequential
 * sink. Output is byte-compatible with the reference tools (spec 2.6).
 */
#ifndef OBD_LSMT_WRITE_H
#define OBD_LSMT_WRITE_H

#include "obd.h"

#define OBD_RW_MAX_IO_SIZE	(4u << 20)	/* writes are split here (MAX_IO_SIZE) */

struct obd_rw_layer {
	int data_fd;
	int index_fd;		/* -1 for a sparse layer */
	bool sparse;
	u64 vsize;		/* bytes, from the data header */
	u64 data_end;		/* bytes: append position of the data file */
	u64 index_end;		/* bytes: append position of the index file */
	u64 nrecs;		/* records in the index file, padding not counted */
	u8 uuid[OBD_UUID_STR_LEN];
	u8 parent_uuid[OBD_UUID_STR_LEN];
	/* append mode: the log so far (replayed base + new records), file order */
	struct obd_map *log;
	u64 nlog, caplog;
	char *name;		/* data path, for messages */
};

/*
 * Create a new RW layer (O_EXCL). index_path is ignored (may be NULL) when
 * sparse. parent_uuid may be NULL or "" (null UUID). vsize in bytes, a
 * multiple of 512. Leaves the layer open in l.
 */
int obd_rw_create(struct obd_rw_layer *l, const char *data_path, const char *index_path,
		  u64 vsize, const char *parent_uuid, bool sparse, struct obd_err *err);

/* Open an existing RW layer (either kind, from the data header). */
int obd_rw_open(struct obd_rw_layer *l, const char *data_path, const char *index_path,
		struct obd_err *err);

/*
 * A layer created with virtual size 0 ("from the layers below", as the
 * reference's overlaybd-create DATA INDEX 0 and stack_files): persist vsize
 * in its header(s) (and a sparse data file's length), durably. Only a layer
 * whose size is still 0 takes one: -EINVAL otherwise.
 */
int obd_rw_set_vsize(struct obd_rw_layer *l, u64 vsize, struct obd_err *err);

/* 512-aligned write / discard at a virtual byte offset. */
int obd_rw_write(struct obd_rw_layer *l, const void *buf, u64 len, u64 off,
		 struct obd_err *err);
int obd_rw_discard(struct obd_rw_layer *l, u64 off, u64 len, struct obd_err *err);

/* The current index: sorted, non-overlapping, tags 0 (free with obd_free). */
int obd_rw_maps(struct obd_rw_layer *l, struct obd_map **maps, u64 *n, struct obd_err *err);

/* fsync both files and close. Always releases l. */
int obd_rw_close(struct obd_rw_layer *l, struct obd_err *err);

/*
 * Seal in place (spec 2.6c): append the sorted index (rounded up to 512 B,
 * zero filled) and a trailer (flags 0x06, index_size = real count) to the
 * data file, fsync, close. Append-mode layers only.
 */
int obd_rw_seal(struct obd_rw_layer *l, struct obd_err *err);

/* ------------------------------------------------------------------------
 * Commit (compaction, spec 2.6d)
 * ------------------------------------------------------------------------ */

/* Read len bytes at byte offset off of the source selected by tag. 0 or -errno. */
typedef int (*obd_commit_read_fn)(void *ctx, u8 tag, void *buf, size_t len, u64 off);
/* Consume the next len bytes of output (strictly sequential). 0 or -errno. */
typedef int (*obd_commit_sink_fn)(void *ctx, const void *buf, size_t len);

struct obd_commit_opts {
	u64 vsize;			/* bytes */
	const char *uuid;		/* NULL/"": null UUID */
	const char *parent_uuid;	/* NULL/"": null UUID */
	const void *user_tag;		/* commit message, <= 256 bytes */
	size_t user_tag_len;
	bool zero_detect;		/* warp commit: all-zero sectors become zeroed records */
};

/*
 * Write a committed LSMT file from a sorted, non-overlapping map list
 * (tags select the source for rd; all tags are 0 on disk). Data is copied
 * in 32 KiB pieces, records are compressed like compress_raw_index and the
 * index is padded to 256 records. *out_size (may be NULL) gets the number
 * of bytes written.
 */
int obd_lsmt_commit(const struct obd_map *maps, u64 n, const struct obd_commit_opts *o,
		    obd_commit_read_fn rd, void *rctx, obd_commit_sink_fn sink, void *sctx,
		    u64 *out_size, struct obd_err *err);

/*
 * The committed TurboOCI "warp" form (turbo-oci.md 2.3, the reference's
 * LSMTWarpFile::commit): header 0x07, tag-0 data copied from offset 4096
 * (read through rd with tag 0 at moffset, in 32 KiB pieces), tag-1 records
 * (moffset = a sector of the target, the original layer's uncompressed
 * tar) passed through, zeroed maps kept (tag 0, moffset = the data
 * position), records compressed like compress_raw_index (only equal tags,
 * contiguous moffsets merge), the index NOT padded and the tags kept,
 * trailer 0x06 with index_size = the record count. maps: sorted,
 * non-overlapping, tag 0 or 1 (or tag 0 with target set, as
 * obd_lsmt_open_warp gives them), length 1..16383. With o->zero_detect every
 * all-zero 512 B sector of tag-0 data becomes a zeroed record (the
 * reference's pcopy has this switched off: is_zero_block() returns 1).
 * The warp commit writes no user tag (as the reference: -m is ignored).
 */
int obd_lsmt_commit_warp(const struct obd_map *maps, u64 n, const struct obd_commit_opts *o,
			 obd_commit_read_fn rd, void *rctx, obd_commit_sink_fn sink, void *sctx,
			 u64 *out_size, struct obd_err *err);

/* Commit an open RW layer; vsize and parent_uuid default to the layer's. */
int obd_rw_commit(struct obd_rw_layer *l, const struct obd_commit_opts *o,
		  obd_commit_sink_fn sink, void *sctx, u64 *out_size, struct obd_err *err);

/* A sink writing to the fd at *(int *)ctx, sequentially. */
int obd_fd_sink(void *ctx, const void *buf, size_t len);

/* A random v4 UUID, uppercase, NUL-terminated. */
int obd_uuid_generate(u8 out[OBD_UUID_STR_LEN]);

#endif /* OBD_LSMT_WRITE_H */
