// SPDX-License-Identifier: GPL-2.0-only
/*
 * Registry auth (spec 6.3), the pure half: parsing what a registry and its
 * token server send us, and building what we send them. Everything parsed
 * here comes from the network, so every field is bounded and a realm has
 * to be an http(s) URL: our credentials are sent there.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "auth.h"
#include "config.h"
#include "url.h"

#define TOKEN_MAX_BODY	(16u * 1024)	/* the reference reads at most 16 KiB */
#define TOKEN_DEFAULT_EXPIRES	60

/* ------------------------------------------------------------------------
 * WWW-Authenticate (RFC 9110 11.6.1: challenge = scheme [ 1*SP ( token68 / #auth-param ) ])
 */

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 9110 tchar */
static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

struct wa_parser {
	const char *p, *end, *start;
	char *err;
	size_t errlen;
};

static void skip_ows(struct wa_parser *w)
{
	while (w->p < w->end && is_ows(*w->p))
		w->p++;
}

static size_t token_len(struct wa_parser *w)
{
	const char *s = w->p;

	while (w->p < w->end && is_tchar(*w->p))
		w->p++;
	return (size_t)(w->p - s);
}

static int wa_malformed(struct wa_parser *w, const char *what)
{
	return reg_errf(w->err, w->errlen, -EINVAL, "WWW-Authenticate: %s at offset %zu", what,
			(size_t)(w->p - w->start));
}

/*
 * A parameter value into buf (cap bytes, NUL-terminated), a quoted-string
 * with backslash escapes or a bare run. *too_long is set instead of
 * overflowing; the value is still consumed, so an over-long parameter we do
 * not use costs nothing.
 */
static int wa_value(struct wa_parser *w, char *buf, size_t cap, bool *too_long)
{
	size_t n = 0;

	*too_long = false;
	if (w->p < w->end && *w->p == '"') {
		w->p++;
		for (;;) {
			char c;

			if (w->p >= w->end)
				return wa_malformed(w, "unterminated quoted string");
			c = *w->p++;
			if (c == '"')
				break;
			if (c == '\\') {
				if (w->p >= w->end)
					return wa_malformed(w, "unterminated quoted string");
				c = *w->p++;
			}
			/* controls (CR, LF, NUL) would end up in a request line or header */
			if (((unsigned char)c < 0x20 && c != '\t') || c == 0x7f)
				return wa_malformed(w, "control character in a quoted string");
			if (n + 1 < cap)
				buf[n++] = c;
			else
				*too_long = true;
		}
	} else {
		const char *s = w->p;

		/* not a token strictly, but registries do send realm=https://... bare */
		while (w->p < w->end && (unsigned char)*w->p > 0x20 && (unsigned char)*w->p < 0x7f &&
		       *w->p != ',' && *w->p != '"' && *w->p != '\\')
			w->p++;
		if (w->p == s)
			return wa_malformed(w, "empty parameter value");
		n = (size_t)(w->p - s);
		if (n >= cap) {
			*too_long = true;
			n = cap - 1;
		}
		memcpy(buf, s, n);
	}
	buf[n] = 0;
	return 0;
}

struct wa_field {
	const char *name;
	char *dst;
	size_t cap;
	bool seen;
};

/* The parameter list; returns at its end or where a second challenge starts. */
static int wa_params(struct wa_parser *w, struct wa_field *f, size_t nf)
{
	char val[1024];
	bool after_comma = false;

	for (;;) {
		const char *name;
		size_t nlen;
		bool too_long;
		int rc;

		skip_ows(w);
		if (w->p >= w->end)
			return 0;
		if (*w->p == ',') {	/* empty list elements are allowed */
			w->p++;
			after_comma = true;
			continue;
		}
		name = w->p;
		nlen = token_len(w);
		if (!nlen)
			return wa_malformed(w, "expected a parameter name");
		skip_ows(w);
		if (w->p >= w->end || *w->p != '=') {
			/* "Bearer realm=..., Basic realm=...": we take the first challenge */
			if (after_comma) {
				w->p = name;
				return 0;
			}
			return wa_malformed(w, "expected '=' after a parameter name");
		}
		w->p++;
		skip_ows(w);
		rc = wa_value(w, val, sizeof(val), &too_long);
		if (rc)
			return rc;
		for (size_t i = 0; i < nf; i++) {
			if (strlen(f[i].name) != nlen || strncasecmp(name, f[i].name, nlen) || f[i].seen)
				continue;	/* not this one, or a duplicate: the first counts */
			if (too_long || strlen(val) >= f[i].cap)
				return reg_errf(w->err, w->errlen, -EINVAL,
						"WWW-Authenticate: %s longer than %zu bytes",
						f[i].name, f[i].cap - 1);
			memcpy(f[i].dst, val, strlen(val) + 1);
			f[i].seen = true;
		}
		skip_ows(w);
		if (w->p < w->end && *w->p != ',')
			return wa_malformed(w, "expected ',' after a parameter");
		after_comma = false;
	}
}

/* Where our credentials go: an absolute http(s) URL of visible ASCII, no
 * fragment (the token request's query goes at its end). */
static bool realm_ok(const char *r)
{
	for (const char *p = r; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#')
			return false;
	return url_has_scheme(r, "http") || url_has_scheme(r, "https");
}

static bool is_bearer(const char *v, size_t n)
{
	return n >= 6 && !strncasecmp(v, "bearer", 6) && (n == 6 || is_ows(v[6]));
}

bool auth_challenge_better(const char *kept, const char *v, size_t n)
{
	return !kept[0] || (!is_bearer(kept, strlen(kept)) && is_bearer(v, n));
}

int auth_parse_challenge(const char *value, size_t len, struct auth_challenge *ch,
			 char *err, size_t errlen)
{
	struct wa_parser w = { .p = value, .end = value + len, .start = value,
			       .err = err, .errlen = errlen };
	struct wa_field f[] = {
		{ "realm", ch->realm, sizeof(ch->realm), false },
		{ "service", ch->service, sizeof(ch->service), false },
		{ "scope", ch->scope, sizeof(ch->scope), false },
	};
	const char *scheme;
	size_t slen;
	int rc;

	memset(ch, 0, sizeof(*ch));
	skip_ows(&w);
	scheme = w.p;
	slen = token_len(&w);
	if (!slen)
		return wa_malformed(&w, "expected an auth scheme");
	if (slen == 5 && !strncasecmp(scheme, "basic", 5)) {
		ch->scheme = AUTH_BASIC;
	} else if (slen == 6 && !strncasecmp(scheme, "bearer", 6)) {
		ch->scheme = AUTH_BEARER;
	} else {
		ch->scheme = AUTH_NONE;
		return reg_errf(err, errlen, -EINVAL, "WWW-Authenticate: unknown scheme \"%.*s\"",
				(int)(slen > 32 ? 32 : slen), scheme);
	}
	if (w.p < w.end && !is_ows(*w.p) && *w.p != ',') {
		rc = wa_malformed(&w, "expected a space after the scheme");
		goto fail;
	}
	rc = wa_params(&w, f, sizeof(f) / sizeof(f[0]));
	if (rc)
		goto fail;
	if (ch->scheme == AUTH_BEARER) {
		if (!ch->realm[0]) {
			rc = reg_errf(err, errlen, -EINVAL, "WWW-Authenticate: Bearer without realm");
			goto fail;
		}
		if (!realm_ok(ch->realm)) {
			rc = reg_errf(err, errlen, -EINVAL, "WWW-Authenticate: realm is not an http(s) URL");
			goto fail;
		}
	}
	return 0;
fail:
	memset(ch, 0, sizeof(*ch));
	return rc;
}

/* ------------------------------------------------------------------------
 * Token URL
 */

int auth_token_url(const struct auth_challenge *ch, char *out, size_t outlen)
{
	char tmp[sizeof(ch->realm) * 4];
	int rc;

	if (!outlen)
		return -ENAMETOOLONG;
	out[0] = 0;
	if (!ch->realm[0])
		return -EINVAL;
	/* empty service / scope are left out rather than sent as "service=" */
	rc = snprintf(out, outlen, "%s", ch->realm) >= (int)outlen ? -ENAMETOOLONG : 0;
	if (!rc && ch->service[0]) {
		rc = url_append_query(out, "service", ch->service, tmp, sizeof(tmp));
		if (!rc && snprintf(out, outlen, "%s", tmp) >= (int)outlen)
			rc = -ENAMETOOLONG;
	}
	if (!rc && ch->scope[0])
		rc = url_append_query(out, "scope", ch->scope, out, outlen);
	if (rc)
		out[0] = 0;
	return rc == -EINVAL ? -EINVAL : rc ? -ENAMETOOLONG : 0;
}

/* ------------------------------------------------------------------------
 * Token response
 */

/* A non-empty string member, else NULL. */
static const char *str_member(json_object *o, const char *key, size_t *n)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string) ||
	    !json_object_get_string_len(v))
		return NULL;
	*n = (size_t)json_object_get_string_len(v);
	return json_object_get_string(v);
}

static int token_expires(json_object *root, long *expires_in, char *err, size_t errlen)
{
	json_object *v;
	double d;

	*expires_in = TOKEN_DEFAULT_EXPIRES;
	if (!json_object_object_get_ex(root, "expires_in", &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return reg_errf(err, errlen, -EINVAL, "token response: expires_in: expected a number");
	d = json_object_get_double(v);
	/* docker's rule: a lifetime under a minute means "use the default" */
	if (!(d >= 1))
		return 0;
	*expires_in = d > AUTH_TOKEN_MAX_EXPIRES ? AUTH_TOKEN_MAX_EXPIRES : (long)d;
	return 0;
}

int auth_parse_token_response(const char *body, size_t len, char *token, size_t toklen,
			      long *expires_in, char *err, size_t errlen)
{
	json_object *root;
	const char *t;
	size_t n = 0;
	char jerr[256];
	int rc;

	if (toklen)
		token[0] = 0;
	*expires_in = TOKEN_DEFAULT_EXPIRES;
	if (len > TOKEN_MAX_BODY)
		return reg_errf(err, errlen, -EINVAL, "token response: larger than %u bytes",
				TOKEN_MAX_BODY);
	rc = fetchd_json_parse(body, len, &root, jerr, sizeof(jerr));
	if (rc)
		return reg_errf(err, errlen, rc, "token response: %s", jerr);
	if (!json_object_is_type(root, json_type_object)) {
		rc = reg_errf(err, errlen, -EINVAL, "token response: expected a JSON object");
		goto out;
	}
	/* "token", else "access_token" (OAuth2 name); an empty one does not count */
	t = str_member(root, "token", &n);
	if (!t)
		t = str_member(root, "access_token", &n);
	if (!t) {
		rc = reg_errf(err, errlen, -EINVAL, "token response: no token or access_token string");
		goto out;
	}
	if (n >= toklen) {
		rc = reg_errf(err, errlen, -EINVAL, "token response: token longer than %zu bytes",
			      toklen ? toklen - 1 : 0);
		goto out;
	}
	/* it goes into "Authorization: Bearer <token>" verbatim */
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f) {
			rc = reg_errf(err, errlen, -EINVAL,
				      "token response: token has a space, control or non-ASCII byte");
			goto out;
		}
	}
	rc = token_expires(root, expires_in, err, errlen);
	if (rc)
		goto out;
	memcpy(token, t, n + 1);
out:
	if (rc)
		*expires_in = TOKEN_DEFAULT_EXPIRES;
	json_object_put(root);
	return rc;
}

/* ------------------------------------------------------------------------
 * Basic and base64
 */

int auth_basic_header(const struct reg_cred *cred, char *out, size_t outlen)
{
	char up[sizeof(cred->user) + 1 + sizeof(cred->pass)];
	int n, rc;

	if (outlen < 7)
		return -ENAMETOOLONG;
	n = snprintf(up, sizeof(up), "%s:%s", cred->user, cred->pass);
	if (n < 0 || (size_t)n >= sizeof(up)) {
		explicit_bzero(up, sizeof(up));
		return -ENAMETOOLONG;
	}
	memcpy(out, "Basic ", 7);
	rc = auth_b64_encode((const unsigned char *)up, (size_t)n, out + 6, outlen - 6);
	explicit_bzero(up, sizeof(up));
	if (rc)
		explicit_bzero(out, outlen);
	return rc;
}

int auth_realm_check(const struct auth_challenge *ch, const char *reg_url, char *err,
		     size_t errlen)
{
	/* a token for an https registry is not asked for over http: a downgrade */
	if (ch->scheme == AUTH_BEARER && url_is_https(reg_url) && !url_is_https(ch->realm))
		return reg_errf(err, errlen, -EACCES,
				"token realm is http:// for an https registry: refused");
	return 0;
}

static int basic_line(const struct reg_cred *cred, char *out, size_t outlen)
{
	static const char name[] = "Authorization: ";

	if (outlen < sizeof(name))
		return -ENAMETOOLONG;
	memcpy(out, name, sizeof(name));
	return auth_basic_header(cred, out + sizeof(name) - 1, outlen - (sizeof(name) - 1));
}

int auth_answer(const struct auth_challenge *ch, const char *reg_url, const struct reg_cred *cred,
		char *hdr, size_t hdrlen, char *err, size_t errlen)
{
	int rc;

	if (hdrlen)
		hdr[0] = 0;
	if (ch->scheme != AUTH_BASIC && ch->scheme != AUTH_BEARER)
		return reg_errf(err, errlen, -EINVAL, "unsupported authentication scheme");
	rc = auth_realm_check(ch, reg_url, err, errlen);
	if (rc)
		return rc;
	if (ch->scheme == AUTH_BASIC && !cred->user[0])
		return reg_errf(err, errlen, -EACCES, "Basic auth asked for, and no credentials");
	if (cred->user[0]) {
		rc = basic_line(cred, hdr, hdrlen);
		if (rc) {
			if (hdrlen)
				explicit_bzero(hdr, hdrlen);
			return reg_errf(err, errlen, rc, "credentials too long for a Basic header");
		}
	}
	return ch->scheme == AUTH_BASIC ? AUTH_ANSWER_HEADER : AUTH_ANSWER_TOKEN;
}

int auth_bearer_line(const char *token, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "Authorization: Bearer %s", token);

	if (n < 0 || (size_t)n >= outlen) {
		if (outlen)
			explicit_bzero(out, outlen);
		return -ENAMETOOLONG;
	}
	return 0;
}

bool auth_plain_http_first(const char *url)
{
	static bool warned;

	return !url_is_https(url) && !__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED);
}

void auth_cred_id(const struct reg_cred *cred, char *out, size_t outlen)
{
	unsigned char buf[sizeof(cred->user) + sizeof(cred->pass)], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t ul = strlen(cred->user), pl = strlen(cred->pass);

	if (!cred->user[0]) {
		snprintf(out, outlen, "-");
		return;
	}
	memcpy(buf, cred->user, ul + 1);
	memcpy(buf + ul + 1, cred->pass, pl);
	if (!EVP_Digest(buf, ul + 1 + pl, md, &mdlen, EVP_sha256(), NULL) || mdlen < 8)
		memset(md, 0, 8);
	explicit_bzero(buf, sizeof(buf));
	snprintf(out, outlen, "%02x%02x%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2], md[3],
		 md[4], md[5], md[6], md[7]);
	explicit_bzero(md, sizeof(md));
}

int auth_token_key(const char *url, const char *cred_id, const struct auth_challenge *ch,
		   char *out, size_t outlen)
{
	char origin[320];
	int rc = url_origin_of(url, origin, sizeof(origin)), n;

	if (outlen)
		out[0] = 0;
	if (rc)
		return rc == -ENAMETOOLONG ? rc : -EINVAL;
	n = snprintf(out, outlen, "%s|%s|%s|%s|%s", origin, cred_id, ch->realm, ch->service,
		     ch->scope);
	if (n < 0 || (size_t)n >= outlen) {
		if (outlen)
			out[0] = 0;
		return -ENAMETOOLONG;
	}
	return 0;
}

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int auth_b64_encode(const unsigned char *in, size_t len, char *out, size_t outlen)
{
	size_t o = 0;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 2 || outlen < AUTH_B64_ENCODED_LEN(len) + 1) {
		if (outlen)
			out[0] = 0;
		return -ENAMETOOLONG;
	}
	for (size_t i = 0; i < len; i += 3) {
		unsigned int v = (unsigned int)in[i] << 16;

		if (i + 1 < len)
			v |= (unsigned int)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
	}
	out[o] = 0;
	return 0;
}

static int b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict, like Go's base64.StdEncoding (docker's): padded, no whitespace. */
int auth_b64_decode(const char *in, size_t len, unsigned char *out, size_t *outlen)
{
	size_t o = 0;

	*outlen = 0;
	if (len % 4)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		int pad = 0, v[4];

		for (int k = 0; k < 4; k++) {
			v[k] = b64_val(in[i + k]);
			if (v[k] >= 0 && !pad)
				continue;
			/* '=' only in the last quantum's last two places, and only trailing */
			if (in[i + k] != '=' || !last || k < 2)
				return -EINVAL;
			pad++;
			v[k] = 0;
		}
		out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[o++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		if (pad < 1)
			out[o++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
	}
	*outlen = o;
	return 0;
}
