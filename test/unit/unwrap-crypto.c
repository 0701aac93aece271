/* encfs-unwrap's pieces: AES-KWP against RFC 5649's vectors, RSA-OAEP + AES-KWP for each algorithm,
 * the RFC 7638 thumbprint, strict parsing of the JWS and its payload, the filesystem key. */
#include "encode.h"
#include "jws.h"
#include "keygen.h"
#include "release.h"
#include "rsakey.h"
#include "secmem.h"
#include "tap.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

static unsigned char *unhex(const char *h, size_t *n)
{
	static unsigned char buf[8][512];
	static int next;
	unsigned char *b = buf[next++ % 8];
	if (hex_decode(h, strlen(h), b, 512, n) != 0)
		abort();
	return b;
}

static void test_kwp(void)
{
	/* RFC 5649 section 6: a 192-bit KEK, a 20-octet and a 7-octet key */
	size_t kl, wl, pl;
	const unsigned char *kek = unhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8", &kl);
	const unsigned char *w = unhex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a", &wl);
	const unsigned char *p = unhex("c37b7e6492584340bed12207808941155068f738", &pl);
	struct secbuf out = {0};
	struct err e = {0};
	is_int(aes_kwp_unwrap(kek, kl, w, wl, &out, &e), 0, "RFC 5649 vector 1 unwraps");
	ok(out.len == pl && memcmp(out.data, p, pl) == 0, "to the 20-octet key");
	secbuf_free(&out);
	w = unhex("afbeb0f07dfbf5419200f2ccb50bb24f", &wl);
	p = unhex("466f7250617369", &pl);
	is_int(aes_kwp_unwrap(kek, kl, w, wl, &out, &e), 0, "RFC 5649 vector 2 (one block) unwraps");
	ok(out.len == pl && memcmp(out.data, p, pl) == 0, "to the 7-octet key");
	secbuf_free(&out);

	unsigned char bad[32];
	w = unhex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a", &wl);
	for (size_t i = 0; i < wl; i += 7) {
		memcpy(bad, w, wl);
		bad[i] ^= 0x10;
		if (aes_kwp_unwrap(kek, kl, bad, wl, &out, &e) == 0) {
			ok(0, "a flipped bit in byte %zu is caught", i);
			secbuf_free(&out);
			return;
		}
	}
	ok(1, "a flipped bit anywhere is caught by the integrity check");
	like(e.msg, "integrity check failed", "with the integrity message");
	is_int(e.code, EXIT_CRYPTO, "exit code crypto");
	is_int(aes_kwp_unwrap(kek, kl, w, 20, &out, &e), -1, "a length not a multiple of 8 is refused");
	like(e.msg, "not a multiple of 8", "as truncated");
	is_int(aes_kwp_unwrap(kek, kl, w, 8, &out, &e), -1, "one block is too short");
	is_int(aes_kwp_unwrap(kek, 20, w, wl, &out, &e), -1, "a 20-byte AES key is refused");
}

/* ciphertext = RSA-OAEP(md)(kek) || AES-KWP(kek, key), made here with OpenSSL's encryption side */
static size_t wrap_for(EVP_PKEY *pub, const char *md, const unsigned char *key, size_t key_len,
		       unsigned char *out)
{
	unsigned char kek[32];
	RAND_bytes(kek, sizeof kek);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
	size_t n = 512;
	if (!ctx || EVP_PKEY_encrypt_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md_name(ctx, md, NULL) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md_name(ctx, md, NULL) != 1 ||
	    EVP_PKEY_encrypt(ctx, out, &n, kek, sizeof kek) != 1)
		abort();
	EVP_PKEY_CTX_free(ctx);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int l1 = 0, l2 = 0;
	EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_EncryptInit_ex(c, EVP_aes_256_wrap_pad(), NULL, kek, NULL) != 1 ||
	    EVP_EncryptUpdate(c, out + n, &l1, key, (int)key_len) != 1 ||
	    EVP_EncryptFinal_ex(c, out + n + l1, &l2) != 1)
		abort();
	EVP_CIPHER_CTX_free(c);
	return n + (size_t)l1 + (size_t)l2;
}

static void test_rsa_aes(void)
{
	EVP_PKEY *priv = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	unsigned char key[32], ct[1024];
	RAND_bytes(key, sizeof key);
	static const struct { enum wrap_alg alg; const char *md; } cases[] = {
		{WRAP_CKM_RSA_AES_KEY_WRAP, "SHA1"},
		{WRAP_RSA_AES_KEY_WRAP_256, "SHA256"},
		{WRAP_RSA_AES_KEY_WRAP_384, "SHA384"},
	};
	struct err e = {0};
	for (size_t i = 0; i < 3; i++) {
		size_t n = wrap_for(priv, cases[i].md, key, sizeof key, ct);
		struct secbuf out = {0};
		int rc = rsa_aes_unwrap(priv, cases[i].alg, ct, n, &out, &e);
		ok(rc == 0 && out.len == 32 && memcmp(out.data, key, 32) == 0,
		   "RSA-OAEP-%s + AES-KWP round trip", cases[i].md);
		secbuf_free(&out);
		/* the wrong hash for the OAEP part fails there */
		rc = rsa_aes_unwrap(priv, cases[(i + 1) % 3].alg, ct, n, &out, &e);
		ok(rc != 0 && strstr(e.msg, "RSA-OAEP"), "OAEP with another hash than %s is refused",
		   cases[i].md);
		rc = rsa_aes_unwrap(other, cases[i].alg, ct, n, &out, &e);
		ok(rc != 0 && strstr(e.msg, "wrapped for another wrapping key"),
		   "another private key is refused (%s)", cases[i].md);
	}
	size_t n = wrap_for(priv, "SHA1", key, sizeof key, ct);
	struct secbuf out = {0};
	is_int(rsa_aes_unwrap(priv, WRAP_CKM_RSA_AES_KEY_WRAP, ct, 200, &out, &e), -1, "200 bytes is too short");
	like(e.msg, "shorter than the 256-byte RSA-wrapped AES key", "and says it was truncated");
	is_int(rsa_aes_unwrap(priv, WRAP_CKM_RSA_AES_KEY_WRAP, ct, n - 3, &out, &e), -1,
	       "a ciphertext cut by 3 bytes is refused");
	like(e.msg, "not a multiple of 8", "as misaligned");
	is_int(rsa_aes_unwrap(priv, WRAP_CKM_RSA_AES_KEY_WRAP, ct, n - 8, &out, &e), -1,
	       "a ciphertext cut by one block is refused");
	like(e.msg, "integrity check failed", "by the AES-KWP integrity check");
	EVP_PKEY_free(priv);
	EVP_PKEY_free(other);
}

static void test_thumbprint(void)
{
	/* RFC 7638 section 3.1 */
	char tp[44];
	jwk_thumbprint_rsa("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
			   "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YG"
			   "jQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdk"
			   "t-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
			   "AQAB", tp);
	is_str(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", "RFC 7638 example thumbprint");
}

static void test_known_vault_host(void)
{
	ok(known_vault_host("a.vault.azure.net") && known_vault_host("b.managedhsm.azure.net") &&
	   known_vault_host("c.vault.usgovcloudapi.net"), "public vault host names are known");
	ok(!known_vault_host("vault.azure.net.evil.com") && !known_vault_host("evilvault.azure.net") &&
	   !known_vault_host(".vault.azure.net"), "look-alikes are not");
}

static char *payload_with(const char *req_enc, const char *hdr_enc, const char *hdr_alg, const char *kty,
			  const char *ct_b64)
{
	static char p[4096];
	char kh[1024], inner[900];
	snprintf(inner, sizeof inner, "{\"schema_version\":\"1.0\",\"header\":{\"kid\":\"w\"%s%s%s%s%s%s},"
		 "\"ciphertext\":\"%s\"}", hdr_alg ? ",\"alg\":\"" : "", hdr_alg ? hdr_alg : "",
		 hdr_alg ? "\"" : "", hdr_enc ? ",\"enc\":\"" : "", hdr_enc ? hdr_enc : "",
		 hdr_enc ? "\"" : "", ct_b64);
	char *b = b64_encode(inner, strlen(inner), B64_URL, 0);
	snprintf(kh, sizeof kh, "%s", b);
	free(b);
	snprintf(p, sizeof p, "{\"request\":{\"api-version\":\"7.4\"%s%s%s,\"kid\":\"https://v.vault.azure.net:443/"
		 "keys/k\"},\"response\":{\"key\":{\"key\":{\"kid\":\"https://v.vault.azure.net/keys/k/1\","
		 "\"kty\":\"%s\",\"key_ops\":[],\"key_hsm\":\"%s\"}}}}", req_enc ? ",\"enc\":\"" : "",
		 req_enc ? req_enc : "", req_enc ? "\"" : "", kty, kh);
	return p;
}

static void test_payload(void)
{
	struct released_key rk;
	struct err e = {0};
	char *p = payload_with("RSA_AES_KEY_WRAP_256", "RSA_AES_KEY_WRAP_256", "dir", "oct-HSM", "AAECAw");
	is_int(release_parse(p, strlen(p), &rk, &e), 0, "a release payload parses");
	ok(rk.alg == WRAP_RSA_AES_KEY_WRAP_256 && strcmp(rk.kty, "oct-HSM") == 0 && rk.ciphertext_len == 4 &&
	   memcmp(rk.ciphertext, "\0\1\2\3", 4) == 0 && strcmp(rk.host, "v.vault.azure.net") == 0,
	   "algorithm, key type, ciphertext and vault host are read");
	release_free(&rk);
	{
		/* the vault and key the response is for, from request.kid and the released key's kid */
		p = payload_with("RSA_AES_KEY_WRAP_256", NULL, NULL, "oct-HSM", "AAECAw");
		ok(release_parse(p, strlen(p), &rk, &e) == 0 && strcmp(rk.key.host, "v.vault.azure.net") == 0 &&
		   strcmp(rk.key.name, "k") == 0 && strcmp(rk.key.version, "1") == 0,
		   "the released key: vault v.vault.azure.net, name k, version 1");
		release_free(&rk);
		static const struct { const char *from, *to, *why; } kids[] = {
			{"https://v.vault.azure.net/keys/k/1", "https://w.vault.azure.net/keys/k/1",
			 "request.kid names the vault v.vault.azure.net but the released key's kid names w.vault.azure.net"},
			{"https://v.vault.azure.net/keys/k/1", "https://v.vault.azure.net/keys/j/1",
			 "request.kid names the key k but the released key's kid names j"},
			{"https://v.vault.azure.net:443/keys/k\"", "https://v.vault.azure.net:443/keys/k/2\"",
			 "request.kid names version 2 of the key but the released key's kid names version 1"},
			{"https://v.vault.azure.net/keys/k/1", "https://v.vault.azure.net/secrets/k/1",
			 "response.key.key.kid \"https://v.vault.azure.net/secrets/k/1\" is not a key identifier"},
			{"https://v.vault.azure.net/keys/k/1", "https://v.vault.azure.net/keys/k/1/x",
			 "is not a key identifier"},
			{"https://v.vault.azure.net/keys/k/1", "https://v.vault.azure.net/keys/k?1",
			 "is not a key identifier"},
		};
		for (size_t i = 0; i < sizeof kids / sizeof kids[0]; i++) {
			char q[4096];
			p = payload_with("RSA_AES_KEY_WRAP_256", NULL, NULL, "oct-HSM", "AAECAw");
			const char *at = strstr(p, kids[i].from);
			if (!at)
				abort();
			snprintf(q, sizeof q, "%.*s%s%s", (int)(at - p), p, kids[i].to, at + strlen(kids[i].from));
			int rc = release_parse(q, strlen(q), &rk, &e);
			ok(rc == -1 && e.code == EXIT_CRYPTO && strstr(e.msg, kids[i].why), "kid %s refused: %s",
			   kids[i].to, e.msg);
		}
	}
	p = payload_with(NULL, "RSA_AES_KEY_WRAP_384", NULL, "RSA-HSM", "AAEC");
	ok(release_parse(p, strlen(p), &rk, &e) == 0 && rk.alg == WRAP_RSA_AES_KEY_WRAP_384,
	   "key_hsm.header.enc serves when request.enc is absent");
	release_free(&rk);
	p = payload_with("CKM_RSA_AES_KEY_WRAP", NULL, NULL, "oct-HSM", "AAEC");
	ok(release_parse(p, strlen(p), &rk, &e) == 0 && rk.alg == WRAP_CKM_RSA_AES_KEY_WRAP,
	   "and request.enc when key_hsm's header has none");
	release_free(&rk);
	p = payload_with("CKM_RSA_AES_KEY_WRAP", "RSA_AES_KEY_WRAP_256", NULL, "oct-HSM", "AAEC");
	is_int(release_parse(p, strlen(p), &rk, &e), -1, "request.enc and header.enc disagreeing is refused");
	like(e.msg, "disagree", "with a message");
	p = payload_with("RSA_OAEP", NULL, NULL, "oct-HSM", "AAEC");
	is_int(release_parse(p, strlen(p), &rk, &e), -1, "an unknown algorithm is refused");
	like(e.msg, "\"RSA_OAEP\" is not one of", "and named");
	p = payload_with(NULL, NULL, NULL, "oct-HSM", "AAEC");
	is_int(release_parse(p, strlen(p), &rk, &e), -1, "no algorithm at all is refused");
	p = payload_with("CKM_RSA_AES_KEY_WRAP", NULL, "RSA-OAEP", "oct-HSM", "AAEC");
	is_int(release_parse(p, strlen(p), &rk, &e), -1, "key_hsm.header.alg other than dir is refused");
	p = payload_with("CKM_RSA_AES_KEY_WRAP", NULL, NULL, "oct-HSM", "AA*C");
	is_int(release_parse(p, strlen(p), &rk, &e), -1, "a ciphertext that is not base64url is refused");
	{
		char kh_json[] = "{\"header\":{\"enc\":\"CKM_RSA_AES_KEY_WRAP\"},\"ciphertext\":\"AAEC\"}";
		char *kh = b64_encode(kh_json, strlen(kh_json), B64_URL, 0);
		char q[1024];
		snprintf(q, sizeof q, "{\"request\":{\"kid\":\"k\"},\"response\":{\"key\":{\"key\":{\"kid\":"
			 "\"https://W.managedhsm.azure.net/keys/k/1\",\"kty\":\"oct-HSM\",\"key_hsm\":\"%s\"}}}}", kh);
		ok(release_parse(q, strlen(q), &rk, &e) == 0 && strcmp(rk.host, "w.managedhsm.azure.net") == 0,
		   "a request.kid that is not a URL: the key's own kid names the vault");
		release_free(&rk);
		snprintf(q, sizeof q, "{\"response\":{\"key\":{\"key\":{\"kty\":\"oct-HSM\",\"key_hsm\":\"%s\"}}}}", kh);
		ok(release_parse(q, strlen(q), &rk, &e) == 0 && rk.host[0] == '\0', "no key URL at all: no vault named");
		release_free(&rk);
		free(kh);
	}
	static const char *const bad[] = {
		"[]", "{\"response\":{}}", "{\"response\":{\"key\":{\"key\":{\"kty\":\"oct\"}}}}",
		"{\"response\":{\"key\":{\"key\":{\"kty\":\"oct\",\"key_hsm\":\"e30\"}}}}",
		"{\"response\":{\"key\":{\"key\":{\"kty\":\"oct\",\"key_hsm\":5}}}}",
		"{\"request\":[],\"response\":{\"key\":{\"key\":{\"kty\":\"oct\",\"key_hsm\":\"e30\"}}}}",
		"{\"a\":1,\"a\":2}", "{\"response\":{\"key\":{\"key\":{\"kty\":\"oct\",\"key_hsm\":\"x\"}}}} ",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = release_parse(bad[i], strlen(bad[i]), &rk, &e);
		ok(rc == -1 && e.code == EXIT_CRYPTO, "bad payload %zu refused: %s", i, e.msg);
	}
}

static void test_jws_parse(void)
{
	struct jws j;
	struct err e = {0};
	static const struct { const char *header, *why; } cases[] = {
		{"{\"alg\":\"none\",\"x5c\":[\"AA==\"]}", "JWS alg \"none\" is not accepted"},
		{"{\"alg\":\"HS256\",\"x5c\":[\"AA==\"]}", "JWS alg \"HS256\" is not accepted"},
		{"{\"alg\":\"RS256\"}", "has no x5c certificate chain"},
		{"{\"alg\":\"RS256\",\"x5c\":[]}", "has no x5c certificate chain"},
		{"{\"alg\":\"RS256\",\"x5c\":[\"AAAA\"]}", "x5c[0] is not a DER X.509 certificate"},
		{"{\"alg\":\"RS256\",\"x5c\":[\"!!\"]}", "x5c[0] is not base64"},
		{"{\"alg\":\"RS256\",\"crit\":[\"b64\"],\"x5c\":[\"AA==\"]}", "\"crit\""},
		{"{\"alg\":\"RS256\",\"alg\":\"none\"}", "duplicate"},
		{"[1]", "not a JSON object"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *h = b64_encode(cases[i].header, strlen(cases[i].header), B64_URL, 0);
		char text[512];
		snprintf(text, sizeof text, "%s.e30.AAAA", h);
		free(h);
		int rc = jws_parse(&j, text, strlen(text), &e);
		jws_free(&j);
		ok(rc == -1 && strstr(e.msg, cases[i].why), "header %s: %s", cases[i].header, e.msg);
	}
	static const char *const shapes[] = {"", "a.b", "a.b.c.d", "..", "eyJhbGciOiJSUzI1NiJ9..AAAA",
					     "eyJhbGciOiJSUzI1NiJ9.e30=.AAAA", "eyJhbGciOiJSUzI1NiJ9=.e30.AAAA"};
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		int rc = jws_parse(&j, shapes[i], strlen(shapes[i]), &e);
		jws_free(&j);
		ok(rc == -1 && e.code == EXIT_CRYPTO, "shape \"%s\" refused: %s", shapes[i], e.msg);
	}
}

static void test_filesystem_key(void)
{
	struct secbuf m = {0};
	unsigned char out[FS_KEY_LEN];
	struct err e = {0};
	secbuf_alloc(&m, 4096);
	memset(m.data, 0x5a, 32);
	m.len = 32;
	ok(filesystem_key("oct-HSM", &m, NULL, 0, NULL, out, &e) == 0 && memcmp(out, m.data, 32) == 0,
	   "oct-HSM: the key bytes as they are");
	m.len = 16;
	is_int(filesystem_key("oct", &m, NULL, 0, NULL, out, &e), -1, "a 16-byte oct key is refused");
	like(e.msg, "must be 32 bytes", "a filesystem key is 32 bytes");
	is_int(filesystem_key("EC-HSM", &m, NULL, 0, NULL, out, &e), -1, "EC-HSM is refused");
	like(e.msg, "the released key is an EC-HSM key: a filesystem key comes from an oct-HSM or RSA-HSM key",
	     "with a clear message");
	is_int(filesystem_key("RSA-HSM", &m, NULL, 0, NULL, out, &e), -1, "RSA-HSM that is not PKCS#8 is refused");
	is_int(filesystem_key("XYZ", &m, NULL, 0, NULL, out, &e), -1, "an unknown key type is refused");

	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	unsigned char *der = NULL;
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k);
	int dl = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
	PKCS8_PRIV_KEY_INFO_free(p8);
	memcpy(m.data, der, (size_t)dl);
	m.len = (size_t)dl;
	OPENSSL_clear_free(der, (size_t)dl);
	unsigned char want[32], want2[32], salt[3] = {1, 2, 3};
	ok(rsakey_derive(k, salt, 3, "L", want, &e) == 0 &&
	   filesystem_key("RSA-HSM", &m, salt, 3, "L", out, &e) == 0 && memcmp(out, want, 32) == 0,
	   "RSA-HSM (PKCS#8): the derived key");
	ok(rsakey_derive(k, NULL, 0, NULL, want, &e) == 0 &&
	   rsakey_derive(k, NULL, 0, RSAKEY_DEFAULT_LABEL, want2, &e) == 0 && memcmp(want, want2, 32) == 0,
	   "no label is the default label \"Symmetric Encryption Key\"");
	ok(rsakey_derive(k, salt, 3, NULL, want2, &e) == 0 && memcmp(want, want2, 32) != 0,
	   "the salt changes the key");
	m.len -= 1;
	is_int(filesystem_key("RSA", &m, NULL, 0, NULL, out, &e), -1, "a truncated PKCS#8 key is refused");
	EVP_PKEY_free(k);
	secbuf_free(&m);
}

/* A key whose private exponent D is 2031 bits: 254 bytes as minimal big-endian, where a fixed-width
 * (modulus-sized) encoding would have two leading zero bytes.  The expected values are upstream's
 * derivation, hkdf.New(sha256.New, D.Bytes(), salt, label), computed independently (Python
 * cryptography's HKDF on int.to_bytes of D's own length). */
static const char kat_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEuwIBADANBgkqhkiG9w0BAQEFAASCBKUwggShAgEAAoIBAQDbASEfSwHEKQJb\n"
	"p/5xjXPLc1h6B2q8AmBcF20xMHzCbp3hQb1p4GTGojWStRVPl5Pu8sa5Nz9SqsWA\n"
	"QgEny1+kASB0iw2tq1m6xY/nfNLrd+Ga1PAUwEHy84Rjh4S/szxldkUOxPMwJqI9\n"
	"gJbmONa6soD2k0wI3jZEWxqiQiiZcIHq2B4mSb3LfPs9aAYwQR8cD6ZL09VIUOhz\n"
	"7qiAb/tEQ+BPIs4JTgHcmhpRwBjay/hPiZ3xec9U8ewT1NA0KuHPOex+iQ03ZPp9\n"
	"T1dB6ow7HMD7dIn9JVGLTkw1SVeETIEtnmCuispFK/T5EO9jtmuX8FyDWGNV4VrS\n"
	"qVCu3C8lAgMBAAECgf5Xyle66K/rw+XuzrWlJLKJBHzzS7Lqgl+hnn8O1Lv/1Wkv\n"
	"sWydzTBrPCYMUHdH5gTpOAtS7Bj9vvjUWWClfkiOXluU4cY4yh8CxBUs1R3yiOpd\n"
	"AiCLnBdoZTtGD0uGvrQ96RMWLNEe1A7lvxNy4KPia1+LGgURb7AgjpRpCjJSHV0/\n"
	"s1WeWtnQ3f37kTYX2+N36cB0MOJQJIqy4w2HroYILvGvVd0w/DKamV4wD4tDvary\n"
	"HI9YQRxD5wYkvRn5P9e6t8Kcloo1vAwzbXquqvE+lnWqW4fDQa1UuRK6lK/m7iRC\n"
	"o5NmR+LwT4IzAOSYKijnciOa/tPvH1AZ29bfkQKBgQD2l5DFFwZuq1W+vipbTbQB\n"
	"xmxVsHoomAI5jQsAnzXISD2VYxh2u0GzArBdMjmHGPmu1lJ/16rHpBRxTuw6x91M\n"
	"b94t+FAFnJ108KOfMgg1HhqUXC66niisuLUSR5RE9GD9ayXOd3tT0wGt0UOIdBEx\n"
	"Q/EkN6Ne/BpivTiPzjPekQKBgQDjXB5mgjDWb44O5kUI+mcVF6H02roDOwe3GxU1\n"
	"/DeXNia7+4ia4j6JUOVx9jB+/poDTJFINB34haA/lYzn8QShCl2WkGvDBxhTB65Y\n"
	"KNzq8VjrOBoG+slf9Kl7BZ0+WxR694FMQjyJrn2zJosqyKtjVjwaC8lksRU/40RU\n"
	"zkU5VQKBgB4RNwbBGvitjYP3fgSqAdPhlN4R6aM/fa30w62svAsSu+eWMKpxhL5G\n"
	"CqkicZ9GbVNjMKYD7v/uwstaGzXDnvkt/sJOL7uvcAeNO/YyTIvlgsoqP0xj8oO0\n"
	"9ecnsS2DOrxLr01whiofZWoDRR/DP0FpjmKjIhl31ePKPLZUJ0DxAoGBAIDRVLgn\n"
	"05vroMV4Wmz30yf0N+MPeo0SCREJ2z63JJgcKl4f6go3Xc9XcmjbYCbUAlcULsyG\n"
	"GuUQcPcVuLxBpqnHwbbpJOVfQ7zngTSaEnFbRVIgez6xIR+o882sJKeL21LAoRWg\n"
	"AcTQhI/YqskW4WRrG6p2Oyk93BhSoAicxkPxAoGBAMLOSaXcS9Iroads3s/CSSvh\n"
	"9E5RNhN32hTxpppmXroQ/yWIU6iM3um8FP3aU28kB4GtsWnbmKO6L8NET9zSDJO5\n"
	"Vlu8cB8sqfi2+GQ6/sc7oqufSJCXExQvqP9d8EO/SXQzurpx/tfdrLlFJvfwx4BO\n"
	"u+JKmW2M8Rp9xGtnF89C\n"
	"-----END PRIVATE KEY-----\n";

static void test_hkdf_kat(void)
{
	BIO *bio = BIO_new_mem_buf(kat_pem, -1);
	EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!k)
		abort();
	unsigned char out[32], salt[4] = {0, 1, 2, 3};
	char hex[65];
	struct err e = {0};
	ok(rsakey_derive(k, salt, sizeof salt, "encfs KAT", out, &e) == 0, "HKDF of the short-D key");
	hex_encode(out, sizeof out, hex);
	is_str(hex, "35a2ada4fae125e0b64d2bf650d34677ce2e9991807fdc2ca8a262364cb4012f",
	       "salt 00010203, label \"encfs KAT\": upstream's bytes (D as 254 minimal bytes)");
	ok(rsakey_derive(k, NULL, 0, NULL, out, &e) == 0, "and with no salt and no label");
	hex_encode(out, sizeof out, hex);
	is_str(hex, "1aee7599e372e5f652d8472702544b179dca415bf08fd16ca157dc978fdf6535",
	       "HKDF's zero salt and \"Symmetric Encryption Key\", not the 256-byte padded D's "
	       "7709d803...");
	EVP_PKEY_free(k);
}

int main(void)
{
	secmem_init();
	test_kwp();
	test_rsa_aes();
	test_thumbprint();
	test_known_vault_host();
	test_payload();
	test_jws_parse();
	test_filesystem_key();
	test_hkdf_kat();
	return done_testing();
}
