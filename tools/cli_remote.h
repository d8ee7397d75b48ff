/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Remote layers for obd (a config.v1.json lower with a digest and no local
 * copy): an obd_io over the cache entry <cacheDir>/sha256:<hex>, which
 * fetches missing ranges (refillSize aligned) from the registry, makes
 * them durable and marks them present before reading them.
 */
#ifndef OBD_CLI_REMOTE_H
#define OBD_CLI_REMOTE_H

#include "cli.h"

struct cli_remote;

/* Load the service config (path, or the default if it exists) for the
 * remote layers that follow. Optional: the first open loads the default. */
int cli_remote_setup(const char *service_config);
struct fetchd_config;
/* The service config remote layers use (loaded as cli_remote_setup(NULL) if not yet); NULL on error. */
const struct fetchd_config *cli_remote_config(void);
/* Free the registry clients and the config (after the layers are closed). */
void cli_remote_teardown(void);

/*
 * Open (creating if absent) the cache entry of blob digest at
 * repo_blob_url + "/" + digest. size 0: asked of the registry (HEAD).
 * cfgfile names the config in messages. dl (NULL or flags 0: leave as
 * is): the image's download policy, stored in the entry for the daemon.
 * Reports errors. 0 or -errno.
 */
int cli_remote_open(struct cli_remote **out, const char *cfgfile, const char *repo_blob_url,
		    const char *digest, u64 size, const struct obd_cache_dl *dl);
void cli_remote_close(struct cli_remote *r);

struct obd_io *cli_remote_io(struct cli_remote *r);
const char *cli_remote_url(const struct cli_remote *r);	/* the blob URL */
const char *cli_remote_cache_path(const struct cli_remote *r);
const char *cli_remote_digest(const struct cli_remote *r);	/* "sha256:<hex>" */
u64 cli_remote_size(const struct cli_remote *r);
/* Blob bytes fetched from the registry by this process, all layers. */
u64 cli_remote_fetched(void);

#endif
