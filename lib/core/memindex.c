// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * The index of a writable layer while it is written (memindex.h).
 */
#include "memindex.h"

/* x->offset < to < obd_map_end(x) */
static void map_trim_front(struct obd_map *x, u64 to)
{
	u64 d = to - x->offset;

	x->offset = to;
	x->length -= (u32)d;
	if (!x->zeroed)
		x->moffset += d;
}

/* x->offset < to < obd_map_end(x) */
static void map_trim_back(struct obd_map *x, u64 to)
{
	x->length = (u32)(to - x->offset);
}

static u64 data_sectors(const struct obd_map *x)
{
	return x->zeroed ? 0 : x->length;
}

void obd_memindex_init(struct obd_memindex *mi)
{
	memset(mi, 0, sizeof(*mi));
}

void obd_memindex_free(struct obd_memindex *mi)
{
	u64 i;

	for (i = 0; i < mi->nleaf; i++)
		obd_free(mi->leaf[i]);
	obd_free(mi->leaf);
	obd_free(mi->first);
	obd_free(mi->spare);
	obd_memindex_init(mi);
}

/* A spare leaf and room for one more leaf: all one insert can need. */
static int mi_reserve(struct obd_memindex *mi)
{
	struct obd_mi_leaf **leaf;
	u64 *first, cap;

	if (!mi->spare) {
		mi->spare = obd_zalloc(sizeof(*mi->spare));
		if (!mi->spare)
			return -ENOMEM;
	}
	if (mi->nleaf < mi->cap)
		return 0;
	cap = mi->cap ? mi->cap * 2 : 16;
	leaf = obd_zalloc(cap * sizeof(*leaf));
	first = obd_zalloc(cap * sizeof(*first));
	if (!leaf || !first) {
		obd_free(leaf);
		obd_free(first);
		return -ENOMEM;
	}
	if (mi->nleaf) {
		memcpy(leaf, mi->leaf, mi->nleaf * sizeof(*leaf));
		memcpy(first, mi->first, mi->nleaf * sizeof(*first));
	}
	obd_free(mi->leaf);
	obd_free(mi->first);
	mi->leaf = leaf;
	mi->first = first;
	mi->cap = cap;
	return 0;
}

/* Where the first map ending after off is: leaf *li, slot *pi; (nleaf, 0) if none. */
static void mi_find(const struct obd_memindex *mi, u64 off, u64 *li, u32 *pi)
{
	const struct obd_mi_leaf *leaf;
	u64 lo = 0, hi = mi->nleaf;
	u32 a = 0, b;

	*li = 0;
	*pi = 0;
	if (!mi->nleaf)
		return;
	/* the last leaf starting at or before off (or the first leaf) */
	while (hi - lo > 1) {
		u64 mid = lo + (hi - lo) / 2;

		if (mi->first[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	leaf = mi->leaf[lo];
	b = leaf->n;
	while (a < b) {
		u32 mid = a + (b - a) / 2;

		if (obd_map_end(&leaf->m[mid]) <= off)
			a = mid + 1;
		else
			b = mid;
	}
	if (a == leaf->n) {
		*li = lo + 1;
		return;
	}
	*li = lo;
	*pi = a;
}

static void mi_fix_first(struct obd_memindex *mi, u64 lo, u64 hi)
{
	for (; lo < hi && lo < mi->nleaf; lo++)
		mi->first[lo] = mi->leaf[lo]->m[0].offset;
}

/* Take an emptied leaf out of the arrays; it becomes the spare if there is none. */
static void mi_drop_leaf(struct obd_memindex *mi, u64 li)
{
	struct obd_mi_leaf *leaf = mi->leaf[li];

	memmove(&mi->leaf[li], &mi->leaf[li + 1], (mi->nleaf - li - 1) * sizeof(*mi->leaf));
	memmove(&mi->first[li], &mi->first[li + 1], (mi->nleaf - li - 1) * sizeof(*mi->first));
	mi->nleaf--;
	if (mi->spare) {
		obd_free(leaf);
	} else {
		leaf->n = 0;
		mi->spare = leaf;
	}
}

/* Put the spare leaf into the arrays at li (room reserved by mi_reserve). */
static struct obd_mi_leaf *mi_add_leaf(struct obd_memindex *mi, u64 li)
{
	struct obd_mi_leaf *leaf = mi->spare;

	mi->spare = NULL;
	memmove(&mi->leaf[li + 1], &mi->leaf[li], (mi->nleaf - li) * sizeof(*mi->leaf));
	memmove(&mi->first[li + 1], &mi->first[li], (mi->nleaf - li) * sizeof(*mi->first));
	mi->leaf[li] = leaf;
	mi->nleaf++;
	return leaf;
}

/*
 * Remove every map overlapping [off, end) from the cursor (li, pi) on,
 * keeping what sticks out on either side in *left / *right.
 */
static void mi_cut(struct obd_memindex *mi, u64 li, u32 pi, u64 off, u64 end,
		   struct obd_map *left, bool *has_left, struct obd_map *right, bool *has_right)
{
	while (li < mi->nleaf) {
		struct obd_mi_leaf *leaf = mi->leaf[li];
		u32 j = pi, n = leaf->n;

		while (j < n && leaf->m[j].offset < end) {
			const struct obd_map *x = &leaf->m[j];

			if (x->offset < off) {
				*left = *x;
				map_trim_back(left, off);
				*has_left = true;
			}
			if (obd_map_end(x) > end) {
				*right = *x;
				map_trim_front(right, end);
				*has_right = true;
			}
			mi->blocks -= data_sectors(x);
			j++;
		}
		memmove(&leaf->m[pi], &leaf->m[j], (n - j) * sizeof(leaf->m[0]));
		leaf->n -= j - pi;
		mi->count -= j - pi;
		if (j < n)
			return;		/* stopped at a map past end */
		if (!leaf->n)
			mi_drop_leaf(mi, li);
		else
			li++;
		pi = 0;
	}
}

/* Insert x at leaf li slot pi (li == nleaf: at the very end); splits a full leaf. */
static void mi_put(struct obd_memindex *mi, u64 *li, u32 *pi, const struct obd_map *x)
{
	struct obd_mi_leaf *leaf;

	if (!mi->nleaf) {
		mi_add_leaf(mi, 0);
		*li = 0;
		*pi = 0;
	} else if (*li == mi->nleaf) {
		*li = mi->nleaf - 1;
		*pi = mi->leaf[*li]->n;
	}
	leaf = mi->leaf[*li];
	if (leaf->n == OBD_MI_LEAF && *pi == OBD_MI_LEAF) {
		/* appending (sequential writes): a new leaf, not two half-empty ones */
		leaf = mi_add_leaf(mi, ++*li);
		*pi = 0;
	} else if (leaf->n == OBD_MI_LEAF) {
		u32 half = OBD_MI_LEAF / 2;
		struct obd_mi_leaf *hi = mi_add_leaf(mi, *li + 1);

		memcpy(hi->m, &leaf->m[half], (OBD_MI_LEAF - half) * sizeof(leaf->m[0]));
		hi->n = OBD_MI_LEAF - half;
		leaf->n = half;
		mi_fix_first(mi, *li + 1, *li + 2);
		if (*pi > half) {
			*pi -= half;
			(*li)++;
			leaf = hi;
		}
	}
	memmove(&leaf->m[*pi + 1], &leaf->m[*pi], (leaf->n - *pi) * sizeof(leaf->m[0]));
	leaf->m[*pi] = *x;
	leaf->n++;
	mi->count++;
	mi->blocks += data_sectors(x);
	mi_fix_first(mi, *li, *li + 1);
	(*pi)++;
}

int obd_memindex_insert(struct obd_memindex *mi, const struct obd_map *m)
{
	struct obd_map left, right;
	bool has_left = false, has_right = false;
	struct obd_mi_leaf *at;
	u64 li, lo, end;
	u32 pi;
	int ret;

	if (!m->length)
		return 0;
	if (m->length > OBD_MAP_MAX_LENGTH || m->offset >= OBD_MAP_INVALID_OFFSET ||
	    OBD_MAP_INVALID_OFFSET - m->offset < m->length)
		return -EINVAL;
	ret = mi_reserve(mi);
	if (ret)
		return ret;
	end = obd_map_end(m);
	mi_find(mi, m->offset, &li, &pi);
	lo = li ? li - 1 : 0;
	at = li < mi->nleaf ? mi->leaf[li] : NULL;
	mi_cut(mi, li, pi, m->offset, end, &left, &has_left, &right, &has_right);
	/* the leaf of the first overlapping map may have emptied and gone */
	if (li >= mi->nleaf || mi->leaf[li] != at)
		pi = 0;
	if (has_left)
		mi_put(mi, &li, &pi, &left);
	mi_put(mi, &li, &pi, m);
	if (has_right)
		mi_put(mi, &li, &pi, &right);
	/*
	 * A cut from the head of the next leaf moved its first offset; all
	 * that changed lies within a few leaves of where the insert began.
	 */
	mi_fix_first(mi, lo, lo + 5);
	return 0;
}

u64 obd_memindex_lookup(const struct obd_memindex *mi, u64 off, u64 len, struct obd_map *out,
			u64 max)
{
	u64 li, k = 0, end = off + len;
	u32 pi;

	if (!len || !max)
		return 0;
	mi_find(mi, off, &li, &pi);
	for (; li < mi->nleaf; li++, pi = 0) {
		const struct obd_mi_leaf *leaf = mi->leaf[li];

		for (; pi < leaf->n; pi++) {
			struct obd_map x = leaf->m[pi];

			if (x.offset >= end)
				return k;
			if (x.offset < off)
				map_trim_front(&x, off);
			if (obd_map_end(&x) > end)
				map_trim_back(&x, end);
			out[k++] = x;
			if (k == max)
				return k;
		}
	}
	return k;
}

void obd_memindex_dump(const struct obd_memindex *mi, struct obd_map *out)
{
	u64 li;

	for (li = 0; li < mi->nleaf; li++) {
		memcpy(out, mi->leaf[li]->m, mi->leaf[li]->n * sizeof(*out));
		out += mi->leaf[li]->n;
	}
}
