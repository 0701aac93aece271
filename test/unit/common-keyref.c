/* common/keyref.c: key references as encfs-skr and encfs-unwrap both read them, endpoint hosts. */
#include "keyref.h"
#include "tap.h"

#include <string.h>

static void test_endpoint(void)
{
	char h[64];
	static const char *const cases[][2] = {
		{"myvault.vault.azure.net", "myvault.vault.azure.net"},
		{"https://MyVault.vault.azure.net/", "myvault.vault.azure.net"},
		{"https://h.managedhsm.azure.net/keys/k/1", "h.managedhsm.azure.net"},
		{"127.0.0.1:8443", "127.0.0.1"},
		{"[::1]:9", "::1"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		ok(endpoint_host(cases[i][0], h, sizeof h) == 0 && strcmp(h, cases[i][1]) == 0,
		   "endpoint_host(%s) = %s", cases[i][0], cases[i][1]);
	is_int(endpoint_host("user@host", h, sizeof h), -1, "userinfo is refused");
	is_int(endpoint_host("host:80x", h, sizeof h), -1, "a bad port is refused");
	is_int(endpoint_host("", h, sizeof h), -1, "empty is refused");
}

static void test_key_ref(void)
{
	struct key_ref r;
	static const char *const good[][5] = {
		{"fskey", "", "", "fskey", ""},
		{"fs-key/0123abcdEF", "", "", "fs-key", "0123abcdEF"},
		{"https://V.vault.azure.net/keys/k", "V.vault.azure.net", "v.vault.azure.net", "k", ""},
		{"https://v.vault.azure.net:8443/keys/k/1/", "v.vault.azure.net:8443", "v.vault.azure.net", "k", "1"},
		{"HTTPS://[::1]:9/keys/k-2", "[::1]:9", "::1", "k-2", ""},
		{"k/12/", "", "", "k", "12"},
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		ok(key_ref_parse(good[i][0], &r) == 0 && strcmp(r.endpoint, good[i][1]) == 0 &&
		   strcmp(r.host, good[i][2]) == 0 && strcmp(r.name, good[i][3]) == 0 &&
		   strcmp(r.version, good[i][4]) == 0, "key reference %s", good[i][0]);
	static const char *const bad[] = {
		"", "a b", "k/", "k/1/2", "k/v_1", "/k", "https://v.vault.azure.net/k",
		"https://v.vault.azure.net/keys/", "https:///keys/k", "https://u@v/keys/k", "http://v/keys/k",
		"https://v.vault.azure.net/keys/k/", "k//", "k/1//", "k?x=1", "k/v%2f", "../x",
		"https://v.vault.azure.net/keys/k?api-version=7.4",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		is_int(key_ref_parse(bad[i], &r), -1, "key reference \"%s\" refused", bad[i]);
}

/* the one endpoint grammar encfs-config checks and encfs-skr and encfs-attest read */
static void test_endpoint_check(void)
{
	char why[256];
	static const char *const good[] = {
		"myvault.vault.azure.net", "myvault.vault.azure.net/", "https://myvault.vault.azure.net",
		"HTTPS://h.managedhsm.azure.net/", "127.0.0.1:8443", "[::1]:9", "[::1]", "h:1", "h:65535",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		is_int(endpoint_check(good[i], why, sizeof why), 0, "endpoint %s", good[i]);
	static const char *const bad[][2] = {
		{"", "is empty"},
		{"http://h", "only https"},
		{"ftp://h", "only https"},
		{"https://h/attest", "has a path"},
		{"h/keys/k", "has a path"},
		{"h//", "has a path"},
		{"h?x=1", "has a query"},
		{"h#f", "has a fragment"},
		{"h:0", "bad port"},
		{"h:65536", "bad port"},
		{"h:", "bad port"},
		{"h:8x", "bad port"},
		{"h:99999999999999999999", "bad port"},
		{"u@h", "user information"},
		{"my vault", "which a host name cannot have"},
		{"h_1", "which a host name cannot have"},
		{"[::1", "unterminated"},
		{"[]", "unterminated or empty"},
		{"[::g]", "bad [address]"},
		{"[::1]x", "after the [address]"},
		{"https://", "no usable host"},
		{":443", "no usable host"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = endpoint_check(bad[i][0], why, sizeof why);
		ok(rc == -1 && strstr(why, bad[i][1]), "endpoint \"%s\" refused: %s", bad[i][0], why);
	}
	is_str(api_version_value("api-version=7.4"), "7.4", "api-version=7.4 is 7.4");
	is_str(api_version_value("2016-10-01"), "2016-10-01", "a dated API version");
	ok(api_version_value("") == NULL && api_version_value("7.4 beta") == NULL &&
	   api_version_value("7.4&x=1") == NULL && api_version_value("api-version=") == NULL,
	   "empty, spaces, & and a bare prefix are refused");
}

int main(void)
{
	test_endpoint();
	test_endpoint_check();
	test_key_ref();
	/* a name of 128 characters is one too many */
	char long_name[140];
	memset(long_name, 'a', 128);
	long_name[128] = '\0';
	struct key_ref r;
	is_int(key_ref_parse(long_name, &r), -1, "a 128-character name is refused");
	long_name[127] = '\0';
	is_int(key_ref_parse(long_name, &r), 0, "a 127-character name is accepted");
	return done_testing();
}
