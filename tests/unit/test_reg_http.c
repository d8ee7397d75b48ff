// SPDX-License-Identifier: GPL-2.0-only
/*
 * Description: the libcurl half of the registry library (registry/http.c)
 * against a one-answer HTTP server on 127.0.0.1: Retry-After as
 * reg_retry_after_ms() reads it from a finished transfer (libcurl's
 * CURLINFO_RETRY_AFTER, capped), the options of reg_curl_setup() (no
 * redirect followed, no protocol but http and https).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "config.h"
#include "http.h"

static int lfd;
static char answer[1024];	/* the next connection's answer (headers, no body) */

static void *serve(void *arg)
{
	char req[4096];

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		size_t n = 0;
		ssize_t r;

		if (fd < 0)
			return NULL;
		/* the request head, then one answer and close */
		while (n < sizeof(req) - 1 && (r = read(fd, req + n, sizeof(req) - 1 - n)) > 0) {
			n += (size_t)r;
			req[n] = 0;
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		if (write(fd, answer, strlen(answer)) < 0)
			perror("write");
		close(fd);
	}
	return arg;
}

/* One GET of http://127.0.0.1:port/ answered with status and extra header h. */
static CURL *get(int port, const struct fetchd_config *c, int status, const char *h, CURLcode *rc)
{
	CURL *e = curl_easy_init();
	char url[64];

	snprintf(answer, sizeof(answer), "HTTP/1.1 %d X\r\n%s%sContent-Length: 0\r\n"
		 "Connection: close\r\n\r\n", status, h, h[0] ? "\r\n" : "");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v2/", port);
	curl_easy_setopt(e, CURLOPT_URL, url);
	reg_curl_setup(e, c, "test/0");
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
	*rc = curl_easy_perform(e);
	return e;
}

static int64_t retry_after(int port, const struct fetchd_config *c, int status, const char *h)
{
	CURLcode rc;
	CURL *e = get(port, c, status, h, &rc);
	int64_t ms = rc == CURLE_OK ? reg_retry_after_ms(e) : -2;

	curl_easy_cleanup(e);
	return ms;
}

/* An HTTP-date (IMF-fixdate) s seconds from now. */
static void date_in(long s, char *out, size_t outlen)
{
	time_t t = time(NULL) + s;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, outlen, "Retry-After: %a, %d %b %Y %H:%M:%S GMT", &tm);
}

int main(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	struct fetchd_config c;
	pthread_t th;
	char h[128];
	CURLcode rc;
	CURL *e;
	int64_t ms;
	long code = 0;
	int port;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	fetchd_config_defaults(&c);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 4) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
		perror("test server");
		return 1;
	}
	port = ntohs(sa.sin_port);
	pthread_create(&th, NULL, serve, NULL);

	tap_ok(retry_after(port, &c, 503, "Retry-After: 120") == 120000,
	       "Retry-After: delay-seconds (503)");
	tap_ok(retry_after(port, &c, 429, "Retry-After:   7  ") == 7000,
	       "Retry-After: blanks around the value (429)");
	tap_ok(retry_after(port, &c, 503, "Retry-After: 86401") == HTTP_RETRY_AFTER_MAX_S * 1000LL,
	       "Retry-After: more than a day is a day");
	/* libcurl does not read a number past curl_off_t: none (it was a day with the old parser) */
	tap_ok(retry_after(port, &c, 503, "Retry-After: 99999999999999999999999") == -1,
	       "Retry-After: a number past 2^63 is none");
	tap_ok(retry_after(port, &c, 503, "") == -1, "Retry-After: none");
	tap_ok(retry_after(port, &c, 503, "Retry-After: 0") == -1, "Retry-After: 0 (now) is none");
	tap_ok(retry_after(port, &c, 503, "Retry-After: soon") == -1, "Retry-After: junk is none");
	tap_ok(retry_after(port, &c, 503, "Retry-After: -5") == -1, "Retry-After: negative is none");
	date_in(120, h, sizeof(h));
	ms = retry_after(port, &c, 503, h);
	tap_ok(ms >= 118000 && ms <= 120000, "Retry-After: an HTTP-date two minutes ahead (%lld ms)",
	       (long long)ms);
	date_in(-3600, h, sizeof(h));
	tap_ok(retry_after(port, &c, 503, h) == -1, "Retry-After: a date in the past is none");
	date_in(3L * 86400, h, sizeof(h));
	tap_ok(retry_after(port, &c, 503, h) == HTTP_RETRY_AFTER_MAX_S * 1000LL,
	       "Retry-After: a date three days ahead is a day");

	/* reg_curl_setup: curl follows no redirect (the callers do, auth in hand) */
	e = get(port, &c, 302, "Location: http://127.0.0.1:1/elsewhere", &rc);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	tap_ok(rc == CURLE_OK && code == 302, "reg_curl_setup: a redirect is not followed");
	curl_easy_cleanup(e);
	e = curl_easy_init();
	reg_curl_setup(e, &c, "test/0");
	curl_easy_setopt(e, CURLOPT_URL, "file:///etc/hostname");
	rc = curl_easy_perform(e);
	tap_ok(rc == CURLE_UNSUPPORTED_PROTOCOL, "reg_curl_setup: file:// refused (%d)", rc);
	curl_easy_cleanup(e);

	shutdown(lfd, SHUT_RDWR);
	close(lfd);
	pthread_join(th, NULL);
	curl_global_cleanup();
	return tap_done();
}
