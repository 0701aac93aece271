/* encfs-dmsetup internals: the table line (a pure function of the validated volume), activation
 * refusals, DM uuid and keyring names, and the crypto helpers against published vectors. */
#include "tap.h"

#include "encode.h"
#include "luks.h"

#include <sodium.h>
#include <stdint.h>
#include <string.h>

/* A LUKS2 volume as luks2_read leaves it: one dynamic crypt segment, digest 0, keyslot 0. */
static void volume(struct luks_volume *v, const char *cipher, uint32_t key_size, uint64_t offset, uint32_t sector)
{
	memset(v, 0, sizeof *v);
	v->version = 2;
	snprintf(v->uuid, sizeof v->uuid, "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0");
	v->nsegments = 1;
	snprintf(v->segments[0].type, sizeof v->segments[0].type, "crypt");
	snprintf(v->segments[0].encryption, sizeof v->segments[0].encryption, "%s", cipher);
	v->segments[0].offset = offset;
	v->segments[0].dynamic = true;
	v->segments[0].sector_size = sector;
	v->ndigests = 1;
	v->digests[0].pbkdf2_type = true;
	v->digests[0].segments = 1;
	v->digests[0].keyslots = 1;
	v->nkeyslots = 1;
	v->keyslots[0].luks2_type = true;
	v->keyslots[0].addressable = true;
	v->keyslots[0].key_size = key_size;
	v->keyslots[0].digest = 0;
}

static char *line(const struct luks_volume *v, const unsigned char *vk, size_t n, struct table_params *p,
		  struct err *e)
{
	struct table_line t;
	if (luks_build_table(v, vk, n, p, &t, e) != 0)
		return NULL;
	char *s = table_line_format(&t);
	table_line_free(&t);
	return s;
}

static void test_table(void)
{
	struct luks_volume v;
	struct err e;
	unsigned char vk[64];
	for (int i = 0; i < 64; i++)
		vk[i] = (unsigned char)i;
	volume(&v, "aes-xts-plain64", 64, 16777216, 512);

	struct table_params p = {"/dev/loop7", 20u << 20, false, NULL, true};
	char *s = line(&v, vk, 64, &p, &e);
	is_str(s, "0 8192 crypt aes-xts-plain64 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
		  "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f 0 /dev/loop7 32768",
	       "table: hex key, length = device minus offset, offset in sectors, no features");
	free(s);

	p.show_key = false;
	s = line(&v, vk, 64, &p, &e);
	like(s, " aes-xts-plain64 00000000000000000000000000000000000000000000000000000000000000000000000000000000"
		"000000000000000000000000000000000000000000000000 0 ",
	     "table: key masked as zeros without --showkeys");
	ok(s && !strstr(s, "0102030405"), "table: masked line holds no key byte");
	free(s);

	p.keyring_desc = "cryptsetup:0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-d0";
	s = line(&v, vk, 64, &p, &e);
	like(s, " aes-xts-plain64 :64:logon:cryptsetup:0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-d0 0 /dev/loop7 32768",
	     "table: keyring reference :<size>:logon:<description>");
	free(s);
	p.keyring_desc = NULL;

	/* persistent flags and --allow-discards, in cryptsetup's order, sector_size last */
	v.flags = LUKS_FLAG_NO_WRITE_WORKQUEUE | LUKS_FLAG_SAME_CPU_CRYPT | LUKS_FLAG_NO_READ_WORKQUEUE |
		  LUKS_FLAG_SUBMIT_FROM_CRYPT_CPUS;
	v.segments[0].sector_size = 4096;
	p.allow_discards = true;
	p.show_key = true;
	s = line(&v, vk, 64, &p, &e);
	like(s, " 0 /dev/loop7 32768 6 allow_discards same_cpu_crypt submit_from_crypt_cpus no_read_workqueue "
		"no_write_workqueue sector_size:4096",
	     "table: features counted and ordered as cryptsetup does");
	free(s);
	v.flags = 0;
	p.allow_discards = false;

	/* 4096-byte sectors: the data must be whole sectors */
	p.device_bytes = (20u << 20) + 512;
	s = line(&v, vk, 64, &p, &e);
	ok(s == NULL && strstr(e.msg, "multiple of the 4096-byte sector size"), "table: partial 4K sector refused");
	free(s);
	v.segments[0].sector_size = 512;

	/* fixed-size segment */
	v.segments[0].dynamic = false;
	v.segments[0].size = 1u << 20;
	v.segments[0].iv_tweak = 7;
	p.device_bytes = 20u << 20;
	s = line(&v, vk, 64, &p, &e);
	like(s, "0 2048 crypt aes-xts-plain64 ", "table: fixed segment size in sectors");
	like(s, " 0 /dev/loop7 32768", "table: iv_offset 0 whatever the segment's iv_tweak (as cryptsetup)");
	free(s);
	v.segments[0].size = 20u << 20;
	s = line(&v, vk, 64, &p, &e);
	ok(s == NULL && e.code == EXIT_DEVICE && strstr(e.msg, "too small"), "table: segment past the device end refused");
	free(s);
	v.segments[0].dynamic = true;
	v.segments[0].iv_tweak = 0;

	p.device_bytes = 16u << 20;
	s = line(&v, vk, 64, &p, &e);
	ok(s == NULL && strstr(e.msg, "no data sectors"), "table: no data after the header refused");
	free(s);
	p.device_bytes = 1u << 20;
	s = line(&v, vk, 64, &p, &e);
	ok(s == NULL && strstr(e.msg, "ends before the data offset"), "table: device smaller than the offset refused");
	free(s);

	char buf[200];
	ok(luks_dm_uuid(&v, "data", buf, sizeof buf) == 0, "dm uuid built");
	is_str(buf, "CRYPT-LUKS2-0b1c2d3e4f5061728394a5b6c7d8e9f0-data", "dm uuid: CRYPT-LUKS2-<uuid w/o dashes>-<name>");
	v.version = 1;
	luks_dm_uuid(&v, "x", buf, sizeof buf);
	is_str(buf, "CRYPT-LUKS1-0b1c2d3e4f5061728394a5b6c7d8e9f0-x", "dm uuid for LUKS1");
	v.version = 2;
	/* device-mapper holds 128 bytes of uuid: cryptsetup cuts a longer one there, so do we */
	char name[128];
	memset(name, 'n', 127);
	name[127] = '\0';
	ok(luks_dm_uuid(&v, name, buf, sizeof buf) == 0, "dm uuid with a 127-byte name built");
	is_int((long long)strlen(buf), LUKS_DM_UUID_MAX, "... cut at 128 bytes");
	ok(strncmp(buf, "CRYPT-LUKS2-0b1c2d3e4f5061728394a5b6c7d8e9f0-nnnn", 49) == 0, "... keeping its start");
	v.digests[0].id = 3;
	ok(luks_keyring_desc(&v, buf, sizeof buf) == 0, "keyring description built");
	is_str(buf, "cryptsetup:0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-d3", "keyring description cryptsetup:<uuid>-d<digest>");
}

static void refused(const char *cipher, uint32_t ks, uint64_t off, bool detached, const char *why, const char *name)
{
	struct luks_volume v;
	struct err e = {0, ""};
	volume(&v, cipher, ks, off, 512);
	int r = luks_check_activation(&v, detached, &e);
	ok(r != 0 && e.code == EXIT_CONFIG && strstr(e.msg, why), "refused: %s", name);
	if (r == 0 || !strstr(e.msg, why))
		printf("# got: %s\n", e.msg);
}

static void test_activation(void)
{
	struct luks_volume v;
	struct err e;
	volume(&v, "aes-xts-plain64", 64, 16777216, 512);
	ok(luks_check_activation(&v, false, &e) == 0, "aes-xts-plain64 512-bit activates");
	volume(&v, "serpent-xts-plain64", 64, 16777216, 512);
	ok(luks_check_activation(&v, false, &e) == 0, "serpent data segment is passed to dm-crypt as it is");
	volume(&v, "aes-cbc-essiv:sha256", 32, 4096 * 512, 512);
	ok(luks_check_activation(&v, false, &e) == 0, "aes-cbc-essiv:sha256 activates");
	volume(&v, "aes-xts-plain64", 64, 0, 512);
	ok(luks_check_activation(&v, true, &e) == 0, "offset 0 with a detached header activates");

	refused("cipher_null-ecb", 0, 16777216, false, "cipher_null", "cipher_null");
	refused("capi:xts(aes)-plain64", 64, 16777216, false, "capi:", "capi: forms");
	refused("aes-lrw-plain64", 32, 16777216, false, "aes-lrw-plain64", "cipher outside the list, named");
	refused("aes-xts-essiv:wp256", 32, 16777216, false, "essiv:wp256", "unknown IV generator");
	refused("aes-xts-plain64", 48, 16777216, false, "48-byte key", "xts with a 48-byte key");
	refused("aes-xts-plain64", 64, 0, false, "data offset 0", "offset 0 without a detached header");

	volume(&v, "aes-xts-plain64", 64, 16777216, 512);
	v.segments[0].integrity = true;
	ok(luks_check_activation(&v, false, &e) != 0 && strstr(e.msg, "integrity"), "refused: integrity segment");
	volume(&v, "aes-xts-plain64", 64, 16777216, 512);
	v.nsegments = 2;
	v.segments[1] = v.segments[0];
	v.segments[1].id = 1;
	v.segments[0].dynamic = false;
	v.segments[0].size = 1 << 20;
	ok(luks_check_activation(&v, false, &e) != 0 && strstr(e.msg, "segments"), "refused: two data segments");
	volume(&v, "aes-xts-plain64", 64, 16777216, 512);
	snprintf(v.requirements, sizeof v.requirements, "online-reencrypt-v2");
	ok(luks_check_activation(&v, false, &e) != 0 && strstr(e.msg, "online-reencrypt-v2"),
	   "refused: unmet mandatory requirement, named");
	volume(&v, "aes-xts-plain64", 64, 16777216, 512);
	snprintf(v.segments[0].type, sizeof v.segments[0].type, "linear");
	ok(luks_check_activation(&v, false, &e) != 0 && strstr(e.msg, "linear"), "refused: linear segment");
	volume(&v, "aes-xts-plain64", 64, 16777216, 512);
	v.reencrypt_keyslot = true;
	ok(luks_check_activation(&v, false, &e) != 0 && strstr(e.msg, "reencrypt"), "refused: reencrypt keyslot");
}

static void test_crypto(void)
{
	struct err e;
	unsigned char out[64];
	char hex[129];
	/* RFC 6070 */
	ok(luks_pbkdf2("sha1", (const unsigned char *)"password", 8, (const unsigned char *)"salt", 4, 4096, out, 20,
		       &e) == 0, "PBKDF2-SHA1 runs");
	hex_encode(out, 20, hex);
	is_str(hex, "4b007901b765489abead49d926f721d065a429c1", "PBKDF2-SHA1 RFC 6070 vector (4096 iterations)");
	ok(luks_pbkdf2("sha256", (const unsigned char *)"password", 8, (const unsigned char *)"salt", 4, 0, out, 32,
		       &e) != 0 && strstr(e.msg, "iterations"), "PBKDF2 with 0 iterations refused");
	ok(luks_pbkdf2("sha256", (const unsigned char *)"p", 1, (const unsigned char *)"s", 1, LUKS_MAX_PBKDF2_ITER + 1ull,
		       out, 32, &e) != 0 && strstr(e.msg, "iterations"), "PBKDF2 above the iteration cap refused at once");
	ok(luks_pbkdf2("md5", (const unsigned char *)"p", 1, (const unsigned char *)"s", 1, 1, out, 16, &e) != 0,
	   "PBKDF2 with md5 refused");

	/* the reference implementation's README example: argon2 somesalt -t 2 -m 16 -p 4 -l 24 */
	ok(luks_argon2(KDF_ARGON2I, (const unsigned char *)"password", 8, (const unsigned char *)"somesalt", 8, 2, 65536, 4,
		       out, 24, &e) == 0, "Argon2i with 4 lanes runs");
	hex_encode(out, 24, hex);
	is_str(hex, "45d7ac72e76f242b20b77b9bf9bf9d5915894e669a24e6c6", "Argon2i t=2 m=64MiB p=4 reference vector");
	ok(luks_argon2(KDF_ARGON2ID, (const unsigned char *)"password", 8, (const unsigned char *)"somesalt", 8, 2, 65536,
		       1, out, 32, &e) == 0, "Argon2id with 1 lane runs");
	hex_encode(out, 32, hex);
	is_str(hex, "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7",
	       "Argon2id t=2 m=64MiB p=1 reference vector");
	ok(luks_argon2(KDF_ARGON2ID, (const unsigned char *)"p", 1, (const unsigned char *)"somesalt", 8, 1,
		       LUKS_MAX_ARGON2_MEMORY_KIB + 1, 1, out, 32, &e) != 0 && strstr(e.msg, "memory"),
	   "Argon2 memory above the cap refused without allocating");
	ok(luks_argon2(KDF_ARGON2ID, (const unsigned char *)"p", 1, (const unsigned char *)"somesalt", 8,
		       LUKS_MAX_ARGON2_TIME + 1, 1024, 1, out, 32, &e) != 0 && strstr(e.msg, "time"),
	   "Argon2 time above the cap refused");
	ok(luks_argon2(KDF_ARGON2ID, (const unsigned char *)"p", 1, (const unsigned char *)"somesalt", 8, 64, 1048576, 1,
		       out, 32, &e) != 0 && strstr(e.msg, "limit"), "Argon2 time x memory above the work limit refused");

	/* AF merge of 2 stripes with sha256: key = H(0||s0) ^ s1 (one 32-byte diffuse block) */
	unsigned char src[64] = {0}, key[32];
	for (int i = 0; i < 32; i++)
		src[32 + i] = (unsigned char)(0xA0 + i);
	ok(luks_af_merge(src, 32, 2, "sha256", key, &e) == 0, "AF merge runs");
	/* sha256(be32(0) || 32 zero bytes), by libsodium */
	unsigned char zeros[36] = {0}, d[32];
	crypto_hash_sha256(d, zeros, sizeof zeros);
	int same = 1;
	for (int i = 0; i < 32; i++)
		same &= key[i] == (d[i] ^ (unsigned char)(0xA0 + i));
	ok(same, "AF merge: diffuse is H(be32(i) || block), last stripe XORed");

	/* keyslot ciphers: XTS and CBC sectors numbered from 0 within the area */
	ok(luks_cipher_supported_for_keyslot("aes-xts-plain64", 64), "keyslot cipher aes-xts-plain64 supported");
	ok(!luks_cipher_supported_for_keyslot("serpent-xts-plain64", 64), "keyslot cipher serpent refused");
	unsigned char buf[1024] = {0};
	ok(luks_decrypt_sectors("twofish-cbc-plain", key, 32, buf, sizeof buf, &e) != 0 && strstr(e.msg, "twofish"),
	   "decrypting with twofish refused, cipher named");
}

int main(void)
{
	test_table();
	test_activation();
	test_crypto();
	return done_testing();
}
