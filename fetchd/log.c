// SPDX-License-Identifier: GPL-2.0-only
/*
 * Leveled, rate-limited logging to stderr.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

static int log_level = LOG_LVL_INFO;

static const char *const level_names[] = { "DEBUG", "INFO", "WARN", "ERROR", "FATAL" };

/*
 * Rate limit: at most LIMIT_BURST lines of one message per LIMIT_WINDOW_S,
 * a message being its format string (not the rendered line: a storm of
 * failures differs in offsets and ids, and each would be new), tracked for
 * the LIMIT_SLOTS most recent distinct messages (a small table, not a
 * hash set: bounded memory, and a storm is one or two messages).
 */
#define LIMIT_SLOTS	32
#define LIMIT_BURST	5
#define LIMIT_WINDOW_S	10

struct limit_slot {
	uint64_t hash;
	time_t start;
	unsigned int count;
	unsigned long suppressed;
};

static struct limit_slot slots[LIMIT_SLOTS];
static unsigned int slot_next;

void log_set_level(int level)
{
	if (level < LOG_LVL_DEBUG)
		level = LOG_LVL_DEBUG;
	if (level > LOG_LVL_FATAL)
		level = LOG_LVL_FATAL;
	log_level = level;
}

int log_get_level(void)
{
	return log_level;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 0x100000001b3ull;
	return h;
}

static time_t mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void emit(int level, const char *line)
{
	fprintf(stderr, "fetchd: %s: %s\n", level_names[level], line);
}

/* true: print it. A window that ends reports what it swallowed. */
static bool limit_allow(int level, const char *fmt)
{
	uint64_t h = fnv1a(fmt);
	time_t now = mono_s();
	struct limit_slot *s = NULL;
	unsigned int i;
	char note[96];

	for (i = 0; i < LIMIT_SLOTS; i++)
		if (slots[i].count && slots[i].hash == h) {
			s = &slots[i];
			break;
		}
	if (!s) {
		s = &slots[slot_next++ % LIMIT_SLOTS];
		if (s->suppressed) {
			snprintf(note, sizeof(note), "(%lu lines of a repeated message suppressed)",
				 s->suppressed);
			emit(level, note);
		}
		*s = (struct limit_slot){ .hash = h, .start = now };
	}
	if (now - s->start >= LIMIT_WINDOW_S) {
		if (s->suppressed) {
			snprintf(note, sizeof(note), "(%lu more lines of that message suppressed)",
				 s->suppressed);
			emit(level, note);
		}
		s->start = now;
		s->count = 0;
		s->suppressed = 0;
	}
	if (s->count++ < LIMIT_BURST)
		return true;
	s->suppressed++;
	return false;
}

void log_msg(int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	char *p;

	if (level < log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* one message, one line: the journal and the tests parse lines */
	for (p = line; *p; p++)
		if (*p == '\n' || *p == '\r' || ((unsigned char)*p < 0x20 && *p != '\t'))
			*p = '?';
	if (level >= LOG_LVL_WARN && !limit_allow(level, fmt))
		return;
	emit(level, line);
}

void log_flush_suppressed(void)
{
	unsigned long total = 0;
	unsigned int i;
	char note[96];

	for (i = 0; i < LIMIT_SLOTS; i++) {
		total += slots[i].suppressed;
		slots[i].suppressed = 0;
	}
	if (total) {
		snprintf(note, sizeof(note), "(%lu repeated lines suppressed)", total);
		emit(LOG_LVL_WARN, note);
	}
}
