/* SEV-SNP attestation report: decoding, JSON view, and the upstream sidecar's fake report. */
#include "report.h"

#include "encode.h"

#include <string.h>

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static unsigned tcb_byte(uint64_t raw, int i) { return (unsigned)(raw >> (8 * i) & 0xff); }

struct snp_tcb snp_tcb_decode(uint64_t raw, int turin)
{
	struct snp_tcb t = {.raw = raw, .microcode = tcb_byte(raw, 7)};
	if (turin) {
		t.fmc = tcb_byte(raw, 0);
		t.bootloader = tcb_byte(raw, 1);
		t.tee = tcb_byte(raw, 2);
		t.snp = tcb_byte(raw, 3);
	} else {
		t.bootloader = tcb_byte(raw, 0);
		t.tee = tcb_byte(raw, 1);
		t.snp = tcb_byte(raw, 6);
	}
	return t;
}

int snp_report_parse(const uint8_t *b, size_t len, struct snp_report *r, struct err *e)
{
	memset(r, 0, sizeof *r);
	if (len != SNP_REPORT_SIZE)
		return err_set(e, EXIT_ATTEST, "attestation report is %zu bytes, not %d", len,
			       SNP_REPORT_SIZE);
	r->version = le32(b);
	if (r->version != 1 && r->version != 2 && r->version != 3 && r->version != 5)
		return err_set(e, EXIT_ATTEST,
			       "attestation report version %u is not one this tool knows (1, 2, 3, 5)",
			       r->version);
	r->guest_svn = le32(b + 0x04);
	r->policy = le64(b + 0x08);
	memcpy(r->family_id, b + 0x10, 16);
	memcpy(r->image_id, b + 0x20, 16);
	r->vmpl = le32(b + 0x30);
	r->signature_algo = le32(b + 0x34);
	r->platform_info = le64(b + 0x40);
	r->flags = le32(b + 0x48);
	memcpy(r->report_data, b + 0x50, 64);
	memcpy(r->measurement, b + 0x90, 48);
	memcpy(r->host_data, b + 0xC0, 32);
	memcpy(r->id_key_digest, b + 0xE0, 48);
	memcpy(r->author_key_digest, b + 0x110, 48);
	memcpy(r->report_id, b + 0x140, 32);
	memcpy(r->report_id_ma, b + 0x160, 32);
	if (r->version >= 3) {
		r->cpuid_fam_id = b[0x188];
		r->cpuid_mod_id = b[0x189];
		r->cpuid_step = b[0x18A];
		r->turin = r->cpuid_fam_id == SNP_CPUID_FAMILY_TURIN;
	}
	r->current_tcb = snp_tcb_decode(le64(b + 0x38), r->turin);
	r->reported_tcb = snp_tcb_decode(le64(b + 0x180), r->turin);
	memcpy(r->chip_id, b + 0x1A0, 64);
	if (r->version >= 2) {
		r->committed_tcb = snp_tcb_decode(le64(b + 0x1E0), r->turin);
		r->current_build = b[0x1E8];
		r->current_minor = b[0x1E9];
		r->current_major = b[0x1EA];
		r->committed_build = b[0x1EC];
		r->committed_minor = b[0x1ED];
		r->committed_major = b[0x1EE];
		r->launch_tcb = snp_tcb_decode(le64(b + 0x1F0), r->turin);
	}
	if (r->version >= 5) {
		r->launch_mit_vector = le64(b + 0x1F8);
		r->current_mit_vector = le64(b + 0x200);
	}
	memcpy(r->sig_r, b + 0x2A0, 72);
	memcpy(r->sig_s, b + 0x2E8, 72);
	return 0;
}

static void put_hex(struct strbuf *sb, const char *name, const uint8_t *p, size_t n, int comma)
{
	char hex[2 * 72 + 1];
	hex_encode(p, n, hex);
	sb_printf(sb, "  \"%s\": \"%s\"%s\n", name, hex, comma ? "," : "");
}

static void put_tcb(struct strbuf *sb, const char *name, const struct snp_tcb *t, int turin)
{
	sb_printf(sb, "  \"%s\": {\"raw\": \"%016llx\", ", name, (unsigned long long)t->raw);
	if (turin)
		sb_printf(sb, "\"fmc\": %u, ", t->fmc);
	sb_printf(sb, "\"bootloader\": %u, \"tee\": %u, \"snp\": %u, \"microcode\": %u},\n", t->bootloader,
		  t->tee, t->snp, t->microcode);
}

void snp_report_json(const struct snp_report *r, struct strbuf *sb)
{
	sb_printf(sb, "{\n  \"version\": %u,\n  \"guest_svn\": %u,\n", r->version, r->guest_svn);
	sb_printf(sb,
		  "  \"policy\": {\"raw\": \"%016llx\", \"abi_major\": %u, \"abi_minor\": %u, "
		  "\"smt_allowed\": %s, \"migrate_ma\": %s, \"debug\": %s, \"single_socket\": %s},\n",
		  (unsigned long long)r->policy, (unsigned)(r->policy >> 8 & 0xff),
		  (unsigned)(r->policy & 0xff), r->policy & SNP_POLICY_SMT ? "true" : "false",
		  r->policy & SNP_POLICY_MIGRATE_MA ? "true" : "false",
		  r->policy & SNP_POLICY_DEBUG ? "true" : "false",
		  r->policy & SNP_POLICY_SINGLE_SOCKET ? "true" : "false");
	put_hex(sb, "family_id", r->family_id, 16, 1);
	put_hex(sb, "image_id", r->image_id, 16, 1);
	sb_printf(sb, "  \"vmpl\": %u,\n  \"signature_algo\": %u,\n", r->vmpl, r->signature_algo);
	put_tcb(sb, "current_tcb", &r->current_tcb, r->turin);
	sb_printf(sb, "  \"platform_info\": \"%016llx\",\n", (unsigned long long)r->platform_info);
	sb_printf(sb, "  \"author_key_en\": %s,\n  \"mask_chip_key\": %s,\n  \"signing_key\": %u,\n",
		  r->flags & 1 ? "true" : "false", r->flags & 2 ? "true" : "false",
		  (unsigned)(r->flags >> 2 & 7));
	put_hex(sb, "report_data", r->report_data, 64, 1);
	put_hex(sb, "measurement", r->measurement, 48, 1);
	put_hex(sb, "host_data", r->host_data, 32, 1);
	put_hex(sb, "id_key_digest", r->id_key_digest, 48, 1);
	put_hex(sb, "author_key_digest", r->author_key_digest, 48, 1);
	put_hex(sb, "report_id", r->report_id, 32, 1);
	put_hex(sb, "report_id_ma", r->report_id_ma, 32, 1);
	put_tcb(sb, "reported_tcb", &r->reported_tcb, r->turin);
	if (r->version >= 3)
		sb_printf(sb, "  \"cpuid\": {\"family\": %u, \"model\": %u, \"stepping\": %u},\n",
			  r->cpuid_fam_id, r->cpuid_mod_id, r->cpuid_step);
	put_hex(sb, "chip_id", r->chip_id, 64, 1);
	if (r->version >= 2) {
		put_tcb(sb, "committed_tcb", &r->committed_tcb, r->turin);
		sb_printf(sb, "  \"current_firmware\": \"%u.%u.%u\",\n  \"committed_firmware\": \"%u.%u.%u\",\n",
			  r->current_major, r->current_minor, r->current_build, r->committed_major,
			  r->committed_minor, r->committed_build);
		put_tcb(sb, "launch_tcb", &r->launch_tcb, r->turin);
	}
	if (r->version >= 5)
		sb_printf(sb, "  \"launch_mit_vector\": \"%016llx\",\n  \"current_mit_vector\": \"%016llx\",\n",
			  (unsigned long long)r->launch_mit_vector,
			  (unsigned long long)r->current_mit_vector);
	put_hex(sb, "signature_r", r->sig_r, 72, 1);
	put_hex(sb, "signature_s", r->sig_s, 72, 0);
	sb_puts(sb, "}\n");
}

/* The fixed fields of the upstream sidecar's fake report (its FetchAttestationReportByte for the
 * fake fetcher), set field by field so the layout is visible. */
static const uint8_t fake_measurement[48] = {
	0xb5, 0x79, 0xc7, 0xd6, 0xb8, 0x9f, 0x39, 0x14, 0x65, 0x9a, 0xbe, 0x09, 0xa0, 0x04, 0xa5, 0x8a,
	0x1e, 0x77, 0x84, 0x6b, 0x65, 0xbb, 0xda, 0xc9, 0xe2, 0x9b, 0xd8, 0xf2, 0xf3, 0x1b, 0x31, 0xaf,
	0x44, 0x5a, 0x5d, 0xd4, 0x0f, 0x76, 0xf7, 0x1e, 0xcd, 0xd7, 0x31, 0x17, 0xf1, 0xd5, 0x92, 0xa3};
static const uint8_t fake_id_key_digest[48] = {
	0xd1, 0x88, 0xac, 0x79, 0x38, 0x60, 0x22, 0xae, 0xc7, 0xaa, 0x4e, 0x72, 0xa7, 0xe8, 0x7b, 0x0a,
	0x8e, 0x0e, 0x80, 0x09, 0x18, 0x33, 0x34, 0xbb, 0x0f, 0xe4, 0xf9, 0x7e, 0xd8, 0x94, 0x36, 0xf3,
	0x60, 0xb3, 0x64, 0x4c, 0xd8, 0x38, 0x2c, 0x7a, 0x14, 0x53, 0x1a, 0x87, 0xb8, 0x1a, 0x8f, 0x36};
static const uint8_t fake_report_id[32] = {
	0x2e, 0x88, 0x0a, 0xdd, 0x9a, 0x31, 0x07, 0x7e, 0x5e, 0x8f, 0x35, 0x68, 0xb4, 0xc4, 0x45, 0x1f,
	0x0f, 0xea, 0x43, 0x72, 0xf6, 0x6e, 0x3d, 0xf3, 0xc0, 0xca, 0x3b, 0xa2, 0x6f, 0x44, 0x7d, 0xb2};
static const uint8_t fake_chip_id[64] = {
	0xe6, 0xc8, 0x67, 0x96, 0xcd, 0x44, 0xb0, 0xbc, 0x6b, 0x7c, 0x0d, 0x4f, 0xda, 0xb3, 0x3e, 0x28,
	0x07, 0xe1, 0x4b, 0x5f, 0xc4, 0x53, 0x8b, 0x37, 0x50, 0x92, 0x11, 0x69, 0xd9, 0x7b, 0xcf, 0x44,
	0x47, 0xc7, 0xd3, 0xab, 0x2a, 0x7c, 0x25, 0xf7, 0x4c, 0x16, 0x41, 0xe2, 0x88, 0x5c, 0x10, 0x11,
	0xd0, 0x25, 0xcc, 0x53, 0x6f, 0x5c, 0x9a, 0x25, 0x04, 0x71, 0x31, 0x36, 0xc7, 0x87, 0x7f, 0x48};

void snp_fake_report(const uint8_t report_data[64], const uint8_t host_data[32],
		     uint8_t out[SNP_REPORT_SIZE])
{
	memset(out, 0, SNP_REPORT_SIZE);
	put_le32(out + 0x00, 1);		  /* VERSION */
	put_le32(out + 0x04, 1);		  /* GUEST_SVN */
	put_le64(out + 0x08, 0x3001f);		  /* POLICY: ABI 0.31, SMT allowed, no debug */
	out[0x10] = 1;				  /* FAMILY_ID */
	out[0x20] = 2;				  /* IMAGE_ID */
	put_le32(out + 0x30, 0);		  /* VMPL */
	put_le32(out + 0x34, 1);		  /* SIGNATURE_ALGO: ECDSA P-384 */
	put_le64(out + 0x38, 0x3100000000000000); /* CURRENT_TCB: microcode 0x31 */
	put_le64(out + 0x40, 1);		  /* PLATFORM_INFO: SMT enabled */
	memcpy(out + 0x50, report_data, 64);
	memcpy(out + 0x90, fake_measurement, 48);
	memcpy(out + 0xC0, host_data, 32);
	memcpy(out + 0xE0, fake_id_key_digest, 48);
	memcpy(out + 0x140, fake_report_id, 32);
	memset(out + 0x160, 0xff, 32);		   /* REPORT_ID_MA: no migration agent */
	put_le64(out + 0x180, 0x3100000000000000); /* REPORTED_TCB */
	memcpy(out + 0x1A0, fake_chip_id, 64);
	/* the signature stays zero */
}

int snp_report_unsigned(const uint8_t buf[SNP_REPORT_SIZE])
{
	for (size_t i = SNP_SIGNED_SIZE; i < SNP_SIGNED_SIZE + 2 * SNP_SIG_COMPONENT_SIZE; i++)
		if (buf[i])
			return 0;
	return 1;
}
