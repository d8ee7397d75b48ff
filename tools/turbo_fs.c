// SPDX-License-Identifier: GPL-2.0-only
/*
 * The TurboOCI fs-meta builder (turbo_fs.h), on libext2fs.
 *
 * The image is one sparse file for the whole conversion; libext2fs reaches
 * it through a thin io_manager over unix_io that records every block
 * written. Per layer, a block written is metadata (tag 0, read back from
 * the image at commit); a regular file's blocks are allocated with
 * initialised extents (ext2fs_fallocate FORCE_INIT, as the reference's
 * extract_regfile_meta_only) and mapped to the file's data in the tar
 * (tag 1: data in a tar starts at a 512 B boundary, so a 4 KiB block maps
 * to 8 consecutive tar sectors). The last block maps the sectors up to
 * roundup(size, 512) (the tar's padding, checked to be zeros by the tar
 * reader); the rest of it is a zeroed record, where the reference leaves a
 * hole that shows whatever a lower layer had there. Within a layer the
 * last event on a block wins: a write after a mapping (a freed block
 * reused for metadata) or a later mapping (a file replaced).
 *
 * Whiteouts act on the layers below (OCI): the converter applies a
 * layer's whiteouts in a first pass over its tar, its entries in a second.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include "cli.h"
#include "cli_image.h"
#include "turbo_fs.h"

#define OBD_DIV_ROUND_UP(x, a)	(((x) + (a) - 1) / (a))

#define TFS_BLOCK	4096u
#define TFS_SPB		(TFS_BLOCK / OBD_SECTOR_SIZE)
#define TFS_MAX_RUN	((OBD_MAP_MAX_LENGTH / TFS_SPB) * TFS_SPB)	/* sectors, whole blocks */
#define WH_PREFIX	".wh."
#define WH_OPAQUE	".wh..wh..opq"

/* A mapping of file data: [lba, lba + n) sectors to tar sector tsect, or zeros. */
struct tfs_ev {
	u64 lba, tsect;
	u32 n;
	u32 ev;			/* the file it belongs to: later files win */
	bool zero;
};

struct tfs {
	char *image;
	u64 vsize, nblocks;
	ext2_filsys fs;
	int fd;			/* the image, for tfs_read */
	u64 *dirty;		/* bit per 4 KiB block: written in this layer */
	u64 *claimed;
	struct tfs_ev *ev;
	u64 nev, capev;
	u32 evno;
	const char *what;
	const char *entry;	/* the tar entry being applied, for messages */
};

/* The tracker sees writes through the io_manager below; one conversion at a time. */
static struct tfs *tfs_cur;

static void mark(u64 *bm, u64 b)
{
	bm[b / 64] |= 1ULL << (b % 64);
}

static void unmark(u64 *bm, u64 b)
{
	bm[b / 64] &= ~(1ULL << (b % 64));
}

static bool test(const u64 *bm, u64 b)
{
	return bm[b / 64] >> (b % 64) & 1;
}

static void mark_bytes(u64 off, u64 len)
{
	struct tfs *t = tfs_cur;
	u64 b, e;

	if (!t || !len)
		return;
	b = off / TFS_BLOCK;
	e = OBD_DIV_ROUND_UP(off + len, TFS_BLOCK);
	for (; b < e && b < t->nblocks; b++)
		mark(t->dirty, b);
}

/* ------------------------------------------------------------------------
 * The tracking io_manager: unix_io underneath, writes recorded.
 * ------------------------------------------------------------------------ */
static struct struct_io_manager track_io;

static io_channel inner(io_channel c)
{
	return c->private_data;
}

static errcode_t trk_open(const char *name, int flags, io_channel *channel)
{
	io_channel c, in = NULL;
	errcode_t rc;

	rc = unix_io_manager->open(name, flags, &in);
	if (rc)
		return rc;
	rc = ext2fs_get_memzero(sizeof(*c), &c);
	if (rc) {
		io_channel_close(in);
		return rc;
	}
	c->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	c->manager = &track_io;
	c->name = in->name;
	c->block_size = in->block_size;
	c->refcount = 1;
	c->flags = in->flags;
	c->private_data = in;
	*channel = c;
	return 0;
}

static errcode_t trk_close(io_channel c)
{
	errcode_t rc;

	if (--c->refcount > 0)
		return 0;
	rc = io_channel_close(inner(c));
	ext2fs_free_mem(&c);
	return rc;
}

static errcode_t trk_set_blksize(io_channel c, int bs)
{
	errcode_t rc = io_channel_set_blksize(inner(c), bs);

	if (!rc)
		c->block_size = bs;
	return rc;
}

static u64 blk_bytes(io_channel c, int count)
{
	return count < 0 ? (u64)-count : (u64)count * (u64)c->block_size;
}

static errcode_t trk_read_blk64(io_channel c, unsigned long long b, int count, void *data)
{
	return io_channel_read_blk64(inner(c), b, count, data);
}

static errcode_t trk_read_blk(io_channel c, unsigned long b, int count, void *data)
{
	return trk_read_blk64(c, b, count, data);
}

static errcode_t trk_write_blk64(io_channel c, unsigned long long b, int count, const void *data)
{
	mark_bytes(b * (u64)c->block_size, blk_bytes(c, count));
	return io_channel_write_blk64(inner(c), b, count, data);
}

static errcode_t trk_write_blk(io_channel c, unsigned long b, int count, const void *data)
{
	return trk_write_blk64(c, b, count, data);
}

static errcode_t trk_flush(io_channel c)
{
	return io_channel_flush(inner(c));
}

static errcode_t trk_write_byte(io_channel c, unsigned long off, int count, const void *data)
{
	mark_bytes(off, count > 0 ? (u64)count : 0);
	return io_channel_write_byte(inner(c), off, count, data);
}

static errcode_t trk_set_option(io_channel c, const char *opt, const char *arg)
{
	return io_channel_set_options(inner(c), opt) ? EXT2_ET_INVALID_ARGUMENT :
		(arg ? 0 : 0);
}

static errcode_t trk_discard(io_channel c, unsigned long long b, unsigned long long count)
{
	mark_bytes(b * (u64)c->block_size, count * (u64)c->block_size);
	return io_channel_discard(inner(c), b, count);
}

static errcode_t trk_zeroout(io_channel c, unsigned long long b, unsigned long long count)
{
	mark_bytes(b * (u64)c->block_size, count * (u64)c->block_size);
	return io_channel_zeroout(inner(c), b, count);
}

static struct struct_io_manager track_io = {
	.magic = EXT2_ET_MAGIC_IO_MANAGER,
	.name = "obd turbo tracking I/O manager",
	.open = trk_open,
	.close = trk_close,
	.set_blksize = trk_set_blksize,
	.read_blk = trk_read_blk,
	.write_blk = trk_write_blk,
	.flush = trk_flush,
	.write_byte = trk_write_byte,
	.set_option = trk_set_option,
	.read_blk64 = trk_read_blk64,
	.write_blk64 = trk_write_blk64,
	.discard = trk_discard,
	.zeroout = trk_zeroout,
};

/* ------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------ */
#define TERR(t, rc, fmt, ...) \
	(cli_err(NULL, "%s: entry '%s': " fmt, (t)->what, (t)->entry ? (t)->entry : "", \
		 ##__VA_ARGS__), -EIO)

static const char *e2msg(errcode_t rc)
{
	return error_message(rc);
}

/* ------------------------------------------------------------------------
 * Creating the image
 * ------------------------------------------------------------------------ */
/* mkfs.ext4 from the system's directories (img_run), as obd build's. */
static int run_mkfs(const char *image)
{
	char *argv[] = { "mkfs.ext4", "-F", "-q", "-b", "4096", "-I", "256", "-m", "0",
			 "-O", "^inline_data",
			 "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0",
			 (char *)image, NULL };

	return img_run(argv);
}

/* Everything mkfs wrote belongs to the first layer. */
static int mark_data(struct tfs *t)
{
	off_t pos = 0, end;

	for (;;) {
		pos = lseek(t->fd, pos, SEEK_DATA);
		if (pos < 0)
			return errno == ENXIO ? 0 : -errno;
		end = lseek(t->fd, pos, SEEK_HOLE);
		if (end < 0)
			return -errno;
		mark_bytes((u64)pos, (u64)(end - pos));
		pos = end;
	}
}

int tfs_create(const char *image, u64 vsize, struct tfs **out)
{
	struct tfs *t = calloc(1, sizeof(*t));
	u64 words;
	errcode_t e;
	int rc, fd;

	if (!t)
		return -ENOMEM;
	initialize_ext2_error_table();	/* error_message() names libext2fs's codes */
	t->fd = -1;
	t->vsize = vsize;
	t->nblocks = vsize / TFS_BLOCK;
	words = OBD_DIV_ROUND_UP(t->nblocks, 64);
	t->image = strdup(image);
	t->dirty = calloc(words, 8);
	t->claimed = calloc(words, 8);
	t->what = "mkfs";
	if (!t->image || !t->dirty || !t->claimed) {
		rc = -ENOMEM;
		goto fail;
	}
	fd = open(image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)vsize)) {
		rc = -errno;
		cli_err(image, "create the fs-meta image: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	t->fd = fd;
	rc = run_mkfs(image);
	if (rc)
		goto fail;
	tfs_cur = t;
	rc = mark_data(t);
	if (rc) {
		cli_err(image, "SEEK_DATA: %s", strerror(-rc));
		goto fail;
	}
	e = ext2fs_open2(image, NULL, EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0, &track_io, &t->fs);
	if (!e)
		e = ext2fs_read_bitmaps(t->fs);
	if (e) {
		cli_err(image, "libext2fs open: %s", e2msg(e));
		rc = -EIO;
		goto fail;
	}
	*out = t;
	return 0;
fail:
	tfs_close(t);
	return rc;
}

void tfs_close(struct tfs *t)
{
	if (!t)
		return;
	if (t->fs)
		ext2fs_close_free(&t->fs);
	if (t->fd >= 0)
		close(t->fd);
	if (tfs_cur == t)
		tfs_cur = NULL;
	free(t->image);
	free(t->dirty);
	free(t->claimed);
	free(t->ev);
	free(t);
}

int tfs_read(struct tfs *t, void *buf, size_t len, u64 off)
{
	return obd_pread_all(t->fd, buf, len, off);
}

void tfs_layer_begin(struct tfs *t, const char *what)
{
	u64 words = OBD_DIV_ROUND_UP(t->nblocks, 64);

	if (strcmp(t->what, "mkfs"))	/* the first layer keeps what mkfs wrote */
		memset(t->dirty, 0, words * 8);
	memset(t->claimed, 0, words * 8);
	t->nev = 0;
	t->what = what;
	t->entry = NULL;
}

/* ------------------------------------------------------------------------
 * Inodes and names
 * ------------------------------------------------------------------------ */
static int rd_inode(struct tfs *t, ext2_ino_t ino, struct ext2_inode *in)
{
	errcode_t e = ext2fs_read_inode(t->fs, ino, in);

	return e ? TERR(t, e, "read inode %u: %s", ino, e2msg(e)) : 0;
}

static int wr_inode(struct tfs *t, ext2_ino_t ino, struct ext2_inode *in)
{
	errcode_t e = ext2fs_write_inode(t->fs, ino, in);

	return e ? TERR(t, e, "write inode %u: %s", ino, e2msg(e)) : 0;
}

/* Make sure dir has room for name: a probe link, taken back at once. */
static int room_for(struct tfs *t, ext2_ino_t dir, const char *name)
{
	errcode_t e = ext2fs_link(t->fs, dir, name, dir, EXT2_FT_DIR);

	if (e == EXT2_ET_DIR_NO_SPACE) {
		e = ext2fs_expand_dir(t->fs, dir);
		if (!e)
			e = ext2fs_link(t->fs, dir, name, dir, EXT2_FT_DIR);
	}
	if (!e)
		e = ext2fs_unlink(t->fs, dir, name, dir, 0);
	return e ? TERR(t, e, "directory entry '%s': %s", name, e2msg(e)) : 0;
}

static int lookup(struct tfs *t, ext2_ino_t dir, const char *name, ext2_ino_t *ino)
{
	errcode_t e = ext2fs_lookup(t->fs, dir, name, (int)strlen(name), NULL, ino);

	if (e == EXT2_ET_FILE_NOT_FOUND)
		return -ENOENT;
	return e ? TERR(t, e, "lookup '%s': %s", name, e2msg(e)) : 0;
}

static int set_attrs(struct tfs *t, ext2_ino_t ino, const struct obd_tar_entry *e, u16 fmt)
{
	struct ext2_inode in;
	u32 tm = e->mtime < 0 ? 0 : e->mtime > 0xffffffffLL ? 0xffffffffu : (u32)e->mtime;
	int rc = rd_inode(t, ino, &in);

	if (rc)
		return rc;
	in.i_mode = (u16)(fmt | (e->mode & 07777));
	in.i_uid = (u16)e->uid;
	in.osd2.linux2.l_i_uid_high = (u16)(e->uid >> 16);
	in.i_gid = (u16)e->gid;
	in.osd2.linux2.l_i_gid_high = (u16)(e->gid >> 16);
	in.i_atime = in.i_mtime = in.i_ctime = tm;
	return wr_inode(t, ino, &in);
}

static int set_xattrs(struct tfs *t, ext2_ino_t ino, const struct obd_tar_entry *e)
{
	struct ext2_xattr_handle *h = NULL;
	errcode_t x;
	unsigned int i;

	if (!e->nxattrs)
		return 0;
	x = ext2fs_xattrs_open(t->fs, ino, &h);
	if (!x)
		x = ext2fs_xattrs_read(h);
	for (i = 0; !x && i < e->nxattrs; i++)
		x = ext2fs_xattr_set(h, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].len);
	if (h) {
		errcode_t c = ext2fs_xattrs_close(&h);

		x = x ? x : c;
	}
	return x ? TERR(t, x, "xattr %s: %s", i ? e->xattrs[i - 1].name : "", e2msg(x)) : 0;
}

/* The entry's owner, permissions, times and xattrs on inode ino of type fmt. */
static int set_meta(struct tfs *t, ext2_ino_t ino, const struct obd_tar_entry *e, u16 fmt)
{
	int rc = set_attrs(t, ino, e, fmt);

	return rc ? rc : set_xattrs(t, ino, e);
}

/* Release an inode whose last link went. */
static int free_inode(struct tfs *t, ext2_ino_t ino, struct ext2_inode *in)
{
	errcode_t x = 0;
	bool dir = LINUX_S_ISDIR(in->i_mode);

	if (ext2fs_inode_has_valid_blocks2(t->fs, in))
		x = ext2fs_punch(t->fs, ino, in, NULL, 0, ~0ULL);
	if (!x && ext2fs_file_acl_block(t->fs, in)) {
		blk64_t b = ext2fs_file_acl_block(t->fs, in);
		__u32 cnt = 0;

		x = ext2fs_adjust_ea_refcount3(t->fs, b, NULL, -1, &cnt, ino);
		if (!x && !cnt)
			ext2fs_block_alloc_stats2(t->fs, b, -1);
		ext2fs_file_acl_block_set(t->fs, in, 0);
	}
	if (x)
		return TERR(t, x, "free inode %u: %s", ino, e2msg(x));
	in->i_links_count = 0;
	in->i_dtime = t->fs->now ? (u32)t->fs->now : (u32)time(NULL);
	ext2fs_inode_alloc_stats2(t->fs, ino, -1, dir);
	return wr_inode(t, ino, in);
}

static int remove_name(struct tfs *t, ext2_ino_t dir, const char *name);

struct child_list {
	char **names;
	size_t n, cap;
	int rc;
};

static int collect_child(struct ext2_dir_entry *d, int off, int bs, char *buf, void *priv)
{
	struct child_list *l = priv;
	int len = ext2fs_dirent_name_len(d);
	char **p;

	if ((len == 1 && d->name[0] == '.') || (len == 2 && d->name[0] == '.' && d->name[1] == '.'))
		return 0;
	if (l->n == l->cap) {
		p = realloc(l->names, (l->cap ? l->cap * 2 : 16) * sizeof(*p));
		if (!p) {
			l->rc = -ENOMEM;
			return DIRENT_ABORT;
		}
		l->names = p;
		l->cap = l->cap ? l->cap * 2 : 16;
	}
	l->names[l->n] = strndup(d->name, (size_t)len);
	if (!l->names[l->n]) {
		l->rc = -ENOMEM;
		return DIRENT_ABORT;
	}
	l->n++;
	return 0;
}

/* Remove every entry of directory dir (recursively). */
static int empty_dir(struct tfs *t, ext2_ino_t dir)
{
	struct child_list l = { 0 };
	errcode_t x = ext2fs_dir_iterate(t->fs, dir, 0, NULL, collect_child, &l);
	int rc = x ? TERR(t, x, "read directory %u: %s", dir, e2msg(x)) : l.rc;
	size_t i;

	for (i = 0; i < l.n; i++) {
		if (!rc)
			rc = remove_name(t, dir, l.names[i]);
		free(l.names[i]);
	}
	free(l.names);
	return rc;
}

/* rm -rf dir/name (no symlink followed). Absent: nothing to do. */
static int remove_name(struct tfs *t, ext2_ino_t dir, const char *name)
{
	struct ext2_inode in, pin;
	ext2_ino_t ino;
	errcode_t x;
	int rc = lookup(t, dir, name, &ino);

	if (rc)
		return rc == -ENOENT ? 0 : rc;
	rc = rd_inode(t, ino, &in);
	if (rc)
		return rc;
	if (LINUX_S_ISDIR(in.i_mode)) {
		rc = empty_dir(t, ino);
		if (!rc)
			rc = rd_inode(t, ino, &in);
		if (rc)
			return rc;
	}
	x = ext2fs_unlink(t->fs, dir, name, ino, 0);
	if (x)
		return TERR(t, x, "unlink '%s': %s", name, e2msg(x));
	if (LINUX_S_ISDIR(in.i_mode)) {
		rc = rd_inode(t, dir, &pin);
		if (rc)
			return rc;
		if (pin.i_links_count > 2)
			pin.i_links_count--;
		rc = wr_inode(t, dir, &pin);
		if (rc)
			return rc;
		in.i_links_count = 0;
	} else if (in.i_links_count) {
		in.i_links_count--;
	}
	if (!in.i_links_count)
		return free_inode(t, ino, &in);
	return wr_inode(t, ino, &in);
}

/*
 * The directory at path (chroot semantics: symlinks on the way resolved
 * inside the image), made (0755, root) where missing when create.
 */
static int dir_of(struct tfs *t, const char *path, bool create, ext2_ino_t *out)
{
	ext2_ino_t cur = EXT2_ROOT_INO, next;
	char *p = strdup(path), *s, *save = NULL;
	struct ext2_inode in;
	errcode_t x;
	int rc = 0;

	if (!p)
		return -ENOMEM;
	for (s = strtok_r(p, "/", &save); s && !rc; s = strtok_r(NULL, "/", &save)) {
		x = ext2fs_namei_follow(t->fs, EXT2_ROOT_INO, cur, s, &next);
		if (x == EXT2_ET_FILE_NOT_FOUND && create) {
			rc = room_for(t, cur, s);
			if (rc)
				break;
			x = ext2fs_mkdir(t->fs, cur, 0, s);
			if (!x)
				x = ext2fs_lookup(t->fs, cur, s, (int)strlen(s), NULL, &next);
			if (x) {
				rc = TERR(t, x, "make directory '%s': %s", s, e2msg(x));
				break;
			}
		} else if (x == EXT2_ET_FILE_NOT_FOUND) {
			rc = -ENOENT;
			break;
		} else if (x) {
			rc = TERR(t, x, "resolve '%s' of '%s': %s", s, path, e2msg(x));
			break;
		}
		rc = rd_inode(t, next, &in);
		if (!rc && !LINUX_S_ISDIR(in.i_mode))
			rc = create ? TERR(t, 0, "'%s' of '%s' is not a directory", s, path) : -ENOTDIR;
		cur = next;
	}
	free(p);
	if (!rc)
		*out = cur;
	return rc;
}

/* Split "a/b/c" into "a/b" and "c" (in buf). */
static void split(const char *name, char *buf, size_t cap, const char **dir, const char **base)
{
	char *slash;

	snprintf(buf, cap, "%s", name);
	slash = strrchr(buf, '/');
	if (slash) {
		*slash = 0;
		*dir = buf;
		*base = slash + 1;
	} else {
		*dir = "";
		*base = buf;
	}
}

int tfs_whiteout(struct tfs *t, const char *dir, const char *wh)
{
	const char *x = wh + strlen(WH_PREFIX);
	ext2_ino_t d;
	int rc;

	t->entry = wh;
	rc = dir_of(t, dir, false, &d);
	if (rc)
		return rc == -ENOENT || rc == -ENOTDIR ? 0 : rc;	/* nothing below to hide */
	if (!strcmp(wh, WH_OPAQUE))
		return empty_dir(t, d);
	if (!*x || !strcmp(x, ".") || !strcmp(x, "..") || strchr(x, '/'))
		return TERR(t, 0, "a whiteout of '%s'", x);
	return remove_name(t, d, x);
}

/* ------------------------------------------------------------------------
 * Entries
 * ------------------------------------------------------------------------ */
/*
 * A new inode of type fmt linked as dir/base; in is its first form (type
 * and permissions, one link) for the caller to complete and write with
 * write_new().
 */
static int new_inode(struct tfs *t, ext2_ino_t dir, const char *base, u16 fmt, u8 ft,
		     const struct obd_tar_entry *e, struct ext2_inode *in, ext2_ino_t *out)
{
	ext2_ino_t ino;
	errcode_t x;
	int rc = room_for(t, dir, base);

	if (rc)
		return rc;
	x = ext2fs_new_inode(t->fs, dir, fmt | 0600, NULL, &ino);
	if (!x)
		x = ext2fs_link(t->fs, dir, base, ino, ft);
	if (x)
		return TERR(t, x, "new inode for '%s': %s", base, e2msg(x));
	ext2fs_inode_alloc_stats2(t->fs, ino, +1, 0);
	memset(in, 0, sizeof(*in));
	in->i_mode = (u16)(fmt | (e->mode & 07777));
	in->i_links_count = 1;
	*out = ino;
	return 0;
}

static int write_new(struct tfs *t, ext2_ino_t ino, struct ext2_inode *in)
{
	errcode_t x = ext2fs_write_new_inode(t->fs, ino, in);

	return x ? TERR(t, x, "write inode: %s", e2msg(x)) : 0;
}

/*
 * A mapping made after a block was written in this layer wins over the
 * write (a block freed and reused); a later write wins over the mapping.
 */
static int push_ev(struct tfs *t, u64 lba, u32 n, u64 tsect, bool zero)
{
	u64 b;

	for (b = lba / TFS_SPB; b < OBD_DIV_ROUND_UP(lba + n, TFS_SPB) && b < t->nblocks; b++)
		unmark(t->dirty, b);
	if (t->nev == t->capev) {
		u64 cap = t->capev ? t->capev * 2 : 1024;
		struct tfs_ev *p = realloc(t->ev, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		t->ev = p;
		t->capev = cap;
	}
	t->ev[t->nev++] = (struct tfs_ev){ .lba = lba, .n = n, .tsect = tsect, .zero = zero,
					   .ev = t->evno };
	return 0;
}

/* Blocks for the file's data, mapped to its bytes in the tar. */
static int map_data(struct tfs *t, ext2_ino_t ino, struct ext2_inode *in, u64 size, u64 data_off)
{
	u64 nblk = OBD_DIV_ROUND_UP(size, TFS_BLOCK), sect = OBD_DIV_ROUND_UP(size, OBD_SECTOR_SIZE);
	u64 l = 0, tsect = data_off / OBD_SECTOR_SIZE;
	errcode_t x;
	int rc;

	if (!nblk)
		return 0;
	if (data_off % OBD_SECTOR_SIZE)
		return TERR(t, 0, "data at stream offset %llu: not 512-aligned",
			    (unsigned long long)data_off);
	x = ext2fs_fallocate(t->fs, EXT2_FALLOCATE_FORCE_INIT, ino, in, ~0ULL, 0, nblk);
	if (!x)
		x = ext2fs_read_inode(t->fs, ino, in);
	if (x)
		return TERR(t, x, "allocate %llu blocks: %s", (unsigned long long)nblk, e2msg(x));
	t->evno++;
	while (l < nblk) {
		blk64_t p0, p;
		u64 run = 1, s;

		x = ext2fs_bmap2(t->fs, ino, in, NULL, 0, l, NULL, &p0);
		if (!x && !p0)
			x = EXT2_ET_BAD_BLOCK_NUM;
		while (!x && l + run < nblk && run < TFS_MAX_RUN / TFS_SPB) {
			x = ext2fs_bmap2(t->fs, ino, in, NULL, 0, l + run, NULL, &p);
			if (x || p != p0 + run)
				break;
			run++;
		}
		if (x)
			return TERR(t, x, "block %llu of the file: %s", (unsigned long long)l,
				    e2msg(x));
		s = run * TFS_SPB;
		if (l * TFS_SPB + s > sect)
			s = sect - l * TFS_SPB;
		rc = push_ev(t, p0 * TFS_SPB, (u32)s, tsect, false);
		if (!rc && s < run * TFS_SPB)
			rc = push_ev(t, p0 * TFS_SPB + s, (u32)(run * TFS_SPB - s), 0, true);
		if (rc)
			return rc;
		tsect += s;
		l += run;
	}
	return 0;
}

static int make_file(struct tfs *t, ext2_ino_t dir, const char *base,
		     const struct obd_tar_entry *e)
{
	struct ext2_inode in;
	ext2_ino_t ino;
	errcode_t x;
	int rc = new_inode(t, dir, base, LINUX_S_IFREG, EXT2_FT_REG_FILE, e, &in, &ino);

	if (rc)
		return rc;
	if (ext2fs_has_feature_extents(t->fs->super)) {
		ext2_extent_handle_t h;

		x = ext2fs_extent_open2(t->fs, ino, &in, &h);
		if (x)
			return TERR(t, x, "extent header: %s", e2msg(x));
		ext2fs_extent_free(h);
	}
	rc = write_new(t, ino, &in);
	if (rc)
		return rc;
	x = ext2fs_inode_size_set(t->fs, &in, e->size);
	if (!x)
		x = ext2fs_write_inode(t->fs, ino, &in);
	if (x)
		return TERR(t, x, "write inode: %s", e2msg(x));
	rc = map_data(t, ino, &in, e->size, e->data_off);
	return rc ? rc : set_meta(t, ino, e, LINUX_S_IFREG);
}

static int make_special(struct tfs *t, ext2_ino_t dir, const char *base,
			const struct obd_tar_entry *e)
{
	u16 fmt = e->type == '3' ? LINUX_S_IFCHR : e->type == '4' ? LINUX_S_IFBLK : LINUX_S_IFIFO;
	u8 ft = e->type == '3' ? EXT2_FT_CHRDEV : e->type == '4' ? EXT2_FT_BLKDEV : EXT2_FT_FIFO;
	struct ext2_inode in;
	ext2_ino_t ino;
	int rc = new_inode(t, dir, base, fmt, ft, e, &in, &ino);

	if (rc)
		return rc;
	if (e->devmajor < 256 && e->devminor < 256) {
		in.i_block[0] = e->devmajor * 256 + e->devminor;
	} else {
		in.i_block[1] = (e->devminor & 0xff) | (e->devmajor << 8) |
				((e->devminor & ~0xffu) << 12);
	}
	rc = write_new(t, ino, &in);
	return rc ? rc : set_meta(t, ino, e, fmt);
}

/* A directory or a symlink: libext2fs makes those (., .., a short target inline). */
static int make_dir_or_symlink(struct tfs *t, ext2_ino_t dir, const char *base,
			       const struct obd_tar_entry *e)
{
	bool is_dir = e->type == '5';
	ext2_ino_t ino;
	errcode_t x;
	int rc = room_for(t, dir, base);

	if (rc)
		return rc;
	if (is_dir)
		x = ext2fs_mkdir(t->fs, dir, 0, base);
	else
		x = ext2fs_symlink(t->fs, dir, 0, base, e->link);
	if (!x)
		x = ext2fs_lookup(t->fs, dir, base, (int)strlen(base), NULL, &ino);
	if (x)
		return TERR(t, x, "%s: %s", is_dir ? "mkdir" : "symlink", e2msg(x));
	return set_meta(t, ino, e, is_dir ? LINUX_S_IFDIR : LINUX_S_IFLNK);
}

static int dirent_type(u16 mode)
{
	switch (mode & LINUX_S_IFMT) {
	case LINUX_S_IFREG: return EXT2_FT_REG_FILE;
	case LINUX_S_IFLNK: return EXT2_FT_SYMLINK;
	case LINUX_S_IFCHR: return EXT2_FT_CHRDEV;
	case LINUX_S_IFBLK: return EXT2_FT_BLKDEV;
	case LINUX_S_IFIFO: return EXT2_FT_FIFO;
	case LINUX_S_IFSOCK: return EXT2_FT_SOCK;
	default: return EXT2_FT_UNKNOWN;
	}
}

static int make_hardlink(struct tfs *t, ext2_ino_t dir, const char *base,
			 const struct obd_tar_entry *e)
{
	char buf[OBD_TAR_NAME_MAX + 1];
	const char *tdir, *tbase;
	struct ext2_inode in;
	ext2_ino_t td, ino;
	errcode_t x;
	int rc;

	split(e->link, buf, sizeof(buf), &tdir, &tbase);
	rc = dir_of(t, tdir, false, &td);
	if (!rc)
		rc = lookup(t, td, tbase, &ino);
	if (rc == -ENOENT || rc == -ENOTDIR)
		return TERR(t, 0, "hard link to '%s': no such file", e->link);
	if (!rc)
		rc = rd_inode(t, ino, &in);
	if (rc)
		return rc;
	if (LINUX_S_ISDIR(in.i_mode))
		return TERR(t, 0, "hard link to directory '%s'", e->link);
	if (in.i_links_count >= EXT2_LINK_MAX)
		return TERR(t, 0, "hard link to '%s': too many links", e->link);
	rc = room_for(t, dir, base);
	if (rc)
		return rc;
	x = ext2fs_link(t->fs, dir, base, ino, dirent_type(in.i_mode));
	if (x)
		return TERR(t, x, "hard link: %s", e2msg(x));
	in.i_links_count++;
	return wr_inode(t, ino, &in);
}

int tfs_apply(struct tfs *t, const struct obd_tar_entry *e)
{
	char buf[OBD_TAR_NAME_MAX + 1];
	const char *dname, *base;
	struct ext2_inode in;
	ext2_ino_t dir, old;
	int rc;

	t->entry = e->name;
	if (!*e->name)	/* the root itself: its attributes */
		return set_meta(t, EXT2_ROOT_INO, e, LINUX_S_IFDIR);
	split(e->name, buf, sizeof(buf), &dname, &base);
	if (strlen(base) > EXT2_NAME_LEN)
		return TERR(t, 0, "a name of %zu bytes, at most %d", strlen(base), EXT2_NAME_LEN);
	rc = dir_of(t, dname, true, &dir);
	if (rc)
		return rc;
	rc = lookup(t, dir, base, &old);
	if (!rc) {
		rc = rd_inode(t, old, &in);
		if (rc)
			return rc;
		if (e->type == '5' && LINUX_S_ISDIR(in.i_mode))
			return set_meta(t, old, e, LINUX_S_IFDIR);
		if (e->type == '1') {	/* a link to what is already there: nothing to do */
			char b2[OBD_TAR_NAME_MAX + 1];
			const char *tdir, *tbase;
			ext2_ino_t td, ti;

			split(e->link, b2, sizeof(b2), &tdir, &tbase);
			if (!dir_of(t, tdir, false, &td) && !lookup(t, td, tbase, &ti) && ti == old)
				return 0;
		}
		rc = remove_name(t, dir, base);
		if (rc)
			return rc;
	} else if (rc != -ENOENT) {
		return rc;
	}
	switch (e->type) {
	case '0': return make_file(t, dir, base, e);
	case '1': return make_hardlink(t, dir, base, e);
	case '2':
	case '5': return make_dir_or_symlink(t, dir, base, e);
	default: return make_special(t, dir, base, e);
	}
}

/* ------------------------------------------------------------------------
 * The layer's maps
 * ------------------------------------------------------------------------ */
struct maplist {
	struct obd_map *v;
	u64 n, cap;
};

static int push_map(struct maplist *l, u64 lba, u64 n, u64 moff, u8 tag, bool zero)
{
	while (n) {
		u32 c = n > TFS_MAX_RUN ? TFS_MAX_RUN : (u32)n;

		if (l->n == l->cap) {
			u64 cap = l->cap ? l->cap * 2 : 1024;
			struct obd_map *p = realloc(l->v, cap * sizeof(*p));

			if (!p)
				return -ENOMEM;
			l->v = p;
			l->cap = cap;
		}
		l->v[l->n++] = (struct obd_map){ .offset = lba, .length = c,
						 .moffset = zero ? 0 : moff, .tag = tag,
						 .zeroed = zero };
		lba += c;
		if (!zero)
			moff += c;
		n -= c;
	}
	return 0;
}

static int cmp_map(const void *a, const void *b)
{
	const struct obd_map *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The part of ev not taken by metadata written or a later file. */
static int emit_ev(struct tfs *t, const struct tfs_ev *ev, struct maplist *l)
{
	u64 s = 0;
	int rc = 0;

	while (!rc && s < ev->n) {
		u64 lba = ev->lba + s, b = lba / TFS_SPB;
		u64 c = (b + 1) * TFS_SPB - lba;

		if (c > ev->n - s)
			c = ev->n - s;
		if (b < t->nblocks && !test(t->dirty, b) && !test(t->claimed, b))
			rc = push_map(l, lba, c, ev->tsect + s, ev->zero ? 0 : 1, ev->zero);
		s += c;
	}
	return rc;
}

static void claim_ev(struct tfs *t, const struct tfs_ev *ev)
{
	u64 b;

	for (b = ev->lba / TFS_SPB; b < OBD_DIV_ROUND_UP(ev->lba + ev->n, TFS_SPB); b++)
		if (b < t->nblocks)
			mark(t->claimed, b);
}

int tfs_layer_end(struct tfs *t, struct obd_map **maps, u64 *n)
{
	struct maplist l = { 0 };
	errcode_t x;
	u64 b, i, j;
	int rc = 0;

	t->entry = NULL;
	x = ext2fs_flush(t->fs);
	if (!x)
		x = io_channel_flush(t->fs->io);
	if (x) {
		cli_err(t->image, "%s: flush the file system: %s", t->what, e2msg(x));
		return -EIO;
	}
	for (b = 0; !rc && b < t->nblocks;) {
		u64 e;

		if (!(t->dirty[b / 64] >> (b % 64) & 1)) {
			b = t->dirty[b / 64] >> (b % 64) ? b + 1 : (b / 64 + 1) * 64;
			continue;
		}
		for (e = b + 1; e < t->nblocks && test(t->dirty, e); e++)
			;
		rc = push_map(&l, b * TFS_SPB, (e - b) * TFS_SPB, b * TFS_SPB, 0, false);
		b = e;
	}
	/* later files first; an event's pieces share its last block */
	for (i = t->nev; !rc && i > 0;) {
		u64 first = i - 1;

		while (first > 0 && t->ev[first - 1].ev == t->ev[i - 1].ev)
			first--;
		for (j = first; !rc && j < i; j++)
			rc = emit_ev(t, &t->ev[j], &l);
		for (j = first; j < i; j++)
			claim_ev(t, &t->ev[j]);
		i = first;
	}
	if (rc) {
		free(l.v);
		cli_err(t->image, "%s: out of memory for the maps", t->what);
		return rc;
	}
	qsort(l.v, l.n, sizeof(*l.v), cmp_map);
	*maps = l.v;
	*n = l.n;
	return 0;
}
