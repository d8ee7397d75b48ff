// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * overlaybd's CRC32C: the raw Castagnoli update (reflected 0x82F63B78),
 * seed used as-is, no inversion on either end; exactly what the SSE4.2
 * crc32 instruction computes from the seed. Being raw, it chains:
 * crc(s, a || b) == crc(crc(s, a), b).
 *
 * Userspace only: the kernel module maps obd_crc32c onto its own crc32c.
 */
#ifndef __KERNEL__
#include "obd.h"

static u32 crc_tab[8][256];

__attribute__((constructor)) static void crc_tab_init(void)
{
	u32 i, j, c;

	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++)
			c = (c >> 1) ^ ((c & 1) ? 0x82F63B78u : 0);
		crc_tab[0][i] = c;
	}
	for (i = 0; i < 256; i++) {
		c = crc_tab[0][i];
		for (j = 1; j < 8; j++) {
			c = (c >> 8) ^ crc_tab[0][c & 0xff];
			crc_tab[j][i] = c;
		}
	}
}

u32 obd_crc32c_sw(u32 crc, const void *buf, size_t len)
{
	const u8 *p = buf;
	u64 w;

	while (len && ((uintptr_t)p & 7)) {
		crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		memcpy(&w, p, 8);
		w ^= crc;
		crc = crc_tab[7][w & 0xff] ^ crc_tab[6][(w >> 8) & 0xff] ^
		      crc_tab[5][(w >> 16) & 0xff] ^ crc_tab[4][(w >> 24) & 0xff] ^
		      crc_tab[3][(w >> 32) & 0xff] ^ crc_tab[2][(w >> 40) & 0xff] ^
		      crc_tab[1][(w >> 48) & 0xff] ^ crc_tab[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static u32 obd_crc32c_sse42(u32 crc, const void *buf, size_t len)
{
	const u8 *p = buf;
	u64 c = crc, w;

	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((u32)c, *p++);
		len--;
	}
	while (len >= 8) {
		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((u32)c, *p++);
	return (u32)c;
}

bool obd_crc32c_hw_available(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse4.2");
}

u32 obd_crc32c_hw(u32 crc, const void *buf, size_t len)
{
	if (!obd_crc32c_hw_available())
		return obd_crc32c_sw(crc, buf, len);
	return obd_crc32c_sse42(crc, buf, len);
}
#else
bool obd_crc32c_hw_available(void)
{
	return false;
}

u32 obd_crc32c_hw(u32 crc, const void *buf, size_t len)
{
	return obd_crc32c_sw(crc, buf, len);
}
#endif

static u32 (*crc_impl)(u32, const void *, size_t);

__attribute__((constructor)) static void crc_impl_init(void)
{
#if defined(__x86_64__)
	crc_impl = obd_crc32c_hw_available() ? obd_crc32c_sse42 : obd_crc32c_sw;
#else
	crc_impl = obd_crc32c_sw;
#endif
}

u32 obd_crc32c(u32 seed, const void *buf, size_t len)
{
	/* Constructors of other objects may run first: fall back safely. */
	if (!crc_impl) {
		crc_tab_init();
		crc_impl_init();
	}
	return crc_impl(seed, buf, len);
}
#endif /* __KERNEL__ */
