/* The one rule for a blob URL, as encfs-config checks it and encfs-fetch reads it. */
#ifndef ENCFS_BLOBURL_H
#define ENCFS_BLOBURL_H

#include <stddef.h>

/* An absolute https:// URL (http:// too when allow_http) whose path is /CONTAINER/BLOB (a blob
 * name may hold further slashes; both parts non-empty), without a #fragment; a query string (a
 * SAS) is allowed.  0, or -1 with the reason in why, which never quotes the query. */
int blob_url_check(const char *url, int allow_http, char *why, size_t why_size);

#endif
