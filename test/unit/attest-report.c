/* encfs-attest internals: report decoding by version, the fake report, the MAA request body,
 * endpoint and certcache parsing, THIM JSON. */
#include "encode.h"
#include "evidence.h"
#include "json.h"
#include "maa.h"
#include "report.h"
#include "tap.h"

#include <stdint.h>

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* A report whose every field holds a value derived from its offset, so misplaced reads show. */
static void sample_report(uint8_t *r, uint32_t version)
{
	for (int i = 0; i < SNP_REPORT_SIZE; i++)
		r[i] = (uint8_t)(i * 7 + 3);
	put32(r, version);
	put32(r + 0x04, 9);
	put64(r + 0x08, 0x3001full | (1ull << 19));
	put32(r + 0x30, 2);
	put32(r + 0x34, 1);
	put64(r + 0x180, 0x7308000000000003ull);
	put64(r + 0x1E0, 0x0102000000000304ull);
	put64(r + 0x1F8, 0x1111111111111111ull);
	put64(r + 0x200, 0x2222222222222222ull);
}

/* Decodes base64url text of n characters into a NUL-terminated malloc'd string. */
static char *unb64url(const char *s, size_t n)
{
	size_t len;
	return (char *)b64_decode_alloc(s, n, B64_URL, &len);
}

static void test_parse(void)
{
	uint8_t buf[SNP_REPORT_SIZE];
	struct snp_report r;
	struct err e;
	const uint32_t good[] = {1, 2, 3, 5};
	for (size_t i = 0; i < 4; i++) {
		sample_report(buf, good[i]);
		is_int(snp_report_parse(buf, sizeof buf, &r, &e), 0, "version %u parses", good[i]);
		is_int(r.version, good[i], "... version field");
	}
	sample_report(buf, 2);
	snp_report_parse(buf, sizeof buf, &r, &e);
	is_int(r.guest_svn, 9, "GUEST_SVN at 0x04");
	ok(r.policy == (0x3001full | (1ull << 19)), "POLICY at 0x08");
	is_int(r.vmpl, 2, "VMPL at 0x30");
	is_int(r.signature_algo, 1, "SIGNATURE_ALGO at 0x34");
	is_int(r.report_data[0], (uint8_t)(0x50 * 7 + 3), "REPORT_DATA at 0x50");
	is_int(r.measurement[0], (uint8_t)(0x90 * 7 + 3), "MEASUREMENT at 0x90");
	is_int(r.host_data[31], (uint8_t)(0xDF * 7 + 3), "HOST_DATA ends at 0xDF");
	is_int(r.chip_id[0], (uint8_t)(0x1A0 * 7 + 3), "CHIP_ID at 0x1A0");
	is_int(r.sig_r[0], (uint8_t)(0x2A0 * 7 + 3), "signature R at 0x2A0");
	is_int(r.sig_s[0], (uint8_t)(0x2E8 * 7 + 3), "signature S at 0x2E8");
	ok(r.reported_tcb.raw == 0x7308000000000003ull, "REPORTED_TCB at 0x180");
	is_int(r.reported_tcb.bootloader, 3, "TCB boot loader is byte 0");
	is_int(r.reported_tcb.tee, 0, "TCB TEE is byte 1");
	is_int(r.reported_tcb.snp, 8, "TCB SNP is byte 6");
	is_int(r.reported_tcb.microcode, 0x73, "TCB microcode is byte 7");
	ok(r.committed_tcb.raw == 0x0102000000000304ull, "COMMITTED_TCB at 0x1E0 (version 2)");
	is_int(r.cpuid_fam_id, 0, "no CPUID fields before version 3");
	ok(r.launch_mit_vector == 0, "no mitigation vectors before version 5");
	sample_report(buf, 3);
	snp_report_parse(buf, sizeof buf, &r, &e);
	is_int(r.cpuid_fam_id, (uint8_t)(0x188 * 7 + 3), "version 3: CPUID_FAM_ID at 0x188");
	sample_report(buf, 5);
	snp_report_parse(buf, sizeof buf, &r, &e);
	ok(r.launch_mit_vector == 0x1111111111111111ull && r.current_mit_vector == 0x2222222222222222ull,
	   "version 5: mitigation vectors at 0x1F8 and 0x200");

	/* Turin (CPUID family 1Ah, named from version 3 on): FMC, boot loader, TEE, SNP, ..., microcode */
	sample_report(buf, 3);
	buf[0x188] = 0x1A;
	put64(buf + 0x180, 0x4800000019030201ull);
	snp_report_parse(buf, sizeof buf, &r, &e);
	ok(r.turin, "version 3, CPUID family 1Ah: a Turin report");
	ok(r.reported_tcb.fmc == 1 && r.reported_tcb.bootloader == 2 && r.reported_tcb.tee == 3 &&
		   r.reported_tcb.snp == 0x19 && r.reported_tcb.microcode == 0x48,
	   "... its TCB in the Turin layout: FMC 0, boot loader 1, TEE 2, SNP 3, microcode 7");
	buf[0x188] = 0x19;
	snp_report_parse(buf, sizeof buf, &r, &e);
	ok(!r.turin && r.reported_tcb.bootloader == 1 && r.reported_tcb.tee == 2 && r.reported_tcb.snp == 0 &&
		   r.reported_tcb.fmc == 0,
	   "family 19h (Milan, Genoa): the Milan layout");
	sample_report(buf, 2);
	buf[0x188] = 0x1A;
	snp_report_parse(buf, sizeof buf, &r, &e);
	ok(!r.turin, "version 2: byte 0x188 is reserved, never read as a CPUID family");

	const uint32_t bad[] = {0, 4, 6, 0xffffffffu};
	for (size_t i = 0; i < 4; i++) {
		sample_report(buf, bad[i]);
		is_int(snp_report_parse(buf, sizeof buf, &r, &e), -1, "version %u is refused", bad[i]);
		like(e.msg, "is not one this tool knows", "... with a message saying so");
		is_int(e.code, EXIT_ATTEST, "... exit code 6");
	}
	is_int(snp_report_parse(buf, 1183, &r, &e), -1, "1183 bytes are refused");
	like(e.msg, "1183 bytes, not 1184", "... naming the size");

	struct strbuf sb = {0};
	struct json j;
	sample_report(buf, 5);
	snp_report_parse(buf, sizeof buf, &r, &e);
	snp_report_json(&r, &sb);
	is_int(json_parse(&j, sb.data, sb.len, 512, &e), 0, "the JSON view is valid JSON");
	bool dbg = false;
	ok(json_bool(&j, json_get(&j, 0, "policy.debug"), &dbg) == 0 && dbg, "... policy.debug decoded");
	ok(json_string_eq(&j, json_get(&j, 0, "reported_tcb.raw"), "7308000000000003"), "... reported_tcb.raw in hex");
	json_free(&j);
	sb_free(&sb);
}

static void test_fake(void)
{
	uint8_t rd[64], hd[32], rep[SNP_REPORT_SIZE];
	struct snp_report r;
	struct err e;
	memset(rd, 0xAB, sizeof rd);
	memset(hd, 0xCD, sizeof hd);
	snp_fake_report(rd, hd, rep);
	is_int(snp_report_parse(rep, sizeof rep, &r, &e), 0, "the fake report parses");
	is_int(r.version, 1, "... version 1, as upstream's");
	ok(r.policy == 0x3001f, "... policy 0x3001f");
	ok(memcmp(r.report_data, rd, 64) == 0, "... REPORT_DATA as given");
	ok(memcmp(r.host_data, hd, 32) == 0, "... HOST_DATA as given");
	ok(r.reported_tcb.raw == 0x3100000000000000ull, "... upstream's REPORTED_TCB");
	is_int(r.chip_id[0], 0xe6, "... upstream's CHIP_ID");
	ok(snp_report_unsigned(rep), "... and an all-zero signature");
	rep[0x2A0 + 100] = 1;
	ok(!snp_report_unsigned(rep), "a report with any signature byte set is not taken for fake");
}

static void test_maa_body(void)
{
	uint8_t rep[SNP_REPORT_SIZE];
	struct strbuf sb = {0};
	struct json j;
	struct err e;
	size_t n;
	sample_report(rep, 2);
	const char *rt = "{\"keys\":[]}";
	const uint8_t ref[] = {0xd2, 0x84, 0x01, 0x02, 0x03};
	maa_request_body(rep, "PEM", ref, sizeof ref, (const uint8_t *)rt, strlen(rt), 18446744073709551615ull, &sb);
	is_int(json_parse(&j, sb.data, sb.len, 64, &e), 0, "MAA body is JSON");
	ok(json_string_eq(&j, json_get(&j, 0, "runtimeData.dataType"), "JSON"), "... dataType JSON");
	uint64_t nonce = 0;
	ok(json_uint64(&j, json_get(&j, 0, "nonce"), &nonce) == 0 && nonce == UINT64_MAX, "... the nonce as an unsigned integer");
	const char *raw = json_raw(&j, json_get(&j, 0, "runtimeData.data"), &n);
	char *data = unb64url(raw, n);
	is_str(data, rt, "... runtimeData.data is base64url of stdin");
	free(data);
	ok(strncmp(sb.data, "{\"report\":\"", 11) == 0, "... report comes first, as upstream marshals it");
	raw = json_raw(&j, json_get(&j, 0, "report"), &n);
	ok(n % 4 == 0, "... base64url with padding, as Go's URLEncoding");
	char *inner = unb64url(raw, n);
	json_free(&j);
	ok(inner && strncmp(inner, "{\"SnpReport\":\"", 14) == 0, "inner JSON starts with SnpReport");
	struct json ij;
	is_int(json_parse(&ij, inner, strlen(inner), 64, &e), 0, "... and parses");
	raw = json_raw(&ij, json_get(&ij, 0, "SnpReport"), &n);
	size_t replen;
	uint8_t *back = b64_decode_alloc(raw, n, B64_URL, &replen);
	ok(back && replen == SNP_REPORT_SIZE && memcmp(back, rep, SNP_REPORT_SIZE) == 0, "... SnpReport round-trips");
	free(back);
	raw = json_raw(&ij, json_get(&ij, 0, "VcekCertChain"), &n);
	data = unb64url(raw, n);
	is_str(data, "PEM", "... VcekCertChain is the PEM text");
	free(data);
	raw = json_raw(&ij, json_get(&ij, 0, "Endorsements"), &n);
	data = unb64url(raw, n);
	char *want_uvm = b64_encode(ref, sizeof ref, B64_URL, 1);
	char want[128];
	snprintf(want, sizeof want, "{\"Uvm\":[\"%s\"]}", want_uvm);
	is_str(data, want, "... Endorsements is {\"Uvm\":[b64url(reference info)]}");
	free(want_uvm);
	free(data);
	json_free(&ij);
	free(inner);
	sb_free(&sb);

	maa_request_body(rep, "", NULL, 0, (const uint8_t *)rt, strlen(rt), 7, &sb);
	json_parse(&j, sb.data, sb.len, 64, &e);
	raw = json_raw(&j, json_get(&j, 0, "report"), &n);
	inner = unb64url(raw, n);
	ok(inner && !strstr(inner, "Endorsements"), "no reference info: Endorsements left out");
	free(inner);
	json_free(&j);
	sb_free(&sb);
}

static void test_endpoints(void)
{
	char url[300];
	struct err e;
	is_int(maa_base_url("sharedeus.eus.attest.azure.net", url, sizeof url, &e), 0, "a bare host");
	is_str(url, "https://sharedeus.eus.attest.azure.net", "... becomes an https base URL");
	maa_base_url("https://127.0.0.1:8443/", url, sizeof url, &e);
	is_str(url, "https://127.0.0.1:8443", "a URL with port and slash");
	is_int(maa_base_url("http://x.example", url, sizeof url, &e), -1, "http is refused");
	is_int(maa_base_url("x.example/path?q", url, sizeof url, &e), -1, "a path is refused");
	is_int(maa_base_url("", url, sizeof url, &e), -1, "an empty endpoint is refused");

	struct certcache cc;
	const char *az = "{\"endpoint_type\":\"AzCache\",\"endpoint\":\"https://global.acccache.azure.net/\"}";
	is_int(certcache_parse(az, strlen(az), &cc, &e), 0, "certcache AzCache parses");
	is_str(cc.endpoint, "global.acccache.azure.net", "... scheme and slash dropped");
	is_str(cc.tee_type, "SevSnpVM", "... tee_type defaults to SevSnpVM");
	is_str(cc.api_version, "api-version=2020-10-15-preview", "... and api_version to upstream's");
	const char *v = "{\"endpoint_type\":\"AzCache\",\"endpoint\":\"h\",\"api_version\":\"2020-10-15-preview\"}";
	certcache_parse(v, strlen(v), &cc, &e);
	is_str(cc.api_version, "api-version=2020-10-15-preview", "a bare api_version gets its name");
	const char *bad = "{\"endpoint_type\":\"AzCache\",\"endpoint\":\"h x\"}";
	is_int(certcache_parse(bad, strlen(bad), &cc, &e), -1, "an endpoint with a space is refused");
	const char *typ = "{\"endpoint_type\":\"Other\",\"endpoint\":\"h\"}";
	is_int(certcache_parse(typ, strlen(typ), &cc, &e), -1, "an unknown endpoint_type is refused");

	/* AMD KDS: the VCEK URL for the report's chip and REPORTED_TCB */
	const char *amd = "{\"endpoint_type\":\"AMD\",\"endpoint\":\"https://kdsintf.amd.com/vcek/v1\"}";
	is_int(certcache_parse(amd, strlen(amd), &cc, &e), 0, "certcache AMD parses");
	is_str(cc.tee_type, "Milan", "... tee_type defaults to Milan");
	uint8_t buf[SNP_REPORT_SIZE];
	struct snp_report r;
	char kds[600], want[600], chip[129];
	sample_report(buf, 2);
	memset(buf + 0x1A0, 0, 64);
	memset(buf + 0x1A0, 0xab, 8);
	snp_report_parse(buf, sizeof buf, &r, &e);
	hex_encode(r.chip_id, 64, chip);
	kds_vcek_url(&cc, &r, kds, sizeof kds);
	snprintf(want, sizeof want, "https://kdsintf.amd.com/vcek/v1/Milan/%s?ucodeSPL=115&snpSPL=8&teeSPL=0&blSPL=3", chip);
	is_str(kds, want, "KDS URL of a Milan report: the 64-byte hwID, four SPLs");
	const char *turin = "{\"endpoint_type\":\"AMD\",\"endpoint\":\"kdsintf.amd.com/vcek/v1\",\"tee_type\":\"Turin\"}";
	certcache_parse(turin, strlen(turin), &cc, &e);
	sample_report(buf, 3);
	memset(buf + 0x1A0, 0, 64);
	memset(buf + 0x1A0, 0xab, 8);
	buf[0x188] = 0x1A;
	put64(buf + 0x180, 0x4800000019030201ull);
	snp_report_parse(buf, sizeof buf, &r, &e);
	kds_vcek_url(&cc, &r, kds, sizeof kds);
	is_str(kds, "https://kdsintf.amd.com/vcek/v1/Turin/abababababababab?fmcSPL=1&blSPL=2&teeSPL=3&snpSPL=25&ucodeSPL=72",
	       "KDS URL of a Turin report: the 8-byte hwID and the FMC SPL");
}

static void test_thim(void)
{
	struct thim_certs c;
	struct err e;
	const char *t = "{\"vcekCert\":\"V\",\"tcbm\":\"7308000000000003\",\"certificateChain\":\"C\",\"cacheControl\":\"86400\"}";
	is_int(thim_parse(t, strlen(t), &c, &e), 0, "THIM JSON parses");
	ok(c.have_tcbm && c.tcbm == 0x7308000000000003ull, "... tcbm read as hex");
	is_str(c.vcek_pem, "V", "... vcekCert");
	thim_free(&c);
	char *b64 = b64_encode(t, strlen(t), B64_STD, 1);
	is_int(thim_parse_any(b64, strlen(b64), &c, &e), 0, "its base64 parses too");
	is_str(c.chain_pem, "C", "... certificateChain");
	thim_free(&c);
	free(b64);
	const char *badtcb = "{\"vcekCert\":\"V\",\"tcbm\":\"73080000000000031\",\"certificateChain\":\"C\"}";
	is_int(thim_parse(badtcb, strlen(badtcb), &c, &e), -1, "a 17-digit tcbm is refused");
	const char *nov = "{\"tcbm\":\"1\",\"certificateChain\":\"C\"}";
	is_int(thim_parse(nov, strlen(nov), &c, &e), -1, "no vcekCert is refused");
	is_int(e.code, EXIT_CONFIG, "... exit code 3");

	uint8_t d[32];
	is_int(policy_digest("YWJj\n", 5, d, &e), 0, "policy digest of base64 with a newline");
	char hex[65];
	hex_encode(d, 32, hex);
	is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "... is SHA-256(\"abc\")");
	is_int(policy_digest("Y*Jj", 4, d, &e), -1, "not base64 is refused");
}

int main(void)
{
	log_init("attest-report");
	test_parse();
	test_fake();
	test_maa_body();
	test_endpoints();
	test_thim();
	return done_testing();
}
