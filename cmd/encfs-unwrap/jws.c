/* Compact JWS: parse, verify the signature with x5c[0], verify the x5c chain and host name. */
#include "jws.h"

#include "encode.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_MAX_TOKENS 256

static const struct {
	const char *name;
	const char *md;
	int pss;
} algs[] = {
	{"RS256", "SHA256", 0}, {"RS384", "SHA384", 0}, {"RS512", "SHA512", 0},
	{"PS256", "SHA256", 1}, {"PS384", "SHA384", 1}, {"PS512", "SHA512", 1},
};

void jws_free(struct jws *j)
{
	free(j->header);
	free(j->payload);
	free(j->sig);
	json_free(&j->hj);
	if (j->chain)
		sk_X509_pop_free(j->chain, X509_free);
	memset(j, 0, sizeof *j);
}

static int decode_part(const char *what, const char *s, size_t n, unsigned char **out, size_t *outlen,
		       struct err *e)
{
	if (n == 0)
		return err_set(e, EXIT_CRYPTO, "release response: the JWS %s is empty", what);
	/* RFC 7515 base64url has no padding: one encoding per value, so the unsigned signature part
	 * cannot be varied either */
	if (memchr(s, '=', n))
		return err_set(e, EXIT_CRYPTO, "release response: the JWS %s is not base64url without "
			       "padding (RFC 7515)", what);
	*out = b64_decode_alloc(s, n, B64_URL, outlen);
	if (!*out)
		return err_set(e, EXIT_CRYPTO, "release response: the JWS %s is not base64url", what);
	return 0;
}

/* The header's thumbprint member name (x5t#S256, x5t), when present, must be the digest md of the
 * leaf's DER. */
static int check_thumbprint(const struct jws *j, const char *name, const EVP_MD *md,
			    const unsigned char *der, size_t der_len, struct err *e)
{
	int t = json_member(&j->hj, 0, name);
	if (t < 0)
		return 0;
	unsigned char h[EVP_MAX_MD_SIZE], want[EVP_MAX_MD_SIZE];
	unsigned int hl = 0;
	size_t wl = 0, rl = 0;
	const char *raw = json_raw(&j->hj, t, &rl);
	if (EVP_Digest(der, der_len, h, &hl, md, NULL) != 1) {
		ERR_clear_error();
		return err_set(e, EXIT_INTERNAL, "release response: cannot hash x5c[0]");
	}
	if (json_type(&j->hj, t) != JSON_STRING || memchr(raw, '=', rl) ||
	    b64_decode(raw, rl, B64_URL, want, sizeof want, &wl) != 0 || wl != hl ||
	    sodium_memcmp(h, want, hl) != 0)
		return err_set(e, EXIT_CRYPTO, "release response: the JWS header's %s does not match x5c[0]",
			       name);
	return 0;
}

static int parse_x5c(struct jws *j, int arr, struct err *e)
{
	int n = json_size(&j->hj, arr);
	if (json_type(&j->hj, arr) != JSON_ARRAY || n < 1)
		return err_set(e, EXIT_CRYPTO, "release response: the JWS header has no x5c certificate "
			       "chain (a Key Vault release response always carries one)");
	if (n > JWS_MAX_CHAIN)
		return err_set(e, EXIT_CRYPTO, "release response: x5c has %d certificates, more than %d",
			       n, JWS_MAX_CHAIN);
	j->chain = sk_X509_new_null();
	if (!j->chain)
		return err_set(e, EXIT_INTERNAL, "release response: out of memory");
	for (int i = 0; i < n; i++) {
		int t = json_element(&j->hj, arr, i);
		size_t len = 0;
		(void)json_raw(&j->hj, t, &len);
		if (json_type(&j->hj, t) != JSON_STRING || len == 0 || len > JWS_MAX_CERT * 2)
			return err_set(e, EXIT_CRYPTO, "release response: x5c[%d] is not a certificate", i);
		/* decoded as JSON first: a serialiser may write the base64 "/" as "\/" */
		char *b64 = json_string(&j->hj, t);
		if (!b64)
			return err_set(e, EXIT_INTERNAL, "release response: out of memory");
		size_t der_len = 0;
		unsigned char *der = b64_decode_alloc(b64, strlen(b64), B64_STD, &der_len);
		free(b64);
		if (!der)
			return err_set(e, EXIT_CRYPTO, "release response: x5c[%d] is not base64", i);
		const unsigned char *p = der;
		X509 *cert = der_len <= JWS_MAX_CERT ? d2i_X509(NULL, &p, (long)der_len) : NULL;
		int whole = cert && p == der + der_len;
		/* x5t#S256 and x5t name the leaf: when present they must name this one */
		if (i == 0 && whole &&
		    (check_thumbprint(j, "x5t#S256", EVP_sha256(), der, der_len, e) != 0 ||
		     check_thumbprint(j, "x5t", EVP_sha1(), der, der_len, e) != 0)) {
			free(der);
			X509_free(cert);
			return -1;
		}
		free(der);
		if (!whole) {
			X509_free(cert);
			ERR_clear_error();
			return err_set(e, EXIT_CRYPTO, "release response: x5c[%d] is not a DER X.509 "
				       "certificate", i);
		}
		if (!sk_X509_push(j->chain, cert)) {
			X509_free(cert);
			return err_set(e, EXIT_INTERNAL, "release response: out of memory");
		}
	}
	return 0;
}

int jws_parse(struct jws *j, const char *text, size_t len, struct err *e)
{
	memset(j, 0, sizeof *j);
	j->text = text;
	j->len = len;
	if (len > JWS_MAX_TEXT)
		return err_set(e, EXIT_CRYPTO, "release response: %zu bytes, more than the %u allowed",
			       len, JWS_MAX_TEXT);
	const char *d1 = memchr(text, '.', len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - text)) : NULL;
	if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - text)))
		return err_set(e, EXIT_CRYPTO, "release response: not a compact JWS (three base64url "
			       "parts separated by dots)");
	size_t hl = (size_t)(d1 - text), pl = (size_t)(d2 - d1 - 1), sl = len - (size_t)(d2 + 1 - text);
	j->signed_len = (size_t)(d2 - text);
	unsigned char *h = NULL, *p = NULL;
	if (decode_part("header", text, hl, &h, &j->header_len, e) != 0)
		return -1;
	j->header = (char *)h;

	if (json_parse(&j->hj, j->header, j->header_len, HEADER_MAX_TOKENS, e) != 0) {
		e->code = EXIT_CRYPTO;
		return err_wrap(e, "release response: JWS header");
	}
	if (json_type(&j->hj, 0) != JSON_OBJECT)
		return err_set(e, EXIT_CRYPTO, "release response: the JWS header is not a JSON object");
	if (json_member(&j->hj, 0, "crit") >= 0)
		return err_set(e, EXIT_CRYPTO, "release response: the JWS header has \"crit\" extensions, "
			       "which this tool does not understand");
	char alg[16];
	if (json_string_buf(&j->hj, json_member(&j->hj, 0, "alg"), alg, sizeof alg) != 0)
		return err_set(e, EXIT_CRYPTO, "release response: the JWS header has no usable \"alg\"");
	int known = 0;
	for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
		if (strcmp(alg, algs[i].name) == 0)
			known = 1;
	if (!known)
		return err_set(e, EXIT_CRYPTO, "release response: JWS alg \"%s\" is not accepted (only "
			       "RS256, RS384, RS512, PS256, PS384, PS512)", alg);
	snprintf(j->alg, sizeof j->alg, "%s", alg);
	if (decode_part("payload", d1 + 1, pl, &p, &j->payload_len, e) != 0)
		return -1;
	j->payload = (char *)p;
	if (decode_part("signature", d2 + 1, sl, &j->sig, &j->sig_len, e) != 0)
		return -1;
	return parse_x5c(j, json_member(&j->hj, 0, "x5c"), e);
}

int jws_verify_signature(const struct jws *j, struct err *e)
{
	const char *md = NULL;
	int pss = 0;
	for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
		if (strcmp(j->alg, algs[i].name) == 0) {
			md = algs[i].md;
			pss = algs[i].pss;
		}
	X509 *leaf = sk_X509_value(j->chain, 0);
	EVP_PKEY *pub = leaf ? X509_get0_pubkey(leaf) : NULL;
	if (!md || !pub)
		return err_set(e, EXIT_CRYPTO, "release response: no signing certificate");
	if (!EVP_PKEY_is_a(pub, "RSA") || EVP_PKEY_get_bits(pub) < 2048)
		return err_set(e, EXIT_CRYPTO, "release response: x5c[0] holds a %d-bit %s key; %s needs "
			       "RSA of 2048 bits or more", EVP_PKEY_get_bits(pub),
			       EVP_PKEY_get0_type_name(pub), j->alg);
	if (j->sig_len != (size_t)EVP_PKEY_get_size(pub))
		return err_set(e, EXIT_CRYPTO, "release response: the JWS signature is %zu bytes, not the "
			       "%d of the x5c[0] key (the signature was altered)", j->sig_len,
			       EVP_PKEY_get_size(pub));
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ok = ctx && EVP_DigestVerifyInit_ex(ctx, &pctx, md, NULL, NULL, pub, NULL) == 1;
	if (ok && pss)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
	int verified = ok && EVP_DigestVerify(ctx, j->sig, j->sig_len, (const unsigned char *)j->text,
					      j->signed_len) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	if (!ok)
		return err_set(e, EXIT_INTERNAL, "release response: cannot set up %s verification", j->alg);
	if (!verified)
		return err_set(e, EXIT_CRYPTO, "release response: the JWS signature does not verify with "
			       "x5c[0] (the header or payload was altered, or it was not signed by that "
			       "certificate)");
	return 0;
}

X509_STORE *jws_trust_store(const char *ca_file, struct err *e)
{
	X509_STORE *store = X509_STORE_new();
	if (!store) {
		err_set(e, EXIT_INTERNAL, "trust store: out of memory");
		return NULL;
	}
	int ok = ca_file ? X509_STORE_load_file(store, ca_file) : X509_STORE_set_default_paths(store);
	ERR_clear_error();
	if (ok != 1) {
		X509_STORE_free(store);
		err_set(e, EXIT_CONFIG, "trust store: cannot load %s (check --cacert / ENCFS_CA_BUNDLE)",
			ca_file ? ca_file : "the system certificates");
		return NULL;
	}
	return store;
}

static int is_ip_literal(const char *host)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int jws_verify_chain(const struct jws *j, X509_STORE *store, const char *host, struct err *e)
{
	X509 *leaf = sk_X509_value(j->chain, 0);
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	if (!leaf || !untrusted || !ctx) {
		sk_X509_free(untrusted);
		X509_STORE_CTX_free(ctx);
		return err_set(e, EXIT_INTERNAL, "release response: out of memory");
	}
	for (int i = 1; i < sk_X509_num(j->chain); i++)
		if (!sk_X509_push(untrusted, sk_X509_value(j->chain, i))) {
			sk_X509_free(untrusted);
			X509_STORE_CTX_free(ctx);
			return err_set(e, EXIT_INTERNAL, "release response: out of memory");
		}
	int rc = 0;
	if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
		rc = err_set(e, EXIT_INTERNAL, "release response: cannot set up chain verification");
		goto out;
	}
	/* A vault signs with a TLS server certificate for its host name (upstream's Go check uses the
	 * default ExtKeyUsageServerAuth): a certificate only for clients, code or mail is not one. */
	if (X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER) != 1) {
		rc = err_set(e, EXIT_INTERNAL, "release response: cannot set up chain verification");
		goto out;
	}
	X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(ctx);
	int set = is_ip_literal(host) ? X509_VERIFY_PARAM_set1_ip_asc(vp, host)
				       : X509_VERIFY_PARAM_set1_host(vp, host, 0);
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (set != 1) {
		rc = err_set(e, EXIT_CONFIG, "release response: \"%s\" is not a usable host name", host);
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		int err = X509_STORE_CTX_get_error(ctx);
		char subject[256] = "";
		X509_NAME_oneline(X509_get_subject_name(leaf), subject, sizeof subject);
		X509 *at = X509_STORE_CTX_get_current_cert(ctx);
		char which[256] = "";
		X509_NAME_oneline(X509_get_subject_name(at ? at : leaf), which, sizeof which);
		if (err == X509_V_ERR_INVALID_PURPOSE)
			rc = err_set(e, EXIT_CRYPTO, "release response: the signing certificate (%s) is not a "
				     "server certificate: its extended key usage does not allow TLS server "
				     "authentication, which a vault's signing certificate has", which);
		else if (err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH)
			rc = err_set(e, EXIT_CRYPTO, "release response: the signing certificate (%s) is not "
				     "valid for the vault host %s (the response was signed for another "
				     "host; check --akv)", subject, host);
		else
			rc = err_set(e, EXIT_CRYPTO, "release response: the signing certificate chain does "
				     "not verify: %s (the response is not from a trusted vault; the trust "
				     "anchors come from --cacert, ENCFS_CA_BUNDLE or the system store)",
				     X509_verify_cert_error_string(err));
	}
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	return rc;
}
