// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: obd_zfile_open on the input, then the uncompressed
 * stream read through zf.io in pieces of two different sizes; both reads
 * must agree byte for byte (the block cache and the piece splitting are
 * compared against each other). Output is bounded: a 1 MiB input can
 * describe gigabytes of zeros.
 */
#include "fuzz_common.h"

#define READ_CAP	(4u << 20)	/* bytes of stream read from the start */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int read_stream(struct obd_zfile *zf, u8 *out, u64 len, size_t piece, int *first_err)
{
	u64 off = 0;

	while (off < len) {
		size_t n = len - off < piece ? (size_t)(len - off) : piece;
		int rc = obd_io_read(&zf->io, out + off, n, off);

		if (rc < 0) {
			*first_err = rc;
			return rc;
		}
		off += n;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct obd_mem_io m;
	struct obd_zfile zf;
	struct obd_err err;
	u8 *a, *b;
	u64 len;
	int rc, ea = 0, eb = 0, ra, rb;

	if (size > FUZZ_MAX_LEN)
		return 0;
	obd_mem_io_init(&m, data, size, "fuzz.zfile");

	memset(&err, 0, sizeof(err));
	rc = obd_zfile_probe(&m.io, &err);
	FUZZ_CHECK(rc <= 1, "probe returned %d", rc);

	memset(&err, 0, sizeof(err));
	memset(&zf, 0, sizeof(zf));
	rc = obd_zfile_open(&zf, &m.io, &obd_user_codec, &err);
	fuzz_check_err(rc, &err, "obd_zfile_open");
	if (rc < 0)
		return 0;
	FUZZ_CHECK(zf.io.size == zf.info.original_size, "io size");
	FUZZ_CHECK(zf.info.block_size >= 4096 && zf.info.block_size <= 65536 &&
		   !(zf.info.block_size & (zf.info.block_size - 1)), "block_size %u",
		   zf.info.block_size);
	FUZZ_CHECK(zf.info.nblocks == OBD_DIV_UP(zf.info.original_size, zf.info.block_size),
		   "nblocks %llu for %llu bytes", (unsigned long long)zf.info.nblocks,
		   (unsigned long long)zf.info.original_size);
	for (u64 i = 0; i < zf.info.nblocks; i++) {
		u64 off;
		u32 l;

		obd_zfile_block_range(&zf, i, &off, &l);
		FUZZ_CHECK(off >= zf.info.data_start && l > 0 && off + l <= zf.info.index_offset,
			   "block %llu at [%llu,+%u) outside [%u,%llu)", (unsigned long long)i,
			   (unsigned long long)off, l, zf.info.data_start,
			   (unsigned long long)zf.info.index_offset);
	}

	len = zf.io.size < READ_CAP ? zf.io.size : READ_CAP;
	a = malloc(len ? len : 1);
	b = malloc(len ? len : 1);
	ra = read_stream(&zf, a, len, 4096 + 512 + (size & 0xff), &ea);
	rb = read_stream(&zf, b, len, 65536 * 3 + 7, &eb);
	FUZZ_CHECK((ra == 0) == (rb == 0), "piece size changes the outcome: %d vs %d", ea, eb);
	if (ra == 0) {
		FUZZ_CHECK(!memcmp(a, b, len), "piece size changes the bytes");
		/* random reads (offsets from the input) must match the sequential bytes */
		for (size_t k = 0; k + 8 <= size && k < 64 && len; k += 8) {
			u64 h, off, n;

			memcpy(&h, data + size - 8 - k, 8);
			off = h % len;
			n = 1 + (h >> 32) % (len - off < 200000 ? len - off : 200000);
			FUZZ_CHECK(obd_io_read(&zf.io, b, n, off) == 0, "random read [%llu,+%llu) failed",
				   (unsigned long long)off, (unsigned long long)n);
			FUZZ_CHECK(!memcmp(a + off, b, n), "random read [%llu,+%llu) differs",
				   (unsigned long long)off, (unsigned long long)n);
		}
	}
	/* the tail, which the capped read may not reach */
	if (zf.io.size > len) {
		u64 off = zf.io.size - (zf.io.size < 70000 ? zf.io.size : 70000);

		(void)obd_io_read(&zf.io, a, zf.io.size - off < len ? zf.io.size - off : len, off);
	}
	/* past the end must be refused, not read */
	FUZZ_CHECK(obd_io_read(&zf.io, a, 1, zf.io.size) < 0, "read past the end succeeded");
	free(a);
	free(b);
	obd_zfile_close(&zf);
	return 0;
}
