/* The MAA attest call. */
#include "maa.h"

#include "keyref.h"

#include "encode.h"
#include "http.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAA_MAX_RESPONSE (256u << 10) /* a token is a few KiB */

int maa_base_url(const char *endpoint, char *out, size_t size, struct err *e)
{
	char why[200];
	if (endpoint_check(endpoint, why, sizeof why) != 0)
		return err_set(e, EXIT_USAGE, "--maa %s: %s", endpoint, why);
	const char *host = endpoint;
	if (strncasecmp(host, "https://", 8) == 0)
		host += 8;
	size_t n = strcspn(host, "/");
	snprintf(out, size, "https://%.*s", (int)n, host);
	return 0;
}

/* Appends base64url (padded) of data; marks sb failed when out of memory. */
static void put_b64url(struct strbuf *sb, const void *data, size_t len)
{
	char *s = b64_encode(data, len, B64_URL, 1);
	if (!s) {
		sb->failed = 1;
		return;
	}
	sb_puts(sb, s);
	free(s);
}

void maa_request_body(const uint8_t report[SNP_REPORT_SIZE], const char *chain_pem,
		      const uint8_t *reference_info, size_t reference_info_len, const uint8_t *runtime,
		      size_t runtime_len, uint64_t nonce, struct strbuf *sb)
{
	struct strbuf inner = {0}, endorsements = {0};
	if (reference_info && reference_info_len) {
		sb_puts(&endorsements, "{\"Uvm\":[\"");
		put_b64url(&endorsements, reference_info, reference_info_len);
		sb_puts(&endorsements, "\"]}");
	}
	sb_puts(&inner, "{\"SnpReport\":\"");
	put_b64url(&inner, report, SNP_REPORT_SIZE);
	sb_puts(&inner, "\",\"VcekCertChain\":\"");
	put_b64url(&inner, chain_pem, strlen(chain_pem));
	sb_puts(&inner, "\"");
	if (endorsements.len) {
		sb_puts(&inner, ",\"Endorsements\":\"");
		put_b64url(&inner, endorsements.data, endorsements.len);
		sb_puts(&inner, "\"");
	}
	sb_puts(&inner, "}");
	if (inner.failed || endorsements.failed) {
		sb->failed = 1;
	} else {
		sb_puts(sb, "{\"report\":\"");
		put_b64url(sb, inner.data, inner.len);
		sb_puts(sb, "\",\"runtimeData\":{\"data\":\"");
		put_b64url(sb, runtime, runtime_len);
		sb_printf(sb, "\",\"dataType\":\"JSON\"},\"nonce\":%llu}", (unsigned long long)nonce);
	}
	sb_free(&inner);
	sb_free(&endorsements);
}

/* Keeps a service's text on one printable line. */
static void one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

/* "HTTP 400 InvalidParameter: message" from MAA's error JSON, or the start of the body. */
static void describe_error(const struct http_response *rs, char *out, size_t size)
{
	struct json j;
	struct err ignored;
	const char *body = rs->body.data ? (const char *)rs->body.data : "";
	if (json_parse(&j, body, rs->body.len, 64, &ignored) == 0) {
		char code[128] = "", msg[512] = "";
		int c = json_get(&j, 0, "error.code"), m = json_get(&j, 0, "error.message");
		int have_code = json_string_buf(&j, c, code, sizeof code) == 0;
		int have_msg = json_string_buf(&j, m, msg, sizeof msg) == 0;
		int have = have_code || have_msg;
		json_free(&j);
		if (have) {
			snprintf(out, size, "HTTP %ld %s: %s", rs->status, code, msg);
			one_line(out);
			return;
		}
	}
	size_t n = rs->body.len > 200 ? 200 : rs->body.len;
	for (size_t i = 0; i < n; i++) /* keep the message one line */
		if (body[i] == '\n' || body[i] == '\r') {
			n = i;
			break;
		}
	snprintf(out, size, "HTTP %ld%s%.*s", rs->status, n ? ": " : "", (int)n, body);
	one_line(out);
}

static int is_b64url_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* A JWS compact serialisation: three non-empty base64url parts (the third may be empty only for
 * alg none, which MAA never issues). */
static int looks_like_jwt(const char *t, size_t n)
{
	int dots = 0;
	size_t part = 0;
	for (size_t i = 0; i < n; i++) {
		if (t[i] == '.') {
			if (part == 0)
				return 0;
			dots++;
			part = 0;
		} else if (is_b64url_char(t[i])) {
			part++;
		} else {
			return 0;
		}
	}
	return dots == 2 && part > 0;
}

int maa_attest(const char *base_url, const char *body, size_t body_len, struct secbuf *token, struct err *e)
{
	char url[512];
	snprintf(url, sizeof url, "%s/attest/SevSnpVM?api-version=%s", base_url, MAA_API_VERSION);
	static const char *const headers[] = {"Content-Type: application/json", "Accept: application/json",
					      NULL};
	struct http_request rq = {.what = "MAA attest", .method = "POST", .url = url, .headers = headers,
				  .body = body, .body_len = body_len, .max_response = MAA_MAX_RESPONSE,
				  .secret_response = 1};
	struct http_response rs;
	if (http_do(&rq, &rs, e) != 0)
		return -1;
	int rc = -1;
	if (rs.status != 200) {
		char why[700];
		describe_error(&rs, why, sizeof why);
		/* 429 and 5xx arrive here only once the common retries are spent */
		int transient = rs.status == 429 || rs.status >= 500;
		int code = rs.status == 401 || rs.status == 403 ? EXIT_DENIED
			   : rs.status == 404		       ? EXIT_CONFIG
			   : transient			       ? EXIT_NETWORK
							       : EXIT_ATTEST;
		err_set(e, code, "MAA attest at %s: %s (%s)", base_url, why,
			rs.status == 400       ? "MAA rejected the evidence: check the report source and the security context"
			: code == EXIT_DENIED  ? "check the attestation provider's authorisation"
			: code == EXIT_CONFIG  ? "check --maa: is it an attestation provider?"
			: code == EXIT_NETWORK ? "the service kept failing; retry later"
					       : "MAA rejected the request");
		goto out;
	}
	struct json j;
	if (json_parse(&j, (const char *)rs.body.data, rs.body.len, 64, e) != 0) {
		err_wrap(e, "MAA attest: response");
		goto out;
	}
	int t = json_member(&j, 0, "token");
	size_t n = 0;
	const char *raw = json_raw(&j, t, &n);
	if (json_type(&j, t) != JSON_STRING || !looks_like_jwt(raw, n)) {
		err_set(e, EXIT_ATTEST, "MAA attest: the response has no token (a JWT in \"token\")");
	} else if (secbuf_alloc(token, n + 1) != 0) {
		err_set(e, EXIT_INTERNAL, "MAA attest: out of memory");
	} else {
		memcpy(token->data, raw, n);
		token->data[n] = '\0';
		token->len = n;
		rc = 0;
	}
	json_free(&j);
out:
	http_response_free(&rs);
	return rc;
}
