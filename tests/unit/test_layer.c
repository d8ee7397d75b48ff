// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd_layer_open (lib/core/layer.c) on the reference images: plain LSMT,
 * ZFile-wrapped, tar+ZFile-wrapped; the uncompressed stream equals the
 * plain file; errors name the wrapping that failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obd.h"
#include "env_user.h"
#include "tap.h"
#include "testutil.h"


static u64 count_zeroed(const struct obd_layer *l)
{
	u64 i, z = 0;

	for (i = 0; i < l->nmaps; i++)
		z += l->maps[i].zeroed;
	return z;
}

static int open_mem(struct obd_layer *l, struct obd_mem_io *mio, const u8 *buf, size_t len,
		    const char *name, struct obd_codec *codec, struct obd_err *err)
{
	obd_mem_io_init(mio, buf, len, name);
	return obd_layer_open(l, &mio->io, codec, err);
}

int main(void)
{
	size_t plen = 0, zlen = 0, tlen = 0;
	u8 *plain = slurp(REF "l1.commit", &plen);
	u8 *zf = slurp(REF "l1.commit.lz4.zfile", &zlen);
	u8 *tz = slurp(REF "l2.commit.lz4.zfile.tar", &tlen);
	struct obd_mem_io m1, m2, m3, m4;
	struct obd_layer l1, l1z, l2, bad;
	struct obd_err err = { "" };
	const struct obd_layer *stack[2];
	u8 *stream, *junk;
	int ret;

	if (!plain || !zf || !tz) {
		tap_ok(0, "read the reference images");
		return tap_done();
	}

	ret = open_mem(&l1, &m1, plain, plen, "l1.commit", NULL, &err);
	tap_ok(ret == 0 && l1.wrap == 0 && l1.nmaps == 7 && count_zeroed(&l1) == 1 &&
	       l1.info.kind == OBD_LSMT_COMMITTED,
	       "l1.commit: unwrapped, 7 maps, 1 zeroed, no codec needed");
	if (ret)
		tap_diag("%s", err.msg);

	ret = open_mem(&l1z, &m2, zf, zlen, "l1.zfile", &obd_user_codec, &err);
	tap_ok(ret == 0 && l1z.wrap == OBD_WRAP_ZFILE && l1z.nmaps == 7 &&
	       !memcmp(l1z.maps, l1.maps, 7 * sizeof(*l1.maps)) &&
	       !strcmp((char *)l1z.info.user_tag, "oracle layer1"),
	       "l1.commit.lz4.zfile: ZFile, same 7 maps and tag as l1.commit");
	if (ret)
		tap_diag("%s", err.msg);
	stream = malloc(plen);
	tap_ok(ret == 0 && l1z.lsmt_io->size == plen &&
	       obd_io_read(l1z.lsmt_io, stream, plen, 0) == 0 && !memcmp(stream, plain, plen),
	       "l1 ZFile stream == l1.commit bytes (%zu)", plen);
	free(stream);

	ret = open_mem(&l2, &m3, tz, tlen, "l2.tar", &obd_user_codec, &err);
	tap_ok(ret == 0 && l2.wrap == (OBD_WRAP_TAR | OBD_WRAP_ZFILE) && count_zeroed(&l2) == 3 &&
	       !strcmp((char *)l2.info.uuid, "22222222-2222-4222-8222-222222222222") &&
	       !strcmp((char *)l2.info.parent_uuid, "11111111-1111-4111-8111-111111111111") &&
	       !strcmp((char *)l2.info.user_tag, "oracle layer2"),
	       "l2.commit.lz4.zfile.tar: tar+ZFile, 3 zeroed, uuid/parent/tag");
	if (ret)
		tap_diag("%s", err.msg);

	stack[0] = &l1;
	stack[1] = &l2;
	tap_ok(obd_stack_vsize(stack, 2) == 64ULL << 20 && obd_stack_vsize(stack, 0) == 0,
	       "obd_stack_vsize: 64 MiB; 0 for an empty stack");

	ret = open_mem(&bad, &m4, zf, zlen, "l1.zfile", NULL, &err);
	tap_ok(ret == -EINVAL && strstr(err.msg, "no codec"), "ZFile without codec: \"%s\"", err.msg);

	/* A flipped bit in the ZFile header digest. */
	junk = malloc(plen + tlen + zlen);
	memcpy(junk, zf, zlen);
	junk[40] ^= 0x10;
	ret = open_mem(&bad, &m4, junk, zlen, "l1.zfile", &obd_user_codec, &err);
	tap_ok(ret < 0 && !strncmp(err.msg, "layer ZFile", 11) && strstr(err.msg, "l1.zfile"),
	       "bad ZFile header names the ZFile: \"%s\"", err.msg);
	if (!ret)
		obd_layer_close(&bad);

	/* ZFile inside tar: a corrupt jump table (index CRC). */
	memcpy(junk, tz, tlen);
	junk[l2.tar.payload_off + l2.tar.payload_size - 512 - 4] ^= 0x01;
	ret = open_mem(&bad, &m4, junk, tlen, "l2.tar", &obd_user_codec, &err);
	tap_ok(ret < 0 && strstr(err.msg, "(in tar)"), "bad ZFile in tar says so: \"%s\"", err.msg);
	if (!ret)
		obd_layer_close(&bad);

	/* Plain LSMT with a broken trailer. */
	memcpy(junk, plain, plen);
	junk[plen - 4096 + 28] = 0x02;
	ret = open_mem(&bad, &m4, junk, plen, "l1.commit", NULL, &err);
	tap_ok(ret == -EFSCORRUPTED && !strncmp(err.msg, "layer LSMT: l1.commit: LSMT trailer flags", 41),
	       "bad LSMT trailer: \"%s\"", err.msg);

	/* Neither tar nor ZFile nor LSMT. */
	memset(junk, 0xa5, 8192);
	ret = open_mem(&bad, &m4, junk, 8192, "junk", NULL, &err);
	tap_ok(ret == -EFSCORRUPTED && !strncmp(err.msg, "layer LSMT: junk: LSMT header magic0", 36),
	       "random bytes: \"%s\"", err.msg);
	free(junk);

	obd_layer_close(&l1);
	obd_layer_close(&l1z);
	obd_layer_close(&l2);
	free(plain);
	free(zf);
	free(tz);
	return tap_done();
}
