// SPDX-License-Identifier: GPL-2.0-only
/*
 * The cache directory as a whole (cache_scan.h): listing, the in-use marks
 * from dm tables, LRU selection and removal. Headers are decoded by
 * lib/core/cache.c, the one parser of the .meta format; nothing here reads a
 * field of struct obd_cache_hdr itself.
 *
 * Everything read is bounded: at most CACHE_SCAN_MAX_ENTRIES entries, one
 * 4096-byte header per entry, and a bitmap is read in fixed chunks and only
 * as far as the header's blob size needs (at most 32 MiB, OBD_CACHE_MAX_BLOB),
 * after checking the file holds as many bytes as the header says.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cache_scan.h"
#include "config.h"
#include "dm_table.h"
#include "durable.h"
#include "env_user.h"

#define GRANULE		((uint64_t)1 << OBD_CACHE_GRANULE_SHIFT)
#define META_SUFFIX	".meta"
#define META_SUFFIX_LEN	5
#define GZINDEX_SUFFIX	".gzindex"	/* a gunzip entry's gzip index (fetchd/gunzip.c) */
#define GZINDEX_SUFFIX_LEN	8
#define BITMAP_CHUNK	65536u

/* "sha256:<hex>" (data) or "sha256:<hex>.meta"; 0 = neither. */
enum name_kind { NAME_OTHER = 0, NAME_DATA, NAME_META };

static enum name_kind name_kind(const char *name)
{
	size_t len = strlen(name);
	u8 raw[OBD_CACHE_DIGEST_LEN];

	if (len < OBD_DIGEST_STR_LEN || obd_digest_parse(name, OBD_DIGEST_STR_LEN, raw))
		return NAME_OTHER;
	if (len == OBD_DIGEST_STR_LEN)
		return NAME_DATA;
	if (len == OBD_DIGEST_STR_LEN + META_SUFFIX_LEN &&
	    !strcmp(name + OBD_DIGEST_STR_LEN, META_SUFFIX))
		return NAME_META;
	return NAME_OTHER;
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static void __attribute__((format(printf, 2, 3)))
set_broken(struct cache_scan_entry *e, const char *fmt, ...)
{
	va_list ap;

	if (e->broken[0])	/* the first problem found is the one shown */
		return;
	va_start(ap, fmt);
	vsnprintf(e->broken, sizeof(e->broken), fmt, ap);
	va_end(ap);
	if (!e->broken[0])
		snprintf(e->broken, sizeof(e->broken), "broken");
}

/* ------------------------------------------------------------------------
 * One entry
 * ------------------------------------------------------------------------ */

/*
 * Bits set among the first ngranules of the bitmap at bitmap_off, as bytes
 * (the last granule is short when size is not granule aligned).
 */
static int count_bits(int fd, const struct obd_cache_info *ci, uint64_t *bytes)
{
	uint64_t ngr = OBD_DIV_UP(ci->blob_size, GRANULE);
	uint64_t need = OBD_DIV_UP(ngr, 8), done = 0, set = 0;
	bool last_set = false;
	u8 *buf = malloc(BITMAP_CHUNK);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	while (done < need) {
		size_t len = need - done < BITMAP_CHUNK ? (size_t)(need - done) : BITMAP_CHUNK;
		size_t i;

		rc = obd_pread_all(fd, buf, len, ci->bitmap_off + done);
		if (rc)
			break;
		if (done + len == need && ngr % 8)	/* bits past the last granule mean nothing */
			buf[len - 1] &= (u8)((1u << (ngr % 8)) - 1);
		for (i = 0; i < len; i++)
			set += (uint64_t)__builtin_popcount(buf[i]);
		if (done + len == need)
			last_set = buf[len - 1] >> ((ngr - 1) % 8) & 1;
		done += len;
	}
	free(buf);
	if (rc)
		return rc;
	*bytes = set * GRANULE;
	if (last_set && ci->blob_size % GRANULE)
		*bytes -= GRANULE - ci->blob_size % GRANULE;
	return 0;
}

/* Header and bitmap of the .meta (already known to be a regular file). */
static void read_meta(int dirfd, const char *mname, struct cache_scan_entry *e,
		      const struct stat *mst, const struct stat *dst)
{
	struct obd_cache_info *ci;
	struct obd_err oe = { "" };
	char got[OBD_DIGEST_STR_LEN + 1];
	u8 *blk = NULL;
	int fd, rc;

	fd = openat(dirfd, mname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		set_broken(e, ".meta: %s", strerror(errno));
		return;
	}
	ci = malloc(sizeof(*ci));
	blk = malloc(OBD_CACHE_HDR_SPACE);
	if (!ci || !blk) {
		set_broken(e, ".meta: out of memory");
		goto out;
	}
	if ((uint64_t)mst->st_size < OBD_CACHE_HDR_SPACE) {
		set_broken(e, ".meta: header: file too short (%llu bytes)",
			   (unsigned long long)mst->st_size);
		goto out;
	}
	rc = obd_pread_all(fd, blk, OBD_CACHE_HDR_SPACE, 0);
	if (rc) {
		set_broken(e, ".meta: header: %s", strerror(-rc));
		goto out;
	}
	rc = obd_cache_hdr_decode(blk, ".meta", ci, &oe);
	if (rc) {
		set_broken(e, "%s", oe.msg);
		goto out;
	}
	e->size = ci->blob_size;
	e->complete = ci->flags & OBD_CACHE_F_COMPLETE;
	e->gunzip = ci->flags & OBD_CACHE_F_GUNZIP;
	obd_digest_format(ci->digest, got);
	if (strcmp(got, e->digest))
		set_broken(e, ".meta: digest %s, not the name's", got);
	else if (dst && (uint64_t)dst->st_size != ci->blob_size)
		set_broken(e, "cache file: %llu bytes, blob size %llu",
			   (unsigned long long)dst->st_size, (unsigned long long)ci->blob_size);
	else if ((uint64_t)mst->st_size < ci->bitmap_off + ci->bitmap_bytes)
		set_broken(e, ".meta: bitmap: file too short (%llu of %llu bytes)",
			   (unsigned long long)mst->st_size,
			   (unsigned long long)(ci->bitmap_off + ci->bitmap_bytes));
	else if ((rc = count_bits(fd, ci, &e->cached_bytes)))
		set_broken(e, ".meta: bitmap: %s", strerror(-rc));
out:
	if (e->broken[0])
		e->cached_bytes = 0;
	free(blk);
	free(ci);
	close(fd);
}

/*
 * Fill e for the entry named digest. 1: not an entry after all (the data
 * name is a directory), 0 listed, -ENOMEM.
 */
static int entry_fill(int dirfd, const char *dir, const char *digest,
		      struct cache_scan_entry *e)
{
	char mname[OBD_DIGEST_STR_LEN + GZINDEX_SUFFIX_LEN + 1];
	struct stat dst, mst;
	bool have_d, have_m;
	size_t len = strlen(dir) + 1 + OBD_DIGEST_STR_LEN + 1;

	memset(e, 0, sizeof(*e));
	memcpy(e->digest, digest, OBD_DIGEST_STR_LEN);
	have_d = !fstatat(dirfd, digest, &dst, AT_SYMLINK_NOFOLLOW);
	if (have_d && S_ISDIR(dst.st_mode))
		return 1;
	e->path = malloc(2 * len + META_SUFFIX_LEN);
	if (!e->path)
		return -ENOMEM;
	snprintf(e->path, len, "%s/%s", dir, digest);
	e->meta_path = e->path + len;
	snprintf(e->meta_path, len + META_SUFFIX_LEN, "%s/%s" META_SUFFIX, dir, digest);
	snprintf(mname, sizeof(mname), "%s" META_SUFFIX, e->digest);
	have_m = !fstatat(dirfd, mname, &mst, AT_SYMLINK_NOFOLLOW);

	if (have_d) {
		e->disk_bytes += (uint64_t)dst.st_blocks * 512;
		e->last_use_ns = mtime_ns(&dst);
		e->dev = dst.st_dev;
		e->ino = dst.st_ino;
		if (!S_ISREG(dst.st_mode))
			set_broken(e, "cache file: not a regular file");
	} else {
		set_broken(e, "cache file missing");
	}
	if (have_m) {
		e->disk_bytes += (uint64_t)mst.st_blocks * 512;
		if (mtime_ns(&mst) > e->last_use_ns)
			e->last_use_ns = mtime_ns(&mst);
		if (!S_ISREG(mst.st_mode))
			set_broken(e, ".meta: not a regular file");
		else
			read_meta(dirfd, mname, e, &mst, have_d ? &dst : NULL);
	} else {
		set_broken(e, ".meta missing");
	}
	/* a gunzip entry's gzip index is part of it */
	snprintf(mname, sizeof(mname), "%s" GZINDEX_SUFFIX, e->digest);
	if (!fstatat(dirfd, mname, &mst, AT_SYMLINK_NOFOLLOW) && S_ISREG(mst.st_mode))
		e->disk_bytes += (uint64_t)mst.st_blocks * 512;
	if (e->broken[0])
		e->cached_bytes = 0;
	return 0;
}

/* ------------------------------------------------------------------------
 * The directory
 * ------------------------------------------------------------------------ */
static int cmp_digest(const void *a, const void *b)
{
	const struct cache_scan_entry *x = a, *y = b;

	return strcmp(x->digest, y->digest);
}

static void entry_free(struct cache_scan_entry *e)
{
	unsigned int i;

	for (i = 0; i < e->nusers; i++)
		free(e->users[i]);
	free(e->users);
	free(e->path);
}

void cache_scan_free(struct cache_scan *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		entry_free(&s->e[i]);
	free(s->e);
	memset(s, 0, sizeof(*s));
}

static int scan_grow(struct cache_scan *s, size_t *cap)
{
	size_t ncap = *cap ? *cap * 2 : 64;
	struct cache_scan_entry *ne;

	if (ncap > CACHE_SCAN_MAX_ENTRIES)
		ncap = CACHE_SCAN_MAX_ENTRIES;
	ne = realloc(s->e, ncap * sizeof(*ne));
	if (!ne)
		return -ENOMEM;
	s->e = ne;
	*cap = ncap;
	return 0;
}

/*
 * The name of the entry a directory entry belongs to, or NULL. A .meta is
 * taken for its own entry only when there is no cache file: otherwise the
 * cache file's name lists it (one entry per pair).
 */
static const char *entry_name(int dirfd, const char *name, char *digest)
{
	switch (name_kind(name)) {
	case NAME_DATA:
		return name;
	case NAME_META:
		memcpy(digest, name, OBD_DIGEST_STR_LEN);
		digest[OBD_DIGEST_STR_LEN] = 0;
		if (!faccessat(dirfd, digest, F_OK, AT_SYMLINK_NOFOLLOW) || errno != ENOENT)
			return NULL;
		return digest;
	default:
		return NULL;
	}
}

int cache_scan(const char *dir, struct cache_scan *s, char *err, size_t errlen)
{
	char digest[OBD_DIGEST_STR_LEN + 1];
	struct dirent *de;
	size_t cap = 0;
	DIR *d;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	d = opendir(dir);
	if (!d)
		return reg_errf(err, errlen, -errno, "%s: %s", dir, strerror(errno));
	for (;;) {
		const char *name;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				rc = reg_errf(err, errlen, -errno, "%s: reading the directory: %s",
					      dir, strerror(errno));
			break;
		}
		name = entry_name(dirfd(d), de->d_name, digest);
		if (!name)
			continue;
		if (s->n == CACHE_SCAN_MAX_ENTRIES) {
			s->dropped++;
			continue;
		}
		if (s->n == cap && scan_grow(s, &cap)) {
			rc = -ENOMEM;
			break;
		}
		rc = entry_fill(dirfd(d), dir, name, &s->e[s->n]);
		if (rc < 0)
			break;
		if (rc == 0) {
			s->usage += s->e[s->n].disk_bytes;
			s->n++;
		}
		rc = 0;
	}
	closedir(d);
	if (rc == -ENOMEM)
		reg_errf(err, errlen, rc, "%s: out of memory", dir);
	if (rc) {
		cache_scan_free(s);
		return rc;
	}
	if (s->n)
		qsort(s->e, s->n, sizeof(*s->e), cmp_digest);
	return 0;
}

/* ------------------------------------------------------------------------
 * Users: which dm devices use an entry
 * ------------------------------------------------------------------------ */
int cache_scan_add_user(struct cache_scan *s, size_t i, const char *name)
{
	struct cache_scan_entry *e = &s->e[i];
	char **nu, *copy;
	unsigned int k;

	for (k = 0; k < e->nusers; k++)	/* a device may stack a blob twice */
		if (!strcmp(e->users[k], name))
			return 0;
	copy = strdup(name);
	nu = copy ? realloc(e->users, (e->nusers + 1) * sizeof(*nu)) : NULL;
	if (!nu) {
		free(copy);
		return -ENOMEM;
	}
	nu[e->nusers++] = copy;
	e->users = nu;
	return 0;
}

bool cache_scan_has_users(const struct cache_scan_entry *e, void *arg)
{
	return e->nusers > 0;
}

/* The entry named digest (NUL-terminated, or the first 71 bytes), or NULL. */
static struct cache_scan_entry *find_digest(struct cache_scan *s, const char *digest)
{
	struct cache_scan_entry key;

	if (!s->n)
		return NULL;
	memcpy(key.digest, digest, OBD_DIGEST_STR_LEN);
	key.digest[OBD_DIGEST_STR_LEN] = 0;
	return bsearch(&key, s->e, s->n, sizeof(*s->e), cmp_digest);
}

/* Does the cache file path (st valid when have_st) name entry e? */
static bool same_file(const struct cache_scan_entry *e, const char *path,
		      const struct stat *st, bool have_st)
{
	if (!e)
		return false;
	if (have_st && e->ino)
		return e->dev == st->st_dev && e->ino == st->st_ino;
	return !strcmp(e->path, path);
}

/*
 * One remote word: remote:<size>:sha256:<hex>:<cache file>. The entry is
 * looked up by the token's digest and by the file's own name (dmsetup
 * users may point a token at any file), then matched by inode.
 */
static int mark_token(struct cache_scan *s, const char *dev, const char *tok)
{
	const char *p = tok + 7, *dig, *path, *base;
	struct cache_scan_entry *cand[2];
	u8 raw[OBD_CACHE_DIGEST_LEN];
	struct stat st;
	bool have_st;
	unsigned int k;

	while (*p >= '0' && *p <= '9')
		p++;
	if (p == tok + 7 || *p != ':')
		return 0;
	dig = p + 1;
	if (strlen(dig) < OBD_DIGEST_STR_LEN + 2 || dig[OBD_DIGEST_STR_LEN] != ':' ||
	    obd_digest_parse(dig, OBD_DIGEST_STR_LEN, raw))
		return 0;
	path = dig + OBD_DIGEST_STR_LEN + 1;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	have_st = !stat(path, &st);
	cand[0] = find_digest(s, dig);
	cand[1] = name_kind(base) == NAME_DATA ? find_digest(s, base) : NULL;
	for (k = 0; k < 2; k++)
		if (same_file(cand[k], path, &st, have_st) &&
		    cache_scan_add_user(s, (size_t)(cand[k] - s->e), dev))
			return -ENOMEM;
	return 0;
}

int cache_scan_mark_table(struct cache_scan *s, const char *dev, const char *params)
{
	char *copy = strdup(params);
	struct obd_table t;
	unsigned int i;
	int seen = 0, rc = 0;

	if (!copy)
		return -ENOMEM;
	/*
	 * A line that does not parse whole (more options than this build
	 * knows of, say) still marks the remote layers read before the
	 * problem: an entry a device uses that is taken for unused could be
	 * pruned or evicted. obd snapshot refuses such a line instead.
	 */
	(void)obd_table_parse(copy, &t);
	for (i = 0; i < t.n && !rc; i++) {
		/* a warp layer's remote target (tar blob or gunzip entry) is in use too */
		const char *w[2] = { t.layers[i], t.targets[i] };

		for (int k = 0; k < 2 && !rc; k++) {
			if (!w[k] || strncmp(w[k], "remote:", 7))
				continue;
			seen++;
			rc = mark_token(s, dev, w[k]);
		}
	}
	free(copy);
	return rc ? rc : seen;
}

/* ------------------------------------------------------------------------
 * Removal
 * ------------------------------------------------------------------------ */

/*
 * Why .meta first, then the cache file, then the directory:
 *
 * The .meta is the only thing that says a byte is present; a cache file
 * without one is never trusted (cache_entry_open() truncates it to holes
 * before use). Unlinking the .meta first makes the entry absent in one
 * step; from then on a reader finds no bits, whatever state the cache file
 * is in. The other order would leave, for a moment, bits that describe a
 * cache file that is gone or about to be replaced.
 *
 *  - A kernel (or fetchd) with the files open keeps its inodes: an unlink
 *    only removes the names. The bytes it serves and the bits it keeps are
 *    those of the old inodes, still consistent with each other, and the
 *    space is freed when it closes them. fetchd writes to the inode the
 *    kernel names in OPEN, never to a file put at the same path since
 *    (include/obd_uapi.h). We still never remove an entry a device uses:
 *    its space would not come back, and a module reload would start over.
 *  - obd attach creating a fresh entry at the same path right after: it
 *    sees no .meta, so it makes a new cache file (truncating to holes
 *    whatever inode is at the path) and then a new .meta (renamed into
 *    place). If our unlink of the cache file lands between the two, the new
 *    .meta is left without its cache file: attach fails to load the table
 *    and the entry lists as broken ("cache file missing"). Nobody can open
 *    the pair, so no stale bit is taken as present; the next attach after
 *    a prune of it starts clean.
 *  - A concurrent remover: both unlink the same names; whoever comes second
 *    gets ENOENT, which means done.
 *  - A crash: the single directory fsync makes both unlinks durable. If
 *    only some reach the disk, what remains is the whole pair (the entry
 *    as it was), a cache file alone (no bits: truncated before reuse) or a
 *    .meta alone (cannot be opened without its cache file): never bits for
 *    bytes that are not there.
 */
/* 1 removed, 0 already gone, -errno */
static int unlink_gone_ok(const char *path)
{
	if (!unlink(path))
		return 1;
	return errno == ENOENT ? 0 : -errno;
}

int cache_entry_unlink(const char *data_path, char *err, size_t errlen)
{
	char meta[PATH_MAX];
	int rm, rd, rg;

	if (snprintf(meta, sizeof(meta), "%s" META_SUFFIX, data_path) >= (int)sizeof(meta))
		return reg_errf(err, errlen, -ENAMETOOLONG, "%s: path too long", data_path);
	rm = unlink_gone_ok(meta);
	if (rm < 0)	/* keep the cache file: its bits are still on disk */
		return reg_errf(err, errlen, rm, "%s: unlink: %s", meta, strerror(-rm));
	rd = unlink_gone_ok(data_path);
	if (rd < 0)
		return reg_errf(err, errlen, rd, "%s: unlink: %s", data_path, strerror(-rd));
	/* a gunzip entry's index goes with it (nothing reads it without the .meta) */
	if (snprintf(meta, sizeof(meta), "%s" GZINDEX_SUFFIX, data_path) >= (int)sizeof(meta))
		return reg_errf(err, errlen, -ENAMETOOLONG, "%s: path too long", data_path);
	rg = unlink_gone_ok(meta);
	if (rg < 0)
		return reg_errf(err, errlen, rg, "%s: unlink: %s", meta, strerror(-rg));
	return rm || rd || rg;
}

int cache_dir_sync(const char *data_path, char *err, size_t errlen)
{
	int rc = obd_fsync_dir_of(data_path);

	if (rc)
		return reg_errf(err, errlen, rc, "%s: fsync of the directory: %s", data_path,
				strerror(-rc));
	return 0;
}

int cache_entry_remove(const char *data_path, char *err, size_t errlen)
{
	int rc = cache_entry_unlink(data_path, err, errlen);

	if (rc <= 0)	/* an error, or someone else removed it: nothing of ours to sync */
		return rc;
	return cache_dir_sync(data_path, err, errlen);
}

/* ------------------------------------------------------------------------
 * LRU selection and the marks
 * ------------------------------------------------------------------------ */

/* Broken first (no new reader can use them), then oldest, then by digest. */
static int cmp_victim(const void *a, const void *b, void *arg)
{
	const struct cache_scan_entry *e = arg;
	const struct cache_scan_entry *x = &e[*(const size_t *)a], *y = &e[*(const size_t *)b];
	bool bx = x->broken[0], by = y->broken[0];

	if (bx != by)
		return bx ? -1 : 1;
	if (x->last_use_ns != y->last_use_ns)
		return x->last_use_ns < y->last_use_ns ? -1 : 1;
	return strcmp(x->digest, y->digest);
}

void cache_lru_select(const struct cache_scan *s, const struct cache_lru_req *req,
		      size_t *victims, struct cache_lru_res *res)
{
	int64_t grace_ns = req->grace_s > (uint64_t)INT64_MAX / 1000000000 ? INT64_MAX :
			   (int64_t)req->grace_s * 1000000000;
	int64_t newest = req->now_ns < INT64_MIN + grace_ns ? INT64_MIN : req->now_ns - grace_ns;
	size_t i, cand = 0;

	memset(res, 0, sizeof(*res));
	res->usage_after = s->usage;
	for (i = 0; i < s->n; i++) {
		const struct cache_scan_entry *e = &s->e[i];

		if (req->in_use && req->in_use(e, req->arg))
			res->skipped_in_use++;
		else if (e->last_use_ns > newest)
			res->skipped_recent++;
		else
			victims[cand++] = i;
	}
	if (cand)
		qsort_r(victims, cand, sizeof(*victims), cmp_victim, s->e);
	while (res->n < cand && res->usage_after > req->target) {
		uint64_t b = s->e[victims[res->n]].disk_bytes;

		res->usage_after -= b < res->usage_after ? b : res->usage_after;
		res->n++;
	}
	res->reached = res->usage_after <= req->target;
}

void cache_marks(uint64_t capacity, uint64_t *water, uint64_t *risk)
{
	const uint64_t gib = 1ULL << 30;
	uint64_t ninety = capacity - capacity / 10;
	uint64_t less50 = capacity > 50 * gib ? capacity - 50 * gib : 0;
	uint64_t less5 = capacity > 5 * gib ? capacity - 5 * gib : 0;
	uint64_t w = ninety > less50 ? ninety : less50;
	uint64_t mid = w + (capacity - w) / 2;

	*water = w;
	*risk = less5 > mid ? less5 : mid;
}

int cache_fs_avail(const char *dir, uint64_t *avail)
{
	struct statvfs sv;

	if (statvfs(dir, &sv))
		return -errno;
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}
