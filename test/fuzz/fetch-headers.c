/* libFuzzer: the response headers encfs-fetch reads from Blob Storage: Content-Range, ETag,
 * Content-Length, x-ms-error-code and Retry-After out of a raw header block. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fetch.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *block = malloc(size + 1);
	if (!block)
		return 0;
	memcpy(block, data, size);
	block[size] = '\0';
	char v[160];
	uint64_t a, b, t;
	if (http_header(block, "Content-Range", v, sizeof v) && fetch_parse_content_range(v, &a, &b, &t) == 0 &&
	    !(a <= b && b < t))
		__builtin_trap();
	http_header(block, "ETag", v, sizeof v);
	http_header(block, "x-ms-error-code", v, sizeof v);
	http_header(block, "Content-Length", v, sizeof v);
	http_retry_after_ms(block);
	free(block);
	return 0;
}
