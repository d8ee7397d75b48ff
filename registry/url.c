// SPDX-License-Identifier: GPL-2.0-only
/*
 * Registry URLs (spec 6.2): blob URLs handed to us by config.v1.json and
 * image references given to obd push. Both come from users or images, so
 * everything is checked and bounded here once, and the rest of fetchd can
 * paste the parts into requests without re-checking them.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <curl/curl.h>

#include "config.h"
#include "url.h"

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Copy [s, s+n) into a field of size cap; false when it does not fit. */
static bool put_field(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		return false;
	memcpy(dst, s, n);
	dst[n] = 0;
	return true;
}

/*
 * "http://" or "https://" (case-insensitive, stored lower-case). With
 * optional set, no scheme at all means https. Returns the length consumed
 * or -1.
 */
static int parse_scheme(const char *s, struct reg_url *u, bool optional)
{
	if (!strncasecmp(s, "https://", 8)) {
		strcpy(u->scheme, "https");
		return 8;
	}
	if (!strncasecmp(s, "http://", 7)) {
		strcpy(u->scheme, "http");
		return 7;
	}
	if (optional && !strstr(s, "://")) {
		strcpy(u->scheme, "https");
		return 0;
	}
	return -1;
}

/* A host name or IPv4 literal: letters, digits, '-', '.', '_'; no empty label. */
static bool valid_hostname(const char *h, size_t n)
{
	size_t label = 0;

	if (!n || h[0] == '-' || h[0] == '.' || h[n - 1] == '.' || h[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (h[i] == '.') {
			if (!label)
				return false;
			label = 0;
			continue;
		}
		if (!is_alnum(h[i]) && h[i] != '-' && h[i] != '_')
			return false;
		label++;
	}
	return true;
}

/* "[v6]" with a literal inet_pton accepts (no zone ids: they are host-local). */
static bool valid_ipv6(const char *h, size_t n)
{
	char buf[INET6_ADDRSTRLEN + 1];
	unsigned char addr[16];

	if (n < 4 || h[0] != '[' || h[n - 1] != ']' || n - 2 >= sizeof(buf))
		return false;
	memcpy(buf, h + 1, n - 2);
	buf[n - 2] = 0;
	return inet_pton(AF_INET6, buf, addr) == 1;
}

/* 1..65535, decimal digits only (no sign, no spaces). */
static bool parse_port(const char *s, size_t n, unsigned int *port)
{
	unsigned int v = 0;

	if (!n || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned int)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return false;
	*port = v;
	return true;
}

/*
 * The authority [s, s+n): host[:port], host an IPv6 literal in brackets or
 * a name. No userinfo: credentials belong in cred.json, not in URLs that
 * end up in logs. The error never repeats the authority for that reason.
 */
static int parse_authority(const char *s, size_t n, struct reg_url *u, char *err, size_t errlen)
{
	const char *colon = NULL;
	size_t hlen;

	if (memchr(s, '@', n))
		return reg_errf(err, errlen, -EINVAL, "url: user info in the URL is not supported (use cred.json)");
	if (!n)
		return reg_errf(err, errlen, -EINVAL, "url: no host");
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);

		if (!close)
			return reg_errf(err, errlen, -EINVAL, "url: unterminated IPv6 literal");
		hlen = (size_t)(close - s) + 1;
		if (hlen < n) {
			if (s[hlen] != ':')
				return reg_errf(err, errlen, -EINVAL, "url: junk after IPv6 literal");
			colon = s + hlen;
		}
		if (!valid_ipv6(s, hlen))
			return reg_errf(err, errlen, -EINVAL, "url: bad IPv6 literal");
	} else {
		colon = memchr(s, ':', n);
		hlen = colon ? (size_t)(colon - s) : n;
		if (!valid_hostname(s, hlen))
			return reg_errf(err, errlen, -EINVAL, "url: bad host name \"%.*s\"",
				       (int)(hlen > 64 ? 64 : hlen), s);
	}
	if (!put_field(u->host, sizeof(u->host), s, hlen))
		return reg_errf(err, errlen, -EINVAL, "url: host name longer than %zu bytes",
			       sizeof(u->host) - 1);
	u->port = 0;
	if (colon) {
		const char *p = colon + 1;
		size_t plen = n - (size_t)(p - s);

		if (!parse_port(p, plen, &u->port))
			return reg_errf(err, errlen, -EINVAL, "url: port: expected 1..65535, got \"%.*s\"",
				       (int)(plen > 16 ? 16 : plen), p);
	}
	return 0;
}

/*
 * One repository path component of the OCI distribution spec:
 *   [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
 */
static bool valid_component(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t run = 0;

		while (i < n && is_lower_alnum(s[i])) {
			i++;
			run++;
		}
		if (!run)
			return false;
		if (i == n)
			return true;
		if (s[i] == '.') {
			i++;
		} else if (s[i] == '_') {
			i++;
			if (i < n && s[i] == '_')
				i++;
		} else if (s[i] == '-') {
			while (i < n && s[i] == '-')
				i++;
		} else {
			return false;
		}
		if (i == n)
			return false;	/* a separator must be followed by alnum */
	}
	return n > 0;
}

static int parse_repo(const char *s, size_t n, struct reg_url *u, char *err, size_t errlen)
{
	size_t start = 0;

	if (!n)
		return reg_errf(err, errlen, -EINVAL, "url: empty repository");
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '/')
			continue;
		if (!valid_component(s + start, i - start))
			return reg_errf(err, errlen, -EINVAL,
				       "url: repository component \"%.*s\" is not [a-z0-9]+([._-][a-z0-9]+)*",
				       (int)(i - start > 64 ? 64 : i - start), s + start);
		start = i + 1;
	}
	if (!put_field(u->repo, sizeof(u->repo), s, n))
		return reg_errf(err, errlen, -EINVAL, "url: repository longer than %zu bytes",
			       sizeof(u->repo) - 1);
	return 0;
}

static int parse_digest(const char *s, size_t n, struct reg_url *u, char *err, size_t errlen)
{
	bool ok = n == 7 + 64 && !strncmp(s, "sha256:", 7);

	for (size_t i = 7; ok && i < n; i++)
		ok = is_lower_hex(s[i]);
	if (!ok)
		return reg_errf(err, errlen, -EINVAL, "url: digest: expected sha256:<64 lower-case hex>");
	put_field(u->digest, sizeof(u->digest), s, n);
	return 0;
}

/* Bytes we never accept anywhere in a URL: controls, space, non-ASCII. */
static bool has_bad_bytes(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return true;
	return false;
}

int url_parse_blob(const char *url, struct reg_url *u, char *err, size_t errlen)
{
	const char *auth, *path, *blobs;
	size_t plen;
	int n, rc;

	memset(u, 0, sizeof(*u));
	if (!url || !*url)
		return reg_errf(err, errlen, -EINVAL, "url: empty");
	if (has_bad_bytes(url))
		return reg_errf(err, errlen, -EINVAL, "url: contains a space, control or non-ASCII byte");
	n = parse_scheme(url, u, false);
	if (n < 0)
		return reg_errf(err, errlen, -EINVAL, "url: expected http:// or https://");
	auth = url + n;
	path = strchr(auth, '/');
	if (!path)
		return reg_errf(err, errlen, -EINVAL, "url: no path (expected /v2/<repo>/blobs/<digest>)");
	rc = parse_authority(auth, (size_t)(path - auth), u, err, errlen);
	if (rc)
		return rc;
	if (strpbrk(path, "?#"))
		return reg_errf(err, errlen, -EINVAL, "url: query or fragment not supported");
	if (strncmp(path, "/v2/", 4))
		return reg_errf(err, errlen, -EINVAL, "url: path does not start with /v2/");
	path += 4;
	plen = strlen(path);
	/* the last "/blobs/": "blobs" is also a valid repository component */
	for (blobs = NULL; ; ) {
		const char *b = strstr(blobs ? blobs + 1 : path, "/blobs/");

		if (!b)
			break;
		blobs = b;
	}
	if (!blobs)
		return reg_errf(err, errlen, -EINVAL, "url: no /blobs/ in the path");
	rc = parse_repo(path, (size_t)(blobs - path), u, err, errlen);
	if (rc)
		return rc;
	return parse_digest(blobs + 7, plen - (size_t)(blobs + 7 - path), u, err, errlen);
}

/* [A-Za-z0-9_][A-Za-z0-9._-]{0,127} */
static bool valid_tag(const char *s, size_t n)
{
	if (!n || n > 128 || !(is_alnum(s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

int url_parse_ref(const char *ref, struct reg_url *u, char *err, size_t errlen)
{
	const char *auth, *path, *colon;
	size_t rlen;
	int n, rc;

	memset(u, 0, sizeof(*u));
	if (!ref || !*ref)
		return reg_errf(err, errlen, -EINVAL, "reference: empty");
	if (has_bad_bytes(ref))
		return reg_errf(err, errlen, -EINVAL, "reference: contains a space, control or non-ASCII byte");
	n = parse_scheme(ref, u, true);
	if (n < 0)
		return reg_errf(err, errlen, -EINVAL, "reference: expected http://, https:// or no scheme");
	auth = ref + n;
	path = strchr(auth, '/');
	if (!path)
		return reg_errf(err, errlen, -EINVAL, "reference: expected HOST[:PORT]/REPO[:TAG]");
	rc = parse_authority(auth, (size_t)(path - auth), u, err, errlen);
	if (rc)
		return rc;
	path++;
	if (strchr(path, '@'))
		return reg_errf(err, errlen, -EINVAL, "reference: digest references are not supported");
	/* repository components have no ':', so a ':' in the path starts the tag */
	colon = strchr(path, ':');
	rlen = colon ? (size_t)(colon - path) : strlen(path);
	rc = parse_repo(path, rlen, u, err, errlen);
	if (rc)
		return rc;
	if (!colon) {
		strcpy(u->tag, "latest");
		return 0;
	}
	if (!valid_tag(colon + 1, strlen(colon + 1)))
		return reg_errf(err, errlen, -EINVAL,
			       "reference: tag: expected [A-Za-z0-9_][A-Za-z0-9._-]{0,127}, got \"%.64s\"",
			       colon + 1);
	strcpy(u->tag, colon + 1);
	return 0;
}

int url_origin(const struct reg_url *u, char *out, size_t outlen)
{
	int n;

	if (u->port)
		n = snprintf(out, outlen, "%s://%s:%u", u->scheme, u->host, u->port);
	else
		n = snprintf(out, outlen, "%s://%s", u->scheme, u->host);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int url_cred_prefixes(const struct reg_url *u, char (*out)[1024], int max)
{
	char base[1024];
	int cnt = 0, n;
	size_t blen;

	if (max <= 0)
		return 0;
	if (u->port)
		n = snprintf(base, sizeof(base), "%s:%u", u->host, u->port);
	else
		n = snprintf(base, sizeof(base), "%s", u->host);
	if (n < 0 || (size_t)n >= sizeof(base))
		return 0;
	blen = (size_t)n;
	memcpy(out[cnt++], base, blen + 1);
	/* host/a, host/a/b, ...: each '/' of the repository ends a prefix */
	for (size_t i = 0; cnt < max; i++) {
		if (u->repo[i] && u->repo[i] != '/')
			continue;
		if (i == 0 || blen + 1 + i >= sizeof(out[0]))
			break;
		memcpy(out[cnt], base, blen);
		out[cnt][blen] = '/';
		memcpy(out[cnt] + blen + 1, u->repo, i);
		out[cnt++][blen + 1 + i] = 0;
		if (!u->repo[i])
			break;
	}
	return cnt;
}

/*
 * Every other URL question below goes through libcurl's URL parser
 * (curl_url()): one parser decides what a URL's scheme, host, port, user
 * info and query are, for the origin checks, the redaction of logged URLs
 * and the query strings built, in obd and the daemon alike.
 */
static CURLU *url_handle(const char *url, unsigned int flags)
{
	CURLU *h;

	if (!url)
		return NULL;
	h = curl_url();
	if (h && curl_url_set(h, CURLUPART_URL, url, flags)) {
		curl_url_cleanup(h);
		h = NULL;
	}
	return h;
}

/* The whole URL of h into out. 0, -ENOMEM or -ENAMETOOLONG (out is "" then). */
static int url_get(CURLU *h, char *out, size_t outlen)
{
	char *s = NULL;
	int rc = -ENOMEM;

	if (outlen)
		out[0] = 0;
	if (!curl_url_get(h, CURLUPART_URL, &s, 0)) {
		rc = 0;
		if (!put_field(out, outlen, s, strlen(s))) {
			if (outlen)
				out[0] = 0;
			rc = -ENAMETOOLONG;
		}
	}
	curl_free(s);
	return rc;
}

static void lower(char *p)
{
	for (; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

/* scheme, host (lower-cased, %-decoded by curl, an IPv6 zone kept) and
 * port (the scheme's default filled in) of an absolute http(s) URL. */
struct url_origin_parts {
	char scheme[8];
	char host[300];
	char port[8];
};

static int origin_parts(const char *url, struct url_origin_parts *o)
{
	CURLU *h = url_handle(url, 0);
	char *scheme = NULL, *host = NULL, *port = NULL, *zone = NULL;
	int rc = -EINVAL, n;

	memset(o, 0, sizeof(*o));
	if (!h)
		return -EINVAL;
	if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) ||
	    curl_url_get(h, CURLUPART_HOST, &host, 0) ||
	    curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT))
		goto out;
	if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))
		goto out;
	/* fe80::1%eth0 and fe80::1%eth1 are other hosts */
	if (curl_url_get(h, CURLUPART_ZONEID, &zone, 0))
		zone = NULL;
	n = snprintf(o->host, sizeof(o->host), "%s%s%s", host, zone ? "%" : "", zone ? zone : "");
	if (n < 0 || (size_t)n >= sizeof(o->host) ||
	    !put_field(o->scheme, sizeof(o->scheme), scheme, strlen(scheme)) ||
	    !put_field(o->port, sizeof(o->port), port, strlen(port)))
		goto out;
	lower(o->scheme);
	lower(o->host);
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(zone);
	curl_url_cleanup(h);
	return rc;
}

int url_origin_of(const char *url, char *out, size_t outlen)
{
	struct url_origin_parts o;
	int n, rc = origin_parts(url, &o);

	if (outlen)
		out[0] = 0;
	if (rc)
		return rc;
	n = snprintf(out, outlen, "%s://%s:%s", o.scheme, o.host, o.port);
	if (n < 0 || (size_t)n >= outlen) {
		if (outlen)
			out[0] = 0;
		return -ENAMETOOLONG;
	}
	return 0;
}

enum url_origin_rel url_origin_relation(const char *from, const char *to)
{
	struct url_origin_parts a, b;

	if (origin_parts(from, &a) || origin_parts(to, &b) || strcmp(a.host, b.host))
		return URL_ORIGIN_OTHER;
	if (!strcmp(a.scheme, b.scheme))
		return strcmp(a.port, b.port) ? URL_ORIGIN_OTHER : URL_ORIGIN_SAME;
	return strcmp(a.scheme, "https") ? URL_ORIGIN_UPGRADE : URL_ORIGIN_DOWNGRADE;
}

bool url_creds_may_go(const char *from, const char *to)
{
	enum url_origin_rel rel = url_origin_relation(from, to);

	return rel == URL_ORIGIN_SAME || rel == URL_ORIGIN_UPGRADE;
}

bool url_has_scheme(const char *url, const char *scheme)
{
	struct url_origin_parts o;
	size_t n = strlen(scheme);

	/* "https:/h" or "https:h" parse (curl is lenient): not written as a URL is */
	return url && !strncasecmp(url, scheme, n) && !strncmp(url + n, "://", 3) &&
	       !origin_parts(url, &o) && !strcasecmp(o.scheme, scheme);
}

bool url_is_https(const char *url)
{
	return url_has_scheme(url, "https");
}

bool url_same_repo(const char *a, const char *b)
{
	struct reg_url ua, ub;
	char err[128];

	return url_origin_relation(a, b) == URL_ORIGIN_SAME &&
	       !url_parse_blob(a, &ua, err, sizeof(err)) &&
	       !url_parse_blob(b, &ub, err, sizeof(err)) && !strcmp(ua.repo, ub.repo);
}

/*
 * out = url, cut to fit if need be (nothing secret is left in it), then
 * "?..." when a query or fragment was dropped. The cut is made in the URL,
 * never in the marker: a marker cut to "?.." would read as a query.
 */
static void redact_fit(char *out, size_t outlen, const char *url, bool dropped)
{
	const char *mark = dropped ? "?..." : "";
	size_t keep = strlen(url), m = strlen(mark);

	if (outlen <= m) {
		out[0] = 0;
		return;
	}
	if (keep > outlen - 1 - m)
		keep = outlen - 1 - m;
	memcpy(out, url, keep);
	memcpy(out + keep, mark, m + 1);
}

const char *url_redact(const char *url, char *out, size_t outlen)
{
	static const CURLUPart secret[] = {
		CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_OPTIONS,
	};
	CURLU *h = url_handle(url, CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS);
	bool dropped = false;
	char *part = NULL;

	if (!outlen)
		return "";
	if (!h) {
		/* nothing of it is shown: where the user info or query is is unknown */
		snprintf(out, outlen, "(a URL that does not parse)");
		return out;
	}
	for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
		curl_url_set(h, secret[i], NULL, 0);
	/* the query (presigned URLs keep their signature there) and fragment */
	if (!curl_url_get(h, CURLUPART_QUERY, &part, 0) ||
	    !curl_url_get(h, CURLUPART_FRAGMENT, &part, 0))
		dropped = true;
	curl_free(part);
	part = NULL;
	curl_url_set(h, CURLUPART_QUERY, NULL, 0);
	curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0);
	if (curl_url_get(h, CURLUPART_URL, &part, 0))
		snprintf(out, outlen, "(a URL)");
	else
		redact_fit(out, outlen, part, dropped);
	curl_free(part);
	curl_url_cleanup(h);
	return out;
}

int url_append_query(const char *url, const char *key, const char *value, char *out,
		     size_t outlen)
{
	CURLU *h = url_handle(url, 0);
	char *enc = NULL, *s = NULL;
	int rc = -EINVAL;

	/*
	 * libcurl checks that url is one, and encodes the value; url itself
	 * is kept byte for byte (re-rendered, curl would rewrite the %XX of
	 * an upload's opaque _state, for one). No fragment: it would end up
	 * in front of the new parameter.
	 */
	if (h && !strchr(url, '#')) {
		/* RFC 3986 unreserved bytes stay, every other byte is %XX */
		enc = curl_easy_escape(NULL, value, 0);
		rc = -ENOMEM;
		/* out may be url: built aside first */
		if (enc && asprintf(&s, "%s%c%s=%s", url, strchr(url, '?') ? '&' : '?', key, enc) >= 0)
			rc = put_field(out, outlen, s, strlen(s)) ? 0 : -ENAMETOOLONG;
		else
			s = NULL;
	}
	if (rc && outlen)
		out[0] = 0;
	free(s);
	curl_free(enc);
	curl_url_cleanup(h);
	return rc;
}

int url_resolve(const char *base, const char *loc, char *out, size_t outlen)
{
	CURLU *h = url_handle(base, 0);	/* before out is touched: out may be base */
	char *scheme = NULL;
	int rc = -EINVAL;

	if (h && curl_url_set(h, CURLUPART_URL, loc, 0)) {
		curl_url_cleanup(h);
		h = NULL;
	}
	if (outlen)
		out[0] = 0;
	if (!h)
		return -EINVAL;
	if (!curl_url_get(h, CURLUPART_SCHEME, &scheme, 0)) {
		if (strcmp(scheme, "http") && strcmp(scheme, "https"))
			rc = -EPROTO;
		else
			rc = url_get(h, out, outlen);
	}
	curl_free(scheme);
	curl_url_cleanup(h);
	return rc;
}
