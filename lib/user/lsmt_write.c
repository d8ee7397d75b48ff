// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * LSMT writers, userspace only (spec 2.6): byte-compatible with
 * overlaybd-create / overlaybd-commit of containerd/overlaybd.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

#include "obd.h"
#include "lsmt_rw.h"
#include "lsmt_write.h"
#include "env_user.h"

#define OBD_COMMIT_CHUNK	(32u * 1024)	/* pcopy()'s BUFFER_SIZE: shapes the records */
#define OBD_NULL_UUID		"00000000-0000-0000-0000-000000000000"

static const u8 obd_magic1[16] = OBD_LSMT_MAGIC1_BYTES;

int obd_fd_sink(void *ctx, const void *buf, size_t len)
{
	return obd_write_all(*(int *)ctx, buf, len);
}

int obd_uuid_generate(u8 out[OBD_UUID_STR_LEN])
{
	static const char hex[] = "0123456789ABCDEF";
	u8 r[16];
	size_t got = 0;
	int i, k = 0;

	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	r[6] = (r[6] & 0x0f) | 0x40;
	r[8] = (r[8] & 0x3f) | 0x80;
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[k++] = '-';
		out[k++] = (u8)hex[r[i] >> 4];
		out[k++] = (u8)hex[r[i] & 15];
	}
	out[k] = 0;
	return 0;
}

/* NULL/"" -> null UUID; otherwise must be valid; written uppercase. */
static int obd_uuid_norm(u8 dst[OBD_UUID_STR_LEN], const char *src, const char *what,
			 struct obd_err *err)
{
	int i;

	if (!src || !*src) {
		memcpy(dst, OBD_NULL_UUID, OBD_UUID_STR_LEN);
		return 0;
	}
	if (strlen(src) != OBD_UUID_STR_LEN - 1 || !obd_uuid_valid((const u8 *)src))
		return obd_errf(err, EINVAL, "%s: got \"%.40s\", expected XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX",
				what, src);
	for (i = 0; i < OBD_UUID_STR_LEN; i++) {
		u8 c = (u8)src[i];

		dst[i] = (c >= 'a' && c <= 'f') ? (u8)(c - 'a' + 'A') : c;
	}
	return 0;
}

/* A source header's parent: kept if well-formed, else null (as UUID::parse). */
static void obd_uuid_from_disk(u8 dst[OBD_UUID_STR_LEN], const u8 *src)
{
	if (obd_uuid_valid(src))
		obd_uuid_norm(dst, (const char *)src, "", NULL);
	else
		memcpy(dst, OBD_NULL_UUID, OBD_UUID_STR_LEN);
}

static void obd_build_ht(u8 *blk, u32 flags, u64 ioff, u64 isize, u64 vsize,
			 const u8 *uuid, const u8 *parent, const void *tag, size_t taglen)
{
	struct obd_lsmt_ht *ht = (struct obd_lsmt_ht *)blk;

	memset(blk, 0, OBD_LSMT_HT_SPACE);
	ht->magic0 = cpu_to_le64(OBD_LSMT_MAGIC0);
	memcpy(ht->magic1, obd_magic1, sizeof(obd_magic1));
	ht->size = cpu_to_le32(OBD_LSMT_HT_SIZE);
	ht->flags = cpu_to_le32(flags);
	ht->index_offset = cpu_to_le64(ioff);
	ht->index_size = cpu_to_le64(isize);
	ht->virtual_size = cpu_to_le64(vsize);
	memcpy(ht->uuid, uuid, OBD_UUID_STR_LEN);
	memcpy(ht->parent_uuid, parent, OBD_UUID_STR_LEN);
	ht->version = OBD_LSMT_VERSION;
	ht->sub_version = OBD_LSMT_SUB_VERSION;
	if (taglen)
		memcpy(ht->user_tag, tag, taglen);
}

static void obd_rw_release(struct obd_rw_layer *l)
{
	if (l->data_fd >= 0)
		close(l->data_fd);
	if (l->index_fd >= 0)
		close(l->index_fd);
	l->data_fd = l->index_fd = -1;
	free(l->log);
	l->log = NULL;
	l->nlog = l->caplog = 0;
	free(l->name);
	l->name = NULL;
}

static int obd_rw_log_push(struct obd_rw_layer *l, const struct obd_map *m, struct obd_err *err)
{
	if (l->nlog == l->caplog) {
		u64 cap = l->caplog ? l->caplog * 2 : 1024;
		struct obd_map *p = realloc(l->log, (size_t)cap * sizeof(*p));

		if (!p)
			return obd_errf(err, ENOMEM, "%s: RW log: out of memory", l->name);
		l->log = p;
		l->caplog = cap;
	}
	l->log[l->nlog++] = *m;
	return 0;
}

int obd_rw_set_vsize(struct obd_rw_layer *l, u64 vsize, struct obd_err *err)
{
	const u64 at = __builtin_offsetof(struct obd_lsmt_ht, virtual_size);
	u8 le[8];
	int ret;

	if (l->vsize)
		return obd_errf(err, EINVAL, "%s: virtual size is set already (%llu)", l->name,
				(unsigned long long)l->vsize);
	if (!vsize || vsize % OBD_SECTOR_SIZE)
		return obd_errf(err, EINVAL, "%s: virtual size: got %llu, expected a non-zero multiple of 512",
				l->name, (unsigned long long)vsize);
	obd_put_le64(le, vsize);
	/* the data file's length first: a sparse layer is vsize + header long */
	if (l->sparse && ftruncate(l->data_fd, (off_t)(vsize + OBD_LSMT_HT_SPACE)) < 0)
		return obd_errf(err, errno, "%s: ftruncate to %llu failed", l->name,
				(unsigned long long)(vsize + OBD_LSMT_HT_SPACE));
	ret = obd_pwrite_all(l->data_fd, le, sizeof(le), at);
	if (!ret && l->index_fd >= 0)
		ret = obd_pwrite_all(l->index_fd, le, sizeof(le), at);
	if (!ret && (fsync(l->data_fd) || (l->index_fd >= 0 && fsync(l->index_fd))))
		ret = -errno;
	if (ret)
		return obd_errf(err, -ret, "%s: writing the virtual size failed", l->name);
	l->vsize = vsize;
	if (l->sparse)
		l->data_end = vsize + OBD_LSMT_HT_SPACE;
	return 0;
}

int obd_rw_create(struct obd_rw_layer *l, const char *data_path, const char *index_path,
		  u64 vsize, const char *parent_uuid, bool sparse, struct obd_err *err)
{
	u8 *blk;
	int ret;

	memset(l, 0, sizeof(*l));
	l->data_fd = l->index_fd = -1;
	l->sparse = sparse;
	l->vsize = vsize;
	l->name = strdup(data_path);
	if (!l->name)
		return obd_errf(err, ENOMEM, "%s: out of memory", data_path);
	if (vsize % OBD_SECTOR_SIZE) {
		ret = obd_errf(err, EINVAL, "%s: virtual size: got %llu, expected a multiple of 512",
			       data_path, (unsigned long long)vsize);
		goto out_release;
	}
	if (!sparse && !index_path) {
		ret = obd_errf(err, EINVAL, "%s: an append-mode RW layer needs an index file",
			       data_path);
		goto out_release;
	}
	ret = obd_uuid_norm(l->parent_uuid, parent_uuid, "parent uuid", err);
	if (ret)
		goto out_release;
	ret = obd_uuid_generate(l->uuid);
	if (ret) {
		obd_errf(err, ret, "%s: getrandom failed", data_path);
		goto out_release;
	}
	blk = calloc(1, OBD_LSMT_HT_SPACE);
	if (!blk) {
		ret = obd_errf(err, ENOMEM, "%s: out of memory", data_path);
		goto out_release;
	}
	l->data_fd = open(data_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (l->data_fd < 0) {
		ret = obd_errf(err, errno, "%s: create failed: %s", data_path, strerror(errno));
		goto out_free_blk;
	}
	obd_build_ht(blk, sparse ? OBD_LSMT_FLAGS_RW_DATA_SPARSE : OBD_LSMT_FLAGS_RW_DATA,
		     0, 0, vsize, l->uuid, l->parent_uuid, NULL, 0);
	ret = obd_pwrite_all(l->data_fd, blk, OBD_LSMT_HT_SPACE, 0);
	if (ret) {
		obd_errf(err, ret, "%s: header write failed", data_path);
		goto out_free_blk;
	}
	l->data_end = OBD_LSMT_HT_SPACE;
	if (sparse) {
		if (ftruncate(l->data_fd, (off_t)(vsize + OBD_LSMT_HT_SPACE)) < 0) {
			ret = obd_errf(err, errno, "%s: ftruncate to %llu failed", data_path,
				       (unsigned long long)(vsize + OBD_LSMT_HT_SPACE));
			goto out_free_blk;
		}
		l->data_end = vsize + OBD_LSMT_HT_SPACE;
	} else {
		l->index_fd = open(index_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (l->index_fd < 0) {
			ret = obd_errf(err, errno, "%s: create failed: %s", index_path,
				       strerror(errno));
			goto out_free_blk;
		}
		obd_build_ht(blk, OBD_LSMT_FLAGS_RW_INDEX, OBD_LSMT_HT_SPACE, 0, vsize,
			     l->uuid, l->parent_uuid, NULL, 0);
		ret = obd_pwrite_all(l->index_fd, blk, OBD_LSMT_HT_SPACE, 0);
		if (ret) {
			obd_errf(err, ret, "%s: header write failed", index_path);
			goto out_free_blk;
		}
		l->index_end = OBD_LSMT_HT_SPACE;
	}
	free(blk);
	return 0;

out_free_blk:
	free(blk);
out_release:
	obd_rw_release(l);
	return ret;
}

/* Sparse layer: data extents from SEEK_DATA/SEEK_HOLE, past the header. */
static int obd_rw_sparse_maps(struct obd_rw_layer *l, struct obd_map **maps, u64 *n,
			      struct obd_err *err)
{
	u64 *ext = NULL, next = 0, cap = 0, pos = OBD_LSMT_HT_SPACE;
	off_t fsize = lseek(l->data_fd, 0, SEEK_END);
	int ret;

	if (fsize < 0)
		return obd_errf(err, errno, "%s: lseek(SEEK_END) failed", l->name);
	for (;;) {
		off_t b = lseek(l->data_fd, (off_t)pos, SEEK_DATA), e;

		if (b < 0) {
			if (errno == ENXIO)
				break;
			ret = obd_errf(err, errno, "%s: SEEK_DATA at %llu failed", l->name,
				       (unsigned long long)pos);
			goto out_free;
		}
		e = lseek(l->data_fd, b, SEEK_HOLE);
		if (e < 0) {
			ret = obd_errf(err, errno, "%s: SEEK_HOLE at %lld failed", l->name,
				       (long long)b);
			goto out_free;
		}
		if (next == cap) {
			u64 *p;

			cap = cap ? cap * 2 : 64;
			p = realloc(ext, (size_t)cap * 2 * sizeof(*p));
			if (!p) {
				ret = obd_errf(err, ENOMEM, "%s: out of memory", l->name);
				goto out_free;
			}
			ext = p;
		}
		ext[2 * next] = (u64)b;
		ext[2 * next + 1] = (u64)e;
		next++;
		pos = (u64)e;
	}
	ret = obd_lsmt_sparse_maps(ext, next, (u64)fsize, l->name, maps, n, err);
out_free:
	free(ext);
	return ret;
}

int obd_rw_open(struct obd_rw_layer *l, const char *data_path, const char *index_path,
		struct obd_err *err)
{
	struct obd_lsmt_info li;
	struct obd_file_io fio = { .fd = -1 };
	struct obd_map *maps = NULL;
	u64 n = 0, i;
	int ret;

	memset(l, 0, sizeof(*l));
	l->data_fd = l->index_fd = -1;
	l->name = strdup(data_path);
	if (!l->name)
		return obd_errf(err, ENOMEM, "%s: out of memory", data_path);
	l->data_fd = open(data_path, O_RDWR | O_CLOEXEC);
	if (l->data_fd < 0) {
		ret = obd_errf(err, errno, "%s: open failed: %s", data_path, strerror(errno));
		goto out_release;
	}
	ret = obd_file_io_from_fd(&fio, l->data_fd, l->name, err);
	if (ret)
		goto out_release;
	ret = obd_lsmt_read_header(&fio.io, &li, err);
	l->data_end = OBD_ALIGN_UP(fio.io.size, OBD_SECTOR_SIZE);
	obd_file_io_close(&fio);	/* the name only: the fd is l's */
	if (ret)
		goto out_release;
	if (li.kind != OBD_LSMT_RW_DATA && li.kind != OBD_LSMT_RW_SPARSE) {
		ret = obd_errf(err, EINVAL, "%s: LSMT header flags: got 0x%x, expected an RW data file (0x03 or 0x13)",
			       data_path, li.header_flags);
		goto out_release;
	}
	l->sparse = li.kind == OBD_LSMT_RW_SPARSE;
	l->vsize = li.virtual_size;
	obd_uuid_from_disk(l->uuid, li.uuid);
	if (!obd_uuid_valid(li.uuid))
		memcpy(l->uuid, li.uuid, OBD_UUID_STR_LEN);
	obd_uuid_from_disk(l->parent_uuid, li.parent_uuid);
	if (l->sparse)
		return 0;

	if (!index_path) {
		ret = obd_errf(err, EINVAL, "%s: append-mode RW layer: no index file given", data_path);
		goto out_release;
	}
	l->index_fd = open(index_path, O_RDWR | O_CLOEXEC);
	if (l->index_fd < 0) {
		ret = obd_errf(err, errno, "%s: open failed: %s", index_path, strerror(errno));
		goto out_release;
	}
	ret = obd_file_io_from_fd(&fio, l->index_fd, index_path, err);
	if (ret)
		goto out_release;
	/* A torn record at the end is dropped: the next one goes after the last whole one. */
	l->index_end = fio.io.size < OBD_LSMT_HT_SPACE ? OBD_LSMT_HT_SPACE :
		OBD_LSMT_HT_SPACE + (fio.io.size - OBD_LSMT_HT_SPACE) /
		sizeof(struct obd_lsmt_mapping) * sizeof(struct obd_lsmt_mapping);
	ret = obd_lsmt_rw_load_index(&fio.io, l->data_end, &maps, &n, &l->nrecs, err);
	obd_file_io_close(&fio);
	if (ret)
		goto out_release;
	for (i = 0; i < n && !ret; i++)
		ret = obd_rw_log_push(l, &maps[i], err);
	obd_free(maps);
	if (ret)
		goto out_release;
	return 0;

out_release:
	obd_rw_release(l);
	return ret;
}

static int obd_rw_check_range(struct obd_rw_layer *l, u64 off, u64 len, const char *op,
			      struct obd_err *err)
{
	if (off % OBD_SECTOR_SIZE || len % OBD_SECTOR_SIZE)
		return obd_errf(err, EINVAL, "%s: %s at %llu+%llu: expected 512-byte alignment",
				l->name, op, (unsigned long long)off, (unsigned long long)len);
	if (l->vsize && (off > l->vsize || len > l->vsize - off))
		return obd_errf(err, EINVAL, "%s: %s at %llu+%llu: past the virtual size %llu",
				l->name, op, (unsigned long long)off, (unsigned long long)len,
				(unsigned long long)l->vsize);
	if (off / OBD_SECTOR_SIZE + len / OBD_SECTOR_SIZE > OBD_MAP_OFFSET_MASK)
		return obd_errf(err, EINVAL, "%s: %s at %llu+%llu: past 2^50 sectors",
				l->name, op, (unsigned long long)off, (unsigned long long)len);
	return 0;
}

static int obd_rw_append_record(struct obd_rw_layer *l, const struct obd_map *m,
				struct obd_err *err)
{
	struct obd_lsmt_mapping raw;
	int ret;

	/* what a reader can load again (lsmt_rw.h) */
	if (l->nrecs >= OBD_LSMT_RW_MAX_RECORDS ||
	    (l->index_end - OBD_LSMT_HT_SPACE) / sizeof(raw) >= OBD_LSMT_MAX_RW_INDEX)
		return obd_errf(err, ENOSPC, "%s: index full: %llu records (at most %llu), %llu bytes",
				l->name, (unsigned long long)l->nrecs,
				(unsigned long long)OBD_LSMT_RW_MAX_RECORDS,
				(unsigned long long)l->index_end);
	obd_map_encode(m, &raw);
	ret = obd_pwrite_all(l->index_fd, &raw, sizeof(raw), l->index_end);
	if (ret)
		return obd_errf(err, ret, "%s: index append at %llu failed", l->name,
				(unsigned long long)l->index_end);
	l->index_end += sizeof(raw);
	l->nrecs++;
	return obd_rw_log_push(l, m, err);
}

int obd_rw_write(struct obd_rw_layer *l, const void *buf, u64 len, u64 off,
		 struct obd_err *err)
{
	const u8 *p = buf;
	int ret;

	ret = obd_rw_check_range(l, off, len, "write", err);
	if (ret)
		return ret;
	if (l->sparse) {
		ret = obd_pwrite_all(l->data_fd, buf, len, OBD_LSMT_HT_SPACE + off);
		if (ret)
			return obd_errf(err, ret, "%s: write at %llu failed", l->name,
					(unsigned long long)(OBD_LSMT_HT_SPACE + off));
		return 0;
	}
	while (len) {
		u64 c = len < OBD_RW_MAX_IO_SIZE ? len : OBD_RW_MAX_IO_SIZE;
		struct obd_map m = {
			.offset = off / OBD_SECTOR_SIZE,
			.length = (u32)(c / OBD_SECTOR_SIZE),
			.moffset = l->data_end / OBD_SECTOR_SIZE,
		};

		/* Data before its record: a crash leaves unreferenced data, never a bad record. */
		ret = obd_pwrite_all(l->data_fd, p, c, l->data_end);
		if (ret)
			return obd_errf(err, ret, "%s: data append at %llu failed", l->name,
					(unsigned long long)l->data_end);
		l->data_end += c;
		ret = obd_rw_append_record(l, &m, err);
		if (ret)
			return ret;
		p += c;
		off += c;
		len -= c;
	}
	return 0;
}

int obd_rw_discard(struct obd_rw_layer *l, u64 off, u64 len, struct obd_err *err)
{
	int ret;

	ret = obd_rw_check_range(l, off, len, "discard", err);
	if (ret)
		return ret;
	if (l->sparse) {
		if (len && fallocate(l->data_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				     (off_t)(OBD_LSMT_HT_SPACE + off), (off_t)len) < 0)
			return obd_errf(err, errno, "%s: punch hole at %llu+%llu failed", l->name,
					(unsigned long long)(OBD_LSMT_HT_SPACE + off),
					(unsigned long long)len);
		return 0;
	}
	while (len) {
		u64 c = len / OBD_SECTOR_SIZE;
		struct obd_map m;

		if (c > OBD_MAP_MAX_LENGTH)
			c = OBD_MAP_MAX_LENGTH;
		m.offset = off / OBD_SECTOR_SIZE;
		m.length = (u32)c;
		m.moffset = l->data_end / OBD_SECTOR_SIZE;
		m.zeroed = 1;
		m.tag = 0;
		ret = obd_rw_append_record(l, &m, err);
		if (ret)
			return ret;
		off += c * OBD_SECTOR_SIZE;
		len -= c * OBD_SECTOR_SIZE;
	}
	return 0;
}

int obd_rw_maps(struct obd_rw_layer *l, struct obd_map **maps, u64 *n, struct obd_err *err)
{
	if (l->sparse)
		return obd_rw_sparse_maps(l, maps, n, err);
	return obd_lsmt_rw_replay(l->log, l->nlog, l->name, maps, n, err);
}

int obd_rw_close(struct obd_rw_layer *l, struct obd_err *err)
{
	int ret = 0;

	if (l->data_fd >= 0 && fsync(l->data_fd) < 0)
		ret = obd_errf(err, errno, "%s: fsync failed", l->name);
	if (!ret && l->index_fd >= 0 && fsync(l->index_fd) < 0)
		ret = obd_errf(err, errno, "%s: index fsync failed", l->name);
	obd_rw_release(l);
	return ret;
}

int obd_rw_seal(struct obd_rw_layer *l, struct obd_err *err)
{
	struct obd_lsmt_mapping *raw = NULL;
	struct obd_map *maps = NULL;
	u64 n = 0, i, bytes, ioff;
	u8 *blk = NULL;
	int ret;

	if (l->sparse) {
		ret = obd_errf(err, EOPNOTSUPP, "%s: sealing a sparse RW layer is not supported",
			       l->name);
		goto out_close;
	}
	ret = obd_rw_maps(l, &maps, &n, err);
	if (ret)
		goto out_close;
	ioff = l->data_end;
	bytes = OBD_ALIGN_UP(n * sizeof(*raw), OBD_SECTOR_SIZE);
	raw = calloc(1, bytes ? bytes : 1);
	blk = malloc(OBD_LSMT_HT_SPACE);
	if (!raw || !blk) {
		ret = obd_errf(err, ENOMEM, "%s: seal: out of memory", l->name);
		goto out_free;
	}
	for (i = 0; i < n; i++)
		obd_map_encode(&maps[i], &raw[i]);
	ret = obd_pwrite_all(l->data_fd, raw, bytes, ioff);
	if (ret) {
		obd_errf(err, ret, "%s: seal: index write at %llu failed", l->name,
			 (unsigned long long)ioff);
		goto out_free;
	}
	/*
	 * The trailer is what makes the file a sealed layer: it must not reach
	 * the disk before the index it points at (a crash in between would
	 * leave a "sealed" file over garbage instead of a writable one).
	 */
	if (fsync(l->data_fd) < 0) {
		ret = obd_errf(err, errno, "%s: seal: fsync of the index failed", l->name);
		goto out_free;
	}
	obd_build_ht(blk, OBD_LSMT_FLAGS_TRAILER, ioff, n, l->vsize, l->uuid, l->parent_uuid,
		     NULL, 0);
	ret = obd_pwrite_all(l->data_fd, blk, OBD_LSMT_HT_SPACE, ioff + bytes);
	if (ret) {
		obd_errf(err, ret, "%s: seal: trailer write failed", l->name);
		goto out_free;
	}
out_free:
	free(blk);
	free(raw);
	obd_free(maps);
out_close:
	if (!ret)
		return obd_rw_close(l, err);
	obd_rw_release(l);
	return ret;
}

/* ------------------------------------------------------------------------
 * Commit
 * ------------------------------------------------------------------------ */

struct obd_commit_idx {
	struct obd_map *v;
	u64 n, cap;
};

/* compress_raw_index, applied as records are produced. */
static int obd_commit_push(struct obd_commit_idx *x, const struct obd_map *m)
{
	if (x->n) {
		struct obd_map *c = &x->v[x->n - 1];

		if (obd_map_end(c) == m->offset && obd_map_mend(c) == m->moffset &&
		    c->zeroed == m->zeroed && c->tag == m->tag &&
		    (u64)c->length + m->length < OBD_MAP_MAX_LENGTH) {
			c->length += m->length;
			return 0;
		}
	}
	if (x->n == x->cap) {
		u64 cap = x->cap ? x->cap * 2 : 256;
		struct obd_map *p = realloc(x->v, (size_t)cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		x->v = p;
		x->cap = cap;
	}
	x->v[x->n++] = *m;
	return 0;
}

/* What obd_lsmt_commit and obd_lsmt_commit_warp share while they write. */
struct obd_commit_run {
	const char *what;		/* "commit", "warp commit": messages' prefix */
	const char *src;		/* what rd reads, for messages; NULL: "layer <tag>" */
	const void *user_tag;		/* in the header and the trailer */
	size_t user_tag_len;
	u64 vsize;
	obd_commit_read_fn rd;
	void *rctx;
	obd_commit_sink_fn sink;
	void *sctx;
	struct obd_err *err;
	u8 uuid[OBD_UUID_STR_LEN], parent[OBD_UUID_STR_LEN];
	struct obd_commit_idx x;
	u64 max_rec;			/* the most records x may reach: what readers open */
	u64 pos;			/* the next data sector */
	u8 *blk;			/* header, trailer, an index page */
	u8 *buf;			/* one 32 KiB piece of data */
};

static int obd_commit_init(struct obd_commit_run *c, const char *what,
			   const struct obd_commit_opts *o, obd_commit_read_fn rd, void *rctx,
			   obd_commit_sink_fn sink, void *sctx, struct obd_err *err)
{
	int ret;

	*c = (struct obd_commit_run){
		.what = what, .user_tag = o->user_tag, .user_tag_len = o->user_tag_len,
		.max_rec = OBD_LSMT_MAX_RO_INDEX,
		.vsize = o->vsize, .rd = rd, .rctx = rctx, .sink = sink, .sctx = sctx,
		.err = err, .pos = OBD_LSMT_HT_SPACE / OBD_SECTOR_SIZE,
	};
	ret = obd_uuid_norm(c->uuid, o->uuid, "commit uuid", err);
	if (ret)
		return ret;
	return obd_uuid_norm(c->parent, o->parent_uuid, "commit parent uuid", err);
}

static void obd_commit_fini(struct obd_commit_run *c)
{
	free(c->x.v);
	free(c->buf);
	free(c->blk);
}

/* The header or the trailer: one 4 KiB block, the user tag in both. */
static int obd_commit_ht(struct obd_commit_run *c, u32 flags, u64 ioff, u64 isize,
			 const char *part)
{
	int ret;

	obd_build_ht(c->blk, flags, ioff, isize, c->vsize, c->uuid, c->parent, c->user_tag,
		     c->user_tag_len);
	ret = c->sink(c->sctx, c->blk, OBD_LSMT_HT_SPACE);
	if (ret)
		return obd_errf(c->err, ret, "%s: %s write failed", c->what, part);
	return 0;
}

static int obd_commit_begin(struct obd_commit_run *c)
{
	c->blk = malloc(OBD_LSMT_HT_SPACE);
	c->buf = malloc(OBD_COMMIT_CHUNK);
	if (!c->blk || !c->buf)
		return obd_errf(c->err, ENOMEM, "%s: out of memory", c->what);
	return obd_commit_ht(c, OBD_LSMT_FLAGS_COMMIT_HEADER, 0, 0, "header");
}

/*
 * The reference's open_ro/open_warpfile_ro (verify_ht) and lib/core refuse
 * a trailer index_size above MAX_LSMT_RO_INDEX_SIZE: stop as soon as the
 * index passes it rather than write a layer no reader opens (an upper of
 * many scattered small writes can map more pieces than that).
 */
static int obd_commit_record(struct obd_commit_run *c, const struct obd_map *r)
{
	if (obd_commit_push(&c->x, r))
		return obd_errf(c->err, ENOMEM, "%s: out of memory for the index", c->what);
	if (c->x.n > c->max_rec)
		return obd_errf(c->err, E2BIG,
				"%s: more than %llu index records at LBA %llu, the most readers open (the image maps too many separate pieces: flatten it, obd cat into a raw image and obd import)",
				c->what, (unsigned long long)c->max_rec,
				(unsigned long long)r->offset);
	return 0;
}

static bool obd_sector_zero(const u8 *p)
{
	static const u8 zero[OBD_SECTOR_SIZE];

	return !memcmp(p, zero, OBD_SECTOR_SIZE);
}

/*
 * One piece of n sectors in c->buf, for LBA lba: runs of data sectors are
 * written and recorded at c->pos (one record without zero_detect), runs of
 * zero sectors (zero_detect) recorded as zeroed maps, as pcopy()'s
 * push_segment would.
 */
static int obd_commit_piece(struct obd_commit_run *c, u64 n, u64 lba, bool zero_detect)
{
	const u8 *buf = c->buf;
	u64 s = 0;
	int ret;

	while (s < n) {
		bool z = zero_detect && obd_sector_zero(buf + s * OBD_SECTOR_SIZE);
		struct obd_map r = { .offset = lba + s, .moffset = c->pos, .zeroed = z };
		u64 e = s + 1;

		while (e < n && (zero_detect && obd_sector_zero(buf + e * OBD_SECTOR_SIZE)) == z)
			e++;
		r.length = (u32)(e - s);
		if (!z) {
			ret = c->sink(c->sctx, buf + s * OBD_SECTOR_SIZE, (e - s) * OBD_SECTOR_SIZE);
			if (ret)
				return obd_errf(c->err, ret, "%s: data write failed", c->what);
			c->pos += e - s;
		}
		ret = obd_commit_record(c, &r);
		if (ret)
			return ret;
		s = e;
	}
	return 0;
}

/*
 * Map m's data, read through rd with tag in 32 KiB pieces as pcopy() reads
 * them: the pieces decide where compression later cuts the 16383-sector
 * runs.
 */
static int obd_commit_copy(struct obd_commit_run *c, const struct obd_map *m, u8 tag,
			   bool zero_detect)
{
	u64 done, n;
	int ret;

	for (done = 0; done < m->length; done += n) {
		n = m->length - done;
		if (n > OBD_COMMIT_CHUNK / OBD_SECTOR_SIZE)
			n = OBD_COMMIT_CHUNK / OBD_SECTOR_SIZE;
		ret = c->rd(c->rctx, tag, c->buf, n * OBD_SECTOR_SIZE,
			    (m->moffset + done) * OBD_SECTOR_SIZE);
		/* the texts the two commits always gave */
		if (ret && c->src)
			return obd_errf(c->err, ret, "%s: read of %s at sector %llu (+%llu) failed",
					c->what, c->src, (unsigned long long)(m->moffset + done),
					(unsigned long long)n);
		if (ret)
			return obd_errf(c->err, ret,
					"%s: read of layer %u at sector %llu (+%llu) failed",
					c->what, tag, (unsigned long long)(m->moffset + done),
					(unsigned long long)n);
		ret = obd_commit_piece(c, n, m->offset + done, zero_detect);
		if (ret)
			return ret;
	}
	return 0;
}

/* Map i follows map i - 1 and has a length of 1..OBD_MAP_MAX_LENGTH. */
static bool obd_commit_map_ok(const struct obd_map *maps, u64 i)
{
	const struct obd_map *m = &maps[i];

	return m->length && m->length <= OBD_MAP_MAX_LENGTH &&
	       !(i && obd_map_end(&maps[i - 1]) > m->offset);
}

static int obd_commit_map_bad(const struct obd_map *maps, u64 i, const char *what,
			      struct obd_err *err)
{
	return obd_errf(err, EINVAL,
			"%s: map %llu (offset %llu length %u): expected sorted, non-overlapping, length 1..%u",
			what, (unsigned long long)i, (unsigned long long)maps[i].offset,
			maps[i].length, OBD_MAP_MAX_LENGTH);
}

/*
 * The index, a page (c->blk) at a time: the records, then invalid ones up
 * to nrec (obd_lsmt_commit pads to whole pages, the warp form does not),
 * the trailer after it.
 */
static int obd_commit_end(struct obd_commit_run *c, u64 nrec, u64 *out_size)
{
	struct obd_lsmt_mapping *page = (struct obd_lsmt_mapping *)c->blk;
	const u64 per = OBD_LSMT_HT_SPACE / sizeof(*page);
	u64 i, j, k;
	int ret;

	for (i = 0; i < nrec; i += k) {
		k = nrec - i < per ? nrec - i : per;
		for (j = 0; j < k; j++) {
			if (i + j < c->x.n) {
				obd_map_encode(&c->x.v[i + j], &page[j]);
			} else {
				page[j].w0 = cpu_to_le64(OBD_MAP_INVALID_OFFSET);
				page[j].w1 = 0;
			}
		}
		ret = c->sink(c->sctx, c->blk, k * sizeof(*page));
		if (ret)
			return obd_errf(c->err, ret, "%s: index write failed", c->what);
	}
	ret = obd_commit_ht(c, OBD_LSMT_FLAGS_TRAILER, c->pos * OBD_SECTOR_SIZE, nrec, "trailer");
	if (!ret && out_size)
		*out_size = c->pos * OBD_SECTOR_SIZE + nrec * sizeof(*page) + OBD_LSMT_HT_SPACE;
	return ret;
}

/* Zeroed maps recorded, the others' data copied; tags select the source. */
static int obd_commit_maps(struct obd_commit_run *c, const struct obd_map *maps, u64 n)
{
	u64 i;
	int ret = 0;

	for (i = 0; !ret && i < n; i++) {
		const struct obd_map *m = &maps[i];
		/* all tags are 0 on disk */
		struct obd_map r = {
			.offset = m->offset, .length = m->length, .moffset = c->pos, .zeroed = 1,
		};

		if (m->zeroed)
			ret = obd_commit_record(c, &r);
		else
			ret = obd_commit_copy(c, m, m->tag, false);
	}
	return ret;
}

static int obd_commit_check(const struct obd_map *maps, u64 n, struct obd_err *err)
{
	u64 i;

	for (i = 0; i < n; i++)
		if (!obd_commit_map_ok(maps, i))
			return obd_commit_map_bad(maps, i, "commit", err);
	return 0;
}

int obd_lsmt_commit(const struct obd_map *maps, u64 n, const struct obd_commit_opts *o,
		    obd_commit_read_fn rd, void *rctx, obd_commit_sink_fn sink, void *sctx,
		    u64 *out_size, struct obd_err *err)
{
	struct obd_commit_run c;
	const u64 per = OBD_LSMT_HT_SPACE / sizeof(struct obd_lsmt_mapping);
	int ret;

	if (o->user_tag_len > OBD_LSMT_TAG_LEN)
		return obd_errf(err, ENOBUFS, "commit user tag length: got %zu, expected <= %u",
				o->user_tag_len, OBD_LSMT_TAG_LEN);
	ret = obd_commit_init(&c, "commit", o, rd, rctx, sink, sctx, err);
	if (!ret)
		ret = obd_commit_check(maps, n, err);
	if (ret)
		return ret;
	/* the index is padded to whole pages, and the padding counts */
	c.max_rec = OBD_LSMT_MAX_RO_INDEX / per * per;
	ret = obd_commit_begin(&c);
	if (!ret)
		ret = obd_commit_maps(&c, maps, n);
	if (!ret)
		ret = obd_commit_end(&c, OBD_ALIGN_UP(c.x.n, per), out_size);
	obd_commit_fini(&c);
	return ret;
}

/* ------------------------------------------------------------------------
 * Warp (TurboOCI meta) commit
 * ------------------------------------------------------------------------ */

/*
 * Tag-1 records passed through, zeroed ones recorded at the data position,
 * tag-0 data copied from rd's tag 0 (zero_detect: zero sectors recorded).
 */
static int obd_warp_maps(struct obd_commit_run *c, const struct obd_map *maps, u64 n,
			 bool zero_detect)
{
	u64 i;
	int ret = 0;

	for (i = 0; !ret && i < n; i++) {
		const struct obd_map *m = &maps[i];
		struct obd_map r = *m;

		/* the core's form (tag 0, target set) or the on-disk one (tag 1) */
		r.tag = m->tag == 1 || m->target;
		r.target = 0;
		if (m->zeroed)
			r.moffset = c->pos;
		if (r.tag == 1 || m->zeroed)
			ret = obd_commit_record(c, &r);
		else
			ret = obd_commit_copy(c, m, 0, zero_detect);
	}
	return ret;
}

static int obd_warp_check(const struct obd_map *maps, u64 n, struct obd_err *err)
{
	u64 i;

	for (i = 0; i < n; i++) {
		const struct obd_map *m = &maps[i];

		if (!obd_commit_map_ok(maps, i) ||
		    m->offset + m->length > OBD_MAP_INVALID_OFFSET)
			return obd_commit_map_bad(maps, i, "warp commit", err);
		if (m->tag > 1 || ((m->tag == 1 || m->target) && m->zeroed) ||
		    m->moffset + m->length > OBD_MAP_MOFFSET_MASK)
			return obd_errf(err, EINVAL,
					"warp commit: map %llu (offset %llu): tag %u%s moffset %llu: expected tag 0 (meta) or 1 (target, not zeroed)",
					(unsigned long long)i, (unsigned long long)m->offset, m->tag,
					m->zeroed ? " zeroed" : "", (unsigned long long)m->moffset);
	}
	return 0;
}

int obd_lsmt_commit_warp(const struct obd_map *maps, u64 n, const struct obd_commit_opts *o,
			 obd_commit_read_fn rd, void *rctx, obd_commit_sink_fn sink, void *sctx,
			 u64 *out_size, struct obd_err *err)
{
	int ret = obd_warp_check(maps, n, err);
	struct obd_commit_run c;

	if (!ret)
		ret = obd_commit_init(&c, "warp commit", o, rd, rctx, sink, sctx, err);
	if (ret)
		return ret;
	/* the warp form carries no user tag; rd's tag 0 is the meta data */
	c.user_tag = NULL;
	c.user_tag_len = 0;
	c.src = "the meta data";
	ret = obd_commit_begin(&c);
	if (!ret)
		ret = obd_warp_maps(&c, maps, n, o->zero_detect);
	if (!ret)
		ret = obd_commit_end(&c, c.x.n, out_size);
	obd_commit_fini(&c);
	return ret;
}

static int obd_rw_read_src(void *ctx, u8 tag, void *buf, size_t len, u64 off)
{
	struct obd_rw_layer *l = ctx;

	if (tag != 0)
		return -EINVAL;
	return obd_pread_all(l->data_fd, buf, len, off);
}

int obd_rw_commit(struct obd_rw_layer *l, const struct obd_commit_opts *o,
		  obd_commit_sink_fn sink, void *sctx, u64 *out_size, struct obd_err *err)
{
	struct obd_commit_opts opts = *o;
	struct obd_map *maps = NULL;
	u64 n = 0;
	int ret;

	if (!opts.vsize)
		opts.vsize = l->vsize;
	if (!opts.parent_uuid || !*opts.parent_uuid)
		opts.parent_uuid = (const char *)l->parent_uuid;
	ret = obd_rw_maps(l, &maps, &n, err);
	if (ret)
		return ret;
	ret = obd_lsmt_commit(maps, n, &opts, obd_rw_read_src, l, sink, sctx, out_size, err);
	obd_free(maps);
	return ret;
}
