/* The payload of a Key Vault / Managed HSM release response and the key inside it:
 * response.key.key.key_hsm = base64url JSON {"schema_version", "header": {"kid", "alg": "dir", "enc"},
 * "ciphertext"}, ciphertext = RSA-OAEP(AES KEK) || AES key wrap with padding (RFC 5649) of the key. */
#ifndef ENCFS_UNWRAP_RELEASE_H
#define ENCFS_UNWRAP_RELEASE_H

#include <openssl/evp.h>
#include <stddef.h>

#include "keyref.h"
#include "log.h"
#include "secmem.h"

#define RELEASE_MAX_TOKENS 4096
#define FS_KEY_LEN 32

enum wrap_alg {
	WRAP_CKM_RSA_AES_KEY_WRAP, /* RSA-OAEP with SHA-1 and MGF1-SHA-1 */
	WRAP_RSA_AES_KEY_WRAP_256, /* RSA-OAEP with SHA-256 */
	WRAP_RSA_AES_KEY_WRAP_384, /* RSA-OAEP with SHA-384 */
};


struct released_key {
	enum wrap_alg alg;
	char enc[32];     /* the algorithm's name, as the vault wrote it */
	char kty[16];     /* oct, oct-HSM, RSA, RSA-HSM, EC, EC-HSM */
	char kid[512];    /* response.key.key.kid, for messages */
	struct key_ref key; /* the released key: from its kid, else request.kid; empty when neither is a URL */
	char host[256];   /* key.host: the vault the response names */
	unsigned char *ciphertext; /* malloc */
	size_t ciphertext_len;
};

/* Reads the (already signature-checked) payload strictly: the wrapping algorithm (request.enc and
 * key_hsm's header.enc; when both are present they must agree), the key type, the ciphertext, and the
 * vault and key it is for (request.kid and response.key.key.kid, each a key identifier when it is an
 * https URL; when both are, they must name the same vault, key and, if request.kid has one,
 * version).  EXIT_CRYPTO naming the field on failure. */
int release_parse(const char *payload, size_t len, struct released_key *rk, struct err *e);
void release_free(struct released_key *rk);

/* ciphertext = RSA-OAEP(priv, hash of alg)(KEK) || RFC 5649 wrap(KEK, key): the unwrapped key bytes
 * into out (guarded memory).  Each failure has its own message: too short or misaligned (truncated),
 * RSA-OAEP failed (another wrapping key), AES-KWP integrity check failed (altered). */
int rsa_aes_unwrap(EVP_PKEY *priv, enum wrap_alg alg, const unsigned char *ct, size_t ct_len,
		   struct secbuf *out, struct err *e);

/* RFC 5649 unwrap with an AES key of 16, 24 or 32 bytes. */
int aes_kwp_unwrap(const unsigned char *kek, size_t kek_len, const unsigned char *in, size_t in_len,
		   struct secbuf *out, struct err *e);

/* The filesystem key from the unwrapped key material: oct/oct-HSM bytes as they are (must be 32
 * bytes), RSA/RSA-HSM (PKCS#8 DER) through rsakey_derive with salt and label; EC refused. */
int filesystem_key(const char *kty, const struct secbuf *material, const unsigned char *salt,
		   size_t salt_len, const char *label, unsigned char out[FS_KEY_LEN], struct err *e);

/* True when host is under a public Key Vault or Managed HSM DNS suffix. */
int known_vault_host(const char *host);

#endif
