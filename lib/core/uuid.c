// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/* UUID string fields of the LSMT header (spec 2.3): either case accepted. */
#include "obd.h"

static bool obd_is_hex(u8 c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int obd_uuid_valid(const u8 *s)
{
	int i;

	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!obd_is_hex(s[i])) {
			return 0;
		}
	}
	return s[36] == 0;
}

int obd_uuid_is_null(const u8 *s)
{
	static const char null_uuid[] = "00000000-0000-0000-0000-000000000000";
	int i;

	/* Empty or all-zero bytes: the field was never filled in. */
	if (s[0] == 0)
		return 1;
	for (i = 0; i < 36; i++)
		if (s[i] != (u8)null_uuid[i])
			return 0;
	return s[36] == 0;
}
