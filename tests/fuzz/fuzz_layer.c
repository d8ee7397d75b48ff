// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: obd_layer_open over every wrapping (tar, zfile, lsmt
 * autodetected), then a merged index of the layer (alone and stacked on
 * itself), walked, with the data of a few mapped pieces read through the
 * layer's LSMT stream.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct read_ctx {
	struct obd_layer *l;
	u64 bytes;
	u8 buf[4096];
};

static int read_piece(void *ctx, u64 lba, u64 nsect, const struct obd_map *m, u64 moff)
{
	struct read_ctx *r = ctx;
	u64 off, len;

	if (!m || m->zeroed || r->bytes > (4u << 20))
		return 0;
	/* maps were range-checked against index_offset: readable */
	off = moff * 512;
	len = nsect * 512 < sizeof(r->buf) ? nsect * 512 : sizeof(r->buf);
	FUZZ_CHECK(off + len <= r->l->lsmt_io->size, "map data past the stream");
	(void)obd_io_read(r->l->lsmt_io, r->buf, len, off);	/* may fail: bad CRC etc. */
	r->bytes += len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct obd_mem_io m;
	struct obd_layer l;
	struct obd_index idx;
	struct obd_err err;
	int rc;

	if (size > FUZZ_MAX_LEN)
		return 0;
	obd_mem_io_init(&m, data, size, "fuzz.layer");
	memset(&err, 0, sizeof(err));
	memset(&l, 0, sizeof(l));
	rc = obd_layer_open(&l, &m.io, &obd_user_codec, &err);
	fuzz_check_err(rc, &err, "obd_layer_open");
	if (rc < 0)
		return 0;
	fuzz_check_layer_maps(l.maps, l.nmaps, l.info.index_offset);

	{
		const struct obd_map *layers[2] = { l.maps, l.maps };
		u64 counts[2] = { l.nmaps, l.nmaps };

		for (unsigned int nl = 1; nl <= 2; nl++) {
			memset(&err, 0, sizeof(err));
			rc = obd_index_merge(layers, counts, nl, &idx, &err);
			FUZZ_CHECK(rc == 0, "merge of a validated layer failed: %d %s", rc, err.msg);
			/* the layer over itself: same extents, all from the top */
			FUZZ_CHECK(idx.n >= (l.nmaps ? 1 : 0), "merged %llu maps",
				   (unsigned long long)idx.n);
			for (u64 i = 0; i < idx.n; i++)
				FUZZ_CHECK(idx.maps[i].tag == nl - 1, "map %llu tag %u",
					   (unsigned long long)i, idx.maps[i].tag);
			fuzz_exercise_index(&idx, data, size);
			if (nl == 1) {
				struct read_ctx *r = calloc(1, sizeof(*r));
				u64 last = idx.n ? obd_map_end(&idx.maps[idx.n - 1]) : 0;

				r->l = &l;
				rc = obd_index_walk(&idx, 0, last, read_piece, r);
				FUZZ_CHECK(rc == 0, "walk %d", rc);
				free(r);
			}
			obd_index_free(&idx);
		}
	}
	(void)obd_stack_vsize((const struct obd_layer *const[]){ &l }, 1);
	obd_layer_close(&l);
	return 0;
}
