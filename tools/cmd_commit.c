// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd commit / overlaybd-commit: compact a writable (or sealed, or even a
 * committed) layer into a committed layer (spec 2.6d), optionally streamed
 * through the ZFile writer (CRC on, header overwritten) and the tar
 * wrapper; or seal a writable layer in place (spec 2.6c).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "lsmt_write.h"
#include "tar_write.h"
#include "zfile_write.h"

struct commit_args {
	const char *msg;
	u8 uuid[OBD_UUID_STR_LEN], parent[OBD_UUID_STR_LEN];
	bool have_uuid, have_parent;
	bool zfile, tar, force, seal, commit_sealed;
	u8 algo;
	u32 bs;
	bool compat;
};

struct commit_ctx {
	struct cli_layer *l;
	struct obd_zfile_writer zw;
	int fd;
	struct cli_progress prog;
	struct obd_err zerr;
};

static int commit_read(void *ctx, u8 tag, void *buf, size_t len, u64 off)
{
	struct commit_ctx *c = ctx;
	struct obd_io *io = c->l->stream;
	u64 avail = off < io->size ? io->size - off : 0;

	if (tag)
		return -EINVAL;
	cli_progress_add(&c->prog, len);
	if (avail < len) {
		memset((u8 *)buf + avail, 0, len - avail);
		len = avail;
	}
	return len ? obd_io_read(io, buf, len, off) : 0;
}

static int zfile_sink(void *ctx, const void *buf, size_t len)
{
	struct commit_ctx *c = ctx;

	return obd_zfile_writer_write(&c->zw, buf, len, &c->zerr);
}

static int parse_algo(const char *s, u8 *algo)
{
	if (!strcasecmp(s, "lz4"))
		*algo = OBD_ZFILE_ALGO_LZ4;
	else if (!strcasecmp(s, "zstd"))
		*algo = OBD_ZFILE_ALGO_ZSTD;
	else
		return -EINVAL;
	return 0;
}

static int parse_bs(const char *s, u32 *bs)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*end || (v != 4 && v != 8 && v != 16 && v != 32 && v != 64))
		return -EINVAL;
	*bs = (u32)v << 10;
	return 0;
}

/* Shared with cmd_zfile.c. */
int cli_parse_algo(const char *s, u8 *algo) { return parse_algo(s, algo); }
int cli_parse_bs(const char *s, u32 *bs) { return parse_bs(s, bs); }

/* O_EXCL unless -f: a commit never overwrites a file by accident. */
int cli_open_output(const char *path, bool force)
{
	int fd;

	if (force && unlink(path) && errno != ENOENT) {
		cli_err(path, "cannot remove: %s", strerror(errno));
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		cli_err(path, "%s%s", strerror(errno),
			errno == EEXIST ? " (use -f to replace it)" : "");
	return fd;
}

static int do_seal(const char *data, const char *index)
{
	struct cli_layer l;
	char *av[2] = { (char *)data, (char *)index };
	int used, rc;

	if (cli_rw_open_args(&l, index ? 2 : 1, av, &used))
		return EXIT_FAIL;
	if (l.kind != CLI_KIND_RW_APPEND) {
		cli_err(data, "only an append-mode writable layer can be sealed");
		cli_layer_close(&l);
		return EXIT_FAIL;
	}
	rc = cli_rw_seal(&l);
	cli_layer_close(&l);
	return rc ? EXIT_FAIL : EXIT_OK;
}

static int do_commit(struct commit_args *a, const char *src, const char *index,
		     const char *out)
{
	struct commit_ctx c = { 0 };
	struct obd_commit_opts o = { 0 };
	struct obd_err err = { "" };
	struct cli_layer l;
	u64 size = 0, data = 0, i;
	u64 base;
	char uuid[OBD_UUID_STR_LEN], parent[OBD_UUID_STR_LEN];
	int rc, ret = EXIT_FAIL;
	s64 zlen;

	if (cli_same_file(src, out) || cli_same_file(index, out)) {
		cli_err(out, "output is the same file as the input");
		return EXIT_FAIL;
	}
	if (cli_layer_open(&l, src, index, CLI_STACK_ALLOW_RW))
		return EXIT_FAIL;
	if (a->commit_sealed && l.kind != CLI_KIND_SEALED) {
		cli_err(src, "--commit_sealed: not a sealed layer (it is %s)", cli_kind_name(l.kind));
		goto out_layer;
	}
	c.l = &l;
	c.fd = cli_open_output(out, a->force);
	if (c.fd < 0)
		goto out_layer;

	if (a->have_uuid)
		memcpy(uuid, a->uuid, sizeof(uuid));
	else
		uuid[0] = 0;
	if (a->have_parent)
		memcpy(parent, a->parent, sizeof(parent));
	else if (obd_uuid_valid(l.info.parent_uuid))
		memcpy(parent, l.info.parent_uuid, sizeof(parent));
	else
		parent[0] = 0;
	o.vsize = l.info.virtual_size;
	o.uuid = uuid;
	o.parent_uuid = parent;
	o.user_tag = a->msg;
	o.user_tag_len = a->msg ? strlen(a->msg) : 0;
	for (i = 0; i < l.nmaps; i++)
		if (!l.maps[i].zeroed)
			data += (u64)l.maps[i].length << OBD_SECTOR_SHIFT;
	cli_progress_start(&c.prog, "commit", data);

	base = a->tar ? OBD_TAR_PAX_PAYLOAD : 0;
	if (a->tar) {
		rc = obd_tar_write_begin(c.fd, &err);
		if (rc)
			goto out_err;
	}
	if (a->zfile) {
		rc = obd_zfile_writer_init(&c.zw, c.fd, base, a->algo, a->bs, true, true, &err);
		if (rc)
			goto out_err;
		rc = obd_lsmt_commit(l.maps, l.nmaps, &o, commit_read, &c, zfile_sink, &c, &size,
				     &err);
		if (rc) {
			obd_zfile_writer_abort(&c.zw);
			if (c.zerr.msg[0])
				err = c.zerr;
			goto out_err;
		}
		zlen = obd_zfile_writer_finish(&c.zw, &err);
		if (zlen < 0) {
			rc = (int)zlen;
			goto out_err;
		}
		size = (u64)zlen;
	} else {
		/* the plain sink writes at the file position: skip the tar prefix */
		if (base && lseek(c.fd, (off_t)base, SEEK_SET) < 0) {
			rc = -errno;
			goto out_err;
		}
		rc = obd_lsmt_commit(l.maps, l.nmaps, &o, commit_read, &c, obd_fd_sink, &c.fd,
				     &size, &err);
		if (rc)
			goto out_err;
	}
	if (a->tar) {
		s64 t = obd_tar_write_finish(c.fd, size, &err);

		if (t < 0) {
			rc = (int)t;
			goto out_err;
		}
	}
	if (fsync(c.fd)) {
		rc = -errno;
		goto out_err;
	}
	cli_progress_end(&c.prog);
	ret = EXIT_OK;
	goto out_fd;
out_err:
	cli_progress_end(&c.prog);
	if (err.msg[0])
		cli_err_core(out, rc, &err);
	else
		cli_err(out, "%s", strerror(-rc));
	unlink(out);
out_fd:
	if (close(c.fd) && ret == EXIT_OK) {
		cli_err(out, "close: %s", strerror(errno));
		ret = EXIT_FAIL;
	}
out_layer:
	cli_layer_close(&l);
	return ret;
}

int cli_commit(const char *data, const char *index, const char *out,
	       const struct cli_commit_opts *o)
{
	struct commit_args a = { .msg = o->msg, .zfile = o->zfile, .tar = o->tar,
				 .algo = o->algo, .bs = o->bs };

	return do_commit(&a, data, index, out) ? -EIO : 0;
}

/*
 * Positionals: --seal DATA INDEX; --commit_sealed SEALED OUT; otherwise
 * by DATA's kind: append DATA INDEX OUT, sparse DATA [INDEX] OUT, sealed
 * or committed SRC OUT.
 */
static int run(struct commit_args *a, int npos, char **pos, const char *cmd)
{
	enum cli_layer_kind kind;
	bool raw;

	if (a->seal) {
		if (npos != 2)
			return cli_usage_err(cmd, "--seal takes DATA INDEX");
		return do_seal(pos[0], pos[1]);
	}
	if (a->commit_sealed) {
		if (npos != 2)
			return cli_usage_err(cmd, "--commit_sealed takes SEALED OUT");
		if (!cli_peek_kind(pos[0], &kind, &raw) && kind != CLI_KIND_SEALED) {
			cli_err(pos[0], "--commit_sealed: not a sealed layer (it is %s)",
				cli_kind_name(kind));
			return EXIT_FAIL;
		}
		return do_commit(a, pos[0], NULL, pos[1]);
	}
	if (npos < 2 || npos > 3)
		return cli_usage_err(cmd, "expected DATA [INDEX] OUT");
	if (cli_peek_kind(pos[0], &kind, &raw))
		kind = CLI_KIND_COMMITTED;	/* maybe wrapped; cli_layer_open reports */
	if (kind == CLI_KIND_RW_APPEND) {
		if (npos != 3)
			return cli_usage_err(cmd, "%s is an append-mode layer: DATA INDEX OUT",
					     pos[0]);
		return do_commit(a, pos[0], pos[1], pos[2]);
	}
	if (npos == 3 && kind != CLI_KIND_RW_SPARSE)
		return cli_usage_err(cmd, "%s is a %s layer: SRC OUT", pos[0], cli_kind_name(kind));
	return do_commit(a, pos[0], NULL, pos[npos - 1]);
}

#define OPT_UUID	0x2000
#define OPT_ALGO	0x2001
#define OPT_BS		0x2002
#define OPT_SEAL	0x2003
#define OPT_CSEALED	0x2004
#define OPT_THREADS	0x2005
#define OPT_UNSUPP	0x2006

static int parse(int argc, char **argv, struct commit_args *a, const char *cmd)
{
	static const struct option opts[] = {
		{ "message", required_argument, NULL, 'm' },
		{ "uuid", required_argument, NULL, OPT_UUID },
		{ "parent-uuid", required_argument, NULL, 'p' },
		{ "zfile", no_argument, NULL, 'z' },
		{ "compress", no_argument, NULL, 'z' },
		{ "algorithm", required_argument, NULL, OPT_ALGO },
		{ "bs", required_argument, NULL, OPT_BS },
		{ "tar", no_argument, NULL, 't' },
		{ "force", no_argument, NULL, 'f' },
		{ "seal", no_argument, NULL, OPT_SEAL },
		{ "commit_sealed", no_argument, NULL, OPT_CSEALED },
		{ "compress_threads", required_argument, NULL, OPT_THREADS },
		{ "turboOCI", no_argument, NULL, OPT_UNSUPP },
		{ "upload", required_argument, NULL, OPT_UNSUPP },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		CLI_PROGRESS_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	a->algo = OBD_ZFILE_ALGO_LZ4;
	a->bs = 4096;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "m:p:ztfvh", opts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			if (strlen(optarg) > OBD_LSMT_TAG_LEN)
				return cli_usage_err(cmd, "message of %zu bytes, at most %u allowed",
						     strlen(optarg), OBD_LSMT_TAG_LEN);
			a->msg = optarg;
			break;
		case OPT_UUID:
			if (cli_parse_uuid(optarg, a->uuid))
				return cli_usage_err(cmd, "bad --uuid '%s'", optarg);
			a->have_uuid = true;
			break;
		case 'p':
			if (cli_parse_uuid(optarg, a->parent))
				return cli_usage_err(cmd, "bad --parent-uuid '%s'", optarg);
			a->have_parent = true;
			break;
		case 'z': a->zfile = true; break;
		case OPT_ALGO:
			if (parse_algo(optarg, &a->algo))
				return cli_usage_err(cmd, "bad --algorithm '%s' (lz4 or zstd)", optarg);
			break;
		case OPT_BS:
			if (parse_bs(optarg, &a->bs))
				return cli_usage_err(cmd, "bad --bs '%s' (4, 8, 16, 32 or 64)", optarg);
			break;
		case 't': a->tar = true; break;
		case 'f': a->force = true; break;
		case OPT_SEAL: a->seal = true; break;
		case OPT_CSEALED: a->commit_sealed = true; break;
		case OPT_THREADS: break;	/* single-threaded writer; same output */
		case 'v': break;
		case OPT_UNSUPP:
			return cli_usage_err(cmd, "%s is not supported by this implementation",
					     argv[optind - 1]);
		case CLI_OPT_PROGRESS: cli_progress_mode = 1; break;
		case CLI_OPT_NO_PROGRESS: cli_progress_mode = 0; break;
		case 'h': return cli_help("commit") + 100;
		default: return cli_usage_err(cmd, "bad option");
		}
	}
	if (a->seal && a->commit_sealed)
		return cli_usage_err(cmd, "--seal and --commit_sealed are exclusive");
	if (a->seal && (a->zfile || a->tar || a->msg || a->have_uuid || a->have_parent))
		return cli_usage_err(cmd, "--seal takes no output options");
	/* The reference ignores -t without -z (spec 7); obd wraps plain LSMT too. */
	if (a->compat && a->tar && !a->zfile)
		a->tar = false;
	return -1;
}

int cmd_commit(int argc, char **argv)
{
	struct commit_args a = { 0 };
	int rc = parse(argc, argv, &a, "commit");

	if (rc >= 100)
		return rc - 100;
	if (rc >= 0)
		return rc;
	return run(&a, argc - optind, argv + optind, "commit");
}

int compat_overlaybd_commit(int argc, char **argv)
{
	struct commit_args a = { .compat = true };
	int rc = parse(argc, argv, &a, "commit");

	if (rc >= 100)
		return rc - 100;
	if (rc >= 0)
		return rc;
	return run(&a, argc - optind, argv + optind, "commit");
}
