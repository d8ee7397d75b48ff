/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Writable LSMT layers, reader side (spec 2.6a, 2.6b): rebuilding the
 * sorted index of an append-mode RW pair from its log of records, and of a
 * sparse RW layer from its data extents. Kernel + userspace.
 */
#ifndef OBD_LSMT_RW_H
#define OBD_LSMT_RW_H

#include "obd.h"

/*
 * Replay records in log order: a later record overrides every overlapping
 * part of earlier ones (Index0::insert). recs[] must already be valid
 * (no padding; length 0 entries are ignored); their tags are kept. The result
 * is sorted and non-overlapping, allocated with obd_zalloc (NULL when
 * *nmaps == 0). O(n log n) time, O(n) memory, no recursion. n must be
 * < 2^32 (OBD_LSMT_MAX_RW_INDEX is far below).
 */
int obd_lsmt_rw_replay(const struct obd_map *recs, u64 n, const char *name,
		       struct obd_map **maps, u64 *nmaps, struct obd_err *err);

/*
 * The most records (padding and zero-length records not counted) an RW
 * index may hold for obd_lsmt_rw_load_index: its allocations are then at
 * most 24 bytes a record for the records, 20 for the sort and 48 for the
 * result (2 pieces a record at worst), the largest one object of 384 MiB,
 * below the kernel's 512 MiB for one object (OBD_ALLOC_MAX, checked at
 * build time) and far below INT_MAX bytes (kvmalloc's limit). Writers (the
 * kernel's upper, obd write) stop with ENOSPC before it, so what they
 * write can always be opened again.
 */
#define OBD_LSMT_RW_MAX_RECORDS	(1ULL << 23)

/*
 * Load an RW index file (header flags 0x01, index_offset 4096) through io:
 * (io->size - 4096) / 16 records, at most OBD_LSMT_MAX_RW_INDEX, of which
 * at most OBD_LSMT_RW_MAX_RECORDS real ones; padding and zero-length
 * records (zeros: a torn or not yet written block) are skipped, tags
 * forced to 0, each record's moffset range is checked against the data
 * file (8 <= moffset, mend <= data_size / 512), then the log is replayed.
 * *maps as for obd_lsmt_rw_replay; *nrecs (if not NULL): the real records.
 */
int obd_lsmt_rw_load_index(struct obd_io *io, u64 data_size, struct obd_map **maps,
			   u64 *nmaps, u64 *nrecs, struct obd_err *err);

/*
 * Sparse RW layer: turn data extents of the data file (byte ranges
 * [ext[2i], ext[2i+1]) as found by SEEK_DATA/SEEK_HOLE from 4096, sorted,
 * not overlapping) into maps of at most 16383 sectors with
 * moffset = offset + 8. Extents are clipped to [4096, file_size) and to
 * whole sectors.
 */
int obd_lsmt_sparse_maps(const u64 *ext, u64 next, u64 file_size, const char *name,
			 struct obd_map **maps, u64 *nmaps, struct obd_err *err);

#endif /* OBD_LSMT_RW_H */
