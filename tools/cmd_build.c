// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd build DIR OUT/: an overlaybd image of a directory tree, made through
 * the kernel's writable upper (cli_image.c): mkfs.ext4 on the device, the
 * tree copied in with cp -a (owners, modes, times, xattrs, hard links,
 * symlinks, device nodes), one committed layer in the OCI layout OUT.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_image.h"

#define BUILD_DEFAULT_SIZE	(64ULL << 30)	/* the reference's default vsize */

static int copy_tree(struct img_work *w, const char *dir)
{
	char src[PATH_MAX + 2], dst[PATH_MAX + 2];
	char *cp[] = { "cp", "-a", src, dst, NULL };

	/* DIR/. into the root: the root takes DIR's owner, mode and times too */
	snprintf(src, sizeof(src), "%s/.", dir);
	snprintf(dst, sizeof(dst), "%s/", w->mnt);
	img_step("copying the tree (cp -a)");
	return img_run(cp);
}

int cmd_build(int argc, char **argv)
{
	static const struct option opts[] = {
		IMG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct img_opts o = IMG_OPTS_DEFAULTS(BUILD_DEFAULT_SIZE);
	char out[PATH_MAX];
	struct img_work w;
	const char *dir;
	struct stat st;
	int opt, rc;

	img_cmd = "build";
	optind = 0;
	while ((opt = getopt_long(argc, argv, "s:m:h", opts, NULL)) != -1) {
		rc = img_parse_opt("build", opt, &o);
		if (rc != 1)
			return rc == 2 ? EXIT_OK : EXIT_USAGE;
	}
	if (argc - optind != 2)
		return cli_usage_err("build", "expected DIR OUT");
	dir = argv[optind];
	if (img_preflight())
		return EXIT_FAIL;
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		cli_err(dir, "not a directory");
		return EXIT_FAIL;
	}
	if (img_prepare_out(argv[optind + 1], out))
		return EXIT_FAIL;
	rc = img_begin(&w, out, o.vsize, &o.commit);
	if (!rc)
		rc = img_layer_begin(&w, true);
	if (!rc)
		rc = copy_tree(&w, dir);
	if (!rc)
		rc = img_layer_end(&w);
	if (!rc)
		rc = img_write_layout(&w, o.tag);
	img_end(&w);
	return rc ? EXIT_FAIL : EXIT_OK;
}
