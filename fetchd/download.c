// SPDX-License-Identifier: GPL-2.0-only
/*
 * Background download (download{} in overlaybd.json, or the policy an
 * image's config.v1.json put in the entry's .meta; spec 5.4 and 6.6).
 *
 * Every blob the kernel has OPENed gets a job when the policy enables it:
 * after delay + rand() % delayExtra seconds its ranges that are not
 * present are fetched in blockSize pieces, throttled to maxMBps, one blob
 * at a time (the reference downloads layers sequentially), through the
 * background queue: a miss always takes a transfer slot first, and
 * background fetches never hold more than FETCHD_BG_MAX_ACTIVE. Each piece
 * written is announced to the kernel (HAVE, fetch.c), so the device stops
 * missing there without asking. When everything is present verify.c checks
 * the sha256; a match makes cache.c mark the entry complete once every bit
 * is durable; a mismatch has cleared the entry and the job starts again,
 * up to tryCnt attempts, each logged. Failed fetches (registry down) count
 * as a failed attempt too, after which the job waits before retrying.
 *
 * Nothing here blocks or loops without bound: a tick issues at most
 * FETCHD_BG_MAX_ACTIVE fetches and scans the bitmap from where it stopped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fetchd.h"

#define DL_RETRY_MIN_MS		1000	/* after a failed attempt: the policy's delay, */
#define DL_RETRY_MAX_MS		60000	/* within these bounds */
#define DL_RESCAN_MS		200	/* gaps left to fetches of misses: look again */
#define DL_IDLE_MS		1000	/* nothing to do: check again at most this often */

struct dl_job {
	struct list node;		/* download.jobs, in OPEN order */
	struct blob *b;			/* NULL once the blob closed (fetches may still run) */
	struct fetchd_download pol;
	int64_t start_ms;		/* not before */
	uint64_t next_off;		/* where the scan goes on */
	unsigned int attempt;		/* 1 .. pol.try_cnt */
	unsigned int inflight;		/* background fetches */
	bool failed_fetch;		/* this attempt had a failed fetch */
	bool done;			/* verified, or given up */
};

struct download {
	struct list jobs;
	int64_t due_ms;			/* next tick with work; 0 = now */
	double tokens;			/* throttle: bytes that may start now */
	int64_t tokens_ms;
};

static void job_free(struct dl_job *j)
{
	list_del(&j->node);
	free(j);
}

int download_init(struct fetchd *d)
{
	d->dl = calloc(1, sizeof(*d->dl));
	if (!d->dl) {
		pr_err("out of memory");
		return -1;
	}
	list_init(&d->dl->jobs);
	d->dl->tokens_ms = now_ms();
	return 0;
}

void download_fini(struct fetchd *d)
{
	struct list *p, *t;

	if (!d->dl)
		return;
	/* fetches are gone by now (the loop ended): every job can go */
	list_for_each_safe(p, t, &d->dl->jobs) {
		struct dl_job *j = container_of(p, struct dl_job, node);

		if (j->b)
			j->b->dl = NULL;
		job_free(j);
	}
	free(d->dl);
	d->dl = NULL;
}

/* The policy for b: the image's (in the .meta) if it gave one, else ours. */
static struct fetchd_download blob_policy(const struct fetchd *d, const struct blob *b)
{
	const struct obd_cache_dl *m = &b->ce.info.dl;
	struct fetchd_download p = d->cfg.download;

	if (m->flags & OBD_CACHE_DL_SET) {
		p.enable = m->flags & OBD_CACHE_DL_ENABLE;
		p.delay_s = m->delay;
		p.delay_extra_s = m->delay_extra;
		p.max_mbps = m->max_mbps;
		p.try_cnt = m->try_cnt;
		p.block_size = m->block_size;
	}
	return p;
}

void download_blob_opened(struct fetchd *d, struct blob *b)
{
	struct dl_job *j;
	int64_t delay;

	/* a gunzip entry is never fetched as such: its compressed blob is (gunzip.c) */
	if (!d->dl || b->dl || !b->opened || b->broken || b->complete || b->gz)
		return;
	j = calloc(1, sizeof(*j));
	if (!j) {
		pr_err("blob %llu: out of memory for its background download",
		       (unsigned long long)b->id);
		return;
	}
	j->pol = blob_policy(d, b);
	if (!j->pol.enable) {
		free(j);
		return;
	}
	delay = (int64_t)j->pol.delay_s * 1000;
	if (j->pol.delay_extra_s)
		delay += (random() % j->pol.delay_extra_s) * 1000;
	j->b = b;
	j->start_ms = now_ms() + delay;
	j->attempt = 1;
	b->dl = j;
	list_add_tail(&j->node, &d->dl->jobs);
	d->dl->due_ms = 0;
	pr_info("blob %llu (%s): background download in %lld s (%u MiB/s max, %u-byte pieces, %u tries)",
		(unsigned long long)b->id, b->path, (long long)(delay / 1000), j->pol.max_mbps,
		j->pol.block_size, j->pol.try_cnt);
}

void download_blob_closed(struct fetchd *d, struct blob *b)
{
	struct dl_job *j = b->dl;

	if (!j)
		return;
	b->dl = NULL;
	j->b = NULL;
	j->done = true;
	if (!j->inflight)
		job_free(j);
}

static void job_give_up(struct fetchd *d, struct dl_job *j, const char *why)
{
	struct blob *b = j->b;

	j->done = true;
	d->st.dl_blobs_failed++;
	pr_err("blob %llu (%s): background download given up after %u attempt%s: %s",
	       (unsigned long long)b->id, b->path, j->attempt, j->attempt == 1 ? "" : "s", why);
}

/* This attempt failed: the next one later, or none. */
static void job_attempt_failed(struct fetchd *d, struct dl_job *j, const char *why)
{
	if (j->attempt >= j->pol.try_cnt)
		return job_give_up(d, j, why);
	pr_warn("blob %llu (%s): background download attempt %u of %u failed: %s; trying again",
		(unsigned long long)j->b->id, j->b->path, j->attempt, j->pol.try_cnt, why);
	j->attempt++;
	j->failed_fetch = false;
	j->next_off = 0;
	j->start_ms = (int64_t)j->pol.delay_s * 1000;
	if (j->start_ms < DL_RETRY_MIN_MS)
		j->start_ms = DL_RETRY_MIN_MS;
	if (j->start_ms > DL_RETRY_MAX_MS)
		j->start_ms = DL_RETRY_MAX_MS;
	j->start_ms += now_ms();
}

void download_blob_verified(struct fetchd *d, struct blob *b, bool ok)
{
	struct dl_job *j = b->dl;

	if (!j || j->done)
		return;
	d->dl->due_ms = 0;
	if (ok) {
		j->done = true;
		d->st.dl_blobs_done++;
		pr_info("blob %llu (%s): background download done (attempt %u)",
			(unsigned long long)b->id, b->path, j->attempt);
		return;
	}
	d->st.dl_attempts_bad++;
	/* verify.c cleared the entry: the whole blob comes again */
	job_attempt_failed(d, j, "sha256 mismatch");
}

void download_blob_unverified(struct fetchd *d, struct blob *b, const char *why)
{
	struct dl_job *j = b->dl;

	if (!j || j->done)
		return;
	d->dl->due_ms = 0;
	d->st.dl_attempts_bad++;
	/* the check is tried again by verify.c; the job counts it, and ends */
	job_attempt_failed(d, j, why);
}

static void on_piece(struct fetchd *d, struct fetch *f, int err)
{
	struct dl_job *j = f->owner;

	j->inflight--;
	d->dl->due_ms = 0;
	if (!err)
		d->st.dl_bytes += f->len;
	else if (j->b && !j->done)
		j->failed_fetch = true;
	if (!j->b && !j->inflight)
		job_free(j);
}

/* maxMBps as a token bucket of at most one second's worth (or one piece). */
static bool throttle_ok(struct fetchd *d, const struct dl_job *j, int64_t now, int64_t *due)
{
	struct download *dl = d->dl;
	double rate = (double)j->pol.max_mbps * 1048576.0 / 1000.0;	/* bytes per ms */
	double cap;

	if (!j->pol.max_mbps)
		return true;
	cap = rate * 1000.0 > j->pol.block_size ? rate * 1000.0 : j->pol.block_size;
	dl->tokens += (double)(now - dl->tokens_ms) * rate;
	dl->tokens_ms = now;
	if (dl->tokens > cap)
		dl->tokens = cap;
	if (dl->tokens >= 0)
		return true;
	*due = now + (int64_t)(-dl->tokens / rate) + 1;
	return false;
}

/* Issue what the job may issue now; returns the next due ms (0: none). */
static int64_t job_step(struct fetchd *d, struct dl_job *j, int64_t now)
{
	struct blob *b = j->b;
	int64_t due = 0;
	uint64_t next;
	struct fetch *f;

	if (b->nmem == b->ngranules) {
		/* all there: verify.c runs (or ran) and tells us */
		if (b->verified && !j->done)
			download_blob_verified(d, b, true);
		return j->done ? 0 : now + DL_IDLE_MS;
	}
	if (j->failed_fetch && !j->inflight) {
		job_attempt_failed(d, j, "a range could not be fetched");
		return j->done ? 0 : j->start_ms;
	}
	while (j->inflight < FETCHD_BG_MAX_ACTIVE && !j->failed_fetch) {
		if (!throttle_ok(d, j, now, &due))
			return due;
		if (j->next_off >= b->size) {
			/* the scan reached the end; what is left is in flight: look again */
			j->next_off = 0;
			return now + DL_RESCAN_MS;
		}
		f = fetch_background(d, b, j->next_off, j->pol.block_size, on_piece, j, &next);
		j->next_off = next;
		if (!f) {
			if (d->nfetches >= FETCHD_MAX_FETCHES)
				return now + DL_RESCAN_MS;
			continue;
		}
		j->inflight++;
		if (j->pol.max_mbps)
			d->dl->tokens -= (double)f->len;
	}
	return now + DL_IDLE_MS;
}

static void update_gauges(struct fetchd *d)
{
	struct list *p, *t;

	d->g.dl_queued = d->g.dl_total_bytes = d->g.dl_present_bytes = 0;
	list_for_each_safe(p, t, &d->dl->jobs) {
		struct dl_job *j = container_of(p, struct dl_job, node);
		uint64_t have;

		if (j->done || !j->b)
			continue;
		have = j->b->nmem << OBD_GRANULE_SHIFT;
		d->g.dl_queued++;
		d->g.dl_total_bytes += j->b->size;
		d->g.dl_present_bytes += have < j->b->size ? have : j->b->size;
	}
}

int64_t download_tick(struct fetchd *d)
{
	struct download *dl = d->dl;
	int64_t now = now_ms(), due = 0;
	struct list *p, *t;

	if (!dl || list_empty(&dl->jobs))
		return 0;
	if (dl->due_ms && now < dl->due_ms)
		return dl->due_ms;
	/* sequential: the first job not done whose time has come runs */
	list_for_each_safe(p, t, &dl->jobs) {
		struct dl_job *j = container_of(p, struct dl_job, node);

		if (j->done || !j->b || j->b->broken || j->b->closing)
			continue;
		if (now < j->start_ms) {
			if (!due || j->start_ms < due)
				due = j->start_ms;
			continue;
		}
		due = job_step(d, j, now);
		break;
	}
	update_gauges(d);
	dl->due_ms = due ? due : now + DL_IDLE_MS * 10;
	return dl->due_ms;
}
