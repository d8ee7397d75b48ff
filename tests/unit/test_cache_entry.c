// SPDX-License-Identifier: GPL-2.0-only
/*
 * registry/cache_entry.c: create, reopen, mark/clear, the short last
 * granule, mismatched size/digest, corrupted headers, and where the bitmap
 * words land in the .meta file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_entry.h"
#include "env_user.h"
#include "tap.h"

#define G 4096ULL
#define DG64 "sha256:0101010101010101010101010101010101010101010101010101010101010101"
#define U_A "http://r/v2/a/blobs/" DG64
#define U_A2 "http://R:80/v2/a/blobs/" DG64

static char dir[] = "/tmp/obd-cache-test.XXXXXX";

static void digest_of(u8 d[OBD_CACHE_DIGEST_LEN], u8 seed)
{
	for (int i = 0; i < OBD_CACHE_DIGEST_LEN; i++)
		d[i] = (u8)(seed + i);
}

static u64 file_size(const char *p)
{
	struct stat st;

	return stat(p, &st) ? (u64)-1 : (u64)st.st_size;
}

static u64 meta_word(const char *meta, u64 w)
{
	int fd = open(meta, O_RDONLY);
	__le64 v = 0;

	if (fd >= 0) {
		if (pread(fd, &v, 8, (off_t)(OBD_CACHE_HDR_SPACE + w * 8)) != 8)
			v = 0;
		close(fd);
	}
	return le64_to_cpu(v);
}

static void test_path(void)
{
	char out[PATH_MAX];
	const char *d = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

	tap_ok(!cache_entry_path("/c", d, out, sizeof(out)) && !strcmp(out, "/c/sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
	       "cache_entry_path: <dir>/sha256:<hex>");
	tap_ok(cache_entry_path("/c", "sha256:xyz", out, sizeof(out)) == -EINVAL,
	       "cache_entry_path: bad digest -> -EINVAL");
	tap_ok(cache_entry_path("/c", d, out, 20) == -ENAMETOOLONG,
	       "cache_entry_path: short buffer -> -ENAMETOOLONG");
}

static void test_create_reopen(void)
{
	/* 70 granules, the last one short: two bitmap words */
	const u64 size = 69 * G + 100;
	struct cache_entry e, e2;
	char path[PATH_MAX], err[512], *buf;
	u8 dg[OBD_CACHE_DIGEST_LEN], other[OBD_CACHE_DIGEST_LEN];
	int rc;

	digest_of(dg, 1);
	digest_of(other, 2);
	snprintf(path, sizeof(path), "%s/sha256:a", dir);
	rc = cache_entry_open(&e, path, size, dg, U_A, err, sizeof(err));
	tap_ok(!rc, "create: %s", rc ? err : "ok");
	if (rc)
		return;
	tap_ok(file_size(path) == size, "create: cache file has the blob size");
	tap_ok(file_size(e.meta_path) == OBD_CACHE_HDR_SPACE + 16, "create: .meta = header + 2 words");
	tap_ok(e.ngranules == 70 && cache_entry_present_bytes(&e) == 0, "create: 70 granules, none present");
	tap_ok(!cache_entry_present(&e, 0, 1), "create: nothing present");
	tap_ok(cache_entry_present(&e, 5, 0), "empty range is present");

	tap_ok(cache_entry_mark(&e, 1, G) == -EINVAL, "mark: unaligned start -> -EINVAL");
	tap_ok(cache_entry_mark(&e, 0, G + 1) == -EINVAL, "mark: unaligned end -> -EINVAL");
	tap_ok(cache_entry_mark(&e, 69 * G, 200) == -EINVAL, "mark: past the blob -> -EINVAL");
	tap_ok(cache_entry_mark(&e, 0, 0) == -EINVAL, "mark: empty -> -EINVAL");

	tap_ok(!cache_entry_mark(&e, 2 * G, 2 * G), "mark granules 2-3");
	tap_ok(cache_entry_present(&e, 2 * G, 2 * G) && cache_entry_present(&e, 2 * G + 7, 100) &&
	       !cache_entry_present(&e, G, 2 * G) && !cache_entry_present(&e, 3 * G, 2 * G),
	       "present: granules 2-3 only");
	tap_ok(cache_entry_present_prefix(&e, 2 * G + 10, 10 * G) == 2 * G - 10 &&
	       cache_entry_present_prefix(&e, G, 10 * G) == 0,
	       "present_prefix stops at the first missing granule");
	tap_ok(meta_word(e.meta_path, 0) == 0xcULL, "mark: word 0 on disk = 0xc");

	/* the short last granule: end = the blob size */
	tap_ok(!cache_entry_mark(&e, 69 * G, 100), "mark the short last granule (end = blob size)");
	tap_ok(cache_entry_present(&e, 69 * G, 100) && !cache_entry_present(&e, 69 * G, 101),
	       "present: last granule, not past the end");
	tap_ok(meta_word(e.meta_path, 1) == (1ULL << 5), "mark: word 1 on disk = bit 5 (granule 69)");
	tap_ok(cache_entry_present_bytes(&e) == 2 * G + 100, "present_bytes counts the short granule");
	tap_ok(cache_entry_present_prefix(&e, 69 * G, 1000) == 100, "present_prefix clipped to the blob");

	/* a range across the word boundary */
	tap_ok(!cache_entry_mark(&e, 62 * G, 4 * G), "mark granules 62-65 (across words)");
	tap_ok(meta_word(e.meta_path, 0) == (0xcULL | 3ULL << 62) &&
	       meta_word(e.meta_path, 1) == (1ULL << 5 | 3ULL),
	       "both words written at bitmap_off + w * 8");
	tap_ok(!cache_entry_clear(&e, 2 * G, G) && !cache_entry_present(&e, 2 * G, 1) &&
	       cache_entry_present(&e, 3 * G, 1) && meta_word(e.meta_path, 0) == (0x8ULL | 3ULL << 62),
	       "clear granule 2: in memory and on disk");

	/* fill: bytes written and marked */
	buf = malloc(2 * G);
	memset(buf, 0x5a, 2 * G);
	tap_ok(!cache_entry_fill(&e, 10 * G, buf, 2 * G) && cache_entry_present(&e, 10 * G, 2 * G),
	       "fill granules 10-11");
	{
		char back[16] = { 0 };
		int fd = open(path, O_RDONLY);

		tap_ok(fd >= 0 && pread(fd, back, 16, (off_t)(11 * G + 100)) == 16 &&
		       !memcmp(back, buf, 16), "fill: bytes in the cache file");
		if (fd >= 0)
			close(fd);
	}
	tap_ok(cache_entry_fill(&e, 10 * G + 1, buf, G) == -EINVAL, "fill: unaligned -> -EINVAL");
	free(buf);
	cache_entry_close(&e);

	/* reopen: the same bits */
	rc = cache_entry_open(&e2, path, size, dg, U_A, err, sizeof(err));
	tap_ok(!rc, "reopen: %s", rc ? err : "ok");
	if (!rc) {
		tap_ok(cache_entry_present_bytes(&e2) == (1 + 4 + 2) * G + 100 &&
		       cache_entry_present(&e2, 3 * G, G) && !cache_entry_present(&e2, 2 * G, G) &&
		       cache_entry_present(&e2, 62 * G, 4 * G) && cache_entry_present(&e2, 69 * G, 100),
		       "reopen: the bitmap as it was left");
		cache_entry_close(&e2);
	}
	/* the same origin and repository, spelt otherwise: the url is stored, the bits kept */
	rc = cache_entry_open(&e2, path, size, dg, U_A2, err, sizeof(err));
	tap_ok(!rc && cache_entry_present(&e2, 3 * G, G), "open with the same origin spelt otherwise keeps the bits");
	if (!rc)
		cache_entry_close(&e2);
	rc = cache_entry_open_existing(&e2, path, size, dg, err, sizeof(err));
	tap_ok(!rc && !strcmp(e2.info.url, U_A2),
	       "open_existing: the url rewritten");
	if (!rc)
		cache_entry_close(&e2);

	rc = cache_entry_open(&e2, path, size + 1, dg, "u", err, sizeof(err));
	tap_ok(rc == -EEXIST && strstr(err, "blob_size"), "mismatched size -> -EEXIST (%s)", err);
	rc = cache_entry_open(&e2, path, size, other, "u", err, sizeof(err));
	tap_ok(rc == -EEXIST && strstr(err, "digest"), "mismatched digest -> -EEXIST (%s)", err);
	tap_ok(e2.fd == -1 && e2.meta_fd == -1, "failed open leaves no fds");

	/* a cache file of the wrong size */
	if (truncate(path, (off_t)size - 1) == 0) {
		rc = cache_entry_open_existing(&e2, path, size, dg, err, sizeof(err));
		tap_ok(rc && strstr(err, "file size"), "cache file of another size rejected (%s)", err);
		if (truncate(path, (off_t)size)) {}
	}

	/* corrupted header: one byte of the url */
	{
		int fd = open(e.meta_path, O_RDWR);
		char c = 'X';

		tap_ok(fd >= 0 && pwrite(fd, &c, 1, 130) == 1, "corrupt one header byte");
		if (fd >= 0)
			close(fd);
		rc = cache_entry_open(&e2, path, size, dg, "u", err, sizeof(err));
		tap_ok(rc == -EFSBADCRC && strstr(err, "hdr_crc"), "corrupted .meta header rejected (%s)", err);
	}
	/* a .meta cut short inside the bitmap */
	{
		char p2[PATH_MAX];

		snprintf(p2, sizeof(p2), "%s/sha256:b", dir);
		rc = cache_entry_open(&e2, p2, 200 * G, dg, "u", err, sizeof(err));
		tap_ok(!rc, "create a second entry");
		if (!rc) {
			cache_entry_close(&e2);
			if (truncate(e2.meta_path, OBD_CACHE_HDR_SPACE + 8)) {}
			rc = cache_entry_open(&e2, p2, 200 * G, dg, "u", err, sizeof(err));
			tap_ok(rc == -EIO && strstr(err, "bitmap"), "truncated bitmap rejected (%s)", err);
		}
	}
	/* create with no .meta and a stale cache file: holes again */
	{
		char p3[PATH_MAX];
		int fd;

		snprintf(p3, sizeof(p3), "%s/sha256:c", dir);
		fd = open(p3, O_RDWR | O_CREAT, 0644);
		if (fd >= 0) {
			if (pwrite(fd, "junk", 4, 0) != 4) {}
			close(fd);
		}
		rc = cache_entry_open(&e2, p3, 3 * G, dg, "u", err, sizeof(err));
		tap_ok(!rc && file_size(p3) == 3 * G && cache_entry_present_bytes(&e2) == 0,
		       "create over a stale cache file without .meta");
		if (!rc) {
			char b4[4] = { 1, 1, 1, 1 };

			tap_ok(!obd_pread_all(e2.fd, b4, 4, 0) && !memcmp(b4, "\0\0\0\0", 4),
			       "  its old bytes are gone");
			cache_entry_close(&e2);
		}
	}
	rc = cache_entry_open(&e2, path, 0, dg, "u", err, sizeof(err));
	tap_ok(rc == -EFSBADCRC, "size 0 with a corrupted entry still rejected");
}

/* D1: a partial entry is not shared between origins/repositories; a complete one is */
static void test_origins(void)
{
	const u64 size = 10 * G;
	struct cache_entry a, b;
	char path[PATH_MAX], err[512];
	struct stat st0, st1;
	u8 dg[OBD_CACHE_DIGEST_LEN];
	int rc;

	digest_of(dg, 5);
	snprintf(path, sizeof(path), "%s/sha256:o", dir);
	rc = cache_entry_open(&a, path, size, dg, "http://a:5000/v2/x/blobs/" DG64, err, sizeof(err));
	tap_ok(!rc && !cache_entry_mark(&a, 0, 2 * G), "origins: A's entry, 2 granules present");
	if (rc)
		return;
	stat(path, &st0);
	rc = cache_entry_open(&b, path, size, dg, "http://b:5000/v2/x/blobs/" DG64, err, sizeof(err));
	stat(path, &st1);
	tap_ok(!rc && cache_entry_present_bytes(&b) == 0 && st0.st_ino != st1.st_ino,
	       "origins: another registry gets a fresh entry (new inode, no bits)");
	tap_ok(cache_entry_present(&a, 0, 2 * G), "origins: A's open entry keeps its bits");
	if (!rc)
		cache_entry_close(&b);
	rc = cache_entry_open(&b, path, size, dg, "https://b:5000/v2/x/blobs/" DG64, err, sizeof(err));
	tap_ok(!rc && cache_entry_mark(&b, 0, G) == 0, "origins: https is another origin than http");
	if (!rc)
		cache_entry_close(&b);
	rc = cache_entry_open(&b, path, size, dg, "https://b:5000/v2/y/blobs/" DG64, err, sizeof(err));
	tap_ok(!rc && cache_entry_present_bytes(&b) == 0, "origins: another repository gets a fresh entry");
	if (!rc) {
		tap_ok(!cache_entry_mark(&b, 0, size) && !cache_entry_set_complete(&b, err, sizeof(err)),
		       "origins: that entry made complete");
		cache_entry_close(&b);
	}
	rc = cache_entry_open(&b, path, size, dg, "http://c/v2/z/blobs/" DG64, err, sizeof(err));
	tap_ok(!rc && cache_entry_present_bytes(&b) == size &&
	       !strcmp(b.info.url, "https://b:5000/v2/y/blobs/" DG64),
	       "origins: a complete entry is shared (bits kept, the verified origin's url kept)");
	if (!rc)
		cache_entry_close(&b);
	cache_entry_close(&a);
}

/* Two holders of one entry (obd, the daemon): neither undoes the other's bits. */
static void test_two_holders(void)
{
	const u64 size = 10 * G;
	struct cache_entry o, d;
	char path[PATH_MAX], err[512];
	u8 dg[OBD_CACHE_DIGEST_LEN];
	int rc;

	digest_of(dg, 6);
	snprintf(path, sizeof(path), "%s/sha256:h", dir);
	rc = cache_entry_open(&o, path, size, dg, U_A, err, sizeof(err));
	if (!rc)
		rc = cache_entry_mark(&o, 0, G);
	if (!rc)
		rc = cache_entry_open_existing(&d, path, size, dg, err, sizeof(err));
	tap_ok(!rc, "two holders: open, granule 0 present in both");
	if (rc)
		return;
	tap_ok(!cache_entry_clear(&d, 0, G), "two holders: the daemon clears granule 0 (a refetch)");
	tap_ok(!cache_entry_mark(&o, G, G), "two holders: obd marks granule 1");
	tap_ok(meta_word(o.meta_path, 0) == 0x2, "two holders: on disk granule 0 stays clear, 1 set (0x%llx)",
	       (unsigned long long)meta_word(o.meta_path, 0));
	tap_ok(!cache_entry_mark(&d, 2 * G, G), "two holders: the daemon marks granule 2");
	tap_ok(meta_word(o.meta_path, 0) == 0x6, "two holders: obd's granule 1 kept (0x%llx)",
	       (unsigned long long)meta_word(o.meta_path, 0));
	cache_entry_close(&d);
	cache_entry_close(&o);
}

static void test_bad_sizes(void)
{
	struct cache_entry e;
	char path[PATH_MAX], err[512];
	u8 dg[OBD_CACHE_DIGEST_LEN];

	digest_of(dg, 3);
	snprintf(path, sizeof(path), "%s/sha256:d", dir);
	tap_ok(cache_entry_open(&e, path, 0, dg, "u", err, sizeof(err)) == -EINVAL,
	       "create: size 0 -> -EINVAL");
	tap_ok(cache_entry_open(&e, path, OBD_CACHE_MAX_BLOB + 1, dg, "u", err, sizeof(err)) == -EINVAL,
	       "create: size past OBD_CACHE_MAX_BLOB -> -EINVAL");
	tap_ok(cache_entry_open_existing(&e, path, 10, dg, err, sizeof(err)) == -ENOENT,
	       "open_existing of a missing entry -> -ENOENT");
}

/*
 * A directory given to another user (overlaybd-fetchd --user): the entry
 * obd (root) makes in it is that user's, data and .meta, mode 0600.
 */
static void test_dir_owner(void)
{
	struct cache_entry e;
	char sub[256], path[300], meta[320], err[512];
	u8 dg[OBD_CACHE_DIGEST_LEN];
	struct stat a, m;
	int rc;

	if (geteuid()) {
		tap_ok(1, "dir owner: not root, skipped");
		return;
	}
	digest_of(dg, 9);
	snprintf(sub, sizeof(sub), "%s/owned", dir);
	if (mkdir(sub, 0700) || chown(sub, 54321, 54322)) {
		tap_ok(0, "dir owner: making a directory of uid 54321");
		return;
	}
	snprintf(path, sizeof(path), "%s/sha256:o", sub);
	snprintf(meta, sizeof(meta), "%s.meta", path);
	rc = cache_entry_open(&e, path, 5 * G, dg, U_A, err, sizeof(err));
	tap_ok(rc == 0, "dir owner: entry made (%s)", rc ? err : "");
	cache_entry_close(&e);
	tap_ok(!stat(path, &a) && !stat(meta, &m) && a.st_uid == 54321 && a.st_gid == 54322 &&
	       m.st_uid == 54321 && m.st_gid == 54322,
	       "dir owner: data and .meta belong to the directory's owner");
	tap_ok((a.st_mode & 07777) == 0600 && (m.st_mode & 07777) == 0600,
	       "dir owner: both 0600");
}

int main(void)
{
	char cmd[PATH_MAX + 16];

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_path();
	test_create_reopen();
	test_bad_sizes();
	test_origins();
	test_two_holders();
	test_dir_owner();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd)) {}
	return tap_done();
}
