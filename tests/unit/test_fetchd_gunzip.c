// SPDX-License-Identifier: GPL-2.0-only
/*
 * Description: the refill plan of the daemon's gunzip entries
 * (fetchd/gunzip.c, gunzip_plan), on random synthetic gzip indexes (gaps
 * of 0 to 3 spans between access points, equal de_pos, bits 0-7, points
 * checked or not) and every refill unit of each: the decode starts at the
 * point at or below the unit, one earlier exactly when that point was
 * never checked, and ends at the first point at or past the unit's end (or
 * the stream's end); what is written is whole granules holding the unit,
 * never before a trusted window; the compressed range holds every byte the
 * decode reads and is aligned to the compressed cache's refill size.
 */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "testutil.h"
#include "fetchd.h"
#include "gzindex.h"

#define G	4096ull

static void mk_index(struct obd_gzindex *gi, uint8_t **checked, u64 n, u64 span)
{
	u64 de = 0, en = 10 + rnd_in(0, 20);

	memset(gi, 0, sizeof(*gi));
	gi->n = n;
	gi->e = calloc(n, sizeof(*gi->e));
	*checked = calloc(n, 1);
	for (u64 i = 0; i < n; i++) {
		if (i) {
			de += rnd() % 5 == 0 ? 0 : rnd_in(1, 3 * span);
			en += rnd_in(1, span);
		}
		gi->e[i].de_pos = de;
		gi->e[i].en_pos = en;
		gi->e[i].bits = i ? (u8)(rnd() % 8) : 0;
		(*checked)[i] = i == 0 || rnd() % 2;
	}
	gi->usize = de + rnd_in(1, 2 * span);
	gi->gzip_size = en + 8 + rnd_in(0, 100);
}

/* "" when the plan of [us, ue) keeps every rule, else the first broken */
static const char *plan_bad(const struct obd_gzindex *gi, const uint8_t *checked, u64 us, u64 ue,
			    u64 R, const struct gz_plan *p)
{
	u64 k = obd_gzindex_seek(gi, us), csize = gi->gzip_size;
	u64 end = p->last < gi->n ? gi->e[p->last].de_pos : gi->usize;

	if (!(p->first == k || (k && !checked[k] && p->first == k - 1)) ||
	    (p->first != k && checked[k]) || gi->e[p->first].de_pos > us)
		return "start point";
	if (p->last <= p->first || p->last > gi->n || end < ue ||
	    (p->last < gi->n && gi->e[p->last - 1].de_pos >= ue && p->last - 1 > k))
		return "end point";
	if (p->w0 % G || p->w0 > us || p->w0 < gi->e[p->first].de_pos ||
	    (!checked[p->first] && p->w0 < gi->e[k].de_pos))
		return "write start";
	if (p->w1 < ue || p->w1 > end || (p->w1 % G && p->w1 != gi->usize))
		return "write end";
	if (p->cs % R || p->cs > gi->e[p->first].en_pos - (gi->e[p->first].bits ? 1 : 0))
		return "compressed start";
	if (p->ce > csize || (p->ce % R && p->ce != csize) ||
	    p->ce < (p->last < gi->n ? (gi->e[p->last].en_pos < csize ? gi->e[p->last].en_pos : csize) : csize))
		return "compressed end";
	return "";
}

static void test_plans(u64 n, u64 span, u64 unit, u64 R)
{
	struct obd_gzindex gi;
	uint8_t *checked;
	const char *bad = "";
	u64 units = 0, us;

	for (int round = 0; round < 50 && !*bad; round++) {
		mk_index(&gi, &checked, n, span);
		for (us = 0; us < gi.usize && !*bad; us += unit, units++) {
			u64 ue = us + unit < gi.usize ? us + unit : gi.usize;
			struct gz_plan p;

			gunzip_plan(&gi, checked, us, ue, gi.gzip_size, R, &p);
			bad = plan_bad(&gi, checked, us, ue, R, &p);
			if (*bad)
				tap_diag("unit [%llu, %llu): %s (first %llu last %llu w [%llu, %llu) c [%llu, %llu))",
					 (unsigned long long)us, (unsigned long long)ue, bad,
					 (unsigned long long)p.first, (unsigned long long)p.last,
					 (unsigned long long)p.w0, (unsigned long long)p.w1,
					 (unsigned long long)p.cs, (unsigned long long)p.ce);
		}
		free(gi.e);
		free(checked);
	}
	tap_ok(!*bad, "%llu points a span of %llu, units of %llu, compressed refill %llu: %llu plans keep the rules",
	       (unsigned long long)n, (unsigned long long)span, (unsigned long long)unit,
	       (unsigned long long)R, (unsigned long long)units);
}

int main(void)
{
	test_seed();
	test_plans(1, 65536, G, 4096);
	test_plans(2, 65536, 65536, 262144);
	test_plans(30, 1048576, 1048576, 262144);
	test_plans(30, 262144, 1048576, 262144);
	test_plans(30, 1048576, 65536, 4096);
	test_plans(100, 65536, 3 * G, 65536);
	return tap_done();
}
