/* Verifying a report: VCEK <- ASK <- ARK (RSASSA-PSS), ARK pinned to AMD's published roots, the
 * report's ECDSA P-384 signature, and the TCB and chip the VCEK was issued for. */
#ifndef ENCFS_ATTEST_VERIFY_H
#define ENCFS_ATTEST_VERIFY_H

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "report.h"

struct amd_chain {
	X509 *vcek, *ask, *ark;
};

/* Sorts the certificates of a PEM text (any order; VCEK, ASK and ARK exactly once) into roles:
 * the ARK is self-issued, the VCEK holds the EC key, the ASK is the other.  EXIT_CRYPTO. */
int amd_chain_load(const char *pem, size_t len, struct amd_chain *c, struct err *e);
void amd_chain_free(struct amd_chain *c);

/* ARK self-signed and pinned (AMD Milan, Genoa or Turin, or $ENCFS_AMD_ROOTS), ASK signed by ARK and
 * VCEK by ASK with RSASSA-PSS, all within their validity, VCEK an ECDSA P-384 key.  EXIT_CRYPTO. */
int amd_chain_verify(const struct amd_chain *c, struct err *e);

/* The ECDSA P-384/SHA-384 signature of report bytes [0, 0x2A0) under the VCEK.  EXIT_CRYPTO. */
int report_verify_signature(const uint8_t report[SNP_REPORT_SIZE], const struct snp_report *r,
			    X509 *vcek, struct err *e);

/* The TCB the VCEK was issued for, from its AMD extensions (1.3.6.1.4.1.3704.1.3.x), as a raw
 * TCB_VERSION in the Milan/Genoa or (turin) the Turin layout.  -1 when they are missing or
 * malformed. */
int vcek_tcb(X509 *vcek, int turin, uint64_t *tcb);
/* The hwID extension (1.3.6.1.4.1.3704.1.4): the CHIP_ID the VCEK belongs to. */
int vcek_hwid(X509 *vcek, uint8_t out[SNP_CHIP_ID_SIZE]);

/* The whole `verify` job: parse, chain, signature, TCB (chain's tcbm and VCEK extensions) and
 * chip id.  have_tcbm is 0 when the certificate source gave no tcbm. */
int report_verify(const uint8_t report[SNP_REPORT_SIZE], const char *chain_pem, size_t chain_len,
		  int have_tcbm, uint64_t tcbm, struct snp_report *r, struct err *e);

#endif
