/* Azure AD bearer tokens: workload identity first, then the IMDS managed identity. */
#include "identity.h"

#include "http.h"
#include "io.h"
#include "json.h"
#include "strbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FEDERATED_TOKEN_MAX (64u << 10)
#define IMDS_DEADLINE_MS 60000
#define IMDS_UPDATE_DEADLINE_MS 90000

static const char *no_imds_hint = "outside Azure, give a bearer token instead, or set up workload "
				  "identity (AZURE_FEDERATED_TOKEN_FILE)";

void identity_set_no_imds_hint(const char *hint) { no_imds_hint = hint; }

const char *identity_imds_base(char *buf, size_t size)
{
	const char *env = getenv("ENCFS_IMDS_ENDPOINT");
	const char *base = env && *env ? env : "http://169.254.169.254";
	size_t n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		n--;
	snprintf(buf, size, "%.*s", (int)n, base);
	return buf;
}

static void url_escape(struct strbuf *sb, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.' || *p == '~') {
			sb_putn(sb, (const char *)p, 1);
		} else {
			char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			sb_putn(sb, enc, 3);
		}
	}
}

/* Takes "access_token" out of a token response into guarded memory. */
static int take_access_token(const char *what, const struct http_response *rs, struct secbuf *token,
			     struct err *e)
{
	struct json j;
	if (json_parse(&j, (const char *)rs->body.data, rs->body.len, 256, e) != 0)
		return err_wrap(e, "%s: token response", what);
	int t = json_member(&j, 0, "access_token");
	size_t n = 0;
	const char *raw = json_raw(&j, t, &n);
	int rc = 0;
	if (json_type(&j, t) != JSON_STRING || n == 0 || memchr(raw, '\\', n)) {
		rc = err_set(e, EXIT_DENIED, "%s: token response has no usable access_token "
			     "(check the identity service)", what);
	} else if (secbuf_alloc(token, n) != 0) {
		rc = err_set(e, EXIT_INTERNAL, "%s: out of memory", what);
	} else {
		memcpy(token->data, raw, n);
		token->len = n;
	}
	json_free(&j);
	return rc;
}

/* The service's own words for a refusal: AAD "error_description", IMDS "error_description", or
 * ARM-style {"error":{"message"}}. */
static void service_message(const struct http_response *rs, char *out, size_t size)
{
	struct json j;
	snprintf(out, size, "no details");
	if (json_parse(&j, (const char *)rs->body.data, rs->body.len, 1024, NULL) != 0)
		return;
	int t = json_member(&j, 0, "error_description");
	if (t < 0)
		t = json_get(&j, 0, "error.message");
	if (t < 0)
		t = json_member(&j, 0, "error");
	if (json_string_buf(&j, t, out, size) != 0)
		snprintf(out, size, "no details");
	json_free(&j);
}

static int workload_identity(const char *resource, const char *client_id, struct secbuf *token,
			     struct err *e)
{
	const char *file = getenv("AZURE_FEDERATED_TOKEN_FILE");
	const char *tenant = getenv("AZURE_TENANT_ID");
	const char *authority = getenv("AZURE_AUTHORITY_HOST");
	const char *what = "workload identity";
	if (!client_id || !*client_id)
		client_id = getenv("AZURE_CLIENT_ID");
	if (!tenant || !*tenant || !client_id || !*client_id)
		return err_set(e, EXIT_CONFIG, "%s: AZURE_FEDERATED_TOKEN_FILE is set but AZURE_TENANT_ID "
			       "or AZURE_CLIENT_ID is not (check the pod's service account annotations)",
			       what);
	if (!authority || !*authority)
		authority = "https://login.microsoftonline.com/";

	struct secbuf assertion = {0};
	{
		size_t len;
		char *text = read_file_capped(file, FEDERATED_TOKEN_MAX, &len);
		if (!text)
			return err_set(e, EXIT_CONFIG, "%s: reading %s: %s (check AZURE_FEDERATED_TOKEN_FILE)",
				       what, file, strerror(errno));
		while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
			len--;
		if (secbuf_alloc(&assertion, len) != 0) {
			wipe(text, len);
			free(text);
			return err_set(e, EXIT_INTERNAL, "%s: out of memory", what);
		}
		memcpy(assertion.data, text, len);
		assertion.len = len;
		wipe(text, len);
		free(text);
	}

	struct strbuf url = {0}, body = {0};
	sb_puts(&url, authority);
	if (url.len && url.data[url.len - 1] != '/')
		sb_puts(&url, "/");
	url_escape(&url, tenant);
	sb_puts(&url, "/oauth2/v2.0/token");
	sb_puts(&body, "grant_type=client_credentials&client_id=");
	url_escape(&body, client_id);
	sb_puts(&body, "&scope=");
	char scope[512];
	snprintf(scope, sizeof scope, "%s/.default", resource);
	url_escape(&body, scope);
	sb_puts(&body, "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
		       "&client_assertion=");
	url_escape(&body, (const char *)assertion.data);
	secbuf_free(&assertion);

	int rc = -1;
	if (url.failed || body.failed) {
		rc = err_set(e, EXIT_INTERNAL, "%s: out of memory", what);
		goto out;
	}
	const char *headers[] = {"Content-Type: application/x-www-form-urlencoded",
				 "Accept: application/json", NULL};
	struct http_request rq = {.what = what, .method = "POST", .url = url.data, .headers = headers,
				  .body = body.data, .body_len = body.len, .secret_response = 1};
	struct http_response rs;
	if (http_do(&rq, &rs, e) != 0)
		goto out;
	if (rs.status == 200) {
		rc = take_access_token(what, &rs, token, e);
	} else {
		char msg[512];
		service_message(&rs, msg, sizeof msg);
		rc = err_set(e, rs.status == 400 || rs.status == 401 || rs.status == 403 ? EXIT_DENIED
											 : EXIT_NETWORK,
			     "%s: token service answered HTTP %ld: %s (check AZURE_CLIENT_ID, AZURE_TENANT_ID "
			     "and the federated credential of the identity)", what, rs.status, msg);
	}
	http_response_free(&rs);
out:
	sb_free(&url);
	sb_free(&body);
	return rc;
}

static int managed_identity(const char *resource, const char *client_id, struct secbuf *token,
			    struct err *e)
{
	const char *what = "managed identity (IMDS)";
	char base[512];
	struct strbuf url = {0};
	sb_puts(&url, identity_imds_base(base, sizeof base));
	sb_puts(&url, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=");
	url_escape(&url, resource);
	if (client_id && *client_id) {
		sb_puts(&url, "&client_id=");
		url_escape(&url, client_id);
	}
	if (url.failed) {
		sb_free(&url);
		return err_set(e, EXIT_INTERNAL, "%s: out of memory", what);
	}
	const char *headers[] = {"Metadata: true", NULL};
	/* the tool's --deadline when given, else a minute: IMDS is slow to come up in ACI */
	long deadline = http_deadline_ms() ? http_deadline_ms() : IMDS_DEADLINE_MS;
	struct http_request rq = {.what = what, .url = url.data, .headers = headers, .allow_http = 1,
				  .secret_response = 1, .timeout_ms = 20000, .deadline_ms = deadline};
	struct http_response rs;
	int rc = -1;
	/* IMDS also answers 404 while its endpoint is updating and 410 for up to 70 s while IMDS itself
	 * is (Azure's retry guidance for managed identities): wait those out too, within a deadline. */
	long long start = http_now_ms();
	for (int attempt = 1;; attempt++) {
		if (http_do(&rq, &rs, e) != 0) {
			sb_free(&url);
			/* no answer at all: most likely no IMDS here, which is every machine outside Azure */
			if (e->code == EXIT_NETWORK && strlen(e->msg) + strlen(no_imds_hint) + 40 < sizeof e->msg)
				snprintf(e->msg + strlen(e->msg), sizeof e->msg - strlen(e->msg),
					 " (no IMDS answered: %s)", no_imds_hint);
			return err_wrap(e, "getting a token (no workload identity configured)");
		}
		if (rs.status != 404 && rs.status != 410)
			break;
		long wait = http_backoff_ms(attempt, http_retry_after_ms(rs.headers));
		long update_deadline = http_deadline_ms() ? http_deadline_ms() : IMDS_UPDATE_DEADLINE_MS;
		long elapsed = (long)(http_now_ms() - start);
		if (elapsed + wait > update_deadline)
			break;
		if (attempt == 1) {
			char where[300], why[64];
			http_hostport(url.data, where, sizeof where);
			snprintf(why, sizeof why, "HTTP %ld (IMDS is updating)", rs.status);
			http_warn_retrying(what, where, why, update_deadline - elapsed);
		} else {
			log_info("%s: HTTP %ld (IMDS is updating), retrying in %ld ms", what, rs.status, wait);
		}
		http_response_free(&rs);
		struct timespec ts = {wait / 1000, (wait % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	if (rs.status == 200) {
		rc = take_access_token(what, &rs, token, e);
	} else {
		char msg[512];
		service_message(&rs, msg, sizeof msg);
		rc = err_set(e, rs.status == 400 || rs.status == 401 || rs.status == 403 || rs.status == 404
					? EXIT_DENIED : EXIT_NETWORK,
			     "%s: HTTP %ld: %s (check that the container group has the managed identity%s%s "
			     "assigned)", what, rs.status, msg, client_id && *client_id ? " " : "",
			     client_id && *client_id ? client_id : "");
	}
	http_response_free(&rs);
	sb_free(&url);
	return rc;
}

int identity_token(const char *resource, const char *client_id, struct secbuf *token, struct err *e)
{
	const char *file = getenv("AZURE_FEDERATED_TOKEN_FILE");
	if (file && *file)
		return workload_identity(resource, client_id, token, e);
	return managed_identity(resource, client_id, token, e);
}
