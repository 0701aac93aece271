/* Report and AMD certificate chain verification on OpenSSL libcrypto. */
#include "verify.h"

#include "encode.h"
#include "io.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SHA-256 of the SubjectPublicKeyInfo of AMD's ARK-Milan, ARK-Genoa and ARK-Turin (the roots of
 * every VCEK on those products; certificates from
 * https://kdsintf.amd.com/vcek/v1/{Milan,Genoa,Turin}/cert_chain; ARK-Turin's certificate has the
 * SHA-256 fingerprint 1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a). */
static const char *const pinned_ark_spki[] = {
	"9f056bee44377e29308cb5ffa895bdfb62d18881fa6bed8d6f075b0204089cb9", /* ARK-Milan */
	"429a69c9422aa258ee4d8db5fcda9c6470ef15f8cd5a9cebd6cbc7d90b863831", /* ARK-Genoa */
	"4f125410563a2ab9a50356f9243f6fe0b6f73de98603f53f90339c70e9d7ad08", /* ARK-Turin */
};

#define MAX_ROOTS 16
#define ROOTS_FILE_MAX (1u << 20)

static int spki_sha256(X509 *cert, uint8_t out[32])
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
	if (n <= 0)
		return -1;
	crypto_hash_sha256(out, der, (size_t)n);
	OPENSSL_free(der);
	return 0;
}

/* The trusted ARK keys: $ENCFS_AMD_ROOTS (a test hook) replaces the pinned AMD ones. */
static int trusted_roots(uint8_t roots[MAX_ROOTS][32], int *count, struct err *e)
{
	const char *path = getenv("ENCFS_AMD_ROOTS");
	*count = 0;
	if (!path || !*path) {
		for (size_t i = 0; i < sizeof pinned_ark_spki / sizeof pinned_ark_spki[0]; i++) {
			size_t n;
			if (hex_decode(pinned_ark_spki[i], 64, roots[i], 32, &n) != 0)
				return err_set(e, EXIT_INTERNAL, "pinned AMD root %zu is malformed", i);
			(*count)++;
		}
		return 0;
	}
	size_t len;
	char *pem = read_file_capped(path, ROOTS_FILE_MAX, &len);
	if (!pem)
		return err_set(e, EXIT_CONFIG, "reading ENCFS_AMD_ROOTS %s: %s", path, strerror(errno));
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *x;
	while (bio && *count < MAX_ROOTS && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		int bad = spki_sha256(x, roots[*count]);
		X509_free(x);
		if (bad)
			break;
		(*count)++;
	}
	BIO_free(bio);
	free(pem);
	if (*count == 0)
		return err_set(e, EXIT_CONFIG, "ENCFS_AMD_ROOTS %s holds no certificate", path);
	log_warn("trusting the ARK certificates of ENCFS_AMD_ROOTS=%s instead of AMD's", path);
	return 0;
}

void amd_chain_free(struct amd_chain *c)
{
	X509_free(c->vcek);
	X509_free(c->ask);
	X509_free(c->ark);
	memset(c, 0, sizeof *c);
}

static int is_self_issued(X509 *x) { return X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0; }

static int has_ec_key(X509 *x)
{
	EVP_PKEY *k = X509_get0_pubkey(x);
	return k && EVP_PKEY_get_base_id(k) == EVP_PKEY_EC;
}

int amd_chain_load(const char *pem, size_t len, struct amd_chain *c, struct err *e)
{
	memset(c, 0, sizeof *c);
	if (len > INT32_MAX)
		return err_set(e, EXIT_CRYPTO, "certificate chain too large");
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return err_set(e, EXIT_INTERNAL, "out of memory");
	int n = 0, rc = 0;
	X509 *x;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		X509 **slot = is_self_issued(x) ? &c->ark : has_ec_key(x) ? &c->vcek : &c->ask;
		n++;
		if (*slot) {
			X509_free(x);
			rc = err_set(e, EXIT_CRYPTO,
				     "certificate chain: more than one %s certificate (want VCEK, ASK, ARK once each)",
				     slot == &c->ark ? "self-signed (ARK)" : slot == &c->vcek ? "EC (VCEK)" : "CA (ASK)");
			break;
		}
		*slot = x;
	}
	BIO_free(bio);
	if (rc == 0 && (!c->vcek || !c->ask || !c->ark))
		rc = err_set(e, EXIT_CRYPTO,
			     "certificate chain: %d certificates without %s%s%s (want VCEK, ASK and ARK)", n,
			     c->vcek ? "" : "a VCEK ", c->ask ? "" : "an ASK ", c->ark ? "" : "an ARK");
	if (rc != 0)
		amd_chain_free(c);
	return rc;
}

static const char *cn_of(X509 *x, char *buf, size_t size)
{
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)size) < 0)
		snprintf(buf, size, "(no CN)");
	return buf;
}

static const char *hash_name(int nid)
{
	switch (nid) {
	case NID_sha1: return "SHA-1";
	case NID_sha224: return "SHA-224";
	case NID_sha256: return "SHA-256";
	case NID_sha384: return "SHA-384";
	case NID_sha512: return "SHA-512";
	default: return nid == NID_undef ? "an unknown hash" : OBJ_nid2sn(nid);
	}
}

/* The RSASSA-PSS parameters of x's signature (RFC 4055; absent ones take its defaults: SHA-1,
 * MGF1-SHA-1, salt 20, trailer 1).  -1 when they are not readable or not MGF1 with trailer 1. */
static int pss_params(X509 *x, int *md, int *mgf_md, int64_t *salt)
{
	const X509_ALGOR *alg;
	const ASN1_OBJECT *obj;
	const void *pval;
	int ptype;
	X509_get0_signature(NULL, &alg, x);
	X509_ALGOR_get0(&obj, &ptype, &pval, alg);
	if (OBJ_obj2nid(obj) != NID_rsassaPss || ptype != V_ASN1_SEQUENCE || !pval)
		return -1;
	const unsigned char *p = ASN1_STRING_get0_data(pval);
	RSA_PSS_PARAMS *pss = d2i_RSA_PSS_PARAMS(NULL, &p, ASN1_STRING_length(pval));
	if (!pss)
		return -1;
	int ok = 1;
	*md = pss->hashAlgorithm ? OBJ_obj2nid(pss->hashAlgorithm->algorithm) : NID_sha1;
	*mgf_md = NID_sha1;
	if (pss->maskGenAlgorithm) {
		const ASN1_TYPE *t = pss->maskGenAlgorithm->parameter;
		ok = OBJ_obj2nid(pss->maskGenAlgorithm->algorithm) == NID_mgf1 && t &&
		     t->type == V_ASN1_SEQUENCE;
		if (ok) {
			const unsigned char *q = ASN1_STRING_get0_data(t->value.sequence);
			X509_ALGOR *h = d2i_X509_ALGOR(NULL, &q, ASN1_STRING_length(t->value.sequence));
			*mgf_md = h ? OBJ_obj2nid(h->algorithm) : NID_undef;
			X509_ALGOR_free(h);
		}
	}
	*salt = 20;
	if (ok && pss->saltLength && ASN1_INTEGER_get_int64(salt, pss->saltLength) != 1)
		ok = 0;
	int64_t trailer = 1;
	if (ok && pss->trailerField && (ASN1_INTEGER_get_int64(&trailer, pss->trailerField) != 1 || trailer != 1))
		ok = 0;
	RSA_PSS_PARAMS_free(pss);
	return ok ? 0 : -1;
}

/* One link: child signed by parent with RSASSA-PSS as AMD signs (SHA-384, MGF1-SHA-384, salt 48:
 * VCEK spec), both in their validity period. */
static int check_link(X509 *child, X509 *parent, const char *role, struct err *e)
{
	char cn[128], pcn[128];
	int md, mgf_md;
	int64_t salt;
	if (X509_get_signature_nid(child) != NID_rsassaPss)
		return err_set(e, EXIT_CRYPTO, "%s certificate %s is not signed with RSASSA-PSS", role,
			       cn_of(child, cn, sizeof cn));
	if (pss_params(child, &md, &mgf_md, &salt) != 0)
		return err_set(e, EXIT_CRYPTO, "%s certificate %s: unreadable RSASSA-PSS parameters", role,
			       cn_of(child, cn, sizeof cn));
	if (md != NID_sha384 || mgf_md != NID_sha384 || salt != 48)
		return err_set(e, EXIT_CRYPTO,
			       "%s certificate %s: RSASSA-PSS with %s, MGF1-%s, salt %lld, not AMD's SHA-384, "
			       "MGF1-SHA-384, salt 48",
			       role, cn_of(child, cn, sizeof cn), hash_name(md), hash_name(mgf_md),
			       (long long)salt);
	if (X509_verify(child, X509_get0_pubkey(parent)) != 1)
		return err_set(e, EXIT_CRYPTO, "%s certificate %s: signature does not verify under %s", role,
			       cn_of(child, cn, sizeof cn), cn_of(parent, pcn, sizeof pcn));
	if (X509_cmp_current_time(X509_get0_notBefore(child)) >= 0 ||
	    X509_cmp_current_time(X509_get0_notAfter(child)) <= 0)
		return err_set(e, EXIT_CRYPTO, "%s certificate %s is outside its validity period", role,
			       cn_of(child, cn, sizeof cn));
	return 0;
}

/* ARK and ASK sign certificates: a CA allowed to (basicConstraints, keyUsage when present); the
 * VCEK signs reports only.  Extensions OpenSSL finds malformed or duplicated end it too. */
static int check_role(X509 *x, int ca, const char *role, struct err *e)
{
	char cn[128];
	uint32_t flags = X509_get_extension_flags(x);
	if (flags & EXFLAG_INVALID)
		return err_set(e, EXIT_CRYPTO, "%s certificate %s has malformed or duplicate extensions", role,
			       cn_of(x, cn, sizeof cn));
	if (ca && (!(flags & EXFLAG_CA) || !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN)))
		return err_set(e, EXIT_CRYPTO, "%s certificate %s is not a CA (basicConstraints, keyUsage)", role,
			       cn_of(x, cn, sizeof cn));
	if (!ca && (flags & EXFLAG_CA))
		return err_set(e, EXIT_CRYPTO, "%s certificate %s is a CA, not a signing key", role,
			       cn_of(x, cn, sizeof cn));
	return 0;
}

int amd_chain_verify(const struct amd_chain *c, struct err *e)
{
	uint8_t roots[MAX_ROOTS][32], spki[32];
	int nroots;
	if (trusted_roots(roots, &nroots, e) != 0)
		return -1;
	if (spki_sha256(c->ark, spki) != 0)
		return err_set(e, EXIT_CRYPTO, "ARK certificate: unreadable public key");
	int pinned = 0;
	for (int i = 0; i < nroots; i++)
		pinned |= sodium_memcmp(spki, roots[i], 32) == 0;
	char cn[128];
	if (!pinned)
		return err_set(e, EXIT_CRYPTO,
			       "ARK certificate %s is not AMD's Milan, Genoa or Turin root (its key is not pinned)",
			       cn_of(c->ark, cn, sizeof cn));
	if (check_role(c->ark, 1, "ARK", e) != 0 || check_link(c->ark, c->ark, "ARK", e) != 0 ||
	    check_role(c->ask, 1, "ASK", e) != 0 || check_link(c->ask, c->ark, "ASK", e) != 0 ||
	    check_role(c->vcek, 0, "VCEK", e) != 0 || check_link(c->vcek, c->ask, "VCEK", e) != 0)
		return -1;
	EVP_PKEY *k = X509_get0_pubkey(c->vcek);
	char group[32] = "";
	size_t glen = 0;
	if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC ||
	    !EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof group, &glen) ||
	    strcmp(group, "secp384r1") != 0)
		return err_set(e, EXIT_CRYPTO, "VCEK key is not ECDSA P-384");
	return 0;
}

/* The report holds R and S little-endian in 72-byte fields; OpenSSL wants a DER ECDSA-Sig-Value. */
static BIGNUM *le_to_bn(const uint8_t *le, size_t n)
{
	uint8_t be[SNP_SIG_COMPONENT_SIZE];
	for (size_t i = 0; i < n; i++)
		be[i] = le[n - 1 - i];
	return BN_bin2bn(be, (int)n, NULL);
}

int report_verify_signature(const uint8_t report[SNP_REPORT_SIZE], const struct snp_report *r,
			    X509 *vcek, struct err *e)
{
	if (r->signature_algo != SNP_SIG_ALGO_ECDSA_P384_SHA384)
		return err_set(e, EXIT_CRYPTO, "report signature algorithm %u is not ECDSA P-384 (1)",
			       r->signature_algo);
	unsigned signing_key = (unsigned)(r->flags >> 2 & 7);
	if (signing_key != SNP_SIGNING_KEY_VCEK)
		return err_set(e, EXIT_CRYPTO, "report SIGNING_KEY %u: signed by %s, not by a VCEK (the only "
			       "key this tool verifies)", signing_key,
			       signing_key == 1 ? "a VLEK" : signing_key == 7 ? "no key" : "a reserved key kind");
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *br = le_to_bn(r->sig_r, sizeof r->sig_r), *bs = le_to_bn(r->sig_s, sizeof r->sig_s);
	unsigned char *der = NULL;
	int derlen = -1;
	if (sig && br && bs && ECDSA_SIG_set0(sig, br, bs) == 1) {
		br = bs = NULL; /* owned by sig now */
		derlen = i2d_ECDSA_SIG(sig, &der);
	}
	BN_free(br);
	BN_free(bs);
	ECDSA_SIG_free(sig);
	if (derlen <= 0)
		return err_set(e, EXIT_INTERNAL, "encoding the report signature: out of memory");
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, X509_get0_pubkey(vcek)) == 1 &&
		 EVP_DigestVerify(md, der, (size_t)derlen, report, SNP_SIGNED_SIZE) == 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	if (!ok)
		return err_set(e, EXIT_CRYPTO,
			       "report signature does not verify under the VCEK (the report was altered, "
			       "or the VCEK belongs to another chip or TCB)");
	return 0;
}

static const unsigned char *ext_value(X509 *x, const char *oid, int *len)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	if (!obj)
		return NULL;
	int i = X509_get_ext_by_OBJ(x, obj, -1);
	ASN1_OBJECT_free(obj);
	if (i < 0)
		return NULL;
	ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(X509_get_ext(x, i));
	*len = ASN1_STRING_length(v);
	return ASN1_STRING_get0_data(v);
}

int vcek_tcb(X509 *vcek, int turin, uint64_t *tcb)
{
	/* byte position in TCB_VERSION of each SPL extension 1.3.6.1.4.1.3704.1.3.N (VCEK spec);
	 * optional ones are the reserved SPLs, which may be absent */
	static const struct spl {
		const char *oid;
		int byte, optional;
	} milan[] = {{"1.3.6.1.4.1.3704.1.3.1", 0, 0}, {"1.3.6.1.4.1.3704.1.3.2", 1, 0},
		     {"1.3.6.1.4.1.3704.1.3.4", 2, 1}, {"1.3.6.1.4.1.3704.1.3.5", 3, 1},
		     {"1.3.6.1.4.1.3704.1.3.6", 4, 1}, {"1.3.6.1.4.1.3704.1.3.7", 5, 1},
		     {"1.3.6.1.4.1.3704.1.3.3", 6, 0}, {"1.3.6.1.4.1.3704.1.3.8", 7, 0}},
	  turin_spl[] = {{"1.3.6.1.4.1.3704.1.3.9", 0, 0}, {"1.3.6.1.4.1.3704.1.3.1", 1, 0},
			 {"1.3.6.1.4.1.3704.1.3.2", 2, 0}, {"1.3.6.1.4.1.3704.1.3.3", 3, 0},
			 {"1.3.6.1.4.1.3704.1.3.8", 7, 0}};
	const struct spl *spl = turin ? turin_spl : milan;
	size_t n = turin ? sizeof turin_spl / sizeof turin_spl[0] : sizeof milan / sizeof milan[0];
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		int len;
		const unsigned char *p = ext_value(vcek, spl[i].oid, &len);
		if (!p) {
			if (spl[i].optional)
				continue;
			return -1;
		}
		ASN1_INTEGER *ai = d2i_ASN1_INTEGER(NULL, &p, len);
		int64_t val = -1;
		int ok = ai && ASN1_INTEGER_get_int64(&val, ai) == 1 && val >= 0 && val <= 255;
		ASN1_INTEGER_free(ai);
		if (!ok)
			return -1;
		v |= (uint64_t)val << (8 * spl[i].byte);
	}
	*tcb = v;
	return 0;
}

int vcek_hwid(X509 *vcek, uint8_t out[SNP_CHIP_ID_SIZE])
{
	int len;
	const unsigned char *p = ext_value(vcek, "1.3.6.1.4.1.3704.1.4", &len);
	if (!p || len != SNP_CHIP_ID_SIZE)
		return -1;
	memcpy(out, p, SNP_CHIP_ID_SIZE);
	return 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

int report_verify(const uint8_t report[SNP_REPORT_SIZE], const char *chain_pem, size_t chain_len,
		  int have_tcbm, uint64_t tcbm, struct snp_report *r, struct err *e)
{
	struct amd_chain c;
	if (snp_report_parse(report, SNP_REPORT_SIZE, r, e) != 0)
		return -1;
	if (amd_chain_load(chain_pem, chain_len, &c, e) != 0)
		return -1;
	int rc = -1;
	uint64_t vtcb;
	uint8_t hwid[SNP_CHIP_ID_SIZE];
	if (amd_chain_verify(&c, e) != 0 || report_verify_signature(report, r, c.vcek, e) != 0)
		goto out;
	if (vcek_tcb(c.vcek, r->turin, &vtcb) != 0) {
		err_set(e, EXIT_CRYPTO, "VCEK certificate has no readable TCB extensions for a %s report",
			r->turin ? "Turin" : "Milan or Genoa");
		goto out;
	}
	if (vtcb != r->reported_tcb.raw) {
		err_set(e, EXIT_ATTEST, "REPORTED_TCB %016llx differs from the VCEK's TCB %016llx",
			(unsigned long long)r->reported_tcb.raw, (unsigned long long)vtcb);
		goto out;
	}
	if (have_tcbm && tcbm != r->reported_tcb.raw) {
		err_set(e, EXIT_ATTEST,
			"REPORTED_TCB %016llx differs from the certificates' tcbm %016llx (refresh them from THIM)",
			(unsigned long long)r->reported_tcb.raw, (unsigned long long)tcbm);
		goto out;
	}
	/* A report may hide its chip id (MASK_CHIP_ID); when it shows one it must be the VCEK's. */
	if (!all_zero(r->chip_id, sizeof r->chip_id)) {
		if (vcek_hwid(c.vcek, hwid) != 0) {
			err_set(e, EXIT_CRYPTO, "VCEK certificate has no hwID extension");
			goto out;
		}
		if (sodium_memcmp(hwid, r->chip_id, sizeof hwid) != 0) {
			err_set(e, EXIT_CRYPTO, "the report's CHIP_ID is not the VCEK's hwID");
			goto out;
		}
	}
	rc = 0;
out:
	amd_chain_free(&c);
	return rc;
}
