// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: the tools' config.v1.json reader, cli_config_load()
 * (tools/cli_stack.c, json-c). It takes a path, so each input is written
 * to config.v1.json in a private temp folder that also holds a few layer
 * files, so that "file"/"dir" entries can resolve and the success path
 * (path building, upper data/index) is fuzzed too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "cli.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256];
static char cfg[320];

static void touch(const char *rel)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	f = fopen(p, "w");
	if (f)
		fclose(f);
}

static void cleanup(void)
{
	static const char *const files[] = {
		"config.v1.json", "l1/overlaybd.commit", "l2/.commit", "l3/overlaybd.sealed",
		"layer.commit", "upper.data", "upper.index",
	};
	char p[256];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		unlink(p);
	}
	for (int i = 1; i <= 3; i++) {
		snprintf(p, sizeof(p), "%s/l%d", dir, i);
		rmdir(p);
	}
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char p[256];

	/* one file write per input: a tmpfs if there is one */
	const char *base = getenv("FUZZ_TMPDIR");

	if (!base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof(dir), "%s/obd-fuzz-config.XXXXXX", base);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	for (int i = 1; i <= 3; i++) {
		snprintf(p, sizeof(p), "%s/l%d", dir, i);
		mkdir(p, 0755);
	}
	touch("l1/overlaybd.commit");
	touch("l2/.commit");
	touch("l3/overlaybd.sealed");
	touch("layer.commit");
	touch("upper.data");
	touch("upper.index");
	snprintf(cfg, sizeof(cfg), "%s/config.v1.json", dir);
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char **paths = NULL, *ud = NULL, *ui = NULL;
	unsigned int n = 0;
	FILE *f;
	int rc;

	if (size > (1u << 20))
		return 0;
	f = fopen(cfg, "wb");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);

	(void)cli_is_config(cfg);
	rc = cli_config_load(cfg, &paths, &n, &ud, &ui);
	if (rc == 0) {
		if (n > OBD_MAX_LAYERS) {
			fprintf(stderr, "fuzz invariant failed: %u layers accepted\n", n);
			abort();
		}
		for (unsigned int i = 0; i < n; i++) {
			if (!paths[i]) {
				fprintf(stderr, "fuzz invariant failed: layer %u without a path\n", i);
				abort();
			}
			free(paths[i]);
		}
		free(paths);
		if ((ud == NULL) != (ui == NULL)) {
			fprintf(stderr, "fuzz invariant failed: upper data without index\n");
			abort();
		}
		free(ud);
		free(ui);
	} else {
		if (paths || ud || ui) {
			fprintf(stderr, "fuzz invariant failed: outputs set on failure\n");
			abort();
		}
	}
	return 0;
}
