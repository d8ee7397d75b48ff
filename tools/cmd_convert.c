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
 * first, from GNU tar's listing of the layer; then the layer is extracted
 * with GNU tar (owners, modes, times, xattrs, hard links, symlinks,
 * devices; gzip and zstd), whiteout files left out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <spawn.h>
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

extern char **environ;

static json_object *read_json(const char *path)
{
	json_object *o = json_object_from_file(path);

	if (!o)
		cli_err(path, "not a JSON document: %s", json_util_get_last_err());
	return o;
}

static int blob_path(char buf[PATH_MAX], const char *layout, const char *digest)
{
	if (strncmp(digest, "sha256:", 7) || strlen(digest) != OBD_DIGEST_STR_LEN ||
	    strspn(digest + 7, "0123456789abcdef") != 64) {
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

/*
 * A member name to a path under root, or NULL: leading "./" and "/" go,
 * "." / ".." components are refused, and every directory on the way must
 * be a real directory (a symlink from a lower layer is not followed).
 */
static int under_root(const char *root, const char *name, char out[PATH_MAX], bool *exists)
{
	struct stat st;
	char *p, *q;

	while (name[0] == '.' && name[1] == '/')
		name += 2;
	while (*name == '/')
		name++;
	if (img_pathf(out, "%s/%s", root, name))
		return -ENAMETOOLONG;
	*exists = false;
	for (p = out + strlen(root) + 1; *p; p = q + 1) {
		q = strchr(p, '/');
		if ((q ? q - p : (long)strlen(p)) == 2 && p[0] == '.' && p[1] == '.')
			return -EINVAL;
		if (!q)
			break;
		*q = '\0';
		if (lstat(out, &st) || !S_ISDIR(st.st_mode)) {
			*q = '/';
			return 0;	/* nothing below to remove */
		}
		*q = '/';
	}
	*exists = !lstat(out, &st);
	return 0;
}

/* One whiteout member: ".wh.X" removes X, ".wh..wh..opq" empties its directory. */
static int whiteout(const char *root, char *name)
{
	char path[PATH_MAX], *base = strrchr(name, '/');
	bool exists;
	int rc;

	base = base ? base + 1 : name;
	if (strncmp(base, WH_PREFIX, strlen(WH_PREFIX)))
		return 0;
	if (!strcmp(base, WH_OPAQUE)) {
		DIR *d;
		struct dirent *e;
		char child[PATH_MAX];

		*base = '\0';
		rc = under_root(root, *name ? name : ".", path, &exists);
		if (rc || !exists)
			return rc;
		d = opendir(path);
		if (!d)
			return 0;	/* not a directory below: nothing to hide */
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
	if (!*base)
		return 0;
	rc = under_root(root, name, path, &exists);
	if (rc == -EINVAL)
		cli_err(name, "whiteout with a '..' component");
	return rc || !exists ? rc : rm_tree(path);
}

static const char *comp_flag(enum oci_compression c)
{
	return c == OCI_GZIP ? "--gzip" : c == OCI_ZSTD ? "--zstd" : "--no-auto-compress";
}

/* tar -t of the layer, each whiteout applied as it is listed. */
static int apply_whiteouts(const char *root, const char *blob, enum oci_compression c)
{
	char *argv[] = { "tar", "-t", "--quoting-style=escape", (char *)comp_flag(c), "-f",
			 (char *)blob, NULL };
	posix_spawn_file_actions_t fa;
	char *line = NULL;
	size_t cap = 0;
	int pfd[2], st, rc = 0;
	pid_t pid;
	FILE *f;

	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	st = posix_spawnp(&pid, "tar", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (st) {
		close(pfd[0]);
		cli_err(NULL, "cannot run tar: %s", strerror(st));
		return -st;
	}
	f = fdopen(pfd[0], "r");
	while (f && getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		unescape(line);
		if (!rc && strstr(line, WH_PREFIX))
			rc = whiteout(root, line);
	}
	free(line);
	if (f)
		fclose(f);
	else
		close(pfd[0]);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!rc && !(WIFEXITED(st) && !WEXITSTATUS(st))) {
		cli_err(blob, "tar -t failed: not a readable layer");
		rc = -EIO;
	}
	return rc;
}

static int apply_layer(struct img_work *w, const char *blob, enum oci_compression c)
{
	char *argv[] = { "tar", "-x", "-p", "--same-owner", "--numeric-owner", "--xattrs",
			 "--xattrs-include=*", "--exclude=" WH_PREFIX "*",
			 (char *)comp_flag(c), "-f", (char *)blob, "-C", w->mnt, NULL };
	int rc = apply_whiteouts(w->mnt, blob, c);

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
			rc = apply_layer(&w, blob, ls[i].comp);
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
