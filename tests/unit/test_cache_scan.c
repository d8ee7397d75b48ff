// SPDX-License-Identifier: GPL-2.0-only
/*
 * registry/cache_scan.c: the marks, LRU selection (ordering, in use, grace,
 * not enough to evict), scanning a real directory (cached bytes with a
 * short last granule, disk bytes, last use, every kind of broken entry,
 * names that are not entries), in-use marks from dm table params, and
 * removal (order, ENOENT, open inodes keep their bytes).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache_entry.h"
#include "cache_scan.h"
#include "env_user.h"
#include "tap.h"

#define G	4096ULL
#define GIB	(1ULL << 30)
#define SEC	1000000000LL

static char dir[] = "/tmp/obd-scan-test.XXXXXX";

/* ------------------------------------------------------------------------
 * Marks
 * ------------------------------------------------------------------------ */
static void test_marks(void)
{
	uint64_t w, r;

	cache_marks(4 * GIB, &w, &r);
	tap_ok(w == 4 * GIB - 4 * GIB / 10 && r == w + (4 * GIB - w) / 2,
	       "marks 4 GiB: water 90 %%, risk the midpoint (%llu %llu)",
	       (unsigned long long)w, (unsigned long long)r);
	cache_marks(100 * GIB, &w, &r);
	tap_ok(w == 90 * GIB && r == 95 * GIB, "marks 100 GiB: 90 / 95 GiB");
	cache_marks(1000 * GIB, &w, &r);
	tap_ok(w == 950 * GIB && r == 995 * GIB, "marks 1000 GiB: capacity - 50 / - 5 GiB");
	cache_marks(0, &w, &r);
	tap_ok(w == 0 && r == 0, "marks 0: 0 / 0");
}

/* ------------------------------------------------------------------------
 * LRU selection on a scan built in memory
 * ------------------------------------------------------------------------ */
struct fake {
	uint64_t bytes;
	int64_t age_s;		/* seconds before NOW */
	bool used, broken;
};

#define NOW	(1800000000LL * SEC)
#define F(b, age)	{ .bytes = b, .age_s = age }
#define USED(b, age)	{ .bytes = b, .age_s = age, .used = true }
#define BROKEN(b, age)	{ .bytes = b, .age_s = age, .broken = true }

static void fake_scan(struct cache_scan *s, const struct fake *f, size_t n)
{
	size_t i;

	memset(s, 0, sizeof(*s));
	s->e = calloc(n, sizeof(*s->e));
	s->n = n;
	for (i = 0; i < n; i++) {
		struct cache_scan_entry *e = &s->e[i];

		snprintf(e->digest, sizeof(e->digest), "sha256:%064d", (int)i);
		e->disk_bytes = f[i].bytes;
		e->last_use_ns = NOW - f[i].age_s * SEC;
		e->nusers = f[i].used;
		if (f[i].broken)
			snprintf(e->broken, sizeof(e->broken), "bad");
		s->usage += f[i].bytes;
	}
}

static void fake_free(struct cache_scan *s)
{
	free(s->e);	/* no paths, no user names */
}

/* victims as "i,j,k" */
static const char *order(const size_t *v, size_t n)
{
	static char buf[256];
	size_t i, o = 0;

	buf[0] = 0;
	for (i = 0; i < n && o < sizeof(buf) - 8; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%zu", i ? "," : "", v[i]);
	return buf;
}

static void select_case(const char *what, const struct fake *f, size_t n, uint64_t target,
			uint64_t grace, const char *want, uint64_t want_after, bool want_reached)
{
	struct cache_lru_req req = {
		.target = target, .now_ns = NOW, .grace_s = grace,
		.in_use = cache_scan_has_users,
	};
	struct cache_lru_res res;
	struct cache_scan s;
	size_t v[16];

	fake_scan(&s, f, n);
	cache_lru_select(&s, &req, v, &res);
	tap_ok(!strcmp(order(v, res.n), want) && res.usage_after == want_after &&
	       res.reached == want_reached, "select: %s", what);
	if (strcmp(order(v, res.n), want) || res.usage_after != want_after ||
	    res.reached != want_reached)
		tap_diag("victims %s (want %s), after %llu (want %llu), reached %d",
			 order(v, res.n), want, (unsigned long long)res.usage_after,
			 (unsigned long long)want_after, res.reached);
	fake_free(&s);
}

static void test_select(void)
{
	static const struct fake plain[] = { F(100, 500), F(200, 1000), F(300, 3000), F(400, 2000) };
	static const struct fake used[] = {
		F(100, 500), USED(200, 1000), USED(300, 3000), F(400, 2000),
	};
	static const struct fake recent[] = { F(100, 10), F(200, 1000), F(300, 59), F(400, 61) };
	static const struct fake broken[] = { F(100, 5000), BROKEN(50, 10), BROKEN(30, 100) };
	static const struct fake ties[] = { F(10, 100), F(10, 100), F(10, 100) };
	struct cache_lru_req req = { .target = 0, .now_ns = NOW, .grace_s = 0 };
	struct cache_lru_res res;
	struct cache_scan s;
	size_t v[4];

	/* usage 1000: oldest c (3000 s), d, b, a */
	select_case("oldest first until at the target", plain, 4, 450, 0, "2,3", 300, true);
	select_case("target exactly met after one", plain, 4, 700, 0, "2", 700, true);
	select_case("already at the target: nothing", plain, 4, 1000, 0, "", 1000, true);
	select_case("target 0: every eligible, oldest first", plain, 4, 0, 0, "2,3,1,0", 0, true);
	select_case("in use skipped", used, 4, 100, 0, "3,0", 500, false);
	select_case("grace 60 s: 59 s and 10 s old never chosen", recent, 4, 0, 60, "1,3", 400,
		    false);
	select_case("broken first, then oldest", broken, 3, 60, 0, "2,1,0", 0, true);
	select_case("broken first even when not needed by age", broken, 3, 100, 0, "2,1", 100,
		    true);
	select_case("ties broken by digest", ties, 3, 10, 0, "0,1", 10, true);

	/* nothing evictable: says so, counts why, returns */
	fake_scan(&s, used, 4);
	s.e[0].nusers = s.e[3].nusers = 1;
	req.in_use = cache_scan_has_users;
	cache_lru_select(&s, &req, v, &res);
	tap_ok(res.n == 0 && !res.reached && res.usage_after == 1000 && res.skipped_in_use == 4,
	       "select: everything in use -> no victims, not reached, 4 in use");
	req.in_use = NULL;
	req.grace_s = 1000000;
	cache_lru_select(&s, &req, v, &res);
	tap_ok(res.n == 0 && !res.reached && res.skipped_recent == 4 && !res.skipped_in_use,
	       "select: in_use NULL, all within a long grace -> 4 recent");
	req.grace_s = UINT64_MAX;	/* no overflow in now - grace */
	cache_lru_select(&s, &req, v, &res);
	tap_ok(res.n == 0 && res.skipped_recent == 4, "select: grace UINT64_MAX");
	fake_free(&s);

	memset(&s, 0, sizeof(s));
	cache_lru_select(&s, &req, v, &res);
	tap_ok(res.n == 0 && res.reached && !res.usage_after, "select: empty scan");
}

/* ------------------------------------------------------------------------
 * Scanning a directory
 * ------------------------------------------------------------------------ */
static void digest_of(u8 d[OBD_CACHE_DIGEST_LEN], u8 seed)
{
	for (int i = 0; i < OBD_CACHE_DIGEST_LEN; i++)
		d[i] = (u8)(seed * 7 + i);
}

/* Make <dir>/sha256:<digest of seed> of size bytes, granules [g0, g1) filled. */
static int mk_entry(u8 seed, uint64_t size, uint64_t g0, uint64_t g1, char *path, size_t plen)
{
	char digest[OBD_DIGEST_STR_LEN + 1], err[512];
	u8 dg[OBD_CACHE_DIGEST_LEN];
	struct cache_entry e;
	int rc;

	digest_of(dg, seed);
	obd_digest_format(dg, digest);
	snprintf(path, plen, "%s/%s", dir, digest);
	rc = cache_entry_open(&e, path, size, dg, "http://r/v2/x/blobs/y", err, sizeof(err));
	if (rc) {
		tap_diag("mk_entry: %s", err);
		return rc;
	}
	if (g1 > g0) {
		uint64_t off = g0 * G, end = g1 * G > size ? size : g1 * G;
		void *buf = calloc(1, end - off);

		memset(buf, 0xab, end - off);
		rc = cache_entry_fill(&e, off, buf, end - off);
		free(buf);
	}
	cache_entry_close(&e);
	return rc;
}

static const struct cache_scan_entry *find(const struct cache_scan *s, const char *path)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (!strcmp(s->e[i].path, path))
			return &s->e[i];
	return NULL;
}

static uint64_t disk_of(const char *path)
{
	char meta[PATH_MAX];
	struct stat a, b;
	uint64_t n = 0;

	snprintf(meta, sizeof(meta), "%s.meta", path);
	if (!stat(path, &a))
		n += (uint64_t)a.st_blocks * 512;
	if (!stat(meta, &b))
		n += (uint64_t)b.st_blocks * 512;
	return n;
}

static void set_mtime(const char *path, time_t t)
{
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };

	if (utimensat(AT_FDCWD, path, ts, 0))
		tap_diag("utimensat %s: %s", path, strerror(errno));
}

static int write_at(const char *path, const void *buf, size_t len, off_t off)
{
	int fd = open(path, O_WRONLY);
	int rc;

	if (fd < 0)
		return -errno;
	rc = obd_pwrite_all(fd, buf, len, (u64)off);
	close(fd);
	return rc;
}

/* Rewrite the header of a .meta with flags (encode = the real codec). */
static int set_flags(const char *path, u8 seed, uint64_t size, u32 flags)
{
	struct obd_cache_info ci = { .blob_size = size, .flags = flags };
	struct obd_err oe = { "" };
	char meta[PATH_MAX];
	u8 blk[OBD_CACHE_HDR_SPACE];

	digest_of(ci.digest, seed);
	snprintf(ci.url, sizeof(ci.url), "http://r/v2/x/blobs/y");
	if (obd_cache_hdr_encode(&ci, blk, &oe))
		return -EINVAL;
	snprintf(meta, sizeof(meta), "%s.meta", path);
	return write_at(meta, blk, sizeof(blk), 0);
}

/* A gunzip entry (flag GUNZIP, a .gzindex beside it): marked, its index counted and removed with it. */
static void test_gunzip(void)
{
	const uint64_t size = 4 * G;
	char p[PATH_MAX], idx[PATH_MAX + 16], buf[65536];
	const struct cache_scan_entry *e;
	struct cache_scan s;
	struct stat st;
	char err[512];
	int rc, fd;

	rc = mk_entry(40, size, 0, 4, p, sizeof(p));
	rc |= set_flags(p, 40, size, OBD_CACHE_F_GUNZIP);
	snprintf(idx, sizeof(idx), "%s.gzindex", p);
	memset(buf, 0x5a, sizeof(buf));
	fd = open(idx, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	rc |= fd < 0 ? -errno : obd_pwrite_all(fd, buf, sizeof(buf), 0);
	if (fd >= 0)
		close(fd);
	tap_ok(!rc && !stat(idx, &st), "gunzip: an entry with flag GUNZIP and a 64 KiB .gzindex");
	rc = cache_scan(dir, &s, err, sizeof(err));
	e = rc ? NULL : find(&s, p);
	tap_ok(e && e->gunzip && !e->broken[0] && e->cached_bytes == size &&
	       e->disk_bytes == disk_of(p) + (uint64_t)st.st_blocks * 512,
	       "gunzip: listed as gunzip, healthy, its .gzindex counted (%llu bytes on disk)",
	       e ? (unsigned long long)e->disk_bytes : 0ULL);
	if (!rc)
		cache_scan_free(&s);
	rc = cache_entry_remove(p, err, sizeof(err));
	tap_ok(rc == 0 && access(p, F_OK) && access(idx, F_OK),
	       "gunzip: removing the entry removes its .gzindex (%s)", rc < 0 ? err : "");
}

static void test_scan(void)
{
	/* 10 granules + 100 bytes: 11 granules, the last one 100 bytes */
	const uint64_t size = 10 * G + 100;
	char p[12][PATH_MAX], meta[PATH_MAX + 8], err[512];
	const struct cache_scan_entry *e;
	struct cache_scan s;
	uint64_t disk = 0;
	int i, rc;

	rc = mk_entry(1, size, 0, 3, p[1], sizeof(p[1]));	/* 3 full granules */
	rc |= mk_entry(2, size, 8, 11, p[2], sizeof(p[2]));	/* 2 full + the short one */
	rc |= mk_entry(3, size, 0, 11, p[3], sizeof(p[3]));	/* everything, then COMPLETE */
	rc |= set_flags(p[3], 3, size, OBD_CACHE_F_COMPLETE);
	rc |= mk_entry(4, size, 0, 0, p[4], sizeof(p[4]));	/* empty */
	for (i = 5; i <= 11; i++)
		rc |= mk_entry((u8)i, size, 0, 2, p[i], sizeof(p[i]));
	tap_ok(!rc, "scan: made 11 entries");
	if (rc)
		return;

	/* 5: bad magic, 6: .meta truncated to 100 bytes, 7: .meta missing,
	 * 8: cache file missing, 9: bitmap short, 10: cache file of another
	 * size, 11: .meta names another digest */
	snprintf(meta, sizeof(meta), "%s.meta", p[5]);
	write_at(meta, "XXXX", 4, 0);
	snprintf(meta, sizeof(meta), "%s.meta", p[6]);
	if (truncate(meta, 100)) {}
	snprintf(meta, sizeof(meta), "%s.meta", p[7]);
	unlink(meta);
	unlink(p[8]);
	snprintf(meta, sizeof(meta), "%s.meta", p[9]);
	if (truncate(meta, OBD_CACHE_HDR_SPACE + 1)) {}
	if (truncate(p[10], (off_t)size - 1)) {}
	rc = set_flags(p[11], 12, size, 0);

	/* not entries: a directory with an entry's name, other names, temp files */
	{
		char q[PATH_MAX + 64], dg[OBD_DIGEST_STR_LEN + 1];
		u8 raw[OBD_CACHE_DIGEST_LEN];

		digest_of(raw, 40);
		obd_digest_format(raw, dg);
		snprintf(q, sizeof(q), "%s/%s", dir, dg);
		rc |= mkdir(q, 0755);
		snprintf(q, sizeof(q), "%s/images", dir);
		rc |= mkdir(q, 0755);
		snprintf(q, sizeof(q), "%s/notes.txt", dir);
		rc |= close(creat(q, 0644));
		snprintf(q, sizeof(q), "%s.meta.tmp.123", p[1]);
		rc |= close(creat(q, 0644));
		snprintf(q, sizeof(q), "%s/SHA256:%064d", dir, 0);
		rc |= close(creat(q, 0644));
	}
	tap_ok(!rc, "scan: broke 7 entries, added names that are not entries");

	set_mtime(p[1], 1000000);
	snprintf(meta, sizeof(meta), "%s.meta", p[1]);
	set_mtime(meta, 2000000);
	set_mtime(p[2], 3000000);
	snprintf(meta, sizeof(meta), "%s.meta", p[2]);
	set_mtime(meta, 1500000);

	rc = cache_scan(dir, &s, err, sizeof(err));
	tap_ok(!rc, "scan: %s", rc ? err : "ok");
	if (rc)
		return;
	tap_ok(s.n == 11 && !s.dropped, "scan: 11 entries listed (got %zu)", s.n);
	for (i = 1; i < (int)s.n; i++)
		if (strcmp(s.e[i - 1].digest, s.e[i].digest) >= 0)
			break;
	tap_ok(s.n && i == (int)s.n, "scan: sorted by digest");
	for (i = 1; i <= 11; i++)
		disk += disk_of(p[i]);
	tap_ok(s.usage == disk && disk > 0, "scan: usage = st_blocks * 512 of every file (%llu)",
	       (unsigned long long)disk);

	e = find(&s, p[1]);
	tap_ok(e && !e->broken[0] && e->size == size && e->cached_bytes == 3 * G && !e->complete,
	       "scan: 3 granules cached");
	tap_ok(e && e->disk_bytes == disk_of(p[1]), "scan: disk bytes of one entry");
	tap_ok(e && e->last_use_ns == 2000000 * SEC, "scan: last use = the .meta's later mtime");
	tap_ok(e && !strcmp(e->digest, strrchr(p[1], '/') + 1), "scan: digest from the name");
	e = find(&s, p[2]);
	tap_ok(e && !e->broken[0] && e->cached_bytes == 2 * G + 100,
	       "scan: short last granule counts its 100 bytes");
	tap_ok(e && e->last_use_ns == 3000000 * SEC, "scan: last use = the cache file's later mtime");
	e = find(&s, p[3]);
	tap_ok(e && !e->broken[0] && e->cached_bytes == size && e->complete,
	       "scan: complete entry: every byte, COMPLETE flag");
	e = find(&s, p[4]);
	tap_ok(e && !e->broken[0] && e->cached_bytes == 0, "scan: empty entry: 0 cached");

	static const char *const why[] = {
		[5] = "bad magic", [6] = "file too short (100 bytes)", [7] = ".meta missing",
		[8] = "cache file missing", [9] = "bitmap: file too short",
		[10] = "cache file: 41059 bytes, blob size 41060", [11] = "not the name's",
	};
	for (i = 5; i <= 11; i++) {
		e = find(&s, p[i]);
		tap_ok(e && strstr(e->broken, why[i]) && e->cached_bytes == 0,
		       "scan: broken %d: \"%s\"", i, e ? e->broken : "(not listed)");
	}
	e = find(&s, p[8]);
	tap_ok(e && !e->ino && e->disk_bytes == disk_of(p[8]) && e->disk_bytes,
	       "scan: .meta alone: listed once, its bytes counted");
	cache_scan_free(&s);

	tap_ok(cache_scan("/nonexistent/obd-cache", &s, err, sizeof(err)) == -ENOENT &&
	       strstr(err, "/nonexistent/obd-cache"), "scan: missing dir -> -ENOENT naming it");
	tap_ok(cache_scan(p[1], &s, err, sizeof(err)) == -ENOTDIR, "scan: a file -> -ENOTDIR");
}

/* ------------------------------------------------------------------------
 * In-use marks from dm tables
 * ------------------------------------------------------------------------ */
static void test_mark(void)
{
	char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX], other[2 * PATH_MAX], tbl[4 * PATH_MAX + 256];
	char adig[OBD_DIGEST_STR_LEN + 1], err[512], odir[PATH_MAX];
	const struct cache_scan_entry *ea, *eb, *ec;
	struct cache_scan s;
	int rc, n;

	rc = mk_entry(21, 3 * G, 0, 1, a, sizeof(a));
	rc |= mk_entry(22, 3 * G, 0, 1, b, sizeof(b));
	rc |= mk_entry(23, 3 * G, 0, 1, c, sizeof(c));
	snprintf(adig, sizeof(adig), "%s", strrchr(a, '/') + 1);
	/* the same digest in another directory is another entry */
	snprintf(odir, sizeof(odir), "%s/images", dir);
	rc |= mkdir(odir, 0755);
	snprintf(other, sizeof(other), "%s/%s", odir, adig);
	rc |= close(creat(other, 0644));
	tap_ok(!rc, "mark: entries made");
	rc = cache_scan(dir, &s, err, sizeof(err));
	tap_ok(!rc, "mark: scan");
	if (rc)
		return;

	/* a: by path via "//" (same inode); b: twice in one device; other: not ours */
	snprintf(tbl, sizeof(tbl),
		 "4 remote:12288:%s:%s//%s /x/local.commit remote:12288:%s:%s remote:12288:%s:%s "
		 "1 no_verify",
		 adig, dir, adig, strrchr(b, '/') + 1, b, strrchr(b, '/') + 1, b);
	n = cache_scan_mark_table(&s, "dev1", tbl);
	tap_ok(n == 3, "mark: 3 remote words seen (%d)", n);
	snprintf(tbl, sizeof(tbl), "2 remote:12288:%s:%s remote:12288:%s:%s", adig, other,
		 strrchr(b, '/') + 1, b);
	n = cache_scan_mark_table(&s, "dev2", tbl);
	tap_ok(n == 2, "mark: dev2: 2 remote words");
	/* malformed words are skipped, never matched */
	snprintf(tbl, sizeof(tbl), "3 remote:x:%s:%s remote:12288:sha256:zz:%s remote:12288:%s",
		 strrchr(c, '/') + 1, c, c, strrchr(c, '/') + 1);
	n = cache_scan_mark_table(&s, "bad", tbl);
	tap_ok(n == 3, "mark: malformed remote words counted (%d)", n);
	/* only the first <#layers> words are layers */
	snprintf(tbl, sizeof(tbl), "1 /x/l remote:12288:%s:%s", strrchr(c, '/') + 1, c);
	tap_ok(cache_scan_mark_table(&s, "opts", tbl) == 0, "mark: words past #layers ignored");

	ea = find(&s, a);
	eb = find(&s, b);
	ec = find(&s, c);
	tap_ok(ea && ea->nusers == 1 && !strcmp(ea->users[0], "dev1"),
	       "mark: a used by dev1 only (the same digest elsewhere is not it)");
	tap_ok(eb && eb->nusers == 2 && !strcmp(eb->users[0], "dev1") &&
	       !strcmp(eb->users[1], "dev2"), "mark: b used by dev1 (once) and dev2");
	tap_ok(ec && ec->nusers == 0, "mark: c unused");
	tap_ok(ea && cache_scan_has_users(ea, NULL) && !cache_scan_has_users(ec, NULL),
	       "mark: cache_scan_has_users");
	cache_scan_free(&s);

	/* a token whose file is gone still matches by path */
	rc = cache_scan(dir, &s, err, sizeof(err));
	snprintf(tbl, sizeof(tbl), "1 remote:12288:%s:%s", strrchr(c, '/') + 1, c);
	unlink(c);
	n = cache_scan_mark_table(&s, "gone", tbl);
	ec = find(&s, c);
	tap_ok(!rc && n == 1 && ec && ec->nusers == 1, "mark: by path when the file is gone");
	cache_scan_free(&s);
	unlink(other);
}

/* ------------------------------------------------------------------------
 * Removal
 * ------------------------------------------------------------------------ */
static void test_remove(void)
{
	char p[PATH_MAX], meta[PATH_MAX + 8], err[512], buf[4];
	struct stat st;
	int fd, rc;

	rc = mk_entry(31, 2 * G, 0, 2, p, sizeof(p));
	tap_ok(!rc, "remove: entry made");
	if (rc)
		return;
	snprintf(meta, sizeof(meta), "%s.meta", p);
	fd = open(p, O_RDONLY);	/* a reader (the kernel) keeps its inode */
	rc = cache_entry_remove(p, err, sizeof(err));
	tap_ok(!rc && stat(p, &st) && stat(meta, &st), "remove: both files gone (%s)",
	       rc ? err : "ok");
	tap_ok(fd >= 0 && pread(fd, buf, 4, 0) == 4 && !memcmp(buf, "\xab\xab\xab\xab", 4),
	       "remove: an open reader still reads its bytes");
	if (fd >= 0)
		close(fd);
	tap_ok(!cache_entry_remove(p, err, sizeof(err)), "remove: again -> 0 (ENOENT is fine)");

	rc = mk_entry(32, 2 * G, 0, 1, p, sizeof(p));
	unlink(p);
	rc |= cache_entry_remove(p, err, sizeof(err));
	snprintf(meta, sizeof(meta), "%s.meta", p);
	tap_ok(!rc && stat(meta, &st), "remove: a .meta alone");

	/* the .meta cannot go: the cache file stays (its bits are still on disk) */
	rc = mk_entry(33, 2 * G, 0, 1, p, sizeof(p));
	snprintf(meta, sizeof(meta), "%s.meta", p);
	unlink(meta);
	rc |= mkdir(meta, 0755);
	snprintf(buf, sizeof(buf), "x");
	{
		char inner[PATH_MAX + 16];

		snprintf(inner, sizeof(inner), "%s/x", meta);
		rc |= close(creat(inner, 0644));
		tap_ok(!rc && cache_entry_remove(p, err, sizeof(err)) < 0 && strstr(err, meta) &&
		       !stat(p, &st), "remove: .meta not removable -> error naming it, data kept");
		unlink(inner);
	}
	rmdir(meta);
	unlink(p);
}

int main(void)
{
	char cmd[PATH_MAX + 16];

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_marks();
	test_select();
	test_scan();
	snprintf(cmd, sizeof(cmd), "rm -rf %s/*", dir);
	if (system(cmd)) {}
	test_gunzip();
	snprintf(cmd, sizeof(cmd), "rm -rf %s/*", dir);
	if (system(cmd)) {}
	test_mark();
	test_remove();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd)) {}
	return tap_done();
}
