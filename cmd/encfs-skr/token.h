/* The MAA token encfs-skr presents to the vault: read from standard input, checked for shape,
 * and its release-relevant claims summarised for messages (never its signature). */
#ifndef ENCFS_SKR_TOKEN_H
#define ENCFS_SKR_TOKEN_H

#include <stddef.h>

#include "log.h"
#include "secmem.h"

#define TOKEN_MAX (1u << 20)

/* Reads a JWT from text (a bare compact JWT, or MAA's {"token": "..."} answer), whitespace trimmed,
 * into guarded memory.  EXIT_CONFIG when it is not three non-empty base64url parts. */
int token_take(const char *text, size_t len, struct secbuf *token, struct err *e);

/* "iss=..., x-ms-sevsnpvm-hostdata=..., x-ms-sevsnpvm-is-debuggable=..., ..." from the token's
 * payload (not verified: for hints only); "" when it cannot be read. */
void token_claims_summary(const struct secbuf *token, char *out, size_t size);

/* The release-relevant claims (those token_claims_summary looks at) the token does not have:
 * "x-ms-compliance-status, x-ms-sevsnpvm-vmpl"; "" when it has them all or cannot be read. */
void token_claims_absent(const struct secbuf *token, char *out, size_t size);

/* An expired token is said to be expired here, before anything is sent: EXIT_CONFIG naming when
 * it expired.  A token without exp passes (the vault judges it). */
int token_check_expiry(const struct secbuf *token, struct err *e);

#endif
