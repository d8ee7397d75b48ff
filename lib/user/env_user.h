/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Userspace environment of the format core: allocation, a file-backed
 * struct obd_io (pread), and the LZ4/zstd block codec (liblz4, libzstd).
 */
#ifndef OBD_ENV_USER_H
#define OBD_ENV_USER_H

#include "obd.h"

struct obd_file_io {
	struct obd_io io;	/* io.name = the path (owned copy) */
	int fd;
	bool own;	/* close fd in obd_file_io_close */
};

/*
 * Open path read-only (O_CLOEXEC); io.size is the file size, or the device
 * size for a block device. Returns 0 or -errno with err naming the path.
 */
int obd_file_io_open(struct obd_file_io *f, const char *path, struct obd_err *err);
/* Wrap an already open fd (not closed by obd_file_io_close if !own). */
int obd_file_io_from_fd(struct obd_file_io *f, int fd, const char *name,
			struct obd_err *err);
void obd_file_io_close(struct obd_file_io *f);

/*
 * Whole pread/pwrite: loop over short transfers and EINTR. 0 or -errno;
 * -EIO when the file ends first.
 */
int obd_pread_all(int fd, void *buf, size_t len, u64 off);
int obd_pwrite_all(int fd, const void *buf, size_t len, u64 off);
/* Whole write() at the current position (pipes, stdout). */
int obd_write_all(int fd, const void *buf, size_t len);

/* A memory buffer as an obd_io (tests, fuzzers). */
struct obd_mem_io {
	struct obd_io io;
	const u8 *buf;
};
void obd_mem_io_init(struct obd_mem_io *m, const void *buf, size_t len,
		     const char *name);

/* liblz4 / libzstd block decoder; thread-safe (a zstd DCtx per thread). */
extern struct obd_codec obd_user_codec;

/* Unit tests: the Nth obd_zalloc from now returns NULL (0: never). */
extern unsigned long obd_zalloc_fail_in;

#endif /* OBD_ENV_USER_H */
