// SPDX-License-Identifier: GPL-2.0-only
/*
 * HTTP response header values (http_hdr.h). Retry-After is parsed by hand
 * rather than with strptime(): month and day names must not depend on the
 * locale, and a value from the network gets no more than it needs.
 */
#include <stdbool.h>
#include <string.h>

#include "http_hdr.h"

static bool digits(const char *p, size_t n, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	if (!n)
		return false;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		if (v <= HTTP_RETRY_AFTER_MAX_S)	/* past it the value only matters as "large" */
			v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return true;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian, m 1..12). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int64_t y, int m)
{
	static const int dm[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return dm[m - 1] + (m == 2 && leap);
}

/* "Www, DD Mmm YYYY HH:MM:SS GMT", exactly 29 bytes: Unix time, or -1. */
static int64_t imf_fixdate(const char *p, size_t n)
{
	static const char *const wdays = "Mon,Tue,Wed,Thu,Fri,Sat,Sun,";
	static const char *const months = "JanFebMarAprMayJunJulAugSepOctNovDec";
	int64_t day, year, hh, mm, ss;
	const char *wd, *mon;
	int m;

	if (n != 29 || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' ||
	    p[16] != ' ' || p[19] != ':' || p[22] != ':' || memcmp(p + 25, " GMT", 4))
		return -1;
	wd = memmem(wdays, strlen(wdays), p, 4);
	if (!wd || (wd - wdays) % 4)
		return -1;
	mon = memmem(months, strlen(months), p + 8, 3);
	if (!mon || (mon - months) % 3)
		return -1;
	m = (int)((mon - months) / 3) + 1;
	if (!digits(p + 5, 2, &day) || !digits(p + 12, 4, &year) || !digits(p + 17, 2, &hh) ||
	    !digits(p + 20, 2, &mm) || !digits(p + 23, 2, &ss))
		return -1;
	/* 60: a leap second */
	if (day < 1 || day > days_in_month(year, m) || hh > 23 || mm > 59 || ss > 60)
		return -1;
	return days_from_civil(year, m, day) * 86400 + hh * 3600 + mm * 60 + ss;
}

int64_t http_retry_after_ms(const char *v, size_t n, int64_t now_s)
{
	int64_t s, t;

	while (n && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
		n--;
	if (digits(v, n, &s))
		return (s < HTTP_RETRY_AFTER_MAX_S ? s : HTTP_RETRY_AFTER_MAX_S) * 1000;
	t = imf_fixdate(v, n);
	if (t < 0)
		return -1;
	if (t <= now_s)
		return 0;
	s = t - now_s;
	return (s < HTTP_RETRY_AFTER_MAX_S ? s : HTTP_RETRY_AFTER_MAX_S) * 1000;
}
