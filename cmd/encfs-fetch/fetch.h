/* Downloading an Azure blob: its properties, its page list, and its valid ranges in parallel
 * ranged GETs, all pinned to the ETag seen first. */
#ifndef ENCFS_FETCH_H
#define ENCFS_FETCH_H

#include <stdint.h>

#include "blob.h"
#include "log.h"

#define FETCH_RANGE_SIZE (32u << 20)       /* bytes per ranged GET into a file */
#define FETCH_STREAM_RANGE_SIZE (4u << 20) /* bytes per ranged GET to stdout (held until written) */
#define FETCH_WRITE_BUFFER (1u << 20)      /* bytes per pwrite into a file */
#define FETCH_MAX_JOBS 64

struct fetch_config {
	struct blob_client *blob; /* the blob, its credentials, timeouts and stop flag */
	int jobs;           /* ranged GETs in flight at once */
	int progress;       /* progress line on stderr */
};

struct fetch_stats {
	uint64_t body_bytes;  /* response body bytes received, failed attempts included */
	uint64_t data_bytes;  /* blob bytes written (the valid ranges) */
	unsigned long requests, retries, ranges;
};

/* Downloads the blob described by info.  Page blobs: only the ranges Get Page Ranges lists;
 * other blobs: all of it.  Every request carries If-Match: info->etag, so a blob that changes is
 * an error, never a mix of versions.  stream = 0: fd is a regular file already truncated to
 * info->size, written with pwrite at the blob's offsets (holes stay holes); stream = 1: the bytes
 * go to fd in order, holes as zeros, through a window of 2 x jobs ranges.  out_name names fd in
 * messages.  Memory, whatever the blob size: jobs write buffers of FETCH_WRITE_BUFFER bytes
 * (stream: 2 x jobs range buffers), one page list body and the ranges of at most two segments. */
int fetch_blob(const struct fetch_config *cfg, const struct blob_info *info, int fd, int stream,
	       const char *out_name, struct fetch_stats *stats, struct err *e);

/* Parses "bytes A-B/T" (Content-Range) into its numbers; -1 when malformed (blob_parse_content_range). */
int fetch_parse_content_range(const char *v, uint64_t *a, uint64_t *b, uint64_t *total);

#endif
