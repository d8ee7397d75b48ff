// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * overlaybd tar wrapper writer. The field formatting follows libtar, which
 * the reference uses: int_to_oct ("%*o " + NUL, width len - 2) for mode,
 * uid, gid and checksum, int_to_oct_nonull ("%*o" width len - 1, last byte
 * a space) for size and mtime. The pax header leaves mode/uid/gid/mtime
 * all-NUL, as the reference's pax writer does.
 */
#include <stdlib.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/stat.h>

#include "tar_write.h"
#include "env_user.h"

static void tw_oct(char *f, size_t len, u64 v)
{
	char tmp[32];

	snprintf(tmp, sizeof(tmp), "%*llo ", (int)len - 2, (unsigned long long)v);
	memcpy(f, tmp, len - 1);
	f[len - 1] = 0;
}

static void tw_oct_nonull(char *f, size_t len, u64 v)
{
	char tmp[32];

	snprintf(tmp, sizeof(tmp), "%*llo", (int)len - 1, (unsigned long long)v);
	memcpy(f, tmp, len - 1);
	f[len - 1] = ' ';
}

static void tw_finish_header(struct obd_tar_header *h)
{
	memcpy(h->magic, "ustar", 6);
	memcpy(h->version, "00", 2);
	tw_oct(h->chksum, sizeof(h->chksum), obd_tar_checksum(h));
}

void obd_tar_build_prefix(u8 out[OBD_TAR_PAX_PAYLOAD], u64 payload_size, u32 mode)
{
	struct obd_tar_header *pax = (struct obd_tar_header *)out;
	struct obd_tar_header *h = (struct obd_tar_header *)(out + 2 * OBD_TAR_BLOCK);
	char rec[64], body[40];
	int blen, len, digits;

	memset(out, 0, OBD_TAR_PAX_PAYLOAD);

	/* "<len> size=<n>\n", len counting its own digits. */
	blen = snprintf(body, sizeof(body), " size=%llu\n", (unsigned long long)payload_size);
	len = blen + 1;
	for (;;) {
		digits = snprintf(rec, sizeof(rec), "%d", len);
		if (blen + digits == len)
			break;
		len = blen + digits;
	}
	len = snprintf(rec, sizeof(rec), "%d%s", len, body);
	memcpy(out + OBD_TAR_BLOCK, rec, (size_t)len);

	strcpy(pax->name, "overlaybd.pax");
	tw_oct_nonull(pax->size, sizeof(pax->size), (u64)len);
	pax->typeflag = 'x';
	tw_finish_header(pax);

	strcpy(h->name, "overlaybd.commit");
	tw_oct(h->mode, sizeof(h->mode), mode);
	tw_oct(h->uid, sizeof(h->uid), 0);
	tw_oct(h->gid, sizeof(h->gid), 0);
	tw_oct_nonull(h->size, sizeof(h->size), 0);
	tw_oct_nonull(h->mtime, sizeof(h->mtime), 0);
	h->typeflag = '0';
	strcpy(h->uname, "root");
	strcpy(h->gname, "root");
	tw_finish_header(h);
}

int obd_tar_write_begin(int fd, struct obd_err *err)
{
	u8 *buf = calloc(1, OBD_TAR_PAX_PAYLOAD);
	struct obd_tar_header *h;
	int ret;

	if (!buf)
		return obd_errf(err, -ENOMEM, "tar writer: out of memory");
	h = (struct obd_tar_header *)(buf + 2 * OBD_TAR_BLOCK);
	strcpy(h->name, "overlaybd.new");
	memcpy(h->magic, "xxtar", 6);
	memcpy(h->version, "xx", 2);
	ret = obd_pwrite_all(fd, buf, OBD_TAR_PAX_PAYLOAD, 0);
	free(buf);
	if (ret)
		return obd_errf(err, ret, "tar writer: prefix: %s", strerror(-ret));
	return 0;
}

s64 obd_tar_write_finish(int fd, u64 payload_size, struct obd_err *err)
{
	u64 end = OBD_TAR_PAX_PAYLOAD + payload_size;
	u64 pad = OBD_ALIGN_UP(end, OBD_TAR_BLOCK) - end + 2 * OBD_TAR_BLOCK;
	struct stat st;
	u8 *buf;
	int ret;

	if (fstat(fd, &st) < 0)
		return obd_errf(err, -errno, "tar writer: fstat: %s", strerror(errno));
	buf = calloc(1, OBD_TAR_PAX_PAYLOAD);
	if (!buf)
		return obd_errf(err, -ENOMEM, "tar writer: out of memory");
	/* pad < 1536: a zero buffer of that size serves both writes. */
	ret = obd_pwrite_all(fd, buf, (size_t)pad, end);
	if (!ret) {
		obd_tar_build_prefix(buf, payload_size, (u32)st.st_mode);
		ret = obd_pwrite_all(fd, buf, OBD_TAR_PAX_PAYLOAD, 0);
	}
	free(buf);
	if (ret)
		return obd_errf(err, ret, "tar writer: %s", strerror(-ret));
	return (s64)(end + pad);
}
