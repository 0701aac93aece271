/* Evidence as the upstream sidecar gathers it: the ACI security context (files or environment)
 * and, when its certificates are missing or stale, the VCEK chain from THIM. */
#include "evidence.h"

#include "encode.h"
#include "http.h"
#include "identity.h"
#include "io.h"
#include "json.h"
#include "verify.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- base64 as Go's StdEncoding reads it: \r and \n are skipped ------------------------------- */

static uint8_t *b64_lenient(const char *text, size_t len, size_t *outlen)
{
	char *clean = malloc(len + 1);
	if (!clean)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		if (text[i] != '\r' && text[i] != '\n')
			clean[n++] = text[i];
	uint8_t *out = n ? b64_decode_alloc(clean, n, B64_STD, outlen) : NULL;
	free(clean);
	return out;
}

int policy_digest(const char *b64, size_t len, uint8_t out[32], struct err *e)
{
	size_t n = 0;
	uint8_t *policy = b64_lenient(b64, len, &n);
	if (!policy)
		return err_set(e, EXIT_CONFIG,
			       "security policy: not standard base64 (give the base64 text, as in the ARM template)");
	crypto_hash_sha256(out, policy, n);
	free(policy);
	return 0;
}

/* --- THIM certification JSON ---------------------------------------------------------------- */

void thim_free(struct thim_certs *c)
{
	free(c->vcek_pem);
	free(c->chain_pem);
	memset(c, 0, sizeof *c);
}

int thim_parse(const char *text, size_t len, struct thim_certs *c, struct err *e)
{
	struct json j;
	memset(c, 0, sizeof *c);
	if (json_parse(&j, text, len, 64, e) != 0)
		return err_wrap(e, "THIM certificates");
	int rc = -1;
	int vt = json_member(&j, 0, "vcekCert"), ct = json_member(&j, 0, "certificateChain");
	int tt = json_member(&j, 0, "tcbm");
	char tcbm[32];
	if (json_type(&j, 0) != JSON_OBJECT) {
		err_set(e, EXIT_CONFIG, "THIM certificates: not a JSON object");
	} else if (json_type(&j, vt) != JSON_STRING || json_type(&j, ct) != JSON_STRING) {
		err_set(e, EXIT_CONFIG, "THIM certificates: vcekCert and certificateChain must be strings");
	} else if (tt >= 0 && (json_string_buf(&j, tt, tcbm, sizeof tcbm) != 0 || !*tcbm ||
			       strlen(tcbm) > 16 || strspn(tcbm, "0123456789abcdefABCDEF") != strlen(tcbm))) {
		err_set(e, EXIT_CONFIG, "THIM certificates: tcbm is not a hex TCB value");
	} else if (!(c->vcek_pem = json_string(&j, vt)) || !(c->chain_pem = json_string(&j, ct))) {
		err_set(e, EXIT_INTERNAL, "THIM certificates: out of memory");
	} else {
		if (tt >= 0) {
			c->tcbm = strtoull(tcbm, NULL, 16);
			c->have_tcbm = 1;
		}
		rc = 0;
	}
	json_free(&j);
	if (rc != 0)
		thim_free(c);
	return rc;
}

int thim_parse_any(const char *text, size_t len, struct thim_certs *c, struct err *e)
{
	size_t i = 0;
	while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t'))
		i++;
	if (i < len && text[i] == '{')
		return thim_parse(text, len, c, e);
	size_t n = 0;
	uint8_t *json = b64_lenient(text, len, &n);
	if (!json)
		return err_set(e, EXIT_CONFIG, "THIM certificates: neither JSON nor base64 of JSON");
	int rc = thim_parse((const char *)json, n, c, e);
	free(json);
	return rc;
}

/* --- the security context --------------------------------------------------------------------- */

/* Reads dir/name; 1 when it does not exist, 0 with *text (NUL-terminated) or -1. */
static int read_context_file(const char *dir, const char *name, char **text, size_t *len, struct err *e)
{
	char path[PATH_MAX];
	*text = NULL;
	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
		return err_set(e, EXIT_CONFIG, "security context %s: path too long", dir);
	*text = read_file_capped(path, EVIDENCE_FILE_MAX, len);
	if (*text)
		return 0;
	if (errno == ENOENT)
		return 1;
	return err_set(e, EXIT_CONFIG, "reading %s: %s", path, strerror(errno));
}

static int take_evidence(struct evidence *ev, const char *what, char *policy, size_t plen, char *certs,
			 size_t clen, char *refinfo, size_t rlen, struct err *e)
{
	if (policy && plen) {
		ev->policy_b64 = policy;
		policy = NULL;
	}
	if (certs && clen && thim_parse_any(certs, clen, &ev->certs, e) != 0) {
		err_wrap(e, "%s host-amd-cert-base64", what);
		goto fail;
	}
	if (refinfo && rlen) {
		ev->reference_info = b64_lenient(refinfo, rlen, &ev->reference_info_len);
		if (!ev->reference_info) {
			err_set(e, EXIT_CONFIG, "%s reference-info-base64: not standard base64", what);
			goto fail;
		}
	}
	free(policy);
	free(certs);
	free(refinfo);
	return 0;
fail:
	free(policy);
	free(certs);
	free(refinfo);
	return -1;
}

void evidence_free(struct evidence *ev)
{
	free(ev->policy_b64);
	thim_free(&ev->certs);
	free(ev->reference_info);
	memset(ev, 0, sizeof *ev);
}

int evidence_load(struct evidence *ev, struct err *e)
{
	memset(ev, 0, sizeof *ev);
	const char *dir = getenv("UVM_SECURITY_CONTEXT_DIR");
	glob_t g = {0};
	if ((!dir || !*dir) && glob("/security-context-*", GLOB_ONLYDIR, NULL, &g) == 0 && g.gl_pathc > 0)
		dir = g.gl_pathv[0];
	int rc;
	if (dir && *dir) {
		char *p = NULL, *c = NULL, *r = NULL;
		size_t pl = 0, cl = 0, rl = 0;
		struct stat st;
		snprintf(ev->where, sizeof ev->where, "%s", dir);
		errno = 0;
		if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
			rc = err_set(e, EXIT_CONFIG, "security context %s: %s", dir,
				     errno ? strerror(errno) : "not a directory");
		else if (read_context_file(dir, "security-policy-base64", &p, &pl, e) < 0 ||
			 read_context_file(dir, "host-amd-cert-base64", &c, &cl, e) < 0 ||
			 read_context_file(dir, "reference-info-base64", &r, &rl, e) < 0) {
			free(p);
			free(c);
			rc = -1;
		} else {
			rc = take_evidence(ev, dir, p, pl, c, cl, r, rl, e);
		}
	} else {
		const char *p = getenv("UVM_SECURITY_POLICY"), *c = getenv("UVM_HOST_AMD_CERTIFICATE"),
			   *r = getenv("UVM_REFERENCE_INFO");
		rc = 0;
		if ((p && *p) || (c && *c) || (r && *r)) {
			snprintf(ev->where, sizeof ev->where, "environment");
			char *pd = p && *p ? strdup(p) : NULL, *cd = c && *c ? strdup(c) : NULL,
			     *rd = r && *r ? strdup(r) : NULL;
			if ((p && *p && !pd) || (c && *c && !cd) || (r && *r && !rd)) {
				free(pd);
				free(cd);
				free(rd);
				rc = err_set(e, EXIT_INTERNAL, "out of memory");
			} else {
				rc = take_evidence(ev, "environment UVM_*:", pd, pd ? strlen(pd) : 0, cd,
						   cd ? strlen(cd) : 0, rd, rd ? strlen(rd) : 0, e);
			}
		}
	}
	globfree(&g);
	if (rc != 0)
		evidence_free(ev);
	return rc;
}

/* --- certcache configuration and THIM fetches -------------------------------------------------- */

static int safe_chars(const char *s, const char *allowed_punct)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr(allowed_punct, *s)))
			return 0;
	return 1;
}

int certcache_parse(const char *text, size_t len, struct certcache *cc, struct err *e)
{
	struct json j;
	memset(cc, 0, sizeof *cc);
	if (json_parse(&j, text, len, 64, e) != 0)
		return err_wrap(e, "--certcache");
	int rc = -1;
	int t = json_member(&j, 0, "endpoint_type"), ep = json_member(&j, 0, "endpoint");
	int tee = json_member(&j, 0, "tee_type"), api = json_member(&j, 0, "api_version");
	if (json_type(&j, 0) != JSON_OBJECT || json_string_buf(&j, t, cc->endpoint_type, sizeof cc->endpoint_type) ||
	    json_string_buf(&j, ep, cc->endpoint, sizeof cc->endpoint)) {
		err_set(e, EXIT_CONFIG, "--certcache: endpoint_type and endpoint must be strings");
	} else if ((tee >= 0 && json_string_buf(&j, tee, cc->tee_type, sizeof cc->tee_type)) ||
		   (api >= 0 && json_string_buf(&j, api, cc->api_version, sizeof cc->api_version))) {
		err_set(e, EXIT_CONFIG, "--certcache: tee_type and api_version must be short strings");
	} else if (strcmp(cc->endpoint_type, "AzCache") && strcmp(cc->endpoint_type, "LocalTHIM") &&
		   strcmp(cc->endpoint_type, "AMD")) {
		err_set(e, EXIT_CONFIG, "--certcache: endpoint_type \"%s\" is not AzCache, LocalTHIM or AMD",
			cc->endpoint_type);
	} else {
		/* "https://host/path" or "host/path"; https only */
		char *ep_s = cc->endpoint;
		if (strncmp(ep_s, "https://", 8) == 0)
			memmove(ep_s, ep_s + 8, strlen(ep_s + 8) + 1);
		size_t n = strlen(ep_s);
		while (n > 0 && ep_s[n - 1] == '/')
			ep_s[--n] = '\0';
		if (!*cc->tee_type)
			snprintf(cc->tee_type, sizeof cc->tee_type, "%s",
				 strcmp(cc->endpoint_type, "AMD") == 0 ? "Milan" : "SevSnpVM");
		if (!*cc->api_version && strcmp(cc->endpoint_type, "AzCache") == 0)
			snprintf(cc->api_version, sizeof cc->api_version, "api-version=2020-10-15-preview");
		else if (*cc->api_version && !strchr(cc->api_version, '=')) {
			char v[sizeof cc->api_version];
			snprintf(v, sizeof v, "%s", cc->api_version);
			snprintf(cc->api_version, sizeof cc->api_version, "api-version=%s", v);
		}
		if (!*ep_s || !safe_chars(ep_s, ".-_:/~%") || !safe_chars(cc->tee_type, "-_") ||
		    !safe_chars(cc->api_version, "=&.-_"))
			err_set(e, EXIT_CONFIG,
				"--certcache: endpoint, tee_type or api_version holds characters a URL "
				"cannot (give https://host[/path])");
		else
			rc = 0;
	}
	json_free(&j);
	return rc;
}

static int get(const char *what, const char *url, int metadata, int allow_http, struct http_response *rs,
	       struct err *e)
{
	static const char *const meta[] = {"Metadata: true", NULL};
	struct http_request rq = {.what = what, .url = url, .headers = metadata ? meta : NULL,
				  .allow_http = allow_http};
	if (http_do(&rq, rs, e) != 0)
		return -1;
	if (rs->status == 200)
		return 0;
	char shown[512], said[201] = "";
	http_url_for_log(url, shown, sizeof shown);
	size_t n = rs->body.len > 200 ? 200 : rs->body.len;
	for (size_t i = 0; i < n; i++) /* one printable line */
		said[i] = rs->body.data[i] < 0x20 || rs->body.data[i] >= 0x7f ? ' ' : (char)rs->body.data[i];
	said[n] = '\0';
	err_set(e, rs->status >= 500 || rs->status == 429 ? EXIT_NETWORK : EXIT_ATTEST,
		"%s %s: HTTP %ld: %s (check the certificate cache endpoint)", what, shown, rs->status, said);
	http_response_free(rs);
	return -1;
}

static int take_chain_tcb(const char *what, struct thim_certs *c, int turin, struct err *e)
{
	struct amd_chain ch;
	if (amd_chain_load(c->chain_pem, strlen(c->chain_pem), &ch, e) != 0)
		return err_wrap(e, "%s", what);
	int bad = vcek_tcb(ch.vcek, turin, &c->tcbm);
	amd_chain_free(&ch);
	if (bad)
		return err_set(e, EXIT_ATTEST, "%s: the VCEK has no readable TCB extensions", what);
	c->have_tcbm = 1;
	return 0;
}

void kds_vcek_url(const struct certcache *cc, const struct snp_report *r, char *url, size_t size)
{
	char chip[2 * SNP_CHIP_ID_SIZE + 1];
	const struct snp_tcb *t = &r->reported_tcb;
	/* Turin's hwID is the first 8 bytes of CHIP_ID, and its TCB has an FMC SPL */
	hex_encode(r->chip_id, r->turin ? 8 : SNP_CHIP_ID_SIZE, chip);
	if (r->turin)
		snprintf(url, size, "https://%s/%s/%s?fmcSPL=%u&blSPL=%u&teeSPL=%u&snpSPL=%u&ucodeSPL=%u",
			 cc->endpoint, cc->tee_type, chip, t->fmc, t->bootloader, t->tee, t->snp, t->microcode);
	else
		snprintf(url, size, "https://%s/%s/%s?ucodeSPL=%u&snpSPL=%u&teeSPL=%u&blSPL=%u", cc->endpoint,
			 cc->tee_type, chip, t->microcode, t->snp, t->tee, t->bootloader);
}

int thim_fetch(const struct certcache *cc, const struct snp_report *r, struct thim_certs *c, struct err *e)
{
	char url[2048], chip[2 * SNP_CHIP_ID_SIZE + 1];
	struct http_response rs;
	struct thim_certs got = {0};
	hex_encode(r->chip_id, sizeof r->chip_id, chip);
	const char *type = cc && *cc->endpoint_type ? cc->endpoint_type : "";

	if (!*type || strcmp(type, "LocalTHIM") == 0) {
		char base[512];
		int imds = !*type;
		if (imds)
			snprintf(url, sizeof url, "%s/metadata/THIM/amd/certification",
				 identity_imds_base(base, sizeof base));
		else
			snprintf(url, sizeof url, "https://%s", cc->endpoint);
		const char *what = imds ? "IMDS THIM" : "certcache LocalTHIM";
		if (get(what, url, 1, imds, &rs, e) != 0)
			return -1;
		int rc = thim_parse((const char *)rs.body.data, rs.body.len, &got, e);
		http_response_free(&rs);
		if (rc != 0)
			return err_wrap(e, "%s", what);
		if (!got.have_tcbm) {
			thim_free(&got);
			return err_set(e, EXIT_ATTEST, "%s: the answer has no tcbm", what);
		}
	} else if (strcmp(type, "AzCache") == 0) {
		snprintf(url, sizeof url, "https://%s/%s/certificates/%s/%llx%s%s", cc->endpoint, cc->tee_type,
			 chip, (unsigned long long)r->reported_tcb.raw, *cc->api_version ? "?" : "",
			 cc->api_version);
		if (get("certcache AzCache", url, 0, 0, &rs, e) != 0)
			return -1;
		got.chain_pem = strndup((const char *)rs.body.data, rs.body.len);
		got.vcek_pem = strdup("");
		http_response_free(&rs);
		if (!got.chain_pem || !got.vcek_pem) {
			thim_free(&got);
			return err_set(e, EXIT_INTERNAL, "out of memory");
		}
		if (take_chain_tcb("certcache AzCache", &got, r->turin, e) != 0) {
			thim_free(&got);
			return -1;
		}
	} else { /* AMD KDS: the VCEK in DER, then the ASK/ARK chain in PEM */
		kds_vcek_url(cc, r, url, sizeof url);
		if (get("certcache AMD VCEK", url, 0, 0, &rs, e) != 0)
			return -1;
		const unsigned char *p = rs.body.data;
		X509 *vcek = d2i_X509(NULL, &p, (long)rs.body.len);
		http_response_free(&rs);
		BIO *bio = BIO_new(BIO_s_mem());
		char *pem = NULL;
		long n = 0;
		if (vcek && bio && PEM_write_bio_X509(bio, vcek) == 1)
			n = BIO_get_mem_data(bio, &pem);
		got.vcek_pem = n > 0 ? strndup(pem, (size_t)n) : NULL;
		X509_free(vcek);
		BIO_free(bio);
		if (!got.vcek_pem)
			return err_set(e, EXIT_ATTEST, "certcache AMD: the VCEK answer is not a DER certificate");
		snprintf(url, sizeof url, "https://%s/%s/cert_chain", cc->endpoint, cc->tee_type);
		if (get("certcache AMD cert_chain", url, 0, 0, &rs, e) != 0) {
			thim_free(&got);
			return -1;
		}
		size_t vl = strlen(got.vcek_pem);
		got.chain_pem = malloc(vl + rs.body.len + 1);
		if (got.chain_pem) { /* keep the whole chain in chain_pem, VCEK first */
			memcpy(got.chain_pem, got.vcek_pem, vl);
			memcpy(got.chain_pem + vl, rs.body.data, rs.body.len);
			got.chain_pem[vl + rs.body.len] = '\0';
			got.vcek_pem[0] = '\0';
		}
		http_response_free(&rs);
		if (!got.chain_pem) {
			thim_free(&got);
			return err_set(e, EXIT_INTERNAL, "out of memory");
		}
		if (take_chain_tcb("certcache AMD", &got, r->turin, e) != 0) {
			thim_free(&got);
			return -1;
		}
	}
	thim_free(c);
	*c = got;
	return 0;
}
