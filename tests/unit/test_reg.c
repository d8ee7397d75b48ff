// SPDX-License-Identifier: GPL-2.0-only
/*
 * Description: the registry helpers of libobdreg.a without a network:
 * overlaybd.json (registry/config.c), cred.json matching (cred.c),
 * WWW-Authenticate, token URLs and token responses (auth.c), blob URLs and
 * image references, origins, the redactor and the query encoder (url.c),
 * the challenge/credential answer and token keys (auth.c). Retry-After is
 * test_reg_http's (it needs a server).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "auth.h"
#include "config.h"
#include "cred.h"
#include "http.h"
#include "url.h"

#define S(x) x, strlen(x)

static const char *BLOB =
	"https://reg.example.com/v2/a/b/blobs/sha256:"
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char *BLOB_PORT =
	"http://reg.example.com:5000/v2/a/b/blobs/sha256:"
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ------------------------------------------------------------------------
 * config
 */

static int cfg(const char *json, struct fetchd_config *c, char *err)
{
	fetchd_config_defaults(c);
	err[0] = 0;
	return fetchd_config_parse(json, strlen(json), c, err, 256);
}

/* json fails with -EINVAL and a message starting with prefix and holding has */
static void cfg_bad(const char *json, const char *prefix, const char *has)
{
	struct fetchd_config c;
	char err[256];
	int rc = cfg(json, &c, err);

	tap_ok(rc == -EINVAL && !strncmp(err, prefix, strlen(prefix)) && (!has || strstr(err, has)),
	       "config: %.80s rejected (\"%s\")", json, err);
}

static void test_config_defaults(void)
{
	struct fetchd_config c;

	fetchd_config_defaults(&c);
	tap_ok(!strcmp(c.cache_dir, FETCHD_DEFAULT_CACHEDIR) && c.refill_size == 262144 &&
	       c.cache_size_gb == 4, "config defaults: cache dir, refill, size");
	tap_ok(c.cred_path[0] == 0 && c.cert_file[0] == 0 && c.key_file[0] == 0 && c.ca_file[0] == 0,
	       "config defaults: anonymous, no certificates");
	tap_ok(c.log_level == LOG_LVL_INFO && !strcmp(c.user_agent, "overlaybd-fetchd/" OBD_VERSION),
	       "config defaults: log INFO, user agent %s", c.user_agent);
	tap_ok(c.request_timeout_s == 30 && c.connect_timeout_s == 10 && c.max_retries == 8 &&
	       c.max_concurrent == 32 && c.sync_interval_ms == 100, "config defaults: fetchConfig");
}

static void test_config_keys(void)
{
	struct fetchd_config c;
	char err[256];
	int rc;

	rc = cfg("{\"cacheConfig\":{\"cacheType\":\"file\",\"cacheDir\":\"/var/cache/x\","
		 "\"refillSize\":1048576,\"cacheSizeGB\":10},"
		 "\"credentialConfig\":{\"mode\":\"file\",\"path\":\"/etc/cred.json\"},"
		 "\"certConfig\":{\"certFile\":\"/c.pem\",\"keyFile\":\"/k.pem\",\"caFile\":\"/ca.pem\"},"
		 "\"logConfig\":{\"logLevel\":3,\"logPath\":\"/var/log/x\"},"
		 "\"userAgent\":\"me/1\","
		 "\"fetchConfig\":{\"requestTimeout\":60,\"connectTimeout\":5,\"maxRetries\":0,"
		 "\"maxConcurrent\":4,\"syncIntervalMs\":250},"
		 "\"p2pConfig\":{\"enable\":false},\"ioEngine\":1,\"unknownKey\":[1,2]}", &c, err);
	tap_ok(rc == 0, "config: every key parses (%s)", err);
	tap_ok(!strcmp(c.cache_dir, "/var/cache/x") && c.refill_size == 1048576 &&
	       c.cache_size_gb == 10, "config: cacheConfig values");
	tap_ok(!strcmp(c.cred_path, "/etc/cred.json"), "config: credentialConfig.path");
	tap_ok(!strcmp(c.cert_file, "/c.pem") && !strcmp(c.key_file, "/k.pem") &&
	       !strcmp(c.ca_file, "/ca.pem"), "config: certConfig values");
	tap_ok(c.log_level == 3 && !strcmp(c.user_agent, "me/1"), "config: logLevel, userAgent");
	tap_ok(c.request_timeout_s == 60 && c.connect_timeout_s == 5 && c.max_retries == 0 &&
	       c.max_concurrent == 4 && c.sync_interval_ms == 250, "config: fetchConfig values");

	rc = cfg("{}", &c, err);
	tap_ok(rc == 0 && c.refill_size == 262144, "config: {} keeps the defaults");
	rc = cfg("{\"cacheConfig\":null,\"logConfig\":{\"logLevel\":null}}", &c, err);
	tap_ok(rc == 0 && c.log_level == LOG_LVL_INFO, "config: null means not set");
	rc = cfg("{\"cacheConfig\":{\"cacheSizeGB\":0.05}}", &c, err);
	tap_ok(rc == 0 && c.cache_size_gb > 0.0499 && c.cache_size_gb < 0.0501,
	       "config: cacheSizeGB 0.05 accepted");
	rc = cfg("{\"cacheConfig\":{\"refillSize\":4096}}", &c, err);
	tap_ok(rc == 0 && c.refill_size == 4096, "config: refillSize 4096 (the minimum)");
	rc = cfg("{\"cacheConfig\":{\"refillSize\":67108864}}", &c, err);
	tap_ok(rc == 0 && c.refill_size == 67108864, "config: refillSize 64 MiB (the maximum)");
	rc = cfg("{\"cacheConfig\":{\"refillSize\":1e6}}", &c, err);
	tap_ok(rc == -EINVAL, "config: refillSize 1e6 (integral, not a power of two) rejected");
	rc = cfg("{\"cacheConfig\":{\"refillSize\":5.24288e5}}", &c, err);
	tap_ok(rc == 0 && c.refill_size == 524288, "config: refillSize written as a double");
	rc = cfg("{\"credentialFilePath\":\"/opt/overlaybd/cred.json\"}", &c, err);
	tap_ok(rc == 0 && !strcmp(c.cred_path, "/opt/overlaybd/cred.json"),
	       "config: legacy credentialFilePath");
	rc = cfg("{\"credentialFilePath\":\"/legacy\",\"credentialConfig\":{\"mode\":\"file\","
		 "\"path\":\"/new\"}}", &c, err);
	tap_ok(rc == 0 && !strcmp(c.cred_path, "/new"), "config: credentialConfig beats the legacy key");
	rc = cfg("{\"credentialFilePath\":\"/legacy\",\"credentialConfig\":{\"mode\":\"file\"}}",
		 &c, err);
	tap_ok(rc == 0 && !strcmp(c.cred_path, "/legacy"),
	       "config: mode file without path falls back to credentialFilePath");
	rc = cfg("{\"certConfig\":{\"certFile\":\"/both.pem\"}}", &c, err);
	tap_ok(rc == 0 && !strcmp(c.cert_file, "/both.pem"), "config: certFile alone (key in the PEM)");
	rc = cfg(" \n{\"logConfig\":{\"logLevel\":0}}\n\t ", &c, err);
	tap_ok(rc == 0 && c.log_level == 0, "config: surrounding whitespace");

	/* a failed parse leaves c as it was */
	fetchd_config_defaults(&c);
	c.max_retries = 77;
	rc = fetchd_config_parse(S("{\"fetchConfig\":{\"maxRetries\":3,\"maxConcurrent\":0}}"), &c,
				 err, sizeof(err));
	tap_ok(rc == -EINVAL && c.max_retries == 77, "config: failed parse leaves the struct alone");
	/* err NULL must be fine */
	rc = fetchd_config_parse(S("[]"), &c, NULL, 0);
	tap_ok(rc == -EINVAL, "config: NULL err buffer");
}

static void test_config_errors(void)
{
	cfg_bad("{\"cacheConfig\":[]}", "cacheConfig: expected an object", "got []");
	cfg_bad("{\"cacheConfig\":{\"cacheDir\":5}}", "cacheConfig.cacheDir: expected a string", "got 5");
	cfg_bad("{\"cacheConfig\":{\"cacheDir\":\"\"}}", "cacheConfig.cacheDir:", "non-empty");
	cfg_bad("{\"cacheConfig\":{\"refillSize\":\"262144\"}}", "cacheConfig.refillSize: expected an integer",
		"got \"262144\"");
	cfg_bad("{\"cacheConfig\":{\"refillSize\":100000}}", "cacheConfig.refillSize: expected a power of two",
		"got 100000");
	cfg_bad("{\"cacheConfig\":{\"refillSize\":2048}}", "cacheConfig.refillSize:", "got 2048");
	cfg_bad("{\"cacheConfig\":{\"refillSize\":134217728}}", "cacheConfig.refillSize:", "got 134217728");
	cfg_bad("{\"cacheConfig\":{\"refillSize\":-4096}}", "cacheConfig.refillSize:", "got -4096");
	cfg_bad("{\"cacheConfig\":{\"refillSize\":4096.5}}", "cacheConfig.refillSize:", NULL);
	cfg_bad("{\"cacheConfig\":{\"cacheSizeGB\":0}}", "cacheConfig.cacheSizeGB: expected a number > 0",
		"got 0");
	cfg_bad("{\"cacheConfig\":{\"cacheSizeGB\":-1.5}}", "cacheConfig.cacheSizeGB:", "got -1.5");
	cfg_bad("{\"cacheConfig\":{\"cacheSizeGB\":true}}", "cacheConfig.cacheSizeGB: expected a number",
		"got true");
	cfg_bad("{\"cacheConfig\":{\"cacheSizeGB\":1e300}}", "cacheConfig.cacheSizeGB:", NULL);
	cfg_bad("{\"credentialConfig\":{\"mode\":\"ftp\",\"path\":\"http://x\"}}",
		"credentialConfig.mode:", "\"ftp\"");
	cfg_bad("{\"credentialConfig\":{\"mode\":\"uds\"}}", "credentialConfig.path:", "required");
	cfg_bad("{\"credentialConfig\":{\"mode\":1}}", "credentialConfig.mode: expected a string", NULL);
	cfg_bad("{\"credentialConfig\":{\"path\":[]}}", "credentialConfig.path: expected a string", NULL);
	cfg_bad("{\"credentialConfig\":\"file\"}", "credentialConfig: expected an object", NULL);
	cfg_bad("{\"credentialFilePath\":false}", "credentialFilePath: expected a string", NULL);
	cfg_bad("{\"certConfig\":{\"keyFile\":\"/k.pem\"}}", "certConfig.keyFile:", "certFile");
	cfg_bad("{\"certConfig\":{\"caFile\":{}}}", "certConfig.caFile: expected a string", NULL);
	cfg_bad("{\"logConfig\":{\"logLevel\":5}}", "logConfig.logLevel: expected an integer from 0 to 4",
		"got 5");
	cfg_bad("{\"logConfig\":{\"logLevel\":\"debug\"}}", "logConfig.logLevel: expected an integer",
		NULL);
	cfg_bad("{\"logConfig\":{\"logLevel\":1.5}}", "logConfig.logLevel:", "got 1.5");
	cfg_bad("{\"userAgent\":\"\"}", "userAgent:", "non-empty");
	cfg_bad("{\"userAgent\":\"a\\r\\nX-Evil: 1\"}", "userAgent: contains a control character", NULL);
	cfg_bad("{\"userAgent\":7}", "userAgent: expected a string", NULL);
	cfg_bad("{\"fetchConfig\":{\"requestTimeout\":0}}", "fetchConfig.requestTimeout:", "got 0");
	cfg_bad("{\"fetchConfig\":{\"requestTimeout\":86400}}", "fetchConfig.requestTimeout:", NULL);
	cfg_bad("{\"fetchConfig\":{\"connectTimeout\":-1}}", "fetchConfig.connectTimeout:", "got -1");
	cfg_bad("{\"fetchConfig\":{\"maxRetries\":1000}}", "fetchConfig.maxRetries:", NULL);
	cfg_bad("{\"fetchConfig\":{\"maxConcurrent\":0}}", "fetchConfig.maxConcurrent:", NULL);
	cfg_bad("{\"fetchConfig\":{\"syncIntervalMs\":\"100\"}}", "fetchConfig.syncIntervalMs: expected an integer",
		NULL);
	cfg_bad("{\"fetchConfig\":{\"maxRetries\":18446744073709551615}}", "fetchConfig.maxRetries:", NULL);
	cfg_bad("{\"fetchConfig\":[]}", "fetchConfig: expected an object", NULL);
	cfg_bad("[1,2]", "config: expected an object", NULL);
	cfg_bad("{\"cacheConfig\":{", "invalid JSON", NULL);
	cfg_bad("{\"a\":1} trailing", "invalid JSON", NULL);
	cfg_bad("{\"a\":1,}", "invalid JSON", NULL);
	cfg_bad("", "invalid JSON", NULL);
	cfg_bad("{\"cacheConfig\":{\"cacheDir\":\"/a\\u0000b\"}}", "cacheConfig.cacheDir: contains a NUL", NULL);
	{
		char big[PATH_MAX + 64];
		int n = snprintf(big, sizeof(big), "{\"cacheConfig\":{\"cacheDir\":\"/");

		memset(big + n, 'x', PATH_MAX);
		strcpy(big + n + PATH_MAX, "\"}}");
		cfg_bad(big, "cacheConfig.cacheDir: longer than", NULL);
	}
	{
		struct fetchd_config c;
		char err[256];
		int rc = fetchd_config_parse("{}\0{}", 5, &c, err, sizeof(err));

		tap_ok(rc == -EINVAL && strstr(err, "NUL"), "config: NUL byte in the text (%s)", err);
	}
}

static void test_config_load(void)
{
	char dir[] = "/tmp/test_reg.XXXXXX", path[256], err[512];
	struct fetchd_config c;
	FILE *f;
	int rc;

	if (!mkdtemp(dir)) {
		tap_ok(0, "config load: mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/missing.json", dir);
	rc = fetchd_config_load(path, false, &c, err, sizeof(err));
	tap_ok(rc == 0 && c.refill_size == 262144, "config load: missing, not required -> defaults");
	rc = fetchd_config_load(path, true, &c, err, sizeof(err));
	tap_ok(rc == -ENOENT && !strncmp(err, path, strlen(path)), "config load: missing, required: %s", err);
	rc = fetchd_config_load(dir, false, &c, err, sizeof(err));
	tap_ok(rc == -EISDIR && strstr(err, dir), "config load: a directory: %s", err);

	snprintf(path, sizeof(path), "%s/overlaybd.json", dir);
	f = fopen(path, "w");
	fputs("{\"cacheConfig\":{\"refillSize\":3}}", f);
	fclose(f);
	rc = fetchd_config_load(path, true, &c, err, sizeof(err));
	tap_ok(rc == -EINVAL && !strncmp(err, path, strlen(path)) &&
	       strstr(err, ": cacheConfig.refillSize: "), "config load: error names file and key: %s", err);
	f = fopen(path, "w");
	fputs("{\"cacheConfig\":{\"refillSize\":8192}}", f);
	fclose(f);
	rc = fetchd_config_load(path, true, &c, err, sizeof(err));
	tap_ok(rc == 0 && c.refill_size == 8192 && c.max_concurrent == 32, "config load: a good file");
	unlink(path);
	rmdir(dir);
}

/* ------------------------------------------------------------------------
 * cred.json
 */

static int cmatch(const char *json, const char *url, struct reg_cred *cr, char *err)
{
	err[0] = 0;
	return cred_match_json(json, strlen(json), url, cr, err, 256);
}

static void test_cred(void)
{
	struct reg_cred cr;
	char err[256], json[1024];
	int rc;

	rc = cmatch("{\"auths\":{\"reg.example.com\":{\"username\":\"u\",\"password\":\"p\"}}}",
		    BLOB, &cr, err);
	tap_ok(rc == 0 && !strcmp(cr.user, "u") && !strcmp(cr.pass, "p"), "cred: host match");
	rc = cmatch("{\"auths\":{\"reg.example.com/a/b\":{\"username\":\"long\",\"password\":\"1\"},"
		    "\"reg.example.com\":{\"username\":\"short\",\"password\":\"2\"}}}", BLOB, &cr, err);
	tap_ok(rc == 0 && !strcmp(cr.user, "long"), "cred: first entry wins (repo before host)");
	rc = cmatch("{\"auths\":{\"reg.example.com\":{\"username\":\"short\",\"password\":\"2\"},"
		    "\"reg.example.com/a/b\":{\"username\":\"long\",\"password\":\"1\"}}}", BLOB, &cr, err);
	tap_ok(rc == 0 && !strcmp(cr.user, "short"), "cred: first match, not longest");
	rc = cmatch("{\"auths\":{\"reg.example.com/a\":{\"username\":\"mid\",\"password\":\"m\"}}}",
		    BLOB, &cr, err);
	tap_ok(rc == 0 && !strcmp(cr.user, "mid"), "cred: host/a prefix");
	rc = cmatch("{\"auths\":{\"reg.example.com/a/b/c\":{\"username\":\"x\",\"password\":\"y\"},"
		    "\"reg.example.com/a/\":{\"username\":\"x\",\"password\":\"y\"},"
		    "\"other.example.com\":{\"username\":\"x\",\"password\":\"y\"},"
		    "\"https://reg.example.com\":{\"username\":\"x\",\"password\":\"y\"}}}", BLOB, &cr, err);
	tap_ok(rc == 0 && cr.user[0] == 0, "cred: no exact prefix -> anonymous");
	rc = cmatch("{\"auths\":{\"reg.example.com\":{\"username\":\"noport\",\"password\":\"p\"},"
		    "\"reg.example.com:5000\":{\"username\":\"port\",\"password\":\"p\"}}}",
		    BLOB_PORT, &cr, err);
	tap_ok(rc == 0 && !strcmp(cr.user, "port"), "cred: host:port is the key when a port is given");
	/* "dTE6cDE=" = u1:p1 */
	rc = cmatch("{\"auths\":{\"reg.example.com\":{\"auth\":\"dTE6cDE=\",\"username\":\"u2\","
		    "\"password\":\"p2\"}}}", BLOB, &cr, err);
	tap_ok(rc == 0 && !strcmp(cr.user, "u1") && !strcmp(cr.pass, "p1"),
	       "cred: auth beats username/password");
	/* "dTpwOnE=" = u:p:q, split at the first ':' */
	rc = cmatch("{\"auths\":{\"reg.example.com\":{\"auth\":\"dTpwOnE=\"}}}", BLOB, &cr, err);
	tap_ok(rc == 0 && !strcmp(cr.user, "u") && !strcmp(cr.pass, "p:q"),
	       "cred: auth split at the first ':'");
	rc = cmatch("{\"auths\":{\"reg.example.com\":{\"auth\":\"\",\"username\":\"u3\","
		    "\"password\":\"p3\"}}}", BLOB, &cr, err);
	tap_ok(rc == 0 && !strcmp(cr.user, "u3"), "cred: empty auth falls back to username/password");
	rc = cmatch("{\"auths\":{\"reg.example.com\":{\"auth\":\"c2VjcmV0cGFzcw!!\"}}}", BLOB, &cr, err);
	tap_ok(rc == -EINVAL && strstr(err, "auths.reg.example.com.auth") && !strstr(err, "c2Vj") &&
	       cr.user[0] == 0 && cr.pass[0] == 0, "cred: bad base64 -> error without the secret: %s", err);
	/* "c2VjcmV0cGFzcw==" = "secretpass" (no colon) */
	rc = cmatch("{\"auths\":{\"reg.example.com\":{\"auth\":\"c2VjcmV0cGFzcw==\"}}}", BLOB, &cr, err);
	tap_ok(rc == -EINVAL && !strstr(err, "secret") && !strstr(err, "c2Vj"),
	       "cred: base64 without ':' -> error without the secret: %s", err);
	rc = cmatch("{\"auths\":{\"reg.example.com\":{\"username\":\"u\",\"password\":7}}}", BLOB, &cr, err);
	tap_ok(rc == -EINVAL && strstr(err, "auths.reg.example.com.password: expected a string"),
	       "cred: password of the wrong type: %s", err);
	rc = cmatch("{\"auths\":{\"reg.example.com\":\"u:p\"}}", BLOB, &cr, err);
	tap_ok(rc == -EINVAL && strstr(err, "auths.reg.example.com: expected an object") &&
	       !strstr(err, "u:p"), "cred: entry not an object: %s", err);
	rc = cmatch("{\"auths\":{\"elsewhere\":\"junk\",\"reg.example.com\":{}}}", BLOB, &cr, err);
	tap_ok(rc == 0 && cr.user[0] == 0, "cred: a bad entry that does not match is ignored");
	rc = cmatch("{\"auths\":{\"reg.example.com\":{\"username\":\"a:b\",\"password\":\"p\"}}}",
		    BLOB, &cr, err);
	tap_ok(rc == -EINVAL && strstr(err, "':'"), "cred: ':' in a user name rejected: %s", err);
	rc = cmatch("{\"auths\":{\"reg.example.com\":{\"username\":\"u\",\"password\":\"p\\r\\n\"}}}",
		    BLOB, &cr, err);
	tap_ok(rc == -EINVAL && strstr(err, "control"), "cred: control character in a password");
	rc = cmatch("{\"credHelpers\":{}}", BLOB, &cr, err);
	tap_ok(rc == 0 && cr.user[0] == 0, "cred: no auths -> anonymous");
	rc = cmatch("{\"auths\":[]}", BLOB, &cr, err);
	tap_ok(rc == -EINVAL && strstr(err, "auths: expected an object"), "cred: auths an array: %s", err);
	rc = cmatch("[]", BLOB, &cr, err);
	tap_ok(rc == -EINVAL, "cred: top level not an object");
	rc = cmatch("{\"auths\":{\"reg.example.com\":{\"username\":\"u\",\"password\":\"hunter2\"}",
		    BLOB, &cr, err);
	tap_ok(rc == -EINVAL && strstr(err, "invalid JSON") && !strstr(err, "hunter2"),
	       "cred: truncated JSON, no secret in the error: %s", err);
	rc = cmatch("{\"auths\":{}}", "ftp://reg.example.com/x", &cr, err);
	tap_ok(rc == -EINVAL && !strncmp(err, "url:", 4), "cred: bad URL: %s", err);
	rc = cmatch("{\"auths\":{\"reg.example.com\":{\"username\":\"\",\"password\":\"p\"}}}",
		    BLOB, &cr, err);
	tap_ok(rc == 0 && cr.user[0] == 0 && cr.pass[0] == 0, "cred: empty user -> anonymous");
	snprintf(json, sizeof(json), "{\"auths\":{\"[::1]:5000/x\":{\"username\":\"v6\",\"password\":\"p\"}}}");
	rc = cmatch(json, "http://[::1]:5000/v2/x/blobs/sha256:" HEX64, &cr, err);
	tap_ok(rc == 0 && !strcmp(cr.user, "v6"), "cred: IPv6 host with port and repo prefix");

	strcpy(cr.user, "u");
	strcpy(cr.pass, "secret");
	cred_wipe(&cr);
	tap_ok(cr.user[0] == 0 && cr.pass[0] == 0 && cr.pass[5] == 0, "cred: wipe");

	/* cred_lookup: "" and missing files are anonymous */
	rc = cred_lookup("", BLOB, &cr, err, sizeof(err));
	tap_ok(rc == 0 && cr.user[0] == 0, "cred lookup: empty path -> anonymous");
	rc = cred_lookup("/nonexistent/cred.json", BLOB, &cr, err, sizeof(err));
	tap_ok(rc == 0 && cr.user[0] == 0, "cred lookup: missing file -> anonymous");
	{
		char dir[] = "/tmp/test_reg.XXXXXX", path[256];
		FILE *f;

		if (mkdtemp(dir)) {
			snprintf(path, sizeof(path), "%s/cred.json", dir);
			f = fopen(path, "w");
			fputs("{\"auths\":{\"reg.example.com/a/b\":{\"auth\":\"dTE6cDE=\"}}}", f);
			fclose(f);
			rc = cred_lookup(path, BLOB, &cr, err, sizeof(err));
			tap_ok(rc == 0 && !strcmp(cr.user, "u1"), "cred lookup: file read and matched");
			f = fopen(path, "w");
			fputs("{\"auths\":{\"reg.example.com\":{\"auth\":\"%%%%\"}}}", f);
			fclose(f);
			rc = cred_lookup(path, BLOB, &cr, err, sizeof(err));
			tap_ok(rc == -EINVAL && !strncmp(err, path, strlen(path)),
			       "cred lookup: error names the file: %s", err);
			unlink(path);
			rmdir(dir);
		}
	}
}

/* ------------------------------------------------------------------------
 * WWW-Authenticate, token URL, token response, base64
 */

static int chal(const char *v, struct auth_challenge *ch, char *err)
{
	err[0] = 0;
	return auth_parse_challenge(v, strlen(v), ch, err, 256);
}

static void chal_bad(const char *v, const char *has)
{
	struct auth_challenge ch;
	char err[256], shown[64];
	int rc = chal(v, &ch, err);
	size_t i;

	/* keep the TAP line one line */
	for (i = 0; v[i] && i + 1 < sizeof(shown); i++)
		shown[i] = (unsigned char)v[i] < 0x20 ? '?' : v[i];
	shown[i] = 0;
	tap_ok(rc == -EINVAL && (!has || strstr(err, has)) && ch.realm[0] == 0,
	       "challenge: [%s] rejected (%s)", shown, err);
}

static void test_challenge(void)
{
	struct auth_challenge ch;
	char err[256], buf[4096];
	int rc;

	rc = chal("Bearer realm=\"https://auth.example/token\",service=\"reg\","
		  "scope=\"repository:a/b:pull\"", &ch, err);
	tap_ok(rc == 0 && ch.scheme == AUTH_BEARER && !strcmp(ch.realm, "https://auth.example/token") &&
	       !strcmp(ch.service, "reg") && !strcmp(ch.scope, "repository:a/b:pull"),
	       "challenge: Bearer realm/service/scope");
	rc = chal("Basic realm=\"Registry Realm\"", &ch, err);
	tap_ok(rc == 0 && ch.scheme == AUTH_BASIC && !strcmp(ch.realm, "Registry Realm"),
	       "challenge: Basic");
	rc = chal("basic", &ch, err);
	tap_ok(rc == 0 && ch.scheme == AUTH_BASIC && !ch.realm[0], "challenge: bare Basic");
	rc = chal("  BEARER   Realm = \"http://a/t\" ,\tSERVICE=svc , scope=\"x\"  ", &ch, err);
	tap_ok(rc == 0 && ch.scheme == AUTH_BEARER && !strcmp(ch.realm, "http://a/t") &&
	       !strcmp(ch.service, "svc") && !strcmp(ch.scope, "x"),
	       "challenge: case-insensitive, whitespace tolerated (%s)", err);
	rc = chal("Bearer realm=\"https://a/t\",scope=\"repository:a/b:pull,push\"", &ch, err);
	tap_ok(rc == 0 && !strcmp(ch.scope, "repository:a/b:pull,push") && !ch.service[0],
	       "challenge: comma inside quotes, no service");
	rc = chal("Bearer realm=\"https://a/t\",service=\"say \\\"hi\\\" \\\\ok\"", &ch, err);
	tap_ok(rc == 0 && !strcmp(ch.service, "say \"hi\" \\ok"), "challenge: backslash escapes: %s",
	       ch.service);
	rc = chal("Bearer realm=https://a/t?x=1,service=reg", &ch, err);
	tap_ok(rc == 0 && !strcmp(ch.realm, "https://a/t?x=1") && !strcmp(ch.service, "reg"),
	       "challenge: unquoted values");
	rc = chal("Bearer realm=\"https://first/t\",realm=\"https://second/t\",error=\"invalid_token\","
		  "foo=bar", &ch, err);
	tap_ok(rc == 0 && !strcmp(ch.realm, "https://first/t"),
	       "challenge: duplicate and unknown parameters ignored");
	rc = chal("Bearer realm=\"https://a/t\",,service=\"s\",", &ch, err);
	tap_ok(rc == 0 && !strcmp(ch.service, "s"), "challenge: empty list elements");
	rc = chal("Bearer realm=\"https://a/t\", Basic realm=\"b\"", &ch, err);
	tap_ok(rc == 0 && ch.scheme == AUTH_BEARER && !strcmp(ch.realm, "https://a/t"),
	       "challenge: first of two challenges (%s)", err);
	memset(buf, 0, sizeof(buf));
	strcpy(buf, "Bearer realm=\"https://a/t\",service=\"x\"");
	rc = auth_parse_challenge(buf, 23, &ch, err, sizeof(err));
	tap_ok(rc == -EINVAL, "challenge: len respected (cut inside a quoted string)");

	chal_bad("Bearer service=\"reg\",scope=\"s\"", "without realm");
	chal_bad("Bearer", "without realm");
	chal_bad("Negotiate abc", "unknown scheme");
	chal_bad("Digest realm=\"x\"", "unknown scheme \"Digest\"");
	chal_bad("", "scheme");
	chal_bad("   ", "scheme");
	chal_bad("\"Bearer\"", NULL);
	chal_bad("Bearer realm=\"https://a/t", "unterminated");
	chal_bad("Bearer realm=\"https://a/t\\", "unterminated");
	chal_bad("Bearer realm", "'='");
	chal_bad("Bearer realm=", "empty");
	chal_bad("Bearer realm=\"https://a/t\" service=\"x\"", "','");
	chal_bad("Bearer realm=\"https://a/t\r\nX: y\"", "control");
	chal_bad("Bearer realm=\"file:///etc/passwd\"", "http(s)");
	chal_bad("Bearer realm=\"https://a b/t\"", "http(s)");
	chal_bad("Bearer realm=\"https://a/t#x\"", "http(s)");
	chal_bad("Bearer realm=\"https://[::1/t\"", "http(s)");
	chal_bad("Bearer realm=\"https:/a/uth.docker.io/token\"", "http(s)");
	chal_bad("Bearerrealm=\"https://a/t\"", "unknown scheme");
	chal_bad("Bearer =x", "parameter name");
	{
		struct auth_challenge c2;
		int n = snprintf(buf, sizeof(buf), "Bearer realm=\"https://a/");

		memset(buf + n, 'r', 1100);
		strcpy(buf + n + 1100, "\"");
		rc = chal(buf, &c2, err);
		tap_ok(rc == -EINVAL && strstr(err, "realm longer than 1023"), "challenge: over-long realm: %s",
		       err);
		n = snprintf(buf, sizeof(buf), "Bearer realm=\"https://a/t\",service=\"");
		memset(buf + n, 's', 256);
		strcpy(buf + n + 256, "\"");
		rc = chal(buf, &c2, err);
		tap_ok(rc == -EINVAL && strstr(err, "service longer than 255"), "challenge: over-long service");
		n = snprintf(buf, sizeof(buf), "Bearer realm=\"https://a/t\",service=\"");
		memset(buf + n, 's', 255);
		strcpy(buf + n + 255, "\"");
		rc = chal(buf, &c2, err);
		tap_ok(rc == 0 && strlen(c2.service) == 255, "challenge: service of exactly 255 bytes");
		n = snprintf(buf, sizeof(buf), "Bearer realm=\"https://a/t\",junk=\"");
		memset(buf + n, 'j', 3000);
		strcpy(buf + n + 3000, "\"");
		rc = chal(buf, &c2, err);
		tap_ok(rc == 0, "challenge: over-long unknown parameter ignored");
		n = snprintf(buf, sizeof(buf), "Bearer realm=\"https://a/t\",scope=\"");
		memset(buf + n, 'x', 600);
		strcpy(buf + n + 600, "\"");
		rc = chal(buf, &c2, err);
		tap_ok(rc == -EINVAL && strstr(err, "scope"), "challenge: over-long scope");
	}
}

static void test_token_url(void)
{
	struct auth_challenge ch;
	char out[2048], err[256];
	int rc;

	chal("Bearer realm=\"https://auth.example/token\",service=\"registry.example\","
	     "scope=\"repository:a/b:pull\"", &ch, err);
	rc = auth_token_url(&ch, out, sizeof(out));
	tap_ok(rc == 0 && !strcmp(out, "https://auth.example/token?service=registry.example&"
				  "scope=repository%3Aa%2Fb%3Apull"), "token url: %s", out);
	chal("Bearer realm=\"https://auth.example/token?x=1\",service=\"a b&c=d\"", &ch, err);
	rc = auth_token_url(&ch, out, sizeof(out));
	tap_ok(rc == 0 && !strcmp(out, "https://auth.example/token?x=1&service=a%20b%26c%3Dd"),
	       "token url: realm query kept, values encoded, no scope: %s", out);
	chal("Bearer realm=\"https://a/t\",scope=\"repository:x:pull repository:y:pull\"", &ch, err);
	rc = auth_token_url(&ch, out, sizeof(out));
	tap_ok(rc == 0 && !strcmp(out, "https://a/t?scope=repository%3Ax%3Apull%20repository%3Ay%3Apull"),
	       "token url: no service, space in scope: %s", out);
	chal("Bearer realm=\"https://a/t\",service=\"~._-AZaz09\"", &ch, err);
	rc = auth_token_url(&ch, out, sizeof(out));
	tap_ok(rc == 0 && !strcmp(out, "https://a/t?service=~._-AZaz09"), "token url: unreserved kept");
	chal("Bearer realm=\"https://auth.example/token\",service=\"registry.example\"", &ch, err);
	rc = auth_token_url(&ch, out, 20);
	tap_ok(rc == -ENAMETOOLONG && out[0] == 0, "token url: too small a buffer");
	rc = auth_token_url(&ch, out, strlen("https://auth.example/token?service=registry.example") + 1);
	tap_ok(rc == 0, "token url: exactly fitting buffer");
	rc = auth_token_url(&ch, out, strlen("https://auth.example/token?service=registry.example"));
	tap_ok(rc == -ENAMETOOLONG, "token url: one byte short");
	memset(&ch, 0, sizeof(ch));
	tap_ok(auth_token_url(&ch, out, sizeof(out)) == -EINVAL, "token url: empty realm");
}

static int tok(const char *body, char *t, size_t tl, long *exp, char *err)
{
	err[0] = 0;
	return auth_parse_token_response(body, strlen(body), t, tl, exp, err, 256);
}

static void test_token_response(void)
{
	char t[256], err[256], big[20000];
	long exp;
	int rc;

	rc = tok("{\"token\":\"abc\",\"expires_in\":300,\"issued_at\":\"2024-01-01T00:00:00Z\"}",
		 t, sizeof(t), &exp, err);
	tap_ok(rc == 0 && !strcmp(t, "abc") && exp == 300, "token: token + expires_in");
	rc = tok("{\"access_token\":\"xyz\"}", t, sizeof(t), &exp, err);
	tap_ok(rc == 0 && !strcmp(t, "xyz") && exp == 60, "token: access_token, default expiry");
	rc = tok("{\"access_token\":\"second\",\"token\":\"first\"}", t, sizeof(t), &exp, err);
	tap_ok(rc == 0 && !strcmp(t, "first"), "token: token beats access_token");
	rc = tok("{\"token\":\"\",\"access_token\":\"fallback\"}", t, sizeof(t), &exp, err);
	tap_ok(rc == 0 && !strcmp(t, "fallback"), "token: empty token falls back");
	rc = tok("{\"token\":5,\"access_token\":\"fb\"}", t, sizeof(t), &exp, err);
	tap_ok(rc == 0 && !strcmp(t, "fb"), "token: non-string token falls back");
	rc = tok("{\"foo\":\"bar\"}", t, sizeof(t), &exp, err);
	tap_ok(rc == -EINVAL && strstr(err, "no token or access_token string"), "token: neither: %s", err);
	rc = tok("<html>502 Bad Gateway</html>", t, sizeof(t), &exp, err);
	tap_ok(rc == -EINVAL && !strncmp(err, "token response: invalid JSON", 28), "token: not JSON: %s", err);
	rc = tok("\"abc\"", t, sizeof(t), &exp, err);
	tap_ok(rc == -EINVAL, "token: JSON string, not an object");
	rc = tok("{\"token\":\"abc\",\"expires_in\":\"300\"}", t, sizeof(t), &exp, err);
	tap_ok(rc == -EINVAL && strstr(err, "expires_in") && t[0] == 0, "token: expires_in a string");
	rc = tok("{\"token\":\"abc\",\"expires_in\":0}", t, sizeof(t), &exp, err);
	tap_ok(rc == 0 && exp == 60, "token: expires_in 0 -> default");
	rc = tok("{\"token\":\"abc\",\"expires_in\":-5}", t, sizeof(t), &exp, err);
	tap_ok(rc == 0 && exp == 60, "token: negative expires_in -> default");
	rc = tok("{\"token\":\"abc\",\"expires_in\":1e30}", t, sizeof(t), &exp, err);
	tap_ok(rc == 0 && exp == AUTH_TOKEN_MAX_EXPIRES, "token: huge expires_in capped");
	rc = tok("{\"token\":\"abc\",\"expires_in\":null}", t, sizeof(t), &exp, err);
	tap_ok(rc == 0 && exp == 60, "token: expires_in null");
	rc = tok("{\"token\":\"abcdefgh\"}", t, 8, &exp, err);
	tap_ok(rc == -EINVAL && strstr(err, "longer than 7"), "token: too long for the buffer");
	rc = tok("{\"token\":\"abcdefg\"}", t, 8, &exp, err);
	tap_ok(rc == 0 && !strcmp(t, "abcdefg"), "token: exactly fits");
	rc = tok("{\"token\":\"a\\r\\nX-Injected: 1\"}", t, sizeof(t), &exp, err);
	tap_ok(rc == -EINVAL && t[0] == 0, "token: CR/LF in a token rejected");
	rc = tok("{\"token\":\"a\\u0000b\"}", t, sizeof(t), &exp, err);
	tap_ok(rc == -EINVAL, "token: NUL inside a token rejected");
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	memcpy(big, "{\"token\":\"a\"}", 13);
	rc = tok(big, t, sizeof(t), &exp, err);
	tap_ok(rc == -EINVAL && strstr(err, "larger than 16384"), "token: body over 16 KiB: %s", err);
}

static void test_b64(void)
{
	static const struct { const char *plain, *enc; } v[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	static const char *const bad[] = { "Zg=", "Zg", "Z===", "Zm9v\n", "Zm=v", "=Zm9", "Zg==Zg==",
					   "Zm9v YmFy", "Zm9-" };
	unsigned char dec[64];
	char enc[64];
	size_t n;
	bool ok = true;
	struct reg_cred cr = { .user = "Aladdin", .pass = "open sesame" };
	char hdr[128];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		ok &= auth_b64_encode((const unsigned char *)v[i].plain, strlen(v[i].plain), enc,
				      sizeof(enc)) == 0 && !strcmp(enc, v[i].enc);
		ok &= auth_b64_decode(v[i].enc, strlen(v[i].enc), dec, &n) == 0 &&
		      n == strlen(v[i].plain) && !memcmp(dec, v[i].plain, n);
	}
	tap_ok(ok, "base64: RFC 4648 test vectors both ways");
	ok = true;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok &= auth_b64_decode(bad[i], strlen(bad[i]), dec, &n) == -EINVAL;
	tap_ok(ok, "base64: malformed input rejected");
	tap_ok(auth_b64_encode((const unsigned char *)"foo", 3, enc, 4) == -ENAMETOOLONG &&
	       auth_b64_encode((const unsigned char *)"foo", 3, enc, 5) == 0,
	       "base64: encode buffer bound (NUL included)");
	{
		unsigned char all[256], back[256];
		char e[AUTH_B64_ENCODED_LEN(256) + 1];

		for (int i = 0; i < 256; i++)
			all[i] = (unsigned char)i;
		ok = auth_b64_encode(all, 256, e, sizeof(e)) == 0 &&
		     auth_b64_decode(e, strlen(e), back, &n) == 0 && n == 256 && !memcmp(all, back, 256);
		tap_ok(ok, "base64: all byte values round-trip");
	}
	tap_ok(auth_basic_header(&cr, hdr, sizeof(hdr)) == 0 &&
	       !strcmp(hdr, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), "basic header: RFC 7617 example");
	tap_ok(auth_basic_header(&cr, hdr, 20) == -ENAMETOOLONG, "basic header: buffer too small");
}

/* ------------------------------------------------------------------------
 * URLs
 */

static void blob_bad(const char *url, const char *has)
{
	struct reg_url u;
	char err[256] = "";
	int rc = url_parse_blob(url, &u, err, sizeof(err));

	tap_ok(rc == -EINVAL && (!has || strstr(err, has)), "blob url: %s rejected (%s)", url, err);
}

static void ref_bad(const char *ref, const char *has)
{
	struct reg_url u;
	char err[256] = "";
	int rc = url_parse_ref(ref, &u, err, sizeof(err));

	tap_ok(rc == -EINVAL && (!has || strstr(err, has)), "ref: %s rejected (%s)", ref, err);
}

static void test_url(void)
{
	struct reg_url u;
	char err[256] = "", out[1024], pre[8][1024];
	int rc, n;

	rc = url_parse_blob(BLOB, &u, err, sizeof(err));
	tap_ok(rc == 0 && !strcmp(u.scheme, "https") && !strcmp(u.host, "reg.example.com") &&
	       u.port == 0 && !strcmp(u.repo, "a/b") && !strcmp(u.digest, "sha256:" HEX64) &&
	       u.tag[0] == 0, "blob url: parts");
	rc = url_parse_blob(BLOB_PORT, &u, err, sizeof(err));
	tap_ok(rc == 0 && !strcmp(u.scheme, "http") && u.port == 5000, "blob url: http with port");
	rc = url_parse_blob("HTTPS://[2001:db8::1]:443/v2/x/blobs/sha256:" HEX64, &u, err, sizeof(err));
	tap_ok(rc == 0 && !strcmp(u.scheme, "https") && !strcmp(u.host, "[2001:db8::1]") && u.port == 443,
	       "blob url: IPv6 literal, upper-case scheme (%s)", err);
	rc = url_parse_blob("https://10.0.0.1/v2/blobs/blobs/sha256:" HEX64, &u, err, sizeof(err));
	tap_ok(rc == 0 && !strcmp(u.repo, "blobs"), "blob url: repository named blobs");
	rc = url_parse_blob("https://h/v2/a.b/c_d/e__f/g--h/i-j/blobs/sha256:" HEX64, &u, err, sizeof(err));
	tap_ok(rc == 0 && !strcmp(u.repo, "a.b/c_d/e__f/g--h/i-j"), "blob url: OCI separators");
	rc = url_parse_blob("https://reg:65535/v2/a/blobs/sha256:" HEX64, &u, err, sizeof(err));
	tap_ok(rc == 0 && u.port == 65535, "blob url: port 65535");

	blob_bad("", "empty");
	blob_bad("ftp://h/v2/a/blobs/sha256:" HEX64, "http");
	blob_bad("h/v2/a/blobs/sha256:" HEX64, "http");
	blob_bad("https://h", "no path");
	blob_bad("https:///v2/a/blobs/sha256:" HEX64, "no host");
	blob_bad("https://h:0/v2/a/blobs/sha256:" HEX64, "port");
	blob_bad("https://h:65536/v2/a/blobs/sha256:" HEX64, "port");
	blob_bad("https://h:/v2/a/blobs/sha256:" HEX64, "port");
	blob_bad("https://h:+80/v2/a/blobs/sha256:" HEX64, "port");
	blob_bad("https://user:pw@h/v2/a/blobs/sha256:" HEX64, "user info");
	blob_bad("https://[::1/v2/a/blobs/sha256:" HEX64, "IPv6");
	blob_bad("https://[zz::1]/v2/a/blobs/sha256:" HEX64, "IPv6");
	blob_bad("https://[::1]x/v2/a/blobs/sha256:" HEX64, "IPv6");
	blob_bad("https://h..x/v2/a/blobs/sha256:" HEX64, "host");
	blob_bad("https://h/v1/a/blobs/sha256:" HEX64, "/v2/");
	blob_bad("https://h/v2/a/manifests/latest", "blobs");
	blob_bad("https://h/v2/blobs/sha256:" HEX64, "blobs");
	blob_bad("https://h/v2/A/blobs/sha256:" HEX64, "repository component \"A\"");
	blob_bad("https://h/v2/a//b/blobs/sha256:" HEX64, "repository");
	blob_bad("https://h/v2/a-/blobs/sha256:" HEX64, "repository");
	blob_bad("https://h/v2/a___b/blobs/sha256:" HEX64, "repository");
	blob_bad("https://h/v2/a/blobs/sha256:" HEX64 "0", "digest");
	blob_bad("https://h/v2/a/blobs/sha256:0123", "digest");
	blob_bad("https://h/v2/a/blobs/sha512:" HEX64, "digest");
	blob_bad("https://h/v2/a/blobs/sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
		 "digest");
	blob_bad("https://h/v2/a/blobs/sha256:" HEX64 "?x=1", "query");
	blob_bad("https://h/v2/a b/blobs/sha256:" HEX64, "space");

	rc = url_parse_ref("reg.example.com/a/b:v1", &u, err, sizeof(err));
	tap_ok(rc == 0 && !strcmp(u.scheme, "https") && !strcmp(u.host, "reg.example.com") &&
	       !u.port && !strcmp(u.repo, "a/b") && !strcmp(u.tag, "v1") && !u.digest[0],
	       "ref: no scheme -> https, tag");
	rc = url_parse_ref("http://localhost:5000/img", &u, err, sizeof(err));
	tap_ok(rc == 0 && !strcmp(u.scheme, "http") && u.port == 5000 && !strcmp(u.repo, "img") &&
	       !strcmp(u.tag, "latest"), "ref: http, port, default tag");
	rc = url_parse_ref("localhost:5000/a/b", &u, err, sizeof(err));
	tap_ok(rc == 0 && u.port == 5000 && !strcmp(u.repo, "a/b") && !strcmp(u.tag, "latest"),
	       "ref: port without scheme");
	rc = url_parse_ref("https://[::1]:8443/x:_Tag.1-2", &u, err, sizeof(err));
	tap_ok(rc == 0 && !strcmp(u.host, "[::1]") && u.port == 8443 && !strcmp(u.tag, "_Tag.1-2"),
	       "ref: IPv6, tag charset");
	ref_bad("reg.example.com/Upper", "repository");
	ref_bad("ubuntu:latest", "HOST");
	ref_bad("reg/a:", "tag");
	ref_bad("reg/a:-x", "tag");
	ref_bad("reg/a:t:u", "tag");
	ref_bad("reg/a@sha256:" HEX64, "digest");
	ref_bad("ftp://reg/a", "scheme");
	ref_bad("reg:99999/a", "port");
	ref_bad("reg/", "repository");
	{
		char ref[300];

		memset(ref, 0, sizeof(ref));
		strcpy(ref, "reg/a:");
		memset(ref + 6, 't', 129);
		ref_bad(ref, "tag");
		ref[6 + 128] = 0;
		tap_ok(url_parse_ref(ref, &u, err, sizeof(err)) == 0, "ref: 128-byte tag accepted");
	}

	url_parse_blob(BLOB_PORT, &u, err, sizeof(err));
	rc = url_origin(&u, out, sizeof(out));
	tap_ok(rc == 0 && !strcmp(out, "http://reg.example.com:5000"), "origin: with port: %s", out);
	tap_ok(url_origin(&u, out, 10) == -ENAMETOOLONG, "origin: buffer too small");
	url_parse_blob(BLOB, &u, err, sizeof(err));
	url_origin(&u, out, sizeof(out));
	tap_ok(!strcmp(out, "https://reg.example.com"), "origin: without port");
	n = url_cred_prefixes(&u, pre, 8);
	tap_ok(n == 3 && !strcmp(pre[0], "reg.example.com") && !strcmp(pre[1], "reg.example.com/a") &&
	       !strcmp(pre[2], "reg.example.com/a/b"), "cred prefixes: host, host/a, host/a/b");
	n = url_cred_prefixes(&u, pre, 2);
	tap_ok(n == 2, "cred prefixes: bounded by max");
	url_parse_blob(BLOB_PORT, &u, err, sizeof(err));
	n = url_cred_prefixes(&u, pre, 8);
	tap_ok(n == 3 && !strcmp(pre[0], "reg.example.com:5000") && !strcmp(pre[2], "reg.example.com:5000/a/b"),
	       "cred prefixes: with port");
}

/* ------------------------------------------------------------------------
 * URLs through libcurl: the one origin comparison, redactor and encoder
 */

static void redact_is(const char *url, const char *want)
{
	char out[512];

	url_redact(url, out, sizeof(out));
	tap_ok(!strcmp(out, want), "redact: %s -> %s", url, out);
}

static void rel_is(const char *a, const char *b, enum url_origin_rel want, const char *what)
{
	enum url_origin_rel rel = url_origin_relation(a, b);

	tap_ok(rel == want, "origin: %s (%s -> %s: %d)", what, a, b, rel);
}

static void test_url_curl(void)
{
	static const struct {
		const char *a, *b;
		enum url_origin_rel want;
		const char *what;
	} rels[] = {
		{ "https://reg.example.com/v2/", "https://REG.example.com:443/x",
		  URL_ORIGIN_SAME, "case and the default port" },
		{ "http://reg.example.com/v2/", "http://reg.example.com:80/x",
		  URL_ORIGIN_SAME, "http's default port" },
		{ "https://reg.example.com/", "https://reg.example.com:8443/",
		  URL_ORIGIN_OTHER, "another port" },
		{ "https://reg.example.com/", "https://user:pw@reg.example.com/",
		  URL_ORIGIN_SAME, "user info is not part of the origin" },
		{ "http://reg.example.com:5000/", "https://reg.example.com/",
		  URL_ORIGIN_UPGRADE, "http to https on the same host (any port)" },
		{ "https://reg.example.com/", "http://reg.example.com/",
		  URL_ORIGIN_DOWNGRADE, "https to http on the same host" },
		{ "https://reg.example.com/", "https://reg.example.com.evil/",
		  URL_ORIGIN_OTHER, "a longer host" },
		{ "https://reg.example.com/", "https://reg.example.com@evil.example/",
		  URL_ORIGIN_OTHER, "user info that looks like the host" },
		{ "https://example.com/", "https://ex%61mple.com/",
		  URL_ORIGIN_SAME, "a percent-encoded host is the host it decodes to" },
		{ "https://[::1]:5000/", "https://[0:0::1]:5000/",
		  URL_ORIGIN_SAME, "IPv6 literals compared as addresses" },
		{ "https://[::1]/", "https://[::2]/",
		  URL_ORIGIN_OTHER, "two IPv6 literals" },
		{ "https://[fe80::1%25eth0]/", "https://[fe80::1%25eth1]/",
		  URL_ORIGIN_OTHER, "IPv6 zones differ" },
		{ "https://reg.example.com/", "ftp://reg.example.com/",
		  URL_ORIGIN_OTHER, "not http(s)" },
		{ "https://reg.example.com/", "/relative/path",
		  URL_ORIGIN_OTHER, "not absolute" },
		{ "https://reg.example.com/", "https://bad host/",
		  URL_ORIGIN_OTHER, "does not parse" },
	};
	char out[512], small[24];
	int rc;

	/* the redactor: user info, query and fragment never shown */
	redact_is("https://user:secret@reg.example.com/v2/a/blobs/sha256:" HEX64,
		  "https://reg.example.com/v2/a/blobs/sha256:" HEX64);
	redact_is("https://s3.example.com/bucket/blob?X-Amz-Signature=abc&X-Amz-Credential=k",
		  "https://s3.example.com/bucket/blob?...");
	redact_is("https://cdn.example.com/blob#token=abc", "https://cdn.example.com/blob?...");
	redact_is("http://u@[::1]:5000/v2/?q", "http://[::1]:5000/v2/?...");
	redact_is("https://user:pw;opt@h/x", "https://h/x");
	/* obd's old redactor showed the password's tail and the fragment of these */
	redact_is("https://user:p@ss@h/x", "(a URL that does not parse)");
	redact_is("https://user:p%40ss@h/x#frag", "https://h/x?...");
	redact_is("http://127.0.0.1:8080/dadip2p/access", "http://127.0.0.1:8080/dadip2p/access");
	redact_is("HTTPS://Reg.Example.COM:443/a/../b", "https://Reg.Example.COM:443/a/../b");
	redact_is("ftp://user:pw@h/x?y", "ftp://h/x?...");
	redact_is("not a url user:pw@h?secret", "(a URL that does not parse)");
	redact_is("https://h:99999/x?secret", "(a URL that does not parse)");
	url_redact("https://user:pw@reg.example.com/a/very/long/path?secret", small, sizeof(small));
	tap_ok(!strcmp(small, "https://reg.example?...") && !strstr(small, "pw"),
	       "redact: cut to fit in the URL, the query marker whole (%s)", small);
	url_redact("https://h/long/path", small, sizeof(small));
	tap_ok(!strcmp(small, "https://h/long/path"), "redact: no query, no marker (%s)", small);
	url_redact("https://h/x?q", small, 4);
	tap_ok(!small[0], "redact: no room for the marker: nothing (%s)", small);

	/* the one origin comparison */
	for (size_t i = 0; i < sizeof(rels) / sizeof(rels[0]); i++)
		rel_is(rels[i].a, rels[i].b, rels[i].want, rels[i].what);
	tap_ok(url_creds_may_go("http://h:5000/", "https://h/") &&
	       url_creds_may_go("https://h/", "https://h:443/") &&
	       !url_creds_may_go("https://h/", "http://h/") &&
	       !url_creds_may_go("https://h/", "https://i/"), "creds_may_go: SAME and UPGRADE only");
	rc = url_origin_of("HTTPS://User:pw@Reg.Example.COM/v2/?x", out, sizeof(out));
	tap_ok(rc == 0 && !strcmp(out, "https://reg.example.com:443"), "origin_of: %s", out);
	rc = url_origin_of("http://[::1]/", out, sizeof(out));
	tap_ok(rc == 0 && !strcmp(out, "http://[::1]:80"), "origin_of: IPv6: %s", out);
	tap_ok(url_origin_of("mailto:x@y", out, sizeof(out)) == -EINVAL && !out[0],
	       "origin_of: not http(s)");
	tap_ok(url_is_https("HTTPS://h/") && !url_is_https("http://h/") &&
	       !url_is_https("https//h") && !url_is_https("https:/h/x") &&
	       !url_is_https("https:h") && !url_is_https(NULL), "is_https");

	/* the one query encoder */
	rc = url_append_query("https://h/uploads/1?_state=a", "digest", "sha256:" HEX64, out,
			      sizeof(out));
	tap_ok(rc == 0 && !strcmp(out, "https://h/uploads/1?_state=a&digest=sha256%3A" HEX64),
	       "append_query: to a query: %s", out);
	rc = url_append_query("http://127.0.0.1:9/auth", "remote_url",
			      "https://r/v2/a/b/blobs/x?y=1&z=2 ~", out, sizeof(out));
	tap_ok(rc == 0 && !strcmp(out, "http://127.0.0.1:9/auth?remote_url=https%3A%2F%2Fr%2Fv2%2F"
				  "a%2Fb%2Fblobs%2Fx%3Fy%3D1%26z%3D2%20~"),
	       "append_query: a URL as the value: %s", out);
	rc = url_append_query("https://h/t", "k", "\xc3\xa9+%", out, sizeof(out));
	tap_ok(rc == 0 && !strcmp(out, "https://h/t?k=%C3%A9%2B%25"), "append_query: bytes: %s", out);
	tap_ok(url_append_query("https://h/t", "k", "v", small, 12) == -ENAMETOOLONG && !small[0],
	       "append_query: too small a buffer");
	tap_ok(url_append_query("nope", "k", "v", out, sizeof(out)) == -EINVAL,
	       "append_query: not a URL");
	snprintf(out, sizeof(out), "https://h/t");
	tap_ok(url_append_query(out, "a", "b", out, sizeof(out)) == 0 &&
	       !strcmp(out, "https://h/t?a=b"), "append_query: in place");

	/* redirects */
	snprintf(out, sizeof(out), "https://h/v2/a/blobs/x");
	rc = url_resolve(out, "/data/x?sig=1", out, sizeof(out));
	tap_ok(rc == 0 && !strcmp(out, "https://h/data/x?sig=1"), "resolve: relative, in place: %s",
	       out);
	tap_ok(url_resolve("https://h/", "ftp://h/x", out, sizeof(out)) == -EPROTO,
	       "resolve: to ftp refused");
}

/* ------------------------------------------------------------------------
 * The challenge/credential answer of obd and the daemon, token keys
 */

static void test_auth_answer(void)
{
	struct reg_cred anon = { "", "" }, cred = { "user", "pass" };
	struct auth_challenge ch;
	char hdr[256], err[256], key[2048], key2[2048], id[32], id2[32];
	int rc;

	chal("Basic realm=\"r\"", &ch, err);
	rc = auth_answer(&ch, BLOB, &cred, hdr, sizeof(hdr), err, sizeof(err));
	tap_ok(rc == AUTH_ANSWER_HEADER && !strcmp(hdr, "Authorization: Basic dXNlcjpwYXNz"),
	       "answer: Basic with credentials: %s", hdr);
	rc = auth_answer(&ch, BLOB, &anon, hdr, sizeof(hdr), err, sizeof(err));
	tap_ok(rc == -EACCES && !hdr[0] && strstr(err, "no credentials"),
	       "answer: Basic without credentials refused (%s)", err);
	rc = auth_answer(&ch, BLOB, &cred, hdr, 20, err, sizeof(err));
	tap_ok(rc == -ENAMETOOLONG, "answer: header too long");
	chal("Bearer realm=\"https://auth.example/token\",service=\"s\"", &ch, err);
	rc = auth_answer(&ch, BLOB, &anon, hdr, sizeof(hdr), err, sizeof(err));
	tap_ok(rc == AUTH_ANSWER_TOKEN && !hdr[0], "answer: Bearer, anonymous: a token, no header");
	rc = auth_answer(&ch, BLOB, &cred, hdr, sizeof(hdr), err, sizeof(err));
	tap_ok(rc == AUTH_ANSWER_TOKEN && !strcmp(hdr, "Authorization: Basic dXNlcjpwYXNz"),
	       "answer: Bearer with credentials: a token asked with Basic");
	chal("Bearer realm=\"http://auth.example/token\"", &ch, err);
	rc = auth_answer(&ch, BLOB, &cred, hdr, sizeof(hdr), err, sizeof(err));
	tap_ok(rc == -EACCES && !hdr[0] && strstr(err, "token realm is http:// for an https registry"),
	       "answer: D6: an http realm of an https registry refused (%s)", err);
	rc = auth_answer(&ch, BLOB_PORT, &cred, hdr, sizeof(hdr), err, sizeof(err));
	tap_ok(rc == AUTH_ANSWER_TOKEN, "answer: an http realm of an http registry");
	tap_ok(auth_bearer_line("tok", hdr, sizeof(hdr)) == 0 &&
	       !strcmp(hdr, "Authorization: Bearer tok") &&
	       auth_bearer_line("tok", hdr, 20) == -ENAMETOOLONG, "bearer line");

	/* token keys (D2) */
	auth_cred_id(&anon, id, sizeof(id));
	tap_ok(!strcmp(id, "-"), "cred id: anonymous");
	auth_cred_id(&cred, id, sizeof(id));
	tap_ok(strlen(id) == 16 && !strstr(id, "user"), "cred id: 16 hex digits (%s)", id);
	strcpy(cred.pass, "other");
	auth_cred_id(&cred, id2, sizeof(id2));
	tap_ok(strcmp(id, id2), "cred id: another password, another id");
	chal("Bearer realm=\"https://auth.example/token\",service=\"s\",scope=\"repository:a/b:pull\"",
	     &ch, err);
	rc = auth_token_key(BLOB, id, &ch, key, sizeof(key));
	tap_ok(rc == 0 && !strncmp(key, "https://reg.example.com:443|", 28), "token key: %s", key);
	auth_token_key("https://REG.example.com:443/v2/c/blobs/x", id, &ch, key2, sizeof(key2));
	tap_ok(!strcmp(key, key2), "token key: the same origin written otherwise");
	auth_token_key("https://reg.example.com:8443/v2/a/b/blobs/x", id, &ch, key2, sizeof(key2));
	tap_ok(strcmp(key, key2), "token key: another port, another key");
	auth_token_key(BLOB, id2, &ch, key2, sizeof(key2));
	tap_ok(strcmp(key, key2), "token key: other credentials, another key");
	tap_ok(auth_token_key("nope", id, &ch, key2, sizeof(key2)) == -EINVAL,
	       "token key: no origin");
	tap_ok(auth_token_key(BLOB, id, &ch, key2, 30) == -ENAMETOOLONG && !key2[0],
	       "token key: too small a buffer");
}

/* ------------------------------------------------------------------------
 * Response headers both transports read
 */

static void test_headers(void)
{
	static const char *const bad_cr[] = {
		/* the first two were ranges of unknown total to the daemon's old parser */
		"bytes 0-9", "bytes 0-9/10x", "bytes a-9/10", "items 0-9/10", "bytes 0-9/*x", "",
		"bytes 0-9/10 ",
	};
	const char *v;
	size_t vlen;
	uint64_t a, b, t;

	tap_ok(reg_header(S("content-range:  bytes 0-9/10 \r\n"), "Content-Range", &v, &vlen) &&
	       vlen == 12 && !strncmp(v, "bytes 0-9/10", 12), "header: name case, blanks, CRLF");
	tap_ok(!reg_header(S("Content-Ranges: x\r\n"), "Content-Range", &v, &vlen) &&
	       !reg_header(S("Content-Range\r\n"), "Content-Range", &v, &vlen),
	       "header: another name, no colon");
	tap_ok(reg_header(S("Location:\r\n"), "location", &v, &vlen) && vlen == 0,
	       "header: empty value");
	tap_ok(reg_content_range(S("bytes 0-9/10"), &a, &b, &t) && a == 0 && b == 9 && t == 10,
	       "content-range: with total");
	tap_ok(reg_content_range(S("Bytes 5-9/*"), &a, &b, &t) && a == 5 && b == 9 && t == 0,
	       "content-range: total unknown, any case");
	for (size_t i = 0; i < sizeof(bad_cr) / sizeof(bad_cr[0]); i++)
		tap_ok(!reg_content_range(bad_cr[i], strlen(bad_cr[i]), &a, &b, &t),
		       "content-range: '%s' refused", bad_cr[i]);
	tap_ok(auth_challenge_better("", S("Basic realm=x")), "challenge: the first is taken");
	tap_ok(auth_challenge_better("Basic realm=x", S("Bearer realm=\"https://a\"")),
	       "challenge: Bearer over Basic");
	tap_ok(!auth_challenge_better("Bearer realm=\"https://a\"", S("Bearer realm=\"https://b\"")),
	       "challenge: the first Bearer stays");
	tap_ok(!auth_challenge_better("Basic realm=x", S("Bearerx realm=y")) &&
	       !auth_challenge_better("Bearer realm=a", S("Basic realm=x")),
	       "challenge: not a Bearer, not over a Bearer");
}

/* gzipCacheConfig: the reference's keys and defaults, refillSize whole pages */
static void test_config_gzip(void)
{
	struct fetchd_config c;
	char err[256];
	int rc;

	fetchd_config_defaults(&c);
	tap_ok(!c.gz_enable && !strcmp(c.gz_dir, "/opt/overlaybd/gzip_cache") && c.gz_size_gb == 4 &&
	       c.gz_refill_size == 1048576, "config defaults: gzipCacheConfig off, /opt/overlaybd/gzip_cache, 4 GiB, 1 MiB");
	rc = cfg("{\"gzipCacheConfig\":{\"enable\":true,\"cacheDir\":\"/var/cache/gz\","
		 "\"cacheSizeGB\":0.5,\"refillSize\":12288}}", &c, err);
	tap_ok(rc == 0 && c.gz_enable && !strcmp(c.gz_dir, "/var/cache/gz") && c.gz_size_gb == 0.5 &&
	       c.gz_refill_size == 12288, "config: gzipCacheConfig values (refillSize 3 pages) (%s)", err);
	cfg_bad("{\"gzipCacheConfig\":{\"refillSize\":4095}}", "gzipCacheConfig.refillSize: expected a positive multiple of 4096", NULL);
	cfg_bad("{\"gzipCacheConfig\":{\"refillSize\":0}}", "gzipCacheConfig.refillSize: expected a positive multiple of 4096", NULL);
	cfg_bad("{\"gzipCacheConfig\":{\"refillSize\":-4096}}", "gzipCacheConfig.refillSize: expected a positive multiple of 4096", NULL);
	cfg_bad("{\"gzipCacheConfig\":{\"refillSize\":134217728}}", "gzipCacheConfig.refillSize: expected a positive multiple of 4096", NULL);
	cfg_bad("{\"gzipCacheConfig\":{\"enable\":1}}", "gzipCacheConfig.enable: expected a boolean", NULL);
	cfg_bad("{\"gzipCacheConfig\":{\"cacheDir\":\"\"}}", "gzipCacheConfig.cacheDir", NULL);
	cfg_bad("{\"gzipCacheConfig\":{\"cacheSizeGB\":0}}", "gzipCacheConfig.cacheSizeGB", NULL);
}

int main(void)
{
	test_config_defaults();
	test_config_keys();
	test_config_gzip();
	test_config_errors();
	test_config_load();
	test_cred();
	test_challenge();
	test_token_url();
	test_token_response();
	test_b64();
	test_url();
	test_url_curl();
	test_auth_answer();
	test_headers();
	return tap_done();
}
