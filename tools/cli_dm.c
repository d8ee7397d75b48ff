// SPDX-License-Identifier: GPL-2.0-only
/*
 * libdevmapper glue for attach, detach, list and snapshot: log capture,
 * udev handling, the "is the module loaded" diagnosis, table reads and
 * the suspend / reload / resume of a live table swap.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libdevmapper.h>

#include "cli.h"
#include "cli_dm.h"

static char dm_last_msg[512];

/* libdevmapper prints to stderr on its own; keep its last error instead. */
static void dm_log_capture(int level, const char *file, int line, int dm_errno,
			   const char *fmt, ...)
{
	va_list ap;

	if (level > 3)	/* _LOG_ERR */
		return;
	va_start(ap, fmt);
	vsnprintf(dm_last_msg, sizeof(dm_last_msg), fmt, ap);
	va_end(ap);
}

const char *cli_dm_last_error(void)
{
	return dm_last_msg[0] ? dm_last_msg : "device-mapper call failed";
}

static bool misc_has_dm(void)
{
	FILE *f = fopen("/proc/misc", "re");
	char line[128];
	bool r = false;

	if (!f)
		return false;
	while (!r && fgets(line, sizeof(line), f))
		r = strstr(line, " device-mapper") != NULL;
	fclose(f);
	return r;
}

int cli_dm_init(void)
{
	dm_log_with_errno_init(dm_log_capture);
	/* libdevmapper makes a missing control node itself if the driver is there */
	if (access("/dev/mapper/control", F_OK) && !misc_has_dm()) {
		cli_err("/dev/mapper/control", "%s (is device-mapper available? modprobe dm-mod)",
			strerror(ENOENT));
		return -ENODEV;
	}
	/* Without a udev daemon, libdevmapper must make the /dev/mapper node. */
	if (access("/run/udev/control", F_OK))
		dm_udev_set_sync_support(0);
	return 0;
}

bool cli_dm_target_loaded(const char *name)
{
	struct dm_task *dmt = dm_task_create(DM_DEVICE_LIST_VERSIONS);
	struct dm_versions *v, *last;
	bool found = false;

	if (!dmt)
		return false;
	if (!dm_task_run(dmt))
		goto out;
	v = dm_task_get_versions(dmt);
	do {
		last = v;
		if (!strcmp(v->name, name))
			found = true;
		v = (struct dm_versions *)((char *)v + v->next);
	} while (last != v);
out:
	dm_task_destroy(dmt);
	return found;
}

bool cli_dm_name_ok(const char *name)
{
	return *name && strlen(name) < 128 && !strchr(name, '/');
}

bool cli_dm_exists(const char *name)
{
	struct dm_task *dmt = dm_task_create(DM_DEVICE_INFO);
	struct dm_info info;
	bool r = false;

	if (!dmt)
		return false;
	if (dm_task_set_name(dmt, name) && dm_task_run(dmt) && dm_task_get_info(dmt, &info))
		r = info.exists;
	dm_task_destroy(dmt);
	return r;
}

int cli_dm_table(const char *name, uint64_t *len, char **params, bool *read_only)
{
	struct dm_task *dmt = dm_task_create(DM_DEVICE_TABLE);
	char *type = NULL, *p = NULL;
	uint64_t start = 0, length = 0;
	struct dm_info info;
	void *next;
	int rc = -ENODEV;

	if (!dmt)
		return -ENOMEM;
	if (dm_task_set_name(dmt, name) && dm_task_run(dmt) && dm_task_get_info(dmt, &info) &&
	    info.exists) {
		next = dm_get_next_target(dmt, NULL, &start, &length, &type, &p);
		rc = -EINVAL;
		if (!next && !start && type && !strcmp(type, OBD_DM_TARGET) && p) {
			*params = strdup(p);
			*len = length;
			if (read_only)
				*read_only = info.read_only;
			rc = *params ? 0 : -ENOMEM;
		}
	}
	dm_task_destroy(dmt);
	return rc;
}

/* How dm_simple() deals with udev and the /dev/mapper node. */
enum {
	DM_SIMPLE_UDEV = 1 << 0,	/* with udevd running, wait for it (a cookie) */
	DM_SIMPLE_NODES = 1 << 1,	/* no cookie: make or remove the node now, not at exit */
};

/*
 * One DM_DEVICE_* call on name. A cookie that was made is waited on even
 * when the call (or taking the cookie) failed: the wait also releases it.
 */
static int dm_simple(int type, const char *name, unsigned int flags)
{
	struct dm_task *dmt = dm_task_create(type);
	uint32_t cookie = 0;
	int rc = -EIO;

	if (!dmt)
		return -ENOMEM;
	if (dm_task_set_name(dmt, name) &&
	    (!(flags & DM_SIMPLE_UDEV) || !dm_udev_get_sync_support() ||
	     dm_task_set_cookie(dmt, &cookie, 0)) &&
	    dm_task_run(dmt))
		rc = 0;
	if (cookie)
		dm_udev_wait(cookie);
	else if (flags & DM_SIMPLE_NODES)
		dm_task_update_nodes();
	dm_task_destroy(dmt);
	return rc;
}

int cli_dm_suspend(const char *name)
{
	return dm_simple(DM_DEVICE_SUSPEND, name, 0);
}

int cli_dm_resume(const char *name)
{
	return dm_simple(DM_DEVICE_RESUME, name, DM_SIMPLE_UDEV);
}

int cli_dm_load(const char *name, uint64_t len, const char *params, bool read_only)
{
	struct dm_task *dmt = dm_task_create(DM_DEVICE_RELOAD);
	int rc = -EIO;

	if (!dmt)
		return -ENOMEM;
	if (dm_task_set_name(dmt, name) && (!read_only || dm_task_set_ro(dmt)) &&
	    dm_task_add_target(dmt, 0, len, OBD_DM_TARGET, params) && dm_task_run(dmt))
		rc = 0;
	dm_task_destroy(dmt);
	return rc;
}

int cli_dm_create(const char *name, uint64_t len, const char *params, bool read_only)
{
	struct dm_task *dmt = dm_task_create(DM_DEVICE_CREATE);
	uint32_t cookie = 0;
	int rc = -EIO;

	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_name(dmt, name) || (read_only && !dm_task_set_ro(dmt)) ||
	    !dm_task_add_target(dmt, 0, len, OBD_DM_TARGET, params) ||
	    !dm_task_set_add_node(dmt, DM_ADD_NODE_ON_CREATE))
		goto out;
	/* with udevd running, wait for it to make the node (a cookie) */
	if (dm_udev_get_sync_support() && !dm_task_set_cookie(dmt, &cookie, 0))
		goto out;
	if (dm_task_run(dmt))
		rc = 0;
	if (cookie)
		dm_udev_wait(cookie);
	else
		dm_task_update_nodes();	/* no udev: make the node now, not at exit */
out:
	dm_task_destroy(dmt);
	return rc;
}

int cli_dm_remove(const char *name)
{
	return dm_simple(DM_DEVICE_REMOVE, name, DM_SIMPLE_UDEV | DM_SIMPLE_NODES);
}
