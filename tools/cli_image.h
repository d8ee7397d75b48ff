/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Making images through the kernel's writable upper (cli_image.c), for
 * obd build and obd convert: layer after layer, a fresh upper is attached
 * over an empty base and the layers committed so far, its file system is
 * changed, and the upper committed into OUT, an OCI image layout.
 */
#ifndef OBD_CLI_IMAGE_H
#define OBD_CLI_IMAGE_H

#include <limits.h>
#include <sys/types.h>

#include "cli.h"
#include "cli_oci.h"

struct img_work {
	const char *out;		/* absolute */
	u64 vsize;
	struct cli_commit_opts commit;
	char name[64];			/* the dm device */
	char work[PATH_MAX], base[PATH_MAX], data[PATH_MAX], index[PATH_MAX];
	char mnt[PATH_MAX], dev[PATH_MAX];
	struct oci_blob layers[OBD_MAX_LAYERS];	/* committed so far, bottom first */
	unsigned int n;
	bool attached, mounted;
};

/* "obd build" etc. in step lines and messages. */
extern const char *img_cmd;

/* Root and the module, else a message saying which is missing. */
int img_preflight(void);
/* OUT made if missing (an existing one must be empty), made absolute into buf. */
int img_prepare_out(const char *out, char buf[PATH_MAX]);
/* The work directory in OUT and the empty base layer. */
int img_begin(struct img_work *w, const char *out, u64 vsize,
	      const struct cli_commit_opts *commit);
/* A fresh upper over the base and the layers so far, attached and mounted
 * (mkfs.ext4 first when mkfs). */
int img_layer_begin(struct img_work *w, bool mkfs);
/* Unmount, remove the device (the upper flushed), commit it as layer n. */
int img_layer_end(struct img_work *w);
/* The image config, manifest, index.json, oci-layout and config.v1.json for
 * the layers; prints the layer digests and the manifest digest on one line. */
int img_write_layout(struct img_work *w, const char *tag);
/* Unmount, detach, remove the work files (whatever state w is in). */
void img_end(struct img_work *w);

/* Options both commands take: --size, -m, --algorithm, --bs, --no-zfile,
 * --no-tar, --tag, --help, --progress. */
#define IMG_OPT_ALGO	0x2101
#define IMG_OPT_BS	0x2102
#define IMG_OPT_NOZ	0x2103
#define IMG_OPT_NOTAR	0x2104
#define IMG_OPT_MINFREE	0x2105
#define IMG_OPTIONS \
	{ "size", required_argument, NULL, 's' }, \
	{ "algorithm", required_argument, NULL, IMG_OPT_ALGO }, \
	{ "bs", required_argument, NULL, IMG_OPT_BS }, \
	{ "no-zfile", no_argument, NULL, IMG_OPT_NOZ }, \
	{ "no-tar", no_argument, NULL, IMG_OPT_NOTAR }, \
	{ "min-free", required_argument, NULL, IMG_OPT_MINFREE }, \
	{ "message", required_argument, NULL, 'm' }, \
	{ "tag", required_argument, NULL, 'T' }, \
	{ "help", no_argument, NULL, 'h' }, \
	CLI_PROGRESS_OPTIONS
#define IMG_COMMIT_DEFAULTS { .zfile = true, .tar = true, .algo = OBD_ZFILE_ALGO_LZ4, .bs = 4096 }
struct img_opts {
	u64 vsize;
	struct cli_commit_opts commit;
	const char *tag;		/* ref name in index.json */
};
#define IMG_OPTS_DEFAULTS(size) { .vsize = (size), .tag = "latest", .commit = IMG_COMMIT_DEFAULTS }
/* One getopt result: 1 taken, -1 bad (reported), 0 not one of ours; -h prints help, 2. */
int img_parse_opt(const char *cmd, int opt, struct img_opts *o);

void img_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Start argv (PATH searched) with its stdout on out (-1: /dev/null), for
 * a caller that reads its output before img_wait(pid). 0, or -errno with
 * "cannot run" said.
 */
int img_spawn(char *const argv[], int out, pid_t *pid);
/* Wait for pid (EINTR retried), its wait status in *st: 0 or -errno. */
int img_wait(pid_t pid, int *st);
/* Run argv (PATH searched), stdout to /dev/null; 0 if it exits 0, else said why. */
int img_run(char *const argv[]);
int img_pathf(char buf[PATH_MAX], const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* path := text, fsync'ed (an OCI layout's files); errors reported. 0 or -errno. */
int cli_write_text(const char *path, const char *text);
/* A JSON document as a blob of the layout at out: *blob its digest and size. */
struct oci_blob;
int cli_store_json(const char *out, const char *text, struct oci_blob *blob);

#endif
