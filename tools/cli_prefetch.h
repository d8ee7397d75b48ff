/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Trace record and replay for dm-overlaybd devices (spec 6.7), over the
 * module's dm messages (trace start|stop|dump|clear, prefetch,
 * prefetch_status; docs/dm-overlaybd.rst): the work behind `obd trace`
 * and the recordTracePath / accelerationLayer protocol of `obd attach`
 * (spec 5.1). The file codec is lib/user/trace.c.
 *
 * Every function reports its errors (naming the device, file and field)
 * and returns 0 or -errno. Device names are dm names (no /dev/mapper/).
 */
#ifndef OBD_CLI_PREFETCH_H
#define OBD_CLI_PREFETCH_H

#include <stdbool.h>

#include "obd_tracefile.h"

#define CLI_PREFETCH_CONCURRENCY	16	/* prefetchConfig.concurrency default */

/*
 * A trace in memory: the file's bytes (or the `trace` member of a tar,
 * an acceleration layer), validated. name is the file (and member).
 */
struct cli_trace {
	u8 *buf;
	u64 len, n;
	char name[4200];
};

/* Read and validate path (a trace, or a tar holding one file `trace`). */
int cli_trace_load(const char *path, struct cli_trace *t);
void cli_trace_free(struct cli_trace *t);

/*
 * The reference's mode of a trace path (spec 6.7): CLI_PF_DISABLED
 * (missing), _RECORD (empty), _REPLAY (trace magic), _DYNAMIC (a file list).
 */
enum cli_pf_mode { CLI_PF_DISABLED, CLI_PF_RECORD, CLI_PF_REPLAY, CLI_PF_DYNAMIC };
int cli_pf_mode_of(const char *path, enum cli_pf_mode *mode);

/* Start recording name's reads into file (made absolute, created empty if
 * missing, with file.lock); watch: a background `obd trace watch`. */
int cli_trace_record(const char *name, const char *file, bool watch);

/*
 * Stop recording, dump the records and write the trace file (temp, fsync,
 * rename) + .ok, remove .lock, trace clear. how: CLI_STOP_CMD (obd trace
 * stop: not recording is an error), _WATCH and _DETACH (nothing to do is
 * fine; _DETACH is quiet when the module has no trace messages).
 */
enum cli_stop_how { CLI_STOP_CMD, CLI_STOP_WATCH, CLI_STOP_DETACH };
int cli_trace_stop(const char *name, enum cli_stop_how how);

/* Poll every second: the .lock gone -> stop and write; device gone -> exit. */
int cli_trace_watch(const char *name);

struct cli_replay_opts {
	unsigned int concurrency;	/* batches of 64 ranges allowed ahead in the queue */
	bool wait;			/* until prefetch_status says queued=running=0 */
	unsigned int timeout_s;		/* bound of the wait */
	bool quiet;
};
/* Send the reads of t as prefetch messages to name. */
int cli_trace_replay(const char *name, const struct cli_trace *t, const struct cli_replay_opts *o);

/* Dynamic mode: the files of a file list, read from the device (FIEMAP). */
int cli_prefetch_files(const char *name, const char *list, unsigned int concurrency);

/* `obd attach`: after the device was made from args (a config or layer files). */
void cli_prefetch_attached(const char *name, int nargs, char **args, const char *svc);
/* `obd detach`: a recording device writes its trace first. */
void cli_prefetch_detach(const char *name);

/* -- plumbing, also for tests ------------------------------------------- */
/* One dm message to name's target; *resp (malloc'ed, maybe "") on success. */
int cli_dm_message(const char *name, const char *msg, char **resp);
/* Layers of name's table ("<n> <layer>..."). */
int cli_dm_nlayers(const char *name, unsigned int *n);

#endif
