// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd import: a raw disk image into a writable layer. All-zero 4 KiB
 * blocks are skipped (they read as zeros anyway on a fresh layer);
 * adjacent non-zero blocks become one write.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define IMPORT_BLOCK	4096u
#define IMPORT_CHUNK	(4u << 20)

static bool block_is_zero(const u8 *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

int cmd_import(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "offset", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		CLI_PROGRESS_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct cli_progress prog;
	struct cli_layer l;
	const char *img;
	u64 off = 0, pos = 0, vsize, size;
	struct stat st;
	u8 *buf = NULL;
	int opt, used, fd, ret = EXIT_FAIL;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			if (cli_parse_size(optarg, &off))
				return cli_usage_err("import", "bad --offset '%s'", optarg);
			break;
		case CLI_OPT_PROGRESS: cli_progress_mode = 1; break;
		case CLI_OPT_NO_PROGRESS: cli_progress_mode = 0; break;
		case 'h': return cli_help("import");
		default: return cli_usage_err("import", "bad option");
		}
	}
	if (argc - optind < 2)
		return cli_usage_err("import", "expected LAYER... RAWIMAGE");
	if (off % OBD_SECTOR_SIZE)
		return cli_usage_err("import", "--offset %llu is not a multiple of 512",
				     (unsigned long long)off);
	img = argv[argc - 1];
	fd = open(img, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cli_err(img, "%s", strerror(errno));
		return EXIT_FAIL;
	}
	if (fstat(fd, &st)) {
		cli_err(img, "%s", strerror(errno));
		close(fd);
		return EXIT_FAIL;
	}
	size = (u64)st.st_size;
	if (cli_rw_open_args(&l, argc - optind - 1, argv + optind, &used)) {
		close(fd);
		return EXIT_FAIL;
	}
	if (argc - optind - 1 != used) {
		close(fd);
		cli_layer_close(&l);
		return cli_usage_err("import", "too many arguments");
	}
	vsize = cli_rw_vsize(&l);
	if (S_ISREG(st.st_mode) && (off > vsize || size > vsize - off)) {
		cli_err(img, "image of %llu bytes at offset %llu does not fit the virtual size %llu",
			(unsigned long long)size, (unsigned long long)off,
			(unsigned long long)vsize);
		goto out_fd;
	}
	buf = malloc(IMPORT_CHUNK);
	if (!buf) {
		cli_err(NULL, "out of memory");
		goto out_fd;
	}
	cli_progress_start(&prog, "import", S_ISREG(st.st_mode) ? size : 0);
	for (;;) {
		ssize_t n = cli_read_upto(fd, buf, IMPORT_CHUNK);
		size_t i = 0, padded;

		if (n < 0) {
			cli_err(img, "read: %s", strerror((int)-n));
			goto out_prog;
		}
		if (!n)
			break;
		/* a tail that is not whole sectors is written padded with zeros */
		padded = OBD_ALIGN_UP((size_t)n, OBD_SECTOR_SIZE);
		memset(buf + n, 0, padded - (size_t)n);
		if (off + pos + padded > vsize) {
			cli_err(img, "image does not fit the virtual size %llu",
				(unsigned long long)vsize);
			goto out_prog;
		}
		while (i < padded) {
			size_t bl = padded - i < IMPORT_BLOCK ? padded - i : IMPORT_BLOCK, j;

			if (block_is_zero(buf + i, bl)) {
				i += bl;
				continue;
			}
			for (j = i + bl; j < padded; j += bl) {
				bl = padded - j < IMPORT_BLOCK ? padded - j : IMPORT_BLOCK;
				if (block_is_zero(buf + j, bl))
					break;
			}
			if (cli_rw_write(&l, buf + i, j - i, off + pos + i))
				goto out_prog;
			i = j;
		}
		pos += (u64)n;
		cli_progress_add(&prog, (u64)n);
		if ((size_t)n < IMPORT_CHUNK)
			break;
	}
	ret = EXIT_OK;
out_prog:
	cli_progress_end(&prog);
out_fd:
	close(fd);
	free(buf);
	if (cli_rw_flush(&l))
		ret = EXIT_FAIL;
	cli_layer_close(&l);
	return ret;
}
