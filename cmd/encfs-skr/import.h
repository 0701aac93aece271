/* encfs-skr import: the upstream importkey job.  Reads importkeyconfig.json, builds the release
 * policy from its claims, imports an oct-HSM or RSA-HSM key with it, and prints what the sidecar
 * configuration needs. */
#ifndef ENCFS_SKR_IMPORT_H
#define ENCFS_SKR_IMPORT_H

#include <stddef.h>

#include "log.h"
#include "secmem.h"
#include "strbuf.h"
#include "vault.h"

#define IMPORT_CONFIG_MAX (1u << 20)

struct import_config {
	char *kid;          /* key.kid: the key name */
	char *kty;          /* "oct-HSM" or "RSA-HSM" */
	char *authority;    /* https://<key.authority.endpoint> */
	char *akv_endpoint; /* key.akv.endpoint */
	char *api_version;  /* key.akv.api_version, or NULL */
	char *client_id;    /* identity.client_id, or NULL */
	char *bearer;       /* key.akv.bearer_token, or NULL (wiped on free) */
	char *salt_hex;     /* key_derivation.salt, or NULL */
	char *label;        /* key_derivation.label, or NULL */
	struct strbuf key_ops; /* key.key_ops as a JSON array, empty when absent */
	struct strbuf policy;  /* the release policy JSON */
};

/* Parses and validates text (the upstream importkeyconfig.json format), naming the bad field in e
 * (EXIT_CONFIG); template placeholders ("<...>") are refused. */
int import_config_parse(const char *text, size_t len, struct import_config *c, struct err *e);
void import_config_free(struct import_config *c);

/* {"version":"1.0.0","anyOf":[{"authority":A,"allOf":[{"claim":..,"equals":..},...]},...]} with one
 * anyOf entry per claims[i], appended to out: what upstream importkey builds. */
int import_policy(const char *text, size_t len, const char *authority, struct strbuf *out,
		  struct err *e);

enum key_source { KEY_RANDOM, KEY_HEX, KEY_FILE, KEY_PEM };

struct import_options {
	const char *config_path;
	enum key_source source;
	const char *key_hex;     /* --key-hex value ("-": read hex from standard input) */
	const char *key_file;    /* --key-file */
	const char *rsa_pem;     /* --rsa-pem */
	const char *rsa_pem_out; /* --rsa-pem-out, default private_key.pem */
	const char *keyfile_out; /* --keyfile-out */
	int print_key;           /* --print-key */
	const char *resource;    /* --resource */
	struct bearer_source bearer;
};

/* The whole job; prints the result JSON on standard output. */
int import_run(const struct import_options *o, struct err *e);

#endif
