// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd push: upload layers (bottom first) to a registry as an OCI image
 * with the overlaybd layer annotations accelerated-container-image
 * writes, then print the config.v1.json that attaches it.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli.h"
#include "cli_oci.h"
#include "config.h"
#include "reg_client.h"
#include "url.h"

#define PUSH_DEFAULT_CHUNK	(16ULL << 20)

struct push_layer {
	const char *path;
	struct oci_blob b;
	bool uploaded;
};



/* The file must be a read-only layer the format core accepts. */
static int check_layer(const char *path)
{
	struct cli_layer l;
	int rc = cli_layer_open(&l, path, NULL, 0);

	if (!rc)
		cli_layer_close(&l);
	return rc;
}

static void push_progress(void *ctx, u64 n)
{
	cli_progress_add(ctx, n);
}

static int push_layer(struct reg_client *c, struct push_layer *pl, u64 chunk)
{
	struct cli_progress p;
	char what[64];
	u64 have = 0;
	int fd, rc;

	fd = open(pl->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cli_err(pl->path, "%s", strerror(errno));
		return -errno;
	}
	rc = oci_digest_fd(fd, pl->path, &pl->b);
	if (rc)
		goto out_close;
	if (!pl->b.size) {
		cli_err(pl->path, "empty file");
		rc = -EINVAL;
		goto out_close;
	}
	rc = reg_blob_head(c, pl->b.digest, &have);
	if (rc < 0)
		goto out_close;
	if (rc == 1 && have == pl->b.size) {
		rc = 0;
		goto out_close;
	}
	snprintf(what, sizeof(what), "push %.19s", pl->b.digest);
	cli_progress_start(&p, what, pl->b.size);
	rc = reg_blob_upload_fd(c, pl->b.digest, fd, pl->b.size, chunk, push_progress, &p);
	cli_progress_end(&p);
	if (!rc)
		pl->uploaded = true;
out_close:
	close(fd);
	return rc;
}






/* config.v1.json for obd attach / overlaybd. */
static json_object *attach_config(struct reg_client *c, const struct push_layer *pls, int n)
{
	json_object *o = json_object_new_object(), *lowers = json_object_new_array();
	char url[1024];
	int i;

	snprintf(url, sizeof(url), "%s/v2/%s/blobs", c->origin, c->reg.repo);
	json_object_object_add(o, "repoBlobUrl", json_object_new_string(url));
	for (i = 0; i < n; i++) {
		json_object *l = json_object_new_object();

		json_object_object_add(l, "digest", json_object_new_string(pls[i].b.digest));
		json_object_object_add(l, "size", json_object_new_int64((int64_t)pls[i].b.size));
		json_object_array_add(lowers, l);
	}
	json_object_object_add(o, "lowers", lowers);
	json_object_object_add(o, "resultFile", json_object_new_string(""));
	return o;
}

/* Upload a small JSON blob (the image config) unless it is there already. */
static int push_json_blob(struct reg_client *c, const char *text, char digest[OBD_DIGEST_STR_LEN + 1])
{
	size_t len = strlen(text);
	u64 have = 0;
	int rc;

	rc = oci_digest_buf(text, len, digest);
	if (rc)
		return rc;
	rc = reg_blob_head(c, digest, &have);
	if (rc < 0)
		return rc;
	if (rc == 1 && have == len)
		return 0;
	return reg_blob_upload_buf(c, digest, text, len);
}

static int push_image(struct reg_client *c, struct push_layer *pls, int n, u64 chunk,
		      char mdigest[OBD_DIGEST_STR_LEN + 1], u64 *msize)
{
	char cdigest[OBD_DIGEST_STR_LEN + 1];
	struct oci_blob *blobs;
	json_object *cfg, *man;
	const char *text;
	int i, rc;

	blobs = calloc((size_t)n, sizeof(*blobs));
	if (!blobs)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		rc = push_layer(c, &pls[i], chunk);
		if (rc)
			goto out;
		blobs[i] = pls[i].b;
	}
	cfg = oci_image_config(blobs, n);
	text = oci_text(cfg);
	rc = push_json_blob(c, text, cdigest);
	man = oci_manifest(blobs, n, cdigest, strlen(text));
	json_object_put(cfg);
	if (!rc) {
		text = oci_text(man);
		*msize = strlen(text);
		rc = oci_digest_buf(text, *msize, mdigest);
		if (!rc)
			rc = reg_manifest_put(c, c->reg.tag[0] ? c->reg.tag : "latest", text,
					      *msize);
	}
	json_object_put(man);
out:
	free(blobs);
	return rc;
}

static void print_result(struct reg_client *c, const struct push_layer *pls, int n, bool json,
			 const char *mdigest, u64 msize)
{
	json_object *cfg = attach_config(c, pls, n), *o;
	int flags = JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
		    JSON_C_TO_STRING_NOSLASHESCAPE;
	int i;

	if (!json) {
		printf("%s\n", json_object_to_json_string_ext(cfg, flags));
		json_object_put(cfg);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "manifest", oci_descriptor(OCI_MT_MANIFEST, mdigest, msize));
	{
		json_object *ls = json_object_new_array();

		for (i = 0; i < n; i++) {
			json_object *l = json_object_new_object();

			json_object_object_add(l, "file", json_object_new_string(pls[i].path));
			json_object_object_add(l, "digest", json_object_new_string(pls[i].b.digest));
			json_object_object_add(l, "size", json_object_new_int64((int64_t)pls[i].b.size));
			json_object_object_add(l, "uploaded", json_object_new_boolean(pls[i].uploaded));
			json_object_array_add(ls, l);
		}
		json_object_object_add(o, "layers", ls);
	}
	json_object_object_add(o, "config", cfg);
	printf("%s\n", json_object_to_json_string_ext(o, flags));
	json_object_put(o);
}

int cmd_push(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "service-config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "chunk-size", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		CLI_PROGRESS_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	const char *svc = NULL;
	struct fetchd_config cfg;
	struct push_layer *pls = NULL;
	struct reg_client c;
	struct reg_url ref;
	char err[512], mdigest[OBD_DIGEST_STR_LEN + 1];
	u64 chunk = PUSH_DEFAULT_CHUNK, msize = 0;
	bool json = false;
	int opt, i, n, ret = EXIT_FAIL;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': svc = optarg; break;
		case 'j': json = true; break;
		case 'C':
			if (cli_parse_size(optarg, &chunk) || !chunk)
				return cli_usage_err("push", "bad --chunk-size '%s'", optarg);
			break;
		case CLI_OPT_PROGRESS: cli_progress_mode = 1; break;
		case CLI_OPT_NO_PROGRESS: cli_progress_mode = 0; break;
		case 'h': return cli_help("push");
		default: return cli_usage_err("push", "bad option");
		}
	}
	if (argc - optind < 2)
		return cli_usage_err("push", "expected REF and at least one LAYER");
	if (url_parse_ref(argv[optind], &ref, err, sizeof(err)))
		return cli_usage_err("push", "%s", err);
	n = argc - optind - 1;
	if (n > OBD_MAX_LAYERS)
		return cli_usage_err("push", "%d layers, at most %d", n, OBD_MAX_LAYERS);
	pls = calloc((size_t)n, sizeof(*pls));
	if (!pls)
		return EXIT_FAIL;
	for (i = 0; i < n; i++) {
		pls[i].path = argv[optind + 1 + i];
		if (check_layer(pls[i].path))
			goto out_free;
	}
	if (cli_load_service_config(svc, &cfg))
		goto out_free;
	if (reg_client_init(&c, &cfg, &ref))
		goto out_client;
	if (push_image(&c, pls, n, chunk, mdigest, &msize))
		goto out_client;
	print_result(&c, pls, n, json, mdigest, msize);
	ret = EXIT_OK;
out_client:
	reg_client_free(&c);
out_free:
	free(pls);
	return ret;
}
