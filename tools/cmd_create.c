// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd create / overlaybd-create: a new writable layer (spec 2.6a, 2.6b).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "lsmt_write.h"

/* The writer picks a random uuid; --uuid replaces it in the header(s). */
static int set_uuid(const char *path, const u8 uuid[OBD_UUID_STR_LEN])
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return -errno;
	rc = obd_pwrite_all(fd, uuid, OBD_UUID_STR_LEN,
			     __builtin_offsetof(struct obd_lsmt_ht, uuid));
	if (!rc && fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

static int do_create(const char *data, const char *index, u64 vsize, const char *parent,
		     const u8 *uuid, bool sparse)
{
	struct obd_rw_layer l;
	struct obd_err err = { "" };
	int rc;

	/* 0: the size of the layers below, set when it is first attached over them */
	if (vsize % OBD_SECTOR_SIZE) {
		cli_err(data, "virtual size %llu must be a multiple of 512",
			(unsigned long long)vsize);
		return EXIT_USAGE;
	}
	if (vsize >> OBD_SECTOR_SHIFT > OBD_MAP_OFFSET_MASK) {
		cli_err(data, "virtual size %llu is too large", (unsigned long long)vsize);
		return EXIT_USAGE;
	}
	rc = obd_rw_create(&l, data, sparse ? NULL : index, vsize, parent, sparse, &err);
	if (rc) {
		cli_err_core(data, rc, &err);
		return EXIT_FAIL;
	}
	rc = obd_rw_close(&l, &err);
	if (rc) {
		cli_err_core(data, rc, &err);
		return EXIT_FAIL;
	}
	if (uuid) {
		rc = set_uuid(data, uuid);
		if (!rc && !sparse)
			rc = set_uuid(index, uuid);
		if (rc) {
			cli_err(data, "setting the uuid: %s", strerror(-rc));
			return EXIT_FAIL;
		}
	}
	return EXIT_OK;
}

int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sparse", no_argument, NULL, 's' },
		{ "parent-uuid", required_argument, NULL, 'u' },
		{ "uuid", required_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	u8 parent[OBD_UUID_STR_LEN] = "", uuid[OBD_UUID_STR_LEN];
	bool sparse = false, have_uuid = false;
	const char *data, *index = NULL, *vs;
	u64 vsize;
	int opt, npos;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "su:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's': sparse = true; break;
		case 'u':
			if (cli_parse_uuid(optarg, parent))
				return cli_usage_err("create", "bad --parent-uuid '%s'", optarg);
			break;
		case 'U':
			if (cli_parse_uuid(optarg, uuid))
				return cli_usage_err("create", "bad --uuid '%s'", optarg);
			have_uuid = true;
			break;
		case 'h': return cli_help("create");
		default: return cli_usage_err("create", "bad option");
		}
	}
	npos = argc - optind;
	if (npos != (sparse ? 2 : 3))
		return cli_usage_err("create", sparse ? "--sparse takes DATA VSIZE" :
				     "expected DATA INDEX VSIZE");
	data = argv[optind];
	if (!sparse)
		index = argv[optind + 1];
	vs = argv[argc - 1];
	if (cli_parse_size(vs, &vsize))
		return cli_usage_err("create", "bad VSIZE '%s'", vs);
	return do_create(data, index, vsize, (const char *)parent, have_uuid ? uuid : NULL,
			 sparse);
}

/* overlaybd-create [-u parent_uuid] [-s] <data> <index> <vsize_GiB> */
int compat_overlaybd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "parent_uuid", required_argument, NULL, 'u' },
		{ "sparse", no_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "turboOCI", no_argument, NULL, 'T' },
		{ "fastoci", no_argument, NULL, 'T' },
		{ "raw", no_argument, NULL, 'R' },
		{ "mkfs", no_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *usage = "usage: overlaybd-create [-u parent_uuid] [-s] <data> <index> <vsize_GiB>\n";
	u8 parent[OBD_UUID_STR_LEN] = "";
	bool sparse = false;
	char *end;
	unsigned long long gib;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "u:svh", opts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			if (cli_parse_uuid(optarg, parent)) {
				cli_err(NULL, "invalid parent uuid '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 's': sparse = true; break;
		case 'v': break;
		case 'T': case 'R': case 'M':
			cli_err(NULL, "%s is not supported by this implementation", argv[optind - 1]);
			return EXIT_USAGE;
		case 'h': fputs(usage, stdout); return EXIT_OK;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	if (argc - optind != 3) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	errno = 0;
	gib = strtoull(argv[optind + 2], &end, 10);
	/* 0: the size comes from the layers below (the reference snapshotter's
	 * writable layer over a parent) */
	if (errno || *end || gib > (1ULL << 20)) {
		cli_err(NULL, "invalid vsize_GiB '%s'", argv[optind + 2]);
		return EXIT_USAGE;
	}
	return do_create(argv[optind], argv[optind + 1], (u64)gib << 30, (const char *)parent,
			 NULL, sparse);
}
