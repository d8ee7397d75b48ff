// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd build DIR OUT/: an overlaybd image of a directory tree, made through
 * the kernel's writable upper (issue #9): a fresh upper over an empty base
 * is attached, mkfs.ext4 runs on the device, the tree is copied in with
 * cp -a (owners, modes, times, xattrs, hard links, symlinks, device
 * nodes), the file system is unmounted and the device removed (the upper
 * flushed), and the upper is committed (ZFile + tar by default) into OUT,
 * an OCI image layout: the layer blob, the image config and manifest that
 * obd push uploads for the same layer (cli_oci.c), index.json, and
 * config.v1.json with the blob as a local lower for obd attach.
 *
 * The empty base exists only for the build (a table needs a layer under
 * an upper); the image is the one committed layer, which carries the
 * virtual size. Work files live in OUT/.obd-build-<pid> and go on any
 * outcome; a failure leaves OUT without an index.json.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "cli_dm.h"
#include "cli_oci.h"
#include "env_user.h"
#include "lsmt_write.h"

#define BUILD_DEFAULT_SIZE	(64ULL << 30)	/* the reference's default vsize */

extern char **environ;

struct build {
	const char *src, *out;
	u64 vsize;
	struct cli_commit_opts commit;
	const char *tag;
	char name[64];			/* the dm device */
	char work[PATH_MAX], base[PATH_MAX], data[PATH_MAX], index[PATH_MAX], mnt[PATH_MAX];
	char dev[PATH_MAX];
	bool attached, mounted;
};

/* snprintf for paths: -ENAMETOOLONG instead of a cut path. */
static int __attribute__((format(printf, 2, 3))) pathf(char buf[PATH_MAX], const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX) {
		cli_err(buf, "path too long");
		return -ENAMETOOLONG;
	}
	return 0;
}

static void step(const char *what)
{
	if (cli_progress_mode == 1 || (cli_progress_mode < 0 && isatty(STDERR_FILENO)))
		fprintf(stderr, "obd build: %s\n", what);
}

/* Run argv (PATH searched), stdout to /dev/null; 0 if it exits 0. */
static int run(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	int st, rc;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		cli_err(NULL, "cannot run %s: %s", argv[0], strerror(rc));
		return -rc;
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(st) && !WEXITSTATUS(st))
		return 0;
	if (WIFEXITED(st))
		cli_err(NULL, "%s failed (exit status %d)", argv[0], WEXITSTATUS(st));
	else
		cli_err(NULL, "%s killed by signal %d", argv[0], WTERMSIG(st));
	return -EIO;
}

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = fd < 0 ? -errno : obd_pwrite_all(fd, text, strlen(text), 0);

	if (!rc && fsync(fd))
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (rc)
		cli_err(path, "write: %s", strerror(-rc));
	return rc;
}

/* OUT: made if missing; an existing one must be an empty directory. */
static int prepare_out(const char *out)
{
	struct dirent *e;
	DIR *d;

	if (!mkdir(out, 0755))
		return 0;
	if (errno != EEXIST) {
		cli_err(out, "mkdir: %s", strerror(errno));
		return -errno;
	}
	d = opendir(out);
	if (!d) {
		cli_err(out, "%s", strerror(errno));
		return -errno;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			break;
	closedir(d);
	if (e) {
		cli_err(out, "exists and is not empty");
		return -EEXIST;
	}
	return 0;
}

static int never_read(void *ctx, u8 tag, void *buf, size_t len, u64 off)
{
	return -EIO;
}

/* A committed layer with no data and the image's virtual size. */
static int make_base(const char *path, u64 vsize)
{
	struct obd_commit_opts o = { .vsize = vsize };
	struct obd_err err = { "" };
	int fd = cli_open_output(path, false), rc;

	if (fd < 0)
		return -EIO;
	rc = obd_lsmt_commit(NULL, 0, &o, never_read, NULL, obd_fd_sink, &fd, NULL, &err);
	close(fd);
	if (rc)
		cli_err_core(path, rc, &err);
	return rc;
}

static int attach_upper(struct build *b)
{
	struct obd_rw_layer l;
	struct obd_err err = { "" };
	char *params;
	int rc;

	rc = make_base(b->base, b->vsize);
	if (rc)
		return rc;
	rc = obd_rw_create(&l, b->data, b->index, b->vsize, NULL, false, &err);
	if (!rc)
		rc = obd_rw_close(&l, &err);
	if (rc) {
		cli_err_core(b->data, rc, &err);
		return rc;
	}
	if (asprintf(&params, "1 %s 3 upper %s %s", b->base, b->data, b->index) < 0)
		return -ENOMEM;
	rc = cli_dm_create(b->name, b->vsize >> OBD_SECTOR_SHIFT, params, false);
	free(params);
	if (rc) {
		cli_err(b->name, "cannot create the build device: %s (see dmesg)", cli_dm_last_error());
		return rc;
	}
	b->attached = true;
	snprintf(b->dev, sizeof(b->dev), "/dev/mapper/%s", b->name);
	return 0;
}

static int fill(struct build *b)
{
	char src[PATH_MAX + 2], dst[PATH_MAX + 2];
	/* the device reads zeros: no discard, no zeroing of tables or journal */
	char *mkfs[] = { "mkfs.ext4", "-q", "-F", "-E",
			 "nodiscard,lazy_itable_init=1,lazy_journal_init=1", b->dev, NULL };
	char *cp[] = { "cp", "-a", src, dst, NULL };
	int rc;

	step("mkfs.ext4");
	rc = run(mkfs);
	if (rc)
		return rc;
	if (mkdir(b->mnt, 0700) || mount(b->dev, b->mnt, "ext4", 0, "")) {
		cli_err(b->dev, "mount on %s: %s", b->mnt, strerror(errno));
		return -errno;
	}
	b->mounted = true;
	/* DIR/. into the root: the root takes DIR's owner, mode and times too */
	snprintf(src, sizeof(src), "%s/.", b->src);
	snprintf(dst, sizeof(dst), "%s/", b->mnt);
	step("copying the tree (cp -a)");
	rc = run(cp);
	if (rc)
		return rc;
	step("unmounting");
	if (umount(b->mnt)) {
		cli_err(b->mnt, "umount: %s", strerror(errno));
		return -errno;
	}
	b->mounted = false;
	/* removing the device flushes the upper */
	if (cli_dm_remove(b->name)) {
		cli_err(b->name, "cannot remove the build device: %s", cli_dm_last_error());
		return -EIO;
	}
	b->attached = false;
	return 0;
}

static void cleanup(struct build *b)
{
	if (b->mounted && umount(b->mnt))
		cli_err(b->mnt, "umount: %s (left mounted)", strerror(errno));
	else if (b->attached && cli_dm_remove(b->name))
		cli_err(b->name, "cannot remove the build device: %s", cli_dm_last_error());
	unlink(b->base);
	unlink(b->data);
	unlink(b->index);
	rmdir(b->mnt);
	rmdir(b->work);
}

/* The blob file into blobs/sha256/<hex>; *blob gets its digest and size. */
static int store_layer(const char *out, const char *tmp, struct oci_blob *blob)
{
	char path[PATH_MAX];
	int fd = open(tmp, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0) {
		cli_err(tmp, "%s", strerror(errno));
		return -errno;
	}
	rc = oci_digest_fd(fd, tmp, blob);
	close(fd);
	if (rc)
		return rc;
	if (pathf(path, "%s/blobs/sha256/%s", out, blob->digest + 7))
		return -ENAMETOOLONG;
	if (rename(tmp, path)) {
		cli_err(path, "rename: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* A JSON document into blobs/sha256/<hex>; its digest and size for descriptors. */
static int store_json(const char *out, const char *text, struct oci_blob *blob)
{
	char path[PATH_MAX];
	int rc = oci_digest_buf(text, strlen(text), blob->digest);

	if (rc)
		return rc;
	blob->size = strlen(text);
	if (pathf(path, "%s/blobs/sha256/%s", out, blob->digest + 7))
		return -ENAMETOOLONG;
	return write_text(path, text);
}

static int write_index(const char *out, const struct oci_blob *man, const char *tag)
{
	json_object *o = json_object_new_object(), *ms = json_object_new_array();
	json_object *d = oci_descriptor(OCI_MT_MANIFEST, man->digest, man->size);
	json_object *a = json_object_new_object();
	char path[PATH_MAX];
	int rc;

	json_object_object_add(a, "org.opencontainers.image.ref.name", json_object_new_string(tag));
	json_object_object_add(d, "annotations", a);
	json_object_array_add(ms, d);
	json_object_object_add(o, "schemaVersion", json_object_new_int(2));
	json_object_object_add(o, "manifests", ms);
	rc = pathf(path, "%s/index.json", out);
	if (!rc)
		rc = write_text(path, oci_text(o));
	json_object_put(o);
	return rc;
}

/* config.v1.json: the blob as a local lower (spec 5.2 "file"). */
static int write_attach_config(const char *out, const struct oci_blob *layer)
{
	json_object *o = json_object_new_object(), *lowers = json_object_new_array();
	json_object *l = json_object_new_object();
	char path[PATH_MAX], abs[PATH_MAX];
	int rc;

	if (!realpath(out, abs)) {
		cli_err(out, "%s", strerror(errno));
		json_object_put(o);
		return -errno;
	}
	if (pathf(path, "%s/blobs/sha256/%s", abs, layer->digest + 7)) {
		json_object_put(o);
		json_object_put(lowers);
		json_object_put(l);
		return -ENAMETOOLONG;
	}
	json_object_object_add(l, "file", json_object_new_string(path));
	json_object_object_add(l, "digest", json_object_new_string(layer->digest));
	json_object_object_add(l, "size", json_object_new_int64((int64_t)layer->size));
	json_object_array_add(lowers, l);
	json_object_object_add(o, "lowers", lowers);
	json_object_object_add(o, "resultFile", json_object_new_string(""));
	rc = pathf(path, "%s/config.v1.json", out);
	if (!rc)
		rc = write_text(path, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
					JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return rc;
}

static int mkdir_blobs(const char *out)
{
	char path[PATH_MAX];

	if (pathf(path, "%s/blobs", out) || (mkdir(path, 0755) && errno != EEXIST))
		goto fail;
	if (pathf(path, "%s/blobs/sha256", out) || (mkdir(path, 0755) && errno != EEXIST))
		goto fail;
	return 0;
fail:
	cli_err(path, "mkdir: %s", strerror(errno));
	return -errno;
}

static int write_image(struct build *b)
{
	struct oci_blob layer, cfg, man;
	char path[PATH_MAX], tmp[PATH_MAX];
	json_object *c, *m;
	int rc;

	if (pathf(tmp, "%s/layer.tmp", b->work))
		return -ENAMETOOLONG;
	step("commit");
	if (mkdir_blobs(b->out) || cli_commit(b->data, b->index, tmp, &b->commit))
		return -EIO;
	rc = store_layer(b->out, tmp, &layer);
	if (rc) {
		unlink(tmp);
		return rc;
	}
	c = oci_image_config(&layer, 1);
	rc = store_json(b->out, oci_text(c), &cfg);
	json_object_put(c);
	if (rc)
		return rc;
	m = oci_manifest(&layer, 1, cfg.digest, cfg.size);
	rc = store_json(b->out, oci_text(m), &man);
	json_object_put(m);
	if (!rc)
		rc = pathf(path, "%s/oci-layout", b->out);
	if (!rc)
		rc = write_text(path, "{\"imageLayoutVersion\":\"1.0.0\"}");
	if (!rc)
		rc = write_attach_config(b->out, &layer);
	if (!rc)	/* last: an index.json means a whole image */
		rc = write_index(b->out, &man, b->tag);
	if (!rc)
		printf("%s %s\n", layer.digest, man.digest);
	return rc;
}

static int preflight(const struct build *b)
{
	struct stat st;

	if (geteuid()) {
		cli_err(NULL, "obd build needs root: it attaches a device-mapper device and mounts it");
		return -EPERM;
	}
	if (stat(b->src, &st) || !S_ISDIR(st.st_mode)) {
		cli_err(b->src, "not a directory");
		return -ENOTDIR;
	}
	if (cli_dm_init())
		return -ENODEV;
	if (!cli_dm_target_loaded(OBD_DM_TARGET)) {
		cli_err(NULL, "obd build needs the dm-overlaybd module (target '%s' not available: modprobe dm-overlaybd)",
			OBD_DM_TARGET);
		return -ENODEV;
	}
	return 0;
}

#define OPT_ALGO	0x2001
#define OPT_BS		0x2002
#define OPT_NOZ		0x2003
#define OPT_NOTAR	0x2004

int cmd_build(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "algorithm", required_argument, NULL, OPT_ALGO },
		{ "bs", required_argument, NULL, OPT_BS },
		{ "no-zfile", no_argument, NULL, OPT_NOZ },
		{ "no-tar", no_argument, NULL, OPT_NOTAR },
		{ "message", required_argument, NULL, 'm' },
		{ "tag", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		CLI_PROGRESS_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct build b = { .vsize = BUILD_DEFAULT_SIZE, .tag = "latest",
			   .commit = { .zfile = true, .tar = true, .algo = OBD_ZFILE_ALGO_LZ4,
				       .bs = 4096 } };
	char outabs[PATH_MAX];
	int opt, rc;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "s:m:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (cli_parse_size(optarg, &b.vsize) || !b.vsize || b.vsize % 4096)
				return cli_usage_err("build", "bad --size '%s' (a multiple of 4096)",
						     optarg);
			break;
		case OPT_ALGO:
			if (cli_parse_algo(optarg, &b.commit.algo))
				return cli_usage_err("build", "bad --algorithm '%s'", optarg);
			break;
		case OPT_BS:
			if (cli_parse_bs(optarg, &b.commit.bs))
				return cli_usage_err("build", "bad --bs '%s'", optarg);
			break;
		case OPT_NOZ: b.commit.zfile = false; break;
		case OPT_NOTAR: b.commit.tar = false; break;
		case 'm': b.commit.msg = optarg; break;
		case 'T': b.tag = optarg; break;
		case CLI_OPT_PROGRESS: cli_progress_mode = 1; break;
		case CLI_OPT_NO_PROGRESS: cli_progress_mode = 0; break;
		case 'h': return cli_help("build");
		default: return cli_usage_err("build", "bad option");
		}
	}
	if (argc - optind != 2)
		return cli_usage_err("build", "expected DIR OUT");
	b.src = argv[optind];
	b.out = argv[optind + 1];
	if (preflight(&b) || prepare_out(b.out))
		return EXIT_FAIL;
	/* the table names files by absolute path */
	if (!realpath(b.out, outabs)) {
		cli_err(b.out, "%s", strerror(errno));
		return EXIT_FAIL;
	}
	b.out = outabs;
	snprintf(b.name, sizeof(b.name), "obd-build-%d", (int)getpid());
	if (pathf(b.work, "%s/.obd-build-%d", b.out, (int)getpid()) ||
	    pathf(b.base, "%s/base.commit", b.work) || pathf(b.data, "%s/upper.data", b.work) ||
	    pathf(b.index, "%s/upper.index", b.work) || pathf(b.mnt, "%s/mnt", b.work))
		return EXIT_FAIL;
	if (mkdir(b.work, 0700)) {
		cli_err(b.work, "mkdir: %s", strerror(errno));
		return EXIT_FAIL;
	}
	rc = attach_upper(&b);
	if (!rc)
		rc = fill(&b);
	if (!rc)
		rc = write_image(&b);
	cleanup(&b);
	return rc ? EXIT_FAIL : EXIT_OK;
}
