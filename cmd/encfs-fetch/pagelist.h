/* The response of Get Page Ranges (GET <blob>?comp=pagelist): a strict, bounded reader for this one
 * XML schema, and the list of valid page ranges it yields. */
#ifndef ENCFS_FETCH_PAGELIST_H
#define ENCFS_FETCH_PAGELIST_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define PAGE_SIZE_BYTES 512u
#define PAGELIST_MAX_MARKER 2048  /* NextMarker is an opaque token; real ones are ~100 bytes */

/* A range of bytes of the blob, both ends included (as on the wire). */
struct range {
	uint64_t start, end;
};

/* A growing array of ranges, sorted, not overlapping.  max bounds its length: a list that would
 * grow past it is refused rather than allocated. */
struct range_list {
	struct range *v;
	size_t n, cap, max;
};

/* Appends [start, end], merging it with the last range when they touch.  -1 (errno ENOMEM or
 * E2BIG past max) on failure. */
int range_list_add(struct range_list *l, uint64_t start, uint64_t end);
void range_list_free(struct range_list *l);

/* Parses one Get Page Ranges response body (len bytes, need not be NUL-terminated) asked for the
 * segment [seg_start, seg_end] of a page blob of blob_size bytes.  Accepted: an optional UTF-8
 * BOM and XML declaration, then
 *   <PageList> ( <PageRange><Start>N</Start><End>N</End></PageRange> | <ClearRange>..same..</ClearRange>
 *                | <NextMarker>text</NextMarker> | <NextMarker/> )* </PageList>
 * with whitespace between elements, decimal numbers without sign, the five predefined entities
 * in the marker.  Every page range must be 512-byte aligned (Start a multiple of 512, End + 1 a
 * multiple of 512), ascending, not overlapping the ranges already in out, inside the blob; it is
 * cut to the segment (a service may return a range that straddles it) and appended to out.
 * ClearRange elements (only sent for snapshot diffs) are checked and skipped: cleared pages read
 * as zeros.  The continuation token, if any, is copied to marker (empty string when none).
 * Returns 0, or -1 with e filled (EXIT_NETWORK: the service sent something we do not accept;
 * EXIT_INTERNAL: out of memory). */
int pagelist_parse(const char *xml, size_t len, uint64_t seg_start, uint64_t seg_end, uint64_t blob_size,
		   struct range_list *out, char marker[PAGELIST_MAX_MARKER], struct err *e);

/* Listing one segment of a page blob: the responses of Get Page Ranges for it, one after the
 * other, each continuing after the marker of the one before. */
#define PAGELIST_SEGMENT_SIZE (512ull << 20)
#define PAGELIST_MAX_RANGES_PER_SEGMENT (PAGELIST_SEGMENT_SIZE / (2 * PAGE_SIZE_BYTES) + 1)
/* responses for one segment: a well-behaved service needs a few (maxresults is 10000 ranges, a
 * segment holds at most 524288); a hostile one could send markers forever */
#define PAGELIST_MAX_PAGES 1024

struct pagelist_walk {
	uint64_t start, end, blob_size;  /* the segment, both ends included, of a blob of this size */
	struct range_list ranges;        /* the valid ranges so far, cut to the segment */
	unsigned pages;                  /* responses taken */
	char marker[PAGELIST_MAX_MARKER]; /* where the next request continues; "" when done */
	int done;                        /* the last response had no marker */
};

/* Starts a walk of the segment start..end (ranges empty, bounded by
 * PAGELIST_MAX_RANGES_PER_SEGMENT). */
void pagelist_walk_begin(struct pagelist_walk *w, uint64_t start, uint64_t end, uint64_t blob_size);
/* Takes the next response body: parses it into w->ranges and checks its marker (a service that
 * answers with the marker it was given, or keeps sending markers for PAGELIST_MAX_PAGES
 * responses, would never end).  -1 with e filled (EXIT_NETWORK, or EXIT_INTERNAL). */
int pagelist_walk_take(struct pagelist_walk *w, const char *body, size_t len, struct err *e);
void pagelist_walk_free(struct pagelist_walk *w);

#endif
