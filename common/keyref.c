/* Key Vault key references, as both encfs-skr (what to release) and encfs-unwrap (what the
 * release must be for) read them: one grammar, so the two can never disagree about a name. */
#include "keyref.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
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

int endpoint_check(const char *endpoint, char *why, size_t why_size)
{
	const char *s = endpoint;
	if (!*s) {
		snprintf(why, why_size, "is empty");
		return -1;
	}
	if (strncasecmp(s, "https://", 8) == 0) {
		s += 8;
	} else if (strstr(s, "://")) {
		snprintf(why, why_size, "only https is allowed (give HOST[:PORT] or https://HOST[:PORT])");
		return -1;
	}
	size_t n = strcspn(s, "/?#");
	if (s[n] && strcmp(s + n, "/") != 0) {
		snprintf(why, why_size, "has a %s (give only the host name and port, e.g. "
			 "myvault.vault.azure.net or sharedeus2.eus2.attest.azure.net)",
			 s[n] == '/' ? "path" : s[n] == '?' ? "query" : "fragment");
		return -1;
	}
	size_t hostlen = n;
	const char *colon = NULL;
	if (n > 0 && *s == '[') {
		const char *close = memchr(s, ']', n);
		if (!close || close == s + 1) {
			snprintf(why, why_size, "has an unterminated or empty [address]");
			return -1;
		}
		hostlen = (size_t)(close - s) + 1;
		for (size_t i = 1; i + 1 < hostlen; i++)
			if (!isxdigit((unsigned char)s[i]) && s[i] != ':' && s[i] != '.') {
				snprintf(why, why_size, "has a bad [address]");
				return -1;
			}
		if (hostlen < n) {
			if (s[hostlen] != ':') {
				snprintf(why, why_size, "has characters after the [address]");
				return -1;
			}
			colon = s + hostlen;
		}
	} else {
		colon = memchr(s, ':', n);
		if (colon)
			hostlen = (size_t)(colon - s);
		for (size_t i = 0; i < hostlen; i++)
			if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.') {
				if (s[i] == '@')
					snprintf(why, why_size, "has user information (give only the host name)");
				else if ((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f)
					snprintf(why, why_size, "has \"%c\", which a host name cannot have", s[i]);
				else
					snprintf(why, why_size, "has a character not allowed in a host name");
				return -1;
			}
	}
	if (hostlen == 0 || hostlen > 253) {
		snprintf(why, why_size, "has no usable host name");
		return -1;
	}
	if (colon) {
		size_t plen = n - (size_t)(colon - s) - 1;
		long port = 0;
		for (size_t i = 1; i <= plen; i++)
			port = isdigit((unsigned char)colon[i]) && port < 100000 ? port * 10 + (colon[i] - '0') : 100000;
		if (plen == 0 || port < 1 || port > 65535) {
			snprintf(why, why_size, "has a bad port (1 to 65535)");
			return -1;
		}
	}
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

const char *api_version_value(const char *av)
{
	if (strncmp(av, "api-version=", 12) == 0)
		av += 12;
	size_t n = strlen(av);
	if (n == 0 || n > 31 || strspn(av, "0123456789abcdefghijklmnopqrstuvwxyz.-") != n)
		return NULL;
	return av;
}
