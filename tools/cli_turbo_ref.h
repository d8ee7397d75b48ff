/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * obd attach REF of a TurboOCI image: the meta layers. Each meta blob
 * (turboOCIv1.tar.gz, spec turbo-oci 2.1) is fetched from the image's
 * repository, checked against its digest and unpacked into
 * <cacheDir>/turbo/sha256:<hex>/ (ext4.fs.meta or erofs.fs.meta,
 * .turbo.ociv1 and, for a gzip target, gzip.meta), the directory the
 * derived config's lower names as the reference's snapshotter would. The
 * directory appears whole or not at all (built aside, made durable,
 * renamed); one already there is used.
 */
#ifndef OBD_CLI_TURBO_REF_H
#define OBD_CLI_TURBO_REF_H

#include <stddef.h>

#include "cli_imageref.h"
#include "reg_client.h"

#define TURBO_META_FILE		"ext4.fs.meta"
#define TURBO_EROFS_META_FILE	"erofs.fs.meta"
#define TURBO_GZINDEX_FILE	"gzip.meta"
#define TURBO_MARKER_FILE	".turbo.ociv1"
/* A meta blob is a few percent of its layer: bounds on what one may hold. */
#define TURBO_META_BLOB_MAX	(512ull << 20)
#define TURBO_META_UNPACKED_MAX	(8ull << 30)

/* <cacheDir>/turbo (0700), made if missing, into out. 0 or -errno (reported). */
int turbo_root_dir(const char *cache_dir, char *out, size_t outlen);

/*
 * The unpacked meta layer of l under root; fetched if absent. l->fs_meta
 * is set to the name of its fs meta file (erofs.fs.meta before
 * ext4.fs.meta, the reference's turboFsType order). 0 or -errno (reported).
 */
int turbo_meta_fetch(struct reg_client *c, const char *arg, const char *root,
		     struct imageref_layer *l);

#endif
