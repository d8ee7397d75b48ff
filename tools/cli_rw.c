// SPDX-License-Identifier: GPL-2.0-only
/*
 * Writable layers for the subcommands: a thin layer over lib/user/lsmt_write.h
 * that reports errors and keeps the sorted index for reads.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lsmt_write.h"

struct cli_rw {
	struct obd_rw_layer rw;
	struct obd_map *maps;
	u64 nmaps;
	bool writable;
};

static int rw_refresh_maps(struct cli_layer *l)
{
	struct cli_rw *c = l->rw;
	struct obd_err err = { "" };
	int rc;

	if (c->maps)
		obd_free(c->maps);
	c->maps = NULL;
	c->nmaps = 0;
	rc = obd_rw_maps(&c->rw, &c->maps, &c->nmaps, &err);
	if (rc) {
		cli_err_core(l->path, rc, &err);
		return rc;
	}
	l->maps = c->maps;
	l->nmaps = c->nmaps;
	return 0;
}

int cli_rw_set_vsize(struct cli_layer *l, u64 vsize)
{
	struct obd_err err = { "" };
	int rc = obd_rw_set_vsize(&l->rw->rw, vsize, &err);

	if (rc) {
		cli_err_core(l->path, rc, &err);
		return rc;
	}
	l->info.virtual_size = vsize;
	return 0;
}

int cli_rw_open(struct cli_layer *l, const char *data, const char *index, bool writable)
{
	struct obd_err err = { "" };
	struct obd_lsmt_info li;
	struct cli_rw *c;
	int rc;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	rc = obd_rw_open(&c->rw, data, index, &err);
	if (rc) {
		cli_err_core(data, rc, &err);
		free(c);
		return rc;
	}
	c->writable = writable;
	l->rw = c;
	l->kind = c->rw.sparse ? CLI_KIND_RW_SPARSE : CLI_KIND_RW_APPEND;
	if (!l->fio_open) {
		rc = obd_file_io_open(&l->fio, data, &err);
		if (rc) {
			cli_err_core(data, rc, &err);
			goto out_close;
		}
		l->fio_open = true;
	}
	if (!obd_lsmt_read_header(&l->fio.io, &li, &err))
		l->info = li;
	l->info.virtual_size = c->rw.vsize;
	memcpy(l->info.uuid, c->rw.uuid, sizeof(l->info.uuid));
	memcpy(l->info.parent_uuid, c->rw.parent_uuid, sizeof(l->info.parent_uuid));
	l->stream = &l->fio.io;
	rc = rw_refresh_maps(l);
	if (rc)
		goto out_close;
	return 0;
out_close:
	cli_rw_close(l);
	return rc;
}

/*
 * Finish the layer with fin (close or seal), report its error, free the
 * state. A read-only close reports nothing: nothing was written to lose.
 */
static int cli_rw_finish(struct cli_layer *l, int (*fin)(struct obd_rw_layer *, struct obd_err *),
			 bool report)
{
	struct cli_rw *c = l->rw;
	struct obd_err err = { "" };
	int rc;

	if (c->maps)
		obd_free(c->maps);
	rc = fin(&c->rw, &err);
	if (rc && report)
		cli_err_core(l->path, rc, &err);
	free(c);
	l->rw = NULL;
	l->maps = NULL;
	l->nmaps = 0;
	return rc;
}

void cli_rw_close(struct cli_layer *l)
{
	if (l->rw)
		cli_rw_finish(l, obd_rw_close, l->rw->writable);
}

int cli_rw_write(struct cli_layer *l, const void *buf, u64 len, u64 off)
{
	struct obd_err err = { "" };
	int rc = obd_rw_write(&l->rw->rw, buf, len, off, &err);

	if (rc)
		cli_err_core(l->path, rc, &err);
	return rc;
}

int cli_rw_discard(struct cli_layer *l, u64 off, u64 len)
{
	struct obd_err err = { "" };
	int rc = obd_rw_discard(&l->rw->rw, off, len, &err);

	if (rc)
		cli_err_core(l->path, rc, &err);
	return rc;
}

/* Close and report: the fsync of the layer happens here. */
int cli_rw_flush(struct cli_layer *l)
{
	struct cli_rw *c = l->rw;
	struct obd_err err = { "" };
	int rc;

	if (!c)
		return 0;
	if (c->maps)
		obd_free(c->maps);
	rc = obd_rw_close(&c->rw, &err);
	if (rc)
		cli_err_core(l->path, rc, &err);
	free(c);
	l->rw = NULL;
	l->maps = NULL;
	l->nmaps = 0;
	return rc;
}

/* For cmd_commit --seal. */
int cli_rw_seal(struct cli_layer *l)
{
	if (l->rw->rw.sparse) {
		cli_err(l->path, "a sparse layer cannot be sealed (commit it instead)");
		return -EINVAL;
	}
	return cli_rw_finish(l, obd_rw_seal, true);
}

/*
 * The writable layer at the front of argv: "DATA INDEX" (append) or
 * "DATA" (sparse), decided by DATA's header. *used gets 1 or 2.
 */
int cli_rw_open_args(struct cli_layer *l, int argc, char **argv, int *used)
{
	enum cli_layer_kind kind;
	bool raw;
	int rc;

	memset(l, 0, sizeof(*l));
	if (argc < 1) {
		cli_err(NULL, "no writable layer given");
		return -EINVAL;
	}
	rc = cli_peek_kind(argv[0], &kind, &raw);
	if (rc) {
		if (rc == -ENOENT || rc == -EACCES || rc == -EISDIR)
			cli_err(argv[0], "%s", strerror(-rc));
		else
			cli_err(argv[0], "not a writable overlaybd layer");
		return rc;
	}
	if (kind != CLI_KIND_RW_APPEND && kind != CLI_KIND_RW_SPARSE) {
		cli_err(argv[0], "not a writable layer (it is %s)", cli_kind_name(kind));
		return -EINVAL;
	}
	if (kind == CLI_KIND_RW_APPEND && argc < 2) {
		cli_err(argv[0], "writable (append) layer: its INDEX file must follow it");
		return -EINVAL;
	}
	*used = kind == CLI_KIND_RW_APPEND ? 2 : 1;
	l->path = strdup(argv[0]);
	if (*used == 2)
		l->index_path = strdup(argv[1]);
	if (!l->path || (*used == 2 && !l->index_path)) {
		cli_layer_close(l);
		return -ENOMEM;
	}
	rc = cli_rw_open(l, argv[0], *used == 2 ? argv[1] : NULL, true);
	if (rc) {
		cli_layer_close(l);
		return rc;
	}
	return 0;
}

u64 cli_rw_vsize(const struct cli_layer *l)
{
	return l->rw ? l->rw->rw.vsize : l->info.virtual_size;
}
