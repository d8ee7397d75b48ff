// SPDX-License-Identifier: GPL-2.0-only
/*
 * The writable upper layer (obd_upper.h), written as overlaybd's own
 * LSMTFile / LSMTSparseFile write it (spec 2.6a, 2.6b), so that
 * `obd commit` and the reference's overlaybd-commit read what we wrote.
 *
 * Append kind: each write chunk (at most OBD_UPPER_MAX_IO) is appended at
 * the data file's end and gets one record {offset, length, moffset =
 * append position}; discards get zeroed records whose moffset is the data
 * end. Records go through a 4 KiB group commit buffer (256 records, padded
 * with invalid records when written early, as the reference's
 * do_group_commit_mappings), written when it fills and on every flush, in
 * both cases after an fsync of the data file: an index record on disk
 * always points at durable data. A flush does not start a new block: the
 * partly filled one is rewritten in place until it is full, so the index
 * costs about 16 bytes a record however often the device is flushed. The
 * records a reader can load again are bounded (OBD_LSMT_RW_MAX_RECORDS,
 * lowered by the module parameter upper_max_records): before that, writes
 * and discards fail with ENOSPC.
 *
 * Sparse kind: the byte at LBA X lives at file offset 4096 + X; there is
 * no index file; a discard punches a hole, so after a reopen (when the
 * maps are rebuilt from the file's data extents) a discarded range shows
 * the lower layers again, as with the reference. Write zeroes writes
 * zeros, so it reads as zeros after a reopen too. Extents come a file
 * system block at a time: a write into part of a block also writes the
 * rest of it with what the device showed there (obd_upper_fill_edges),
 * where the reference leaves the rest reading zeros after a reopen. A
 * discard of part of a block that holds upper data zeroes that part,
 * which then reads as zeros after a reopen too.
 *
 * Readers take the maps under a shared lock and read the data file
 * outside it: an append never overwrites data a map points at, and a
 * sparse write racing an overlapping read may show either version, as
 * any disk does.
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/file.h>
#include <linux/falloc.h>
#include <linux/bio.h>
#include <linux/uio.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/device-mapper.h>

#include "obd_kmod.h"
#include "obd_upper.h"
#include "lsmt_rw.h"
#include "compat.h"

#define DM_MSG_PREFIX "overlaybd"

#define OBD_SPARSE_EXTENTS_MAX	(1u << 22)	/* data extents of a sparse upper at open */

static unsigned long upper_max_records = OBD_LSMT_RW_MAX_RECORDS;
module_param(upper_max_records, ulong, 0644);
MODULE_PARM_DESC(upper_max_records,
		 "Records an append-mode upper's index may hold; writes fail with ENOSPC beyond (default and maximum 8388608)");

/* Writing files from the I/O path: no reclaim that waits on I/O, no dirty throttling. */
struct obd_io_scope {
	unsigned int flags;
};

static void obd_io_scope_enter(struct obd_io_scope *s)
{
	s->flags = current->flags & (PF_LOCAL_THROTTLE | PF_MEMALLOC_NOIO);
	current->flags |= PF_LOCAL_THROTTLE | PF_MEMALLOC_NOIO;
}

static void obd_io_scope_leave(const struct obd_io_scope *s)
{
	current->flags = (current->flags & ~(PF_LOCAL_THROTTLE | PF_MEMALLOC_NOIO)) | s->flags;
}

static ssize_t obd_upper_pwrite(struct file *f, struct iov_iter *it, loff_t pos)
{
	ssize_t done = 0;

	while (iov_iter_count(it)) {
		size_t left = iov_iter_count(it);
		ssize_t r = obd_vfs_iter_write(f, it, &pos);

		if (r < 0)
			return r;
		if (r == 0 || (size_t)r > left)
			return -EIO;
		/*
		 * Some file systems write the bytes without advancing the
		 * caller's iterator (seen with 9p on 6.12: an upper there
		 * appended the same bytes forever). What r says was written is
		 * what counts; an iterator moved by another amount is an error.
		 */
		if (iov_iter_count(it) == left)
			iov_iter_advance(it, r);
		else if (left - iov_iter_count(it) != (size_t)r)
			return -EIO;
		done += r;
	}
	return done;
}

static int obd_upper_write_buf(struct file *f, const void *buf, size_t len, loff_t pos)
{
	struct kvec kv = { .iov_base = (void *)buf, .iov_len = len };
	struct iov_iter it;
	ssize_t r;

	iov_iter_kvec(&it, ITER_SOURCE, &kv, 1, len);
	r = obd_upper_pwrite(f, &it, pos);
	return r < 0 ? (int)r : 0;
}

/*----------------------------------------------------------------
 * Opening
 *--------------------------------------------------------------*/

static struct file *obd_upper_file(const char *path, const char *what, char **error)
{
	/* O_NOATIME as the lowers (obd_shared.c): reads inline must not start a journal handle */
	struct file *f = filp_open(path, O_RDWR | O_LARGEFILE | O_NOATIME, 0);

	if (PTR_ERR_OR_ZERO(f) == -EPERM)
		f = filp_open(path, O_RDWR | O_LARGEFILE, 0);

	if (IS_ERR(f)) {
		DMERR("upper %s %s: cannot open read-write (error %ld)", what, path, PTR_ERR(f));
		*error = PTR_ERR(f) == -EROFS || PTR_ERR(f) == -EACCES || PTR_ERR(f) == -EPERM ?
			 "Upper layer file is read-only" : "Cannot open upper layer file";
		return f;
	}
	if (!S_ISREG(file_inode(f)->i_mode)) {
		DMERR("upper %s %s: not a regular file", what, path);
		*error = "Upper layer is not a regular file";
		fput(f);
		return ERR_PTR(-EINVAL);
	}
	return f;
}

static int obd_upper_header(struct file *f, const char *path, struct obd_lsmt_info *li,
			    char **error)
{
	struct obd_kfile_io k;
	struct obd_err err = { "" };
	int r;

	obd_kfile_io_init(&k, f, path);
	r = obd_lsmt_read_header(&k.io, li, &err);
	if (r) {
		DMERR("upper %s", err.msg);
		*error = "Invalid upper layer header";
		return -EINVAL;
	}
	return 0;
}

/* Rebuild a sparse upper's maps from the data extents of its file. */
static int obd_upper_load_sparse(struct obd_upper *up, u64 size, struct obd_map **maps,
				 u64 *n, char **error)
{
	struct obd_err err = { "" };
	u64 *ext = NULL, next = 0, cap = 0;
	loff_t pos = OBD_LSMT_HT_SPACE, b, e;
	int r = 0;

	while (pos < size) {
		b = vfs_llseek(up->data, pos, SEEK_DATA);
		if (b == -ENXIO)
			break;
		if (b < 0) {
			r = (int)b;
			goto seek_fail;
		}
		e = vfs_llseek(up->data, b, SEEK_HOLE);
		if (e < 0) {
			r = (int)e;
			goto seek_fail;
		}
		if (next == cap) {
			u64 *bigger;

			if (cap >= OBD_SPARSE_EXTENTS_MAX) {
				DMERR("upper %s: more than %u data extents", up->data_path,
				      OBD_SPARSE_EXTENTS_MAX);
				*error = "Sparse upper layer too fragmented";
				r = -E2BIG;
				goto out;
			}
			cap = cap ? cap * 2 : 256;
			bigger = kvmalloc_array(cap, 2 * sizeof(*ext), GFP_KERNEL);
			if (!bigger) {
				r = -ENOMEM;
				*error = "Cannot allocate memory";
				goto out;
			}
			if (next)
				memcpy(bigger, ext, next * 2 * sizeof(*ext));
			kvfree(ext);
			ext = bigger;
		}
		ext[2 * next] = b;
		ext[2 * next + 1] = e;
		next++;
		pos = e;
	}
	r = obd_lsmt_sparse_maps(ext, next, size, up->data_path, maps, n, &err);
	if (r) {
		DMERR("upper %s", err.msg);
		*error = "Invalid sparse upper layer";
		r = -EINVAL;
	}
	goto out;
seek_fail:
	DMERR("upper %s: SEEK_DATA/SEEK_HOLE at %lld failed (error %d)", up->data_path, pos, r);
	*error = "Cannot map the sparse upper layer";
out:
	kvfree(ext);
	return r;
}

/* Records the index file's size still allows (OBD_LSMT_MAX_RW_INDEX slots, padding included). */
static u64 obd_upper_slot_room(const struct obd_upper *up)
{
	u64 s0 = (up->index_end - OBD_LSMT_HT_SPACE) / sizeof(struct obd_lsmt_mapping);

	/* the block at index_end takes OBD_UPPER_GC_RECS slots once written */
	if (s0 + OBD_UPPER_GC_RECS > OBD_LSMT_MAX_RW_INDEX)
		return 0;
	return rounddown(OBD_LSMT_MAX_RW_INDEX - s0 - OBD_UPPER_GC_RECS, OBD_UPPER_GC_RECS) +
	       OBD_UPPER_GC_RECS - up->ngc;
}

/*
 * What loading an index of n records takes at its peak, a bound: the
 * records (24 B each), the replay's sort keys and heap (20 B), up to two
 * maps a record (48 B), then the memindex built from those maps while
 * they are still held (up to 2 maps a record in leaves: 96 B at most with
 * the maps, the sort's arrays gone). All of it is charged to the index
 * budget (obd_zalloc).
 */
#define OBD_UPPER_LOAD_BYTES	160

/*
 * The record limit: upper_max_records, at most what the loader takes, and
 * at most what the index budget can load: an upper written to its limit
 * reopens on this machine (as long as the budget is not spent on other
 * indexes; the refusal then names index_budget_mb).
 */
static u64 obd_upper_max_records(void)
{
	u64 by_budget = obd_index_budget() / OBD_UPPER_LOAD_BYTES;

	/* reloading builds up to 2 maps a record in one obd_zalloc object */
	BUILD_BUG_ON(2 * OBD_LSMT_RW_MAX_RECORDS * sizeof(struct obd_map) > OBD_ALLOC_MAX);

	return min3((u64)READ_ONCE(upper_max_records), (u64)OBD_LSMT_RW_MAX_RECORDS, by_budget);
}

static u64 obd_upper_room(u64 nrecs, u64 slot_room)
{
	u64 max = obd_upper_max_records();

	return min(nrecs < max ? max - nrecs : 0, slot_room);
}

/* Copy what status shows. Caller holds wlock (or owns up). */
static void obd_upper_publish(struct obd_upper *up)
{
	atomic64_set(&up->st_nrecs, up->nrecs);
	atomic64_set(&up->st_slot_room, obd_upper_slot_room(up));
}

static int obd_upper_load_index(struct obd_upper *up, u64 data_size, struct obd_map **maps,
				u64 *n, char **error)
{
	struct obd_err err = { "" };
	struct obd_kfile_io k;
	u64 isize = i_size_read(file_inode(up->index));
	int r;

	if ((isize - OBD_LSMT_HT_SPACE) % sizeof(struct obd_lsmt_mapping)) {
		DMERR("upper %s: index size %llu is not 4096 + a multiple of 16 (torn record)",
		      up->index_path, isize);
		*error = "Torn upper layer index";
		return -EINVAL;
	}
	obd_kfile_io_init(&k, up->index, up->index_path);
	r = obd_lsmt_rw_load_index(&k.io, data_size, maps, n, &up->nrecs, &err);
	if (r) {
		DMERR("upper %s", err.msg);
		*error = "Invalid upper layer index";
		return -EINVAL;
	}
	/* new records go into a block of their own after what is there */
	up->index_end = isize;
	obd_upper_publish(up);
	return 0;
}

static int obd_upper_check_kind(struct obd_upper *up, const struct obd_lsmt_info *li,
				const char *index, u64 vsize, char **error)
{
	bool has_index = index && strcmp(index, "-");

	if (li->kind != OBD_LSMT_RW_DATA && li->kind != OBD_LSMT_RW_SPARSE) {
		DMERR("upper %s: header flags 0x%x: not a writable data file (expected 0x03 or 0x13)",
		      up->data_path, li->header_flags);
		*error = "Upper layer is not a writable layer";
		return -EINVAL;
	}
	up->sparse = li->kind == OBD_LSMT_RW_SPARSE;
	if (!up->sparse && !has_index) {
		DMERR("upper %s: an append-mode data file needs its index file", up->data_path);
		*error = "Upper layer index missing";
		return -EINVAL;
	}
	if (up->sparse && has_index) {
		DMERR("upper %s: a sparse layer has no index file (%s given)", up->data_path, index);
		*error = "Sparse upper layer takes no index";
		return -EINVAL;
	}
	if (li->virtual_size != vsize) {
		DMERR("upper %s: virtual_size %llu, the lower layers' is %llu", up->data_path,
		      li->virtual_size, vsize);
		*error = "Upper layer virtual size differs from the lower layers'";
		return -EINVAL;
	}
	return 0;
}

static int obd_upper_open_index(struct obd_upper *up, const char *index, char **error)
{
	struct obd_lsmt_info *li;
	int r;

	up->index_path = kstrdup(index, GFP_KERNEL);
	li = kzalloc(sizeof(*li), GFP_KERNEL);
	if (!up->index_path || !li) {
		kfree(li);
		*error = "Cannot allocate memory";
		return -ENOMEM;
	}
	up->index = obd_upper_file(index, "index", error);
	if (IS_ERR(up->index)) {
		r = PTR_ERR(up->index);
		up->index = NULL;
		goto out;
	}
	r = obd_upper_header(up->index, index, li, error);
	if (r)
		goto out;
	if (li->kind != OBD_LSMT_RW_INDEX) {
		DMERR("upper %s: header flags 0x%x: not an index file (expected 0x01)", index,
		      li->header_flags);
		*error = "Upper layer index is not an index file";
		r = -EINVAL;
		goto out;
	}
	if (li->virtual_size != up->vsize) {
		DMERR("upper %s: virtual_size %llu, the data file's is %llu", index,
		      li->virtual_size, up->vsize);
		*error = "Upper layer index virtual size differs";
		r = -EINVAL;
	}
out:
	kfree(li);
	return r;
}

static int obd_upper_fill(struct obd_upper *up, const struct obd_map *maps, u64 n,
			  char **error)
{
	u64 i;

	for (i = 0; i < n; i++) {
		/* sorted and disjoint: every insert appends */
		int r = obd_memindex_insert(&up->mi, &maps[i]);

		if (r) {
			*error = r == -ENOMEM ? "Cannot allocate memory" : "Invalid upper layer map";
			return r;
		}
	}
	return 0;
}

int obd_upper_open(const char *data, const char *index, u64 vsize, struct obd_upper **out,
		   char **error)
{
	struct obd_upper *up = kzalloc(sizeof(*up), GFP_KERNEL);
	struct obd_lsmt_info *li = kzalloc(sizeof(*li), GFP_KERNEL);
	struct obd_map *maps = NULL;
	u64 n = 0, dsize;
	int r = -ENOMEM;

	if (!up || !li)
		goto nomem;
	init_rwsem(&up->lock);
	init_rwsem(&up->fill_lock);
	mutex_init(&up->wlock);
	obd_memindex_init(&up->mi);
	up->vsize = vsize;
	up->data_path = kstrdup(data, GFP_KERNEL);
	up->gc = kcalloc(OBD_UPPER_GC_RECS, sizeof(*up->gc), GFP_KERNEL);
	if (!up->data_path || !up->gc)
		goto nomem;
	up->data = obd_upper_file(data, "data", error);
	if (IS_ERR(up->data)) {
		r = PTR_ERR(up->data);
		up->data = NULL;
		goto bad;
	}
	r = obd_upper_header(up->data, data, li, error);
	if (!r)
		r = obd_upper_check_kind(up, li, index, vsize, error);
	if (r)
		goto bad;
	dsize = i_size_read(file_inode(up->data));
	up->fs_sectors = max_t(u32, i_blocksize(file_inode(up->data)) >> SECTOR_SHIFT, 1);
	if (up->sparse) {
		r = obd_upper_load_sparse(up, dsize, &maps, &n, error);
	} else {
		r = obd_upper_open_index(up, index, error);
		if (!r)
			r = obd_upper_load_index(up, dsize, &maps, &n, error);
		/* appends start at the first whole sector past what is there */
		up->data_end = round_up(dsize, SECTOR_SIZE);
	}
	if (!r)
		r = obd_upper_fill(up, maps, n, error);
	obd_free(maps);
	if (r)
		goto bad;
	kfree(li);
	*out = up;
	return 0;
nomem:
	*error = "Cannot allocate memory";
bad:
	kfree(li);
	if (up)
		obd_upper_close(up, false);
	return r;
}

/*----------------------------------------------------------------
 * Records and flushes (append kind)
 *--------------------------------------------------------------*/

/*
 * Write the block being filled (padded to 4 KiB) at index_end, over the
 * version a previous flush wrote: records only ever go into padding slots,
 * so a torn rewrite leaves each sector as it was or as it is now, both a
 * prefix of the same records (loaders skip padding and zeros anywhere).
 * A full block is then done with and the next one starts after it. No
 * space for the index (ENOSPC, EDQUOT) changes nothing here: the records
 * stay buffered, and what is on disk is still one of the two versions,
 * so nothing is truncated. Caller holds wlock.
 */
static int obd_upper_gc_write(struct obd_upper *up)
{
	struct obd_map pad = { .offset = OBD_MAP_INVALID_OFFSET };
	size_t bytes = OBD_UPPER_GC_RECS * sizeof(*up->gc);
	unsigned int i;
	int r;

	if (up->gc_done < up->ngc) {
		for (i = up->ngc; i < OBD_UPPER_GC_RECS; i++)
			obd_map_encode(&pad, &up->gc[i]);
		/* the data the records point at first */
		r = vfs_fsync(up->data, 1);
		if (r)
			return r;
		r = obd_upper_write_buf(up->index, up->gc, bytes, up->index_end);
		if (r == -ENOSPC || r == -EDQUOT)
			return r;
		if (r) {
			/* an I/O error: what is on disk is unknown, write nothing more */
			up->broken = r;
			DMERR_LIMIT("upper %s: writing %u index records failed (error %d): the layer takes no more writes",
				    up->index_path, up->ngc - up->gc_done, r);
			return r;
		}
		up->gc_done = up->ngc;
	}
	if (up->ngc == OBD_UPPER_GC_RECS) {
		up->index_end += bytes;
		up->ngc = 0;
		up->gc_done = 0;
		obd_upper_publish(up);
	}
	return 0;
}

/*
 * Log one record (after its map is in the index; obd_upper_gc_room made
 * room). A record that goes on from the previous buffered one joins it, as
 * compress_raw_index would, unless that one is on disk already (the block
 * rewritten in place must only grow). Caller holds wlock.
 */
static int obd_upper_log(struct obd_upper *up, const struct obd_map *m)
{
	if (up->ngc > up->gc_done) {
		struct obd_map last;

		obd_map_decode(&up->gc[up->ngc - 1], &last);
		if (!last.zeroed && !m->zeroed && obd_map_end(&last) == m->offset &&
		    obd_map_mend(&last) == m->moffset &&
		    last.length + m->length < OBD_MAP_MAX_LENGTH) {
			last.length += m->length;
			obd_map_encode(&last, &up->gc[up->ngc - 1]);
			return 0;
		}
	}
	obd_map_encode(m, &up->gc[up->ngc++]);
	up->nrecs++;
	obd_upper_publish(up);
	return 0;
}

/*
 * Room for one more record before a map goes in: a full buffer is written
 * first, and if that fails (no space for the index) the write fails
 * without having changed anything; so does a write once the index holds
 * as many records as a reader can load again (ENOSPC before the limit,
 * never after: flushes still work). Caller holds wlock.
 */
static int obd_upper_gc_room(struct obd_upper *up)
{
	int r;

	if (up->broken)
		return up->broken;
	if (up->ngc == OBD_UPPER_GC_RECS) {
		r = obd_upper_gc_write(up);
		if (r)
			return r;
	}
	if (!obd_upper_room(up->nrecs, obd_upper_slot_room(up)))
		return -ENOSPC;
	return 0;
}

static int obd_upper_insert(struct obd_upper *up, const struct obd_map *m)
{
	int r;

	down_write(&up->lock);
	r = obd_memindex_insert(&up->mi, m);
	up_write(&up->lock);
	return r;
}

int obd_upper_flush(struct obd_upper *up)
{
	struct obd_io_scope s;
	int r;

	obd_io_scope_enter(&s);
	mutex_lock(&up->wlock);
	atomic64_inc(&up->flushes);
	if (up->sparse) {
		r = vfs_fsync(up->data, 1);
	} else {
		r = up->broken;
		/*
		 * Every completed write has its record buffered or written:
		 * writing the buffer syncs the data first, and buffers written
		 * when they filled did too; then the index, all of it.
		 */
		if (!r)
			r = obd_upper_gc_write(up);
		if (!r)
			r = vfs_fsync(up->index, 1);
	}
	mutex_unlock(&up->wlock);
	obd_io_scope_leave(&s);
	if (r)
		DMERR_LIMIT("upper %s: flush failed (error %d)", up->data_path, r);
	return r;
}

void obd_upper_close(struct obd_upper *up, bool flush)
{
	if (flush && up->data && (up->sparse || up->index))
		obd_upper_flush(up);
	if (up->index)
		fput(up->index);
	if (up->data)
		fput(up->data);
	obd_memindex_free(&up->mi);
	kfree(up->gc);
	kfree(up->index_path);
	kfree(up->data_path);
	kfree(up);
}

/*----------------------------------------------------------------
 * Reads, writes, discards
 *--------------------------------------------------------------*/

int obd_upper_lookup(struct obd_upper *up, u64 lba, u64 nsect, struct obd_map *out, u32 max,
		     bool nowait)
{
	u64 n;

	if (nowait) {
		if (!down_read_trylock(&up->lock))
			return -EAGAIN;
	} else {
		down_read(&up->lock);
	}
	n = obd_memindex_lookup(&up->mi, lba, nsect, out, max);
	up_read(&up->lock);
	return (int)n;
}

/* One chunk of an append-mode write: data at the end, then its map and record. */
static int obd_upper_append(struct obd_upper *up, struct iov_iter *it, u64 lba)
{
	size_t len = iov_iter_count(it);
	struct obd_map m = { .offset = lba, .length = (u32)(len >> SECTOR_SHIFT) };
	ssize_t w;
	u64 pos;
	int r;

	mutex_lock(&up->wlock);
	r = up->broken;
	pos = up->data_end;
	if (!r)
		up->data_end += len;
	mutex_unlock(&up->wlock);
	if (r)
		return r;
	/* outside the lock: writers append in parallel, each into its own range */
	w = obd_upper_pwrite(up->data, it, pos);
	if (w < 0)
		return (int)w;
	m.moffset = pos >> SECTOR_SHIFT;
	mutex_lock(&up->wlock);
	/* the map goes in with its record, so the log has the index's order */
	r = obd_upper_gc_room(up);
	if (!r)
		r = obd_upper_insert(up, &m);
	if (!r)
		r = obd_upper_log(up, &m);
	mutex_unlock(&up->wlock);
	return r;
}

static int obd_upper_sparse_write(struct obd_upper *up, struct iov_iter *it, u64 lba)
{
	struct obd_map m = {
		.offset = lba, .length = (u32)(iov_iter_count(it) >> SECTOR_SHIFT),
		.moffset = lba + (OBD_LSMT_HT_SPACE >> SECTOR_SHIFT),
	};
	ssize_t w = obd_upper_pwrite(up->data, it, OBD_LSMT_HT_SPACE + (lba << SECTOR_SHIFT));

	if (w < 0)
		return (int)w;
	return obd_upper_insert(up, &m);
}

/* Write the device's bytes of [from, to) into the sparse data file, a page at a time. */
static int obd_upper_fill_range(struct obd_upper *up, const struct obd_upper_reader *rd,
				u64 from, u64 to)
{
	struct page *pg;
	struct bio_vec bv;
	struct iov_iter it;
	int r = 0;

	if (from >= to)
		return 0;
	pg = alloc_page(GFP_NOIO);
	if (!pg)
		return -ENOMEM;
	while (!r && from < to) {
		u64 n = min_t(u64, to - from, PAGE_SIZE >> SECTOR_SHIFT);

		bvec_set_page(&bv, pg, (unsigned int)(n << SECTOR_SHIFT), 0);
		iov_iter_bvec(&it, ITER_DEST, &bv, 1, bv.bv_len);
		r = rd->fn(rd->ctx, from, n, &it);
		if (!r) {
			iov_iter_bvec(&it, ITER_SOURCE, &bv, 1, bv.bv_len);
			r = obd_upper_sparse_write(up, &it, from);
		}
		from += n;
	}
	__free_page(pg);
	return r;
}

/*
 * Before a sparse write (or write zeroes) of [lba, lba + nsect): take
 * fill_lock, and where the range begins or ends inside a block of the
 * data file's file system, write the rest of that block with what the
 * device shows there now, so that after a reopen (maps rebuilt from the
 * file's extents, a block at a time) the block reads as it does now. The
 * exclusive lock keeps every other write and discard from changing those
 * bytes between the read and the write; whole-block writes share it.
 * Returns with fill_lock held (released by obd_upper_unlock_edges) unless
 * the fill failed.
 */
void obd_upper_edges(const struct obd_upper *up, u64 lba, u64 nsect, u64 *head, u64 *tail)
{
	const u64 hdr = OBD_LSMT_HT_SPACE >> SECTOR_SHIFT, fs = up->fs_sectors;
	u64 end = lba + nsect, vsect = up->vsize >> SECTOR_SHIFT;

	if (!up->sparse) {
		*head = lba;
		*tail = end;
		return;
	}
	/* file sectors: the device's sector X is the file's hdr + X */
	*head = max(rounddown(lba + hdr, fs), hdr) - hdr;
	*tail = max(min(roundup(end + hdr, fs) - hdr, vsect), end);
}

static int obd_upper_fill_edges(struct obd_upper *up, const struct obd_upper_reader *rd, u64 lba,
				u64 nsect, bool *excl)
{
	u64 end = lba + nsect, head, tail;
	int r;

	obd_upper_edges(up, lba, nsect, &head, &tail);

	*excl = head < lba || tail > end;
	if (!*excl) {
		down_read(&up->fill_lock);
		return 0;
	}
	down_write(&up->fill_lock);
	r = obd_upper_fill_range(up, rd, head, lba);
	if (!r)
		r = obd_upper_fill_range(up, rd, end, tail);
	if (r)
		up_write(&up->fill_lock);
	return r;
}

static void obd_upper_unlock_edges(struct obd_upper *up, bool excl)
{
	if (excl)
		up_write(&up->fill_lock);
	else
		up_read(&up->fill_lock);
}

int obd_upper_write(struct obd_upper *up, struct bio *bio, u64 lba,
		    const struct obd_upper_reader *rd)
{
	size_t total = bio->bi_iter.bi_size, done = 0;
	struct obd_io_scope s;
	bool excl = false;
	int r = 0;

	obd_io_scope_enter(&s);
	if (up->sparse)
		r = obd_upper_fill_edges(up, rd, lba, total >> SECTOR_SHIFT, &excl);
	if (r)
		goto out;
	while (done < total && !r) {
		size_t len = min_t(size_t, total - done, OBD_UPPER_MAX_IO);
		struct iov_iter it;
		u64 at = lba + (done >> SECTOR_SHIFT);

		/* len bytes of the bio's pages from byte done */
		obd_bio_iov(bio, ITER_SOURCE, &it);
		iov_iter_advance(&it, done);
		iov_iter_truncate(&it, len);
		r = up->sparse ? obd_upper_sparse_write(up, &it, at) : obd_upper_append(up, &it, at);
		done += len;
	}
	if (up->sparse)
		obd_upper_unlock_edges(up, excl);
out:
	obd_io_scope_leave(&s);
	if (r) {
		atomic64_inc(&up->write_errors);
		if (r != -ENOSPC)
			DMERR_LIMIT("upper %s: write of sectors %llu+%zu failed (error %d)",
				    up->data_path, lba, total >> SECTOR_SHIFT, r);
		return r;
	}
	atomic64_inc(&up->writes);
	atomic64_add(total, &up->written);
	return 0;
}

/* Zeros through the page cache, a page at a time (sparse write zeroes). */
static int obd_upper_write_zeros(struct obd_upper *up, loff_t pos, u64 bytes)
{
	struct bio_vec bv[16];
	struct iov_iter it;
	unsigned int i;
	ssize_t w;

	for (i = 0; i < ARRAY_SIZE(bv); i++) {
		bv[i].bv_page = ZERO_PAGE(0);
		bv[i].bv_len = PAGE_SIZE;
		bv[i].bv_offset = 0;
	}
	while (bytes) {
		size_t len = min_t(u64, bytes, ARRAY_SIZE(bv) * PAGE_SIZE);

		iov_iter_bvec(&it, ITER_SOURCE, bv, ARRAY_SIZE(bv), len);
		w = obd_upper_pwrite(up->data, &it, pos);
		if (w < 0)
			return (int)w;
		pos += len;
		bytes -= len;
		cond_resched();
	}
	return 0;
}

static int obd_upper_sparse_discard(struct obd_upper *up, u64 lba, u64 nsect, bool zeroes,
				    const struct obd_upper_reader *rd)
{
	loff_t pos = OBD_LSMT_HT_SPACE + (lba << SECTOR_SHIFT);
	bool excl = false;
	u64 done = 0;
	int r;

	if (zeroes) {
		/* zeros written allocate blocks as data does */
		r = obd_upper_fill_edges(up, rd, lba, nsect, &excl);
		if (r)
			return r;
		r = obd_upper_write_zeros(up, pos, nsect << SECTOR_SHIFT);
	} else {
		down_read(&up->fill_lock);
		r = vfs_fallocate(up->data, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, pos,
				  nsect << SECTOR_SHIFT);
	}
	/* reads see zeros now; after a reopen a punched range shows the lowers */
	while (!r && done < nsect) {
		struct obd_map m = {
			.offset = lba + done, .zeroed = !zeroes,
			.length = (u32)min_t(u64, nsect - done, OBD_MAP_MAX_LENGTH),
			.moffset = lba + done + (OBD_LSMT_HT_SPACE >> SECTOR_SHIFT),
		};

		r = obd_upper_insert(up, &m);
		done += m.length;
	}
	obd_upper_unlock_edges(up, excl);
	return r;
}

/*
 * Zeroed records, at most 16383 sectors each, moffset the data end (spec
 * 2.6a): the file's size, not the reserved append position, which appends
 * in flight or failed may have moved past it (a record past the file's end
 * would make the index invalid after a reopen).
 */
static int obd_upper_append_discard(struct obd_upper *up, u64 lba, u64 nsect)
{
	u64 done = 0, mo;
	int r;

	mutex_lock(&up->wlock);
	r = up->broken;
	mo = (u64)i_size_read(file_inode(up->data)) >> SECTOR_SHIFT;
	while (!r && done < nsect) {
		struct obd_map m = {
			.offset = lba + done, .zeroed = 1,
			.length = (u32)min_t(u64, nsect - done, OBD_MAP_MAX_LENGTH),
			.moffset = mo,
		};

		r = obd_upper_gc_room(up);
		if (!r)
			r = obd_upper_insert(up, &m);
		if (!r)
			r = obd_upper_log(up, &m);
		done += m.length;
	}
	mutex_unlock(&up->wlock);
	return r;
}

int obd_upper_discard(struct obd_upper *up, u64 lba, u64 nsect, bool zeroes,
		      const struct obd_upper_reader *rd)
{
	struct obd_io_scope s;
	int r;

	obd_io_scope_enter(&s);
	r = up->sparse ? obd_upper_sparse_discard(up, lba, nsect, zeroes, rd) :
	    obd_upper_append_discard(up, lba, nsect);
	obd_io_scope_leave(&s);
	if (r) {
		atomic64_inc(&up->write_errors);
		if (r != -ENOSPC)
			DMERR_LIMIT("upper %s: %s of sectors %llu+%llu failed (error %d)",
				    up->data_path, zeroes ? "write zeroes" : "discard", lba, nsect, r);
		return r;
	}
	atomic64_inc(&up->discards);
	return 0;
}

void obd_upper_usage(struct obd_upper *up, u64 *data_bytes, u64 *records, u64 *live_sectors,
		     u64 *room)
{
	/* no wlock: it is held across fsyncs (status must not wait for one) */
	if (up->sparse) {
		*data_bytes = (u64)file_inode(up->data)->i_blocks << 9;
		*room = U64_MAX;
	} else {
		u64 size = i_size_read(file_inode(up->data));

		*data_bytes = size > OBD_LSMT_HT_SPACE ? size - OBD_LSMT_HT_SPACE : 0;
		*records = atomic64_read(&up->st_nrecs);
		*room = obd_upper_room(*records, atomic64_read(&up->st_slot_room));
	}
	/* taken for writing only to insert a map in memory */
	down_read(&up->lock);
	*live_sectors = up->mi.blocks;
	if (up->sparse)
		*records = up->mi.count;
	up_read(&up->lock);
}
