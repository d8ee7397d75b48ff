/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Cache entries in userspace: <cacheDir>/sha256:<hex> (the blob's bytes at
 * the blob's offsets, sparse) and <that>.meta (include/obd_format.h, "Cache
 * entry metadata": header + presence bitmap). Shared by obd (attach makes
 * entries and fills the few ranges it reads itself) and overlaybd-fetchd
 * (which keeps the bitmap while it fills ranges).
 *
 * The durability rule, for every writer: a bit is set in the .meta file
 * only after the data of its granule was written and fdatasync'ed; bits
 * are cleared (and that made durable) before a range is fetched again.
 * A bit on disk therefore always means "these bytes are right", whatever
 * crash happens in between.
 */
#ifndef OBD_FETCHD_CACHE_ENTRY_H
#define OBD_FETCHD_CACHE_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>

#include "obd.h"

struct cache_entry {
	char path[PATH_MAX];	/* the cache file */
	char meta_path[PATH_MAX];	/* path + ".meta" */
	int fd;			/* cache file, O_RDWR */
	int meta_fd;		/* .meta, O_RDWR */
	struct obd_cache_info info;	/* decoded header */
	uint64_t *bits;		/* in-memory copy of the bitmap (info.bitmap_bytes) */
	uint64_t ngranules;
	/*
	 * Set by the daemon: cache_entry_clear() and the header changes do not
	 * fdatasync the .meta themselves; the caller does (through its ring),
	 * so nothing blocks its event loop. obd leaves it false.
	 */
	bool defer_sync;
};

/* "<dir>/sha256:<hex>" for a digest string. 0 or -ENAMETOOLONG/-EINVAL. */
int cache_entry_path(const char *dir, const char *digest, char *out, size_t outlen);
/*
 * mkdir -p of a cache directory: the cache itself 0700 (it names what this
 * host runs and holds private layers; its files are 0600), parents 0755.
 * 0, or -errno with the component that failed in failed[failedlen].
 */
int cache_dir_make(const char *dir, char *failed, size_t failedlen);

/*
 * A file obd (root) put in a cache directory given to the directory's owner,
 * as the entries it makes are (the daemon may run as its own user). 0 or -errno.
 */
int cache_file_give_to_dir_owner(const char *path, char *err, size_t errlen);

/*
 * Open the entry at path, creating it if absent (cache file truncated to
 * size, sparse; .meta with an empty bitmap; both fsync'ed, then the
 * directory), or validating it if present: its header must decode
 * (lib/core/cache.c) and name the same size and digest, else -EEXIST with err
 * saying what differs. A url of the same origin and repository spelt
 * otherwise is rewritten (bitmap kept). Another origin or repository:
 * a complete (sha256-verified) entry is shared as it is (its url, of the
 * verified origin, kept); a partial one is replaced by a fresh, empty
 * entry at the same path (new inodes: whoever has the old ones open keeps
 * them). A cache file whose size is not
 * the blob size is an error. err names the file. 0 or -errno.
 */
int cache_entry_open(struct cache_entry *e, const char *path, uint64_t size,
		     const uint8_t digest[OBD_CACHE_DIGEST_LEN], const char *url, char *err,
		     size_t errlen);

/*
 * The same for a gunzip entry (docs/turbo-oci.md): usize the uncompressed
 * size, digest and url the compressed blob's, flag OBD_CACHE_F_GUNZIP set
 * at creation; an ordinary entry at path is -EEXIST.
 */
int cache_entry_open_gunzip(struct cache_entry *e, const char *path, uint64_t usize,
			    const uint8_t digest[OBD_CACHE_DIGEST_LEN], const char *url, char *err,
			    size_t errlen);

/* Open an existing entry (the daemon after a restart: the URL comes from
 * the .meta). Same checks; size/digest from the OPEN message. */
int cache_entry_open_existing(struct cache_entry *e, const char *path, uint64_t size,
			      const uint8_t digest[OBD_CACHE_DIGEST_LEN], char *err,
			      size_t errlen);

void cache_entry_close(struct cache_entry *e);

/* Granule helpers on the in-memory bitmap. Ranges are bytes; they are
 * rounded out to granules (the last granule may be short). */
bool cache_entry_present(const struct cache_entry *e, uint64_t off, uint64_t len);
/* Bytes from off that are present, up to len. */
uint64_t cache_entry_present_prefix(const struct cache_entry *e, uint64_t off, uint64_t len);
uint64_t cache_entry_present_bytes(const struct cache_entry *e);

/*
 * Mark [off, off + len) present: the caller has written the bytes AND
 * fdatasync'ed the cache file. Sets the bits in memory and writes the
 * changed bitmap words to the .meta (pwrite); durable after
 * cache_entry_sync_meta(). Granule aligned, end may be the blob size.
 */
int cache_entry_mark(struct cache_entry *e, uint64_t off, uint64_t len);
/* Clear bits (before a refetch), written and fdatasync'ed at once. */
int cache_entry_clear(struct cache_entry *e, uint64_t off, uint64_t len);
int cache_entry_sync_meta(struct cache_entry *e);

/*
 * Header changes, each durable (fdatasync) before it returns, made by a
 * read-modify-write of the on-disk header under flock(2) so that obd and
 * the daemon never undo each other's change. cache_entry_clear() drops
 * the complete flag first by itself.
 *   set_complete: every byte present and the sha256 verified.
 *   set_download: the download policy of the image being attached.
 */
int cache_entry_set_complete(struct cache_entry *e, char *err, size_t errlen);
/*
 * How long a header change waits for the lock another process holds
 * before it fails with -EWOULDBLOCK: 10 s (obd); the daemon sets 0 (one
 * try, the loop tries again later). Never unbounded.
 */
extern int cache_entry_lock_wait_ms;
int cache_entry_set_download(struct cache_entry *e, const struct obd_cache_dl *dl, char *err,
			     size_t errlen);

/*
 * Synchronous fill, for obd: write buf (the blob bytes [off, off + len),
 * granule aligned, end may be the blob size) into the cache file,
 * fdatasync it, mark and sync the .meta. 0 or -errno.
 */
int cache_entry_fill(struct cache_entry *e, uint64_t off, const void *buf, uint64_t len);

#endif
