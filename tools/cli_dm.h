/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef OBD_CLI_DM_H
#define OBD_CLI_DM_H

#include <stdbool.h>
#include <stdint.h>

#define OBD_DM_TARGET	"overlaybd"

/* Log capture, /dev/mapper/control check, udev sync off without udevd. */
int cli_dm_init(void);
const char *cli_dm_last_error(void);
bool cli_dm_target_loaded(const char *name);
bool cli_dm_exists(const char *name);
/* A name obd gives a device: not empty, shorter than 128, no '/'. */
bool cli_dm_name_ok(const char *name);

/*
 * The table of name, one overlaybd target from sector 0: its length in
 * sectors and its parameters (malloc'd), and whether the device is
 * read-only. -ENODEV: no such device; -EINVAL: not one overlaybd target.
 */
int cli_dm_table(const char *name, uint64_t *len, char **params, bool *read_only);
/* Suspend (in-flight I/O completes, the target flushes), load an inactive
 * table, resume (the loaded table, if any, goes live). 0 or -errno;
 * cli_dm_last_error() says why. */
int cli_dm_suspend(const char *name);
int cli_dm_load(const char *name, uint64_t len, const char *params, bool read_only);
int cli_dm_resume(const char *name);
/* Create name with one overlaybd target of len sectors (node made); remove it. */
int cli_dm_create(const char *name, uint64_t len, const char *params, bool read_only);
int cli_dm_remove(const char *name);

#endif
