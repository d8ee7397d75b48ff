// SPDX-License-Identifier: GPL-2.0-only
/*
 * Per-blob state and the ring.
 *
 * Three bitmaps per blob, one bit per granule:
 *   mem      the bytes are in the cache file (page cache): reads may be
 *            answered from it, DONEs name such ranges
 *   dirty    written since the last fdatasync was submitted
 *   syncing  covered by the fdatasync in flight; after its CQE those bits
 *            go to the .meta (cache_entry_mark) and the .meta is synced
 * A refetch clears all three over its range, so a late fsync CQE cannot
 * mark bytes that were declared bad in the meantime.
 *
 * Ring ops own their buffer (or borrow the fetch's, which outlives them)
 * from submit until their CQE; short writes and -EAGAIN are resubmitted.
 *
 * A blob holds its cache file open; its .meta only while it is used (the
 * bits of a batch, a clear, the complete flag) and until that change's
 * fdatasync, which goes through the ring like the data's: the event loop
 * never waits for a .meta sync (cache_entry.defer_sync).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "fetchd.h"

/*----- bitmaps ---------------------------------------------------------------*/
uint64_t granule_of(uint64_t off)
{
	return off >> OBD_GRANULE_SHIFT;
}

/* Granules touched by [off, off + len), clipped to the blob. */
uint64_t granules_in(const struct blob *b, uint64_t off, uint64_t len)
{
	uint64_t end = off + len > b->size ? b->size : off + len;

	if (end <= off)
		return 0;
	return OBD_DIV_UP(end, OBD_GRANULE_SIZE) - granule_of(off);
}

uint64_t bits_set_count(uint64_t *w, uint64_t first, uint64_t n)
{
	uint64_t g, added = 0;

	for (g = first; g < first + n; g++) {
		uint64_t m = 1ull << (g % 64);

		if (!(w[g / 64] & m)) {
			w[g / 64] |= m;
			added++;
		}
	}
	return added;
}

void bits_clear(uint64_t *w, uint64_t first, uint64_t n)
{
	uint64_t g;

	for (g = first; g < first + n; g++)
		w[g / 64] &= ~(1ull << (g % 64));
}

static uint64_t bits_clear_count(uint64_t *w, uint64_t first, uint64_t n)
{
	uint64_t g, gone = 0;

	for (g = first; g < first + n; g++) {
		uint64_t m = 1ull << (g % 64);

		if (w[g / 64] & m) {
			w[g / 64] &= ~m;
			gone++;
		}
	}
	return gone;
}

bool bits_all(const uint64_t *w, uint64_t first, uint64_t n)
{
	uint64_t g;

	for (g = first; g < first + n; g++)
		if (!(w[g / 64] & (1ull << (g % 64))))
			return false;
	return true;
}

static uint64_t bits_popcount(const uint64_t *w, uint64_t words)
{
	uint64_t i, n = 0;

	for (i = 0; i < words; i++)
		n += (uint64_t)__builtin_popcountll(w[i]);
	return n;
}

static bool bits_any(const uint64_t *w, uint64_t words)
{
	uint64_t i;

	for (i = 0; i < words; i++)
		if (w[i])
			return true;
	return false;
}

static uint64_t bitmap_words(const struct blob *b)
{
	return OBD_DIV_UP(b->ngranules, 64);
}

/* A blob short of fds, or a .meta locked by obd: how soon to look again. */
#define FETCHD_RETRY_MS		200

static void meta_sync_start(struct fetchd *d, struct blob *b, bool sets_complete);

/*----- blobs -----------------------------------------------------------------*/
struct blob *blob_find(struct fetchd *d, uint64_t id)
{
	struct list *p, *t;

	list_for_each_safe(p, t, &d->blobs) {
		struct blob *b = container_of(p, struct blob, node);

		if (b->id == id)
			return b;
	}
	return NULL;
}

bool blob_mem_present(const struct blob *b, uint64_t off, uint64_t len)
{
	return b->opened && bits_all(b->mem, granule_of(off), granules_in(b, off, len));
}

void blob_set_broken(struct blob *b, const char *why)
{
	b->broken = true;
	snprintf(b->broken_reason, sizeof(b->broken_reason), "%s", why);
	pr_err("blob %llu (%s): cache entry unusable, its reads fail with EIO: %s",
	       (unsigned long long)b->id, b->path, why);
}

/*
 * The entry from disk: the durable bits are what is in the page cache.
 * It must be the very file the kernel has open: an entry removed (evicted,
 * pruned) and made again at the same path after the table loaded is
 * another file, and bytes written there would never reach the device.
 */
static void blob_load_entry(struct fetchd *d, struct blob *b, uint64_t ino, uint32_t dev)
{
	char err[512], ubuf[OBD_CACHE_URL_MAX];
	struct stat st;
	int ret;

	ret = cache_entry_open_existing(&b->ce, b->path, b->size, b->digest, err, sizeof(err));
	if (ret == -EMFILE || ret == -ENFILE || ret == -ENOMEM) {
		/* short of fds (or memory) for now: not the entry's fault, tried again */
		b->load_retry = true;
		if (!d->retry_due_ms)
			d->retry_due_ms = now_ms() + FETCHD_RETRY_MS;
		pr_warn("blob %llu (%s): opening its cache entry: %s; trying again",
			(unsigned long long)b->id, b->path, err);
		return;
	}
	b->load_retry = false;
	if (ret) {
		blob_set_broken(b, err);
		return;
	}
	b->opened = true;
	/* the bitmap is in memory: the .meta is opened again when it changes */
	b->ce.defer_sync = true;
	close(b->ce.meta_fd);
	b->ce.meta_fd = -1;
	if (fstat(b->ce.fd, &st) < 0 || (uint64_t)st.st_ino != ino || (uint32_t)st.st_dev != dev) {
		snprintf(err, sizeof(err),
			 "the file at this path is not the one the kernel opened (inode %llu, device 0x%x; the kernel has %llu, 0x%x): the entry was removed and made again; detach and attach the image again",
			 (unsigned long long)st.st_ino, (unsigned int)st.st_dev,
			 (unsigned long long)ino, dev);
		blob_set_broken(b, err);
		return;
	}
	memcpy(b->mem, b->ce.bits, bitmap_words(b) * 8);
	b->nmem = bits_popcount(b->mem, bitmap_words(b));
	snprintf(b->url, sizeof(b->url), "%s", b->ce.info.url);
	/* verified before (by us, or the background download): not again */
	if (b->ce.info.flags & OBD_CACHE_F_COMPLETE) {
		b->verified = b->complete = true;
		if (b->nmem != b->ngranules)
			pr_warn("blob %llu (%s): marked complete but %llu of %llu granules present",
				(unsigned long long)b->id, b->path, (unsigned long long)b->nmem,
				(unsigned long long)b->ngranules);
	}
	if (!b->url[0]) {
		blob_set_broken(b, "its .meta names no URL");
		return;
	}
	/* the decompressed stream of a gzip layer: its index and compressed blob (gunzip.c) */
	if ((b->ce.info.flags & OBD_CACHE_F_GUNZIP) && gunzip_attach(d, b))
		return;
	/* every byte there but never checked (obd filled it, or a daemon stopped first) */
	if (!b->verified && b->nmem == b->ngranules) {
		b->last_miss_ms = now_ms();	/* its reader is about to start: after the quiet time */
		verify_maybe_start(d, b);
	}
	pr_info("blob %llu: %s, %llu bytes, %llu/%llu granules present, from %s",
		(unsigned long long)b->id, b->path, (unsigned long long)b->size,
		(unsigned long long)b->nmem, (unsigned long long)b->ngranules,
		url_redact(b->url, ubuf, sizeof(ubuf)));
}

/*
 * The kernel OPENs an entry the daemon already holds for a gunzip entry
 * (its compressed blob): one blob object for one entry (two would each
 * write their own bitmap words into the .meta), now the kernel's.
 */
static bool blob_adopt(struct fetchd *d, uint64_t id, uint64_t size, const uint8_t *digest,
		       const char *path, uint64_t ino, uint32_t dev)
{
	struct list *p, *t;

	list_for_each_safe(p, t, &d->blobs) {
		struct blob *b = container_of(p, struct blob, node);

		if (!b->internal || b->closing || strcmp(b->path, path))
			continue;
		if (b->size != size || memcmp(b->digest, digest, OBD_SHA256_LEN) || b->ino != ino ||
		    b->dev != dev)
			return false;	/* not the same file: the usual checks say why */
		pr_info("blob %llu: %s, held for a gunzip entry as %llu, is the kernel's now",
			(unsigned long long)id, path, (unsigned long long)b->id);
		b->id = id;
		b->internal = false;
		return true;
	}
	return false;
}

/*
 * The fields every blob object starts with, listed on d->blobs; false if its
 * bitmaps could not be allocated (the caller says so and drops it).
 */
static bool blob_init(struct fetchd *d, struct blob *b, uint64_t size, const uint8_t *digest,
		      const char *path, uint64_t ino, uint32_t dev)
{
	b->size = size;
	b->ino = ino;
	b->dev = dev;
	memcpy(b->digest, digest, OBD_SHA256_LEN);
	snprintf(b->path, sizeof(b->path), "%s", path);
	b->ngranules = OBD_DIV_UP(size, OBD_GRANULE_SIZE);
	list_init(&b->flist);
	list_init(&b->auth_wait);
	b->mem = calloc(bitmap_words(b), 8);
	b->dirty = calloc(bitmap_words(b), 8);
	b->syncing = calloc(bitmap_words(b), 8);
	list_add_tail(&b->node, &d->blobs);
	return b->mem && b->dirty && b->syncing;
}

void blob_open(struct fetchd *d, uint64_t id, uint64_t size, const uint8_t *digest,
	       const char *path, uint64_t ino, uint32_t dev)
{
	struct blob *b = blob_find(d, id);

	if (!b && blob_adopt(d, id, size, digest, path, ino, dev))
		return;
	if (b) {
		if (b->size == size && !memcmp(b->digest, digest, OBD_SHA256_LEN) &&
		    !strcmp(b->path, path)) {
			b->closing = false;
			download_blob_opened(d, b);
			return;
		}
		d->st.msgs_bad++;
		pr_err("OPEN of blob %llu (%s): already open as %s; ignored",
		       (unsigned long long)id, path, b->path);
		return;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		goto out_nomem;
	b->id = id;
	if (!blob_init(d, b, size, digest, path, ino, dev)) {
		blob_set_broken(b, "out of memory for its bitmaps");
		return;
	}
	blob_load_entry(d, b, ino, dev);
	download_blob_opened(d, b);
	return;

out_nomem:
	/* without a blob object its READs are answered as unknown: EINVAL */
	pr_err("OPEN of blob %llu (%s): out of memory", (unsigned long long)id, path);
}

struct blob *blob_open_internal(struct fetchd *d, const char *path, uint64_t size,
				const uint8_t *digest, const char *url, char *err, size_t errlen)
{
	static uint64_t next_id = 1;
	struct cache_entry ce;
	struct stat st;
	struct blob *b;
	int ret;

	/* made if absent, checked (size, digest, origin) if present, as obd does */
	ret = cache_entry_open(&ce, path, size, digest, url, err, errlen);
	if (ret)
		return NULL;
	ret = fstat(ce.fd, &st);
	cache_entry_close(&ce);
	if (ret < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	/* ids the kernel never uses: they are never sent */
	b->id = (1ull << 63) | next_id++;
	b->internal = true;
	if (!blob_init(d, b, size, digest, path, (uint64_t)st.st_ino, (uint32_t)st.st_dev)) {
		snprintf(err, errlen, "%s: out of memory for its bitmaps", path);
		b->closing = true;
		blob_maybe_free(d, b);
		return NULL;
	}
	blob_load_entry(d, b, b->ino, b->dev);
	if (!b->opened) {
		snprintf(err, errlen, "the compressed entry: %s", b->broken ? b->broken_reason :
			 "it cannot be opened yet");
		b->closing = true;
		blob_maybe_free(d, b);
		return NULL;
	}
	download_blob_opened(d, b);
	return b;
}

/*
 * The .meta, opened again by path for a change: it must still be this
 * entry's. obd replaces an entry (another origin, cache_entry.c) by
 * unlinking the .meta, then the cache file, then making the new cache file
 * before the new .meta: a .meta opened before a check that finds our own
 * cache file (which we hold open, so its inode is not reused) at the path
 * is ours. 0, -ESTALE (the entry was replaced or removed) or -errno.
 */
static int meta_open(struct blob *b)
{
	struct stat at, held;
	int fd, ret = 0;

	if (b->ce.meta_fd >= 0)
		return 0;
	fd = open(b->ce.meta_path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESTALE : -errno;
	if (stat(b->ce.path, &at) < 0)
		ret = errno == ENOENT ? -ESTALE : -errno;
	else if (fstat(b->ce.fd, &held) < 0)
		ret = -errno;
	else if (at.st_ino != held.st_ino || at.st_dev != held.st_dev)
		ret = -ESTALE;
	if (ret) {
		close(fd);
		return ret;
	}
	b->ce.meta_fd = fd;
	return 0;
}

/* Closed once no change needs it (no fdatasync of it in flight). */
static void meta_close_idle(struct blob *b)
{
	if (b->opened && b->ce.meta_fd >= 0 && !b->meta_syncs) {
		close(b->ce.meta_fd);
		b->ce.meta_fd = -1;
	}
}

static bool errno_transient(int ret)
{
	return ret == -EMFILE || ret == -ENFILE || ret == -ENOMEM;
}

static const char *meta_strerror(int ret)
{
	return ret == -ESTALE ? "the entry was removed or replaced at its path" : strerror(-ret);
}

static bool blob_idle(const struct blob *b)
{
	return !b->fetches && !b->ops && !b->sync_inflight && !b->meta_syncs &&
	       !b->verify_inflight && !b->token_inflight && !b->gz_jobs && !b->users;
}

static void blob_free(struct fetchd *d, struct blob *b)
{
	gunzip_release(d, b);
	download_blob_closed(d, b);
	list_del(&b->node);
	verify_abort(b);
	if (b->opened)
		cache_entry_close(&b->ce);
	explicit_bzero(b->authz, sizeof(b->authz));
	free(b->mem);
	free(b->dirty);
	free(b->syncing);
	free(b);
}

void blob_maybe_free(struct fetchd *d, struct blob *b)
{
	if (!b->closing || !blob_idle(b))
		return;
	/* bytes written but not yet durable: one more batch first */
	if (b->opened && bits_any(b->dirty, bitmap_words(b))) {
		cache_sync_due(d, true);
		return;
	}
	pr_debug("blob %llu: closed", (unsigned long long)b->id);
	blob_free(d, b);
}

void blob_close(struct fetchd *d, struct blob *b)
{
	b->closing = true;
	download_blob_closed(d, b);
	/*
	 * the entry's last use, for LRU eviction (evict.c, obd cache: the later
	 * mtime of its two files): the cache file, which we hold
	 */
	if (b->opened && futimens(b->ce.fd, NULL) < 0)
		pr_warn("blob %llu (%s): touching it: %s", (unsigned long long)b->id, b->path,
			strerror(errno));
	blob_maybe_free(d, b);
}

void blob_free_all(struct fetchd *d)
{
	struct list *p;

	/* gunzip entries first: releasing one may free its compressed blob */
	while (!list_empty(&d->blobs)) {
		struct blob *b = container_of(d->blobs.next, struct blob, node);

		for (p = d->blobs.next; p != &d->blobs; p = p->next)
			if (container_of(p, struct blob, node)->gz) {
				b = container_of(p, struct blob, node);
				break;
			}
		b->users = 0;
		blob_free(d, b);
	}
}

int blob_refetch_clear(struct fetchd *d, struct blob *b, uint64_t off, uint64_t len)
{
	uint64_t g = granule_of(off), n = granules_in(b, off, len);
	int ret;

	b->nmem -= bits_clear_count(b->mem, g, n);
	bits_clear(b->dirty, g, n);
	bits_clear(b->syncing, g, n);
	b->gen++;
	b->verified = b->complete = b->want_complete = false;
	/*
	 * Cleared now (page cache), durable at the CQE of the fdatasync: a
	 * crash before it leaves the bits of before the clear, as a crash a
	 * moment earlier would; bits set again later are for bytes written
	 * and synced after the clear.
	 */
	ret = meta_open(b);
	if (!ret)
		ret = cache_entry_clear(&b->ce, off, len);
	if (ret) {
		pr_err("blob %llu (%s): clearing [%llu, +%llu) in its .meta: %s",
		       (unsigned long long)b->id, b->path, (unsigned long long)off,
		       (unsigned long long)len, meta_strerror(ret));
		meta_close_idle(b);
		return ret;
	}
	meta_sync_start(d, b, false);
	return 0;
}

/*----- the ring ----------------------------------------------------------------*/
struct ring_op *ring_op_new(struct fetchd *d, enum ring_op_kind kind, struct blob *b)
{
	struct ring_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->kind = kind;
	op->blob = b;
	list_init(&op->node);
	b->ops++;
	return op;
}

void ring_op_free(struct fetchd *d, struct ring_op *op)
{
	op->blob->ops--;
	free(op);
}

static bool ring_prep(struct fetchd *d, struct ring_op *op)
{
	struct io_uring_sqe *sqe;
	int fd = op->kind == OP_META_FSYNC ? op->blob->ce.meta_fd : op->blob->ce.fd;

	if (d->ring_inflight >= FETCHD_RING_MAX_INFLIGHT)
		return false;
	sqe = io_uring_get_sqe(&d->ring);
	if (!sqe) {
		io_uring_submit(&d->ring);
		sqe = io_uring_get_sqe(&d->ring);
		if (!sqe)
			return false;
	}
	switch (op->kind) {
	case OP_WRITE:
		io_uring_prep_write(sqe, fd, op->buf + op->done, (unsigned int)(op->len - op->done),
				    op->off + op->done);
		break;
	case OP_VERIFY_READ:
		io_uring_prep_read(sqe, fd, op->buf + op->done, (unsigned int)(op->len - op->done),
				   op->off + op->done);
		break;
	case OP_FSYNC:
	case OP_META_FSYNC:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	}
	io_uring_sqe_set_data(sqe, op);
	d->ring_inflight++;
	return true;
}

/* Submit op now, or park it until a slot frees (the CQ must never overflow). */
void ring_queue(struct fetchd *d, struct ring_op *op)
{
	if (!list_empty(&d->ring_wait) || !ring_prep(d, op))
		list_add_tail(&op->node, &d->ring_wait);
}

void ring_flush_wait(struct fetchd *d)
{
	while (!list_empty(&d->ring_wait)) {
		struct ring_op *op = container_of(d->ring_wait.next, struct ring_op, node);

		if (!ring_prep(d, op))
			break;
		list_del(&op->node);
	}
}

bool cache_busy(struct fetchd *d)
{
	return d->ring_inflight || !list_empty(&d->ring_wait);
}

int cache_write_fetch(struct fetchd *d, struct fetch *f)
{
	struct ring_op *op = ring_op_new(d, OP_WRITE, f->blob);

	if (!op)
		return -ENOMEM;
	op->fetch = f;
	op->buf = f->buf;
	op->off = f->off;
	op->len = f->len;
	ring_queue(d, op);
	return 0;
}

/* The body is in the page cache: readers may go, durability follows. */
static void write_complete(struct fetchd *d, struct ring_op *op)
{
	struct blob *b = op->blob;
	uint64_t g = granule_of(op->off), n = granules_in(b, op->off, op->len);

	b->nmem += bits_set_count(b->mem, g, n);
	bits_set_count(b->dirty, g, n);
	if (!d->next_sync_ms)
		d->next_sync_ms = now_ms() + d->cfg.sync_interval_ms;
	d->st.bytes_written += op->len;
	evict_note_written(d, op->len);
	fetch_written(d, op->fetch, 0);
	verify_maybe_start(d, b);
}

static void write_cqe(struct fetchd *d, struct ring_op *op, int res)
{
	struct blob *b = op->blob;

	if (res == -EAGAIN || res == -EINTR) {
		ring_queue(d, op);
		return;
	}
	if (res > 0) {
		op->done += (uint64_t)res;
		if (op->done < op->len) {
			ring_queue(d, op);	/* short: the rest, from where it stopped */
			return;
		}
		write_complete(d, op);
	} else if ((res == -ENOSPC || res == -EDQUOT) && !op->nospace_retried) {
		/*
		 * The disk is full: keep the body, make room at once, write it
		 * again after the pass (once: a disk still full fails it).
		 */
		op->nospace_retried = true;
		list_add_tail(&op->node, &d->nospace_wait);
		evict_now(d);
		return;
	} else {
		/* 0 would mean no progress: an error, not a loop */
		d->st.err_io++;
		if (res == -ENOSPC || res == -EDQUOT) {
			/* still full after a pass: misses fail without a GET for a while */
			d->nospace_until_ms = now_ms() + FETCHD_NOSPACE_MS;
		}
		pr_err("blob %llu (%s): writing [%llu, +%llu): %s", (unsigned long long)op->blob->id,
		       op->blob->path, (unsigned long long)op->off, (unsigned long long)op->len,
		       res ? strerror(-res) : "no progress");
		fetch_written(d, op->fetch, -EIO);
	}
	ring_op_free(d, op);
	blob_maybe_free(d, b);
}

/* After an eviction pass: the writes that met a full disk go again. */
void cache_nospace_retry(struct fetchd *d)
{
	while (!list_empty(&d->nospace_wait)) {
		struct ring_op *op = container_of(d->nospace_wait.next, struct ring_op, node);

		list_del(&op->node);
		list_init(&op->node);
		ring_queue(d, op);
	}
}

/* fn(d, b, off, len) for each run of granules set in syncing (clipped to the
 * blob's size); syncing is cleared after. */
static void syncing_runs(struct fetchd *d, struct blob *b,
			 void (*fn)(struct fetchd *d, struct blob *b, uint64_t off, uint64_t len))
{
	uint64_t g = 0, start, end;

	while (g < b->ngranules) {
		if (!(b->syncing[g / 64] & (1ull << (g % 64)))) {
			g++;
			continue;
		}
		start = g;
		while (g < b->ngranules && (b->syncing[g / 64] & (1ull << (g % 64))))
			g++;
		end = g << OBD_GRANULE_SHIFT;
		if (end > b->size)
			end = b->size;
		fn(d, b, start << OBD_GRANULE_SHIFT, end - (start << OBD_GRANULE_SHIFT));
	}
	memset(b->syncing, 0, bitmap_words(b) * 8);
}

static void mark_run(struct fetchd *d, struct blob *b, uint64_t off, uint64_t len)
{
	int ret = cache_entry_mark(&b->ce, off, len);

	if (ret)
		pr_err("blob %llu (%s): marking granules %llu..%llu: %s",
		       (unsigned long long)b->id, b->path,
		       (unsigned long long)(off >> OBD_GRANULE_SHIFT),
		       (unsigned long long)((off + len - 1) >> OBD_GRANULE_SHIFT), strerror(-ret));
}

/* Runs of set bits in syncing -> .meta, then one fdatasync of the .meta. */
static void sync_mark(struct fetchd *d, struct blob *b)
{
	syncing_runs(d, b, mark_run);
}

/*
 * A .meta change is durable: the complete flag's (of the blob as it was
 * when it was written: not if a clear came since) is now true; after the
 * bits of a batch the flag may follow. The .meta closes when unused.
 */
static void meta_synced(struct fetchd *d, struct blob *b, bool sets_complete, uint64_t gen,
			int res)
{
	if (res < 0)
		pr_err("blob %llu (%s): syncing .meta: %s", (unsigned long long)b->id, b->path,
		       strerror(-res));
	else if (sets_complete && gen == b->gen && b->verified) {
		b->complete = true;
		pr_info("blob %llu (%s): marked complete", (unsigned long long)b->id, b->path);
		gunzip_compressed_complete(d, b);
	} else if (!sets_complete)
		cache_try_complete(d, b);
	meta_close_idle(b);
}

/* The .meta's fdatasync, through the ring like the data's. */
static void meta_sync_start(struct fetchd *d, struct blob *b, bool sets_complete)
{
	struct ring_op *op = ring_op_new(d, OP_META_FSYNC, b);

	if (!op) {
		/* out of memory: the slow way, once */
		meta_synced(d, b, sets_complete, b->gen, cache_entry_sync_meta(&b->ce));
		return;
	}
	op->sets_complete = sets_complete;
	op->gen = b->gen;
	b->meta_syncs++;
	ring_queue(d, op);
}

static void meta_fsync_cqe(struct fetchd *d, struct ring_op *op, int res)
{
	struct blob *b = op->blob;

	if (res == -EAGAIN || res == -EINTR) {
		ring_queue(d, op);
		return;
	}
	b->meta_syncs--;
	d->st.fsyncs++;
	meta_synced(d, b, op->sets_complete, op->gen, res);
	ring_op_free(d, op);
	blob_maybe_free(d, b);
}

/* Each run of granules set in syncing: chan_take_back; syncing is cleared. */
static void take_back_syncing(struct fetchd *d, struct blob *b)
{
	syncing_runs(d, b, chan_take_back);
}

static void fsync_cqe(struct fetchd *d, struct ring_op *op, int res)
{
	struct blob *b = op->blob;
	uint64_t i;
	int ret;

	b->sync_inflight = false;
	if (res == -EAGAIN || res == -EINTR) {
		b->sync_inflight = true;
		ring_queue(d, op);
		return;
	}
	d->st.fsyncs++;
	if (res < 0) {
		/* the page cache may have lost them: forget, refetch later */
		d->st.err_io++;
		pr_err("blob %llu (%s): fdatasync: %s; its recent ranges will be fetched again",
		       (unsigned long long)b->id, b->path, strerror(-res));
		for (i = 0; i < bitmap_words(b); i++) {
			b->syncing[i] &= b->mem[i];
			b->nmem -= (uint64_t)__builtin_popcountll(b->syncing[i]);
			b->mem[i] &= ~b->syncing[i];
		}
		/* the kernel has them as present too: take them back (runs of syncing) */
		take_back_syncing(d, b);
		b->gen++;
		b->verified = b->want_complete = false;
	} else if ((ret = meta_open(b))) {
		if (errno_transient(ret)) {
			/* short of fds: the batch's bits go with the next one */
			pr_warn("blob %llu (%s): opening its .meta: %s; its bits are recorded later",
				(unsigned long long)b->id, b->path, strerror(-ret));
			for (i = 0; i < bitmap_words(b); i++)
				b->dirty[i] |= b->syncing[i];
			if (!d->next_sync_ms)
				d->next_sync_ms = now_ms() + d->cfg.sync_interval_ms;
		} else {
			pr_err("blob %llu (%s): recording the bits of written ranges: %s",
			       (unsigned long long)b->id, b->path, meta_strerror(ret));
		}
		memset(b->syncing, 0, bitmap_words(b) * 8);
	} else {
		sync_mark(d, b);
		meta_sync_start(d, b, false);
	}
	ring_op_free(d, op);
	blob_maybe_free(d, b);
}

void cache_try_complete(struct fetchd *d, struct blob *b)
{
	char err[512];
	int ret;

	if (!b->want_complete || !b->verified || b->complete || b->sync_inflight ||
	    b->meta_syncs || b->nmem != b->ngranules || bits_any(b->dirty, bitmap_words(b)) ||
	    bits_any(b->syncing, bitmap_words(b)))
		return;
	/* every bit durable: the flag can never stand for bytes a crash lost */
	b->want_complete = false;
	ret = meta_open(b);
	if (errno_transient(ret)) {
		b->want_complete = true;
		if (!d->retry_due_ms)
			d->retry_due_ms = now_ms() + FETCHD_RETRY_MS;
		return;
	}
	if (ret) {
		pr_err("blob %llu: marking it complete: %s", (unsigned long long)b->id,
		       meta_strerror(ret));
		return;
	}
	/* the header written here, durable (and said) at its fdatasync's CQE */
	ret = cache_entry_set_complete(&b->ce, err, sizeof(err));
	if (ret == -EWOULDBLOCK) {
		meta_close_idle(b);
		/* obd holds the .meta's lock: never wait for it in the loop */
		b->want_complete = true;
		if (!d->retry_due_ms)
			d->retry_due_ms = now_ms() + FETCHD_RETRY_MS;
		pr_debug("blob %llu: .meta locked by another process; marking it complete later",
			 (unsigned long long)b->id);
		return;
	}
	if (ret) {
		pr_err("blob %llu: marking it complete: %s", (unsigned long long)b->id, err);
		meta_close_idle(b);
		return;
	}
	meta_sync_start(d, b, true);
}

/* Blobs short of fds and completions a lock held up: once more. */
int64_t cache_retry_tick(struct fetchd *d)
{
	struct list *p, *t;

	if (!d->retry_due_ms || now_ms() < d->retry_due_ms)
		return d->retry_due_ms;
	d->retry_due_ms = 0;
	list_for_each_safe(p, t, &d->blobs) {
		struct blob *b = container_of(p, struct blob, node);

		if (b->load_retry && !b->closing) {
			blob_load_entry(d, b, b->ino, b->dev);
			if (b->opened)
				download_blob_opened(d, b);
		} else if (b->want_complete)
			cache_try_complete(d, b);
	}
	return d->retry_due_ms;
}

/* A READ of a blob whose entry could not be opened yet: try now. */
bool blob_usable(struct fetchd *d, struct blob *b)
{
	if (b->load_retry) {
		blob_load_entry(d, b, b->ino, b->dev);
		if (b->opened)
			download_blob_opened(d, b);
	}
	return b->opened && !b->broken;
}

static void sync_start(struct fetchd *d, struct blob *b)
{
	struct ring_op *op;
	uint64_t i;

	op = ring_op_new(d, OP_FSYNC, b);
	if (!op) {
		pr_err("blob %llu: out of memory for an fsync; retrying", (unsigned long long)b->id);
		d->next_sync_ms = now_ms() + d->cfg.sync_interval_ms;
		return;
	}
	for (i = 0; i < bitmap_words(b); i++) {
		b->syncing[i] |= b->dirty[i];
		b->dirty[i] = 0;
	}
	b->sync_inflight = true;
	ring_queue(d, op);
}

void cache_sync_due(struct fetchd *d, bool force)
{
	struct list *p, *t;
	bool again = false;

	if (!force && (!d->next_sync_ms || now_ms() < d->next_sync_ms))
		return;
	d->next_sync_ms = 0;
	list_for_each_safe(p, t, &d->blobs) {
		struct blob *b = container_of(p, struct blob, node);

		if (!b->opened || !bits_any(b->dirty, bitmap_words(b)))
			continue;
		if (b->sync_inflight) {
			again = true;	/* next batch, after this one */
			continue;
		}
		sync_start(d, b);
	}
	if (again)
		d->next_sync_ms = now_ms() + d->cfg.sync_interval_ms;
}

/* At exit, outside the loop: blocking is fine now. */
void cache_final_sync(struct fetchd *d)
{
	struct list *p, *t;
	uint64_t i;
	int ret;

	list_for_each_safe(p, t, &d->blobs) {
		struct blob *b = container_of(p, struct blob, node);

		if (!b->opened || !bits_any(b->dirty, bitmap_words(b)))
			continue;
		if (fdatasync(b->ce.fd) < 0) {
			pr_err("blob %llu (%s): fdatasync: %s", (unsigned long long)b->id, b->path,
			       strerror(errno));
			continue;
		}
		for (i = 0; i < bitmap_words(b); i++) {
			b->syncing[i] |= b->dirty[i];
			b->dirty[i] = 0;
		}
		ret = meta_open(b);
		if (ret) {
			memset(b->syncing, 0, bitmap_words(b) * 8);
			pr_err("blob %llu (%s): recording the bits of written ranges: %s",
			       (unsigned long long)b->id, b->path, meta_strerror(ret));
			continue;
		}
		sync_mark(d, b);
		ret = cache_entry_sync_meta(&b->ce);
		if (ret)
			pr_err("blob %llu (%s): syncing .meta: %s", (unsigned long long)b->id,
			       b->path, strerror(-ret));
	}
}

void cache_reap(struct fetchd *d)
{
	struct io_uring_cqe *cqe;
	unsigned int budget = 1024;

	while (budget-- && io_uring_peek_cqe(&d->ring, &cqe) == 0) {
		struct ring_op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&d->ring, cqe);
		d->ring_inflight--;
		switch (op->kind) {
		case OP_WRITE:
			write_cqe(d, op, res);
			break;
		case OP_FSYNC:
			fsync_cqe(d, op, res);
			break;
		case OP_VERIFY_READ:
			verify_read_done(d, op, res);
			break;
		case OP_META_FSYNC:
			meta_fsync_cqe(d, op, res);
			break;
		}
	}
}
