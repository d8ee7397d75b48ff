/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * obd attach REF: an image reference resolved into a config.v1.json.
 * The manifest (OCI image manifest or Docker v2; an OCI index or Docker
 * manifest list picks its linux/amd64 entry) is fetched with reg_client,
 * the overlaybd layer annotations (spec 7; what obd push writes) give the
 * lowers, and the derived config is written to
 * <cacheDir>/images/sha256:<manifest hex>.config.v1.json for the
 * config attach path to open.
 */
#ifndef OBD_CLI_IMAGEREF_H
#define OBD_CLI_IMAGEREF_H

#include <stddef.h>

#include "cli.h"
#include "url.h"

/* Registries may refuse manifests above 4 MiB (OCI distribution spec). */
#define IMAGEREF_MANIFEST_MAX	(4u << 20)
#define IMAGEREF_ANNOT		"containerd.io/snapshot/overlaybd/"
#define IMAGEREF_ANNOT_DIGEST	IMAGEREF_ANNOT "blob-digest"
#define IMAGEREF_ANNOT_SIZE	IMAGEREF_ANNOT "blob-size"

#define MT_OCI_MANIFEST		"application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX		"application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_MANIFEST	"application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_LIST		"application/vnd.docker.distribution.manifest.list.v2+json"

/* [http://|https://]HOST[:PORT]/REPO(:TAG|@sha256:<hex>) */
struct imageref {
	struct reg_url url;			/* registry, repository, tag */
	char digest[OBD_DIGEST_STR_LEN + 1];	/* "sha256:<hex>" after '@', or "" */
};

/* 0, or -EINVAL with a message in err (the url_parse_ref ones, or the digest's). */
int imageref_parse(const char *s, struct imageref *ref, char *err, size_t errlen);

enum imageref_kind {
	IMAGEREF_IMAGE,		/* an image manifest: layers */
	IMAGEREF_INDEX,		/* an index / manifest list: pick */
};

/*
 * A TurboOCI layer (spec turbo-oci 2.1): its blob is the meta layer
 * (turboOCIv1.tar.gz), its target the original OCI layer named by the
 * turbo-oci/ (or legacy fastoci/) target-digest and target-media-type
 * annotations.
 */
#define IMAGEREF_TURBO_VERSION	"0.1.0-turbo.ociv1"

struct imageref_layer {
	char digest[OBD_DIGEST_STR_LEN + 1];	/* blob-digest annotation */
	u64 size;				/* blob-size annotation, 1..OBD_CACHE_MAX_BLOB */
	bool turbo;				/* a TurboOCI meta layer */
	bool target_gzip;			/* turbo: the target is tar+gzip (else tar) */
	char target_digest[OBD_DIGEST_STR_LEN + 1];	/* turbo: the original layer */
	/* turbo: the fs meta file's name in its unpacked dir (cli_turbo_ref.h); NULL: ext4's */
	const char *fs_meta;
};

struct imageref_manifest {
	enum imageref_kind kind;
	unsigned int n;					/* image: 1..OBD_MAX_LAYERS */
	struct imageref_layer layers[OBD_MAX_LAYERS];	/* bottom first */
	char pick_digest[OBD_DIGEST_STR_LEN + 1];	/* index: the linux/amd64 entry */
	u64 pick_size;					/* its size, 1..IMAGEREF_MANIFEST_MAX */
};

/*
 * Parse a manifest of len bytes (not NUL-terminated). ctype: the
 * response's media type, used when the JSON has no mediaType (may be
 * NULL). 0, or -EINVAL (-ENOMEM; -EOPNOTSUPP for a TurboOCI target of a
 * type not served, zstd) with a message naming the field in err;
 * an image without the overlaybd annotations gets a message starting with
 * "not an overlaybd image". *m is filled only on success.
 */
int imageref_manifest_parse(const char *buf, size_t len, const char *ctype,
			    struct imageref_manifest *m, char *err, size_t errlen);

/*
 * The config.v1.json text (malloc'd) for the image's layers: repoBlobUrl
 * <origin>/v2/<repo>/blobs, lowers [{digest, size}], resultFile "": the
 * shape obd push prints. A TurboOCI layer is the lower the reference's
 * snapshotter writes: {dir, file, targetDigest[, gzipIndex]}, dir being
 * <turbo_root>/sha256:<meta hex> (cli_turbo_ref.h) and file its fs_meta
 * (ext4.fs.meta if NULL). NULL if out of memory.
 */
char *imageref_config_text(const struct reg_url *u, const struct imageref_manifest *m,
			   const char *turbo_root);

/*
 * Resolve REF (arg as given, for messages) with the service config svc
 * (NULL: the default) into <cacheDir>/images/sha256:<hex>.config.v1.json,
 * written durably; its path into path. Reports errors. 0 or -errno.
 */
int imageref_resolve(const char *arg, const struct imageref *ref, const char *svc, char *path,
		     size_t pathlen);

#endif
