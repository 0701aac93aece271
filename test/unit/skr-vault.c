/* encfs-skr's pieces: endpoints and resources, key references, the token on stdin, the vault's
 * error bodies, and the import configuration with the release policy it makes. */
#include "encode.h"
#include "import.h"
#include "secmem.h"
#include "tap.h"
#include "token.h"
#include "vault.h"

static void test_vault_init(void)
{
	struct vault v;
	struct err e = {0};
	static const struct { const char *endpoint, *base, *host, *resource; } ok_cases[] = {
		{"myvault.vault.azure.net", "https://myvault.vault.azure.net", "myvault.vault.azure.net",
		 "https://vault.azure.net"},
		{"https://MyHSM.managedhsm.azure.net/", "https://MyHSM.managedhsm.azure.net",
		 "myhsm.managedhsm.azure.net", "https://managedhsm.azure.net"},
		{"x.managedhsm.localhost:8443", "https://x.managedhsm.localhost:8443", "x.managedhsm.localhost",
		 "https://managedhsm.azure.net"},
		{"127.0.0.1:443", "https://127.0.0.1:443", "127.0.0.1", "https://vault.azure.net"},
		{"[::1]:9443", "https://[::1]:9443", "[::1]", "https://vault.azure.net"},
	};
	for (size_t i = 0; i < sizeof ok_cases / sizeof ok_cases[0]; i++) {
		int rc = vault_init(&v, ok_cases[i].endpoint, NULL, NULL, &e);
		ok(rc == 0 && strcmp(v.base, ok_cases[i].base) == 0 && strcmp(v.host, ok_cases[i].host) == 0 &&
		   strcmp(v.resource, ok_cases[i].resource) == 0 && strcmp(v.api_version, "7.4") == 0,
		   "%s -> %s, resource %s", ok_cases[i].endpoint, ok_cases[i].base, ok_cases[i].resource);
	}
	ok(vault_init(&v, "v.vault.azure.net", "https://managedhsm.azure.net", "api-version=7.5", &e) == 0 &&
	   strcmp(v.resource, "https://managedhsm.azure.net") == 0 && strcmp(v.api_version, "7.5") == 0,
	   "--resource overrides; the config's api-version=7.5 form is accepted");
	static const struct { const char *endpoint, *why; } bad[] = {
		{"http://v.vault.azure.net", "only https"},
		{"v.vault.azure.net/keys", "has a path"},
		{"v_vault.azure.net", "has \"_\", which a host name cannot have"},
		{"v.vault.azure.net:", "bad port"},
		{"v.vault.azure.net:123456", "bad port"},
		{"v.vault.azure.net:12a", "bad port"},
		{"[::1", "unterminated"},
		{"", "empty"},
		{"https://", "no usable host"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = vault_init(&v, bad[i].endpoint, NULL, NULL, &e);
		ok(rc == -1 && e.code == EXIT_CONFIG && strstr(e.msg, bad[i].why), "\"%s\" refused: %s",
		   bad[i].endpoint, e.msg);
	}
	is_int(vault_init(&v, "v.vault.azure.net", NULL, "7.4&x=1", &e), -1, "an API version with & is refused");
	is_int(vault_init(&v, "v.vault.azure.net", "http://x", NULL, &e), -1, "a non-https resource is refused");
}

static void test_key_ref(void)
{
	char path[300], buf[320];
	struct err e = {0};
	const char *ep = "v.vault.azure.net";
	ok(vault_key_ref("fs-key-1", &ep, buf, sizeof buf, path, sizeof path, &e) == 0 &&
	   strcmp(path, "fs-key-1") == 0, "NAME");
	ok(vault_key_ref("k/0123abcd", &ep, buf, sizeof buf, path, sizeof path, &e) == 0 &&
	   strcmp(path, "k/0123abcd") == 0, "NAME/VERSION");
	const char *none = NULL;
	ok(vault_key_ref("https://h.managedhsm.azure.net/keys/k/abc", &none, buf, sizeof buf, path, sizeof path,
			 &e) == 0 && strcmp(path, "k/abc") == 0 && none && strcmp(none, "h.managedhsm.azure.net") == 0,
	   "a key identifier URL gives the endpoint");
	ok(vault_key_ref("https://V.vault.azure.net:443/keys/k", &ep, buf, sizeof buf, path, sizeof path, &e) == 0,
	   "a key identifier URL of the same vault (other case, with port) is accepted");
	ok(vault_key_ref("https://w.vault.azure.net/keys/k", &ep, buf, sizeof buf, path, sizeof path, &e) == -1 &&
	   strstr(e.msg, "not in the vault"), "one of another vault is refused");
	static const char *const bad[] = {"", "a b", "k/", "k/v/w", "../x", "k?x=1", "https://h/secrets/k",
					  "k/v%2f"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ok(vault_key_ref(bad[i], &ep, buf, sizeof buf, path, sizeof path, &e) == -1, "\"%s\" refused: %s",
		   bad[i], e.msg);
}

static void test_token(void)
{
	struct secbuf t = {0};
	struct err e = {0};
	/* header {"alg":"RS256"}, payload with the claims a 403 hint shows */
	const char *payload = "{\"iss\":\"https://maa.example\",\"x-ms-sevsnpvm-hostdata\":\"abcd\","
			      "\"x-ms-sevsnpvm-is-debuggable\":false,\"x-ms-sevsnpvm-vmpl\":0,\"other\":1}";
	char *p64 = b64_encode(payload, strlen(payload), B64_URL, 0);
	char jwt[1024], in[1200];
	snprintf(jwt, sizeof jwt, "eyJhbGciOiJSUzI1NiJ9.%s.c2ln", p64);
	free(p64);
	snprintf(in, sizeof in, "  %s\n", jwt);
	ok(token_take(in, strlen(in), &t, &e) == 0 && strcmp((char *)t.data, jwt) == 0, "a bare JWT, trimmed");
	char summary[512];
	token_claims_summary(&t, summary, sizeof summary);
	is_str(summary, "iss=https://maa.example, x-ms-sevsnpvm-hostdata=abcd, x-ms-sevsnpvm-is-debuggable=false, "
			"x-ms-sevsnpvm-vmpl=0", "the claims summary for hints");
	secbuf_free(&t);
	snprintf(in, sizeof in, "{\"token\":\"%s\"}", jwt);
	ok(token_take(in, strlen(in), &t, &e) == 0 && strcmp((char *)t.data, jwt) == 0, "MAA's {\"token\"} answer");
	secbuf_free(&t);
	static const char *const bad[] = {"", " \n", "a.b", "a.b.c.d", "a..c", "a.b.c d", "a.b.c\"", "{\"x\":1}",
					  "{\"token\":5}", "{bad"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ok(token_take(bad[i], strlen(bad[i]), &t, &e) == -1 && e.code == EXIT_CONFIG, "bad token %zu refused: %s",
		   i, e.msg);
	struct secbuf junk = {.data = (unsigned char *)"x.y.z", .len = 5};
	token_claims_summary(&junk, summary, sizeof summary);
	is_str(summary, "", "an unreadable payload gives no summary");
}

static void test_errors(void)
{
	struct http_response rs = {0};
	char out[128];
	const char *body = "{\"error\":{\"code\":\"Forbidden\",\"message\":\"Not allowed.\\r\\nCaller: x.\","
			   "\"innererror\":{\"code\":\"AccessDenied\"}}}";
	secbuf_alloc(&rs.body, strlen(body));
	memcpy(rs.body.data, body, strlen(body));
	rs.body.len = strlen(body);
	vault_error_text(&rs, out, sizeof out);
	is_str(out, "Forbidden: Not allowed.  Caller: x", "code: message, on one line");
	secbuf_free(&rs.body);
	secbuf_alloc(&rs.body, 8);
	memcpy(rs.body.data, "<html>", 6);
	rs.body.len = 6;
	vault_error_text(&rs, out, sizeof out);
	is_str(out, "no details", "a body that is not the error JSON");
	secbuf_free(&rs.body);
	is_int(vault_status_code(401), EXIT_DENIED, "401 denied");
	is_int(vault_status_code(403), EXIT_DENIED, "403 denied");
	is_int(vault_status_code(404), EXIT_CONFIG, "404 configuration (the kid)");
	is_int(vault_status_code(400), EXIT_CONFIG, "400 configuration or input");
	is_int(vault_status_code(503), EXIT_NETWORK, "503 network");
	is_int(vault_status_code(429), EXIT_NETWORK, "429 network");
}

static const char config_text[] =
	"{\"key\":{\"kid\":\"fskey\",\"kty\":\"RSA-HSM\",\"key_ops\":[\"encrypt\"],"
	"\"authority\":{\"endpoint\":\"sharedeus.eus.attest.azure.net/\"},"
	"\"akv\":{\"endpoint\":\"v.vault.azure.net\",\"api_version\":\"api-version=7.4\","
	"\"bearer_token\":\"\"}},\"key_derivation\":{\"salt\":\"00ff\",\"label\":\"L\"},"
	"\"claims\":[[{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"ab\\\"c\"}],"
	"[{\"claim\":\"a\",\"equals\":\"1\"},{\"claim\":\"b\",\"equals\":\"\"}]],"
	"\"identity\":{\"client_id\":\"cid\"}}";

static void test_import_config(void)
{
	struct import_config c;
	struct err e = {0};
	int rc = import_config_parse(config_text, strlen(config_text), &c, &e);
	is_int(rc, 0, "an importkeyconfig.json parses");
	if (rc == 0) {
		is_str(c.policy.data,
		       "{\"version\":\"1.0.0\",\"anyOf\":[{\"authority\":\"https://sharedeus.eus.attest.azure.net\","
		       "\"allOf\":[{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"ab\\\"c\"}]},"
		       "{\"authority\":\"https://sharedeus.eus.attest.azure.net\",\"allOf\":[{\"claim\":\"a\","
		       "\"equals\":\"1\"},{\"claim\":\"b\",\"equals\":\"\"}]}]}",
		       "the release policy: one anyOf entry per claims array, authority https://<endpoint>");
		ok(strcmp(c.kty, "RSA-HSM") == 0 && strcmp(c.salt_hex, "00ff") == 0 && strcmp(c.label, "L") == 0 &&
		   strcmp(c.client_id, "cid") == 0 && strcmp(c.key_ops.data, "[\"encrypt\"]") == 0 &&
		   strcmp(c.api_version, "api-version=7.4") == 0,
		   "kty, key_derivation, identity, key_ops and api_version are read");
		import_config_free(&c);
	}
	const char *no_kty = "{\"key\":{\"kid\":\"k\",\"authority\":{\"endpoint\":\"https://m\"},\"akv\":"
			     "{\"endpoint\":\"v\"}},\"claims\":[[{\"claim\":\"a\",\"equals\":\"b\"}]]}";
	ok(import_config_parse(no_kty, strlen(no_kty), &c, &e) == 0 && strcmp(c.kty, "oct-HSM") == 0 &&
	   strstr(c.policy.data, "\"authority\":\"https://m\""), "no kty is oct-HSM; an https:// authority is kept");
	import_config_free(&c);
	static const struct { const char *text, *why; } bad[] = {
		{"{\"key\":{\"kid\":\"<key-vault-key-identifier>\"}}", "key.kid still holds the template placeholder"},
		{"{\"key\":{\"kid\":\"k\",\"kty\":\"EC-HSM\",\"authority\":{\"endpoint\":\"m\"},\"akv\":{\"endpoint\":"
		 "\"v\"}},\"claims\":[[{\"claim\":\"a\",\"equals\":\"b\"}]]}", "key.kty \"EC-HSM\" is not oct-HSM or RSA-HSM"},
		{"{\"key\":{\"kid\":\"k\",\"authority\":{\"endpoint\":\"m\"},\"akv\":{\"endpoint\":\"v\"}},"
		 "\"claims\":[[{\"claim\":\"a\",\"equals\":0}]]}", "claims[0][0].equals is a number, not a string"},
		{"{\"key\":{\"kid\":\"k\",\"authority\":{\"endpoint\":\"m\"},\"akv\":{\"endpoint\":\"v\"}},"
		 "\"claims\":[[{\"claim\":\"a\"}]]}", "claims[0][0].equals is missing"},
		{"{\"key\":{\"kid\":\"k\",\"authority\":{\"endpoint\":\"m\"},\"akv\":{\"endpoint\":\"v\"}},"
		 "\"claims\":[]}", "claims must be a non-empty array"},
		{"{\"key\":{\"kid\":\"k\",\"authority\":{\"endpoint\":\"m\"},\"akv\":{\"endpoint\":\"v\"}},"
		 "\"claims\":[[]]}", "claims[0] must be a non-empty array"},
		{"{\"key\":{\"kid\":\"k\",\"authority\":{\"endpoint\":\"m\"},\"akv\":{\"endpoint\":\"v\"}},"
		 "\"key_derivation\":{\"salt\":\"xyz\"},\"claims\":[[{\"claim\":\"a\",\"equals\":\"b\"}]]}",
		 "key_derivation.salt is not hex"},
		{"{\"key\":{\"kid\":\"k\",\"authority\":{\"endpoint\":\"m\"}},\"claims\":[[]]}", "key.akv.endpoint is missing"},
		{"{\"key\":{\"kid\":\"k\",\"authority\":{\"endpoint\":\"m\"},\"akv\":{\"endpoint\":\"v\","
		 "\"bearer_token\":\"<aad-token-with-permissions-to-akv>\"}},\"claims\":[[]]}",
		 "remove it to use the managed or workload identity"},
		{"[]", "no \"key\" object"},
		{"{\"key\":1,\"key\":2}", "duplicate"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int r = import_config_parse(bad[i].text, strlen(bad[i].text), &c, &e);
		ok(r == -1 && strstr(e.msg, bad[i].why), "bad config %zu refused: %s", i, e.msg);
	}
}

int main(void)
{
	secmem_init();
	test_vault_init();
	test_key_ref();
	test_token();
	test_errors();
	test_import_config();
	return done_testing();
}
