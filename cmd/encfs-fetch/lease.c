/* The lease keeper's thread: renew at a third of the duration; a renewal failing transiently is
 * retried until shortly before the lease would expire; then writes must stop. */
#include "lease.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "http.h"

static void deadline_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *keeper(void *arg)
{
	struct lease_keeper *k = arg;
	long period = k->duration_s * 1000L / 3;
	pthread_mutex_lock(&k->lock);
	while (!k->quit && !k->lost) {
		long long next = k->valid_until_ms - k->duration_s * 1000L + period;
		long long now = http_now_ms();
		if (now < next) {
			struct timespec ts;
			deadline_in(&ts, (long)(next - now));
			pthread_cond_timedwait(&k->cond, &k->lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&k->lock);
		struct err e = {0};
		long long sent = http_now_ms();
		/* retried until shortly before the lease would expire, not past it */
		long budget = (long)(k->valid_until_ms - sent) - 2000;
		int rc = budget > 0 ? blob_lease_renew(k->c, &k->cn, k->id, budget, &e)
				    : err_set(&e, EXIT_DEVICE, "Lease Blob (renew): no time left");
		pthread_mutex_lock(&k->lock);
		if (rc == 0) {
			k->valid_until_ms = sent + k->duration_s * 1000L;
			k->renewals++;
			log_debug("lease %s renewed", k->id);
		} else if (k->quit || blob_stopping(k->c)) {
			break; /* stopping anyway (a signal cut the renewal short) */
		} else {
			/* refused, or failing until shortly before the lease expires: writes must stop */
			k->lost = 1;
			k->lost_err = e;
			err_wrap(&k->lost_err, "keeping the lease on the blob");
			log_error("%s", k->lost_err.msg);
		}
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

int lease_keeper_start(struct lease_keeper *k, struct blob_client *c, const char *id, int duration_s,
		       long long acquired_ms, struct err *e)
{
	memset(k, 0, sizeof *k);
	k->c = c;
	snprintf(k->id, sizeof k->id, "%s", id);
	k->duration_s = duration_s;
	k->valid_until_ms = acquired_ms + duration_s * 1000L;
	pthread_condattr_t ca;
	if (blob_conn_init(&k->cn, e) != 0)
		return -1;
	if (pthread_mutex_init(&k->lock, NULL) != 0 || pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 || pthread_cond_init(&k->cond, &ca) != 0)
		return err_set(e, EXIT_INTERNAL, "keeping the lease: pthread setup failed");
	pthread_condattr_destroy(&ca);
	int rc = pthread_create(&k->thread, NULL, keeper, k);
	if (rc != 0)
		return err_set(e, EXIT_INTERNAL, "keeping the lease: pthread_create: %s", strerror(rc));
	k->started = 1;
	return 0;
}

int lease_keeper_check(struct lease_keeper *k, struct err *e)
{
	pthread_mutex_lock(&k->lock);
	int ret = 0;
	if (k->lost)
		ret = (*e = k->lost_err, -1);
	else if (http_now_ms() > k->valid_until_ms - k->duration_s * 1000L / 3)
		ret = err_set(e, EXIT_DEVICE, "keeping the lease on the blob: it could not be renewed and expires "
			      "soon (check the service and the network)");
	pthread_mutex_unlock(&k->lock);
	return ret;
}

int lease_keeper_release(struct lease_keeper *k, struct err *e)
{
	if (!k->started) {
		blob_conn_free(&k->cn);
		return 0;
	}
	pthread_mutex_lock(&k->lock);
	k->quit = 1;
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->lock);
	pthread_join(k->thread, NULL);
	k->started = 0;
	int ret = blob_lease_release(k->c, &k->cn, k->id, e);
	if (ret == 0)
		log_debug("lease %s released", k->id);
	blob_conn_free(&k->cn);
	pthread_cond_destroy(&k->cond);
	pthread_mutex_destroy(&k->lock);
	return ret;
}
