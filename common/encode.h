/* Base64 (RFC 4648, standard and URL alphabets, padded or not) and hex, on libsodium. */
#ifndef ENCFS_ENCODE_H
#define ENCFS_ENCODE_H

#include <stddef.h>

enum b64_alphabet { B64_STD, B64_URL };

/* Encodes len bytes into a new NUL-terminated string (malloc), padded or not; NULL when out of
 * memory. */
char *b64_encode(const void *in, size_t len, enum b64_alphabet alphabet, int padded);

/* Decodes in[0..inlen) in the given alphabet, accepting the text with or without its '=' padding
 * (but never wrong padding, whitespace or characters from the other alphabet).  Writes at most
 * outcap bytes; returns 0 and *outlen, or -1 when the text is not valid base64 or does not fit. */
int b64_decode(const char *in, size_t inlen, enum b64_alphabet alphabet, void *out, size_t outcap,
	       size_t *outlen);
/* The same into a new buffer (malloc, one spare NUL byte after the data); NULL on error. */
unsigned char *b64_decode_alloc(const char *in, size_t inlen, enum b64_alphabet alphabet,
				size_t *outlen);
/* Upper bound of the decoded size of inlen characters. */
size_t b64_decoded_max(size_t inlen);

/* Lowercase hex into out (2*len+1 bytes). */
void hex_encode(const void *in, size_t len, char *out);
/* Hex (either case, even length, nothing else) into out; returns -1 when invalid or too long. */
int hex_decode(const char *in, size_t inlen, void *out, size_t outcap, size_t *outlen);

/* The key check value of a key: the first 8 hex digits of SHA-256 of its bytes, into out (9
 * bytes).  encfs-unwrap logs it, encfs-mkimage and encfs-dmsetup test print it, so that the key
 * a vault released can be matched with the key file an image was made with. */
#define KEY_CHECK_VALUE_LEN 9
void key_check_value(const void *key, size_t len, char *out);

#endif
