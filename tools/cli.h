/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Shared pieces of the obd command line tool: error reporting, option
 * helpers, progress bar, and opening a layer stack (files or a
 * config.v1.json).
 *
 * Exit codes, for every subcommand: 0 ok, 1 failed or problems found,
 * 2 usage error.
 */
#ifndef OBD_CLI_H
#define OBD_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "obd.h"
#include "env_user.h"

#define EXIT_OK		0
#define EXIT_FAIL	1
#define EXIT_USAGE	2

#ifndef OBD_VERSION	/* -DOBD_VERSION from the Makefile: scripts/version.sh */
#error "OBD_VERSION is not defined"
#endif

/* -------------------------------------------------------------------------
 * Subcommands (one file each)
 * ------------------------------------------------------------------------- */
struct cli_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;	/* first line(s) of `obd help CMD` */
	const char *help;	/* option and behaviour text */
	const char *summary;	/* one line for `obd help` */
};

int cmd_create(int argc, char **argv);
int cmd_write(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_discard(int argc, char **argv);
int cmd_commit(int argc, char **argv);
int cmd_zfile(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_detach(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_trace(int argc, char **argv);

/* obd attach's core (cmd_attach.c), obd mount's too. */
struct cli_attach {
	const char *name, *svc;		/* device name (NULL: the first free obdN), service config */
	bool direct_io, no_verify, table_only;
	const char *up_data, *up_index;	/* a writable layer put on top (obd mount --upper) */
	bool quiet;			/* don't print /dev/mapper/NAME */
	char dev_name[128];		/* out: the name of the device made */
};
/* The device over args: layers (bottom first), a config.v1.json, or an image
 * reference. EXIT_OK or EXIT_FAIL (reported). */
int cli_attach(struct cli_attach *a, int nargs, char **args);

/* Compat entry points, dispatched on basename(argv[0]). */
int compat_overlaybd_create(int argc, char **argv);
int compat_overlaybd_commit(int argc, char **argv);
int compat_overlaybd_zfile(int argc, char **argv);

const struct cli_cmd *cli_find_cmd(const char *name);
/* Print the usage of cmd to f; used by -h (stdout) and usage errors (stderr). */
void cli_usage(const struct cli_cmd *cmd, FILE *f);
/* Report a usage error for cmd ("obd CMD: msg" + usage line); returns EXIT_USAGE. */
int cli_usage_err(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Print the full help of cmd on stdout; returns EXIT_OK. */
int cli_help(const char *cmd);

/* -------------------------------------------------------------------------
 * Errors: "obd: <file>: <what>" on stderr, control characters as '?'.
 * ------------------------------------------------------------------------- */
extern const char *cli_prog;	/* "obd" or the compat name */

void cli_err(const char *file, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void cli_warn(const char *file, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A core error: err->msg usually starts with the io name already. */
void cli_err_core(const char *file, int rc, const struct obd_err *err);
/* Copy s into buf (cap bytes) replacing control and non-ASCII bytes by '?'. */
const char *cli_sanitize(const char *s, char *buf, size_t cap);
/* The same, for a fixed-length field from an image (stops at NUL or len). */
void cli_sanitize_n(const u8 *s, size_t len, char *buf, size_t cap);

/* -------------------------------------------------------------------------
 * Option helpers
 * ------------------------------------------------------------------------- */
/* "4096", "0x1000", "64M", "10G", "1.5G" not accepted; K/M/G/T/P = 2^10.. */
int cli_parse_size(const char *s, u64 *out);
/* A UUID argument: validated, stored as the 36-char uppercase string. */
int cli_parse_uuid(const char *s, u8 out[OBD_UUID_STR_LEN]);
/* "lz4"/"zstd"; block size in KiB: 4, 8, 16, 32, 64 (stored in bytes). */
int cli_parse_algo(const char *s, u8 *algo);
int cli_parse_bs(const char *s, u32 *bs);
/* Create path (O_EXCL; with force, unlink first). Reports errors; fd or -1. */
int cli_open_output(const char *path, bool force);
/* A regular file of at most max bytes, NUL-terminated, in *buf (malloc'd). */
int cli_read_file(const char *path, u64 max, u8 **buf, u64 *len);
/* Both exist and are the same inode. */
bool cli_same_file(const char *a, const char *b);
/* "-" or NULL means stdin/stdout. */
bool cli_is_stdio(const char *path);

/* Progress: -1 = auto (stderr is a TTY), 0 = off, 1 = on. */
extern int cli_progress_mode;
#define CLI_OPT_PROGRESS	0x1000
#define CLI_OPT_NO_PROGRESS	0x1001
#define CLI_PROGRESS_OPTIONS \
	{ "progress", no_argument, NULL, CLI_OPT_PROGRESS }, \
	{ "no-progress", no_argument, NULL, CLI_OPT_NO_PROGRESS }

struct cli_progress {
	const char *what;
	u64 total, done;
	int last_permille;
	bool on;
};
void cli_progress_start(struct cli_progress *p, const char *what, u64 total);
void cli_progress_add(struct cli_progress *p, u64 n);
void cli_progress_end(struct cli_progress *p);

/* Full-length I/O helpers on fds; return 0 or -errno. */
/* Read up to len bytes (stops early only at EOF); returns bytes or -errno. */
ssize_t cli_read_upto(int fd, void *buf, size_t len);

/* -------------------------------------------------------------------------
 * Layer stacks
 * ------------------------------------------------------------------------- */
enum cli_layer_kind {
	CLI_KIND_COMMITTED,
	CLI_KIND_SEALED,
	CLI_KIND_RW_APPEND,
	CLI_KIND_RW_SPARSE,
};

const char *cli_kind_name(enum cli_layer_kind k);

struct cli_rw;		/* a writable layer, see cli_rw.c */
struct cli_remote;	/* a remote layer, see cli_remote.c */
struct cli_target;	/* a TurboOCI layer's target, see cli_target.c */

struct cli_layer {
	char *path;			/* display name (as given / from config) */
	char *index_path;		/* RW append: its index file */
	enum cli_layer_kind kind;
	struct obd_file_io fio;
	bool fio_open;
	struct obd_layer ro;		/* read-only layers */
	bool ro_open;
	struct cli_rw *rw;		/* writable layers */
	struct obd_lsmt_info info;
	const struct obd_map *maps;	/* sorted, non-overlapping, tags 0 */
	u64 nmaps;
	struct obd_io *stream;		/* moffset sectors are read from here */
	struct cli_remote *remote;	/* a remote layer (cli_remote.h), or NULL */
	struct cli_target *target;	/* a TurboOCI layer: target maps read here */
	char *target_token;		/* its dm table word: a tar's path, or remote:... */
};

struct cli_stack {
	struct cli_layer *layers;	/* [0] = bottom */
	unsigned int n;
	u64 vsize;
	struct obd_index idx;
	bool idx_built;
};

/* Flags for cli_stack_open. */
#define CLI_STACK_ALLOW_RW	0x1	/* a writable layer may be the top */
#define CLI_STACK_NO_MERGE	0x2	/* don't build the merged index */
#define CLI_STACK_NO_VERIFY	0x4	/* skip ZFile block CRCs on reads */
#define CLI_STACK_RW_NOT_HERE	0x8	/* internal: RW allowed, but only on top */
#define CLI_STACK_REMOTE	0x10	/* config lowers may be remote (digest only) */
#define CLI_STACK_TURBO		0x20	/* config lowers may be TurboOCI with a local targetFile */
					/* (and, with CLI_STACK_REMOTE, a targetDigest) */
#define CLI_STACK_KERNEL	0x40	/* for a dm table: every target a tar the kernel reads */

/*
 * Open the layers named by argv (bottom first; a RW append layer is
 * "DATA INDEX"), or a single config.v1.json. Reports errors itself.
 * Returns 0 or -errno.
 */
int cli_stack_open(struct cli_stack *s, int argc, char **argv, unsigned int flags);
/* The same with a writable layer (up_data, up_index NULL for a sparse one) put on
 * top of the layers or the config's lowers (a config with an upper refuses it). */
int cli_stack_open_upper(struct cli_stack *s, int argc, char **argv, unsigned int flags,
			 const char *up_data, const char *up_index);
u64 cli_stack_vsize(const struct cli_stack *s, unsigned int n);

/* mkdir -p dir, 0755 (the cache directory); errors reported naming the path. 0 or -errno. */
int cli_make_dirs(const char *dir);
void cli_stack_close(struct cli_stack *s);
/* Read nsect sectors of the merged disk at lba into buf. */
int cli_stack_read(struct cli_stack *s, void *buf, u64 lba, u64 nsect);

/* Open one layer file; kind detection, RO or RW. index_path may be NULL. */
int cli_layer_open(struct cli_layer *l, const char *path, const char *index_path,
		   unsigned int flags);
void cli_layer_close(struct cli_layer *l);
/* A read-only layer over a remote blob; takes r (closed with the layer). */
int cli_layer_open_remote(struct cli_layer *l, struct cli_remote *r, unsigned int flags);

/* A TurboOCI layer: the meta layer at path over target (gzidx NULL: a plain tar). */
int cli_layer_open_warp(struct cli_layer *l, const char *path, const char *target,
			const char *gzidx, unsigned int flags);
/*
 * The same over a target in the registry (repo_blob_url/digest), cached in
 * an ordinary blob entry; a gzip target (gzidx) also gets the gunzip entry
 * the kernel reads (CLI_STACK_KERNEL; cli_gunzip.h).
 */
int cli_layer_open_warp_remote(struct cli_layer *l, const char *path, const char *cfg,
			       const char *repo_blob_url, const char *digest, const char *gzidx,
			       unsigned int flags);

/* True if path looks like an image config (ends in .json or starts with '{'). */
bool cli_is_config(const char *path);

/*
 * Resolve a config.v1.json into layer file paths. *paths gets n entries
 * (bottom first, malloc'ed strings); an upper layer, if any, is appended
 * as data (and index) with *upper_index set to the index path.
 */
int cli_config_load(const char *path, char ***paths, unsigned int *n,
		    char **upper_data, char **upper_index);
/* The same, TurboOCI lowers accepted: (*targets)[i] / (*gzidx)[i] set for them. */
int cli_config_load_turbo(const char *path, char ***paths, unsigned int *n,
			  char **upper_data, char **upper_index, char ***targets, char ***gzidx);

/*
 * Given argv (positionals), split into layer specs: RW append data files
 * consume the next argument as their index. Peeks at headers.
 */
int cli_peek_kind(const char *path, enum cli_layer_kind *kind, bool *is_lsmt_raw);

/* -------------------------------------------------------------------------
 * Writable layers (wrapping lib/user/lsmt_write.h when it is built)
 * ------------------------------------------------------------------------- */
int cli_rw_open(struct cli_layer *l, const char *data, const char *index, bool writable);
void cli_rw_close(struct cli_layer *l);
/* A writable layer of virtual size 0 takes vsize (persisted): see obd_rw_set_vsize. */
int cli_rw_set_vsize(struct cli_layer *l, u64 vsize);
int cli_rw_write(struct cli_layer *l, const void *buf, u64 len, u64 off);
int cli_rw_discard(struct cli_layer *l, u64 off, u64 len);
int cli_rw_flush(struct cli_layer *l);
int cli_rw_seal(struct cli_layer *l);

/* obd commit of a writable (or sealed) layer to out, for build and convert. */
struct cli_commit_opts {
	bool zfile, tar;
	u8 algo;		/* OBD_ZFILE_ALGO_* */
	u32 bs;			/* ZFile block size, bytes */
	const char *msg;	/* user tag, or NULL */
};
int cli_commit(const char *data, const char *index, const char *out,
	       const struct cli_commit_opts *o);
int cli_rw_open_args(struct cli_layer *l, int argc, char **argv, int *used);
u64 cli_rw_vsize(const struct cli_layer *l);

/* -------------------------------------------------------------------------
 * Registry (push, remote layers in attach)
 * ------------------------------------------------------------------------- */
struct fetchd_config;
/* The service config (spec 5.6): path, or the default one if it exists. */
int cli_load_service_config(const char *path, struct fetchd_config *cfg);

#endif /* OBD_CLI_H */
