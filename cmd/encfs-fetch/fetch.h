/* Downloading an Azure blob: its properties, its page list, and its valid ranges in parallel
 * ranged GETs, all pinned to the ETag seen first. */
#ifndef ENCFS_FETCH_H
#define ENCFS_FETCH_H

#include <signal.h>
#include <stdint.h>

#include "log.h"

#define FETCH_API_VERSION "2021-08-06"    /* x-ms-version: has Get Page Ranges markers (2020-10-02) */
#define FETCH_RANGE_SIZE (32u << 20)       /* bytes per ranged GET into a file */
#define FETCH_STREAM_RANGE_SIZE (4u << 20) /* bytes per ranged GET to stdout (held until written) */
#define FETCH_WRITE_BUFFER (1u << 20)      /* bytes per pwrite into a file */
#define FETCH_SEGMENT_SIZE (512ull << 20) /* blob bytes per Get Page Ranges request */
#define FETCH_PAGELIST_MAX_BODY (32u << 20)
#define FETCH_MAX_JOBS 64

struct fetch_config {
	const char *url;    /* the blob URL; a SAS query string stays in it but out of every message */
	const char *auth;   /* "Authorization: Bearer ..." header line, or NULL */
	int jobs;           /* ranged GETs in flight at once */
	long timeout_ms;    /* a request that receives nothing for this long is cut and retried */
	long deadline_ms;   /* a request that keeps failing for this long is an error */
	int allow_http;     /* plain http:// allowed (tests against a local emulator) */
	int progress;       /* progress line on stderr */
	const volatile sig_atomic_t *stop; /* set by a signal handler: give up now */
};

struct blob_info {
	uint64_t size;
	char etag[128];
	char type[32]; /* x-ms-blob-type: PageBlob, BlockBlob or AppendBlob */
};

struct fetch_stats {
	uint64_t body_bytes;  /* response body bytes received, failed attempts included */
	uint64_t data_bytes;  /* blob bytes written (the valid ranges) */
	unsigned long requests, retries, ranges;
};

/* Get Blob Properties (HEAD): size, ETag and type, retried while transient. */
int blob_get_info(const struct fetch_config *cfg, struct blob_info *info, struct err *e);

/* Downloads the blob described by info.  Page blobs: only the ranges Get Page Ranges lists;
 * other blobs: all of it.  Every request carries If-Match: info->etag, so a blob that changes is
 * an error, never a mix of versions.  stream = 0: fd is a regular file already truncated to
 * info->size, written with pwrite at the blob's offsets (holes stay holes); stream = 1: the bytes
 * go to fd in order, holes as zeros, through a window of 2 x jobs ranges.  out_name names fd in
 * messages.  Memory, whatever the blob size: jobs write buffers of FETCH_WRITE_BUFFER bytes
 * (stream: 2 x jobs range buffers), one page list body and the ranges of at most two segments. */
int fetch_blob(const struct fetch_config *cfg, const struct blob_info *info, int fd, int stream,
	       const char *out_name, struct fetch_stats *stats, struct err *e);

/* Checks that url is a blob URL this tool can use: http(s) scheme allowed by allow_http, a host,
 * a path /container/blob, no fragment.  Fills e with EXIT_USAGE when not. */
int fetch_check_url(const char *url, int allow_http, struct err *e);

/* Replaces every copy of url's query string (a SAS token lives there) in msg with
 * "<query hidden>", for messages made of text we did not write (libcurl's). */
void fetch_hide_query(char *msg, size_t size, const char *url);

/* Parses "bytes A-B/T" (Content-Range) into its numbers; -1 when malformed. */
int fetch_parse_content_range(const char *v, uint64_t *a, uint64_t *b, uint64_t *total);

#endif
