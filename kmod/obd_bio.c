// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-overlaybd: the I/O path. obd_map() takes every bio; a read whose data
 * is in the layer files' page cache is served inline in the submitter's
 * context (obd_read_inline), the rest and every write, discard and flush
 * go to the device's workqueue (obd_work). A read walks the merged index
 * (and the upper, if any) piece by piece: plain or ZFile, local or remote
 * (a miss parks the bio until the daemon answers). The table side is in
 * dm-overlaybd-target.c; what both share in obd_target.h.
 */
#include <linux/kernel.h>
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

#include "compat.h"
#include "obd_target.h"

#define DM_MSG_PREFIX "overlaybd"

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

/*----------------------------------------------------------------
 * Read path
 *--------------------------------------------------------------*/

/* Where uncompressed bytes come from: a plain layer's file or a turbo target. */
struct obd_plain_src {
	struct file *file;		/* buffered */
	struct file *dfile;		/* O_DIRECT, or NULL */
	u64 base;			/* where the stream starts in the file (tar window) */
	struct obd_blob *blob;		/* remote, or NULL */
	const struct obd_fetch_opts *fetch;
	const char *path;		/* for messages */
};

static void obd_layer_src(struct obd_dev_layer *dl, struct obd_plain_src *src)
{
	src->file = dl->sl->file;
	src->dfile = dl->dfile;
	src->base = dl->sl->layer.window.off;
	src->blob = dl->blob;
	src->fetch = dl->fetch;
	src->path = dl->path;
}

/* A warp layer's target: the tar stream is the whole file (or blob). */
static void obd_turbo_src(struct obd_dev_layer *dl, struct obd_plain_src *src)
{
	src->file = dl->turbo->file;
	src->dfile = NULL;
	src->base = 0;
	src->blob = dl->turbo->blob;
	src->fetch = dl->fetch;
	src->path = dl->turbo->arg;
}

/*
 * Uncompressed data: read from the file straight into the bio pages.
 * An O_DIRECT read that the file system refuses for alignment (-EINVAL)
 * is retried through the page cache.
 */
static int obd_read_plain(struct obd_walk *wk, const struct obd_plain_src *src,
			  struct iov_iter *piece, u64 pos)
{
	struct file *f = src->dfile ? src->dfile : src->file;
	loff_t p = src->base + pos;
	bool nowait = wk->nowait;

	if (src->blob) {
		size_t n = iov_iter_count(piece);

		if (nowait && !obd_blob_present(src->blob, p, n))
			return -EAGAIN;
		if (wk->ob && !obd_blob_present(src->blob, p, n))
			return obd_walk_miss(wk, src->blob, p, n, 0);
		if (!nowait) {
			int r = obd_blob_fetch(src->blob, p, n, src->fetch);

			if (r)
				return r;
		}
	}
	while (iov_iter_count(piece)) {
		ssize_t r = obd_read_iter(f, piece, &p, nowait);

		if (r == -EINVAL && f == src->dfile) {
			f = src->file;
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
			if (src->blob && p < (loff_t)src->blob->size) {
				if (!nowait)
					DMERR_LIMIT("layer %s: cache file ends at byte %lld, before the blob's end (%llu): truncated under the device",
						    src->path, p, src->blob->size);
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
		if (wk->ob->refetch_block != boff) {
			wk->ob->refetches = 0;
			wk->ob->stale_waits = 0;
		} else if (wk->ob->waiter.stale && wk->ob->stale_waits < OBD_REFETCH_TRIES) {
			/* the answer was to an earlier plain miss: not a try */
			wk->ob->stale_waits++;
			wk->ob->refetches--;
		}
		wk->ob->waiter.stale = false;
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
	} else if (m->tag >= wk->t->nlayers ||
		   (m->target && !wk->t->layers[m->tag].turbo)) {
		r = -EIO;
	} else {
		struct obd_plain_src src;

		dl = &wk->t->layers[m->tag];
		if (wk->nowait && !(m->target ? dl->turbo->nowait : dl->nowait))
			return -EAGAIN;
		if (m->target) {
			obd_turbo_src(dl, &src);
			r = obd_read_plain(wk, &src, &piece, moff << SECTOR_SHIFT);
		} else if (dl->sl->layer.wrap & OBD_WRAP_ZFILE) {
			r = obd_read_zfile(wk, dl, &piece, moff << SECTOR_SHIFT, bytes);
		} else {
			obd_layer_src(dl, &src);
			r = obd_read_plain(wk, &src, &piece, moff << SECTOR_SHIFT);
		}
		if (r && (wk->nowait || (r == -EAGAIN && wk->miss.blob))) {
			/* keep what the piece filled: the worker goes on from there */
			iov_iter_advance(&wk->iter, bytes - iov_iter_count(&piece));
			return -EAGAIN;
		}
		if (r && r != -EFSBADCRC && r != -EFSCORRUPTED)
			DMERR_LIMIT("%s: layer %s: read error %d at %s sector %llu",
				    obd_name(wk->t), m->target ? dl->turbo->arg : dl->path, r,
				    m->target ? "target" : "layer", moff);
		/* a trace names layer stream offsets; target sectors are not one */
		if (!r && !m->target)
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
int obd_read_device(void *ctx, u64 lba, u64 nsect, struct iov_iter *it)
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
 * map
 *--------------------------------------------------------------*/

/*
 * - without an upper layer: an empty flush completes at once (nothing is
 *   cached on our side), anything but a read fails (read-only);
 * - with one, writes, discards, write zeroes and flushes go to the worker;
 * - a read: owned by the target, served inline if the page cache has it
 *   all, else from the workqueue.
 */
int obd_map(struct dm_target *ti, struct bio *bio)
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
	ob->stale_waits = 0;
	ob->refetch_block = U64_MAX;
	ob->woken = 0;
	ob->waiter.stale = false;
	ob->waiter.opts = &t->fetch;
	ob->waiter.wake = obd_bio_wake;
	if (bio_op(bio) == REQ_OP_READ && obd_read_inline(ob, bio))
		return DM_MAPIO_SUBMITTED;
	INIT_WORK(&ob->work, obd_work);
	queue_work(t->wq, &ob->work);
	return DM_MAPIO_SUBMITTED;
}
