/* The wrapping key pair: RSA-2048, private half to a new 0600 file, public half as a JWK set. */
#ifndef ENCFS_UNWRAP_KEYGEN_H
#define ENCFS_UNWRAP_KEYGEN_H

#include <openssl/evp.h>

#include "log.h"
#include "strbuf.h"

#define WRAPPING_KEY_BITS 2048

/* {"keys":[{"kty":"RSA","n":...,"e":...,"kid":<RFC 7638 thumbprint>,"key_ops":["encrypt"]}]} of
 * pkey's public half, appended to out. */
int public_jwks(EVP_PKEY *pkey, struct strbuf *out, struct err *e);

/* The RFC 7638 JWK thumbprint (SHA-256, base64url) of an RSA key given as base64url n and e. */
void jwk_thumbprint_rsa(const char *n_b64url, const char *e_b64url, char out[44]);

/* Makes a fresh RSA-2048 key, writes its private half to private_path (new file, 0600) and its
 * public JWK set to out.  Warns when the file is not on tmpfs/ramfs (it could reach a disk). */
int keygen(const char *private_path, struct strbuf *out, struct err *e);

#endif
