/* encfs-attest: an SEV-SNP attestation report for the runtime data on stdin, the evidence the
 * container group was given, and the MAA token for them.  See encfs-attest(1). */
#include "cli.h"
#include "encode.h"
#include "evidence.h"
#include "http.h"
#include "io.h"
#include "json.h"
#include "jwt.h"
#include "log.h"
#include "maa.h"
#include "report.h"
#include "secmem.h"
#include "source.h"
#include "strbuf.h"
#include "verify.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RUNTIME_DATA_MAX (64u << 10) /* a JWK set is about 500 bytes */
#define REPORT_FILE_MAX (8u << 10)   /* raw 1184 bytes or its hex */

static const char usage_text[] =
	"usage: encfs-attest [-v] [--cacert FILE] [--maa ENDPOINT] [--certcache JSON] [--fake-report]\n"
	"                    [--deadline SECONDS] < runtime-data > token\n"
	"       encfs-attest [-v] report [--fake-report] [--hex] < runtime-data\n"
	"       encfs-attest [-v] verify --certs FILE [--report-data HEX] [--host-data HEX] REPORT\n"
	"       encfs-attest [-v] policy-digest [FILE | -]\n"
	"       encfs-attest [-v] show < token\n"
	"       encfs-attest -h | --help\n"
	"\n"
	"options:\n"
	"  --maa ENDPOINT        attestation provider, host[:port] or https://host[:port]\n"
	"  --certcache JSON      where to refresh the VCEK chain: azure_info.certcache of\n"
	"                        EncfsSideCarArgs ({\"endpoint_type\",\"endpoint\",\"tee_type\",\n"
	"                        \"api_version\"}); default: IMDS THIM\n"
	"  --fake-report         an unsigned report in the upstream sidecar's fake layout (tests\n"
	"                        only: a real MAA rejects it)\n"
	"  --deadline SECONDS    how long a request may keep failing before it is an error\n"
	"                        (default 120)\n"
	"  --hex                 report: print the report as hex, not raw bytes\n"
	"  --certs FILE          verify: THIM certificates (JSON, or its base64)\n"
	"  --report-data HEX     verify: expected REPORT_DATA (a prefix; the rest must be zero)\n"
	"  --host-data HEX       verify: expected HOST_DATA (32 bytes)\n"
	"  --cacert FILE         PEM trust anchors for TLS instead of the system store\n"
	"  -v, --verbose         more log output (repeat for more)\n"
	"  -h, --help            this text\n";

_Noreturn static void help(void)
{
	fputs(usage_text, stdout);
	exit(fflush(stdout) == 0 ? EXIT_OK : EXIT_INTERNAL);
}

#define usage_error cli_usage

struct options {
	const char *maa, *certcache, *certs, *report_data, *host_data;
	int fake, hex;
};

/* --- attest: report + evidence + MAA ---------------------------------------------------------- */

static void read_runtime_data(char **data, size_t *len)
{
	stdin_refuse_tty("reading runtime data", "pipe the JWK set of encfs-unwrap keygen in, or < FILE");
	*data = read_fd_capped(STDIN_FILENO, RUNTIME_DATA_MAX, len);
	if (!*data)
		die(errno == EFBIG ? EXIT_CONFIG : EXIT_INTERNAL, "reading runtime data from stdin: %s%s",
		    errno == EFBIG ? "more than 64 KiB" : strerror(errno),
		    errno == EFBIG ? " (give the JWK set of encfs-unwrap keygen)" : "");
	struct err e;
	if (strspn(*data, " \t\r\n") == *len) {
		stdin_empty(&e, "reading runtime data", "pipe the JWK set of encfs-unwrap keygen in");
		die_err(&e);
	}
	/* the products of later steps are not runtime data: say where they go */
	enum data_kind k = data_kind(*data, *len);
	if (k == DATA_MAA_TOKEN || k == DATA_RELEASE)
		die(EXIT_CONFIG, "reading runtime data: %s", data_kind_says(k));
}

static void report_data_for(const char *runtime, size_t len, uint8_t report_data[64])
{
	memset(report_data, 0, 64);
	crypto_hash_sha256(report_data, (const unsigned char *)runtime, len);
}

static void load_evidence(struct evidence *ev)
{
	struct err e;
	if (evidence_load(ev, &e) != 0)
		die_err(&e);
	if (log_enabled(LOG_INFO) && ev->where[0])
		log_info("evidence from %s: policy %s, certificates %s, reference info %s", ev->where,
			 ev->policy_b64 ? "yes" : "no", ev->certs.chain_pem ? "yes" : "no",
			 ev->reference_info ? "yes" : "no");
}

static void no_context(void)
{
	die(EXIT_ATTEST,
	    "gathering evidence: no UVM security context: UVM_SECURITY_CONTEXT_DIR is unset, there is "
	    "no /security-context-* directory, and UVM_SECURITY_POLICY, UVM_HOST_AMD_CERTIFICATE and "
	    "UVM_REFERENCE_INFO are unset (run in a confidential container group, or point "
	    "UVM_SECURITY_CONTEXT_DIR at its evidence)");
}

static void fake_report(const struct evidence *ev, const uint8_t report_data[64], uint8_t report[SNP_REPORT_SIZE])
{
	struct err e;
	uint8_t host_data[32];
	if (!ev->where[0])
		no_context();
	if (!ev->policy_b64)
		die(EXIT_ATTEST, "making the fake report: %s has no security policy "
		    "(security-policy-base64 or UVM_SECURITY_POLICY), which gives its HOST_DATA", ev->where);
	if (policy_digest(ev->policy_b64, strlen(ev->policy_b64), host_data, &e) != 0)
		die_err(&e);
	snp_fake_report(report_data, host_data, report);
	log_warn("FAKE REPORT: --fake-report made an unsigned report (the upstream sidecar's fake "
		 "layout); no real MAA accepts it and any token for it is useless: tests only");
}

static void real_report(const uint8_t report_data[64], uint8_t report[SNP_REPORT_SIZE], struct snp_report *r)
{
	struct err e;
	char source[512];
	if (snp_get_report(report_data, report, source, sizeof source, &e) != 0)
		die_err(&e);
	if (snp_report_parse(report, SNP_REPORT_SIZE, r, &e) != 0) {
		err_wrap(&e, "%s", source);
		die_err(&e);
	}
	log_info("report version %u from %s, REPORTED_TCB %016llx", r->version, source,
		 (unsigned long long)r->reported_tcb.raw);
}

/* The certificates must be those of the TCB the report names; refresh them, then the report,
 * as the upstream sidecar does, and give up with both values. */
static void match_certificates(struct evidence *ev, const struct certcache *cc, const uint8_t report_data[64],
			       uint8_t report[SNP_REPORT_SIZE], struct snp_report *r)
{
	struct err e;
	if (ev->certs.chain_pem && ev->certs.have_tcbm && ev->certs.tcbm == r->reported_tcb.raw)
		return;
	if (ev->certs.chain_pem)
		log_info("certificates are for TCB %016llx, the report says %016llx: refreshing",
			 (unsigned long long)ev->certs.tcbm, (unsigned long long)r->reported_tcb.raw);
	else
		log_info("no certificates in the security context: fetching them");
	for (int round = 0; round < 2; round++) {
		if (round == 1) {
			log_info("certificates still for TCB %016llx: fetching the report again",
				 (unsigned long long)ev->certs.tcbm);
			real_report(report_data, report, r);
		}
		if (thim_fetch(cc && cc->endpoint_type[0] ? cc : NULL, r, &ev->certs, &e) != 0) {
			err_wrap(&e, "refreshing the VCEK chain");
			die_err(&e);
		}
		if (ev->certs.tcbm == r->reported_tcb.raw)
			return;
	}
	die(EXIT_ATTEST,
	    "matching certificates to the report: REPORTED_TCB %016llx, but the certificate cache "
	    "offers the VCEK for TCB %016llx (the host's TCB changed; retry later)",
	    (unsigned long long)r->reported_tcb.raw, (unsigned long long)ev->certs.tcbm);
}

static int do_attest(const struct options *o)
{
	struct err e;
	char base[300];
	if (!o->maa)
		usage_error("no attestation provider: give --maa ENDPOINT (the key's authority endpoint)");
	if (maa_base_url(o->maa, base, sizeof base, &e) != 0)
		die_err(&e);
	struct certcache cc = {0};
	if (o->certcache && certcache_parse(o->certcache, strlen(o->certcache), &cc, &e) != 0)
		die_err(&e);
	if (isatty(STDOUT_FILENO))
		die(EXIT_USAGE, "writing the token: stdout is a terminal (pipe it to encfs-skr or a file)");

	char *runtime;
	size_t runtime_len;
	read_runtime_data(&runtime, &runtime_len);
	struct json j;
	if (json_parse(&j, runtime, runtime_len, 4096, &e) != 0) {
		err_wrap(&e, "runtime data on stdin is not JSON (give the JWK set of encfs-unwrap keygen)");
		die_err(&e);
	}
	json_free(&j);

	struct evidence ev;
	load_evidence(&ev);
	if (!ev.where[0])
		no_context();
	if (!ev.reference_info)
		die(EXIT_ATTEST,
		    "gathering evidence: %s has no UVM reference info (reference-info-base64 or "
		    "UVM_REFERENCE_INFO), which MAA needs to endorse the UVM",
		    ev.where);

	uint8_t report_data[64], report[SNP_REPORT_SIZE];
	struct snp_report r;
	report_data_for(runtime, runtime_len, report_data);
	if (o->fake) {
		fake_report(&ev, report_data, report);
		if (snp_report_parse(report, SNP_REPORT_SIZE, &r, &e) != 0)
			die_err(&e);
	} else {
		real_report(report_data, report, &r);
		match_certificates(&ev, &cc, report_data, report, &r);
	}

	struct strbuf chain = {0}, body = {0};
	sb_puts(&chain, ev.certs.vcek_pem ? ev.certs.vcek_pem : "");
	sb_puts(&chain, ev.certs.chain_pem ? ev.certs.chain_pem : "");
	uint64_t nonce;
	randombytes_buf(&nonce, sizeof nonce);
	maa_request_body(report, chain.data ? chain.data : "", ev.reference_info, ev.reference_info_len,
			 (const uint8_t *)runtime, runtime_len, nonce, &body);
	if (chain.failed || body.failed)
		die(EXIT_INTERNAL, "building the MAA request: out of memory");
	log_debug("MAA request: %zu bytes to %s", body.len, base);

	struct secbuf token = {0};
	if (maa_attest(base, body.data, body.len, &token, &e) != 0) {
		if (o->fake)
			err_wrap(&e, "attesting a FAKE report");
		die_err(&e);
	}
	if (o->fake)
		log_warn("FAKE REPORT: the token attests an unsigned report; only a test MAA issues one");
	if (write_all(STDOUT_FILENO, token.data, token.len) != 0 || write_all(STDOUT_FILENO, "\n", 1) != 0)
		die(EXIT_INTERNAL, "writing the token: %s", strerror(errno));
	secbuf_free(&token);
	sb_free(&chain);
	sb_free(&body);
	evidence_free(&ev);
	free(runtime);
	return EXIT_OK;
}

/* --- report ------------------------------------------------------------------------------------ */

static int do_report(const struct options *o)
{
	if (!o->hex && isatty(STDOUT_FILENO))
		die(EXIT_USAGE, "writing the report: stdout is a terminal (redirect it, or use --hex)");
	char *runtime;
	size_t runtime_len;
	read_runtime_data(&runtime, &runtime_len);
	uint8_t report_data[64], report[SNP_REPORT_SIZE];
	report_data_for(runtime, runtime_len, report_data);
	free(runtime);
	if (o->fake) {
		struct evidence ev;
		load_evidence(&ev);
		fake_report(&ev, report_data, report);
		evidence_free(&ev);
	} else {
		struct snp_report r;
		real_report(report_data, report, &r);
	}
	if (o->hex) {
		char hex[2 * SNP_REPORT_SIZE + 2];
		hex_encode(report, SNP_REPORT_SIZE, hex);
		strcat(hex, "\n");
		if (write_all(STDOUT_FILENO, hex, strlen(hex)) != 0)
			die(EXIT_INTERNAL, "writing the report: %s", strerror(errno));
	} else if (write_all(STDOUT_FILENO, report, SNP_REPORT_SIZE) != 0) {
		die(EXIT_INTERNAL, "writing the report: %s", strerror(errno));
	}
	return EXIT_OK;
}

/* --- verify ------------------------------------------------------------------------------------ */

/* The report file holds the raw 1184 bytes, or their hex (as `report --hex` prints). */
static void read_report_file(const char *path, uint8_t report[SNP_REPORT_SIZE])
{
	size_t len, n;
	if (strcmp(path, "-") == 0)
		stdin_refuse_tty("reading the report", "pipe the report in, or give REPORT as a file");
	char *data = read_file_capped(path, REPORT_FILE_MAX, &len);
	if (!data)
		die(EXIT_CONFIG, "reading report %s: %s", path, errno == EFBIG ? "too large for a report" : strerror(errno));
	if (len == SNP_REPORT_SIZE) {
		memcpy(report, data, SNP_REPORT_SIZE);
	} else {
		while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
			len--;
		if (hex_decode(data, len, report, SNP_REPORT_SIZE, &n) != 0 || n != SNP_REPORT_SIZE)
			die(EXIT_ATTEST, "reading report %s: %zu bytes, neither a %d-byte report nor its hex",
			    path, len, SNP_REPORT_SIZE);
	}
	free(data);
}

static size_t hex_arg(const char *opt, const char *hex, uint8_t *out, size_t cap)
{
	size_t n;
	if (hex_decode(hex, strlen(hex), out, cap, &n) != 0 || n == 0)
		usage_error("%s %s: not hex of at most %zu bytes", opt, hex, cap);
	return n;
}

static int do_verify(const struct options *o, const char *path)
{
	struct err e;
	if (!o->certs)
		usage_error("verify needs --certs FILE (THIM certificates)");
	uint8_t report[SNP_REPORT_SIZE], want_rd[64] = {0}, want_hd[32];
	if (o->report_data)
		hex_arg("--report-data", o->report_data, want_rd, 64);
	if (o->host_data && hex_arg("--host-data", o->host_data, want_hd, 32) != 32)
		usage_error("--host-data %s: not hex of 32 bytes", o->host_data);
	read_report_file(path, report);

	size_t len;
	char *text = read_file_capped(o->certs, EVIDENCE_FILE_MAX, &len);
	if (!text)
		die(EXIT_CONFIG, "reading --certs %s: %s", o->certs, strerror(errno));
	struct thim_certs certs;
	if (thim_parse_any(text, len, &certs, &e) != 0) {
		err_wrap(&e, "%s", o->certs);
		die_err(&e);
	}
	free(text);
	struct strbuf chain = {0};
	sb_puts(&chain, certs.vcek_pem);
	sb_puts(&chain, certs.chain_pem);
	if (chain.failed)
		die(EXIT_INTERNAL, "out of memory");

	struct snp_report r;
	if (report_verify(report, chain.data, chain.len, certs.have_tcbm, certs.tcbm, &r, &e) != 0) {
		err_wrap(&e, "verifying %s", path);
		die_err(&e);
	}
	if (o->report_data && sodium_memcmp(r.report_data, want_rd, 64) != 0)
		die(EXIT_ATTEST, "verifying %s: REPORT_DATA is not the expected value", path);
	if (o->host_data && sodium_memcmp(r.host_data, want_hd, 32) != 0)
		die(EXIT_ATTEST, "verifying %s: HOST_DATA is not the expected value (another security policy?)",
		    path);
	struct strbuf out = {0};
	snp_report_json(&r, &out);
	if (out.failed || write_all(STDOUT_FILENO, out.data, out.len) != 0)
		die(EXIT_INTERNAL, "writing the decoded report: %s", out.failed ? "out of memory" : strerror(errno));
	sb_free(&out);
	sb_free(&chain);
	thim_free(&certs);
	return EXIT_OK;
}

/* --- show: the claims of an MAA token ---------------------------------------------------------- */

/* Prints {"header": ..., "claims": ...} of the token on stdin, then says when it was issued and
 * until when it is valid; an expired token is said to be so and exits 3 (encfs-skr would refuse
 * it before sending anything).  Nothing is verified: MAA's signature is the vault's to check. */
static int do_show(void)
{
	stdin_refuse_tty("reading the token", "pipe encfs-attest's output in, or < FILE");
	size_t len;
	char *text = read_fd_capped(STDIN_FILENO, JWT_MAX_TEXT, &len);
	if (!text)
		die(EXIT_CONFIG, "reading the token: %s", errno == EFBIG ? "more than 1 MiB" : strerror(errno));
	struct err e;
	if (strspn(text, " \t\r\n") == len) {
		stdin_empty(&e, "reading the token", "pipe encfs-attest's output in");
		die_err(&e);
	}
	enum data_kind k = data_kind(text, len);
	if (k == DATA_RELEASE)
		die(EXIT_CONFIG, "reading the token: %s (encfs-unwrap show looks inside it)", data_kind_says(k));
	if (k == DATA_JWKS)
		die(EXIT_CONFIG, "reading the token: %s", data_kind_says(k));
	struct jwt t;
	if (jwt_decode(text, len, &t, &e) != 0) {
		err_wrap(&e, "reading the token");
		die_err(&e);
	}
	free(text);
	struct strbuf out = {0};
	sb_puts(&out, "{\n  \"header\": ");
	json_pretty(&t.h, 0, 1, NULL, NULL, &out);
	sb_puts(&out, ",\n  \"claims\": ");
	json_pretty(&t.p, 0, 1, NULL, NULL, &out);
	sb_puts(&out, "\n}\n");
	if (out.failed || write_all(STDOUT_FILENO, out.data, out.len) != 0)
		die(EXIT_INTERNAL, "writing the claims: %s", out.failed ? "out of memory" : strerror(errno));
	sb_free(&out);
	long long exp, nbf, iat, now = (long long)time(NULL);
	jwt_times(&t, &exp, &nbf, &iat);
	jwt_free(&t);
	char when[64], span[64], issued[64];
	jwt_format_time(iat, issued, sizeof issued);
	if (exp < 0)
		die(EXIT_CONFIG, "the token has no exp claim: not an MAA token (MAA's expire after 8 hours)");
	jwt_format_time(exp, when, sizeof when);
	jwt_format_span(exp - now, span, sizeof span);
	if (exp <= now)
		die(EXIT_CONFIG, "the token expired at %s, %s ago (encfs-skr refuses it: attest again)", when,
		    span);
	if (nbf > now) {
		char from[64];
		jwt_format_time(nbf, from, sizeof from);
		log_warn("the token is not valid before %s (this machine's clock is behind MAA's?)", from);
	}
	fprintf(stderr, "%s: the token was issued %s and is valid until %s, %s from now\n", log_progname(),
		iat >= 0 ? issued : "(no iat)", when, span);
	return EXIT_OK;
}

/* --- policy-digest ----------------------------------------------------------------------------- */

static int do_policy_digest(const char *path)
{
	struct err e;
	size_t len;
	if (strcmp(path, "-") == 0)
		stdin_refuse_tty("reading the security policy", "pipe the base64 policy in, or give FILE");
	char *b64 = read_file_capped(path, EVIDENCE_FILE_MAX, &len);
	if (b64 && strcmp(path, "-") == 0 && strspn(b64, " \t\r\n") == len) {
		stdin_empty(&e, "reading the security policy", "pipe the base64 policy in");
		die_err(&e);
	}
	if (!b64)
		die(EXIT_CONFIG, "reading the security policy %s: %s", strcmp(path, "-") ? path : "from stdin",
		    errno == EFBIG ? "more than 4 MiB" : strerror(errno));
	uint8_t digest[32];
	char hex[65];
	if (policy_digest(b64, len, digest, &e) != 0)
		die_err(&e);
	free(b64);
	hex_encode(digest, 32, hex);
	printf("%s\n", hex);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_INTERNAL;
}

int main(int argc, char **argv)
{
	log_init(argv[0]);
	secmem_init();

	/* [-v...] [SUBCOMMAND] OPTIONS: a subcommand comes first, after any -v */
	enum { ATTEST, REPORT, VERIFY, POLICY_DIGEST, SHOW } mode = ATTEST;
	static const char *const names[] = {"", "report", "verify", "policy-digest", "show"};
	int first = cli_leading_verbose(argc, argv);
	for (int m = REPORT; m <= SHOW && first < argc; m++)
		if (strcmp(argv[first], names[m]) == 0)
			mode = m;
	cli_shift(&argc, &argv, mode == ATTEST ? first - 1 : first);

	static const char shortopts[] = "+vh";
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},	   {"cacert", required_argument, NULL, 'C'},
		{"maa", required_argument, NULL, 'm'},	   {"certcache", required_argument, NULL, 'c'},
		{"fake-report", no_argument, NULL, 'f'},   {"hex", no_argument, NULL, 'x'},
		{"certs", required_argument, NULL, 't'},   {"report-data", required_argument, NULL, 'r'},
		{"host-data", required_argument, NULL, 'H'}, {"deadline", required_argument, NULL, 'D'},
		{"verbose", no_argument, NULL, 'v'},	   {NULL, 0, NULL, 0},
	};
	/* which option each mode takes: -v, -h and --cacert go everywhere */
	static const char *const allowed[] = {"mcfD", "fx", "trH", "", ""};
	struct options o = {0};
	int c, longindex = -1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, &longindex)) != -1) {
		if (c == '?')
			cli_bad_option(argv, shortopts, longopts);
		if (c == 'h')
			help();
		if (c == 'v') {
			log_more_verbose();
			continue;
		}
		if (c != 'C' && !strchr(allowed[mode], c))
			usage_error("--%s does not apply to %s", longindex >= 0 ? longopts[longindex].name : "?",
				    mode == ATTEST ? "attesting" : names[mode]);
		switch (c) {
		case 'C': http_set_ca_bundle(optarg); break;
		case 'm': o.maa = optarg; break;
		case 'c': o.certcache = optarg; break;
		case 'f': o.fake = 1; break;
		case 'x': o.hex = 1; break;
		case 't': o.certs = optarg; break;
		case 'r': o.report_data = optarg; break;
		case 'H': o.host_data = optarg; break;
		case 'D': {
			char *end;
			errno = 0;
			long v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > 86400)
				usage_error("--deadline %s: want a whole number of seconds from 1 to 86400", optarg);
			http_set_deadline_ms(v * 1000);
			break;
		}
		default: break;
		}
	}
	int rest = argc - optind;
	http_init();
	switch (mode) {
	case ATTEST:
	case REPORT:
	case SHOW:
		if (rest)
			usage_error("unexpected argument %s (%s comes on standard input)", argv[optind],
				    mode == SHOW ? "the token" : "runtime data");
		return mode == ATTEST ? do_attest(&o) : mode == REPORT ? do_report(&o) : do_show();
	case VERIFY:
		if (rest != 1)
			usage_error(rest ? "unexpected argument %s (verify takes one REPORT file)"
					 : "verify needs one REPORT file%s",
				    rest ? argv[optind + 1] : "");
		return do_verify(&o, argv[optind]);
	case POLICY_DIGEST:
		if (rest > 1)
			usage_error("unexpected argument %s (policy-digest takes at most one FILE)", argv[optind + 1]);
		return do_policy_digest(rest ? argv[optind] : "-");
	}
	return EXIT_INTERNAL;
}
