/* The blob client of encfs-fetch: what every mode (download, upload, the FUSE mount) says to Azure
 * Blob Storage and how it judges the answers.  URL checks, the authorization header, Get Blob
 * Properties, Get Page Ranges, Put Blob (a page blob), Put Page, leases; TLS, retries and redaction
 * follow common/http.
 *
 * Threads: one struct blob_client is shared by every thread (its bearer token may be replaced at
 * any time, under its lock); each thread makes its requests on a struct blob_conn of its own, an
 * easy handle that keeps its connection alive between requests.  Every call here is thread-safe
 * in that sense. */
#ifndef ENCFS_FETCH_BLOB_H
#define ENCFS_FETCH_BLOB_H

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "log.h"
#include "pagelist.h"
#include "secmem.h"

#define BLOB_API_VERSION "2021-08-06" /* x-ms-version: has Get Page Ranges markers (2020-10-02) */
#define BLOB_PAGE 512u
#define BLOB_MAX_PUT_PAGE (4u << 20)      /* Put Page: at most 4 MiB a call */
#define BLOB_PAGE_BLOB_MAX (8ull << 40)   /* the service's largest page blob: 8 TiB */
#define BLOB_SEGMENT_SIZE PAGELIST_SEGMENT_SIZE /* blob bytes per Get Page Ranges request */
#define BLOB_PAGELIST_MAX_BODY (32u << 20)
#define BLOB_ERROR_BODY_MAX (64u << 10)  /* an error response's body, read and dropped */
#define BLOB_ETAG_MAX 128
#define BLOB_LEASE_ID_MAX 40              /* a GUID is 36 characters */

struct blob_client {
	const char *url;    /* the blob URL; a SAS query string stays in it but out of every message */
	char shown[512];    /* url for messages: its query hidden */
	int allow_http;     /* plain http:// allowed (tests against a local emulator) */
	int writing;        /* the mode writes: errors name write permissions */
	long timeout_ms;    /* a request that moves no byte for this long is cut and retried */
	long deadline_ms;   /* a request that keeps failing for this long is an error */
	const volatile sig_atomic_t *stop; /* set by a signal handler: give up now (may be NULL) */
	pthread_mutex_t lock; /* guards auth and warned */
	struct secbuf auth; /* "Authorization: Bearer ..." (NUL-terminated), or empty */
	int warned;         /* the first retry has been a warning (the later ones are info) */
};

/* Sets up c for url (checked with blob_check_url).  timeout and deadline as above. */
int blob_client_init(struct blob_client *c, const char *url, int allow_http, long timeout_ms, long deadline_ms,
		     const volatile sig_atomic_t *stop, struct err *e);
/* Requests from now on carry this bearer token (a renewed one replaces the old, which is wiped). */
int blob_client_set_bearer(struct blob_client *c, const unsigned char *token, size_t len, struct err *e);
int blob_client_has_auth(struct blob_client *c);
void blob_client_free(struct blob_client *c);
/* True once the stop flag is set. */
int blob_stopping(const struct blob_client *c);
/* A failure that is retried: the first of the client's is a warning at the default level (what,
 * host:port, why, until when), the later ones are info lines "retrying in WAIT ms". */
void blob_note_retry(struct blob_client *c, const char *what, const char *why, long wait_ms, long remaining_ms);

/* One thread's connection. */
struct blob_conn {
	CURL *h;
};
int blob_conn_init(struct blob_conn *cn, struct err *e);
void blob_conn_free(struct blob_conn *cn);

/* --- requests ----------------------------------------------------------------------------- */

struct blob_call {
	const char *what;    /* names the call in messages: "Put Page" */
	const char *method;  /* "HEAD", "GET", "PUT" */
	const char *url;     /* the URL to ask, when not the client's (a page list continuation) */
	const char *query;   /* appended to the URL's query ("comp=page"), or NULL */
	const char *const *headers; /* extra "Name: value" lines, NULL-terminated, or NULL */
	const void *body;    /* request body (PUT), body_len bytes */
	size_t body_len;
	size_t max_body;     /* response body bytes kept; a longer body is an error (0: none kept) */
	int final;           /* run even once the stop flag is set (releasing a lease on the way out) */
	long deadline_ms;    /* 0: the client's */
	const struct iovec *dest; /* when set, a 2xx body goes into these buffers in turn (max_body bytes at
				   * most, their total), not into the reply */
	int dest_count;
	const volatile sig_atomic_t *cancel; /* when set and non-zero: give up now, like a stop request */
};

struct blob_reply {
	long status;         /* of the last attempt */
	char *headers;       /* its header block, NUL-terminated */
	char *body;          /* its body (at most max_body bytes), NUL-terminated, or NULL */
	size_t len;
	int attempts;
	int ambiguous;       /* an earlier attempt failed after its request may have reached the service */
	uint64_t sent;       /* request body bytes sent, all attempts */
};

/* Performs call on cn: transient failures (see http_transient; also nothing moved for timeout_ms)
 * are retried with backoff, honouring Retry-After, until the deadline.  Returns 0 when a response
 * arrived (any status: a transient one is that of the last attempt, past the deadline), -1 with e
 * filled when none did (EXIT_NETWORK), or when the stop flag was set (EXIT_DEVICE, "interrupted by
 * a signal"). */
int blob_call(struct blob_client *c, struct blob_conn *cn, const struct blob_call *call, struct blob_reply *r,
	      struct err *e);
void blob_reply_free(struct blob_reply *r);

/* The headers every request carries (x-ms-version, Authorization) and extra (NULL-terminated, may
 * be NULL), as a libcurl list; NULL when out of memory.  Free with blob_slist_free, which wipes. */
struct curl_slist *blob_header_list(struct blob_client *c, const char *const *extra);
void blob_slist_free(struct curl_slist *l);

/* What the service said in its error: x-ms-error-code, or "no error code". */
const char *blob_service_error(const char *headers, char *buf, size_t size);
/* What to check after a 401 or 403. */
const char *blob_auth_hint(struct blob_client *c);
/* Visible ASCII only (an ETag or lease id goes into header lines and messages). */
int blob_printable(const char *s);

/* --- Get Blob Properties -------------------------------------------------------------------- */

struct blob_info {
	uint64_t size;
	char etag[BLOB_ETAG_MAX];
	char type[32];            /* x-ms-blob-type: PageBlob, BlockBlob or AppendBlob */
	char lease_state[16];     /* x-ms-lease-state: available, leased, expired, breaking, broken; "" */
	char lease_duration[16];  /* x-ms-lease-duration: infinite, fixed; "" */
};

/* Reads a Get Blob Properties response's header block into info, checking every field: a size,
 * a printable ETag, a known blob type, a page blob size that is a multiple of 512; lease fields
 * kept when they are short printable words.  -1 with e filled (EXIT_NETWORK) when not. */
int blob_parse_properties(const char *headers, struct blob_info *info, const char *shown, struct err *e);
/* HEAD on the blob.  404 is EXIT_CONFIG, 401/403 EXIT_DENIED. */
int blob_get_properties(struct blob_client *c, struct blob_conn *cn, struct blob_info *info, struct err *e);

/* --- page lists ------------------------------------------------------------------------------- */

/* The URL of a Get Page Ranges request (continuing after marker when not empty): malloc'd, NULL
 * when out of memory. */
char *blob_pagelist_url(const struct blob_client *c, const char *marker);
/* Every valid page range of the segment w->start..w->end (set up with pagelist_walk_begin) of a
 * page blob of w->blob_size bytes into w->ranges, following continuation markers.  With if_match,
 * the requests carry If-Match and a different ETag is EXIT_DEVICE ("the blob changed").  *cancel
 * (cancel may be NULL) set ends it at once (-1, "interrupted"), as for blob_get_range. */
int blob_list_segment(struct blob_client *c, struct blob_conn *cn, struct pagelist_walk *w, const char *if_match,
		      const volatile sig_atomic_t *cancel, struct err *e);

/* --- reading a range ------------------------------------------------------------------------- */

/* Get Blob of the bytes at offset into the buffers iov[0..n) in turn (their lengths add up to the
 * range's), with If-Match: if_match (may be NULL) and x-ms-lease-id: lease_id (may be NULL: a
 * read-write mount reads under its lease, which no other writer can write past);
 * *cancel (cancel may be NULL) set ends it at once (-1, "interrupted").
 * Returns 0 (exactly those bytes in buf), BLOB_CHANGED (412: the ETag or the lease condition
 * failed; or a response whose ETag is not if_match), BLOB_NOT_FOUND (404), or -1 with e filled (401/403 EXIT_DENIED, the rest
 * EXIT_NETWORK).  *received (may be NULL) grows by the body bytes taken. */
int blob_get_range(struct blob_client *c, struct blob_conn *cn, uint64_t offset, const struct iovec *iov, int n,
		   const char *if_match, const char *lease_id, const volatile sig_atomic_t *cancel, uint64_t *received,
		   struct err *e);
/* Parses "bytes A-B/T" (Content-Range); -1 when malformed. */
int blob_parse_content_range(const char *v, uint64_t *a, uint64_t *b, uint64_t *total);

/* --- writing ------------------------------------------------------------------------------------ */

/* Outcomes of the calls below besides 0 (done) and -1 (error in e). */
enum {
	BLOB_EXISTS = 1,    /* Put Blob with If-None-Match: * found a blob */
	BLOB_LEASED,        /* someone else holds a lease on the blob */
	BLOB_NOT_FOUND,     /* no such blob */
	BLOB_CHANGED,       /* an If-Match condition failed: the blob is not the one we saw */
};

/* Put Blob: a new, empty page blob of size bytes (a multiple of 512), replacing any blob of that
 * name unless if_none_match (If-None-Match: *).  lease_id: we hold this lease on the existing
 * blob.  nonce: stored as metadata encfsupload, so that a retried create can tell its own blob
 * (a first attempt that reached the service) from someone else's.  The new ETag into etag.
 * Returns 0, BLOB_EXISTS, BLOB_LEASED, or -1. */
int blob_create_page_blob(struct blob_client *c, struct blob_conn *cn, uint64_t size, int if_none_match,
			  const char *lease_id, const char *nonce, char etag[BLOB_ETAG_MAX], struct err *e);

/* Put Page (x-ms-page-write: update) of len bytes of data at offset: offset and len multiples of
 * 512, len from 512 to BLOB_MAX_PUT_PAGE.  lease_id, if_match: conditions (may be NULL).  The ETag
 * the blob has after this write into etag (may be NULL).  Retried while transient (Put Page is
 * idempotent).  *sent (may be NULL) grows by the body bytes sent, retries included; *retries
 * (may be NULL) by the retries.  Errors: 401/403 EXIT_DENIED; 404, a lost lease or a failed
 * If-Match EXIT_DEVICE; the rest EXIT_NETWORK. */
int blob_put_page(struct blob_client *c, struct blob_conn *cn, uint64_t offset, const void *data, size_t len,
		  const char *lease_id, const char *if_match, char etag[BLOB_ETAG_MAX], uint64_t *sent,
		  unsigned long *retries, struct err *e);

/* Lease Blob.  acquire: duration_s 15 to 60 (or -1, infinite), our own lease id proposed (so that a
 * retried acquire is recognised), if_match may be NULL; returns 0, BLOB_LEASED, BLOB_NOT_FOUND,
 * BLOB_CHANGED or -1.  renew: 0, BLOB_LEASED (the lease is gone or someone else's; e says so) or
 * -1, retried within deadline_ms (0: the client's).
 * release: 0 (also when a retried release finds it already released) or -1; it runs even once
 * the stop flag is set, within a short deadline. */
int blob_lease_acquire(struct blob_client *c, struct blob_conn *cn, int duration_s, const char *lease_id,
		       const char *if_match, struct err *e);
int blob_lease_renew(struct blob_client *c, struct blob_conn *cn, const char *lease_id, long deadline_ms,
		     struct err *e);
int blob_lease_release(struct blob_client *c, struct blob_conn *cn, const char *lease_id, struct err *e);
/* A new random lease id (a version 4 GUID) into id. */
void blob_new_lease_id(char id[BLOB_LEASE_ID_MAX]);

/* --- URLs and messages ------------------------------------------------------------------------ */

/* Checks that url is a blob URL this tool can use: http(s) scheme allowed by allow_http, a host,
 * a path /container/blob, no fragment.  Fills e with EXIT_USAGE when not. */
int blob_check_url(const char *url, int allow_http, struct err *e);
/* Replaces every copy of url's query string (a SAS token lives there) in msg with
 * "<query hidden>", for messages made of text we did not write (libcurl's). */
void blob_hide_query(char *msg, size_t size, const char *url);

#endif
