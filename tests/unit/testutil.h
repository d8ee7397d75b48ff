/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the unit tests: the reference images' folder, reading a
 * whole file, and a seeded generator (splitmix64: any seed, including 0,
 * gives a full-period sequence, so printed seeds always replay).
 */
#ifndef OBD_TESTUTIL_H
#define OBD_TESTUTIL_H

#include <stddef.h>
#include "obd_defs.h"

/* OBD_SRCDIR is the source tree, compiled in by the Makefile. */
#define REF OBD_SRCDIR "/tests/data/overlaybd-ref/"

/* Whole file into a malloc'ed buffer (one spare byte); NULL and *len = 0 on error. */
u8 *slurp(const char *path, size_t *len);

extern u64 rng_state;
/* one step of splitmix64 on *s */
u64 splitmix(u64 *s);
/* the next value of the global generator */
u64 rnd(void);
/* uniform in [lo, hi] */
u64 rnd_in(u64 lo, u64 hi);
/* A growable memory buffer, and a writer's sink appending to it (ctx: the membuf). */
struct membuf {
	u8 *p;
	size_t n, cap;
};
int mem_sink(void *ctx, const void *buf, size_t len);

/* Seed the global generator from OBD_SEED (else the clock) and print "# OBD_SEED=<n>". */
void test_seed(void);

#endif
