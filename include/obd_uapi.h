/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The miss channel between dm-overlaybd.ko and overlaybd-fetchd:
 * /dev/overlaybd, a misc char device (root only, 0600, one opener at a time;
 * a second open gets EBUSY).
 *
 * Every message is a fixed-size, little-endian struct that starts with
 * struct obd_msg_hdr; each opcode has exactly one size. Like cachefiles'
 * on-demand mode, the kernel asks and the daemon fills:
 *
 *   kernel -> daemon, read(2): exactly one message per call; the buffer must
 *     hold OBD_MSG_MAX bytes (else EINVAL). O_NONBLOCK gives EAGAIN when
 *     nothing is queued; poll(2) reports POLLIN when something is.
 *       OBD_MSG_OPEN   a blob is in use: id, size, sha256, cache file path
 *                      and the inode the kernel has open (the daemon must
 *                      write to that very file, not one put at the same
 *                      path since). Sent once per daemon connection for
 *                      every blob in use (at connect, and when a table
 *                      loads one), before any READ of that blob.
 *       OBD_MSG_READ   bytes [offset, offset + length) of the blob are
 *                      wanted (a miss). Granule aligned, the end may be the
 *                      blob's end. flags: OBD_READ_F_REFETCH,
 *                      OBD_READ_F_PREFETCH (nobody waits yet: serve misses
 *                      first).
 *       OBD_MSG_CLOSE  no device uses the blob any more.
 *   daemon -> kernel, write(2): exactly sizeof(struct obd_msg_done) bytes,
 *     one message per call.
 *       OBD_MSG_DONE   request id is finished. status 0: the blob's bytes
 *                      [offset, offset + length), which must contain the
 *                      requested range, are now in the cache file (its page
 *                      cache is enough; making them durable is the
 *                      daemon's business, see obd_cache.h). status < 0: a
 *                      negative errno, the request failed and the readers
 *                      waiting for it get EIO.
 *       OBD_MSG_HAVE   (same struct, id 0, status 0) the daemon filled
 *                      [offset, offset + length) of an OPENed blob on its
 *                      own (background download, prefetch): the kernel
 *                      takes it as present from now on, no miss needed.
 *       OBD_MSG_INVALIDATE (same struct, id 0, status 0) the daemon took
 *                      [offset, offset + length) of an OPENed blob back:
 *                      the bytes there are bad (the sha256 of the complete
 *                      blob did not match) or may be lost (an fdatasync
 *                      of them failed). The kernel forgets they are
 *                      present: the next reads miss, and the daemon fetches
 *                      the range again. It also drops the clean pages of
 *                      the range from the cache file's page cache and the
 *                      page cache of every device stacking the blob.
 *                      Requests in flight are left as they are: a DONE or
 *                      HAVE written after an INVALIDATE must describe the
 *                      bytes as they are then (fetched again), never bytes
 *                      the daemon had before it; and an INVALIDATE never
 *                      overtakes a DONE written before it.
 *     Anything else (wrong size, magic, version, opcode, unknown id, a
 *     range that is unaligned, outside the blob or does not cover the
 *     request, a status that is not 0 or -1..-4095, a HAVE or INVALIDATE
 *     with an id, a status or a blob not OPENed on this connection) is
 *     refused with EINVAL and changes nothing.
 *
 * When the daemon goes away (close, exit, kill -9) requests it had read are
 * kept and sent again, with the OPENs they need, to the next daemon that
 * opens the device. Readers wait for one at most the hold timeout (module
 * parameter hold_timeout, table option hold_timeout), then get EIO.
 */
#ifndef OBD_UAPI_H
#define OBD_UAPI_H

#include <linux/types.h>

#define OBD_DEV_NAME		"overlaybd"	/* /dev/overlaybd */
#define OBD_MSG_MAGIC		0x3144424fu	/* "OBD1" */
#define OBD_MSG_VERSION		3	/* 2: OPEN carries the inode; HAVE; 3: INVALIDATE */

/* Presence is tracked in granules of this many bytes (also obd_cache.h). */
#define OBD_GRANULE_SHIFT	12
#define OBD_GRANULE_SIZE	(1u << OBD_GRANULE_SHIFT)

enum obd_msg_opcode {
	OBD_MSG_OPEN = 1,	/* kernel -> daemon */
	OBD_MSG_CLOSE = 2,	/* kernel -> daemon */
	OBD_MSG_READ = 3,	/* kernel -> daemon */
	OBD_MSG_DONE = 16,	/* daemon -> kernel */
	OBD_MSG_HAVE = 17,	/* daemon -> kernel */
	OBD_MSG_INVALIDATE = 18,	/* daemon -> kernel */
};

/* 24 bytes, at the start of every message. */
struct obd_msg_hdr {
	__le32 magic;		/* OBD_MSG_MAGIC */
	__le16 version;		/* OBD_MSG_VERSION */
	__le16 opcode;		/* enum obd_msg_opcode */
	__le32 size;		/* bytes of the whole message: sizeof(its struct) */
	__le32 reserved;	/* 0 */
	__le64 id;		/* READ, DONE: request id (non-zero); else 0 */
};

#define OBD_SHA256_LEN		32
/* Room for the cache file path in an OPEN message, NUL included. */
#define OBD_MSG_PATH_MAX	4000

/* 4096 bytes. */
struct obd_msg_open {
	struct obd_msg_hdr hdr;
	__le64 blob_id;		/* names the blob in READ, CLOSE and DONE */
	__le64 blob_size;	/* bytes */
	__u8 digest[OBD_SHA256_LEN];	/* sha256 of the blob, raw bytes */
	__le32 path_len;	/* strlen(path), 1 .. OBD_MSG_PATH_MAX - 1 */
	__le32 flags;		/* 0 */
	__le64 ino;		/* the cache file's inode number ... */
	__le32 dev;		/* ... and its st_dev, new_encode_dev() form (makedev) */
	__le32 reserved;	/* 0 */
	char path[OBD_MSG_PATH_MAX];	/* cache file, NUL-terminated and -padded */
};

/* 32 bytes. */
struct obd_msg_close {
	struct obd_msg_hdr hdr;
	__le64 blob_id;
};

/* The range was read before and found bad (a ZFile CRC error): drop what
 * is cached there and fetch it again; do not answer from the cache. */
#define OBD_READ_F_REFETCH	0x1u
/* A prefetch (trace replay): nobody waits for it yet; serve misses first. */
#define OBD_READ_F_PREFETCH	0x2u
#define OBD_READ_F_ALL		0x3u

/* 56 bytes. */
struct obd_msg_read {
	struct obd_msg_hdr hdr;	/* id: the request */
	__le64 blob_id;
	__le64 offset;		/* bytes in the blob, OBD_GRANULE_SIZE aligned */
	__le64 length;		/* > 0; offset + length aligned or the blob size */
	__le32 flags;		/* OBD_READ_F_* */
	__le32 reserved;
};

/* 56 bytes. DONE, HAVE and INVALIDATE. */
struct obd_msg_done {
	struct obd_msg_hdr hdr;	/* id: the request being answered; HAVE, INVALIDATE: 0 */
	__le64 blob_id;		/* that of the request */
	__le64 offset;		/* status 0: range now present; INVALIDATE: absent */
	__le64 length;
	__le32 status;		/* 0 or a negative errno (two's complement) */
	__le32 reserved;	/* 0 */
};

/* A read(2) buffer of this size holds any kernel -> daemon message. */
#define OBD_MSG_MAX		4096

_Static_assert(sizeof(struct obd_msg_hdr) == 24, "obd_msg_hdr size");
_Static_assert(sizeof(struct obd_msg_open) == 4096, "obd_msg_open size");
_Static_assert(sizeof(struct obd_msg_close) == 32, "obd_msg_close size");
_Static_assert(sizeof(struct obd_msg_read) == 56, "obd_msg_read size");
_Static_assert(sizeof(struct obd_msg_done) == 56, "obd_msg_done size");
_Static_assert(__builtin_offsetof(struct obd_msg_open, path) == 96, "obd_msg_open path");
_Static_assert(__builtin_offsetof(struct obd_msg_open, ino) == 80, "obd_msg_open ino");
_Static_assert(__builtin_offsetof(struct obd_msg_done, status) == 48, "obd_msg_done status");

#endif /* OBD_UAPI_H */
