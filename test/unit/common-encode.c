/* common/encode.c: RFC 4648 section 10 test vectors, both alphabets, with and without padding. */
#include "encode.h"
#include "tap.h"

int main(void)
{
	static const struct { const char *in, *b64; } v[] = {
		{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
		{"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		char *enc = b64_encode(v[i].in, strlen(v[i].in), B64_STD, 1);
		is_str(enc, v[i].b64, "encode \"%s\"", v[i].in);
		free(enc);
		unsigned char out[16];
		size_t n = 99;
		is_int(b64_decode(v[i].b64, strlen(v[i].b64), B64_STD, out, sizeof out, &n), 0,
		       "decode padded \"%s\"", v[i].b64);
		ok(n == strlen(v[i].in) && memcmp(out, v[i].in, n) == 0, "... gives \"%s\"", v[i].in);
		size_t unpadded = strcspn(v[i].b64, "=");
		is_int(b64_decode(v[i].b64, unpadded, B64_STD, out, sizeof out, &n), 0,
		       "decode unpadded \"%.*s\"", (int)unpadded, v[i].b64);
		ok(n == strlen(v[i].in) && memcmp(out, v[i].in, n) == 0, "... same bytes");
	}

	/* URL alphabet: 0xfb 0xff -> "-_8" */
	const unsigned char bin[] = {0xfb, 0xff};
	char *url = b64_encode(bin, 2, B64_URL, 0);
	is_str(url, "-_8", "URL alphabet, unpadded");
	free(url);
	char *std = b64_encode(bin, 2, B64_STD, 1);
	is_str(std, "+/8=", "standard alphabet, padded");
	free(std);

	unsigned char out[16];
	size_t n;
	is_int(b64_decode("-_8", 3, B64_STD, out, sizeof out, &n), -1, "URL characters refused in standard");
	is_int(b64_decode("+/8", 3, B64_URL, out, sizeof out, &n), -1, "standard characters refused in URL");
	is_int(b64_decode("Zm9v YmFy", 9, B64_STD, out, sizeof out, &n), -1, "whitespace refused");
	is_int(b64_decode("Zg=", 3, B64_STD, out, sizeof out, &n), -1, "wrong padding refused");
	is_int(b64_decode("Zg===", 5, B64_STD, out, sizeof out, &n), -1, "too much padding refused");
	is_int(b64_decode("Z", 1, B64_STD, out, sizeof out, &n), -1, "impossible length refused");
	is_int(b64_decode("Zh==", 4, B64_STD, out, sizeof out, &n), -1, "non-zero trailing bits refused");
	is_int(b64_decode("Zm9vYmFy", 8, B64_STD, out, 5, &n), -1, "output that does not fit refused");
	size_t m;
	unsigned char *a = b64_decode_alloc("Zm9vYmFy", 8, B64_STD, &m);
	ok(a && m == 6 && memcmp(a, "foobar", 6) == 0 && a[6] == '\0', "decode_alloc NUL-terminates");
	free(a);

	char hex[9];
	hex_encode("\x01\xab\xff\x00", 4, hex);
	is_str(hex, "01abff00", "hex encode lowercase");
	is_int(hex_decode("01ABff00", 8, out, sizeof out, &n), 0, "hex decode either case");
	ok(n == 4 && memcmp(out, "\x01\xab\xff\x00", 4) == 0, "... right bytes");
	is_int(hex_decode("0g", 2, out, sizeof out, &n), -1, "non-hex refused");
	is_int(hex_decode("012", 3, out, sizeof out, &n), -1, "odd length refused");
	is_int(hex_decode("0102", 4, out, 1, &n), -1, "too long refused");
	return done_testing();
}
