/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Every LINUX_VERSION_CODE difference between the two supported trees
 * (Debian 6.1 and 6.12) lives here, nowhere else. See
 * ../../shared/KERNEL-COMPAT.md for the tables behind each shim.
 */
#ifndef OBD_KMOD_COMPAT_H
#define OBD_KMOD_COMPAT_H

#include <linux/version.h>
#include <linux/fs.h>
#include <linux/blkdev.h>

/* Inode timestamps became accessor functions in 6.7. */
static inline struct timespec64 obd_inode_mtime(struct inode *inode)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	return inode_get_mtime(inode);
#else
	return inode->i_mtime;
#endif
}

/* The write bit of dm_table_get_mode() (fmode_t before 6.5, blk_mode_t after). */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
#define OBD_MODE_WRITE	BLK_OPEN_WRITE
#else
#define OBD_MODE_WRITE	FMODE_WRITE
#endif

/*
 * vfs_iter_write takes freeze protection itself since 6.8; before, the
 * caller must (KERNEL-COMPAT.md section 8).
 */
static inline ssize_t obd_vfs_iter_write(struct file *f, struct iov_iter *it, loff_t *pos)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
	return vfs_iter_write(f, it, pos, 0);
#else
	ssize_t r;

	file_start_write(f);
	r = vfs_iter_write(f, it, pos, 0);
	file_end_write(f);
	return r;
#endif
}

#endif /* OBD_KMOD_COMPAT_H */
