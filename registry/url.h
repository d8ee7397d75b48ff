/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * URLs of registry objects: blob URLs (spec 6.2, repoBlobUrl + "/" + digest)
 * and image references for obd push ([http://|https://]HOST[:PORT]/REPO[:TAG],
 * https when no scheme is given).
 */
#ifndef OBD_REGISTRY_URL_H
#define OBD_REGISTRY_URL_H

#include <stdbool.h>
#include <stddef.h>

struct reg_url {
	char scheme[8];		/* "http" or "https" */
	char host[256];		/* host name or IPv4 / [IPv6] literal, as written */
	unsigned int port;	/* 0 = the scheme's default */
	char repo[512];		/* "a/b" */
	char digest[80];	/* blob URLs: "sha256:<hex>"; refs: "" */
	char tag[130];		/* refs: tag, default "latest"; blob URLs: "" */
};

/* scheme://host[:port]/v2/<repo>/blobs/sha256:<64 hex>. 0 or -EINVAL. */
int url_parse_blob(const char *url, struct reg_url *u, char *err, size_t errlen);

/* [http://|https://]host[:port]/repo[:tag]; repo components as the OCI
 * distribution spec allows ([a-z0-9]+([._-][a-z0-9]+)*, '/' separated),
 * tag [A-Za-z0-9_][A-Za-z0-9._-]{0,127}. 0 or -EINVAL. */
int url_parse_ref(const char *ref, struct reg_url *u, char *err, size_t errlen);

/* "scheme://host[:port]" of u. 0 or -ENAMETOOLONG. */
int url_origin(const struct reg_url *u, char *out, size_t outlen);

/* The prefixes cred.json keys are matched against, in the order of spec
 * 6.4: host[:port], host[:port]/a, host[:port]/a/b ... Up to max; returns
 * how many were written (each NUL-terminated, PATH_MAX-ish buffers). */
int url_cred_prefixes(const struct reg_url *u, char (*out)[1024], int max);

/*
 * The one origin comparison of fetchd and obd (libcurl's URL parser):
 * where credentials for the origin of from may go when a request moves to
 * to (a redirect, a token realm). SAME: scheme, host (case-insensitive)
 * and port (the default filled in) are equal. UPGRADE: http to https on
 * the same host (any port): allowed to keep credentials. DOWNGRADE: https
 * to http on the same host: refused by every caller. OTHER: another host,
 * another port of the same scheme, or a URL that does not parse.
 */
enum url_origin_rel {
	URL_ORIGIN_SAME,
	URL_ORIGIN_UPGRADE,
	URL_ORIGIN_DOWNGRADE,
	URL_ORIGIN_OTHER,
};
enum url_origin_rel url_origin_relation(const char *from, const char *to);

/* Credentials for from's origin may go to to: SAME or UPGRADE. */
bool url_creds_may_go(const char *from, const char *to);

/* "scheme://host:port" of an absolute http(s) URL, lower-cased, the port
 * always given. 0, -EINVAL (out is "" then), -ENAMETOOLONG or -ENOMEM. */
int url_origin_of(const char *url, char *out, size_t outlen);

/* url is "<scheme>://..." (scheme http or https, case-insensitive) and
 * parses (libcurl) as an absolute URL. */
bool url_has_scheme(const char *url, const char *scheme);
bool url_is_https(const char *url);

/* Two blob URLs of the same origin (SAME) and repository. */
bool url_same_repo(const char *a, const char *b);

/*
 * url for logs and messages (the one redactor of obd and the daemon): the
 * user info (user, password, options), the query (presigned URLs keep
 * their signature there) and the fragment dropped, "?..." appended when a
 * query or fragment was there; cut to outlen. A URL that does not parse is
 * not shown at all. Returns out.
 */
const char *url_redact(const char *url, char *out, size_t outlen);

/*
 * url with "key=<value percent-encoded>" appended to its query ('?' or
 * '&'): RFC 3986 unreserved bytes stay, every other byte is %XX (the one
 * query encoder: token requests, credential server requests, uploads).
 * 0, -EINVAL (url does not parse), -ENOMEM or -ENAMETOOLONG (out is "").
 */
int url_append_query(const char *url, const char *key, const char *value, char *out,
		     size_t outlen);

/* A Location (maybe relative) resolved against base. 0, -EINVAL, -EPROTO
 * (not http or https), -ENOMEM or -ENAMETOOLONG (out is "" then). */
int url_resolve(const char *base, const char *loc, char *out, size_t outlen);

#endif
