/* The upload: create the page blob (or replace it, under our lease), walk the image's data extents
 * (SEEK_DATA/SEEK_HOLE), send each run of pages that are not all zeros as Put Page calls of at most
 * 4 MiB through the page writer, then compare the blob's page list with what was sent. */
#include "upload.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "lease.h"
#include "pagelist.h"
#include "pagewriter.h"

#define READ_CHUNK (1u << 20) /* bytes per pread of the image */
#define CREATE_ROUNDS 3       /* --force: a blob created or deleted by someone else meanwhile */

struct uploader {
	const struct upload_config *cfg;
	struct blob_client *c;
	struct blob_conn cn;
	struct upload_stats *st;
	struct err *e;
	int fd;
	struct stat st0;
	uint64_t size, blob_size;
	char lease_id[BLOB_LEASE_ID_MAX];
	int have_lease;   /* acquired, not yet handed to the keeper */
	int created;      /* the blob is ours now: a failure leaves it incomplete */
	struct lease_keeper keeper;
	struct page_writer *w;
	struct range_list sent; /* what went to the writer, merged */
	unsigned char *pending; /* the run of pages being gathered */
	uint64_t pending_off;
	size_t pending_len;
	unsigned char *rbuf;
	uint64_t position;      /* how far the scan has got, for progress */
	long long started_ms, progress_ms;
	int progress_shown;
};

/* --- creating the blob under a lease -------------------------------------------------------------- */

static int leased_refusal(struct uploader *u)
{
	struct blob_info info;
	struct err ignored;
	int known = blob_get_properties(u->c, &u->cn, &info, &ignored) == 0 && info.lease_state[0];
	return err_set(u->e, EXIT_DEVICE, "uploading %s: the blob is leased by another writer (lease %s%s%s): an "
		       "upload or a read-write mount holds it (try again once it has ended; a lease nobody "
		       "renews expires within 60 s)", u->c->shown, known ? info.lease_state : "held",
		       known && info.lease_duration[0] ? ", " : "", known ? info.lease_duration : "");
}

static int acquire(struct uploader *u, const char *if_match, long long *when)
{
	*when = http_now_ms();
	int rc = blob_lease_acquire(u->c, &u->cn, LEASE_DURATION_S, u->lease_id, if_match, u->e);
	if (rc == 0)
		u->have_lease = 1;
	else if (rc < 0)
		err_wrap(u->e, "uploading %s: taking a lease on the blob", u->c->shown);
	return rc;
}

/* After a create of our own: the lease, on the blob we created (If-Match: its ETag). */
static int acquire_created(struct uploader *u, const char *etag, long long *when)
{
	int rc = acquire(u, etag, when);
	if (rc > 0)
		return err_set(u->e, EXIT_DEVICE, "uploading %s: taking a lease on the blob: another writer replaced, "
			       "leased or deleted it right after it was created (upload again)", u->c->shown);
	return rc;
}

static int create_and_lease(struct uploader *u, long long *acquired_ms)
{
	unsigned char raw[16];
	char nonce[2 * sizeof raw + 1], etag[BLOB_ETAG_MAX];
	randombytes_buf(raw, sizeof raw);
	sodium_bin2hex(nonce, sizeof nonce, raw, sizeof raw);
	blob_new_lease_id(u->lease_id);

	if (!u->cfg->force) {
		int rc = blob_create_page_blob(u->c, &u->cn, u->blob_size, 1, NULL, nonce, etag, u->e);
		if (rc < 0)
			return err_wrap(u->e, "uploading %s: creating the page blob", u->c->shown);
		if (rc == BLOB_EXISTS || rc == BLOB_LEASED)
			return err_set(u->e, EXIT_USAGE, "uploading %s: the blob exists (use --force to replace it)",
				       u->c->shown);
		u->created = 1;
		return acquire_created(u, etag, acquired_ms);
	}
	/* --force: the lease first, so that nobody writes between our replacing the blob and our
	 * writing it; the replacement (Put Blob) keeps the lease and drops every old page */
	for (int round = 0; round < CREATE_ROUNDS; round++) {
		int rc = acquire(u, NULL, acquired_ms);
		if (rc < 0)
			return -1;
		if (rc == BLOB_LEASED)
			return leased_refusal(u);
		if (rc == 0) {
			rc = blob_create_page_blob(u->c, &u->cn, u->blob_size, 0, u->lease_id, nonce, etag, u->e);
			if (rc < 0)
				return err_wrap(u->e, "uploading %s: replacing the blob", u->c->shown);
			if (rc != 0)
				return err_set(u->e, EXIT_DEVICE, "uploading %s: replacing the blob: our lease on it was "
					       "lost (another writer may hold it; upload again)", u->c->shown);
			u->created = 1;
			return 0;
		}
		if (rc != BLOB_NOT_FOUND)
			return err_set(u->e, EXIT_NETWORK, "uploading %s: taking a lease on the blob: unexpected "
				       "answer (check the endpoint)", u->c->shown);
		rc = blob_create_page_blob(u->c, &u->cn, u->blob_size, 1, NULL, nonce, etag, u->e);
		if (rc < 0)
			return err_wrap(u->e, "uploading %s: creating the page blob", u->c->shown);
		if (rc == 0) {
			u->created = 1;
			return acquire_created(u, etag, acquired_ms);
		}
		/* created by someone else since we looked: take the lease on theirs, once more */
	}
	return err_set(u->e, EXIT_DEVICE, "uploading %s: the blob keeps being created and deleted by another "
		       "writer (upload again later)", u->c->shown);
}

/* --- scanning and sending --------------------------------------------------------------------- */

static void free_buffer(void *arg, void *buf, int rc, const char *etag) { free(buf); }

static int flush_pending(struct uploader *u)
{
	if (u->pending_len == 0)
		return 0;
	if (range_list_add(&u->sent, u->pending_off, u->pending_off + u->pending_len - 1) != 0)
		return err_set(u->e, EXIT_INTERNAL, "uploading: out of memory");
	void *buf = u->pending;
	u->pending = NULL;
	size_t len = u->pending_len;
	u->pending_len = 0;
	if (page_writer_submit(u->w, u->pending_off, buf, len, free_buffer, NULL, u->e) != 0) {
		free(buf);
		return -1;
	}
	return 0;
}

static int add_page(struct uploader *u, uint64_t off, const unsigned char *page)
{
	if (u->pending_len && (u->pending_off + u->pending_len != off || u->pending_len == BLOB_MAX_PUT_PAGE) &&
	    flush_pending(u) != 0)
		return -1;
	if (!u->pending && !(u->pending = malloc(BLOB_MAX_PUT_PAGE)))
		return err_set(u->e, EXIT_INTERNAL, "uploading: out of memory");
	if (u->pending_len == 0)
		u->pending_off = off;
	memcpy(u->pending + u->pending_len, page, BLOB_PAGE);
	u->pending_len += BLOB_PAGE;
	return 0;
}

static int all_zero(const unsigned char *p)
{
	return p[0] == 0 && memcmp(p, p + 1, BLOB_PAGE - 1) == 0;
}

static void show_progress(struct uploader *u, int last)
{
	long long now = http_now_ms();
	if (!last && now - u->progress_ms < 500)
		return;
	u->progress_ms = now;
	struct page_writer_stats ws;
	page_writer_get_stats(u->w, &ws);
	double mib = 1024.0 * 1024.0, secs = (double)(now - u->started_ms) / 1000.0;
	uint64_t pos = last ? u->blob_size : u->position;
	double frac = u->blob_size ? (double)pos / (double)u->blob_size : 1;
	long eta = frac > 0 && !last ? (long)(secs / frac - secs + 0.5) : 0;
	fprintf(stderr, "\r%s: %5.1f%% of %.1f MiB, %.1f MiB sent, %.1f MiB/s, ETA %ld:%02ld  ", log_progname(),
		100.0 * frac, (double)u->blob_size / mib, (double)ws.data_bytes / mib,
		secs > 0 ? (double)ws.data_bytes / mib / secs : 0, eta / 60, eta % 60);
	if (last)
		fputc('\n', stderr);
	fflush(stderr);
	u->progress_shown = 1;
}

/* The pages start..end-1 (page-aligned; bytes past the end of the image read as zeros). */
static int send_extent(struct uploader *u, uint64_t start, uint64_t end)
{
	for (uint64_t off = start; off < end;) {
		size_t want = end - off < READ_CHUNK ? (size_t)(end - off) : READ_CHUNK, got = 0;
		while (got < want && off + got < u->size) {
			ssize_t n = pread(u->fd, u->rbuf + got, want - got, (off_t)(off + got));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return err_set(u->e, EXIT_DEVICE, "reading %s: %s", u->cfg->image, strerror(errno));
			if (n == 0)
				break; /* the image shrank: caught by the check at the end */
			got += (size_t)n;
		}
		memset(u->rbuf + got, 0, want - got); /* the last partial page is padded with zeros */
		for (size_t p = 0; p < want; p += BLOB_PAGE) {
			if (all_zero(u->rbuf + p)) {
				u->st->zero_pages++;
				if (flush_pending(u) != 0)
					return -1;
			} else if (add_page(u, off + p, u->rbuf + p) != 0) {
				return -1;
			}
		}
		off += want;
		u->position = off;
		if (u->cfg->progress)
			show_progress(u, 0);
		if (blob_stopping(u->c))
			return err_set(u->e, EXIT_DEVICE, "interrupted by a signal");
	}
	return 0;
}

/* Every data extent of the image, as SEEK_DATA and SEEK_HOLE tell them (a file system without
 * them reports the whole file as data). */
static int send_image(struct uploader *u)
{
	uint64_t pos = 0;
	while (pos < u->size) {
		off_t d = lseek(u->fd, (off_t)pos, SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			break; /* nothing but hole from pos on */
		if (d < 0)
			return err_set(u->e, EXIT_DEVICE, "reading %s: SEEK_DATA: %s", u->cfg->image, strerror(errno));
		off_t h = lseek(u->fd, d, SEEK_HOLE);
		if (h < 0)
			return err_set(u->e, EXIT_DEVICE, "reading %s: SEEK_HOLE: %s", u->cfg->image, strerror(errno));
		uint64_t start = (uint64_t)d / BLOB_PAGE * BLOB_PAGE;
		uint64_t end = ((uint64_t)h + BLOB_PAGE - 1) / BLOB_PAGE * BLOB_PAGE;
		if (start < pos)
			start = pos;
		if (end > u->blob_size)
			end = u->blob_size;
		if (end <= start)
			break;
		if (send_extent(u, start, end) != 0)
			return -1;
		pos = end;
	}
	return flush_pending(u);
}

/* --- checking --------------------------------------------------------------------------------- */

static int mismatch(struct uploader *u, const struct range *want, const struct range *got)
{
	char a[64] = "nothing", b[64] = "nothing";
	if (want)
		snprintf(a, sizeof a, "bytes %" PRIu64 "-%" PRIu64, want->start, want->end);
	if (got)
		snprintf(b, sizeof b, "bytes %" PRIu64 "-%" PRIu64, got->start, got->end);
	/* the first byte where they part: where one starts before the other, or where one ends first */
	uint64_t at;
	if (want && got && want->start == got->start)
		at = (want->end < got->end ? want->end : got->end) + 1;
	else if (want && got)
		at = want->start < got->start ? want->start : got->start;
	else
		at = want ? want->start : got->start;
	return err_set(u->e, EXIT_DEVICE, "uploading %s: checking the page list: it differs from what was sent "
		       "from byte %" PRIu64 " on (sent: %s; the blob lists: %s)", u->c->shown, at, a, b);
}

/* The blob's page list, segment by segment, must be exactly the ranges sent. */
static int verify(struct uploader *u)
{
	size_t i = 0;
	for (uint64_t seg = 0; seg < u->blob_size; seg += BLOB_SEGMENT_SIZE) {
		uint64_t seg_end = u->blob_size - seg > BLOB_SEGMENT_SIZE ? seg + BLOB_SEGMENT_SIZE - 1 : u->blob_size - 1;
		struct pagelist_walk w;
		pagelist_walk_begin(&w, seg, seg_end, u->blob_size);
		if (blob_list_segment(u->c, &u->cn, &w, NULL, NULL, u->e) != 0) {
			pagelist_walk_free(&w);
			return err_wrap(u->e, "uploading %s: checking the page list", u->c->shown);
		}
		int ret = 0;
		for (size_t k = 0;; k++) {
			int have_want = i < u->sent.n && u->sent.v[i].start <= seg_end;
			int have_got = k < w.ranges.n;
			if (!have_want && !have_got)
				break;
			struct range want = {0}, *got = have_got ? &w.ranges.v[k] : NULL;
			if (have_want) {
				want = u->sent.v[i];
				if (want.start < seg)
					want.start = seg;
				if (want.end > seg_end)
					want.end = seg_end;
			}
			if (!have_want || !have_got || want.start != got->start || want.end != got->end) {
				ret = mismatch(u, have_want ? &want : NULL, got);
				break;
			}
			if (u->sent.v[i].end <= seg_end)
				i++;
		}
		pagelist_walk_free(&w);
		if (ret != 0)
			return -1;
	}
	if (i != u->sent.n)
		return mismatch(u, &u->sent.v[i], NULL);
	/* and the blob is what we created: a page blob of the size asked */
	struct blob_info info;
	if (blob_get_properties(u->c, &u->cn, &info, u->e) != 0)
		return err_wrap(u->e, "uploading %s: checking the blob", u->c->shown);
	if (strcmp(info.type, "PageBlob") != 0 || info.size != u->blob_size)
		return err_set(u->e, EXIT_DEVICE, "uploading %s: checking the blob: it is a %s of %" PRIu64 " bytes, "
			       "not a page blob of %" PRIu64, u->c->shown, info.type, info.size, u->blob_size);
	memcpy(u->st->etag, info.etag, sizeof info.etag);
	return 0;
}

/* --- the upload ---------------------------------------------------------------------------------- */

static int run(struct uploader *u)
{
	long long acquired_ms;
	if (create_and_lease(u, &acquired_ms) != 0)
		return -1;
	if (lease_keeper_start(&u->keeper, u->c, u->lease_id, LEASE_DURATION_S, acquired_ms, u->e) != 0)
		return -1;
	u->have_lease = 0;
	if (page_writer_start(&u->w, u->c, &u->keeper, u->cfg->jobs, u->cfg->jobs, u->e) != 0)
		return -1;
	u->started_ms = http_now_ms();
	if (send_image(u) != 0 || page_writer_flush(u->w, u->e) != 0)
		return err_wrap(u->e, "uploading %s", u->c->shown);
	struct page_writer_stats ws;
	page_writer_get_stats(u->w, &ws);
	u->st->data_bytes = ws.data_bytes;
	u->st->body_bytes = ws.body_bytes;
	u->st->requests = ws.requests;
	u->st->retries = ws.retries;
	u->st->ranges = u->sent.n;
	if (u->cfg->progress)
		show_progress(u, 1);
	u->progress_shown = 0;
	page_writer_stop(u->w);
	u->w = NULL;
	if (lease_keeper_check(&u->keeper, u->e) != 0)
		return err_wrap(u->e, "uploading %s", u->c->shown);
	if (verify(u) != 0)
		return -1;
	struct stat now;
	if (fstat(u->fd, &now) != 0 || now.st_size != u->st0.st_size || now.st_mtim.tv_sec != u->st0.st_mtim.tv_sec ||
	    now.st_mtim.tv_nsec != u->st0.st_mtim.tv_nsec)
		return err_set(u->e, EXIT_DEVICE, "uploading %s: %s changed during the upload (upload it again "
			       "once nothing writes it)", u->c->shown, u->cfg->image);
	return 0;
}

int upload_image(const struct upload_config *cfg, int fd, struct upload_stats *st, struct err *e)
{
	struct uploader u = {.cfg = cfg, .c = cfg->blob, .st = st, .e = e, .fd = fd};
	memset(st, 0, sizeof *st);
	if (fstat(fd, &u.st0) != 0)
		return err_set(e, EXIT_DEVICE, "reading %s: %s", cfg->image, strerror(errno));
	if (!S_ISREG(u.st0.st_mode))
		return err_set(e, EXIT_CONFIG, "reading %s: not a regular file (give the image file)", cfg->image);
	u.size = (uint64_t)u.st0.st_size;
	u.blob_size = (u.size + BLOB_PAGE - 1) / BLOB_PAGE * BLOB_PAGE;
	st->image_size = u.size;
	st->blob_size = u.blob_size;
	u.sent.max = (size_t)(u.blob_size / (2 * BLOB_PAGE) + 1);
	if (blob_conn_init(&u.cn, e) != 0)
		return -1;
	if (!(u.rbuf = malloc(READ_CHUNK))) {
		blob_conn_free(&u.cn);
		return err_set(e, EXIT_INTERNAL, "uploading: out of memory");
	}

	int ret = run(&u);

	if (u.progress_shown)
		fputc('\n', stderr);
	page_writer_stop(u.w); /* waits for the writes in flight: none goes out after the release */
	struct err rel = {0};
	int released = 0;
	if (u.have_lease)
		released = blob_lease_release(u.c, &u.cn, u.lease_id, &rel);
	else
		released = lease_keeper_release(&u.keeper, &rel);
	/* after a failure (a lost lease among them) the error line says what matters */
	if (released != 0)
		log_msg(ret == 0 ? LOG_WARN : LOG_INFO, "uploading %s: releasing the lease: %s (it expires by itself "
			"within %d s)", u.c->shown, rel.msg, LEASE_DURATION_S);
	if (ret != 0 && u.created && !strstr(e->msg, "the blob is incomplete")) {
		size_t n = strlen(e->msg);
		snprintf(e->msg + n, sizeof e->msg - n, "; the blob is incomplete (upload again with --force)");
	}
	free(u.pending);
	free(u.rbuf);
	range_list_free(&u.sent);
	blob_conn_free(&u.cn);
	return ret;
}
