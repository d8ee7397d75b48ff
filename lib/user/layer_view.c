// SPDX-License-Identifier: GPL-2.0-only
/*
 * One OCI layer's view of the image while it is applied (layer_view.h):
 * chroot-semantics path resolution over the lower layers plus the
 * layer's own members, and the tar --transform arguments that make GNU
 * tar write where containerd and umoci would.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layer_view.h"

#define MAX_LINKS	40

/* ------------------------------------------------------------------------
 * A string map (open addressing), for the two tables of a view
 * ------------------------------------------------------------------------ */

struct map_entry {
	char *key;
	char *val;	/* a symlink's target, a parent's resolution; may be NULL */
	char type;
};

struct map {
	struct map_entry *e;
	size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static struct map_entry *map_slot(const struct map *m, const char *key)
{
	size_t i = hash_str(key) & (m->cap - 1);

	while (m->e[i].key && strcmp(m->e[i].key, key))
		i = (i + 1) & (m->cap - 1);
	return &m->e[i];
}

static struct map_entry *map_get(const struct map *m, const char *key)
{
	struct map_entry *e;

	if (!m->cap)
		return NULL;
	e = map_slot(m, key);
	return e->key ? e : NULL;
}

static int map_grow(struct map *m)
{
	struct map old = *m;
	size_t i;

	m->cap = old.cap ? old.cap * 2 : 64;
	m->e = calloc(m->cap, sizeof(*m->e));
	if (!m->e) {
		*m = old;
		return -ENOMEM;
	}
	for (i = 0; i < old.cap; i++)
		if (old.e[i].key)
			*map_slot(m, old.e[i].key) = old.e[i];
	free(old.e);
	return 0;
}

/* Set key to (type, val), replacing what it had. */
static int map_put(struct map *m, const char *key, char type, const char *val)
{
	struct map_entry *e;
	char *k = NULL, *v = NULL;

	if ((m->n + 1) * 4 > m->cap * 3 && map_grow(m))
		return -ENOMEM;
	e = map_slot(m, key);
	if (val && !(v = strdup(val)))
		return -ENOMEM;
	if (!e->key) {
		k = strdup(key);
		if (!k) {
			free(v);
			return -ENOMEM;
		}
		e->key = k;
		m->n++;
	}
	free(e->val);
	e->val = v;
	e->type = type;
	return 0;
}

static void map_free(struct map *m)
{
	size_t i;

	for (i = 0; i < m->cap; i++) {
		free(m->e[i].key);
		free(m->e[i].val);
	}
	free(m->e);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------------
 * The listing
 * ------------------------------------------------------------------------ */

/* A C-quoted string at s (after its opening quote) into out; the end past its closing quote. */
static const char *unquote(const char *s, char *out, size_t len)
{
	size_t o = 0;
	char c;

	for (; *s && *s != '"'; s++) {
		c = *s;
		if (c == '\\') {
			s++;
			if (*s >= '0' && *s <= '7') {
				int v = 0, k;

				for (k = 0; k < 3 && *s >= '0' && *s <= '7'; k++)
					v = v * 8 + (*s++ - '0');
				s--;
				c = (char)v;
			} else {
				switch (*s) {
				case 'n': c = '\n'; break;
				case 't': c = '\t'; break;
				case 'r': c = '\r'; break;
				case 'a': c = '\a'; break;
				case 'b': c = '\b'; break;
				case 'f': c = '\f'; break;
				case 'v': c = '\v'; break;
				case '\0': return NULL;
				default: c = *s; break;	/* \\, \", \? */
				}
			}
		}
		if (!c || o + 1 >= len)
			return NULL;	/* a NUL in a name, or too long */
		out[o++] = c;
	}
	if (*s != '"')
		return NULL;
	out[o] = '\0';
	return s + 1;
}

int tar_list_line(const char *line, struct tar_member *m)
{
	const char *q = strchr(line, '"');

	memset(m, 0, sizeof(*m));
	/*
	 * "<type><mode 9>[+*.] <uid>/<gid> <size> <date> <time> "NAME"...": no
	 * quote before the name's (numeric owners, sizes or "major,minor").
	 */
	if (strlen(line) < 11 || !q ||
	    (line[10] != ' ' && !(strchr("+*.", line[10]) && line[11] == ' ')))
		return -EINVAL;
	if (line[0] == 'V' || line[0] == 'M')	/* a volume label, a continued file */
		return 0;
	q = unquote(q + 1, m->name, sizeof(m->name));
	if (!q || !m->name[0])
		return -EINVAL;
	switch (line[0]) {
	case 'd':
		m->type = 'd';
		return *q ? -EINVAL : 1;
	case 'l':
		m->type = 'l';
		if (strncmp(q, " -> \"", 5))
			return -EINVAL;
		break;
	case 'h':
		m->type = 'h';
		if (strncmp(q, " link to \"", 10))
			return -EINVAL;
		break;
	default:
		m->type = '-';
		return *q ? -EINVAL : 1;
	}
	q = unquote(strchr(q, '"') + 1, m->link, sizeof(m->link));
	return q && !*q && m->link[0] ? 1 : -EINVAL;
}

/* ------------------------------------------------------------------------
 * Resolution
 * ------------------------------------------------------------------------ */

struct layer_view {
	char *root;
	struct map made;	/* resolved path -> what the layer made there: 'd', 'l' (val), '-' */
	struct map parents;	/* literal parent -> its resolution (val); 'm': tar's differs */
	unsigned int moved;	/* parents the host would resolve elsewhere */
	char **args;
	unsigned int nargs;
};

struct layer_view *layer_view_new(const char *root)
{
	struct layer_view *v = calloc(1, sizeof(*v));

	if (v && !(v->root = strdup(root))) {
		free(v);
		v = NULL;
	}
	return v;
}

void layer_view_free(struct layer_view *v)
{
	unsigned int i;

	if (!v)
		return;
	map_free(&v->made);
	map_free(&v->parents);
	for (i = 0; i < v->nargs; i++)
		free(v->args[i]);
	free(v->args);
	free(v->root);
	free(v);
}

/* Move the first component of *rest into c (empty at the end). */
static int next_component(const char **rest, char *c, size_t len)
{
	const char *p = *rest, *e;

	while (*p == '/')
		p++;
	e = strchrnul(p, '/');
	if ((size_t)(e - p) >= len)
		return -ENAMETOOLONG;
	memcpy(c, p, e - p);
	c[e - p] = '\0';
	while (*e == '/')
		e++;
	*rest = e;
	return 0;
}

/*
 * cur = cur "/" c, or cur up one level for ".." (never above the root:
 * *clamped then, as the host would go above it).
 */
static int step(char *cur, size_t len, const char *c, bool *clamped)
{
	size_t cl = strlen(cur);

	if (!strcmp(c, "."))
		return 0;
	if (!strcmp(c, "..")) {
		char *slash = strrchr(cur, '/');

		if (slash)
			*slash = '\0';
		else if (cur[0])
			cur[0] = '\0';
		else
			*clamped = true;
		return 0;
	}
	if (cl + strlen(c) + 2 > len)
		return -ENAMETOOLONG;
	if (cl)
		cur[cl++] = '/';
	strcpy(cur + cl, c);
	return 0;
}

/*
 * What is at the image path p: the layer's own entry first (unless
 * LV_LOWER_ONLY; *made then), then the lower tree (unless a directory
 * above p is already known to be missing there).
 */
static int what_is(struct layer_view *v, const char *p, unsigned int flags, bool lower,
		   bool *made, char *target, size_t tlen)
{
	struct map_entry *e = flags & LV_LOWER_ONLY ? NULL : map_get(&v->made, p);
	char host[PATH_MAX];
	struct stat st;
	ssize_t n;

	*made = e != NULL;
	if (e) {
		if (e->type == 'l')
			snprintf(target, tlen, "%s", e->val);
		return e->type;
	}
	if (!lower)
		return 0;
	if (snprintf(host, sizeof(host), "%s/%s", v->root, p) >= (int)sizeof(host))
		return -ENAMETOOLONG;
	if (lstat(host, &st))
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode))
		return 'd';
	if (!S_ISLNK(st.st_mode))
		return '-';
	n = readlink(host, target, tlen - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	return 'l';
}

/*
 * layer_view_resolve(); *host_differs when the host would resolve name
 * elsewhere (an absolute symlink, a ".." above the root, a symlink the
 * layer made: tar writes those last, a placeholder file until then).
 */
static int resolve(struct layer_view *v, const char *name, unsigned int flags, char *out,
		   size_t len, bool *host_differs)
{
	char cur[PATH_MAX] = "", rest[PATH_MAX], tmp[PATH_MAX], c[PATH_MAX], target[PATH_MAX];
	const char *r = rest;
	unsigned int links = 0;
	bool missing = false, made;
	int t, rc;

	*host_differs = false;
	if (snprintf(rest, sizeof(rest), "%s", name) >= (int)sizeof(rest))
		return -ENAMETOOLONG;
	for (;;) {
		rc = next_component(&r, c, sizeof(c));
		if (rc)
			return rc;
		if (!*c)
			break;
		if (!strcmp(c, ".") || !strcmp(c, "..") || (!*r && !(flags & LV_FOLLOW_LAST))) {
			rc = step(cur, sizeof(cur), c, host_differs);
			if (rc)
				return rc;
			continue;
		}
		if (snprintf(tmp, sizeof(tmp), "%s%s%s", cur, *cur ? "/" : "", c) >=
		    (int)sizeof(tmp))
			return -ENAMETOOLONG;
		t = what_is(v, tmp, flags, !missing, &made, target, sizeof(target));
		if (t < 0)
			return t;
		if (t == 0) {
			if (!(flags & LV_MISSING_OK))
				return -ENOENT;
			missing = true;	/* tar makes it, and what is below, as directories */
		} else if (t == 'l') {
			if (++links > MAX_LINKS)
				return -ELOOP;
			if (target[0] == '/' || made)
				*host_differs = true;
			if (target[0] == '/')
				cur[0] = '\0';
			if (snprintf(tmp, sizeof(tmp), "%s/%s", target, r) >= (int)sizeof(tmp))
				return -ENAMETOOLONG;
			memcpy(rest, tmp, sizeof(rest));
			r = rest;
			continue;
		} else if (t != 'd') {
			return -ENOTDIR;
		}
		rc = step(cur, sizeof(cur), c, host_differs);
		if (rc)
			return rc;
	}
	if (strlen(cur) >= len)
		return -ENAMETOOLONG;
	strcpy(out, cur);
	return 0;
}

int layer_view_resolve(struct layer_view *v, const char *name, unsigned int flags,
		       char *out, size_t len)
{
	bool host_differs;

	return resolve(v, name, flags, out, len, &host_differs);
}

/* name without trailing slashes split into its literal parent and last component. */
static void split_name(const char *name, char *parent, char *base)
{
	size_t n = strlen(name);
	const char *slash;

	while (n > 1 && name[n - 1] == '/')
		n--;
	memcpy(base, name, n);
	base[n] = '\0';
	slash = strrchr(base, '/');
	if (!slash) {
		parent[0] = '\0';
		return;
	}
	memcpy(parent, base, slash - base);
	parent[slash - base] = '\0';
	memmove(base, slash + 1, strlen(slash + 1) + 1);
}

static const char *errname(int rc)
{
	return rc == -ENOTDIR ? "a directory on its path is not one" :
	       rc == -ELOOP ? "too many symlinks on its path" :
	       rc == -ENAMETOOLONG ? "its path is too long" : strerror(-rc);
}

/* Remember where the literal parent dir resolves to; its resolution in res. */
static int map_parent(struct layer_view *v, const char *name, const char *dir, char *res,
		      char *err, size_t errlen)
{
	struct map_entry *e = map_get(&v->parents, dir);
	bool moved;
	int rc;

	rc = resolve(v, dir, LV_FOLLOW_LAST | LV_MISSING_OK, res, PATH_MAX, &moved);
	if (rc) {
		snprintf(err, errlen, "member %s: %s", name, errname(rc));
		return rc;
	}
	if (e) {
		if (strcmp(e->val, res)) {
			snprintf(err, errlen,
				 "member %s: its directory %s resolves to /%s here but to /%s for an earlier member (the layer changes a symlink it wrote through)",
				 name, dir, res, e->val);
			return -EXDEV;
		}
		return 0;
	}
	if (moved && ++v->moved > LAYER_VIEW_MAX_TRANSFORMS) {
		snprintf(err, errlen, "member %s: more than %u directories reached through symlinks",
			 name, LAYER_VIEW_MAX_TRANSFORMS);
		return -E2BIG;
	}
	/* a relative symlink that stays inside resolves on the host as here: no transform */
	rc = map_put(&v->parents, dir, moved ? 'm' : '=', res);
	if (rc)
		snprintf(err, errlen, "member %s: out of memory", name);
	return rc;
}

int layer_view_add(struct layer_view *v, const struct tar_member *m, char *err, size_t errlen)
{
	char parent[PATH_MAX], base[PATH_MAX], res[PATH_MAX], at[PATH_MAX];
	int rc;

	if (m->type == 'h') {
		split_name(m->link, parent, base);
		if (*parent) {
			rc = map_parent(v, m->name, parent, res, err, errlen);
			if (rc)
				return rc;
		}
	}
	split_name(m->name, parent, base);
	res[0] = '\0';
	if (*parent) {
		rc = map_parent(v, m->name, parent, res, err, errlen);
		if (rc)
			return rc;
	}
	if (!strcmp(base, ".") || !strcmp(base, "..") || !strcmp(base, "/"))
		return 0;	/* the directory itself ("./"): nothing new in it */
	if (snprintf(at, sizeof(at), "%s%s%s", res, *res ? "/" : "", base) >= (int)sizeof(at)) {
		snprintf(err, errlen, "member %s: its path is too long", m->name);
		return -ENAMETOOLONG;
	}
	/* a directory replaces a lower symlink (tar and umoci both do) */
	rc = map_put(&v->made, at, m->type == 'h' ? '-' : m->type, m->type == 'l' ? m->link : NULL);
	if (rc)
		snprintf(err, errlen, "member %s: out of memory", m->name);
	return rc;
}

/* ------------------------------------------------------------------------
 * The transforms
 * ------------------------------------------------------------------------ */

/* not in the fixed part of the expression, not tar's ";" between expressions */
static const char DELIMS[] = "|,#@%!:~=\x01";

/* s with each of the specials backslash-escaped appended at *o. */
static int append_escaped(char **o, char *end, const char *s, const char *specials)
{
	for (; *s; s++) {
		if (strchr(specials, *s)) {
			if (*o + 1 >= end)
				return -ENAMETOOLONG;
			*(*o)++ = '\\';
		}
		if (*o + 1 >= end)
			return -ENAMETOOLONG;
		*(*o)++ = *s;
	}
	**o = '\0';
	return 0;
}

/*
 * "--transform=s<d>^/ *DIR/([^/]+/?)$<d>RES/\1<d>xS" (no space after the
 * slash): a member directly in DIR renamed, symlink targets left alone
 */
static char *transform_arg(const char *dir, const char *res, int *rc)
{
	size_t len = 2 * (strlen(dir) + strlen(res)) + 64;
	const char *d;
	char *a, *o, *end;

	*rc = -EINVAL;
	for (d = DELIMS; *d && (strchr(dir, *d) || strchr(res, *d)); d++)
		;
	if (!*d)
		return NULL;
	*rc = -ENOMEM;
	a = malloc(len);
	if (!a)
		return NULL;
	end = a + len;
	while (*dir == '/')
		dir++;
	o = a + sprintf(a, "--transform=s%c^/*", *d);
	if (append_escaped(&o, end, dir, ".[]()*+?{}|^$\\"))
		goto fail;
	o += sprintf(o, "/([^/]+/?)$%c", *d);
	if (append_escaped(&o, end, res, "\\&"))
		goto fail;
	sprintf(o, "%s\\1%cxS", *res ? "/" : "", *d);
	return a;
fail:
	*rc = -ENAMETOOLONG;	/* cannot happen: len allows every byte escaped */
	free(a);
	return NULL;
}

int layer_view_transforms(struct layer_view *v, char ***args, unsigned int *n)
{
	size_t i;
	int rc;

	if (!v->args && v->moved) {
		v->args = calloc(v->moved, sizeof(*v->args));
		if (!v->args)
			return -ENOMEM;
		for (i = 0; i < v->parents.cap; i++) {
			struct map_entry *e = &v->parents.e[i];

			if (!e->key || e->type != 'm')
				continue;
			v->args[v->nargs] = transform_arg(e->key, e->val, &rc);
			if (!v->args[v->nargs])
				return rc;
			v->nargs++;
		}
	}
	*args = v->args;
	*n = v->nargs;
	return 0;
}
