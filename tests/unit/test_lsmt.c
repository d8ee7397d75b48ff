// SPDX-License-Identifier: GPL-2.0-only
/*
 * LSMT core and writers: map encoding, read-only open (the reference
 * l1.commit and every malformed class), RW replay against a per-sector
 * model, sealing, sparse layers, and commit byte-identical to the
 * reference overlaybd-commit. OBD_SEED=<n> replays a random run.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/sha.h>

#include "obd.h"
#include "env_user.h"
#include "lsmt_rw.h"
#include "lsmt_write.h"
#include "tap.h"
#include "testutil.h"

#define L1_SHA "d7585dbf60f30b509cde770e2afe14bfcfd79126ea4bced7fadc5da973c96776"

static char tmpdir[256];

static void path_in_tmp(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", tmpdir, name);
}

static void sha256_hex(const void *buf, size_t len, char out[65])
{
	u8 d[32];
	int i;

	SHA256(buf, len, d);
	for (i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}


/* ---- 1. map encoding --------------------------------------------------- */

static void test_map_encoding(void)
{
	static const u8 want[16] = { 0x01, 0, 0, 0, 0, 0, 0x08, 0, 0x03, 0, 0, 0, 0, 0, 0x80, 0x55 };
	struct obd_map m = { .offset = 1, .length = 2, .moffset = 3, .zeroed = 1, .tag = 0x55 };
	struct obd_map d;
	struct obd_lsmt_mapping raw;
	int i, ok = 1;

	obd_map_encode(&m, &raw);
	tap_ok(!memcmp(&raw, want, 16), "map encode: spec 2.4 example bytes");
	obd_map_decode(&raw, &d);
	tap_ok(d.offset == 1 && d.length == 2 && d.moffset == 3 && d.zeroed == 1 && d.tag == 0x55,
	       "map decode: spec 2.4 example fields");

	rng_state = 0x1234567;
	for (i = 0; i < 10000; i++) {
		m.offset = rnd() & OBD_MAP_OFFSET_MASK;
		m.length = (u32)(rnd() & 0x3fff);
		m.moffset = rnd() & OBD_MAP_MOFFSET_MASK;
		m.zeroed = rnd() & 1;
		m.tag = (u8)rnd();
		obd_map_encode(&m, &raw);
		obd_map_decode(&raw, &d);
		if (memcmp(&m, &d, sizeof(m)) &&
		    (d.offset != m.offset || d.length != m.length || d.moffset != m.moffset ||
		     d.zeroed != m.zeroed || d.tag != m.tag))
			ok = 0;
	}
	tap_ok(ok, "map encode/decode round trip, 10000 random maps at the field limits");
	m = (struct obd_map){ .offset = OBD_MAP_INVALID_OFFSET };
	obd_map_encode(&m, &raw);
	tap_ok(obd_map_raw_invalid(&raw) &&
	       !memcmp(&raw, "\xff\xff\xff\xff\xff\xff\x03\0\0\0\0\0\0\0\0\0", 16),
	       "padding record bytes FF FF FF FF FF FF 03 00 ...");
}

/* ---- 2. Appendix A header, empty commit --------------------------------- */

static void test_appendix_a(void)
{
	static const u8 want[64] = {
		0x4C, 0x53, 0x4D, 0x54, 0x00, 0x01, 0x02, 0x00, 0x65, 0x7E, 0x63, 0xD2, 0x94, 0x44, 0x08, 0x4C,
		0xA2, 0xD2, 0xC8, 0xEC, 0x4F, 0xCF, 0xAE, 0x8A, 0x86, 0x01, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30,
	};
	struct obd_commit_opts o = { .vsize = 64ULL << 30 };
	struct membuf mb = { 0 };
	struct obd_err err = { "" };
	struct obd_mem_io mio;
	struct obd_lsmt_info li;
	struct obd_map *maps;
	u64 n, sz = 0;
	int ret;

	ret = obd_lsmt_commit(NULL, 0, &o, NULL, NULL, mem_sink, &mb, &sz, &err);
	tap_ok(ret == 0 && mb.n == 8192 && sz == 8192, "empty commit: header + trailer only (%zu bytes)", mb.n);
	tap_ok(mb.n >= 64 && !memcmp(mb.p, want, 64), "Appendix A: first 64 header bytes");
	tap_ok(mb.n == 8192 && mb.p[4096 + 28] == 6 && obd_get_le64(mb.p + 4096 + 32) == 4096 &&
	       obd_get_le64(mb.p + 4096 + 40) == 0 && !memcmp(mb.p + 4096 + 48, want + 48, 16),
	       "Appendix A: trailer flags 6, index_offset 4096, index_size 0");
	obd_mem_io_init(&mio, mb.p, mb.n, "empty");
	ret = obd_lsmt_open_ro(&mio.io, &li, &maps, &n, &err);
	tap_ok(ret == 0 && n == 0 && li.kind == OBD_LSMT_COMMITTED && li.virtual_size == 64ULL << 30 &&
	       !strcmp((char *)li.uuid, "00000000-0000-0000-0000-000000000000"),
	       "empty committed file opens: 0 maps, null uuid");
	if (ret)
		tap_diag("%s", err.msg);
	free(mb.p);
}

/*
 * A commit may not write more index records than readers open
 * (MAX_LSMT_RO_INDEX_SIZE, counted with the padding to whole pages):
 * zeroed maps a sector apart, none merging, one page over is refused
 * with E2BIG; exactly the most is written and opens.
 */
static void test_commit_index_limit(void)
{
	const u64 per = OBD_LSMT_HT_SPACE / sizeof(struct obd_lsmt_mapping);
	const u64 most = OBD_LSMT_MAX_RO_INDEX / per * per;
	u64 n = most + 1, i, got = 0;
	struct obd_map *m = calloc(n, sizeof(*m)), *maps = NULL;
	struct obd_commit_opts o = { .vsize = 64ULL << 30 };
	struct membuf a = { 0 }, b = { 0 };
	struct obd_err err = { "" };
	struct obd_lsmt_info li;
	struct obd_mem_io mio;
	int rc;

	for (i = 0; m && i < n; i++)
		m[i] = (struct obd_map){ .offset = 2 * i, .length = 1, .zeroed = 1 };
	rc = m ? obd_lsmt_commit(m, n, &o, NULL, NULL, mem_sink, &a, NULL, &err) : -ENOMEM;
	tap_ok(rc == -E2BIG && strstr(err.msg, "the most readers open"),
	       "commit of %llu separate maps refused (%s)", (unsigned long long)n, err.msg);
	err.msg[0] = 0;
	rc = m ? obd_lsmt_commit(m, most, &o, NULL, NULL, mem_sink, &b, NULL, &err) : -ENOMEM;
	if (!rc) {
		obd_mem_io_init(&mio, b.p, b.n, "most");
		rc = obd_lsmt_open_ro(&mio.io, &li, &maps, &got, &err);
	}
	tap_ok(!rc && got == most && maps && maps[most - 1].offset == 2 * (most - 1),
	       "commit of %llu separate maps: written, opens with every map (%s)",
	       (unsigned long long)most, err.msg);
	obd_free(maps);
	free(a.p);
	free(b.p);
	free(m);
}

/* ---- 3. the reference l1.commit ---------------------------------------- */

static const struct obd_map l1_want[7] = {
	{ 0, 8, 128, 0, 0, 0 },
	{ 2048, 136, 2048, 0, 0, 0 },
	{ 8197, 2184, 15, 0, 0, 0 },
	{ 16384, 2199, 128, 0, 0, 0 },
	{ 16512, 2327, 64, 1, 0, 0 },
	{ 16576, 2327, 832, 0, 0, 0 },
	{ 130944, 3159, 128, 0, 0, 0 },
};

static int maps_equal(const struct obd_map *a, const struct obd_map *b, u64 n)
{
	u64 i;

	for (i = 0; i < n; i++)
		if (a[i].offset != b[i].offset || a[i].moffset != b[i].moffset ||
		    a[i].length != b[i].length || a[i].zeroed != b[i].zeroed || a[i].tag != b[i].tag)
			return 0;
	return 1;
}

static void test_open_l1(void)
{
	struct obd_file_io f;
	struct obd_err err = { "" };
	struct obd_lsmt_info li;
	struct obd_map *maps = NULL;
	u64 n = 0, i, z = 0;
	int ret;

	ret = obd_file_io_open(&f, REF "l1.commit", &err);
	tap_ok(ret == 0, "open l1.commit file");
	if (ret) {
		tap_diag("%s", err.msg);
		return;
	}
	ret = obd_lsmt_open_ro(&f.io, &li, &maps, &n, &err);
	if (ret)
		tap_diag("%s", err.msg);
	for (i = 0; i < n; i++)
		z += maps[i].zeroed;
	tap_ok(ret == 0 && n == 7 && z == 1, "l1.commit: 7 records, 1 zeroed (got %llu, %llu)",
	       (unsigned long long)n, (unsigned long long)z);
	tap_ok(n == 7 && maps_equal(maps, l1_want, 7), "l1.commit: records as dumped from the file");
	tap_ok(li.kind == OBD_LSMT_COMMITTED && li.header_flags == 7 && li.trailer_flags == 6 &&
	       li.index_offset == 1682944 && li.index_size == 256,
	       "l1.commit: committed, index at 1682944, 256 records with padding");
	tap_ok(!strcmp((char *)li.uuid, "11111111-1111-4111-8111-111111111111") &&
	       !strcmp((char *)li.parent_uuid, "00000000-0000-0000-0000-000000000000") &&
	       !strcmp((char *)li.user_tag, "oracle layer1") && li.virtual_size == 64ULL << 20,
	       "l1.commit: uuid, parent, tag \"oracle layer1\", vsize 64 MiB");
	ret = obd_lsmt_read_header(&f.io, &li, &err);
	tap_ok(ret == 0 && li.kind == OBD_LSMT_COMMITTED, "l1.commit: read_header kind COMMITTED");
	obd_free(maps);
	obd_file_io_close(&f);
}

/* ---- 4. RW pair replaying l1.ops, committed byte-identical -------------- */

static void pattern_rand(u8 *buf, u64 off, u64 len, int seed)
{
	u64 p = off;

	while (p < off + len) {
		char s[64];
		u8 d[32];
		u64 blk = p / 32;
		int n = snprintf(s, sizeof(s), "obd-oracle:%d:%llu", seed, (unsigned long long)blk);

		SHA256((const u8 *)s, (size_t)n, d);
		for (; p < off + len && p / 32 == blk; p++)
			buf[p - off] = d[p % 32];
	}
}

/* Apply an .ops file to an RW layer; also to a flat model if given. */
static int apply_ops(struct obd_rw_layer *l, const char *path, u8 *model, struct obd_err *err)
{
	FILE *f = fopen(path, "r");
	char line[256];
	int ret = 0;

	if (!f)
		return -errno;
	while (!ret && fgets(line, sizeof(line), f)) {
		unsigned long long off, len;
		char kind[16];
		unsigned int arg;
		u8 *buf;

		if (line[0] == 'W' && sscanf(line, "W %llu %llu %15s %i", &off, &len, kind, &arg) == 4) {
			buf = malloc(len);
			if (!strcmp(kind, "rand"))
				pattern_rand(buf, off, len, (int)arg);
			else
				memset(buf, (int)arg, len);
			ret = obd_rw_write(l, buf, len, off, err);
			if (model)
				memcpy(model + off, buf, len);
			free(buf);
		} else if (line[0] == 'D' && sscanf(line, "D %llu %llu", &off, &len) == 2) {
			ret = obd_rw_discard(l, off, len, err);
			if (model)
				memset(model + off, 0, len);
		}
	}
	fclose(f);
	return ret;
}

static void test_commit_l1(void)
{
	static const char tag[] = "oracle layer1";
	struct obd_commit_opts o = {
		.uuid = "11111111-1111-4111-8111-111111111111",
		.user_tag = tag, .user_tag_len = sizeof(tag) - 1,
	};
	char dpath[300], ipath[300], hex[65];
	struct obd_rw_layer l;
	struct obd_err err = { "" };
	struct membuf mb = { 0 };
	size_t reflen = 0;
	u8 *ref = slurp(REF "l1.commit", &reflen);
	int ret;

	path_in_tmp(dpath, sizeof(dpath), "l1.data");
	path_in_tmp(ipath, sizeof(ipath), "l1.index");
	ret = obd_rw_create(&l, dpath, ipath, 64ULL << 20, NULL, false, &err);
	tap_ok(ret == 0, "create RW pair l1.data/l1.index");
	if (ret) {
		tap_diag("%s", err.msg);
		free(ref);
		return;
	}
	ret = apply_ops(&l, REF "l1.ops", NULL, &err);
	tap_ok(ret == 0, "apply l1.ops");
	if (ret)
		tap_diag("%s", err.msg);
	ret = obd_rw_commit(&l, &o, mem_sink, &mb, NULL, &err);
	tap_ok(ret == 0, "commit RW pair");
	if (ret)
		tap_diag("%s", err.msg);
	sha256_hex(mb.p, mb.n, hex);
	tap_ok(ref && mb.n == reflen && !memcmp(mb.p, ref, reflen) && !strcmp(hex, L1_SHA),
	       "commit output byte-identical to reference l1.commit (%zu bytes, sha256 %.16s...)",
	       mb.n, hex);
	obd_rw_close(&l, &err);

	/* Reopen: the index is replayed from the file, the commit is unchanged. */
	free(mb.p);
	mb = (struct membuf){ 0 };
	ret = obd_rw_open(&l, dpath, ipath, &err);
	if (!ret)
		ret = obd_rw_commit(&l, &o, mem_sink, &mb, NULL, &err);
	if (ret)
		tap_diag("%s", err.msg);
	tap_ok(ret == 0 && ref && mb.n == reflen && !memcmp(mb.p, ref, reflen),
	       "reopened RW pair commits byte-identical too");
	if (!ret)
		obd_rw_close(&l, &err);
	free(mb.p);
	free(ref);
}

/* ---- 5. replay against a brute-force model ------------------------------ */

#define SPACE 3000

static int check_replay(const struct obd_map *recs, u64 n, const struct obd_map *maps, u64 nm)
{
	static long owner[SPACE];
	u64 i, s;

	for (s = 0; s < SPACE; s++)
		owner[s] = -1;
	for (i = 0; i < n; i++)
		for (s = recs[i].offset; s < obd_map_end(&recs[i]); s++)
			owner[s] = (long)i;
	/* Model and maps must agree sector by sector. */
	for (i = 0; i < nm; i++) {
		if (maps[i].length == 0 || (i && obd_map_end(&maps[i - 1]) > maps[i].offset))
			return 0;
		for (s = maps[i].offset; s < obd_map_end(&maps[i]); s++) {
			const struct obd_map *r;
			u64 mo;

			if (s >= SPACE || owner[s] < 0)
				return 0;
			r = &recs[owner[s]];
			mo = r->zeroed ? r->moffset : r->moffset + (s - r->offset);
			if (maps[i].zeroed != r->zeroed || maps[i].tag != r->tag ||
			    (maps[i].zeroed ? maps[i].moffset : maps[i].moffset + (s - maps[i].offset)) != mo)
				return 0;
			owner[s] = -2;
		}
	}
	for (s = 0; s < SPACE; s++)
		if (owner[s] >= 0)
			return 0;
	return 1;
}

static void test_replay_random(u64 seed)
{
	struct obd_err err = { "" };
	int iter, bad = 0;

	rng_state = seed;
	for (iter = 0; iter < 300 && !bad; iter++) {
		u64 n = rnd_in(0, 200), i, nm;
		struct obd_map *recs = calloc(n + 1, sizeof(*recs)), *maps;
		u64 mo = 8;

		for (i = 0; i < n; i++) {
			u64 len = rnd_in(rnd() % 4 ? 1 : 0, rnd() % 8 ? 64 : 800);
			u64 off = rnd_in(0, SPACE - (len ? len : 1));

			recs[i].offset = off;
			recs[i].length = (u32)len;
			recs[i].zeroed = rnd() % 4 == 0;
			recs[i].moffset = mo;
			recs[i].tag = (u8)(rnd() % 3);
			if (!recs[i].zeroed)
				mo += len;
		}
		if (obd_lsmt_rw_replay(recs, n, "rand", &maps, &nm, &err) ||
		    !check_replay(recs, n, maps, nm)) {
			bad = 1;
			tap_diag("iteration %d, %llu records: %s", iter, (unsigned long long)n, err.msg);
		}
		obd_free(maps);
		free(recs);
	}
	tap_ok(!bad, "RW replay == per-sector model, 300 random logs (seed %llu)",
	       (unsigned long long)seed);
}

static void test_replay_big(void)
{
	const u64 n = 1000000;
	struct obd_map *recs = calloc(n, sizeof(*recs)), *maps = NULL;
	struct obd_err err = { "" };
	struct timespec t0, t1;
	u64 i, nm = 0, mo = 8;
	double secs;
	int ret;

	rng_state = 42;
	for (i = 0; i < n; i++) {
		recs[i].offset = rnd() % (1ULL << 30);
		recs[i].length = (u32)rnd_in(1, 256);
		recs[i].moffset = mo;
		mo += recs[i].length;
	}
	/* The worst case for a naive replay: one record over everything, last. */
	recs[n - 1].offset = 0;
	recs[n - 1].length = 16383;
	/* CPU time: the machine is shared; O(n^2) would take hours, not seconds. */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	ret = obd_lsmt_rw_replay(recs, n, "big", &maps, &nm, &err);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	tap_ok(ret == 0 && nm > 0 && secs < 20.0,
	       "RW replay of 1M records: %llu maps in %.2f s CPU", (unsigned long long)nm, secs);
	for (i = 1; i < nm; i++)
		if (obd_map_end(&maps[i - 1]) > maps[i].offset)
			break;
	tap_ok(nm > 0 && i == nm && maps[0].offset == 0, "RW replay of 1M records: sorted, non-overlapping");
	obd_free(maps);

	/* Sequential log, then one LBA rewritten 1M times: sort worst cases. */
	for (i = 0; i < n; i++) {
		recs[i].offset = i * 8;
		recs[i].length = 8;
		recs[i].moffset = 8 + i * 8;
	}
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	ret = obd_lsmt_rw_replay(recs, n, "seq", &maps, &nm, &err);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	tap_ok(ret == 0 && nm == n && maps[n - 1].offset == (n - 1) * 8 && secs < 20.0,
	       "RW replay of 1M sequential records: %llu maps in %.2f s CPU", (unsigned long long)nm, secs);
	obd_free(maps);
	for (i = 0; i < n; i++) {
		recs[i].offset = 100;
		recs[i].length = 8;
		recs[i].moffset = 8 + i * 8;
	}
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	ret = obd_lsmt_rw_replay(recs, n, "same", &maps, &nm, &err);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	tap_ok(ret == 0 && nm == 1 && maps[0].moffset == 8 + (n - 1) * 8 && secs < 20.0,
	       "RW replay of 1M rewrites of one LBA: the last wins, %.2f s CPU", secs);
	obd_free(maps);
	free(recs);
}

/* ---- 6. RW index file load, seal round trip, sparse --------------------- */

static int read_through(struct obd_io *io, const struct obd_map *maps, u64 n, u64 vsize, u8 *out)
{
	u64 i;

	memset(out, 0, vsize);
	for (i = 0; i < n; i++) {
		if (maps[i].zeroed)
			continue;
		if (obd_io_read(io, out + maps[i].offset * 512, (size_t)maps[i].length * 512,
				maps[i].moffset * 512))
			return -1;
	}
	return 0;
}

static void test_seal_roundtrip(u64 seed)
{
	const u64 vsize = 8ULL << 20;
	char dpath[300], ipath[300];
	struct obd_rw_layer l;
	struct obd_err err = { "" };
	struct obd_map *before = NULL, *after = NULL;
	u64 nb = 0, na = 0, i;
	u8 *model = calloc(1, vsize), *got = malloc(vsize), *buf = malloc(6 << 20);
	struct obd_file_io f;
	struct obd_lsmt_info li;
	int ret, ok = 1;

	rng_state = seed;
	path_in_tmp(dpath, sizeof(dpath), "s.data");
	path_in_tmp(ipath, sizeof(ipath), "s.index");
	ret = obd_rw_create(&l, dpath, ipath, vsize, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", false, &err);
	for (i = 0; !ret && i < 200; i++) {
		u64 len = rnd_in(1, i == 0 ? 12288 : 256) * 512, off;

		off = rnd_in(0, (vsize - len) / 512) * 512;
		if (rnd() % 4) {
			u64 j;

			for (j = 0; j < len; j++)
				buf[j] = (u8)rnd();
			ret = obd_rw_write(&l, buf, len, off, &err);
			memcpy(model + off, buf, len);
		} else {
			ret = obd_rw_discard(&l, off, len, &err);
			memset(model + off, 0, len);
		}
		/* Reopen now and then: the index must replay from the file. */
		if (!ret && i % 50 == 49) {
			ret = obd_rw_close(&l, &err);
			if (!ret)
				ret = obd_rw_open(&l, dpath, ipath, &err);
		}
	}
	tap_ok(ret == 0, "RW pair: 200 random writes/discards with reopens (seed %llu)",
	       (unsigned long long)seed);
	if (ret) {
		tap_diag("%s", err.msg);
		goto out;
	}
	ret = obd_rw_maps(&l, &before, &nb, &err);
	ret = ret ? ret : obd_rw_seal(&l, &err);
	tap_ok(ret == 0, "seal in place");
	if (ret) {
		tap_diag("%s", err.msg);
		goto out;
	}
	ret = obd_file_io_open(&f, dpath, &err);
	if (!ret) {
		ret = obd_lsmt_open_ro(&f.io, &li, &after, &na, &err);
		if (ret)
			tap_diag("%s", err.msg);
		tap_ok(ret == 0 && li.kind == OBD_LSMT_SEALED && li.header_flags == 3 &&
		       li.trailer_flags == 6 && li.index_size == nb &&
		       !strcmp((char *)li.parent_uuid, "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE"),
		       "sealed file opens read-only: kind SEALED, index_size = real count, parent uppercase");
		tap_ok(na == nb && maps_equal(before, after, na), "sealed index == RW index (%llu maps)",
		       (unsigned long long)na);
		ok = !read_through(&f.io, after, na, vsize, got) && !memcmp(got, model, vsize);
		tap_ok(ok, "sealed file content == model");
		obd_file_io_close(&f);
	} else {
		tap_diag("%s", err.msg);
	}
out:
	obd_free(before);
	obd_free(after);
	free(model);
	free(got);
	free(buf);
}

static void test_sparse(u64 seed)
{
	const u64 vsize = 16ULL << 20;
	char dpath[300];
	struct obd_rw_layer l;
	struct obd_err err = { "" };
	struct obd_map *maps = NULL;
	u64 n = 0, i;
	u8 *model = calloc(1, vsize), *got = malloc(vsize), *buf = malloc(1 << 20);
	struct obd_file_io f;
	int ret, ok = 1;

	rng_state = seed;
	path_in_tmp(dpath, sizeof(dpath), "sp.data");
	ret = obd_rw_create(&l, dpath, NULL, vsize, NULL, true, &err);
	for (i = 0; !ret && i < 40; i++) {
		u64 len = rnd_in(1, 256) * 4096, off = rnd_in(0, (vsize - len) / 4096) * 4096, j;

		for (j = 0; j < len; j++)
			buf[j] = (u8)(rnd() | 1);
		ret = obd_rw_write(&l, buf, len, off, &err);
		memcpy(model + off, buf, len);
	}
	/* A 9 MiB extent: split at 16383 sectors. */
	memset(buf, 0x77, 1 << 20);
	for (i = 0; !ret && i < 9; i++) {
		ret = obd_rw_write(&l, buf, 1 << 20, (4 + i) << 20, &err);
		memset(model + ((4 + i) << 20), 0x77, 1 << 20);
	}
	if (!ret) {
		ret = obd_rw_discard(&l, 1 << 20, 1 << 20, &err);
		memset(model + (1 << 20), 0, 1 << 20);
	}
	if (!ret)
		ret = obd_rw_close(&l, &err);
	if (!ret)
		ret = obd_rw_open(&l, dpath, NULL, &err);
	if (!ret)
		ret = obd_rw_maps(&l, &maps, &n, &err);
	tap_ok(ret == 0 && l.sparse, "sparse RW layer: writes, punch hole, reopen, maps (%llu)",
	       (unsigned long long)n);
	if (ret) {
		tap_diag("%s", err.msg);
		goto out;
	}
	for (i = 0; i < n; i++)
		if (maps[i].length == 0 || maps[i].length > 16383 || maps[i].moffset != maps[i].offset + 8 ||
		    (i && obd_map_end(&maps[i - 1]) > maps[i].offset))
			ok = 0;
	tap_ok(ok, "sparse maps: moffset = offset + 8, lengths <= 16383, sorted");
	ret = obd_file_io_open(&f, dpath, &err);
	ok = !ret && !read_through(&f.io, maps, n, vsize, got) && !memcmp(got, model, vsize);
	tap_ok(ok, "sparse layer content through its maps == model");
	if (!ret)
		obd_file_io_close(&f);
	obd_rw_close(&l, &err);
out:
	obd_free(maps);
	free(model);
	free(got);
	free(buf);
}

/* ---- 7. commit of a sealed file: same bytes as committing the RW pair --- */

struct fd_src {
	int fd;
};

static int fd_read(void *ctx, u8 tag, void *buf, size_t len, u64 off)
{
	struct fd_src *s = ctx;

	return pread(s->fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -EIO;
}

static void test_commit_sealed(void)
{
	static const char tag[] = "oracle layer1";
	struct obd_commit_opts o = {
		.uuid = "11111111-1111-4111-8111-111111111111",
		.user_tag = tag, .user_tag_len = sizeof(tag) - 1,
	};
	char dpath[300], ipath[300];
	struct obd_rw_layer l;
	struct obd_err err = { "" };
	struct membuf mb = { 0 };
	struct obd_file_io f;
	struct obd_lsmt_info li;
	struct obd_map *maps = NULL;
	struct fd_src src;
	size_t reflen = 0;
	u8 *ref = slurp(REF "l1.commit", &reflen);
	u64 n = 0;
	int ret;

	path_in_tmp(dpath, sizeof(dpath), "l1s.data");
	path_in_tmp(ipath, sizeof(ipath), "l1s.index");
	ret = obd_rw_create(&l, dpath, ipath, 64ULL << 20, NULL, false, &err);
	ret = ret ? ret : apply_ops(&l, REF "l1.ops", NULL, &err);
	ret = ret ? ret : obd_rw_seal(&l, &err);
	ret = ret ? ret : obd_file_io_open(&f, dpath, &err);
	if (!ret) {
		ret = obd_lsmt_open_ro(&f.io, &li, &maps, &n, &err);
		src.fd = f.fd;
		o.parent_uuid = (const char *)li.parent_uuid;
		o.vsize = li.virtual_size;
		ret = ret ? ret : obd_lsmt_commit(maps, n, &o, fd_read, &src, mem_sink, &mb, NULL, &err);
		obd_file_io_close(&f);
	}
	if (ret)
		tap_diag("%s", err.msg);
	tap_ok(ret == 0 && ref && mb.n == reflen && !memcmp(mb.p, ref, reflen),
	       "commit of the sealed l1 byte-identical to reference l1.commit");
	o.user_tag_len = 257;
	tap_ok(obd_lsmt_commit(NULL, 0, &o, NULL, NULL, mem_sink, &mb, NULL, &err) == -ENOBUFS,
	       "commit: user tag of 257 bytes rejected (%s)", err.msg);
	o.user_tag_len = 0;
	o.uuid = "not-a-uuid";
	tap_ok(obd_lsmt_commit(NULL, 0, &o, NULL, NULL, mem_sink, &mb, NULL, &err) == -EINVAL,
	       "commit: malformed uuid rejected (%s)", err.msg);
	obd_free(maps);
	free(mb.p);
	free(ref);
}

/* ---- 8. malformed files ------------------------------------------------- */

static u8 *l1;
static size_t l1_len;

static void put_rec(u8 *f, u64 i, u64 off, u32 len, u64 mo, int z)
{
	struct obd_map m = { .offset = off, .length = len, .moffset = mo, .zeroed = (u8)z };
	u64 ioff = obd_get_le64(f + l1_len - 4096 + 32);

	obd_map_encode(&m, (struct obd_lsmt_mapping *)(f + ioff + 16 * i));
}

static void expect_bad(const char *what, void (*mutate)(u8 *f), size_t len, const char *needle)
{
	u8 *f = malloc(l1_len);
	struct obd_mem_io mio;
	struct obd_err err = { "" };
	struct obd_lsmt_info li;
	struct obd_map *maps = NULL;
	u64 n = 0;
	int ret;

	memcpy(f, l1, l1_len);
	mutate(f);
	obd_mem_io_init(&mio, f, len ? len : l1_len, "bad.commit");
	ret = obd_lsmt_open_ro(&mio.io, &li, &maps, &n, &err);
	tap_ok(ret == -EFSCORRUPTED && strstr(err.msg, "bad.commit") && strstr(err.msg, needle),
	       "rejected: %s -> \"%s\"", what, err.msg);
	obd_free(maps);
	free(f);
}

#define TR(f) ((f) + l1_len - 4096)
static void m_magic0(u8 *f) { f[0] ^= 1; }
static void m_magic1(u8 *f) { f[20] ^= 1; }
static void m_t_magic0(u8 *f) { TR(f)[3] ^= 1; }
static void m_hdr_bit(u8 *f) { f[28] &= ~1u; }
static void m_hdr_data(u8 *f) { f[28] = 0x05; }
static void m_tr_hdr_bit(u8 *f) { TR(f)[28] |= 1; }
static void m_tr_data(u8 *f) { TR(f)[28] = 0x04; }
static void m_sealed(u8 *f) { TR(f)[28] = 0x02; }
static void m_unknown(u8 *f) { TR(f)[28] = 0x46; }
static void m_unknown_hdr(u8 *f) { f[31] = 0x80; }
static void m_isize_limit(u8 *f) { obd_put_le64(TR(f) + 40, OBD_LSMT_MAX_RO_INDEX + 1); }
static void m_irange(u8 *f) { obd_put_le64(TR(f) + 40, 257); }
static void m_ioff_low(u8 *f) { obd_put_le64(TR(f) + 32, 512); }
static void m_ioff_high(u8 *f) { obd_put_le64(TR(f) + 32, l1_len); }
static void m_unsorted(u8 *f) { put_rec(f, 2, 1000, 8, 8, 0); }
static void m_overlap(u8 *f) { put_rec(f, 2, 4000, 200, 8, 0); }
static void m_mo_low(u8 *f) { put_rec(f, 0, 0, 128, 7, 0); }
static void m_mo_high(u8 *f) { put_rec(f, 6, 130944, 128, 1682944 / 512 - 127, 0); }
static void m_mo_zero(u8 *f) { put_rec(f, 4, 16512, 64, 1682944 / 512 + 1, 1); }
static void m_len0(u8 *f) { put_rec(f, 3, 16384, 0, 2199, 0); }
static void m_none(u8 *f) { (void)f; }

static void test_malformed(void)
{
	struct obd_mem_io mio;
	struct obd_err err = { "" };
	struct obd_lsmt_info li;
	struct obd_map *maps = NULL;
	u64 n = 0;
	u8 *f;

	l1 = slurp(REF "l1.commit", &l1_len);
	if (!l1) {
		tap_ok(0, "read l1.commit");
		return;
	}
	expect_bad("header magic0", m_magic0, 0, "header magic0");
	expect_bad("header magic1", m_magic1, 0, "header magic1: got 657e63d2944408");
	expect_bad("trailer magic0", m_t_magic0, 0, "trailer magic0");
	expect_bad("header bit clear in header", m_hdr_bit, 0, "header bit 1");
	expect_bad("index-file header (no data bit)", m_hdr_data, 0, "data bit");
	expect_bad("header bit set in trailer", m_tr_hdr_bit, 0, "header bit 0");
	expect_bad("trailer without data bit", m_tr_data, 0, "data and sealed");
	expect_bad("trailer without sealed bit", m_sealed, 0, "data and sealed");
	expect_bad("unknown trailer flag 0x40", m_unknown, 0, "flags: got 0x46");
	expect_bad("unknown header flag 0x80000000", m_unknown_hdr, 0, "flags: got 0x80000007");
	expect_bad("index_size over 1000000", m_isize_limit, 0, "index_size: got 1000001");
	expect_bad("index range past trailer", m_irange, 0, "index_offset");
	expect_bad("index_offset inside header", m_ioff_low, 0, "index_offset: got 512");
	expect_bad("index_offset past trailer", m_ioff_high, 0, "index_offset");
	expect_bad("unsorted records", m_unsorted, 0, "record 2 offset: got 1000");
	expect_bad("overlapping records", m_overlap, 0, "overlaps");
	expect_bad("moffset below 8", m_mo_low, 0, "record 0 moffset: got 7");
	expect_bad("moffset+length past index", m_mo_high, 0, "record 6 moffset");
	expect_bad("zeroed moffset past index", m_mo_zero, 0, "record 4 moffset");
	expect_bad("length 0", m_len0, 0, "record 3 length: got 0");
	expect_bad("truncated file (8191 bytes)", m_none, 8191, "file size: got 8191");

	/* Padding records in the middle are skipped; tags are forced to 0. */
	f = malloc(l1_len);
	memcpy(f, l1, l1_len);
	{
		u64 ioff = obd_get_le64(f + l1_len - 4096 + 32);
		u8 tmp[16];

		memcpy(tmp, f + ioff + 16 * 3, 16);
		memmove(f + ioff + 16 * 4, f + ioff + 16 * 3, 16 * 4);
		memset(f + ioff + 16 * 3, 0, 16);
		obd_put_le64(f + ioff + 16 * 3, OBD_MAP_INVALID_OFFSET);
		f[ioff + 16 * 4 + 15] = 0x7f;
	}
	obd_mem_io_init(&mio, f, l1_len, "pad.commit");
	tap_ok(obd_lsmt_open_ro(&mio.io, &li, &maps, &n, &err) == 0 && n == 7 &&
	       maps_equal(maps, l1_want, 7), "padding record mid-index skipped, on-disk tag 0x7f forced to 0");
	obd_free(maps);
	free(f);
	/* l1 stays for test_warp */
}

/* ---- 9. RW index file: malformed records ------------------------------- */

static void test_rw_index_errors(void)
{
	char dpath[300], ipath[300];
	struct obd_rw_layer l;
	struct obd_err err = { "" };
	struct obd_map m = { .offset = 0, .length = 8, .moffset = 100000, .zeroed = 0 };
	struct obd_lsmt_mapping raw;
	u8 page[512] = { 0 };
	int ret, fd;

	path_in_tmp(dpath, sizeof(dpath), "e.data");
	path_in_tmp(ipath, sizeof(ipath), "e.index");
	ret = obd_rw_create(&l, dpath, ipath, 1 << 20, NULL, false, &err);
	ret = ret ? ret : obd_rw_write(&l, page, 512, 0, &err);
	ret = ret ? ret : obd_rw_close(&l, &err);
	tap_ok(ret == 0 && obd_rw_write(&l, page, 100, 0, &err) != 0, "setup; unaligned write refused");
	fd = open(ipath, O_WRONLY | O_APPEND);
	obd_map_encode(&m, &raw);
	tap_ok(fd >= 0 && write(fd, &raw, 16) == 16, "append an out-of-range record");
	close(fd);
	ret = obd_rw_open(&l, dpath, ipath, &err);
	tap_ok(ret == -EFSCORRUPTED && strstr(err.msg, "record 1 moffset"),
	       "RW open rejects moffset past the data file: \"%s\"", err.msg);
	if (!ret)
		obd_rw_close(&l, &err);
}

/*
 * A synthetic RW index file: the header of a real one, then slots records:
 * slot k holds a record (offset k * 8, 8 sectors, moffset 8) when
 * k % every == 0 and k / every < real, else padding (or zeros if zeros).
 */
struct syn_io {
	struct obd_io io;
	u8 hdr[OBD_LSMT_HT_SPACE];
	u64 every, real;
	bool zeros;
};

static int syn_read(struct obd_io *io, void *buf, size_t len, u64 off)
{
	struct syn_io *s = (struct syn_io *)io;
	u8 *p = buf;

	while (len) {
		if (off < OBD_LSMT_HT_SPACE) {
			size_t n = OBD_LSMT_HT_SPACE - off < len ? OBD_LSMT_HT_SPACE - off : len;

			memcpy(p, s->hdr + off, n);
			p += n;
			off += n;
			len -= n;
			continue;
		}
		/* whole records only (the loader reads them so) */
		u64 k = (off - OBD_LSMT_HT_SPACE) / 16;
		struct obd_lsmt_mapping raw = { 0 };

		if (k % s->every == 0 && k / s->every < s->real) {
			struct obd_map m = { .offset = (k * 8) & ((1ULL << 40) - 1), .length = 8,
					     .moffset = 8 };

			obd_map_encode(&m, &raw);
		} else if (!s->zeros) {
			raw.w0 = cpu_to_le64(OBD_MAP_INVALID_OFFSET);
		}
		memcpy(p, &raw, 16);
		p += 16;
		off += 16;
		len -= 16;
	}
	return 0;
}

static int syn_load(struct syn_io *s, u64 slots, u64 *nmaps, u64 *nrecs, struct obd_err *err)
{
	struct obd_map *maps = NULL;
	int ret;

	s->io.read = syn_read;
	s->io.size = OBD_LSMT_HT_SPACE + slots * 16;
	s->io.name = "syn.index";
	ret = obd_lsmt_rw_load_index(&s->io, 2 * OBD_LSMT_HT_SPACE, &maps, nmaps, nrecs, err);
	obd_free(maps);
	return ret;
}

/*
 * The loader's cap counts real records, not padding: an index mostly
 * padding (a block per flush, as written before) loads; one with more
 * real records than OBD_LSMT_RW_MAX_RECORDS is refused with a message
 * before anything that size is allocated. Zeros (a torn or preallocated
 * block) are skipped like padding.
 */
static void test_rw_index_cap(void)
{
	char dpath[300], ipath[300];
	struct obd_rw_layer l;
	struct obd_err err = { "" };
	struct syn_io *s = calloc(1, sizeof(*s));
	u64 nmaps = 0, nrecs = 0;
	int ret, fd;

	path_in_tmp(dpath, sizeof(dpath), "cap.data");
	path_in_tmp(ipath, sizeof(ipath), "cap.index");
	ret = s ? obd_rw_create(&l, dpath, ipath, 1 << 20, NULL, false, &err) : -ENOMEM;
	ret = ret ? ret : obd_rw_close(&l, &err);
	fd = ret ? -1 : open(ipath, O_RDONLY);
	tap_ok(fd >= 0 && read(fd, s->hdr, sizeof(s->hdr)) == (ssize_t)sizeof(s->hdr),
	       "cap: a real index header");
	if (fd >= 0)
		close(fd);
	if (fd < 0) {
		free(s);
		return;
	}
	/* 20M slots, one real record in 20000 (1000 records), the rest padding */
	s->every = 20000;
	s->real = 1000;
	ret = syn_load(s, 20000000, &nmaps, &nrecs, &err);
	tap_ok(ret == 0 && nrecs == 1000 && nmaps == 1000,
	       "cap: 20M slots of which 1000 records load (%llu records, %llu maps) %s",
	       (unsigned long long)nrecs, (unsigned long long)nmaps, err.msg);
	/* the same with zeros for padding */
	s->zeros = true;
	ret = syn_load(s, 20000000, &nmaps, &nrecs, &err);
	tap_ok(ret == 0 && nrecs == 1000 && nmaps == 1000, "cap: zero records skipped as padding %s",
	       err.msg);
	/* a torn rewrite of a block: records, a sector of old padding, records, zeros */
	s->zeros = false;
	s->every = 1;
	s->real = 64;
	ret = syn_load(s, 96, &nmaps, &nrecs, &err);
	tap_ok(ret == 0 && nrecs == 64, "cap: a block of 64 records then padding %s", err.msg);
	/* exactly the cap loads (not tried: 400 MB); one more is refused at once */
	s->every = 1;
	s->real = OBD_LSMT_RW_MAX_RECORDS + 1;
	err.msg[0] = 0;
	ret = syn_load(s, OBD_LSMT_RW_MAX_RECORDS + 1, &nmaps, &nrecs, &err);
	tap_ok(ret == -EFBIG && strstr(err.msg, "more than 8388608 records"),
	       "cap: %llu records refused: \"%s\"",
	       (unsigned long long)OBD_LSMT_RW_MAX_RECORDS + 1, err.msg);
	free(s);
}

/* ---- 9. warp layers (TurboOCI meta): tags kept ------------------------- */

static void put_tag(u8 *f, u64 i, u64 off, u32 len, u64 mo, int z, u8 tag)
{
	struct obd_map m = { .offset = off, .length = len, .moffset = mo, .zeroed = (u8)z,
			     .tag = tag };
	u64 ioff = obd_get_le64(f + l1_len - 4096 + 32);

	obd_map_encode(&m, (struct obd_lsmt_mapping *)(f + ioff + 16 * i));
}

/* l1.commit with l1_want's records, record i tagged tags[i] (moffset mo[i] if tagged 1). */
static int warp_open(const u8 *tags, const u64 *mo, u64 target_size, struct obd_map **maps,
		     u64 *n, struct obd_err *err)
{
	u8 *f = malloc(l1_len);
	struct obd_mem_io mio;
	struct obd_lsmt_info li;
	int ret;

	memcpy(f, l1, l1_len);
	for (int i = 0; i < 7; i++) {
		const struct obd_map *w = &l1_want[i];

		put_tag(f, (u64)i, w->offset, w->length, mo && mo[i] ? mo[i] : w->moffset,
			w->zeroed, tags[i]);
	}
	obd_mem_io_init(&mio, f, l1_len, "warp.commit");
	ret = obd_lsmt_open_warp(&mio.io, &li, maps, n, target_size, err);
	free(f);
	return ret;
}

static void test_warp(void)
{
	static const u8 zero[7], tags[7] = { 0, 1, 0, 1, 1, 0, 1 }, high[7] = { 5, 6, 5, 6, 6, 5, 6 };
	static const u8 bad[7] = { 0, 1, 2, 0, 0, 0, 0 };
	/* target sectors: record 1 at 0 (below the LSMT header: fine in a target), 3 at 10000 */
	static const u64 mo[7] = { 0, 0, 0, 10000, 0, 0, 20000 };
	struct obd_err err = { "" };
	struct obd_map *maps = NULL;
	u64 n = 0, tsize = 20128ULL * 512;
	int ret, ok;

	if (!l1)
		return;
	ret = warp_open(zero, NULL, 0, &maps, &n, &err);
	tap_ok(ret == 0 && n == 7 && maps_equal(maps, l1_want, 7),
	       "warp: all tags 0 reads as the plain layer (%s)", err.msg);
	obd_free(maps);

	ret = warp_open(tags, mo, tsize, &maps, &n, &err);
	ok = ret == 0 && n == 7;
	for (u64 i = 0; ok && i < n; i++) {
		bool want_t = tags[i] && !l1_want[i].zeroed;

		ok = maps[i].tag == 0 && maps[i].target == want_t &&
		     maps[i].moffset == (tags[i] && mo[i] ? mo[i] : l1_want[i].moffset) &&
		     maps[i].offset == l1_want[i].offset;
	}
	tap_ok(ok, "warp: tag 1 -> target (moffset in the target, even below sector 8), "
	       "tag 0 -> meta, a zeroed tag-1 record stays zeroed (%s)", err.msg);
	obd_free(maps);
	maps = NULL;

	ret = warp_open(high, mo, tsize, &maps, &n, &err);
	ok = ret == 0 && n == 7;
	for (u64 i = 0; ok && i < n; i++)
		ok = maps[i].target == (tags[i] && !l1_want[i].zeroed);
	tap_ok(ok, "warp: tags 5/6 are normalised by the smallest to 0/1 (%s)", err.msg);
	obd_free(maps);
	maps = NULL;

	ret = warp_open(bad, NULL, tsize, &maps, &n, &err);
	tap_ok(ret == -EFSCORRUPTED && strstr(err.msg, "warp.commit") &&
	       strstr(err.msg, "record 2 tag: got 2") && !maps,
	       "warp: a tag other than 0/1 is refused: %s", err.msg);

	ret = warp_open(tags, mo, tsize - 512, &maps, &n, &err);
	tap_ok(ret == -EFSCORRUPTED && strstr(err.msg, "record 6 (tag 1, target) moffset: got 20000+128") &&
	       strstr(err.msg, "<= 20127"), "warp: a target record past the target is refused: %s",
	       err.msg);
	ret = warp_open(tags, mo, 511, &maps, &n, &err);
	tap_ok(ret == -EFSCORRUPTED && strstr(err.msg, "expected end <= 0"),
	       "warp: a target of less than one sector holds no record: %s", err.msg);

	ret = warp_open(tags, NULL, tsize, &maps, &n, &err);
	tap_ok(ret == 0, "warp: meta moffsets may also be target sectors when they fit (%s)",
	       err.msg);
	obd_free(maps);
	maps = NULL;
}

static void test_warp_merge(void)
{
	/* bottom: plain; top: warp, tag-1 maps over part of the bottom */
	static const struct obd_map bottom[] = { { 0, 100, 64, 0, 0, 0 } };
	static const struct obd_map top[] = {
		{ 16, 0, 8, 0, 0, 1 },		/* target sectors 0..7 */
		{ 24, 300, 8, 0, 0, 0 },	/* meta */
		{ 32, 40, 8, 0, 0, 1 },		/* target sectors 40..47 */
	};
	const struct obd_map *layers[2] = { bottom, top };
	const u64 counts[2] = { 1, 3 };
	struct obd_index idx;
	struct obd_err err = { "" };
	int ret, ok;

	ret = obd_index_merge(layers, counts, 2, &idx, &err);
	ok = ret == 0 && idx.n == 5 &&
	     idx.maps[0].tag == 0 && !idx.maps[0].target && idx.maps[0].length == 16 &&
	     idx.maps[1].tag == 1 && idx.maps[1].target && idx.maps[1].moffset == 0 &&
	     idx.maps[2].tag == 1 && !idx.maps[2].target && idx.maps[2].moffset == 300 &&
	     idx.maps[3].tag == 1 && idx.maps[3].target && idx.maps[3].moffset == 40 &&
	     idx.maps[4].tag == 0 && !idx.maps[4].target && idx.maps[4].offset == 40 &&
	     idx.maps[4].moffset == 140;
	tap_ok(ok, "warp merge: each piece keeps its source's target flag (n %llu, %s)",
	       (unsigned long long)idx.n, err.msg);
	if (!ret)
		obd_index_free(&idx);
}

int main(void)
{
	const char *s = getenv("OBD_SEED");
	u64 seed = s ? strtoull(s, NULL, 0) : (u64)time(NULL);
	char cmd[300];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_lsmt.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	printf("# seed %llu (OBD_SEED=%llu to replay)\n", (unsigned long long)seed,
	       (unsigned long long)seed);
	if (!seed)
		seed = 1;
	test_map_encoding();
	test_appendix_a();
	test_commit_index_limit();
	test_open_l1();
	test_commit_l1();
	test_commit_sealed();
	test_replay_random(seed);
	test_replay_big();
	test_seal_roundtrip(seed);
	test_sparse(seed);
	test_malformed();
	test_warp();
	test_warp_merge();
	free(l1);
	test_rw_index_errors();
	test_rw_index_cap();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", tmpdir);
	return tap_done();
}
