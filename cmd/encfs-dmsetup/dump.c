/* encfs-dmsetup dump: the header in cryptsetup luksDump's layout (LUKS2 and LUKS1 each in their
 * own, as cryptsetup 2.6 prints them), or as JSON.  No secrets: a
 * header holds none (salts and digests are public). Strings from the header are printed with
 * anything but printable ASCII escaped, since the header is untrusted. */
#include "luks.h"

#include "json.h"
#include "strbuf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void put_safe(FILE *out, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c < 0x7f && c != '\\')
			fputc(c, out);
		else
			fprintf(out, "\\x%02x", c);
	}
}

static void hexdump(FILE *out, const unsigned char *p, size_t n, const char *indent)
{
	for (size_t i = 0; i < n; i++) {
		if (i && i % 16 == 0)
			fprintf(out, "\n%s", indent);
		fprintf(out, "%02x ", p[i]);
	}
	fputc('\n', out);
}

static void put_priority(FILE *out, int p)
{
	if (p == LUKS_PRIORITY_PREFER || p == LUKS_PRIORITY_NORMAL || p == LUKS_PRIORITY_IGNORE)
		fputs(p == LUKS_PRIORITY_PREFER ? "preferred" : p == LUKS_PRIORITY_NORMAL ? "normal" : "ignored", out);
	else
		fprintf(out, "ignored (%d)", p); /* cryptsetup tries no such keyslot */
}

/* cryptsetup's crypt_log_hex: each byte and a space */
static void hexbytes(FILE *out, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%02x ", p[i]);
}

/* LUKS1 as cryptsetup 2.6 prints it (lib/setup.c, _luks_dump): all eight key slots */
static void dump_luks1(const struct luks_volume *v, const char *device, FILE *out)
{
	fprintf(out, "LUKS header information for ");
	put_safe(out, device);
	fprintf(out, "\n\nVersion:       \t1\nCipher name:   \t");
	put_safe(out, v->cipher_name);
	fprintf(out, "\nCipher mode:   \t");
	put_safe(out, v->cipher_mode);
	fprintf(out, "\nHash spec:     \t");
	put_safe(out, v->hash_spec);
	fprintf(out, "\nPayload offset:\t%" PRIu64 "\n", v->nsegments ? v->segments[0].offset / 512 : 0);
	fprintf(out, "MK bits:       \t%" PRIu32 "\nMK digest:     \t", v->key_bytes * 8);
	hexbytes(out, v->mk_digest, 20);
	fprintf(out, "\nMK salt:       \t");
	hexbytes(out, v->mk_digest_salt, 16);
	fprintf(out, "\n               \t");
	hexbytes(out, v->mk_digest_salt + 16, 16);
	fprintf(out, "\nMK iterations: \t%" PRIu32 "\nUUID:          \t", v->mk_digest_iterations);
	put_safe(out, v->uuid);
	fprintf(out, "\n\n");
	for (int id = 0; id < 8; id++) {
		const struct luks_keyslot *s = NULL;
		for (int i = 0; i < v->nkeyslots; i++)
			if (v->keyslots[i].id == id)
				s = &v->keyslots[i];
		if (!s) {
			fprintf(out, "Key Slot %d: DISABLED\n", id);
			continue;
		}
		fprintf(out, "Key Slot %d: ENABLED\n\tIterations:         \t%" PRIu64 "\n\tSalt:               \t",
			id, s->iterations);
		hexbytes(out, s->salt, 16);
		fprintf(out, "\n\t                      \t");
		hexbytes(out, s->salt + 16, 16);
		fprintf(out, "\n\tKey material offset:\t%" PRIu64 "\n\tAF stripes:            \t%" PRIu32 "\n",
			s->area_offset / 512, s->stripes);
	}
}

/* LUKS2 tokens as cryptsetup 2.6 lists them (hdr_dump_tokens): by id, type, the keyring key's
 * description for luks2-keyring, and each keyslot.  From the validated JSON. */
static void dump_tokens(const struct luks_volume *v, FILE *out)
{
	fprintf(out, "Tokens:\n");
	struct json j;
	if (!v->json || json_parse(&j, v->json, v->json_len, LUKS_MAX_JSON_TOKENS, NULL) != 0)
		return;
	int tokens = json_member(&j, 0, "tokens");
	for (int id = 0; id < LUKS_MAX_KEYSLOTS; id++) {
		char name[4];
		snprintf(name, sizeof name, "%d", id);
		int t = json_member(&j, tokens, name);
		char type[64] = "", desc[256] = "";
		if (t < 0)
			continue;
		(void)json_string_buf(&j, json_member(&j, t, "type"), type, sizeof type);
		fprintf(out, "  %d: ", id);
		put_safe(out, type);
		fputc('\n', out);
		if (strcmp(type, "luks2-keyring") == 0 &&
		    json_string_buf(&j, json_member(&j, t, "key_description"), desc, sizeof desc) == 0) {
			fprintf(out, "\tKey description: ");
			put_safe(out, desc);
			fputc('\n', out);
		}
		/* the elements in one walk (json_element from the start each time would be quadratic
		 * in a hostile header's list) */
		int ks = json_member(&j, t, "keyslots");
		for (int i = 0, el = ks + 1; i < json_size(&j, ks); i++, el = json_skip(&j, el)) {
			char slot[16];
			if (json_string_buf(&j, el, slot, sizeof slot) != 0)
				continue;
			fprintf(out, "\tKeyslot:    ");
			put_safe(out, slot);
			fputc('\n', out);
		}
	}
	json_free(&j);
}

void luks_dump_text(const struct luks_volume *v, const char *device, FILE *out)
{
	if (v->version == 1) {
		dump_luks1(v, device, out);
		return;
	}
	fprintf(out, "LUKS header information\n");
	fprintf(out, "Version:       \t%d\n", v->version);
	if (v->version == 2) {
		fprintf(out, "Epoch:         \t%" PRIu64 "\n", v->seqid);
		fprintf(out, "Metadata area: \t%" PRIu64 " [bytes]\n", v->metadata_size);
		fprintf(out, "Keyslots area: \t%" PRIu64 " [bytes]\n", v->keyslots_size);
		if (v->header_copy) /* not in cryptsetup's layout: said only when it matters */
			fprintf(out, "Header copy:   \tsecondary\n");
	}
	fprintf(out, "UUID:          \t");
	put_safe(out, v->uuid[0] ? v->uuid : "(no UUID)");
	fputc('\n', out);
	if (v->version == 2) {
		fprintf(out, "Label:         \t");
		put_safe(out, v->label[0] ? v->label : "(no label)");
		fprintf(out, "\nSubsystem:     \t");
		put_safe(out, v->subsystem[0] ? v->subsystem : "(no subsystem)");
		fprintf(out, "\nFlags:       \t");
		if (!v->flags)
			fprintf(out, "(no flags)");
		static const char *names[] = {"allow-discards", "same-cpu-crypt", "submit-from-crypt-cpus",
					      "no-read-workqueue", "no-write-workqueue"};
		for (int i = 0; i < 5; i++)
			if (v->flags & (1u << i))
				fprintf(out, "%s ", names[i]);
		fputc('\n', out);
		if (v->requirements[0]) {
			fprintf(out, "Requirements:\t");
			put_safe(out, v->requirements);
			fputc('\n', out);
		}
	} else {
		fprintf(out, "Hash spec:     \t");
		put_safe(out, v->hash_spec);
		fprintf(out, "\nMK iterations: \t%" PRIu32 "\nMK digest:     \t", v->mk_digest_iterations);
		hexdump(out, v->mk_digest, 20, "               \t");
	}
	fprintf(out, "\nData segments:\n");
	for (int i = 0; i < v->nsegments; i++) {
		const struct luks_segment *s = &v->segments[i];
		fprintf(out, "  %d: ", s->id);
		put_safe(out, s->type);
		fprintf(out, "\n\toffset: %" PRIu64 " [bytes]\n", s->offset);
		if (s->dynamic)
			fprintf(out, "\tlength: (whole device)\n");
		else
			fprintf(out, "\tlength: %" PRIu64 " [bytes]\n", s->size);
		if (strcmp(s->type, "crypt") == 0) {
			fprintf(out, "\tcipher: ");
			put_safe(out, s->encryption);
			fprintf(out, "\n\tsector: %" PRIu32 " [bytes]\n", s->sector_size);
			if (s->integrity)
				fprintf(out, "\tintegrity: yes\n");
		}
	}
	fprintf(out, "\nKeyslots:\n");
	for (int i = 0; i < v->nkeyslots; i++) {
		const struct luks_keyslot *s = &v->keyslots[i];
		fprintf(out, "  %d: %s\n", s->id, s->luks2_type ? (v->version == 2 ? "luks2" : "ENABLED") : "other");
		if (!s->luks2_type)
			continue;
		fprintf(out, "\tKey:        %" PRIu32 " bits\n", s->key_size * 8);
		fprintf(out, "\tPriority:   ");
		put_priority(out, s->priority);
		fputc('\n', out);
		fprintf(out, "\tCipher:     ");
		put_safe(out, s->area_cipher);
		fprintf(out, "\n\tCipher key: %" PRIu32 " bits\n\tPBKDF:      ", s->area_key_size * 8);
		put_safe(out, s->kdf_name);
		fputc('\n', out);
		if (s->kdf == KDF_PBKDF2) {
			fprintf(out, "\tHash:       ");
			put_safe(out, s->kdf_hash);
			fprintf(out, "\n\tIterations: %" PRIu64 "\n", s->iterations);
		} else if (s->kdf != KDF_UNKNOWN) {
			fprintf(out, "\tTime cost:  %" PRIu32 "\n\tMemory:     %" PRIu32 "\n\tThreads:    %" PRIu32 "\n",
				s->time, s->memory_kib, s->lanes);
		}
		if (s->salt_ok) {
			fprintf(out, "\tSalt:       ");
			hexdump(out, s->salt, LUKS_SALT_BYTES, "\t            ");
		}
		fprintf(out, "\tAF stripes: %" PRIu32 "\n\tAF hash:    ", s->stripes);
		put_safe(out, s->af_hash);
		fprintf(out, "\n\tArea offset:%" PRIu64 " [bytes]\n\tArea length:%" PRIu64 " [bytes]\n", s->area_offset,
			s->area_size);
		if (s->digest >= 0)
			fprintf(out, "\tDigest ID:  %d\n", v->digests[s->digest].id);
	}
	if (v->version == 2) {
		dump_tokens(v, out);
		fprintf(out, "Digests:\n");
		for (int i = 0; i < v->ndigests; i++) {
			const struct luks_digest *d = &v->digests[i];
			fprintf(out, "  %d: %s\n", d->id, d->pbkdf2_type ? "pbkdf2" : "other");
			if (!d->pbkdf2_type)
				continue;
			fprintf(out, "\tHash:       ");
			put_safe(out, d->hash);
			fprintf(out, "\n\tIterations: %" PRIu64 "\n\tSalt:       ", d->iterations);
			hexdump(out, d->salt, d->salt_len, "\t            ");
			fprintf(out, "\tDigest:     ");
			hexdump(out, d->value, d->value_len, "\t            ");
		}
	}
}

static void hex_json(struct strbuf *sb, const unsigned char *p, size_t n)
{
	sb_puts(sb, "\"");
	for (size_t i = 0; i < n; i++)
		sb_printf(sb, "%02x", p[i]);
	sb_puts(sb, "\"");
}

int luks_dump_json(const struct luks_volume *v, FILE *out)
{
	struct strbuf sb = {0};
	sb_printf(&sb, "{\"version\":%d,\"uuid\":", v->version);
	sb_json_string(&sb, v->uuid);
	if (v->version == 2) {
		sb_puts(&sb, ",\"label\":");
		sb_json_string(&sb, v->label);
		sb_puts(&sb, ",\"subsystem\":");
		sb_json_string(&sb, v->subsystem);
		sb_printf(&sb, ",\"epoch\":%" PRIu64 ",\"checksum_algorithm\":", v->seqid);
		sb_json_string(&sb, v->csum_alg);
		sb_printf(&sb, ",\"header_copy\":\"%s\",\"metadata\":", v->header_copy ? "secondary" : "primary");
		sb_putn(&sb, v->json, v->json_len); /* validated JSON, as on disk */
	} else {
		const struct luks_segment *s = &v->segments[0];
		sb_puts(&sb, ",\"cipher\":");
		sb_json_string(&sb, s->encryption);
		sb_puts(&sb, ",\"hash\":");
		sb_json_string(&sb, v->hash_spec);
		sb_printf(&sb, ",\"payload_offset\":%" PRIu64 ",\"key_bytes\":%" PRIu32 ",\"mk_digest_iterations\":%" PRIu32
			  ",\"mk_digest\":", s->offset / 512, v->key_bytes, v->mk_digest_iterations);
		hex_json(&sb, v->mk_digest, 20);
		sb_puts(&sb, ",\"mk_digest_salt\":");
		hex_json(&sb, v->mk_digest_salt, 32);
		sb_puts(&sb, ",\"keyslots\":{");
		for (int i = 0; i < v->nkeyslots; i++) {
			const struct luks_keyslot *k = &v->keyslots[i];
			sb_printf(&sb, "%s\"%d\":{\"iterations\":%" PRIu64 ",\"offset\":%" PRIu64 ",\"salt\":", i ? "," : "",
				  k->id, k->iterations, k->area_offset / 512);
			hex_json(&sb, k->salt, LUKS_SALT_BYTES);
			sb_puts(&sb, "}");
		}
		sb_puts(&sb, "}");
	}
	sb_puts(&sb, "}\n");
	int r = sb.failed ? -1 : (fputs(sb.data, out) < 0 ? -1 : 0);
	sb_free(&sb);
	return r;
}
