// SPDX-License-Identifier: GPL-2.0-only
/*
 * overlaybd-fetchd: answers the cache misses dm-overlaybd reports on
 * /dev/overlaybd by fetching byte ranges from the registry (README.md).
 *
 * Exit codes: 0 stopped by SIGTERM/SIGINT (or the channel closed), 1 a
 * startup error (config, device, ring, curl), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <grp.h>
#include <pwd.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "fetchd.h"

struct fetchd *fd_g;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: overlaybd-fetchd [--service-config FILE] [--device PATH] [--log-level N]\n"
		"                        [--user NAME] [--version] [--help]\n"
		"\n"
		"  --service-config FILE  service config (default %s; may be absent)\n"
		"  --device PATH          miss channel (default /dev/%s); a Unix socket\n"
		"                         is connected to as SOCK_SEQPACKET (test stand-in)\n"
		"  --log-level N          0 debug, 1 info, 2 warn, 3 error, 4 fatal\n"
		"                         (overrides logConfig.logLevel)\n"
		"  --user NAME            once the channel is open, run as this user (and its\n"
		"                         group) without capabilities; the cache directory\n"
		"                         and its entries are given to it at start\n",
		FETCHD_DEFAULT_CONFIG, OBD_DEV_NAME);
}

static void log_summary(const struct fetchd_stats *s)
{
	pr_info("summary: reads %llu (present %llu, refetch %llu), done ok %llu err %llu, "
		"handed back %llu, readahead fetches %llu, "
		"fetches %llu (merged %llu), http %llu, tokens %llu (shared %llu), redirects %llu, retries %llu, "
		"fetched %llu bytes, written %llu bytes, errors: notfound %llu auth %llu http %llu "
		"net %llu timeout %llu proto %llu io %llu, fsyncs %llu, verify ok %llu bad %llu, "
		"bad messages %llu",
		(unsigned long long)s->reads, (unsigned long long)s->reads_present,
		(unsigned long long)s->reads_refetch, (unsigned long long)s->dones_ok,
		(unsigned long long)s->dones_err, (unsigned long long)s->handed_back,
		(unsigned long long)s->ahead_fetches,
		(unsigned long long)s->fetches,
		(unsigned long long)s->fetch_merged, (unsigned long long)s->http_requests,
		(unsigned long long)s->token_requests, (unsigned long long)s->token_shared,
		(unsigned long long)s->redirects,
		(unsigned long long)s->retries, (unsigned long long)s->bytes_fetched,
		(unsigned long long)s->bytes_written, (unsigned long long)s->err_notfound,
		(unsigned long long)s->err_auth, (unsigned long long)s->err_http,
		(unsigned long long)s->err_net, (unsigned long long)s->err_timeout,
		(unsigned long long)s->err_proto, (unsigned long long)s->err_io,
		(unsigned long long)s->fsyncs, (unsigned long long)s->verify_ok,
		(unsigned long long)s->verify_bad, (unsigned long long)s->msgs_bad);
}

/* The node-side counters (prefetch, background download, eviction, P2P). */
static void log_summary_node(const struct fetchd_stats *s)
{
	pr_info("summary: prefetch reads %llu (promoted by a miss %llu), haves %llu, "
		"download %llu bytes, blobs verified %llu, bad attempts %llu, given up %llu, "
		"evictions %llu (%llu bytes, %llu runs), p2p requests %llu (fallbacks %llu)",
		(unsigned long long)s->reads_prefetch, (unsigned long long)s->fetch_promoted,
		(unsigned long long)s->haves, (unsigned long long)s->dl_bytes,
		(unsigned long long)s->dl_blobs_done, (unsigned long long)s->dl_attempts_bad,
		(unsigned long long)s->dl_blobs_failed, (unsigned long long)s->evictions,
		(unsigned long long)s->evicted_bytes, (unsigned long long)s->evict_runs,
		(unsigned long long)s->p2p_requests, (unsigned long long)s->p2p_fallbacks);
}

/*
 * Process set-up before anything is read or fetched:
 *  - no core dumps: tokens, Authorization values and credentials live in
 *    memory (curl's and json-c's copies are not wiped); the unit also sets
 *    LimitCORE=0
 *  - the soft open-file limit up to the hard one: every blob the kernel
 *    OPENs holds its cache file open, plus curl's sockets
 *  - random() (backoff jitter, download delayExtra) seeded from
 *    getrandom(): every node and restart would draw the same delays
 */
static void process_setup(void)
{
	struct rlimit rl;
	unsigned int seed;

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		pr_warn("prctl(PR_SET_DUMPABLE, 0): %s", strerror(errno));
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			pr_warn("raising the open-file limit from %llu to %llu: %s",
				(unsigned long long)was, (unsigned long long)rl.rlim_max,
				strerror(errno));
	}
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) {
		pr_warn("getrandom: %s; jitter seeded from the clock and pid", strerror(errno));
		seed = (unsigned int)now_ms() ^ ((unsigned int)getpid() << 16);
	}
	srandom(seed);
	/*
	 * curl's threaded (or c-ares) resolver keeps a slow DNS server from
	 * stalling the loop; a libcurl built without one resolves in the
	 * caller: said, with what to do about it
	 */
	if (!(curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_ASYNCHDNS))
		pr_warn("libcurl %s resolves host names synchronously (no AsynchDNS): a slow DNS server stalls every miss; use a libcurl built with the threaded resolver or c-ares, or name registries by address",
			curl_version_info(CURLVERSION_NOW)->version);
}

/* The service user (--user): resolved before anything else is done. */
struct svc_user {
	const char *name;	/* NULL: stay root (without capabilities) */
	uid_t uid;
	gid_t gid;
};

static int user_lookup(const char *name, struct svc_user *u)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(name);
	if (!pw) {
		fprintf(stderr, "overlaybd-fetchd: --user %s: %s\n", name,
			errno ? strerror(errno) : "no such user");
		return -1;
	}
	if (!pw->pw_uid) {
		fprintf(stderr, "overlaybd-fetchd: --user %s: that is root; name an unprivileged user\n",
			name);
		return -1;
	}
	if (geteuid() && geteuid() != pw->pw_uid) {
		fprintf(stderr, "overlaybd-fetchd: --user %s: only root can become another user\n",
			name);
		return -1;
	}
	u->name = name;
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	return 0;
}

/*
 * An entry file given to the service user, opened without following a
 * link: only a regular file with one link (never a hard link to a file
 * elsewhere: the directory may belong to that user, who could have put one
 * there). 1 given, 0 nothing to do, -errno.
 */
static int give_entry(int dfd, const char *name, const struct svc_user *u)
{
	struct stat st;
	int fd, rc = 0;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? 0 : -errno;
	if (fstat(fd, &st) < 0)
		rc = -errno;
	else if (S_ISREG(st.st_mode) && st.st_nlink == 1 &&
		 (st.st_uid != u->uid || st.st_gid != u->gid))
		rc = fchown(fd, u->uid, u->gid) < 0 ? -errno : 1;
	close(fd);
	return rc;
}

/*
 * The cache at start, before anything is read or fetched:
 *  - with --user, it is the service user's: the directory is made if
 *    absent and given to the user, and so is every entry file in it not
 *    yet the user's (made by an obd of before, or while the directory was
 *    root's); obd gives the entries it makes to the directory's owner
 *  - it names what this host runs and holds private layers: the directory
 *    should be 0700 and its entries 0600 (what obd and the daemon make).
 *    Looser modes are said once, with one example.
 */
static void cache_prepare(const char *dir, const struct svc_user *u)
{
	unsigned int loose = 0, given = 0, failed = 0;
	char first[300] = "", ferr[400] = "";
	struct dirent *de;
	struct stat st;
	DIR *dp;
	int dfd, rc;

	if (u->name && geteuid() == 0) {
		char part[PATH_MAX];

		rc = cache_dir_make(dir, part, sizeof(part));
		if (rc)
			pr_warn("cache %s: making %s: %s", dir, part, strerror(-rc));
		else if (!stat(dir, &st) && (st.st_uid != u->uid || st.st_gid != u->gid)) {
			if (chown(dir, u->uid, u->gid) < 0)
				pr_err("cache %s: giving it to user %s: %s", dir, u->name,
				       strerror(errno));
			else
				pr_info("cache %s: given to user %s (uid %u, gid %u)", dir, u->name,
					(unsigned int)u->uid, (unsigned int)u->gid);
		}
	}
	if (stat(dir, &st) < 0)
		return;		/* made by obd attach later */
	if (st.st_mode & 077)
		pr_warn("cache %s: directory mode %04o lets other users in; chmod 0700 it",
			dir, (unsigned int)(st.st_mode & 07777));
	dp = opendir(dir);
	if (!dp)
		return;
	dfd = dirfd(dp);
	while ((de = readdir(dp))) {
		if (strncmp(de->d_name, "sha256:", 7) ||
		    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (st.st_mode & 077) {
			if (!loose++)
				snprintf(first, sizeof(first), "%s (%04o)", de->d_name,
					 (unsigned int)(st.st_mode & 07777));
		}
		if (!u->name || geteuid() || (st.st_uid == u->uid && st.st_gid == u->gid))
			continue;
		rc = give_entry(dfd, de->d_name, u);
		if (rc > 0)
			given++;
		else if (rc < 0 && !failed++)
			snprintf(ferr, sizeof(ferr), "%s: %s", de->d_name, strerror(-rc));
	}
	closedir(dp);
	if (loose)
		pr_warn("cache %s: %u files readable or writable by other users, e.g. %s; chmod 0600 them",
			dir, loose, first);
	if (given)
		pr_info("cache %s: %u entry files given to user %s", dir, given, u->name);
	if (failed)
		pr_err("cache %s: %u entry files could not be given to user %s (their reads will fail), e.g. %s",
		       dir, failed, u->name, ferr);
}

/*
 * Once /dev/overlaybd is open nothing needs a capability any more (the
 * open alone checks CAP_SYS_ADMIN): with --user the daemon becomes that
 * user (its group, no supplementary groups), which owns the cache; then
 * every capability goes, so a flaw in the HTTP, TLS or JSON code gains no
 * administrator rights (and, with a user, no root files either). With
 * NoNewPrivileges no execve can bring them back. Failing to become the
 * user is fatal (it was asked for); failing to drop a capability is said.
 * No thread runs yet: the ids change for the whole process.
 */
static int drop_privileges(const struct svc_user *u)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	uid_t r, e, s;

	if (u->name && (geteuid() != u->uid || getegid() != u->gid)) {
		if (setgroups(0, NULL) < 0 || setresgid(u->gid, u->gid, u->gid) < 0 ||
		    setresuid(u->uid, u->uid, u->uid) < 0) {
			pr_err("becoming user %s (uid %u, gid %u): %s", u->name, (unsigned int)u->uid,
			       (unsigned int)u->gid, strerror(errno));
			return -1;
		}
		if (getresuid(&r, &e, &s) < 0 || r != u->uid || e != u->uid || s != u->uid) {
			pr_err("becoming user %s: still uid %u", u->name, (unsigned int)e);
			return -1;
		}
		/* a change of ids may make the process dumpable again */
		if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
			pr_warn("prctl(PR_SET_DUMPABLE, 0): %s", strerror(errno));
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		pr_warn("clearing the ambient capabilities: %s", strerror(errno));
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &h, data) < 0)
		pr_warn("dropping the capabilities: %s", strerror(errno));
	return 0;
}

/*
 * The files the daemon reads later (credentials, keys, CAs) must be
 * readable by the user it runs as: said once at start, naming the file.
 */
static void check_readable(const struct fetchd_config *c, const struct svc_user *u)
{
	const char *files[] = { c->cred_mode == CRED_MODE_FILE ? c->cred_path : "",
				c->cert_file, c->key_file, c->ca_file, c->cred_client_cert,
				c->cred_client_key, c->cred_server_ca };
	size_t i;

	if (!u->name)
		return;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (files[i][0] && access(files[i], R_OK) < 0 && errno != ENOENT)
			pr_warn("%s: not readable by user %s (%s): make it readable by its group %u",
				files[i], u->name, strerror(errno), (unsigned int)u->gid);
	if (c->cred_mode == CRED_MODE_UDS && c->cred_path[0] && access(c->cred_path, W_OK) < 0 &&
	    errno != ENOENT)
		pr_warn("%s: credential socket not writable by user %s (%s)", c->cred_path, u->name,
			strerror(errno));
}

static int parse_level(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < LOG_LVL_DEBUG || v > LOG_LVL_FATAL)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "service-config", required_argument, NULL, 'c' },
		{ "device", required_argument, NULL, 'd' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "user", required_argument, NULL, 'u' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct fetchd d;
	struct svc_user user = { NULL, 0, 0 };
	const char *config = NULL, *user_name = NULL;
	int level = -1, c, ret;
	char err[1024];

	d.device = "/dev/" OBD_DEV_NAME;
	while ((c = getopt_long(argc, argv, "c:d:l:u:Vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'd':
			d.device = optarg;
			break;
		case 'l':
			if (parse_level(optarg, &level)) {
				fprintf(stderr, "overlaybd-fetchd: --log-level: expected 0..4, got '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'u':
			user_name = optarg;
			break;
		case 'V':
			printf("overlaybd-fetchd %s\n", FETCHD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "overlaybd-fetchd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	if (user_name && user_lookup(user_name, &user))
		return 1;
	ret = fetchd_config_load(config ? config : FETCHD_DEFAULT_CONFIG, config != NULL,
				 &d.cfg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "overlaybd-fetchd: %s\n", err);
		return 1;
	}
	log_set_level(level >= 0 ? level : d.cfg.log_level);
	fd_g = &d;
	process_setup();
	/* the loop never waits for obd's lock on a .meta: it tries again later */
	cache_entry_lock_wait_ms = 0;
	notify_init();
	cache_prepare(d.cfg.cache_dir, &user);
	if (d.cfg.gz_enable)
		cache_prepare(d.cfg.gz_dir, &user);

	if (loop_init(&d))
		goto out_fini;
	if (chan_open(&d))
		goto out_fini;
	if (drop_privileges(&user))
		goto out_fini;
	check_readable(&d.cfg, &user);
	if (user.name)
		pr_info("running as user %s (uid %u, gid %u), without capabilities", user.name,
			(unsigned int)user.uid, (unsigned int)user.gid);
	pr_info("overlaybd-fetchd %s: serving %s (cacheDir %s, refillSize %llu, "
		"maxConcurrent %u, requestTimeout %u s, maxRetries %u, syncIntervalMs %u)",
		FETCHD_VERSION, d.device, d.cfg.cache_dir, (unsigned long long)d.cfg.refill_size,
		d.cfg.max_concurrent, d.cfg.request_timeout_s, d.cfg.max_retries,
		d.cfg.sync_interval_ms);
	/* readiness: the channel is open, misses are taken from now on */
	notify_send("READY=1\nSTATUS=serving misses");
	ret = loop_run(&d);
	notify_send("STOPPING=1");
	log_summary(&d.st);
	log_summary_node(&d.st);
	loop_fini(&d);
	log_flush_suppressed();
	notify_fini();
	return ret ? 1 : 0;

out_fini:
	loop_fini(&d);
	notify_fini();
	return 1;
}
