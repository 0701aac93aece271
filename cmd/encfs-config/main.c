/* encfs-config: validate the sidecar configuration and hand its fields to the shell. */
#include "config.h"

#include "cli.h"
#include "encode.h"
#include "io.h"
#include "log.h"
#include "secmem.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
	"usage: encfs-config [-v] [--allow-raw-key] [--allow-http] [--template] [-f FILE] check\n"
	"       encfs-config [-v] [--allow-raw-key] [--allow-http] [--template] [-f FILE] count\n"
	"       encfs-config [-v] [--allow-raw-key] [--allow-http] [--template] [-f FILE] get\n"
	"                    [--hex-decode | --json] PATH\n"
	"       encfs-config -h | --help\n"
	"\n"
	"  -f, --file FILE    read the configuration from FILE (- for stdin) instead of\n"
	"                     $EncfsSideCarArgs; base64 of the JSON, or the JSON itself\n"
	"  --allow-raw-key    accept raw_key (tests only)\n"
	"  --allow-http       accept plain http:// URLs and endpoints (tests only)\n"
	"  --template         warn about \"<...>\" placeholders instead of refusing them\n"
	"  --hex-decode       get: print the bytes a hex string stands for (raw_key)\n"
	"  --json             get: print the value as JSON (objects and arrays too)\n"
	"  -v, --verbose      log more (repeatable)\n"
	"  -h, --help         print this help\n";

static char *read_config(const char *file, size_t *len)
{
	if (file) {
		int is_stdin = strcmp(file, "-") == 0;
		if (is_stdin)
			stdin_refuse_tty("config: reading standard input", "pipe the configuration in, give "
					 "-f FILE, or set EncfsSideCarArgs");
		char *text = read_file_capped(file, CONFIG_MAX_BYTES * 2, len);
		if (!text)
			die(EXIT_CONFIG, "config: reading %s: %s (check the path)", is_stdin ? "standard input" : file,
			    errno == EFBIG ? "too large" : strerror(errno));
		if (is_stdin && strspn(text, " \t\r\n") == *len) {
			struct err e;
			stdin_empty(&e, "config: reading standard input", "pipe the configuration in");
			die_err(&e);
		}
		return text;
	}
	const char *env = getenv("EncfsSideCarArgs");
	if (!env)
		die(EXIT_CONFIG, "config: EncfsSideCarArgs is not set (set it to the base64 of the JSON "
		    "configuration, or pass -f file)");
	*len = strlen(env);
	char *text = strdup(env);
	if (!text)
		die(EXIT_INTERNAL, "config: out of memory");
	return text;
}

/* Prints the bytes of the hex string at path (raw_key, for encfs-dmsetup's key file). */
static int get_hex_bytes(struct config *c, const char *path)
{
	int tok = json_get(&c->json, 0, path);
	if (tok < 0)
		return EXIT_OK;
	size_t n;
	const char *hex = json_raw(&c->json, tok, &n);
	struct secbuf b;
	if (json_type(&c->json, tok) != JSON_STRING)
		die(EXIT_USAGE, "get --hex-decode %s: is %s, not a hex string", path,
		    json_type_name(json_type(&c->json, tok)));
	if (isatty(STDOUT_FILENO))
		die(EXIT_USAGE, "get --hex-decode %s: refusing to write key bytes to a terminal (pipe them "
		    "to the tool that needs them)", path);
	if (secbuf_alloc(&b, n / 2 + 1) != 0)
		die(EXIT_INTERNAL, "get %s: out of memory", path);
	if (hex_decode(hex, n, b.data, b.cap, &b.len) != 0)
		die(EXIT_CONFIG, "get --hex-decode %s: the value is not hex", path);
	int rc = write_all(STDOUT_FILENO, b.data, b.len) == 0 ? EXIT_OK : EXIT_INTERNAL;
	secbuf_free(&b);
	return rc;
}

/* Prints the value at path as JSON, as it was written (azure_info.certcache for encfs-attest). */
static int get_json(struct config *c, const char *path)
{
	int tok = json_get(&c->json, 0, path);
	if (tok < 0)
		return EXIT_OK;
	size_t n;
	const char *raw = json_raw(&c->json, tok, &n);
	if (json_type(&c->json, tok) == JSON_STRING)
		raw--, n += 2; /* json_raw leaves the quotes out */
	if (config_is_secret_path(path) && isatty(STDOUT_FILENO))
		die(EXIT_USAGE, "get %s: refusing to print a secret to a terminal", path);
	printf("%.*s\n", (int)n, raw);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_INTERNAL;
}

/* Prints the scalar at path: strings as they are, booleans as true/false, nothing when absent. */
static int get(struct config *c, const char *path)
{
	int tok = json_get(&c->json, 0, path);
	if (tok < 0)
		return EXIT_OK;
	enum json_type t = json_type(&c->json, tok);
	if (t == JSON_OBJECT || t == JSON_ARRAY)
		die(EXIT_USAGE, "get %s: is %s, not a single value (name a field inside it)", path,
		    json_type_name(t));
	if (config_is_secret_path(path) && isatty(STDOUT_FILENO))
		die(EXIT_USAGE, "get %s: refusing to print a secret to a terminal (pipe it to the tool "
		    "that needs it)", path);
	if (t == JSON_NULL)
		return EXIT_OK;
	char *s = t == JSON_STRING ? json_string(&c->json, tok) : NULL;
	size_t n;
	const char *out = s;
	if (t == JSON_STRING && !s)
		die(EXIT_INTERNAL, "get %s: out of memory", path);
	if (!s) {
		const char *raw = json_raw(&c->json, tok, &n);
		printf("%.*s\n", (int)n, raw);
	} else {
		for (const unsigned char *p = (const unsigned char *)out; *p; p++)
			if (*p < 0x20)
				die(EXIT_CONFIG, "get %s: the value holds a control character", path);
		printf("%s\n", out);
		wipe(s, strlen(s));
		free(s);
	}
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_INTERNAL;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"file", required_argument, NULL, 'f'},
		{"allow-raw-key", no_argument, NULL, 'R'},
		{"allow-http", no_argument, NULL, 'H'},
		{"template", no_argument, NULL, 'T'},
		{"hex-decode", no_argument, NULL, 'X'},
		{"json", no_argument, NULL, 'J'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *file = NULL;
	unsigned flags = 0;
	int ch, hex_bytes = 0, as_json = 0;

	log_init(argv[0]);
	secmem_init();
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "f:vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f': file = optarg; break;
		case 'R': flags |= CONFIG_ALLOW_RAW_KEY; break;
		case 'H': flags |= CONFIG_ALLOW_HTTP; break;
		case 'T': flags |= CONFIG_TEMPLATE; break;
		case 'X': hex_bytes = 1; break;
		case 'J': as_json = 1; break;
		case 'v': log_more_verbose(); break;
		case 'h': fputs(usage_text, stdout); return fflush(stdout) == 0 ? EXIT_OK : EXIT_INTERNAL;
		default: cli_bad_option(argv, "f:vh", longopts);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		cli_usage("give a command: check, count or get PATH");
	const char *cmd = argv[0];
	int is_get = strcmp(cmd, "get") == 0;
	if (!is_get && strcmp(cmd, "check") != 0 && strcmp(cmd, "count") != 0)
		cli_usage("unknown command %s (check, count or get PATH)", cmd);
	if (is_get && argc < 2)
		cli_usage("get needs PATH (a field such as azure_filesystems[0].mount_point)");
	if (argc > (is_get ? 2 : 1))
		cli_usage("unexpected argument %s (%s takes %s)", argv[is_get ? 2 : 1], cmd,
			  is_get ? "one PATH" : "no argument");
	if ((hex_bytes || as_json) && !is_get)
		cli_usage("--hex-decode and --json belong to get");
	if (hex_bytes && as_json)
		cli_usage("give --hex-decode or --json, not both");
	/* check names an unknown field once; get and count, which the sidecar runs for every field,
	 * do not repeat it */
	if (strcmp(cmd, "check") != 0)
		flags |= CONFIG_QUIET;

	size_t len;
	char *text = read_config(file, &len);
	struct config c;
	struct err e;
	int rc = config_load(&c, text, len, flags, &e);
	wipe(text, len);
	free(text);
	if (rc != 0)
		die_err(&e);

	if (strcmp(cmd, "check") == 0) {
		log_info("config: %d filesystem%s, valid", c.filesystems, c.filesystems == 1 ? "" : "s");
		rc = EXIT_OK;
	} else if (strcmp(cmd, "count") == 0) {
		printf("%d\n", c.filesystems);
		rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_INTERNAL;
	} else {
		rc = hex_bytes ? get_hex_bytes(&c, argv[1]) : as_json ? get_json(&c, argv[1]) : get(&c, argv[1]);
	}
	config_free(&c);
	return rc;
}
