// SPDX-License-Identifier: GPL-2.0-only
/*
 * The miss channel: requests for absent blob ranges, the readers waiting
 * for them, and /dev/overlaybd, through which overlaybd-fetchd reads the
 * requests and answers them (include/obd_uapi.h; the shape of cachefiles'
 * on-demand mode).
 *
 * A reader (a worker serving a bio, or ctr parsing a layer) that needs an
 * absent range makes requests for the absent granule runs no request
 * covers yet, then waits for the one covering the first absent granule:
 * concurrent misses on one range make one request. A request lives in
 * obd_reqs until the daemon answers it. NEW requests wait in obd_queue for
 * the daemon's read(); read moves them to SENT. When the daemon goes away,
 * SENT requests become NEW again and go to the next daemon (failover);
 * readers wait for one at most their device's hold timeout, then EIO.
 * Every wait also has an overall bound (request_timeout): never a hang.
 *
 * Bios do not wait in a thread: a worker that meets an absent range parks
 * the bio on the list of the request covering it (obd_blob_park, the
 * shape of dm-clone's per-region deferred bios) and returns. The answer,
 * a failure, a timeout (obd_reap, a delayed work ticking each second while
 * anything is parked) or the device's suspend (obd_fetch_suspend) takes
 * it off the list and hands it back to its device's worker. Only ctr
 * (parsing a layer) and the upper's read-modify-write of a partial block
 * still wait in obd_req_wait.
 *
 * Everything here is under obd_remote_mutex; the data path only tests
 * presence bits (obd_blob.c), without it.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/poll.h>
#include <linux/uaccess.h>
#include <linux/xarray.h>
#include <linux/jiffies.h>
#include <linux/bitmap.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/device-mapper.h>

#include "obd_kmod.h"
#include "obd_remote.h"
#include "obd_invalidate.h"

#define DM_MSG_PREFIX "overlaybd"

static unsigned int hold_timeout = 30;
module_param(hold_timeout, uint, 0644);
MODULE_PARM_DESC(hold_timeout,
		 "Seconds a reader waits for a fetch daemon to (re)connect before EIO (default 30; table option hold_timeout overrides)");

static unsigned int request_timeout = 300;
module_param(request_timeout, uint, 0644);
MODULE_PARM_DESC(request_timeout,
		 "Seconds a reader waits for one miss at most, daemon or not (default 300)");

/* One request covers at most this many granules (16 MiB). */
#define OBD_REQ_MAX_GRANULES	4096u

enum obd_req_state {
	OBD_REQ_NEW,		/* on obd_queue, for the daemon's next read */
	OBD_REQ_SENT,		/* read by the current daemon */
	OBD_REQ_DONE,		/* answered (or abandoned); out of obd_reqs */
};

struct obd_req {
	struct list_head blob_node;	/* blob->reqs until done */
	struct list_head queue_node;	/* obd_queue while NEW */
	struct obd_blob *blob;		/* holds a blob ref */
	u32 id;
	u32 flags;			/* OBD_READ_F_* */
	bool prefetch;			/* made by obd_blob_prefetch: counted there */
	u64 g0, g1;			/* granules [g0, g1) */
	enum obd_req_state state;
	int status;			/* when DONE */
	unsigned int refs;		/* waiters (parked too), + 1 until DONE */
	struct list_head waiters;	/* parked readers (struct obd_waiter) */
};

struct obd_close {
	struct list_head node;
	u64 blob_id;
};

/* All below: under obd_remote_mutex. */
static DEFINE_XARRAY_ALLOC1(obd_reqs);	/* id -> request not yet DONE */
static u32 obd_req_next;
static LIST_HEAD(obd_queue);		/* NEW requests, oldest first */
static LIST_HEAD(obd_closes);		/* CLOSE messages for the daemon */
static bool obd_connected;
static u32 obd_conn_gen;		/* bumped by every open of the device */
static unsigned long obd_gone_at;	/* jiffies: last daemon gone (or load) */
static bool obd_open_pending;		/* some blob may still need its OPEN */
/* prefetch requests (OBD_READ_F_PREFETCH, made by obd_blob_prefetch) */
static unsigned int obd_prefetch_inflight;
static u64 obd_prefetch_done, obd_prefetch_failed;
#define OBD_PREFETCH_MAX_INFLIGHT	4096u
/* requests a prefetch makes or skips per hold of obd_remote_mutex */
#define OBD_PREFETCH_BATCH		32u

static DECLARE_WAIT_QUEUE_HEAD(obd_poll_wq);	/* the daemon's read/poll */
static unsigned int obd_nparked;		/* parked readers; obd_remote_mutex */
static void obd_reap_work(struct work_struct *work);
static DECLARE_DELAYED_WORK(obd_reap, obd_reap_work);
static void __obd_unpark(struct obd_waiter *w, int status);

bool obd_daemon_connected(void)
{
	return READ_ONCE(obd_connected);
}

unsigned long obd_hold_default(void)
{
	return (unsigned long)READ_ONCE(hold_timeout) * HZ;
}

/*----------------------------------------------------------------
 * Requests
 *--------------------------------------------------------------*/

/* NOTE: caller holds obd_remote_mutex. */
static void __obd_req_put(struct obd_req *req)
{
	struct obd_blob *b = req->blob;

	lockdep_assert_held(&obd_remote_mutex);
	if (--req->refs)
		return;
	kfree(req);
	__obd_blob_put(b);
}

/* Out of the table, waiters woken. NOTE: caller holds obd_remote_mutex. */
static void __obd_req_finish(struct obd_req *req, int status)
{
	lockdep_assert_held(&obd_remote_mutex);
	xa_erase(&obd_reqs, req->id);
	xa_erase(&req->blob->req_by_g0, (unsigned long)req->g0);
	__clear_bit(req->g0, req->blob->req_start);
	list_del(&req->blob_node);
	if (req->state == OBD_REQ_NEW)
		list_del(&req->queue_node);
	req->status = status;
	if (req->prefetch) {
		obd_prefetch_inflight--;
		if (status)
			obd_prefetch_failed++;
		else
			obd_prefetch_done++;
	}
	WRITE_ONCE(req->state, OBD_REQ_DONE);
	wake_up_all(&req->blob->wq);
	/* the parked readers go on; the DONE ref keeps req until the last */
	while (!list_empty(&req->waiters))
		__obd_unpark(list_first_entry(&req->waiters, struct obd_waiter, node),
			     status ? -EIO : 0);
	__obd_req_put(req);
}

/*
 * Requests are allocated GFP_NOIO: the caller may be a worker serving a bio
 * of a device that reclaim could be writing to.
 * NOTE: caller holds obd_remote_mutex.
 */
static struct obd_req *__obd_req_new(struct obd_blob *b, u64 g0, u64 g1, u32 flags)
{
	struct obd_req *req;
	int r;

	req = kzalloc(sizeof(*req), GFP_NOIO);
	if (!req)
		return ERR_PTR(-ENOMEM);
	r = xa_alloc_cyclic(&obd_reqs, &req->id, req, XA_LIMIT(1, U32_MAX), &obd_req_next,
			    GFP_NOIO);
	if (r < 0) {
		kfree(req);
		return ERR_PTR(r);
	}
	r = xa_err(xa_store(&b->req_by_g0, (unsigned long)g0, req, GFP_NOIO));
	if (r) {
		xa_erase(&obd_reqs, req->id);
		kfree(req);
		return ERR_PTR(r);
	}
	__set_bit(g0, b->req_start);
	req->blob = b;
	b->refs++;
	req->g0 = g0;
	req->g1 = g1;
	req->flags = flags;
	req->state = OBD_REQ_NEW;
	req->refs = 1;
	INIT_LIST_HEAD(&req->waiters);
	list_add_tail(&req->blob_node, &b->reqs);
	list_add_tail(&req->queue_node, &obd_queue);
	wake_up_interruptible(&obd_poll_wq);
	return req;
}

/* The last set bit of map in [lo, hi], or -1: at most a few words. */
static s64 obd_last_bit_in(const unsigned long *map, u64 lo, u64 hi)
{
	u64 w = hi / BITS_PER_LONG;
	unsigned long word = map[w] & BITMAP_LAST_WORD_MASK(hi % BITS_PER_LONG + 1);

	for (;;) {
		if (word) {
			u64 bit = w * BITS_PER_LONG + __fls(word);

			return bit >= lo ? (s64)bit : -1;
		}
		if (w * BITS_PER_LONG <= lo)
			return -1;
		word = map[--w];
	}
}

/*
 * The live request covering granule g: live requests never overlap and
 * hold at most OBD_REQ_MAX_GRANULES, so it is the one starting last at or
 * before g, within OBD_REQ_MAX_GRANULES. No walk of the blob's requests.
 * NOTE: caller holds obd_remote_mutex.
 */
static struct obd_req *__obd_req_covering(struct obd_blob *b, u64 g)
{
	u64 lo = g >= OBD_REQ_MAX_GRANULES ? g - OBD_REQ_MAX_GRANULES + 1 : 0;
	struct obd_req *req;
	s64 s;

	s = obd_last_bit_in(b->req_start, lo, g);
	if (s < 0)
		return NULL;
	req = xa_load(&b->req_by_g0, (unsigned long)s);
	return req && g < req->g1 ? req : NULL;
}

/*
 * The end of the run from g (absent, no request covering it) one request
 * asks for: up to g1, at most OBD_REQ_MAX_GRANULES granules, before the
 * next present granule and the next request (requests after g start after
 * it: none covers g).
 * NOTE: caller holds obd_remote_mutex.
 */
static u64 __obd_run_end(struct obd_blob *b, u64 g, u64 g1)
{
	u64 lim = min_t(u64, g1, g + OBD_REQ_MAX_GRANULES);

	lim = find_next_bit(b->req_start, lim, g + 1);
	return find_next_bit(b->present, lim, g + 1);
}

/*
 * A request already made covers part of what a reader asks for: it takes
 * the reader's wishes if the daemon has not read it yet. Else, if the
 * reader asks for a REFETCH and the request went without one, true: the
 * daemon may answer it from its cache, with the very bytes that failed.
 * NOTE: caller holds obd_remote_mutex.
 */
static bool __obd_req_join(struct obd_req *req, u32 flags)
{
	if (req->state == OBD_REQ_NEW) {
		/* a reader waits for it now: not a prefetch any more */
		if (!(flags & OBD_READ_F_PREFETCH))
			req->flags &= ~OBD_READ_F_PREFETCH;
		req->flags |= flags & OBD_READ_F_REFETCH;
		return false;
	}
	return (flags & OBD_READ_F_REFETCH) && !(req->flags & OBD_READ_F_REFETCH);
}

/*
 * Make requests for every absent run of [g0, g1) that no request covers
 * (coalescing), and return the request covering the first absent granule
 * with a waiter ref, NULL if nothing is absent, or an ERR_PTR. *stale: a
 * REFETCH joined a request sent without one (__obd_req_join); its answer
 * does not count as fetching the range again.
 * NOTE: caller holds obd_remote_mutex.
 */
static struct obd_req *__obd_issue(struct obd_blob *b, u64 g0, u64 g1, u32 flags,
				   bool *stale)
{
	struct obd_req *first = NULL, *req;
	u64 g = g0, e;

	lockdep_assert_held(&obd_remote_mutex);
	*stale = false;
	while (g < g1) {
		g = find_next_zero_bit(b->present, g1, g);
		if (g >= g1)
			break;
		req = __obd_req_covering(b, g);
		if (req) {
			*stale |= __obd_req_join(req, flags);
			first = first ?: req;
			g = req->g1;
			continue;
		}
		e = __obd_run_end(b, g, g1);
		req = __obd_req_new(b, g, e, flags);
		if (IS_ERR(req)) {
			if (first)
				break;	/* wait for what was made; the rest next round */
			return req;
		}
		first = first ?: req;
		g = e;
	}
	if (first)
		first->refs++;
	return first;
}

/*
 * A waiter leaves. A NEW request nobody waits for and no daemon will read
 * is dropped; with a daemon connected it stays, to be answered.
 * NOTE: caller holds obd_remote_mutex.
 */
static void __obd_req_leave(struct obd_req *req)
{
	if (req->state == OBD_REQ_NEW && req->refs == 2 && !obd_connected)
		__obd_req_finish(req, -EIO);
	__obd_req_put(req);
}

/*
 * What a device's suspend means for its readers now: 0 (wait on),
 * -EAGAIN (requeue the bio) or -EIO.
 * NOTE: caller holds obd_remote_mutex.
 */
static int __obd_suspended(const struct obd_fetch_opts *o)
{
	switch (o->suspend) {
	case OBD_SUSP_NONE:
		return 0;
	case OBD_SUSP_REQUEUE:
		return -EAGAIN;
	case OBD_SUSP_FLUSH:
		return time_after_eq(jiffies, o->fail_at) ? -EIO : 0;
	default:
		return -EIO;
	}
}

/* Wait for req (a waiter ref held); drops the ref. 0 or -EIO. */
static int obd_req_wait(struct obd_req *req, const struct obd_fetch_opts *o,
			unsigned long start)
{
	struct obd_blob *b = req->blob;
	unsigned long hold = o ? o->hold : obd_hold_default(), since;
	atomic_t *pending = o ? o->pending : NULL;
	int r;

	if (pending)
		atomic_inc(pending);
	for (;;) {
		/* a second's tick: the daemon may go away while we wait */
		if (o && o->killable)
			wait_event_killable_timeout(b->wq, READ_ONCE(req->state) == OBD_REQ_DONE,
						    HZ);
		else
			wait_event_timeout(b->wq, READ_ONCE(req->state) == OBD_REQ_DONE, HZ);
		mutex_lock(&obd_remote_mutex);
		if (req->state == OBD_REQ_DONE) {
			r = req->status ? -EIO : 0;
			break;
		}
		/* ctr (dmsetup) killed: the table load fails, the request stays queued */
		if (o && o->killable && fatal_signal_pending(current)) {
			r = -EINTR;
			break;
		}
		/* the upper's read-modify-write: its device suspends (presuspend) */
		if (o && __obd_suspended(o)) {
			DMERR_LIMIT("%s: device suspending: failing a write that waits for bytes %llu+%llu",
				    b->path, req->g0 << OBD_GRANULE_SHIFT,
				    (req->g1 - req->g0) << OBD_GRANULE_SHIFT);
			r = -EIO;
			break;
		}
		since = time_after(obd_gone_at, start) ? obd_gone_at : start;
		if (!obd_connected && time_after_eq(jiffies, since + hold)) {
			DMERR_LIMIT("%s: no fetch daemon on /dev/%s for %u s: failing a read of bytes %llu+%llu",
				    b->path, OBD_DEV_NAME, jiffies_to_msecs(hold) / 1000,
				    req->g0 << OBD_GRANULE_SHIFT,
				    (req->g1 - req->g0) << OBD_GRANULE_SHIFT);
			r = -EIO;
			break;
		}
		if (time_after_eq(jiffies, start + (unsigned long)request_timeout * HZ)) {
			DMERR_LIMIT("%s: miss of bytes %llu+%llu not answered in %u s",
				    b->path, req->g0 << OBD_GRANULE_SHIFT,
				    (req->g1 - req->g0) << OBD_GRANULE_SHIFT, request_timeout);
			r = -EIO;
			break;
		}
		mutex_unlock(&obd_remote_mutex);
	}
	__obd_req_leave(req);
	mutex_unlock(&obd_remote_mutex);
	if (pending)
		atomic_dec(pending);
	return r;
}

static int obd_fetch(struct obd_blob *b, u64 off, u64 len, const struct obd_fetch_opts *o,
		     u32 flags)
{
	unsigned long start = jiffies;
	u64 g0, g1, rounds;
	struct obd_req *req;
	bool stale;
	int r;

	/* past the blob's end there is nothing to fetch: the read sees EOF */
	if (!len || off >= b->size)
		return 0;
	len = min(len, b->size - off);
	g0 = off >> OBD_GRANULE_SHIFT;
	g1 = DIV_ROUND_UP_ULL(off + len, OBD_GRANULE_SIZE);
	/* each round waits for a request that makes one granule present, at least */
	for (rounds = 0; rounds <= g1 - g0 + 4; rounds++) {
		if (!(flags & OBD_READ_F_REFETCH) && obd_blob_present(b, off, len))
			return 0;
		mutex_lock(&obd_remote_mutex);
		if (flags & OBD_READ_F_REFETCH)
			bitmap_clear(b->present, g0, g1 - g0);
		req = __obd_issue(b, g0, g1, flags, &stale);
		mutex_unlock(&obd_remote_mutex);
		if (!req)
			return 0;
		if (IS_ERR(req))
			return PTR_ERR(req);
		/* a stale answer: clear the range again, ask afresh next round */
		if (!stale)
			flags &= ~OBD_READ_F_REFETCH;
		r = obd_req_wait(req, o, start);
		if (r)
			return r;
	}
	DMERR_LIMIT("%s: bytes %llu+%llu still absent after %llu answered misses", b->path, off,
		    len, rounds);
	return -EIO;
}

/* Make [off, off + len) of the blob present, waiting for the daemon. */
int obd_blob_fetch(struct obd_blob *b, u64 off, u64 len, const struct obd_fetch_opts *o)
{
	return obd_fetch(b, off, len, o, 0);
}

/*
 * A parked reader leaves its request (answered, failed, timed out, or its
 * device suspends) and goes back to its device: wake() queues its bio.
 * NOTE: caller holds obd_remote_mutex; w is off any list.
 */
static void __obd_unpark_off(struct obd_waiter *w, int status)
{
	struct obd_req *req = w->req;

	w->req = NULL;
	obd_nparked--;
	if (w->opts->pending)
		atomic_dec(w->opts->pending);
	__obd_req_leave(req);
	w->wake(w, status);
}

/* NOTE: caller holds obd_remote_mutex; req (w's) keeps another ref. */
static void __obd_unpark(struct obd_waiter *w, int status)
{
	list_del(&w->node);
	__obd_unpark_off(w, status);
}

/*
 * Why a parked reader must stop waiting now, or 0: its device suspends,
 * no daemon for its hold timeout, or request_timeout.
 * NOTE: caller holds obd_remote_mutex.
 */
static int __obd_waiter_expired(struct obd_waiter *w)
{
	const struct obd_fetch_opts *o = w->opts;
	struct obd_req *req = w->req;
	struct obd_blob *b = req->blob;
	unsigned long since;
	int r = __obd_suspended(o);

	if (r == -EIO) {
		DMERR_LIMIT("%s: device suspending: failing a read waiting for bytes %llu+%llu",
			    b->path, req->g0 << OBD_GRANULE_SHIFT,
			    (req->g1 - req->g0) << OBD_GRANULE_SHIFT);
		return r;
	}
	if (r)
		return r;
	since = time_after(obd_gone_at, w->start) ? obd_gone_at : w->start;
	if (!obd_connected && time_after_eq(jiffies, since + o->hold)) {
		DMERR_LIMIT("%s: no fetch daemon on /dev/%s for %u s: failing a read of bytes %llu+%llu",
			    b->path, OBD_DEV_NAME, jiffies_to_msecs(o->hold) / 1000,
			    req->g0 << OBD_GRANULE_SHIFT, (req->g1 - req->g0) << OBD_GRANULE_SHIFT);
		return -EIO;
	}
	if (time_after_eq(jiffies, w->start + (unsigned long)request_timeout * HZ)) {
		DMERR_LIMIT("%s: miss of bytes %llu+%llu not answered in %u s", b->path,
			    req->g0 << OBD_GRANULE_SHIFT, (req->g1 - req->g0) << OBD_GRANULE_SHIFT,
			    request_timeout);
		return -EIO;
	}
	return 0;
}

/*
 * Send back the parked readers that must stop waiting: of every device
 * (only == NULL), or every one of device only's. Unparking can end a
 * request (obd_req_leave), so they are collected first.
 * NOTE: caller holds obd_remote_mutex.
 */
static void __obd_reap(const struct obd_fetch_opts *only, int status)
{
	LIST_HEAD(out);
	struct obd_waiter *w, *tmp;
	struct obd_req *req;
	unsigned long idx;

	lockdep_assert_held(&obd_remote_mutex);
	if (!obd_nparked)
		return;
	xa_for_each(&obd_reqs, idx, req) {
		list_for_each_entry_safe(w, tmp, &req->waiters, node) {
			if (only && w->opts != only)
				continue;
			w->status = only ? status : __obd_waiter_expired(w);
			if (w->status)
				list_move_tail(&w->node, &out);
		}
	}
	list_for_each_entry_safe(w, tmp, &out, node) {
		list_del(&w->node);
		__obd_unpark_off(w, w->status);
	}
}

static void obd_reap_work(struct work_struct *work)
{
	mutex_lock(&obd_remote_mutex);
	__obd_reap(NULL, 0);
	if (obd_nparked)
		queue_delayed_work(system_wq, &obd_reap, HZ);
	mutex_unlock(&obd_remote_mutex);
}

/*
 * A reader (a bio's worker) needs [off, off + len) of the blob: make the
 * requests (as obd_blob_fetch) and park w on the one covering the first
 * absent granule. 1: parked, w->wake() runs later; 0: present, go on;
 * -EAGAIN: the device is suspending with noflush (requeue the bio);
 * another error: fail the read. OBD_READ_F_REFETCH forgets the range first;
 * w->stale tells the reader that the answer it waits for may not be fetched
 * afresh (a request sent before without the flag).
 */
int obd_blob_park(struct obd_blob *b, u64 off, u64 len, u32 flags, struct obd_waiter *w)
{
	struct obd_req *req;
	u64 g0, g1;
	int r;

	if (!len || off >= b->size)
		return 0;
	len = min(len, b->size - off);
	if (!(flags & OBD_READ_F_REFETCH) && obd_blob_present(b, off, len))
		return 0;
	g0 = off >> OBD_GRANULE_SHIFT;
	g1 = DIV_ROUND_UP_ULL(off + len, OBD_GRANULE_SIZE);
	mutex_lock(&obd_remote_mutex);
	r = __obd_suspended(w->opts);
	if (r)
		goto out_unlock;
	if (flags & OBD_READ_F_REFETCH)
		bitmap_clear(b->present, g0, g1 - g0);
	req = __obd_issue(b, g0, g1, flags, &w->stale);
	if (IS_ERR_OR_NULL(req)) {
		r = PTR_ERR_OR_ZERO(req);
		goto out_unlock;
	}
	w->req = req;
	w->start = jiffies;
	list_add_tail(&w->node, &req->waiters);
	if (w->opts->pending)
		atomic_inc(w->opts->pending);
	if (!obd_nparked++)
		queue_delayed_work(system_wq, &obd_reap, HZ);
	r = 1;
out_unlock:
	mutex_unlock(&obd_remote_mutex);
	return r;
}

/*
 * presuspend: with noflush, the device's parked bios go back to dm at once
 * (requeued, mapped again after resume); else they may wait
 * OBD_SUSPEND_GRACE more for their bytes, then fail. New misses of the
 * device do the same until obd_fetch_resume.
 */
#define OBD_SUSPEND_GRACE	(5 * HZ)

void obd_fetch_suspend(struct obd_fetch_opts *o, bool noflush)
{
	mutex_lock(&obd_remote_mutex);
	o->suspend = noflush ? OBD_SUSP_REQUEUE : OBD_SUSP_FLUSH;
	o->fail_at = jiffies + OBD_SUSPEND_GRACE;
	if (noflush)
		__obd_reap(o, -EAGAIN);
	mutex_unlock(&obd_remote_mutex);
}

/* resume, presuspend_undo: misses wait again. */
void obd_fetch_resume(struct obd_fetch_opts *o)
{
	mutex_lock(&obd_remote_mutex);
	o->suspend = OBD_SUSP_NONE;
	mutex_unlock(&obd_remote_mutex);
}

/*
 * dtr (remove does not wait for bios in flight): every parked bio of the
 * device fails now, and any miss after; the caller then drains its
 * workqueue.
 */
void obd_fetch_stop(struct obd_fetch_opts *o)
{
	mutex_lock(&obd_remote_mutex);
	o->suspend = OBD_SUSP_DEAD;
	__obd_reap(o, -EIO);
	mutex_unlock(&obd_remote_mutex);
}

/*
 * Ask for the absent, not yet requested runs of [off, off + len) with
 * OBD_READ_F_PREFETCH and nobody waiting: the daemon fetches them behind
 * every miss, the answers make them present. Only with a daemon connected
 * (a request nobody waits for is dropped when the daemon goes), and at
 * most OBD_PREFETCH_MAX_INFLIGHT at once: -EBUSY, try again later.
 */
int obd_blob_prefetch(struct obd_blob *b, u64 off, u64 len)
{
	unsigned int made = 0;
	u64 g, g1, e;
	int r = 0;

	if (!len || off >= b->size)
		return 0;
	len = min(len, b->size - off);
	g = off >> OBD_GRANULE_SHIFT;
	g1 = DIV_ROUND_UP_ULL(off + len, OBD_GRANULE_SIZE);
	mutex_lock(&obd_remote_mutex);
	while (g < g1) {
		struct obd_req *req;

		/* bounded work under the lock: misses and answers get their turn */
		if (made >= OBD_PREFETCH_BATCH) {
			mutex_unlock(&obd_remote_mutex);
			cond_resched();
			made = 0;
			mutex_lock(&obd_remote_mutex);
		}
		if (!obd_connected)
			break;
		g = find_next_zero_bit(b->present, g1, g);
		if (g >= g1)
			break;
		made++;
		req = __obd_req_covering(b, g);
		if (req) {
			g = req->g1;
			continue;
		}
		if (obd_prefetch_inflight >= OBD_PREFETCH_MAX_INFLIGHT) {
			r = -EBUSY;
			break;
		}
		e = __obd_run_end(b, g, g1);
		req = __obd_req_new(b, g, e, OBD_READ_F_PREFETCH);
		if (IS_ERR(req)) {
			r = PTR_ERR(req);
			break;
		}
		req->prefetch = true;
		obd_prefetch_inflight++;
		g = e;
	}
	mutex_unlock(&obd_remote_mutex);
	return r;
}

/* Module-wide: prefetch requests not yet read by the daemon, being fetched, answered. */
void obd_prefetch_counts(u64 *queued, u64 *running, u64 *done, u64 *failed)
{
	struct obd_req *req;
	unsigned long idx;

	*queued = *running = 0;
	mutex_lock(&obd_remote_mutex);
	xa_for_each(&obd_reqs, idx, req) {
		if (!req->prefetch)
			continue;
		if (req->state == OBD_REQ_NEW)
			(*queued)++;
		else if (req->state == OBD_REQ_SENT)
			(*running)++;
	}
	*done = obd_prefetch_done;
	*failed = obd_prefetch_failed;
	mutex_unlock(&obd_remote_mutex);
}

/* The range was found bad: forget it and fetch it again. */
int obd_blob_refetch(struct obd_blob *b, u64 off, u64 len, const struct obd_fetch_opts *o)
{
	return obd_fetch(b, off, len, o, OBD_READ_F_REFETCH);
}

/*
 * A table loaded a new blob: the daemon hears of it at once (not only at
 * its first miss), so it knows every blob in use: it must never evict
 * those, and it may download them in the background.
 * NOTE: caller holds obd_remote_mutex.
 */
void __obd_miss_blob_new(struct obd_blob *b)
{
	lockdep_assert_held(&obd_remote_mutex);
	if (!obd_connected)
		return;
	obd_open_pending = true;
	wake_up_interruptible(&obd_poll_wq);
}

/* The blob's last ref went. NOTE: caller holds obd_remote_mutex. */
void __obd_miss_blob_gone(struct obd_blob *b)
{
	struct obd_close *c;

	lockdep_assert_held(&obd_remote_mutex);
	if (!obd_connected || b->open_gen != obd_conn_gen)
		return;
	/*
	 * NOIO: obd_remote_mutex is held, and the I/O path takes it; reclaim
	 * must not wait on I/O that could come back to this device (the
	 * daemon's write and the reap worker get here outside a NOIO scope).
	 */
	c = kmalloc(sizeof(*c), GFP_NOIO);
	if (!c)
		return;		/* the daemon keeps a stale entry: harmless */
	c->blob_id = b->id;
	list_add_tail(&c->node, &obd_closes);
	wake_up_interruptible(&obd_poll_wq);
}

/*----------------------------------------------------------------
 * Answers from the daemon
 *--------------------------------------------------------------*/

static bool obd_done_range_ok(struct obd_req *req, u64 off, u64 len)
{
	u64 size = req->blob->size, end;

	if (!len || off > size || len > size - off || off % OBD_GRANULE_SIZE)
		return false;
	end = off + len;
	if (end % OBD_GRANULE_SIZE && end != size)
		return false;
	return off <= req->g0 << OBD_GRANULE_SHIFT &&
		end >= min(req->g1 << OBD_GRANULE_SHIFT, size);
}

/* Bits for [off, off + len), counting the bytes that were absent. */
static void __obd_done_apply(struct obd_blob *b, u64 off, u64 len)
{
	u64 g, g1 = DIV_ROUND_UP_ULL(off + len, OBD_GRANULE_SIZE), fresh = 0;

	/* the daemon's writes to the page cache before the bits (obd_blob_present) */
	smp_mb();
	for (g = off >> OBD_GRANULE_SHIFT; g < g1; g++) {
		if (test_and_set_bit(g, b->present))
			continue;
		fresh += min_t(u64, OBD_GRANULE_SIZE, b->size - (g << OBD_GRANULE_SHIFT));
	}
	atomic64_add(fresh, &b->fetched);
}

#define obd_chan_err(fmt, ...) \
	DMERR_LIMIT("/dev/%s: " fmt ": refused", OBD_DEV_NAME, ##__VA_ARGS__)

/* NOTE: caller holds obd_remote_mutex. */
static int __obd_done(const struct obd_msg_done *d)
{
	u64 id = le64_to_cpu(d->hdr.id), off = le64_to_cpu(d->offset);
	u64 len = le64_to_cpu(d->length);
	s32 status = (s32)le32_to_cpu(d->status);
	struct obd_req *req;

	req = (id && id <= U32_MAX) ? xa_load(&obd_reqs, (unsigned long)id) : NULL;
	if (!req || req->state != OBD_REQ_SENT) {
		obd_chan_err("answer to unknown request id %llu", id);
		return -EINVAL;
	}
	if (le64_to_cpu(d->blob_id) != req->blob->id) {
		obd_chan_err("request %llu: blob id %llu, expected %llu", id,
			     le64_to_cpu(d->blob_id), req->blob->id);
		return -EINVAL;
	}
	if (status > 0 || status < -MAX_ERRNO) {
		obd_chan_err("request %llu: status %d", id, status);
		return -EINVAL;
	}
	if (status) {
		DMERR_LIMIT("%s: fetch of bytes %llu+%llu failed: error %d", req->blob->path,
			    req->g0 << OBD_GRANULE_SHIFT, (req->g1 - req->g0) << OBD_GRANULE_SHIFT,
			    status);
		__obd_req_finish(req, status);
		return 0;
	}
	if (!obd_done_range_ok(req, off, len)) {
		obd_chan_err("request %llu: range %llu+%llu does not hold the requested %llu+%llu of a %llu-byte blob",
			     id, off, len, req->g0 << OBD_GRANULE_SHIFT,
			     (req->g1 - req->g0) << OBD_GRANULE_SHIFT, req->blob->size);
		return -EINVAL;
	}
	__obd_done_apply(req->blob, off, len);
	__obd_req_finish(req, 0);
	return 0;
}

/*
 * HAVE: the daemon filled a range of an OPENed blob on its own.
 * NOTE: caller holds obd_remote_mutex.
 */
static int __obd_have(const struct obd_msg_done *d)
{
	u64 bid = le64_to_cpu(d->blob_id), off = le64_to_cpu(d->offset);
	u64 len = le64_to_cpu(d->length), end;
	struct obd_blob *b;

	if (d->hdr.id || d->status) {
		obd_chan_err("HAVE with id %llu status %d (both must be 0)",
			     le64_to_cpu(d->hdr.id), (s32)le32_to_cpu(d->status));
		return -EINVAL;
	}
	b = __obd_blob_by_id(bid);
	if (!b || b->open_gen != obd_conn_gen) {
		obd_chan_err("HAVE for unknown blob id %llu", bid);
		return -EINVAL;
	}
	end = off + len;
	if (!len || off > b->size || len > b->size - off || off % OBD_GRANULE_SIZE ||
	    (end % OBD_GRANULE_SIZE && end != b->size)) {
		obd_chan_err("HAVE for blob %llu: bad range %llu+%llu of a %llu-byte blob", bid,
			     off, len, b->size);
		return -EINVAL;
	}
	__obd_done_apply(b, off, len);
	return 0;
}

/* One message from the daemon. NOTE: caller holds obd_remote_mutex. */
static int __obd_answer(const struct obd_msg_done *d)
{
	u16 op = le16_to_cpu(d->hdr.opcode);

	if (le32_to_cpu(d->hdr.magic) != OBD_MSG_MAGIC ||
	    le16_to_cpu(d->hdr.version) != OBD_MSG_VERSION ||
	    (op != OBD_MSG_DONE && op != OBD_MSG_HAVE) ||
	    le32_to_cpu(d->hdr.size) != sizeof(*d) || d->hdr.reserved || d->reserved) {
		obd_chan_err("malformed message (magic 0x%08x version %u opcode %u size %u)",
			     le32_to_cpu(d->hdr.magic), le16_to_cpu(d->hdr.version), op,
			     le32_to_cpu(d->hdr.size));
		return -EINVAL;
	}
	return op == OBD_MSG_HAVE ? __obd_have(d) : __obd_done(d);
}

/*----------------------------------------------------------------
 * Messages to the daemon
 *--------------------------------------------------------------*/

static void obd_hdr(struct obd_msg_hdr *h, u16 opcode, u32 size, u64 id)
{
	h->magic = cpu_to_le32(OBD_MSG_MAGIC);
	h->version = cpu_to_le16(OBD_MSG_VERSION);
	h->opcode = cpu_to_le16(opcode);
	h->size = cpu_to_le32(size);
	h->reserved = 0;
	h->id = cpu_to_le64(id);
}

static size_t obd_msg_open(void *buf, struct obd_blob *b)
{
	struct obd_msg_open *m = buf;
	size_t plen = strlen(b->path);

	memset(m, 0, sizeof(*m));
	obd_hdr(&m->hdr, OBD_MSG_OPEN, sizeof(*m), 0);
	m->blob_id = cpu_to_le64(b->id);
	m->blob_size = cpu_to_le64(b->size);
	memcpy(m->digest, b->digest, OBD_SHA256_LEN);
	m->path_len = cpu_to_le32((u32)plen);	/* < OBD_MSG_PATH_MAX: obd_remote_parse */
	m->ino = cpu_to_le64(b->ino);
	m->dev = cpu_to_le32(new_encode_dev(b->sdev));
	memcpy(m->path, b->path, plen);
	return sizeof(*m);
}

static size_t obd_msg_read(void *buf, struct obd_req *req)
{
	struct obd_msg_read *m = buf;
	u64 off = req->g0 << OBD_GRANULE_SHIFT;
	u64 end = min(req->g1 << OBD_GRANULE_SHIFT, req->blob->size);

	memset(m, 0, sizeof(*m));
	obd_hdr(&m->hdr, OBD_MSG_READ, sizeof(*m), req->id);
	m->blob_id = cpu_to_le64(req->blob->id);
	m->offset = cpu_to_le64(off);
	m->length = cpu_to_le64(end - off);
	m->flags = cpu_to_le32(req->flags);
	return sizeof(*m);
}

/* What the next message changed, to undo if it cannot be copied out. */
struct obd_msg_undo {
	u64 open_id;			/* OPEN: that blob's open_gen was set */
	u32 read_id;			/* READ: moved to SENT */
};

/* NOTE: caller holds obd_remote_mutex. */
static size_t __obd_next_msg(void *buf, struct obd_msg_undo *u)
{
	struct obd_close *c;
	struct obd_req *req;
	struct obd_msg_close *m;

	lockdep_assert_held(&obd_remote_mutex);
	c = list_first_entry_or_null(&obd_closes, struct obd_close, node);
	if (c) {
		m = buf;
		memset(m, 0, sizeof(*m));
		obd_hdr(&m->hdr, OBD_MSG_CLOSE, sizeof(*m), 0);
		m->blob_id = cpu_to_le64(c->blob_id);
		list_del(&c->node);
		kfree(c);
		return sizeof(*m);
	}
	if (obd_open_pending) {
		struct obd_blob *b = __obd_blob_unopened(obd_conn_gen);

		if (b) {
			b->open_gen = obd_conn_gen;
			u->open_id = b->id;
			return obd_msg_open(buf, b);
		}
		obd_open_pending = false;
	}
	req = list_first_entry_or_null(&obd_queue, struct obd_req, queue_node);
	if (!req)
		return 0;
	if (req->blob->open_gen != obd_conn_gen) {
		req->blob->open_gen = obd_conn_gen;
		u->open_id = req->blob->id;
		return obd_msg_open(buf, req->blob);
	}
	list_del(&req->queue_node);
	req->state = OBD_REQ_SENT;
	u->read_id = req->id;
	return obd_msg_read(buf, req);
}

/* NOTE: caller holds obd_remote_mutex. */
static void __obd_msg_undo(const struct obd_msg_undo *u)
{
	struct obd_req *req;

	if (u->open_id) {
		/* looked up again: without a request, nothing pinned the blob */
		struct obd_blob *b = __obd_blob_by_id(u->open_id);

		if (b)
			b->open_gen = 0;
		obd_open_pending = true;
		return;
	}
	req = u->read_id ? xa_load(&obd_reqs, u->read_id) : NULL;
	if (req && req->state == OBD_REQ_SENT) {
		req->state = OBD_REQ_NEW;
		list_add(&req->queue_node, &obd_queue);
	}
}

static bool obd_have_msg(void)
{
	return READ_ONCE(obd_open_pending) || !list_empty_careful(&obd_queue) ||
	       !list_empty_careful(&obd_closes);
}

/*----------------------------------------------------------------
 * /dev/overlaybd
 *--------------------------------------------------------------*/

static int obd_dev_open(struct inode *inode, struct file *f)
{
	struct obd_req *req;
	unsigned long idx;
	int r;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	r = nonseekable_open(inode, f);
	if (r)
		return r;
	mutex_lock(&obd_remote_mutex);
	if (obd_connected) {
		mutex_unlock(&obd_remote_mutex);
		return -EBUSY;
	}
	obd_connected = true;
	/* a new connection: every blob gets an OPEN again before its READs */
	obd_conn_gen = obd_conn_gen + 1 ?: 1;
	obd_open_pending = true;
	xa_for_each(&obd_reqs, idx, req)
		WARN_ON_ONCE(req->state != OBD_REQ_NEW);
	mutex_unlock(&obd_remote_mutex);
	if (obd_have_msg())
		wake_up_interruptible(&obd_poll_wq);
	return 0;
}

/*
 * The daemon went (exit, crash, kill -9): what it had read goes back to the
 * queue for the next one; requests nobody waits for any more are dropped.
 */
static int obd_dev_release(struct inode *inode, struct file *f)
{
	struct obd_req *req, *tmp;
	struct obd_close *c, *ctmp;
	unsigned long idx;

	mutex_lock(&obd_remote_mutex);
	obd_connected = false;
	obd_gone_at = jiffies;
	xa_for_each(&obd_reqs, idx, req) {
		if (req->state == OBD_REQ_SENT) {
			req->state = OBD_REQ_NEW;
			list_add_tail(&req->queue_node, &obd_queue);
		}
	}
	list_for_each_entry_safe(req, tmp, &obd_queue, queue_node)
		if (req->refs == 1)
			__obd_req_finish(req, -EIO);
	list_for_each_entry_safe(c, ctmp, &obd_closes, node) {
		list_del(&c->node);
		kfree(c);
	}
	mutex_unlock(&obd_remote_mutex);
	return 0;
}

static ssize_t obd_dev_read(struct file *f, char __user *ubuf, size_t count, loff_t *ppos)
{
	struct obd_msg_undo u = {};
	size_t n;
	void *buf;
	int r;

	if (count < OBD_MSG_MAX)
		return -EINVAL;
	buf = kmalloc(OBD_MSG_MAX, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		mutex_lock(&obd_remote_mutex);
		n = __obd_next_msg(buf, &u);
		mutex_unlock(&obd_remote_mutex);
		if (n)
			break;
		r = -EAGAIN;
		if (f->f_flags & O_NONBLOCK)
			goto out_free;
		r = wait_event_interruptible(obd_poll_wq, obd_have_msg());
		if (r)
			goto out_free;
	}
	r = (int)n;
	if (copy_to_user(ubuf, buf, n)) {
		mutex_lock(&obd_remote_mutex);
		__obd_msg_undo(&u);
		mutex_unlock(&obd_remote_mutex);
		r = -EFAULT;
	}
out_free:
	kfree(buf);
	return r;
}

static ssize_t obd_dev_write(struct file *f, const char __user *ubuf, size_t count,
			     loff_t *ppos)
{
	struct obd_msg_done d;
	int r;

	if (count != sizeof(d)) {
		obd_chan_err("write of %zu bytes, expected %zu", count, sizeof(d));
		return -EINVAL;
	}
	if (copy_from_user(&d, ubuf, sizeof(d)))
		return -EFAULT;
	/* obd_invalidate.c; the connection cannot change while its file writes */
	if (le16_to_cpu(d.hdr.opcode) == OBD_MSG_INVALIDATE) {
		r = obd_invalidate(&d, READ_ONCE(obd_conn_gen));
		return r ? r : (ssize_t)count;
	}
	mutex_lock(&obd_remote_mutex);
	r = __obd_answer(&d);
	mutex_unlock(&obd_remote_mutex);
	return r ? r : (ssize_t)count;
}

static __poll_t obd_dev_poll(struct file *f, poll_table *pt)
{
	__poll_t mask = EPOLLOUT | EPOLLWRNORM;

	poll_wait(f, &obd_poll_wq, pt);
	if (obd_have_msg())
		mask |= EPOLLIN | EPOLLRDNORM;
	return mask;
}

static const struct file_operations obd_dev_fops = {
	.owner = THIS_MODULE,
	.open = obd_dev_open,
	.release = obd_dev_release,
	.read = obd_dev_read,
	.write = obd_dev_write,
	.poll = obd_dev_poll,
	.llseek = noop_llseek,
};

static struct miscdevice obd_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = OBD_DEV_NAME,
	.fops = &obd_dev_fops,
	.mode = 0600,
};

int obd_miss_init(void)
{
	obd_gone_at = jiffies;
	return misc_register(&obd_misc);
}

/* No device and no daemon is left (both hold the module). */
void obd_miss_exit(void)
{
	misc_deregister(&obd_misc);
	cancel_delayed_work_sync(&obd_reap);
	WARN_ON(obd_nparked);
	WARN_ON(!xa_empty(&obd_reqs));
	xa_destroy(&obd_reqs);
}
