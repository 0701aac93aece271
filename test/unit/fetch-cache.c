/* encfs-fetch's mount cache, set up against an endpoint that fails or lies. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "blob.h"
#include "cache.h"
#include "tap.h"

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

	blob_client_free(&bc);
	curl_global_cleanup();
	return done_testing();
}
