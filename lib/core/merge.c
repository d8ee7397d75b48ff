// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * Merge of layer indexes into one sorted, non-overlapping array (spec 2.8).
 *
 * The reference recurses one level per layer; with 255 layers that is too
 * deep for a kernel stack, so this is a sweep instead. The sweep keeps a
 * cursor per layer (its first map that ends after the sweep point p) and
 * two heaps of layers:
 *  - active: layers whose cursor map starts at or before p, max-heap on the
 *    layer number, so the top is the top-most layer mapping p. Entries may
 *    be stale (their map ended while a higher layer won); a stale entry is
 *    only looked at when it reaches the top, and then its cursor advances.
 *  - pending: layers whose cursor map starts after p, min-heap on offset.
 * One step emits [p, cut) from the winner, cut being its end or the next
 * pending start, whichever is first (a higher layer may start there). Every
 * step consumes a map start or a map end, so there are at most 2 * total
 * steps of O(log layers) each. Pieces of the same source map that follow
 * each other are joined, so a map is only ever clipped: merged lengths
 * stay <= 16383.
 *
 * The sweep runs twice: once to count, once to fill an exact allocation.
 */
#include "obd.h"

struct merge_state {
	const struct obd_map *const *layers;
	const u64 *counts;
	u64 *cur;		/* per layer: first map with end > p */
	u8 *act, *pend;		/* heaps of layer numbers */
	u32 nact, npend;
};

static inline const struct obd_map *cur_map(const struct merge_state *s, u8 l)
{
	return &s->layers[l][s->cur[l]];
}

static inline bool pend_less(const struct merge_state *s, u8 a, u8 b)
{
	return cur_map(s, a)->offset < cur_map(s, b)->offset;
}

static void act_push(struct merge_state *s, u8 l)
{
	u32 i = s->nact++;

	while (i && s->act[(i - 1) / 2] < l) {
		s->act[i] = s->act[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->act[i] = l;
}

static void act_pop(struct merge_state *s)
{
	u8 l = s->act[--s->nact];
	u32 i = 0, c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= s->nact)
			break;
		if (c + 1 < s->nact && s->act[c + 1] > s->act[c])
			c++;
		if (s->act[c] <= l)
			break;
		s->act[i] = s->act[c];
		i = c;
	}
	if (s->nact)
		s->act[i] = l;
}

static void pend_push(struct merge_state *s, u8 l)
{
	u32 i = s->npend++;

	while (i && pend_less(s, l, s->pend[(i - 1) / 2])) {
		s->pend[i] = s->pend[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->pend[i] = l;
}

static void pend_pop(struct merge_state *s)
{
	u8 l = s->pend[--s->npend];
	u32 i = 0, c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= s->npend)
			break;
		if (c + 1 < s->npend && pend_less(s, s->pend[c + 1], s->pend[c]))
			c++;
		if (!pend_less(s, s->pend[c], l))
			break;
		s->pend[i] = s->pend[c];
		i = c;
	}
	if (s->npend)
		s->pend[i] = l;
}

/* Move layer l's cursor past p and file it under active or pending. */
static void place(struct merge_state *s, u8 l, u64 p)
{
	const struct obd_map *m = s->layers[l];
	u64 c = s->cur[l];

	while (c < s->counts[l] && obd_map_end(&m[c]) <= p)
		c++;
	s->cur[l] = c;
	if (c >= s->counts[l])
		return;
	if (m[c].offset <= p)
		act_push(s, l);
	else
		pend_push(s, l);
}

/*
 * One sweep. out == NULL: count only. Returns the number of merged maps,
 * or stops early once it exceeds limit.
 */
static u64 sweep(struct merge_state *s, unsigned int nlayers,
		 struct obd_map *out, u64 limit)
{
	u64 p = 0, n = 0, last_src = 0, last_end = 0;
	int last_l = -1;
	unsigned int l;

	s->nact = 0;
	s->npend = 0;
	for (l = 0; l < nlayers; l++) {
		s->cur[l] = 0;
		place(s, (u8)l, 0);
	}

	for (;;) {
		const struct obd_map *m;
		u64 cut;
		u8 w;

		while (s->npend && cur_map(s, s->pend[0])->offset <= p) {
			w = s->pend[0];
			pend_pop(s);
			act_push(s, w);
		}
		while (s->nact && obd_map_end(cur_map(s, s->act[0])) <= p) {
			w = s->act[0];
			act_pop(s);
			place(s, w, p);
		}
		if (!s->nact) {
			if (!s->npend)
				break;
			p = cur_map(s, s->pend[0])->offset;
			continue;
		}

		w = s->act[0];
		m = cur_map(s, w);
		cut = obd_map_end(m);
		if (s->npend && cur_map(s, s->pend[0])->offset < cut)
			cut = cur_map(s, s->pend[0])->offset;

		if (last_l == w && last_src == s->cur[w] && last_end == p) {
			/* the same source map again, right after itself */
			if (out)
				out[n - 1].length += (u32)(cut - p);
		} else {
			if (++n > limit)
				return n;
			if (out) {
				struct obd_map *o = &out[n - 1];

				o->offset = p;
				o->length = (u32)(cut - p);
				o->moffset = m->zeroed ? m->moffset :
					     m->moffset + (p - m->offset);
				o->zeroed = m->zeroed;
				o->tag = w;
				o->target = m->target;
			}
			last_l = w;
			last_src = s->cur[w];
		}
		last_end = cut;
		p = cut;
	}
	return n;
}

int obd_index_merge(const struct obd_map *const *layers, const u64 *counts,
		    unsigned int nlayers, struct obd_index *out,
		    struct obd_err *err)
{
	struct merge_state s;
	struct obd_map *maps = NULL;
	u64 total = 0, n, n2;
	unsigned int l;
	char what[24];	/* "merge: layer 255" */
	u8 *work;
	int ret;

	memset(out, 0, sizeof(*out));
	if (nlayers > OBD_MAX_LAYERS)
		return obd_errf(err, -EINVAL, "merge: %u layers, expected <= %u",
				nlayers, OBD_MAX_LAYERS);
	for (l = 0; l < nlayers; l++) {
		const struct obd_map *m = layers[l];

		if (counts[l] && !m)
			return obd_errf(err, -EINVAL, "merge: layer %u: no maps", l);
		if (counts[l] > OBD_LSMT_MAX_RW_INDEX)
			return obd_errf(err, -EINVAL,
					"merge: layer %u: %llu maps, expected <= %llu", l,
					(unsigned long long)counts[l],
					OBD_LSMT_MAX_RW_INDEX);
		total += counts[l];
		snprintf(what, sizeof(what), "merge: layer %u", l);
		ret = obd_maps_check(m, counts[l], what, err);
		if (ret)
			return ret;
	}
	if (!total)
		return obd_index_build(out, NULL, 0, err);

	/* cursors, then two heaps of one byte per layer */
	work = obd_zalloc(nlayers * (sizeof(u64) + 2));
	if (!work)
		return obd_errf(err, -ENOMEM, "merge: work area for %u layers", nlayers);
	s.layers = layers;
	s.counts = counts;
	s.cur = (u64 *)work;
	s.act = work + nlayers * sizeof(u64);
	s.pend = s.act + nlayers;

	n = sweep(&s, nlayers, NULL, OBD_LSMT_MAX_MERGED);
	if (n > OBD_LSMT_MAX_MERGED) {
		ret = obd_errf(err, -EOPNOTSUPP,
			       "merge: merged index: more than %llu maps",
			       OBD_LSMT_MAX_MERGED);
		goto free_work;
	}
	/* n <= 2^27 and sizeof is 24: the product fits in any size_t >= 32 bits */
	if (n > ~(size_t)0 / sizeof(*maps)) {
		ret = obd_errf(err, -ENOMEM, "merge: %llu maps", (unsigned long long)n);
		goto free_work;
	}
	maps = obd_zalloc((size_t)n * sizeof(*maps));
	if (!maps) {
		ret = obd_errf(err, -ENOMEM, "merge: %llu maps", (unsigned long long)n);
		goto free_work;
	}
	n2 = sweep(&s, nlayers, maps, n);
	if (n2 != n) {	/* the sweep is deterministic; never happens */
		ret = obd_errf(err, -EINVAL, "merge: count %llu, then %llu",
			       (unsigned long long)n, (unsigned long long)n2);
		goto free_maps;
	}
	ret = obd_index_build(out, maps, n, err);
	if (ret)
		goto free_maps;
	obd_free(work);
	return 0;

free_maps:
	obd_free(maps);
free_work:
	obd_free(work);
	return ret;
}
