// SPDX-License-Identifier: GPL-2.0-only
/*
 * Description: the daemon's event loop (fetchd/loop.c), linked with the
 * daemon's objects: the watch slots the exporter's sockets use. An event
 * of one epoll_wait batch whose watch was deleted earlier in the same
 * batch, and whose slot was then taken by another fd (a connection closed,
 * another accepted), must reach nobody: before the slots had generations,
 * it reached the new fd's handler (review of fetchd/, section 2). The
 * batches come from a real epoll_wait; only their order is fixed here, as
 * the kernel may return them in either.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "tap.h"
#include "fetchd.h"

struct conn {
	const char *name;
	int rfd, wfd;
	int slot;
	int calls;		/* handler invocations */
	int seen_fd;		/* the fd the last one was given */
};

static struct fetchd *d;
static struct conn ca = { .name = "A" }, cb = { .name = "B" }, cx = { .name = "X" };

static void on_conn(struct fetchd *dd, void *ctx, int fd, uint32_t events)
{
	struct conn *c = ctx;

	(void)dd;
	(void)events;
	c->calls++;
	c->seen_fd = fd;
}

/* X's handler: closes A and "accepts" B, which gets A's slot (the lowest free). */
static void on_x_closes_a(struct fetchd *dd, void *ctx, int fd, uint32_t events)
{
	on_conn(dd, ctx, fd, events);
	loop_watch_del(dd, ca.slot);
	close(ca.rfd);
	ca.rfd = -1;
	cb.slot = loop_watch_add(dd, cb.rfd, EPOLLIN, on_conn, &cb);
}

static int conn_open(struct conn *c)
{
	int p[2];

	if (pipe(p))
		return -errno;
	c->rfd = p[0];
	c->wfd = p[1];
	c->calls = 0;
	c->seen_fd = -1;
	return write(c->wfd, "x", 1) == 1 ? 0 : -EIO;
}

static void conn_close(struct conn *c)
{
	if (c->rfd >= 0)
		close(c->rfd);
	close(c->wfd);
}

/* One batch of the real epoll set, X's event first. */
static int batch_x_first(struct epoll_event *evs, int max)
{
	int n = epoll_wait(d->epfd, evs, max, 1000), i;

	for (i = 1; i < n; i++)
		if ((evs[i].data.u64 & 0xffff) == (uint64_t)cx.slot) {
			struct epoll_event t = evs[0];

			evs[0] = evs[i];
			evs[i] = t;
		}
	return n;
}

static void test_stale_slot(void)
{
	struct epoll_event evs[8];
	int n;

	tap_ok(!conn_open(&ca) && !conn_open(&cb) && !conn_open(&cx), "three readable pipes");
	ca.slot = loop_watch_add(d, ca.rfd, EPOLLIN, on_conn, &ca);
	cx.slot = loop_watch_add(d, cx.rfd, EPOLLIN, on_x_closes_a, &cx);
	tap_ok(ca.slot >= 0 && cx.slot >= 0 && ca.slot != cx.slot, "A and X watched (slots %d, %d)",
	       ca.slot, cx.slot);
	n = batch_x_first(evs, 8);
	tap_ok(n == 2, "one batch holds the events of X and A (%d)", n);
	loop_dispatch(d, evs, n);
	tap_ok(cx.calls == 1, "X's handler ran");
	tap_ok(cb.slot == ca.slot, "B took A's slot %d within the batch", cb.slot);
	tap_ok(ca.calls == 0, "A's handler did not run (its watch was deleted)");
	tap_ok(cb.calls == 0, "A's stale event did not reach B in A's old slot (B got %d calls, fd %d)",
	       cb.calls, cb.seen_fd);

	/* the next batch: B's own event reaches B, with B's fd */
	loop_watch_del(d, cx.slot);
	n = epoll_wait(d->epfd, evs, 8, 1000);
	loop_dispatch(d, evs, n);
	tap_ok(n == 1 && cb.calls == 1 && cb.seen_fd == cb.rfd, "B's own event reaches B (fd %d)",
	       cb.seen_fd);
	loop_watch_del(d, cb.slot);
	conn_close(&ca);
	conn_close(&cb);
	conn_close(&cx);
}

/* A slot freed and taken again many times: the generation wraps, every
 * event still lands on the fd that is in the slot. */
static void test_slot_reuse(void)
{
	struct epoll_event ev;
	struct conn c = { .name = "C" };
	int i, bad = 0, slot0 = -1;

	for (i = 0; i < 70000; i++) {
		if (conn_open(&c))
			break;
		c.slot = loop_watch_add(d, c.rfd, EPOLLIN, on_conn, &c);
		if (slot0 < 0)
			slot0 = c.slot;
		if (c.slot != slot0 || epoll_wait(d->epfd, &ev, 1, 1000) != 1) {
			bad++;
			break;
		}
		loop_dispatch(d, &ev, 1);
		if (c.calls != 1 || c.seen_fd != c.rfd)
			bad++;
		loop_watch_del(d, c.slot);
		conn_close(&c);
	}
	tap_ok(i == 70000 && !bad, "70000 fds through one slot (past the 16-bit generation's wrap): each event to its own fd (%d, %d bad)",
	       i, bad);
}

static void test_slots_full(void)
{
	int p[2], i, rc = 0, nslots = 0;
	int fds[FETCHD_MAX_WATCHES + 1];

	if (pipe(p)) {
		tap_ok(0, "pipe");
		return;
	}
	for (i = 0; i <= FETCHD_MAX_WATCHES; i++) {
		fds[i] = dup(p[0]);
		rc = loop_watch_add(d, fds[i], EPOLLIN, on_conn, &ca);
		if (rc < 0)
			break;
		nslots++;
	}
	tap_ok(nslots == FETCHD_MAX_WATCHES && rc == -EMFILE,
	       "all %d slots taken, then -EMFILE (%d after %d)", FETCHD_MAX_WATCHES, rc, nslots);
	tap_ok(loop_watch_mod(d, FETCHD_MAX_WATCHES, EPOLLIN) == -EINVAL &&
	       loop_watch_mod(d, -1, EPOLLIN) == -EINVAL, "loop_watch_mod of a slot out of range: -EINVAL");
	for (i = 0; i < nslots; i++)
		loop_watch_del(d, i);
	for (i = 0; i <= nslots && i <= FETCHD_MAX_WATCHES; i++)
		close(fds[i]);
	tap_ok(loop_watch_mod(d, 0, EPOLLIN) == -EINVAL, "a deleted slot: -EINVAL");
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	int i;

	d = calloc(1, sizeof(*d));
	if (!d)
		return 1;
	for (i = 0; i < FETCHD_MAX_WATCHES; i++)
		d->watches[i].fd = -1;
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	tap_ok(d->epfd >= 0, "epoll set");
	test_stale_slot();
	test_slot_reuse();
	test_slots_full();
	close(d->epfd);
	free(d);
	return tap_done();
}
