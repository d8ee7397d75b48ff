/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Minimal TAP for the unit tests (kselftest shape): each program prints
 * "ok N desc" / "not ok N desc" lines and ends with tap_done(), which
 * prints "# passed: P failed: F" and returns the exit status (0 or 1).
 * scripts/run-tests.sh adds up the counts.
 */
#ifndef OBD_TAP_H
#define OBD_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_n, tap_fail;

static inline void __attribute__((format(printf, 2, 3)))
tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	if (!cond)
		tap_fail++;
	printf("%sok %d ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Diagnostic line, shown under a failing test. */
#define tap_diag(...) do { printf("# "); printf(__VA_ARGS__); printf("\n"); } while (0)

static inline int tap_done(void)
{
	printf("1..%d\n# passed: %d failed: %d\n", tap_n, tap_n - tap_fail, tap_fail);
	return tap_fail ? 1 : 0;
}

#endif
