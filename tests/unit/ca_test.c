/* Unit tests for lib/wisp_ca: keys, CSRs (made by the proxy, checked by the
 * agent), root generation, SVID issuance, CA loading (root and
 * intermediate + root), and PEM/DER encodings. Every key and certificate is
 * made in-test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/obj.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "lib/wisp_ca.h"
#include "tests/unit/test_x509.h"
#include "tests/unit/test_util.h"

#define TD "example.org"
#define WEB_ID "spiffe://example.org/ns/default/sa/web"

/* ---- fixtures ------------------------------------------------------------- */

/* Made once per run (RSA key generation is slow). */
static struct {
  EVP_PKEY *p256;   /* a workload key */
  EVP_PKEY *p256_b; /* another one */
  EVP_PKEY *p384;
  EVP_PKEY *rsa512;
  EVP_PKEY *rsa1024;
  EVP_PKEY *rsa2048;
  EVP_PKEY *ed25519;
} g;

static EVP_PKEY *ec_key(int nid) {
  EC_KEY *ec = EC_KEY_new_by_curve_name(nid);
  EVP_PKEY *pkey = EVP_PKEY_new();
  assert_non_null(ec);
  assert_non_null(pkey);
  assert_true(EC_KEY_generate_key(ec));
  assert_true(EVP_PKEY_assign_EC_KEY(pkey, ec));
  return pkey;
}

static EVP_PKEY *rsa_key(int bits) {
  RSA *rsa = RSA_new();
  BIGNUM *e = BN_new();
  EVP_PKEY *pkey = EVP_PKEY_new();
  assert_true(rsa && e && pkey);
  assert_true(BN_set_word(e, RSA_F4));
  assert_true(RSA_generate_key_ex(rsa, bits, e, NULL));
  assert_true(EVP_PKEY_assign_RSA(pkey, rsa));
  BN_free(e);
  return pkey;
}

static EVP_PKEY *ed25519_key(void) {
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
  EVP_PKEY *pkey = NULL;
  assert_non_null(ctx);
  assert_true(EVP_PKEY_keygen_init(ctx));
  assert_true(EVP_PKEY_keygen(ctx, &pkey));
  EVP_PKEY_CTX_free(ctx);
  return pkey;
}

static int group_setup(void **state) {
  (void)state;
  assert_int_equal(wisp_ca_key_new_p256(&g.p256), WISP_OK);
  assert_int_equal(wisp_ca_key_new_p256(&g.p256_b), WISP_OK);
  g.p384 = ec_key(NID_secp384r1);
  g.rsa512 = rsa_key(512);
  g.rsa1024 = rsa_key(1024);
  g.rsa2048 = rsa_key(2048);
  g.ed25519 = ed25519_key();
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  EVP_PKEY_free(g.p256);
  EVP_PKEY_free(g.p256_b);
  EVP_PKEY_free(g.p384);
  EVP_PKEY_free(g.rsa512);
  EVP_PKEY_free(g.rsa1024);
  EVP_PKEY_free(g.rsa2048);
  EVP_PKEY_free(g.ed25519);
  return 0;
}

/* ---- helpers -------------------------------------------------------------- */

static int64_t now_unix(void) { return (int64_t)time(NULL); }

static int64_t time_unix(const ASN1_TIME *t) {
  ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
  int days = 0, secs = 0;
  assert_true(ASN1_TIME_diff(&days, &secs, epoch, t));
  ASN1_TIME_free(epoch);
  return (int64_t)days * 86400 + secs;
}

/* Hand-built CSR (for what wisp_ca_csr_new refuses to make): |sans| NULL
 * means no extension request at all. Returns a malloc'd buffer. */
static uint8_t *make_csr(size_t *out_len, EVP_PKEY *key, const EVP_MD *md, const test_san *sans, size_t nsans) {
  X509_REQ *req = X509_REQ_new();
  assert_non_null(req);
  assert_true(X509_REQ_set_version(req, X509_REQ_VERSION_1));
  assert_true(X509_REQ_set_pubkey(req, key));
  if (sans) {
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    for (size_t i = 0; i < nsans; i++) {
      GENERAL_NAME *gn = GENERAL_NAME_new();
      ASN1_IA5STRING *s = ASN1_IA5STRING_new();
      assert_true(ASN1_STRING_set(s, sans[i].value, (int)strlen(sans[i].value)));
      GENERAL_NAME_set0_value(gn, sans[i].type, s);
      assert_true(sk_GENERAL_NAME_push(gens, gn));
    }
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
    assert_non_null(ext);
    assert_true(sk_X509_EXTENSION_push(exts, ext));
    assert_true(X509_REQ_add_extensions(req, exts));
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(gens);
  }
  assert_true(X509_REQ_sign(req, key, md));
  int n = i2d_X509_REQ(req, NULL);
  assert_true(n > 0);
  uint8_t *der = malloc((size_t)n);
  uint8_t *p = der;
  assert_int_equal(i2d_X509_REQ(req, &p), n);
  X509_REQ_free(req);
  *out_len = (size_t)n;
  return der;
}

/* A CSR from wisp_ca_csr_new, as a malloc'd buffer. */
static uint8_t *good_csr(size_t *out_len, EVP_PKEY *key, const char *id) {
  uint8_t *der = NULL;
  char err[256] = "";
  assert_int_equal(wisp_ca_csr_new(&der, out_len, key, id, err, sizeof(err)), WISP_OK);
  assert_non_null(der);
  return der;
}

/* Replaces the first |n| bytes equal to |from| in |buf| with |to|. */
static void patch(uint8_t *buf, size_t len, const uint8_t *from, const uint8_t *to, size_t n) {
  for (size_t i = 0; i + n <= len; i++) {
    if (memcmp(buf + i, from, n) == 0) {
      memcpy(buf + i, to, n);
      return;
    }
  }
  fail_msg("pattern not found");
}

static void assert_name_entry(X509_NAME *name, int nid, const char *want) {
  char got[256];
  assert_true(X509_NAME_get_text_by_NID(name, nid, got, sizeof(got)) >= 0);
  assert_string_equal(got, want);
}

/* The one URI SAN of |x|, asserting it is the only SAN of any type. */
static void assert_only_uri_san(X509 *x, const char *want) {
  int crit = -1;
  GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
  assert_non_null(names);
  assert_int_equal(crit, 0);
  assert_int_equal(sk_GENERAL_NAME_num(names), 1);
  const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, 0);
  assert_int_equal(gn->type, GEN_URI);
  const ASN1_IA5STRING *uri = gn->d.uniformResourceIdentifier;
  assert_int_equal(ASN1_STRING_length(uri), strlen(want));
  assert_memory_equal(ASN1_STRING_get0_data(uri), want, strlen(want));
  GENERAL_NAMES_free(names);
}

static void assert_serial_16_positive(X509 *x) {
  const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
  assert_int_equal(ASN1_STRING_type(serial), V_ASN1_INTEGER); /* not V_ASN1_NEG_INTEGER */
  assert_int_equal(ASN1_STRING_length(serial), 16);
  assert_true(ASN1_STRING_get0_data(serial)[0] & 0x40);
  char hex[WISP_CA_SERIAL_HEX_MAX];
  wisp_ca_cert_serial_hex(x, hex, sizeof(hex));
  assert_int_equal(strlen(hex), 32);
}

static void assert_ski_is_key_hash(X509 *x) {
  const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
  assert_non_null(ski);
  const ASN1_BIT_STRING *bits = X509_get0_pubkey_bitstr(x);
  uint8_t md[SHA_DIGEST_LENGTH];
  SHA1(ASN1_STRING_get0_data(bits), (size_t)ASN1_STRING_length(bits), md);
  assert_int_equal(ASN1_STRING_length(ski), sizeof(md));
  assert_memory_equal(ASN1_STRING_get0_data(ski), md, sizeof(md));
}

/* Verifies |leaf| against |root| through |chain| (may be NULL) as a TLS
 * client certificate. Returns the X509_V_* result. */
static int verify_chain(X509 *leaf, STACK_OF(X509) * chain, X509 *root) {
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  assert_true(X509_STORE_add_cert(store, root));
  assert_true(X509_STORE_CTX_init(ctx, store, leaf, chain));
  assert_true(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT));
  int ok = X509_verify_cert(ctx);
  int e = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  ERR_clear_error();
  return ok == 1 ? X509_V_OK : (e != X509_V_OK ? e : -1);
}

static wisp_ca *new_root(const char *td, int64_t ttl) {
  char err[256] = "";
  wisp_ca *ca = wisp_ca_new_root(td, ttl, err, sizeof(err));
  if (!ca) fail_msg("wisp_ca_new_root: %s", err);
  return ca;
}

static EVP_PKEY *ca_key(const wisp_ca *ca) {
  char *cert_pem, *key_pem;
  size_t cert_len, key_len;
  EVP_PKEY *key = NULL;
  assert_int_equal(wisp_ca_save_pem(ca, &cert_pem, &cert_len, &key_pem, &key_len), WISP_OK);
  assert_int_equal(wisp_ca_key_from_pem(&key, key_pem, key_len, NULL, 0), WISP_OK);
  free(cert_pem);
  free(key_pem);
  return key;
}

static X509 *issue(wisp_ca *ca, EVP_PKEY *key, const char *id, int64_t ttl) {
  X509 *x = NULL;
  char err[256] = "";
  wisp_err rc = wisp_ca_issue(ca, &x, key, id, ttl, err, sizeof(err));
  if (rc != WISP_OK) fail_msg("wisp_ca_issue: %s", err);
  return x;
}

static char *certs_pem(X509 *const *certs, size_t n, size_t *out_len) {
  STACK_OF(X509) *sk = sk_X509_new_null();
  for (size_t i = 0; i < n; i++) assert_true(sk_X509_push(sk, certs[i]));
  char *pem = NULL;
  assert_int_equal(wisp_ca_certs_to_pem(&pem, out_len, sk), WISP_OK);
  sk_X509_free(sk); /* borrowed certs */
  return pem;
}

static char *key_pem(EVP_PKEY *key, size_t *out_len) {
  char *pem = NULL;
  assert_int_equal(wisp_ca_key_to_pem(&pem, out_len, key), WISP_OK);
  return pem;
}

/* ---- keys ----------------------------------------------------------------- */

static void test_key_pem_round_trip(void **state) {
  (void)state;
  char err[256] = "";
  size_t len;
  char *pem = key_pem(g.p256, &len);
  assert_int_equal(strlen(pem), len);
  assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
  EVP_PKEY *back = NULL;
  assert_int_equal(wisp_ca_key_from_pem(&back, pem, len, err, sizeof(err)), WISP_OK);
  assert_int_equal(EVP_PKEY_cmp(back, g.p256), 1);
  assert_int_equal(wisp_ca_key_check_policy(back, err, sizeof(err)), WISP_OK);
  EVP_PKEY_free(back);
  free(pem);

  back = NULL;
  assert_int_equal(wisp_ca_key_from_pem(&back, "garbage", 7, err, sizeof(err)), WISP_ERR_PARSE);
  assert_null(back);
  assert_non_null(strstr(err, "no usable private key"));
  char *huge = calloc(1, WISP_CA_PEM_MAX + 1);
  assert_int_equal(wisp_ca_key_from_pem(&back, huge, WISP_CA_PEM_MAX + 1, err, sizeof(err)), WISP_ERR_TOO_BIG);
  assert_null(back);
  free(huge);
}

typedef struct {
  const char *name;
  EVP_PKEY **key;
  wisp_err want;
  const char *why;
} policy_case;

static void test_key_policy_table(void **state) {
  (void)state;
  const policy_case cases[] = {
      {"P-256", &g.p256, WISP_OK, NULL},
      {"RSA-2048", &g.rsa2048, WISP_OK, NULL},
      {"RSA-512", &g.rsa512, WISP_ERR_POLICY, "RSA key of 512 bits is too small (need >= 2048, ECDSA P-256 preferred)"},
      {"RSA-1024", &g.rsa1024, WISP_ERR_POLICY, "RSA key of 1024 bits is too small"},
      {"P-384", &g.p384, WISP_ERR_POLICY, "EC key on curve P-384 is not allowed (need P-256)"},
      {"Ed25519", &g.ed25519, WISP_ERR_POLICY, "ED25519 key is not allowed"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const policy_case *c = &cases[i];
    char err[256] = "";
    wisp_err rc = wisp_ca_key_check_policy(*c->key, err, sizeof(err));
    print_message("# case %s: %d (%s)\n", c->name, rc, err);
    assert_int_equal(rc, c->want);
    if (c->why) assert_non_null(strstr(err, c->why));
  }
}

/* ---- CSR ------------------------------------------------------------------ */

static void test_csr_round_trip(void **state) {
  (void)state;
  size_t len;
  uint8_t *der = good_csr(&len, g.p256, WEB_ID);

  /* What the proxy sends: v1, O=wisp CN=web, ecdsa-with-SHA256. */
  const uint8_t *p = der;
  X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
  assert_non_null(req);
  assert_int_equal(X509_REQ_get_version(req), X509_REQ_VERSION_1);
  assert_int_equal(X509_REQ_get_signature_nid(req), NID_ecdsa_with_SHA256);
  assert_name_entry(X509_REQ_get_subject_name(req), NID_organizationName, "wisp");
  assert_name_entry(X509_REQ_get_subject_name(req), NID_commonName, "web");
  STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
  assert_int_equal(sk_X509_EXTENSION_num(exts), 1);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);

  wisp_ca_csr_info info = {0};
  char err[256] = "";
  assert_int_equal(wisp_ca_csr_check(&info, der, len, err, sizeof(err)), WISP_OK);
  assert_string_equal(info.id.id, WEB_ID);
  assert_string_equal(info.id.trust_domain, TD);
  assert_non_null(info.pubkey);
  assert_int_equal(EVP_PKEY_cmp(info.pubkey, g.p256), 1);
  wisp_ca_csr_info_cleanup(&info);
  assert_null(info.pubkey);
  wisp_ca_csr_info_cleanup(&info); /* zeroed: fine */
  wisp_ca_csr_info_cleanup(NULL);
  free(der);
}

static void test_csr_new_rejects_bad_ids(void **state) {
  (void)state;
  const char *bad[] = {
      NULL, "", "http://example.org/x", "spiffe://example.org", "spiffe://Example.org/x", "spiffe://example.org/a//b"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    uint8_t *der = NULL;
    size_t len = 0;
    char err[256] = "";
    assert_int_equal(wisp_ca_csr_new(&der, &len, g.p256, bad[i], err, sizeof(err)), WISP_ERR_IDENTITY);
    assert_null(der);
    assert_true(err[0] != '\0');
  }
}

/* Each builder makes one CSR case as a malloc'd buffer. */
typedef uint8_t *(*csr_builder)(size_t *out_len);

static uint8_t *csr_garbage(size_t *n) {
  static const char kText[] = "this is not a CSR at all";
  *n = sizeof(kText) - 1;
  uint8_t *b = malloc(*n);
  memcpy(b, kText, *n);
  return b;
}
static uint8_t *csr_empty(size_t *n) {
  *n = 0;
  return malloc(1);
}
static uint8_t *csr_truncated(size_t *n) {
  uint8_t *b = good_csr(n, g.p256, WEB_ID);
  *n -= 10;
  return b;
}
static uint8_t *csr_half(size_t *n) {
  uint8_t *b = good_csr(n, g.p256, WEB_ID);
  *n /= 2;
  return b;
}
static uint8_t *csr_trailing_byte(size_t *n) {
  uint8_t *b = good_csr(n, g.p256, WEB_ID);
  b = realloc(b, *n + 1);
  b[(*n)++] = 0;
  return b;
}
static uint8_t *csr_pem(size_t *n) {
  size_t len;
  uint8_t *der = good_csr(&len, g.p256, WEB_ID);
  const uint8_t *p = der;
  X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
  BIO *bio = BIO_new(BIO_s_mem());
  assert_true(PEM_write_bio_X509_REQ(bio, req));
  const uint8_t *data;
  assert_true(BIO_mem_contents(bio, &data, n));
  uint8_t *b = malloc(*n);
  memcpy(b, data, *n);
  BIO_free(bio);
  X509_REQ_free(req);
  free(der);
  return b;
}
static uint8_t *csr_bad_signature(size_t *n) {
  uint8_t *b = good_csr(n, g.p256, WEB_ID);
  b[*n - 1] ^= 0x01; /* last byte of the ECDSA signature's s */
  return b;
}
static uint8_t *csr_version_2(size_t *n) {
  uint8_t *b = good_csr(n, g.p256, WEB_ID);
  static const uint8_t kV1[] = {0x02, 0x01, 0x00}, kV2[] = {0x02, 0x01, 0x01};
  patch(b, *n, kV1, kV2, sizeof(kV1));
  return b;
}
static uint8_t *csr_two_uris(size_t *n) {
  const test_san sans[] = {{GEN_URI, WEB_ID, 0}, {GEN_URI, "spiffe://example.org/ns/x/sa/db", 0}};
  return make_csr(n, g.p256, EVP_sha256(), sans, 2);
}
static uint8_t *csr_no_san(size_t *n) { return make_csr(n, g.p256, EVP_sha256(), NULL, 0); }
static uint8_t *csr_empty_ext_request(size_t *n) {
  X509_REQ *req = X509_REQ_new();
  STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
  assert_true(X509_REQ_set_pubkey(req, g.p256));
  assert_true(X509_REQ_add_extensions(req, exts));
  assert_true(X509_REQ_sign(req, g.p256, EVP_sha256()));
  uint8_t *b = NULL;
  int len = i2d_X509_REQ(req, &b);
  assert_true(len > 0);
  *n = (size_t)len;
  uint8_t *copy = malloc(*n);
  memcpy(copy, b, *n);
  OPENSSL_free(b);
  sk_X509_EXTENSION_free(exts);
  X509_REQ_free(req);
  return copy;
}
static uint8_t *csr_uri_and_dns(size_t *n) {
  const test_san sans[] = {{GEN_URI, WEB_ID, 0}, {GEN_DNS, "web.default.svc", 0}};
  return make_csr(n, g.p256, EVP_sha256(), sans, 2);
}
static uint8_t *csr_dns_only(size_t *n) {
  const test_san sans[] = {{GEN_DNS, "web.default.svc", 0}};
  return make_csr(n, g.p256, EVP_sha256(), sans, 1);
}
static uint8_t *csr_email(size_t *n) {
  const test_san sans[] = {{GEN_EMAIL, "web@example.org", 0}, {GEN_URI, WEB_ID, 0}};
  return make_csr(n, g.p256, EVP_sha256(), sans, 2);
}
static uint8_t *csr_https_uri(size_t *n) {
  const test_san sans[] = {{GEN_URI, "https://example.org/ns/default/sa/web", 0}};
  return make_csr(n, g.p256, EVP_sha256(), sans, 1);
}
static uint8_t *csr_td_only(size_t *n) {
  const test_san sans[] = {{GEN_URI, "spiffe://example.org", 0}};
  return make_csr(n, g.p256, EVP_sha256(), sans, 1);
}
static uint8_t *csr_rsa512(size_t *n) { return good_csr(n, g.rsa512, WEB_ID); }
static uint8_t *csr_rsa2048(size_t *n) { return good_csr(n, g.rsa2048, WEB_ID); }
static uint8_t *csr_p384(size_t *n) { return good_csr(n, g.p384, WEB_ID); }
static uint8_t *csr_ed25519(size_t *n) {
  const test_san sans[] = {{GEN_URI, WEB_ID, 0}};
  return make_csr(n, g.ed25519, NULL, sans, 1);
}
/* A P-384 CSR whose curve OID (1.3.132.0.34) is rewritten to secp256k1
 * (1.3.132.0.10): BoringSSL cannot decode that key at all. */
static uint8_t *csr_secp256k1(size_t *n) {
  uint8_t *b = good_csr(n, g.p384, WEB_ID);
  static const uint8_t kP384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
  static const uint8_t kK256[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a};
  patch(b, *n, kP384, kK256, sizeof(kP384));
  return b;
}
static uint8_t *csr_sha1(size_t *n) {
  const test_san sans[] = {{GEN_URI, WEB_ID, 0}};
  return make_csr(n, g.p256, EVP_sha1(), sans, 1);
}
static uint8_t *csr_sha384(size_t *n) {
  const test_san sans[] = {{GEN_URI, WEB_ID, 0}};
  return make_csr(n, g.p256, EVP_sha384(), sans, 1);
}
static uint8_t *csr_oversized(size_t *n) {
  *n = WISP_CA_CSR_MAX + 1;
  return calloc(1, *n);
}

typedef struct {
  const char *name;
  csr_builder build;
  wisp_err want;
  const char *why; /* substring of the reason */
} csr_case;

static const csr_case kCsrCases[] = {
    {"garbage bytes", csr_garbage, WISP_ERR_PARSE, "not a DER PKCS#10 CSR"},
    {"empty", csr_empty, WISP_ERR_PARSE, "not a DER PKCS#10 CSR"},
    {"truncated by 10 bytes", csr_truncated, WISP_ERR_PARSE, "garbage or truncated"},
    {"truncated by half", csr_half, WISP_ERR_PARSE, "garbage or truncated"},
    {"trailing byte", csr_trailing_byte, WISP_ERR_PARSE, "trailing bytes"},
    {"PEM, not DER", csr_pem, WISP_ERR_PARSE, "not a DER PKCS#10 CSR"},
    {"version 2", csr_version_2, WISP_ERR_PARSE, "version"},
    {"flipped signature byte", csr_bad_signature, WISP_ERR_VERIFY, "signature does not verify"},
    {"two URI SANs", csr_two_uris, WISP_ERR_IDENTITY, "asks for 2 URI SANs"},
    {"no SAN", csr_no_san, WISP_ERR_IDENTITY, "no subjectAltName"},
    {"empty extension request", csr_empty_ext_request, WISP_ERR_IDENTITY, "no subjectAltName"},
    {"URI + DNS SAN", csr_uri_and_dns, WISP_ERR_IDENTITY, "asks for a DNS SAN"},
    {"DNS SAN only", csr_dns_only, WISP_ERR_IDENTITY, "asks for a DNS SAN"},
    {"e-mail SAN", csr_email, WISP_ERR_IDENTITY, "asks for an e-mail SAN"},
    {"https URI", csr_https_uri, WISP_ERR_IDENTITY, "not a SPIFFE ID: does not start with spiffe://"},
    {"trust domain ID", csr_td_only, WISP_ERR_IDENTITY, "the trust domain itself"},
    {"RSA-512", csr_rsa512, WISP_ERR_POLICY, "RSA key of 512 bits is too small (need >= 2048, ECDSA P-256 preferred)"},
    {"RSA-2048 (allowed)", csr_rsa2048, WISP_OK, NULL},
    {"P-384", csr_p384, WISP_ERR_POLICY, "EC key on curve P-384 is not allowed"},
    {"secp256k1", csr_secp256k1, WISP_ERR_POLICY, "EC key on curve secp256k1 is not allowed"},
    {"Ed25519", csr_ed25519, WISP_ERR_POLICY, "ED25519 key is not allowed"},
    {"SHA-1 signature", csr_sha1, WISP_ERR_POLICY, "need SHA-256 or stronger"},
    {"SHA-384 signature (allowed)", csr_sha384, WISP_OK, NULL},
    {"16 KiB + 1", csr_oversized, WISP_ERR_TOO_BIG, "too big"},
};

static void test_csr_check_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kCsrCases) / sizeof(kCsrCases[0]); i++) {
    const csr_case *c = &kCsrCases[i];
    size_t len = 0;
    uint8_t *der = c->build(&len);
    wisp_ca_csr_info info = {0};
    char err[256] = "";
    wisp_err rc = wisp_ca_csr_check(&info, der, len, err, sizeof(err));
    print_message("# case %s: %d (%s)\n", c->name, rc, err);
    assert_int_equal(rc, c->want);
    if (c->want == WISP_OK) {
      assert_string_equal(info.id.id, WEB_ID);
      assert_non_null(info.pubkey);
    } else {
      assert_null(info.pubkey); /* untouched on failure */
      assert_non_null(strstr(err, c->why));
    }
    assert_int_equal(ERR_peek_error(), 0); /* nothing left on BoringSSL's queue */
    wisp_ca_csr_info_cleanup(&info);
    free(der);
  }
}

static void test_csr_check_err_buf_optional(void **state) {
  (void)state;
  wisp_ca_csr_info info = {0};
  assert_int_equal(wisp_ca_csr_check(&info, (const uint8_t *)"x", 1, NULL, 0), WISP_ERR_PARSE);
  char tiny[8];
  assert_int_equal(wisp_ca_csr_check(&info, (const uint8_t *)"x", 1, tiny, sizeof(tiny)), WISP_ERR_PARSE);
  assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
}

/* ---- root ----------------------------------------------------------------- */

static void test_new_root(void **state) {
  (void)state;
  int64_t before = now_unix();
  wisp_ca *ca = new_root(TD, 3600);
  int64_t after = now_unix();
  X509 *root = wisp_ca_get0_cert(ca);
  assert_string_equal(wisp_ca_get0_trust_domain(ca), TD);
  assert_int_equal(sk_X509_num(wisp_ca_get0_chain(ca)), 0);
  assert_int_equal(sk_X509_num(wisp_ca_get0_roots(ca)), 1);
  assert_ptr_equal(sk_X509_value(wisp_ca_get0_roots(ca), 0), root);

  assert_int_equal(X509_get_version(root), X509_VERSION_3);
  assert_serial_16_positive(root);
  assert_name_entry(X509_get_subject_name(root), NID_organizationName, "wisp");
  assert_name_entry(X509_get_subject_name(root), NID_commonName, "wisp root " TD);
  assert_int_equal(X509_NAME_cmp(X509_get_subject_name(root), X509_get_issuer_name(root)), 0);
  assert_only_uri_san(root, "spiffe://" TD);
  assert_int_equal(X509_get_signature_nid(root), NID_ecdsa_with_SHA256);

  EVP_PKEY *pub = X509_get_pubkey(root);
  assert_int_equal(X509_verify(root, pub), 1);
  EVP_PKEY *key = ca_key(ca);
  assert_int_equal(EVP_PKEY_cmp(pub, key), 1);
  assert_int_equal(wisp_ca_key_check_policy(key, NULL, 0), WISP_OK); /* P-256 */
  EVP_PKEY_free(pub);
  EVP_PKEY_free(key);

  int crit = -1;
  BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(root, NID_basic_constraints, &crit, NULL);
  assert_non_null(bc);
  assert_int_equal(crit, 1);
  assert_true(bc->ca);
  BASIC_CONSTRAINTS_free(bc);
  ASN1_BIT_STRING *ku = X509_get_ext_d2i(root, NID_key_usage, &crit, NULL);
  assert_non_null(ku);
  assert_int_equal(crit, 1);
  ASN1_BIT_STRING_free(ku);
  assert_int_equal(X509_get_key_usage(root), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
  assert_int_equal(X509_check_ca(root), 1);
  assert_ski_is_key_hash(root);

  int64_t nb = time_unix(X509_get0_notBefore(root)), na = 0;
  assert_int_equal(wisp_ca_cert_not_after(root, &na), WISP_OK);
  assert_true(nb >= before - WISP_CA_BACKDATE_SEC && nb <= after - WISP_CA_BACKDATE_SEC);
  assert_true(na >= before + 3600 && na <= after + 3600);
  wisp_ca_free(ca);
  wisp_ca_free(NULL);
}

static void test_new_root_rejects(void **state) {
  (void)state;
  const struct {
    const char *td;
    int64_t ttl;
  } cases[] = {
      {NULL, 3600},
      {"", 3600},
      {"Example.org", 3600},
      {"example.org/x", 3600},
      {"spiffe://x", 3600},
      {"exa mple", 3600},
      {TD, 0},
      {TD, -1},
      {TD, WISP_CA_TTL_MAX + 1},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char err[256] = "";
    wisp_ca *ca = wisp_ca_new_root(cases[i].td, cases[i].ttl, err, sizeof(err));
    print_message("# case %zu: %s\n", i, err);
    assert_null(ca);
    assert_true(err[0] != '\0');
  }
}

/* ---- issue ---------------------------------------------------------------- */

static void test_issue_svid(void **state) {
  (void)state;
  wisp_ca *ca = new_root(TD, 86400);
  X509 *root = wisp_ca_get0_cert(ca);
  EVP_PKEY *cakey = ca_key(ca);
  int64_t before = now_unix();
  X509 *leaf = issue(ca, g.p256, WEB_ID, 600);
  int64_t after = now_unix();

  assert_int_equal(X509_verify(leaf, cakey), 1);
  assert_int_equal(X509_verify(leaf, g.p256_b), 0);
  ERR_clear_error();
  assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
  assert_int_equal(X509_get_version(leaf), X509_VERSION_3);
  assert_serial_16_positive(leaf);
  EVP_PKEY *pub = X509_get_pubkey(leaf);
  assert_int_equal(EVP_PKEY_cmp(pub, g.p256), 1);
  EVP_PKEY_free(pub);
  assert_name_entry(X509_get_subject_name(leaf), NID_organizationName, "wisp");
  assert_name_entry(X509_get_subject_name(leaf), NID_commonName, "web");
  assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(root)), 0);

  /* Exactly these six extensions. */
  assert_int_equal(X509_get_ext_count(leaf), 6);
  assert_only_uri_san(leaf, WEB_ID);
  wisp_spiffe_id id;
  assert_int_equal(wisp_spiffe_from_cert(&id, leaf, NULL, 0), WISP_OK);
  assert_string_equal(id.id, WEB_ID);

  int crit = -1;
  BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(leaf, NID_basic_constraints, &crit, NULL);
  assert_non_null(bc);
  assert_int_equal(crit, 1);
  assert_false(bc->ca);
  assert_null(bc->pathlen);
  BASIC_CONSTRAINTS_free(bc);
  assert_int_equal(X509_check_ca(leaf), 0);

  ASN1_BIT_STRING *ku = X509_get_ext_d2i(leaf, NID_key_usage, &crit, NULL);
  assert_non_null(ku);
  assert_int_equal(crit, 1);
  ASN1_BIT_STRING_free(ku);
  assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);

  EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(leaf, NID_ext_key_usage, &crit, NULL);
  assert_non_null(eku);
  assert_int_equal(crit, 0);
  assert_int_equal(sk_ASN1_OBJECT_num(eku), 2);
  assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_server_auth);
  assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 1)), NID_client_auth);
  sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
  assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);

  assert_ski_is_key_hash(leaf);
  const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(leaf);
  assert_non_null(aki);
  assert_int_equal(ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(root)), 0);

  int64_t nb = time_unix(X509_get0_notBefore(leaf)), na = 0;
  assert_int_equal(wisp_ca_cert_not_after(leaf, &na), WISP_OK);
  assert_true(nb >= before - 60 && nb <= after - 60);
  assert_true(na >= before + 600 && na <= after + 600);

  /* A peer holding only the root accepts it as a TLS client and server. */
  assert_int_equal(verify_chain(leaf, NULL, root), X509_V_OK);

  /* Two issues never share a serial. */
  X509 *leaf2 = issue(ca, g.p256, WEB_ID, 600);
  assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf), X509_get0_serialNumber(leaf2)), 0);
  X509_free(leaf2);
  X509_free(leaf);
  EVP_PKEY_free(cakey);
  wisp_ca_free(ca);
}

static void test_issue_capped_by_ca(void **state) {
  (void)state;
  wisp_ca *ca = new_root(TD, 120);
  int64_t ca_na = 0, na = 0;
  assert_int_equal(wisp_ca_cert_not_after(wisp_ca_get0_cert(ca), &ca_na), WISP_OK);
  X509 *leaf = issue(ca, g.p256, WEB_ID, 86400);
  assert_int_equal(wisp_ca_cert_not_after(leaf, &na), WISP_OK);
  assert_int_equal(na, ca_na);
  X509_free(leaf);
  wisp_ca_free(ca);
}

/* An SVID issued on a service-account token: OU says so (the agent reads
 * it back at renewal) and notAfter is the token's exp, not the TTL's; a
 * cap already past issues nothing. Plain issues carry no OU. */
static void test_issue_from_origin(void **state) {
  (void)state;
  wisp_ca *ca = new_root(TD, 86400);
  int64_t cap = (int64_t)time(NULL) + 300, na = 0;
  wisp_ca_origin origin = {WISP_CA_ORIGIN_SA_TOKEN, cap};
  X509 *leaf = NULL;
  char err[256], ou[64];
  assert_int_equal(wisp_ca_issue_from(ca, &leaf, g.p256, WEB_ID, &origin, 3600, err, sizeof(err)), WISP_OK);
  assert_int_equal(wisp_ca_cert_not_after(leaf, &na), WISP_OK);
  assert_int_equal(na, cap);
  assert_true(wisp_ca_cert_origin(leaf, ou, sizeof(ou)));
  assert_string_equal(ou, WISP_CA_ORIGIN_SA_TOKEN);
  assert_false(wisp_ca_cert_origin(leaf, ou, 8)); /* does not fit */
  X509_free(leaf);
  leaf = NULL;
  origin.not_after_max = (int64_t)time(NULL) - 1;
  assert_int_equal(wisp_ca_issue_from(ca, &leaf, g.p256, WEB_ID, &origin, 3600, err, sizeof(err)), WISP_ERR_USAGE);
  assert_null(leaf);
  assert_non_null(strstr(err, "already be expired"));
  leaf = issue(ca, g.p256, WEB_ID, 600);
  assert_false(wisp_ca_cert_origin(leaf, ou, sizeof(ou)));
  X509_free(leaf);
  wisp_ca_free(ca);
}

/* The webhook's serving certificate: one DNS SAN, serverAuth only, no URI
 * SAN (so no peer could take it for an SVID), signed by the CA. */
static void test_issue_server(void **state) {
  (void)state;
  wisp_ca *ca = new_root(TD, 3600);
  X509 *leaf = NULL;
  char err[256];
  assert_int_equal(wisp_ca_issue_server(ca, &leaf, g.p256, "wisp-agent.wisp-system.svc", 600, err, sizeof(err)),
                   WISP_OK);
  GENERAL_NAMES *names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
  assert_int_equal(sk_GENERAL_NAME_num(names), 1);
  const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, 0);
  assert_int_equal(gn->type, GEN_DNS);
  assert_memory_equal(ASN1_STRING_get0_data(gn->d.dNSName), "wisp-agent.wisp-system.svc", 26);
  GENERAL_NAMES_free(names);
  assert_true(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
  assert_false(X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT);
  EVP_PKEY *ca_pub = X509_get_pubkey(wisp_ca_get0_cert(ca));
  assert_int_equal(X509_verify(leaf, ca_pub), 1);
  EVP_PKEY_free(ca_pub);
  X509_free(leaf);
  static const char *const kBad[] = {"", "Wisp.svc", "a..b", "-a.svc", "a-.svc", "a_b.svc", "spiffe://x/y"};
  for (size_t i = 0; i < sizeof(kBad) / sizeof(kBad[0]); i++) {
    leaf = NULL;
    assert_int_equal(wisp_ca_issue_server(ca, &leaf, g.p256, kBad[i], 600, err, sizeof(err)), WISP_ERR_USAGE);
    assert_null(leaf);
  }
  wisp_ca_free(ca);
}

static void test_issue_one_second_ttl(void **state) {
  (void)state;
  wisp_ca *ca = new_root(TD, 3600);
  int64_t before = now_unix();
  X509 *leaf = issue(ca, g.rsa2048, "spiffe://example.org/x", 1);
  int64_t after = now_unix();
  int64_t nb = time_unix(X509_get0_notBefore(leaf)), na = 0;
  assert_int_equal(wisp_ca_cert_not_after(leaf, &na), WISP_OK);
  assert_int_equal(na - nb, 1 + WISP_CA_BACKDATE_SEC);
  assert_true(na >= before + 1 && na <= after + 1);
  assert_name_entry(X509_get_subject_name(leaf), NID_commonName, "x");
  X509_free(leaf);
  wisp_ca_free(ca);
}

static void test_issue_long_segment_cn_cut(void **state) {
  (void)state;
  wisp_ca *ca = new_root(TD, 3600);
  char id[256], seg[101];
  memset(seg, 'a', 100);
  seg[100] = '\0';
  snprintf(id, sizeof(id), "spiffe://" TD "/ns/n/sa/%s", seg);
  X509 *leaf = issue(ca, g.p256, id, 60);
  seg[64] = '\0';
  assert_name_entry(X509_get_subject_name(leaf), NID_commonName, seg);
  assert_only_uri_san(leaf, id);
  X509_free(leaf);
  wisp_ca_free(ca);
}

typedef struct {
  const char *name;
  const char *id;
  EVP_PKEY **key;
  int64_t ttl;
  wisp_err want;
  const char *why;
} issue_case;

static void test_issue_rejects_table(void **state) {
  (void)state;
  const issue_case cases[] = {
      {"other trust domain", "spiffe://other.org/ns/default/sa/web", &g.p256, 60, WISP_ERR_IDENTITY,
       "not in this CA's trust domain example.org"},
      {"not SPIFFE", "https://example.org/x", &g.p256, 60, WISP_ERR_IDENTITY, "not a SPIFFE ID"},
      {"trust domain only", "spiffe://example.org", &g.p256, 60, WISP_ERR_IDENTITY, "trust domain itself"},
      {"NULL ID", NULL, &g.p256, 60, WISP_ERR_IDENTITY, "no SPIFFE ID"},
      {"TTL 0", WEB_ID, &g.p256, 0, WISP_ERR_USAGE, "out of range"},
      {"TTL -5", WEB_ID, &g.p256, -5, WISP_ERR_USAGE, "out of range"},
      {"TTL too long", WEB_ID, &g.p256, WISP_CA_TTL_MAX + 1, WISP_ERR_USAGE, "out of range"},
      {"RSA-1024", WEB_ID, &g.rsa1024, 60, WISP_ERR_POLICY, "too small"},
      {"P-384", WEB_ID, &g.p384, 60, WISP_ERR_POLICY, "P-384"},
  };
  wisp_ca *ca = new_root(TD, 3600);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const issue_case *c = &cases[i];
    X509 *x = NULL;
    char err[256] = "";
    wisp_err rc = wisp_ca_issue(ca, &x, *c->key, c->id, c->ttl, err, sizeof(err));
    print_message("# case %s: %d (%s)\n", c->name, rc, err);
    assert_int_equal(rc, c->want);
    assert_null(x);
    assert_non_null(strstr(err, c->why));
  }
  wisp_ca_free(ca);
}

/* ---- load / save ---------------------------------------------------------- */

/* An intermediate CA under |root|, the way an operator's PKI might make
 * one: no SKI, no keyUsage. */
static X509 *make_intermediate(EVP_PKEY *key, const wisp_ca *root) {
  const test_san san = {GEN_URI, "spiffe://" TD, 0};
  test_cert_spec spec = {.cn = "wisp intermediate",
                         .sans = &san,
                         .nsans = 1,
                         .is_ca = true,
                         .serial = 7,
                         .not_before_sec = -60,
                         .not_after_sec = 1800};
  EVP_PKEY *root_key = ca_key(root);
  X509 *x = test_new_cert(&spec, key, wisp_ca_get0_cert(root), root_key);
  assert_non_null(x);
  EVP_PKEY_free(root_key);
  return x;
}

static void test_save_load_root(void **state) {
  (void)state;
  wisp_ca *ca = new_root(TD, 3600);
  char *cert_pem, *key_pem;
  size_t cert_len, key_len;
  assert_int_equal(wisp_ca_save_pem(ca, &cert_pem, &cert_len, &key_pem, &key_len), WISP_OK);
  assert_int_equal(strlen(cert_pem), cert_len);
  assert_int_equal(strlen(key_pem), key_len);

  wisp_ca *back = NULL;
  char err[512] = "";
  /* Trust domain from the root's URI SAN. */
  assert_int_equal(wisp_ca_load_pem(&back, NULL, cert_pem, cert_len, key_pem, key_len, err, sizeof(err)), WISP_OK);
  assert_string_equal(wisp_ca_get0_trust_domain(back), TD);
  assert_int_equal(X509_cmp(wisp_ca_get0_cert(back), wisp_ca_get0_cert(ca)), 0);
  assert_int_equal(sk_X509_num(wisp_ca_get0_chain(back)), 0);
  assert_int_equal(sk_X509_num(wisp_ca_get0_roots(back)), 1);
  X509 *leaf = issue(back, g.p256, WEB_ID, 60);
  assert_int_equal(verify_chain(leaf, NULL, wisp_ca_get0_cert(ca)), X509_V_OK);
  X509_free(leaf);
  wisp_ca_free(back);

  /* Given and agreeing. */
  back = NULL;
  assert_int_equal(wisp_ca_load_pem(&back, TD, cert_pem, cert_len, key_pem, key_len, err, sizeof(err)), WISP_OK);
  wisp_ca_free(back);

  /* Given and disagreeing. */
  back = NULL;
  assert_int_equal(wisp_ca_load_pem(&back, "other.org", cert_pem, cert_len, key_pem, key_len, err, sizeof(err)),
                   WISP_ERR_IDENTITY);
  assert_null(back);
  assert_non_null(strstr(err, "trust domain example.org, not other.org"));

  free(cert_pem);
  free(key_pem);
  wisp_ca_free(ca);
}

static void test_load_intermediate_chain(void **state) {
  (void)state;
  wisp_ca *root = new_root(TD, 3600);
  EVP_PKEY *ikey = NULL;
  assert_int_equal(wisp_ca_key_new_p256(&ikey), WISP_OK);
  X509 *inter = make_intermediate(ikey, root);
  X509 *rootc = wisp_ca_get0_cert(root);

  X509 *const pair[] = {inter, rootc};
  size_t cert_len, key_len;
  char *cert_pem = certs_pem(pair, 2, &cert_len);
  char *kp = key_pem(ikey, &key_len);
  wisp_ca *ca = NULL;
  char err[512] = "";
  assert_int_equal(wisp_ca_load_pem(&ca, NULL, cert_pem, cert_len, kp, key_len, err, sizeof(err)), WISP_OK);
  assert_string_equal(wisp_ca_get0_trust_domain(ca), TD);
  assert_int_equal(X509_cmp(wisp_ca_get0_cert(ca), inter), 0);
  STACK_OF(X509) *chain = wisp_ca_get0_chain(ca);
  assert_int_equal(sk_X509_num(chain), 1);
  assert_int_equal(X509_cmp(sk_X509_value(chain, 0), inter), 0);
  assert_int_equal(sk_X509_num(wisp_ca_get0_roots(ca)), 1);
  assert_int_equal(X509_cmp(sk_X509_value(wisp_ca_get0_roots(ca), 0), rootc), 0);

  /* The SVID chains to the root through the intermediate, and only so. */
  X509 *leaf = issue(ca, g.p256, WEB_ID, 86400);
  assert_int_equal(X509_verify(leaf, ikey), 1);
  assert_int_equal(verify_chain(leaf, chain, rootc), X509_V_OK);
  assert_int_equal(verify_chain(leaf, NULL, rootc), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  /* AKI: the intermediate has no SKI, so its key hash. */
  const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(leaf);
  assert_non_null(aki);
  uint8_t md[SHA_DIGEST_LENGTH];
  const ASN1_BIT_STRING *bits = X509_get0_pubkey_bitstr(inter);
  SHA1(ASN1_STRING_get0_data(bits), (size_t)ASN1_STRING_length(bits), md);
  assert_memory_equal(ASN1_STRING_get0_data(aki), md, sizeof(md));
  /* Capped by the intermediate's notAfter (30 min), not the root's. */
  int64_t na, inter_na;
  assert_int_equal(wisp_ca_cert_not_after(leaf, &na), WISP_OK);
  assert_int_equal(wisp_ca_cert_not_after(inter, &inter_na), WISP_OK);
  assert_int_equal(na, inter_na);

  /* Saved in the same layout. */
  char *saved_cert, *saved_key;
  size_t saved_cert_len, saved_key_len;
  assert_int_equal(wisp_ca_save_pem(ca, &saved_cert, &saved_cert_len, &saved_key, &saved_key_len), WISP_OK);
  assert_string_equal(saved_cert, cert_pem);
  free(saved_cert);
  free(saved_key);

  X509_free(leaf);
  wisp_ca_free(ca);
  free(cert_pem);
  free(kp);
  X509_free(inter);
  EVP_PKEY_free(ikey);
  wisp_ca_free(root);
}

static void test_load_files(void **state) {
  (void)state;
  char dir[512], cert_path[600], chain_path[600], key_path[600], missing[600];
  assert_true(test_make_tmpdir(dir, sizeof(dir), "ca_test"));
  snprintf(cert_path, sizeof(cert_path), "%s/ca.pem", dir);
  snprintf(chain_path, sizeof(chain_path), "%s/root.pem", dir);
  snprintf(key_path, sizeof(key_path), "%s/ca.key", dir);
  snprintf(missing, sizeof(missing), "%s/missing.pem", dir);

  wisp_ca *root = new_root(TD, 3600);
  EVP_PKEY *ikey = NULL;
  assert_int_equal(wisp_ca_key_new_p256(&ikey), WISP_OK);
  X509 *inter = make_intermediate(ikey, root);
  X509 *rootc = wisp_ca_get0_cert(root);
  assert_true(test_write_certs(cert_path, &inter, 1));
  assert_true(test_write_certs(chain_path, &rootc, 1));
  assert_true(test_write_key(key_path, ikey));

  wisp_ca *ca = NULL;
  char err[1024] = "";
  assert_int_equal(wisp_ca_load_files(&ca, TD, cert_path, chain_path, key_path, err, sizeof(err)), WISP_OK);
  assert_int_equal(sk_X509_num(wisp_ca_get0_chain(ca)), 1);
  wisp_ca_free(ca);

  /* Without the root file the chain has no root. */
  ca = NULL;
  assert_int_equal(wisp_ca_load_files(&ca, TD, cert_path, NULL, key_path, err, sizeof(err)), WISP_ERR_VERIFY);
  assert_null(ca);
  assert_non_null(strstr(err, cert_path));
  assert_non_null(strstr(err, "not a self-signed root"));

  assert_int_equal(wisp_ca_load_files(&ca, TD, missing, NULL, key_path, err, sizeof(err)), WISP_ERR_IO);
  assert_non_null(strstr(err, "missing.pem"));
  assert_null(ca);

  X509_free(inter);
  EVP_PKEY_free(ikey);
  wisp_ca_free(root);
  test_remove_tmpdir(dir);
}

/* Fixtures for the load table. */
enum { C_ROOT, C_INTER, C_LEAF, C_NOSAN_ROOT, C_EXPIRED_ROOT, C_P384_ROOT, C_COUNT };
enum { K_ROOT, K_INTER, K_LEAF, K_NOSAN_ROOT, K_EXPIRED_ROOT, K_P384_ROOT, K_OTHER, K_COUNT };

typedef struct {
  const char *name;
  int certs[3]; /* C_* indices, -1 ends */
  int key;      /* K_* index, -1: garbage PEM */
  const char *td;
  wisp_err want;
  const char *why;
} load_case;

static const load_case kLoadCases[] = {
    {"root", {C_ROOT, -1}, K_ROOT, NULL, WISP_OK, NULL},
    {"intermediate + root", {C_INTER, C_ROOT, -1}, K_INTER, NULL, WISP_OK, NULL},
    {"root key mismatch", {C_ROOT, -1}, K_OTHER, NULL, WISP_ERR_USAGE, "does not match"},
    {"intermediate with the root's key", {C_INTER, C_ROOT, -1}, K_ROOT, NULL, WISP_ERR_USAGE, "does not match"},
    {"leaf is not a CA", {C_LEAF, C_ROOT, -1}, K_LEAF, NULL, WISP_ERR_USAGE, "is not a CA"},
    {"intermediate without root", {C_INTER, -1}, K_INTER, NULL, WISP_ERR_VERIFY, "not a self-signed root"},
    {"root first, then intermediate",
     {C_ROOT, C_INTER, -1},
     K_ROOT,
     NULL,
     WISP_ERR_VERIFY,
     "is not issued by certificate 2"},
    {"no certificate", {-1}, K_ROOT, NULL, WISP_ERR_PARSE, "no CERTIFICATE block"},
    {"garbage key", {C_ROOT, -1}, -1, NULL, WISP_ERR_PARSE, "CA key: no usable private key"},
    {"no SAN, no trust domain", {C_NOSAN_ROOT, -1}, K_NOSAN_ROOT, NULL, WISP_ERR_IDENTITY, "give the trust domain"},
    {"no SAN, trust domain given", {C_NOSAN_ROOT, -1}, K_NOSAN_ROOT, TD, WISP_OK, NULL},
    {"bad trust domain given",
     {C_NOSAN_ROOT, -1},
     K_NOSAN_ROOT,
     "Bad.Org",
     WISP_ERR_IDENTITY,
     "not a trust domain name"},
    {"expired root", {C_EXPIRED_ROOT, -1}, K_EXPIRED_ROOT, TD, WISP_ERR_VERIFY, "expired at"},
    {"P-384 CA key", {C_P384_ROOT, -1}, K_P384_ROOT, TD, WISP_ERR_POLICY, "P-384"},
};

static void test_load_table(void **state) {
  (void)state;
  X509 *certs[C_COUNT];
  EVP_PKEY *keys[K_COUNT];
  wisp_ca *root = new_root(TD, 3600);
  certs[C_ROOT] = wisp_ca_get0_cert(root);
  X509_up_ref(certs[C_ROOT]);
  keys[K_ROOT] = ca_key(root);
  assert_int_equal(wisp_ca_key_new_p256(&keys[K_INTER]), WISP_OK);
  certs[C_INTER] = make_intermediate(keys[K_INTER], root);
  assert_int_equal(wisp_ca_key_new_p256(&keys[K_LEAF]), WISP_OK);
  certs[C_LEAF] = issue(root, keys[K_LEAF], WEB_ID, 600);
  assert_int_equal(wisp_ca_key_new_p256(&keys[K_NOSAN_ROOT]), WISP_OK);
  test_cert_spec nosan = {.cn = "plain root", .is_ca = true};
  certs[C_NOSAN_ROOT] = test_new_cert(&nosan, keys[K_NOSAN_ROOT], NULL, NULL);
  assert_int_equal(wisp_ca_key_new_p256(&keys[K_EXPIRED_ROOT]), WISP_OK);
  test_cert_spec expired = {.cn = "old root", .is_ca = true, .not_before_sec = -7200, .not_after_sec = -3600};
  certs[C_EXPIRED_ROOT] = test_new_cert(&expired, keys[K_EXPIRED_ROOT], NULL, NULL);
  keys[K_P384_ROOT] = ec_key(NID_secp384r1);
  test_cert_spec p384 = {.cn = "p384 root", .is_ca = true};
  certs[C_P384_ROOT] = test_new_cert(&p384, keys[K_P384_ROOT], NULL, NULL);
  assert_int_equal(wisp_ca_key_new_p256(&keys[K_OTHER]), WISP_OK);

  for (size_t i = 0; i < sizeof(kLoadCases) / sizeof(kLoadCases[0]); i++) {
    const load_case *c = &kLoadCases[i];
    X509 *list[3];
    size_t n = 0;
    while (n < 3 && c->certs[n] >= 0) {
      list[n] = certs[c->certs[n]];
      n++;
    }
    size_t cert_len, key_len;
    char *cp = certs_pem(list, n, &cert_len);
    char *kp = c->key >= 0 ? key_pem(keys[c->key], &key_len) : strdup("-----BEGIN x");
    if (c->key < 0) key_len = strlen(kp);
    wisp_ca *ca = NULL;
    char err[512] = "";
    wisp_err rc = wisp_ca_load_pem(&ca, c->td, cp, cert_len, kp, key_len, err, sizeof(err));
    print_message("# case %s: %d (%s)\n", c->name, rc, err);
    assert_int_equal(rc, c->want);
    if (rc == WISP_OK) {
      assert_non_null(ca);
      assert_string_equal(wisp_ca_get0_trust_domain(ca), TD);
    } else {
      assert_null(ca);
      assert_non_null(strstr(err, c->why));
    }
    assert_int_equal(ERR_peek_error(), 0);
    wisp_ca_free(ca);
    free(cp);
    free(kp);
  }
  for (int i = 0; i < C_COUNT; i++) X509_free(certs[i]);
  for (int i = 0; i < K_COUNT; i++) EVP_PKEY_free(keys[i]);
  wisp_ca_free(root);
}

static void test_add1_root(void **state) {
  (void)state;
  wisp_ca *ca = new_root(TD, 3600);
  wisp_ca *old = new_root(TD, 3600);
  char err[256] = "";
  X509 *old_root = wisp_ca_get0_cert(old);
  assert_int_equal(wisp_ca_add1_root(ca, old_root, err, sizeof(err)), WISP_OK);
  assert_int_equal(wisp_ca_add1_root(ca, old_root, err, sizeof(err)), WISP_OK); /* no dup */
  assert_int_equal(sk_X509_num(wisp_ca_get0_roots(ca)), 2);
  assert_ptr_equal(sk_X509_value(wisp_ca_get0_roots(ca), 0), wisp_ca_get0_cert(ca));

  X509 *leaf = issue(old, g.p256, WEB_ID, 60);
  assert_int_equal(wisp_ca_add1_root(ca, leaf, err, sizeof(err)), WISP_ERR_USAGE);
  assert_non_null(strstr(err, "not a self-signed CA"));
  assert_int_equal(sk_X509_num(wisp_ca_get0_roots(ca)), 2);
  X509_free(leaf);

  wisp_ca_free(old); /* |ca| keeps its own reference */
  assert_int_equal(X509_check_ca(sk_X509_value(wisp_ca_get0_roots(ca), 1)), 1);
  wisp_ca_free(ca);
}

/* ---- encodings ------------------------------------------------------------ */

static void test_certs_pem_der_round_trip(void **state) {
  (void)state;
  wisp_ca *ca = new_root(TD, 3600);
  X509 *leaf = issue(ca, g.p256, WEB_ID, 60);
  STACK_OF(X509) *in = sk_X509_new_null();
  assert_true(sk_X509_push(in, leaf));
  assert_true(sk_X509_push(in, wisp_ca_get0_cert(ca)));
  char err[256] = "";

  char *pem;
  size_t pem_len;
  assert_int_equal(wisp_ca_certs_to_pem(&pem, &pem_len, in), WISP_OK);
  STACK_OF(X509) *out = NULL;
  assert_int_equal(wisp_ca_certs_from_pem(&out, pem, pem_len, err, sizeof(err)), WISP_OK);
  assert_int_equal(sk_X509_num(out), 2);
  for (size_t i = 0; i < 2; i++) assert_int_equal(X509_cmp(sk_X509_value(out, i), sk_X509_value(in, i)), 0);
  sk_X509_pop_free(out, X509_free);

  uint8_t *der;
  size_t der_len;
  assert_int_equal(wisp_ca_certs_to_der(&der, &der_len, in), WISP_OK);
  assert_int_equal(der_len, (size_t)(i2d_X509(leaf, NULL) + i2d_X509(wisp_ca_get0_cert(ca), NULL)));
  out = NULL;
  assert_int_equal(wisp_ca_certs_from_der(&out, der, der_len, err, sizeof(err)), WISP_OK);
  assert_int_equal(sk_X509_num(out), 2);
  for (size_t i = 0; i < 2; i++) assert_int_equal(X509_cmp(sk_X509_value(out, i), sk_X509_value(in, i)), 0);
  sk_X509_pop_free(out, X509_free);

  /* Strict DER: truncation, trailing garbage, emptiness. */
  out = NULL;
  assert_int_equal(wisp_ca_certs_from_der(&out, der, der_len - 1, err, sizeof(err)), WISP_ERR_PARSE);
  assert_non_null(strstr(err, "certificate 2"));
  uint8_t *longer = malloc(der_len + 2);
  memcpy(longer, der, der_len);
  longer[der_len] = 0x30;
  longer[der_len + 1] = 0x00;
  assert_int_equal(wisp_ca_certs_from_der(&out, longer, der_len + 2, err, sizeof(err)), WISP_ERR_PARSE);
  assert_int_equal(wisp_ca_certs_from_der(&out, longer, 0, err, sizeof(err)), WISP_ERR_PARSE);
  assert_null(out);
  free(longer);

  /* PEM: no block, a broken block, too many. */
  assert_int_equal(wisp_ca_certs_from_pem(&out, "", 0, err, sizeof(err)), WISP_ERR_PARSE);
  const char kBroken[] = "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n";
  assert_int_equal(wisp_ca_certs_from_pem(&out, kBroken, strlen(kBroken), err, sizeof(err)), WISP_ERR_PARSE);
  assert_non_null(strstr(err, "certificate 1"));
  const char *root_pem = strstr(pem + 1, "-----BEGIN"); /* the second block */
  size_t one_len = strlen(root_pem);
  char *many = malloc(one_len * (WISP_CA_CERTS_MAX + 1) + 1);
  for (size_t i = 0; i <= WISP_CA_CERTS_MAX; i++) memcpy(many + i * one_len, root_pem, one_len);
  many[one_len * (WISP_CA_CERTS_MAX + 1)] = '\0';
  assert_int_equal(wisp_ca_certs_from_pem(&out, many, strlen(many), err, sizeof(err)), WISP_ERR_TOO_BIG);
  assert_int_equal(wisp_ca_certs_from_pem(&out, many, one_len * WISP_CA_CERTS_MAX, err, sizeof(err)), WISP_OK);
  assert_int_equal(sk_X509_num(out), WISP_CA_CERTS_MAX);
  sk_X509_pop_free(out, X509_free);
  out = NULL;
  char *huge = calloc(1, WISP_CA_PEM_MAX + 1);
  assert_int_equal(wisp_ca_certs_from_pem(&out, huge, WISP_CA_PEM_MAX + 1, err, sizeof(err)), WISP_ERR_TOO_BIG);
  assert_int_equal(wisp_ca_certs_from_der(&out, (const uint8_t *)huge, WISP_CA_PEM_MAX + 1, err, sizeof(err)),
                   WISP_ERR_TOO_BIG);
  assert_null(out);
  assert_int_equal(ERR_peek_error(), 0);

  free(huge);
  free(many);
  free(der);
  free(pem);
  sk_X509_free(in);
  X509_free(leaf);
  wisp_ca_free(ca);
}

static void test_not_after_and_serial(void **state) {
  (void)state;
  EVP_PKEY *key = g.p256;
  /* UTCTime (before 2050) and GeneralizedTime (2050 and later). */
  const long offsets[] = {3600, 40L * 365 * 86400};
  for (size_t i = 0; i < 2; i++) {
    test_cert_spec spec = {.cn = "t", .serial = 0x1234abcd, .not_after_sec = offsets[i]};
    int64_t before = now_unix();
    X509 *x = test_new_cert(&spec, key, NULL, NULL);
    int64_t after = now_unix();
    int64_t na = 0;
    assert_int_equal(wisp_ca_cert_not_after(x, &na), WISP_OK);
    assert_true(na >= before + offsets[i] && na <= after + offsets[i]);
    char hex[WISP_CA_SERIAL_HEX_MAX];
    wisp_ca_cert_serial_hex(x, hex, sizeof(hex));
    assert_string_equal(hex, "1234abcd");
    char tiny[4];
    wisp_ca_cert_serial_hex(x, tiny, sizeof(tiny));
    assert_string_equal(tiny, "123");
    X509_free(x);
  }
}

/* An SVID is served only while valid (notBefore within the skew, notAfter
 * to come) and when it chains to the bundle it comes with. */
static X509 *svid_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, long nb, long na) {
  test_san san = {GEN_URI, WEB_ID, 0};
  test_cert_spec spec = {.cn = "web", .sans = &san, .nsans = 1, .not_before_sec = nb, .not_after_sec = na};
  return test_new_cert(&spec, key, issuer, issuer_key);
}

static X509 *ca_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long nb, long na) {
  test_cert_spec spec = {.cn = cn, .is_ca = true, .not_before_sec = nb, .not_after_sec = na};
  return test_new_cert(&spec, key, issuer, issuer_key);
}

static STACK_OF(X509) * stack_of(X509 *a, X509 *b) {
  STACK_OF(X509) *s = sk_X509_new_null();
  X509 *both[] = {a, b};
  for (size_t i = 0; i < 2; i++) {
    if (!both[i]) continue;
    X509_up_ref(both[i]);
    sk_X509_push(s, both[i]);
  }
  return s;
}

/* A chain of |leaf| alone, taking over its reference. */
static STACK_OF(X509) * chain_taking(X509 *leaf) {
  STACK_OF(X509) *s = sk_X509_new_null();
  sk_X509_push(s, leaf);
  return s;
}

/* wisp_ca_svid_check on |chain| (consumed) says |why|. */
static void expect_svid_refused(STACK_OF(X509) * chain, STACK_OF(X509) * roots, int64_t now, const char *why) {
  char err[512] = "";
  assert_int_equal(wisp_ca_svid_check(chain, roots, now, WISP_CA_CLOCK_SKEW_SEC, err, sizeof(err)), WISP_ERR_VERIFY);
  if (!strstr(err, why)) fail_msg("want \"%s\", got \"%s\"", why, err);
  sk_X509_pop_free(chain, X509_free);
}

/* What a TLS handshake would carry or what the SVID rules forbid, refused
 * before any signature is checked: a leaf that is a CA or may sign
 * certificates, a chain of more than WISP_CA_SVID_CHAIN_MAX certificates,
 * one of more than WISP_CA_SVID_DER_MAX bytes. All under |root|. */
static void check_svid_shape_refused(X509 *root, EVP_PKEY *root_key, X509 *inter, STACK_OF(X509) * roots, int64_t now) {
  test_san san = {GEN_URI, WEB_ID, 0};
  test_cert_spec ca_leaf = {.cn = "web", .sans = &san, .nsans = 1, .is_ca = true, .not_before_sec = -60};
  expect_svid_refused(chain_taking(test_new_cert(&ca_leaf, g.p256, root, root_key)), roots, now,
                      "the SVID (" WEB_ID ") is not a leaf SVID: it is a CA certificate");
  test_cert_spec signer = {.cn = "web",
                           .sans = &san,
                           .nsans = 1,
                           .key_usage = KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN,
                           .not_before_sec = -60};
  expect_svid_refused(chain_taking(test_new_cert(&signer, g.p256, root, root_key)), roots, now,
                      "keyCertSign or cRLSign");
  STACK_OF(X509) *longer = chain_taking(svid_cert(g.p256, root, root_key, -60, 3600));
  for (int i = 0; i < WISP_CA_SVID_CHAIN_MAX; i++) {
    X509_up_ref(inter);
    sk_X509_push(longer, inter);
  }
  expect_svid_refused(longer, roots, now, "the SVID's chain has 11 certificates (at most 10)");
  /* 80 URI SANs of 1,000 bytes: 80 KB in one leaf. */
  enum { NBIG = 80, BIGLEN = 1000 };
  static char uris[NBIG][BIGLEN + 1];
  test_san big[NBIG];
  for (int i = 0; i < NBIG; i++) {
    int n = snprintf(uris[i], sizeof(uris[i]), "spiffe://example.org/big/%d/", i);
    memset(uris[i] + n, 'x', BIGLEN - (size_t)n);
    uris[i][BIGLEN] = '\0';
    big[i] = (test_san){GEN_URI, uris[i], 0};
  }
  test_cert_spec huge = {.cn = "web", .sans = big, .nsans = NBIG, .not_before_sec = -60};
  expect_svid_refused(chain_taking(test_new_cert(&huge, g.p256, root, root_key)), roots, now,
                      "bytes of DER (at most 65536)");
}

static void test_svid_check(void **state) {
  (void)state;
  EVP_PKEY *root_key = test_new_key(), *other_key = test_new_key(), *inter_key = test_new_key();
  X509 *root = ca_cert(root_key, "root", NULL, NULL, -3600, 86400);
  X509 *other = ca_cert(other_key, "another root", NULL, NULL, -3600, 86400);
  X509 *inter = ca_cert(inter_key, "intermediate", root, root_key, -3600, 86400);
  X509 *old_inter = ca_cert(inter_key, "intermediate", root, root_key, -7200, -60);
  X509 *good = svid_cert(g.p256, root, root_key, -60, 3600);
  X509 *under_inter = svid_cert(g.p256, inter, inter_key, -60, 3600);
  X509 *expired = svid_cert(g.p256, root, root_key, -7200, -1);
  X509 *early = svid_cert(g.p256, root, root_key, 3600, 7200);
  X509 *foreign = svid_cert(g.p256, other, other_key, -60, 3600);
  STACK_OF(X509) *roots = stack_of(root, NULL), *none = sk_X509_new_null();
  const struct {
    const char *name;
    X509 *leaf, *inter;
    STACK_OF(X509) * roots;
    wisp_err want;
    const char *why;
  } kCases[] = {
      {"valid, under the root", good, NULL, roots, WISP_OK, ""},
      {"valid, under an intermediate", under_inter, inter, roots, WISP_OK, ""},
      {"expired", expired, NULL, roots, WISP_ERR_VERIFY, "the SVID (" WEB_ID ") expired at "},
      {"not yet valid", early, NULL, roots, WISP_ERR_VERIFY, "the SVID (" WEB_ID ") is not valid before "},
      {"under another root", foreign, NULL, roots, WISP_ERR_VERIFY,
       "the SVID does not chain to the trust bundle (1 root): "},
      {"intermediate missing", under_inter, NULL, roots, WISP_ERR_VERIFY,
       "the SVID does not chain to the trust bundle (1 root): "},
      {"intermediate expired", under_inter, old_inter, roots, WISP_ERR_VERIFY, "chain certificate 2 ("},
      {"no bundle", good, NULL, none, WISP_ERR_VERIFY, "no trust bundle"},
  };
  int64_t now = now_unix();
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); i++) {
    STACK_OF(X509) *chain = stack_of(kCases[i].leaf, kCases[i].inter);
    char err[512] = "";
    wisp_err rc = wisp_ca_svid_check(chain, kCases[i].roots, now, WISP_CA_CLOCK_SKEW_SEC, err, sizeof(err));
    if (rc != kCases[i].want || strncmp(err, kCases[i].why, strlen(kCases[i].why)) != 0)
      fail_msg("%s: %s, \"%s\"", kCases[i].name, wisp_err_str(rc), err);
    if (kCases[i].want == WISP_ERR_VERIFY && strstr(kCases[i].why, "expired") && !strstr(err, "expired at "))
      fail_msg("%s: \"%s\"", kCases[i].name, err);
    sk_X509_pop_free(chain, X509_free);
  }
  check_svid_shape_refused(root, root_key, inter, roots, now);
  /* The skew, to the second, on the certificate's own notBefore. */
  int64_t nb = 0;
  assert_int_equal(wisp_ca_cert_not_before(early, &nb), WISP_OK);
  STACK_OF(X509) *chain = stack_of(early, NULL);
  char err[512];
  assert_int_equal(wisp_ca_svid_check(chain, roots, nb - 60, 60, err, sizeof(err)), WISP_OK);
  assert_int_equal(wisp_ca_svid_check(chain, roots, nb - 61, 60, err, sizeof(err)), WISP_ERR_VERIFY);
  assert_non_null(strstr(err, "is not valid before"));
  assert_non_null(strstr(err, "(this host's clock says "));
  /* No grace after notAfter. */
  int64_t na = 0;
  assert_int_equal(wisp_ca_cert_not_after(early, &na), WISP_OK);
  assert_int_equal(wisp_ca_svid_check(chain, roots, na - 1, 60, err, sizeof(err)), WISP_OK);
  assert_int_equal(wisp_ca_svid_check(chain, roots, na, 60, err, sizeof(err)), WISP_ERR_VERIFY);
  assert_non_null(strstr(err, "expired at"));
  sk_X509_pop_free(chain, X509_free);
  sk_X509_pop_free(roots, X509_free);
  sk_X509_free(none);
  X509 *all[] = {root, other, inter, old_inter, good, under_inter, expired, early, foreign};
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) X509_free(all[i]);
  EVP_PKEY_free(root_key);
  EVP_PKEY_free(other_key);
  EVP_PKEY_free(inter_key);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_key_pem_round_trip),
      cmocka_unit_test(test_key_policy_table),
      cmocka_unit_test(test_csr_round_trip),
      cmocka_unit_test(test_csr_new_rejects_bad_ids),
      cmocka_unit_test(test_csr_check_table),
      cmocka_unit_test(test_csr_check_err_buf_optional),
      cmocka_unit_test(test_new_root),
      cmocka_unit_test(test_new_root_rejects),
      cmocka_unit_test(test_issue_svid),
      cmocka_unit_test(test_issue_capped_by_ca),
      cmocka_unit_test(test_issue_from_origin),
      cmocka_unit_test(test_issue_one_second_ttl),
      cmocka_unit_test(test_issue_server),
      cmocka_unit_test(test_issue_long_segment_cn_cut),
      cmocka_unit_test(test_issue_rejects_table),
      cmocka_unit_test(test_save_load_root),
      cmocka_unit_test(test_load_intermediate_chain),
      cmocka_unit_test(test_load_files),
      cmocka_unit_test(test_load_table),
      cmocka_unit_test(test_add1_root),
      cmocka_unit_test(test_certs_pem_der_round_trip),
      cmocka_unit_test(test_not_after_and_serial),
      cmocka_unit_test(test_svid_check),
  };
  return WISP_RUN_GROUP_TESTS(tests, group_setup, group_teardown);
}
