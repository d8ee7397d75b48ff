/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * obd convert --turbo-oci (turbo_conv.c): the image in the OCI layout
 * `layout` (skopeo's copy of SOURCE) into a TurboOCI image in OUT.
 */
#ifndef OBD_TURBO_CONV_H
#define OBD_TURBO_CONV_H

#include "obd.h"

struct turbo_opts {
	u64 vsize;		/* the fs meta's virtual size */
	const char *tag;	/* ref name in index.json */
	bool zero_detect;	/* zero sectors of the meta as zeroed records */
};

int turbo_convert(const char *layout, const char *out, const char *work,
		  const struct turbo_opts *o);

#endif
