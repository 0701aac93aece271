/* libFuzzer target: the parsers encfs-attest runs on input it does not control: the report from
 * the platform (or a file given to verify), THIM certification JSON (or its base64), the
 * certcache object and the PEM certificate chain. */
#include "evidence.h"
#include "report.h"
#include "strbuf.h"
#include "verify.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e;
	struct snp_report r;
	/* the first 1184 bytes as a report, and the whole input (any size) too */
	if (size >= SNP_REPORT_SIZE && snp_report_parse(data, SNP_REPORT_SIZE, &r, &e) == 0) {
		struct strbuf sb = {0};
		snp_report_json(&r, &sb);
		sb_free(&sb);
		(void)snp_report_unsigned(data);
		struct certcache kds = {.endpoint_type = "AMD", .endpoint = "kdsintf.amd.com/vcek/v1",
					.tee_type = "Milan"};
		char url[600];
		kds_vcek_url(&kds, &r, url, sizeof url);
	}
	(void)snp_report_parse(data, size, &r, &e);

	struct thim_certs c;
	if (thim_parse_any((const char *)data, size, &c, &e) == 0) {
		struct amd_chain ch;
		if (amd_chain_load(c.chain_pem, strlen(c.chain_pem), &ch, &e) == 0) {
			uint64_t tcb;
			uint8_t hwid[SNP_CHIP_ID_SIZE];
			(void)vcek_tcb(ch.vcek, 0, &tcb);
			(void)vcek_tcb(ch.vcek, 1, &tcb);
			(void)vcek_hwid(ch.vcek, hwid);
			amd_chain_free(&ch);
		}
		thim_free(&c);
	}
	struct certcache cc;
	(void)certcache_parse((const char *)data, size, &cc, &e);
	return 0;
}
