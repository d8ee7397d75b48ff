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

/* The bits of dm_table_get_mode() (fmode_t before 6.5, blk_mode_t after). */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
#define OBD_MODE_WRITE	BLK_OPEN_WRITE
#define OBD_MODE_READ	BLK_OPEN_READ
#else
#define OBD_MODE_WRITE	FMODE_WRITE
#define OBD_MODE_READ	FMODE_READ
#endif

/*
 * Polled I/O: the target completes bios from its workers, never from a
 * queue a poller could reap, so the device must not advertise it. Since
 * 6.11 it is a queue limit feature (BLK_FEAT_POLL) that dm sets for every
 * bio-based table and clears when a target's limits lack it: io_hints
 * clears it. In 6.1 dm sets QUEUE_FLAG_POLL at the table swap when
 * iterate_devices finds no device that lacks polling (none at all for a
 * table of files), after io_hints: the resume method clears it, before
 * the device takes bios from the new table.
 */
static inline void obd_limits_no_poll(struct queue_limits *lim)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
	lim->features &= ~BLK_FEAT_POLL;
#endif
}

static inline void obd_queue_no_poll(struct gendisk *disk)
{
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 11, 0)
	blk_queue_flag_clear(QUEUE_FLAG_POLL, disk->queue);
#endif
}

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
