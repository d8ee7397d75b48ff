// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: the registry manifest parser of obd attach REF,
 * imageref_manifest_parse() (tools/cli_imageref.c, json-c). The first
 * input byte picks the response Content-Type (none, or one of the four
 * media types), the rest is the manifest. Checks: an accepted image has
 * 1..255 layers with canonical sha256 digests and sizes in
 * 1..OBD_CACHE_MAX_BLOB, and its derived config.v1.json parses back to
 * the same lowers; an accepted index names a canonical digest of a size
 * in 1..IMAGEREF_MANIFEST_MAX; a failure has a message and leaves the
 * output untouched; parsing twice gives the same result.
 */
#include <errno.h>
#include <string.h>
#include <json-c/json.h>
#include "fuzz_common.h"
#include "cli_imageref.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_digest(const char *d, const char *what)
{
	u8 raw[OBD_CACHE_DIGEST_LEN];
	char again[OBD_DIGEST_STR_LEN + 1];

	FUZZ_CHECK(memchr(d, 0, OBD_DIGEST_STR_LEN + 1) != NULL, "%s not terminated", what);
	FUZZ_CHECK(!obd_digest_parse(d, strlen(d), raw), "%s '%s' not a digest", what, d);
	obd_digest_format(raw, again);
	FUZZ_CHECK(!strcmp(again, d), "%s '%s' not canonical", what, d);
}

/* The derived config lists exactly the parsed layers. */
static void check_config(const struct imageref_manifest *m)
{
	static const struct reg_url u = { "http", "127.0.0.1", 5000, "a/b", "", "latest" };
	json_object *root = NULL, *lowers, *l, *v;
	char *text = imageref_config_text(&u, m, "/t"), err[256];
	unsigned int i;

	FUZZ_CHECK(text != NULL, "no config text");
	FUZZ_CHECK(!fetchd_json_parse(text, strlen(text), &root, err, sizeof(err)),
		   "config text does not parse: %s", err);
	FUZZ_CHECK(json_object_object_get_ex(root, "repoBlobUrl", &v) &&
		   !strcmp(json_object_get_string(v), "http://127.0.0.1:5000/v2/a/b/blobs"),
		   "repoBlobUrl");
	FUZZ_CHECK(json_object_object_get_ex(root, "lowers", &lowers) &&
		   json_object_array_length(lowers) == m->n, "lowers count");
	for (i = 0; i < m->n; i++) {
		l = json_object_array_get_idx(lowers, i);
		if (m->layers[i].turbo) {
			/* the snapshotter's TurboOCI lower: the meta dir and the target */
			FUZZ_CHECK(json_object_object_get_ex(l, "targetDigest", &v) &&
				   !strcmp(json_object_get_string(v), m->layers[i].target_digest) &&
				   json_object_object_get_ex(l, "dir", &v) &&
				   !strcmp(json_object_get_string(v) + 3, m->layers[i].digest) &&
				   json_object_object_get_ex(l, "gzipIndex", NULL) ==
				   m->layers[i].target_gzip &&
				   !json_object_object_get_ex(l, "digest", NULL), "lowers[%u] (turbo)", i);
			check_digest(m->layers[i].target_digest, "target digest");
			continue;
		}
		FUZZ_CHECK(json_object_object_get_ex(l, "digest", &v) &&
			   !strcmp(json_object_get_string(v), m->layers[i].digest), "lowers[%u].digest", i);
		FUZZ_CHECK(json_object_object_get_ex(l, "size", &v) &&
			   (u64)json_object_get_int64(v) == m->layers[i].size, "lowers[%u].size", i);
	}
	json_object_put(root);
	free(text);
}

static void check_manifest(const struct imageref_manifest *m)
{
	unsigned int i;

	if (m->kind == IMAGEREF_INDEX) {
		check_digest(m->pick_digest, "pick_digest");
		FUZZ_CHECK(m->pick_size >= 1 && m->pick_size <= IMAGEREF_MANIFEST_MAX, "pick_size %llu",
			   (unsigned long long)m->pick_size);
		return;
	}
	FUZZ_CHECK(m->kind == IMAGEREF_IMAGE, "kind %d", (int)m->kind);
	FUZZ_CHECK(m->n >= 1 && m->n <= OBD_MAX_LAYERS, "%u layers", m->n);
	for (i = 0; i < m->n; i++) {
		check_digest(m->layers[i].digest, "layer digest");
		FUZZ_CHECK(m->layers[i].size >= 1 && m->layers[i].size <= OBD_CACHE_MAX_BLOB,
			   "layer %u size %llu", i, (unsigned long long)m->layers[i].size);
	}
	check_config(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ctypes[] = { NULL, MT_OCI_MANIFEST, MT_OCI_INDEX,
					      MT_DOCKER_MANIFEST, MT_DOCKER_LIST };
	static struct imageref_manifest m, before;
	const char *ctype;
	char err[512];
	int rc;

	if (size < 1 || size > FUZZ_MAX_LEN)
		return 0;
	ctype = ctypes[data[0] % 5];
	memset(&m, 0x5a, sizeof(m));
	before = m;
	memset(err, 0x55, sizeof(err));
	rc = imageref_manifest_parse((const char *)data + 1, size - 1, ctype, &m, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM || rc == -EOPNOTSUPP, "rc %d", rc);
	if (rc) {
		FUZZ_CHECK(memchr(err, 0, sizeof(err)) && err[0], "error %d without a message", rc);
		FUZZ_CHECK(!memcmp(&m, &before, sizeof(m)), "a failed parse changed the output");
		return 0;
	}
	check_manifest(&m);
	before = m;
	rc = imageref_manifest_parse((const char *)data + 1, size - 1, ctype, &m, err, sizeof(err));
	FUZZ_CHECK(rc == 0 && !memcmp(&m, &before, sizeof(m)), "second parse differs (%d)", rc);
	return 0;
}
