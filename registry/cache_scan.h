/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The cache directory as a whole: what entries there are, how much disk
 * they take, which ones to evict, and removing one safely. Shared by
 * `obd cache` (listing, prune) and overlaybd-fetchd's eviction
 * (fetchd/evict.c), so both pick the same victims the same way.
 *
 * An entry is <cacheDir>/sha256:<hex> (the blob's bytes at the blob's
 * offsets, sparse) plus <that>.meta (include/obd_format.h, "Cache entry
 * metadata"); a gunzip entry (gzipCacheConfig.cacheDir) has a third file,
 * <that>.gzindex, the layer's gzip index. Subdirectories and any other names are not entries and are
 * never touched.
 *
 * Eviction policy (the reference's, spec 6.5, on our entries):
 *   capacity   = cacheConfig.cacheSizeGB (GiB)
 *   water mark = max(90 % of capacity, capacity - 50 GiB)
 *   risk mark  = max(capacity - 5 GiB, midpoint of water mark and capacity)
 * When usage (bytes on disk of every entry, broken ones included) exceeds
 * the risk mark, or the free space of the cache's file system falls below
 * a floor (minFreeGB), entries are evicted least recently used first until
 * usage is at or below the water mark. The gap between the marks keeps
 * eviction from running on every write. An entry is never evicted while a
 * device uses it, nor when it was used less than a grace period ago (obd
 * attach makes an entry a moment before the table that uses it loads).
 * Broken entries go before healthy ones: no new reader can use them.
 */
#ifndef OBD_FETCHD_CACHE_SCAN_H
#define OBD_FETCHD_CACHE_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "obd.h"

/* At most this many entries are listed; the rest are counted in dropped. */
#define CACHE_SCAN_MAX_ENTRIES	(1u << 18)
#define CACHE_SCAN_REASON_MAX	160

struct cache_scan_entry {
	char digest[OBD_DIGEST_STR_LEN + 1];	/* "sha256:<hex>", from the name */
	char *path;		/* <dir>/sha256:<hex>, the cache file */
	char *meta_path;	/* path + ".meta" (same allocation as path) */
	uint64_t size;		/* blob size from the header; 0 if it did not decode */
	uint64_t disk_bytes;	/* st_blocks * 512 of the cache file and the .meta */
	uint64_t cached_bytes;	/* bytes whose bit is set (last granule short); 0 if broken */
	bool complete;		/* OBD_CACHE_F_COMPLETE */
	bool gunzip;		/* OBD_CACHE_F_GUNZIP: a gunzip entry (the decompressed
				 * stream of the gzip blob digest names); its <path>.gzindex
				 * is counted in disk_bytes and removed with it */
	int64_t last_use_ns;	/* later mtime of the two files, ns since the epoch */
	dev_t dev;		/* the cache file's inode (0/0 when it is missing), */
	ino_t ino;		/* to match a dm table's path to this entry */
	char broken[CACHE_SCAN_REASON_MAX];	/* "" when healthy, else why not */
	char **users;		/* in-use names (dm devices), see cache_scan_add_user() */
	unsigned int nusers;
};

struct cache_scan {
	struct cache_scan_entry *e;	/* sorted by digest */
	size_t n;
	uint64_t usage;		/* sum of disk_bytes */
	size_t dropped;		/* entries past CACHE_SCAN_MAX_ENTRIES, not listed */
};

/*
 * List the entries of dir. Never fails because of one entry: an entry whose
 * .meta or cache file is missing, whose header does not decode (lib/core/cache.c),
 * names another digest or blob size, or whose bitmap is shorter than the
 * header says, is listed with broken set. 0, or -errno with err naming dir
 * (not a directory, unreadable, out of memory). Free with cache_scan_free().
 */
int cache_scan(const char *dir, struct cache_scan *out, char *err, size_t errlen);
void cache_scan_free(struct cache_scan *s);

/* Record that name (a dm device) uses entry i. 0 or -ENOMEM. */
int cache_scan_add_user(struct cache_scan *s, size_t i, const char *name);

/*
 * Mark the entries the overlaybd table params of device dev use: each
 * remote layer word remote:<size>:sha256:<hex>:<cache file> whose cache
 * file is an entry's (same inode, or the same path when the file is gone)
 * gets dev as a user. Other words are skipped. Returns the number of
 * remote words seen (whether or not they name an entry of this scan), or
 * -ENOMEM.
 */
int cache_scan_mark_table(struct cache_scan *s, const char *dev, const char *params);

/*
 * Remove the entry whose cache file is data_path: unlink the .meta, then
 * the cache file, then fsync the directory (why this order: cache_scan.c).
 * Already gone (ENOENT) counts as removed. 0, or -errno with err naming
 * the file.
 */
int cache_entry_remove(const char *data_path, char *err, size_t errlen);
/* The unlinks alone (1 removed, 0 already gone, -errno), for a caller that
 * removes many entries and then makes them durable with one
 * cache_dir_sync() of their directory (0 or -errno). */
int cache_entry_unlink(const char *data_path, char *err, size_t errlen);
int cache_dir_sync(const char *data_path, char *err, size_t errlen);

/* ------------------------------------------------------------------------
 * LRU selection: a pure function of the scan, no I/O.
 * ------------------------------------------------------------------------ */
typedef bool (*cache_in_use_fn)(const struct cache_scan_entry *e, void *arg);

/* in_use for a scan marked with cache_scan_mark_table(): nusers > 0. */
bool cache_scan_has_users(const struct cache_scan_entry *e, void *arg);

struct cache_lru_req {
	uint64_t target;	/* choose victims until usage <= target (0: all eligible) */
	int64_t now_ns;		/* the clock the grace is measured against */
	uint64_t grace_s;	/* last_use newer than now - grace: never chosen */
	cache_in_use_fn in_use;	/* NULL: nothing is in use */
	void *arg;
};

struct cache_lru_res {
	size_t n;		/* victims[0 .. n): indexes into s->e, broken first, then oldest first */
	uint64_t usage_after;	/* s->usage minus the victims' disk_bytes */
	bool reached;		/* usage_after <= target */
	size_t skipped_in_use;	/* eligible by age but in use */
	size_t skipped_recent;	/* not in use but inside the grace period */
};

/*
 * Choose victims: entries not in use and not used within the grace, broken
 * ones first, then least recently used first (ties by digest), until usage
 * is at or below req->target. If they are not enough, every eligible entry
 * is chosen and reached is false. victims must have room for s->n indexes.
 */
void cache_lru_select(const struct cache_scan *s, const struct cache_lru_req *req,
		      size_t *victims, struct cache_lru_res *res);

/* The marks of the policy above, for a capacity in bytes. */
void cache_marks(uint64_t capacity, uint64_t *water, uint64_t *risk);

/* Bytes available to unprivileged users on dir's file system (statvfs). 0 or -errno. */
int cache_fs_avail(const char *dir, uint64_t *avail);

#endif
