// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: the layer listing obd convert reads (tar_list_line,
 * lib/user/layer_view.c) and what the view makes of its members. Member names
 * come from the layer, which anyone may have written; tar quotes them.
 * Each input line is one listing line; members go into a view over a root
 * that does not exist (nothing of the host is looked at but ENOENT). A
 * member has a non-empty name and a known type, a link exactly when it is
 * a symlink or a hard link; a resolution is relative, without ".", ".."
 * or empty components; every transform is a tar s-expression.
 */
#include <errno.h>
#include <string.h>
#include "fuzz_common.h"
#include "layer_view.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FUZZ_NOCOV void check_path(const char *p)
{
	const char *c = p;

	FUZZ_CHECK(p[0] != '/', "resolution '%s' is absolute", p);
	while (*c) {
		const char *e = strchrnul(c, '/');
		size_t n = (size_t)(e - c);

		FUZZ_CHECK(n && !(n == 1 && c[0] == '.') && !(n == 2 && !memcmp(c, "..", 2)),
			   "resolution '%s' has an empty, '.' or '..' component", p);
		c = *e ? e + 1 : e;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tar_member m;
	static char line[PATH_MAX * 3], out[PATH_MAX];
	struct layer_view *v;
	char err[PATH_MAX + 256], **args;
	unsigned int n, i;
	size_t off = 0;
	int rc;

	if (size > 64 * 1024)
		return 0;
	v = layer_view_new("/nonexistent-obd-fuzz-root");
	if (!v)
		return 0;
	while (off < size) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = (nl ? (size_t)(nl - data) : size) - off;

		if (len >= sizeof(line))
			len = sizeof(line) - 1;
		memcpy(line, data + off, len);
		line[len] = '\0';
		off += len + 1;
		rc = tar_list_line(line, &m);
		FUZZ_CHECK(rc == -EINVAL || rc == 0 || rc == 1, "tar_list_line returned %d", rc);
		if (rc != 1)
			continue;
		FUZZ_CHECK(m.name[0] && strchr("dlh-", m.type), "member type %d name '%s'", m.type,
			   m.name);
		FUZZ_CHECK((m.type == 'l' || m.type == 'h') == (m.link[0] != 0),
			   "type %c with link '%s'", m.type, m.link);
		err[0] = '\0';
		rc = layer_view_add(v, &m, err, sizeof(err));
		FUZZ_CHECK(!rc || err[0], "refused (%d) without a message", rc);
		rc = layer_view_resolve(v, m.name, LV_MISSING_OK | LV_FOLLOW_LAST, out, sizeof(out));
		if (!rc)
			check_path(out);
	}
	if (!layer_view_transforms(v, &args, &n)) {
		FUZZ_CHECK(n <= LAYER_VIEW_MAX_TRANSFORMS, "%u transforms", n);
		for (i = 0; i < n; i++)
			FUZZ_CHECK(!strncmp(args[i], "--transform=s", 13) &&
				   !strcmp(args[i] + strlen(args[i]) - 2, "xS") &&
				   args[i][14] == '^', "transform '%s'", args[i]);
	}
	layer_view_free(v);
	return 0;
}
