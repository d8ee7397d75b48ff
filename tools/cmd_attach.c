// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd attach: a dm-overlaybd device over a layer stack (losetup-like),
 * read-only, or writable when the top layer is a writable one (DATA INDEX,
 * a sparse DATA, or a config's "upper").
 *   table: 0 <vsize/512> overlaybd <n> <layer>... [<#opt> direct_io no_verify
 *          upper <data> <index|->]
 * where <layer> is an absolute path, or for a remote lower of a config
 * (digest, no local copy) remote:<blob size>:sha256:<hex>:<cache file>.
 * Every layer is opened and validated with the format core first, so a
 * bad file is reported by name here and not as a bare EINVAL from the
 * kernel. An image reference (REF, as for obd push, or @sha256:<hex>) is
 * turned into a config.v1.json by cli_imageref.c and attached as one.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libdevmapper.h>

#include "cli.h"
#include "cli_dm.h"
#include "dm_table.h"
#include "cli_imageref.h"
#include "cli_prefetch.h"
#include "cli_remote.h"

/*
 * A layer's word in the table: the absolute path of a local layer, or for
 * a remote one remote:<blob size>:sha256:<hex>:<absolute cache file path>.
 */
static int layer_token(const struct cli_layer *l, char **out)
{
	const char *name = l->remote ? cli_remote_cache_path(l->remote) : l->path;
	char *abs = realpath(name, NULL);

	*out = NULL;
	if (!abs) {
		cli_err(name, "%s", strerror(errno));
		return -errno;
	}
	/* a dm table is split on white space */
	if (strpbrk(abs, " \t\n\\")) {
		cli_err(name, "path contains white space or '\\': not usable in a dm table");
		free(abs);
		return -EINVAL;
	}
	if (!l->remote) {
		*out = abs;
		return 0;
	}
	if (asprintf(out, "remote:%llu:%s:%s", (unsigned long long)cli_remote_size(l->remote),
		     cli_remote_digest(l->remote), abs) < 0)
		*out = NULL;
	free(abs);
	return *out ? 0 : -ENOMEM;
}

static bool layer_writable(const struct cli_layer *l)
{
	return l->kind == CLI_KIND_RW_APPEND || l->kind == CLI_KIND_RW_SPARSE;
}

/* The upper's words: "upper <data> <index|->", absolute paths. */
static int upper_tokens(const struct cli_layer *l, char **data, char **index)
{
	struct cli_layer idx = { .path = l->index_path };

	*index = NULL;
	if (layer_token(l, data))
		return -EINVAL;
	if (!l->index_path) {
		*index = strdup("-");
		return *index ? 0 : -ENOMEM;
	}
	return layer_token(&idx, index);
}

/*
 * The lowers' virtual size (the top-most non-zero one): the device's
 * length, which a writable top layer must have too. One created with size
 * 0 (overlaybd-create DATA INDEX 0) takes it now, persisted, as the
 * reference's stack_files does. With no lowers the upper alone is the
 * disk (the reference's "only one RW layer"): its own size, which it must
 * have been given.
 */
static int check_upper(struct cli_stack *s, unsigned int nlow)
{
	struct cli_layer *up = &s->layers[nlow];
	u64 vs = cli_stack_vsize(s, nlow);

	if (!nlow) {
		if (up->info.virtual_size)
			return 0;
		cli_err(up->path, "virtual_size 0 and no layers below to take it from: create it with a size");
		return -EINVAL;
	}
	if (!up->info.virtual_size && vs && cli_rw_set_vsize(up, vs))
		return -EINVAL;
	if (up->info.virtual_size != vs) {
		cli_err(up->path, "virtual_size %llu differs from the lower layers' %llu",
			(unsigned long long)up->info.virtual_size, (unsigned long long)vs);
		return -EINVAL;
	}
	return 0;
}

static int build_params(struct cli_stack *s, bool direct_io, bool no_verify, char **out)
{
	size_t cap = 64, len;
	char *p, *abs[OBD_MAX_LAYERS], *udata = NULL, *uindex = NULL;
	bool upper = layer_writable(&s->layers[s->n - 1]);
	unsigned int i, nlow = s->n - upper, nopt = direct_io + no_verify + 3 * upper;
	int rc = -EINVAL;

	memset(abs, 0, sizeof(abs));
	if (upper && (check_upper(s, nlow) || upper_tokens(&s->layers[nlow], &udata, &uindex)))
		goto out_free;
	if (upper)
		cap += 4 * (strlen(udata) + strlen(uindex)) + 16;
	for (i = 0; i < nlow; i++) {
		rc = layer_token(&s->layers[i], &abs[i]);
		if (rc)
			goto out_free;
		rc = -EINVAL;
		cap += 4 * strlen(abs[i]) + 2;
		/* a TurboOCI layer: turbo <meta> <target> */
		if (s->layers[i].target_token)
			cap += 4 * strlen(s->layers[i].target_token) + 16;
	}
	p = malloc(cap + 64);
	if (!p) {
		rc = -ENOMEM;
		goto out_free;
	}
	len = (size_t)sprintf(p, "%u", nlow);
	for (i = 0; i < nlow; i++) {
		if (s->layers[i].target_token)
			len += (size_t)sprintf(p + len, " turbo");
		len += obd_table_word(p + len, abs[i]);
		if (s->layers[i].target_token)
			len += obd_table_word(p + len, s->layers[i].target_token);
	}
	if (nopt)
		len += (size_t)sprintf(p + len, " %u%s%s%s", nopt, direct_io ? " direct_io" : "",
				       no_verify ? " no_verify" : "", upper ? " upper" : "");
	if (upper) {
		len += obd_table_word(p + len, udata);
		obd_table_word(p + len, uindex);
	}
	*out = p;
	rc = 0;
out_free:
	for (i = 0; i < nlow; i++)
		free(abs[i]);
	free(udata);
	free(uindex);
	return rc;
}

/* "obdN": the first free name. */
static const char *free_name(char *buf, size_t len)
{
	int i;

	for (i = 0; i < 1000; i++) {
		snprintf(buf, len, "obd%d", i);
		if (!cli_dm_exists(buf))
			break;
	}
	return buf;
}

/*
 * DM_DEVICE_CREATE of name with one overlaybd target, read-only unless it
 * has an upper layer; prints /dev/mapper/name.
 */
static int create_device(const char *name, u64 vsize, const char *params, bool writable,
			 bool quiet)
{
	if (cli_dm_create(name, vsize >> OBD_SECTOR_SHIFT, params, !writable)) {
		if (!cli_dm_target_loaded(OBD_DM_TARGET))
			cli_err(name, "cannot create device: target '%s' not available (is dm-overlaybd loaded? modprobe dm-overlaybd)",
				OBD_DM_TARGET);
		else
			cli_err(name, "cannot create device: %s (see dmesg)", cli_dm_last_error());
		return EXIT_FAIL;
	}
	if (!quiet)
		printf("/dev/mapper/%s\n", name);
	return EXIT_OK;
}

/* The one attach path: layer files, or a config (given, or derived from a REF). */
static int attach_stack(struct cli_attach *o, int nargs, char **args)
{
	char namebuf[32], *params = NULL;
	const char *name = o->name;
	struct cli_stack s;
	int ret = EXIT_FAIL;

	/* the merge too: what the kernel would refuse is reported here */
	if (o->svc && cli_remote_setup(o->svc))
		return EXIT_FAIL;
	if (cli_stack_open_upper(&s, nargs, args, CLI_STACK_REMOTE | CLI_STACK_ALLOW_RW |
				 CLI_STACK_TURBO | CLI_STACK_KERNEL, o->up_data, o->up_index)) {
		cli_remote_teardown();
		return EXIT_FAIL;
	}
	if (!s.vsize) {
		cli_err(s.layers[s.n - 1].path, "virtual size is 0");
		goto out_close;
	}
	if (build_params(&s, o->direct_io, o->no_verify, &params))
		goto out_close;
	if (o->table_only) {
		printf("0 %llu %s %s\n", (unsigned long long)(s.vsize >> OBD_SECTOR_SHIFT),
		       OBD_DM_TARGET, params);
		ret = EXIT_OK;
		goto out_close;
	}
	if (cli_dm_init())
		goto out_close;
	if (!name) {
		name = free_name(namebuf, sizeof(namebuf));
	} else if (cli_dm_exists(name)) {
		cli_err(name, "a device-mapper device of this name exists");
		goto out_close;
	}
	ret = create_device(name, s.vsize, params, layer_writable(&s.layers[s.n - 1]), o->quiet);
	if (ret == EXIT_OK) {
		snprintf(o->dev_name, sizeof(o->dev_name), "%s", name);
		cli_prefetch_attached(name, nargs, args, o->svc);	/* spec 5.1, 6.7 */
	}
out_close:
	free(params);
	cli_stack_close(&s);
	cli_remote_teardown();
	return ret;
}

/*
 * obd attach's core, obd mount's too. One argument that names no file and
 * does not end in .json is an image reference: resolved into a config under <cacheDir>/images, then attached
 * as that config. Anything else goes to attach_stack as given.
 */
int cli_attach(struct cli_attach *o, int nargs, char **args)
{
	char err[512], cfg[PATH_MAX], *cfgv[1] = { cfg };
	struct imageref ref;
	struct stat st;
	size_t n = strlen(args[0]);
	int rc;

	if (nargs != 1 || !stat(args[0], &st) || (n >= 5 && !strcmp(args[0] + n - 5, ".json")))
		return attach_stack(o, nargs, args);
	rc = errno;
	if (imageref_parse(args[0], &ref, err, sizeof(err))) {
		cli_err(args[0], "not a layer or config file (%s), nor an image reference (%s)",
			strerror(rc), err);
		return EXIT_FAIL;
	}
	if (imageref_resolve(args[0], &ref, o->svc, cfg, sizeof(cfg)))
		return EXIT_FAIL;
	return attach_stack(o, 1, cfgv);
}

int cmd_attach(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "direct-io", no_argument, NULL, 'D' },
		{ "no-verify", no_argument, NULL, 'V' },
		{ "table", no_argument, NULL, 'T' },
		{ "service-config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_attach o = { 0 };
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "n:c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n': o.name = optarg; break;
		case 'D': o.direct_io = true; break;
		case 'V': o.no_verify = true; break;
		case 'T': o.table_only = true; break;
		case 'c': o.svc = optarg; break;
		case 'h': return cli_help("attach");
		default: return cli_usage_err("attach", "bad option");
		}
	}
	if (optind >= argc)
		return cli_usage_err("attach", "no layer, config or image reference given");
	if (o.name && !cli_dm_name_ok(o.name))
		return cli_usage_err("attach", "bad device name '%s'", o.name);
	return cli_attach(&o, argc - optind, argv + optind);
}

int cmd_detach(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h': return cli_help("detach");
		default: return cli_usage_err("detach", "bad option");
		}
	}
	if (argc - optind != 1)
		return cli_usage_err("detach", "expected one device NAME");
	name = argv[optind];
	if (!strncmp(name, "/dev/mapper/", 12))
		name += 12;
	if (cli_dm_init())
		return EXIT_FAIL;
	if (!cli_dm_exists(name)) {
		cli_err(name, "no such device-mapper device");
		return EXIT_FAIL;
	}
	cli_prefetch_detach(name);	/* a recording device writes its trace first */
	if (cli_dm_remove(name)) {
		cli_err(name, "cannot remove: %s", cli_dm_last_error());
		return EXIT_FAIL;
	}
	return EXIT_OK;
}
