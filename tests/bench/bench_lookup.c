// SPDX-License-Identifier: GPL-2.0-only
/*
 * Lookup throughput: obd_index_find (static B+ tree) against
 * obd_index_find_bsearch (plain lower_bound over the maps, as the
 * reference and its kernel module do) on the same merged index and the
 * same random queries, one core.
 *
 * Indexes are real merges: stacks of layers with random segment lengths
 * 1..16383 sectors and random gaps go through obd_index_merge; the first N
 * merged maps then make the index of size N. The requirement is a ratio
 * >= 3.0 at N = 1k and N = 100k; other sizes are printed for information.
 *
 * usage: bench_lookup [queries (default 256Ki)] [rounds (default 31)]
 * Rounds alternate the two methods and the best round of each counts, so
 * a noisy neighbour on the machine hurts both alike.
 *        OBD_SEED=<n> picks the stacks and queries.
 */
#include <stdlib.h>
#include <stdio.h>
#include <time.h>
#include "obd.h"

static u64 rng_state = 0x9e3779b97f4a7c15ULL;

static u64 rnd(void)
{
	u64 x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/*
 * CPU time of this thread: the figure is per core, and other processes on
 * a busy build machine then do not count against either method.
 */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One layer over [base, base + range): lengths 1..16383, gaps 0..maxgap. */
static struct obd_map *gen_layer(u64 base, u64 range, u64 maxgap, u64 *count)
{
	u64 cap = 1024, n = 0, p = base + rnd() % (maxgap + 1);
	struct obd_map *m = malloc(cap * sizeof(*m));

	while (p < base + range) {
		u32 len = 1 + (u32)(rnd() % OBD_MAP_MAX_LENGTH);

		if (n == cap) {
			cap *= 2;
			m = realloc(m, cap * sizeof(*m));
		}
		m[n] = (struct obd_map){ .offset = p, .length = len,
					 .moffset = 8 + rnd() % (1ULL << 30),
					 .zeroed = rnd() % 10 == 0 };
		n++;
		p += len + rnd() % (maxgap + 1);
	}
	*count = n;
	return m;
}

/*
 * Merge stacks of nlayers layers until the result has at least want maps,
 * keep the first want of them.
 */
static int make_index(struct obd_index *idx, u64 base, u64 want, unsigned int nlayers,
		      u64 *merged_n)
{
	u64 range = want * 8192 / nlayers + 100000;

	for (;;) {
		struct obd_map *layers[64];
		u64 counts[64];
		struct obd_index full;
		struct obd_err err = { { 0 } };
		struct obd_map *prefix;
		unsigned int l;
		int ret;

		for (l = 0; l < nlayers; l++)
			layers[l] = gen_layer(base, range, 4 * OBD_MAP_MAX_LENGTH, &counts[l]);
		ret = obd_index_merge((const struct obd_map *const *)layers, counts,
				      nlayers, &full, &err);
		for (l = 0; l < nlayers; l++)
			free(layers[l]);
		if (ret) {
			fprintf(stderr, "merge: %s\n", err.msg);
			return ret;
		}
		if (full.n < want) {
			obd_index_free(&full);
			range *= 2;
			continue;
		}
		*merged_n = full.n;
		prefix = obd_zalloc(want * sizeof(*prefix));
		if (!prefix)
			return -ENOMEM;
		memcpy(prefix, full.maps, want * sizeof(*prefix));
		obd_index_free(&full);
		ret = obd_index_build(idx, prefix, want, &err);
		if (ret) {
			fprintf(stderr, "build: %s\n", err.msg);
			obd_free(prefix);
		}
		return ret;
	}
}

typedef u64 (*find_fn)(const struct obd_index *idx, u64 lba);

static u64 run(find_fn f, const struct obd_index *idx, const u64 *q, u64 nq, double *secs)
{
	u64 i, sum = 0;
	double t = now();

	for (i = 0; i < nq; i++)
		sum += f(idx, q[i]);
	*secs = now() - t;
	return sum;
}

static int bench(u64 base, u64 n, unsigned int nlayers, u64 nq, int rounds, int required)
{
	struct obd_index idx;
	u64 merged_n, *q, i, start, end, span, sum_t = 0, sum_b = 0;
	double best_t = 1e30, best_b = 1e30, ratio;
	int r, fail = 0;

	if (make_index(&idx, base, n, nlayers, &merged_n))
		return 1;
	start = idx.maps[0].offset;
	end = obd_map_end(&idx.maps[idx.n - 1]);
	span = end - start;
	start = start > span / 64 ? start - span / 64 : 0;
	span += span / 32;
	q = malloc(nq * sizeof(*q));
	/* uniform over the mapped span and a little around it */
	for (i = 0; i < nq; i++)
		q[i] = start + rnd() % (span + 1);
	for (i = 0; i < nq; i++) {
		if (obd_index_find(&idx, q[i]) != obd_index_find_bsearch(&idx, q[i])) {
			fprintf(stderr, "n=%llu: find(%llu) = %llu, bsearch %llu\n",
				(unsigned long long)n, (unsigned long long)q[i],
				(unsigned long long)obd_index_find(&idx, q[i]),
				(unsigned long long)obd_index_find_bsearch(&idx, q[i]));
			return 1;
		}
	}
	for (r = 0; r < rounds; r++) {
		double t;

		sum_b = run(obd_index_find_bsearch, &idx, q, nq, &t);
		if (t < best_b)
			best_b = t;
		sum_t = run(obd_index_find, &idx, q, nq, &t);
		if (t < best_t)
			best_t = t;
	}
	if (sum_t != sum_b) {
		fprintf(stderr, "n=%llu: checksums differ\n", (unsigned long long)n);
		fail = 1;
	}
	ratio = best_b / best_t;
	if (required && ratio < 3.0)
		fail = 1;
	printf("n=%-8llu (first n of a %u-layer merge of %llu maps, %u tree levels, %u-bit keys)\n"
	       "  bsearch %8.1f M lookups/s   tree %8.1f M lookups/s   ratio %5.2f  %s\n"
	       "  checksum %llu\n",
	       (unsigned long long)n, nlayers, (unsigned long long)merged_n, idx.levels,
	       idx.key_bits, nq / best_b / 1e6, nq / best_t / 1e6, ratio,
	       required ? (fail ? "FAIL (< 3.0)" : "PASS (>= 3.0)") : "(info)",
	       (unsigned long long)sum_t);
	free(q);
	obd_index_free(&idx);
	return fail;
}

int main(int argc, char **argv)
{
	u64 nq = argc > 1 ? strtoull(argv[1], NULL, 0) : 1u << 18;
	int rounds = argc > 2 ? atoi(argv[2]) : 31;
	const char *e = getenv("OBD_SEED");
	int fail = 0;

	if (e)
		rng_state = strtoull(e, NULL, 0) | 1;
	printf("# bench_lookup: %llu random lookups per method and round, best of %d rounds (thread CPU time), seed %llu\n",
	       (unsigned long long)nq, rounds, (unsigned long long)rng_state);
	fail |= bench(0, 1000, 4, nq, rounds, 1);
	fail |= bench(0, 4500, 6, nq, rounds, 0);
	fail |= bench(0, 100000, 8, nq, rounds, 1);
	/* LBAs past 2 TiB: 64-bit keys */
	fail |= bench(1ULL << 33, 100000, 8, nq, rounds, 0);
	fail |= bench(0, 1000000, 8, nq, rounds, 0);
	printf("%s\n", fail ? "FAIL" : "PASS");
	return fail;
}
