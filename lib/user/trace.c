// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * The trace prefetch file of the reference (spec 6.7) and the text of the
 * module's trace and prefetch messages: one codec, used by obd trace and
 * obd attach. See obd_tracefile.h for the layout.
 */
#include "obd_tracefile.h"

u64 obd_trace_file_size(u64 n)
{
	if (n > (~0ULL - OBD_TRACE_HDR_SIZE) / OBD_TRACE_REC_SIZE)
		return 0;
	return OBD_TRACE_HDR_SIZE + n * OBD_TRACE_REC_SIZE;
}

bool obd_trace_has_magic(const void *buf, size_t len)
{
	return len >= OBD_TRACE_HDR_SIZE && obd_get_le32(buf) == OBD_TRACE_MAGIC;
}

void obd_trace_get(const void *buf, u64 i, struct obd_trace_rec *r)
{
	const u8 *p = (const u8 *)buf + OBD_TRACE_HDR_SIZE + i * OBD_TRACE_REC_SIZE;

	r->op = p[0];
	r->layer = obd_get_le32(p + 4);
	r->count = obd_get_le64(p + 8);
	r->offset = obd_get_le64(p + 16);
}

/* The per-record rules, shared by the decoder and the encoder. */
static int obd_trace_rec_check(const struct obd_trace_rec *r, u64 i, const char *name,
			       int code, struct obd_err *err)
{
	if (r->op != OBD_TRACE_OP_READ && r->op != OBD_TRACE_OP_WRITE)
		return obd_errf(err, code, "%s: trace record %llu: op got 0x%02x, expected 'R' or 'W'",
				name, (unsigned long long)i, r->op);
	if (r->layer >= OBD_TRACE_LAYERS)
		return obd_errf(err, code, "%s: trace record %llu: layer_index got %u, expected < %u",
				name, (unsigned long long)i, r->layer, OBD_TRACE_LAYERS);
	if (!r->count || r->count > OBD_TRACE_COUNT_MAX)
		return obd_errf(err, code,
				"%s: trace record %llu: count got %llu, expected 1..%llu",
				name, (unsigned long long)i, (unsigned long long)r->count,
				(unsigned long long)OBD_TRACE_COUNT_MAX);
	if (r->offset + r->count < r->offset)
		return obd_errf(err, code,
				"%s: trace record %llu: offset got %llu, offset + count (%llu) overflows",
				name, (unsigned long long)i, (unsigned long long)r->offset,
				(unsigned long long)r->count);
	return 0;
}

static int obd_trace_check_hdr(const u8 *buf, u64 len, const char *name, u64 *nrecs,
			       struct obd_err *err)
{
	u64 dsize;

	if (len < OBD_TRACE_HDR_SIZE)
		return obd_errf(err, -EFSCORRUPTED,
				"%s: trace file size: got %llu, expected >= %u (a header)",
				name, (unsigned long long)len, OBD_TRACE_HDR_SIZE);
	if (obd_get_le32(buf) != OBD_TRACE_MAGIC)
		return obd_errf(err, -EFSCORRUPTED, "%s: trace header magic: got 0x%08x, expected 0x%08x",
				name, obd_get_le32(buf), OBD_TRACE_MAGIC);
	dsize = obd_get_le64(buf + 8);
	if (dsize != len - OBD_TRACE_HDR_SIZE)
		return obd_errf(err, -EFSCORRUPTED,
				"%s: trace header data_size: got %llu, expected %llu (file size - 24)",
				name, (unsigned long long)dsize,
				(unsigned long long)(len - OBD_TRACE_HDR_SIZE));
	if (dsize % OBD_TRACE_REC_SIZE)
		return obd_errf(err, -EFSCORRUPTED,
				"%s: trace header data_size: got %llu, expected a multiple of %u",
				name, (unsigned long long)dsize, OBD_TRACE_REC_SIZE);
	*nrecs = dsize / OBD_TRACE_REC_SIZE;
	return 0;
}

int obd_trace_check(const void *buf, u64 len, const char *name, u64 *nrecs,
		    struct obd_err *err)
{
	const u8 *p = buf;
	struct obd_trace_rec r;
	u64 n = 0, i;
	u32 crc;
	int rc;

	rc = obd_trace_check_hdr(p, len, name, &n, err);
	if (rc)
		return rc;
	crc = obd_crc32c(0, p + OBD_TRACE_HDR_SIZE, (size_t)(len - OBD_TRACE_HDR_SIZE));
	if (crc != obd_get_le32(p + 16))
		return obd_errf(err, -EFSBADCRC,
				"%s: trace header checksum: got 0x%08x, computed 0x%08x over %llu records",
				name, obd_get_le32(p + 16), crc, (unsigned long long)n);
	for (i = 0; i < n; i++) {
		obd_trace_get(p, i, &r);
		rc = obd_trace_rec_check(&r, i, name, -EFSCORRUPTED, err);
		if (rc)
			return rc;
	}
	*nrecs = n;
	return 0;
}

int obd_trace_encode(const struct obd_trace_rec *recs, u64 n, void *buf, u64 len,
		     const char *name, struct obd_err *err)
{
	u64 size = obd_trace_file_size(n), i;
	u8 *p = buf, *q;
	int rc;

	if (!size || len < size)
		return obd_errf(err, -EINVAL, "%s: trace of %llu records: buffer got %llu bytes, expected %llu",
				name, (unsigned long long)n, (unsigned long long)len,
				(unsigned long long)size);
	memset(p, 0, (size_t)size);
	for (i = 0; i < n; i++) {
		rc = obd_trace_rec_check(&recs[i], i, name, -EINVAL, err);
		if (rc)
			return rc;
		q = p + OBD_TRACE_HDR_SIZE + i * OBD_TRACE_REC_SIZE;
		q[0] = recs[i].op;
		obd_put_le32(q + 4, recs[i].layer);
		obd_put_le64(q + 8, recs[i].count);
		obd_put_le64(q + 16, recs[i].offset);
	}
	obd_put_le32(p, OBD_TRACE_MAGIC);
	obd_put_le64(p + 8, size - OBD_TRACE_HDR_SIZE);
	obd_put_le32(p + 16, obd_crc32c(0, p + OBD_TRACE_HDR_SIZE, (size_t)(size - OBD_TRACE_HDR_SIZE)));
	return 0;
}

/* ------------------------------------------------------------------------
 * Message text. No strtoull/sscanf: the parsers stay kernel-clean.
 * ------------------------------------------------------------------------ */

/* A decimal u64 at *p (at least one digit, no overflow); advances *p. */
static int obd_parse_u64(const char **p, u64 *out)
{
	const char *s = *p;
	u64 v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (~0ULL - (u64)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (u64)(*s - '0');
	}
	*p = s;
	*out = v;
	return 0;
}

/* " key=<u64>" at *p. */
static int obd_parse_kv(const char **p, const char *key, u64 *out)
{
	size_t kl = strlen(key);

	if (**p != ' ' || strncmp(*p + 1, key, kl) || (*p)[kl + 1] != '=')
		return -EINVAL;
	*p += kl + 2;
	return obd_parse_u64(p, out);
}

/* " path=<word>" at *p: a path without white space, or "-". */
static int obd_parse_path(const char **p, char *out, size_t cap)
{
	const char *s = *p;
	size_t n = 0;

	if (strncmp(s, " path=", 6))
		return -EINVAL;
	s += 6;
	while (s[n] && s[n] != ' ' && s[n] != '\n')
		n++;
	if (!n || n >= cap)
		return -EINVAL;
	if (n == 1 && s[0] == '-') {
		out[0] = 0;
	} else {
		memcpy(out, s, n);
		out[n] = 0;
	}
	*p = s + n;
	return 0;
}

static int obd_dump_hdr_parse(const char **p, struct obd_trace_dump_hdr *h)
{
	u64 rec;

	if (strncmp(*p, "trace", 5))
		return -EINVAL;
	*p += 5;
	if (obd_parse_kv(p, "recording", &rec) || rec > 1 ||
	    obd_parse_kv(p, "total", &h->total) || obd_parse_kv(p, "dropped", &h->dropped) ||
	    obd_parse_path(p, h->path, sizeof(h->path)) ||
	    obd_parse_kv(p, "start", &h->start) || obd_parse_kv(p, "count", &h->count))
		return -EINVAL;
	h->recording = rec;
	if (**p == '\n')
		(*p)++;
	else if (**p)
		return -EINVAL;
	return 0;
}

/* "<layer> <offset> <count>\n" */
static int obd_dump_line_parse(const char **p, struct obd_trace_rec *r)
{
	u64 layer;

	if (obd_parse_u64(p, &layer) || layer > 0xffffffffULL || **p != ' ')
		return -EINVAL;
	(*p)++;
	if (obd_parse_u64(p, &r->offset) || **p != ' ')
		return -EINVAL;
	(*p)++;
	if (obd_parse_u64(p, &r->count))
		return -EINVAL;
	if (**p == '\n')
		(*p)++;
	else if (**p)
		return -EINVAL;
	r->layer = (u32)layer;
	r->op = OBD_TRACE_OP_READ;
	return 0;
}

int obd_trace_dump_parse(const char *resp, struct obd_trace_dump_hdr *h,
			 struct obd_trace_rec *recs, u64 cap, struct obd_err *err)
{
	const char *p = resp;
	u64 i;

	memset(h, 0, sizeof(*h));
	if (obd_dump_hdr_parse(&p, h))
		return obd_errf(err, -EPROTO, "trace dump: malformed header line (expected \"trace recording=0|1 total=N dropped=N path=P start=N count=N\")");
	if (h->count > cap)
		return obd_errf(err, -EPROTO, "trace dump: count got %llu, expected <= %llu",
				(unsigned long long)h->count, (unsigned long long)cap);
	if (h->start > h->total || h->count > h->total - h->start)
		return obd_errf(err, -EPROTO, "trace dump: start %llu + count %llu past total %llu",
				(unsigned long long)h->start, (unsigned long long)h->count,
				(unsigned long long)h->total);
	for (i = 0; i < h->count; i++)
		if (obd_dump_line_parse(&p, &recs[i]))
			return obd_errf(err, -EPROTO,
					"trace dump: record line %llu of %llu malformed (expected \"LAYER OFFSET COUNT\")",
					(unsigned long long)i, (unsigned long long)h->count);
	if (*p)
		return obd_errf(err, -EPROTO, "trace dump: got more than %llu record lines",
				(unsigned long long)h->count);
	return 0;
}

int obd_prefetch_status_parse(const char *resp, struct obd_prefetch_status *st,
			      struct obd_err *err)
{
	const char *p = resp;

	if (strncmp(p, "prefetch", 8))
		goto bad;
	p += 8;
	if (obd_parse_kv(&p, "queued", &st->queued) || obd_parse_kv(&p, "running", &st->running) ||
	    obd_parse_kv(&p, "done", &st->done) || obd_parse_kv(&p, "failed", &st->failed))
		goto bad;
	if (*p == '\n')
		p++;
	if (!*p)
		return 0;
bad:
	return obd_errf(err, -EPROTO, "prefetch_status: malformed response (expected \"prefetch queued=N running=N done=N failed=N\")");
}

u64 obd_trace_plan(const struct obd_trace_rec *recs, u64 n, u32 nlayers, u64 merge_max,
		   struct obd_trace_rec *out, u64 *skipped)
{
	struct obd_trace_rec *last = NULL;
	u64 i, m = 0;

	*skipped = 0;
	for (i = 0; i < n; i++) {
		const struct obd_trace_rec *r = &recs[i];

		if (r->op != OBD_TRACE_OP_READ || r->layer >= nlayers || !r->count) {
			(*skipped)++;
			continue;
		}
		/* the kernel merges adjacent reads the same way while recording */
		if (last && last->layer == r->layer && last->offset + last->count == r->offset &&
		    last->count + r->count <= merge_max) {
			last->count += r->count;
			continue;
		}
		last = &out[m++];
		*last = *r;
	}
	return m;
}

u64 obd_prefetch_format(const struct obd_trace_rec *recs, u64 n, char *buf, size_t cap)
{
	size_t len;
	u64 i;
	int w;

	if (cap < 9)
		return 0;
	memcpy(buf, "prefetch", 9);
	len = 8;
	for (i = 0; i < n && i < OBD_PREFETCH_BATCH; i++) {
		w = snprintf(buf + len, cap - len, " %u %llu %llu", recs[i].layer,
			     (unsigned long long)recs[i].offset, (unsigned long long)recs[i].count);
		if (w < 0 || (size_t)w >= cap - len) {
			buf[len] = 0;	/* drop the partial triple */
			break;
		}
		len += (size_t)w;
	}
	return i;
}
