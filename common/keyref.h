/* Key Vault key references: "NAME[/VERSION]" or "https://HOST[:PORT]/keys/NAME[/VERSION]". */
#ifndef ENCFS_KEYREF_H
#define ENCFS_KEYREF_H

#include <stddef.h>

struct key_ref {
	char endpoint[320]; /* "HOST[:PORT]" as the identifier URL writes it; "" when not a URL */
	char host[256];     /* lowercase, without port; "" when not a URL */
	char name[128];     /* 1-127 letters, digits and dashes */
	char version[128];  /* "" when not given */
};

/* 0, or -1 when ref is neither form (an http URL, a path other than /keys/, a query, userinfo, a
 * name with other characters).  A trailing slash after a version is accepted ("k/1/"). */
int key_ref_parse(const char *ref, struct key_ref *out);

/* The host of an endpoint or URL: "https://h:443/x" -> "h", "h:8443" -> "h", "[::1]:9" -> "::1",
 * lowercase.  -1 when there is none or it does not fit. */
int endpoint_host(const char *endpoint, char *host, size_t size);

/* The one grammar of a service endpoint (Key Vault, Managed HSM, the attestation provider), as
 * encfs-skr, encfs-attest and encfs-config read it: "HOST", "HOST:PORT" or "https://HOST[:PORT]",
 * optionally with one trailing "/"; HOST letters, digits, "-" and "." or a bracketed IPv6
 * address; PORT 1 to 65535.  0, or -1 with the reason in why ("has a path ...", "only https is
 * allowed", ...), which names no field: the caller does. */
int endpoint_check(const char *endpoint, char *why, size_t why_size);

/* A Key Vault REST API version as the configuration writes it ("7.4" or "api-version=7.4"): the
 * version itself (pointing into av), or NULL when it is empty, longer than 31 characters or has
 * other characters than lowercase letters, digits, "." and "-". */
const char *api_version_value(const char *av);

#endif
