/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * The index of a writable layer while it is written (the reference's
 * Index0): sorted, non-overlapping maps, where an inserted map overrides
 * every overlapping part of the maps already there (spec 2.6a: a later
 * record wins), splitting or trimming them. Kernel (the target's upper
 * layer) and userspace. Not locked: the caller serializes inserts against
 * everything else (the kernel holds a rw_semaphore, lookups shared).
 *
 * Two levels: leaves of up to OBD_MI_LEAF maps, and an array of the leaves
 * with their first offsets for a binary search. A lookup is two binary
 * searches; an insert moves at most a leaf's maps plus, when a leaf splits
 * or empties, the leaf array (one pointer and one u64 per leaf).
 */
#ifndef OBD_MEMINDEX_H
#define OBD_MEMINDEX_H

#include "obd.h"

#define OBD_MI_LEAF	128u

struct obd_mi_leaf {
	u32 n;
	struct obd_map m[OBD_MI_LEAF];
};

struct obd_memindex {
	struct obd_mi_leaf **leaf;	/* sorted by offset */
	u64 *first;			/* leaf[i]->m[0].offset */
	u64 nleaf, cap;
	u64 count;			/* maps */
	u64 blocks;			/* sectors mapped to data (not zeroed) */
	struct obd_mi_leaf *spare;	/* for the next split: inserts fail before changing anything */
};

void obd_memindex_init(struct obd_memindex *mi);
void obd_memindex_free(struct obd_memindex *mi);

/*
 * Insert m (length 1..OBD_MAP_MAX_LENGTH, offset + length at most
 * OBD_MAP_INVALID_OFFSET; moffset, zeroed and tag as given). 0, or -ENOMEM
 * with the index unchanged, or -EINVAL for a map out of those bounds.
 */
int obd_memindex_insert(struct obd_memindex *mi, const struct obd_map *m);

/*
 * The maps overlapping [off, off + len), in order, the first and last
 * trimmed to the range (moffset advanced for data maps): at most max of
 * them into out. Returns how many were stored.
 */
u64 obd_memindex_lookup(const struct obd_memindex *mi, u64 off, u64 len, struct obd_map *out,
			u64 max);

/* Every map in order into out (mi->count of them). */
void obd_memindex_dump(const struct obd_memindex *mi, struct obd_map *out);

#endif /* OBD_MEMINDEX_H */
