// SPDX-License-Identifier: GPL-2.0-only
/*
 * layer_view (obd convert's member resolution): the tar listing parser,
 * chroot-semantics resolution over a lower tree and the layer's own
 * members, and the --transform arguments, checked by a real GNU tar
 * extraction that must write only inside the root.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layer_view.h"
#include "tap.h"

static char root[PATH_MAX], esc[PATH_MAX];

#define tap_bail(...) \
	do { printf("Bail out! "); printf(__VA_ARGS__); printf("\n"); exit(1); } while (0)

static int line(const char *l, struct tar_member *m)
{
	return tar_list_line(l, m);
}

static void test_listing(void)
{
	struct tar_member m;

	tap_ok(line("drwxr-xr-x 0/0               0 2026-12-04 18:27 \"var/run/\"", &m) == 1 &&
	       m.type == 'd' && !strcmp(m.name, "var/run/"), "a directory");
	tap_ok(line("lrwxrwxrwx 0/0 0 2026-12-04 18:26 \"var/l\\\"nk -> x\" -> \"/a b -> c\"", &m) == 1 &&
	       m.type == 'l' && !strcmp(m.name, "var/l\"nk -> x") && !strcmp(m.link, "/a b -> c"),
	       "a symlink whose name and target hold quotes and ' -> '");
	tap_ok(line("hrw-r--r-- 0/0 0 2026-12-04 18:26 \"var/run/hl\" link to \"./var/run/he \\\"llo\"",
		    &m) == 1 && m.type == 'h' && !strcmp(m.name, "var/run/hl") &&
	       !strcmp(m.link, "./var/run/he \"llo"), "a hard link");
	tap_ok(line("crw-rw-rw- 0/0 1,3 2026-12-04 18:26 \"dev/null\"", &m) == 1 && m.type == '-',
	       "a device is a plain member");
	tap_ok(line("-rw-r--r-- 0/0 3 2026-12-04 18:26 \"x/new\\nline \\303\\251\\\\\"", &m) == 1 &&
	       !strcmp(m.name, "x/new\nline \303\251\\"), "escapes: \\n, octal, backslash");
	tap_ok(line("V--------- 0/0 0 2026-12-04 18:26 \"label\"--Volume Header--", &m) == 0,
	       "a volume label names no member");
	tap_ok(line("-rw-r--r-- 0/0 3 2026-12-04 18:26 \"a\\000b\"", &m) == -EINVAL, "a NUL in a name");
	tap_ok(line("-rw-r--r-- 0/0 3 2026-12-04 18:26 \"unterminated", &m) == -EINVAL,
	       "no closing quote");
	tap_ok(line("-rw-r--r-- 0/0 3 2026-12-04 18:26 \"a\" junk", &m) == -EINVAL,
	       "something after a plain member's name");
	tap_ok(line("lrwxrwxrwx 0/0 0 2026-12-04 18:26 \"a\"", &m) == -EINVAL, "a symlink without target");
	tap_ok(line("hrw-r--r-- 0/0 0 2026-12-04 18:26 \"a\" link to \"\"", &m) == -EINVAL,
	       "a hard link with an empty target");
	tap_ok(line("tar: Removing leading `/' from member names", &m) == -EINVAL, "not a listing line");
	tap_ok(line("-rw-r--r-- 0/0 3 2026-12-04 18:26 \"\"", &m) == -EINVAL, "an empty name");
}

static void mk(const char *kind, const char *p, const char *target)
{
	char path[PATH_MAX * 2];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", root, p);
	if (!strcmp(kind, "d"))
		rc = mkdir(path, 0755);
	else if (!strcmp(kind, "l"))
		rc = symlink(target, path);
	else
		rc = close(open(path, O_CREAT | O_WRONLY, 0644));
	if (rc)
		tap_bail("making %s: %s", path, strerror(errno));
}

static void lower_tree(void)
{
	snprintf(root, sizeof(root), "/tmp/obd-lv-%d", (int)getpid());
	snprintf(esc, sizeof(esc), "/tmp/obd-lv-esc-%d", (int)getpid());
	if (mkdir(root, 0755))
		tap_bail("mkdir %s: %s", root, strerror(errno));
	mk("d", "run", NULL); mk("f", "run/old", NULL);
	mk("d", "var", NULL); mk("l", "var/run", "/run");
	mk("d", "srv", NULL); mk("d", "srv/app", NULL); mk("d", "srv/conf", NULL);
	mk("l", "srv/app/cfg", "/srv/conf");
	mk("d", "opt", NULL); mk("l", "opt/app", "/srv/app");
	mk("d", "usr", NULL); mk("d", "usr/lib", NULL); mk("l", "lib", "usr/lib");
	mk("l", "up", "../../../srv");
	mk("l", "esc", esc);
	mk("l", "loop", "loop");
	mk("f", "file", NULL);
	mk("l", "lnkdir", "/srv/app");
	mk("l", "w|e,i#r@d%n!a:m~e=", "/srv");
}

static int res(struct layer_view *v, const char *name, unsigned int flags, const char *want)
{
	char out[PATH_MAX];
	int rc = layer_view_resolve(v, name, flags, out, sizeof(out));

	if (rc)
		return rc;
	if (strcmp(out, want))
		tap_diag("%s resolved to '%s', expected '%s'", name, out, want);
	return strcmp(out, want) ? -EDOM : 0;
}

static void test_resolve(void)
{
	struct layer_view *v = layer_view_new(root);
	char want[PATH_MAX + 8];

	tap_ok(!res(v, "var/run/x", 0, "run/x"), "an absolute lower symlink starts at the root");
	tap_ok(!res(v, "/var/run", LV_FOLLOW_LAST, "run"), "the last component followed on request");
	tap_ok(!res(v, "var/run", 0, "var/run"), "... and not otherwise");
	tap_ok(!res(v, "opt/app/cfg/app.conf", 0, "srv/conf/app.conf"), "two absolute symlinks in a row");
	tap_ok(!res(v, "lib/libx.so", 0, "usr/lib/libx.so"), "a relative symlink");
	tap_ok(!res(v, "up/conf/x", 0, "srv/conf/x"), "'..' in a target stops at the root");
	tap_ok(!res(v, "../../var/run/../x", 0, "x"), "'..' in the name stops at the root");
	tap_ok(!res(v, "./var//run/./y", 0, "run/y"), "'.' and empty components");
	tap_ok(res(v, "esc/pwned", 0, "") == -ENOENT, "a target missing in the image: -ENOENT");
	snprintf(want, sizeof(want), "%s/pwned", esc + 1);
	tap_ok(!res(v, "esc/pwned", LV_MISSING_OK, want),
	       "... inside the image with LV_MISSING_OK: /%s", want);
	tap_ok(res(v, "file/x", 0, "") == -ENOTDIR, "through a regular file: -ENOTDIR");
	tap_ok(res(v, "loop/x", 0, "") == -ELOOP, "a symlink loop: -ELOOP");
	layer_view_free(v);
}

static int add(struct layer_view *v, char type, const char *name, const char *link)
{
	struct tar_member m = { .type = type };
	char err[512];
	int rc;

	snprintf(m.name, sizeof(m.name), "%s", name);
	snprintf(m.link, sizeof(m.link), "%s", link ? link : "");
	rc = layer_view_add(v, &m, err, sizeof(err));
	if (rc)
		tap_diag("%s: %s", name, err);
	return rc;
}

static void test_members(void)
{
	struct layer_view *v = layer_view_new(root);
	char **args, want[PATH_MAX + 64];
	unsigned int n, i;
	bool found;

	tap_ok(!add(v, 'd', "./", NULL) && !add(v, 'd', "var/run/nginx/", NULL) &&
	       !add(v, '-', "var/run/nginx/pid", NULL) && !add(v, '-', "./var/run/hello", NULL) &&
	       !add(v, 'h', "var/run/hl", "./var/run/hello") &&
	       !add(v, '-', "opt/app/cfg/app.conf", NULL) && !add(v, '-', "lib/libx.so", NULL),
	       "members through lower symlinks");
	tap_ok(!res(v, "var/run/nginx/pid", 0, "run/nginx/pid"),
	       "a directory the layer made below a moved parent is found there");
	tap_ok(!add(v, 'd', "newdir/", NULL) && !add(v, 'l', "newdir/lnk", "/srv/conf") &&
	       !add(v, '-', "newdir/lnk/viaown", NULL) && !res(v, "newdir/lnk/viaown", 0, "srv/conf/viaown"),
	       "the layer's own absolute symlink is followed for later members");
	tap_ok(!add(v, 'd', "lnkdir/", NULL) && !add(v, '-', "lnkdir/inside", NULL) &&
	       !res(v, "lnkdir/inside", 0, "lnkdir/inside"),
	       "a directory member replaces a lower symlink: later members go into it");
	tap_ok(add(v, '-', "file/x", NULL) == -ENOTDIR, "a member below a regular file: refused");
	tap_ok(!add(v, '-', "usr", NULL) && res(v, "usr/lib", LV_FOLLOW_LAST, "") == -ENOTDIR &&
	       !res(v, "usr/lib", LV_FOLLOW_LAST | LV_LOWER_ONLY, "usr/lib"),
	       "LV_LOWER_ONLY: a whiteout below a directory the layer turns into a file sees the lower one");
	tap_ok(!layer_view_transforms(v, &args, &n), "transforms built");
	/* var/run, ./var/run, var/run/nginx, opt/app/cfg, newdir/lnk; not lib (relative) */
	tap_ok(n == 5, "one transform per parent the host resolves elsewhere (%u)", n);
	snprintf(want, sizeof(want), "--transform=s|^/*\\./var/run/([^/]+/?)$|run/\\1|xS");
	for (found = false, i = 0; i < n; i++)
		found |= !strcmp(args[i], want);
	tap_ok(found, "the './var/run' transform, escaped: %s", want);
	layer_view_free(v);

	v = layer_view_new(root);
	tap_ok(!add(v, '-', "var/run/a", NULL) && !add(v, 'd', "var/run/", NULL) &&
	       add(v, '-', "var/run/b", NULL) == -EXDEV,
	       "a parent that resolves to two places in one layer: refused");
	layer_view_free(v);
	v = layer_view_new(root);
	tap_ok(!add(v, '-', "w|e,i#r@d%n!a:m~e=/x", NULL) && !layer_view_transforms(v, &args, &n) &&
	       n == 1 && args[0][13] == '\x01' && !strcmp(args[0] + strlen(args[0]) - 6, "/\\1\x01xS"),
	       "a directory named with the usual delimiters: \\x01 delimits");
	layer_view_free(v);
}

/* A real layer through GNU tar: what is written, and only inside the root. */
static void test_tar(void)
{
	char cmd[8 * PATH_MAX], l[PATH_MAX * 3], err[512], stage[PATH_MAX + 8], p[PATH_MAX * 2];
	struct layer_view *v = layer_view_new(root);
	struct tar_member m;
	char **args;
	unsigned int n, i;
	int rc = 0, k;
	size_t off;
	FILE *f;
	static const char *const inside[] = {
		"run/nginx/pid", "run/hello", "run/hl", "srv/conf/app.conf", "usr/lib/libx.so",
		"tmp/obd-lv-esc-%d/pwned", "lnkdir/inside", "srv/conf/viaown",
	};

	snprintf(stage, sizeof(stage), "%s.stage", root);
	snprintf(cmd, sizeof(cmd),
		 "set -e; s=%s; rm -rf $s; mkdir -p $s/var/run/nginx $s/opt/app/cfg $s/lib $s/esc $s/lnkdir $s/newdir $s.2/newdir/lnk;"
		 "echo p > $s/var/run/nginx/pid; echo h > $s/var/run/hello; ln $s/var/run/hello $s/var/run/hl;"
		 "echo c > $s/opt/app/cfg/app.conf; echo l > $s/lib/libx.so; echo x > $s/esc/pwned;"
		 "echo i > $s/lnkdir/inside; ln -s /srv/conf $s/newdir/lnk; echo o > $s.2/newdir/lnk/viaown;"
		 "tar -C $s -cf %s.tar var/run/nginx ./var/run/hello var/run/hl opt/app/cfg/app.conf lib/libx.so esc/pwned lnkdir newdir;"
		 "tar -C $s.2 -rf %s.tar newdir/lnk/viaown",
		 stage, root, root);
	tap_ok(!system(cmd), "a layer tar made by GNU tar");
	snprintf(cmd, sizeof(cmd), "tar -tv --quoting-style=c --numeric-owner -f %s.tar", root);
	f = popen(cmd, "r");
	while (f && !rc && fgets(l, sizeof(l), f)) {
		l[strcspn(l, "\n")] = '\0';
		k = tar_list_line(l, &m);
		if (k < 0)
			tap_diag("listing line: %s", l);
		rc = k < 0 ? k : k ? layer_view_add(v, &m, err, sizeof(err)) : 0;
		if (rc > 0)
			rc = 0;
	}
	tap_ok(f && !pclose(f) && !rc, "its listing parsed, every member resolved");
	tap_ok(!layer_view_transforms(v, &args, &n) && n > 0, "transforms");
	off = (size_t)snprintf(cmd, sizeof(cmd), "tar -x -f %s.tar -C %s", root, root);
	for (i = 0; i < n && off < sizeof(cmd); i++)
		off += (size_t)snprintf(cmd + off, sizeof(cmd) - off, " '%s'", args[i]);
	tap_ok(off < sizeof(cmd) && !system(cmd), "tar -x with them");
	for (i = 0; i < sizeof(inside) / sizeof(inside[0]); i++) {
		char rel[PATH_MAX];

		snprintf(rel, sizeof(rel), inside[i], (int)getpid());
		snprintf(p, sizeof(p), "%s/%s", root, rel);
		tap_ok(!access(p, F_OK), "written inside the image at /%s", rel);
	}
	tap_ok(access(esc, F_OK) && access("/run/nginx/pid", F_OK) && access("/run/hello", F_OK),
	       "nothing written outside the root (%s, /run)", esc);
	snprintf(p, sizeof(p), "%s/run/hl", root);
	{
		struct stat a, b;
		char q[PATH_MAX * 2];

		snprintf(q, sizeof(q), "%s/run/hello", root);
		tap_ok(!stat(p, &a) && !stat(q, &b) && a.st_ino == b.st_ino,
		       "the hard link's target moved with it");
	}
	layer_view_free(v);
	snprintf(p, sizeof(p), "%s/newdir/lnk", root);
	tap_ok(readlink(p, l, sizeof(l)) == 9 && !memcmp(l, "/srv/conf", 9),
	       "the layer's own symlink is there at the end");
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s.stage %s.stage.2 %s.tar", root, root, root, root);
	if (system(cmd))
		tap_diag("cleanup failed");
}

int main(void)
{
	test_listing();
	lower_tree();
	test_resolve();
	test_members();
	test_tar();
	return tap_done();
}
