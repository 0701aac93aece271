/* Logging, one-line errors and the exit codes shared by every encfs tool. */
#ifndef ENCFS_LOG_H
#define ENCFS_LOG_H

#include <stdarg.h>
#include <stddef.h>

/* Exit codes: the same table in every tool and in every man page (EXIT STATUS). */
enum {
	EXIT_OK = 0,
	EXIT_INTERNAL = 1, /* a bug, out of memory, or an unexpected system error */
	EXIT_USAGE = 2,    /* bad command line */
	EXIT_CONFIG = 3,   /* bad configuration or input file: fix the input */
	EXIT_NETWORK = 4,  /* a service could not be reached or kept failing (after retries) */
	EXIT_DENIED = 5,   /* a service refused: authentication, authorisation, release policy */
	EXIT_ATTEST = 6,   /* no attestation report or evidence could be produced or verified */
	EXIT_CRYPTO = 7,   /* a signature, chain, checksum, key or unwrap check failed */
	EXIT_DEVICE = 8,   /* device-mapper, loop, mount, file or blob I/O failed */
};

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

/* A failure to report: the exit code to use and the one line "what: why (hint)". */
struct err {
	int code;
	char msg[1024];
};

/* Sets the program name used in every line, the level from $LogLevel (default warning) and the
 * log file from $LogFile (opened append, mode 0600).  Call once, first thing in main. */
void log_init(const char *progname);
/* -v on the command line: one level more verbose per call. */
void log_more_verbose(void);
enum log_level log_get_level(void);
int log_enabled(enum log_level level);
const char *log_progname(void);

/* Writes "progname: level: message" to stderr and the log file when level is enabled.  Every
 * message is passed through log_redact first, so a token that slips into a message is cut. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_trace(...) log_msg(LOG_TRACE, __VA_ARGS__)

/* Prints "progname: <message>" (the message being "what failed: why (hint)") to stderr and the
 * log file, whatever the level, and exits with code. */
_Noreturn void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void die_err(const struct err *e);

/* Fills e (when not NULL) and returns -1, so library code can write `return err_set(e, ...)`. */
int err_set(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes e->msg with "what: " so a caller can add context to a lower-level failure. */
int err_wrap(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copies in to out (always NUL-terminated, cut to outsz) so that no secret survives:
 * "Bearer <token>" -> "Bearer <redacted>"; a JWT or JWS "eyJ..h.p.s" -> "h.p.<redacted>" (header and
 * payload stay readable, as DESIGN.md asks); the values of URL query parameters sig= and
 * client_assertion= and of the JSON members "access_token", "refresh_token", "client_secret" ->
 * "<redacted>". */
void log_redact(const char *in, char *out, size_t outsz);

/* Copies in to out (always NUL-terminated, cut to outsz at a character boundary) so that it is
 * one line of harmless text: bytes below 0x20 and 0x7f become "\xHH" (a newline "\x0a"), a
 * backslash "\\", C1 controls U+0080..U+009F, line and paragraph separators, bidi controls,
 * zero-width characters and the BOM "\uHHHH", and bytes that are not well-formed UTF-8 "?".  Every
 * log line and error message goes through it. */
void log_sanitize(const char *in, char *out, size_t outsz);

#endif
