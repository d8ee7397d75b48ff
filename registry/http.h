/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The libcurl side of a registry request that obd (curl easy, one request
 * at a time: tools/reg_client.c) and overlaybd-fetchd (curl multi on its
 * event loop: fetchd/registry.c) share: the options every transfer gets,
 * which failures are worth another try, Retry-After.
 */
#ifndef OBD_REGISTRY_HTTP_H
#define OBD_REGISTRY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "config.h"

/*
 * The options of every registry (and token realm, and P2P peer) transfer:
 * http and https only; redirects are not followed by curl (the callers do,
 * so the Authorization header never leaves the registry's origin); no
 * signals; the user agent (fetchConfig's, else ua); TLS always verified,
 * with caFile (replacing the system CAs), certFile and keyFile;
 * fetchConfig.proxy / noProxy (reg_curl_proxy). Timeouts are the caller's.
 */
void reg_curl_setup(CURL *e, const struct fetchd_config *c, const char *ua);

/* TLS verified (peer and host); ca, when not "", replaces the system CAs
 * (CURLOPT_CAPATH cleared too); cert / key: a client certificate. */
void reg_curl_tls(CURL *e, const char *ca, const char *cert, const char *key);

/*
 * fetchConfig.proxy / noProxy on e. The config wins: with proxy set,
 * CURLOPT_PROXY and CURLOPT_NOPROXY (noProxy, "" = nothing exempt) are set,
 * so http_proxy, https_proxy, all_proxy and no_proxy from the environment
 * are ignored. Without proxy, curl's environment proxies apply as for curl
 * itself, with noProxy (when set) replacing no_proxy.
 */
void reg_curl_proxy(CURL *e, const struct fetchd_config *c);

/* A transfer that failed this way may succeed if made again (timeouts,
 * refused or dropped connections, a failed TLS handshake). */
bool reg_curl_transient(CURLcode rc);

/*
 * One response header line as curl's CURLOPT_HEADERFUNCTION hands it (n
 * bytes, CR LF included): true when it is a name header (case-insensitive),
 * with its value, blanks and CR LF around it dropped, in *v and *vlen.
 */
bool reg_header(const char *line, size_t n, const char *name, const char **v, size_t *vlen);

/* A Content-Range value (n bytes) "bytes first-last/total", total "*"
 * giving 0: true when it is one (nothing after it). */
bool reg_content_range(const char *v, size_t n, uint64_t *first, uint64_t *last,
		       uint64_t *total);

/* A Retry-After longer than this is taken as this (a day). */
#define HTTP_RETRY_AFTER_MAX_S	86400

/*
 * The finished transfer's Retry-After (RFC 9110 10.2.3, delay-seconds or
 * an HTTP-date; libcurl's CURLINFO_RETRY_AFTER): the milliseconds to wait,
 * at most HTTP_RETRY_AFTER_MAX_S seconds, or -1 when the answer had none,
 * said "now" (0, a date in the past) or something libcurl does not read.
 */
int64_t reg_retry_after_ms(CURL *e);

#endif
