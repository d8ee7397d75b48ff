// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd cat: the merged virtual disk as raw bytes. Writing to a regular
 * file is sparse: holes, zeroed segments and all-zero sectors are skipped
 * and the file is sized with ftruncate at the end.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_target.h"

#define CAT_CHUNK	(1u << 20)

struct cat_ctx {
	struct cli_stack *s;
	int fd;
	bool sparse;		/* regular output file: seek over zeros */
	u64 lba0;		/* first sector of the requested range */
	u8 *buf;
	const char *out_name;
	struct cli_progress prog;
	const char *fail_path;	/* layer whose read failed, and where */
	u64 fail_off;
};

static bool sector_is_zero(const u8 *p)
{
	static const u8 zero[OBD_SECTOR_SIZE];

	return !memcmp(p, zero, OBD_SECTOR_SIZE);
}

static int emit(struct cat_ctx *c, const u8 *buf, u64 len, u64 pos)
{
	u64 i = 0;
	int rc;

	if (!c->sparse)
		return obd_write_all(c->fd, buf, len);
	while (i < len) {
		u64 j;

		if (sector_is_zero(buf + i)) {
			i += OBD_SECTOR_SIZE;
			continue;
		}
		for (j = i + OBD_SECTOR_SIZE; j < len && !sector_is_zero(buf + j);
		     j += OBD_SECTOR_SIZE)
			;
		rc = obd_pwrite_all(c->fd, buf + i, j - i, pos + i);
		if (rc)
			return rc;
		i = j;
	}
	return 0;
}

static int emit_zeros(struct cat_ctx *c, u64 len)
{
	int rc;

	if (c->sparse)
		return 0;
	memset(c->buf, 0, len < CAT_CHUNK ? len : CAT_CHUNK);
	while (len) {
		u64 n = len < CAT_CHUNK ? len : CAT_CHUNK;

		rc = obd_write_all(c->fd, c->buf, n);
		if (rc)
			return rc;
		len -= n;
	}
	return 0;
}

static int cat_piece(void *ctx, u64 lba, u64 nsect, const struct obd_map *m, u64 moff)
{
	struct cat_ctx *c = ctx;
	struct cli_layer *l;
	struct obd_io *src;
	u64 done = 0, total = nsect << OBD_SECTOR_SHIFT;
	int rc;

	if (!m || m->zeroed) {
		rc = emit_zeros(c, total);
		if (rc)
			return rc;
		cli_progress_add(&c->prog, total);
		return 0;
	}
	if (m->tag >= c->s->n)
		return -EFSCORRUPTED;
	l = &c->s->layers[m->tag];
	/* a TurboOCI layer's file data is in its target (cli_target.c) */
	if (m->target && !l->target)
		return -EFSCORRUPTED;
	src = m->target ? &l->target->io : l->stream;
	while (done < total) {
		u64 n = total - done < CAT_CHUNK ? total - done : CAT_CHUNK;
		u64 off = (moff << OBD_SECTOR_SHIFT) + done;
		u64 avail = off < src->size ? src->size - off : 0;

		/* a short stream reads as zeros past its end (spec 2.9) */
		if (avail < n)
			memset(c->buf + avail, 0, n - avail);
		rc = avail ? obd_io_read(src, c->buf, avail < n ? avail : n, off) : 0;
		if (rc) {
			c->fail_path = l->path;
			c->fail_off = off;
			return rc;
		}
		rc = emit(c, c->buf, n, ((lba - c->lba0) << OBD_SECTOR_SHIFT) + done);
		if (rc)
			return rc;
		done += n;
		cli_progress_add(&c->prog, n);
	}
	return 0;
}

int cmd_cat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "offset", required_argument, NULL, 'O' },
		{ "length", required_argument, NULL, 'l' },
		{ "output", required_argument, NULL, 'o' },
		{ "no-verify", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		CLI_PROGRESS_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	u64 off = 0, len = 0;
	bool have_len = false;
	const char *out = NULL;
	unsigned int flags = CLI_STACK_ALLOW_RW | CLI_STACK_TURBO;
	struct cat_ctx c = { 0 };
	struct cli_stack s;
	struct stat st;
	int opt, rc, ret = EXIT_FAIL;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'O':
			if (cli_parse_size(optarg, &off))
				return cli_usage_err("cat", "bad --offset '%s'", optarg);
			break;
		case 'l':
			if (cli_parse_size(optarg, &len))
				return cli_usage_err("cat", "bad --length '%s'", optarg);
			have_len = true;
			break;
		case 'o': out = optarg; break;
		case 'V': flags |= CLI_STACK_NO_VERIFY; break;
		case CLI_OPT_PROGRESS: cli_progress_mode = 1; break;
		case CLI_OPT_NO_PROGRESS: cli_progress_mode = 0; break;
		case 'h': return cli_help("cat");
		default: return cli_usage_err("cat", "bad option");
		}
	}
	if (optind >= argc)
		return cli_usage_err("cat", "no layer given");
	if (off % OBD_SECTOR_SIZE || len % OBD_SECTOR_SIZE)
		return cli_usage_err("cat", "--offset and --length must be multiples of 512");
	if (!out && isatty(1)) {
		cli_err(NULL, "refusing to write a disk image to a terminal (use -o OUT or a pipe)");
		return EXIT_USAGE;
	}
	if (cli_stack_open(&s, argc - optind, argv + optind, flags))
		return EXIT_FAIL;
	if (off > s.vsize) {
		cli_err(NULL, "--offset %llu is past the end of the disk (%llu bytes)",
			(unsigned long long)off, (unsigned long long)s.vsize);
		goto out_close;
	}
	if (!have_len)
		len = s.vsize - off;
	if (len > s.vsize - off) {
		cli_err(NULL, "--offset + --length (%llu) is past the end of the disk (%llu bytes)",
			(unsigned long long)(off + len), (unsigned long long)s.vsize);
		goto out_close;
	}
	c.s = &s;
	c.out_name = out ? out : "<stdout>";
	c.lba0 = off >> OBD_SECTOR_SHIFT;
	c.buf = malloc(CAT_CHUNK);
	if (!c.buf) {
		cli_err(NULL, "out of memory");
		goto out_close;
	}
	if (out) {
		c.fd = open(out, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (c.fd < 0) {
			cli_err(out, "%s", strerror(errno));
			goto out_free;
		}
		if (!fstat(c.fd, &st) && S_ISREG(st.st_mode)) {
			c.sparse = true;
			if (ftruncate(c.fd, 0)) {
				cli_err(out, "truncate: %s", strerror(errno));
				goto out_fd;
			}
		}
	} else {
		c.fd = 1;
	}
	cli_progress_start(&c.prog, "cat", len);
	rc = obd_index_walk(&s.idx, c.lba0, len >> OBD_SECTOR_SHIFT, cat_piece, &c);
	cli_progress_end(&c.prog);
	if (rc) {
		if (c.fail_path)
			cli_err(c.fail_path, "read at layer offset %llu failed: %s%s",
				(unsigned long long)c.fail_off, strerror(-rc),
				rc == -EFSBADCRC || rc == -EFSCORRUPTED ?
				" (run 'obd check' on it)" : "");
		else
			cli_err(c.out_name, "write: %s", strerror(-rc));
		goto out_fd;
	}
	if (c.sparse && ftruncate(c.fd, (off_t)len)) {
		cli_err(out, "truncate: %s", strerror(errno));
		goto out_fd;
	}
	ret = EXIT_OK;
out_fd:
	if (out && close(c.fd) && ret == EXIT_OK) {
		cli_err(out, "close: %s", strerror(errno));
		ret = EXIT_FAIL;
	}
out_free:
	free(c.buf);
out_close:
	cli_stack_close(&s);
	return ret;
}
