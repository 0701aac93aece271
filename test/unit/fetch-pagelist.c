/* encfs-fetch internals: the Get Page Ranges reader, the range list, Content-Range and URL checks. */
#include <stdint.h>
#include <string.h>

#include "fetch.h"
#include "pagelist.h"
#include "tap.h"

#define MiB (1024ull * 1024)

static struct err e;
static char marker[PAGELIST_MAX_MARKER];

static int parse(const char *xml, uint64_t s, uint64_t t, uint64_t size, struct range_list *l)
{
	memset(&e, 0, sizeof e);
	return pagelist_parse(xml, strlen(xml), s, t, size, l, marker, &e);
}

static void rejects(const char *xml, const char *why, const char *name)
{
	struct range_list l = {.max = 1000};
	int rc = parse(xml, 0, 8 * MiB - 1, 8 * MiB, &l);
	ok(rc == -1 && e.code == EXIT_NETWORK, "rejects %s", name);
	like(e.msg, why, "  with \"%s\"", why);
	range_list_free(&l);
}

int main(void)
{
	struct range_list l = {.max = 1000};

	/* Azurite's form: declaration, no whitespace, no NextMarker */
	is_int(parse("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><PageList><PageRange>"
		     "<Start>5120</Start><End>6655</End></PageRange><PageRange><Start>512000</Start>"
		     "<End>512511</End></PageRange></PageList>",
		     0, MiB - 1, MiB, &l),
	       0, "Azurite's page list parses");
	is_int(l.n, 2, "two ranges");
	ok(l.v[0].start == 5120 && l.v[0].end == 6655 && l.v[1].start == 512000 && l.v[1].end == 512511,
	   "with their bounds");
	is_str(marker, "", "no marker");
	range_list_free(&l);

	/* the documented form: BOM, whitespace, ClearRange, an empty NextMarker */
	l = (struct range_list){.max = 1000};
	is_int(parse("\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<PageList>\n"
		     "  <PageRange>\n    <Start>0</Start>\n    <End>511</End>\n  </PageRange>\n"
		     "  <ClearRange><Start>512</Start><End>1023</End></ClearRange>\n"
		     "  <PageRange><Start>1024</Start><End>2047</End></PageRange>\n  <NextMarker />\n"
		     "</PageList>\n",
		     0, MiB - 1, MiB, &l),
	       0, "the service's form (.NET XmlWriter: <NextMarker />) with whitespace and ClearRange parses");
	is_int(l.n, 2, "ClearRange is skipped");
	is_str(marker, "", "an empty NextMarker is no marker");
	range_list_free(&l);

	/* ranges that touch are merged; a continuation marker with entities */
	l = (struct range_list){.max = 1000};
	is_int(parse("<PageList><PageRange><Start>0</Start><End>511</End></PageRange><PageRange><Start>512"
		     "</Start><End>4095</End></PageRange><NextMarker>2!a&amp;b&lt;c</NextMarker></PageList>",
		     0, MiB - 1, MiB, &l),
	       0, "touching ranges and a marker parse");
	is_int(l.n, 1, "touching ranges are merged");
	is_int(l.v[0].end, 4095, "into one");
	is_str(marker, "2!a&b<c", "the marker is decoded");
	/* the next page continues the list: it must come after what we have */
	is_int(parse("<PageList><PageRange><Start>4096</Start><End>8191</End></PageRange></PageList>", 0, MiB - 1,
		     MiB, &l),
	       0, "the continuation parses");
	is_int(l.n, 1, "and merges with the previous page's last range");
	is_int(parse("<PageList><PageRange><Start>4096</Start><End>8191</End></PageRange></PageList>", 0, MiB - 1,
		     MiB, &l),
	       -1, "a continuation overlapping the previous page is refused");
	like(e.msg, "overlaps the previous page", "  and says so");
	range_list_free(&l);

	/* ranges straddling the segment are cut to it */
	l = (struct range_list){.max = 1000};
	is_int(parse("<PageList><PageRange><Start>0</Start><End>2047</End></PageRange><PageRange><Start>3072"
		     "</Start><End>8191</End></PageRange></PageList>",
		     1024, 4095, MiB, &l),
	       0, "ranges straddling the segment parse");
	ok(l.n == 2 && l.v[0].start == 1024 && l.v[0].end == 2047 && l.v[1].start == 3072 && l.v[1].end == 4095,
	   "and are cut to it");
	range_list_free(&l);

	/* XML allows whitespace before '>' in end tags too */
	l = (struct range_list){.max = 1000};
	is_int(parse("<PageList ><PageRange ><Start >0</Start ><End>511</End\n></PageRange\t><PageRange>"
		     "<Start>1024</Start><End>1535</End></PageRange ></PageList >",
		     0, MiB - 1, MiB, &l),
	       0, "whitespace before '>' in start and end tags parses");
	ok(l.n == 2 && l.v[0].end == 511 && l.v[1].start == 1024, "  with both ranges");
	range_list_free(&l);

	/* an empty list, both forms */
	l = (struct range_list){.max = 1000};
	is_int(parse("<PageList/>", 0, 511, 512, &l), 0, "<PageList/> parses");
	is_int(parse("<PageList></PageList>", 0, 511, 512, &l), 0, "<PageList></PageList> parses");
	is_int(l.n, 0, "no ranges");
	range_list_free(&l);

	/* the bound on the list */
	l = (struct range_list){.max = 2};
	is_int(parse("<PageList><PageRange><Start>0</Start><End>511</End></PageRange><PageRange><Start>1024"
		     "</Start><End>1535</End></PageRange><PageRange><Start>2048</Start><End>2559</End>"
		     "</PageRange></PageList>",
		     0, MiB - 1, MiB, &l),
	       -1, "a list longer than its bound is refused");
	like(e.msg, "more page ranges than", "  and says so");
	range_list_free(&l);

	rejects("", "expected an element", "an empty body");
	rejects("<PageList>", "expected an element", "a truncated document");
	rejects("<PageList><PageRange><Start>0</Start><End>511</End></PageRange>", "expected an element",
		"a missing </PageList>");
	rejects("<PageList></PageList><x/>", "data after </PageList>", "trailing data");
	rejects("<Pagelist></Pagelist>", "expected <PageList>", "a wrong root (case matters)");
	rejects("<PageList xmlns=\"x\"></PageList>", "attributes", "attributes");
	rejects("<PageList ></PageList >x", "data after </PageList>", "trailing data after tags with spaces");
	rejects("< PageList></PageList>", "expected an element name", "a space after <");
	rejects("<PageList><PageRange><End>511</End><Start>0</Start></PageRange></PageList>", "expected <Start>",
		"End before Start");
	rejects("<PageList><PageRange><Start>0</Start></PageRange></PageList>", "expected <End>", "a missing End");
	rejects("<PageList><PageRange><Start>0</Start><End>511</End><End>511</End></PageRange></PageList>",
		"expected </PageRange>", "a repeated End");
	rejects("<PageList><PageRange><Start>-512</Start><End>511</End></PageRange></PageList>",
		"expected a decimal number", "a negative number");
	rejects("<PageList><PageRange><Start> 0</Start><End>511</End></PageRange></PageList>",
		"expected a decimal number", "spaces in a number");
	rejects("<PageList><PageRange><Start>99999999999999999999</Start><End>511</End></PageRange></PageList>",
		"number too large", "a number past 64 bits");
	rejects("<PageList><PageRange><Start>1</Start><End>511</End></PageRange></PageList>", "not aligned",
		"an unaligned start");
	rejects("<PageList><PageRange><Start>0</Start><End>510</End></PageRange></PageList>", "not aligned",
		"an unaligned end");
	rejects("<PageList><PageRange><Start>1024</Start><End>511</End></PageRange></PageList>",
		"Start after End", "Start after End");
	rejects("<PageList><PageRange><Start>0</Start><End>8389119</End></PageRange></PageList>",
		"past the end of the blob", "a range past the blob");
	rejects("<PageList><PageRange><Start>1024</Start><End>1535</End></PageRange><PageRange><Start>0</Start>"
		"<End>511</End></PageRange></PageList>",
		"out of order", "ranges out of order");
	rejects("<PageList><PageRange><Start>0</Start><End>1023</End></PageRange><ClearRange><Start>512</Start>"
		"<End>1535</End></ClearRange></PageList>",
		"out of order or overlapping", "overlapping ranges");
	rejects("<PageList><NextMarker>a</NextMarker><PageRange><Start>0</Start><End>511</End></PageRange>"
		"</PageList>",
		"range after NextMarker", "a range after the marker");
	rejects("<PageList><NextMarker>a</NextMarker><NextMarker>b</NextMarker></PageList>",
		"unexpected element", "two markers");
	rejects("<PageList><NextMarker>a&#x41;</NextMarker></PageList>", "unsupported character reference",
		"a numeric character reference");
	rejects("<PageList><Blob/></PageList>", "unexpected element", "an unknown element");
	rejects("<PageList><!-- x --></PageList>", "expected an element name", "a comment");
	rejects("<?xml version=\"1.0\"<PageList/>", "malformed XML declaration", "a broken declaration");

	{
		/* a segment other than the first: ranges outside it are refused */
		struct range_list m = {.max = 10};
		memset(&e, 0, sizeof e);
		const char *x = "<PageList><PageRange><Start>0</Start><End>511</End></PageRange></PageList>";
		is_int(pagelist_parse(x, strlen(x), 4096, 8191, MiB, &m, marker, &e), -1,
		       "a range outside the asked segment is refused");
		like(e.msg, "outside the requested segment", "  and says so");
		/* the body need not be NUL-terminated: only len bytes are read */
		char buf[64];
		memcpy(buf, "<PageList></PageList>XXXX", 25);
		memset(&e, 0, sizeof e);
		is_int(pagelist_parse(buf, 21, 0, 511, 512, &m, marker, &e), 0, "only len bytes are read");
		range_list_free(&m);
	}
	{
		char big[PAGELIST_MAX_MARKER + 64];
		int n = snprintf(big, sizeof big, "<PageList><NextMarker>");
		memset(big + n, 'a', PAGELIST_MAX_MARKER);
		strcpy(big + n + PAGELIST_MAX_MARKER, "</NextMarker></PageList>");
		rejects(big, "text too long", "a marker longer than the cap");
	}

	/* Content-Range */
	uint64_t a, b, t;
	ok(fetch_parse_content_range("bytes 0-511/1024", &a, &b, &t) == 0 && a == 0 && b == 511 && t == 1024,
	   "Content-Range parses");
	ok(fetch_parse_content_range("bytes 0-1024/1024", &a, &b, &t) == -1, "Content-Range past the total is refused");
	ok(fetch_parse_content_range("bytes 10-5/1024", &a, &b, &t) == -1, "Content-Range backwards is refused");
	ok(fetch_parse_content_range("bytes */1024", &a, &b, &t) == -1, "Content-Range without a range is refused");
	ok(fetch_parse_content_range("bytes 0-511/", &a, &b, &t) == -1, "Content-Range without a total is refused");
	ok(fetch_parse_content_range("items 0-511/1024", &a, &b, &t) == -1, "Content-Range of another unit is refused");

	/* URLs */
	struct err ue;
	ok(blob_check_url("https://a.blob.core.windows.net/c/b", 0, &ue) == 0, "https blob URL accepted");
	ok(blob_check_url("https://a.blob.core.windows.net/c/dir/b.img?sv=1&sig=x", 0, &ue) == 0,
	   "SAS URL with a nested blob name accepted");
	ok(blob_check_url("http://127.0.0.1:1/acct/c/b", 0, &ue) == -1 && ue.code == EXIT_USAGE,
	   "http refused without allow_http");
	ok(blob_check_url("http://127.0.0.1:1/acct/c/b", 1, &ue) == 0, "http accepted with allow_http");
	ok(blob_check_url("https://a.blob.core.windows.net/c", 0, &ue) == -1, "a container URL is refused");
	ok(blob_check_url("https://a.blob.core.windows.net/c/", 0, &ue) == -1, "an empty blob name is refused");
	ok(blob_check_url("https://a/c/b#frag", 0, &ue) == -1, "a fragment is refused");
	ok(blob_check_url("ftp://a/c/b", 1, &ue) == -1, "ftp is refused");
	ok(blob_check_url("https://a/c/b?sv=1&sig=SECRET#x", 0, &ue) == -1 && !strstr(ue.msg, "SECRET"),
	   "a refused SAS URL's error hides its query");

	/* libcurl's messages are not ours: any copy of the SAS query in them is cut */
	char m[256];
	snprintf(m, sizeof m, "Failed to GET http://h/a/c/b?sv=1&sig=SECRET%%3D&sp=r: boom, again sv=1&sig=SECRET%%3D&sp=r");
	blob_hide_query(m, sizeof m, "http://h/a/c/b?sv=1&sig=SECRET%3D&sp=r");
	is_str(m, "Failed to GET http://h/a/c/b?<query hidden>: boom, again <query hidden>",
	       "the SAS query is cut from a foreign message, every copy");
	snprintf(m, sizeof m, "no query here");
	blob_hide_query(m, sizeof m, "http://h/a/c/b");
	is_str(m, "no query here", "a URL without a query changes nothing");
	snprintf(m, sizeof m, "x?a=1 y");
	blob_hide_query(m, sizeof m, "http://h/a/c/b?a=1");
	is_str(m, "x?*** y", "a short query is masked in place");
	return done_testing();
}
