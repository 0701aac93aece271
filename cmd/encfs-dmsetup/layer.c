/* The dm-verity layer: everything in its table comes from the options (the pinned configuration);
 * the untrusted image only has to agree with them.  See layer.h. */
#include "layer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int verity_check_layout(const struct luks_volume *v, const struct verity_params *p, uint64_t device_bytes,
			uint64_t *data_offset, struct err *e)
{
	struct verity_geom g;
	if (verity_geometry(p->data_blocks, &g, e) != 0)
		return -1;
	int si = luks_data_segment(v, e);
	if (si < 0)
		return -1;
	const struct luks_segment *s = &v->segments[si];
	uint64_t data_bytes = p->data_blocks * VERITY_BLOCK;
	if (s->offset % VERITY_BLOCK)
		return err_set(e, EXIT_CRYPTO, "verity: the LUKS data segment starts at %" PRIu64 ", not on a 4096-byte "
			       "block (not an image of encfs-mkimage --verity)", s->offset);
	if (s->dynamic)
		return err_set(e, EXIT_CRYPTO, "verity: the LUKS data segment has no fixed size (an image without a "
			       "hash tree? make it with encfs-mkimage --verity)");
	if (s->size != data_bytes)
		return err_set(e, EXIT_CRYPTO, "verity: the LUKS data segment holds %" PRIu64 " blocks, not the "
			       "--verity-data-blocks %" PRIu64 " pinned (not the pinned image)", s->size / VERITY_BLOCK,
			       p->data_blocks);
	/* the header's offset is untrusted: s->offset + data_bytes must not wrap (a segment "at"
	 * 2^64 - 4096 would pass the comparisons below, and map from there) */
	if (s->offset > device_bytes || data_bytes > device_bytes - s->offset)
		return err_set(e, EXIT_CRYPTO, "verity: the LUKS data segment (%" PRIu64 " blocks from %" PRIu64 ") "
			       "does not fit in the device of %" PRIu64 " bytes (not the pinned image)",
			       p->data_blocks, s->offset, device_bytes);
	if (p->hash_offset % VERITY_BLOCK || p->hash_offset < s->offset + data_bytes)
		return err_set(e, EXIT_CRYPTO, "verity: --verity-hash-offset %" PRIu64 " is %s the data area "
			       "(%" PRIu64 " to %" PRIu64 ")", p->hash_offset,
			       p->hash_offset % VERITY_BLOCK ? "not on a 4096-byte block after" : "inside or before",
			       s->offset, s->offset + data_bytes);
	uint64_t end = p->hash_offset + g.hash_blocks * VERITY_BLOCK;
	if (end < p->hash_offset || end > device_bytes)
		return err_set(e, EXIT_CRYPTO, "verity: the device of %" PRIu64 " bytes ends before the hash tree "
			       "(%" PRIu64 " blocks from %" PRIu64 "): not the pinned image, or cut short", device_bytes,
			       g.hash_blocks, p->hash_offset);
	*data_offset = s->offset;
	return 0;
}

int verity_build_table(const struct verity_params *p, uint64_t data_offset, const char *dev, struct table_line *t,
		       struct err *e)
{
	memset(t, 0, sizeof *t);
	if (strpbrk(dev, " \t\n"))
		return err_set(e, EXIT_CONFIG, "%s: device path with white space", dev);
	size_t cap = 2 * strlen(dev) + 2 * VERITY_SALT_MAX + 256;
	if (!(t->params = malloc(cap)))
		return err_set(e, EXIT_INTERNAL, "building the verity table: out of memory");
	if (verity_table_params(p, dev, dev, p->hash_offset - data_offset, t->params, cap) != 0) {
		table_line_free(t);
		return err_set(e, EXIT_INTERNAL, "building the verity table: too long");
	}
	t->start = 0;
	t->length = p->data_blocks * (VERITY_BLOCK / 512);
	snprintf(t->target, sizeof t->target, "verity");
	return 0;
}

void verity_crypt_view(const struct luks_volume *v, const struct verity_params *p, struct luks_volume *out)
{
	*out = *v;
	int si = luks_data_segment(v, NULL);
	if (si < 0)
		return;
	out->segments[si].offset = 0;
	out->segments[si].dynamic = false;
	out->segments[si].size = p->data_blocks * VERITY_BLOCK;
}

int verity_dm_uuid(const struct luks_volume *v, const char *name, char *out, size_t outsz)
{
	char u[41], full[LUKS_DM_UUID_MAX + 256];
	size_t o = 0;
	for (const char *q = v->uuid; *q && o + 1 < sizeof u; q++)
		if (*q != '-')
			u[o++] = *q;
	u[o] = '\0';
	int r = snprintf(full, sizeof full, VERITY_UUID_PREFIX "%s-%s" VERITY_NAME_SUFFIX, u, name);
	if (r < 0 || (size_t)r >= sizeof full)
		return -1;
	if ((size_t)r > LUKS_DM_UUID_MAX)
		full[LUKS_DM_UUID_MAX] = '\0';
	return (size_t)snprintf(out, outsz, "%s", full) >= outsz ? -1 : 0;
}
