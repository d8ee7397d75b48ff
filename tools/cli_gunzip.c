// SPDX-License-Identifier: GPL-2.0-only
/*
 * The gunzip entries obd attach makes for gzip TurboOCI targets
 * (cli_gunzip.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_gunzip.h"
#include "cli_remote.h"
#include "cache_entry.h"
#include "config.h"
#include "durable.h"

/* The whole file at path (at most max bytes) into *buf. 0 or -errno (reported). */
static int slurp(const char *path, size_t max, u8 **buf, size_t *len)
{
	struct stat st;
	ssize_t n;
	int fd, rc = 0;

	*buf = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		rc = -errno;
		cli_err(path, "%s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (u64)st.st_size > max) {
		cli_err(path, "expected a regular file of at most %zu bytes", max);
		rc = -EINVAL;
		goto out;
	}
	*buf = malloc((size_t)st.st_size + 1);
	if (!*buf) {
		rc = -ENOMEM;
		goto out;
	}
	n = pread(fd, *buf, (size_t)st.st_size, 0);
	if (n != st.st_size) {
		rc = n < 0 ? -errno : -EIO;
		cli_err(path, "read: %s", n < 0 ? strerror(errno) : "short");
		free(*buf);
		*buf = NULL;
		goto out;
	}
	*len = (size_t)n;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* <entry>.gzindex := the layer's gzip.meta, unless it holds those bytes already. */
static int copy_index(const char *entry, const char *gzidx)
{
	char dst[PATH_MAX];
	u8 *want = NULL, *have = NULL;
	size_t wlen = 0, hlen = 0;
	int rc;

	if (snprintf(dst, sizeof(dst), "%s.gzindex", entry) >= (int)sizeof(dst))
		return -ENAMETOOLONG;
	rc = slurp(gzidx, CLI_GZINDEX_MAX, &want, &wlen);
	if (rc)
		return rc;
	if (!access(dst, F_OK) && !slurp(dst, CLI_GZINDEX_MAX, &have, &hlen) && hlen == wlen &&
	    !memcmp(have, want, wlen))
		goto out;
	rc = obd_replace_file(dst, want, wlen, 0600);
	if (rc) {
		cli_err(dst, "writing the gzip index: %s", strerror(-rc));
	} else {
		char err[512];

		/* the daemon, running as the cache's owner, reads it */
		rc = cache_file_give_to_dir_owner(dst, err, sizeof(err));
		if (rc)
			cli_err(dst, "%s", err);
	}
out:
	free(have);
	free(want);
	return rc;
}

int cli_gunzip_entry(const char *cfg, const char *url, const char *digest, const char *gzidx,
		     u64 usize, char **token)
{
	const struct fetchd_config *c = cli_remote_config();
	char path[PATH_MAX], err[1024], failed[PATH_MAX];
	u8 raw[OBD_CACHE_DIGEST_LEN];
	struct cache_entry e;
	char *abs;
	int rc;

	*token = NULL;
	if (!c)
		return -EINVAL;
	if (!c->gz_enable) {
		cli_err(cfg, "a gzip TurboOCI layer (%s) is served from the daemon's gunzip entries: set gzipCacheConfig.enable in the service config",
			digest);
		return -EOPNOTSUPP;
	}
	if (obd_digest_parse(digest, strlen(digest), raw) ||
	    cache_entry_path(c->gz_dir, digest, path, sizeof(path)))
		return -EINVAL;
	rc = cache_dir_make(c->gz_dir, failed, sizeof(failed));
	if (rc) {
		cli_err(failed, "cannot make the gzip cache directory: %s", strerror(-rc));
		return rc;
	}
	rc = cache_entry_open_gunzip(&e, path, usize, raw, url, err, sizeof(err));
	if (rc) {
		cli_err(cfg, "%s", err);
		return rc;
	}
	cache_entry_close(&e);
	rc = copy_index(path, gzidx);
	if (rc)
		return rc;
	abs = realpath(path, NULL);
	if (!abs || asprintf(token, "remote:%llu:%s:%s", (unsigned long long)usize, digest,
			     abs) < 0) {
		*token = NULL;
		rc = -ENOMEM;
	}
	free(abs);
	return rc;
}
