// SPDX-License-Identifier: GPL-2.0-only
/*
 * Layers shared between devices: a layer file stacked by several devices is
 * opened and parsed once, so all of them read through one page cache and
 * one in-memory index. Keyed by the inode behind the file (the block device
 * inode for a device node): the inode itself, which each entry pins by
 * holding the file open, not its number (inode numbers are per subvolume
 * on btrfs, whose subvolumes share one super block). Size and mtime guard
 * against a file rewritten in place: a changed file gets a fresh parse, the
 * old one lives on for the devices already using it.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/device-mapper.h>
#include <linux/sched/signal.h>

#include "compat.h"
#include "obd_kmod.h"
#include "obd_remote.h"

#define DM_MSG_PREFIX "overlaybd"

static DEFINE_MUTEX(obd_layers_mutex);	/* guards obd_layers and ->refs; never held across I/O */
static LIST_HEAD(obd_layers);
static unsigned int obd_layers_parsed;	/* entries on obd_layers */
module_param_named(layers_parsed, obd_layers_parsed, uint, 0444);
MODULE_PARM_DESC(layers_parsed, "Number of parsed layer files alive (read-only)");

/*
 * NOTE: caller holds obd_layers_mutex. A warp layer's index depends on its
 * target's size (the bound of its tag-1 records) and on being read as
 * warp at all: those are part of the key.
 */
static struct obd_shared_layer *__obd_shared_find(struct inode *host, bool warp, u64 target_size)
{
	struct timespec64 mtime = obd_inode_mtime(host);
	loff_t size = i_size_read(host);
	struct obd_shared_layer *sl;

	lockdep_assert_held(&obd_layers_mutex);
	list_for_each_entry(sl, &obd_layers, list) {
		if (!sl->blob && sl->file->f_mapping->host == host && sl->size == size &&
		    timespec64_equal(&sl->mtime, &mtime) && sl->warp == warp &&
		    sl->target_size == target_size)
			return sl;
	}
	return NULL;
}

/*
 * The data path reads the window and stored blocks directly, so it relies on
 * the layer being laid out as obd_layer_open documents it.
 */
static int obd_shared_check(struct obd_shared_layer *sl, char **error,
			    struct obd_err *err)
{
	struct obd_layer *l = &sl->layer;

	if (l->wrap & OBD_WRAP_ZFILE) {
		if (l->zf.src != &l->window.io || l->lsmt_io != &l->zf.io) {
			*error = "Unsupported layer structure";
			return obd_errf(err, -EOPNOTSUPP, "%s: zfile not over the layer window",
					sl->name);
		}
		if (l->zf.info.block_size > OBD_ZFILE_MAX_BS ||
		    l->zf.max_stored > OBD_CBUF_BYTES) {
			*error = "Unsupported ZFile block size";
			return obd_errf(err, -EOPNOTSUPP,
					"%s: zfile block_size %u, largest stored block %u: expected at most %u and %u",
					sl->name, l->zf.info.block_size, l->zf.max_stored,
					OBD_ZFILE_MAX_BS, OBD_CBUF_BYTES);
		}
	} else if (l->lsmt_io != &l->window.io) {
		*error = "Unsupported layer structure";
		return obd_errf(err, -EOPNOTSUPP, "%s: lsmt not over the layer window", sl->name);
	}
	return 0;
}

static void obd_shared_free(struct obd_shared_layer *sl)
{
	if (!sl->parse_err)
		obd_layer_close(&sl->layer);
	fput(sl->file);
	if (sl->blob)
		obd_blob_put(sl->blob);
	kfree(sl->name);
	kfree(sl);
}

void obd_shared_put(struct obd_shared_layer *sl)
{
	mutex_lock(&obd_layers_mutex);
	if (--sl->refs) {
		mutex_unlock(&obd_layers_mutex);
		return;
	}
	if (!list_empty(&sl->list)) {
		list_del_init(&sl->list);
		obd_layers_parsed--;
	}
	mutex_unlock(&obd_layers_mutex);
	obd_shared_free(sl);
}

/*
 * A new entry for file (taken over, with blob's ref), not parsed yet, or
 * NULL without memory (the caller still owns file and blob).
 */
static struct obd_shared_layer *obd_shared_alloc(struct file *file, const char *path,
						 struct obd_blob *blob)
{
	struct inode *host = file->f_mapping->host;
	struct obd_shared_layer *sl;

	sl = kzalloc(sizeof(*sl), GFP_KERNEL);
	if (!sl)
		return NULL;
	sl->name = kstrdup(path, GFP_KERNEL);
	if (!sl->name) {
		kfree(sl);
		return NULL;
	}
	INIT_LIST_HEAD(&sl->list);
	init_completion(&sl->parsed);
	sl->file = file;
	sl->size = i_size_read(host);
	sl->mtime = obd_inode_mtime(host);
	sl->blob = blob;
	sl->refs = 1;
	obd_kfile_io_init(&sl->kio, file, sl->name);
	return sl;
}

/* NOTE: caller holds obd_layers_mutex. Listed: later openers find it. */
static void __obd_shared_list(struct obd_shared_layer *sl)
{
	lockdep_assert_held(&obd_layers_mutex);
	list_add(&sl->list, &obd_layers);
	obd_layers_parsed++;
}

/*
 * Parse a listed entry, holding no global lock: a remote layer's headers
 * and index may wait for the network, a local one for its file system.
 * The ctr's waits for misses are killable (kill -9 of dmsetup: -EINTR).
 */
static int obd_shared_parse(struct obd_shared_layer *sl, const struct obd_fetch_opts *fetch,
			    char **error, struct obd_err *err)
{
	struct obd_fetch_opts kf;
	int r;

	if (fetch) {
		kf = *fetch;
		kf.killable = true;
		/* a remote layer's headers and index come through the miss path */
		sl->kio.blob = sl->blob;
		sl->kio.fetch = &kf;
	}
	if (sl->warp)
		r = obd_layer_open_warp(&sl->layer, &sl->kio.io, obd_parse_codec,
					sl->target_size, err);
	else
		r = obd_layer_open(&sl->layer, &sl->kio.io, obd_parse_codec, err);
	/* later reads of the layer go through the device's own read path */
	sl->kio.fetch = NULL;
	if (r) {
		if (r == -EINTR) {
			*error = "Interrupted while fetching a remote layer";
			obd_errf(err, r, "%s: a fatal signal ended the wait for its headers", sl->name);
		} else {
			*error = r == -ENOMEM ? "Cannot allocate layer" : "Invalid layer";
		}
	} else {
		r = obd_shared_check(sl, error, err);
		if (r)
			obd_layer_close(&sl->layer);
		else if (sl->layer.wrap & OBD_WRAP_ZFILE)
			/* the data path decodes into per-request buffers (obd_kctx) */
			obd_zfile_drop_buffers(&sl->layer.zf);
	}

	mutex_lock(&obd_layers_mutex);
	if (r) {
		sl->parse_err = r;
		list_del_init(&sl->list);
		obd_layers_parsed--;
	}
	complete_all(&sl->parsed);
	mutex_unlock(&obd_layers_mutex);
	if (r) {
		obd_shared_put(sl);
		return r;
	}
	return 0;
}

/*
 * Wait for an entry another opener parses (a ref held; dropped on error).
 * 1: that parse was interrupted, look again.
 */
static int obd_shared_wait(struct obd_shared_layer *sl, const char *path, char **error,
			   struct obd_err *err)
{
	int r;

	if (wait_for_completion_killable(&sl->parsed)) {
		obd_shared_put(sl);
		*error = "Interrupted while waiting for a layer to be parsed";
		return obd_errf(err, -EINTR, "%s: a fatal signal ended the wait for another table's parse",
				path);
	}
	r = sl->parse_err;
	if (!r)
		return 0;
	obd_shared_put(sl);
	if (r == -EINTR && !fatal_signal_pending(current))
		return 1;
	*error = "Invalid layer";
	return obd_errf(err, r, "%s: parsing it for another table failed: error %d", path, r);
}

/*
 * Open path and return its parsed layer, parsing it only if no device uses
 * it yet (as a warp layer over a target of target_size bytes if warp). On
 * error *error is a static string for ti->error and err names the file and
 * the problem.
 */
struct obd_shared_layer *obd_shared_get(const char *path, bool warp, u64 target_size,
					char **error, struct obd_err *err)
{
	struct obd_shared_layer *sl;
	struct file *file;
	umode_t mode;
	int r;

	/*
	 * O_NOATIME: reading a layer should not dirty its inode, and the inline
	 * read path needs file_accessed() not to start a journal handle. It
	 * needs ownership or CAP_FOWNER; without it the inline path is off.
	 */
	file = filp_open(path, O_RDONLY | O_LARGEFILE | O_NOATIME, 0);
	if (PTR_ERR_OR_ZERO(file) == -EPERM)
		file = filp_open(path, O_RDONLY | O_LARGEFILE, 0);
	if (IS_ERR(file)) {
		*error = "Cannot open layer";
		obd_errf(err, (int)PTR_ERR(file), "%s: open failed: error %ld", path,
			 PTR_ERR(file));
		return ERR_CAST(file);
	}
	mode = file_inode(file)->i_mode;
	if ((!S_ISREG(mode) && !S_ISBLK(mode)) || !file->f_op->read_iter) {
		*error = "Layer is not a regular file or block device";
		obd_errf(err, -EINVAL, "%s: not a regular file or block device", path);
		fput(file);
		return ERR_PTR(-EINVAL);
	}

	do {
		mutex_lock(&obd_layers_mutex);
		sl = __obd_shared_find(file->f_mapping->host, warp, target_size);
		if (sl) {
			sl->refs++;
			mutex_unlock(&obd_layers_mutex);
			r = obd_shared_wait(sl, path, error, err);
			continue;
		}
		sl = obd_shared_alloc(get_file(file), path, NULL);
		if (sl) {
			sl->warp = warp;
			sl->target_size = target_size;
		} else {
			mutex_unlock(&obd_layers_mutex);
			fput(file);
			r = -ENOMEM;
			*error = "Cannot allocate layer";
			obd_errf(err, r, "%s: out of memory", path);
			break;
		}
		__obd_shared_list(sl);
		mutex_unlock(&obd_layers_mutex);
		r = obd_shared_parse(sl, NULL, error, err);
	} while (r == 1);
	fput(file);
	return r ? ERR_PTR(r) : sl;
}

/* NOTE: caller holds obd_layers_mutex. */
static struct obd_shared_layer *__obd_shared_find_blob(struct obd_blob *b)
{
	struct obd_shared_layer *sl;

	lockdep_assert_held(&obd_layers_mutex);
	list_for_each_entry(sl, &obd_layers, list)
		if (sl->blob == b)
			return sl;
	return NULL;
}

/*
 * A remote layer, keyed by its blob: the cache file changes while it fills,
 * so the size and mtime guard of local layers does not apply.
 */
struct obd_shared_layer *obd_shared_get_remote(struct obd_blob *b,
					       const struct obd_fetch_opts *fetch,
					       char **error, struct obd_err *err)
{
	struct obd_shared_layer *sl;
	int r;

	do {
		mutex_lock(&obd_layers_mutex);
		sl = __obd_shared_find_blob(b);
		if (sl) {
			sl->refs++;
			mutex_unlock(&obd_layers_mutex);
			r = obd_shared_wait(sl, b->path, error, err);
			continue;
		}
		sl = obd_shared_alloc(get_file(b->file), b->path, b);
		if (!sl) {
			mutex_unlock(&obd_layers_mutex);
			fput(b->file);
			r = -ENOMEM;
			*error = "Cannot allocate layer";
			obd_errf(err, r, "%s: out of memory", b->path);
			break;
		}
		__obd_shared_list(sl);
		mutex_unlock(&obd_layers_mutex);
		/* the entry took over b's ref, whatever the parse gives */
		r = obd_shared_parse(sl, fetch, error, err);
		return r ? ERR_PTR(r) : sl;
	} while (r == 1);
	obd_blob_put(b);
	return r ? ERR_PTR(r) : sl;
}

/* Module exit: dm core refuses to unload while a device exists. */
void obd_shared_exit(void)
{
	WARN_ON(!list_empty(&obd_layers));
}
