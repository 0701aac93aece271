/* The blob client: requests to one blob, each retried on its own connection, and the judging of
 * what Blob Storage answers. */
#include "blob.h"
#include "bloburl.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http.h"

#define MAX_HEADER_BLOCK (16u << 10)
#define RELEASE_DEADLINE_MS 15000L /* releasing a lease on the way out: not the whole --deadline */

/* --- the client ----------------------------------------------------------------------------- */

int blob_client_init(struct blob_client *c, const char *url, int allow_http, long timeout_ms, long deadline_ms,
		     const volatile sig_atomic_t *stop, struct err *e)
{
	memset(c, 0, sizeof *c);
	if (blob_check_url(url, allow_http, e) != 0)
		return -1;
	c->url = url;
	http_url_for_log(url, c->shown, sizeof c->shown);
	c->allow_http = allow_http;
	c->timeout_ms = timeout_ms;
	c->deadline_ms = deadline_ms;
	c->stop = stop;
	if (pthread_mutex_init(&c->lock, NULL) != 0)
		return err_set(e, EXIT_INTERNAL, "setting up the blob client: pthread_mutex_init failed");
	return 0;
}

int blob_client_set_bearer(struct blob_client *c, const unsigned char *token, size_t len, struct err *e)
{
	static const char prefix[] = "Authorization: Bearer ";
	struct secbuf auth = {0}, old;
	if (secbuf_alloc(&auth, sizeof prefix + len) != 0)
		return err_set(e, EXIT_INTERNAL, "keeping the token: out of memory");
	memcpy(auth.data, prefix, sizeof prefix - 1);
	memcpy(auth.data + sizeof prefix - 1, token, len);
	auth.len = sizeof prefix - 1 + len;
	auth.data[auth.len] = '\0';
	pthread_mutex_lock(&c->lock);
	old = c->auth;
	c->auth = auth;
	pthread_mutex_unlock(&c->lock);
	secbuf_free(&old);
	return 0;
}

int blob_client_has_auth(struct blob_client *c)
{
	pthread_mutex_lock(&c->lock);
	int has = c->auth.len > 0;
	pthread_mutex_unlock(&c->lock);
	return has;
}

void blob_client_free(struct blob_client *c)
{
	secbuf_free(&c->auth);
	pthread_mutex_destroy(&c->lock);
}

int blob_stopping(const struct blob_client *c) { return c->stop && *c->stop; }

int blob_conn_init(struct blob_conn *cn, struct err *e)
{
	cn->h = curl_easy_init();
	return cn->h ? 0 : err_set(e, EXIT_INTERNAL, "setting up libcurl: out of memory");
}

void blob_conn_free(struct blob_conn *cn)
{
	if (cn->h)
		curl_easy_cleanup(cn->h);
	cn->h = NULL;
}

/* --- URLs and messages ------------------------------------------------------------------------ */

int blob_check_url(const char *url, int allow_http, struct err *e)
{
	char shown[512], why[256];
	if (blob_url_check(url, allow_http, why, sizeof why) == 0)
		return 0;
	http_url_for_log(url, shown, sizeof shown);
	return err_set(e, EXIT_USAGE, "bad URL %s: %s", shown, why);
}

void blob_note_retry(struct blob_client *c, const char *what, const char *why, long wait_ms, long remaining_ms)
{
	pthread_mutex_lock(&c->lock);
	int first = !c->warned;
	c->warned = 1;
	pthread_mutex_unlock(&c->lock);
	if (first) {
		char where[300];
		http_hostport(c->url, where, sizeof where);
		http_warn_retrying(what, where, why, remaining_ms);
	} else
		log_info("%s: %s; retrying in %ld ms", what, why, wait_ms);
}

void blob_hide_query(char *msg, size_t size, const char *url)
{
	const char *q = strchr(url, '?');
	if (!q || !q[1] || size == 0)
		return;
	q++;
	size_t qn = strcspn(q, "#");
	static const char hidden[] = "<query hidden>";
	for (char *at = msg; (at = strstr(at, q)) != NULL;) {
		/* the query is longer than the marker that replaces it: the message only shrinks */
		size_t tail = strlen(at + qn);
		if (qn >= sizeof hidden - 1) {
			memcpy(at, hidden, sizeof hidden - 1);
			memmove(at + sizeof hidden - 1, at + qn, tail + 1);
			at += sizeof hidden - 1;
		} else {
			memset(at, '*', qn);
			at += qn;
		}
	}
}

const char *blob_service_error(const char *headers, char *buf, size_t size)
{
	if (headers && http_header(headers, "x-ms-error-code", buf, size) && buf[0] && blob_printable(buf))
		return buf;
	snprintf(buf, size, "no error code");
	return buf;
}

const char *blob_auth_hint(struct blob_client *c)
{
	if (blob_client_has_auth(c))
		return c->writing ? "check that the identity has the Storage Blob Data Contributor role on the container"
				  : "check that the identity has the Storage Blob Data Reader role on the container";
	if (strchr(c->url, '?'))
		return c->writing ? "check the SAS token: read, create and write permissions, start and expiry "
				    "times, signature"
				  : "check the SAS token: read permission, start and expiry times, signature";
	return c->writing ? "writing needs credentials: use --private (managed identity) or a SAS URL"
			  : "the blob is not public: use --private (managed identity) or a SAS URL";
}

int blob_printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return 0;
	return 1;
}

void blob_slist_free(struct curl_slist *l)
{
	/* the list may hold the bearer token: wipe the copies libcurl made before freeing them */
	for (struct curl_slist *p = l; p; p = p->next)
		if (p->data)
			wipe(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

static int add_header(struct curl_slist **l, const char *line)
{
	struct curl_slist *n = curl_slist_append(*l, line);
	if (!n)
		return -1;
	*l = n;
	return 0;
}

struct curl_slist *blob_header_list(struct blob_client *c, const char *const *extra)
{
	struct curl_slist *l = NULL;
	if (add_header(&l, "x-ms-version: " BLOB_API_VERSION) != 0)
		goto oom;
	for (const char *const *p = extra; p && *p; p++)
		if (add_header(&l, *p) != 0)
			goto oom;
	pthread_mutex_lock(&c->lock);
	int bad = c->auth.len && add_header(&l, (const char *)c->auth.data) != 0;
	pthread_mutex_unlock(&c->lock);
	if (bad)
		goto oom;
	return l;
oom:
	blob_slist_free(l);
	return NULL;
}

/* --- one request, retried ----------------------------------------------------------------------- */

struct xfer {
	struct blob_client *c;
	const struct blob_call *call;
	char *hdr;
	size_t hdr_len;
	int hdr_long;
	char *body;
	size_t len, cap;
	size_t dropped;     /* bytes of an error body, read and dropped */
	int body_long, error_long, nomem, stalled, stopped;
	int iov;             /* dest: the buffer being filled, and how far */
	size_t iov_off;
	curl_off_t last_dl, last_ul;
	long long active_ms;
	CURL *h;
};

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
		x->hdr_len = 0; /* a new status line (after 100 Continue) starts a new block */
	if (n >= MAX_HEADER_BLOCK - x->hdr_len) {
		x->hdr_long = 1; /* a header block this big is not Blob Storage */
		return 0;
	}
	memcpy(x->hdr + x->hdr_len, data, n);
	x->hdr_len += n;
	x->hdr[x->hdr_len] = '\0';
	return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	long status = 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	if (status / 100 != 2) {
		/* an error body: x-ms-error-code says what we need; one that does not end is not
		 * read for ever (the stall check sees bytes moving) */
		if (n > BLOB_ERROR_BODY_MAX - x->dropped) {
			x->error_long = 1;
			return 0;
		}
		x->dropped += n;
		return n;
	}
	if (n > x->call->max_body - x->len) {
		x->body_long = 1;
		return 0;
	}
	if (x->call->dest) { /* straight into the caller's buffers: no copy, no allocation */
		size_t done = 0;
		while (done < n) {
			const struct iovec *v = &x->call->dest[x->iov];
			size_t room = v->iov_len - x->iov_off, k = n - done < room ? n - done : room;
			memcpy((char *)v->iov_base + x->iov_off, data + done, k);
			done += k;
			x->iov_off += k;
			if (x->iov_off == v->iov_len && x->iov + 1 < x->call->dest_count) {
				x->iov++;
				x->iov_off = 0;
			}
		}
		x->len += n;
		return n;
	}
	if (x->len + n + 1 > x->cap) {
		size_t ncap = x->cap ? x->cap : 16u << 10;
		while (ncap < x->len + n + 1)
			ncap *= 2;
		char *nb = realloc(x->body, ncap);
		if (!nb) {
			x->nomem = 1;
			return 0;
		}
		x->body = nb;
		x->cap = ncap;
	}
	memcpy(x->body + x->len, data, n);
	x->len += n;
	x->body[x->len] = '\0';
	return n;
}

/* Called by libcurl at least once a second: a stop request ends the attempt at once, and so does
 * an attempt that has moved no byte either way for --timeout. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct xfer *x = arg;
	long long now = http_now_ms();
	if ((!x->call->final && blob_stopping(x->c)) || (x->call->cancel && *x->call->cancel)) {
		x->stopped = 1;
		return 1;
	}
	if (dlnow != x->last_dl || ulnow != x->last_ul) {
		x->last_dl = dlnow;
		x->last_ul = ulnow;
		x->active_ms = now;
	} else if (now - x->active_ms >= x->c->timeout_ms) {
		x->stalled = 1;
		return 1;
	}
	return 0;
}

/* Sleeps ms, in steps, so that a stop request is seen within 100 ms.  -1 when stopped. */
static int nap(struct blob_client *c, long ms, int final, const volatile sig_atomic_t *cancel)
{
	long long until = http_now_ms() + ms;
	for (;;) {
		if ((!final && blob_stopping(c)) || (cancel && *cancel))
			return -1;
		long long left = until - http_now_ms();
		if (left <= 0)
			return 0;
		if (left > 100)
			left = 100;
		struct timespec ts = {0, (long)left * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static int setup_attempt(struct blob_client *c, struct blob_conn *cn, const struct blob_call *call,
			 const char *url, struct xfer *x, struct curl_slist **hdrs, char *errbuf, struct err *e)
{
	struct http_request rq = {.what = call->what, .url = url, .allow_http = c->allow_http,
				  .connect_timeout_ms = c->timeout_ms < 10000 ? c->timeout_ms : 10000,
				  /* no limit on a whole transfer: the progress check catches stalls */
				  .timeout_ms = 24L * 3600 * 1000};
	CURL *h = cn->h;
	curl_easy_reset(h); /* keeps the live connection */
	if (http_setup_handle(h, &rq, e) != 0)
		return -1;
	blob_slist_free(*hdrs);
	*hdrs = blob_header_list(c, call->headers);
	/* no "Expect: 100-continue" round trip, and no form Content-Type on a PUT body */
	if (!*hdrs || add_header(hdrs, "Expect:") != 0 || add_header(hdrs, "Content-Type:") != 0)
		return err_set(e, EXIT_INTERNAL, "%s: out of memory", call->what);
	CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(h, opt, val);                                        \
	} while (0)
	SET(CURLOPT_HTTPHEADER, *hdrs);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, x);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, x);
	SET(CURLOPT_XFERINFOFUNCTION, on_progress);
	SET(CURLOPT_XFERINFODATA, x);
	SET(CURLOPT_NOPROGRESS, 0L);
	if (strcmp(call->method, "HEAD") == 0) {
		SET(CURLOPT_NOBODY, 1L); /* Content-Length names the blob's size: no body follows */
	} else if (strcmp(call->method, "GET") != 0) {
		SET(CURLOPT_CUSTOMREQUEST, call->method);
		SET(CURLOPT_POSTFIELDS, call->body ? (const char *)call->body : "");
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
	}
#undef SET
	if (rc != CURLE_OK)
		return err_set(e, EXIT_INTERNAL, "%s: setting up libcurl: %s", call->what, curl_easy_strerror(rc));
	return 0;
}

int blob_call(struct blob_client *c, struct blob_conn *cn, const struct blob_call *call, struct blob_reply *r,
	      struct err *e)
{
	char errbuf[CURL_ERROR_SIZE], why[CURL_ERROR_SIZE + 256], code[128];
	long deadline = call->deadline_ms ? call->deadline_ms : c->deadline_ms;
	long long first_fail = 0;
	struct curl_slist *hdrs = NULL;
	struct xfer x = {.c = c, .call = call, .h = cn->h};
	int ret = -1;
	memset(r, 0, sizeof *r);
	char *url = NULL;
	const char *base = call->url ? call->url : c->url;
	size_t need = strlen(base) + (call->query ? strlen(call->query) : 0) + 2;
	if (!(url = malloc(need)) || !(x.hdr = malloc(MAX_HEADER_BLOCK))) {
		err_set(e, EXIT_INTERNAL, "%s: out of memory", call->what);
		goto out;
	}
	if (call->query)
		snprintf(url, need, "%s%c%s", base, strchr(base, '?') ? '&' : '?', call->query);
	else
		snprintf(url, need, "%s", base);

	int unresolved = 0;
	for (int n = 1;; n++) {
		if ((!call->final && blob_stopping(c)) || (call->cancel && *call->cancel)) {
			err_set(e, EXIT_DEVICE, "%s: interrupted by a signal", call->what);
			goto out;
		}
		if (setup_attempt(c, cn, call, url, &x, &hdrs, errbuf, e) != 0)
			goto out;
		x.hdr_len = 0;
		x.hdr[0] = '\0';
		x.len = x.dropped = 0;
		x.iov = 0;
		x.iov_off = 0;
		x.hdr_long = x.body_long = x.error_long = x.nomem = x.stalled = x.stopped = 0;
		x.last_dl = x.last_ul = 0;
		x.active_ms = http_now_ms();
		errbuf[0] = '\0';
		CURLcode rc = curl_easy_perform(cn->h);
		long status = 0;
		curl_off_t up = 0;
		curl_easy_getinfo(cn->h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(cn->h, CURLINFO_SIZE_UPLOAD_T, &up);
		r->sent += up > 0 ? (uint64_t)up : 0;
		r->attempts = n;
		long long now = http_now_ms();
		log_debug("%s: %s %s -> %s%ld (attempt %d)", call->what, call->method, c->shown,
			  rc == CURLE_OK ? "HTTP " : "error ", rc == CURLE_OK ? status : (long)rc, n);
		if (x.stopped) {
			err_set(e, EXIT_DEVICE, "%s: interrupted by a signal", call->what);
			goto out;
		}
		if (x.nomem) {
			err_set(e, EXIT_INTERNAL, "%s: out of memory", call->what);
			goto out;
		}
		if (x.error_long) {
			err_set(e, EXIT_NETWORK, "%s: HTTP %ld %s with an error body longer than %u KiB (check the "
				"endpoint)", call->what, status, blob_service_error(x.hdr, code, sizeof code),
				BLOB_ERROR_BODY_MAX >> 10);
			goto out;
		}
		if (x.hdr_long || x.body_long) {
			err_set(e, EXIT_NETWORK, "%s: the response's %s longer than %s (check the endpoint)", call->what,
				x.hdr_long ? "header block is" : "body is",
				x.hdr_long ? "16 KiB" : "this tool accepts");
			goto out;
		}
		long retry_after = -1;
		int retry_ok_after_send = 1; /* the request may have reached the service */
		if (x.stalled) {
			snprintf(why, sizeof why, "nothing sent or received for %ld s (--timeout)", c->timeout_ms / 1000);
		} else if (rc != CURLE_OK) {
			http_describe_failure(rc, errbuf, why, sizeof why);
			blob_hide_query(why, sizeof why, c->url);
			if (!http_transient(rc, 0)) {
				err_set(e, EXIT_NETWORK, "%s: %s", call->what, why);
				goto out;
			}
			/* a name that does not resolve will not start to: not until the deadline */
			if (rc == CURLE_COULDNT_RESOLVE_HOST && ++unresolved >= HTTP_RESOLVE_ATTEMPTS) {
				err_set(e, EXIT_NETWORK, "%s: %s; gave up after %d attempts", call->what, why, n);
				goto out;
			}
			retry_ok_after_send = rc != CURLE_COULDNT_CONNECT && rc != CURLE_COULDNT_RESOLVE_HOST;
		} else if (http_transient(CURLE_OK, status)) {
			snprintf(why, sizeof why, "HTTP %ld %s", status, blob_service_error(x.hdr, code, sizeof code));
			retry_after = http_retry_after_ms(x.hdr);
			/* "busy" answers come before any work; a 500 may come after it */
			retry_ok_after_send = status != 503 && status != 429;
		} else {
			r->status = status;
			r->headers = x.hdr;
			r->body = x.body;
			r->len = x.len;
			x.hdr = NULL;
			x.body = NULL;
			ret = 0;
			goto out;
		}
		if (retry_ok_after_send)
			r->ambiguous = 1;
		if (!first_fail)
			first_fail = now;
		long wait = http_backoff_ms(n, retry_after);
		if (now - first_fail + wait > deadline) {
			err_set(e, EXIT_NETWORK, "%s: %s; gave up after %d attempts in %lld ms (check the service and "
				"the network)", call->what, why, n, now - first_fail);
			goto out;
		}
		blob_note_retry(c, call->what, why, wait, deadline - (long)(now - first_fail));
		if (nap(c, wait, call->final, call->cancel) != 0) {
			err_set(e, EXIT_DEVICE, "%s: interrupted by a signal", call->what);
			goto out;
		}
	}
out:
	blob_slist_free(hdrs);
	/* the handle keeps pointers to our list and buffers: unhook them */
	curl_easy_setopt(cn->h, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
	curl_easy_setopt(cn->h, CURLOPT_ERRORBUFFER, (char *)NULL);
	free(url);
	free(x.hdr);
	free(x.body);
	return ret;
}

void blob_reply_free(struct blob_reply *r)
{
	free(r->headers);
	free(r->body);
	r->headers = r->body = NULL;
}

/* --- Get Blob Properties ---------------------------------------------------------------------- */

/* Digits s..end (not empty, no sign) into v; -1 on anything else or overflow. */
static int parse_u64_span(const char *s, const char *end, uint64_t *v)
{
	uint64_t x = 0;
	if (s == end)
		return -1;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned d = (unsigned)(*s - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

static int parse_u64(const char *s, uint64_t *v) { return parse_u64_span(s, s + strlen(s), v); }

/* Copies header name's value into out when it is one of the words allowed (NULL-terminated). */
static void known_word(const char *headers, const char *name, const char *const *allowed, char *out, size_t size)
{
	char v[64];
	out[0] = '\0';
	if (!http_header(headers, name, v, sizeof v))
		return;
	for (const char *const *w = allowed; *w; w++)
		if (strcmp(v, *w) == 0 && strlen(*w) < size) {
			snprintf(out, size, "%s", *w);
			return;
		}
}

int blob_parse_properties(const char *headers, struct blob_info *info, const char *shown, struct err *e)
{
	static const char *const states[] = {"available", "leased", "expired", "breaking", "broken", NULL};
	static const char *const durations[] = {"infinite", "fixed", NULL};
	char v[256];
	memset(info, 0, sizeof *info);
	if (!http_header(headers, "Content-Length", v, sizeof v) || parse_u64(v, &info->size) != 0 ||
	    info->size > (uint64_t)INT64_MAX)
		return err_set(e, EXIT_NETWORK, "reading the blob's properties: %s: no valid Content-Length "
			       "in the response (check the endpoint)", shown);
	if (!http_header(headers, "ETag", info->etag, sizeof info->etag) || !info->etag[0] ||
	    strlen(info->etag) >= sizeof info->etag - 1 || !blob_printable(info->etag))
		return err_set(e, EXIT_NETWORK, "reading the blob's properties: %s: no usable ETag in the "
			       "response (check the endpoint)", shown);
	if (!http_header(headers, "x-ms-blob-type", info->type, sizeof info->type) ||
	    (strcmp(info->type, "PageBlob") != 0 && strcmp(info->type, "BlockBlob") != 0 &&
	     strcmp(info->type, "AppendBlob") != 0))
		return err_set(e, EXIT_NETWORK, "reading the blob's properties: %s: no known x-ms-blob-type in "
			       "the response (is this Azure Blob Storage?)", shown);
	if (strcmp(info->type, "PageBlob") == 0 && info->size % BLOB_PAGE != 0)
		return err_set(e, EXIT_NETWORK, "reading the blob's properties: %s: page blob size %" PRIu64
			       " is not a multiple of 512 (check the endpoint)", shown, info->size);
	known_word(headers, "x-ms-lease-state", states, info->lease_state, sizeof info->lease_state);
	known_word(headers, "x-ms-lease-duration", durations, info->lease_duration, sizeof info->lease_duration);
	return 0;
}

int blob_get_properties(struct blob_client *c, struct blob_conn *cn, struct blob_info *info, struct err *e)
{
	char code[128];
	struct blob_call call = {.what = "Get Blob Properties", .method = "HEAD"};
	struct blob_reply r;
	memset(info, 0, sizeof *info);
	if (blob_call(c, cn, &call, &r, e) != 0)
		return err_wrap(e, "reading the blob's properties: %s", c->shown);
	long st = r.status;
	int ret = 0;
	if (st == 401 || st == 403)
		ret = err_set(e, EXIT_DENIED, "reading the blob's properties: %s: HTTP %ld %s (%s)", c->shown, st,
			      blob_service_error(r.headers, code, sizeof code), blob_auth_hint(c));
	else if (st == 404)
		ret = err_set(e, EXIT_CONFIG, "reading the blob's properties: %s: HTTP 404 %s (check the URL; "
			      "a container without public access also answers 404 to anonymous reads: use "
			      "--private or a SAS URL)", c->shown, blob_service_error(r.headers, code, sizeof code));
	else if (st != 200)
		ret = err_set(e, EXIT_NETWORK, "reading the blob's properties: %s: HTTP %ld %s (after %d "
			      "attempts; check the endpoint)", c->shown, st,
			      blob_service_error(r.headers, code, sizeof code), r.attempts);
	else
		ret = blob_parse_properties(r.headers, info, c->shown, e);
	blob_reply_free(&r);
	return ret;
}

/* --- page lists --------------------------------------------------------------------------------- */

char *blob_pagelist_url(const struct blob_client *c, const char *marker)
{
	char *esc = NULL;
	if (marker && marker[0] && !(esc = curl_easy_escape(NULL, marker, 0)))
		return NULL;
	size_t need = strlen(c->url) + 64 + (esc ? strlen(esc) : 0);
	char *url = malloc(need);
	if (url)
		/* maxresults: the service pages long lists (NextMarker) instead of one huge body */
		snprintf(url, need, "%s%ccomp=pagelist&maxresults=10000%s%s", c->url, strchr(c->url, '?') ? '&' : '?',
			 esc ? "&marker=" : "", esc ? esc : "");
	curl_free(esc);
	return url;
}

int blob_list_segment(struct blob_client *c, struct blob_conn *cn, struct pagelist_walk *w, const char *if_match,
		      const volatile sig_atomic_t *cancel, struct err *e)
{
	char range[80], cond[BLOB_ETAG_MAX + 16], code[128], v[BLOB_ETAG_MAX];
	snprintf(range, sizeof range, "x-ms-range: bytes=%" PRIu64 "-%" PRIu64, w->start, w->end);
	snprintf(cond, sizeof cond, "If-Match: %s", if_match ? if_match : "");
	const char *hdrs[] = {range, if_match ? cond : NULL, NULL};
	while (!w->done) {
		char *url = blob_pagelist_url(c, w->marker);
		if (!url)
			return err_set(e, EXIT_INTERNAL, "Get Page Ranges: out of memory");
		struct blob_call call = {.what = "Get Page Ranges", .method = "GET", .url = url, .headers = hdrs,
					 .max_body = BLOB_PAGELIST_MAX_BODY, .cancel = cancel};
		struct blob_reply r;
		int rc = blob_call(c, cn, &call, &r, e);
		free(url);
		if (rc != 0)
			return -1;
		int ret = 0;
		long st = r.status;
		if (st == 401 || st == 403)
			ret = err_set(e, EXIT_DENIED, "Get Page Ranges: HTTP %ld %s (%s)", st,
				      blob_service_error(r.headers, code, sizeof code), blob_auth_hint(c));
		else if (st == 404)
			ret = err_set(e, EXIT_DEVICE, "Get Page Ranges: HTTP 404 %s (the blob is gone)",
				      blob_service_error(r.headers, code, sizeof code));
		else if (st == 412)
			ret = err_set(e, EXIT_DEVICE, "Get Page Ranges: the blob changed (its ETag is no longer %s)",
				      if_match ? if_match : "(none)");
		else if (st != 200)
			ret = err_set(e, EXIT_NETWORK, "Get Page Ranges: unexpected HTTP %ld %s (check the endpoint)", st,
				      blob_service_error(r.headers, code, sizeof code));
		else if (if_match && (!http_header(r.headers, "ETag", v, sizeof v) || strcmp(v, if_match) != 0))
			ret = err_set(e, EXIT_DEVICE, "Get Page Ranges: the blob changed (ETag %s, expected %s)",
				      http_header(r.headers, "ETag", v, sizeof v) && blob_printable(v) ? v : "(none)",
				      if_match);
		else
			ret = pagelist_walk_take(w, r.body ? r.body : "", r.len, e);
		blob_reply_free(&r);
		if (ret != 0)
			return -1;
	}
	return 0;
}

/* --- reading a range ---------------------------------------------------------------------------- */

int blob_get_range(struct blob_client *c, struct blob_conn *cn, uint64_t offset, const struct iovec *iov, int n,
		   const char *if_match, const char *lease_id, const volatile sig_atomic_t *cancel, uint64_t *received,
		   struct err *e)
{
	char what[96], range[80], cond[BLOB_ETAG_MAX + 16], lease[BLOB_LEASE_ID_MAX + 16], code[128], v[256];
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	snprintf(what, sizeof what, "Get Blob of bytes %" PRIu64 "-%" PRIu64, offset, offset + len - 1);
	if (len == 0)
		return err_set(e, EXIT_INTERNAL, "%s: empty range (a bug)", what);
	snprintf(range, sizeof range, "x-ms-range: bytes=%" PRIu64 "-%" PRIu64, offset, offset + len - 1);
	snprintf(cond, sizeof cond, "If-Match: %s", if_match ? if_match : "");
	snprintf(lease, sizeof lease, "x-ms-lease-id: %s", lease_id ? lease_id : "");
	const char *hdrs[4] = {range};
	int nh = 1;
	if (if_match)
		hdrs[nh++] = cond;
	if (lease_id)
		hdrs[nh++] = lease;
	hdrs[nh] = NULL;
	struct blob_call call = {.what = what, .method = "GET", .headers = hdrs, .max_body = len, .dest = iov,
				 .dest_count = n, .cancel = cancel};
	struct blob_reply r;
	if (blob_call(c, cn, &call, &r, e) != 0)
		return -1;
	if (received)
		*received += r.len;
	int ret = 0;
	long st = r.status;
	uint64_t a, b, total;
	blob_service_error(r.headers, code, sizeof code);
	if (st == 412)
		ret = BLOB_CHANGED;
	else if (st == 404)
		ret = BLOB_NOT_FOUND;
	else if (st == 401 || st == 403)
		ret = err_set(e, EXIT_DENIED, "%s: HTTP %ld %s (%s)", what, st, code, blob_auth_hint(c));
	else if (st != 206)
		ret = err_set(e, EXIT_NETWORK, "%s: unexpected HTTP %ld %s (check the endpoint)", what, st, code);
	else if (!http_header(r.headers, "Content-Range", v, sizeof v) ||
		 blob_parse_content_range(v, &a, &b, &total) != 0 || a != offset || b != offset + len - 1)
		ret = err_set(e, EXIT_NETWORK, "%s: the response's Content-Range is not the range asked for (check "
			      "the endpoint)", what);
	else if (r.len != len)
		ret = err_set(e, EXIT_NETWORK, "%s: %zu body bytes instead of %zu (check the endpoint)", what, r.len,
			      len);
	else if (if_match && (!http_header(r.headers, "ETag", v, sizeof v) || strcmp(v, if_match) != 0))
		ret = BLOB_CHANGED; /* a service that ignored If-Match: never mix versions */
	blob_reply_free(&r);
	return ret;
}


int blob_parse_content_range(const char *v, uint64_t *a, uint64_t *b, uint64_t *total)
{
	if (strncmp(v, "bytes ", 6) != 0)
		return -1;
	const char *p = v + 6, *dash = strchr(p, '-'), *slash = dash ? strchr(dash, '/') : NULL;
	if (!dash || !slash)
		return -1;
	if (parse_u64_span(p, dash, a) != 0 || parse_u64_span(dash + 1, slash, b) != 0 ||
	    parse_u64_span(slash + 1, slash + 1 + strlen(slash + 1), total) != 0)
		return -1;
	return *a <= *b && *b < *total ? 0 : -1;
}

/* --- writing ------------------------------------------------------------------------------------ */

static int is_lease_error(const char *code)
{
	return strncmp(code, "Lease", 5) == 0;
}

/* Reads the metadata value encfsupload of the blob: 0 with it in out (empty when absent), -1. */
static int read_nonce(struct blob_client *c, struct blob_conn *cn, char *out, size_t size, char etag[BLOB_ETAG_MAX],
		      struct err *e)
{
	struct blob_call call = {.what = "Get Blob Properties", .method = "HEAD"};
	struct blob_reply r;
	out[0] = '\0';
	if (blob_call(c, cn, &call, &r, e) != 0)
		return -1;
	int ret = 0;
	if (r.status != 200)
		ret = err_set(e, EXIT_NETWORK, "Get Blob Properties: HTTP %ld", r.status);
	else if (!http_header(r.headers, "ETag", etag, BLOB_ETAG_MAX) || !blob_printable(etag))
		ret = err_set(e, EXIT_NETWORK, "Get Blob Properties: no usable ETag (check the endpoint)");
	else
		http_header(r.headers, "x-ms-meta-encfsupload", out, size);
	blob_reply_free(&r);
	return ret;
}

/* The ETag of a write's response, checked. */
static int reply_etag(const struct blob_reply *r, const char *what, char etag[BLOB_ETAG_MAX], struct err *e)
{
	char v[BLOB_ETAG_MAX];
	if (!http_header(r->headers, "ETag", v, sizeof v) || !v[0] || strlen(v) >= BLOB_ETAG_MAX - 1 ||
	    !blob_printable(v))
		return err_set(e, EXIT_NETWORK, "%s: no usable ETag in the response (check the endpoint)", what);
	if (etag)
		memcpy(etag, v, strlen(v) + 1);
	return 0;
}

int blob_create_page_blob(struct blob_client *c, struct blob_conn *cn, uint64_t size, int if_none_match,
			  const char *lease_id, const char *nonce, char etag[BLOB_ETAG_MAX], struct err *e)
{
	char length[64], lease[BLOB_LEASE_ID_MAX + 16], meta[96], code[128];
	if (size % BLOB_PAGE != 0)
		return err_set(e, EXIT_INTERNAL, "Put Blob: size %" PRIu64 " is not a multiple of 512 (a bug)", size);
	snprintf(length, sizeof length, "x-ms-blob-content-length: %" PRIu64, size);
	snprintf(lease, sizeof lease, "x-ms-lease-id: %s", lease_id ? lease_id : "");
	snprintf(meta, sizeof meta, "x-ms-meta-encfsupload: %s", nonce);
	const char *hdrs[6] = {"x-ms-blob-type: PageBlob", length, meta};
	int n = 3;
	if (if_none_match)
		hdrs[n++] = "If-None-Match: *";
	if (lease_id)
		hdrs[n++] = lease;
	hdrs[n] = NULL;
	struct blob_call call = {.what = "Put Blob", .method = "PUT", .headers = hdrs};
	struct blob_reply r;
	if (blob_call(c, cn, &call, &r, e) != 0)
		return -1;
	int ret = 0;
	long st = r.status;
	blob_service_error(r.headers, code, sizeof code);
	if (st == 201) {
		ret = reply_etag(&r, "Put Blob", etag, e);
	} else if ((st == 409 || st == 412) && is_lease_error(code)) {
		ret = BLOB_LEASED;
	} else if (st == 409 || (st == 412 && if_none_match)) {
		ret = BLOB_EXISTS;
		/* an earlier attempt may have created it: then it carries our nonce */
		char got[96];
		if (r.ambiguous && read_nonce(c, cn, got, sizeof got, etag, e) == 0 && strcmp(got, nonce) == 0)
			ret = 0;
	} else if (st == 401 || st == 403) {
		ret = err_set(e, EXIT_DENIED, "Put Blob: HTTP %ld %s (%s)", st, code, blob_auth_hint(c));
	} else if (st == 404) {
		ret = err_set(e, EXIT_CONFIG, "Put Blob: HTTP 404 %s (check the URL: the container must exist)", code);
	} else {
		ret = err_set(e, EXIT_NETWORK, "Put Blob: unexpected HTTP %ld %s (check the endpoint)", st, code);
	}
	blob_reply_free(&r);
	return ret;
}

int blob_put_page(struct blob_client *c, struct blob_conn *cn, uint64_t offset, const void *data, size_t len,
		  const char *lease_id, const char *if_match, char etag[BLOB_ETAG_MAX], uint64_t *sent,
		  unsigned long *retries, struct err *e)
{
	char what[96], range[80], lease[BLOB_LEASE_ID_MAX + 16], cond[BLOB_ETAG_MAX + 16], code[128];
	snprintf(what, sizeof what, "Put Page of bytes %" PRIu64 "-%" PRIu64, offset, offset + len - 1);
	if (offset % BLOB_PAGE || len % BLOB_PAGE || len == 0 || len > BLOB_MAX_PUT_PAGE)
		return err_set(e, EXIT_INTERNAL, "%s: not whole pages of at most 4 MiB (a bug)", what);
	snprintf(range, sizeof range, "x-ms-range: bytes=%" PRIu64 "-%" PRIu64, offset, offset + len - 1);
	snprintf(lease, sizeof lease, "x-ms-lease-id: %s", lease_id ? lease_id : "");
	snprintf(cond, sizeof cond, "If-Match: %s", if_match ? if_match : "");
	const char *hdrs[5] = {"x-ms-page-write: update", range};
	int n = 2;
	if (lease_id)
		hdrs[n++] = lease;
	if (if_match)
		hdrs[n++] = cond;
	hdrs[n] = NULL;
	struct blob_call call = {.what = what, .method = "PUT", .query = "comp=page", .headers = hdrs, .body = data,
				 .body_len = len};
	struct blob_reply r;
	int rc = blob_call(c, cn, &call, &r, e);
	if (sent)
		*sent += r.sent;
	if (retries && r.attempts > 1)
		*retries += (unsigned long)r.attempts - 1;
	if (rc != 0)
		return -1;
	int ret = 0;
	long st = r.status;
	blob_service_error(r.headers, code, sizeof code);
	if (st == 201)
		ret = reply_etag(&r, what, etag, e);
	else if (st == 401 || st == 403)
		ret = err_set(e, EXIT_DENIED, "%s: HTTP %ld %s (%s)", what, st, code, blob_auth_hint(c));
	else if (st == 404)
		ret = err_set(e, EXIT_DEVICE, "%s: HTTP 404 %s (the blob was deleted)", what, code);
	else if ((st == 409 || st == 412) && is_lease_error(code))
		ret = err_set(e, EXIT_DEVICE, "%s: HTTP %ld %s (our lease on the blob is lost: another writer may "
			      "hold it now)", what, st, code);
	else if (st == 412)
		ret = err_set(e, EXIT_DEVICE, "%s: HTTP 412 %s (the blob changed: its ETag is no longer %s)", what, code,
			      if_match ? if_match : "(none)");
	else
		ret = err_set(e, EXIT_NETWORK, "%s: unexpected HTTP %ld %s (check the endpoint)", what, st, code);
	blob_reply_free(&r);
	return ret;
}

/* --- leases ------------------------------------------------------------------------------------- */

void blob_new_lease_id(char id[BLOB_LEASE_ID_MAX])
{
	unsigned char b[16];
	randombytes_buf(b, sizeof b);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(id, BLOB_LEASE_ID_MAX,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
		 b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static int lease_call(struct blob_client *c, struct blob_conn *cn, const char *what, const char *const *hdrs,
		      int final, long deadline_ms, struct blob_reply *r, struct err *e)
{
	struct blob_call call = {.what = what, .method = "PUT", .query = "comp=lease", .headers = hdrs,
				 .final = final, .deadline_ms = deadline_ms};
	return blob_call(c, cn, &call, r, e);
}

int blob_lease_acquire(struct blob_client *c, struct blob_conn *cn, int duration_s, const char *lease_id,
		       const char *if_match, struct err *e)
{
	char dur[48], prop[BLOB_LEASE_ID_MAX + 32], cond[BLOB_ETAG_MAX + 16], code[128], v[BLOB_LEASE_ID_MAX + 8];
	snprintf(dur, sizeof dur, "x-ms-lease-duration: %d", duration_s);
	snprintf(prop, sizeof prop, "x-ms-proposed-lease-id: %s", lease_id);
	snprintf(cond, sizeof cond, "If-Match: %s", if_match ? if_match : "");
	const char *hdrs[] = {"x-ms-lease-action: acquire", dur, prop, if_match ? cond : NULL, NULL};
	struct blob_reply r;
	if (lease_call(c, cn, "Lease Blob (acquire)", hdrs, 0, 0, &r, e) != 0)
		return -1;
	int ret = 0;
	long st = r.status;
	blob_service_error(r.headers, code, sizeof code);
	if (st == 201 || st == 200) {
		/* the service takes the id we proposed: an acquire retried after a lost answer finds it ours */
		if (!http_header(r.headers, "x-ms-lease-id", v, sizeof v) || strcasecmp(v, lease_id) != 0)
			ret = err_set(e, EXIT_NETWORK, "Lease Blob (acquire): the response does not name the lease id "
				      "we proposed (check the endpoint)");
	} else if (st == 409) {
		ret = BLOB_LEASED;
	} else if (st == 404) {
		ret = BLOB_NOT_FOUND;
	} else if (st == 412) {
		ret = BLOB_CHANGED;
	} else if (st == 401 || st == 403) {
		ret = err_set(e, EXIT_DENIED, "Lease Blob (acquire): HTTP %ld %s (%s)", st, code, blob_auth_hint(c));
	} else {
		ret = err_set(e, EXIT_NETWORK, "Lease Blob (acquire): unexpected HTTP %ld %s (check the endpoint)", st,
			      code);
	}
	blob_reply_free(&r);
	return ret;
}

int blob_lease_renew(struct blob_client *c, struct blob_conn *cn, const char *lease_id, long deadline_ms,
		     struct err *e)
{
	char id[BLOB_LEASE_ID_MAX + 16], code[128];
	snprintf(id, sizeof id, "x-ms-lease-id: %s", lease_id);
	const char *hdrs[] = {"x-ms-lease-action: renew", id, NULL};
	struct blob_reply r;
	if (lease_call(c, cn, "Lease Blob (renew)", hdrs, 0, deadline_ms, &r, e) != 0)
		return -1;
	int ret = 0;
	long st = r.status;
	blob_service_error(r.headers, code, sizeof code);
	if (st == 200)
		ret = 0;
	else if (st == 409 || st == 412 || st == 404) {
		err_set(e, EXIT_DEVICE, "Lease Blob (renew): HTTP %ld %s (our lease on the blob is lost)", st, code);
		ret = BLOB_LEASED;
	}
	else if (st == 401 || st == 403)
		ret = err_set(e, EXIT_DENIED, "Lease Blob (renew): HTTP %ld %s (%s)", st, code, blob_auth_hint(c));
	else
		ret = err_set(e, EXIT_NETWORK, "Lease Blob (renew): unexpected HTTP %ld %s (check the endpoint)", st,
			      code);
	blob_reply_free(&r);
	return ret;
}

int blob_lease_release(struct blob_client *c, struct blob_conn *cn, const char *lease_id, struct err *e)
{
	char id[BLOB_LEASE_ID_MAX + 16], code[128];
	snprintf(id, sizeof id, "x-ms-lease-id: %s", lease_id);
	const char *hdrs[] = {"x-ms-lease-action: release", id, NULL};
	struct blob_reply r;
	if (lease_call(c, cn, "Lease Blob (release)", hdrs, 1,
		       c->deadline_ms > RELEASE_DEADLINE_MS ? RELEASE_DEADLINE_MS : 0, &r, e) != 0)
		return -1;
	int ret = 0;
	long st = r.status;
	blob_service_error(r.headers, code, sizeof code);
	/* a retried release may find the lease already released by its first attempt */
	if (st != 200 && !(st == 409 && r.ambiguous))
		ret = err_set(e, st == 401 || st == 403 ? EXIT_DENIED : EXIT_DEVICE,
			      "Lease Blob (release): HTTP %ld %s", st, code);
	blob_reply_free(&r);
	return ret;
}
