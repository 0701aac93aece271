/* Azure AD bearer tokens for the services encfs calls (Key Vault, Managed HSM, Blob Storage). */
#ifndef ENCFS_IDENTITY_H
#define ENCFS_IDENTITY_H

#include "log.h"
#include "secmem.h"

/* Gets a bearer token for resource ("https://vault.azure.net", "https://managedhsm.azure.net",
 * "https://storage.azure.com"), trying in order:
 *  1. workload identity, when AZURE_FEDERATED_TOKEN_FILE is set: the federated token exchanged at
 *     $AZURE_AUTHORITY_HOST (default https://login.microsoftonline.com/) for $AZURE_TENANT_ID,
 *     client $AZURE_CLIENT_ID (or client_id when given);
 *  2. the managed identity through IMDS ($ENCFS_IMDS_ENDPOINT, default http://169.254.169.254),
 *     for the user-assigned identity client_id when not NULL or empty.
 * Both are retried while they fail transiently (IMDS is slow to come up in ACI).  The token goes
 * into guarded memory; on failure e says which source failed and why (EXIT_DENIED when the
 * service refused, EXIT_NETWORK when it could not be reached). */
int identity_token(const char *resource, const char *client_id, struct secbuf *token, struct err *e);

/* The end of the hint when IMDS does not answer at all (every machine outside Azure): how this
 * tool takes a bearer token instead, e.g. "outside Azure, give the token with --bearer-file FILE". */
void identity_set_no_imds_hint(const char *hint);

/* The IMDS base URL: $ENCFS_IMDS_ENDPOINT or http://169.254.169.254, without a trailing slash. */
const char *identity_imds_base(char *buf, size_t size);

#endif
