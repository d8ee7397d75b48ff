/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-overlaybd: what the target's two halves share. dm-overlaybd-target.c
 * builds and tears down a struct obd_target (table parsing, the layers,
 * status, messages, suspend and resume); obd_bio.c serves the bios mapped
 * to it (map, the inline read, the workers, reads and writes).
 */
#ifndef OBD_TARGET_H
#define OBD_TARGET_H

#include <linux/types.h>
#include <linux/fs.h>
#include <linux/percpu.h>
#include <linux/workqueue.h>
#include <linux/device-mapper.h>

#include "obd_kmod.h"
#include "obd_remote.h"
#include "obd_invalidate.h"
#include "obd_trace.h"
#include "obd_upper.h"
#include "obd_upper_registry.h"
#include "obd_turbo.h"

/* A layer as this device uses it. */
struct obd_dev_layer {
	struct obd_shared_layer *sl;	/* parsed once, shared between devices */
	struct file *dfile;		/* O_DIRECT handle (direct_io) or NULL */
	char *path;			/* as given in the table */
	bool nowait;			/* page cache hits can be read inline */
	struct obd_blob *blob;		/* remote layer: sl->blob, else NULL */
	const struct obd_fetch_opts *fetch;	/* &target->fetch */
	struct obd_blob_user user;	/* remote layer: page cache dropped on INVALIDATE */
	struct inode *claim;		/* obd_lower_claim'ed, or NULL */
	struct dm_dev *dmdev;		/* a block device layer, held through dm */
	struct obd_turbo_target *turbo;	/* a warp layer's target (obd_turbo.h), or NULL */
};

struct obd_stats {
	u64 reads;
	u64 inline_reads;
	u64 resumed;
	u64 bytes;
	u64 zblocks;
	u64 crc_errors;
	u64 io_errors;
};

struct obd_target {
	struct dm_target *ti;
	unsigned int nlayers;
	struct obd_dev_layer *layers;	/* [0] = bottom */
	struct obd_index idx;		/* merged, tag = position in layers[] */
	bool idx_built;
	bool pool_held;
	bool direct_io;
	bool no_verify;
	bool nowait;			/* some layer has dl->nowait */
	bool hold_set;			/* table option hold_timeout given */
	unsigned int hold_s;		/* its value, seconds */
	unsigned int nremote;		/* remote layers */
	atomic_t pending;		/* bios parked on a miss */
	struct obd_fetch_opts fetch;	/* how this device's readers wait */
	struct workqueue_struct *wq;
	struct obd_stats __percpu *stats;
	struct obd_kctx *reserve;	/* when every shared context is busy */
	struct obd_trace trace;		/* trace recording (dm messages) */
	struct obd_upper *upper;	/* the writable layer (ushare->up), or NULL: read-only */
	struct obd_upper_share *ushare;	/* shared with the device's other table */
	struct obd_upper_reader reader;	/* how the upper reads this table's device */
	char *upper_data, *upper_index;	/* as given in the table */
};

/* Per-bio data (ti->per_io_data_size). */
struct obd_bio {
	struct work_struct work;
	struct obd_target *t;
	u64 lba;			/* sectors, relative to the target */
	u32 done;			/* sectors already filled (inline, or before a miss) */
	u8 refetches;			/* times refetch_block was fetched again */
	u8 stale_waits;			/* ... and waited on a stale answer (not a try) */
	u64 refetch_block;		/* blob offset of the last ZFile block fetched again */
	int woken;			/* the miss it was parked on: 0, -EIO, -EAGAIN */
	struct obd_waiter waiter;	/* parked on a miss (obd_blob_park) */
};

static inline const char *obd_name(struct obd_target *t)
{
	return dm_table_device_name(t->ti->table);
}

/* dm-overlaybd-target.c: the checks every local layer and turbo target passes. */
int obd_check_local_path(struct obd_target *t, const char *path, char **error);
int obd_hold_bdev(struct obd_target *t, struct file *file, const char *path,
		  struct dm_dev **dmdev, char **error);

/*----------------------------------------------------------------
 * The I/O path (obd_bio.c)
 *--------------------------------------------------------------*/

/* The target's map: owns every bio (DM_MAPIO_SUBMITTED) or kills it. */
int obd_map(struct dm_target *ti, struct bio *bio);
/* The device's bytes (upper over lowers): its upper's reader; ctx is the target. */
int obd_read_device(void *ctx, u64 lba, u64 nsect, struct iov_iter *it);

#endif /* OBD_TARGET_H */
