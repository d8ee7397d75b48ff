// SPDX-License-Identifier: GPL-2.0-only
/*
 * A bounded tar reader for OCI layers (tar_read.h): nothing in a header is
 * taken on trust, nothing is allocated beyond the limits in tar_read.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tar_read.h"

#define U64_MAX	(~0ULL)
#define S64_MAX	((s64)(U64_MAX >> 1))

static const u8 zero_block[OBD_TAR_BLOCK];

static bool all_zero(const u8 *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

void obd_tar_reader_init(struct obd_tar_reader *r, obd_tar_src_fn rd, void *ctx,
			 const char *what)
{
	memset(r, 0, sizeof(*r));
	r->rd = rd;
	r->ctx = ctx;
	r->what = what;
}

void obd_tar_reader_free(struct obd_tar_reader *r)
{
	free(r->cur);
	r->cur = NULL;
}

void obd_tar_entry_free(struct obd_tar_entry *e)
{
	unsigned int i;

	for (i = 0; i < e->nxattrs; i++) {
		free(e->xattrs[i].name);
		free(e->xattrs[i].value);
	}
	free(e->xattrs);
	free(e->name);
	free(e->link);
	memset(e, 0, sizeof(*e));
}

static const char *cur_name(const struct obd_tar_reader *r)
{
	return r->cur ? r->cur : "(a header)";
}

#define TERR(r, err, code, fmt, ...) \
	obd_errf(err, code, "%s: tar entry '%.200s' (stream offset %llu): " fmt, (r)->what, \
		 cur_name(r), (unsigned long long)(r)->pos, ##__VA_ARGS__)

/* Exactly len bytes, or -EIO at a premature end. */
static int rd_full(struct obd_tar_reader *r, void *buf, size_t len, struct obd_err *err)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = r->rd(r->ctx, (u8 *)buf + got, len - got);

		if (n < 0)
			return TERR(r, err, (int)-n, "read failed");
		if (n == 0)
			return TERR(r, err, EIO, "the stream ends inside an entry (%zu of %zu bytes): truncated, or a size that lies",
				    got, len);
		got += (size_t)n;
		r->pos += (u64)n;
	}
	return 0;
}

/* Skip n bytes; zeros says they must all be zero (padding). */
static int skip(struct obd_tar_reader *r, u64 n, bool zeros, struct obd_err *err)
{
	u8 buf[4096];
	int rc;

	while (n) {
		size_t c = n > sizeof(buf) ? sizeof(buf) : (size_t)n;

		rc = rd_full(r, buf, c, err);
		if (rc)
			return rc;
		if (zeros && !all_zero(buf, c))
			return TERR(r, err, EINVAL, "the padding after the data is not zeros");
		n -= c;
	}
	return 0;
}

/* An octal (or GNU base-256) number field. */
static int num_field(struct obd_tar_reader *r, const u8 *f, size_t len, const char *field,
		     u64 max, u64 *out, struct obd_err *err)
{
	u64 v = 0;
	size_t i = 0;

	if (f[0] & 0x80) {
		if (f[0] != 0x80)
			return TERR(r, err, EINVAL, "field %s: a negative base-256 number", field);
		for (i = 1; i < len; i++) {
			if (v >> 56)
				return TERR(r, err, EINVAL, "field %s: base-256 number too large", field);
			v = (v << 8) | f[i];
		}
	} else {
		while (i < len && f[i] == ' ')
			i++;
		for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
			if (v >> 60)
				return TERR(r, err, EINVAL, "field %s: number too large", field);
			v = v * 8 + (u64)(f[i] - '0');
		}
		for (; i < len; i++)
			if (f[i] != ' ' && f[i] != 0)
				return TERR(r, err, EINVAL, "field %s: '%.*s' is not an octal number",
					    field, (int)len, (const char *)f);
	}
	if (v > max)
		return TERR(r, err, EINVAL, "field %s: %llu, at most %llu", field,
			    (unsigned long long)v, (unsigned long long)max);
	*out = v;
	return 0;
}

static int check_sum(struct obd_tar_reader *r, const u8 *h, struct obd_err *err)
{
	u64 want;
	u32 us = 0;
	int ss = 0;
	int i, rc;

	rc = num_field(r, h + 148, 8, "chksum", 0xffffffu, &want, err);
	if (rc)
		return rc;
	for (i = 0; i < (int)OBD_TAR_BLOCK; i++) {
		u8 c = (i >= 148 && i < 156) ? ' ' : h[i];

		us += c;
		ss += (signed char)c;
	}
	if (want != us && (s64)want != ss)
		return TERR(r, err, EINVAL, "header checksum %llo, the header sums to %o",
			    (unsigned long long)want, us);
	return 0;
}

/* A fixed-size string field, NUL-terminated or full. */
static char *str_field(const u8 *f, size_t len)
{
	size_t n = strnlen((const char *)f, len);
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, f, n);
		s[n] = 0;
	}
	return s;
}

/*
 * A member name made relative to the image root: leading "/" and "./"
 * dropped, "." components and a trailing "/" removed; ".." or an empty
 * component in the middle refused. "" is the root itself.
 */
static int norm_name(struct obd_tar_reader *r, const char *in, char **out, const char *field,
		     struct obd_err *err)
{
	size_t n = strlen(in), o = 0;
	const char *p = in;
	char *s;

	if (n > OBD_TAR_NAME_MAX)
		return TERR(r, err, ENAMETOOLONG, "%s: %zu bytes, at most %u", field, n,
			    OBD_TAR_NAME_MAX);
	s = malloc(n + 1);
	if (!s)
		return TERR(r, err, ENOMEM, "out of memory");
	while (*p) {
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (l == 2 && !memcmp(p, "..", 2)) {
			free(s);
			return TERR(r, err, EINVAL, "%s '%.200s': a '..' component", field, in);
		}
		if (l && !(l == 1 && p[0] == '.')) {
			if (o)
				s[o++] = '/';
			memcpy(s + o, p, l);
			o += l;
		}
		p += l;
		while (*p == '/')
			p++;
	}
	s[o] = 0;
	*out = s;
	return 0;
}

/* The data of a special header (pax, long name): at most OBD_TAR_PAX_MAX bytes. */
static int read_special(struct obd_tar_reader *r, u64 size, char **out, struct obd_err *err)
{
	u64 padded = OBD_ALIGN_UP(size, OBD_TAR_BLOCK);
	char *buf;
	int rc;

	if (size > OBD_TAR_PAX_MAX)
		return TERR(r, err, E2BIG, "an extended header of %llu bytes, at most %u",
			    (unsigned long long)size, OBD_TAR_PAX_MAX);
	buf = malloc((size_t)padded + 1);
	if (!buf)
		return TERR(r, err, ENOMEM, "out of memory");
	rc = rd_full(r, buf, (size_t)padded, err);
	if (!rc && !all_zero((u8 *)buf + size, (size_t)(padded - size)))
		rc = TERR(r, err, EINVAL, "the padding after an extended header is not zeros");
	if (rc) {
		free(buf);
		return rc;
	}
	buf[size] = 0;
	*out = buf;
	return 0;
}

struct pax {
	char *path, *linkpath;
	bool has_size, has_uid, has_gid, has_mtime;
	u64 size, uid, gid;
	s64 mtime;
	struct obd_tar_xattr *xattrs;
	unsigned int nxattrs;
};

static void pax_free(struct pax *p)
{
	unsigned int i;

	for (i = 0; i < p->nxattrs; i++) {
		free(p->xattrs[i].name);
		free(p->xattrs[i].value);
	}
	free(p->xattrs);
	free(p->path);
	free(p->linkpath);
	memset(p, 0, sizeof(*p));
}

static int pax_num(struct obd_tar_reader *r, const char *key, const char *v, size_t vl,
		   bool frac, u64 *out, struct obd_err *err)
{
	u64 x = 0;
	size_t i = 0;

	if (!vl)
		return TERR(r, err, EINVAL, "pax %s: empty", key);
	for (; i < vl && v[i] >= '0' && v[i] <= '9'; i++) {
		if (x > (U64_MAX - 9) / 10)
			return TERR(r, err, EINVAL, "pax %s: number too large", key);
		x = x * 10 + (u64)(v[i] - '0');
	}
	if (frac && i < vl && v[i] == '.')
		for (i++; i < vl && v[i] >= '0' && v[i] <= '9'; i++)
			;
	if (i != vl || !i)
		return TERR(r, err, EINVAL, "pax %s: '%.*s' is not a number", key, (int)vl, v);
	*out = x;
	return 0;
}

static int pax_xattr(struct obd_tar_reader *r, struct pax *p, const char *name, size_t nl,
		     const char *v, size_t vl, struct obd_err *err)
{
	struct obd_tar_xattr *x;

	if (!nl || nl > 255 || memchr(name, 0, nl))
		return TERR(r, err, EINVAL, "pax SCHILY.xattr: a name of %zu bytes", nl);
	if (p->nxattrs >= OBD_TAR_XATTR_MAX)
		return TERR(r, err, E2BIG, "more than %u xattrs", OBD_TAR_XATTR_MAX);
	x = realloc(p->xattrs, (p->nxattrs + 1) * sizeof(*x));
	if (!x)
		return TERR(r, err, ENOMEM, "out of memory");
	p->xattrs = x;
	x = &p->xattrs[p->nxattrs];
	x->name = strndup(name, nl);
	x->value = malloc(vl ? vl : 1);
	x->len = vl;
	if (!x->name || !x->value) {
		free(x->name);
		free(x->value);
		return TERR(r, err, ENOMEM, "out of memory");
	}
	memcpy(x->value, v, vl);
	p->nxattrs++;
	return 0;
}

static int pax_str(struct obd_tar_reader *r, char **dst, const char *v, size_t vl,
		   const char *key, struct obd_err *err)
{
	if (memchr(v, 0, vl))
		return TERR(r, err, EINVAL, "pax %s: a NUL byte in it", key);
	free(*dst);
	*dst = strndup(v, vl);
	return *dst ? 0 : TERR(r, err, ENOMEM, "out of memory");
}

/* One "LEN KEY=VALUE\n" record after another, each checked. */
static int pax_parse(struct obd_tar_reader *r, const char *buf, size_t size, bool global,
		     struct pax *p, struct obd_err *err)
{
	size_t off = 0;
	int rc = 0;

	while (!rc && off < size) {
		size_t len = 0, i = off, kl, vl;
		const char *k, *eq, *v;
		u64 x;

		while (i < size && buf[i] >= '0' && buf[i] <= '9' && len < size)
			len = len * 10 + (size_t)(buf[i++] - '0');
		if (i == off || i >= size || buf[i] != ' ' || len > size - off ||
		    len < i - off + 3 || buf[off + len - 1] != '\n')
			return TERR(r, err, EINVAL, "a malformed pax record at byte %zu", off);
		k = buf + i + 1;
		eq = memchr(k, '=', (size_t)(buf + off + len - 1 - k));
		if (!eq || eq == k)
			return TERR(r, err, EINVAL, "a pax record without KEY= at byte %zu", off);
		kl = (size_t)(eq - k);
		v = eq + 1;
		vl = (size_t)(buf + off + len - 1 - v);
		off += len;
		if (global)
			continue;
#define KEY(s) (kl == sizeof(s) - 1 && !memcmp(k, s, kl))
		if (KEY("path")) {
			rc = pax_str(r, &p->path, v, vl, "path", err);
		} else if (KEY("linkpath")) {
			rc = pax_str(r, &p->linkpath, v, vl, "linkpath", err);
		} else if (KEY("size")) {
			rc = pax_num(r, "size", v, vl, false, &p->size, err);
			p->has_size = true;
		} else if (KEY("uid")) {
			rc = pax_num(r, "uid", v, vl, false, &p->uid, err);
			p->has_uid = true;
			if (!rc && p->uid > 0xffffffffu)
				rc = TERR(r, err, EINVAL, "pax uid %llu: not a 32-bit id",
					  (unsigned long long)p->uid);
		} else if (KEY("gid")) {
			rc = pax_num(r, "gid", v, vl, false, &p->gid, err);
			p->has_gid = true;
			if (!rc && p->gid > 0xffffffffu)
				rc = TERR(r, err, EINVAL, "pax gid %llu: not a 32-bit id",
					  (unsigned long long)p->gid);
		} else if (KEY("mtime")) {
			if (vl && v[0] == '-') {
				p->mtime = 0;	/* before 1970: kept as the epoch */
			} else {
				rc = pax_num(r, "mtime", v, vl, true, &x, err);
				p->mtime = (s64)(x > (u64)S64_MAX ? (u64)S64_MAX : x);
			}
			p->has_mtime = true;
		} else if (kl > 13 && !memcmp(k, "SCHILY.xattr.", 13)) {
			rc = pax_xattr(r, p, k + 13, kl - 13, v, vl, err);
		} else if (kl > 11 && !memcmp(k, "GNU.sparse.", 11)) {
			rc = TERR(r, err, EOPNOTSUPP, "a GNU sparse file (pax %.*s): not supported",
				  (int)kl, k);
		}
#undef KEY
	}
	return rc;
}

static bool is_zero(const u8 *b)
{
	return !memcmp(b, zero_block, OBD_TAR_BLOCK);
}

/* After the end-of-archive marker: only zeros may follow. */
static int check_tail(struct obd_tar_reader *r, struct obd_err *err)
{
	u8 buf[4096];

	for (;;) {
		ssize_t n = r->rd(r->ctx, buf, sizeof(buf));

		if (n < 0)
			return TERR(r, err, (int)-n, "read failed");
		if (!n)
			return 0;
		if (!all_zero(buf, (size_t)n))
			return TERR(r, err, EINVAL, "data after the end-of-archive marker");
		r->pos += (u64)n;
	}
}

static int set_cur(struct obd_tar_reader *r, const char *name)
{
	free(r->cur);
	r->cur = strdup(name);
	return r->cur ? 0 : -ENOMEM;
}

/* The header fields into e (names from pax/GNU when given). */
static int take_header(struct obd_tar_reader *r, const u8 *h, struct pax *p, char **gnu_name,
		       char **gnu_link, struct obd_tar_entry *e, struct obd_err *err)
{
	bool posix = !memcmp(h + 257, "ustar\0" "00", 8);
	char *raw = NULL, *link = NULL;
	u64 v;
	int rc;

	e->type = h[156] ? (char)h[156] : '0';
	if (e->type == '7')
		e->type = '0';	/* contiguous file: a regular file */
	if (*gnu_name) {
		raw = *gnu_name;
		*gnu_name = NULL;
	} else if (p->path) {
		raw = p->path;
		p->path = NULL;
	} else {
		char *nm = str_field(h, 100), *pre = posix ? str_field(h + 345, 155) : NULL;

		if (!nm || (posix && !pre)) {
			free(nm);
			free(pre);
			return TERR(r, err, ENOMEM, "out of memory");
		}
		if (pre && *pre) {
			if (asprintf(&raw, "%s/%s", pre, nm) < 0)
				raw = NULL;
			free(nm);
		} else {
			raw = nm;
		}
		free(pre);
		if (!raw)
			return TERR(r, err, ENOMEM, "out of memory");
	}
	rc = set_cur(r, raw);
	if (!rc)
		rc = norm_name(r, raw, &e->name, "name", err);
	free(raw);
	if (rc)
		return rc;
	if (*gnu_link) {
		link = *gnu_link;
		*gnu_link = NULL;
	} else if (p->linkpath) {
		link = p->linkpath;
		p->linkpath = NULL;
	} else {
		link = str_field(h + 157, 100);
	}
	if (!link)
		return TERR(r, err, ENOMEM, "out of memory");
	if (e->type == '1') {
		rc = norm_name(r, link, &e->link, "hard link target", err);
		free(link);
		if (!rc && !*e->link)
			rc = TERR(r, err, EINVAL, "a hard link to the root");
		if (rc)
			return rc;
	} else if (e->type == '2') {
		size_t ll = strlen(link);

		if (!ll || ll > OBD_TAR_NAME_MAX) {
			free(link);
			return TERR(r, err, EINVAL, "a symlink target of %zu bytes", ll);
		}
		e->link = link;
	} else {
		free(link);
	}
	rc = num_field(r, h + 100, 8, "mode", 07777777, &v, err);
	if (rc)
		return rc;
	e->mode = (u32)(v & 07777);
	rc = num_field(r, h + 108, 8, "uid", 0xffffffffu, &e->uid, err);
	if (!rc)
		rc = num_field(r, h + 116, 8, "gid", 0xffffffffu, &e->gid, err);
	if (!rc)
		rc = num_field(r, h + 124, 12, "size", (u64)S64_MAX, &e->size, err);
	if (!rc)
		rc = num_field(r, h + 136, 12, "mtime", (u64)S64_MAX, &v, err);
	if (rc)
		return rc;
	e->mtime = (s64)v;
	if (p->has_uid)
		e->uid = p->uid;
	if (p->has_gid)
		e->gid = p->gid;
	if (p->has_size)
		e->size = p->size;
	if (p->has_mtime)
		e->mtime = p->mtime;
	if (e->type == '3' || e->type == '4') {
		rc = num_field(r, h + 329, 8, "devmajor", 0xfff, &v, err);
		e->devmajor = (u32)v;
		if (!rc)
			rc = num_field(r, h + 337, 8, "devminor", 0xfffff, &v, err);
		e->devminor = (u32)v;
		if (rc)
			return rc;
	}
	e->xattrs = p->xattrs;
	e->nxattrs = p->nxattrs;
	p->xattrs = NULL;
	p->nxattrs = 0;
	return 0;
}

static int check_type(struct obd_tar_reader *r, struct obd_tar_entry *e, struct obd_err *err)
{
	/* "./" or "/": only a directory may name the root (its attributes) */
	if (!*e->name && e->type != '5' && strchr("0123456", e->type))
		return TERR(r, err, EINVAL, "the root as a type '%c'", e->type);
	switch (e->type) {
	case '0':
		return 0;
	case '1': case '2': case '3': case '4': case '5': case '6':
		/* no data: a size on them would be data read as headers, refused */
		if (e->size)
			return TERR(r, err, EINVAL, "type '%c' with size %llu", e->type,
				    (unsigned long long)e->size);
		return 0;
	case 'S':
		return TERR(r, err, EOPNOTSUPP, "a GNU sparse file: not supported");
	default:
		return TERR(r, err, EOPNOTSUPP, "entry type '%c' (0x%02x): not supported",
			    e->type >= 0x20 && e->type < 0x7f ? e->type : '?', (u8)e->type);
	}
}

int obd_tar_next(struct obd_tar_reader *r, struct obd_tar_entry *e, struct obd_err *err)
{
	char *gnu_name = NULL, *gnu_link = NULL, *buf = NULL;
	struct pax p = { 0 };
	u8 h[OBD_TAR_BLOCK];
	int rc;

	memset(e, 0, sizeof(*e));
	if (r->ended)
		return 0;
	rc = skip(r, r->remain, false, err);
	if (!rc)
		rc = skip(r, r->pad, true, err);
	r->remain = r->pad = 0;
	if (rc)
		return rc;
	free(r->cur);	/* messages about the headers to come name no entry */
	r->cur = NULL;
	for (;;) {
		u64 size;
		char t;

		rc = rd_full(r, h, OBD_TAR_BLOCK, err);
		if (rc)
			break;
		if (is_zero(h)) {
			rc = rd_full(r, h, OBD_TAR_BLOCK, err);
			if (!rc && !is_zero(h))
				rc = TERR(r, err, EINVAL, "one zero block, then a non-zero one");
			if (!rc && (gnu_name || gnu_link || p.path || p.nxattrs))
				rc = TERR(r, err, EINVAL, "an extended header before the end-of-archive marker");
			if (!rc)
				rc = check_tail(r, err);
			if (rc)
				break;
			r->ended = true;
			rc = 0;
			goto out;
		}
		if (memcmp(h + 257, "ustar\0" "00", 8) && memcmp(h + 257, "ustar  \0", 8)) {
			rc = TERR(r, err, EINVAL, "not a ustar, GNU or pax header (magic '%.6s')",
				  (const char *)h + 257);
			break;
		}
		rc = check_sum(r, h, err);
		if (rc)
			break;
		t = (char)h[156];
		if (t != 'x' && t != 'g' && t != 'L' && t != 'K')
			break;
		rc = num_field(r, h + 124, 12, "size", (u64)S64_MAX, &size, err);
		if (!rc)
			rc = read_special(r, size, &buf, err);
		if (rc)
			break;
		if (t == 'x' || t == 'g') {
			rc = pax_parse(r, buf, (size_t)size, t == 'g', &p, err);
			free(buf);
		} else {
			char **dst = t == 'L' ? &gnu_name : &gnu_link;

			free(*dst);
			*dst = buf;
			if (strlen(buf) > OBD_TAR_NAME_MAX)
				rc = TERR(r, err, ENAMETOOLONG, "a GNU long name of %zu bytes",
					  strlen(buf));
		}
		if (rc)
			break;
	}
	if (!rc)
		rc = take_header(r, h, &p, &gnu_name, &gnu_link, e, err);
	if (!rc)
		rc = check_type(r, e, err);
	if (!rc) {
		e->data_off = r->pos;
		r->remain = e->type == '0' ? e->size : 0;
		r->pad = OBD_ALIGN_UP(r->remain, OBD_TAR_BLOCK) - r->remain;
		rc = 1;
	}
out:
	if (rc < 0)
		obd_tar_entry_free(e);
	free(gnu_name);
	free(gnu_link);
	pax_free(&p);
	return rc;
}

ssize_t obd_tar_read(struct obd_tar_reader *r, void *buf, size_t len, struct obd_err *err)
{
	int rc;

	if (len > r->remain)
		len = (size_t)r->remain;
	if (!len)
		return 0;
	rc = rd_full(r, buf, len, err);
	if (rc)
		return rc;
	r->remain -= len;
	return (ssize_t)len;
}
