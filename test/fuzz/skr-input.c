/* libFuzzer target: what encfs-skr reads: the attestation token on stdin (and its claims, for
 * hints), the import configuration, the vault's error bodies, endpoints and key references. */
#include "import.h"
#include "token.h"
#include "vault.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		if (sodium_init() < 0)
			abort();
		ready = 1;
	}
	struct err e;
	struct secbuf t = {0};
	if (token_take((const char *)data, size, &t, &e) == 0) {
		char summary[512];
		token_claims_summary(&t, summary, sizeof summary);
		secbuf_free(&t);
	}

	struct import_config c;
	if (import_config_parse((const char *)data, size, &c, &e) == 0)
		import_config_free(&c);

	struct http_response rs = {0};
	if (secbuf_alloc(&rs.body, size) == 0) {
		memcpy(rs.body.data, data, size);
		rs.body.len = size;
		char msg[300];
		vault_error_text(&rs, msg, sizeof msg);
		secbuf_free(&rs.body);
	}

	char text[600], path[300], buf[320];
	size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
	memcpy(text, data, n);
	text[n] = '\0';
	struct vault v;
	(void)vault_init(&v, text, NULL, NULL, &e);
	(void)vault_init(&v, "v.vault.azure.net", NULL, text, &e);
	const char *ep = NULL;
	(void)vault_key_ref(text, &ep, buf, sizeof buf, path, sizeof path, &e);
	ep = "v.vault.azure.net";
	(void)vault_key_ref(text, &ep, buf, sizeof buf, path, sizeof path, &e);
	return 0;
}
