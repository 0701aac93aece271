/* common/log.c: redaction of secrets in every log line, levels, the log file. */
#include "io.h"
#include "log.h"
#include "secmem.h"
#include "service.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

static const char *redact(const char *in)
{
	static char out[1024];
	log_redact(in, out, sizeof out);
	return out;
}

int main(void)
{
	static const struct { const char *in, *out, *name; } v[] = {
		{"Authorization: Bearer abc.def-ghi_jkl", "Authorization: Bearer <redacted>", "bearer token"},
		{"bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "bearer <redacted>", "bearer, any case"},
		{"token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl end",
		 "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.<redacted> end", "JWT keeps header.payload"},
		{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.",
		 "unsigned JWT has nothing to cut"},
		{"GET https://a.blob.core.windows.net/c/b?sv=2021&sig=AbC%2Bd&se=x",
		 "GET https://a.blob.core.windows.net/c/b?sv=2021&sig=<redacted>&se=x", "SAS signature"},
		{"{\"access_token\":\"secret\\\"x\",\"expires_in\":1}",
		 "{\"access_token\":\"<redacted>\",\"expires_in\":1}", "access_token in JSON"},
		{"client_assertion=abc&x=1", "client_assertion=<redacted>&x=1", "client assertion"},
		{"{\"bearer_token\": \"xyz\"}", "{\"bearer_token\": \"xyz\"}", "spaced JSON is a different shape"},
		{"nothing secret here: eyJ but not a token", "nothing secret here: eyJ but not a token",
		 "ordinary text untouched"},
		{"Authorization: Bearer\nabcDEF123opaque", "Authorization: Bearer\n<redacted>",
		 "bearer token after a newline"},
		{"Bearer \r\t opaque.tok", "Bearer \r\t <redacted>", "bearer token after blanks and controls"},
		{"Bearers of news", "Bearers of news", "a word that starts with Bearer is not a token"},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
		is_str(redact(v[i].in), v[i].out, "redact: %s", v[i].name);

	/* control characters and bad UTF-8, as a hostile server sends them in ETags and error bodies */
	static const struct { const char *in, *out, *name; } sv[] = {
		{"ETag \"0x8D\x1b]0;pwned\x07\x1b[31m\"", "ETag \"0x8D\\x1b]0;pwned\\x07\\x1b[31m\"",
		 "OSC title and colour escapes"},
		{"a\nb\rc\td\x7f", "a\\x0ab\\x0dc\\x09d\\x7f", "newline, return, tab, DEL"},
		{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91",
		 "well-formed UTF-8 kept"},
		{"x\xc2\x9b" "31m", "x\\u009b" "31m", "C1 CSI escaped"},
		{"a\\x0aencfs: forged", "a\\\\x0aencfs: forged", "a backslash is escaped: no forged escapes"},
		{"l\xe2\x80\xa8" "s\xe2\x80\xa9" "b\xe2\x80\xae" "r\xe2\x81\xa6" "z\xe2\x80\x8b" "o\xef\xbb\xbf" ".",
		 "l\\u2028s\\u2029b\\u202er\\u2066z\\u200bo\\ufeff.",
		 "line/paragraph separators, bidi override and isolate, zero width, BOM"},
		{"\x9b\xff\xc3(\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80", "???" "(" "?????????",
		 "bytes that are not UTF-8: lone, truncated, overlong, surrogate, past U+10FFFF"},
	};
	for (size_t i = 0; i < sizeof sv / sizeof sv[0]; i++) {
		char out[256];
		log_sanitize(sv[i].in, out, sizeof out);
		is_str(out, sv[i].out, "sanitize: %s", sv[i].name);
	}
	char cut[6];
	log_sanitize("ab\xe2\x82\xac", cut, sizeof cut);
	is_str(cut, "ab\xe2\x82\xac", "sanitize keeps a whole character that fits");
	log_sanitize("abc\xe2\x82\xac", cut, sizeof cut);
	is_str(cut, "abc", "... and cuts before one that does not");
	log_sanitize("ab\x1b", cut, sizeof cut);
	is_str(cut, "ab", "... or before an escape that does not fit");

	char small[8];
	log_redact("Bearer abcdefghijkl", small, sizeof small);
	is_int((long long)strlen(small), 7, "redaction output is cut to its buffer");
	/* past a full buffer the walk must still end: it once stopped advancing there, and a message
	 * that redaction made longer than its 4 KiB buffer (each "sig=" and short value grows by
	 * "<redacted>") hung the tool at 100% CPU while it logged */
	alarm(10); /* a hang is a failure (killed by SIGALRM), not a test run that never ends */
	log_redact("plain text longer than eight", small, sizeof small);
	is_str(small, "plain t", "plain text longer than the buffer is cut, and the walk ends");
	static char grown[2401], grown_out[4096];
	for (size_t i = 0; i + 6 < sizeof grown; i += 6)
		memcpy(grown + i, "sig=x&", 6);
	log_redact(grown, grown_out, sizeof grown_out);
	is_int((long long)strlen(grown_out), (long long)sizeof grown_out - 1,
	       "a message redaction lengthens past its buffer is cut there, and the walk ends");
	alarm(0);

	/* the log file: created 0600, appended, lines redacted, level honoured */
	char path[512];
	snprintf(path, sizeof path, "%s/log", test_tmpdir());
	setenv("LogFile", path, 1);
	setenv("LogLevel", "info", 1);
	log_init("/usr/bin/encfs-test");
	is_str(log_progname(), "encfs-test", "program name is the basename");
	is_int(log_get_level(), LOG_INFO, "LogLevel=info");
	/* the lines go to standard error as well: captured there, and checked too */
	char errpath[512];
	snprintf(errpath, sizeof errpath, "%s/stderr", test_tmpdir());
	int saved = dup(STDERR_FILENO);
	int ef = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (saved < 0 || ef < 0 || dup2(ef, STDERR_FILENO) < 0)
		return 1;
	close(ef);
	log_info("hello Bearer abc.def.ghi");
	log_debug("not shown at info");
	log_warn("two\nlines");
	log_warn("etag %s", "\"1\x1b]0;x\x07\x1b[2J\"");
	if (dup2(saved, STDERR_FILENO) < 0)
		return 1;
	close(saved);
	struct stat st;
	is_int(stat(path, &st), 0, "LogFile created");
	is_int(st.st_mode & 0777, 0600, "... mode 0600");
	size_t len;
	char *text = read_file_capped(path, 4096, &len);
	like(text, "encfs-test: info: hello Bearer <redacted>", "info line written, redacted");
	ok(text && !strstr(text, "not shown"), "debug line not written at info");
	like(text, "encfs-test: warning: two\\x0alines", "a newline in a message cannot forge a log line");
	like(text, "encfs-test: warning: etag \"1\\x1b]0;x\\x07\\x1b[2J\"", "escapes reach the LogFile escaped");
	ok(text && !strchr(text, 0x1b) && !strchr(text, 0x07), "... and no ESC or BEL byte at all");
	free(text);
	text = read_file_capped(errpath, 4096, &len);
	like(text, "encfs-test: info: hello Bearer <redacted>", "standard error gets the same line, redacted");
	ok(text && !strstr(text, "abc.def.ghi"), "... and never the token");
	ok(text && !strchr(text, 0x1b) && strstr(text, "etag \"1\\x1b]0;x"), "... and escapes escaped");
	free(text);
	log_more_verbose();
	is_int(log_get_level(), LOG_DEBUG, "-v raises the level");

	setenv("LogLevel", "nonsense", 1);
	unsetenv("LogFile");
	saved = dup(STDERR_FILENO);
	ef = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (saved < 0 || ef < 0 || dup2(ef, STDERR_FILENO) < 0)
		return 1;
	close(ef);
	log_init("x");
	if (dup2(saved, STDERR_FILENO) < 0)
		return 1;
	close(saved);
	text = read_file_capped(errpath, 4096, &len);
	like(text, "x: warning: LogLevel=nonsense is not one of error, warning, info, debug, trace: using warning",
	     "an unknown LogLevel is warned about");
	free(text);
	is_int(log_get_level(), LOG_WARN, "an unknown LogLevel falls back to warning");

	/* a LogFile that is not a regular file (a FIFO planted where the log goes): refused at once,
	 * not waited on for a reader that never comes (every tool would hang at its start) */
	char fifo[600];
	snprintf(fifo, sizeof fifo, "%s/fifo", test_tmpdir());
	if (mkfifo(fifo, 0600) != 0)
		return 1;
	setenv("LogFile", fifo, 1);
	unsetenv("LogLevel");
	saved = dup(STDERR_FILENO);
	ef = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (saved < 0 || ef < 0 || dup2(ef, STDERR_FILENO) < 0)
		return 1;
	close(ef);
	alarm(10); /* the old open blocked for ever: SIGALRM fails the test instead */
	log_init("x");
	alarm(0);
	if (dup2(saved, STDERR_FILENO) < 0)
		return 1;
	close(saved);
	unsetenv("LogFile");
	text = read_file_capped(errpath, 4096, &len);
	like(text, "x: warning: LogFile=", "a FIFO as LogFile: warned about, not waited on");
	like(text, "not a regular file (logging to stderr only)", "... saying why");
	free(text);
	remove(fifo);

	struct err e;
	is_int(err_set(&e, EXIT_CONFIG, "inner: %s", "why"), -1, "err_set returns -1");
	err_wrap(&e, "outer");
	is_str(e.msg, "outer: inner: why", "err_wrap adds context");
	is_int(e.code, EXIT_CONFIG, "... keeping the code");

	/* secbuf_read_fd: cap honoured */
	int p[2];
	if (pipe(p) != 0)
		return 1;
	if (write(p[1], "0123456789", 10) != 10)
		return 1;
	close(p[1]);
	struct secbuf b;
	secmem_init();
	is_int(secbuf_read_fd(p[0], 9, &b), -1, "secbuf_read_fd refuses more than the cap");
	close(p[0]);
	if (pipe(p) != 0 || write(p[1], "0123456789", 10) != 10)
		return 1;
	close(p[1]);
	is_int(secbuf_read_fd(p[0], 10, &b), 0, "secbuf_read_fd reads exactly the cap");
	ok(b.len == 10 && memcmp(b.data, "0123456789", 10) == 0, "... all of it");
	secbuf_free(&b);
	close(p[0]);

	/* read_fd_capped around the 4096-byte growth step */
	static const size_t sizes[] = {0, 1, 4094, 4095, 4096, 4097, 10000};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char file[600];
		snprintf(file, sizeof file, "%s/f%zu", test_tmpdir(), i);
		FILE *f = fopen(file, "w");
		for (size_t k = 0; k < sizes[i]; k++)
			fputc('a' + (int)(k % 26), f);
		fclose(f);
		char *d = read_file_capped(file, sizes[i], &len);
		ok(d && len == sizes[i], "read_file_capped reads %zu bytes with cap %zu", sizes[i], sizes[i]);
		free(d);
		if (sizes[i] > 0) {
			d = read_file_capped(file, sizes[i] - 1, &len);
			ok(!d && errno == EFBIG, "... and refuses them with cap %zu", sizes[i] - 1);
			free(d);
		}
		remove(file);
	}
	remove(path);
	rmdir(test_tmpdir());
	return done_testing();
}
