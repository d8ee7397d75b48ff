/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Inside the daemon's HTTP half: registry.c (transfers, data GETs, auth),
 * credq.c (credentials, credential servers asked on the multi handle,
 * answers cached) and p2p.c (the P2P peer: URLs, health, actual URLs).
 * Not for the rest of the daemon: fetchd.h has reg_*().
 */
#ifndef OBD_FETCHD_REGISTRY_H
#define OBD_FETCHD_REGISTRY_H

#include "fetchd.h"
#include "cred.h"

/*----- registry.c -------------------------------------------------------*/
/* A transfer with only the loop's plumbing (private pointer, error buffer,
 * header parsing, write data): the caller sets URL-specific options. */
struct xfer *xfer_alloc(struct fetchd *d, enum xfer_kind kind, const char *url);
int xfer_go(struct fetchd *d, struct xfer *x);	/* frees x on failure */
void xfer_free(struct fetchd *d, struct xfer *x);
/* CURLOPT_WRITEFUNCTION for small bodies into x->body (x->body_cap bytes) */
size_t xfer_small_write_cb(char *p, size_t size, size_t nmemb, void *userp);

/*
 * credq_request's answer for blob b: err 0 with cred (maybe anonymous),
 * -EAGAIN (try again later) or -EACCES, why naming the source. Called
 * once per request, maybe before credq_request returns.
 */
void reg_cred_ready(struct fetchd *d, struct blob *b, const struct reg_cred *cred, int err,
		    const char *why);

/*----- credq.c ------------------------------------------------------------*/
/* Credentials for b->url; the answer comes through reg_cred_ready. */
void credq_request(struct fetchd *d, struct blob *b);
/* The registry refused what we got for url: the next request asks again. */
void credq_forget(struct fetchd *d, const char *url);
void credq_done(struct fetchd *d, struct xfer *x, CURLcode rc);	/* X_CRED finished */
void credq_xfer_gone(struct xfer *x);		/* X_CRED freed unfinished */
void credq_fini(struct fetchd *d);

/*----- p2p.c ---------------------------------------------------------------*/
/* p2pConfig.enable, and the peer not backed off (nothing taken). */
bool p2p_usable(struct fetchd *d);
/* Take the peer for one data GET; *trial: the one probe allowed while it is
 * backed off (its result decides). false: use the registry. */
bool p2p_take(struct fetchd *d, bool *trial);
/* A data GET through the peer ended: ok, or failed (why); counts: the
 * failure is the peer's (not an auth refusal passed on). */
void p2p_result(struct fetchd *d, bool trial, bool ok, bool counts, const char *why);
void p2p_trial_gone(void);			/* the trial's transfer was freed unfinished */
/* "<address>/<actual>" into out. 0 or -ENAMETOOLONG. */
int p2p_url(struct fetchd *d, const char *actual, char *out, size_t outlen);
/* Timeouts of a peer GET with left ms to the fetch's deadline. */
void p2p_timeouts(struct fetchd *d, int64_t left, long *total_ms, long *connect_ms);

/* The actual URL of a blob URL (spec 6.3: after auth and redirects), cached
 * P2P_ACTUAL_TTL_S; cross: it is another host (no Authorization). */
bool p2p_actual_get(const char *url, char *actual, size_t len, bool *cross);
void p2p_actual_set(const char *url, const char *actual, bool cross);
void p2p_actual_drop(const char *url);
void p2p_fini(void);

#endif
