// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: obd_index_merge (the layer-stack sweep of lib/core/merge.c)
 * against a naive reference. The input describes up to 16 layers of
 * sorted, non-overlapping maps in a small LBA range; every sector of the
 * merged index (found through obd_index_walk) must come from the top-most
 * layer that maps it, at the right moffset, and holes must stay holes.
 *
 * Input: byte 0 = layer count - 1 (low 4 bits) and where the range sits
 * (bits 4-5: at 0, straddling 2^32 where the lookup tree switches from
 * 32-bit to 64-bit keys, or at the top of the 50-bit LBA space), then
 * 5-byte records
 *   [layer] [gap lo] [gap hi] [len lo] [len hi:6 | zeroed:1 | big:1]
 */
#include "fuzz_common.h"

#define UNIVERSE	(1u << 17)	/* sectors */
#define MAX_LAYERS	16
#define MAX_MAPS	4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct paint {
	int16_t layer;		/* -1 = hole */
	u8 zeroed;
	u64 moff;
};

static struct paint ref[UNIVERSE + OBD_MAP_MAX_LENGTH];

static const u64 bases[4] = { 0, (1ull << 32) - (1u << 16), 1ull << 40,
			       (1ull << 50) - UNIVERSE - OBD_MAP_MAX_LENGTH - 2 };

struct check {
	u64 next, base;
	const struct obd_index *idx;
};

FUZZ_NOCOV static int check_piece(void *ctx, u64 lba, u64 nsect, const struct obd_map *m, u64 moff)
{
	struct check *c = ctx;

	FUZZ_CHECK(lba == c->next, "walk gap at %llu", (unsigned long long)lba);
	for (u64 s = 0; s < nsect; s++) {
		const struct paint *p = &ref[lba - c->base + s];

		if (!m) {
			FUZZ_CHECK(p->layer < 0, "lba %llu: merged hole, layer %d maps it",
				   (unsigned long long)(lba + s), p->layer);
			continue;
		}
		FUZZ_CHECK(p->layer == m->tag, "lba %llu: merged tag %u, expected layer %d",
			   (unsigned long long)(lba + s), m->tag, p->layer);
		FUZZ_CHECK(p->zeroed == m->zeroed, "lba %llu: zeroed %u, expected %u",
			   (unsigned long long)(lba + s), m->zeroed, p->zeroed);
		if (!m->zeroed)
			FUZZ_CHECK(moff + s == p->moff, "lba %llu: moffset %llu, expected %llu",
				   (unsigned long long)(lba + s), (unsigned long long)(moff + s),
				   (unsigned long long)p->moff);
	}
	c->next = lba + nsect;
	return 0;
}

/* The naive model: paint the layers bottom to top. Returns the highest end. */
FUZZ_NOCOV static u64 paint_ref(struct obd_map *const *maps, const u64 *counts, const u64 *end,
				unsigned int nl, u64 base)
{
	u64 top = 0;

	for (u64 s = 0; s < sizeof(ref) / sizeof(ref[0]); s++)
		ref[s].layer = -1;
	for (unsigned int l = 0; l < nl; l++) {
		for (u64 k = 0; k < counts[l]; k++) {
			const struct obd_map *m = &maps[l][k];

			for (u64 s = 0; s < m->length; s++) {
				ref[m->offset - base + s].layer = (int16_t)l;
				ref[m->offset - base + s].zeroed = m->zeroed;
				ref[m->offset - base + s].moff = m->moffset + s;
			}
		}
		if (end[l] > top)
			top = end[l];
	}

	return top;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct obd_map *maps[MAX_LAYERS];
	u64 counts[MAX_LAYERS] = { 0 }, end[MAX_LAYERS] = { 0 };
	unsigned int nl;
	struct obd_index idx;
	struct obd_err err;
	u64 moff = 8, total = 0, top = 0, base;
	int rc;

	if (size < 1)
		return 0;
	nl = 1 + data[0] % MAX_LAYERS;
	base = bases[(data[0] >> 4) & 3];
	for (unsigned int l = 0; l < nl; l++)
		maps[l] = calloc(MAX_MAPS, sizeof(struct obd_map));
	for (size_t i = 1; i + 5 <= size && total < MAX_MAPS; i += 5) {
		unsigned int l = data[i] % nl;
		u64 gap = data[i + 1] | (u64)data[i + 2] << 8;
		u32 len = data[i + 3] | (u32)(data[i + 4] & 0x3f) << 8;
		struct obd_map *m;

		if (!(data[i + 4] & 0x80))
			len &= 0xff;	/* mostly short maps: more overlap between layers */
		gap %= 1024;
		if (!len)
			len = 1;
		if (end[l] + gap + len > UNIVERSE)
			continue;
		m = &maps[l][counts[l]++];
		m->offset = base + end[l] + gap;
		m->length = len;
		m->zeroed = (data[i + 4] >> 6) & 1;
		m->moffset = moff;
		moff += len;
		end[l] = m->offset - base + len;
		total++;
	}

	top = paint_ref(maps, counts, end, nl, base);

	memset(&err, 0, sizeof(err));
	rc = obd_index_merge((const struct obd_map *const *)maps, counts, nl, &idx, &err);
	FUZZ_CHECK(rc == 0, "merge failed: %d %s", rc, err.msg);
	for (u64 i = 0; i < idx.n; i++) {
		FUZZ_CHECK(idx.maps[i].length >= 1 && idx.maps[i].length <= OBD_MAP_MAX_LENGTH,
			   "merged map %llu length %u", (unsigned long long)i, idx.maps[i].length);
		if (i)
			FUZZ_CHECK(obd_map_end(&idx.maps[i - 1]) <= idx.maps[i].offset,
				   "merged map %llu overlaps", (unsigned long long)i);
	}
	{
		struct check c = { .next = base, .base = base, .idx = &idx };

		rc = obd_index_walk(&idx, base, top + 1, check_piece, &c);
		FUZZ_CHECK(rc == 0 && c.next == base + top + 1, "walk");
		/* every map start, looked up directly */
		for (u64 i = 0; i < idx.n; i++)
			FUZZ_CHECK(obd_index_find(&idx, idx.maps[i].offset) == i, "find(start of %llu)",
				   (unsigned long long)i);
	}
	fuzz_check_find(&idx);
	obd_index_free(&idx);
	for (unsigned int l = 0; l < nl; l++)
		free(maps[l]);
	return 0;
}
