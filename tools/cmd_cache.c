// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd cache: the entries of cacheConfig.cacheDir (size, cached bytes, disk
 * use, which dm devices use them, last use), and obd cache prune, which
 * removes unused ones least recently used first; with --gzip, or after the
 * registry cache when gzipCacheConfig.enable is set, the same for the
 * daemon's gunzip entries (gzipCacheConfig.cacheDir, cacheSizeGB; marked
 * "gunzip", their .gzindex removed with them). The listing, the LRU
 * choice and the removal are registry/cache_scan.c's, the same code the
 * daemon evicts with; this file adds the dm devices and the printing.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libdevmapper.h>

#include "cache_scan.h"
#include "cli.h"
#include "cli_dm.h"
#include "config.h"

#define SHORT_DIGEST	(7 + 12)	/* "sha256:" + 12 hex digits in text output */

struct cache_opts {
	const char *svc;	/* --service-config */
	const char *dir;	/* --dir */
	bool json, all, dry_run, force;
	bool gzip;		/* --gzip: gzipCacheConfig's directory */
	bool have_to, have_grace;
	uint64_t to;		/* --to */
	uint64_t grace_s;	/* --grace */
};

/* What both forms share: the config, the directory, the scan. */
struct cache_ctx {
	struct fetchd_config *cfg;
	char dir[PATH_MAX];	/* canonical */
	struct cache_scan scan;
	bool users_known;	/* dm tables were read */
	char users_why[256];	/* why not */
	uint64_t limit, water, risk;
	double gb;		/* the cacheSizeGB the limit comes from */
};

/* ------------------------------------------------------------------------
 * Sizes
 * ------------------------------------------------------------------------ */

/*
 * "1073741824", "512K", "10G", "0.5G", "1.5GiB": decimal digits, an
 * optional fraction, an optional unit K/M/G/T (powers of 1024, with B or
 * iB after it allowed). Fractions are what cacheSizeGB allows too.
 */
static int parse_size_frac(const char *s, uint64_t *out)
{
	const char *p = s, *num_end;
	long double v;
	int shift = 0;

	if (!(*p >= '0' && *p <= '9'))
		return -EINVAL;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	num_end = p;
	switch (*p) {
	case 0: break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	case 'b': case 'B': break;
	default: return -EINVAL;
	}
	if (*p) {
		p++;
		if (shift && (!strcasecmp(p, "ib") || !strcasecmp(p, "b")))
			p += strlen(p);
		if (*p)
			return -EINVAL;
	}
	v = strtold(s, NULL) * (long double)(1ULL << shift);	/* digits only: no inf, nan, hex */
	if (num_end == s || v >= 9223372036854775808.0L)
		return -ERANGE;
	*out = (uint64_t)v;
	return 0;
}

/* "512B", "4.0K", "1.5M", "3.6G": one decimal, powers of 1024. */
static const char *human(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	double d = (double)v;
	int u = -1;

	if (v < 1024) {
		snprintf(buf, len, "%lluB", (unsigned long long)v);
		return buf;
	}
	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f%c", d, units[u]);
	return buf;
}

/* RFC 3339, UTC, seconds. */
static const char *iso_time(int64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	if (ns < 0 || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "?");
	return buf;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------------------------------
 * Which devices use which entries
 * ------------------------------------------------------------------------ */

/* Every overlaybd target of device name marks the entries it uses. */
static int mark_device(struct cache_scan *s, const char *name)
{
	struct dm_task *t = dm_task_create(DM_DEVICE_TABLE);
	uint64_t start, length;
	char *type, *params;
	void *next = NULL;
	int rc = 0;

	if (!t)
		return -ENOMEM;
	/* a device removed since the listing has no table: it uses nothing */
	if (dm_task_set_name(t, name) && dm_task_run(t)) {
		do {
			type = params = NULL;
			next = dm_get_next_target(t, next, &start, &length, &type, &params);
			if (type && !strcmp(type, OBD_DM_TARGET) && params)
				rc = cache_scan_mark_table(s, name, params) < 0 ? -ENOMEM : 0;
		} while (next && !rc);
	}
	dm_task_destroy(t);
	return rc;
}

/*
 * Mark the users of every entry from the overlaybd dm tables. false (and
 * why) when the tables cannot be read: no device-mapper here, not root.
 */
static bool mark_dm_users(struct cache_scan *s, char *why, size_t whylen)
{
	struct dm_task *dmt;
	struct dm_names *nm;
	unsigned int next = 0;
	bool ok = false;

	/* checked here, quietly: cli_dm_init() reports a missing node as an error */
	if (access("/dev/mapper/control", F_OK)) {
		snprintf(why, whylen, "no /dev/mapper/control");
		return false;
	}
	if (cli_dm_init()) {
		snprintf(why, whylen, "device-mapper unavailable");
		return false;
	}
	dmt = dm_task_create(DM_DEVICE_LIST);
	if (!dmt || !dm_task_run(dmt)) {
		snprintf(why, whylen, "listing dm devices: %s%s", cli_dm_last_error(),
			 geteuid() ? " (not root)" : "");
		goto out;
	}
	nm = dm_task_get_names(dmt);
	ok = true;
	if (nm && nm->dev) {
		do {
			nm = (struct dm_names *)((char *)nm + next);
			next = nm->next;
			if (mark_device(s, nm->name)) {
				snprintf(why, whylen, "out of memory");
				ok = false;
				break;
			}
		} while (next);
	}
out:
	if (dmt)
		dm_task_destroy(dmt);
	return ok;
}

/* ------------------------------------------------------------------------
 * Setup shared by the listing and prune
 * ------------------------------------------------------------------------ */
static int ctx_open(struct cache_ctx *c, const struct cache_opts *o, bool gz)
{
	char err[1024];
	const char *dir;
	double gb;

	memset(c, 0, sizeof(*c));
	c->cfg = malloc(sizeof(*c->cfg));
	if (!c->cfg) {
		cli_err(NULL, "out of memory");
		return -ENOMEM;
	}
	if (cli_load_service_config(o->svc, c->cfg))
		return -EINVAL;
	dir = o->dir ? o->dir : gz ? c->cfg->gz_dir : c->cfg->cache_dir;
	if (!realpath(dir, c->dir)) {
		cli_err(dir, "%s", strerror(errno));
		return -errno;
	}
	if (cache_scan(c->dir, &c->scan, err, sizeof(err))) {
		cli_err(NULL, "%s", err);
		return -EIO;
	}
	if (c->scan.dropped)
		cli_warn(c->dir, "%zu more entries not listed (at most %u)", c->scan.dropped,
			 CACHE_SCAN_MAX_ENTRIES);
	gb = gz ? c->cfg->gz_size_gb : c->cfg->cache_size_gb;
	c->gb = gb;
	c->limit = gb > 0 ? (uint64_t)(gb * (double)(1ULL << 30)) : 0;
	cache_marks(c->limit, &c->water, &c->risk);
	c->users_known = mark_dm_users(&c->scan, c->users_why, sizeof(c->users_why));
	return 0;
}

static void ctx_close(struct cache_ctx *c)
{
	cache_scan_free(&c->scan);
	free(c->cfg);
}

/* ------------------------------------------------------------------------
 * Listing
 * ------------------------------------------------------------------------ */
static json_object *users_json(const struct cache_ctx *c, const struct cache_scan_entry *e)
{
	json_object *a;
	unsigned int k;

	if (!c->users_known)
		return NULL;
	a = json_object_new_array();
	for (k = 0; k < e->nusers; k++)
		json_object_array_add(a, json_object_new_string(e->users[k]));
	return a;
}

static json_object *entry_json(const struct cache_ctx *c, const struct cache_scan_entry *e)
{
	json_object *o = json_object_new_object();
	char t[32];

	json_object_object_add(o, "digest", json_object_new_string(e->digest));
	json_object_object_add(o, "path", json_object_new_string(e->path));
	json_object_object_add(o, "size", e->size ? json_object_new_uint64(e->size) : NULL);
	json_object_object_add(o, "cachedBytes",
			       e->broken[0] ? NULL : json_object_new_uint64(e->cached_bytes));
	json_object_object_add(o, "diskBytes", json_object_new_uint64(e->disk_bytes));
	json_object_object_add(o, "complete", json_object_new_boolean(!e->broken[0] && e->complete));
	json_object_object_add(o, "gunzip", json_object_new_boolean(e->gunzip));
	json_object_object_add(o, "inUse", users_json(c, e));
	json_object_object_add(o, "lastUse", json_object_new_string(iso_time(e->last_use_ns, t,
									      sizeof(t))));
	json_object_object_add(o, "broken", e->broken[0] ? json_object_new_string(e->broken) : NULL);
	return o;
}

static void print_json(json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
}

static json_object *list_json(const struct cache_ctx *c)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();
	size_t i;

	json_object_object_add(o, "cacheDir", json_object_new_string(c->dir));
	json_object_object_add(o, "usageBytes", json_object_new_uint64(c->scan.usage));
	json_object_object_add(o, "limitBytes", json_object_new_uint64(c->limit));
	json_object_object_add(o, "waterMarkBytes", json_object_new_uint64(c->water));
	json_object_object_add(o, "riskMarkBytes", json_object_new_uint64(c->risk));
	json_object_object_add(o, "inUseKnown", json_object_new_boolean(c->users_known));
	json_object_object_add(o, "unlisted", json_object_new_uint64(c->scan.dropped));
	for (i = 0; i < c->scan.n; i++)
		json_object_array_add(a, entry_json(c, &c->scan.e[i]));
	json_object_object_add(o, "entries", a);
	return o;
}

/* "app,db", "-" for none, "unknown" when the tables could not be read. */
static void print_users(const struct cache_ctx *c, const struct cache_scan_entry *e)
{
	unsigned int k;

	if (!c->users_known) {
		printf("unknown");
		return;
	}
	if (!e->nusers)
		printf("-");
	for (k = 0; k < e->nusers; k++)
		printf("%s%s", k ? "," : "", e->users[k]);
}

static void list_text(const struct cache_ctx *c)
{
	char a[16], b[16], t[32], w[16], r[16];
	size_t i;

	printf("%-*s %8s %8s %6s %-8s %-20s %s\n", SHORT_DIGEST, "DIGEST", "SIZE", "CACHED", "%",
	       "STATE", "LAST USE", "IN USE");
	for (i = 0; i < c->scan.n; i++) {
		const struct cache_scan_entry *e = &c->scan.e[i];

		printf("%-*.*s ", SHORT_DIGEST, SHORT_DIGEST, e->digest);
		if (e->broken[0])
			printf("%8s %8s %6s %-8s ", e->size ? human(e->size, a, sizeof(a)) : "-",
			       "-", "-", "broken");
		else
			printf("%8s %8s %5.1f%% %-8s ", human(e->size, a, sizeof(a)),
			       human(e->cached_bytes, b, sizeof(b)),
			       100.0 * (double)e->cached_bytes / (double)e->size,
			       e->complete ? "complete" : "partial");
		printf("%-20s ", iso_time(e->last_use_ns, t, sizeof(t)));
		print_users(c, e);
		if (e->gunzip)
			printf(" [gunzip]");
		if (e->broken[0])
			printf(" (%s)", e->broken);
		printf("\n");
	}
	printf("total: %zu entries, %s on disk, limit %s (cacheSizeGB %g), water mark %s, risk mark %s\n",
	       c->scan.n, human(c->scan.usage, a, sizeof(a)), human(c->limit, b, sizeof(b)),
	       c->gb, human(c->water, w, sizeof(w)), human(c->risk, r, sizeof(r)));
}

/*
 * The registry cache (or --dir, or --gzip's); after the registry cache the
 * gunzip entries too when gzipCacheConfig.enable is set (text: a second
 * table; --json: "gzipCache", an object of the same shape).
 */
static int cache_list(const struct cache_opts *o)
{
	struct cache_ctx c, g;
	json_object *j = NULL;
	bool both;
	int ret = EXIT_FAIL;

	memset(&g, 0, sizeof(g));
	if (ctx_open(&c, o, o->gzip))
		goto out;
	if (!c.users_known)
		cli_warn(NULL, "which devices use the entries is unknown: %s", c.users_why);
	both = !o->gzip && !o->dir && c.cfg->gz_enable;
	if (o->json)
		j = list_json(&c);
	else
		list_text(&c);
	if (both) {
		if (ctx_open(&g, o, true))
			goto out;
		if (j) {
			json_object_object_add(j, "gzipCache", list_json(&g));
		} else {
			printf("\ngunzip entries (gzipCacheConfig.cacheDir %s):\n", g.dir);
			list_text(&g);
		}
	}
	if (j)
		print_json(j);
	ret = EXIT_OK;
out:
	json_object_put(j);
	ctx_close(&c);
	ctx_close(&g);
	return ret;
}

/* ------------------------------------------------------------------------
 * Prune
 * ------------------------------------------------------------------------ */

/*
 * Remove the victims (or say what would go). A victim that a device took
 * into use since the scan is kept: the tables are read again just before,
 * which narrows the window to the removal itself.
 */
static int prune_victims(struct cache_ctx *c, const struct cache_opts *o, const size_t *v,
			 size_t n, json_object *removed, uint64_t *freed, size_t *count)
{
	char err[1024], b[16], t[32];
	bool known = c->users_known;
	int ret = EXIT_OK;
	size_t i;

	if (known && !o->dry_run)
		known = mark_dm_users(&c->scan, c->users_why, sizeof(c->users_why));
	for (i = 0; i < n; i++) {
		const struct cache_scan_entry *e = &c->scan.e[v[i]];

		if (known && e->nusers) {
			cli_warn(e->path, "now in use by %s; kept", e->users[0]);
			continue;
		}
		if (!o->dry_run && cache_entry_remove(e->path, err, sizeof(err))) {
			cli_err(NULL, "%s", err);
			ret = EXIT_FAIL;
			continue;
		}
		*freed += e->disk_bytes;
		(*count)++;
		if (removed) {
			json_object_array_add(removed, entry_json(c, e));
		} else {
			printf("%s %s %s last use %s%s%s\n", o->dry_run ? "would remove" : "removed",
			       e->digest, human(e->disk_bytes, b, sizeof(b)),
			       iso_time(e->last_use_ns, t, sizeof(t)), e->broken[0] ? ", broken: " : "",
			       e->broken);
		}
	}
	return ret;
}

static void prune_report(const struct cache_ctx *c, const struct cache_opts *o,
			 const struct cache_lru_res *res, uint64_t target, uint64_t freed,
			 size_t count, json_object *removed)
{
	uint64_t after = c->scan.usage - (freed < c->scan.usage ? freed : c->scan.usage);
	char a[16], b[16], d[16];

	if (removed) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "cacheDir", json_object_new_string(c->dir));
		json_object_object_add(j, "dryRun", json_object_new_boolean(o->dry_run));
		json_object_object_add(j, "targetBytes", o->all ? NULL : json_object_new_uint64(target));
		json_object_object_add(j, "usageBefore", json_object_new_uint64(c->scan.usage));
		json_object_object_add(j, "usageBytes", json_object_new_uint64(after));
		json_object_object_add(j, "freedBytes", json_object_new_uint64(freed));
		json_object_object_add(j, "reached", json_object_new_boolean(after <= target || o->all));
		json_object_object_add(j, "inUseKnown", json_object_new_boolean(c->users_known));
		json_object_object_add(j, "skippedInUse", json_object_new_uint64(res->skipped_in_use));
		json_object_object_add(j, "skippedRecent", json_object_new_uint64(res->skipped_recent));
		json_object_object_add(j, "removed", json_object_get(removed));
		print_json(j);
		json_object_put(j);
	} else if (!res->n && !o->all && c->scan.usage <= target) {
		printf("nothing to remove: usage %s is at or below the target %s\n",
		       human(c->scan.usage, b, sizeof(b)), human(target, d, sizeof(d)));
	} else {
		printf("%s %s in %zu entries; usage %s -> %s\n", o->dry_run ? "would free" : "freed",
		       human(freed, a, sizeof(a)), count, human(c->scan.usage, b, sizeof(b)),
		       human(after, d, sizeof(d)));
	}
	if (!o->all && after > target)
		cli_warn(c->dir, "usage stays above %s: %zu entries in use, %zu used in the last %llu s",
			 human(target, a, sizeof(a)), res->skipped_in_use, res->skipped_recent,
			 (unsigned long long)(o->have_grace ? o->grace_s : c->cfg->evict_grace_s));
}

static int cache_prune(const struct cache_opts *o)
{
	struct cache_lru_req req = { 0 };
	struct cache_lru_res res;
	json_object *removed = NULL;
	struct cache_ctx c;
	uint64_t freed = 0;
	size_t *v = NULL, count = 0;
	int ret = EXIT_FAIL;

	if (ctx_open(&c, o, o->gzip))
		goto out;
	if (!c.users_known && !o->force && !o->dry_run) {
		cli_err(c.dir, "cannot tell which entries attached devices use (%s): nothing removed "
			"(--force to prune anyway, --dry-run to see what would go)", c.users_why);
		goto out;
	}
	if (!c.users_known)
		cli_warn(NULL, "which devices use the entries is unknown (%s)%s", c.users_why,
			 o->force ? "; --force: pruning as if none" : "");
	req.target = o->all ? 0 : o->have_to ? o->to : c.water;
	req.now_ns = now_ns();
	req.grace_s = o->have_grace ? o->grace_s : c.cfg->evict_grace_s;
	req.in_use = c.users_known ? cache_scan_has_users : NULL;
	v = malloc((c.scan.n ? c.scan.n : 1) * sizeof(*v));
	if (!v) {
		cli_err(NULL, "out of memory");
		goto out;
	}
	cache_lru_select(&c.scan, &req, v, &res);
	if (o->json)
		removed = json_object_new_array();
	ret = prune_victims(&c, o, v, res.n, removed, &freed, &count);
	prune_report(&c, o, &res, req.target, freed, count, removed);
	json_object_put(removed);
out:
	free(v);
	ctx_close(&c);
	return ret;
}

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */
enum { OPT_DIR = 0x100, OPT_GZIP, OPT_ALL, OPT_TO, OPT_DRY_RUN, OPT_FORCE, OPT_GRACE };

static int parse_opts(int argc, char **argv, bool prune, struct cache_opts *o)
{
	static const struct option opts[] = {
		{ "service-config", required_argument, NULL, 'c' },
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "gzip", no_argument, NULL, OPT_GZIP },
		{ "json", no_argument, NULL, 'j' },
		{ "all", no_argument, NULL, OPT_ALL },
		{ "to", required_argument, NULL, OPT_TO },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "grace", required_argument, NULL, OPT_GRACE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "c:jh", opts, NULL)) != -1) {
		if (!prune && opt >= OPT_ALL && opt <= OPT_GRACE)
			return cli_usage_err("cache", "--all, --to, --dry-run, --force and --grace "
					     "go with 'obd cache prune'");
		switch (opt) {
		case 'c': o->svc = optarg; break;
		case OPT_DIR: o->dir = optarg; break;
		case OPT_GZIP: o->gzip = true; break;
		case 'j': o->json = true; break;
		case OPT_ALL: o->all = true; break;
		case OPT_DRY_RUN: o->dry_run = true; break;
		case OPT_FORCE: o->force = true; break;
		case OPT_TO:
			if (parse_size_frac(optarg, &o->to))
				return cli_usage_err("cache", "--to %s: expected a size (4096, 512M, 0.5G)",
						     optarg);
			o->have_to = true;
			break;
		case OPT_GRACE:
			errno = 0;
			o->grace_s = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || *optarg == '-')
				return cli_usage_err("cache", "--grace %s: expected seconds", optarg);
			o->have_grace = true;
			break;
		case 'h': return cli_help("cache") == EXIT_OK ? -1 : EXIT_USAGE;
		default: return cli_usage_err("cache", "bad option");
		}
	}
	if (optind != argc)
		return cli_usage_err("cache", "unexpected argument '%s'", argv[optind]);
	if (o->all && o->have_to)
		return cli_usage_err("cache", "--all and --to exclude each other");
	return 0;
}

int cmd_cache(int argc, char **argv)
{
	struct cache_opts o = { 0 };
	bool prune = argc > 1 && !strcmp(argv[1], "prune");
	int rc;

	if (prune) {
		argc--;
		argv++;
	}
	rc = parse_opts(argc, argv, prune, &o);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	return prune ? cache_prune(&o) : cache_list(&o);
}
