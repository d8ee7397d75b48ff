// SPDX-License-Identifier: GPL-2.0-only
/*
 * The TurboOCI warp commit (lib/user/lsmt_write.c obd_lsmt_commit_warp):
 * records, tags, zero handling and the byte layout of what it writes
 * (header 0x07, data at 4096, unpadded index with tags, trailer 0x06).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obd.h"
#include "env_user.h"
#include "lsmt_write.h"
#include "tap.h"
#include "testutil.h"

#define SRC_SECTORS	512

static u8 src[SRC_SECTORS * OBD_SECTOR_SIZE];


static int src_read(void *ctx, u8 tag, void *buf, size_t len, u64 off)
{
	(void)ctx;
	if (tag != 0 || off + len > sizeof(src))
		return -EIO;
	memcpy(buf, src + off, len);
	return 0;
}

/* Sector s of the source: its number in every byte, or zeros. */
static void fill_src(void)
{
	u64 s;

	for (s = 0; s < SRC_SECTORS; s++)
		memset(src + s * OBD_SECTOR_SIZE, (int)(s % 251) + 1, OBD_SECTOR_SIZE);
	/* sectors 4-5 and 300-309 are all zeros */
	memset(src + 4 * OBD_SECTOR_SIZE, 0, 2 * OBD_SECTOR_SIZE);
	memset(src + 300 * OBD_SECTOR_SIZE, 0, 10 * OBD_SECTOR_SIZE);
}

#define M(o, l, mo, z, t) { .offset = (o), .length = (l), .moffset = (mo), .zeroed = (z), .tag = (t) }

static const struct obd_map in_maps[] = {
	M(0, 16, 0, 0, 0),		/* meta, sectors 4-5 zero */
	M(100, 20, 5000, 0, 1),		/* target */
	M(120, 10, 5020, 0, 1),		/* contiguous: merges with the one before */
	M(130, 5, 9000, 0, 1),		/* not contiguous in the target */
	M(135, 8, 0, 1, 0),		/* zeroed */
	M(143, 8, 0, 1, 0),		/* zeroed, adjacent: merges */
	M(296, 80, 296, 0, 0),		/* meta crossing 32 KiB pieces, 300-309 zero */
	M(400, 16383, 1, 0, 1),		/* the longest record */
};

static void decode_index(const u8 *f, u64 ioff, u64 n, struct obd_map *out)
{
	u64 i;

	for (i = 0; i < n; i++)
		obd_map_decode((const struct obd_lsmt_mapping *)(f + ioff) + i, &out[i]);
}

static int maps_eq(const struct obd_map *a, const struct obd_map *b, u64 n)
{
	u64 i;

	for (i = 0; i < n; i++)
		if (a[i].offset != b[i].offset || a[i].length != b[i].length ||
		    a[i].moffset != b[i].moffset || a[i].zeroed != b[i].zeroed ||
		    a[i].tag != b[i].tag) {
			tap_diag("record %llu: got {%llu %u %llu z%u t%u} want {%llu %u %llu z%u t%u}",
				 (unsigned long long)i, (unsigned long long)a[i].offset,
				 a[i].length, (unsigned long long)a[i].moffset, a[i].zeroed,
				 a[i].tag, (unsigned long long)b[i].offset, b[i].length,
				 (unsigned long long)b[i].moffset, b[i].zeroed, b[i].tag);
			return 0;
		}
	return 1;
}

static void test_layout(bool zero_detect)
{
	/* data position in sectors: 8 (after the 4 KiB header) */
	static const struct obd_map want_z[] = {
		M(0, 4, 8, 0, 0), M(4, 2, 12, 1, 0), M(6, 10, 12, 0, 0),
		M(100, 30, 5000, 0, 1), M(130, 5, 9000, 0, 1), M(135, 16, 22, 1, 0),
		M(296, 4, 22, 0, 0), M(300, 10, 26, 1, 0), M(310, 66, 26, 0, 0),
		M(400, 16383, 1, 0, 1),
	};
	static const struct obd_map want_nz[] = {
		M(0, 16, 8, 0, 0), M(100, 30, 5000, 0, 1), M(130, 5, 9000, 0, 1),
		M(135, 16, 24, 1, 0), M(296, 80, 24, 0, 0), M(400, 16383, 1, 0, 1),
	};
	const struct obd_map *want = zero_detect ? want_z : want_nz;
	u64 nwant = zero_detect ? sizeof(want_z) / sizeof(*want) : sizeof(want_nz) / sizeof(*want);
	u64 data_sect = zero_detect ? 16 - 2 + 80 - 10 : 16 + 80;
	struct obd_commit_opts o = { .vsize = 64ULL << 30, .zero_detect = zero_detect,
				     .uuid = "11111111-2222-4333-8444-555555555555" };
	struct membuf mb = { 0 };
	struct obd_err err = { 0 };
	struct obd_map got[16];
	u64 size = 0, ioff, isize, vsize;
	u32 flags;
	int rc;
	const char *mode = zero_detect ? "zero-detect" : "plain";

	rc = obd_lsmt_commit_warp(in_maps, sizeof(in_maps) / sizeof(*in_maps), &o, src_read,
				  NULL, mem_sink, &mb, &size, &err);
	tap_ok(rc == 0 && size == mb.n, "%s: commit ok, size reported %llu = written %zu (%s)",
	       mode, (unsigned long long)size, mb.n, rc ? err.msg : "");
	if (rc)
		return;
	tap_ok(mb.n == 4096 + data_sect * 512 + nwant * 16 + 4096,
	       "%s: size = header + %llu data sectors + %llu records (no padding) + trailer",
	       mode, (unsigned long long)data_sect, (unsigned long long)nwant);
	tap_ok(obd_get_le32(mb.p + 28) == 0x07 && obd_get_le32(mb.p + mb.n - 4096 + 28) == 0x06,
	       "%s: header flags 0x07, trailer flags 0x06", mode);
	rc = obd_lsmt_decode_ht(mb.p + mb.n - 4096, false, "warp", &flags, &ioff, &isize, &vsize,
				&err);
	tap_ok(!rc && ioff == 4096 + data_sect * 512 && isize == nwant && vsize == o.vsize,
	       "%s: trailer index_offset %llu index_size %llu vsize %llu", mode,
	       (unsigned long long)ioff, (unsigned long long)isize, (unsigned long long)vsize);
	tap_ok(!memcmp(mb.p + 4096, src, 4 * 512) &&
	       (zero_detect ? !memcmp(mb.p + 4096 + 4 * 512, src + 6 * 512, 10 * 512)
			    : !memcmp(mb.p + 4096, src, 16 * 512)),
	       "%s: the meta data from offset 4096, zero sectors %s", mode,
	       zero_detect ? "left out" : "copied");
	if (ioff + isize * 16 + 4096 != mb.n || isize > 16) {
		tap_ok(0, "%s: index in range", mode);
		free(mb.p);
		return;
	}
	decode_index(mb.p, ioff, isize, got);
	tap_ok(maps_eq(got, want, nwant), "%s: %llu records, tags kept, merged the reference's way",
	       mode, (unsigned long long)nwant);
	tap_ok(!memcmp(mb.p + 56, o.uuid, 36), "%s: the uuid in the header", mode);
	free(mb.p);
}

static void expect_refused(const char *what, const struct obd_map *maps, u64 n,
			   const char *needle)
{
	struct obd_commit_opts o = { .vsize = 1ULL << 30 };
	struct membuf mb = { 0 };
	struct obd_err err = { 0 };
	int rc = obd_lsmt_commit_warp(maps, n, &o, src_read, NULL, mem_sink, &mb, NULL, &err);

	tap_ok(rc == -EINVAL && strstr(err.msg, needle) && mb.n == 0,
	       "refused: %s (%s)", what, err.msg);
	free(mb.p);
}

static void test_refused(void)
{
	static const struct obd_map tag2[] = { M(0, 8, 0, 0, 2) };
	static const struct obd_map zt1[] = { M(0, 8, 0, 1, 1) };
	static const struct obd_map overlap[] = { M(0, 8, 0, 0, 1), M(4, 8, 0, 0, 1) };
	static const struct obd_map len0[] = { M(0, 0, 0, 0, 1) };

	expect_refused("tag 2", tag2, 1, "tag 2");
	expect_refused("a zeroed tag-1 record", zt1, 1, "zeroed");
	expect_refused("overlapping maps", overlap, 2, "non-overlapping");
	expect_refused("length 0", len0, 1, "length");
}

/* The core's form of a target record (tag 0, target 1) writes the same bytes. */
static void test_target_flag(void)
{
	struct obd_map m[sizeof(in_maps) / sizeof(*in_maps)];
	struct obd_commit_opts o = { .vsize = 64ULL << 30, .zero_detect = true };
	struct membuf a = { 0 }, b = { 0 };
	struct obd_err err = { "" };
	size_t i;
	int r1, r2;

	memcpy(m, in_maps, sizeof(m));
	for (i = 0; i < sizeof(m) / sizeof(*m); i++)
		if (m[i].tag == 1) {
			m[i].tag = 0;
			m[i].target = 1;
		}
	r1 = obd_lsmt_commit_warp(in_maps, sizeof(m) / sizeof(*m), &o, src_read, NULL, mem_sink,
				  &a, NULL, &err);
	r2 = obd_lsmt_commit_warp(m, sizeof(m) / sizeof(*m), &o, src_read, NULL, mem_sink, &b,
				  NULL, &err);
	tap_ok(!r1 && !r2 && a.n == b.n && !memcmp(a.p, b.p, a.n),
	       "target records given as tag 0 + target: the same bytes");
	free(a.p);
	free(b.p);
}

static void test_empty(void)
{
	struct obd_commit_opts o = { .vsize = 1ULL << 30 };
	struct membuf mb = { 0 };
	struct obd_err err = { 0 };
	int rc = obd_lsmt_commit_warp(NULL, 0, &o, src_read, NULL, mem_sink, &mb, NULL, &err);

	tap_ok(rc == 0 && mb.n == 8192 && obd_get_le64(mb.p + 8192 - 4096 + 40) == 0 &&
	       obd_get_le64(mb.p + 8192 - 4096 + 32) == 4096,
	       "no maps: header and trailer only, index_size 0 at 4096");
	free(mb.p);
}

/*
 * More records than MAX_LSMT_RO_INDEX_SIZE (the reference's verify_ht and
 * lib/core refuse such a trailer): refused; exactly that many: written.
 */
static void test_index_limit(void)
{
	u64 n = OBD_LSMT_MAX_RO_INDEX + 1, i;
	struct obd_map *m = calloc(n, sizeof(*m));
	struct obd_commit_opts o = { .vsize = 64ULL << 30 };
	struct membuf a = { 0 }, b = { 0 };
	struct obd_err err = { "" };
	int rc;

	/* tag-1 records one sector apart: none merge */
	for (i = 0; m && i < n; i++)
		m[i] = (struct obd_map){ .offset = 2 * i, .length = 1, .moffset = 2 * i, .tag = 1 };
	rc = m ? obd_lsmt_commit_warp(m, n, &o, src_read, NULL, mem_sink, &a, NULL, &err) : -ENOMEM;
	tap_ok(rc == -E2BIG && strstr(err.msg, "the most readers open"), "refused: %llu records (%s)",
	       (unsigned long long)n, err.msg);
	err.msg[0] = 0;
	rc = m ? obd_lsmt_commit_warp(m, n - 1, &o, src_read, NULL, mem_sink, &b, NULL, &err) :
		 -ENOMEM;
	tap_ok(!rc && b.n == 4096 + (n - 1) * 16 + 4096 &&
	       obd_get_le64(b.p + b.n - 4096 + 40) == n - 1,
	       "%llu records: written, index_size %llu (%s)", (unsigned long long)(n - 1),
	       (unsigned long long)(b.n >= 4096 ? obd_get_le64(b.p + b.n - 4096 + 40) : 0), err.msg);
	free(a.p);
	free(b.p);
	free(m);
}

int main(void)
{
	fill_src();
	test_layout(true);
	test_layout(false);
	test_refused();
	test_target_flag();
	test_empty();
	test_index_limit();
	return tap_done();
}
