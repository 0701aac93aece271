/* dm-verity geometry and parameters, shared by encfs-mkimage (which writes the hash tree) and
 * encfs-dmsetup (which loads the table and checks it against the LUKS header and the device).
 *
 * The one format used: version 1, sha256, 4096-byte data and hash blocks, no superblock (what
 * `veritysetup format --no-superblock` writes).  The hash tree is laid out as dm-verity reads it:
 * the top level first, at the hash offset, then each lower level, level 0 (the hashes of the data
 * blocks) last.  A hash is sha256(salt || block). */
#ifndef ENCFS_VERITY_H
#define ENCFS_VERITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define VERITY_BLOCK 4096u
#define VERITY_DIGEST 32u                   /* sha256 */
#define VERITY_FANOUT (VERITY_BLOCK / VERITY_DIGEST) /* 128 hashes in a hash block */
#define VERITY_FANOUT_BITS 7
#define VERITY_SALT_BYTES 32u               /* what encfs-mkimage writes */
#define VERITY_SALT_MAX 256u                /* what dm-verity and veritysetup take */
#define VERITY_MAX_LEVELS 10                /* 128^9 blocks is beyond any 64-bit size */
#define VERITY_MAX_DATA_BLOCKS ((uint64_t)1 << 40) /* 4 EiB */

/* What the configuration pins; the image is never asked. */
struct verity_params {
	unsigned char root[VERITY_DIGEST];
	unsigned char salt[VERITY_SALT_MAX];
	size_t salt_len;
	uint64_t data_blocks;   /* 4096-byte blocks of the data area the tree covers */
	uint64_t hash_offset;   /* bytes from the start of the image to the tree's first block */
};

/* The tree over data_blocks blocks.  level_block[i]: the first block of level i counted from the
 * start of the tree (level 0 hashes the data blocks, the top level is levels - 1, at 0). */
struct verity_geom {
	uint64_t data_blocks;
	int levels;
	uint64_t level_block[VERITY_MAX_LEVELS];
	uint64_t level_blocks[VERITY_MAX_LEVELS];
	uint64_t hash_blocks;   /* the whole tree */
};

/* -1 (e, EXIT_CONFIG) when data_blocks is 0, 1 or more than VERITY_MAX_DATA_BLOCKS. */
int verity_geometry(uint64_t data_blocks, struct verity_geom *g, struct err *e);

/* Parsers of the command-line/configuration forms: hex root hash (64 digits), hex salt (2..512
 * digits), a decimal count.  0, or -1 with a reason in why (a fragment such as "not 64 hex
 * digits"). */
int verity_parse_root(const char *s, struct verity_params *p, const char **why);
int verity_parse_salt(const char *s, struct verity_params *p, const char **why);
int verity_parse_u64(const char *s, uint64_t *out);

/* The dm-verity table parameters (after "verity"): version 1 over data_dev and hash_dev, the
 * hash tree at byte hash_start_bytes of hash_dev (a multiple of 4096).  Into out; -1 when it does
 * not fit. */
int verity_table_params(const struct verity_params *p, const char *data_dev, const char *hash_dev,
			uint64_t hash_start_bytes, char *out, size_t outsz);

#endif
