/* libFuzzer target: redaction and sanitizing of log messages, which carry servers' text (ETags,
 * error codes, bodies).  Checks what they promise, for any input and any buffer size: the result
 * fits and ends in NUL; sanitized text is well-formed UTF-8 with no control character (so one
 * line, and nothing a terminal acts on); every "sig=" left after redaction is followed by the
 * redaction mark (or is cut at the end of the buffer). */
#include "log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_sanitized(const unsigned char *s)
{
	while (*s) {
		unsigned c = *s;
		size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
		if (n == 0 || (n == 1 && (c < 0x20 || c == 0x7f)))
			abort();
		for (size_t i = 1; i < n; i++)
			if ((s[i] & 0xc0) != 0x80)
				abort();
		/* C1 controls (U+0080..U+009F) and U+2028/U+2029 never pass */
		if (n == 2 && c == 0xc2 && s[1] < 0xa0)
			abort();
		if (n == 3 && c == 0xe2 && s[1] == 0x80 && (s[2] == 0xa8 || s[2] == 0xa9))
			abort();
		s += n;
	}
}

static void check_redacted(const char *s, size_t outsz)
{
	static const char mark[] = "<redacted>";
	size_t len = strlen(s);
	for (const char *p = s; (p = strstr(p, "sig=")) != NULL; p += 4) {
		const char *v = p + 4;
		size_t left = len - (size_t)(v - s);
		/* a value cut by the buffer's end may show part of the mark, or nothing */
		if (left >= sizeof mark - 1 ? strncmp(v, mark, sizeof mark - 1) != 0
					    : strncmp(v, mark, left) != 0 && len + 1 < outsz)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 8192)
		return 0;
	size_t outsz = data[0] % 2 ? 4096 : (size_t)data[0] / 2 + 1; /* small buffers too */
	char *in = malloc(size);
	char *out = malloc(outsz), *clean = malloc(outsz);
	if (!in || !out || !clean)
		abort();
	memcpy(in, data + 1, size - 1);
	in[size - 1] = '\0';
	log_redact(in, out, outsz);
	if (strlen(out) >= outsz)
		abort();
	check_redacted(out, outsz);
	log_sanitize(out, clean, outsz);
	if (strlen(clean) >= outsz)
		abort();
	check_sanitized((const unsigned char *)clean);
	free(in);
	free(out);
	free(clean);
	return 0;
}
