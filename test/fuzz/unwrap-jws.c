/* libFuzzer target: what encfs-unwrap reads from the network: the release response as a compact
 * JWS (header, x5c chain, signature check set-up), its payload and key_hsm, the AES-KWP input, and
 * the unwrapped key material as each key type (PKCS#8 for RSA), endpoints and key references. */
#include "jws.h"
#include "release.h"
#include "secmem.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		if (sodium_init() < 0)
			abort();
		ready = 1;
	}
	struct err e;
	struct jws j;
	if (jws_parse(&j, (const char *)data, size, &e) == 0) {
		(void)jws_verify_signature(&j, &e);
		struct released_key rk;
		if (release_parse(j.payload, j.payload_len, &rk, &e) == 0)
			release_free(&rk);
	}
	jws_free(&j);

	struct released_key rk;
	if (release_parse((const char *)data, size, &rk, &e) == 0) {
		static const unsigned char kek[32] = {1, 2, 3};
		struct secbuf out = {0};
		if (aes_kwp_unwrap(kek, sizeof kek, rk.ciphertext, rk.ciphertext_len, &out, &e) == 0)
			secbuf_free(&out);
		release_free(&rk);
	}

	/* the bytes as unwrapped key material of each type */
	struct secbuf m = {0};
	if (secbuf_alloc(&m, size) == 0) {
		memcpy(m.data, data, size);
		m.len = size;
		static const char *const ktys[] = {"oct-HSM", "RSA-HSM", "EC-HSM", "x"};
		unsigned char key[FS_KEY_LEN];
		for (size_t i = 0; i < sizeof ktys / sizeof ktys[0]; i++)
			(void)filesystem_key(ktys[i], &m, data, size < 16 ? size : 16, "label", key, &e);
		secbuf_free(&m);
	}

	char host[256], text[600];
	size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
	memcpy(text, data, n);
	text[n] = '\0';
	if (endpoint_host(text, host, sizeof host) == 0)
		(void)known_vault_host(host);
	struct key_ref ref;
	(void)key_ref_parse(text, &ref);
	return 0;
}
