// SPDX-License-Identifier: GPL-2.0-only
/*
 * Remote blobs: a cache file filled on demand (obd_miss.c), one object per
 * cache file inode whoever names it, with one presence bitmap shared by
 * every device stacking the blob. The bitmap starts from the entry's .meta
 * file (include/obd_format.h, "Cache entry metadata"), whose bits the
 * daemon sets only for bytes it made durable: after a daemon restart, a
 * module reload or a crash, what was fetched is served without fetching,
 * and nothing half-written is taken as present. The kernel never writes
 * the .meta.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/mm.h>
#include <linux/bitmap.h>
#include <linux/vmalloc.h>
#include <linux/device-mapper.h>

#include "obd_kmod.h"
#include "obd_remote.h"

#define DM_MSG_PREFIX "overlaybd"

DEFINE_MUTEX(obd_remote_mutex);
static LIST_HEAD(obd_blobs);
static u64 obd_blob_next_id = 1;

/*----------------------------------------------------------------
 * Table argument: remote:<size>:sha256:<hex>:<path>
 *--------------------------------------------------------------*/

int obd_remote_parse(const char *arg, struct obd_remote_spec *rs, char **error)
{
	const char *p = arg + sizeof(OBD_REMOTE_PREFIX) - 1, *colon;
	char num[24];
	size_t n;

	colon = strchr(p, ':');
	n = colon ? (size_t)(colon - p) : 0;
	if (!n || n >= sizeof(num)) {
		*error = "Invalid remote layer size";
		return -EINVAL;
	}
	memcpy(num, p, n);
	num[n] = 0;
	if (kstrtou64(num, 10, &rs->size) || !rs->size || rs->size > OBD_CACHE_MAX_BLOB) {
		*error = "Invalid remote layer size";
		return -EINVAL;
	}
	p = colon + 1;
	if (strnlen(p, OBD_DIGEST_STR_LEN + 1) < OBD_DIGEST_STR_LEN + 1 ||
	    p[OBD_DIGEST_STR_LEN] != ':' ||
	    obd_digest_parse(p, OBD_DIGEST_STR_LEN, rs->digest)) {
		*error = "Invalid remote layer digest";
		return -EINVAL;
	}
	p += OBD_DIGEST_STR_LEN + 1;
	if (p[0] != '/' || strlen(p) >= OBD_MSG_PATH_MAX - 5) {
		*error = "Invalid remote layer cache path";
		return -EINVAL;
	}
	rs->path = p;
	return 0;
}

/*----------------------------------------------------------------
 * Presence
 *--------------------------------------------------------------*/

static void obd_granules(struct obd_blob *b, u64 off, u64 len, u64 *g0, u64 *g1)
{
	u64 end = min(off + len, b->size);

	*g0 = off >> OBD_GRANULE_SHIFT;
	*g1 = DIV_ROUND_UP_ULL(end, OBD_GRANULE_SIZE);
}

/*
 * Lockless: bits are only set after the daemon's data is in the page
 * cache (obd_miss.c sets them after a full barrier, see obd_done_apply).
 */
bool obd_blob_present(struct obd_blob *b, u64 off, u64 len)
{
	u64 g0, g1;
	bool r;

	if (off >= b->size)
		return true;
	obd_granules(b, off, len, &g0, &g1);
	r = find_next_zero_bit(b->present, g1, g0) >= g1;
	smp_rmb();	/* the bits before the bytes they stand for */
	return r;
}

/* Bytes from off that are present, at most len. */
u64 obd_blob_present_prefix(struct obd_blob *b, u64 off, u64 len)
{
	u64 g0, g1, g;

	if (off >= b->size)
		return len;
	obd_granules(b, off, len, &g0, &g1);
	g = find_next_zero_bit(b->present, g1, g0);
	smp_rmb();
	if (g >= g1)
		return len;
	return (g << OBD_GRANULE_SHIFT) > off ? (g << OBD_GRANULE_SHIFT) - off : 0;
}

/*----------------------------------------------------------------
 * Loading an entry
 *--------------------------------------------------------------*/

/* The .meta is read with the layers' own file reader (obd_env.c). */
static int obd_read_full(struct file *f, const char *name, void *buf, size_t len, loff_t pos)
{
	struct obd_kfile_io k;

	obd_kfile_io_init(&k, f, name);
	return obd_io_read(&k.io, buf, len, pos);
}

/* The .meta's bitmap, as little-endian 64-bit words, into b->present. */
static int obd_blob_load_bits(struct obd_blob *b, struct file *f, const struct obd_cache_info *ci)
{
	u64 words = ci->bitmap_bytes / 8, w;
	__le64 *raw;
	int r;

	raw = kvmalloc(ci->bitmap_bytes, GFP_KERNEL | __GFP_NOWARN);
	if (!raw)
		return -ENOMEM;
	r = obd_read_full(f, b->path, raw, ci->bitmap_bytes, ci->bitmap_off);
	if (r)
		goto out_free;
	for (w = 0; w < words; w++)
		bitmap_from_u64(b->present + w * (64 / BITS_PER_LONG), le64_to_cpu(raw[w]));
	/* bits past the blob's end mean nothing */
	if (b->ngranules % 64)
		bitmap_clear(b->present, b->ngranules, words * 64 - b->ngranules);
	if (ci->flags & OBD_CACHE_F_COMPLETE)
		bitmap_fill(b->present, b->ngranules);
out_free:
	kvfree(raw);
	return r;
}

static int obd_blob_load_meta(struct obd_blob *b, char **error, struct obd_err *err)
{
	struct obd_cache_info *ci;
	struct file *f;
	char *mpath;
	void *hdr;
	loff_t isz;
	int r = -ENOMEM;

	mpath = kasprintf(GFP_KERNEL, "%s.meta", b->path);
	hdr = kvmalloc(OBD_CACHE_HDR_SPACE, GFP_KERNEL);
	ci = kzalloc(sizeof(*ci), GFP_KERNEL);
	if (!mpath || !hdr || !ci) {
		*error = "Cannot allocate memory";
		goto out_free;
	}
	f = filp_open(mpath, O_RDONLY | O_LARGEFILE, 0);
	if (IS_ERR(f)) {
		r = PTR_ERR(f);
		*error = "Cannot open remote layer cache metadata";
		obd_errf(err, r, "%s: open failed: error %d (make the entry with obd attach)",
			 mpath, r);
		goto out_free;
	}
	r = obd_read_full(f, mpath, hdr, OBD_CACHE_HDR_SPACE, 0);
	if (r) {
		*error = "Cannot read remote layer cache metadata";
		obd_errf(err, r, "%s: header: read error %d", mpath, r);
		goto out_fput;
	}
	r = obd_cache_hdr_decode(hdr, mpath, ci, err);
	if (r) {
		*error = "Invalid remote layer cache metadata";
		goto out_fput;
	}
	if (ci->blob_size != b->size || memcmp(ci->digest, b->digest, OBD_SHA256_LEN)) {
		*error = "Remote layer cache metadata names another blob";
		r = obd_errf(err, -EINVAL, "%s: blob size %llu and digest in the file differ from the table's (size %llu)",
			     mpath, ci->blob_size, b->size);
		goto out_fput;
	}
	isz = i_size_read(file_inode(f));
	if (isz < 0 || (u64)isz < ci->bitmap_off + ci->bitmap_bytes) {
		*error = "Invalid remote layer cache metadata";
		r = obd_errf(err, -EFSCORRUPTED, "%s: %lld bytes, the bitmap needs %llu", mpath,
			     (long long)isz, ci->bitmap_off + ci->bitmap_bytes);
		goto out_fput;
	}
	/* bitmap_bytes is whole 64-bit words: whole longs */
	b->present = kvzalloc(ci->bitmap_bytes, GFP_KERNEL | __GFP_NOWARN);
	if (!b->present) {
		*error = "Cannot allocate memory";
		r = -ENOMEM;
		goto out_fput;
	}
	r = obd_blob_load_bits(b, f, ci);
	if (r) {
		*error = "Cannot read remote layer cache metadata";
		obd_errf(err, r, "%s: bitmap: read error %d", mpath, r);
	}
out_fput:
	fput(f);
out_free:
	kfree(ci);
	kvfree(hdr);
	kfree(mpath);
	return r;
}

/*----------------------------------------------------------------
 * The blob list
 *--------------------------------------------------------------*/

static void obd_blob_free(struct obd_blob *b)
{
	if (b->file)
		fput(b->file);
	xa_destroy(&b->req_by_g0);
	kvfree(b->req_start);
	kvfree(b->present);
	kfree(b->path);
	kfree(b);
}

/* NOTE: caller holds obd_remote_mutex. */
static struct obd_blob *__obd_blob_find(struct inode *host)
{
	struct obd_blob *b;

	lockdep_assert_held(&obd_remote_mutex);
	list_for_each_entry(b, &obd_blobs, list)
		if (file_inode(b->file) == host)
			return b;
	return NULL;
}

static struct file *obd_blob_open_cache(const struct obd_remote_spec *rs, char **error,
					struct obd_err *err)
{
	struct file *f;
	loff_t isz;

	/* O_NOATIME: see obd_shared_get(); needed for inline reads */
	f = filp_open(rs->path, O_RDONLY | O_LARGEFILE | O_NOATIME, 0);
	if (PTR_ERR_OR_ZERO(f) == -EPERM)
		f = filp_open(rs->path, O_RDONLY | O_LARGEFILE, 0);
	if (IS_ERR(f)) {
		*error = "Cannot open remote layer cache file";
		obd_errf(err, (int)PTR_ERR(f), "%s: open failed: error %ld (make the entry with obd attach)",
			 rs->path, PTR_ERR(f));
		return f;
	}
	isz = i_size_read(file_inode(f));
	if (!S_ISREG(file_inode(f)->i_mode) || !f->f_op->read_iter || isz != (loff_t)rs->size) {
		*error = "Invalid remote layer cache file";
		obd_errf(err, -EINVAL, "%s: expected a regular file of %llu bytes (the blob size), found %lld bytes",
			 rs->path, rs->size, (long long)isz);
		fput(f);
		return ERR_PTR(-EINVAL);
	}
	return f;
}

/* A blob for f, loaded from its .meta; not on the list yet. Takes over f. */
static struct obd_blob *obd_blob_load(const struct obd_remote_spec *rs, struct file *f,
				      char **error, struct obd_err *err)
{
	struct obd_blob *b;
	int r;

	b = kzalloc(sizeof(*b), GFP_KERNEL);
	if (!b) {
		fput(f);
		*error = "Cannot allocate memory";
		return ERR_PTR(-ENOMEM);
	}
	b->file = f;
	b->sdev = file_inode(f)->i_sb->s_dev;
	b->ino = file_inode(f)->i_ino;
	b->size = rs->size;
	b->ngranules = DIV_ROUND_UP_ULL(rs->size, OBD_GRANULE_SIZE);
	memcpy(b->digest, rs->digest, OBD_SHA256_LEN);
	init_waitqueue_head(&b->wq);
	INIT_LIST_HEAD(&b->reqs);
	xa_init(&b->req_by_g0);
	atomic64_set(&b->fetched, 0);
	b->path = kstrdup(rs->path, GFP_KERNEL);
	b->req_start = kvzalloc(BITS_TO_LONGS(b->ngranules) * sizeof(long), GFP_KERNEL);
	if (!b->path || !b->req_start) {
		*error = "Cannot allocate memory";
		r = -ENOMEM;
		goto out_free;
	}
	r = obd_blob_load_meta(b, error, err);
	if (r)
		goto out_free;
	return b;

out_free:
	obd_blob_free(b);
	return ERR_PTR(r);
}

/*
 * The blob behind rs, loaded if no device uses it yet. The same cache file
 * named with another size or digest is refused: presence is per file.
 * The .meta is read without obd_remote_mutex (every miss and every answer
 * of the daemon needs it, and the .meta may itself sit on a device that
 * misses): looked up, loaded unlocked, looked up again before inserting.
 */
struct obd_blob *obd_blob_get(const struct obd_remote_spec *rs, char **error,
			      struct obd_err *err)
{
	struct obd_blob *b, *nb = NULL;
	struct file *f;

	f = obd_blob_open_cache(rs, error, err);
	if (IS_ERR(f))
		return ERR_CAST(f);

	for (;;) {
		mutex_lock(&obd_remote_mutex);
		b = __obd_blob_find(file_inode(f));
		if (b || nb)
			break;
		mutex_unlock(&obd_remote_mutex);
		nb = obd_blob_load(rs, get_file(f), error, err);
		if (IS_ERR(nb)) {
			fput(f);
			return nb;
		}
	}
	if (b) {
		if (b->size != rs->size || memcmp(b->digest, rs->digest, OBD_SHA256_LEN)) {
			*error = "Remote layer cache file in use for another blob";
			obd_errf(err, -EBUSY, "%s: in use as a blob of %llu bytes with another digest",
				 rs->path, b->size);
			b = ERR_PTR(-EBUSY);
		} else {
			b->refs++;
		}
	} else {
		b = nb;
		nb = NULL;
		b->id = obd_blob_next_id++;
		b->refs = 1;
		list_add(&b->list, &obd_blobs);
		__obd_miss_blob_new(b);
	}
	mutex_unlock(&obd_remote_mutex);
	fput(f);
	if (nb)
		obd_blob_free(nb);	/* another opener loaded it meanwhile */
	return b;
}

/* NOTE: caller holds obd_remote_mutex. */
void __obd_blob_put(struct obd_blob *b)
{
	lockdep_assert_held(&obd_remote_mutex);
	if (--b->refs)
		return;
	/* requests hold refs: none is left */
	list_del(&b->list);
	__obd_miss_blob_gone(b);
	obd_blob_free(b);
}

void obd_blob_put(struct obd_blob *b)
{
	mutex_lock(&obd_remote_mutex);
	__obd_blob_put(b);
	mutex_unlock(&obd_remote_mutex);
}

/* A blob not yet OPENed on connection gen, if any. NOTE: caller holds obd_remote_mutex. */
struct obd_blob *__obd_blob_unopened(u32 gen)
{
	struct obd_blob *b;

	lockdep_assert_held(&obd_remote_mutex);
	list_for_each_entry(b, &obd_blobs, list)
		if (b->open_gen != gen)
			return b;
	return NULL;
}

/* NOTE: caller holds obd_remote_mutex. */
struct obd_blob *__obd_blob_by_id(u64 id)
{
	struct obd_blob *b;

	lockdep_assert_held(&obd_remote_mutex);
	list_for_each_entry(b, &obd_blobs, list)
		if (b->id == id)
			return b;
	return NULL;
}

/* Module exit: dm core refuses to unload while a device exists. */
void obd_blob_exit(void)
{
	WARN_ON(!list_empty(&obd_blobs));
}
