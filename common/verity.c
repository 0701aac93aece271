/* dm-verity geometry (as the kernel's verity_ctr computes it) and the table line.  See verity.h. */
#include "verity.h"

#include "encode.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int verity_geometry(uint64_t data_blocks, struct verity_geom *g, struct err *e)
{
	memset(g, 0, sizeof *g);
	if (data_blocks < 2 || data_blocks > VERITY_MAX_DATA_BLOCKS)
		return err_set(e, EXIT_CONFIG, "verity: %" PRIu64 " data blocks (2 to 2^40 are supported)", data_blocks);
	g->data_blocks = data_blocks;
	/* levels: until one block of hashes covers every data block */
	while ((data_blocks - 1) >> (VERITY_FANOUT_BITS * g->levels))
		g->levels++;
	/* top level first */
	uint64_t pos = 0;
	for (int i = g->levels - 1; i >= 0; i--) {
		unsigned shift = VERITY_FANOUT_BITS * (unsigned)(i + 1);
		uint64_t n = (data_blocks >> shift) + ((data_blocks & (((uint64_t)1 << shift) - 1)) != 0);
		g->level_block[i] = pos;
		g->level_blocks[i] = n;
		pos += n;
	}
	g->hash_blocks = pos;
	return 0;
}

int verity_parse_root(const char *s, struct verity_params *p, const char **why)
{
	size_t n;
	if (strlen(s) != 2 * VERITY_DIGEST || hex_decode(s, strlen(s), p->root, sizeof p->root, &n) != 0 ||
	    n != VERITY_DIGEST) {
		*why = "not 64 hex digits (the sha256 root hash encfs-mkimage --verity printed)";
		return -1;
	}
	return 0;
}

int verity_parse_salt(const char *s, struct verity_params *p, const char **why)
{
	size_t len = strlen(s);
	if (len == 0 || len > 2 * VERITY_SALT_MAX || hex_decode(s, len, p->salt, sizeof p->salt, &p->salt_len) != 0) {
		*why = "not 2 to 512 hex digits (the salt encfs-mkimage --verity printed)";
		return -1;
	}
	return 0;
}

int verity_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = x;
	return 0;
}

int verity_table_params(const struct verity_params *p, const char *data_dev, const char *hash_dev,
			uint64_t hash_start_bytes, char *out, size_t outsz)
{
	char root[2 * VERITY_DIGEST + 1], salt[2 * VERITY_SALT_MAX + 1];
	hex_encode(p->root, VERITY_DIGEST, root);
	hex_encode(p->salt, p->salt_len, salt);
	/* no optional arguments: a block that does not verify is an I/O error (neither
	 * restart_on_corruption nor panic_on_corruption, nor ignore_corruption) */
	int r = snprintf(out, outsz, "1 %s %s %u %u %" PRIu64 " %" PRIu64 " sha256 %s %s", data_dev, hash_dev,
			 VERITY_BLOCK, VERITY_BLOCK, p->data_blocks, hash_start_bytes / VERITY_BLOCK, root, salt);
	return r < 0 || (size_t)r >= outsz ? -1 : 0;
}
