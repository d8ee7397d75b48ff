// SPDX-License-Identifier: GPL-2.0-only
/*
 * Upper layers shared by the tables of one device, and the rule that keeps
 * upper files and lower layers apart (obd_upper_registry.h), after
 * dm-thin's pool table (__pool_table_lookup): one list of in-core uppers
 * and one of the lower layer files in use, both under obd_uppers_mutex,
 * which is never held across I/O.
 *
 * Why a reload must share: dm constructs the new table while the old one
 * is live and writing. An upper read from the files at that point would
 * miss every record the old table logs afterwards, append over the data
 * those records point at, and write its first index block over the old
 * table's last ones. Shared, there is one append position, one index
 * position and one set of buffered records, whichever table is live, and
 * the old table's dtr only drops its reference.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/fs.h>
#include <linux/namei.h>
#include <linux/device-mapper.h>

#include "obd_upper.h"
#include "obd_upper_registry.h"

#define DM_MSG_PREFIX "overlaybd"

static DEFINE_MUTEX(obd_uppers_mutex);
static LIST_HEAD(obd_uppers);		/* struct obd_upper_share */
static LIST_HEAD(obd_lowers);		/* struct obd_lower_claim */

/* A lower layer file used by live tables (each layer of each table counts). */
struct obd_lower_claim {
	struct list_head list;
	struct inode *inode;		/* file_inode of an open layer file */
	unsigned int refs;
};

/* NOTE: caller holds obd_uppers_mutex. */
static bool __obd_lower_claimed(const struct inode *a, const struct inode *b)
{
	struct obd_lower_claim *c;

	lockdep_assert_held(&obd_uppers_mutex);
	list_for_each_entry(c, &obd_lowers, list) {
		if (c->inode == a || (b && c->inode == b))
			return true;
	}
	return false;
}

/*
 * May inode be a lower layer of ti's table? Not if it is a file of a live
 * upper, except the device's own upper data file while the device is
 * suspended with every record of it durable (obd snapshot).
 * NOTE: caller holds obd_uppers_mutex.
 */
static int __obd_lower_conflict(struct dm_target *ti, const struct inode *inode,
				const char *path, char **error)
{
	struct mapped_device *md = dm_table_get_md(ti->table);
	struct obd_upper_share *s;

	lockdep_assert_held(&obd_uppers_mutex);
	list_for_each_entry(s, &obd_uppers, list) {
		if (inode != s->data_inode && inode != s->index_inode)
			continue;
		if (s->md == md && inode == s->data_inode && !s->closing && s->suspended_clean &&
		    dm_suspended(ti))
			return 0;
		if (s->md == md) {
			DMERR("%s: layer %s: the upper layer %s file of this device, which is not suspended with its records durable (suspend flush error %d)",
			      dm_table_device_name(ti->table), path,
			      inode == s->data_inode ? "data" : "index", s->flush_error);
			*error = "Layer is this device's live upper layer";
		} else {
			DMERR("%s: layer %s: an upper layer %s file of device %s",
			      dm_table_device_name(ti->table), path,
			      inode == s->data_inode ? "data" : "index", dm_device_name(s->md));
			*error = "Layer is another device's upper layer";
		}
		return -EBUSY;
	}
	return 0;
}

/*
 * The in-core upper of ti's device over data inode di and index inode ii
 * (NULL: sparse) into *found, or NULL if no upper uses either file; -EBUSY
 * if another device uses one of them, this device pairs them otherwise, or
 * a live table stacks one as a lower layer.
 * NOTE: caller holds obd_uppers_mutex.
 */
static int __obd_upper_find(struct dm_target *ti, const struct inode *di, const struct inode *ii,
			    const char *data, const char *index, u64 vsize,
			    struct obd_upper_share **found, char **error)
{
	struct mapped_device *md = dm_table_get_md(ti->table);
	const char *dev = dm_table_device_name(ti->table);
	struct obd_upper_share *s;

	lockdep_assert_held(&obd_uppers_mutex);
	*found = NULL;
	if (__obd_lower_claimed(di, ii)) {
		DMERR("%s: upper %s %s: a lower layer of a live table", dev,
		      __obd_lower_claimed(di, NULL) ? "data" : "index",
		      __obd_lower_claimed(di, NULL) ? data : index);
		*error = "Upper layer file is a lower layer of a live table";
		return -EBUSY;
	}
	list_for_each_entry(s, &obd_uppers, list) {
		bool hit_data = di == s->data_inode || di == s->index_inode;

		if (!hit_data && (!ii || (ii != s->data_inode && ii != s->index_inode)))
			continue;
		if (s->md != md || s->closing) {
			DMERR("%s: upper %s %s: in use by device %s", dev,
			      hit_data ? "data" : "index", hit_data ? data : index,
			      dm_device_name(s->md));
			*error = "Upper layer file in use by another device";
			return -EBUSY;
		}
		if (s->data_inode != di || s->index_inode != ii) {
			DMERR("%s: upper %s %s: this device's upper pairs it with another file", dev,
			      hit_data ? "data" : "index", hit_data ? data : index);
			*error = "Upper layer files differ from this device's upper";
			return -EBUSY;
		}
		if (s->up->vsize != vsize) {
			DMERR("%s: upper %s: virtual_size %llu, the lower layers' is %llu", dev, data,
			      s->up->vsize, vsize);
			*error = "Upper layer virtual size differs from the lower layers'";
			return -EINVAL;
		}
		*found = s;
		return 0;
	}
	return 0;
}

/* The inode a path names now, for a lookup before opening (0 if none). */
static struct inode *obd_path_inode(const char *path, struct path *p)
{
	if (!path || !strcmp(path, "-") || kern_path(path, LOOKUP_FOLLOW, p))
		return NULL;
	return d_backing_inode(p->dentry);
}

int obd_upper_share_get(struct dm_target *ti, const char *data, const char *index, u64 vsize,
			struct obd_upper_share **out, char **error)
{
	bool has_index = index && strcmp(index, "-");
	struct obd_upper_share *s = NULL, *ns;
	struct path pd, pi;
	struct inode *di, *ii;
	struct obd_upper *up;
	int r = 0;

	/* a table of a device that has this upper: no file is read (a reload) */
	di = obd_path_inode(data, &pd);
	ii = obd_path_inode(index, &pi);
	if (di && (ii || !has_index)) {
		mutex_lock(&obd_uppers_mutex);
		r = __obd_upper_find(ti, di, ii, data, index, vsize, &s, error);
		if (!r && s)
			s->refs++;
		mutex_unlock(&obd_uppers_mutex);
	}
	if (di)
		path_put(&pd);
	if (ii)
		path_put(&pi);
	if (r)
		return r;
	if (s) {
		*out = s;
		return 0;
	}

	ns = kzalloc(sizeof(*ns), GFP_KERNEL);
	if (!ns) {
		*error = "Cannot allocate memory";
		return -ENOMEM;
	}
	r = obd_upper_open(data, index, vsize, &up, error);
	if (r) {
		kfree(ns);
		return r;
	}
	ns->up = up;
	ns->refs = 1;
	ns->md = dm_table_get_md(ti->table);
	ns->data_inode = file_inode(up->data);
	ns->index_inode = up->index ? file_inode(up->index) : NULL;
	/* again with the files opened: the decision that counts */
	mutex_lock(&obd_uppers_mutex);
	r = __obd_upper_find(ti, ns->data_inode, ns->index_inode, data, index, vsize, &s, error);
	if (!r && s)
		s->refs++;
	else if (!r)
		list_add(&ns->list, &obd_uppers);
	mutex_unlock(&obd_uppers_mutex);
	if (r || s) {
		/* refused, or another table of this device was quicker: ours never wrote */
		obd_upper_close(up, false);
		kfree(ns);
		if (r)
			return r;
		ns = s;
	}
	*out = ns;
	return 0;
}

void obd_upper_share_put(struct obd_upper_share *s)
{
	bool flush;

	mutex_lock(&obd_uppers_mutex);
	if (--s->refs) {
		mutex_unlock(&obd_uppers_mutex);
		return;
	}
	/*
	 * Listed until closed, so that nobody reads the files meanwhile. A
	 * postsuspend flush that succeeded left nothing to write: the upper
	 * may be a sealed lower layer of the live table by now, so it writes
	 * nothing more. Otherwise this is the last chance for its records.
	 */
	s->closing = true;
	flush = !s->suspended_clean;
	mutex_unlock(&obd_uppers_mutex);

	obd_upper_close(s->up, flush);
	mutex_lock(&obd_uppers_mutex);
	list_del(&s->list);
	mutex_unlock(&obd_uppers_mutex);
	kfree(s);
}

void obd_upper_share_postsuspend(struct obd_upper_share *s, const char *dev)
{
	int r = obd_upper_flush(s->up);

	mutex_lock(&obd_uppers_mutex);
	s->flush_error = r;
	s->suspended_clean = !r;
	mutex_unlock(&obd_uppers_mutex);
	if (r)
		DMERR_LIMIT("%s: upper %s: the flush at suspend failed (error %d): its last records are not durable; they stay buffered for the table resumed next, and the upper cannot be stacked as a lower layer (obd snapshot) until a flush succeeds",
			    dev, s->up->data_path, r);
}

int obd_upper_share_preresume(struct obd_upper_share *s, const char *dev)
{
	int retry, r;

	mutex_lock(&obd_uppers_mutex);
	if (__obd_lower_claimed(s->data_inode, s->index_inode)) {
		mutex_unlock(&obd_uppers_mutex);
		DMERR("%s: upper %s: a loaded table stacks it as a lower layer: resume that table, or clear it and load this one again",
		      dev, s->up->data_path);
		return -EBUSY;
	}
	s->suspended_clean = false;
	retry = s->flush_error;
	mutex_unlock(&obd_uppers_mutex);
	if (!retry)
		return 0;
	r = obd_upper_flush(s->up);
	mutex_lock(&obd_uppers_mutex);
	s->flush_error = r;
	mutex_unlock(&obd_uppers_mutex);
	if (r)
		DMERR_LIMIT("%s: upper %s: the flush at resume failed too (error %d): the records stay buffered",
			    dev, s->up->data_path, r);
	else
		DMINFO("%s: upper %s: the records the suspend could not write are durable now", dev,
		       s->up->data_path);
	return 0;
}

int obd_upper_share_flush_error(struct obd_upper_share *s)
{
	return READ_ONCE(s->flush_error);
}

void obd_upper_share_flushed(struct obd_upper_share *s)
{
	if (likely(!READ_ONCE(s->flush_error)))
		return;
	mutex_lock(&obd_uppers_mutex);
	s->flush_error = 0;
	mutex_unlock(&obd_uppers_mutex);
}

int obd_lower_check_path(struct dm_target *ti, const char *path, char **error)
{
	struct path p;
	struct inode *inode = obd_path_inode(path, &p);
	int r;

	if (!inode)
		return 0;	/* the open says what is wrong */
	mutex_lock(&obd_uppers_mutex);
	r = __obd_lower_conflict(ti, inode, path, error);
	mutex_unlock(&obd_uppers_mutex);
	path_put(&p);
	return r;
}

int obd_lower_claim(struct dm_target *ti, struct inode *inode, const char *path, char **error)
{
	struct obd_lower_claim *c, *nc = kzalloc(sizeof(*nc), GFP_KERNEL);
	int r;

	if (!nc) {
		*error = "Cannot allocate memory";
		return -ENOMEM;
	}
	mutex_lock(&obd_uppers_mutex);
	r = __obd_lower_conflict(ti, inode, path, error);
	if (r)
		goto out;
	list_for_each_entry(c, &obd_lowers, list) {
		if (c->inode == inode) {
			c->refs++;
			goto out;
		}
	}
	nc->inode = inode;
	nc->refs = 1;
	list_add(&nc->list, &obd_lowers);
	nc = NULL;
out:
	mutex_unlock(&obd_uppers_mutex);
	kfree(nc);
	return r;
}

void obd_lower_release(struct inode *inode)
{
	struct obd_lower_claim *c;

	mutex_lock(&obd_uppers_mutex);
	list_for_each_entry(c, &obd_lowers, list) {
		if (c->inode != inode)
			continue;
		if (!--c->refs) {
			list_del(&c->list);
			kfree(c);
		}
		break;
	}
	mutex_unlock(&obd_uppers_mutex);
}

/* Module exit: dm core refuses to unload while a device exists. */
void obd_upper_registry_exit(void)
{
	WARN_ON(!list_empty(&obd_uppers) || !list_empty(&obd_lowers));
}
