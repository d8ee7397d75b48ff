// SPDX-License-Identifier: GPL-2.0-only
/*
 * Misses -> fetches. A READ's range is widened to refillSize boundaries
 * (spec 6.5: [align_down(off, R), align_up(end, R)) clipped to the blob),
 * trimmed at both ends of granules already present, and covered by
 * fetches: ones already in flight that overlap it (the request waits on
 * them too) and new ones for the gaps, at most fetch_chunk bytes each.
 * Fetches run at most maxConcurrent at once, FIFO beyond that, within a
 * memory budget for their buffers. A fetch ends in exactly one of: its
 * body written (every waiting request is told the range), or failed
 * (every waiting request gets the error).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetchd.h"

static uint64_t align_down(uint64_t v, uint64_t a)
{
	return v & ~(a - 1);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static bool granule_present(const struct blob *b, uint64_t off)
{
	uint64_t g = granule_of(off);

	return b->mem[g / 64] & (1ull << (g % 64));
}

static void fetch_ahead(struct fetchd *d, struct blob *b);

static void fetch_free(struct fetchd *d, struct fetch *f)
{
	struct blob *b = f->blob;

	if (f->ahead)
		b->ahead_inflight--;
	reg_abort(d, f);
	list_del(&f->node);
	list_del(&f->all);
	list_del(&f->bnode);
	if (f->buf) {
		free(f->buf);
		d->mem_in_use -= f->len;
	}
	fetch_release_slot(d, f);
	d->nfetches--;
	b->fetches--;
	free(f);
	blob_maybe_free(d, b);
}

void fetch_release_slot(struct fetchd *d, struct fetch *f)
{
	if (!f->has_slot)
		return;
	f->has_slot = false;
	d->nactive--;
	d->nbg_active -= f->background && !f->prefetch;
	d->npf_active -= f->prefetch;
}

/* Tell every waiting request; err 0 means [f->off, +f->len) is present. */
static void fetch_finish(struct fetchd *d, struct fetch *f, int err)
{
	struct list *p, *t;

	pr_debug("blob %llu: fetch [%llu, +%llu)%s %s after %lld ms (at %lld)",
		 (unsigned long long)f->blob->id, (unsigned long long)f->off,
		 (unsigned long long)f->len, f->background ? " background" : "",
		 err ? "failed" : "written", (long long)(now_ms() - f->t_start_ms),
		 (long long)now_ms());
	/* nobody's DONE will carry this range: tell the kernel it is there */
	if (!err && list_empty(&f->attached))
		chan_send_have(d, f->blob, f->off, f->len);
	if (f->on_done)
		f->on_done(d, f, err);
	/* a readahead GET is in: the next part of the window goes out (fetch_ahead) */
	if (f->ahead) {
		f->ahead = false;
		f->blob->ahead_inflight--;
		if (!err && !f->blob->closing)
			fetch_ahead(d, f->blob);
	}

	/* done with: a request that reads again (req_complete's retake) must not join it */
	list_del(&f->bnode);
	list_for_each_safe(p, t, &f->attached) {
		struct attach *a = container_of(p, struct attach, node);
		struct req *r = a->req;

		list_del(&a->node);
		if (!r) {
			void (*fn)(struct fetchd *, void *, int) = a->fn;
			void *owner = a->owner;

			free(a);
			fn(d, owner, err);
			continue;
		}
		free(a);
		if (err && !r->status)
			r->status = err;
		if (!err) {
			if (f->off < r->done_off)
				r->done_off = f->off;
			if (f->off + f->len > r->done_end)
				r->done_end = f->off + f->len;
		}
		if (!--r->waits)
			req_complete(d, r);
	}
	fetch_free(d, f);
}

void fetch_fail(struct fetchd *d, struct fetch *f, int err)
{
	fetch_finish(d, f, err);
}

void fetch_written(struct fetchd *d, struct fetch *f, int err)
{
	fetch_finish(d, f, err);
}

static char *fetch_what(const struct fetch *f, char *out, size_t outlen)
{
	char ubuf[OBD_CACHE_URL_MAX];

	snprintf(out, outlen, "blob %llu: GET %s bytes %llu-%llu", (unsigned long long)f->blob->id,
		 url_redact(f->cur_url[0] ? f->cur_url : f->blob->url, ubuf, sizeof(ubuf)),
		 (unsigned long long)f->off, (unsigned long long)(f->off + f->len - 1));
	return out;
}

/* The one line a failed fetch gets: URL, status, curl error, attempts. */
static void fetch_log_failure(const struct fetch *f, const char *why)
{
	char what[OBD_CACHE_URL_MAX + 128];
	const char *cerr = f->last_err[0] ? f->last_err : curl_easy_strerror(f->last_curl);

	/* a TLS refusal stays in the line even when a later attempt saw only a reset */
	bool tls_earlier = f->tls_err[0] && strcmp(f->tls_err, cerr);

	pr_err("%s failed: %s (HTTP %ld, curl: %s%s%s) after %u attempt%s",
	       fetch_what(f, what, sizeof(what)), why, f->last_status,
	       f->last_curl ? cerr : "ok", tls_earlier ? "; earlier attempt: " : "",
	       tls_earlier ? f->tls_err : "", f->attempts, f->attempts == 1 ? "" : "s");
}

void fetch_fail_logged(struct fetchd *d, struct fetch *f, int err, const char *why)
{
	fetch_log_failure(f, why);
	fetch_fail(d, f, err);
}

/* Exponential backoff with jitter, inside maxRetries and the deadline. */
void fetch_retry_or_fail(struct fetchd *d, struct fetch *f, int err, const char *why)
{
	int64_t delay = FETCHD_BACKOFF_MIN_MS, now = now_ms();
	char what[OBD_CACHE_URL_MAX + 128];
	unsigned int i;
	bool told;

	if (f->attempts > d->cfg.max_retries || d->stopping)
		return fetch_fail_logged(d, f, err, why);
	for (i = 1; i < f->attempts && delay < FETCHD_BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > FETCHD_BACKOFF_MAX_MS)
		delay = FETCHD_BACKOFF_MAX_MS;
	delay = delay / 2 + random() % (delay / 2 + 1);
	/* a 429 or 503 saying when to come back is heeded, never sooner */
	told = f->retry_after_ms > delay && (f->last_status == 429 || f->last_status == 503);
	if (told)
		delay = f->retry_after_ms;
	if (now + delay >= f->deadline_ms) {
		d->st.err_timeout++;
		return fetch_fail_logged(d, f, err, told ?
					 "the server's Retry-After is past requestTimeout" :
					 "requestTimeout reached while retrying");
	}
	d->st.retries++;
	pr_debug("%s: %s (HTTP %ld); retry %u in %lld ms", fetch_what(f, what, sizeof(what)),
		 why, f->last_status, f->attempts, (long long)delay);
	f->state = F_BACKOFF;
	f->due_ms = now + delay;
	list_add_tail(&f->node, &d->backoff);
}

void fetch_backoff_due(struct fetchd *d)
{
	int64_t now = now_ms();
	struct list *p, *t;

	list_for_each_safe(p, t, &d->backoff) {
		struct fetch *f = container_of(p, struct fetch, node);

		if (f->due_ms > now)
			continue;
		list_del(&f->node);
		if (reg_start(d, f))
			fetch_fail(d, f, -EIO);
	}
}

int64_t fetch_next_due(struct fetchd *d)
{
	int64_t due = 0;
	struct list *p, *t;

	list_for_each_safe(p, t, &d->backoff) {
		struct fetch *f = container_of(p, struct fetch, node);

		if (!due || f->due_ms < due)
			due = f->due_ms;
	}
	return due;
}

#define BG_SCAN_MAX	64	/* background fetches looked at per pick */

/*
 * The next queued fetch to start: misses first; background ones only when
 * none waits, the oldest whose class (prefetch, download) has room.
 */
static struct fetch *fetch_next_queued(struct fetchd *d)
{
	bool pf_room = d->npf_active < d->cfg.prefetch_concurrency;
	bool dl_room = d->nbg_active < FETCHD_BG_MAX_ACTIVE;
	struct list *p;
	unsigned int n = 0;

	if (!list_empty(&d->queue))
		return container_of(d->queue.next, struct fetch, node);
	for (p = d->bg_queue.next; p != &d->bg_queue && n < BG_SCAN_MAX; p = p->next, n++) {
		struct fetch *f = container_of(p, struct fetch, node);

		if (f->prefetch ? pf_room : dl_room)
			return f;
	}
	return NULL;
}

/* A miss waits for a queued background fetch: it runs as a miss's now. */
static void fetch_promote(struct fetchd *d, struct fetch *f)
{
	if (!f->background || f->state != F_QUEUED || f->has_slot)
		return;
	list_del(&f->node);
	list_add_tail(&f->node, &d->queue);
	f->background = f->prefetch = false;
	d->st.fetch_promoted++;
}

/* Start queued fetches while there are transfer slots and buffer memory. */
void fetch_pump(struct fetchd *d)
{
	struct fetch *f;

	while (d->nactive < d->cfg.max_concurrent && !d->stopping && (f = fetch_next_queued(d))) {
		if (d->nactive && d->mem_in_use + f->len > FETCHD_MEM_BUDGET)
			break;
		list_del(&f->node);
		/*
		 * Background work (prefetch, download) waits behind the misses by
		 * design, and nobody waits for it: its requestTimeout starts now.
		 */
		if (f->background && !f->attempts)
			f->deadline_ms = now_ms() + (int64_t)d->cfg.request_timeout_s * 1000;
		if (now_ms() >= f->deadline_ms) {
			d->st.err_timeout++;
			fetch_fail_logged(d, f, -EIO, "requestTimeout reached in the queue");
			continue;
		}
		f->buf = malloc(f->len);
		if (!f->buf) {
			fetch_fail_logged(d, f, -ENOMEM, "out of memory for the body");
			continue;
		}
		d->mem_in_use += f->len;
		f->has_slot = true;
		d->nactive++;
		d->nbg_active += f->background && !f->prefetch;
		d->npf_active += f->prefetch;
		if (reg_start(d, f))
			fetch_fail(d, f, -EIO);
	}
}

/*
 * Stop everything not already writing (the ring owns those buffers). With
 * the kernel's device the requests are handed back unanswered: the kernel
 * sends them to the next daemon, so a restart fails no reader. The test
 * stand-in on a socket gets -EIO, one answer per request.
 */
void fetch_abort_all(struct fetchd *d)
{
	int status = d->chan_is_sock ? -EIO : FETCHD_HAND_BACK;
	char what[OBD_CACHE_URL_MAX + 128];
	struct list *p, *t;

	list_for_each_safe(p, t, &d->fetches) {
		struct fetch *f = container_of(p, struct fetch, all);

		if (f->state == F_WRITING)
			continue;
		if (status == FETCHD_HAND_BACK) {
			pr_info("%s: left to the next daemon", fetch_what(f, what, sizeof(what)));
			fetch_fail(d, f, status);
		} else {
			fetch_fail_logged(d, f, status, "daemon stopping");
		}
	}
}

/* Who waits for a fetch: a READ, or (gunzip.c) an owner told through fn. */
struct waiter {
	struct req *r;
	void (*fn)(struct fetchd *d, void *owner, int err);
	void *owner;
	unsigned int *waits;
};

static int attach(struct fetch *f, const struct waiter *w)
{
	struct attach *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->req = w->r;
	a->fn = w->fn;
	a->owner = w->owner;
	list_add_tail(&a->node, &f->attached);
	if (w->r)
		w->r->waits++;
	else
		(*w->waits)++;
	return 0;
}

static struct fetch *fetch_new(struct fetchd *d, struct blob *b, uint64_t off, uint64_t len)
{
	struct fetch *f = calloc(1, sizeof(*f));
	struct list *p;

	if (!f)
		return NULL;
	f->blob = b;
	f->off = off;
	f->len = len;
	f->state = F_QUEUED;
	f->t_start_ms = now_ms();
	f->deadline_ms = f->t_start_ms + (int64_t)d->cfg.request_timeout_s * 1000;
	list_init(&f->attached);
	list_add_tail(&f->node, &d->queue);
	list_add_tail(&f->all, &d->fetches);
	/* keep blob.flist sorted by offset: lookups stop early */
	for (p = b->flist.next; p != &b->flist; p = p->next)
		if (container_of(p, struct fetch, bnode)->off > off)
			break;
	list_add_tail(&f->bnode, p);
	d->nfetches++;
	b->fetches++;
	d->st.fetches++;
	return f;
}

/* A fresh fetch (fetch_new queues it as a miss's) goes behind every miss instead. */
static void fetch_to_background(struct fetchd *d, struct fetch *f, bool prefetch)
{
	list_del(&f->node);
	list_add_tail(&f->node, &d->bg_queue);
	f->background = true;
	f->prefetch = prefetch;
}

/*
 * Cover [cur, end) of b with fetches r waits on (r NULL: readahead, nobody
 * waits). The in-flight fetches of
 * a blob never overlap each other (each new one fills a gap), so one walk
 * over the sorted list does it.
 */
static int cover(struct fetchd *d, struct blob *b, const struct waiter *w, uint64_t cur,
		 uint64_t end, bool prefetch)
{
	struct list *p = b->flist.next;
	struct fetch *f;
	uint64_t gap_end, e;

	while (cur < end) {
		f = NULL;
		for (; p != &b->flist; p = p->next) {
			f = container_of(p, struct fetch, bnode);
			if (f->off + f->len > cur)
				break;
			f = NULL;
		}
		if (f && f->off <= cur) {
			if (w && attach(f, w))
				return -ENOMEM;
			if (w && !prefetch)
				fetch_promote(d, f);
			d->st.fetch_merged += w != NULL;
			cur = f->off + f->len;
			continue;
		}
		/* present granules (an earlier, narrower fetch) are not fetched again */
		if (granule_present(b, cur)) {
			cur = align_down(cur, OBD_GRANULE_SIZE) + OBD_GRANULE_SIZE;
			continue;
		}
		gap_end = f && f->off < end ? f->off : end;
		if (gap_end - cur > d->fetch_chunk)
			gap_end = cur + d->fetch_chunk;
		e = align_down(cur, OBD_GRANULE_SIZE) + OBD_GRANULE_SIZE;
		while (e < gap_end && !granule_present(b, e))
			e += OBD_GRANULE_SIZE;
		if (e < gap_end)
			gap_end = e;
		if (d->nfetches >= 2 * FETCHD_MAX_FETCHES)
			return -EBUSY;
		f = fetch_new(d, b, cur, gap_end - cur);
		if (!f)
			return -ENOMEM;
		if (prefetch)
			fetch_to_background(d, f, true);
		if (!w) {
			d->st.ahead_fetches++;
			f->ahead = true;
			b->ahead_inflight++;
		} else if (attach(f, w))
			return -ENOMEM;
		cur = gap_end;
		p = &f->bnode;
	}
	return 0;
}

int fetch_cover_for(struct fetchd *d, struct blob *b, uint64_t off, uint64_t end,
		    void (*fn)(struct fetchd *d, void *owner, int err), void *owner,
		    unsigned int *waits)
{
	struct waiter w = { .fn = fn, .owner = owner, .waits = waits };

	return cover(d, b, &w, off, end, false);
}

struct fetch *fetch_background(struct fetchd *d, struct blob *b, uint64_t off, uint64_t len,
			       fetch_done_fn fn, void *owner, uint64_t *next_off)
{
	uint64_t end = off + len < b->size ? off + len : b->size, stop;
	struct list *p;
	struct fetch *f;

	while (off < end && granule_present(b, off))
		off += OBD_GRANULE_SIZE;
	*next_off = off < end ? off : end;
	if (off >= end || d->nfetches >= FETCHD_MAX_FETCHES)
		return NULL;
	/* in flight already (a miss got there first): look after it */
	for (p = b->flist.next; p != &b->flist; p = p->next) {
		f = container_of(p, struct fetch, bnode);
		if (f->off <= off && f->off + f->len > off) {
			*next_off = f->off + f->len;
			return NULL;
		}
		if (f->off > off) {
			if (f->off < end)
				end = f->off;
			break;
		}
	}
	stop = off;
	while (stop < end && !granule_present(b, stop))
		stop += OBD_GRANULE_SIZE;
	if (stop > end)
		stop = end;
	f = fetch_new(d, b, off, stop - off);
	if (!f)
		return NULL;
	fetch_to_background(d, f, false);
	f->on_done = fn;
	f->owner = owner;
	*next_off = stop;
	return f;
}

/*
 * The blob's read stream. A read that starts inside the stream's span, or
 * at most a refill unit before it or past what it read or fetched,
 * continues it (the parallel bios of one sequential reader reach us out of
 * order); any other read starts a new one. True if the read continued the
 * stream.
 */
static bool stream_note(struct blob *b, uint64_t off, uint64_t end, uint64_t slack)
{
	if (!b->ahead_end || off + slack < b->run_start || off > b->ahead_end + slack) {
		b->run_start = off;
		b->run_end = end;
		b->ahead_end = end;
		return false;
	}
	if (off < b->run_start)
		b->run_start = off;
	if (end > b->run_end)
		b->run_end = end;
	if (end > b->ahead_end)
		b->ahead_end = end;
	return true;
}

/*
 * Sequential readahead (a cold sequential read: an image copied, a big
 * file read). Once a stream has read FETCHD_RA_MIN_RUN, the window past
 * what it read is fetched too, with nobody waiting, so transfers run back
 * to back instead of one round trip per refill unit, and the kernel's next
 * misses find the bytes present or in flight. The window is twice as long
 * as the stream so far, up to fetchConfig.readaheadMB: reading a file
 * smaller than FETCHD_RA_MIN_RUN fetches nothing past it, and a stream at
 * most triples what it has read. At most FETCHD_RA_INFLIGHT readahead
 * GETs of a stream run at once, the next part of the window going out as
 * each is written: GETs in parallel share the link, so the one the reader
 * waits for next would come in only with the others (and the link would
 * idle once all were in, until the reader's next miss). The window is
 * topped up by at least a chunk (half a small window), so each GET is
 * large. Readahead fetches queue behind the misses already waiting, and
 * only while the fetch table has room.
 */
static void fetch_ahead(struct fetchd *d, struct blob *b)
{
	uint64_t R = d->cfg.refill_size, max = (uint64_t)d->cfg.readahead_mb << 20, win, want, end;
	uint64_t step;

	if (!max || b->run_end - b->run_start < FETCHD_RA_MIN_RUN || d->stopping ||
	    d->nfetches >= FETCHD_MAX_FETCHES || b->ahead_inflight >= FETCHD_RA_INFLIGHT)
		return;
	win = align_up(2 * (b->run_end - b->run_start), R);
	if (win > max)
		win = max;
	want = b->run_end + win < b->size ? b->run_end + win : b->size;
	step = d->fetch_chunk < win / 2 ? d->fetch_chunk : win / 2;
	if (b->ahead_end >= want || (want - b->ahead_end < step && want < b->size))
		return;
	end = b->ahead_end + (FETCHD_RA_INFLIGHT - b->ahead_inflight) * d->fetch_chunk;
	if (end > want)
		end = want;
	/* cover() skips what is present or in flight */
	if (!cover(d, b, NULL, b->ahead_end, end, false))
		b->ahead_end = end;
}

void fetch_read(struct fetchd *d, struct req *r, uint32_t flags)
{
	bool refetch = flags & OBD_READ_F_REFETCH, prefetch = flags & OBD_READ_F_PREFETCH;
	struct blob *b = r->blob;
	uint64_t end = r->off + r->len, R = d->cfg.refill_size, unit, ws, we;
	bool stream = false;
	int ret;

	/* its entry could not be opened yet for want of fds: try now */
	if (!blob_usable(d, b)) {
		pr_err("blob %llu (%s): READ failed: %s", (unsigned long long)b->id, b->path,
		       b->broken ? b->broken_reason : "its cache entry cannot be opened yet");
		r->status = -EIO;
		return req_complete(d, r);
	}
	/* a prefetch is no stream: it neither continues one nor reads ahead; nor is a gunzip entry's READ */
	if (!prefetch) {
		stream = !b->gz && stream_note(b, r->off, end, R);
		b->last_miss_ms = now_ms();
	}
	pr_debug("blob %llu: READ %llu [%llu, +%llu)%s%s at %lld", (unsigned long long)b->id,
		 (unsigned long long)r->id, (unsigned long long)r->off, (unsigned long long)r->len,
		 stream ? " stream" : "", blob_mem_present(b, r->off, r->len) ? " present" : "",
		 (long long)now_ms());
	if (refetch) {
		d->st.reads_refetch++;
		if (blob_refetch_clear(d, b, r->off, r->len)) {
			r->status = -EIO;
			return req_complete(d, r);
		}
	} else if (blob_mem_present(b, r->off, r->len)) {
		d->st.reads_present++;
		r->done_off = r->off;
		r->done_end = end;
		/* a stream reading what readahead brought: keep the window ahead */
		if (stream)
			fetch_ahead(d, b);
		return req_complete(d, r);
	}
	/* the cache disk is full even after an eviction pass: no GET for nothing */
	if (d->nospace_until_ms && now_ms() < d->nospace_until_ms) {
		d->st.err_io++;
		pr_err("blob %llu (%s): READ failed: the cache disk is full", (unsigned long long)b->id,
		       b->path);
		r->status = -EIO;
		return req_complete(d, r);
	}
	if (b->gz) {
		if (prefetch)
			d->st.reads_prefetch++;
		return gunzip_read(d, r);
	}
	/*
	 * Widen to refill units when the read continues a stream (the next
	 * bytes are wanted too); a lone read (a small file, a metadata block)
	 * and a prefetch (a trace names exactly what will be read) get
	 * fetchConfig.isolatedRefillKB: most of a refill unit around them
	 * would be fetched for nothing.
	 */
	unit = (uint64_t)d->cfg.isolated_refill_kb << 10;
	if (stream || !unit || unit > R)
		unit = R;
	ws = align_down(r->off, unit);
	we = align_up(end, unit);
	if (we > b->size)
		we = b->size;
	/* a missing granule inside the request stops both trims */
	while (ws < we && granule_present(b, ws))
		ws += OBD_GRANULE_SIZE;
	while (we > ws && granule_present(b, align_down(we - 1, OBD_GRANULE_SIZE)))
		we = align_down(we - 1, OBD_GRANULE_SIZE);
	r->done_off = ws < r->off ? ws : r->off;
	r->done_end = we > end ? we : end;
	/* the request waits on one extra "wait" while we attach it, so an
	 * attach failing halfway cannot complete it under our feet */
	r->waits++;
	if (prefetch)
		d->st.reads_prefetch++;
	ret = cover(d, b, &(struct waiter){ .r = r }, ws, we, prefetch);
	if (!ret && !prefetch) {
		if (we > b->ahead_end)
			b->ahead_end = we;
		if (stream)
			fetch_ahead(d, b);
	}
	if (ret) {
		pr_err("blob %llu: READ %llu: %s", (unsigned long long)b->id,
		       (unsigned long long)r->id, ret == -EBUSY ? "too many fetches" : "out of memory");
		r->status = ret == -EBUSY ? -EIO : ret;
	}
	if (!--r->waits)
		req_complete(d, r);
}
