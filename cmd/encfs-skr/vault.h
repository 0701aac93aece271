/* Talking to Azure Key Vault and Managed HSM: endpoints, key names, bearer tokens, requests and the
 * service's error answers. */
#ifndef ENCFS_SKR_VAULT_H
#define ENCFS_SKR_VAULT_H

#include <stddef.h>

#include "http.h"
#include "log.h"
#include "secmem.h"

#define VAULT_DEFAULT_API_VERSION "7.4"
#define BEARER_MAX (64u << 10)

struct vault {
	char base[320];       /* https://host[:port] */
	char host[256];       /* lowercase, for messages and checks */
	char resource[256];   /* the AAD resource whose token the vault accepts */
	char api_version[32]; /* "7.4" */
};

/* Fills v from an endpoint as the configuration writes it ("myvault.vault.azure.net"), or an https
 * URL, optionally with a port.  resource NULL picks it by name as the upstream sidecar does: a host
 * containing "managedhsm" gets https://managedhsm.azure.net, any other https://vault.azure.net.
 * api_version NULL is VAULT_DEFAULT_API_VERSION; "api-version=7.4" (the config's form) is accepted.
 * EXIT_CONFIG naming the bad part on failure. */
int vault_init(struct vault *v, const char *endpoint, const char *resource, const char *api_version,
	       struct err *e);

/* A key reference: "NAME" or "NAME/VERSION", or a key identifier URL
 * "https://host/keys/NAME[/VERSION]" whose host then gives the endpoint when endpoint is NULL (and
 * must match it otherwise).  Writes "NAME[/VERSION]" to path. */
int vault_key_ref(const char *kid, const char **endpoint_io, char *endpoint_buf, size_t endpoint_size,
		  char *path, size_t path_size, struct err *e);

/* Where the bearer token comes from: an explicit file or descriptor, a token from the configuration
 * (akv.bearer_token), else workload identity, else the managed identity (IMDS) for client_id. */
struct bearer_source {
	const char *file;      /* --bearer-file */
	int fd;                /* --bearer-fd, -1 when not given */
	const char *inline_token; /* akv.bearer_token of an import configuration */
	const char *client_id;
};
int vault_bearer(const struct bearer_source *src, const struct vault *v, struct secbuf *token,
		 struct err *e);

/* One request to the vault: method path?api-version=..., JSON body, the bearer token, retried
 * within deadline_ms (0: the tool's --deadline; -1: one attempt).  0 when an answer arrived (rs
 * filled, caller judges status), -1 with e (EXIT_NETWORK) when none did. */
int vault_request(const struct vault *v, const char *what, const char *method, const char *path,
		  const char *body, size_t body_len, const struct secbuf *bearer, long deadline_ms,
		  struct http_response *rs, struct err *e);

/* The service's words for a refusal: "Code: message" from {"error":{"code","message"}}, cut to one
 * line of at most size bytes; "no details" when the body says nothing usable. */
void vault_error_text(const struct http_response *rs, char *out, size_t size);

/* The exit code for a vault HTTP status: 400/404 EXIT_CONFIG, 401/403 and other 4xx EXIT_DENIED,
 * anything else EXIT_NETWORK. */
int vault_status_code(long status);

#endif
