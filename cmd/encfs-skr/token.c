/* The attestation token on standard input. */
#include "token.h"

#include "encode.h"
#include "json.h"
#include "jwt.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int b64url_char(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_';
}

int token_take(const char *text, size_t len, struct secbuf *token, struct err *e)
{
	size_t start = 0, end = len;
	while (start < end && isspace((unsigned char)text[start]))
		start++;
	while (end > start && isspace((unsigned char)text[end - 1]))
		end--;
	if (start == end)
		return err_set(e, EXIT_CONFIG, "reading the attestation token: standard input is empty "
			       "(pipe encfs-attest's output in)");
	const char *s = text + start;
	size_t n = end - start;
	struct json j = {0};
	if (*s == '{') {
		/* MAA's own answer, {"token": "<JWT>"} */
		if (json_parse(&j, s, n, 64, e) != 0)
			return err_wrap(e, "reading the attestation token");
		int t = json_member(&j, 0, "token");
		s = json_raw(&j, t, &n);
		if (json_type(&j, t) != JSON_STRING) {
			json_free(&j);
			return err_set(e, EXIT_CONFIG, "reading the attestation token: the JSON has no "
				       "\"token\" string");
		}
	}
	int dots = 0, empty = 0, run = 0, bad = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			empty |= run == 0;
			run = 0;
			dots++;
		} else if (b64url_char((unsigned char)s[i])) {
			run++;
		} else {
			bad = 1;
		}
	}
	empty |= run == 0;
	int rc = 0;
	if (bad || dots != 2 || empty) {
		rc = err_set(e, EXIT_CONFIG, "reading the attestation token: standard input is not a JWT "
			     "(three base64url parts; pipe encfs-attest's output in)");
	} else if (secbuf_alloc(token, n) != 0) {
		rc = err_set(e, EXIT_INTERNAL, "reading the attestation token: out of memory");
	} else {
		memcpy(token->data, s, n);
		token->len = n;
	}
	json_free(&j);
	return rc;
}

static const char *const names[] = {
	"iss", "x-ms-attestation-type", "x-ms-compliance-status", "x-ms-sevsnpvm-hostdata",
	"x-ms-sevsnpvm-is-debuggable", "x-ms-sevsnpvm-vmpl",
};

void token_claims_absent(const struct secbuf *token, char *out, size_t size)
{
	struct jwt t;
	out[0] = '\0';
	if (jwt_decode((const char *)token->data, token->len, &t, NULL) != 0)
		return;
	size_t used = 0;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (json_member(&t.p, 0, names[i]) >= 0)
			continue;
		int w = snprintf(out + used, size - used, "%s%s", used ? ", " : "", names[i]);
		if (w < 0 || (size_t)w >= size - used)
			break;
		used += (size_t)w;
	}
	jwt_free(&t);
}

int token_check_expiry(const struct secbuf *token, struct err *e)
{
	struct jwt t;
	if (jwt_decode((const char *)token->data, token->len, &t, NULL) != 0)
		return 0; /* not readable as JSON: the vault will say what is wrong */
	long long exp, nbf, iat;
	jwt_times(&t, &exp, &nbf, &iat);
	jwt_free(&t);
	long long now = (long long)time(NULL);
	if (exp < 0 || exp > now)
		return 0;
	char when[64], ago[64];
	jwt_format_time(exp, when, sizeof when);
	jwt_format_span(now - exp, ago, sizeof ago);
	return err_set(e, EXIT_CONFIG, "reading the attestation token: it expired at %s, %s ago (nothing "
		       "was sent: run encfs-attest again for a fresh token)", when, ago);
}

void token_claims_summary(const struct secbuf *token, char *out, size_t size)
{
	out[0] = '\0';
	const char *t = (const char *)token->data;
	const char *d1 = memchr(t, '.', token->len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', token->len - (size_t)(d1 + 1 - t)) : NULL;
	if (!d2)
		return;
	size_t plen = 0;
	unsigned char *payload = b64_decode_alloc(d1 + 1, (size_t)(d2 - d1 - 1), B64_URL, &plen);
	struct json j;
	if (!payload || json_parse(&j, (const char *)payload, plen, 4096, NULL) != 0) {
		free(payload);
		return;
	}
	size_t used = 0;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		int v = json_member(&j, 0, names[i]);
		enum json_type ty = json_type(&j, v);
		size_t vl = 0;
		const char *raw = json_raw(&j, v, &vl);
		if (v < 0 || (ty != JSON_STRING && ty != JSON_BOOL && ty != JSON_NUMBER) || vl > 200)
			continue;
		char val[256];
		if (ty == JSON_STRING) {
			if (json_string_buf(&j, v, val, sizeof val) != 0)
				continue;
		} else {
			snprintf(val, sizeof val, "%.*s", (int)vl, raw);
		}
		for (char *p = val; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = ' ';
		int w = snprintf(out + used, size - used, "%s%s=%s", used ? ", " : "", names[i], val);
		if (w < 0 || (size_t)w >= size - used) {
			out[used] = '\0';
			break;
		}
		used += (size_t)w;
	}
	json_free(&j);
	free(payload);
}
