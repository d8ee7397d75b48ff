/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Registry credentials from a docker-config-like cred.json (spec 6.4):
 *   { "auths": { "<key>": { "username": "u", "password": "p" },
 *                "<key2>": { "auth": "<base64 of u:p>" } } }
 * The blob URL scheme://host[:port]/v2/a/b/blobs/<digest> yields the
 * prefixes host[:port], host[:port]/a, host[:port]/a/b; the FIRST auths
 * entry in file order equal to any prefix wins (not the longest); "auth"
 * beats username/password inside one entry; no match = anonymous.
 * Never log what these return.
 */
#ifndef OBD_FETCHD_CRED_H
#define OBD_FETCHD_CRED_H

#include <stddef.h>

struct reg_cred {
	char user[256];		/* "" = anonymous */
	char pass[1024];
};

/*
 * Pure: match url against the JSON text (len bytes). 0 (cred filled, maybe
 * anonymous) or -EINVAL with err naming the field ("auths.<key>.auth: not
 * base64 of user:password"); never prints secrets into err.
 */
int cred_match_json(const char *json, size_t len, const char *url, struct reg_cred *cred,
		    char *err, size_t errlen);

/*
 * The same for a credential server's answer (modes http, https, uds; spec
 * 6.4): {"traceId": .., "success": true, "data": { "auths": {...} }}, data
 * matched exactly as cred.json is. -EACCES when success is false, -EINVAL
 * when the answer is not of that shape; err names the traceId, never a
 * secret.
 */
int cred_match_answer(const char *json, size_t len, const char *url, struct reg_cred *cred,
		      char *err, size_t errlen);

/* Read path (re-read on every call: credentials may change) and match. A
 * missing file is anonymous; "" path is anonymous. Errors name the file. */
int cred_lookup(const char *path, const char *url, struct reg_cred *cred, char *err,
		size_t errlen);

/* Overwrite the secret bytes (explicit_bzero). */
void cred_wipe(struct reg_cred *cred);

#endif
