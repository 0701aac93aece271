/* EncfsSideCarArgs: the upstream sidecar's configuration, validated field by field before any
 * network call, so that a mistake is reported with its path instead of failing half way. */
#include "config.h"

#include "bloburl.h"
#include "encode.h"
#include "keyref.h"
#include "secmem.h"
#include "verity.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- field checks ------------------------------------------------------------------------- */

struct check {
	struct json *j;
	unsigned flags;
	struct err *e;
};

static int field_err(struct check *c, int tok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int field_err(struct check *c, int tok, const char *fmt, ...)
{
	char path[256], why[512];
	json_path(c->j, tok, path, sizeof path);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	return err_set(c->e, EXIT_CONFIG, "config: %s: %s", path, why);
}

/* Error for a member that is required but absent from object obj. */
static int missing(struct check *c, int obj, const char *name, const char *hint)
{
	char path[256];
	json_path(c->j, obj, path, sizeof path);
	return err_set(c->e, EXIT_CONFIG, "config: %s%s%s: missing (%s)", obj ? path : "",
		       obj ? "." : "", name, hint);
}

static int want_type(struct check *c, int tok, enum json_type t)
{
	if (json_type(c->j, tok) == t)
		return 0;
	return field_err(c, tok, "is %s, expected %s", json_type_name(json_type(c->j, tok)),
			 json_type_name(t));
}

/* "<...>" is how the upstream examples mark a value to fill in. */
static int placeholder(struct check *c, int tok)
{
	size_t n;
	const char *s = json_raw(c->j, tok, &n);
	if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
		return field_err(c, tok, "\"%.*s\" is a placeholder from the example (fill in the real value)",
				 (int)(n > 80 ? 80 : n), s);
	return 0;
}

/* In template mode a placeholder string stands for a value still to fill in: warn, check no more. */
static int skip_placeholder(struct check *c, int tok)
{
	size_t n;
	const char *s = json_raw(c->j, tok, &n);
	if (!(c->flags & CONFIG_TEMPLATE) || json_type(c->j, tok) != JSON_STRING || n < 2 ||
	    s[0] != '<' || s[n - 1] != '>')
		return 0;
	char path[256];
	json_path(c->j, tok, path, sizeof path);
	log_warn("config: %s: \"%.*s\" is a placeholder still to fill in", path, (int)(n > 80 ? 80 : n), s);
	return 1;
}

/* A non-empty string without control characters; returns its decoded value (malloc) or NULL. */
static char *want_string(struct check *c, int tok)
{
	if (want_type(c, tok, JSON_STRING) != 0)
		return NULL;
	char *s = json_string(c->j, tok);
	if (!s) {
		err_set(c->e, EXIT_INTERNAL, "config: out of memory");
		return NULL;
	}
	const char *why = NULL;
	if (!*s)
		why = "is empty";
	for (const unsigned char *p = (const unsigned char *)s; !why && *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			why = "contains a control character";
	if (!why && placeholder(c, tok) != 0) {
		free(s);
		return NULL;
	}
	if (why) {
		field_err(c, tok, "%s", why);
		free(s);
		return NULL;
	}
	return s;
}

static int check_string(struct check *c, int tok)
{
	if (skip_placeholder(c, tok))
		return 0;
	char *s = want_string(c, tok);
	free(s);
	return s ? 0 : -1;
}

static int check_bool(struct check *c, int tok) { return want_type(c, tok, JSON_BOOL); }

/* Edit distance between a and b (at most 64 bytes each; longer ones are "far"). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[65];
	if (la > 64 || lb > 64)
		return 1000;
	for (size_t k = 0; k <= lb; k++)
		row[k] = k;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t k = 1; k <= lb; k++) {
			size_t up = row[k], best = diag + (a[i - 1] != b[k - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[k - 1] + 1 < best)
				best = row[k - 1] + 1;
			diag = up;
			row[k] = best;
		}
	}
	return row[lb];
}

/* The object's members must be among known; others are warned about (the upstream format may grow
 * fields we do not use, and refusing them would break configs that work upstream), once, by check
 * only (not by every get), naming the known field it is nearest to when it looks misspelt. */
static int check_members(struct check *c, int obj, const char *const *known)
{
	int key, val;
	for (int i = 0; json_member_at(c->j, obj, i, &key, &val) == 0; i++) {
		int found = 0;
		for (const char *const *k = known; *k && !found; k++)
			found = json_string_eq(c->j, key, *k);
		if (found || (c->flags & CONFIG_QUIET))
			continue;
		char path[256], name[128] = "";
		json_path(c->j, val, path, sizeof path);
		(void)json_string_buf(c->j, key, name, sizeof name);
		const char *nearest = NULL;
		size_t best = 1000;
		for (const char *const *k = known; *k; k++) {
			size_t d = edit_distance(name, *k);
			if (d < best) {
				best = d;
				nearest = *k;
			}
		}
		/* close enough to be a typo: a third of the name's length, at least 2 edits */
		size_t limit = strlen(name) / 3 > 2 ? strlen(name) / 3 : 2;
		if (nearest && best <= limit)
			log_warn("config: %s: unknown field, ignored (did you mean %s?)", path, nearest);
		else
			log_warn("config: %s: unknown field, ignored (check its spelling)", path);
	}
	return 0;
}

/* An object, its members among known (others warned about). */
static int want_object(struct check *c, int tok, const char *const *known)
{
	if (want_type(c, tok, JSON_OBJECT) != 0)
		return -1;
	return check_members(c, tok, known);
}

/* The blob URL: the same rule encfs-fetch applies (common/bloburl). */
static int check_blob_url(struct check *c, int tok)
{
	if (skip_placeholder(c, tok))
		return 0;
	char *s = want_string(c, tok);
	if (!s)
		return -1;
	char why[256];
	int rc = 0;
	if (blob_url_check(s, (c->flags & CONFIG_ALLOW_HTTP) != 0, why, sizeof why) != 0) {
		char shown[512];
		size_t n = strcspn(s, "?"); /* a SAS query is a credential: never in a message */
		snprintf(shown, sizeof shown, "%.*s%s", (int)(n > 300 ? 300 : n), s, s[n] ? "?<query hidden>" : "");
		rc = field_err(c, tok, "\"%s\" %s", shown, why);
	}
	wipe(s, strlen(s));
	free(s);
	return rc;
}

/* A service endpoint (the vault, the attestation provider): the grammar encfs-skr and
 * encfs-attest read (common/keyref), so check refuses what they would. */
static int check_endpoint(struct check *c, int tok)
{
	if (skip_placeholder(c, tok))
		return 0;
	char *s = want_string(c, tok);
	if (!s)
		return -1;
	char why[256];
	int rc = 0;
	if (endpoint_check(s, why, sizeof why) != 0)
		rc = field_err(c, tok, "\"%.200s\" %s", s, why);
	free(s);
	return rc;
}

/* The certificate cache endpoint, as encfs-attest --certcache reads it: "host[/path]" or
 * "https://host[/path]". */
static int check_cache_endpoint(struct check *c, int tok)
{
	if (skip_placeholder(c, tok))
		return 0;
	char *s = want_string(c, tok);
	if (!s)
		return -1;
	const char *p = strncmp(s, "https://", 8) == 0 ? s + 8 : s;
	int rc = 0;
	if (strstr(p, "://"))
		rc = field_err(c, tok, "\"%.200s\" is not https (give https://host[/path] or host[/path])", s);
	else if (!*p || *p == '/' || strlen(s) >= 500 ||
		 strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:/~%") != strlen(p))
		rc = field_err(c, tok, "\"%.200s\" is not a host[/path] (letters, digits and .-_:/~%% "
			       "only)", s);
	free(s);
	return rc;
}

/* A string of at most max bytes of letters, digits and the characters of punct. */
static int check_word(struct check *c, int tok, size_t max, const char *punct)
{
	if (skip_placeholder(c, tok))
		return 0;
	char *s = want_string(c, tok);
	if (!s)
		return -1;
	int rc = 0;
	size_t n = strlen(s), ok = 0;
	for (const char *p = s; *p; p++)
		ok += ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || (*p >= '0' && *p <= '9') || strchr(punct, *p);
	if (n > max || ok != n)
		rc = field_err(c, tok, "\"%.100s\" is not at most %zu letters, digits and \"%s\"", s, max, punct);
	free(s);
	return rc;
}

static int check_hex(struct check *c, int tok, const char *what)
{
	if (skip_placeholder(c, tok))
		return 0;
	if (want_type(c, tok, JSON_STRING) != 0 || placeholder(c, tok) != 0)
		return -1;
	size_t n;
	const char *s = json_raw(c->j, tok, &n);
	if (n == 0 || n % 2 != 0)
		return field_err(c, tok, "%s must be an even number of hex digits", what);
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'f')))
			return field_err(c, tok, "%s is not hex (character %zu is '%c')", what, i + 1,
					 s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?');
	return 0;
}

/* --- sections ----------------------------------------------------------------------------- */

static int check_azure_info(struct check *c, int info)
{
	static const char *const known[] = {"identity", "certcache", NULL};
	static const char *const known_identity[] = {"client_id", NULL};
	static const char *const known_cache[] = {"endpoint_type", "endpoint", "tee_type", "api_version", NULL};
	if (want_object(c, info, known) != 0)
		return -1;
	int id = json_member(c->j, info, "identity");
	if (id >= 0) {
		if (want_object(c, id, known_identity) != 0)
			return -1;
		int cid = json_member(c->j, id, "client_id");
		if (cid >= 0 && check_string(c, cid) != 0)
			return -1;
	}
	int cache = json_member(c->j, info, "certcache");
	if (cache >= 0) {
		if (want_object(c, cache, known_cache) != 0)
			return -1;
		int type = json_member(c->j, cache, "endpoint_type");
		if (type >= 0 && !json_string_eq(c->j, type, "AMD") && !json_string_eq(c->j, type, "AzCache") &&
		    !json_string_eq(c->j, type, "LocalTHIM"))
			return json_type(c->j, type) != JSON_STRING
				       ? want_type(c, type, JSON_STRING)
				       : field_err(c, type, "unknown endpoint type (expected AMD, AzCache or LocalTHIM)");
		/* encfs-attest --certcache needs both: the type picks the protocol, the endpoint the host */
		if (type < 0)
			return missing(c, cache, "endpoint_type", "AzCache, LocalTHIM or AMD; leave certcache "
				       "out to use IMDS THIM");
		int ep = json_member(c->j, cache, "endpoint");
		if (ep < 0)
			return missing(c, cache, "endpoint", "the certificate cache's host[/path]");
		if (check_cache_endpoint(c, ep) != 0)
			return -1;
		int tee = json_member(c->j, cache, "tee_type");
		if (tee >= 0 && check_word(c, tee, 63, "-_") != 0)
			return -1;
		int api = json_member(c->j, cache, "api_version");
		if (api >= 0 && check_word(c, api, 100, "=&.-_") != 0)
			return -1;
	}
	return 0;
}

/* At most max bytes of hex (encfs-unwrap --salt takes up to 256). */
static int check_hex_max(struct check *c, int tok, const char *what, size_t max)
{
	size_t n;
	(void)json_raw(c->j, tok, &n);
	if (json_type(c->j, tok) == JSON_STRING && n / 2 > max)
		return field_err(c, tok, "%s is %zu bytes; at most %zu are allowed", what, n / 2, max);
	return 0;
}

/* key.kid: the key name grammar encfs-skr and encfs-unwrap read (common/keyref). */
static int check_key_ref(struct check *c, int tok)
{
	if (skip_placeholder(c, tok))
		return 0;
	char *s = want_string(c, tok);
	if (!s)
		return -1;
	struct key_ref r;
	int rc = 0;
	if (key_ref_parse(s, &r) != 0)
		rc = field_err(c, tok, "\"%.200s\" is not a key name (1-127 letters, digits and dashes, "
			       "optionally /VERSION) or a key identifier https://HOST/keys/NAME[/VERSION]", s);
	free(s);
	return rc;
}

/* A kid given as a key identifier URL names its vault: it must be key.akv.endpoint's. */
static int check_kid_in_vault(struct check *c, int kid, int vep)
{
	char ref[600], ep[600], host[256];
	struct key_ref r;
	if (json_string_buf(c->j, kid, ref, sizeof ref) != 0 || json_string_buf(c->j, vep, ep, sizeof ep) != 0 ||
	    key_ref_parse(ref, &r) != 0 || !r.host[0] || endpoint_host(ep, host, sizeof host) != 0)
		return 0; /* a placeholder in template mode, or not a URL */
	if (strcmp(r.host, host) != 0)
		return field_err(c, kid, "\"%.200s\" is a key of %s, not of the vault key.akv.endpoint %s", ref,
				 r.host, host);
	return 0;
}

static int check_api_version(struct check *c, int tok)
{
	if (skip_placeholder(c, tok))
		return 0;
	char *s = want_string(c, tok);
	if (!s)
		return -1;
	int rc = api_version_value(s) ? 0 : field_err(c, tok, "\"%.100s\" is not an API version such as "
						       "7.4 or api-version=7.4", s);
	free(s);
	return rc;
}

/* A bearer token goes into an HTTP header: visible ASCII without spaces ("Bearer " in front is
 * taken off), as encfs-skr reads it. */
static int check_bearer(struct check *c, int tok)
{
	if (skip_placeholder(c, tok))
		return 0;
	char *s = want_string(c, tok);
	if (!s)
		return -1;
	size_t n = strlen(s), start = 0;
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	while (start < n && (s[start] == ' ' || s[start] == '\t'))
		start++;
	if (n - start > 7 && strncasecmp(s + start, "Bearer ", 7) == 0)
		start += 7;
	int rc = 0;
	for (size_t i = start; i < n && rc == 0; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			rc = field_err(c, tok, "is not a token (it has spaces or characters other than "
				       "visible ASCII)");
	if (rc == 0 && start == n)
		rc = field_err(c, tok, "is empty");
	wipe(s, strlen(s));
	free(s);
	return rc;
}

static const char *const known_kty[] = {"oct", "oct-HSM", "RSA", "RSA-HSM", NULL};

static int check_key(struct check *c, int key)
{
	static const char *const known[] = {"kid", "kty", "key_ops", "authority", "akv", NULL};
	static const char *const known_authority[] = {"endpoint", NULL};
	static const char *const known_akv[] = {"endpoint", "api_version", "bearer_token", NULL};
	if (want_object(c, key, known) != 0)
		return -1;
	int kid = json_member(c->j, key, "kid");
	if (kid < 0)
		return missing(c, key, "kid", "the key's name in the vault, or set raw_key in a test");
	if (check_key_ref(c, kid) != 0)
		return -1;
	int kty = json_member(c->j, key, "kty");
	if (kty >= 0 && !skip_placeholder(c, kty)) {
		if (want_type(c, kty, JSON_STRING) != 0 || placeholder(c, kty) != 0)
			return -1;
		int ok = 0;
		for (const char *const *k = known_kty; *k && !ok; k++)
			ok = json_string_eq(c->j, kty, *k);
		if (!ok)
			return field_err(c, kty, "unknown key type (expected oct-HSM or RSA-HSM, or oct / RSA)");
	}
	int ops = json_member(c->j, key, "key_ops");
	if (ops >= 0) {
		if (want_type(c, ops, JSON_ARRAY) != 0)
			return -1;
		for (int i = 0; i < json_size(c->j, ops); i++)
			if (check_string(c, json_element(c->j, ops, i)) != 0)
				return -1;
	}
	int auth = json_member(c->j, key, "authority");
	if (auth < 0)
		return missing(c, key, "authority", "the attestation service that vouches for this VM");
	if (want_object(c, auth, known_authority) != 0)
		return -1;
	int aep = json_member(c->j, auth, "endpoint");
	if (aep < 0)
		return missing(c, auth, "endpoint", "e.g. sharedeus2.eus2.attest.azure.net");
	if (check_endpoint(c, aep) != 0)
		return -1;
	int akv = json_member(c->j, key, "akv");
	if (akv < 0)
		return missing(c, key, "akv", "the Key Vault or Managed HSM holding the key");
	if (want_object(c, akv, known_akv) != 0)
		return -1;
	int vep = json_member(c->j, akv, "endpoint");
	if (vep < 0)
		return missing(c, akv, "endpoint", "e.g. myvault.vault.azure.net or myhsm.managedhsm.azure.net");
	if (check_endpoint(c, vep) != 0 || check_kid_in_vault(c, kid, vep) != 0)
		return -1;
	int api = json_member(c->j, akv, "api_version");
	if (api >= 0 && check_api_version(c, api) != 0)
		return -1;
	int bearer = json_member(c->j, akv, "bearer_token");
	if (bearer >= 0 && check_bearer(c, bearer) != 0)
		return -1;
	return 0;
}

/* Normalised mount point for duplicate detection: trailing slashes dropped. */
static void normal_mount(const char *s, char *out, size_t size)
{
	size_t n = strlen(s);
	while (n > 1 && s[n - 1] == '/')
		n--;
	snprintf(out, size, "%.*s", (int)n, s);
}

static int check_mount_point(struct check *c, int tok)
{
	if (skip_placeholder(c, tok))
		return 0;
	char *s = want_string(c, tok);
	if (!s)
		return -1;
	int rc = 0;
	if (s[0] != '/')
		rc = field_err(c, tok, "\"%s\" is not an absolute path (mount points start with /)", s);
	else if (strspn(s, "/") == strlen(s))
		rc = field_err(c, tok, "\"%s\" is the root directory (name a directory below it)", s);
	else if (strstr(s, "/../") || strstr(s, "/./") ||
		 (strlen(s) >= 3 && strcmp(s + strlen(s) - 3, "/..") == 0) ||
		 (strlen(s) >= 2 && strcmp(s + strlen(s) - 2, "/.") == 0))
		rc = field_err(c, tok, "\"%s\" has . or .. components (give the plain absolute path)", s);
	else if (strlen(s) > 3000)
		rc = field_err(c, tok, "is longer than 3000 bytes");
	free(s);
	return rc;
}

/* verity: what pins the image (encfs-mkimage --verity printed it): root_hash, salt, data_blocks,
 * hash_offset, all four; the kernel's dm-verity table is made of them alone. */
static int check_verity(struct check *c, int v)
{
	static const char *const known[] = {"root_hash", "salt", "data_blocks", "hash_offset", NULL};
	if (want_object(c, v, known) != 0)
		return -1;
	int root = json_member(c->j, v, "root_hash"), salt = json_member(c->j, v, "salt");
	int blocks = json_member(c->j, v, "data_blocks"), hoff = json_member(c->j, v, "hash_offset");
	if (root < 0)
		return missing(c, v, "root_hash", "the root hash encfs-mkimage --verity printed");
	if (salt < 0)
		return missing(c, v, "salt", "the salt encfs-mkimage --verity printed");
	if (blocks < 0)
		return missing(c, v, "data_blocks", "the data blocks encfs-mkimage --verity printed");
	if (hoff < 0)
		return missing(c, v, "hash_offset", "the hash offset encfs-mkimage --verity printed");
	size_t n;
	if (!skip_placeholder(c, root)) {
		if (check_hex(c, root, "root_hash") != 0)
			return -1;
		(void)json_raw(c->j, root, &n);
		if (n != 2 * VERITY_DIGEST)
			return field_err(c, root, "is %zu hex digits, not 64 (a sha256 root hash)", n);
	}
	if (!skip_placeholder(c, salt) &&
	    (check_hex(c, salt, "salt") != 0 || check_hex_max(c, salt, "salt", VERITY_SALT_MAX) != 0))
		return -1;
	uint64_t x;
	struct verity_geom g;
	struct err e;
	if (!skip_placeholder(c, blocks) && (json_uint64(c->j, blocks, &x) != 0 || verity_geometry(x, &g, &e) != 0))
		return json_type(c->j, blocks) != JSON_NUMBER ? want_type(c, blocks, JSON_NUMBER)
							       : field_err(c, blocks, "is not a whole number from 2 to 2^40");
	if (!skip_placeholder(c, hoff) && (json_uint64(c->j, hoff, &x) != 0 || x == 0 || x % VERITY_BLOCK))
		return json_type(c->j, hoff) != JSON_NUMBER
			       ? want_type(c, hoff, JSON_NUMBER)
			       : field_err(c, hoff, "is not a positive whole number of bytes, a multiple of 4096");
	return 0;
}

static int check_filesystem(struct check *c, int fs)
{
	static const char *const known[] = {"mount_point", "azure_url", "azure_url_private", "read_write",
					    "download", "key", "key_derivation", "raw_key", "verity", NULL};
	static const char *const known_kd[] = {"salt", "label", NULL};
	if (want_object(c, fs, known) != 0)
		return -1;

	int mp = json_member(c->j, fs, "mount_point");
	if (mp < 0)
		return missing(c, fs, "mount_point", "the absolute path where the filesystem appears");
	if (check_mount_point(c, mp) != 0)
		return -1;
	int url = json_member(c->j, fs, "azure_url");
	if (url < 0)
		return missing(c, fs, "azure_url", "the page blob holding the encrypted image");
	if (check_blob_url(c, url) != 0)
		return -1;
	int priv = json_member(c->j, fs, "azure_url_private");
	if (priv >= 0 && check_bool(c, priv) != 0)
		return -1;
	int rw = json_member(c->j, fs, "read_write");
	if (rw >= 0 && check_bool(c, rw) != 0)
		return -1;
	int verity = json_member(c->j, fs, "verity");
	if (verity >= 0) {
		bool w = false;
		if (rw >= 0 && json_bool(c->j, rw, &w) == 0 && w)
			return field_err(c, verity, "pins a read-only image: it cannot go with read_write true "
					 "(set read_write false, or remove verity)");
		if (check_verity(c, verity) != 0)
			return -1;
	}
	int download = json_member(c->j, fs, "download");
	if (download >= 0 && check_bool(c, download) != 0)
		return -1;
	/* a downloaded image is a copy in memory: what is written to it would be lost at the stop */
	bool rw_on = false, download_on = false;
	if (rw >= 0 && download >= 0 && json_bool(c->j, rw, &rw_on) == 0 && json_bool(c->j, download, &download_on) == 0 &&
	    rw_on && download_on)
		return field_err(c, download, "a downloaded image is a copy: writes to it would be lost (remove "
				 "\"download\" to mount the blob read-write, or set \"read_write\": false)");

	int raw = json_member(c->j, fs, "raw_key");
	int key = json_member(c->j, fs, "key");
	if (raw >= 0) {
		if (!(c->flags & CONFIG_ALLOW_RAW_KEY))
			return field_err(c, raw, "raw_key is a test-only field and raw keys are not enabled "
					 "(remove it and use key release, or enable raw keys for a test)");
		if (check_hex(c, raw, "raw_key") != 0)
			return -1;
	}
	int has_kid = key >= 0 && json_member(c->j, key, "kid") >= 0;
	if (key >= 0 && (has_kid || raw < 0)) {
		if (check_key(c, key) != 0)
			return -1;
	} else if (key < 0 && raw < 0) {
		return missing(c, fs, "key", "the key to release from Key Vault or Managed HSM");
	} else if (key >= 0 && want_type(c, key, JSON_OBJECT) != 0) {
		return -1;
	}

	int kd = json_member(c->j, fs, "key_derivation");
	if (kd >= 0) {
		if (want_object(c, kd, known_kd) != 0)
			return -1;
		int salt = json_member(c->j, kd, "salt");
		if (salt >= 0 && (check_hex(c, salt, "salt") != 0 || check_hex_max(c, salt, "salt", 256) != 0))
			return -1;
		int label = json_member(c->j, kd, "label");
		if (label >= 0 && check_string(c, label) != 0)
			return -1;
	}
	return 0;
}

static int check_config(struct check *c)
{
	static const char *const known[] = {"azure_info", "azure_filesystems", NULL};
	if (want_object(c, 0, known) != 0)
		return -1;
	int info = json_member(c->j, 0, "azure_info");
	if (info >= 0 && check_azure_info(c, info) != 0)
		return -1;
	int list = json_member(c->j, 0, "azure_filesystems");
	if (list < 0)
		return missing(c, 0, "azure_filesystems", "the list of filesystems to mount");
	if (want_type(c, list, JSON_ARRAY) != 0)
		return -1;
	int n = json_size(c->j, list);
	if (n == 0)
		return field_err(c, list, "is empty (list at least one filesystem)");
	if (n > 64)
		return field_err(c, list, "has %d entries; at most 64 are supported", n);
	for (int i = 0; i < n; i++)
		if (check_filesystem(c, json_element(c->j, list, i)) != 0)
			return -1;
	/* every mount point is a valid absolute path of at most 3000 bytes by now */
	for (int i = 0; i < n; i++) {
		char mine[3008], other[3008];
		int mp = json_member(c->j, json_element(c->j, list, i), "mount_point");
		if (json_string_buf(c->j, mp, other, sizeof other) != 0)
			return err_set(c->e, EXIT_INTERNAL, "config: mount point too long");
		normal_mount(other, mine, sizeof mine);
		for (int k = 0; k < i; k++) {
			int kmp = json_member(c->j, json_element(c->j, list, k), "mount_point");
			char theirs[3008];
			if (json_string_buf(c->j, kmp, other, sizeof other) != 0)
				return err_set(c->e, EXIT_INTERNAL, "config: mount point too long");
			normal_mount(other, theirs, sizeof theirs);
			if (strcmp(mine, theirs) == 0)
				return field_err(c, mp, "\"%s\" is also the mount point of "
						 "azure_filesystems[%d] (each filesystem needs its own)", mine, k);
		}
	}
	return 0;
}

/* --- loading ------------------------------------------------------------------------------ */

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

int config_load(struct config *c, const char *in, size_t len, unsigned flags, struct err *e)
{
	memset(c, 0, sizeof *c);
	while (len > 0 && is_space(*in)) {
		in++;
		len--;
	}
	while (len > 0 && is_space(in[len - 1]))
		len--;
	if (len == 0)
		return err_set(e, EXIT_CONFIG, "config: empty (set EncfsSideCarArgs to the base64 of the JSON configuration)");
	if (len > CONFIG_MAX_BYTES)
		return err_set(e, EXIT_CONFIG, "config: %zu bytes is more than the %u allowed", len, CONFIG_MAX_BYTES);

	if (in[0] == '{' || in[0] == '[') {
		c->text = malloc(len + 1);
		if (!c->text)
			return err_set(e, EXIT_INTERNAL, "config: out of memory");
		memcpy(c->text, in, len);
		c->text[len] = '\0';
		c->len = len;
	} else {
		/* line breaks are allowed inside, as base64(1) writes them and Go's decoder skips them */
		char *flat = malloc(len + 1);
		size_t n = 0;
		if (!flat)
			return err_set(e, EXIT_INTERNAL, "config: out of memory");
		for (size_t i = 0; i < len; i++)
			if (in[i] != '\n' && in[i] != '\r')
				flat[n++] = in[i];
		c->text = (char *)b64_decode_alloc(flat, n, B64_STD, &c->len);
		wipe(flat, n);
		free(flat);
		if (!c->text)
			return err_set(e, EXIT_CONFIG, "config: not valid base64 (EncfsSideCarArgs is the standard "
				       "base64 of the JSON configuration, or the JSON itself)");
	}
	if (json_parse(&c->json, c->text, c->len, CONFIG_MAX_TOKENS, e) != 0) {
		err_wrap(e, "config");
		config_free(c);
		return -1;
	}
	struct check chk = {&c->json, flags, e};
	if (check_config(&chk) != 0) {
		config_free(c);
		return -1;
	}
	c->filesystems = json_size(&c->json, json_member(&c->json, 0, "azure_filesystems"));
	return 0;
}

void config_free(struct config *c)
{
	json_free(&c->json);
	if (c->text) {
		wipe(c->text, c->len); /* it may hold a bearer token or a raw key */
		free(c->text);
	}
	c->text = NULL;
	c->len = 0;
}

int config_is_secret_path(const char *path)
{
	size_t n = strlen(path);
	static const char *const secret[] = {"bearer_token", "raw_key"};
	for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++) {
		size_t k = strlen(secret[i]);
		if (n >= k && strcmp(path + n - k, secret[i]) == 0)
			return 1;
	}
	return 0;
}
