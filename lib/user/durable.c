// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * Atomic, durable small-file replacement: temp file, fsync, rename, fsync
 * of the directory. The rename alone is atomic but not durable: without the
 * two fsyncs a crash can leave the new name pointing at an empty file, or
 * the old content back.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "durable.h"
#include "env_user.h"

int obd_fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd))
		rc = -errno;
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

static int open_temp(const char *tmp, mode_t mode)
{
	int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int fd = open(tmp, flags, mode);

	/* left by a process of the same pid that crashed: ours to replace */
	if (fd < 0 && errno == EEXIST && !unlink(tmp))
		fd = open(tmp, flags, mode);
	return fd < 0 ? -errno : fd;
}

int obd_replace_file(const char *path, const void *buf, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open_temp(tmp, mode);
	if (fd < 0)
		return fd;
	rc = obd_pwrite_all(fd, buf, len, 0);
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return rc;
	}
	return obd_fsync_dir_of(path);
}
