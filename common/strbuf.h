/* A growing string buffer for building requests and JSON output. */
#ifndef ENCFS_STRBUF_H
#define ENCFS_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *data; /* NUL-terminated when not NULL */
	size_t len, cap;
	int failed; /* out of memory at some point: data is incomplete, do not use it */
};

void sb_putn(struct strbuf *sb, const char *s, size_t n);
void sb_puts(struct strbuf *sb, const char *s);
void sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal: quoted, with ", \ and control characters escaped. */
void sb_json_string(struct strbuf *sb, const char *s);
/* Wipes (it may have held a secret) and frees. */
void sb_free(struct strbuf *sb);

#endif
