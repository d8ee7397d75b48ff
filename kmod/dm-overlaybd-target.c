// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-overlaybd: a device-mapper target serving an overlaybd layer stack
 * (LSMT, ZFile(LSMT), tar(...) layer files) from the page cache of the
 * layer files, read-only or with a writable upper layer (obd_upper.c).
 * See Documentation: docs/dm-overlaybd.rst.
 *
 * Table: <#layers> <layer>... [<#opt args> <opt>...], layers bottom to top;
 * a layer is a path, remote:<size>:<digest>:<cache file> (obd_remote.h) or
 * turbo <meta layer path> <target> (obd_turbo.h);
 * the option "upper <data> <index|->" adds the writable layer.
 * Construction is all-or-nothing; obd_dtr() copes with a half-built
 * target (the dm-verity shape), so obd_ctr() has a single "bad" label.
 *
 * This file: the table (ctr, dtr, optional arguments, layer paths, the
 * merged index), status, messages, the suspend and resume hooks and the
 * module. The I/O path (map, the inline read, the workers) is obd_bio.c;
 * what both share is obd_target.h.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/percpu.h>
#include <linux/workqueue.h>
#include <linux/device-mapper.h>
#include <linux/blkdev.h>
#include <linux/ctype.h>

#include "compat.h"
#include "obd_target.h"

#define DM_MSG_PREFIX "overlaybd"

/*----------------------------------------------------------------
 * Target interface
 *--------------------------------------------------------------*/

static void obd_dtr(struct dm_target *ti)
{
	struct obd_target *t = ti->private;
	unsigned int i;

	if (!t)
		return;
	if (t->wq) {
		/* remove does not wait for bios in flight: fail the parked ones */
		obd_fetch_stop(&t->fetch);
		destroy_workqueue(t->wq);
	}
	/* the device's other table may go on with it: only the last one closes it */
	if (t->ushare)
		obd_upper_share_put(t->ushare);
	kfree(t->upper_data);
	kfree(t->upper_index);
	if (t->pool_held)
		obd_kctx_pool_put();
	obd_kctx_free(t->reserve);
	free_percpu(t->stats);
	if (t->idx_built)
		obd_index_free(&t->idx);
	for (i = 0; t->layers && i < t->nlayers; i++) {
		struct obd_dev_layer *dl = &t->layers[i];

		if (dl->dfile)
			fput(dl->dfile);
		obd_blob_user_del(&dl->user);
		if (dl->claim)
			obd_lower_release(dl->claim);
		if (dl->dmdev)
			dm_put_device(ti, dl->dmdev);
		if (!IS_ERR_OR_NULL(dl->sl))
			obd_shared_put(dl->sl);
		obd_turbo_target_close(ti, dl->turbo);
		kfree(dl->path);
	}
	kfree(t->layers);
	obd_trace_free(&t->trace);
	kfree(t);
	ti->private = NULL;
}

/*
 * A path argument as written in the table, decoded in place: \ooo (three
 * octal digits, not \000) is that byte, as obd_emit_arg() writes white
 * space and backslashes; any other backslash is itself.
 */
static void obd_unescape(char *s)
{
	char *o = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7' && (s[1] != '0' || s[2] != '0' || s[3] != '0')) {
			*o++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
}

static int obd_parse_opt_args(struct obd_target *t, struct dm_arg_set *as, char **error)
{
	static const struct dm_arg opt_arg = {0, 7, "Invalid number of optional arguments"};
	unsigned int n;
	int r;

	if (!as->argc)
		return 0;
	r = dm_read_arg_group(&opt_arg, as, &n, error);
	if (r)
		return r;
	while (n--) {
		const char *a = dm_shift_arg(as);

		if (!strcasecmp(a, "direct_io")) {
			t->direct_io = true;
		} else if (!strcasecmp(a, "no_verify")) {
			t->no_verify = true;
		} else if (!strcasecmp(a, "hold_timeout")) {
			/* seconds readers of remote layers wait for a daemon */
			if (!n || kstrtouint(dm_shift_arg(as), 10, &t->hold_s) ||
			    t->hold_s > 86400) {
				*error = "Invalid hold_timeout (seconds, 0 to 86400)";
				return -EINVAL;
			}
			n--;
			t->hold_set = true;
		} else if (!strcasecmp(a, "upper")) {
			/* upper <data> <index|->: the writable layer */
			if (n < 2 || t->upper_data) {
				*error = "Invalid upper (expected upper <data file> <index file or ->)";
				return -EINVAL;
			}
			t->upper_data = kstrdup(dm_shift_arg(as), GFP_KERNEL);
			t->upper_index = kstrdup(dm_shift_arg(as), GFP_KERNEL);
			n -= 2;
			if (!t->upper_data || !t->upper_index) {
				*error = "Cannot allocate memory";
				return -ENOMEM;
			}
			obd_unescape(t->upper_data);
			obd_unescape(t->upper_index);
		} else {
			*error = "Unrecognized optional argument";
			DMERR("%s: unrecognized optional argument '%s'", obd_name(t), a);
			return -EINVAL;
		}
	}
	if (as->argc) {
		*error = "Too many arguments";
		return -EINVAL;
	}
	return 0;
}

/* An O_DIRECT handle next to the shared buffered one; optional. */
static void obd_open_direct(struct obd_target *t, struct obd_dev_layer *dl)
{
	struct file *f = filp_open(dl->path, O_RDONLY | O_LARGEFILE | O_DIRECT, 0);

	if (IS_ERR(f)) {
		DMWARN("%s: layer %s: O_DIRECT not supported (error %ld), reading through the page cache",
		       obd_name(t), dl->path, PTR_ERR(f));
		return;
	}
	if (f->f_mapping->host != dl->sl->file->f_mapping->host) {
		DMWARN("%s: layer %s: file replaced while opening, reading through the page cache",
		       obd_name(t), dl->path);
		fput(f);
		return;
	}
	dl->dfile = f;
}

static struct obd_shared_layer *obd_open_remote(struct obd_target *t,
						struct obd_dev_layer *dl, char **error,
						struct obd_err *err)
{
	struct obd_remote_spec rs;
	struct obd_blob *b;
	int r;

	r = obd_remote_parse(dl->path, &rs, error);
	if (r) {
		obd_errf(err, r, "bad remote layer argument (expected remote:<size>:sha256:<hex>:<cache file>)");
		return ERR_PTR(r);
	}
	b = obd_blob_get(&rs, error, err);
	if (IS_ERR(b))
		return ERR_CAST(b);
	t->nremote++;
	return obd_shared_get_remote(b, &t->fetch, error, err);
}

/*
 * A local layer's path: absolute (a relative one would resolve against
 * whoever loads the table, and `dmsetup table` would not reload it
 * elsewhere), and not this device's own node (its reads would come back
 * to it through the worker, without end).
 */
int obd_check_local_path(struct obd_target *t, const char *path, char **error)
{
	dev_t dev;

	if (path[0] != '/') {
		*error = "Layer path must be absolute";
		DMERR("%s: layer %s: the path must be absolute", obd_name(t), path);
		return -EINVAL;
	}
	if (!lookup_bdev(path, &dev) &&
	    dev == disk_devt(dm_disk(dm_table_get_md(t->ti->table)))) {
		*error = "A layer cannot be the device itself";
		DMERR("%s: layer %s is this device's own node", obd_name(t), path);
		return -EINVAL;
	}
	return 0;
}

/*
 * A layer that is a block device is also held through dm (read-only,
 * claimed by dm like any target's device): it shows under the device's
 * slaves/ and its holders/, and iterate_devices reports it. The layer is
 * read through the file opened for it (its page cache); the number comes
 * from that open inode, so both name one device.
 */
int obd_hold_bdev(struct obd_target *t, struct file *file, const char *path,
		  struct dm_dev **dmdev, char **error)
{
	struct inode *inode = file_inode(file);
	char name[24];
	int r;

	if (!S_ISBLK(inode->i_mode))
		return 0;
	if (inode->i_rdev == disk_devt(dm_disk(dm_table_get_md(t->ti->table)))) {
		*error = "A layer cannot be the device itself";
		DMERR("%s: layer %s is this device's own node", obd_name(t), path);
		return -EINVAL;
	}
	snprintf(name, sizeof(name), "%u:%u", MAJOR(inode->i_rdev), MINOR(inode->i_rdev));
	r = dm_get_device(t->ti, name, OBD_MODE_READ, dmdev);
	if (r) {
		*dmdev = NULL;
		*error = "Cannot claim layer block device";
		DMERR("%s: layer %s (%s): dm_get_device failed: error %d", obd_name(t), path,
		      name, r);
	}
	return r;
}

/* A layer as the table names it: a path or remote:..., or a warp layer's two. */
struct obd_layer_arg {
	char *path;			/* the layer, or a warp layer's meta layer */
	char *target;			/* a warp layer's target, else NULL */
};

static int obd_open_layers(struct obd_target *t, const struct obd_layer_arg *args,
			   char **error)
{
	unsigned int i;
	struct obd_err err;
	int r;

	for (i = 0; i < t->nlayers; i++) {
		struct obd_dev_layer *dl = &t->layers[i];

		dl->path = kstrdup(args[i].path, GFP_KERNEL);
		if (!dl->path) {
			*error = "Cannot allocate memory";
			return -ENOMEM;
		}
		err.msg[0] = 0;
		dl->fetch = &t->fetch;
		if (args[i].target) {
			if (obd_is_remote(dl->path)) {
				*error = "A turbo meta layer must be a local file";
				DMERR("%s: layer %u (%s): a turbo meta layer must be a local file",
				      obd_name(t), i, dl->path);
				return -EINVAL;
			}
			/* first the target: its size bounds the meta layer's records */
			r = obd_turbo_target_open(t, args[i].target, &dl->turbo, error);
			if (r)
				return r;
		}
		if (obd_is_remote(dl->path)) {
			dl->sl = obd_open_remote(t, dl, error, &err);
		} else {
			r = obd_check_local_path(t, dl->path, error);
			if (r)
				return r;
			/* an upper file in use: EBUSY rather than a parse error */
			r = obd_lower_check_path(t->ti, dl->path, error);
			if (r)
				return r;
			dl->sl = dl->turbo ?
				obd_shared_get(dl->path, true, dl->turbo->size, error, &err) :
				obd_shared_get(dl->path, false, 0, error, &err);
		}
		if (IS_ERR(dl->sl)) {
			r = PTR_ERR(dl->sl);
			DMERR("%s: layer %u (%s): %s", obd_name(t), i, dl->path, err.msg);
			dl->sl = NULL;
			return r;
		}
		r = obd_lower_claim(t->ti, file_inode(dl->sl->file), dl->path, error);
		if (r)
			return r;
		dl->claim = file_inode(dl->sl->file);
		r = obd_hold_bdev(t, dl->sl->file, dl->path, &dl->dmdev, error);
		if (r)
			return r;
		dl->blob = dl->sl->blob;
		if (dl->blob)
			obd_blob_user_add(&dl->user, dl->blob, t->ti);
		/* remote layers are read through the page cache the daemon fills */
		if (t->direct_io && !dl->blob)
			obd_open_direct(t, dl);
		/* direct_io layers stay on the worker: O_DIRECT reads always wait */
		dl->nowait = !dl->dfile && obd_file_nowait(dl->sl->file);
		t->nowait |= dl->nowait;
	}
	return 0;
}

static int obd_build_index(struct obd_target *t, char **error)
{
	const struct obd_map **maps;
	const struct obd_layer **lp;
	struct obd_err err;
	u64 *counts, vsize;
	unsigned int i;
	int r = -ENOMEM;

	maps = kcalloc(t->nlayers, sizeof(*maps), GFP_KERNEL);
	lp = kcalloc(t->nlayers, sizeof(*lp), GFP_KERNEL);
	counts = kcalloc(t->nlayers, sizeof(*counts), GFP_KERNEL);
	if (!maps || !lp || !counts) {
		*error = "Cannot allocate memory";
		goto out_free;
	}
	for (i = 0; i < t->nlayers; i++) {
		lp[i] = &t->layers[i].sl->layer;
		maps[i] = lp[i]->maps;
		counts[i] = lp[i]->nmaps;
	}

	/*
	 * No lowers: the upper alone (a blank writable disk, the reference's
	 * "only one RW layer"); its own header checks the length when it opens.
	 */
	vsize = t->nlayers ? obd_stack_vsize(lp, t->nlayers) : (u64)t->ti->len << SECTOR_SHIFT;
	/* The same rule as the tools (obd attach, cat, check). */
	if (obd_stack_vsize_check(vsize, &err)) {
		*error = "Invalid virtual size";
		DMERR("%s: %s", obd_name(t), err.msg);
		r = -EINVAL;
		goto out_free;
	}
	if (t->ti->len != vsize >> SECTOR_SHIFT) {
		*error = "Target length does not match the image size";
		DMERR("%s: table length %llu sectors, image virtual size %llu sectors",
		      obd_name(t), (u64)t->ti->len, vsize >> SECTOR_SHIFT);
		r = -EINVAL;
		goto out_free;
	}

	err.msg[0] = 0;
	r = obd_index_merge(maps, counts, t->nlayers, &t->idx, &err);
	if (r) {
		*error = "Cannot merge layer indexes";
		DMERR("%s: %s", obd_name(t), err.msg);
		goto out_free;
	}
	t->idx_built = true;
out_free:
	kfree(counts);
	kfree(lp);
	kfree(maps);
	return r;
}

/* dm_shift_arg, but writable: the words are unescaped in place. */
static char *obd_take_arg(struct dm_arg_set *as)
{
	char *a = as->argv[0];

	dm_consume_args(as, 1);
	return a;
}

/*
 * The layer words: <path> | remote:... | turbo <meta> <target>, each
 * unescaped in place (obd_emit_arg writes them back the same way).
 */
static int obd_parse_layer_args(struct dm_arg_set *as, struct obd_layer_arg *args,
				unsigned int n, char **error)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (!as->argc) {
			*error = "Not enough layer paths";
			return -EINVAL;
		}
		args[i].path = obd_take_arg(as);
		if (strcmp(args[i].path, OBD_TURBO_WORD)) {
			obd_unescape(args[i].path);
			continue;
		}
		if (as->argc < 2) {
			*error = "Invalid turbo layer (expected turbo <meta layer> <target>)";
			return -EINVAL;
		}
		args[i].path = obd_take_arg(as);
		args[i].target = obd_take_arg(as);
		obd_unescape(args[i].path);
		obd_unescape(args[i].target);
	}
	return 0;
}

/*
 * overlaybd <#layers> <layer>... [<#opt args> <opt>...]
 */
static int obd_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	static const struct dm_arg layers_arg = {0, OBD_MAX_LAYERS, "Invalid number of layers"};
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	struct obd_layer_arg *args = NULL;
	struct obd_target *t;
	int r;

	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t) {
		ti->error = "Cannot allocate memory";
		return -ENOMEM;
	}
	t->ti = ti;
	ti->private = t;
	obd_trace_init(&t->trace);

	r = dm_read_arg(&layers_arg, &as, &t->nlayers, &ti->error);
	if (r)
		goto bad;
	args = kcalloc(t->nlayers, sizeof(*args), GFP_KERNEL);
	if (!args && t->nlayers) {
		ti->error = "Cannot allocate memory";
		r = -ENOMEM;
		goto bad;
	}
	r = obd_parse_layer_args(&as, args, t->nlayers, &ti->error);
	if (r)
		goto bad;
	r = obd_parse_opt_args(t, &as, &ti->error);
	if (r)
		goto bad;
	if (!t->nlayers && !t->upper_data) {
		ti->error = "A table without lower layers needs an upper layer";
		r = -EINVAL;
		goto bad;
	}
	atomic_set(&t->pending, 0);
	t->fetch.hold = t->hold_set ? (unsigned long)t->hold_s * HZ : obd_hold_default();
	t->fetch.pending = &t->pending;

	t->layers = kcalloc(t->nlayers, sizeof(*t->layers), GFP_KERNEL);
	if (!t->layers) {
		ti->error = "Cannot allocate memory";
		r = -ENOMEM;
		goto bad;
	}
	r = obd_open_layers(t, args, &ti->error);
	if (r)
		goto bad;
	kfree(args);
	args = NULL;
	r = obd_build_index(t, &ti->error);
	if (r)
		goto bad;
	if (t->upper_data) {
		if (t->upper_data[0] != '/' ||
		    (t->upper_index[0] != '/' && strcmp(t->upper_index, "-"))) {
			DMERR("%s: upper %s %s: the paths must be absolute", obd_name(t),
			      t->upper_data, t->upper_index);
			ti->error = "Upper layer paths must be absolute";
			r = -EINVAL;
			goto bad;
		}
		if (!(dm_table_get_mode(ti->table) & OBD_MODE_WRITE)) {
			ti->error = "A table with an upper layer must be read-write";
			r = -EINVAL;
			goto bad;
		}
		r = obd_upper_share_get(ti, t->upper_data, t->upper_index,
					(u64)ti->len << SECTOR_SHIFT, &t->ushare, &ti->error);
		if (r)
			goto bad;
		t->upper = t->ushare->up;
		t->reader.fn = obd_read_device;
		t->reader.ctx = t;
	} else if (dm_table_get_mode(ti->table) & OBD_MODE_WRITE) {
		/* as dm-verity: every write would fail, so refuse the table */
		DMERR("%s: a read-write table needs an upper layer (load it read-only)", obd_name(t));
		ti->error = "A table without an upper layer must be read-only";
		r = -EINVAL;
		goto bad;
	}

	r = obd_kctx_pool_get();
	if (r) {
		ti->error = "Cannot allocate decode buffers";
		goto bad;
	}
	t->pool_held = true;
	t->reserve = obd_kctx_alloc(true);
	if (!t->reserve) {
		ti->error = "Cannot allocate decode buffers";
		r = -ENOMEM;
		goto bad;
	}
	t->stats = alloc_percpu(struct obd_stats);
	if (!t->stats) {
		ti->error = "Cannot allocate memory";
		r = -ENOMEM;
		goto bad;
	}
	/*
	 * Unbound so that bios from many CPUs are served in parallel, with the
	 * default (high) max_active; a rescuer because the device may back swap
	 * or a file system under writeback.
	 */
	t->wq = alloc_workqueue("kobd-%s", WQ_UNBOUND | WQ_MEM_RECLAIM, 0, obd_name(t));
	if (!t->wq) {
		ti->error = "Cannot allocate workqueue";
		r = -ENOMEM;
		goto bad;
	}

	ti->per_io_data_size = sizeof(struct obd_bio);
	ti->num_flush_bios = 1;
	ti->flush_supported = true;
	ti->num_discard_bios = t->upper ? 1 : 0;
	ti->discards_supported = !!t->upper;
	ti->num_write_zeroes_bios = t->upper ? 1 : 0;
	return 0;

bad:
	kfree(args);
	obd_dtr(ti);
	return r;
}

/* Bytes fetched into the device's remote blobs, each blob once. */
static struct obd_blob *obd_nth_blob(struct obd_target *t, unsigned int k)
{
	struct obd_dev_layer *dl = &t->layers[k / 2];

	if (k % 2)
		return dl->turbo ? dl->turbo->blob : NULL;
	return dl->blob;
}

/* Each remote blob once: the layers' and the turbo targets'. */
static u64 obd_fetched(struct obd_target *t)
{
	unsigned int i, j;
	u64 sum = 0;

	for (i = 0; i < 2 * t->nlayers; i++) {
		struct obd_blob *b = obd_nth_blob(t, i);

		if (!b)
			continue;
		for (j = 0; j < i && obd_nth_blob(t, j) != b; j++)
			;
		if (j == i)
			sum += atomic64_read(&b->fetched);
	}
	return sum;
}

static void obd_status_upper(struct obd_target *t, char *result, unsigned int maxlen,
			     unsigned int *psz)
{
	struct obd_upper *up = t->upper;
	unsigned int sz = *psz;
	u64 data, records, live, room, dead = 0;

	if (!up)
		return;		/* read-only devices keep the line they always had */
	obd_upper_usage(up, &data, &records, &live, &room);
	live <<= SECTOR_SHIFT;
	if (data > live)
		dead = div64_u64((data - live) * 1000, data);
	DMEMIT(" upper %s data %llu records %llu live %llu dead %llu writes %lld written %lld discards %lld flushes %lld write_errors %lld",
	       up->sparse ? "sparse" : "append", data, records, live, dead,
	       (long long)atomic64_read(&up->writes), (long long)atomic64_read(&up->written),
	       (long long)atomic64_read(&up->discards), (long long)atomic64_read(&up->flushes),
	       (long long)atomic64_read(&up->write_errors));
	if (up->sparse)
		DMEMIT(" index_room -");
	else
		DMEMIT(" index_room %llu", room);
	*psz = sz;
}

/*
 * " <arg>" with each white space character and backslash written as a
 * three-digit octal escape (\040, \134), which obd_unescape() reads back:
 * `dmsetup table` output loads again as it is. (libdevmapper doubles every
 * backslash it sends and dm_split_args() halves them, so the target sees
 * what the user wrote; a backslash escape of dm_split_args itself cannot
 * go through dmsetup.)
 */
static void obd_emit_arg(char *result, unsigned int maxlen, unsigned int *psz, const char *a)
{
	unsigned int sz = *psz;

	DMEMIT(" ");
	for (; *a; a++) {
		if (*a == '\\' || isspace(*a))
			DMEMIT("\\%03o", (unsigned char)*a);
		else
			DMEMIT("%c", *a);
	}
	*psz = sz;
}

/*
 * INFO:  <#layers> reads <n> inline <n> resumed <n> bytes <n> zblocks <n> crc_errors <n>
 *        io_errors <n> remote <n> pending <n> fetched <n> daemon <0|1>
 *   reads/bytes: read bios completed and their bytes; inline: those of the
 *   reads served in the submitter's context (no workqueue); resumed: reads
 *   begun inline and finished by the worker from the first miss; zblocks:
 *   ZFile blocks decoded; crc_errors: ZFile blocks with a bad CRC; io_errors:
 *   bios failed; remote: remote layers; pending: readers waiting for a miss
 *   now; fetched: bytes the daemon made present in this device's remote
 *   blobs (shared blobs count for every device using them); daemon: 1 if
 *   a fetch daemon holds /dev/overlaybd.
 *        [upper <append|sparse> data <bytes> records <n> live <bytes>
 *        dead <permille> writes <n> written <bytes> discards <n> flushes <n>
 *        write_errors <n> index_room <n|->]  (with an upper layer only)
 *   data: bytes of the upper's data file (append: past the header;
 *   sparse: allocated); records: in the index file and the group commit
 *   buffer, padding not counted (append), maps (sparse); index_room:
 *   records the append kind's index takes before writes fail with ENOSPC
 *   (sparse: -); live: bytes the upper's maps point at;
 *   dead: the share of data no map points at any more, in permille (high:
 *   time to commit).
 *        [suspend_flush_error <errno>]  (with an upper layer only)
 *   0, or the error of the flush at the last suspend (or of its retry at
 *   resume) until a flush succeeds: records not durable, kept in memory.
 * TABLE: the constructor line, optional arguments recounted, paths
 *   escaped (obd_emit_arg).
 */
static void obd_status(struct dm_target *ti, status_type_t type, unsigned int status_flags,
		       char *result, unsigned int maxlen)
{
	struct obd_target *t = ti->private;
	struct obd_stats s = {};
	unsigned int sz = 0, i, nopt;
	int cpu;

	switch (type) {
	case STATUSTYPE_INFO:
		for_each_possible_cpu(cpu) {
			struct obd_stats *p = per_cpu_ptr(t->stats, cpu);

			s.reads += READ_ONCE(p->reads);
			s.inline_reads += READ_ONCE(p->inline_reads);
			s.resumed += READ_ONCE(p->resumed);
			s.bytes += READ_ONCE(p->bytes);
			s.zblocks += READ_ONCE(p->zblocks);
			s.crc_errors += READ_ONCE(p->crc_errors);
			s.io_errors += READ_ONCE(p->io_errors);
		}
		DMEMIT("%u reads %llu inline %llu resumed %llu bytes %llu zblocks %llu crc_errors %llu io_errors %llu",
		       t->nlayers, s.reads, s.inline_reads, s.resumed, s.bytes, s.zblocks,
		       s.crc_errors, s.io_errors);
		DMEMIT(" remote %u pending %d fetched %llu daemon %d", t->nremote,
		       atomic_read(&t->pending), obd_fetched(t), obd_daemon_connected());
		obd_status_upper(t, result, maxlen, &sz);
		if (t->ushare)
			DMEMIT(" suspend_flush_error %d", obd_upper_share_flush_error(t->ushare));
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%u", t->nlayers);
		for (i = 0; i < t->nlayers; i++) {
			if (t->layers[i].turbo)
				DMEMIT(" " OBD_TURBO_WORD);
			obd_emit_arg(result, maxlen, &sz, t->layers[i].path);
			if (t->layers[i].turbo)
				obd_emit_arg(result, maxlen, &sz, t->layers[i].turbo->arg);
		}
		nopt = t->direct_io + t->no_verify + 2 * t->hold_set + 3 * !!t->upper_data;
		if (nopt)
			DMEMIT(" %u", nopt);
		if (t->direct_io)
			DMEMIT(" direct_io");
		if (t->no_verify)
			DMEMIT(" no_verify");
		if (t->hold_set)
			DMEMIT(" hold_timeout %u", t->hold_s);
		if (t->upper_data) {
			DMEMIT(" upper");
			obd_emit_arg(result, maxlen, &sz, t->upper_data);
			obd_emit_arg(result, maxlen, &sz, t->upper_index);
		}
		break;
	case STATUSTYPE_IMA:
		DMEMIT_TARGET_NAME_VERSION(ti->type);
		DMEMIT(",layers=%u,remote=%u,direct_io=%c,no_verify=%c,upper=%c;", t->nlayers,
		       t->nremote, t->direct_io ? 'y' : 'n', t->no_verify ? 'y' : 'n',
		       t->upper ? 'y' : 'n');
		break;
	}
}

static void obd_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct obd_target *t = ti->private;

	/* bios complete from workers: nothing to poll (compat.h) */
	obd_limits_no_poll(limits);
	/*
	 * Block device layers were stacked by iterate_devices; bios never go
	 * to them, so their logical block size is not this device's (whose
	 * length need only be whole sectors).
	 */
	limits->logical_block_size = SECTOR_SIZE;
	if (t->upper) {
		/* any 512-byte range: zeroed records or punched holes */
		limits->discard_granularity = SECTOR_SIZE;
		limits->max_discard_sectors = UINT_MAX >> SECTOR_SHIFT;
		limits->max_hw_discard_sectors = UINT_MAX >> SECTOR_SHIFT;
		limits->max_write_zeroes_sectors = UINT_MAX >> SECTOR_SHIFT;
		return;
	}
	/* Read-only: no discards (both fields, see KERNEL-COMPAT.md section 3). */
	limits->max_discard_sectors = 0;
	limits->max_hw_discard_sectors = 0;
}

/*
 * The layers that are block devices (held by obd_hold_bdev); file layers
 * are no dm device. Having the method at all matters: without it dm (6.1)
 * skips io_hints and never enables discard or write zeroes for the table.
 * What dm derives from the devices: rotational (any layer device is), and
 * write zeroes only if every layer device has it; with no layer device
 * (files only) the device is non-rotational.
 */
static int obd_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	struct obd_target *t = ti->private;
	unsigned int i;
	int r;

	for (i = 0; i < 2 * t->nlayers; i++) {
		struct obd_dev_layer *dl = &t->layers[i / 2];
		struct dm_dev *d = i % 2 ? (dl->turbo ? dl->turbo->dmdev : NULL) : dl->dmdev;

		if (!d)
			continue;
		r = fn(ti, d, 0, bdev_nr_sectors(d->bdev), data);
		if (r)
			return r;
	}
	return 0;
}

/*
 * Bios parked on misses must not hold up a suspend for request_timeout
 * (a registry that hangs): with noflush they go back to dm at once
 * (BLK_STS_DM_REQUEUE: dm keeps them and maps them again after resume, as
 * dm-thin and dm-multipath requeue); a suspend with flush, which waits for
 * every bio in flight and cannot take requeues, lets them wait a few
 * seconds more for their bytes, then fails them (EIO). docs/dm-overlaybd.rst
 * "Suspend".
 */
static void obd_presuspend(struct dm_target *ti)
{
	struct obd_target *t = ti->private;

	obd_fetch_suspend(&t->fetch, dm_noflush_suspending(ti));
}

/* The suspend failed, or the table is live again: misses wait again. */
static void obd_presuspend_undo(struct dm_target *ti)
{
	struct obd_target *t = ti->private;

	obd_fetch_resume(&t->fetch);
}

/* The table is live (swapped in by dm, then resumed): no polled I/O, misses wait again. */
static void obd_resume(struct dm_target *ti)
{
	obd_queue_no_poll(dm_disk(dm_table_get_md(ti->table)));
	obd_presuspend_undo(ti);
}

/*
 * Suspended (no I/O in flight): what was written is durable before a table
 * swap. A failed flush is recorded (status suspend_flush_error, a log
 * line); its records stay buffered in the shared upper.
 */
static void obd_postsuspend(struct dm_target *ti)
{
	struct obd_target *t = ti->private;

	if (t->ushare)
		obd_upper_share_postsuspend(t->ushare, obd_name(t));
}

/* This table goes live: a suspend flush that failed is tried again. */
static int obd_preresume(struct dm_target *ti)
{
	struct obd_target *t = ti->private;

	return t->ushare ? obd_upper_share_preresume(t->ushare, obd_name(t)) : 0;
}

/*
 * Prefetch [off, off + count) of layer `layer`'s LSMT stream: the blob
 * bytes holding it (the ZFile blocks, inside the tar window) are asked of
 * the daemon behind every miss. Local layers have nothing to fetch.
 */
static int obd_prefetch_layer(void *ctx, u32 layer, u64 off, u64 count)
{
	struct obd_target *t = ctx;
	struct obd_dev_layer *dl = &t->layers[layer];
	struct obd_layer *l = &dl->sl->layer;
	u64 b0, b1, start, end;

	if (!dl->blob)
		return 0;
	if (!(l->wrap & OBD_WRAP_ZFILE)) {
		if (off >= l->window.io.size)
			return 0;
		count = min(count, l->window.io.size - off);
		return obd_blob_prefetch(dl->blob, l->window.off + off, count);
	}
	if (!l->zf.info.nblocks)
		return 0;
	b0 = off / l->zf.info.block_size;
	b1 = (off + count - 1) / l->zf.info.block_size;
	if (b0 >= l->zf.info.nblocks)
		return 0;
	b1 = min(b1, l->zf.info.nblocks - 1);
	start = obd_zfile_block_start(&l->zf, b0);
	end = obd_zfile_block_start(&l->zf, b1 + 1);
	return obd_blob_prefetch(dl->blob, l->window.off + start, end - start);
}

static int obd_message(struct dm_target *ti, unsigned int argc, char **argv, char *result,
		       unsigned int maxlen)
{
	struct obd_target *t = ti->private;
	const char *why = NULL;
	int r;

	r = obd_trace_message(&t->trace, argc, argv, result, maxlen, t->nlayers,
			      obd_prefetch_layer, t, &why);
	if (r < 0 && r != -EBUSY)
		DMWARN_LIMIT("%s: message refused: %s", obd_name(t), why);
	return r;
}

static struct target_type obd_target_type = {
	.name = "overlaybd",
	.version = {1, 8, 0},
	.module = THIS_MODULE,
	.ctr = obd_ctr,
	.dtr = obd_dtr,
	.map = obd_map,
	.status = obd_status,
	.message = obd_message,
	.io_hints = obd_io_hints,
	.presuspend = obd_presuspend,
	.presuspend_undo = obd_presuspend_undo,
	.postsuspend = obd_postsuspend,
	.preresume = obd_preresume,
	.resume = obd_resume,
	.iterate_devices = obd_iterate_devices,
};

static int __init obd_init(void)
{
	int r;

	r = obd_env_init();
	if (r)
		return r;
	r = obd_miss_init();
	if (r) {
		DMERR("cannot register /dev/%s: error %d", OBD_DEV_NAME, r);
		goto out_env;
	}
	r = dm_register_target(&obd_target_type);
	if (r) {
		DMERR("register failed %d", r);
		goto out_miss;
	}
	return 0;

out_miss:
	obd_miss_exit();
out_env:
	obd_env_exit();
	return r;
}

static void __exit obd_exit(void)
{
	dm_unregister_target(&obd_target_type);
	obd_miss_exit();
	obd_upper_registry_exit();
	obd_shared_exit();
	obd_blob_exit();
	obd_env_exit();
}

module_init(obd_init);
module_exit(obd_exit);

MODULE_DESCRIPTION(DM_NAME " target serving overlaybd images (LSMT, ZFile, tar)");
MODULE_AUTHOR("dm-overlaybd authors");
MODULE_LICENSE("GPL");
