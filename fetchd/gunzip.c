// SPDX-License-Identifier: GPL-2.0-only
/*
 * Gunzip entries (gzipCacheConfig; ../shared/spec/turbo-oci.md 3.3 and
 * option D of section 7): the decompressed tar stream of a gzip layer,
 * served to the kernel as an ordinary remote blob and filled lazily by
 * inflating from the nearest access point of the layer's gzip index.
 *
 * The entry: <gzipCacheConfig.cacheDir>/sha256:<hex of the COMPRESSED
 * blob>, its .meta with OBD_CACHE_F_GUNZIP, blob_size = the uncompressed
 * size, digest and url = the compressed blob's; beside it <entry>.gzindex,
 * a byte copy of the layer's gzip.meta (loaded and checked by
 * lib/user/gzindex.c, the one parser of that format).
 *
 * The compressed bytes come through the ordinary blob cache: the entry
 * <cacheConfig.cacheDir>/sha256:<hex> (obd attach makes it; when it is
 * absent, this file makes it, of the size the index's CRC-checked header
 * names, gzip_file_size: no HEAD to the registry), held as a blob of its
 * own that the kernel never sees (blob.internal: no HAVE or INVALIDATE for
 * it), fetched by the existing fetches (same origins, auth, retries,
 * deadlines), downloaded in the background and sha256-checked as any blob.
 *
 * A miss: the READ is widened to gzipCacheConfig.refillSize units; each
 * unit not present is one job: decode from the access point at or below
 * its start (one point earlier when that point's window was never checked
 * by decoding across it) to the first access point at or past its end
 * (the stream's end after the last one), so every decoded byte is followed
 * by a checked point: lib/user/gzindex.c's obd_gzindex_decode_checked
 * compares the decoder's position and its last 32 KiB of output with
 * every point it crosses. The compressed bytes of that span are fetched
 * into the compressed entry first; the decode and the write of the whole
 * granules decoded run in a small pool of threads (GZ_THREADS, a bounded
 * queue: the loop never blocks); the loop then sets the bits (durable as
 * the blob cache's: data fdatasync, then the .meta bits) and answers. A
 * failed check or inflate error fails the READs with EIO, logged with the
 * layer's digest; nothing is marked present.
 *
 * Completion: once the compressed entry is complete (every byte, sha256
 * verified), one whole-stream inflate (zlib checks the gzip trailer's
 * CRC32 and ISIZE; the size must be blob_size) compares every granule of
 * the entry with the stream, writes those absent or different, and only
 * then is OBD_CACHE_F_COMPLETE set (cache.c, after the bits are durable).
 * A trailer mismatch invalidates the entry (bits cleared, taken back from
 * the kernel) and breaks it: its reads fail with EIO.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "fetchd.h"
#include "env_user.h"
#include "gzindex.h"

#define GZ_THREADS	2		/* inflate threads */
#define GZ_QUEUE_MAX	8		/* jobs handed to them at once; the rest wait in the loop */
#define GZ_JOB_MAX_OUT	(256ull << 20)	/* one decode's output: an index this sparse is refused */

struct gunzip {
	struct blob *cb;		/* the compressed blob (ours or the kernel's) */
	struct obd_file_io idx;		/* <entry>.gzindex */
	struct obd_gzindex gi;
	uint8_t *checked;		/* per entry: its window was checked by decoding across it */
	struct list jobs;		/* struct gz_job.node: refills in flight, by unit */
	bool completing;		/* the whole-stream pass is queued or running */
	char layer[OBD_DIGEST_STR_LEN + 1];	/* "sha256:<hex>" of the compressed blob */
};

struct gz_wait {
	struct list node;
	struct req *r;
};

enum gz_job_state { J_FETCH, J_PENDING, J_POOL };

struct gz_job {
	struct list node;		/* gunzip.jobs */
	struct list qnode;		/* pool queue / pending / done */
	struct blob *b;			/* the gunzip blob (b->gz_jobs counts us) */
	bool whole;			/* the completion pass, not a refill */
	enum gz_job_state state;
	uint64_t us, ue;		/* the unit */
	uint64_t first, last;		/* entries decoded from / to (last == n: the stream's end) */
	uint64_t cs, ce;		/* compressed range needed, refill aligned */
	uint64_t w0, w1;		/* what the decode writes */
	uint64_t cgen;			/* the compressed blob's gen when handed to the pool */
	uint64_t *present;		/* whole: the entry's bits when it started (the worker's copy) */
	unsigned int waits;		/* compressed fetches not yet in */
	struct list waiters;		/* struct gz_wait */
	int status;
	/* filled by the worker */
	int fd, cfd;			/* gunzip entry, compressed entry */
	uint64_t csize, bsize;
	uint64_t inflated, mismatched, first_mismatch;
	char err[640];
};

struct gzpool {
	pthread_t th[GZ_THREADS];
	unsigned int nth;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct list queue;		/* handed to the threads */
	struct list done;		/* back from them */
	unsigned int inpool;		/* queued + running + done not yet reaped */
	bool stop;
	int efd, slot;
	struct list pending;		/* waiting for room in the queue (loop only) */
};

static uint64_t align_down(uint64_t v, uint64_t a)
{
	return v / a * a;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/*----- the worker --------------------------------------------------------*/
static int job_refill(struct gz_job *j, const struct gunzip *g)
{
	struct obd_err oe = { "" };
	struct obd_file_io gz;
	uint64_t base = g->gi.e[j->first].de_pos;
	uint64_t len = (j->last < g->gi.n ? g->gi.e[j->last].de_pos : g->gi.usize) - base;
	uint8_t *out;
	int rc;

	if (len > GZ_JOB_MAX_OUT) {
		snprintf(j->err, sizeof(j->err), "gzip index entries %llu..%llu span %llu bytes of output (at most %llu decoded at once)",
			 (unsigned long long)j->first, (unsigned long long)j->last,
			 (unsigned long long)len, GZ_JOB_MAX_OUT);
		return -EFBIG;
	}
	rc = obd_file_io_from_fd(&gz, j->cfd, g->cb->path, &oe);
	if (rc) {
		snprintf(j->err, sizeof(j->err), "%s", oe.msg);
		return rc;
	}
	out = malloc(len ? len : 1);
	if (!out) {
		obd_file_io_close(&gz);
		snprintf(j->err, sizeof(j->err), "out of memory for %llu bytes", (unsigned long long)len);
		return -ENOMEM;
	}
	rc = obd_gzindex_decode_checked(&g->gi, &gz.io, j->first, j->last, out, len, &oe);
	if (rc)
		snprintf(j->err, sizeof(j->err), "%s", oe.msg);
	else
		j->inflated = len;
	if (!rc && j->w1 > j->w0) {
		rc = obd_pwrite_all(j->fd, out + (j->w0 - base), j->w1 - j->w0, j->w0);
		if (rc)
			snprintf(j->err, sizeof(j->err), "writing [%llu, %llu) of the entry: %s",
				 (unsigned long long)j->w0, (unsigned long long)j->w1, strerror(-rc));
	}
	free(out);
	obd_file_io_close(&gz);
	return rc;
}

/* The whole-stream pass: every granule made equal to the stream. */
struct whole_ctx {
	struct gz_job *j;
	uint8_t *stage, *disk;		/* one block of the stream, the file's bytes there */
	uint64_t boff, blen;
};

#define GZ_WHOLE_BLOCK	(1u << 20)

static int whole_flush(struct whole_ctx *w)
{
	struct gz_job *j = w->j;
	uint64_t g;
	int rc;

	if (!w->blen)
		return 0;
	rc = obd_pread_all(j->fd, w->disk, w->blen, w->boff);
	if (rc)
		return rc;
	for (g = 0; g < w->blen; g += OBD_GRANULE_SIZE) {
		uint64_t n = w->blen - g < OBD_GRANULE_SIZE ? w->blen - g : OBD_GRANULE_SIZE;

		if (!memcmp(w->disk + g, w->stage + g, n))
			continue;
		if (bits_all(j->present, granule_of(w->boff + g), 1)) {
			if (!j->mismatched++)
				j->first_mismatch = w->boff + g;
		}
		rc = obd_pwrite_all(j->fd, w->stage + g, n, w->boff + g);
		if (rc)
			return rc;
	}
	w->boff += w->blen;
	w->blen = 0;
	return 0;
}

static int whole_out(void *ctx, u64 off, const u8 *buf, size_t len)
{
	struct whole_ctx *w = ctx;
	int rc;

	while (len) {
		size_t n = GZ_WHOLE_BLOCK - w->blen < len ? GZ_WHOLE_BLOCK - w->blen : len;

		memcpy(w->stage + w->blen, buf, n);
		w->blen += n;
		w->j->inflated += n;
		buf += n;
		len -= n;
		if (w->blen == GZ_WHOLE_BLOCK) {
			rc = whole_flush(w);
			if (rc)
				return rc;
		}
	}
	(void)off;
	return 0;
}

static int job_whole(struct gz_job *j, const struct gunzip *g)
{
	struct whole_ctx w = { .j = j };
	struct obd_err oe = { "" };
	struct obd_file_io gz;
	int rc;

	rc = obd_file_io_from_fd(&gz, j->cfd, g->cb->path, &oe);
	if (rc) {
		snprintf(j->err, sizeof(j->err), "%s", oe.msg);
		return rc;
	}
	w.stage = malloc(GZ_WHOLE_BLOCK);
	w.disk = malloc(GZ_WHOLE_BLOCK);
	rc = -ENOMEM;
	if (w.stage && w.disk) {
		rc = obd_gzindex_inflate_all(&gz.io, j->bsize, whole_out, &w, &oe);
		if (rc)
			snprintf(j->err, sizeof(j->err), "%s", oe.msg[0] ? oe.msg : strerror(-rc));
		else if ((rc = whole_flush(&w)))
			snprintf(j->err, sizeof(j->err), "writing the entry: %s", strerror(-rc));
	}
	free(w.stage);
	free(w.disk);
	obd_file_io_close(&gz);
	return rc;
}

static void *worker(void *arg)
{
	struct fetchd *d = arg;
	struct gzpool *p = d->gzp;
	uint64_t one = 1;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct gz_job *j;

		while (!p->stop && list_empty(&p->queue))
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stop)
			break;
		j = container_of(p->queue.next, struct gz_job, qnode);
		list_del(&j->qnode);
		pthread_mutex_unlock(&p->mu);
		/* the job, its blob and its gunzip stay put while it is in the pool */
		j->status = j->whole ? job_whole(j, j->b->gz) : job_refill(j, j->b->gz);
		pthread_mutex_lock(&p->mu);
		list_add_tail(&j->qnode, &p->done);
		if (write(p->efd, &one, sizeof(one)) < 0) {
			/* an eventfd write cannot fail short of overflow */
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/*----- the loop side -------------------------------------------------------*/
static void pool_submit(struct fetchd *d, struct gz_job *j)
{
	struct gzpool *p = d->gzp;

	if (p->inpool >= GZ_QUEUE_MAX) {
		j->state = J_PENDING;
		list_add_tail(&j->qnode, &p->pending);
		return;
	}
	j->state = J_POOL;
	j->cgen = j->b->gz->cb->gen;
	j->fd = j->b->ce.fd;
	j->cfd = j->b->gz->cb->ce.fd;
	j->csize = j->b->gz->cb->size;
	j->bsize = j->b->size;
	p->inpool++;
	pthread_mutex_lock(&p->mu);
	list_add_tail(&j->qnode, &p->queue);
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void job_free(struct fetchd *d, struct gz_job *j)
{
	struct blob *b = j->b;

	list_del(&j->node);
	b->gz_jobs--;
	free(j->present);
	free(j);
	blob_maybe_free(d, b);
}

/* Every waiting READ gets the job's outcome; err 0: [w0, w1) ⊇ its unit is present. */
static void job_answer(struct fetchd *d, struct gz_job *j, int err)
{
	struct list *p, *t;

	list_for_each_safe(p, t, &j->waiters) {
		struct gz_wait *w = container_of(p, struct gz_wait, node);
		struct req *r = w->r;

		list_del(&w->node);
		free(w);
		if (err && !r->status)
			r->status = err;
		if (!--r->waits)
			req_complete(d, r);
	}
}

static void job_fail(struct fetchd *d, struct gz_job *j, int err, const char *why)
{
	struct blob *b = j->b;

	if (err != FETCHD_HAND_BACK) {
		d->st.gz_errors++;
		pr_err("gunzip entry %s (layer %s): refill [%llu, %llu) failed: %s",
		       b->path, b->gz->layer, (unsigned long long)j->us, (unsigned long long)j->ue, why);
	}
	job_answer(d, j, err);
	job_free(d, j);
}

static void job_compressed_ready(struct fetchd *d, struct gz_job *j);

/* A compressed fetch a job waited for is in (or failed). */
static void on_compressed(struct fetchd *d, void *owner, int err)
{
	struct gz_job *j = owner;

	if (err && !j->status)
		j->status = err;
	if (--j->waits)
		return;
	if (j->status) {
		char why[96];

		snprintf(why, sizeof(why), "fetching the compressed bytes [%llu, %llu): %s",
			 (unsigned long long)j->cs, (unsigned long long)j->ce,
			 j->status == FETCHD_HAND_BACK ? "daemon stopping" : strerror(-j->status));
		return job_fail(d, j, j->status == FETCHD_HAND_BACK ? FETCHD_HAND_BACK : j->status, why);
	}
	job_compressed_ready(d, j);
}

/* Make [cs, ce) of the compressed blob present, then to the pool. */
static void job_compressed_ready(struct fetchd *d, struct gz_job *j)
{
	struct blob *cb = j->b->gz->cb;
	int ret;

	if (d->stopping)
		return job_fail(d, j, d->chan_is_sock ? -EIO : FETCHD_HAND_BACK, "daemon stopping");
	if (!blob_usable(d, cb))
		return job_fail(d, j, -EIO, cb->broken ? cb->broken_reason :
				"the compressed entry cannot be opened yet");
	if (blob_mem_present(cb, j->cs, j->ce - j->cs))
		return pool_submit(d, j);
	j->state = J_FETCH;
	j->waits++;	/* held while attaching, as fetch_read does */
	ret = fetch_cover_for(d, cb, j->cs, j->ce, on_compressed, j, &j->waits);
	if (ret && !j->status)
		j->status = ret == -EBUSY ? -EIO : ret;
	on_compressed(d, j, 0);
}

static struct gz_job *job_find(struct gunzip *g, uint64_t us)
{
	struct list *p;

	for (p = g->jobs.next; p != &g->jobs; p = p->next) {
		struct gz_job *j = container_of(p, struct gz_job, node);

		if (!j->whole && j->us == us)
			return j;
	}
	return NULL;
}

void gunzip_plan(const struct obd_gzindex *gi, const uint8_t *checked, uint64_t us,
		 uint64_t ue, uint64_t csize, uint64_t R, struct gz_plan *p)
{
	uint64_t k = obd_gzindex_seek(gi, us), cs, ce;

	/* an access point never checked is checked by decoding across it first */
	p->first = k && !checked[k] ? k - 1 : k;
	p->last = obd_gzindex_seek(gi, ue - 1) + 1;
	while (p->last < gi->n && gi->e[p->last].de_pos < ue)
		p->last++;
	/* what is written: from the first point whose window is trusted, whole granules */
	p->w0 = align_up(checked[p->first] ? gi->e[p->first].de_pos : gi->e[k].de_pos,
			 OBD_GRANULE_SIZE);
	if (p->w0 > us)
		p->w0 = us;
	p->w1 = p->last < gi->n ? align_down(gi->e[p->last].de_pos, OBD_GRANULE_SIZE) : gi->usize;
	cs = gi->e[p->first].en_pos - (gi->e[p->first].bits ? 1 : 0);
	/* a few bytes past the end point: whatever the decoder looks ahead at */
	ce = p->last < gi->n ? gi->e[p->last].en_pos + 16 : gi->gzip_size;
	p->cs = align_down(cs, R);
	p->ce = align_up(ce, R) < csize ? align_up(ce, R) : csize;
}

static struct gz_job *job_new(struct fetchd *d, struct blob *b, uint64_t us, uint64_t ue)
{
	struct gunzip *g = b->gz;
	struct gz_job *j = calloc(1, sizeof(*j));
	struct gz_plan p;

	if (!j)
		return NULL;
	gunzip_plan(&g->gi, g->checked, us, ue, g->cb->size, d->cfg.refill_size, &p);
	j->b = b;
	j->us = us;
	j->ue = ue;
	j->first = p.first;
	j->last = p.last;
	j->w0 = p.w0;
	j->w1 = p.w1;
	j->cs = p.cs;
	j->ce = p.ce;
	list_init(&j->waiters);
	list_add_tail(&j->node, &g->jobs);
	b->gz_jobs++;
	d->st.gz_refills++;
	return j;
}

static int job_wait(struct gz_job *j, struct req *r)
{
	struct gz_wait *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->r = r;
	list_add_tail(&w->node, &j->waiters);
	r->waits++;
	return 0;
}

void gunzip_read(struct fetchd *d, struct req *r)
{
	struct blob *b = r->blob;
	uint64_t R = d->cfg.gz_refill_size, end = r->off + r->len, u, ue;
	int ret = 0;

	r->done_off = align_down(r->off, R);
	r->done_end = align_up(end, R) < b->size ? align_up(end, R) : b->size;
	r->waits++;
	for (u = r->done_off; u < r->done_end && !ret; u = ue) {
		struct gz_job *j;

		ue = u + R < b->size ? u + R : b->size;
		if (blob_mem_present(b, u, ue - u))
			continue;
		j = job_find(b->gz, u);
		if (!j) {
			j = job_new(d, b, u, ue);
			if (!j) {
				ret = -ENOMEM;
				break;
			}
			ret = job_wait(j, r);
			job_compressed_ready(d, j);
			continue;
		}
		ret = job_wait(j, r);
	}
	if (ret) {
		pr_err("gunzip entry %s: READ %llu: out of memory", b->path, (unsigned long long)r->id);
		r->status = ret;
	}
	if (!--r->waits)
		req_complete(d, r);
}

/* A refill is decoded and written: its bits, its READs. */
static void refill_done(struct fetchd *d, struct gz_job *j)
{
	struct blob *b = j->b;
	struct gunzip *g = b->gz;
	uint64_t i, gfirst, n;

	d->st.gz_inflated_bytes += j->inflated;
	/* the gzip cache's disk is full: a pass at once (the READ still fails) */
	if (j->status == -ENOSPC || j->status == -EDQUOT)
		evict_now(d);
	if (j->status)
		return job_fail(d, j, -EIO, j->err);
	/* the compressed bytes were taken back meanwhile (a failed sha256): again */
	if (j->cgen != g->cb->gen) {
		pr_info("gunzip entry %s: the compressed bytes changed during a refill; decoding again",
			b->path);
		return job_compressed_ready(d, j);
	}
	if (b->broken)
		return job_fail(d, j, -EIO, b->broken_reason);
	for (i = j->first + 1; i <= j->last && i < g->gi.n; i++)
		g->checked[i] = 1;
	if (j->w1 > j->w0) {
		gfirst = granule_of(j->w0);
		n = granules_in(b, j->w0, j->w1 - j->w0);
		b->nmem += bits_set_count(b->mem, gfirst, n);
		bits_set_count(b->dirty, gfirst, n);
		if (!d->next_sync_ms)
			d->next_sync_ms = now_ms() + d->cfg.sync_interval_ms;
		d->st.bytes_written += j->w1 - j->w0;
		evict_note_written_in(d, d->gzev, j->w1 - j->w0);
		/* more than the READs' units was decoded: the kernel may have it all */
		chan_send_have(d, b, j->w0, j->w1 - j->w0);
	}
	job_answer(d, j, 0);
	job_free(d, j);
	gunzip_maybe_complete(d, b);
}

static void whole_done(struct fetchd *d, struct gz_job *j)
{
	struct blob *b = j->b;
	struct gunzip *g = b->gz;
	char why[800];

	d->st.gz_inflated_bytes += j->inflated;
	g->completing = false;
	if (j->status || j->cgen != g->cb->gen) {
		if (!j->status) {
			/* the compressed entry was cleared meanwhile: when it is complete again */
			job_free(d, j);
			return;
		}
		d->st.gz_errors++;
		snprintf(why, sizeof(why), "the whole-stream check failed: %s", j->err);
		job_free(d, j);
		return gunzip_invalidate(d, b, why);
	}
	if (j->mismatched) {
		d->st.gz_errors++;
		pr_err("gunzip entry %s (layer %s): %llu granules present differed from the stream (first at %llu): rewritten, taken back from the kernel",
		       b->path, g->layer, (unsigned long long)j->mismatched,
		       (unsigned long long)j->first_mismatch);
		chan_take_back(d, b, 0, b->size);
	}
	b->nmem += bits_set_count(b->mem, 0, b->ngranules);
	bits_set_count(b->dirty, 0, b->ngranules);
	evict_note_written_in(d, d->gzev, b->size);
	if (!d->next_sync_ms)
		d->next_sync_ms = now_ms() + d->cfg.sync_interval_ms;
	chan_send_have(d, b, 0, b->size);
	d->st.gz_completed++;
	pr_info("gunzip entry %s (layer %s): the whole stream decoded, trailer CRC32 and ISIZE match, %llu bytes: marking it complete",
		b->path, g->layer, (unsigned long long)b->size);
	b->verified = true;
	b->want_complete = true;
	job_free(d, j);
	cache_try_complete(d, b);
}

static void on_pool_done(struct fetchd *d, void *ctx, int fd, uint32_t events)
{
	struct gzpool *p = ctx;
	struct list done;
	uint64_t v;

	(void)events;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return;
	list_init(&done);
	pthread_mutex_lock(&p->mu);
	while (!list_empty(&p->done)) {
		struct list *n = p->done.next;

		list_del(n);
		list_add_tail(n, &done);
	}
	pthread_mutex_unlock(&p->mu);
	while (!list_empty(&done)) {
		struct gz_job *j = container_of(done.next, struct gz_job, qnode);

		list_del(&j->qnode);
		p->inpool--;
		if (j->whole)
			whole_done(d, j);
		else
			refill_done(d, j);
	}
	/* room in the queue: the jobs waiting for it */
	while (p->inpool < GZ_QUEUE_MAX && !list_empty(&p->pending)) {
		struct gz_job *j = container_of(p->pending.next, struct gz_job, qnode);

		list_del(&j->qnode);
		if (d->stopping)
			job_fail(d, j, d->chan_is_sock ? -EIO : FETCHD_HAND_BACK, "daemon stopping");
		else
			job_compressed_ready(d, j);
	}
}

/* The compressed entry is complete and verified: the whole-stream pass, once. */
void gunzip_maybe_complete(struct fetchd *d, struct blob *b)
{
	struct gunzip *g = b->gz;
	struct gz_job *j;

	/* verified: the pass went well and the flag is on its way (a REFETCH clears it) */
	if (!g || !d->gzp || g->completing || b->verified || b->complete || b->broken ||
	    !g->cb->complete || d->stopping)
		return;
	j = calloc(1, sizeof(*j));
	if (!j)
		return;
	j->present = malloc(OBD_DIV_UP(b->ngranules, 64) * 8);
	if (!j->present) {
		free(j);
		return;
	}
	memcpy(j->present, b->mem, OBD_DIV_UP(b->ngranules, 64) * 8);
	j->b = b;
	j->whole = true;
	list_init(&j->waiters);
	list_add_tail(&j->node, &g->jobs);
	b->gz_jobs++;
	g->completing = true;
	pool_submit(d, j);
}

void gunzip_compressed_complete(struct fetchd *d, struct blob *cb)
{
	struct list *p, *t;

	list_for_each_safe(p, t, &d->blobs) {
		struct blob *b = container_of(p, struct blob, node);

		if (b->gz && b->gz->cb == cb)
			gunzip_maybe_complete(d, b);
	}
}

/*
 * The refill checks cannot see every corruption of the compressed bytes (a
 * changed literal far from the next access point decodes in step); the
 * sha256 of the complete compressed blob can. When it fails, everything
 * decoded from those bytes is dropped: the bits cleared (durably) and the
 * range taken back from the kernel; it is decoded again from the refetched
 * bytes at the next miss.
 */
void gunzip_compressed_bad(struct fetchd *d, struct blob *cb)
{
	struct list *p, *t;

	list_for_each_safe(p, t, &d->blobs) {
		struct blob *b = container_of(p, struct blob, node);

		if (!b->gz || b->gz->cb != cb || !b->opened || b->broken)
			continue;
		pr_err("gunzip entry %s (layer %s): its compressed blob failed its sha256 check: what was decoded from it is cleared and taken back",
		       b->path, b->gz->layer);
		blob_refetch_clear(d, b, 0, b->size);
		chan_take_back(d, b, 0, b->size);
	}
}

void gunzip_invalidate(struct fetchd *d, struct blob *b, const char *why)
{
	pr_err("gunzip entry %s (layer %s): invalidated: %s", b->path, b->gz->layer, why);
	if (b->opened && !b->broken)
		blob_refetch_clear(d, b, 0, b->size);
	chan_take_back(d, b, 0, b->size);
	blob_set_broken(b, why);
}

/*----- attach / release -----------------------------------------------------*/
/* The compressed blob: the kernel's if it has the entry open, else ours. */
static struct blob *compressed_blob(struct fetchd *d, struct blob *b, uint64_t csize,
				    char *err, size_t errlen)
{
	char path[PATH_MAX], digest[OBD_DIGEST_STR_LEN + 1];
	struct list *p, *t;

	obd_digest_format(b->digest, digest);
	if (cache_entry_path(d->cfg.cache_dir, digest, path, sizeof(path))) {
		snprintf(err, errlen, "the compressed entry's path in %.900s is too long", d->cfg.cache_dir);
		return NULL;
	}
	list_for_each_safe(p, t, &d->blobs) {
		struct blob *c = container_of(p, struct blob, node);

		if (!c->gz && !strcmp(c->path, path) && !c->closing && c->opened) {
			if (c->size != csize) {
				snprintf(err, errlen, "the compressed blob %.900s is open with %llu bytes, the gzip index says %llu",
					 path, (unsigned long long)c->size, (unsigned long long)csize);
				return NULL;
			}
			return c;
		}
	}
	return blob_open_internal(d, path, csize, b->digest, b->url, err, errlen);
}

int gunzip_attach(struct fetchd *d, struct blob *b)
{
	char ipath[PATH_MAX + 16], err[1024];
	struct obd_err oe = { "" };
	struct gunzip *g;
	uint64_t csize = 0;
	int rc;

	if (!d->gzp) {
		blob_set_broken(b, "a gunzip entry, and gzipCacheConfig.enable is false");
		return -EINVAL;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		blob_set_broken(b, "out of memory for its gunzip state");
		return -ENOMEM;
	}
	list_init(&g->jobs);
	obd_digest_format(b->digest, g->layer);
	snprintf(ipath, sizeof(ipath), "%s.gzindex", b->path);
	rc = obd_file_io_open(&g->idx, ipath, &oe);
	if (!rc)
		rc = obd_gzindex_gzip_size(&g->idx.io, &csize, &oe);
	if (!rc)
		rc = obd_gzindex_load(&g->idx.io, csize, &g->gi, &oe);
	if (!rc && g->gi.usize != b->size) {
		snprintf(oe.msg, sizeof(oe.msg), "%.100s: uncompress_file_size %llu, the entry's blob_size is %llu",
			 ipath, (unsigned long long)g->gi.usize, (unsigned long long)b->size);
		rc = -EINVAL;
	}
	if (!rc && !(g->checked = calloc(g->gi.n, 1)))
		rc = -ENOMEM;
	if (rc) {
		snprintf(err, sizeof(err), "gzip index: %s", oe.msg[0] ? oe.msg : strerror(-rc));
		goto fail;
	}
	g->checked[0] = 1;	/* nothing before the stream's start: no window to trust */
	g->cb = compressed_blob(d, b, csize, err, sizeof(err));
	if (!g->cb)
		goto fail;
	g->cb->users++;
	b->gz = g;
	pr_info("gunzip entry %s (layer %s): %llu bytes from %llu compressed, %llu access points",
		b->path, g->layer, (unsigned long long)b->size, (unsigned long long)csize,
		(unsigned long long)g->gi.n);
	gunzip_maybe_complete(d, b);
	return 0;
fail:
	obd_gzindex_free(&g->gi);
	if (g->idx.io.read)
		obd_file_io_close(&g->idx);
	free(g->checked);
	free(g);
	blob_set_broken(b, err);
	return -EINVAL;
}

void gunzip_release(struct fetchd *d, struct blob *b)
{
	struct gunzip *g = b->gz;
	struct blob *cb;

	if (!g)
		return;
	b->gz = NULL;
	cb = g->cb;
	obd_gzindex_free(&g->gi);
	obd_file_io_close(&g->idx);
	free(g->checked);
	free(g);
	cb->users--;
	/* a use of the compressed entry too, for LRU eviction (blob_close does it for the kernel's) */
	if (cb->opened && futimens(cb->ce.fd, NULL) < 0)
		pr_warn("%s: touching it: %s", cb->path, strerror(errno));
	/* ours, or the kernel's that it CLOSEd meanwhile (blob_adopt): freed when idle */
	if (cb->internal)
		cb->closing = true;
	if (cb->closing)
		blob_maybe_free(d, cb);
}

/*----- the pool ---------------------------------------------------------------*/
int gunzip_init(struct fetchd *d)
{
	struct gzpool *p;
	unsigned int i;
	int ret;

	if (!d->cfg.gz_enable)
		return 0;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	list_init(&p->queue);
	list_init(&p->done);
	list_init(&p->pending);
	p->slot = -1;
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	d->gzp = p;
	if (p->efd < 0) {
		pr_err("gunzip: eventfd: %s", strerror(errno));
		return -1;
	}
	p->slot = loop_watch_add(d, p->efd, EPOLLIN, on_pool_done, p);
	if (p->slot < 0) {
		pr_err("gunzip: watching its eventfd: %s", strerror(-p->slot));
		return -1;
	}
	for (i = 0; i < GZ_THREADS; i++) {
		ret = pthread_create(&p->th[i], NULL, worker, d);
		if (ret) {
			pr_err("gunzip: starting its threads: %s", strerror(ret));
			return -1;
		}
		p->nth++;
	}
	pr_info("gunzip entries in %s: refill %llu bytes, %u inflate threads", d->cfg.gz_dir,
		(unsigned long long)d->cfg.gz_refill_size, GZ_THREADS);
	return 0;
}

/* Jobs in the threads' hands: the loop waits for them before it ends. */
bool gunzip_busy(struct fetchd *d)
{
	return d->gzp && d->gzp->inpool;
}

void gunzip_fini(struct fetchd *d)
{
	struct gzpool *p = d->gzp;
	unsigned int i;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nth; i++)
		pthread_join(p->th[i], NULL);
	if (p->slot >= 0)
		loop_watch_del(d, p->slot);
	if (p->efd >= 0)
		close(p->efd);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
	d->gzp = NULL;
}
