// SPDX-License-Identifier: GPL-2.0-only
/* obd_table_parse: well-formed lines, and what a malformed one still gives. */
#include <stdio.h>
#include <string.h>

#include "dm_table.h"
#include "tap.h"

static int parse(const char *line, struct obd_table *t, char *buf, size_t len)
{
	snprintf(buf, len, "%s", line);
	return obd_table_parse(buf, t);
}

static void test_good(void)
{
	struct obd_table t;
	char buf[512];

	tap_ok(!parse("1 /a", &t, buf, sizeof(buf)) && t.n == 1 && !strcmp(t.layers[0], "/a") &&
	       !t.nopt, "one layer, no options");
	tap_ok(!parse("2 /a remote:1:sha256:x:/c 1 no_verify", &t, buf, sizeof(buf)) &&
	       t.n == 2 && !strcmp(t.layers[0], "/a") &&
	       !strcmp(t.layers[1], "remote:1:sha256:x:/c") && t.nopt == 1 &&
	       !strcmp(t.opts[0], "no_verify"), "two layers, one option");
	tap_ok(!parse("2 /a /b 4 no_verify upper /d -", &t, buf, sizeof(buf)) && t.nopt == 4 &&
	       !strcmp(t.opts[1], "upper") && !strcmp(t.opts[3], "-"), "options in order");
	tap_ok(!parse("  1\t/a  0\n", &t, buf, sizeof(buf)) && t.n == 1 &&
	       !strcmp(t.layers[0], "/a") && !t.nopt, "white space runs; #opt args 0");
	tap_ok(!parse("3 /a\\040b /c\\134d /e\\x\\000\\4001 3 upper /u\\040d\\011x -", &t, buf,
		     sizeof(buf)) &&
	       t.n == 3 && !strcmp(t.layers[0], "/a b") && !strcmp(t.layers[1], "/c\\d") &&
	       !strcmp(t.layers[2], "/e\\x\\000\\4001") && t.nopt == 3 &&
	       !strcmp(t.opts[1], "/u d\tx") && !strcmp(t.opts[2], "-"),
	       "\\ooo escapes decoded as the target decodes them, other backslashes kept");
	{
		char line[256];
		size_t n = (size_t)sprintf(line, "2");

		n += obd_table_word(line + n, "/dir with space/l\\1\t.commit");
		n += obd_table_word(line + n, "/plain\xc3\xa0");
		tap_ok(!strcmp(line, "2 /dir\\040with\\040space/l\\1341\\011.commit /plain\xc3\\240") &&
		       !obd_table_parse(line, &t) && t.n == 2 &&
		       !strcmp(t.layers[0], "/dir with space/l\\1\t.commit") &&
		       !strcmp(t.layers[1], "/plain\xc3\xa0"),
		       "obd_table_word encodes what the parse decodes (0xa0: the kernel's white space)");
	}
}

static void test_turbo(void)
{
	struct obd_table t;
	char buf[512], out[512];
	size_t n;

	tap_ok(!parse("3 /a turbo /m\\040x remote:9:sha256:x:/c /b 1 no_verify", &t, buf,
		      sizeof(buf)) && t.n == 3 && !t.targets[0] && !strcmp(t.layers[1], "/m x") &&
	       !strcmp(t.targets[1], "remote:9:sha256:x:/c") && !strcmp(t.layers[2], "/b") &&
	       !t.targets[2] && t.nopt == 1, "turbo <meta> <target>: one layer of three words");
	n = (size_t)sprintf(out, "3");
	for (unsigned int i = 0; i < t.n; i++) {
		tap_ok(obd_table_layer_room(&t, i) > 0, "room for layer %u", i);
		n += obd_table_layer_words(out + n, &t, i);
	}
	tap_ok(!strcmp(out, "3 /a turbo /m\\040x remote:9:sha256:x:/c /b"),
	       "layer words written back as the target prints them: %s", out);
	tap_ok(parse("2 /a turbo /m", &t, buf, sizeof(buf)) == -EINVAL && t.n == 1 &&
	       !t.targets[0] && !t.layers[1], "turbo without its target: refused, layers before kept");
	tap_ok(parse("1 turbo", &t, buf, sizeof(buf)) == -EINVAL && !t.n, "turbo alone");
}

static void test_bad(void)
{
	struct obd_table t;
	char buf[512];

	tap_ok(parse("", &t, buf, sizeof(buf)) == -EINVAL && !t.n, "empty line");
	tap_ok(parse("0", &t, buf, sizeof(buf)) == -EINVAL && !t.n, "no layers and no options");
	tap_ok(!parse("0 3 upper /d -", &t, buf, sizeof(buf)) && !t.n && t.nopt == 3 &&
	       !strcmp(t.opts[2], "-"), "no lowers, an upper alone");
	tap_ok(parse("256 /a", &t, buf, sizeof(buf)) == -EINVAL && !t.n, "too many layers");
	tap_ok(parse("2x /a /b", &t, buf, sizeof(buf)) == -EINVAL && !t.n, "#layers not a number");
	tap_ok(parse("3 /a /b", &t, buf, sizeof(buf)) == -EINVAL && t.n == 2 &&
	       !strcmp(t.layers[1], "/b"), "fewer layers than #layers: those read are kept");
	tap_ok(parse("1 /a 2 no_verify", &t, buf, sizeof(buf)) == -EINVAL && t.n == 1 && !t.nopt,
	       "fewer options than #opt args: layers kept, no options");
	tap_ok(parse("1 /a 1 no_verify x", &t, buf, sizeof(buf)) == -EINVAL && t.n == 1 &&
	       !t.nopt, "a word after the options");
	tap_ok(parse("1 /a 17 a b c d e f g h i j k l m n o p q", &t, buf, sizeof(buf)) == -EINVAL &&
	       t.n == 1 && !t.nopt, "more than OBD_TABLE_MAX_OPTS options");
	tap_ok(parse("1 /a x", &t, buf, sizeof(buf)) == -EINVAL && t.n == 1,
	       "#opt args not a number");
}

int main(void)
{
	test_good();
	test_turbo();
	test_bad();
	return tap_done();
}
