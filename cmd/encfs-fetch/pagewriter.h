/* Put Page in parallel: a pool of threads, each with its own connection, taking writes from a
 * bounded queue.  The upload feeds it the written pages of an image; the read-write FUSE mount
 * feeds it dirty blocks and calls page_writer_flush for fsync. */
#ifndef ENCFS_FETCH_PAGEWRITER_H
#define ENCFS_FETCH_PAGEWRITER_H

#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "lease.h"

#define PAGE_WRITER_MAX_JOBS 64

struct page_writer;

/* Called by a worker thread when a write has ended, well or not (rc 0 or -1; etag: the blob's
 * ETag right after this write, or NULL on failure): the buffer is the caller's again.  With
 * writes in parallel, the ETag reported last need not be the blob's final one (the service may
 * have applied another write after it): after page_writer_flush, Get Blob Properties says. */
typedef void page_write_done(void *arg, void *buf, int rc, const char *etag);

struct page_writer_stats {
	uint64_t data_bytes;  /* page bytes written (each write counted once) */
	uint64_t body_bytes;  /* request body bytes sent, retries included */
	unsigned long requests, retries;
};

/* Starts jobs threads (1 to PAGE_WRITER_MAX_JOBS) writing to c.  With lease (may be NULL), every
 * write carries its id and none is sent once lease_keeper_check fails.  The queue holds at most
 * queue_max writes (submit blocks beyond). */
int page_writer_start(struct page_writer **out, struct blob_client *c, struct lease_keeper *lease, int jobs,
		      int queue_max, struct err *e);
/* Queues a Put Page of len bytes of buf at offset (whole pages, at most BLOB_MAX_PUT_PAGE); done
 * (may be NULL) is called when it has ended.  Blocks while the queue is full.  Fails without
 * queueing (done is not called) once an earlier write has failed (the first failure sticks: no
 * later write goes out after it) or the stop flag is set. */
int page_writer_submit(struct page_writer *w, uint64_t offset, void *buf, size_t len, page_write_done *done,
		       void *arg, struct err *e);
/* Waits until every write queued so far has ended: 0 when all went to the blob, else the first
 * failure in e. */
int page_writer_flush(struct page_writer *w, struct err *e);
void page_writer_get_stats(struct page_writer *w, struct page_writer_stats *st);
/* Stops the threads (after the writes in flight; queued ones are dropped, their done called with
 * rc -1) and frees w. */
void page_writer_stop(struct page_writer *w);

#endif
