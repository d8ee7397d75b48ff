// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd convert --turbo-oci: a TurboOCI image (turbo-oci.md 2.1, 4) from an
 * OCI image, in userspace. Per source layer (gzip or plain tar):
 *   gzip.meta   the random-access index of a gzip layer (1 MiB spans);
 *   the layer applied to the fs meta (turbo_fs.c): whiteouts in a first
 *               pass over its tar, its entries in a second;
 *   ext4.fs.meta  the layer's maps as a warp LSMT in a ZFile (LZ4, 4 KiB,
 *               CRC), as `overlaybd-commit -z --turboOCI` writes it;
 *   turboOCIv1.tar.gz  ext4.fs.meta, .turbo.ociv1, gzip.meta.
 * OUT gets an OCI layout (the meta layers with the reference's
 * annotations, the source config with diff_ids = the sha256 of each
 * uncompressed turboOCIv1.tar), the original layer blobs (not in the
 * manifest: `skopeo copy oci:OUT` publishes the turbo image next to the
 * original layers in their repository), the unpacked meta files in
 * turbo/NNNN/ and a config.v1.json whose lowers read it all locally.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <json-c/json.h>

#include "cli.h"
#include "cli_image.h"
#include "cli_oci.h"
#include "env_user.h"
#include "gzindex.h"
#include "lsmt_write.h"
#include "tar_read.h"
#include "turbo_conv.h"
#include "turbo_fs.h"
#include "zfile_write.h"

#define TURBO_VERSION		"0.1.0-turbo.ociv1"
#define ANN			"containerd.io/snapshot/overlaybd/"
#define MT_OCI_GZIP		"application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_DOCKER_GZIP		"application/vnd.docker.image.rootfs.diff.tar.gzip"
#define MT_DOCKER_TAR		"application/vnd.docker.image.rootfs.diff.tar"
#define META_NAME		"ext4.fs.meta"
#define MARK_NAME		".turbo.ociv1"
#define GZIDX_NAME		"gzip.meta"
#define WH_PREFIX		".wh."
#define WH_OPAQUE		".wh..wh..opq"
#define IN_BUF			(256u << 10)

struct src_layer {
	char digest[OBD_DIGEST_STR_LEN + 1];
	char *mt;
	u64 size;
	bool gz;
	char blob[PATH_MAX];
	/* results */
	struct oci_blob meta;		/* turboOCIv1.tar.gz */
	char diff_id[OBD_DIGEST_STR_LEN + 1];
};

/* ------------------------------------------------------------------------
 * Small file helpers
 * ------------------------------------------------------------------------ */
static int mkdir_p1(const char *path)
{
	if (mkdir(path, 0755) && errno != EEXIST) {
		cli_err(path, "mkdir: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * The source image
 * ------------------------------------------------------------------------ */
static json_object *read_blob_json(const char *layout, const char *digest, char *path)
{
	json_object *o;

	if (!oci_canonical_digest(digest)) {
		cli_err(layout, "digest '%s' is not sha256:<64 hex>", digest);
		return NULL;
	}
	if (img_pathf(path, "%s/blobs/sha256/%s", layout, digest + 7))
		return NULL;
	o = json_object_from_file(path);
	if (!o)
		cli_err(path, "not a JSON document: %s", json_util_get_last_err());
	return o;
}

static const char *jstr_of(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* The manifest of the one image in the layout, and its config. */
static int read_source(const char *layout, json_object **man, json_object **cfg)
{
	char path[PATH_MAX];
	json_object *idx, *ms, *c;
	const char *d;

	*man = *cfg = NULL;
	if (img_pathf(path, "%s/index.json", layout))
		return -ENAMETOOLONG;
	idx = json_object_from_file(path);
	if (!idx || !json_object_object_get_ex(idx, "manifests", &ms) ||
	    !json_object_is_type(ms, json_type_array) || json_object_array_length(ms) != 1 ||
	    !(d = jstr_of(json_object_array_get_idx(ms, 0), "digest"))) {
		cli_err(path, "expected one manifest");
		json_object_put(idx);
		return -EINVAL;
	}
	*man = read_blob_json(layout, d, path);
	json_object_put(idx);
	if (!*man)
		return -EINVAL;
	if (!json_object_object_get_ex(*man, "config", &c) || !(d = jstr_of(c, "digest"))) {
		cli_err(path, "manifest: no config digest");
		return -EINVAL;
	}
	*cfg = read_blob_json(layout, d, path);
	return *cfg ? 0 : -EINVAL;
}

/* Sniff the blob: gzip or plain tar; zstd (and anything else) refused. */
static int sniff(struct src_layer *s, unsigned int i)
{
	u8 m[512];
	int fd = open(s->blob, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : pread(fd, m, sizeof(m), 0);

	if (fd >= 0)
		close(fd);
	if (n < 0) {
		cli_err(s->blob, "layer %u: %s", i + 1, strerror(errno));
		return -EIO;
	}
	if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) {
		s->gz = true;
		return 0;
	}
	if (n >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd) {
		cli_err(NULL, "layer %u (%s): a zstd layer: TurboOCI serves gzip and plain tar layers only (the reference refuses zstd too)",
			i + 1, s->digest);
		return -EOPNOTSUPP;
	}
	if (n == 512 && (!memcmp(m + 257, "ustar", 5) || !memcmp(m, (u8[512]){ 0 }, 512)))
		return 0;
	cli_err(NULL, "layer %u (%s): neither gzip nor a tar (media type %s)", i + 1, s->digest,
		s->mt);
	return -EINVAL;
}

static int read_layers(const char *layout, json_object *man, struct src_layer **out,
		       unsigned int *n)
{
	json_object *ls, *l, *v;
	struct src_layer *s;
	unsigned int i, cnt;
	const char *d, *mt;

	if (!json_object_object_get_ex(man, "layers", &ls) || !json_object_is_type(ls, json_type_array) ||
	    !(cnt = (unsigned int)json_object_array_length(ls)) || cnt >= OBD_MAX_LAYERS) {
		cli_err(layout, "manifest: expected 1..%d layers", OBD_MAX_LAYERS - 1);
		return -EINVAL;
	}
	s = calloc(cnt, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (i = 0; i < cnt; i++) {
		l = json_object_array_get_idx(ls, i);
		d = jstr_of(l, "digest");
		mt = jstr_of(l, "mediaType");
		if (!d || !mt || !oci_canonical_digest(d) ||
		    !json_object_object_get_ex(l, "size", &v) || !json_object_is_type(v, json_type_int) ||
		    json_object_get_int64(v) < 0) {
			cli_err(layout, "manifest: layer %u: expected mediaType, a sha256 digest and a size", i + 1);
			goto fail;
		}
		snprintf(s[i].digest, sizeof(s[i].digest), "%s", d);
		s[i].mt = strdup(mt);
		s[i].size = (u64)json_object_get_int64(v);
		if (!s[i].mt || img_pathf(s[i].blob, "%s/blobs/sha256/%s", layout, d + 7))
			goto fail;
		if (sniff(&s[i], i))
			goto fail;
	}
	*out = s;
	*n = cnt;
	return 0;
fail:
	for (i = 0; i < cnt; i++)
		free(s[i].mt);
	free(s);
	return -EINVAL;
}

/* ------------------------------------------------------------------------
 * The layer's tar stream: plain or one gzip member, nothing after it
 * ------------------------------------------------------------------------ */
struct lstream {
	int fd;
	bool gz, zinit, zend;
	z_stream z;
	u8 *in;
	u64 in_off;
	const char *what;
	char emsg[256];
	struct cli_progress *prog;
};

static ssize_t ls_read_raw(struct lstream *s, void *buf, size_t len)
{
	ssize_t n = pread(s->fd, buf, len, (off_t)s->in_off);

	if (n < 0)
		return -errno;
	s->in_off += (u64)n;
	if (s->prog)
		cli_progress_add(s->prog, (u64)n);
	return n;
}

static ssize_t ls_read(void *ctx, void *buf, size_t len)
{
	struct lstream *s = ctx;
	ssize_t n;
	int zr;

	if (!s->gz)
		return ls_read_raw(s, buf, len);
	if (s->zend)
		return 0;
	s->z.next_out = buf;
	s->z.avail_out = (uInt)(len > (1u << 30) ? (1u << 30) : len);
	while (s->z.avail_out) {
		if (!s->z.avail_in) {
			n = ls_read_raw(s, s->in, IN_BUF);
			if (n < 0)
				return n;
			if (!n) {
				snprintf(s->emsg, sizeof(s->emsg), "the gzip stream is truncated");
				return -EIO;
			}
			s->z.next_in = s->in;
			s->z.avail_in = (uInt)n;
		}
		zr = inflate(&s->z, Z_NO_FLUSH);
		if (zr == Z_STREAM_END) {
			u8 extra;

			s->zend = true;
			if (s->z.avail_in || ls_read_raw(s, &extra, 1) != 0) {
				snprintf(s->emsg, sizeof(s->emsg),
					 "data after the gzip member (a second member or trailing garbage)");
				return -EINVAL;
			}
			break;
		}
		if (zr != Z_OK) {
			snprintf(s->emsg, sizeof(s->emsg), "gzip: %s", s->z.msg ? s->z.msg : "corrupt");
			return -EINVAL;
		}
	}
	return (ssize_t)((u8 *)s->z.next_out - (u8 *)buf);
}

static int ls_open(struct lstream *s, const struct src_layer *l, const char *what)
{
	memset(s, 0, sizeof(*s));
	s->what = what;
	s->gz = l->gz;
	s->fd = open(l->blob, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		cli_err(l->blob, "%s", strerror(errno));
		return -errno;
	}
	if (s->gz) {
		s->in = malloc(IN_BUF);
		if (!s->in || inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK) {
			close(s->fd);
			free(s->in);
			return -ENOMEM;
		}
		s->zinit = true;
	}
	return 0;
}

static void ls_close(struct lstream *s)
{
	if (s->zinit)
		inflateEnd(&s->z);
	free(s->in);
	if (s->fd >= 0)
		close(s->fd);
}

/* ------------------------------------------------------------------------
 * Applying a layer
 * ------------------------------------------------------------------------ */
static bool is_whiteout(const struct obd_tar_entry *e, const char **dir_end)
{
	const char *slash = strrchr(e->name, '/'), *base = slash ? slash + 1 : e->name;

	*dir_end = slash;
	return *e->name && !strncmp(base, WH_PREFIX, strlen(WH_PREFIX));
}

static int whiteout(struct tfs *t, const struct obd_tar_entry *e, const char *slash)
{
	char dir[OBD_TAR_NAME_MAX + 1];
	size_t dl = slash ? (size_t)(slash - e->name) : 0;

	memcpy(dir, e->name, dl);
	dir[dl] = 0;
	return tfs_whiteout(t, dir, slash ? slash + 1 : e->name);
}

/* One pass over the layer's tar: whiteouts (pass 1) or everything else (pass 2). */
static int layer_pass(struct tfs *t, const struct src_layer *l, const char *what,
		      const char *short_name, int pass)
{
	struct obd_tar_reader r;
	struct obd_tar_entry e;
	struct obd_err err = { "" };
	struct cli_progress prog;
	struct lstream s;
	char label[96];
	int rc;

	rc = ls_open(&s, l, what);
	if (rc)
		return rc;
	snprintf(label, sizeof(label), "%s: %s", short_name, pass == 1 ? "whiteouts" : "entries");
	cli_progress_start(&prog, label, l->size);
	s.prog = &prog;
	obd_tar_reader_init(&r, ls_read, &s, what);
	while ((rc = obd_tar_next(&r, &e, &err)) == 1) {
		const char *slash;
		bool wh = is_whiteout(&e, &slash);

		if (wh && e.type == '5') {
			cli_err(NULL, "%s: entry '%s': a whiteout that is a directory", what, e.name);
			obd_tar_entry_free(&e);
			rc = -EINVAL;
			break;
		}
		rc = 0;
		if (pass == 1 && wh)
			rc = whiteout(t, &e, slash);
		else if (pass == 2 && !wh)
			rc = tfs_apply(t, &e);
		obd_tar_entry_free(&e);
		if (rc)
			break;
	}
	cli_progress_end(&prog);
	if (rc < 0 && err.msg[0])
		cli_err(NULL, "%s%s%s", err.msg, s.emsg[0] ? ": " : "", s.emsg);
	obd_tar_reader_free(&r);
	ls_close(&s);
	return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------------------
 * Writing the layer's files
 * ------------------------------------------------------------------------ */
static int gz_index(const struct src_layer *l, const char *path, const char *what)
{
	struct obd_gzidx_build_stats st;
	struct obd_file_io fio;
	struct obd_err err = { "" };
	int fd, rc;

	rc = obd_file_io_open(&fio, l->blob, &err);
	if (rc) {
		cli_err_core(l->blob, rc, &err);
		return rc;
	}
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		cli_err(path, "%s", strerror(errno));
	} else {
		img_step("%s: gzip index", what);
		rc = obd_gzindex_build(&fio.io, fd, OBD_GZIDX_SPAN, OBD_GZIDX_ALGO_ZLIB, &st, &err);
		if (rc)
			cli_err(NULL, "%s: %s", what, err.msg);
		if (!rc && fsync(fd))
			rc = -errno;
		close(fd);
	}
	obd_file_io_close(&fio);
	return rc;
}

struct zsink {
	struct obd_zfile_writer w;
	struct obd_err err;
};

static int zsink_write(void *ctx, const void *buf, size_t len)
{
	struct zsink *z = ctx;

	return obd_zfile_writer_write(&z->w, buf, len, &z->err);
}

static int tfs_src(void *ctx, u8 tag, void *buf, size_t len, u64 off)
{
	return tag ? -EINVAL : tfs_read(ctx, buf, len, off);
}

/* The layer's maps as a warp LSMT inside a ZFile (LZ4, 4 KiB, CRC). */
static int write_meta(struct tfs *t, const struct obd_map *maps, u64 n, const char *path,
		      const struct turbo_opts *o)
{
	struct obd_commit_opts co = { .vsize = o->vsize, .zero_detect = o->zero_detect };
	struct zsink z = { .err = { "" } };
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644), rc;
	s64 len;

	if (fd < 0) {
		cli_err(path, "%s", strerror(errno));
		return -errno;
	}
	rc = obd_zfile_writer_init(&z.w, fd, 0, OBD_ZFILE_ALGO_LZ4, 4096, true, true, &z.err);
	if (rc) {
		cli_err_core(path, rc, &z.err);
		close(fd);
		return rc;
	}
	rc = obd_lsmt_commit_warp(maps, n, &co, tfs_src, t, zsink_write, &z, NULL, &z.err);
	if (rc) {
		obd_zfile_writer_abort(&z.w);
	} else {
		len = obd_zfile_writer_finish(&z.w, &z.err);
		rc = len < 0 ? (int)len : 0;
	}
	if (!rc && fsync(fd))
		rc = -errno;
	close(fd);
	if (rc)
		cli_err_core(path, rc, &z.err);
	return rc;
}

/* A ustar header as Go's archive/tar writes it for Name, Mode, Size, Typeflag. */
static void tar_hdr(u8 h[512], const char *name, u64 size)
{
	u32 sum = 0;
	int i;

	memset(h, 0, 512);
	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "%07o", 0644);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
	snprintf((char *)h + 136, 12, "%011o", 0);
	h[156] = '0';
	memcpy(h + 257, "ustar\0" "00", 8);
	snprintf((char *)h + 329, 8, "%07o", 0);
	snprintf((char *)h + 337, 8, "%07o", 0);
	memset(h + 148, ' ', 8);
	for (i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
}

static int tar_add(int out, u64 *pos, const char *dir, const char *name)
{
	u8 h[512], buf[65536];
	char path[PATH_MAX];
	struct stat st;
	u64 done = 0;
	int fd, rc = 0;
	ssize_t n;

	if (img_pathf(path, "%s/%s", dir, name))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		cli_err(path, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	tar_hdr(h, name, (u64)st.st_size);
	rc = obd_pwrite_all(out, h, 512, *pos);
	*pos += 512;
	while (!rc && (n = pread(fd, buf, sizeof(buf), (off_t)done)) > 0) {
		rc = obd_pwrite_all(out, buf, (size_t)n, *pos);
		*pos += (u64)n;
		done += (u64)n;
	}
	close(fd);
	if (!rc && done != (u64)st.st_size)
		rc = -EIO;
	if (!rc && done % 512) {
		memset(buf, 0, 512);
		rc = obd_pwrite_all(out, buf, 512 - done % 512, *pos);
		*pos += 512 - done % 512;
	}
	return rc;
}

/* gzip in into out; zlib's gzip header (mtime 0). */
static int gzip_file(const char *in, const char *out)
{
	int ifd = open(in, O_RDONLY | O_CLOEXEC);
	int ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	u8 *ib = malloc(IN_BUF), *ob = malloc(IN_BUF);
	z_stream z = { 0 };
	int rc = 0, zr = Z_OK;
	ssize_t n;

	if (ifd < 0 || ofd < 0 || !ib || !ob ||
	    deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		rc = -EIO;
		goto out;
	}
	do {
		n = read(ifd, ib, IN_BUF);
		if (n < 0) {
			rc = -errno;
			break;
		}
		z.next_in = ib;
		z.avail_in = (uInt)n;
		do {
			z.next_out = ob;
			z.avail_out = IN_BUF;
			zr = deflate(&z, n ? Z_NO_FLUSH : Z_FINISH);
			rc = obd_write_all(ofd, ob, IN_BUF - z.avail_out);
		} while (!rc && !z.avail_out);
	} while (!rc && n);
	if (!rc && zr != Z_STREAM_END)
		rc = -EIO;
	if (!rc && fsync(ofd))
		rc = -errno;
	deflateEnd(&z);
out:
	if (rc)
		cli_err(out, "gzip of %s failed: %s", in, strerror(-rc));
	free(ib);
	free(ob);
	if (ifd >= 0)
		close(ifd);
	if (ofd >= 0)
		close(ofd);
	return rc;
}

/* turboOCIv1.tar (its sha256 is the diff_id) and its .gz into blobs/. */
static int write_meta_blob(const char *out, const char *work, const char *dir,
			   struct src_layer *l)
{
	char tarp[PATH_MAX], gzp[PATH_MAX], dst[PATH_MAX];
	struct oci_blob tb;
	u64 pos = 0;
	u8 z[1024] = { 0 };
	int fd, rc;

	if (img_pathf(tarp, "%s/turboOCIv1.tar", work) || img_pathf(gzp, "%s/turboOCIv1.tar.gz", work))
		return -ENAMETOOLONG;
	fd = open(tarp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		cli_err(tarp, "%s", strerror(errno));
		return -errno;
	}
	rc = tar_add(fd, &pos, dir, META_NAME);
	if (!rc)
		rc = tar_add(fd, &pos, dir, MARK_NAME);
	if (!rc && l->gz)
		rc = tar_add(fd, &pos, dir, GZIDX_NAME);
	if (!rc)
		rc = obd_pwrite_all(fd, z, sizeof(z), pos);
	close(fd);
	if (rc) {
		cli_err(tarp, "write: %s", strerror(-rc));
		return rc;
	}
	rc = oci_digest_path(tarp, &tb);
	if (!rc)
		rc = gzip_file(tarp, gzp);
	if (!rc)
		rc = oci_digest_path(gzp, &l->meta);
	unlink(tarp);
	if (rc)
		return rc;
	memcpy(l->diff_id, tb.digest, sizeof(l->diff_id));
	if (img_pathf(dst, "%s/blobs/sha256/%s", out, l->meta.digest + 7))
		return -ENAMETOOLONG;
	if (rename(gzp, dst)) {
		cli_err(dst, "rename: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static int convert_layer(struct tfs *t, struct src_layer *l, unsigned int i, unsigned int n,
			 const char *out, const char *work, const struct turbo_opts *o)
{
	char what[160], label[48], dir[PATH_MAX], path[PATH_MAX];
	struct obd_map *maps = NULL;
	u64 nm = 0;
	int rc;

	snprintf(what, sizeof(what), "layer %u of %u (%s)", i + 1, n, l->digest);
	snprintf(label, sizeof(label), "layer %u/%u", i + 1, n);
	img_step("%s: %s", what, l->gz ? "gzip" : "tar");
	if (img_pathf(dir, "%s/turbo/%04u", out, i))
		return -ENAMETOOLONG;
	rc = mkdir_p1(dir);
	if (!rc && l->gz) {
		rc = img_pathf(path, "%s/" GZIDX_NAME, dir);
		if (!rc)
			rc = gz_index(l, path, what);
	}
	if (rc)
		return rc;
	tfs_layer_begin(t, what);
	rc = layer_pass(t, l, what, label, 1);
	if (!rc)
		rc = layer_pass(t, l, what, label, 2);
	if (!rc)
		rc = tfs_layer_end(t, &maps, &nm);
	if (!rc)
		rc = img_pathf(path, "%s/" META_NAME, dir);
	if (!rc) {
		img_step("%s: fs meta, %llu records", what, (unsigned long long)nm);
		rc = write_meta(t, maps, nm, path, o);
	}
	free(maps);
	if (!rc)
		rc = img_pathf(path, "%s/" MARK_NAME, dir);
	if (!rc)
		rc = cli_write_text(path, "");
	if (!rc)
		rc = write_meta_blob(out, work, dir, l);
	return rc;
}

/* ------------------------------------------------------------------------
 * The image documents
 * ------------------------------------------------------------------------ */
static json_object *jstr(const char *s)
{
	return json_object_new_string(s);
}

/*
 * target-media-type as the reference's builder writes it (UploadLayer in
 * aci's turboOCI_builder.go): Docker or OCI as the source layer's type,
 * gzip or tar as the blob sniffed, whatever the source declared. The
 * snapshotter gives a lower its gzipIndex only for the two gzip types
 * (isGzipLayerType), and obd attach requires one of the four: a declared
 * type copied through (tar for a gzip blob, a non-distributable type)
 * would make an image neither reads.
 */
static const char *target_media_type(const struct src_layer *l, bool docker)
{
	if (docker)
		return l->gz ? MT_DOCKER_GZIP : MT_DOCKER_TAR;
	return l->gz ? MT_OCI_GZIP : OCI_MT_LAYER;
}

static json_object *layer_desc(const struct src_layer *l)
{
	bool docker = !strncmp(l->mt, "application/vnd.docker.", 23);
	json_object *d = oci_descriptor(docker ? MT_DOCKER_GZIP : MT_OCI_GZIP, l->meta.digest,
					l->meta.size);
	json_object *a = json_object_new_object();
	char size[24];

	snprintf(size, sizeof(size), "%llu", (unsigned long long)l->meta.size);
	json_object_object_add(a, ANN "version", jstr(TURBO_VERSION));
	json_object_object_add(a, ANN "blob-digest", jstr(l->meta.digest));
	json_object_object_add(a, ANN "blob-size", jstr(size));
	json_object_object_add(a, ANN "turbo-oci/target-digest", jstr(l->digest));
	json_object_object_add(a, ANN "turbo-oci/target-media-type",
			       jstr(target_media_type(l, docker)));
	json_object_object_add(d, "annotations", a);
	return d;
}

static int write_documents(const char *out, json_object *src_cfg, struct src_layer *ls,
			   unsigned int n, const struct turbo_opts *o)
{
	json_object *rootfs, *ids = json_object_new_array(), *m, *layers, *idx, *ms, *d, *a;
	struct oci_blob cfg, man;
	char path[PATH_MAX];
	unsigned int i;
	int rc;

	for (i = 0; i < n; i++)
		json_object_array_add(ids, jstr(ls[i].diff_id));
	if (!json_object_object_get_ex(src_cfg, "rootfs", &rootfs) ||
	    !json_object_is_type(rootfs, json_type_object)) {
		rootfs = json_object_new_object();
		json_object_object_add(src_cfg, "rootfs", rootfs);
		json_object_object_add(rootfs, "type", jstr("layers"));
	}
	json_object_object_add(rootfs, "diff_ids", ids);
	rc = cli_store_json(out, oci_text(src_cfg), &cfg);
	if (rc)
		return rc;
	m = json_object_new_object();
	layers = json_object_new_array();
	json_object_object_add(m, "schemaVersion", json_object_new_int(2));
	json_object_object_add(m, "mediaType", jstr(OCI_MT_MANIFEST));
	json_object_object_add(m, "config", oci_descriptor(OCI_MT_CONFIG, cfg.digest, cfg.size));
	for (i = 0; i < n; i++)
		json_object_array_add(layers, layer_desc(&ls[i]));
	json_object_object_add(m, "layers", layers);
	rc = cli_store_json(out, oci_text(m), &man);
	json_object_put(m);
	if (rc)
		return rc;
	if (img_pathf(path, "%s/oci-layout", out) ||
	    cli_write_text(path, "{\"imageLayoutVersion\":\"1.0.0\"}"))
		return -EIO;
	idx = json_object_new_object();
	ms = json_object_new_array();
	d = oci_descriptor(OCI_MT_MANIFEST, man.digest, man.size);
	a = json_object_new_object();
	json_object_object_add(a, "org.opencontainers.image.ref.name", jstr(o->tag));
	json_object_object_add(d, "annotations", a);
	json_object_array_add(ms, d);
	json_object_object_add(idx, "schemaVersion", json_object_new_int(2));
	json_object_object_add(idx, "manifests", ms);
	rc = img_pathf(path, "%s/index.json", out);
	if (!rc)
		rc = cli_write_text(path, oci_text(idx));
	json_object_put(idx);
	if (!rc) {
		for (i = 0; i < n; i++)
			printf("%s ", ls[i].meta.digest);
		printf("%s\n", man.digest);
	}
	return rc;
}

/* config.v1.json: the meta layers over the original layers, local (spec 2.2). */
static int write_lowers(const char *out, const struct src_layer *ls, unsigned int n)
{
	json_object *o = json_object_new_object(), *lowers = json_object_new_array();
	char path[PATH_MAX];
	unsigned int i;
	int rc = 0;

	json_object_object_add(o, "lowers", lowers);
	for (i = 0; i < n && !rc; i++) {
		json_object *l = json_object_new_object();

		json_object_array_add(lowers, l);
		rc = img_pathf(path, "%s/turbo/%04u", out, i);
		json_object_object_add(l, "dir", jstr(path));
		rc = rc ? rc : img_pathf(path, "%s/turbo/%04u/" META_NAME, out, i);
		json_object_object_add(l, "file", jstr(path));
		rc = rc ? rc : img_pathf(path, "%s/blobs/sha256/%s", out, ls[i].digest + 7);
		json_object_object_add(l, "targetFile", jstr(path));
		json_object_object_add(l, "targetDigest", jstr(ls[i].digest));
		if (ls[i].gz) {
			rc = rc ? rc : img_pathf(path, "%s/turbo/%04u/" GZIDX_NAME, out, i);
			json_object_object_add(l, "gzipIndex", jstr(path));
		}
	}
	json_object_object_add(o, "resultFile", jstr(""));
	if (!rc)
		rc = img_pathf(path, "%s/config.v1.json", out);
	if (!rc)
		rc = cli_write_text(path, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
					JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return rc;
}

/* The original layers beside the meta layers: the targets of config.v1.json. */
static int keep_targets(const char *out, struct src_layer *ls, unsigned int n)
{
	char dst[PATH_MAX];
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (img_pathf(dst, "%s/blobs/sha256/%s", out, ls[i].digest + 7))
			return -ENAMETOOLONG;
		if (!access(dst, F_OK))
			continue;	/* the same layer twice */
		if (rename(ls[i].blob, dst)) {
			cli_err(dst, "rename: %s", strerror(errno));
			return -errno;
		}
		snprintf(ls[i].blob, sizeof(ls[i].blob), "%s", dst);
	}
	return 0;
}

int turbo_convert(const char *layout, const char *out, const char *work,
		  const struct turbo_opts *o)
{
	json_object *man = NULL, *cfg = NULL;
	struct src_layer *ls = NULL;
	char path[PATH_MAX];
	struct tfs *t = NULL;
	unsigned int n = 0, i;
	int rc;

	rc = read_source(layout, &man, &cfg);
	if (!rc)
		rc = read_layers(layout, man, &ls, &n);
	if (!rc && (img_pathf(path, "%s/blobs", out) || mkdir_p1(path) ||
		    img_pathf(path, "%s/blobs/sha256", out) || mkdir_p1(path) ||
		    img_pathf(path, "%s/turbo", out) || mkdir_p1(path)))
		rc = -EIO;
	if (!rc && !img_pathf(path, "%s/fs.img", work)) {
		img_step("mkfs.ext4 (fs meta, %llu bytes)", (unsigned long long)o->vsize);
		rc = tfs_create(path, o->vsize, &t);
	}
	for (i = 0; !rc && i < n; i++)
		rc = convert_layer(t, &ls[i], i, n, out, work, o);
	tfs_close(t);
	if (!getenv("OBD_TURBO_KEEP")) unlink(path);
	if (!rc)
		rc = keep_targets(out, ls, n);
	if (!rc)
		rc = write_lowers(out, ls, n);
	if (!rc)	/* last: an index.json means a whole image */
		rc = write_documents(out, cfg, ls, n, o);
	for (i = 0; ls && i < n; i++)
		free(ls[i].mt);
	free(ls);
	json_object_put(man);
	json_object_put(cfg);
	return rc;
}
