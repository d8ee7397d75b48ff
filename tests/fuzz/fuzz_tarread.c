// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: the bounded tar reader obd convert --turbo-oci reads
 * every layer with (lib/user/tar_read.c), over the input as the stream,
 * in reads of sizes the input's first byte picks. An entry has a known
 * type, a relative name with no empty, "." or ".." component, a link
 * exactly when it is a symlink or a hard link, data at a 512 B boundary
 * inside the stream, at most OBD_TAR_XATTR_MAX xattrs; a refusal has a
 * message; the entries' data reads back as many bytes as the size says.
 */
#include <string.h>
#include "fuzz_common.h"
#include "tar_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct src {
	const u8 *p;
	size_t n, off, step;
};

static ssize_t src_read(void *ctx, void *buf, size_t len)
{
	struct src *s = ctx;
	size_t c = s->n - s->off;

	if (c > len)
		c = len;
	if (c > s->step)
		c = s->step;
	memcpy(buf, s->p + s->off, c);
	s->off += c;
	return (ssize_t)c;
}

static FUZZ_NOCOV void check_name(const char *p, bool root_ok)
{
	const char *c = p;

	FUZZ_CHECK(*p || root_ok, "an empty name");
	FUZZ_CHECK(p[0] != '/', "name '%s' is absolute", p);
	while (*c) {
		const char *e = strchrnul(c, '/');
		size_t n = (size_t)(e - c);

		FUZZ_CHECK(n && !(n == 1 && c[0] == '.') && !(n == 2 && !memcmp(c, "..", 2)),
			   "name '%s' has an empty, '.' or '..' component", p);
		c = *e ? e + 1 : e;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static u8 buf[8192];
	struct src s;
	struct obd_tar_reader r;
	struct obd_tar_entry e;
	struct obd_err err;
	int rc;

	if (size < 1)
		return 0;
	s = (struct src){ data + 1, size - 1, 0, (size_t)(data[0] % 16) * 97 + 1 };
	memset(&err, 0, sizeof(err));
	obd_tar_reader_init(&r, src_read, &s, "fuzz");
	while ((rc = obd_tar_next(&r, &e, &err)) == 1) {
		u64 got = 0;
		ssize_t n = 0;

		FUZZ_CHECK(strchr("0123456", e.type), "type '%c'", e.type);
		check_name(e.name, e.type == '5');
		FUZZ_CHECK(!e.link == !(e.type == '1' || e.type == '2'), "link on type '%c'", e.type);
		if (e.type == '1')
			check_name(e.link, false);
		FUZZ_CHECK(e.data_off % 512 == 0 && e.data_off <= size - 1, "data offset %llu",
			   (unsigned long long)e.data_off);
		FUZZ_CHECK(e.nxattrs <= OBD_TAR_XATTR_MAX, "%u xattrs", e.nxattrs);
		FUZZ_CHECK(e.type == '0' || !e.size, "size on type '%c'", e.type);
		/* read half the data (the rest is skipped by the next call) */
		while (got < e.size / 2 && (n = obd_tar_read(&r, buf, sizeof(buf), &err)) > 0)
			got += (u64)n;
		obd_tar_entry_free(&e);
		if (n < 0) {
			rc = (int)n;
			break;
		}
	}
	fuzz_check_err(rc, &err, "obd_tar_next");
	obd_tar_reader_free(&r);
	return 0;
}
