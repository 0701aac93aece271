/* The evidence an ACI container is given (security context) and the VCEK chain from THIM. */
#ifndef ENCFS_ATTEST_EVIDENCE_H
#define ENCFS_ATTEST_EVIDENCE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "report.h"

#define EVIDENCE_FILE_MAX (4u << 20) /* base64 files: policy ~ KiB, endorsements ~ 15 KiB */

/* THIM's certification JSON ({vcekCert, tcbm, certificateChain, cacheControl}). */
struct thim_certs {
	char *vcek_pem;	 /* malloc'd */
	char *chain_pem; /* ASK then ARK, malloc'd */
	uint64_t tcbm;	 /* the TCB the VCEK was issued for */
	int have_tcbm;
};

struct evidence {
	char where[PATH_MAX];	  /* the directory, or "environment", or "" when there is none */
	char *policy_b64;	  /* security-policy-base64 as given; NULL when absent */
	struct thim_certs certs;  /* empty when host-amd-cert-base64 was absent or empty */
	uint8_t *reference_info;  /* decoded reference-info-base64 (COSE_Sign1); NULL when absent */
	size_t reference_info_len;
};

/* Where to refresh the certificates: azure_info.certcache of EncfsSideCarArgs, or IMDS THIM. */
struct certcache {
	char endpoint_type[16]; /* "AzCache", "LocalTHIM", "AMD"; "" means IMDS THIM */
	char endpoint[512];
	char tee_type[64];
	char api_version[128];
};

/* Reads $UVM_SECURITY_CONTEXT_DIR, else the first /security-context-* directory, else the
 * environment (UVM_SECURITY_POLICY, UVM_HOST_AMD_CERTIFICATE, UVM_REFERENCE_INFO).  Absent parts
 * stay NULL/empty; malformed ones are an error naming the file or variable (EXIT_CONFIG). */
int evidence_load(struct evidence *ev, struct err *e);
void evidence_free(struct evidence *ev);

/* Parses THIM JSON text.  EXIT_CONFIG when it is not that shape. */
int thim_parse(const char *text, size_t len, struct thim_certs *c, struct err *e);
/* Accepts the JSON itself or its standard base64 (the host-amd-cert-base64 form). */
int thim_parse_any(const char *text, size_t len, struct thim_certs *c, struct err *e);
void thim_free(struct thim_certs *c);

/* Parses the certcache JSON object ({"endpoint_type","endpoint","tee_type","api_version"}). */
int certcache_parse(const char *text, size_t len, struct certcache *cc, struct err *e);

/* Fetches the VCEK chain for report r from the certcache (or IMDS THIM when cc is NULL or has no
 * type), replacing c.  The TCB it is for comes from THIM's tcbm, or from the VCEK's TCB
 * extensions for the AzCache and AMD forms. */
int thim_fetch(const struct certcache *cc, const struct snp_report *r, struct thim_certs *c,
	       struct err *e);

/* The AMD KDS URL of the VCEK for report r under certcache cc (endpoint_type "AMD"):
 * https://endpoint/tee_type/HWID?ucodeSPL=..&snpSPL=..&teeSPL=..&blSPL=.. (Milan, Genoa), or with
 * fmcSPL and the 8-byte hwID of a Turin report. */
void kds_vcek_url(const struct certcache *cc, const struct snp_report *r, char *url, size_t size);

/* SHA-256 of the standard-base64-decoded policy (newlines ignored, as Go's decoder does). */
int policy_digest(const char *b64, size_t len, uint8_t out[32], struct err *e);

#endif
