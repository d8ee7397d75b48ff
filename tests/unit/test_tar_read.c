// SPDX-License-Identifier: GPL-2.0-only
/*
 * The bounded tar reader (lib/user/tar_read.c): ustar, GNU long names and
 * base-256 sizes, pax records (path, linkpath, size, uid, xattrs), name
 * normalisation, data offsets, and every refusal (checksum, octal digits,
 * "..", sparse, unknown types, padding, truncation, data after the end).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obd.h"
#include "tar_read.h"
#include "tap.h"

static u8 arch[1 << 16];
static size_t alen;

struct src {
	const u8 *p;
	size_t n, off;
};

static ssize_t src_read(void *ctx, void *buf, size_t len)
{
	struct src *s = ctx;
	size_t c = s->n - s->off < len ? s->n - s->off : len;

	/* at most 700 bytes a call: short reads are part of the contract */
	if (c > 700)
		c = 700;
	memcpy(buf, s->p + s->off, c);
	s->off += c;
	return (ssize_t)c;
}

static void put_oct(u8 *f, size_t len, unsigned long long v)
{
	char tmp[32];

	snprintf(tmp, sizeof(tmp), "%0*llo", (int)len - 1, v);
	memcpy(f, tmp, len - 1);
	f[len - 1] = 0;
}

static void sum(u8 *h)
{
	unsigned int s = 0;
	int i;

	memset(h + 148, ' ', 8);
	for (i = 0; i < 512; i++)
		s += h[i];
	snprintf((char *)h + 148, 8, "%06o", s);
	h[155] = ' ';
}

/* Append a header (and size bytes of data, each byte fill). */
static u8 *hdr(const char *name, char type, unsigned long long size, const char *link, int fill)
{
	u8 *h = arch + alen;

	memset(h, 0, 512);
	snprintf((char *)h, 100, "%s", name);
	put_oct(h + 100, 8, 0644);
	put_oct(h + 108, 8, 1000);
	put_oct(h + 116, 8, 1001);
	put_oct(h + 124, 12, size);
	put_oct(h + 136, 12, 1700000000);
	h[156] = (u8)type;
	if (link)
		snprintf((char *)h + 157, 100, "%s", link);
	memcpy(h + 257, "ustar\0" "00", 8);
	sum(h);
	alen += 512;
	if (fill >= 0) {
		memset(arch + alen, fill, size);
		alen += OBD_ALIGN_UP(size, 512);
	}
	return h;
}

static void ext(char type, const char *payload)
{
	size_t n = strlen(payload);

	hdr(type == 'x' ? "././@PaxHeader" : "././@LongLink", type, n, NULL, -1);
	memcpy(arch + alen, payload, n);
	alen += OBD_ALIGN_UP(n, 512);
}

/* "LEN key=value\n" with LEN counting itself */
static char *rec(char *out, const char *kv)
{
	size_t n = strlen(kv) + 3, l;

	for (;;) {
		l = (size_t)snprintf(NULL, 0, "%zu %s\n", n, kv);
		if (l == n)
			break;
		n = l;
	}
	sprintf(out + strlen(out), "%zu %s\n", n, kv);
	return out;
}

static void end(void)
{
	alen += 1024;
}

static void reset(void)
{
	memset(arch, 0, sizeof(arch));
	alen = 0;
}

/* Read all entries; returns the count or -errno (msg in err). */
static int read_all(struct obd_tar_entry *out, int max, struct obd_err *err)
{
	struct src s = { arch, alen, 0 };
	struct obd_tar_reader r;
	struct obd_tar_entry e;
	int n = 0, rc;

	obd_tar_reader_init(&r, src_read, &s, "layer 1");
	while ((rc = obd_tar_next(&r, &e, err)) == 1) {
		if (n < max)
			out[n] = e;
		else
			obd_tar_entry_free(&e);
		n++;
	}
	obd_tar_reader_free(&r);
	if (rc < 0) {	/* the entries before the refusal are the caller's no more */
		while (n-- > 0)
			if (n < max)
				obd_tar_entry_free(&out[n]);
		return rc;
	}
	return n;
}

static void free_all(struct obd_tar_entry *e, int n)
{
	while (n-- > 0)
		obd_tar_entry_free(&e[n]);
}

static void test_good(void)
{
	struct obd_tar_entry e[8] = { 0 };
	struct obd_err err = { "" };
	char longname[300];
	int n;

	reset();
	hdr("./etc/", '5', 0, NULL, 0);
	hdr("./etc/hello", '0', 1000, NULL, 'h');
	{
		char p[256] = "";

		rec(p, "path=etc/a-very-long-name");
		rec(p, "SCHILY.xattr.user.x=v");
		rec(p, "uid=4000000");
		ext('x', p);
	}
	hdr("ignored", '0', 3, NULL, 'p');
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	ext('L', longname);
	hdr("trunc", '2', 0, "/etc/hello", 0);
	hdr("etc/link", '1', 0, "./etc/hello", 0);
	end();
	n = read_all(e, 8, &err);
	tap_ok(n == 5, "five entries (%d) %s", n, n < 0 ? err.msg : "");
	if (n != 5) {
		free_all(e, n > 8 ? 8 : n);
		return;
	}
	tap_ok(!strcmp(e[0].name, "etc") && e[0].type == '5', "'./etc/' is 'etc', a directory");
	tap_ok(!strcmp(e[1].name, "etc/hello") && e[1].size == 1000 && e[1].data_off == 1024 &&
	       e[1].mode == 0644 && e[1].uid == 1000 && e[1].gid == 1001 &&
	       e[1].mtime == 1700000000, "a file: size, data offset 1024, mode, owner, mtime");
	tap_ok(!strcmp(e[2].name, "etc/a-very-long-name") && e[2].nxattrs == 1 &&
	       !strcmp(e[2].xattrs[0].name, "user.x") && e[2].xattrs[0].len == 1 &&
	       e[2].xattrs[0].value[0] == 'v' && e[2].uid == 4000000 && e[2].size == 3,
	       "pax: path, SCHILY.xattr, uid");
	tap_ok(strlen(e[3].name) == 299 && e[3].type == '2' && !strcmp(e[3].link, "/etc/hello"),
	       "GNU long name on a symlink, target kept as stored");
	tap_ok(!strcmp(e[4].name, "etc/link") && e[4].type == '1' && !strcmp(e[4].link, "etc/hello"),
	       "a hard link, its target normalised");
	free_all(e, 5);

	reset();
	hdr("x", '0', 0, NULL, 0);
	arch[124] = 0x80;	/* base-256 size: 2 */
	memset(arch + 125, 0, 11);
	arch[135] = 2;
	sum(arch);
	memset(arch + 512, 'z', 2);
	alen = 1024;
	hdr("y", '1', 0, "x", 0);
	end();
	alen += 3 * 512;	/* zeros after the end: fine */
	n = read_all(e, 8, &err);
	tap_ok(n == 2 && e[0].size == 2 && !strcmp(e[1].link, "x"),
	       "GNU base-256 size, hard link, zeros after the end (%s)", n < 0 ? err.msg : "");
	free_all(e, n > 0 ? n : 0);
}

static void expect_bad(const char *what, const char *needle)
{
	struct obd_tar_entry e[8] = { 0 };
	struct obd_err err = { "" };
	int n = read_all(e, 8, &err);

	tap_ok(n < 0 && strstr(err.msg, needle) && strstr(err.msg, "layer 1"), "refused: %s (%s)",
	       what, err.msg);
	if (n > 0)
		free_all(e, n > 8 ? 8 : n);
}

static void test_bad(void)
{
	reset();
	hdr("a", '0', 10, NULL, 'a');
	arch[0] ^= 1;
	end();
	expect_bad("a bad checksum", "checksum");

	reset();
	hdr("a", '0', 10, NULL, 'a');
	arch[101] = '9';
	sum(arch);
	end();
	expect_bad("a mode with a 9", "not an octal number");

	reset();
	hdr("a/../../etc", '0', 1, NULL, 'a');
	end();
	expect_bad("a '..' component", "'..'");

	reset();
	hdr("s", 'S', 0, NULL, 0);
	end();
	expect_bad("a GNU sparse file", "sparse");

	reset();
	hdr("v", 'V', 0, NULL, 0);
	end();
	expect_bad("a volume header", "not supported");

	reset();
	hdr("a", '0', 10, NULL, 'a');
	arch[512 + 100] = 'x';
	end();
	expect_bad("padding that is not zeros", "padding");

	reset();
	hdr("a", '0', 100000, NULL, -1);
	alen += 1024;
	expect_bad("a size past the end of the stream", "ends inside");

	reset();
	hdr("a", '0', 0, NULL, 0);
	end();
	arch[alen + 700] = 1;
	alen += 1024;
	expect_bad("data after the end-of-archive marker", "after the end");

	reset();
	hdr("a", '0', 0, NULL, 0);
	arch[257] = 'X';
	sum(arch);
	end();
	expect_bad("no ustar magic", "magic");

	reset();
	ext('x', "40 path=x\n");
	hdr("a", '0', 0, NULL, 0);
	end();
	expect_bad("a pax record whose length lies", "pax record");

	reset();
	{
		char p[64] = "";

		ext('x', rec(p, "GNU.sparse.major=1"));
	}
	hdr("a", '0', 0, NULL, 0);
	end();
	expect_bad("a pax sparse file", "sparse");

	reset();
	hdr("d", '5', 512, NULL, 0);
	end();
	expect_bad("a directory with data", "size 512");

	reset();
	hdr("a", '0', 0, NULL, 0);
	expect_bad("no end-of-archive marker", "ends inside");

	reset();
	hdr("./", '0', 0, NULL, 0);
	end();
	expect_bad("a regular file named './' (the root)", "the root as a type '0'");
}

int main(void)
{
	test_good();
	test_bad();
	return tap_done();
}
