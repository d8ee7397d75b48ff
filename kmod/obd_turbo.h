/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * TurboOCI ("warp") layers: a filesystem-meta layer whose tag-1 records
 * point into a target, the uncompressed tar stream of an unconverted OCI
 * layer. The table names one as
 *
 *   turbo <meta layer file> <target>
 *
 * target: a local tar file or block device, or remote:<size>:sha256:<hex>:
 * <cache file> (a blob cache entry of an uncompressed tar layer, or a gunzip
 * entry overlaybd-fetchd fills by inflating a gzip layer). The meta layer
 * is parsed with obd_layer_open_warp and merged like any layer, so one
 * lookup says whether a sector's bytes are in the meta file or at which
 * sector of the target (obd_map.target): there is no second index.
 */
#ifndef OBD_TURBO_H
#define OBD_TURBO_H

#include <linux/types.h>
#include <linux/fs.h>

#include "obd_remote.h"
#include "obd_invalidate.h"

#define OBD_TURBO_WORD	"turbo"

struct obd_target;
struct dm_target;
struct dm_dev;

/* A warp layer's target. */
struct obd_turbo_target {
	char *arg;			/* as given in the table (unescaped) */
	struct file *file;		/* local: ours; remote: the blob's cache file */
	struct obd_blob *blob;		/* remote target, else NULL */
	struct obd_blob_user user;	/* remote: page cache dropped on INVALIDATE */
	u64 size;			/* bytes of the uncompressed tar stream */
	bool nowait;			/* page cache hits can be read inline */
	struct inode *claim;		/* obd_lower_claim'ed, or NULL */
	struct dm_dev *dmdev;		/* a block device target, held through dm */
};

/* Open the target named by arg (counted in t->nremote when remote). */
int obd_turbo_target_open(struct obd_target *t, const char *arg,
			  struct obd_turbo_target **out, char **error);
void obd_turbo_target_close(struct dm_target *ti, struct obd_turbo_target *tt);

#endif /* OBD_TURBO_H */
