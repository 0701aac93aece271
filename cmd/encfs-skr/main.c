/* encfs-skr: secure key release.  Presents an MAA token to Azure Key Vault / Managed HSM and prints
 * the signed release response; "import" puts a key there with a release policy.  See encfs-skr(1). */
#include "cli.h"
#include "http.h"
#include "identity.h"
#include "import.h"
#include "io.h"
#include "json.h"
#include "jwt.h"
#include "log.h"
#include "policy.h"
#include "secmem.h"
#include "strbuf.h"
#include "token.h"
#include "vault.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
	"usage: encfs-skr [-v] --akv ENDPOINT --kid NAME[/VERSION] [--client-id ID] [--enc ALG]\n"
	"                 [--api-version VERSION] [--resource URL] [--bearer-file FILE | --bearer-fd N]\n"
	"                 [--cacert FILE] [--deadline SECONDS] < token > release.jws\n"
	"       encfs-skr [-v] policy --akv ENDPOINT --kid NAME[/VERSION] [--client-id ID]\n"
	"                 [--api-version VERSION] [--resource URL] [--bearer-file FILE | --bearer-fd N]\n"
	"                 [--cacert FILE] [--deadline SECONDS]\n"
	"       encfs-skr [-v] import -c FILE [--key-hex HEX | --key-file FILE | --rsa-pem FILE]\n"
	"                 [--rsa-pem-out FILE] [--keyfile-out FILE] [--print-key] [--client-id ID]\n"
	"                 [--resource URL] [--bearer-file FILE | --bearer-fd N] [--cacert FILE]\n"
	"                 [--deadline SECONDS]\n"
	"       encfs-skr -h | --help\n"
	"options:\n"
	"  --akv ENDPOINT       the vault or Managed HSM (myvault.vault.azure.net, host:port, or URL)\n"
	"  --kid NAME[/VERSION] the key to release, or its https://HOST/keys/NAME[/VERSION] identifier\n"
	"  --client-id ID       the user-assigned managed identity (or workload identity client) to use\n"
	"  --enc ALG            wrapping algorithm to ask for: CKM_RSA_AES_KEY_WRAP (the vault's default),\n"
	"                       RSA_AES_KEY_WRAP_256 or RSA_AES_KEY_WRAP_384\n"
	"  --api-version VERSION  Key Vault REST API version (default 7.4)\n"
	"  --resource URL       the token audience (default by endpoint: https://managedhsm.azure.net when\n"
	"                       the host name contains \"managedhsm\", else https://vault.azure.net)\n"
	"  --bearer-file FILE   read the vault's bearer token from FILE instead of asking an identity\n"
	"  --bearer-fd N        read the vault's bearer token from file descriptor N\n"
	"  --cacert FILE        trust anchors (PEM) for TLS instead of the system store\n"
	"  --deadline SECONDS   how long a request may keep failing before it is an error (default 120)\n"
	"  -c FILE              import: the importkeyconfig.json (upstream format)\n"
	"  --key-hex HEX        import: the 32-byte oct-HSM key in hex (\"-\": read the hex from stdin)\n"
	"  --key-file FILE      import: the 32-byte oct-HSM key, raw bytes, from FILE\n"
	"  --rsa-pem FILE       import: the RSA-HSM private key (PEM) to import\n"
	"  --rsa-pem-out FILE   import: where a fresh RSA-HSM key is kept (new file, 0600;\n"
	"                       default private_key.pem)\n"
	"  --keyfile-out FILE   import: write the 32-byte filesystem key to FILE (new file, 0600)\n"
	"  --print-key          import: also print the filesystem key in hex (\"key\" in the output)\n"
	"  -v, --verbose        more verbose (repeatable)\n"
	"  -h, --help           this help\n";

enum mode { RELEASE, POLICY, IMPORT };

struct options {
	enum mode mode;
	const char *akv, *kid, *enc, *api_version, *cacert;
	long deadline_ms;
	struct import_options imp;
};

static int parse_fd(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > INT_MAX)
		cli_usage("--bearer-fd takes a file descriptor number, not %s", s);
	return (int)v;
}

static long parse_deadline(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 86400)
		cli_usage("--deadline %s: want a whole number of seconds from 1 to 86400", s);
	return v * 1000;
}

static void parse_options(int argc, char **argv, struct options *o)
{
	enum {
		OPT_AKV = 256, OPT_KID, OPT_CLIENT_ID, OPT_ENC, OPT_API_VERSION, OPT_RESOURCE,
		OPT_BEARER_FILE, OPT_BEARER_FD, OPT_CACERT, OPT_KEY_HEX, OPT_KEY_FILE, OPT_RSA_PEM,
		OPT_RSA_PEM_OUT, OPT_KEYFILE_OUT, OPT_PRINT_KEY, OPT_DEADLINE,
	};
	static const char shortopts[] = "c:vh";
	static const struct option longopts[] = {
		{"akv", required_argument, NULL, OPT_AKV},
		{"kid", required_argument, NULL, OPT_KID},
		{"client-id", required_argument, NULL, OPT_CLIENT_ID},
		{"enc", required_argument, NULL, OPT_ENC},
		{"api-version", required_argument, NULL, OPT_API_VERSION},
		{"resource", required_argument, NULL, OPT_RESOURCE},
		{"bearer-file", required_argument, NULL, OPT_BEARER_FILE},
		{"bearer-fd", required_argument, NULL, OPT_BEARER_FD},
		{"cacert", required_argument, NULL, OPT_CACERT},
		{"deadline", required_argument, NULL, OPT_DEADLINE},
		{"key-hex", required_argument, NULL, OPT_KEY_HEX},
		{"key-file", required_argument, NULL, OPT_KEY_FILE},
		{"rsa-pem", required_argument, NULL, OPT_RSA_PEM},
		{"rsa-pem-out", required_argument, NULL, OPT_RSA_PEM_OUT},
		{"keyfile-out", required_argument, NULL, OPT_KEYFILE_OUT},
		{"print-key", no_argument, NULL, OPT_PRINT_KEY},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct import_options *imp = &o->imp;
	imp->bearer.fd = -1;
	imp->rsa_pem_out = "private_key.pem";
	/* [-v...] [import | policy] OPTIONS: the subcommand comes first, after any -v */
	int first = cli_leading_verbose(argc, argv);
	if (first < argc && strcmp(argv[first], "import") == 0)
		o->mode = IMPORT;
	else if (first < argc && strcmp(argv[first], "policy") == 0)
		o->mode = POLICY;
	else
		first--;
	cli_shift(&argc, &argv, first);
	int c, sources = 0, import_only = 0, release_only = 0, enc_given = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (c) {
		case OPT_AKV: o->akv = optarg; release_only = 1; break;
		case OPT_KID: o->kid = optarg; release_only = 1; break;
		case OPT_ENC: o->enc = optarg; release_only = 1; enc_given = 1; break;
		case OPT_API_VERSION: o->api_version = optarg; release_only = 1; break;
		case OPT_CLIENT_ID: imp->bearer.client_id = optarg; break;
		case OPT_RESOURCE: imp->resource = optarg; break;
		case OPT_BEARER_FILE: imp->bearer.file = optarg; break;
		case OPT_BEARER_FD: imp->bearer.fd = parse_fd(optarg); break;
		case OPT_CACERT: o->cacert = optarg; break;
		case OPT_DEADLINE: o->deadline_ms = parse_deadline(optarg); break;
		case 'c': imp->config_path = optarg; import_only = 1; break;
		case OPT_KEY_HEX:
			/* a copy, then the argument is blanked so it lingers less in /proc/PID/cmdline */
			if (!(imp->key_hex = strdup(optarg)))
				die(EXIT_INTERNAL, "reading the command line: out of memory");
			if (strcmp(optarg, "-") != 0) {
				wipe(optarg, strlen(optarg));
				log_warn("--key-hex on the command line is visible to other users of this machine "
					 "while it runs: prefer --key-hex - (hex on standard input) or --key-file");
			}
			imp->source = KEY_HEX;
			sources++;
			import_only = 1;
			break;
		case OPT_KEY_FILE: imp->key_file = optarg; imp->source = KEY_FILE; sources++; import_only = 1; break;
		case OPT_RSA_PEM: imp->rsa_pem = optarg; imp->source = KEY_PEM; sources++; import_only = 1; break;
		case OPT_RSA_PEM_OUT: imp->rsa_pem_out = optarg; import_only = 1; break;
		case OPT_KEYFILE_OUT: imp->keyfile_out = optarg; import_only = 1; break;
		case OPT_PRINT_KEY: imp->print_key = 1; import_only = 1; break;
		case 'v': log_more_verbose(); break;
		case 'h': fputs(usage_text, stdout); exit(fflush(stdout) == 0 ? EXIT_OK : EXIT_INTERNAL);
		default: cli_bad_option(argv, shortopts, longopts);
		}
	}
	if (optind < argc) {
		const char *a = argv[optind];
		if (strcmp(a, "import") == 0 || strcmp(a, "policy") == 0)
			cli_usage("unexpected argument %s (a subcommand comes first: encfs-skr %s ...)", a, a);
		cli_usage("unexpected argument %s (%s)", a,
			  o->mode == RELEASE ? "the attestation token comes on standard input"
					     : "the options name everything");
	}
	if (imp->bearer.file && imp->bearer.fd >= 0)
		cli_usage("give --bearer-file or --bearer-fd, not both");
	if (o->mode == IMPORT) {
		if (release_only)
			cli_usage("import reads the vault, key and API version from the configuration: --akv, "
				  "--kid, --enc and --api-version do not apply");
		if (!imp->config_path)
			cli_usage("import needs -c FILE (the importkeyconfig.json)");
		if (sources > 1)
			cli_usage("give one of --key-hex, --key-file, --rsa-pem");
		if (imp->source == KEY_HEX && strcmp(imp->key_hex, "-") == 0 && imp->bearer.fd == 0)
			cli_usage("--key-hex - and --bearer-fd 0 both read standard input");
	} else {
		if (import_only)
			cli_usage("-c, --key-hex, --key-file, --rsa-pem, --rsa-pem-out, --keyfile-out and "
				  "--print-key belong to encfs-skr import");
		if (o->mode == POLICY && enc_given)
			cli_usage("--enc belongs to the release, not to policy");
		if (!o->kid)
			cli_usage("--kid NAME[/VERSION] is required");
		if (o->mode == RELEASE && imp->bearer.fd == 0)
			cli_usage("standard input is the attestation token: give the access token on another "
				  "descriptor");
	}
}

static const char *const enc_names[] = {"CKM_RSA_AES_KEY_WRAP", "RSA_AES_KEY_WRAP_256",
					"RSA_AES_KEY_WRAP_384"};

/* What a 403 lacks: the stored policy's conditions the token does not meet (read with a single
 * GET, when the identity may read the key), else the usual claims the token has not. */
static void why_403(const struct vault *v, const char *path, const struct secbuf *bearer,
		    const struct secbuf *token, char *out, size_t size)
{
	struct stored_key k;
	struct err e = {0};
	out[0] = '\0';
	if (policy_fetch(v, path, bearer, -1, &k, &e) == 0) {
		if (k.exportable == 0)
			snprintf(out, size, "the key is not exportable, so no policy can release it");
		else if (!k.policy.len)
			snprintf(out, size, "the key has no release policy");
		else
			policy_unmet(k.policy.data, k.policy.len, token, out, size);
		if (!out[0])
			snprintf(out, size, "the token meets the key's stored policy, so the identity may "
				 "not release the key");
		stored_key_free(&k);
		return;
	}
	char absent[400], present[600];
	token_claims_absent(token, absent, sizeof absent);
	token_claims_summary(token, present, sizeof present);
	snprintf(out, size, "the key's policy could not be read to compare (encfs-skr policy shows it to "
		 "an identity that may read keys)%s%s%s%s", absent[0] ? "; the token has no " : "", absent,
		 present[0] ? "; it has " : "", present);
}

static const char *release_hint(long status, const struct options *o, const struct vault *v,
				const char *path, const struct secbuf *bearer, const struct secbuf *token,
				char *buf, size_t size)
{
	switch (status) {
	case 401:
		snprintf(buf, size, "the vault did not accept the access token: check the identity%s%s and "
			 "that its token is for %s, or the token given with --bearer-file/--bearer-fd",
			 o->imp.bearer.client_id ? " " : "",
			 o->imp.bearer.client_id ? o->imp.bearer.client_id : "", v->resource);
		break;
	case 403: {
		char why[700];
		why_403(v, path, bearer, token, why, sizeof why);
		snprintf(buf, size, "%s; the identity also needs the Key Vault Crypto Service Release User "
			 "role", why);
		break;
	}
	case 404:
		snprintf(buf, size, "check the key name and version: %s in %s", path, v->host);
		break;
	case 400:
		snprintf(buf, size, "check --enc, --api-version and that the token is a valid, unexpired "
			 "MAA token");
		break;
	default:
		snprintf(buf, size, status >= 500 || status == 429 ? "the vault kept failing; try again later"
								  : "the vault refused the release");
	}
	return buf;
}

/* The JWS in a 200 answer: {"value": "<header.payload.signature>"}. */
static char *release_value(const struct http_response *rs, struct err *e)
{
	struct json j;
	if (json_parse(&j, (const char *)rs->body.data, rs->body.len, 64, e) != 0) {
		err_wrap(e, "key release: the vault's answer");
		e->code = EXIT_NETWORK;
		return NULL;
	}
	char *value = json_string(&j, json_member(&j, 0, "value"));
	json_free(&j);
	size_t dots = 0;
	for (const char *p = value; p && *p; p++)
		dots += *p == '.';
	if (!value || dots != 2) {
		free(value);
		err_set(e, EXIT_NETWORK, "key release: the vault's answer has no \"value\" JWS");
		return NULL;
	}
	return value;
}

static int run_release(const struct options *o, struct err *e)
{
	char path[300], endpoint_buf[320];
	const char *endpoint = o->akv;
	struct vault v;
	if (vault_key_ref(o->kid, &endpoint, endpoint_buf, sizeof endpoint_buf, path, sizeof path, e) != 0)
		return -1;
	if (!endpoint)
		return err_set(e, EXIT_USAGE, "usage: --akv ENDPOINT is required (or a full key identifier "
			       "URL in --kid) (see --help)");
	if (vault_init(&v, endpoint, o->imp.resource, o->api_version, e) != 0)
		return -1;
	if (o->enc) {
		int known = 0;
		for (size_t i = 0; i < sizeof enc_names / sizeof enc_names[0]; i++)
			known |= strcmp(o->enc, enc_names[i]) == 0;
		if (!known)
			return err_set(e, EXIT_USAGE, "usage: --enc %s is not one of CKM_RSA_AES_KEY_WRAP, "
				       "RSA_AES_KEY_WRAP_256, RSA_AES_KEY_WRAP_384 (see --help)", o->enc);
	}

	struct secbuf input = {0}, token = {0}, bearer = {0};
	stdin_refuse_tty("reading the attestation token", "pipe encfs-attest's output in, or < FILE");
	if (secbuf_read_fd(STDIN_FILENO, TOKEN_MAX, &input) != 0)
		return err_set(e, EXIT_CONFIG, "reading the attestation token: %s",
			       errno == EFBIG ? "more than 1 MiB on standard input" : strerror(errno));
	enum data_kind kind = data_kind((const char *)input.data, input.len);
	int rc = 0;
	if (strspn((const char *)input.data, " \t\r\n") == input.len)
		rc = stdin_empty(e, "reading the attestation token", "pipe encfs-attest's output in");
	else if (kind == DATA_JWKS || kind == DATA_RELEASE)
		rc = err_set(e, EXIT_CONFIG, "reading the attestation token: %s", data_kind_says(kind));
	else
		rc = token_take((const char *)input.data, input.len, &token, e);
	secbuf_free(&input);
	if (rc != 0 || token_check_expiry(&token, e) != 0) {
		secbuf_free(&token);
		return -1;
	}

	if (log_enabled(LOG_DEBUG)) {
		char claims[1024];
		token_claims_summary(&token, claims, sizeof claims);
		log_debug("attestation token claims: %s", claims[0] ? claims : "(unreadable)");
		log_trace("attestation token: %s", (const char *)token.data); /* cut to header.payload */
	}
	rc = -1;
	struct strbuf body = {0};
	struct http_response rs = {0};
	int got = 0;
	char *value = NULL;
	if (vault_bearer(&o->imp.bearer, &v, &bearer, e) != 0)
		goto out;
	sb_puts(&body, "{\"target\":");
	sb_json_string(&body, (const char *)token.data);
	if (o->enc) {
		sb_puts(&body, ",\"enc\":");
		sb_json_string(&body, o->enc);
	}
	sb_puts(&body, "}");
	if (body.failed) {
		err_set(e, EXIT_INTERNAL, "key release: out of memory");
		goto out;
	}
	char what[400], release_path[320];
	snprintf(what, sizeof what, "key release %s", path);
	snprintf(release_path, sizeof release_path, "%s/release", path);
	log_info("releasing key %s from %s", path, v.host);
	if (vault_request(&v, what, "POST", release_path, body.data, body.len, &bearer, 0, &rs, e) != 0)
		goto out;
	got = 1;
	if (rs.status != 200) {
		char msg[600], hint[1400];
		vault_error_text(&rs, msg, sizeof msg);
		err_set(e, vault_status_code(rs.status), "releasing key %s from %s: HTTP %ld: %s (%s)", path,
			v.host, rs.status, msg,
			release_hint(rs.status, o, &v, path, &bearer, &token, hint, sizeof hint));
		goto out;
	}
	if (!(value = release_value(&rs, e)))
		goto out;
	log_trace("release response: %s", value); /* cut to header.payload */
	size_t n = strlen(value);
	value[n] = '\n'; /* the JWS and a newline in one write; the NUL is not written */
	if (write_all(STDOUT_FILENO, value, n + 1) != 0) {
		err_set(e, EXIT_DEVICE, "writing the release response: %s", strerror(errno));
		goto out;
	}
	log_info("released key %s from %s (%zu-byte response)", path, v.host, n);
	rc = 0;
out:
	free(value);
	if (got)
		http_response_free(&rs);
	sb_free(&body);
	secbuf_free(&bearer);
	secbuf_free(&token);
	return rc;
}

/* policy: the key's stored release policy, pretty-printed */
static int policy_hook(const struct json *j, int tok, const char *path, int depth, struct strbuf *out,
		       void *arg)
{
	(void)j, (void)tok;
	if (strcmp(path, "release_policy") != 0)
		return 0;
	const struct stored_key *k = arg;
	struct json pj;
	if (!k->policy.len || json_parse(&pj, k->policy.data, k->policy.len, 4096, NULL) != 0) {
		sb_puts(out, "null");
		return 1;
	}
	json_pretty(&pj, 0, depth, NULL, NULL, out);
	json_free(&pj);
	return 1;
}

static int run_policy(const struct options *o, struct err *e)
{
	char path[300], endpoint_buf[320];
	const char *endpoint = o->akv;
	struct vault v;
	if (vault_key_ref(o->kid, &endpoint, endpoint_buf, sizeof endpoint_buf, path, sizeof path, e) != 0)
		return -1;
	if (!endpoint)
		return err_set(e, EXIT_USAGE, "usage: --akv ENDPOINT is required (or a full key identifier "
			       "URL in --kid) (see --help)");
	if (vault_init(&v, endpoint, o->imp.resource, o->api_version, e) != 0)
		return -1;
	struct secbuf bearer = {0};
	struct stored_key k;
	if (vault_bearer(&o->imp.bearer, &v, &bearer, e) != 0)
		return -1;
	int rc = policy_fetch(&v, path, &bearer, 0, &k, e);
	secbuf_free(&bearer);
	if (rc != 0)
		return -1;
	/* {"kid", "kty", "exportable", "release_policy"} as one JSON text, then pretty */
	struct strbuf raw = {0}, out = {0};
	sb_puts(&raw, "{\"kid\":");
	sb_json_string(&raw, k.kid);
	sb_puts(&raw, ",\"kty\":");
	sb_json_string(&raw, k.kty);
	sb_printf(&raw, ",\"exportable\":%s,\"release_policy\":null}",
		  k.exportable < 0 ? "null" : k.exportable ? "true" : "false");
	struct json j;
	rc = -1;
	if (raw.failed || json_parse(&j, raw.data, raw.len, 64, e) != 0) {
		err_set(e, EXIT_INTERNAL, "printing the policy: out of memory");
		goto out;
	}
	json_pretty(&j, 0, 0, policy_hook, &k, &out);
	json_free(&j);
	sb_puts(&out, "\n");
	if (out.failed || write_all(STDOUT_FILENO, out.data, out.len) != 0) {
		err_set(e, EXIT_DEVICE, "printing the policy: cannot write to standard output");
		goto out;
	}
	if (!k.policy.len)
		log_warn("key %s has no release policy: no release can give it", path);
	else if (k.exportable == 0)
		log_warn("key %s is not exportable: no release can give it", path);
	rc = 0;
out:
	sb_free(&raw);
	sb_free(&out);
	stored_key_free(&k);
	return rc;
}

int main(int argc, char **argv)
{
	log_init(argv[0]);
	secmem_init();
	/* import: RSA private key numbers in OpenSSL's locked heap when it can have one (not fatal) */
	(void)CRYPTO_secure_malloc_init(1u << 16, 32);
	struct options o = {0};
	parse_options(argc, argv, &o);
	http_init();
	if (o.cacert)
		http_set_ca_bundle(o.cacert);
	http_set_deadline_ms(o.deadline_ms);
	identity_set_no_imds_hint(o.mode == IMPORT
		? "outside Azure, give the vault's token with --bearer-file FILE, --bearer-fd N or "
		  "key.akv.bearer_token of the configuration"
		: "outside Azure, give the vault's token with --bearer-file FILE or --bearer-fd N");
	struct err e = {0};
	int rc = o.mode == IMPORT ? import_run(&o.imp, &e) : o.mode == POLICY ? run_policy(&o, &e)
									   : run_release(&o, &e);
	if (o.imp.key_hex) {
		wipe((char *)o.imp.key_hex, strlen(o.imp.key_hex));
		free((char *)o.imp.key_hex);
	}
	if (rc != 0)
		die_err(&e);
	return EXIT_OK;
}
