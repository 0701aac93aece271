/* Keeping a blob lease: a thread renews it well before it expires, and says when it is lost, so
 * that a writer (the upload, the read-write mount) never writes on a lease it may no longer hold. */
#ifndef ENCFS_FETCH_LEASE_H
#define ENCFS_FETCH_LEASE_H

#include <pthread.h>

#include "blob.h"

#define LEASE_DURATION_S 60 /* renewed every third of it */

struct lease_keeper {
	struct blob_client *c;
	char id[BLOB_LEASE_ID_MAX];
	int duration_s;
	struct blob_conn cn;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int quit;
	long long valid_until_ms; /* ours at least until then: the last renewal's start + duration */
	int lost;
	struct err lost_err;
	unsigned long renewals;
};

/* Starts renewing the lease id (acquired by the caller at acquired_ms, for duration_s seconds). */
int lease_keeper_start(struct lease_keeper *k, struct blob_client *c, const char *id, int duration_s,
		       long long acquired_ms, struct err *e);
/* 0 while the lease is ours for at least another third of its duration; -1 with e filled
 * (EXIT_DEVICE) once it is lost, or about to expire because renewals keep failing. */
int lease_keeper_check(struct lease_keeper *k, struct err *e);
/* Stops renewing and releases the lease (also after a stop request).  -1 with e when the
 * release failed (the lease then expires by itself within duration_s). */
int lease_keeper_release(struct lease_keeper *k, struct err *e);

#endif
