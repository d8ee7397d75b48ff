// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd info: one struct filled once per layer/stack, then either the text
 * or the JSON emitter (losetup's one-table-two-outputs shape).
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "cli_target.h"

struct info_layer {
	char path[512];
	const char *kind;
	bool tar, zfile;
	u64 file_size;
	u64 virtual_size;
	char uuid[OBD_UUID_STR_LEN];
	char parent_uuid[OBD_UUID_STR_LEN];
	char user_tag[OBD_LSMT_TAG_LEN + 1];
	u64 segments, zeroed;
	/* LSMT trailer (read-only layers) */
	bool has_trailer;
	u64 index_offset, index_size;
	/* tar */
	u64 tar_payload_off, tar_payload_size;
	/* ZFile */
	const char *zf_algo;
	u32 zf_block_size;
	bool zf_crc, zf_overwritten;
	u64 zf_blocks, zf_compressed, zf_original;
	char index_path[512];
	/* TurboOCI: the target */
	bool turbo, target_gz;
	char target[512];
	u64 target_size, target_records, gz_entries;
};

struct info_stack {
	unsigned int n;
	struct info_layer *layers;
	u64 merged_segments;
	u64 vsize;
	bool merged;
};

static const char *algo_name(u8 a)
{
	switch (a) {
	case OBD_ZFILE_ALGO_LZ4: return "lz4";
	case OBD_ZFILE_ALGO_ZSTD: return "zstd";
	case OBD_ZFILE_ALGO_LZO: return "lzo";
	}
	return "?";
}

static void fill_layer(struct info_layer *o, const struct cli_layer *l)
{
	u64 i;

	memset(o, 0, sizeof(*o));
	cli_sanitize(l->path, o->path, sizeof(o->path));
	if (l->index_path)
		cli_sanitize(l->index_path, o->index_path, sizeof(o->index_path));
	o->kind = cli_kind_name(l->kind);
	o->file_size = l->fio.io.size;
	o->virtual_size = l->info.virtual_size;
	cli_sanitize_n(l->info.uuid, OBD_UUID_STR_LEN, o->uuid, sizeof(o->uuid));
	cli_sanitize_n(l->info.parent_uuid, OBD_UUID_STR_LEN, o->parent_uuid,
		       sizeof(o->parent_uuid));
	cli_sanitize_n(l->info.user_tag, OBD_LSMT_TAG_LEN, o->user_tag, sizeof(o->user_tag));
	o->segments = l->nmaps;
	for (i = 0; i < l->nmaps; i++) {
		o->zeroed += l->maps[i].zeroed;
		o->target_records += l->maps[i].target;
	}
	if (l->target) {
		o->turbo = true;
		o->target_gz = l->target->gz;
		o->target_size = l->target->io.size;
		o->gz_entries = l->target->gz ? l->target->gi.n : 0;
		cli_sanitize(l->target->io.name, o->target, sizeof(o->target));
	}
	if (!l->ro_open)
		return;
	o->has_trailer = true;
	o->index_offset = l->info.index_offset;
	o->index_size = l->info.index_size;
	if (l->ro.wrap & OBD_WRAP_TAR) {
		o->tar = true;
		o->tar_payload_off = l->ro.tar.payload_off;
		o->tar_payload_size = l->ro.tar.payload_size;
	}
	if (l->ro.wrap & OBD_WRAP_ZFILE) {
		const struct obd_zfile_info *zi = &l->ro.zf.info;

		o->zfile = true;
		o->zf_algo = algo_name(zi->algo);
		o->zf_block_size = zi->block_size;
		o->zf_crc = zi->verify;
		o->zf_overwritten = zi->overwritten;
		o->zf_blocks = zi->nblocks;
		o->zf_compressed = l->ro.window.io.size;
		o->zf_original = zi->original_size;
	}
}

static void text_layer(const struct info_layer *o, int idx)
{
	if (idx >= 0)
		printf("layer %d: %s\n", idx, o->path);
	else
		printf("%s\n", o->path);
	if (o->index_path[0])
		printf("  index file:       %s\n", o->index_path);
	printf("  kind:             %s\n", o->kind);
	printf("  wrapping:         %s\n", o->tar && o->zfile ? "tar, zfile" :
	       o->tar ? "tar" : o->zfile ? "zfile" : "none");
	printf("  file size:        %llu\n", (unsigned long long)o->file_size);
	printf("  virtual size:     %llu\n", (unsigned long long)o->virtual_size);
	printf("  uuid:             %s\n", o->uuid);
	printf("  parent uuid:      %s\n", o->parent_uuid);
	printf("  user tag:         %s\n", o->user_tag);
	printf("  segments:         %llu (%llu zeroed)\n", (unsigned long long)o->segments,
	       (unsigned long long)o->zeroed);
	if (o->has_trailer)
		printf("  index:            offset %llu, %llu records\n",
		       (unsigned long long)o->index_offset, (unsigned long long)o->index_size);
	if (o->tar)
		printf("  tar payload:      offset %llu, %llu bytes\n",
		       (unsigned long long)o->tar_payload_off,
		       (unsigned long long)o->tar_payload_size);
	if (o->zfile) {
		printf("  zfile algorithm:  %s\n", o->zf_algo);
		printf("  zfile block size: %u\n", o->zf_block_size);
		printf("  zfile crc:        %s\n", o->zf_crc ? "yes" : "no");
		printf("  zfile blocks:     %llu\n", (unsigned long long)o->zf_blocks);
		printf("  zfile size:       %llu compressed, %llu original\n",
		       (unsigned long long)o->zf_compressed, (unsigned long long)o->zf_original);
		printf("  header overwrite: %s\n", o->zf_overwritten ? "yes" : "no");
	}
	if (o->turbo) {
		printf("  turbo-oci target: %s\n", o->target);
		printf("  target:           %s, %llu bytes of tar, %llu records%s",
		       o->target_gz ? "gzip" : "tar", (unsigned long long)o->target_size,
		       (unsigned long long)o->target_records, o->target_gz ? ", " : "\n");
		if (o->target_gz)
			printf("gzip index of %llu entries\n", (unsigned long long)o->gz_entries);
	}
}

static json_object *jstr(const char *s)
{
	return json_object_new_string(s);
}

static json_object *ju64(u64 v)
{
	return json_object_new_uint64(v);
}

static json_object *json_layer(const struct info_layer *o)
{
	json_object *j = json_object_new_object(), *w = json_object_new_array();

	json_object_object_add(j, "path", jstr(o->path));
	if (o->index_path[0])
		json_object_object_add(j, "index_path", jstr(o->index_path));
	json_object_object_add(j, "kind", jstr(o->kind));
	if (o->tar)
		json_object_array_add(w, jstr("tar"));
	if (o->zfile)
		json_object_array_add(w, jstr("zfile"));
	json_object_object_add(j, "wrapping", w);
	json_object_object_add(j, "file_size", ju64(o->file_size));
	json_object_object_add(j, "virtual_size", ju64(o->virtual_size));
	json_object_object_add(j, "uuid", jstr(o->uuid));
	json_object_object_add(j, "parent_uuid", jstr(o->parent_uuid));
	json_object_object_add(j, "user_tag", jstr(o->user_tag));
	json_object_object_add(j, "segments", ju64(o->segments));
	json_object_object_add(j, "zeroed", ju64(o->zeroed));
	if (o->has_trailer) {
		json_object_object_add(j, "index_offset", ju64(o->index_offset));
		json_object_object_add(j, "index_size", ju64(o->index_size));
	}
	if (o->tar) {
		json_object *t = json_object_new_object();

		json_object_object_add(t, "payload_offset", ju64(o->tar_payload_off));
		json_object_object_add(t, "payload_size", ju64(o->tar_payload_size));
		json_object_object_add(j, "tar", t);
	}
	if (o->zfile) {
		json_object *z = json_object_new_object();

		json_object_object_add(z, "algorithm", jstr(o->zf_algo));
		json_object_object_add(z, "block_size", json_object_new_int64(o->zf_block_size));
		json_object_object_add(z, "crc", json_object_new_boolean(o->zf_crc));
		json_object_object_add(z, "blocks", ju64(o->zf_blocks));
		json_object_object_add(z, "compressed_size", ju64(o->zf_compressed));
		json_object_object_add(z, "original_size", ju64(o->zf_original));
		json_object_object_add(z, "header_overwritten",
				       json_object_new_boolean(o->zf_overwritten));
		json_object_object_add(j, "zfile", z);
	}
	if (o->turbo) {
		json_object *t = json_object_new_object();

		json_object_object_add(t, "path", jstr(o->target));
		json_object_object_add(t, "compression", jstr(o->target_gz ? "gzip" : "none"));
		json_object_object_add(t, "tar_size", ju64(o->target_size));
		json_object_object_add(t, "records", ju64(o->target_records));
		if (o->target_gz)
			json_object_object_add(t, "gzip_index_entries", ju64(o->gz_entries));
		json_object_object_add(j, "turbo_oci_target", t);
	}
	return j;
}

static void emit_text(const struct info_stack *st)
{
	unsigned int i;

	for (i = 0; i < st->n; i++) {
		if (i)
			printf("\n");
		text_layer(&st->layers[i], st->n > 1 ? (int)i : -1);
	}
	if (st->n > 1) {
		printf("\nstack: %u layers (bottom first)\n", st->n);
		printf("  virtual size:     %llu\n", (unsigned long long)st->vsize);
		printf("  merged segments:  %llu\n", (unsigned long long)st->merged_segments);
	}
}

static void emit_json(const struct info_stack *st)
{
	json_object *root = json_object_new_object(), *arr = json_object_new_array();
	unsigned int i;

	for (i = 0; i < st->n; i++)
		json_object_array_add(arr, json_layer(&st->layers[i]));
	json_object_object_add(root, "layers", arr);
	json_object_object_add(root, "virtual_size", ju64(st->vsize));
	json_object_object_add(root, "merged_segments", ju64(st->merged_segments));
	printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
}

int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct info_stack st = { 0 };
	struct cli_stack s;
	bool json = false;
	unsigned int i;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': return cli_help("info");
		default: return cli_usage_err("info", "bad option");
		}
	}
	if (optind >= argc)
		return cli_usage_err("info", "no layer given");
	if (cli_stack_open(&s, argc - optind, argv + optind, CLI_STACK_ALLOW_RW | CLI_STACK_TURBO))
		return EXIT_FAIL;
	st.n = s.n;
	st.layers = calloc(s.n, sizeof(*st.layers));
	if (!st.layers) {
		cli_stack_close(&s);
		cli_err(NULL, "out of memory");
		return EXIT_FAIL;
	}
	for (i = 0; i < s.n; i++)
		fill_layer(&st.layers[i], &s.layers[i]);
	st.vsize = s.vsize;
	st.merged_segments = s.idx.n;
	st.merged = true;
	if (json)
		emit_json(&st);
	else
		emit_text(&st);
	free(st.layers);
	cli_stack_close(&s);
	return EXIT_OK;
}
