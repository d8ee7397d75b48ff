// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * Userspace environment of the format core: calloc, pread-backed files,
 * memory buffers and the liblz4/libzstd block codec.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lz4.h>
#include <zstd.h>

#include "env_user.h"

#ifndef BLKGETSIZE64
#define BLKGETSIZE64 _IOR(0x12, 114, size_t)
#endif

/* Unit tests: the Nth obd_zalloc from now fails (0: none). Single-threaded use only. */
unsigned long obd_zalloc_fail_in;

void *obd_zalloc(size_t size)
{
	if (obd_zalloc_fail_in && !--obd_zalloc_fail_in)
		return NULL;
	return calloc(1, size ? size : 1);
}

void obd_free(void *p)
{
	free(p);
}

int obd_pread_all(int fd, void *buf, size_t len, u64 off)
{
	u8 *p = buf;

	while (len) {
		size_t n = len > (1u << 30) ? (1u << 30) : len;
		ssize_t r = pread(fd, p, n, (off_t)off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)	/* EOF before len: the file is shorter than checked */
			return -EIO;
		p += r;
		off += (u64)r;
		len -= (size_t)r;
	}
	return 0;
}

int obd_pwrite_all(int fd, const void *buf, size_t len, u64 off)
{
	const u8 *p = buf;

	while (len) {
		size_t n = len > (1u << 30) ? (1u << 30) : len;
		ssize_t r = pwrite(fd, p, n, (off_t)off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		p += r;
		off += (u64)r;
		len -= (size_t)r;
	}
	return 0;
}

int obd_write_all(int fd, const void *buf, size_t len)
{
	const u8 *p = buf;

	while (len) {
		ssize_t r = write(fd, p, len);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

static int obd_file_read(struct obd_io *io, void *buf, size_t len, u64 off)
{
	return obd_pread_all(((struct obd_file_io *)io)->fd, buf, len, off);
}

static int obd_file_setup(struct obd_file_io *f, int fd, const char *name, bool own,
			  struct obd_err *err)
{
	struct stat st;
	u64 size;

	memset(f, 0, sizeof(*f));
	f->fd = -1;
	if (fstat(fd, &st) < 0)
		return obd_errf(err, -errno, "%s: fstat: %s", name, strerror(errno));
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0)
			return obd_errf(err, -errno, "%s: BLKGETSIZE64: %s", name,
					strerror(errno));
	} else if (S_ISREG(st.st_mode)) {
		size = (u64)st.st_size;
	} else {
		return obd_errf(err, -EINVAL, "%s: not a regular file or block device", name);
	}
	f->io.name = strdup(name);
	if (!f->io.name)
		return obd_errf(err, -ENOMEM, "%s: out of memory", name);
	f->io.read = obd_file_read;
	f->io.size = size;
	f->fd = fd;
	f->own = own;
	return 0;
}

int obd_file_io_open(struct obd_file_io *f, const char *path, struct obd_err *err)
{
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		memset(f, 0, sizeof(*f));
		f->fd = -1;
		return obd_errf(err, ret, "%s: open: %s", path, strerror(-ret));
	}
	ret = obd_file_setup(f, fd, path, true, err);
	if (ret)
		close(fd);
	return ret;
}

int obd_file_io_from_fd(struct obd_file_io *f, int fd, const char *name,
			struct obd_err *err)
{
	return obd_file_setup(f, fd, name, false, err);
}

void obd_file_io_close(struct obd_file_io *f)
{
	if (f->own && f->fd >= 0)
		close(f->fd);
	free((void *)f->io.name);
	f->io.name = NULL;
	f->fd = -1;
}

static int obd_mem_read(struct obd_io *io, void *buf, size_t len, u64 off)
{
	struct obd_mem_io *m = (struct obd_mem_io *)io;

	if (off > io->size || len > io->size - off)
		return -EIO;
	memcpy(buf, m->buf + off, len);
	return 0;
}

void obd_mem_io_init(struct obd_mem_io *m, const void *buf, size_t len,
		     const char *name)
{
	m->io.read = obd_mem_read;
	m->io.size = len;
	m->io.name = name;
	m->buf = buf;
}

/* One zstd DCtx per thread, freed when the thread exits. */
static pthread_key_t dctx_key;
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;

static void dctx_free(void *p)
{
	ZSTD_freeDCtx(p);
}

static void dctx_key_init(void)
{
	pthread_key_create(&dctx_key, dctx_free);
}

static ZSTD_DCtx *dctx_get(void)
{
	ZSTD_DCtx *d;

	pthread_once(&dctx_once, dctx_key_init);
	d = pthread_getspecific(dctx_key);
	if (!d) {
		d = ZSTD_createDCtx();
		if (d && pthread_setspecific(dctx_key, d)) {
			ZSTD_freeDCtx(d);
			d = NULL;
		}
	}
	return d;
}

static int obd_user_decode(struct obd_codec *c, u8 algo, const void *src, size_t slen,
			   void *dst, size_t dcap)
{
	if (slen > INT_MAX || dcap > INT_MAX)
		return -EFSCORRUPTED;
	if (algo == OBD_ZFILE_ALGO_LZ4) {
		int r = LZ4_decompress_safe(src, dst, (int)slen, (int)dcap);

		return r < 0 ? -EFSCORRUPTED : r;
	}
	if (algo == OBD_ZFILE_ALGO_ZSTD) {
		ZSTD_DCtx *d = dctx_get();
		size_t r;

		if (!d)
			return -ENOMEM;
		/* Exactly one frame, nothing after it. */
		r = ZSTD_findFrameCompressedSize(src, slen);
		if (ZSTD_isError(r) || r != slen)
			return -EFSCORRUPTED;
		r = ZSTD_decompressDCtx(d, dst, dcap, src, slen);
		if (ZSTD_isError(r))
			return -EFSCORRUPTED;
		return (int)r;
	}
	return -EOPNOTSUPP;
}

struct obd_codec obd_user_codec = { .decode = obd_user_decode };
