// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * Lookup in a merged index: a static, implicit B+ tree ("S+ tree") over the
 * END offsets of the maps.
 *
 * Why ends: the maps are sorted and do not overlap, so their ends are
 * sorted too, and the first map with end > x is simply the number of maps
 * with end <= x. Counting ends answers the query in the tree alone; a tree
 * over start offsets needs one more load of the record found (to see if it
 * ends before x), a likely cache miss on a large index.
 *
 * Layout. Every node is 64 bytes (one cache line, aligned): 16 u32 keys,
 * or 8 u64 keys when some end does not fit in 32 bits. Level 0 holds all
 * the ends in order, padded with the maximum key to a whole node. An
 * internal node with K keys has K + 1 children, the consecutive nodes
 * (K + 1) * i .. (K + 1) * i + K of the level below; its key j is the
 * smallest key under child j + 1 (the maximum key if that child does not
 * exist). Levels are stored root first.
 *
 * Search. In each node, count the keys <= x without branching (a few SSE2
 * instructions in userspace, a scalar loop in the kernel). The count is
 * the child to descend into; at the leaves, node * K + count is the number
 * of ends <= x overall, the answer. Pad keys never count: 32-bit trees hold
 * ends <= 0xfffffffe and clamp x to that, 64-bit trees hold ends < 2^64 - 1
 * and clamp likewise. A child c is only entered when its smallest key is
 * <= x (or c = 0), so the answer is always inside the subtree entered.
 *
 * 32-bit keys are stored with the sign bit flipped: SSE2 has a signed
 * compare only.
 */
#include "obd.h"

#define K32		16u		/* keys per node */
#define K64		8u
#define NODE_BYTES	64u
#define KEY32_MAX	0xfffffffeULL	/* largest real key in a 32-bit tree */
#define KEY64_MAX	(~0ULL - 1)

#if !defined(__KERNEL__) && defined(__SSE2__)
#define OBD_LOOKUP_SSE2 1
typedef int obd_v4si __attribute__((vector_size(16)));
typedef char obd_v16qi __attribute__((vector_size(16)));
#endif

static inline u32 bias32(u64 k)
{
	return (u32)k ^ 0x80000000u;
}

/* Number of keys <= x in a node of 16 biased 32-bit keys. */
static inline u32 node_count32(const u32 *node, u32 xb)
{
#ifdef OBD_LOOKUP_SSE2
	const obd_v4si *v = __builtin_assume_aligned(node, NODE_BYTES);
	obd_v16qi b;
	obd_v4si xv = { (int)xb, (int)xb, (int)xb, (int)xb };
	u32 mask;

	/*
	 * Lanes are -1 where a key is greater than x. The keys are sorted, so
	 * the mask of those lanes is all ones above the count we want.
	 */
	b = __builtin_ia32_packsswb128(
		__builtin_ia32_packssdw128(v[0] > xv, v[1] > xv),
		__builtin_ia32_packssdw128(v[2] > xv, v[3] > xv));
	mask = (u32)__builtin_ia32_pmovmskb128(b) | 0x10000u;
	return (u32)__builtin_ctz(mask);
#else
	u32 c = 0, j;

	for (j = 0; j < K32; j++)
		c += (int)node[j] <= (int)xb;
	return c;
#endif
}

static inline u32 node_count64(const u64 *node, u64 x)
{
	u32 c = 0, j;

	for (j = 0; j < K64; j++)
		c += node[j] <= x;
	return c;
}

u64 obd_index_find_bsearch(const struct obd_index *idx, u64 lba)
{
	u64 lo = 0, hi = idx->n;

	while (lo < hi) {
		u64 mid = lo + (hi - lo) / 2;

		if (obd_map_end(&idx->maps[mid]) <= lba)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

u64 obd_index_find(const struct obd_index *idx, u64 lba)
{
	u64 k = 0;
	u32 h;

	if (!idx->n)
		return 0;
	if (idx->key_bits == 32) {
		const u32 *t = idx->tree;
		u32 xb = bias32(lba > KEY32_MAX ? KEY32_MAX : lba);

		for (h = idx->levels - 1; h > 0; h--)
			k = k * (K32 + 1) +
			    node_count32(t + (idx->level_off[h] + k) * K32, xb);
		k = k * K32 + node_count32(t + (idx->level_off[0] + k) * K32, xb);
	} else {
		const u64 *t = idx->tree;
		u64 x = lba > KEY64_MAX ? KEY64_MAX : lba;

		for (h = idx->levels - 1; h > 0; h--)
			k = k * (K64 + 1) +
			    node_count64(t + (idx->level_off[h] + k) * K64, x);
		k = k * K64 + node_count64(t + (idx->level_off[0] + k) * K64, x);
	}
	return k;
}

int obd_maps_check(const struct obd_map *maps, u64 n, const char *what,
		   struct obd_err *err)
{
	u64 i;

	for (i = 0; i < n; i++) {
		if (maps[i].offset > OBD_MAP_OFFSET_MASK ||
		    maps[i].length > OBD_MAP_MAX_LENGTH)
			return obd_errf(err, -EINVAL,
					"%s: map %llu: offset %llu length %u out of range",
					what, (unsigned long long)i,
					(unsigned long long)maps[i].offset,
					maps[i].length);
		if (i && obd_map_end(&maps[i - 1]) > maps[i].offset)
			return obd_errf(err, -EINVAL,
					"%s: map %llu offset: got %llu, expected >= %llu (sorted, non-overlapping)",
					what, (unsigned long long)i,
					(unsigned long long)maps[i].offset,
					(unsigned long long)obd_map_end(&maps[i - 1]));
	}
	return 0;
}

/* Key of leaf slot i (the end of map i, or the pad). */
static inline u64 leaf_key(const struct obd_map *maps, u64 n, u64 i, u64 pad)
{
	return i < n ? obd_map_end(&maps[i]) : pad;
}

int obd_index_build(struct obd_index *idx, struct obd_map *maps, u64 n,
		    struct obd_err *err)
{
	u64 nodes[OBD_INDEX_MAX_LEVELS], total = 0, keys, fan, span, pad, i, j;
	u32 levels = 0, h, kb;
	u8 *mem;
	int ret;

	memset(idx, 0, sizeof(*idx));
	if (n > OBD_LSMT_MAX_MERGED)
		return obd_errf(err, -EINVAL, "index: %llu maps, expected <= %llu",
				(unsigned long long)n, OBD_LSMT_MAX_MERGED);
	ret = obd_maps_check(maps, n, "index", err);
	if (ret)
		return ret;
	if (!n) {
		idx->maps = maps;
		idx->key_bits = 32;
		return 0;
	}

	kb = obd_map_end(&maps[n - 1]) <= KEY32_MAX ? 32 : 64;
	keys = kb == 32 ? K32 : K64;
	fan = keys + 1;
	pad = kb == 32 ? 0xffffffffULL : ~0ULL;

	nodes[0] = OBD_DIV_UP(n, keys);
	for (;;) {
		total += nodes[levels];
		if (nodes[levels] == 1)
			break;
		if (levels + 1 >= OBD_INDEX_MAX_LEVELS)	/* not reached for n <= MAX */
			return obd_errf(err, -EINVAL, "index: tree too deep");
		nodes[levels + 1] = OBD_DIV_UP(nodes[levels], fan);
		levels++;
	}
	levels++;

	/* total <= 2 * n / 8 + 12 nodes for n <= 2^27: no overflow below */
	mem = obd_zalloc(total * NODE_BYTES + NODE_BYTES);
	if (!mem)
		return obd_errf(err, -ENOMEM, "index: tree of %llu nodes",
				(unsigned long long)total);
	idx->tree_mem = mem;
	idx->tree = mem + (NODE_BYTES - ((unsigned long)mem & (NODE_BYTES - 1)));
	idx->tree_bytes = total * NODE_BYTES;
	idx->levels = levels;
	idx->key_bits = kb;
	idx->maps = maps;
	idx->n = n;

	/* root first: level h starts after all levels above it */
	total = 0;
	for (h = levels; h-- > 0;) {
		idx->level_off[h] = total;
		idx->level_nodes[h] = nodes[h];
		total += nodes[h];
	}

	/* span = leaf slots under one node of level h, keys * fan^h */
	span = keys;
	for (h = 0; h < levels; h++) {
		u64 base = idx->level_off[h] * keys;

		for (i = 0; i < nodes[h]; i++) {
			for (j = 0; j < keys; j++) {
				u64 v;

				if (h == 0)
					v = leaf_key(maps, n, i * keys + j, pad);
				else
					/* first slot of child j + 1 of node i */
					v = leaf_key(maps, n,
						     (i * fan + j + 1) * (span / fan), pad);
				if (kb == 32)
					((u32 *)idx->tree)[base + i * keys + j] = bias32(v);
				else
					((u64 *)idx->tree)[base + i * keys + j] = v;
			}
		}
		span *= fan;
	}
	return 0;
}

void obd_index_free(struct obd_index *idx)
{
	obd_free(idx->tree_mem);
	obd_free(idx->maps);
	memset(idx, 0, sizeof(*idx));
}

int obd_index_walk(const struct obd_index *idx, u64 lba, u64 nsect,
		   obd_piece_fn fn, void *ctx)
{
	u64 end, pos;
	int ret;

	if (nsect > ~0ULL - lba)
		return -EINVAL;
	if (!nsect)
		return 0;
	end = lba + nsect;
	pos = obd_index_find(idx, lba);
	while (lba < end) {
		const struct obd_map *m;
		u64 e, moff;

		if (pos >= idx->n || idx->maps[pos].offset >= end)
			return fn(ctx, lba, end - lba, NULL, 0);
		m = &idx->maps[pos];
		if (m->offset > lba) {
			ret = fn(ctx, lba, m->offset - lba, NULL, 0);
			if (ret)
				return ret;
			lba = m->offset;
		}
		e = obd_map_end(m) < end ? obd_map_end(m) : end;
		moff = m->zeroed ? m->moffset : m->moffset + (lba - m->offset);
		ret = fn(ctx, lba, e - lba, m, moff);
		if (ret)
			return ret;
		lba = e;
		pos++;
	}
	return 0;
}
