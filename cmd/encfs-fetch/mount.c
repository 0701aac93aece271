/* The mount mode: the process's life (fork, readiness, signals, write-back at the end), the lease,
 * the bearer token's renewal, and the FUSE operations on the one file DIR/data. */
#define FUSE_USE_VERSION 31
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "http.h"
#include "identity.h"
#include "jwt.h"
#include "lease.h"

#define STORAGE_RESOURCE "https://storage.azure.com"
#define FILE_NAME "data"
#define TOKEN_DEFAULT_RENEW_S 1800 /* a token whose lifetime we cannot read: renewed this often */
#define TOKEN_MIN_RENEW_S 5

struct mount {
	const struct mount_config *mc;
	struct blob_client *blob;
	struct blob_info info;
	struct cache *cache;
	struct lease_keeper lease;
	int leased;
	char path[PATH_MAX + 8];  /* DIR/data */
	struct timespec mounted;
	struct fuse *fuse;
	int ready_fd;             /* the readiness pipe's write end, or -1 */
	int ready_failed;
	dev_t fuse_dev;           /* st_dev of DIR/data: the FUSE connection */
	volatile sig_atomic_t loop_done; /* the FUSE loop returned: the watcher stops */
	pthread_t main_thread;    /* the one in fuse_loop_mt */
	int gone;                 /* unmounted behind the loop (end_loop ended it) */
	/* token renewal */
	pthread_t token_thread;
	int token_started;
	pthread_mutex_t token_lock;
	pthread_cond_t token_cv;
	int token_quit;
	long long token_renew_at; /* seconds since the epoch */
	long long token_exp;      /* -1: unknown */
};

static struct mount *M;

/* --- FUSE operations ------------------------------------------------------------------------- */

/* One open file: its read-ahead, and whether close must sync (FUSE's flush carries no flags). */
struct open_file {
	struct cache_stream stream;
	int writable;
	struct open_file *prev, *next; /* the files open now (freed at exit if still open) */
};
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct open_file *open_files;

static int is_file(const char *path) { return path && strcmp(path, "/" FILE_NAME) == 0; }

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->direct_io = 0;      /* the page cache stays: a loop device on DIR/data reads through it */
	cfg->kernel_cache = 1;   /* nobody else changes the file under the kernel's cache */
	cfg->attr_timeout = 3600;
	cfg->entry_timeout = 3600;
	cfg->negative_timeout = 3600;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE; /* every write reaches us at once: fsync is ours */
	conn->max_write = CACHE_BLOCK;
	conn->max_readahead = CACHE_BLOCK;
	return M;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	memset(st, 0, sizeof *st);
	st->st_uid = geteuid();
	st->st_gid = getegid();
	st->st_atim = st->st_mtim = st->st_ctim = M->mounted;
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (!is_file(path) && !fi)
		return -ENOENT;
	st->st_mode = S_IFREG | (M->mc->read_write ? 0600 : 0400);
	st->st_nlink = 1;
	st->st_size = (off_t)M->info.size;
	st->st_blocks = (blkcnt_t)((M->info.size + 511) / 512);
	st->st_blksize = 4096;
	return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	if (strcmp(path, "/") != 0)
		return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, FILE_NAME, NULL, 0, 0);
	return 0;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
	if (!is_file(path))
		return -ENOENT;
	if ((fi->flags & O_ACCMODE) != O_RDONLY && !M->mc->read_write)
		return -EROFS;
	struct open_file *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	pthread_mutex_lock(&open_lock);
	s->next = open_files;
	if (open_files)
		open_files->prev = s;
	open_files = s;
	pthread_mutex_unlock(&open_lock);
	fi->fh = (uintptr_t)s;
	fi->keep_cache = 1;
	return 0;
}

static int op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	if (off < 0)
		return -EINVAL;
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
	return cache_read(M->cache, of ? &of->stream : NULL, buf, size, (uint64_t)off);
}

static int op_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	if (off < 0)
		return -EINVAL;
	return cache_write(M->cache, buf, size, (uint64_t)off);
}

/* close(2): a file opened for writing is in the blob when close returns 0 */
static int op_flush(const char *path, struct fuse_file_info *fi)
{
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
	if (!of || !of->writable)
		return 0;
	return cache_sync(M->cache);
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi) { return cache_sync(M->cache); }

static int op_release(const char *path, struct fuse_file_info *fi)
{
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
	if (!of)
		return 0;
	pthread_mutex_lock(&open_lock);
	if (of->prev)
		of->prev->next = of->next;
	else
		open_files = of->next;
	if (of->next)
		of->next->prev = of->prev;
	pthread_mutex_unlock(&open_lock);
	free(of);
	return 0;
}

/* After the FUSE loop: files still open when it ended (SIGTERM, a lazy unmount) are never released. */
static void free_open_files(void)
{
	pthread_mutex_lock(&open_lock);
	while (open_files) {
		struct open_file *of = open_files;
		open_files = of->next;
		free(of);
	}
	pthread_mutex_unlock(&open_lock);
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	if (!is_file(path) && !fi)
		return -ENOENT;
	return (uint64_t)size == M->info.size ? 0 : -EPERM; /* the blob's size is fixed */
}

static int op_statfs(const char *path, struct statvfs *st)
{
	memset(st, 0, sizeof *st);
	st->f_bsize = st->f_frsize = 4096;
	st->f_blocks = (fsblkcnt_t)((M->info.size + 4095) / 4096);
	st->f_files = 2;
	st->f_namemax = 255;
	return 0;
}

static const struct fuse_operations ops = {
	.init = op_init,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.release = op_release,
	.truncate = op_truncate,
	.statfs = op_statfs,
};

/* --- readiness ----------------------------------------------------------------------------------- */

static void on_wake(int sig) { (void)sig; }

/* A stop signal while serving: loads in flight are cancelled (a read hung on a stalled service would
 * hold its FUSE worker, and the loop's end with it, until --deadline), then libfuse's own handler
 * ends the loop. */
static const int stop_signals[] = {SIGTERM, SIGINT, SIGHUP};
static struct sigaction fuse_handlers[3];
static void on_stop(int sig)
{
	if (M && M->cache)
		cache_cancel(M->cache);
	for (int i = 0; i < 3; i++) {
		const struct sigaction *h = &fuse_handlers[i];
		if (stop_signals[i] != sig)
			continue;
		if (h->sa_flags & SA_SIGINFO)
			h->sa_sigaction(sig, NULL, NULL);
		else if (h->sa_handler != SIG_IGN && h->sa_handler != SIG_DFL)
			h->sa_handler(sig);
	}
}

static void chain_stop_handlers(void)
{
	struct sigaction sa = {.sa_handler = on_stop};
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 3; i++)
		sigaction(stop_signals[i], &sa, &fuse_handlers[i]);
}

/* Unmounted here while the connection lives on (a copy of the mount in another mount namespace
 * keeps it, and the FUSE loop with it): end the loop ourselves.  fuse_loop_mt's thread waits in
 * sem_wait, which a signal interrupts; it then sees the exit flag and cancels its workers (they
 * are cancellable only while waiting for a request).  The connection is aborted too when the
 * fusectl filesystem is there. */
static void end_loop(struct mount *m)
{
	char path[96];
	unsigned long long id = ((unsigned long long)major(m->fuse_dev) << 20) | minor(m->fuse_dev);
	snprintf(path, sizeof path, "/sys/fs/fuse/connections/%llu/abort", id);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			log_debug("aborting the FUSE connection: %s: %s", path, strerror(errno));
		close(fd);
	}
	fuse_exit(m->fuse);
	pthread_kill(m->main_thread, SIGUSR1);
}

/* DIR/data opened and its size checked through the mount itself: only then is the mount ready (the
 * parent returns, encfs.sh attaches a loop device).  Then, while serving: is DIR still our mount? */
static void *ready_check(void *arg)
{
	struct mount *m = arg;
	struct stat st;
	int fd = open(m->path, O_RDONLY | O_CLOEXEC);
	int ok = fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size == m->info.size;
	int err = errno;
	if (fd >= 0)
		close(fd);
	if (!ok) {
		log_error("mounting %s on %s: %s is not readable through the mount: %s", m->blob->shown, m->mc->dir,
			  m->path, fd >= 0 ? "wrong size" : strerror(err));
		m->ready_failed = 1;
		umount2(m->mc->dir, MNT_DETACH); /* ends the FUSE loop */
		return NULL;
	}
	m->fuse_dev = st.st_dev;
	log_info("serving %s (%s, %" PRIu64 " bytes, ETag %s) as %s, %s, cache %u MiB%s%s", m->blob->shown,
		 m->info.type, m->info.size, m->info.etag, m->path, m->mc->read_write ? "read-write" : "read-only",
		 m->mc->cache_mb, m->mc->cache_dir ? " in " : "", m->mc->cache_dir ? m->mc->cache_dir : "");
	if (m->ready_fd >= 0) {
		ssize_t n;
		do
			n = write(m->ready_fd, "R", 1);
		while (n < 0 && errno == EINTR);
		close(m->ready_fd);
		m->ready_fd = -1;
	}
	/* the mount point's device (the directory under the mount when unmounted) says; a file still
	 * open (a loop device on DIR/data after a lazy unmount: the dm device above it is still in use)
	 * is served until it is closed */
	while (!m->loop_done) {
		struct timespec ts = {0, 250 * 1000000L};
		nanosleep(&ts, NULL);
		if (m->loop_done || (stat(m->mc->dir, &st) == 0 && st.st_dev == m->fuse_dev))
			continue;
		pthread_mutex_lock(&open_lock);
		int in_use = open_files != NULL;
		pthread_mutex_unlock(&open_lock);
		if (in_use)
			continue;
		if (!m->loop_done) {
			log_info("%s is no longer mounted here (its FUSE connection lives on elsewhere): ending",
				 m->mc->dir);
			m->gone = 1;
			end_loop(m);
		}
		break;
	}
	return NULL;
}

/* --- the bearer token ------------------------------------------------------------------------------ */

/* When to renew the token just set: two thirds into its lifetime (read from its exp and iat
 * claims), at least TOKEN_MIN_RENEW_S from now. */
static void plan_renewal(struct mount *m, const unsigned char *token, size_t len)
{
	long long now = (long long)time(NULL), exp = -1, nbf, iat = -1;
	struct jwt j;
	struct err e;
	if (jwt_decode((const char *)token, len, &j, &e) == 0)
		jwt_times(&j, &exp, &nbf, &iat);
	jwt_free(&j);
	long long at = now + TOKEN_DEFAULT_RENEW_S;
	if (exp > 0) {
		long long from = iat > 0 && iat <= now ? iat : now;
		at = from + (exp - from) * 2 / 3;
		if (at > exp - 300 && exp - 300 > now) /* Azure AD wants renewal 5 minutes before expiry */
			at = exp - 300;
	}
	if (at < now + TOKEN_MIN_RENEW_S)
		at = now + TOKEN_MIN_RENEW_S;
	m->token_exp = exp;
	m->token_renew_at = at;
}

static void *token_keeper(void *arg)
{
	struct mount *m = arg;
	pthread_mutex_lock(&m->token_lock);
	while (!m->token_quit) {
		long long now = (long long)time(NULL);
		if (now < m->token_renew_at) {
			struct timespec ts = {.tv_sec = (time_t)m->token_renew_at};
			pthread_cond_timedwait(&m->token_cv, &m->token_lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&m->token_lock);
		struct secbuf token = {0};
		struct err e = {0};
		int rc = identity_token(STORAGE_RESOURCE, m->mc->client_id, &token, &e);
		if (rc == 0)
			rc = blob_client_set_bearer(m->blob, token.data, token.len, &e);
		pthread_mutex_lock(&m->token_lock);
		if (rc == 0) {
			plan_renewal(m, token.data, token.len);
			log_info("renewed the access token for %s (next renewal in %lld s)", m->blob->shown,
				 m->token_renew_at - (long long)time(NULL));
		} else {
			/* the old token still works until it expires: try again soon */
			char until[64] = "unknown";
			if (m->token_exp > 0)
				jwt_format_time(m->token_exp, until, sizeof until);
			log_warn("renewing the access token for %s: %s (the current one expires %s; retrying in %d s)",
				 m->blob->shown, e.msg, until, 2 * TOKEN_MIN_RENEW_S);
			m->token_renew_at = (long long)time(NULL) + 2 * TOKEN_MIN_RENEW_S;
		}
		secbuf_free(&token);
	}
	pthread_mutex_unlock(&m->token_lock);
	return NULL;
}

static int start_token_keeper(struct mount *m, struct err *e)
{
	struct secbuf token = {0};
	if (identity_token(STORAGE_RESOURCE, m->mc->client_id, &token, e) != 0 ||
	    blob_client_set_bearer(m->blob, token.data, token.len, e) != 0) {
		secbuf_free(&token);
		return -1;
	}
	plan_renewal(m, token.data, token.len);
	secbuf_free(&token);
	if (pthread_mutex_init(&m->token_lock, NULL) != 0 || pthread_cond_init(&m->token_cv, NULL) != 0 ||
	    pthread_create(&m->token_thread, NULL, token_keeper, m) != 0)
		return err_set(e, EXIT_INTERNAL, "keeping the bearer token: pthread setup failed");
	m->token_started = 1;
	return 0;
}

static void stop_token_keeper(struct mount *m)
{
	if (!m->token_started)
		return;
	pthread_mutex_lock(&m->token_lock);
	m->token_quit = 1;
	pthread_cond_signal(&m->token_cv);
	pthread_mutex_unlock(&m->token_lock);
	pthread_join(m->token_thread, NULL);
}

/* A SAS URL's se= (signed expiry), for a log line when it has passed or passes during the mount. */
static void note_sas_expiry(const struct blob_client *c)
{
	const char *q = strchr(c->url, '?');
	for (const char *p = q; p && *p; p = strchr(p + 1, '&')) {
		if (strncmp(p + 1, "se=", 3) != 0)
			continue;
		char v[64];
		size_t n = strcspn(p + 4, "&#");
		if (n >= sizeof v)
			return;
		memcpy(v, p + 4, n);
		v[n] = '\0';
		struct tm tm = {0};
		/* 2026-12-02T14:00:00Z, ':' possibly as %3A */
		int Y, mo, d, h = 0, mi = 0, s = 0;
		if (sscanf(v, "%4d-%2d-%2dT%2d%%3A%2d%%3A%2dZ", &Y, &mo, &d, &h, &mi, &s) < 3 &&
		    sscanf(v, "%4d-%2d-%2dT%2d:%2d:%2dZ", &Y, &mo, &d, &h, &mi, &s) < 3)
			return;
		tm.tm_year = Y - 1900;
		tm.tm_mon = mo - 1;
		tm.tm_mday = d;
		tm.tm_hour = h;
		tm.tm_min = mi;
		tm.tm_sec = s;
		long long t = (long long)timegm(&tm), now = (long long)time(NULL);
		char when[64];
		jwt_format_time(t, when, sizeof when);
		if (t <= now)
			log_error("the SAS token of %s expired %s: requests will be refused (give a new SAS URL)",
				  c->shown, when);
		else
			log_info("the SAS token of %s expires %s: the mount fails its reads and writes from then on "
				 "(mount again with a new SAS URL before)", c->shown, when);
		return;
	}
}

/* --- mounting -------------------------------------------------------------------------------------- */

/* The lease of a read-write mount: one writer at a time. */
static int take_lease(struct mount *m, struct err *e)
{
	struct blob_conn cn;
	char id[BLOB_LEASE_ID_MAX];
	if (blob_conn_init(&cn, e) != 0)
		return -1;
	blob_new_lease_id(id);
	int rc = BLOB_CHANGED;
	for (int tries = 0; rc == BLOB_CHANGED && tries < 3; tries++) {
		long long t0 = http_now_ms();
		rc = blob_lease_acquire(m->blob, &cn, LEASE_DURATION_S, id, m->info.etag, e);
		if (rc == 0) {
			rc = lease_keeper_start(&m->lease, m->blob, id, LEASE_DURATION_S, t0, e);
			m->leased = rc == 0;
		} else if (rc == BLOB_CHANGED && blob_get_properties(m->blob, &cn, &m->info, e) != 0) {
			rc = -1;
		}
	}
	if (rc == BLOB_LEASED) {
		struct blob_info now;
		if (blob_get_properties(m->blob, &cn, &now, e) != 0)
			memset(&now, 0, sizeof now);
		if (strcmp(now.lease_duration, "infinite") == 0)
			err_set(e, EXIT_DEVICE, "mounting %s read-write: another writer holds an infinite lease on it, "
				"which never expires (mount it read-only, or break that lease once its holder is gone)",
				m->blob->shown);
		else
			err_set(e, EXIT_DEVICE, "mounting %s read-write: another writer holds a lease on it (state %s); "
				"it expires within %d s of its holder's last renewal, and a live read-write mount renews "
				"it every %d s (mount it read-only, or stop the other writer)", m->blob->shown,
				now.lease_state[0] ? now.lease_state : "leased", LEASE_DURATION_S, LEASE_DURATION_S / 3);
	} else if (rc == BLOB_NOT_FOUND) {
		err_set(e, EXIT_CONFIG, "mounting %s read-write: the blob is gone", m->blob->shown);
	} else if (rc == BLOB_CHANGED) {
		err_set(e, EXIT_DEVICE, "mounting %s read-write: the blob keeps changing (is someone writing it?)",
			m->blob->shown);
	}
	blob_conn_free(&cn);
	return rc == 0 ? 0 : -1;
}

/* Everything up to a FUSE mount that serves: properties, lease, page list, cache. */
static int prepare(struct mount *m, struct err *e)
{
	const struct mount_config *mc = m->mc;
	struct blob_conn cn;
	if (mc->use_identity && start_token_keeper(m, e) != 0)
		return -1;
	note_sas_expiry(m->blob);
	if (blob_conn_init(&cn, e) != 0)
		return -1;
	int rc = blob_get_properties(m->blob, &cn, &m->info, e);
	blob_conn_free(&cn);
	if (rc != 0)
		return err_wrap(e, "mounting %s", mc->dir);
	if (mc->read_write && strcmp(m->info.type, "PageBlob") != 0)
		return err_set(e, EXIT_CONFIG, "mounting %s read-write: it is a %s, and only a page blob takes writes "
			       "in place (mount it without --read-write, or make a page blob of it: encfs-fetch -o "
			       "FILE, then encfs-fetch --upload FILE)", m->blob->shown, m->info.type);
	if (m->info.size > (uint64_t)INT64_MAX - CACHE_BLOCK)
		return err_set(e, EXIT_CONFIG, "mounting %s: size %" PRIu64 " is too large", m->blob->shown,
			       m->info.size);
	if (mc->read_write && take_lease(m, e) != 0)
		return -1;
	struct cache_config cc = {.blob = m->blob, .info = &m->info, .jobs = mc->jobs, .cache_mb = mc->cache_mb,
				  .cache_dir = mc->cache_dir, .lease = m->leased ? &m->lease : NULL,
				  .hydrate = mc->hydrate};
	return cache_open(&m->cache, &cc, e);
}

static void ignore_signals(void)
{
	struct sigaction sa = {.sa_handler = SIG_IGN};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* Serves until unmounted or signalled; the exit code. */
static int serve(struct mount *m)
{
	const struct mount_config *mc = m->mc;
	struct err e = {0};
	clock_gettime(CLOCK_REALTIME, &m->mounted);
	snprintf(m->path, sizeof m->path, "%s/" FILE_NAME, mc->dir);
	if (prepare(m, &e) != 0) {
		if (m->leased)
			lease_keeper_release(&m->lease, NULL);
		die_err(&e);
	}

	char opts[256];
	snprintf(opts, sizeof opts, "default_permissions,fsname=encfs-fetch,subtype=encfs-fetch%s",
		 mc->read_write ? "" : ",ro");
	char *argv[] = {(char *)log_progname(), "-o", opts, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	int rc = EXIT_OK;
	m->fuse = fuse_new(&args, &ops, sizeof ops, m);
	if (!m->fuse) {
		rc = err_set(&e, EXIT_INTERNAL, "mounting %s: fuse_new failed", mc->dir);
	} else if (fuse_mount(m->fuse, mc->dir) != 0) {
		rc = err_set(&e, EXIT_DEVICE, "mounting %s: the FUSE mount failed (is /dev/fuse there, and may this "
			     "user mount? fusermount3 must be installed for users other than root)", mc->dir);
	} else {
		struct fuse_session *se = fuse_get_session(m->fuse);
		pthread_t ready;
		int ready_started = 0;
		if (fuse_set_signal_handlers(se) != 0) {
			rc = err_set(&e, EXIT_INTERNAL, "mounting %s: installing the signal handlers failed", mc->dir);
		} else {
			struct sigaction sa = {.sa_handler = on_wake};
			sigemptyset(&sa.sa_mask);
			sigaction(SIGUSR1, &sa, NULL);
			chain_stop_handlers();
			m->main_thread = pthread_self();
			ready_started = pthread_create(&ready, NULL, ready_check, m) == 0;
			if (!ready_started)
				rc = err_set(&e, EXIT_INTERNAL, "mounting %s: pthread_create failed", mc->dir);
			else if (fuse_loop_mt(m->fuse, 0) != 0 && !m->ready_failed)
				log_info("the FUSE loop of %s ended with an error", mc->dir);
			fuse_remove_signal_handlers(se);
		}
		m->loop_done = 1;
		ignore_signals(); /* from here on, writing back is what we do */
		log_debug("the FUSE loop of %s ended: unmounting, writing back", mc->dir);
		if (ready_started)
			pthread_join(ready, NULL);
		if (!m->gone)
			fuse_unmount(m->fuse);
		if (m->ready_failed)
			rc = err_set(&e, EXIT_DEVICE, "mounting %s: the mount did not serve", mc->dir);
	}
	ignore_signals();
	if (m->fuse)
		fuse_destroy(m->fuse);
	fuse_opt_free_args(&args);
	free_open_files();

	/* unmounted or signalled: everything written goes to the blob, then the lease goes */
	if (mc->read_write && cache_sync(m->cache) != 0 && rc == EXIT_OK)
		rc = err_set(&e, EXIT_DEVICE, "unmounting %s: writing back to %s failed (see the lines above); what "
			     "was not synced may be lost", mc->dir, m->blob->shown);
	struct cache_stats st;
	cache_get_stats(m->cache, &st);
	log_debug("closing the cache of %s", mc->dir);
	cache_close(m->cache);
	log_debug("stopping the token renewal of %s", mc->dir);
	stop_token_keeper(m);
	struct err le = {0};
	if (m->leased && lease_keeper_release(&m->lease, &le) != 0)
		log_warn("releasing the lease on %s: %s (it expires by itself within %d s)", m->blob->shown, le.msg,
			 LEASE_DURATION_S);
	log_info("unmounted %s from %s: %" PRIu64 " GETs (%" PRIu64 " bytes), %" PRIu64 " hits, %" PRIu64
		 " misses, %" PRIu64 " reads of unwritten blocks, %" PRIu64 " Put Pages (%" PRIu64 " bytes)",
		 m->blob->shown, mc->dir, st.gets, st.get_bytes, st.hits, st.misses, st.zero_reads, st.puts,
		 st.put_bytes);
	if (rc != EXIT_OK)
		die_err(&e);
	return rc;
}

/* The waiting parent passes a stop signal on to the server, and waits on: the server then stops
 * (before or after it is ready) and the parent reports that, so that no server outlives a caller
 * that was stopped while it waited. */
static volatile sig_atomic_t server_pid;
static void forward_signal(int sig)
{
	if (server_pid > 0)
		kill((pid_t)server_pid, sig);
}

int mount_run(const struct mount_config *mc)
{
	static struct mount m;
	memset(&m, 0, sizeof m);
	m.mc = mc;
	m.blob = mc->blob;
	m.ready_fd = -1;
	M = &m;
	if (mc->foreground)
		return serve(&m);

	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		die(EXIT_INTERNAL, "mounting %s: pipe: %s", mc->dir, strerror(errno));
	fflush(NULL);
	sigset_t stops, old_mask;
	sigemptyset(&stops);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGHUP);
	sigprocmask(SIG_BLOCK, &stops, &old_mask);
	pid_t pid = fork();
	if (pid < 0)
		die(EXIT_INTERNAL, "mounting %s: fork: %s", mc->dir, strerror(errno));
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old_mask, NULL);
		close(p[0]);
		m.ready_fd = p[1];
		/* the server: its own session, no terminal input, standard output closed (a caller reading
		 * the PID from it sees its end), standard error kept for its log lines */
		setsid();
		if (chdir("/") != 0)
			log_debug("chdir /: %s", strerror(errno));
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			if (null > STDERR_FILENO)
				close(null);
		}
		exit(serve(&m));
	}
	close(p[1]);
	server_pid = pid;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = forward_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	char c;
	ssize_t n;
	do
		n = read(p[0], &c, 1);
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == 1 && c == 'R') {
		printf("%ld\n", (long)pid);
		return fflush(stdout) == 0 ? EXIT_OK : EXIT_INTERNAL;
	}
	/* the server ended before it was ready: it said why on standard error */
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die(EXIT_INTERNAL, "mounting %s: waitpid: %s", mc->dir, strerror(errno));
	if (WIFEXITED(status))
		return WEXITSTATUS(status) ? WEXITSTATUS(status) : EXIT_INTERNAL;
	die(EXIT_INTERNAL, "mounting %s: the serving process was killed by signal %d before the mount was ready",
	    mc->dir, WTERMSIG(status));
}
