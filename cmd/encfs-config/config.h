/* EncfsSideCarArgs: decoding and validation of the sidecar configuration (encfs-config(5)). */
#ifndef ENCFS_CONFIG_H
#define ENCFS_CONFIG_H

#include <stddef.h>

#include "json.h"

#define CONFIG_MAX_BYTES (1u << 20)
#define CONFIG_MAX_TOKENS 65536

enum config_flags {
	CONFIG_ALLOW_RAW_KEY = 1, /* test switch: raw_key may stand in for key release */
	CONFIG_ALLOW_HTTP = 2,    /* test switch: plain http:// blob URLs and endpoints */
	CONFIG_TEMPLATE = 4,      /* "<...>" placeholders of the upstream examples are warned about,
				     not refused: for checking a template before filling it in */
	CONFIG_QUIET = 8,         /* unknown fields are not warned about (get and count: check,
				     which the sidecar runs first, has said it once) */
};

struct config {
	char *text; /* the decoded JSON (owned) */
	size_t len;
	struct json json;
	int filesystems; /* number of entries in azure_filesystems */
};

/* Decodes in (base64 of JSON, padded or not, or JSON itself when it starts with '{'), parses it
 * strictly and validates every field (names the field path in e on failure, EXIT_CONFIG).
 * Unknown fields are reported with log_warn and otherwise ignored. */
int config_load(struct config *c, const char *in, size_t len, unsigned flags, struct err *e);
void config_free(struct config *c);

/* A field that holds a secret: never printed to a terminal, never logged. */
int config_is_secret_path(const char *path);

#endif
