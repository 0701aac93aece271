/* HTTP over libcurl: TLS always verified, bounded, retried within a deadline, redacted. */
#include "http.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *ca_bundle_override;
static long deadline_override_ms;

void http_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		die(EXIT_INTERNAL, "starting libcurl: curl_global_init failed");
}

void http_set_ca_bundle(const char *path) { ca_bundle_override = path; }

const char *http_ca_bundle(void)
{
	if (ca_bundle_override)
		return ca_bundle_override;
	const char *env = getenv("ENCFS_CA_BUNDLE");
	return env && *env ? env : NULL;
}

void http_set_deadline_ms(long ms) { deadline_override_ms = ms > 0 ? ms : 0; }
long http_deadline_ms(void) { return deadline_override_ms; }

long long http_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void http_url_for_log(const char *url, char *out, size_t size)
{
	size_t n = strcspn(url, "?#");
	snprintf(out, size, "%.*s%s", (int)n, url, url[n] == '?' ? "?<query hidden>" : "");
}

void http_hostport(const char *url, char *out, size_t size)
{
	snprintf(out, size, "(no host)");
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL;
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
		snprintf(out, size, "%s:%s", host, port);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
}

void http_warn_retrying(const char *what, const char *hostport, const char *why, long remaining_ms)
{
	char until[32] = "?";
	time_t when = time(NULL) + (remaining_ms + 999) / 1000;
	struct tm tm;
	if (gmtime_r(&when, &tm))
		strftime(until, sizeof until, "%H:%M:%S UTC", &tm);
	log_warn("%s: %s: %s; retrying until %s (%ld s more; --deadline sets how long)", what, hostport,
		 why, until, (remaining_ms + 999) / 1000);
}

/* --- response collection ------------------------------------------------------------------ */

struct collect {
	struct secbuf *body;
	size_t max;
	int too_big;
	struct strbuf_hdr {
		char *data;
		size_t len;
	} hdr;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct collect *c = arg;
	size_t n = size * nmemb;
	struct secbuf *b = c->body;
	if (n > c->max - b->len) {
		c->too_big = 1;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (b->len + n > b->cap) {
		size_t ncap = b->cap ? b->cap : 4096;
		while (ncap < b->len + n)
			ncap *= 2;
		if (ncap > c->max)
			ncap = c->max;
		struct secbuf nb;
		if (secbuf_alloc(&nb, ncap) != 0)
			return 0;
		if (b->data)
			memcpy(nb.data, b->data, b->len);
		nb.len = b->len;
		secbuf_free(b);
		*b = nb;
	}
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

#define MAX_HEADER_BLOCK (64u << 10)

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct collect *c = arg;
	size_t n = size * nmemb;
	/* a new status line (after a 100 Continue or a retry) starts a new block */
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
		c->hdr.len = 0;
	if (c->hdr.len + n + 1 > MAX_HEADER_BLOCK)
		return 0;
	if (!c->hdr.data) {
		c->hdr.data = malloc(MAX_HEADER_BLOCK);
		if (!c->hdr.data)
			return 0;
	}
	memcpy(c->hdr.data + c->hdr.len, data, n);
	c->hdr.len += n;
	c->hdr.data[c->hdr.len] = '\0';
	return n;
}

const char *http_header(const char *headers, const char *name, char *buf, size_t size)
{
	size_t nlen = strlen(name);
	for (const char *line = headers; line && *line;) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		if (len > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1, *end = line + len;
			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
				end--;
			snprintf(buf, size, "%.*s", (int)(end - v), v);
			return buf;
		}
		line = eol ? eol + 1 : NULL;
	}
	return NULL;
}

/* --- retry policy ------------------------------------------------------------------------- */

int http_transient(CURLcode rc, long status)
{
	switch (rc) {
	case CURLE_OK:
		return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

long http_backoff_ms(int attempt, long retry_after_ms)
{
	long cap = 8000, base = 250;
	for (int i = 1; i < attempt && base < cap; i++)
		base *= 2;
	if (base > cap)
		base = cap;
	/* full jitter between half and all of the step: retries from many containers spread out */
	long delay = base / 2 + (long)randombytes_uniform((uint32_t)(base / 2 + 1));
	return retry_after_ms > delay ? retry_after_ms : delay;
}

long http_retry_after_ms(const char *headers)
{
	char v[128];
	if (!http_header(headers, "Retry-After", v, sizeof v))
		return -1;
	char *end;
	errno = 0;
	long s = strtol(v, &end, 10);
	if (end != v && *end == '\0' && errno == 0 && s >= 0)
		return s > 3600 ? 3600000 : s * 1000;
	time_t when = curl_getdate(v, NULL);
	if (when < 0)
		return -1;
	time_t now = time(NULL);
	if (when <= now)
		return 0;
	/* capped like delta-seconds: a date far ahead would overflow the product */
	return when - now > 3600 ? 3600000 : (long)(when - now) * 1000;
}

void http_describe_failure(CURLcode rc, const char *errbuf, char *out, size_t size)
{
	const char *detail = errbuf && *errbuf ? errbuf : curl_easy_strerror(rc);
	const char *hint;
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		hint = "check the server certificate and host name, or the trust anchors in "
		       "ENCFS_CA_BUNDLE / --cacert";
		break;
	case CURLE_SSL_CONNECT_ERROR:
		hint = "TLS handshake failed: check that the endpoint speaks https";
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
		hint = "check the host name and DNS";
		break;
	case CURLE_COULDNT_CONNECT:
		hint = "check the endpoint address and that the service is up";
		break;
	case CURLE_OPERATION_TIMEDOUT:
		hint = "the service did not answer in time";
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
		hint = "only https:// is allowed here";
		break;
	default:
		hint = "check the endpoint and the network";
	}
	snprintf(out, size, "%s (%s)", detail, hint);
}

int http_setup_handle(CURL *h, const struct http_request *rq, struct err *e)
{
	const char *ca = http_ca_bundle();
	CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(h, opt, val);                                        \
	} while (0)
	SET(CURLOPT_URL, rq->url);
	SET(CURLOPT_PROTOCOLS_STR, rq->allow_http ? "http,https" : "https");
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (ca) {
		SET(CURLOPT_CAINFO, ca);
		SET(CURLOPT_CAPATH, (char *)NULL);
	}
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms : 10000L);
	SET(CURLOPT_TIMEOUT_MS, rq->timeout_ms > 0 ? rq->timeout_ms : 60000L);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_USERAGENT, "encfs/1.0");
#undef SET
	if (rc != CURLE_OK)
		return err_set(e, EXIT_INTERNAL, "%s: setting up libcurl: %s", rq->what,
			       curl_easy_strerror(rc));
	return 0;
}

/* --- the request -------------------------------------------------------------------------- */

static int attempt(const struct http_request *rq, struct http_response *rs, struct collect *c,
		   long left_ms, CURLcode *rc_out, char *errbuf, struct err *e)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	int ret = -1;
	if (!h)
		return err_set(e, EXIT_INTERNAL, "%s: out of memory", rq->what);
	if (http_setup_handle(h, rq, e) != 0)
		goto out;
	/* an attempt does not outlast the deadline (a short --deadline is kept also when the service
	 * hangs); at least a second, so that a nearly spent deadline still gets an answer */
	if (left_ms > 0) {
		long cap = left_ms < 1000 ? 1000 : left_ms;
		long timeout = rq->timeout_ms > 0 ? rq->timeout_ms : 60000L;
		long connect = rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms : 10000L;
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout < cap ? timeout : cap);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect < cap ? connect : cap);
	}
	for (const char *const *p = rq->headers; p && *p; p++) {
		struct curl_slist *n = curl_slist_append(hdrs, *p);
		if (!n) {
			err_set(e, EXIT_INTERNAL, "%s: out of memory", rq->what);
			goto out;
		}
		hdrs = n;
	}
	/* no "Expect: 100-continue" round trip for our small bodies */
	struct curl_slist *n = curl_slist_append(hdrs, "Expect:");
	if (!n) {
		err_set(e, EXIT_INTERNAL, "%s: out of memory", rq->what);
		goto out;
	}
	hdrs = n;
	const char *method = rq->method ? rq->method : "GET";
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L); /* no body: the size cap must not judge
							      Content-Length, which names the blob */
	} else {
		curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max);
		if (strcmp(method, "GET") != 0) {
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? (const char *)rq->body : "");
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
		}
	}
	errbuf[0] = '\0';
	*rc_out = curl_easy_perform(h);
	rs->status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rs->status);
	ret = 0;
out:
	/* the list holds copies of our headers, Authorization among them: wipe before freeing */
	for (struct curl_slist *l = hdrs; l; l = l->next)
		wipe(l->data, strlen(l->data));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return ret;
}

int http_do(const struct http_request *rq, struct http_response *rs, struct err *e)
{
	char url[512], where[300], errbuf[CURL_ERROR_SIZE];
	long deadline = rq->deadline_ms ? rq->deadline_ms : HTTP_DEFAULT_DEADLINE_MS;
	if (deadline_override_ms && (rq->deadline_ms == 0 || deadline > deadline_override_ms))
		deadline = deadline_override_ms;
	long long start = http_now_ms();
	http_url_for_log(rq->url, url, sizeof url);
	http_hostport(rq->url, where, sizeof where);
	memset(rs, 0, sizeof *rs);

	for (int n = 1;; n++) {
		struct collect c = {.body = &rs->body,
				    .max = rq->max_response ? rq->max_response : HTTP_DEFAULT_MAX_RESPONSE};
		CURLcode rc = CURLE_OK;
		secbuf_free(&rs->body);
		rs->attempts = n;
		long left = deadline < 0 ? 0 : deadline - (long)(http_now_ms() - start);
		if (attempt(rq, rs, &c, left, &rc, errbuf, e) != 0) {
			free(c.hdr.data);
			http_response_free(rs); /* the headers of an earlier attempt */
			return -1;
		}
		free(rs->headers);
		rs->headers = c.hdr.data;
		long long elapsed = http_now_ms() - start;
		log_debug("%s: %s %s -> %s%ld (attempt %d, %lld ms)", rq->what,
			  rq->method ? rq->method : "GET", url, rc == CURLE_OK ? "HTTP " : "error ",
			  rc == CURLE_OK ? rs->status : (long)rc, n, elapsed);
		if (c.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
			http_response_free(rs);
			return err_set(e, EXIT_NETWORK,
				       "%s: response from %s is larger than %zu bytes (refusing to read more; "
				       "check the endpoint)", rq->what, url, c.max);
		}
		if (rc == CURLE_OK && !rs->body.data && secbuf_alloc(&rs->body, 0) != 0) {
			http_response_free(rs);
			return err_set(e, EXIT_INTERNAL, "%s: out of memory", rq->what);
		}
		char why[CURL_ERROR_SIZE + 256];
		if (rc != CURLE_OK)
			http_describe_failure(rc, errbuf, why, sizeof why);
		else
			snprintf(why, sizeof why, "HTTP %ld", rs->status);
		if (!http_transient(rc, rc == CURLE_OK ? rs->status : 0)) {
			if (rc == CURLE_OK)
				return 0;
			http_response_free(rs);
			return err_set(e, EXIT_NETWORK, "%s: %s: %s", rq->what, where, why);
		}
		long wait = http_backoff_ms(n, rc == CURLE_OK ? http_retry_after_ms(rs->headers) : -1);
		int unresolved = rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY;
		if (deadline < 0 || elapsed + wait > deadline || (unresolved && n >= HTTP_RESOLVE_ATTEMPTS)) {
			if (rc == CURLE_OK) /* the caller reports the service's own error */
				return 0;
			http_response_free(rs);
			return err_set(e, EXIT_NETWORK, "%s: %s: %s; gave up after %d attempts in %lld ms",
				       rq->what, where, why, n, elapsed);
		}
		if (n == 1 && unresolved)
			log_warn("%s: %s: %s; trying once more (a name that does not resolve is tried %d "
				 "times)", rq->what, where, why, HTTP_RESOLVE_ATTEMPTS);
		else if (n == 1)
			http_warn_retrying(rq->what, where, why, deadline - (long)elapsed);
		else
			log_info("%s: %s: %s, retrying in %ld ms", rq->what, where, why, wait);
		struct timespec ts = {wait / 1000, (wait % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
}

void http_response_free(struct http_response *rs)
{
	secbuf_free(&rs->body);
	free(rs->headers);
	rs->headers = NULL;
}
