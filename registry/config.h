/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The service config, /etc/overlaybd/overlaybd.json (spec 5.6): the
 * reference's file and keys, read by overlaybd-fetchd and by obd (attach
 * needs cacheConfig.cacheDir, push the credentials and certificates).
 * Unknown keys are ignored; a key of the wrong type or value is an error
 * naming the key ("cacheConfig.refillSize: expected a power of two ...").
 */
#ifndef OBD_FETCHD_CONFIG_H
#define OBD_FETCHD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>

#define FETCHD_DEFAULT_CONFIG	"/etc/overlaybd/overlaybd.json"
#define FETCHD_DEFAULT_CACHEDIR	"/opt/overlaybd/registry_cache"
#define FETCHD_DEFAULT_CRED	"/opt/overlaybd/cred.json"
#define FETCHD_DEFAULT_GZDIR	"/opt/overlaybd/gzip_cache"

#ifndef OBD_VERSION	/* -DOBD_VERSION from the Makefile: scripts/version.sh */
#error "OBD_VERSION is not defined"
#endif
#define FETCHD_USER_AGENT	"overlaybd-fetchd/" OBD_VERSION
#define FETCHD_REFILL_MIN	4096u		/* cacheConfig.refillSize bounds */
#define FETCHD_REFILL_MAX	(64u << 20)
#define FETCHD_CACHE_GB_MAX	1048576u	/* cacheConfig.cacheSizeGB: 1 PiB */
#define FETCHD_JSON_MAX		(16u << 20)	/* fetchd_json_parse() input bound */

/* download{} (spec 5.4), in overlaybd.json and per image in config.v1.json */
struct fetchd_download {
	bool enable;			/* enable, default false */
	unsigned int delay_s;		/* delay: s before starting, default 300 */
	unsigned int delay_extra_s;	/* delayExtra: plus rand() % this, default 30 */
	unsigned int max_mbps;		/* maxMBps: MiB/s, 0 = unthrottled, default 100 */
	unsigned int try_cnt;		/* tryCnt: attempts per blob, default 5 */
	unsigned int block_size;	/* blockSize: bytes per request, 4 KiB multiple, default 262144 */
};

#define FETCHD_DL_BLOCK_MIN	4096u
#define FETCHD_DL_BLOCK_MAX	(64u << 20)

enum fetchd_cred_mode {		/* credentialConfig.mode */
	CRED_MODE_FILE = 0,
	CRED_MODE_HTTP,
	CRED_MODE_HTTPS,
	CRED_MODE_UDS,
};

enum fetchd_log_level {		/* logConfig.logLevel: 0 debug .. 4 fatal, as the reference */
	LOG_LVL_DEBUG = 0,
	LOG_LVL_INFO = 1,
	LOG_LVL_WARN = 2,
	LOG_LVL_ERROR = 3,
	LOG_LVL_FATAL = 4,
};

struct json_object;

struct fetchd_config {
	/* cacheConfig */
	char cache_dir[PATH_MAX];	/* cacheDir */
	/*
	 * gzipCacheConfig: the daemon's gunzip entries (decompressed gzip
	 * layers, fetchd/gunzip.c): enable (default false), cacheDir
	 * (default /opt/overlaybd/gzip_cache), cacheSizeGB (default 4),
	 * refillSize (bytes, a positive multiple of 4096, default 1 MiB)
	 */
	bool gz_enable;
	char gz_dir[PATH_MAX];
	double gz_size_gb;
	uint64_t gz_refill_size;
	uint64_t refill_size;		/* refillSize: bytes, power of two, >= 4 KiB, <= 64 MiB;
					 * default 262144 */
	double cache_size_gb;		/* cacheSizeGB, default 4; fractions allowed */
	/*
	 * ours, for eviction (fetchd/evict.c):
	 *   minFreeGB        evict while the cache's file system has less free (default 1; 0 off)
	 *   evictIntervalMs  how often usage is checked (default 10000, the reference's 10 s)
	 *   evictGraceSec    an entry used this recently is never evicted (default 60: obd
	 *                    attach makes entries a moment before the table loads)
	 */
	double min_free_gb;
	unsigned int evict_interval_ms;
	unsigned int evict_grace_s;
	/* credentialConfig, or legacy credentialFilePath */
	enum fetchd_cred_mode cred_mode;	/* mode, default file */
	char cred_path[PATH_MAX];	/* file: cred.json ("" = anonymous only);
					 * http/https: server URL; uds: socket path */
	unsigned int cred_timeout_s;	/* timeout, default 1 */
	char cred_client_cert[PATH_MAX];	/* client_cert_path (https) */
	char cred_client_key[PATH_MAX];	/* client_key_path (https) */
	char cred_server_ca[PATH_MAX];	/* server_ca_path (https) */
	/* download: background download defaults (an image's config.v1.json may override) */
	struct fetchd_download download;
	/* exporterConfig: Prometheus metrics (fetchd/exporter.c) */
	bool exporter_enable;		/* enable, default false */
	unsigned int exporter_port;	/* port, default 9863 */
	char exporter_uri[256];		/* uriPrefix, default "/metrics" */
	unsigned int exporter_update_ms;	/* updateInterval, ms, default 60000 */
	char exporter_addr[64];		/* address: ours, default "127.0.0.1" */
	/* p2pConfig: data GETs go to <address>/<actual url>, registry on failure */
	bool p2p_enable;
	char p2p_address[1024];
	/* prefetchConfig */
	unsigned int prefetch_concurrency;	/* concurrency, default 16 */
	/* certConfig: TLS client certificate; caFile is ours (private registry CA) */
	char cert_file[PATH_MAX];	/* certFile */
	char key_file[PATH_MAX];	/* keyFile */
	char ca_file[PATH_MAX];		/* caFile: PEM bundle used instead of the system's */
	/* logConfig */
	int log_level;			/* logLevel, default LOG_LVL_INFO */
	char user_agent[256];		/* userAgent, default "overlaybd-fetchd/<version>" */
	/*
	 * fetchConfig: ours.
	 *   requestTimeout  s, a miss's whole deadline, retries included (default 30)
	 *   connectTimeout  s (default 10)
	 *   maxRetries      attempts after the first (default 8)
	 *   maxConcurrent   HTTP transfers at once (default 32)
	 *   syncIntervalMs  durability batch: fdatasync + bitmap every this many ms (default 100)
	 *   readaheadMB     largest sequential readahead window, MiB; 0 turns it off (default 32)
	 *   isolatedRefillKB  a miss that continues no stream is widened to this (KiB,
	 *                   a power of two 4..65536; default 64), not to refillSize;
	 *                   0: refillSize for every miss, as the reference does
	 *   proxy           libcurl's CURLOPT_PROXY for registry GETs ("" = none, default)
	 *   noProxy         libcurl's CURLOPT_NOPROXY
	 */
	unsigned int request_timeout_s;
	unsigned int connect_timeout_s;
	unsigned int max_retries;
	unsigned int max_concurrent;
	unsigned int sync_interval_ms;
	unsigned int readahead_mb;
	unsigned int isolated_refill_kb;
	char proxy[1024];
	char no_proxy[1024];
};

void fetchd_config_defaults(struct fetchd_config *c);

/* printf into err (errlen bytes, NULL allowed) and return code: the one
 * error helper of the registry files (config, cred, auth, url, cache_entry). */
int reg_errf(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Parse a config held in memory (len bytes, not necessarily NUL-terminated)
 * over the defaults already in c. 0, or -EINVAL with err holding
 * "<key>: <what is wrong>" (no file name: the caller adds it).
 */
int fetchd_config_parse(const char *json, size_t len, struct fetchd_config *c,
			char *err, size_t errlen);

/*
 * A download{} object (o) over the defaults in *dl; prefix names it in
 * errors ("download", "<config.v1.json>: download"). 0 or -EINVAL. Shared
 * with obd attach, which reads an image's own download{}.
 */
int fetchd_download_parse(struct json_object *o, const char *prefix, struct fetchd_download *dl,
			  char *err, size_t errlen);

/*
 * Defaults, then the file at path. must_exist false: a missing file means
 * the defaults (the default path need not exist). Errors name the file:
 * "<path>: <key>: <what>". 0 or -errno.
 */
int fetchd_config_load(const char *path, bool must_exist, struct fetchd_config *c,
		       char *err, size_t errlen);

/*
 * Helpers shared with cred.c and auth.c.
 *
 * fetchd_json_parse: strict JSON text of len bytes (not NUL-terminated, at
 * most FETCHD_JSON_MAX) into *out, which the caller json_object_put()s.
 * 0, or -EINVAL with err "invalid JSON at offset N: <why>" (never quoting
 * the input: it may be cred.json). -ENOMEM.
 */
int fetchd_json_parse(const char *text, size_t len, struct json_object **out, char *err,
		      size_t errlen);

/*
 * The whole file at path into a malloc'd, NUL-terminated *buf of *len
 * bytes. 0, -EFBIG when larger than max, -EISDIR, or -errno of open/read.
 */
int fetchd_read_file(const char *path, size_t max, char **buf, size_t *len);

#endif
