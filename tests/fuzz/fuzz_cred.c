// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: cred.json matching, cred_match_json() (registry/cred.c),
 * and a credential server's answer, cred_match_answer() (the same input
 * as {"success":..,"data":..}), against a few fixed blob URLs (host,
 * host:port, deep repository, IPv6).
 * A short input is also tried as a blob URL and as an image reference
 * (registry/url.c). Credentials accepted must be usable as a Basic header
 * that decodes back to user:pass; a failure must leave no credential.
 */
#include <string.h>
#include "fuzz_common.h"
#include "auth.h"
#include "cred.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define TERMINATED(f) (memchr((f), 0, sizeof(f)) != NULL)

static const char *const urls[] = {
	"https://reg.example.com/v2/a/b/blobs/sha256:" HEX64,
	"http://reg.example.com:5000/v2/a/blobs/sha256:" HEX64,
	"https://r/v2/x/y/z/w/blobs/sha256:" HEX64,
	"http://[::1]:8080/v2/lib/img/blobs/sha256:" HEX64,
};

static void check_cred(const struct reg_cred *cr)
{
	static char hdr[8 + AUTH_B64_ENCODED_LEN(sizeof(cr->user) + sizeof(cr->pass))];
	static unsigned char dec[sizeof(hdr)];
	char up[sizeof(cr->user) + 1 + sizeof(cr->pass)];
	size_t n;
	int rc;

	FUZZ_CHECK(TERMINATED(cr->user) && TERMINATED(cr->pass), "credential not NUL-terminated");
	if (!cr->user[0]) {
		FUZZ_CHECK(!cr->pass[0], "anonymous with a password");
		return;
	}
	FUZZ_CHECK(!strchr(cr->user, ':'), "':' in a user name");
	for (const char *p = cr->user; *p; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte in a user name");
	for (const char *p = cr->pass; *p; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte in a password");
	rc = auth_basic_header(cr, hdr, sizeof(hdr));
	FUZZ_CHECK(rc == 0 && !strncmp(hdr, "Basic ", 6), "basic header %d", rc);
	rc = auth_b64_decode(hdr + 6, strlen(hdr + 6), dec, &n);
	snprintf(up, sizeof(up), "%s:%s", cr->user, cr->pass);
	FUZZ_CHECK(rc == 0 && n == strlen(up) && !memcmp(dec, up, n), "basic header does not decode back");
}

static void check_url(const struct reg_url *u, int blob)
{
	char pre[8][1024];
	char origin[1024];
	int n;

	FUZZ_CHECK(TERMINATED(u->scheme) && TERMINATED(u->host) && TERMINATED(u->repo) &&
		   TERMINATED(u->digest) && TERMINATED(u->tag), "url field not NUL-terminated");
	FUZZ_CHECK(!strcmp(u->scheme, "http") || !strcmp(u->scheme, "https"), "scheme %s", u->scheme);
	FUZZ_CHECK(u->host[0] && u->repo[0] && u->port <= 65535, "host/repo/port");
	for (const char *p = u->repo; *p; p++)
		FUZZ_CHECK((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("._-/", *p),
			   "repository byte 0x%02x", (unsigned char)*p);
	FUZZ_CHECK(u->repo[0] != '/' && u->repo[strlen(u->repo) - 1] != '/' && !strstr(u->repo, "//"),
		   "repository %s", u->repo);
	if (blob)
		FUZZ_CHECK(strlen(u->digest) == 71 && !u->tag[0], "blob digest/tag");
	else
		FUZZ_CHECK(!u->digest[0] && u->tag[0], "ref digest/tag");
	FUZZ_CHECK(url_origin(u, origin, sizeof(origin)) == 0, "origin does not fit");
	n = url_cred_prefixes(u, pre, 8);
	FUZZ_CHECK(n >= 1 && n <= 8, "%d prefixes", n);
	for (int i = 0; i < n; i++)
		FUZZ_CHECK(TERMINATED(pre[i]) && !strncmp(pre[i], u->host, strlen(u->host)),
			   "prefix %d", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reg_cred cr;
	struct reg_url u;
	char err[256];
	int rc;

	if (size > FUZZ_MAX_LEN)
		return 0;
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		memset(&cr, 0x41, sizeof(cr));
		memset(err, 0x55, sizeof(err));
		rc = cred_match_json((const char *)data, size, urls[i], &cr, err, sizeof(err));
		FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM, "rc %d", rc);
		if (rc) {
			FUZZ_CHECK(memchr(err, 0, sizeof(err)) && err[0], "error without a message");
			FUZZ_CHECK(!cr.user[0] && !cr.pass[0], "credentials left after an error");
			/* the json error path must not have kept going to the next url */
			continue;
		}
		check_cred(&cr);
		cred_wipe(&cr);
	}
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		memset(&cr, 0x41, sizeof(cr));
		memset(err, 0x55, sizeof(err));
		rc = cred_match_answer((const char *)data, size, urls[i], &cr, err, sizeof(err));
		FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -EACCES || rc == -ENOMEM, "answer rc %d", rc);
		if (rc) {
			FUZZ_CHECK(memchr(err, 0, sizeof(err)) && err[0], "answer error without a message");
			FUZZ_CHECK(!cr.user[0] && !cr.pass[0], "credentials left after a refused answer");
			continue;
		}
		check_cred(&cr);
		cred_wipe(&cr);
	}
	if (size < 2048) {
		char s[2048];

		memcpy(s, data, size);
		s[size] = 0;
		memset(err, 0x55, sizeof(err));
		if (url_parse_blob(s, &u, err, sizeof(err)) == 0)
			check_url(&u, 1);
		else
			FUZZ_CHECK(memchr(err, 0, sizeof(err)) && err[0], "blob url error without a message");
		if (url_parse_ref(s, &u, err, sizeof(err)) == 0)
			check_url(&u, 0);
	}
	return 0;
}
