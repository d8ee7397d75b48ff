// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd zfile / overlaybd-zfile: compress any file into a ZFile (CRC on,
 * no header overwrite, like the reference), decompress (-x), verify.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "tar_write.h"
#include "zfile_write.h"

#define ZF_CHUNK	(1u << 20)

struct zf_args {
	bool extract, verify, tar, force;
	u8 algo;
	u32 bs;
};

static void zf_progress(void *ctx, u64 done, u64 total)
{
	struct cli_progress *p = ctx;

	p->total = total;
	p->done = done;
	cli_progress_add(p, 0);
}

static int do_compress(const struct zf_args *a, const char *src, const char *dst)
{
	struct obd_err err = { "" };
	struct cli_progress prog;
	u64 base = a->tar ? OBD_TAR_PAX_PAYLOAD : 0;
	int in = 0, out, ret = EXIT_FAIL;
	s64 len;

	if (cli_same_file(src, dst)) {
		cli_err(dst, "output is the same file as the input");
		return EXIT_FAIL;
	}
	if (!cli_is_stdio(src)) {
		in = open(src, O_RDONLY | O_CLOEXEC);
		if (in < 0) {
			cli_err(src, "%s", strerror(errno));
			return EXIT_FAIL;
		}
	}
	out = cli_open_output(dst, a->force);
	if (out < 0)
		goto out_in;
	if (a->tar && obd_tar_write_begin(out, &err))
		goto out_err;
	cli_progress_start(&prog, "zfile", 0);
	len = obd_zfile_compress_fd(in, out, base, a->algo, a->bs, true, false,
				    zf_progress, &prog, &err);
	cli_progress_end(&prog);
	if (len < 0)
		goto out_err;
	if (a->tar && obd_tar_write_finish(out, (u64)len, &err) < 0)
		goto out_err;
	if (fsync(out)) {
		snprintf(err.msg, sizeof(err.msg), "fsync: %s", strerror(errno));
		goto out_err;
	}
	ret = EXIT_OK;
	goto out_out;
out_err:
	cli_err_core(dst, -EIO, &err);
	unlink(dst);
out_out:
	if (close(out) && ret == EXIT_OK) {
		cli_err(dst, "close: %s", strerror(errno));
		ret = EXIT_FAIL;
	}
out_in:
	if (in > 0)
		close(in);
	return ret;
}

/* The ZFile inside path (tar unwrapped when present). */
struct zf_src {
	struct obd_file_io f;
	struct obd_tar_info ti;
	struct obd_window win;
	struct obd_zfile zf;
};

static int zf_open(struct zf_src *s, const char *path, bool no_verify)
{
	struct obd_err err = { "" };
	int rc;

	rc = obd_file_io_open(&s->f, path, &err);
	if (rc) {
		cli_err_core(path, rc, &err);
		return rc;
	}
	rc = obd_tar_probe(&s->f.io, &s->ti, &err);
	if (rc < 0) {
		cli_err_core(path, rc, &err);
		goto out_close;
	}
	if (rc == 1)
		obd_window_init(&s->win, &s->f.io, s->ti.payload_off, s->ti.payload_size);
	else
		obd_window_init(&s->win, &s->f.io, 0, s->f.io.size);
	rc = obd_zfile_probe(&s->win.io, &err);
	if (rc <= 0) {
		if (rc == 0)
			cli_err(path, "not a ZFile (no ZFile header%s)", s->ti.payload_off ?
				" inside the tar" : "");
		else
			cli_err_core(path, rc, &err);
		rc = rc ? rc : -EINVAL;
		goto out_close;
	}
	rc = obd_zfile_open(&s->zf, &s->win.io, &obd_user_codec, &err);
	if (rc) {
		cli_err_core(path, rc, &err);
		goto out_close;
	}
	s->zf.no_verify = no_verify;
	return 0;
out_close:
	obd_file_io_close(&s->f);
	return rc;
}

static void zf_close(struct zf_src *s)
{
	obd_zfile_close(&s->zf);
	obd_file_io_close(&s->f);
}

static int do_extract(const struct zf_args *a, const char *src, const char *dst)
{
	struct cli_progress prog;
	struct zf_src s;
	u64 off = 0, size;
	u8 *buf;
	int out, rc, ret = EXIT_FAIL;

	if (cli_same_file(src, dst)) {
		cli_err(dst, "output is the same file as the input");
		return EXIT_FAIL;
	}
	if (zf_open(&s, src, false))
		return EXIT_FAIL;
	buf = malloc(ZF_CHUNK);
	if (!buf) {
		cli_err(NULL, "out of memory");
		goto out_zf;
	}
	if (cli_is_stdio(dst)) {
		out = 1;
	} else {
		out = cli_open_output(dst, a->force);
		if (out < 0)
			goto out_buf;
	}
	size = s.zf.io.size;
	cli_progress_start(&prog, "extract", size);
	while (off < size) {
		size_t n = size - off < ZF_CHUNK ? (size_t)(size - off) : ZF_CHUNK;

		rc = obd_io_read(&s.zf.io, buf, n, off);
		if (rc) {
			/* find the block to name it */
			u32 bs = s.zf.info.block_size;
			u64 b = off / bs;

			while (b * bs < off + n &&
			       !obd_io_read(&s.zf.io, buf, obd_zfile_block_ulen(&s.zf.info, b), b * bs))
				b++;
			cli_err(src, "ZFile block %llu (uncompressed offset %llu): %s",
				(unsigned long long)b, (unsigned long long)(b * bs), strerror(-rc));
			goto out_prog;
		}
		rc = obd_write_all(out, buf, n);
		if (rc) {
			cli_err(cli_is_stdio(dst) ? "<stdout>" : dst, "write: %s", strerror(-rc));
			goto out_prog;
		}
		off += n;
		cli_progress_add(&prog, n);
	}
	ret = EXIT_OK;
out_prog:
	cli_progress_end(&prog);
	if (out != 1) {
		if (close(out) && ret == EXIT_OK) {
			cli_err(dst, "close: %s", strerror(errno));
			ret = EXIT_FAIL;
		}
		if (ret != EXIT_OK)
			unlink(dst);
	}
out_buf:
	free(buf);
out_zf:
	zf_close(&s);
	return ret;
}

/* stdin is spooled to an unnamed temporary file: verifying needs seeks. */
static int spool_stdin(char *name, size_t cap)
{
	u8 *buf = malloc(ZF_CHUNK);
	int fd;

	snprintf(name, cap, "/tmp/obd-zfile-XXXXXX");
	fd = mkstemp(name);
	if (fd < 0 || !buf) {
		free(buf);
		return -1;
	}
	for (;;) {
		ssize_t n = cli_read_upto(0, buf, ZF_CHUNK);

		if (n <= 0 || obd_write_all(fd, buf, (size_t)n)) {
			if (n < 0)
				cli_err("<stdin>", "read: %s", strerror((int)-n));
			break;
		}
	}
	free(buf);
	return fd;
}

static int do_verify(const char *src)
{
	char tmp[64] = "";
	const char *path = src, *shown = src;
	struct cli_progress prog;
	struct zf_src s;
	u8 *cbuf = NULL, *dbuf = NULL;
	u64 b, bad = 0;
	int ret = EXIT_FAIL, fd = -1;

	if (cli_is_stdio(src)) {
		fd = spool_stdin(tmp, sizeof(tmp));
		if (fd < 0) {
			cli_err("<stdin>", "cannot spool to a temporary file");
			return EXIT_FAIL;
		}
		path = tmp;
		shown = "<stdin>";
	}
	if (zf_open(&s, path, false))
		goto out_tmp;
	if (!s.zf.info.verify) {
		cli_err(shown, "ZFile has no block CRCs (verify = 0): nothing to verify");
		goto out_zf;
	}
	cbuf = malloc(s.zf.max_stored ? s.zf.max_stored : 1);
	dbuf = malloc(s.zf.info.block_size);
	if (!cbuf || !dbuf) {
		cli_err(NULL, "out of memory");
		goto out_zf;
	}
	cli_progress_start(&prog, "verify", s.zf.info.nblocks);
	for (b = 0; b < s.zf.info.nblocks; b++) {
		struct obd_err err = { "" };
		u64 off;
		u32 len;
		int rc;

		obd_zfile_block_range(&s.zf, b, &off, &len);
		rc = obd_io_read(s.zf.src, cbuf, len, off);
		if (!rc)
			rc = obd_zfile_decode_block(&s.zf.info, b, cbuf, len, dbuf, &obd_user_codec,
						    false, shown, &err);
		if (rc < 0) {
			if (bad++ < 50)
				cli_err(shown, "block %llu (offset %llu, %u bytes): %s",
					(unsigned long long)b, (unsigned long long)off, len,
					err.msg[0] ? err.msg : strerror(-rc));
		} else if ((u32)rc != obd_zfile_block_ulen(&s.zf.info, b)) {
			if (bad++ < 50)
				cli_err(shown, "block %llu: decodes to %d bytes, expected %u",
					(unsigned long long)b, rc,
					obd_zfile_block_ulen(&s.zf.info, b));
		}
		cli_progress_add(&prog, 1);
	}
	cli_progress_end(&prog);
	if (bad)
		cli_err(shown, "%llu of %llu blocks bad", (unsigned long long)bad,
			(unsigned long long)s.zf.info.nblocks);
	else
		ret = EXIT_OK;
out_zf:
	free(cbuf);
	free(dbuf);
	zf_close(&s);
out_tmp:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	return ret;
}

#define OPT_ALGO	0x2001
#define OPT_BS		0x2002
#define OPT_VERIFY	0x2003

static int zfile_main(int argc, char **argv, const char *cmd)
{
	static const struct option opts[] = {
		{ "extract", no_argument, NULL, 'x' },
		{ "verify", no_argument, NULL, OPT_VERIFY },
		{ "tar", no_argument, NULL, 't' },
		{ "force", no_argument, NULL, 'f' },
		{ "algorithm", required_argument, NULL, OPT_ALGO },
		{ "bs", required_argument, NULL, OPT_BS },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		CLI_PROGRESS_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct zf_args a = { .algo = OBD_ZFILE_ALGO_LZ4, .bs = 4096 };
	int opt, npos;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "xtfvh", opts, NULL)) != -1) {
		switch (opt) {
		case 'x': a.extract = true; break;
		case OPT_VERIFY: a.verify = true; break;
		case 't': a.tar = true; break;
		case 'f': a.force = true; break;
		case 'v': break;
		case OPT_ALGO:
			if (cli_parse_algo(optarg, &a.algo))
				return cli_usage_err(cmd, "bad --algorithm '%s' (lz4 or zstd)", optarg);
			break;
		case OPT_BS:
			if (cli_parse_bs(optarg, &a.bs))
				return cli_usage_err(cmd, "bad --bs '%s' (4, 8, 16, 32 or 64)", optarg);
			break;
		case CLI_OPT_PROGRESS: cli_progress_mode = 1; break;
		case CLI_OPT_NO_PROGRESS: cli_progress_mode = 0; break;
		case 'h': return cli_help("zfile");
		default: return cli_usage_err(cmd, "bad option");
		}
	}
	npos = argc - optind;
	if (a.extract && a.verify)
		return cli_usage_err(cmd, "-x and --verify are exclusive");
	if (a.verify) {
		if (npos > 1)
			return cli_usage_err(cmd, "--verify takes one SRC (or stdin)");
		return do_verify(npos ? argv[optind] : "-");
	}
	if (a.extract) {
		/* the input's tar wrapper is detected (and skipped) either way */
		if (npos != 2)
			return cli_usage_err(cmd, "-x takes SRC DST");
		return do_extract(&a, argv[optind], argv[optind + 1]);
	}
	if (npos == 1)
		return do_compress(&a, "-", argv[optind]);
	if (npos != 2)
		return cli_usage_err(cmd, "expected SRC [DST]");
	return do_compress(&a, argv[optind], argv[optind + 1]);
}

int cmd_zfile(int argc, char **argv)
{
	return zfile_main(argc, argv, "zfile");
}

int compat_overlaybd_zfile(int argc, char **argv)
{
	return zfile_main(argc, argv, "zfile");
}
