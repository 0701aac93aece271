/* libFuzzer: the Get Page Ranges reader of encfs-fetch, on a segment and blob size taken from the
 * input's first bytes, with a continuation (a second parse into the same list). */
#include <stdint.h>
#include <string.h>

#include "pagelist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	/* blob size 1..256 pages x 64 KiB; segment inside it */
	uint64_t blob = ((uint64_t)data[0] + 1) * 65536;
	uint64_t seg_start = ((uint64_t)data[1] * 512) % blob;
	uint64_t seg_end = seg_start + ((uint64_t)data[2] + 1) * 4096 - 1;
	if (seg_end >= blob)
		seg_end = blob - 1;
	data += 3;
	size -= 3;
	struct range_list l = {.max = 64};
	char marker[PAGELIST_MAX_MARKER];
	struct err e;
	/* split the rest in two pages of a list at the first NUL, if any */
	const uint8_t *nul = memchr(data, 0, size);
	size_t first = nul ? (size_t)(nul - data) : size;
	if (pagelist_parse((const char *)data, first, seg_start, seg_end, blob, &l, marker, &e) == 0 && nul)
		pagelist_parse((const char *)nul + 1, size - first - 1, seg_start, seg_end, blob, &l, marker, &e);
	/* what was accepted keeps the invariants the downloader relies on */
	for (size_t i = 0; i < l.n; i++) {
		if (l.v[i].start > l.v[i].end || l.v[i].start < seg_start || l.v[i].end > seg_end ||
		    (i > 0 && l.v[i].start <= l.v[i - 1].end + 1))
			__builtin_trap();
	}
	range_list_free(&l);
	return 0;
}
