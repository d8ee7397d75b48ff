// SPDX-License-Identifier: GPL-2.0-only
/*
 * The service config, overlaybd.json (spec 5.6). The reference's keys we
 * use are read with the reference's meaning; the rest of its keys (p2p,
 * exporter, ioEngine, ...) are ignored rather than rejected, so one file
 * serves both daemons. A key we do read must have the right type and a
 * sane value: a typo in refillSize should stop the daemon at start, not
 * make it fetch 1-byte ranges.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <json-c/json.h>

#include "config.h"
#include "url.h"

#define CFG_MAX_FILE	(1u << 20)	/* overlaybd.json is a few hundred bytes */

/* printf into err (errlen bytes, NULL allowed) and return code. */
int reg_errf(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

void fetchd_config_defaults(struct fetchd_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->cache_dir, sizeof(c->cache_dir), "%s", FETCHD_DEFAULT_CACHEDIR);
	c->refill_size = 262144;
	snprintf(c->gz_dir, sizeof(c->gz_dir), "%s", FETCHD_DEFAULT_GZDIR);
	c->gz_size_gb = 4;
	c->gz_refill_size = 1048576;
	c->cache_size_gb = 4;
	c->cred_path[0] = 0;		/* anonymous unless the config names a file */
	c->log_level = LOG_LVL_INFO;
	snprintf(c->user_agent, sizeof(c->user_agent), "%s", FETCHD_USER_AGENT);
	c->request_timeout_s = 30;
	c->connect_timeout_s = 10;
	c->max_retries = 8;
	c->max_concurrent = 32;
	c->sync_interval_ms = 100;
	c->readahead_mb = 32;
	c->isolated_refill_kb = 64;
	c->min_free_gb = 1;
	c->evict_interval_ms = 10000;
	c->evict_grace_s = 60;
	c->cred_mode = CRED_MODE_FILE;
	c->cred_timeout_s = 1;
	c->download = (struct fetchd_download){
		.enable = false, .delay_s = 300, .delay_extra_s = 30, .max_mbps = 100,
		.try_cnt = 5, .block_size = 262144,
	};
	c->exporter_port = 9863;
	snprintf(c->exporter_uri, sizeof(c->exporter_uri), "/metrics");
	c->exporter_update_ms = 60000;
	snprintf(c->exporter_addr, sizeof(c->exporter_addr), "127.0.0.1");
	c->prefetch_concurrency = 16;
}

/* ------------------------------------------------------------------------
 * Shared JSON and file helpers (cred.c and auth.c use them too)
 */

int fetchd_json_parse(const char *text, size_t len, struct json_object **out, char *err,
		      size_t errlen)
{
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	json_object *root;
	char *buf;

	*out = NULL;
	if (len > FETCHD_JSON_MAX)
		return reg_errf(err, errlen, -EINVAL, "invalid JSON: larger than %u bytes", FETCHD_JSON_MAX);
	/* a raw NUL is never valid JSON; json-c would stop there silently */
	if (memchr(text, 0, len))
		return reg_errf(err, errlen, -EINVAL, "invalid JSON: NUL byte at offset %zu",
			       (size_t)((const char *)memchr(text, 0, len) - text));
	/* json-c wants the terminating NUL inside len to know the input ended */
	buf = malloc(len + 1);
	if (!buf)
		return reg_errf(err, errlen, -ENOMEM, "out of memory");
	memcpy(buf, text, len);
	buf[len] = 0;
	tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
	if (!tok) {
		free(buf);
		return reg_errf(err, errlen, -ENOMEM, "out of memory");
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, buf, (int)len + 1);
	jerr = json_tokener_get_error(tok);
	if (!root || jerr != json_tokener_success) {
		size_t at = json_tokener_get_parse_end(tok);

		json_object_put(root);
		json_tokener_free(tok);
		explicit_bzero(buf, len);	/* may be cred.json */
		free(buf);
		if (jerr == json_tokener_continue || at >= len)
			return reg_errf(err, errlen, -EINVAL, "invalid JSON: truncated");
		return reg_errf(err, errlen, -EINVAL, "invalid JSON at offset %zu: %s", at,
			       json_tokener_error_desc(jerr));
	}
	json_tokener_free(tok);
	explicit_bzero(buf, len);
	free(buf);
	*out = root;
	return 0;
}

int fetchd_read_file(const char *path, size_t max, char **bufp, size_t *lenp)
{
	struct stat st;
	size_t len = 0;
	char *buf;
	int fd, rc = 0;

	*bufp = NULL;
	*lenp = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out_close;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = -EISDIR;
		goto out_close;
	}
	buf = malloc(max + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out_close;
	}
	/* read to EOF rather than trust st_size (procfs, pipes, a file being rewritten) */
	for (;;) {
		ssize_t n = read(fd, buf + len, max + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			rc = -EFBIG;
			break;
		}
	}
	if (rc) {
		explicit_bzero(buf, len > max ? max + 1 : len);
		free(buf);
		goto out_close;
	}
	buf[len] = 0;
	*bufp = buf;
	*lenp = len;
out_close:
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------------
 * Typed getters. Each takes the dotted name for its error message.
 */

/* What the user wrote, for "got X": JSON text, cut short. */
static const char *got(json_object *v, char *buf, size_t cap)
{
	const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t n = strlen(s);

	if (n < 48) {
		snprintf(buf, cap, "%s", s);
	} else {
		snprintf(buf, cap, "%.44s...", s);
	}
	return buf;
}

static const char *type_word(json_type t)
{
	switch (t) {
	case json_type_object:	return "an object";
	case json_type_string:	return "a string";
	case json_type_int:	return "an integer";
	case json_type_double:	return "a number";
	case json_type_boolean:	return "a boolean";
	case json_type_array:	return "an array";
	default:		return "a value";
	}
}

struct cfg_ctx {
	char *err;
	size_t errlen;
};

/*
 * Member key of parent (an object) that is present and not null: 1 and
 * *out; absent or null: 0 (null means "not set", like the reference's
 * parser); of another type than want: -EINVAL naming key.
 */
static int member(struct cfg_ctx *x, json_object *parent, const char *dotted, const char *key,
		  json_type want, json_object **out)
{
	json_object *v;
	char g[64];

	*out = NULL;
	if (!parent || !json_object_object_get_ex(parent, key, &v) ||
	    json_object_is_type(v, json_type_null))
		return 0;
	/* an integral number is fine where a double is wanted, and vice versa below */
	if (json_object_is_type(v, want) ||
	    (want == json_type_double && json_object_is_type(v, json_type_int)) ||
	    (want == json_type_int && json_object_is_type(v, json_type_double))) {
		*out = v;
		return 1;
	}
	return reg_errf(x->err, x->errlen, -EINVAL, "%s: expected %s, got %s", dotted,
		       type_word(want), got(v, g, sizeof(g)));
}

static bool has_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

enum { STR_NONEMPTY = 1, STR_NOCTL = 2 };

static int get_str(struct cfg_ctx *x, json_object *parent, const char *dotted, const char *key,
		   char *dst, size_t cap, int flags)
{
	json_object *v;
	const char *s;
	size_t n;
	int rc = member(x, parent, dotted, key, json_type_string, &v);

	if (rc <= 0)
		return rc;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (strlen(s) != n)
		return reg_errf(x->err, x->errlen, -EINVAL, "%s: contains a NUL character", dotted);
	if ((flags & STR_NONEMPTY) && !n)
		return reg_errf(x->err, x->errlen, -EINVAL, "%s: expected a non-empty string, got \"\"",
			       dotted);
	if ((flags & STR_NOCTL) && has_ctl(s, n))
		return reg_errf(x->err, x->errlen, -EINVAL, "%s: contains a control character", dotted);
	if (n >= cap)
		return reg_errf(x->err, x->errlen, -EINVAL, "%s: longer than %zu bytes, got %zu",
			       dotted, cap - 1, n);
	memcpy(dst, s, n + 1);
	return 1;
}

/*
 * v (an int or a double) as a non-negative integer: false for fractions,
 * negatives and anything past UINT64_MAX. 1e6 is an integer here.
 */
static bool as_u64(json_object *v, uint64_t *out)
{
	if (json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);

		/* range first: the cast is only defined for values that fit */
		if (!isfinite(d) || d < 0 || d >= 0x1p64 || d != (double)(uint64_t)d)
			return false;
		*out = (uint64_t)d;
		return true;
	}
	/* json-c keeps values above INT64_MAX as uint64; get_int64 saturates */
	if (json_object_get_int64(v) < 0)
		return false;
	*out = json_object_get_uint64(v);
	return true;
}

/* An integer in [min, max]. */
static int get_uint(struct cfg_ctx *x, json_object *parent, const char *dotted, const char *key,
		    uint64_t min, uint64_t max, uint64_t *out)
{
	json_object *v;
	uint64_t u;
	char g[64];
	int rc = member(x, parent, dotted, key, json_type_int, &v);

	if (rc <= 0)
		return rc;
	if (!as_u64(v, &u) || u < min || u > max)
		return reg_errf(x->err, x->errlen, -EINVAL,
			       "%s: expected an integer from %llu to %llu, got %s", dotted,
			       (unsigned long long)min, (unsigned long long)max,
			       got(v, g, sizeof(g)));
	*out = u;
	return 1;
}

static int get_uint_field(struct cfg_ctx *x, json_object *parent, const char *dotted,
			  const char *key, unsigned int min, unsigned int max, unsigned int *out)
{
	uint64_t v = 0;
	int rc = get_uint(x, parent, dotted, key, min, max, &v);

	if (rc == 1)
		*out = (unsigned int)v;
	return rc;
}

static int get_bool(struct cfg_ctx *x, json_object *parent, const char *dotted, const char *key,
		    bool *out)
{
	json_object *v;
	int rc = member(x, parent, dotted, key, json_type_boolean, &v);

	if (rc == 1)
		*out = json_object_get_boolean(v);
	return rc;
}

/* A finite number in [min, max] (integers accepted). */
static int get_double(struct cfg_ctx *x, json_object *parent, const char *dotted,
		      const char *key, double min, double max, double *out)
{
	json_object *v;
	char g[64];
	double d;
	int rc = member(x, parent, dotted, key, json_type_double, &v);

	if (rc <= 0)
		return rc;
	d = json_object_get_double(v);
	if (!isfinite(d) || d < min || d > max)
		return reg_errf(x->err, x->errlen, -EINVAL, "%s: expected a number from %g to %g, got %s",
			       dotted, min, max, got(v, g, sizeof(g)));
	*out = d;
	return 1;
}

/* A table of unsigned int members of one object: key, bounds, offset in base. */
struct uint_key {
	const char *key;
	unsigned int min, max;
	size_t off;
};

static int get_uint_keys(struct cfg_ctx *x, json_object *o, const char *prefix,
			 const struct uint_key *keys, size_t n, void *base)
{
	char dotted[256];
	int rc;

	for (size_t i = 0; i < n; i++) {
		unsigned int *field = (unsigned int *)((char *)base + keys[i].off);

		snprintf(dotted, sizeof(dotted), "%s.%s", prefix, keys[i].key);
		rc = get_uint_field(x, o, dotted, keys[i].key, keys[i].min, keys[i].max, field);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Sections
 */

static int sect(struct cfg_ctx *x, json_object *root, const char *key, json_object **out)
{
	return member(x, root, key, key, json_type_object, out);
}


/* A cacheSizeGB: a number > 0, fractions fine (0.05 = 50 MiB, handy in tests). */
static int get_cache_gb(struct cfg_ctx *x, json_object *o, const char *where, double *out)
{
	json_object *v;
	double gb;
	char g[64];
	int rc;

	rc = member(x, o, where, "cacheSizeGB", json_type_double, &v);
	if (rc != 1)
		return rc < 0 ? rc : 0;
	gb = json_object_get_double(v);
	if (!isfinite(gb) || gb <= 0 || gb > FETCHD_CACHE_GB_MAX)
		return reg_errf(x->err, x->errlen, -EINVAL,
				"%s: expected a number > 0 and <= %u, got %s", where,
				FETCHD_CACHE_GB_MAX, got(v, g, sizeof(g)));
	*out = gb;
	return 0;
}
static int parse_cache(struct cfg_ctx *x, json_object *root, struct fetchd_config *c)
{
	json_object *o, *v;
	uint64_t refill;
	char g[64];
	int rc;

	rc = sect(x, root, "cacheConfig", &o);
	if (rc <= 0)
		return rc;
	rc = get_str(x, o, "cacheConfig.cacheDir", "cacheDir", c->cache_dir, sizeof(c->cache_dir),
		     STR_NONEMPTY);
	if (rc < 0)
		return rc;
	rc = member(x, o, "cacheConfig.refillSize", "refillSize", json_type_int, &v);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		/* the cache's granule: a power of two so ranges align to it */
		if (!as_u64(v, &refill) || refill < FETCHD_REFILL_MIN ||
		    refill > FETCHD_REFILL_MAX || (refill & (refill - 1)))
			return reg_errf(x->err, x->errlen, -EINVAL,
				       "cacheConfig.refillSize: expected a power of two from %u to %u, got %s",
				       FETCHD_REFILL_MIN, FETCHD_REFILL_MAX, got(v, g, sizeof(g)));
		c->refill_size = refill;
	}
	rc = get_cache_gb(x, o, "cacheConfig.cacheSizeGB", &c->cache_size_gb);
	if (rc < 0)
		return rc;
	rc = get_double(x, o, "cacheConfig.minFreeGB", "minFreeGB", 0, FETCHD_CACHE_GB_MAX,
			&c->min_free_gb);
	if (rc < 0)
		return rc;
	rc = get_uint_field(x, o, "cacheConfig.evictIntervalMs", "evictIntervalMs", 100, 3600000,
			    &c->evict_interval_ms);
	if (rc < 0)
		return rc;
	rc = get_uint_field(x, o, "cacheConfig.evictGraceSec", "evictGraceSec", 0, 86400,
			    &c->evict_grace_s);
	return rc < 0 ? rc : 0;
}

/*
 * gzipCacheConfig {enable, cacheDir, cacheSizeGB, refillSize}: the reference's
 * keys and defaults (turbo-oci.md 3.3). refillSize only has to be whole
 * pages there, and here (a positive multiple of 4096, at most
 * FETCHD_REFILL_MAX: one refill is decoded into one buffer).
 */
static int parse_gzip_cache(struct cfg_ctx *x, json_object *root, struct fetchd_config *c)
{
	json_object *o, *v;
	uint64_t refill;
	char g[64];
	int rc;

	rc = sect(x, root, "gzipCacheConfig", &o);
	if (rc <= 0)
		return rc;
	rc = get_bool(x, o, "gzipCacheConfig.enable", "enable", &c->gz_enable);
	if (rc < 0)
		return rc;
	rc = get_str(x, o, "gzipCacheConfig.cacheDir", "cacheDir", c->gz_dir, sizeof(c->gz_dir),
		     STR_NONEMPTY);
	if (rc < 0)
		return rc;
	rc = member(x, o, "gzipCacheConfig.refillSize", "refillSize", json_type_int, &v);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		if (!as_u64(v, &refill) || !refill || refill % 4096 || refill > FETCHD_REFILL_MAX)
			return reg_errf(x->err, x->errlen, -EINVAL,
					"gzipCacheConfig.refillSize: expected a positive multiple of 4096 up to %u, got %s",
					FETCHD_REFILL_MAX, got(v, g, sizeof(g)));
		c->gz_refill_size = refill;
	}
	return get_cache_gb(x, o, "gzipCacheConfig.cacheSizeGB", &c->gz_size_gb);
}

/*
 * credentialConfig {mode, path, timeout, client_cert_path, client_key_path,
 * server_ca_path} beats the legacy credentialFilePath, as in the reference.
 * file: path is a cred.json; http/https: path is the credential server's
 * URL; uds: path is its Unix socket (spec 6.4).
 */
static int parse_cred_mode(struct cfg_ctx *x, json_object *o, struct fetchd_config *c)
{
	static const char *const names[] = {
		[CRED_MODE_FILE] = "file", [CRED_MODE_HTTP] = "http",
		[CRED_MODE_HTTPS] = "https", [CRED_MODE_UDS] = "uds",
	};
	json_object *mode;
	char g[64];
	int rc = member(x, o, "credentialConfig.mode", "mode", json_type_string, &mode);

	if (rc <= 0)
		return rc;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(json_object_get_string(mode), names[i])) {
			c->cred_mode = (enum fetchd_cred_mode)i;
			return 0;
		}
	}
	return reg_errf(x->err, x->errlen, -EINVAL,
		       "credentialConfig.mode: expected \"file\", \"http\", \"https\" or \"uds\", got %s",
		       got(mode, g, sizeof(g)));
}

static int parse_cred(struct cfg_ctx *x, json_object *root, struct fetchd_config *c)
{
	char path[PATH_MAX] = "";
	json_object *o;
	int rc;

	rc = get_str(x, root, "credentialFilePath", "credentialFilePath", c->cred_path,
		     sizeof(c->cred_path), 0);
	if (rc < 0)
		return rc;
	rc = sect(x, root, "credentialConfig", &o);
	if (rc <= 0)
		return rc;
	rc = parse_cred_mode(x, o, c);
	if (rc < 0)
		return rc;
	rc = get_str(x, o, "credentialConfig.path", "path", path, sizeof(path), STR_NOCTL);
	if (rc < 0)
		return rc;
	/* mode "file" without a path: the reference then uses credentialFilePath */
	if (rc == 1 && path[0])
		memcpy(c->cred_path, path, strlen(path) + 1);
	if (c->cred_mode != CRED_MODE_FILE && (rc != 1 || !path[0]))
		return reg_errf(x->err, x->errlen, -EINVAL,
			       "credentialConfig.path: required for mode http, https and uds");
	rc = get_uint_field(x, o, "credentialConfig.timeout", "timeout", 1, 60, &c->cred_timeout_s);
	if (rc >= 0)
		rc = get_str(x, o, "credentialConfig.client_cert_path", "client_cert_path",
			     c->cred_client_cert, sizeof(c->cred_client_cert), 0);
	if (rc >= 0)
		rc = get_str(x, o, "credentialConfig.client_key_path", "client_key_path",
			     c->cred_client_key, sizeof(c->cred_client_key), 0);
	if (rc >= 0)
		rc = get_str(x, o, "credentialConfig.server_ca_path", "server_ca_path",
			     c->cred_server_ca, sizeof(c->cred_server_ca), 0);
	return rc < 0 ? rc : 0;
}

static int parse_cert(struct cfg_ctx *x, json_object *root, struct fetchd_config *c)
{
	json_object *o;
	int rc;

	rc = sect(x, root, "certConfig", &o);
	if (rc <= 0)
		return rc;
	rc = get_str(x, o, "certConfig.certFile", "certFile", c->cert_file, sizeof(c->cert_file), 0);
	if (rc < 0)
		return rc;
	rc = get_str(x, o, "certConfig.keyFile", "keyFile", c->key_file, sizeof(c->key_file), 0);
	if (rc < 0)
		return rc;
	rc = get_str(x, o, "certConfig.caFile", "caFile", c->ca_file, sizeof(c->ca_file), 0);
	if (rc < 0)
		return rc;
	/* a key alone is a half-done config; a cert alone may hold its key (PEM) */
	if (c->key_file[0] && !c->cert_file[0])
		return reg_errf(x->err, x->errlen, -EINVAL,
			       "certConfig.keyFile: set without certConfig.certFile");
	return 0;
}

static int parse_log(struct cfg_ctx *x, json_object *root, struct fetchd_config *c)
{
	json_object *o;
	unsigned int lvl;
	int rc;

	rc = sect(x, root, "logConfig", &o);
	if (rc <= 0)
		return rc;
	rc = get_uint_field(x, o, "logConfig.logLevel", "logLevel", LOG_LVL_DEBUG, LOG_LVL_FATAL, &lvl);
	if (rc == 1)
		c->log_level = (int)lvl;
	return rc < 0 ? rc : 0;
}

static int parse_fetch(struct cfg_ctx *x, json_object *root, struct fetchd_config *c)
{
	static const struct uint_key keys[] = {
		{ "requestTimeout", 1, 3600, offsetof(struct fetchd_config, request_timeout_s) },
		{ "connectTimeout", 1, 600, offsetof(struct fetchd_config, connect_timeout_s) },
		{ "maxRetries", 0, 100, offsetof(struct fetchd_config, max_retries) },
		{ "maxConcurrent", 1, 1024, offsetof(struct fetchd_config, max_concurrent) },
		{ "syncIntervalMs", 1, 60000, offsetof(struct fetchd_config, sync_interval_ms) },
		{ "readaheadMB", 0, 64, offsetof(struct fetchd_config, readahead_mb) },
		{ "isolatedRefillKB", 0, 65536, offsetof(struct fetchd_config, isolated_refill_kb) },
	};
	json_object *o;
	int rc;

	rc = sect(x, root, "fetchConfig", &o);
	if (rc <= 0)
		return rc;
	rc = get_uint_keys(x, o, "fetchConfig", keys, sizeof(keys) / sizeof(keys[0]), c);
	if (rc < 0)
		return rc;
	if (c->isolated_refill_kb && (c->isolated_refill_kb < 4 ||
				      (c->isolated_refill_kb & (c->isolated_refill_kb - 1))))
		return reg_errf(x->err, x->errlen, -EINVAL,
				"fetchConfig.isolatedRefillKB: expected 0 or a power of two from 4 to 65536, got %u",
				c->isolated_refill_kb);
	rc = get_str(x, o, "fetchConfig.proxy", "proxy", c->proxy, sizeof(c->proxy), STR_NOCTL);
	if (rc >= 0)
		rc = get_str(x, o, "fetchConfig.noProxy", "noProxy", c->no_proxy, sizeof(c->no_proxy),
			     STR_NOCTL);
	return rc < 0 ? rc : 0;
}

int fetchd_download_parse(json_object *o, const char *prefix, struct fetchd_download *dl,
			  char *err, size_t errlen)
{
	static const struct uint_key keys[] = {
		{ "delay", 0, 86400 * 7, offsetof(struct fetchd_download, delay_s) },
		{ "delayExtra", 0, 86400, offsetof(struct fetchd_download, delay_extra_s) },
		{ "maxMBps", 0, 1u << 20, offsetof(struct fetchd_download, max_mbps) },
		{ "tryCnt", 1, 100, offsetof(struct fetchd_download, try_cnt) },
		{ "blockSize", FETCHD_DL_BLOCK_MIN, FETCHD_DL_BLOCK_MAX,
		  offsetof(struct fetchd_download, block_size) },
	};
	struct cfg_ctx x = { .err = err, .errlen = errlen };
	struct fetchd_download n = *dl;
	char dotted[256];
	int rc;

	if (!json_object_is_type(o, json_type_object))
		return reg_errf(err, errlen, -EINVAL, "%s: expected an object", prefix);
	snprintf(dotted, sizeof(dotted), "%s.enable", prefix);
	rc = get_bool(&x, o, dotted, "enable", &n.enable);
	if (rc >= 0)
		rc = get_uint_keys(&x, o, prefix, keys, sizeof(keys) / sizeof(keys[0]), &n);
	if (rc < 0)
		return rc;
	if (n.block_size % FETCHD_DL_BLOCK_MIN)
		return reg_errf(err, errlen, -EINVAL, "%s.blockSize: expected a multiple of %u, got %u",
			       prefix, FETCHD_DL_BLOCK_MIN, n.block_size);
	*dl = n;
	return 0;
}

static int parse_download(struct cfg_ctx *x, json_object *root, struct fetchd_config *c)
{
	json_object *o;
	int rc = sect(x, root, "download", &o);

	if (rc <= 0)
		return rc;
	return fetchd_download_parse(o, "download", &c->download, x->err, x->errlen);
}

static int parse_exporter(struct cfg_ctx *x, json_object *root, struct fetchd_config *c)
{
	json_object *o;
	int rc = sect(x, root, "exporterConfig", &o);

	if (rc <= 0)
		return rc;
	rc = get_bool(x, o, "exporterConfig.enable", "enable", &c->exporter_enable);
	if (rc >= 0)
		rc = get_uint_field(x, o, "exporterConfig.port", "port", 1, 65535, &c->exporter_port);
	if (rc >= 0)
		rc = get_uint_field(x, o, "exporterConfig.updateInterval", "updateInterval", 100,
				    3600000, &c->exporter_update_ms);
	if (rc >= 0)
		rc = get_str(x, o, "exporterConfig.uriPrefix", "uriPrefix", c->exporter_uri,
			     sizeof(c->exporter_uri), STR_NONEMPTY | STR_NOCTL);
	if (rc >= 0 && c->exporter_uri[0] != '/')
		return reg_errf(x->err, x->errlen, -EINVAL,
			       "exporterConfig.uriPrefix: expected a path starting with '/'");
	if (rc >= 0)
		rc = get_str(x, o, "exporterConfig.address", "address", c->exporter_addr,
			     sizeof(c->exporter_addr), STR_NONEMPTY | STR_NOCTL);
	return rc < 0 ? rc : 0;
}

static int parse_p2p(struct cfg_ctx *x, json_object *root, struct fetchd_config *c)
{
	json_object *o;
	int rc = sect(x, root, "p2pConfig", &o);

	if (rc <= 0)
		return rc;
	rc = get_bool(x, o, "p2pConfig.enable", "enable", &c->p2p_enable);
	if (rc >= 0)
		rc = get_str(x, o, "p2pConfig.address", "address", c->p2p_address,
			     sizeof(c->p2p_address), STR_NOCTL);
	if (rc < 0)
		return rc;
	if (c->p2p_enable && !url_has_scheme(c->p2p_address, "http") &&
	    !url_has_scheme(c->p2p_address, "https"))
		return reg_errf(x->err, x->errlen, -EINVAL,
			       "p2pConfig.address: expected an http:// or https:// URL when enabled");
	return 0;
}

static int parse_prefetch(struct cfg_ctx *x, json_object *root, struct fetchd_config *c)
{
	json_object *o;
	int rc = sect(x, root, "prefetchConfig", &o);

	if (rc <= 0)
		return rc;
	rc = get_uint_field(x, o, "prefetchConfig.concurrency", "concurrency", 1, 1024,
			    &c->prefetch_concurrency);
	return rc < 0 ? rc : 0;
}

int fetchd_config_parse(const char *json, size_t len, struct fetchd_config *c,
			char *err, size_t errlen)
{
	struct cfg_ctx x = { .err = err, .errlen = errlen };
	struct fetchd_config *n;
	json_object *root;
	char g[64];
	int rc;

	rc = fetchd_json_parse(json, len, &root, err, errlen);
	if (rc)
		return rc;
	if (!json_object_is_type(root, json_type_object)) {
		rc = reg_errf(err, errlen, -EINVAL, "config: expected an object, got %s",
			     got(root, g, sizeof(g)));
		goto out;
	}
	/* fill a copy: on error c keeps what it had, not half a config */
	n = malloc(sizeof(*n));
	if (!n) {
		rc = reg_errf(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	*n = *c;
	rc = parse_cache(&x, root, n);
	if (!rc)
		rc = parse_gzip_cache(&x, root, n);
	if (!rc)
		rc = parse_cred(&x, root, n);
	if (!rc)
		rc = parse_cert(&x, root, n);
	if (!rc)
		rc = parse_log(&x, root, n);
	if (!rc)
		rc = get_str(&x, root, "userAgent", "userAgent", n->user_agent, sizeof(n->user_agent),
			     STR_NONEMPTY | STR_NOCTL);
	if (rc > 0)
		rc = 0;
	if (!rc)
		rc = parse_fetch(&x, root, n);
	if (!rc)
		rc = parse_download(&x, root, n);
	if (!rc)
		rc = parse_exporter(&x, root, n);
	if (!rc)
		rc = parse_p2p(&x, root, n);
	if (!rc)
		rc = parse_prefetch(&x, root, n);
	if (!rc)
		*c = *n;
	free(n);
out:
	json_object_put(root);
	return rc;
}

int fetchd_config_load(const char *path, bool must_exist, struct fetchd_config *c,
		       char *err, size_t errlen)
{
	char msg[512];
	size_t len;
	char *buf;
	int rc;

	fetchd_config_defaults(c);
	rc = fetchd_read_file(path, CFG_MAX_FILE, &buf, &len);
	if (rc == -ENOENT && !must_exist)
		return 0;
	if (rc == -EFBIG)
		return reg_errf(err, errlen, rc, "%s: larger than %u bytes", path, CFG_MAX_FILE);
	if (rc)
		return reg_errf(err, errlen, rc, "%s: %s", path, strerror(-rc));
	rc = fetchd_config_parse(buf, len, c, msg, sizeof(msg));
	free(buf);
	if (rc)
		return reg_errf(err, errlen, rc, "%s: %s", path, msg);
	return 0;
}
