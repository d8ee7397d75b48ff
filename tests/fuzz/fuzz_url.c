// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: the URL functions of the registry library
 * (registry/url.c, through libcurl's curl_url()). Input: two lines, URL a
 * and URL b (or a query value). url_redact(a) never shows user info, a
 * query or a fragment; the origin relation is consistent (a URL with an
 * origin is SAME as itself, SAME is symmetric, UPGRADE one way is
 * DOWNGRADE the other); url_append_query keeps a byte for byte and adds
 * only visible ASCII.
 */
#include <string.h>
#include <curl/curl.h>
#include "fuzz_common.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* out (a redacted URL, "?..." marker taken off) has no user, password, query, fragment. */
static void check_redacted(const char *out)
{
	char buf[600], *part = NULL;
	size_t n = strlen(out);
	CURLU *h;

	if (n >= sizeof(buf) || !strncmp(out, "(a URL", 6))
		return;
	memcpy(buf, out, n + 1);
	if (n >= 4 && !strcmp(buf + n - 4, "?..."))
		buf[n - 4] = 0;
	h = curl_url();
	if (!h)
		return;
	if (!curl_url_set(h, CURLUPART_URL, buf, CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS)) {
		FUZZ_CHECK(curl_url_get(h, CURLUPART_USER, &part, 0) == CURLUE_NO_USER,
			   "user info left in %s", out);
		FUZZ_CHECK(curl_url_get(h, CURLUPART_PASSWORD, &part, 0) == CURLUE_NO_PASSWORD,
			   "password left in %s", out);
		FUZZ_CHECK(curl_url_get(h, CURLUPART_QUERY, &part, 0) == CURLUE_NO_QUERY,
			   "query left in %s", out);
		FUZZ_CHECK(curl_url_get(h, CURLUPART_FRAGMENT, &part, 0) == CURLUE_NO_FRAGMENT,
			   "fragment left in %s", out);
	}
	curl_url_cleanup(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char a[2048], b[2048], out[512], origin[400], q[8192];
	const char *nl;
	size_t na, nb;
	enum url_origin_rel ab, ba;
	int rc;

	if (size > 4000 || memchr(data, 0, size))
		return 0;
	nl = memchr(data, '\n', size);
	na = nl ? (size_t)(nl - (const char *)data) : size;
	nb = nl ? size - na - 1 : 0;
	if (na >= sizeof(a) || nb >= sizeof(b))
		return 0;
	memcpy(a, data, na);
	a[na] = 0;
	if (nb)
		memcpy(b, nl + 1, nb);
	b[nb] = 0;

	url_redact(a, out, sizeof(out));
	FUZZ_CHECK(strlen(out) < sizeof(out), "redact overran");
	check_redacted(out);

	rc = url_origin_of(a, origin, sizeof(origin));
	FUZZ_CHECK(rc || !strncmp(origin, "http", 4), "origin %s", origin);
	FUZZ_CHECK((url_origin_relation(a, a) == URL_ORIGIN_SAME) == !rc,
		   "a URL with an origin is its own origin, one without none");
	ab = url_origin_relation(a, b);
	ba = url_origin_relation(b, a);
	FUZZ_CHECK((ab == URL_ORIGIN_SAME) == (ba == URL_ORIGIN_SAME), "SAME not symmetric");
	FUZZ_CHECK((ab == URL_ORIGIN_UPGRADE) == (ba == URL_ORIGIN_DOWNGRADE), "UPGRADE/DOWNGRADE");
	FUZZ_CHECK(url_creds_may_go(a, b) == (ab == URL_ORIGIN_SAME || ab == URL_ORIGIN_UPGRADE),
		   "creds_may_go");

	rc = url_append_query(a, "k", b, q, sizeof(q));
	if (!rc) {
		FUZZ_CHECK(!strncmp(q, a, na) && (q[na] == '?' || q[na] == '&') &&
			   !strncmp(q + na + 1, "k=", 2), "append_query changed the URL: %s", q);
		for (const char *p = q + na + 3; *p; p++)
			FUZZ_CHECK((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f &&
				   *p != '&' && *p != '#' && *p != '?', "raw byte in the value");
	} else {
		FUZZ_CHECK(!q[0], "a failure left output");
	}
	return 0;
}
