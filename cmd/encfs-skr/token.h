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

#endif
