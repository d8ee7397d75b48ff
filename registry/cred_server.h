/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Credential servers (credentialConfig.mode http, https, uds; spec 6.4):
 *   GET <path>?remote_url=<blob URL, percent-encoded>            http, https
 *   GET http://localhost/auth?remote_url=<...> over the Unix socket at path   uds
 * answering {"traceId":..,"success":true,"data":{"auths":{...}}}, matched
 * by cred_match_answer() (cred.c: the one matcher, shared with cred.json).
 *
 * Shared by obd (blocking, cred_get) and overlaybd-fetchd (its event loop
 * runs the same request as a curl multi transfer: cred_server_setopt, then
 * cred_server_result on completion). Also the proxy options every transfer
 * of both programs gets (reg_curl_proxy, http.h).
 *
 * Messages name the server ("credential server http://h:p/auth",
 * "credential server unix:/run/x.sock"), never the answer's secrets nor
 * the request's query.
 */
#ifndef OBD_FETCHD_CRED_SERVER_H
#define OBD_FETCHD_CRED_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "config.h"
#include "cred.h"

#define CRED_SERVER_BODY_MAX	(64u * 1024)	/* answers longer than this are refused */

/* The request URL for blob_url. 0, -EINVAL (path of the wrong scheme for
 * the mode, err says so) or -ENAMETOOLONG. */
int cred_server_url(const struct fetchd_config *c, const char *blob_url, char *out,
		    size_t outlen, char *err, size_t errlen);

/* "credential server <path without query>" or "credential server unix:<path>". */
const char *cred_server_name(const struct fetchd_config *c, char *out, size_t outlen);

/*
 * Options of one credential request on easy handle e: URL, timeouts
 * (credentialConfig.timeout for the whole request), protocol pinned to the
 * mode's, TLS (always verified; server_ca_path, client_cert_path,
 * client_key_path), the Unix socket, the proxy (not for uds). No redirects.
 * The caller sets its own write and header callbacks.
 */
void cred_server_setopt(CURL *e, const struct fetchd_config *c, const char *url);

/*
 * Judge a finished credential request: 0 with *cred (maybe anonymous), or
 * -EAGAIN (worth retrying: timeout, connection failure, 429, 5xx) or
 * -EACCES (refused: success false, bad answer, other status), err naming
 * the server and why.
 */
int cred_server_result(const struct fetchd_config *c, const char *blob_url, CURLcode rc,
		       const char *curl_err, long status, const char *body, size_t len,
		       bool overflow, struct reg_cred *cred, char *err, size_t errlen);

/* Blocking: any mode (file: cred_lookup), for obd. Errors as above. */
int cred_get(const struct fetchd_config *c, const char *blob_url, struct reg_cred *cred,
	     char *err, size_t errlen);

#endif
