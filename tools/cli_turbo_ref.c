// SPDX-License-Identifier: GPL-2.0-only
/*
 * The meta layers of a TurboOCI image reference (cli_turbo_ref.h): fetch,
 * check, unpack. The blob is held in memory (it is small; bounded by
 * TURBO_META_BLOB_MAX), its sha256 checked before a byte of it is
 * inflated, and its tar read with the bounded reader of lib/user/tar_read:
 * only the names the reference writes are kept, each once, as regular
 * files. The fs meta layer is ext4.fs.meta or erofs.fs.meta (the
 * reference's turboOCI-apply --fstype erofs): the kernel serves either as
 * blocks, what file system they hold matters only to mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "cli.h"
#include "cli_oci.h"
#include "cli_turbo_ref.h"
#include "durable.h"
#include "tar_read.h"

int turbo_root_dir(const char *cache_dir, char *out, size_t outlen)
{
	struct stat st;
	int rc = cli_make_dirs(cache_dir);

	if (rc)
		return rc;
	if (snprintf(out, outlen, "%s/turbo", cache_dir) >= (int)outlen) {
		cli_err(cache_dir, "path too long");
		return -ENAMETOOLONG;
	}
	if (mkdir(out, 0700) && errno != EEXIST) {
		cli_err(out, "cannot make the directory: %s", strerror(errno));
		return -errno;
	}
	if (lstat(out, &st) || !S_ISDIR(st.st_mode)) {
		cli_err(out, "not a directory");
		return -ENOTDIR;
	}
	return 0;
}

/* The gzip member of the blob as a tar source: one member, nothing after it. */
struct gz_src {
	z_stream zs;
	bool end;
	u64 out;
	const char *what;
};

static ssize_t gz_read(void *ctx, void *buf, size_t len)
{
	struct gz_src *g = ctx;
	int zr;

	if (g->end || !len)
		return 0;
	g->zs.next_out = buf;
	g->zs.avail_out = (uInt)(len > (1u << 30) ? 1u << 30 : len);
	zr = inflate(&g->zs, Z_NO_FLUSH);
	if (zr == Z_STREAM_END) {
		g->end = true;
		if (g->zs.avail_in) {
			cli_err(g->what, "%u bytes after the gzip member (a second member or garbage)",
				g->zs.avail_in);
			return -EBADMSG;
		}
	} else if (zr != Z_OK) {
		cli_err(g->what, "gzip: %s", zr == Z_BUF_ERROR ? "truncated" :
			g->zs.msg ? g->zs.msg : "corrupt");
		return -EBADMSG;
	}
	len = (size_t)(g->zs.next_out - (Bytef *)buf);
	g->out += len;
	if (g->out > TURBO_META_UNPACKED_MAX) {
		cli_err(g->what, "unpacks to more than %llu bytes",
			(unsigned long long)TURBO_META_UNPACKED_MAX);
		return -EFBIG;
	}
	return (ssize_t)len;
}

/* The entries the reference writes into a meta blob, each at most once. */
static const char *const turbo_names[] = {
	TURBO_META_FILE, TURBO_EROFS_META_FILE, TURBO_GZINDEX_FILE, TURBO_MARKER_FILE,
};
#define TURBO_NNAMES (sizeof(turbo_names) / sizeof(turbo_names[0]))

static int write_entry(struct obd_tar_reader *r, const char *dir, const char *name,
		       const char *what)
{
	char path[PATH_MAX], buf[65536];
	struct obd_err err = { "" };
	ssize_t n;
	int fd, rc = 0;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		cli_err(path, "cannot create: %s", strerror(errno));
		return -errno;
	}
	while ((n = obd_tar_read(r, buf, sizeof(buf), &err)) > 0) {
		if (write(fd, buf, (size_t)n) != n) {
			rc = errno ? -errno : -EIO;
			cli_err(path, "write: %s", strerror(-rc));
			break;
		}
	}
	if (n < 0) {
		rc = (int)n;
		cli_err(what, "%s", err.msg[0] ? err.msg : strerror(-rc));
	}
	if (!rc && fsync(fd)) {
		rc = -errno;
		cli_err(path, "fsync: %s", strerror(errno));
	}
	close(fd);
	return rc;
}

/* Unpack the checked blob into dir (empty); what names the layer. */
static int unpack(const u8 *blob, size_t len, const char *dir, const char *what,
		  const struct imageref_layer *l)
{
	struct gz_src g = { .what = what };
	struct obd_tar_reader r;
	struct obd_tar_entry e;
	struct obd_err err = { "" };
	bool seen[TURBO_NNAMES] = { false };
	unsigned int i;
	int rc;

	if (inflateInit2(&g.zs, 16 + MAX_WBITS) != Z_OK) {
		cli_err(what, "out of memory");
		return -ENOMEM;
	}
	g.zs.next_in = (Bytef *)blob;
	g.zs.avail_in = (uInt)len;
	obd_tar_reader_init(&r, gz_read, &g, what);
	while ((rc = obd_tar_next(&r, &e, &err)) == 1) {
		for (i = 0; i < TURBO_NNAMES && strcmp(e.name, turbo_names[i]); i++)
			;
		if (i < TURBO_NNAMES && (e.type != '0' || seen[i])) {
			cli_err(what, "entry %s: %s", e.name,
				seen[i] ? "twice" : "expected a regular file");
			rc = -EINVAL;
		} else if (i < TURBO_NNAMES) {
			seen[i] = true;
			rc = write_entry(&r, dir, e.name, what);
		}
		/* other names: not ours to write anywhere (skipped by the reader) */
		obd_tar_entry_free(&e);
		if (rc)
			break;
	}
	if (rc < 0 && err.msg[0])
		cli_err(what, "%s", err.msg);
	obd_tar_reader_free(&r);
	inflateEnd(&g.zs);
	if (rc < 0)
		return rc;
	if ((!seen[0] && !seen[1]) || !seen[3] || seen[2] != l->target_gzip) {
		cli_err(what, "not a TurboOCI meta layer: expected %s or %s, %s%s%s",
			TURBO_EROFS_META_FILE, TURBO_META_FILE, TURBO_MARKER_FILE,
			l->target_gzip ? " and " : "",
			l->target_gzip ? TURBO_GZINDEX_FILE " (the target is gzip)" :
					 seen[2] ? ", and no gzip.meta (the target is not gzip)" : "");
		return -EINVAL;
	}
	{
		/* the entries' names in dir, before dir is renamed into place */
		char p[PATH_MAX + 32];

		snprintf(p, sizeof(p), "%s/" TURBO_MARKER_FILE, dir);
		return obd_fsync_dir_of(p) ? -EIO : 0;
	}
}

/*
 * The fs meta file of the unpacked meta layer in dir, in the order of the
 * reference snapshotter's turboFsType (default erofs, then ext4): a blob
 * holding both is read as erofs. The snapshotter also skips erofs on a
 * kernel without it; obd does not look: it makes the device, whoever
 * mounts the file system may be elsewhere.
 */
static int found_fs_meta(const char *dir, struct imageref_layer *l)
{
	static const char *const order[] = { TURBO_EROFS_META_FILE, TURBO_META_FILE };
	char p[PATH_MAX + 32];
	struct stat st;

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, order[i]);
		if (!lstat(p, &st) && S_ISREG(st.st_mode)) {
			l->fs_meta = order[i];
			return 0;
		}
	}
	cli_err(dir, "neither %s nor %s in it (remove the directory to fetch the meta layer again)",
		TURBO_EROFS_META_FILE, TURBO_META_FILE);
	return -ENOENT;
}

/* GET the whole blob into memory and check its digest. */
static int fetch_blob(struct reg_client *c, const char *what, const struct imageref_layer *l,
		      u8 **out)
{
	char url[2048], got[OBD_DIGEST_STR_LEN + 1];
	u8 *buf;
	int rc;

	*out = NULL;
	if (l->size > TURBO_META_BLOB_MAX) {
		cli_err(what, "a meta blob of %llu bytes: expected at most %llu",
			(unsigned long long)l->size, (unsigned long long)TURBO_META_BLOB_MAX);
		return -EFBIG;
	}
	if (snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", c->origin, c->reg.repo, l->digest) >=
	    (int)sizeof(url))
		return -ENAMETOOLONG;
	buf = malloc(l->size);
	if (!buf)
		return -ENOMEM;
	rc = reg_blob_get(c, url, l->size, 0, l->size, buf);
	if (!rc && oci_digest_buf(buf, l->size, got))
		rc = -ENOMEM;
	if (!rc && strcmp(got, l->digest)) {
		cli_err(what, "the blob's sha256 is %s", got);
		rc = -EBADMSG;
	}
	if (rc)
		free(buf);
	else
		*out = buf;
	return rc;
}

int turbo_meta_fetch(struct reg_client *c, const char *arg, const char *root,
		     struct imageref_layer *l)
{
	char dir[PATH_MAX], tmp[PATH_MAX], what[OBD_DIGEST_STR_LEN + 64];
	struct stat st;
	u8 *blob = NULL;
	int rc;

	snprintf(what, sizeof(what), "%s: meta layer %s", arg, l->digest);
	if (snprintf(dir, sizeof(dir), "%s/%s", root, l->digest) >= (int)sizeof(dir) ||
	    snprintf(tmp, sizeof(tmp), "%s/.tmp-%s-%d", root, l->digest + 7, (int)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	/* whole or absent: a directory there was renamed in complete */
	if (!lstat(dir, &st) && S_ISDIR(st.st_mode))
		return found_fs_meta(dir, l);
	rc = fetch_blob(c, what, l, &blob);
	if (rc)
		return rc;
	if (mkdir(tmp, 0700)) {
		rc = -errno;
		cli_err(tmp, "cannot make the directory: %s", strerror(errno));
		goto out;
	}
	rc = unpack(blob, l->size, tmp, what, l);
	if (!rc && rename(tmp, dir)) {
		/* another attach of the same image got there first: theirs is whole too */
		rc = (errno == EEXIST || errno == ENOTEMPTY) && !lstat(dir, &st) &&
		     S_ISDIR(st.st_mode) ? 0 : -errno;
		if (rc)
			cli_err(dir, "cannot rename %s to it: %s", tmp, strerror(-rc));
	} else if (!rc) {
		rc = obd_fsync_dir_of(dir) ? -EIO : 0;
		tmp[0] = 0;
	}
out:
	if (tmp[0] && !lstat(tmp, &st)) {
		for (size_t i = 0; i < TURBO_NNAMES; i++) {
			char p[PATH_MAX + 32];

			snprintf(p, sizeof(p), "%s/%s", tmp, turbo_names[i]);
			unlink(p);
		}
		rmdir(tmp);
	}
	free(blob);
	return rc ? rc : found_fs_meta(dir, l);
}
