/* Key Vault / Managed HSM plumbing shared by release and import. */
#include "vault.h"

#include "identity.h"
#include "io.h"
#include "json.h"
#include "keyref.h"
#include "strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int vault_init(struct vault *v, const char *endpoint, const char *resource, const char *api_version,
	       struct err *e)
{
	memset(v, 0, sizeof *v);
	char why[200];
	if (!endpoint || !*endpoint)
		return err_set(e, EXIT_CONFIG, "vault endpoint: empty (give the vault's host name, e.g. "
			       "myvault.vault.azure.net)");
	if (endpoint_check(endpoint, why, sizeof why) != 0)
		return err_set(e, EXIT_CONFIG, "vault endpoint %s: %s", endpoint, why);
	/* the grammar is checked: take the host and the port */
	const char *s = endpoint;
	if (strncasecmp(s, "https://", 8) == 0)
		s += 8;
	size_t n = strcspn(s, "/");
	size_t hostlen = *s == '[' ? (size_t)(strchr(s, ']') - s) + 1 : strcspn(s, ":/");
	if (hostlen == 0 || hostlen >= sizeof v->host || n >= sizeof v->base - 8)
		return err_set(e, EXIT_CONFIG, "vault endpoint %s: no usable host name", endpoint);
	snprintf(v->base, sizeof v->base, "https://%.*s", (int)n, s);
	for (size_t i = 0; i < hostlen; i++)
		v->host[i] = (char)tolower((unsigned char)s[i]);

	if (resource && *resource) {
		if (strncmp(resource, "https://", 8) != 0 || strlen(resource) >= sizeof v->resource)
			return err_set(e, EXIT_CONFIG, "--resource %s: not an https URL", resource);
		snprintf(v->resource, sizeof v->resource, "%s", resource);
	} else {
		snprintf(v->resource, sizeof v->resource, "%s",
			 strstr(v->host, "managedhsm") ? "https://managedhsm.azure.net" : "https://vault.azure.net");
	}

	const char *given = api_version && *api_version ? api_version : VAULT_DEFAULT_API_VERSION;
	const char *av = api_version_value(given);
	if (!av)
		return err_set(e, EXIT_CONFIG, "api version \"%s\": expected a version such as 7.4",
			       api_version);
	snprintf(v->api_version, sizeof v->api_version, "%s", av);
	return 0;
}

int vault_key_ref(const char *kid, const char **endpoint_io, char *endpoint_buf, size_t endpoint_size,
		  char *path, size_t path_size, struct err *e)
{
	if (!kid || !*kid)
		return err_set(e, EXIT_CONFIG, "key: no kid (give the key name, NAME or NAME/VERSION)");
	struct key_ref r;
	if (key_ref_parse(kid, &r) != 0)
		return err_set(e, EXIT_CONFIG, "key %s: a key name is 1-127 letters, digits and dashes, "
			       "optionally followed by /VERSION, or a key identifier "
			       "https://HOST/keys/NAME[/VERSION]", kid);
	if (r.endpoint[0] && *endpoint_io) {
		char want[256];
		if (endpoint_host(*endpoint_io, want, sizeof want) != 0)
			return err_set(e, EXIT_CONFIG, "vault endpoint %s: no usable host name", *endpoint_io);
		if (strcmp(want, r.host) != 0)
			return err_set(e, EXIT_CONFIG, "key %s: it is in %s, not in the vault %s", kid, r.host,
				       want);
	} else if (r.endpoint[0]) {
		if (strlen(r.endpoint) >= endpoint_size)
			return err_set(e, EXIT_CONFIG, "key %s: the host is too long", kid);
		snprintf(endpoint_buf, endpoint_size, "%s", r.endpoint);
		*endpoint_io = endpoint_buf;
	}
	if (strlen(r.name) + 1 + strlen(r.version) >= path_size)
		return err_set(e, EXIT_CONFIG, "key %s: too long", kid);
	snprintf(path, path_size, "%s%s%s", r.name, r.version[0] ? "/" : "", r.version);
	return 0;
}

/* A bearer token goes into an HTTP header: visible ASCII only, so it cannot smuggle a line break. */
static int bearer_take(struct secbuf *raw, struct secbuf *token, const char *what, struct err *e)
{
	size_t start = 0, end = raw->len;
	while (start < end && isspace(raw->data[start]))
		start++;
	while (end > start && isspace(raw->data[end - 1]))
		end--;
	if (start == end) {
		secbuf_free(raw);
		return err_set(e, EXIT_CONFIG, "access token from %s: empty", what);
	}
	if (end - start > 7 && strncasecmp((const char *)raw->data + start, "Bearer ", 7) == 0)
		start += 7;
	for (size_t i = start; i < end; i++)
		if (raw->data[i] < 0x21 || raw->data[i] > 0x7e) {
			secbuf_free(raw);
			return err_set(e, EXIT_CONFIG, "access token from %s: not a token (it has spaces or "
				       "control characters)", what);
		}
	if (secbuf_alloc(token, end - start) != 0) {
		secbuf_free(raw);
		return err_set(e, EXIT_INTERNAL, "access token: out of memory");
	}
	memcpy(token->data, raw->data + start, end - start);
	token->len = end - start;
	secbuf_free(raw);
	return 0;
}

int vault_bearer(const struct bearer_source *src, const struct vault *v, struct secbuf *token,
		 struct err *e)
{
	struct secbuf raw = {0};
	char what[300];
	if (src->file || src->fd >= 0) {
		int fd = src->fd;
		if (src->file) {
			snprintf(what, sizeof what, "%s", src->file);
			fd = open(src->file, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				return err_set(e, EXIT_CONFIG, "access token: opening %s: %s", src->file,
					       strerror(errno));
		} else {
			snprintf(what, sizeof what, "descriptor %d", fd);
		}
		int rc = secbuf_read_fd(fd, BEARER_MAX, &raw);
		int saved = errno;
		if (src->file)
			close(fd);
		if (rc != 0)
			return err_set(e, EXIT_CONFIG, "access token: reading %s: %s", what,
				       saved == EFBIG ? "more than 64 KiB" : strerror(saved));
		log_debug("access token for %s from %s", v->host, what);
		return bearer_take(&raw, token, what, e);
	}
	if (src->inline_token && *src->inline_token) {
		size_t n = strlen(src->inline_token);
		if (secbuf_alloc(&raw, n) != 0)
			return err_set(e, EXIT_INTERNAL, "access token: out of memory");
		memcpy(raw.data, src->inline_token, n);
		raw.len = n;
		log_debug("access token for %s from the configuration (akv.bearer_token)", v->host);
		return bearer_take(&raw, token, "the configuration (akv.bearer_token)", e);
	}
	log_debug("getting an access token for %s (resource %s)", v->host, v->resource);
	if (identity_token(v->resource, src->client_id, &raw, e) != 0)
		return err_wrap(e, "getting a token for %s", v->resource);
	return bearer_take(&raw, token, "the identity service", e);
}

int vault_request(const struct vault *v, const char *what, const char *method, const char *path,
		  const char *body, size_t body_len, const struct secbuf *bearer, long deadline_ms,
		  struct http_response *rs, struct err *e)
{
	char url[1024];
	int n = snprintf(url, sizeof url, "%s/keys/%s?api-version=%s", v->base, path, v->api_version);
	if (n < 0 || (size_t)n >= sizeof url)
		return err_set(e, EXIT_CONFIG, "%s: URL too long", what);
	struct secbuf auth = {0};
	if (secbuf_alloc(&auth, bearer->len + 32) != 0)
		return err_set(e, EXIT_INTERNAL, "%s: out of memory", what);
	memcpy(auth.data, "Authorization: Bearer ", 22);
	memcpy(auth.data + 22, bearer->data, bearer->len);
	auth.len = 22 + bearer->len;
	const char *headers[] = {(const char *)auth.data, "Content-Type: application/json",
				 "Accept: application/json", NULL};
	struct http_request rq = {.what = what, .method = method, .url = url, .headers = headers,
				  .body = body, .body_len = body_len, .secret_response = 1,
				  .deadline_ms = deadline_ms};
	int rc = http_do(&rq, rs, e);
	secbuf_free(&auth);
	return rc;
}

void vault_error_text(const struct http_response *rs, char *out, size_t size)
{
	snprintf(out, size, "no details");
	if (!rs->body.data || rs->body.len == 0)
		return;
	struct json j;
	if (json_parse(&j, (const char *)rs->body.data, rs->body.len, 512, NULL) != 0)
		return;
	char code[128] = "", msg[512] = "";
	int err = json_member(&j, 0, "error");
	if (json_type(&j, err) == JSON_OBJECT) {
		(void)json_string_buf(&j, json_member(&j, err, "code"), code, sizeof code);
		(void)json_string_buf(&j, json_member(&j, err, "message"), msg, sizeof msg);
	}
	json_free(&j);
	if (code[0] || msg[0])
		snprintf(out, size, "%s%s%s", code, code[0] && msg[0] ? ": " : "", msg);
	/* one line, whatever the service wrote */
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	size_t l = strlen(out);
	while (l > 0 && (out[l - 1] == ' ' || out[l - 1] == '.'))
		out[--l] = '\0';
}

int vault_status_code(long status)
{
	if (status == 400 || status == 404)
		return EXIT_CONFIG;
	if (status >= 400 && status < 500 && status != 408 && status != 429)
		return EXIT_DENIED;
	return EXIT_NETWORK;
}
