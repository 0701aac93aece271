/* Microsoft Azure Attestation: POST /attest/SevSnpVM for an SEV-SNP report (DESIGN.md section 6). */
#ifndef ENCFS_ATTEST_MAA_H
#define ENCFS_ATTEST_MAA_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "report.h"
#include "secmem.h"
#include "strbuf.h"

#define MAA_API_VERSION "2020-10-01"

/* "host[:port]", "https://host[:port]" (a trailing slash allowed) -> "https://host[:port]".
 * Anything else (http://, a path, odd characters) is EXIT_USAGE. */
int maa_base_url(const char *endpoint, char *out, size_t size, struct err *e);

/* The request body, as the upstream sidecar builds it: base64url (padded, like Go's
 * base64.URLEncoding) of {"SnpReport","VcekCertChain","Endorsements"} (Endorsements =
 * base64url({"Uvm":[base64url(reference info)]}), left out when there is no reference info),
 * the runtime data as {"data": base64url(runtime), "dataType": "JSON"}, and the nonce. */
void maa_request_body(const uint8_t report[SNP_REPORT_SIZE], const char *chain_pem,
		      const uint8_t *reference_info, size_t reference_info_len, const uint8_t *runtime,
		      size_t runtime_len, uint64_t nonce, struct strbuf *sb);

/* Posts the body to base_url and takes the token into guarded memory.  MAA's error JSON
 * ({"error":{"code","message"}}) is shown with its status: 401/403 EXIT_DENIED, 404 EXIT_CONFIG,
 * 429 and 5xx (after the common retries) EXIT_NETWORK, any other EXIT_ATTEST. */
int maa_attest(const char *base_url, const char *body, size_t body_len, struct secbuf *token,
	       struct err *e);

#endif
