// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-overlaybd: a device-mapper target serving an overlaybd layer stack
 * (LSMT, ZFile(LSMT), tar(...) layer files) from the page cache of the
 * layer files, read-only or with a writable upper layer (obd_upper.c).
 * See Documentation: docs/dm-overlaybd.rst.
 *
 * Table: <#layers> <layer>... [<#opt args> <opt>...], layers bottom to top;
 * a layer is a path or remote:<size>:<digest>:<cache file> (obd_remote.h);
 * the option "upper <data> <index|->" adds the writable layer.
 * Construction is all-or-nothing; obd_dtr() copes with a half-built
 * target (the dm-verity shape), so obd_ctr() has a single "bad" label.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/err.h>
#include <linux/bio.h>
#include <linux/uio.h>
#include <linux/highmem.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/percpu.h>
#include <linux/workqueue.h>
#include <linux/device-mapper.h>
#include <linux/sched/mm.h>
#include <linux/blkdev.h>
#include <linux/ctype.h>

#include "compat.h"
#include "obd_kmod.h"
#include "obd_remote.h"
#include "obd_invalidate.h"
#include "obd_trace.h"
#include "obd_upper.h"
#include "obd_upper_registry.h"

#define DM_MSG_PREFIX "overlaybd"

/* A layer as this device uses it. */
struct obd_dev_layer {
	struct obd_shared_layer *sl;	/* parsed once, shared between devices */
	struct file *dfile;		/* O_DIRECT handle (direct_io) or NULL */
	char *path;			/* as given in the table */
	bool nowait;			/* page cache hits can be read inline */
	struct obd_blob *blob;		/* remote layer: sl->blob, else NULL */
	const struct obd_fetch_opts *fetch;	/* &target->fetch */
	struct obd_blob_user user;	/* remote layer: page cache dropped on INVALIDATE */
	struct inode *claim;		/* obd_lower_claim'ed, or NULL */
	struct dm_dev *dmdev;		/* a block device layer, held through dm */
};

/* A ZFile block of a remote layer failing its CRC is fetched again this often. */
#define OBD_REFETCH_TRIES	2

/*
 * Bytes of ZFile blocks one bio decodes in the submitter's context
 * (obd_read_inline); the worker decodes the rest. Bounds the CPU charged to
 * the submitter and the time map() keeps dm's SRCU read lock (which a table
 * swap waits for): a 64 KiB read of 4 KiB blocks stays inline, a 1 MiB one
 * (or 64 KiB blocks beyond the second) goes on in the worker.
 */
#define OBD_INLINE_ZBYTES	(128 << 10)

struct obd_stats {
	u64 reads;
	u64 inline_reads;
	u64 resumed;
	u64 bytes;
	u64 zblocks;
	u64 crc_errors;
	u64 io_errors;
};

struct obd_target {
	struct dm_target *ti;
	unsigned int nlayers;
	struct obd_dev_layer *layers;	/* [0] = bottom */
	struct obd_index idx;		/* merged, tag = position in layers[] */
	bool idx_built;
	bool pool_held;
	bool direct_io;
	bool no_verify;
	bool nowait;			/* some layer has dl->nowait */
	bool hold_set;			/* table option hold_timeout given */
	unsigned int hold_s;		/* its value, seconds */
	unsigned int nremote;		/* remote layers */
	atomic_t pending;		/* bios parked on a miss */
	struct obd_fetch_opts fetch;	/* how this device's readers wait */
	struct workqueue_struct *wq;
	struct obd_stats __percpu *stats;
	struct obd_kctx *reserve;	/* when every shared context is busy */
	struct obd_trace trace;		/* trace recording (dm messages) */
	struct obd_upper *upper;	/* the writable layer (ushare->up), or NULL: read-only */
	struct obd_upper_share *ushare;	/* shared with the device's other table */
	struct obd_upper_reader reader;	/* how the upper reads this table's device */
	char *upper_data, *upper_index;	/* as given in the table */
};

/* Per-bio data (ti->per_io_data_size). */
struct obd_bio {
	struct work_struct work;
	struct obd_target *t;
	u64 lba;			/* sectors, relative to the target */
	u32 done;			/* sectors already filled (inline, or before a miss) */
	u8 refetches;			/* times refetch_block was fetched again */
	u64 refetch_block;		/* blob offset of the last ZFile block fetched again */
	int woken;			/* the miss it was parked on: 0, -EIO, -EAGAIN */
	struct obd_waiter waiter;	/* parked on a miss (obd_blob_park) */
};

/* A remote range the walk needs and does not wait for (the worker parks on it). */
struct obd_miss {
	struct obd_blob *blob;		/* NULL: none */
	u64 off, len;
	u32 flags;			/* OBD_READ_F_REFETCH */
};

/*
 * State of one bio's walk over the merged index. nowait: the inline attempt
 * in obd_map, which must not sleep; any piece it cannot serve from the page
 * cache ends it with -EAGAIN, and the worker goes on from the first sector
 * not yet filled (filled data is final: the layers are read-only). Errors
 * are only logged and counted by the worker.
 */
struct obd_walk {
	struct obd_target *t;
	struct iov_iter iter;		/* the bio's pages not yet filled */
	struct obd_kctx *kctx;		/* taken at the first ZFile piece */
	bool nowait;
	unsigned int zblocks;		/* decoded, counted when the walk ends */
	u32 zbytes;			/* their block sizes, summed */
	/*
	 * The worker's walk: an absent remote range ends it with -EAGAIN
	 * and the range in miss (the bio parks on it); NULL: wait for it
	 * (the upper's reader, obd_read_device).
	 */
	struct obd_bio *ob;
	struct obd_miss miss;
};

/* The walk needs [off, off + len) of the blob: park (worker) rather than wait. */
static int obd_walk_miss(struct obd_walk *wk, struct obd_blob *b, u64 off, u64 len, u32 flags)
{
	wk->miss.blob = b;
	wk->miss.off = off;
	wk->miss.len = len;
	wk->miss.flags = flags;
	return -EAGAIN;
}

static const char *obd_name(struct obd_target *t)
{
	return dm_table_device_name(t->ti->table);
}

/*----------------------------------------------------------------
 * Read path
 *--------------------------------------------------------------*/

/*
 * Uncompressed data: read from the layer file straight into the bio pages.
 * An O_DIRECT read that the file system refuses for alignment (-EINVAL)
 * is retried through the page cache.
 */
static int obd_read_plain(struct obd_walk *wk, struct obd_dev_layer *dl, struct iov_iter *piece,
			  u64 pos)
{
	struct file *f = dl->dfile ? dl->dfile : dl->sl->file;
	loff_t p = dl->sl->layer.window.off + pos;
	bool nowait = wk->nowait;

	if (dl->blob) {
		size_t n = iov_iter_count(piece);

		if (nowait && !obd_blob_present(dl->blob, p, n))
			return -EAGAIN;
		if (wk->ob && !obd_blob_present(dl->blob, p, n))
			return obd_walk_miss(wk, dl->blob, p, n, 0);
		if (!nowait) {
			int r = obd_blob_fetch(dl->blob, p, n, dl->fetch);

			if (r)
				return r;
		}
	}
	while (iov_iter_count(piece)) {
		ssize_t r = obd_read_iter(f, piece, &p, nowait);

		if (r == -EINVAL && f == dl->dfile) {
			f = dl->sl->file;
			continue;
		}
		if (r < 0)
			return r;
		if (r == 0) {
			/*
			 * The cache file of a remote blob ends before the blob
			 * does: the bytes marked present are gone (the file was
			 * truncated or re-created under the device). EIO, not
			 * zeros that would pass for data.
			 */
			if (dl->blob && p < (loff_t)dl->blob->size) {
				if (!nowait)
					DMERR_LIMIT("layer %s: cache file ends at byte %lld, before the blob's end (%llu): truncated under the device",
						    dl->path, p, dl->blob->size);
				return -EIO;
			}
			/* Past the end of the file: zeros, as in the reference reader. */
			iov_iter_zero(iov_iter_count(piece), piece);
			break;
		}
	}
	return 0;
}

/*
 * The stored bytes [pos, pos + len) into the context's buffer. A worker
 * of a remote layer only gets here with the range present (obd_zfile_need):
 * if it went meanwhile (INVALIDATE), it parks rather than wait holding
 * the context.
 */
static u8 *obd_read_stored(struct obd_walk *wk, struct obd_dev_layer *dl, u64 pos, u32 len,
			   u32 *got)
{
	struct obd_kctx *c = wk->kctx;
	bool nowait = wk->nowait;
	u8 *p;

	if (dl->blob && nowait) {
		/* only the present head: the worker fetches the rest */
		len = (u32)obd_blob_present_prefix(dl->blob, pos, len);
		if (!len)
			return ERR_PTR(-EAGAIN);
	} else if (dl->blob && wk->ob && !obd_blob_present(dl->blob, pos, len)) {
		return ERR_PTR(obd_walk_miss(wk, dl->blob, pos, len, 0));
	} else if (dl->blob) {
		int r = obd_blob_fetch(dl->blob, pos, len, dl->fetch);

		if (r)
			return ERR_PTR(r);
	}
	if (dl->dfile) {
		p = obd_kctx_read(c, dl->dfile, pos, len, false, got);
		if (!IS_ERR(p) || PTR_ERR(p) != -EINVAL)
			return p;
	}
	return obd_kctx_read(c, dl->sl->file, pos, len, nowait, got);
}

/*
 * The bio page a whole block can be decoded into: the piece's current
 * segment has bs bytes left inside one page (4 KiB blocks, page-aligned
 * buffers: the usual case). NULL otherwise.
 */
static struct page *obd_block_page(const struct iov_iter *it, u32 bs, size_t *off)
{
	const struct bio_vec *bv;
	size_t o;

	if (!iov_iter_is_bvec(it) || bs > PAGE_SIZE || iov_iter_count(it) < bs)
		return NULL;
	bv = it->bvec;
	if (it->iov_offset + bs > bv->bv_len)
		return NULL;
	o = bv->bv_offset + it->iov_offset;
	if (offset_in_page(o) + bs > PAGE_SIZE)
		return NULL;
	*off = offset_in_page(o);
	return nth_page(bv->bv_page, o >> PAGE_SHIFT);
}

/*
 * Check and decode block b (stored bytes at sb) and put its part inside
 * [pos, pos + bytes) into the piece: straight into the bio page when the
 * whole block is wanted and fits one, else through the block buffer.
 */
static int obd_zblock_out(struct obd_walk *wk, struct obd_dev_layer *dl, u64 b,
			  const u8 *sb, u32 slen, struct iov_iter *piece, u64 pos, u64 bytes)
{
	struct obd_target *t = wk->t;
	struct obd_zfile *zf = &dl->sl->layer.zf;
	u32 bs = zf->info.block_size;
	u64 bpos = b * bs, lo = max(pos, bpos), hi = min(pos + bytes, bpos + bs);
	struct page *pg = NULL;
	struct obd_err err;
	size_t poff = 0;
	u8 *dst;
	int n;

	/* inline: a bounded amount, the worker goes on from this block */
	if (wk->nowait && wk->zbytes >= OBD_INLINE_ZBYTES)
		return -EAGAIN;
	if (lo == bpos && hi == bpos + bs)
		pg = obd_block_page(piece, bs, &poff);
	dst = pg ? (u8 *)kmap_local_page(pg) + poff : wk->kctx->dbuf;
	n = obd_zfile_decode_block(&zf->info, b, sb, slen, dst, &wk->kctx->codec,
				   t->no_verify, dl->path, &err);
	if (pg) {
		flush_dcache_page(pg);
		kunmap_local(dst);
	}
	if (n < 0) {
		/* the worker counts and reports it */
		if (wk->nowait)
			return -EAGAIN;
		if (n == -EFSBADCRC)
			this_cpu_inc(t->stats->crc_errors);
		/* err.msg names the layer path and the block */
		DMERR_LIMIT("%s: %s", obd_name(t), err.msg);
		return n;
	}
	wk->zblocks++;
	wk->zbytes += bs;
	if (hi - bpos > (u64)n)
		return -EIO;
	if (pg) {
		iov_iter_advance(piece, bs);
		return 0;
	}
	if (copy_to_iter(wk->kctx->dbuf + (lo - bpos), hi - lo, piece) != hi - lo)
		return -EFAULT;
	return 0;
}

/*
 * A block of a remote layer failed its CRC: the fetched bytes are bad (a
 * broken registry or proxy, a torn cache file). Fetch them again, a
 * bounded number of times, then give up with the CRC error.
 */
static int obd_zblock_refetch(struct obd_walk *wk, struct obd_dev_layer *dl, u64 b,
			      struct iov_iter *piece, u64 pos, u64 bytes)
{
	struct obd_zfile *zf = &dl->sl->layer.zf;
	int r = -EFSBADCRC, tries;
	u64 boff;
	u32 slen;

	obd_zfile_block_range(zf, b, &boff, &slen);
	boff += dl->sl->layer.window.off;
	if (wk->ob) {
		/*
		 * the worker: park on the refetch, decode again when it is
		 * answered; a bio's blocks are met in order, so counting the
		 * current one's tries bounds each block's
		 */
		if (wk->ob->refetch_block != boff)
			wk->ob->refetches = 0;
		if (wk->ob->refetches >= OBD_REFETCH_TRIES)
			return r;
		wk->ob->refetch_block = boff;
		wk->ob->refetches++;
		DMWARN_LIMIT("%s: layer %s: block %llu: fetching its bytes %llu+%u again",
			     obd_name(wk->t), dl->path, b, boff, slen);
		return obd_walk_miss(wk, dl->blob, boff, slen, OBD_READ_F_REFETCH);
	}
	for (tries = 0; r == -EFSBADCRC && tries < OBD_REFETCH_TRIES; tries++) {
		u8 *stored;
		u32 got;

		DMWARN_LIMIT("%s: layer %s: block %llu: fetching its bytes %llu+%u again",
			     obd_name(wk->t), dl->path, b, boff, slen);
		/* no decode context held across the network wait */
		obd_kctx_release(wk->kctx);
		r = obd_blob_refetch(dl->blob, boff, slen, dl->fetch);
		wk->kctx = obd_kctx_acquire(wk->t->reserve);
		if (r)
			return r;
		stored = obd_read_stored(wk, dl, boff, slen, &got);
		if (IS_ERR(stored))
			return PTR_ERR(stored);
		r = obd_zblock_out(wk, dl, b, stored, slen, piece, pos, bytes);
	}
	return r;
}

/*
 * The stored bytes of a ZFile piece, [off, off + len) of a remote layer's
 * blob, before a decode context is taken: never wait for the network
 * holding one (a worker parks; the upper's reader drops the context it
 * may hold from an earlier piece while it waits). The inline walk reads
 * what is present.
 */
static int obd_zfile_need(struct obd_walk *wk, struct obd_dev_layer *dl, u64 off, u64 len)
{
	if (!dl->blob || wk->nowait || obd_blob_present(dl->blob, off, len))
		return 0;
	if (wk->ob)
		return obd_walk_miss(wk, dl->blob, off, len, 0);
	if (wk->kctx) {
		obd_kctx_release(wk->kctx);
		wk->kctx = NULL;
	}
	return obd_blob_fetch(dl->blob, off, len, dl->fetch);
}

/*
 * ZFile data: read the stored blocks covering [pos, pos + bytes) of the
 * LSMT stream, several blocks per read, and put each into the bio.
 */
static int obd_read_zfile(struct obd_walk *wk, struct obd_dev_layer *dl,
			  struct iov_iter *piece, u64 pos, u64 bytes)
{
	struct obd_target *t = wk->t;
	struct obd_layer *l = &dl->sl->layer;
	struct obd_zfile *zf = &l->zf;
	u32 bs = zf->info.block_size;
	u64 b = pos / bs, blast = (pos + bytes - 1) / bs;
	int r;

	if (blast >= zf->info.nblocks)
		return -EIO;
	r = obd_zfile_need(wk, dl, l->window.off + obd_zfile_block_start(zf, b),
			   obd_zfile_block_start(zf, blast + 1) - obd_zfile_block_start(zf, b));
	if (r)
		return r;
	if (!wk->kctx) {
		wk->kctx = wk->nowait ? obd_kctx_tryacquire(t->reserve) :
			obd_kctx_acquire(t->reserve);
		if (!wk->kctx)
			return -EAGAIN;
	}

	while (b <= blast) {
		u64 start = obd_zfile_block_start(zf, b), e = b;
		u8 *stored;
		u32 got;

		while (e < blast && obd_zfile_block_start(zf, e + 2) - start <= OBD_CBUF_BYTES)
			e++;
		stored = obd_read_stored(wk, dl, l->window.off + start,
					 (u32)(obd_zfile_block_start(zf, e + 1) - start), &got);
		if (IS_ERR(stored))
			return PTR_ERR(stored);

		for (; b <= e; b++) {
			u64 boff;
			u32 slen;

			obd_zfile_block_range(zf, b, &boff, &slen);
			/* nowait: the rest is not cached; the worker goes on from b */
			if (boff - start + slen > got)
				return -EAGAIN;
			r = obd_zblock_out(wk, dl, b, stored + (boff - start), slen, piece, pos,
					   bytes);
			if (r == -EFSBADCRC && dl->blob && !wk->nowait) {
				r = obd_zblock_refetch(wk, dl, b, piece, pos, bytes);
				if (!r) {
					/* the refetch reused cbuf: read the next blocks afresh */
					b++;
					break;
				}
			}
			if (r)
				return r;
		}
	}
	return 0;
}

static int obd_piece(void *ctx, u64 lba, u64 nsect, const struct obd_map *m, u64 moff)
{
	struct obd_walk *wk = ctx;
	size_t bytes = nsect << SECTOR_SHIFT;
	struct iov_iter piece = wk->iter;
	struct obd_dev_layer *dl;
	int r = 0;

	iov_iter_truncate(&piece, bytes);
	if (!m || m->zeroed) {
		if (iov_iter_zero(bytes, &piece) != bytes)
			r = -EIO;
	} else if (m->tag >= wk->t->nlayers) {
		r = -EIO;
	} else {
		dl = &wk->t->layers[m->tag];
		if (wk->nowait && !dl->nowait)
			return -EAGAIN;
		if (dl->sl->layer.wrap & OBD_WRAP_ZFILE)
			r = obd_read_zfile(wk, dl, &piece, moff << SECTOR_SHIFT, bytes);
		else
			r = obd_read_plain(wk, dl, &piece, moff << SECTOR_SHIFT);
		if (r && (wk->nowait || (r == -EAGAIN && wk->miss.blob))) {
			/* keep what the piece filled: the worker goes on from there */
			iov_iter_advance(&wk->iter, bytes - iov_iter_count(&piece));
			return -EAGAIN;
		}
		if (r && r != -EFSBADCRC && r != -EFSCORRUPTED)
			DMERR_LIMIT("%s: layer %s: read error %d at layer sector %llu",
				    obd_name(wk->t), dl->path, r, moff);
		if (!r)
			obd_trace_read(&wk->t->trace, m->tag, moff << SECTOR_SHIFT, bytes);
	}
	iov_iter_advance(&wk->iter, bytes);
	return r;
}

/* Sectors of the upper layer: its data file, or zeros for a zeroed map. */
static int obd_upper_piece(struct obd_walk *wk, const struct obd_map *m)
{
	size_t bytes = (size_t)m->length << SECTOR_SHIFT;
	struct iov_iter piece = wk->iter;
	loff_t p = (loff_t)m->moffset << SECTOR_SHIFT;

	iov_iter_truncate(&piece, bytes);
	if (m->zeroed) {
		if (iov_iter_zero(bytes, &piece) != bytes)
			return -EIO;
	} else if (wk->nowait && !obd_upper_nowait(wk->t->upper)) {
		/* a file that may sleep despite IOCB_NOWAIT: the worker reads it */
		return -EAGAIN;
	}
	while (iov_iter_count(&piece)) {
		ssize_t r = obd_read_iter(wk->t->upper->data, &piece, &p, wk->nowait);

		if (r < 0) {
			if (wk->nowait) {
				iov_iter_advance(&wk->iter, bytes - iov_iter_count(&piece));
				return -EAGAIN;
			}
			DMERR_LIMIT("%s: upper %s: read error %zd at byte %lld", obd_name(wk->t),
				    wk->t->upper_data, r, p);
			iov_iter_advance(&wk->iter, bytes);
			return (int)r;
		}
		if (r == 0) {
			iov_iter_zero(iov_iter_count(&piece), &piece);
			break;
		}
	}
	iov_iter_advance(&wk->iter, bytes);
	return 0;
}

#define OBD_UPPER_BATCH	16	/* upper maps looked up at once */

/* The upper's maps over the range, the lower stack in the gaps between them. */
static int obd_walk_upper(struct obd_walk *wk, u64 lba, u64 nsect)
{
	struct obd_map maps[OBD_UPPER_BATCH];
	u64 pos = lba, end = lba + nsect;
	int k, i, r;

	while (pos < end) {
		k = obd_upper_lookup(wk->t->upper, pos, end - pos, maps, OBD_UPPER_BATCH,
				     wk->nowait);
		if (k < 0)
			return k;
		for (i = 0; i < k; i++) {
			if (maps[i].offset > pos) {
				r = obd_index_walk(&wk->t->idx, pos, maps[i].offset - pos, obd_piece, wk);
				if (r)
					return r;
			}
			r = obd_upper_piece(wk, &maps[i]);
			if (r)
				return r;
			pos = obd_map_end(&maps[i]);
		}
		if (k < OBD_UPPER_BATCH) {
			if (pos < end)
				return obd_index_walk(&wk->t->idx, pos, end - pos, obd_piece, wk);
			break;
		}
	}
	return 0;
}

/*
 * What the device shows at [lba, lba + nsect) (upper over lowers) into it:
 * a sparse upper fills the rest of a partly written block with it.
 */
static int obd_read_device(void *ctx, u64 lba, u64 nsect, struct iov_iter *it)
{
	struct obd_walk wk = { .t = ctx, .iter = *it };
	int r = obd_walk_upper(&wk, lba, nsect);

	if (wk.kctx)
		obd_kctx_release(wk.kctx);
	return r;
}

/* Walk the part of the bio past ob->done. */
static int obd_walk_bio(struct obd_bio *ob, struct bio *bio, struct obd_walk *wk)
{
	u64 lba = ob->lba + ob->done, n = bio_sectors(bio) - ob->done;
	int r;

	obd_bio_iov(bio, ITER_DEST, &wk->iter);
	iov_iter_advance(&wk->iter, (size_t)ob->done << SECTOR_SHIFT);
	if (ob->t->upper)
		r = obd_walk_upper(wk, lba, n);
	else
		r = obd_index_walk(&ob->t->idx, lba, n, obd_piece, wk);
	if (wk->kctx)
		obd_kctx_release(wk->kctx);
	return r;
}

static void obd_complete(struct obd_target *t, struct bio *bio, struct obd_walk *wk, int r)
{
	this_cpu_inc(t->stats->reads);
	this_cpu_add(t->stats->bytes, bio->bi_iter.bi_size);
	if (wk->zblocks)
		this_cpu_add(t->stats->zblocks, wk->zblocks);
	if (r) {
		this_cpu_inc(t->stats->io_errors);
		bio->bi_status = BLK_STS_IOERR;
	}
	bio_endio(bio);
}

/*
 * Writes, discards, write zeroes and flushes of a device with an upper
 * layer: REQ_PREFLUSH before the data, REQ_FUA after it.
 */
static void obd_write_work(struct obd_target *t, struct bio *bio, u64 lba)
{
	struct obd_upper *up = t->upper;
	int r = 0;

	if (bio->bi_opf & REQ_PREFLUSH) {
		r = obd_upper_flush(up);
		if (!r)
			obd_upper_share_flushed(t->ushare);
	}
	if (!r && bio_sectors(bio)) {
		switch (bio_op(bio)) {
		case REQ_OP_WRITE:
			r = obd_upper_write(up, bio, lba, &t->reader);
			break;
		case REQ_OP_DISCARD:
			r = obd_upper_discard(up, lba, bio_sectors(bio), false, &t->reader);
			break;
		case REQ_OP_WRITE_ZEROES:
			r = obd_upper_discard(up, lba, bio_sectors(bio), true, &t->reader);
			break;
		default:
			r = -EOPNOTSUPP;
			break;
		}
		if (!r && (bio->bi_opf & REQ_FUA))
			r = obd_upper_flush(up);
	}
	if (r)
		bio->bi_status = errno_to_blk_status(r);
	bio_endio(bio);
}

/*
 * In a NOIO scope, reads as well as writes (as loop's workers): reclaim
 * from here (page cache readahead of a layer, miss requests) must not
 * wait for I/O that may be queued on this very device.
 */
/* A bio's miss was answered, failed or timed out, or its device suspends. */
static void obd_bio_wake(struct obd_waiter *w, int status)
{
	struct obd_bio *ob = container_of(w, struct obd_bio, waiter);

	ob->woken = status;
	queue_work(ob->t->wq, &ob->work);
}

/*
 * A read: walk from ob->done. At an absent remote range the bio parks on
 * the request covering it (obd_blob_park) and the worker returns, holding
 * nothing; the answer queues the bio again and the walk goes on from the
 * first sector not yet filled. Requeued (noflush suspend): dm maps it
 * again after resume.
 */
static void obd_read_work(struct obd_bio *ob, struct bio *bio)
{
	struct obd_target *t = ob->t;
	struct obd_walk wk = { .t = t };
	int r = ob->woken;

	ob->woken = 0;
	while (!r) {
		wk = (struct obd_walk){ .t = t, .ob = ob };
		r = obd_walk_bio(ob, bio, &wk);
		if (r != -EAGAIN || !wk.miss.blob)
			break;
		ob->done = (bio->bi_iter.bi_size - (u32)iov_iter_count(&wk.iter)) >> SECTOR_SHIFT;
		if (wk.zblocks)
			this_cpu_add(t->stats->zblocks, wk.zblocks);
		wk.zblocks = 0;
		r = obd_blob_park(wk.miss.blob, wk.miss.off, wk.miss.len, wk.miss.flags,
				  &ob->waiter);
		if (r > 0)
			return;		/* obd_bio_wake queues it again */
		cond_resched();
	}
	if (r == -EAGAIN) {
		bio->bi_status = BLK_STS_DM_REQUEUE;
		bio_endio(bio);
		return;
	}
	obd_complete(t, bio, &wk, r);
}

/*
 * Walk the device's [from, to) into a scratch page, parking the bio at the
 * first absent remote range: 1 parked, 0 all there, else an error.
 */
static int obd_fetch_range(struct obd_bio *ob, struct page *pg, u64 from, u64 to)
{
	struct bio_vec bv;
	int r = 0;

	while (!r && from < to) {
		u64 n = min_t(u64, to - from, PAGE_SIZE >> SECTOR_SHIFT);
		struct obd_walk wk = { .t = ob->t, .ob = ob };

		bvec_set_page(&bv, pg, (unsigned int)(n << SECTOR_SHIFT), 0);
		iov_iter_bvec(&wk.iter, ITER_DEST, &bv, 1, bv.bv_len);
		r = obd_walk_upper(&wk, from, n);
		if (wk.kctx)
			obd_kctx_release(wk.kctx);
		if (r == -EAGAIN && wk.miss.blob) {
			r = obd_blob_park(wk.miss.blob, wk.miss.off, wk.miss.len, wk.miss.flags,
					  &ob->waiter);
			if (r)
				return r;
			continue;	/* there now: walk the page again */
		}
		from += n;
	}
	return r;
}

/*
 * A sparse upper fills the blocks a write (discard, write zeroes) covers
 * only in part with what the device shows around it, under its fill_lock
 * (obd_upper_fill_edges). Their remote lower bytes are fetched here first,
 * the bio parked on the miss as a read is: neither this worker nor
 * fill_lock (which every other write of the device takes) waits for the
 * network. (Should a range be taken back between here and the fill, the
 * fill waits for it as before.) 1 parked, 0 go on, else an error.
 */
static int obd_write_fetch_edges(struct obd_bio *ob, struct bio *bio)
{
	struct obd_target *t = ob->t;
	u64 nsect = bio_sectors(bio), head, tail;
	struct page *pg;
	int r;

	if (!t->nremote || !nsect || !t->upper->sparse)
		return 0;
	obd_upper_edges(t->upper, ob->lba, nsect, &head, &tail);
	if (head == ob->lba && tail == ob->lba + nsect)
		return 0;
	pg = alloc_page(GFP_NOIO);
	if (!pg)
		return -ENOMEM;
	r = obd_fetch_range(ob, pg, head, ob->lba);
	if (!r)
		r = obd_fetch_range(ob, pg, ob->lba + nsect, tail);
	__free_page(pg);
	return r;
}

static void obd_write_bio(struct obd_bio *ob, struct bio *bio)
{
	int r = ob->woken;

	ob->woken = 0;
	if (!r)
		r = obd_write_fetch_edges(ob, bio);
	if (r > 0)
		return;		/* parked: obd_bio_wake queues it again */
	if (r) {
		/* -EAGAIN: a noflush suspend, dm maps it again after resume */
		bio->bi_status = r == -EAGAIN ? BLK_STS_DM_REQUEUE : errno_to_blk_status(r);
		bio_endio(bio);
		return;
	}
	obd_write_work(ob->t, bio, ob->lba);
}

static void obd_work(struct work_struct *w)
{
	struct obd_bio *ob = container_of(w, struct obd_bio, work);
	struct bio *bio = dm_bio_from_per_bio_data(ob, sizeof(*ob));
	unsigned int noio = memalloc_noio_save();

	if (bio_op(bio) != REQ_OP_READ)
		obd_write_bio(ob, bio);
	else
		obd_read_work(ob, bio);
	memalloc_noio_restore(noio);
}

/*
 * Serve the bio in the submitter's context if every piece is a page cache
 * hit (or a hole): no workqueue hop. Runs in map(), under dm's SRCU read
 * lock, so it only trylocks and reads with IOCB_NOWAIT. On false the bio
 * goes to the worker, which starts at ob->done: a bio half in the page
 * cache is not read (or decoded) twice.
 */
static bool obd_read_inline(struct obd_bio *ob, struct bio *bio)
{
	struct obd_walk wk = { .t = ob->t, .nowait = true };

	/*
	 * The walk may sleep (cond_resched() in filemap_read, a mutex_trylock
	 * that is not a spin): it relies on map() being allowed to. The
	 * target does not set DM_TARGET_NOWAIT, so REQ_NOWAIT bios never get
	 * here (6.1's dm maps those under rcu_read_lock()); should they, they
	 * go to the worker.
	 */
	if (!ob->t->nowait || (bio->bi_opf & REQ_NOWAIT))
		return false;
	if (obd_walk_bio(ob, bio, &wk)) {
		/* whole sectors filled in order before the first miss */
		ob->done = (bio->bi_iter.bi_size - (u32)iov_iter_count(&wk.iter)) >> SECTOR_SHIFT;
		if (ob->done)
			this_cpu_inc(ob->t->stats->resumed);
		if (wk.zblocks)
			this_cpu_add(ob->t->stats->zblocks, wk.zblocks);
		return false;
	}
	this_cpu_inc(ob->t->stats->inline_reads);
	obd_complete(ob->t, bio, &wk, 0);
	return true;
}

/*----------------------------------------------------------------
 * Target interface
 *--------------------------------------------------------------*/

/*
 * - without an upper layer: an empty flush completes at once (nothing is
 *   cached on our side), anything but a read fails (read-only);
 * - with one, writes, discards, write zeroes and flushes go to the worker;
 * - a read: owned by the target, served inline if the page cache has it
 *   all, else from the workqueue.
 */
static int obd_map(struct dm_target *ti, struct bio *bio)
{
	struct obd_target *t = ti->private;
	struct obd_bio *ob;
	u64 lba;

	if (!t->upper && (bio->bi_opf & REQ_PREFLUSH) && !bio_sectors(bio)) {
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	if (!t->upper && bio_op(bio) != REQ_OP_READ) {
		bio->bi_status = errno_to_blk_status(-EROFS);
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	lba = bio_sectors(bio) ? dm_target_offset(ti, bio->bi_iter.bi_sector) : 0;
	if (lba + bio_sectors(bio) > ti->len) {
		DMERR_LIMIT("%s: I/O beyond the end: sector %llu + %u > %llu", obd_name(t),
			    lba, bio_sectors(bio), (u64)ti->len);
		return DM_MAPIO_KILL;
	}
	if (bio_op(bio) == REQ_OP_READ && !bio_sectors(bio)) {
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	ob = dm_per_bio_data(bio, sizeof(*ob));
	ob->t = t;
	ob->lba = lba;
	ob->done = 0;
	ob->refetches = 0;
	ob->refetch_block = U64_MAX;
	ob->woken = 0;
	ob->waiter.opts = &t->fetch;
	ob->waiter.wake = obd_bio_wake;
	if (bio_op(bio) == REQ_OP_READ && obd_read_inline(ob, bio))
		return DM_MAPIO_SUBMITTED;
	INIT_WORK(&ob->work, obd_work);
	queue_work(t->wq, &ob->work);
	return DM_MAPIO_SUBMITTED;
}

static void obd_dtr(struct dm_target *ti)
{
	struct obd_target *t = ti->private;
	unsigned int i;

	if (!t)
		return;
	if (t->wq) {
		/* remove does not wait for bios in flight: fail the parked ones */
		obd_fetch_stop(&t->fetch);
		destroy_workqueue(t->wq);
	}
	/* the device's other table may go on with it: only the last one closes it */
	if (t->ushare)
		obd_upper_share_put(t->ushare);
	kfree(t->upper_data);
	kfree(t->upper_index);
	if (t->pool_held)
		obd_kctx_pool_put();
	obd_kctx_free(t->reserve);
	free_percpu(t->stats);
	if (t->idx_built)
		obd_index_free(&t->idx);
	for (i = 0; t->layers && i < t->nlayers; i++) {
		struct obd_dev_layer *dl = &t->layers[i];

		if (dl->dfile)
			fput(dl->dfile);
		obd_blob_user_del(&dl->user);
		if (dl->claim)
			obd_lower_release(dl->claim);
		if (dl->dmdev)
			dm_put_device(ti, dl->dmdev);
		if (!IS_ERR_OR_NULL(dl->sl))
			obd_shared_put(dl->sl);
		kfree(dl->path);
	}
	kfree(t->layers);
	obd_trace_free(&t->trace);
	kfree(t);
	ti->private = NULL;
}

/*
 * A path argument as written in the table, decoded in place: \ooo (three
 * octal digits, not \000) is that byte, as obd_emit_arg() writes white
 * space and backslashes; any other backslash is itself.
 */
static void obd_unescape(char *s)
{
	char *o = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7' && (s[1] != '0' || s[2] != '0' || s[3] != '0')) {
			*o++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
}

static int obd_parse_opt_args(struct obd_target *t, struct dm_arg_set *as, char **error)
{
	static const struct dm_arg opt_arg = {0, 7, "Invalid number of optional arguments"};
	unsigned int n;
	int r;

	if (!as->argc)
		return 0;
	r = dm_read_arg_group(&opt_arg, as, &n, error);
	if (r)
		return r;
	while (n--) {
		const char *a = dm_shift_arg(as);

		if (!strcasecmp(a, "direct_io")) {
			t->direct_io = true;
		} else if (!strcasecmp(a, "no_verify")) {
			t->no_verify = true;
		} else if (!strcasecmp(a, "hold_timeout")) {
			/* seconds readers of remote layers wait for a daemon */
			if (!n || kstrtouint(dm_shift_arg(as), 10, &t->hold_s) ||
			    t->hold_s > 86400) {
				*error = "Invalid hold_timeout (seconds, 0 to 86400)";
				return -EINVAL;
			}
			n--;
			t->hold_set = true;
		} else if (!strcasecmp(a, "upper")) {
			/* upper <data> <index|->: the writable layer */
			if (n < 2 || t->upper_data) {
				*error = "Invalid upper (expected upper <data file> <index file or ->)";
				return -EINVAL;
			}
			t->upper_data = kstrdup(dm_shift_arg(as), GFP_KERNEL);
			t->upper_index = kstrdup(dm_shift_arg(as), GFP_KERNEL);
			n -= 2;
			if (!t->upper_data || !t->upper_index) {
				*error = "Cannot allocate memory";
				return -ENOMEM;
			}
			obd_unescape(t->upper_data);
			obd_unescape(t->upper_index);
		} else {
			*error = "Unrecognized optional argument";
			DMERR("%s: unrecognized optional argument '%s'", obd_name(t), a);
			return -EINVAL;
		}
	}
	if (as->argc) {
		*error = "Too many arguments";
		return -EINVAL;
	}
	return 0;
}

/* An O_DIRECT handle next to the shared buffered one; optional. */
static void obd_open_direct(struct obd_target *t, struct obd_dev_layer *dl)
{
	struct file *f = filp_open(dl->path, O_RDONLY | O_LARGEFILE | O_DIRECT, 0);

	if (IS_ERR(f)) {
		DMWARN("%s: layer %s: O_DIRECT not supported (error %ld), reading through the page cache",
		       obd_name(t), dl->path, PTR_ERR(f));
		return;
	}
	if (f->f_mapping->host != dl->sl->file->f_mapping->host) {
		DMWARN("%s: layer %s: file replaced while opening, reading through the page cache",
		       obd_name(t), dl->path);
		fput(f);
		return;
	}
	dl->dfile = f;
}

static struct obd_shared_layer *obd_open_remote(struct obd_target *t,
						struct obd_dev_layer *dl, char **error,
						struct obd_err *err)
{
	struct obd_remote_spec rs;
	struct obd_blob *b;
	int r;

	r = obd_remote_parse(dl->path, &rs, error);
	if (r) {
		obd_errf(err, r, "bad remote layer argument (expected remote:<size>:sha256:<hex>:<cache file>)");
		return ERR_PTR(r);
	}
	b = obd_blob_get(&rs, error, err);
	if (IS_ERR(b))
		return ERR_CAST(b);
	t->nremote++;
	return obd_shared_get_remote(b, &t->fetch, error, err);
}

/*
 * A local layer's path: absolute (a relative one would resolve against
 * whoever loads the table, and `dmsetup table` would not reload it
 * elsewhere), and not this device's own node (its reads would come back
 * to it through the worker, without end).
 */
static int obd_check_local_path(struct obd_target *t, const char *path, char **error)
{
	dev_t dev;

	if (path[0] != '/') {
		*error = "Layer path must be absolute";
		DMERR("%s: layer %s: the path must be absolute", obd_name(t), path);
		return -EINVAL;
	}
	if (!lookup_bdev(path, &dev) &&
	    dev == disk_devt(dm_disk(dm_table_get_md(t->ti->table)))) {
		*error = "A layer cannot be the device itself";
		DMERR("%s: layer %s is this device's own node", obd_name(t), path);
		return -EINVAL;
	}
	return 0;
}

/*
 * A layer that is a block device is also held through dm (read-only,
 * claimed by dm like any target's device): it shows under the device's
 * slaves/ and its holders/, and iterate_devices reports it. The layer is
 * read through the file opened for it (its page cache); the number comes
 * from that open inode, so both name one device.
 */
static int obd_hold_bdev(struct obd_target *t, struct obd_dev_layer *dl, char **error)
{
	struct inode *inode = file_inode(dl->sl->file);
	char name[24];
	int r;

	if (!S_ISBLK(inode->i_mode))
		return 0;
	if (inode->i_rdev == disk_devt(dm_disk(dm_table_get_md(t->ti->table)))) {
		*error = "A layer cannot be the device itself";
		DMERR("%s: layer %s is this device's own node", obd_name(t), dl->path);
		return -EINVAL;
	}
	snprintf(name, sizeof(name), "%u:%u", MAJOR(inode->i_rdev), MINOR(inode->i_rdev));
	r = dm_get_device(t->ti, name, OBD_MODE_READ, &dl->dmdev);
	if (r) {
		dl->dmdev = NULL;
		*error = "Cannot claim layer block device";
		DMERR("%s: layer %s (%s): dm_get_device failed: error %d", obd_name(t), dl->path,
		      name, r);
	}
	return r;
}

static int obd_open_layers(struct obd_target *t, char **paths, char **error)
{
	unsigned int i;
	struct obd_err err;
	int r;

	for (i = 0; i < t->nlayers; i++) {
		struct obd_dev_layer *dl = &t->layers[i];

		dl->path = kstrdup(paths[i], GFP_KERNEL);
		if (!dl->path) {
			*error = "Cannot allocate memory";
			return -ENOMEM;
		}
		err.msg[0] = 0;
		dl->fetch = &t->fetch;
		if (obd_is_remote(dl->path)) {
			dl->sl = obd_open_remote(t, dl, error, &err);
		} else {
			r = obd_check_local_path(t, dl->path, error);
			if (r)
				return r;
			/* an upper file in use: EBUSY rather than a parse error */
			r = obd_lower_check_path(t->ti, dl->path, error);
			if (r)
				return r;
			dl->sl = obd_shared_get(dl->path, error, &err);
		}
		if (IS_ERR(dl->sl)) {
			r = PTR_ERR(dl->sl);
			DMERR("%s: layer %u (%s): %s", obd_name(t), i, dl->path, err.msg);
			dl->sl = NULL;
			return r;
		}
		r = obd_lower_claim(t->ti, file_inode(dl->sl->file), dl->path, error);
		if (r)
			return r;
		dl->claim = file_inode(dl->sl->file);
		r = obd_hold_bdev(t, dl, error);
		if (r)
			return r;
		dl->blob = dl->sl->blob;
		if (dl->blob)
			obd_blob_user_add(&dl->user, dl->blob, t->ti);
		/* remote layers are read through the page cache the daemon fills */
		if (t->direct_io && !dl->blob)
			obd_open_direct(t, dl);
		/* direct_io layers stay on the worker: O_DIRECT reads always wait */
		dl->nowait = !dl->dfile && (dl->sl->file->f_mode & FMODE_NOWAIT) &&
			(dl->sl->file->f_flags & O_NOATIME);
		t->nowait |= dl->nowait;
	}
	return 0;
}

static int obd_build_index(struct obd_target *t, char **error)
{
	const struct obd_map **maps;
	const struct obd_layer **lp;
	struct obd_err err;
	u64 *counts, vsize;
	unsigned int i;
	int r = -ENOMEM;

	maps = kcalloc(t->nlayers, sizeof(*maps), GFP_KERNEL);
	lp = kcalloc(t->nlayers, sizeof(*lp), GFP_KERNEL);
	counts = kcalloc(t->nlayers, sizeof(*counts), GFP_KERNEL);
	if (!maps || !lp || !counts) {
		*error = "Cannot allocate memory";
		goto out_free;
	}
	for (i = 0; i < t->nlayers; i++) {
		lp[i] = &t->layers[i].sl->layer;
		maps[i] = lp[i]->maps;
		counts[i] = lp[i]->nmaps;
	}

	/*
	 * No lowers: the upper alone (a blank writable disk, the reference's
	 * "only one RW layer"); its own header checks the length when it opens.
	 */
	vsize = t->nlayers ? obd_stack_vsize(lp, t->nlayers) : (u64)t->ti->len << SECTOR_SHIFT;
	/* The same rule as the tools (obd attach, cat, check). */
	if (obd_stack_vsize_check(vsize, &err)) {
		*error = "Invalid virtual size";
		DMERR("%s: %s", obd_name(t), err.msg);
		r = -EINVAL;
		goto out_free;
	}
	if (t->ti->len != vsize >> SECTOR_SHIFT) {
		*error = "Target length does not match the image size";
		DMERR("%s: table length %llu sectors, image virtual size %llu sectors",
		      obd_name(t), (u64)t->ti->len, vsize >> SECTOR_SHIFT);
		r = -EINVAL;
		goto out_free;
	}

	err.msg[0] = 0;
	r = obd_index_merge(maps, counts, t->nlayers, &t->idx, &err);
	if (r) {
		*error = "Cannot merge layer indexes";
		DMERR("%s: %s", obd_name(t), err.msg);
		goto out_free;
	}
	t->idx_built = true;
out_free:
	kfree(counts);
	kfree(lp);
	kfree(maps);
	return r;
}

/*
 * overlaybd <#layers> <layer>... [<#opt args> <opt>...]
 */
static int obd_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	static const struct dm_arg layers_arg = {0, OBD_MAX_LAYERS, "Invalid number of layers"};
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	struct obd_target *t;
	unsigned int i;
	char **paths;
	int r;

	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t) {
		ti->error = "Cannot allocate memory";
		return -ENOMEM;
	}
	t->ti = ti;
	ti->private = t;
	obd_trace_init(&t->trace);

	r = dm_read_arg(&layers_arg, &as, &t->nlayers, &ti->error);
	if (r)
		goto bad;
	if (as.argc < t->nlayers) {
		ti->error = "Not enough layer paths";
		r = -EINVAL;
		goto bad;
	}
	paths = as.argv;
	for (i = 0; i < t->nlayers; i++)
		obd_unescape(paths[i]);
	dm_consume_args(&as, t->nlayers);
	r = obd_parse_opt_args(t, &as, &ti->error);
	if (r)
		goto bad;
	if (!t->nlayers && !t->upper_data) {
		ti->error = "A table without lower layers needs an upper layer";
		r = -EINVAL;
		goto bad;
	}
	atomic_set(&t->pending, 0);
	t->fetch.hold = t->hold_set ? (unsigned long)t->hold_s * HZ : obd_hold_default();
	t->fetch.pending = &t->pending;

	t->layers = kcalloc(t->nlayers, sizeof(*t->layers), GFP_KERNEL);
	if (!t->layers) {
		ti->error = "Cannot allocate memory";
		r = -ENOMEM;
		goto bad;
	}
	r = obd_open_layers(t, paths, &ti->error);
	if (r)
		goto bad;
	r = obd_build_index(t, &ti->error);
	if (r)
		goto bad;
	if (t->upper_data) {
		if (t->upper_data[0] != '/' ||
		    (t->upper_index[0] != '/' && strcmp(t->upper_index, "-"))) {
			DMERR("%s: upper %s %s: the paths must be absolute", obd_name(t),
			      t->upper_data, t->upper_index);
			ti->error = "Upper layer paths must be absolute";
			r = -EINVAL;
			goto bad;
		}
		if (!(dm_table_get_mode(ti->table) & OBD_MODE_WRITE)) {
			ti->error = "A table with an upper layer must be read-write";
			r = -EINVAL;
			goto bad;
		}
		r = obd_upper_share_get(ti, t->upper_data, t->upper_index,
					(u64)ti->len << SECTOR_SHIFT, &t->ushare, &ti->error);
		if (r)
			goto bad;
		t->upper = t->ushare->up;
		t->reader.fn = obd_read_device;
		t->reader.ctx = t;
	} else if (dm_table_get_mode(ti->table) & OBD_MODE_WRITE) {
		/* as dm-verity: every write would fail, so refuse the table */
		DMERR("%s: a read-write table needs an upper layer (load it read-only)", obd_name(t));
		ti->error = "A table without an upper layer must be read-only";
		r = -EINVAL;
		goto bad;
	}

	r = obd_kctx_pool_get();
	if (r) {
		ti->error = "Cannot allocate decode buffers";
		goto bad;
	}
	t->pool_held = true;
	t->reserve = obd_kctx_alloc(true);
	if (!t->reserve) {
		ti->error = "Cannot allocate decode buffers";
		r = -ENOMEM;
		goto bad;
	}
	t->stats = alloc_percpu(struct obd_stats);
	if (!t->stats) {
		ti->error = "Cannot allocate memory";
		r = -ENOMEM;
		goto bad;
	}
	/*
	 * Unbound so that bios from many CPUs are served in parallel, with the
	 * default (high) max_active; a rescuer because the device may back swap
	 * or a file system under writeback.
	 */
	t->wq = alloc_workqueue("kobd-%s", WQ_UNBOUND | WQ_MEM_RECLAIM, 0, obd_name(t));
	if (!t->wq) {
		ti->error = "Cannot allocate workqueue";
		r = -ENOMEM;
		goto bad;
	}

	ti->per_io_data_size = sizeof(struct obd_bio);
	ti->num_flush_bios = 1;
	ti->flush_supported = true;
	ti->num_discard_bios = t->upper ? 1 : 0;
	ti->discards_supported = !!t->upper;
	ti->num_write_zeroes_bios = t->upper ? 1 : 0;
	return 0;

bad:
	obd_dtr(ti);
	return r;
}

/* Bytes fetched into the device's remote blobs, each blob once. */
static u64 obd_fetched(struct obd_target *t)
{
	unsigned int i, j;
	u64 sum = 0;

	for (i = 0; i < t->nlayers; i++) {
		struct obd_blob *b = t->layers[i].blob;

		if (!b)
			continue;
		for (j = 0; j < i && t->layers[j].blob != b; j++)
			;
		if (j == i)
			sum += atomic64_read(&b->fetched);
	}
	return sum;
}

static void obd_status_upper(struct obd_target *t, char *result, unsigned int maxlen,
			     unsigned int *psz)
{
	struct obd_upper *up = t->upper;
	unsigned int sz = *psz;
	u64 data, records, live, room, dead = 0;

	if (!up)
		return;		/* read-only devices keep the line they always had */
	obd_upper_usage(up, &data, &records, &live, &room);
	live <<= SECTOR_SHIFT;
	if (data > live)
		dead = div64_u64((data - live) * 1000, data);
	DMEMIT(" upper %s data %llu records %llu live %llu dead %llu writes %lld written %lld discards %lld flushes %lld write_errors %lld",
	       up->sparse ? "sparse" : "append", data, records, live, dead,
	       (long long)atomic64_read(&up->writes), (long long)atomic64_read(&up->written),
	       (long long)atomic64_read(&up->discards), (long long)atomic64_read(&up->flushes),
	       (long long)atomic64_read(&up->write_errors));
	if (up->sparse)
		DMEMIT(" index_room -");
	else
		DMEMIT(" index_room %llu", room);
	*psz = sz;
}

/*
 * " <arg>" with each white space character and backslash written as a
 * three-digit octal escape (\040, \134), which obd_unescape() reads back:
 * `dmsetup table` output loads again as it is. (libdevmapper doubles every
 * backslash it sends and dm_split_args() halves them, so the target sees
 * what the user wrote; a backslash escape of dm_split_args itself cannot
 * go through dmsetup.)
 */
static void obd_emit_arg(char *result, unsigned int maxlen, unsigned int *psz, const char *a)
{
	unsigned int sz = *psz;

	DMEMIT(" ");
	for (; *a; a++) {
		if (*a == '\\' || isspace(*a))
			DMEMIT("\\%03o", (unsigned char)*a);
		else
			DMEMIT("%c", *a);
	}
	*psz = sz;
}

/*
 * INFO:  <#layers> reads <n> inline <n> resumed <n> bytes <n> zblocks <n> crc_errors <n>
 *        io_errors <n> remote <n> pending <n> fetched <n> daemon <0|1>
 *   reads/bytes: read bios completed and their bytes; inline: those of the
 *   reads served in the submitter's context (no workqueue); resumed: reads
 *   begun inline and finished by the worker from the first miss; zblocks:
 *   ZFile blocks decoded; crc_errors: ZFile blocks with a bad CRC; io_errors:
 *   bios failed; remote: remote layers; pending: readers waiting for a miss
 *   now; fetched: bytes the daemon made present in this device's remote
 *   blobs (shared blobs count for every device using them); daemon: 1 if
 *   a fetch daemon holds /dev/overlaybd.
 *        [upper <append|sparse> data <bytes> records <n> live <bytes>
 *        dead <permille> writes <n> written <bytes> discards <n> flushes <n>
 *        write_errors <n> index_room <n|->]  (with an upper layer only)
 *   data: bytes of the upper's data file (append: past the header;
 *   sparse: allocated); records: in the index file and the group commit
 *   buffer, padding not counted (append), maps (sparse); index_room:
 *   records the append kind's index takes before writes fail with ENOSPC
 *   (sparse: -); live: bytes the upper's maps point at;
 *   dead: the share of data no map points at any more, in permille (high:
 *   time to commit).
 *        [suspend_flush_error <errno>]  (with an upper layer only)
 *   0, or the error of the flush at the last suspend (or of its retry at
 *   resume) until a flush succeeds: records not durable, kept in memory.
 * TABLE: the constructor line, optional arguments recounted, paths
 *   escaped (obd_emit_arg).
 */
static void obd_status(struct dm_target *ti, status_type_t type, unsigned int status_flags,
		       char *result, unsigned int maxlen)
{
	struct obd_target *t = ti->private;
	struct obd_stats s = {};
	unsigned int sz = 0, i, nopt;
	int cpu;

	switch (type) {
	case STATUSTYPE_INFO:
		for_each_possible_cpu(cpu) {
			struct obd_stats *p = per_cpu_ptr(t->stats, cpu);

			s.reads += READ_ONCE(p->reads);
			s.inline_reads += READ_ONCE(p->inline_reads);
			s.resumed += READ_ONCE(p->resumed);
			s.bytes += READ_ONCE(p->bytes);
			s.zblocks += READ_ONCE(p->zblocks);
			s.crc_errors += READ_ONCE(p->crc_errors);
			s.io_errors += READ_ONCE(p->io_errors);
		}
		DMEMIT("%u reads %llu inline %llu resumed %llu bytes %llu zblocks %llu crc_errors %llu io_errors %llu",
		       t->nlayers, s.reads, s.inline_reads, s.resumed, s.bytes, s.zblocks,
		       s.crc_errors, s.io_errors);
		DMEMIT(" remote %u pending %d fetched %llu daemon %d", t->nremote,
		       atomic_read(&t->pending), obd_fetched(t), obd_daemon_connected());
		obd_status_upper(t, result, maxlen, &sz);
		if (t->ushare)
			DMEMIT(" suspend_flush_error %d", obd_upper_share_flush_error(t->ushare));
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%u", t->nlayers);
		for (i = 0; i < t->nlayers; i++)
			obd_emit_arg(result, maxlen, &sz, t->layers[i].path);
		nopt = t->direct_io + t->no_verify + 2 * t->hold_set + 3 * !!t->upper_data;
		if (nopt)
			DMEMIT(" %u", nopt);
		if (t->direct_io)
			DMEMIT(" direct_io");
		if (t->no_verify)
			DMEMIT(" no_verify");
		if (t->hold_set)
			DMEMIT(" hold_timeout %u", t->hold_s);
		if (t->upper_data) {
			DMEMIT(" upper");
			obd_emit_arg(result, maxlen, &sz, t->upper_data);
			obd_emit_arg(result, maxlen, &sz, t->upper_index);
		}
		break;
	case STATUSTYPE_IMA:
		DMEMIT_TARGET_NAME_VERSION(ti->type);
		DMEMIT(",layers=%u,remote=%u,direct_io=%c,no_verify=%c,upper=%c;", t->nlayers,
		       t->nremote, t->direct_io ? 'y' : 'n', t->no_verify ? 'y' : 'n',
		       t->upper ? 'y' : 'n');
		break;
	}
}

static void obd_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct obd_target *t = ti->private;

	/* bios complete from workers: nothing to poll (compat.h) */
	obd_limits_no_poll(limits);
	/*
	 * Block device layers were stacked by iterate_devices; bios never go
	 * to them, so their logical block size is not this device's (whose
	 * length need only be whole sectors).
	 */
	limits->logical_block_size = SECTOR_SIZE;
	if (t->upper) {
		/* any 512-byte range: zeroed records or punched holes */
		limits->discard_granularity = SECTOR_SIZE;
		limits->max_discard_sectors = UINT_MAX >> SECTOR_SHIFT;
		limits->max_hw_discard_sectors = UINT_MAX >> SECTOR_SHIFT;
		limits->max_write_zeroes_sectors = UINT_MAX >> SECTOR_SHIFT;
		return;
	}
	/* Read-only: no discards (both fields, see KERNEL-COMPAT.md section 3). */
	limits->max_discard_sectors = 0;
	limits->max_hw_discard_sectors = 0;
}

/*
 * The layers that are block devices (held by obd_hold_bdev); file layers
 * are no dm device. Having the method at all matters: without it dm (6.1)
 * skips io_hints and never enables discard or write zeroes for the table.
 * What dm derives from the devices: rotational (any layer device is), and
 * write zeroes only if every layer device has it; with no layer device
 * (files only) the device is non-rotational.
 */
static int obd_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	struct obd_target *t = ti->private;
	unsigned int i;
	int r;

	for (i = 0; i < t->nlayers; i++) {
		struct dm_dev *d = t->layers[i].dmdev;

		if (!d)
			continue;
		r = fn(ti, d, 0, bdev_nr_sectors(d->bdev), data);
		if (r)
			return r;
	}
	return 0;
}

/*
 * Bios parked on misses must not hold up a suspend for request_timeout
 * (a registry that hangs): with noflush they go back to dm at once
 * (BLK_STS_DM_REQUEUE: dm keeps them and maps them again after resume, as
 * dm-thin and dm-multipath requeue); a suspend with flush, which waits for
 * every bio in flight and cannot take requeues, lets them wait a few
 * seconds more for their bytes, then fails them (EIO). docs/dm-overlaybd.rst
 * "Suspend".
 */
static void obd_presuspend(struct dm_target *ti)
{
	struct obd_target *t = ti->private;

	obd_fetch_suspend(&t->fetch, dm_noflush_suspending(ti));
}

/* The suspend failed, or the table is live again: misses wait again. */
static void obd_presuspend_undo(struct dm_target *ti)
{
	struct obd_target *t = ti->private;

	obd_fetch_resume(&t->fetch);
}

/* The table is live (swapped in by dm, then resumed): no polled I/O, misses wait again. */
static void obd_resume(struct dm_target *ti)
{
	obd_queue_no_poll(dm_disk(dm_table_get_md(ti->table)));
	obd_presuspend_undo(ti);
}

/*
 * Suspended (no I/O in flight): what was written is durable before a table
 * swap. A failed flush is recorded (status suspend_flush_error, a log
 * line); its records stay buffered in the shared upper.
 */
static void obd_postsuspend(struct dm_target *ti)
{
	struct obd_target *t = ti->private;

	if (t->ushare)
		obd_upper_share_postsuspend(t->ushare, obd_name(t));
}

/* This table goes live: a suspend flush that failed is tried again. */
static int obd_preresume(struct dm_target *ti)
{
	struct obd_target *t = ti->private;

	return t->ushare ? obd_upper_share_preresume(t->ushare, obd_name(t)) : 0;
}

/*
 * Prefetch [off, off + count) of layer `layer`'s LSMT stream: the blob
 * bytes holding it (the ZFile blocks, inside the tar window) are asked of
 * the daemon behind every miss. Local layers have nothing to fetch.
 */
static int obd_prefetch_layer(void *ctx, u32 layer, u64 off, u64 count)
{
	struct obd_target *t = ctx;
	struct obd_dev_layer *dl = &t->layers[layer];
	struct obd_layer *l = &dl->sl->layer;
	u64 b0, b1, start, end;

	if (!dl->blob)
		return 0;
	if (!(l->wrap & OBD_WRAP_ZFILE)) {
		if (off >= l->window.io.size)
			return 0;
		count = min(count, l->window.io.size - off);
		return obd_blob_prefetch(dl->blob, l->window.off + off, count);
	}
	if (!l->zf.info.nblocks)
		return 0;
	b0 = off / l->zf.info.block_size;
	b1 = (off + count - 1) / l->zf.info.block_size;
	if (b0 >= l->zf.info.nblocks)
		return 0;
	b1 = min(b1, l->zf.info.nblocks - 1);
	start = obd_zfile_block_start(&l->zf, b0);
	end = obd_zfile_block_start(&l->zf, b1 + 1);
	return obd_blob_prefetch(dl->blob, l->window.off + start, end - start);
}

static int obd_message(struct dm_target *ti, unsigned int argc, char **argv, char *result,
		       unsigned int maxlen)
{
	struct obd_target *t = ti->private;
	const char *why = NULL;
	int r;

	r = obd_trace_message(&t->trace, argc, argv, result, maxlen, t->nlayers,
			      obd_prefetch_layer, t, &why);
	if (r < 0 && r != -EBUSY)
		DMWARN_LIMIT("%s: message refused: %s", obd_name(t), why);
	return r;
}

static struct target_type obd_target_type = {
	.name = "overlaybd",
	.version = {1, 7, 0},
	.module = THIS_MODULE,
	.ctr = obd_ctr,
	.dtr = obd_dtr,
	.map = obd_map,
	.status = obd_status,
	.message = obd_message,
	.io_hints = obd_io_hints,
	.presuspend = obd_presuspend,
	.presuspend_undo = obd_presuspend_undo,
	.postsuspend = obd_postsuspend,
	.preresume = obd_preresume,
	.resume = obd_resume,
	.iterate_devices = obd_iterate_devices,
};

static int __init obd_init(void)
{
	int r;

	r = obd_env_init();
	if (r)
		return r;
	r = obd_miss_init();
	if (r) {
		DMERR("cannot register /dev/%s: error %d", OBD_DEV_NAME, r);
		goto out_env;
	}
	r = dm_register_target(&obd_target_type);
	if (r) {
		DMERR("register failed %d", r);
		goto out_miss;
	}
	return 0;

out_miss:
	obd_miss_exit();
out_env:
	obd_env_exit();
	return r;
}

static void __exit obd_exit(void)
{
	dm_unregister_target(&obd_target_type);
	obd_miss_exit();
	obd_upper_registry_exit();
	obd_shared_exit();
	obd_blob_exit();
	obd_env_exit();
}

module_init(obd_init);
module_exit(obd_exit);

MODULE_DESCRIPTION(DM_NAME " target serving overlaybd images (LSMT, ZFile, tar)");
MODULE_AUTHOR("dm-overlaybd authors");
MODULE_LICENSE("GPL");
