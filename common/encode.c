/* Base64 and hex on libsodium's constant-time codecs. */
#include "encode.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static int variant(enum b64_alphabet a, int padded)
{
	if (a == B64_URL)
		return padded ? sodium_base64_VARIANT_URLSAFE : sodium_base64_VARIANT_URLSAFE_NO_PADDING;
	return padded ? sodium_base64_VARIANT_ORIGINAL : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
}

char *b64_encode(const void *in, size_t len, enum b64_alphabet alphabet, int padded)
{
	int v = variant(alphabet, padded);
	size_t n = sodium_base64_encoded_len(len, v);
	char *out = malloc(n);
	if (!out)
		return NULL;
	sodium_bin2base64(out, n, in, len, v);
	return out;
}

size_t b64_decoded_max(size_t inlen) { return inlen / 4 * 3 + 3; }

int b64_decode(const char *in, size_t inlen, enum b64_alphabet alphabet, void *out, size_t outcap,
	       size_t *outlen)
{
	/* Padding present: exactly a multiple of 4 and the padded variant.  Absent: the unpadded
	 * variant, which rejects '=' and impossible lengths (4k+1). */
	int padded = inlen > 0 && in[inlen - 1] == '=';
	const char *end = NULL;
	size_t n = 0;
	if (padded && inlen % 4 != 0)
		return -1;
	if (sodium_base642bin(out, outcap, in, inlen, NULL, &n, &end, variant(alphabet, padded)) != 0)
		return -1;
	if (end != in + inlen)
		return -1;
	*outlen = n;
	return 0;
}

unsigned char *b64_decode_alloc(const char *in, size_t inlen, enum b64_alphabet alphabet,
				size_t *outlen)
{
	size_t cap = b64_decoded_max(inlen);
	unsigned char *out = malloc(cap + 1);
	if (!out)
		return NULL;
	if (b64_decode(in, inlen, alphabet, out, cap, outlen) != 0) {
		free(out);
		return NULL;
	}
	out[*outlen] = '\0';
	return out;
}

void hex_encode(const void *in, size_t len, char *out)
{
	sodium_bin2hex(out, 2 * len + 1, in, len);
}

int hex_decode(const char *in, size_t inlen, void *out, size_t outcap, size_t *outlen)
{
	const char *end = NULL;
	size_t n = 0;
	if (inlen % 2 != 0)
		return -1;
	if (sodium_hex2bin(out, outcap, in, inlen, NULL, &n, &end) != 0 || end != in + inlen)
		return -1;
	*outlen = n;
	return 0;
}

void key_check_value(const void *key, size_t len, char *out)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, key, len);
	hex_encode(h, 4, out);
	sodium_memzero(h, sizeof h);
}
