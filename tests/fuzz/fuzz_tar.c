// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: obd_tar_probe. A probe that says "tar" must describe
 * a payload inside the input.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct obd_mem_io m;
	struct obd_tar_info ti;
	struct obd_err err;
	int rc;

	if (size > FUZZ_MAX_LEN)
		return 0;
	obd_mem_io_init(&m, data, size, "fuzz.tar");
	memset(&err, 0, sizeof(err));
	memset(&ti, 0, sizeof(ti));
	rc = obd_tar_probe(&m.io, &ti, &err);
	FUZZ_CHECK(rc <= 1, "probe returned %d", rc);
	if (rc < 0)
		FUZZ_CHECK(err.msg[0] != 0, "probe failed (%d) with an empty message", rc);
	if (rc == 1) {
		FUZZ_CHECK(ti.payload_off == 512 || ti.payload_off == 1536,
			   "payload_off %llu", (unsigned long long)ti.payload_off);
		FUZZ_CHECK(ti.payload_off <= size && ti.payload_size <= size - ti.payload_off,
			   "payload [%llu,+%llu) past a %zu-byte input",
			   (unsigned long long)ti.payload_off,
			   (unsigned long long)ti.payload_size, size);
	}
	if (size >= 512) {
		struct obd_tar_header h;

		memcpy(&h, data, sizeof(h));
		(void)obd_tar_checksum(&h);
	}
	return 0;
}
