/* RSA private keys: the derived filesystem key, and private key files. */
#include "rsakey.h"

#include "io.h"
#include "secmem.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define D_MAX_BYTES 1024 /* an 8192-bit modulus */

/* D as minimal big-endian bytes into d (guarded memory). */
static int private_exponent(EVP_PKEY *pkey, struct secbuf *d, struct err *e)
{
	struct secbuf native = {0};
	if (secbuf_alloc(&native, D_MAX_BYTES) != 0 || secbuf_alloc(d, D_MAX_BYTES) != 0) {
		secbuf_free(&native);
		return err_set(e, EXIT_INTERNAL, "deriving the key: out of memory");
	}
	/* An OSSL_PARAM BN is an unsigned integer in native byte order, padded to the buffer. */
	OSSL_PARAM params[2] = {
		OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_D, native.data, native.cap),
		OSSL_PARAM_construct_end(),
	};
	if (!EVP_PKEY_is_a(pkey, "RSA") || !EVP_PKEY_get_params(pkey, params) ||
	    !OSSL_PARAM_modified(params)) {
		secbuf_free(&native);
		secbuf_free(d);
		ERR_clear_error();
		return err_set(e, EXIT_CRYPTO, "deriving the key: the RSA key has no private exponent "
			       "(a private key is needed)");
	}
	size_t n = native.cap;
	const union { unsigned short s; unsigned char c; } probe = {1};
	for (size_t i = 0; i < n; i++)
		d->data[i] = probe.c ? native.data[n - 1 - i] : native.data[i];
	secbuf_free(&native);
	size_t skip = 0;
	while (skip < n && d->data[skip] == 0)
		skip++;
	if (skip == n) {
		secbuf_free(d);
		return err_set(e, EXIT_CRYPTO, "deriving the key: the RSA private exponent is zero");
	}
	memmove(d->data, d->data + skip, n - skip);
	wipe(d->data + (n - skip), skip);
	d->len = n - skip;
	return 0;
}

int rsakey_derive(EVP_PKEY *pkey, const unsigned char *salt, size_t salt_len, const char *label,
		  unsigned char out[RSAKEY_DERIVED_LEN], struct err *e)
{
	if (!label || !*label)
		label = RSAKEY_DEFAULT_LABEL;
	struct secbuf d = {0};
	if (private_exponent(pkey, &d, e) != 0)
		return -1;

	int rc = -1;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	if (!ctx) {
		err_set(e, EXIT_INTERNAL, "deriving the key: OpenSSL has no HKDF");
		goto out;
	}
	OSSL_PARAM params[5];
	int i = 0;
	params[i++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, d.data, d.len);
	if (salt_len > 0)
		params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)label, strlen(label));
	params[i] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, RSAKEY_DERIVED_LEN, params) != 1) {
		wipe(out, RSAKEY_DERIVED_LEN);
		err_set(e, EXIT_CRYPTO, "deriving the key: HKDF-SHA256 failed");
		goto out;
	}
	rc = 0;
out:
	ERR_clear_error();
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	secbuf_free(&d);
	return rc;
}

int rsakey_write_pem(const char *path, EVP_PKEY *pkey, struct err *e)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	if (!bio)
		return err_set(e, EXIT_INTERNAL, "writing %s: out of memory", path);
	if (PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
		BIO_free(bio);
		ERR_clear_error();
		return err_set(e, EXIT_CRYPTO, "writing %s: cannot encode the private key", path);
	}
	char *pem = NULL;
	long len = BIO_get_mem_data(bio, &pem);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		int saved = errno;
		BIO_free(bio);
		/* an existing file is the caller's mistake, as for every tool's output file: exit 2 */
		if (saved == EEXIST)
			return err_set(e, EXIT_USAGE, "writing %s: it exists (refusing to overwrite a key "
				       "file: remove it or choose another name)", path);
		return err_set(e, EXIT_DEVICE, "writing %s: %s", path, strerror(saved));
	}
	int rc = 0;
	if (len <= 0 || fchmod(fd, 0600) != 0 || write_all(fd, pem, (size_t)len) != 0 || fsync(fd) != 0) {
		int saved = errno;
		rc = err_set(e, EXIT_DEVICE, "writing %s: %s", path, strerror(saved));
	}
	if (close(fd) != 0 && rc == 0)
		rc = err_set(e, EXIT_DEVICE, "writing %s: %s", path, strerror(errno));
	if (rc != 0)
		(void)unlink(path);
	BIO_free(bio); /* secure memory: wiped */
	return rc;
}

/* No passphrase: an encrypted key file is refused instead of prompting on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return 0;
}

EVP_PKEY *rsakey_read_pem(const char *path, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err_set(e, EXIT_CONFIG, "reading the private key %s: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
		log_warn("private key file %s is readable by others (mode %03o): chmod 600 it", path,
			 (unsigned)(st.st_mode & 0777));
	struct secbuf text = {0};
	int rc = secbuf_read_fd(fd, RSAKEY_PEM_MAX, &text);
	int saved = errno;
	close(fd);
	if (rc != 0) {
		err_set(e, EXIT_CONFIG, "reading the private key %s: %s", path,
			saved == EFBIG ? "larger than 64 KiB, not a PEM private key" : strerror(saved));
		return NULL;
	}
	EVP_PKEY *pkey = NULL;
	BIO *bio = BIO_new_mem_buf(text.data, (int)text.len);
	if (bio)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	secbuf_free(&text);
	ERR_clear_error();
	if (!pkey) {
		err_set(e, EXIT_CONFIG, "reading the private key %s: not an unencrypted PEM private key "
			"(expected \"-----BEGIN PRIVATE KEY-----\")", path);
		return NULL;
	}
	int bits = EVP_PKEY_get_bits(pkey);
	if (!EVP_PKEY_is_a(pkey, "RSA") || bits < 2048 || bits > 8192) {
		err_set(e, EXIT_CONFIG, "reading the private key %s: a %d-bit %s key, not RSA of 2048 to "
			"8192 bits", path, bits, EVP_PKEY_get0_type_name(pkey));
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}
