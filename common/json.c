/* Strict JSON: a validating scanner first, then jsmn for the token tree. */
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

struct jsmn_tokens {
	jsmntok_t t[1];
};
#define T(j, i) ((j)->tok->t[(i)])

/* --- validation --------------------------------------------------------------------------- */

struct scan {
	const unsigned char *s;
	size_t len, pos;
	int depth;
	long tokens, max_tokens;
	struct err *e;
};

static int bad(struct scan *v, const char *why)
{
	return err_set(v->e, EXIT_CONFIG, "invalid JSON at byte %zu: %s", v->pos, why);
}

static void skip_ws(struct scan *v)
{
	while (v->pos < v->len && (v->s[v->pos] == ' ' || v->s[v->pos] == '\t' ||
				   v->s[v->pos] == '\n' || v->s[v->pos] == '\r'))
		v->pos++;
}

static int peek(const struct scan *v) { return v->pos < v->len ? v->s[v->pos] : -1; }

static int hex4(struct scan *v, unsigned *out)
{
	unsigned x = 0;
	if (v->len - v->pos < 4)
		return bad(v, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		unsigned c = v->s[v->pos++], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return bad(v, "bad hex digit in \\u escape");
		x = x << 4 | d;
	}
	*out = x;
	return 0;
}

/* One UTF-8 sequence starting with lead byte c (already consumed); RFC 3629 ranges only. */
static int utf8_tail(struct scan *v, unsigned c)
{
	unsigned lo = 0x80, hi = 0xBF;
	int n;
	if (c >= 0xC2 && c <= 0xDF)
		n = 1;
	else if (c >= 0xE0 && c <= 0xEF) {
		n = 2;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 3;
		if (c == 0xF0)
			lo = 0x90;
		if (c == 0xF4)
			hi = 0x8F;
	} else {
		v->pos--; /* point at the offending byte */
		return bad(v, "invalid UTF-8 lead byte");
	}
	for (int i = 0; i < n; i++) {
		if (v->pos >= v->len)
			return bad(v, "truncated UTF-8 sequence");
		unsigned b = v->s[v->pos];
		if (b < lo || b > hi)
			return bad(v, "invalid UTF-8 continuation byte");
		v->pos++;
		lo = 0x80;
		hi = 0xBF;
	}
	return 0;
}

static int scan_string(struct scan *v)
{
	v->pos++; /* opening quote */
	for (;;) {
		if (v->pos >= v->len)
			return bad(v, "unterminated string");
		unsigned c = v->s[v->pos++];
		if (c == '"')
			return 0;
		if (c < 0x20)
			return bad(v, "control character in string");
		if (c >= 0x80) {
			if (utf8_tail(v, c) != 0)
				return -1;
			continue;
		}
		if (c != '\\')
			continue;
		if (v->pos >= v->len)
			return bad(v, "truncated escape");
		c = v->s[v->pos++];
		if (strchr("\"\\/bfnrt", (int)c) && c)
			continue;
		if (c != 'u')
			return bad(v, "unknown escape");
		unsigned u;
		if (hex4(v, &u) != 0)
			return -1;
		if (u == 0)
			return bad(v, "\\u0000 is not allowed");
		if (u >= 0xDC00 && u <= 0xDFFF)
			return bad(v, "lone low surrogate");
		if (u >= 0xD800 && u <= 0xDBFF) {
			unsigned lo;
			if (v->len - v->pos < 2 || v->s[v->pos] != '\\' || v->s[v->pos + 1] != 'u')
				return bad(v, "lone high surrogate");
			v->pos += 2;
			if (hex4(v, &lo) != 0)
				return -1;
			if (lo < 0xDC00 || lo > 0xDFFF)
				return bad(v, "high surrogate not followed by a low one");
		}
	}
}

static int digits(struct scan *v)
{
	size_t start = v->pos;
	while (v->pos < v->len && v->s[v->pos] >= '0' && v->s[v->pos] <= '9')
		v->pos++;
	return v->pos > start ? 0 : bad(v, "digit expected");
}

static int scan_number(struct scan *v)
{
	if (peek(v) == '-')
		v->pos++;
	if (peek(v) == '0')
		v->pos++;
	else if (peek(v) >= '1' && peek(v) <= '9')
		(void)digits(v);
	else
		return bad(v, "digit expected");
	if (peek(v) == '.') {
		v->pos++;
		if (digits(v) != 0)
			return -1;
	}
	if (peek(v) == 'e' || peek(v) == 'E') {
		v->pos++;
		if (peek(v) == '+' || peek(v) == '-')
			v->pos++;
		if (digits(v) != 0)
			return -1;
	}
	int c = peek(v);
	if (c != -1 && strchr(" \t\r\n,]}", c) == NULL)
		return bad(v, "unexpected character after number");
	return 0;
}

static int scan_literal(struct scan *v, const char *word)
{
	size_t n = strlen(word);
	if (v->len - v->pos < n || memcmp(v->s + v->pos, word, n) != 0)
		return bad(v, "unexpected character");
	v->pos += n;
	int c = peek(v);
	if (c != -1 && strchr(" \t\r\n,]}", c) == NULL)
		return bad(v, "unexpected character after literal");
	return 0;
}

static int scan_value(struct scan *v);

static int count_token(struct scan *v)
{
	if (++v->tokens > v->max_tokens)
		return bad(v, "too many values");
	return 0;
}

static int scan_container(struct scan *v, int close)
{
	if (++v->depth > JSON_MAX_DEPTH)
		return bad(v, "nested too deeply");
	v->pos++;
	skip_ws(v);
	if (peek(v) == close) {
		v->pos++;
		v->depth--;
		return 0;
	}
	for (;;) {
		if (close == '}') {
			if (peek(v) != '"')
				return bad(v, "object key must be a string");
			if (count_token(v) != 0 || scan_string(v) != 0)
				return -1;
			skip_ws(v);
			if (peek(v) != ':')
				return bad(v, "':' expected after object key");
			v->pos++;
			skip_ws(v);
		}
		if (scan_value(v) != 0)
			return -1;
		skip_ws(v);
		if (peek(v) == ',') {
			v->pos++;
			skip_ws(v);
			continue;
		}
		if (peek(v) == close) {
			v->pos++;
			v->depth--;
			return 0;
		}
		return bad(v, close == '}' ? "',' or '}' expected" : "',' or ']' expected");
	}
}

static int scan_value(struct scan *v)
{
	if (count_token(v) != 0)
		return -1;
	switch (peek(v)) {
	case '{': return scan_container(v, '}');
	case '[': return scan_container(v, ']');
	case '"': return scan_string(v);
	case 't': return scan_literal(v, "true");
	case 'f': return scan_literal(v, "false");
	case 'n': return scan_literal(v, "null");
	case -1: return bad(v, "unexpected end of input");
	default:
		if (peek(v) == '-' || (peek(v) >= '0' && peek(v) <= '9'))
			return scan_number(v);
		return bad(v, "unexpected character");
	}
}

/* --- token access ------------------------------------------------------------------------- */

static int valid_tok(const struct json *j, int tok) { return j && j->tok && tok >= 0 && tok < j->ntok; }

enum json_type json_type(const struct json *j, int tok)
{
	if (!valid_tok(j, tok))
		return JSON_INVALID;
	switch (T(j, tok).type) {
	case JSMN_OBJECT: return JSON_OBJECT;
	case JSMN_ARRAY: return JSON_ARRAY;
	case JSMN_STRING: return JSON_STRING;
	case JSMN_PRIMITIVE:
		switch (j->text[T(j, tok).start]) {
		case 't':
		case 'f': return JSON_BOOL;
		case 'n': return JSON_NULL;
		default: return JSON_NUMBER;
		}
	default: return JSON_INVALID;
	}
}

const char *json_type_name(enum json_type t)
{
	static const char *const names[] = {"nothing", "an object", "an array", "a string",
					    "a number", "a boolean", "null"};
	return names[t];
}

int json_size(const struct json *j, int tok)
{
	enum json_type t = json_type(j, tok);
	return t == JSON_OBJECT || t == JSON_ARRAY ? T(j, tok).size : 0;
}

int json_skip(const struct json *j, int tok)
{
	int end = T(j, tok).end, i = tok + 1;
	while (i < j->ntok && T(j, i).start < end)
		i++;
	return i;
}

int json_member_at(const struct json *j, int obj, int i, int *key, int *val)
{
	if (json_type(j, obj) != JSON_OBJECT || i < 0 || i >= T(j, obj).size)
		return -1;
	int k = obj + 1;
	for (int n = 0; n < i; n++)
		k = json_skip(j, k + 1);
	*key = k;
	*val = k + 1;
	return 0;
}

int json_member(const struct json *j, int obj, const char *key)
{
	if (json_type(j, obj) != JSON_OBJECT)
		return -1;
	int k = obj + 1;
	for (int n = 0; n < T(j, obj).size; n++) {
		if (json_string_eq(j, k, key))
			return k + 1;
		k = json_skip(j, k + 1);
	}
	return -1;
}

int json_element(const struct json *j, int arr, int i)
{
	if (json_type(j, arr) != JSON_ARRAY || i < 0 || i >= T(j, arr).size)
		return -1;
	int k = arr + 1;
	for (int n = 0; n < i; n++)
		k = json_skip(j, k);
	return k;
}

int json_get(const struct json *j, int tok, const char *path)
{
	const char *p = path;
	while (tok >= 0 && *p) {
		if (*p == '.') {
			p++;
			continue;
		}
		if (*p == '[') {
			char *end;
			errno = 0;
			long i = strtol(p + 1, &end, 10);
			if (end == p + 1 || *end != ']' || errno || i < 0 || i > INT_MAX)
				return -1;
			tok = json_element(j, tok, (int)i);
			p = end + 1;
			continue;
		}
		size_t n = strcspn(p, ".[");
		char key[256];
		if (n >= sizeof key)
			return -1;
		memcpy(key, p, n);
		key[n] = '\0';
		tok = json_member(j, tok, key);
		p += n;
	}
	return tok;
}

const char *json_raw(const struct json *j, int tok, size_t *len)
{
	if (!valid_tok(j, tok)) {
		*len = 0;
		return NULL;
	}
	*len = (size_t)(T(j, tok).end - T(j, tok).start);
	return j->text + T(j, tok).start;
}

static unsigned hexval(char c)
{
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

/* Decodes the validated string token into out (at least raw length + 1 bytes); returns length. */
static size_t decode_string(const struct json *j, int tok, char *out)
{
	size_t n;
	const char *s = json_raw(j, tok, &n), *end = s + n;
	size_t o = 0;
	while (s < end) {
		if (*s != '\\') {
			out[o++] = *s++;
			continue;
		}
		s++;
		char c = *s++;
		switch (c) {
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u': {
			unsigned u = hexval(s[0]) << 12 | hexval(s[1]) << 8 | hexval(s[2]) << 4 | hexval(s[3]);
			s += 4;
			if (u >= 0xD800 && u <= 0xDBFF) {
				unsigned lo = hexval(s[2]) << 12 | hexval(s[3]) << 8 | hexval(s[4]) << 4 |
					      hexval(s[5]);
				s += 6;
				u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
			}
			/* each UTF-8 form is no longer than its escape, so out never overflows */
			if (u < 0x80)
				out[o++] = (char)u;
			else if (u < 0x800) {
				out[o++] = (char)(0xC0 | u >> 6);
				out[o++] = (char)(0x80 | (u & 0x3F));
			} else if (u < 0x10000) {
				out[o++] = (char)(0xE0 | u >> 12);
				out[o++] = (char)(0x80 | (u >> 6 & 0x3F));
				out[o++] = (char)(0x80 | (u & 0x3F));
			} else {
				out[o++] = (char)(0xF0 | u >> 18);
				out[o++] = (char)(0x80 | (u >> 12 & 0x3F));
				out[o++] = (char)(0x80 | (u >> 6 & 0x3F));
				out[o++] = (char)(0x80 | (u & 0x3F));
			}
			break;
		}
		default: out[o++] = c; break; /* " \ / */
		}
	}
	out[o] = '\0';
	return o;
}

char *json_string(const struct json *j, int tok)
{
	if (json_type(j, tok) != JSON_STRING)
		return NULL;
	size_t n;
	json_raw(j, tok, &n);
	char *out = malloc(n + 1);
	if (out)
		decode_string(j, tok, out);
	return out;
}

int json_string_buf(const struct json *j, int tok, char *buf, size_t size)
{
	char *s = json_string(j, tok);
	if (!s)
		return -1;
	size_t n = strlen(s);
	int rc = -1;
	if (n < size) {
		memcpy(buf, s, n + 1);
		rc = 0;
	}
	free(s);
	return rc;
}

bool json_string_eq(const struct json *j, int tok, const char *want)
{
	if (json_type(j, tok) != JSON_STRING)
		return false;
	size_t n;
	const char *raw = json_raw(j, tok, &n);
	if (memchr(raw, '\\', n) == NULL) /* the common case, without allocating */
		return strlen(want) == n && memcmp(raw, want, n) == 0;
	char *s = json_string(j, tok);
	bool eq = s && strcmp(s, want) == 0;
	free(s);
	return eq;
}

static int integer_text(const struct json *j, int tok, char *buf, size_t size)
{
	size_t n;
	const char *raw = json_raw(j, tok, &n);
	if (json_type(j, tok) != JSON_NUMBER || n >= size || memchr(raw, '.', n) ||
	    memchr(raw, 'e', n) || memchr(raw, 'E', n))
		return -1;
	memcpy(buf, raw, n);
	buf[n] = '\0';
	return 0;
}

int json_int64(const struct json *j, int tok, int64_t *out)
{
	char buf[32], *end;
	if (integer_text(j, tok, buf, sizeof buf) != 0)
		return -1;
	errno = 0;
	long long v = strtoll(buf, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int json_uint64(const struct json *j, int tok, uint64_t *out)
{
	char buf[32], *end;
	if (integer_text(j, tok, buf, sizeof buf) != 0 || buf[0] == '-')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int json_bool(const struct json *j, int tok, bool *out)
{
	if (json_type(j, tok) != JSON_BOOL)
		return -1;
	*out = j->text[T(j, tok).start] == 't';
	return 0;
}

static void pretty_indent(struct strbuf *out, int depth)
{
	for (int i = 0; i < depth; i++)
		sb_puts(out, "  ");
}

/* A string or key as written in the text, quoted, with C1 controls and DEL escaped. */
static void pretty_string(const struct json *j, int tok, struct strbuf *out)
{
	size_t n;
	const unsigned char *s = (const unsigned char *)json_raw(j, tok, &n);
	sb_puts(out, "\"");
	size_t from = 0;
	for (size_t i = 0; i < n; i++) {
		int c1 = s[i] == 0xc2 && i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f;
		if (!c1 && s[i] != 0x7f)
			continue;
		sb_putn(out, (const char *)s + from, i - from);
		sb_printf(out, "\\u00%02x", c1 ? s[i + 1] : 0x7f);
		i += (size_t)c1;
		from = i + 1;
	}
	sb_putn(out, (const char *)s + from, n - from);
	sb_puts(out, "\"");
}

static void pretty_value(const struct json *j, int tok, int depth, char *path, size_t plen,
			 json_pretty_hook hook, void *arg, struct strbuf *out)
{
	if (hook && hook(j, tok, path, depth, out, arg))
		return;
	enum json_type t = json_type(j, tok);
	if (t == JSON_STRING) {
		pretty_string(j, tok, out);
		return;
	}
	if (t != JSON_OBJECT && t != JSON_ARRAY) {
		size_t n;
		const char *raw = json_raw(j, tok, &n);
		sb_putn(out, raw, n);
		return;
	}
	int count = json_size(j, tok);
	if (count == 0) {
		sb_puts(out, t == JSON_OBJECT ? "{}" : "[]");
		return;
	}
	sb_puts(out, t == JSON_OBJECT ? "{\n" : "[\n");
	int k = tok + 1;
	for (int i = 0; i < count; i++) {
		pretty_indent(out, depth + 1);
		int val = k;
		size_t n = 0;
		if (t == JSON_OBJECT) {
			const char *key = json_raw(j, k, &n);
			snprintf(path + plen, 512 - plen, "%s%.*s", plen ? "." : "", (int)n, key);
			pretty_string(j, k, out);
			sb_puts(out, ": ");
			val = k + 1;
		} else {
			snprintf(path + plen, 512 - plen, "[%d]", i);
		}
		pretty_value(j, val, depth + 1, path, strlen(path), hook, arg, out);
		path[plen] = '\0';
		sb_puts(out, i + 1 < count ? ",\n" : "\n");
		k = json_skip(j, val);
	}
	pretty_indent(out, depth);
	sb_puts(out, t == JSON_OBJECT ? "}" : "]");
}

void json_pretty(const struct json *j, int tok, int depth, json_pretty_hook hook, void *arg,
		 struct strbuf *out)
{
	char path[512] = "";
	pretty_value(j, tok, depth, path, 0, hook, arg, out);
}

void json_path(const struct json *j, int tok, char *buf, size_t size)
{
	int chain[JSON_MAX_DEPTH * 2 + 2], n = 0;
	if (size == 0)
		return;
	buf[0] = '\0';
	if (!valid_tok(j, tok)) {
		snprintf(buf, size, "(absent)");
		return;
	}
	while (tok > 0 && n < (int)(sizeof chain / sizeof chain[0])) {
		chain[n++] = tok;
		tok = T(j, tok).parent;
	}
	if (n == 0) {
		snprintf(buf, size, "(root)");
		return;
	}
	size_t o = 0;
	for (int i = n - 1; i >= 0; i--) {
		int t = chain[i], parent = T(j, t).parent;
		if (parent >= 0 && T(j, parent).type == JSMN_OBJECT) {
			/* t is a key: print it; the value below it adds nothing */
			char *k = json_string(j, t);
			o += (size_t)snprintf(buf + o, o < size ? size - o : 0, "%s%s", o ? "." : "",
					      k ? k : "?");
			free(k);
		} else if (parent >= 0 && T(j, parent).type == JSMN_ARRAY) {
			int idx = 0;
			for (int k = parent + 1; k < t; k = json_skip(j, k))
				idx++;
			o += (size_t)snprintf(buf + o, o < size ? size - o : 0, "[%d]", idx);
		}
		if (o >= size)
			return;
	}
}

/* --- parse -------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Rejects an object that names a key twice (jsmn keeps both; a later reader could pick either). */
static int check_duplicates(struct json *j, struct err *e)
{
	for (int obj = 0; obj < j->ntok; obj++) {
		if (T(j, obj).type != JSMN_OBJECT || T(j, obj).size < 2)
			continue;
		int n = T(j, obj).size;
		char **keys = calloc((size_t)n, sizeof *keys);
		int rc = 0;
		if (!keys)
			return err_set(e, EXIT_INTERNAL, "parsing JSON: out of memory");
		int k = obj + 1;
		for (int i = 0; i < n; i++) {
			keys[i] = json_string(j, k);
			if (!keys[i])
				rc = err_set(e, EXIT_INTERNAL, "parsing JSON: out of memory");
			k = json_skip(j, k + 1);
		}
		if (rc == 0) {
			qsort(keys, (size_t)n, sizeof *keys, cmp_str);
			for (int i = 1; i < n && rc == 0; i++)
				if (strcmp(keys[i - 1], keys[i]) == 0) {
					char path[256];
					json_path(j, obj, path, sizeof path);
					rc = err_set(e, EXIT_CONFIG, "invalid JSON: duplicate key \"%.64s\" in %s",
						     keys[i], path);
				}
		}
		for (int i = 0; i < n; i++)
			free(keys[i]);
		free(keys);
		if (rc)
			return rc;
	}
	return 0;
}

int json_parse(struct json *j, const char *text, size_t len, int max_tokens, struct err *e)
{
	memset(j, 0, sizeof *j);
	if (len > JSON_MAX_TEXT || len >= INT_MAX)
		return err_set(e, EXIT_CONFIG, "invalid JSON: %zu bytes is more than the %u allowed",
			       len, JSON_MAX_TEXT);
	struct scan v = {(const unsigned char *)text, len, 0, 0, 0, max_tokens, e};
	skip_ws(&v);
	/* every document we read is an object or array; jsmn's strict mode also wants one */
	if (peek(&v) != '{' && peek(&v) != '[')
		return bad(&v, "expected an object or an array");
	if (scan_value(&v) != 0)
		return -1;
	skip_ws(&v);
	if (v.pos != len)
		return bad(&v, "data after the JSON value");

	jsmn_parser p;
	jsmn_init(&p);
	j->tok = malloc(sizeof(jsmntok_t) * (size_t)v.tokens);
	if (!j->tok)
		return err_set(e, EXIT_INTERNAL, "parsing JSON: out of memory");
	int n = jsmn_parse(&p, text, len, j->tok->t, (unsigned)v.tokens);
	if (n != v.tokens) {
		json_free(j);
		return err_set(e, EXIT_CONFIG, "invalid JSON: the tokenizer disagrees with the validator");
	}
	j->text = text;
	j->len = len;
	j->ntok = n;
	if (check_duplicates(j, e) != 0) {
		json_free(j);
		return -1;
	}
	return 0;
}

void json_free(struct json *j)
{
	free(j->tok);
	j->tok = NULL;
	j->ntok = 0;
}
