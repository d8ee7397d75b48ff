// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: obd_lsmt_open_ro on the input as a memory io; when it
 * opens, the maps must satisfy spec 2.5 and survive index build, find and
 * walk. Then obd_lsmt_open_warp (a TurboOCI meta layer) over a target
 * whose size comes from the input: tags, target bounds.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_warp(struct obd_io *io, size_t size)
{
	/* a target of some sectors more or fewer than the file: both bounds get hit */
	u64 tsize = (u64)size * 3 + (size & 511);
	struct obd_lsmt_info li;
	struct obd_map *maps = NULL;
	struct obd_err err;
	u64 n = 0;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = obd_lsmt_open_warp(io, &li, &maps, &n, tsize, &err);
	fuzz_check_err(rc, &err, "obd_lsmt_open_warp");
	if (rc < 0) {
		FUZZ_CHECK(maps == NULL || n == 0, "failed warp open left maps");
		obd_free(maps);
		return;
	}
	fuzz_check_warp_maps(maps, n, li.index_offset, tsize / 512);
	obd_free(maps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct obd_mem_io m;
	struct obd_lsmt_info li;
	struct obd_map *maps = NULL;
	struct obd_index idx;
	struct obd_err err;
	u64 n = 0;
	int rc;

	if (size > FUZZ_MAX_LEN)
		return 0;
	obd_mem_io_init(&m, data, size, "fuzz.lsmt");
	fuzz_warp(&m.io, size);

	memset(&err, 0, sizeof(err));
	rc = obd_lsmt_read_header(&m.io, &li, &err);
	fuzz_check_err(rc, &err, "obd_lsmt_read_header");

	memset(&err, 0, sizeof(err));
	memset(&li, 0, sizeof(li));
	rc = obd_lsmt_open_ro(&m.io, &li, &maps, &n, &err);
	fuzz_check_err(rc, &err, "obd_lsmt_open_ro");
	if (rc < 0) {
		FUZZ_CHECK(maps == NULL || n == 0, "failed open left maps");
		obd_free(maps);
		return 0;
	}
	FUZZ_CHECK(li.index_size <= OBD_LSMT_MAX_RO_INDEX, "index_size %llu",
		   (unsigned long long)li.index_size);
	FUZZ_CHECK(n <= li.index_size, "%llu maps from %llu records",
		   (unsigned long long)n, (unsigned long long)li.index_size);
	FUZZ_CHECK(li.index_offset >= 4096 && li.index_offset + 16 * li.index_size <= size - 4096,
		   "index [%llu,+%llu) in a %zu-byte file",
		   (unsigned long long)li.index_offset, (unsigned long long)li.index_size, size);
	fuzz_check_layer_maps(maps, n, li.index_offset);

	memset(&err, 0, sizeof(err));
	rc = obd_index_build(&idx, maps, n, &err);
	FUZZ_CHECK(rc == 0, "index build of validated maps failed: %d %s", rc, err.msg);
	fuzz_exercise_index(&idx, data, size);
	obd_index_free(&idx);	/* frees maps too */
	return 0;
}
