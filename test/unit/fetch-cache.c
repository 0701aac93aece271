/* encfs-fetch's mount cache, set up against an endpoint that fails or lies: an error at mount is
 * reported, memory does not grow with the size it claims beyond a page blob's bitmap, and a page
 * blob larger than the service allows is refused before anything is sized on it. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "blob.h"
#include "cache.h"
#include "tap.h"

/* resident memory of this process, in KiB */
static long rss_kib(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(void)
{
	struct blob_client bc;
	struct err e = {0};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* never contacted: nothing here reads or lists */
	if (blob_client_init(&bc, "http://127.0.0.1:9/acct/c/b", 1, 1000, 1000, NULL, &e) != 0)
		return fprintf(stderr, "Bail out! blob_client_init: %s\n", e.msg), 1;

	/* a page blob whose page list cannot be had: an error that names the blob (from a cache
	 * already freed, once) */
	struct blob_info info = {.size = 1ull << 20};
	snprintf(info.etag, sizeof info.etag, "\"0x1\"");
	snprintf(info.type, sizeof info.type, "PageBlob");
	struct cache_config cc = {.blob = &bc, .info = &info, .jobs = 2, .cache_mb = CACHE_MIN_MB};
	struct cache *c = NULL;
	int rc = cache_open(&c, &cc, &e);
	ok(rc == -1 && c == NULL, "a page list that cannot be had: the cache is not set up");
	like(e.msg, "listing the pages of http://127.0.0.1:9/acct/c/b", "... and the error names the blob");

	/* a block blob that says it is 1 PiB (the service allows ~190 TiB; an endpoint may say anything) */
	info.size = 1ull << 50;
	snprintf(info.type, sizeof info.type, "BlockBlob");
	memset(&e, 0, sizeof e);
	c = NULL;
	long before = rss_kib();
	rc = cache_open(&c, &cc, &e);
	long grew = rss_kib() - before;
	ok(rc == 0, "a block blob of 1 PiB: the cache is set up (%s)", rc ? e.msg : "ok");
	ok(before > 0 && grew < 16 * 1024, "... and the process grew by %ld KiB, not by a map of the blob's blocks",
	   grew);
	cache_close(c);

	/* a page blob over the service's 8 TiB: refused, nothing sized on it, no request made */
	info.size = 1ull << 50;
	snprintf(info.type, sizeof info.type, "PageBlob");
	memset(&e, 0, sizeof e);
	c = NULL;
	before = rss_kib();
	rc = cache_open(&c, &cc, &e);
	grew = rss_kib() - before;
	ok(rc == -1 && c == NULL && e.code == EXIT_NETWORK, "a page blob of 1 PiB is refused (exit %d)", e.code);
	like(e.msg, "larger than a page blob can be", "... saying why");
	ok(grew < 16 * 1024, "... having grown by %ld KiB", grew);
	if (c)
		cache_close(c);

	blob_client_free(&bc);
	curl_global_cleanup();
	return done_testing();
}
