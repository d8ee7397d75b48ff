// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd list: device-mapper devices whose table uses the overlaybd target.
 * Remote layers (remote:<size>:sha256:<hex>:<cache file>) are shown with
 * their digest and the bytes their cache entry holds.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libdevmapper.h>

#include "cache_entry.h"
#include "cli.h"
#include "cli_dm.h"
#include "dm_table.h"

/*
 * A remote layer's token, remote:<size>:sha256:<hex>:<cache file>, as
 * {layer, digest, size, cache_file, cached_bytes} (cached_bytes from the
 * .meta bitmap; null when the entry cannot be read).
 */
static json_object *remote_of(const char *tok, unsigned int idx)
{
	char digest[OBD_DIGEST_STR_LEN + 1], err[512];
	u8 raw[OBD_CACHE_DIGEST_LEN];
	const char *p = tok + 7, *dig;
	struct cache_entry e;
	unsigned long long size;
	json_object *o;
	char *end;

	size = strtoull(p, &end, 10);
	if (end == p || *end != ':')
		return NULL;
	dig = end + 1;
	if (strlen(dig) < OBD_DIGEST_STR_LEN + 2 || dig[OBD_DIGEST_STR_LEN] != ':' ||
	    obd_digest_parse(dig, OBD_DIGEST_STR_LEN, raw))
		return NULL;
	memcpy(digest, dig, OBD_DIGEST_STR_LEN);
	digest[OBD_DIGEST_STR_LEN] = 0;
	o = json_object_new_object();
	json_object_object_add(o, "layer", json_object_new_int((int)idx));
	json_object_object_add(o, "digest", json_object_new_string(digest));
	json_object_object_add(o, "size", json_object_new_uint64(size));
	json_object_object_add(o, "cache_file",
			       json_object_new_string(dig + OBD_DIGEST_STR_LEN + 1));
	if (!cache_entry_open_existing(&e, dig + OBD_DIGEST_STR_LEN + 1, size, raw, err,
				       sizeof(err))) {
		json_object_object_add(o, "cached_bytes",
				       json_object_new_uint64(cache_entry_present_bytes(&e)));
		cache_entry_close(&e);
	} else {
		json_object_object_add(o, "cached_bytes", NULL);
	}
	return o;
}

/*
 * The layer words of a table -> a JSON array; remote ones also in *remote.
 * A line that does not parse still shows the layers read before the
 * problem: a listing shows what it can (obd snapshot refuses such a line).
 */
static json_object *layers_of(const char *params, unsigned int *n, json_object *remote)
{
	json_object *arr = json_object_new_array();
	char *copy = strdup(params);
	struct obd_table t;
	unsigned int i;

	*n = 0;
	if (!copy)
		return arr;
	(void)obd_table_parse(copy, &t);
	for (i = 0; i < t.n; i++) {
		const char *rw = t.targets[i] ? t.targets[i] : t.layers[i];

		if (t.targets[i]) {
			/* a warp layer: "turbo <meta> <target>", its words as the table has them */
			char *w = NULL;

			if (asprintf(&w, "turbo %s %s", t.layers[i], t.targets[i]) < 0)
				w = NULL;
			json_object_array_add(arr, json_object_new_string(w ? w : t.layers[i]));
			free(w);
		} else {
			json_object_array_add(arr, json_object_new_string(t.layers[i]));
		}
		if (!strncmp(rw, "remote:", 7)) {
			json_object *r = remote_of(rw, i);

			if (r && t.targets[i])
				json_object_object_add(r, "turbo_target", json_object_new_boolean(1));
			if (r)
				json_object_array_add(remote, r);
		}
	}
	*n = t.n;
	free(copy);
	return arr;
}

/*
 * Text form of one layer: its path, or remote:<digest>:cached=<bytes>/<size>;
 * a warp layer: turbo <meta> <target path or that remote form>.
 */
static void print_layer(json_object *d, size_t k, const char *word)
{
	const char *target = NULL;
	json_object *rs, *v;
	size_t i;

	if (!strncmp(word, "turbo ", 6)) {
		target = strrchr(word, ' ') + 1;
		printf("%.*s", (int)(target - word), word);
		word = target;
	}
	if (json_object_object_get_ex(d, "remote", &rs)) {
		for (i = 0; i < json_object_array_length(rs); i++) {
			json_object *r = json_object_array_get_idx(rs, i);
			json_object *dg, *sz;

			json_object_object_get_ex(r, "layer", &v);
			if ((size_t)json_object_get_int(v) != k ||
			    json_object_object_get_ex(r, "turbo_target", NULL) != !!target)
				continue;
			json_object_object_get_ex(r, "digest", &dg);
			json_object_object_get_ex(r, "size", &sz);
			json_object_object_get_ex(r, "cached_bytes", &v);
			printf("remote:%s:cached=%s/%llu", json_object_get_string(dg),
			       v ? json_object_get_string(v) : "?",
			       (unsigned long long)json_object_get_uint64(sz));
			return;
		}
	}
	printf("%s", word);
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_object *root = json_object_new_array();
	struct dm_task *dmt;
	struct dm_names *nm;
	unsigned int next = 0;
	bool json = false;
	int opt, ret = EXIT_FAIL;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'h': json_object_put(root); return cli_help("list");
		default: json_object_put(root); return cli_usage_err("list", "bad option");
		}
	}
	if (optind != argc) {
		json_object_put(root);
		return cli_usage_err("list", "too many arguments");
	}
	if (cli_dm_init()) {
		json_object_put(root);
		return EXIT_FAIL;
	}
	dmt = dm_task_create(DM_DEVICE_LIST);
	if (!dmt || !dm_task_run(dmt)) {
		cli_err(NULL, "listing devices: %s", cli_dm_last_error());
		goto out;
	}
	nm = dm_task_get_names(dmt);
	if (nm && nm->dev) {
		do {
			struct dm_task *t = dm_task_create(DM_DEVICE_TABLE);
			uint64_t start, length;
			char *type = NULL, *params = NULL;

			nm = (struct dm_names *)((char *)nm + next);
			next = nm->next;
			if (!t)
				continue;
			if (dm_task_set_name(t, nm->name) && dm_task_run(t)) {
				dm_get_next_target(t, NULL, &start, &length, &type, &params);
				if (type && !strcmp(type, OBD_DM_TARGET)) {
					json_object *d = json_object_new_object();
					json_object *rem = json_object_new_array();
					unsigned int n;

					json_object_object_add(d, "name", json_object_new_string(nm->name));
					json_object_object_add(d, "size",
						json_object_new_uint64((uint64_t)length << 9));
					json_object_object_add(d, "layers",
							       layers_of(params ? params : "", &n, rem));
					json_object_object_add(d, "remote", rem);
					json_object_object_add(d, "table", json_object_new_string(params ? params : ""));
					json_object_array_add(root, d);
				}
			}
			dm_task_destroy(t);
		} while (next);
	}
	if (json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "devices", json_object_get(root));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		size_t i, k;

		for (i = 0; i < json_object_array_length(root); i++) {
			json_object *d = json_object_array_get_idx(root, i), *v, *ls;

			json_object_object_get_ex(d, "name", &v);
			printf("%s", json_object_get_string(v));
			json_object_object_get_ex(d, "size", &v);
			printf("\t%llu", (unsigned long long)json_object_get_uint64(v));
			json_object_object_get_ex(d, "layers", &ls);
			for (k = 0; k < json_object_array_length(ls); k++) {
				printf("%s", k ? " " : "\t");
				print_layer(d, k, json_object_get_string(json_object_array_get_idx(ls, k)));
			}
			printf("\n");
		}
	}
	ret = EXIT_OK;
out:
	if (dmt)
		dm_task_destroy(dmt);
	json_object_put(root);
	return ret;
}
