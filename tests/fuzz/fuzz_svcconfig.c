// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: the service config parser, fetchd_config_parse()
 * (registry/config.c, overlaybd.json). Checks that an accepted config obeys
 * every bound the daemon relies on, and that a rejected one leaves the
 * struct exactly as it was and says why.
 */
#include <math.h>
#include <string.h>
#include "fuzz_common.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TERMINATED(f) (memchr((f), 0, sizeof(f)) != NULL)

static void check_config(const struct fetchd_config *c)
{
	FUZZ_CHECK(TERMINATED(c->cache_dir) && TERMINATED(c->cred_path) &&
		   TERMINATED(c->cert_file) && TERMINATED(c->key_file) &&
		   TERMINATED(c->ca_file) && TERMINATED(c->user_agent), "a field not NUL-terminated");
	FUZZ_CHECK(c->cache_dir[0], "empty cacheDir accepted");
	FUZZ_CHECK(c->refill_size >= FETCHD_REFILL_MIN && c->refill_size <= FETCHD_REFILL_MAX &&
		   !(c->refill_size & (c->refill_size - 1)), "refillSize %llu",
		   (unsigned long long)c->refill_size);
	FUZZ_CHECK(isfinite(c->cache_size_gb) && c->cache_size_gb > 0 &&
		   c->cache_size_gb <= FETCHD_CACHE_GB_MAX, "cacheSizeGB %g", c->cache_size_gb);
	FUZZ_CHECK(c->log_level >= LOG_LVL_DEBUG && c->log_level <= LOG_LVL_FATAL, "logLevel %d",
		   c->log_level);
	FUZZ_CHECK(c->user_agent[0], "empty userAgent accepted");
	for (const char *p = c->user_agent; *p; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte in userAgent");
	FUZZ_CHECK(c->request_timeout_s >= 1 && c->request_timeout_s <= 3600, "requestTimeout %u",
		   c->request_timeout_s);
	FUZZ_CHECK(c->connect_timeout_s >= 1 && c->connect_timeout_s <= 600, "connectTimeout %u",
		   c->connect_timeout_s);
	FUZZ_CHECK(c->max_retries <= 100, "maxRetries %u", c->max_retries);
	FUZZ_CHECK(c->max_concurrent >= 1 && c->max_concurrent <= 1024, "maxConcurrent %u",
		   c->max_concurrent);
	FUZZ_CHECK(c->sync_interval_ms >= 1 && c->sync_interval_ms <= 60000, "syncIntervalMs %u",
		   c->sync_interval_ms);
	FUZZ_CHECK(!c->key_file[0] || c->cert_file[0], "keyFile without certFile accepted");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fetchd_config c, before;
	char err[256];
	int rc;

	if (size > FUZZ_MAX_LEN)
		return 0;
	fetchd_config_defaults(&c);
	check_config(&c);
	before = c;
	memset(err, 0x55, sizeof(err));
	rc = fetchd_config_parse((const char *)data, size, &c, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM, "rc %d", rc);
	if (rc) {
		FUZZ_CHECK(memchr(err, 0, sizeof(err)) && err[0], "error %d without a message", rc);
		FUZZ_CHECK(!memcmp(&c, &before, sizeof(c)), "a failed parse changed the config");
		return 0;
	}
	check_config(&c);
	/* parsing the same text again over the result gives the same result */
	before = c;
	rc = fetchd_config_parse((const char *)data, size, &c, err, sizeof(err));
	FUZZ_CHECK(rc == 0 && !memcmp(&c, &before, sizeof(c)), "second parse differs (%d)", rc);
	return 0;
}
