/* What a text of the pipeline is, and compact JWT/JWS decoding, for messages and for looking. */
#include "jwt.h"

#include "encode.h"
#include "secmem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static int b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_';
}

static void trim(const char **text, size_t *len)
{
	while (*len > 0 && is_space(**text))
		(*text)++, (*len)--;
	while (*len > 0 && is_space((*text)[*len - 1]))
		(*len)--;
}

/* A JSON answer that carries a compact JWT: MAA's {"token": ...}, the vault's {"value": ...}.
 * The inner string is copied to *inner (malloc); *member says which. */
static int unwrap_body(const char *text, size_t len, char **inner, const char **member)
{
	struct json j;
	*inner = NULL;
	if (json_parse(&j, text, len, 64, NULL) != 0)
		return -1;
	static const char *const names[] = {"token", "value"};
	for (size_t i = 0; i < 2 && !*inner; i++) {
		int t = json_member(&j, 0, names[i]);
		if (json_type(&j, t) == JSON_STRING) {
			*inner = json_string(&j, t);
			*member = names[i];
		}
	}
	json_free(&j);
	return *inner ? 0 : -1;
}

void jwt_free(struct jwt *j)
{
	json_free(&j->h);
	json_free(&j->p);
	free(j->header);
	free(j->payload);
	memset(j, 0, sizeof *j);
}

static int decode_part(const char *s, size_t n, const char *what, char **out, size_t *out_len,
		       struct json *parsed, struct err *e)
{
	*out = (char *)b64_decode_alloc(s, n, B64_URL, out_len);
	if (!*out)
		return err_set(e, EXIT_CONFIG, "the %s is not base64url", what);
	if (json_parse(parsed, *out, *out_len, JWT_MAX_TOKENS, e) != 0)
		return err_wrap(e, "the %s", what);
	if (json_type(parsed, 0) != JSON_OBJECT)
		return err_set(e, EXIT_CONFIG, "the %s is not a JSON object", what);
	return 0;
}

int jwt_decode(const char *text, size_t len, struct jwt *j, struct err *e)
{
	memset(j, 0, sizeof *j);
	trim(&text, &len);
	if (len > JWT_MAX_TEXT)
		return err_set(e, EXIT_CONFIG, "more than 1 MiB: not a token");
	char *inner = NULL;
	const char *member = NULL;
	if (len > 0 && text[0] == '{') {
		if (unwrap_body(text, len, &inner, &member) != 0)
			return err_set(e, EXIT_CONFIG, "JSON without a \"token\" or \"value\" string: not a "
				       "token or a release response");
		text = inner;
		len = strlen(inner);
		trim(&text, &len);
	}
	const char *d1 = memchr(text, '.', len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - text)) : NULL;
	int rc = 0;
	if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - text)) || d1 == text || d2 == d1 + 1) {
		rc = err_set(e, EXIT_CONFIG, "not a compact JWT/JWS (three base64url parts separated by dots)");
	} else {
		for (const char *p = text; p < text + len && rc == 0; p++)
			if (*p != '.' && !b64url_char(*p))
				rc = err_set(e, EXIT_CONFIG, "not a compact JWT/JWS (it has characters other "
					     "than base64url and dots)");
	}
	if (rc == 0 && (decode_part(text, (size_t)(d1 - text), "header", &j->header, &j->header_len, &j->h, e) != 0 ||
			decode_part(d1 + 1, (size_t)(d2 - d1 - 1), "payload", &j->payload, &j->payload_len, &j->p,
				    e) != 0))
		rc = -1;
	if (inner) {
		wipe(inner, strlen(inner));
		free(inner);
	}
	if (rc != 0)
		jwt_free(j);
	return rc;
}

enum data_kind data_kind(const char *text, size_t len)
{
	trim(&text, &len);
	if (len == 0 || len > JWT_MAX_TEXT)
		return DATA_UNKNOWN;
	if (text[0] == '{') {
		struct json j;
		if (json_parse(&j, text, len, JWT_MAX_TOKENS, NULL) != 0)
			return DATA_UNKNOWN;
		int jwks = json_type(&j, json_member(&j, 0, "keys")) == JSON_ARRAY;
		int body = json_type(&j, json_member(&j, 0, "token")) == JSON_STRING ||
			   json_type(&j, json_member(&j, 0, "value")) == JSON_STRING;
		json_free(&j);
		if (jwks)
			return DATA_JWKS;
		if (!body)
			return DATA_UNKNOWN;
	}
	struct jwt t;
	if (jwt_decode(text, len, &t, NULL) != 0)
		return DATA_UNKNOWN;
	enum data_kind k = DATA_JWT;
	if (json_member(&t.p, 0, "response") >= 0 || json_member(&t.p, 0, "request") >= 0) {
		k = DATA_RELEASE;
	} else {
		/* the members in one walk: key, value, next key after the value's subtree */
		for (int i = 0, key = 1; i < json_size(&t.p, 0) && k == DATA_JWT; i++, key = json_skip(&t.p, key + 1)) {
			size_t n;
			const char *name = json_raw(&t.p, key, &n);
			if (n > 5 && strncmp(name, "x-ms-", 5) == 0)
				k = DATA_MAA_TOKEN;
		}
	}
	jwt_free(&t);
	return k;
}

const char *data_kind_says(enum data_kind k)
{
	switch (k) {
	case DATA_JWKS:
		return "this is a JWK set (the public wrapping key of encfs-unwrap keygen); it goes to "
		       "encfs-attest";
	case DATA_MAA_TOKEN:
		return "this is an MAA token (encfs-attest's output); it goes to encfs-skr";
	case DATA_RELEASE:
		return "this is a release response (encfs-skr's output); it goes to encfs-unwrap";
	case DATA_JWT:
		return "this is a JWT, but neither an MAA token nor a release response";
	default:
		return "this is none of the pipeline's data (JWK set, MAA token, release response)";
	}
}

static long long int_claim(const struct json *p, const char *name)
{
	int64_t v;
	return json_int64(p, json_member(p, 0, name), &v) == 0 ? (long long)v : -1;
}

void jwt_times(const struct jwt *j, long long *exp, long long *nbf, long long *iat)
{
	*exp = int_claim(&j->p, "exp");
	*nbf = int_claim(&j->p, "nbf");
	*iat = int_claim(&j->p, "iat");
}

void jwt_format_time(long long t, char *out, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (t < 0 || !gmtime_r(&tt, &tm) || strftime(out, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, size, "%lld", t);
}

void jwt_format_span(long long s, char *out, size_t size)
{
	if (s < 0)
		s = -s;
	if (s >= 86400)
		snprintf(out, size, "%lld d %lld h", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(out, size, "%lld h %lld min", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(out, size, "%lld min", s / 60);
	else
		snprintf(out, size, "%lld s", s);
}
