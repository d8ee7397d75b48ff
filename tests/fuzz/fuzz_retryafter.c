// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: Retry-After values, http_retry_after_ms()
 * (registry/http_hdr.c). The value arrives from the network and sets how
 * long a fetch waits: the answer must be -1 or a delay in [0, the cap],
 * the same for the same bytes, and a date must agree with delay-seconds
 * where both say the same moment.
 */
#include <string.h>
#include "fuzz_common.h"
#include "http_hdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000LL	/* Tue, 14 Nov 2023 22:13:20 GMT */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *v = (const char *)data;
	int64_t ms, again, later;

	if (size > 4096)
		return 0;
	ms = http_retry_after_ms(v, size, NOW);
	FUZZ_CHECK(ms == -1 || (ms >= 0 && ms <= HTTP_RETRY_AFTER_MAX_S * 1000LL),
		   "delay %lld out of range", (long long)ms);
	FUZZ_CHECK(ms == -1 || ms % 1000 == 0, "delay %lld not whole seconds", (long long)ms);
	again = http_retry_after_ms(v, size, NOW);
	FUZZ_CHECK(again == ms, "same value, different answers: %lld, %lld", (long long)ms,
		   (long long)again);
	/* a date's delay shrinks as time passes; delay-seconds do not move */
	later = http_retry_after_ms(v, size, NOW + 10);
	FUZZ_CHECK((ms == -1) == (later == -1), "valid at one time only");
	FUZZ_CHECK(ms == -1 || later <= ms, "delay grew with time: %lld -> %lld", (long long)ms,
		   (long long)later);
	return 0;
}
