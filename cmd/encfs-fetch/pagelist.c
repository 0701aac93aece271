/* Get Page Ranges responses: a strict reader for exactly the schema the REST documentation gives,
 * never reading past len, never allocating more than the range list's bound. */
#include "pagelist.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int range_list_add(struct range_list *l, uint64_t start, uint64_t end)
{
	if (l->n > 0 && l->v[l->n - 1].end + 1 == start) {
		l->v[l->n - 1].end = end;
		return 0;
	}
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		if (l->max && ncap > l->max)
			ncap = l->max;
		if (ncap <= l->n) {
			errno = E2BIG;
			return -1;
		}
		struct range *nv = realloc(l->v, ncap * sizeof *nv);
		if (!nv) {
			errno = ENOMEM;
			return -1;
		}
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n++] = (struct range){start, end};
	return 0;
}

void range_list_free(struct range_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* --- the reader --------------------------------------------------------------------------- */

struct cursor {
	const char *p, *start, *end;
	struct err *e;
};

enum tag_kind { TAG_OPEN, TAG_CLOSE, TAG_EMPTY };

#define MAX_NAME 32

static int fail(struct cursor *c, const char *what)
{
	return err_set(c->e, EXIT_NETWORK,
		       "Get Page Ranges: malformed response at byte %zu: %s (the service sent a page list "
		       "this tool does not accept; check the endpoint)",
		       (size_t)(c->p - c->start), what);
}

static void skip_ws(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
		c->p++;
}

static int is_name_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* '<' ['/'] Name [S] ['/'] '>' with no attributes (the schema has none).  The space before '/>'
 * is what .NET's XmlWriter, and so Blob Storage, writes: <NextMarker />. */
static int read_tag(struct cursor *c, char name[MAX_NAME], enum tag_kind *kind)
{
	if (c->p >= c->end || *c->p != '<')
		return fail(c, "expected an element");
	c->p++;
	*kind = TAG_OPEN;
	if (c->p < c->end && *c->p == '/') {
		*kind = TAG_CLOSE;
		c->p++;
	}
	size_t n = 0;
	while (c->p < c->end && is_name_char(*c->p)) {
		if (n + 1 >= MAX_NAME)
			return fail(c, "element name too long");
		name[n++] = *c->p++;
	}
	name[n] = '\0';
	if (n == 0)
		return fail(c, "expected an element name");
	skip_ws(c);
	if (c->p < c->end && *c->p == '/' && *kind == TAG_OPEN) {
		*kind = TAG_EMPTY;
		c->p++;
	}
	if (c->p >= c->end || *c->p != '>')
		return fail(c, "expected '>' (attributes are not expected here)");
	c->p++;
	return 0;
}

static int expect_tag(struct cursor *c, const char *name, enum tag_kind kind)
{
	char got[MAX_NAME];
	enum tag_kind k;
	const char *at = c->p;
	if (read_tag(c, got, &k) != 0)
		return -1;
	if (k != kind || strcmp(got, name) != 0) {
		c->p = at;
		char what[96];
		snprintf(what, sizeof what, "expected <%s%s>", kind == TAG_CLOSE ? "/" : "", name);
		return fail(c, what);
	}
	return 0;
}

/* Character data up to the next '<', with the predefined entities decoded, into out (size bytes
 * with the NUL). */
static int read_text(struct cursor *c, char *out, size_t size)
{
	static const struct {
		const char *ref;
		char ch;
	} ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
	size_t n = 0;
	while (c->p < c->end && *c->p != '<') {
		char ch = *c->p;
		size_t adv = 1;
		if (ch == '&') {
			size_t left = (size_t)(c->end - c->p), i;
			for (i = 0; i < sizeof ents / sizeof ents[0]; i++) {
				size_t l = strlen(ents[i].ref);
				if (left >= l && memcmp(c->p, ents[i].ref, l) == 0) {
					ch = ents[i].ch;
					adv = l;
					break;
				}
			}
			if (i == sizeof ents / sizeof ents[0])
				return fail(c, "unsupported character reference");
		} else if ((unsigned char)ch < 0x20 && ch != '\t' && ch != '\r' && ch != '\n') {
			return fail(c, "control character in text");
		} else if (ch == '>') {
			return fail(c, "'>' in text");
		}
		if (n + 1 >= size)
			return fail(c, "text too long");
		out[n++] = ch;
		c->p += adv;
	}
	out[n] = '\0';
	return 0;
}

/* <Name>digits</Name>: a decimal number without sign, spaces or leading '+'. */
static int read_number_element(struct cursor *c, const char *name, uint64_t *v)
{
	if (expect_tag(c, name, TAG_OPEN) != 0)
		return -1;
	const char *digits = c->p;
	uint64_t x = 0;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		unsigned d = (unsigned)(*c->p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return fail(c, "number too large");
		x = x * 10 + d;
		c->p++;
	}
	if (c->p == digits)
		return fail(c, "expected a decimal number");
	*v = x;
	return expect_tag(c, name, TAG_CLOSE);
}

struct parse_state {
	uint64_t seg_start, seg_end, blob_size;
	int have_prev;
	uint64_t prev_end; /* end of the previous range in this response, as sent */
	struct range_list *out;
};

/* The body of a <PageRange> or <ClearRange> whose open tag was read. */
static int read_range(struct cursor *c, const char *name, struct parse_state *st)
{
	uint64_t start, end;
	skip_ws(c);
	if (read_number_element(c, "Start", &start) != 0)
		return -1;
	skip_ws(c);
	if (read_number_element(c, "End", &end) != 0)
		return -1;
	skip_ws(c);
	const char *at = c->p;
	if (expect_tag(c, name, TAG_CLOSE) != 0)
		return -1;
	const char *after = c->p;
	c->p = at; /* errors below point at the range */
	if (start > end)
		return fail(c, "range with Start after End");
	if (start % PAGE_SIZE_BYTES != 0 || end % PAGE_SIZE_BYTES != PAGE_SIZE_BYTES - 1)
		return fail(c, "range not aligned to 512-byte pages");
	if (end >= st->blob_size)
		return fail(c, "range past the end of the blob");
	if (st->have_prev && start <= st->prev_end)
		return fail(c, "ranges out of order or overlapping");
	if (end < st->seg_start || start > st->seg_end)
		return fail(c, "range outside the requested segment");
	st->have_prev = 1;
	st->prev_end = end;
	if (strcmp(name, "PageRange") == 0) {
		uint64_t s = start < st->seg_start ? st->seg_start : start;
		uint64_t t = end > st->seg_end ? st->seg_end : end;
		struct range_list *l = st->out;
		if (l->n > 0 && s <= l->v[l->n - 1].end)
			return fail(c, "range overlaps the previous page of the list");
		if (range_list_add(l, s, t) != 0) {
			if (errno == E2BIG)
				return fail(c, "more page ranges than this tool keeps in one segment");
			return err_set(c->e, EXIT_INTERNAL, "Get Page Ranges: out of memory");
		}
	}
	c->p = after;
	return 0;
}

int pagelist_parse(const char *xml, size_t len, uint64_t seg_start, uint64_t seg_end, uint64_t blob_size,
		   struct range_list *out, char marker[PAGELIST_MAX_MARKER], struct err *e)
{
	struct cursor c = {xml, xml, xml + len, e};
	struct parse_state st = {seg_start, seg_end, blob_size, 0, 0, out};
	int have_marker = 0;
	marker[0] = '\0';
	if (seg_start > seg_end || seg_end >= blob_size)
		return err_set(e, EXIT_INTERNAL, "Get Page Ranges: bad segment (a bug)");

	if (len >= 3 && memcmp(c.p, "\xEF\xBB\xBF", 3) == 0)
		c.p += 3;
	skip_ws(&c);
	if ((size_t)(c.end - c.p) >= 5 && memcmp(c.p, "<?xml", 5) == 0) {
		/* the declaration: version, encoding, standalone; we only need its end */
		const char *q = c.p + 5;
		while (q < c.end && *q != '<' && *q != '>' && !(*q == '?' && q + 1 < c.end && q[1] == '>'))
			q++;
		if (q >= c.end || *q != '?')
			return fail(&c, "malformed XML declaration");
		c.p = q + 2;
	}
	skip_ws(&c);
	char name[MAX_NAME];
	enum tag_kind kind;
	if (read_tag(&c, name, &kind) != 0)
		return -1;
	if (strcmp(name, "PageList") != 0 || kind == TAG_CLOSE) {
		c.p = xml;
		return fail(&c, "expected <PageList>");
	}
	if (kind == TAG_OPEN) {
		for (;;) {
			skip_ws(&c);
			const char *at = c.p;
			if (read_tag(&c, name, &kind) != 0)
				return -1;
			if (kind == TAG_CLOSE && strcmp(name, "PageList") == 0)
				break;
			if (kind == TAG_OPEN && (strcmp(name, "PageRange") == 0 || strcmp(name, "ClearRange") == 0)) {
				if (have_marker) {
					c.p = at;
					return fail(&c, "range after NextMarker");
				}
				if (read_range(&c, strcmp(name, "PageRange") == 0 ? "PageRange" : "ClearRange",
					       &st) != 0)
					return -1;
			} else if (strcmp(name, "NextMarker") == 0 && kind != TAG_CLOSE && !have_marker) {
				have_marker = 1;
				if (kind == TAG_OPEN) {
					if (read_text(&c, marker, PAGELIST_MAX_MARKER) != 0 ||
					    expect_tag(&c, "NextMarker", TAG_CLOSE) != 0) {
						marker[0] = '\0';
						return -1;
					}
				}
			} else {
				c.p = at;
				return fail(&c, "unexpected element");
			}
		}
	}
	skip_ws(&c);
	if (c.p != c.end)
		return fail(&c, "data after </PageList>");
	return 0;
}

/* --- walking a segment ---------------------------------------------------------------------- */

void pagelist_walk_begin(struct pagelist_walk *w, uint64_t start, uint64_t end, uint64_t blob_size)
{
	*w = (struct pagelist_walk){.start = start, .end = end, .blob_size = blob_size,
				    .ranges = {.max = PAGELIST_MAX_RANGES_PER_SEGMENT}};
}

int pagelist_walk_take(struct pagelist_walk *w, const char *body, size_t len, struct err *e)
{
	char sent[PAGELIST_MAX_MARKER];
	memcpy(sent, w->marker, sizeof sent);
	if (pagelist_parse(body, len, w->start, w->end, w->blob_size, &w->ranges, w->marker, e) != 0)
		return -1;
	w->pages++;
	if (w->marker[0] && strcmp(w->marker, sent) == 0)
		return err_set(e, EXIT_NETWORK, "page list of bytes %" PRIu64 "-%" PRIu64 ": the service answered "
			       "with the same continuation marker it was given (it would never end; check the "
			       "endpoint)", w->start, w->end);
	if (w->marker[0] && w->pages >= PAGELIST_MAX_PAGES)
		return err_set(e, EXIT_NETWORK, "page list of bytes %" PRIu64 "-%" PRIu64 ": still continuation "
			       "markers after %u responses (check the endpoint)", w->start, w->end, w->pages);
	w->done = !w->marker[0];
	return 0;
}

void pagelist_walk_free(struct pagelist_walk *w) { range_list_free(&w->ranges); }
