/* Strict JSON (RFC 8259) on jsmn: the text is validated first (grammar, UTF-8, escapes, depth,
 * duplicate keys), then tokenised by jsmn; getters are typed and report the path of a bad field. */
#ifndef ENCFS_JSON_H
#define ENCFS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "strbuf.h"

#define JSON_MAX_DEPTH 64
#define JSON_MAX_TEXT (64u << 20) /* 64 MiB: above every input we parse */

enum json_type { JSON_INVALID, JSON_OBJECT, JSON_ARRAY, JSON_STRING, JSON_NUMBER, JSON_BOOL, JSON_NULL };

struct json {
	const char *text; /* not owned: must outlive the struct */
	size_t len;
	struct jsmn_tokens *tok; /* opaque */
	int ntok;
};

/* Parses text[0..len) (need not be NUL-terminated).  Rejects, with the byte offset and reason in
 * e (code EXIT_CONFIG unless the caller rewrites it): a top level other than an object or
 * array, bad grammar, trailing data, invalid UTF-8,
 * control characters or bad escapes in strings, \u0000, lone surrogates, nesting deeper than
 * JSON_MAX_DEPTH, duplicate keys in an object, more than max_tokens values, text over
 * JSON_MAX_TEXT. */
int json_parse(struct json *j, const char *text, size_t len, int max_tokens, struct err *e);
void json_free(struct json *j);

/* Tokens are ints; 0 is the root, -1 means "absent". */
enum json_type json_type(const struct json *j, int tok);
const char *json_type_name(enum json_type t);
/* Members (object) or elements (array); 0 for scalars. */
int json_size(const struct json *j, int tok);
/* The token after tok's whole subtree. */
int json_skip(const struct json *j, int tok);
/* Value of member key in object obj, or -1. */
int json_member(const struct json *j, int obj, const char *key);
/* Element i of array arr, or -1. */
int json_element(const struct json *j, int arr, int i);
/* Follows a path such as "azure_filesystems[0].key.kid" from tok; -1 when any step is absent or
 * of the wrong kind. */
int json_get(const struct json *j, int tok, const char *path);
/* Iterates an object: *key and *val receive the i-th member's tokens; returns -1 past the end. */
int json_member_at(const struct json *j, int obj, int i, int *key, int *val);

/* The raw source bytes of a token (strings without their quotes, escapes not decoded). */
const char *json_raw(const struct json *j, int tok, size_t *len);
/* A string value decoded into a new NUL-terminated buffer (malloc); NULL if not a string or out
 * of memory.  Validation guarantees the result holds no NUL byte. */
char *json_string(const struct json *j, int tok);
/* Decodes a string value into buf; -1 if not a string or it does not fit. */
int json_string_buf(const struct json *j, int tok, char *buf, size_t size);
/* True when tok is a string whose decoded value equals s. */
bool json_string_eq(const struct json *j, int tok, const char *s);
/* Integers: -1 if not a number, not an integer (fraction or exponent) or out of range. */
int json_int64(const struct json *j, int tok, int64_t *out);
int json_uint64(const struct json *j, int tok, uint64_t *out);
int json_bool(const struct json *j, int tok, bool *out);

/* Writes the value at tok to out as indented JSON (two spaces a level, members in their order),
 * its strings as the validated text has them, C1 control characters and DEL escaped (\u00XX) so
 * that nothing reaches a terminal raw.  depth is the indentation of tok's own line.  hook, when
 * not NULL, is asked first about every value with its path from tok ("a.b[2].c"; "" for tok):
 * returning 1 it has written that value itself, at that depth. */
typedef int (*json_pretty_hook)(const struct json *j, int tok, const char *path, int depth,
				struct strbuf *out, void *arg);
void json_pretty(const struct json *j, int tok, int depth, json_pretty_hook hook, void *arg,
		 struct strbuf *out);

/* Writes the path of tok from the root ("a.b[2].c", "(root)" for 0) into buf. */
void json_path(const struct json *j, int tok, char *buf, size_t size);

#endif
