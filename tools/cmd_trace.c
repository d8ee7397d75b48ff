// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd trace: record and replay the start-up reads of a dm-overlaybd device
 * as the reference's trace files (spec 6.7).
 *   record NAME FILE     trace start, FILE.lock, a watcher
 *   stop NAME            trace stop, write FILE + FILE.ok, trace clear
 *   show|dump FILE       validate and describe a trace (--json, --records)
 *   replay NAME FILE     prefetch messages from the trace's reads
 *   files NAME LIST      dynamic mode: prefetch the files of a file list
 *   build OUT [TEXT]     a trace from "[R|W] LAYER OFFSET COUNT" lines
 *   watch NAME           (background) stop once FILE.lock is deleted
 * The work is in cli_prefetch.c, which obd attach and detach share.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli.h"
#include "cli_dm.h"
#include "cli_prefetch.h"

static int one_device(int argc, char **argv, const char *sub, int want, const char **name)
{
	if (argc - optind != want)
		return cli_usage_err("trace", "trace %s: expected %s", sub,
				     want == 1 ? "NAME" : "NAME FILE");
	*name = argv[optind];
	if (!strncmp(*name, "/dev/mapper/", 12))
		*name += 12;
	return cli_dm_init() ? EXIT_FAIL : EXIT_OK;
}

/* Only --help: *done when it was given (or on a bad option), with the exit code. */
static int simple_opts(int argc, char **argv, const char *sub, bool *done)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	*done = true;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h')
			return cli_help("trace");
		return cli_usage_err("trace", "trace %s: bad option", sub);
	}
	*done = false;
	return EXIT_OK;
}

static int trace_record(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "no-watch", no_argument, NULL, 'W' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool watch = true, force = false;
	const char *name;
	struct stat st;
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (opt) {
		case 'W': watch = false; break;
		case 'f': force = true; break;
		case 'h': return cli_help("trace");
		default: return cli_usage_err("trace", "trace record: bad option");
		}
	}
	rc = one_device(argc, argv, "record", 2, &name);
	if (rc)
		return rc;
	if (!stat(argv[optind + 1], &st) && st.st_size) {
		if (!force) {
			cli_err(argv[optind + 1], "exists and is not empty (--force to record over it)");
			return EXIT_FAIL;
		}
		if (truncate(argv[optind + 1], 0)) {
			cli_err(argv[optind + 1], "%s", strerror(errno));
			return EXIT_FAIL;
		}
	}
	return cli_trace_record(name, argv[optind + 1], watch) ? EXIT_FAIL : EXIT_OK;
}

static int trace_stop(int argc, char **argv)
{
	const char *name;
	bool done;
	int rc = simple_opts(argc, argv, "stop", &done);

	if (done)
		return rc;
	rc = one_device(argc, argv, "stop", 1, &name);
	if (rc)
		return rc;
	return cli_trace_stop(name, CLI_STOP_CMD) ? EXIT_FAIL : EXIT_OK;
}

static int trace_watch(int argc, char **argv)
{
	const char *name;
	bool done;
	int rc = simple_opts(argc, argv, "watch", &done);

	if (done)
		return rc;
	rc = one_device(argc, argv, "watch", 1, &name);
	if (rc)
		return rc;
	return cli_trace_watch(name) ? EXIT_FAIL : EXIT_OK;
}

/* Per-layer totals of a trace. */
struct layer_sum {
	u64 reads, writes, bytes;
};

static void show_text(const struct cli_trace *t, const struct layer_sum *ls, bool records)
{
	u64 reads = 0, writes = 0, bytes = 0, i;
	unsigned int l, nl = 0;
	struct obd_trace_rec r;
	char clean[4200];

	for (l = 0; l < OBD_TRACE_LAYERS; l++) {
		reads += ls[l].reads;
		writes += ls[l].writes;
		bytes += ls[l].bytes;
		nl += ls[l].reads + ls[l].writes ? 1 : 0;
	}
	printf("%s: trace, %llu records (%llu reads, %llu writes), %llu bytes, %u layers\n",
	       cli_sanitize(t->name, clean, sizeof(clean)), (unsigned long long)t->n,
	       (unsigned long long)reads, (unsigned long long)writes, (unsigned long long)bytes, nl);
	for (l = 0; l < OBD_TRACE_LAYERS; l++)
		if (ls[l].reads + ls[l].writes)
			printf("  layer %u: %llu reads, %llu writes, %llu bytes\n", l,
			       (unsigned long long)ls[l].reads, (unsigned long long)ls[l].writes,
			       (unsigned long long)ls[l].bytes);
	for (i = 0; records && i < t->n; i++) {
		obd_trace_get(t->buf, i, &r);
		printf("  %c layer %u offset %llu count %llu\n", r.op, r.layer,
		       (unsigned long long)r.offset, (unsigned long long)r.count);
	}
}

static void show_json(const struct cli_trace *t, const struct layer_sum *ls, bool records)
{
	json_object *o = json_object_new_object(), *la = json_object_new_array(), *ra;
	u64 bytes = 0, i;
	struct obd_trace_rec r;
	unsigned int l;

	for (l = 0; l < OBD_TRACE_LAYERS; l++) {
		json_object *x;

		if (!(ls[l].reads + ls[l].writes))
			continue;
		x = json_object_new_object();
		json_object_object_add(x, "layer", json_object_new_int((int)l));
		json_object_object_add(x, "reads", json_object_new_uint64(ls[l].reads));
		json_object_object_add(x, "writes", json_object_new_uint64(ls[l].writes));
		json_object_object_add(x, "bytes", json_object_new_uint64(ls[l].bytes));
		json_object_array_add(la, x);
		bytes += ls[l].bytes;
	}
	json_object_object_add(o, "file", json_object_new_string(t->name));
	json_object_object_add(o, "records", json_object_new_uint64(t->n));
	json_object_object_add(o, "bytes", json_object_new_uint64(bytes));
	json_object_object_add(o, "checksum", json_object_new_uint64(obd_get_le32(t->buf + 16)));
	json_object_object_add(o, "layers", la);
	if (records) {
		ra = json_object_new_array();
		for (i = 0; i < t->n; i++) {
			json_object *x = json_object_new_object();
			char op[2] = { 0, 0 };

			obd_trace_get(t->buf, i, &r);
			op[0] = (char)r.op;
			json_object_object_add(x, "op", json_object_new_string(op));
			json_object_object_add(x, "layer", json_object_new_int((int)r.layer));
			json_object_object_add(x, "offset", json_object_new_uint64(r.offset));
			json_object_object_add(x, "count", json_object_new_uint64(r.count));
			json_object_array_add(ra, x);
		}
		json_object_object_add(o, "trace", ra);
	}
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static int trace_show(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "records", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct layer_sum *ls;
	struct obd_trace_rec r;
	bool json = false, records = false;
	struct cli_trace t;
	int opt, ret = EXIT_OK;
	u64 i;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "jrh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'r': records = true; break;
		case 'h': return cli_help("trace");
		default: return cli_usage_err("trace", "trace show: bad option");
		}
	}
	if (argc - optind < 1)
		return cli_usage_err("trace", "trace show: expected FILE...");
	for (; optind < argc; optind++) {
		if (cli_trace_load(argv[optind], &t)) {
			ret = EXIT_FAIL;
			continue;
		}
		ls = calloc(OBD_TRACE_LAYERS, sizeof(*ls));
		if (!ls) {
			cli_trace_free(&t);
			return EXIT_FAIL;
		}
		for (i = 0; i < t.n; i++) {
			obd_trace_get(t.buf, i, &r);
			if (r.op == OBD_TRACE_OP_READ)
				ls[r.layer].reads++;
			else
				ls[r.layer].writes++;
			ls[r.layer].bytes += r.count;
		}
		if (json)
			show_json(&t, ls, records);
		else
			show_text(&t, ls, records);
		free(ls);
		cli_trace_free(&t);
	}
	return ret;
}

static int parse_uint(const char *sub, const char *what, const char *s, unsigned int max,
		      unsigned int *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v > max)
		return cli_usage_err("trace", "trace %s: bad %s '%s' (0..%u)", sub, what, s, max);
	*out = (unsigned int)v;
	return 0;
}

static int trace_replay(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "concurrency", required_argument, NULL, 'c' },
		{ "wait", no_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		CLI_PROGRESS_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct cli_replay_opts o = { CLI_PREFETCH_CONCURRENCY, false, 600, false };
	const char *name;
	struct cli_trace t;
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:wt:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			if (parse_uint("replay", "concurrency", optarg, 1024, &o.concurrency))
				return EXIT_USAGE;
			break;
		case 'w': o.wait = true; break;
		case 't':
			if (parse_uint("replay", "timeout", optarg, 86400, &o.timeout_s))
				return EXIT_USAGE;
			break;
		case CLI_OPT_PROGRESS: cli_progress_mode = 1; break;
		case CLI_OPT_NO_PROGRESS: cli_progress_mode = 0; break;
		case 'h': return cli_help("trace");
		default: return cli_usage_err("trace", "trace replay: bad option");
		}
	}
	rc = one_device(argc, argv, "replay", 2, &name);
	if (rc)
		return rc;
	if (cli_trace_load(argv[optind + 1], &t))
		return EXIT_FAIL;
	rc = cli_trace_replay(name, &t, &o);
	cli_trace_free(&t);
	return rc ? EXIT_FAIL : EXIT_OK;
}

static int trace_files(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "concurrency", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned int conc = CLI_PREFETCH_CONCURRENCY;
	const char *name;
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			if (parse_uint("files", "concurrency", optarg, 256, &conc))
				return EXIT_USAGE;
			break;
		case 'h': return cli_help("trace");
		default: return cli_usage_err("trace", "trace files: bad option");
		}
	}
	rc = one_device(argc, argv, "files", 2, &name);
	if (rc)
		return rc;
	return cli_prefetch_files(name, argv[optind + 1], conc) ? EXIT_FAIL : EXIT_OK;
}

/* "[R|W] LAYER OFFSET COUNT" (op default R); 1 ok, 0 blank or comment, -1 bad. */
static int parse_rec_line(char *line, struct obd_trace_rec *r)
{
	unsigned long long l, o, c;
	char op = 'R', extra;
	char *p = line;

	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p || *p == '\n' || *p == '#')
		return 0;
	if (*p == 'R' || *p == 'W')
		op = *p++;
	if (sscanf(p, "%llu %llu %llu %c", &l, &o, &c, &extra) != 3 || l > 0xffffffffULL)
		return -1;
	*r = (struct obd_trace_rec){ .op = (u8)op, .layer = (u32)l, .offset = o, .count = c };
	return 1;
}

/* obd trace build OUT [TEXT]: a trace from text records (crafting, editing). */
static int trace_build(int argc, char **argv)
{
	struct obd_trace_rec *recs = NULL, *nr;
	struct obd_err err = { "" };
	size_t n = 0, cap = 0, lineno = 0;
	const char *in = "<stdin>";
	char line[256];
	FILE *f = stdin;
	u8 *buf = NULL;
	u64 size;
	int rc = EXIT_FAIL, fd, k;
	bool done;

	k = simple_opts(argc, argv, "build", &done);
	if (done)
		return k;
	if (argc - optind < 1 || argc - optind > 2)
		return cli_usage_err("trace", "trace build: expected OUT [TEXT]");
	if (argc - optind == 2 && !cli_is_stdio(argv[optind + 1])) {
		in = argv[optind + 1];
		f = fopen(in, "re");
		if (!f) {
			cli_err(in, "%s", strerror(errno));
			return EXIT_FAIL;
		}
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			nr = realloc(recs, cap * sizeof(*recs));
			if (!nr)
				goto out;
			recs = nr;
		}
		k = parse_rec_line(line, &recs[n]);
		if (k < 0) {
			cli_err(in, "line %zu: expected [R|W] LAYER OFFSET COUNT", lineno);
			goto out;
		}
		n += (size_t)k;
	}
	size = obd_trace_file_size(n);
	buf = malloc(size);
	if (!buf)
		goto out;
	if (obd_trace_encode(recs, n, buf, size, in, &err)) {
		cli_err(NULL, "%s", err.msg);
		goto out;
	}
	fd = cli_open_output(argv[optind], true);
	if (fd < 0)
		goto out;
	if (obd_pwrite_all(fd, buf, size, 0) || fsync(fd))
		cli_err(argv[optind], "%s", strerror(errno));
	else
		rc = EXIT_OK;
	close(fd);
out:
	if (f != stdin)
		fclose(f);
	free(recs);
	free(buf);
	return rc;
}

int cmd_trace(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} subs[] = {
		{ "record", trace_record }, { "stop", trace_stop }, { "show", trace_show },
		{ "dump", trace_show }, { "replay", trace_replay }, { "files", trace_files },
		{ "watch", trace_watch }, { "build", trace_build },
	};
	size_t i;

	if (argc < 2)
		return cli_usage_err("trace", "expected record, stop, show, replay or files");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
		return cli_help("trace");
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (!strcmp(argv[1], subs[i].name))
			return subs[i].fn(argc - 1, argv + 1);
	return cli_usage_err("trace", "unknown subcommand '%s'", argv[1]);
}
