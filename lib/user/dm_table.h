/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * The words of an overlaybd device-mapper table line, userspace only
 * (obd list, obd snapshot, the cache scan of obd cache and fetchd):
 *
 *   <#layers> <layer>... [<#opt args> <opt arg>...]
 *
 * where a layer is one word (a path, remote:...) or three: turbo <meta
 * layer> <target> (a TurboOCI warp layer).
 *
 * as docs/dm-overlaybd.rst ("Constructor") describes it and the target
 * prints it back (STATUSTYPE_TABLE).
 */
#ifndef OBD_DM_TABLE_H
#define OBD_DM_TABLE_H

#include "obd.h"

/* More optional arguments than the target has (7 at most today). */
#define OBD_TABLE_MAX_OPTS	16

struct obd_table {
	char *layers[OBD_MAX_LAYERS];	/* bottom first; a warp layer's meta layer */
	char *targets[OBD_MAX_LAYERS];	/* a warp layer's target, else NULL */
	unsigned int n;
	char *opts[OBD_TABLE_MAX_OPTS];	/* in order, option values included */
	unsigned int nopt;
};

/*
 * Split line in place into t. Words are separated by white space, as the
 * kernel splits a table (dm_split_args); in each, \ooo (three octal digits,
 * not \000) is that byte, as the target decodes paths and prints white
 * space and backslashes in its table line (\040, \134). 0 when the line is well formed:
 * #layers 0..OBD_MAX_LAYERS and that many layers, then nothing (not
 * after 0 layers) or #opt args (at most OBD_TABLE_MAX_OPTS) and exactly
 * that many words.
 * Otherwise -EINVAL, and t still holds the layers read before the
 * problem (n of them; 0 when #layers is bad) and no options: a caller
 * that only looks at the layers may use them.
 */
int obd_table_parse(char *line, struct obd_table *t);

/* The words of layer i as a table writes them: " <path>" or " turbo <meta> <target>". */
size_t obd_table_layer_words(char *p, const struct obd_table *t, unsigned int i);
/* Room obd_table_layer_words needs. */
size_t obd_table_layer_room(const struct obd_table *t, unsigned int i);

/*
 * Append " <word>" at p, each white space character and backslash written
 * \ooo (what obd_table_parse and the target decode; libdevmapper passes
 * the backslashes through); returns the length appended (NUL-terminated
 * after it). Room needed: 4 * strlen(w) + 2.
 */
size_t obd_table_word(char *p, const char *w);

#endif
