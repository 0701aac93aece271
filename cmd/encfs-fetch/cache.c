/* The block cache: slots, a hash from block to slot, a clock for eviction, one lock and one
 * condition variable; fetch threads take loads from three queues (reads, read-ahead, hydration). */
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

#define PAGES_PER_BLOCK (CACHE_BLOCK / BLOB_PAGE)
#define MASK_WORDS (PAGES_PER_BLOCK / 64)
#define WRITEBACK_AGE_MS 2000
#define LOAD_RUN_MAX 8         /* blocks queued one after the other are fetched by one GET (8 MiB) */  /* dirty data older than this is written back in the background */

enum slot_state { S_FREE, S_LOADING, S_VALID, S_FAILED };
enum { Q_READ, Q_AHEAD, Q_HYDRATE, NQUEUES };

struct slot {
	uint64_t block;
	enum slot_state state;
	int refs;          /* readers and writers holding it */
	int writing;       /* Put Page calls in flight from it */
	int used;          /* clock bit */
	int dirty;         /* dmask has a bit set */
	int next;          /* hash chain, or free list */
	long long dirty_since;
	uint64_t dmask[MASK_WORDS]; /* dirty pages */
};

struct queue {
	int *v, head, count;
};

struct cache {
	struct blob_client *blob;
	uint64_t size, nblocks;
	int rw, hydrate;
	struct lease_keeper *lease;
	struct page_writer *writer;
	char etag[BLOB_ETAG_MAX];
	unsigned char *data;       /* nslots x CACHE_BLOCK, mmap'd */
	size_t data_len;
	uint8_t *has_data;         /* bit per block: holds a valid page */
	uint8_t *listed;           /* byte per page list segment: its pages are in has_data */
	uint64_t nsegs;
	int page_blob;
	struct slot *slots;
	int nslots, free_head, hand, ndirty, dirty_max, ahead_max;
	int *bucket;
	uint64_t nbuckets;
	struct queue q[NQUEUES];
	pthread_mutex_t lock;
	pthread_cond_t cv;         /* any slot changed state, a queue grew, a write ended */
	int quit, changed, write_failed, fail_logged;
	int submitting;            /* write_back runs taken from their slot, not yet in the page writer's queue */
	volatile sig_atomic_t cancel; /* closing: loads in flight give up */
	pthread_t *threads;
	int nthreads;
	pthread_t flusher, hydrator, lister;
	int flusher_started, hydrator_started, lister_started, listing_done;
	struct cache_stats st;
};

static int has_data(const struct cache *c, uint64_t b) { return c->has_data[b / 8] >> (b % 8) & 1; }
/* A block known to hold no valid page: its segment's page list has come and does not name it. */
static int unwritten(const struct cache *c, uint64_t b)
{
	/* a block or append blob has no page list: every block holds data (and no map is kept, whatever
	 * size the endpoint says) */
	return c->page_blob && !has_data(c, b) && c->listed[b * CACHE_BLOCK / BLOB_SEGMENT_SIZE];
}
static void set_has_data(struct cache *c, uint64_t b) { c->has_data[b / 8] |= (uint8_t)(1u << (b % 8)); }
static unsigned char *slot_data(struct cache *c, const struct slot *s)
{
	return c->data + (size_t)(s - c->slots) * CACHE_BLOCK;
}
static size_t block_len(const struct cache *c, uint64_t b)
{
	uint64_t start = b * CACHE_BLOCK;
	return c->size - start < CACHE_BLOCK ? (size_t)(c->size - start) : CACHE_BLOCK;
}

static void wait_cv(struct cache *c, long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_cond_timedwait(&c->cv, &c->lock, &ts);
}

/* --- the map from block to slot ---------------------------------------------------------------- */

static struct slot *lookup(struct cache *c, uint64_t b)
{
	for (int i = c->bucket[b & (c->nbuckets - 1)]; i >= 0; i = c->slots[i].next)
		if (c->slots[i].block == b)
			return &c->slots[i];
	return NULL;
}

static void hash_insert(struct cache *c, struct slot *s)
{
	int *head = &c->bucket[s->block & (c->nbuckets - 1)];
	s->next = *head;
	*head = (int)(s - c->slots);
}

static void hash_remove(struct cache *c, struct slot *s)
{
	int idx = (int)(s - c->slots);
	for (int *p = &c->bucket[s->block & (c->nbuckets - 1)]; *p >= 0; p = &c->slots[*p].next)
		if (*p == idx) {
			*p = s->next;
			return;
		}
}

static void slot_release_free(struct cache *c, struct slot *s)
{
	s->state = S_FREE;
	s->next = c->free_head;
	c->free_head = (int)(s - c->slots);
}

/* A slot for block b, hashed, in state LOADING: a free one, else the clock's next clean unheld one.
 * NULL when none is to be had (everything held, loading, dirty or being written). */
static struct slot *take_slot(struct cache *c, uint64_t b, int evict)
{
	struct slot *s = NULL;
	if (c->free_head >= 0) {
		s = &c->slots[c->free_head];
		c->free_head = s->next;
	} else if (evict) {
		for (int n = 0; n < 2 * c->nslots && !s; n++) {
			struct slot *t = &c->slots[c->hand];
			c->hand = (c->hand + 1) % c->nslots;
			if (t->state != S_VALID || t->refs || t->writing || t->dirty)
				continue;
			if (t->used) {
				t->used = 0;
				continue;
			}
			hash_remove(c, t);
			s = t;
		}
	}
	if (!s)
		return NULL;
	memset(s, 0, sizeof *s);
	s->block = b;
	s->state = S_LOADING;
	hash_insert(c, s);
	return s;
}

static void enqueue(struct cache *c, int q, struct slot *s)
{
	struct queue *qu = &c->q[q];
	qu->v[(qu->head + qu->count) % c->nslots] = (int)(s - c->slots);
	qu->count++;
	pthread_cond_broadcast(&c->cv);
}

/* --- fetching ----------------------------------------------------------------------------------- */

/* Under the lock: the blob changed behind the mount; said once. */
static void blob_changed(struct cache *c, const char *why)
{
	if (!c->changed)
		log_error("%s changed behind the mount (%s): reads fail with EIO from now on (unmount and mount "
			  "it again to see the new version)", c->blob->shown, why);
	c->changed = 1;
}

/* Loads n slots of consecutive blocks with one ranged GET. */
static void load(struct cache *c, struct blob_conn *cn, struct slot **run, int n)
{
	uint64_t b = run[0]->block;
	struct iovec iov[LOAD_RUN_MAX];
	for (int i = 0; i < n; i++)
		iov[i] = (struct iovec){.iov_base = slot_data(c, run[i]), .iov_len = block_len(c, run[i]->block)};
	struct err e = {0};
	char etag[BLOB_ETAG_MAX], why[BLOB_ETAG_MAX * 2 + 64];
	int rc = -1;
	uint64_t got = 0;
	pthread_mutex_lock(&c->lock);
	memcpy(etag, c->etag, sizeof etag);
	int changed = c->changed;
	pthread_mutex_unlock(&c->lock);
	/* read-only: pinned to the ETag seen at mount.  Read-write: under our lease, not an ETag (our
	 * own Put Pages change it all the time; a block is never fetched while a Put Page of it is in
	 * flight, as such a block is cached); a read refused for the lease means another writer may
	 * have written: never served, nor mixed with ours */
	if (!changed)
		rc = blob_get_range(c->blob, cn, b * CACHE_BLOCK, iov, n, c->lease ? NULL : etag,
				    c->lease ? c->lease->id : NULL, &c->cancel, &got, &e);
	pthread_mutex_lock(&c->lock);
	c->st.gets++;
	c->st.get_bytes += got;
	if (rc == BLOB_CHANGED && c->lease) {
		blob_changed(c, "a read under our lease was refused: the lease is lost, another writer may hold it");
	} else if (rc == BLOB_CHANGED) {
		snprintf(why, sizeof why, "its ETag is no longer %s", etag);
		blob_changed(c, why);
	} else if (rc == BLOB_NOT_FOUND) {
		blob_changed(c, "it was deleted");
	} else if (rc == -1 && !c->cancel) {
		log_error("reading %s: %s", c->blob->shown, e.msg);
	}
	for (int i = 0; i < n; i++) {
		struct slot *s = run[i];
		if (rc == 0) {
			s->state = S_VALID;
			s->used = 1;
			continue;
		}
		s->state = S_FAILED;
		hash_remove(c, s);
		if (s->refs == 0)
			slot_release_free(c, s);
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lock);
}

static void *fetcher(void *arg)
{
	struct cache *c = arg;
	struct blob_conn cn = {0};
	struct err e = {0};
	if (blob_conn_init(&cn, &e) != 0)
		log_error("%s", e.msg);
	pthread_mutex_lock(&c->lock);
	for (;;) {
		int q = 0;
		while (q < NQUEUES && c->q[q].count == 0)
			q++;
		if (c->quit)
			break;
		if (q == NQUEUES) {
			pthread_cond_wait(&c->cv, &c->lock);
			continue;
		}
		/* the block at the head, and the blocks right after it queued behind it (read-ahead
		 * queues runs): one GET for the run */
		struct queue *qu = &c->q[q];
		struct slot *run[LOAD_RUN_MAX];
		int n = 0;
		do {
			run[n++] = &c->slots[qu->v[qu->head]];
			qu->head = (qu->head + 1) % c->nslots;
			qu->count--;
		} while (n < LOAD_RUN_MAX && qu->count > 0 && c->slots[qu->v[qu->head]].block == run[n - 1]->block + 1);
		pthread_mutex_unlock(&c->lock);
		if (cn.h)
			load(c, &cn, run, n);
		pthread_mutex_lock(&c->lock);
		for (int i = 0; !cn.h && i < n; i++) { /* no connection: fail the loads */
			run[i]->state = S_FAILED;
			hash_remove(c, run[i]);
			if (run[i]->refs == 0)
				slot_release_free(c, run[i]);
			pthread_cond_broadcast(&c->cv);
		}
	}
	pthread_mutex_unlock(&c->lock);
	blob_conn_free(&cn);
	return NULL;
}

/* --- reading ------------------------------------------------------------------------------------ */

/* Under the lock: queue read-ahead of the blocks from..from+n-1 that hold data and are not cached,
 * taking only slots that need no waiting. */
static void read_ahead(struct cache *c, uint64_t from, uint64_t n)
{
	for (uint64_t b = from; b < c->nblocks && b < from + n; b++) {
		if (unwritten(c, b) || lookup(c, b))
			continue;
		struct slot *s = take_slot(c, b, 1);
		if (!s)
			return;
		enqueue(c, Q_AHEAD, s);
	}
}

/* Under the lock: a sequential reader at block next keeps window blocks asked for ahead of it,
 * topped up in batches of at least half the window once it has eaten into them: so the fetchers
 * get runs of consecutive blocks (one GET each, as the dense download makes) rather than the one
 * block that a reader's every step would add at the window's end.  Where the blocks asked for end
 * is looked up, not remembered: one whose GET failed, or that the clock took, is asked for again. */
static void stream_ahead(struct cache *c, const struct cache_stream *st)
{
	uint64_t end = st->next + st->window, b = st->next;
	if (end > c->nblocks)
		end = c->nblocks;
	while (b < end && (unwritten(c, b) || lookup(c, b)))
		b++;
	if (b < end && end - b >= (st->window + 1) / 2)
		read_ahead(c, b, end - b);
}

static void unpin(struct cache *c, struct slot *s)
{
	if (--s->refs == 0 && s->state == S_FAILED)
		slot_release_free(c, s);
}

#define READ_CHUNK_BLOCKS 4

/* Under the lock: blocks first..last (at most READ_CHUNK_BLOCKS) cached and held in held[] (NULL
 * for a block without data and not cached), their loads started in parallel.  -EIO when the
 * blob changed. */
static int hold_blocks(struct cache *c, uint64_t first, uint64_t last, struct slot **held)
{
	for (;;) {
		uint64_t b;
		int got_all = 1;
		for (b = first; b <= last; b++) {
			held[b - first] = NULL;
			if (c->changed)
				break;
			struct slot *s = lookup(c, b);
			if (!s && unwritten(c, b))
				continue;
			if (s) {
				c->st.hits++;
			} else if ((s = take_slot(c, b, 1)) != NULL) {
				c->st.misses++;
				enqueue(c, Q_READ, s);
			} else {
				got_all = 0; /* every slot held, loading or dirty: let go of ours and wait */
				break;
			}
			s->refs++;
			held[b - first] = s;
		}
		if (!c->changed && got_all)
			return 0;
		for (uint64_t k = first; k < b; k++)
			if (held[k - first])
				unpin(c, held[k - first]);
		if (c->changed)
			return -EIO;
		pthread_cond_signal(&c->cv);
		wait_cv(c, 100);
	}
}

int cache_read(struct cache *c, struct cache_stream *stream, char *buf, size_t size, uint64_t off)
{
	if (off >= c->size)
		return 0;
	if (size > c->size - off)
		size = (size_t)(c->size - off);
	if (size == 0)
		return 0;
	uint64_t first = off / CACHE_BLOCK, last = (off + size - 1) / CACHE_BLOCK;
	int ret = 0;
	pthread_mutex_lock(&c->lock);
	/* sequential: the window doubles up to its bound; anything else resets it */
	if (stream) {
		if (first == stream->next || first + 1 == stream->next)
			stream->window = stream->window ? stream->window * 2 : 1;
		else
			stream->window = 0;
		if (stream->window > (unsigned)c->ahead_max)
			stream->window = (unsigned)c->ahead_max;
		stream->next = last + 1;
	}
	for (uint64_t cf = first; cf <= last && ret == 0; cf += READ_CHUNK_BLOCKS) {
		uint64_t cl = last - cf >= READ_CHUNK_BLOCKS ? cf + READ_CHUNK_BLOCKS - 1 : last;
		struct slot *held[READ_CHUNK_BLOCKS];
		if ((ret = hold_blocks(c, cf, cl, held)) != 0)
			break;
		if (stream && stream->window && cf == first)
			stream_ahead(c, stream);
		for (uint64_t b = cf; b <= cl; b++) {
			struct slot *s = held[b - cf];
			uint64_t bstart = b * CACHE_BLOCK;
			size_t from = b == first ? (size_t)(off - bstart) : 0;
			size_t to = b == last ? (size_t)(off + size - bstart) : block_len(c, b);
			char *dst = buf + (bstart + from - off);
			if (!s) {
				if (ret == 0)
					memset(dst, 0, to - from);
				c->st.zero_reads++;
				continue;
			}
			while (s->state == S_LOADING)
				pthread_cond_wait(&c->cv, &c->lock);
			if (s->state != S_VALID || c->changed)
				ret = -EIO;
			if (ret == 0) {
				s->used = 1;
				pthread_mutex_unlock(&c->lock);
				memcpy(dst, slot_data(c, s) + from, to - from);
				pthread_mutex_lock(&c->lock);
			}
			unpin(c, s);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return ret ? ret : (int)size;
}

/* --- writing ------------------------------------------------------------------------------------ */

struct run {
	struct cache *c;
	struct slot *s;
	unsigned first, n; /* pages of the block */
};

static void mark_dirty(struct cache *c, struct slot *s, unsigned first, unsigned n)
{
	for (unsigned p = first; p < first + n; p++)
		s->dmask[p / 64] |= 1ull << (p % 64);
	if (!s->dirty) {
		s->dirty = 1;
		s->dirty_since = http_now_ms();
		c->ndirty++;
	}
}

static void put_done(void *arg, void *buf, int rc, const char *etag)
{
	struct run *r = arg;
	struct cache *c = r->c;
	pthread_mutex_lock(&c->lock);
	r->s->writing--;
	if (rc == 0) {
		c->st.puts++;
		c->st.put_bytes += (uint64_t)r->n * BLOB_PAGE;
		if (etag)
			snprintf(c->etag, sizeof c->etag, "%s", etag);
	} else {
		/* kept (not evictable) though no sync can succeed from now on: the first failure sticks */
		c->write_failed = 1;
		mark_dirty(c, r->s, r->first, r->n);
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lock);
	free(r);
}

/* Under the lock: every dirty slot not being written goes to the page writer, one Put Page per run
 * of dirty pages (a block is at most 1 MiB: within the 4 MiB of a call).  The lock is let go while
 * submitting (a full queue blocks; the writers' callbacks take the lock).  Returns how many slots
 * were dirty but still being written (to wait for). */
static int write_back(struct cache *c)
{
	int busy = 0;
	for (int i = 0; i < c->nslots; i++) {
		struct slot *s = &c->slots[i];
		if (!s->dirty || s->state != S_VALID)
			continue;
		if (s->writing) {
			busy++;
			continue;
		}
		uint64_t mask[MASK_WORDS];
		memcpy(mask, s->dmask, sizeof mask);
		memset(s->dmask, 0, sizeof s->dmask);
		s->dirty = 0;
		c->ndirty--;
		unsigned pages = (unsigned)(block_len(c, s->block) / BLOB_PAGE);
		for (unsigned p = 0; p < pages;) {
			if (!(mask[p / 64] >> (p % 64) & 1)) {
				p++;
				continue;
			}
			unsigned q = p;
			while (q < pages && (mask[q / 64] >> (q % 64) & 1))
				q++;
			struct run *r = malloc(sizeof *r);
			s->writing++;
			struct err e = {0};
			int rc = -1;
			if (r) {
				*r = (struct run){.c = c, .s = s, .first = p, .n = q - p};
				/* the slot no longer says dirty, and the queue does not hold the run yet: a
				 * sync meanwhile waits for it (cache_sync) */
				c->submitting++;
				pthread_mutex_unlock(&c->lock);
				rc = page_writer_submit(c->writer, s->block * CACHE_BLOCK + (uint64_t)p * BLOB_PAGE,
							slot_data(c, s) + (size_t)p * BLOB_PAGE, (size_t)(q - p) * BLOB_PAGE,
							put_done, r, &e);
				pthread_mutex_lock(&c->lock);
				if (--c->submitting == 0)
					pthread_cond_broadcast(&c->cv);
			} else {
				err_set(&e, EXIT_INTERNAL, "out of memory");
			}
			if (rc != 0) {
				if (!c->fail_logged)
					log_error("writing back to %s: %s (fsync and close fail with EIO from now on)",
						  c->blob->shown, e.msg);
				c->fail_logged = 1;
				c->write_failed = 1;
				s->writing--;
				mark_dirty(c, s, p, q - p);
				free(r);
			}
			p = q;
		}
	}
	return busy;
}

int cache_write(struct cache *c, const char *buf, size_t size, uint64_t off)
{
	if (!c->rw)
		return -EROFS;
	if (off >= c->size)
		return size ? -ENOSPC : 0;
	if (size > c->size - off)
		size = (size_t)(c->size - off);
	uint64_t first = off / CACHE_BLOCK, last = (off + size - 1) / CACHE_BLOCK;
	int ret = 0;
	pthread_mutex_lock(&c->lock);
	for (uint64_t b = first; b <= last && ret == 0;) {
		uint64_t bstart = b * CACHE_BLOCK;
		size_t blen = block_len(c, b);
		size_t from = b == first ? (size_t)(off - bstart) : 0;
		size_t to = b == last ? (size_t)(off + size - bstart) : blen;
		if (c->write_failed || c->changed) {
			ret = -EIO;
			break;
		}
		struct slot *s = lookup(c, b);
		if (s && (s->state == S_LOADING || s->writing)) {
			/* not while its bytes are on their way to the blob: a later Put Page carries ours */
			s->refs++;
			pthread_cond_wait(&c->cv, &c->lock);
			unpin(c, s);
			continue;
		}
		if ((!s || !s->dirty) && c->ndirty >= c->dirty_max) {
			pthread_cond_broadcast(&c->cv); /* the flusher writes back; we wait for room */
			wait_cv(c, 100);
			continue;
		}
		if (!s) {
			if (!(s = take_slot(c, b, 1))) {
				pthread_cond_broadcast(&c->cv);
				wait_cv(c, 100);
				continue;
			}
			if (!unwritten(c, b) && (from != 0 || to != blen)) {
				/* read-modify-write: the rest of the block comes from the blob first */
				c->st.misses++;
				enqueue(c, Q_READ, s);
				s->refs++;
				while (s->state == S_LOADING)
					pthread_cond_wait(&c->cv, &c->lock);
				if (s->state != S_VALID)
					ret = -EIO;
				unpin(c, s);
				continue;
			}
			memset(slot_data(c, s), 0, blen);
			s->state = S_VALID;
		}
		memcpy(slot_data(c, s) + from, buf + (bstart + from - off), to - from);
		s->used = 1;
		unsigned pf = (unsigned)(from / BLOB_PAGE), pl = (unsigned)((to - 1) / BLOB_PAGE);
		mark_dirty(c, s, pf, pl - pf + 1);
		set_has_data(c, b);
		b++;
	}
	pthread_mutex_unlock(&c->lock);
	return ret ? ret : (int)size;
}

int cache_sync(struct cache *c)
{
	if (!c->rw)
		return 0;
	pthread_mutex_lock(&c->lock);
	/* slots re-dirtied while their Put Page was in flight; and runs another thread (the flusher,
	 * another sync) took from their slot but has not queued yet: the flush below would not wait
	 * for those, and the sync would return 0 before their bytes are in the blob */
	while (!c->write_failed && (write_back(c) > 0 || c->submitting > 0))
		wait_cv(c, 100);
	pthread_mutex_unlock(&c->lock);
	/* waits for every write queued, ours and others'; a failure's reason is the page writer's */
	struct err e = {0};
	int failed = page_writer_flush(c->writer, &e) != 0;
	pthread_mutex_lock(&c->lock);
	if (failed && !c->fail_logged) {
		log_error("writing back to %s: %s (fsync and close fail with EIO from now on)", c->blob->shown, e.msg);
		c->fail_logged = 1;
	}
	if (failed)
		c->write_failed = 1;
	int ret = c->write_failed ? -EIO : 0;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_dirty(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	int d = c->ndirty > 0;
	pthread_mutex_unlock(&c->lock);
	return d;
}

/* Writes back in the background: dirty data at half its bound, or older than WRITEBACK_AGE_MS. */
static void *flusher(void *arg)
{
	struct cache *c = arg;
	pthread_mutex_lock(&c->lock);
	while (!c->quit) {
		long long now = http_now_ms(), oldest = now;
		for (int i = 0; i < c->nslots; i++)
			if (c->slots[i].dirty && c->slots[i].dirty_since < oldest)
				oldest = c->slots[i].dirty_since;
		if (!c->write_failed && c->ndirty > 0 &&
		    (c->ndirty >= c->dirty_max / 2 || now - oldest >= WRITEBACK_AGE_MS))
			write_back(c);
		wait_cv(c, 250);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* --hydrate: every block holding data into a free slot, one or two at a time, after the readers'
 * loads; stops when no slot is free (it never evicts). */
static void *hydrator(void *arg)
{
	struct cache *c = arg;
	uint64_t done = 0, blocks = 0;
	long long t0 = http_now_ms();
	pthread_mutex_lock(&c->lock);
	while (!c->quit && !c->listing_done)
		wait_cv(c, 200);
	for (uint64_t b = 0; b < c->nblocks && !c->quit && !c->changed; b++) {
		if (unwritten(c, b))
			continue;
		blocks++;
		if (lookup(c, b)) {
			done++;
			continue;
		}
		while (!c->quit && (c->q[Q_READ].count || c->q[Q_AHEAD].count || c->q[Q_HYDRATE].count))
			wait_cv(c, 100);
		if (c->quit)
			break;
		struct slot *s = c->free_head >= 0 ? take_slot(c, b, 0) : NULL;
		if (!s) {
			log_info("hydrating %s: the cache is full after %" PRIu64 " blocks (a larger --cache-mb holds "
				 "more)", c->blob->shown, done);
			pthread_mutex_unlock(&c->lock);
			return NULL;
		}
		enqueue(c, Q_HYDRATE, s);
		done++;
	}
	if (!c->quit && !c->changed)
		log_info("hydrated %s: %" PRIu64 " of %" PRIu64 " blocks of data cached in %lld ms", c->blob->shown,
			 done, blocks, http_now_ms() - t0);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* --- setting up ------------------------------------------------------------------------------- */

/* One segment of the blob's page list into the block map.  Read-write: without If-Match (our own
 * writes change the ETag; under our lease nobody else's do). */
static int list_segment(struct cache *c, struct blob_conn *cn, uint64_t seg, struct err *e)
{
	uint64_t start = seg * BLOB_SEGMENT_SIZE;
	uint64_t end = c->size - start > BLOB_SEGMENT_SIZE ? start + BLOB_SEGMENT_SIZE - 1 : c->size - 1;
	char etag[BLOB_ETAG_MAX];
	struct pagelist_walk w;
	pthread_mutex_lock(&c->lock);
	memcpy(etag, c->etag, sizeof etag);
	pthread_mutex_unlock(&c->lock);
	pagelist_walk_begin(&w, start, end, c->size);
	int ret = blob_list_segment(c->blob, cn, &w, c->rw ? NULL : etag, &c->cancel, e);
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; ret == 0 && i < w.ranges.n; i++)
		for (uint64_t b = w.ranges.v[i].start / CACHE_BLOCK; b <= w.ranges.v[i].end / CACHE_BLOCK; b++)
			set_has_data(c, b);
	if (ret == 0)
		c->listed[seg] = 1;
	pthread_mutex_unlock(&c->lock);
	pagelist_walk_free(&w);
	return ret;
}

/* The segments after the first, in the background: until a segment is listed its blocks are
 * fetched when read (a GET returns zeros for pages never written: right, only not free). */
static void *lister(void *arg)
{
	struct cache *c = arg;
	struct blob_conn cn;
	struct err e = {0};
	long long t0 = http_now_ms();
	if (blob_conn_init(&cn, &e) != 0) {
		log_warn("listing the pages of %s: %s (blocks are fetched when read)", c->blob->shown, e.msg);
	} else {
		for (uint64_t seg = 1; seg < c->nsegs && !c->quit; seg++)
			if (list_segment(c, &cn, seg, &e) != 0) {
				if (!c->cancel)
					log_warn("listing the pages of %s: %s (the blocks not listed are fetched when read)",
						 c->blob->shown, e.msg);
				break;
			}
		blob_conn_free(&cn);
		log_debug("listed the pages of %s in %lld ms", c->blob->shown, http_now_ms() - t0);
	}
	pthread_mutex_lock(&c->lock);
	c->listing_done = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static int setup_data(struct cache *c, const char *dir, struct err *e)
{
	c->data_len = (size_t)c->nslots * CACHE_BLOCK;
	if (!dir) {
		c->data = mmap(NULL, c->data_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			       -1, 0);
		if (c->data == MAP_FAILED) {
			c->data = NULL;
			return err_set(e, EXIT_INTERNAL, "setting up the cache: %zu MiB of memory: %s",
				       c->data_len >> 20, strerror(errno));
		}
		return 0;
	}
	/* an unnamed file: nothing is left behind in D whatever happens to the process */
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(e, errno == ENOENT || errno == ENOTDIR ? EXIT_USAGE : EXIT_DEVICE,
			       "setting up the cache in %s: %s (give an existing directory on a filesystem that "
			       "supports O_TMPFILE)", dir, strerror(errno));
	if (ftruncate(fd, (off_t)c->data_len) != 0) {
		int err = errno;
		close(fd);
		return err_set(e, EXIT_DEVICE, "setting up the cache in %s: %zu MiB: %s", dir, c->data_len >> 20,
			       strerror(err));
	}
	c->data = mmap(NULL, c->data_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int err = errno;
	close(fd);
	if (c->data == MAP_FAILED) {
		c->data = NULL;
		return err_set(e, EXIT_DEVICE, "setting up the cache in %s: mmap: %s", dir, strerror(err));
	}
	return 0;
}

int cache_open(struct cache **out, const struct cache_config *cfg, struct err *e)
{
	*out = NULL;
	struct cache *c = calloc(1, sizeof *c);
	if (!c)
		return err_set(e, EXIT_INTERNAL, "setting up the cache: out of memory");
	c->blob = cfg->blob;
	c->size = cfg->info->size;
	c->page_blob = strcmp(cfg->info->type, "PageBlob") == 0;
	if (c->page_blob && c->size > BLOB_PAGE_BLOB_MAX) {
		/* the map of blocks holding data is sized on it: never on a size the service cannot have */
		err_set(e, EXIT_NETWORK, "setting up the cache: %s says it is a page blob of %" PRIu64 " bytes, "
			"larger than a page blob can be (8 TiB) (check the endpoint)", c->blob->shown, c->size);
		free(c);
		return -1;
	}
	c->nblocks = (c->size + CACHE_BLOCK - 1) / CACHE_BLOCK;
	c->rw = cfg->lease != NULL;
	c->lease = cfg->lease;
	c->hydrate = cfg->hydrate;
	snprintf(c->etag, sizeof c->etag, "%s", cfg->info->etag);
	c->nslots = (int)((uint64_t)cfg->cache_mb * (1u << 20) / CACHE_BLOCK);
	c->dirty_max = c->nslots / 2;
	unsigned ahead = (unsigned)((uint64_t)cfg->cache_mb * (1u << 20) / 2 / CACHE_BLOCK);
	c->ahead_max = (int)(ahead < CACHE_READAHEAD_MAX / CACHE_BLOCK ? ahead : CACHE_READAHEAD_MAX / CACHE_BLOCK);
	c->free_head = -1;
	c->nbuckets = 1;
	while (c->nbuckets < 2 * (uint64_t)c->nslots)
		c->nbuckets *= 2;
	pthread_condattr_t ca;
	int ok = pthread_mutex_init(&c->lock, NULL) == 0 && pthread_condattr_init(&ca) == 0 &&
		 pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&c->cv, &ca) == 0;
	if (ok)
		pthread_condattr_destroy(&ca);
	c->slots = calloc((size_t)c->nslots, sizeof *c->slots);
	c->bucket = malloc(c->nbuckets * sizeof *c->bucket);
	c->nsegs = (c->size + BLOB_SEGMENT_SIZE - 1) / BLOB_SEGMENT_SIZE;
	/* a page blob (at most 8 TiB): a bit per block, at most 1 MiB; the others: none */
	c->has_data = calloc(c->page_blob ? (size_t)(c->nblocks / 8 + 1) : 1, 1);
	c->listed = calloc(c->page_blob ? (size_t)c->nsegs + 1 : 1, 1);
	c->threads = calloc((size_t)cfg->jobs, sizeof *c->threads);
	for (int q = 0; q < NQUEUES; q++)
		if (!(c->q[q].v = calloc((size_t)c->nslots, sizeof(int))))
			ok = 0;
	if (!ok || !c->slots || !c->bucket || !c->has_data || !c->listed || !c->threads) {
		cache_close(c);
		return err_set(e, EXIT_INTERNAL, "setting up the cache: out of memory");
	}
	for (uint64_t i = 0; i < c->nbuckets; i++)
		c->bucket[i] = -1;
	for (int i = c->nslots - 1; i >= 0; i--)
		slot_release_free(c, &c->slots[i]);
	if (setup_data(c, cfg->cache_dir, e) != 0) {
		cache_close(c);
		return -1;
	}
	if (c->page_blob && c->size > 0) {
		/* the first 512 MiB before serving (an image up to that size: all of it), the rest after */
		struct blob_conn cn;
		if (blob_conn_init(&cn, e) != 0 || list_segment(c, &cn, 0, e) != 0) {
			blob_conn_free(&cn);
			err_wrap(e, "listing the pages of %s", c->blob->shown); /* before c is freed */
			cache_close(c);
			return -1;
		}
		blob_conn_free(&cn);
	}
	if (c->nsegs > 1 && c->page_blob) {
		if (pthread_create(&c->lister, NULL, lister, c) != 0) {
			cache_close(c);
			return err_set(e, EXIT_INTERNAL, "setting up the cache: pthread_create failed");
		}
		c->lister_started = 1;
	} else {
		c->listing_done = 1;
	}
	if (c->rw && page_writer_start(&c->writer, c->blob, c->lease, cfg->jobs, 4 * c->nslots, e) != 0) {
		cache_close(c);
		return -1;
	}
	for (int i = 0; i < cfg->jobs; i++) {
		if (pthread_create(&c->threads[i], NULL, fetcher, c) != 0) {
			cache_close(c);
			return err_set(e, EXIT_INTERNAL, "setting up the cache: pthread_create failed");
		}
		c->nthreads++;
	}
	if (c->rw) {
		if (pthread_create(&c->flusher, NULL, flusher, c) != 0) {
			cache_close(c);
			return err_set(e, EXIT_INTERNAL, "setting up the cache: pthread_create failed");
		}
		c->flusher_started = 1;
	}
	if (c->hydrate && pthread_create(&c->hydrator, NULL, hydrator, c) == 0)
		c->hydrator_started = 1;
	*out = c;
	return 0;
}

void cache_get_stats(struct cache *c, struct cache_stats *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->st;
	pthread_mutex_unlock(&c->lock);
}

void cache_cancel(struct cache *c) { c->cancel = 1; }

void cache_close(struct cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->quit = 1;
	c->cancel = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lock);
	if (c->hydrator_started)
		pthread_join(c->hydrator, NULL);
	if (c->lister_started)
		pthread_join(c->lister, NULL);
	if (c->flusher_started)
		pthread_join(c->flusher, NULL);
	for (int i = 0; i < c->nthreads; i++)
		pthread_join(c->threads[i], NULL);
	if (c->writer)
		page_writer_stop(c->writer);
	if (c->data)
		munmap(c->data, c->data_len);
	for (int q = 0; q < NQUEUES; q++)
		free(c->q[q].v);
	free(c->slots);
	free(c->bucket);
	free(c->has_data);
	free(c->listed);
	free(c->threads);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
