// SPDX-License-Identifier: GPL-2.0-only
/*
 * Error reporting, option parsing helpers, progress bar, full-length I/O.
 */
#include <fcntl.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cache_entry.h"
#include "cli.h"

const char *cli_prog = "obd";
int cli_progress_mode = -1;

/* -------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------- */

/* Names and messages may carry bytes from an image: never echo a control
 * character (it could rewrite the terminal), like git's vreportf. */
const char *cli_sanitize(const char *s, char *buf, size_t cap)
{
	size_t i = 0;

	if (!cap)
		return "";
	for (; *s && i + 1 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		buf[i++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	buf[i] = 0;
	return buf;
}

void cli_sanitize_n(const u8 *s, size_t len, char *buf, size_t cap)
{
	size_t i = 0, j;

	for (j = 0; j < len && s[j] && i + 1 < cap; j++)
		buf[i++] = (s[j] < 0x20 || s[j] >= 0x7f) ? '?' : (char)s[j];
	if (cap)
		buf[i] = 0;
}

static void vreport(const char *file, const char *prefix, const char *fmt, va_list ap)
{
	char msg[1024], clean[1024], fclean[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	cli_sanitize(msg, clean, sizeof(clean));
	if (file)
		fprintf(stderr, "%s: %s%s: %s\n", cli_prog, prefix,
			cli_sanitize(file, fclean, sizeof(fclean)), clean);
	else
		fprintf(stderr, "%s: %s%s\n", cli_prog, prefix, clean);
}

void cli_err(const char *file, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(file, "", fmt, ap);
	va_end(ap);
}

void cli_warn(const char *file, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(file, "warning: ", fmt, ap);
	va_end(ap);
}

void cli_err_core(const char *file, int rc, const struct obd_err *err)
{
	const char *m = err ? err->msg : "";
	char buf[sizeof(err->msg)];
	const char *hit;
	size_t fl;

	if (!m[0]) {
		cli_err(file, "%s", strerror(rc < 0 ? -rc : rc));
		return;
	}
	if (!file) {
		cli_err(NULL, "%s", m);
		return;
	}
	/*
	 * The core names its io ("<name>: <structure> ..."), possibly after a
	 * "layer ZFile: " prefix: drop that copy, the file leads the line.
	 */
	fl = strlen(file);
	hit = strstr(m, file);
	if (hit && !strncmp(hit + fl, ": ", 2)) {
		size_t pre = (size_t)(hit - m);

		snprintf(buf, sizeof(buf), "%.*s%s", (int)pre, m, hit + fl + 2);
		cli_err(file, "%s", buf);
		return;
	}
	cli_err(file, "%s", m);
}

/* -------------------------------------------------------------------------
 * Option values
 * ------------------------------------------------------------------------- */
int cli_parse_size(const char *s, u64 *out)
{
	unsigned long long v;
	char *end;
	int shift = 0;

	if (!s || !*s || *s == '-' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case 0: break;
	case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	case 'T': shift = 40; break;
	case 'P': shift = 50; break;
	case 'S': shift = 9; break;	/* sectors */
	default: return -EINVAL;
	}
	if (*end) {
		end++;
		/* accept K, KB, KiB */
		if (shift != 9 && (!strcasecmp(end, "ib") || !strcasecmp(end, "b")))
			end += strlen(end);
		if (*end)
			return -EINVAL;
	}
	if (shift && v > (~0ULL >> shift))
		return -ERANGE;
	*out = (u64)v << shift;
	return 0;
}

int cli_parse_uuid(const char *s, u8 out[OBD_UUID_STR_LEN])
{
	u8 tmp[OBD_UUID_STR_LEN];
	int i;

	if (strlen(s) != 36)
		return -EINVAL;
	for (i = 0; i < 36; i++)
		tmp[i] = (u8)toupper((unsigned char)s[i]);
	tmp[36] = 0;
	if (!obd_uuid_valid(tmp))
		return -EINVAL;
	memcpy(out, tmp, sizeof(tmp));
	return 0;
}

bool cli_is_stdio(const char *path)
{
	return !path || !strcmp(path, "-");
}

/* -------------------------------------------------------------------------
 * Progress bar (stderr; only on a TTY unless forced)
 * ------------------------------------------------------------------------- */
void cli_progress_start(struct cli_progress *p, const char *what, u64 total)
{
	memset(p, 0, sizeof(*p));
	p->what = what;
	p->total = total;
	p->last_permille = -1;
	p->on = cli_progress_mode < 0 ? isatty(2) : cli_progress_mode;
	cli_progress_add(p, 0);
}

void cli_progress_add(struct cli_progress *p, u64 n)
{
	int pm, w;

	p->done += n;
	if (!p->on)
		return;
	pm = p->total ? (int)(p->done * 1000 / p->total) : 1000;
	if (pm > 1000)
		pm = 1000;
	if (pm == p->last_permille)
		return;
	p->last_permille = pm;
	w = pm * 30 / 1000;
	fprintf(stderr, "\r%s: [%.*s%*s] %3d.%d%%", p->what, w,
		"##############################", 30 - w, "", pm / 10, pm % 10);
	fflush(stderr);
}

void cli_progress_end(struct cli_progress *p)
{
	if (!p->on)
		return;
	p->done = p->total;
	cli_progress_add(p, 0);
	fputc('\n', stderr);
}

/* -------------------------------------------------------------------------
 * I/O
 * ------------------------------------------------------------------------- */
ssize_t cli_read_upto(int fd, void *buf, size_t len)
{
	u8 *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t r = read(fd, p + got, len - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!r)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

bool cli_same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (!a || !b || stat(a, &sa) || stat(b, &sb))
		return false;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cli_make_dirs(const char *dir)
{
	char failed[PATH_MAX];
	int rc = cache_dir_make(dir, failed, sizeof(failed));

	if (rc)
		cli_err(failed, "cannot make the cache directory: %s", strerror(-rc));
	return rc;
}

int cli_read_file(const char *path, u64 max, u8 **buf, u64 *len)
{
	struct stat st;
	ssize_t got;
	int fd;

	*buf = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		cli_err(path, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	if (!S_ISREG(st.st_mode) || (u64)st.st_size > max) {
		cli_err(path, "%s", S_ISREG(st.st_mode) ? "too large" : "not a regular file");
		close(fd);
		return -EFBIG;
	}
	*buf = malloc((size_t)st.st_size + 1);
	if (!*buf) {
		close(fd);
		return -ENOMEM;
	}
	got = cli_read_upto(fd, *buf, (size_t)st.st_size);
	close(fd);
	if (got < 0) {
		cli_err(path, "read: %s", strerror((int)-got));
		free(*buf);
		*buf = NULL;
		return (int)got;
	}
	*len = (u64)got;
	(*buf)[got] = 0;
	return 0;
}
