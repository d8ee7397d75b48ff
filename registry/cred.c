// SPDX-License-Identifier: GPL-2.0-only
/*
 * cred.json (spec 6.4). Secrets pass through here, so: error messages name
 * the field but never show its value, our copies are wiped, and so are the
 * secret strings inside json-c's tree before it is freed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "auth.h"
#include "config.h"
#include "cred.h"
#include "url.h"

#define CRED_MAX_FILE	(1u << 20)

void cred_wipe(struct reg_cred *cred)
{
	explicit_bzero(cred, sizeof(*cred));
}

/*
 * An auths key for an error message: it is a host/repository name, not a
 * secret, but it came from a file, so controls become '?' and it is cut.
 */
static const char *key_name(const char *key, char *buf, size_t cap)
{
	size_t i;

	for (i = 0; key[i] && i + 4 < cap; i++)
		buf[i] = (unsigned char)key[i] < 0x20 || key[i] == 0x7f ? '?' : key[i];
	if (key[i]) {
		buf[i > 3 ? i - 3 : 0] = 0;
		strcat(buf, "...");
	} else {
		buf[i] = 0;
	}
	return buf;
}

/* Zero a string inside json-c's tree: freeing would leave the bytes in the heap. */
static void wipe_json_string(json_object *v)
{
	if (v && json_object_is_type(v, json_type_string))
		explicit_bzero((char *)json_object_get_string(v),
			       (size_t)json_object_get_string_len(v));
}

static void wipe_entry(json_object *entry)
{
	json_object *v;

	if (!entry || !json_object_is_type(entry, json_type_object))
		return;
	if (json_object_object_get_ex(entry, "auth", &v))
		wipe_json_string(v);
	if (json_object_object_get_ex(entry, "password", &v))
		wipe_json_string(v);
	if (json_object_object_get_ex(entry, "identitytoken", &v))
		wipe_json_string(v);
}

/* Wipe every entry: the secrets of entries we did not match are in the heap too. */
static void wipe_tree(json_object *root)
{
	json_object *auths;

	if (!root || !json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "auths", &auths) ||
	    !json_object_is_type(auths, json_type_object))
		return;
	json_object_object_foreach(auths, k, v) {
		(void)k;
		wipe_entry(v);
	}
}

/*
 * A string member of an entry: 1 with *s and *n, 0 absent or null,
 * -EINVAL of another type or holding a NUL.
 */
static int entry_str(json_object *entry, const char *field, const char *key, const char **s,
		     size_t *n, char *err, size_t errlen)
{
	json_object *v;
	char kb[80];

	if (!json_object_object_get_ex(entry, field, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return reg_errf(err, errlen, -EINVAL, "auths.%s.%s: expected a string",
				key_name(key, kb, sizeof(kb)), field);
	*s = json_object_get_string(v);
	*n = (size_t)json_object_get_string_len(v);
	if (strlen(*s) != *n)
		return reg_errf(err, errlen, -EINVAL, "auths.%s.%s: contains a NUL character",
				key_name(key, kb, sizeof(kb)), field);
	return 1;
}

/*
 * user and pass into cred, checked: a ':' in the user name would move the
 * split of "user:pass" on the server's side; controls have no business in
 * a header.
 */
static int set_cred(struct reg_cred *cred, const char *user, size_t ulen, const char *pass,
		    size_t plen, const char *key, const char *what, char *err, size_t errlen)
{
	char kb[80];

	if (ulen >= sizeof(cred->user) || plen >= sizeof(cred->pass))
		return reg_errf(err, errlen, -EINVAL, "auths.%s.%s: user name or password too long",
				key_name(key, kb, sizeof(kb)), what);
	if (memchr(user, ':', ulen))
		return reg_errf(err, errlen, -EINVAL, "auths.%s.%s: user name contains ':'",
				key_name(key, kb, sizeof(kb)), what);
	for (size_t i = 0; i < ulen + plen; i++) {
		unsigned char ch = i < ulen ? (unsigned char)user[i] : (unsigned char)pass[i - ulen];

		if (ch < 0x20 || ch == 0x7f)
			return reg_errf(err, errlen, -EINVAL,
					"auths.%s.%s: user name or password contains a control character",
					key_name(key, kb, sizeof(kb)), what);
	}
	memcpy(cred->user, user, ulen);
	cred->user[ulen] = 0;
	memcpy(cred->pass, pass, plen);
	cred->pass[plen] = 0;
	if (!ulen)	/* no user: anonymous, whatever the password */
		explicit_bzero(cred->pass, sizeof(cred->pass));
	return 0;
}

/* "auth": base64 of "user:pass", split at the first ':' (docker's rule). */
static int entry_auth(const char *b64, size_t n, struct reg_cred *cred, const char *key,
		      char *err, size_t errlen)
{
	unsigned char dec[AUTH_B64_DECODED_MAX(4 * 1024)];
	size_t dlen = 0;
	char *colon;
	char kb[80];
	int rc;

	if (n > 4 * 1024 || auth_b64_decode(b64, n, dec, &dlen) ||
	    !(colon = memchr(dec, ':', dlen)) || memchr(dec, 0, dlen)) {
		explicit_bzero(dec, sizeof(dec));
		return reg_errf(err, errlen, -EINVAL, "auths.%s.auth: not base64 of user:password",
				key_name(key, kb, sizeof(kb)));
	}
	rc = set_cred(cred, (char *)dec, (size_t)(colon - (char *)dec), colon + 1,
		      dlen - (size_t)(colon - (char *)dec) - 1, key, "auth", err, errlen);
	explicit_bzero(dec, sizeof(dec));
	return rc;
}

static int match_entry(json_object *entry, const char *key, struct reg_cred *cred, char *err,
		       size_t errlen)
{
	const char *a = NULL, *u = NULL, *p = NULL;
	size_t an = 0, un = 0, pn = 0;
	char kb[80];
	int rc;

	if (!json_object_is_type(entry, json_type_object))
		return reg_errf(err, errlen, -EINVAL, "auths.%s: expected an object",
				key_name(key, kb, sizeof(kb)));
	rc = entry_str(entry, "auth", key, &a, &an, err, errlen);
	if (rc < 0)
		return rc;
	/* an empty "auth" is what docker writes next to a credential helper: absent */
	if (rc == 1 && an)
		return entry_auth(a, an, cred, key, err, errlen);
	rc = entry_str(entry, "username", key, &u, &un, err, errlen);
	if (rc < 0)
		return rc;
	rc = entry_str(entry, "password", key, &p, &pn, err, errlen);
	if (rc < 0)
		return rc;
	if (!u)
		return 0;	/* neither form: anonymous */
	return set_cred(cred, u, un, p ? p : "", pn, key, "username", err, errlen);
}

static int match_auths(json_object *root, const struct reg_url *u, struct reg_cred *cred,
		       char *err, size_t errlen)
{
	char (*pre)[1024];
	json_object *auths;
	int np, max = 2, rc = 0;

	if (!json_object_is_type(root, json_type_object))
		return reg_errf(err, errlen, -EINVAL, "cred.json: expected an object");
	if (!json_object_object_get_ex(root, "auths", &auths) ||
	    json_object_is_type(auths, json_type_null))
		return 0;	/* e.g. only credHelpers: anonymous */
	if (!json_object_is_type(auths, json_type_object))
		return reg_errf(err, errlen, -EINVAL, "auths: expected an object");
	/* host, then one prefix per repository component */
	for (const char *r = u->repo; *r; r++)
		max += *r == '/';
	pre = malloc((size_t)max * sizeof(*pre));
	if (!pre)
		return reg_errf(err, errlen, -ENOMEM, "out of memory");
	np = url_cred_prefixes(u, pre, max);
	/* file order, first hit wins: not the longest match (spec 6.4) */
	json_object_object_foreach(auths, key, entry) {
		bool hit = false;

		for (int i = 0; i < np && !hit; i++)
			hit = !strcmp(key, pre[i]);
		if (hit) {
			rc = match_entry(entry, key, cred, err, errlen);
			break;
		}
	}
	free(pre);
	return rc;
}

/*
 * A credential server's answer: {"traceId":..,"success":true,"data":{...}},
 * data holding what cred.json holds: *data, or an error (-EACCES: refused).
 * traceId (not a secret) goes into the error, cut and cleaned: it is what
 * the server's operators look up.
 */
static int answer_data(json_object *root, json_object **data, char *err, size_t errlen)
{
	json_object *v;
	char tb[80], trace[100] = "";

	if (!json_object_is_type(root, json_type_object))
		return reg_errf(err, errlen, -EINVAL, "answer: expected an object");
	if (json_object_object_get_ex(root, "traceId", &v) && !json_object_is_type(v, json_type_null))
		snprintf(trace, sizeof(trace), " (traceId %s)",
			 key_name(json_object_get_string(v), tb, sizeof(tb)));
	if (!json_object_object_get_ex(root, "success", &v) ||
	    !json_object_is_type(v, json_type_boolean))
		return reg_errf(err, errlen, -EINVAL, "answer: no boolean \"success\"%s", trace);
	if (!json_object_get_boolean(v))
		return reg_errf(err, errlen, -EACCES, "answer: success is false%s", trace);
	if (!json_object_object_get_ex(root, "data", data) ||
	    !json_object_is_type(*data, json_type_object))
		return reg_errf(err, errlen, -EINVAL, "answer: success without a \"data\" object%s",
				trace);
	return 0;
}

/* server: match data of the answer, else the whole text as cred.json. */
static int match_text(const char *json, size_t len, const char *url, bool server,
		      struct reg_cred *cred, char *err, size_t errlen)
{
	json_object *root, *holder = NULL;
	struct reg_url u;
	char uerr[256];
	int rc;

	memset(cred, 0, sizeof(*cred));
	rc = url_parse_blob(url, &u, uerr, sizeof(uerr));
	if (rc)
		return reg_errf(err, errlen, rc, "%s", uerr);
	rc = fetchd_json_parse(json, len, &root, err, errlen);
	if (rc)
		return rc;
	if (server)
		rc = answer_data(root, &holder, err, errlen);
	else
		holder = root;
	if (!rc)
		rc = match_auths(holder, &u, cred, err, errlen);
	if (rc)
		cred_wipe(cred);
	/* a server's data may hold secrets even when the answer is refused */
	wipe_tree(root);
	if (server && json_object_is_type(root, json_type_object) &&
	    json_object_object_get_ex(root, "data", &holder))
		wipe_tree(holder);
	json_object_put(root);
	return rc;
}

int cred_match_json(const char *json, size_t len, const char *url, struct reg_cred *cred,
		    char *err, size_t errlen)
{
	return match_text(json, len, url, false, cred, err, errlen);
}

int cred_match_answer(const char *json, size_t len, const char *url, struct reg_cred *cred,
		      char *err, size_t errlen)
{
	return match_text(json, len, url, true, cred, err, errlen);
}

int cred_lookup(const char *path, const char *url, struct reg_cred *cred, char *err,
		size_t errlen)
{
	char msg[512];
	size_t len;
	char *buf;
	int rc;

	memset(cred, 0, sizeof(*cred));
	if (!path || !path[0])
		return 0;
	rc = fetchd_read_file(path, CRED_MAX_FILE, &buf, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc == -EFBIG)
		return reg_errf(err, errlen, rc, "%s: larger than %u bytes", path, CRED_MAX_FILE);
	if (rc)
		return reg_errf(err, errlen, rc, "%s: %s", path, strerror(-rc));
	rc = cred_match_json(buf, len, url, cred, msg, sizeof(msg));
	explicit_bzero(buf, len);
	free(buf);
	if (rc)
		return reg_errf(err, errlen, rc, "%s: %s", path, msg);
	return 0;
}
