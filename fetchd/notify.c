// SPDX-License-Identifier: GPL-2.0-only
/*
 * systemd's notification protocol (sd_notify(3)), without libsystemd: one
 * datagram to $NOTIFY_SOCKET per state change. READY=1 once the channel is
 * open; WATCHDOG=1 from the loop every half $WATCHDOG_USEC, so a loop that
 * blocks stops the pings and systemd restarts the daemon (the kernel
 * re-queues what was in flight). Without NOTIFY_SOCKET nothing is sent.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "fetchd.h"

static struct sockaddr_un notify_addr;
static socklen_t notify_len;
static int notify_fd = -1;
static int64_t watchdog_ms;	/* ping interval, 0: no watchdog */
static int64_t watchdog_due;

void notify_init(void)
{
	const char *s = getenv("NOTIFY_SOCKET"), *w = getenv("WATCHDOG_USEC"),
		   *wp = getenv("WATCHDOG_PID");
	size_t n;

	if (!s || (s[0] != '/' && s[0] != '@'))
		return;
	n = strlen(s);
	if (n >= sizeof(notify_addr.sun_path))
		return;
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, s, n);
	if (s[0] == '@')
		notify_addr.sun_path[0] = 0;	/* abstract namespace */
	notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_fd < 0) {
		pr_warn("NOTIFY_SOCKET: socket: %s", strerror(errno));
		return;
	}
	if (w && (!wp || strtol(wp, NULL, 10) == (long)getpid())) {
		long long us = strtoll(w, NULL, 10);

		if (us > 0)
			watchdog_ms = us / 2000 > 0 ? us / 2000 : 1;
	}
	/* the children of this process (none today) must not ping for it */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

void notify_send(const char *msg)
{
	if (notify_fd < 0)
		return;
	if (sendto(notify_fd, msg, strlen(msg), MSG_NOSIGNAL,
		   (const struct sockaddr *)&notify_addr, notify_len) < 0)
		pr_warn("NOTIFY_SOCKET: sending %.16s: %s", msg, strerror(errno));
}

/* The loop's turn: a ping when due; when the next one is. */
int64_t notify_tick(void)
{
	int64_t now;

	if (notify_fd < 0 || !watchdog_ms)
		return 0;
	now = now_ms();
	if (now >= watchdog_due) {
		notify_send("WATCHDOG=1");
		watchdog_due = now + watchdog_ms;
	}
	return watchdog_due;
}

void notify_fini(void)
{
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = -1;
}
