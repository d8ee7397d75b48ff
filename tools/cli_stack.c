// SPDX-License-Identifier: GPL-2.0-only
/*
 * Opening layers and stacks for the subcommands: kind detection, the
 * config.v1.json reader (spec 5.1-5.2), the merged index and reads.
 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli.h"
#include "cli_remote.h"
#include "cli_target.h"
#include "cli_gunzip.h"
#include "config.h"

const char *cli_kind_name(enum cli_layer_kind k)
{
	switch (k) {
	case CLI_KIND_COMMITTED: return "committed";
	case CLI_KIND_SEALED: return "sealed";
	case CLI_KIND_RW_APPEND: return "rw-append";
	case CLI_KIND_RW_SPARSE: return "rw-sparse";
	}
	return "?";
}

bool cli_is_config(const char *path)
{
	size_t n = strlen(path);
	char c = 0;
	int fd;

	if (n >= 5 && !strcmp(path + n - 5, ".json"))
		return true;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (read(fd, &c, 1) != 1)
		c = 0;
	close(fd);
	return c == '{';
}

/* -------------------------------------------------------------------------
 * config.v1.json
 * ------------------------------------------------------------------------- */
static bool file_exists(const char *p)
{
	struct stat st;

	return !stat(p, &st);
}

/* Relative paths in a config are taken relative to the config's folder. */
static char *config_path(const char *cfgdir, const char *p)
{
	char *out;

	if (p[0] == '/' || !cfgdir)
		return strdup(p);
	if (asprintf(&out, "%s/%s", cfgdir, p) < 0)
		return NULL;
	return out;
}

static int get_str(const char *cfg, json_object *o, const char *key, const char **out,
		   const char *where)
{
	json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string)) {
		cli_err(cfg, "%s%s: expected a string", where, key);
		return -EINVAL;
	}
	*out = json_object_get_string(v);
	if (!**out)
		*out = NULL;
	return 0;
}

/* Remote lowers (CLI_STACK_REMOTE): digest[i] set where paths[i] is NULL. */
struct cfg_remote {
	char *repo_blob_url;
	char **digests;
	u64 *sizes;
	struct obd_cache_dl dl;		/* the image's download{}; flags 0 when absent */
};

/*
 * config.v1.json "download" (spec 5.1/5.4): parsed over the reference's
 * defaults and kept in each remote entry's .meta for overlaybd-fetchd.
 * Absent: nothing stored, the daemon's own download{} applies.
 */
static int config_download(const char *path, json_object *root, struct obd_cache_dl *out)
{
	struct fetchd_config defaults;
	struct fetchd_download dl;
	json_object *o;
	char err[512];

	memset(out, 0, sizeof(*out));
	if (!json_object_object_get_ex(root, "download", &o) || json_object_is_type(o, json_type_null))
		return 0;
	fetchd_config_defaults(&defaults);
	dl = defaults.download;
	if (fetchd_download_parse(o, "download", &dl, err, sizeof(err))) {
		cli_err(path, "%s", err);
		return -EINVAL;
	}
	*out = (struct obd_cache_dl){
		.flags = OBD_CACHE_DL_SET | (dl.enable ? OBD_CACHE_DL_ENABLE : 0),
		.delay = dl.delay_s, .delay_extra = dl.delay_extra_s, .max_mbps = dl.max_mbps,
		.try_cnt = dl.try_cnt, .block_size = dl.block_size,
	};
	return 0;
}

static void cfg_remote_free(struct cfg_remote *rem, unsigned int n)
{
	unsigned int i;

	for (i = 0; rem->digests && i < n; i++)
		free(rem->digests[i]);
	free(rem->digests);
	free(rem->sizes);
	free(rem->repo_blob_url);
	memset(rem, 0, sizeof(*rem));
}

/* lowers[i].size: a positive integer, or absent (0: asked of the registry). */
static int get_size(const char *cfg, json_object *o, size_t i, u64 *out)
{
	json_object *v;
	int64_t x;

	*out = 0;
	if (!json_object_object_get_ex(o, "size", &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_int) || (x = json_object_get_int64(v)) <= 0) {
		cli_err(cfg, "lowers[%zu].size: expected a positive integer", i);
		return -EINVAL;
	}
	*out = (u64)x;
	return 0;
}

static int remote_lower(const char *path, json_object *l, size_t i, const char *digest,
			struct cfg_remote *rem)
{
	u8 raw[OBD_CACHE_DIGEST_LEN];

	if (obd_digest_parse(digest, strlen(digest), raw)) {
		cli_err(path, "lowers[%zu].digest: '%s' is not sha256:<64 lower-case hex>", i,
			digest);
		return -EINVAL;
	}
	if (!rem->repo_blob_url) {
		cli_err(path, "lowers[%zu]: remote layer %s, but repoBlobUrl is not set", i,
			digest);
		return -EINVAL;
	}
	rem->digests[i] = strdup(digest);
	if (!rem->digests[i])
		return -ENOMEM;
	return get_size(path, l, i, &rem->sizes[i]);
}

/*
 * A TurboOCI lower (targetDigest / targetFile / gzipIndex: its `file` is a
 * meta layer whose records point into the original OCI layer) read as a
 * plain layer would serve the meta file's bytes where the original layer's
 * belong: refused until the stack can carry the target (issue #20).
 */
static int turbo_oci_refused(const char *path, json_object *l, size_t i)
{
	static const char *const keys[] = { "targetDigest", "targetFile", "gzipIndex" };

	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
		if (json_object_object_get_ex(l, keys[k], NULL)) {
			cli_err(path, "lowers[%zu].%s: a TurboOCI layer (an unconverted OCI layer with a filesystem meta layer): not supported yet",
				i, keys[k]);
			return -EOPNOTSUPP;
		}
	return 0;
}

/* TurboOCI lowers read locally (obd cat, info, check): targets[i], gzidx[i]. */
struct cfg_turbo {
	char **targets;
	char **gzidx;
	char **tdigests;	/* a target in the registry (attach: CLI_STACK_REMOTE) */
	bool remote_ok;
	bool kernel;		/* CLI_STACK_KERNEL */
};

static void cfg_turbo_free(struct cfg_turbo *tb, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		if (tb->targets)
			free(tb->targets[i]);
		if (tb->gzidx)
			free(tb->gzidx[i]);
		if (tb->tdigests)
			free(tb->tdigests[i]);
	}
	free(tb->targets);
	free(tb->gzidx);
	free(tb->tdigests);
	memset(tb, 0, sizeof(*tb));
}

/*
 * A TurboOCI lower (spec turbo-oci 2.2): its meta layer is read over
 * targetFile (through gzipIndex for a gzip target). A target only in a
 * registry (targetDigest without targetFile) is not read by these tools.
 */
static int turbo_oci_lower(const char *path, const char *cfgdir, json_object *l, size_t i,
			   struct cfg_turbo *tb)
{
	const char *target, *digest, *gz;
	char where[32];

	if (!tb)
		return turbo_oci_refused(path, l, i);
	snprintf(where, sizeof(where), "lowers[%zu].", i);
	if (get_str(path, l, "targetFile", &target, where) ||
	    get_str(path, l, "targetDigest", &digest, where) ||
	    get_str(path, l, "gzipIndex", &gz, where))
		return -EINVAL;
	if (!target && !digest && !gz)
		return 0;
	if (!target && digest && !tb->remote_ok) {
		if (tb->kernel)
			cli_err(path, "lowers[%zu]: a TurboOCI layer whose target is in a registry (targetDigest %s, no targetFile) needs the config's repoBlobUrl",
				i, digest);
		else
			cli_err(path, "lowers[%zu]: a TurboOCI layer whose target is only in a registry (targetDigest %s, no targetFile): this command reads local files only",
				i, digest);
		return -EOPNOTSUPP;
	}
	/*
	 * The kernel never inflates: a gzip target is served from its gunzip
	 * entry, which needs the digest and the registry, even when the
	 * compressed file is here too.
	 */
	if (target && gz && tb->kernel && digest && tb->remote_ok)
		target = NULL;
	if (!target && digest) {
		u8 raw[OBD_CACHE_DIGEST_LEN];

		if (obd_digest_parse(digest, strlen(digest), raw)) {
			cli_err(path, "lowers[%zu].targetDigest: '%s' is not sha256:<64 lower-case hex>",
				i, digest);
			return -EINVAL;
		}
		tb->tdigests[i] = strdup(digest);
		if (!tb->tdigests[i])
			return -ENOMEM;
	}
	if (target && gz && tb->kernel) {
		cli_err(path, "lowers[%zu]: a local gzip target (targetFile with gzipIndex) cannot be served by the kernel: give its targetDigest and the config's repoBlobUrl (the daemon inflates it into the gzip cache), or decompress it",
			i);
		return -EOPNOTSUPP;
	}
	if (!target && !digest) {
		cli_err(path, "lowers[%zu]: a TurboOCI layer (gzipIndex) without targetFile or targetDigest: no target to read",
			i);
		return -EINVAL;
	}
	if (!target)
		goto gzindex;
	tb->targets[i] = config_path(cfgdir, target);
	if (!tb->targets[i])
		return -ENOMEM;
	if (!file_exists(tb->targets[i])) {
		cli_err(path, "lowers[%zu].targetFile: %s: %s", i, tb->targets[i], strerror(ENOENT));
		return -ENOENT;
	}
gzindex:
	if (gz) {
		tb->gzidx[i] = config_path(cfgdir, gz);
		if (!tb->gzidx[i])
			return -ENOMEM;
		if (!file_exists(tb->gzidx[i])) {
			cli_err(path, "lowers[%zu].gzipIndex: %s: %s", i, tb->gzidx[i],
				strerror(ENOENT));
			return -ENOENT;
		}
	}
	return 0;
}

/*
 * accelerationLayer (spec 5.1): the last lower holds the image's trace
 * (replayed by tools/cli_prefetch.c), not data: it is left out of the
 * stack. Combined with recordTracePath it is an error, as in the reference.
 */
static int config_accel_layer(const char *path, json_object *root, size_t *cnt)
{
	const char *rec;
	json_object *v;

	if (!json_object_object_get_ex(root, "accelerationLayer", &v) ||
	    json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_boolean)) {
		cli_err(path, "accelerationLayer: expected true or false");
		return -EINVAL;
	}
	if (!json_object_get_boolean(v))
		return 0;
	if (get_str(path, root, "recordTracePath", &rec, ""))
		return -EINVAL;
	if (rec) {
		cli_err(path, "recordTracePath: cannot record a trace of an image with an acceleration layer (accelerationLayer is true)");
		return -EINVAL;
	}
	if (!*cnt) {
		cli_err(path, "accelerationLayer: true, but lowers is empty");
		return -EINVAL;
	}
	(*cnt)--;
	return 0;
}

static int config_load(const char *path, char ***paths, unsigned int *n,
		       char **upper_data, char **upper_index, struct cfg_remote *rem,
		       struct cfg_turbo *tb)
{
	json_object *root, *lowers, *upper;
	char *dcopy = strdup(path), *cfgdir = dcopy ? dirname(dcopy) : NULL;
	char **out = NULL;
	size_t i, cnt;
	int rc = -EINVAL;

	*paths = NULL;
	*n = 0;
	*upper_data = *upper_index = NULL;
	root = json_object_from_file(path);
	if (!root) {
		char msg[256];
		size_t ml;

		if (!file_exists(path)) {
			cli_err(path, "%s", strerror(ENOENT));
		} else {
			snprintf(msg, sizeof(msg), "%s", json_util_get_last_err());
			ml = strlen(msg);
			while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
				msg[--ml] = 0;
			cli_err(path, "not a valid JSON file: %s", msg);
		}
		free(dcopy);
		return -EINVAL;
	}
	if (!json_object_is_type(root, json_type_object)) {
		cli_err(path, "config: expected a JSON object");
		goto out_put;
	}
	if (!json_object_object_get_ex(root, "lowers", &lowers) ||
	    json_object_is_type(lowers, json_type_null)) {
		lowers = NULL;
	} else if (!json_object_is_type(lowers, json_type_array)) {
		cli_err(path, "lowers: expected an array");
		goto out_put;
	}
	cnt = lowers ? json_object_array_length(lowers) : 0;
	if (config_accel_layer(path, root, &cnt))
		goto out_put;
	if (cnt > OBD_MAX_LAYERS) {
		cli_err(path, "lowers: %zu layers, at most %d supported", cnt, OBD_MAX_LAYERS);
		goto out_put;
	}
	out = calloc(cnt + 1, sizeof(*out));
	if (!out) {
		rc = -ENOMEM;
		goto out_put;
	}
	if (tb) {
		tb->targets = calloc(cnt + 1, sizeof(*tb->targets));
		tb->gzidx = calloc(cnt + 1, sizeof(*tb->gzidx));
		tb->tdigests = calloc(cnt + 1, sizeof(*tb->tdigests));
		if (!tb->targets || !tb->gzidx || !tb->tdigests) {
			rc = -ENOMEM;
			goto out_free;
		}
	}
	if (rem) {
		const char *rbu;

		if (get_str(path, root, "repoBlobUrl", &rbu, ""))
			goto out_free;
		if (config_download(path, root, &rem->dl))
			goto out_free;
		rem->repo_blob_url = rbu ? strdup(rbu) : NULL;
		rem->digests = calloc(cnt + 1, sizeof(*rem->digests));
		rem->sizes = calloc(cnt + 1, sizeof(*rem->sizes));
		if (!rem->digests || !rem->sizes || (rbu && !rem->repo_blob_url)) {
			rc = -ENOMEM;
			goto out_free;
		}
	}
	/* TurboOCI targets in the registry: where the remote layers are */
	if (tb)
		tb->remote_ok = rem && rem->repo_blob_url;
	for (i = 0; i < cnt; i++) {
		static const char *const names[] = { "overlaybd.commit", ".commit",
						      "overlaybd.sealed" };
		json_object *l = json_object_array_get_idx(lowers, i);
		const char *file, *dir, *digest;
		char where[32];
		size_t k;

		snprintf(where, sizeof(where), "lowers[%zu].", i);
		if (!json_object_is_type(l, json_type_object)) {
			cli_err(path, "lowers[%zu]: expected an object", i);
			goto out_free;
		}
		if (get_str(path, l, "file", &file, where) ||
		    get_str(path, l, "dir", &dir, where) ||
		    get_str(path, l, "digest", &digest, where))
			goto out_free;
		rc = turbo_oci_lower(path, cfgdir, l, i, tb);
		if (rc)
			goto out_free;
		rc = -EINVAL;
		if (file) {
			out[i] = config_path(cfgdir, file);
			if (out[i] && !file_exists(out[i])) {
				free(out[i]);
				out[i] = NULL;
			}
		}
		for (k = 0; !out[i] && dir && k < 3; k++) {
			char *d = config_path(cfgdir, dir), *p = NULL;

			if (d && asprintf(&p, "%s/%s", d, names[k]) < 0)
				p = NULL;
			free(d);
			if (p && file_exists(p))
				out[i] = p;
			else
				free(p);
		}
		if (!out[i] && digest && rem) {
			rc = remote_lower(path, l, i, digest, rem);
			if (rc)
				goto out_free;
			rc = -EINVAL;
			continue;
		}
		if (!out[i]) {
			if (!file && !dir && !digest)
				cli_err(path, "layer %zu: no file, dir or digest", i);
			else
				cli_err(path, "layer %zu: not local (remote fetch not supported by this command)",
					i);
			goto out_free;
		}
	}
	if (json_object_object_get_ex(root, "upper", &upper) &&
	    !json_object_is_type(upper, json_type_null)) {
		const char *data, *index;

		if (!json_object_is_type(upper, json_type_object)) {
			cli_err(path, "upper: expected an object");
			goto out_free;
		}
		if (get_str(path, upper, "data", &data, "upper.") ||
		    get_str(path, upper, "index", &index, "upper."))
			goto out_free;
		/* spec 5.1: an upper without data or index means read-only */
		if (data && index) {
			*upper_data = config_path(cfgdir, data);
			*upper_index = config_path(cfgdir, index);
		}
	}
	*paths = out;
	*n = (unsigned int)cnt;
	out = NULL;
	rc = 0;
out_free:
	if (out) {
		for (i = 0; i < cnt; i++)
			free(out[i]);
		free(out);
		if (rem)
			cfg_remote_free(rem, (unsigned int)cnt);
		if (tb)
			cfg_turbo_free(tb, (unsigned int)cnt);
	}
out_put:
	json_object_put(root);
	free(dcopy);
	return rc;
}

int cli_config_load(const char *path, char ***paths, unsigned int *n,
		    char **upper_data, char **upper_index)
{
	return config_load(path, paths, n, upper_data, upper_index, NULL, NULL);
}

int cli_config_load_turbo(const char *path, char ***paths, unsigned int *n,
			  char **upper_data, char **upper_index, char ***targets, char ***gzidx)
{
	struct cfg_turbo tb = { 0 };
	int rc = config_load(path, paths, n, upper_data, upper_index, NULL, &tb);

	*targets = tb.targets;
	*gzidx = tb.gzidx;
	/* without repoBlobUrl no target is remote: the array holds nothing */
	free(tb.tdigests);
	return rc;
}

/* -------------------------------------------------------------------------
 * One layer
 * ------------------------------------------------------------------------- */
void cli_layer_close(struct cli_layer *l)
{
	if (l->rw)
		cli_rw_close(l);
	if (l->ro_open)
		obd_layer_close(&l->ro);
	if (l->fio_open)
		obd_file_io_close(&l->fio);
	if (l->remote)
		cli_remote_close(l->remote);
	cli_target_close(l->target);
	free(l->target_token);
	free(l->path);
	free(l->index_path);
	memset(l, 0, sizeof(*l));
}

static bool has_sealed_trailer(struct obd_io *io)
{
	u8 *blk;
	u32 flags;
	u64 ioff, isize, vsize;
	bool r = false;

	if (io->size < 2 * OBD_LSMT_HT_SPACE)
		return false;
	blk = malloc(OBD_LSMT_HT_SPACE);
	if (!blk)
		return false;
	if (!obd_io_read(io, blk, OBD_LSMT_HT_SPACE, io->size - OBD_LSMT_HT_SPACE) &&
	    !obd_lsmt_decode_ht(blk, false, io->name, &flags, &ioff, &isize, &vsize, NULL))
		r = flags & OBD_LSMT_F_SEALED;
	free(blk);
	return r;
}

int cli_peek_kind(const char *path, enum cli_layer_kind *kind, bool *is_lsmt_raw)
{
	struct obd_file_io f;
	struct obd_lsmt_info li;
	struct obd_err err = { "" };
	int rc;

	*is_lsmt_raw = false;
	rc = obd_file_io_open(&f, path, &err);
	if (rc)
		return rc;
	rc = obd_lsmt_read_header(&f.io, &li, &err);
	if (!rc) {
		*is_lsmt_raw = true;
		switch (li.kind) {
		case OBD_LSMT_RW_DATA:
			/* a sealed file keeps its RW header: look for the trailer */
			*kind = has_sealed_trailer(&f.io) ? CLI_KIND_SEALED : CLI_KIND_RW_APPEND;
			break;
		case OBD_LSMT_RW_SPARSE: *kind = CLI_KIND_RW_SPARSE; break;
		case OBD_LSMT_SEALED: *kind = CLI_KIND_SEALED; break;
		case OBD_LSMT_COMMITTED: *kind = CLI_KIND_COMMITTED; break;
		default: rc = -EINVAL; break;
		}
	}
	obd_file_io_close(&f);
	return rc;
}

static void layer_ro_opened(struct cli_layer *l, unsigned int flags)
{
	l->ro_open = true;
	l->info = l->ro.info;
	l->kind = l->info.kind == OBD_LSMT_COMMITTED ? CLI_KIND_COMMITTED : CLI_KIND_SEALED;
	l->maps = l->ro.maps;
	l->nmaps = l->ro.nmaps;
	l->stream = l->ro.lsmt_io;
	if (flags & CLI_STACK_NO_VERIFY)
		l->ro.zf.no_verify = true;
}

int cli_layer_open_remote(struct cli_layer *l, struct cli_remote *r, unsigned int flags)
{
	struct obd_err err = { "" };
	int rc;

	memset(l, 0, sizeof(*l));
	l->remote = r;
	l->path = strdup(cli_remote_url(r));
	if (!l->path) {
		rc = -ENOMEM;
		goto out_close;
	}
	rc = obd_layer_open(&l->ro, cli_remote_io(r), &obd_user_codec, &err);
	if (rc) {
		cli_err_core(l->path, rc, &err);
		goto out_close;
	}
	layer_ro_opened(l, flags);
	return 0;
out_close:
	cli_layer_close(l);
	return rc;
}

/* The meta layer at l->path over l->target, open. */
static int warp_meta_open(struct cli_layer *l, const char *path, unsigned int flags)
{
	struct obd_err err = { "" };
	int rc;

	rc = obd_file_io_open(&l->fio, path, &err);
	if (rc) {
		cli_err_core(path, rc, &err);
		goto out_close;
	}
	l->fio_open = true;
	rc = obd_layer_open_warp(&l->ro, &l->fio.io, &obd_user_codec, l->target->io.size, &err);
	if (rc) {
		cli_err_core(path, rc, &err);
		goto out_close;
	}
	layer_ro_opened(l, flags);
	return 0;
out_close:
	cli_layer_close(l);
	return rc;
}

int cli_layer_open_warp(struct cli_layer *l, const char *path, const char *target,
			const char *gzidx, unsigned int flags)
{
	int rc;

	memset(l, 0, sizeof(*l));
	l->path = strdup(path);
	if (!l->path)
		return -ENOMEM;
	rc = cli_target_open(&l->target, target, gzidx);
	if (!rc && !(l->target_token = realpath(target, NULL)))
		rc = -errno;
	if (rc) {
		cli_layer_close(l);
		return rc;
	}
	return warp_meta_open(l, path, flags);
}

int cli_layer_open_warp_remote(struct cli_layer *l, const char *path, const char *cfg,
			       const char *repo_blob_url, const char *digest, const char *gzidx,
			       unsigned int flags)
{
	struct cli_remote *r;
	char *abs;
	int rc;

	memset(l, 0, sizeof(*l));
	l->path = strdup(path);
	if (!l->path)
		return -ENOMEM;
	/* the target's own blob (compressed for gzip): what obd reads it through */
	rc = cli_remote_open(&r, cfg, repo_blob_url, digest, 0, NULL);
	if (!rc)
		rc = cli_target_open_remote(&l->target, r, gzidx);
	if (rc)
		goto out_close;
	if (gzidx) {
		rc = (flags & CLI_STACK_KERNEL) ?
			cli_gunzip_entry(cfg, cli_remote_url(r), digest, gzidx,
					 l->target->io.size, &l->target_token) : 0;
	} else {
		abs = realpath(cli_remote_cache_path(r), NULL);
		if (!abs || asprintf(&l->target_token, "remote:%llu:%s:%s",
				     (unsigned long long)cli_remote_size(r), digest, abs) < 0) {
			l->target_token = NULL;
			rc = -ENOMEM;
		}
		free(abs);
	}
	if (rc)
		goto out_close;
	return warp_meta_open(l, path, flags);
out_close:
	cli_layer_close(l);
	return rc;
}

/*
 * index_path: the RW index when the caller knows the layer is an append
 * RW pair. Without it, a header saying "RW data" is an error asking for it.
 */
int cli_layer_open(struct cli_layer *l, const char *path, const char *index_path,
		   unsigned int flags)
{
	struct obd_err err = { "" }, err2 = { "" };
	struct obd_lsmt_info li;
	int rc;

	memset(l, 0, sizeof(*l));
	l->path = strdup(path);
	if (!l->path)
		return -ENOMEM;
	rc = obd_file_io_open(&l->fio, path, &err);
	if (rc) {
		cli_err_core(path, rc, &err);
		goto out_close;
	}
	l->fio_open = true;
	if (!index_path) {
		rc = obd_layer_open(&l->ro, &l->fio.io, &obd_user_codec, &err);
		if (!rc) {
			layer_ro_opened(l, flags);
			return 0;
		}
	}
	/* Not a read-only layer: maybe a writable one. */
	if (obd_lsmt_read_header(&l->fio.io, &li, &err2) ||
	    (li.kind != OBD_LSMT_RW_DATA && li.kind != OBD_LSMT_RW_SPARSE &&
	     li.kind != OBD_LSMT_RW_INDEX)) {
		if (index_path) {
			if (err2.msg[0])
				cli_err_core(path, -EINVAL, &err2);
			else
				cli_err(path, "not a writable layer (%s header)",
					cli_kind_name(li.kind == OBD_LSMT_SEALED ?
						      CLI_KIND_SEALED : CLI_KIND_COMMITTED));
		} else {
			cli_err_core(path, rc, &err);
		}
		rc = -EINVAL;
		goto out_close;
	}
	if (li.kind == OBD_LSMT_RW_INDEX) {
		cli_err(path, "this is the index file of a writable layer: give DATA INDEX");
		rc = -EINVAL;
		goto out_close;
	}
	if (!(flags & CLI_STACK_ALLOW_RW)) {
		if (flags & CLI_STACK_RW_NOT_HERE)
			cli_err(path, "a writable layer can only be the top layer");
		else
			cli_err(path, "writable layer not accepted here (commit it first)");
		rc = -EINVAL;
		goto out_close;
	}
	if (li.kind == OBD_LSMT_RW_DATA && !index_path) {
		cli_err(path, "writable (append) layer: its INDEX file must follow it");
		rc = -EINVAL;
		goto out_close;
	}
	l->kind = li.kind == OBD_LSMT_RW_DATA ? CLI_KIND_RW_APPEND : CLI_KIND_RW_SPARSE;
	if (l->kind == CLI_KIND_RW_SPARSE)
		index_path = NULL;
	if (index_path) {
		l->index_path = strdup(index_path);
		if (!l->index_path) {
			rc = -ENOMEM;
			goto out_close;
		}
	}
	rc = cli_rw_open(l, path, index_path, false);
	if (rc)
		goto out_close;
	return 0;
out_close:
	cli_layer_close(l);
	return rc;
}

/* -------------------------------------------------------------------------
 * Stacks
 * ------------------------------------------------------------------------- */
void cli_stack_close(struct cli_stack *s)
{
	unsigned int i;

	if (s->idx_built)
		obd_index_free(&s->idx);
	for (i = 0; i < s->n; i++)
		cli_layer_close(&s->layers[i]);
	free(s->layers);
	memset(s, 0, sizeof(*s));
}

static int stack_merge(struct cli_stack *s)
{
	const struct obd_map **maps;
	struct obd_err err = { "" };
	u64 *counts;
	unsigned int i;
	int rc;

	maps = calloc(s->n, sizeof(*maps));
	counts = calloc(s->n, sizeof(*counts));
	if (!maps || !counts) {
		free(maps);
		free(counts);
		cli_err(NULL, "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < s->n; i++) {
		maps[i] = s->layers[i].maps;
		counts[i] = s->layers[i].nmaps;
	}
	rc = obd_index_merge(maps, counts, s->n, &s->idx, &err);
	free(maps);
	free(counts);
	if (rc) {
		cli_err_core(s->layers[s->n - 1].path, rc, &err);
		return rc;
	}
	s->idx_built = true;
	return 0;
}

static int stack_open_remote(struct cli_layer *l, const char *cfg, struct cfg_remote *rem,
			     unsigned int i, unsigned int flags)
{
	struct cli_remote *r;
	int rc;

	rc = cli_remote_open(&r, cfg, rem->repo_blob_url, rem->digests[i], rem->sizes[i],
			     &rem->dl);
	if (rc)
		return rc;
	return cli_layer_open_remote(l, r, flags & ~CLI_STACK_ALLOW_RW);
}

/* The virtual size of the bottom n layers: the top-most non-zero one (spec 2.8). */
u64 cli_stack_vsize(const struct cli_stack *s, unsigned int n)
{
	while (n-- > 0)
		if (s->layers[n].info.virtual_size)
			return s->layers[n].info.virtual_size;
	return 0;
}

static int stack_open(struct cli_stack *s, int argc, char **argv, unsigned int flags,
		      const char *xdata, const char *xindex);

/* A layer list with the writable layer xdata [xindex] after it. */
static int stack_open_list_upper(struct cli_stack *s, int argc, char **argv, unsigned int flags,
				 const char *xdata, const char *xindex)
{
	char **v = calloc((size_t)argc + 3, sizeof(*v));
	int rc, n = argc;

	if (!v)
		return -ENOMEM;
	memcpy(v, argv, (size_t)argc * sizeof(*v));
	v[n++] = (char *)xdata;
	if (xindex)
		v[n++] = (char *)xindex;
	rc = cli_stack_open(s, n, v, flags);
	free(v);
	return rc;
}

int cli_stack_open_upper(struct cli_stack *s, int argc, char **argv, unsigned int flags,
			 const char *xdata, const char *xindex)
{
	if (xdata && !(argc == 1 && cli_is_config(argv[0])))
		return stack_open_list_upper(s, argc, argv, flags, xdata, xindex);
	return stack_open(s, argc, argv, flags, xdata, xindex);
}

int cli_stack_open(struct cli_stack *s, int argc, char **argv, unsigned int flags)
{
	return stack_open(s, argc, argv, flags, NULL, NULL);
}

/*
 * Layers (bottom first; a writable top layer as DATA [INDEX]) or one config,
 * whose upper xdata [xindex] replaces, if given (the config must have none).
 */
static int stack_open(struct cli_stack *s, int argc, char **argv, unsigned int flags,
		      const char *xdata, const char *xindex)
{
	char **cfg_paths = NULL, *up_data = NULL, *up_index = NULL;
	struct cfg_remote rem = { 0 };
	struct cfg_turbo tb = { 0 };
	unsigned int ncfg = 0, i;
	int rc = 0, a;

	memset(s, 0, sizeof(*s));
	if (argc < 1) {
		cli_err(NULL, "no layers given");
		return -EINVAL;
	}
	tb.kernel = flags & CLI_STACK_KERNEL;
	if (argc == 1 && cli_is_config(argv[0])) {
		rc = config_load(argv[0], &cfg_paths, &ncfg, &up_data, &up_index,
				 (flags & CLI_STACK_REMOTE) ? &rem : NULL,
				 (flags & CLI_STACK_TURBO) ? &tb : NULL);
		if (rc)
			return rc;
		if (xdata && up_data) {
			cli_err(argv[0], "the config has an upper layer already: no other can go on top");
			rc = -EINVAL;
			goto out_cfg;
		}
		if (xdata) {
			up_data = strdup(xdata);
			up_index = xindex ? strdup(xindex) : NULL;
			if (!up_data || (xindex && !up_index)) {
				rc = -ENOMEM;
				goto out_cfg;
			}
		}
		if (!ncfg && !up_data) {
			cli_err(argv[0], "config has no layers");
			rc = -EINVAL;
			goto out_cfg;
		}
		s->layers = calloc(ncfg + 1, sizeof(*s->layers));
		if (!s->layers) {
			rc = -ENOMEM;
			goto out_cfg;
		}
		for (i = 0; i < ncfg; i++) {
			if (cfg_paths[i] && tb.targets && tb.targets[i])
				rc = cli_layer_open_warp(&s->layers[i], cfg_paths[i], tb.targets[i],
							 tb.gzidx[i], flags);
			else if (cfg_paths[i] && tb.tdigests && tb.tdigests[i])
				rc = cli_layer_open_warp_remote(&s->layers[i], cfg_paths[i], argv[0],
								rem.repo_blob_url, tb.tdigests[i],
								tb.gzidx[i], flags);
			else if (cfg_paths[i])
				rc = cli_layer_open(&s->layers[i], cfg_paths[i], NULL,
						    flags & ~CLI_STACK_ALLOW_RW);
			else
				rc = stack_open_remote(&s->layers[i], argv[0], &rem, i, flags);
			if (rc)
				goto out_close;
			s->n++;
		}
		if (up_data) {
			if (!(flags & CLI_STACK_ALLOW_RW)) {
				cli_warn(argv[0], "upper layer ignored by this command");
			} else {
				rc = cli_layer_open(&s->layers[s->n], up_data, up_index, flags);
				if (rc)
					goto out_close;
				s->n++;
			}
		}
	} else {
		if (argc > OBD_MAX_LAYERS + 1) {
			cli_err(NULL, "%d layers given, at most %d supported", argc, OBD_MAX_LAYERS);
			return -EINVAL;
		}
		s->layers = calloc((size_t)argc, sizeof(*s->layers));
		if (!s->layers)
			return -ENOMEM;
		for (a = 0; a < argc; a++) {
			enum cli_layer_kind kind;
			const char *index = NULL;
			bool raw;

			if (cli_is_config(argv[a])) {
				cli_err(argv[a], "a config file must be the only argument");
				rc = -EINVAL;
				goto out_close;
			}
			/* Only the top layer may be writable; its INDEX is the last arg. */
			if ((flags & CLI_STACK_ALLOW_RW) && a == argc - 2 &&
			    !cli_peek_kind(argv[a], &kind, &raw) && kind == CLI_KIND_RW_APPEND)
				index = argv[a + 1];
			rc = cli_layer_open(&s->layers[s->n], argv[a], index,
					    (a == argc - 1 || index) ? flags :
					    (flags & ~CLI_STACK_ALLOW_RW) |
					    ((flags & CLI_STACK_ALLOW_RW) ? CLI_STACK_RW_NOT_HERE : 0));
			if (rc)
				goto out_close;
			s->n++;
			if (index)
				a++;
		}
	}
	if (!s->n) {	/* a config with only an upper, to a command that reads the lowers */
		cli_err(argv[0], "no layers to read: the config has only an upper layer");
		rc = -EINVAL;
		goto out_close;
	}
	if (s->n > OBD_MAX_LAYERS) {
		cli_err(NULL, "%u layers, at most %d supported", s->n, OBD_MAX_LAYERS);
		rc = -EINVAL;
		goto out_close;
	}
	s->vsize = cli_stack_vsize(s, s->n);
	{
		struct obd_err err;

		rc = obd_stack_vsize_check(s->vsize, &err);
		if (rc) {
			cli_err(NULL, "%s (top layer %s)", err.msg, s->layers[s->n - 1].path);
			goto out_close;
		}
	}
	if (!(flags & CLI_STACK_NO_MERGE)) {
		rc = stack_merge(s);
		if (rc)
			goto out_close;
	}
	goto out_cfg;
out_close:
	cli_stack_close(s);
out_cfg:
	for (i = 0; i < ncfg; i++)
		free(cfg_paths[i]);
	free(cfg_paths);
	cfg_remote_free(&rem, ncfg);
	cfg_turbo_free(&tb, ncfg);
	free(up_data);
	free(up_index);
	return rc;
}

/* Reads past the end of a stream come back as zeros (spec 2.9). */
static int stream_read(struct obd_io *io, u8 *buf, u64 len, u64 off)
{
	u64 avail = off < io->size ? io->size - off : 0;

	if (avail < len) {
		memset(buf + avail, 0, len - avail);
		len = avail;
	}
	return len ? obd_io_read(io, buf, len, off) : 0;
}

struct read_ctx {
	struct cli_stack *s;
	u8 *buf;
	u64 lba0;
};

static int read_piece(void *ctx, u64 lba, u64 nsect, const struct obd_map *m, u64 moff)
{
	struct read_ctx *rc = ctx;
	u8 *dst = rc->buf + ((lba - rc->lba0) << OBD_SECTOR_SHIFT);

	if (!m || m->zeroed) {
		memset(dst, 0, nsect << OBD_SECTOR_SHIFT);
		return 0;
	}
	if (m->tag >= rc->s->n)
		return -EFSCORRUPTED;
	if (m->target) {	/* a TurboOCI layer's file data: in its target */
		if (!rc->s->layers[m->tag].target)
			return -EFSCORRUPTED;
		return stream_read(&rc->s->layers[m->tag].target->io, dst,
				   nsect << OBD_SECTOR_SHIFT, moff << OBD_SECTOR_SHIFT);
	}
	return stream_read(rc->s->layers[m->tag].stream, dst, nsect << OBD_SECTOR_SHIFT,
			   moff << OBD_SECTOR_SHIFT);
}

int cli_stack_read(struct cli_stack *s, void *buf, u64 lba, u64 nsect)
{
	struct read_ctx ctx = { s, buf, lba };

	return obd_index_walk(&s->idx, lba, nsect, read_piece, &ctx);
}
