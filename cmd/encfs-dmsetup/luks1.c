/* LUKS1: the 592-byte phdr, checked as cryptsetup's lib/luks1/keymanage.c checks it (magic,
 * version, hash, stripes, keyslot offsets inside the header area and not overlapping, device large
 * enough), converted into the same struct luks_volume as LUKS2. */
#include "luks.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define LUKS1_PHDR 592
#define LUKS1_KEY_ENABLED 0x00AC71F3u
#define LUKS1_KEY_DISABLED 0x0000DEADu

/* The magic of LUKS1 and of the primary LUKS2 header alike. */
static const unsigned char LUKS_MAGIC[6] = {'L', 'U', 'K', 'S', 0xba, 0xbe};

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A text field of the phdr, made safe for messages (see luks_header_text). */
static void field(char *out, const unsigned char *in, size_t n)
{
	luks_disk_str(out, in, n);
	luks_header_text(out, n, out);
}

/* AF_split_sectors: 512-byte sectors holding key_bytes x stripes. */
static uint64_t af_sectors(uint64_t key_bytes)
{
	return (key_bytes * LUKS_STRIPES + 511) / 512;
}

int luks1_read(const struct blk *b, struct luks_volume *v, struct err *e)
{
	unsigned char h[LUKS1_PHDR];
	memset(v, 0, sizeof *v);
	if (blk_read(b, 0, h, sizeof h) != 0)
		return err_set(e, EXIT_DEVICE, "reading the LUKS1 header: I/O error or device too small");
	if (memcmp(h, LUKS_MAGIC, sizeof LUKS_MAGIC) != 0 || (h[6] << 8 | h[7]) != 1)
		return err_set(e, EXIT_CONFIG, "LUKS1 header: bad magic or version");
	v->version = 1;
	char cipher[32], mode[32];
	field(cipher, h + 8, 32);
	field(mode, h + 40, 32);
	field(v->hash_spec, h + 72, 32);
	snprintf(v->cipher_name, sizeof v->cipher_name, "%s", cipher);
	snprintf(v->cipher_mode, sizeof v->cipher_mode, "%s", mode);
	if (luks_hash_size(v->hash_spec) < 20)
		return err_set(e, EXIT_CONFIG, "LUKS1 header: hash \"%s\" is not supported", v->hash_spec);
	uint32_t payload = be32(h + 104), key_bytes = be32(h + 108);
	memcpy(v->mk_digest, h + 112, 20);
	memcpy(v->mk_digest_salt, h + 132, 32);
	v->mk_digest_iterations = be32(h + 164);
	v->key_bytes = key_bytes;
	field(v->uuid, h + 168, 40);
	if (!key_bytes || key_bytes > LUKS_MAX_KEY_BYTES)
		return err_set(e, EXIT_CONFIG, "LUKS1 header: key size %" PRIu32 " bytes is not supported", key_bytes);
	/* ECB takes no IV; dm-crypt and cryptsetup drop it (LUKS_fix_header_compatible) */
	if (strncmp(mode, "ecb-", 4) == 0)
		mode[3] = '\0';

	uint64_t secs = af_sectors(key_bytes), last_end = 0;
	for (int i = 0; i < 8; i++) {
		const unsigned char *k = h + 208 + 48 * i;
		uint32_t active = be32(k), iter = be32(k + 4), off = be32(k + 40), stripes = be32(k + 44);
		if (stripes != LUKS_STRIPES)
			return err_set(e, EXIT_CONFIG, "LUKS1 header: keyslot %d is invalid (stripes %" PRIu32 ")", i, stripes);
		if ((uint64_t)off * 512 < LUKS1_PHDR)
			return err_set(e, EXIT_CONFIG, "LUKS1 header: keyslot %d is invalid (offset inside the header)", i);
		if (payload && (payload <= off || payload < off + secs))
			return err_set(e, EXIT_CONFIG, "LUKS1 header: keyslot %d is invalid (reaches the data area)", i);
		for (int o = 0; o < i; o++) {
			uint32_t other = be32(h + 208 + 48 * o + 40);
			uint64_t lo = off < other ? off : other, hi = off < other ? other : off;
			if (hi < lo + secs)
				return err_set(e, EXIT_CONFIG, "LUKS1 header: keyslots %d and %d overlap", o, i);
		}
		if (off + secs > last_end)
			last_end = off + secs;
		if (active != LUKS1_KEY_ENABLED)
			continue; /* disabled (0xDEAD) or damaged: never used */
		struct luks_keyslot *s = &v->keyslots[v->nkeyslots++];
		s->id = i;
		s->luks2_type = true;
		s->addressable = true;
		s->priority = LUKS_PRIORITY_NORMAL;
		s->key_size = key_bytes;
		s->kdf = KDF_PBKDF2;
		snprintf(s->kdf_name, sizeof s->kdf_name, "pbkdf2");
		snprintf(s->kdf_hash, sizeof s->kdf_hash, "%s", v->hash_spec);
		snprintf(s->af_hash, sizeof s->af_hash, "%s", v->hash_spec);
		s->iterations = iter;
		memcpy(s->salt, k + 8, 32);
		s->salt_ok = true;
		s->stripes = stripes;
		snprintf(s->area_cipher, sizeof s->area_cipher, "%s-%s", cipher, mode);
		s->area_key_size = key_bytes;
		s->area_offset = (uint64_t)off * 512;
		s->area_size = secs * 512;
		s->digest = 0;
	}
	v->header_area_end = last_end * 512;
	if (v->header_area_end > b->size)
		return err_set(e, EXIT_CONFIG, "LUKS1 header: the device is too small (%" PRIu64 " bytes needed)",
			       v->header_area_end);
	/* one digest (the master key digest) and one dynamic crypt segment */
	struct luks_digest *d = &v->digests[0];
	v->ndigests = 1;
	d->id = 0;
	d->pbkdf2_type = true;
	snprintf(d->hash, sizeof d->hash, "%s", v->hash_spec);
	d->iterations = v->mk_digest_iterations;
	memcpy(d->salt, v->mk_digest_salt, 32);
	d->salt_len = 32;
	memcpy(d->value, v->mk_digest, 20);
	d->value_len = 20;
	d->segments = 1;
	for (int i = 0; i < v->nkeyslots; i++)
		d->keyslots |= 1ull << v->keyslots[i].id;
	struct luks_segment *s = &v->segments[0];
	v->nsegments = 1;
	snprintf(s->type, sizeof s->type, "crypt");
	s->offset = (uint64_t)payload * 512;
	s->dynamic = true;
	s->sector_size = 512;
	if (snprintf(s->encryption, sizeof s->encryption, "%s-%s", cipher, mode) >= (int)sizeof s->encryption)
		return err_set(e, EXIT_CONFIG, "LUKS1 header: cipher name too long");
	return 0;
}

/* As cryptsetup decides: the version field of a primary header with the LUKS magic; a damaged
 * primary (no magic) is LUKS2, whose secondary header may still be found. */
int luks_read(const struct blk *b, struct luks_volume *v, struct err *e)
{
	unsigned char m[8];
	memset(v, 0, sizeof *v);
	if (blk_read(b, 0, m, sizeof m) != 0)
		return err_set(e, EXIT_DEVICE, "reading the LUKS header: I/O error or device too small");
	unsigned version = (unsigned)m[6] << 8 | m[7];
	bool has_magic = memcmp(m, LUKS_MAGIC, sizeof LUKS_MAGIC) == 0;
	if (has_magic && version != 1 && version != 2)
		return err_set(e, EXIT_CONFIG, "LUKS header: version %u is not supported", version);
	int r = has_magic && version == 1 ? luks1_read(b, v, e) : luks2_read(b, v, e);
	v->blk = b;
	return r;
}
