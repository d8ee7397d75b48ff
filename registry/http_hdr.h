/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Values of HTTP response headers that steer what fetchd does next, parsed
 * from bytes a server sent: bounded, no allocation, no locale.
 */
#ifndef OBD_FETCHD_HTTP_HDR_H
#define OBD_FETCHD_HTTP_HDR_H

#include <stddef.h>
#include <stdint.h>

/* A Retry-After longer than this is taken as this (a day). */
#define HTTP_RETRY_AFTER_MAX_S	86400

/*
 * Retry-After (RFC 9110 section 10.2.3): delay-seconds, or an HTTP-date in
 * the IMF-fixdate form senders must use ("Sun, 06 Nov 1994 08:49:37 GMT").
 * v is the value (n bytes, surrounding blanks allowed), now_s the current
 * Unix time. Returns the milliseconds to wait from now (0 for a date in
 * the past), at most HTTP_RETRY_AFTER_MAX_S seconds, or -1 when the value
 * is neither form.
 */
int64_t http_retry_after_ms(const char *v, size_t n, int64_t now_s);

#endif
