/* encfs-mkimage internals: the size plan, and the LUKS2 header as built in memory (the binary
 * fields, both checksums, the JSON area, and keyslot 0 giving the volume key back).  The header
 * against cryptsetup and encfs-dmsetup's reader is test/mkimage.t's job. */
#include "tap.h"

#include "encode.h"
#include "json.h"
#include "luks_crypto.h"
#include "mkimage.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <string.h>

static void test_plan(void)
{
	struct tree t = {.inodes = 100, .blocks = 12800, .bytes = 50u << 20};
	struct fs_plan min, p;
	plan_fit(&t, 0, &min);
	is_int(min.blocks % 256, 0, "the plan is whole MiB");
	ok(min.blocks > t.blocks + min.journal_blocks, "it holds the tree and the journal (%llu blocks)",
	   (unsigned long long)min.blocks);
	ok(min.inodes >= t.inodes + 11, "inodes for the tree and ext4's reserved ones");
	is_int(plan_for_blocks(&t, min.blocks, &p), 0, "the fitting size is accepted as --size");
	is_int(plan_for_blocks(&t, min.blocks - 256, &p), -1, "a MiB less is refused");
	is_int(plan_for_blocks(&t, 1048576, &p), 0, "4 GiB is accepted");
	is_int(p.journal_blocks, 16384, "4 GiB gets mke2fs's 64 MiB journal");
	ok(p.inodes >= 1048576 / 4 / 2, "a large filesystem gets inodes for its free space (%llu)", (unsigned long long)p.inodes);

	struct fs_plan more;
	plan_fit(&t, 100u << 20, &more);
	ok(more.blocks >= min.blocks + 25600, "--free 100M adds at least 100 MiB");

	struct tree empty = {.inodes = 1, .blocks = 4};
	plan_fit(&empty, 0, &p);
	is_int(p.blocks, 2048, "an empty tree gets the smallest filesystem with a journal, 8 MiB");
	is_int(p.journal_blocks, 1024, "... and a 4 MiB journal");

	/* many empty files: at least a block per inode, so that the groups hold them */
	struct tree files = {.inodes = 200000, .blocks = 100};
	plan_fit(&files, 0, &p);
	ok(p.blocks >= 200000, "200000 empty files: at least a block per inode (%llu blocks)", (unsigned long long)p.blocks);
}

static uint64_t be64(const unsigned char *p)
{
	uint64_t x = 0;
	for (int i = 0; i < 8; i++)
		x = x << 8 | p[i];
	return x;
}

static void test_header(void)
{
	unsigned char vk[64], pass[32], md[32];
	struct luks2_header h;
	struct err e;
	randombytes_buf(vk, sizeof vk);
	randombytes_buf(pass, sizeof pass);
	struct luks2_kdf kdf = {.type = KDF_PBKDF2, .iterations = 1000};
	ok(luks2_build(&h, vk, pass, sizeof pass, &kdf, 0, &e) == 0, "the header builds");
	for (int c = 0; c < 2; c++) {
		unsigned char *m = h.meta + c * LUKS2_METADATA, copy[LUKS2_METADATA];
		const char *which = c ? "secondary" : "primary";
		ok(!memcmp(m, c ? "SKUL\xba\xbe" : "LUKS\xba\xbe", 6) && m[6] == 0 && m[7] == 2, "%s: magic and version 2", which);
		is_int(be64(m + 8), LUKS2_METADATA, "%s: hdr_size 16 KiB", which);
		is_int(be64(m + 16), 1, "%s: seqid 1", which);
		is_int(be64(m + 256), c * LUKS2_METADATA, "%s: hdr_offset", which);
		is_str((char *)m + 72, "sha256", "%s: checksum sha256", which);
		ok(!memcmp(m + 168, h.uuid, 37), "%s: the uuid", which);
		memcpy(copy, m, sizeof copy);
		memset(copy + 448, 0, 64);
		unsigned len = 0;
		EVP_Digest(copy, sizeof copy, md, &len, EVP_sha256(), NULL);
		ok(len == 32 && !memcmp(md, m + 448, 32), "%s: the checksum covers binary header and JSON area", which);
		ok(m[4096] == '{' && m[LUKS2_METADATA - 1] == 0, "%s: the JSON, then NUL bytes", which);
	}
	ok(!memcmp(h.meta + 4096, h.meta + LUKS2_METADATA + 4096, LUKS2_METADATA - 4096), "both copies have the same JSON");
	ok(memcmp(h.meta + 104, h.meta + LUKS2_METADATA + 104, 64) != 0, "... and salts of their own");
	is_int(strlen(h.uuid), 36, "uuid of 36 characters");
	ok(h.uuid[14] == '4', "a version 4 uuid");

	/* keyslot 0 as a reader opens it: the salt from the JSON, PBKDF2, decrypt, merge */
	const char *js = (const char *)h.meta + 4096;
	struct json j;
	ok(json_parse(&j, js, strlen(js), 1000, &e) == 0, "the JSON parses strictly");
	int kdfo = json_member(&j, json_member(&j, json_member(&j, 0, "keyslots"), "0"), "kdf");
	char salt64[64];
	unsigned char salt[32], kek[64], back[64];
	size_t n;
	ok(kdfo > 0 && json_string_buf(&j, json_member(&j, kdfo, "salt"), salt64, sizeof salt64) == 0 &&
	   b64_decode(salt64, strlen(salt64), B64_STD, salt, sizeof salt, &n) == 0 && n == 32, "keyslot salt, 32 bytes");
	json_free(&j);
	struct secbuf area = {0};
	secbuf_alloc(&area, LUKS2_AF_BYTES);
	memcpy(area.data, h.area.data, LUKS2_AF_BYTES);
	ok(luks_pbkdf2("sha256", pass, sizeof pass, salt, 32, 1000, kek, 64, &e) == 0 &&
	   luks_decrypt_sectors("aes-xts-plain64", kek, 64, area.data, LUKS2_AF_BYTES, &e) == 0 &&
	   luks_af_merge(area.data, 64, 4000, "sha256", back, &e) == 0 && !memcmp(back, vk, 64),
	   "keyslot 0 opened with the passphrase gives the volume key");
	pass[0] ^= 1;
	luks_pbkdf2("sha256", pass, sizeof pass, salt, 32, 1000, kek, 64, &e);
	memcpy(area.data, h.area.data, LUKS2_AF_BYTES);
	luks_decrypt_sectors("aes-xts-plain64", kek, 64, area.data, LUKS2_AF_BYTES, &e);
	luks_af_merge(area.data, 64, 4000, "sha256", back, &e);
	ok(memcmp(back, vk, 64) != 0, "another passphrase does not");
	secbuf_free(&area);
	luks2_header_free(&h);

	struct luks2_kdf argon = {.type = KDF_ARGON2ID, .time = 4, .memory_kib = 32768, .lanes = 4};
	ok(luks2_build(&h, vk, pass, sizeof pass, &argon, 0, &e) == 0 &&
	   strstr((char *)h.meta + 4096, "\"kdf\":{\"type\":\"argon2id\",\"time\":4,\"memory\":32768,\"cpus\":4,"),
	   "an argon2id keyslot");
	luks2_header_free(&h);
}

int main(void)
{
	secmem_init();
	test_plan();
	test_header();
	return done_testing();
}
