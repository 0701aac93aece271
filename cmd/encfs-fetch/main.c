/* encfs-fetch: download an Azure page blob (or any blob) fast, sparse and pinned to one version.
 * See man/encfs-fetch.1. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch.h"
#include "http.h"
#include "identity.h"
#include "io.h"
#include "log.h"
#include "secmem.h"

#define DEFAULT_JOBS 8
#define DEFAULT_TIMEOUT_S 30
#define DEFAULT_DEADLINE_S 120
#define STORAGE_RESOURCE "https://storage.azure.com"

static const char usage_text[] =
	"usage: encfs-fetch [-v] [--private] [--client-id ID] [-j N] [--timeout SECONDS]\n"
	"                   [--deadline SECONDS] [--cacert FILE] [--allow-http] [--force] [-o FILE] URL\n"
	"\n"
	"Downloads the Azure blob at URL into FILE, or to standard output in order.  Page blobs:\n"
	"only the valid page ranges are fetched, in parallel, and left as holes otherwise.\n"
	"URL \"-\" reads the URL from standard input (one line): a SAS URL is a credential, which\n"
	"a command line shows to every process.\n"
	"\n"
	"  -o, --output FILE     write FILE (created 0600, sparse); without it, standard output\n"
	"  -f, --force           replace FILE if it exists\n"
	"  --private             authenticate with a managed identity bearer token\n"
	"  --client-id ID        the user-assigned identity's client id (implies --private)\n"
	"  -j, --jobs N          ranged GETs in flight at once, 1 to 64 (default 8)\n"
	"  --timeout SECONDS     a request receiving nothing for this long is retried (default 30)\n"
	"  --deadline SECONDS    a request failing for this long is an error (default 120)\n"
	"  --cacert FILE         trust anchors (PEM) for TLS instead of the system store\n"
	"  --allow-http          allow http:// URLs (a local emulator)\n"
	"  -v, --verbose         more messages (repeat for more)\n"
	"  -h, --help            this help\n";

static volatile sig_atomic_t stop_requested;

/* Only sets a flag (async-signal-safe): the download loop sees it, stops, and main removes the
 * partial file. */
static void on_signal(int sig) { stop_requested = sig; }

/* The file the download goes into.  Without --force, FILE itself, created O_EXCL (so it must not
 * exist).  With --force, a new temporary file next to FILE (mkostemp: O_EXCL, 0600), renamed over
 * FILE only once the download is complete: an existing FILE is left as it was on any failure. */
static int create_output(const char *output, int force, char **tmp_name)
{
	*tmp_name = NULL;
	if (!force) {
		int fd = open(output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			die(EXIT_DEVICE, "creating %s: %s%s", output, strerror(errno),
			    errno == EEXIST ? " (use --force to replace it)" : "");
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
	size_t len;
	char *text = read_fd_capped(STDIN_FILENO, URL_MAX + 1, &len);
	if (!text)
		die(errno == EFBIG ? EXIT_USAGE : EXIT_INTERNAL, "reading the URL from standard input: %s",
		    errno == EFBIG ? "longer than 8192 bytes (give one blob URL)" : strerror(errno));
	if (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	if (len > 0 && text[len - 1] == '\r')
		text[--len] = '\0';
	if (len == 0 || memchr(text, '\n', len) || strlen(text) != len)
		die(EXIT_USAGE, "reading the URL from standard input: %s",
		    len == 0 ? "empty (give the blob URL on one line)" : "more than one line (give one blob URL)");
	return text;
}

static long parse_long_opt(const char *name, const char *v, long min, long max)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || end == v || *end || x < min || x > max)
		die(EXIT_USAGE, "bad option %s %s: want an integer from %ld to %ld (see encfs-fetch --help)", name, v,
		    min, max);
	return x;
}

int main(int argc, char **argv)
{
	enum { OPT_PRIVATE = 256, OPT_CLIENT_ID, OPT_TIMEOUT, OPT_DEADLINE, OPT_CACERT, OPT_ALLOW_HTTP };
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},   {"force", no_argument, NULL, 'f'},
		{"private", no_argument, NULL, OPT_PRIVATE}, {"client-id", required_argument, NULL, OPT_CLIENT_ID},
		{"jobs", required_argument, NULL, 'j'},     {"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"deadline", required_argument, NULL, OPT_DEADLINE},
		{"cacert", required_argument, NULL, OPT_CACERT},
		{"allow-http", no_argument, NULL, OPT_ALLOW_HTTP},
		{"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	const char *output = NULL, *client_id = NULL;
	int force = 0, use_identity = 0;
	struct fetch_config cfg = {.jobs = DEFAULT_JOBS, .timeout_ms = DEFAULT_TIMEOUT_S * 1000L,
				   .deadline_ms = DEFAULT_DEADLINE_S * 1000L, .stop = &stop_requested};

	log_init(argv[0]);
	secmem_init();
	int c;
	while ((c = getopt_long(argc, argv, "o:fj:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'o': output = optarg; break;
		case 'f': force = 1; break;
		case OPT_PRIVATE: use_identity = 1; break;
		case OPT_CLIENT_ID: client_id = optarg; use_identity = 1; break;
		case 'j': cfg.jobs = (int)parse_long_opt("--jobs", optarg, 1, FETCH_MAX_JOBS); break;
		case OPT_TIMEOUT: cfg.timeout_ms = parse_long_opt("--timeout", optarg, 1, 3600) * 1000; break;
		case OPT_DEADLINE: cfg.deadline_ms = parse_long_opt("--deadline", optarg, 1, 86400) * 1000; break;
		case OPT_CACERT: http_set_ca_bundle(optarg); break;
		case OPT_ALLOW_HTTP: cfg.allow_http = 1; break;
		case 'v': log_more_verbose(); break;
		case 'h': fputs(usage_text, stdout); return EXIT_OK;
		default: fputs(usage_text, stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs(usage_text, stderr);
		die(EXIT_USAGE, "bad command line: give exactly one blob URL (see encfs-fetch --help)");
	}
	char *url_from_stdin = NULL;
	cfg.url = argv[optind];
	if (strcmp(cfg.url, "-") == 0)
		cfg.url = url_from_stdin = read_url_line();
	cfg.progress = isatty(STDERR_FILENO);

	struct err e = {0};
	if (fetch_check_url(cfg.url, cfg.allow_http, &e) != 0)
		die_err(&e);
	if (use_identity && strchr(cfg.url, '?'))
		die(EXIT_USAGE, "bad command line: --private and a SAS URL (with a query string) exclude each "
			       "other (drop one)");
	if (use_identity && strncasecmp(cfg.url, "https://", 8) != 0)
		die(EXIT_USAGE, "bad command line: --private sends a bearer token, which needs an https:// URL");
	if (!output && isatty(STDOUT_FILENO))
		die(EXIT_USAGE, "refusing to write blob bytes to a terminal (give -o FILE or redirect "
			       "standard output)");
	struct stat old;
	if (output && !force && lstat(output, &old) == 0)
		die(EXIT_USAGE, "%s exists (use --force to replace it)", output);
	if (output && force && lstat(output, &old) == 0 && S_ISDIR(old.st_mode))
		die(EXIT_USAGE, "%s is a directory (--force replaces files only)", output);

	http_init();
	struct secbuf token = {0}, auth = {0};
	if (use_identity) {
		if (identity_token(STORAGE_RESOURCE, client_id, &token, &e) != 0)
			die_err(&e);
		static const char prefix[] = "Authorization: Bearer ";
		if (secbuf_alloc(&auth, sizeof prefix + token.len) != 0)
			die(EXIT_INTERNAL, "getting a token: out of memory");
		memcpy(auth.data, prefix, sizeof prefix - 1);
		memcpy(auth.data + sizeof prefix - 1, token.data, token.len);
		auth.len = sizeof prefix - 1 + token.len;
		auth.data[auth.len] = '\0';
		secbuf_free(&token);
		cfg.auth = (const char *)auth.data;
	}

	struct blob_info info;
	if (blob_get_info(&cfg, &info, &e) != 0)
		die_err(&e);
	char shown[512];
	http_url_for_log(cfg.url, shown, sizeof shown);
	if (strcmp(info.type, "PageBlob") != 0)
		log_warn("%s is a %s: downloading all of it; read-write use needs a page blob", shown, info.type);
	log_info("%s: %s, %" PRIu64 " bytes, ETag %s", shown, info.type, info.size, info.etag);

	/* a closed pipe is a write error (EPIPE) we report, not a silent death */
	signal(SIGPIPE, SIG_IGN);
	int fd = STDOUT_FILENO;
	char *tmp_name = NULL;
	const char *partial = NULL; /* the file to remove on failure */
	if (output) {
		/* From here a signal must not leave a partial file: it stops the download, we clean up.
		 * (To standard output there is nothing to clean up: signals keep their default action,
		 * which also ends a write blocked on a reader that does not read.) */
		struct sigaction sa = {.sa_handler = on_signal};
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
		fd = create_output(output, force, &tmp_name);
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
	secbuf_free(&auth);
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
	free(url_from_stdin);
	long long ms = http_now_ms() - t0;
	log_info("fetched %s: %" PRIu64 " bytes of data in %lu ranges, %" PRIu64 " body bytes received, "
		 "%lu requests, %lu retries, %lld ms (%.1f MiB/s)",
		 shown, st.data_bytes, st.ranges, st.body_bytes, st.requests, st.retries, ms,
		 ms > 0 ? (double)st.data_bytes / 1048576.0 / ((double)ms / 1000.0) : 0.0);
	return EXIT_OK;
}
