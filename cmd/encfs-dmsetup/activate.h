/* System calls behind open and close: libblkid, loop, kernel keyring, libdevmapper. */
#ifndef ENCFS_DMSETUP_ACTIVATE_H
#define ENCFS_DMSETUP_ACTIVATE_H

#include "luks.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* 0 when libblkid finds exactly crypto_LUKS on fd; otherwise "not a LUKS volume: found ext4". */
int probe_is_luks(int fd, struct err *e);
/* Size in bytes of a block device or regular file. */
int fd_size(int fd, uint64_t *size, bool *is_blk, bool *is_reg);

/* Attaches the open file ffd (named file in messages) from byte offset on to a free loop device
 * with autoclear (and read-only when ro); path gets "/dev/loopN" and *loop_fd an open descriptor
 * that keeps it alive until closed.  ffd, not a path: the loop device maps the very file that was
 * checked.  ffd may be a block device too (the verity layer's offset). */
int loop_attach_fd(int ffd, const char *file, uint64_t offset, bool ro, char *path, size_t pathsz, int *loop_fd,
		   struct err *e);

bool keyring_available(void);
/* add_key("logon", desc, key) into the thread keyring; the key id or -1. */
int32_t keyring_add_logon(const char *desc, const unsigned char *key, size_t len);
void keyring_unlink_thread(int32_t id);
void keyring_drop_by_desc(const char *desc);

int dm_available(struct err *e);
bool dm_crypt_keyring_supported(void);
int dm_exists(const char *name);
/* Creates name with the one-target table tl; *dev (when not NULL) gets its device number. */
int dm_create_crypt(const char *name, const char *uuid, bool ro, const struct table_line *tl, dev_t *dev,
		    struct err *e);
/* Removes name when it exists with exactly this uuid (the verity device this run made). */
int dm_remove_ours(const char *name, const char *uuid);
/* close: removes NAME-verity after NAME, when it is a verity device of encfs-dmsetup (uuid
 * CRYPT-VERITY-*); 0 when there is none.  deferred as for dm_close_crypt. */
int dm_close_verity(const char *name, bool deferred, struct err *e);
/* Removes name if it exists with our uuid and no live table (a failed create whose revert
 * failed too); a live device is never touched. */
int dm_rollback(const char *name, const char *uuid);
/* close: checks that name is a CRYPT-* device, removes it, drops a keyring key it referenced.
 * deferred: a device still in use is marked for removal when its last user closes it
 * (*still_open then says it is still there). */
int dm_close_crypt(const char *name, bool deferred, bool *still_open, struct err *e);

#endif
