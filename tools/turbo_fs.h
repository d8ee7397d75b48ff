/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The TurboOCI fs-meta builder (turbo_fs.c): one ext4 image, built with
 * libext2fs in userspace, to which the source layers are applied one after
 * the other. Every block libext2fs writes is tracked; regular files get
 * blocks allocated (initialised extents) but no data: their blocks are
 * mapped to their bytes in the layer's uncompressed tar stream. At the end
 * of a layer, the maps of that layer (turbo-oci.md 2.3) are handed out:
 * tag 0 = the metadata written (moffset = the LBA in the image file), tag 1
 * = file data (moffset = the tar sector), zeroed = the tail of a file's
 * last block past its last tar sector.
 */
#ifndef OBD_TURBO_FS_H
#define OBD_TURBO_FS_H

#include "obd.h"
#include "tar_read.h"

struct tfs;

/* mkfs.ext4 on a new sparse image file of vsize bytes, opened. 0 or -errno (said). */
int tfs_create(const char *image, u64 vsize, struct tfs **out);
/* A new layer: what follows is its change set. what names it in messages. */
void tfs_layer_begin(struct tfs *t, const char *what);
/* A whiteout ".wh.NAME" (or the opaque marker) in directory dir ("" = root). */
int tfs_whiteout(struct tfs *t, const char *dir, const char *wh);
/* One tar entry (not a whiteout); regular files are mapped to e->data_off. */
int tfs_apply(struct tfs *t, const struct obd_tar_entry *e);
/* Flush the file system; the layer's maps, sorted (obd_free them). */
int tfs_layer_end(struct tfs *t, struct obd_map **maps, u64 *n);
/* Read from the image file (the tag-0 source of the layer's maps). */
int tfs_read(struct tfs *t, void *buf, size_t len, u64 off);
void tfs_close(struct tfs *t);

#endif
