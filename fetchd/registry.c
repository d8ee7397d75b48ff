// SPDX-License-Identifier: GPL-2.0-only
/*
 * HTTP: every request is a curl multi transfer driven by the event loop
 * (socket API). Data GETs carry Range; the answer must be a 206 whose
 * Content-Range is exactly what was asked (a 200 only for a whole-blob
 * range) with exactly that many body bytes. Redirects are followed here,
 * not by curl, so the Authorization header can be dropped when the host
 * changes. Auth (spec 6.3): anonymous first; a 401/403 with a challenge
 * gets credentials (credq.c: cred.json re-read every time, or a credential
 * server asked on the multi handle, its answer cached), Basic directly or
 * a Bearer token from the realm (cached per scope until it expires), and
 * one retry; a second refusal fails the fetch with EACCES. A blob known to
 * need auth authenticates before its GETs.
 *
 * P2P (p2p.c): with p2pConfig enabled, a data GET goes to the peer as
 * "<address>/<actual url>": a probe (Range 0-0, to the registry) first
 * resolves auth and the redirect, cached per blob URL; a peer GET that
 * fails is made again to the registry at once (same attempt, counted in
 * p2p_fallbacks). Token, probe and credential requests never go to the
 * peer. Every transfer gets fetchConfig.proxy / noProxy (reg_curl_proxy).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

#include "registry.h"
#include "auth.h"
#include "http.h"
#include "url.h"

#define TOKEN_CACHE_SLOTS	16
#define TOKEN_MIN_TTL_S		10

struct token_slot {
	char key[FETCHD_TOKEN_KEY_MAX];	/* origin|credentials|realm|service|scope */
	char authz[8192];		/* "Authorization: Bearer ..." */
	int64_t expiry_ms;
};

static struct token_slot tokens[TOKEN_CACHE_SLOTS];
static unsigned int token_next;
static struct list xfers = { &xfers, &xfers };

/*----- curl callbacks into the loop ---------------------------------------------*/
static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct fetchd *d = userp;
	struct epoll_event ev = { .data.u64 = ((uint64_t)EP_CURL_SOCK << 32) | (uint32_t)s };

	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, s, NULL);
		curl_multi_assign(d->multi, s, NULL);
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (epoll_ctl(d->epfd, socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev) < 0 &&
	    epoll_ctl(d->epfd, socketp ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, s, &ev) < 0)
		pr_err("epoll_ctl curl socket %d: %s", s, strerror(errno));
	curl_multi_assign(d->multi, s, (void *)1);
	return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct fetchd *d = userp;
	struct itimerspec its = { 0 };

	if (timeout_ms == 0)
		its.it_value.tv_nsec = 1;	/* "now", but from the loop, not from here */
	else if (timeout_ms > 0) {
		its.it_value.tv_sec = timeout_ms / 1000;
		its.it_value.tv_nsec = (timeout_ms % 1000) * 1000000;
	}
	timerfd_settime(d->curl_tfd, 0, &its, NULL);
	return 0;
}

int reg_init(struct fetchd *d)
{
	CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (rc) {
		pr_err("curl_global_init: %s", curl_easy_strerror(rc));
		return -1;
	}
	d->multi = curl_multi_init();
	if (!d->multi) {
		pr_err("curl_multi_init failed");
		return -1;
	}
	curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
	curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
	/* one connection per concurrent transfer, kept for reuse */
	curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)d->cfg.max_concurrent);
	curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)d->cfg.max_concurrent);
	return 0;
}

void xfer_free(struct fetchd *d, struct xfer *x)
{
	list_del(&x->node);
	if (x->easy) {
		curl_multi_remove_handle(d->multi, x->easy);
		curl_easy_cleanup(x->easy);
	}
	for (struct curl_slist *h = x->hdrs; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));	/* an Authorization value */
	curl_slist_free_all(x->hdrs);
	if (x->kind == X_TOKEN || x->kind == X_CRED) {	/* a token, credentials */
		if (x->body)
			explicit_bzero(x->body, x->body_cap);
		free(x->body);
	}
	if (x->kind == X_CRED)
		credq_xfer_gone(x);
	if (x->peer_trial)
		p2p_trial_gone();
	explicit_bzero(x, sizeof(*x));
	free(x);
}

void reg_fini(struct fetchd *d)
{
	while (!list_empty(&xfers))
		xfer_free(d, container_of(xfers.next, struct xfer, node));
	if (d->multi)
		curl_multi_cleanup(d->multi);
	d->multi = NULL;
	explicit_bzero(tokens, sizeof(tokens));
	credq_fini(d);
	p2p_fini();
	curl_global_cleanup();
}

void reg_abort(struct fetchd *d, struct fetch *f)
{
	if (f->x)
		xfer_free(d, f->x);
	f->x = NULL;
}

/*----- response parsing ------------------------------------------------------------*/
static size_t header_cb(char *line, size_t size, size_t nitems, void *userp)
{
	struct xfer *x = userp;
	size_t n = size * nitems, vlen;
	const char *v;
	int code;

	if (n > 5 && !strncmp(line, "HTTP/", 5)) {
		/* a new response (after 1xx or a redirect): forget the last one's */
		if (sscanf(line, "HTTP/%*s %d", &code) == 1)
			x->status = code;
		x->got_range = false;
		x->www_auth[0] = 0;
	} else if (reg_header(line, n, "Content-Range", &v, &vlen)) {
		x->got_range = reg_content_range(v, vlen, &x->cr_first, &x->cr_last, &x->cr_total);
	} else if (reg_header(line, n, "WWW-Authenticate", &v, &vlen) &&
		   auth_challenge_better(x->www_auth, v, vlen)) {
		snprintf(x->www_auth, sizeof(x->www_auth), "%.*s", (int)vlen, v);
	}
	return n;
}

static size_t data_write_cb(char *p, size_t size, size_t nmemb, void *userp)
{
	struct xfer *x = userp;
	struct fetch *f = x->fetch;
	size_t n = size * nmemb;

	if (x->status == 206 || (x->status == 200 && !f->off && f->len == f->blob->size)) {
		if (n > x->body_cap - x->body_len) {
			x->overflow = true;
			return 0;	/* abort: more than asked */
		}
		memcpy(x->body + x->body_len, p, n);
		x->body_len += n;
		return n;
	}
	/* an error body, or a 200 for a whole blob we did not ask for: bounded */
	x->body_len += n;
	if (x->status == 200 || x->body_len > FETCHD_SMALL_BODY_MAX)
		return 0;
	return n;
}

size_t xfer_small_write_cb(char *p, size_t size, size_t nmemb, void *userp)
{
	struct xfer *x = userp;
	size_t n = size * nmemb;

	if (n > x->body_cap - x->body_len) {
		x->overflow = true;
		return 0;
	}
	memcpy(x->body + x->body_len, p, n);
	x->body_len += n;
	return n;
}

/* A probe's body (a byte, or a whole blob from a server ignoring Range): dropped, bounded. */
static size_t probe_write_cb(char *p, size_t size, size_t nmemb, void *userp)
{
	struct xfer *x = userp;
	size_t n = size * nmemb;

	x->body_len += n;
	return x->body_len > FETCHD_SMALL_BODY_MAX ? 0 : n;
}

/*----- starting transfers ------------------------------------------------------------*/
struct xfer *xfer_alloc(struct fetchd *d, enum xfer_kind kind, const char *url)
{
	struct xfer *x = calloc(1, sizeof(*x));
	CURL *e;

	if (!x)
		return NULL;
	list_add_tail(&x->node, &xfers);
	x->kind = kind;
	snprintf(x->url, sizeof(x->url), "%s", url);
	e = x->easy = curl_easy_init();
	if (!e) {
		xfer_free(d, x);
		return NULL;
	}
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	return x;
}

/* A registry (or peer) request: the registry's TLS, timeouts, proxy. */
static struct xfer *xfer_new(struct fetchd *d, enum xfer_kind kind, const char *url,
			     int64_t deadline_ms)
{
	struct xfer *x = xfer_alloc(d, kind, url);
	int64_t left = deadline_ms - now_ms();
	const struct fetchd_config *c = &d->cfg;
	CURL *e;

	if (!x)
		return NULL;
	e = x->easy;
	curl_easy_setopt(e, CURLOPT_URL, x->url);
	reg_curl_setup(e, c, "overlaybd-fetchd/" FETCHD_VERSION);
	/* the deadline covers every attempt: each gets what is left of it */
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(left > 1 ? left : 1));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)c->connect_timeout_s);
	return x;
}

static int xfer_add_header(struct xfer *x, const char *h)
{
	struct curl_slist *n = curl_slist_append(x->hdrs, h);

	if (!n)
		return -ENOMEM;
	x->hdrs = n;
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
	return 0;
}

int xfer_go(struct fetchd *d, struct xfer *x)
{
	CURLMcode mc = curl_multi_add_handle(d->multi, x->easy);

	if (mc) {
		pr_err("curl_multi_add_handle: %s", curl_multi_strerror(mc));
		xfer_free(d, x);
		return -EIO;
	}
	return 0;
}

/* The blob's Authorization on x, unless a redirect left its host. */
static int add_authz(struct fetch *f, struct xfer *x)
{
	struct blob *b = f->blob;

	if (b->authz[0] && b->authz_expiry_ms && now_ms() >= b->authz_expiry_ms)
		b->authz[0] = 0;
	if (!b->authz[0] || f->cross_host)
		return 0;
	if (xfer_add_header(x, b->authz))
		return -ENOMEM;
	x->sent_authz = true;
	return 0;
}

static bool blob_authz_is_bearer(const struct blob *b)
{
	return !strncmp(b->authz, "Authorization: Bearer ", 22);
}

/* x becomes f's running transfer. */
static int run_for(struct fetchd *d, struct fetch *f, struct xfer *x)
{
	if (xfer_go(d, x))
		return -EIO;
	f->x = x;
	f->state = F_ACTIVE;
	d->st.http_requests++;
	return 0;
}

/*
 * Where the data of f's blob is (spec 6.3 "resolve"), before a GET goes to
 * the peer: one byte from the registry, with the blob's auth, redirects not
 * followed. probe_done() records the answer and calls start_data() again.
 */
static int start_probe(struct fetchd *d, struct fetch *f)
{
	struct xfer *x = xfer_new(d, X_PROBE, f->cur_url, f->deadline_ms);

	if (!x)
		return -ENOMEM;
	x->fetch = f;
	curl_easy_setopt(x->easy, CURLOPT_RANGE, "0-0");
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, probe_write_cb);
	if (add_authz(f, x)) {
		xfer_free(d, x);
		return -ENOMEM;
	}
	return run_for(d, f, x);
}

/* The ranged GET of f at url: the registry's (f->cur_url) or the peer's. */
static int start_get(struct fetchd *d, struct fetch *f, const char *url, bool peer, bool trial)
{
	struct xfer *x = xfer_new(d, X_DATA, url, f->deadline_ms);
	long total_ms, connect_ms;
	char range[64];
	int ret;

	if (!x) {
		if (trial)
			p2p_trial_gone();
		return -ENOMEM;
	}
	x->fetch = f;
	x->body = f->buf;
	x->body_cap = f->len;
	x->via_peer = peer;
	x->peer_trial = trial;
	snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)f->off,
		 (unsigned long long)(f->off + f->len - 1));
	curl_easy_setopt(x->easy, CURLOPT_RANGE, range);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, data_write_cb);
	if (peer) {
		/* a dead or slow peer may cost a part of the deadline, not all of it */
		p2p_timeouts(d, f->deadline_ms - now_ms(), &total_ms, &connect_ms);
		curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, total_ms);
		curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	}
	/* to the peer too: it fetches the actual URL from the registry for us */
	if (add_authz(f, x)) {
		xfer_free(d, x);
		return -ENOMEM;
	}
	ret = run_for(d, f, x);
	if (!ret && peer)
		d->st.p2p_requests++;
	return ret;
}

/*
 * One HTTP request of the current attempt (f->cur_url: after redirects).
 * The attempt's first GET goes to the P2P peer when there is one that is
 * not backed off, once the blob's actual URL is known (else a probe first).
 */
static int start_data(struct fetchd *d, struct fetch *f)
{
	char actual[OBD_CACHE_URL_MAX], purl[OBD_CACHE_URL_MAX];
	bool cross, trial;

	if (now_ms() >= f->deadline_ms) {
		d->st.err_timeout++;
		fetch_fail_logged(d, f, -EIO, "requestTimeout reached");
		return 0;
	}
	if (!f->p2p_skip && !f->hops && p2p_usable(d)) {
		if (!p2p_actual_get(f->blob->url, actual, sizeof(actual), &cross))
			return start_probe(d, f);
		/*
		 * The peer gets the blob's Authorization to fetch for us: a
		 * short-lived Bearer token, never a Basic password. A blob
		 * authenticated with Basic goes to the registry itself, unless
		 * its data is elsewhere (no Authorization goes there anyway).
		 */
		if (!cross && f->blob->authz[0] && !blob_authz_is_bearer(f->blob))
			return start_get(d, f, f->cur_url, false, false);
		if (!p2p_url(d, actual, purl, sizeof(purl)) && p2p_take(d, &trial)) {
			snprintf(f->cur_url, sizeof(f->cur_url), "%s", actual);
			f->cross_host = cross;
			return start_get(d, f, purl, true, trial);
		}
	}
	return start_get(d, f, f->cur_url, false, false);
}

/*
 * A token is for one origin (the registry it is sent to: scheme, host,
 * port), one realm/service/scope and the credentials it was asked with:
 * a registry answering with another's exact challenge gets no token of
 * that other registry, and one credential's token is not another's.
 */
static void token_key(const struct blob *b, const struct auth_challenge *ch, char *out,
		      size_t outlen)
{
	char origin[32];

	/* a URL without an origin (it cannot be fetched) shares with no one */
	if (auth_token_key(b->url, b->cred_id, ch, out, outlen)) {
		snprintf(origin, sizeof(origin), "?%llu", (unsigned long long)b->id);
		snprintf(out, outlen, "%s|%s|%s|%s|%s", origin, b->cred_id, ch->realm, ch->service,
			 ch->scope);
	}
}

static struct token_slot *token_find(const char *key)
{
	unsigned int i;

	for (i = 0; i < TOKEN_CACHE_SLOTS; i++)
		if (tokens[i].expiry_ms > now_ms() && !strcmp(tokens[i].key, key))
			return &tokens[i];
	return NULL;
}

static void token_forget(const struct blob *b)
{
	char key[FETCHD_TOKEN_KEY_MAX];
	struct token_slot *t;

	token_key(b, &b->chal, key, sizeof(key));
	t = token_find(key);
	if (t)
		explicit_bzero(t, sizeof(*t));
}

/* A cached token of b's challenge (its origin, its credentials) into b->authz. */
static bool token_use(struct blob *b)
{
	char key[FETCHD_TOKEN_KEY_MAX];
	struct token_slot *t;

	if (!b->cred_id[0])
		return false;	/* credentials not looked up yet */
	token_key(b, &b->chal, key, sizeof(key));
	t = token_find(key);
	if (!t)
		return false;
	memcpy(b->authz, t->authz, sizeof(b->authz));
	b->authz_expiry_ms = t->expiry_ms;
	return true;
}

/* Credentials about to go over plain http: said once per run. */
static void warn_plain_http(const char *url)
{
	char ubuf[OBD_CACHE_URL_MAX];

	if (auth_plain_http_first(url))
		pr_warn("sending credentials over plain http (not https) to %s",
			url_redact(url, ubuf, sizeof(ubuf)));
}

/* The deadline of b's first waiting fetch: the token request's. */
static int64_t auth_deadline(struct fetchd *d, struct blob *b)
{
	if (list_empty(&b->auth_wait))
		return now_ms() + (int64_t)d->cfg.request_timeout_s * 1000;
	return container_of(b->auth_wait.next, struct fetch, node)->deadline_ms;
}

/* The token request of b's challenge, with basic (auth_answer's header line) or none. */
static int start_token(struct fetchd *d, struct blob *b, const char *basic)
{
	char url[OBD_CACHE_URL_MAX];
	struct xfer *x;
	int ret;

	ret = auth_token_url(&b->chal, url, sizeof(url));
	if (ret)
		return ret;
	x = xfer_new(d, X_TOKEN, url, auth_deadline(d, b));
	if (!x)
		return -ENOMEM;
	x->blob = b;
	token_key(b, &b->chal, x->tkey, sizeof(x->tkey));
	x->body = malloc(FETCHD_SMALL_BODY_MAX);
	x->body_cap = x->body ? FETCHD_SMALL_BODY_MAX : 0;
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, xfer_small_write_cb);
	ret = 0;
	if (basic[0]) {
		warn_plain_http(url);
		ret = xfer_add_header(x, basic);
	}
	if (ret || !x->body) {
		xfer_free(d, x);
		return ret ? ret : -ENOMEM;
	}
	if (xfer_go(d, x))
		return -EIO;
	d->st.token_requests++;
	return 0;
}

/*
 * Every fetch waiting on b's auth: go on (err 0), retry later (-EAGAIN) or
 * fail (why). status/rc (status < 0: keep) are what the failure line shows.
 * Then b's auth is over.
 */
static void auth_wake(struct fetchd *d, struct blob *b, int err, const char *why, long status,
		      CURLcode rc)
{
	struct list *p, *q;

	list_for_each_safe(p, q, &b->auth_wait) {
		struct fetch *f = container_of(p, struct fetch, node);

		list_del(&f->node);
		if (status >= 0) {
			f->last_status = status;
			f->last_curl = rc;
		}
		if (!err) {
			if (start_data(d, f))
				fetch_fail(d, f, -EIO);
		} else if (err == -EAGAIN) {
			fetch_retry_or_fail(d, f, -EIO, why);
		} else {
			fetch_fail_logged(d, f, -EACCES, why);
		}
	}
	/* only now: while set, the loop above cannot free the blob under us */
	b->token_inflight = false;
	blob_maybe_free(d, b);
}

/*
 * Park f until its blob is authenticated (credentials, then a token for
 * Bearer); start that unless it is running. The answer may come at once
 * (cred.json, a cached answer): f may be gone when this returns.
 */
static void auth_begin(struct fetchd *d, struct fetch *f)
{
	struct blob *b = f->blob;

	f->state = F_AUTH;
	list_add_tail(&f->node, &b->auth_wait);
	if (b->token_inflight)
		return;
	b->token_inflight = true;	/* auth under way; also keeps b alive */
	credq_request(d, b);
}

/* Another blob's token request of b's key (token_key) is running. */
static bool token_pending(const struct blob *b)
{
	char key[FETCHD_TOKEN_KEY_MAX];
	struct list *p;

	token_key(b, &b->chal, key, sizeof(key));
	for (p = xfers.next; p != &xfers; p = p->next) {
		struct xfer *x = container_of(p, struct xfer, node);

		if (x->kind == X_TOKEN && x->blob != b && !strcmp(key, x->tkey))
			return true;
	}
	return false;
}

/*
 * A token answer (err 0: cached under key) for the blobs that waited on
 * it (token_follow), as for the blob that asked. One at a time, looked up
 * again after each: waking one may free others' fetches and blobs.
 */
static void token_wake_followers(struct fetchd *d, const char *key, int err, const char *why,
				 long status, CURLcode rc)
{
	char other[FETCHD_TOKEN_KEY_MAX];
	struct list *p;
	struct blob *b;

	for (;;) {
		b = NULL;
		for (p = d->blobs.next; p != &d->blobs; p = p->next) {
			b = container_of(p, struct blob, node);
			if (b->token_follow) {
				token_key(b, &b->chal, other, sizeof(other));
				if (!strcmp(key, other))
					break;
			}
			b = NULL;
		}
		if (!b)
			return;
		b->token_follow = false;
		if (!err && !token_use(b))
			auth_wake(d, b, -EACCES, "no token", status, rc);
		else
			auth_wake(d, b, err, why, status, rc);
	}
}

void reg_cred_ready(struct fetchd *d, struct blob *b, const struct reg_cred *cred, int err,
		    const char *why)
{
	char msg[800], hdr[2400];
	int ret;

	if (err) {
		snprintf(msg, sizeof(msg), "credentials: %s", why);
		return auth_wake(d, b, err, msg, -1, CURLE_OK);
	}
	auth_cred_id(cred, b->cred_id, sizeof(b->cred_id));
	/* a token of this origin, realm, scope and credentials already? */
	if (b->chal.scheme == AUTH_BEARER && token_use(b))
		return auth_wake(d, b, 0, "", -1, CURLE_OK);
	ret = auth_answer(&b->chal, b->url, cred, hdr, sizeof(hdr), msg, sizeof(msg));
	if (ret == AUTH_ANSWER_TOKEN) {
		/* one token request per key: the blobs of one repository share it */
		if (token_pending(b)) {
			b->token_follow = true;
			d->st.token_shared++;
		} else if (start_token(d, b, hdr)) {
			auth_wake(d, b, -EACCES, "cannot request a token", -1, CURLE_OK);
		}
		/* token_done() (of this blob or of the other) goes on */
	} else if (ret == AUTH_ANSWER_HEADER) {
		warn_plain_http(b->url);
		snprintf(b->authz, sizeof(b->authz), "%s", hdr);
		b->authz_expiry_ms = 0;
		auth_wake(d, b, 0, "", -1, CURLE_OK);
	} else {
		auth_wake(d, b, -EACCES, msg, -1, CURLE_OK);
	}
	explicit_bzero(hdr, sizeof(hdr));
}

int reg_start(struct fetchd *d, struct fetch *f)
{
	struct blob *b = f->blob;

	f->attempts++;
	f->retry_after_ms = -1;
	f->hops = 0;
	f->cross_host = false;
	f->p2p_skip = false;
	snprintf(f->cur_url, sizeof(f->cur_url), "%s", b->url);
	if (b->authz[0] && b->authz_expiry_ms && now_ms() >= b->authz_expiry_ms)
		b->authz[0] = 0;
	/* a blob known to need auth authenticates first: no 401 round trip */
	if (!b->authz[0] && ((b->chal.scheme == AUTH_BEARER && !token_use(b)) ||
			     b->chal.scheme == AUTH_BASIC)) {
		auth_begin(d, f);
		return 0;
	}
	return start_data(d, f);
}

/*----- completions ---------------------------------------------------------------------*/
static void on_redirect(struct fetchd *d, struct fetch *f, struct xfer *x)
{
	char *loc = NULL;

	curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &loc);
	if (!loc || !loc[0])
		return fetch_fail_logged(d, f, -EIO, "redirect without a Location");
	if (++f->hops > FETCHD_MAX_REDIRECTS)
		return fetch_fail_logged(d, f, -EIO, "too many redirects");
	if (strlen(loc) >= sizeof(f->cur_url))
		return fetch_fail_logged(d, f, -EIO, "redirect Location too long");
	/*
	 * Credentials are for the registry's origin, never for where it sends
	 * us (url.h: the same origin, or an upgrade to https on its host).
	 * https to http on the registry's own host is refused outright.
	 */
	if (url_origin_relation(f->blob->url, loc) == URL_ORIGIN_DOWNGRADE)
		return fetch_fail_logged(d, f, -EIO, "redirect from https to http on the same host refused");
	if (!url_creds_may_go(f->blob->url, loc))
		f->cross_host = true;
	snprintf(f->cur_url, sizeof(f->cur_url), "%s", loc);
	d->st.redirects++;
	if (start_data(d, f))
		fetch_fail_logged(d, f, -EIO, "cannot start the redirected request");
}

/* 401/403: authenticate once per fetch, then give up. */
static void on_auth(struct fetchd *d, struct fetch *f, struct xfer *x)
{
	struct blob *b = f->blob;
	struct auth_challenge ch;
	char err[256];
	int ret;

	d->st.err_auth++;
	if (x->sent_authz) {
		/* what we sent is stale (password changed, token revoked): ask again */
		if (b->chal.scheme == AUTH_BEARER)
			token_forget(b);
		explicit_bzero(b->authz, sizeof(b->authz));
		credq_forget(d, b->url);
	}
	if (f->cross_host) {
		/*
		 * Where the registry sent us refuses (an expired presigned URL,
		 * clock skew): once per fetch, ask the registry again for a
		 * fresh redirect, dropping the peer's cached actual URL.
		 */
		if (f->cross_retried)
			return fetch_fail_logged(d, f, -EACCES, "the redirect target refused twice");
		f->cross_retried = true;
		p2p_actual_drop(b->url);
		f->hops = 0;
		f->cross_host = false;
		snprintf(f->cur_url, sizeof(f->cur_url), "%s", b->url);
		if (start_data(d, f))
			fetch_fail_logged(d, f, -EIO, "cannot start the request");
		return;
	}
	if (f->auth_rounds >= 1)
		return fetch_fail_logged(d, f, -EACCES, "refused after authenticating");
	if (!x->www_auth[0])
		return fetch_fail_logged(d, f, -EACCES, "refused without a WWW-Authenticate challenge");
	ret = auth_parse_challenge(x->www_auth, strlen(x->www_auth), &ch, err, sizeof(err));
	if (ret)
		return fetch_fail_logged(d, f, -EACCES, err);
	/* no token (and no credentials) of an https registry over http */
	if (auth_realm_check(&ch, b->url, err, sizeof(err)))
		return fetch_fail_logged(d, f, -EACCES, err);
	f->auth_rounds++;
	b->chal = ch;
	f->hops = 0;
	snprintf(f->cur_url, sizeof(f->cur_url), "%s", b->url);
	/* another blob of the scope may have a token already */
	if (ch.scheme == AUTH_BEARER && !x->sent_authz && token_use(b)) {
		if (start_data(d, f))
			fetch_fail_logged(d, f, -EIO, "cannot start the request");
		return;
	}
	auth_begin(d, f);
}

static void on_206(struct fetchd *d, struct fetch *f, struct xfer *x)
{
	char why[160];

	if (!x->got_range || x->cr_first != f->off || x->cr_last != f->off + f->len - 1 ||
	    (x->cr_total && x->cr_total != f->blob->size)) {
		d->st.err_proto++;
		snprintf(why, sizeof(why), "Content-Range %llu-%llu/%llu does not match the request%s",
			 (unsigned long long)x->cr_first, (unsigned long long)x->cr_last,
			 (unsigned long long)x->cr_total, x->got_range ? "" : " (none)");
		return fetch_fail_logged(d, f, -EIO, why);
	}
	if (x->body_len < f->len) {
		d->st.err_net++;
		return fetch_retry_or_fail(d, f, -EIO, "short body");
	}
	d->st.bytes_fetched += f->len;
	/* the transfer slot is free; the buffer stays until the write's CQE */
	fetch_release_slot(d, f);
	f->state = F_WRITING;
	if (cache_write_fetch(d, f))
		fetch_fail_logged(d, f, -ENOMEM, "out of memory for the write");
}

/* Why a peer's answer is no good (NULL: it is; a 200 is made to look like a 206). */
static const char *peer_verdict(struct fetch *f, struct xfer *x, CURLcode rc, char *buf,
				size_t len)
{
	if (x->overflow)
		return "body longer than asked";
	if (rc != CURLE_OK) {
		snprintf(buf, len, "curl: %s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
		return buf;
	}
	if (x->status == 200 && !f->off && f->len == f->blob->size) {
		x->got_range = true;
		x->cr_first = 0;
		x->cr_last = f->len - 1;
		x->cr_total = f->len;
	} else if (x->status != 206) {
		snprintf(buf, len, "HTTP %ld", x->status);
		return buf;
	}
	if (!x->got_range || x->cr_first != f->off || x->cr_last != f->off + f->len - 1 ||
	    (x->cr_total && x->cr_total != f->blob->size))
		return "Content-Range does not match the request";
	if (x->body_len < f->len)
		return "short body";
	return NULL;
}

/*
 * A GET through the peer ended. Good: written as any. Otherwise the same
 * attempt goes to the registry at once (p2p_skip), and the peer's health
 * hears of it: an auth refusal passed on is ours (stale Authorization),
 * anything else is the peer's.
 */
static void peer_done(struct fetchd *d, struct fetch *f, struct xfer *x, CURLcode rc)
{
	char buf[CURL_ERROR_SIZE + 16], what[OBD_CACHE_URL_MAX];
	const char *why = peer_verdict(f, x, rc, buf, sizeof(buf));
	bool trial = x->peer_trial;

	x->peer_trial = false;
	f->x = NULL;
	p2p_result(d, trial, !why, x->status != 401 && x->status != 403, why);
	if (!why) {
		f->last_status = x->status;
		f->last_curl = rc;
		return on_206(d, f, x);
	}
	d->st.p2p_fallbacks++;
	/* spec 6.2: a failure drops the actual URL, so it is resolved again */
	p2p_actual_drop(f->blob->url);
	pr_debug("blob %llu: peer GET of %s failed (%s); from the registry",
		 (unsigned long long)f->blob->id, url_redact(f->cur_url, what, sizeof(what)), why);
	f->p2p_skip = true;
	f->hops = 0;
	f->cross_host = false;
	snprintf(f->cur_url, sizeof(f->cur_url), "%s", f->blob->url);
	if (start_data(d, f))
		fetch_fail_logged(d, f, -EIO, "cannot start the request");
}

static bool curl_tls_error(CURLcode rc, const char *msg)
{
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return true;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		/* TLS 1.3 alerts after the handshake come as read errors */
		return strstr(msg, "SSL") || strstr(msg, "alert");
	default:
		return false;
	}
}

/* What the attempt ended with, for the failure line (the first TLS error kept). */
static void fetch_note_result(struct fetch *f, const struct xfer *x, CURLcode rc)
{
	f->last_status = x->status;
	f->last_curl = rc;
	f->retry_after_ms = reg_retry_after_ms(x->easy);
	snprintf(f->last_err, sizeof(f->last_err), "%s", x->errbuf);
	if (!f->tls_err[0] && curl_tls_error(rc, x->errbuf))
		snprintf(f->tls_err, sizeof(f->tls_err), "%s",
			 x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
}

static void data_done(struct fetchd *d, struct xfer *x, CURLcode rc)
{
	struct fetch *f = x->fetch;
	long st = x->status;

	if (x->via_peer)
		return peer_done(d, f, x, rc);
	f->x = NULL;
	fetch_note_result(f, x, rc);
	if (x->overflow) {
		d->st.err_proto++;
		return fetch_fail_logged(d, f, -EIO, "body longer than asked");
	}
	if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && st != 206 && st != 200)) {
		if (rc == CURLE_OPERATION_TIMEDOUT)
			d->st.err_timeout++;
		else
			d->st.err_net++;
		if (reg_curl_transient(rc))
			return fetch_retry_or_fail(d, f, -EIO, "transfer failed");
		return fetch_fail_logged(d, f, -EIO, "transfer failed");
	}
	if (st == 206)
		return on_206(d, f, x);
	if (st == 200) {
		if (f->off || f->len != f->blob->size) {
			d->st.err_proto++;
			return fetch_fail_logged(d, f, -EIO, "200 without a range: Range ignored");
		}
		x->got_range = true;
		x->cr_first = 0;
		x->cr_last = f->len - 1;
		x->cr_total = f->len;
		return on_206(d, f, x);
	}
	if (st == 301 || st == 302 || st == 303 || st == 307 || st == 308)
		return on_redirect(d, f, x);
	if (st == 401 || st == 403)
		return on_auth(d, f, x);
	if (st == 404) {
		d->st.err_notfound++;
		return fetch_fail_logged(d, f, -ENOENT, "not found");
	}
	d->st.err_http++;
	if (st == 429 || st >= 500)
		return fetch_retry_or_fail(d, f, -EIO, "server busy or failing");
	fetch_fail_logged(d, f, -EIO, "unexpected HTTP status");
}

/* The probe's answer: where the data is (then start_data again), or why not. */
static void probe_done(struct fetchd *d, struct xfer *x, CURLcode rc)
{
	struct fetch *f = x->fetch;
	long st = x->status;
	char *loc = NULL;

	f->x = NULL;
	fetch_note_result(f, x, rc);
	if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && st >= 200 && st < 300)) {
		if (rc == CURLE_OPERATION_TIMEDOUT)
			d->st.err_timeout++;
		else
			d->st.err_net++;
		if (reg_curl_transient(rc))
			return fetch_retry_or_fail(d, f, -EIO, "probe failed");
		return fetch_fail_logged(d, f, -EIO, "probe failed");
	}
	if (st >= 200 && st < 300) {
		p2p_actual_set(f->blob->url, f->cur_url, f->cross_host);
	} else if (st == 301 || st == 302 || st == 303 || st == 307 || st == 308) {
		curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &loc);
		if (!loc || !loc[0] || strlen(loc) >= sizeof(f->cur_url))
			return fetch_fail_logged(d, f, -EIO, "probe: redirect without a usable Location");
		if (url_origin_relation(f->blob->url, loc) == URL_ORIGIN_DOWNGRADE)
			return fetch_fail_logged(d, f, -EIO,
						 "redirect from https to http on the same host refused");
		d->st.redirects++;
		p2p_actual_set(f->blob->url, loc, !url_creds_may_go(f->blob->url, loc));
	} else if (st == 401 || st == 403) {
		return on_auth(d, f, x);
	} else if (st == 404) {
		d->st.err_notfound++;
		return fetch_fail_logged(d, f, -ENOENT, "not found");
	} else {
		d->st.err_http++;
		if (st == 429 || st >= 500)
			return fetch_retry_or_fail(d, f, -EIO, "server busy or failing");
		return fetch_fail_logged(d, f, -EIO, "probe: unexpected HTTP status");
	}
	if (start_data(d, f))
		fetch_fail_logged(d, f, -EIO, "cannot start the request");
}

static void token_done(struct fetchd *d, struct xfer *x, CURLcode rc)
{
	struct blob *b = x->blob;
	char token[7900], err[256], ubuf[OBD_CACHE_URL_MAX], key[FETCHD_TOKEN_KEY_MAX];
	const char *why;
	struct token_slot *t;
	long expires = 0, st = x->status;
	bool retry = false;
	int ret = -EACCES;

	if (rc == CURLE_OK && st == 200) {
		ret = auth_parse_token_response(x->body, x->body_len, token, sizeof(token), &expires,
						err, sizeof(err));
		if (!ret) {
			/* under the key it was asked for: b->chal may have moved on */
			t = &tokens[token_next++ % TOKEN_CACHE_SLOTS];
			snprintf(t->key, sizeof(t->key), "%s", x->tkey);
			auth_bearer_line(token, t->authz, sizeof(t->authz));	/* fits: token[] is smaller */
			t->expiry_ms = now_ms() +
				       1000 * (expires > TOKEN_MIN_TTL_S ? expires : TOKEN_MIN_TTL_S);
			memcpy(b->authz, t->authz, sizeof(b->authz));
			b->authz_expiry_ms = t->expiry_ms;
			explicit_bzero(token, sizeof(token));
		} else {
			pr_err("blob %llu: token from %s: %s", (unsigned long long)b->id,
			       url_redact(x->url, ubuf, sizeof(ubuf)), err);
		}
	} else {
		retry = reg_curl_transient(rc) || st == 429 || st >= 500;
		if (st == 401 || st == 403)	/* the credentials are refused: ask again next time */
			credq_forget(d, b->url);
		pr_err("blob %llu: token request to %s failed: HTTP %ld, curl: %s",
		       (unsigned long long)b->id, url_redact(x->url, ubuf, sizeof(ubuf)), st,
		       rc ? (x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc)) : "ok");
	}
	/* b may be gone after its wake-up: the key first */
	snprintf(key, sizeof(key), "%s", x->tkey);
	ret = ret ? (retry ? -EAGAIN : -EACCES) : 0;
	why = retry ? "token request failed" : "no token";
	auth_wake(d, b, ret, why, st, rc);
	token_wake_followers(d, key, ret, why, st, rc);
}

void reg_check_done(struct fetchd *d)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(d->multi, &left))) {
		struct xfer *x = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x->kind == X_DATA)
			data_done(d, x, msg->data.result);
		else if (x->kind == X_PROBE)
			probe_done(d, x, msg->data.result);
		else if (x->kind == X_CRED)
			credq_done(d, x, msg->data.result);
		else
			token_done(d, x, msg->data.result);
		xfer_free(d, x);
	}
}
