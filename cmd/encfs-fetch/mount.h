/* The mount mode: the blob as DIR/data through FUSE (libfuse3), read through the block cache
 * (cache.h), written back with Put Page under a lease with --read-write. */
#ifndef ENCFS_FETCH_MOUNT_H
#define ENCFS_FETCH_MOUNT_H

#include "blob.h"

struct mount_config {
	struct blob_client *blob;
	const char *dir;        /* the mount point (an existing directory) */
	int read_write, foreground, hydrate, jobs;
	unsigned cache_mb;
	const char *cache_dir;  /* NULL: the cache is in memory */
	/* --private: how to get a new bearer token before the old one expires (NULL: none) */
	const char *client_id;
	int use_identity;
};

/* Mounts and serves until unmounted or sent SIGTERM/SIGINT/SIGHUP; then writes back, releases the
 * lease and returns the exit code.  Without foreground, forks first: the parent returns once
 * DIR/data is readable, after printing the serving process's PID on standard output (or with the
 * child's exit code, the child having printed why). */
int mount_run(const struct mount_config *mc);

#endif
