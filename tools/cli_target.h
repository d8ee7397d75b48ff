/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The target of a TurboOCI layer, read locally (cli_target.c): the
 * original OCI layer's uncompressed tar stream, from a plain tar file or
 * from a gzip file through its gzip.meta (lib/user/gzindex), with the last
 * decoded 1 MiB interval cached so a sequential read inflates each byte
 * about once.
 */
#ifndef OBD_CLI_TARGET_H
#define OBD_CLI_TARGET_H

#include "obd.h"
#include "env_user.h"
#include "gzindex.h"

#define CLI_TARGET_WIN	(1u << 20)

struct cli_remote;

struct cli_target {
	struct obd_io io;		/* the uncompressed tar; io.size its length */
	struct obd_io *src;		/* the target's bytes (a tar, or gzip) */
	struct obd_file_io file;	/* a local target file as given */
	bool file_open;
	struct cli_remote *remote;	/* a remote target (owned), or NULL */
	bool gz;
	struct obd_file_io idx;		/* gzip.meta */
	struct obd_gzindex gi;
	u8 *cache;			/* [cache_off, cache_off + cache_len) of the stream */
	u64 cache_off;
	size_t cache_len;
	u64 decodes;			/* intervals inflated (tests, info) */
};

/* gzidx NULL: target is a plain tar. Errors are reported (naming the file). */
int cli_target_open(struct cli_target **out, const char *target, const char *gzidx);
/* The same over a remote blob's cache entry, r taken (closed with t, or on error). */
int cli_target_open_remote(struct cli_target **out, struct cli_remote *r, const char *gzidx);
void cli_target_close(struct cli_target *t);
/*
 * obd check: inflate the whole gzip target once, and at every index entry
 * compare 4 KiB decoded through the index with the stream. 0 (also for a
 * plain target) or -EFSCORRUPTED with msg saying where.
 */
int cli_target_verify(struct cli_target *t, char *msg, size_t cap);

#endif
