/* The upload mode: an image file into a new page blob, only its written pages, in parallel, under
 * a lease, checked against the blob's page list at the end. */
#ifndef ENCFS_FETCH_UPLOAD_H
#define ENCFS_FETCH_UPLOAD_H

#include <stdint.h>

#include "blob.h"

struct upload_config {
	struct blob_client *blob; /* the blob, its credentials, timeouts and stop flag */
	const char *image;  /* the file's name, for messages */
	int jobs;           /* Put Page calls in flight at once */
	int force;          /* replace an existing blob */
	int progress;       /* progress line on stderr */
};

struct upload_stats {
	uint64_t image_size, blob_size;
	uint64_t data_bytes;  /* page bytes written to the blob */
	uint64_t body_bytes;  /* request body bytes sent, retries included */
	uint64_t zero_pages;  /* 512-byte pages of data that were all zeros, not sent */
	unsigned long ranges, requests, retries;
	char etag[BLOB_ETAG_MAX]; /* the blob's ETag at the end */
};

/* Uploads the regular file open at fd.  Refusals: the blob exists without force (EXIT_USAGE,
 * "exists (use --force to replace it)"); another writer holds a lease on it (EXIT_DEVICE).  A
 * failure once the blob was created says that the blob is incomplete. */
int upload_image(const struct upload_config *cfg, int fd, struct upload_stats *st, struct err *e);

#endif
