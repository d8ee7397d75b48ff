// SPDX-License-Identifier: GPL-2.0-only
/*
 * lib/core/memindex.c, the index of a writable layer while it is written:
 * random insert logs against a per-sector model (the last write wins) and
 * against obd_lsmt_rw_replay of the same log (the reader's rebuild of an
 * index file must give the very same maps), lookups of random ranges,
 * the internal invariants (sorted leaves, no empty leaf, first offsets,
 * counters), large sequential and reversed logs through many leaf splits
 * and drops, bounds, and an allocation failure at every step leaving the
 * index unchanged. OBD_SEED reproduces a run.
 */
#include <stdlib.h>
#include <string.h>

#include "memindex.h"
#include "lsmt_rw.h"
#include "env_user.h"
#include "tap.h"
#include "testutil.h"

static u64 below(u64 n)
{
	return rnd() % n;
}

/* The model: per sector, which log record owns it (-1: none). */
struct model {
	u64 space;
	long *owner;
};

static void model_apply(struct model *md, const struct obd_map *m, long idx)
{
	u64 s;

	for (s = m->offset; s < obd_map_end(m); s++)
		md->owner[s] = idx;
}

/* What the model says one sector maps to; false for a hole. */
static bool model_at(const struct model *md, const struct obd_map *log, u64 s, struct obd_map *out)
{
	long i = md->owner[s];

	if (i < 0)
		return false;
	*out = log[i];
	out->moffset = log[i].zeroed ? log[i].moffset : log[i].moffset + (s - log[i].offset);
	return true;
}

static bool same_map(const struct obd_map *a, const struct obd_map *b)
{
	return a->offset == b->offset && a->moffset == b->moffset && a->length == b->length &&
	       a->zeroed == b->zeroed && a->tag == b->tag;
}

/* Leaves sorted, none empty, first[] right, count and blocks the sums. */
static bool invariants(const struct obd_memindex *mi, const char **why)
{
	u64 li, count = 0, blocks = 0, prev_end = 0;
	u32 j;

	for (li = 0; li < mi->nleaf; li++) {
		const struct obd_mi_leaf *l = mi->leaf[li];

		if (!l->n || l->n > OBD_MI_LEAF) {
			*why = "leaf size";
			return false;
		}
		if (mi->first[li] != l->m[0].offset) {
			*why = "first offset";
			return false;
		}
		for (j = 0; j < l->n; j++) {
			const struct obd_map *x = &l->m[j];

			if (!x->length || x->length > OBD_MAP_MAX_LENGTH ||
			    ((li || j) && x->offset < prev_end)) {
				*why = "order or length";
				return false;
			}
			prev_end = obd_map_end(x);
			count++;
			blocks += x->zeroed ? 0 : x->length;
		}
	}
	if (count != mi->count || blocks != mi->blocks) {
		*why = "counters";
		return false;
	}
	return true;
}

/* The dump against the model, sector by sector, and holes where the model has none. */
static bool dump_matches(const struct obd_memindex *mi, const struct model *md,
			 const struct obd_map *log, struct obd_map *buf)
{
	u64 i, s, covered = 0, want = 0;

	obd_memindex_dump(mi, buf);
	for (i = 0; i < mi->count; i++) {
		for (s = buf[i].offset; s < obd_map_end(&buf[i]); s++) {
			struct obd_map w, got = buf[i];

			if (s >= md->space || !model_at(md, log, s, &w))
				return false;
			got.moffset = got.zeroed ? got.moffset : got.moffset + (s - got.offset);
			if (got.moffset != w.moffset || got.zeroed != w.zeroed || got.tag != w.tag)
				return false;
			covered++;
		}
	}
	for (s = 0; s < md->space; s++)
		want += md->owner[s] >= 0;
	return covered == want;
}

static bool replay_matches(const struct obd_memindex *mi, const struct obd_map *log, u64 n,
			   struct obd_map *buf)
{
	struct obd_err err = { "" };
	struct obd_map *maps = NULL;
	u64 nmaps = 0, i;
	bool ok;

	if (obd_lsmt_rw_replay(log, n, "log", &maps, &nmaps, &err))
		return false;
	obd_memindex_dump(mi, buf);
	ok = nmaps == mi->count;
	for (i = 0; ok && i < nmaps; i++)
		ok = same_map(&maps[i], &buf[i]);
	obd_free(maps);
	return ok;
}

static bool lookups_match(const struct obd_memindex *mi, const struct model *md,
			  const struct obd_map *log, struct obd_map *buf, u64 cap)
{
	int t;

	for (t = 0; t < 64; t++) {
		u64 off = below(md->space), len = 1 + below(md->space - off), n, i, s, pos;

		n = obd_memindex_lookup(mi, off, len, buf, cap);
		pos = off;
		for (i = 0; i < n; i++) {
			if (buf[i].offset < pos || obd_map_end(&buf[i]) > off + len)
				return false;
			for (s = pos; s < buf[i].offset; s++)
				if (md->owner[s] >= 0)
					return false;	/* a hole where the model has data */
			for (s = buf[i].offset; s < obd_map_end(&buf[i]); s++) {
				struct obd_map w;
				u64 mo = buf[i].zeroed ? buf[i].moffset :
					 buf[i].moffset + (s - buf[i].offset);

				if (!model_at(md, log, s, &w) || w.moffset != mo || w.zeroed != buf[i].zeroed)
					return false;
			}
			pos = obd_map_end(&buf[i]);
		}
		if (n < cap)
			for (s = pos; s < off + len; s++)
				if (md->owner[s] >= 0)
					return false;	/* stopped early */
	}
	return true;
}

/* One random log: short writes, long ones, zeroed ranges, mostly near each other. */
static void random_run(int run, u64 space, u64 n)
{
	struct model md = { space, malloc(space * sizeof(long)) };
	struct obd_map *log = calloc(n, sizeof(*log)), *buf = calloc(n * 3 + 16, sizeof(*buf));
	struct obd_memindex mi;
	u64 i, mpos = 8, ok_steps = 0, checks = 0;
	const char *why = "";
	bool good = true;

	obd_memindex_init(&mi);
	for (i = 0; i < space; i++)
		md.owner[i] = -1;
	for (i = 0; i < n && good; i++) {
		struct obd_map *m = &log[i];
		u64 len = below(8) ? 1 + below(64) : 1 + below(space / 4 < OBD_MAP_MAX_LENGTH ? space / 4 : OBD_MAP_MAX_LENGTH);

		m->offset = below(space - len + 1);
		m->length = (u32)len;
		m->zeroed = below(10) == 0;
		m->moffset = mpos;
		m->tag = (u8)below(3);
		if (!m->zeroed)
			mpos += len;
		good = !obd_memindex_insert(&mi, m);
		model_apply(&md, m, (long)i);
		if (good && (i % 97 == 0 || i == n - 1)) {
			checks++;
			good = invariants(&mi, &why) && dump_matches(&mi, &md, log, buf) &&
			       replay_matches(&mi, log, i + 1, buf) &&
			       lookups_match(&mi, &md, log, buf, 1 + below(8)) &&
			       lookups_match(&mi, &md, log, buf, n * 3 + 16);
		}
		ok_steps += good;
	}
	tap_ok(good, "random log %d (%llu sectors, %llu inserts, %llu checks): model, replay, lookups, invariants%s%s",
	       run, (unsigned long long)space, (unsigned long long)n, (unsigned long long)checks,
	       good ? "" : ": ", good ? "" : why);
	if (!good)
		tap_diag("failed at insert %llu", (unsigned long long)ok_steps);
	obd_memindex_free(&mi);
	free(md.owner);
	free(log);
	free(buf);
}

/* Many maps: sequential, reversed, then one write over everything. */
static void test_large(void)
{
	struct obd_memindex mi;
	struct obd_map m = { 0 }, *buf;
	const u64 n = 200000;
	const char *why = "";
	u64 i, got;
	bool ok = true;

	obd_memindex_init(&mi);
	for (i = 0; i < n && ok; i++) {
		m.offset = i * 8;
		m.length = 8;
		m.moffset = 8 + i * 8;
		ok = !obd_memindex_insert(&mi, &m);
	}
	tap_ok(ok && mi.count == n && mi.blocks == n * 8 && invariants(&mi, &why),
	       "200000 sequential 4 KiB writes: 200000 maps over %llu leaves", (unsigned long long)mi.nleaf);
	buf = calloc(16, sizeof(*buf));
	got = obd_memindex_lookup(&mi, 12345 * 8 + 3, 16, buf, 16);
	tap_ok(got == 3 && buf[0].offset == 12345 * 8 + 3 && buf[0].length == 5 &&
	       buf[0].moffset == 8 + 12345 * 8 + 3 && buf[2].length == 3,
	       "lookup inside: trimmed first and last maps");
	/* every other one overwritten in reverse: each insert splits nothing, replaces one */
	for (i = n; i-- > 0 && ok;) {
		if (i % 2)
			continue;
		m.offset = i * 8;
		m.length = 8;
		m.moffset = 8 + (n + i) * 8;
		ok = !obd_memindex_insert(&mi, &m);
	}
	tap_ok(ok && mi.count == n && invariants(&mi, &why), "reversed overwrites of every other map");
	/* a zeroed record over all but the first and last sector, in 16383-sector pieces */
	for (i = 1; i < n * 8 - 1 && ok; i += OBD_MAP_MAX_LENGTH) {
		m.offset = i;
		m.length = (u32)(n * 8 - 1 - i < OBD_MAP_MAX_LENGTH ? n * 8 - 1 - i : OBD_MAP_MAX_LENGTH);
		m.zeroed = 1;
		m.moffset = 8 + 2 * n * 8;
		ok = !obd_memindex_insert(&mi, &m);
	}
	got = obd_memindex_lookup(&mi, 0, 16, buf, 16);
	tap_ok(ok && invariants(&mi, &why) && mi.blocks == 2 && mi.count == 2 + (n * 8 - 2 + OBD_MAP_MAX_LENGTH - 1) / OBD_MAP_MAX_LENGTH &&
	       got == 2 && buf[0].length == 1 && !buf[0].zeroed && buf[1].zeroed,
	       "discard of everything but the edges: %llu maps, %llu leaves left", (unsigned long long)mi.count,
	       (unsigned long long)mi.nleaf);
	obd_memindex_free(&mi);
	tap_ok(!mi.nleaf && !mi.leaf && !mi.spare, "free leaves an empty index");
	free(buf);
}

static void test_bounds(void)
{
	struct obd_memindex mi;
	struct obd_map m = { .offset = 10, .length = 0, .moffset = 8 }, out[2];

	obd_memindex_init(&mi);
	tap_ok(!obd_memindex_insert(&mi, &m) && !mi.count, "length 0: nothing inserted");
	m.length = OBD_MAP_MAX_LENGTH + 1;
	tap_ok(obd_memindex_insert(&mi, &m) == -EINVAL, "length 16384: -EINVAL");
	m.length = 2;
	m.offset = OBD_MAP_INVALID_OFFSET - 1;
	tap_ok(obd_memindex_insert(&mi, &m) == -EINVAL, "a map past the LBA space: -EINVAL");
	m.offset = OBD_MAP_INVALID_OFFSET - 2;
	tap_ok(!obd_memindex_insert(&mi, &m) && mi.count == 1, "the last two sectors of the LBA space");
	tap_ok(obd_memindex_lookup(&mi, 0, 100, out, 2) == 0, "lookup of a hole: nothing");
	tap_ok(obd_memindex_lookup(&mi, OBD_MAP_INVALID_OFFSET - 1, 1, out, 2) == 1 && out[0].length == 1 &&
	       out[0].moffset == 9, "lookup of the last sector");
	obd_memindex_free(&mi);
}

/* Every insert of a log, with each of its allocations failing in turn. */
static void test_enomem(void)
{
	struct obd_memindex mi, ref;
	struct obd_map *a, *b, m;
	const char *why = "";
	u64 i, nfail = 0;
	bool ok = true;

	a = calloc(40000, sizeof(*a));
	b = calloc(40000, sizeof(*b));
	obd_memindex_init(&mi);
	obd_memindex_init(&ref);
	for (i = 0; i < 6000 && ok; i++) {
		unsigned long k;

		m.offset = below(100000);
		m.length = (u32)(1 + below(i % 50 ? 16 : 3000));
		m.moffset = 8 + i;
		m.zeroed = below(5) == 0;
		m.tag = 0;
		for (k = 1; k <= 3 && ok; k++) {
			obd_zalloc_fail_in = k;
			if (obd_memindex_insert(&mi, &m) == -ENOMEM) {
				nfail++;
				obd_memindex_dump(&mi, a);
				obd_memindex_dump(&ref, b);
				ok = mi.count == ref.count && !memcmp(a, b, mi.count * sizeof(*a)) &&
				     invariants(&mi, &why);
				continue;
			}
			obd_zalloc_fail_in = 0;
			ok = !obd_memindex_insert(&ref, &m);
			break;
		}
		obd_zalloc_fail_in = 0;
		if (k > 3)	/* every try failed: insert for real */
			ok = ok && !obd_memindex_insert(&mi, &m) && !obd_memindex_insert(&ref, &m);
	}
	obd_memindex_dump(&mi, a);
	obd_memindex_dump(&ref, b);
	tap_ok(ok && nfail > 0 && mi.count == ref.count && !memcmp(a, b, mi.count * sizeof(*a)),
	       "%llu failed allocations during 6000 inserts: -ENOMEM, index unchanged each time",
	       (unsigned long long)nfail);
	obd_memindex_free(&mi);
	obd_memindex_free(&ref);
	free(a);
	free(b);
}

int main(void)
{
	test_seed();
	random_run(1, 64, 300);
	random_run(2, 1000, 3000);
	random_run(3, 20000, 6000);
	random_run(4, 300, 20000);
	random_run(5, 200000, 4000);
	test_large();
	test_bounds();
	test_enomem();
	return tap_done();
}
