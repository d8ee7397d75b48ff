// SPDX-License-Identifier: GPL-2.0-only
/*
 * Images made through the kernel's writable upper (cli_image.h). Each
 * layer: a fresh append-mode upper over an empty base (a table needs a
 * layer under an upper; the base is not part of the image) and the layers
 * committed so far is attached read-write and mounted; the caller changes
 * the file system; it is unmounted, the device removed (which flushes the
 * upper), and the upper committed (ZFile + tar by default) straight into
 * OUT/blobs/sha256/. The OCI documents are the ones obd push uploads for
 * the same layers (cli_oci.c). Work files live in OUT/.obd-<cmd>-<pid>
 * and go on any outcome; a failure leaves OUT without an index.json.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_dm.h"
#include "cli_image.h"
#include "dm_table.h"
#include "env_user.h"
#include "lsmt_write.h"

extern char **environ;

const char *img_cmd = "build";

/* snprintf for paths: -ENAMETOOLONG instead of a cut path. */
int img_pathf(char buf[PATH_MAX], const char *fmt, ...)
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

void img_step(const char *fmt, ...)
{
	va_list ap;

	if (cli_progress_mode == 0 || (cli_progress_mode < 0 && !isatty(STDERR_FILENO)))
		return;
	fprintf(stderr, "obd %s: ", img_cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * The helpers (skopeo, tar, mkfs.ext4, cp) run as root: they are looked up
 * in the system's directories only, never through the caller's $PATH.
 */
static const char *const img_tool_dirs[] = {
	"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin",
};

static int img_tool_path(const char *name, char *out, size_t outlen)
{
	size_t i;

	if (strchr(name, '/')) {
		snprintf(out, outlen, "%s", name);
		return 0;
	}
	for (i = 0; i < sizeof(img_tool_dirs) / sizeof(img_tool_dirs[0]); i++) {
		if ((size_t)snprintf(out, outlen, "%s/%s", img_tool_dirs[i], name) >= outlen)
			continue;
		if (!access(out, X_OK))
			return 0;
	}
	cli_err(NULL, "cannot run %s: not found in /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin or /bin",
		name);
	return -ENOENT;
}

int img_spawn(char *const argv[], int out, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	char path[PATH_MAX];
	int rc;

	rc = img_tool_path(argv[0], path, sizeof(path));
	if (rc)
		return rc;

	posix_spawn_file_actions_init(&fa);
	if (out >= 0)
		posix_spawn_file_actions_adddup2(&fa, out, STDOUT_FILENO);
	else
		posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	rc = posix_spawn(pid, path, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		cli_err(NULL, "cannot run %s: %s", argv[0], strerror(rc));
		return -rc;
	}
	return 0;
}

int img_wait(pid_t pid, int *st)
{
	while (waitpid(pid, st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/*
 * What img_run keeps free on OUT's file system while a tool writes into the
 * image: the image's upper lives in OUT, so a layer that expands far past
 * its compressed size (a decompression bomb: gigabytes of zeros in a few
 * KiB of gzip) or a --size larger than the disk would otherwise fill that
 * file system before the image's own file system is full. --min-free
 * SIZE; by default 5 % of the file system, at least 64 MiB, at most 1 GiB.
 */
static const char *img_watch_dir;
static const char *img_watch_mnt;	/* the image's file system, while mounted */
static u64 img_min_free;
static bool img_min_free_set;

#define IMG_WATCH_US	100000	/* a tool writes at most a few 100 MB between looks */

static u64 img_reserve(const struct statvfs *fs)
{
	u64 r = (u64)fs->f_blocks * fs->f_frsize / 20;

	if (img_min_free_set)
		return img_min_free;
	return r < (64ULL << 20) ? 64ULL << 20 : r > (1ULL << 30) ? 1ULL << 30 : r;
}

/* Bytes the page cache holds dirty or under writeback (all devices), 0 if unknown. */
static u64 img_dirty_bytes(void)
{
	unsigned long long kb, sum = 0;
	char line[128];
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Dirty: %llu kB", &kb) == 1 ||
		    sscanf(line, "Writeback: %llu kB", &kb) == 1)
			sum += kb;
	fclose(f);
	return (u64)sum << 10;
}

/*
 * Dirty pages of the image's file system still have to land in the upper,
 * in OUT: where they could take OUT below the reserve, write them now
 * (syncfs of the image's file system) so that the free space looked at
 * is the real one. The kernel holds the device's dirty share to 1 % only
 * where its bdi can be strictly limited (6.2 on); before, a few hundred
 * MiB may be dirty when the tool is stopped.
 */
static bool img_settle(u64 avail, u64 reserve)
{
	int fd;

	if (!img_watch_mnt || avail >= reserve + img_dirty_bytes())
		return false;
	fd = open(img_watch_mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	syncfs(fd);
	close(fd);
	return true;
}

/* 0 while OUT's file system has more than the reserve free, else -ENOSPC (said). */
static int img_space_check(const char *tool)
{
	struct statvfs fs;
	u64 avail, reserve;

	if (!img_watch_dir || statvfs(img_watch_dir, &fs))
		return 0;
	avail = (u64)fs.f_bavail * fs.f_frsize;
	reserve = img_reserve(&fs);
	if (img_settle(avail, reserve)) {	/* written out: look again */
		if (statvfs(img_watch_dir, &fs))
			return 0;
		avail = (u64)fs.f_bavail * fs.f_frsize;
	}
	if (avail >= reserve)
		return 0;
	cli_err(img_watch_dir, "%s stopped: %llu MiB left on this file system, less than the %llu MiB kept free (--min-free); a layer that expands far past its size, or a --size larger than the disk",
		tool, (unsigned long long)(avail >> 20), (unsigned long long)(reserve >> 20));
	return -ENOSPC;
}

/* Wait for pid, killing it once OUT's file system runs short (img_space_check). */
static int img_wait_watched(pid_t pid, int *st, const char *tool)
{
	int rc;

	for (;;) {
		pid_t r = waitpid(pid, st, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		rc = img_space_check(tool);
		if (rc) {
			kill(pid, SIGKILL);
			img_wait(pid, st);
			return rc;
		}
		usleep(IMG_WATCH_US);
	}
}

int img_run(char *const argv[])
{
	int st, rc;
	pid_t pid;

	rc = img_space_check(argv[0]);
	if (!rc)
		rc = img_spawn(argv, -1, &pid);
	if (!rc)
		rc = img_wait_watched(pid, &st, argv[0]);
	if (rc)
		return rc;
	if (WIFEXITED(st) && !WEXITSTATUS(st))
		return 0;
	if (WIFEXITED(st))
		cli_err(NULL, "%s failed (exit status %d)", argv[0], WEXITSTATUS(st));
	else
		cli_err(NULL, "%s killed by signal %d", argv[0], WTERMSIG(st));
	return -EIO;
}

int cli_write_text(const char *path, const char *text)
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
static int prepare_dir(const char *out)
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

/* The blob file into blobs/sha256/<hex>; *blob gets its digest and size. */
static int store_layer(const char *out, const char *tmp, struct oci_blob *blob)
{
	char path[PATH_MAX];
	int rc = oci_digest_path(tmp, blob);

	if (rc)
		return rc;
	if (img_pathf(path, "%s/blobs/sha256/%s", out, blob->digest + 7))
		return -ENAMETOOLONG;
	if (rename(tmp, path)) {
		cli_err(path, "rename: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* A JSON document into blobs/sha256/<hex>; its digest and size for descriptors. */
int cli_store_json(const char *out, const char *text, struct oci_blob *blob)
{
	char path[PATH_MAX];
	int rc = oci_digest_buf(text, strlen(text), blob->digest);

	if (rc)
		return rc;
	blob->size = strlen(text);
	if (img_pathf(path, "%s/blobs/sha256/%s", out, blob->digest + 7))
		return -ENAMETOOLONG;
	return cli_write_text(path, text);
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
	rc = img_pathf(path, "%s/index.json", out);
	if (!rc)
		rc = cli_write_text(path, oci_text(o));
	json_object_put(o);
	return rc;
}

static int mkdir_blobs(const char *out)
{
	char path[PATH_MAX];

	if (img_pathf(path, "%s/blobs", out) || (mkdir(path, 0755) && errno != EEXIST))
		goto fail;
	if (img_pathf(path, "%s/blobs/sha256", out) || (mkdir(path, 0755) && errno != EEXIST))
		goto fail;
	return 0;
fail:
	cli_err(path, "mkdir: %s", strerror(errno));
	return -errno;
}

int img_parse_opt(const char *cmd, int opt, struct img_opts *o)
{
	struct cli_commit_opts *c = &o->commit;

	switch (opt) {
	case 's':
		if (cli_parse_size(optarg, &o->vsize) || !o->vsize || o->vsize % 4096) {
			cli_usage_err(cmd, "bad --size '%s' (a multiple of 4096)", optarg);
			return -1;
		}
		return 1;
	case IMG_OPT_ALGO:
		if (cli_parse_algo(optarg, &c->algo)) {
			cli_usage_err(cmd, "bad --algorithm '%s'", optarg);
			return -1;
		}
		return 1;
	case IMG_OPT_BS:
		if (cli_parse_bs(optarg, &c->bs)) {
			cli_usage_err(cmd, "bad --bs '%s'", optarg);
			return -1;
		}
		return 1;
	case IMG_OPT_NOZ: c->zfile = false; return 1;
	case IMG_OPT_NOTAR: c->tar = false; return 1;
	case IMG_OPT_MINFREE:
		if (cli_parse_size(optarg, &img_min_free)) {
			cli_usage_err(cmd, "bad --min-free '%s'", optarg);
			return -1;
		}
		img_min_free_set = true;
		return 1;
	case 'm': c->msg = optarg; return 1;
	case 'T': o->tag = optarg; return 1;
	case 'h': cli_help(cmd); return 2;
	case CLI_OPT_PROGRESS: cli_progress_mode = 1; return 1;
	case CLI_OPT_NO_PROGRESS: cli_progress_mode = 0; return 1;
	}
	cli_usage_err(cmd, "bad option");
	return 0;
}

int img_prepare_out(const char *out, char buf[PATH_MAX])
{
	if (prepare_dir(out))
		return -EEXIST;
	/* the table names files by absolute path */
	if (!realpath(out, buf)) {
		cli_err(out, "%s", strerror(errno));
		return -errno;
	}
	return 0;
}

int img_preflight(void)
{
	if (geteuid()) {
		cli_err(NULL, "obd %s needs root: it attaches a device-mapper device and mounts it",
			img_cmd);
		return -EPERM;
	}
	if (cli_dm_init())
		return -ENODEV;
	if (!cli_dm_target_loaded(OBD_DM_TARGET)) {
		cli_err(NULL, "obd %s needs the dm-overlaybd module (target '%s' not available: modprobe dm-overlaybd)",
			img_cmd, OBD_DM_TARGET);
		return -ENODEV;
	}
	return 0;
}

int img_begin(struct img_work *w, const char *out, u64 vsize,
	      const struct cli_commit_opts *commit)
{
	int pid = (int)getpid();

	memset(w, 0, sizeof(*w));
	w->out = out;
	img_watch_dir = out;
	w->vsize = vsize;
	w->commit = *commit;
	snprintf(w->name, sizeof(w->name), "obd-%s-%d", img_cmd, pid);
	snprintf(w->dev, sizeof(w->dev), "/dev/mapper/%s", w->name);
	if (img_pathf(w->work, "%s/.obd-%s-%d", out, img_cmd, pid) ||
	    img_pathf(w->base, "%s/base.commit", w->work) ||
	    img_pathf(w->data, "%s/upper.data", w->work) ||
	    img_pathf(w->index, "%s/upper.index", w->work) ||
	    img_pathf(w->mnt, "%s/mnt", w->work))
		return -ENAMETOOLONG;
	if (mkdir(w->work, 0700) || mkdir(w->mnt, 0700)) {
		cli_err(w->work, "mkdir: %s", strerror(errno));
		return -errno;
	}
	if (mkdir_blobs(out))
		return -EIO;
	return make_base(w->base, vsize);
}

/* "<n+1> base L1 .. Ln 3 upper D I" */
static char *layer_table(const struct img_work *w)
{
	size_t cap = 4 * (strlen(w->base) + strlen(w->data) + strlen(w->index)) + 64;
	size_t len, lcap = strlen(w->out) + OBD_DIGEST_STR_LEN + 16;
	unsigned int i;
	char *p, *l;

	cap += (size_t)w->n * 4 * lcap;
	p = malloc(cap);
	l = malloc(lcap);
	if (!p || !l) {
		free(p);
		free(l);
		return NULL;
	}
	len = (size_t)sprintf(p, "%u", w->n + 1);
	len += obd_table_word(p + len, w->base);
	for (i = 0; i < w->n; i++) {
		snprintf(l, lcap, "%s/blobs/sha256/%s", w->out, w->layers[i].digest + 7);
		len += obd_table_word(p + len, l);
	}
	len += (size_t)sprintf(p + len, " 3 upper");
	len += obd_table_word(p + len, w->data);
	obd_table_word(p + len, w->index);
	free(l);
	return p;
}

/*
 * The page cache may hold a fifth of RAM dirty for one device, and writeback
 * then lands it in the upper (in OUT) in one burst, faster than
 * img_space_check looks: a device's share of dirty pages is held to 1 %
 * (its bdi's max_ratio, strict from 6.2 on), so writes reach OUT as they
 * are made and a stopped tool leaves little behind; img_settle covers the
 * kernels without strict_limit. Best effort (nothing to do without sysfs).
 */
static void img_bdi_set(const struct stat *st, const char *knob)
{
	char path[96];
	int fd;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/bdi/%s", major(st->st_rdev),
		 minor(st->st_rdev), knob);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, "1", 1) != 1)
		cli_err(path, "cannot limit the device's dirty pages: %s", strerror(errno));
	close(fd);
}

/* max_ratio alone binds only past the global "freerun" point; strict_limit
 * (6.2 on) makes it bind always. */
static void img_limit_dirty(const char *dev)
{
	struct stat st;

	if (stat(dev, &st) || !S_ISBLK(st.st_mode))
		return;
	img_bdi_set(&st, "max_ratio");
	img_bdi_set(&st, "strict_limit");
}

int img_layer_begin(struct img_work *w, bool mkfs)
{
	/* the device reads zeros: no discard, no zeroing of tables or journal */
	char *mkfs_argv[] = { "mkfs.ext4", "-q", "-F", "-E",
			      "nodiscard,lazy_itable_init=1,lazy_journal_init=1", w->dev, NULL };
	struct obd_rw_layer l;
	struct obd_err err = { "" };
	char *params;
	int rc;

	if (w->n + 1 >= OBD_MAX_LAYERS) {
		cli_err(NULL, "more than %d layers", OBD_MAX_LAYERS - 1);
		return -E2BIG;
	}
	rc = obd_rw_create(&l, w->data, w->index, w->vsize, NULL, false, &err);
	if (!rc)
		rc = obd_rw_close(&l, &err);
	if (rc) {
		cli_err_core(w->data, rc, &err);
		return rc;
	}
	params = layer_table(w);
	if (!params)
		return -ENOMEM;
	rc = cli_dm_create(w->name, w->vsize >> OBD_SECTOR_SHIFT, params, false);
	free(params);
	if (rc) {
		cli_err(w->name, "cannot create the device: %s (see dmesg)", cli_dm_last_error());
		return rc;
	}
	w->attached = true;
	img_limit_dirty(w->dev);
	if (mkfs) {
		img_step("mkfs.ext4");
		rc = img_run(mkfs_argv);
		if (rc)
			return rc;
	}
	if (mount(w->dev, w->mnt, "ext4", 0, "")) {
		cli_err(w->dev, "mount on %s: %s", w->mnt, strerror(errno));
		return -errno;
	}
	w->mounted = true;
	img_watch_mnt = w->mnt;
	return 0;
}

int img_layer_end(struct img_work *w)
{
	char tmp[PATH_MAX];
	int rc;

	img_watch_mnt = NULL;
	if (umount(w->mnt)) {
		cli_err(w->mnt, "umount: %s", strerror(errno));
		return -errno;
	}
	w->mounted = false;
	if (cli_dm_remove(w->name)) {
		cli_err(w->name, "cannot remove the device: %s", cli_dm_last_error());
		return -EIO;
	}
	w->attached = false;
	if (img_pathf(tmp, "%s/layer.tmp", w->work))
		return -ENAMETOOLONG;
	img_step("commit of layer %u", w->n + 1);
	if (cli_commit(w->data, w->index, tmp, &w->commit))
		return -EIO;
	rc = store_layer(w->out, tmp, &w->layers[w->n]);
	if (rc) {
		unlink(tmp);
		return rc;
	}
	w->n++;
	unlink(w->data);
	unlink(w->index);
	return 0;
}

/* config.v1.json: the blobs as local lowers (spec 5.2 "file"). */
static int write_attach_config(const struct img_work *w)
{
	json_object *o = json_object_new_object(), *lowers = json_object_new_array();
	char path[PATH_MAX];
	unsigned int i;
	int rc = 0;

	json_object_object_add(o, "lowers", lowers);
	for (i = 0; i < w->n && !rc; i++) {
		json_object *l = json_object_new_object();

		json_object_array_add(lowers, l);
		rc = img_pathf(path, "%s/blobs/sha256/%s", w->out, w->layers[i].digest + 7);
		json_object_object_add(l, "file", json_object_new_string(path));
		json_object_object_add(l, "digest", json_object_new_string(w->layers[i].digest));
		json_object_object_add(l, "size", json_object_new_int64((int64_t)w->layers[i].size));
	}
	json_object_object_add(o, "resultFile", json_object_new_string(""));
	if (!rc)
		rc = img_pathf(path, "%s/config.v1.json", w->out);
	if (!rc)
		rc = cli_write_text(path, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
					JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return rc;
}

int img_write_layout(struct img_work *w, const char *tag)
{
	struct oci_blob cfg, man;
	char path[PATH_MAX];
	json_object *c, *m;
	int rc;

	c = oci_image_config(w->layers, (int)w->n);
	rc = cli_store_json(w->out, oci_text(c), &cfg);
	json_object_put(c);
	if (rc)
		return rc;
	m = oci_manifest(w->layers, (int)w->n, cfg.digest, cfg.size);
	rc = cli_store_json(w->out, oci_text(m), &man);
	json_object_put(m);
	if (!rc)
		rc = img_pathf(path, "%s/oci-layout", w->out);
	if (!rc)
		rc = cli_write_text(path, "{\"imageLayoutVersion\":\"1.0.0\"}");
	if (!rc)
		rc = write_attach_config(w);
	if (!rc)	/* last: an index.json means a whole image */
		rc = write_index(w->out, &man, tag);
	if (!rc) {
		for (unsigned int i = 0; i < w->n; i++)
			printf("%s ", w->layers[i].digest);
		printf("%s\n", man.digest);
	}
	return rc;
}

void img_end(struct img_work *w)
{
	char tmp[PATH_MAX];

	img_watch_mnt = NULL;
	if (w->mounted && umount(w->mnt))
		cli_err(w->mnt, "umount: %s (left mounted)", strerror(errno));
	else if (w->attached && cli_dm_remove(w->name))
		cli_err(w->name, "cannot remove the device: %s", cli_dm_last_error());
	unlink(w->base);
	unlink(w->data);
	unlink(w->index);
	if (!img_pathf(tmp, "%s/layer.tmp", w->work))
		unlink(tmp);
	rmdir(w->mnt);
	rmdir(w->work);
}
