// SPDX-License-Identifier: GPL-2.0-only
/*
 * overlaybd-fetchd: answers the cache misses dm-overlaybd reports on
 * /dev/overlaybd by fetching byte ranges from the registry (README.md).
 *
 * Exit codes: 0 stopped by SIGTERM/SIGINT (or the channel closed), 1 a
 * startup error (config, device, ring, curl), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetchd.h"

struct fetchd *fd_g;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: overlaybd-fetchd [--service-config FILE] [--device PATH] [--log-level N]\n"
		"                        [--version] [--help]\n"
		"\n"
		"  --service-config FILE  service config (default %s; may be absent)\n"
		"  --device PATH          miss channel (default /dev/%s); a Unix socket\n"
		"                         is connected to as SOCK_SEQPACKET (test stand-in)\n"
		"  --log-level N          0 debug, 1 info, 2 warn, 3 error, 4 fatal\n"
		"                         (overrides logConfig.logLevel)\n",
		FETCHD_DEFAULT_CONFIG, OBD_DEV_NAME);
}

static void log_summary(const struct fetchd_stats *s)
{
	pr_info("summary: reads %llu (present %llu, refetch %llu), done ok %llu err %llu, "
		"handed back %llu, readahead fetches %llu, "
		"fetches %llu (merged %llu), http %llu, tokens %llu (shared %llu), redirects %llu, retries %llu, "
		"fetched %llu bytes, written %llu bytes, errors: notfound %llu auth %llu http %llu "
		"net %llu timeout %llu proto %llu io %llu, fsyncs %llu, verify ok %llu bad %llu, "
		"bad messages %llu",
		(unsigned long long)s->reads, (unsigned long long)s->reads_present,
		(unsigned long long)s->reads_refetch, (unsigned long long)s->dones_ok,
		(unsigned long long)s->dones_err, (unsigned long long)s->handed_back,
		(unsigned long long)s->ahead_fetches,
		(unsigned long long)s->fetches,
		(unsigned long long)s->fetch_merged, (unsigned long long)s->http_requests,
		(unsigned long long)s->token_requests, (unsigned long long)s->token_shared,
		(unsigned long long)s->redirects,
		(unsigned long long)s->retries, (unsigned long long)s->bytes_fetched,
		(unsigned long long)s->bytes_written, (unsigned long long)s->err_notfound,
		(unsigned long long)s->err_auth, (unsigned long long)s->err_http,
		(unsigned long long)s->err_net, (unsigned long long)s->err_timeout,
		(unsigned long long)s->err_proto, (unsigned long long)s->err_io,
		(unsigned long long)s->fsyncs, (unsigned long long)s->verify_ok,
		(unsigned long long)s->verify_bad, (unsigned long long)s->msgs_bad);
}

/* The node-side counters (prefetch, background download, eviction, P2P). */
static void log_summary_node(const struct fetchd_stats *s)
{
	pr_info("summary: prefetch reads %llu (promoted by a miss %llu), haves %llu, "
		"download %llu bytes, blobs verified %llu, bad attempts %llu, given up %llu, "
		"evictions %llu (%llu bytes, %llu runs), p2p requests %llu (fallbacks %llu)",
		(unsigned long long)s->reads_prefetch, (unsigned long long)s->fetch_promoted,
		(unsigned long long)s->haves, (unsigned long long)s->dl_bytes,
		(unsigned long long)s->dl_blobs_done, (unsigned long long)s->dl_attempts_bad,
		(unsigned long long)s->dl_blobs_failed, (unsigned long long)s->evictions,
		(unsigned long long)s->evicted_bytes, (unsigned long long)s->evict_runs,
		(unsigned long long)s->p2p_requests, (unsigned long long)s->p2p_fallbacks);
}

static int parse_level(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < LOG_LVL_DEBUG || v > LOG_LVL_FATAL)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "service-config", required_argument, NULL, 'c' },
		{ "device", required_argument, NULL, 'd' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct fetchd d;
	const char *config = NULL;
	int level = -1, c, ret;
	char err[1024];

	d.device = "/dev/" OBD_DEV_NAME;
	while ((c = getopt_long(argc, argv, "c:d:l:Vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'd':
			d.device = optarg;
			break;
		case 'l':
			if (parse_level(optarg, &level)) {
				fprintf(stderr, "overlaybd-fetchd: --log-level: expected 0..4, got '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'V':
			printf("overlaybd-fetchd %s\n", FETCHD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "overlaybd-fetchd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	ret = fetchd_config_load(config ? config : FETCHD_DEFAULT_CONFIG, config != NULL,
				 &d.cfg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "overlaybd-fetchd: %s\n", err);
		return 1;
	}
	log_set_level(level >= 0 ? level : d.cfg.log_level);
	fd_g = &d;

	if (loop_init(&d))
		goto out_fini;
	if (chan_open(&d))
		goto out_fini;
	pr_info("overlaybd-fetchd %s: serving %s (cacheDir %s, refillSize %llu, "
		"maxConcurrent %u, requestTimeout %u s, maxRetries %u, syncIntervalMs %u)",
		FETCHD_VERSION, d.device, d.cfg.cache_dir, (unsigned long long)d.cfg.refill_size,
		d.cfg.max_concurrent, d.cfg.request_timeout_s, d.cfg.max_retries,
		d.cfg.sync_interval_ms);
	ret = loop_run(&d);
	log_summary(&d.st);
	log_summary_node(&d.st);
	loop_fini(&d);
	log_flush_suppressed();
	return ret ? 1 : 0;

out_fini:
	loop_fini(&d);
	return 1;
}
