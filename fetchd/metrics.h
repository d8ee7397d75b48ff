/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The exporter's limits (fetchd/exporter.c). A scrape client gets at most
 * this much of the daemon: bounded connections, request size and time.
 */
#ifndef OBD_FETCHD_METRICS_H
#define OBD_FETCHD_METRICS_H

#define EXP_MAX_CONNS		16	/* open at once; more wait in the listen backlog */
#define EXP_MAX_CONNS_STR	"16"
#define EXP_BACKLOG		64	/* listen(2) backlog */
#define EXP_REQ_MAX		8192	/* request head bytes; more: 431 */
#define EXP_DEADLINE_MS		5000	/* from accept to the whole response written */
#define EXP_LINGER_MS		1000	/* after it: waiting for the client to close */
#define EXP_ACCEPT_BATCH	32	/* accepts per event: the channel gets its turn */
#define EXP_ACCEPT_BACKOFF_MS	1000	/* after accept/epoll failures (EMFILE, ...) */
#define EXP_MAX_BLOB_SERIES	128	/* per-blob series: the first open blobs */
#define EXP_MAX_BLOB_SERIES_STR	"128"
#define EXP_LAT_BUCKETS		15	/* request_duration_seconds bounds, +Inf apart */

#endif
