/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * The little the format core needs from its environment, for both sides:
 * fixed-width types, memcpy/memset/memcmp, errno values, snprintf and
 * little-endian accessors. Like erofs-utils' defs.h: the kernel gets these
 * from its own headers, userspace from libc.
 */
#ifndef OBD_DEFS_H
#define OBD_DEFS_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/kernel.h>
#include <linux/string.h>
#include <linux/errno.h>
#include <asm/byteorder.h>
#else
#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <string.h>
#include <errno.h>
#include <stdio.h>
#include <linux/types.h>	/* __u8, __le16/32/64: the same typedefs the kernel uses */

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int64_t s64;

#ifndef __packed
#define __packed __attribute__((packed))
#endif

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "obd userspace builds assume a little-endian host"
#endif
#define le16_to_cpu(x)	((u16)(x))
#define le32_to_cpu(x)	((u32)(x))
#define le64_to_cpu(x)	((u64)(x))
#define cpu_to_le16(x)	((__le16)(x))
#define cpu_to_le32(x)	((__le32)(x))
#define cpu_to_le64(x)	((__le64)(x))

#ifndef EUCLEAN
#define EUCLEAN 117
#endif
#endif /* __KERNEL__ */

/* Unaligned little-endian access, the same on both sides. */
static inline u32 obd_get_le32(const void *p)
{
	__le32 v;

	memcpy(&v, p, sizeof(v));
	return le32_to_cpu(v);
}

static inline u64 obd_get_le64(const void *p)
{
	__le64 v;

	memcpy(&v, p, sizeof(v));
	return le64_to_cpu(v);
}

static inline void obd_put_le32(void *p, u32 x)
{
	__le32 v = cpu_to_le32(x);

	memcpy(p, &v, sizeof(v));
}

static inline void obd_put_le64(void *p, u64 x)
{
	__le64 v = cpu_to_le64(x);

	memcpy(p, &v, sizeof(v));
}

/* As in erofs, ext4 and xfs. */
#define EFSCORRUPTED	EUCLEAN
#define EFSBADCRC	EBADMSG

#define OBD_ALIGN_UP(x, a)	((((x) + (a) - 1) / (a)) * (a))
#define OBD_DIV_UP(x, a)	(((x) + (a) - 1) / (a))

#endif /* OBD_DEFS_H */
