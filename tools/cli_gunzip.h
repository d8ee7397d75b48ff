/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * obd attach of a TurboOCI layer with a gzip target in a registry: the
 * kernel never inflates, it reads the target's *gunzip entry*, which
 * overlaybd-fetchd fills by inflating the compressed blob from the nearest
 * access point of its gzip index (docs/turbo-oci.md, "The daemon's gunzip
 * entries"). obd makes the entry: <gzipCacheConfig.cacheDir>/sha256:<hex of
 * the compressed blob>, flag OBD_CACHE_F_GUNZIP, of the uncompressed size,
 * with a copy of the layer's gzip.meta beside it (<entry>.gzindex).
 */
#ifndef OBD_CLI_GUNZIP_H
#define OBD_CLI_GUNZIP_H

#include "obd.h"

/* An index larger than this is no gzip.meta of a layer obd would serve. */
#define CLI_GZINDEX_MAX		(256u << 20)

/*
 * Make (or check) the gunzip entry of the compressed blob digest at url,
 * usize bytes once inflated, its index gzidx; *token := its dm table word
 * remote:<usize>:<digest>:<entry>. cfg names the config in messages.
 * Reports errors. 0 or -errno.
 */
int cli_gunzip_entry(const char *cfg, const char *url, const char *digest, const char *gzidx,
		     u64 usize, char **token);

#endif
