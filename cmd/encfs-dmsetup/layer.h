/* The dm-verity layer under dm-crypt (open --verity-*): its layout, checked against the LUKS
 * header and the device, and its table.  Pure (no I/O); test/verity.t checks it through
 * encfs-dmsetup table. */
#ifndef ENCFS_DMSETUP_LAYER_H
#define ENCFS_DMSETUP_LAYER_H

#include "luks.h"
#include "verity.h"

/* Where the pinned tree lies on a device of device_bytes: the data area is the LUKS data segment,
 * which must hold exactly p->data_blocks blocks at a 4096-byte aligned offset (a fixed size: a
 * dynamic segment would map the tree too); the tree, p->hash_offset after the segment's end, must
 * end within the device.  *data_offset: the segment's offset (the loop device starts there). */
int verity_check_layout(const struct luks_volume *v, const struct verity_params *p, uint64_t device_bytes,
			uint64_t *data_offset, struct err *e);

/* The verity table line over dev (data and hash, a device whose byte 0 is the data area's first),
 * into t (target "verity", p->data_blocks * 8 sectors). */
int verity_build_table(const struct verity_params *p, uint64_t data_offset, const char *dev, struct table_line *t,
		       struct err *e);

/* v with its data segment moved onto the verity device: offset 0, p->data_blocks blocks, so that
 * luks_build_table maps dm-crypt over it. */
void verity_crypt_view(const struct luks_volume *v, const struct verity_params *p, struct luks_volume *out);

/* "CRYPT-VERITY-<uuid without dashes>-NAME-verity", cut to LUKS_DM_UUID_MAX. */
int verity_dm_uuid(const struct luks_volume *v, const char *name, char *out, size_t outsz);

#define VERITY_NAME_SUFFIX "-verity"
#define VERITY_UUID_PREFIX "CRYPT-VERITY-"

#endif
