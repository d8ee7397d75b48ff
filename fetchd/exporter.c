// SPDX-License-Identifier: GPL-2.0-only
/*
 * The Prometheus exporter (exporterConfig): a minimal HTTP/1.1 server in
 * the daemon's one epoll loop. GET <uriPrefix> answers the counters of
 * struct fetchd_stats, the gauges of struct fetchd_gauges and what the
 * loop knows now, in the text exposition format (version 0.0.4).
 *
 * A scrape client must never stall the daemon, which also answers the
 * kernel's misses: every socket is nonblocking, a request is read into a
 * fixed 8 KiB buffer, each connection has a deadline that exporter_tick
 * enforces, at most EXP_MAX_CONNS are open (more wait in the listen
 * backlog: the listener leaves the epoll set while all slots are taken),
 * and a response is written as far as the socket takes it, the rest on
 * EPOLLOUT. One request per connection (Connection: close).
 *
 * Values are read at scrape time: they are counters and a walk of the open
 * blobs and the fetch queue, cheaper than keeping a copy fresh. So
 * exporterConfig.updateInterval (accepted, as the reference's key) changes
 * nothing here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "fetchd.h"
#include "metrics.h"

/*----- state --------------------------------------------------------------*/
enum conn_state {
	C_FREE,
	C_READ,			/* reading the request head */
	C_WRITE,		/* writing the response */
	C_LINGER,		/* response sent, write side shut: reading to EOF */
};

struct conn {
	enum conn_state state;
	int fd;
	int slot;		/* loop watch */
	int64_t deadline_ms;
	size_t inlen;
	char in[EXP_REQ_MAX];
	char *out;		/* the whole response */
	size_t outlen, outoff;
};

/* Non-cumulative counts per bucket; cumulated when rendered. */
struct histo {
	uint64_t bucket[EXP_LAT_BUCKETS];
	uint64_t count;
	uint64_t sum_ms;
};

enum { LAT_OK, LAT_ERR, LAT_N };

static const int resp_codes[] = { 200, 400, 404, 405, 431, 500 };
#define NCODES	(sizeof(resp_codes) / sizeof(resp_codes[0]))

struct exporter {
	int lfd;
	int lslot;
	bool accepting;			/* listener in the epoll set */
	int64_t resume_ms;		/* accept again at (after EMFILE and the like), 0 = no */
	unsigned int nconns;
	struct conn conns[EXP_MAX_CONNS];
	struct histo lat[LAT_N];
	uint64_t responses[NCODES];
	uint64_t timeouts;		/* connections cut at their deadline */
	int64_t start_time;		/* unix seconds */
	/* "127.0.0.1:9863", "[::1]:9863" */
	char where[sizeof(((struct fetchd_config *)0)->exporter_addr) + 16];
};

/* le bounds in microseconds (exact integers) and as printed */
static const uint64_t lat_le_us[EXP_LAT_BUCKETS] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};
static const char *const lat_le_str[EXP_LAT_BUCKETS] = {
	"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
	"1", "2.5", "5", "10", "30", "60",
};

/*----- request latency (channel.c calls this for every DONE) ---------------*/
void metrics_observe_latency(struct fetchd *d, int64_t ms, int status)
{
	struct exporter *e = d->exp;
	struct histo *h;
	unsigned int i;

	if (!e)
		return;
	if (ms < 0)
		ms = 0;
	h = &e->lat[status ? LAT_ERR : LAT_OK];
	for (i = 0; i < EXP_LAT_BUCKETS; i++)
		if ((uint64_t)ms * 1000 <= lat_le_us[i]) {
			h->bucket[i]++;
			break;
		}
	/* past the last bound: only +Inf, which is the count */
	h->count++;
	h->sum_ms += (uint64_t)ms;
}

/*----- text buffer ------------------------------------------------------------*/
struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool sb_grow(struct sbuf *b, size_t need)
{
	size_t cap = b->cap ? b->cap : 16384;
	char *p;

	while (cap < need)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		if (!sb_grow(b, b->len + (size_t)n + 1))
			return;
	}
}

/*----- exposition ----------------------------------------------------------------*/
#define P "overlaybd_fetchd_"

static void family(struct sbuf *b, const char *name, const char *type, const char *help)
{
	sb_printf(b, "# HELP " P "%s %s\n# TYPE " P "%s %s\n", name, help, name, type);
}

static void sample(struct sbuf *b, const char *name, const char *labels, uint64_t v)
{
	sb_printf(b, P "%s%s%s%s %llu\n", name, labels ? "{" : "", labels ? labels : "",
		  labels ? "}" : "", (unsigned long long)v);
}

static void one(struct sbuf *b, const char *name, const char *type, const char *help, uint64_t v)
{
	family(b, name, type, help);
	sample(b, name, NULL, v);
}

struct field_def {
	const char *name;
	const char *help;
	size_t off;
};

#define ST(f)	offsetof(struct fetchd_stats, f)
static const struct field_def stat_counters[] = {
	{ "misses_total", "READ messages from the kernel (cache misses of dm-overlaybd)", ST(reads) },
	{ "misses_present_total", "Misses answered at once: the range was already in the cache file",
	  ST(reads_present) },
	{ "misses_refetch_total", "Misses with the REFETCH flag (the kernel asks for bytes again)",
	  ST(reads_refetch) },
	{ "fetches_total", "Ranged fetches made for misses (a fetch may take several attempts)",
	  ST(fetches) },
	{ "fetches_merged_total", "Misses that joined a fetch already in flight", ST(fetch_merged) },
	{ "readahead_fetches_total", "Fetches made by sequential readahead, with nobody waiting",
	  ST(ahead_fetches) },
	{ "fetched_bytes_total", "Bytes received from the registry for misses and readahead",
	  ST(bytes_fetched) },
	{ "written_bytes_total", "Bytes written into cache files", ST(bytes_written) },
	{ "http_requests_total", "HTTP requests sent to the registry (attempts and redirect hops)",
	  ST(http_requests) },
	{ "token_requests_total", "Bearer token requests sent to an auth realm", ST(token_requests) },
	{ "token_shared_total", "Token requests not sent: another blob's request of the same scope answered",
	  ST(token_shared) },
	{ "redirects_total", "HTTP redirects followed", ST(redirects) },
	{ "retries_total", "Fetch attempts retried after a retryable failure", ST(retries) },
	{ "fsyncs_total", "fdatasync calls of durability batches", ST(fsyncs) },
	{ "haves_total", "HAVE messages sent (ranges filled without a miss)", ST(haves) },
	{ "invalidates_total", "INVALIDATE messages sent (ranges taken back: sha256 mismatch, fsync error)",
	  ST(invalidates) },
	{ "handed_back_total", "Requests left unanswered at exit for the next daemon",
	  ST(handed_back) },
	{ "messages_total", "Messages read from the miss channel", ST(msgs_in) },
	{ "bad_messages_total", "Messages from the miss channel dropped as invalid", ST(msgs_bad) },
	{ "download_fetched_bytes_total", "Bytes fetched by the background download", ST(dl_bytes) },
	{ "download_blobs_done_total", "Blobs the background download completed and verified",
	  ST(dl_blobs_done) },
	{ "download_blobs_failed_total", "Blobs the background download gave up on (tryCnt used up)",
	  ST(dl_blobs_failed) },
	{ "download_bad_attempts_total", "Background download attempts that ended in a digest mismatch",
	  ST(dl_attempts_bad) },
	{ "evictions_total", "Cache entries evicted", ST(evictions) },
	{ "evicted_bytes_total", "Bytes freed by eviction", ST(evicted_bytes) },
	{ "evict_runs_total", "Eviction passes", ST(evict_runs) },
	{ "p2p_requests_total", "Data GETs sent through the p2p peer", ST(p2p_requests) },
	{ "p2p_fallbacks_total", "Data GETs that went to the registry after the p2p peer failed",
	  ST(p2p_fallbacks) },
	{ "gunzip_inflated_bytes_total", "Bytes decoded for gunzip entries (refills and whole-stream checks)",
	  ST(gz_inflated_bytes) },
	{ "gunzip_refills_total", "Refills of gunzip entries (one per refillSize unit decoded)",
	  ST(gz_refills) },
	{ "gunzip_errors_total", "Gunzip refills or whole-stream checks that failed (a check, inflate, a write)",
	  ST(gz_errors) },
	{ "gunzip_completed_total", "Gunzip entries completed by a whole-stream check", ST(gz_completed) },
};

#define GA(f)	offsetof(struct fetchd_gauges, f)
static const struct field_def gauge_fields[] = {
	{ "cache_bytes", "Bytes the cache files take in cacheDir (last eviction scan)", GA(cache_bytes) },
	{ "cache_limit_bytes", "cacheConfig.cacheSizeGB in bytes", GA(cache_limit) },
	{ "cache_entries", "Cache entries in cacheDir (last eviction scan)", GA(cache_entries) },
	{ "cache_fs_free_bytes", "Free bytes on the cache's file system", GA(fs_free_bytes) },
	{ "blobs_complete", "Open blobs with every byte present", GA(blobs_complete) },
	{ "download_queued_blobs", "Blobs waiting for or in background download", GA(dl_queued) },
	{ "download_queue_bytes", "Bytes of the blobs the background download holds", GA(dl_total_bytes) },
	{ "download_queue_present_bytes", "Bytes of those blobs already present", GA(dl_present_bytes) },
	{ "gunzip_cache_bytes", "Bytes the gunzip entries take in gzipCacheConfig.cacheDir (last eviction scan)",
	  GA(gz_cache_bytes) },
	{ "gunzip_cache_limit_bytes", "gzipCacheConfig.cacheSizeGB in bytes (0: disabled)", GA(gz_cache_limit) },
	{ "gunzip_cache_entries", "Gunzip entries in gzipCacheConfig.cacheDir (last eviction scan)",
	  GA(gz_cache_entries) },
};

static uint64_t field_at(const void *base, size_t off)
{
	uint64_t v;

	memcpy(&v, (const char *)base + off, sizeof(v));
	return v;
}

static void render_stat_counters(struct sbuf *b, const struct fetchd *d)
{
	const struct fetchd_stats *s = &d->st;
	size_t i;

	for (i = 0; i < sizeof(stat_counters) / sizeof(stat_counters[0]); i++)
		one(b, stat_counters[i].name, "counter", stat_counters[i].help,
		    field_at(s, stat_counters[i].off));

	family(b, "dones_total", "counter", "DONE messages sent, by status (error: a negative errno)");
	sample(b, "dones_total", "status=\"ok\"", s->dones_ok);
	sample(b, "dones_total", "status=\"error\"", s->dones_err);

	family(b, "verifications_total", "counter", "sha256 checks of complete blobs, by result");
	sample(b, "verifications_total", "result=\"ok\"", s->verify_ok);
	sample(b, "verifications_total", "result=\"bad\"", s->verify_bad);

	family(b, "errors_total", "counter", "Failed fetches and token requests, by kind");
	sample(b, "errors_total", "kind=\"notfound\"", s->err_notfound);
	sample(b, "errors_total", "kind=\"auth\"", s->err_auth);
	sample(b, "errors_total", "kind=\"http\"", s->err_http);
	sample(b, "errors_total", "kind=\"net\"", s->err_net);
	sample(b, "errors_total", "kind=\"timeout\"", s->err_timeout);
	sample(b, "errors_total", "kind=\"proto\"", s->err_proto);
	sample(b, "errors_total", "kind=\"io\"", s->err_io);
}

static void render_histo_one(struct sbuf *b, const char *status, const struct histo *h)
{
	uint64_t cum = 0;
	unsigned int i;

	for (i = 0; i < EXP_LAT_BUCKETS; i++) {
		cum += h->bucket[i];
		sb_printf(b, P "request_duration_seconds_bucket{status=\"%s\",le=\"%s\"} %llu\n",
			  status, lat_le_str[i], (unsigned long long)cum);
	}
	sb_printf(b, P "request_duration_seconds_bucket{status=\"%s\",le=\"+Inf\"} %llu\n", status,
		  (unsigned long long)h->count);
	sb_printf(b, P "request_duration_seconds_sum{status=\"%s\"} %llu.%03llu\n", status,
		  (unsigned long long)(h->sum_ms / 1000), (unsigned long long)(h->sum_ms % 1000));
	sb_printf(b, P "request_duration_seconds_count{status=\"%s\"} %llu\n", status,
		  (unsigned long long)h->count);
}

static void render_latency(struct sbuf *b, const struct exporter *e)
{
	family(b, "request_duration_seconds", "histogram",
	       "Time from a miss (READ) arriving to its DONE, by status");
	render_histo_one(b, "ok", &e->lat[LAT_OK]);
	render_histo_one(b, "error", &e->lat[LAT_ERR]);
}

static uint64_t list_count(const struct list *head, uint64_t cap)
{
	const struct list *p;
	uint64_t n = 0;

	for (p = head->next; p != head && n < cap; p = p->next)
		n++;
	return n;
}

static void render_gauges(struct sbuf *b, const struct fetchd *d, const struct exporter *e)
{
	size_t i;

	one(b, "up", "gauge", "1 while the daemon runs", 1);
	one(b, "connected", "gauge", "1 while the miss channel is open", d->chan_fd >= 0 && !d->chan_eof);
	family(b, "build_info", "gauge", "The daemon's version, as a label; the value is 1");
	sb_printf(b, P "build_info{version=\"%s\"} 1\n", FETCHD_VERSION);
	one(b, "start_time_seconds", "gauge", "When the daemon started, in seconds since the epoch",
	    (uint64_t)e->start_time);
	one(b, "pending_requests", "gauge", "Misses received and not answered yet", d->nreqs);
	one(b, "active_transfers", "gauge", "Fetches holding a transfer slot (maxConcurrent)", d->nactive);
	one(b, "fetches_in_flight", "gauge", "Fetches alive: queued, running, backing off or writing",
	    d->nfetches);
	one(b, "queued_fetches", "gauge", "Fetches waiting for a transfer slot",
	    list_count(&d->queue, FETCHD_MAX_FETCHES));
	one(b, "fetch_buffer_bytes", "gauge", "Bytes of fetch buffers in use", d->mem_in_use);
	one(b, "blobs_open", "gauge", "Blobs the kernel has open", list_count(&d->blobs, UINT64_MAX));
	for (i = 0; i < sizeof(gauge_fields) / sizeof(gauge_fields[0]); i++)
		one(b, gauge_fields[i].name, "gauge", gauge_fields[i].help,
		    field_at(&d->g, gauge_fields[i].off));
}

/* Bytes of b in the page cache: whole granules, the last one may be short. */
static uint64_t blob_cached_bytes(const struct blob *b)
{
	uint64_t bytes = b->nmem * OBD_GRANULE_SIZE, slack = b->ngranules * OBD_GRANULE_SIZE - b->size;

	if (b->ngranules && bits_all(b->mem, b->ngranules - 1, 1))
		bytes -= slack;
	return bytes;
}

/*
 * Per-blob series for open blobs only, and at most EXP_MAX_BLOB_SERIES of
 * them: the label sets stay bounded however many layers are attached.
 */
static void render_blobs(struct sbuf *b, const struct fetchd *d)
{
	static const char *const names[2] = { "blob_size_bytes", "blob_cached_bytes" };
	static const char *const helps[2] = {
		"Size of an open blob (at most " EXP_MAX_BLOB_SERIES_STR " blobs are listed)",
		"Bytes of an open blob present in its cache file",
	};
	const struct list *p;
	char hex[OBD_SHA256_LEN * 2 + 1];
	unsigned int k, i, n;

	for (k = 0; k < 2; k++) {
		family(b, names[k], "gauge", helps[k]);
		n = 0;
		for (p = d->blobs.next; p != &d->blobs && n < EXP_MAX_BLOB_SERIES; p = p->next) {
			const struct blob *bl = container_of(p, struct blob, node);

			if (!bl->opened || !bl->mem)
				continue;
			for (i = 0; i < OBD_SHA256_LEN; i++)
				snprintf(hex + 2 * i, 3, "%02x", bl->digest[i]);
			sb_printf(b, P "%s{blob=\"%llu\",digest=\"sha256:%s\"} %llu\n", names[k],
				  (unsigned long long)bl->id, hex,
				  (unsigned long long)(k ? blob_cached_bytes(bl) : bl->size));
			n++;
		}
	}
}

static void render_exporter(struct sbuf *b, const struct exporter *e)
{
	unsigned int i;

	family(b, "exporter_responses_total", "counter", "HTTP responses of this exporter, by code");
	for (i = 0; i < NCODES; i++)
		sb_printf(b, P "exporter_responses_total{code=\"%d\"} %llu\n", resp_codes[i],
			  (unsigned long long)e->responses[i]);
	one(b, "exporter_timeouts_total", "counter",
	    "Exporter connections closed at their deadline (no whole request or response in time)",
	    e->timeouts);
	one(b, "exporter_connections", "gauge", "Exporter connections open (at most "
	    EXP_MAX_CONNS_STR ")", e->nconns);
}

static void render_metrics(struct sbuf *b, const struct fetchd *d, const struct exporter *e)
{
	render_gauges(b, d, e);
	render_stat_counters(b, d);
	render_latency(b, e);
	render_blobs(b, d);
	render_exporter(b, e);
}

/*----- connections ---------------------------------------------------------------*/
static void listener_set(struct fetchd *d, struct exporter *e, bool on)
{
	if (e->accepting == on)
		return;
	if (loop_watch_mod(d, e->lslot, on ? EPOLLIN : 0) == 0)
		e->accepting = on;
}

static void conn_close(struct fetchd *d, struct conn *c)
{
	struct exporter *e = d->exp;

	loop_watch_del(d, c->slot);
	close(c->fd);
	free(c->out);
	c->out = NULL;
	c->state = C_FREE;
	c->fd = c->slot = -1;
	e->nconns--;
	/* a slot is free again: take what waits in the backlog */
	if (!e->resume_ms)
		listener_set(d, e, true);
}

static int code_index(int code)
{
	unsigned int i;

	for (i = 0; i < NCODES; i++)
		if (resp_codes[i] == code)
			return (int)i;
	return -1;
}

static const char *reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 431: return "Request Header Fields Too Large";
	}
	return "Internal Server Error";
}

static void conn_write(struct fetchd *d, struct conn *c);

/*
 * The whole response into c->out, then write. body may be NULL (an error
 * text is made from the code); head_only: HEAD, the length without the body.
 */
static void respond(struct fetchd *d, struct conn *c, int code, const char *ctype,
		    const char *body, size_t blen, bool head_only)
{
	struct exporter *e = d->exp;
	char ebody[64], hdr[384];
	int hlen, ci = code_index(code);

	if (!body) {
		blen = (size_t)snprintf(ebody, sizeof(ebody), "%d %s\n", code, reason(code));
		body = ebody;
		ctype = "text/plain; charset=utf-8";
	}
	hlen = snprintf(hdr, sizeof(hdr),
			"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
			"Connection: close\r\n\r\n",
			code, reason(code), ctype, blen, code == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (head_only)
		blen = 0;
	c->out = malloc((size_t)hlen + blen);
	if (!c->out) {
		pr_err("exporter: out of memory for a %zu byte response", (size_t)hlen + blen);
		conn_close(d, c);
		return;
	}
	memcpy(c->out, hdr, (size_t)hlen);
	memcpy(c->out + hlen, body, blen);
	c->outlen = (size_t)hlen + blen;
	c->outoff = 0;
	c->state = C_WRITE;
	if (ci >= 0)
		e->responses[ci]++;
	conn_write(d, c);
}

static void respond_metrics(struct fetchd *d, struct conn *c, bool head_only)
{
	struct sbuf b = { 0 };

	render_metrics(&b, d, d->exp);
	if (b.oom) {
		free(b.p);
		respond(d, c, 500, NULL, NULL, 0, false);
		return;
	}
	respond(d, c, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, head_only);
	free(b.p);
}

static bool is_tchar_upper(char ch)
{
	return ch >= 'A' && ch <= 'Z';
}

/* Header lines after the request line: "name: value", nothing else. */
static bool headers_ok(const char *p, const char *end)
{
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *colon;
		size_t n;

		if (!eol)
			eol = end;
		n = (size_t)(eol - p);
		if (n && p[n - 1] == '\r')
			n--;
		if (n) {
			colon = memchr(p, ':', n);
			if (!colon || colon == p || memchr(p, ' ', (size_t)(colon - p)) ||
			    memchr(p, '\t', (size_t)(colon - p)))
				return false;
		}
		p = eol + 1;
	}
	return true;
}

/*
 * The request line "METHOD SP target SP HTTP/1.x" into its parts (pointers
 * into line, NUL-terminated in place). false: malformed.
 */
static bool parse_request_line(char *line, char **method, char **target)
{
	char *sp1 = strchr(line, ' '), *sp2, *ver, *q;

	if (!sp1)
		return false;
	*sp1 = 0;
	*target = sp1 + 1;
	sp2 = strchr(*target, ' ');
	if (!sp2)
		return false;
	*sp2 = 0;
	ver = sp2 + 1;
	if (strcmp(ver, "HTTP/1.1") && strcmp(ver, "HTTP/1.0"))
		return false;
	*method = line;
	if (!**method || strlen(*method) > 16)
		return false;
	for (q = *method; *q; q++)
		if (!is_tchar_upper(*q))
			return false;
	if (**target != '/')
		return false;
	for (q = *target; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f)
			return false;
	return true;
}

/* head: the request head, hlen bytes up to and with its blank line. */
static void handle_request(struct fetchd *d, struct conn *c, size_t hlen)
{
	char *eol = memchr(c->in, '\n', hlen), *method, *target, *query;
	const char *uri = d->cfg.exporter_uri;

	/* a NUL would end the strings below early */
	if (!eol || memchr(c->in, 0, hlen))
		return respond(d, c, 400, NULL, NULL, 0, false);
	*eol = 0;
	if (eol > c->in && eol[-1] == '\r')
		eol[-1] = 0;
	if (!parse_request_line(c->in, &method, &target) || !headers_ok(eol + 1, c->in + hlen))
		return respond(d, c, 400, NULL, NULL, 0, false);
	query = strchr(target, '?');
	if (query)
		*query = 0;
	pr_debug("exporter: %s %s", method, target);
	if (strcmp(target, uri))
		return respond(d, c, 404, NULL, NULL, 0, !strcmp(method, "HEAD"));
	if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
		return respond_metrics(d, c, !strcmp(method, "HEAD"));
	respond(d, c, 405, NULL, NULL, 0, false);
}

/* Length of the request head (through its blank line) in buf, 0 if not there yet. */
static size_t head_end(const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static void conn_read(struct fetchd *d, struct conn *c)
{
	size_t hlen;
	ssize_t n;

	for (;;) {
		n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			return conn_close(d, c);	/* gone before a whole request */
		c->inlen += (size_t)n;
		hlen = head_end(c->in, c->inlen);
		if (hlen)
			return handle_request(d, c, hlen);
		if (c->inlen == sizeof(c->in)) {
			pr_warn("exporter: a request head over %zu bytes: answered 431", sizeof(c->in));
			return respond(d, c, 431, NULL, NULL, 0, false);
		}
	}
}

/*
 * After the response: shut the write side and read until the client
 * closes. Closing with unread bytes (a POST body, say) would send a RST
 * that can make the client drop the response it has not read yet.
 */
static void conn_linger_start(struct fetchd *d, struct conn *c)
{
	free(c->out);
	c->out = NULL;
	shutdown(c->fd, SHUT_WR);
	c->state = C_LINGER;
	c->deadline_ms = now_ms() + EXP_LINGER_MS;
	if (loop_watch_mod(d, c->slot, EPOLLIN))
		conn_close(d, c);
}

static void conn_linger(struct fetchd *d, struct conn *c)
{
	char sink[4096];
	unsigned int i;
	ssize_t n;

	/* bounded per event: level-triggered epoll comes back for the rest */
	for (i = 0; i < 16; i++) {
		n = recv(c->fd, sink, sizeof(sink), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			return conn_close(d, c);
	}
}

static void conn_write(struct fetchd *d, struct conn *c)
{
	ssize_t n;

	while (c->outoff < c->outlen) {
		n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (loop_watch_mod(d, c->slot, EPOLLOUT))
				conn_close(d, c);
			return;
		}
		if (n < 0) {
			pr_debug("exporter: send: %s", strerror(errno));
			return conn_close(d, c);
		}
		c->outoff += (size_t)n;
	}
	conn_linger_start(d, c);
}

static void on_conn(struct fetchd *d, void *ctx, int fd, uint32_t events)
{
	struct conn *c = ctx;

	switch (c->state) {
	case C_READ:
		return conn_read(d, c);
	case C_WRITE:
		return conn_write(d, c);
	case C_LINGER:
		return conn_linger(d, c);
	case C_FREE:
		return;
	}
}

static struct conn *conn_free_slot(struct exporter *e)
{
	unsigned int i;

	for (i = 0; i < EXP_MAX_CONNS; i++)
		if (e->conns[i].state == C_FREE)
			return &e->conns[i];
	return NULL;
}

/* Stop accepting for a while: the listener would report the same error at once again. */
static void accept_backoff(struct fetchd *d, struct exporter *e, const char *why)
{
	pr_warn("exporter: cannot take a connection (%s): not accepting for %d ms", why,
		EXP_ACCEPT_BACKOFF_MS);
	listener_set(d, e, false);
	e->resume_ms = now_ms() + EXP_ACCEPT_BACKOFF_MS;
}

static void conn_start(struct fetchd *d, struct exporter *e, struct conn *c, int fd)
{
	int slot = loop_watch_add(d, fd, EPOLLIN, on_conn, c);

	if (slot < 0) {
		close(fd);
		accept_backoff(d, e, strerror(-slot));
		return;
	}
	c->state = C_READ;
	c->fd = fd;
	c->slot = slot;
	c->inlen = 0;
	c->deadline_ms = now_ms() + EXP_DEADLINE_MS;
	if (++e->nconns == EXP_MAX_CONNS)
		listener_set(d, e, false);	/* the rest wait in the listen backlog */
}

static void on_listen(struct fetchd *d, void *ctx, int fd, uint32_t events)
{
	struct exporter *e = ctx;
	unsigned int i;
	struct conn *c;
	int cfd;

	for (i = 0; i < EXP_ACCEPT_BATCH; i++) {
		c = conn_free_slot(e);
		if (!c)
			return listener_set(d, e, false);
		cfd = accept4(e->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* the peer gave up before we took it, or a signal */
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			return accept_backoff(d, e, strerror(errno));
		}
		conn_start(d, e, c, cfd);
		if (e->resume_ms)
			return;
	}
}

/*----- start, stop, tick ---------------------------------------------------------------*/
/* exporterConfig.address:port into sa; a numeric address only (no DNS: it would block). */
static int parse_addr(const struct fetchd_config *cfg, struct sockaddr_storage *sa, socklen_t *salen,
		      char *where, size_t wlen)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;

	memset(sa, 0, sizeof(*sa));
	if (inet_pton(AF_INET, cfg->exporter_addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)cfg->exporter_port);
		*salen = sizeof(*s4);
		snprintf(where, wlen, "%s:%u", cfg->exporter_addr, cfg->exporter_port);
		return 0;
	}
	if (inet_pton(AF_INET6, cfg->exporter_addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)cfg->exporter_port);
		*salen = sizeof(*s6);
		snprintf(where, wlen, "[%s]:%u", cfg->exporter_addr, cfg->exporter_port);
		return 0;
	}
	pr_err("exporterConfig.address: '%s' is not an IPv4 or IPv6 address", cfg->exporter_addr);
	return -EINVAL;
}

/* The listening socket, or -1 with the reason logged (naming the keys). */
static int listen_on(const struct fetchd_config *cfg, char *where, size_t wlen)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	int fd, one_ = 1, e;

	if (parse_addr(cfg, &sa, &salen, where, wlen))
		return -1;
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		pr_err("exporter: socket: %s", strerror(errno));
		return -1;
	}
	/* a restarted daemon binds again while old connections sit in TIME_WAIT */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one_, sizeof(one_)) < 0)
		pr_warn("exporter: SO_REUSEADDR: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, salen) < 0 || listen(fd, EXP_BACKLOG) < 0) {
		e = errno;
		pr_err("exporterConfig.port: cannot listen on %s (exporterConfig.address, "
		       "exporterConfig.port): %s", where, strerror(e));
		close(fd);
		return -1;
	}
	return fd;
}

int exporter_init(struct fetchd *d)
{
	struct exporter *e;
	unsigned int i;

	if (!d->cfg.exporter_enable)
		return 0;
	e = calloc(1, sizeof(*e));
	if (!e) {
		pr_err("exporter: out of memory");
		return -1;
	}
	for (i = 0; i < EXP_MAX_CONNS; i++)
		e->conns[i].fd = e->conns[i].slot = -1;
	e->start_time = (int64_t)time(NULL);
	e->lfd = listen_on(&d->cfg, e->where, sizeof(e->where));
	if (e->lfd < 0) {
		free(e);
		return -1;
	}
	e->lslot = loop_watch_add(d, e->lfd, EPOLLIN, on_listen, e);
	if (e->lslot < 0) {
		pr_err("exporter: epoll: %s", strerror(-e->lslot));
		close(e->lfd);
		free(e);
		return -1;
	}
	e->accepting = true;
	d->exp = e;
	pr_info("exporter: serving http://%s%s", e->where, d->cfg.exporter_uri);
	return 0;
}

void exporter_fini(struct fetchd *d)
{
	struct exporter *e = d->exp;
	unsigned int i;

	if (!e)
		return;
	for (i = 0; i < EXP_MAX_CONNS; i++)
		if (e->conns[i].state != C_FREE)
			conn_close(d, &e->conns[i]);
	loop_watch_del(d, e->lslot);
	close(e->lfd);
	free(e);
	d->exp = NULL;
}

/* Cut connections past their deadline; accept again after a backoff. */
int64_t exporter_tick(struct fetchd *d)
{
	struct exporter *e = d->exp;
	int64_t now = now_ms(), due = 0;
	unsigned int i;

	if (!e)
		return 0;
	if (e->resume_ms && now >= e->resume_ms) {
		e->resume_ms = 0;
		if (e->nconns < EXP_MAX_CONNS)
			listener_set(d, e, true);
	}
	for (i = 0; i < EXP_MAX_CONNS; i++) {
		struct conn *c = &e->conns[i];

		if (c->state == C_FREE)
			continue;
		if (now >= c->deadline_ms) {
			if (c->state != C_LINGER) {
				e->timeouts++;
				pr_warn("exporter: a client sent no whole request or read no whole "
					"response within %d ms: closed", EXP_DEADLINE_MS);
			}
			conn_close(d, c);
			continue;
		}
		if (!due || c->deadline_ms < due)
			due = c->deadline_ms;
	}
	if (e->resume_ms && (!due || e->resume_ms < due))
		due = e->resume_ms;
	return due;
}
