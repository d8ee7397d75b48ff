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

/* Inode timestamps became accessor functions in 6.7. */
static inline struct timespec64 obd_inode_mtime(struct inode *inode)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	return inode_get_mtime(inode);
#else
	return inode->i_mtime;
#endif
}

#endif /* OBD_KMOD_COMPAT_H */
