// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd write: bytes from a file or stdin into a writable layer.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define WRITE_CHUNK	(4u << 20)

int cmd_write(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "offset", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_layer l;
	const char *src = NULL, *sname;
	bool have_off = false;
	u64 off = 0, pos, vsize;
	struct stat st;
	u8 *buf = NULL;
	int opt, used, fd = 0, ret = EXIT_FAIL;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			if (cli_parse_size(optarg, &off))
				return cli_usage_err("write", "bad --offset '%s'", optarg);
			have_off = true;
			break;
		case 'h': return cli_help("write");
		default: return cli_usage_err("write", "bad option");
		}
	}
	if (!have_off)
		return cli_usage_err("write", "--offset is required");
	if (optind >= argc)
		return cli_usage_err("write", "no layer given");
	if (off % OBD_SECTOR_SIZE)
		return cli_usage_err("write", "--offset %llu is not a multiple of 512",
				     (unsigned long long)off);
	if (cli_rw_open_args(&l, argc - optind, argv + optind, &used))
		return EXIT_FAIL;
	if (argc - optind - used > 1) {
		cli_layer_close(&l);
		return cli_usage_err("write", "too many arguments");
	}
	if (argc - optind - used == 1)
		src = argv[optind + used];
	sname = cli_is_stdio(src) ? "<stdin>" : src;
	if (!cli_is_stdio(src)) {
		fd = open(src, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			cli_err(src, "%s", strerror(errno));
			goto out_close;
		}
		if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_size % OBD_SECTOR_SIZE) {
			cli_err(src, "length %lld is not a multiple of 512", (long long)st.st_size);
			goto out_fd;
		}
	}
	buf = malloc(WRITE_CHUNK);
	if (!buf) {
		cli_err(NULL, "out of memory");
		goto out_fd;
	}
	vsize = cli_rw_vsize(&l);
	for (pos = off;;) {
		ssize_t n = cli_read_upto(fd, buf, WRITE_CHUNK);

		if (n < 0) {
			cli_err(sname, "read: %s", strerror((int)-n));
			goto out_fd;
		}
		if (!n)
			break;
		if (n % OBD_SECTOR_SIZE) {
			cli_err(sname, "length %llu is not a multiple of 512",
				(unsigned long long)(pos - off + (u64)n));
			goto out_fd;
		}
		if (pos + (u64)n > vsize) {
			cli_err(l.path, "write [%llu, %llu) is past the virtual size %llu",
				(unsigned long long)pos, (unsigned long long)(pos + (u64)n),
				(unsigned long long)vsize);
			goto out_fd;
		}
		if (cli_rw_write(&l, buf, (u64)n, pos))
			goto out_fd;
		pos += (u64)n;
		if ((size_t)n < WRITE_CHUNK)
			break;
	}
	ret = EXIT_OK;
out_fd:
	if (fd > 0)
		close(fd);
out_close:
	free(buf);
	if (cli_rw_flush(&l))
		ret = EXIT_FAIL;
	cli_layer_close(&l);
	return ret;
}
