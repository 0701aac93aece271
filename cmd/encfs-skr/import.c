/* Key import with a release policy (the upstream importkey tool's job). */
#include "import.h"

#include "encode.h"
#include "io.h"
#include "json.h"
#include "rsakey.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONFIG_MAX_TOKENS 4096
#define FS_KEY_LEN 32
#define SALT_LEN 32      /* a generated salt: SHA-256's size, as upstream */
#define SALT_MAX 256
#define BN_MAX 1024      /* an RSA-8192 number */

static int placeholder(const char *s)
{
	size_t n = strlen(s);
	return n >= 2 && s[0] == '<' && s[n - 1] == '>';
}

/* A string field at path under tok (prefix names tok in messages): 0 absent (out NULL), 1 present,
 * -1 bad (e filled). */
static int get_string(const struct json *j, int tok, const char *prefix, const char *path,
		      int required, char **out, struct err *e)
{
	*out = NULL;
	int t = json_get(j, tok, path);
	if (t < 0) {
		if (required)
			return err_set(e, EXIT_CONFIG, "import configuration: %s%s is missing", prefix, path);
		return 0;
	}
	enum json_type ty = json_type(j, t);
	if (ty != JSON_STRING)
		return err_set(e, EXIT_CONFIG, "import configuration: %s%s is %s, not a string%s", prefix,
			       path, json_type_name(ty),
			       ty == JSON_BOOL || ty == JSON_NUMBER ? " (write it as a string, e.g. \"false\" "
								      "or \"0\")" : "");
	*out = json_string(j, t);
	if (!*out)
		return err_set(e, EXIT_INTERNAL, "import configuration: out of memory");
	if (placeholder(*out))
		return err_set(e, EXIT_CONFIG, "import configuration: %s%s still holds the template "
			       "placeholder %.100s%s", prefix, path, *out,
			       strcmp(path, "key.akv.bearer_token") == 0
				       ? " (remove it to use the managed or workload identity)" : "");
	if (required && !**out)
		return err_set(e, EXIT_CONFIG, "import configuration: %s%s is empty", prefix, path);
	return 1;
}

void import_config_free(struct import_config *c)
{
	free(c->kid);
	free(c->kty);
	free(c->authority);
	free(c->akv_endpoint);
	free(c->api_version);
	free(c->client_id);
	if (c->bearer) {
		wipe(c->bearer, strlen(c->bearer));
		free(c->bearer);
	}
	free(c->salt_hex);
	free(c->label);
	sb_free(&c->key_ops);
	sb_free(&c->policy);
	memset(c, 0, sizeof *c);
}

int import_policy(const char *text, size_t len, const char *authority, struct strbuf *out,
		  struct err *e)
{
	struct json j;
	if (json_parse(&j, text, len, CONFIG_MAX_TOKENS, e) != 0)
		return err_wrap(e, "import configuration");
	int rc = -1;
	int claims = json_member(&j, 0, "claims");
	if (json_type(&j, claims) != JSON_ARRAY || json_size(&j, claims) == 0) {
		err_set(e, EXIT_CONFIG, "import configuration: claims must be a non-empty array of arrays "
			"of {\"claim\", \"equals\"} (the release policy)");
		goto out;
	}
	sb_puts(out, "{\"version\":\"1.0.0\",\"anyOf\":[");
	for (int i = 0; i < json_size(&j, claims); i++) {
		int all = json_element(&j, claims, i);
		if (json_type(&j, all) != JSON_ARRAY || json_size(&j, all) == 0) {
			err_set(e, EXIT_CONFIG, "import configuration: claims[%d] must be a non-empty array "
				"of {\"claim\", \"equals\"}", i);
			goto out;
		}
		sb_puts(out, i ? ",{\"authority\":" : "{\"authority\":");
		sb_json_string(out, authority);
		sb_puts(out, ",\"allOf\":[");
		for (int k = 0; k < json_size(&j, all); k++) {
			int cond = json_element(&j, all, k);
			char path[64];
			snprintf(path, sizeof path, "claims[%d][%d]", i, k);
			if (json_type(&j, cond) != JSON_OBJECT) {
				err_set(e, EXIT_CONFIG, "import configuration: %s is not an object", path);
				goto out;
			}
			char *claim = NULL, *equals = NULL;
			char prefix[72];
			snprintf(prefix, sizeof prefix, "%s.", path);
			int has_claim = get_string(&j, cond, prefix, "claim", 1, &claim, e);
			int has_equals = has_claim == 1 ? get_string(&j, cond, prefix, "equals", 0, &equals, e) : -1;
			if (has_equals == 0)
				err_set(e, EXIT_CONFIG, "import configuration: %sequals is missing", prefix);
			if (has_claim != 1 || has_equals != 1) {
				free(claim);
				free(equals);
				goto out;
			}
			for (int m = 0; m < json_size(&j, cond); m++) {
				int key, val;
				if (json_member_at(&j, cond, m, &key, &val) == 0 &&
				    !json_string_eq(&j, key, "claim") && !json_string_eq(&j, key, "equals")) {
					char name[64] = "";
					(void)json_string_buf(&j, key, name, sizeof name);
					log_warn("import configuration: %s.%s is not part of the format: ignored",
						 path, name);
				}
			}
			sb_puts(out, k ? ",{\"claim\":" : "{\"claim\":");
			sb_json_string(out, claim);
			sb_puts(out, ",\"equals\":");
			sb_json_string(out, equals);
			sb_puts(out, "}");
			free(claim);
			free(equals);
		}
		sb_puts(out, "]}");
	}
	sb_puts(out, "]}");
	if (out->failed) {
		err_set(e, EXIT_INTERNAL, "building the release policy: out of memory");
		goto out;
	}
	rc = 0;
out:
	json_free(&j);
	return rc;
}

int import_config_parse(const char *text, size_t len, struct import_config *c, struct err *e)
{
	memset(c, 0, sizeof *c);
	struct json j;
	if (json_parse(&j, text, len, CONFIG_MAX_TOKENS, e) != 0)
		return err_wrap(e, "import configuration");
	int rc = -1;
	char *endpoint = NULL;
	if (json_type(&j, 0) != JSON_OBJECT || json_type(&j, json_member(&j, 0, "key")) != JSON_OBJECT) {
		err_set(e, EXIT_CONFIG, "import configuration: no \"key\" object");
		goto out;
	}
	if (get_string(&j, 0, "", "key.kid", 1, &c->kid, e) < 0 ||
	    get_string(&j, 0, "", "key.kty", 0, &c->kty, e) < 0 ||
	    get_string(&j, 0, "", "key.authority.endpoint", 1, &endpoint, e) < 0 ||
	    get_string(&j, 0, "", "key.akv.endpoint", 1, &c->akv_endpoint, e) < 0 ||
	    get_string(&j, 0, "", "key.akv.api_version", 0, &c->api_version, e) < 0 ||
	    get_string(&j, 0, "", "key.akv.bearer_token", 0, &c->bearer, e) < 0 ||
	    get_string(&j, 0, "", "key_derivation.salt", 0, &c->salt_hex, e) < 0 ||
	    get_string(&j, 0, "", "key_derivation.label", 0, &c->label, e) < 0 ||
	    get_string(&j, 0, "", "identity.client_id", 0, &c->client_id, e) < 0)
		goto out;
	if (!c->kty || !*c->kty) {
		free(c->kty);
		c->kty = strdup("oct-HSM"); /* upstream: no kty means an oct key */
		if (!c->kty) {
			err_set(e, EXIT_INTERNAL, "import configuration: out of memory");
			goto out;
		}
	}
	if (strcmp(c->kty, "oct-HSM") != 0 && strcmp(c->kty, "RSA-HSM") != 0) {
		err_set(e, EXIT_CONFIG, "import configuration: key.kty \"%.40s\" is not oct-HSM or "
			"RSA-HSM (the key types a filesystem key can come from)", c->kty);
		goto out;
	}
	if (c->salt_hex && *c->salt_hex) {
		unsigned char salt[SALT_MAX];
		size_t sl = 0;
		int bad = hex_decode(c->salt_hex, strlen(c->salt_hex), salt, sizeof salt, &sl) != 0;
		if (bad) {
			err_set(e, EXIT_CONFIG, "import configuration: key_derivation.salt is not hex of at "
				"most %d bytes", SALT_MAX);
			goto out;
		}
	}
	if (strcmp(c->kty, "oct-HSM") == 0 && ((c->salt_hex && *c->salt_hex) || (c->label && *c->label)))
		log_warn("import configuration: key_derivation is only used for RSA-HSM keys: ignored");
	int ops = json_get(&j, 0, "key.key_ops");
	if (ops >= 0) {
		if (json_type(&j, ops) != JSON_ARRAY) {
			err_set(e, EXIT_CONFIG, "import configuration: key.key_ops is not an array");
			goto out;
		}
		sb_puts(&c->key_ops, "[");
		for (int i = 0; i < json_size(&j, ops); i++) {
			char op[32];
			if (json_string_buf(&j, json_element(&j, ops, i), op, sizeof op) != 0) {
				err_set(e, EXIT_CONFIG, "import configuration: key.key_ops[%d] is not a key "
					"operation name", i);
				goto out;
			}
			if (i)
				sb_puts(&c->key_ops, ",");
			sb_json_string(&c->key_ops, op);
		}
		sb_puts(&c->key_ops, "]");
	}
	/* the authority the policy trusts, as upstream writes it: https://<endpoint> */
	size_t el = strlen(endpoint);
	while (el > 0 && endpoint[el - 1] == '/')
		endpoint[--el] = '\0';
	struct strbuf auth = {0};
	if (strncmp(endpoint, "https://", 8) != 0)
		sb_puts(&auth, "https://");
	sb_puts(&auth, endpoint);
	if (auth.failed) {
		sb_free(&auth);
		err_set(e, EXIT_INTERNAL, "import configuration: out of memory");
		goto out;
	}
	c->authority = auth.data;
	if (import_policy(text, len, c->authority, &c->policy, e) != 0)
		goto out;
	if (c->key_ops.failed) {
		err_set(e, EXIT_INTERNAL, "import configuration: out of memory");
		goto out;
	}
	rc = 0;
out:
	free(endpoint);
	json_free(&j);
	if (rc != 0)
		import_config_free(c);
	return rc;
}

/* --- key material ----------------------------------------------------------------------- */

/* base64url (no padding) of data into the JSON body, through guarded memory. */
static void put_b64url(struct strbuf *sb, const unsigned char *data, size_t len)
{
	struct secbuf b = {0};
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (secbuf_alloc(&b, cap) != 0) {
		sb->failed = 1;
		return;
	}
	sodium_bin2base64((char *)b.data, cap, data, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sb_puts(sb, (const char *)b.data);
	secbuf_free(&b);
}

/* "name":"<base64url of the RSA number param, minimal big-endian>" */
static int put_rsa_number(struct strbuf *sb, EVP_PKEY *pkey, const char *param, const char *name)
{
	struct secbuf native = {0}, be = {0};
	int rc = -1;
	if (secbuf_alloc(&native, BN_MAX) != 0 || secbuf_alloc(&be, BN_MAX) != 0)
		goto out;
	OSSL_PARAM params[2] = {OSSL_PARAM_construct_BN(param, native.data, native.cap),
				OSSL_PARAM_construct_end()};
	if (!EVP_PKEY_get_params(pkey, params) || !OSSL_PARAM_modified(params))
		goto out;
	const union { unsigned short s; unsigned char c; } probe = {1};
	size_t n = native.cap, skip = 0;
	for (size_t i = 0; i < n; i++)
		be.data[i] = probe.c ? native.data[n - 1 - i] : native.data[i];
	while (skip + 1 < n && be.data[skip] == 0)
		skip++;
	sb_printf(sb, ",\"%s\":\"", name);
	put_b64url(sb, be.data + skip, n - skip);
	sb_puts(sb, "\"");
	rc = sb->failed ? -1 : 0;
out:
	ERR_clear_error();
	secbuf_free(&native);
	secbuf_free(&be);
	return rc;
}

static int rsa_jwk(struct strbuf *sb, EVP_PKEY *pkey, const struct import_config *c, struct err *e)
{
	static const char *const members[][2] = {
		{OSSL_PKEY_PARAM_RSA_N, "n"},         {OSSL_PKEY_PARAM_RSA_E, "e"},
		{OSSL_PKEY_PARAM_RSA_D, "d"},         {OSSL_PKEY_PARAM_RSA_FACTOR1, "p"},
		{OSSL_PKEY_PARAM_RSA_FACTOR2, "q"},   {OSSL_PKEY_PARAM_RSA_EXPONENT1, "dp"},
		{OSSL_PKEY_PARAM_RSA_EXPONENT2, "dq"}, {OSSL_PKEY_PARAM_RSA_COEFFICIENT1, "qi"},
	};
	sb_puts(sb, "{\"kty\":\"RSA\"");
	if (c->key_ops.len)
		sb_printf(sb, ",\"key_ops\":%s", c->key_ops.data);
	for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
		if (put_rsa_number(sb, pkey, members[i][0], members[i][1]) != 0)
			return err_set(e, EXIT_CONFIG, "encoding the RSA key: it has no %s (a full private "
				       "key with CRT parameters is needed)", members[i][1]);
	sb_puts(sb, "}");
	return 0;
}

/* The oct key from --key-hex (argv or "-") or --key-file, or fresh random bytes. */
static int oct_key(const struct import_options *o, struct secbuf *key, struct err *e)
{
	if (secbuf_alloc(key, FS_KEY_LEN) != 0)
		return err_set(e, EXIT_INTERNAL, "key: out of memory");
	if (o->source == KEY_RANDOM) {
		randombytes_buf(key->data, FS_KEY_LEN);
		key->len = FS_KEY_LEN;
		return 0;
	}
	struct secbuf in = {0};
	const char *what = o->source == KEY_HEX ? "--key-hex" : o->key_file;
	if (o->source == KEY_FILE || strcmp(o->key_hex, "-") == 0) {
		if (o->source == KEY_HEX)
			stdin_refuse_tty("key: reading --key-hex -", "pipe the hex in; a key typed at a terminal "
					 "stays in its history");
		int fd = o->source == KEY_FILE ? open(o->key_file, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
		if (fd < 0)
			return err_set(e, EXIT_CONFIG, "key: opening %s: %s", o->key_file, strerror(errno));
		int rc = secbuf_read_fd(fd, 1024, &in);
		int saved = errno;
		if (fd != STDIN_FILENO)
			close(fd);
		if (rc != 0)
			return err_set(e, EXIT_CONFIG, "key: reading %s: %s",
				       o->source == KEY_FILE ? o->key_file : "standard input",
				       saved == EFBIG ? "more than 1 KiB" : strerror(saved));
	} else {
		size_t n = strlen(o->key_hex);
		if (secbuf_alloc(&in, n) != 0)
			return err_set(e, EXIT_INTERNAL, "key: out of memory");
		memcpy(in.data, o->key_hex, n);
		in.len = n;
	}
	int rc = 0;
	if (o->source == KEY_HEX && strcmp(o->key_hex, "-") == 0 &&
	    strspn((const char *)in.data, " \t\r\n") == in.len) {
		rc = stdin_empty(e, "key: reading --key-hex -", "pipe the 64 hex digits in");
	} else if (o->source == KEY_FILE) {
		if (in.len != FS_KEY_LEN)
			rc = err_set(e, EXIT_CONFIG, "key: %s holds %zu bytes; a key file holds the %d raw key "
				     "bytes (for hex text use --key-hex -)", what, in.len, FS_KEY_LEN);
		else
			memcpy(key->data, in.data, FS_KEY_LEN);
	} else {
		size_t n = in.len, out = 0;
		while (n > 0 && (in.data[n - 1] == '\n' || in.data[n - 1] == '\r' || in.data[n - 1] == ' '))
			n--;
		if (hex_decode((const char *)in.data, n, key->data, key->cap, &out) != 0 || out != FS_KEY_LEN)
			rc = err_set(e, EXIT_CONFIG, "key: --key-hex is not %d bytes of hex (%d hex digits)",
				     FS_KEY_LEN, 2 * FS_KEY_LEN);
	}
	secbuf_free(&in);
	if (rc == 0)
		key->len = FS_KEY_LEN;
	return rc;
}

/* A new file for a key, opened before the import so that an existing one stops us early. */
static int open_new(const char *path, struct err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST)
		return err_set(e, EXIT_USAGE, "writing %s: it exists (refusing to overwrite a key file: "
			       "remove it or choose another name)", path);
	if (fd < 0)
		return err_set(e, EXIT_DEVICE, "writing %s: %s", path, strerror(errno));
	return fd;
}

static void hex_member(struct strbuf *sb, const char *name, const unsigned char *b, size_t n)
{
	struct secbuf h = {0};
	if (secbuf_alloc(&h, 2 * n + 1) != 0) {
		sb->failed = 1;
		return;
	}
	hex_encode(b, n, (char *)h.data);
	sb_printf(sb, ",\"%s\":\"%s\"", name, (const char *)h.data);
	secbuf_free(&h);
}

int import_run(const struct import_options *o, struct err *e)
{
	struct import_config c = {0};
	size_t len = 0;
	char *text = read_file_capped(o->config_path, IMPORT_CONFIG_MAX, &len);
	if (!text)
		return err_set(e, EXIT_CONFIG, "reading %s: %s", o->config_path,
			       errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
	int rc = import_config_parse(text, len, &c, e);
	wipe(text, len); /* it may hold akv.bearer_token */
	free(text);
	if (rc != 0)
		return -1;

	int rsa = strcmp(c.kty, "RSA-HSM") == 0;
	struct vault v;
	char path[300], endpoint_buf[320];
	const char *endpoint = c.akv_endpoint;
	struct secbuf oct = {0}, bearer = {0};
	unsigned char fs_key[FS_KEY_LEN], salt[SALT_MAX];
	size_t salt_len = 0;
	EVP_PKEY *pkey = NULL;
	struct strbuf body = {0}, result = {0};
	struct http_response rs = {0};
	int keyfile_fd = -1, made_pem = 0, got_response = 0;
	const char *label = c.label && *c.label ? c.label : RSAKEY_DEFAULT_LABEL;
	rc = -1;

	if (vault_key_ref(c.kid, &endpoint, endpoint_buf, sizeof endpoint_buf, path, sizeof path, e) != 0 ||
	    vault_init(&v, endpoint, o->resource, c.api_version, e) != 0)
		goto out;
	if (strchr(path, '/')) {
		err_set(e, EXIT_CONFIG, "import configuration: key.kid %s names a version; import makes a "
			"new version of the key NAME (give only the name)", c.kid);
		goto out;
	}
	if (rsa && (o->source == KEY_HEX || o->source == KEY_FILE)) {
		err_set(e, EXIT_USAGE, "usage: --key-hex and --key-file are for oct-HSM keys; key.kty is "
			"RSA-HSM (use --rsa-pem FILE, or nothing for a fresh key) (see --help)");
		goto out;
	}
	if (!rsa && o->source == KEY_PEM) {
		err_set(e, EXIT_USAGE, "usage: --rsa-pem is for RSA-HSM keys; key.kty is oct-HSM (see --help)");
		goto out;
	}

	/* the key material and the filesystem key it gives */
	if (rsa) {
		if (c.salt_hex && *c.salt_hex) {
			(void)hex_decode(c.salt_hex, strlen(c.salt_hex), salt, sizeof salt, &salt_len);
		} else {
			randombytes_buf(salt, SALT_LEN);
			salt_len = SALT_LEN;
		}
		if (o->source == KEY_PEM) {
			if (!(pkey = rsakey_read_pem(o->rsa_pem, e)))
				goto out;
		} else {
			pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
			ERR_clear_error();
			if (!pkey) {
				err_set(e, EXIT_INTERNAL, "generating the RSA-HSM key: RSA-2048 failed");
				goto out;
			}
			if (rsakey_write_pem(o->rsa_pem_out, pkey, e) != 0)
				goto out;
			made_pem = 1;
		}
		if (rsakey_derive(pkey, salt, salt_len, label, fs_key, e) != 0)
			goto out;
	} else {
		if (oct_key(o, &oct, e) != 0)
			goto out;
		memcpy(fs_key, oct.data, FS_KEY_LEN);
	}
	if (o->keyfile_out && (keyfile_fd = open_new(o->keyfile_out, e)) < 0)
		goto out;

	/* PUT /keys/NAME with the key, hsm, exportable and the release policy */
	sb_puts(&body, "{\"key\":");
	if (rsa) {
		if (rsa_jwk(&body, pkey, &c, e) != 0)
			goto out;
	} else {
		sb_puts(&body, "{\"kty\":\"oct-HSM\"");
		if (c.key_ops.len)
			sb_printf(&body, ",\"key_ops\":%s", c.key_ops.data);
		sb_puts(&body, ",\"k\":\"");
		put_b64url(&body, oct.data, oct.len);
		sb_printf(&body, "\",\"key_size\":%zu}", oct.len * 8);
	}
	sb_puts(&body, ",\"hsm\":true,\"attributes\":{\"exportable\":true},\"release_policy\":"
		       "{\"contentType\":\"application/json; charset=utf-8\",\"data\":\"");
	put_b64url(&body, (const unsigned char *)c.policy.data, c.policy.len);
	sb_puts(&body, "\"}}");
	if (body.failed) {
		err_set(e, EXIT_INTERNAL, "building the import request: out of memory");
		goto out;
	}

	struct bearer_source bs = o->bearer;
	bs.inline_token = c.bearer;
	if (!bs.client_id || !*bs.client_id)
		bs.client_id = c.client_id;
	if (vault_bearer(&bs, &v, &bearer, e) != 0)
		goto out;
	log_info("importing %s key %s into %s with a release policy for %s", c.kty, path, v.host,
		 c.authority);
	if (vault_request(&v, "key import", "PUT", path, body.data, body.len, &bearer, 0, &rs, e) != 0)
		goto out;
	got_response = 1;
	if (rs.status != 200) {
		char msg[600];
		vault_error_text(&rs, msg, sizeof msg);
		err_set(e, vault_status_code(rs.status), "importing key %s into %s: HTTP %ld: %s (%s)", path,
			v.host, rs.status, msg,
			rs.status == 401 ? "check the identity and its token: the vault did not accept it"
			: rs.status == 403 ? "the identity needs the Key Vault Crypto Officer or Managed HSM "
					     "Crypto User role to import keys"
			: rs.status == 400 ? "the vault refused the key or its release policy: check key.kty, "
					     "key.key_ops and the claims"
					   : "the vault could not import the key");
		goto out;
	}
	struct json j;
	char kid[600] = "";
	if (json_parse(&j, (const char *)rs.body.data, rs.body.len, 1024, NULL) == 0) {
		(void)json_string_buf(&j, json_get(&j, 0, "key.kid"), kid, sizeof kid);
		json_free(&j);
	}
	if (!kid[0])
		snprintf(kid, sizeof kid, "%s/keys/%s", v.base, path);

	if (keyfile_fd >= 0) {
		if (write_all(keyfile_fd, fs_key, FS_KEY_LEN) != 0 || fsync(keyfile_fd) != 0) {
			err_set(e, EXIT_DEVICE, "writing %s: %s (the key was imported as %s)", o->keyfile_out,
				strerror(errno), kid);
			goto out;
		}
	}
	sb_puts(&result, "{\"kid\":");
	sb_json_string(&result, kid);
	sb_printf(&result, ",\"kty\":\"%s\",\"release_policy\":%s", c.kty, c.policy.data);
	if (rsa) {
		char salt_hex[2 * SALT_MAX + 1];
		hex_encode(salt, salt_len, salt_hex);
		sb_printf(&result, ",\"key_derivation\":{\"salt\":\"%s\",\"label\":", salt_hex);
		sb_json_string(&result, label);
		sb_puts(&result, "}");
		if (!c.salt_hex || !*c.salt_hex)
			log_warn("key_derivation.salt was not in the configuration: a new salt was made; put "
				 "\"key_derivation\": {\"salt\": \"%s\", \"label\": \"%s\"} into the sidecar "
				 "configuration of this filesystem, or its key will not match", salt_hex, label);
	}
	/* the key check value encfs-unwrap logs for the key it unwraps: the two can be compared */
	unsigned char h[crypto_hash_sha256_BYTES];
	char kcv[9];
	crypto_hash_sha256(h, fs_key, FS_KEY_LEN);
	hex_encode(h, 4, kcv);
	wipe(h, sizeof h);
	sb_printf(&result, ",\"key_check_value\":\"%s\"", kcv);
	if (o->print_key)
		hex_member(&result, "key", fs_key, FS_KEY_LEN);
	if (!rsa && o->source == KEY_RANDOM && !o->keyfile_out && !o->print_key)
		log_warn("a fresh oct-HSM key was imported and kept nowhere else (no --keyfile-out or "
			 "--print-key): only a release can give it back, so no image can be made for it yet");
	sb_puts(&result, "}\n");
	if (result.failed || write_all(STDOUT_FILENO, result.data, result.len) != 0) {
		err_set(e, EXIT_DEVICE, "writing the result: cannot write to standard output (the key was "
			"imported as %s)", kid);
		goto out;
	}
	log_info("imported %s, key check value %s (first 8 hex digits of SHA-256 of the filesystem key)",
		 kid, kcv);
	rc = 0;
out:
	if (keyfile_fd >= 0 && close(keyfile_fd) != 0 && rc == 0)
		rc = err_set(e, EXIT_DEVICE, "writing %s: %s", o->keyfile_out, strerror(errno));
	if (rc != 0 && keyfile_fd >= 0)
		(void)unlink(o->keyfile_out);
	/* a fresh RSA key that never reached the vault is worth nothing: do not leave it behind */
	if (rc != 0 && made_pem && (!got_response || rs.status != 200))
		(void)unlink(o->rsa_pem_out);
	if (got_response)
		http_response_free(&rs);
	wipe(fs_key, sizeof fs_key);
	wipe(salt, sizeof salt);
	secbuf_free(&oct);
	secbuf_free(&bearer);
	sb_free(&body);
	sb_free(&result);
	EVP_PKEY_free(pkey);
	import_config_free(&c);
	return rc;
}
