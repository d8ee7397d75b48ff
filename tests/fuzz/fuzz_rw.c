// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: the writable-layer readers of lib/core/lsmt_rw.c.
 *
 * Byte 0 selects:
 *  even: the rest is an RW index file (header 0x01 + appended records),
 *        loaded with obd_lsmt_rw_load_index against a 64 MiB data file;
 *        whatever loads must be sorted, non-overlapping and in range.
 *  odd:  the rest is a log of records in a small LBA range, replayed with
 *        obd_lsmt_rw_replay and compared sector by sector with a naive
 *        replay (the later record wins; trimming the front of a data
 *        record advances its moffset, of a zeroed one does not).
 *        Records: 5 bytes [off lo] [off hi] [len lo] [len hi:6|zeroed:1|big:1] [tag]
 */
#include "fuzz_common.h"
#include "lsmt_rw.h"

#define UNIVERSE	(1u << 16)
#define DATA_SIZE	(64ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct cell {
	int32_t rec;	/* -1: unmapped */
	u8 zeroed, tag;
	u64 moff;
};

static struct cell ref[UNIVERSE + OBD_MAP_MAX_LENGTH + 1];
static struct cell got[UNIVERSE + OBD_MAP_MAX_LENGTH + 1];

FUZZ_NOCOV static void check_sorted(const struct obd_map *m, u64 n, u64 mend_max)
{
	for (u64 i = 0; i < n; i++) {
		FUZZ_CHECK(m[i].length >= 1 && m[i].length <= OBD_MAP_MAX_LENGTH,
			   "map %llu length %u", (unsigned long long)i, m[i].length);
		if (mend_max) {
			FUZZ_CHECK(m[i].moffset >= 8 && obd_map_mend(&m[i]) <= mend_max,
				   "map %llu moffset %llu", (unsigned long long)i,
				   (unsigned long long)m[i].moffset);
			FUZZ_CHECK(m[i].tag == 0, "map %llu tag %u", (unsigned long long)i, m[i].tag);
		}
		if (i)
			FUZZ_CHECK(obd_map_end(&m[i - 1]) <= m[i].offset,
				   "map %llu overlaps or is unsorted", (unsigned long long)i);
	}
}

static void load_index(const uint8_t *data, size_t size)
{
	struct obd_mem_io m;
	struct obd_map *maps = NULL;
	struct obd_index idx;
	struct obd_err err;
	u64 n = 0;
	int rc;

	obd_mem_io_init(&m, data, size, "fuzz.rw.index");
	memset(&err, 0, sizeof(err));
	rc = obd_lsmt_rw_load_index(&m.io, DATA_SIZE, &maps, &n, NULL, &err);
	fuzz_check_err(rc, &err, "obd_lsmt_rw_load_index");
	if (rc) {
		obd_free(maps);
		return;
	}
	check_sorted(maps, n, DATA_SIZE / 512);
	rc = obd_index_build(&idx, maps, n, &err);
	FUZZ_CHECK(rc == 0, "index build of loaded maps: %s", err.msg);
	fuzz_exercise_index(&idx, data, size);
	obd_index_free(&idx);
}

FUZZ_NOCOV static void replay(const uint8_t *data, size_t size)
{
	struct obd_map *recs, *maps = NULL;
	struct obd_err err;
	u64 n = 0, nm = 0, moff = 8, top = 0;
	int rc;

	recs = calloc(size / 5 + 1, sizeof(*recs));
	for (size_t i = 0; i + 5 <= size; i += 5) {
		struct obd_map *r = &recs[n];
		u32 len = data[i + 2] | (u32)(data[i + 3] & 0x3f) << 8;

		if (!(data[i + 3] & 0x80))
			len &= 0x3f;	/* mostly short: more overlaps */
		r->offset = (data[i] | (u64)data[i + 1] << 8) % UNIVERSE;
		r->length = len;	/* 0 allowed: must be ignored */
		r->zeroed = (data[i + 3] >> 6) & 1;
		r->tag = data[i + 4];
		r->moffset = moff;
		moff += len;
		n++;
	}
	for (size_t s = 0; s < sizeof(ref) / sizeof(ref[0]); s++) {
		ref[s].rec = -1;
		got[s].rec = -1;
	}
	for (u64 k = 0; k < n; k++) {
		for (u64 s = 0; s < recs[k].length; s++) {
			struct cell *c = &ref[recs[k].offset + s];

			c->rec = (int32_t)k;
			c->zeroed = recs[k].zeroed;
			c->tag = recs[k].tag;
			c->moff = recs[k].moffset + s;
		}
		if (recs[k].length && obd_map_end(&recs[k]) > top)
			top = obd_map_end(&recs[k]);
	}

	memset(&err, 0, sizeof(err));
	rc = obd_lsmt_rw_replay(recs, n, "fuzz.rw.log", &maps, &nm, &err);
	FUZZ_CHECK(rc == 0, "replay failed: %d %s", rc, err.msg);
	check_sorted(maps, nm, 0);
	for (u64 i = 0; i < nm; i++) {
		FUZZ_CHECK(obd_map_end(&maps[i]) <= top, "map %llu past the last record",
			   (unsigned long long)i);
		for (u64 s = 0; s < maps[i].length; s++) {
			struct cell *c = &got[maps[i].offset + s];

			c->rec = 0;
			c->zeroed = maps[i].zeroed;
			c->tag = maps[i].tag;
			c->moff = maps[i].zeroed ? 0 : maps[i].moffset + s;
		}
	}
	for (u64 s = 0; s < top; s++) {
		const struct cell *a = &ref[s], *b = &got[s];

		FUZZ_CHECK((a->rec < 0) == (b->rec < 0), "lba %llu: mapped %d, expected %d",
			   (unsigned long long)s, b->rec >= 0, a->rec >= 0);
		if (a->rec < 0)
			continue;
		FUZZ_CHECK(a->zeroed == b->zeroed && a->tag == b->tag,
			   "lba %llu: zeroed/tag %u/%u, expected %u/%u (record %d)",
			   (unsigned long long)s, b->zeroed, b->tag, a->zeroed, a->tag, a->rec);
		if (!a->zeroed)
			FUZZ_CHECK(a->moff == b->moff, "lba %llu: moffset %llu, expected %llu",
				   (unsigned long long)s, (unsigned long long)b->moff,
				   (unsigned long long)a->moff);
	}
	obd_free(maps);
	free(recs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FUZZ_MAX_LEN)
		return 0;
	if (data[0] & 1)
		replay(data + 1, size - 1);
	else
		load_index(data + 1, size - 1);
	return 0;
}
