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

int main(void)
{
	test_endpoint();
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
