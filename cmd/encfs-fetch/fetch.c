/* The download engine: one curl multi handle driving up to `jobs` ranged GETs and one Get Page
 * Ranges request at a time, each retried on its own. */
#include "fetch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "io.h"
#include "pagelist.h"
#include "secmem.h"

#define MAX_HEADER_BLOCK (16u << 10)
#define MAX_RANGES_PER_SEGMENT (FETCH_SEGMENT_SIZE / (2 * PAGE_SIZE_BYTES) + 1)
/* Get Page Ranges responses for one segment: a well-behaved service needs a few (maxresults is
 * 10000 ranges, a segment holds at most 524288); a hostile one could send markers forever */
#define MAX_PAGELIST_PAGES 1024

/* --- small helpers ------------------------------------------------------------------------ */

static int parse_u64(const char *s, const char *end, uint64_t *v)
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

int fetch_parse_content_range(const char *v, uint64_t *a, uint64_t *b, uint64_t *total)
{
	if (strncmp(v, "bytes ", 6) != 0)
		return -1;
	const char *p = v + 6, *dash = strchr(p, '-'), *slash = dash ? strchr(dash, '/') : NULL;
	if (!dash || !slash)
		return -1;
	if (parse_u64(p, dash, a) != 0 || parse_u64(dash + 1, slash, b) != 0 ||
	    parse_u64(slash + 1, slash + 1 + strlen(slash + 1), total) != 0)
		return -1;
	return *a <= *b && *b < *total ? 0 : -1;
}

void fetch_hide_query(char *msg, size_t size, const char *url)
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

int fetch_check_url(const char *url, int allow_http, struct err *e)
{
	char shown[512];
	http_url_for_log(url, shown, sizeof shown);
	CURLU *u = curl_url();
	if (!u)
		return err_set(e, EXIT_INTERNAL, "checking the URL: out of memory");
	char *scheme = NULL, *host = NULL, *path = NULL, *fragment = NULL;
	int ret = 0;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		ret = err_set(e, EXIT_USAGE, "bad URL %s: not an absolute http(s) URL "
			      "(give https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB)", shown);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) == CURLUE_OK) {
		ret = err_set(e, EXIT_USAGE, "bad URL %s: it has a #fragment (remove it)", shown);
		goto out;
	}
	if (strcmp(scheme, "https") != 0 && !(allow_http && strcmp(scheme, "http") == 0)) {
		ret = err_set(e, EXIT_USAGE, "bad URL %s: only https:// is allowed%s", shown,
			      strcmp(scheme, "http") == 0 ? " (--allow-http permits http:// for tests)" : "");
		goto out;
	}
	/* /container/blob at least: a blob name may hold further slashes */
	const char *p = path[0] == '/' ? path + 1 : path, *slash = strchr(p, '/');
	if (!slash || slash == p || slash[1] == '\0') {
		ret = err_set(e, EXIT_USAGE, "bad URL %s: no /CONTAINER/BLOB path", shown);
		goto out;
	}
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(path);
	curl_free(fragment);
	curl_url_cleanup(u);
	return ret;
}

/* What the service said in its error: x-ms-error-code, or nothing. */
static const char *service_error(const char *headers, char *buf, size_t size)
{
	if (headers && http_header(headers, "x-ms-error-code", buf, size))
		return buf;
	snprintf(buf, size, "no error code");
	return buf;
}

/* Header lists may hold the bearer token: wipe the copies libcurl made before freeing them. */
static void slist_free_wiped(struct curl_slist *l)
{
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

/* The headers every request to the blob carries.  range may be NULL. */
static struct curl_slist *blob_headers(const struct fetch_config *cfg, const char *etag, const char *range)
{
	struct curl_slist *l = NULL;
	char line[200];
	if (add_header(&l, "x-ms-version: " FETCH_API_VERSION) != 0)
		goto oom;
	if (range) {
		snprintf(line, sizeof line, "x-ms-range: %s", range);
		if (add_header(&l, line) != 0)
			goto oom;
	}
	if (etag) {
		snprintf(line, sizeof line, "If-Match: %s", etag);
		if (add_header(&l, line) != 0)
			goto oom;
	}
	if (cfg->auth && add_header(&l, cfg->auth) != 0)
		goto oom;
	return l;
oom:
	slist_free_wiped(l);
	return NULL;
}

static const char *auth_hint(const struct fetch_config *cfg)
{
	if (cfg->auth)
		return "check that the identity has the Storage Blob Data Reader role on the container";
	if (strchr(cfg->url, '?'))
		return "check the SAS token: read permission, start and expiry times, signature";
	return "the blob is not public: use --private (managed identity) or a SAS URL";
}

/* --- Get Blob Properties ------------------------------------------------------------------ */

/* Visible ASCII and spaces only: the ETag goes into a header line and into messages, where a
 * control character could end the line or drive the terminal. */
static int printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return 0;
	return 1;
}

int blob_get_info(const struct fetch_config *cfg, struct blob_info *info, struct err *e)
{
	char shown[512], code[128], v[256];
	http_url_for_log(cfg->url, shown, sizeof shown);
	const char *hdrs[4] = {"x-ms-version: " FETCH_API_VERSION, cfg->auth, NULL, NULL};
	struct http_request rq = {.what = "Get Blob Properties", .method = "HEAD", .url = cfg->url,
				  .headers = hdrs, .allow_http = cfg->allow_http,
				  /* HEAD has no body, but libcurl checks Content-Length (the blob's size)
				   * against the response cap: lift it */
				  .max_response = (size_t)INT64_MAX,
				  .connect_timeout_ms = cfg->timeout_ms < 10000 ? cfg->timeout_ms : 10000,
				  .timeout_ms = cfg->timeout_ms, .deadline_ms = cfg->deadline_ms};
	struct http_response rs;
	memset(info, 0, sizeof *info);
	if (http_do(&rq, &rs, e) != 0)
		return err_wrap(e, "reading the blob's properties");
	long st = rs.status;
	int ret = 0;
	if (st == 401 || st == 403) {
		ret = err_set(e, EXIT_DENIED, "reading the blob's properties: %s: HTTP %ld %s (%s)", shown, st,
			      service_error(rs.headers, code, sizeof code), auth_hint(cfg));
	} else if (st == 404) {
		ret = err_set(e, EXIT_CONFIG, "reading the blob's properties: %s: HTTP 404 %s (check the URL; "
			      "a container without public access also answers 404 to anonymous reads: use "
			      "--private or a SAS URL)", shown, service_error(rs.headers, code, sizeof code));
	} else if (st != 200) {
		ret = err_set(e, EXIT_NETWORK, "reading the blob's properties: %s: HTTP %ld %s (after %d "
			      "attempts; check the endpoint)", shown, st,
			      service_error(rs.headers, code, sizeof code), rs.attempts);
	} else if (!http_header(rs.headers, "Content-Length", v, sizeof v) ||
		   parse_u64(v, v + strlen(v), &info->size) != 0 || info->size > (uint64_t)INT64_MAX) {
		ret = err_set(e, EXIT_NETWORK, "reading the blob's properties: %s: no valid Content-Length "
			      "in the response (check the endpoint)", shown);
	} else if (!http_header(rs.headers, "ETag", info->etag, sizeof info->etag) || !info->etag[0] ||
		   strlen(info->etag) >= sizeof info->etag - 1 || !printable(info->etag)) {
		ret = err_set(e, EXIT_NETWORK, "reading the blob's properties: %s: no usable ETag in the "
			      "response (check the endpoint)", shown);
	} else if (!http_header(rs.headers, "x-ms-blob-type", info->type, sizeof info->type) ||
		   (strcmp(info->type, "PageBlob") != 0 && strcmp(info->type, "BlockBlob") != 0 &&
		    strcmp(info->type, "AppendBlob") != 0)) {
		ret = err_set(e, EXIT_NETWORK, "reading the blob's properties: %s: no known x-ms-blob-type in "
			      "the response (is this Azure Blob Storage?)", shown);
	} else if (strcmp(info->type, "PageBlob") == 0 && info->size % PAGE_SIZE_BYTES != 0) {
		ret = err_set(e, EXIT_NETWORK, "reading the blob's properties: %s: page blob size %" PRIu64
			      " is not a multiple of 512 (check the endpoint)", shown, info->size);
	}
	http_response_free(&rs);
	return ret;
}

/* --- the engine --------------------------------------------------------------------------- */

enum slot_state { SLOT_FREE, SLOT_WAIT, SLOT_RUNNING, SLOT_DONE };
enum seg_state { SEG_EMPTY, SEG_LISTING, SEG_READY };

struct engine;

/* One request and its body: a range of the blob, or the page list of a segment. */
struct slot {
	enum slot_state state;
	int is_pagelist;
	uint64_t start, end; /* bytes asked for (pagelist: the segment) */
	uint64_t seq;        /* order handed out, for streaming */
	uint64_t done;       /* bytes of the range received and stored, over all attempts */
	uint64_t done_before; /* done when this attempt started: more is progress */
	int checked;         /* this attempt's response headers were checked */
	enum { BAD_NONE, BAD_ETAG, BAD_RANGE, BAD_STATUS, BAD_WRITE, BAD_LONG, BAD_HEADER, BAD_NOMEM } bad;
	int write_errno;
	unsigned char *buf;  /* streaming: the range; page list: the response body */
	size_t cap, len;
	unsigned char *wbuf; /* file: checked bytes not yet written, the last wlen of done */
	size_t wlen;
	char *hdr;
	size_t hdr_len;
	int attempts;
	long long first_fail_ms, not_before_ms;
	long long active_ms; /* when the running request last received something */
	CURL *h;
	struct curl_slist *hdrs;
	char *url; /* pagelist requests only */
	char errbuf[CURL_ERROR_SIZE];
	struct engine *eng;
};

struct segment {
	enum seg_state state;
	uint64_t start, end;
	struct range_list ranges;
	size_t idx;   /* next range to hand out */
	uint64_t off; /* next byte of ranges.v[idx] to hand out */
	unsigned pages; /* Get Page Ranges responses taken for it */
	char marker[PAGELIST_MAX_MARKER];
};

struct engine {
	const struct fetch_config *cfg;
	const struct blob_info *info;
	int fd, stream;
	const char *out_name;
	struct fetch_stats *stats;
	struct err *e;
	char shown[512];
	CURLM *m;
	struct slot *slots;
	int nslots, running;
	struct slot pl; /* the page list request */
	struct segment seg[2]; /* segment k lives in seg[k % 2] */
	uint64_t nsegs, cur_seg, list_next;
	uint64_t seq_next, seq_flush;
	uint64_t written; /* stream: bytes written to fd so far */
	uint64_t position; /* where the hand-out has got to, for progress */
	uint64_t range_size;
	long long started_ms, progress_ms;
	int progress_shown;
};

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct slot *s = arg;
	size_t n = size * nmemb;
	s->active_ms = http_now_ms();
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
		s->hdr_len = 0;
	if (!s->hdr) {
		s->hdr = malloc(MAX_HEADER_BLOCK);
		if (!s->hdr) {
			s->bad = BAD_NOMEM;
			return 0;
		}
	}
	if (n >= MAX_HEADER_BLOCK - s->hdr_len) {
		s->bad = BAD_HEADER; /* a header block this big is not Blob Storage */
		return 0;
	}
	memcpy(s->hdr + s->hdr_len, data, n);
	s->hdr_len += n;
	s->hdr[s->hdr_len] = '\0';
	return n;
}

/* Checks a ranged GET's response before its first byte is stored: 206, the range asked for,
 * the pinned ETag. */
static int check_range_response(struct slot *s, long status)
{
	char v[160];
	uint64_t a, b, total;
	if (status != 206)
		return BAD_STATUS;
	if (!http_header(s->hdr, "ETag", v, sizeof v) || strcmp(v, s->eng->info->etag) != 0)
		return BAD_ETAG;
	if (!http_header(s->hdr, "Content-Range", v, sizeof v) || fetch_parse_content_range(v, &a, &b, &total) != 0 ||
	    a != s->start + s->done || b != s->end || total != s->eng->info->size)
		return BAD_RANGE;
	return BAD_NONE;
}

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	const unsigned char *p = buf;
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* File mode: writes the bytes a range has buffered.  libcurl hands bodies over in 16 KiB pieces;
 * one pwrite per piece would cost 64 system calls a MiB. */
static int flush_slot(struct engine *g, struct slot *s)
{
	if (s->wlen == 0)
		return 0;
	if (pwrite_all(g->fd, s->wbuf, s->wlen, s->start + s->done - s->wlen) != 0) {
		s->write_errno = errno;
		return -1;
	}
	s->wlen = 0;
	return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct slot *s = arg;
	struct engine *g = s->eng;
	size_t n = size * nmemb;
	long status = 0;
	curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
	g->stats->body_bytes += n;
	s->active_ms = http_now_ms();
	if (status / 100 != 2)
		return n; /* an error body: x-ms-error-code says what we need */
	if (s->is_pagelist) {
		if (n > s->cap - s->len) {
			size_t ncap = s->cap ? s->cap : 64u << 10;
			while (ncap - s->len < n && ncap < FETCH_PAGELIST_MAX_BODY)
				ncap *= 2;
			if (ncap > FETCH_PAGELIST_MAX_BODY)
				ncap = FETCH_PAGELIST_MAX_BODY;
			if (n > ncap - s->len) {
				s->bad = BAD_LONG;
				return 0;
			}
			unsigned char *nb = realloc(s->buf, ncap);
			if (!nb) {
				s->bad = BAD_NOMEM;
				return 0;
			}
			s->buf = nb;
			s->cap = ncap;
		}
		memcpy(s->buf + s->len, data, n);
		s->len += n;
		return n;
	}
	/* a range: nothing is stored before the response is known to be the part asked for */
	if (!s->checked) {
		s->checked = 1;
		if ((s->bad = check_range_response(s, status)) != BAD_NONE)
			return 0;
	}
	if (n > s->end - s->start + 1 - s->done) {
		s->bad = BAD_LONG;
		return 0;
	}
	if (g->stream) {
		memcpy(s->buf + s->done, data, n);
	} else {
		if (n > FETCH_WRITE_BUFFER - s->wlen && flush_slot(g, s) != 0) {
			s->bad = BAD_WRITE;
			return 0;
		}
		if (n > FETCH_WRITE_BUFFER) { /* bigger than the buffer (never, with libcurl): direct */
			if (pwrite_all(g->fd, data, n, s->start + s->done) != 0) {
				s->bad = BAD_WRITE;
				s->write_errno = errno;
				return 0;
			}
		} else {
			memcpy(s->wbuf + s->wlen, data, n);
			s->wlen += n;
		}
	}
	s->done += n;
	return n;
}

static int oom(struct engine *g) { return err_set(g->e, EXIT_INTERNAL, "downloading: out of memory"); }

/* Sets up and adds the slot's request to the multi handle. */
static int start_request(struct engine *g, struct slot *s)
{
	const struct fetch_config *cfg = g->cfg;
	char range[80];
	/* a range cut short before asks for what is missing */
	snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, s->start + (s->is_pagelist ? 0 : s->done),
		 s->end);
	struct http_request rq = {.what = s->is_pagelist ? "Get Page Ranges" : "ranged GET",
				  .url = s->is_pagelist ? s->url : cfg->url, .allow_http = cfg->allow_http,
				  .connect_timeout_ms = cfg->timeout_ms < 10000 ? cfg->timeout_ms : 10000,
				  /* no limit on a whole transfer: the stall timeout below catches hangs */
				  .timeout_ms = 24L * 3600 * 1000};
	curl_easy_reset(s->h);
	if (http_setup_handle(s->h, &rq, g->e) != 0)
		return -1;
	slist_free_wiped(s->hdrs);
	s->hdrs = blob_headers(cfg, g->info->etag, range);
	if (!s->hdrs)
		return oom(g);
	CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(s->h, opt, val);                                     \
	} while (0)
	SET(CURLOPT_HTTPHEADER, s->hdrs);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, s);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, s);
	SET(CURLOPT_ERRORBUFFER, s->errbuf);
	SET(CURLOPT_PRIVATE, s);
	SET(CURLOPT_BUFFERSIZE, 256L << 10);
#undef SET
	if (rc != CURLE_OK)
		return err_set(g->e, EXIT_INTERNAL, "downloading: setting up libcurl: %s", curl_easy_strerror(rc));
	s->errbuf[0] = '\0';
	s->len = 0;
	s->done_before = s->done;
	s->checked = 0;
	s->bad = BAD_NONE;
	s->hdr_len = 0;
	if (s->hdr)
		s->hdr[0] = '\0';
	if (curl_multi_add_handle(g->m, s->h) != CURLM_OK)
		return err_set(g->e, EXIT_INTERNAL, "downloading: curl_multi_add_handle failed");
	s->state = SLOT_RUNNING;
	s->active_ms = http_now_ms();
	g->stats->requests++;
	g->running++;
	return 0;
}

/* The next range to download, from the current segment; 0 when none is ready now.  Ranges are
 * handed out as soon as their page of the list has arrived, but never past the last one while
 * continuations are still coming: the next page may extend it (touching ranges are merged). */
static int next_range(struct engine *g, uint64_t *start, uint64_t *end)
{
	while (g->cur_seg < g->nsegs) {
		struct segment *sg = &g->seg[g->cur_seg % 2];
		if (sg->state == SEG_EMPTY)
			return 0;
		if (sg->idx < sg->ranges.n) {
			struct range *r = &sg->ranges.v[sg->idx];
			if (sg->off < r->start)
				sg->off = r->start;
			if (sg->off <= r->end) {
				*start = sg->off;
				*end = r->end - sg->off >= g->range_size ? sg->off + g->range_size - 1 : r->end;
				sg->off = *end + 1;
				g->position = *start;
				return 1;
			}
			if (sg->idx + 1 == sg->ranges.n && sg->state != SEG_READY)
				return 0;
			sg->idx++;
			continue;
		}
		if (sg->state != SEG_READY)
			return 0;
		range_list_free(&sg->ranges);
		sg->state = SEG_EMPTY;
		g->position = sg->end + 1;
		g->cur_seg++;
	}
	return 0;
}

static int start_pagelist(struct engine *g)
{
	struct slot *s = &g->pl;
	struct segment *sg = &g->seg[g->list_next % 2];
	if (sg->state == SEG_EMPTY) {
		/* a new segment; its marker is empty */
		sg->start = g->list_next * FETCH_SEGMENT_SIZE;
		sg->end = sg->start + FETCH_SEGMENT_SIZE - 1 < g->info->size - 1 ? sg->start + FETCH_SEGMENT_SIZE - 1
										 : g->info->size - 1;
		sg->ranges = (struct range_list){.max = MAX_RANGES_PER_SEGMENT};
		sg->idx = 0;
		sg->off = 0;
		sg->pages = 0;
		sg->marker[0] = '\0';
		sg->state = SEG_LISTING;
		s->attempts = 0;
		s->first_fail_ms = 0;
	}
	free(s->url);
	s->url = NULL;
	char *esc = NULL;
	if (sg->marker[0] && !(esc = curl_easy_escape(NULL, sg->marker, 0)))
		return oom(g);
	const char *url = g->cfg->url;
	size_t need = strlen(url) + 64 + (esc ? strlen(esc) : 0);
	s->url = malloc(need);
	if (!s->url) {
		curl_free(esc);
		return oom(g);
	}
	/* maxresults: the service pages long lists (NextMarker) instead of sending one huge body */
	snprintf(s->url, need, "%s%ccomp=pagelist&maxresults=10000%s%s", url, strchr(url, '?') ? '&' : '?',
		 esc ? "&marker=" : "", esc ? esc : "");
	curl_free(esc);
	s->is_pagelist = 1;
	s->start = sg->start;
	s->end = sg->end;
	return start_request(g, s);
}

/* A failure worth another attempt: schedule it, or give up past the deadline. */
static int retry_later(struct engine *g, struct slot *s, const char *why, long retry_after_ms)
{
	long long now = http_now_ms();
	if (s->done > s->done_before) {
		/* this attempt got further: the range is not "failing", it is slow or cut now and then */
		s->first_fail_ms = 0;
		s->attempts = 0;
	}
	if (!s->first_fail_ms)
		s->first_fail_ms = now;
	s->attempts++;
	long wait = http_backoff_ms(s->attempts, retry_after_ms);
	if (now - s->first_fail_ms + wait > g->cfg->deadline_ms)
		return err_set(g->e, EXIT_NETWORK, "downloading %s: %s bytes %" PRIu64 "-%" PRIu64 ": %s; "
			       "gave up after %d attempts in %lld ms (check the service and the network)",
			       g->shown, s->is_pagelist ? "page list of" : "range", s->start, s->end, why,
			       s->attempts, now - s->first_fail_ms);
	log_info("%s bytes %" PRIu64 "-%" PRIu64 ": %s; retrying in %ld ms",
		 s->is_pagelist ? "page list of" : "range", s->start, s->end, why, wait);
	g->stats->retries++;
	s->state = SLOT_WAIT;
	s->not_before_ms = now + wait;
	return 0;
}

static int write_zeros(struct engine *g, uint64_t n)
{
	static const unsigned char zeros[64 << 10];
	while (n > 0) {
		size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
		if (write_all(g->fd, zeros, k) != 0)
			return err_set(g->e, EXIT_DEVICE, "writing %s: %s", g->out_name, strerror(errno));
		n -= k;
		g->written += k;
	}
	return 0;
}

/* Streaming: writes the finished ranges that are next in order, with the zeros before them. */
static int flush_in_order(struct engine *g)
{
	for (;;) {
		struct slot *next = NULL;
		for (int i = 0; i < g->nslots; i++)
			if (g->slots[i].state != SLOT_FREE && g->slots[i].seq == g->seq_flush)
				next = &g->slots[i];
		if (!next || next->state != SLOT_DONE)
			return 0;
		if (write_zeros(g, next->start - g->written) != 0)
			return -1;
		if (write_all(g->fd, next->buf, next->done) != 0)
			return err_set(g->e, EXIT_DEVICE, "writing %s: %s", g->out_name, strerror(errno));
		g->written += next->done;
		g->stats->data_bytes += next->done;
		next->state = SLOT_FREE;
		g->seq_flush++;
	}
}

/* A finished request: judge it, keep it or retry it. */
static int finished(struct engine *g, struct slot *s, CURLcode rc)
{
	long status = 0;
	char why[CURL_ERROR_SIZE + 256], code[128], v[160];
	curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(g->m, s->h);
	g->running--;
	const char *what = s->is_pagelist ? "page list of bytes" : "range";
	/* what was buffered passed the checks: it is stored even if the transfer then failed */
	if (s->bad == BAD_NONE && flush_slot(g, s) != 0)
		s->bad = BAD_WRITE;

	switch (s->bad) {
	case BAD_NONE:
		break;
	case BAD_ETAG:
		return err_set(g->e, EXIT_DEVICE, "downloading %s: the blob changed during the download "
			       "(ETag %s, expected %s; download it again)", g->shown,
			       http_header(s->hdr, "ETag", v, sizeof v) ? v : "(none)", g->info->etag);
	case BAD_RANGE:
		return err_set(g->e, EXIT_NETWORK, "downloading %s: range %" PRIu64 "-%" PRIu64 ": the "
			       "response has Content-Range \"%s\" (check the endpoint)", g->shown,
			       s->start + s->done, s->end,
			       http_header(s->hdr, "Content-Range", v, sizeof v) ? v : "(none)");
	case BAD_STATUS:
		return err_set(g->e, EXIT_NETWORK, "downloading %s: range %" PRIu64 "-%" PRIu64 ": HTTP %ld "
			       "instead of 206 (the service ignored x-ms-range; check the endpoint)", g->shown,
			       s->start + s->done, s->end, status);
	case BAD_WRITE:
		return err_set(g->e, EXIT_DEVICE, "writing %s: %s", g->out_name, strerror(s->write_errno));
	case BAD_LONG:
		return err_set(g->e, EXIT_NETWORK, "downloading %s: %s %" PRIu64 "-%" PRIu64 ": the "
			       "response is longer than %s (check the endpoint)", g->shown, what, s->start,
			       s->end, s->is_pagelist ? "this tool accepts" : "asked for");
	case BAD_HEADER:
		return err_set(g->e, EXIT_NETWORK, "downloading %s: %s %" PRIu64 "-%" PRIu64 ": response "
			       "headers longer than %u bytes (check the endpoint)", g->shown, what, s->start,
			       s->end, MAX_HEADER_BLOCK);
	case BAD_NOMEM:
		return oom(g);
	}
	if (rc != CURLE_OK) {
		http_describe_failure(rc, s->errbuf, why, sizeof why);
		fetch_hide_query(why, sizeof why, g->cfg->url);
		if (!http_transient(rc, 0))
			return err_set(g->e, EXIT_NETWORK, "downloading %s: %s", g->shown, why);
		return retry_later(g, s, why, -1);
	}
	if (status == 412)
		return err_set(g->e, EXIT_DEVICE, "downloading %s: the blob changed during the download "
			       "(its ETag is no longer %s; download it again)", g->shown, g->info->etag);
	if (status == 401 || status == 403)
		return err_set(g->e, EXIT_DENIED, "downloading %s: HTTP %ld %s (%s)", g->shown, status,
			       service_error(s->hdr, code, sizeof code), auth_hint(g->cfg));
	if (status == 404)
		return err_set(g->e, EXIT_DEVICE, "downloading %s: HTTP 404 %s: the blob was deleted or "
			       "replaced during the download (download it again)", g->shown,
			       service_error(s->hdr, code, sizeof code));
	if (http_transient(CURLE_OK, status)) {
		snprintf(why, sizeof why, "HTTP %ld %s", status, service_error(s->hdr, code, sizeof code));
		return retry_later(g, s, why, http_retry_after_ms(s->hdr));
	}
	if (s->is_pagelist ? status != 200 : status != 206)
		return err_set(g->e, EXIT_NETWORK, "downloading %s: %s %" PRIu64 "-%" PRIu64 ": unexpected "
			       "HTTP %ld %s (check the endpoint)", g->shown, what, s->start, s->end, status,
			       service_error(s->hdr, code, sizeof code));

	if (s->is_pagelist) {
		/* the ETag is pinned by If-Match; a service that ignored it is caught here */
		if (!http_header(s->hdr, "ETag", v, sizeof v))
			return err_set(g->e, EXIT_NETWORK, "downloading %s: page list of bytes %" PRIu64 "-%" PRIu64
				       ": no ETag in the response (check the endpoint)", g->shown, s->start, s->end);
		if (strcmp(v, g->info->etag) != 0)
			return err_set(g->e, EXIT_DEVICE, "downloading %s: the blob changed during the download "
				       "(ETag %s, expected %s; download it again)", g->shown,
				       printable(v) ? v : "(unprintable)", g->info->etag);
		struct segment *sg = &g->seg[g->list_next % 2];
		char sent[PAGELIST_MAX_MARKER];
		memcpy(sent, sg->marker, sizeof sent);
		if (pagelist_parse((const char *)s->buf, s->len, sg->start, sg->end, g->info->size, &sg->ranges,
				   sg->marker, g->e) != 0)
			return err_wrap(g->e, "downloading %s", g->shown);
		sg->pages++;
		if (sg->marker[0] && strcmp(sg->marker, sent) == 0)
			return err_set(g->e, EXIT_NETWORK, "downloading %s: page list of bytes %" PRIu64 "-%" PRIu64
				       ": the service answered with the same continuation marker it was given "
				       "(it would never end; check the endpoint)", g->shown, s->start, s->end);
		if (sg->marker[0] && sg->pages >= MAX_PAGELIST_PAGES)
			return err_set(g->e, EXIT_NETWORK, "downloading %s: page list of bytes %" PRIu64 "-%" PRIu64
				       ": still continuation markers after %u responses (check the endpoint)",
				       g->shown, s->start, s->end, sg->pages);
		free(s->buf); /* page lists can be large: not kept */
		s->buf = NULL;
		s->cap = s->len = 0;
		s->state = SLOT_FREE;
		if (!sg->marker[0]) {
			sg->state = SEG_READY;
			g->list_next++;
		}
		s->attempts = 0;
		s->first_fail_ms = 0;
		return 0;
	}

	uint64_t want = s->end - s->start + 1;
	if (s->done != want) {
		/* cut short (a clean end with fewer bytes than Content-Length said, or none at all):
		 * what arrived is kept, the rest asked for again */
		snprintf(why, sizeof why, "short body (%" PRIu64 " of %" PRIu64 " bytes)", s->done, want);
		return retry_later(g, s, why, -1);
	}
	g->stats->ranges++;
	if (g->stream) {
		s->state = SLOT_DONE;
		return 0;
	}
	g->stats->data_bytes += want;
	s->state = SLOT_FREE;
	return 0;
}

static void show_progress(struct engine *g, int last)
{
	long long now = http_now_ms();
	if (!last && now - g->progress_ms < 500)
		return;
	g->progress_ms = now;
	double mib = 1024.0 * 1024.0, secs = (double)(now - g->started_ms) / 1000.0;
	uint64_t pos = last ? g->info->size : g->position;
	double rate = secs > 0 ? (double)g->stats->data_bytes / mib / secs : 0;
	double frac = g->info->size ? (double)pos / (double)g->info->size : 1;
	long eta = frac > 0 && !last ? (long)(secs / frac - secs + 0.5) : 0;
	fprintf(stderr, "\r%s: %5.1f%% of %.1f MiB, %.1f MiB fetched, %.1f MiB/s, ETA %ld:%02ld  ",
		log_progname(), 100.0 * frac, (double)g->info->size / mib, (double)g->stats->data_bytes / mib,
		rate, eta / 60, eta % 60);
	if (last)
		fputc('\n', stderr);
	fflush(stderr);
	g->progress_shown = 1;
}

static int run(struct engine *g)
{
	for (;;) {
		if (g->cfg->stop && *g->cfg->stop)
			return err_set(g->e, EXIT_DEVICE, "downloading %s: interrupted by a signal", g->shown);
		/* the page list of the next segment, while at most two segments are held */
		if (g->pl.state == SLOT_FREE && g->list_next < g->nsegs && g->list_next <= g->cur_seg + 1 &&
		    start_pagelist(g) != 0)
			return -1;
		/* new ranges into free slots */
		for (int i = 0; i < g->nslots; i++) {
			struct slot *s = &g->slots[i];
			if (s->state != SLOT_FREE)
				continue;
			if (!next_range(g, &s->start, &s->end))
				break;
			s->state = SLOT_WAIT;
			s->done = 0;
			s->seq = g->seq_next++;
			s->attempts = 0;
			s->first_fail_ms = s->not_before_ms = 0;
		}
		/* start what may start */
		long long now = http_now_ms(), wake = now + 200;
		if (g->pl.state == SLOT_WAIT) {
			if (g->pl.not_before_ms <= now) {
				if (start_pagelist(g) != 0)
					return -1;
			} else if (g->pl.not_before_ms < wake)
				wake = g->pl.not_before_ms;
		}
		for (int i = 0; i < g->nslots && g->running < g->cfg->jobs + (g->pl.state == SLOT_RUNNING); i++) {
			struct slot *s = &g->slots[i];
			if (s->state != SLOT_WAIT)
				continue;
			if (s->not_before_ms <= now) {
				if (start_request(g, s) != 0)
					return -1;
			} else if (s->not_before_ms < wake)
				wake = s->not_before_ms;
		}
		int busy = g->pl.state != SLOT_FREE;
		for (int i = 0; i < g->nslots; i++)
			busy |= g->slots[i].state != SLOT_FREE;
		if (!busy && g->cur_seg >= g->nsegs)
			return 0;

		int still = 0;
		if (curl_multi_perform(g->m, &still) != CURLM_OK)
			return err_set(g->e, EXIT_INTERNAL, "downloading: curl_multi_perform failed");
		CURLMsg *msg;
		int left, completed = 0;
		while ((msg = curl_multi_info_read(g->m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			completed++;
			char *priv = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
			struct slot *s = (struct slot *)(void *)priv;
			if (!s || finished(g, s, msg->data.result) != 0)
				return -1;
		}
		/* a request that receives nothing for --timeout is cut and retried (libcurl's low-speed
		 * limit averages over seconds, too coarse to say "nothing for N s") */
		now = http_now_ms();
		for (int i = -1; i < g->nslots; i++) {
			struct slot *s = i < 0 ? &g->pl : &g->slots[i];
			if (s->state != SLOT_RUNNING || now - s->active_ms < g->cfg->timeout_ms)
				continue;
			curl_multi_remove_handle(g->m, s->h);
			g->running--;
			if (flush_slot(g, s) != 0)
				return err_set(g->e, EXIT_DEVICE, "writing %s: %s", g->out_name,
					       strerror(s->write_errno));
			char why[128];
			snprintf(why, sizeof why, "nothing received for %ld s (--timeout)", g->cfg->timeout_ms / 1000);
			completed++;
			if (retry_later(g, s, why, -1) != 0)
				return -1;
		}
		if (g->stream) {
			long long before = http_now_ms();
			if (flush_in_order(g) != 0)
				return -1;
			/* a reader that does not keep up blocks us here, not the service: that time does
			 * not count towards --timeout */
			long long blocked = http_now_ms() - before;
			for (int i = -1; i < g->nslots && blocked > 0; i++) {
				struct slot *s = i < 0 ? &g->pl : &g->slots[i];
				if (s->state == SLOT_RUNNING)
					s->active_ms += blocked;
			}
		}
		if (g->cfg->progress)
			show_progress(g, 0);
		now = http_now_ms();
		int timeout = wake > now ? (int)(wake - now) : 0;
		/* a finished request frees a slot or ends the run: go round at once */
		if (!completed && (still > 0 || timeout > 0))
			if (curl_multi_poll(g->m, NULL, 0, timeout, NULL) != CURLM_OK)
				return err_set(g->e, EXIT_INTERNAL, "downloading: curl_multi_poll failed");
	}
}

static void slot_free(struct engine *g, struct slot *s)
{
	if (s->h) {
		if (s->state == SLOT_RUNNING)
			curl_multi_remove_handle(g->m, s->h);
		curl_easy_cleanup(s->h);
	}
	slist_free_wiped(s->hdrs);
	free(s->buf);
	free(s->wbuf);
	free(s->hdr);
	free(s->url);
	memset(s, 0, sizeof *s);
}

int fetch_blob(const struct fetch_config *cfg, const struct blob_info *info, int fd, int stream,
	       const char *out_name, struct fetch_stats *stats, struct err *e)
{
	struct engine g = {.cfg = cfg, .info = info, .fd = fd, .stream = stream, .out_name = out_name,
			   .stats = stats, .e = e};
	int ret = -1;
	memset(stats, 0, sizeof *stats);
	http_url_for_log(cfg->url, g.shown, sizeof g.shown);
	g.started_ms = http_now_ms();
	if (info->size == 0)
		return 0;

	int is_page = strcmp(info->type, "PageBlob") == 0;
	if (is_page) {
		g.nsegs = (info->size + FETCH_SEGMENT_SIZE - 1) / FETCH_SEGMENT_SIZE;
	} else {
		/* one segment, all data: no page list to ask for */
		g.nsegs = 1;
		g.list_next = 1;
		g.seg[0] = (struct segment){.state = SEG_READY, .start = 0, .end = info->size - 1};
		if (range_list_add(&g.seg[0].ranges, 0, info->size - 1) != 0)
			return oom(&g);
	}
	g.nslots = stream ? 2 * cfg->jobs : cfg->jobs;
	g.range_size = stream ? FETCH_STREAM_RANGE_SIZE : FETCH_RANGE_SIZE;
	g.m = curl_multi_init();
	g.slots = calloc((size_t)g.nslots, sizeof *g.slots);
	if (!g.m || !g.slots) {
		oom(&g);
		goto out;
	}
	curl_multi_setopt(g.m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->jobs + 1);
	g.pl.eng = &g;
	if (!(g.pl.h = curl_easy_init())) {
		oom(&g);
		goto out;
	}
	for (int i = 0; i < g.nslots; i++) {
		struct slot *s = &g.slots[i];
		s->eng = &g;
		s->h = curl_easy_init();
		/* streaming keeps ranges until their turn; files take them as they come, in writes of
		 * up to FETCH_WRITE_BUFFER bytes */
		if (stream) {
			s->buf = malloc(g.range_size);
			s->cap = g.range_size;
		} else {
			s->wbuf = malloc(FETCH_WRITE_BUFFER);
		}
		if (!s->h || (stream ? !s->buf : !s->wbuf)) {
			oom(&g);
			goto out;
		}
	}
	ret = run(&g);
	if (ret == 0 && stream)
		ret = write_zeros(&g, info->size - g.written);
	if (cfg->progress && ret == 0)
		show_progress(&g, 1);
	else if (g.progress_shown)
		fputc('\n', stderr);
out:
	if (g.slots)
		for (int i = 0; i < g.nslots; i++)
			slot_free(&g, &g.slots[i]);
	slot_free(&g, &g.pl);
	free(g.slots);
	range_list_free(&g.seg[0].ranges);
	range_list_free(&g.seg[1].ranges);
	if (g.m)
		curl_multi_cleanup(g.m);
	return ret;
}
