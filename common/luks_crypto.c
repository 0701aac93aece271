/* LUKS cryptography on OpenSSL, libargon2 and libsodium: PBKDF2, Argon2i/id, sector encryption
 * (XTS and CBC with plain, plain64 and ESSIV IVs) and the LUKS anti-forensic split and merge. */
#include "luks_crypto.h"

#include "secmem.h"

#include <argon2.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* LUKS hash names and the OpenSSL names behind them. */
static const struct {
	const char *luks, *evp;
	bool legacy; /* in OpenSSL 3's legacy provider */
} HASHES[] = {
	{"sha1", "SHA1", false},       {"sha224", "SHA224", false},   {"sha256", "SHA256", false},
	{"sha384", "SHA384", false},   {"sha512", "SHA512", false},   {"sha3-256", "SHA3-256", false},
	{"sha3-512", "SHA3-512", false}, {"ripemd160", "RIPEMD160", true}, {"whirlpool", "WHIRLPOOL", true},
};

/* Names are matched without regard to case, as cryptsetup's crypto backends match them. */
const EVP_MD *luks_hash_md(const char *luks_name)
{
	static EVP_MD *fetched[sizeof HASHES / sizeof HASHES[0]];
	static bool legacy_loaded;
	for (size_t i = 0; i < sizeof HASHES / sizeof HASHES[0]; i++) {
		if (strcasecmp(HASHES[i].luks, luks_name) != 0)
			continue;
		if (!fetched[i] && HASHES[i].legacy && !legacy_loaded) {
			/* old LUKS1 volumes (whirlpool, ripemd160): hashes only come from there */
			legacy_loaded = true;
			(void)OSSL_PROVIDER_try_load(NULL, "legacy", 1);
		}
		if (!fetched[i])
			fetched[i] = EVP_MD_fetch(NULL, HASHES[i].evp, NULL);
		return fetched[i] && EVP_MD_get_size(fetched[i]) > 0 ? fetched[i] : NULL;
	}
	return NULL;
}

int luks_hash_size(const char *luks_name)
{
	const EVP_MD *md = luks_hash_md(luks_name);
	return md ? EVP_MD_get_size(md) : -1;
}

int luks_pbkdf2(const char *hash, const unsigned char *pass, size_t pass_len, const unsigned char *salt,
		size_t salt_len, uint64_t iterations, unsigned char *out, size_t out_len, struct err *e)
{
	const EVP_MD *md = luks_hash_md(hash);
	if (!md)
		return err_set(e, EXIT_CONFIG, "PBKDF2: hash \"%s\" is not supported", hash);
	if (!iterations || iterations > LUKS_MAX_PBKDF2_ITER)
		return err_set(e, EXIT_CONFIG, "PBKDF2: %" PRIu64 " iterations is outside 1..%u", iterations,
			       LUKS_MAX_PBKDF2_ITER);
	if (pass_len > INT32_MAX || salt_len > INT32_MAX || out_len > INT32_MAX)
		return err_set(e, EXIT_CONFIG, "PBKDF2: input too long");
	/* OpenSSL wants a non-NULL pointer even for an empty passphrase */
	static const unsigned char empty[1];
	if (PKCS5_PBKDF2_HMAC((const char *)(pass_len ? pass : empty), (int)pass_len, salt, (int)salt_len,
			      (int)iterations, md, (int)out_len, out) != 1)
		return err_set(e, EXIT_CRYPTO, "PBKDF2-%s failed in OpenSSL", hash);
	return 0;
}

int luks_argon2(enum kdf_type t, const unsigned char *pass, size_t pass_len, const unsigned char *salt,
		size_t salt_len, uint32_t time, uint32_t memory_kib, uint32_t lanes, unsigned char *out,
		size_t out_len, struct err *e)
{
	if (!time || time > LUKS_MAX_ARGON2_TIME)
		return err_set(e, EXIT_CONFIG, "Argon2: time cost %" PRIu32 " is outside 1..%u", time, LUKS_MAX_ARGON2_TIME);
	if (!lanes || lanes > LUKS_MAX_ARGON2_LANES)
		return err_set(e, EXIT_CONFIG, "Argon2: %" PRIu32 " lanes is outside 1..%u", lanes, LUKS_MAX_ARGON2_LANES);
	if (memory_kib < 8 * lanes || memory_kib > LUKS_MAX_ARGON2_MEMORY_KIB)
		return err_set(e, EXIT_CONFIG, "Argon2: memory %" PRIu32 " KiB is outside %" PRIu32 "..%u KiB", memory_kib,
			       8 * lanes, LUKS_MAX_ARGON2_MEMORY_KIB);
	if ((uint64_t)time * memory_kib > LUKS_MAX_ARGON2_WORK_KIB)
		return err_set(e, EXIT_CONFIG, "Argon2: time %" PRIu32 " x memory %" PRIu32 " KiB is above the limit of %llu",
			       time, memory_kib, LUKS_MAX_ARGON2_WORK_KIB);
	if (pass_len > UINT32_MAX || salt_len > UINT32_MAX || out_len > UINT32_MAX)
		return err_set(e, EXIT_CONFIG, "Argon2: input too long");
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint32_t threads = lanes;
	if (cpus > 0 && (uint32_t)cpus < threads)
		threads = (uint32_t)cpus;
	/* libargon2 takes a non-const password pointer but only reads it */
	argon2_context ctx = {
		.out = out,
		.outlen = (uint32_t)out_len,
		.pwd = (uint8_t *)(uintptr_t)pass,
		.pwdlen = (uint32_t)pass_len,
		.salt = (uint8_t *)(uintptr_t)salt,
		.saltlen = (uint32_t)salt_len,
		.t_cost = time,
		.m_cost = memory_kib,
		.lanes = lanes,
		.threads = threads,
		.version = ARGON2_VERSION_13,
		.flags = ARGON2_DEFAULT_FLAGS,
	};
	int r = argon2_ctx(&ctx, t == KDF_ARGON2I ? Argon2_i : Argon2_id);
	if (r == ARGON2_MEMORY_ALLOCATION_ERROR)
		return err_set(e, EXIT_INTERNAL, "Argon2: cannot allocate %" PRIu32 " KiB", memory_kib);
	if (r != ARGON2_OK)
		return err_set(e, EXIT_CRYPTO, "Argon2: %s", argon2_error_message(r));
	return 0;
}

/* --- cipher specs -------------------------------------------------------------------------- */

struct spec {
	char cipher[16], mode[16], iv[24];
};

/* "aes-xts-plain64" -> aes, xts, plain64; "aes-cbc-essiv:sha256"; -1 for anything else. */
static int parse_spec(const char *s, struct spec *p)
{
	const char *d1 = strchr(s, '-');
	if (!d1)
		return -1;
	const char *d2 = strchr(d1 + 1, '-');
	if (!d2)
		return -1;
	size_t a = (size_t)(d1 - s), b = (size_t)(d2 - d1 - 1), c = strlen(d2 + 1);
	if (!a || !b || !c || a >= sizeof p->cipher || b >= sizeof p->mode || c >= sizeof p->iv)
		return -1;
	memcpy(p->cipher, s, a);
	p->cipher[a] = '\0';
	memcpy(p->mode, d1 + 1, b);
	p->mode[b] = '\0';
	memcpy(p->iv, d2 + 1, c + 1);
	return 0;
}

static bool iv_known(const struct spec *p)
{
	return !strcmp(p->iv, "plain64") || !strcmp(p->iv, "plain") || !strcmp(p->iv, "essiv:sha256");
}

bool luks_cipher_supported_for_data(const char *spec, uint32_t key_size)
{
	struct spec p;
	if (parse_spec(spec, &p) != 0 || !iv_known(&p))
		return false;
	if (strcmp(p.cipher, "aes") && strcmp(p.cipher, "serpent") && strcmp(p.cipher, "twofish"))
		return false;
	if (!strcmp(p.mode, "xts"))
		return key_size == 32 || key_size == 64;
	if (!strcmp(p.mode, "cbc"))
		return key_size == 16 || key_size == 24 || key_size == 32;
	return false;
}

bool luks_cipher_supported_for_keyslot(const char *spec, uint32_t key_size)
{
	struct spec p;
	return parse_spec(spec, &p) == 0 && !strcmp(p.cipher, "aes") && luks_cipher_supported_for_data(spec, key_size);
}

static const EVP_CIPHER *evp_cipher(const struct spec *p, size_t key_len)
{
	if (!strcmp(p->mode, "xts"))
		return key_len == 32 ? EVP_aes_128_xts() : key_len == 64 ? EVP_aes_256_xts() : NULL;
	if (!strcmp(p->mode, "cbc"))
		return key_len == 16 ? EVP_aes_128_cbc() : key_len == 24 ? EVP_aes_192_cbc() : key_len == 32 ? EVP_aes_256_cbc() : NULL;
	return NULL;
}

int luks_crypt_sectors(const char *spec, const unsigned char *key, size_t key_len, unsigned char *buf,
		       size_t len, uint32_t sector_size, uint64_t iv_sector, bool encrypt, struct err *e)
{
	struct spec p;
	if (parse_spec(spec, &p) != 0 || !luks_cipher_supported_for_keyslot(spec, (uint32_t)key_len))
		return err_set(e, EXIT_CONFIG, "cipher %s with a %zu-byte key is not supported (only aes xts/cbc with "
			       "plain, plain64 or essiv:sha256 IVs)", spec, key_len);
	if (sector_size < 512 || sector_size > 4096 || (sector_size & (sector_size - 1)) || len % sector_size)
		return err_set(e, EXIT_INTERNAL, "%zu bytes are not whole sectors of %" PRIu32 " bytes", len, sector_size);
	const EVP_CIPHER *c = evp_cipher(&p, key_len);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new(), *essiv = NULL;
	unsigned char essiv_key[32];
	int r = -1;
	if (!c || !ctx)
		goto fail;
	if (!strcmp(p.iv, "essiv:sha256")) {
		/* ESSIV: IV = AES-ECB with key SHA-256(volume key), of the sector number */
		unsigned hl = 0;
		essiv = EVP_CIPHER_CTX_new();
		if (!essiv || EVP_Digest(key, key_len, essiv_key, &hl, EVP_sha256(), NULL) != 1 ||
		    EVP_EncryptInit_ex(essiv, EVP_aes_256_ecb(), NULL, essiv_key, NULL) != 1 ||
		    EVP_CIPHER_CTX_set_padding(essiv, 0) != 1)
			goto fail;
	}
	if (EVP_CipherInit_ex(ctx, c, NULL, key, NULL, encrypt) != 1 || EVP_CIPHER_CTX_set_padding(ctx, 0) != 1)
		goto fail;
	for (size_t s = 0; s < len / sector_size; s++) {
		unsigned char iv[16] = {0}, *sec = buf + sector_size * s;
		uint64_t n = iv_sector + s * (sector_size / 512);
		int outl = 0;
		if (!strcmp(p.iv, "plain"))
			n &= 0xffffffffu;
		for (int i = 0; i < 8; i++)
			iv[i] = (unsigned char)(n >> (8 * i));
		if (essiv) {
			unsigned char enc[16];
			if (EVP_EncryptUpdate(essiv, enc, &outl, iv, 16) != 1 || outl != 16)
				goto fail;
			memcpy(iv, enc, 16);
		}
		if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, encrypt) != 1 ||
		    EVP_CipherUpdate(ctx, sec, &outl, sec, (int)sector_size) != 1 || outl != (int)sector_size)
			goto fail;
	}
	r = 0;
fail:
	if (r)
		err_set(e, EXIT_CRYPTO, "%scrypting with %s failed in OpenSSL", encrypt ? "en" : "de", spec);
	wipe(essiv_key, sizeof essiv_key);
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_CTX_free(essiv);
	return r;
}

int luks_decrypt_sectors(const char *spec, const unsigned char *key, size_t key_len, unsigned char *buf,
			 size_t len, struct err *e)
{
	if (len % 512)
		return err_set(e, EXIT_INTERNAL, "keyslot area length is not a multiple of 512");
	if (luks_crypt_sectors(spec, key, key_len, buf, len, 512, 0, false, e) != 0)
		return err_wrap(e, "keyslot area");
	return 0;
}

/* AF diffuse: the buffer in hash-sized pieces, each replaced by H(be32(index) || piece). */
static int diffuse(const EVP_MD *md, unsigned char *buf, size_t len)
{
	size_t ds = (size_t)EVP_MD_get_size(md);
	unsigned char out[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = ctx ? 0 : -1;
	for (size_t i = 0; r == 0 && i * ds < len; i++) {
		size_t n = len - i * ds < ds ? len - i * ds : ds;
		unsigned char be[4] = {(unsigned char)(i >> 24), (unsigned char)(i >> 16), (unsigned char)(i >> 8),
				       (unsigned char)i};
		unsigned ol = 0;
		if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, be, 4) != 1 ||
		    EVP_DigestUpdate(ctx, buf + i * ds, n) != 1 || EVP_DigestFinal_ex(ctx, out, &ol) != 1)
			r = -1;
		else
			memcpy(buf + i * ds, out, n);
	}
	wipe(out, sizeof out);
	EVP_MD_CTX_free(ctx);
	return r;
}

int luks_af_split(const unsigned char *key, size_t key_len, unsigned stripes, const char *hash,
		  unsigned char *dst, struct err *e)
{
	const EVP_MD *md = luks_hash_md(hash);
	if (!md)
		return err_set(e, EXIT_CONFIG, "AF split: hash \"%s\" is not supported", hash);
	if (!stripes || !key_len || key_len > 512)
		return err_set(e, EXIT_INTERNAL, "AF split: %u stripes of %zu bytes", stripes, key_len);
	unsigned char block[512];
	memset(block, 0, key_len);
	/* stripes 0 .. n-2 random, each folded into the running block; the last one makes the
	 * merge (the same fold, then XOR) give the key back */
	for (unsigned s = 0; s + 1 < stripes; s++) {
		randombytes_buf(dst + (size_t)s * key_len, key_len);
		for (size_t i = 0; i < key_len; i++)
			block[i] ^= dst[(size_t)s * key_len + i];
		if (diffuse(md, block, key_len) != 0) {
			wipe(block, sizeof block);
			return err_set(e, EXIT_CRYPTO, "AF split: %s failed in OpenSSL", hash);
		}
	}
	for (size_t i = 0; i < key_len; i++)
		dst[(size_t)(stripes - 1) * key_len + i] = block[i] ^ key[i];
	wipe(block, sizeof block);
	return 0;
}

int luks_af_merge(const unsigned char *src, size_t key_len, unsigned stripes, const char *hash,
		  unsigned char *key, struct err *e)
{
	const EVP_MD *md = luks_hash_md(hash);
	if (!md)
		return err_set(e, EXIT_CONFIG, "AF merge: hash \"%s\" is not supported", hash);
	if (!stripes)
		return err_set(e, EXIT_CONFIG, "AF merge: no stripes");
	memset(key, 0, key_len);
	for (unsigned s = 0; s + 1 < stripes; s++) {
		for (size_t i = 0; i < key_len; i++)
			key[i] ^= src[s * key_len + i];
		if (diffuse(md, key, key_len) != 0)
			return err_set(e, EXIT_CRYPTO, "AF merge: %s failed in OpenSSL", hash);
	}
	for (size_t i = 0; i < key_len; i++)
		key[i] ^= src[(size_t)(stripes - 1) * key_len + i];
	return 0;
}
