/* Release response payload: parse, unwrap (RSA-OAEP + AES-KWP), turn into the filesystem key. */
#include "release.h"

#include "encode.h"
#include "json.h"
#include "rsakey.h"

#include <ctype.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_HSM_MAX_TOKENS 64
#define CIPHERTEXT_MAX (64u << 10) /* an RSA-4096 PKCS#8 key wrapped is under 3 KiB */

static const struct {
	const char *name;
	enum wrap_alg alg;
	const char *md;
} wrap_algs[] = {
	{"CKM_RSA_AES_KEY_WRAP", WRAP_CKM_RSA_AES_KEY_WRAP, "SHA1"},
	{"RSA_AES_KEY_WRAP_256", WRAP_RSA_AES_KEY_WRAP_256, "SHA256"},
	{"RSA_AES_KEY_WRAP_384", WRAP_RSA_AES_KEY_WRAP_384, "SHA384"},
};

void release_free(struct released_key *rk)
{
	free(rk->ciphertext);
	memset(rk, 0, sizeof *rk);
}

int known_vault_host(const char *host)
{
	static const char *const suffixes[] = {
		".vault.azure.net",        ".managedhsm.azure.net",
		".vault.azure.cn",         ".managedhsm.azure.cn",
		".vault.usgovcloudapi.net", ".managedhsm.usgovcloudapi.net",
	};
	size_t n = strlen(host);
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		size_t m = strlen(suffixes[i]);
		if (n > m && strcasecmp(host + n - m, suffixes[i]) == 0)
			return 1;
	}
	return 0;
}

/* A kid member: 1 and ref filled when it is an https URL (which must be a key identifier), 0 when it
 * is absent or not a URL, -1 with e when it is a malformed identifier. */
static int kid_ref(const char *kid, const char *what, struct key_ref *ref, struct err *e)
{
	if (strncasecmp(kid, "https://", 8) != 0)
		return 0;
	if (key_ref_parse(kid, ref) != 0 || !ref->host[0])
		return err_set(e, EXIT_CRYPTO, "release response: %s \"%.200s\" is not a key identifier "
			       "(https://HOST/keys/NAME[/VERSION])", what, kid);
	return 1;
}

static int lookup_alg(const char *name, enum wrap_alg *alg)
{
	for (size_t i = 0; i < sizeof wrap_algs / sizeof wrap_algs[0]; i++)
		if (strcmp(name, wrap_algs[i].name) == 0) {
			*alg = wrap_algs[i].alg;
			return 0;
		}
	return -1;
}

/* A string member into buf: 1 when present, 0 when absent, -1 when present but not a string that
 * fits. */
static int opt_string(const struct json *j, int tok, char *buf, size_t size)
{
	if (tok < 0)
		return 0;
	return json_string_buf(j, tok, buf, size) == 0 ? 1 : -1;
}

static int parse_key_hsm(const char *text, size_t len, struct released_key *rk, char *hdr_enc,
			 size_t hdr_enc_size, struct err *e)
{
	size_t raw_len = 0;
	unsigned char *raw = b64_decode_alloc(text, len, B64_URL, &raw_len);
	if (!raw)
		return err_set(e, EXIT_CRYPTO, "release response: response.key.key.key_hsm is not "
			       "base64url");
	struct json k;
	int rc = -1;
	if (json_parse(&k, (const char *)raw, raw_len, KEY_HSM_MAX_TOKENS, e) != 0) {
		e->code = EXIT_CRYPTO;
		err_wrap(e, "release response: key_hsm");
		free(raw);
		return -1;
	}
	if (json_type(&k, 0) != JSON_OBJECT) {
		err_set(e, EXIT_CRYPTO, "release response: key_hsm is not a JSON object");
		goto out;
	}
	int h = json_member(&k, 0, "header");
	if (h >= 0 && json_type(&k, h) != JSON_OBJECT) {
		err_set(e, EXIT_CRYPTO, "release response: key_hsm.header is not an object");
		goto out;
	}
	if (h >= 0 && opt_string(&k, json_member(&k, h, "enc"), hdr_enc, hdr_enc_size) < 0) {
		err_set(e, EXIT_CRYPTO, "release response: key_hsm.header.enc is not a known algorithm");
		goto out;
	}
	char alg[16];
	int has_alg = opt_string(&k, h >= 0 ? json_member(&k, h, "alg") : -1, alg, sizeof alg);
	if (has_alg < 0 || (has_alg == 1 && strcmp(alg, "dir") != 0)) {
		err_set(e, EXIT_CRYPTO, "release response: key_hsm.header.alg is not \"dir\"");
		goto out;
	}
	int c = json_member(&k, 0, "ciphertext");
	size_t cl = 0;
	const char *craw = json_raw(&k, c, &cl);
	if (json_type(&k, c) != JSON_STRING || cl == 0) {
		err_set(e, EXIT_CRYPTO, "release response: key_hsm has no ciphertext");
		goto out;
	}
	if (cl > CIPHERTEXT_MAX * 2) {
		err_set(e, EXIT_CRYPTO, "release response: key_hsm.ciphertext is implausibly long");
		goto out;
	}
	rk->ciphertext = b64_decode_alloc(craw, cl, B64_URL, &rk->ciphertext_len);
	if (!rk->ciphertext) {
		err_set(e, EXIT_CRYPTO, "release response: key_hsm.ciphertext is not base64url");
		goto out;
	}
	rc = 0;
out:
	json_free(&k);
	free(raw);
	return rc;
}

int release_parse(const char *payload, size_t len, struct released_key *rk, struct err *e)
{
	memset(rk, 0, sizeof *rk);
	struct json j;
	if (json_parse(&j, payload, len, RELEASE_MAX_TOKENS, e) != 0) {
		e->code = EXIT_CRYPTO;
		return err_wrap(e, "release response: payload");
	}
	int rc = -1;
	char req_enc[32] = "", hdr_enc[32] = "", kid[1024] = "";
	int key = json_get(&j, 0, "response.key.key");
	int req = json_member(&j, 0, "request");
	if (json_type(&j, 0) != JSON_OBJECT || json_type(&j, key) != JSON_OBJECT) {
		err_set(e, EXIT_CRYPTO, "release response: the payload has no response.key.key object");
		goto out;
	}
	if (req >= 0 && json_type(&j, req) != JSON_OBJECT) {
		err_set(e, EXIT_CRYPTO, "release response: request is not an object");
		goto out;
	}
	if (req >= 0 && opt_string(&j, json_member(&j, req, "enc"), req_enc, sizeof req_enc) < 0) {
		err_set(e, EXIT_CRYPTO, "release response: request.enc is not a known algorithm");
		goto out;
	}
	if (req >= 0 && opt_string(&j, json_member(&j, req, "kid"), kid, sizeof kid) < 0) {
		err_set(e, EXIT_CRYPTO, "release response: request.kid is not a usable URL");
		goto out;
	}
	if (json_string_buf(&j, json_member(&j, key, "kty"), rk->kty, sizeof rk->kty) != 0) {
		err_set(e, EXIT_CRYPTO, "release response: response.key.key.kty is missing or unknown");
		goto out;
	}
	if (opt_string(&j, json_member(&j, key, "kid"), rk->kid, sizeof rk->kid) < 0) {
		err_set(e, EXIT_CRYPTO, "release response: response.key.key.kid is not a string");
		goto out;
	}
	/* the vault and key the response is for: the released key's kid, and request.kid, which must
	 * agree with it */
	struct key_ref asked, released;
	int has_asked = kid_ref(kid, "request.kid", &asked, e);
	int has_released = has_asked < 0 ? -1 : kid_ref(rk->kid, "response.key.key.kid", &released, e);
	if (has_asked < 0 || has_released < 0)
		goto out;
	if (has_asked && has_released) {
		if (strcmp(asked.host, released.host) != 0) {
			err_set(e, EXIT_CRYPTO, "release response: request.kid names the vault %s but the "
				"released key's kid names %s", asked.host, released.host);
			goto out;
		}
		if (strcasecmp(asked.name, released.name) != 0) {
			err_set(e, EXIT_CRYPTO, "release response: request.kid names the key %s but the "
				"released key's kid names %s", asked.name, released.name);
			goto out;
		}
		if (asked.version[0] && strcasecmp(asked.version, released.version) != 0) {
			err_set(e, EXIT_CRYPTO, "release response: request.kid names version %s of the key but "
				"the released key's kid names version %s", asked.version,
				released.version[0] ? released.version : "(none)");
			goto out;
		}
	}
	if (has_released)
		rk->key = released;
	else if (has_asked)
		rk->key = asked;
	snprintf(rk->host, sizeof rk->host, "%s", rk->key.host);
	int kh = json_member(&j, key, "key_hsm");
	size_t khl = 0;
	const char *khraw = json_raw(&j, kh, &khl);
	if (json_type(&j, kh) != JSON_STRING || khl == 0) {
		err_set(e, EXIT_CRYPTO, "release response: response.key.key has no key_hsm (the key was "
			"not released wrapped)");
		goto out;
	}
	if (parse_key_hsm(khraw, khl, rk, hdr_enc, sizeof hdr_enc, e) != 0)
		goto out;
	if (req_enc[0] && hdr_enc[0] && strcmp(req_enc, hdr_enc) != 0) {
		err_set(e, EXIT_CRYPTO, "release response: request.enc %s and key_hsm.header.enc %s "
			"disagree", req_enc, hdr_enc);
		goto out;
	}
	const char *enc = req_enc[0] ? req_enc : hdr_enc;
	if (!enc[0] || lookup_alg(enc, &rk->alg) != 0) {
		err_set(e, EXIT_CRYPTO, "release response: wrapping algorithm \"%s\" is not one of "
			"CKM_RSA_AES_KEY_WRAP, RSA_AES_KEY_WRAP_256, RSA_AES_KEY_WRAP_384", enc);
		goto out;
	}
	snprintf(rk->enc, sizeof rk->enc, "%s", enc);
	rc = 0;
out:
	json_free(&j);
	if (rc != 0)
		release_free(rk);
	return rc;
}

int aes_kwp_unwrap(const unsigned char *kek, size_t kek_len, const unsigned char *in, size_t in_len,
		   struct secbuf *out, struct err *e)
{
	const EVP_CIPHER *cipher = kek_len == 16 ? EVP_aes_128_wrap_pad()
				   : kek_len == 24 ? EVP_aes_192_wrap_pad()
				   : kek_len == 32 ? EVP_aes_256_wrap_pad() : NULL;
	if (!cipher)
		return err_set(e, EXIT_CRYPTO, "unwrapping the key: the AES key is %zu bytes, not 16, 24 "
			       "or 32", kek_len);
	if (in_len < 16 || in_len % 8 != 0 || in_len > CIPHERTEXT_MAX)
		return err_set(e, EXIT_CRYPTO, "unwrapping the key: the AES-KWP part is %zu bytes, not a "
			       "multiple of 8 of at least 16 (the ciphertext was truncated)", in_len);
	if (secbuf_alloc(out, in_len + 16) != 0)
		return err_set(e, EXIT_INTERNAL, "unwrapping the key: out of memory");
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int outl = 0, finl = 0, ok = 0;
	if (ctx) {
		EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
		ok = EVP_DecryptInit_ex(ctx, cipher, NULL, kek, NULL) == 1 &&
		     EVP_DecryptUpdate(ctx, out->data, &outl, in, (int)in_len) == 1 && outl > 0 &&
		     EVP_DecryptFinal_ex(ctx, out->data + outl, &finl) == 1;
	}
	EVP_CIPHER_CTX_free(ctx);
	ERR_clear_error();
	if (!ctx) {
		secbuf_free(out);
		return err_set(e, EXIT_INTERNAL, "unwrapping the key: out of memory");
	}
	if (!ok) {
		secbuf_free(out);
		return err_set(e, EXIT_CRYPTO, "unwrapping the key: the AES key wrap (RFC 5649) integrity "
			       "check failed (the wrapped key was altered)");
	}
	out->len = (size_t)outl + (size_t)finl;
	return 0;
}

int rsa_aes_unwrap(EVP_PKEY *priv, enum wrap_alg alg, const unsigned char *ct, size_t ct_len,
		   struct secbuf *out, struct err *e)
{
	const char *md = NULL;
	for (size_t i = 0; i < sizeof wrap_algs / sizeof wrap_algs[0]; i++)
		if (wrap_algs[i].alg == alg)
			md = wrap_algs[i].md;
	size_t k = (size_t)EVP_PKEY_get_size(priv);
	if (!md || k == 0)
		return err_set(e, EXIT_INTERNAL, "unwrapping the key: bad algorithm or key");
	if (ct_len < k + 16)
		return err_set(e, EXIT_CRYPTO, "unwrapping the key: the ciphertext is %zu bytes, shorter "
			       "than the %zu-byte RSA-wrapped AES key plus one AES-KWP block (it was "
			       "truncated)", ct_len, k);
	if ((ct_len - k) % 8 != 0)
		return err_set(e, EXIT_CRYPTO, "unwrapping the key: the AES-KWP part is %zu bytes, not a "
			       "multiple of 8 (the ciphertext was truncated)", ct_len - k);

	struct secbuf kek = {0};
	if (secbuf_alloc(&kek, k) != 0)
		return err_set(e, EXIT_INTERNAL, "unwrapping the key: out of memory");
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	size_t kek_len = kek.cap;
	int ok = ctx && EVP_PKEY_decrypt_init(ctx) == 1 &&
		 EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
		 EVP_PKEY_CTX_set_rsa_oaep_md_name(ctx, md, NULL) == 1 &&
		 EVP_PKEY_CTX_set_rsa_mgf1_md_name(ctx, md, NULL) == 1;
	int decrypted = ok && EVP_PKEY_decrypt(ctx, kek.data, &kek_len, ct, k) == 1;
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	if (!ok) {
		secbuf_free(&kek);
		return err_set(e, EXIT_INTERNAL, "unwrapping the key: cannot set up RSA-OAEP-%s", md);
	}
	if (!decrypted) {
		secbuf_free(&kek);
		return err_set(e, EXIT_CRYPTO, "unwrapping the key: RSA-OAEP (%s) decryption of the AES "
			       "key failed (the key was wrapped for another wrapping key: is --private the "
			       "key whose public half went into the attestation?)", md);
	}
	kek.len = kek_len;
	int rc = aes_kwp_unwrap(kek.data, kek.len, ct + k, ct_len - k, out, e);
	secbuf_free(&kek);
	return rc;
}

int filesystem_key(const char *kty, const struct secbuf *material, const unsigned char *salt,
		   size_t salt_len, const char *label, unsigned char out[FS_KEY_LEN], struct err *e)
{
	if (strcmp(kty, "oct") == 0 || strcmp(kty, "oct-HSM") == 0) {
		if (material->len != FS_KEY_LEN)
			return err_set(e, EXIT_CRYPTO, "the released %s key is %zu bytes; a filesystem key "
				       "must be %d bytes (import a 256-bit key)", kty, material->len,
				       FS_KEY_LEN);
		memcpy(out, material->data, FS_KEY_LEN);
		return 0;
	}
	if (strcmp(kty, "RSA") == 0 || strcmp(kty, "RSA-HSM") == 0) {
		const unsigned char *p = material->data;
		PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)material->len);
		int whole = p8 && p == material->data + material->len;
		EVP_PKEY *pkey = whole ? EVP_PKCS82PKEY(p8) : NULL;
		PKCS8_PRIV_KEY_INFO_free(p8);
		ERR_clear_error();
		if (!pkey || !EVP_PKEY_is_a(pkey, "RSA")) {
			EVP_PKEY_free(pkey);
			return err_set(e, EXIT_CRYPTO, "the released %s key is not a PKCS#8 RSA private key",
				       kty);
		}
		int rc = rsakey_derive(pkey, salt, salt_len, label, out, e);
		EVP_PKEY_free(pkey);
		return rc;
	}
	if (strcmp(kty, "EC") == 0 || strcmp(kty, "EC-HSM") == 0)
		return err_set(e, EXIT_CRYPTO, "the released key is an %s key: a filesystem key comes from "
			       "an oct-HSM or RSA-HSM key (import one of those)", kty);
	return err_set(e, EXIT_CRYPTO, "the released key has type \"%s\", not oct-HSM or RSA-HSM", kty);
}
