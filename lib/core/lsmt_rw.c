// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * Rebuilding the index of a writable LSMT layer (spec 2.6a, 2.6b).
 *
 * The append-mode index is a log: the reference replays it into a
 * red-black tree, splitting earlier records under later ones. We get the
 * same result with a sweep over start offsets and a max-heap of record
 * numbers (the newest live record wins at every LBA), which is O(n log n),
 * iterative and needs 20 bytes per record beside the records.
 */
#include "obd.h"
#include "lsmt_rw.h"

#define OBD_RW_CHUNK_RECS	4096u	/* 64 KiB reads */

/* Sort keys: start offset, then record number (unique, so no equal keys). */
struct obd_rw_key {
	u64 offset;
	u32 idx;
	u32 pad;
};

static inline bool obd_rw_key_lt(const struct obd_rw_key *a, const struct obd_rw_key *b)
{
	return a->offset < b->offset || (a->offset == b->offset && a->idx < b->idx);
}

static inline void obd_rw_key_swap(struct obd_rw_key *a, struct obd_rw_key *b)
{
	struct obd_rw_key t = *a;

	*a = *b;
	*b = t;
}

static void obd_rw_sift(struct obd_rw_key *a, u64 i, u64 n)
{
	for (;;) {
		u64 c = 2 * i + 1, big = i;

		if (c < n && obd_rw_key_lt(&a[big], &a[c]))
			big = c;
		if (c + 1 < n && obd_rw_key_lt(&a[big], &a[c + 1]))
			big = c + 1;
		if (big == i)
			return;
		obd_rw_key_swap(&a[i], &a[big]);
		i = big;
	}
}

static void obd_rw_heapsort(struct obd_rw_key *a, u64 n)
{
	u64 i;

	if (n < 2)
		return;
	for (i = n / 2; i-- > 0;)
		obd_rw_sift(a, i, n);
	for (i = n - 1; i > 0; i--) {
		obd_rw_key_swap(&a[0], &a[i]);
		obd_rw_sift(a, 0, i);
	}
}

/*
 * Introsort without recursion: quicksort on contiguous keys (cache
 * friendly, unlike an indirect sort of 10^8 records), the smaller side
 * first so the explicit stack stays below 64 entries, heapsort when a
 * range goes too deep, insertion sort for short ranges. O(n log n).
 */
struct obd_rw_range {
	u64 lo, hi;	/* [lo, hi) */
	u32 depth;
};

#define OBD_RW_SORT_STACK	64	/* > log2(2^32): smaller side first */

/* stk: OBD_RW_SORT_STACK entries, from the heap (too big for a kernel stack). */
static void obd_rw_sort(struct obd_rw_key *a, u64 n, struct obd_rw_range *stk)
{
	u32 sp = 0, depth = 0;
	u64 lo = 0, hi = n, m;

	for (m = n; m > 1; m >>= 1)
		depth += 2;
	for (;;) {
		while (hi - lo > 16) {
			u64 mid = lo + (hi - lo) / 2, i, j;
			struct obd_rw_key piv;

			if (depth == 0) {
				obd_rw_heapsort(a + lo, hi - lo);
				lo = hi;
				break;
			}
			depth--;
			/* Median of three into a[lo]. */
			if (obd_rw_key_lt(&a[mid], &a[lo]))
				obd_rw_key_swap(&a[mid], &a[lo]);
			if (obd_rw_key_lt(&a[hi - 1], &a[lo]))
				obd_rw_key_swap(&a[hi - 1], &a[lo]);
			if (obd_rw_key_lt(&a[hi - 1], &a[mid]))
				obd_rw_key_swap(&a[hi - 1], &a[mid]);
			obd_rw_key_swap(&a[lo], &a[mid]);
			piv = a[lo];
			i = lo;
			j = hi;
			for (;;) {
				do
					i++;
				while (i < hi && obd_rw_key_lt(&a[i], &piv));
				do
					j--;
				while (obd_rw_key_lt(&piv, &a[j]));
				if (i >= j)
					break;
				obd_rw_key_swap(&a[i], &a[j]);
			}
			obd_rw_key_swap(&a[lo], &a[j]);
			/* [lo, j) < piv < [j + 1, hi): push the larger side. */
			if (j - lo < hi - (j + 1)) {
				stk[sp].lo = j + 1;
				stk[sp].hi = hi;
				stk[sp].depth = depth;
				sp++;
				hi = j;
			} else {
				stk[sp].lo = lo;
				stk[sp].hi = j;
				stk[sp].depth = depth;
				sp++;
				lo = j + 1;
			}
		}
		for (m = lo + 1; m < hi; m++) {
			struct obd_rw_key k = a[m];
			u64 p = m;

			while (p > lo && obd_rw_key_lt(&k, &a[p - 1])) {
				a[p] = a[p - 1];
				p--;
			}
			a[p] = k;
		}
		if (sp == 0)
			return;
		sp--;
		lo = stk[sp].lo;
		hi = stk[sp].hi;
		depth = stk[sp].depth;
	}
}

/* Max-heap of record numbers: a larger number is a newer record. */
static void obd_rw_heap_push(u32 *h, u64 *hn, u32 v)
{
	u64 i = (*hn)++;

	while (i > 0) {
		u64 p = (i - 1) / 2;

		if (h[p] >= v)
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = v;
}

static void obd_rw_heap_pop(u32 *h, u64 *hn)
{
	u64 n = --(*hn), i = 0;
	u32 v;

	if (n == 0)
		return;
	v = h[n];
	for (;;) {
		u64 c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && h[c + 1] > h[c])
			c++;
		if (h[c] <= v)
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = v;
}

/* One sweep; counts pieces, and stores them when out != NULL. */
static u64 obd_rw_sweep(const struct obd_map *r, const struct obd_rw_key *order, u64 n,
			u32 *heap, struct obd_map *out)
{
	u64 k = 0, hn = 0, cnt = 0, pos = 0, last_end = 0;
	u32 last = 0;

	for (;;) {
		const struct obd_map *m;
		u64 next;
		u32 t;

		while (k < n && order[k].offset <= pos)
			obd_rw_heap_push(heap, &hn, order[k++].idx);
		while (hn && obd_map_end(&r[heap[0]]) <= pos)
			obd_rw_heap_pop(heap, &hn);
		if (!hn) {
			if (k == n)
				break;
			pos = order[k].offset;
			continue;
		}
		t = heap[0];
		m = &r[t];
		next = obd_map_end(m);
		if (k < n && order[k].offset < next)
			next = order[k].offset;
		/* Pieces of one record split only by a losing start: join them. */
		if (cnt && last == t && last_end == pos) {
			if (out)
				out[cnt - 1].length += (u32)(next - pos);
		} else {
			if (out) {
				struct obd_map *o = &out[cnt];

				o->offset = pos;
				o->length = (u32)(next - pos);
				o->moffset = m->zeroed ? m->moffset : m->moffset + (pos - m->offset);
				o->zeroed = m->zeroed;
				o->tag = m->tag;
			}
			cnt++;
		}
		last = t;
		last_end = next;
		pos = next;
	}
	return cnt;
}

int obd_lsmt_rw_replay(const struct obd_map *recs, u64 n, const char *name,
		       struct obd_map **maps, u64 *nmaps, struct obd_err *err)
{
	struct obd_rw_key *order = NULL;
	struct obd_rw_range *stk = NULL;
	struct obd_map *out = NULL;
	u32 *heap = NULL;
	u64 i, m = 0, cnt;
	int ret = 0;

	*maps = NULL;
	*nmaps = 0;
	if (n > 0xffffffffULL || n > OBD_LSMT_MAX_RW_INDEX)
		return obd_errf(err, EFSCORRUPTED, "%s: RW index records: got %llu, expected <= %llu",
				name, (unsigned long long)n,
				(unsigned long long)OBD_LSMT_MAX_RW_INDEX);
	if (n == 0)
		return 0;
	if (n > (size_t)-1 / sizeof(*order))
		return obd_errf(err, ENOMEM, "%s: RW index: %llu records do not fit in memory",
				name, (unsigned long long)n);
	order = obd_zalloc((size_t)n * sizeof(*order));
	heap = obd_zalloc((size_t)n * sizeof(u32));
	stk = obd_zalloc(OBD_RW_SORT_STACK * sizeof(*stk));
	if (!order || !heap || !stk) {
		ret = obd_errf(err, ENOMEM, "%s: RW index: out of memory for %llu records",
			       name, (unsigned long long)n);
		goto out_free;
	}
	for (i = 0; i < n; i++) {
		if (!recs[i].length)
			continue;
		order[m].offset = recs[i].offset;
		order[m].idx = (u32)i;
		m++;
	}
	obd_rw_sort(order, m, stk);
	cnt = obd_rw_sweep(recs, order, m, heap, NULL);
	if (cnt == 0)
		goto out_free;
	/* Every piece starts at a record start or end: cnt <= 2n. */
	if (cnt > (size_t)-1 / sizeof(*out)) {
		ret = obd_errf(err, ENOMEM, "%s: RW index: %llu pieces do not fit in memory",
			       name, (unsigned long long)cnt);
		goto out_free;
	}
	out = obd_zalloc((size_t)cnt * sizeof(*out));
	if (!out) {
		ret = obd_errf(err, ENOMEM, "%s: RW index: out of memory for %llu maps",
			       name, (unsigned long long)cnt);
		goto out_free;
	}
	obd_rw_sweep(recs, order, m, heap, out);
	*maps = out;
	*nmaps = cnt;
out_free:
	obd_free(stk);
	obd_free(heap);
	obd_free(order);
	return ret;
}

/*
 * Read the count records of the index file a chunk at a time, skip padding
 * and zero-length records (a torn or preallocated block reads as zeros),
 * check the others' moffset range. recs == NULL: only count them into *n;
 * else store at most max of them.
 */
static int obd_rw_read_recs(struct obd_io *io, u64 count, u64 data_size,
			    struct obd_lsmt_mapping *chunk, struct obd_map *recs, u64 max,
			    u64 *n, struct obd_err *err)
{
	const u64 base = OBD_LSMT_HT_SPACE / OBD_SECTOR_SIZE;
	const u64 mend_max = data_size / OBD_SECTOR_SIZE;
	u64 i;
	int ret;

	*n = 0;
	for (i = 0; i < count; i += OBD_RW_CHUNK_RECS) {
		u64 cnt = count - i < OBD_RW_CHUNK_RECS ? count - i : OBD_RW_CHUNK_RECS;
		u64 j;

		ret = obd_io_read(io, chunk, (size_t)cnt * sizeof(*chunk),
				  OBD_LSMT_HT_SPACE + i * sizeof(*chunk));
		if (ret < 0)
			return obd_errf(err, -ret, "%s: RW index: read of records %llu..%llu failed (%d)",
					io->name, (unsigned long long)i,
					(unsigned long long)(i + cnt), ret);
		for (j = 0; j < cnt; j++) {
			struct obd_map m;

			if (obd_map_raw_invalid(&chunk[j]))
				continue;
			obd_map_decode(&chunk[j], &m);
			m.tag = 0;
			if (m.length == 0)
				continue;
			if (m.moffset < base || obd_map_mend(&m) > mend_max)
				return obd_errf(err, EFSCORRUPTED,
						"%s: RW index record %llu moffset: got %llu+%u%s, expected within [%llu, %llu] (data file)",
						io->name, (unsigned long long)(i + j),
						(unsigned long long)m.moffset,
						m.zeroed ? 0 : m.length,
						m.zeroed ? " (zeroed)" : "",
						(unsigned long long)base, (unsigned long long)mend_max);
			if (recs) {
				if (*n == max)
					return obd_errf(err, EAGAIN,
							"%s: RW index: more records than a moment ago (changed while read)",
							io->name);
				recs[*n] = m;
			} else if (*n == OBD_LSMT_RW_MAX_RECORDS) {
				return obd_errf(err, EFBIG,
						"%s: RW index: more than %llu records (not padding), the most a reader loads",
						io->name, (unsigned long long)OBD_LSMT_RW_MAX_RECORDS);
			}
			(*n)++;
		}
	}
	return 0;
}

int obd_lsmt_rw_load_index(struct obd_io *io, u64 data_size, struct obd_map **maps,
			   u64 *nmaps, u64 *nrecs, struct obd_err *err)
{
	struct obd_lsmt_mapping *chunk = NULL;
	struct obd_lsmt_info *li;
	struct obd_map *recs = NULL;
	u64 count, n = 0, got = 0;
	u32 hflags;
	u64 ioff;
	int ret;

	*maps = NULL;
	*nmaps = 0;
	if (nrecs)
		*nrecs = 0;
	/* The info struct is ~370 bytes: keep it off the kernel stack. */
	li = obd_zalloc(sizeof(*li));
	if (!li)
		return obd_errf(err, ENOMEM, "%s: RW index: out of memory", io->name);
	ret = obd_lsmt_read_header(io, li, err);
	hflags = li->header_flags;
	ioff = li->index_offset;
	obd_free(li);
	if (ret)
		return ret;
	if (hflags & (OBD_LSMT_F_DATA | OBD_LSMT_F_SEALED))
		return obd_errf(err, EFSCORRUPTED,
				"%s: RW index header flags: got 0x%x, expected an unsealed index file (0x01)",
				io->name, hflags);
	if (ioff != OBD_LSMT_HT_SPACE)
		return obd_errf(err, EFSCORRUPTED,
				"%s: RW index header index_offset: got %llu, expected %u",
				io->name, (unsigned long long)ioff, OBD_LSMT_HT_SPACE);
	count = (io->size - OBD_LSMT_HT_SPACE) / sizeof(struct obd_lsmt_mapping);
	if (count > OBD_LSMT_MAX_RW_INDEX)
		return obd_errf(err, EFSCORRUPTED,
				"%s: RW index records: got %llu, expected <= %llu",
				io->name, (unsigned long long)count,
				(unsigned long long)OBD_LSMT_MAX_RW_INDEX);
	if (count == 0)
		return 0;
	chunk = obd_zalloc(OBD_RW_CHUNK_RECS * sizeof(*chunk));
	if (!chunk)
		return obd_errf(err, ENOMEM, "%s: RW index: out of memory", io->name);
	/*
	 * Two passes: the records that are not padding are counted first, so
	 * the allocations follow them (at most OBD_LSMT_RW_MAX_RECORDS, far
	 * below INT_MAX bytes each), not the file's size: an index written
	 * with a padded block per flush is mostly padding.
	 */
	ret = obd_rw_read_recs(io, count, data_size, chunk, NULL, 0, &n, err);
	if (ret || n == 0)
		goto out_free;
	recs = obd_zalloc((size_t)n * sizeof(*recs));
	if (!recs) {
		ret = obd_errf(err, ENOMEM, "%s: RW index: out of memory for %llu records",
			       io->name, (unsigned long long)n);
		goto out_free;
	}
	ret = obd_rw_read_recs(io, count, data_size, chunk, recs, n, &got, err);
	if (ret)
		goto out_free;
	ret = obd_lsmt_rw_replay(recs, got, io->name, maps, nmaps, err);
	if (!ret && nrecs)
		*nrecs = got;
out_free:
	obd_free(chunk);
	obd_free(recs);
	return ret;
}

int obd_lsmt_sparse_maps(const u64 *ext, u64 next, u64 file_size, const char *name,
			 struct obd_map **maps, u64 *nmaps, struct obd_err *err)
{
	const u64 base = OBD_LSMT_HT_SPACE / OBD_SECTOR_SIZE;
	struct obd_map *out = NULL;
	u64 pass, i, cnt = 0;

	*maps = NULL;
	*nmaps = 0;
	/* Pass 0 counts, pass 1 fills: no reallocation. */
	for (pass = 0; pass < 2; pass++) {
		u64 prev_end = base, k = 0;

		for (i = 0; i < next; i++) {
			u64 b = ext[2 * i], e = ext[2 * i + 1];
			u64 s, se;

			if (e > file_size)
				e = file_size;
			/* Sectors partly holes read as zeros either way: round outwards. */
			s = b / OBD_SECTOR_SIZE;
			se = OBD_DIV_UP(e, OBD_SECTOR_SIZE);
			if (s < prev_end)
				s = prev_end;
			if (se <= s)
				continue;
			if (se - base > OBD_MAP_OFFSET_MASK)
				return obd_errf(err, EFSCORRUPTED,
						"%s: sparse extent end: got byte %llu, expected below 2^59",
						name, (unsigned long long)e);
			while (s < se) {
				u64 len = se - s;

				if (len > OBD_MAP_MAX_LENGTH)
					len = OBD_MAP_MAX_LENGTH;
				if (out) {
					out[k].offset = s - base;
					out[k].length = (u32)len;
					out[k].moffset = s;
					out[k].zeroed = 0;
					out[k].tag = 0;
				}
				k++;
				s += len;
			}
			prev_end = se;
		}
		if (pass == 0) {
			cnt = k;
			if (cnt == 0)
				return 0;
			if (cnt > (size_t)-1 / sizeof(*out))
				return obd_errf(err, ENOMEM, "%s: sparse maps: %llu do not fit",
						name, (unsigned long long)cnt);
			out = obd_zalloc((size_t)cnt * sizeof(*out));
			if (!out)
				return obd_errf(err, ENOMEM, "%s: sparse maps: out of memory for %llu",
						name, (unsigned long long)cnt);
		}
	}
	*maps = out;
	*nmaps = cnt;
	return 0;
}
