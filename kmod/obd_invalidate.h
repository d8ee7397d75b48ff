/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * OBD_MSG_INVALIDATE (include/obd_uapi.h): the fetch daemon takes a range
 * of a blob back (obd_invalidate.c).
 */
#ifndef OBD_INVALIDATE_H
#define OBD_INVALIDATE_H

#include <linux/types.h>
#include <linux/list.h>

#include "obd_uapi.h"

struct obd_blob;
struct dm_target;

/* A device stacking a remote blob: its page cache is dropped on INVALIDATE. */
struct obd_blob_user {
	struct list_head node;		/* obd_invalidate.c's list */
	struct obd_blob *blob;		/* NULL: not on the list */
	struct dm_target *ti;
};

void obd_blob_user_add(struct obd_blob_user *u, struct obd_blob *b, struct dm_target *ti);
void obd_blob_user_del(struct obd_blob_user *u);	/* no-op if never added */

/* A whole INVALIDATE message from the daemon on connection gen: 0 or -EINVAL. */
int obd_invalidate(const struct obd_msg_done *d, u32 gen);

#endif /* OBD_INVALIDATE_H */
