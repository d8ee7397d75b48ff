// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd mount / obd umount: an image as a file system, in one command.
 *
 * mount attaches IMAGE as obd attach does (layers, a config.v1.json or a
 * registry REF; with --upper a writable layer on top), finds the file system
 * on the device by its superblock (ext4, xfs, erofs: the kinds the reference's
 * snapshotter mounts) and mounts it at DIR:
 *   - read-only by default;
 *   - read-write with --upper DATA [INDEX] (the device itself is writable;
 *     refused for erofs, a read-only file system);
 *   - with --rw RWDIR, an overlayfs over the read-only mount (kept under the
 *     state directory) with RWDIR/fs as its upper and RWDIR/work as its work
 *     directory: the snapshotter's overlayfs mode, a container's rootfs.
 * What mount made is recorded in <state dir>/<device>.mount before it is
 * made, so that umount undoes exactly that (also after a failure half way)
 * and refuses a mount point obd did not make.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "cli.h"
#include "cli_dm.h"
#include "cli_prefetch.h"
#include "durable.h"

#define MOUNT_STATE_DIR		"/run/overlaybd/mounts"
#define OBD_OVERLAYFS_MAGIC	0x794c7630	/* linux/magic.h OVERLAYFS_SUPER_MAGIC */

enum mount_mode { MOUNT_RO, MOUNT_UPPER, MOUNT_OVERLAY };
static const char *const mode_names[] = { "ro", "upper", "rw" };

/* What one obd mount made: the record in <state dir>/<device>.mount. */
struct mount_rec {
	char target[PATH_MAX];		/* the mount point, absolute */
	char device[128];		/* the dm device's name */
	enum mount_mode mode;
	char fstype[16];
	char lower[PATH_MAX];		/* MOUNT_OVERLAY: the read-only mount below */
};

static const char *state_dir(void)
{
	const char *d = getenv("OBD_MOUNT_STATE_DIR");	/* tests */

	return d && *d ? d : MOUNT_STATE_DIR;
}

static int rec_path(char *buf, size_t len, const char *device, const char *suffix)
{
	int n = snprintf(buf, len, "%s/%s%s", state_dir(), device, suffix);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Write the record durably and atomically (lib/user/durable.c). */
static int rec_write(const struct mount_rec *r)
{
	char path[PATH_MAX], *text = NULL;
	int rc, n;

	rc = cli_make_dirs(state_dir());
	if (rc)
		return rc;
	if (rec_path(path, sizeof(path), r->device, ".mount"))
		return -ENAMETOOLONG;
	n = asprintf(&text, "target=%s\ndevice=%s\nmode=%s\nfstype=%s\nlower=%s\n", r->target,
		     r->device, mode_names[r->mode], r->fstype, r->lower);
	if (n < 0)
		return -ENOMEM;
	rc = obd_replace_file(path, text, (size_t)n, 0644);
	if (rc)
		cli_err(path, "cannot write the mount record: %s", strerror(-rc));
	free(text);
	return rc;
}

static int rec_field(char *dst, size_t len, const char *val)
{
	size_t n = strlen(val);

	if (n >= len)
		return -EINVAL;
	memcpy(dst, val, n + 1);
	return 0;
}

/* Parse one record; -EINVAL for anything that is not one of ours, whole. */
static int rec_read(const char *path, struct mount_rec *r)
{
	char line[PATH_MAX + 16];
	unsigned int seen = 0;
	FILE *f = fopen(path, "r");
	int rc = 0, m;

	memset(r, 0, sizeof(*r));
	if (!f)
		return -errno;
	while (!rc && fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '='), *nl = strchr(line, '\n');

		if (!eq || !nl) {
			rc = -EINVAL;
			break;
		}
		*eq = *nl = '\0';
		if (!strcmp(line, "target")) {
			rc = rec_field(r->target, sizeof(r->target), eq + 1);
			seen |= 1;
		} else if (!strcmp(line, "device")) {
			rc = rec_field(r->device, sizeof(r->device), eq + 1);
			seen |= 2;
		} else if (!strcmp(line, "mode")) {
			for (m = 0; m < 3 && strcmp(eq + 1, mode_names[m]); m++)
				;
			r->mode = (enum mount_mode)m;
			rc = m < 3 ? 0 : -EINVAL;
			seen |= 4;
		} else if (!strcmp(line, "fstype")) {
			rc = rec_field(r->fstype, sizeof(r->fstype), eq + 1);
		} else if (!strcmp(line, "lower")) {
			rc = rec_field(r->lower, sizeof(r->lower), eq + 1);
		}
	}
	fclose(f);
	if (!rc && (seen != 7 || r->target[0] != '/' || !r->device[0] ||
		    (r->mode == MOUNT_OVERLAY && r->lower[0] != '/')))
		rc = -EINVAL;
	return rc;
}

/* The record whose target is target: 0 and *r, or -ENOENT. */
static int rec_find(const char *target, struct mount_rec *r)
{
	DIR *d = opendir(state_dir());
	struct dirent *e;
	char path[PATH_MAX];
	int rc = -ENOENT;

	if (!d)
		return -ENOENT;
	while (rc == -ENOENT && (e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (n <= 6 || strcmp(e->d_name + n - 6, ".mount"))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", state_dir(), e->d_name) >= (int)sizeof(path))
			continue;
		if (!rec_read(path, r) && !strcmp(r->target, target))
			rc = 0;
	}
	closedir(d);
	return rc;
}

static void rec_remove(const struct mount_rec *r)
{
	char path[PATH_MAX];

	if (!rec_path(path, sizeof(path), r->device, ".mount"))
		unlink(path);
}

/* 1 if path is the root of a mount, 0 if not, -errno. */
static int is_mount_root(const char *path)
{
	char parent[PATH_MAX + 4];
	struct statx stx;
	struct stat st, pst;

	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx))
		return -errno;
	if (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
		return !!(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
	/* before Linux 5.8: another device than its parent's (bind mounts missed) */
	snprintf(parent, sizeof(parent), "%s/..", path);
	if (stat(path, &st) || stat(parent, &pst))
		return -errno;
	return st.st_dev != pst.st_dev;
}

/*
 * The file system on the device, by its superblock: ext4 (0xEF53 at 1080),
 * xfs ("XFSB" at 0), erofs (0xE0F5E1E2 at 1024). NULL if none of them.
 */
static const char *detect_fs(const char *dev)
{
	u8 sb[4096];
	ssize_t n;
	int fd = open(dev, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		cli_err(dev, "%s", strerror(errno));
		return NULL;
	}
	n = pread(fd, sb, sizeof(sb), 0);
	close(fd);
	if (n != (ssize_t)sizeof(sb)) {
		cli_err(dev, "cannot read its first 4 KiB: %s", n < 0 ? strerror(errno) : "short read");
		return NULL;
	}
	if ((sb[1080] | sb[1081] << 8) == 0xEF53)
		return "ext4";
	if (!memcmp(sb, "XFSB", 4))
		return "xfs";
	if (obd_get_le32(sb + 1024) == 0xE0F5E1E2)
		return "erofs";
	return NULL;
}

/* overlayfs takes its directories in one option string: no ',' ':' '\'. */
static int overlay_path_ok(const char *p)
{
	if (strpbrk(p, ",:\\\n")) {
		cli_err(p, "a path with ',', ':', '\\' or a newline cannot be given to overlayfs");
		return -EINVAL;
	}
	return 0;
}

static int make_dir(const char *p, mode_t mode)
{
	if (!mkdir(p, mode) || errno == EEXIST)
		return 0;
	cli_err(p, "%s", strerror(errno));
	return -errno;
}

static int mount_overlay(const struct mount_rec *r, const char *rwdir)
{
	char up[PATH_MAX], work[PATH_MAX], *opts = NULL;
	int rc;

	if (snprintf(up, sizeof(up), "%s/fs", rwdir) >= (int)sizeof(up) ||
	    snprintf(work, sizeof(work), "%s/work", rwdir) >= (int)sizeof(work))
		return -ENAMETOOLONG;
	if (overlay_path_ok(r->lower) || overlay_path_ok(up) || overlay_path_ok(work))
		return -EINVAL;
	rc = make_dir(up, 0755);
	if (!rc)
		rc = make_dir(work, 0700);
	if (rc)
		return rc;
	if (asprintf(&opts, "lowerdir=%s,upperdir=%s,workdir=%s", r->lower, up, work) < 0)
		return -ENOMEM;
	rc = mount("overlay", r->target, "overlay", 0, opts) ? -errno : 0;
	if (rc)
		cli_err(r->target, "cannot mount overlayfs (upper %s): %s", up, strerror(-rc));
	free(opts);
	return rc;
}

/*
 * Is what is mounted at the record's target the one obd mount made: the
 * device's file system, or an overlayfs for --rw?
 */
static bool mount_is_ours(const struct mount_rec *r)
{
	char dev[PATH_MAX];
	struct statfs sfs;
	struct stat st, dst;

	if (r->mode == MOUNT_OVERLAY)
		return !statfs(r->target, &sfs) && sfs.f_type == OBD_OVERLAYFS_MAGIC;
	snprintf(dev, sizeof(dev), "/dev/mapper/%s", r->device);
	return !stat(r->target, &st) && !stat(dev, &dst) && S_ISBLK(dst.st_mode) &&
	       st.st_dev == dst.st_rdev;
}

/* Undo what the record says exists, top first. 0, or -errno (reported if asked). */
static int undo(const struct mount_rec *r, bool report)
{
	int m = is_mount_root(r->target);

	if (m == 1 && report && !mount_is_ours(r)) {
		cli_err(r->target, "what is mounted here is not what obd mount made (device %s): not touched",
			r->device);
		return -EPERM;
	}
	if (m == 1 && umount2(r->target, 0)) {
		if (report)
			cli_err(r->target, "cannot unmount: %s", strerror(errno));
		return -errno;
	}
	if (r->mode == MOUNT_OVERLAY) {
		if (is_mount_root(r->lower) == 1 && umount2(r->lower, 0)) {
			if (report)
				cli_err(r->lower, "cannot unmount: %s", strerror(errno));
			return -errno;
		}
		rmdir(r->lower);
	}
	if (cli_dm_exists(r->device)) {
		cli_prefetch_detach(r->device);
		if (cli_dm_remove(r->device)) {
			if (report)
				cli_err(r->device, "cannot remove the device: %s", cli_dm_last_error());
			return -EBUSY;
		}
	}
	rec_remove(r);
	return 0;
}

struct mount_opts {
	struct cli_attach a;
	const char *rwdir;
};

static int do_mount(struct mount_opts *o, int nimg, char **img, const char *dir)
{
	char dev[PATH_MAX], rwdir[PATH_MAX];
	struct mount_rec r = { .mode = MOUNT_RO }, old;
	const char *fs;
	struct stat st;
	int rc;

	if (!realpath(dir, r.target) || stat(r.target, &st)) {
		cli_err(dir, "%s", strerror(errno));
		return EXIT_FAIL;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_err(dir, "not a directory");
		return EXIT_FAIL;
	}
	if (is_mount_root(r.target) == 1) {
		cli_err(dir, "busy: a file system is mounted there already");
		return EXIT_FAIL;
	}
	if (strchr(r.target, '\n')) {
		cli_err(dir, "a mount point with a newline in its path is refused");
		return EXIT_FAIL;
	}
	if (o->rwdir) {
		/* a container's own directory: made if missing (mkdir -p), as its fs/ and work/ */
		if (cli_make_dirs(o->rwdir))
			return EXIT_FAIL;
		if (!realpath(o->rwdir, rwdir)) {
			cli_err(o->rwdir, "%s", strerror(errno));
			return EXIT_FAIL;
		}
		if (overlay_path_ok(rwdir) || overlay_path_ok(r.target))
			return EXIT_FAIL;
		r.mode = MOUNT_OVERLAY;
	} else if (o->a.up_data) {
		r.mode = MOUNT_UPPER;
	}
	if (rec_find(r.target, &old) == 0) {
		cli_err(dir, "obd mount made a mount here already (device %s): obd umount it first",
			old.device);
		return EXIT_FAIL;
	}
	o->a.quiet = true;
	if (cli_attach(&o->a, nimg, img) != EXIT_OK)
		return EXIT_FAIL;
	snprintf(r.device, sizeof(r.device), "%s", o->a.dev_name);
	snprintf(dev, sizeof(dev), "/dev/mapper/%s", r.device);
	if (r.mode == MOUNT_OVERLAY &&
	    rec_path(r.lower, sizeof(r.lower), r.device, ".lower")) {
		rc = -ENAMETOOLONG;
		goto out_undo;
	}
	rc = rec_write(&r);
	if (rc)
		goto out_undo;
	fs = detect_fs(dev);
	if (!fs) {
		cli_err(img[0], "no ext4, xfs or erofs file system on the image (%s)", dev);
		rc = -EINVAL;
		goto out_undo;
	}
	/* erofs has no write path: the writable device would never be written */
	if (r.mode == MOUNT_UPPER && !strcmp(fs, "erofs")) {
		cli_err(img[0], "an erofs file system is read-only: --upper cannot make it writable (mount it read-only, or with --rw RWDIR: an overlayfs over it)");
		rc = -EROFS;
		goto out_undo;
	}
	snprintf(r.fstype, sizeof(r.fstype), "%s", fs);
	rc = rec_write(&r);
	if (rc)
		goto out_undo;
	if (r.mode == MOUNT_OVERLAY) {
		rc = make_dir(r.lower, 0700);
		if (!rc && mount(dev, r.lower, fs, MS_RDONLY, NULL)) {
			rc = -errno;
			cli_err(dev, "cannot mount %s read-only: %s", fs, strerror(errno));
		}
		if (!rc)
			rc = mount_overlay(&r, rwdir);
	} else if (mount(dev, r.target, fs, r.mode == MOUNT_RO ? MS_RDONLY : 0, NULL)) {
		rc = -errno;
		cli_err(dev, "cannot mount %s on %s: %s", fs, r.target, strerror(errno));
	}
	if (!rc)
		return EXIT_OK;
out_undo:
	undo(&r, false);
	return EXIT_FAIL;
}

/* --upper DATA [INDEX]: INDEX is taken when DATA is an append-mode layer. */
static int upper_args(struct mount_opts *o, int argc, char **argv)
{
	enum cli_layer_kind kind;
	bool raw;

	o->a.up_data = optarg;
	if (cli_peek_kind(optarg, &kind, &raw)) {
		cli_err(optarg, "not a writable layer: no LSMT header could be read");
		return -EINVAL;
	}
	if (kind == CLI_KIND_RW_APPEND) {
		if (optind >= argc)
			return -EINVAL;
		o->a.up_index = argv[optind++];
	} else if (kind != CLI_KIND_RW_SPARSE) {
		cli_err(optarg, "not a writable layer (obd create makes one)");
		return -EINVAL;
	}
	return 0;
}

int cmd_mount(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "service-config", required_argument, NULL, 'c' },
		{ "rw", required_argument, NULL, 'r' },
		{ "upper", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mount_opts o = { 0 };
	int opt;

	optind = 0;
	/* '+': options first, so that --upper DATA INDEX keeps its order */
	while ((opt = getopt_long(argc, argv, "+n:c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n': o.a.name = optarg; break;
		case 'c': o.a.svc = optarg; break;
		case 'r': o.rwdir = optarg; break;
		case 'u':
			if (upper_args(&o, argc, argv))
				return cli_usage_err("mount", "--upper DATA [INDEX]: bad writable layer");
			break;
		case 'h': return cli_help("mount");
		default: return cli_usage_err("mount", "bad option");
		}
	}
	if (o.rwdir && o.a.up_data)
		return cli_usage_err("mount", "--rw and --upper exclude each other");
	if (argc - optind < 2)
		return cli_usage_err("mount", "expected IMAGE... DIR");
	if (o.a.name && !cli_dm_name_ok(o.a.name))
		return cli_usage_err("mount", "bad device name '%s'", o.a.name);
	return do_mount(&o, argc - optind - 1, argv + optind, argv[argc - 1]);
}

int cmd_umount(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char target[PATH_MAX];
	struct mount_rec r;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h': return cli_help("umount");
		default: return cli_usage_err("umount", "bad option");
		}
	}
	if (argc - optind != 1)
		return cli_usage_err("umount", "expected one DIR");
	if (!realpath(argv[optind], target)) {
		cli_err(argv[optind], "%s", strerror(errno));
		return EXIT_FAIL;
	}
	if (rec_find(target, &r)) {
		cli_err(argv[optind], "not mounted by obd mount (no record in %s)", state_dir());
		return EXIT_FAIL;
	}
	if (cli_dm_init())
		return EXIT_FAIL;
	return undo(&r, true) ? EXIT_FAIL : EXIT_OK;
}
