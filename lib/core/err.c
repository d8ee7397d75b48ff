// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * Error messages for the format core. Uses the compiler's va_list builtins
 * so that the file needs nothing beyond obd_defs.h on either side.
 */
#include "obd.h"

int obd_errf(struct obd_err *err, int code, const char *fmt, ...)
{
	__builtin_va_list ap;

	if (err) {
		__builtin_va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		__builtin_va_end(ap);
	}
	/* Callers pass -EFOO; a positive code is tolerated and negated. */
	return code > 0 ? -code : code;
}
