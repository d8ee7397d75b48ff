// SPDX-License-Identifier: GPL-2.0-only
/*
 * Randomized differential test of the whole write -> commit -> read path.
 *
 * Each iteration builds a stack of 1..20 writable layers (append-mode
 * data+index or sparse), applies random writes and discards to each layer
 * and to a per-sector model at the same time, reopens every layer and
 * compares its rebuilt index with the model, commits it (obd_rw_commit,
 * obd_lsmt_commit or sealing; plain, ZFile lz4/zstd 4..64 KiB, with or
 * without the tar wrapper), then opens the committed stack like a reader
 * does (obd_layer_open, obd_index_merge, obd_index_walk) and compares the
 * whole virtual disk and random sub-ranges with the model byte for byte.
 * Some iterations also flatten the merged stack into one layer.
 *
 * Sparse layers are modelled at the file system's allocation granularity
 * (probed at start): a write allocates whole blocks, so the unwritten
 * sectors of a touched block become zero data that hides lower layers; a
 * discard frees only whole blocks (they fall through, spec 2.6b and 10.10)
 * and zeroes the partial ones.
 *
 * Every iteration prints its own seed: OBD_SEED=<n> replays exactly that
 * iteration (one iteration unless OBD_ITERS says otherwise). OBD_ITERS sets
 * the number of iterations, OBD_KEEP=1 keeps the files, OBD_TRACE=1 prints
 * every write and discard (to minimize a failing seed).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

#include "obd.h"
#include "env_user.h"
#include "lsmt_rw.h"
#include "lsmt_write.h"
#include "zfile_write.h"
#include "tar_write.h"
#include "tap.h"
#include "testutil.h"

#define SECT		512u
#define MAX_LAYERS	20
#define CHUNK_SECT	2048u		/* device read piece: 1 MiB */

/* Per-sector model states; anything >= ST_DATA0 is a write stamp. */
#define ST_NONE		0u	/* unwritten, or a sparse hole: falls through */
#define ST_ZERO		1u	/* zeroed record: reads zero, hides lower layers */
#define ST_ZDATA	2u	/* allocated zero data (sparse block): hides lower */
#define ST_DATA0	3u

/* ------------------------------------------------------------------------
 * Deterministic randomness
 * ------------------------------------------------------------------------ */
static bool chance(unsigned int pct)
{
	return rnd() % 100 < pct;
}

/* ------------------------------------------------------------------------
 * Sector content: a function of the write stamp and the LBA, so the model
 * needs 4 bytes per sector and a mismatch tells who wrote what was read.
 * ------------------------------------------------------------------------ */
static void fill_sector(u8 *d, u32 st, u64 lba)
{
	u64 s, i;

	if (st < ST_DATA0) {
		memset(d, 0, SECT);
		return;
	}
	s = ((u64)st << 32) ^ lba;
	switch (st % 3) {
	case 0:		/* incompressible */
		for (i = 0; i < SECT; i += 8) {
			u64 w = splitmix(&s);

			memcpy(d + i, &w, 8);
		}
		break;
	case 1:		/* compressible pattern */
		memset(d, (int)((st * 7 + lba) & 0xff), SECT);
		break;
	default:	/* mostly zero */
		memset(d, 0, SECT);
		break;
	}
	obd_put_le32(d, st);
	obd_put_le64(d + 4, lba);
	obd_put_le32(d + 12, 0x0BDD1FF0);
}

/* ------------------------------------------------------------------------
 * Model
 * ------------------------------------------------------------------------ */
struct mlayer {
	bool sparse;
	u64 vsize;		/* bytes, as created */
	u64 fsize;		/* sparse: data file size */
	u32 *st;		/* nsect_max entries */
	/* on disk */
	char data[300], index[300], out[300];
	int method;		/* commit method, for messages */
	int wrap;		/* OBD_WRAP_* expected */
	u8 algo;
	u32 bs;
};

struct iter {
	u64 seed;
	int no;
	u64 nsect;		/* model array length: max vsize in sectors */
	int nl;
	struct mlayer L[MAX_LAYERS];
	u32 stamp;
	int fails;		/* failures in this iteration */
};

static char tmpdir[256];
static bool trace;		/* OBD_TRACE=1: print every op (minimizing a failure) */
static bool keep;		/* OBD_KEEP=1: leave the files of every iteration */
static u64 fs_gran;		/* sparse allocation granularity, 0: no sparse */
static u8 *gbuf;		/* scratch: write buffer / expected */
static u8 *gbuf2;		/* scratch: read back */
#define GBUF_BYTES	(12u << 20)

static void fill_range(u8 *d, const u32 *st, u64 lba, u64 n)
{
	u64 i;

	for (i = 0; i < n; i++)
		fill_sector(d + i * SECT, st[i], lba + i);
}

/* Sparse: mark the allocation blocks touched by [lba, lba+n) allocated. */
static void sparse_alloc(struct mlayer *m, u64 lba, u64 n, u64 lim)
{
	u64 fb = (4096 + lba * SECT) / fs_gran * fs_gran;
	u64 fe = OBD_ALIGN_UP(4096 + (lba + n) * SECT, fs_gran);
	u64 s, e, i;

	s = fb <= 4096 ? 0 : (fb - 4096) / SECT;
	e = (fe - 4096) / SECT;
	if (e > lim)
		e = lim;
	for (i = s; i < e; i++)
		if (m->st[i] == ST_NONE)
			m->st[i] = ST_ZDATA;
}

static u64 sparse_lim(const struct iter *it, const struct mlayer *m)
{
	u64 l = (m->fsize - 4096) / SECT;

	return l < it->nsect ? l : it->nsect;
}

static void model_write(struct iter *it, struct mlayer *m, u64 lba, u64 n, u32 stamp)
{
	u64 i;

	if (m->sparse) {
		if (4096 + (lba + n) * SECT > m->fsize)
			m->fsize = 4096 + (lba + n) * SECT;
		/* whole blocks, also past EOF: they show once the file grows */
		sparse_alloc(m, lba, n, it->nsect);
	}
	for (i = 0; i < n; i++)
		m->st[lba + i] = stamp;
}

static void model_discard(struct iter *it, struct mlayer *m, u64 lba, u64 n)
{
	u64 i;

	if (!m->sparse) {
		for (i = 0; i < n; i++)
			m->st[lba + i] = ST_ZERO;
		return;
	}
	/* Whole blocks inside the range become holes, partial ones are zeroed. */
	for (i = lba; i < lba + n && i < it->nsect; i++) {
		u64 off = 4096 + i * SECT;
		u64 bb = off / fs_gran * fs_gran, be = bb + fs_gran;
		u64 rb = 4096 + lba * SECT, re = 4096 + (lba + n) * SECT;

		/* A punch that ends exactly at EOF zeroes a partial tail block, it
		 * does not free it (ext4, tmpfs). */
		if (bb >= rb && be <= re)
			m->st[i] = ST_NONE;
		else if (m->st[i] != ST_NONE)
			m->st[i] = ST_ZDATA;
	}
}

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */
static void fail_at(struct iter *it, const char *what, u64 sect, int layer, u32 want,
		    const u8 *got)
{
	it->fails++;
	tap_diag("MISMATCH seed 0x%llx iter %d: %s: first differing sector %llu, model owner layer %d (%s), model state %u, read stamp %u lba %llu",
		 (unsigned long long)it->seed, it->no, what, (unsigned long long)sect, layer,
		 layer >= 0 ? (it->L[layer].sparse ? "sparse" : "append") : "-", want,
		 obd_get_le32(got), (unsigned long long)obd_get_le64(got + 4));
}

static int pread_full(int fd, void *buf, size_t len, u64 off)
{
	u8 *p = buf;

	while (len) {
		ssize_t r = pread(fd, p, len, (off_t)off);

		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		p += r;
		len -= (size_t)r;
		off += (u64)r;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Building one layer
 * ------------------------------------------------------------------------ */
static int apply_ops(struct iter *it, int li, struct obd_rw_layer *rw, int nops)
{
	struct mlayer *m = &it->L[li];
	u64 lim = m->vsize ? m->vsize / SECT : it->nsect;
	struct obd_err err = { { 0 } };
	int k, ret;

	if (lim > it->nsect)
		lim = it->nsect;
	for (k = 0; k < nops; k++) {
		u64 lba, n, r = rnd() % 100;

		if (r < 8 && lim > 16383 + 2) {
			/* straddle a 16383-sector boundary */
			u64 b = 16383 * rnd_in(1, lim / 16383);

			if (b >= lim)
				b = 16383;
			lba = b - rnd_in(1, b < 64 ? b : 64);
			n = rnd_in(1, 200);
		} else if (r < 14) {
			n = rnd_in(8192, 12288);	/* > 4 MiB: split writes */
			lba = rnd() % lim;
		} else if (r < 40) {
			n = rnd_in(1, 16);
			lba = rnd() % lim;
		} else {
			n = rnd_in(1, 2048);
			lba = rnd() % lim;
		}
		if (n > lim)
			n = lim;
		if (lba + n > lim)
			lba = lim - n;
		if (chance(25)) {
			/* discards: sometimes whole allocation blocks, so sparse holes appear */
			if (m->sparse && chance(50) && fs_gran) {
				u64 g = fs_gran / SECT;
				u64 a = OBD_ALIGN_UP(lba + 8, g) - 8;

				if (a < lim) {
					lba = a;
					n = OBD_ALIGN_UP(n, g);
					if (lba + n > lim)
						n = lim - lba;
				}
			}
			/* past EOF of a growing (vsize 0) sparse file: file system details */
			if (m->sparse && 4096 + (lba + n) * SECT > m->fsize) {
				if (4096 + lba * SECT >= m->fsize)
					continue;
				n = (m->fsize - 4096) / SECT - lba;
			}
			ret = obd_rw_discard(rw, lba * SECT, n * SECT, &err);
			if (ret) {
				tap_diag("seed 0x%llx iter %d layer %d: discard %llu+%llu: %s",
					 (unsigned long long)it->seed, it->no, li,
					 (unsigned long long)lba, (unsigned long long)n, err.msg);
				return ret;
			}
			model_discard(it, m, lba, n);
			if (trace)
				tap_diag("layer %d discard lba %llu n %llu", li,
					 (unsigned long long)lba, (unsigned long long)n);
		} else {
			u32 stamp = it->stamp++;
			u64 i;

			for (i = 0; i < n; i++)
				fill_sector(gbuf + i * SECT, stamp, lba + i);
			ret = obd_rw_write(rw, gbuf, n * SECT, lba * SECT, &err);
			if (ret) {
				tap_diag("seed 0x%llx iter %d layer %d: write %llu+%llu: %s",
					 (unsigned long long)it->seed, it->no, li,
					 (unsigned long long)lba, (unsigned long long)n, err.msg);
				return ret;
			}
			model_write(it, m, lba, n, stamp);
			if (trace)
				tap_diag("layer %d write lba %llu n %llu stamp %u", li,
					 (unsigned long long)lba, (unsigned long long)n, stamp);
		}
	}
	return 0;
}

/* Compare an RW layer's rebuilt index and data with its model. */
static int check_rw(struct iter *it, int li, struct obd_rw_layer *rw)
{
	struct mlayer *m = &it->L[li];
	struct obd_err err = { { 0 } };
	struct obd_map *maps = NULL;
	u64 n = 0, i, pos = 0, s;
	int ret;

	ret = obd_rw_maps(rw, &maps, &n, &err);
	if (ret) {
		tap_diag("seed 0x%llx iter %d layer %d: obd_rw_maps: %s",
			 (unsigned long long)it->seed, it->no, li, err.msg);
		return ret;
	}
	ret = 0;
	for (i = 0; i <= n && !ret; i++) {
		u64 end = i < n ? maps[i].offset : it->nsect;

		if (i < n && (maps[i].length == 0 || maps[i].length > OBD_MAP_MAX_LENGTH ||
			      maps[i].offset < pos)) {
			tap_diag("layer %d map %llu: offset %llu length %u after %llu: not sorted/bounded",
				 li, (unsigned long long)i, (unsigned long long)maps[i].offset,
				 maps[i].length, (unsigned long long)pos);
			ret = -1;
			break;
		}
		if (end > it->nsect)
			end = it->nsect;
		for (s = pos; s < end; s++)
			if (m->st[s] != ST_NONE) {
				memset(gbuf2, 0, SECT);
				fail_at(it, "RW reopen: model has data, layer has a hole", s, li,
					m->st[s], gbuf2);
				ret = -1;
				break;
			}
		if (ret || i == n)
			break;
		if (obd_map_end(&maps[i]) > it->nsect) {
			tap_diag("layer %d map %llu ends at %llu past the model (%llu sectors)", li,
				 (unsigned long long)i, (unsigned long long)obd_map_end(&maps[i]),
				 (unsigned long long)it->nsect);
			ret = -1;
			break;
		}
		if (maps[i].zeroed) {
			for (s = maps[i].offset; s < obd_map_end(&maps[i]); s++)
				if (m->st[s] != ST_ZERO) {
					memset(gbuf2, 0, SECT);
					fail_at(it, "RW reopen: layer has a zeroed record", s, li,
						m->st[s], gbuf2);
					ret = -1;
					break;
				}
		} else {
			u64 len = (u64)maps[i].length * SECT;

			ret = pread_full(rw->data_fd, gbuf2, len, maps[i].moffset * SECT);
			if (ret) {
				tap_diag("layer %d: data read at sector %llu: %d", li,
					 (unsigned long long)maps[i].moffset, ret);
				break;
			}
			fill_range(gbuf, m->st + maps[i].offset, maps[i].offset, maps[i].length);
			for (s = 0; s < maps[i].length; s++) {
				u32 w = m->st[maps[i].offset + s];

				if (w == ST_NONE || w == ST_ZERO ||
				    memcmp(gbuf + s * SECT, gbuf2 + s * SECT, SECT)) {
					fail_at(it, "RW reopen: data", maps[i].offset + s, li, w,
						gbuf2 + s * SECT);
					ret = -1;
					break;
				}
			}
		}
		pos = obd_map_end(&maps[i]);
	}
	obd_free(maps);
	return ret;
}

/* Sequential sink: plain file (pwrite at base + pos) or a ZFile writer. */
struct sink {
	int fd;
	u64 base, pos;
	struct obd_zfile_writer *zw;
	struct obd_err *err;
};

static int sink_fn(void *ctx, const void *buf, size_t len)
{
	struct sink *s = ctx;
	const u8 *p = buf;

	if (s->zw)
		return obd_zfile_writer_write(s->zw, buf, len, s->err);
	while (len) {
		ssize_t r = pwrite(s->fd, p, len, (off_t)(s->base + s->pos));

		if (r < 0)
			return -errno;
		p += r;
		len -= (size_t)r;
		s->pos += (u64)r;
	}
	return 0;
}

static int rw_read_fn(void *ctx, u8 tag, void *buf, size_t len, u64 off)
{
	struct obd_rw_layer *rw = ctx;

	return tag ? -EINVAL : pread_full(rw->data_fd, buf, len, off);
}

/* Open the output and the wrapping chosen in m; returns the fd. */
static int out_begin(struct mlayer *m, struct sink *s, struct obd_zfile_writer *zw,
		     struct obd_err *err)
{
	int fd = open(m->out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ret;

	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->err = err;
	if (fd < 0)
		return obd_errf(err, errno, "%s: create failed", m->out);
	if (m->wrap & OBD_WRAP_TAR) {
		ret = obd_tar_write_begin(fd, err);
		if (ret)
			return ret;
		s->base = OBD_TAR_PAX_PAYLOAD;
	}
	if (m->wrap & OBD_WRAP_ZFILE) {
		ret = obd_zfile_writer_init(zw, fd, s->base, m->algo, m->bs, !chance(10),
					    chance(70), err);
		if (ret)
			return ret;
		s->zw = zw;
	}
	return 0;
}

static int out_finish(struct mlayer *m, struct sink *s, int ret, struct obd_err *err)
{
	u64 payload = s->pos;

	if (s->zw) {
		if (ret) {
			obd_zfile_writer_abort(s->zw);
		} else {
			s64 z = obd_zfile_writer_finish(s->zw, err);

			if (z < 0)
				ret = (int)z;
			else
				payload = (u64)z;
		}
	}
	if (!ret && (m->wrap & OBD_WRAP_TAR)) {
		s64 t = obd_tar_write_finish(s->fd, payload, err);

		if (t < 0)
			ret = (int)t;
	}
	if (s->fd >= 0)
		close(s->fd);
	return ret;
}

static const char *const method_names[] = { "obd_rw_commit", "obd_lsmt_commit", "seal" };

/* Commit layer li (open in rw) into m->out; closes rw. */
static int commit_layer(struct iter *it, int li, struct obd_rw_layer *rw, struct obd_err *err)
{
	struct mlayer *m = &it->L[li];
	struct obd_commit_opts o = { 0 };
	struct obd_zfile_writer zw;
	struct sink s;
	int ret;

	m->method = (int)(rnd() % 3);
	if (m->method == 2 && m->sparse)
		m->method = 0;
	m->wrap = 0;
	if (chance(65))
		m->wrap |= OBD_WRAP_ZFILE;
	if (chance(35))
		m->wrap |= OBD_WRAP_TAR;
	m->algo = chance(50) ? OBD_ZFILE_ALGO_LZ4 : OBD_ZFILE_ALGO_ZSTD;
	m->bs = 4096u << rnd_in(0, 4);

	if (m->method == 2) {
		int in, outfd;
		s64 z;

		ret = obd_rw_seal(rw, err);
		if (ret)
			return ret;
		if (!m->wrap) {
			snprintf(m->out, sizeof(m->out), "%s", m->data);
			return 0;
		}
		/* A sealed file is a valid lower layer: compress it as a whole. */
		in = open(m->data, O_RDONLY | O_CLOEXEC);
		outfd = open(m->out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (in < 0 || outfd < 0) {
			ret = obd_errf(err, errno, "%s: open failed", m->out);
			goto out_sealed;
		}
		if (m->wrap & OBD_WRAP_TAR) {
			ret = obd_tar_write_begin(outfd, err);
			if (ret)
				goto out_sealed;
		}
		if (m->wrap & OBD_WRAP_ZFILE) {
			z = obd_zfile_compress_fd(in, outfd, (m->wrap & OBD_WRAP_TAR) ?
						  OBD_TAR_PAX_PAYLOAD : 0, m->algo, m->bs,
						  true, chance(50), NULL, NULL, err);
		} else {
			/* tar around the raw sealed file */
			u64 off = 0;
			ssize_t r;

			while ((r = pread(in, gbuf, GBUF_BYTES, (off_t)off)) > 0) {
				if (pwrite(outfd, gbuf, (size_t)r,
					   (off_t)(OBD_TAR_PAX_PAYLOAD + off)) != r) {
					r = -1;
					break;
				}
				off += (u64)r;
			}
			z = r < 0 ? -EIO : (s64)off;
		}
		ret = z < 0 ? (int)z : 0;
		if (!ret && (m->wrap & OBD_WRAP_TAR)) {
			s64 t = obd_tar_write_finish(outfd, (u64)z, err);

			ret = t < 0 ? (int)t : 0;
		}
out_sealed:
		if (in >= 0)
			close(in);
		if (outfd >= 0)
			close(outfd);
		return ret;
	}

	ret = out_begin(m, &s, &zw, err);
	if (ret) {
		if (s.zw)
			obd_zfile_writer_abort(s.zw);
		if (s.fd >= 0)
			close(s.fd);
		obd_rw_close(rw, NULL);
		return ret;
	}
	if (m->method == 0) {
		ret = obd_rw_commit(rw, &o, sink_fn, &s, NULL, err);
	} else {
		struct obd_map *maps = NULL;
		u64 n = 0;

		o.vsize = rw->vsize;
		o.parent_uuid = (const char *)rw->parent_uuid;
		ret = obd_rw_maps(rw, &maps, &n, err);
		if (!ret)
			ret = obd_lsmt_commit(maps, n, &o, rw_read_fn, rw, sink_fn, &s, NULL, err);
		obd_free(maps);
	}
	ret = out_finish(m, &s, ret, err);
	if (ret) {
		obd_rw_close(rw, NULL);
		return ret;
	}
	return obd_rw_close(rw, err);
}

static int build_layer(struct iter *it, int li)
{
	struct mlayer *m = &it->L[li];
	struct obd_rw_layer rw;
	struct obd_err err = { { 0 } };
	int sessions = (int)rnd_in(1, 3), k, ret;

	snprintf(m->data, sizeof(m->data), "%s/i%d-l%02d.data", tmpdir, it->no, li);
	snprintf(m->index, sizeof(m->index), "%s/i%d-l%02d.index", tmpdir, it->no, li);
	snprintf(m->out, sizeof(m->out), "%s/i%d-l%02d.commit", tmpdir, it->no, li);
	ret = obd_rw_create(&rw, m->data, m->sparse ? NULL : m->index, m->vsize, NULL, m->sparse,
			    &err);
	if (ret)
		goto out_err;
	m->fsize = m->vsize + 4096;
	if (m->sparse && fs_gran > 4096)
		sparse_alloc(m, 0, 0, it->nsect);	/* shares the header's block */
	if (trace)
		tap_diag("layer %d: %s vsize %llu, %d sessions", li, m->sparse ? "sparse" : "append",
			 (unsigned long long)m->vsize, sessions);
	for (k = 0; k < sessions; k++) {
		if (k) {
			if (trace)
				tap_diag("layer %d: close, reopen", li);
			ret = obd_rw_close(&rw, &err);
			if (!ret)
				ret = obd_rw_open(&rw, m->data, m->sparse ? NULL : m->index, &err);
			if (ret)
				goto out_err;
		}
		ret = apply_ops(it, li, &rw, (int)rnd_in(0, 25));
		if (ret) {
			obd_rw_close(&rw, NULL);
			return ret;
		}
	}
	if (m->sparse) {
		u64 s;

		for (s = sparse_lim(it, m); s < it->nsect; s++)
			m->st[s] = ST_NONE;	/* past EOF */
	}
	ret = obd_rw_close(&rw, &err);
	if (!ret)
		ret = obd_rw_open(&rw, m->data, m->sparse ? NULL : m->index, &err);
	if (ret)
		goto out_err;
	if (rw.sparse != m->sparse || rw.vsize != m->vsize) {
		tap_diag("layer %d reopened: sparse %d vsize %llu, expected %d %llu", li, rw.sparse,
			 (unsigned long long)rw.vsize, m->sparse, (unsigned long long)m->vsize);
		obd_rw_close(&rw, NULL);
		return -1;
	}
	ret = check_rw(it, li, &rw);
	if (ret) {
		obd_rw_close(&rw, NULL);
		return ret;
	}
	ret = commit_layer(it, li, &rw, &err);
	if (ret)
		goto out_err;
	return 0;

out_err:
	tap_diag("seed 0x%llx iter %d layer %d (%s): %s", (unsigned long long)it->seed, it->no, li,
		 m->sparse ? "sparse" : "append", err.msg);
	return ret ? ret : -1;
}

/* ------------------------------------------------------------------------
 * Reading the committed stack
 * ------------------------------------------------------------------------ */
struct rd_ctx {
	struct obd_layer *lay;
	unsigned int nl;
	u8 *dst;
	u64 base;		/* LBA of dst[0] */
};

static int piece_fn(void *ctx, u64 lba, u64 nsect, const struct obd_map *m, u64 moff)
{
	struct rd_ctx *c = ctx;
	u8 *d = c->dst + (lba - c->base) * SECT;

	if (!m || m->zeroed) {
		memset(d, 0, nsect * SECT);
		return 0;
	}
	if (m->tag >= c->nl)
		return -EINVAL;
	return obd_io_read(c->lay[m->tag].lsmt_io, d, nsect * SECT, moff * SECT);
}

/* Model of the merged device: owner layer per sector (-1: nobody). */
static int owner_of(const struct iter *it, u64 s, u32 *st)
{
	int i;

	for (i = it->nl - 1; i >= 0; i--) {
		if (it->L[i].st[s] != ST_NONE) {
			*st = it->L[i].st[s];
			return i;
		}
	}
	*st = ST_NONE;
	return -1;
}

static int compare_range(struct iter *it, const struct obd_index *idx, struct rd_ctx *c,
			 u64 lba, u64 n, const char *what)
{
	u64 s;
	int ret;

	c->dst = gbuf2;
	c->base = lba;
	ret = obd_index_walk(idx, lba, n, piece_fn, c);
	if (ret) {
		tap_diag("seed 0x%llx iter %d: %s: walk/read %llu+%llu failed: %d",
			 (unsigned long long)it->seed, it->no, what, (unsigned long long)lba,
			 (unsigned long long)n, ret);
		it->fails++;
		return ret;
	}
	for (s = 0; s < n; s++) {
		u32 st;
		int o = owner_of(it, lba + s, &st);

		fill_sector(gbuf, st, lba + s);
		if (memcmp(gbuf, gbuf2 + s * SECT, SECT)) {
			fail_at(it, what, lba + s, o, st, gbuf2 + s * SECT);
			return -1;
		}
	}
	return 0;
}

static int compare_device(struct iter *it, struct obd_layer *lay, unsigned int nl,
			  const struct obd_index *idx, u64 vsect, const char *what)
{
	struct rd_ctx c = { .lay = lay, .nl = nl };
	u64 lba;
	int k, ret;

	for (lba = 0; lba < vsect; lba += CHUNK_SECT) {
		u64 n = vsect - lba < CHUNK_SECT ? vsect - lba : CHUNK_SECT;

		ret = compare_range(it, idx, &c, lba, n, what);
		if (ret)
			return ret;
	}
	for (k = 0; k < 24 && vsect; k++) {
		u64 a = rnd() % vsect;
		u64 n = rnd_in(1, chance(30) ? 20000 : 64);

		if (n > vsect - a)
			n = vsect - a;
		ret = compare_range(it, idx, &c, a, n, what);
		if (ret)
			return ret;
	}
	return 0;
}

struct flat_rd {
	struct obd_layer *lay;
	unsigned int nl;
};

static int flat_read_fn(void *ctx, u8 tag, void *buf, size_t len, u64 off)
{
	struct flat_rd *f = ctx;

	if (tag >= f->nl)
		return -EINVAL;
	return obd_io_read(f->lay[tag].lsmt_io, buf, len, off);
}

/* Flatten the merged stack into one committed layer and compare it too. */
static int check_flatten(struct iter *it, struct obd_layer *lay, unsigned int nl,
			 const struct obd_index *idx, u64 vsize)
{
	struct mlayer fm = { 0 };
	struct obd_commit_opts o = { .vsize = vsize };
	struct flat_rd f = { lay, nl };
	struct obd_zfile_writer zw;
	struct obd_err err = { { 0 } };
	struct obd_file_io fio;
	struct obd_layer fl;
	struct obd_index fidx = { 0 };
	const struct obd_map *mp;
	u64 cnt;
	struct sink s;
	int ret;

	snprintf(fm.out, sizeof(fm.out), "%s/flat%d", tmpdir, it->no);
	fm.wrap = chance(50) ? OBD_WRAP_ZFILE : 0;
	fm.algo = chance(50) ? OBD_ZFILE_ALGO_LZ4 : OBD_ZFILE_ALGO_ZSTD;
	fm.bs = 4096u << rnd_in(0, 4);
	ret = out_begin(&fm, &s, &zw, &err);
	if (!ret)
		ret = obd_lsmt_commit(idx->maps, idx->n, &o, flat_read_fn, &f, sink_fn, &s, NULL,
				      &err);
	ret = out_finish(&fm, &s, ret, &err);
	if (!ret)
		ret = obd_file_io_open(&fio, fm.out, &err);
	if (ret) {
		tap_diag("seed 0x%llx iter %d: flatten: %s", (unsigned long long)it->seed, it->no,
			 err.msg);
		it->fails++;
		return ret;
	}
	ret = obd_layer_open(&fl, &fio.io, &obd_user_codec, &err);
	if (ret) {
		tap_diag("seed 0x%llx iter %d: flattened layer open: %s",
			 (unsigned long long)it->seed, it->no, err.msg);
		it->fails++;
		goto out_io;
	}
	mp = fl.maps;
	cnt = fl.nmaps;
	ret = obd_index_merge(&mp, &cnt, 1, &fidx, &err);
	if (ret) {
		tap_diag("flatten merge: %s", err.msg);
		it->fails++;
		goto out_layer;
	}
	if (fl.info.virtual_size != vsize) {
		tap_diag("flattened vsize %llu, expected %llu",
			 (unsigned long long)fl.info.virtual_size, (unsigned long long)vsize);
		it->fails++;
		ret = -1;
	} else {
		ret = compare_device(it, &fl, 1, &fidx, vsize / SECT, "flattened stack");
	}
	obd_index_free(&fidx);
out_layer:
	obd_layer_close(&fl);
out_io:
	obd_file_io_close(&fio);
	if (!keep)
		unlink(fm.out);
	return ret;
}

static int check_stack(struct iter *it)
{
	struct obd_layer lay[MAX_LAYERS];
	struct obd_file_io fio[MAX_LAYERS];
	const struct obd_map *mp[MAX_LAYERS];
	const struct obd_layer *lp[MAX_LAYERS];
	u64 cnt[MAX_LAYERS], vsize = 0;
	struct obd_index idx = { 0 };
	struct obd_err err = { { 0 } };
	int i, opened = 0, ret = 0;

	for (i = 0; i < it->nl; i++) {
		struct mlayer *m = &it->L[i];

		ret = obd_file_io_open(&fio[i], m->out, &err);
		if (ret)
			break;
		ret = obd_layer_open(&lay[i], &fio[i].io, &obd_user_codec, &err);
		if (ret) {
			obd_file_io_close(&fio[i]);
			break;
		}
		opened++;
		if (lay[i].wrap != (unsigned int)m->wrap ||
		    lay[i].info.virtual_size != m->vsize) {
			tap_diag("layer %d: wrap %u vsize %llu, expected %u %llu", i, lay[i].wrap,
				 (unsigned long long)lay[i].info.virtual_size, m->wrap,
				 (unsigned long long)m->vsize);
			ret = -1;
			break;
		}
		mp[i] = lay[i].maps;
		cnt[i] = lay[i].nmaps;
		lp[i] = &lay[i];
		if (m->vsize)
			vsize = m->vsize;
	}
	if (ret) {
		tap_diag("seed 0x%llx iter %d: open committed layer %d (%s, %s, wrap %d algo %u bs %u): %s",
			 (unsigned long long)it->seed, it->no, i,
			 it->L[i].sparse ? "sparse" : "append", method_names[it->L[i].method],
			 it->L[i].wrap, it->L[i].algo, it->L[i].bs, err.msg);
		it->fails++;
		goto out_close;
	}
	if (obd_stack_vsize(lp, (unsigned int)it->nl) != vsize) {
		tap_diag("seed 0x%llx iter %d: stack vsize %llu, expected %llu",
			 (unsigned long long)it->seed, it->no,
			 (unsigned long long)obd_stack_vsize(lp, (unsigned int)it->nl),
			 (unsigned long long)vsize);
		it->fails++;
		ret = -1;
		goto out_close;
	}
	ret = obd_index_merge(mp, cnt, (unsigned int)it->nl, &idx, &err);
	if (ret) {
		tap_diag("seed 0x%llx iter %d: merge: %s", (unsigned long long)it->seed, it->no,
			 err.msg);
		it->fails++;
		goto out_close;
	}
	ret = compare_device(it, lay, (unsigned int)it->nl, &idx, vsize / SECT, "merged stack");
	if (!ret && chance(35))
		ret = check_flatten(it, lay, (unsigned int)it->nl, &idx, vsize);
	obd_index_free(&idx);
out_close:
	for (i = 0; i < opened; i++) {
		obd_layer_close(&lay[i]);
		obd_file_io_close(&fio[i]);
	}
	return ret;
}

/* ------------------------------------------------------------------------
 * One iteration
 * ------------------------------------------------------------------------ */
static void run_iter(u64 seed, int no)
{
	struct iter *it = calloc(1, sizeof(*it));
	u64 vs, maxv = 0;
	int i, nsparse = 0, ret = 0;
	char desc[160];

	if (!it) {
		tap_ok(0, "iteration %d: out of memory", no);
		return;
	}
	it->seed = seed;
	it->no = no;
	it->stamp = ST_DATA0;
	rng_state = seed;
	/* Sizes: mostly small (fast), sometimes up to 64 MiB, sometimes odd. */
	if (chance(15))
		vs = rnd_in(16, 64) << 20;
	else if (chance(50))
		vs = rnd_in(1, 16) << 20;
	else
		vs = rnd_in(64, 2048) * 4096;
	if (chance(40))
		vs += rnd_in(1, 7) * SECT;	/* not a multiple of 4 KiB */
	it->nl = chance(20) ? (int)rnd_in(10, MAX_LAYERS) : (int)rnd_in(1, 6);
	for (i = 0; i < it->nl; i++) {
		struct mlayer *m = &it->L[i];

		m->sparse = fs_gran && chance(50);
		nsparse += m->sparse;
		m->vsize = vs;
		/* resized layers, and (above the bottom) layers with vsize 0 */
		if (chance(10))
			m->vsize = rnd_in(1, vs / SECT) * SECT;
		else if (i && chance(5))
			m->vsize = 0;
		if (m->vsize > maxv)
			maxv = m->vsize;
	}
	it->nsect = maxv / SECT;
	if (!it->nsect)
		it->nsect = 1;
	/* fix the stack size in the model: the top-most non-zero vsize wins */
	for (i = 0; i < it->nl; i++) {
		it->L[i].st = calloc(it->nsect, sizeof(u32));
		if (!it->L[i].st) {
			tap_ok(0, "iteration %d: out of memory", no);
			goto out_free;
		}
	}
	/* vsize 0 layers may be written anywhere in the model range */
	for (i = 0; i < it->nl && !ret; i++)
		ret = build_layer(it, i);
	if (ret)
		it->fails++;
	else
		check_stack(it);

	snprintf(desc, sizeof(desc), "seed 0x%llx iter %d: %d layers (%d sparse), vsize %llu",
		 (unsigned long long)seed, no, it->nl, nsparse, (unsigned long long)vs);
	tap_ok(it->fails == 0, "%s", desc);
out_free:
	for (i = 0; i < it->nl; i++) {
		free(it->L[i].st);
		if (it->L[i].data[0] && !keep) {
			unlink(it->L[i].data);
			unlink(it->L[i].index);
			unlink(it->L[i].out);
		}
	}
	free(it);
}

/* Allocation granularity of sparse files in tmpdir (0 if holes are not kept). */
static u64 probe_granularity(void)
{
	char p[300];
	u64 g = 0;
	off_t b, e;
	int fd;
	u8 x[512];

	snprintf(p, sizeof(p), "%s/probe", tmpdir);
	fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return 0;
	memset(x, 0xAB, sizeof(x));
	if (ftruncate(fd, 4 << 20) == 0 && pwrite(fd, x, sizeof(x), (2 << 20) + 1536) == 512 &&
	    fsync(fd) == 0) {
		b = lseek(fd, 0, SEEK_DATA);
		e = b >= 0 ? lseek(fd, b, SEEK_HOLE) : -1;
		if (b >= 0 && e > b) {
			g = (u64)(e - b);
			if ((g & (g - 1)) || g < 512 || g > (1 << 20) || (u64)b % g ||
			    (u64)b > (2 << 20) + 1536 || (u64)e < (2 << 20) + 2048)
				g = 0;
		}
	}
	close(fd);
	unlink(p);
	return g;
}

int main(void)
{
	const char *es = getenv("OBD_SEED"), *ei = getenv("OBD_ITERS"), *tmp = getenv("TMPDIR");
	u64 base, st;
	int iters, i;

	if (es) {
		base = strtoull(es, NULL, 0);
		iters = ei ? atoi(ei) : 1;
	} else {
		if (getrandom(&base, sizeof(base), 0) != sizeof(base))
			base = (u64)time(NULL) ^ ((u64)getpid() << 32);
		iters = ei ? atoi(ei) : 12;
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s/obd-diff-XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	gbuf = malloc(GBUF_BYTES);
	gbuf2 = malloc(GBUF_BYTES);
	if (!gbuf || !gbuf2)
		return 1;
	fs_gran = probe_granularity();
	trace = getenv("OBD_TRACE") != NULL;
	keep = getenv("OBD_KEEP") != NULL;
	printf("# OBD_SEED=0x%llx, %d iterations; each iteration's seed replays it alone\n",
	       (unsigned long long)base, iters);
	tap_ok(fs_gran != 0, "sparse files keep holes in %s (allocation granularity %llu; else set TMPDIR)",
	       tmpdir, (unsigned long long)fs_gran);
	st = base;
	for (i = 0; i < iters; i++)	/* iteration 0 runs the seed itself: a printed seed replays alone */
		run_iter(i ? splitmix(&st) : base, i);
	free(gbuf);
	free(gbuf2);
	if (keep)
		printf("# files kept in %s\n", tmpdir);
	else
		rmdir(tmpdir);
	return tap_done();
}
