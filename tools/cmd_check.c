// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd check: full verification of layers and stacks (fsck.erofs shape:
 * keep scanning, collect problems, print a verdict, map it to the exit
 * status). Problems and warnings are results: they go to stdout.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "cli_target.h"

#define CHECK_MAX_REPORTS	50	/* per layer; the rest are counted */
#define CHECK_BATCH		(1u << 20)

struct check_ctx {
	bool json, quiet;
	json_object *jlayers;
	json_object *jcur_problems, *jcur_warnings;
	const char *cur;
	unsigned int problems, warnings;
	unsigned int layer_problems, layer_warnings;
};

static void note(struct check_ctx *c, bool problem, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void note(struct check_ctx *c, bool problem, const char *fmt, ...)
{
	char msg[512], clean[512], fclean[512];
	unsigned int *cnt = problem ? &c->layer_problems : &c->layer_warnings;
	va_list ap;

	(*cnt)++;
	if (problem)
		c->problems++;
	else
		c->warnings++;
	if (*cnt > CHECK_MAX_REPORTS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cli_sanitize(msg, clean, sizeof(clean));
	if (c->json) {
		json_object_array_add(problem ? c->jcur_problems : c->jcur_warnings,
				      json_object_new_string(clean));
		return;
	}
	printf("%s: %s%s\n", c->cur ? cli_sanitize(c->cur, fclean, sizeof(fclean)) : "stack",
	       problem ? "" : "warning: ", clean);
	if (*cnt == CHECK_MAX_REPORTS)
		printf("%s: further %s not shown\n", c->cur ? fclean : "stack",
		       problem ? "problems" : "warnings");
}

/* The core prefixes messages with the io name; the report line has it. */
static const char *strip_name(const char *msg, const char *name)
{
	static char buf[512];
	const char *hit = strstr(msg, name);
	size_t fl = strlen(name);

	if (!hit || strncmp(hit + fl, ": ", 2))
		return msg;
	snprintf(buf, sizeof(buf), "%.*s%s", (int)(hit - msg), msg, hit + fl + 2);
	return buf;
}

static void begin_layer(struct check_ctx *c, const char *path)
{
	c->cur = path;
	c->layer_problems = c->layer_warnings = 0;
	if (c->json) {
		c->jcur_problems = json_object_new_array();
		c->jcur_warnings = json_object_new_array();
	}
}

static void end_layer(struct check_ctx *c, const char *kind, const char *extra)
{
	char clean[512];

	if (c->json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "path", json_object_new_string(
			cli_sanitize(c->cur ? c->cur : "stack", clean, sizeof(clean))));
		if (kind)
			json_object_object_add(j, "kind", json_object_new_string(kind));
		json_object_object_add(j, "ok", json_object_new_boolean(!c->layer_problems));
		json_object_object_add(j, "problem_count", json_object_new_int(
			(int)c->layer_problems));
		json_object_object_add(j, "problems", c->jcur_problems);
		json_object_object_add(j, "warnings", c->jcur_warnings);
		json_object_array_add(c->jlayers, j);
	} else if (!c->quiet && !c->layer_problems) {
		printf("%s: ok%s%s%s\n", cli_sanitize(c->cur ? c->cur : "stack", clean,
						      sizeof(clean)),
		       kind ? " (" : "", kind ? kind : "", kind ? (extra ? extra : ")") : "");
	}
}

/* Every block: CRC (when present) and a full decode to the right length. */
static void check_zfile_blocks(struct check_ctx *c, struct obd_zfile *zf)
{
	const struct obd_zfile_info *zi = &zf->info;
	u8 *batch = malloc(CHECK_BATCH + zf->max_stored), *dst = malloc(zi->block_size);
	struct cli_progress prog;
	u64 b = 0;

	if (!batch || !dst) {
		note(c, true, "out of memory");
		goto out_free;
	}
	if (!zi->verify)
		note(c, false, "ZFile has no block CRCs: only decoding is checked");
	cli_progress_start(&prog, "check", zi->nblocks);
	while (b < zi->nblocks) {
		u64 start, off;
		u64 e = b;
		u32 len;
		int rc;

		/* a run of blocks whose stored bytes fit the batch buffer */
		start = obd_zfile_block_start(zf, b);
		while (e < zi->nblocks && (obd_zfile_block_start(zf, e + 1) - start <= CHECK_BATCH ||
					   e == b))
			e++;
		rc = obd_io_read(zf->src, batch, obd_zfile_block_start(zf, e) - start, start);
		if (rc) {
			note(c, true, "ZFile blocks %llu..%llu at offset %llu: read failed: %s",
			     (unsigned long long)b, (unsigned long long)(e - 1),
			     (unsigned long long)start, strerror(-rc));
			b = e;
			continue;
		}
		for (; b < e; b++) {
			struct obd_err err = { "" };

			obd_zfile_block_range(zf, b, &off, &len);
			rc = obd_zfile_decode_block(zi, b, batch + (off - start), len, dst,
						    zf->codec, false, zf->src->name, &err);
			if (rc < 0)
				note(c, true, "ZFile block %llu (offset %llu, %u bytes): %s",
				     (unsigned long long)b, (unsigned long long)off, len,
				     err.msg[0] ? strip_name(err.msg, zf->src->name) :
				     strerror(-rc));
			else if ((u32)rc != obd_zfile_block_ulen(zi, b))
				note(c, true, "ZFile block %llu (offset %llu): decodes to %d bytes, expected %u",
				     (unsigned long long)b, (unsigned long long)off, rc,
				     obd_zfile_block_ulen(zi, b));
		}
		prog.done = b;
		cli_progress_add(&prog, 0);
	}
	cli_progress_end(&prog);
out_free:
	free(batch);
	free(dst);
}

static void check_lsmt_extra(struct check_ctx *c, struct obd_io *io,
			     const struct obd_lsmt_info *li, const struct obd_map *maps, u64 n)
{
	struct obd_lsmt_info hi;
	struct obd_err err = { "" };
	u64 vsect = li->virtual_size >> OBD_SECTOR_SHIFT, i;

	if (li->virtual_size % OBD_SECTOR_SIZE)
		note(c, false, "LSMT virtual_size %llu is not a multiple of 512",
		     (unsigned long long)li->virtual_size);
	for (i = 0; i < n; i++) {
		if (obd_map_end(&maps[i]) > vsect) {
			note(c, false, "LSMT index record %llu (lba %llu + %u) ends past virtual_size %llu",
			     (unsigned long long)i, (unsigned long long)maps[i].offset,
			     maps[i].length, (unsigned long long)li->virtual_size);
			break;
		}
	}
	if (obd_lsmt_read_header(io, &hi, &err)) {
		note(c, true, "LSMT header: %s", strip_name(err.msg, io->name));
		return;
	}
	if (hi.virtual_size != li->virtual_size)
		note(c, false, "LSMT header virtual_size %llu differs from the trailer's %llu",
		     (unsigned long long)hi.virtual_size, (unsigned long long)li->virtual_size);
	if (memcmp(hi.uuid, li->uuid, sizeof(hi.uuid)) &&
	    li->kind == OBD_LSMT_SEALED)
		note(c, false, "LSMT header uuid differs from the trailer's");
	if (!obd_uuid_is_null(li->uuid) && !obd_uuid_valid(li->uuid))
		note(c, false, "LSMT uuid is not a well-formed UUID string");
	if (!obd_uuid_is_null(li->parent_uuid) && !obd_uuid_valid(li->parent_uuid))
		note(c, false, "LSMT parent_uuid is not a well-formed UUID string");
}

/*
 * A TurboOCI layer's target: every target record inside it, and a gzip
 * target's index against the gzip stream itself.
 */
static void check_target(struct check_ctx *c, struct cli_target *tg, const struct obd_map *maps,
			 u64 n)
{
	u64 tsect = tg->io.size >> OBD_SECTOR_SHIFT, i, nt = 0;
	char msg[512];

	for (i = 0; i < n; i++) {
		if (!maps[i].target)
			continue;
		nt++;
		if (maps[i].moffset + maps[i].length > tsect)
			note(c, true, "target record %llu (lba %llu + %u): tar sectors %llu.. past the target's %llu",
			     (unsigned long long)i, (unsigned long long)maps[i].offset,
			     maps[i].length, (unsigned long long)maps[i].moffset,
			     (unsigned long long)tsect);
	}
	if (!c->quiet && !c->json)
		printf("%s: %llu records in the target %s (%s, %llu bytes of tar)\n", c->cur,
		       (unsigned long long)nt, tg->file.io.name, tg->gz ? "gzip" : "tar",
		       (unsigned long long)tg->io.size);
	if (tg->gz && cli_target_verify(tg, msg, sizeof(msg)))
		note(c, true, "gzip index of the target %s: %s", tg->file.io.name, msg);
}

/* Returns true if the layer is usable in a stack. */
static bool check_ro_layer(struct check_ctx *c, const char *path, const char *target,
			   const char *gzidx)
{
	struct cli_target *tg = NULL;
	struct obd_file_io f;
	struct obd_err err = { "" };
	struct obd_tar_info ti;
	struct obd_window win;
	struct obd_zfile zf;
	struct obd_io *src, *lsmt;
	struct obd_lsmt_info li;
	struct obd_map *maps = NULL;
	u64 n = 0;
	bool zf_open = false, ok = false;
	char kind[96] = "";
	int rc;

	if (target && cli_target_open(&tg, target, gzidx)) {
		note(c, true, "TurboOCI target %s does not open (see above)", target);
		end_layer(c, "turbo-oci", NULL);
		return false;
	}
	rc = obd_file_io_open(&f, path, &err);
	if (rc) {
		note(c, true, "%s", err.msg[0] ? strip_name(err.msg, path) : strerror(-rc));
		cli_target_close(tg);
		return false;
	}
	rc = obd_tar_probe(&f.io, &ti, &err);
	if (rc < 0) {
		note(c, true, "tar wrapper: %s", strip_name(err.msg, path));
		goto out_close;
	}
	if (rc == 1)
		obd_window_init(&win, &f.io, ti.payload_off, ti.payload_size);
	else
		obd_window_init(&win, &f.io, 0, f.io.size);
	if (rc == 1)
		strcat(kind, "tar, ");
	src = &win.io;
	rc = obd_zfile_probe(src, &err);
	if (rc < 0) {
		note(c, true, "ZFile header: %s", strip_name(err.msg, path));
		goto out_close;
	}
	lsmt = src;
	if (rc == 1) {
		rc = obd_zfile_open(&zf, src, &obd_user_codec, &err);
		if (rc) {
			note(c, true, "ZFile: %s", strip_name(err.msg, path));
			goto out_close;
		}
		zf_open = true;
		strcat(kind, "zfile, ");
		check_zfile_blocks(c, &zf);
		lsmt = &zf.io;
	}
	rc = tg ? obd_lsmt_open_warp(lsmt, &li, &maps, &n, tg->io.size, &err) :
		  obd_lsmt_open_ro(lsmt, &li, &maps, &n, &err);
	if (rc) {
		struct obd_lsmt_info hi;

		if (!zf_open && !obd_lsmt_read_header(lsmt, &hi, NULL) &&
		    hi.kind == OBD_LSMT_RW_INDEX)
			note(c, true, "this is the index file of a writable layer: give DATA INDEX");
		else
			note(c, true, "LSMT: %s", strip_name(err.msg, path));
		goto out_close;
	}
	check_lsmt_extra(c, lsmt, &li, maps, n);
	if (tg)
		check_target(c, tg, maps, n);
	strcat(kind, li.kind == OBD_LSMT_COMMITTED ? "committed" : "sealed");
	if (tg)
		strcat(kind, ", turbo-oci");
	ok = !c->layer_problems;
out_close:
	if (maps)
		obd_free(maps);
	if (zf_open)
		obd_zfile_close(&zf);
	obd_file_io_close(&f);
	cli_target_close(tg);
	end_layer(c, kind[0] ? kind : NULL, NULL);
	return ok;
}

static int do_check(struct check_ctx *c, int argc, char **argv, bool from_config,
		    const char *cfg, char **targets, char **gzidx)
{
	int a, stack_ok = 1;
	unsigned int nl = 0, nlow = targets ? (unsigned int)argc : 0;

	for (a = 0; a < argc; a++) {
		enum cli_layer_kind kind;
		bool raw;

		begin_layer(c, argv[a]);
		if (!cli_peek_kind(argv[a], &kind, &raw) &&
		    (kind == CLI_KIND_RW_APPEND || kind == CLI_KIND_RW_SPARSE)) {
			struct cli_layer l;
			const char *index = NULL;

			if (kind == CLI_KIND_RW_APPEND && (from_config ? a + 1 < argc :
							   a == argc - 2))
				index = argv[a + 1];
			if (kind == CLI_KIND_RW_APPEND && !index) {
				note(c, true, "writable (append) layer: its INDEX file must follow it (and it must be the top)");
				stack_ok = 0;
				end_layer(c, NULL, NULL);
				continue;
			}
			/* the RW reader verifies record ranges and replays the log */
			if (cli_layer_open(&l, argv[a], index, CLI_STACK_ALLOW_RW)) {
				note(c, true, "writable layer does not open (see above)");
				stack_ok = 0;
			} else {
				cli_layer_close(&l);
			}
			end_layer(c, cli_kind_name(kind), NULL);
			if (index)
				a++;
			nl++;
			continue;
		}
		if (!check_ro_layer(c, argv[a], targets && a < (int)nlow ? targets[a] : NULL,
				    gzidx && a < (int)nlow ? gzidx[a] : NULL))
			stack_ok = 0;
		nl++;
	}
	(void)cfg;
	/* One layer is a stack too: its virtual size must be usable as a disk. */
	if (stack_ok) {
		struct cli_stack s;
		unsigned int i;

		begin_layer(c, NULL);
		if (from_config ? cli_stack_open(&s, 1, (char **)&cfg,
						 CLI_STACK_ALLOW_RW | CLI_STACK_NO_VERIFY |
						 CLI_STACK_TURBO) :
		    cli_stack_open(&s, argc, argv, CLI_STACK_ALLOW_RW | CLI_STACK_NO_VERIFY)) {
			note(c, true, "the layers do not stack (see above)");
		} else {
			for (i = 1; i < s.n; i++) {
				const struct obd_lsmt_info *lo = &s.layers[i - 1].info;
				const struct obd_lsmt_info *up = &s.layers[i].info;
				char a1[OBD_UUID_STR_LEN], a2[OBD_UUID_STR_LEN];

				cli_sanitize_n(up->parent_uuid, OBD_UUID_STR_LEN, a1, sizeof(a1));
				cli_sanitize_n(lo->uuid, OBD_UUID_STR_LEN, a2, sizeof(a2));
				if (obd_uuid_is_null(up->parent_uuid) || obd_uuid_is_null(lo->uuid))
					continue;
				if (strcasecmp(a1, a2))
					note(c, false, "layer %u parent_uuid %s is not layer %u's uuid %s",
					     i, a1, i - 1, a2);
			}
			for (i = 0; i + 1 < s.n; i++)
				if (s.layers[i].info.virtual_size > s.vsize)
					note(c, false, "layer %u virtual size %llu is larger than the stack's %llu",
					     i, (unsigned long long)s.layers[i].info.virtual_size,
					     (unsigned long long)s.vsize);
			if (nl > 1 && !c->quiet && !c->json && !c->layer_problems)
				printf("stack: %u layers, %llu merged segments, virtual size %llu\n",
				       s.n, (unsigned long long)s.idx.n,
				       (unsigned long long)s.vsize);
			cli_stack_close(&s);
		}
		if ((nl > 1 && c->json) || c->layer_problems)
			end_layer(c, "stack", NULL);
	}
	return 0;
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		CLI_PROGRESS_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct check_ctx c = { 0 };
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "jqh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': c.json = true; break;
		case 'q': c.quiet = true; break;
		case CLI_OPT_PROGRESS: cli_progress_mode = 1; break;
		case CLI_OPT_NO_PROGRESS: cli_progress_mode = 0; break;
		case 'h': return cli_help("check");
		default: return cli_usage_err("check", "bad option");
		}
	}
	if (optind >= argc)
		return cli_usage_err("check", "no layer given");
	if (c.json)
		c.jlayers = json_object_new_array();
	if (argc - optind == 1 && cli_is_config(argv[optind])) {
		char **paths, *ud, *ui, **targets = NULL, **gzidx = NULL;
		unsigned int n, i, k = 0;
		char **all;

		if (cli_config_load_turbo(argv[optind], &paths, &n, &ud, &ui, &targets, &gzidx)) {
			c.problems++;
			goto out_verdict;
		}
		all = calloc(n + 2, sizeof(*all));
		for (i = 0; all && i < n; i++)
			all[k++] = paths[i];
		if (all && ud) {
			all[k++] = ud;
			all[k++] = ui;
		}
		if (all)
			do_check(&c, (int)k, all, true, argv[optind], targets, gzidx);
		else
			c.problems++;
		for (i = 0; i < n; i++) {
			free(paths[i]);
			free(targets[i]);
			free(gzidx[i]);
		}
		free(targets);
		free(gzidx);
		free(paths);
		free(ud);
		free(ui);
		free(all);
	} else {
		do_check(&c, argc - optind, argv + optind, false, NULL, NULL, NULL);
	}
out_verdict:
	if (c.json) {
		json_object *root = json_object_new_object();

		json_object_object_add(root, "layers", c.jlayers);
		json_object_object_add(root, "problems", json_object_new_int((int)c.problems));
		json_object_object_add(root, "warnings", json_object_new_int((int)c.warnings));
		json_object_object_add(root, "clean", json_object_new_boolean(!c.problems));
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(root);
	} else if (c.problems) {
		printf("Found %u problem%s, %u warning%s\n", c.problems, c.problems == 1 ? "" : "s",
		       c.warnings, c.warnings == 1 ? "" : "s");
	} else if (!c.quiet) {
		printf("No problems found%s\n", c.warnings ? " (see warnings)" : "");
	}
	return c.problems ? EXIT_FAIL : EXIT_OK;
}
