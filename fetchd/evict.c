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
 * One pass per tick, never a loop: if what may be evicted is not enough
 * (everything left is in use) that is said once per EVICT_WARN_MS, not on
 * every pass (overlaybd PR 400: an eviction that could never succeed ran
 * forever and flooded the log).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fetchd.h"
#include "cache_scan.h"

#define EVICT_WARN_MS		(10 * 60 * 1000)
#define GIB			1073741824.0

struct evict {
	int64_t due_ms;
	uint64_t written;		/* bytes written since the last pass */
	uint64_t limit, water, risk, floor;
	int64_t warned_ms;		/* last "cannot get under the limit" */
	bool scan_failed;		/* said once until a scan works again */
};

int evict_init(struct fetchd *d)
{
	struct evict *ev = calloc(1, sizeof(*ev));

	if (!ev) {
		pr_err("out of memory");
		return -1;
	}
	ev->limit = (uint64_t)(d->cfg.cache_size_gb * GIB);
	cache_marks(ev->limit, &ev->water, &ev->risk);
	ev->floor = (uint64_t)(d->cfg.min_free_gb * GIB);
	ev->due_ms = now_ms() + 1000;	/* a first look soon after start */
	/* never warned: the monotonic clock may be younger than EVICT_WARN_MS (a fresh boot) */
	ev->warned_ms = now_ms() - EVICT_WARN_MS;
	d->ev = ev;
	d->g.cache_limit = ev->limit;
	pr_info("cache %s: limit %llu bytes (evict past %llu down to %llu), keep %llu bytes free",
		d->cfg.cache_dir, (unsigned long long)ev->limit, (unsigned long long)ev->risk,
		(unsigned long long)ev->water, (unsigned long long)ev->floor);
	return 0;
}

void evict_fini(struct fetchd *d)
{
	free(d->ev);
	d->ev = NULL;
}

/* Much written since the last pass: look now rather than at the interval. */
void evict_note_written(struct fetchd *d, uint64_t bytes)
{
	struct evict *ev = d->ev;

	if (!ev)
		return;
	ev->written += bytes;
	if (ev->written > (ev->limit - ev->water) / 2 + 1)
		ev->due_ms = 0;
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

static void evict_victims(struct fetchd *d, struct cache_scan *s, const size_t *v, size_t n)
{
	char err[512];
	size_t i;

	for (i = 0; i < n; i++) {
		const struct cache_scan_entry *e = &s->e[v[i]];

		if (cache_entry_remove(e->path, err, sizeof(err))) {
			pr_err("evicting %s: %s", e->digest, err);
			continue;
		}
		d->st.evictions++;
		d->st.evicted_bytes += e->disk_bytes;
		pr_info("evicted %s (%llu bytes on disk%s%s)", e->digest,
			(unsigned long long)e->disk_bytes, e->broken[0] ? ", broken: " : "",
			e->broken);
	}
}

static void evict_pass(struct fetchd *d)
{
	struct evict *ev = d->ev;
	struct cache_lru_req req = {
		.now_ns = wall_ns(), .grace_s = d->cfg.evict_grace_s,
		.in_use = entry_in_use, .arg = d,
	};
	struct cache_lru_res res;
	struct cache_scan s;
	uint64_t avail = UINT64_MAX;
	size_t *victims;
	char err[512];

	ev->written = 0;
	if (cache_scan(d->cfg.cache_dir, &s, err, sizeof(err))) {
		if (!ev->scan_failed)
			pr_err("cache eviction: %s", err);
		ev->scan_failed = true;
		return;
	}
	ev->scan_failed = false;
	d->st.evict_runs++;
	if (cache_fs_avail(d->cfg.cache_dir, &avail))
		avail = UINT64_MAX;
	d->g.cache_bytes = s.usage;
	d->g.cache_entries = s.n;
	d->g.fs_free_bytes = avail == UINT64_MAX ? 0 : avail;
	count_complete(d);
	if (!need_evict(ev, s.usage, avail, &req.target) || !s.n)
		goto out;
	victims = calloc(s.n, sizeof(*victims));
	if (!victims)
		goto out;
	cache_lru_select(&s, &req, victims, &res);
	evict_victims(d, &s, victims, res.n);
	free(victims);
	d->g.cache_bytes = res.usage_after;
	if (!res.reached && now_ms() - ev->warned_ms >= EVICT_WARN_MS) {
		ev->warned_ms = now_ms();
		pr_warn("cache %s: %llu bytes, cannot get down to %llu: %zu entries in use, %zu used within %u s (said again in %d min at most)",
			d->cfg.cache_dir, (unsigned long long)res.usage_after,
			(unsigned long long)req.target, res.skipped_in_use, res.skipped_recent,
			d->cfg.evict_grace_s, EVICT_WARN_MS / 60000);
	}
out:
	cache_scan_free(&s);
}

int64_t evict_tick(struct fetchd *d)
{
	struct evict *ev = d->ev;
	int64_t now = now_ms();

	if (!ev)
		return 0;
	if (ev->due_ms && now < ev->due_ms)
		return ev->due_ms;
	evict_pass(d);
	ev->due_ms = now_ms() + d->cfg.evict_interval_ms;
	return ev->due_ms;
}
