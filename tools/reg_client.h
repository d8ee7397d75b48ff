/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A small blocking registry client for obd (libcurl easy): the spec 6.3
 * auth flow (anonymous, Basic, Bearer tokens; credentials from cred.json or
 * a credential server, credentialConfig.mode), ranged blob
 * GETs, blob HEAD, blob upload (monolithic or chunked) and manifest PUT.
 *
 * Redirects are followed by hand (at most 8 hops); the Authorization
 * header goes only to the registry's own origin. TLS is always verified.
 * fetchConfig.proxy / noProxy apply to every request (reg_curl_setup).
 * The URL, auth and libcurl logic is the registry library's (registry/:
 * url.h, auth.h, http.h), the same the daemon's transfers use; this file
 * is the blocking transport on top of it.
 * Errors are reported on stderr as "obd: <url>: HTTP 404 ..." with the
 * URL's user info and query left out (url_redact); credentials and tokens are never
 * printed. Every function returns 0 (or the documented positive value)
 * or -errno.
 */
#ifndef OBD_REG_CLIENT_H
#define OBD_REG_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "url.h"

struct reg_client {
	const struct fetchd_config *cfg;
	void *curl;			/* CURL * */
	struct reg_url reg;		/* scheme, host, port, repo of the registry */
	char origin[300];		/* scheme://host[:port] */
	char cred_url[1024];		/* a blob URL of the repo, for cred.json matching */
	char *auth;			/* "Authorization: ..." header line, or NULL */
	uint64_t fetched;		/* blob bytes received by reg_blob_get */
	uint64_t uploaded;		/* blob bytes sent by reg_blob_upload* */
};

/* u: the registry and repository (url_parse_ref or url_parse_blob). */
int reg_client_init(struct reg_client *c, const struct fetchd_config *cfg,
		    const struct reg_url *u);
void reg_client_free(struct reg_client *c);

/*
 * Read bytes [off, off + len) of the blob at url (size: the blob size)
 * into buf: a 206 with the matching Content-Range, or a 200 only when the
 * range is the whole blob.
 */
int reg_blob_get(struct reg_client *c, const char *url, uint64_t size, uint64_t off,
		 uint64_t len, void *buf);

/* HEAD <origin>/v2/<repo>/blobs/<digest>: 1 (and *size, if not NULL) if
 * the registry has it, 0 if not (404), or -errno (reported). */
int reg_blob_head(struct reg_client *c, const char *digest, uint64_t *size);

/* As reg_blob_head, for a full blob URL. */
int reg_blob_head_url(struct reg_client *c, const char *url, uint64_t *size);

/* Progress callback for uploads: n more bytes were sent. */
typedef void (*reg_progress_fn)(void *ctx, uint64_t n);

/*
 * Upload size bytes of fd (from offset 0) as blob digest: POST an upload
 * session, then one PUT ?digest= with the bytes when size <= chunk, else
 * PATCH chunks of chunk bytes and a closing PUT ?digest=.
 */
int reg_blob_upload_fd(struct reg_client *c, const char *digest, int fd, uint64_t size,
		       uint64_t chunk, reg_progress_fn progress, void *pctx);
/* The same, for bytes in memory (the image config). */
int reg_blob_upload_buf(struct reg_client *c, const char *digest, const void *buf,
			size_t len);

/* PUT <origin>/v2/<repo>/manifests/<ref> (an OCI image manifest). */
int reg_manifest_put(struct reg_client *c, const char *ref, const char *body, size_t len);

/*
 * GET <origin>/v2/<repo>/manifests/<ref> (a tag or a digest) with
 * "Accept: <accept>". On a 200 of at most max bytes: *body (malloc'd,
 * NUL-terminated, *len bytes without the NUL) and the response's media
 * type (Content-Type without parameters, "" if none) in ctype. A larger
 * body is -EFBIG, a non-200 -ENOENT (404), -EPERM ... (all reported).
 */
int reg_manifest_get(struct reg_client *c, const char *ref, const char *accept, size_t max,
		     char **body, size_t *len, char *ctype, size_t ctlen);

#endif
