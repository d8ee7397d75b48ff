/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The writable upper layer of a dm-overlaybd device (obd_upper.c), in
 * overlaybd's own on-disk layout (spec 2.6): the append-mode pair (data +
 * index, records appended in write order, group commit) or the sparse
 * file (data at 4096 + LBA byte, no index). Reads see the upper over the
 * lowers through obd_upper_lookup.
 */
#ifndef OBD_UPPER_H
#define OBD_UPPER_H

#include <linux/types.h>
#include <linux/fs.h>
#include <linux/mutex.h>
#include <linux/rwsem.h>
#include <linux/atomic.h>
#include <linux/uio.h>

#include "memindex.h"
#include "obd_kmod.h"

/* Writes are split into records of at most this (the reference's MAX_IO_SIZE). */
#define OBD_UPPER_MAX_IO	(4u << 20)
/* Records buffered before they are written to the index (group commit, 4 KiB). */
#define OBD_UPPER_GC_RECS	256u

/*
 * Reads the device's current bytes of [lba, lba + nsect) into it (page
 * backed): how a sparse upper fills the rest of a partly written block.
 */
typedef int (*obd_upper_read_fn)(void *ctx, u64 lba, u64 nsect, struct iov_iter *it);

/*
 * How the table writing through the upper reads its device: per table,
 * not in struct obd_upper, which the tables of one device share across a
 * reload (obd_upper_registry.h).
 */
struct obd_upper_reader {
	obd_upper_read_fn fn;
	void *ctx;
};

struct obd_upper {
	struct file *data;
	struct file *index;		/* NULL: sparse */
	char *data_path, *index_path;
	bool sparse;
	u64 vsize;			/* bytes */
	/* the maps: lookups shared, inserts exclusive */
	struct rw_semaphore lock;
	struct obd_memindex mi;
	/*
	 * Writers: the append position, the record log and its group commit
	 * buffer, and flushes. Records reach the index file only after the
	 * data they point at is durable, so a crash never leaves a record
	 * over bytes that were not written.
	 */
	struct mutex wlock;
	u64 data_end;			/* bytes: the next append */
	/*
	 * The record block being filled: gc[0, ngc) at index_end (bytes),
	 * gc[0, gc_done) of them already written there. The block is
	 * rewritten in place (padded) on each flush until it is full; it
	 * only grows, so every sector of any version on disk holds a prefix
	 * of the same records.
	 */
	u64 index_end;
	struct obd_lsmt_mapping *gc;	/* OBD_UPPER_GC_RECS */
	unsigned int ngc, gc_done;
	u64 nrecs;			/* records in the index and in gc (no padding) */
	int broken;			/* a failed index write: further writes fail */
	/* for status, without wlock: nrecs, records the file's size still allows */
	atomic64_t st_nrecs, st_slot_room;
	/*
	 * Sparse kind: a write or write zeroes in part of a block of the
	 * data file's file system writes the rest of the block too, with
	 * the device's bytes read by the writing table's reader, holding
	 * fill_lock for writing; other writes and discards hold it for
	 * reading.
	 */
	struct rw_semaphore fill_lock;
	u32 fs_sectors;			/* the data file's block size, in sectors */
	atomic64_t writes, written, discards, flushes, write_errors;
};

/*
 * Open the upper layer: DATA's header says the kind; INDEX is needed for
 * the append kind and refused for a sparse one (NULL or "-": none). vsize
 * (bytes) must equal the header's. Messages name the file and the field.
 * Tables get their upper through obd_upper_share_get, never from here.
 */
int obd_upper_open(const char *data, const char *index, u64 vsize, struct obd_upper **out,
		   char **error);
/* flush: write what is buffered and make it durable first; then close. */
void obd_upper_close(struct obd_upper *up, bool flush);

/*
 * The upper's maps overlapping [lba, lba + nsect): at most max into out,
 * trimmed to the range. nowait: -EAGAIN rather than wait for a writer.
 */
int obd_upper_lookup(struct obd_upper *up, u64 lba, u64 nsect, struct obd_map *out, u32 max,
		     bool nowait);

/*
 * Write the bio's data at lba (sectors); 0 or a -errno (-ENOSPC kept).
 * rd: how the writing table reads its device (a sparse upper's partial
 * blocks).
 */
int obd_upper_write(struct obd_upper *up, struct bio *bio, u64 lba,
		    const struct obd_upper_reader *rd);
/*
 * The edges a sparse upper's write, discard or write zeroes of [lba, lba +
 * nsect) fills from the device first (the rest of the data file's blocks
 * it covers only in part): [*head, lba) and [lba + nsect, *tail); both
 * empty for an append upper and for aligned ranges.
 */
void obd_upper_edges(const struct obd_upper *up, u64 lba, u64 nsect, u64 *head, u64 *tail);
/* Discard (zeroed records / punched holes) or write zeroes of [lba, lba + nsect). */
int obd_upper_discard(struct obd_upper *up, u64 lba, u64 nsect, bool zeroes,
		      const struct obd_upper_reader *rd);
/* Everything completed so far durable: data, then the buffered records, then the index. */
int obd_upper_flush(struct obd_upper *up);

/*
 * For status, without waiting for a writer or a flush: data bytes, records
 * (append: in the index and the buffer, padding not counted; sparse: maps),
 * live data sectors, and records that can still be logged before writes
 * fail with ENOSPC (append; U64_MAX for sparse).
 */
void obd_upper_usage(struct obd_upper *up, u64 *data_bytes, u64 *records, u64 *live_sectors,
		     u64 *room);

/*
 * The upper's data file can be read in map() (IOCB_NOWAIT honoured, no
 * atime update); else the inline path leaves its maps to the worker.
 */
static inline bool obd_upper_nowait(const struct obd_upper *up)
{
	return obd_file_nowait(up->data);
}

#endif /* OBD_UPPER_H */
