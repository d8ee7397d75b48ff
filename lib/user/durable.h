/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Small files replaced atomically and durably, userspace only (obd's image
 * configs, traces, mount records; the cache's directories): whoever reads
 * the path after a crash finds the old content or the new, whole.
 */
#ifndef OBD_DURABLE_H
#define OBD_DURABLE_H

#include <stddef.h>
#include <sys/types.h>

/* fsync the directory that holds path (its entries: a rename, a create). 0 or -errno. */
int obd_fsync_dir_of(const char *path);

/*
 * path := buf[0, len): a temp file beside it ("<path>.tmp.<pid>", never
 * through a symlink; a stale one of the same name is replaced), written,
 * fsync'ed, renamed over path, then the directory fsync'ed. 0 or -errno;
 * on failure the temp file is gone and path has its old content (or none),
 * except when only the directory's fsync failed: then path has the new
 * content, whose name a crash may still lose.
 */
int obd_replace_file(const char *path, const void *buf, size_t len, mode_t mode);

#endif /* OBD_DURABLE_H */
