/* libFuzzer target: the sidecar configuration (base64 or JSON) through decoding and validation. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int initialised;
	if (!initialised) {
		setenv("LogLevel", "error", 1); /* unknown-field warnings would flood the output */
		log_init("fuzz-config");
		initialised = 1;
	}
	for (unsigned flags = 0; flags < 8; flags++) {
		struct config c;
		struct err e;
		if (config_load(&c, (const char *)data, size, flags, &e) == 0) {
			/* what encfs.sh would read back */
			for (int i = 0; i < c.filesystems; i++) {
				char path[64];
				snprintf(path, sizeof path, "azure_filesystems[%d].mount_point", i);
				free(json_string(&c.json, json_get(&c.json, 0, path)));
			}
			config_free(&c);
		}
	}
	return 0;
}
