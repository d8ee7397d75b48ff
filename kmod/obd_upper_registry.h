/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Who may use which upper layer files (obd_upper_registry.c).
 *
 * The in-core upper (struct obd_upper: its maps, append position, index
 * position and buffered records) is one object per upper, keyed by the
 * inodes of its data and index files (pointer identity: the files stay
 * open), and refcounted by the tables of ONE mapped device: a reload of
 * that device (dm runs the new table's ctr while the old table is live)
 * takes a reference to the same object instead of reading the files
 * again, so the old and the new table append at the same positions into
 * the same maps, whichever of them is live. The last table to go closes
 * it. The same files named by a table of another device are refused
 * (-EBUSY), and so is a layer file that is both a live upper file and a
 * lower layer: an upper file as a lower of another device, or a lower of
 * any live table as an upper. One exception: a device's own upper data
 * file may be a lower layer of its next table while the device is
 * suspended with the upper flushed (obd snapshot seals it in place); the
 * old upper then never writes again.
 */
#ifndef OBD_UPPER_REGISTRY_H
#define OBD_UPPER_REGISTRY_H

#include <linux/types.h>
#include <linux/list.h>

struct dm_target;
struct mapped_device;
struct inode;
struct obd_upper;

struct obd_upper_share {
	struct list_head list;		/* on obd_uppers, under obd_uppers_mutex */
	unsigned int refs;		/* tables holding it, under obd_uppers_mutex */
	bool closing;			/* last table gone, being closed: still listed */
	struct mapped_device *md;	/* the device whose tables share it */
	struct inode *data_inode;	/* keys: file_inode of the open files */
	struct inode *index_inode;	/* NULL: sparse */
	struct obd_upper *up;
	/*
	 * Suspend state, under obd_uppers_mutex: suspended_clean is set by a
	 * postsuspend whose flush made every record durable and cleared by
	 * the next preresume; flush_error is the error of the last suspend
	 * flush (or of its retry at resume), 0 if it succeeded.
	 */
	bool suspended_clean;
	int flush_error;
};

/*
 * The upper of ti's table: the in-core upper of ti's device if it has one
 * over the same files (no file is read), else the files opened and read.
 * On error *error is a static string for ti->error and a log line names
 * the file (and the device holding it, for -EBUSY).
 */
int obd_upper_share_get(struct dm_target *ti, const char *data, const char *index, u64 vsize,
			struct obd_upper_share **out, char **error);
/* A table lets go; the last one closes the upper (see obd_upper_share_postsuspend). */
void obd_upper_share_put(struct obd_upper_share *s);
/*
 * The device is suspended (no I/O in flight): flush the upper, record the
 * outcome (status: suspend_flush_error). When the flush failed the records
 * stay buffered in the in-core upper, for the table resumed next.
 */
void obd_upper_share_postsuspend(struct obd_upper_share *s, const char *dev);
/*
 * A table holding s is about to go live: retry a failed suspend flush;
 * -EBUSY if a loaded table uses the upper's data file as a lower layer.
 */
int obd_upper_share_preresume(struct obd_upper_share *s, const char *dev);
int obd_upper_share_flush_error(struct obd_upper_share *s);
/* A flush of the upper succeeded: a suspend flush error is history. */
void obd_upper_share_flushed(struct obd_upper_share *s);

/*
 * Lower layers: before a layer file is parsed, a check by path (a better
 * message than the parse error); after it is open, the claim that counts,
 * on its inode, released by obd_lower_release.
 */
int obd_lower_check_path(struct dm_target *ti, const char *path, char **error);
int obd_lower_claim(struct dm_target *ti, struct inode *inode, const char *path, char **error);
void obd_lower_release(struct inode *inode);

void obd_upper_registry_exit(void);

#endif /* OBD_UPPER_REGISTRY_H */
