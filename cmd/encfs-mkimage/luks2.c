/* The LUKS2 header, written as cryptsetup 2.6 luksFormat writes it and as encfs-dmsetup's reader
 * (cmd/encfs-dmsetup/luks2.c) checks it: two copies of 16 KiB (binary header + JSON area, SHA-256
 * checksum over both), one keyslot holding the volume key AF-split into 4000 stripes and encrypted
 * with aes-xts-plain64 under the KDF's output, one pbkdf2 digest of the volume key, and one crypt
 * segment at 16 MiB with 4096-byte sectors: dynamic (to the end of the device), or of a fixed size
 * when a dm-verity hash tree follows it (--verity).  The keyslots area after keyslot 0 stays a hole
 * (cryptsetup fills it with random bytes; nothing reads it). */
#include "mkimage.h"

#include "encode.h"
#include "strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JSON_AREA (LUKS2_METADATA - 4096)
#define KEYSLOTS_SIZE (LUKS2_DATA_OFFSET - LUKS2_KEYSLOT_OFFSET)
#define AREA_SIZE ((LUKS2_AF_BYTES + 4095) / 4096 * 4096) /* cryptsetup rounds keyslot areas to 4 KiB */
#define SALT_BYTES 32
#define DIGEST_ITERATIONS 1000 /* the volume key is 64 random bytes: stretching adds nothing */
#define CIPHER "aes-xts-plain64"

static void be16(unsigned char *p, uint16_t x)
{
	p[0] = (unsigned char)(x >> 8);
	p[1] = (unsigned char)x;
}

static void be64(unsigned char *p, uint64_t x)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(x >> (56 - 8 * i));
}

static void uuid_v4(char out[37])
{
	unsigned char u[16];
	randombytes_buf(u, sizeof u);
	u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
	u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
	char hex[33];
	hex_encode(u, sizeof u, hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* The JSON metadata, in the member order cryptsetup writes. */
static char *json(const struct luks2_kdf *kdf, uint64_t segment_bytes, const unsigned char *ks_salt,
		  const unsigned char *dg_salt, const unsigned char *digest)
{
	char size[24] = "dynamic";
	if (segment_bytes)
		snprintf(size, sizeof size, "%" PRIu64, segment_bytes);
	struct strbuf sb = {0};
	char *ks = b64_encode(ks_salt, SALT_BYTES, B64_STD, 1), *ds = b64_encode(dg_salt, SALT_BYTES, B64_STD, 1),
	     *dg = b64_encode(digest, 32, B64_STD, 1);
	if (!ks || !ds || !dg)
		goto out;
	sb_printf(&sb,
		  "{\"keyslots\":{\"0\":{\"type\":\"luks2\",\"key_size\":%u,"
		  "\"af\":{\"type\":\"luks1\",\"stripes\":%u,\"hash\":\"sha256\"},"
		  "\"area\":{\"type\":\"raw\",\"offset\":\"%u\",\"size\":\"%u\",\"encryption\":\"" CIPHER "\","
		  "\"key_size\":%u},",
		  LUKS2_KEY_BYTES, LUKS2_STRIPES, LUKS2_KEYSLOT_OFFSET, AREA_SIZE, LUKS2_KEY_BYTES);
	if (kdf->type == KDF_PBKDF2)
		sb_printf(&sb, "\"kdf\":{\"type\":\"pbkdf2\",\"hash\":\"sha256\",\"iterations\":%" PRIu32 ",\"salt\":\"%s\"}}},",
			  kdf->iterations, ks);
	else
		sb_printf(&sb, "\"kdf\":{\"type\":\"argon2id\",\"time\":%" PRIu32 ",\"memory\":%" PRIu32 ",\"cpus\":%" PRIu32
			  ",\"salt\":\"%s\"}}},", kdf->time, kdf->memory_kib, kdf->lanes, ks);
	sb_printf(&sb,
		  "\"tokens\":{},"
		  "\"segments\":{\"0\":{\"type\":\"crypt\",\"offset\":\"%" PRIu64 "\",\"size\":\"%s\",\"iv_tweak\":\"0\","
		  "\"encryption\":\"" CIPHER "\",\"sector_size\":%u}},"
		  "\"digests\":{\"0\":{\"type\":\"pbkdf2\",\"keyslots\":[\"0\"],\"segments\":[\"0\"],\"hash\":\"sha256\","
		  "\"iterations\":%u,\"salt\":\"%s\",\"digest\":\"%s\"}},"
		  "\"config\":{\"json_size\":\"%u\",\"keyslots_size\":\"%" PRIu64 "\"}}",
		  LUKS2_DATA_OFFSET, size, FS_BLOCK, DIGEST_ITERATIONS, ds, dg, JSON_AREA, KEYSLOTS_SIZE);
out:
	free(ks);
	free(ds);
	free(dg);
	if (sb.failed || !sb.data) {
		sb_free(&sb);
		return NULL;
	}
	return sb.data;
}

/* One copy: the binary header at meta (4096 bytes) followed by the JSON area, checksummed. */
static int copy(unsigned char *meta, bool secondary, const char *uuid, const char *js, size_t js_len)
{
	static const unsigned char magic1[6] = {'L', 'U', 'K', 'S', 0xba, 0xbe}, magic2[6] = {'S', 'K', 'U', 'L', 0xba, 0xbe};
	memset(meta, 0, LUKS2_METADATA);
	memcpy(meta, secondary ? magic2 : magic1, 6);
	be16(meta + 6, 2);                          /* version */
	be64(meta + 8, LUKS2_METADATA);             /* hdr_size: binary + JSON */
	be64(meta + 16, 1);                         /* seqid */
	memcpy(meta + 72, "sha256", 6);             /* checksum_alg */
	randombytes_buf(meta + 104, 64);            /* salt, one per copy as cryptsetup makes them */
	memcpy(meta + 168, uuid, 36);
	be64(meta + 256, secondary ? LUKS2_METADATA : 0); /* hdr_offset */
	memcpy(meta + 4096, js, js_len);            /* then NUL bytes to the end of the area */
	unsigned len = 0;
	return EVP_Digest(meta, LUKS2_METADATA, meta + 448, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}

int luks2_build(struct luks2_header *h, const unsigned char *vk, const unsigned char *pass, size_t pass_len,
		const struct luks2_kdf *kdf, uint64_t segment_bytes, struct err *e)
{
	unsigned char ks_salt[SALT_BYTES], dg_salt[SALT_BYTES], digest[32];
	struct secbuf kek = {0};
	char *js = NULL;
	int r = -1;
	memset(h, 0, sizeof *h);
	randombytes_buf(ks_salt, sizeof ks_salt);
	randombytes_buf(dg_salt, sizeof dg_salt);
	uuid_v4(h->uuid);
	h->meta = malloc(2 * LUKS2_METADATA);
	if (!h->meta || secbuf_alloc(&h->area, LUKS2_AF_BYTES) != 0 || secbuf_alloc(&kek, LUKS2_KEY_BYTES) != 0) {
		err_set(e, EXIT_INTERNAL, "LUKS2 header: out of memory");
		goto out;
	}
	h->area.len = LUKS2_AF_BYTES;
	/* keyslot 0: key from the passphrase, the volume key split and encrypted with it */
	if (kdf->type == KDF_PBKDF2) {
		if (luks_pbkdf2("sha256", pass, pass_len, ks_salt, SALT_BYTES, kdf->iterations, kek.data, LUKS2_KEY_BYTES,
				e) != 0)
			goto wrap;
	} else if (luks_argon2(KDF_ARGON2ID, pass, pass_len, ks_salt, SALT_BYTES, kdf->time, kdf->memory_kib, kdf->lanes,
			       kek.data, LUKS2_KEY_BYTES, e) != 0)
		goto wrap;
	if (luks_af_split(vk, LUKS2_KEY_BYTES, LUKS2_STRIPES, "sha256", h->area.data, e) != 0 ||
	    luks_crypt_sectors(CIPHER, kek.data, LUKS2_KEY_BYTES, h->area.data, LUKS2_AF_BYTES, 512, 0, true, e) != 0 ||
	    luks_pbkdf2("sha256", vk, LUKS2_KEY_BYTES, dg_salt, SALT_BYTES, DIGEST_ITERATIONS, digest, sizeof digest, e) != 0)
		goto wrap;
	js = json(kdf, segment_bytes, ks_salt, dg_salt, digest);
	if (!js) {
		err_set(e, EXIT_INTERNAL, "LUKS2 header: out of memory");
		goto out;
	}
	size_t js_len = strlen(js);
	if (js_len >= JSON_AREA) { /* at least one NUL after the JSON */
		err_set(e, EXIT_INTERNAL, "LUKS2 header: %zu bytes of JSON do not fit", js_len);
		goto out;
	}
	if (copy(h->meta, false, h->uuid, js, js_len) != 0 ||
	    copy(h->meta + LUKS2_METADATA, true, h->uuid, js, js_len) != 0) {
		err_set(e, EXIT_CRYPTO, "LUKS2 header: SHA-256 failed in OpenSSL");
		goto out;
	}
	r = 0;
	goto out;
wrap:
	err_wrap(e, "LUKS2 keyslot");
out:
	free(js);
	secbuf_free(&kek);
	wipe(digest, sizeof digest);
	if (r)
		luks2_header_free(h);
	return r;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const unsigned char *p = buf;
	while (len) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int luks2_write(int fd, const struct luks2_header *h, struct err *e)
{
	if (pwrite_all(fd, h->meta, 2 * LUKS2_METADATA, 0) != 0 ||
	    pwrite_all(fd, h->area.data, h->area.len, LUKS2_KEYSLOT_OFFSET) != 0)
		return err_set(e, EXIT_DEVICE, "writing the LUKS2 header: %s", strerror(errno ? errno : EIO));
	return 0;
}

void luks2_header_free(struct luks2_header *h)
{
	free(h->meta);
	h->meta = NULL;
	secbuf_free(&h->area);
}
