// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: obd_cache_hdr_decode, the cache entry header that the
 * kernel, obd and overlaybd-fetchd all read (include/obd_format.h). A
 * header that decodes must encode back to a header that decodes to the
 * same fields (url, flags, download policy); a refusal must say why.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static u8 blk[OBD_CACHE_HDR_SPACE], again[OBD_CACHE_HDR_SPACE];
	struct obd_cache_info ci, ci2;
	struct obd_err err;
	int rc;

	if (size > OBD_CACHE_HDR_SPACE)
		return 0;
	memset(blk, 0, sizeof(blk));
	memcpy(blk, data, size);
	/* mostly-valid inputs reach the deep checks: fix the CRC when asked to */
	if (size > 0 && (data[0] & 1) && size >= 88) {
		static const u8 zero[4];
		u32 crc = obd_crc32c(0, blk, 84);

		crc = obd_crc32c(crc, zero, sizeof(zero));
		crc = obd_crc32c(crc, blk + 88, OBD_CACHE_HDR_SPACE - 88);
		memcpy(blk + 84, &crc, 4);	/* x86: little-endian */
	}
	memset(&err, 0, sizeof(err));
	memset(&ci, 0, sizeof(ci));
	rc = obd_cache_hdr_decode(blk, "fuzz.meta", &ci, &err);
	if (rc) {
		FUZZ_CHECK(rc < 0 && err.msg[0], "decode failed (%d) with no message", rc);
		return 0;
	}
	FUZZ_CHECK(ci.blob_size > 0 && ci.bitmap_bytes == obd_cache_bitmap_bytes(ci.blob_size),
		   "decoded sizes inconsistent");
	FUZZ_CHECK(strlen(ci.url) < OBD_CACHE_URL_MAX, "url not terminated");
	rc = obd_cache_hdr_encode(&ci, again, &err);
	FUZZ_CHECK(rc == 0, "a decoded header does not encode: %s", err.msg);
	memset(&ci2, 0, sizeof(ci2));
	rc = obd_cache_hdr_decode(again, "fuzz.meta", &ci2, &err);
	FUZZ_CHECK(rc == 0, "an encoded header does not decode: %s", err.msg);
	FUZZ_CHECK(ci2.blob_size == ci.blob_size && ci2.flags == ci.flags &&
		   !memcmp(&ci2.dl, &ci.dl, sizeof(ci.dl)) && !strcmp(ci2.url, ci.url) &&
		   !memcmp(ci2.digest, ci.digest, sizeof(ci.digest)), "round trip differs");
	return 0;
}
