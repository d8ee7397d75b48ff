// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: WWW-Authenticate parsing, auth_parse_challenge(), and
 * the token URL built from what it accepts, auth_token_url() (registry/auth.c).
 * The value arrives from the network: every field must stay bounded and
 * terminated, a Bearer realm must be an http(s) URL, and the token URL must
 * fit the largest possible challenge and hold only URL-safe bytes.
 */
#include <string.h>
#include <strings.h>
#include "fuzz_common.h"
#include "auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TERMINATED(f) (memchr((f), 0, sizeof(f)) != NULL)
/* realm + "?service=" + 3 * service + "&scope=" + 3 * scope */
#define URL_MAX (sizeof(((struct auth_challenge *)0)->realm) + 16 + \
		 3 * sizeof(((struct auth_challenge *)0)->service) + \
		 3 * sizeof(((struct auth_challenge *)0)->scope))

static void check_token_url(const struct auth_challenge *ch, size_t small)
{
	static char out[URL_MAX], out2[URL_MAX];
	size_t n;
	int rc;

	rc = auth_token_url(ch, out, sizeof(out));
	FUZZ_CHECK(rc == 0, "token url of an accepted challenge failed: %d", rc);
	n = strlen(out);
	FUZZ_CHECK(n < sizeof(out) && !strncmp(out, ch->realm, strlen(ch->realm)), "token url prefix");
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK((unsigned char)out[i] > 0x20 && (unsigned char)out[i] < 0x7f,
			   "byte 0x%02x in the token url", (unsigned char)out[i]);
	if (ch->service[0])
		FUZZ_CHECK(strstr(out + strlen(ch->realm), "service="), "service left out");
	if (ch->scope[0])
		FUZZ_CHECK(strstr(out + strlen(ch->realm), "scope="), "scope left out");
	/* a smaller buffer: exact fit works, anything short fails cleanly */
	small %= n + 2;
	memset(out2, 0x55, sizeof(out2));
	rc = auth_token_url(ch, out2, small);
	if (small > n)
		FUZZ_CHECK(rc == 0 && !strcmp(out, out2), "token url with %zu bytes: %d", small, rc);
	else
		FUZZ_CHECK(rc == -ENAMETOOLONG && (!small || out2[0] == 0) &&
			   (small == sizeof(out2) || (unsigned char)out2[small] == 0x55),
			   "token url in %zu < %zu bytes: %d", small, n + 1, rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_challenge ch;
	char err[256];
	int rc;

	if (size > FUZZ_MAX_LEN)
		return 0;
	memset(&ch, 0x41, sizeof(ch));
	memset(err, 0x55, sizeof(err));
	rc = auth_parse_challenge((const char *)data, size, &ch, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	FUZZ_CHECK(TERMINATED(ch.realm) && TERMINATED(ch.service) && TERMINATED(ch.scope),
		   "challenge field not NUL-terminated");
	if (rc) {
		FUZZ_CHECK(memchr(err, 0, sizeof(err)) && err[0], "error without a message");
		FUZZ_CHECK(ch.scheme == AUTH_NONE && !ch.realm[0], "challenge left set after an error");
		return 0;
	}
	FUZZ_CHECK(ch.scheme == AUTH_BASIC || ch.scheme == AUTH_BEARER, "scheme %d", ch.scheme);
	for (const char *f[] = { ch.realm, ch.service, ch.scope }, **p = f; p < f + 3; p++)
		for (const char *c = *p; *c; c++)
			FUZZ_CHECK(((unsigned char)*c >= 0x20 || *c == '\t') && *c != 0x7f,
				   "control byte in a field");
	if (ch.scheme == AUTH_BEARER) {
		FUZZ_CHECK(!strncasecmp(ch.realm, "https://", 8) || !strncasecmp(ch.realm, "http://", 7),
			   "Bearer realm not http(s): %.64s", ch.realm);
		check_token_url(&ch, size ? data[0] * 7u + size : 0);
	}
	return 0;
}
