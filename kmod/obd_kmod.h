/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-overlaybd internals shared by the target, the layer cache and the
 * kernel environment of the format core.
 */
#ifndef OBD_KMOD_H
#define OBD_KMOD_H

#include <linux/types.h>
#include <linux/fs.h>
#include <linux/completion.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/bvec.h>

#include "obd.h"

/*----------------------------------------------------------------
 * Environment (obd_env.c)
 *--------------------------------------------------------------*/

struct obd_blob;
struct bio;
struct obd_fetch_opts;

/*
 * struct obd_io over a struct file, read through the page cache. For a
 * remote layer (blob set) absent ranges are fetched first, waiting as
 * fetch says (set by whoever parses the layer).
 */
struct obd_kfile_io {
	struct obd_io io;
	struct file *file;
	struct obd_blob *blob;
	const struct obd_fetch_opts *fetch;
};

void obd_kfile_io_init(struct obd_kfile_io *k, struct file *file, const char *name);

/*
 * Compressed bytes read per call: several stored blocks at once. A stored
 * block must fit (checked when a layer is opened).
 */
#define OBD_CBUF_BYTES		(128u << 10)
/* Reads into the compressed buffer are aligned to this, for O_DIRECT. */
#define OBD_DIO_ALIGN		4096u
#define OBD_CBUF_PAGES		((OBD_CBUF_BYTES + 2 * OBD_DIO_ALIGN) >> PAGE_SHIFT)

/*
 * A decode context: compressed buffer, decoded block and a zstd context.
 * A shared pool holds one per possible CPU (capped), each with its own
 * mutex: a worker takes the context of the CPU it runs on, or any idle one,
 * or its device's reserve (see obd_kctx_acquire), so there is no global
 * lock on the read path and nothing is allocated per bio.
 */
struct obd_kctx {
	struct mutex lock;		/* held by the worker using this context */
	struct obd_codec codec;
	void *zstd_ws;
	void *zstd_dctx;
	u8 *cbuf;			/* vmalloc'ed, OBD_CBUF_PAGES pages */
	struct bio_vec *cvec;		/* one bvec per cbuf page */
	u8 *dbuf;			/* OBD_ZFILE_MAX_BS bytes */
};

int obd_kctx_pool_get(void);		/* ctr: make sure the pool exists */
void obd_kctx_pool_put(void);		/* dtr */
struct obd_kctx *obd_kctx_alloc(bool buffers);
void obd_kctx_free(struct obd_kctx *c);
struct obd_kctx *obd_kctx_acquire(struct obd_kctx *reserve);
struct obd_kctx *obd_kctx_tryacquire(struct obd_kctx *reserve);
void obd_kctx_release(struct obd_kctx *c);

/* A bvec iterator over the bio's own pages (no bounce buffer); dir ITER_DEST or ITER_SOURCE. */
void obd_bio_iov(struct bio *bio, unsigned int dir, struct iov_iter *it);

/*
 * Whether file can be read in map(), in the submitter's context: it honours
 * IOCB_NOWAIT (FMODE_NOWAIT) and was opened O_NOATIME (file_accessed()
 * must not dirty the inode). Not a block device: its buffered read takes
 * the bdev inode's i_rwsem (stable kernels since the set_blocksize race
 * fix), which a reader of our own device through the page cache already
 * holds for our bdev: one lock class, nested (lockdep), and a sleep in map().
 */
static inline bool obd_file_nowait(struct file *file)
{
	return (file->f_mode & FMODE_NOWAIT) && (file->f_flags & O_NOATIME) &&
	       !S_ISBLK(file_inode(file)->i_mode);
}

ssize_t obd_read_nowait(struct file *file, struct iov_iter *it, loff_t *pos);
/* obd_read_nowait, or a plain vfs_iter_read that may wait. */
ssize_t obd_read_iter(struct file *file, struct iov_iter *it, loff_t *pos, bool nowait);

/*
 * Read len bytes at pos of file into c->cbuf through page-backed bvecs, so
 * the same call works on O_DIRECT files (6.1 rejects kvec direct I/O).
 * Returns a pointer to the bytes inside cbuf or an ERR_PTR; *got = len.
 * nowait: see obd_read_nowait; the cached head of the range is returned
 * (*got < len, a multiple of the page size), -EAGAIN if there is none.
 */
u8 *obd_kctx_read(struct obd_kctx *c, struct file *file, u64 pos, u32 len, bool nowait,
		  u32 *got);

/* The codec used while parsing layers (decodes under its own lock). */
extern struct obd_codec *obd_parse_codec;
int obd_env_init(void);
void obd_env_exit(void);
/* The most one parsed-index object (obd_zalloc) may take. */
#define OBD_ALLOC_MAX		(512UL << 20)

/* Bytes all parsed indexes may take together (index_budget_mb, else RAM / 4). */
unsigned long obd_index_budget(void);

/*----------------------------------------------------------------
 * Shared layers (obd_shared.c)
 *--------------------------------------------------------------*/

/*
 * A parsed layer file, shared by every device that stacks it: one open
 * file (so one page cache), one in-memory index.
 */
struct obd_shared_layer {
	struct list_head list;		/* on obd_layers, under obd_layers_mutex */
	unsigned int refs;		/* under obd_layers_mutex */
	loff_t size;			/* sanity: a rewritten file is not shared */
	struct timespec64 mtime;
	struct file *file;		/* key: its f_mapping->host (pinned) */
	struct obd_kfile_io kio;
	struct obd_layer layer;
	char *name;			/* path of the first opener, for messages */
	struct obd_blob *blob;		/* remote layer: the key instead of the inode */
	bool warp;			/* a TurboOCI meta layer (obd_turbo.h); key */
	u64 target_size;		/* warp: its target's bytes; key */
	/*
	 * Parsed without obd_layers_mutex: the entry is listed first, later
	 * openers take a ref and wait (killably) for parsed; parse_err is set
	 * before it completes, and a failed entry is off the list by then.
	 */
	struct completion parsed;
	int parse_err;
};

struct obd_shared_layer *obd_shared_get(const char *path, bool warp, u64 target_size,
					char **error, struct obd_err *err);
/* Takes over the caller's blob ref, whatever the outcome. */
struct obd_shared_layer *obd_shared_get_remote(struct obd_blob *b,
					       const struct obd_fetch_opts *fetch,
					       char **error, struct obd_err *err);
void obd_shared_put(struct obd_shared_layer *sl);
void obd_shared_exit(void);

#endif /* OBD_KMOD_H */
