/* The dm-crypt table line, as cryptsetup's get_dm_crypt_params() writes it, from the validated
 * volume alone: a pure function (no I/O), unit tested in test/unit/dmsetup-table.c. */
#include "luks.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void table_line_free(struct table_line *t)
{
	if (t->params) {
		wipe(t->params, strlen(t->params));
		free(t->params);
	}
	t->params = NULL;
}

int luks_build_table(const struct luks_volume *v, const unsigned char *vk, size_t vk_len,
		     const struct table_params *p, struct table_line *t, struct err *e)
{
	memset(t, 0, sizeof *t);
	int si = luks_data_segment(v, e);
	if (si < 0)
		return -1;
	const struct luks_segment *s = &v->segments[si];
	uint64_t dev_sectors = p->device_bytes / 512, off = s->offset / 512, len;
	if (off > dev_sectors)
		return err_set(e, EXIT_DEVICE, "%s: device of %" PRIu64 " sectors ends before the data offset %" PRIu64,
			       p->device, dev_sectors, off);
	if (s->dynamic)
		len = dev_sectors - off;
	else {
		len = s->size / 512;
		if (len > dev_sectors - off)
			return err_set(e, EXIT_DEVICE, "%s: device too small for the %" PRIu64 "-sector segment", p->device, len);
	}
	if (!len)
		return err_set(e, EXIT_DEVICE, "%s: no data sectors after the header", p->device);
	if (s->sector_size > 512 && len % (s->sector_size / 512))
		return err_set(e, EXIT_DEVICE, "%s: data size is not a multiple of the %" PRIu32 "-byte sector size",
			       p->device, s->sector_size);
	if (!vk_len || vk_len > LUKS_MAX_KEY_BYTES || !luks_cipher_supported_for_data(s->encryption, (uint32_t)vk_len))
		return err_set(e, EXIT_CONFIG, "building the table: cipher \"%s\" with a %zu-byte key is not supported",
			       s->encryption, vk_len);
	if (strpbrk(p->device, " \t\n"))
		return err_set(e, EXIT_CONFIG, "%s: device path with white space", p->device);

	char key[2 * LUKS_MAX_KEY_BYTES + 256];
	if (p->keyring_desc) {
		if ((size_t)snprintf(key, sizeof key, ":%zu:logon:%s", vk_len, p->keyring_desc) >= sizeof key)
			return err_set(e, EXIT_INTERNAL, "building the table: keyring description too long");
	} else {
		static const char hex[] = "0123456789abcdef";
		for (size_t i = 0; i < vk_len; i++) {
			key[2 * i] = p->show_key ? hex[vk[i] >> 4] : '0';
			key[2 * i + 1] = p->show_key ? hex[vk[i] & 15] : '0';
		}
		key[2 * vk_len] = '\0';
	}

	/* optional parameters in cryptsetup's order */
	unsigned fl = v->flags | (p->allow_discards ? LUKS_FLAG_ALLOW_DISCARDS : 0);
	char feat[160] = "";
	int n = 0;
	char sector[32] = "";
	if (s->sector_size != 512)
		snprintf(sector, sizeof sector, " sector_size:%" PRIu32, s->sector_size);
	n += !!(fl & LUKS_FLAG_ALLOW_DISCARDS) + !!(fl & LUKS_FLAG_SAME_CPU_CRYPT) +
	     !!(fl & LUKS_FLAG_SUBMIT_FROM_CRYPT_CPUS) + !!(fl & LUKS_FLAG_NO_READ_WORKQUEUE) +
	     !!(fl & LUKS_FLAG_NO_WRITE_WORKQUEUE) + (sector[0] != '\0');
	if (n)
		snprintf(feat, sizeof feat, " %d%s%s%s%s%s%s", n, fl & LUKS_FLAG_ALLOW_DISCARDS ? " allow_discards" : "",
			 fl & LUKS_FLAG_SAME_CPU_CRYPT ? " same_cpu_crypt" : "",
			 fl & LUKS_FLAG_SUBMIT_FROM_CRYPT_CPUS ? " submit_from_crypt_cpus" : "",
			 fl & LUKS_FLAG_NO_READ_WORKQUEUE ? " no_read_workqueue" : "",
			 fl & LUKS_FLAG_NO_WRITE_WORKQUEUE ? " no_write_workqueue" : "", sector);

	size_t cap = strlen(s->encryption) + strlen(key) + strlen(p->device) + strlen(feat) + 64;
	t->params = malloc(cap);
	if (!t->params) {
		wipe(key, sizeof key);
		return err_set(e, EXIT_INTERNAL, "building the table: out of memory");
	}
	/* iv_offset 0: cryptsetup's LUKS2_activate passes crypt_get_iv_offset(), which is 0 for LUKS,
	 * whatever iv_tweak the segment has (only reencryption uses it) */
	snprintf(t->params, cap, "%s %s 0 %s %" PRIu64 "%s", s->encryption, key, p->device, off, feat);
	wipe(key, sizeof key);
	t->start = 0;
	t->length = len;
	snprintf(t->target, sizeof t->target, "crypt");
	return 0;
}

char *table_line_format(const struct table_line *t)
{
	size_t cap = strlen(t->params) + 64;
	char *s = malloc(cap);
	if (s)
		snprintf(s, cap, "%" PRIu64 " %" PRIu64 " %s %s", t->start, t->length, t->target, t->params);
	return s;
}

static void uuid_nodash(const char *uuid, char *out, size_t outsz)
{
	size_t o = 0;
	for (const char *p = uuid; *p && o + 1 < outsz; p++)
		if (*p != '-')
			out[o++] = *p;
	out[o] = '\0';
}

int luks_dm_uuid(const struct luks_volume *v, const char *name, char *out, size_t outsz)
{
	char u[41], full[LUKS_DM_UUID_MAX + 256];
	uuid_nodash(v->uuid, u, sizeof u);
	int r = snprintf(full, sizeof full, "CRYPT-LUKS%d-%s-%s", v->version, u, name);
	if (r < 0 || (size_t)r >= sizeof full)
		return -1;
	/* device-mapper holds at most LUKS_DM_UUID_MAX bytes; cryptsetup cuts a longer one there */
	if ((size_t)r > LUKS_DM_UUID_MAX)
		full[LUKS_DM_UUID_MAX] = '\0';
	return (size_t)snprintf(out, outsz, "%s", full) >= outsz ? -1 : 0;
}

int luks_keyring_desc(const struct luks_volume *v, char *out, size_t outsz)
{
	int si = luks_data_segment(v, NULL);
	int dg = -1;
	if (si >= 0)
		for (int d = 0; d < v->ndigests; d++)
			if (v->digests[d].segments >> v->segments[si].id & 1) {
				dg = v->digests[d].id;
				break;
			}
	if (dg < 0)
		return -1;
	int r = snprintf(out, outsz, "cryptsetup:%s-d%d", v->uuid, dg);
	return r < 0 || (size_t)r >= outsz ? -1 : 0;
}
