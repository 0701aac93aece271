/* Logging, one-line errors, redaction. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *progname = "encfs";
static enum log_level level = LOG_WARN;
static int log_fd = -1;

static const char *const level_names[] = {"error", "warning", "info", "debug", "trace"};

static int parse_level(const char *s, enum log_level *out)
{
	static const struct { const char *name; enum log_level level; } names[] = {
		{"error", LOG_ERROR}, {"fatal", LOG_ERROR}, {"panic", LOG_ERROR},
		{"warn", LOG_WARN},   {"warning", LOG_WARN}, {"info", LOG_INFO},
		{"debug", LOG_DEBUG}, {"trace", LOG_TRACE},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	return -1;
}

void log_init(const char *name)
{
	const char *slash = strrchr(name, '/');
	progname = slash ? slash + 1 : name;

	const char *lv = getenv("LogLevel");
	if (lv && *lv && parse_level(lv, &level) != 0) {
		level = LOG_WARN;
		log_warn("LogLevel=%s is not one of error, warning, info, debug, trace: using warning", lv);
	}
	const char *file = getenv("LogFile");
	if (file && *file) {
		/* a regular file only: O_NONBLOCK so that a FIFO put there fails instead of waiting
		 * for a reader (a symbolic link is not followed either) */
		log_fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
		struct stat st;
		const char *why = log_fd >= 0 ? NULL : errno == ENXIO ? "not a regular file" : strerror(errno);
		if (log_fd >= 0 && (fstat(log_fd, &st) != 0 || !S_ISREG(st.st_mode) ||
				    fcntl(log_fd, F_SETFL, O_APPEND) != 0)) {
			close(log_fd);
			log_fd = -1;
			why = "not a regular file";
		}
		if (log_fd < 0)
			log_warn("LogFile=%s: cannot open: %s (logging to stderr only)", file, why);
	}
}

void log_more_verbose(void)
{
	if (level < LOG_TRACE)
		level++;
}

enum log_level log_get_level(void) { return level; }
int log_enabled(enum log_level l) { return l <= level; }
const char *log_progname(void) { return progname; }

/* --- redaction ---------------------------------------------------------------------------- */

static int is_b64url(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

static int is_token_char(char c)
{
	return is_b64url(c) || c == '.' || c == '~' || c == '+' || c == '/' || c == '=' || c == '%';
}

/* Length of a JWT/JWS "h.p.s" starting at s (header must look like b64url JSON: "eyJ"), or 0.
 * *sig_at receives the offset of the signature part. */
static size_t jwt_span(const char *s, size_t *sig_at)
{
	if (strncmp(s, "eyJ", 3) != 0)
		return 0;
	size_t i = 0, dots = 0;
	for (;; i++) {
		if (is_b64url(s[i]))
			continue;
		if (s[i] == '.' && dots < 2) {
			if (++dots == 2)
				*sig_at = i + 1;
			continue;
		}
		break;
	}
	return dots == 2 ? i : 0;
}

static const char *const secret_params[] = {"sig=", "client_assertion=", "client_secret=",
					    "\"access_token\":\"", "\"refresh_token\":\"",
					    "\"client_secret\":\"", "\"bearer_token\":\""};

void log_redact(const char *in, char *out, size_t outsz)
{
	static const char cut[] = "<redacted>";
	size_t o = 0;
#define PUT(c)                                                                                     \
	do {                                                                                       \
		char c_ = (c); /* evaluated also when the buffer is full: PUT(in[i++]) must advance */ \
		if (o + 1 < outsz)                                                                 \
			out[o++] = c_;                                                             \
	} while (0)
#define PUTS(str)                                                                                  \
	do {                                                                                       \
		for (const char *p_ = (str); *p_; p_++)                                            \
			PUT(*p_);                                                                  \
	} while (0)

	if (outsz == 0)
		return;
	for (size_t i = 0; in[i];) {
		size_t sig_at = 0, n;
		/* "Bearer" and a run of blanks or control characters (a token split off by a newline
		 * is still a token) */
		if (strncasecmp(in + i, "Bearer", 6) == 0 && (unsigned char)in[i + 6] <= 0x20 && in[i + 6] &&
		    (i == 0 || !is_b64url(in[i - 1]))) {
			for (n = 0; n < 6; n++)
				PUT(in[i + n]);
			for (i += 6; in[i] && (unsigned char)in[i] <= 0x20; i++)
				PUT(in[i]);
			if (is_token_char(in[i])) {
				PUTS(cut);
				while (is_token_char(in[i]))
					i++;
			}
			continue;
		}
		if ((i == 0 || !is_b64url(in[i - 1])) && (n = jwt_span(in + i, &sig_at)) != 0) {
			for (size_t k = 0; k < sig_at; k++)
				PUT(in[i + k]);
			if (n > sig_at)
				PUTS(cut);
			i += n;
			continue;
		}
		int matched = 0;
		for (size_t p = 0; p < sizeof secret_params / sizeof secret_params[0]; p++) {
			size_t len = strlen(secret_params[p]);
			if (strncmp(in + i, secret_params[p], len) != 0)
				continue;
			PUTS(secret_params[p]);
			i += len;
			if (secret_params[p][0] == '"') {
				while (in[i] && in[i] != '"')
					i += (in[i] == '\\' && in[i + 1]) ? 2 : 1;
			} else {
				while (in[i] && in[i] != '&' && in[i] != ' ' && in[i] != '"' && in[i] != '\'')
					i++;
			}
			PUTS(cut);
			matched = 1;
			break;
		}
		if (!matched)
			PUT(in[i++]);
	}
	out[o] = '\0';
#undef PUT
#undef PUTS
}

/* --- output ------------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0 when it is not one (overlong forms,
 * surrogates and code points past U+10FFFF included). */
static size_t utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n;
	unsigned min, cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, min = 0x80, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, min = 0x800, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, min = 0x10000, cp = c & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void log_sanitize(const char *in, char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	if (outsz == 0)
		return;
	for (const unsigned char *p = (const unsigned char *)in; *p;) {
		char esc[8];
		size_t n = utf8_len(p), elen = 0;
		unsigned cp = n == 2 ? (p[0] & 0x1fu) << 6 | (p[1] & 0x3fu)
			    : n == 3 ? (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu) : 0;
		if (n == 1 && (*p < 0x20 || *p == 0x7f)) {
			/* C0 controls and DEL: \xHH, so an ESC from a server drives no terminal */
			esc[0] = '\\', esc[1] = 'x', esc[2] = hex[*p >> 4], esc[3] = hex[*p & 15];
			elen = 4;
		} else if (n == 1 && *p == '\\') {
			/* so that a server's "\x0a" reads differently from an escaped newline */
			esc[0] = esc[1] = '\\';
			elen = 2;
		} else if ((n == 2 && cp < 0xa0) || (n == 3 && ((cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
							      (cp >= 0x2060 && cp <= 0x2069) || cp == 0xfeff))) {
			/* C1 controls (CSI among them), and what viewers take as a line break or a change
			 * of direction, or do not show: line and paragraph separators, bidi controls,
			 * zero-width characters, the BOM */
			esc[0] = '\\', esc[1] = 'u';
			for (int k = 0; k < 4; k++)
				esc[2 + k] = hex[(cp >> (12 - 4 * k)) & 15];
			elen = 6;
		} else if (n == 0) {
			esc[0] = '?'; /* a byte that is not UTF-8 */
			elen = 1;
			n = 1;
		}
		const char *src = elen ? esc : (const char *)p;
		size_t len = elen ? elen : n;
		if (o + len >= outsz)
			break; /* cut at a character boundary, never inside one */
		memcpy(out + o, src, len);
		o += len;
		p += n;
	}
	out[o] = '\0';
}

__attribute__((format(printf, 2, 0))) static void emit(const char *prefix, const char *fmt,
							  va_list ap)
{
	char raw[4096], redacted[4096], clean[4096], line[4200];
	vsnprintf(raw, sizeof raw, fmt, ap);
	log_redact(raw, redacted, sizeof redacted);
	/* one line per message, and no byte that a terminal or log viewer would act on: servers'
	 * ETags, error codes and bodies reach messages */
	log_sanitize(redacted, clean, sizeof clean);
	int n = snprintf(line, sizeof line, "%s: %s%s\n", progname, prefix, clean);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
	if (write(STDERR_FILENO, line, len) < 0) {
		/* nowhere left to report it */
	}
	if (log_fd >= 0) {
		char stamp[64];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		size_t s = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ ", &tm);
		if (write(log_fd, stamp, s) < 0 || write(log_fd, line, len) < 0) {
			/* the log file is best effort */
		}
	}
}

void log_msg(enum log_level l, const char *fmt, ...)
{
	if (!log_enabled(l))
		return;
	char prefix[32];
	snprintf(prefix, sizeof prefix, "%s: ", level_names[l]);
	va_list ap;
	va_start(ap, fmt);
	emit(l == LOG_ERROR ? "" : prefix, fmt, ap);
	va_end(ap);
}

_Noreturn void die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit("", fmt, ap);
	va_end(ap);
	exit(code);
}

_Noreturn void die_err(const struct err *e)
{
	die(e->code ? e->code : EXIT_INTERNAL, "%s", e->msg[0] ? e->msg : "failed: no reason recorded");
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	if (!e)
		return -1;
	e->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return -1;
}

int err_wrap(struct err *e, const char *fmt, ...)
{
	if (!e)
		return -1;
	char what[512], old[sizeof e->msg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof old);
	snprintf(e->msg, sizeof e->msg, "%s: %s", what, old);
	return -1;
}
