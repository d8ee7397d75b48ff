// SPDX-License-Identifier: GPL-2.0-only
/*
 * OBD_MSG_INVALIDATE: the fetch daemon takes a range of a blob back. Its
 * bytes were found bad (the sha256 of the complete blob did not match) or
 * may be lost (an fdatasync of them failed), after the kernel was told
 * they were present (DONE, HAVE, the .meta). The range's presence bits
 * are cleared, so every device stacking the blob misses there again and
 * the daemon fetches it afresh, instead of serving the bad or lost bytes
 * until a detach.
 *
 * Page caches. What a device serves passes through three of them:
 *
 *  1. The cache file's own page cache (b->file, the inode the daemon
 *     writes). It cannot keep stale bytes over a refetch: the daemon
 *     writes buffered (io_uring write, not O_DIRECT), so its new bytes go
 *     into the very pages the kernel reads, whether they were read before
 *     from bad data, from a hole (a zero page readahead brought in for a
 *     range not yet fetched) or were left clean by a failed writeback; a
 *     DONE promises the bytes are in that page cache (obd_uapi.h). The
 *     clean pages of the range are dropped here all the same: what the
 *     page cache held of the taken-back range is not what the daemon
 *     vouches for any more, and after the drop the next read of it, once
 *     fetched again, comes from the daemon's new write or from the disk
 *     (the pages a refetch is still writing are dirty and stay).
 *  2. The page cache of the device itself (/dev/dm-N, a reader using
 *     buffered I/O, a file system's metadata buffers): it holds the bad
 *     bytes it read, and no read reaches the target while they are cached.
 *     Every device stacking the blob (obd_blob_user) gets invalidate_bdev()
 *     after the bits are cleared: its clean, unmapped, unlocked pages go
 *     (what `blockdev --flushbufs` does; safe under a mounted file system,
 *     whose busy buffers are skipped). The whole device: the blob range
 *     maps to device sectors only through the LSMT index.
 *  3. Caches above the device (the files of a file system mounted on it)
 *     are not the target's: pages of them read while the bytes were bad
 *     stay until they are dropped (drop_caches, a remount); a reader with
 *     O_DIRECT or after eviction gets the bytes fetched again.
 * A reader that tested the bits just before the clear may still read the
 * old bytes once, and may put them into the device's page cache after
 * the drop: the take-back is not atomic with reads already under way.
 * What ctr parsed (LSMT index, ZFile jump table) and what an upper layer
 * copied up stay as they are: only data read later is fetched again.
 *
 * Requests in flight are left alone: the daemon answers them after the
 * INVALIDATE, with bytes it fetched again (the rule of obd_uapi.h), and a
 * reader whose request completes tests the bits again before reading.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/fs.h>
#include <linux/blkdev.h>
#include <linux/pagemap.h>
#include <linux/bitmap.h>
#include <linux/device-mapper.h>

#include "obd_kmod.h"
#include "obd_remote.h"
#include "obd_invalidate.h"

#define DM_MSG_PREFIX "overlaybd"

#define obd_inval_err(fmt, ...) \
	DMERR_LIMIT("/dev/%s: INVALIDATE: " fmt ": refused", OBD_DEV_NAME, ##__VA_ARGS__)

/*
 * Devices stacking remote blobs. Its own mutex, never held with
 * obd_remote_mutex: a dtr waits here while a device's page cache is being
 * dropped, so the target stays valid for it.
 */
static DEFINE_MUTEX(obd_users_mutex);
static LIST_HEAD(obd_blob_users);

void obd_blob_user_add(struct obd_blob_user *u, struct obd_blob *b, struct dm_target *ti)
{
	u->blob = b;
	u->ti = ti;
	mutex_lock(&obd_users_mutex);
	list_add(&u->node, &obd_blob_users);
	mutex_unlock(&obd_users_mutex);
}

void obd_blob_user_del(struct obd_blob_user *u)
{
	if (!u->blob)
		return;
	mutex_lock(&obd_users_mutex);
	list_del(&u->node);
	mutex_unlock(&obd_users_mutex);
	u->blob = NULL;
}

/* The range of a whole message, checked like HAVE's. */
static bool obd_inval_range_ok(const struct obd_blob *b, u64 off, u64 len)
{
	u64 end;

	if (!len || off > b->size || len > b->size - off || off % OBD_GRANULE_SIZE)
		return false;
	end = off + len;
	return !(end % OBD_GRANULE_SIZE) || end == b->size;
}

int obd_invalidate(const struct obd_msg_done *d, u32 gen)
{
	u64 bid = le64_to_cpu(d->blob_id), off = le64_to_cpu(d->offset);
	u64 len = le64_to_cpu(d->length), g0, g1;
	struct obd_blob_user *u;
	struct obd_blob *b;
	unsigned int ndev = 0;

	if (le32_to_cpu(d->hdr.magic) != OBD_MSG_MAGIC ||
	    le16_to_cpu(d->hdr.version) != OBD_MSG_VERSION ||
	    le16_to_cpu(d->hdr.opcode) != OBD_MSG_INVALIDATE ||
	    le32_to_cpu(d->hdr.size) != sizeof(*d) || d->hdr.reserved || d->reserved) {
		obd_inval_err("malformed message (magic 0x%08x version %u size %u)",
			      le32_to_cpu(d->hdr.magic), le16_to_cpu(d->hdr.version),
			      le32_to_cpu(d->hdr.size));
		return -EINVAL;
	}
	if (d->hdr.id || d->status) {
		obd_inval_err("id %llu status %d (both must be 0)", le64_to_cpu(d->hdr.id),
			      (s32)le32_to_cpu(d->status));
		return -EINVAL;
	}

	mutex_lock(&obd_remote_mutex);
	b = __obd_blob_by_id(bid);
	if (!b || b->open_gen != gen) {
		mutex_unlock(&obd_remote_mutex);
		obd_inval_err("unknown blob id %llu", bid);
		return -EINVAL;
	}
	if (!obd_inval_range_ok(b, off, len)) {
		mutex_unlock(&obd_remote_mutex);
		obd_inval_err("blob %llu: bad range %llu+%llu of a %llu-byte blob", bid, off, len,
			      b->size);
		return -EINVAL;
	}
	g0 = off >> OBD_GRANULE_SHIFT;
	g1 = DIV_ROUND_UP_ULL(off + len, OBD_GRANULE_SIZE);
	bitmap_clear(b->present, g0, g1 - g0);
	/* pinned: the page caches are dropped without obd_remote_mutex */
	b->refs++;
	mutex_unlock(&obd_remote_mutex);
	/* the bits cleared before the pages go: a read that misses them now misses */
	smp_mb();

	invalidate_mapping_pages(b->file->f_mapping, off >> PAGE_SHIFT,
				 (off + len - 1) >> PAGE_SHIFT);
	mutex_lock(&obd_users_mutex);
	list_for_each_entry(u, &obd_blob_users, node) {
		if (u->blob != b)
			continue;
		invalidate_bdev(dm_disk(dm_table_get_md(u->ti->table))->part0);
		ndev++;
	}
	mutex_unlock(&obd_users_mutex);
	DMWARN_LIMIT("%s: the fetch daemon took bytes %llu+%llu back (bad or lost): %u device(s) fetch them again",
		     b->path, off, len, ndev);
	obd_blob_put(b);
	return 0;
}
