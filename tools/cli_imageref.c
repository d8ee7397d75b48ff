// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd attach REF (cli_imageref.h): reference parsing, manifest fetch and
 * index selection through reg_client, the manifest parser (a function of
 * a buffer, for tests/fuzz/fuzz_manifest.c) and the derived config.
 *
 * Everything in a manifest comes from the network: each field is
 * type-checked and bounded before use, and a message names the field
 * ("layers[2].annotations...: ..."), the caller adding the reference.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli_imageref.h"
#include "cli_oci.h"
#include "cli_turbo_ref.h"
#include "config.h"
#include "durable.h"
#include "reg_client.h"

#define ACCEPT_ALL	MT_OCI_MANIFEST ", " MT_OCI_INDEX ", " MT_DOCKER_MANIFEST ", " MT_DOCKER_LIST

/* ------------------------------------------------------------------------
 * References
 * ------------------------------------------------------------------------ */
int imageref_parse(const char *s, struct imageref *ref, char *err, size_t errlen)
{
	u8 raw[OBD_CACHE_DIGEST_LEN];
	const char *at;
	char *head;
	int rc;

	memset(ref, 0, sizeof(*ref));
	at = s ? strchr(s, '@') : NULL;
	if (!at)
		return url_parse_ref(s, &ref->url, err, errlen);
	/* url_parse_ref knows no digests: parse what is before the '@' */
	if (obd_digest_parse(at + 1, strlen(at + 1), raw))
		return reg_errf(err, errlen, -EINVAL,
				"reference: digest: expected @sha256:<64 lower-case hex>");
	head = strndup(s, (size_t)(at - s));
	if (!head)
		return reg_errf(err, errlen, -ENOMEM, "out of memory");
	rc = url_parse_ref(head, &ref->url, err, errlen);
	free(head);
	if (rc)
		return rc;
	obd_digest_format(raw, ref->digest);
	return 0;
}

/* ------------------------------------------------------------------------
 * Manifest parsing
 * ------------------------------------------------------------------------ */
static const char *type_name(json_object *o)
{
	return o ? json_type_to_name(json_object_get_type(o)) : "null";
}

/* o[key] as a string without NUL bytes: 0, -ENOENT (absent), -EINVAL (type). */
static int get_str(json_object *o, const char *key, const char **s, size_t *len)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return -ENOENT;
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	*s = json_object_get_string(v);
	*len = (size_t)json_object_get_string_len(v);
	return memchr(*s, 0, *len) ? -EINVAL : 0;
}

static bool str_is(const char *s, size_t len, const char *lit)
{
	return len == strlen(lit) && !memcmp(s, lit, len);
}

/* A media type's kind: 0 image manifest, 1 index, -1 unknown. */
static int mt_kind(const char *s, size_t len)
{
	if (str_is(s, len, MT_OCI_MANIFEST) || str_is(s, len, MT_DOCKER_MANIFEST))
		return IMAGEREF_IMAGE;
	if (str_is(s, len, MT_OCI_INDEX) || str_is(s, len, MT_DOCKER_LIST))
		return IMAGEREF_INDEX;
	return -1;
}

/* A digest string field: sha256:<64 lower-case hex>, copied into out. */
static int get_digest(json_object *o, const char *key, const char *what,
		      char out[OBD_DIGEST_STR_LEN + 1], char *err, size_t errlen)
{
	u8 raw[OBD_CACHE_DIGEST_LEN];
	const char *s;
	size_t len;
	int rc = get_str(o, key, &s, &len);

	if (rc == -ENOENT)
		return reg_errf(err, errlen, -EINVAL, "%s.%s: missing", what, key);
	if (rc || obd_digest_parse(s, len, raw))
		return reg_errf(err, errlen, -EINVAL, "%s.%s: expected sha256:<64 lower-case hex>",
				what, key);
	obd_digest_format(raw, out);
	return 0;
}

/* A descriptor's "size": an integer in [lo, hi]. */
static int get_size(json_object *o, const char *what, u64 lo, u64 hi, u64 *out, char *err,
		    size_t errlen)
{
	json_object *v;
	int64_t x;

	if (!json_object_object_get_ex(o, "size", &v))
		return reg_errf(err, errlen, -EINVAL, "%s.size: missing", what);
	/* json-c clamps out-of-range integers to INT64_MAX: bounded below anyway */
	if (!json_object_is_type(v, json_type_int) || (x = json_object_get_int64(v)) < 0 ||
	    (u64)x < lo || (u64)x > hi)
		return reg_errf(err, errlen, -EINVAL, "%s.size: expected an integer %llu..%llu",
				what, (unsigned long long)lo, (unsigned long long)hi);
	*out = (u64)x;
	return 0;
}

/* blob-size: decimal digits only (annotations are strings), 1..OBD_CACHE_MAX_BLOB. */
static int parse_blob_size(const char *s, size_t len, u64 *out)
{
	u64 v = 0;
	size_t i;

	if (!len || len > 20 || (s[0] == '0' && len > 1))
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (u64)(s[i] - '0');
		if (v > OBD_CACHE_MAX_BLOB)
			return -EINVAL;
	}
	if (!v)
		return -EINVAL;
	*out = v;
	return 0;
}

/*
 * The TurboOCI annotations, current (turbo-oci/) or legacy (fastoci/), as
 * the reference's snapshotter accepts them: a target digest and a tar or
 * tar+gzip media type (OCI or Docker). Neither: an ordinary layer.
 */
static int parse_turbo(json_object *a, const char *what, struct imageref_layer *l, char *err,
		       size_t errlen)
{
	static const char *const prefixes[] = { "turbo-oci/", "fastoci/" };
	static const struct { const char *mt; bool gz; } types[] = {
		{ "application/vnd.oci.image.layer.v1.tar", false },
		{ "application/vnd.oci.image.layer.v1.tar+gzip", true },
		{ "application/vnd.docker.image.rootfs.diff.tar", false },
		{ "application/vnd.docker.image.rootfs.diff.tar.gzip", true },
	};
	char key[128], dg[OBD_DIGEST_STR_LEN + 1];
	const char *s;
	size_t len, i;
	int rc;

	for (i = 0; i < 2; i++) {
		snprintf(key, sizeof(key), IMAGEREF_ANNOT "%starget-digest", prefixes[i]);
		if (json_object_object_get_ex(a, key, NULL))
			break;
	}
	if (i == 2)
		return 0;
	rc = get_digest(a, key, what, dg, err, errlen);
	if (rc)
		return rc;
	snprintf(key, sizeof(key), IMAGEREF_ANNOT "%starget-media-type", prefixes[i]);
	rc = get_str(a, key, &s, &len);
	if (rc)
		return reg_errf(err, errlen, -EINVAL, "%s.%s: %s (a TurboOCI layer needs it)", what,
				key, rc == -ENOENT ? "missing" : "expected a string");
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (str_is(s, len, types[i].mt))
			break;
	if (i == sizeof(types) / sizeof(types[0]))
		return reg_errf(err, errlen, -EOPNOTSUPP,
				"%s.%s: '%.*s': a TurboOCI target must be a tar or tar+gzip layer (zstd and others are not supported)",
				what, key, len > 100 ? 100 : (int)len, s);
	l->turbo = true;
	l->target_gzip = types[i].gz;
	memcpy(l->target_digest, dg, sizeof(dg));
	return 0;
}

/* The overlaybd annotations of layers[i]; a missing one: not an overlaybd image. */
static int parse_layer(json_object *d, unsigned int i, struct imageref_layer *l, char *err,
		       size_t errlen)
{
	json_object *a = NULL;
	const char *s, *ld = "?";
	char what[64], dg[OBD_DIGEST_STR_LEN + 1];
	size_t len, ldlen = 1;
	u64 dsize;
	int rc;

	snprintf(what, sizeof(what), "layers[%u]", i);
	if (!json_object_is_type(d, json_type_object))
		return reg_errf(err, errlen, -EINVAL, "%s: expected an object, got %s", what,
				type_name(d));
	/* the descriptor itself must be sound, even though the annotations name the blob */
	rc = get_str(d, "digest", &ld, &ldlen);
	if (rc)
		return reg_errf(err, errlen, -EINVAL, "%s.digest: %s", what,
				rc == -ENOENT ? "missing" : "expected a string");
	rc = get_size(d, what, 0, INT64_MAX, &dsize, err, errlen);
	if (rc)
		return rc;
	if (json_object_object_get_ex(d, "annotations", &a) &&
	    !json_object_is_type(a, json_type_object))
		return reg_errf(err, errlen, -EINVAL, "%s.annotations: expected an object, got %s",
				what, type_name(a));
	if (!a || get_str(a, IMAGEREF_ANNOT_DIGEST, &s, &len) == -ENOENT)
		return reg_errf(err, errlen, -EINVAL,
				"not an overlaybd image: %s (%.80s) has no annotation %s", what,
				ldlen > 80 ? "?" : ld, IMAGEREF_ANNOT_DIGEST);
	snprintf(what, sizeof(what), "layers[%u].annotations", i);
	/* its blob may be a meta layer pointing into the original OCI layer */
	rc = parse_turbo(a, what, l, err, errlen);
	if (rc)
		return rc;
	rc = get_digest(a, IMAGEREF_ANNOT_DIGEST, what, dg, err, errlen);
	if (rc)
		return rc;
	rc = get_str(a, IMAGEREF_ANNOT_SIZE, &s, &len);
	if (rc == -ENOENT)
		return reg_errf(err, errlen, -EINVAL,
				"not an overlaybd image: layers[%u] (%s) has no annotation %s", i,
				dg, IMAGEREF_ANNOT_SIZE);
	if (rc || parse_blob_size(s, len, &l->size))
		return reg_errf(err, errlen, -EINVAL,
				"%s.%s: expected a decimal string 1..%llu", what, IMAGEREF_ANNOT_SIZE,
				(unsigned long long)OBD_CACHE_MAX_BLOB);
	memcpy(l->digest, dg, sizeof(dg));
	return 0;
}

static int parse_image(json_object *root, struct imageref_manifest *m, char *err, size_t errlen)
{
	json_object *layers;
	size_t n, i;
	int rc;

	if (!json_object_object_get_ex(root, "layers", &layers))
		return reg_errf(err, errlen, -EINVAL, "layers: missing");
	if (!json_object_is_type(layers, json_type_array))
		return reg_errf(err, errlen, -EINVAL, "layers: expected an array, got %s",
				type_name(layers));
	n = json_object_array_length(layers);
	if (!n)
		return reg_errf(err, errlen, -EINVAL, "layers: empty");
	if (n > OBD_MAX_LAYERS)
		return reg_errf(err, errlen, -EINVAL, "layers: %zu layers, at most %d", n,
				OBD_MAX_LAYERS);
	for (i = 0; i < n; i++) {
		rc = parse_layer(json_object_array_get_idx(layers, i), (unsigned int)i,
				 &m->layers[i], err, errlen);
		if (rc)
			return rc;
	}
	m->n = (unsigned int)n;
	return 0;
}

/* manifests[i].platform is linux/amd64 (any variant); wrong types are errors. */
static int is_amd64(json_object *e, size_t i, bool *yes, char *err, size_t errlen)
{
	json_object *p;
	const char *os = "", *arch = "";
	size_t oslen = 0, archlen = 0;
	int r1, r2;

	*yes = false;
	if (!json_object_object_get_ex(e, "platform", &p))
		return 0;
	if (!json_object_is_type(p, json_type_object))
		return reg_errf(err, errlen, -EINVAL,
				"manifests[%zu].platform: expected an object, got %s", i,
				type_name(p));
	r1 = get_str(p, "os", &os, &oslen);
	r2 = get_str(p, "architecture", &arch, &archlen);
	if (r1 == -EINVAL || r2 == -EINVAL)
		return reg_errf(err, errlen, -EINVAL,
				"manifests[%zu].platform.%s: expected a string", i,
				r1 == -EINVAL ? "os" : "architecture");
	*yes = !r1 && !r2 && str_is(os, oslen, "linux") && str_is(arch, archlen, "amd64");
	return 0;
}

/* The chosen entry: an image manifest by digest, of a bounded size. */
static int parse_pick(json_object *e, size_t i, struct imageref_manifest *m, char *err,
		      size_t errlen)
{
	const char *s;
	char what[48];
	size_t len;
	int rc;

	snprintf(what, sizeof(what), "manifests[%zu]", i);
	rc = get_str(e, "mediaType", &s, &len);
	if (rc == -EINVAL || (!rc && mt_kind(s, len) != IMAGEREF_IMAGE))
		return reg_errf(err, errlen, -EINVAL,
				"%s.mediaType: the linux/amd64 entry is not an image manifest (%s or %s)",
				what, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST);
	rc = get_digest(e, "digest", what, m->pick_digest, err, errlen);
	if (!rc)
		rc = get_size(e, what, 1, IMAGEREF_MANIFEST_MAX, &m->pick_size, err, errlen);
	return rc;
}

static int parse_index(json_object *root, struct imageref_manifest *m, char *err, size_t errlen)
{
	json_object *ms, *e;
	size_t n, i;
	bool yes;
	int rc;

	if (!json_object_object_get_ex(root, "manifests", &ms))
		return reg_errf(err, errlen, -EINVAL, "manifests: missing");
	if (!json_object_is_type(ms, json_type_array))
		return reg_errf(err, errlen, -EINVAL, "manifests: expected an array, got %s",
				type_name(ms));
	n = json_object_array_length(ms);
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(ms, i);
		if (!json_object_is_type(e, json_type_object))
			return reg_errf(err, errlen, -EINVAL,
					"manifests[%zu]: expected an object, got %s", i,
					type_name(e));
		rc = is_amd64(e, i, &yes, err, errlen);
		if (rc)
			return rc;
		if (yes)
			return parse_pick(e, i, m, err, errlen);
	}
	return reg_errf(err, errlen, -EINVAL,
			"index: no linux/amd64 manifest among its %zu entries", n);
}

/* The document's kind: its mediaType, else the Content-Type, else its shape. */
static int manifest_kind(json_object *root, const char *ctype, char *err, size_t errlen)
{
	const char *s;
	size_t len;
	int rc = get_str(root, "mediaType", &s, &len), k;

	if (rc == -EINVAL)
		return reg_errf(err, errlen, -EINVAL, "mediaType: expected a string");
	if (!rc) {
		k = mt_kind(s, len);
		if (k < 0)
			return reg_errf(err, errlen, -EINVAL,
					"mediaType: '%.100s' is not an image manifest or index",
					len > 100 ? "(long)" : s);
		return k;
	}
	if (ctype && (k = mt_kind(ctype, strlen(ctype))) >= 0)
		return k;
	if (json_object_object_get_ex(root, "manifests", NULL))
		return IMAGEREF_INDEX;
	return IMAGEREF_IMAGE;
}

int imageref_manifest_parse(const char *buf, size_t len, const char *ctype,
			    struct imageref_manifest *m, char *err, size_t errlen)
{
	struct imageref_manifest *tmp;
	json_object *root = NULL, *v;
	char jerr[256];
	int rc, kind;

	if (len > IMAGEREF_MANIFEST_MAX)
		return reg_errf(err, errlen, -EINVAL, "manifest: larger than %u bytes",
				IMAGEREF_MANIFEST_MAX);
	rc = fetchd_json_parse(buf, len, &root, jerr, sizeof(jerr));
	if (rc)
		return reg_errf(err, errlen, rc, "manifest: %s", jerr);
	rc = -EINVAL;
	tmp = calloc(1, sizeof(*tmp));
	if (!tmp) {
		rc = reg_errf(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	if (!json_object_is_type(root, json_type_object)) {
		reg_errf(err, errlen, rc, "manifest: expected a JSON object, got %s", type_name(root));
		goto out;
	}
	if (!json_object_object_get_ex(root, "schemaVersion", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 2) {
		reg_errf(err, errlen, rc, "schemaVersion: expected 2 (schema 1 is not supported)");
		goto out;
	}
	kind = manifest_kind(root, ctype, err, errlen);
	if (kind < 0) {
		rc = kind;
		goto out;
	}
	tmp->kind = (enum imageref_kind)kind;
	rc = kind == IMAGEREF_INDEX ? parse_index(root, tmp, err, errlen) :
				      parse_image(root, tmp, err, errlen);
	if (!rc)
		memcpy(m, tmp, sizeof(*m));
out:
	free(tmp);
	json_object_put(root);
	return rc;
}

/* ------------------------------------------------------------------------
 * The derived config
 * ------------------------------------------------------------------------ */
/* The reference snapshotter's lower of a TurboOCI layer (spec turbo-oci 2.2). */
static json_object *turbo_lower(const struct imageref_layer *l, const char *turbo_root)
{
	json_object *o = json_object_new_object();
	char dir[PATH_MAX], p[PATH_MAX + 32];

	if (!o || snprintf(dir, sizeof(dir), "%s/%s", turbo_root, l->digest) >= (int)sizeof(dir)) {
		json_object_put(o);
		return NULL;
	}
	json_object_object_add(o, "dir", json_object_new_string(dir));
	snprintf(p, sizeof(p), "%s/%s", dir, l->fs_meta ? l->fs_meta : TURBO_META_FILE);
	json_object_object_add(o, "file", json_object_new_string(p));
	json_object_object_add(o, "targetDigest", json_object_new_string(l->target_digest));
	if (l->target_gzip) {
		snprintf(p, sizeof(p), "%s/" TURBO_GZINDEX_FILE, dir);
		json_object_object_add(o, "gzipIndex", json_object_new_string(p));
	}
	return o;
}

char *imageref_config_text(const struct reg_url *u, const struct imageref_manifest *m,
			   const char *turbo_root)
{
	json_object *o = json_object_new_object(), *lowers = json_object_new_array();
	char origin[300], url[1024];
	char *text = NULL;
	unsigned int i;

	if (!o || !lowers || url_origin(u, origin, sizeof(origin)))
		goto out;
	snprintf(url, sizeof(url), "%s/v2/%s/blobs", origin, u->repo);
	json_object_object_add(o, "repoBlobUrl", json_object_new_string(url));
	for (i = 0; i < m->n; i++) {
		json_object *l = m->layers[i].turbo ? turbo_lower(&m->layers[i], turbo_root) :
						      json_object_new_object();

		if (!l)
			goto out;
		if (!m->layers[i].turbo) {
			json_object_object_add(l, "digest",
					       json_object_new_string(m->layers[i].digest));
			json_object_object_add(l, "size",
					       json_object_new_int64((int64_t)m->layers[i].size));
		}
		json_object_array_add(lowers, l);
	}
	json_object_object_add(o, "lowers", lowers);
	lowers = NULL;
	json_object_object_add(o, "resultFile", json_object_new_string(""));
	text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_SPACED |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
out:
	json_object_put(lowers);
	json_object_put(o);
	return text;
}


/* dir/name holds text, or its old content (lib/user/durable.c). */
static int write_durable(const char *dir, const char *name, const char *text)
{
	char dst[PATH_MAX];
	int rc;

	if (snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= (int)sizeof(dst)) {
		cli_err(dir, "path too long");
		return -ENAMETOOLONG;
	}
	rc = obd_replace_file(dst, text, strlen(text), 0644);
	if (rc)
		cli_err(dst, "writing the image config: %s", strerror(-rc));
	return rc;
}

/* <cacheDir>/images (0700: it names what this host runs), made if missing. */
static int images_dir(const char *cache_dir, char *out, size_t outlen)
{
	struct stat st;
	int rc = cli_make_dirs(cache_dir);

	if (rc)
		return rc;
	if (snprintf(out, outlen, "%s/images", cache_dir) >= (int)outlen) {
		cli_err(cache_dir, "path too long");
		return -ENAMETOOLONG;
	}
	if (mkdir(out, 0700) && errno != EEXIST) {
		cli_err(out, "cannot make the directory: %s", strerror(errno));
		return -errno;
	}
	if (stat(out, &st) || !S_ISDIR(st.st_mode)) {
		cli_err(out, "not a directory");
		return -ENOTDIR;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Fetching
 * ------------------------------------------------------------------------ */
/*
 * GET manifests/<name> and parse it. want: the digest it must have (a
 * digest reference, or an index entry), or NULL. *digest: its sha256.
 */
static int fetch_manifest(struct reg_client *c, const char *arg, const char *name,
			  const char *want, struct imageref_manifest *m,
			  char digest[OBD_DIGEST_STR_LEN + 1])
{
	char *body = NULL, ctype[160], err[512];
	size_t len = 0;
	int rc;

	rc = reg_manifest_get(c, name, ACCEPT_ALL, IMAGEREF_MANIFEST_MAX, &body, &len, ctype,
			      sizeof(ctype));
	if (rc)
		return rc;
	rc = oci_digest_buf(body, len, digest);
	if (rc) {
		cli_err(arg, "sha256 failed");
		goto out;
	}
	if (want && strcmp(want, digest)) {
		cli_err(arg, "manifest %s has digest %s, expected %s", name, digest, want);
		rc = -EBADMSG;
		goto out;
	}
	rc = imageref_manifest_parse(body, len, ctype, m, err, sizeof(err));
	if (rc)
		cli_err(arg, "manifest %s: %s", name, err);
out:
	free(body);
	return rc;
}

/* The image manifest of ref: the tag or digest, through an index if it is one. */
static int fetch_image(struct reg_client *c, const char *arg, const struct imageref *ref,
		       struct imageref_manifest *m, char digest[OBD_DIGEST_STR_LEN + 1])
{
	const char *name = ref->digest[0] ? ref->digest : ref->url.tag;
	char pick[OBD_DIGEST_STR_LEN + 1];
	int rc;

	rc = fetch_manifest(c, arg, name, ref->digest[0] ? ref->digest : NULL, m, digest);
	if (rc || m->kind == IMAGEREF_IMAGE)
		return rc;
	memcpy(pick, m->pick_digest, sizeof(pick));
	rc = fetch_manifest(c, arg, pick, pick, m, digest);
	if (!rc && m->kind != IMAGEREF_IMAGE) {
		cli_err(arg, "manifest %s: the linux/amd64 entry of the index is an index itself",
			pick);
		rc = -EINVAL;
	}
	return rc;
}

int imageref_resolve(const char *arg, const struct imageref *ref, const char *svc, char *path,
		     size_t pathlen)
{
	char digest[OBD_DIGEST_STR_LEN + 1], dir[PATH_MAX], name[OBD_DIGEST_STR_LEN + 32];
	char troot[PATH_MAX];
	struct imageref_manifest *m = calloc(1, sizeof(*m));
	struct fetchd_config *cfg = calloc(1, sizeof(*cfg));
	struct reg_client c;
	char *text = NULL;
	int rc = -ENOMEM;

	memset(&c, 0, sizeof(c));
	if (!m || !cfg)
		goto out;
	rc = cli_load_service_config(svc, cfg) ? -EINVAL : 0;
	if (!rc)
		rc = reg_client_init(&c, cfg, &ref->url);
	if (!rc)
		rc = fetch_image(&c, arg, ref, m, digest);
	if (!rc)
		rc = turbo_root_dir(cfg->cache_dir, troot, sizeof(troot));
	for (unsigned int i = 0; !rc && i < m->n; i++)
		if (m->layers[i].turbo)
			rc = turbo_meta_fetch(&c, arg, troot, &m->layers[i]);
	if (rc)
		goto out;
	text = imageref_config_text(&ref->url, m, troot);
	if (!text) {
		rc = -ENOMEM;
		goto out;
	}
	rc = images_dir(cfg->cache_dir, dir, sizeof(dir));
	if (rc)
		goto out;
	snprintf(name, sizeof(name), "%s.config.v1.json", digest);
	rc = write_durable(dir, name, text);
	if (!rc && snprintf(path, pathlen, "%s/%s", dir, name) >= (int)pathlen)
		rc = -ENAMETOOLONG;
out:
	free(text);
	reg_client_free(&c);
	free(cfg);
	free(m);
	return rc;
}
