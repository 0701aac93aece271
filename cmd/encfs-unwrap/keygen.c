/* Wrapping key generation and its public JWK set. */
#include "keygen.h"

#include "encode.h"
#include "rsakey.h"

#include <linux/magic.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>

static char *bn_param_b64url(EVP_PKEY *pkey, const char *name)
{
	BIGNUM *bn = NULL;
	char *out = NULL;
	if (EVP_PKEY_get_bn_param(pkey, name, &bn) == 1) {
		int n = BN_num_bytes(bn);
		unsigned char *buf = n > 0 ? malloc((size_t)n) : NULL;
		if (buf && BN_bn2bin(bn, buf) == n)
			out = b64_encode(buf, (size_t)n, B64_URL, 0);
		free(buf);
	}
	BN_free(bn);
	ERR_clear_error();
	return out;
}

void jwk_thumbprint_rsa(const char *n_b64url, const char *e_b64url, char out[44])
{
	/* RFC 7638: the required members in lexicographic order, no whitespace */
	crypto_hash_sha256_state st;
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)"{\"e\":\"", 6);
	crypto_hash_sha256_update(&st, (const unsigned char *)e_b64url, strlen(e_b64url));
	crypto_hash_sha256_update(&st, (const unsigned char *)"\",\"kty\":\"RSA\",\"n\":\"", 19);
	crypto_hash_sha256_update(&st, (const unsigned char *)n_b64url, strlen(n_b64url));
	crypto_hash_sha256_update(&st, (const unsigned char *)"\"}", 2);
	crypto_hash_sha256_final(&st, h);
	char *b = b64_encode(h, sizeof h, B64_URL, 0);
	snprintf(out, 44, "%s", b ? b : "");
	free(b);
}

int public_jwks(EVP_PKEY *pkey, struct strbuf *out, struct err *e)
{
	char *n = bn_param_b64url(pkey, OSSL_PKEY_PARAM_RSA_N);
	char *ex = bn_param_b64url(pkey, OSSL_PKEY_PARAM_RSA_E);
	if (!n || !ex) {
		free(n);
		free(ex);
		return err_set(e, EXIT_INTERNAL, "encoding the public key: cannot read n and e");
	}
	char kid[44];
	jwk_thumbprint_rsa(n, ex, kid);
	sb_printf(out, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\",\"kid\":\"%s\","
		  "\"key_ops\":[\"encrypt\"]}]}", n, ex, kid);
	free(n);
	free(ex);
	if (out->failed)
		return err_set(e, EXIT_INTERNAL, "encoding the public key: out of memory");
	return 0;
}

int keygen(const char *private_path, struct strbuf *out, struct err *e)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)WRAPPING_KEY_BITS);
	if (!pkey) {
		ERR_clear_error();
		return err_set(e, EXIT_INTERNAL, "generating the wrapping key: RSA-%d key generation "
			       "failed", WRAPPING_KEY_BITS);
	}
	int rc = public_jwks(pkey, out, e);
	if (rc == 0)
		rc = rsakey_write_pem(private_path, pkey, e);
	EVP_PKEY_free(pkey);
	if (rc != 0)
		return err_wrap(e, "generating the wrapping key");
	struct statfs fs;
	if (statfs(private_path, &fs) == 0 && fs.f_type != TMPFS_MAGIC && fs.f_type != RAMFS_MAGIC)
		log_warn("%s is not on a tmpfs: the private wrapping key may reach a disk (use a "
			 "directory such as /dev/shm or $XDG_RUNTIME_DIR, and remove it after use)",
			 private_path);
	return 0;
}
