/* common/luks_crypto: sector encryption against the IEEE 1619 XTS vector and the dm-crypt IV rule
 * for 4096-byte sectors, and the anti-forensic split that the merge undoes. */
#include "tap.h"

#include "encode.h"
#include "luks_crypto.h"
#include "secmem.h"

#include <sodium.h>
#include <string.h>

static void test_xts_vector(void)
{
	/* IEEE P1619 XTS-AES-256 vector 10: data unit 0xff, 512 bytes 00..ff 00..ff */
	unsigned char key[64], buf[512];
	size_t n;
	struct err e;
	hex_decode("27182818284590452353602874713526624977572470936999595749669676273141592653589793238462643383279502884197169399375105820974944592",
		   128, key, sizeof key, &n);
	for (int i = 0; i < 512; i++)
		buf[i] = (unsigned char)i;
	ok(luks_crypt_sectors("aes-xts-plain64", key, 64, buf, 512, 512, 0xff, true, &e) == 0, "encrypts a sector");
	char hex[65];
	hex_encode(buf, 32, hex);
	is_str(hex, "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b",
	       "IEEE 1619 vector 10: plain64 IV 0xff is the data unit number (first 32 bytes)");
	hex_encode(buf + 496, 16, hex);
	is_str(hex, "c4f36ffda9fcea70b9c6e693e148c151", "... and the last 16");
	ok(luks_crypt_sectors("aes-xts-plain64", key, 64, buf, 512, 512, 0xff, false, &e) == 0, "decrypts it");
	int same = 1;
	for (int i = 0; i < 512; i++)
		same &= buf[i] == (unsigned char)i;
	ok(same, "decryption gives the plaintext back");
}

static void test_large_sectors(void)
{
	/* dm-crypt for LUKS2 with sector_size 4096: the IV counts 512-byte units, so the second
	 * 4096-byte sector of a run has IV 8 (not 1), and a sector is one XTS data unit */
	static unsigned char key[64], run[8192], one[4096], small[4096];
	struct err e;
	randombytes_buf(key, sizeof key);
	randombytes_buf(run, sizeof run);
	memcpy(one, run + 4096, 4096);
	memcpy(small, run + 4096, 4096);
	ok(luks_crypt_sectors("aes-xts-plain64", key, 64, run, sizeof run, 4096, 0, true, &e) == 0, "encrypts two 4096-byte sectors");
	ok(luks_crypt_sectors("aes-xts-plain64", key, 64, one, sizeof one, 4096, 8, true, &e) == 0, "encrypts one at IV 8");
	ok(memcmp(run + 4096, one, 4096) == 0, "the second sector of a run has IV 8: its offset in 512-byte units");
	ok(luks_crypt_sectors("aes-xts-plain64", key, 64, small, sizeof small, 512, 8, true, &e) == 0, "encrypts 512-byte sectors");
	ok(memcmp(small, one, 4096) != 0, "a 4096-byte sector is one data unit, not eight 512-byte ones");
	ok(luks_crypt_sectors("aes-xts-plain64", key, 64, run, sizeof run, 4096, 0, false, &e) == 0 &&
	   luks_crypt_sectors("aes-xts-plain64", key, 64, run, 4000, 4096, 0, false, &e) != 0,
	   "a length that is not whole sectors is refused");
	ok(luks_crypt_sectors("aes-xts-plain64", key, 64, run, 4096, 8192, 0, true, &e) != 0, "sectors above 4096 refused");
	ok(luks_crypt_sectors("twofish-xts-plain64", key, 64, run, 4096, 4096, 0, true, &e) != 0, "twofish refused (no OpenSSL)");
}

static void test_af(void)
{
	struct secbuf a = {0}, b = {0};
	unsigned char key[64], back[64];
	struct err e;
	randombytes_buf(key, sizeof key);
	ok(secbuf_alloc(&a, 64 * 4000) == 0 && secbuf_alloc(&b, 64 * 4000) == 0, "buffers");
	ok(luks_af_split(key, 64, 4000, "sha256", a.data, &e) == 0, "AF split into 4000 stripes");
	ok(luks_af_merge(a.data, 64, 4000, "sha256", back, &e) == 0 && memcmp(back, key, 64) == 0, "the merge gives the key back");
	ok(luks_af_split(key, 64, 4000, "sha256", b.data, &e) == 0 && memcmp(a.data, b.data, 64 * 4000) != 0,
	   "a second split of the same key differs (random stripes)");
	a.data[12345] ^= 1;
	ok(luks_af_merge(a.data, 64, 4000, "sha256", back, &e) == 0 && memcmp(back, key, 64) != 0,
	   "one flipped bit in any stripe loses the key");
	ok(luks_af_split(key, 64, 4000, "md5", a.data, &e) != 0, "AF split with an unknown hash refused");
	secbuf_free(&a);
	secbuf_free(&b);
}

int main(void)
{
	secmem_init();
	test_xts_vector();
	test_large_sectors();
	test_af();
	return done_testing();
}
