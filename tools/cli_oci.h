/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The OCI documents of an overlaybd image (cli_oci.c): what obd push
 * uploads and obd build writes into an OCI image layout, byte for byte
 * the same for the same layers.
 */
#ifndef OBD_CLI_OCI_H
#define OBD_CLI_OCI_H

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

int oci_digest_buf(const void *buf, size_t len, char out[OBD_DIGEST_STR_LEN + 1]);
/* sha256 and size of fd's bytes (from offset 0), reading it once. */
int oci_digest_fd(int fd, const char *path, struct oci_blob *b);

/* The image config: amd64/linux, diff_ids = the layer digests. */
json_object *oci_image_config(const struct oci_blob *layers, int n);
json_object *oci_descriptor(const char *mt, const char *digest, u64 size);
/* The manifest with the overlaybd layer annotations (spec 7). */
json_object *oci_manifest(const struct oci_blob *layers, int n, const char *cfg_digest,
			  u64 cfg_size);
/* The compact text form that is uploaded / stored (digests are of it). */
const char *oci_text(json_object *o);

#endif
