/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Trace recording and prefetch requests of one device, driven by dm
 * messages (docs/dm-overlaybd.rst, "Trace and prefetch"):
 *
 *   trace start PATH        record the reads of the device's layers
 *   trace stop              stop; the records stay
 *   trace dump START MAX    the records (text; obd writes the reference's
 *                           binary trace from them, spec 6.7)
 *   trace clear             free them
 *   prefetch L O C ...      fetch what is absent of layer L's bytes
 *                           [O, O + C), behind every miss (at most
 *                           OBD_PREFETCH_MAX_TRIPLES per message)
 *   prefetch_status         the module's prefetch counters
 *
 * A record is what the reference's recorder logs: a read of a lower
 * layer's LSMT stream (after tar and ZFile), as layer index (0 = bottom)
 * and a byte range. Adjacent reads of one layer merge up to
 * OBD_TRACE_MERGE_MAX bytes; at most OBD_TRACE_MAX_RECORDS are kept, the
 * rest counted as dropped.
 */
#ifndef OBD_TRACE_H
#define OBD_TRACE_H

#include <linux/types.h>
#include <linux/spinlock.h>

#define OBD_TRACE_MAX_RECORDS	(1u << 18)
#define OBD_TRACE_MERGE_MAX	(1u << 20)
#define OBD_TRACE_PATH_MAX	1024
#define OBD_PREFETCH_MAX_TRIPLES 64

struct obd_trace_rec {
	u32 layer;
	u64 off;
	u64 count;
};

struct obd_trace {
	spinlock_t lock;		/* recs, n, dropped */
	bool on;			/* read locklessly by the read path */
	struct obd_trace_rec *recs;	/* vmalloc'd, OBD_TRACE_MAX_RECORDS */
	u32 n;
	u64 dropped;
	char *path;			/* the trace file obd writes, given back in dumps */
	struct mutex msg_lock;		/* serializes the messages */
};

void obd_trace_init(struct obd_trace *tr);
void obd_trace_free(struct obd_trace *tr);

/* The read path: a piece of layer `layer` was read. May run in atomic context. */
void obd_trace_read(struct obd_trace *tr, u32 layer, u64 off, u64 count);

/*
 * Prefetch of [off, off + count) of layer `layer` (validated below the
 * device's layer count); 0, -EBUSY (too many prefetches in flight: try
 * again), or another -errno.
 */
typedef int (*obd_prefetch_fn)(void *ctx, u32 layer, u64 off, u64 count);

/*
 * A dm message for this device. 1 when result holds an answer, 0 for none,
 * -errno (*why: a static reason for the log). nlayers bounds layer indexes.
 */
int obd_trace_message(struct obd_trace *tr, unsigned int argc, char **argv, char *result,
		      unsigned int maxlen, unsigned int nlayers, obd_prefetch_fn fn, void *ctx,
		      const char **why);

#endif /* OBD_TRACE_H */
