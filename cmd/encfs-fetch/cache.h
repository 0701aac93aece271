/* The block cache of the FUSE mount: the blob in blocks of CACHE_BLOCK bytes, at most a fixed
 * number of them held (in memory, or in a file under --cache-dir), fetched in parallel by a pool
 * of threads with ranged GETs pinned to the blob's ETag, and, for a read-write mount, written back
 * with Put Page (through the page writer, under the lease).
 *
 * Memory: the slots (cache_mb MiB, touched as used), the page bitmap (one bit per block) and a
 * few KiB per slot; nothing grows with the blob's size beyond the bitmap.  Dirty data is at most
 * half the slots: writers wait for write-back beyond that. */
#ifndef ENCFS_FETCH_CACHE_H
#define ENCFS_FETCH_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "blob.h"
#include "lease.h"
#include "pagelist.h"
#include "pagewriter.h"

#define CACHE_BLOCK (1u << 20)          /* bytes per block: one ranged GET, at most one Put Page run */
#define CACHE_MIN_MB 16
#define CACHE_MAX_MB 65536              /* 64 GiB (with --cache-dir); each MiB costs ~300 bytes of memory */
#define CACHE_DEFAULT_MB 64
#define CACHE_READAHEAD_MAX (32u << 20) /* sequential read-ahead grows up to this (or half the cache) */

struct cache;

struct cache_config {
	struct blob_client *blob;
	const struct blob_info *info; /* size and ETag at mount */
	int jobs;                     /* ranged GETs (and Put Pages) in flight at once */
	unsigned cache_mb;
	const char *cache_dir;        /* NULL: memory */
	struct lease_keeper *lease;   /* read-write: the lease (the mount writes), else NULL */
	int hydrate;                  /* fill free slots with every written block, in the background */
};

/* Sets up the cache: its slots, its fetch threads, and the map of blocks that hold data (from the
 * blob's page list, listed here: a block with no valid page is never fetched).  -1 with e. */
int cache_open(struct cache **out, const struct cache_config *cfg, struct err *e);

/* Read-ahead state of one open file. */
struct cache_stream {
	uint64_t next;   /* the block after the last one read */
	unsigned window; /* blocks read ahead */
};

/* Reads size bytes at off (inside the blob) into buf: 0, or -errno (-EIO: a fetch failed or the
 * blob changed behind the mount, logged once). */
int cache_read(struct cache *c, struct cache_stream *st, char *buf, size_t size, uint64_t off);
/* Writes size bytes at off into the cache (read-write mounts): 0, or -errno (-EIO once a write
 * back failed or the lease is lost).  Blocks while dirty data is at its bound. */
int cache_write(struct cache *c, const char *buf, size_t size, uint64_t off);
/* Sends every dirty byte to the blob and waits for it: 0 when all of it is there, else -EIO (the
 * first failure sticks: every later sync fails too). */
int cache_sync(struct cache *c);
/* True once something was written and not yet synced. */
int cache_dirty(struct cache *c);

struct cache_stats {
	uint64_t gets, get_bytes, hits, misses, zero_reads, puts, put_bytes;
};
void cache_get_stats(struct cache *c, struct cache_stats *st);
/* A stop signal: the loads in flight give up at once and later ones fail (reads are EIO from now
 * on), so that FUSE workers waiting on a hung read let the loop end and the write-back start.
 * Async-signal-safe. */
void cache_cancel(struct cache *c);
/* Stops the threads and frees c (after cache_sync, for a read-write mount). */
void cache_close(struct cache *c);

#endif
