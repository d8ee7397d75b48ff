// SPDX-License-Identifier: GPL-2.0-only
/*
 * Keeping the cache within cacheConfig.cacheSizeGB and the cache's file
 * system above cacheConfig.minFreeGB free: every evictIntervalMs (sooner
 * when much was written since), the cache directory is scanned
 * (cache_scan.c, shared with `obd cache`) and, past the risk mark or under
 * the floor, whole entries are removed least recently used first down to
 * the water mark (policy and marks: cache_scan.h).
 *
 * In use means OPENed by the kernel and not CLOSEd: since the kernel OPENs
 * every blob a table loads (not only at its first miss), that is every
 * blob any device stacks, matched by inode. Those are never evicted; nor
 * is an entry used within evictGraceSec (obd attach makes the entry a
 * moment before the table loads). Removing an entry unlinks its files
 * (cache_entry_remove): a device that somehow still had it open keeps its
 * inode and serves right bytes; a daemon OPEN of a path whose file is no
 * longer the kernel's is refused by cache.c's inode check.
 *
 * Nothing of it blocks the event loop: the scan (every .meta read) and the
 * unlinks (one directory fsync per pass, not per entry) run in a worker
 * thread, one job at a time; the loop only chooses the victims (which
 * blobs are in use is the loop's state) and logs. A write that met a full
 * disk (ENOSPC) asks for a pass at once and is written again after it.
 *
 * One pass per tick, never a loop: if what may be evicted is not enough
 * (everything left is in use) that is said once per EVICT_WARN_MS, not on
 * every pass (overlaybd PR 400: an eviction that could never succeed ran
 * forever and flooded the log).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "fetchd.h"
#include "cache_scan.h"

#define EVICT_WARN_MS		(10 * 60 * 1000)
#define GIB			1073741824.0

enum evict_job { JOB_NONE, JOB_SCAN, JOB_REMOVE };

struct evict {
	bool gz;			/* gzipCacheConfig.cacheDir's (gunzip entries), not cacheConfig's */
	int64_t due_ms;
	bool now;			/* a pass wanted at once (a full disk) */
	uint64_t written;		/* bytes written since the last pass */
	uint64_t limit, water, risk, floor;
	int64_t warned_ms;		/* last "cannot get under the limit" */
	bool scan_failed;		/* said once until a scan works again */
	/* the worker: one job at a time; the loop reads its results after the eventfd */
	enum evict_job job;
	pthread_t th;
	int efd, slot;
	char dir[PATH_MAX];
	struct cache_scan s;
	int scan_rc;
	char err[512];
	uint64_t avail;
	size_t *victims;
	int *rm_rc;			/* per victim: 1 removed, 0 gone already, -errno */
	char (*rm_err)[256];
	struct cache_lru_res res;
	uint64_t target;
	int sync_rc;
	char sync_err[512];
};

static void *worker(void *arg)
{
	struct evict *ev = arg;
	uint64_t one = 1;
	size_t i;
	bool any = false;

	if (ev->job == JOB_SCAN) {
		ev->scan_rc = cache_scan(ev->dir, &ev->s, ev->err, sizeof(ev->err));
		if (cache_fs_avail(ev->dir, &ev->avail))
			ev->avail = UINT64_MAX;
	} else {
		for (i = 0; i < ev->res.n; i++) {
			ev->rm_rc[i] = cache_entry_unlink(ev->s.e[ev->victims[i]].path, ev->rm_err[i],
							  sizeof(ev->rm_err[i]));
			any |= ev->rm_rc[i] > 0;
		}
		/* one directory fsync makes every unlink of the pass durable */
		ev->sync_rc = any ? cache_dir_sync(ev->s.e[ev->victims[0]].path, ev->sync_err,
						   sizeof(ev->sync_err)) : 0;
	}
	if (write(ev->efd, &one, sizeof(one)) < 0) {
		/* an eventfd write cannot fail short of overflow */
	}
	return NULL;
}

static int job_start(struct fetchd *d, struct evict *ev, enum evict_job job)
{
	int ret;

	ev->job = job;
	ret = pthread_create(&ev->th, NULL, worker, ev);
	if (ret) {
		ev->job = JOB_NONE;
		pr_err("cache eviction: starting its thread: %s", strerror(ret));
		return -ret;
	}
	return 0;
}

static void on_job_done(struct fetchd *d, void *ctx, int fd, uint32_t events);

static int evict_init_one(struct fetchd *d, struct evict **slot, const char *dir, double gb,
			  bool gz)
{
	struct evict *ev = calloc(1, sizeof(*ev));

	if (!ev) {
		pr_err("out of memory");
		return -1;
	}
	ev->gz = gz;
	ev->slot = -1;
	ev->limit = (uint64_t)(gb * GIB);
	cache_marks(ev->limit, &ev->water, &ev->risk);
	ev->floor = (uint64_t)(d->cfg.min_free_gb * GIB);
	ev->due_ms = now_ms() + 1000;	/* a first look soon after start */
	/* never warned: the monotonic clock may be younger than EVICT_WARN_MS (a fresh boot) */
	ev->warned_ms = now_ms() - EVICT_WARN_MS;
	snprintf(ev->dir, sizeof(ev->dir), "%s", dir);
	ev->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ev->efd < 0) {
		pr_err("eventfd: %s", strerror(errno));
		free(ev);
		return -1;
	}
	*slot = ev;
	ev->slot = loop_watch_add(d, ev->efd, EPOLLIN, on_job_done, ev);
	if (ev->slot < 0) {
		pr_err("cache eviction: watching its eventfd: %s", strerror(-ev->slot));
		return -1;
	}
	if (gz)
		d->g.gz_cache_limit = ev->limit;
	else
		d->g.cache_limit = ev->limit;
	pr_info("cache %s: limit %llu bytes (evict past %llu down to %llu), keep %llu bytes free",
		dir, (unsigned long long)ev->limit, (unsigned long long)ev->risk,
		(unsigned long long)ev->water, (unsigned long long)ev->floor);
	return 0;
}

/* cacheConfig's directory, and gzipCacheConfig's when enabled: one policy, two limits */
int evict_init(struct fetchd *d)
{
	if (evict_init_one(d, &d->ev, d->cfg.cache_dir, d->cfg.cache_size_gb, false))
		return -1;
	if (d->cfg.gz_enable &&
	    evict_init_one(d, &d->gzev, d->cfg.gz_dir, d->cfg.gz_size_gb, true))
		return -1;
	return 0;
}

static void pass_end(struct fetchd *d, struct evict *ev)
{

	cache_scan_free(&ev->s);
	free(ev->victims);
	free(ev->rm_rc);
	free(ev->rm_err);
	ev->victims = NULL;
	ev->rm_rc = NULL;
	ev->rm_err = NULL;
	/* a full disk met while this pass ran: another one at once */
	ev->due_ms = ev->now ? 0 : now_ms() + d->cfg.evict_interval_ms;
	/* the writes that met a full disk: again, with what this pass freed */
	cache_nospace_retry(d);
}

static void evict_fini_one(struct fetchd *d, struct evict **slot)
{
	struct evict *ev = *slot;

	if (!ev)
		return;
	if (ev->job != JOB_NONE)
		pthread_join(ev->th, NULL);	/* at exit: waiting is fine */
	ev->job = JOB_NONE;
	if (ev->slot >= 0)
		loop_watch_del(d, ev->slot);
	cache_scan_free(&ev->s);
	free(ev->victims);
	free(ev->rm_rc);
	free(ev->rm_err);
	close(ev->efd);
	free(ev);
	*slot = NULL;
}

void evict_fini(struct fetchd *d)
{
	evict_fini_one(d, &d->ev);
	evict_fini_one(d, &d->gzev);
}

/* Much written since the last pass: look now rather than at the interval. */
void evict_note_written(struct fetchd *d, uint64_t bytes)
{
	evict_note_written_in(d, d->ev, bytes);
}

void evict_note_written_in(struct fetchd *d, struct evict *ev, uint64_t bytes)
{
	if (!ev)
		return;
	ev->written += bytes;
	if (ev->written > (ev->limit - ev->water) / 2 + 1)
		ev->due_ms = 0;
}

void evict_now(struct fetchd *d)
{
	struct evict *ev = d->ev;

	if (!ev) {
		cache_nospace_retry(d);
		return;
	}
	ev->now = true;
	ev->due_ms = 0;
	if (d->gzev) {
		d->gzev->now = true;
		d->gzev->due_ms = 0;
	}
}

/* A blob the kernel has open is the entry with its inode. */
static bool entry_in_use(const struct cache_scan_entry *e, void *arg)
{
	struct fetchd *d = arg;
	struct list *p, *t;

	list_for_each_safe(p, t, &d->blobs) {
		struct blob *b = container_of(p, struct blob, node);

		if (b->closing)
			continue;
		if ((e->ino && (uint64_t)e->ino == b->ino && (uint32_t)e->dev == b->dev) ||
		    !strcmp(e->path, b->path))
			return true;
	}
	return false;
}

static void count_complete(struct fetchd *d)
{
	struct list *p, *t;

	d->g.blobs_complete = 0;
	list_for_each_safe(p, t, &d->blobs)
		d->g.blobs_complete += container_of(p, struct blob, node)->complete;
}

static int64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* How far usage must come down: to the water mark, more when disk is short. */
static bool need_evict(const struct evict *ev, uint64_t usage, uint64_t avail, uint64_t *target)
{
	uint64_t t = ev->water;
	bool over = usage > ev->risk;

	if (ev->floor && avail < ev->floor) {
		uint64_t short_by = ev->floor - avail;

		t = usage > short_by ? usage - short_by : 0;
		if (t > ev->water)
			t = ev->water;
		over = true;
	}
	*target = t;
	return over;
}

static void remove_report(struct fetchd *d, struct evict *ev);

/* The scan is in: choose the victims (in the loop: in use is its state). */
static void scan_done(struct fetchd *d, struct evict *ev)
{
	struct cache_lru_req req = {
		.now_ns = wall_ns(), .grace_s = d->cfg.evict_grace_s,
		.in_use = entry_in_use, .arg = d,
	};

	if (ev->scan_rc) {
		if (!ev->scan_failed)
			pr_err("cache eviction: %s", ev->err);
		ev->scan_failed = true;
		return pass_end(d, ev);
	}
	ev->scan_failed = false;
	d->st.evict_runs++;
	if (ev->gz) {
		d->g.gz_cache_bytes = ev->s.usage;
		d->g.gz_cache_entries = ev->s.n;
	} else {
		d->g.cache_bytes = ev->s.usage;
		d->g.cache_entries = ev->s.n;
		d->g.fs_free_bytes = ev->avail == UINT64_MAX ? 0 : ev->avail;
	}
	count_complete(d);
	if (!need_evict(ev, ev->s.usage, ev->avail, &req.target) || !ev->s.n)
		return pass_end(d, ev);
	ev->target = req.target;
	ev->victims = calloc(ev->s.n, sizeof(*ev->victims));
	ev->rm_rc = calloc(ev->s.n, sizeof(*ev->rm_rc));
	ev->rm_err = calloc(ev->s.n, sizeof(*ev->rm_err));
	if (!ev->victims || !ev->rm_rc || !ev->rm_err)
		return pass_end(d, ev);
	cache_lru_select(&ev->s, &req, ev->victims, &ev->res);
	if (!ev->res.n)
		return remove_report(d, ev);
	if (job_start(d, ev, JOB_REMOVE))
		pass_end(d, ev);
}

/* The unlinks are done: count and say what went, warn if not enough could. */
static void remove_report(struct fetchd *d, struct evict *ev)
{
	size_t i;

	for (i = 0; i < ev->res.n; i++) {
		const struct cache_scan_entry *e = &ev->s.e[ev->victims[i]];

		if (ev->rm_rc[i] < 0) {
			pr_err("evicting %s: %s", e->digest, ev->rm_err[i]);
			continue;
		}
		d->st.evictions++;
		d->st.evicted_bytes += e->disk_bytes;
		pr_info("evicted %s (%llu bytes on disk%s%s)", e->digest,
			(unsigned long long)e->disk_bytes, e->broken[0] ? ", broken: " : "",
			e->broken);
	}
	if (ev->res.n && ev->sync_rc)
		pr_err("evicting: %s", ev->sync_err);
	if (ev->gz)
		d->g.gz_cache_bytes = ev->res.usage_after;
	else
		d->g.cache_bytes = ev->res.usage_after;
	if (!ev->res.reached && now_ms() - ev->warned_ms >= EVICT_WARN_MS) {
		ev->warned_ms = now_ms();
		pr_warn("cache %s: %llu bytes, cannot get down to %llu: %zu entries in use, %zu used within %u s (said again in %d min at most)",
			ev->dir, (unsigned long long)ev->res.usage_after,
			(unsigned long long)ev->target, ev->res.skipped_in_use,
			ev->res.skipped_recent, d->cfg.evict_grace_s, EVICT_WARN_MS / 60000);
	}
	pass_end(d, ev);
}

static void on_job_done(struct fetchd *d, void *ctx, int fd, uint32_t events)
{
	struct evict *ev = ctx;
	enum evict_job job = ev->job;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) != sizeof(v) || job == JOB_NONE)
		return;
	pthread_join(ev->th, NULL);
	ev->job = JOB_NONE;
	if (job == JOB_SCAN)
		scan_done(d, ev);
	else
		remove_report(d, ev);
}

static int64_t evict_tick_one(struct fetchd *d, struct evict *ev)
{
	int64_t now = now_ms();

	if (!ev || ev->job != JOB_NONE)
		return 0;	/* the worker's eventfd wakes the loop */
	if (ev->due_ms && now < ev->due_ms)
		return ev->due_ms;
	ev->written = 0;
	ev->now = false;
	memset(&ev->res, 0, sizeof(ev->res));
	memset(&ev->s, 0, sizeof(ev->s));
	if (job_start(d, ev, JOB_SCAN)) {
		pass_end(d, ev);
		return ev->due_ms;
	}
	return 0;
}

int64_t evict_tick(struct fetchd *d)
{
	int64_t a = evict_tick_one(d, d->ev), b = evict_tick_one(d, d->gzev);

	return !a ? b : !b ? a : a < b ? a : b;
}
