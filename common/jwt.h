/* Looking at the data the tools pass each other, without trusting it: which of the pipeline's
 * products a text is (so a tool given another tool's output can say where it goes), and the
 * decoded header and payload of a compact JWT/JWS.  Nothing here checks a signature. */
#ifndef ENCFS_JWT_H
#define ENCFS_JWT_H

#include <stddef.h>
#include <time.h>

#include "json.h"
#include "log.h"

#define JWT_MAX_TEXT (1u << 20)
#define JWT_MAX_TOKENS 16384

enum data_kind {
	DATA_UNKNOWN,   /* none of these */
	DATA_JWKS,      /* {"keys": [...]}: the public wrapping key, encfs-unwrap keygen's output */
	DATA_MAA_TOKEN, /* a JWT with x-ms-* claims, or MAA's {"token": JWT}: encfs-attest's output */
	DATA_RELEASE,   /* a JWS with request/response, or the vault's {"value": JWS}: encfs-skr's */
	DATA_JWT,       /* another compact JWT/JWS */
};

/* What text[0..len) is (white space around it ignored). */
enum data_kind data_kind(const char *text, size_t len);
/* "a JWK set (encfs-unwrap keygen's output); it goes to encfs-attest", for messages. */
const char *data_kind_says(enum data_kind k);

struct jwt {
	char *header, *payload; /* decoded, NUL-terminated (malloc) */
	size_t header_len, payload_len;
	struct json h, p;       /* both parsed: JSON objects */
};

/* Splits a compact JWT/JWS (white space around it trimmed; MAA's {"token"} and the vault's
 * {"value"} answers unwrapped), decodes its header and payload (base64url) and parses both as
 * JSON objects.  EXIT_CONFIG naming the part on failure; jwt_free in every case. */
int jwt_decode(const char *text, size_t len, struct jwt *j, struct err *e);
void jwt_free(struct jwt *j);

/* The token's exp, nbf and iat claims (integers), each -1 when absent or not an integer. */
void jwt_times(const struct jwt *j, long long *exp, long long *nbf, long long *iat);
/* "2026-12-02 14:00:00 UTC" */
void jwt_format_time(long long t, char *out, size_t size);
/* "7 h 59 min", "3 min", "40 s" */
void jwt_format_span(long long seconds, char *out, size_t size);

#endif
