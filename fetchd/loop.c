// SPDX-License-Identifier: GPL-2.0-only
/*
 * The one event loop. epoll is the only place the daemon waits; it watches
 *   the channel fd        misses (EPOLLIN), room for DONEs (EPOLLOUT)
 *   curl's sockets        CURLMOPT_SOCKETFUNCTION edits the set
 *   curl_tfd              CURLMOPT_TIMERFUNCTION arms it
 *   ring_efd              io_uring_register_eventfd: CQEs are ready
 *   sig_fd                SIGTERM, SIGINT, SIGHUP (blocked, read as data)
 *   tick_tfd              one-shot: the next backoff retry, durability
 *                         batch, download/eviction/exporter step or
 *                         shutdown deadline, re-armed every turn
 *   watches               other parts' fds (the exporter's sockets)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include "fetchd.h"

#define EP_DATA(tag, fd)	(((uint64_t)(tag) << 32) | (uint32_t)(fd))
/*
 * A watch's events carry its slot and the slot's generation: a slot freed
 * and taken again within one epoll batch (a connection closed, another
 * accepted) must not get the events of the fd it held before.
 */
#define EP_WATCH_DATA(slot, gen)	EP_DATA(EP_WATCH, ((uint32_t)(gen) << 16) | (uint32_t)(slot))

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ep_add(struct fetchd *d, int fd, enum ep_tag tag, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = EP_DATA(tag, fd) };

	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		pr_err("epoll_ctl add fd %d: %s", fd, strerror(errno));
		return -errno;
	}
	return 0;
}

/* EPOLLIN while we take misses, EPOLLOUT while DONEs wait for room. */
void loop_update_chan_events(struct fetchd *d)
{
	bool want_in = !d->stopping && !d->chan_eof && d->nreqs < FETCHD_MAX_REQS &&
		       d->nfetches < FETCHD_MAX_FETCHES;
	bool want_out = d->outq_head != NULL && !d->chan_eof;
	struct epoll_event ev = { .data.u64 = EP_DATA(EP_CHAN, d->chan_fd) };

	if (d->chan_fd >= 0 && d->chan_eof) {
		/* a hung-up socket would report EPOLLHUP for ever */
		if (!d->chan_removed)
			epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->chan_fd, NULL);
		d->chan_removed = true;
		return;
	}
	if (d->chan_fd < 0 || (want_in == d->chan_in_epoll && want_out == d->chan_out_wanted))
		return;
	ev.events = (want_in ? EPOLLIN : 0) | (want_out ? EPOLLOUT : 0);
	if (epoll_ctl(d->epfd, EPOLL_CTL_MOD, d->chan_fd, &ev) < 0)
		pr_err("epoll_ctl channel: %s", strerror(errno));
	d->chan_in_epoll = want_in;
	d->chan_out_wanted = want_out;
}

int loop_watch_add(struct fetchd *d, int fd, uint32_t events, loop_watch_fn fn, void *ctx)
{
	struct epoll_event ev = { .events = events };
	uint16_t gen;
	int i;

	for (i = 0; i < FETCHD_MAX_WATCHES; i++)
		if (d->watches[i].fd < 0)
			break;
	if (i == FETCHD_MAX_WATCHES)
		return -EMFILE;
	gen = (uint16_t)(d->watches[i].gen + 1);
	ev.data.u64 = EP_WATCH_DATA(i, gen);
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	d->watches[i] = (struct loop_watch){ .fd = fd, .gen = gen, .fn = fn, .ctx = ctx };
	return i;
}

int loop_watch_mod(struct fetchd *d, int slot, uint32_t events)
{
	struct epoll_event ev = { .events = events };

	if (slot < 0 || slot >= FETCHD_MAX_WATCHES || d->watches[slot].fd < 0)
		return -EINVAL;
	ev.data.u64 = EP_WATCH_DATA(slot, d->watches[slot].gen);
	return epoll_ctl(d->epfd, EPOLL_CTL_MOD, d->watches[slot].fd, &ev) < 0 ? -errno : 0;
}

void loop_watch_del(struct fetchd *d, int slot)
{
	if (slot < 0 || slot >= FETCHD_MAX_WATCHES || d->watches[slot].fd < 0)
		return;
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->watches[slot].fd, NULL);
	d->watches[slot].fd = -1;
}

static void on_watch(struct fetchd *d, uint32_t data, uint32_t events)
{
	unsigned int slot = data & 0xffff;
	struct loop_watch *w;

	if (slot >= FETCHD_MAX_WATCHES)
		return;
	w = &d->watches[slot];
	/* deleted, or deleted and taken again, earlier in this batch of events */
	if (w->fd >= 0 && w->gen == (uint16_t)(data >> 16))
		w->fn(d, w->ctx, w->fd, events);
}

static int make_timerfd(struct fetchd *d, enum ep_tag tag)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

	if (fd < 0) {
		pr_err("timerfd_create: %s", strerror(errno));
		return -1;
	}
	if (ep_add(d, fd, tag, EPOLLIN)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int make_signalfd(struct fetchd *d)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	/* nothing to reload (the config is read at start): said, not fatal */
	sigaddset(&set, SIGHUP);
	/* a DONE written to a stand-in that went away must not kill us */
	signal(SIGPIPE, SIG_IGN);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0) {
		pr_err("signalfd: %s", strerror(errno));
		return -1;
	}
	if (ep_add(d, fd, EP_SIGNAL, EPOLLIN)) {
		close(fd);
		return -1;
	}
	return fd;
}

static unsigned int ring_entries(const struct fetchd *d)
{
	unsigned int n = 64;

	while (n < FETCHD_RING_MAX_INFLIGHT)
		n <<= 1;
	return n;
}

static int make_ring(struct fetchd *d)
{
	int ret;

	ret = io_uring_queue_init(ring_entries(d), &d->ring, 0);
	if (ret < 0) {
		pr_err("io_uring_queue_init: %s", strerror(-ret));
		return ret;
	}
	d->ring_ok = true;
	d->ring_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->ring_efd < 0) {
		pr_err("eventfd: %s", strerror(errno));
		return -errno;
	}
	ret = io_uring_register_eventfd(&d->ring, d->ring_efd);
	if (ret < 0) {
		pr_err("io_uring_register_eventfd: %s", strerror(-ret));
		return ret;
	}
	return ep_add(d, d->ring_efd, EP_RING, EPOLLIN);
}

int loop_init(struct fetchd *d)
{
	unsigned int i;

	d->chan_fd = d->curl_tfd = d->tick_tfd = d->sig_fd = d->ring_efd = -1;
	list_init(&d->blobs);
	list_init(&d->fetches);
	list_init(&d->queue);
	list_init(&d->bg_queue);
	list_init(&d->backoff);
	list_init(&d->ring_wait);
	list_init(&d->nospace_wait);
	for (i = 0; i < sizeof(d->req_hash) / sizeof(d->req_hash[0]); i++)
		list_init(&d->req_hash[i]);
	for (i = 0; i < FETCHD_MAX_WATCHES; i++)
		d->watches[i].fd = -1;
	/* the biggest single fetch: refillSize, at least a few MiB */
	d->fetch_chunk = d->cfg.refill_size;
	while (d->fetch_chunk < FETCHD_FETCH_MIN_CHUNK)
		d->fetch_chunk <<= 1;

	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epfd < 0) {
		pr_err("epoll_create1: %s", strerror(errno));
		return -1;
	}
	d->sig_fd = make_signalfd(d);
	d->curl_tfd = make_timerfd(d, EP_CURL_TIMER);
	d->tick_tfd = make_timerfd(d, EP_TICK);
	if (d->sig_fd < 0 || d->curl_tfd < 0 || d->tick_tfd < 0)
		return -1;
	if (make_ring(d))
		return -1;
	if (reg_init(d))
		return -1;
	if (evict_init(d) || download_init(d) || exporter_init(d) || gunzip_init(d))
		return -1;
	return 0;
}

void loop_fini(struct fetchd *d)
{
	gunzip_fini(d);
	exporter_fini(d);
	download_fini(d);
	evict_fini(d);
	blob_free_all(d);
	reg_fini(d);
	if (d->ring_ok)
		io_uring_queue_exit(&d->ring);
	d->ring_ok = false;
	chan_close(d);
	if (d->ring_efd >= 0)
		close(d->ring_efd);
	if (d->tick_tfd >= 0)
		close(d->tick_tfd);
	if (d->curl_tfd >= 0)
		close(d->curl_tfd);
	if (d->sig_fd >= 0)
		close(d->sig_fd);
	if (d->epfd >= 0)
		close(d->epfd);
	d->ring_efd = d->tick_tfd = d->curl_tfd = d->sig_fd = d->epfd = -1;
}

static void arm_tick(struct fetchd *d, int64_t due)
{
	struct itimerspec its = { 0 };
	int64_t now = now_ms();

	if (due > 0) {
		if (due <= now)
			due = now + 1;
		its.it_value.tv_sec = due / 1000;
		its.it_value.tv_nsec = (due % 1000) * 1000000;
	}
	timerfd_settime(d->tick_tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static int64_t earliest(int64_t a, int64_t b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

static void drain_fd(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) > 0)
		;
}

static void on_signal(struct fetchd *d)
{
	struct signalfd_siginfo si;

	while (read(d->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			pr_info("SIGHUP: nothing to reload (the service config is read at start; restart the daemon to apply a change)");
			continue;
		}
		if (!d->stopping)
			pr_info("signal %u: stopping (no new misses; finishing %u requests)",
				si.ssi_signo, d->nreqs);
		d->stopping = true;
	}
}

static void on_curl_sock(struct fetchd *d, int fd, uint32_t events)
{
	int mask = 0;

	if (events & EPOLLIN)
		mask |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		mask |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		mask |= CURL_CSELECT_ERR;
	curl_multi_socket_action(d->multi, fd, mask, &d->curl_running);
	reg_check_done(d);
}

static void on_event(struct fetchd *d, const struct epoll_event *ev)
{
	enum ep_tag tag = (enum ep_tag)(ev->data.u64 >> 32);
	int fd = (int)(uint32_t)ev->data.u64;

	switch (tag) {
	case EP_CHAN:
		if (ev->events & EPOLLOUT)
			chan_flush_out(d);
		if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			chan_drain(d);
		break;
	case EP_CURL_TIMER:
		drain_fd(fd);
		curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &d->curl_running);
		reg_check_done(d);
		break;
	case EP_TICK:
		drain_fd(fd);
		break;
	case EP_SIGNAL:
		on_signal(d);
		break;
	case EP_RING:
		drain_fd(fd);
		cache_reap(d);
		break;
	case EP_CURL_SOCK:
		on_curl_sock(d, fd, ev->events);
		break;
	case EP_WATCH:
		on_watch(d, (uint32_t)ev->data.u64, ev->events);
		break;
	}
}

/*
 * Shutdown: stop taking misses, let what is running finish for a grace
 * period, then hand the rest back to the kernel (or fail them, on the test
 * socket): no request gets two answers.
 * true when nothing is left and the loop may end.
 */
static bool stop_step(struct fetchd *d)
{
	if (!d->stop_deadline_ms) {
		d->stop_deadline_ms = now_ms() + FETCHD_SHUTDOWN_GRACE_MS;
		loop_update_chan_events(d);
	}
	if (now_ms() >= d->stop_deadline_ms || d->chan_eof)
		fetch_abort_all(d);
	if (!list_empty(&d->fetches) || cache_busy(d) || gunzip_busy(d))
		return false;
	/* DONEs the channel never took room for: give up at the deadline */
	if (d->outq_head && !d->chan_eof && now_ms() < d->stop_deadline_ms + 1000)
		return false;
	return true;
}

/* The periodic parts: each does what is due and says when it is next. */
static int64_t services_tick(struct fetchd *d)
{
	int64_t due = evict_tick(d);

	due = earliest(due, cache_retry_tick(d));
	due = earliest(due, download_tick(d));
	due = earliest(due, verify_tick(d));
	return earliest(due, exporter_tick(d));
}

void loop_dispatch(struct fetchd *d, const struct epoll_event *evs, int n)
{
	int i;

	for (i = 0; i < n; i++)
		on_event(d, &evs[i]);
}

int loop_run(struct fetchd *d)
{
	struct epoll_event evs[64];
	int64_t svc_due;
	int n;

	for (;;) {
		if ((d->stopping || d->chan_eof) && stop_step(d))
			break;
		svc_due = d->stopping ? 0 : services_tick(d);
		/* the watchdog: fed only while the loop turns */
		svc_due = earliest(svc_due, notify_tick());
		if (d->stopping)
			cache_nospace_retry(d);	/* no pass will come: written once more, or failed */
		fetch_backoff_due(d);
		fetch_pump(d);
		cache_sync_due(d, false);
		ring_flush_wait(d);
		io_uring_submit(&d->ring);
		loop_update_chan_events(d);
		arm_tick(d, earliest(earliest(earliest(fetch_next_due(d), d->next_sync_ms),
					      d->stop_deadline_ms ? d->stop_deadline_ms : 0),
				     svc_due));
		n = epoll_wait(d->epfd, evs, 64, d->stopping ? 100 : -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			pr_err("epoll_wait: %s", strerror(errno));
			return -1;
		}
		loop_dispatch(d, evs, n);
		/* CQEs may be ready without the eventfd firing yet */
		cache_reap(d);
	}
	chan_fail_all_reqs(d, -EIO);
	cache_final_sync(d);
	return 0;
}
