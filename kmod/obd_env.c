// SPDX-License-Identifier: GPL-2.0-only
/*
 * The kernel environment of the format core (lib/core/obd.h): allocation, the
 * overlaybd CRC32C, the LZ4/zstd block codec, file-backed byte sources, and
 * the pool of decode contexts used by the read path.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/vmalloc.h>
#include <linux/uio.h>
#include <linux/bio.h>
#include <linux/crc32.h>
#include <linux/lz4.h>
#include <linux/zstd.h>
#include <linux/cpumask.h>
#include <linux/smp.h>
#include <linux/err.h>
#include <linux/device-mapper.h>

#define DM_MSG_PREFIX "overlaybd"

#include "obd_kmod.h"
#include "obd_remote.h"

#define OBD_KCTX_MAX	64u

/*----------------------------------------------------------------
 * Memory and CRC
 *--------------------------------------------------------------*/

/*
 * Everything the format core allocates (parsed indexes above all: jump
 * tables, LSMT indexes, merged indexes, the upper's index) is sized from
 * layer bytes nobody vouched for. Each object is capped, the total is held
 * to a module-wide budget, and a refusal is logged and returned as NULL
 * (the caller names the layer: "out of memory") instead of kvmalloc's
 * WARN past INT_MAX or gigabytes of vmalloc.
 */

static unsigned int index_budget_mb;
module_param(index_budget_mb, uint, 0644);
MODULE_PARM_DESC(index_budget_mb,
		 "MiB of memory all parsed layer indexes may use together (default 0: a quarter of RAM)");

static atomic_long_t obd_alloc_used = ATOMIC_LONG_INIT(0);

struct obd_alloc_hdr {
	size_t size;
	size_t pad;		/* keeps the object 16-byte aligned */
};

unsigned long obd_index_budget(void)
{
	unsigned int mb = READ_ONCE(index_budget_mb);

	if (mb)
		return (unsigned long)mb << 20;
	return (totalram_pages() / 4) << PAGE_SHIFT;
}

void *obd_zalloc(size_t size)
{
	size_t total = size + sizeof(struct obd_alloc_hdr);
	unsigned long budget = obd_index_budget();
	struct obd_alloc_hdr *h;
	long used;

	if (size > OBD_ALLOC_MAX) {
		DMERR_LIMIT("refusing %zu bytes for a layer index: one object may use at most %lu MiB",
			    size, OBD_ALLOC_MAX >> 20);
		return NULL;
	}
	used = atomic_long_add_return(total, &obd_alloc_used);
	if ((unsigned long)used > budget) {
		atomic_long_sub(total, &obd_alloc_used);
		DMERR_LIMIT("refusing %zu bytes for a layer index: over the budget of %lu MiB for all indexes (index_budget_mb; %lu MiB in use)",
			    size, budget >> 20, (unsigned long)(used - total) >> 20);
		return NULL;
	}
	h = kvzalloc(total, GFP_KERNEL | __GFP_NOWARN);
	if (!h) {
		atomic_long_sub(total, &obd_alloc_used);
		return NULL;
	}
	h->size = total;
	return h + 1;
}

void obd_free(void *p)
{
	struct obd_alloc_hdr *h;

	if (!p)
		return;
	h = (struct obd_alloc_hdr *)p - 1;
	atomic_long_sub(h->size, &obd_alloc_used);
	kvfree(h);
}

/* overlaybd's CRC32C is the raw update, seed as given, no inversion. */
u32 obd_crc32c(u32 seed, const void *buf, size_t len)
{
	return __crc32c_le(seed, buf, len);
}

/*----------------------------------------------------------------
 * Byte sources over a struct file
 *--------------------------------------------------------------*/

static int obd_kfile_read(struct obd_io *io, void *buf, size_t len, u64 off)
{
	struct obd_kfile_io *k = container_of(io, struct obd_kfile_io, io);
	loff_t pos = off;

	if (k->blob) {
		int r = obd_blob_fetch(k->blob, off, len, k->fetch);

		if (r)
			return r;
	}
	while (len) {
		ssize_t r = kernel_read(k->file, buf, len, &pos);

		if (r < 0)
			return r;
		if (r == 0)	/* the file shrank under us */
			return -EIO;
		buf = (u8 *)buf + r;
		len -= r;
	}
	return 0;
}

/* The size comes from the mapping's host so that block devices work too. */
void obd_kfile_io_init(struct obd_kfile_io *k, struct file *file, const char *name)
{
	k->file = file;
	k->blob = NULL;
	k->fetch = NULL;
	k->io.read = obd_kfile_read;
	k->io.size = i_size_read(file->f_mapping->host);
	k->io.name = name;
}

/*----------------------------------------------------------------
 * Codec
 *--------------------------------------------------------------*/

static int obd_kdecode(struct obd_codec *codec, u8 algo, const void *src, size_t slen,
		       void *dst, size_t dcap)
{
	struct obd_kctx *c = container_of(codec, struct obd_kctx, codec);
	size_t r;
	int n;

	if (slen > INT_MAX || dcap > INT_MAX)
		return -EINVAL;
	switch (algo) {
	case OBD_ZFILE_ALGO_LZ4:
		n = LZ4_decompress_safe(src, dst, (int)slen, (int)dcap);
		return n < 0 ? -EFSCORRUPTED : n;
	case OBD_ZFILE_ALGO_ZSTD:
		r = zstd_decompress_dctx(c->zstd_dctx, dst, dcap, src, slen);
		if (zstd_is_error(r))
			return -EFSCORRUPTED;
		return (int)r;
	default:
		return -EOPNOTSUPP;
	}
}

/*----------------------------------------------------------------
 * Decode contexts
 *--------------------------------------------------------------*/

void obd_kctx_free(struct obd_kctx *c)
{
	if (!c)
		return;
	kvfree(c->zstd_ws);
	vfree(c->cbuf);
	kfree(c->cvec);
	kvfree(c->dbuf);
	kfree(c);
}

struct obd_kctx *obd_kctx_alloc(bool buffers)
{
	size_t wsz = zstd_dctx_workspace_bound();
	struct obd_kctx *c;
	unsigned int i;

	c = kzalloc(sizeof(*c), GFP_KERNEL);
	if (!c)
		return NULL;
	mutex_init(&c->lock);
	c->codec.decode = obd_kdecode;
	c->zstd_ws = kvzalloc(wsz, GFP_KERNEL);
	if (!c->zstd_ws)
		goto out_free;
	c->zstd_dctx = zstd_init_dctx(c->zstd_ws, wsz);
	if (!c->zstd_dctx)
		goto out_free;
	if (!buffers)
		return c;

	c->dbuf = kvmalloc(OBD_ZFILE_MAX_BS, GFP_KERNEL);
	c->cbuf = vmalloc(OBD_CBUF_PAGES << PAGE_SHIFT);
	c->cvec = kcalloc(OBD_CBUF_PAGES, sizeof(*c->cvec), GFP_KERNEL);
	if (!c->dbuf || !c->cbuf || !c->cvec)
		goto out_free;
	for (i = 0; i < OBD_CBUF_PAGES; i++)
		bvec_set_page(&c->cvec[i], vmalloc_to_page(c->cbuf + i * PAGE_SIZE),
			      PAGE_SIZE, 0);
	return c;

out_free:
	obd_kctx_free(c);
	return NULL;
}

static DEFINE_MUTEX(obd_pool_mutex);	/* guards the three below */
static struct obd_kctx **obd_pool;
static unsigned int obd_pool_n;
static unsigned int obd_pool_users;

/* Called from ctr: the pool lives while any device does. */
int obd_kctx_pool_get(void)
{
	unsigned int i, n = min_t(unsigned int, num_possible_cpus(), OBD_KCTX_MAX);
	struct obd_kctx **pool;
	int r = 0;

	mutex_lock(&obd_pool_mutex);
	if (obd_pool_users) {
		obd_pool_users++;
		goto out_unlock;
	}
	pool = kcalloc(n, sizeof(*pool), GFP_KERNEL);
	if (!pool) {
		r = -ENOMEM;
		goto out_unlock;
	}
	for (i = 0; i < n; i++) {
		pool[i] = obd_kctx_alloc(true);
		if (!pool[i]) {
			while (i--)
				obd_kctx_free(pool[i]);
			kfree(pool);
			r = -ENOMEM;
			goto out_unlock;
		}
	}
	obd_pool = pool;
	obd_pool_n = n;
	obd_pool_users = 1;
out_unlock:
	mutex_unlock(&obd_pool_mutex);
	return r;
}

/* Called from dtr, after the device's workqueue is destroyed. */
void obd_kctx_pool_put(void)
{
	unsigned int i;

	mutex_lock(&obd_pool_mutex);
	if (!WARN_ON(!obd_pool_users) && !--obd_pool_users) {
		for (i = 0; i < obd_pool_n; i++)
			obd_kctx_free(obd_pool[i]);
		kfree(obd_pool);
		obd_pool = NULL;
		obd_pool_n = 0;
	}
	mutex_unlock(&obd_pool_mutex);
}

/*
 * The pool cannot go away under a worker: it is held by every live device,
 * and a device's dtr runs only after its bios are done. Try this CPU's
 * context first, then any idle one. If all are busy, use the device's own
 * reserve instead of waiting for a shared one: a layer file may sit on a
 * file system over another overlaybd device, and workers of the upper
 * device holding every shared context while they wait for the lower one
 * would otherwise deadlock it. The reserve is only contended by workers of
 * its own device, which only wait for devices below it.
 * obd_kctx_tryacquire() is the same without the wait, for the inline read
 * path (the bio submitter's context), which must not sleep: NULL if all are
 * busy.
 */
static struct obd_kctx *obd_kctx_trypool(void)
{
	unsigned int n = READ_ONCE(obd_pool_n);
	unsigned int start = raw_smp_processor_id() % n;
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct obd_kctx *c = obd_pool[(start + i) % n];

		if (mutex_trylock(&c->lock))
			return c;
	}
	return NULL;
}

struct obd_kctx *obd_kctx_acquire(struct obd_kctx *reserve)
{
	struct obd_kctx *c = obd_kctx_trypool();

	if (c)
		return c;
	mutex_lock(&reserve->lock);
	return reserve;
}

struct obd_kctx *obd_kctx_tryacquire(struct obd_kctx *reserve)
{
	struct obd_kctx *c = obd_kctx_trypool();

	if (c)
		return c;
	return mutex_trylock(&reserve->lock) ? reserve : NULL;
}

void obd_kctx_release(struct obd_kctx *c)
{
	mutex_unlock(&c->lock);
}

/*
 * A buffered read that only copies pages already cached and uptodate:
 * -EAGAIN (or a short count) instead of waiting for a page lock, starting
 * I/O or readahead (IOCB_NOIO: a readahead marker is left for the worker).
 * f_op->read_iter directly, as loop does: vfs_iter_read's fsnotify hook may
 * allocate. The caller checked FMODE_NOWAIT, and the file is O_NOATIME so
 * that file_accessed() does not dirty the inode.
 */
void obd_bio_iov(struct bio *bio, unsigned int dir, struct iov_iter *it)
{
	struct bvec_iter bi;
	struct bio_vec bv;
	unsigned long nr = 0;

	bio_for_each_bvec(bv, bio, bi)
		nr++;
	iov_iter_bvec(it, dir, __bvec_iter_bvec(bio->bi_io_vec, bio->bi_iter), nr,
		      bio->bi_iter.bi_size);
	it->iov_offset = bio->bi_iter.bi_bvec_done;
}

ssize_t obd_read_nowait(struct file *file, struct iov_iter *it, loff_t *pos)
{
	struct kiocb kiocb;
	ssize_t r;

	init_sync_kiocb(&kiocb, file);
	kiocb.ki_pos = *pos;
	kiocb.ki_flags &= ~IOCB_DIRECT;
	kiocb.ki_flags |= IOCB_NOWAIT | IOCB_NOIO;
	r = file->f_op->read_iter(&kiocb, it);
	if (r > 0)
		*pos = kiocb.ki_pos;
	return r;
}

/*
 * The worker's blocking read, as loop reads its backing file: a kiocb and
 * f_op->read_iter, not vfs_iter_read(), whose permission and fsnotify hooks
 * (FAN_ACCESS_PERM listeners, event allocation) have no place on an I/O
 * path. The workers run in a NOIO scope (obd_work).
 */
static ssize_t obd_read_block(struct file *file, struct iov_iter *it, loff_t *pos)
{
	struct kiocb kiocb;
	ssize_t r;

	init_sync_kiocb(&kiocb, file);
	kiocb.ki_pos = *pos;
	r = file->f_op->read_iter(&kiocb, it);
	if (r > 0)
		*pos = kiocb.ki_pos;
	return r;
}

ssize_t obd_read_iter(struct file *file, struct iov_iter *it, loff_t *pos, bool nowait)
{
	return nowait ? obd_read_nowait(file, it, pos) : obd_read_block(file, it, pos);
}

u8 *obd_kctx_read(struct obd_kctx *c, struct file *file, u64 pos, u32 len, bool nowait,
		  u32 *got)
{
	u64 astart = round_down(pos, OBD_DIO_ALIGN);
	u64 aend = round_up(pos + len, OBD_DIO_ALIGN);
	struct iov_iter it;
	loff_t p = astart;

	if (aend - astart > (u64)OBD_CBUF_PAGES << PAGE_SHIFT)
		return ERR_PTR(-E2BIG);
	iov_iter_bvec(&it, ITER_DEST, c->cvec, OBD_CBUF_PAGES, aend - astart);
	while (iov_iter_count(&it)) {
		ssize_t r = obd_read_iter(file, &it, &p, nowait);

		if (r == -EAGAIN && nowait && (u64)p > pos) {
			*got = (u32)((u64)p - pos);
			return c->cbuf + (pos - astart);
		}
		if (r < 0)
			return ERR_PTR(r);
		if (r == 0)
			break;
	}
	/* Past EOF only the alignment slack may be missing. */
	if ((u64)p < pos + len)
		return ERR_PTR(-EIO);
	*got = len;
	return c->cbuf + (pos - astart);
}

/*----------------------------------------------------------------
 * Module-wide setup
 *--------------------------------------------------------------*/

static struct obd_kctx *obd_parse_ctx;
struct obd_codec *obd_parse_codec;

/*
 * Layers are parsed concurrently (obd_shared.c holds no lock across the
 * parse): the one parse context decodes one block at a time, under its
 * lock, which is never held across I/O.
 */
static int obd_parse_decode(struct obd_codec *codec, u8 algo, const void *src, size_t slen,
			    void *dst, size_t dcap)
{
	struct obd_kctx *c = container_of(codec, struct obd_kctx, codec);
	int r;

	mutex_lock(&c->lock);
	r = obd_kdecode(codec, algo, src, slen, dst, dcap);
	mutex_unlock(&c->lock);
	return r;
}

int obd_env_init(void)
{
	obd_parse_ctx = obd_kctx_alloc(false);
	if (!obd_parse_ctx)
		return -ENOMEM;
	obd_parse_ctx->codec.decode = obd_parse_decode;
	obd_parse_codec = &obd_parse_ctx->codec;
	return 0;
}

void obd_env_exit(void)
{
	obd_kctx_free(obd_parse_ctx);
	obd_parse_ctx = NULL;
	obd_parse_codec = NULL;
}
