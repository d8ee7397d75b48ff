// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: the trace codec (lib/user/trace.c). A trace the decoder
 * accepts re-encodes to a trace that decodes to the same records (and to
 * the same bytes when its padding was zero); the dm message parsers see
 * the input as text and must never report more records than they have room
 * for.
 */
#include "fuzz_common.h"
#include "obd_tracefile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

FUZZ_NOCOV static bool pads_zero(const uint8_t *data, u64 n)
{
	u64 i;

	if (obd_get_le32(data + 4) || obd_get_le32(data + 20))
		return false;
	for (i = 0; i < n; i++) {
		const uint8_t *p = data + 24 + 24 * i;

		if (p[1] || p[2] || p[3])
			return false;
	}
	return true;
}

static void fuzz_file(const uint8_t *data, size_t size)
{
	struct obd_trace_rec *recs;
	struct obd_err err = { "" };
	u64 n = 0, n2 = 0, i;
	u8 *out;
	int rc;

	rc = obd_trace_check(data, size, "fuzz.trace", &n, &err);
	fuzz_check_err(rc, &err, "obd_trace_check");
	if (rc)
		return;
	FUZZ_CHECK(obd_trace_has_magic(data, size), "accepted without the magic");
	FUZZ_CHECK(obd_trace_file_size(n) == size, "%llu records in %zu bytes",
		   (unsigned long long)n, size);
	recs = calloc(n + 1, sizeof(*recs));
	out = malloc(size);
	FUZZ_CHECK(recs && out, "out of memory");
	for (i = 0; i < n; i++)
		obd_trace_get(data, i, &recs[i]);
	rc = obd_trace_encode(recs, n, out, size, "fuzz.out", &err);
	FUZZ_CHECK(!rc, "a decoded trace does not encode: %s", err.msg);
	rc = obd_trace_check(out, size, "fuzz.out", &n2, &err);
	FUZZ_CHECK(!rc && n2 == n, "the re-encoded trace does not decode: %s", err.msg);
	if (pads_zero(data, n))
		FUZZ_CHECK(!memcmp(out, data, size), "re-encoding changed the bytes");
	free(recs);
	free(out);
}

static void fuzz_text(const uint8_t *data, size_t size)
{
	struct obd_trace_rec recs[OBD_PREFETCH_BATCH], plan[OBD_PREFETCH_BATCH];
	char *s = malloc(size + 1), msg[OBD_PREFETCH_MSG_MAX];
	struct obd_trace_dump_hdr h;
	struct obd_prefetch_status st;
	struct obd_err err = { "" };
	u64 skipped, m;
	int rc;

	FUZZ_CHECK(s != NULL, "out of memory");
	memcpy(s, data, size);
	s[size] = 0;
	rc = obd_trace_dump_parse(s, &h, recs, OBD_PREFETCH_BATCH, &err);
	fuzz_check_err(rc, &err, "obd_trace_dump_parse");
	if (!rc) {
		FUZZ_CHECK(h.count <= OBD_PREFETCH_BATCH, "count %llu", (unsigned long long)h.count);
		FUZZ_CHECK(h.start + h.count <= h.total, "past total");
		m = obd_trace_plan(recs, h.count, 255, 1 << 20, plan, &skipped);
		FUZZ_CHECK(m + skipped <= h.count, "plan grew");
		FUZZ_CHECK(obd_prefetch_format(plan, m, msg, sizeof(msg)) == m,
			   "a batch of %llu does not fit OBD_PREFETCH_MSG_MAX", (unsigned long long)m);
	}
	rc = obd_prefetch_status_parse(s, &st, &err);
	fuzz_check_err(rc, &err, "obd_prefetch_status_parse");
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_MAX_LEN)
		return 0;
	fuzz_file(data, size);
	fuzz_text(data, size);
	return 0;
}
