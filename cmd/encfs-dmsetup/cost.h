/* What unlocking may cost (encfs-dmsetup(1), LIMITS): the defaults of the policy, the memory this
 * process may use, and a deadline that stops a key derivation that runs past --max-unlock-time. */
#ifndef ENCFS_DMSETUP_COST_H
#define ENCFS_DMSETUP_COST_H

#include "luks.h"

#include <stdbool.h>
#include <stdint.h>

/* Fills the fields left 0 with the defaults, and caps the Argon2 memory at three quarters of the
 * memory available (MemAvailable, and the room left under every cgroup limit above us). */
void limits_complete(struct luks_limits *l);

/* KiB this process may still allocate; *known false when nothing could be read. */
uint64_t memory_available_kib(bool *known);

/* From now, unlocking may take l->max_total_ms: past it the process writes one error line naming
 * the keyslot being tried (luks_current_keyslot) and exits 3 at once, whatever the key derivation
 * is doing.  Only for the time before anything is created (nothing is left to undo). */
void unlock_deadline_arm(const struct luks_limits *l);
void unlock_deadline_disarm(void);

#endif
