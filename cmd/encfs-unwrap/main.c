/* encfs-unwrap: the wrapping key pair (keygen), and the filesystem key out of a Key Vault / Managed
 * HSM release response: verify the JWS and its certificate chain, unwrap, derive.  See
 * encfs-unwrap(1). */
#include "cli.h"
#include "encode.h"
#include "http.h"
#include "io.h"
#include "jws.h"
#include "json.h"
#include "jwt.h"
#include "keygen.h"
#include "log.h"
#include "release.h"
#include "rsakey.h"
#include "secmem.h"
#include "show.h"
#include "strbuf.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SALT_MAX 256
#define INPUT_MAX (JWS_MAX_TEXT + 4096)

static const char usage_text[] =
	"usage: encfs-unwrap [-v] --private FILE [--akv ENDPOINT] [--kid NAME[/VERSION]] [--salt HEX]\n"
	"                    [--label TEXT] [--cacert FILE] < release.jws > key\n"
	"       encfs-unwrap [-v] keygen --private FILE > jwks.json\n"
	"       encfs-unwrap [-v] show < release.jws\n"
	"       encfs-unwrap -h | --help\n"
	"options:\n"
	"  --private FILE    the wrapping key's private half (keygen writes it: new file, 0600)\n"
	"  --akv ENDPOINT    the vault or Managed HSM the response must come from (host[:port] or URL)\n"
	"  --kid NAME[/VERSION]  the key the response must be for (as given to encfs-skr --kid)\n"
	"  --salt HEX        HKDF salt for RSA-HSM keys (key_derivation.salt); default none\n"
	"  --label TEXT      HKDF info for RSA-HSM keys (key_derivation.label);\n"
	"                    default \"Symmetric Encryption Key\"\n"
	"  --cacert FILE     trust anchors (PEM) for the signing chain, instead of the system store\n"
	"  -v, --verbose     more verbose (repeatable)\n"
	"  -h, --help        this help\n";

struct options {
	const char *private_path, *akv, *kid, *salt_hex, *label, *cacert;
	int keygen, show;
};

static void parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_PRIVATE = 256, OPT_AKV, OPT_KID, OPT_SALT, OPT_LABEL, OPT_CACERT };
	static const char shortopts[] = "vh";
	static const struct option longopts[] = {
		{"private", required_argument, NULL, OPT_PRIVATE},
		{"akv", required_argument, NULL, OPT_AKV},
		{"kid", required_argument, NULL, OPT_KID},
		{"salt", required_argument, NULL, OPT_SALT},
		{"label", required_argument, NULL, OPT_LABEL},
		{"cacert", required_argument, NULL, OPT_CACERT},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	/* [-v...] [keygen | show] OPTIONS: a subcommand comes first, after any -v */
	int first = cli_leading_verbose(argc, argv);
	if (first < argc && strcmp(argv[first], "keygen") == 0)
		o->keygen = 1;
	else if (first < argc && strcmp(argv[first], "show") == 0)
		o->show = 1;
	else
		first--;
	cli_shift(&argc, &argv, first);
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (c) {
		case OPT_PRIVATE: o->private_path = optarg; break;
		case OPT_AKV: o->akv = optarg; break;
		case OPT_KID: o->kid = optarg; break;
		case OPT_SALT: o->salt_hex = optarg; break;
		case OPT_LABEL: o->label = optarg; break;
		case OPT_CACERT: o->cacert = optarg; break;
		case 'v': log_more_verbose(); break;
		case 'h': fputs(usage_text, stdout); exit(fflush(stdout) == 0 ? EXIT_OK : EXIT_INTERNAL);
		default: cli_bad_option(argv, shortopts, longopts);
		}
	}
	if (optind < argc) {
		const char *a = argv[optind];
		if (strcmp(a, "keygen") == 0 || strcmp(a, "show") == 0)
			cli_usage("unexpected argument %s (a subcommand comes first: encfs-unwrap %s ...)", a, a);
		cli_usage("unexpected argument %s (%s)", a,
			  o->keygen ? "keygen writes the private half to --private FILE"
				    : "the release response comes on standard input");
	}
	int unwrap_opts = o->akv || o->kid || o->salt_hex || o->label || o->cacert;
	if (o->show) {
		if (unwrap_opts || o->private_path)
			cli_usage("show takes only -v: it reads the release response on standard input");
		return;
	}
	if (!o->private_path || !*o->private_path)
		cli_usage("--private FILE is required");
	if (o->keygen && unwrap_opts)
		cli_usage("keygen takes only --private and -v");
}

static int run_keygen(const struct options *o)
{
	struct strbuf jwks = {0};
	struct err e = {0};
	if (keygen(o->private_path, &jwks, &e) != 0) {
		sb_free(&jwks);
		die_err(&e);
	}
	sb_puts(&jwks, "\n");
	int rc = jwks.failed || write_all(STDOUT_FILENO, jwks.data, jwks.len) != 0;
	sb_free(&jwks);
	if (rc) {
		(void)unlink(o->private_path); /* nobody got the public half: the pair is useless */
		die(EXIT_DEVICE, "writing the JWK set: cannot write to standard output");
	}
	log_info("wrapping key written to %s", o->private_path);
	return EXIT_OK;
}

/* The compact JWS from standard input: as encfs-skr prints it, or the vault's own
 * {"value": "<JWS>"} body.  Returns a malloc'd string. */
static char *read_release(struct err *e)
{
	size_t len = 0;
	stdin_refuse_tty("reading the release response", "pipe encfs-skr's output in, or < FILE");
	char *text = read_fd_capped(STDIN_FILENO, INPUT_MAX, &len);
	if (!text) {
		err_set(e, EXIT_CONFIG, "reading the release response: %s",
			errno == EFBIG ? "more than 1 MiB on standard input" : strerror(errno));
		return NULL;
	}
	size_t start = 0;
	while (start < len && strchr(" \t\r\n", text[start]))
		start++;
	while (len > start && strchr(" \t\r\n", text[len - 1]))
		len--;
	if (start == len) {
		free(text);
		stdin_empty(e, "reading the release response", "pipe encfs-skr's output in");
		return NULL;
	}
	/* another step's product: say where it goes rather than call it a broken signature */
	enum data_kind kind = data_kind(text + start, len - start);
	if (kind == DATA_MAA_TOKEN || kind == DATA_JWKS) {
		free(text);
		err_set(e, EXIT_CONFIG, "reading the release response: %s", data_kind_says(kind));
		return NULL;
	}
	if (memchr(text + start, '\0', len - start)) {
		free(text);
		err_set(e, EXIT_CONFIG, "reading the release response: standard input holds a NUL byte (it "
			"is not a JWS)");
		return NULL;
	}
	char *out = NULL;
	if (text[start] == '{') {
		struct json j;
		if (json_parse(&j, text + start, len - start, 64, e) != 0) {
			free(text);
			err_wrap(e, "reading the release response");
			return NULL;
		}
		out = json_string(&j, json_member(&j, 0, "value"));
		json_free(&j);
		if (!out)
			err_set(e, EXIT_CONFIG, "reading the release response: the JSON has no \"value\" "
				"string");
	} else {
		out = strndup(text + start, len - start);
		if (!out)
			err_set(e, EXIT_INTERNAL, "reading the release response: out of memory");
	}
	free(text);
	return out;
}

/* The vault host the signing certificate must be valid for: the one named by --akv or a --kid URL
 * (and the response must be for it), else the one in the signed payload's key identifiers, which
 * must then be a public Key Vault / Managed HSM name. */
static int vault_host(const char *given, const struct released_key *rk, char *host, size_t size,
		      struct err *e)
{
	if (given[0]) {
		snprintf(host, size, "%s", given);
		if (rk->host[0] && strcmp(rk->host, host) != 0)
			return err_set(e, EXIT_CRYPTO, "release response: it is for a key of %s, not of %s "
				       "(check --akv)", rk->host, host);
		return 0;
	}
	if (!rk->host[0])
		return err_set(e, EXIT_USAGE, "release response: it does not name its vault "
			       "(request.kid): give --akv ENDPOINT");
	if (!known_vault_host(rk->host))
		return err_set(e, EXIT_USAGE, "release response: %s is not a Key Vault or Managed HSM "
			       "host name (give --akv ENDPOINT to accept it)", rk->host);
	snprintf(host, size, "%s", rk->host);
	return 0;
}

/* The released key is the one asked for: its name and, when --kid gives one, its version (Key Vault
 * names are case-insensitive). */
static int check_kid(const struct key_ref *want, const struct released_key *rk, struct err *e)
{
	if (!rk->key.name[0])
		return err_set(e, EXIT_CRYPTO, "release response: it does not name its key (no key "
			       "identifier in response.key.key.kid or request.kid), so --kid cannot be checked");
	if (strcasecmp(rk->key.name, want->name) != 0)
		return err_set(e, EXIT_CRYPTO, "release response: it is the key %s, not %s (check --kid)",
			       rk->key.name, want->name);
	if (want->version[0] && strcasecmp(rk->key.version, want->version) != 0)
		return err_set(e, EXIT_CRYPTO, "release response: it is version %s of the key %s, not %s "
			       "(check --kid)", rk->key.version[0] ? rk->key.version : "(none)", rk->key.name,
			       want->version);
	return 0;
}

static int run_unwrap(const struct options *o, unsigned char key[FS_KEY_LEN], struct err *e)
{
	unsigned char salt[SALT_MAX];
	size_t salt_len = 0;
	if (o->salt_hex && hex_decode(o->salt_hex, strlen(o->salt_hex), salt, sizeof salt, &salt_len) != 0)
		return err_set(e, EXIT_USAGE, "usage: --salt is not hex of at most %d bytes "
			       "(key_derivation.salt) (see --help)", SALT_MAX);
	/* the vault the response must come from: --akv, or the host of a --kid URL (the same one when
	 * both are given) */
	char given_host[256] = "";
	if (o->akv && endpoint_host(o->akv, given_host, sizeof given_host) != 0)
		return err_set(e, EXIT_USAGE, "usage: --akv %s has no host name (see --help)", o->akv);
	struct key_ref want = {0};
	if (o->kid && key_ref_parse(o->kid, &want) != 0)
		return err_set(e, EXIT_USAGE, "usage: --kid %s: a key is NAME[/VERSION] (letters, digits and "
			       "dashes) or https://HOST/keys/NAME[/VERSION] (see --help)", o->kid);
	if (want.host[0] && given_host[0] && strcmp(want.host, given_host) != 0)
		return err_set(e, EXIT_USAGE, "usage: --kid %s is in %s, not in the --akv vault %s (see --help)",
			       o->kid, want.host, given_host);
	if (want.host[0])
		snprintf(given_host, sizeof given_host, "%s", want.host);

	/* Standard input first: in a pipeline started with "encfs-unwrap keygen", the private key file
	 * exists only once the release response has come through. */
	int rc = -1;
	char *text = NULL;
	EVP_PKEY *priv = NULL;
	struct jws jws = {0};
	struct released_key rk = {0};
	struct secbuf material = {0};
	X509_STORE *store = NULL;

	if (!(text = read_release(e)) || !(priv = rsakey_read_pem(o->private_path, e)))
		goto out;
	log_trace("release response: %s", text); /* cut to header.payload */
	if (jws_parse(&jws, text, strlen(text), e) != 0)
		goto out;
	log_trace("release response header: %s", jws.header);
	if (jws_verify_signature(&jws, e) != 0)
		goto out;
	log_debug("release response: %s signature verifies with x5c[0]", jws.alg);
	if (release_parse(jws.payload, jws.payload_len, &rk, e) != 0)
		goto out;
	char host[256];
	if (vault_host(given_host, &rk, host, sizeof host, e) != 0)
		goto out;
	if (!(store = jws_trust_store(http_ca_bundle(), e)) || jws_verify_chain(&jws, store, host, e) != 0)
		goto out;
	log_debug("release response: signing certificate chain verifies for %s", host);
	if (o->kid && check_kid(&want, &rk, e) != 0)
		goto out;
	log_info("released %s key %s, wrapped with %s", rk.kty, rk.kid[0] ? rk.kid : "(no kid)", rk.enc);
	log_trace("release response: ciphertext of %zu bytes for a %d-byte wrapping key", rk.ciphertext_len,
		  EVP_PKEY_get_size(priv));
	if (rsa_aes_unwrap(priv, rk.alg, rk.ciphertext, rk.ciphertext_len, &material, e) != 0)
		goto out;
	if (filesystem_key(rk.kty, &material, salt, salt_len, o->label, key, e) != 0)
		goto out;
	/* said at the default level: a configuration that lost its salt opens nothing, and looks
	 * like a wrong key in encfs-dmsetup */
	if (!o->salt_hex && (strcmp(rk.kty, "RSA") == 0 || strcmp(rk.kty, "RSA-HSM") == 0))
		log_warn("the %s key was derived without a salt (no --salt, that is no key_derivation.salt "
			 "in the configuration): a key imported with a salt gives another key this way",
			 rk.kty);
	rc = 0;
out:
	wipe(salt, sizeof salt);
	secbuf_free(&material);
	X509_STORE_free(store);
	release_free(&rk);
	jws_free(&jws);
	free(text);
	EVP_PKEY_free(priv);
	return rc;
}

int main(int argc, char **argv)
{
	log_init(argv[0]);
	secmem_init();
	/* Private key numbers in OpenSSL's locked heap when it can have one (not fatal otherwise). */
	(void)CRYPTO_secure_malloc_init(1u << 16, 32);
	struct options o = {0};
	parse_options(argc, argv, &o);
	if (o.cacert)
		http_set_ca_bundle(o.cacert);
	if (o.keygen)
		return run_keygen(&o);
	if (o.show)
		return show_release();

	if (isatty(STDOUT_FILENO))
		die(EXIT_USAGE, "writing the key: standard output is a terminal; refusing to show key bytes "
		    "(pipe it into encfs-dmsetup, or redirect to a file you then remove)");
	struct secbuf key = {0};
	if (secbuf_alloc(&key, FS_KEY_LEN) != 0)
		die(EXIT_INTERNAL, "unwrapping: out of memory");
	struct err e = {0};
	if (run_unwrap(&o, key.data, &e) != 0) {
		secbuf_free(&key);
		die_err(&e);
	}
	key.len = FS_KEY_LEN;
	char kcv[KEY_CHECK_VALUE_LEN];
	key_check_value(key.data, key.len, kcv);
	int wrc = write_all(STDOUT_FILENO, key.data, key.len);
	secbuf_free(&key);
	if (wrc != 0)
		die(EXIT_DEVICE, "writing the key: cannot write to standard output: %s", strerror(errno));
	log_info("key check value %s (first 8 hex digits of SHA-256 of the key)", kcv);
	return EXIT_OK;
}
