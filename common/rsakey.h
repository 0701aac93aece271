/* RSA private keys as encfs-unwrap and encfs-skr import both handle them: the filesystem key
 * derived from an RSA-HSM key (the same bytes the upstream sidecar and importkey derive), and
 * private key files written once, 0600. */
#ifndef ENCFS_RSAKEY_H
#define ENCFS_RSAKEY_H

#include <openssl/evp.h>
#include <stddef.h>

#include "log.h"

#define RSAKEY_DEFAULT_LABEL "Symmetric Encryption Key"
#define RSAKEY_DERIVED_LEN 32
#define RSAKEY_PEM_MAX (64u << 10) /* a PEM private key file is a few KiB */

/* out = HKDF-SHA256(ikm = the private exponent D as minimal big-endian bytes, salt, info = label),
 * 32 bytes.  An empty salt is HKDF's default (HashLen zero bytes); a NULL or empty label is
 * RSAKEY_DEFAULT_LABEL, as upstream treats an empty key_derivation.label.  D only ever lives in
 * guarded memory here. */
int rsakey_derive(EVP_PKEY *pkey, const unsigned char *salt, size_t salt_len, const char *label,
		  unsigned char out[RSAKEY_DERIVED_LEN], struct err *e);

/* Writes pkey as an unencrypted PKCS#8 PEM ("PRIVATE KEY") to a new file path, mode 0600; refuses
 * when path exists or is a symbolic link (EXIT_USAGE, as every tool's existing output file), and
 * EXIT_DEVICE when it cannot be written. */
int rsakey_write_pem(const char *path, EVP_PKEY *pkey, struct err *e);

/* Reads a PEM private key (PKCS#8 or traditional RSA) from path, at most RSAKEY_PEM_MAX bytes,
 * through guarded memory; it must be RSA of 2048 to 8192 bits.  NULL with e (EXIT_CONFIG) when not. */
EVP_PKEY *rsakey_read_pem(const char *path, struct err *e);

#endif
