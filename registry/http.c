// SPDX-License-Identifier: GPL-2.0-only
/*
 * libcurl options and answers shared by obd's and the daemon's registry
 * requests (http.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"

void reg_curl_tls(CURL *e, const char *ca, const char *cert, const char *key)
{
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca[0]) {
		/* the configured CA replaces the system's: no CA directory either */
		curl_easy_setopt(e, CURLOPT_CAINFO, ca);
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
	}
	if (cert[0])
		curl_easy_setopt(e, CURLOPT_SSLCERT, cert);
	if (key[0])
		curl_easy_setopt(e, CURLOPT_SSLKEY, key);
}

void reg_curl_proxy(CURL *e, const struct fetchd_config *c)
{
	if (c->proxy[0]) {
		curl_easy_setopt(e, CURLOPT_PROXY, c->proxy);
		curl_easy_setopt(e, CURLOPT_NOPROXY, c->no_proxy);
		/* an https proxy is verified against the configured CA alone too */
		if (c->ca_file[0]) {
			curl_easy_setopt(e, CURLOPT_PROXY_CAINFO, c->ca_file);
			curl_easy_setopt(e, CURLOPT_PROXY_CAPATH, NULL);
		}
	} else if (c->no_proxy[0]) {
		curl_easy_setopt(e, CURLOPT_NOPROXY, c->no_proxy);
	}
}

void reg_curl_setup(CURL *e, const struct fetchd_config *c, const char *ua)
{
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent[0] ? c->user_agent : ua);
	reg_curl_tls(e, c->ca_file, c->cert_file, c->key_file);
	reg_curl_proxy(e, c);
}

bool reg_curl_transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

int64_t reg_retry_after_ms(CURL *e)
{
	curl_off_t s = 0;

	if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &s) != CURLE_OK || s <= 0)
		return -1;
	return (int64_t)(s < HTTP_RETRY_AFTER_MAX_S ? s : HTTP_RETRY_AFTER_MAX_S) * 1000;
}

bool reg_header(const char *line, size_t n, const char *name, const char **v, size_t *vlen)
{
	size_t k = strlen(name);
	const char *p, *end = line + n;

	if (n <= k || strncasecmp(line, name, k) || line[k] != ':')
		return false;
	for (p = line + k + 1; p < end && (*p == ' ' || *p == '\t'); p++)
		;
	while (end > p && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*v = p;
	*vlen = (size_t)(end - p);
	return true;
}

bool reg_content_range(const char *v, size_t n, uint64_t *first, uint64_t *last,
		       uint64_t *total)
{
	unsigned long long a, b, t = 0;
	char buf[128];
	int end = -1;

	if (n >= sizeof(buf) || n < 6 || strncasecmp(v, "bytes ", 6))
		return false;
	memcpy(buf, v + 6, n - 6);
	buf[n - 6] = 0;
	/* %n: the whole value, nothing after it ("0-9" alone or "0-9/10x" are no ranges) */
	if (sscanf(buf, "%llu-%llu/%llu%n", &a, &b, &t, &end) != 3 || end != (int)(n - 6)) {
		end = -1;
		t = 0;
		if (sscanf(buf, "%llu-%llu/*%n", &a, &b, &end) != 2 || end != (int)(n - 6))
			return false;
	}
	*first = a;
	*last = b;
	*total = t;
	return true;
}
