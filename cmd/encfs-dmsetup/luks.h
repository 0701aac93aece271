/* LUKS1 and LUKS2 headers as encfs-dmsetup understands them: read from an untrusted device,
 * validated the way cryptsetup validates them, and kept as one in-memory description from which
 * both the unlock and the dm-crypt table are made (no second read between check and use). */
#ifndef ENCFS_DMSETUP_LUKS_H
#define ENCFS_DMSETUP_LUKS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"
#include "luks_crypto.h"
#include "secmem.h"

/* Limits on what a header may ask of us (documented in encfs-dmsetup(1), LIMITS). */
#define LUKS_MAX_KEYSLOTS 32          /* keyslots in a header; cryptsetup opens ids 0..31 */
#define LUKS_MAX_DIGESTS 32
#define LUKS_MAX_SEGMENTS 32
#define LUKS_MAX_KEY_BYTES 128        /* volume key and keyslot key sizes */
#define LUKS_STRIPES 4000             /* AF stripes: the only value cryptsetup accepts */
#define LUKS_SALT_BYTES 32
#define LUKS_MAX_JSON_TOKENS 100000

/* Keyslot priorities; cryptsetup tries preferred keyslots, then normal ones, and no others. */
#define LUKS_PRIORITY_IGNORE 0
#define LUKS_PRIORITY_NORMAL 1
#define LUKS_PRIORITY_PREFER 2

#define LUKS2_HDR_BIN_LEN 4096
#define LUKS2_HDR_MIN 0x4000ull
#define LUKS2_HDR_MAX 0x400000ull
#define LUKS2_MAX_KEYSLOTS_SIZE 0x8000000ull /* 128 MiB */

/* Something to read a header from: a file descriptor or, for the fuzzer and unit tests, memory. */
struct blk {
	int fd;                       /* -1 when mem is used */
	const unsigned char *mem;
	uint64_t size;                /* bytes */
};
/* Reads exactly len bytes at off; -1 (errno EIO/ESPIPE...) when short or past the end. */
int blk_read(const struct blk *b, uint64_t off, void *buf, size_t len);

struct luks_keyslot {
	int id;
	bool luks2_type;      /* "luks2" (LUKS2) or an enabled LUKS1 slot: one we can open */
	bool addressable;     /* the id is written "0".."31": cryptsetup opens no other keyslot */
	int priority;         /* LUKS_PRIORITY_*, or any other value the header has (never tried) */
	uint32_t key_size;    /* volume key bytes */
	enum kdf_type kdf;
	char kdf_name[24];    /* as in the header, for messages and dump */
	char kdf_hash[24];    /* PBKDF2 hash */
	uint64_t iterations;  /* PBKDF2 */
	uint32_t time, memory_kib, lanes; /* Argon2 */
	unsigned char salt[LUKS_SALT_BYTES];
	bool salt_ok;         /* the salt decoded to exactly 32 bytes */
	char af_hash[24];
	uint32_t stripes;
	char area_cipher[64]; /* "aes-xts-plain64" */
	uint32_t area_key_size;
	uint64_t area_offset, area_size; /* bytes */
	int digest;           /* index into luks_volume.digests, -1 when none */
};

struct luks_digest {
	int id;
	bool pbkdf2_type;
	char hash[24];
	uint64_t iterations;
	unsigned char salt[64];
	size_t salt_len;
	unsigned char value[64];
	size_t value_len;
	uint64_t keyslots;    /* bit per keyslot id */
	uint64_t segments;    /* bit per segment id */
};

struct luks_segment {
	int id;
	char type[16];        /* "crypt", "linear", ... */
	uint64_t offset;      /* bytes */
	uint64_t size;        /* bytes; 0 with dynamic */
	bool dynamic;
	char encryption[64];
	uint64_t iv_tweak;    /* validated, not used: dm-crypt gets iv_offset 0, as from cryptsetup */
	uint32_t sector_size;
	bool integrity;
	bool backup;          /* a flag "backup-*": reencryption bookkeeping */
	bool in_reencryption; /* flag "in-reencryption" */
};

/* Persistent LUKS2 activation flags. */
enum {
	LUKS_FLAG_ALLOW_DISCARDS = 1 << 0,
	LUKS_FLAG_SAME_CPU_CRYPT = 1 << 1,
	LUKS_FLAG_SUBMIT_FROM_CRYPT_CPUS = 1 << 2,
	LUKS_FLAG_NO_READ_WORKQUEUE = 1 << 3,
	LUKS_FLAG_NO_WRITE_WORKQUEUE = 1 << 4,
};

struct luks_volume {
	int version;          /* 1 or 2 */
	char uuid[41];
	char label[49], subsystem[49];
	uint64_t seqid;
	char csum_alg[33];
	int header_copy;      /* LUKS2: 0 primary, 1 secondary was used */
	uint64_t metadata_size;   /* LUKS2: one binary header + JSON area */
	uint64_t keyslots_size;   /* LUKS2 */
	uint64_t header_area_end; /* bytes the header and keyslot areas need on the metadata device */
	struct luks_keyslot keyslots[LUKS_MAX_KEYSLOTS];
	int nkeyslots;
	struct luks_digest digests[LUKS_MAX_DIGESTS];
	int ndigests;
	struct luks_segment segments[LUKS_MAX_SEGMENTS];
	int nsegments;
	int ntokens;
	unsigned flags;       /* LUKS_FLAG_* from config.flags */
	char requirements[256]; /* config.requirements.mandatory, comma separated ("" none) */
	bool reencrypt_keyslot;
	/* LUKS1 specifics */
	char hash_spec[33];
	char cipher_name[33], cipher_mode[33]; /* as on disk, for dump */
	uint32_t key_bytes;
	uint32_t mk_digest_iterations;
	unsigned char mk_digest[20], mk_digest_salt[32];
	const struct blk *blk; /* where it was read: keyslot areas are read from it when unlocking */
	char *json;           /* LUKS2: the JSON text that was validated (malloc), for dump --json */
	size_t json_len;
};

void luks_volume_free(struct luks_volume *v);

/* A NUL-padded on-disk string field of n bytes, cut at n-1 as cryptsetup does (out: n bytes). */
void luks_disk_str(char *out, const unsigned char *in, size_t n);
/* Copies header text for messages, comparisons and dump: bytes other than printable ASCII
 * become '?' (a hostile header must not put control characters on a terminal or split a
 * one-line error), and text too long for buf (n bytes) is cut and ends in "...".  buf may be s. */
void luks_header_text(char *buf, size_t n, const char *s);

/* Reads and validates the header on b: LUKS1 or LUKS2 by magic.  e says what was wrong, with
 * code EXIT_CONFIG for a bad header and EXIT_DEVICE for I/O errors. */
int luks_read(const struct blk *b, struct luks_volume *v, struct err *e);
int luks2_read(const struct blk *b, struct luks_volume *v, struct err *e);
int luks1_read(const struct blk *b, struct luks_volume *v, struct err *e);

/* The data segment dm-crypt maps: index into v->segments, or -1 with e set. */
int luks_data_segment(const struct luks_volume *v, struct err *e);

/* Checks that the volume can be activated (before anything is unlocked or created): one crypt
 * segment, no integrity, no reencryption, requirements met, a supported cipher, a data offset
 * unless the header is detached.  detached: the header lives apart from the data device. */
int luks_check_activation(const struct luks_volume *v, bool detached, struct err *e);

/* What unlocking may cost, a policy on top of the hard limits above (options of encfs-dmsetup,
 * documented in its LIMITS section).  A keyslot asking for more is not tried; unlocking stops
 * once max_total_ms have been spent on keyslots. */
struct luks_limits {
	uint64_t max_pbkdf2_iterations; /* one PBKDF2 keyslot */
	uint32_t max_argon2_time;       /* one Argon2 keyslot's time cost */
	uint64_t max_argon2_memory_kib; /* one Argon2 keyslot's memory (already capped by what is free) */
	long long max_total_ms;         /* all keyslots together */
};
#define LUKS_DEFAULT_MAX_PBKDF2_ITER 10000000u /* cryptsetup's 2 s target on a fast CPU is ~5M */
#define LUKS_DEFAULT_MAX_ARGON2_TIME 32u
#define LUKS_DEFAULT_MAX_ARGON2_MIB 1024u     /* cryptsetup's default maximum for new keyslots */
#define LUKS_DEFAULT_MAX_UNLOCK_S 60u

/* Unlocks a keyslot with the passphrase (key file bytes): into vk (secbuf, allocated here).
 * for_segment: only keyslots whose digest covers the data segment (open, table); otherwise any
 * keyslot (test).  lim: the cost policy (NULL: no policy beyond the hard limits).  *slot receives
 * the keyslot id.  EXIT_CRYPTO "no key slot matches this key" when none does; EXIT_CONFIG when
 * no keyslot could be tried, naming the last one and why (a limit among the reasons). */
int luks_unlock(const struct luks_volume *v, const unsigned char *pass, size_t pass_len,
		bool for_segment, const struct luks_limits *lim, struct secbuf *vk, int *slot, struct err *e);
/* The keyslot luks_unlock is trying (-1 when none), for a deadline's message. */
extern volatile sig_atomic_t luks_current_keyslot;

/* The crypto helpers (KDFs, sector decryption, AF merge, cipher specs) are in luks_crypto.h. */

/* The table line, built from the validated volume only (pure: no I/O, unit tested). */
struct table_params {
	const char *device;     /* block device path dm-crypt maps */
	uint64_t device_bytes;  /* its size */
	bool allow_discards;    /* --allow-discards (persistent flags are added from the header) */
	const char *keyring_desc; /* "cryptsetup:<uuid>-d<digest>" to reference the key, or NULL */
	bool show_key;          /* hex key; otherwise the key is masked (unless keyring) */
};
struct table_line {
	uint64_t start, length; /* 512-byte sectors */
	char target[8];         /* "crypt" */
	char *params;           /* malloc'd, wiped on free: may hold the hex key */
};
int luks_build_table(const struct luks_volume *v, const unsigned char *vk, size_t vk_len,
		     const struct table_params *p, struct table_line *t, struct err *e);
void table_line_free(struct table_line *t);
/* Formats "<start> <length> crypt <params>" into a new string (malloc; wiped by the caller). */
char *table_line_format(const struct table_line *t);

/* DM uuid "CRYPT-LUKS2-<uuid without dashes>-<name>", cut at LUKS_DM_UUID_MAX bytes as
 * cryptsetup cuts it; -1 when it does not fit in out. */
#define LUKS_DM_UUID_MAX 128 /* DM_UUID_LEN - 1 */
int luks_dm_uuid(const struct luks_volume *v, const char *name, char *out, size_t outsz);
/* Keyring description "cryptsetup:<uuid>-d<digest id>". */
int luks_keyring_desc(const struct luks_volume *v, char *out, size_t outsz);

/* luksDump-like text, and JSON (LUKS2: the header JSON itself, with a "binary" member added). */
void luks_dump_text(const struct luks_volume *v, const char *device, FILE *out);
int luks_dump_json(const struct luks_volume *v, FILE *out);

#endif
