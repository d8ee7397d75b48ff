// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-overlaybd: the targets of TurboOCI (warp) layers (obd_turbo.h). A
 * target is opened before its meta layer, whose tag-1 records are checked
 * against the target's size while they are parsed; reads of target
 * sectors go through obd_bio.c's plain read, page cache first.
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/blkdev.h>
#include <linux/device-mapper.h>

#include "compat.h"
#include "obd_target.h"
#include "obd_turbo.h"

#define DM_MSG_PREFIX "overlaybd"

static int obd_turbo_open_remote(struct obd_target *t, struct obd_turbo_target *tt,
				 char **error)
{
	struct obd_remote_spec rs;
	struct obd_err err = { "" };
	struct obd_blob *b;
	int r;

	r = obd_remote_parse(tt->arg, &rs, error);
	if (r) {
		DMERR("%s: turbo target %s: expected remote:<size>:sha256:<hex>:<cache file>",
		      obd_name(t), tt->arg);
		return r;
	}
	b = obd_blob_get(&rs, error, &err);
	if (IS_ERR(b)) {
		DMERR("%s: turbo target %s: %s", obd_name(t), tt->arg, err.msg);
		return PTR_ERR(b);
	}
	tt->blob = b;
	tt->file = b->file;
	tt->size = b->size;
	t->nremote++;
	obd_blob_user_add(&tt->user, b, t->ti);
	return 0;
}

/* A local tar file or block device, held as a lower (never an upper in use). */
static int obd_turbo_open_local(struct obd_target *t, struct obd_turbo_target *tt,
				char **error)
{
	struct inode *inode;
	struct file *f;
	int r;

	r = obd_check_local_path(t, tt->arg, error);
	if (r)
		return r;
	r = obd_lower_check_path(t->ti, tt->arg, error);
	if (r)
		return r;
	/* O_NOATIME as the layers (obd_shared_get): the inline path needs it */
	f = filp_open(tt->arg, O_RDONLY | O_LARGEFILE | O_NOATIME, 0);
	if (PTR_ERR_OR_ZERO(f) == -EPERM)
		f = filp_open(tt->arg, O_RDONLY | O_LARGEFILE, 0);
	if (IS_ERR(f)) {
		*error = "Cannot open turbo target";
		DMERR("%s: turbo target %s: open failed: error %ld", obd_name(t), tt->arg,
		      PTR_ERR(f));
		return PTR_ERR(f);
	}
	tt->file = f;
	inode = file_inode(f);
	if ((!S_ISREG(inode->i_mode) && !S_ISBLK(inode->i_mode)) || !f->f_op->read_iter) {
		*error = "Turbo target is not a regular file or block device";
		DMERR("%s: turbo target %s: not a regular file or block device", obd_name(t),
		      tt->arg);
		return -EINVAL;
	}
	tt->size = i_size_read(f->f_mapping->host);
	r = obd_lower_claim(t->ti, inode, tt->arg, error);
	if (r)
		return r;
	tt->claim = inode;
	return obd_hold_bdev(t, f, tt->arg, &tt->dmdev, error);
}

int obd_turbo_target_open(struct obd_target *t, const char *arg,
			  struct obd_turbo_target **out, char **error)
{
	struct obd_turbo_target *tt;
	int r;

	tt = kzalloc(sizeof(*tt), GFP_KERNEL);
	if (!tt) {
		*error = "Cannot allocate memory";
		return -ENOMEM;
	}
	*out = tt;
	tt->arg = kstrdup(arg, GFP_KERNEL);
	if (!tt->arg) {
		*error = "Cannot allocate memory";
		return -ENOMEM;
	}
	if (obd_is_remote(arg))
		r = obd_turbo_open_remote(t, tt, error);
	else
		r = obd_turbo_open_local(t, tt, error);
	if (r)
		return r;
	tt->nowait = obd_file_nowait(tt->file);
	if (tt->size < SECTOR_SIZE) {
		/* no record can point into it; an empty tar is still 1 KiB */
		*error = "Turbo target is empty";
		DMERR("%s: turbo target %s: %llu bytes, expected a tar stream", obd_name(t),
		      tt->arg, tt->size);
		return -EINVAL;
	}
	return 0;
}

/* Undoes whatever part of obd_turbo_target_open was done. */
void obd_turbo_target_close(struct dm_target *ti, struct obd_turbo_target *tt)
{
	if (!tt)
		return;
	if (tt->blob) {
		obd_blob_user_del(&tt->user);
		obd_blob_put(tt->blob);
	} else if (!IS_ERR_OR_NULL(tt->file)) {
		fput(tt->file);
	}
	if (tt->claim)
		obd_lower_release(tt->claim);
	if (tt->dmdev)
		dm_put_device(ti, tt->dmdev);
	kfree(tt->arg);
	kfree(tt);
}
