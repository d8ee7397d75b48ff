/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef OBD_CLI_DM_H
#define OBD_CLI_DM_H

#include <stdbool.h>

#define OBD_DM_TARGET	"overlaybd"

/* Log capture, /dev/mapper/control check, udev sync off without udevd. */
int cli_dm_init(void);
const char *cli_dm_last_error(void);
bool cli_dm_target_loaded(const char *name);
bool cli_dm_exists(const char *name);

#endif
