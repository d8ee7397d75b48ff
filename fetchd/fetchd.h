/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * overlaybd-fetchd internals: the objects every part of the daemon shares.
 *
 *   struct fetchd  the one daemon: event loop fds, ring, curl multi, lists
 *   struct blob    an OPENed blob: cache entry + in-memory presence bitmaps
 *   struct req     one READ from the kernel; answered by exactly one DONE
 *   struct fetch   one ranged GET (with retries) that some reqs wait on
 *   struct ring_op one io_uring operation; owns its buffer until its CQE
 *
 * Single-threaded: nothing here is locked. Every queue and table has a cap
 * (FETCHD_MAX_*); when one is reached the daemon stops reading the channel
 * and the kernel keeps the misses queued.
 */
#ifndef OBD_FETCHD_FETCHD_H
#define OBD_FETCHD_FETCHD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <liburing.h>

#include "obd_uapi.h"
#include "config.h"
#include "cache_entry.h"
#include "auth.h"
#include "log.h"

#define FETCHD_VERSION		"0.1"

#define FETCHD_MAX_REQS		4096	/* outstanding READs */
#define FETCHD_MAX_FETCHES	4096	/* fetch objects, queued or active */
#define FETCHD_MEM_BUDGET	(256ull << 20)	/* bytes of fetch buffers at once */
#define FETCHD_FETCH_MIN_CHUNK	(8ull << 20)	/* a big miss or a readahead window is split in chunks of this (a registry answers few large GETs faster than many small ones) */
#define FETCHD_MAX_REDIRECTS	8
#define FETCHD_BACKOFF_MIN_MS	100
#define FETCHD_BACKOFF_MAX_MS	5000
#define FETCHD_VERIFY_CHUNK	(1u << 20)
/* a token's cache key: origin|credentials|realm|service|scope (registry.c) */
#define FETCHD_TOKEN_KEY_MAX	2400
#define FETCHD_VERIFY_QUIET_MS	1000	/* a complete blob's sha256 check waits for its misses to stop this long */
#define FETCHD_VERIFY_RETRY_MS	1000	/* a failed read-back: checked again after this, doubling */
#define FETCHD_VERIFY_RETRY_MAX_MS	60000
#define FETCHD_SHUTDOWN_GRACE_MS 3000
#define FETCHD_RING_MAX_INFLIGHT 256
#define FETCHD_SMALL_BODY_MAX	16384	/* token and error bodies */
#define FETCHD_BG_MAX_ACTIVE	2	/* background fetches at once: misses keep the other slots */
#define FETCHD_RA_MIN_RUN	(1ull << 20)	/* readahead once a stream has read this */
#define FETCHD_RA_INFLIGHT	2		/* readahead GETs of one stream at a time: the nearest first */

/*----- intrusive doubly-linked list ------------------------------------*/
struct list {
	struct list *prev, *next;
};

static inline void list_init(struct list *l)
{
	l->prev = l->next = l;
}

static inline bool list_empty(const struct list *l)
{
	return l->next == l;
}

static inline void list_add_tail(struct list *n, struct list *head)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static inline void list_del(struct list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	list_init(n);
}

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))
#define list_for_each_safe(pos, tmp, head) \
	for (pos = (head)->next, tmp = pos->next; pos != (head); pos = tmp, tmp = pos->next)

/*----- statistics (kept for later metrics; summary line at exit) -------*/
struct fetchd_stats {
	uint64_t msgs_in, msgs_bad;
	uint64_t reads, reads_present, reads_refetch;
	uint64_t dones_ok, dones_err;
	uint64_t fetches, fetch_merged;
	uint64_t http_requests, token_requests, token_shared, redirects, retries;
	uint64_t bytes_fetched, bytes_written;
	uint64_t err_notfound, err_auth, err_http, err_net, err_timeout, err_proto, err_io;
	uint64_t fsyncs, verify_ok, verify_bad;
	uint64_t ahead_fetches;		/* fetches made by sequential readahead */
	uint64_t handed_back;		/* left unanswered at exit for the next daemon */
	uint64_t haves;			/* HAVE messages sent (ranges filled without a miss) */
	uint64_t invalidates;		/* INVALIDATE messages: ranges taken back (chan_take_back) */
	uint64_t reads_prefetch;	/* READs flagged OBD_READ_F_PREFETCH */
	uint64_t fetch_promoted;	/* background fetches a miss then waited for */
	/* background download (download.c) */
	uint64_t dl_bytes;		/* bytes fetched by it */
	uint64_t dl_blobs_done;		/* blobs it completed and verified */
	uint64_t dl_attempts_bad;	/* attempts that ended in a digest mismatch */
	uint64_t dl_blobs_failed;	/* blobs that used up tryCnt */
	/* eviction (evict.c) */
	uint64_t evictions, evicted_bytes, evict_runs;
	uint64_t p2p_requests, p2p_fallbacks;	/* data GETs through the peer; peer failed */
	/* gunzip entries (gunzip.c) */
	uint64_t gz_inflated_bytes;	/* bytes decoded (refills and whole-stream passes) */
	uint64_t gz_refills;		/* refill jobs made */
	uint64_t gz_errors;		/* refills or passes failed (a check, inflate, a write) */
	uint64_t gz_completed;		/* entries completed by a whole-stream pass */
};

/*
 * Gauges: what is true now, for the exporter and the exit summary.
 * Set by their owners; read by exporter.c.
 */
struct fetchd_gauges {
	uint64_t cache_bytes;		/* on disk in cacheDir (evict.c's last scan) */
	uint64_t cache_limit;		/* cacheSizeGB in bytes */
	uint64_t cache_entries;
	uint64_t gz_cache_bytes;	/* on disk in gzipCacheConfig.cacheDir (gunzip entries) */
	uint64_t gz_cache_limit;	/* its cacheSizeGB in bytes */
	uint64_t gz_cache_entries;
	uint64_t fs_free_bytes;		/* free on the cache's file system */
	uint64_t blobs_complete;	/* open blobs with every byte present */
	uint64_t dl_total_bytes;	/* bytes of the blobs the download queue holds */
	uint64_t dl_present_bytes;	/* ... of which present */
	uint64_t dl_queued;		/* blobs waiting for or in background download */
};

/*----- objects -----------------------------------------------------------*/
struct fetch;
struct fetchd;

/*
 * A request status meaning "not answered: the kernel sends it again to the
 * next daemon" (obd_uapi.h, failover). Used when stopping with the real
 * device, so a daemon restart fails no reader.
 */
#define FETCHD_HAND_BACK	1

struct gunzip;

struct blob {
	struct list node;		/* fetchd.blobs */
	struct gunzip *gz;		/* a gunzip entry (OBD_CACHE_F_GUNZIP): gunzip.c's state */
	bool internal;			/* not the kernel's: a gunzip entry's compressed blob
					 * (no HAVE or INVALIDATE names it) */
	unsigned int users;		/* gunzip entries reading through it */
	unsigned int gz_jobs;		/* gunzip.c's jobs on it (the threads may hold it) */
	uint64_t id;
	uint64_t size;
	uint8_t digest[OBD_SHA256_LEN];
	char path[OBD_MSG_PATH_MAX];
	uint64_t ino;			/* the cache file the kernel has open (OPEN) */
	uint32_t dev;
	char url[OBD_CACHE_URL_MAX];
	bool opened;			/* ce is valid */
	bool broken;			/* READs get -EIO, reason logged */
	char broken_reason[640];
	bool closing;			/* CLOSE seen: free when idle */
	struct cache_entry ce;
	uint64_t ngranules;
	uint64_t *mem;			/* in the page cache (written) */
	uint64_t *dirty;		/* written, not yet in an fsync */
	uint64_t *syncing;		/* covered by the fsync in flight */
	uint64_t nmem;			/* granules set in mem */
	bool sync_inflight;
	unsigned int meta_syncs;	/* the .meta's fdatasyncs in flight (OP_META_FSYNC);
					 * ce.meta_fd is open only while they or a change need it */
	bool load_retry;		/* the entry could not be opened for want of fds: retried */
	unsigned int fetches;		/* fetch objects on this blob */
	/* the stream being read (stream_note, fetch_ahead) */
	uint64_t run_start;		/* where it started */
	uint64_t run_end;		/* the end of what it read */
	uint64_t ahead_end;		/* the end of what it read or fetched */
	unsigned int ahead_inflight;	/* its readahead fetches not yet written */
	struct list flist;		/* those fetches (fetch.bnode), by start */
	unsigned int ops;		/* ring ops on this blob */
	uint64_t gen;			/* bumped by every clear: stale verify */
	/* auth state of this blob's URL (spec 6.3) */
	struct auth_challenge chal;	/* scheme AUTH_NONE until a 401 */
	char authz[8192];		/* "Authorization: ..." header, secret */
	int64_t authz_expiry_ms;	/* 0 = none */
	struct list auth_wait;		/* fetches waiting for a token */
	bool token_inflight;
	bool token_follow;		/* waits for another blob's token request of its scope */
	char cred_id[24];		/* which credentials auth last used ("" none yet, "-" anonymous) */
	/* sha256 check once everything is present */
	bool verify_inflight;
	bool verified;
	int64_t last_miss_ms;		/* the last READ (not a prefetch): verify_maybe_start waits */
	bool complete;			/* OBD_CACHE_F_COMPLETE is on disk */
	bool want_complete;		/* verified: set the flag once every bit is durable */
	struct dl_job *dl;		/* download.c's job for it, if any */
	uint64_t verify_off;
	uint64_t verify_gen;
	void *verify_ctx;		/* EVP_MD_CTX */
	unsigned int verify_fails;	/* read-backs failed in a row */
	int64_t verify_retry_ms;	/* after a failed read-back: not before this */
};

struct req {
	struct list hnode;		/* request hash chain */
	uint64_t id;
	uint64_t blob_id;		/* for the DONE: the blob may be gone by then */
	struct blob *blob;
	uint64_t off, len;		/* requested */
	int64_t t_start_ms;		/* when it came in: latency */
	uint64_t done_off, done_end;	/* hull of what the fetches brought */
	unsigned int waits;		/* fetches still to complete */
	int status;			/* first error seen */
	bool replied;
	bool retake;			/* part of its range was taken back while it waited: read again */
	bool invalidate;		/* not a request: an INVALIDATE waiting in the outq */
	struct req *next_out;		/* fetchd.outq while a DONE waits for room */
};

/* A req attached to a fetch (one req may wait on several fetches). */
struct attach {
	struct list node;		/* fetch.attached */
	struct req *req;		/* NULL: fn(owner) is told instead (gunzip.c) */
	void (*fn)(struct fetchd *d, void *owner, int err);
	void *owner;
};

enum fetch_state {
	F_QUEUED,			/* waiting for a transfer slot */
	F_AUTH,				/* waiting for a token */
	F_ACTIVE,			/* curl transfer running */
	F_BACKOFF,			/* waiting to retry */
	F_WRITING,			/* ring write of the body in flight */
};

/* X_CRED: a credential server request (credq.c); X_PROBE: the auth/redirect
 * probe before a data GET goes to the P2P peer (spec 6.3) */
enum xfer_kind { X_DATA, X_TOKEN, X_CRED, X_PROBE };

/* One curl easy transfer: a data GET attempt or a token GET. */
struct xfer {
	struct list node;		/* registry.c's list of live transfers */
	enum xfer_kind kind;
	CURL *easy;
	struct curl_slist *hdrs;
	char errbuf[CURL_ERROR_SIZE];
	long status;			/* of the last response (after 1xx) */
	bool got_range;			/* Content-Range seen and parsed */
	uint64_t cr_first, cr_last, cr_total;
	char www_auth[2048];		/* WWW-Authenticate of a 401 */
	char *body;			/* X_DATA: fetch buffer; X_TOKEN: small */
	uint64_t body_cap, body_len;
	bool overflow;			/* more body than asked */
	bool sent_authz;
	bool via_peer;			/* X_DATA sent to the P2P peer */
	bool peer_trial;		/* ... as the one probe of a peer backed off */
	struct fetch *fetch;		/* X_DATA, or the fetch a token is for */
	struct blob *blob;		/* X_TOKEN */
	char url[OBD_CACHE_URL_MAX];	/* this hop */
	char tkey[FETCHD_TOKEN_KEY_MAX];	/* X_TOKEN: the key its token is cached under */
};

struct fetch;
/* Told when a background fetch ends: err 0, its range is in the page cache. */
typedef void (*fetch_done_fn)(struct fetchd *d, struct fetch *f, int err);

struct fetch {
	struct list node;		/* fetchd.queue / .bg_queue / .backoff / .active / .writing / blob auth_wait */
	struct list all;		/* fetchd.fetches */
	struct list bnode;		/* blob.flist */
	bool has_slot;			/* counted in fetchd.nactive */
	struct blob *blob;
	uint64_t off, len;
	enum fetch_state state;
	struct list attached;		/* struct attach */
	bool background;		/* download/prefetch: only when no miss waits */
	bool prefetch;			/* ... a prefetch (trace replay): its own cap */
	bool ahead;			/* sequential readahead (blob.ahead_inflight) */
	fetch_done_fn on_done;		/* background: its owner */
	void *owner;
	unsigned int attempts;		/* HTTP attempts (retries + 1) */
	unsigned int auth_rounds;	/* authentications after a 401/403 */
	unsigned int hops;		/* redirects in this attempt */
	int64_t t_start_ms;		/* made at (the debug log's timings) */
	int64_t deadline_ms;
	int64_t due_ms;			/* F_BACKOFF: retry at */
	char *buf;			/* len bytes while ACTIVE/WRITING */
	struct xfer *x;			/* F_ACTIVE */
	char cur_url[OBD_CACHE_URL_MAX];	/* after redirects */
	bool cross_host;		/* a redirect left the blob's host: no Authorization */
	bool cross_retried;		/* a 401/403 from there was retried with a fresh redirect */
	bool p2p_skip;			/* this attempt bypasses the P2P peer (it failed) */
	/* what to say when it fails */
	long last_status;
	int64_t retry_after_ms;		/* the last answer's Retry-After; -1: none */
	CURLcode last_curl;
	char last_err[CURL_ERROR_SIZE];
	/*
	 * The first TLS error of this fetch: with TLS 1.3 a server's refusal
	 * (no client certificate) arrives after the handshake, so a retry may
	 * end in a reset instead, and the reason would be lost from the log.
	 */
	char tls_err[CURL_ERROR_SIZE];
};

enum ring_op_kind { OP_WRITE, OP_FSYNC, OP_VERIFY_READ, OP_META_FSYNC };

struct ring_op {
	struct list node;		/* fetchd.ring_wait while no SQE is free */
	enum ring_op_kind kind;
	struct blob *blob;
	struct fetch *fetch;		/* OP_WRITE */
	char *buf;
	uint64_t off;			/* file offset of buf[done] is off + done */
	uint64_t len, done;
	bool nospace_retried;		/* OP_WRITE: written again after an eviction pass */
	bool sets_complete;		/* OP_META_FSYNC: of the complete flag's header write */
	uint64_t gen;			/* OP_META_FSYNC: the blob's gen then */
};

enum ep_tag { EP_CHAN = 1, EP_CURL_TIMER, EP_TICK, EP_SIGNAL, EP_RING, EP_CURL_SOCK, EP_WATCH };

/*
 * An fd of another part of the daemon (the exporter's sockets) in the one
 * epoll set: fn runs for its events. Slots are few and fixed.
 */
#define FETCHD_MAX_WATCHES	64
struct fetchd;
typedef void (*loop_watch_fn)(struct fetchd *d, void *ctx, int fd, uint32_t events);
struct loop_watch {
	int fd;				/* -1: free */
	uint16_t gen;			/* bumped at each use of the slot, in its events */
	loop_watch_fn fn;
	void *ctx;
};

struct exporter;
struct download;
struct evict;
struct gzpool;

struct fetchd {
	struct fetchd_config cfg;
	const char *device;
	int chan_fd;
	bool chan_is_sock;
	bool chan_in_epoll;		/* EPOLLIN wanted: not throttled, not stopping */
	bool chan_out_wanted;		/* EPOLLOUT for queued DONEs */
	bool chan_eof;
	bool chan_removed;		/* taken out of epoll after EOF */
	int epfd, curl_tfd, tick_tfd, sig_fd, ring_efd;
	struct io_uring ring;
	bool ring_ok;
	unsigned int ring_inflight;
	struct list ring_wait;
	CURLM *multi;
	int curl_running;
	struct list blobs;
	struct list req_hash[1024];
	unsigned int nreqs;
	struct req *outq_head, *outq_tail;	/* DONEs the channel had no room for */
	struct list fetches;		/* every fetch */
	struct list queue;		/* F_QUEUED, FIFO: misses and readahead */
	struct list bg_queue;		/* F_QUEUED background fetches, behind queue */
	unsigned int nbg_active;	/* download fetches holding a slot */
	unsigned int npf_active;	/* prefetch fetches holding a slot (prefetchConfig.concurrency) */
	struct list backoff;		/* F_BACKOFF */
	unsigned int nfetches, nactive;
	uint64_t mem_in_use;
	bool stopping;
	int64_t stop_deadline_ms;
	int64_t next_sync_ms;		/* 0 = nothing dirty */
	int64_t verify_due_ms;		/* a complete blob's check waits until then; 0: none waits */
	uint64_t fetch_chunk;		/* largest fetch */
	struct fetchd_stats st;
	struct fetchd_gauges g;
	struct loop_watch watches[FETCHD_MAX_WATCHES];
	struct exporter *exp;		/* exporter.c, NULL when disabled */
	struct download *dl;		/* download.c */
	struct evict *ev;		/* evict.c */
	struct evict *gzev;		/* evict.c, of gzipCacheConfig.cacheDir (NULL when disabled) */
	struct gzpool *gzp;		/* gunzip.c's inflate threads (NULL when disabled) */
	struct list nospace_wait;	/* writes that met ENOSPC, until the eviction pass */
	int64_t nospace_until_ms;	/* the disk is full: misses fail without a GET until then */
	int64_t retry_due_ms;		/* a locked .meta or a blob short of fds: try again then */
};

extern struct fetchd *fd_g;

/*----- notify.c: sd_notify(3) readiness and watchdog ---------------------*/
void notify_init(void);
void notify_send(const char *msg);
int64_t notify_tick(void);		/* next ping due, 0 = none */
void notify_fini(void);

/*----- loop.c ------------------------------------------------------------*/
int64_t now_ms(void);
int loop_init(struct fetchd *d);
int loop_run(struct fetchd *d);
void loop_fini(struct fetchd *d);
/* One epoll_wait batch, in order (loop_run's; a unit test's with its own order). */
struct epoll_event;
void loop_dispatch(struct fetchd *d, const struct epoll_event *evs, int n);
void loop_update_chan_events(struct fetchd *d);
/* fd into the loop; the slot (>= 0) or -errno (no slot free: -EMFILE). */
int loop_watch_add(struct fetchd *d, int fd, uint32_t events, loop_watch_fn fn, void *ctx);
int loop_watch_mod(struct fetchd *d, int slot, uint32_t events);
void loop_watch_del(struct fetchd *d, int slot);	/* does not close the fd */

/*----- exporter.c: Prometheus metrics (exporterConfig) ------------------*/
int exporter_init(struct fetchd *d);		/* 0 when disabled too */
void exporter_fini(struct fetchd *d);
int64_t exporter_tick(struct fetchd *d);	/* next due ms, 0 = none */
void metrics_observe_latency(struct fetchd *d, int64_t ms, int status);

/*----- download.c: background download (download{}) -----------------------*/
int download_init(struct fetchd *d);
void download_fini(struct fetchd *d);
void download_blob_opened(struct fetchd *d, struct blob *b);
void download_blob_closed(struct fetchd *d, struct blob *b);
void download_blob_verified(struct fetchd *d, struct blob *b, bool ok);
/* The check could not read the blob back: a failed attempt of its job. */
void download_blob_unverified(struct fetchd *d, struct blob *b, const char *why);
int64_t download_tick(struct fetchd *d);	/* next due ms, 0 = none */

/*----- evict.c: cacheSizeGB and the free-disk floor ----------------------*/
int evict_init(struct fetchd *d);
void evict_fini(struct fetchd *d);
int64_t evict_tick(struct fetchd *d);		/* next due ms, 0 = none */
void evict_note_written(struct fetchd *d, uint64_t bytes);
/* ... in one directory's count: d->ev (cacheConfig) or d->gzev (gunzip entries) */
void evict_note_written_in(struct fetchd *d, struct evict *ev, uint64_t bytes);
/* The disk is full (ENOSPC/EDQUOT): a pass at once; parked writes retried after it. */
void evict_now(struct fetchd *d);

/*----- gunzip.c: gunzip entries (gzipCacheConfig) -----------------------*/
struct obd_gzindex;
/*
 * A refill of the unit [us, ue) of a gunzip entry (pure: test_fetchd_gunzip):
 * decode from access point first to last (last == gi->n: the stream's end),
 * write [w0, w1) (whole granules, w1 may be the stream's end; it holds the
 * unit), after making the compressed [cs, ce) present (R-aligned, clamped to
 * csize). checked[i]: point i's window was checked by decoding across it.
 */
struct gz_plan {
	uint64_t first, last, w0, w1, cs, ce;
};
void gunzip_plan(const struct obd_gzindex *gi, const uint8_t *checked, uint64_t us,
		 uint64_t ue, uint64_t csize, uint64_t R, struct gz_plan *p);
int gunzip_init(struct fetchd *d);
void gunzip_fini(struct fetchd *d);
bool gunzip_busy(struct fetchd *d);
/* A gunzip entry was loaded: its index and compressed blob; non-zero: b is broken. */
int gunzip_attach(struct fetchd *d, struct blob *b);
void gunzip_release(struct fetchd *d, struct blob *b);
/* A READ of a gunzip entry, not present (fetch_read's). */
void gunzip_read(struct fetchd *d, struct req *r);
void gunzip_maybe_complete(struct fetchd *d, struct blob *b);
/* cb (a compressed blob) is complete: the gunzip entries over it may complete. */
void gunzip_compressed_complete(struct fetchd *d, struct blob *cb);
void gunzip_invalidate(struct fetchd *d, struct blob *b, const char *why);
/* cb (a compressed blob) failed its sha256: the gunzip entries over it are cleared and taken back. */
void gunzip_compressed_bad(struct fetchd *d, struct blob *cb);

/*----- channel.c ---------------------------------------------------------*/
int chan_open(struct fetchd *d);
void chan_close(struct fetchd *d);
void chan_drain(struct fetchd *d);
void chan_flush_out(struct fetchd *d);
/* Answer req (exactly once) and free it. */
void req_complete(struct fetchd *d, struct req *r);
void chan_fail_all_reqs(struct fetchd *d, int status);
void chan_send_have(struct fetchd *d, struct blob *b, uint64_t off, uint64_t len);
/* [off, +len) of b is bad or lost: INVALIDATE to the kernel, waiting READs read again. */
void chan_take_back(struct fetchd *d, struct blob *b, uint64_t off, uint64_t len);

/*----- cache.c -----------------------------------------------------------*/
struct blob *blob_find(struct fetchd *d, uint64_t id);
void blob_open(struct fetchd *d, uint64_t id, uint64_t size, const uint8_t *digest,
	       const char *path, uint64_t ino, uint32_t dev);
void blob_close(struct fetchd *d, struct blob *b);
void blob_maybe_free(struct fetchd *d, struct blob *b);
void blob_free_all(struct fetchd *d);
void blob_set_broken(struct blob *b, const char *why);
/*
 * A blob the kernel never OPENed (a gunzip entry's compressed blob): the
 * entry at path is made if absent (cache_entry_open). NULL with err set.
 */
struct blob *blob_open_internal(struct fetchd *d, const char *path, uint64_t size,
				const uint8_t *digest, const char *url, char *err, size_t errlen);
bool blob_mem_present(const struct blob *b, uint64_t off, uint64_t len);
int blob_refetch_clear(struct fetchd *d, struct blob *b, uint64_t off, uint64_t len);
int cache_write_fetch(struct fetchd *d, struct fetch *f);
void cache_reap(struct fetchd *d);
void cache_sync_due(struct fetchd *d, bool force);
bool cache_busy(struct fetchd *d);
void cache_final_sync(struct fetchd *d);
/* Verified: mark the entry complete once every bit is durable (now or after the sync). */
void cache_try_complete(struct fetchd *d, struct blob *b);
/* After an eviction pass: the writes parked on ENOSPC go again. */
void cache_nospace_retry(struct fetchd *d);
/* After a write still met a full disk, misses fail without a GET this long. */
#define FETCHD_NOSPACE_MS	2000
/* false: its READs fail (broken, or its entry still cannot be opened). */
bool blob_usable(struct fetchd *d, struct blob *b);
/* Blobs whose .meta was locked, or short of fds: try again. Next due, 0 = none. */
int64_t cache_retry_tick(struct fetchd *d);
void ring_flush_wait(struct fetchd *d);

/*----- fetch.c -----------------------------------------------------------*/
void fetch_read(struct fetchd *d, struct req *r, uint32_t flags);
void fetch_pump(struct fetchd *d);
void fetch_written(struct fetchd *d, struct fetch *f, int err);
void fetch_fail(struct fetchd *d, struct fetch *f, int err);
void fetch_fail_logged(struct fetchd *d, struct fetch *f, int err, const char *why);
void fetch_retry_or_fail(struct fetchd *d, struct fetch *f, int err, const char *why);
void fetch_backoff_due(struct fetchd *d);
int64_t fetch_next_due(struct fetchd *d);
void fetch_abort_all(struct fetchd *d);
/* The transfer is over (the body is being written): its slot goes to the next. */
void fetch_release_slot(struct fetchd *d, struct fetch *f);
/*
 * A background fetch of the first stretch of [off, off + len) of b that is
 * neither present nor in flight, at most len bytes: queued behind every
 * miss. NULL when there is nothing to fetch there now (*next_off: where to
 * look next) or no memory.
 */
/*
 * Cover [off, end) of b (granule aligned, end may be b's size) with
 * fetches; fn(owner) is told as each one it waits on ends, and *waits
 * counts them. 0, or -ENOMEM/-EBUSY (those attached so far still tell).
 */
int fetch_cover_for(struct fetchd *d, struct blob *b, uint64_t off, uint64_t end,
		    void (*fn)(struct fetchd *d, void *owner, int err), void *owner,
		    unsigned int *waits);
struct fetch *fetch_background(struct fetchd *d, struct blob *b, uint64_t off, uint64_t len,
			       fetch_done_fn fn, void *owner, uint64_t *next_off);

/*----- registry.c --------------------------------------------------------*/
int reg_init(struct fetchd *d);
void reg_fini(struct fetchd *d);
int reg_start(struct fetchd *d, struct fetch *f);
void reg_check_done(struct fetchd *d);
void reg_abort(struct fetchd *d, struct fetch *f);

/*----- verify.c ----------------------------------------------------------*/
void verify_maybe_start(struct fetchd *d, struct blob *b);
int64_t verify_tick(struct fetchd *d);
void verify_read_done(struct fetchd *d, struct ring_op *op, int res);
void verify_abort(struct blob *b);

/* ring ops and bitmap helpers (cache.c) */
struct ring_op *ring_op_new(struct fetchd *d, enum ring_op_kind kind, struct blob *b);
void ring_op_free(struct fetchd *d, struct ring_op *op);
void ring_queue(struct fetchd *d, struct ring_op *op);
uint64_t bits_set_count(uint64_t *w, uint64_t first, uint64_t n);
void bits_clear(uint64_t *w, uint64_t first, uint64_t n);
bool bits_all(const uint64_t *w, uint64_t first, uint64_t n);
uint64_t granule_of(uint64_t off);
uint64_t granules_in(const struct blob *b, uint64_t off, uint64_t len);

#endif
