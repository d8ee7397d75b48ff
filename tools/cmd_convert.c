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
 * the image (chroot semantics); then the layer is extracted with GNU tar
 * (owners, modes, times, xattrs, hard links, symlinks, devices; gzip and
 * zstd), whiteout files left out. GNU tar resolves paths as the host does,
 * so a member under a lower layer's symlink that points outside the image
 * is refused (it would write outside it).
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
			const char *tmpdir)
{
	char dst[PATH_MAX + 8], tls[64], tmp[PATH_MAX + 16];
	char *argv[10];
	int a = 0;

	snprintf(dst, sizeof(dst), "oci:%s:src", layout);
	/* temporary blobs beside the copy, not in /var/tmp (maybe small or read-only) */
	snprintf(tmp, sizeof(tmp), "--tmpdir=%s", tmpdir);
	argv[a++] = "skopeo";
	argv[a++] = "--insecure-policy";	/* no /etc/containers/policy.json needed */
	argv[a++] = tmp;
	argv[a++] = "copy";
	argv[a++] = "--quiet";
	if (tls_verify) {
		snprintf(tls, sizeof(tls), "--src-tls-verify=%s", tls_verify);
		argv[a++] = tls;
	}
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

/* GNU tar's escape quoting back to bytes (\\, \n, \t, \NNN, ...). */
static void unescape(char *s)
{
	char *o = s;

	while (*s) {
		if (*s != '\\' || !s[1]) {
			*o++ = *s++;
			continue;
		}
		s++;
		if (*s >= '0' && *s <= '7') {
			int v = 0, k;

			for (k = 0; k < 3 && *s >= '0' && *s <= '7'; k++)
				v = v * 8 + (*s++ - '0');
			*o++ = (char)v;
			continue;
		}
		switch (*s) {
		case 'n': *o++ = '\n'; break;
		case 't': *o++ = '\t'; break;
		case 'r': *o++ = '\r'; break;
		case 'a': *o++ = '\a'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'v': *o++ = '\v'; break;
		default: *o++ = *s; break;
		}
		s++;
	}
	*o = '\0';
}

#define MAX_LINKS	40

/* Move the first component of *rest (a '/'-separated path) into c. */
static void next_component(char **rest, char *c, size_t len)
{
	char *p = *rest, *e;

	while (*p == '/')
		p++;
	e = strchrnul(p, '/');
	snprintf(c, len, "%.*s", (int)(e - p), p);
	*rest = e;
}

/*
 * The host path of member name inside root, as the image sees it (chroot
 * semantics, as containerd and umoci apply layers): symlinks on the way
 * are followed, an absolute target starts again at root, ".." stops at
 * root; the last component is not followed. -ENOENT / -ENOTDIR when a
 * directory on the way is missing or is not one, -ELOOP after MAX_LINKS.
 */
static int in_root(const char *root, const char *name, char out[PATH_MAX])
{
	char cur[PATH_MAX] = "", rest[PATH_MAX], tmp[PATH_MAX], c[NAME_MAX + 2], *r = rest;
	char target[PATH_MAX];
	unsigned int links = 0;
	struct stat st;
	ssize_t n;

	if (snprintf(rest, sizeof(rest), "%s", name) >= (int)sizeof(rest))
		return -ENAMETOOLONG;
	for (;;) {
		next_component(&r, c, sizeof(c));
		while (*r == '/')
			r++;
		if (!*r)	/* c is the last component: not followed */
			return img_pathf(out, "%s%s%s/%s", root, *cur ? "/" : "", cur, c);
		if (!*c || !strcmp(c, "."))
			continue;
		if (!strcmp(c, "..")) {
			char *slash = strrchr(cur, '/');

			if (slash)
				*slash = '\0';
			else
				cur[0] = '\0';
			continue;
		}
		if (img_pathf(tmp, "%s/%s%s%s", root, cur, *cur ? "/" : "", c))
			return -ENAMETOOLONG;
		if (lstat(tmp, &st))
			return -ENOENT;
		if (S_ISLNK(st.st_mode)) {
			if (++links > MAX_LINKS)
				return -ELOOP;
			n = readlink(tmp, target, sizeof(target) - 1);
			if (n < 0)
				return -errno;
			target[n] = '\0';
			if (target[0] == '/')
				cur[0] = '\0';
			if (img_pathf(tmp, "%s/%s", target, r))
				return -ENAMETOOLONG;
			memcpy(rest, tmp, sizeof(rest));
			r = rest;
			continue;
		}
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
		if (strlen(cur) + strlen(c) + 2 > sizeof(cur))
			return -ENAMETOOLONG;
		if (*cur)
			strcat(cur, "/");
		strcat(cur, c);
	}
}

/* A member name without leading "./" and "/". */
static char *member_path(char *name)
{
	while (name[0] == '.' && name[1] == '/')
		name += 2;
	while (*name == '/')
		name++;
	return name;
}

/* One whiteout member: ".wh.X" removes X, ".wh..wh..opq" empties its directory. */
static int whiteout(const char *root, char *name, char *base)
{
	char path[PATH_MAX], child[PATH_MAX];
	struct dirent *e;
	struct stat st;
	DIR *d;
	int rc;

	if (!strcmp(base, WH_OPAQUE)) {
		strcpy(base, ".");	/* the directory itself */
		rc = in_root(root, name, path);
		if (rc)
			return rc == -ENOENT || rc == -ENOTDIR ? 0 : rc;
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
	memmove(base, base + strlen(WH_PREFIX), strlen(base + strlen(WH_PREFIX)) + 1);
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return 0;
	rc = in_root(root, name, path);
	if (rc)
		return rc == -ENOENT || rc == -ENOTDIR ? 0 : rc;
	return lstat(path, &st) ? 0 : rm_tree(path);
}

/*
 * GNU tar resolves a member's directories as the host does: refuse a
 * member whose existing directories resolve elsewhere than inside the
 * image (through an absolute or escaping symlink of a lower layer), which
 * would write outside it. Directories the layer makes itself are safe
 * (tar defers such symlinks to the end).
 */
static int check_member(const char *root, char *name, unsigned int layer)
{
	char want[PATH_MAX], dir[PATH_MAX], host[PATH_MAX], *slash = strrchr(name, '/');
	size_t rl = strlen(root);
	bool inside;
	int rc;

	if (!slash)
		return 0;
	*slash = '\0';
	rc = img_pathf(dir, "%s/%s", root, name);
	if (rc || !realpath(dir, host)) {
		*slash = '/';
		return 0;	/* not there yet: the layer makes it (tar defers its symlinks) */
	}
	inside = !strncmp(host, root, rl) && (host[rl] == '/' || !host[rl]);
	rc = img_pathf(want, "%s/.", name);
	if (!rc && inside)
		rc = in_root(root, want, dir);
	/* dir is "<resolved>/." when in_root succeeded: it must be where the host goes */
	if (!inside || rc || strlen(dir) < 2 || strncmp(dir, host, strlen(dir) - 2) ||
	    host[strlen(dir) - 2]) {
		cli_err(NULL, "layer %u: member %s/%s goes through a symlink of a lower layer that points outside the image (to %s); refused",
			layer, name, slash + 1, host);
		rc = -EXDEV;
	}
	*slash = '/';
	return rc;
}

static const char *comp_flag(enum oci_compression c)
{
	return c == OCI_GZIP ? "--gzip" : c == OCI_ZSTD ? "--zstd" : "--no-auto-compress";
}

/* tar -t of the layer: each whiteout applied, each member's path checked. */
static int prepare_layer(const char *root, const char *blob, enum oci_compression c,
			 unsigned int layer)
{
	char *argv[] = { "tar", "-t", "--quoting-style=escape", (char *)comp_flag(c), "-f",
			 (char *)blob, NULL };
	char *line = NULL;
	size_t cap = 0;
	int pfd[2], st, err, rc = 0;
	pid_t pid;
	FILE *f;

	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	err = img_spawn(argv, pfd[1], &pid);
	close(pfd[1]);
	if (err) {
		close(pfd[0]);
		return err;
	}
	f = fdopen(pfd[0], "r");
	while (f && getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		unescape(line);
		if (!rc) {
			char *name = member_path(line), *base = strrchr(name, '/');

			base = base ? base + 1 : name;
			if (!strncmp(base, WH_PREFIX, strlen(WH_PREFIX)))
				rc = whiteout(root, name, base);
			else
				rc = check_member(root, name, layer);
		}
	}
	free(line);
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
	char *argv[] = { "tar", "-x", "-p", "--same-owner", "--numeric-owner", "--xattrs",
			 "--xattrs-include=*", "--exclude=" WH_PREFIX "*",
			 (char *)comp_flag(c), "-f", (char *)blob, "-C", w->mnt, NULL };
	int rc = prepare_layer(w->mnt, blob, c, layer);

	return rc ? rc : img_run(argv);
}

int cmd_convert(int argc, char **argv)
{
	static const struct option opts[] = {
		IMG_OPTIONS,
		{ "src-tls-verify", required_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct img_opts o = IMG_OPTS_DEFAULTS(CONVERT_DEFAULT_SIZE);
	const char *tls = NULL, *source;
	char out[PATH_MAX], layout[PATH_MAX] = "", blob[PATH_MAX];
	struct oci_src_layer *ls = NULL;
	struct img_work w;
	unsigned int n = 0, i;
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
		rc = img_parse_opt("convert", opt, &o);
		if (rc != 1)
			return rc == 2 ? EXIT_OK : EXIT_USAGE;
	}
	if (argc - optind != 2)
		return cli_usage_err("convert", "expected SOURCE OUTDIR");
	source = argv[optind];
	if (img_preflight() || img_prepare_out(argv[optind + 1], out))
		return EXIT_FAIL;
	ls = calloc(OBD_MAX_LAYERS, sizeof(*ls));
	if (!ls)
		return EXIT_FAIL;
	rc = img_begin(&w, out, o.vsize, &o.commit);
	if (!rc)
		rc = img_pathf(layout, "%s/src", w.work);
	if (!rc)
		rc = fetch_source(source, layout, tls, w.work);
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
