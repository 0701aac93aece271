/* The stored release policy of a key, and what an MAA token lacks for it. */
#include "policy.h"

#include "encode.h"
#include "json.h"
#include "jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POLICY_MAX_TOKENS 4096

void stored_key_free(struct stored_key *k)
{
	sb_free(&k->policy);
	memset(k, 0, sizeof *k);
}

int policy_fetch(const struct vault *v, const char *path, const struct secbuf *bearer,
		 long deadline_ms, struct stored_key *k, struct err *e)
{
	memset(k, 0, sizeof *k);
	k->exportable = -1;
	char what[400];
	snprintf(what, sizeof what, "reading key %s", path);
	struct http_response rs;
	if (vault_request(v, what, "GET", path, NULL, 0, bearer, deadline_ms, &rs, e) != 0)
		return -1;
	int rc = -1;
	struct json j = {0};
	if (rs.status != 200) {
		char msg[600];
		vault_error_text(&rs, msg, sizeof msg);
		err_set(e, vault_status_code(rs.status), "reading key %s from %s: HTTP %ld: %s (%s)", path,
			v->host, rs.status, msg,
			rs.status == 403 ? "the identity needs the keys/get permission (Key Vault Crypto User, "
					   "or Managed HSM Crypto User) to read a key"
			: rs.status == 404 ? "check the key name and version"
					   : "check the vault and the identity");
		goto out;
	}
	if (json_parse(&j, (const char *)rs.body.data, rs.body.len, POLICY_MAX_TOKENS, e) != 0) {
		err_wrap(e, "reading key %s: the vault's answer", path);
		e->code = EXIT_NETWORK;
		goto out;
	}
	(void)json_string_buf(&j, json_get(&j, 0, "key.kid"), k->kid, sizeof k->kid);
	(void)json_string_buf(&j, json_get(&j, 0, "key.kty"), k->kty, sizeof k->kty);
	bool exportable;
	if (json_bool(&j, json_get(&j, 0, "attributes.exportable"), &exportable) == 0)
		k->exportable = exportable;
	int data = json_get(&j, 0, "release_policy.data");
	if (data >= 0) {
		size_t n, plen = 0;
		const char *b64 = json_raw(&j, data, &n);
		unsigned char *pol = json_type(&j, data) == JSON_STRING ? b64_decode_alloc(b64, n, B64_URL, &plen) : NULL;
		struct json pj;
		if (!pol || json_parse(&pj, (const char *)pol, plen, POLICY_MAX_TOKENS, NULL) != 0) {
			free(pol);
			err_set(e, EXIT_NETWORK, "reading key %s: release_policy.data is not base64url of a "
				"JSON policy", path);
			goto out;
		}
		json_free(&pj);
		sb_putn(&k->policy, (const char *)pol, plen);
		free(pol);
		if (k->policy.failed) {
			err_set(e, EXIT_INTERNAL, "reading key %s: out of memory", path);
			goto out;
		}
	}
	rc = 0;
out:
	json_free(&j);
	http_response_free(&rs);
	if (rc != 0)
		stored_key_free(k);
	return rc;
}

/* --- comparing a token with a policy ----------------------------------------------------- */

/* The text a claim or an "equals" compares as: strings as they are, true/false and numbers as
 * written (the vault compares bool and int claims as those strings). */
static int value_text(const struct json *j, int tok, char *out, size_t size)
{
	enum json_type t = json_type(j, tok);
	if (t == JSON_STRING)
		return json_string_buf(j, tok, out, size);
	if (t != JSON_BOOL && t != JSON_NUMBER)
		return -1;
	size_t n;
	const char *raw = json_raw(j, tok, &n);
	if (n >= size)
		return -1;
	memcpy(out, raw, n);
	out[n] = '\0';
	return 0;
}

/* Same issuer: host and port, whatever the scheme and trailing slash. */
static int same_authority(const char *a, const char *b)
{
	if (strncasecmp(a, "https://", 8) == 0)
		a += 8;
	if (strncasecmp(b, "https://", 8) == 0)
		b += 8;
	size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
	return la == lb && strncasecmp(a, b, la) == 0;
}

struct unmet {
	char text[900];
	size_t used;
	int count;
};

/* "claim=want (the token has none)" / "(the token has HAVE)" / "(the token's is HAVE)" */
static void note(struct unmet *u, const char *claim, const char *want, const char *what, const char *have)
{
	char item[400];
	snprintf(item, sizeof item, "%s=%s (the token %s%s)", claim, want, what, have);
	int w = snprintf(u->text + u->used, sizeof u->text - u->used, "%s%s", u->count ? ", " : "", item);
	if (w > 0 && (size_t)w < sizeof u->text - u->used)
		u->used += (size_t)w;
	u->count++;
}

/* Walks a condition tree (allOf/anyOf of {"claim","equals"}): every condition not met goes to u.
 * (For an anyOf the admin needs to see all branches: each is a way to meet it.) */
static void walk(const struct json *pj, int node, const struct json *claims, struct unmet *u, int depth)
{
	if (depth > 16 || json_type(pj, node) != JSON_OBJECT)
		return;
	char claim[200], want[300], have[300];
	int c = json_member(pj, node, "claim");
	if (c >= 0) {
		if (json_string_buf(pj, c, claim, sizeof claim) != 0 ||
		    value_text(pj, json_member(pj, node, "equals"), want, sizeof want) != 0)
			return;
		int t = json_member(claims, 0, claim);
		if (t < 0)
			t = json_get(claims, 0, claim);
		if (t < 0)
			note(u, claim, want, "has none", "");
		else if (value_text(claims, t, have, sizeof have) != 0)
			note(u, claim, want, "has ", "a value that is not a string, number or boolean");
		else if (strcmp(want, have) != 0 && strcmp(claim, "x-ms-sevsnpvm-hostdata") == 0)
			note(u, claim, want, "has this container group's security policy digest ", have);
		else if (strcmp(want, have) != 0)
			note(u, claim, want, "has ", have);
		return;
	}
	static const char *const groups[] = {"allOf", "anyOf"};
	for (int g = 0; g < 2; g++) {
		int arr = json_member(pj, node, groups[g]);
		for (int i = 0, el = arr + 1; i < json_size(pj, arr); i++, el = json_skip(pj, el))
			walk(pj, el, claims, u, depth + 1);
	}
}

void policy_unmet(const char *policy, size_t len, const struct secbuf *token, char *out, size_t size)
{
	out[0] = '\0';
	struct json pj;
	struct jwt t;
	if (json_parse(&pj, policy, len, POLICY_MAX_TOKENS, NULL) != 0)
		return;
	if (jwt_decode((const char *)token->data, token->len, &t, NULL) != 0) {
		json_free(&pj);
		return;
	}
	char iss[300] = "", auth[300], authorities[600] = "";
	(void)json_string_buf(&t.p, json_member(&t.p, 0, "iss"), iss, sizeof iss);
	int top = json_member(&pj, 0, "anyOf");
	if (top < 0)
		top = json_member(&pj, 0, "allOf");
	struct unmet best = {.count = -1};
	for (int i = 0, group = top + 1; i < json_size(&pj, top); i++, group = json_skip(&pj, group)) {
		if (json_string_buf(&pj, json_member(&pj, group, "authority"), auth, sizeof auth) != 0)
			continue;
		if (!same_authority(auth, iss)) {
			size_t al = strlen(authorities);
			snprintf(authorities + al, sizeof authorities - al, "%s%s", al ? ", " : "", auth);
			continue;
		}
		struct unmet u = {0};
		walk(&pj, group, &t.p, &u, 0);
		if (best.count < 0 || u.count < best.count)
			best = u;
	}
	if (best.count > 0)
		snprintf(out, size, "the policy wants %s", best.text);
	else if (best.count < 0 && authorities[0])
		snprintf(out, size, "the policy trusts the authorities %s; the token is from %s", authorities,
			 iss[0] ? iss : "no issuer");
	jwt_free(&t);
	json_free(&pj);
}
