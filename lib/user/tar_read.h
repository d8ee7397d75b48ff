/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A bounded tar reader (userspace only) for OCI layers: ustar, GNU
 * (long names 'L'/'K', base-256 numbers) and pax ('x' records: path,
 * linkpath, size, uid, gid, mtime, SCHILY.xattr.*; 'g' checked and
 * ignored). Every header field is checked (checksum, octal digits, sizes,
 * names: no "..", no empty component), the data of each entry is skipped
 * unless read, and the padding after it must be zeros. Messages name the
 * layer and the entry. Sparse, multi-volume and unknown types are refused.
 */
#ifndef OBD_TAR_READ_H
#define OBD_TAR_READ_H

#include <sys/types.h>

#include "obd.h"

#define OBD_TAR_BLOCK		512u
#define OBD_TAR_PAX_MAX		(1u << 20)	/* bytes of one pax or long-name header */
#define OBD_TAR_NAME_MAX	4096u		/* a path, as PATH_MAX */
#define OBD_TAR_XATTR_MAX	1024u		/* xattrs per entry */

/* Next up to len bytes of the uncompressed stream: count, 0 at its end, or -errno. */
typedef ssize_t (*obd_tar_src_fn)(void *ctx, void *buf, size_t len);

struct obd_tar_xattr {
	char *name;		/* e.g. "user.x", "security.capability" */
	u8 *value;
	size_t len;
};

struct obd_tar_entry {
	char *name;		/* normalised: no leading "./" or "/", no trailing "/"; "" = the root */
	char *link;		/* symlink target (as stored) or hard-link path (normalised) */
	char type;		/* '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo */
	u32 mode;		/* the 07777 bits */
	u64 uid, gid;
	u64 size;		/* data bytes (regular files; 0 for the others) */
	s64 mtime;
	u32 devmajor, devminor;
	u64 data_off;		/* offset of the data in the uncompressed stream */
	struct obd_tar_xattr *xattrs;
	unsigned int nxattrs;
};

struct obd_tar_reader {
	obd_tar_src_fn rd;
	void *ctx;
	const char *what;	/* "layer 2 (sha256:...)", for messages */
	u64 pos;		/* stream bytes consumed */
	u64 remain;		/* data bytes of the current entry not read */
	u64 pad;		/* its padding bytes */
	char *cur;		/* the current entry's name, for messages */
	bool ended;
};

void obd_tar_reader_init(struct obd_tar_reader *r, obd_tar_src_fn rd, void *ctx,
			 const char *what);
/*
 * The next entry into e (freed with obd_tar_entry_free): 1, or 0 at the
 * end-of-archive marker (what follows it must be zeros up to the stream's
 * end), or -errno with err naming the layer and the entry.
 */
int obd_tar_next(struct obd_tar_reader *r, struct obd_tar_entry *e, struct obd_err *err);
/* Read up to len bytes of the current entry's data: count (0 = all read) or -errno. */
ssize_t obd_tar_read(struct obd_tar_reader *r, void *buf, size_t len, struct obd_err *err);
void obd_tar_entry_free(struct obd_tar_entry *e);
void obd_tar_reader_free(struct obd_tar_reader *r);

#endif
