/* HTTP over libcurl with the rules every encfs tool follows: TLS verification always on, timeouts,
 * a cap on the response size, retries with backoff and jitter for transient failures within an
 * overall deadline, and no secret in any log line. */
#ifndef ENCFS_HTTP_H
#define ENCFS_HTTP_H

#include <curl/curl.h>
#include <stddef.h>

#include "log.h"
#include "secmem.h"

#define HTTP_DEFAULT_MAX_RESPONSE (1u << 20) /* 1 MiB: tokens, keys and reports are far smaller */
#define HTTP_DEFAULT_DEADLINE_MS 120000
#define HTTP_RESOLVE_ATTEMPTS 2 /* a name that does not resolve: tried this often, not until the deadline */

struct http_request {
	const char *what;   /* names the call in errors and logs: "MAA attest", "key release" */
	const char *method; /* "GET", "POST", "PUT", "HEAD"; NULL is GET */
	const char *url;
	const char *const *headers; /* NULL-terminated "Name: value" list, or NULL */
	const void *body;
	size_t body_len;
	size_t max_response;    /* body bytes allowed; 0 is HTTP_DEFAULT_MAX_RESPONSE */
	long connect_timeout_ms; /* 0 is 10 s */
	long timeout_ms;        /* one attempt; 0 is 60 s */
	long deadline_ms;       /* all attempts together; 0 is the tool's --deadline (http_set_deadline_ms),
				 * else 120 s; -1 makes a single attempt.  A value above the tool's
				 * --deadline is cut to it. */
	int allow_http;         /* plain http:// (IMDS, and tests behind an explicit switch) */
	int secret_response;    /* the body holds a token or key: keep it in guarded memory */
};

struct http_response {
	long status;         /* HTTP status of the last attempt */
	struct secbuf body;  /* NUL-terminated; guarded memory (always, it is cheap at these sizes) */
	char *headers;       /* raw response header block of the last attempt, NUL-terminated */
	int attempts;
};

/* Once per process, before any request. */
void http_init(void);
/* PEM file of trust anchors to use instead of the system store (--cacert); NULL restores the
 * default, which is $ENCFS_CA_BUNDLE when set, else the system store. */
void http_set_ca_bundle(const char *path);
const char *http_ca_bundle(void);
/* The tool's --deadline: how long one call may keep retrying (0 restores the default).  Every
 * request's own deadline is cut to it, and each attempt's timeout to what is left of it. */
void http_set_deadline_ms(long ms);
long http_deadline_ms(void);

/* Performs the request.  Transient failures (connection refused/reset, timeouts, truncated bodies,
 * HTTP 429, 500, 502, 503, 504) are retried with exponential backoff and jitter, honouring
 * Retry-After, until deadline_ms; a host name that does not resolve only HTTP_RESOLVE_ATTEMPTS
 * times (a typo does not heal).  The first retry is announced once at the default level (warning:
 * what failed at which host:port, and until when it is retried); later ones at info.  Returns 0 when a response arrived (whatever its status: the
 * caller judges it, and a transient status is that of the last attempt), -1 with e filled
 * (EXIT_NETWORK) when none did: TLS verification failure, response over the cap, or transport
 * failures until the deadline. */
int http_do(const struct http_request *rq, struct http_response *rs, struct err *e);
void http_response_free(struct http_response *rs);

/* Value of the first response header called name (case-insensitive), trimmed, into buf; NULL when
 * absent. */
const char *http_header(const char *headers, const char *name, char *buf, size_t size);

/* The pieces http_do is made of, for tools that drive libcurl themselves (parallel ranges). */
/* Applies the TLS, protocol, timeout and redirect rules to an easy handle. */
int http_setup_handle(CURL *h, const struct http_request *rq, struct err *e);
/* True for the failures worth retrying. */
int http_transient(CURLcode rc, long status);
/* Delay before attempt number attempt (1 for the first retry): exponential from 250 ms, capped at
 * 8 s, with full jitter; at least retry_after_ms when the server said so (-1 when it did not). */
long http_backoff_ms(int attempt, long retry_after_ms);
/* Retry-After (delta-seconds or HTTP-date) in ms, or -1. */
long http_retry_after_ms(const char *headers);
/* Milliseconds on a monotonic clock. */
long long http_now_ms(void);
/* One line describing a libcurl failure, with a hint: "TLS certificate verification failed:
 * ... (check the server certificate, or ENCFS_CA_BUNDLE / --cacert)". */
void http_describe_failure(CURLcode rc, const char *curl_errbuf, char *out, size_t size);
/* URL with its query string cut (SAS tokens live there), for messages. */
void http_url_for_log(const char *url, char *out, size_t size);
/* "host:port" of url, the port spelt out even when it is the scheme's default, for messages. */
void http_hostport(const char *url, char *out, size_t size);
/* The first-retry warning every retry loop gives: "WHAT: HOSTPORT: WHY; retrying until HH:MM:SS
 * UTC (N s from the start, --deadline)".  remaining_ms is what is left of the deadline. */
void http_warn_retrying(const char *what, const char *hostport, const char *why, long remaining_ms);

#endif
