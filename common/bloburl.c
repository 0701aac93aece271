/* Blob URLs: one rule for the configuration check and the download. */
#include "bloburl.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

int blob_url_check(const char *url, int allow_http, char *why, size_t why_size)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *path = NULL, *fragment = NULL;
	int ret = -1;
	if (!u) {
		snprintf(why, why_size, "out of memory");
		return -1;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		snprintf(why, why_size, "is not an absolute https:// URL (give "
			 "https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB)");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) == CURLUE_OK) {
		snprintf(why, why_size, "has a #fragment (remove it)");
		goto out;
	}
	if (strcmp(scheme, "https") != 0 && !(allow_http && strcmp(scheme, "http") == 0)) {
		snprintf(why, why_size, "%s", strcmp(scheme, "http") == 0
			 ? "is plain http (https is required; http is a test switch)"
			 : "is not an https:// URL");
		goto out;
	}
	/* /CONTAINER/BLOB: "/c" and "/c/" name a container, not a blob */
	const char *p = path[0] == '/' ? path + 1 : path, *slash = strchr(p, '/');
	if (!slash || slash == p || slash[1] == '\0') {
		snprintf(why, why_size, "names no blob: the path must be /CONTAINER/BLOB (e.g. "
			 "https://account.blob.core.windows.net/container/encfs.img)");
		goto out;
	}
	ret = 0;
out:
	curl_free(scheme);
	curl_free(path);
	curl_free(fragment);
	curl_url_cleanup(u);
	return ret;
}
