// SPDX-License-Identifier: GPL-2.0-only
/*
 * The miss channel (include/obd_uapi.h): /dev/overlaybd, or for host tests
 * a SOCK_SEQPACKET Unix socket with the same framing (one message per
 * read, one DONE per write). Every message is validated in full before any
 * field is used; every READ gets exactly one DONE.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "fetchd.h"

#define CHAN_BATCH	256	/* messages per drain: other events get a turn */

/*----- request table -------------------------------------------------------*/
static struct list *req_bucket(struct fetchd *d, uint64_t id)
{
	size_t n = sizeof(d->req_hash) / sizeof(d->req_hash[0]);

	return &d->req_hash[(id * 0x9e3779b97f4a7c15ull) >> 54 & (n - 1)];
}

static struct req *req_find(struct fetchd *d, uint64_t id)
{
	struct list *head = req_bucket(d, id), *p, *t;

	list_for_each_safe(p, t, head) {
		struct req *r = container_of(p, struct req, hnode);

		if (r->id == id)
			return r;
	}
	return NULL;
}

static void req_free(struct req *r)
{
	/* the rule of the channel: nobody frees a request that was not answered */
	assert(r->replied);
	free(r);
}

/*----- open / close ----------------------------------------------------------*/
static int chan_connect_sock(struct fetchd *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(d->device) >= sizeof(sa.sun_path)) {
		pr_err("%s: socket path too long", d->device);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, d->device);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		pr_err("socket: %s", strerror(errno));
		return -errno;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		pr_err("%s: connect: %s", d->device, strerror(errno));
		close(fd);
		return -errno;
	}
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		close(fd);
		return -errno;
	}
	d->chan_is_sock = true;
	return fd;
}

int chan_open(struct fetchd *d)
{
	struct epoll_event ev;
	struct stat st;
	int fd;

	if (stat(d->device, &st) == 0 && S_ISSOCK(st.st_mode)) {
		fd = chan_connect_sock(d);
		if (fd < 0)
			return fd;
	} else {
		fd = open(d->device, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			int e = errno;

			if (e == EBUSY)
				pr_err("another daemon holds %s", d->device);
			else
				pr_err("%s: open: %s", d->device, strerror(e));
			return -e;
		}
	}
	d->chan_fd = fd;
	d->chan_in_epoll = true;
	ev.events = EPOLLIN;
	ev.data.u64 = ((uint64_t)EP_CHAN << 32) | (uint32_t)fd;
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		pr_err("epoll_ctl channel: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

void chan_close(struct fetchd *d)
{
	struct req *r;

	/* DONEs never written: the kernel re-sends those misses to the next daemon */
	while ((r = d->outq_head)) {
		d->outq_head = r->next_out;
		r->replied = true;
		req_free(r);
	}
	d->outq_tail = NULL;
	if (d->chan_fd >= 0)
		close(d->chan_fd);
	d->chan_fd = -1;
}

/*----- DONE --------------------------------------------------------------------*/
static int done_write(struct fetchd *d, struct req *r);
static void outq_push(struct fetchd *d, struct req *r);

static void done_build(const struct req *r, struct obd_msg_done *m)
{
	memset(m, 0, sizeof(*m));
	m->hdr.magic = cpu_to_le32(OBD_MSG_MAGIC);
	m->hdr.version = cpu_to_le16(OBD_MSG_VERSION);
	m->hdr.opcode = cpu_to_le16(r->invalidate ? OBD_MSG_INVALIDATE : OBD_MSG_DONE);
	m->hdr.size = cpu_to_le32(sizeof(*m));
	m->hdr.id = cpu_to_le64(r->id);	/* INVALIDATE: 0 */
	m->blob_id = cpu_to_le64(r->blob_id);
	if (!r->status) {
		m->offset = cpu_to_le64(r->done_off);
		m->length = cpu_to_le64(r->done_end - r->done_off);
	}
	m->status = cpu_to_le32((uint32_t)r->status);
}

/*
 * HAVE: bytes [off, off + len) of b were filled without a request
 * (background download, prefetch) and are in the page cache. Best effort:
 * the device never says EAGAIN; when a test socket has no room the kernel
 * just misses there later and gets a DONE from the cache at once.
 */
void chan_send_have(struct fetchd *d, struct blob *b, uint64_t off, uint64_t len)
{
	struct obd_msg_done m;
	ssize_t n;

	if (d->chan_fd < 0 || d->chan_eof || !len || b->internal)
		return;
	memset(&m, 0, sizeof(m));
	m.hdr.magic = cpu_to_le32(OBD_MSG_MAGIC);
	m.hdr.version = cpu_to_le16(OBD_MSG_VERSION);
	m.hdr.opcode = cpu_to_le16(OBD_MSG_HAVE);
	m.hdr.size = cpu_to_le32(sizeof(m));
	m.blob_id = cpu_to_le64(b->id);
	m.offset = cpu_to_le64(off);
	m.length = cpu_to_le64(len);
	do
		n = write(d->chan_fd, &m, sizeof(m));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(m))
		d->st.haves++;
	else if (n < 0 && errno != EAGAIN)
		pr_warn("HAVE blob %llu [%llu, +%llu): write: %s", (unsigned long long)b->id,
			(unsigned long long)off, (unsigned long long)len, strerror(errno));
}

/*
 * INVALIDATE: [off, off + len) of b is taken back (its sha256 did not
 * match, an fdatasync of it failed); the daemon's own bits are cleared
 * already. The kernel clears its bits and page caches, so the devices miss
 * there and the range is fetched again. It goes behind the DONEs waiting
 * for room (a DONE written before it may name the range; after it, none
 * may). A READ still waiting for fetches whose answer would name the range
 * reads again when they are in (req_complete): a DONE written after an
 * INVALIDATE only names bytes fetched since.
 */
void chan_take_back(struct fetchd *d, struct blob *b, uint64_t off, uint64_t len)
{
	size_t i, nb = sizeof(d->req_hash) / sizeof(d->req_hash[0]);
	uint64_t end = off + len;
	struct list *p, *t;
	struct req *m;

	pr_warn("blob %llu (%s): [%llu, +%llu) taken back from the kernel (INVALIDATE): fetched again at its next read",
		(unsigned long long)b->id, b->path, (unsigned long long)off, (unsigned long long)len);
	for (i = 0; i < nb; i++)
		list_for_each_safe(p, t, &d->req_hash[i]) {
			struct req *r = container_of(p, struct req, hnode);
			uint64_t lo = r->done_off < r->off ? r->done_off : r->off;
			uint64_t hi = r->done_end > r->off + r->len ? r->done_end : r->off + r->len;

			if (r->blob == b && r->waits && !r->replied && lo < end && off < hi)
				r->retake = true;
		}
	/* a blob the kernel does not know (a gunzip entry's compressed one) */
	if (d->chan_fd < 0 || d->chan_eof || b->internal)
		return;
	m = calloc(1, sizeof(*m));
	if (!m) {
		pr_err("blob %llu: out of memory for an INVALIDATE of [%llu, +%llu)",
		       (unsigned long long)b->id, (unsigned long long)off, (unsigned long long)len);
		return;
	}
	m->invalidate = true;
	m->blob_id = b->id;
	m->done_off = off;
	m->done_end = end;
	d->st.invalidates++;
	if (d->outq_head || done_write(d, m) == -EAGAIN) {
		outq_push(d, m);
		return;
	}
	m->replied = true;
	req_free(m);
}

/* 0 written (or refused: counted as answered), -EAGAIN no room yet. */
static int done_write(struct fetchd *d, struct req *r)
{
	struct obd_msg_done m;
	ssize_t n;

	if (d->chan_fd < 0 || d->chan_eof)
		return 0;
	done_build(r, &m);
	do
		n = write(d->chan_fd, &m, sizeof(m));
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return -EAGAIN;
	if (n < 0 && r->invalidate)
		pr_err("INVALIDATE blob %llu [%llu, +%llu): write: %s; the kernel may serve those bytes",
		       (unsigned long long)r->blob_id, (unsigned long long)r->done_off,
		       (unsigned long long)(r->done_end - r->done_off), strerror(errno));
	else if (n < 0)
		pr_err("DONE id %llu: write: %s", (unsigned long long)r->id, strerror(errno));
	else if (n != sizeof(m))
		pr_err("DONE id %llu: short write %zd", (unsigned long long)r->id, n);
	return 0;
}

static void outq_push(struct fetchd *d, struct req *r)
{
	r->next_out = NULL;
	if (d->outq_tail)
		d->outq_tail->next_out = r;
	else
		d->outq_head = r;
	d->outq_tail = r;
	loop_update_chan_events(d);
}

void chan_flush_out(struct fetchd *d)
{
	struct req *r;

	while ((r = d->outq_head)) {
		if (done_write(d, r) == -EAGAIN)
			break;
		d->outq_head = r->next_out;
		if (!d->outq_head)
			d->outq_tail = NULL;
		r->replied = true;
		req_free(r);
	}
	loop_update_chan_events(d);
}

void req_complete(struct fetchd *d, struct req *r)
{
	assert(!r->replied && !r->waits);
	/*
	 * Bytes it would name were taken back while it waited (an INVALIDATE
	 * went out): its DONE must not claim them. Read again: what is present
	 * now was fetched since, the rest is fetched again.
	 */
	if (r->retake && !r->status && r->blob) {
		r->retake = false;
		pr_info("blob %llu: READ %llu [%llu, +%llu): bytes it waited with were taken back; reading again",
			(unsigned long long)r->blob_id, (unsigned long long)r->id,
			(unsigned long long)r->off, (unsigned long long)r->len);
		if (r->blob->broken)
			r->status = -EIO;
		else
			return fetch_read(d, r, 0);
	}
	list_del(&r->hnode);
	d->nreqs--;
	if (r->status != FETCHD_HAND_BACK && r->t_start_ms)
		metrics_observe_latency(d, now_ms() - r->t_start_ms, r->status);
	if (r->status == FETCHD_HAND_BACK) {
		d->st.handed_back++;
		r->replied = true;	/* the kernel keeps it for the next daemon */
		req_free(r);
		return;
	}
	if (r->status) {
		d->st.dones_err++;
		pr_debug("DONE id %llu blob %llu: status %d", (unsigned long long)r->id,
			 (unsigned long long)r->blob_id, r->status);
	} else {
		d->st.dones_ok++;
		pr_debug("DONE id %llu blob %llu: [%llu, %llu)", (unsigned long long)r->id,
			 (unsigned long long)r->blob_id, (unsigned long long)r->done_off,
			 (unsigned long long)r->done_end);
	}
	/* keep the order: a DONE never overtakes one already waiting */
	if (d->outq_head || done_write(d, r) == -EAGAIN) {
		outq_push(d, r);
		return;
	}
	r->replied = true;
	req_free(r);
}

void chan_fail_all_reqs(struct fetchd *d, int status)
{
	size_t i, n = sizeof(d->req_hash) / sizeof(d->req_hash[0]);
	struct list *p, *t;

	for (i = 0; i < n; i++)
		list_for_each_safe(p, t, &d->req_hash[i]) {
			struct req *r = container_of(p, struct req, hnode);

			/* only a bug leaves one here: fetches are gone */
			pr_err("request %llu left at exit: failing it", (unsigned long long)r->id);
			r->waits = 0;
			r->status = d->chan_is_sock ? status : FETCHD_HAND_BACK;
			req_complete(d, r);
		}
	chan_flush_out(d);
}

/* A READ we cannot serve, answered at once. */
static void reply_now(struct fetchd *d, uint64_t id, uint64_t blob_id, int status)
{
	struct req *r = calloc(1, sizeof(*r));

	if (!r) {
		pr_err("out of memory answering request %llu", (unsigned long long)id);
		return;
	}
	r->id = id;
	r->blob_id = blob_id;
	r->status = status;
	r->t_start_ms = now_ms();	/* observed too: the latency histogram counts every DONE */
	list_add_tail(&r->hnode, req_bucket(d, id));
	d->nreqs++;
	req_complete(d, r);
}

/*----- kernel -> daemon ----------------------------------------------------------*/
static void bad_msg(struct fetchd *d, const char *what, unsigned long long got)
{
	d->st.msgs_bad++;
	pr_err("%s: bad message: %s (%llu); dropped", d->device, what, got);
}

static void on_open(struct fetchd *d, const struct obd_msg_open *m)
{
	uint64_t size = le64_to_cpu(m->blob_size);
	uint32_t plen = le32_to_cpu(m->path_len);

	if (m->hdr.id)
		return bad_msg(d, "OPEN with a request id", le64_to_cpu(m->hdr.id));
	if (!size || size > OBD_CACHE_MAX_BLOB)
		return bad_msg(d, "OPEN blob_size", size);
	if (!plen || plen >= OBD_MSG_PATH_MAX)
		return bad_msg(d, "OPEN path_len", plen);
	if (m->path[plen] || strnlen(m->path, plen) != plen)
		return bad_msg(d, "OPEN path not NUL-terminated at path_len", plen);
	if (m->flags || m->reserved)
		return bad_msg(d, "OPEN flags", le32_to_cpu(m->flags));
	blob_open(d, le64_to_cpu(m->blob_id), size, m->digest, m->path, le64_to_cpu(m->ino),
		  le32_to_cpu(m->dev));
}

static void on_close(struct fetchd *d, const struct obd_msg_close *m)
{
	struct blob *b;

	if (m->hdr.id)
		return bad_msg(d, "CLOSE with a request id", le64_to_cpu(m->hdr.id));
	b = blob_find(d, le64_to_cpu(m->blob_id));
	if (!b)
		return bad_msg(d, "CLOSE of an unknown blob", le64_to_cpu(m->blob_id));
	blob_close(d, b);
}

/* 0, or the -errno to answer the READ with. */
static int read_check(struct fetchd *d, const struct obd_msg_read *m, struct blob *b)
{
	uint64_t off = le64_to_cpu(m->offset), len = le64_to_cpu(m->length);
	uint32_t flags = le32_to_cpu(m->flags);

	if (!b) {
		pr_err("READ %llu: unknown blob %llu", (unsigned long long)le64_to_cpu(m->hdr.id),
		       (unsigned long long)le64_to_cpu(m->blob_id));
		return -EINVAL;
	}
	if ((flags & ~OBD_READ_F_ALL) || m->reserved || !len || off % OBD_GRANULE_SIZE ||
	    off >= b->size || len > b->size - off ||
	    ((off + len) % OBD_GRANULE_SIZE && off + len != b->size)) {
		pr_err("READ %llu blob %llu: bad range [%llu, +%llu) flags 0x%x (blob size %llu)",
		       (unsigned long long)le64_to_cpu(m->hdr.id), (unsigned long long)b->id,
		       (unsigned long long)off, (unsigned long long)len, flags,
		       (unsigned long long)b->size);
		return -EINVAL;
	}
	if (b->broken) {
		pr_err("blob %llu (%s): READ failed: %s", (unsigned long long)b->id, b->path,
		       b->broken_reason);
		return -EIO;
	}
	return 0;
}

static void on_read(struct fetchd *d, const struct obd_msg_read *m)
{
	uint64_t id = le64_to_cpu(m->hdr.id);
	struct blob *b;
	struct req *r;
	int ret;

	if (!id)
		return bad_msg(d, "READ with request id 0", 0);
	if (req_find(d, id))
		return bad_msg(d, "READ with a request id already pending", id);
	d->st.reads++;
	b = blob_find(d, le64_to_cpu(m->blob_id));
	ret = read_check(d, m, b);
	if (ret)
		return reply_now(d, id, le64_to_cpu(m->blob_id), ret);
	r = calloc(1, sizeof(*r));
	if (!r) {
		pr_err("READ %llu: out of memory", (unsigned long long)id);
		return reply_now(d, id, b->id, -ENOMEM);
	}
	r->id = id;
	r->blob_id = b->id;
	r->blob = b;
	r->off = le64_to_cpu(m->offset);
	r->len = le64_to_cpu(m->length);
	r->t_start_ms = now_ms();
	list_add_tail(&r->hnode, req_bucket(d, id));
	d->nreqs++;
	fetch_read(d, r, le32_to_cpu(m->flags));
}

static size_t msg_size(uint16_t opcode)
{
	switch (opcode) {
	case OBD_MSG_OPEN:
		return sizeof(struct obd_msg_open);
	case OBD_MSG_CLOSE:
		return sizeof(struct obd_msg_close);
	case OBD_MSG_READ:
		return sizeof(struct obd_msg_read);
	}
	return 0;
}

static void on_msg(struct fetchd *d, const void *buf, size_t n)
{
	const struct obd_msg_hdr *h = buf;
	uint16_t op;

	d->st.msgs_in++;
	if (n < sizeof(*h))
		return bad_msg(d, "shorter than a header", n);
	if (le32_to_cpu(h->magic) != OBD_MSG_MAGIC)
		return bad_msg(d, "magic", le32_to_cpu(h->magic));
	if (le16_to_cpu(h->version) != OBD_MSG_VERSION)
		return bad_msg(d, "version", le16_to_cpu(h->version));
	op = le16_to_cpu(h->opcode);
	if (!msg_size(op))
		return bad_msg(d, "opcode", op);
	if (le32_to_cpu(h->size) != msg_size(op) || n != msg_size(op))
		return bad_msg(d, "size", n);
	if (h->reserved)
		return bad_msg(d, "header reserved", le32_to_cpu(h->reserved));
	switch (op) {
	case OBD_MSG_OPEN:
		return on_open(d, buf);
	case OBD_MSG_CLOSE:
		return on_close(d, buf);
	case OBD_MSG_READ:
		return on_read(d, buf);
	}
}

void chan_drain(struct fetchd *d)
{
	/* aligned: the message structs are read in place */
	static uint64_t buf[OBD_MSG_MAX / 8];
	unsigned int i;
	ssize_t n;

	for (i = 0; i < CHAN_BATCH; i++) {
		if (d->stopping || d->chan_eof || d->nreqs >= FETCHD_MAX_REQS ||
		    d->nfetches >= FETCHD_MAX_FETCHES)
			break;
		n = read(d->chan_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			if (n < 0)
				pr_err("%s: read: %s", d->device, strerror(errno));
			else
				pr_info("%s: channel closed by the other side", d->device);
			d->chan_eof = true;
			break;
		}
		on_msg(d, buf, (size_t)n);
	}
	loop_update_chan_events(d);
}
