// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: token server answers, auth_parse_token_response()
 * (registry/auth.c), into a large and an input-chosen small buffer; and the
 * base64 pair: decode(encode(x)) == x, and whatever decode accepts
 * re-encodes to something decode accepts again with the same bytes.
 */
#include <string.h>
#include "fuzz_common.h"
#include "auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_token(const uint8_t *data, size_t size, char *tok, size_t toklen)
{
	char err[256];
	long exp = -12345;
	int rc;

	memset(tok, 0x55, toklen);
	memset(err, 0x55, sizeof(err));
	rc = auth_parse_token_response((const char *)data, size, tok, toklen, &exp, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM, "rc %d", rc);
	if (rc) {
		FUZZ_CHECK(memchr(err, 0, sizeof(err)) && err[0], "error without a message");
		FUZZ_CHECK(!toklen || tok[0] == 0, "token left after an error");
		FUZZ_CHECK(exp == 60, "expires_in %ld after an error", exp);
		return;
	}
	FUZZ_CHECK(memchr(tok, 0, toklen) && tok[0], "token empty or not NUL-terminated");
	for (const char *p = tok; *p; p++)
		FUZZ_CHECK((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f,
			   "byte 0x%02x in a token", (unsigned char)*p);
	FUZZ_CHECK(exp >= 1 && exp <= AUTH_TOKEN_MAX_EXPIRES, "expires_in %ld", exp);
}

static void check_b64(const uint8_t *data, size_t size)
{
	static char enc[AUTH_B64_ENCODED_LEN(4096) + 1], enc2[sizeof(enc)];
	static unsigned char dec[4096], dec2[4096];
	size_t n, n2;
	int rc;

	if (size > 4096)
		size = 4096;
	rc = auth_b64_encode(data, size, enc, sizeof(enc));
	FUZZ_CHECK(rc == 0 && strlen(enc) == AUTH_B64_ENCODED_LEN(size), "encode %d", rc);
	rc = auth_b64_decode(enc, strlen(enc), dec, &n);
	FUZZ_CHECK(rc == 0 && n == size && !memcmp(dec, data, size), "decode(encode(x)) != x");
	/* the input as base64 text */
	if (auth_b64_decode((const char *)data, size, dec, &n) == 0) {
		FUZZ_CHECK(n <= AUTH_B64_DECODED_MAX(size), "decoded %zu from %zu", n, size);
		rc = auth_b64_encode(dec, n, enc2, sizeof(enc2));
		FUZZ_CHECK(rc == 0 && strlen(enc2) == size, "re-encode length");
		rc = auth_b64_decode(enc2, size, dec2, &n2);
		FUZZ_CHECK(rc == 0 && n2 == n && !memcmp(dec, dec2, n), "re-decode differs");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char big[20000];
	char small[64];

	if (size > FUZZ_MAX_LEN)
		return 0;
	check_token(data, size, big, sizeof(big));
	check_token(data, size, small, size ? 1 + data[size - 1] % sizeof(small) : 1);
	check_b64(data, size);
	return 0;
}
