// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * The overlaybd tar wrapper (spec 4.1): a pax 'x' header whose "size="
 * record gives the payload length, then a ustar header, payload at 1536;
 * or a plain ustar header with the payload at 512. Like the reference
 * is_tar_file(), anything without magic "ustar", version "00" and a valid
 * checksum is simply not a tar.
 */
#include "obd.h"

/*
 * The header sum with the checksum field counted as spaces. *high gets the
 * number of bytes >= 0x80: historic tars summed signed chars, each such
 * byte then counting 256 less.
 */
static u32 obd_tar_sum(const struct obd_tar_header *h, u32 *high)
{
	const u8 *p = (const u8 *)h;
	u32 sum = 0, nhigh = 0;
	size_t i;

	for (i = 0; i < sizeof(*h); i++) {
		u8 c = i >= 148 && i < 156 ? ' ' : p[i];

		sum += c;
		nhigh += c >> 7;
	}
	if (high)
		*high = nhigh;
	return sum;
}

u32 obd_tar_checksum(const struct obd_tar_header *h)
{
	return obd_tar_sum(h, NULL);
}

/*
 * A tar numeric field: optional leading spaces, octal digits, then only
 * spaces or NULs. At least one digit. Returns 0 or -EFSCORRUPTED.
 */
static int obd_tar_octal(const char *f, size_t len, u64 *out)
{
	const u8 *p = (const u8 *)f;
	size_t i = 0;
	u64 v = 0;
	int digits = 0;

	while (i < len && p[i] == ' ')
		i++;
	for (; i < len && p[i] >= '0' && p[i] <= '7'; i++) {
		if (v >> 60)
			return -EFSCORRUPTED;
		v = (v << 3) | (u64)(p[i] - '0');
		digits++;
	}
	for (; i < len; i++)
		if (p[i] != ' ' && p[i] != 0)
			return -EFSCORRUPTED;
	if (!digits)
		return -EFSCORRUPTED;
	*out = v;
	return 0;
}

static bool obd_tar_header_ok(const struct obd_tar_header *h)
{
	u64 sum;
	u32 usum, high;

	if (memcmp(h->magic, "ustar", 5) || memcmp(h->version, "00", 2))
		return false;
	if (obd_tar_octal(h->chksum, sizeof(h->chksum), &sum))
		return false;
	usum = obd_tar_sum(h, &high);
	/* libtar accepts the unsigned or the historic signed-char sum */
	return sum == usum || sum == usum - 256 * high;
}

/*
 * Find "size=" in the pax records of one data block. Each record is
 * "<len> <key>=<value>\n" with len counting the whole record.
 */
static int obd_tar_pax_size(const u8 *d, u64 dlen, const char *name, bool *found,
			    u64 *size, struct obd_err *err)
{
	u64 pos = 0;

	*found = false;
	while (pos < dlen) {
		u64 rlen = 0, i = pos, v = 0;
		u64 kstart, kend;
		int nd = 0;

		while (i < dlen && d[i] >= '0' && d[i] <= '9') {
			if (rlen > 1000000)
				break;
			rlen = rlen * 10 + (d[i] - '0');
			i++;
			nd++;
		}
		if (!nd || i >= dlen || d[i] != ' ' || rlen > dlen - pos || rlen < (u64)nd + 4)
			return obd_errf(err, -EFSCORRUPTED,
					"%s: tar pax record at %llu: length %llu malformed (data %llu bytes)",
					name, (unsigned long long)pos, (unsigned long long)rlen,
					(unsigned long long)dlen);
		if (d[pos + rlen - 1] != '\n')
			return obd_errf(err, -EFSCORRUPTED,
					"%s: tar pax record at %llu: got no newline at length %llu",
					name, (unsigned long long)pos, (unsigned long long)rlen);
		kstart = i + 1;
		for (kend = kstart; kend < pos + rlen - 1 && d[kend] != '='; kend++)
			;
		if (kend >= pos + rlen - 1)
			return obd_errf(err, -EFSCORRUPTED,
					"%s: tar pax record at %llu: got no '=', expected key=value",
					name, (unsigned long long)pos);
		if (kend - kstart == 4 && !memcmp(d + kstart, "size", 4)) {
			u64 j;

			if (kend + 1 >= pos + rlen - 1)
				return obd_errf(err, -EFSCORRUPTED,
						"%s: tar pax size: got empty value", name);
			for (j = kend + 1; j < pos + rlen - 1; j++) {
				if (d[j] < '0' || d[j] > '9' || v > 100000000000000000ULL)
					return obd_errf(err, -EFSCORRUPTED,
							"%s: tar pax size: got malformed decimal value",
							name);
				v = v * 10 + (d[j] - '0');
			}
			*size = v;
			*found = true;
		}
		pos += rlen;
	}
	return 0;
}

int obd_tar_probe(struct obd_io *io, struct obd_tar_info *ti, struct obd_err *err)
{
	struct obd_tar_header *h;
	u64 size = 0, pax_len, poff;
	bool found = false;
	int ret;

	if (io->size < OBD_TAR_BLOCK)
		return 0;
	h = obd_zalloc(OBD_TAR_BLOCK);
	if (!h)
		return obd_errf(err, -ENOMEM, "%s: tar: out of memory", io->name);
	ret = obd_io_read(io, h, OBD_TAR_BLOCK, 0);
	if (ret) {
		obd_errf(err, ret, "%s: tar header: read failed (%d)", io->name, ret);
		goto out_free;
	}
	if (!obd_tar_header_ok(h)) {
		ret = 0;
		goto out_free;
	}

	if (h->typeflag == 'x') {
		poff = OBD_TAR_PAX_PAYLOAD;
		ret = obd_tar_octal(h->size, sizeof(h->size), &pax_len);
		/* Raw field bytes are not echoed: they may hold control characters. */
		if (ret) {
			ret = obd_errf(err, -EFSCORRUPTED,
				       "%s: tar pax header size: got a malformed field, expected octal",
				       io->name);
			goto out_free;
		}
		if (pax_len == 0 || pax_len > OBD_TAR_BLOCK) {
			ret = obd_errf(err, -EFSCORRUPTED,
				       "%s: tar pax header size: got %llu, expected 1..512",
				       io->name, (unsigned long long)pax_len);
			goto out_free;
		}
		if (io->size < OBD_TAR_PAX_PAYLOAD) {
			ret = obd_errf(err, -EFSCORRUPTED,
				       "%s: tar pax: file size got %llu, expected >= %u",
				       io->name, (unsigned long long)io->size,
				       OBD_TAR_PAX_PAYLOAD);
			goto out_free;
		}
		ret = obd_io_read(io, h, OBD_TAR_BLOCK, OBD_TAR_BLOCK);
		if (ret) {
			obd_errf(err, ret, "%s: tar pax data: read failed (%d)", io->name, ret);
			goto out_free;
		}
		ret = obd_tar_pax_size((const u8 *)h, pax_len, io->name, &found, &size, err);
		if (ret)
			goto out_free;
		ret = obd_io_read(io, h, OBD_TAR_BLOCK, 2 * OBD_TAR_BLOCK);
		if (ret) {
			obd_errf(err, ret, "%s: tar member header: read failed (%d)",
				 io->name, ret);
			goto out_free;
		}
		if (!obd_tar_header_ok(h)) {
			ret = obd_errf(err, -EFSCORRUPTED,
				       "%s: tar member header after pax: got no valid ustar header",
				       io->name);
			goto out_free;
		}
	} else {
		poff = OBD_TAR_BLOCK;
	}
	if (!found) {
		ret = obd_tar_octal(h->size, sizeof(h->size), &size);
		if (ret) {
			ret = obd_errf(err, -EFSCORRUPTED,
				       "%s: tar header size: got a malformed field, expected octal",
				       io->name);
			goto out_free;
		}
	}
	if (size == 0) {
		ret = obd_errf(err, -EFSCORRUPTED,
			       "%s: tar payload size: got 0, expected > 0", io->name);
		goto out_free;
	}
	if (size > io->size - poff) {
		ret = obd_errf(err, -EFSCORRUPTED,
			       "%s: tar payload size: got %llu at %llu, expected <= %llu (file size %llu)",
			       io->name, (unsigned long long)size, (unsigned long long)poff,
			       (unsigned long long)(io->size - poff),
			       (unsigned long long)io->size);
		goto out_free;
	}
	ti->payload_off = poff;
	ti->payload_size = size;
	ret = 1;
out_free:
	obd_free(h);
	return ret;
}
