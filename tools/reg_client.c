// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd's registry client (reg_client.h): one curl easy handle, requests
 * built per call, redirects and the 401 -> token -> retry dance done here
 * so that the Authorization header never leaves the registry's origin.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "auth.h"
#include "cli.h"
#include "cred.h"
#include "cred_server.h"
#include "http.h"
#include "reg_client.h"

#define REG_MAX_HOPS	8
#define REG_RESP_MAX	(64 * 1024)	/* error bodies, token answers */
#define REG_TOKEN_MAX	(16 * 1024)
#define REG_URL_MAX	4096

struct reg_req {
	CURL *curl;
	const char *method;		/* GET HEAD POST PATCH PUT */
	const char *url;
	const char *content_type;	/* request body type */
	const char *accept;		/* "Accept:" value, or NULL */
	char range[64];			/* "Range: bytes=a-b" header line or "" */
	char content_range[64];		/* PATCH: "Content-Range: a-b" or "" */
	bool no_auth;			/* never send c->auth (the token request) */
	const char *basic;		/* "Authorization: Basic ..." for the token request */
	/* request body: memory, or fd at [body_off, body_off + body_len) */
	const void *body;
	int body_fd;
	uint64_t body_off, body_len, body_pos;
	reg_progress_fn progress;
	void *pctx;
	/* response */
	void *out;			/* 2xx body goes here (blob data) ... */
	uint64_t out_cap, out_len;
	bool overflow;
	char *resp;			/* ... everything else here (capped) */
	size_t resp_len;
	long status;
	char location[REG_URL_MAX];
	char www_auth[2048];
	char resp_content_range[128];
	char resp_content_type[160];
	uint64_t content_length;
	bool has_content_length;
	char final_url[REG_URL_MAX];	/* after redirects */
};

/* -------------------------------------------------------------------------
 * URLs (registry/url.h: the origin checks, the redactor, the query encoder)
 * ------------------------------------------------------------------------- */
static bool same_origin(struct reg_client *c, const char *url)
{
	return url_creds_may_go(c->origin, url);
}

/* Credentials about to go over plain http: said once per run. */
static void warn_plain_http(const char *where, const char *url)
{
	if (auth_plain_http_first(url))
		cli_warn(where, "sending credentials over plain http (not https)");
}

/* -------------------------------------------------------------------------
 * Client
 * ------------------------------------------------------------------------- */
int reg_client_init(struct reg_client *c, const struct fetchd_config *cfg,
		    const struct reg_url *u)
{
	static bool global_done;

	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->reg = *u;
	if (url_origin(u, c->origin, sizeof(c->origin)))
		return -ENAMETOOLONG;
	if (snprintf(c->cred_url, sizeof(c->cred_url),
		     "%s/v2/%s/blobs/sha256:%064d", c->origin, u->repo, 0) >=
	    (int)sizeof(c->cred_url))
		return -ENAMETOOLONG;
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
			cli_err(NULL, "libcurl initialisation failed");
			return -ENOMEM;
		}
		global_done = true;
	}
	c->curl = curl_easy_init();
	if (!c->curl) {
		cli_err(NULL, "libcurl: cannot make a handle");
		return -ENOMEM;
	}
	return 0;
}

static void drop_auth(struct reg_client *c)
{
	if (c->auth) {
		explicit_bzero(c->auth, strlen(c->auth));
		free(c->auth);
		c->auth = NULL;
	}
}

void reg_client_free(struct reg_client *c)
{
	drop_auth(c);
	if (c->curl)
		curl_easy_cleanup(c->curl);
	c->curl = NULL;
}

/* -------------------------------------------------------------------------
 * One request
 * ------------------------------------------------------------------------- */
static size_t on_header(char *buf, size_t size, size_t n, void *ctx)
{
	struct reg_req *r = ctx;
	size_t len = size * n, vlen;
	const char *v;

	if (len >= 5 && !memcmp(buf, "HTTP/", 5)) {
		/* a new response (after 100 Continue): forget the last one's */
		r->location[0] = r->www_auth[0] = r->resp_content_range[0] = 0;
		r->resp_content_type[0] = 0;
		r->has_content_length = false;
		return len;
	}
	if (reg_header(buf, len, "location", &v, &vlen))
		snprintf(r->location, sizeof(r->location), "%.*s", (int)vlen, v);
	else if (reg_header(buf, len, "www-authenticate", &v, &vlen) &&
		 auth_challenge_better(r->www_auth, v, vlen))
		snprintf(r->www_auth, sizeof(r->www_auth), "%.*s", (int)vlen, v);
	else if (reg_header(buf, len, "content-range", &v, &vlen))
		snprintf(r->resp_content_range, sizeof(r->resp_content_range), "%.*s", (int)vlen, v);
	else if (reg_header(buf, len, "content-type", &v, &vlen))
		snprintf(r->resp_content_type, sizeof(r->resp_content_type), "%.*s", (int)vlen, v);
	else if (reg_header(buf, len, "content-length", &v, &vlen)) {
		char tmp[32];

		snprintf(tmp, sizeof(tmp), "%.*s", (int)vlen, v);
		r->content_length = strtoull(tmp, NULL, 10);
		r->has_content_length = true;
	}
	return len;
}

/* 2xx bodies into r->out (when given); others into r->resp, capped. */
static size_t on_body(char *buf, size_t size, size_t n, void *ctx)
{
	struct reg_req *r = ctx;
	size_t len = size * n;
	long code = 0;

	curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &code);
	if (r->out && code >= 200 && code < 300) {
		if (len > r->out_cap - r->out_len) {
			r->overflow = true;
			return CURL_WRITEFUNC_ERROR;
		}
		memcpy((char *)r->out + r->out_len, buf, len);
		r->out_len += len;
		return len;
	}
	if (r->resp_len < REG_RESP_MAX) {
		size_t take = len < REG_RESP_MAX - r->resp_len ? len : REG_RESP_MAX - r->resp_len;
		char *p = realloc(r->resp, r->resp_len + take + 1);

		if (!p)
			return CURL_WRITEFUNC_ERROR;
		memcpy(p + r->resp_len, buf, take);
		r->resp = p;
		r->resp_len += take;
		p[r->resp_len] = 0;
	}
	return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ctx)
{
	struct reg_req *r = ctx;
	uint64_t left = r->body_len - r->body_pos;
	size_t want = size * n;
	ssize_t got;

	if (want > left)
		want = (size_t)left;
	if (!want)
		return 0;
	if (r->body) {
		memcpy(buf, (const char *)r->body + r->body_pos, want);
		got = (ssize_t)want;
	} else {
		got = pread(r->body_fd, buf, want, (off_t)(r->body_off + r->body_pos));
		if (got <= 0)
			return CURL_READFUNC_ABORT;
	}
	r->body_pos += (uint64_t)got;
	if (r->progress)
		r->progress(r->pctx, (uint64_t)got);
	return (size_t)got;
}

static bool is_upload(const struct reg_req *r)
{
	return strcmp(r->method, "GET") && strcmp(r->method, "HEAD");
}

static int curl_errno(CURLcode cc)
{
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST: return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY: return -ENOMEM;
	default: return -EIO;
	}
}

/* One HTTP exchange at url, no redirects followed. */
static int perform(struct reg_client *c, struct reg_req *r, const char *url, bool send_auth)
{
	const struct fetchd_config *cfg = c->cfg;
	struct curl_slist *hdrs = NULL;
	char ebuf[CURL_ERROR_SIZE] = "", disp[1024], ct[160], acc[512];
	CURL *h = c->curl;
	CURLcode cc;
	int rc = 0;

	curl_easy_reset(h);
	r->curl = h;
	r->status = 0;
	r->out_len = 0;
	r->overflow = false;
	r->body_pos = 0;
	free(r->resp);
	r->resp = NULL;
	r->resp_len = 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	reg_curl_setup(h, cfg, "obd/" OBD_VERSION);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)(cfg->connect_timeout_s ?
							   cfg->connect_timeout_s : 10));
	/* a stalled transfer fails; a long one (a big upload) is fine */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)(cfg->request_timeout_s ?
							   cfg->request_timeout_s : 30));
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	if (!strcmp(r->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (is_upload(r)) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, r);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
		hdrs = curl_slist_append(hdrs, "Expect:");
		if (r->content_type) {
			snprintf(ct, sizeof(ct), "Content-Type: %s", r->content_type);
			hdrs = curl_slist_append(hdrs, ct);
		}
	}
	if (r->accept) {
		snprintf(acc, sizeof(acc), "Accept: %s", r->accept);
		hdrs = curl_slist_append(hdrs, acc);
	}
	if (r->range[0])
		hdrs = curl_slist_append(hdrs, r->range);
	if (r->content_range[0])
		hdrs = curl_slist_append(hdrs, r->content_range);
	if (send_auth && (r->basic || c->auth))
		hdrs = curl_slist_append(hdrs, r->basic ? r->basic : c->auth);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && r->overflow)) {
		cli_err(url_redact(url, disp, sizeof(disp)), "%s",
			ebuf[0] ? ebuf : curl_easy_strerror(cc));
		rc = curl_errno(cc);
	}
	/* the header list may hold a secret: wipe it */
	for (struct curl_slist *s = hdrs; s; s = s->next)
		explicit_bzero(s->data, strlen(s->data));
	curl_slist_free_all(hdrs);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	return rc;
}

/* "HTTP 404 (BLOB_UNKNOWN: blob unknown to registry)" from a registry error body. */
static void http_detail(const struct reg_req *r, char *out, size_t outlen)
{
	json_object *root = NULL, *errs, *e0, *code, *msg;

	out[0] = 0;
	if (r->resp && r->resp_len)
		root = json_tokener_parse(r->resp);
	if (root && json_object_object_get_ex(root, "errors", &errs) &&
	    json_object_is_type(errs, json_type_array) && json_object_array_length(errs) &&
	    (e0 = json_object_array_get_idx(errs, 0)) &&
	    json_object_is_type(e0, json_type_object)) {
		const char *cs = json_object_object_get_ex(e0, "code", &code) ?
				 json_object_get_string(code) : NULL;
		const char *ms = json_object_object_get_ex(e0, "message", &msg) ?
				 json_object_get_string(msg) : NULL;

		snprintf(out, outlen, " (%s%s%s)", cs ? cs : "", cs && ms ? ": " : "",
			 ms ? ms : "");
	}
	json_object_put(root);
}

static int http_errno(long status)
{
	switch (status) {
	case 401: case 403: return -EPERM;
	case 404: return -ENOENT;
	case 429: return -EBUSY;
	default: return -EIO;
	}
}

static int http_fail(struct reg_req *r, const char *what)
{
	char disp[1024], detail[512];

	http_detail(r, detail, sizeof(detail));
	cli_err(url_redact(r->final_url, disp, sizeof(disp)), "%sHTTP %ld%s",
		what ? what : "", r->status, detail);
	return http_errno(r->status);
}

static int authenticate(struct reg_client *c, struct reg_req *r);

static bool is_redirect(long s)
{
	return s == 301 || s == 302 || s == 303 || s == 307 || s == 308;
}

/*
 * r->url with redirects (GET/HEAD: any 3xx; uploads: 307/308, the body
 * sent again) and one authentication round on a 401 from the registry.
 */
static int do_req(struct reg_client *c, struct reg_req *r)
{
	char disp[1024];
	bool authed = false;
	int hops = 0, rc;

	snprintf(r->final_url, sizeof(r->final_url), "%s", r->url);
	for (;;) {
		bool own = same_origin(c, r->final_url);
		/* https to http on the same host: refused, whatever the request carries */
		if (hops && url_origin_relation(r->url, r->final_url) == URL_ORIGIN_DOWNGRADE) {
			cli_err(url_redact(r->url, disp, sizeof(disp)),
				"redirect from https to http on the same host refused");
			return -EPROTO;
		}
		/* the token request's Basic header: for the realm's origin only */
		rc = perform(c, r, r->final_url, r->basic ? url_creds_may_go(r->url, r->final_url) :
				  own && !r->no_auth);
		if (rc)
			return rc;
		if (r->status == 401 && own && !r->no_auth && !authed && r->www_auth[0]) {
			authed = true;
			rc = authenticate(c, r);
			if (rc)
				return rc;
			continue;
		}
		if (!is_redirect(r->status) ||
		    (is_upload(r) && r->status != 307 && r->status != 308))
			return 0;
		if (++hops > REG_MAX_HOPS) {
			cli_err(url_redact(r->url, disp, sizeof(disp)),
				"more than %d redirects", REG_MAX_HOPS);
			return -ELOOP;
		}
		if (!r->location[0]) {
			cli_err(url_redact(r->final_url, disp, sizeof(disp)),
				"HTTP %ld without a Location", r->status);
			return -EPROTO;
		}
		rc = url_resolve(r->final_url, r->location, r->final_url, sizeof(r->final_url));
		if (rc) {
			cli_err(url_redact(r->url, disp, sizeof(disp)),
				"redirect to an unusable Location");
			return rc;
		}
	}
}

static void req_free(struct reg_req *r)
{
	if (r->resp) {
		explicit_bzero(r->resp, r->resp_len);
		free(r->resp);
	}
	r->resp = NULL;
}

/* -------------------------------------------------------------------------
 * Auth (spec 6.3)
 * ------------------------------------------------------------------------- */
static int set_auth(struct reg_client *c, const char *scheme, const char *value)
{
	char *line;

	if (asprintf(&line, "Authorization: %s%s", scheme, value) < 0)
		return -ENOMEM;
	drop_auth(c);
	c->auth = line;
	return 0;
}

/* A token for challenge ch, asked with basic (auth_answer's header line) or none. */
static int fetch_token(struct reg_client *c, const struct auth_challenge *ch,
		       const char *basic, const char *where)
{
	struct reg_req t = { .method = "GET", .no_auth = true };
	char turl[2048 + 512], err[256], *token = NULL;
	long expires = 0;
	int rc;

	if (auth_token_url(ch, turl, sizeof(turl))) {
		cli_err(where, "token URL too long");
		return -ENAMETOOLONG;
	}
	if (basic[0]) {
		warn_plain_http(where, turl);
		t.basic = basic;
	}
	t.url = turl;
	rc = do_req(c, &t);
	if (rc)
		goto out;
	if (t.status != 200) {
		rc = http_fail(&t, "token request: ");
		goto out;
	}
	token = malloc(REG_TOKEN_MAX);
	if (!token) {
		rc = -ENOMEM;
		goto out;
	}
	rc = auth_parse_token_response(t.resp ? t.resp : "", t.resp_len, token, REG_TOKEN_MAX,
				       &expires, err, sizeof(err));
	if (rc) {
		char disp[1024];

		cli_err(url_redact(turl, disp, sizeof(disp)), "%s", err);
		goto out;
	}
	rc = set_auth(c, "Bearer ", token);
out:
	if (token) {
		explicit_bzero(token, REG_TOKEN_MAX);
		free(token);
	}
	req_free(&t);
	return rc;
}

/*
 * The blob URL credentials are asked for: the request's own when it is a
 * blob GET or HEAD (a credential server sees the blob, spec 6.4), else one
 * of the repository (an upload: any blob URL of it matches the same keys).
 */
static const char *cred_url_for(const struct reg_client *c, const struct reg_req *r)
{
	struct reg_url u;
	char err[128];

	if (r->url && !url_parse_blob(r->url, &u, err, sizeof(err)))
		return r->url;
	return c->cred_url;
}

static int authenticate(struct reg_client *c, struct reg_req *r)
{
	struct auth_challenge ch;
	struct reg_cred cred;
	char err[512], disp[1024], hdr[1400];
	const char *where = url_redact(r->final_url, disp, sizeof(disp));
	int rc;

	rc = auth_parse_challenge(r->www_auth, strlen(r->www_auth), &ch, err, sizeof(err));
	if (rc) {
		cli_err(where, "HTTP 401: WWW-Authenticate: %s", err);
		return rc;
	}
	rc = cred_get(c->cfg, cred_url_for(c, r), &cred, err, sizeof(err));
	if (rc) {
		cli_err(NULL, "%s", err);
		return rc == -EAGAIN ? -EIO : rc;
	}
	rc = auth_answer(&ch, c->origin, &cred, hdr, sizeof(hdr), err, sizeof(err));
	cred_wipe(&cred);
	if (rc == AUTH_ANSWER_HEADER) {
		warn_plain_http(where, c->origin);
		rc = set_auth(c, "", hdr + strlen("Authorization: "));
	} else if (rc == AUTH_ANSWER_TOKEN) {
		rc = fetch_token(c, &ch, hdr, where);
	} else if (ch.scheme == AUTH_BASIC && rc == -EACCES) {
		cli_err(where, "HTTP 401: Basic auth asked for, and no credentials for %s%s%s",
			c->reg.host, c->cfg->cred_path[0] ? " in " : "", c->cfg->cred_path);
		rc = -EPERM;
	} else {
		cli_err(where, "%s", err);
		rc = rc == -EACCES || rc == -EINVAL ? -EPERM : rc;
	}
	explicit_bzero(hdr, sizeof(hdr));
	return rc;
}

/* -------------------------------------------------------------------------
 * Blobs and manifests
 * ------------------------------------------------------------------------- */
/* A Content-Range matching [off, off + len) of a blob of size (or of unknown size). */
static bool content_range_ok(const char *cr, uint64_t off, uint64_t len, uint64_t size)
{
	uint64_t a, b, t;

	return reg_content_range(cr, strlen(cr), &a, &b, &t) && a == off && b == off + len - 1 &&
	       (!t || t == size);
}

int reg_blob_get(struct reg_client *c, const char *url, uint64_t size, uint64_t off,
		 uint64_t len, void *buf)
{
	struct reg_req r = { .method = "GET", .url = url, .out = buf, .out_cap = len };
	char disp[1024];
	int rc;

	if (!len || off >= size || len > size - off)
		return -EINVAL;
	snprintf(r.range, sizeof(r.range), "Range: bytes=%llu-%llu", (unsigned long long)off,
		 (unsigned long long)(off + len - 1));
	rc = do_req(c, &r);
	if (rc)
		goto out;
	url_redact(r.final_url, disp, sizeof(disp));
	if (r.status == 206) {
		if (!content_range_ok(r.resp_content_range, off, len, size)) {
			cli_err(disp, "HTTP 206 with Content-Range '%s', expected bytes %llu-%llu/%llu",
				r.resp_content_range, (unsigned long long)off,
				(unsigned long long)(off + len - 1), (unsigned long long)size);
			rc = -EPROTO;
			goto out;
		}
	} else if (r.status == 200) {
		if (off || len != size) {
			cli_err(disp, "HTTP 200 (the whole blob) for a ranged request of bytes %llu-%llu",
				(unsigned long long)off, (unsigned long long)(off + len - 1));
			rc = -EPROTO;
			goto out;
		}
	} else {
		rc = http_fail(&r, NULL);
		goto out;
	}
	if (r.overflow || r.out_len != len) {
		cli_err(disp, "HTTP %ld: %s bytes, expected %llu", r.status,
			r.overflow ? "more" : "fewer", (unsigned long long)len);
		rc = -EPROTO;
		goto out;
	}
	c->fetched += len;
out:
	req_free(&r);
	return rc;
}

int reg_blob_head_url(struct reg_client *c, const char *url, uint64_t *size)
{
	struct reg_req r = { .method = "HEAD", .url = url };
	int rc;

	rc = do_req(c, &r);
	if (rc)
		goto out;
	if (r.status == 200) {
		if (size)
			*size = r.has_content_length ? r.content_length : 0;
		rc = 1;
	} else if (r.status == 404) {
		rc = 0;
	} else {
		rc = http_fail(&r, NULL);
	}
out:
	req_free(&r);
	return rc;
}

int reg_blob_head(struct reg_client *c, const char *digest, uint64_t *size)
{
	char url[2048];

	if (snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", c->origin, c->reg.repo, digest) >=
	    (int)sizeof(url))
		return -ENAMETOOLONG;
	return reg_blob_head_url(c, url, size);
}

/* The upload URL a 202 names in Location. */
static int next_location(struct reg_req *r, char *loc, size_t loclen)
{
	char disp[1024];

	if (!r->location[0]) {
		cli_err(url_redact(r->final_url, disp, sizeof(disp)),
			"HTTP %ld without a Location", r->status);
		return -EPROTO;
	}
	return url_resolve(r->final_url, r->location, loc, loclen);
}

static int upload_start(struct reg_client *c, char *loc, size_t loclen)
{
	struct reg_req r = { .method = "POST" };
	char url[2048];
	int rc;

	snprintf(url, sizeof(url), "%s/v2/%s/blobs/uploads/", c->origin, c->reg.repo);
	r.url = url;
	rc = do_req(c, &r);
	if (!rc && r.status != 202)
		rc = http_fail(&r, "starting an upload: ");
	if (!rc)
		rc = next_location(&r, loc, loclen);
	req_free(&r);
	return rc;
}

/* Send [off, off + len) of the source; PUT (final, with ?digest=) or PATCH. */
static int upload_part(struct reg_client *c, char *loc, size_t loclen, const char *digest,
		       struct reg_req *src, uint64_t off, uint64_t len, bool final)
{
	struct reg_req r = *src;
	char url[REG_URL_MAX + 128];
	int rc;

	r.resp = NULL;
	r.body_off = off;
	r.body_len = len;
	r.content_type = "application/octet-stream";
	if (final) {
		r.method = "PUT";
		rc = url_append_query(loc, "digest", digest, url, sizeof(url));
		if (rc)
			return rc;
	} else {
		r.method = "PATCH";
		snprintf(url, sizeof(url), "%s", loc);
		snprintf(r.content_range, sizeof(r.content_range), "Content-Range: %llu-%llu",
			 (unsigned long long)off, (unsigned long long)(off + len - 1));
	}
	if (r.body) {
		r.body = (const char *)src->body + off;
		r.body_off = 0;
	}
	r.url = url;
	rc = do_req(c, &r);
	if (!rc && r.status != (final ? 201 : 202))
		rc = http_fail(&r, final ? "finishing an upload: " : "uploading a chunk: ");
	if (!rc && !final)
		rc = next_location(&r, loc, loclen);
	if (!rc)
		c->uploaded += len;
	req_free(&r);
	return rc;
}

static int upload(struct reg_client *c, const char *digest, struct reg_req *src, uint64_t size,
		  uint64_t chunk)
{
	char loc[REG_URL_MAX];
	uint64_t off = 0;
	int rc;

	rc = upload_start(c, loc, sizeof(loc));
	if (rc)
		return rc;
	if (!chunk || size <= chunk)
		return upload_part(c, loc, sizeof(loc), digest, src, 0, size, true);
	for (off = 0; off < size; off += chunk) {
		uint64_t n = size - off < chunk ? size - off : chunk;

		rc = upload_part(c, loc, sizeof(loc), digest, src, off, n, false);
		if (rc)
			return rc;
	}
	return upload_part(c, loc, sizeof(loc), digest, src, size, 0, true);
}

int reg_blob_upload_fd(struct reg_client *c, const char *digest, int fd, uint64_t size,
		       uint64_t chunk, reg_progress_fn progress, void *pctx)
{
	struct reg_req src = { .body_fd = fd, .progress = progress, .pctx = pctx };

	return upload(c, digest, &src, size, chunk);
}

int reg_blob_upload_buf(struct reg_client *c, const char *digest, const void *buf, size_t len)
{
	struct reg_req src = { .body = buf, .body_fd = -1 };

	return upload(c, digest, &src, len, 0);
}

int reg_manifest_put(struct reg_client *c, const char *ref, const char *body, size_t len)
{
	struct reg_req r = { .method = "PUT", .body = body, .body_fd = -1, .body_len = len,
			     .content_type = "application/vnd.oci.image.manifest.v1+json" };
	char url[2048];
	int rc;

	if (snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", c->origin, c->reg.repo, ref) >=
	    (int)sizeof(url))
		return -ENAMETOOLONG;
	r.url = url;
	rc = do_req(c, &r);
	if (!rc && r.status != 201 && r.status != 200)
		rc = http_fail(&r, "manifest: ");
	req_free(&r);
	return rc;
}

/* The media type of a Content-Type value: parameters and blanks dropped. */
static void media_type_of(const char *v, char *out, size_t outlen)
{
	size_t n = strcspn(v, ";");

	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	snprintf(out, outlen, "%.*s", (int)n, v);
}

int reg_manifest_get(struct reg_client *c, const char *ref, const char *accept, size_t max,
		     char **body, size_t *len, char *ctype, size_t ctlen)
{
	struct reg_req r = { .method = "GET", .accept = accept, .out_cap = max };
	char url[2048], disp[1024];
	int rc;

	*body = NULL;
	*len = 0;
	if (ctlen)
		ctype[0] = 0;
	if (snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", c->origin, c->reg.repo, ref) >=
	    (int)sizeof(url))
		return -ENAMETOOLONG;
	/* one byte more than max: a body of max + 1 bytes is "too large", not cut */
	r.out = malloc(max + 1);
	if (!r.out)
		return -ENOMEM;
	r.url = url;
	rc = do_req(c, &r);
	if (rc)
		goto out;
	if (r.status != 200) {
		rc = http_fail(&r, "manifest: ");
		goto out;
	}
	if (r.overflow) {
		cli_err(url_redact(r.final_url, disp, sizeof(disp)),
			"manifest larger than %zu bytes", max);
		rc = -EFBIG;
		goto out;
	}
	((char *)r.out)[r.out_len] = 0;
	*body = r.out;
	*len = (size_t)r.out_len;
	r.out = NULL;
	if (ctlen)
		media_type_of(r.resp_content_type, ctype, ctlen);
out:
	free(r.out);
	req_free(&r);
	return rc;
}
