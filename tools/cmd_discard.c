// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd discard: a range of a writable layer reads as zeros and hides the
 * layers below (append mode: zeroed records; sparse: a punched hole).
 */
#include "cli.h"

int cmd_discard(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "offset", required_argument, NULL, 'o' },
		{ "length", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_layer l;
	bool have_off = false, have_len = false;
	u64 off = 0, len = 0, vsize;
	int opt, used, ret = EXIT_FAIL;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "o:l:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			if (cli_parse_size(optarg, &off))
				return cli_usage_err("discard", "bad --offset '%s'", optarg);
			have_off = true;
			break;
		case 'l':
			if (cli_parse_size(optarg, &len))
				return cli_usage_err("discard", "bad --length '%s'", optarg);
			have_len = true;
			break;
		case 'h': return cli_help("discard");
		default: return cli_usage_err("discard", "bad option");
		}
	}
	if (!have_off || !have_len)
		return cli_usage_err("discard", "--offset and --length are required");
	if (off % OBD_SECTOR_SIZE || len % OBD_SECTOR_SIZE)
		return cli_usage_err("discard", "--offset and --length must be multiples of 512");
	if (optind >= argc)
		return cli_usage_err("discard", "no layer given");
	if (cli_rw_open_args(&l, argc - optind, argv + optind, &used))
		return EXIT_FAIL;
	if (argc - optind != used) {
		cli_layer_close(&l);
		return cli_usage_err("discard", "too many arguments");
	}
	vsize = cli_rw_vsize(&l);
	if (off > vsize || len > vsize - off) {
		cli_err(l.path, "discard [%llu, %llu) is past the virtual size %llu",
			(unsigned long long)off, (unsigned long long)(off + len),
			(unsigned long long)vsize);
		goto out_close;
	}
	if (len && cli_rw_discard(&l, off, len))
		goto out_close;
	ret = EXIT_OK;
out_close:
	if (cli_rw_flush(&l))
		ret = EXIT_FAIL;
	cli_layer_close(&l);
	return ret;
}
