/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Trace prefetch (spec 6.7): the reference's binary trace file, and the
 * text of the dm messages that record and replay one (trace dump,
 * prefetch, prefetch_status; docs/dm-overlaybd.rst). Pure functions over
 * memory, no I/O, same conventions as obd.h. Userspace only for now (not
 * in kmod/Makefile's LIB_SRCS); not named obd_trace.h because
 * kmod/obd_trace.h is the module's recorder.
 *
 * File layout, little-endian, the x86-64 struct layout of the reference:
 *
 *   header (24 B)  0 u32 magic  4 pad  8 u64 data_size (= 24 x records)
 *                 16 u32 checksum (raw CRC32C, seed 0, chained, over every
 *                    record byte, padding included)  20 pad
 *   record (24 B)  0 u8 op ('R' or 'W')  1 pad[3]  4 u32 layer_index
 *                  8 u64 count  16 u64 offset (bytes of the layer's LSMT
 *                    stream, i.e. after tar and ZFile; layer 0 = bottom)
 */
#ifndef OBD_TRACEFILE_H
#define OBD_TRACEFILE_H

#include "obd.h"

#define OBD_TRACE_MAGIC		0xC2EF1820u	/* zlib CRC-32 of "Container Image Trace Format" */
#define OBD_TRACE_HDR_SIZE	24u
#define OBD_TRACE_REC_SIZE	24u
#define OBD_TRACE_OP_READ	'R'
#define OBD_TRACE_OP_WRITE	'W'
#define OBD_TRACE_LAYERS	255u		/* layer_index < this (OBD_MAX_LAYERS) */
/* One read is at most a few MiB; 1 TiB is "impossible", not a tight limit. */
#define OBD_TRACE_COUNT_MAX	(1ULL << 40)
/* The kernel's bounds (kmod/obd_trace.h): path length, triples per message. */
#define OBD_TRACE_PATH_MAX	1024u
#define OBD_PREFETCH_BATCH	64u

struct obd_trace_rec {
	u64 offset;	/* bytes */
	u64 count;	/* bytes, > 0 */
	u32 layer;	/* 0 = bottom lower */
	u8 op;		/* OBD_TRACE_OP_* */
};

/* Bytes of a trace of n records; 0 if that does not fit in a u64. */
u64 obd_trace_file_size(u64 n);

/*
 * Mode choice of spec 6.7: true when buf (the first len bytes of a file)
 * holds a whole header with the trace magic. Nothing else is checked.
 */
bool obd_trace_has_magic(const void *buf, size_t len);

/*
 * Validate a whole trace file in memory: magic, data_size a multiple of
 * 24 and equal to len - 24, the checksum, then every record (op R or W,
 * count 1..OBD_TRACE_COUNT_MAX, offset + count without overflow,
 * layer_index < 255). *nrecs gets the record count. Errors name name and
 * the field: -EFSCORRUPTED, -EFSBADCRC.
 */
int obd_trace_check(const void *buf, u64 len, const char *name, u64 *nrecs,
		    struct obd_err *err);

/* Record i of a checked trace (no checks). */
void obd_trace_get(const void *buf, u64 i, struct obd_trace_rec *r);

/*
 * Write the trace of n records into buf (obd_trace_file_size(n) bytes,
 * len at least that): padding zero, checksum computed. Records are
 * checked as obd_trace_check does; -EINVAL names record and field.
 */
int obd_trace_encode(const struct obd_trace_rec *recs, u64 n, void *buf, u64 len,
		     const char *name, struct obd_err *err);

/* ------------------------------------------------------------------------
 * dm message text (kmod/obd_trace.c)
 * ------------------------------------------------------------------------ */

/* "trace recording=R total=N dropped=D path=P start=S count=K" */
struct obd_trace_dump_hdr {
	bool recording;
	u64 total, dropped, start, count;
	char path[OBD_TRACE_PATH_MAX + 1];	/* "" for "-" */
};

/*
 * Parse a trace dump response: the header line into h, then its K record
 * lines "<layer> <offset> <count>" into recs[0..K) (op 'R'); cap is the
 * room in recs (K > cap is an error, as is a missing or malformed line).
 * recs may be NULL when cap is 0.
 */
int obd_trace_dump_parse(const char *resp, struct obd_trace_dump_hdr *h,
			 struct obd_trace_rec *recs, u64 cap, struct obd_err *err);

struct obd_prefetch_status {
	u64 queued, running, done, failed;
};

/* "prefetch queued=Q running=R done=D failed=F" */
int obd_prefetch_status_parse(const char *resp, struct obd_prefetch_status *st,
			      struct obd_err *err);

/*
 * The replay plan of a trace: its reads of layers below nlayers, in
 * order, each merged with the one before when it continues it in the
 * same layer (up to merge_max bytes). out has room for n. Returns the
 * number of ranges; *skipped counts the records left out (writes, layers
 * the device does not have: the reference skips them too).
 */
u64 obd_trace_plan(const struct obd_trace_rec *recs, u64 n, u32 nlayers, u64 merge_max,
		   struct obd_trace_rec *out, u64 *skipped);

/*
 * One "prefetch L O C [L O C ...]" message of at most OBD_PREFETCH_BATCH
 * ranges from recs[0..n) into buf (cap bytes; OBD_PREFETCH_MSG_MAX is
 * always enough). Returns how many ranges it holds (0 when n is 0 or
 * buf is too small for even one).
 */
#define OBD_PREFETCH_MSG_MAX	(16 + OBD_PREFETCH_BATCH * 64)
u64 obd_prefetch_format(const struct obd_trace_rec *recs, u64 n, char *buf, size_t cap);

#endif /* OBD_TRACEFILE_H */
