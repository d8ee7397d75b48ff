/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Remote layers: blobs whose bytes are filled on demand into a local cache
 * file by overlaybd-fetchd, over the miss channel /dev/overlaybd
 * (include/obd_uapi.h).
 *
 *   obd_blob.c   the blobs: one per cache file, shared by every device that
 *                stacks it (like obd_shared.c's parsed layers), with the
 *                presence bitmap loaded from the entry's .meta file
 *   obd_miss.c   miss requests, the waiting readers, the char device and
 *                the daemon's connection (hold timeout, failover)
 *
 * A table names a remote layer as
 *   remote:<blob size>:sha256:<64 hex>:<absolute cache file path>
 */
#ifndef OBD_REMOTE_H
#define OBD_REMOTE_H

#include <linux/types.h>
#include <linux/fs.h>
#include <linux/list.h>
#include <linux/wait.h>
#include <linux/atomic.h>
#include <linux/xarray.h>

#include "obd.h"
#include "obd_uapi.h"

#define OBD_REMOTE_PREFIX	"remote:"

struct obd_remote_spec {
	u64 size;
	u8 digest[OBD_SHA256_LEN];
	const char *path;		/* points into the table argument */
};

/*
 * A remote blob. Presence is one bit per OBD_GRANULE_SIZE bytes: set once
 * the bytes are in the cache file (its page cache at least), never cleared
 * except to fetch a range again. Bits are changed under obd_remote_mutex;
 * the read path tests them without it (obd_blob_present), which is safe
 * because a set bit only ever means "the bytes are there".
 */
struct obd_blob {
	struct list_head list;		/* obd_blobs, under obd_remote_mutex */
	unsigned int refs;		/* shared layers + requests; obd_remote_mutex */
	u64 id;				/* names the blob on the channel */
	dev_t sdev;			/* the cache file's inode, as OPEN names it; */
					/* the key is file_inode(file) itself */
	unsigned long ino;
	u64 size;
	u8 digest[OBD_SHA256_LEN];
	char *path;			/* cache file, as first given */
	struct file *file;		/* the cache file, read-only */
	unsigned long *present;		/* ngranules bits */
	u64 ngranules;
	wait_queue_head_t wq;		/* readers waiting for this blob's requests */
	struct list_head reqs;		/* requests not yet done; obd_remote_mutex */
	/*
	 * The request covering a granule, without a walk (obd_miss.c): live
	 * requests never overlap and span at most OBD_REQ_MAX_GRANULES, so the
	 * covering one is the last start at or before the granule, found in a
	 * bounded scan of req_start, then req_by_g0. Both obd_remote_mutex.
	 */
	unsigned long *req_start;	/* ngranules bits: a live request starts here */
	struct xarray req_by_g0;	/* first granule -> live request */
	u32 open_gen;			/* connection that was sent OPEN; obd_remote_mutex */
	atomic64_t fetched;		/* bytes made present by the daemon */
};

/* Guards the blob list, blob refs, requests and the connection state. */
extern struct mutex obd_remote_mutex;

/* A device's suspend state, as its parked readers see it (obd_remote_mutex). */
enum obd_susp {
	OBD_SUSP_NONE,
	OBD_SUSP_REQUEUE,	/* noflush suspend: parked bios go back to dm (-EAGAIN) */
	OBD_SUSP_FLUSH,		/* suspend: parked bios fail (-EIO) from fail_at on */
	OBD_SUSP_DEAD,		/* dtr: parked bios fail at once */
};

/* How a reader waits: its device's hold timeout and pending counter. */
struct obd_fetch_opts {
	unsigned long hold;		/* jiffies without a daemon before EIO */
	atomic_t *pending;		/* readers of the device waiting now */
	bool killable;			/* ctr: a fatal signal ends the wait, -EINTR */
	enum obd_susp suspend;		/* obd_remote_mutex */
	unsigned long fail_at;		/* OBD_SUSP_FLUSH: jiffies; obd_remote_mutex */
};

struct obd_req;

/*
 * A reader parked on a miss (a bio, as dm-clone's deferred bios): it sits
 * on the list of the request covering its first absent granule, and no
 * thread waits for it. When the request is answered, fails or times out,
 * or the device suspends, it leaves the list and wake() runs (under
 * obd_remote_mutex: it must not sleep) with 0 (go on: the range may be
 * present), -EIO, or -EAGAIN (the device is suspending with noflush:
 * give the bio back to dm).
 */
struct obd_waiter {
	struct list_head node;		/* the request's waiters; obd_remote_mutex */
	struct obd_req *req;		/* parked on; obd_remote_mutex */
	unsigned long start;		/* jiffies: parked (request_timeout, hold) */
	int status;			/* obd_miss.c's, while leaving */
	bool stale;			/* a REFETCH parked on a request sent without it */
	const struct obd_fetch_opts *opts;	/* the device's */
	void (*wake)(struct obd_waiter *w, int status);
};

/* obd_blob.c */
static inline bool obd_is_remote(const char *arg)
{
	return !strncmp(arg, OBD_REMOTE_PREFIX, sizeof(OBD_REMOTE_PREFIX) - 1);
}
int obd_remote_parse(const char *arg, struct obd_remote_spec *rs, char **error);
struct obd_blob *obd_blob_get(const struct obd_remote_spec *rs, char **error,
			      struct obd_err *err);
void obd_blob_put(struct obd_blob *b);
void __obd_blob_put(struct obd_blob *b);	/* caller holds obd_remote_mutex */
bool obd_blob_present(struct obd_blob *b, u64 off, u64 len);
u64 obd_blob_present_prefix(struct obd_blob *b, u64 off, u64 len);
void obd_blob_exit(void);
struct obd_blob *__obd_blob_unopened(u32 gen);	/* caller holds obd_remote_mutex */
struct obd_blob *__obd_blob_by_id(u64 id);	/* caller holds obd_remote_mutex */

/* obd_miss.c */
int obd_blob_fetch(struct obd_blob *b, u64 off, u64 len, const struct obd_fetch_opts *o);
int obd_blob_refetch(struct obd_blob *b, u64 off, u64 len, const struct obd_fetch_opts *o);
int obd_blob_prefetch(struct obd_blob *b, u64 off, u64 len);
int obd_blob_park(struct obd_blob *b, u64 off, u64 len, u32 flags, struct obd_waiter *w);
void obd_fetch_suspend(struct obd_fetch_opts *o, bool noflush);
void obd_fetch_resume(struct obd_fetch_opts *o);
void obd_fetch_stop(struct obd_fetch_opts *o);
void obd_prefetch_counts(u64 *queued, u64 *running, u64 *done, u64 *failed);
void __obd_miss_blob_gone(struct obd_blob *b);	/* caller holds obd_remote_mutex */
void __obd_miss_blob_new(struct obd_blob *b);	/* caller holds obd_remote_mutex */
bool obd_daemon_connected(void);
unsigned long obd_hold_default(void);		/* jiffies, module parameter */
int obd_miss_init(void);
void obd_miss_exit(void);

#endif /* OBD_REMOTE_H */
