/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The OCI documents of an overlaybd image (cli_oci.c): what obd push
 * uploads and obd build writes into an OCI image layout, byte for byte
 * the same for the same layers.
 */
#ifndef OBD_CLI_OCI_H
#define OBD_CLI_OCI_H

#include <stdbool.h>

#include <json-c/json.h>

#include "obd.h"

#define OCI_MT_MANIFEST		"application/vnd.oci.image.manifest.v1+json"
#define OCI_MT_CONFIG		"application/vnd.oci.image.config.v1+json"
#define OCI_MT_LAYER		"application/vnd.oci.image.layer.v1.tar"

/* A layer blob: its sha256 ("sha256:<hex>") and size. */
struct oci_blob {
	char digest[OBD_DIGEST_STR_LEN + 1];
	u64 size;
};

/* d is "sha256:<64 lower-case hex>", the only digest form a blob path is made of. */
bool oci_canonical_digest(const char *d);
int oci_digest_buf(const void *buf, size_t len, char out[OBD_DIGEST_STR_LEN + 1]);
/* sha256 and size of fd's bytes (from offset 0), reading it once. */
int oci_digest_fd(int fd, const char *path, struct oci_blob *b);
/* The same for the file at path (opened and closed here; errors reported). */
int oci_digest_path(const char *path, struct oci_blob *b);

/* The image config: amd64/linux, diff_ids = the layer digests. */
json_object *oci_image_config(const struct oci_blob *layers, int n);
json_object *oci_descriptor(const char *mt, const char *digest, u64 size);
/* The manifest with the overlaybd layer annotations (spec 7). */
json_object *oci_manifest(const struct oci_blob *layers, int n, const char *cfg_digest,
			  u64 cfg_size);
/* A layer of an image to convert: its blob and how the tar is compressed. */
enum oci_compression { OCI_PLAIN, OCI_GZIP, OCI_ZSTD };
struct oci_src_layer {
	char digest[OBD_DIGEST_STR_LEN + 1];
	enum oci_compression comp;
};
#define OCI_MANIFEST_MAX	(4u << 20)

/*
 * The layers of an image manifest (OCI or Docker v2 media types), bottom
 * first: 1..max of them, each a tar layer (plain, gzip, zstd) with a
 * canonical sha256 digest. 0, or -EINVAL with err saying why (ls, *n
 * untouched then).
 */
int oci_manifest_layers(const char *text, size_t len, struct oci_src_layer *ls,
			unsigned int max, unsigned int *n, char *err, size_t errlen);

/* The compact text form that is uploaded / stored (digests are of it). */
const char *oci_text(json_object *o);

#endif
