/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Registry auth (spec 6.3), the pure half shared by overlaybd-fetchd and
 * obd push: WWW-Authenticate challenges, the token URL, token responses,
 * the Basic header. No I/O here; the callers do HTTP (curl multi in the
 * daemon, curl easy in obd).
 */
#ifndef OBD_REGISTRY_AUTH_H
#define OBD_REGISTRY_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "cred.h"

enum auth_scheme {
	AUTH_NONE = 0,
	AUTH_BASIC,
	AUTH_BEARER,
};

struct auth_challenge {
	enum auth_scheme scheme;
	char realm[1024];	/* Bearer: required */
	char service[256];	/* Bearer: required by the reference; we accept "" */
	char scope[512];	/* Bearer: "" when the challenge has none */
};

/*
 * Parse one WWW-Authenticate header value (without the header name), e.g.
 *   Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"
 *   Basic realm="Registry Realm"
 * Scheme names are case-insensitive; parameters are key=value or
 * key="quoted \" value", comma separated, spaces allowed around them.
 * 0, or -EINVAL (unknown scheme, malformed, a Bearer without realm, a value
 * too long for its field) with err saying which.
 */
int auth_parse_challenge(const char *value, size_t len, struct auth_challenge *ch,
			 char *err, size_t errlen);

/*
 * An answer may carry several WWW-Authenticate headers: the one taken is
 * the first, or the first Bearer one (a token over a password). kept: the
 * value taken so far ("" none); v (n bytes): the next one. True: take v.
 */
bool auth_challenge_better(const char *kept, const char *v, size_t n);

/* "<realm>?service=<service>&scope=<scope>", each value percent-encoded
 * (realm's own query kept: '&' then; an empty service or scope is left
 * out). 0, -ENAMETOOLONG (out is "" then) or -EINVAL (empty realm). */
int auth_token_url(const struct auth_challenge *ch, char *out, size_t outlen);

/*
 * A token server's answer (at most 16 KiB of JSON; len bytes): "token",
 * else "access_token" (an empty string does not count; the token must be
 * visible ASCII: it goes into a header); optional "expires_in" (s, default
 * 60; < 1 means the default, capped at AUTH_TOKEN_MAX_EXPIRES). 0 or
 * -EINVAL ("token response: no token or access_token string").
 */
#define AUTH_TOKEN_MAX_EXPIRES	(366L * 86400)
int auth_parse_token_response(const char *body, size_t len, char *token, size_t toklen,
			      long *expires_in, char *err, size_t errlen);

/* "Basic <base64(user:pass)>" into out. 0 or -ENAMETOOLONG. */
int auth_basic_header(const struct reg_cred *cred, char *out, size_t outlen);

/*
 * The challenge/credential logic of obd and the daemon (spec 6.3): what a
 * request that got challenge ch goes on with, given cred (maybe anonymous).
 *   AUTH_ANSWER_HEADER  Basic: the "Authorization: Basic ..." header line
 *                       is in hdr.
 *   AUTH_ANSWER_TOKEN   Bearer: a token is to be asked for at
 *                       auth_token_url(ch), with the header line in hdr
 *                       ("Authorization: Basic ..." for the token request)
 *                       when cred is not anonymous, else hdr is "".
 * Refusals (err says why): -EACCES Basic asked and no credentials, or a
 * Bearer realm over http:// for an https registry (reg_url: the URL that
 * was challenged; D6: neither credentials nor a token go over plain http
 * then); -EINVAL no scheme we know; -ENAMETOOLONG credentials too long.
 * hdr holds a secret: the caller wipes it.
 */
enum auth_answer {
	AUTH_ANSWER_HEADER = 1,
	AUTH_ANSWER_TOKEN,
};
int auth_answer(const struct auth_challenge *ch, const char *reg_url, const struct reg_cred *cred,
		char *hdr, size_t hdrlen, char *err, size_t errlen);

/* The D6 half of auth_answer alone: 0, or -EACCES with err saying why. */
int auth_realm_check(const struct auth_challenge *ch, const char *reg_url, char *err,
		     size_t errlen);

/* "Authorization: Bearer <token>" into out. 0 or -ENAMETOOLONG. */
int auth_bearer_line(const char *token, char *out, size_t outlen);

/*
 * Credentials about to go to url in the clear (not https): true the first
 * time in this process, when the caller logs its one warning about it.
 */
bool auth_plain_http_first(const char *url);

/* Which credentials, for keys: "-" anonymous, else 16 hex digits of
 * sha256(user NUL pass). out: at least 17 bytes. */
void auth_cred_id(const struct reg_cred *cred, char *out, size_t outlen);

/*
 * The key a Bearer token is kept and shared under (D2): the origin of url
 * (scheme, host, port: the registry the token is sent to), the credentials
 * (auth_cred_id) and the challenge's realm, service and scope. A registry
 * answering with another's exact challenge gets none of that other's
 * tokens. 0, -EINVAL (url has no origin) or -ENAMETOOLONG.
 */
int auth_token_key(const char *url, const char *cred_id, const struct auth_challenge *ch,
		   char *out, size_t outlen);

/*
 * Base64 (standard alphabet, padded). encode: out needs
 * AUTH_B64_ENCODED_LEN(len) + 1 bytes (NUL-terminated), else -ENAMETOOLONG.
 * decode: strict (padding required, no whitespace); out needs
 * AUTH_B64_DECODED_MAX(len) bytes; 0 or -EINVAL; *outlen set (output only).
 */
#define AUTH_B64_ENCODED_LEN(n)	(((n) + 2) / 3 * 4)
#define AUTH_B64_DECODED_MAX(n)	((n) / 4 * 3)
int auth_b64_encode(const unsigned char *in, size_t len, char *out, size_t outlen);
int auth_b64_decode(const char *in, size_t len, unsigned char *out, size_t *outlen);

#endif
