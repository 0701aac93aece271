/* encfs-unwrap show: a release response, decoded for reading (nothing verified, nothing
 * unwrapped: the wrapped key stays a byte count). */
#include "show.h"

#include "encode.h"
#include "io.h"
#include "json.h"
#include "jwt.h"
#include "log.h"
#include "strbuf.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "CN=..., O=... (issuer CN=..., valid 2026-11-30 to 2029-03-04)" for one x5c entry */
static void cert_summary(const struct json *j, int tok, struct strbuf *out)
{
	size_t n, der_len = 0;
	const char *b64 = json_raw(j, tok, &n);
	unsigned char *der = json_type(j, tok) == JSON_STRING ? b64_decode_alloc(b64, n, B64_STD, &der_len) : NULL;
	const unsigned char *p = der;
	X509 *x = der ? d2i_X509(NULL, &p, (long)der_len) : NULL;
	char subject[256] = "?", issuer[256] = "?", from[32] = "?", to[32] = "?";
	if (x) {
		X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
		X509_NAME_oneline(X509_get_issuer_name(x), issuer, sizeof issuer);
		struct tm tm;
		if (ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm))
			strftime(from, sizeof from, "%Y-%m-%d", &tm);
		if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
			strftime(to, sizeof to, "%Y-%m-%d", &tm);
	}
	char line[700];
	if (x)
		snprintf(line, sizeof line, "%s (issuer %s, valid %s to %s)", subject, issuer, from, to);
	else
		snprintf(line, sizeof line, "(%zu bytes that are not a DER certificate)", der_len);
	sb_json_string(out, line);
	X509_free(x);
	ERR_clear_error();
	free(der);
}

/* base64url of a JSON text at tok, pretty-printed in its place; hook for the inside */
static int decoded_json(const struct json *j, int tok, int depth, json_pretty_hook hook,
			struct strbuf *out)
{
	size_t n, len = 0;
	const char *b64 = json_raw(j, tok, &n);
	unsigned char *text = json_type(j, tok) == JSON_STRING ? b64_decode_alloc(b64, n, B64_URL, &len) : NULL;
	struct json inner;
	if (!text || json_parse(&inner, (const char *)text, len, JWT_MAX_TOKENS, NULL) != 0) {
		free(text);
		return 0; /* shown as it is */
	}
	json_pretty(&inner, 0, depth, hook, NULL, out);
	json_free(&inner);
	free(text);
	return 1;
}

/* key_hsm's inside: the ciphertext as a byte count */
static int key_hsm_hook(const struct json *j, int tok, const char *path, int depth, struct strbuf *out,
			void *arg)
{
	(void)depth, (void)arg;
	if (strcmp(path, "ciphertext") != 0)
		return 0;
	size_t n;
	const char *b64 = json_raw(j, tok, &n);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	sb_printf(out, "\"<%zu bytes: RSA-OAEP of an AES key, then the key wrapped with it>\"", n * 3 / 4);
	return 1;
}

static int release_hook(const struct json *j, int tok, const char *path, int depth, struct strbuf *out,
			void *arg)
{
	(void)arg;
	size_t n = strlen(path);
	if (strncmp(path, "x5c[", 4) == 0) {
		cert_summary(j, tok, out);
		return 1;
	}
	if (n >= 19 && strcmp(path + n - 19, "release_policy.data") == 0)
		return decoded_json(j, tok, depth, NULL, out);
	if (n >= 7 && strcmp(path + n - 7, "key_hsm") == 0)
		return decoded_json(j, tok, depth, key_hsm_hook, out);
	return 0;
}

int show_release(void)
{
	stdin_refuse_tty("reading the release response", "pipe encfs-skr's output in, or < FILE");
	size_t len;
	char *text = read_fd_capped(STDIN_FILENO, JWT_MAX_TEXT, &len);
	if (!text)
		die(EXIT_CONFIG, "reading the release response: %s",
		    errno == EFBIG ? "more than 1 MiB" : strerror(errno));
	struct err e;
	if (strspn(text, " \t\r\n") == len) {
		stdin_empty(&e, "reading the release response", "pipe encfs-skr's output in");
		die_err(&e);
	}
	enum data_kind k = data_kind(text, len);
	if (k == DATA_MAA_TOKEN)
		die(EXIT_CONFIG, "reading the release response: %s (encfs-attest show looks inside it)",
		    data_kind_says(k));
	if (k == DATA_JWKS)
		die(EXIT_CONFIG, "reading the release response: %s", data_kind_says(k));
	struct jwt t;
	if (jwt_decode(text, len, &t, &e) != 0) {
		err_wrap(&e, "reading the release response");
		die_err(&e);
	}
	free(text);
	struct strbuf out = {0};
	sb_puts(&out, "{\n  \"header\": ");
	json_pretty(&t.h, 0, 1, release_hook, NULL, &out);
	sb_puts(&out, ",\n  \"payload\": ");
	json_pretty(&t.p, 0, 1, release_hook, NULL, &out);
	sb_puts(&out, "\n}\n");
	jwt_free(&t);
	int rc = out.failed || write_all(STDOUT_FILENO, out.data, out.len) != 0;
	sb_free(&out);
	if (rc)
		die(EXIT_INTERNAL, "writing the release response: %s", strerror(errno));
	return EXIT_OK;
}
