// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * The overlaybd table line split into its words (dm_table.h).
 */
#include <ctype.h>
#include <stdlib.h>

#include "dm_table.h"

static bool is_odigit(char c)
{
	return c >= '0' && c <= '7';
}

/* An escape \ooo of the target: three octal digits, not \000. */
static bool is_escape(const char *p)
{
	return p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && is_odigit(p[2]) && is_odigit(p[3]) &&
	       (p[1] != '0' || p[2] != '0' || p[3] != '0');
}

/*
 * The next word at *s, cut off in place and decoded as the target decodes
 * its path arguments (\ooo is that byte, any other backslash itself);
 * NULL when only white space is left.
 */
static char *next_word(char **s)
{
	char *w = *s, *out;

	while (isspace((unsigned char)*w))
		w++;
	if (!*w)
		return NULL;
	*s = w;
	out = w;
	while (**s && !isspace((unsigned char)**s)) {
		if (is_escape(*s)) {
			*out++ = (char)(((*s)[1] - '0') << 6 | ((*s)[2] - '0') << 3 | ((*s)[3] - '0'));
			*s += 4;
		} else {
			*out++ = *(*s)++;
		}
	}
	if (**s)
		(*s)++;
	*out = '\0';
	return w;
}

size_t obd_table_word(char *p, const char *w)
{
	size_t n = 0;

	p[n++] = ' ';
	for (; *w; w++) {
		unsigned char c = (unsigned char)*w;

		/* 0xa0: white space to the kernel's isspace (Latin-1), which dm_split_args uses */
		if (c == '\\' || isspace(c) || c == 0xa0) {
			p[n++] = '\\';
			p[n++] = (char)('0' + (c >> 6));
			p[n++] = (char)('0' + ((c >> 3) & 7));
			p[n++] = (char)('0' + (c & 7));
		} else {
			p[n++] = *w;
		}
	}
	p[n] = '\0';
	return n;
}

/* A count word: a whole number no more than max. */
static int count_of(const char *w, unsigned long max, unsigned int *v)
{
	unsigned long n;
	char *end;

	if (!w)
		return -EINVAL;
	n = strtoul(w, &end, 10);
	if (*end || n > max)
		return -EINVAL;
	*v = (unsigned int)n;
	return 0;
}

int obd_table_parse(char *line, struct obd_table *t)
{
	char *s = line, *w;
	unsigned int n, i;

	memset(t, 0, sizeof(*t));
	if (count_of(next_word(&s), OBD_MAX_LAYERS, &n))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		t->layers[i] = next_word(&s);
		if (t->layers[i] && !strcmp(t->layers[i], "turbo")) {
			t->layers[i] = next_word(&s);
			t->targets[i] = next_word(&s);
			if (!t->targets[i])
				t->layers[i] = NULL;
		}
		if (!t->layers[i]) {
			t->targets[i] = NULL;
			return -EINVAL;
		}
		t->n = i + 1;
	}
	w = next_word(&s);
	if (!w)		/* no lowers and no options: not even an upper */
		return t->n ? 0 : -EINVAL;
	if (count_of(w, OBD_TABLE_MAX_OPTS, &n))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		t->opts[i] = next_word(&s);
		if (!t->opts[i])
			goto bad_opts;
	}
	if (next_word(&s))
		goto bad_opts;
	t->nopt = n;
	return 0;
bad_opts:
	memset(t->opts, 0, sizeof(t->opts));
	return -EINVAL;
}

size_t obd_table_layer_words(char *p, const struct obd_table *t, unsigned int i)
{
	size_t n = 0;

	if (t->targets[i])
		n += (size_t)sprintf(p, " turbo");
	n += obd_table_word(p + n, t->layers[i]);
	if (t->targets[i])
		n += obd_table_word(p + n, t->targets[i]);
	return n;
}

size_t obd_table_layer_room(const struct obd_table *t, unsigned int i)
{
	return 4 * strlen(t->layers[i]) + 2 + (t->targets[i] ? 4 * strlen(t->targets[i]) + 8 : 0);
}
