/* common/http.c against a loopback HTTPS server (test/fakes/echo.py): retries, deadlines, caps,
 * TLS verification. */
#include "http.h"
#include "service.h"
#include "tap.h"

static char base[128];

static void fault(const char *json)
{
	char url[256];
	snprintf(url, sizeof url, "%s/_fault", base);
	struct http_request rq = {.what = "fault", .method = "POST", .url = url, .body = json,
				  .body_len = strlen(json), .deadline_ms = -1};
	struct http_response rs;
	struct err e;
	if (http_do(&rq, &rs, &e) != 0 || rs.status != 204) {
		printf("Bail out! cannot set fault %s\n", json);
		exit(255);
	}
	http_response_free(&rs);
}

static int get(const char *path, long deadline_ms, struct http_response *rs, struct err *e)
{
	char url[256];
	snprintf(url, sizeof url, "%s%s", base, path);
	struct http_request rq = {.what = "test GET", .url = url, .deadline_ms = deadline_ms,
				  .timeout_ms = 3000, .max_response = 1000};
	return http_do(&rq, rs, e);
}

static void make_certs(const char *dir)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "%s %s/test/fakes/fakelib.py ca %s/good leaf 127.0.0.1 localhost && "
		 "%s %s/test/fakes/fakelib.py ca %s/other leaf 127.0.0.1 localhost && "
		 "%s %s/test/fakes/fakelib.py ca %s/good wrongname other.example",
		 test_python(), test_src(), dir, test_python(), test_src(), dir, test_python(), test_src(), dir);
	if (system(cmd) != 0) {
		printf("Bail out! cannot make test certificates\n");
		exit(255);
	}
}

int main(void)
{
	struct http_response rs;
	struct err e = {0};
	char path[512], cert[512], key[512];
	const char *dir = test_tmpdir();

	log_init("common-http");
	secmem_init();
	http_init();
	make_certs(dir);

	snprintf(cert, sizeof cert, "%s/good/leaf.pem", dir);
	snprintf(key, sizeof key, "%s/good/leaf.key", dir);
	snprintf(path, sizeof path, "%s/test/fakes/echo.py", test_src());
	char *argv[] = {(char *)test_python(), path, "--tls", cert, key, NULL};
	int port = start_service(argv);
	snprintf(base, sizeof base, "https://127.0.0.1:%d", port);

	char ca[512];
	snprintf(ca, sizeof ca, "%s/good/ca.pem", dir);
	http_set_ca_bundle(ca);

	is_int(get("/ok", 0, &rs, &e), 0, "GET over TLS with the test CA succeeds");
	is_int(rs.status, 200, "status 200");
	is_str((const char *)rs.body.data, "hello", "body read");
	char etag[64];
	is_str(http_header(rs.headers, "etag", etag, sizeof etag), "\"v1\"", "header lookup is case-insensitive");
	http_response_free(&rs);

	fault("{\"path\":\"/ok\",\"count\":2,\"status\":503}");
	is_int(get("/ok", 10000, &rs, &e), 0, "two 503s then success");
	is_int(rs.status, 200, "... ends with 200");
	is_int(rs.attempts, 3, "... after exactly 3 attempts");
	http_response_free(&rs);

	fault("{\"path\":\"/ok\",\"count\":1,\"status\":429,\"retry_after\":1}");
	long long t0 = http_now_ms();
	is_int(get("/ok", 10000, &rs, &e), 0, "429 with Retry-After: 1");
	ok(http_now_ms() - t0 >= 1000, "... waited at least the second it asked for (%lld ms)",
	   http_now_ms() - t0);
	is_int(rs.status, 200, "... then 200");
	http_response_free(&rs);

	fault("{\"path\":\"/ok\",\"count\":2,\"reset\":true}");
	is_int(get("/ok", 10000, &rs, &e), 0, "connection reset twice then success");
	is_int(rs.attempts, 3, "... after 3 attempts");
	http_response_free(&rs);

	fault("{\"path\":\"/ok\",\"count\":1,\"truncate\":true}");
	is_int(get("/ok", 10000, &rs, &e), 0, "a truncated body is retried");
	is_str((const char *)rs.body.data, "hello", "... and the full body arrives");
	http_response_free(&rs);

	fault("{\"path\":\"/ok\",\"count\":-1,\"status\":500}");
	t0 = http_now_ms();
	is_int(get("/ok", 2000, &rs, &e), 0, "a service failing forever: the last response is returned");
	long long took = http_now_ms() - t0;
	is_int(rs.status, 500, "... with its status");
	ok(rs.attempts > 2, "... after several attempts (%d)", rs.attempts);
	ok(took <= 2500, "... within the deadline (%lld ms for a 2000 ms deadline)", took);
	http_response_free(&rs);
	fault("{\"path\":\"/_never\"}");
	{
		char url[256];
		snprintf(url, sizeof url, "%s/_fault", base);
		struct http_request rq = {.what = "clear", .method = "DELETE", .url = url, .deadline_ms = -1};
		http_do(&rq, &rs, &e);
		http_response_free(&rs);
	}

	is_int(get("/status/403", 10000, &rs, &e), 0, "403 answered");
	is_int(rs.attempts, 1, "... and not retried");
	like((const char *)rs.body.data, "asked for 403", "... body kept for the caller's message");
	http_response_free(&rs);

	is_int(get("/status/404", 10000, &rs, &e), 0, "404 answered");
	is_int(rs.attempts, 1, "... and not retried");
	http_response_free(&rs);

	is_int(get("/big?n=1001", 10000, &rs, &e), -1, "a body over the cap is refused");
	like(e.msg, "larger than 1000 bytes", "... with the cap in the message");
	is_int(e.code, EXIT_NETWORK, "... network exit code");
	is_int(get("/big?n=1000", 10000, &rs, &e), 0, "a body of exactly the cap is read");
	is_int((long long)rs.body.len, 1000, "... all of it");
	http_response_free(&rs);

	/* TLS: a server whose certificate comes from a CA we do not trust */
	char ca_other[512];
	snprintf(ca_other, sizeof ca_other, "%s/other/ca.pem", dir);
	http_set_ca_bundle(ca_other);
	is_int(get("/ok", 10000, &rs, &e), -1, "a certificate from an untrusted CA is refused");
	like(e.msg, "ENCFS_CA_BUNDLE", "... with a hint about the trust anchors");
	http_set_ca_bundle(ca);

	/* TLS: trusted CA, wrong host name */
	snprintf(cert, sizeof cert, "%s/good/wrongname.pem", dir);
	snprintf(key, sizeof key, "%s/good/wrongname.key", dir);
	char *argv2[] = {(char *)test_python(), path, "--tls", cert, key, NULL};
	int port2 = start_service(argv2);
	char url[256];
	snprintf(url, sizeof url, "https://127.0.0.1:%d/ok", port2);
	struct http_request rq = {.what = "wrong name", .url = url};
	is_int(http_do(&rq, &rs, &e), -1, "a certificate for another host name is refused");
	char where[64];
	snprintf(where, sizeof where, "wrong name: 127.0.0.1:%d: ", port2);
	like(e.msg, where, "... naming the call and the host:port");

	/* plain http is refused unless allowed */
	snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", port);
	struct http_request plain = {.what = "plain", .url = url};
	is_int(http_do(&plain, &rs, &e), -1, "plain http:// refused by default");
	like(e.msg, "only https://", "... saying so");

	/* nothing listening: retried until the deadline, then a network error */
	snprintf(url, sizeof url, "https://127.0.0.1:1/ok");
	struct http_request closed = {.what = "closed port", .url = url, .deadline_ms = 1500};
	t0 = http_now_ms();
	is_int(http_do(&closed, &rs, &e), -1, "connection refused until the deadline fails");
	like(e.msg, "gave up after", "... saying it gave up");
	ok(http_now_ms() - t0 < 3000, "... near the deadline (%lld ms)", http_now_ms() - t0);
	is_int(e.code, EXIT_NETWORK, "... network exit code");

	/* SAS query strings stay out of messages */
	char shown[256];
	http_hostport("https://a.blob.core.windows.net/c/b?sv=1&sig=SECRET", shown, sizeof shown);
	is_str(shown, "a.blob.core.windows.net:443", "host:port spells out https's default port");
	http_hostport("http://169.254.169.254/metadata", shown, sizeof shown);
	is_str(shown, "169.254.169.254:80", "... and http's");
	http_hostport("https://[::1]:8443/x", shown, sizeof shown);
	is_str(shown, "[::1]:8443", "... an IPv6 address in brackets, a given port as it is");
	http_url_for_log("https://a.blob.core.windows.net/c/b?sv=1&sig=SECRET", shown, sizeof shown);
	is_str(shown, "https://a.blob.core.windows.net/c/b?<query hidden>", "query string hidden in URLs");

	is_int(http_backoff_ms(1, -1) <= 250 && http_backoff_ms(1, -1) >= 125, 1, "first backoff 125..250 ms");
	is_int(http_backoff_ms(20, -1) <= 8000, 1, "backoff capped at 8 s");
	is_int(http_backoff_ms(1, 5000), 5000, "Retry-After wins over a shorter backoff");
	is_int(http_retry_after_ms("HTTP/1.1 503 x\r\nRetry-After: 7\r\n"), 7000, "Retry-After seconds");
	is_int(http_retry_after_ms("HTTP/1.1 503 x\r\n"), -1, "no Retry-After");

	stop_services();
	char rm[600];
	snprintf(rm, sizeof rm, "rm -rf %s", dir);
	if (system(rm) != 0)
		diag("could not remove the temporary directory");
	return done_testing();
}
