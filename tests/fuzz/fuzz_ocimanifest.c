// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: the image manifest reader of obd convert,
 * oci_manifest_layers() (tools/cli_oci.c, json-c), which reads what
 * skopeo copied from any source. Checks: an accepted manifest has 1..max
 * layers (max picked by the first input byte), each with a canonical
 * sha256 digest and a known compression; a failure has a message and
 * leaves the output untouched; parsing twice gives the same result.
 */
#include <string.h>
#include "fuzz_common.h"
#include "cli_oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct oci_src_layer a[OBD_MAX_LAYERS], b[OBD_MAX_LAYERS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int max, na = 12345, nb = 12345, i;
	char err[256] = "", err2[256] = "";
	int ra, rb;

	if (!size)
		return 0;
	max = 1 + data[0] % (OBD_MAX_LAYERS - 1);
	memset(a, 0xa5, sizeof(a));
	ra = oci_manifest_layers((const char *)data + 1, size - 1, a, max, &na, err, sizeof(err));
	rb = oci_manifest_layers((const char *)data + 1, size - 1, b, max, &nb, err2, sizeof(err2));
	FUZZ_CHECK(ra == rb && na == nb, "two parses differ: %d/%u vs %d/%u", ra, na, rb, nb);
	if (ra) {
		FUZZ_CHECK(ra == -EINVAL || ra == -ENOMEM, "returned %d", ra);
		FUZZ_CHECK(err[0] && memchr(err, 0, sizeof(err)), "failure without a message");
		FUZZ_CHECK(na == 12345, "failure changed the count");
		for (i = 0; i < sizeof(a); i++)
			FUZZ_CHECK(((unsigned char *)a)[i] == 0xa5, "failure wrote the output");
		return 0;
	}
	FUZZ_CHECK(na >= 1 && na <= max, "%u layers, max %u", na, max);
	for (i = 0; i < na; i++) {
		const char *d = a[i].digest;

		FUZZ_CHECK(strlen(d) == OBD_DIGEST_STR_LEN && !strncmp(d, "sha256:", 7) &&
			   strspn(d + 7, "0123456789abcdef") == 64, "layer %u digest '%s'", i, d);
		FUZZ_CHECK(a[i].comp == OCI_PLAIN || a[i].comp == OCI_GZIP || a[i].comp == OCI_ZSTD,
			   "layer %u compression %d", i, (int)a[i].comp);
		FUZZ_CHECK(!strcmp(d, b[i].digest) && a[i].comp == b[i].comp, "layer %u differs", i);
	}
	return 0;
}
