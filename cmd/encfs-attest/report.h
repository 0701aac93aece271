/* The SEV-SNP ATTESTATION_REPORT (AMD SEV-SNP Firmware ABI, "ATTESTATION_REPORT Structure"):
 * 1184 bytes, little-endian fields, signed with ECDSA P-384 over bytes 0..0x29F. */
#ifndef ENCFS_ATTEST_REPORT_H
#define ENCFS_ATTEST_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "strbuf.h"

#define SNP_REPORT_SIZE 1184
#define SNP_SIGNED_SIZE 0x2A0 /* the signature covers bytes [0, 0x2A0) */
#define SNP_REPORT_DATA_OFF 0x50
#define SNP_REPORT_DATA_SIZE 64
#define SNP_HOST_DATA_OFF 0xC0
#define SNP_HOST_DATA_SIZE 32
#define SNP_CHIP_ID_SIZE 64
#define SNP_SIG_ALGO_ECDSA_P384_SHA384 1
#define SNP_SIG_COMPONENT_SIZE 72 /* R and S, little-endian, zero-extended */
#define SNP_SIGNING_KEY_VCEK 0	  /* SIGNING_KEY (bits 4:2 at 0x48): 0 VCEK, 1 VLEK, 7 none */

/* Guest policy bits (ABI "GUEST_POLICY Structure"). */
#define SNP_POLICY_SMT (1ull << 16)
#define SNP_POLICY_MIGRATE_MA (1ull << 18)
#define SNP_POLICY_DEBUG (1ull << 19)
#define SNP_POLICY_SINGLE_SOCKET (1ull << 20)

/* A TCB_VERSION (ABI "TCB_VERSION Structure").  Milan and Genoa: byte 0 boot loader, 1 TEE,
 * 6 SNP firmware, 7 microcode (2..5 reserved).  Turin (CPUID family 1Ah, which only reports of
 * version 3 and later name): byte 0 FMC, 1 boot loader, 2 TEE, 3 SNP, 7 microcode (4..6 reserved). */
struct snp_tcb {
	uint64_t raw;
	unsigned fmc; /* Turin only */
	unsigned bootloader, tee, snp, microcode;
};

#define SNP_CPUID_FAMILY_TURIN 0x1A

struct snp_report {
	uint32_t version;
	uint32_t guest_svn;
	uint64_t policy;
	uint8_t family_id[16];
	uint8_t image_id[16];
	uint32_t vmpl;
	uint32_t signature_algo;
	struct snp_tcb current_tcb;
	uint64_t platform_info;
	uint32_t flags;	     /* bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 2..4 SIGNING_KEY */
	uint8_t report_data[64];
	uint8_t measurement[48];
	uint8_t host_data[32];
	uint8_t id_key_digest[48];
	uint8_t author_key_digest[48];
	uint8_t report_id[32];
	uint8_t report_id_ma[32];
	struct snp_tcb reported_tcb;
	uint8_t cpuid_fam_id, cpuid_mod_id, cpuid_step; /* version 3 and later */
	int turin;					/* its TCB_VERSIONs use the Turin layout */
	uint8_t chip_id[64];
	struct snp_tcb committed_tcb;
	uint8_t current_build, current_minor, current_major;
	uint8_t committed_build, committed_minor, committed_major;
	struct snp_tcb launch_tcb;
	uint64_t launch_mit_vector, current_mit_vector; /* version 5 and later */
	uint8_t sig_r[72], sig_s[72];			/* little-endian, as in the report */
};

/* Decodes buf[0..len).  Accepts versions 2, 3 and 5 (and 1, the layout of early firmware and of
 * the upstream sidecar's fake report); any other version or a wrong size is an error naming what
 * was found (code EXIT_ATTEST).  Fields a version does not define are left zero.  Version 3 added
 * CPUID_FAM_ID/MOD_ID/STEP (0x188..0x18A), which tell a Turin report (TCB layout) from the others;
 * version 5 added LAUNCH_MIT_VECTOR and CURRENT_MIT_VECTOR (0x1F8, 0x200). */
int snp_report_parse(const uint8_t *buf, size_t len, struct snp_report *r, struct err *e);

/* The TCB fields of a raw TCB_VERSION value, in the Turin layout when turin is set. */
struct snp_tcb snp_tcb_decode(uint64_t raw, int turin);

/* The report as one JSON object (hex strings for byte fields, numbers for integers, the policy
 * and TCB fields decoded), for `verify` and `report --json`. */
void snp_report_json(const struct snp_report *r, struct strbuf *sb);

/* Builds the upstream sidecar's fake report into out: its fixed fields (version 1, policy
 * 0x3001f, family and image ids 1 and 2, its measurement, chip id and reported TCB), the given
 * REPORT_DATA and HOST_DATA, and an all-zero signature, so no verifier can take it for real. */
void snp_fake_report(const uint8_t report_data[64], const uint8_t host_data[32],
		     uint8_t out[SNP_REPORT_SIZE]);

/* True when the signature area is all zeros (a fake report). */
int snp_report_unsigned(const uint8_t buf[SNP_REPORT_SIZE]);

#endif
