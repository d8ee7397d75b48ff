// SPDX-License-Identifier: GPL-2.0-only
/*
 * The P2P peer (p2pConfig {enable, address}, spec 6.3 step 4): data GETs
 * go to "<address>/<actual url>", the actual URL being what auth and
 * redirect resolution gave for the blob (the registry's URL, or where it
 * redirects). A failed peer GET falls back to the registry for that fetch
 * (registry.c). After P2P_FAIL_MAX failures in a row the peer is backed
 * off for P2P_BACKOFF_S: no miss waits on a dead peer; then one GET (the
 * trial) probes it, and its result decides. Transitions are logged, not
 * requests: at most one line per backoff period.
 */
#include <stdio.h>
#include <string.h>

#include "registry.h"

#define P2P_FAIL_MAX		3	/* failures in a row that back the peer off */
#define P2P_BACKOFF_S		30
#define P2P_TIMEOUT_MS		10000	/* a peer GET, at most (and half the time left) */
#define P2P_CONNECT_MS		2000
#define P2P_ACTUAL_SLOTS	32
#define P2P_ACTUAL_TTL_S	300	/* the reference: >= 300 s */

static struct {
	unsigned int fails;		/* in a row */
	bool bad;			/* backed off, not yet answering again */
	int64_t retry_ms;		/* bad: the trial may go then */
	bool trial_out;			/* the trial GET is running */
} peer;

struct actual_slot {
	char url[OBD_CACHE_URL_MAX];
	char actual[OBD_CACHE_URL_MAX];
	bool cross;
	int64_t expiry_ms;
};

static struct actual_slot actuals[P2P_ACTUAL_SLOTS];
static unsigned int actual_next;

bool p2p_usable(struct fetchd *d)
{
	if (!d->cfg.p2p_enable || !d->cfg.p2p_address[0])
		return false;
	return !peer.bad || (now_ms() >= peer.retry_ms && !peer.trial_out);
}

bool p2p_take(struct fetchd *d, bool *trial)
{
	*trial = false;
	if (!p2p_usable(d))
		return false;
	if (peer.bad) {
		*trial = true;
		peer.trial_out = true;
	}
	return true;
}

void p2p_trial_gone(void)
{
	peer.trial_out = false;
}

static const char *peer_name(struct fetchd *d, char *buf, size_t len)
{
	return url_redact(d->cfg.p2p_address, buf, len);
}

void p2p_result(struct fetchd *d, bool trial, bool ok, bool counts, const char *why)
{
	char name[1100];

	if (trial)
		peer.trial_out = false;
	if (ok) {
		if (peer.bad)
			pr_info("p2p: peer %s answering again", peer_name(d, name, sizeof(name)));
		peer.fails = 0;
		peer.bad = false;
		return;
	}
	if (!counts)
		return;
	peer.fails++;
	if (peer.fails < P2P_FAIL_MAX && !trial)
		return;
	/* a failed trial backs off again, quietly: the warning was given */
	if (!peer.bad)
		pr_warn("p2p: peer %s failed %u times in a row (last: %s); data GETs go to the "
			"registry for %d s", peer_name(d, name, sizeof(name)), peer.fails, why,
			P2P_BACKOFF_S);
	else
		pr_debug("p2p: peer %s still failing (%s)", peer_name(d, name, sizeof(name)), why);
	peer.bad = true;
	peer.retry_ms = now_ms() + P2P_BACKOFF_S * 1000;
}

int p2p_url(struct fetchd *d, const char *actual, char *out, size_t outlen)
{
	const char *a = d->cfg.p2p_address;
	size_t n = strlen(a);

	while (n && a[n - 1] == '/')	/* "<address>/<url>": one slash */
		n--;
	if (snprintf(out, outlen, "%.*s/%s", (int)n, a, actual) >= (int)outlen)
		return -ENAMETOOLONG;
	return 0;
}

void p2p_timeouts(struct fetchd *d, int64_t left, long *total_ms, long *connect_ms)
{
	int64_t t = left / 2;	/* the other half is the registry's, should the peer fail */
	int64_t c = (int64_t)d->cfg.connect_timeout_s * 1000;

	if (t > P2P_TIMEOUT_MS)
		t = P2P_TIMEOUT_MS;
	*total_ms = (long)(t > 1 ? t : 1);
	*connect_ms = (long)(c && c < P2P_CONNECT_MS ? c : P2P_CONNECT_MS);
}

static struct actual_slot *actual_find(const char *url)
{
	for (unsigned int i = 0; i < P2P_ACTUAL_SLOTS; i++)
		if (actuals[i].expiry_ms > now_ms() && !strcmp(actuals[i].url, url))
			return &actuals[i];
	return NULL;
}

bool p2p_actual_get(const char *url, char *actual, size_t len, bool *cross)
{
	struct actual_slot *s = actual_find(url);

	if (!s || strlen(s->actual) >= len)
		return false;
	memcpy(actual, s->actual, strlen(s->actual) + 1);
	*cross = s->cross;
	return true;
}

void p2p_actual_set(const char *url, const char *actual, bool cross)
{
	struct actual_slot *s = actual_find(url);

	if (strlen(url) >= sizeof(s->url) || strlen(actual) >= sizeof(s->actual))
		return;
	if (!s)
		s = &actuals[actual_next++ % P2P_ACTUAL_SLOTS];
	memcpy(s->url, url, strlen(url) + 1);
	memcpy(s->actual, actual, strlen(actual) + 1);
	s->cross = cross;
	s->expiry_ms = now_ms() + P2P_ACTUAL_TTL_S * 1000;
}

void p2p_actual_drop(const char *url)
{
	struct actual_slot *s = actual_find(url);

	if (s)
		memset(s, 0, sizeof(*s));
}

void p2p_fini(void)
{
	/* a redirect URL may be presigned: a secret of sorts */
	explicit_bzero(actuals, sizeof(actuals));
	memset(&peer, 0, sizeof(peer));
}
