// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd snapshot: a live snapshot of a writable device (spec 2.8, the
 * reference's create_snapshot / restack). The upper's data file is sealed
 * in place (close_seal, spec 2.6c) and becomes the top read-only layer; a
 * fresh upper goes on top. The swap is a dm suspend / reload / resume:
 * suspending waits for the writes in flight and makes the target flush
 * the upper (postsuspend), so the sealed file holds every write completed
 * before, and the writes issued meanwhile wait in dm and land in the new
 * upper after the resume, in their order.
 *
 * Failure leaves the device as it was: the new files are removed, and a
 * seal that the new table could not use is undone (the data file is cut
 * back to where the seal began; the seal only appends, and the index file
 * is untouched) before the old table resumes.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_dm.h"
#include "dm_table.h"
#include "env_user.h"
#include "lsmt_write.h"

/* The table line as obd snapshot rewrites it. */
struct table {
	struct obd_table w;		/* its words, split in place */
	int upper;			/* index of "upper" in w.opts, or -1 */
};

/*
 * Unlike obd list and the cache scan, which use what they can of a line,
 * a snapshot rewrites the whole table: a line that does not parse, or an
 * option it cannot carry over, is refused.
 */
static int table_parse(const char *name, char *params, struct table *t)
{
	const struct obd_table *w = &t->w;
	unsigned int i;

	t->upper = -1;
	if (obd_table_parse(params, &t->w)) {
		cli_err(name, "cannot parse the overlaybd table");
		return -EINVAL;
	}
	/* only options this obd knows how to carry over */
	for (i = 0; i < w->nopt; i++) {
		if (!strcmp(w->opts[i], "direct_io") || !strcmp(w->opts[i], "no_verify")) {
			continue;
		} else if (!strcmp(w->opts[i], "hold_timeout") && i + 1 < w->nopt) {
			i++;
		} else if (!strcmp(w->opts[i], "upper") && i + 2 < w->nopt) {
			t->upper = (int)i;
			i += 2;
		} else {
			cli_err(name, "table option '%s' is not known to this obd; not snapshotting",
				w->opts[i]);
			return -EINVAL;
		}
	}
	return 0;
}

/* The table with sealed as the new top lower and the new upper. */
static char *table_print(const struct table *t, const char *sealed, const char *data,
			 const char *index)
{
	size_t cap = 4 * (strlen(sealed) + strlen(data) + strlen(index)) + 64;
	unsigned int i;
	char *p;
	int len;

	for (i = 0; i < t->w.n; i++)
		cap += obd_table_layer_room(&t->w, i);
	for (i = 0; i < t->w.nopt; i++)
		cap += 4 * strlen(t->w.opts[i]) + 2;
	p = malloc(cap);
	if (!p)
		return NULL;
	len = sprintf(p, "%u", t->w.n + 1);
	for (i = 0; i < t->w.n; i++)
		len += (int)obd_table_layer_words(p + len, &t->w, i);
	len += (int)obd_table_word(p + len, sealed);
	len += sprintf(p + len, " %u", t->w.nopt);
	for (i = 0; i < t->w.nopt; i++) {
		if ((int)i == t->upper) {
			len += sprintf(p + len, " upper");
			len += (int)obd_table_word(p + len, data);
			len += (int)obd_table_word(p + len, index);
			i += 2;
		} else {
			len += (int)obd_table_word(p + len, t->w.opts[i]);
		}
	}
	return p;
}

/* DATA's header: its uuid (the new upper's parent) and kind. */
static int read_upper_header(const char *data, struct obd_lsmt_info *li)
{
	struct obd_file_io f;
	struct obd_err err = { "" };
	int rc = obd_file_io_open(&f, data, &err);

	if (!rc) {
		rc = obd_lsmt_read_header(&f.io, li, &err);
		obd_file_io_close(&f);
	}
	if (rc)
		cli_err_core(data, rc, &err);
	return rc;
}

/* "<stem>.<k>.data" / ".index" beside data, k the first number both are free for. */
static int default_paths(const char *data, char **nd, char **ni)
{
	size_t stem = strlen(data);
	unsigned int k;

	if (stem > 5 && !strcmp(data + stem - 5, ".data"))
		stem -= 5;
	for (k = 1; k < 10000; k++) {
		if (asprintf(nd, "%.*s.%u.data", (int)stem, data, k) < 0)
			return -ENOMEM;
		if (asprintf(ni, "%.*s.%u.index", (int)stem, data, k) < 0) {
			free(*nd);
			return -ENOMEM;
		}
		if (access(*nd, F_OK) && access(*ni, F_OK))
			return 0;
		free(*nd);
		free(*ni);
	}
	cli_err(data, "no free name for the new upper beside it");
	return -EEXIST;
}

static int create_upper(const char *nd, const char *ni, u64 vsize, const char *parent)
{
	struct obd_rw_layer l;
	struct obd_err err = { "" };
	int rc = obd_rw_create(&l, nd, ni, vsize, parent, false, &err);

	if (!rc)
		rc = obd_rw_close(&l, &err);
	if (rc)
		cli_err_core(nd, rc, &err);
	return rc;
}

/* Seal data in place; *sealed_at gets where the seal began (for undoing it). */
static int seal_upper(const char *data, const char *index, off_t *sealed_at)
{
	struct obd_rw_layer l;
	struct obd_err err = { "" };
	struct stat st;
	int rc;

	if (stat(data, &st)) {
		rc = -errno;
		cli_err(data, "%s", strerror(errno));
		return rc;
	}
	*sealed_at = st.st_size;
	rc = obd_rw_open(&l, data, index, &err);
	if (!rc)
		rc = obd_rw_seal(&l, &err);
	if (rc)
		cli_err_core(data, rc, &err);
	return rc;
}

/* Cut data back to before the seal (the old table appends there again). */
static void unseal(const char *data, off_t at)
{
	int fd;

	if (at < 0)	/* the seal never began */
		return;
	fd = open(data, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || ftruncate(fd, at) || fsync(fd))
		cli_err(data, "undoing the seal (truncate to %lld) failed: %s; the old table will not "
			"load again on this file", (long long)at, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static int snapshot(const char *name, const char *data, const char *index, const char *nd,
		    const char *ni, const struct table *t, u64 len, bool ro)
{
	char *params = NULL;
	off_t sealed_at = -1;
	int rc;

	if (cli_dm_suspend(name)) {
		cli_err(name, "suspend failed: %s", cli_dm_last_error());
		return EXIT_FAIL;
	}
	rc = seal_upper(data, index, &sealed_at);
	if (rc) {
		unseal(data, sealed_at);
		goto out_resume;
	}
	params = table_print(t, data, nd, ni);
	if (!params) {
		cli_err(name, "out of memory");
		rc = -ENOMEM;
		unseal(data, sealed_at);
		goto out_resume;
	}
	rc = cli_dm_load(name, len, params, ro);
	if (rc) {
		cli_err(name, "the new table was refused: %s (see dmesg); the device goes on as before",
			cli_dm_last_error());
		unseal(data, sealed_at);
	}
out_resume:
	free(params);
	if (cli_dm_resume(name)) {
		cli_err(name, "resume failed: %s; the device stays suspended (dmsetup resume %s)",
			cli_dm_last_error(), name);
		return EXIT_FAIL;
	}
	return rc ? EXIT_FAIL : EXIT_OK;
}

int cmd_snapshot(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char *params = NULL, *nd = NULL, *ni = NULL, *and = NULL, *ani = NULL, *data, *index;
	struct obd_lsmt_info li;
	struct table t;
	uint64_t len;
	bool ro = false;
	int c, rc, ret = EXIT_FAIL;
	const char *name;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': return cli_help("snapshot");
		default: return cli_usage_err("snapshot", "bad option");
		}
	}
	if (argc - optind != 1 && argc - optind != 3)
		return cli_usage_err("snapshot", "takes NAME [NEW_DATA NEW_INDEX]");
	name = argv[optind];
	if (cli_dm_init())
		return EXIT_FAIL;
	rc = cli_dm_table(name, &len, &params, &ro);
	if (rc) {
		cli_err(name, rc == -ENODEV ? "no such device-mapper device" :
			rc == -EINVAL ? "not a device with one " OBD_DM_TARGET " target" :
			"cannot read its table");
		goto out;
	}
	if (table_parse(name, params, &t))
		goto out;
	if (t.upper < 0) {
		cli_err(name, "has no writable upper layer to snapshot");
		goto out;
	}
	data = t.w.opts[t.upper + 1];
	index = t.w.opts[t.upper + 2];
	if (!strcmp(index, "-")) {
		cli_err(name, "its upper %s is sparse: only an append-mode upper can be sealed "
			"(close_seal); commit a sparse one with the device detached", data);
		goto out;
	}
	if (t.w.n + 1 > OBD_MAX_LAYERS) {
		cli_err(name, "already has %u layers; a snapshot would make more than %d", t.w.n,
			OBD_MAX_LAYERS);
		goto out;
	}
	if (read_upper_header(data, &li))
		goto out;
	if (li.kind != OBD_LSMT_RW_DATA) {
		cli_err(data, "not the data file of an append-mode writable layer");
		goto out;
	}
	if (argc - optind == 3) {
		nd = strdup(argv[optind + 1]);
		ni = strdup(argv[optind + 2]);
		if (!nd || !ni) {
			cli_err(name, "out of memory");
			goto out;
		}
	} else if (default_paths(data, &nd, &ni)) {
		goto out;
	}
	if (create_upper(nd, ni, len << OBD_SECTOR_SHIFT, (const char *)li.uuid))
		goto out;
	/* the table names files by absolute path */
	and = realpath(nd, NULL);
	ani = realpath(ni, NULL);
	if (!and || !ani) {
		cli_err(nd, "%s", strerror(errno));
		goto out_unlink;
	}
	ret = snapshot(name, data, index, and, ani, &t, len, ro);
	if (ret)
		goto out_unlink;
	printf("sealed %s\nupper %s %s\n", data, and, ani);
	goto out;
out_unlink:
	unlink(nd);
	unlink(ni);
out:
	free(and);
	free(ani);
	free(nd);
	free(ni);
	free(params);
	return ret;
}
