/* A growing string buffer. */
#include "strbuf.h"

#include "secmem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(struct strbuf *sb, size_t more)
{
	if (sb->failed)
		return -1;
	if (more > ((size_t)-1) / 2 - sb->len) {
		sb->failed = 1;
		return -1;
	}
	if (sb->len + more + 1 <= sb->cap)
		return 0;
	size_t ncap = sb->cap ? sb->cap : 256;
	while (ncap < sb->len + more + 1)
		ncap *= 2;
	/* not realloc: the old block may hold a secret and must be wiped */
	char *n = malloc(ncap);
	if (!n) {
		sb->failed = 1;
		return -1;
	}
	if (sb->data) {
		memcpy(n, sb->data, sb->len + 1);
		wipe(sb->data, sb->cap);
		free(sb->data);
	}
	sb->data = n;
	sb->cap = ncap;
	return 0;
}

void sb_putn(struct strbuf *sb, const char *s, size_t n)
{
	if (reserve(sb, n) != 0)
		return;
	memcpy(sb->data + sb->len, s, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
}

void sb_puts(struct strbuf *sb, const char *s) { sb_putn(sb, s, strlen(s)); }

void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		sb->failed = 1;
		return;
	}
	if (reserve(sb, (size_t)n) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

void sb_json_string(struct strbuf *sb, const char *s)
{
	sb_putn(sb, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[8];
		switch (*p) {
		case '"': sb_putn(sb, "\\\"", 2); break;
		case '\\': sb_putn(sb, "\\\\", 2); break;
		case '\n': sb_putn(sb, "\\n", 2); break;
		case '\r': sb_putn(sb, "\\r", 2); break;
		case '\t': sb_putn(sb, "\\t", 2); break;
		default:
			if (*p < 0x20) {
				snprintf(esc, sizeof esc, "\\u%04x", *p);
				sb_puts(sb, esc);
			} else {
				sb_putn(sb, (const char *)p, 1);
			}
		}
	}
	sb_putn(sb, "\"", 1);
}

void sb_free(struct strbuf *sb)
{
	if (sb->data) {
		wipe(sb->data, sb->cap);
		free(sb->data);
	}
	sb->data = NULL;
	sb->len = sb->cap = 0;
	sb->failed = 0;
}
