/* The Put Page pool: jobs threads around one queue, one lock, two condition variables. */
#include "pagewriter.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"

struct page_write {
	uint64_t offset;
	void *buf;
	size_t len;
	page_write_done *done;
	void *arg;
};

struct page_writer {
	struct blob_client *c;
	struct lease_keeper *lease;
	pthread_mutex_t lock;
	pthread_cond_t work;    /* a write was queued, or quit */
	pthread_cond_t room;    /* a write left the queue or ended */
	struct page_write *q;   /* ring of queue_max */
	int queue_max, head, count, in_flight;
	int quit, failed;
	struct err err;         /* the first failure */
	struct page_writer_stats st;
	pthread_t *threads;
	int nthreads;
};

static void wait_ms(pthread_cond_t *cv, pthread_mutex_t *m, long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_cond_timedwait(cv, m, &ts);
}

static void *worker(void *arg)
{
	struct page_writer *w = arg;
	struct blob_conn cn = {0};
	struct err e = {0};
	int conn_ok = blob_conn_init(&cn, &e) == 0;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->quit && w->count == 0)
			pthread_cond_wait(&w->work, &w->lock);
		if (w->quit)
			break;
		struct page_write pw = w->q[w->head];
		w->head = (w->head + 1) % w->queue_max;
		w->count--;
		w->in_flight++;
		int skip = w->failed;
		pthread_cond_broadcast(&w->room);
		pthread_mutex_unlock(&w->lock);

		char etag[BLOB_ETAG_MAX];
		uint64_t sent = 0;
		unsigned long retries = 0;
		int rc = -1;
		if (skip)
			err_set(&e, EXIT_DEVICE, "an earlier write failed");
		else if (!conn_ok)
			; /* e says why */
		else if (w->lease && lease_keeper_check(w->lease, &e) != 0)
			;
		else
			rc = blob_put_page(w->c, &cn, pw.offset, pw.buf, pw.len, w->lease ? w->lease->id : NULL, NULL,
					   etag, &sent, &retries, &e);
		if (pw.done)
			pw.done(pw.arg, pw.buf, rc, rc == 0 ? etag : NULL);

		pthread_mutex_lock(&w->lock);
		w->in_flight--;
		w->st.body_bytes += sent;
		w->st.retries += retries;
		if (!skip)
			w->st.requests += 1 + retries;
		if (rc == 0)
			w->st.data_bytes += pw.len;
		else if (!w->failed) {
			w->failed = 1;
			w->err = e;
		}
		pthread_cond_broadcast(&w->room);
	}
	pthread_mutex_unlock(&w->lock);
	blob_conn_free(&cn);
	return NULL;
}

int page_writer_start(struct page_writer **out, struct blob_client *c, struct lease_keeper *lease, int jobs,
		      int queue_max, struct err *e)
{
	*out = NULL;
	if (jobs < 1 || jobs > PAGE_WRITER_MAX_JOBS || queue_max < 1)
		return err_set(e, EXIT_INTERNAL, "starting the writers: bad parameters (a bug)");
	struct page_writer *w = calloc(1, sizeof *w);
	if (!w)
		return err_set(e, EXIT_INTERNAL, "starting the writers: out of memory");
	w->c = c;
	w->lease = lease;
	w->queue_max = queue_max;
	w->q = calloc((size_t)queue_max, sizeof *w->q);
	w->threads = calloc((size_t)jobs, sizeof *w->threads);
	pthread_condattr_t ca;
	if (!w->q || !w->threads || pthread_mutex_init(&w->lock, NULL) != 0 || pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 || pthread_cond_init(&w->work, &ca) != 0 ||
	    pthread_cond_init(&w->room, &ca) != 0) {
		free(w->q);
		free(w->threads);
		free(w);
		return err_set(e, EXIT_INTERNAL, "starting the writers: out of memory");
	}
	pthread_condattr_destroy(&ca);
	for (int i = 0; i < jobs; i++) {
		if (pthread_create(&w->threads[i], NULL, worker, w) != 0) {
			page_writer_stop(w);
			return err_set(e, EXIT_INTERNAL, "starting the writers: pthread_create failed");
		}
		w->nthreads++;
	}
	*out = w;
	return 0;
}

/* Under the lock: the failure to report instead of going on, if any. */
static int failing(struct page_writer *w, struct err *e)
{
	if (w->failed) {
		*e = w->err;
		return -1;
	}
	if (blob_stopping(w->c))
		return err_set(e, EXIT_DEVICE, "interrupted by a signal");
	return 0;
}

int page_writer_submit(struct page_writer *w, uint64_t offset, void *buf, size_t len, page_write_done *done,
		       void *arg, struct err *e)
{
	pthread_mutex_lock(&w->lock);
	int ret;
	/* timed waits: a stop request is noticed within 200 ms */
	while ((ret = failing(w, e)) == 0 && w->count == w->queue_max)
		wait_ms(&w->room, &w->lock, 200);
	if (ret == 0) {
		w->q[(w->head + w->count) % w->queue_max] =
			(struct page_write){.offset = offset, .buf = buf, .len = len, .done = done, .arg = arg};
		w->count++;
		pthread_cond_signal(&w->work);
	}
	pthread_mutex_unlock(&w->lock);
	return ret;
}

int page_writer_flush(struct page_writer *w, struct err *e)
{
	pthread_mutex_lock(&w->lock);
	int ret;
	while ((ret = failing(w, e)) == 0 && (w->count > 0 || w->in_flight > 0))
		wait_ms(&w->room, &w->lock, 200);
	/* a failure reported by the last write to end wins over a stop request */
	if (w->failed) {
		*e = w->err;
		ret = -1;
	}
	pthread_mutex_unlock(&w->lock);
	return ret;
}

void page_writer_get_stats(struct page_writer *w, struct page_writer_stats *st)
{
	pthread_mutex_lock(&w->lock);
	*st = w->st;
	pthread_mutex_unlock(&w->lock);
}

void page_writer_stop(struct page_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->quit = 1;
	pthread_cond_broadcast(&w->work);
	/* what was never sent goes back to its owner */
	while (w->count > 0) {
		struct page_write pw = w->q[w->head];
		w->head = (w->head + 1) % w->queue_max;
		w->count--;
		if (pw.done)
			pw.done(pw.arg, pw.buf, -1, NULL);
	}
	pthread_mutex_unlock(&w->lock);
	for (int i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	pthread_cond_destroy(&w->work);
	pthread_cond_destroy(&w->room);
	pthread_mutex_destroy(&w->lock);
	free(w->q);
	free(w->threads);
	free(w);
}
