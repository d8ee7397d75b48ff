// SPDX-License-Identifier: GPL-2.0-only
/*
 * Credential servers (cred_server.h). The request is built and judged
 * here for both programs, so obd and the daemon cannot disagree about
 * what an answer means; only the waiting differs (curl easy in obd, the
 * daemon's multi handle in fetchd/credq.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cred_server.h"
#include "http.h"
#include "url.h"

int cred_server_url(const struct fetchd_config *c, const char *blob_url, char *out,
		    size_t outlen, char *err, size_t errlen)
{
	const char *base = c->cred_path, *want = NULL;
	int rc;

	if (c->cred_mode == CRED_MODE_UDS)
		base = "http://localhost/auth";
	else if (c->cred_mode == CRED_MODE_HTTP)
		want = "http";
	else
		want = "https";
	/* the mode names the protocol: an https path in mode http would send
	 * the request without the TLS options the admin meant to give */
	if (want && !url_has_scheme(base, want))
		return reg_errf(err, errlen, -EINVAL,
				"credentialConfig.path: mode %s needs a %s:// URL", want, want);
	rc = url_append_query(base, "remote_url", blob_url, out, outlen);
	if (rc == -ENAMETOOLONG || rc == -ENOMEM)
		return reg_errf(err, errlen, rc, "credential server request URL too long");
	if (rc)
		return reg_errf(err, errlen, rc, "credentialConfig.path: not a URL");
	return 0;
}

const char *cred_server_name(const struct fetchd_config *c, char *out, size_t outlen)
{
	char url[PATH_MAX + 32];

	if (c->cred_mode == CRED_MODE_UDS)
		snprintf(out, outlen, "credential server unix:%s", c->cred_path);
	else
		snprintf(out, outlen, "credential server %s",
			 url_redact(c->cred_path, url, sizeof(url)));
	return out;
}

void cred_server_setopt(CURL *e, const struct fetchd_config *c, const char *url)
{
	long ms = (long)(c->cred_timeout_s ? c->cred_timeout_s : 1) * 1000;

	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR,
			 c->cred_mode == CRED_MODE_HTTPS ? "https" : "http");
	/* timeout covers the whole request: a slow server fails, it does not stall us */
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ms);
	curl_easy_setopt(e, CURLOPT_USERAGENT,
			 c->user_agent[0] ? c->user_agent : FETCHD_USER_AGENT);
	if (c->cred_mode == CRED_MODE_HTTPS)
		reg_curl_tls(e, c->cred_server_ca, c->cred_client_cert, c->cred_client_key);
	else
		reg_curl_tls(e, "", "", "");
	if (c->cred_mode == CRED_MODE_UDS) {
		curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, c->cred_path);
	} else {
		/*
		 * The answer is the secrets: only the proxy the config names
		 * may carry it, never one picked up from the environment
		 * (http_proxy, all_proxy...), which would see an http answer
		 * in the clear.
		 */
		if (!c->proxy[0])
			curl_easy_setopt(e, CURLOPT_PROXY, "");
		reg_curl_proxy(e, c);
	}
}

int cred_server_result(const struct fetchd_config *c, const char *blob_url, CURLcode rc,
		       const char *curl_err, long status, const char *body, size_t len,
		       bool overflow, struct reg_cred *cred, char *err, size_t errlen)
{
	char name[PATH_MAX + 64], msg[384];
	int ret;

	memset(cred, 0, sizeof(*cred));
	cred_server_name(c, name, sizeof(name));
	if (overflow)
		return reg_errf(err, errlen, -EACCES, "%s: answer longer than %u bytes", name,
				CRED_SERVER_BODY_MAX);
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return reg_errf(err, errlen, -EAGAIN, "%s: no answer within credentialConfig.timeout "
				"(%u s)", name, c->cred_timeout_s);
	if (rc != CURLE_OK)
		return reg_errf(err, errlen, reg_curl_transient(rc) ? -EAGAIN : -EACCES, "%s: %s", name,
				curl_err && curl_err[0] ? curl_err : curl_easy_strerror(rc));
	if (status != 200)
		return reg_errf(err, errlen, status == 429 || status >= 500 ? -EAGAIN : -EACCES,
				"%s: HTTP %ld", name, status);
	ret = cred_match_answer(body, len, blob_url, cred, msg, sizeof(msg));
	if (ret)
		return reg_errf(err, errlen, -EACCES, "%s: %s", name, msg);
	return 0;
}

struct sink {
	char *buf;
	size_t len;
	bool overflow;
};

static size_t sink_cb(char *p, size_t size, size_t n, void *ctx)
{
	struct sink *s = ctx;

	n *= size;
	if (n > CRED_SERVER_BODY_MAX - s->len) {
		s->overflow = true;
		return 0;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return n;
}

static int server_get(const struct fetchd_config *c, const char *blob_url,
		      struct reg_cred *cred, char *err, size_t errlen)
{
	char url[8192], ebuf[CURL_ERROR_SIZE] = "";
	struct sink s = { .buf = malloc(CRED_SERVER_BODY_MAX) };
	long status = 0;
	CURLcode rc;
	CURL *e;
	int ret;

	ret = cred_server_url(c, blob_url, url, sizeof(url), err, errlen);
	if (ret || !s.buf || !(e = curl_easy_init())) {
		free(s.buf);
		return ret ? ret : reg_errf(err, errlen, -ENOMEM, "out of memory");
	}
	cred_server_setopt(e, c, url);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
	rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(e);
	if (rc == CURLE_WRITE_ERROR && s.overflow)
		rc = CURLE_OK;
	ret = cred_server_result(c, blob_url, rc, ebuf, status, s.buf, s.len, s.overflow, cred,
				 err, errlen);
	explicit_bzero(s.buf, CRED_SERVER_BODY_MAX);
	free(s.buf);
	return ret;
}

int cred_get(const struct fetchd_config *c, const char *blob_url, struct reg_cred *cred,
	     char *err, size_t errlen)
{
	if (c->cred_mode == CRED_MODE_FILE)
		return cred_lookup(c->cred_path, blob_url, cred, err, errlen);
	return server_get(c, blob_url, cred, err, errlen);
}
