// SPDX-License-Identifier: GPL-2.0-only
/*
 * Trace record and replay (spec 6.7) for dm-overlaybd devices. The module
 * keeps the records and does the fetching (dm messages, see
 * docs/dm-overlaybd.rst "Trace and prefetch"); this file turns them into
 * the reference's trace files and back, and runs the reference's
 * recordTracePath protocol (spec 5.1) for obd attach:
 *
 *   path missing            nothing
 *   path empty              record: trace start, PATH.lock, and a watcher
 *                           (obd trace watch, in its own session) that
 *                           writes PATH and PATH.ok once PATH.lock is gone
 *   trace magic             replay in the background (obd trace replay)
 *   anything else           dynamic: a file list, prefetched from the
 *                           mounted device (obd trace files)
 *   accelerationLayer       the last lower is a tar holding `trace`: replay it
 *
 * Background work runs in processes of their own (posix_spawn, setsid), so
 * obd attach returns at once and the first reads of the device go beside
 * the prefetch; their output goes to PATH.log (or /dev/null).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libdevmapper.h>
#include <linux/fiemap.h>
#include <linux/openat2.h>

#include "cli.h"
#include "cli_dm.h"
#include "cli_prefetch.h"
#include "cli_remote.h"
#include "config.h"
#include "durable.h"

#ifndef FS_IOC_FIEMAP	/* <linux/fs.h> clashes with <sys/mount.h> */
#define FS_IOC_FIEMAP	_IOWR('f', 11, struct fiemap)
#endif

#define TRACE_FILE_MAX		(256ULL << 20)	/* ~11 M records */
#define FILE_LIST_MAX		65536		/* the reference's bound */
#define PREFETCH_MERGE_MAX	(1ULL << 20)	/* the reference replays in 1 MiB reads */
#define EBUSY_GIVE_UP_MS	60000		/* a queue that stays full this long: stop */

extern char **environ;

/* Progress lines of the attach hook go to stderr: stdout is the device path. */
static FILE *pf_out;

static FILE *out(void)
{
	return pf_out ? pf_out : stdout;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000 + (u64)ts.tv_nsec / 1000000;
}

/* -------------------------------------------------------------------------
 * dm messages
 * ------------------------------------------------------------------------- */
int cli_dm_message(const char *name, const char *msg, char **resp)
{
	struct dm_task *dmt = dm_task_create(DM_DEVICE_TARGET_MSG);
	const char *r;
	int rc = 0;

	*resp = NULL;
	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_name(dmt, name) || !dm_task_set_sector(dmt, 0) ||
	    !dm_task_set_message(dmt, msg)) {
		rc = -ENOMEM;
		goto out;
	}
	if (!dm_task_run(dmt)) {
		rc = dm_task_get_errno(dmt);
		rc = rc > 0 ? -rc : -EIO;
		goto out;
	}
	r = dm_task_get_message_response(dmt);
	*resp = strdup(r ? r : "");
	if (!*resp)
		rc = -ENOMEM;
out:
	dm_task_destroy(dmt);
	return rc;
}

/* What a failed message means, for the user. */
static void msg_err(const char *name, const char *what, int rc)
{
	if (rc == -ENXIO || rc == -ENODEV || (rc == -EINVAL && !cli_dm_exists(name)))
		cli_err(name, "%s: no such device-mapper device", what);
	else if (rc == -EINVAL)
		cli_err(name, "%s: refused by the target (%s; an overlaybd device with trace support? see dmesg)",
			what, strerror(-rc));
	else
		cli_err(name, "%s: %s", what, strerror(-rc));
}

int cli_dm_nlayers(const char *name, unsigned int *n)
{
	char *params = NULL;
	uint64_t len;
	int rc = cli_dm_table(name, &len, &params, NULL);

	if (!rc) {
		*n = (unsigned int)strtoul(params, NULL, 10);
		rc = *n ? 0 : -EINVAL;
	}
	free(params);
	if (rc == -ENODEV)
		cli_err(name, "no such device-mapper device");
	else if (rc)
		cli_err(name, "not an %s device", OBD_DM_TARGET);
	return rc;
}

/* trace dump START MAX, parsed; recs has room for cap. */
static int trace_dump(const char *name, u64 start, u64 cap, struct obd_trace_dump_hdr *h,
		      struct obd_trace_rec *recs, bool quiet)
{
	struct obd_err err = { "" };
	char msg[64], *resp;
	int rc;

	snprintf(msg, sizeof(msg), "trace dump %llu %llu", (unsigned long long)start,
		 (unsigned long long)cap);
	rc = cli_dm_message(name, msg, &resp);
	if (rc) {
		if (!quiet)
			msg_err(name, "trace dump", rc);
		return rc;
	}
	rc = obd_trace_dump_parse(resp, h, recs, cap, &err);
	if (rc && !quiet)
		cli_err(name, "%s", err.msg);
	free(resp);
	return rc;
}

static int simple_msg(const char *name, const char *msg)
{
	char *resp;
	int rc = cli_dm_message(name, msg, &resp);

	free(resp);
	return rc;
}

static int prefetch_status(const char *name, struct obd_prefetch_status *st)
{
	struct obd_err err = { "" };
	char *resp;
	int rc = cli_dm_message(name, "prefetch_status", &resp);

	if (rc) {
		msg_err(name, "prefetch_status", rc);
		return rc;
	}
	rc = obd_prefetch_status_parse(resp, st, &err);
	if (rc)
		cli_err(name, "%s", err.msg);
	free(resp);
	return rc;
}

/* -------------------------------------------------------------------------
 * Trace files
 * ------------------------------------------------------------------------- */
static bool tar_octal(const char *f, size_t n, u64 *v)
{
	size_t i = 0;

	*v = 0;
	while (i < n && f[i] == ' ')
		i++;
	if (i == n || f[i] < '0' || f[i] > '7')
		return false;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
		if (*v >> 60)
			return false;
		*v = (*v << 3) | (u64)(f[i] - '0');
	}
	return true;
}

/* pax records "<len> key=value\n": size= and path= of the next member. */
static void pax_scan(const u8 *d, u64 n, u64 *size, bool *has_size, char *path, size_t cap)
{
	u64 pos = 0;

	while (pos < n) {
		u64 rl = 0, i = pos;

		while (i < n && d[i] >= '0' && d[i] <= '9' && rl < n)
			rl = rl * 10 + (d[i++] - '0');
		if (i >= n || d[i] != ' ' || rl < 5 || rl > n - pos)
			return;
		i++;
		if (!strncmp((const char *)d + i, "size=", 5) && i + 5 < pos + rl) {
			*size = strtoull((const char *)d + i + 5, NULL, 10);
			*has_size = true;
		} else if (!strncmp((const char *)d + i, "path=", 5)) {
			size_t pl = (size_t)(pos + rl - 1 - (i + 5));

			if (pl < cap) {
				memcpy(path, d + i + 5, pl);
				path[pl] = 0;
			}
		}
		pos += rl;
	}
}

static bool is_tar(const u8 *buf, u64 len)
{
	return len >= OBD_TAR_BLOCK && !memcmp(buf + 257, "ustar", 5);
}

/*
 * The member `trace` (or ./trace) of a tar: an acceleration layer (spec
 * 6.7, "a plain tar containing one file named trace"). *off, *size.
 */
static int tar_find_trace(const char *path, const u8 *buf, u64 len, u64 *off, u64 *size)
{
	char pax_path[256] = "", name[260];
	bool pax_has_size = false;
	u64 pos = 0, sz, pax_size = 0;
	u64 chk;

	while (pos + OBD_TAR_BLOCK <= len) {
		const struct obd_tar_header *h = (const void *)(buf + pos);
		const char *nm;

		if (!buf[pos])
			break;	/* the end blocks */
		if (memcmp(h->magic, "ustar", 5) || !tar_octal(h->chksum, sizeof(h->chksum), &chk) ||
		    chk != obd_tar_checksum(h) || !tar_octal(h->size, sizeof(h->size), &sz)) {
			cli_err(path, "tar header at %llu: bad magic, checksum or size",
				(unsigned long long)pos);
			return -EFSCORRUPTED;
		}
		if (pax_has_size)
			sz = pax_size;
		if (sz > len - pos - OBD_TAR_BLOCK) {
			cli_err(path, "tar member at %llu: size %llu past the end of the file",
				(unsigned long long)pos, (unsigned long long)sz);
			return -EFSCORRUPTED;
		}
		if (h->typeflag == 'x') {
			pax_scan(buf + pos + OBD_TAR_BLOCK, sz, &pax_size, &pax_has_size, pax_path,
				 sizeof(pax_path));
		} else {
			snprintf(name, sizeof(name), "%.100s", h->name);
			nm = pax_path[0] ? pax_path : name;
			if (!strncmp(nm, "./", 2))
				nm += 2;
			if ((h->typeflag == '0' || !h->typeflag) && !strcmp(nm, "trace")) {
				*off = pos + OBD_TAR_BLOCK;
				*size = sz;
				return 0;
			}
			pax_path[0] = 0;
			pax_has_size = false;
		}
		pos += OBD_TAR_BLOCK + OBD_ALIGN_UP(sz, OBD_TAR_BLOCK);
	}
	cli_err(path, "tar: no member named 'trace' (an acceleration layer holds one)");
	return -ENOENT;
}

/* Validate t's bytes (in place); the tar case moves the member to the front. */
static int trace_parse(struct cli_trace *t, bool allow_empty)
{
	struct obd_err err = { "" };
	u64 off, size;
	int rc;

	if (!obd_trace_has_magic(t->buf, (size_t)t->len) && is_tar(t->buf, t->len)) {
		rc = tar_find_trace(t->name, t->buf, t->len, &off, &size);
		if (rc)
			return rc;
		memmove(t->buf, t->buf + off, (size_t)size);
		t->len = size;
		strncat(t->name, ":trace", sizeof(t->name) - strlen(t->name) - 1);
	}
	if (!t->len && allow_empty)
		return 0;
	rc = obd_trace_check(t->buf, t->len, t->name, &t->n, &err);
	if (rc)
		cli_err(NULL, "%s", err.msg);
	return rc;
}

static int trace_load(const char *path, struct cli_trace *t, bool allow_empty)
{
	int rc;

	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", path);
	rc = cli_read_file(path, TRACE_FILE_MAX, &t->buf, &t->len);
	if (!rc)
		rc = trace_parse(t, allow_empty);
	if (rc)
		cli_trace_free(t);
	return rc;
}

int cli_trace_load(const char *path, struct cli_trace *t)
{
	return trace_load(path, t, false);
}

void cli_trace_free(struct cli_trace *t)
{
	free(t->buf);
	t->buf = NULL;
	t->len = t->n = 0;
}

int cli_pf_mode_of(const char *path, enum cli_pf_mode *mode)
{
	u8 hdr[OBD_TRACE_HDR_SIZE];
	struct stat st;
	ssize_t got;
	int fd;

	if (stat(path, &st)) {
		if (errno == ENOENT) {
			*mode = CLI_PF_DISABLED;
			return 0;
		}
		cli_err(path, "%s", strerror(errno));
		return -errno;
	}
	if (!st.st_size) {
		*mode = CLI_PF_RECORD;
		return 0;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cli_err(path, "%s", strerror(errno));
		return -errno;
	}
	got = cli_read_upto(fd, hdr, sizeof(hdr));
	close(fd);
	*mode = got > 0 && obd_trace_has_magic(hdr, (size_t)got) ? CLI_PF_REPLAY : CLI_PF_DYNAMIC;
	return 0;
}

/* Write buf as path durably (lib/user/durable.c). */
static int write_durable(const char *path, const void *buf, u64 len)
{
	int rc = obd_replace_file(path, buf, (size_t)len, 0644);

	if (rc)
		cli_err(path, "writing the trace: %s", strerror(-rc));
	return rc;
}

static int touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0) {
		cli_err(path, "%s", strerror(errno));
		return -errno;
	}
	close(fd);
	return 0;
}

static int suffixed(char *buf, size_t cap, const char *path, const char *sfx)
{
	if (snprintf(buf, cap, "%s%s", path, sfx) >= (int)cap) {
		cli_err(path, "path too long");
		return -ENAMETOOLONG;
	}
	return 0;
}

/* -------------------------------------------------------------------------
 * Background processes
 * ------------------------------------------------------------------------- */
/*
 * Run `obd ARGS...` in a session of its own, stdin /dev/null and output
 * appended to log (NULL, or not writable: /dev/null). Not waited for.
 */
static int spawn_bg(char *const *args, const char *log)
{
	char exe[PATH_MAX], *argv[16];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none;
	ssize_t n;
	pid_t pid;
	int rc, i, fd;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -errno;
	exe[n] = 0;
	argv[0] = "obd";
	for (i = 0; args[i] && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	if (log) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd < 0)
			log = NULL;
		else
			close(fd);
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log ? log : "/dev/null",
					 O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
	rc = posix_spawn(&pid, exe, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc)
		cli_err(exe, "cannot start obd %s in the background: %s", args[0], strerror(rc));
	return -rc;
}

/* -------------------------------------------------------------------------
 * Record
 * ------------------------------------------------------------------------- */
/* An absolute path for the module: exists (parent at least), no blanks. */
static int abs_trace_path(const char *file, char *abs)
{
	if (!realpath(file, abs)) {
		cli_err(file, "%s", strerror(errno));
		return -errno;
	}
	if (strpbrk(abs, " \t\n\r\v\f") || strlen(abs) >= OBD_TRACE_PATH_MAX) {
		cli_err(abs, "the trace path must have no white space and fewer than %u bytes",
			OBD_TRACE_PATH_MAX);
		return -EINVAL;
	}
	return 0;
}

int cli_trace_record(const char *name, const char *file, bool watch)
{
	char abs[PATH_MAX], lock[PATH_MAX + 8], log[PATH_MAX + 8], msg[PATH_MAX + 16];
	char *args[] = { "trace", "watch", (char *)name, NULL };
	int rc;

	rc = touch(file);
	if (!rc)
		rc = abs_trace_path(file, abs);
	if (!rc)
		rc = suffixed(lock, sizeof(lock), abs, ".lock");
	if (rc)
		return rc;
	snprintf(msg, sizeof(msg), "trace start %s", abs);
	rc = simple_msg(name, msg);
	if (rc == -EBUSY) {
		cli_err(name, "already recording a trace (obd trace stop %s first)", name);
		return rc;
	}
	if (rc) {
		msg_err(name, "trace start", rc);
		return rc;
	}
	/* the reference's protocol: recording lasts while PATH.lock exists,
	 * PATH.ok says it was written (a stale one would say so too early) */
	if (!suffixed(log, sizeof(log), abs, ".ok"))
		unlink(log);
	rc = touch(lock);
	if (rc) {
		simple_msg(name, "trace clear");
		return rc;
	}
	if (watch && !suffixed(log, sizeof(log), abs, ".log"))
		spawn_bg(args, log);
	fprintf(out(), "%s: recording a trace into %s (stop: rm %s, or obd trace stop %s)\n",
		name, abs, lock, name);
	return 0;
}

/* -------------------------------------------------------------------------
 * Stop: dump, write, clear
 * ------------------------------------------------------------------------- */
/* Every record the module holds, by trace dump START MAX until total. */
static int dump_all(const char *name, u64 total, struct obd_trace_rec **recs, u64 *n)
{
	struct obd_trace_dump_hdr h;
	u64 got = 0;
	int rc;

	*recs = calloc(total + 1, sizeof(**recs));
	if (!*recs)
		return -ENOMEM;
	while (got < total) {
		rc = trace_dump(name, got, total - got, &h, *recs + got, false);
		if (rc)
			goto fail;
		if (!h.count || h.start != got) {
			cli_err(name, "trace dump %llu: got %llu records from %llu, expected more",
				(unsigned long long)got, (unsigned long long)h.count,
				(unsigned long long)h.start);
			rc = -EPROTO;
			goto fail;
		}
		got += h.count;
	}
	*n = got;
	return 0;
fail:
	free(*recs);
	*recs = NULL;
	return rc;
}

/* Write the n records as path (reference format) and path.ok; drop path.lock. */
static int write_trace(const char *path, const struct obd_trace_rec *recs, u64 n)
{
	char ok[PATH_MAX + 8], lock[PATH_MAX + 8];
	struct obd_err err = { "" };
	u64 size = obd_trace_file_size(n);
	u8 *buf;
	int rc;

	if (suffixed(ok, sizeof(ok), path, ".ok") || suffixed(lock, sizeof(lock), path, ".lock"))
		return -ENAMETOOLONG;
	buf = size ? malloc(size) : NULL;
	if (!buf)
		return -ENOMEM;
	rc = obd_trace_encode(recs, n, buf, size, path, &err);
	if (rc)
		cli_err(NULL, "%s", err.msg);
	else
		rc = write_durable(path, buf, size);
	free(buf);
	if (rc)
		return rc;
	rc = touch(ok);
	if (!rc) {
		unlink(lock);
		obd_fsync_dir_of(ok);
	}
	return rc;
}

/*
 * The trace file named by the module, locked (flock) so that a watcher,
 * obd trace stop and obd detach write it once: the first one in writes
 * and clears, the others then find no path and have nothing to do.
 */
static int lock_trace_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0) {
		cli_err(path, "%s", strerror(errno));
		return -errno;
	}
	while (flock(fd, LOCK_EX) && errno == EINTR)
		;
	return fd;
}

static int finish_locked(const char *name, const struct obd_trace_dump_hdr *h)
{
	struct obd_trace_rec *recs = NULL;
	u64 n = 0, bytes = 0, i;
	int rc;

	if (h->recording) {
		rc = simple_msg(name, "trace stop");
		if (rc && rc != -EINVAL) {
			msg_err(name, "trace stop", rc);
			return rc;
		}
	}
	rc = dump_all(name, h->total, &recs, &n);
	if (!rc)
		rc = write_trace(h->path, recs, n);
	if (!rc) {
		for (i = 0; i < n; i++)
			bytes += recs[i].count;
		rc = simple_msg(name, "trace clear");
		if (rc)
			msg_err(name, "trace clear", rc);
		fprintf(out(), "%s: trace written to %s: %llu records, %llu bytes\n", name, h->path,
			(unsigned long long)n, (unsigned long long)bytes);
		if (h->dropped)
			cli_warn(name, "%llu reads were not recorded (the module keeps at most %llu records)",
				 (unsigned long long)h->dropped, (unsigned long long)h->total);
	}
	free(recs);
	return rc;
}

int cli_trace_stop(const char *name, enum cli_stop_how how)
{
	struct obd_trace_dump_hdr h;
	char path[sizeof(h.path)];
	int rc, fd;

	rc = trace_dump(name, 0, 0, &h, NULL, how == CLI_STOP_DETACH);
	if (rc)
		return how == CLI_STOP_DETACH ? 0 : rc;
	if (!h.path[0]) {
		if (how != CLI_STOP_CMD)
			return 0;
		cli_err(name, "not recording a trace (obd trace record %s FILE starts one)", name);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "%s", h.path);
	fd = lock_trace_file(path);
	if (fd < 0)
		return fd;
	rc = trace_dump(name, 0, 0, &h, NULL, false);
	if (!rc && strcmp(h.path, path)) {
		/* written meanwhile by another of us (or a new recording began) */
		if (how == CLI_STOP_CMD && !h.path[0]) {
			cli_err(name, "not recording a trace (it was just written to %s)", path);
			rc = -EINVAL;
		}
	} else if (!rc) {
		rc = finish_locked(name, &h);
	}
	close(fd);
	return rc;
}

int cli_trace_watch(const char *name)
{
	char lock[PATH_MAX + 8];
	struct obd_trace_dump_hdr h;
	struct stat st;

	for (;;) {
		sleep_ms(1000);
		if (!cli_dm_exists(name))
			return 0;	/* detached: obd detach wrote the trace, or it is lost */
		if (trace_dump(name, 0, 0, &h, NULL, true))
			continue;
		if (!h.recording)
			return 0;	/* stopped by someone else */
		if (suffixed(lock, sizeof(lock), h.path, ".lock"))
			return -ENAMETOOLONG;
		if (stat(lock, &st) && errno == ENOENT)
			return cli_trace_stop(name, CLI_STOP_WATCH);
	}
}

/* -------------------------------------------------------------------------
 * Replay
 * ------------------------------------------------------------------------- */
/* Wait until the module's queue has room for our next batch (soft bound). */
static int throttle(const char *name, unsigned int concurrency)
{
	struct obd_prefetch_status st;
	int rc;

	if (!concurrency)
		return 0;
	for (;;) {
		rc = prefetch_status(name, &st);
		if (rc || st.queued < (u64)concurrency * OBD_PREFETCH_BATCH)
			return rc;
		sleep_ms(20);
	}
}

/* One batch; a full queue (EBUSY) is retried, for at most EBUSY_GIVE_UP_MS. */
static int send_batch(const char *name, const char *msg)
{
	u64 t0 = now_ms();
	int rc;

	for (;;) {
		rc = simple_msg(name, msg);
		if (rc != -EBUSY)
			break;
		if (now_ms() - t0 > EBUSY_GIVE_UP_MS) {
			cli_err(name, "prefetch: the module's queue stayed full for %d s", EBUSY_GIVE_UP_MS / 1000);
			return rc;
		}
		sleep_ms(20);
	}
	if (rc)
		msg_err(name, "prefetch", rc);
	return rc;
}

static int wait_idle(const char *name, unsigned int timeout_s, struct obd_prefetch_status *st)
{
	u64 t0 = now_ms();
	bool tty = isatty(2);
	int rc;

	for (;;) {
		rc = prefetch_status(name, st);
		if (rc)
			return rc;
		if (!st->queued && !st->running)
			break;
		if (tty)
			fprintf(stderr, "\rprefetch: %llu queued, %llu running, %llu done   ",
				(unsigned long long)st->queued, (unsigned long long)st->running,
				(unsigned long long)st->done);
		if (now_ms() - t0 > (u64)timeout_s * 1000) {
			if (tty)
				fputc('\n', stderr);
			cli_err(name, "prefetch: not finished after %u s (%llu queued, %llu running)",
				timeout_s, (unsigned long long)st->queued,
				(unsigned long long)st->running);
			return -ETIMEDOUT;
		}
		sleep_ms(100);
	}
	if (tty)
		fputc('\n', stderr);
	return 0;
}

int cli_trace_replay(const char *name, const struct cli_trace *t, const struct cli_replay_opts *o)
{
	struct obd_prefetch_status st0 = { 0 }, st;
	struct obd_trace_rec *recs, *plan;
	struct cli_progress p;
	char msg[OBD_PREFETCH_MSG_MAX];
	u64 i, m, k, skipped, bytes = 0;
	unsigned int nlayers;
	int rc;

	rc = cli_dm_nlayers(name, &nlayers);
	if (rc)
		return rc;
	recs = calloc(t->n + 1, sizeof(*recs));
	plan = calloc(t->n + 1, sizeof(*plan));
	if (!recs || !plan) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < t->n; i++)
		obd_trace_get(t->buf, i, &recs[i]);
	m = obd_trace_plan(recs, t->n, nlayers, PREFETCH_MERGE_MAX, plan, &skipped);
	rc = prefetch_status(name, &st0);
	if (rc)
		goto out;
	cli_progress_start(&p, "prefetch", m);
	for (i = 0; i < m; i += k) {
		rc = throttle(name, o->concurrency);
		if (rc)
			break;
		k = obd_prefetch_format(plan + i, m - i, msg, sizeof(msg));
		rc = send_batch(name, msg);
		if (rc)
			break;
		cli_progress_add(&p, k);
	}
	cli_progress_end(&p);
	if (rc)
		goto out;
	for (i = 0; i < m; i++)
		bytes += plan[i].count;
	if (!o->quiet)
		fprintf(out(), "%s: %s: %llu records sent as %llu prefetch ranges (%llu bytes)\n",
			name, t->name, (unsigned long long)(t->n - skipped), (unsigned long long)m,
			(unsigned long long)bytes);
	if (skipped)
		cli_warn(t->name, "%llu records skipped (writes, or layers the device does not have: it has %u)",
			 (unsigned long long)skipped, nlayers);
	if (o->wait) {
		rc = wait_idle(name, o->timeout_s, &st);
		if (!rc && !o->quiet)
			fprintf(out(), "%s: prefetch finished (%llu ranges done, %llu failed, module-wide)\n",
				name, (unsigned long long)(st.done - st0.done),
				(unsigned long long)(st.failed - st0.failed));
		if (!rc && st.failed > st0.failed)
			cli_warn(name, "%llu prefetch ranges failed (see the daemon's log)",
				 (unsigned long long)(st.failed - st0.failed));
	}
out:
	free(recs);
	free(plan);
	return rc;
}

/* -------------------------------------------------------------------------
 * Dynamic mode: a file list, prefetched by reading the device
 * ------------------------------------------------------------------------- */
struct extents {
	struct { u64 off, len; } *v;
	size_t n, cap;
	u64 files;
};

static int ext_add(struct extents *e, u64 off, u64 len)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? 2 * e->cap : 256;
		void *v = realloc(e->v, cap * sizeof(*e->v));

		if (!v)
			return -ENOMEM;
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n].off = off;
	e->v[e->n].len = len;
	e->n++;
	return 0;
}

/* The device extents of one open file (FIEMAP), clamped to its size. */
static int file_extents(int fd, const char *what, struct extents *e)
{
	enum { NEXT = 128 };
	struct fiemap *fm = calloc(1, sizeof(*fm) + NEXT * sizeof(struct fiemap_extent));
	struct stat st;
	u64 start = 0, last, size;
	unsigned int i;
	int rc = 0;

	if (!fm)
		return -ENOMEM;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode))
		goto out;
	size = OBD_ALIGN_UP((u64)st.st_size, 512);
	e->files++;
	while (start < size) {
		memset(fm, 0, sizeof(*fm));
		fm->fm_start = start;
		fm->fm_length = size - start;
		fm->fm_extent_count = NEXT;
		if (ioctl(fd, FS_IOC_FIEMAP, fm)) {
			cli_warn(what, "FIEMAP: %s", strerror(errno));
			break;
		}
		if (!fm->fm_mapped_extents)
			break;
		last = start;
		for (i = 0; i < fm->fm_mapped_extents && !rc; i++) {
			struct fiemap_extent *x = &fm->fm_extents[i];
			u64 len = x->fe_length;

			if (x->fe_logical >= size)
				continue;
			if (len > size - x->fe_logical)
				len = size - x->fe_logical;
			if (!(x->fe_flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC |
					     FIEMAP_EXTENT_ENCODED)))
				rc = ext_add(e, x->fe_physical, len);
			start = x->fe_logical + x->fe_length;
			if (x->fe_flags & FIEMAP_EXTENT_LAST)
				start = size;
		}
		if (rc || start <= last)
			break;	/* an error, or no progress: never loop */
	}
out:
	free(fm);
	return rc;
}

/* Open path inside the image: symlinks resolve inside root, never outside. */
static int open_in_root(int root, const char *path, int flags)
{
	struct open_how how = { .flags = (u64)(flags | O_CLOEXEC), .resolve = RESOLVE_IN_ROOT };
	long fd = syscall(SYS_openat2, root, path, &how, sizeof(how));

	if (fd < 0 && errno == ENOSYS)
		fd = openat(root, path, flags | O_NOFOLLOW | O_CLOEXEC);
	return (int)fd;
}

static int walk_dir(int dfd, const char *what, struct extents *e, unsigned int depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int rc = 0;

	if (!d) {
		close(dfd);
		return 0;
	}
	while (!rc && (de = readdir(d))) {
		struct stat st;
		int fd;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (S_ISREG(st.st_mode)) {
			fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0) {
				rc = file_extents(fd, de->d_name, e);
				close(fd);
			}
		} else if (S_ISDIR(st.st_mode) && depth < 64) {
			fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0)
				rc = walk_dir(fd, what, e, depth + 1);
		}
	}
	closedir(d);
	return rc;
}

/* One line of the list: a file, or a directory (trailing / or *). */
static int list_entry(int root, char *line, const char *list, unsigned int lineno,
		      struct extents *e)
{
	size_t n = strlen(line);
	bool dir = false;
	int fd, rc;

	while (n && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
		line[--n] = 0;
	while (*line == ' ' || *line == '\t')
		line++, n--;
	if (!n || *line == '#')
		return 0;
	if (*line != '/') {
		cli_warn(list, "line %u: not an absolute path, skipped", lineno);
		return 0;
	}
	if (line[n - 1] == '*' || line[n - 1] == '/') {
		dir = true;
		while (n > 1 && (line[n - 1] == '*' || line[n - 1] == '/'))
			line[--n] = 0;
	}
	fd = open_in_root(root, line[1] ? line + 1 : ".", O_RDONLY | (dir ? O_DIRECTORY : 0));
	if (fd < 0) {
		cli_warn(list, "line %u: %s: %s", lineno, line, strerror(errno));
		return 0;
	}
	if (dir)
		return walk_dir(fd, line, e, 0);
	rc = file_extents(fd, line, e);
	close(fd);
	return rc;
}

/* Mount the device read-only at a temp dir, as ext4 (no journal replay) or erofs. */
static int mount_ro(const char *dev, char *mnt, size_t cap)
{
	snprintf(mnt, cap, "/tmp/obd-prefetch.XXXXXX");
	if (!mkdtemp(mnt)) {
		cli_err(mnt, "%s", strerror(errno));
		return -errno;
	}
	if (!mount(dev, mnt, "ext4", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "noload") ||
	    !mount(dev, mnt, "erofs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		return 0;
	cli_err(dev, "cannot mount read-only as ext4 or erofs: %s", strerror(errno));
	rmdir(mnt);
	return -EINVAL;
}

static void unmount(const char *mnt)
{
	if (umount2(mnt, 0))
		umount2(mnt, MNT_DETACH);
	rmdir(mnt);
}

static int collect_extents(const char *dev, const char *list, char *text, struct extents *e)
{
	char mnt[64], *line, *save = NULL;
	unsigned int lineno = 0;
	int root, rc = 0;

	rc = mount_ro(dev, mnt, sizeof(mnt));
	if (rc)
		return rc;
	root = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		rc = -errno;
		cli_err(mnt, "%s", strerror(errno));
	}
	for (line = strtok_r(text, "\n", &save); root >= 0 && line && !rc;
	     line = strtok_r(NULL, "\n", &save))
		rc = list_entry(root, line, list, ++lineno, e);
	if (root >= 0)
		close(root);
	unmount(mnt);
	return rc;
}

struct reader {
	const struct extents *e;
	int fd;
	u64 dev_size;
	atomic_size_t next;
	atomic_ullong bytes;
	atomic_int errors;
};

/* Read one extent in <= 1 MiB aligned pieces (O_DIRECT: 4 KiB aligned). */
static void read_extent(struct reader *r, void *buf, u64 off, u64 len)
{
	u64 start = off & ~4095ULL, end = OBD_ALIGN_UP(off + len, 4096);

	if (end > r->dev_size)
		end = r->dev_size;
	while (start < end) {
		size_t n = (size_t)(end - start < (1 << 20) ? end - start : (1 << 20));
		ssize_t got = pread(r->fd, buf, n, (off_t)start);

		if (got <= 0) {
			atomic_fetch_add(&r->errors, 1);
			return;
		}
		atomic_fetch_add(&r->bytes, (unsigned long long)got);
		start += (u64)got;
	}
}

static void *reader_thread(void *arg)
{
	struct reader *r = arg;
	void *buf;
	size_t i;

	if (posix_memalign(&buf, 4096, 1 << 20))
		return NULL;
	while ((i = atomic_fetch_add(&r->next, 1)) < r->e->n)
		read_extent(r, buf, r->e->v[i].off, r->e->v[i].len);
	free(buf);
	return NULL;
}

static int read_extents(const char *dev, const struct extents *e, unsigned int conc,
			u64 *bytes)
{
	pthread_t th[256];
	struct reader r = { .e = e };
	unsigned int i, n = conc ? (conc > 256 ? 256 : conc) : 1;
	off_t end;

	r.fd = open(dev, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (r.fd < 0) {
		cli_err(dev, "%s", strerror(errno));
		return -errno;
	}
	end = lseek(r.fd, 0, SEEK_END);
	r.dev_size = end > 0 ? (u64)end : 0;
	for (i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, reader_thread, &r))
			break;
	n = i;
	reader_thread(&r);	/* and this thread too, should none start */
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	close(r.fd);
	*bytes = r.bytes;
	if (r.errors)
		cli_warn(dev, "%d reads failed during the prefetch", (int)r.errors);
	return 0;
}

int cli_prefetch_files(const char *name, const char *list, unsigned int concurrency)
{
	struct extents e = { 0 };
	char dev[PATH_MAX];
	u8 *text;
	u64 len, bytes = 0;
	int rc;

	rc = cli_read_file(list, FILE_LIST_MAX, &text, &len);
	if (rc == -EFBIG)
		cli_err(list, "a file list is at most %d bytes", FILE_LIST_MAX);
	if (rc)
		return rc;
	snprintf(dev, sizeof(dev), "/dev/mapper/%s", name);
	rc = collect_extents(dev, list, (char *)text, &e);
	if (!rc)
		rc = read_extents(dev, &e, concurrency, &bytes);
	if (!rc)
		fprintf(out(), "%s: %s: %llu files, %zu extents, %llu bytes read\n", name, list,
			(unsigned long long)e.files, e.n, (unsigned long long)bytes);
	free(e.v);
	free(text);
	return rc;
}

/* -------------------------------------------------------------------------
 * obd attach / obd detach
 * ------------------------------------------------------------------------- */
static char *cfg_rel(const char *cfg, const char *p)
{
	char *d = strdup(cfg), *slash, *outp = NULL;

	if (!d)
		return NULL;
	slash = strrchr(d, '/');
	if (p[0] == '/' || !slash)
		outp = strdup(p);
	else if (asprintf(&outp, "%.*s/%s", (int)(slash - d), d, p) < 0)
		outp = NULL;
	free(d);
	return outp;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return *json_object_get_string(v) ? json_object_get_string(v) : NULL;
}

static void spawn_replay(const char *name, const char *trace, unsigned int conc, const char *log)
{
	char c[16], *args[] = { "trace", "replay", (char *)name, (char *)trace, "--concurrency", c,
				"--no-progress", NULL };

	snprintf(c, sizeof(c), "%u", conc);
	if (!spawn_bg(args, log))
		fprintf(stderr, "obd: %s: replaying the trace %s in the background\n", name, trace);
}

/*
 * The acceleration layer's trace (the last lower): dir/trace as unpacked
 * by the snapshotter, a local tar (`file`), or the remote blob, fetched
 * whole into its cache entry.
 */
static void accel_replay(const char *name, const char *cfg, json_object *root,
			 unsigned int conc)
{
	json_object *lowers = NULL, *l;
	struct cli_remote *r = NULL;
	const char *file, *dir, *digest;
	char *path = NULL, *p = NULL;
	struct cli_trace t;
	struct stat st;
	size_t n;

	if (!json_object_object_get_ex(root, "lowers", &lowers) ||
	    !(n = json_object_array_length(lowers)))
		return;
	l = json_object_array_get_idx(lowers, n - 1);
	file = jstr(l, "file");
	dir = jstr(l, "dir");
	digest = jstr(l, "digest");
	if (file && (p = cfg_rel(cfg, file)) && !stat(p, &st))
		path = p;
	else if (file)
		free(p);
	if (!path && dir && (p = cfg_rel(cfg, dir))) {
		if (asprintf(&path, "%s/trace", p) < 0 || stat(path, &st)) {
			free(path);
			path = NULL;
		}
		free(p);
	}
	if (!path && digest && !jstr(root, "repoBlobUrl"))
		cli_warn(cfg, "accelerationLayer: lowers[%zu] is remote, but repoBlobUrl is not set", n - 1);
	else if (!path && digest) {
		json_object *v;
		u64 size = 0, off;
		u8 buf[65536];
		int rc;

		if (json_object_object_get_ex(l, "size", &v))
			size = (u64)json_object_get_int64(v);
		rc = cli_remote_open(&r, cfg, jstr(root, "repoBlobUrl"), digest, size, NULL);
		for (off = 0; !rc && off < cli_remote_size(r); off += sizeof(buf)) {
			u64 k = cli_remote_size(r) - off;

			rc = obd_io_read(cli_remote_io(r), buf, k < sizeof(buf) ? (size_t)k : sizeof(buf), off);
		}
		if (!rc)
			path = strdup(cli_remote_cache_path(r));
		else if (r)
			cli_err(cli_remote_url(r), "acceleration layer: fetching it: %s", strerror(-rc));
		cli_remote_close(r);
	}
	if (!path) {
		cli_warn(cfg, "accelerationLayer: lowers[%zu] has no trace (no file, dir/trace or digest)",
			 n - 1);
		return;
	}
	if (!trace_load(path, &t, true)) {
		if (t.n)
			spawn_replay(name, path, conc, NULL);
		else
			fprintf(stderr, "obd: %s: the acceleration layer's trace is empty\n", name);
		cli_trace_free(&t);
	}
	free(path);
}

static void record_trace_path(const char *name, const char *path, unsigned int conc)
{
	char c[16], log[PATH_MAX + 8], *args[] = { "trace", "files", (char *)name, (char *)path,
						    "--concurrency", c, NULL };
	enum cli_pf_mode mode;
	struct cli_trace t;

	if (cli_pf_mode_of(path, &mode))
		return;
	snprintf(c, sizeof(c), "%u", conc);
	if (suffixed(log, sizeof(log), path, ".log"))
		return;
	switch (mode) {
	case CLI_PF_DISABLED:
		return;
	case CLI_PF_RECORD:
		cli_trace_record(name, path, true);
		return;
	case CLI_PF_REPLAY:
		if (!cli_trace_load(path, &t)) {
			spawn_replay(name, path, conc, log);
			cli_trace_free(&t);
		}
		return;
	case CLI_PF_DYNAMIC:
		if (!spawn_bg(args, log))
			fprintf(stderr, "obd: %s: prefetching the files listed in %s in the background\n",
				name, path);
		return;
	}
}

void cli_prefetch_attached(const char *name, int nargs, char **args, const char *svc)
{
	struct fetchd_config *cfg;
	unsigned int conc = CLI_PREFETCH_CONCURRENCY;
	json_object *root, *v;
	const char *rec;
	char *path;

	if (nargs != 1 || !cli_is_config(args[0]))
		return;
	root = json_object_from_file(args[0]);
	if (!root)
		return;
	pf_out = stderr;
	cfg = calloc(1, sizeof(*cfg));
	if (cfg && !cli_load_service_config(svc, cfg))
		conc = cfg->prefetch_concurrency;
	free(cfg);
	rec = jstr(root, "recordTracePath");
	/* the combination was refused when the config was loaded (cli_stack.c) */
	if (json_object_object_get_ex(root, "accelerationLayer", &v) &&
	    json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v)) {
		accel_replay(name, args[0], root, conc);
	} else if (rec && (path = cfg_rel(args[0], rec))) {
		record_trace_path(name, path, conc);
		free(path);
	}
	json_object_put(root);
	pf_out = NULL;
}

void cli_prefetch_detach(const char *name)
{
	pf_out = stderr;
	cli_trace_stop(name, CLI_STOP_DETACH);
	pf_out = NULL;
}
