/* LUKS cryptography shared by the reader (encfs-dmsetup) and the writer (encfs-mkimage), on
 * OpenSSL and libargon2: PBKDF2, Argon2i/id, sector encryption with the dm-crypt IV rules, and
 * the anti-forensic split and merge of keyslot material. */
#ifndef ENCFS_LUKS_CRYPTO_H
#define ENCFS_LUKS_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

/* What a header may ask of the KDFs (documented in encfs-dmsetup(1), LIMITS). */
#define LUKS_MAX_PBKDF2_ITER 2147483647u /* OpenSSL takes an int; encfs-dmsetup's policy bounds the cost */
#define LUKS_MAX_ARGON2_MEMORY_KIB 4194304u /* 4 GiB: cryptsetup's own ceiling */
#define LUKS_MAX_ARGON2_TIME 1000u
#define LUKS_MAX_ARGON2_WORK_KIB 33554432ull /* time x memory: 32 passes over 1 GiB */
#define LUKS_MAX_ARGON2_LANES 16u

enum kdf_type { KDF_UNKNOWN, KDF_PBKDF2, KDF_ARGON2I, KDF_ARGON2ID };

const struct evp_md_st *luks_hash_md(const char *luks_name); /* the OpenSSL EVP_MD, or NULL */
int luks_hash_size(const char *luks_name);             /* -1 when not supported */
int luks_pbkdf2(const char *hash, const unsigned char *pass, size_t pass_len,
		const unsigned char *salt, size_t salt_len, uint64_t iterations,
		unsigned char *out, size_t out_len, struct err *e);
int luks_argon2(enum kdf_type t, const unsigned char *pass, size_t pass_len,
		const unsigned char *salt, size_t salt_len, uint32_t time, uint32_t memory_kib,
		uint32_t lanes, unsigned char *out, size_t out_len, struct err *e);

/* Encrypts or decrypts len bytes in place as consecutive sectors of sector_size bytes (512 ...
 * 4096, dividing len) with the LUKS cipher spec ("aes-xts-plain64", "aes-cbc-essiv:sha256",
 * ...).  As dm-crypt does for LUKS (no iv_large_sectors), a sector's IV counts 512-byte units:
 * the first sector of buf has IV iv_sector, the next iv_sector + sector_size / 512, ... */
int luks_crypt_sectors(const char *spec, const unsigned char *key, size_t key_len, unsigned char *buf,
		       size_t len, uint32_t sector_size, uint64_t iv_sector, bool encrypt, struct err *e);
/* Keyslot areas: 512-byte sectors numbered from 0. */
int luks_decrypt_sectors(const char *spec, const unsigned char *key, size_t key_len,
			 unsigned char *buf, size_t len, struct err *e);

/* Anti-forensic split of key (key_len bytes) into stripes x key_len bytes at dst, the first
 * stripes - 1 of them random (libsodium), and the merge that undoes it. */
int luks_af_split(const unsigned char *key, size_t key_len, unsigned stripes, const char *hash,
		  unsigned char *dst, struct err *e);
int luks_af_merge(const unsigned char *src, size_t key_len, unsigned stripes, const char *hash,
		  unsigned char *key, struct err *e);

/* Cipher specs: "cipher-mode-iv".  Data segments dm-crypt may get; keyslot areas we decrypt. */
bool luks_cipher_supported_for_data(const char *spec, uint32_t key_size);
bool luks_cipher_supported_for_keyslot(const char *spec, uint32_t key_size);

#endif
