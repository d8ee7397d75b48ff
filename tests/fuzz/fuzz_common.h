/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Shared by the libFuzzer targets: invariant checks that turn "the parser
 * accepted something inconsistent" into a crash libFuzzer can report, and
 * index exercising (build, find vs bsearch, walk).
 */
#ifndef OBD_FUZZ_COMMON_H
#define OBD_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "obd.h"
#include "env_user.h"

#define FUZZ_MAX_LEN	(1u << 20)	/* matches -max_len in scripts/fuzz.sh */

/*
 * Harness loops (reference models, per-sector checks) carry no coverage
 * hooks: they are not what is being explored, and instrumented they cost
 * more than the code under test.
 */
#if defined(__clang__)
#define FUZZ_NOCOV	__attribute__((no_sanitize("coverage"), noinline))
#else
#define FUZZ_NOCOV
#endif

/* An invariant the parser promised is broken: report and abort. */
#define FUZZ_CHECK(cond, ...) do {					\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz invariant failed: %s at %s:%d: ",	\
			#cond, __FILE__, __LINE__);			\
		fprintf(stderr, __VA_ARGS__);				\
		fprintf(stderr, "\n");					\
		abort();						\
	}								\
} while (0)

/* A failure must come with a message (the API contract of obd.h). */
static inline void fuzz_check_err(int rc, const struct obd_err *err, const char *what)
{
	FUZZ_CHECK(rc <= 0, "%s returned %d", what, rc);
	if (rc < 0)
		FUZZ_CHECK(err->msg[0] != 0, "%s failed (%d) with an empty message", what, rc);
}

/* Maps from one LSMT file: sorted, non-overlapping, in range (spec 2.5). */
/* A warp layer's maps: target maps inside target_sectors, the others as any layer's. */
FUZZ_NOCOV static inline void fuzz_check_warp_maps(const struct obd_map *m, u64 n, u64 index_offset,
						   u64 target_sectors)
{
	for (u64 i = 0; i < n; i++) {
		FUZZ_CHECK(m[i].tag == 0 && m[i].target <= 1 && !(m[i].target && m[i].zeroed),
			   "warp map %llu tag %u target %u zeroed %u", (unsigned long long)i,
			   m[i].tag, m[i].target, m[i].zeroed);
		FUZZ_CHECK(m[i].length >= 1 && m[i].length <= OBD_MAP_MAX_LENGTH &&
			   m[i].offset < OBD_MAP_INVALID_OFFSET,
			   "warp map %llu offset %llu length %u", (unsigned long long)i,
			   (unsigned long long)m[i].offset, m[i].length);
		if (m[i].target)
			FUZZ_CHECK(m[i].moffset + m[i].length <= target_sectors,
				   "warp map %llu: target sectors %llu+%u past %llu",
				   (unsigned long long)i, (unsigned long long)m[i].moffset,
				   m[i].length, (unsigned long long)target_sectors);
		else
			FUZZ_CHECK(m[i].moffset >= 8 && obd_map_mend(&m[i]) <= index_offset / 512,
				   "warp map %llu: meta moffset %llu outside [8, %llu)",
				   (unsigned long long)i, (unsigned long long)m[i].moffset,
				   (unsigned long long)index_offset / 512);
		if (i)
			FUZZ_CHECK(obd_map_end(&m[i - 1]) <= m[i].offset,
				   "warp map %llu overlaps/unsorted", (unsigned long long)i);
	}
}

FUZZ_NOCOV static inline void fuzz_check_layer_maps(const struct obd_map *m, u64 n, u64 index_offset)
{
	for (u64 i = 0; i < n; i++) {
		FUZZ_CHECK(m[i].length >= 1 && m[i].length <= OBD_MAP_MAX_LENGTH,
			   "map %llu length %u", (unsigned long long)i, m[i].length);
		FUZZ_CHECK(m[i].offset < OBD_MAP_INVALID_OFFSET, "map %llu offset %llu",
			   (unsigned long long)i, (unsigned long long)m[i].offset);
		FUZZ_CHECK(m[i].tag == 0 && !m[i].target, "map %llu tag %u target %u",
			   (unsigned long long)i, m[i].tag, m[i].target);
		FUZZ_CHECK(m[i].moffset >= 8, "map %llu moffset %llu",
			   (unsigned long long)i, (unsigned long long)m[i].moffset);
		FUZZ_CHECK(obd_map_mend(&m[i]) <= index_offset / 512,
			   "map %llu mend %llu past index %llu", (unsigned long long)i,
			   (unsigned long long)obd_map_mend(&m[i]),
			   (unsigned long long)index_offset);
		if (i)
			FUZZ_CHECK(obd_map_end(&m[i - 1]) <= m[i].offset,
				   "map %llu overlaps/unsorted", (unsigned long long)i);
	}
}

struct fuzz_walk {
	u64 next;	/* expected lba of the next piece */
	u64 pieces;
	const struct obd_index *idx;
};

FUZZ_NOCOV static inline int fuzz_walk_fn(void *ctx, u64 lba, u64 nsect, const struct obd_map *m, u64 moff)
{
	struct fuzz_walk *w = ctx;

	FUZZ_CHECK(lba == w->next, "walk piece at %llu, expected %llu",
		   (unsigned long long)lba, (unsigned long long)w->next);
	FUZZ_CHECK(nsect > 0, "empty walk piece at %llu", (unsigned long long)lba);
	if (m) {
		FUZZ_CHECK(m >= w->idx->maps && m < w->idx->maps + w->idx->n, "piece map out of array");
		FUZZ_CHECK(lba >= m->offset && lba + nsect <= obd_map_end(m),
			   "piece [%llu,+%llu) outside its map", (unsigned long long)lba,
			   (unsigned long long)nsect);
		if (!m->zeroed)
			FUZZ_CHECK(moff == m->moffset + (lba - m->offset), "piece moff");
	}
	w->next = lba + nsect;
	w->pieces++;
	return 0;
}

/* find() must agree with the reference binary search around every edge. */
FUZZ_NOCOV static inline void fuzz_check_find(const struct obd_index *idx)
{
	for (u64 i = 0; i < idx->n; i++) {
		const struct obd_map *m = &idx->maps[i];
		u64 probes[5] = { m->offset, m->offset ? m->offset - 1 : 0,
				  obd_map_end(m) - 1, obd_map_end(m), m->offset + m->length / 2 };

		for (int k = 0; k < 5; k++) {
			u64 a = obd_index_find(idx, probes[k]);
			u64 b = obd_index_find_bsearch(idx, probes[k]);

			FUZZ_CHECK(a == b, "find(%llu) = %llu, bsearch = %llu",
				   (unsigned long long)probes[k], (unsigned long long)a,
				   (unsigned long long)b);
		}
	}
	/* around the 32-bit key limit of the lookup tree, and the very end */
	{
		const u64 far[] = { 0xffffffffULL, 0x100000000ULL, 0x100000001ULL,
				    OBD_MAP_INVALID_OFFSET, ~0ULL };

		for (int k = 0; k < 5; k++)
			FUZZ_CHECK(obd_index_find(idx, far[k]) == obd_index_find_bsearch(idx, far[k]),
				   "find(0x%llx)", (unsigned long long)far[k]);
	}
}

/* Walk [lba, lba + n) and check the pieces tile it exactly. */
static inline void fuzz_walk_range(const struct obd_index *idx, u64 lba, u64 n)
{
	struct fuzz_walk w = { .next = lba, .idx = idx };
	int rc = obd_index_walk(idx, lba, n, fuzz_walk_fn, &w);

	FUZZ_CHECK(rc == 0, "walk [%llu,+%llu) = %d", (unsigned long long)lba,
		   (unsigned long long)n, rc);
	if (n)
		FUZZ_CHECK(w.next == lba + n, "walk ended at %llu, expected %llu",
			   (unsigned long long)w.next, (unsigned long long)(lba + n));
}

static inline void fuzz_exercise_index(const struct obd_index *idx, const u8 *data, size_t size)
{
	u64 last = idx->n ? obd_map_end(&idx->maps[idx->n - 1]) : 0;

	fuzz_check_find(idx);
	fuzz_walk_range(idx, 0, last + 1);
	/* a few ranges chosen by the input, within [0, last] */
	for (size_t i = 0; i + 16 <= size && i < 16 * 8; i += 16) {
		u64 a, b;

		memcpy(&a, data + i, 8);
		memcpy(&b, data + i + 8, 8);
		a = last ? a % (last + 1) : 0;
		b = b % (last + 2 - a) + 0;
		fuzz_walk_range(idx, a, b);
	}
}

#endif
