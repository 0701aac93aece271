/* encfs-fetch: download an Azure page blob (or any blob) fast, sparse and pinned to one version;
 * or upload an image file as a page blob, only its written pages.  See man/encfs-fetch.1. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob.h"
#include "cli.h"
#include "fetch.h"
#include "http.h"
#include "identity.h"
#include "io.h"
#include "cache.h"
#include "log.h"
#include "mount.h"
#include "secmem.h"
#include "upload.h"

#define DEFAULT_JOBS 8
#define DEFAULT_TIMEOUT_S 30
#define DEFAULT_DEADLINE_S 120
#define STORAGE_RESOURCE "https://storage.azure.com"

static const char usage_text[] =
	"usage: encfs-fetch [-v] [--private] [--client-id ID] [-j N] [--timeout SECONDS]\n"
	"                   [--deadline SECONDS] [--cacert FILE] [--allow-http] [--force] [-o FILE] URL\n"
	"       encfs-fetch --upload IMAGE [-v] [--private] [--client-id ID] [-j N] [--timeout SECONDS]\n"
	"                   [--deadline SECONDS] [--cacert FILE] [--allow-http] [--force] URL\n"
	"       encfs-fetch --mount DIR [--read-write] [--cache-mb N] [--cache-dir D] [-j N] [--foreground]\n"
	"                   [--hydrate] [-v] [--private] [--client-id ID] [--timeout SECONDS]\n"
	"                   [--deadline SECONDS] [--cacert FILE] [--allow-http] URL\n"
	"\n"
	"Downloads the Azure blob at URL into FILE, or to standard output in order.  Page blobs:\n"
	"only the valid page ranges are fetched, in parallel, and left as holes otherwise.\n"
	"With --upload, creates the page blob at URL from IMAGE instead, sending only the pages\n"
	"IMAGE holds data in (not holes, not pages of zeros), and checks the blob's page list.\n"
	"With --mount, serves the blob as the file DIR/data (FUSE), fetched block by block on\n"
	"demand; prints the serving process's PID once DIR/data is readable.\n"
	"URL \"-\" reads the URL from standard input (one line): a SAS URL is a credential, which\n"
	"a command line shows to every process.\n"
	"\n"
	"  -o, --output FILE     write FILE (created 0600, sparse); without it, standard output\n"
	"  -u, --upload IMAGE    upload IMAGE (a regular file) as a new page blob at URL\n"
	"  -f, --force           replace FILE, or with --upload the blob, if it exists\n"
	"  -m, --mount DIR       serve the blob as DIR/data until unmounted or sent SIGTERM\n"
	"  --read-write          with --mount: writes go to the page blob, under a lease\n"
	"  --cache-mb N          with --mount: the block cache, 16 to 65536 MiB (default 64)\n"
	"  --cache-dir D         with --mount: keep the cache in an unnamed file in D, not in memory\n"
	"  --foreground          with --mount: serve in this process (no PID printed)\n"
	"  --hydrate             with --mount: fill the cache with every written block, in the background\n"
	"  --private             authenticate with a managed identity bearer token\n"
	"  --client-id ID        the user-assigned identity's client id (implies --private)\n"
	"  -j, --jobs N          requests in flight at once, 1 to 64 (default 8)\n"
	"  --timeout SECONDS     a request receiving nothing for this long is retried (default 30)\n"
	"  --deadline SECONDS    a request failing for this long is an error (default 120)\n"
	"  --cacert FILE         trust anchors (PEM) for TLS instead of the system store\n"
	"  --allow-http          allow http:// URLs (a local emulator)\n"
	"  -v, --verbose         more messages (repeat for more)\n"
	"  -h, --help            this help\n";

static volatile sig_atomic_t stop_requested;

/* Only sets a flag (async-signal-safe): the download loop sees it, stops, and main removes the
 * partial file; the upload stops its requests and releases its lease. */
static void on_signal(int sig) { stop_requested = sig; }

/* The file the download goes into.  Without --force, FILE itself, created O_EXCL (so it must not
 * exist).  With --force, a new temporary file next to FILE (mkostemp: O_EXCL, 0600), renamed over
 * FILE only once the download is complete: an existing FILE is left as it was on any failure. */
static int create_output(const char *output, int force, char **tmp_name)
{
	*tmp_name = NULL;
	if (!force) {
		int fd = open(output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST) /* made since the check in main */
			die(EXIT_USAGE, "%s exists (use --force to replace it)", output);
		if (fd < 0)
			die(EXIT_DEVICE, "creating %s: %s", output, strerror(errno));
		return fd;
	}
	const char *slash = strrchr(output, '/');
	size_t dir_len = slash ? (size_t)(slash - output) + 1 : 0;
	size_t n = strlen(output) + sizeof ".encfs-fetch.XXXXXX" + 1;
	char *tmp = malloc(n);
	if (!tmp)
		die(EXIT_INTERNAL, "creating %s: out of memory", output);
	snprintf(tmp, n, "%.*s.%s.encfs-fetch.XXXXXX", (int)dir_len, output, output + dir_len);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		die(EXIT_DEVICE, "creating a temporary file next to %s: %s", output, strerror(errno));
	*tmp_name = tmp;
	return fd;
}

/* URL "-": the URL is one line on standard input (a SAS URL holds a credential: in argv, any
 * process could read it from /proc). */
#define URL_MAX 8192
static char *read_url_line(void)
{
	static const char what[] = "reading the URL from standard input";
	size_t len;
	stdin_refuse_tty(what, "pipe the blob URL in, on one line");
	char *text = read_fd_capped(STDIN_FILENO, URL_MAX + 1, &len);
	if (!text)
		die(errno == EFBIG ? EXIT_USAGE : EXIT_INTERNAL, "reading the URL from standard input: %s",
		    errno == EFBIG ? "longer than 8192 bytes (give one blob URL)" : strerror(errno));
	if (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	if (len > 0 && text[len - 1] == '\r')
		text[--len] = '\0';
	if (len == 0) {
		struct err e;
		stdin_empty(&e, what, "pipe the blob URL in, on one line");
		die_err(&e);
	}
	if (memchr(text, '\n', len) || strlen(text) != len)
		die(EXIT_USAGE, "%s: more than one line (give one blob URL)", what);
	return text;
}

static long parse_long_opt(const char *name, const char *v, long min, long max)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || end == v || *end || x < min || x > max)
		cli_usage("%s %s: want a whole number from %ld to %ld", name, v, min, max);
	return x;
}

static void catch_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

struct options {
	const char *output, *upload, *client_id, *mount, *cache_dir;
	int force, use_identity, jobs, allow_http, read_write, foreground, hydrate;
	long cache_mb;
	long timeout_ms, deadline_ms;
};

/* The download: the blob's properties, then its bytes into FILE or to standard output. */
static int download(const struct options *o, struct blob_client *blob)
{
	struct err e = {0};
	struct fetch_config cfg = {.blob = blob, .jobs = o->jobs, .progress = isatty(STDERR_FILENO)};
	const char *output = o->output;
	struct blob_conn cn;
	struct blob_info info;
	if (blob_conn_init(&cn, &e) != 0 || blob_get_properties(blob, &cn, &info, &e) != 0)
		die_err(&e);
	blob_conn_free(&cn);
	if (strcmp(info.type, "PageBlob") != 0)
		log_warn("%s is a %s: downloading all of it; read-write use needs a page blob", blob->shown, info.type);
	log_info("%s: %s, %" PRIu64 " bytes, ETag %s", blob->shown, info.type, info.size, info.etag);

	int fd = STDOUT_FILENO;
	char *tmp_name = NULL;
	const char *partial = NULL; /* the file to remove on failure */
	if (output) {
		/* From here a signal must not leave a partial file: it stops the download, we clean up.
		 * (To standard output there is nothing to clean up: signals keep their default action,
		 * which also ends a write blocked on a reader that does not read.) */
		catch_signals();
		fd = create_output(output, o->force, &tmp_name);
		partial = tmp_name ? tmp_name : output;
		if (ftruncate(fd, (off_t)info.size) != 0) {
			int err = errno;
			unlink(partial);
			die(EXIT_DEVICE, "creating %s: setting its size to %" PRIu64 " bytes: %s", output, info.size,
			    strerror(err));
		}
	}

	struct fetch_stats st;
	long long t0 = http_now_ms();
	int rc = fetch_blob(&cfg, &info, fd, output == NULL, output ? output : "standard output", &st, &e);
	if (rc == 0 && output) {
		struct stat sb;
		if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size != info.size)
			rc = err_set(&e, EXIT_DEVICE, "checking %s: its size is not the blob's %" PRIu64 " bytes",
				     output, info.size);
	}
	if (output && close(fd) != 0 && rc == 0)
		rc = err_set(&e, EXIT_DEVICE, "writing %s: %s", output, strerror(errno));
	if (rc == 0 && tmp_name && rename(tmp_name, output) != 0)
		rc = err_set(&e, EXIT_DEVICE, "replacing %s: %s", output, strerror(errno));
	if (rc != 0) {
		if (partial)
			unlink(partial);
		die_err(&e);
	}
	free(tmp_name);
	long long ms = http_now_ms() - t0;
	log_info("fetched %s: %" PRIu64 " bytes of data in %lu ranges, %" PRIu64 " body bytes received, "
		 "%lu requests, %lu retries, %lld ms (%.1f MiB/s)",
		 blob->shown, st.data_bytes, st.ranges, st.body_bytes, st.requests, st.retries, ms,
		 ms > 0 ? (double)st.data_bytes / 1048576.0 / ((double)ms / 1000.0) : 0.0);
	return EXIT_OK;
}

/* The upload: IMAGE's written pages into a new page blob, under a lease, checked at the end. */
static int upload(const struct options *o, struct blob_client *blob)
{
	struct err e = {0};
	int fd = open(o->upload, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(errno == ENOENT ? EXIT_CONFIG : EXIT_DEVICE, "reading %s: %s", o->upload, strerror(errno));
	/* a signal stops the requests; the lease is released and the message says what is left */
	catch_signals();
	struct upload_config cfg = {.blob = blob, .image = o->upload, .jobs = o->jobs, .force = o->force,
				    .progress = isatty(STDERR_FILENO)};
	struct upload_stats st;
	long long t0 = http_now_ms();
	if (upload_image(&cfg, fd, &st, &e) != 0)
		die_err(&e);
	close(fd);
	long long ms = http_now_ms() - t0;
	log_info("uploaded %s to %s: %" PRIu64 " bytes into a page blob of %" PRIu64 ", %" PRIu64 " bytes of "
		 "data in %lu ranges (%" PRIu64 " zero pages skipped), %" PRIu64 " body bytes sent, %lu requests, "
		 "%lu retries, %lld ms (%.1f MiB/s), ETag %s",
		 o->upload, blob->shown, st.image_size, st.blob_size, st.data_bytes, st.ranges, st.zero_pages,
		 st.body_bytes, st.requests, st.retries, ms,
		 ms > 0 ? (double)st.data_bytes / 1048576.0 / ((double)ms / 1000.0) : 0.0, st.etag);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	enum { OPT_PRIVATE = 256, OPT_CLIENT_ID, OPT_TIMEOUT, OPT_DEADLINE, OPT_CACERT, OPT_ALLOW_HTTP,
	       OPT_READ_WRITE, OPT_CACHE_MB, OPT_CACHE_DIR, OPT_FOREGROUND, OPT_HYDRATE };
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},   {"upload", required_argument, NULL, 'u'},
		{"force", no_argument, NULL, 'f'},          {"mount", required_argument, NULL, 'm'},
		{"read-write", no_argument, NULL, OPT_READ_WRITE},
		{"cache-mb", required_argument, NULL, OPT_CACHE_MB},
		{"cache-dir", required_argument, NULL, OPT_CACHE_DIR},
		{"foreground", no_argument, NULL, OPT_FOREGROUND}, {"hydrate", no_argument, NULL, OPT_HYDRATE},
		{"private", no_argument, NULL, OPT_PRIVATE}, {"client-id", required_argument, NULL, OPT_CLIENT_ID},
		{"jobs", required_argument, NULL, 'j'},     {"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"deadline", required_argument, NULL, OPT_DEADLINE},
		{"cacert", required_argument, NULL, OPT_CACERT},
		{"allow-http", no_argument, NULL, OPT_ALLOW_HTTP},
		{"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	struct options o = {.jobs = DEFAULT_JOBS, .cache_mb = CACHE_DEFAULT_MB, .timeout_ms = DEFAULT_TIMEOUT_S * 1000L,
			    .deadline_ms = DEFAULT_DEADLINE_S * 1000L};

	log_init(argv[0]);
	secmem_init();
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:u:m:fj:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'o': o.output = optarg; break;
		case 'u': o.upload = optarg; break;
		case 'f': o.force = 1; break;
		case 'm': o.mount = optarg; break;
		case OPT_READ_WRITE: o.read_write = 1; break;
		case OPT_CACHE_MB: o.cache_mb = parse_long_opt("--cache-mb", optarg, CACHE_MIN_MB, CACHE_MAX_MB); break;
		case OPT_CACHE_DIR: o.cache_dir = optarg; break;
		case OPT_FOREGROUND: o.foreground = 1; break;
		case OPT_HYDRATE: o.hydrate = 1; break;
		case OPT_PRIVATE: o.use_identity = 1; break;
		case OPT_CLIENT_ID: o.client_id = optarg; o.use_identity = 1; break;
		case 'j': o.jobs = (int)parse_long_opt("--jobs", optarg, 1, FETCH_MAX_JOBS); break;
		case OPT_TIMEOUT: o.timeout_ms = parse_long_opt("--timeout", optarg, 1, 3600) * 1000; break;
		case OPT_DEADLINE: o.deadline_ms = parse_long_opt("--deadline", optarg, 1, 86400) * 1000; break;
		case OPT_CACERT: http_set_ca_bundle(optarg); break;
		case OPT_ALLOW_HTTP: o.allow_http = 1; break;
		case 'v': log_more_verbose(); break;
		case 'h': fputs(usage_text, stdout); return EXIT_OK;
		default: cli_bad_option(argv, "o:u:m:fj:vh", opts);
		}
	}
	if (optind == argc)
		cli_usage("give the blob URL (or - to read it from standard input)");
	if (optind < argc - 1)
		cli_usage("unexpected argument %s (give exactly one blob URL)", argv[optind + 1]);
	if (o.upload && o.output)
		cli_usage("--upload and -o exclude each other (one mode at a time)");
	if (o.mount && (o.upload || o.output))
		cli_usage("--mount and %s exclude each other (one mode at a time)", o.upload ? "--upload" : "-o");
	if (o.mount && o.force)
		cli_usage("--force does not apply to --mount (the blob is served as it is)");
	if (!o.mount && (o.read_write || o.cache_dir || o.foreground || o.hydrate))
		cli_usage("%s needs --mount DIR", o.read_write ? "--read-write" : o.cache_dir ? "--cache-dir" :
			  o.foreground ? "--foreground" : "--hydrate");
	struct stat dir_st;
	if (o.mount && stat(o.mount, &dir_st) != 0)
		die(EXIT_USAGE, "--mount %s: %s (give an existing, empty directory)", o.mount, strerror(errno));
	if (o.mount && !S_ISDIR(dir_st.st_mode))
		die(EXIT_USAGE, "--mount %s: not a directory (give an existing, empty directory)", o.mount);
	char mount_dir[PATH_MAX], cache_dir[PATH_MAX];
	if (o.mount && !realpath(o.mount, mount_dir))
		die(EXIT_USAGE, "--mount %s: %s", o.mount, strerror(errno));
	/* absolute: the serving process leaves the working directory (it would keep it busy) */
	if (o.cache_dir && !realpath(o.cache_dir, cache_dir))
		die(EXIT_USAGE, "--cache-dir %s: %s (give an existing directory)", o.cache_dir, strerror(errno));
	char *url_from_stdin = NULL;
	const char *url = argv[optind];
	if (strcmp(url, "-") == 0)
		url = url_from_stdin = read_url_line();

	struct err e = {0};
	struct blob_client blob;
	if (blob_client_init(&blob, url, o.allow_http, o.timeout_ms, o.deadline_ms, &stop_requested, &e) != 0)
		die_err(&e);
	blob.writing = o.upload != NULL || o.read_write;
	if (o.use_identity && strchr(url, '?'))
		cli_usage("--private and a SAS URL (with a query string) exclude each other (drop one)");
	if (o.use_identity && strncasecmp(url, "https://", 8) != 0)
		cli_usage("--private sends a bearer token, which needs an https:// URL");
	if (!o.mount && !o.upload && !o.output && isatty(STDOUT_FILENO))
		die(EXIT_USAGE, "refusing to write blob bytes to a terminal (give -o FILE or redirect "
			       "standard output)");
	struct stat old;
	if (o.output && !o.force && lstat(o.output, &old) == 0)
		die(EXIT_USAGE, "%s exists (use --force to replace it)", o.output);
	if (o.output && o.force && lstat(o.output, &old) == 0 && S_ISDIR(old.st_mode))
		die(EXIT_USAGE, "%s is a directory (--force replaces files only)", o.output);

	http_init();
	if (o.mount) {
		/* the bearer token is taken (and renewed) by the serving process */
		struct mount_config mc = {.blob = &blob, .dir = mount_dir, .read_write = o.read_write,
					  .foreground = o.foreground, .hydrate = o.hydrate, .jobs = o.jobs,
					  .cache_mb = (unsigned)o.cache_mb, .cache_dir = o.cache_dir ? cache_dir : NULL,
					  .client_id = o.client_id, .use_identity = o.use_identity};
		signal(SIGPIPE, SIG_IGN);
		int rc = mount_run(&mc);
		blob_client_free(&blob);
		free(url_from_stdin);
		return rc;
	}
	if (o.use_identity) {
		struct secbuf token = {0};
		if (identity_token(STORAGE_RESOURCE, o.client_id, &token, &e) != 0 ||
		    blob_client_set_bearer(&blob, token.data, token.len, &e) != 0)
			die_err(&e);
		secbuf_free(&token);
	}
	/* a closed pipe is a write error (EPIPE) we report, not a silent death */
	signal(SIGPIPE, SIG_IGN);

	int rc = o.upload ? upload(&o, &blob) : download(&o, &blob);
	blob_client_free(&blob);
	free(url_from_stdin);
	return rc;
}
