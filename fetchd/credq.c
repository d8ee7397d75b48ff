// SPDX-License-Identifier: GPL-2.0-only
/*
 * Credentials in the daemon (spec 6.4). Mode file: cred.json is read and
 * matched on the spot, every time auth is needed (a local file read).
 * Modes http, https, uds: the credential server is asked with a transfer
 * on the loop's multi handle (X_CRED), never a blocking call: a server
 * that is slow or down must not stop the channel, the ring or the other
 * transfers. Its answers are cached per registry host/repository for
 * CREDQ_TTL_S (successful answers only) in a small table; while one
 * request is out, every blob of that repository waits on it (one request
 * for N misses). A registry refusing what we sent drops the entry
 * (credq_forget), so the next auth asks again: a changed password is
 * picked up at the first 401.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "cred_server.h"
#include "url.h"

#define CREDQ_SLOTS		32	/* repositories cached / asked at once */
#define CREDQ_TTL_S		60
#define CREDQ_MAX_WAIT		1024	/* blobs waiting on one request */

struct cred_slot {
	char key[sizeof(((struct reg_url *)0)->scheme) + 3 + sizeof(((struct reg_url *)0)->host) + 8 +
		 sizeof(((struct reg_url *)0)->repo)];
	char url[OBD_CACHE_URL_MAX];	/* the blob URL the request names (remote_url) */
	struct reg_cred cred;		/* the answer matched for it: secret */
	int64_t expiry_ms;		/* cred valid until; 0 = none */
	int64_t used_ms;		/* for replacement */
	struct xfer *x;			/* request in flight */
	struct blob **wait;		/* blobs waiting for it (token_inflight holds them) */
	unsigned int nwait, cap;
};

static struct cred_slot slots[CREDQ_SLOTS];

/*
 * "scheme://host:port/repo": every blob of a repository matches the same
 * auths keys; the scheme too, so that an answer for the https registry is
 * not the http one's (port 0 means each scheme's default).
 */
static int repo_key(const char *url, char *key, size_t len)
{
	struct reg_url u;
	char err[128];

	if (url_parse_blob(url, &u, err, sizeof(err)))
		return -EINVAL;
	if (snprintf(key, len, "%s://%s:%u/%s", u.scheme, u.host, u.port, u.repo) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

static struct cred_slot *slot_find(const char *key)
{
	for (unsigned int i = 0; i < CREDQ_SLOTS; i++)
		if ((slots[i].x || slots[i].expiry_ms) && !strcmp(slots[i].key, key))
			return &slots[i];
	return NULL;
}

/* A slot for a new key: free, else the least recently used not asking. */
static struct cred_slot *slot_take(const char *key)
{
	struct cred_slot *best = NULL;

	for (unsigned int i = 0; i < CREDQ_SLOTS; i++) {
		struct cred_slot *s = &slots[i];

		if (s->x)
			continue;
		if (!best || s->used_ms < best->used_ms)
			best = s;
	}
	if (!best)
		return NULL;
	explicit_bzero(&best->cred, sizeof(best->cred));
	best->expiry_ms = 0;
	snprintf(best->key, sizeof(best->key), "%s", key);
	return best;
}

static int slot_wait(struct cred_slot *s, struct blob *b)
{
	struct blob **n;

	if (s->nwait == s->cap) {
		if (s->cap >= CREDQ_MAX_WAIT)
			return -EBUSY;
		n = realloc(s->wait, (s->cap ? 2 * s->cap : 8) * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->wait = n;
		s->cap = s->cap ? 2 * s->cap : 8;
	}
	s->wait[s->nwait++] = b;
	return 0;
}

static int slot_ask(struct fetchd *d, struct cred_slot *s, const char *blob_url, char *err,
		    size_t errlen)
{
	char url[8192];
	struct xfer *x;
	int ret;

	ret = cred_server_url(&d->cfg, blob_url, url, sizeof(url), err, errlen);
	if (ret)
		return -EACCES;
	x = xfer_alloc(d, X_CRED, url);
	if (x)
		x->body = malloc(CRED_SERVER_BODY_MAX);
	if (!x || !x->body) {
		if (x)
			xfer_free(d, x);
		return reg_errf(err, errlen, -EAGAIN, "out of memory");
	}
	x->body_cap = CRED_SERVER_BODY_MAX;
	cred_server_setopt(x->easy, &d->cfg, url);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, xfer_small_write_cb);
	explicit_bzero(url, sizeof(url));
	if (xfer_go(d, x))
		return reg_errf(err, errlen, -EAGAIN, "cannot start the request");
	snprintf(s->url, sizeof(s->url), "%s", blob_url);
	s->x = x;
	d->st.http_requests++;
	return 0;
}

static void file_request(struct fetchd *d, struct blob *b)
{
	struct reg_cred cred;
	char err[640];
	int ret;

	ret = cred_lookup(d->cfg.cred_path, b->url, &cred, err, sizeof(err));
	reg_cred_ready(d, b, &cred, ret ? -EACCES : 0, ret ? err : "");
	cred_wipe(&cred);
}

void credq_request(struct fetchd *d, struct blob *b)
{
	static const struct reg_cred none;
	char key[sizeof(slots[0].key)], err[640], name[PATH_MAX + 64];
	struct cred_slot *s;
	int ret;

	if (d->cfg.cred_mode == CRED_MODE_FILE)
		return file_request(d, b);
	if (repo_key(b->url, key, sizeof(key)))
		return reg_cred_ready(d, b, &none, -EACCES, "credentials: not a blob URL");
	s = slot_find(key);
	if (s && !s->x && s->expiry_ms > now_ms()) {
		s->used_ms = now_ms();
		return reg_cred_ready(d, b, &s->cred, 0, "");
	}
	if (!s)
		s = slot_take(key);
	if (!s) {
		snprintf(err, sizeof(err), "%s: %d requests in flight already",
			 cred_server_name(&d->cfg, name, sizeof(name)), CREDQ_SLOTS);
		return reg_cred_ready(d, b, &none, -EAGAIN, err);
	}
	s->used_ms = now_ms();
	if (!s->x) {
		ret = slot_ask(d, s, b->url, err, sizeof(err));
		if (ret)
			return reg_cred_ready(d, b, &none, ret, err);
	}
	ret = slot_wait(s, b);
	if (ret)
		reg_cred_ready(d, b, &none, -EAGAIN, "credentials: too many blobs waiting");
}

void credq_forget(struct fetchd *d, const char *url)
{
	char key[sizeof(slots[0].key)];
	struct cred_slot *s;

	if (d->cfg.cred_mode == CRED_MODE_FILE || repo_key(url, key, sizeof(key)))
		return;
	s = slot_find(key);
	if (s) {
		explicit_bzero(&s->cred, sizeof(s->cred));
		s->expiry_ms = 0;
	}
}

static struct cred_slot *slot_of(const struct xfer *x)
{
	for (unsigned int i = 0; i < CREDQ_SLOTS; i++)
		if (slots[i].x == x)
			return &slots[i];
	return NULL;
}

void credq_done(struct fetchd *d, struct xfer *x, CURLcode rc)
{
	struct cred_slot *s = slot_of(x);
	struct reg_cred cred;
	struct blob **wait;
	unsigned int n;
	char err[640];
	int ret;

	if (!s)
		return;
	s->x = NULL;
	if (rc == CURLE_WRITE_ERROR && x->overflow)
		rc = CURLE_OK;	/* judged as "too long" below */
	ret = cred_server_result(&d->cfg, s->url, rc, x->errbuf, x->status, x->body,
				 (size_t)x->body_len, x->overflow, &cred, err, sizeof(err));
	if (!ret) {
		s->cred = cred;
		s->expiry_ms = now_ms() + CREDQ_TTL_S * 1000;
	} else {
		pr_err("credentials for %s: %s", s->key, err);
	}
	/* detach first: answering may free blobs and start new requests */
	wait = s->wait;
	n = s->nwait;
	s->wait = NULL;
	s->nwait = s->cap = 0;
	for (unsigned int i = 0; i < n; i++)
		reg_cred_ready(d, wait[i], &cred, ret, err);
	cred_wipe(&cred);
	free(wait);
}

void credq_xfer_gone(struct xfer *x)
{
	struct cred_slot *s = slot_of(x);

	if (s)
		s->x = NULL;
}

void credq_fini(struct fetchd *d)
{
	for (unsigned int i = 0; i < CREDQ_SLOTS; i++)
		free(slots[i].wait);
	explicit_bzero(slots, sizeof(slots));
}
