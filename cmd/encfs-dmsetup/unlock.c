/* Unlocking: keyslots by priority, key derivation, keyslot area decryption, AF merge, digest. */
#include "luks.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int luks_data_segment(const struct luks_volume *v, struct err *e)
{
	int found = -1, regular = 0;
	for (int i = 0; i < v->nsegments; i++) {
		if (v->segments[i].backup)
			continue;
		regular++;
		found = i;
	}
	if (regular != 1)
		return err_set(e, EXIT_CONFIG, "LUKS header: %d data segments (only one is supported)", regular);
	return found;
}

int luks_check_activation(const struct luks_volume *v, bool detached, struct err *e)
{
	if (v->requirements[0])
		return err_set(e, EXIT_CONFIG, "LUKS2 header: unmet mandatory requirements \"%s\" (reencryption in "
			       "progress or a newer format: finish it with cryptsetup)", v->requirements);
	if (v->reencrypt_keyslot)
		return err_set(e, EXIT_CONFIG, "LUKS2 header: a reencryption keyslot is present (reencryption is not supported)");
	if (v->nsegments != 1)
		return err_set(e, EXIT_CONFIG, "LUKS header: %d segments (only a single data segment is supported)",
			       v->nsegments);
	int si = luks_data_segment(v, e);
	if (si < 0)
		return -1;
	const struct luks_segment *s = &v->segments[si];
	if (strcmp(s->type, "crypt") != 0)
		return err_set(e, EXIT_CONFIG, "LUKS header: segment type \"%s\" is not supported (only crypt)", s->type);
	if (s->in_reencryption)
		return err_set(e, EXIT_CONFIG, "LUKS2 header: the segment is in reencryption");
	if (s->integrity)
		return err_set(e, EXIT_CONFIG, "LUKS2 header: integrity segments are not supported");
	if (strncmp(s->encryption, "capi:", 5) == 0)
		return err_set(e, EXIT_CONFIG, "LUKS header: cipher \"%s\": kernel crypto API (capi:) forms are not supported",
			       s->encryption);
	if (strncmp(s->encryption, "cipher_null", 11) == 0)
		return err_set(e, EXIT_CONFIG, "LUKS header: cipher \"%s\" does not encrypt (refused)", s->encryption);
	uint32_t ks = 0;
	for (int d = 0; d < v->ndigests; d++)
		if (v->digests[d].segments >> s->id & 1)
			for (int k = 0; k < v->nkeyslots; k++)
				if (v->keyslots[k].digest == d && v->keyslots[k].luks2_type && v->keyslots[k].addressable)
					ks = v->keyslots[k].key_size;
	if (!ks)
		return err_set(e, EXIT_CONFIG, "LUKS header: no keyslot is bound to the data segment");
	if (!luks_cipher_supported_for_data(s->encryption, ks))
		return err_set(e, EXIT_CONFIG, "LUKS header: cipher \"%s\" with a %" PRIu32 "-byte key is not supported "
			       "(aes, serpent or twofish in xts or cbc mode with plain, plain64 or essiv:sha256 IVs)",
			       s->encryption, ks);
	if (s->sector_size != 512 && s->sector_size != 1024 && s->sector_size != 2048 && s->sector_size != 4096)
		return err_set(e, EXIT_CONFIG, "LUKS2 header: sector size %" PRIu32 " is not supported", s->sector_size);
	if (s->offset == 0 && !detached)
		return err_set(e, EXIT_CONFIG, "LUKS header: data offset 0 would map the header itself (use --header "
			       "with a detached header)");
	return 0;
}

/* The cost policy, checked before a keyslot's key derivation runs. */
static int within_limits(const struct luks_keyslot *s, const struct luks_digest *d, const struct luks_limits *lim,
			 const char *where, struct err *e)
{
	if (!lim)
		return 0;
	if (s->kdf == KDF_PBKDF2 && s->iterations > lim->max_pbkdf2_iterations)
		return err_set(e, EXIT_CONFIG, "%s: PBKDF2 with %" PRIu64 " iterations is above the limit of %" PRIu64
			       " (--max-pbkdf2-iterations)", where, s->iterations, lim->max_pbkdf2_iterations);
	if (d->iterations > lim->max_pbkdf2_iterations)
		return err_set(e, EXIT_CONFIG, "%s: its digest's PBKDF2 with %" PRIu64 " iterations is above the limit "
			       "of %" PRIu64 " (--max-pbkdf2-iterations)", where, d->iterations, lim->max_pbkdf2_iterations);
	if (s->kdf == KDF_ARGON2I || s->kdf == KDF_ARGON2ID) {
		if (s->time > lim->max_argon2_time)
			return err_set(e, EXIT_CONFIG, "%s: Argon2 time cost %" PRIu32 " is above the limit of %" PRIu32
				       " (--max-argon2-time)", where, s->time, lim->max_argon2_time);
		if (s->memory_kib > lim->max_argon2_memory_kib)
			return err_set(e, EXIT_CONFIG, "%s: Argon2 memory of %" PRIu32 " KiB is above the limit of %" PRIu64
				       " KiB (--max-argon2-memory, and the memory available)", where, s->memory_kib,
				       lim->max_argon2_memory_kib);
	}
	return 0;
}

volatile sig_atomic_t luks_current_keyslot = -1;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Tries one keyslot; 1 when the key opens it (vk filled), 0 when it does not, -1 when it cannot be
 * tried, -2 when it is over a limit of the cost policy (e says which). */
static int try_keyslot(const struct luks_volume *v, const struct luks_keyslot *s, const unsigned char *pass,
		       size_t pass_len, const struct luks_limits *lim, unsigned char *vk, struct err *e)
{
	const struct luks_digest *d = s->digest >= 0 ? &v->digests[s->digest] : NULL;
	char where[40];
	snprintf(where, sizeof where, "keyslot %d", s->id);
	if (!d || !d->pbkdf2_type)
		return err_set(e, EXIT_CONFIG, "%s: digest type is not pbkdf2", where);
	if (!s->key_size || s->key_size > LUKS_MAX_KEY_BYTES)
		return err_set(e, EXIT_CONFIG, "%s: volume key size %" PRIu32 " is outside 1..%d bytes", where,
			       s->key_size, LUKS_MAX_KEY_BYTES);
	if (s->stripes != LUKS_STRIPES)
		return err_set(e, EXIT_CONFIG, "%s: %" PRIu32 " AF stripes (only 4000 is valid)", where, s->stripes);
	if (!s->salt_ok)
		return err_set(e, EXIT_CONFIG, "%s: the salt is not 32 bytes of base64", where);
	if (!luks_cipher_supported_for_keyslot(s->area_cipher, s->area_key_size))
		return err_set(e, EXIT_CONFIG, "%s: keyslot cipher %s with a %" PRIu32 "-byte key is not supported "
			       "(only aes in xts or cbc mode can be decrypted here)", where, s->area_cipher,
			       s->area_key_size);
	if (luks_hash_size(s->af_hash) < 0)
		return err_set(e, EXIT_CONFIG, "%s: AF hash \"%s\" is not supported", where, s->af_hash);
	/* cryptsetup 2.6 reports such a digest as matching any key: refused here */
	if (d->salt_len != LUKS_SALT_BYTES)
		return err_set(e, EXIT_CONFIG, "%s: the digest salt is not 32 bytes of base64", where);
	if (!d->value_len)
		return err_set(e, EXIT_CONFIG, "%s: the digest value is missing or longer than 64 bytes", where);
	if (d->value_len != 20 && (int)d->value_len != luks_hash_size(d->hash))
		return err_set(e, EXIT_CONFIG, "%s: digest of %zu bytes does not fit hash \"%s\"", where, d->value_len,
			       d->hash);
	uint64_t af_len = ((uint64_t)s->key_size * LUKS_STRIPES + 511) / 512 * 512;
	if (af_len > s->area_size)
		return err_set(e, EXIT_CONFIG, "%s: area of %" PRIu64 " bytes is smaller than the key material (%" PRIu64 ")",
			       where, s->area_size, af_len);
	if (v->version == 2 && s->kdf == KDF_UNKNOWN)
		return err_set(e, EXIT_CONFIG, "%s: kdf \"%s\" is not supported", where, s->kdf_name);
	if (within_limits(s, d, lim, where, e) != 0)
		return -2;

	struct secbuf derived = {0}, af = {0};
	unsigned char check[64];
	int r = -1;
	if (secbuf_alloc(&derived, s->area_key_size) != 0 || secbuf_alloc(&af, (size_t)af_len) != 0) {
		err_set(e, EXIT_INTERNAL, "%s: out of memory", where);
		goto out;
	}
	if (s->kdf == KDF_PBKDF2) {
		if (luks_pbkdf2(s->kdf_hash, pass, pass_len, s->salt, LUKS_SALT_BYTES, s->iterations, derived.data,
				s->area_key_size, e) != 0)
			goto wrap;
	} else if (luks_argon2(s->kdf, pass, pass_len, s->salt, LUKS_SALT_BYTES, s->time, s->memory_kib, s->lanes,
			       derived.data, s->area_key_size, e) != 0)
		goto wrap;
	if (blk_read(v->blk, s->area_offset, af.data, (size_t)af_len) != 0) {
		err_set(e, EXIT_DEVICE, "%s: reading the keyslot area failed", where);
		goto out;
	}
	if (luks_decrypt_sectors(s->area_cipher, derived.data, s->area_key_size, af.data, (size_t)af_len, e) != 0 ||
	    luks_af_merge(af.data, s->key_size, LUKS_STRIPES, s->af_hash, vk, e) != 0 ||
	    luks_pbkdf2(d->hash, vk, s->key_size, d->salt, d->salt_len, d->iterations, check, d->value_len, e) != 0)
		goto wrap;
	r = sodium_memcmp(check, d->value, d->value_len) == 0 ? 1 : 0;
	goto out;
wrap:
	err_wrap(e, "%s", where);
out:
	wipe(check, sizeof check);
	secbuf_free(&derived);
	secbuf_free(&af);
	return r;
}

int luks_unlock(const struct luks_volume *v, const unsigned char *pass, size_t pass_len, bool for_segment,
		const struct luks_limits *lim, struct secbuf *vk, int *slot, struct err *e)
{
	long long started = now_ms();
	uint64_t seg_bit = 0;
	if (for_segment) {
		int si = luks_data_segment(v, e);
		if (si < 0)
			return -1;
		seg_bit = 1ull << v->segments[si].id;
	}
	struct err last = {0, ""}, over = {0, ""};
	int tried = 0, compared = 0;
	for (int prio = LUKS_PRIORITY_PREFER; prio >= LUKS_PRIORITY_NORMAL; prio--) {
		for (int id = 0; id < LUKS_MAX_KEYSLOTS; id++) {
			const struct luks_keyslot *s = NULL;
			for (int i = 0; i < v->nkeyslots; i++)
				if (v->keyslots[i].id == id && v->keyslots[i].addressable)
					s = &v->keyslots[i];
			if (!s || !s->luks2_type || s->priority != prio)
				continue;
			if (for_segment && (s->digest < 0 || !(v->digests[s->digest].segments & seg_bit)))
				continue;
			long long spent = now_ms() - started;
			if (lim && tried > 0 && spent >= lim->max_total_ms)
				return err_set(e, EXIT_CONFIG, "unlocking: stopped before keyslot %d: %d keyslots took %lld "
					       "ms, the limit is %lld ms (--max-unlock-time)", id, tried, spent,
					       lim->max_total_ms);
			if (secbuf_alloc(vk, s->key_size ? s->key_size : 1) != 0)
				return err_set(e, EXIT_INTERNAL, "unlocking: out of memory");
			struct err ke = {0, ""};
			tried++;
			luks_current_keyslot = id;
			int r = try_keyslot(v, s, pass, pass_len, lim, vk->data, &ke);
			luks_current_keyslot = -1;
			if (r == 1) {
				vk->len = s->key_size;
				*slot = s->id;
				return 0;
			}
			secbuf_free(vk);
			if (r < 0) {
				log_info("%s", ke.msg);
				last = ke;
				if (r == -2)
					over = ke;
			} else {
				compared++;
				log_debug("keyslot %d: wrong key", id);
			}
		}
	}
	if (!tried)
		return err_set(e, EXIT_CONFIG, "unlocking: no usable key slot%s",
			       for_segment ? " bound to the data segment" : "");
	if (!compared) /* no keyslot could even be tried: say why the last one could not */
		return *e = last, -1;
	/* a keyslot left untried for a limit may be the one: say so */
	if (over.msg[0])
		return err_set(e, EXIT_CRYPTO, "unlocking: no key slot matches this key (not tried: %s)", over.msg);
	return err_set(e, EXIT_CRYPTO, "unlocking: no key slot matches this key");
}
