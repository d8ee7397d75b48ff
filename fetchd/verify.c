// SPDX-License-Identifier: GPL-2.0-only
/*
 * Once every granule of a blob is present, its sha256 is checked against
 * the digest of the OPEN: the cache file is read back through the ring in
 * FETCHD_VERIFY_CHUNK pieces, one in flight per blob, so the loop keeps
 * serving misses meanwhile. A mismatch clears the whole entry (durably)
 * and takes the blob back from the kernel (INVALIDATE, chan_take_back):
 * running devices miss again and the bytes are fetched again. What a
 * device read before the check stays wherever it was copied above the
 * device (a file system's page cache), and the check only runs once the
 * whole blob is present: until then an uncompressed layer's wrong bytes
 * are served (ZFile blocks have CRCs).
 * Any clear while the check runs (a refetch) makes it stale: dropped.
 * A read-back that fails (an I/O error, a cache file cut short) is tried
 * again after 1 s, doubling up to 60 s, and is a failed attempt of the
 * blob's background download, which so ends after tryCnt of them instead
 * of waiting for a check that never comes. A blob found fully present when
 * it is loaded (obd filled it, or a daemon before) is checked too.
 * Hashing costs CPU the reads of the blob need (a cold sequential read
 * completes the blob while its reader still decodes the last window): the
 * check starts once the blob has had no miss for FETCHD_VERIFY_QUIET_MS.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "fetchd.h"

static void verify_end(struct fetchd *d, struct ring_op *op)
{
	struct blob *b = op->blob;

	EVP_MD_CTX_free(b->verify_ctx);
	b->verify_ctx = NULL;
	b->verify_inflight = false;
	free(op->buf);
	ring_op_free(d, op);
	blob_maybe_free(d, b);
}

void verify_abort(struct blob *b)
{
	/* only called when no read is in flight (the blob is being freed) */
	EVP_MD_CTX_free(b->verify_ctx);
	b->verify_ctx = NULL;
}

static void verify_due(struct fetchd *d, int64_t due)
{
	if (!d->verify_due_ms || due < d->verify_due_ms)
		d->verify_due_ms = due;
}

/* The check could not run or read the blob: again later, said to the download job. */
static void verify_failed(struct fetchd *d, struct blob *b)
{
	int64_t delay = FETCHD_VERIFY_RETRY_MS;
	unsigned int i;

	/* 1 s after the first failure, 2 s after the second, ... */
	for (i = 0; i < b->verify_fails && delay < FETCHD_VERIFY_RETRY_MAX_MS; i++)
		delay *= 2;
	if (delay > FETCHD_VERIFY_RETRY_MAX_MS)
		delay = FETCHD_VERIFY_RETRY_MAX_MS;
	b->verify_fails++;
	b->verify_retry_ms = now_ms() + delay;
	verify_due(d, b->verify_retry_ms);
	download_blob_unverified(d, b, "the sha256 check could not read the cache file");
}

static void verify_next(struct fetchd *d, struct ring_op *op)
{
	struct blob *b = op->blob;

	op->off = b->verify_off;
	op->len = b->size - op->off < FETCHD_VERIFY_CHUNK ? b->size - op->off : FETCHD_VERIFY_CHUNK;
	op->done = 0;
	ring_queue(d, op);
}

void verify_maybe_start(struct fetchd *d, struct blob *b)
{
	int64_t due = b->last_miss_ms + FETCHD_VERIFY_QUIET_MS;
	struct ring_op *op;

	/* a gunzip entry's digest is its compressed blob's: a whole-stream pass checks it */
	if (b->gz)
		return gunzip_maybe_complete(d, b);
	if (!b->opened || b->broken || b->verified || b->verify_inflight || b->closing ||
	    d->stopping || b->nmem != b->ngranules)
		return;
	if (b->last_miss_ms && now_ms() < due) {
		verify_due(d, due);
		return;
	}
	if (b->verify_retry_ms && now_ms() < b->verify_retry_ms) {
		verify_due(d, b->verify_retry_ms);
		return;
	}
	op = ring_op_new(d, OP_VERIFY_READ, b);
	if (!op)
		return;
	op->buf = malloc(FETCHD_VERIFY_CHUNK);
	b->verify_ctx = EVP_MD_CTX_new();
	if (!op->buf || !b->verify_ctx || !EVP_DigestInit_ex(b->verify_ctx, EVP_sha256(), NULL)) {
		pr_err("blob %llu: cannot start its sha256 check (out of memory)",
		       (unsigned long long)b->id);
		b->verify_inflight = true;
		verify_failed(d, b);
		verify_end(d, op);	/* may free b */
		return;
	}
	b->verify_inflight = true;
	b->verify_off = 0;
	b->verify_gen = b->gen;
	verify_next(d, op);
}

/* The complete blobs whose quiet time is over start their check; when the next is due. */
int64_t verify_tick(struct fetchd *d)
{
	struct list *p, *t;

	if (!d->verify_due_ms || now_ms() < d->verify_due_ms)
		return d->verify_due_ms;
	d->verify_due_ms = 0;
	list_for_each_safe(p, t, &d->blobs)
		verify_maybe_start(d, container_of(p, struct blob, node));
	return d->verify_due_ms;
}

static void verify_finish(struct fetchd *d, struct blob *b)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char got[OBD_DIGEST_STR_LEN + 1], want[OBD_DIGEST_STR_LEN + 1];
	unsigned int mdlen = 0;

	EVP_DigestFinal_ex(b->verify_ctx, md, &mdlen);
	b->verify_fails = 0;
	b->verify_retry_ms = 0;
	if (mdlen == OBD_SHA256_LEN && !memcmp(md, b->digest, OBD_SHA256_LEN)) {
		b->verified = true;
		d->st.verify_ok++;
		pr_info("blob %llu (%s): complete, sha256 verified", (unsigned long long)b->id,
			b->path);
		b->want_complete = true;
		cache_try_complete(d, b);
		download_blob_verified(d, b, true);
		return;
	}
	d->st.verify_bad++;
	obd_digest_format(md, got);
	obd_digest_format(b->digest, want);
	pr_err("blob %llu (%s): sha256 mismatch: got %s, expected %s; clearing the cache entry",
	       (unsigned long long)b->id, b->path, got, want);
	blob_refetch_clear(d, b, 0, b->size);
	chan_take_back(d, b, 0, b->size);
	/* what gunzip entries decoded from those bytes goes too */
	gunzip_compressed_bad(d, b);
	download_blob_verified(d, b, false);
}

void verify_read_done(struct fetchd *d, struct ring_op *op, int res)
{
	struct blob *b = op->blob;

	if (res == -EAGAIN || res == -EINTR) {
		ring_queue(d, op);
		return;
	}
	if (res <= 0) {
		pr_err("blob %llu (%s): reading for the sha256 check at %llu: %s",
		       (unsigned long long)b->id, b->path, (unsigned long long)(op->off + op->done),
		       res ? strerror(-res) : "unexpected end of file");
		verify_failed(d, b);
		return verify_end(d, op);	/* may free b */
	}
	op->done += (uint64_t)res;
	if (op->done < op->len) {
		ring_queue(d, op);
		return;
	}
	if (b->gen != b->verify_gen || d->stopping || b->closing)
		return verify_end(d, op);
	EVP_DigestUpdate(b->verify_ctx, op->buf, op->len);
	b->verify_off += op->len;
	if (b->verify_off < b->size)
		return verify_next(d, op);
	verify_finish(d, b);
	verify_end(d, op);
}
