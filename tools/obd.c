// SPDX-License-Identifier: GPL-2.0-only
/*
 * obd: overlaybd images from the command line. One binary, a table of
 * subcommands (git.c's shape); also answers to the reference tools' names
 * overlaybd-create, overlaybd-commit and overlaybd-zfile.
 */
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

#define PROGRESS_HELP \
	"      --progress / --no-progress  force the progress bar on or off\n" \
	"                                  (default: on when stderr is a terminal)\n"
/* obd build and convert: the upper grows in OUT, on the host's file system. */
#define MIN_FREE_HELP \
	"      --min-free SIZE    stop (tar, cp, skopeo killed) when the file system of\n" \
	"                         OUT has less free (default 5%, 64M..1G; 0: never)\n"

static const struct cli_cmd cmds[] = {
	{ "create", cmd_create,
	  "obd create [-s|--sparse] [-u|--parent-uuid U] [--uuid U] DATA [INDEX] VSIZE",
	  "Create a writable layer of virtual size VSIZE (bytes, or with a unit:\n"
	  "64M, 10G). Append mode (default) needs DATA and INDEX; --sparse needs\n"
	  "only DATA (a sparse file of VSIZE + 4 KiB). Files must not exist.\n"
	  "  -s, --sparse           sparse writable layer\n"
	  "  -u, --parent-uuid U    record U as the parent layer's uuid\n"
	  "      --uuid U           this layer's uuid (default: random)\n",
	  "create a writable layer" },
	{ "write", cmd_write,
	  "obd write LAYER... --offset N [FILE|-]",
	  "Write FILE (or stdin) into the writable layer at byte offset N.\n"
	  "LAYER is DATA INDEX (append mode) or DATA (sparse). N and the length\n"
	  "must be multiples of 512.\n"
	  "  -o, --offset N         virtual byte offset (units allowed)\n",
	  "write bytes into a writable layer" },
	{ "import", cmd_import,
	  "obd import [--offset N] LAYER... RAWIMAGE",
	  "Copy every non-zero 4 KiB block of RAWIMAGE into the writable layer\n"
	  "(adjacent blocks are coalesced into one write).\n"
	  "  -o, --offset N         virtual byte offset of the image (default 0)\n"
	  PROGRESS_HELP,
	  "import a raw disk image into a writable layer" },
	{ "discard", cmd_discard,
	  "obd discard LAYER... --offset N --length N",
	  "Discard a range of a writable layer: it reads as zeros and hides the\n"
	  "layers below. Offset and length must be multiples of 512.\n"
	  "  -o, --offset N\n  -l, --length N\n",
	  "discard a range of a writable layer" },
	{ "commit", cmd_commit,
	  "obd commit [-m MSG] [--uuid U] [-p|--parent-uuid P] [-z [--algorithm lz4|zstd]\n"
	  "           [--bs 4..64]] [-t] [-f] [--seal] [--commit_sealed] DATA [INDEX] OUT",
	  "Compact a writable layer (DATA INDEX, or a sparse DATA) or a sealed layer\n"
	  "(DATA) into a committed read-only layer OUT.\n"
	  "  -m, --message MSG      user tag (at most 256 bytes)\n"
	  "      --uuid U           uuid of the new layer (default: null)\n"
	  "  -p, --parent-uuid P    parent uuid (default: the source's)\n"
	  "  -z, --zfile            compress into a ZFile (CRC on, header overwritten)\n"
	  "      --algorithm A      lz4 (default) or zstd\n"
	  "      --bs KiB           ZFile block size: 4 (default), 8, 16, 32, 64\n"
	  "  -t, --tar              wrap the output in a tar (pax + overlaybd.commit)\n"
	  "  -f, --force            replace OUT if it exists\n"
	  "      --seal             seal DATA INDEX in place (no OUT)\n"
	  "      --commit_sealed    DATA is a sealed layer; the 2nd path is OUT\n"
	  PROGRESS_HELP,
	  "commit a writable layer into a read-only layer" },
	{ "zfile", cmd_zfile,
	  "obd zfile [-t] [-f] [--algorithm lz4|zstd] [--bs 4..64] SRC [DST]\n"
	  "       obd zfile -x [-t] [-f] SRC DST\n"
	  "       obd zfile --verify [-t] [SRC]",
	  "Compress SRC into the ZFile DST (CRC on). With one path, read stdin and\n"
	  "write that path. -x decompresses; --verify checks every block CRC.\n"
	  "  -x, --extract          decompress SRC into DST\n"
	  "      --verify           verify block CRCs and decoding\n"
	  "  -t, --tar              tar wrap the output (or unwrap the input for -x)\n"
	  "  -f, --force            replace DST if it exists\n"
	  "      --algorithm A      lz4 (default) or zstd\n"
	  "      --bs KiB           block size: 4 (default), 8, 16, 32, 64\n"
	  PROGRESS_HELP,
	  "compress, decompress or verify a ZFile" },
	{ "info", cmd_info,
	  "obd info [--json] LAYER... | CONFIG.v1.json",
	  "Describe each layer (kind, wrapping, sizes, uuids, tag, segments, ZFile\n"
	  "parameters) and, for a stack, the merged index.\n"
	  "  -j, --json             JSON output\n",
	  "describe layers and stacks" },
	{ "cat", cmd_cat,
	  "obd cat [--offset N] [--length N] [-o OUT] LAYER... | CONFIG.v1.json",
	  "Write the merged virtual disk (layers bottom to top; a writable layer\n"
	  "may be the top) to stdout or OUT. OUT is written sparse.\n"
	  "      --offset N         start (multiple of 512, default 0)\n"
	  "      --length N         bytes (multiple of 512, default: to the end)\n"
	  "  -o, --output OUT       write to OUT instead of stdout\n"
	  "      --no-verify        skip ZFile block CRC checks\n"
	  PROGRESS_HELP,
	  "read the virtual disk" },
	{ "check", cmd_check,
	  "obd check [--json] LAYER... | CONFIG.v1.json",
	  "Verify headers, indexes, every ZFile block (CRC and decode), tar headers\n"
	  "and the uuid chain. Exit 0 if clean, 1 if problems were found.\n"
	  "  -j, --json             JSON output\n"
	  "  -q, --quiet            print only problems\n"
	  PROGRESS_HELP,
	  "verify layers" },
	{ "attach", cmd_attach,
	  "obd attach [--name NAME] [--direct-io] [--no-verify] [--table]\n"
	  "           [--service-config FILE] LAYER... | CONFIG.v1.json | REF",
	  "Create a dm-overlaybd device over the layers (bottom first) and print\n"
	  "its /dev/mapper path. Layers are validated first. Config lowers with a\n"
	  "digest and no local copy are remote (repoBlobUrl + \"/\" + digest): their\n"
	  "cache entries are made in cacheConfig.cacheDir and the ranges obd reads\n"
	  "to validate them are fetched into the cache.\n"
	  "REF ([http://|https://]HOST[:PORT]/REPO[:TAG|@sha256:HEX], as for push;\n"
	  "an argument that is no file and does not end in .json) names an overlaybd\n"
	  "image in a registry: its manifest (an index: the linux/amd64 one) gives the\n"
	  "lowers from the overlaybd layer annotations; the config is written to\n"
	  "<cacheDir>/images/sha256:<manifest hex>.config.v1.json and attached.\n"
	  "  -n, --name NAME        device name (default: the first free obdN)\n"
	  "  -c, --service-config F service config (default " FETCHD_DEFAULT_CONFIG ")\n"
	  "      --direct-io        read layer files with direct I/O\n"
	  "      --no-verify        skip ZFile block CRC checks in the kernel\n"
	  "      --table            print the dm table line and exit (for dmsetup)\n",
	  "create a device-mapper device" },
	{ "mount", cmd_mount,
	  "obd mount [--service-config FILE] [--rw RWDIR | --upper DATA [INDEX]] [--name NAME]\n"
	  "          IMAGE... DIR",
	  "Attach IMAGE as obd attach does (LAYER... bottom first, a CONFIG.v1.json or\n"
	  "a REF) and mount its file system (ext4, xfs or erofs, found by its\n"
	  "superblock) at DIR: read-only; with --upper, the writable layer DATA\n"
	  "[INDEX] goes on top and the file system is mounted read-write (refused\n"
	  "for erofs, a read-only file system); with --rw,\n"
	  "an overlayfs over the read-only mount with RWDIR/fs as its upper and\n"
	  "RWDIR/work as its work directory (all made if missing): a container rootfs.\n"
	  "What it made is recorded in " "/run/overlaybd/mounts" "; obd umount DIR undoes it.\n"
	  "  -n, --name NAME        device name (default: the first free obdN)\n"
	  "  -c, --service-config F service config (default " FETCHD_DEFAULT_CONFIG ")\n"
	  "      --rw RWDIR         overlayfs with its upper and work directories in RWDIR\n"
	  "      --upper DATA [INDEX]  a writable layer on top (obd create makes one)\n",
	  "mount an image's file system" },
	{ "umount", cmd_umount,
	  "obd umount DIR",
	  "Unmount what obd mount mounted at DIR (the overlayfs and the read-only\n"
	  "mount below it) and remove its device. Refuses a DIR obd mount did not\n"
	  "mount, and a busy one (then nothing changes).\n",
	  "unmount and detach what obd mount made" },
	{ "detach", cmd_detach,
	  "obd detach NAME",
	  "Remove the dm-overlaybd device NAME.\n",
	  "remove a device-mapper device" },
	{ "snapshot", cmd_snapshot,
	  "obd snapshot NAME [NEW_DATA NEW_INDEX]",
	  "Live snapshot of the writable device NAME (append-mode upper): the upper's\n"
	  "data file is sealed in place (the reference's close_seal) and becomes the\n"
	  "top read-only layer, and a fresh upper (NEW_DATA NEW_INDEX, default\n"
	  "<stem>.<k>.data/.index beside the old data file, k the first free number;\n"
	  "parent uuid: the sealed layer's) goes on top, through a dm suspend, reload\n"
	  "and resume. Writes completed before are in the sealed layer; writes issued\n"
	  "meanwhile wait and go to the new upper. The old index file is no longer\n"
	  "used. The sealed file commits with obd commit --commit_sealed. On failure\n"
	  "the device goes on with its old table. Prints the sealed file and the new\n"
	  "upper.\n",
	  "seal the upper of a live device, stack a fresh one" },
	{ "list", cmd_list,
	  "obd list [--json]",
	  "List the device-mapper devices with target overlaybd.\n"
	  "  -j, --json             JSON output\n",
	  "list devices" },
	{ "build", cmd_build,
	  "obd build [--size SIZE] [--no-zfile] [--no-tar] [--algorithm lz4|zstd] [--bs 4..64]\n"
	  "          [--min-free SIZE] [-m MSG] [--tag TAG] DIR OUT",
	  "Make an overlaybd image of the directory tree DIR in OUT (made if missing,\n"
	  "else empty), as an OCI image layout: the device-mapper target writes it.\n"
	  "A fresh upper is attached, mkfs.ext4 runs on the device, the tree is\n"
	  "copied in with cp -a (owners, modes, times, xattrs, hard links, symlinks,\n"
	  "device nodes), and the upper is committed (ZFile and tar unless turned\n"
	  "off) to the layer blob in OUT/blobs/sha256/, with the image config and\n"
	  "manifest obd push uploads for it, OUT/index.json (ref name TAG, default\n"
	  "latest) and OUT/config.v1.json (the blob as a local lower, for obd attach).\n"
	  "Prints the layer and manifest digests. Needs root and the dm-overlaybd\n"
	  "module.\n"
	  "  -s, --size SIZE        the file system's (virtual) size (default 64G)\n"
	  "      --no-zfile         commit without ZFile compression\n"
	  "      --no-tar           commit without the tar wrapping\n"
	  "      --algorithm A      ZFile codec: lz4 (default) or zstd\n"
	  "      --bs N             ZFile block size in KiB (default 4)\n"
	  "  -m, --message MSG      the layer's user tag\n"
	  "      --tag TAG          the image's ref name in index.json (default latest)\n"
	  MIN_FREE_HELP
	  PROGRESS_HELP,
	  "make an image of a directory tree" },
	{ "convert", cmd_convert,
	  "obd convert [--size SIZE] [--no-zfile] [--no-tar] [--algorithm lz4|zstd] [--bs 4..64]\n"
	  "            [--min-free SIZE] [-m MSG] [--tag TAG] [--src-tls-verify=true|false]\n"
	  "            [--insecure-policy] SOURCE OUTDIR\n"
	  "       obd convert --turbo-oci [--size SIZE] [--no-zero-detect] [--tag TAG]\n"
	  "            [--src-tls-verify=true|false] [--insecure-policy] SOURCE OUTDIR",
	  "Turn an OCI image into an overlaybd image in OUTDIR (made if missing, else\n"
	  "empty), one overlaybd layer per OCI layer, as an OCI image layout like obd\n"
	  "build's (layer blobs, image config and manifest for obd push, index.json,\n"
	  "config.v1.json with the blobs as local lowers). SOURCE uses skopeo's\n"
	  "transport names: oci:DIR[:TAG], docker-archive:FILE,\n"
	  "docker://[HOST/]REPO:TAG (skopeo copies it first; its credentials apply).\n"
	  "Each layer: a fresh upper over the layers so far is attached and mounted\n"
	  "(mkfs.ext4 for the first), the layer's whiteouts are applied (.wh.NAME,\n"
	  ".wh..wh..opq), the tar extracted with GNU tar (gzip, zstd; owners, modes,\n"
	  "times, xattrs, hard links, symlinks, devices), and the upper committed.\n"
	  "Prints the layer digests and the manifest digest. Needs root, the\n"
	  "dm-overlaybd module, skopeo and GNU tar.\n"
	  "  -s, --size SIZE        the file system's (virtual) size (default 64G)\n"
	  "      --no-zfile, --no-tar, --algorithm, --bs, -m   as for obd commit\n"
	  "      --tag TAG          the image's ref name in index.json (default latest)\n"
	  "      --src-tls-verify B passed to skopeo (false: a plain-http registry)\n"
	  "      --insecure-policy  skopeo --insecure-policy: accept the source without\n"
	  "                         /etc/containers/policy.json's signature rules\n"
	  "      --turbo-oci        a TurboOCI image instead (docs/turbo-oci.md): per\n"
	  "                         layer (gzip or plain tar) an ext4 meta layer whose\n"
	  "                         file data points into the original layer, its gzip\n"
	  "                         index, the manifest with the TurboOCI annotations;\n"
	  "                         built in userspace (libext2fs): no root, no module\n"
	  "      --no-zero-detect   --turbo-oci: copy all-zero meta sectors as data (as\n"
	  "                         the reference writes them) instead of zeroed records\n"
	  MIN_FREE_HELP
	  PROGRESS_HELP,
	  "convert an OCI image to overlaybd" },
	{ "push", cmd_push,
	  "obd push [--service-config FILE] [--json] [--chunk-size N] REF LAYER...",
	  "Upload the layers (bottom first) to the registry as an OCI image with the\n"
	  "overlaybd annotations, then print the config.v1.json that attaches it\n"
	  "(repoBlobUrl and lowers {digest, size}). REF is\n"
	  "[http://|https://]HOST[:PORT]/REPO[:TAG] (https and tag latest by default).\n"
	  "Blobs the registry has already are not sent again. Credentials, CA and\n"
	  "client certificate come from the service config.\n"
	  "  -c, --service-config F service config (default " FETCHD_DEFAULT_CONFIG ")\n"
	  "  -j, --json             print a JSON report: manifest, layers, config\n"
	  "      --chunk-size N     blobs larger than N go in PATCH chunks of N (16M)\n"
	  PROGRESS_HELP,
	  "upload layers to a registry" },
	{ "cache", cmd_cache,
	  "obd cache [--service-config FILE] [--dir DIR | --gzip] [--json]\n"
	  "       obd cache prune [--service-config FILE] [--dir DIR | --gzip] [--all | --to SIZE]\n"
	  "                       [--grace S] [--dry-run] [--force] [--json]",
	  "List the entries of the registry cache (cacheConfig.cacheDir): blob size,\n"
	  "bytes cached, state (complete, partial or broken, with the reason), last\n"
	  "use, the dm devices using it (from the overlaybd tables; \"unknown\" without\n"
	  "device-mapper), then the usage against cacheConfig.cacheSizeGB.\n"
	  "prune removes entries no device uses, least recently used first (broken\n"
	  "ones first of all): down to the water mark of cacheSizeGB\n"
	  "(max(90 %, size - 50 GiB), as overlaybd-fetchd evicts), to SIZE, or all.\n"
	  "Entries used in the last S seconds (default evictGraceSec, 60) are kept.\n"
	  "If the dm tables cannot be read, prune refuses unless --force.\n"
	  "--gzip: the daemon's gunzip entries (gzipCacheConfig.cacheDir, cacheSizeGB)\n"
	  "instead; the listing shows them after the registry cache when\n"
	  "gzipCacheConfig.enable is set. They are marked [gunzip] (JSON \"gunzip\").\n"
	  "  -c, --service-config F service config (default " FETCHD_DEFAULT_CONFIG ")\n"
	  "      --dir DIR          the cache directory instead of cacheConfig.cacheDir\n"
	  "      --gzip             the gunzip entries (gzipCacheConfig.cacheDir)\n"
	  "  -j, --json             JSON output\n"
	  "      --all              prune: every unused entry\n"
	  "      --to SIZE          prune: down to SIZE bytes on disk (512M, 0.5G)\n"
	  "      --grace S          prune: keep entries used in the last S seconds\n"
	  "      --dry-run          prune: print what would be removed, remove nothing\n"
	  "      --force            prune even when device use is unknown\n",
	  "list and prune the registry cache" },
	{ "trace", cmd_trace,
	  "obd trace record [--no-watch] [-f] NAME FILE | obd trace stop NAME\n"
	  "       obd trace show|dump [--json] [--records] FILE...\n"
	  "       obd trace replay [--concurrency N] [--wait [--timeout S]] NAME FILE\n"
	  "       obd trace files [--concurrency N] NAME LIST\n"
	  "       obd trace build OUT [TEXT|-]",
	  "Record the reads of device NAME into a trace file, the overlaybd reference's\n"
	  "format (spec 6.7), and replay one: its ranges are prefetched by the module\n"
	  "(through overlaybd-fetchd for remote layers) behind the device's own misses.\n"
	  "  record   start recording: FILE (made empty if missing) and FILE.lock; a\n"
	  "           background watcher writes the trace once FILE.lock is deleted\n"
	  "  stop     stop, write FILE (and FILE.ok, FILE.lock removed), free the records\n"
	  "  show     validate FILE (a trace, or a tar holding one file `trace`: an\n"
	  "           acceleration layer) and print records and per-layer totals\n"
	  "  replay   send FILE's reads to NAME as prefetch requests\n"
	  "  files    dynamic mode: mount NAME read-only, map the files of LIST\n"
	  "           (absolute paths; a trailing / or * walks a directory) with FIEMAP\n"
	  "           and read their extents from the device\n"
	  "  build    write the trace OUT from text lines \"[R|W] LAYER OFFSET COUNT\"\n"
	  "obd attach honours a config's recordTracePath (missing: off; empty: record;\n"
	  "a trace: replay; anything else: a file list) and accelerationLayer; obd\n"
	  "detach of a recording device writes its trace first.\n"
	  "  -j, --json             show: JSON output\n"
	  "  -r, --records          show: every record too\n"
	  "  -c, --concurrency N    replay: batches of 64 ranges queued ahead (16);\n"
	  "                         files: reader threads (16)\n"
	  "  -w, --wait             replay: until the module's prefetch queue is idle\n"
	  "  -t, --timeout S        replay --wait: give up after S seconds (600)\n"
	  "      --no-watch         record: no background watcher\n"
	  "  -f, --force            record: over a non-empty FILE\n"
	  PROGRESS_HELP,
	  "record and replay start-up traces" },
	{ "help", cmd_help, "obd help [CMD]", "Show help for obd or for CMD.\n",
	  "show help" },
	{ "version", cmd_version, "obd version", "Print the version.\n",
	  "print the version" },
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

const struct cli_cmd *cli_find_cmd(const char *name)
{
	size_t i;

	for (i = 0; i < NCMDS; i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

void cli_usage(const struct cli_cmd *cmd, FILE *f)
{
	fprintf(f, "usage: %s\n", cmd->usage);
}

int cli_usage_err(const char *name, const char *fmt, ...)
{
	const struct cli_cmd *cmd = cli_find_cmd(name);
	char buf[512], clean[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (strcmp(cli_prog, "obd")) {
		/* compat names: the reference tools' shape, no obd subcommand */
		fprintf(stderr, "%s: %s\n", cli_prog, cli_sanitize(buf, clean, sizeof(clean)));
		fprintf(stderr, "Try '%s --help'.\n", cli_prog);
		return EXIT_USAGE;
	}
	fprintf(stderr, "%s %s: %s\n", cli_prog, name, cli_sanitize(buf, clean, sizeof(clean)));
	if (cmd)
		cli_usage(cmd, stderr);
	fprintf(stderr, "Try 'obd help %s'.\n", name);
	return EXIT_USAGE;
}

int cli_help(const char *name)
{
	const struct cli_cmd *cmd = cli_find_cmd(name);

	if (!cmd)
		return EXIT_USAGE;
	cli_usage(cmd, stdout);
	printf("\n%s", cmd->help);
	return EXIT_OK;
}

static void main_usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: obd <command> [<args>]\n\nCommands:\n");
	for (i = 0; i < NCMDS; i++)
		fprintf(f, "  %-9s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(f,
		"\nLAYER is a layer file: committed or sealed (optionally ZFile and/or tar\n"
		"wrapped), or a writable layer given as DATA INDEX (append) or DATA (sparse).\n"
		"Sizes and offsets take units: 512, 4K, 64M, 10G (powers of 1024).\n"
		"\nExit status: 0 success, 1 failure or problems found, 2 usage error.\n"
		"Also installed as overlaybd-create, overlaybd-commit and overlaybd-zfile,\n"
		"which take the reference overlaybd tools' arguments.\n"
		"\nSee 'obd help <command>' for a command's options.\n");
}

static int cmd_help(int argc, char **argv)
{
	if (argc < 2) {
		main_usage(stdout);
		return EXIT_OK;
	}
	if (argc > 2)
		return cli_usage_err("help", "too many arguments");
	if (!cli_find_cmd(argv[1])) {
		char clean[128];

		fprintf(stderr, "obd: unknown command '%s'\n",
			cli_sanitize(argv[1], clean, sizeof(clean)));
		return EXIT_USAGE;
	}
	return cli_help(argv[1]);
}

static int cmd_version(int argc, char **argv)
{
	if (argc > 1)
		return cli_usage_err("version", "too many arguments");
	printf("obd %s\n", OBD_VERSION);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static char a0[PATH_MAX];
	const struct cli_cmd *cmd;
	const char *base;

	snprintf(a0, sizeof(a0), "%s", argv[0] ? argv[0] : "obd");
	base = basename(a0);

	if (!strcmp(base, "overlaybd-create")) {
		cli_prog = "overlaybd-create";
		return compat_overlaybd_create(argc, argv);
	}
	if (!strcmp(base, "overlaybd-commit")) {
		cli_prog = "overlaybd-commit";
		return compat_overlaybd_commit(argc, argv);
	}
	if (!strcmp(base, "overlaybd-zfile")) {
		cli_prog = "overlaybd-zfile";
		return compat_overlaybd_zfile(argc, argv);
	}
	if (argc < 2) {
		main_usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		main_usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
		return cmd_version(1, argv);
	cmd = cli_find_cmd(argv[1]);
	if (!cmd) {
		char clean[128];

		fprintf(stderr, "obd: unknown command '%s'\n",
			cli_sanitize(argv[1], clean, sizeof(clean)));
		main_usage(stderr);
		return EXIT_USAGE;
	}
	return cmd->fn(argc - 1, argv + 1);
}
