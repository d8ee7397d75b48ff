// SPDX-License-Identifier: GPL-2.0-only
/* CRC32C: reference vectors, portable vs SSE4.2, chaining. */
#include <stdlib.h>

#include "obd.h"
#include "tap.h"

int main(void)
{
	static u8 buf[4096 + 16];
	size_t len, off, i;
	int bad;
	u32 a, b;

	tap_ok(obd_crc32c(0, "123456789", 9) == 0x58E3FA20, "crc32c(\"123456789\", 0) = 0x58E3FA20");
	tap_ok(obd_crc32c(100007, "123456789", 9) == 0x3C9BD4E0,
	       "crc32c(\"123456789\", 100007) = 0x3C9BD4E0");
	tap_ok(obd_crc32c_sw(0, "123456789", 9) == 0x58E3FA20, "portable vector seed 0");
	tap_ok(obd_crc32c_sw(100007, "123456789", 9) == 0x3C9BD4E0, "portable vector seed 100007");
	tap_ok(obd_crc32c_hw(0, "123456789", 9) == 0x58E3FA20, "hw vector seed 0");
	/* Standard CRC-32C is the inverted form of the raw update. */
	tap_ok((~obd_crc32c(0xFFFFFFFFu, "123456789", 9)) == 0xE3069283u,
	       "raw update with ~0 in/out gives standard CRC-32C 0xE3069283");
	tap_ok(obd_crc32c(1234, "", 0) == 1234, "empty buffer returns the seed");
	if (!obd_crc32c_hw_available())
		tap_diag("no SSE4.2 on this CPU: hw path falls back to portable");

	srand(42);
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (u8)rand();
	bad = 0;
	for (off = 0; off < 8; off++)
		for (len = 0; len <= 300; len++) {
			u32 seed = (u32)rand();

			a = obd_crc32c_sw(seed, buf + off, len);
			b = obd_crc32c_hw(seed, buf + off, len);
			if (a != b || obd_crc32c(seed, buf + off, len) != a) {
				if (!bad)
					tap_diag("mismatch off %zu len %zu: sw %08x hw %08x", off, len, a, b);
				bad++;
			}
		}
	tap_ok(!bad, "portable == SSE4.2 == dispatch, lengths 0..300, offsets 0..7 (%d bad)", bad);

	bad = 0;
	for (len = 0; len <= 300; len += 7) {
		a = obd_crc32c(100007, buf + 3, len);
		b = obd_crc32c(obd_crc32c(100007, buf + 3, len / 3), buf + 3 + len / 3, len - len / 3);
		bad += a != b;
	}
	tap_ok(!bad, "crc(s, a||b) == crc(crc(s, a), b)");
	a = obd_crc32c_sw(7, buf, sizeof(buf));
	b = obd_crc32c_hw(7, buf, sizeof(buf));
	tap_ok(a == b, "4 KiB buffer: sw %08x hw %08x", a, b);
	return tap_done();
}
