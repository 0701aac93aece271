/* LUKS2: both header copies, checksums, sequence ids and the JSON metadata rules, as cryptsetup
 * (lib/luks2/luks2_disk_metadata.c, luks2_json_metadata.c, luks2_keyslot*.c) applies them.
 * Every value used later (unlock, table) is checked here and copied into struct luks_volume. */
#include "luks.h"

#include "encode.h"
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char MAGIC1[6] = {'L', 'U', 'K', 'S', 0xba, 0xbe};
static const unsigned char MAGIC2[6] = {'S', 'K', 'U', 'L', 0xba, 0xbe};
/* Where a secondary header may be when the primary gives no size (cryptsetup LUKS2_HDR2_OFFSETS). */
static const uint64_t HDR2_OFFSETS[] = {0x4000,   0x8000,   0x10000,  0x20000, 0x40000,
					0x80000,  0x100000, 0x200000, 0x400000};

static uint64_t be64(const unsigned char *p)
{
	uint64_t x = 0;
	for (int i = 0; i < 8; i++)
		x = x << 8 | p[i];
	return x;
}

static int bad(struct err *e, const char *why)
{
	return err_set(e, EXIT_CONFIG, "LUKS2 header: %s", why);
}

/* --- JSON helpers: cryptsetup's "numbered" strings and typed members ------------------------ */

/* Digits only, at least one, fitting in uint64_t. */
static int numbered_u64(const struct json *j, int tok, uint64_t *out)
{
	char buf[32];
	if (json_type(j, tok) != JSON_STRING || json_string_buf(j, tok, buf, sizeof buf) != 0)
		return -1;
	if (!buf[0])
		return -1;
	uint64_t x = 0;
	for (const char *p = buf; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		unsigned d = (unsigned)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

/* The id an object key of keyslots, tokens, digests or segments stands for (cryptsetup: digits
 * only, read with atoi), or -1.  *canonical tells whether the key is written as "%u" prints the
 * id: cryptsetup looks members up by that form only ("0", never "00"). */
static int key_id(const struct json *j, int key, bool *canonical)
{
	uint64_t id;
	char text[32];
	if (numbered_u64(j, key, &id) != 0 || id > INT_MAX || json_string_buf(j, key, text, sizeof text) != 0)
		return -1;
	*canonical = text[0] != '0' || text[1] == '\0';
	return (int)id;
}

static int member_type(const struct json *j, int obj, const char *key, enum json_type t)
{
	int m = json_member(j, obj, key);
	return m >= 0 && json_type(j, m) == t ? m : -1;
}

/* A member that is a JSON integer (json-c's json_type_int: no fraction, no exponent). */
static int member_int(const struct json *j, int obj, const char *key, int64_t *out)
{
	int64_t x;
	int m = member_type(j, obj, key, JSON_NUMBER);
	if (m < 0 || json_int64(j, m, &x) != 0)
		return -1;
	if (out)
		*out = x;
	return 0;
}

static int member_u32(const struct json *j, int obj, const char *key, uint32_t *out)
{
	int64_t x;
	if (member_int(j, obj, key, &x) != 0 || x < 0 || x > UINT32_MAX)
		return -1;
	*out = (uint32_t)x;
	return 0;
}

/* A member that is a non-empty string (cryptsetup's json_contains_string), copied with
 * luks_header_text; -1 when absent, not a string, empty, or out of memory. */
static int member_str(const struct json *j, int obj, const char *key, char *buf, size_t n)
{
	int m = member_type(j, obj, key, JSON_STRING);
	char *s = m >= 0 ? json_string(j, m) : NULL;
	int r = s && s[0] ? 0 : -1;
	if (r == 0)
		luks_header_text(buf, n, s);
	free(s);
	return r;
}

/* json-c's json_object_get_int(), which cryptsetup reads "priority" with: an integer as it is, a
 * fraction truncated, a string through strtoll, a boolean as 0 or 1, anything else 0; clamped to
 * the int range. */
static int json_c_get_int(const struct json *j, int tok)
{
	size_t n;
	const char *raw = json_raw(j, tok, &n);
	char buf[64];
	double d = 0;
	bool b;
	switch (json_type(j, tok)) {
	case JSON_NUMBER:
		if (n >= sizeof buf)
			return 0;
		memcpy(buf, raw, n);
		buf[n] = '\0';
		d = strtod(buf, NULL);
		break;
	case JSON_STRING:
		if (json_string_buf(j, tok, buf, sizeof buf) != 0)
			return 0;
		d = (double)strtoll(buf, NULL, 10);
		break;
	case JSON_BOOL:
		return json_bool(j, tok, &b) == 0 && b;
	default:
		return 0;
	}
	return d >= (double)INT_MAX ? INT_MAX : d <= (double)INT_MIN ? INT_MIN : (int)d;
}

static int strings_only(const struct json *j, int arr)
{
	int n = json_size(j, arr);
	for (int i = 0, k = arr + 1; i < n; i++, k = json_skip(j, k))
		if (json_type(j, k) != JSON_STRING)
			return -1;
	return 0;
}

/* True when array arr holds the string s (cryptsetup's LUKS2_array_jobj). */
static bool array_has(const struct json *j, int arr, const char *s)
{
	int n = json_size(j, arr);
	for (int i = 0, k = arr + 1; i < n; i++, k = json_skip(j, k))
		if (json_string_eq(j, k, s))
			return true;
	return false;
}

/* json-c (cryptsetup's parser) refuses values nested deeper than 32 levels, the top-level
 * object being the first; our JSON parser allows more, so a deeper header is refused here. */
#define LUKS2_JSON_MAX_LEVEL 31
static int nested_too_deep(const struct json *j, int tok, int level)
{
	if (level > LUKS2_JSON_MAX_LEVEL)
		return 1;
	enum json_type t = json_type(j, tok);
	if (t != JSON_OBJECT && t != JSON_ARRAY)
		return 0;
	int n = json_size(j, tok);
	for (int i = 0, k = tok + 1; i < n; i++) {
		if (t == JSON_OBJECT)
			k++; /* the member's key */
		if (nested_too_deep(j, k, level + 1))
			return 1;
		k = json_skip(j, k);
	}
	return 0;
}

/* --- validation, section by section -------------------------------------------------------- */

/* The members of the keyslots or segments section (at most 32 each), looked up once: every
 * reference from a token or digest is resolved against this short list instead of walking the
 * section again, which a header with many references and a bulky member would make quadratic. */
struct section {
	int obj;
	int n;
	int key[LUKS_MAX_KEYSLOTS]; /* key tokens */
};
_Static_assert(LUKS_MAX_SEGMENTS <= LUKS_MAX_KEYSLOTS, "struct section holds segments too");

/* The member of the section named by the string token ref, or -1. */
static int section_member(const struct json *j, const struct section *s, int ref)
{
	if (json_type(j, ref) != JSON_STRING)
		return -1;
	size_t n;
	const char *want = json_raw(j, ref, &n);
	for (int i = 0; i < s->n; i++) {
		size_t kn;
		const char *raw = json_raw(j, s->key[i], &kn);
		if (kn == n && memcmp(raw, want, n) == 0)
			return s->key[i] + 1;
	}
	/* not found as written: the same name may be spelt with escapes, so compare decoded text */
	char *ref_s = json_string(j, ref);
	int found = -1;
	for (int i = 0; ref_s && i < s->n && found < 0; i++)
		if (json_string_eq(j, s->key[i], ref_s))
			found = s->key[i] + 1;
	free(ref_s);
	return found;
}

struct ctx {
	const struct json *j;
	int keyslots, tokens, digests, segments, config;
	struct section keyslot_members, segment_members;
	int digest_keyslots[LUKS_MAX_DIGESTS]; /* each digest's "keyslots" array */
	struct luks_volume *v;
	struct err *e;
};

/* Every element of arr is a string naming an object member of the section; sets the bit of each
 * canonical id below 64 (what cryptsetup can address). */
static int ref_array(const struct ctx *c, int arr, const struct section *s, uint64_t *bits)
{
	const struct json *j = c->j;
	int n = json_size(j, arr);
	for (int i = 0, k = arr + 1; i < n; i++, k = json_skip(j, k)) {
		int target = section_member(j, s, k);
		if (target < 0 || json_type(j, target) != JSON_OBJECT)
			return -1;
		bool canonical;
		int id = key_id(j, k, &canonical);
		if (id >= 0 && id < 64 && canonical)
			*bits |= 1ull << id;
	}
	return 0;
}

static int load_section(struct ctx *c, int obj, struct section *s, int max, const char *what)
{
	const struct json *j = c->j;
	s->obj = obj;
	s->n = json_size(j, obj);
	if (s->n > max) {
		char why[64];
		snprintf(why, sizeof why, "more than %d %s", max, what);
		return bad(c->e, why);
	}
	for (int i = 0, k = obj + 1; i < s->n; i++, k = json_skip(j, k + 1))
		s->key[i] = k;
	return 0;
}

static int validate_tokens(struct ctx *c)
{
	const struct json *j = c->j;
	int n = json_size(j, c->tokens);
	for (int i = 0, k = c->tokens + 1; i < n; i++, k = json_skip(j, k + 1)) {
		uint64_t unused = 0;
		int t = k + 1, arr;
		bool canonical;
		char type[2];
		if (key_id(j, k, &canonical) < 0)
			return bad(c->e, "token id is not a number");
		if (json_type(j, t) != JSON_OBJECT || member_str(j, t, "type", type, sizeof type) != 0 ||
		    (arr = member_type(j, t, "keyslots", JSON_ARRAY)) < 0)
			return bad(c->e, "token without type or keyslots");
		if (ref_array(c, arr, &c->keyslot_members, &unused) != 0)
			return bad(c->e, "token refers to a missing keyslot");
	}
	c->v->ntokens = n;
	return 0;
}

static int validate_digests(struct ctx *c)
{
	const struct json *j = c->j;
	int n = json_size(j, c->digests);
	if (n > LUKS_MAX_DIGESTS)
		return bad(c->e, "more than 32 digests");
	for (int i = 0, k = c->digests + 1; i < n; i++, k = json_skip(j, k + 1)) {
		struct luks_digest *d = &c->v->digests[i];
		int o = k + 1, ks, sg;
		bool canonical;
		memset(d, 0, sizeof *d);
		if ((d->id = key_id(j, k, &canonical)) < 0)
			return bad(c->e, "digest id is not a number");
		char type[16];
		if (json_type(j, o) != JSON_OBJECT || member_str(j, o, "type", type, sizeof type) != 0 ||
		    (ks = member_type(j, o, "keyslots", JSON_ARRAY)) < 0 ||
		    (sg = member_type(j, o, "segments", JSON_ARRAY)) < 0)
			return bad(c->e, "digest without type, keyslots or segments");
		c->digest_keyslots[i] = ks;
		if (ref_array(c, ks, &c->keyslot_members, &d->keyslots) != 0)
			return bad(c->e, "digest refers to a missing keyslot");
		if (ref_array(c, sg, &c->segment_members, &d->segments) != 0)
			return bad(c->e, "digest refers to a missing segment");
		d->pbkdf2_type = strcmp(type, "pbkdf2") == 0;
		if (d->pbkdf2_type) {
			/* Only what unlocking reads, checked there: cryptsetup validates a digest's
			 * contents only when it verifies a key with it. */
			char b64[128];
			int64_t it;
			if (member_int(j, o, "iterations", &it) == 0 && it > 0)
				d->iterations = (uint64_t)it;
			if (member_str(j, o, "hash", d->hash, sizeof d->hash) != 0)
				d->hash[0] = '\0';
			if (member_str(j, o, "salt", b64, sizeof b64) != 0 ||
			    b64_decode(b64, strlen(b64), B64_STD, d->salt, sizeof d->salt, &d->salt_len) != 0)
				d->salt_len = 0;
			if (member_str(j, o, "digest", b64, sizeof b64) != 0 ||
			    b64_decode(b64, strlen(b64), B64_STD, d->value, sizeof d->value, &d->value_len) != 0)
				d->value_len = 0;
		}
	}
	c->v->ndigests = n;
	return 0;
}

static bool segment_has_flag(const struct json *j, int seg, const char *prefix, bool whole)
{
	int f = member_type(j, seg, "flags", JSON_ARRAY);
	if (f < 0)
		return false;
	int n = json_size(j, f);
	for (int i = 0, k = f + 1; i < n; i++, k = json_skip(j, k)) {
		char s[64];
		if (json_string_buf(j, k, s, sizeof s) != 0)
			continue;
		if (whole ? strcmp(s, prefix) == 0 : strncmp(s, prefix, strlen(prefix)) == 0)
			return true;
	}
	return false;
}

static int validate_crypt_segment(struct ctx *c, int o, struct luks_segment *s)
{
	const struct json *j = c->j;
	int iv = member_type(j, o, "iv_tweak", JSON_STRING), integ;
	char unused[2];
	if (iv < 0 || member_str(j, o, "encryption", s->encryption, sizeof s->encryption) != 0 ||
	    member_type(j, o, "sector_size", JSON_NUMBER) < 0)
		return bad(c->e, "crypt segment without iv_tweak, encryption or sector_size");
	if ((integ = json_member(j, o, "integrity")) >= 0) {
		if (json_type(j, integ) != JSON_OBJECT || member_str(j, integ, "type", unused, sizeof unused) != 0 ||
		    member_str(j, integ, "journal_encryption", unused, sizeof unused) != 0 ||
		    member_str(j, integ, "journal_integrity", unused, sizeof unused) != 0)
			return bad(c->e, "malformed segment integrity");
		s->integrity = true;
	}
	if (member_u32(j, o, "sector_size", &s->sector_size) != 0)
		return bad(c->e, "segment sector_size is not a 32-bit number");
	if (!s->sector_size || s->sector_size % 512)
		return bad(c->e, "segment sector_size is not a multiple of 512");
	if (numbered_u64(j, iv, &s->iv_tweak) != 0)
		return bad(c->e, "segment iv_tweak is not a number");
	if (!s->dynamic && s->size % s->sector_size)
		return bad(c->e, "segment size is not a multiple of its sector size");
	for (int d = 0; d < c->v->ndigests; d++)
		if (c->v->digests[d].segments >> s->id & 1)
			return 0;
	return bad(c->e, "crypt segment has no digest");
}

static int validate_segments(struct ctx *c)
{
	const struct json *j = c->j;
	int n = json_size(j, c->segments), first_backup = -1;
	if (n < 1)
		return bad(c->e, "no segment");
	bool seen[LUKS_MAX_SEGMENTS] = {false};
	for (int i = 0, k = c->segments + 1; i < n; i++, k = json_skip(j, k + 1)) {
		struct luks_segment *s = &c->v->segments[i];
		int o = k + 1, off, size, flags;
		bool canonical;
		memset(s, 0, sizeof *s);
		/* segment ids run 0..n-1 without a gap (checked below), so below 32 here */
		if ((s->id = key_id(j, k, &canonical)) < 0 || s->id >= LUKS_MAX_SEGMENTS)
			return bad(c->e, "segment id is not a number below 32");
		if (json_type(j, o) != JSON_OBJECT || member_str(j, o, "type", s->type, sizeof s->type) != 0 ||
		    (off = member_type(j, o, "offset", JSON_STRING)) < 0 ||
		    (size = member_type(j, o, "size", JSON_STRING)) < 0)
			return bad(c->e, "segment without type, offset or size");
		if (numbered_u64(j, off, &s->offset) != 0)
			return bad(c->e, "segment offset is not a number");
		if (json_string_eq(j, size, "dynamic"))
			s->dynamic = true;
		else if (numbered_u64(j, size, &s->size) != 0 || !s->size)
			return bad(c->e, "segment size is neither \"dynamic\" nor a number");
		if (s->offset % 512 || s->size % 512)
			return bad(c->e, "segment offset or size is not aligned to 512 bytes");
		if ((flags = json_member(j, o, "flags")) >= 0 &&
		    (json_type(j, flags) != JSON_ARRAY || strings_only(j, flags) != 0))
			return bad(c->e, "segment flags is not an array of strings");
		s->backup = segment_has_flag(j, o, "backup-", false);
		s->in_reencryption = segment_has_flag(j, o, "in-reencryption", true);
		if (s->backup) {
			if (first_backup < 0 || s->id < first_backup)
				first_backup = s->id;
		} else if (first_backup >= 0 && s->id >= first_backup)
			return bad(c->e, "regular segment behind a backup segment");
		if (json_string_eq(j, member_type(j, o, "type", JSON_STRING), "crypt") && validate_crypt_segment(c, o, s) != 0)
			return -1;
		/* the gap check below looks segments up by canonical id, as cryptsetup does */
		if (canonical)
			seen[s->id] = true;
	}
	if (first_backup == 0)
		return bad(c->e, "no regular segment");
	int regular = first_backup < 0 ? n : first_backup;
	for (int id = 0; id < n; id++)
		if (!seen[id])
			return bad(c->e, "gap in segment ids");
	/* regular segments: only the last may be dynamic, none may overlap */
	for (int a = 0; a < n; a++) {
		const struct luks_segment *x = &c->v->segments[a];
		if (x->id >= regular)
			continue;
		if (x->dynamic && x->id != regular - 1)
			return bad(c->e, "only the last segment may be dynamic");
		for (int b = 0; b < n; b++) {
			const struct luks_segment *y = &c->v->segments[b];
			if (a == b || y->id >= regular)
				continue;
			if (x->offset >= y->offset && (y->dynamic || x->offset - y->offset < y->size))
				return bad(c->e, "segments overlap");
		}
	}
	c->v->nsegments = n;
	return 0;
}

static enum kdf_type kdf_of(const char *name)
{
	if (strcmp(name, "pbkdf2") == 0)
		return KDF_PBKDF2;
	if (strcmp(name, "argon2i") == 0)
		return KDF_ARGON2I;
	if (strcmp(name, "argon2id") == 0)
		return KDF_ARGON2ID;
	return KDF_UNKNOWN;
}

/* A keyslot of type "luks2": kdf, af and area as luks2_keyslot_validate wants them.  Values
 * that are well-formed but absurd (iterations, Argon2 costs, stripes) are kept and refused when
 * the keyslot is used, as cryptsetup does. */
static int validate_luks2_keyslot(struct ctx *c, int o, struct luks_keyslot *s)
{
	const struct json *j = c->j;
	int kdf = json_member(j, o, "kdf"), af = json_member(j, o, "af"), area = json_member(j, o, "area");
	char b64[128];
	int64_t x;
	if (kdf < 0 || af < 0 || area < 0 || json_type(j, kdf) != JSON_OBJECT)
		return bad(c->e, "keyslot without kdf, af or area");
	if (member_str(j, kdf, "type", s->kdf_name, sizeof s->kdf_name) != 0)
		return bad(c->e, "keyslot kdf without type");
	s->kdf = kdf_of(s->kdf_name);
	if (s->kdf == KDF_PBKDF2) {
		if (member_str(j, kdf, "hash", s->kdf_hash, sizeof s->kdf_hash) != 0 ||
		    member_int(j, kdf, "iterations", &x) != 0 || member_str(j, kdf, "salt", b64, sizeof b64) != 0)
			return bad(c->e, "pbkdf2 keyslot without hash, iterations or salt");
		s->iterations = x > 0 ? (uint64_t)x : 0;
	} else if (s->kdf == KDF_ARGON2I || s->kdf == KDF_ARGON2ID) {
		if (member_int(j, kdf, "time", NULL) != 0 || member_int(j, kdf, "memory", NULL) != 0 ||
		    member_int(j, kdf, "cpus", NULL) != 0 || member_str(j, kdf, "salt", b64, sizeof b64) != 0)
			return bad(c->e, "argon2 keyslot without time, memory, cpus or salt");
		/* values out of 32-bit range stay 0 and the slot is refused when used */
		(void)member_u32(j, kdf, "time", &s->time);
		(void)member_u32(j, kdf, "memory", &s->memory_kib);
		(void)member_u32(j, kdf, "cpus", &s->lanes);
	}
	size_t salt_len = 0;
	s->salt_ok = member_str(j, kdf, "salt", b64, sizeof b64) == 0 &&
		     b64_decode(b64, strlen(b64), B64_STD, s->salt, sizeof s->salt, &salt_len) == 0 &&
		     salt_len == LUKS_SALT_BYTES;

	if (json_type(j, af) != JSON_OBJECT || !json_string_eq(j, member_type(j, af, "type", JSON_STRING), "luks1"))
		return bad(c->e, "keyslot af type is not luks1");
	if (member_str(j, af, "hash", s->af_hash, sizeof s->af_hash) != 0 || member_int(j, af, "stripes", &x) != 0)
		return bad(c->e, "keyslot af without hash or stripes");
	(void)member_u32(j, af, "stripes", &s->stripes);

	if (json_type(j, area) != JSON_OBJECT || !json_string_eq(j, member_type(j, area, "type", JSON_STRING), "raw"))
		return bad(c->e, "keyslot area type is not raw");
	if (member_str(j, area, "encryption", s->area_cipher, sizeof s->area_cipher) != 0 ||
	    member_int(j, area, "key_size", NULL) != 0 || member_type(j, area, "offset", JSON_STRING) < 0 ||
	    member_type(j, area, "size", JSON_STRING) < 0)
		return bad(c->e, "keyslot area without encryption, key_size, offset or size");
	(void)member_u32(j, area, "key_size", &s->area_key_size);
	return 0;
}

static int validate_keyslots(struct ctx *c)
{
	const struct json *j = c->j;
	int n = json_size(j, c->keyslots), reencrypt = 0;
	for (int i = 0, k = c->keyslots + 1; i < n; i++, k = json_skip(j, k + 1)) {
		struct luks_keyslot *s = &c->v->keyslots[i];
		int o = k + 1, pr, t;
		bool canonical;
		memset(s, 0, sizeof *s);
		s->digest = -1;
		s->priority = LUKS_PRIORITY_NORMAL;
		if ((s->id = key_id(j, k, &canonical)) < 0)
			return bad(c->e, "keyslot id is not a number");
		/* cryptsetup opens keyslots by the names "0".."31" only */
		s->addressable = canonical && s->id < LUKS_MAX_KEYSLOTS;
		char unused[2];
		if (json_type(j, o) != JSON_OBJECT || member_str(j, o, "type", unused, sizeof unused) != 0)
			return bad(c->e, "keyslot without type");
		t = member_type(j, o, "type", JSON_STRING);
		if (member_u32(j, o, "key_size", &s->key_size) != 0)
			return bad(c->e, "keyslot key_size is not a 32-bit number");
		if ((pr = json_member(j, o, "priority")) >= 0)
			s->priority = json_c_get_int(j, pr);
		if (json_string_eq(j, t, "luks2")) {
			s->luks2_type = true;
			if (validate_luks2_keyslot(c, o, s) != 0)
				return -1;
			/* exactly one digest lists this keyslot under the name cryptsetup uses for it */
			char name[16];
			int count = 0;
			snprintf(name, sizeof name, "%d", s->id);
			for (int d = 0; d < c->v->ndigests; d++)
				if (array_has(j, c->digest_keyslots[d], name)) {
					count++;
					s->digest = d;
				}
			if (count != 1)
				return bad(c->e, "keyslot is not assigned to exactly one digest");
		} else if (json_string_eq(j, t, "reencrypt")) {
			reencrypt++;
			c->v->reencrypt_keyslot = true;
		}
	}
	if (reencrypt > 1)
		return bad(c->e, "more than one reencrypt keyslot");
	c->v->nkeyslots = n;
	return 0;
}

static int validate_config(struct ctx *c, uint64_t json_area)
{
	const struct json *j = c->j;
	int cfg = c->config, f, req;
	uint64_t jsize;
	if (numbered_u64(j, member_type(j, cfg, "json_size", JSON_STRING), &jsize) != 0 ||
	    numbered_u64(j, member_type(j, cfg, "keyslots_size", JSON_STRING), &c->v->keyslots_size) != 0)
		return bad(c->e, "config without json_size or keyslots_size");
	if (jsize != json_area)
		return bad(c->e, "config json_size does not match the binary header");
	uint64_t md = jsize + LUKS2_HDR_BIN_LEN;
	if (jsize > LUKS2_HDR_MAX || md < LUKS2_HDR_MIN || md > LUKS2_HDR_MAX || (md & (md - 1)))
		return bad(c->e, "unsupported metadata size");
	if (c->v->keyslots_size % 4096 || c->v->keyslots_size > LUKS2_MAX_KEYSLOTS_SIZE)
		return bad(c->e, "unsupported keyslots_size");
	c->v->metadata_size = md;
	c->v->header_area_end = 2 * md + c->v->keyslots_size;
	/* keyslots must fit between the two metadata copies and the first data segment (backup
	 * segments of a reencryption do not count, as in cryptsetup) */
	uint64_t first = UINT64_MAX;
	for (int i = 0; i < c->v->nsegments; i++)
		if (!c->v->segments[i].backup && c->v->segments[i].offset < first)
			first = c->v->segments[i].offset;
	if (first && (first < c->v->keyslots_size || first - c->v->keyslots_size < 2 * md))
		return bad(c->e, "keyslots_size reaches into the data segment");
	if ((f = json_member(j, cfg, "flags")) >= 0) {
		if (json_type(j, f) != JSON_ARRAY || strings_only(j, f) != 0)
			return bad(c->e, "config flags is not an array of strings");
		int n = json_size(j, f);
		for (int i = 0, k = f + 1; i < n; i++, k = json_skip(j, k)) {
			static const struct {
				const char *name;
				unsigned flag;
			} known[] = {
				{"allow-discards", LUKS_FLAG_ALLOW_DISCARDS},
				{"same-cpu-crypt", LUKS_FLAG_SAME_CPU_CRYPT},
				{"submit-from-crypt-cpus", LUKS_FLAG_SUBMIT_FROM_CRYPT_CPUS},
				{"no-read-workqueue", LUKS_FLAG_NO_READ_WORKQUEUE},
				{"no-write-workqueue", LUKS_FLAG_NO_WRITE_WORKQUEUE},
			};
			for (size_t x = 0; x < sizeof known / sizeof known[0]; x++)
				if (json_string_eq(j, k, known[x].name))
					c->v->flags |= known[x].flag;
		}
	}
	if ((req = json_member(j, cfg, "requirements")) >= 0) {
		int m;
		if (json_type(j, req) != JSON_OBJECT)
			return bad(c->e, "config requirements is not an object");
		if ((m = json_member(j, req, "mandatory")) >= 0) {
			if (json_type(j, m) != JSON_ARRAY || strings_only(j, m) != 0)
				return bad(c->e, "mandatory requirements is not an array of strings");
			int n = json_size(j, m);
			size_t used = 0;
			for (int i = 0, k = m + 1; i < n; i++, k = json_skip(j, k)) {
				char s[64], *raw = json_string(j, k);
				luks_header_text(s, sizeof s, raw ? raw : "?");
				free(raw);
				int w = snprintf(c->v->requirements + used, sizeof c->v->requirements - used, "%s%s",
						 used ? "," : "", s);
				if (w < 0 || (size_t)w >= sizeof c->v->requirements - used)
					break;
				used += (size_t)w;
			}
		}
	}
	return 0;
}

/* Keyslot areas: inside the keyslots area, after both metadata copies, not overlapping. */
static int validate_areas(struct ctx *c)
{
	const struct json *j = c->j;
	int n = json_size(j, c->keyslots);
	for (int i = 0, k = c->keyslots + 1; i < n; i++, k = json_skip(j, k + 1)) {
		struct luks_keyslot *s = &c->v->keyslots[i];
		int area = json_member(j, k + 1, "area");
		if (area < 0 || json_type(j, area) != JSON_OBJECT || member_type(j, area, "type", JSON_STRING) < 0 ||
		    numbered_u64(j, member_type(j, area, "offset", JSON_STRING), &s->area_offset) != 0 ||
		    numbered_u64(j, member_type(j, area, "size", JSON_STRING), &s->area_size) != 0)
			return bad(c->e, "keyslot area without a numeric offset and size");
	}
	uint64_t end = c->v->header_area_end;
	for (int a = 0; a < n; a++) {
		const struct luks_keyslot *x = &c->v->keyslots[a];
		if (x->area_offset < 2 * c->v->metadata_size)
			return bad(c->e, "keyslot area inside the metadata");
		if (!x->area_size)
			return bad(c->e, "empty keyslot area");
		if (x->area_offset > end || x->area_size > end - x->area_offset)
			return bad(c->e, "keyslot area past the keyslots area");
		for (int b = 0; b < n; b++) {
			const struct luks_keyslot *y = &c->v->keyslots[b];
			if (a != b && x->area_offset >= y->area_offset && x->area_offset - y->area_offset < y->area_size)
				return bad(c->e, "keyslot areas overlap");
		}
	}
	return 0;
}

/* The JSON area: '{' first, the object, then only NUL bytes to the end. */
static int parse_and_validate(const char *area, uint64_t area_len, struct luks_volume *v, struct err *e)
{
	if (area_len == 0 || area[0] != '{')
		return bad(e, "JSON area does not start with '{'");
	const char *nul = memchr(area, '\0', area_len);
	if (!nul)
		return bad(e, "JSON area has no terminating NUL byte");
	size_t len = (size_t)(nul - area);
	for (size_t i = len; i < area_len; i++)
		if (area[i])
			return bad(e, "bytes other than NUL after the JSON");
	if (area[len - 1] != '}')
		return bad(e, "bytes after the JSON object");
	struct json j;
	if (json_parse(&j, area, len, LUKS_MAX_JSON_TOKENS, e) != 0)
		return err_wrap(e, "LUKS2 header JSON");
	struct ctx c = {.j = &j, .v = v, .e = e};
	int r = -1;
	if (json_type(&j, 0) != JSON_OBJECT ||
	    (c.keyslots = member_type(&j, 0, "keyslots", JSON_OBJECT)) < 0 ||
	    (c.tokens = member_type(&j, 0, "tokens", JSON_OBJECT)) < 0 ||
	    (c.digests = member_type(&j, 0, "digests", JSON_OBJECT)) < 0 ||
	    (c.segments = member_type(&j, 0, "segments", JSON_OBJECT)) < 0 ||
	    (c.config = member_type(&j, 0, "config", JSON_OBJECT)) < 0) {
		bad(e, "keyslots, tokens, digests, segments or config missing or not objects");
		goto out;
	}
	if (nested_too_deep(&j, 0, 0)) {
		bad(e, "JSON nested deeper than 32 levels (cryptsetup's limit)");
		goto out;
	}
	/* cryptsetup's order: tokens, digests, segments, keyslots, config, areas */
	if (load_section(&c, c.keyslots, &c.keyslot_members, LUKS_MAX_KEYSLOTS, "keyslots") ||
	    load_section(&c, c.segments, &c.segment_members, LUKS_MAX_SEGMENTS, "segments") ||
	    validate_tokens(&c) || validate_digests(&c) || validate_segments(&c) || validate_keyslots(&c) ||
	    validate_config(&c, area_len) || validate_areas(&c))
		goto out;
	v->json = malloc(len + 1);
	if (!v->json) {
		err_set(e, EXIT_INTERNAL, "reading the LUKS2 header: out of memory");
		goto out;
	}
	memcpy(v->json, area, len);
	v->json[len] = '\0';
	v->json_len = len;
	r = 0;
out:
	json_free(&j);
	return r;
}

/* --- binary headers ------------------------------------------------------------------------ */

enum hdr_state { HDR_OK, HDR_OBSOLETE, HDR_FAIL, HDR_FAIL_IO };

struct copy {
	unsigned char bin[LUKS2_HDR_BIN_LEN];
	char *area;
	uint64_t area_len;
};

static int checksum_ok(struct copy *h)
{
	char alg[33];
	luks_disk_str(alg, h->bin + 72, 32);
	const EVP_MD *md = luks_hash_md(alg);
	if (!md || EVP_MD_get_size(md) <= 0 || EVP_MD_get_size(md) > 64)
		return 0;
	unsigned char zeroed[LUKS2_HDR_BIN_LEN], out[EVP_MAX_MD_SIZE];
	unsigned outlen = 0;
	memcpy(zeroed, h->bin, sizeof zeroed);
	memset(zeroed + 448, 0, 64);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, zeroed, sizeof zeroed) == 1 &&
		 EVP_DigestUpdate(ctx, h->area, h->area_len) == 1 && EVP_DigestFinal_ex(ctx, out, &outlen) == 1;
	EVP_MD_CTX_free(ctx);
	return ok && sodium_memcmp(out, h->bin + 448, outlen) == 0;
}

/* hdr_read_disk: 0, or HDR_FAIL (bad) / HDR_FAIL_IO (unreadable). */
static int read_copy(const struct blk *b, uint64_t off, bool secondary, struct copy *h)
{
	h->area = NULL;
	if (blk_read(b, off, h->bin, sizeof h->bin) != 0)
		return HDR_FAIL_IO;
	if (memcmp(h->bin, secondary ? MAGIC2 : MAGIC1, 6) != 0 || (h->bin[6] << 8 | h->bin[7]) != 2 ||
	    be64(h->bin + 256) != off)
		return HDR_FAIL;
	uint64_t size = be64(h->bin + 8);
	if (size < LUKS2_HDR_MIN || size > LUKS2_HDR_MAX || (secondary && off != size))
		return HDR_FAIL;
	h->area_len = size - LUKS2_HDR_BIN_LEN;
	h->area = malloc(h->area_len);
	if (!h->area)
		return HDR_FAIL_IO;
	if (blk_read(b, off + LUKS2_HDR_BIN_LEN, h->area, h->area_len) != 0) {
		free(h->area);
		h->area = NULL;
		return HDR_FAIL_IO;
	}
	if (!checksum_ok(h)) {
		free(h->area);
		h->area = NULL;
		return HDR_FAIL;
	}
	return 0;
}

int luks2_read(const struct blk *b, struct luks_volume *v, struct err *e)
{
	struct copy *h = calloc(2, sizeof *h);
	struct luks_volume *pv = calloc(2, sizeof *pv);
	struct err why[2] = {{0, ""}, {0, ""}};
	enum hdr_state st[2] = {HDR_FAIL, HDR_FAIL};
	int r = -1;
	if (!h || !pv) {
		err_set(e, EXIT_INTERNAL, "reading the LUKS2 header: out of memory");
		goto out;
	}
	int rc = read_copy(b, 0, false, &h[0]);
	if (rc == 0)
		st[0] = parse_and_validate(h[0].area, h[0].area_len, &pv[0], &why[0]) == 0 ? HDR_OK : HDR_OBSOLETE;
	else
		st[0] = (enum hdr_state)rc;
	if (st[0] == HDR_OK || st[0] == HDR_OBSOLETE) {
		rc = read_copy(b, be64(h[0].bin + 8), true, &h[1]);
	} else {
		rc = HDR_FAIL;
		for (size_t i = 0; rc != 0 && i < sizeof HDR2_OFFSETS / sizeof HDR2_OFFSETS[0]; i++) {
			free(h[1].area);
			rc = read_copy(b, HDR2_OFFSETS[i], true, &h[1]);
		}
	}
	if (rc == 0)
		st[1] = parse_and_validate(h[1].area, h[1].area_len, &pv[1], &why[1]) == 0 ? HDR_OK : HDR_OBSOLETE;
	else
		st[1] = (enum hdr_state)rc;
	if (st[0] == HDR_OK && st[1] == HDR_OK) {
		if (be64(h[0].bin + 16) > be64(h[1].bin + 16))
			st[1] = HDR_OBSOLETE;
		else if (be64(h[0].bin + 16) < be64(h[1].bin + 16))
			st[0] = HDR_OBSOLETE;
	}
	int use = st[0] == HDR_OK ? 0 : st[1] == HDR_OK ? 1 : -1;
	if (use < 0) {
		if (why[0].msg[0])
			*e = why[0];
		else if (why[1].msg[0])
			*e = why[1];
		else if (st[0] == HDR_FAIL_IO && st[1] == HDR_FAIL_IO)
			err_set(e, EXIT_DEVICE, "reading the LUKS2 header: I/O error or device too small");
		else
			err_set(e, EXIT_CRYPTO, "LUKS2 header: no header copy with valid magic, size and checksum");
		goto out;
	}
	if (pv[use].header_area_end > b->size) {
		err_set(e, EXIT_CONFIG, "LUKS2 header: the device is too small for the header and keyslots (%" PRIu64
			" bytes needed)", pv[use].header_area_end);
		goto out;
	}
	*v = pv[use];
	pv[use].json = NULL;
	const unsigned char *bin = h[use].bin;
	v->version = 2;
	v->header_copy = use;
	v->seqid = be64(bin + 16);
	luks_disk_str(v->label, bin + 24, 48);
	luks_disk_str(v->csum_alg, bin + 72, 32);
	luks_disk_str(v->uuid, bin + 168, 40);
	luks_header_text(v->uuid, sizeof v->uuid, v->uuid);
	luks_disk_str(v->subsystem, bin + 208, 48);
	r = 0;
out:
	if (h) {
		free(h[0].area);
		free(h[1].area);
	}
	if (pv) {
		luks_volume_free(&pv[0]);
		luks_volume_free(&pv[1]);
	}
	free(h);
	free(pv);
	return r;
}
