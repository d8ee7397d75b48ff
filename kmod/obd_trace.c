// SPDX-License-Identifier: GPL-2.0-only
/*
 * Trace recording and the prefetch and trace messages of a device
 * (obd_trace.h). The kernel only keeps records and answers messages;
 * obd writes and reads the reference's binary trace file.
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <linux/mutex.h>
#include <linux/device-mapper.h>

#include "obd_trace.h"
#include "obd_remote.h"

void obd_trace_init(struct obd_trace *tr)
{
	memset(tr, 0, sizeof(*tr));
	spin_lock_init(&tr->lock);
	mutex_init(&tr->msg_lock);
}

static void obd_trace_clear(struct obd_trace *tr)
{
	struct obd_trace_rec *recs;

	spin_lock_irq(&tr->lock);
	WRITE_ONCE(tr->on, false);
	recs = tr->recs;
	tr->recs = NULL;
	tr->n = 0;
	tr->dropped = 0;
	spin_unlock_irq(&tr->lock);
	vfree(recs);
	kfree(tr->path);
	tr->path = NULL;
}

void obd_trace_free(struct obd_trace *tr)
{
	obd_trace_clear(tr);
	mutex_destroy(&tr->msg_lock);
}

void obd_trace_read(struct obd_trace *tr, u32 layer, u64 off, u64 count)
{
	struct obd_trace_rec *last;
	unsigned long flags;

	if (!READ_ONCE(tr->on) || !count)
		return;
	spin_lock_irqsave(&tr->lock, flags);
	if (!tr->on || !tr->recs)
		goto out;
	last = tr->n ? &tr->recs[tr->n - 1] : NULL;
	if (last && last->layer == layer && last->off + last->count == off &&
	    last->count + count <= OBD_TRACE_MERGE_MAX) {
		last->count += count;
		goto out;
	}
	if (tr->n >= OBD_TRACE_MAX_RECORDS) {
		tr->dropped++;
		goto out;
	}
	tr->recs[tr->n++] = (struct obd_trace_rec){ .layer = layer, .off = off, .count = count };
out:
	spin_unlock_irqrestore(&tr->lock, flags);
}

/* An absolute path without white space or control characters. */
static bool obd_trace_path_ok(const char *p)
{
	size_t n = strlen(p), i;

	if (p[0] != '/' || n >= OBD_TRACE_PATH_MAX)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f)
			return false;
	return true;
}

static int obd_trace_start(struct obd_trace *tr, const char *path, const char **why)
{
	struct obd_trace_rec *recs;
	char *p;

	if (!obd_trace_path_ok(path)) {
		*why = "trace start: expected an absolute path without white space";
		return -EINVAL;
	}
	if (tr->on) {
		*why = "trace start: already recording";
		return -EBUSY;
	}
	recs = vmalloc(array_size(OBD_TRACE_MAX_RECORDS, sizeof(*recs)));
	p = kstrdup(path, GFP_KERNEL);
	if (!recs || !p) {
		vfree(recs);
		kfree(p);
		*why = "trace start: out of memory";
		return -ENOMEM;
	}
	obd_trace_clear(tr);
	tr->path = p;
	spin_lock_irq(&tr->lock);
	tr->recs = recs;
	WRITE_ONCE(tr->on, true);
	spin_unlock_irq(&tr->lock);
	return 0;
}

/*
 * trace dump START MAX: a header line, then the records START.. that fit
 * (whole lines only; the header says how many).
 */
static int obd_trace_dump(struct obd_trace *tr, const char *a_start, const char *a_max,
			  char *result, unsigned int maxlen, const char **why)
{
	unsigned int start, max, k = 0, sz = 0, rsz = 0, room, hdr = 160 + OBD_TRACE_PATH_MAX;
	char line[64], *recs = result + hdr;
	u64 dropped;
	u32 n;

	if (kstrtouint(a_start, 10, &start) || kstrtouint(a_max, 10, &max)) {
		*why = "trace dump: expected START MAX";
		return -EINVAL;
	}
	/* the header takes at most the path plus 160 bytes, the records the rest */
	room = maxlen > hdr ? maxlen - hdr : 0;
	/*
	 * One pass under the lock: the lines written are the lines counted (a
	 * record can still merge and grow after it is formatted, not between
	 * counting and writing). They go after the room kept for the header
	 * and move down behind it once the header is written.
	 */
	spin_lock_irq(&tr->lock);
	n = tr->n;
	dropped = tr->dropped;
	if (start > n)
		start = n;
	while (room && k < max && start + k < n) {
		const struct obd_trace_rec *r = &tr->recs[start + k];
		int len = scnprintf(line, sizeof(line), "%u %llu %llu\n", r->layer, r->off,
				    r->count);

		if (rsz + len >= room)
			break;
		memcpy(recs + rsz, line, len);
		rsz += len;
		k++;
	}
	spin_unlock_irq(&tr->lock);
	DMEMIT("trace recording=%d total=%u dropped=%llu path=%s start=%u count=%u\n",
	       READ_ONCE(tr->on), n, dropped, tr->path ?: "-", start, k);
	if (rsz) {
		memmove(result + sz, recs, rsz);
		result[sz + rsz] = 0;
	}
	return 1;
}

static int obd_trace_cmd(struct obd_trace *tr, unsigned int argc, char **argv, char *result,
			 unsigned int maxlen, const char **why)
{
	if (argc == 3 && !strcmp(argv[1], "start"))
		return obd_trace_start(tr, argv[2], why);
	if (argc == 2 && !strcmp(argv[1], "stop")) {
		if (!tr->on) {
			*why = "trace stop: not recording";
			return -EINVAL;
		}
		WRITE_ONCE(tr->on, false);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "clear")) {
		obd_trace_clear(tr);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "dump"))
		return obd_trace_dump(tr, argv[2], argv[3], result, maxlen, why);
	*why = "trace: expected start PATH, stop, dump START MAX or clear";
	return -EINVAL;
}

struct obd_prefetch_arg {
	u32 layer;
	u64 off, count;
};

static int obd_prefetch_cmd(unsigned int argc, char **argv, unsigned int nlayers,
			    obd_prefetch_fn fn, void *ctx, const char **why)
{
	struct obd_prefetch_arg *a;
	unsigned int i, n;
	int r = 0;

	if (argc < 4 || (argc - 1) % 3 || (argc - 1) / 3 > OBD_PREFETCH_MAX_TRIPLES) {
		*why = "prefetch: expected 1 to 64 triples LAYER OFFSET COUNT";
		return -EINVAL;
	}
	n = (argc - 1) / 3;
	a = kmalloc_array(n, sizeof(*a), GFP_KERNEL);
	if (!a) {
		*why = "prefetch: out of memory";
		return -ENOMEM;
	}
	/* all checked before any is queued: a bad message changes nothing */
	for (i = 0; i < n; i++) {
		char **t = argv + 1 + 3 * i;

		if (kstrtou32(t[0], 10, &a[i].layer) || a[i].layer >= nlayers ||
		    kstrtou64(t[1], 10, &a[i].off) || kstrtou64(t[2], 10, &a[i].count) ||
		    !a[i].count || a[i].off + a[i].count < a[i].off) {
			*why = "prefetch: bad triple (layer below the layer count, count > 0)";
			r = -EINVAL;
			goto out;
		}
	}
	for (i = 0; i < n && !r; i++)
		r = fn(ctx, a[i].layer, a[i].off, a[i].count);
	if (r)
		*why = r == -EBUSY ? "prefetch: too many in flight, try again" : "prefetch: failed";
out:
	kfree(a);
	return r;
}

int obd_trace_message(struct obd_trace *tr, unsigned int argc, char **argv, char *result,
		      unsigned int maxlen, unsigned int nlayers, obd_prefetch_fn fn, void *ctx,
		      const char **why)
{
	unsigned int sz = 0;
	u64 q, run, d, f;
	int r;

	*why = "unknown message (expected trace ..., prefetch ..., prefetch_status)";
	if (!argc)
		return -EINVAL;
	if (!strcmp(argv[0], "prefetch_status") && argc == 1) {
		obd_prefetch_counts(&q, &run, &d, &f);
		DMEMIT("prefetch queued=%llu running=%llu done=%llu failed=%llu\n", q, run, d, f);
		return 1;
	}
	if (!strcmp(argv[0], "prefetch"))
		return obd_prefetch_cmd(argc, argv, nlayers, fn, ctx, why);
	if (strcmp(argv[0], "trace"))
		return -EINVAL;
	mutex_lock(&tr->msg_lock);
	r = obd_trace_cmd(tr, argc, argv, result, maxlen, why);
	mutex_unlock(&tr->msg_lock);
	return r;
}
