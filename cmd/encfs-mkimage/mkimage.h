/* encfs-mkimage: a LUKS2 image of an ext4 filesystem holding a directory tree, made without root,
 * sparse end to end.  See encfs-mkimage(1).
 *
 *   tree.c     what DIR holds, and the filesystem size that fits it (the plan)
 *   mkfs.c     mke2fs -d into a private, already unlinked temporary file
 *   luks2.c    the LUKS2 header: both binary copies, the JSON, keyslot 0, the digest
 *   encrypt.c  the written extents of the plaintext, encrypted into IMAGE; holes stay holes
 *   verity.c   --verity: the dm-verity hash tree over the encrypted data area, after it */
#ifndef ENCFS_MKIMAGE_H
#define ENCFS_MKIMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"
#include "luks_crypto.h"
#include "secmem.h"

#define FS_BLOCK 4096u                  /* ext4 block = dm-crypt sector = LUKS2 sector_size */
#define LUKS2_DATA_OFFSET ((uint64_t)16 << 20) /* header copies + keyslots area, as cryptsetup lays them */
#define LUKS2_KEY_BYTES 64u             /* aes-xts-plain64 with two AES-256 keys */

/* --- tree.c --------------------------------------------------------------------------------- */

/* What DIR holds, counted in ext4 terms (4096-byte blocks, 256-byte inodes). */
struct tree {
	uint64_t inodes;      /* distinct inodes (hard links once), DIR itself included */
	uint64_t blocks;      /* data, directory, long symlink, xattr and extent-tree blocks */
	uint64_t bytes;       /* sum of regular file sizes (hard links once) */
	uid_t uid;            /* DIR's owner, mode: the root directory's */
	gid_t gid;
	mode_t mode;
};
/* Walks dir (not following symlinks); e says what could not be read (EXIT_CONFIG). */
int tree_scan(const char *dir, struct tree *t, struct err *e);

/* The filesystem to make: its size in blocks, inode count and journal size. */
struct fs_plan {
	uint64_t blocks;
	uint64_t inodes;
	uint64_t journal_blocks;
};
/* The smallest filesystem holding t with free_bytes to spare (whole MiB, at least 8 MiB). */
void plan_fit(const struct tree *t, uint64_t free_bytes, struct fs_plan *p);
/* A filesystem of exactly blocks: -1 when t does not fit in it (then plan_fit(t, 0) says what
 * would). */
int plan_for_blocks(const struct tree *t, uint64_t blocks, struct fs_plan *p);

/* --- mkfs.c --------------------------------------------------------------------------------- */

/* A private temporary file in $TMPDIR (default /tmp), unlinked at once: nothing is left behind
 * whatever ends the process.  Returns the descriptor or -1 with e set. */
int tmpfile_private(struct err *e);
/* mke2fs -d dir into fd (plan->blocks blocks), then the root directory's mode.  1 when the tree
 * does not fit (mke2fs ran out of blocks or inodes), 0 when made, -1 on other failures (e). */
int mkfs_run(const char *dir, const struct tree *t, const struct fs_plan *plan, int fd, struct err *e);
/* Kills a running mke2fs/debugfs child (from a signal handler: async-signal-safe). */
void mkfs_kill_child(void);

/* --- luks2.c -------------------------------------------------------------------------------- */

#define LUKS2_METADATA 16384u                   /* one binary header + its JSON area */
#define LUKS2_KEYSLOT_OFFSET (2 * LUKS2_METADATA)
#define LUKS2_STRIPES 4000u
#define LUKS2_AF_BYTES (LUKS2_KEY_BYTES * LUKS2_STRIPES) /* 500 sectors of 512 bytes */

struct luks2_kdf {
	enum kdf_type type;   /* KDF_PBKDF2 or KDF_ARGON2ID */
	uint32_t iterations;  /* pbkdf2 (sha256) */
	uint32_t time, memory_kib, lanes; /* argon2id */
};
struct luks2_header {
	unsigned char *meta;  /* 2 * LUKS2_METADATA bytes: the primary and secondary copies (malloc) */
	struct secbuf area;   /* LUKS2_AF_BYTES: the keyslot area, encrypted (built in guarded memory) */
	char uuid[37];
};
/* Builds the header for volume key vk (LUKS2_KEY_BYTES) with keyslot 0 opened by pass; the data
 * segment is segment_bytes long, or dynamic (to the end of the device) when 0. */
int luks2_build(struct luks2_header *h, const unsigned char *vk, const unsigned char *pass, size_t pass_len,
		const struct luks2_kdf *kdf, uint64_t segment_bytes, struct err *e);
/* Writes both copies at 0 and the keyslot area at LUKS2_KEYSLOT_OFFSET of fd. */
int luks2_write(int fd, const struct luks2_header *h, struct err *e);
void luks2_header_free(struct luks2_header *h);

/* --- encrypt.c ------------------------------------------------------------------------------ */

/* Encrypts what plain_fd holds (size bytes; its holes, as SEEK_DATA/SEEK_HOLE report them, are
 * skipped) with aes-xts-plain64 in 4096-byte sectors, to out_fd at LUKS2_DATA_OFFSET + the same
 * offset.  *written: bytes encrypted. */
int encrypt_extents(int plain_fd, uint64_t size, int out_fd, const unsigned char *vk, uint64_t *written,
		    struct err *e);

/* --- verity.c ------------------------------------------------------------------------------ */

struct verity_params;
/* Writes the hash tree over p->data_blocks blocks at data_offset of fd to p->hash_offset, with
 * p->salt; fills p->root. */
int verity_build(int fd, uint64_t data_offset, struct verity_params *p, struct err *e);

#endif
