/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * overlaybd-fetchd logging: "fetchd: <LEVEL>: msg" lines on stderr (the
 * journal under systemd). Levels are logConfig.logLevel's (config.h).
 * WARN and above are rate limited per message (format string), like DMERR_LIMIT:
 * a miss storm against a dead registry must not flood the journal.
 * Never pass credentials, tokens or Authorization values; URLs go through
 * url_redact() (registry/url.h) first: it drops the user info and the
 * query, where presigned URLs keep their signatures.
 */
#ifndef OBD_FETCHD_LOG_H
#define OBD_FETCHD_LOG_H

#include <stddef.h>

#include "config.h"
#include "url.h"

void log_set_level(int level);
int log_get_level(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print how many lines the rate limiter swallowed (at exit). */
void log_flush_suppressed(void);

/* debug lines cost nothing when off: their arguments are not even evaluated */
#define pr_debug(...)							\
	do {								\
		if (log_get_level() <= LOG_LVL_DEBUG)			\
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);		\
	} while (0)
#define pr_info(...)	log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define pr_warn(...)	log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define pr_err(...)	log_msg(LOG_LVL_ERROR, __VA_ARGS__)

#endif
