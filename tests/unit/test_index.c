// SPDX-License-Identifier: GPL-2.0-only
/*
 * Merged index and lookup (lib/core/merge.c, lib/core/lookup.c) against brute force:
 * the merge against a per-sector model of the stack, obd_index_find
 * against obd_index_find_bsearch, obd_index_walk against the model.
 * OBD_SEED=<n> replays a run.
 */
#include <stdlib.h>
#include <stdio.h>
#include <time.h>
#include "obd.h"
#include "tap.h"
#include "testutil.h"

/* ---- generated stacks --------------------------------------------------- */

struct stack {
	unsigned int nl;
	struct obd_map **layers;
	u64 *counts;
};

/*
 * A random layer over [base, base + range): random gaps and lengths, some
 * zeroed, garbage tags (the merge must ignore them).
 */
static void gen_layer(struct obd_map **out, u64 *count, u64 base, u64 range,
		      u32 maxlen, u32 maxgap)
{
	u64 cap = 16, n = 0, p = base + rnd_in(0, maxgap);
	struct obd_map *m = malloc(cap * sizeof(*m));

	while (p < base + range) {
		u32 len = (u32)rnd_in(1, maxlen);

		if (n == cap) {
			cap *= 2;
			m = realloc(m, cap * sizeof(*m));
		}
		m[n].offset = p;
		m[n].length = len;
		m[n].moffset = rnd_in(8, 1ULL << 40);
		m[n].zeroed = rnd() % 5 == 0;
		m[n].tag = (u8)rnd();
		n++;
		p += len + rnd_in(0, maxgap);
	}
	*out = m;
	*count = n;
}

static void gen_stack(struct stack *s, unsigned int nl, u64 base, u64 range,
		      u32 maxlen, u32 maxgap)
{
	unsigned int l;

	s->nl = nl;
	s->layers = calloc(nl ? nl : 1, sizeof(*s->layers));
	s->counts = calloc(nl ? nl : 1, sizeof(*s->counts));
	for (l = 0; l < nl; l++) {
		if (rnd() % 8 == 0) {	/* an empty layer now and then */
			s->layers[l] = NULL;
			s->counts[l] = 0;
			continue;
		}
		gen_layer(&s->layers[l], &s->counts[l], base, range,
			  (u32)rnd_in(1, maxlen), (u32)rnd_in(0, maxgap));
	}
}

static void free_stack(struct stack *s)
{
	unsigned int l;

	for (l = 0; l < s->nl; l++)
		free(s->layers[l]);
	free(s->layers);
	free(s->counts);
}

/* ---- per-sector model --------------------------------------------------- */

struct model {
	u64 base, range;
	int *layer;	/* -1 = hole */
	u64 *src;	/* map index in that layer */
	u8 *zeroed;
	u64 *moff;	/* sector's moffset (data) or the map's moffset (zeroed) */
	u64 runs;	/* maximal runs of one source map = expected merged count */
};

static void model_build(struct model *md, const struct stack *s, u64 base, u64 range)
{
	unsigned int l;
	u64 i, x;

	md->base = base;
	md->range = range + OBD_MAP_MAX_LENGTH + 1;
	md->layer = malloc(md->range * sizeof(int));
	md->src = calloc(md->range, sizeof(u64));
	md->zeroed = calloc(md->range, 1);
	md->moff = calloc(md->range, sizeof(u64));
	for (x = 0; x < md->range; x++)
		md->layer[x] = -1;
	for (l = 0; l < s->nl; l++) {	/* bottom up: the later paint wins */
		for (i = 0; i < s->counts[l]; i++) {
			const struct obd_map *m = &s->layers[l][i];

			for (x = m->offset; x < obd_map_end(m); x++) {
				u64 k = x - base;

				md->layer[k] = (int)l;
				md->src[k] = i;
				md->zeroed[k] = m->zeroed;
				md->moff[k] = m->zeroed ? m->moffset :
					      m->moffset + (x - m->offset);
			}
		}
	}
	md->runs = 0;
	for (x = 0; x < md->range; x++)
		if (md->layer[x] >= 0 &&
		    (!x || md->layer[x - 1] != md->layer[x] || md->src[x - 1] != md->src[x]))
			md->runs++;
}

static void model_free(struct model *md)
{
	free(md->layer);
	free(md->src);
	free(md->zeroed);
	free(md->moff);
}

/* The merged index against the model, sector by sector. */
static int check_merged(const struct obd_index *idx, const struct model *md,
			const char *what)
{
	u64 i, x, covered = 0, model_covered = 0;

	for (i = 0; i < idx->n; i++) {
		const struct obd_map *m = &idx->maps[i];

		if (m->length < 1 || m->length > OBD_MAP_MAX_LENGTH) {
			tap_diag("%s: map %llu length %u", what, (unsigned long long)i,
				 m->length);
			return 0;
		}
		if (i && obd_map_end(&idx->maps[i - 1]) > m->offset) {
			tap_diag("%s: map %llu overlaps or unsorted", what,
				 (unsigned long long)i);
			return 0;
		}
		if (m->offset < md->base || obd_map_end(m) > md->base + md->range) {
			tap_diag("%s: map %llu outside the model", what, (unsigned long long)i);
			return 0;
		}
		for (x = m->offset; x < obd_map_end(m); x++) {
			u64 k = x - md->base;
			u64 moff = m->zeroed ? m->moffset : m->moffset + (x - m->offset);

			if (md->layer[k] != m->tag || md->zeroed[k] != m->zeroed ||
			    md->moff[k] != moff) {
				tap_diag("%s: sector %llu: got layer %d zeroed %d moff %llu, expected %d %d %llu",
					 what, (unsigned long long)x, m->tag, m->zeroed,
					 (unsigned long long)moff, md->layer[k],
					 md->zeroed[k], (unsigned long long)md->moff[k]);
				return 0;
			}
			covered++;
		}
	}
	for (x = 0; x < md->range; x++)
		model_covered += md->layer[x] >= 0;
	if (covered != model_covered) {
		tap_diag("%s: %llu sectors mapped, expected %llu", what,
			 (unsigned long long)covered, (unsigned long long)model_covered);
		return 0;
	}
	if (idx->n != md->runs) {
		tap_diag("%s: %llu maps, expected %llu (one per run of a source map)",
			 what, (unsigned long long)idx->n, (unsigned long long)md->runs);
		return 0;
	}
	return 1;
}

/* ---- find ----------------------------------------------------------------- */

static int check_find_at(const struct obd_index *idx, u64 lba)
{
	u64 a = obd_index_find(idx, lba), b = obd_index_find_bsearch(idx, lba);

	if (a != b) {
		tap_diag("find(%llu) = %llu, bsearch %llu (n %llu, key_bits %u)",
			 (unsigned long long)lba, (unsigned long long)a,
			 (unsigned long long)b, (unsigned long long)idx->n, idx->key_bits);
		return 0;
	}
	return 1;
}

/* Every boundary +-1, the extremes and nrand random points near the data. */
static int check_find(const struct obd_index *idx, u64 nrand)
{
	static const u64 fixed[] = {
		0, 1, 0xfffffffeULL, 0xffffffffULL, 0x100000000ULL,
		(1ULL << 50) - 1, 1ULL << 50, (1ULL << 50) + 20000, ~0ULL - 1, ~0ULL,
	};
	u64 i, lo, hi;
	int d;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (!check_find_at(idx, fixed[i]))
			return 0;
	for (i = 0; i < idx->n; i++) {
		for (d = -1; d <= 1; d++) {
			if (!check_find_at(idx, idx->maps[i].offset + (u64)(s64)d) ||
			    !check_find_at(idx, obd_map_end(&idx->maps[i]) + (u64)(s64)d))
				return 0;
		}
	}
	if (!idx->n)
		return 1;
	lo = idx->maps[0].offset > 100 ? idx->maps[0].offset - 100 : 0;
	hi = obd_map_end(&idx->maps[idx->n - 1]) + 100;
	for (i = 0; i < nrand; i++)
		if (!check_find_at(idx, rnd_in(lo, hi)))
			return 0;
	return 1;
}

/* ---- walk ----------------------------------------------------------------- */

struct walk_ctx {
	const struct model *md;
	u64 next;	/* where the next piece must start */
	int bad;
	int stop_after;	/* return -EIO at this piece (0: never) */
	int pieces;
};

static int walk_fn(void *ctx, u64 lba, u64 nsect, const struct obd_map *m, u64 moff)
{
	struct walk_ctx *w = ctx;
	const struct model *md = w->md;
	u64 x;

	w->pieces++;
	if (w->stop_after && w->pieces == w->stop_after)
		return -EIO;
	if (lba != w->next || !nsect) {
		tap_diag("walk: piece at %llu+%llu, expected start %llu",
			 (unsigned long long)lba, (unsigned long long)nsect,
			 (unsigned long long)w->next);
		w->bad = 1;
		return -EINVAL;
	}
	if (m && (lba < m->offset || lba + nsect > obd_map_end(m))) {
		tap_diag("walk: piece %llu+%llu outside its map", (unsigned long long)lba,
			 (unsigned long long)nsect);
		w->bad = 1;
		return -EINVAL;
	}
	for (x = lba; x < lba + nsect; x++) {
		int layer = -1;
		u64 k;

		if (x >= md->base && x < md->base + md->range) {
			k = x - md->base;
			layer = md->layer[k];
		}
		if (!m) {
			if (layer != -1)
				goto bad;
			continue;
		}
		if (layer != m->tag || md->zeroed[k] != m->zeroed)
			goto bad;
		if (!m->zeroed && md->moff[k] != moff + (x - lba))
			goto bad;
	}
	w->next = lba + nsect;
	return 0;
bad:
	tap_diag("walk: sector %llu of piece %llu+%llu (map %p) differs from the model",
		 (unsigned long long)x, (unsigned long long)lba,
		 (unsigned long long)nsect, (const void *)m);
	w->bad = 1;
	return -EINVAL;
}

static int check_walk(const struct obd_index *idx, const struct model *md, int nwalks)
{
	int i;

	for (i = 0; i < nwalks; i++) {
		struct walk_ctx w = { .md = md };
		u64 lba = md->base + rnd_in(0, md->range) - (md->base ? rnd_in(0, 50) : 0);
		u64 nsect = rnd_in(0, i % 4 ? 100 : md->range / 2);
		int ret;

		if (lba + nsect > md->base + md->range)	/* stay inside the model */
			nsect = md->base + md->range - lba;
		w.next = lba;
		ret = obd_index_walk(idx, lba, nsect, walk_fn, &w);
		if (ret || w.bad || w.next != lba + nsect) {
			tap_diag("walk(%llu, %llu): ret %d, covered to %llu",
				 (unsigned long long)lba, (unsigned long long)nsect, ret,
				 (unsigned long long)w.next);
			return 0;
		}
	}
	return 1;
}

/* ---- a whole stack -------------------------------------------------------- */

static int run_stack(struct stack *s, u64 base, u64 range, const char *what,
		     int expect_bits)
{
	struct obd_index idx;
	struct obd_err err = { { 0 } };
	struct model md;
	int ok, ret;

	model_build(&md, s, base, range);
	ret = obd_index_merge((const struct obd_map *const *)s->layers, s->counts,
			      s->nl, &idx, &err);
	if (ret) {
		tap_diag("%s: merge: %d %s", what, ret, err.msg);
		model_free(&md);
		return 0;
	}
	ok = check_merged(&idx, &md, what) && check_find(&idx, 2000) &&
	     check_walk(&idx, &md, 200);
	if (ok && expect_bits && idx.n && idx.key_bits != (u32)expect_bits) {
		tap_diag("%s: key_bits %u, expected %d", what, idx.key_bits, expect_bits);
		ok = 0;
	}
	obd_index_free(&idx);
	model_free(&md);
	return ok;
}

static void test_random_stacks(void)
{
	int t, ok = 1;

	for (t = 0; t < 300 && ok; t++) {
		struct stack s;
		unsigned int nl = (unsigned int)rnd_in(1, 20);
		u64 range = rnd_in(1, 40000);

		gen_stack(&s, nl, 0, range, t % 3 ? 2000 : OBD_MAP_MAX_LENGTH,
			  t % 2 ? 3000 : 50);
		ok = run_stack(&s, 0, range, "random stack", 32);
		if (!ok)
			tap_diag("stack %d: %u layers, range %llu", t, nl,
				 (unsigned long long)range);
		free_stack(&s);
	}
	tap_ok(ok, "merge/find/walk match the model on 300 random stacks of 1..20 layers");
}

static void test_far_offsets(void)
{
	static const struct {
		u64 base;
		int bits;
		const char *what;
	} cases[] = {
		{ (1ULL << 50) - 60000, 64, "offsets near 2^50" },
		{ 1ULL << 40, 64, "offsets around 2^40 (64-bit keys)" },
		{ (1ULL << 32) - 20000, 64, "offsets across 2^32" },
		{ (1ULL << 32) - 100000, 32, "offsets just below 2^32" },
	};
	unsigned int c;
	int t;

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		int ok = 1;

		for (t = 0; t < 40 && ok; t++) {
			struct stack s;

			gen_stack(&s, (unsigned int)rnd_in(1, 8), cases[c].base, 40000,
				  OBD_MAP_MAX_LENGTH, 500);
			ok = run_stack(&s, cases[c].base, 40000, cases[c].what,
				       t ? cases[c].bits : 0);
			free_stack(&s);
		}
		tap_ok(ok, "%s", cases[c].what);
	}
}

static void test_many_layers(void)
{
	struct stack s;
	struct obd_index idx;
	struct obd_err err = { { 0 } };
	int ok, ret;

	gen_stack(&s, OBD_MAX_LAYERS, 0, 30000, 400, 800);
	ok = run_stack(&s, 0, 30000, "255 layers", 32);
	tap_ok(ok, "255 layers match the model");

	ret = obd_index_merge((const struct obd_map *const *)s.layers, s.counts, 256,
			      &idx, &err);
	tap_ok(ret == -EINVAL, "256 layers refused: %d (%s)", ret, err.msg);
	free_stack(&s);

	/* 255 layers all covering the same sector: the top one wins */
	{
		static struct obd_map one[OBD_MAX_LAYERS];
		const struct obd_map *lp[OBD_MAX_LAYERS];
		u64 cnt[OBD_MAX_LAYERS];
		unsigned int l;

		for (l = 0; l < OBD_MAX_LAYERS; l++) {
			one[l] = (struct obd_map){ .offset = l, .length = 1000,
						   .moffset = 100 + l };
			lp[l] = &one[l];
			cnt[l] = 1;
		}
		ret = obd_index_merge(lp, cnt, OBD_MAX_LAYERS, &idx, &err);
		ok = !ret && idx.n == OBD_MAX_LAYERS;
		for (l = 0; ok && l < OBD_MAX_LAYERS - 1; l++)
			ok = idx.maps[l].offset == l && idx.maps[l].length == 1 &&
			     idx.maps[l].tag == l && idx.maps[l].moffset == 100 + l;
		ok = ok && idx.maps[254].offset == 254 && idx.maps[254].length == 1000 &&
		     idx.maps[254].tag == 254;
		tap_ok(ok, "staircase of 255 layers: each layer keeps its first sector");
		if (!ret)
			obd_index_free(&idx);
	}
}

static void test_edges(void)
{
	struct obd_index idx;
	struct obd_err err = { { 0 } };
	struct obd_map m[4];
	const struct obd_map *lp[3];
	u64 cnt[3];
	int ret, ok;

	/* no layers at all */
	ret = obd_index_merge(NULL, NULL, 0, &idx, &err);
	ok = !ret && idx.n == 0 && obd_index_find(&idx, 0) == 0 &&
	     obd_index_find(&idx, ~0ULL) == 0 && obd_index_find_bsearch(&idx, 5) == 0;
	{
		struct model md = { .base = 0, .range = 100 };

		md.layer = malloc(100 * sizeof(int));
		for (int i = 0; i < 100; i++)
			md.layer[i] = -1;
		md.zeroed = calloc(100, 1);
		md.moff = calloc(100, sizeof(u64));
		ok = ok && check_walk(&idx, &md, 20);
		free(md.layer);
		free(md.zeroed);
		free(md.moff);
	}
	obd_index_free(&idx);
	tap_ok(ok, "no layers: empty index, find = 0, walk = one hole");

	/* only empty layers */
	lp[0] = NULL;
	lp[1] = NULL;
	cnt[0] = cnt[1] = 0;
	ret = obd_index_merge(lp, cnt, 2, &idx, &err);
	tap_ok(!ret && idx.n == 0, "two empty layers: empty index");
	obd_index_free(&idx);

	/* build with n = 0 */
	ret = obd_index_build(&idx, NULL, 0, &err);
	tap_ok(!ret && idx.n == 0 && obd_index_find(&idx, 123) == 0, "build n = 0");
	obd_index_free(&idx);

	/* a single layer comes out as it went in, tags replaced */
	{
		struct stack s;
		int t;

		ok = 1;
		for (t = 0; t < 50 && ok; t++) {
			u64 i;

			gen_stack(&s, 1, 0, 100000, OBD_MAP_MAX_LENGTH, t % 2 ? 0 : 300);
			ret = obd_index_merge((const struct obd_map *const *)s.layers,
					      s.counts, 1, &idx, &err);
			ok = !ret && idx.n == s.counts[0];
			for (i = 0; ok && i < idx.n; i++) {
				const struct obd_map *a = &idx.maps[i], *b = &s.layers[0][i];

				ok = a->offset == b->offset && a->length == b->length &&
				     a->moffset == b->moffset && a->zeroed == b->zeroed &&
				     a->tag == 0;
			}
			ok = ok && check_find(&idx, 1000);
			if (!ret)
				obd_index_free(&idx);
			free_stack(&s);
		}
		tap_ok(ok, "single layer: merged index equals the layer (tag 0)");
	}

	/* zeroed top hides data below; a hole in the top shows it */
	m[0] = (struct obd_map){ .offset = 0, .length = 100, .moffset = 1000 };
	m[1] = (struct obd_map){ .offset = 10, .length = 10, .moffset = 77, .zeroed = 1 };
	m[2] = (struct obd_map){ .offset = 30, .length = 10, .moffset = 500, .tag = 9 };
	lp[0] = &m[0];
	lp[1] = &m[1];
	lp[2] = &m[2];
	cnt[0] = cnt[1] = 1;
	cnt[2] = 1;
	ret = obd_index_merge(lp, cnt, 3, &idx, &err);
	ok = !ret && idx.n == 5 &&
	     idx.maps[0].offset == 0 && idx.maps[0].length == 10 && idx.maps[0].tag == 0 &&
	     idx.maps[0].moffset == 1000 &&
	     idx.maps[1].offset == 10 && idx.maps[1].zeroed && idx.maps[1].tag == 1 &&
	     idx.maps[1].moffset == 77 &&
	     idx.maps[2].offset == 20 && idx.maps[2].length == 10 &&
	     idx.maps[2].moffset == 1020 && idx.maps[2].tag == 0 &&
	     idx.maps[3].offset == 30 && idx.maps[3].moffset == 500 && idx.maps[3].tag == 2 &&
	     idx.maps[4].offset == 40 && idx.maps[4].length == 60 &&
	     idx.maps[4].moffset == 1040 && idx.maps[4].tag == 0;
	tap_ok(ok, "worked example: zeroed hides, clipped moffsets advance");
	if (!ret) {
		ok = obd_index_find(&idx, 9) == 0 && obd_index_find(&idx, 10) == 1 &&
		     obd_index_find(&idx, 99) == 4 && obd_index_find(&idx, 100) == 5 &&
		     obd_index_find(&idx, ~0ULL) == 5;
		tap_ok(ok, "find on the worked example");
		obd_index_free(&idx);
	}

	/* bad input */
	m[0] = (struct obd_map){ .offset = 0, .length = 100 };
	m[1] = (struct obd_map){ .offset = 99, .length = 10 };
	lp[0] = m;
	cnt[0] = 2;
	ret = obd_index_merge(lp, cnt, 1, &idx, &err);
	tap_ok(ret == -EINVAL, "merge refuses overlapping input: %s", err.msg);
	m[1].offset = 100;
	m[1].length = OBD_MAP_MAX_LENGTH + 1;
	ret = obd_index_merge(lp, cnt, 1, &idx, &err);
	tap_ok(ret == -EINVAL, "merge refuses length > 16383: %s", err.msg);
	m[1].length = 1;
	m[1].offset = 1ULL << 50;
	ret = obd_index_merge(lp, cnt, 1, &idx, &err);
	tap_ok(ret == -EINVAL, "merge refuses offset >= 2^50: %s", err.msg);
	{
		struct obd_map *bad = malloc(2 * sizeof(*bad));

		bad[0] = (struct obd_map){ .offset = 50, .length = 10 };
		bad[1] = (struct obd_map){ .offset = 10, .length = 10 };
		ret = obd_index_build(&idx, bad, 2, &err);
		tap_ok(ret == -EINVAL && !idx.tree_mem, "build refuses unsorted maps: %s",
		       err.msg);
		free(bad);
	}
}

/* Tree shapes: every n around the level boundaries, 32- and 64-bit keys. */
static void test_tree_sizes(void)
{
	static const u64 sizes[] = {
		1, 2, 15, 16, 17, 31, 32, 33, 271, 272, 273, 289, 4623, 4624, 4625,
		4913, 78607, 78608, 78609, 300001,
	};
	unsigned int i, kb;
	int ok = 1;

	for (kb = 0; kb < 2 && ok; kb++) {
		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]) && ok; i++) {
			struct obd_index idx;
			struct obd_err err = { { 0 } };
			u64 n = sizes[i], j, p = kb ? 1ULL << 33 : rnd_in(0, 3);
			struct obd_map *m = malloc(n * sizeof(*m));
			u64 half = kb ? 0 : 0xffffffffULL - n * 4;

			for (j = 0; j < n; j++) {
				m[j] = (struct obd_map){ .offset = p, .length = (u32)rnd_in(1, 3),
							 .moffset = 8 };
				p = obd_map_end(&m[j]) + rnd_in(0, 1);
				/* last 32-bit key near the top of the range */
				if (!kb && j + 2 == n && p < half)
					p = half;
			}
			if (obd_index_build(&idx, m, n, &err)) {
				tap_diag("build n=%llu: %s", (unsigned long long)n, err.msg);
				ok = 0;
				free(m);
				break;
			}
			ok = idx.key_bits == (kb ? 64u : 32u) && check_find(&idx, 20000);
			if (!ok)
				tap_diag("n=%llu key_bits %u", (unsigned long long)n, idx.key_bits);
			obd_index_free(&idx);
		}
	}
	tap_ok(ok, "find = bsearch for tree sizes across level boundaries, 32/64-bit keys");

	/* the 32-bit limit: largest key 0xfffffffe stays 32-bit, 0xffffffff not */
	for (kb = 0; kb < 2; kb++) {
		struct obd_index idx;
		struct obd_err err = { { 0 } };
		struct obd_map *m = malloc(3 * sizeof(*m));

		m[0] = (struct obd_map){ .offset = 5, .length = 1 };
		m[1] = (struct obd_map){ .offset = 0xfffffff0ULL, .length = 2 };
		m[2] = (struct obd_map){ .offset = 0xfffffffbULL + kb, .length = 3 };
		ok = !obd_index_build(&idx, m, 3, &err) &&
		     idx.key_bits == (kb ? 64u : 32u) && check_find(&idx, 100);
		for (u64 x = 0xfffffff0ULL; ok && x < 0x100000008ULL; x++)
			ok = check_find_at(&idx, x);
		tap_ok(ok, "largest end %#llx: %u-bit tree, find = bsearch",
		       0xfffffffeULL + kb, idx.key_bits);
		obd_index_free(&idx);
	}
}

int main(void)
{
	test_seed();
	test_edges();
	test_tree_sizes();
	test_random_stacks();
	test_far_offsets();
	test_many_layers();
	return tap_done();
}
