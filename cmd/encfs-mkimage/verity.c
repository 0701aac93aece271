/* --verity: the dm-verity hash tree over the ciphertext of the data area, written after it.
 *
 * Level 0 hashes the data blocks, read in chunks; a block in a hole of IMAGE (SEEK_DATA/
 * SEEK_HOLE) is all zeros, whose hash is computed once.  Each level above hashes the blocks of
 * the one below, read back from IMAGE (they were just written: the page cache has them).  The top
 * level is one block; the root hash is the hash of it.  Hashes are sha256(salt || block) through
 * OpenSSL, as dm-verity format version 1 computes them. */
#include "mkimage.h"

#include "verity.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK_BLOCKS 256u /* 1 MiB read or written at a time */

struct hasher {
	EVP_MD_CTX *salted; /* sha256 with the salt already in */
	EVP_MD_CTX *ctx;
};

static int hash_block(struct hasher *h, const unsigned char *block, unsigned char *out)
{
	unsigned len;
	return EVP_MD_CTX_copy_ex(h->ctx, h->salted) == 1 && EVP_DigestUpdate(h->ctx, block, VERITY_BLOCK) == 1 &&
			       EVP_DigestFinal_ex(h->ctx, out, &len) == 1 && len == VERITY_DIGEST
		       ? 0
		       : -1;
}

static int read_all(int fd, unsigned char *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? (errno = EIO, -1) : -1;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int write_all(int fd, const unsigned char *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? (errno = EIO, -1) : -1;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Whether [off, off + len) of fd is one hole (reads as zeros without being read). */
static bool is_hole(int fd, uint64_t off, uint64_t len)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);
	if (d < 0)
		return errno == ENXIO; /* nothing but a hole up to the end of the file */
	return (uint64_t)d >= off + len;
}

/* Hashes n blocks at src (byte offset in fd) into the level that starts at dst: a hash block
 * holds VERITY_FANOUT hashes, the last one padded with zeros.  zero: the hash of a zero block, for
 * holes (NULL above level 0, whose blocks are all written). */
static int hash_level(struct hasher *h, int fd, uint64_t src, uint64_t n, uint64_t dst, const unsigned char *zero,
		      unsigned char *in, unsigned char *out, struct err *e)
{
	uint64_t done = 0, out_used = 0, out_at = dst;
	memset(out, 0, (size_t)CHUNK_BLOCKS * VERITY_BLOCK);
	while (done < n) {
		uint64_t k = n - done < CHUNK_BLOCKS ? n - done : CHUNK_BLOCKS;
		uint64_t off = src + done * VERITY_BLOCK;
		bool hole = zero && is_hole(fd, off, k * VERITY_BLOCK);
		if (!hole && read_all(fd, in, (size_t)(k * VERITY_BLOCK), off) != 0)
			return err_set(e, EXIT_DEVICE, "verity: reading IMAGE at %" PRIu64 ": %s", off, strerror(errno));
		for (uint64_t b = 0; b < k; b++) {
			unsigned char *slot = out + out_used * VERITY_DIGEST;
			if (hole)
				memcpy(slot, zero, VERITY_DIGEST);
			else if (hash_block(h, in + b * VERITY_BLOCK, slot) != 0)
				return err_set(e, EXIT_INTERNAL, "verity: sha256 failed (OpenSSL)");
			if (++out_used == (uint64_t)CHUNK_BLOCKS * VERITY_FANOUT) {
				if (write_all(fd, out, (size_t)CHUNK_BLOCKS * VERITY_BLOCK, out_at) != 0)
					return err_set(e, EXIT_DEVICE, "verity: writing IMAGE: %s", strerror(errno));
				out_at += (uint64_t)CHUNK_BLOCKS * VERITY_BLOCK;
				out_used = 0;
				memset(out, 0, (size_t)CHUNK_BLOCKS * VERITY_BLOCK);
			}
		}
		done += k;
	}
	if (out_used) {
		size_t bytes = (size_t)((out_used + VERITY_FANOUT - 1) / VERITY_FANOUT) * VERITY_BLOCK;
		if (write_all(fd, out, bytes, out_at) != 0)
			return err_set(e, EXIT_DEVICE, "verity: writing IMAGE: %s", strerror(errno));
	}
	return 0;
}

int verity_build(int fd, uint64_t data_offset, struct verity_params *p, struct err *e)
{
	struct verity_geom g;
	if (verity_geometry(p->data_blocks, &g, e) != 0)
		return -1;
	struct hasher h = {EVP_MD_CTX_new(), EVP_MD_CTX_new()};
	unsigned char *in = malloc((size_t)CHUNK_BLOCKS * VERITY_BLOCK), *out = malloc((size_t)CHUNK_BLOCKS * VERITY_BLOCK);
	unsigned char zero_hash[VERITY_DIGEST];
	int r = -1;
	if (!h.salted || !h.ctx || !in || !out) {
		err_set(e, EXIT_INTERNAL, "verity: out of memory");
		goto out;
	}
	if (EVP_DigestInit_ex(h.salted, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(h.salted, p->salt, p->salt_len) != 1) {
		err_set(e, EXIT_INTERNAL, "verity: sha256 failed (OpenSSL)");
		goto out;
	}
	memset(in, 0, VERITY_BLOCK);
	if (hash_block(&h, in, zero_hash) != 0) {
		err_set(e, EXIT_INTERNAL, "verity: sha256 failed (OpenSSL)");
		goto out;
	}
	/* level 0 over the data, each level above over the one below */
	uint64_t src = data_offset, n = p->data_blocks;
	for (int i = 0; i < g.levels; i++) {
		uint64_t dst = p->hash_offset + g.level_block[i] * VERITY_BLOCK;
		if (hash_level(&h, fd, src, n, dst, i == 0 ? zero_hash : NULL, in, out, e) != 0)
			goto out;
		src = dst;
		n = g.level_blocks[i];
	}
	/* the top level is one block at hash_offset: its hash is the root */
	if (read_all(fd, in, VERITY_BLOCK, p->hash_offset) != 0) {
		err_set(e, EXIT_DEVICE, "verity: reading IMAGE: %s", strerror(errno));
		goto out;
	}
	if (hash_block(&h, in, p->root) != 0) {
		err_set(e, EXIT_INTERNAL, "verity: sha256 failed (OpenSSL)");
		goto out;
	}
	r = 0;
out:
	EVP_MD_CTX_free(h.salted);
	EVP_MD_CTX_free(h.ctx);
	free(in);
	free(out);
	return r;
}
