// SPDX-License-Identifier: GPL-2.0-only
/*
 * Remote layers (cli_remote.h). The format core reads headers, indexes and
 * jump tables through cli_remote_io(); each read is served from the cache
 * file when its granules are present, else the missing granules around it
 * (widened to refillSize, clipped to the blob) are fetched with
 * reg_client, written and made durable with cache_entry_fill, and read
 * back from the cache file. The kernel later finds those ranges present.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_entry.h"
#include "cli_remote.h"
#include "config.h"
#include "reg_client.h"
#include "url.h"

#define GRANULE		((u64)1 << OBD_CACHE_GRANULE_SHIFT)

struct remote_client {
	struct remote_client *next;
	char key[1024];			/* origin + "/" + repo */
	struct reg_client rc;
};

struct cli_remote {
	struct obd_io io;
	struct cache_entry ce;
	struct reg_client *client;
	char url[1024];
	char disp[1024];
	char digest[OBD_DIGEST_STR_LEN + 1];
	u64 size;
};

static struct fetchd_config remote_cfg;
static bool remote_cfg_loaded;
static struct remote_client *clients;
static u64 remote_fetched;

int cli_remote_setup(const char *service_config)
{
	if (remote_cfg_loaded)
		return 0;
	if (cli_load_service_config(service_config, &remote_cfg))
		return -EINVAL;
	remote_cfg_loaded = true;
	return 0;
}

const struct fetchd_config *cli_remote_config(void)
{
	return cli_remote_setup(NULL) ? NULL : &remote_cfg;
}

void cli_remote_teardown(void)
{
	while (clients) {
		struct remote_client *n = clients->next;

		reg_client_free(&clients->rc);
		free(clients);
		clients = n;
	}
	remote_cfg_loaded = false;
}

u64 cli_remote_fetched(void)
{
	return remote_fetched;
}

/* One client (and so one token) per registry repository. */
static struct reg_client *client_for(const struct reg_url *u)
{
	struct remote_client *c;
	char origin[300], key[1024];

	if (url_origin(u, origin, sizeof(origin)))
		return NULL;
	snprintf(key, sizeof(key), "%s/%s", origin, u->repo);
	for (c = clients; c; c = c->next)
		if (!strcmp(c->key, key))
			return &c->rc;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	snprintf(c->key, sizeof(c->key), "%s", key);
	if (reg_client_init(&c->rc, &remote_cfg, u)) {
		reg_client_free(&c->rc);
		free(c);
		return NULL;
	}
	c->next = clients;
	clients = c;
	return &c->rc;
}


/* ------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------ */
static u64 refill_size(void)
{
	u64 r = remote_cfg.refill_size;

	return r >= GRANULE && !(r & (r - 1)) ? r : 262144;
}

/* Fetch the missing granules around [off, off + len) into the cache. */
static int remote_fill(struct cli_remote *r, u64 off, u64 len)
{
	u64 rs = refill_size(), start, end, last;
	void *buf;
	int rc;

	start = off & ~(rs - 1);
	end = OBD_ALIGN_UP(off + len, rs);
	if (end > r->size)
		end = r->size;
	while (start < end && cache_entry_present(&r->ce, start, GRANULE))
		start += GRANULE;
	for (;;) {
		last = (end - 1) & ~(GRANULE - 1);
		if (last <= start || !cache_entry_present(&r->ce, last, end - last))
			break;
		end = last;
	}
	if (start >= end)
		return 0;
	buf = malloc(end - start);
	if (!buf)
		return -ENOMEM;
	rc = reg_blob_get(r->client, r->url, r->size, start, end - start, buf);
	if (!rc) {
		rc = cache_entry_fill(&r->ce, start, buf, end - start);
		if (rc)
			cli_err(r->ce.path, "writing the fetched range %llu-%llu: %s",
				(unsigned long long)start, (unsigned long long)(end - 1),
				strerror(-rc));
		else
			remote_fetched += end - start;
	}
	free(buf);
	return rc;
}

static int remote_read(struct obd_io *io, void *buf, size_t len, u64 off)
{
	struct cli_remote *r = (struct cli_remote *)((char *)io -
			       __builtin_offsetof(struct cli_remote, io));
	int rc;

	if (off > r->size || len > r->size - off)
		return -EIO;
	if (!len)
		return 0;
	if (!cache_entry_present(&r->ce, off, len)) {
		rc = remote_fill(r, off, len);
		if (rc)
			return rc;
	}
	return obd_pread_all(r->ce.fd, buf, len, off);
}

/* ------------------------------------------------------------------------
 * Open
 * ------------------------------------------------------------------------ */
static int remote_locate(struct cli_remote *r, const char *cfgfile, const char *base,
			 const char *digest, struct reg_url *u)
{
	size_t bl = strlen(base);
	char err[512];

	while (bl && base[bl - 1] == '/')
		bl--;
	if (snprintf(r->url, sizeof(r->url), "%.*s/%s", (int)bl, base, digest) >=
	    (int)sizeof(r->url)) {
		cli_err(cfgfile, "repoBlobUrl: too long");
		return -ENAMETOOLONG;
	}
	if (url_parse_blob(r->url, u, err, sizeof(err))) {
		cli_err(cfgfile, "repoBlobUrl: %s", err);
		return -EINVAL;
	}
	url_redact(r->url, r->disp, sizeof(r->disp));
	return 0;
}

int cli_remote_open(struct cli_remote **out, const char *cfgfile, const char *repo_blob_url,
		    const char *digest, u64 size, const struct obd_cache_dl *dl)
{
	u8 raw[OBD_CACHE_DIGEST_LEN];
	char path[PATH_MAX], err[1024];
	struct cli_remote *r;
	struct reg_url u;
	int rc;

	*out = NULL;
	if (obd_digest_parse(digest, strlen(digest), raw)) {
		cli_err(cfgfile, "digest '%s': expected sha256:<64 lower-case hex>", digest);
		return -EINVAL;
	}
	rc = cli_remote_setup(NULL);
	if (rc)
		return rc;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->ce.fd = r->ce.meta_fd = -1;
	snprintf(r->digest, sizeof(r->digest), "%s", digest);
	rc = remote_locate(r, cfgfile, repo_blob_url, digest, &u);
	if (rc)
		goto out_free;
	r->client = client_for(&u);
	if (!r->client) {
		rc = -ENOMEM;
		goto out_free;
	}
	if (!size) {
		rc = reg_blob_head_url(r->client, r->url, &size);
		if (rc == 0)
			cli_err(r->disp, "HTTP 404: blob not in the registry");
		if (rc <= 0) {
			rc = rc ? rc : -ENOENT;
			goto out_free;
		}
		if (!size) {
			cli_err(r->disp, "the registry gives no size: set size in the config");
			rc = -EPROTO;
			goto out_free;
		}
	}
	r->size = size;
	rc = cli_make_dirs(remote_cfg.cache_dir);
	if (rc)
		goto out_free;
	rc = cache_entry_path(remote_cfg.cache_dir, digest, path, sizeof(path));
	if (rc) {
		cli_err(remote_cfg.cache_dir, "cache path too long");
		goto out_free;
	}
	rc = cache_entry_open(&r->ce, path, size, raw, r->url, err, sizeof(err));
	if (!rc && dl && dl->flags)
		rc = cache_entry_set_download(&r->ce, dl, err, sizeof(err));
	if (rc) {
		cli_err(NULL, "%s", err);
		cache_entry_close(&r->ce);
		goto out_free;
	}
	r->io.read = remote_read;
	r->io.size = size;
	r->io.name = r->disp;
	*out = r;
	return 0;
out_free:
	free(r);
	return rc;
}

void cli_remote_close(struct cli_remote *r)
{
	if (!r)
		return;
	cache_entry_close(&r->ce);
	free(r);
}

struct obd_io *cli_remote_io(struct cli_remote *r)
{
	return &r->io;
}

const char *cli_remote_url(const struct cli_remote *r)
{
	return r->disp;
}

const char *cli_remote_cache_path(const struct cli_remote *r)
{
	return r->ce.path;
}

const char *cli_remote_digest(const struct cli_remote *r)
{
	return r->digest;
}

u64 cli_remote_size(const struct cli_remote *r)
{
	return r->size;
}

/* --service-config FILE, or the default path (which need not exist). */
int cli_load_service_config(const char *path, struct fetchd_config *cfg)
{
	char err[1024];
	int rc;

	rc = fetchd_config_load(path ? path : FETCHD_DEFAULT_CONFIG, path != NULL, cfg, err,
				sizeof(err));
	if (rc)
		cli_err(NULL, "%s", err);
	return rc;
}
