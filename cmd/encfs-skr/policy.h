/* A key's release policy as the vault stores it (GET /keys/NAME), and how an MAA token measures up
 * to it: what the admin compares a 403 with. */
#ifndef ENCFS_SKR_POLICY_H
#define ENCFS_SKR_POLICY_H

#include <stddef.h>

#include "log.h"
#include "secmem.h"
#include "strbuf.h"
#include "vault.h"

struct stored_key {
	char kid[600];
	char kty[32];
	int exportable;     /* attributes.exportable; -1 when absent */
	struct strbuf policy; /* the release policy JSON, decoded from release_policy.data; empty when none */
};

/* GET /keys/path: the key's identifier, type, exportable flag and release policy.  deadline_ms as
 * vault_request.  EXIT_CONFIG/EXIT_DENIED/EXIT_NETWORK with the vault's words on failure. */
int policy_fetch(const struct vault *v, const char *path, const struct secbuf *bearer,
		 long deadline_ms, struct stored_key *k, struct err *e);
void stored_key_free(struct stored_key *k);

/* The conditions of policy (anyOf/allOf of {"claim", "equals"} under "authority") that the
 * token's claims do not meet, for the best-matching authority: "x-ms-compliance-status=
 * azure-compliant-uvm (the token has none), x-ms-sevsnpvm-hostdata=... (the token has ...)", or
 * that no authority of the policy issued the token.  "" when it cannot tell (unreadable policy or
 * token) or every condition is met. */
void policy_unmet(const char *policy, size_t len, const struct secbuf *token, char *out, size_t size);

#endif
