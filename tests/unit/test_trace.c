// SPDX-License-Identifier: GPL-2.0-only
/*
 * The trace codec (spec 6.7, lib/user/trace.c): round trip, a worked byte
 * example, every malformed class, and the dm message text (dump and
 * prefetch_status parsing, the replay plan, prefetch batches).
 */
#include <stdlib.h>
#include <string.h>

#include "obd_tracefile.h"
#include "tap.h"

static const struct obd_trace_rec sample[] = {
	{ .op = 'R', .layer = 0, .count = 4096, .offset = 0 },
	{ .op = 'R', .layer = 1, .count = 65536, .offset = 1 << 20 },
	{ .op = 'W', .layer = 2, .count = 512, .offset = 1ULL << 40 },
	{ .op = 'R', .layer = 254, .count = 1, .offset = ~0ULL - 1 },
};
#define NSAMPLE (sizeof(sample) / sizeof(sample[0]))

static u8 *encode_sample(u64 *len)
{
	struct obd_err err = { "" };
	u8 *buf;

	*len = obd_trace_file_size(NSAMPLE);
	buf = malloc(*len);
	if (!buf || obd_trace_encode(sample, NSAMPLE, buf, *len, "t", &err)) {
		tap_diag("encode: %s", err.msg);
		exit(1);
	}
	return buf;
}

/* Re-seal the checksum after a record edit, so only the edited field is wrong. */
static void reseal(u8 *buf, u64 len)
{
	obd_put_le32(buf + 16, obd_crc32c(0, buf + 24, len - 24));
}

static int check(const u8 *buf, u64 len, struct obd_err *err)
{
	u64 n;

	memset(err, 0, sizeof(*err));
	return obd_trace_check(buf, len, "bad.trace", &n, err);
}

static void test_round_trip(void)
{
	struct obd_err err = { "" };
	struct obd_trace_rec r;
	u64 len, n = 0, i;
	u8 *buf = encode_sample(&len);
	int same = 1;

	tap_ok(len == 24 + 24 * NSAMPLE, "file size 24 + 24 x records (%llu)", (unsigned long long)len);
	tap_ok(obd_get_le32(buf) == 0xC2EF1820u && obd_get_le64(buf + 8) == 24 * NSAMPLE,
	       "header: magic, data_size");
	tap_ok(!obd_get_le32(buf + 4) && !obd_get_le32(buf + 20) && !buf[25] && !buf[26] && !buf[27],
	       "padding written as zeros");
	tap_ok(obd_get_le32(buf + 16) == obd_crc32c(0, buf + 24, len - 24),
	       "checksum = raw CRC32C seed 0 over the records");
	tap_ok(!obd_trace_check(buf, len, "t", &n, &err) && n == NSAMPLE, "decodes: %s", err.msg);
	for (i = 0; i < n; i++) {
		obd_trace_get(buf, i, &r);
		same &= r.op == sample[i].op && r.layer == sample[i].layer &&
			r.count == sample[i].count && r.offset == sample[i].offset;
	}
	tap_ok(same, "every record comes back as written");
	tap_ok(obd_trace_has_magic(buf, len), "has_magic on a trace");
	tap_ok(!obd_trace_has_magic(buf, 23), "has_magic needs the whole header");
	tap_ok(!obd_trace_has_magic("/usr/bin/\n/etc/hosts\n...........", 30),
	       "a file list is not a trace");
	/* padding is not guaranteed zero by the reference: accepted, in the checksum */
	buf[25] = 0x5a;
	tap_ok(check(buf, len, &err) == -EFSBADCRC, "non-zero padding is covered by the checksum");
	reseal(buf, len);
	tap_ok(!check(buf, len, &err), "non-zero padding with its checksum is accepted");
	free(buf);

	buf = malloc(24);
	tap_ok(!obd_trace_encode(NULL, 0, buf, 24, "e", &err) && !check(buf, 24, &err),
	       "an empty trace (0 records) encodes and decodes");
	tap_ok(obd_get_le32(buf + 16) == 0, "... checksum of nothing is the seed, 0");
	free(buf);
}

/* Worked example: one record R layer 1 count 4096 offset 8192, by hand. */
static void test_bytes(void)
{
	struct obd_trace_rec r = { .op = 'R', .layer = 1, .count = 4096, .offset = 8192 };
	u8 want[48] = { 0x20, 0x18, 0xef, 0xc2, 0, 0, 0, 0, 24 }, got[48];
	struct obd_err err;

	want[24] = 'R';
	want[28] = 1;
	want[32 + 1] = 0x10;	/* 4096 */
	want[40 + 1] = 0x20;	/* 8192 */
	obd_put_le32(want + 16, obd_crc32c(0, want + 24, 24));
	tap_ok(!obd_trace_encode(&r, 1, got, sizeof(got), "x", &err) && !memcmp(got, want, 48),
	       "one record: the bytes of the reference struct layout");
}

static void test_malformed(void)
{
	struct obd_trace_rec big = { .op = 'R', .layer = 0, .count = 1, .offset = 0 };
	struct obd_err err;
	u64 len;
	u8 *buf = encode_sample(&len), *c = malloc(len + 24);
	int rc;

#define EXPECT(desc, code, field) do { \
		rc = check(c, clen, &err); \
		tap_ok(rc == (code) && strstr(err.msg, "bad.trace: ") && strstr(err.msg, field), \
		       "%s: %d, \"%s\"", desc, rc, err.msg); \
	} while (0)
	u64 clen;

	memcpy(c, buf, len);
	clen = len;
	c[0] ^= 1;
	EXPECT("bad magic", -EFSCORRUPTED, "magic");
	memcpy(c, buf, len);
	clen = 10;
	EXPECT("shorter than a header", -EFSCORRUPTED, "file size");
	clen = 0;
	EXPECT("empty", -EFSCORRUPTED, "file size");
	clen = len - 24;
	EXPECT("truncated by a record", -EFSCORRUPTED, "data_size");
	clen = len - 1;
	EXPECT("truncated by a byte", -EFSCORRUPTED, "data_size");
	memset(c + len, 0, 24);
	clen = len + 24;
	EXPECT("trailing bytes", -EFSCORRUPTED, "data_size");
	clen = len - 4;
	obd_put_le64(c + 8, len - 28);
	EXPECT("data_size not a multiple of 24", -EFSCORRUPTED, "multiple of 24");
	memcpy(c, buf, len);
	clen = len;
	c[24 + 24 + 9] ^= 0x40;
	EXPECT("bad checksum", -EFSBADCRC, "checksum");
	memcpy(c, buf, len);
	c[24] = 'X';
	reseal(c, clen);
	EXPECT("bad op", -EFSCORRUPTED, "record 0: op");
	memcpy(c, buf, len);
	obd_put_le32(c + 24 + 24 + 4, 255);
	reseal(c, clen);
	EXPECT("layer_index 255", -EFSCORRUPTED, "record 1: layer_index");
	memcpy(c, buf, len);
	obd_put_le64(c + 24 + 8, 0);
	reseal(c, clen);
	EXPECT("count 0", -EFSCORRUPTED, "record 0: count");
	memcpy(c, buf, len);
	obd_put_le64(c + 24 + 8, ~0ULL);
	reseal(c, clen);
	EXPECT("huge count", -EFSCORRUPTED, "record 0: count");
	memcpy(c, buf, len);
	obd_put_le64(c + 24 + 48 + 8, 1ULL << 39);
	obd_put_le64(c + 24 + 48 + 16, ~0ULL - 100);
	reseal(c, clen);
	EXPECT("offset + count overflows", -EFSCORRUPTED, "record 2: offset");
	memcpy(c, buf, len);
	obd_put_le64(c + 8, ~0ULL - 7);
	EXPECT("data_size near 2^64", -EFSCORRUPTED, "data_size");
#undef EXPECT

	big.count = 0;
	tap_ok(obd_trace_encode(&big, 1, c, len, "enc", &err) == -EINVAL &&
	       strstr(err.msg, "enc: trace record 0: count"), "encode refuses count 0: %s", err.msg);
	big.count = 1;
	big.op = 'r';
	tap_ok(obd_trace_encode(&big, 1, c, len, "enc", &err) == -EINVAL, "encode refuses a bad op");
	big.op = 'R';
	tap_ok(obd_trace_encode(&big, 1, c, 47, "enc", &err) == -EINVAL, "encode: buffer too small");
	tap_ok(obd_trace_file_size(~0ULL / 24) == 0, "file size overflow is 0");
	free(buf);
	free(c);
}

static void test_dump(void)
{
	struct obd_trace_dump_hdr h;
	struct obd_trace_rec r[4];
	struct obd_err err = { "" };

	tap_ok(!obd_trace_dump_parse("trace recording=1 total=3 dropped=0 path=/t/x.trace start=1 count=2\n"
				     "0 4096 8192\n2 0 1048576\n", &h, r, 4, &err) &&
	       h.recording && h.total == 3 && h.start == 1 && h.count == 2 &&
	       !strcmp(h.path, "/t/x.trace") && r[0].layer == 0 && r[0].offset == 4096 &&
	       r[0].count == 8192 && r[1].layer == 2 && r[1].count == 1048576 && r[1].op == 'R',
	       "trace dump: header and records: %s", err.msg);
	tap_ok(!obd_trace_dump_parse("trace recording=0 total=0 dropped=7 path=- start=0 count=0\n",
				     &h, NULL, 0, &err) && !h.recording && !h.path[0] && h.dropped == 7,
	       "trace dump: no path, no records");
	tap_ok(!obd_trace_dump_parse("trace recording=0 total=0 dropped=0 path=- start=0 count=0",
				     &h, NULL, 0, &err), "trace dump: final newline optional");
	tap_ok(obd_trace_dump_parse("trace recording=1 total=3 dropped=0 path=/a start=0 count=2\n0 1 2\n",
				    &h, r, 4, &err) == -EPROTO, "missing record line refused");
	tap_ok(obd_trace_dump_parse("trace recording=1 total=3 dropped=0 path=/a start=0 count=1\n0 1 2\n1 1 1\n",
				    &h, r, 4, &err) == -EPROTO, "extra record line refused");
	tap_ok(obd_trace_dump_parse("trace recording=1 total=9 dropped=0 path=/a start=0 count=5\n",
				    &h, r, 4, &err) == -EPROTO, "count above the caller's room refused");
	tap_ok(obd_trace_dump_parse("trace recording=1 total=1 dropped=0 path=/a start=1 count=1\n0 1 1\n",
				    &h, r, 4, &err) == -EPROTO, "start + count past total refused");
	tap_ok(obd_trace_dump_parse("trace recording=2 total=0 dropped=0 path=- start=0 count=0\n",
				    &h, r, 4, &err) == -EPROTO, "recording=2 refused");
	tap_ok(obd_trace_dump_parse("trace recording=1 total=1 dropped=0 path=/a start=0 count=1\n0 x 1\n",
				    &h, r, 4, &err) == -EPROTO, "non-decimal field refused");
	tap_ok(obd_trace_dump_parse("trace recording=1 total=1 dropped=0 path=/a start=0 count=1\n"
				    "0 99999999999999999999 1\n", &h, r, 4, &err) == -EPROTO,
	       "u64 overflow refused");
	tap_ok(obd_trace_dump_parse("", &h, r, 4, &err) == -EPROTO && strstr(err.msg, "header"),
	       "empty response refused: %s", err.msg);
}

static void test_status(void)
{
	struct obd_prefetch_status st;
	struct obd_err err;

	tap_ok(!obd_prefetch_status_parse("prefetch queued=3 running=2 done=100 failed=1\n", &st, &err) &&
	       st.queued == 3 && st.running == 2 && st.done == 100 && st.failed == 1,
	       "prefetch_status parsed");
	tap_ok(obd_prefetch_status_parse("prefetch queued=3 running=2\n", &st, &err) == -EPROTO,
	       "short prefetch_status refused");
	tap_ok(obd_prefetch_status_parse("prefetch queued=3 running=2 done=1 failed=0 x\n", &st, &err) ==
	       -EPROTO, "trailing junk refused");
}

static void test_plan(void)
{
	struct obd_trace_rec in[] = {
		{ 0, 4096, 0, 'R' }, { 4096, 4096, 0, 'R' },	/* merge */
		{ 0, 512, 1, 'W' },				/* write: skipped */
		{ 8192, 4096, 0, 'R' },				/* merges across the write */
		{ 0, 4096, 3, 'R' },				/* layer 3 of 2: skipped */
		{ 1 << 20, 1 << 20, 1, 'R' }, { 2 << 20, 1, 1, 'R' },	/* over merge_max */
		{ 0, 4096, 0, 'R' },				/* re-read: kept, in order */
	};
	struct obd_trace_rec out[8];
	u64 skipped, m = obd_trace_plan(in, 8, 2, 1 << 20, out, &skipped);

	tap_ok(m == 4 && skipped == 2 && out[0].count == 12288 && out[1].layer == 1 &&
	       out[1].count == 1 << 20 && out[2].count == 1 && out[3].offset == 0,
	       "plan: reads of known layers, adjacent ones merged up to 1 MiB (%llu ranges)",
	       (unsigned long long)m);
}

static void test_format(void)
{
	struct obd_trace_rec r[100];
	char buf[OBD_PREFETCH_MSG_MAX], small[24];
	unsigned int i, words = 0;
	u64 n;
	char *p;

	for (i = 0; i < 100; i++)
		r[i] = (struct obd_trace_rec){ .offset = ~0ULL - (1ULL << 30), .count = 1ULL << 29,
					       .layer = 254, .op = 'R' };
	n = obd_prefetch_format(r, 100, buf, sizeof(buf));
	for (p = buf; (p = strchr(p, ' ')); p++)
		words++;
	tap_ok(n == 64 && words == 3 * 64 && !strncmp(buf, "prefetch 254 ", 13),
	       "a batch is 64 triples at most, and OBD_PREFETCH_MSG_MAX holds the longest");
	tap_ok(obd_prefetch_format(r, 3, buf, sizeof(buf)) == 3, "a short batch");
	n = obd_prefetch_format(r, 3, small, sizeof(small));
	tap_ok(n == 0 && !strcmp(small, "prefetch"), "a buffer too small for one triple: 0, no partial triple");
	tap_ok(obd_prefetch_format(r, 0, buf, sizeof(buf)) == 0, "nothing to send");
}

int main(void)
{
	test_round_trip();
	test_bytes();
	test_malformed();
	test_dump();
	test_status();
	test_plan();
	test_format();
	return tap_done();
}
