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

/* --- small helpers ------------------------------------------------------------------------ */

int fetch_parse_content_range(const char *v, uint64_t *a, uint64_t *b, uint64_t *total)
{
	return blob_parse_content_range(v, a, b, total);
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
	struct pagelist_walk w; /* the segment and its ranges */
	size_t idx;   /* next range to hand out */
	uint64_t off; /* next byte of w.ranges.v[idx] to hand out */
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
			while (ncap - s->len < n && ncap < BLOB_PAGELIST_MAX_BODY)
				ncap *= 2;
			if (ncap > BLOB_PAGELIST_MAX_BODY)
				ncap = BLOB_PAGELIST_MAX_BODY;
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
				  .url = s->is_pagelist ? s->url : cfg->blob->url, .allow_http = cfg->blob->allow_http,
				  .connect_timeout_ms = cfg->blob->timeout_ms < 10000 ? cfg->blob->timeout_ms : 10000,
				  /* no limit on a whole transfer: the stall timeout below catches hangs */
				  .timeout_ms = 24L * 3600 * 1000};
	curl_easy_reset(s->h);
	if (http_setup_handle(s->h, &rq, g->e) != 0)
		return -1;
	blob_slist_free(s->hdrs);
	char range_line[100], cond[BLOB_ETAG_MAX + 16];
	snprintf(range_line, sizeof range_line, "x-ms-range: %s", range);
	snprintf(cond, sizeof cond, "If-Match: %s", g->info->etag);
	const char *extra[] = {range_line, cond, NULL};
	s->hdrs = blob_header_list(cfg->blob, extra);
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
		if (sg->idx < sg->w.ranges.n) {
			struct range *r = &sg->w.ranges.v[sg->idx];
			if (sg->off < r->start)
				sg->off = r->start;
			if (sg->off <= r->end) {
				*start = sg->off;
				*end = r->end - sg->off >= g->range_size ? sg->off + g->range_size - 1 : r->end;
				sg->off = *end + 1;
				g->position = *start;
				return 1;
			}
			if (sg->idx + 1 == sg->w.ranges.n && sg->state != SEG_READY)
				return 0;
			sg->idx++;
			continue;
		}
		if (sg->state != SEG_READY)
			return 0;
		pagelist_walk_free(&sg->w);
		sg->state = SEG_EMPTY;
		g->position = sg->w.end + 1;
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
		uint64_t start = g->list_next * BLOB_SEGMENT_SIZE;
		uint64_t end = start + BLOB_SEGMENT_SIZE - 1 < g->info->size - 1 ? start + BLOB_SEGMENT_SIZE - 1
									       : g->info->size - 1;
		pagelist_walk_begin(&sg->w, start, end, g->info->size);
		sg->idx = 0;
		sg->off = 0;
		sg->state = SEG_LISTING;
		s->attempts = 0;
		s->first_fail_ms = 0;
	}
	free(s->url);
	if (!(s->url = blob_pagelist_url(g->cfg->blob, sg->w.marker)))
		return oom(g);
	s->is_pagelist = 1;
	s->start = sg->w.start;
	s->end = sg->w.end;
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
	if (now - s->first_fail_ms + wait > g->cfg->blob->deadline_ms)
		return err_set(g->e, EXIT_NETWORK, "downloading %s: %s bytes %" PRIu64 "-%" PRIu64 ": %s; "
			       "gave up after %d attempts in %lld ms (check the service and the network)",
			       g->shown, s->is_pagelist ? "page list of" : "range", s->start, s->end, why,
			       s->attempts, now - s->first_fail_ms);
	char what[96];
	snprintf(what, sizeof what, "%s bytes %" PRIu64 "-%" PRIu64, s->is_pagelist ? "page list of" : "range",
		 s->start, s->end);
	blob_note_retry(g->cfg->blob, what, why, wait, g->cfg->blob->deadline_ms - (long)(now - s->first_fail_ms));
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
		blob_hide_query(why, sizeof why, g->cfg->blob->url);
		if (!http_transient(rc, 0))
			return err_set(g->e, EXIT_NETWORK, "downloading %s: %s", g->shown, why);
		return retry_later(g, s, why, -1);
	}
	if (status == 412)
		return err_set(g->e, EXIT_DEVICE, "downloading %s: the blob changed during the download "
			       "(its ETag is no longer %s; download it again)", g->shown, g->info->etag);
	if (status == 401 || status == 403)
		return err_set(g->e, EXIT_DENIED, "downloading %s: HTTP %ld %s (%s)", g->shown, status,
			       blob_service_error(s->hdr, code, sizeof code), blob_auth_hint(g->cfg->blob));
	if (status == 404)
		return err_set(g->e, EXIT_DEVICE, "downloading %s: HTTP 404 %s: the blob was deleted or "
			       "replaced during the download (download it again)", g->shown,
			       blob_service_error(s->hdr, code, sizeof code));
	if (http_transient(CURLE_OK, status)) {
		snprintf(why, sizeof why, "HTTP %ld %s", status, blob_service_error(s->hdr, code, sizeof code));
		return retry_later(g, s, why, http_retry_after_ms(s->hdr));
	}
	if (s->is_pagelist ? status != 200 : status != 206)
		return err_set(g->e, EXIT_NETWORK, "downloading %s: %s %" PRIu64 "-%" PRIu64 ": unexpected "
			       "HTTP %ld %s (check the endpoint)", g->shown, what, s->start, s->end, status,
			       blob_service_error(s->hdr, code, sizeof code));

	if (s->is_pagelist) {
		/* the ETag is pinned by If-Match; a service that ignored it is caught here */
		if (!http_header(s->hdr, "ETag", v, sizeof v))
			return err_set(g->e, EXIT_NETWORK, "downloading %s: page list of bytes %" PRIu64 "-%" PRIu64
				       ": no ETag in the response (check the endpoint)", g->shown, s->start, s->end);
		if (strcmp(v, g->info->etag) != 0)
			return err_set(g->e, EXIT_DEVICE, "downloading %s: the blob changed during the download "
				       "(ETag %s, expected %s; download it again)", g->shown,
				       blob_printable(v) ? v : "(unprintable)", g->info->etag);
		struct segment *sg = &g->seg[g->list_next % 2];
		if (pagelist_walk_take(&sg->w, (const char *)s->buf, s->len, g->e) != 0)
			return err_wrap(g->e, "downloading %s", g->shown);
		free(s->buf); /* page lists can be large: not kept */
		s->buf = NULL;
		s->cap = s->len = 0;
		s->state = SLOT_FREE;
		if (sg->w.done) {
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
		if (blob_stopping(g->cfg->blob))
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
			if (s->state != SLOT_RUNNING || now - s->active_ms < g->cfg->blob->timeout_ms)
				continue;
			curl_multi_remove_handle(g->m, s->h);
			g->running--;
			if (flush_slot(g, s) != 0)
				return err_set(g->e, EXIT_DEVICE, "writing %s: %s", g->out_name,
					       strerror(s->write_errno));
			char why[128];
			snprintf(why, sizeof why, "nothing received for %ld s (--timeout)", g->cfg->blob->timeout_ms / 1000);
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
	blob_slist_free(s->hdrs);
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
	http_url_for_log(cfg->blob->url, g.shown, sizeof g.shown);
	g.started_ms = http_now_ms();
	if (info->size == 0)
		return 0;

	int is_page = strcmp(info->type, "PageBlob") == 0;
	if (is_page) {
		g.nsegs = (info->size + BLOB_SEGMENT_SIZE - 1) / BLOB_SEGMENT_SIZE;
	} else {
		/* one segment, all data: no page list to ask for */
		g.nsegs = 1;
		g.list_next = 1;
		g.seg[0].state = SEG_READY;
		pagelist_walk_begin(&g.seg[0].w, 0, info->size - 1, info->size);
		if (range_list_add(&g.seg[0].w.ranges, 0, info->size - 1) != 0)
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
	pagelist_walk_free(&g.seg[0].w);
	pagelist_walk_free(&g.seg[1].w);
	if (g.m)
		curl_multi_cleanup(g.m);
	return ret;
}
