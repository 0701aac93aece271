/* Key Vault key references, as both encfs-skr (what to release) and encfs-unwrap (what the
 * release must be for) read them: one grammar, so the two can never disagree about a name. */
#include "keyref.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

int endpoint_host(const char *endpoint, char *host, size_t size)
{
	const char *s = endpoint, *scheme = strstr(endpoint, "://");
	if (scheme)
		s = scheme + 3;
	size_t n = strcspn(s, "/?#");
	if (n == 0 || memchr(s, '@', n))
		return -1;
	const char *start = s, *end = s + n;
	if (*s == '[') {
		const char *close = memchr(s, ']', n);
		if (!close || close == s + 1)
			return -1;
		start = s + 1;
		end = close;
	} else {
		const char *colon = memchr(s, ':', n);
		if (colon) {
			for (const char *p = colon + 1; p < s + n; p++)
				if (!isdigit((unsigned char)*p))
					return -1;
			end = colon;
		}
	}
	size_t len = (size_t)(end - start);
	if (len == 0 || len >= size)
		return -1;
	for (size_t i = 0; i < len; i++)
		host[i] = (char)tolower((unsigned char)start[i]);
	host[len] = '\0';
	return 0;
}

/* Key Vault's rule for key names and versions: 1-127 letters, digits and dashes. */
static int name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 127)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
	return 1;
}

int key_ref_parse(const char *ref, struct key_ref *out)
{
	memset(out, 0, sizeof *out);
	const char *path = ref;
	size_t len = strlen(ref);
	if (strncasecmp(ref, "https://", 8) == 0) {
		const char *slash = strchr(ref + 8, '/');
		size_t el = (size_t)(slash ? slash - (ref + 8) : 0);
		if (!slash || strncmp(slash, "/keys/", 6) != 0 || el == 0 || el >= sizeof out->endpoint ||
		    endpoint_host(ref, out->host, sizeof out->host) != 0)
			return -1;
		memcpy(out->endpoint, ref + 8, el);
		path = slash + 6;
		len = strlen(path);
	} else if (strstr(ref, "://")) {
		return -1;
	}
	const char *sep = memchr(path, '/', len);
	size_t nl = sep ? (size_t)(sep - path) : len;
	size_t vl = sep ? len - nl - 1 : 0;
	if (vl > 1 && sep[vl] == '/') /* "k/1/": an identifier copied with its slash */
		vl--;
	if (!name_ok(path, nl) || (sep && !name_ok(sep + 1, vl))) {
		memset(out, 0, sizeof *out);
		return -1;
	}
	memcpy(out->name, path, nl);
	if (sep)
		memcpy(out->version, sep + 1, vl);
	return 0;
}
