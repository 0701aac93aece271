/* libFuzzer target: LUKS1/LUKS2 header reading and validation, then what is done with a header
 * that passes (activation checks, the table line, dump) and, when every keyslot and digest is
 * cheap to derive, unlocking with the passphrase "fuzz" (keyslot area decryption, AF merge,
 * digest).  The input is the start of a device.
 *
 * A random LUKS2 header almost never has a valid checksum, which would keep the fuzzer out of the
 * JSON rules; so when the first input byte is odd, the harness writes the correct sha256 checksum
 * into both copies before reading (even first byte: the bytes as given, checksums included). */
#include "luks.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t be64(const unsigned char *p)
{
	uint64_t x = 0;
	for (int i = 0; i < 8; i++)
		x = x << 8 | p[i];
	return x;
}

static void fix_checksum(unsigned char *d, size_t n, uint64_t off)
{
	if (off > n || n - off < 4096)
		return;
	uint64_t size = be64(d + off + 8);
	if (size < 4096 || size > n - off || size > (4u << 20))
		return;
	memset(d + off + 448, 0, 64);
	unsigned len = 0;
	(void)EVP_Digest(d + off, (size_t)size, d + off + 448, &len, EVP_sha256(), NULL);
}

/* Unlocking runs only when it costs little: cryptsetup's minimum PBKDF2 count and tiny Argon2. */
static bool cheap_to_unlock(const struct luks_volume *v)
{
	for (int i = 0; i < v->nkeyslots; i++) {
		const struct luks_keyslot *s = &v->keyslots[i];
		if (s->kdf == KDF_PBKDF2 && s->iterations > 1000)
			return false;
		if ((s->kdf == KDF_ARGON2I || s->kdf == KDF_ARGON2ID) && (s->time > 4 || s->memory_kib > 256))
			return false;
	}
	for (int i = 0; i < v->ndigests; i++)
		if (v->digests[i].iterations > 1000)
			return false;
	return true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return sodium_init() < 0; /* the volume key goes to sodium_malloc'd memory */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	if (!devnull)
		devnull = fopen("/dev/null", "w");
	if (size < 1)
		return 0;
	unsigned char *d = malloc(size - 1 + 1);
	if (!d)
		return 0;
	memcpy(d, data + 1, size - 1);
	size_t n = size - 1;
	if ((data[0] & 1) && n >= 4096) {
		fix_checksum(d, n, 0);
		fix_checksum(d, n, be64(d + 8));
	}
	struct blk b = {-1, d, n};
	struct luks_volume v;
	struct err e;
	if (luks_read(&b, &v, &e) == 0) {
		if (devnull) {
			luks_dump_text(&v, "fuzz.img", devnull);
			(void)luks_dump_json(&v, devnull);
		}
		char buf[256];
		(void)luks_dm_uuid(&v, "fuzz", buf, sizeof buf);
		(void)luks_keyring_desc(&v, buf, sizeof buf);
		if (luks_check_activation(&v, data[0] & 2, &e) == 0) {
			unsigned char vk[LUKS_MAX_KEY_BYTES] = {0};
			struct table_params p = {"/dev/loop0", (uint64_t)64 << 20, data[0] & 4, NULL, true};
			struct table_line t;
			for (int i = 0; i < v.nkeyslots; i++) {
				uint32_t ks = v.keyslots[i].key_size;
				if (ks && ks <= LUKS_MAX_KEY_BYTES && luks_build_table(&v, vk, ks, &p, &t, &e) == 0) {
					char *s = table_line_format(&t);
					free(s);
					table_line_free(&t);
				}
			}
		}
		if (cheap_to_unlock(&v)) {
			struct secbuf vk = {0};
			int slot;
			if (luks_unlock(&v, (const unsigned char *)"fuzz", 4, data[0] & 8, NULL, &vk, &slot, &e) == 0)
				secbuf_free(&vk);
		}
		luks_volume_free(&v);
	}
	free(d);
	return 0;
}
