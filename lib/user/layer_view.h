/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The image as one OCI layer's members see it while the layer is applied,
 * userspace only (obd convert, tools/cmd_convert.c).
 *
 * A layer tar names its members by their paths in the image, and the
 * standard appliers (containerd, umoci, docker) resolve those paths with
 * chroot semantics: an absolute symlink of a lower layer (Debian's
 * var/run -> /run) starts again at the image's root. GNU tar, which
 * extracts for us (owners, xattrs, devices, sparse files, every
 * compression), resolves them as the host does: it would write to the
 * host's /run. So before extracting, every member is resolved here, in
 * the view of the lower layers (the mounted file system) plus what the
 * layer itself made before it (directories that replace a lower symlink,
 * its own symlinks), and each parent directory that resolves elsewhere
 * than its literal path gets a tar --transform that names the resolved
 * one. What tar then writes goes only through real directories.
 */
#ifndef OBD_LAYER_VIEW_H
#define OBD_LAYER_VIEW_H

#include <limits.h>
#include <stddef.h>

/* One member, as one line of `tar -tv --quoting-style=c --numeric-owner` lists it. */
struct tar_member {
	char type;		/* 'd', 'l' (symlink), 'h' (hard link), '-' anything else */
	char name[PATH_MAX];	/* as stored in the archive, unquoted */
	char link[PATH_MAX];	/* a symlink's target or a hard link's target member */
};

/*
 * Parse one listing line into m. 1 for a member, 0 for a line that names
 * none (a volume label, a multi-volume continuation), -EINVAL for a line
 * that is not in the form above (or a name longer than PATH_MAX - 1).
 */
int tar_list_line(const char *line, struct tar_member *m);

struct layer_view;

/* Cap on parents resolved elsewhere: each is one regular expression tar
 * runs against every member. */
#define LAYER_VIEW_MAX_TRANSFORMS	1024

/* The view of the tree at root (a directory path), nothing of the layer in it yet. */
struct layer_view *layer_view_new(const char *root);
void layer_view_free(struct layer_view *v);

/* layer_view_resolve() flags */
#define LV_FOLLOW_LAST	1	/* follow the last component too (a directory wanted) */
#define LV_MISSING_OK	2	/* a missing component and all below it taken literally */
#define LV_LOWER_ONLY	4	/* the lower layers alone, as a whiteout sees them */

/*
 * The path of name inside the image, relative to root ("" is the root),
 * with chroot semantics: symlinks on the way (the lower layers' and the
 * layer's own) followed, an absolute target starting again at the root,
 * ".." stopping there. -ENOENT when a directory on the way is missing
 * (unless LV_MISSING_OK), -ENOTDIR when one is not a directory, -ELOOP
 * after 40 links, -ENAMETOOLONG.
 */
int layer_view_resolve(struct layer_view *v, const char *name, unsigned int flags,
		       char *out, size_t len);

/*
 * Take member m (in archive order): its parent (and a hard link's target's
 * parent) resolved and remembered, the member itself entered into the
 * view. -EXDEV when one literal parent would resolve to two places in the
 * same layer (a symlink the layer replaces after using it), -E2BIG past
 * LAYER_VIEW_MAX_TRANSFORMS; err says which member and why.
 */
int layer_view_add(struct layer_view *v, const struct tar_member *m, char *err, size_t errlen);

/*
 * The tar arguments ("--transform=s|^...|...|xS", one per parent that
 * resolves elsewhere) in *args, *n of them; the strings live as long as v.
 * -EINVAL when a path has every delimiter character in it, -ENOMEM.
 */
int layer_view_transforms(struct layer_view *v, char ***args, unsigned int *n);

#endif
