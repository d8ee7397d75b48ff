// SPDX-License-Identifier: GPL-2.0-only
/*
 * The OCI image config and manifest of an overlaybd image (cli_oci.h),
 * with the layer annotations accelerated-container-image writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cli.h"
#include "cli_oci.h"

#define OCI_ANNOT		"containerd.io/snapshot/overlaybd/"
#define OCI_OBD_VERSION		"0.1.0-obd"

int oci_digest_buf(const void *buf, size_t len, char out[OBD_DIGEST_STR_LEN + 1])
{
	u8 md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return -EIO;
	obd_digest_format(md, out);
	return 0;
}

int oci_digest_fd(int fd, const char *path, struct oci_blob *b)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const size_t bs = 1 << 20;
	u8 *buf = malloc(bs), md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	u64 off = 0;
	ssize_t n;
	int rc = -EIO;

	if (!ctx || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		goto out;
	while ((n = pread(fd, buf, bs, (off_t)off)) > 0) {
		if (!EVP_DigestUpdate(ctx, buf, (size_t)n))
			goto out;
		off += (u64)n;
	}
	if (n < 0) {
		rc = -errno;
		cli_err(path, "read: %s", strerror(errno));
		goto out;
	}
	if (!EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 32)
		goto out;
	obd_digest_format(md, b->digest);
	b->size = off;
	rc = 0;
out:
	if (rc == -EIO)
		cli_err(path, "sha256 failed");
	free(buf);
	EVP_MD_CTX_free(ctx);
	return rc;
}

int oci_digest_path(const char *path, struct oci_blob *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0) {
		cli_err(path, "%s", strerror(errno));
		return -errno;
	}
	rc = oci_digest_fd(fd, path, b);
	close(fd);
	return rc;
}

static json_object *jstr(const char *s)
{
	return json_object_new_string(s);
}

const char *oci_text(json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
}

json_object *oci_image_config(const struct oci_blob *layers, int n)
{
	json_object *o = json_object_new_object(), *rootfs = json_object_new_object();
	json_object *ids = json_object_new_array(), *hist = json_object_new_array();
	int i;

	for (i = 0; i < n; i++) {
		json_object *h = json_object_new_object();

		json_object_array_add(ids, jstr(layers[i].digest));
		json_object_object_add(h, "created_by", jstr("obd (overlaybd layer)"));
		json_object_array_add(hist, h);
	}
	json_object_object_add(o, "architecture", jstr("amd64"));
	json_object_object_add(o, "os", jstr("linux"));
	json_object_object_add(rootfs, "type", jstr("layers"));
	json_object_object_add(rootfs, "diff_ids", ids);
	json_object_object_add(o, "rootfs", rootfs);
	json_object_object_add(o, "history", hist);
	return o;
}

json_object *oci_descriptor(const char *mt, const char *digest, u64 size)
{
	json_object *d = json_object_new_object();

	json_object_object_add(d, "mediaType", jstr(mt));
	json_object_object_add(d, "digest", jstr(digest));
	json_object_object_add(d, "size", json_object_new_int64((int64_t)size));
	return d;
}

json_object *oci_manifest(const struct oci_blob *layers, int n, const char *cfg_digest,
			     u64 cfg_size)
{
	json_object *m = json_object_new_object(), *descs = json_object_new_array();
	int i;

	json_object_object_add(m, "schemaVersion", json_object_new_int(2));
	json_object_object_add(m, "mediaType", jstr(OCI_MT_MANIFEST));
	json_object_object_add(m, "config", oci_descriptor(OCI_MT_CONFIG, cfg_digest, cfg_size));
	for (i = 0; i < n; i++) {
		json_object *d = oci_descriptor(OCI_MT_LAYER, layers[i].digest, layers[i].size);
		json_object *a = json_object_new_object();
		char sz[24];

		snprintf(sz, sizeof(sz), "%llu", (unsigned long long)layers[i].size);
		json_object_object_add(a, OCI_ANNOT "blob-digest", jstr(layers[i].digest));
		json_object_object_add(a, OCI_ANNOT "blob-size", jstr(sz));
		json_object_object_add(a, OCI_ANNOT "blob-fs-type", jstr("ext4"));
		json_object_object_add(a, OCI_ANNOT "version", jstr(OCI_OBD_VERSION));
		json_object_object_add(d, "annotations", a);
		json_object_array_add(descs, d);
	}
	json_object_object_add(m, "layers", descs);
	return m;
}

static int layer_media_type(const char *mt, enum oci_compression *c)
{
	static const struct { const char *mt; enum oci_compression c; } known[] = {
		{ "application/vnd.oci.image.layer.v1.tar", OCI_PLAIN },
		{ "application/vnd.oci.image.layer.v1.tar+gzip", OCI_GZIP },
		{ "application/vnd.oci.image.layer.v1.tar+zstd", OCI_ZSTD },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar", OCI_PLAIN },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", OCI_GZIP },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", OCI_ZSTD },
		{ "application/vnd.docker.image.rootfs.diff.tar.gzip", OCI_GZIP },
		{ "application/vnd.docker.image.rootfs.diff.tar", OCI_PLAIN },
	};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (!strcmp(mt, known[i].mt)) {
			*c = known[i].c;
			return 0;
		}
	}
	return -EINVAL;
}

bool oci_canonical_digest(const char *d)
{
	size_t len = strlen(d);

	return len == OBD_DIGEST_STR_LEN && !strncmp(d, "sha256:", 7) &&
	       strspn(d + 7, "0123456789abcdef") == 64;
}

int oci_manifest_layers(const char *text, size_t len, struct oci_src_layer *ls,
			unsigned int max, unsigned int *n, char *err, size_t errlen)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *man = NULL, *v, *d, *mt, *dg;
	size_t i, nl;
	int rc = -EINVAL;

	if (!tok) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (len > OCI_MANIFEST_MAX || len > INT32_MAX) {
		snprintf(err, errlen, "larger than %u bytes", OCI_MANIFEST_MAX);
		goto out;
	}
	man = json_tokener_parse_ex(tok, text, (int)len);
	if (!man || json_tokener_get_error(tok) != json_tokener_success ||
	    tok->char_offset != (int)len) {
		snprintf(err, errlen, "not one JSON document");
		goto out;
	}
	if (!json_object_object_get_ex(man, "layers", &v) ||
	    !json_object_is_type(v, json_type_array)) {
		snprintf(err, errlen, "no layers array (an image index? skopeo picks one image)");
		goto out;
	}
	nl = json_object_array_length(v);
	if (!nl || nl > max) {
		snprintf(err, errlen, "%zu layers (1 to %u)", nl, max);
		goto out;
	}
	for (i = 0; i < nl; i++) {
		enum oci_compression c;
		const char *s;

		d = json_object_array_get_idx(v, i);
		mt = dg = NULL;
		if (!json_object_is_type(d, json_type_object) ||
		    !json_object_object_get_ex(d, "mediaType", &mt) ||
		    !json_object_is_type(mt, json_type_string) ||
		    layer_media_type(json_object_get_string(mt), &c)) {
			snprintf(err, errlen, "layer %zu: media type '%.80s' is not a tar layer", i + 1,
				 mt && json_object_is_type(mt, json_type_string) ?
				 json_object_get_string(mt) : "(none)");
			goto out;
		}
		if (!json_object_object_get_ex(d, "digest", &dg) ||
		    !json_object_is_type(dg, json_type_string) ||
		    !oci_canonical_digest(s = json_object_get_string(dg))) {
			snprintf(err, errlen, "layer %zu: digest is not sha256:<64 hex>", i + 1);
			goto out;
		}
	}
	for (i = 0; i < nl; i++) {
		d = json_object_array_get_idx(v, i);
		json_object_object_get_ex(d, "mediaType", &mt);
		json_object_object_get_ex(d, "digest", &dg);
		layer_media_type(json_object_get_string(mt), &ls[i].comp);
		snprintf(ls[i].digest, sizeof(ls[i].digest), "%s", json_object_get_string(dg));
	}
	*n = (unsigned int)nl;
	rc = 0;
out:
	json_object_put(man);
	json_tokener_free(tok);
	return rc;
}
