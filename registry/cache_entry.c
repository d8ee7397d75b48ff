// SPDX-License-Identifier: GPL-2.0-only
/*
 * Cache entries in userspace (cache_entry.h): <cacheDir>/sha256:<hex> and
 * its .meta (header + presence bitmap, include/obd_format.h). The bitmap
 * is kept in memory as host-order 64-bit words; on disk word w is the
 * little-endian u64 at info.bitmap_off + 8 * w (bit g = byte g / 8, bit
 * g % 8, LSB first: the same bits).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_entry.h"
#include "cache_scan.h"
#include "config.h"
#include "url.h"
#include "durable.h"
#include "env_user.h"

#define GRANULE		((uint64_t)1 << OBD_CACHE_GRANULE_SHIFT)

int cache_dir_make(const char *dir, char *failed, size_t failedlen)
{
	char p[PATH_MAX];
	size_t i, n = strlen(dir);

	if (n >= sizeof(p)) {
		snprintf(failed, failedlen, "%s", dir);
		return -ENAMETOOLONG;
	}
	memcpy(p, dir, n + 1);
	for (i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i])
			continue;
		p[i] = 0;
		if (mkdir(p, i == n ? 0700 : 0755) && errno != EEXIST) {
			snprintf(failed, failedlen, "%s", p);
			return -errno;
		}
		p[i] = dir[i];
	}
	return 0;
}

int cache_entry_path(const char *dir, const char *digest, char *out, size_t outlen)
{
	u8 raw[OBD_CACHE_DIGEST_LEN];
	int n;

	if (!dir || !digest || obd_digest_parse(digest, strlen(digest), raw))
		return -EINVAL;
	n = snprintf(out, outlen, "%s/%s", dir, digest);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

/* ------------------------------------------------------------------------
 * Bitmap words
 * ------------------------------------------------------------------------ */
static bool bit_test(const struct cache_entry *e, uint64_t g)
{
	return (e->bits[g / 64] >> (g % 64)) & 1;
}

static uint64_t granule_len(const struct cache_entry *e, uint64_t g)
{
	uint64_t start = g << OBD_CACHE_GRANULE_SHIFT;
	uint64_t end = start + GRANULE;

	return (end > e->info.blob_size ? e->info.blob_size : end) - start;
}

/*
 * Word w on disk: set the bits of setm, clear those of clrm, keep the
 * rest as they are on disk. obd and the daemon may both hold the entry,
 * each with its own in-memory copy: writing our whole word would undo the
 * other's change to its other bits (a bit the daemon cleared before a
 * refetch, set again by a stale word of obd's: bytes taken as present
 * that are not). The read-modify-write holds an OFD lock on the word's 8
 * bytes (independent of the header's flock), for a few syscalls.
 */
int cache_entry_lock_wait_ms = 10000;

/*
 * A bitmap word's lock is held for one pread and one pwrite of 8 bytes:
 * waiting longer means its holder is stopped (obd under a debugger, or
 * SIGSTOP), and the daemon's event loop must not wait for it. Bounded by
 * cache_entry_lock_wait_ms, or WORD_LOCK_MS where that is 0 (the daemon):
 * then -EWOULDBLOCK, the word unchanged on disk (the daemon logs it; those
 * granules are fetched again after a restart).
 */
#define WORD_LOCK_MS	20

static int lock_word(int fd, struct flock *fl)
{
	int limit = cache_entry_lock_wait_ms > 0 ? cache_entry_lock_wait_ms : WORD_LOCK_MS;
	int waited_us = 0;

	for (;;) {
		if (!fcntl(fd, F_OFD_SETLK, fl))
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EACCES)
			return -errno;
		if (waited_us >= limit * 1000)
			return -EWOULDBLOCK;
		usleep(500);
		waited_us += 500;
	}
}

static int write_word(struct cache_entry *e, uint64_t w, uint64_t setm, uint64_t clrm)
{
	off_t off = (off_t)(e->info.bitmap_off + w * 8);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = off, .l_len = 8 };
	__le64 v;
	int rc;

	rc = lock_word(e->meta_fd, &fl);
	if (rc)
		return rc;
	rc = obd_pread_all(e->meta_fd, &v, sizeof(v), (uint64_t)off);
	if (!rc) {
		v = cpu_to_le64((le64_to_cpu(v) | setm) & ~clrm);
		rc = obd_pwrite_all(e->meta_fd, &v, sizeof(v), (uint64_t)off);
	}
	fl.l_type = F_UNLCK;
	fcntl(e->meta_fd, F_OFD_SETLK, &fl);
	return rc;
}

/* Granules [g0, g1) of a byte range that must be aligned (end: or the blob size). */
static int aligned_range(const struct cache_entry *e, uint64_t off, uint64_t len,
			 uint64_t *g0, uint64_t *g1)
{
	uint64_t end;

	if (!len || off >= e->info.blob_size || len > e->info.blob_size - off)
		return -EINVAL;
	end = off + len;
	if (off % GRANULE || (end % GRANULE && end != e->info.blob_size))
		return -EINVAL;
	*g0 = off >> OBD_CACHE_GRANULE_SHIFT;
	*g1 = OBD_DIV_UP(end, GRANULE);
	return 0;
}

/* Set or clear bits [g0, g1) in memory; write each changed word. */
static int update_bits(struct cache_entry *e, uint64_t g0, uint64_t g1, bool set)
{
	uint64_t w, g;
	int rc;

	for (w = g0 / 64; w <= (g1 - 1) / 64; w++) {
		uint64_t old = e->bits[w], nw, mask = 0;

		for (g = w * 64 > g0 ? w * 64 : g0; g < g1 && g < (w + 1) * 64; g++)
			mask |= (uint64_t)1 << (g % 64);
		nw = set ? old | mask : old & ~mask;
		if (nw == old)
			continue;
		e->bits[w] = nw;
		rc = write_word(e, w, set ? mask : 0, set ? 0 : mask);
		if (rc) {
			e->bits[w] = old;
			return rc;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Queries
 * ------------------------------------------------------------------------ */
bool cache_entry_present(const struct cache_entry *e, uint64_t off, uint64_t len)
{
	uint64_t g, g1, end;

	if (!len)
		return true;
	if (off >= e->info.blob_size || len > e->info.blob_size - off)
		return false;
	end = off + len;
	g1 = OBD_DIV_UP(end, GRANULE);
	for (g = off >> OBD_CACHE_GRANULE_SHIFT; g < g1; g++)
		if (!bit_test(e, g))
			return false;
	return true;
}

uint64_t cache_entry_present_prefix(const struct cache_entry *e, uint64_t off, uint64_t len)
{
	uint64_t size = e->info.blob_size, end, pos, g;

	if (off >= size)
		return 0;
	end = len > size - off ? size : off + len;
	for (pos = off; pos < end;) {
		uint64_t gend;

		g = pos >> OBD_CACHE_GRANULE_SHIFT;
		if (!bit_test(e, g))
			break;
		gend = (g + 1) << OBD_CACHE_GRANULE_SHIFT;
		pos = gend < end ? gend : end;
	}
	return pos - off;
}

uint64_t cache_entry_present_bytes(const struct cache_entry *e)
{
	uint64_t g, n = 0;

	for (g = 0; g < e->ngranules; g++)
		if (bit_test(e, g))
			n += granule_len(e, g);
	return n;
}

/* ------------------------------------------------------------------------
 * Updates
 * ------------------------------------------------------------------------ */
int cache_entry_mark(struct cache_entry *e, uint64_t off, uint64_t len)
{
	uint64_t g0, g1;
	int rc = aligned_range(e, off, len, &g0, &g1);

	return rc ? rc : update_bits(e, g0, g1, true);
}

int cache_entry_sync_meta(struct cache_entry *e)
{
	return fdatasync(e->meta_fd) ? -errno : 0;
}

int cache_entry_fill(struct cache_entry *e, uint64_t off, const void *buf, uint64_t len)
{
	uint64_t g0, g1;
	int rc = aligned_range(e, off, len, &g0, &g1);

	if (rc)
		return rc;
	rc = obd_pwrite_all(e->fd, buf, len, off);
	if (rc)
		return rc;
	if (fdatasync(e->fd))
		return -errno;
	rc = update_bits(e, g0, g1, true);
	return rc ? rc : cache_entry_sync_meta(e);
}

/* ------------------------------------------------------------------------
 * Open, create, close
 * ------------------------------------------------------------------------ */
void cache_entry_close(struct cache_entry *e)
{
	if (e->fd >= 0)
		close(e->fd);
	if (e->meta_fd >= 0)
		close(e->meta_fd);
	free(e->bits);
	e->bits = NULL;
	e->fd = e->meta_fd = -1;
}

static int entry_init(struct cache_entry *e, const char *path, char *err, size_t errlen)
{
	memset(e, 0, sizeof(*e));
	e->fd = e->meta_fd = -1;
	if (snprintf(e->path, sizeof(e->path), "%s", path) >= (int)sizeof(e->path) ||
	    snprintf(e->meta_path, sizeof(e->meta_path), "%s.meta", path) >=
	    (int)sizeof(e->meta_path))
		return reg_errf(err, errlen, -ENAMETOOLONG, "%s: path too long", path);
	return 0;
}

static int alloc_bits(struct cache_entry *e, char *err, size_t errlen)
{
	e->ngranules = OBD_DIV_UP(e->info.blob_size, GRANULE);
	e->bits = calloc(1, e->info.bitmap_bytes);
	if (!e->bits)
		return reg_errf(err, errlen, -ENOMEM, "%s: out of memory for the bitmap",
			      e->meta_path);
	return 0;
}

/*
 * A file made in the cache belongs to the cache directory's owner: the
 * daemon may run as its own user (overlaybd-fetchd --user), which is given
 * the directory, and must be able to open what obd (root) makes there.
 * Only root changes owners; any other obd makes its files its own anyway.
 */
static int give_to_dir_owner(int fd, const char *path, char *err, size_t errlen)
{
	char *copy;
	struct stat dst, st;
	int rc = 0;

	if (geteuid())
		return 0;
	copy = strdup(path);
	if (!copy)
		return reg_errf(err, errlen, -ENOMEM, "%s: out of memory", path);
	if (stat(dirname(copy), &dst) < 0 || fstat(fd, &st) < 0)
		rc = -errno;
	else if ((st.st_uid != dst.st_uid || st.st_gid != dst.st_gid) &&
		 fchown(fd, dst.st_uid, dst.st_gid) < 0)
		rc = -errno;
	free(copy);
	if (rc)
		reg_errf(err, errlen, rc, "%s: giving it to the cache directory's owner: %s", path,
			 strerror(-rc));
	return rc;
}

int cache_file_give_to_dir_owner(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), rc;

	if (fd < 0)
		return reg_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
	rc = give_to_dir_owner(fd, path, err, errlen);
	close(fd);
	return rc;
}

/* The cache file: created if absent, sparse, of the blob size. */
static int create_data(struct cache_entry *e, char *err, size_t errlen)
{
	struct stat st;
	int rc;

	e->fd = open(e->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (e->fd < 0)
		return reg_errf(err, errlen, -errno, "%s: %s", e->path, strerror(errno));
	if (fstat(e->fd, &st))
		return reg_errf(err, errlen, -errno, "%s: %s", e->path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return reg_errf(err, errlen, -EINVAL, "%s: not a regular file", e->path);
	rc = give_to_dir_owner(e->fd, e->path, err, errlen);
	if (rc)
		return rc;
	/* no .meta: whatever bytes it holds are unknown; start from holes */
	if ((st.st_size && ftruncate(e->fd, 0)) ||
	    ftruncate(e->fd, (off_t)e->info.blob_size))
		return reg_errf(err, errlen, -errno, "%s: truncate: %s", e->path, strerror(errno));
	if (fsync(e->fd))
		return reg_errf(err, errlen, -errno, "%s: fsync: %s", e->path, strerror(errno));
	return 0;
}

/* The .meta: written under a temporary name, fsync'ed, renamed, dir fsync'ed. */
static int create_meta(struct cache_entry *e, char *err, size_t errlen)
{
	struct obd_err oe = { "" };
	char tmp[PATH_MAX + 32];
	u8 *blk;
	int fd, rc;

	blk = calloc(1, OBD_CACHE_HDR_SPACE);
	if (!blk)
		return reg_errf(err, errlen, -ENOMEM, "%s: out of memory", e->meta_path);
	rc = obd_cache_hdr_encode(&e->info, blk, &oe);
	if (rc) {
		reg_errf(err, errlen, rc, "%s: %s", e->meta_path, oe.msg);
		goto out_free;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", e->meta_path, (long)getpid());
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST && !unlink(tmp))
		fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = reg_errf(err, errlen, -errno, "%s: %s", tmp, strerror(errno));
		goto out_free;
	}
	rc = give_to_dir_owner(fd, tmp, err, errlen);
	if (rc) {
		close(fd);
		unlink(tmp);
		goto out_free;
	}
	rc = obd_pwrite_all(fd, blk, OBD_CACHE_HDR_SPACE, 0);
	if (!rc && ftruncate(fd, (off_t)(e->info.bitmap_off + e->info.bitmap_bytes)))
		rc = -errno;
	if (!rc && fsync(fd))
		rc = -errno;
	if (!rc && rename(tmp, e->meta_path))
		rc = -errno;
	if (rc) {
		reg_errf(err, errlen, rc, "%s: writing: %s", tmp, strerror(-rc));
		goto out_unlink;
	}
	rc = obd_fsync_dir_of(e->meta_path);
	if (rc) {
		reg_errf(err, errlen, rc, "%s: fsync of the directory: %s", e->meta_path,
		       strerror(-rc));
		close(fd);
		goto out_free;
	}
	e->meta_fd = fd;
	goto out_free;
out_unlink:
	close(fd);
	unlink(tmp);
out_free:
	free(blk);
	return rc;
}

static int entry_create(struct cache_entry *e, uint64_t size,
			const uint8_t digest[OBD_CACHE_DIGEST_LEN], const char *url, uint32_t flags,
			char *err, size_t errlen)
{
	int rc;

	if (!size || size > OBD_CACHE_MAX_BLOB)
		return reg_errf(err, errlen, -EINVAL, "%s: blob size %llu, expected 1..%llu",
			      e->path, (unsigned long long)size,
			      (unsigned long long)OBD_CACHE_MAX_BLOB);
	if (strlen(url) >= OBD_CACHE_URL_MAX)
		return reg_errf(err, errlen, -ENAMETOOLONG, "%s: url longer than %u bytes",
			      e->path, OBD_CACHE_URL_MAX - 1);
	e->info.blob_size = size;
	e->info.flags = flags;
	memcpy(e->info.digest, digest, OBD_CACHE_DIGEST_LEN);
	e->info.bitmap_off = OBD_CACHE_HDR_SPACE;
	e->info.bitmap_bytes = obd_cache_bitmap_bytes(size);
	snprintf(e->info.url, sizeof(e->info.url), "%s", url);
	rc = create_data(e, err, errlen);
	if (!rc)
		rc = create_meta(e, err, errlen);
	if (!rc)
		rc = alloc_bits(e, err, errlen);
	return rc;
}

/* The .meta's header block, read and decoded: *blk (OBD_CACHE_HDR_SPACE, freed by the caller). */
static int hdr_read(struct cache_entry *e, u8 **blk, struct obd_cache_info *ci, char *err,
		    size_t errlen)
{
	struct obd_err oe = { "" };
	int rc;

	*blk = malloc(OBD_CACHE_HDR_SPACE);
	if (!*blk)
		return reg_errf(err, errlen, -ENOMEM, "%s: out of memory", e->meta_path);
	rc = obd_pread_all(e->meta_fd, *blk, OBD_CACHE_HDR_SPACE, 0);
	if (rc)
		return reg_errf(err, errlen, rc, "%s: cache header: %s", e->meta_path,
				rc == -EIO ? "file too short" : strerror(-rc));
	rc = obd_cache_hdr_decode(*blk, e->meta_path, ci, &oe);
	if (rc)
		return reg_errf(err, errlen, rc, "%s", oe.msg);
	return 0;
}

/* Read and check the header and bitmap of an open .meta. */
static int entry_load(struct cache_entry *e, uint64_t size,
		      const uint8_t digest[OBD_CACHE_DIGEST_LEN], char *err, size_t errlen)
{
	struct stat st;
	uint64_t w;
	u8 *blk;
	int rc;

	rc = hdr_read(e, &blk, &e->info, err, errlen);
	if (rc)
		goto out_free;
	if (e->info.blob_size != size) {
		rc = reg_errf(err, errlen, -EEXIST, "%s: blob_size %llu, expected %llu",
			    e->meta_path, (unsigned long long)e->info.blob_size,
			    (unsigned long long)size);
		goto out_free;
	}
	if (memcmp(e->info.digest, digest, OBD_CACHE_DIGEST_LEN)) {
		char got[OBD_DIGEST_STR_LEN + 1], want[OBD_DIGEST_STR_LEN + 1];

		obd_digest_format(e->info.digest, got);
		obd_digest_format(digest, want);
		rc = reg_errf(err, errlen, -EEXIST, "%s: digest %s, expected %s", e->meta_path,
			    got, want);
		goto out_free;
	}
	if (fstat(e->fd, &st)) {
		rc = reg_errf(err, errlen, -errno, "%s: %s", e->path, strerror(errno));
		goto out_free;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
		rc = reg_errf(err, errlen, -EINVAL, "%s: file size %llu, expected the blob size %llu",
			    e->path, (unsigned long long)st.st_size, (unsigned long long)size);
		goto out_free;
	}
	rc = alloc_bits(e, err, errlen);
	if (rc)
		goto out_free;
	rc = obd_pread_all(e->meta_fd, e->bits, e->info.bitmap_bytes, e->info.bitmap_off);
	if (rc) {
		reg_errf(err, errlen, rc, "%s: bitmap: %s", e->meta_path,
		       rc == -EIO ? "file too short" : strerror(-rc));
		goto out_free;
	}
	for (w = 0; w < e->info.bitmap_bytes / 8; w++)
		e->bits[w] = le64_to_cpu((__le64)e->bits[w]);
	/* bits past the last granule mean nothing; ignore them */
	if (e->ngranules % 64)
		e->bits[e->ngranules / 64] &= ((uint64_t)1 << (e->ngranules % 64)) - 1;
out_free:
	free(blk);
	return rc;
}

/*
 * Header fields change by read-modify-write of the on-disk header under
 * flock: obd (url, download policy) and the daemon (complete flag) may
 * both hold the entry, and neither may undo the other's change.
 */
struct hdr_change {
	const char *url;		/* NULL: keep */
	const struct obd_cache_dl *dl;	/* NULL: keep */
	uint32_t set_flags, clear_flags;
};

static int hdr_rewrite_locked(struct cache_entry *e, const struct hdr_change *c, char *err,
			      size_t errlen)
{
	struct obd_cache_info ci;
	struct obd_err oe = { "" };
	u8 *blk;
	int rc;

	rc = hdr_read(e, &blk, &ci, err, errlen);
	if (rc)
		goto out_free;
	if (c->url)
		snprintf(ci.url, sizeof(ci.url), "%s", c->url);
	if (c->dl)
		ci.dl = *c->dl;
	ci.flags = (ci.flags | c->set_flags) & ~c->clear_flags;
	rc = obd_cache_hdr_encode(&ci, blk, &oe);
	if (rc) {
		reg_errf(err, errlen, rc, "%s: %s", e->meta_path, oe.msg);
		goto out_free;
	}
	rc = obd_pwrite_all(e->meta_fd, blk, OBD_CACHE_HDR_SPACE, 0);
	if (!rc && !e->defer_sync)
		rc = cache_entry_sync_meta(e);
	if (rc)
		reg_errf(err, errlen, rc, "%s: rewriting the header: %s", e->meta_path,
			 strerror(-rc));
	if (!rc)
		e->info = ci;
out_free:
	free(blk);
	return rc;
}

/*
 * The header lock, never waited for without bound: a process stopped (or
 * stuck) while holding it must not freeze the other. With a wait of 0
 * (the daemon, whose event loop must never block) one try: -EWOULDBLOCK
 * and the caller tries again later.
 */
static int lock_meta(struct cache_entry *e, char *err, size_t errlen)
{
	int waited = 0;

	for (;;) {
		if (!flock(e->meta_fd, LOCK_EX | LOCK_NB))
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK)
			return reg_errf(err, errlen, -errno, "%s: flock: %s", e->meta_path,
					strerror(errno));
		if (waited >= cache_entry_lock_wait_ms)
			return reg_errf(err, errlen, -EWOULDBLOCK,
					"%s: locked by another process (obd or overlaybd-fetchd) for %d ms",
					e->meta_path, waited);
		usleep(10000);
		waited += 10;
	}
}

static int hdr_rewrite(struct cache_entry *e, const struct hdr_change *c, char *err,
		       size_t errlen)
{
	int rc;

	if (c->url && strlen(c->url) >= OBD_CACHE_URL_MAX)
		return reg_errf(err, errlen, -ENAMETOOLONG, "%s: url longer than %u bytes",
				e->path, OBD_CACHE_URL_MAX - 1);
	rc = lock_meta(e, err, errlen);
	if (rc)
		return rc;
	rc = hdr_rewrite_locked(e, c, err, errlen);
	flock(e->meta_fd, LOCK_UN);
	return rc;
}

/* A different url is stored in place of the old one (the bitmap is kept). */
static int rewrite_url(struct cache_entry *e, const char *url, char *err, size_t errlen)
{
	struct hdr_change c = { .url = url };

	return hdr_rewrite(e, &c, err, errlen);
}

int cache_entry_set_complete(struct cache_entry *e, char *err, size_t errlen)
{
	struct hdr_change c = { .set_flags = OBD_CACHE_F_COMPLETE };

	return hdr_rewrite(e, &c, err, errlen);
}

int cache_entry_set_download(struct cache_entry *e, const struct obd_cache_dl *dl, char *err,
			     size_t errlen)
{
	struct hdr_change c = { .dl = dl };

	if (!memcmp(&e->info.dl, dl, sizeof(*dl)))
		return 0;
	return hdr_rewrite(e, &c, err, errlen);
}

static int entry_open_both(struct cache_entry *e, char *err, size_t errlen)
{
	e->meta_fd = open(e->meta_path, O_RDWR | O_CLOEXEC);
	if (e->meta_fd < 0)
		return reg_errf(err, errlen, -errno, "%s: %s", e->meta_path, strerror(errno));
	e->fd = open(e->path, O_RDWR | O_CLOEXEC);
	if (e->fd < 0)
		return reg_errf(err, errlen, -errno, "%s: %s", e->path, strerror(errno));
	return 0;
}

/*
 * An existing entry's bits say "these bytes came from the stored url's
 * registry and repository". Only a complete entry, whose sha256 was
 * checked against the digest, is right whoever names that digest. A
 * partial one is one origin's (scheme, host, port) repository's word: it
 * is not served to another (cross-registry cache poisoning), see
 * cache_entry_open().
 */
/*
 * Put a fresh, empty entry in place of e's: new inodes at the same path
 * (removed the way eviction removes, .meta first). Whoever has the old
 * files open (a device, the daemon) keeps them, bytes and bits consistent
 * with each other; nothing the old origin wrote reaches the new entry.
 */
static int entry_replace(struct cache_entry *e, uint64_t size,
			 const uint8_t digest[OBD_CACHE_DIGEST_LEN], const char *url, uint32_t flags,
			 char *err, size_t errlen)
{
	char path[PATH_MAX];
	int rc;

	snprintf(path, sizeof(path), "%s", e->path);
	cache_entry_close(e);
	rc = cache_entry_remove(path, err, errlen);
	if (!rc)
		rc = entry_init(e, path, err, errlen);
	if (!rc)
		rc = entry_create(e, size, digest, url, flags, err, errlen);
	return rc;
}

/* flags: OBD_CACHE_F_GUNZIP or 0, the kind of entry the path must hold. */
static int entry_open(struct cache_entry *e, const char *path, uint64_t size,
		      const uint8_t digest[OBD_CACHE_DIGEST_LEN], const char *url, uint32_t flags,
		      char *err, size_t errlen)
{
	struct stat st;
	int rc;

	rc = entry_init(e, path, err, errlen);
	if (rc)
		return rc;
	if (!url)
		url = "";
	if (stat(e->meta_path, &st) && errno == ENOENT)
		rc = entry_create(e, size, digest, url, flags, err, errlen);
	else {
		rc = entry_open_both(e, err, errlen);
		if (!rc)
			rc = entry_load(e, size, digest, err, errlen);
		if (!rc && (e->info.flags & OBD_CACHE_F_GUNZIP) != flags)
			rc = reg_errf(err, errlen, -EEXIST, "%s: %s entry, expected %s", e->path,
				      flags ? "an ordinary" : "a gunzip",
				      flags ? "a gunzip one" : "an ordinary one");
		if (!rc && strcmp(e->info.url, url)) {
			if (url_same_repo(e->info.url, url))	/* spelt otherwise */
				rc = rewrite_url(e, url, err, errlen);
			else if (!(e->info.flags & OBD_CACHE_F_COMPLETE))
				rc = entry_replace(e, size, digest, url, flags, err, errlen);
			/*
			 * else shared, and the url of the origin whose bytes were
			 * verified stays: a refetch after a clear goes there.
			 */
		}
		/* a use: the eviction grace counts from now (cache_scan.h) */
		if (!rc && futimens(e->meta_fd, NULL) < 0)
			rc = reg_errf(err, errlen, -errno, "%s: touching it: %s", e->meta_path,
				      strerror(errno));
	}
	if (rc)
		cache_entry_close(e);
	return rc;
}

int cache_entry_open(struct cache_entry *e, const char *path, uint64_t size,
		     const uint8_t digest[OBD_CACHE_DIGEST_LEN], const char *url, char *err,
		     size_t errlen)
{
	return entry_open(e, path, size, digest, url, 0, err, errlen);
}

int cache_entry_open_gunzip(struct cache_entry *e, const char *path, uint64_t usize,
			    const uint8_t digest[OBD_CACHE_DIGEST_LEN], const char *url, char *err,
			    size_t errlen)
{
	return entry_open(e, path, usize, digest, url, OBD_CACHE_F_GUNZIP, err, errlen);
}

int cache_entry_open_existing(struct cache_entry *e, const char *path, uint64_t size,
			      const uint8_t digest[OBD_CACHE_DIGEST_LEN], char *err,
			      size_t errlen)
{
	int rc;

	rc = entry_init(e, path, err, errlen);
	if (!rc)
		rc = entry_open_both(e, err, errlen);
	if (!rc)
		rc = entry_load(e, size, digest, err, errlen);
	if (rc)
		cache_entry_close(e);
	return rc;
}

int cache_entry_clear(struct cache_entry *e, uint64_t off, uint64_t len)
{
	struct hdr_change c = { .clear_flags = OBD_CACHE_F_COMPLETE };
	uint64_t g0, g1;
	int rc = aligned_range(e, off, len, &g0, &g1);

	/* no longer complete: said (durably) before any bit goes */
	if (!rc && (e->info.flags & OBD_CACHE_F_COMPLETE))
		rc = hdr_rewrite(e, &c, NULL, 0);

	if (!rc)
		rc = update_bits(e, g0, g1, false);
	return rc || e->defer_sync ? rc : cache_entry_sync_meta(e);
}
