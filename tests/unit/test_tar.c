// SPDX-License-Identifier: GPL-2.0-only
/*
 * tar wrapper: probe the reference image, reproduce its 1536-byte prefix
 * and the whole file, and reject malformed headers. Also the window io and
 * UUID string helpers.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include "env_user.h"
#include "tar_write.h"
#include "zfile_write.h"
#include "tap.h"
#include "testutil.h"

#define REF_TAR REF "l2.commit.lz4.zfile.tar"
#define REF_PAYLOAD 269429u

static void fix_sum(u8 *blk)
{
	struct obd_tar_header *h = (struct obd_tar_header *)blk;

	snprintf(h->chksum, sizeof(h->chksum), "%6o", obd_tar_checksum(h));
	h->chksum[7] = ' ';
}

/* Probe a copy of img with a mutation applied. */
static int probe_buf(const u8 *img, size_t len, struct obd_tar_info *ti, struct obd_err *e)
{
	struct obd_mem_io m;

	obd_mem_io_init(&m, img, len, "mut");
	e->msg[0] = 0;
	return obd_tar_probe(&m.io, ti, e);
}

int main(void)
{
	struct obd_tar_info ti = { 0 };
	struct obd_err e = { { 0 } };
	struct obd_file_io f;
	u8 prefix[OBD_TAR_PAX_PAYLOAD], *ref, *img, *out;
	size_t ref_len, out_len;
	int ret;

	ref = slurp(REF_TAR, &ref_len);
	tap_ok(ref && ref_len == 272384, "read reference tar (%zu bytes)", ref_len);
	if (!ref)
		return tap_done();

	ret = obd_file_io_open(&f, REF_TAR, &e);
	tap_ok(ret == 0, "open %s", REF_TAR);
	ret = obd_tar_probe(&f.io, &ti, &e);
	tap_ok(ret == 1 && ti.payload_off == 1536 && ti.payload_size == REF_PAYLOAD,
	       "probe reference: ret %d off %llu size %llu (%s)", ret,
	       (unsigned long long)ti.payload_off, (unsigned long long)ti.payload_size, e.msg);

	/* Payload is a ZFile readable through a window. */
	{
		struct obd_window w;
		struct obd_zfile zf;

		obd_window_init(&w, &f.io, ti.payload_off, ti.payload_size);
		ret = obd_zfile_probe(&w.io, &e);
		tap_ok(ret == 1, "payload window is a ZFile (%d)", ret);
		ret = obd_zfile_open(&zf, &w.io, &obd_user_codec, &e);
		tap_ok(ret == 0, "open ZFile in tar (%s)", ret ? e.msg : "");
		if (!ret) {
			u8 *lsmt = malloc(zf.io.size);
			int fd_in, fd_out;
			char tmpl[] = "/tmp/obd_test_tar_XXXXXX";
			s64 zlen, tlen;

			ret = obd_io_read(&zf.io, lsmt, zf.io.size, 0);
			tap_ok(ret == 0 && !memcmp(lsmt, "LSMT", 4),
			       "decompress l2 payload (%llu bytes)", (unsigned long long)zf.io.size);

			/* Rebuild the whole tar from the LSMT bytes: must match. */
			fd_out = mkstemp(tmpl);
			fchmod(fd_out, 0644);
			ret = obd_tar_write_begin(fd_out, &e);
			{
				char t2[] = "/tmp/obd_test_tar_in_XXXXXX";

				fd_in = mkstemp(t2);
				unlink(t2);
				if (write(fd_in, lsmt, zf.io.size) != (ssize_t)zf.io.size)
					ret = -EIO;
				lseek(fd_in, 0, SEEK_SET);
			}
			zlen = obd_zfile_compress_fd(fd_in, fd_out, OBD_TAR_PAX_PAYLOAD,
						     OBD_ZFILE_ALGO_LZ4, 4096, true, true,
						     NULL, NULL, &e);
			tlen = zlen > 0 ? obd_tar_write_finish(fd_out, (u64)zlen, &e) : zlen;
			tap_ok(ret == 0 && zlen == REF_PAYLOAD && tlen == (s64)ref_len,
			       "writer: zfile %lld tar %lld bytes (%s)", (long long)zlen,
			       (long long)tlen, e.msg);
			close(fd_in);
			close(fd_out);
			out = slurp(tmpl, &out_len);
			tap_ok(out && out_len == ref_len && !memcmp(out, ref, ref_len),
			       "rebuilt l2.commit.lz4.zfile.tar is byte-identical to the reference");
			unlink(tmpl);
			free(out);
			free(lsmt);
			obd_zfile_close(&zf);
		}
	}
	obd_file_io_close(&f);

	obd_tar_build_prefix(prefix, REF_PAYLOAD, 0100644);
	tap_ok(!memcmp(prefix, ref, sizeof(prefix)), "prefix builder == reference first 1536 bytes");

	img = malloc(ref_len);

#define MUT(desc, expect, code) do {					\
		memcpy(img, ref, ref_len);				\
		code;							\
		ret = probe_buf(img, ref_len, &ti, &e);			\
		tap_ok(ret == (expect), "%s: got %d, expected %d (%s)",	\
		       desc, ret, expect, e.msg);			\
	} while (0)

	MUT("unchanged copy", 1, (void)0);
	MUT("bad magic", 0, (img[257] = 'X', fix_sum(img)));
	MUT("bad version", 0, (img[263] = ' ', img[264] = 0, fix_sum(img)));
	MUT("bad checksum", 0, img[148 + 3] ^= 1);
	MUT("checksum not octal", 0, img[148 + 3] = '9');
	{
		ret = probe_buf(ref, 100, &ti, &e);
		tap_ok(ret == 0, "100-byte file is not a tar (%d)", ret);
		ret = probe_buf(ref, 1000, &ti, &e);
		tap_ok(ret == -EFSCORRUPTED, "pax tar truncated to 1000 bytes: %d (%s)", ret, e.msg);
	}
	MUT("pax record length too long", -EFSCORRUPTED, img[512 + 1] = '7');
	MUT("pax record without newline", -EFSCORRUPTED, img[512 + 14] = 'x');
	MUT("pax size not decimal", -EFSCORRUPTED, img[512 + 9] = 'a');
	MUT("pax header size 0", -EFSCORRUPTED,
	    (memcpy(img + 124, "          0 ", 12), fix_sum(img)));
	MUT("pax header size > 512", -EFSCORRUPTED,
	    (memcpy(img + 124, "       1001 ", 12), fix_sum(img)));
	MUT("pax header size with garbage", -EFSCORRUPTED,
	    (memcpy(img + 124, "        1x7 ", 12), fix_sum(img)));
	MUT("payload past EOF (pax size)", -EFSCORRUPTED,
	    memcpy(img + 512, "15 size=999999\n", 15));
	MUT("payload size 0", -EFSCORRUPTED,
	    (memcpy(img + 512, "10 size=0\n\0\0\0\0\0", 15),
	     memcpy(img + 124, "         12 ", 12), fix_sum(img)));
	tap_ok(strstr(e.msg, "payload size: got 0") != NULL, "  -> message names the zero size");
	MUT("member header after pax corrupted", -EFSCORRUPTED, img[1024 + 257] = 'X');
	/* pax without size=: the member's size field counts. */
	MUT("pax without size, member size 0", -EFSCORRUPTED,
	    memcpy(img + 512, "15 mtime=00000\n", 15));
	MUT("pax without size, member size 17", 1,
	    (memcpy(img + 512, "15 mtime=00000\n", 15),
	     memcpy(img + 1024 + 124, "         21 ", 12), fix_sum(img + 1024)));
	tap_ok(ret == 1 && ti.payload_size == 17 && ti.payload_off == 1536,
	       "  -> payload 17 bytes at 1536");
	/* Plain ustar member: payload at 512. */
	MUT("plain ustar member", 1,
	    (memcpy(img, ref + 1024, 512), memcpy(img + 124, "       1000 ", 12), fix_sum(img)));
	tap_ok(ret == 1 && ti.payload_off == 512 && ti.payload_size == 512,
	       "  -> payload 512 bytes at 512");
	MUT("plain ustar member past EOF", -EFSCORRUPTED,
	    (memcpy(img, ref + 1024, 512), memcpy(img + 124, "77777777777 ", 12), fix_sum(img)));
	MUT("plain ustar member size field empty", -EFSCORRUPTED,
	    (memcpy(img, ref + 1024, 512), memset(img + 124, ' ', 12), fix_sum(img)));
	MUT("GNU tar version is not unwrapped", 0,
	    (memcpy(img + 257, "ustar  \0", 8), fix_sum(img)));
	free(img);
	free(ref);

	/* UUID strings (spec 2.3). */
	tap_ok(obd_uuid_valid((const u8 *)"11111111-1111-4111-8111-111111111111"), "uuid valid");
	tap_ok(obd_uuid_valid((const u8 *)"abcdefAB-CDEF-4111-8111-1234567890ab"), "uuid mixed case valid");
	tap_ok(!obd_uuid_valid((const u8 *)"11111111-1111-4111-8111-11111111111g"), "uuid bad hex");
	tap_ok(!obd_uuid_valid((const u8 *)"11111111x1111-4111-8111-111111111111"), "uuid bad dash");
	{
		u8 z[37] = { 0 }, lng[37];

		memcpy(lng, "11111111-1111-4111-8111-111111111111", 36);
		lng[36] = 'x';
		tap_ok(!obd_uuid_valid(lng), "uuid without NUL at 36");
		tap_ok(obd_uuid_is_null(z) && !obd_uuid_valid(z), "all-zero field is null, not valid");
	}
	tap_ok(obd_uuid_is_null((const u8 *)"00000000-0000-0000-0000-000000000000"), "null uuid string");
	tap_ok(!obd_uuid_is_null((const u8 *)"00000000-0000-0000-0000-000000000001"), "non-null uuid");
	return tap_done();
}
