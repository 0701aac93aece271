/* libFuzzer: a Get Blob Properties response's header block as encfs-fetch reads it (size, ETag,
 * blob type, lease state and duration), and the answers to writes it judges (ETag, lease id,
 * x-ms-error-code). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *block = malloc(size + 1);
	if (!block)
		return 0;
	memcpy(block, data, size);
	block[size] = '\0';
	struct blob_info info;
	struct err e;
	if (blob_parse_properties(block, &info, "https://a/c/b", &e) == 0) {
		/* what was accepted keeps the invariants the modes rely on */
		if (!info.etag[0] || !blob_printable(info.etag) || strlen(info.etag) >= sizeof info.etag - 1 ||
		    info.size > (uint64_t)INT64_MAX || !blob_printable(info.lease_state) ||
		    !blob_printable(info.lease_duration) ||
		    (strcmp(info.type, "PageBlob") == 0 && info.size % BLOB_PAGE != 0))
			__builtin_trap();
	}
	char code[128];
	const char *c = blob_service_error(block, code, sizeof code);
	if (!blob_printable(c))
		__builtin_trap();
	free(block);
	return 0;
}
