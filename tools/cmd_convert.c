// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd convert SOURCE OUTDIR: an OCI image into an overlaybd image, one
 * overlaybd layer per OCI layer, each written by the kernel's upper
 * (cli_image.c) over the layers converted so far.
 *
 * SOURCE is anything skopeo reads (oci:DIR[:TAG], docker-archive:FILE,
 * docker://[HOST/]REPO:TAG, ...): skopeo copies it into an OCI layout in
 * the work directory first, so one code path reads every transport, with
 * OCI media types. A layer is applied as the OCI image spec says: its
 * whiteouts (".wh.NAME": NAME goes; ".wh..wh..opq": the directory's
 * lower contents go) act on the layers below only, so they are applied
 * first, from GNU tar's listing of the layer, with paths resolved inside
 * the image (chroot semantics, lib/user/layer_view.c); then the layer is
 * extracted with GNU tar (owners, modes, times, xattrs, hard links,
 * symlinks, devices; gzip and zstd), whiteout files left out. GNU tar
 * resolves paths as the host does, so each member directory reached
 * through an absolute symlink (var/run -> /run) is renamed for it by a
 * --transform to where the image has it, as containerd and umoci would
 * write it; nothing goes outside the image.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_image.h"
#include "layer_view.h"
#include "turbo_conv.h"

#define CONVERT_DEFAULT_SIZE	(64ULL << 30)
#define WH_PREFIX		".wh."
#define WH_OPAQUE		".wh..wh..opq"

static json_object *read_json(const char *path)
{
	json_object *o = json_object_from_file(path);

	if (!o)
		cli_err(path, "not a JSON document: %s", json_util_get_last_err());
	return o;
}

static int blob_path(char buf[PATH_MAX], const char *layout, const char *digest)
{
	if (!oci_canonical_digest(digest)) {
		cli_err(layout, "digest '%s' is not sha256:<64 hex>", digest);
		return -EINVAL;
	}
	return img_pathf(buf, "%s/blobs/sha256/%s", layout, digest + 7);
}

/* The layers of the one image in the OCI layout (skopeo's copy), bottom first. */
static int read_layers(const char *layout, struct oci_src_layer *ls, unsigned int *n)
{
	json_object *idx = NULL, *v, *d, *dg;
	char path[PATH_MAX], err[256];
	u8 *text = NULL;
	u64 len;
	int rc = -EINVAL;

	if (img_pathf(path, "%s/index.json", layout) || !(idx = read_json(path)))
		goto out;
	if (!json_object_object_get_ex(idx, "manifests", &v) ||
	    json_object_array_length(v) != 1 || !(d = json_object_array_get_idx(v, 0)) ||
	    !json_object_object_get_ex(d, "digest", &dg)) {
		cli_err(path, "expected one manifest");
		goto out;
	}
	if (blob_path(path, layout, json_object_get_string(dg)))
		goto out;
	if (cli_read_file(path, OCI_MANIFEST_MAX, &text, &len))
		goto out;
	if (oci_manifest_layers((const char *)text, (size_t)len, ls, OBD_MAX_LAYERS - 1, n, err,
				sizeof(err))) {
		cli_err(path, "manifest: %s", err);
		goto out;
	}
	rc = 0;
out:
	free(text);
	json_object_put(idx);
	return rc;
}

static int fetch_source(const char *source, const char *layout, const char *tls_verify,
			bool insecure_policy, const char *tmpdir, bool as_is)
{
	char dst[PATH_MAX + 8], tls[64], tmp[PATH_MAX + 16];
	char *argv[13];
	int a = 0;

	snprintf(dst, sizeof(dst), "oci:%s:src", layout);
	/* temporary blobs beside the copy, not in /var/tmp (maybe small or read-only) */
	snprintf(tmp, sizeof(tmp), "--tmpdir=%s", tmpdir);
	argv[a++] = "skopeo";
	/* only when asked: /etc/containers/policy.json (signatures) applies otherwise */
	if (insecure_policy)
		argv[a++] = "--insecure-policy";
	argv[a++] = tmp;
	argv[a++] = "copy";
	argv[a++] = "--quiet";
	/* TurboOCI: the layers are the targets, byte for byte (skopeo would gzip a tar) */
	if (as_is)
		argv[a++] = "--dest-oci-accept-uncompressed-layers";
	if (tls_verify) {
		snprintf(tls, sizeof(tls), "--src-tls-verify=%s", tls_verify);
		argv[a++] = tls;
	}
	/* a SOURCE starting with '-' is a name, never an option */
	argv[a++] = "--";
	argv[a++] = (char *)source;
	argv[a++] = dst;
	argv[a] = NULL;
	img_step("reading %s (skopeo copy)", source);
	return img_run(argv);
}

/* ------------------------------------------------------------------------
 * Whiteouts
 * ------------------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) ? -errno : 0;
}

static int rm_tree(const char *path)
{
	int rc = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);

	if (rc) {
		cli_err(path, "remove: %s", strerror(rc < 0 ? -rc : errno));
		return -EIO;
	}
	return 0;
}

/*
 * The directory dir of the lower layers (chroot semantics) as a host path
 * in path: whiteouts act on what is below the layer, whatever the layer
 * itself puts there (umoci lists "swap", then "swap/.wh.inner").
 */
static int image_dir(struct layer_view *v, const char *root, const char *dir, char path[PATH_MAX])
{
	char rel[PATH_MAX];
	int rc = layer_view_resolve(v, dir, LV_FOLLOW_LAST | LV_LOWER_ONLY, rel, sizeof(rel));

	return rc ? rc : img_pathf(path, "%s/%s", root, rel);
}

/*
 * A whiteout in directory dir of the image: wh ".wh.X" removes X,
 * ".wh..wh..opq" empties dir. Nothing there: nothing to do.
 */
static int whiteout(struct layer_view *v, const char *root, const char *dir, const char *wh)
{
	char path[PATH_MAX], child[PATH_MAX];
	const char *x = wh + strlen(WH_PREFIX);
	struct dirent *e;
	struct stat st;
	DIR *d;
	int rc;

	rc = image_dir(v, root, dir, path);
	if (rc)
		return rc == -ENOENT || rc == -ENOTDIR ? 0 : rc;
	if (!strcmp(wh, WH_OPAQUE)) {
		d = opendir(path);
		if (!d)
			return 0;	/* no directory below: nothing to hide */
		rc = 0;
		while (!rc && (e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			rc = img_pathf(child, "%s/%s", path, e->d_name);
			if (!rc)
				rc = rm_tree(child);
		}
		closedir(d);
		return rc;
	}
	if (!*x || !strcmp(x, ".") || !strcmp(x, ".."))
		return 0;
	rc = img_pathf(child, "%s/%s", path, x);
	if (rc)
		return rc;
	return lstat(child, &st) ? 0 : rm_tree(child);
}

/* One listed member: a whiteout applied at once, any other taken into the view. */
static int take_member(struct layer_view *v, const char *root, struct tar_member *m,
		       unsigned int layer)
{
	char err[PATH_MAX + 256], *slash = strrchr(m->name, '/');
	const char *base = slash ? slash + 1 : m->name;
	int rc;

	if (m->type != 'd' && !strncmp(base, WH_PREFIX, strlen(WH_PREFIX))) {
		if (slash)
			*slash = '\0';
		rc = whiteout(v, root, slash ? m->name : ".", base);
		if (rc && rc != -EIO)	/* rm_tree said why */
			cli_err(NULL, "layer %u: whiteout %s%s%s: %s", layer, slash ? m->name : "",
				slash ? "/" : "", base, strerror(-rc));
		return rc;
	}
	rc = layer_view_add(v, m, err, sizeof(err));
	if (rc)
		cli_err(NULL, "layer %u: %s; refused", layer, err);
	return rc;
}

static const char *comp_flag(enum oci_compression c)
{
	return c == OCI_GZIP ? "--gzip" : c == OCI_ZSTD ? "--zstd" : "--no-auto-compress";
}

/*
 * tar -tv of the layer: each whiteout applied, each member resolved into
 * the view v (which then holds the transforms the extraction needs).
 */
static int prepare_layer(struct layer_view *v, const char *root, const char *blob,
			 enum oci_compression c, unsigned int layer)
{
	char *argv[] = { "tar", "-t", "-v", "--quoting-style=c", "--numeric-owner",
			 (char *)comp_flag(c), "-f", (char *)blob, NULL };
	struct tar_member *m = malloc(sizeof(*m));
	char *line = NULL;
	size_t cap = 0;
	int pfd[2], st, err, rc = 0, k;
	pid_t pid;
	FILE *f;

	if (!m)
		return -ENOMEM;
	if (pipe2(pfd, O_CLOEXEC)) {
		free(m);
		return -errno;
	}
	err = img_spawn(argv, pfd[1], &pid);
	close(pfd[1]);
	if (err) {
		close(pfd[0]);
		free(m);
		return err;
	}
	f = fdopen(pfd[0], "r");
	while (f && getline(&line, &cap, f) > 0) {
		if (rc)
			continue;	/* read to the end: tar must not die of a closed pipe */
		line[strcspn(line, "\n")] = '\0';
		k = tar_list_line(line, m);
		if (k < 0) {
			cli_err(blob, "layer %u: tar's listing has a line not understood: %.200s",
				layer, line);
			rc = -EINVAL;
		} else if (k) {
			rc = take_member(v, root, m, layer);
		}
	}
	free(line);
	free(m);
	if (f)
		fclose(f);
	else
		close(pfd[0]);
	err = img_wait(pid, &st);
	if (err)
		return err;
	if (!rc && !(WIFEXITED(st) && !WEXITSTATUS(st))) {
		cli_err(blob, "tar -t failed: not a readable layer");
		rc = -EIO;
	}
	return rc;
}

static int apply_layer(struct img_work *w, const char *blob, enum oci_compression c,
		       unsigned int layer)
{
	char *base[] = { "tar", "-x", "-p", "--same-owner", "--numeric-owner", "--xattrs",
			 "--xattrs-include=*", "--exclude=" WH_PREFIX "*",
			 (char *)comp_flag(c), "-f", (char *)blob, "-C", w->mnt };
	const unsigned int nbase = sizeof(base) / sizeof(base[0]);
	struct layer_view *v = layer_view_new(w->mnt);
	char **xf, **argv = NULL;
	unsigned int n = 0;
	int rc;

	if (!v)
		return -ENOMEM;
	rc = prepare_layer(v, w->mnt, blob, c, layer);
	if (!rc) {
		rc = layer_view_transforms(v, &xf, &n);
		if (rc == -EINVAL)
			cli_err(blob, "layer %u: a path has every delimiter tar's --transform may use",
				layer);
	}
	if (!rc && !(argv = calloc(nbase + n + 1, sizeof(*argv))))
		rc = -ENOMEM;
	if (!rc) {
		memcpy(argv, base, sizeof(base));
		memcpy(argv + nbase, xf, n * sizeof(*xf));
		if (n)
			img_step("layer %u: %u director%s reached through symlinks, written where the image has them",
				 layer, n, n == 1 ? "y" : "ies");
		rc = img_run(argv);
	}
	free(argv);
	layer_view_free(v);
	return rc;
}

/*
 * --turbo-oci: everything in userspace (no device, no root): SOURCE into
 * OUT/.turbo-work/src, then turbo_conv.c.
 */
static int convert_turbo(const char *source, const char *outdir, const char *tls,
			 bool insecure_policy, const struct img_opts *o, bool zero_detect)
{
	struct turbo_opts to = { .vsize = o->vsize, .tag = o->tag, .zero_detect = zero_detect };
	char out[PATH_MAX], work[PATH_MAX], layout[PATH_MAX];
	int rc;

	if (img_prepare_out(outdir, out))
		return EXIT_FAIL;
	rc = img_pathf(work, "%s/.turbo-work", out);
	if (!rc && mkdir(work, 0700)) {
		cli_err(work, "mkdir: %s", strerror(errno));
		rc = -errno;
	}
	if (rc)
		return EXIT_FAIL;
	rc = img_pathf(layout, "%s/src", work);
	if (!rc)
		rc = fetch_source(source, layout, tls, insecure_policy, work, true);
	if (!rc)
		rc = turbo_convert(layout, out, work, &to);
	if (!getenv("OBD_TURBO_KEEP") && rm_tree(work))
		rc = rc ? rc : -EIO;
	return rc ? EXIT_FAIL : EXIT_OK;
}

int cmd_convert(int argc, char **argv)
{
	static const struct option opts[] = {
		IMG_OPTIONS,
		{ "src-tls-verify", required_argument, NULL, 'V' },
		{ "insecure-policy", no_argument, NULL, 'P' },
		{ "turbo-oci", no_argument, NULL, 'U' },
		{ "no-zero-detect", no_argument, NULL, 'Z' },
		{ NULL, 0, NULL, 0 },
	};
	struct img_opts o = IMG_OPTS_DEFAULTS(CONVERT_DEFAULT_SIZE);
	const char *tls = NULL, *source;
	char out[PATH_MAX], layout[PATH_MAX] = "", blob[PATH_MAX];
	struct oci_src_layer *ls = NULL;
	struct img_work w;
	unsigned int n = 0, i;
	bool insecure_policy = false, turbo = false, zero_detect = true;
	int opt, rc;

	img_cmd = "convert";
	optind = 0;
	while ((opt = getopt_long(argc, argv, "s:m:h", opts, NULL)) != -1) {
		if (opt == 'V') {
			if (strcmp(optarg, "true") && strcmp(optarg, "false"))
				return cli_usage_err("convert", "--src-tls-verify takes true or false");
			tls = optarg;
			continue;
		}
		if (opt == 'P') {
			insecure_policy = true;
			continue;
		}
		if (opt == 'U' || opt == 'Z') {
			turbo = turbo || opt == 'U';
			zero_detect = zero_detect && opt != 'Z';
			continue;
		}
		rc = img_parse_opt("convert", opt, &o);
		if (rc != 1)
			return rc == 2 ? EXIT_OK : EXIT_USAGE;
	}
	if (argc - optind != 2)
		return cli_usage_err("convert", "expected SOURCE OUTDIR");
	source = argv[optind];
	if (turbo && (!o.commit.zfile || !o.commit.tar || o.commit.algo != OBD_ZFILE_ALGO_LZ4 ||
		      o.commit.bs != 4096 || o.commit.msg))
		return cli_usage_err("convert", "--turbo-oci writes its meta layers as the reference does (ZFile, LZ4, 4 KiB): --no-zfile, --no-tar, --algorithm, --bs and -m go without it");
	if (turbo)
		return convert_turbo(source, argv[optind + 1], tls, insecure_policy, &o, zero_detect);
	if (!zero_detect)
		return cli_usage_err("convert", "--no-zero-detect goes with --turbo-oci");
	if (img_preflight() || img_prepare_out(argv[optind + 1], out))
		return EXIT_FAIL;
	ls = calloc(OBD_MAX_LAYERS, sizeof(*ls));
	if (!ls)
		return EXIT_FAIL;
	rc = img_begin(&w, out, o.vsize, &o.commit);
	if (!rc)
		rc = img_pathf(layout, "%s/src", w.work);
	if (!rc)
		rc = fetch_source(source, layout, tls, insecure_policy, w.work, false);
	if (!rc)
		rc = read_layers(layout, ls, &n);
	for (i = 0; !rc && i < n; i++) {
		img_step("layer %u of %u (%s)", i + 1, n, ls[i].digest);
		rc = blob_path(blob, layout, ls[i].digest);
		if (!rc)
			rc = img_layer_begin(&w, i == 0);
		if (!rc)
			rc = apply_layer(&w, blob, ls[i].comp, i + 1);
		if (!rc)
			rc = img_layer_end(&w);
	}
	if (!rc)
		rc = img_write_layout(&w, o.tag);
	if (layout[0] && !access(layout, F_OK) && rm_tree(layout))
		rc = rc ? rc : -EIO;
	img_end(&w);
	free(ls);
	return rc ? EXIT_FAIL : EXIT_OK;
}
