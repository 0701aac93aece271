/* The signed release response: a compact JWS (RFC 7515) whose header carries the signer's
 * certificate chain (x5c).  Parsing is strict and bounded; verification checks the signature with
 * x5c[0] and the chain up to trusted roots with the leaf valid for the vault's host name. */
#ifndef ENCFS_UNWRAP_JWS_H
#define ENCFS_UNWRAP_JWS_H

#include <openssl/x509.h>
#include <stddef.h>

#include "json.h"

#define JWS_MAX_TEXT (1u << 20)   /* a release response is a few KiB */
#define JWS_MAX_CHAIN 8           /* certificates in x5c */
#define JWS_MAX_CERT (16u << 10)  /* DER bytes of one certificate */

struct jws {
	const char *text; /* the compact form: not owned */
	size_t len;
	size_t signed_len; /* header.payload: the bytes the signature covers */
	char *header;      /* decoded protected header (malloc, NUL-terminated) */
	size_t header_len;
	char *payload;     /* decoded payload (malloc, NUL-terminated) */
	size_t payload_len;
	unsigned char *sig;
	size_t sig_len;
	struct json hj;   /* the parsed header */
	char alg[8];      /* RS256 ... PS512 */
	STACK_OF(X509) *chain; /* x5c, leaf first */
};

/* Splits and decodes text[0..len): three base64url parts without padding, a header that is strict
 * JSON with an accepted "alg" (RS256/384/512, PS256/384/512; never "none" or HMAC), no "crit", and
 * "x5c" of 1 to JWS_MAX_CHAIN DER certificates (x5t#S256 and x5t, when present, must match x5c[0]).
 * The payload is only decoded, not interpreted.  EXIT_CRYPTO with the reason on failure; jws_free in
 * every case. */
int jws_parse(struct jws *j, const char *text, size_t len, struct err *e);
/* The signature over header.payload with x5c[0]'s RSA public key (2048 bits or more). */
int jws_verify_signature(const struct jws *j, struct err *e);
/* x5c[0] chains to a root in store through the other x5c certificates (untrusted intermediates), at
 * the current time, for the TLS server purpose (serverAuth where an extended key usage is given), and
 * is valid for host (a DNS name, or an IP address literal). */
int jws_verify_chain(const struct jws *j, X509_STORE *store, const char *host, struct err *e);
void jws_free(struct jws *j);

/* A trust store: the PEM bundle at ca_file, or the system's default store when NULL. */
X509_STORE *jws_trust_store(const char *ca_file, struct err *e);

#endif
