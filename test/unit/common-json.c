/* common/json.c: strict parsing, typed getters, paths. */
#include "json.h"
#include "tap.h"

static int parses(const char *text)
{
	struct json j;
	struct err e;
	int rc = json_parse(&j, text, strlen(text), 1000, &e);
	if (rc == 0)
		json_free(&j);
	return rc == 0;
}

static const char *why(const char *text)
{
	static struct err e;
	struct json j;
	memset(&e, 0, sizeof e);
	if (json_parse(&j, text, strlen(text), 1000, &e) == 0) {
		json_free(&j);
		return "(accepted)";
	}
	return e.msg;
}

int main(void)
{
	log_init("common-json");

	/* RFC 8259 grammar */
	static const char *const valid[] = {
		"{}", "[]", "[0]", "[-0]", "[1.5e-3]", "[1E+2]", "[\"\"]", "[true,false,null]", " [1 , 2]\n",
		"{\"a\":{\"b\":[1,{\"c\":null}]}}", "[\"\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\"]",
		"[\"caf\xc3\xa9 \xf0\x9f\x98\x80\"]", "[123456789012345678901234567890]",
	};
	for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
		ok(parses(valid[i]), "valid: %s", valid[i]);

	static const struct { const char *text, *why; } invalid[] = {
		{"", "expected an object or an array"},
		{"\"top\"", "expected an object or an array"},
		{"1", "expected an object or an array"},
		{"{", "object key must be a string"},
		{"{\"a\":1,}", "object key must be a string"},
		{"[1,]", "unexpected character"},
		{"[1 2]", "',' or ']' expected"},
		{"{\"a\" 1}", "':' expected"},
		{"{a:1}", "object key must be a string"},
		{"[01]", "unexpected character after number"},
		{"[1.]", "digit expected"},
		{"[-]", "digit expected"},
		{"[.5]", "unexpected character"},
		{"[+1]", "unexpected character"},
		{"[0x10]", "unexpected character after number"},
		{"[tru]", "unexpected character"},
		{"[truex]", "unexpected character after literal"},
		{"[NaN]", "unexpected character"},
		{"[\"abc]", "unterminated string"},
		{"[\"a\nb\"]", "control character in string"},
		{"[\"\\x\"]", "unknown escape"},
		{"[\"\\u12zz\"]", "bad hex digit"},
		{"[\"\\u1", "truncated \\u escape"},
		{"[\"\\u0000\"]", "\\u0000 is not allowed"},
		{"[\"\\ud800\"]", "lone high surrogate"},
		{"[\"\\udc00\"]", "lone low surrogate"},
		{"[\"\\ud800\\u0041\"]", "high surrogate not followed by a low one"},
		{"[\"\xff\"]", "invalid UTF-8 lead byte"},
		{"[\"\xc0\xaf\"]", "invalid UTF-8 lead byte"},          /* overlong '/' */
		{"[\"\xe0\x80\xaf\"]", "invalid UTF-8 continuation byte"}, /* overlong */
		{"[\"\xed\xa0\x80\"]", "invalid UTF-8 continuation byte"}, /* encoded surrogate */
		{"[\"\xf4\x90\x80\x80\"]", "invalid UTF-8 continuation byte"}, /* above U+10FFFF */
		{"[\"\xe2\x82\"]", "invalid UTF-8 continuation byte"},   /* truncated sequence */
		{"{} {}", "data after the JSON value"},
		{"[1] x", "data after the JSON value"},
		{"{\"a\":1,\"a\":2}", "duplicate key \"a\" in (root)"},
		{"{\"x\":{\"k\":1,\"\\u006b\":2}}", "duplicate key \"k\" in x"},
	};
	for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
		like(why(invalid[i].text), invalid[i].why, "invalid: %s", invalid[i].text);

	/* depth: 64 levels pass, 65 do not */
	char deep[200];
	memset(deep, '[', 64);
	memset(deep + 64, ']', 64);
	deep[128] = '\0';
	ok(parses(deep), "64 nested arrays accepted");
	memset(deep, '[', 65);
	memset(deep + 65, ']', 65);
	deep[130] = '\0';
	like(why(deep), "nested too deeply", "65 nested arrays refused");

	/* truncated input at every length never parses and never crashes */
	const char *doc = "{\"k\":[1,2,{\"s\":\"t\\u00e9\"}],\"b\":true}";
	int truncated_ok = 1;
	for (size_t n = 0; n < strlen(doc); n++) {
		struct json j;
		struct err e;
		if (json_parse(&j, doc, n, 1000, &e) == 0) {
			truncated_ok = 0;
			json_free(&j);
		}
	}
	ok(truncated_ok, "every truncation of a document is refused");

	/* token cap */
	struct json j;
	struct err e;
	is_int(json_parse(&j, "[1,2,3,4,5]", 11, 5, &e), -1, "more values than max_tokens refused");
	like(e.msg, "too many values", "... saying so");

	/* getters */
	const char *text = "{\"a\":{\"b\":[10,{\"c\":\"x\\ty\"}],\"t\":true,\"n\":null,"
			   "\"big\":18446744073709551615,\"neg\":-9223372036854775808,"
			   "\"huge\":1e400,\"frac\":1.5,\"over\":18446744073709551616}}";
	is_int(json_parse(&j, text, strlen(text), 1000, &e), 0, "document parses");
	int t = json_get(&j, 0, "a.b[1].c");
	char *s = json_string(&j, t);
	is_str(s, "x\ty", "path a.b[1].c, escapes decoded");
	free(s);
	char path[128];
	json_path(&j, t, path, sizeof path);
	is_str(path, "a.b[1].c", "json_path names it back");
	json_path(&j, json_get(&j, 0, "a.b[0]"), path, sizeof path);
	is_str(path, "a.b[0]", "json_path of an array element");
	int64_t i64;
	uint64_t u64;
	bool b;
	is_int(json_int64(&j, json_get(&j, 0, "a.b[0]"), &i64), 0, "int64 read");
	is_int(i64, 10, "... value 10");
	is_int(json_uint64(&j, json_get(&j, 0, "a.big"), &u64), 0, "uint64 max read");
	ok(u64 == UINT64_MAX, "... value 2^64-1");
	is_int(json_uint64(&j, json_get(&j, 0, "a.over"), &u64), -1, "2^64 overflows uint64");
	is_int(json_int64(&j, json_get(&j, 0, "a.neg"), &i64), 0, "int64 min read");
	ok(i64 == INT64_MIN, "... value -2^63");
	is_int(json_int64(&j, json_get(&j, 0, "a.big"), &i64), -1, "2^64-1 overflows int64");
	is_int(json_uint64(&j, json_get(&j, 0, "a.neg"), &u64), -1, "negative refused as uint64");
	is_int(json_int64(&j, json_get(&j, 0, "a.huge"), &i64), -1, "1e400 is not an integer");
	is_int(json_int64(&j, json_get(&j, 0, "a.frac"), &i64), -1, "1.5 is not an integer");
	is_int(json_bool(&j, json_get(&j, 0, "a.t"), &b), 0, "bool read");
	ok(b, "... true");
	is_int(json_type(&j, json_get(&j, 0, "a.n")), JSON_NULL, "null typed");
	is_int(json_get(&j, 0, "a.missing"), -1, "absent member is -1");
	is_int(json_get(&j, 0, "a.b[2]"), -1, "index past the end is -1");
	is_int(json_get(&j, 0, "a.t.x"), -1, "member of a scalar is -1");
	is_int(json_size(&j, json_get(&j, 0, "a.b")), 2, "array size");
	ok(json_string_eq(&j, t, "x\ty"), "string_eq with escapes");
	ok(!json_string_eq(&j, t, "x\ty "), "string_eq is exact");
	char small[3];
	is_int(json_string_buf(&j, t, small, sizeof small), -1, "string_buf refuses to truncate");
	json_free(&j);

	/* sb_json_string escapes what must be escaped */
	struct strbuf sb = {0};
	sb_json_string(&sb, "a\"b\\c\n\x01");
	is_str(sb.data, "\"a\\\"b\\\\c\\n\\u0001\"", "strings are escaped for JSON output");
	struct strbuf arr = {0};
	sb_printf(&arr, "[%s]", sb.data);
	ok(parses(arr.data), "... and the output parses back");
	sb_free(&arr);
	sb_free(&sb);

	return done_testing();
}
