/* Unit tests for lib/wisp_tls: loading credentials (and the plain-words
 * error for each way it can fail), reloading on change while keeping the
 * old credentials when the new files are broken, and in-memory handshakes
 * that exercise peer verification by SPIFFE ID. Keys and certificates are
 * made in-test (tests/unit/test_x509.h) under $TEST_TMPDIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "lib/wisp_tls.h"
#include "tests/unit/test_util.h"
#include "tests/unit/test_x509.h"

#define ID_A "spiffe://example.org/a"
#define ID_B "spiffe://example.org/b"
#define DAY 86400L

/* ---- fixture: one PKI for the whole file ------------------------------------ */

static struct {
  char dir[1024];
  EVP_PKEY *ca_key, *ca2_key, *key, *other_key;
  X509 *ca, *ca2;
  char ca2_not_after[64];
} fx;

/* Path of |name| in the fixture directory (a ring of static buffers). */
static const char *P(const char *name) { return test_path(fx.dir, name); }

static X509 *leaf(const char *id, X509 *issuer, EVP_PKEY *issuer_key, long serial) {
  test_san san = {GEN_URI, id, 0};
  test_cert_spec spec = {
      .cn = "workload", .sans = &san, .nsans = 1, .serial = serial, .not_before_sec = -3600, .not_after_sec = 30 * DAY};
  return test_new_cert(&spec, fx.key, issuer, issuer_key);
}

/* A leaf for ID_A by the CA with key usage |ku| (see test_cert_spec). */
static X509 *leaf_ku(long ku, bool noncritical, bool is_ca) {
  test_san san = {GEN_URI, ID_A, 0};
  test_cert_spec spec = {.cn = "workload",
                         .sans = &san,
                         .nsans = 1,
                         .not_before_sec = -3600,
                         .not_after_sec = 30 * DAY,
                         .is_ca = is_ca,
                         .not_ca = !is_ca,
                         .key_usage = ku,
                         .key_usage_noncritical = noncritical};
  return test_new_cert(&spec, fx.key, fx.ca, fx.ca_key);
}

static bool write_leaf(const char *name, X509 *x) {
  bool ok = x && test_write_certs(P(name), &x, 1);
  X509_free(x);
  return ok;
}

static void time_str(const ASN1_TIME *t, char *out, size_t out_len) {
  BIO *b = BIO_new(BIO_s_mem());
  const uint8_t *data;
  size_t len = 0;
  ASN1_TIME_print(b, t);
  BIO_mem_contents(b, &data, &len);
  snprintf(out, out_len, "%.*s", (int)len, (const char *)data);
  BIO_free(b);
}

static int group_setup(void **state) {
  (void)state;
  if (!test_make_tmpdir(fx.dir, sizeof(fx.dir), "tls_test")) return -1;
  fx.ca_key = test_new_key();
  fx.ca2_key = test_new_key();
  fx.key = test_new_key();
  fx.other_key = test_new_key();
  if (!fx.ca_key || !fx.ca2_key || !fx.key || !fx.other_key) return -1;
  test_cert_spec ca = {.cn = "wisp test CA", .is_ca = true, .not_before_sec = -3600, .not_after_sec = 3650 * DAY};
  test_cert_spec ca2 = {
      .cn = "other CA", .is_ca = true, .serial = 2, .not_before_sec = -3600, .not_after_sec = 10 * DAY};
  fx.ca = test_new_cert(&ca, fx.ca_key, NULL, NULL);
  fx.ca2 = test_new_cert(&ca2, fx.ca2_key, NULL, NULL);
  if (!fx.ca || !fx.ca2) return -1;
  time_str(X509_get0_notAfter(fx.ca2), fx.ca2_not_after, sizeof(fx.ca2_not_after));

  X509 *both[] = {fx.ca, fx.ca2};
  X509 *chain[2] = {leaf(ID_A, fx.ca, fx.ca_key, 7), fx.ca};
  bool ok = test_write_certs(P("ca.pem"), &fx.ca, 1) && test_write_certs(P("ca2.pem"), &fx.ca2, 1) &&
            test_write_certs(P("both-ca.pem"), both, 2) && test_write_key(P("a.key"), fx.key) &&
            test_write_key(P("other.key"), fx.other_key) && chain[0] && test_write_certs(P("chain.pem"), chain, 2);
  X509_free(chain[0]);
  ok = ok && write_leaf("a.pem", leaf(ID_A, fx.ca, fx.ca_key, 0x1234abcd));
  ok = ok && write_leaf("b.pem", leaf(ID_B, fx.ca, fx.ca_key, 0xb));
  ok = ok && write_leaf("other-td.pem", leaf("spiffe://other.org/x", fx.ca, fx.ca_key, 3));
  ok = ok && write_leaf("a-by-ca2.pem", leaf(ID_A, fx.ca2, fx.ca2_key, 4));
  ok = ok && write_leaf("a-self-signed.pem", leaf(ID_A, NULL, NULL, 5));
  ok = ok && write_leaf("a-no-ku.pem", leaf_ku(TEST_KU_NONE, false, false));
  ok = ok && write_leaf("a-ku-noncritical.pem", leaf_ku(KU_DIGITAL_SIGNATURE, true, false));
  ok = ok && write_leaf("a-ku-certsign.pem", leaf_ku(KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN, false, false));
  ok = ok && write_leaf("a-ku-crlsign.pem", leaf_ku(KU_DIGITAL_SIGNATURE | KU_CRL_SIGN, false, false));
  ok = ok && write_leaf("a-ca.pem", leaf_ku(KU_DIGITAL_SIGNATURE, false, true));

  test_san dns = {GEN_DNS, "a.example.org", 0};
  test_san two[] = {{GEN_URI, ID_A, 0}, {GEN_URI, ID_B, 0}};
  test_san https = {GEN_URI, "https://example.org/a", 0};
  test_cert_spec s_dns = {.cn = "dns-only", .sans = &dns, .nsans = 1};
  test_cert_spec s_none = {.cn = "no-san"};
  test_cert_spec s_two = {.cn = "two", .sans = two, .nsans = 2};
  test_cert_spec s_https = {.cn = "https", .sans = &https, .nsans = 1};
  ok = ok && write_leaf("dns-only.pem", test_new_cert(&s_dns, fx.key, fx.ca, fx.ca_key));
  ok = ok && write_leaf("no-san.pem", test_new_cert(&s_none, fx.key, fx.ca, fx.ca_key));
  ok = ok && write_leaf("two-uri.pem", test_new_cert(&s_two, fx.key, fx.ca, fx.ca_key));
  ok = ok && write_leaf("https-uri.pem", test_new_cert(&s_https, fx.key, fx.ca, fx.ca_key));
  ok = ok && test_write_file(P("garbage.pem"), "this is not PEM\n");
  ok = ok && test_write_file(P("empty.pem"), "");
  ok = ok && test_write_file(P("truncated.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n");
  ok = ok && mkdir(P("a-directory"), 0700) == 0;
  return ok ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  rmdir(P("a-directory"));
  test_remove_tmpdir(fx.dir);
  X509_free(fx.ca);
  X509_free(fx.ca2);
  EVP_PKEY_free(fx.ca_key);
  EVP_PKEY_free(fx.ca2_key);
  EVP_PKEY_free(fx.key);
  EVP_PKEY_free(fx.other_key);
  ERR_clear_error();
  return 0;
}

/* ---- wisp_tls_load_files: errors ------------------------------------------- */

typedef struct {
  const char *name;
  const char *cert, *key, *bundle;
  wisp_err want;
  const char *has[3]; /* substrings of the error; "@cert" etc. mean that file's path */
} load_case;

static const load_case kLoadCases[] = {
    {"missing cert", "nope.pem", "a.key", "ca.pem", WISP_ERR_USAGE, {"cannot read @cert", "No such file"}},
    {"missing key", "a.pem", "nope.key", "ca.pem", WISP_ERR_USAGE, {"cannot read @key", "No such file"}},
    {"missing bundle", "a.pem", "a.key", "nope.pem", WISP_ERR_USAGE, {"cannot read @bundle", "No such file"}},
    {"garbage cert", "garbage.pem", "a.key", "ca.pem", WISP_ERR_TLS, {"cannot load certificate @cert"}},
    {"empty cert", "empty.pem", "a.key", "ca.pem", WISP_ERR_TLS, {"cannot load certificate @cert"}},
    {"truncated cert", "truncated.pem", "a.key", "ca.pem", WISP_ERR_TLS, {"cannot load certificate @cert"}},
    {"key as cert", "a.key", "a.key", "ca.pem", WISP_ERR_TLS, {"cannot load certificate @cert"}},
    {"directory as cert", "a-directory", "a.key", "ca.pem", WISP_ERR_TLS, {"cannot load certificate @cert"}},
    {"garbage key", "a.pem", "garbage.pem", "ca.pem", WISP_ERR_TLS, {"cannot load private key @key"}},
    {"cert as key", "a.pem", "a.pem", "ca.pem", WISP_ERR_TLS, {"cannot load private key @key"}},
    {"key does not match cert",
     "a.pem",
     "other.key",
     "ca.pem",
     WISP_ERR_TLS,
     {"private key @key does not match certificate @cert"}},
    {"garbage bundle", "a.pem", "a.key", "garbage.pem", WISP_ERR_TLS, {"cannot load trust bundle @bundle"}},
    {"empty bundle", "a.pem", "a.key", "empty.pem", WISP_ERR_TLS, {"cannot load trust bundle @bundle"}},
    {"cert without SAN",
     "no-san.pem",
     "a.key",
     "ca.pem",
     WISP_ERR_TLS,
     {"own certificate is not an X.509-SVID", "no URI SAN"}},
    {"cert with DNS SAN only",
     "dns-only.pem",
     "a.key",
     "ca.pem",
     WISP_ERR_TLS,
     {"own certificate is not an X.509-SVID", "no URI SAN"}},
    {"cert with two URI SANs",
     "two-uri.pem",
     "a.key",
     "ca.pem",
     WISP_ERR_TLS,
     {"own certificate is not an X.509-SVID", "more than one URI SAN"}},
    {"cert with non-SPIFFE URI",
     "https-uri.pem",
     "a.key",
     "ca.pem",
     WISP_ERR_TLS,
     {"own certificate is not an X.509-SVID", "not a SPIFFE ID"}},
};

/* Expands "@cert"/"@key"/"@bundle" in |pat| to the case's paths. */
static void expand(char *out, size_t out_len, const char *pat, const char *cert, const char *key, const char *bundle) {
  size_t o = 0;
  out[0] = '\0';
  while (*pat && o + 1 < out_len) {
    const char *sub = NULL;
    size_t skip = 0;
    if (strncmp(pat, "@cert", 5) == 0) sub = cert, skip = 5;
    else if (strncmp(pat, "@key", 4) == 0) sub = key, skip = 4;
    else if (strncmp(pat, "@bundle", 7) == 0) sub = bundle, skip = 7;
    if (sub) {
      o += (size_t)snprintf(out + o, out_len - o, "%s", sub);
      pat += skip;
    } else {
      out[o++] = *pat++;
      out[o] = '\0';
    }
  }
}

static void test_load_errors(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kLoadCases) / sizeof(kLoadCases[0]); i++) {
    const load_case *c = &kLoadCases[i];
    char cert[1200], key[1200], bundle[1200];
    snprintf(cert, sizeof(cert), "%s", P(c->cert));
    snprintf(key, sizeof(key), "%s", P(c->key));
    snprintf(bundle, sizeof(bundle), "%s", P(c->bundle));
    wisp_tls *t = wisp_tls_new(NULL);
    char err[1024] = "";
    wisp_err rc = wisp_tls_load_files(t, cert, key, bundle, err, sizeof(err));
    print_message("# case %zu (%s): %d %s\n", i, c->name, rc, err);
    bool ready = wisp_tls_ready(t);
    uint64_t gen = wisp_tls_get0_info(t)->generation;
    SSL *ssl = NULL;
    wisp_tls_verify v;
    memset(&v, 0, sizeof(v));
    ssl = wisp_tls_new_ssl(t, true, &v);
    wisp_tls_free(t);
    if (rc != c->want) fail_msg("case '%s': got %d, want %d (%s)", c->name, rc, c->want, err);
    assert_false(ready);
    assert_int_equal(gen, 0);
    assert_null(ssl);
    for (size_t k = 0; k < 3 && c->has[k]; k++) {
      char want[4096];
      expand(want, sizeof(want), c->has[k], cert, key, bundle);
      if (!strstr(err, want)) fail_msg("case '%s': error '%s' lacks '%s'", c->name, err, want);
    }
    /* Nothing is left on BoringSSL's error queue for the next caller. */
    assert_int_equal(ERR_peek_error(), 0);
  }
}

/* ---- wisp_tls_load_files: success ------------------------------------------- */

static void test_load_success_info(void **state) {
  (void)state;
  wisp_tls *t = wisp_tls_new(NULL);
  assert_false(wisp_tls_ready(t));
  assert_int_equal(wisp_tls_get0_info(t)->generation, 0);
  char err[512] = "untouched";
  time_t before = time(NULL);
  assert_int_equal(wisp_tls_load_files(t, P("a.pem"), P("a.key"), P("ca.pem"), err, sizeof(err)), WISP_OK);
  assert_true(wisp_tls_ready(t));
  const wisp_tls_info *info = wisp_tls_get0_info(t);
  assert_string_equal(info->spiffe_id, ID_A);
  assert_string_equal(info->serial, "1234abcd");
  assert_non_null(strstr(info->not_after, "GMT"));
  /* Built as now + 30 days, give or take the test's own run time. */
  assert_in_range(info->not_after_unix, before + 30 * DAY - 5, time(NULL) + 30 * DAY + 5);
  assert_int_equal(info->bundle_roots, 1);
  assert_non_null(strstr(info->bundle_not_after, "GMT"));
  assert_int_equal(info->generation, 1);
  /* Loading again bumps the generation. */
  assert_int_equal(wisp_tls_load_files(t, P("b.pem"), P("a.key"), P("ca.pem"), err, sizeof(err)), WISP_OK);
  assert_string_equal(info->spiffe_id, ID_B);
  assert_string_equal(info->serial, "0b");
  assert_int_equal(info->generation, 2);
  wisp_tls_free(t);
  wisp_tls_free(NULL);
}

static void test_load_chain_and_multi_root_bundle(void **state) {
  (void)state;
  wisp_tls *t = wisp_tls_new(NULL);
  char err[512] = "";
  /* The cert file may hold the chain; the bundle may hold several roots. */
  assert_int_equal(wisp_tls_load_files(t, P("chain.pem"), P("a.key"), P("both-ca.pem"), err, sizeof(err)), WISP_OK);
  const wisp_tls_info *info = wisp_tls_get0_info(t);
  assert_string_equal(info->spiffe_id, ID_A);
  assert_string_equal(info->serial, "07");
  assert_int_equal(info->bundle_roots, 2);
  /* The earliest expiry among the roots: other CA, 10 days. */
  assert_string_equal(info->bundle_not_after, fx.ca2_not_after);
  wisp_tls_free(t);
}

static void test_failed_load_keeps_old_credentials(void **state) {
  (void)state;
  wisp_tls *t = wisp_tls_new(NULL);
  char err[512] = "";
  assert_int_equal(wisp_tls_load_files(t, P("a.pem"), P("a.key"), P("ca.pem"), err, sizeof(err)), WISP_OK);
  wisp_tls_info before = *wisp_tls_get0_info(t);
  static const char *const bad[][3] = {
      {"garbage.pem", "a.key", "ca.pem"}, {"b.pem", "other.key", "ca.pem"}, {"no-san.pem", "a.key", "ca.pem"},
      {"b.pem", "a.key", "garbage.pem"},  {"nope.pem", "a.key", "ca.pem"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char c[1200], k[1200], b[1200];
    snprintf(c, sizeof(c), "%s", P(bad[i][0]));
    snprintf(k, sizeof(k), "%s", P(bad[i][1]));
    snprintf(b, sizeof(b), "%s", P(bad[i][2]));
    assert_int_not_equal(wisp_tls_load_files(t, c, k, b, err, sizeof(err)), WISP_OK);
    assert_true(wisp_tls_ready(t));
    assert_memory_equal(wisp_tls_get0_info(t), &before, sizeof(before));
    /* New connections still get the old credentials. */
    wisp_tls_verify v;
    memset(&v, 0, sizeof(v));
    SSL *ssl = wisp_tls_new_ssl(t, false, &v);
    assert_non_null(ssl);
    assert_string_equal(v.trust_domain, "example.org");
    SSL_free(ssl);
  }
  wisp_tls_free(t);
}

/* ---- wisp_tls_reload_if_changed --------------------------------------------- */

static bool copy_file(const char *from, const char *to) {
  FILE *f = fopen(from, "r");
  if (!f) return false;
  char buf[16384];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  return test_write_file(to, buf);
}

/* Overwrites |to| in place (same inode), as a careless rotation would. */
static bool overwrite_in_place(const char *from, const char *to) {
  FILE *f = fopen(from, "r");
  if (!f) return false;
  char buf[16384];
  size_t n = fread(buf, 1, sizeof(buf), f);
  fclose(f);
  FILE *g = fopen(to, "w");
  if (!g) return false;
  bool ok = fwrite(buf, 1, n, g) == n;
  return fclose(g) == 0 && ok;
}

static void expect_reload(wisp_tls *t, wisp_err want_rc, bool want_changed, const char *want_id, uint64_t want_gen,
                          const char *err_has) {
  bool changed = !want_changed;
  char err[1024] = "";
  wisp_err rc = wisp_tls_reload_if_changed(t, &changed, err, sizeof(err));
  if (rc != want_rc) fail_msg("reload: got %d, want %d (%s)", rc, want_rc, err);
  assert_int_equal(changed, want_changed);
  assert_true(wisp_tls_ready(t));
  assert_string_equal(wisp_tls_get0_info(t)->spiffe_id, want_id);
  assert_int_equal(wisp_tls_get0_info(t)->generation, want_gen);
  if (err_has && !strstr(err, err_has)) fail_msg("reload error '%s' lacks '%s'", err, err_has);
}

static void test_reload_if_changed(void **state) {
  (void)state;
  char cert_path[1200];
  snprintf(cert_path, sizeof(cert_path), "%s", P("live.pem"));
  assert_true(copy_file(P("a.pem"), cert_path));
  assert_true(copy_file(P("a.key"), P("live.key")));
  assert_true(copy_file(P("ca.pem"), P("live-ca.pem")));

  wisp_tls *t = wisp_tls_new(NULL);
  bool changed = true;
  char err[1024] = "";
  /* Nothing loaded yet: nothing to reload. */
  assert_int_equal(wisp_tls_reload_if_changed(t, &changed, err, sizeof(err)), WISP_OK);
  assert_false(changed);
  assert_int_equal(wisp_tls_load_files(t, cert_path, P("live.key"), P("live-ca.pem"), err, sizeof(err)), WISP_OK);

  /* Unchanged files: no reload. */
  expect_reload(t, WISP_OK, false, ID_A, 1, NULL);
  expect_reload(t, WISP_OK, false, ID_A, 1, NULL);

  /* Rotated by rename (new inode): new credentials in force. */
  assert_true(copy_file(P("b.pem"), cert_path));
  expect_reload(t, WISP_OK, true, ID_B, 2, NULL);
  expect_reload(t, WISP_OK, false, ID_B, 2, NULL);

  /* Rotated to a broken file: error once, old credentials stay. */
  assert_true(test_write_file(cert_path, "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"));
  expect_reload(t, WISP_ERR_TLS, false, ID_B, 2, "cannot load certificate");
  expect_reload(t, WISP_OK, false, ID_B, 2, NULL); /* reported once, not every tick */

  /* Fixed: picked up. */
  assert_true(copy_file(P("a.pem"), cert_path));
  expect_reload(t, WISP_OK, true, ID_A, 3, NULL);

  /* A file briefly missing mid-rotation is not a change yet ... */
  assert_int_equal(unlink(cert_path), 0);
  expect_reload(t, WISP_OK, false, ID_A, 3, NULL);
  /* ... and when it comes back, it is. */
  assert_true(copy_file(P("b.pem"), cert_path));
  expect_reload(t, WISP_OK, true, ID_B, 4, NULL);

  /* Key rotated to one that does not match: refused, old ones stay. */
  assert_true(copy_file(P("other.key"), P("live.key")));
  expect_reload(t, WISP_ERR_TLS, false, ID_B, 4, "does not match");
  assert_true(copy_file(P("a.key"), P("live.key")));
  expect_reload(t, WISP_OK, true, ID_B, 5, NULL);

  /* Bundle rotated (more roots): picked up. */
  assert_true(copy_file(P("both-ca.pem"), P("live-ca.pem")));
  expect_reload(t, WISP_OK, true, ID_B, 6, NULL);
  assert_int_equal(wisp_tls_get0_info(t)->bundle_roots, 2);

  /* Rewritten in place (same inode, new size). */
  assert_true(overwrite_in_place(P("a.pem"), cert_path));
  expect_reload(t, WISP_OK, true, ID_A, 7, NULL);

  wisp_tls_free(t);
}

/* ---- connections and handshakes ---------------------------------------------- */

static wisp_tls *loaded(const char *cert, const char *bundle) {
  wisp_tls *t = wisp_tls_new(NULL);
  char err[512] = "";
  char c[1200], b[1200];
  snprintf(c, sizeof(c), "%s", P(cert));
  snprintf(b, sizeof(b), "%s", P(bundle));
  if (wisp_tls_load_files(t, c, P("a.key"), b, err, sizeof(err)) != WISP_OK) {
    wisp_tls_free(t);
    fail_msg("load %s: %s", cert, err);
  }
  return t;
}

static void test_new_ssl(void **state) {
  (void)state;
  wisp_tls *t = wisp_tls_new(NULL);
  wisp_tls_verify v;
  memset(&v, 0, sizeof(v));
  assert_null(wisp_tls_new_ssl(t, true, &v));
  assert_null(wisp_tls_new_ssl(t, false, &v));
  wisp_tls_free(t);

  t = loaded("a.pem", "ca.pem");
  for (int server = 0; server <= 1; server++) {
    memset(&v, 0, sizeof(v));
    SSL *ssl = wisp_tls_new_ssl(t, server, &v);
    assert_non_null(ssl);
    assert_string_equal(v.trust_domain, "example.org");
    assert_false(v.peer_ok);
    assert_string_equal(v.reason, "");
    /* TLS 1.3 only by default. */
    assert_int_equal(SSL_get_min_proto_version(ssl), TLS1_3_VERSION);
    SSL_free(ssl);
  }
  wisp_tls_free(t);

  wisp_tls_opts opts = {.allow_tls12 = true};
  t = wisp_tls_new(&opts);
  char err[512] = "";
  assert_int_equal(wisp_tls_load_files(t, P("a.pem"), P("a.key"), P("ca.pem"), err, sizeof(err)), WISP_OK);
  SSL *ssl = wisp_tls_new_ssl(t, false, &v);
  assert_int_equal(SSL_get_min_proto_version(ssl), TLS1_2_VERSION);
  SSL_free(ssl);
  wisp_tls_free(t);
}

/* The serial of the certificate a server SSL made from |t| presents. */
static long served_serial(wisp_tls *t) {
  wisp_tls_verify v;
  memset(&v, 0, sizeof(v));
  SSL *ssl = wisp_tls_new_ssl(t, true, &v);
  assert_non_null(ssl);
  long serial = ASN1_INTEGER_get(X509_get_serialNumber(SSL_get_certificate(ssl)));
  SSL_free(ssl);
  return serial;
}

/* wisp_tls_adopt (--workers): a worker's wisp_tls follows worker 0's
 * credentials when, and only when, it adopts them again; SSLs made before
 * keep theirs, and the adopted contexts outlive their source. */
static void test_adopt(void **state) {
  (void)state;
  wisp_tls *src = loaded("a.pem", "ca.pem");
  wisp_tls *dst = wisp_tls_new(NULL);
  assert_false(wisp_tls_ready(dst));
  wisp_tls_adopt(dst, src);
  assert_true(wisp_tls_ready(dst));
  assert_memory_equal(wisp_tls_get0_info(dst), wisp_tls_get0_info(src), sizeof(wisp_tls_info));
  assert_int_equal(served_serial(dst), 0x1234abcd);
  wisp_tls_verify v;
  memset(&v, 0, sizeof(v));
  SSL *before = wisp_tls_new_ssl(dst, true, &v);
  assert_string_equal(v.trust_domain, "example.org");

  char err[512] = "";
  assert_int_equal(wisp_tls_load_files(src, P("b.pem"), P("a.key"), P("ca.pem"), err, sizeof(err)), WISP_OK);
  assert_int_equal(served_serial(src), 0xb);
  assert_int_equal(served_serial(dst), 0x1234abcd); /* not until adopted again */
  uint64_t gen = wisp_tls_get0_info(src)->generation;
  assert_int_not_equal(wisp_tls_get0_info(dst)->generation, gen);
  wisp_tls_adopt(dst, src);
  assert_int_equal(served_serial(dst), 0xb);
  assert_int_equal(wisp_tls_get0_info(dst)->generation, gen);
  wisp_tls_adopt(dst, dst); /* a no-op */
  wisp_tls_free(src);
  assert_int_equal(served_serial(dst), 0xb); /* its own references */
  assert_int_equal(ASN1_INTEGER_get(X509_get_serialNumber(SSL_get_certificate(before))), 0x1234abcd);
  SSL_free(before);
  wisp_tls_free(dst);
}

enum { HS_OK, HS_CLIENT_FAILED, HS_SERVER_FAILED, HS_STUCK };

static bool wants_io(SSL *ssl, int ret) {
  int e = SSL_get_error(ssl, ret);
  return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* Runs a handshake between |c| and |s| over an in-memory BIO pair. */
static int handshake(SSL *c, SSL *s, int *out_ret) {
  BIO *bc, *bs;
  assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
  SSL_set_bio(c, bc, bc);
  SSL_set_bio(s, bs, bs);
  SSL_set_connect_state(c);
  SSL_set_accept_state(s);
  bool cdone = false, sdone = false;
  for (int i = 0; i < 100 && !(cdone && sdone); i++) {
    if (!cdone) {
      int r = SSL_do_handshake(c);
      if (r == 1) {
        cdone = true;
      } else if (!wants_io(c, r)) {
        *out_ret = r;
        return HS_CLIENT_FAILED;
      }
    }
    if (!sdone) {
      int r = SSL_do_handshake(s);
      if (r == 1) {
        sdone = true;
      } else if (!wants_io(s, r)) {
        *out_ret = r;
        return HS_SERVER_FAILED;
      }
    }
  }
  return cdone && sdone ? HS_OK : HS_STUCK;
}

typedef struct {
  const char *name;
  const char *srv_cert, *srv_bundle;
  const char *cli_cert, *cli_bundle;
  const char *expect_id; /* the client's route */
  int want;
  const char *reason; /* substring of the failing side's reason */
} hs_case;

static const hs_case kHandshakes[] = {
    {"mutual, expected ID", "a.pem", "ca.pem", "b.pem", "ca.pem", ID_A, HS_OK, NULL},
    {"mutual, any ID in trust domain", "a.pem", "ca.pem", "b.pem", "ca.pem", NULL, HS_OK, NULL},
    {"chain file", "chain.pem", "ca.pem", "b.pem", "ca.pem", ID_A, HS_OK, NULL},
    {"wrong expected ID", "a.pem", "ca.pem", "b.pem", "ca.pem", ID_B, HS_CLIENT_FAILED,
     "peer presented " ID_A ", expected " ID_B},
    {"server outside trust domain", "other-td.pem", "ca.pem", "b.pem", "ca.pem", NULL, HS_CLIENT_FAILED,
     "peer presented spiffe://other.org/x, which is outside our trust domain spiffe://example.org"},
    {"server from an untrusted CA", "a-by-ca2.pem", "both-ca.pem", "b.pem", "ca.pem", ID_A, HS_CLIENT_FAILED,
     "certificate of " ID_A " was issued by a CA that is not in the trust bundle (issuer /CN=other CA)"},
    {"server self-signed", "a-self-signed.pem", "both-ca.pem", "b.pem", "ca.pem", ID_A, HS_CLIENT_FAILED,
     ID_A " presented a self-signed certificate, not one issued by the trust bundle"},
    {"client from an untrusted CA", "a.pem", "ca.pem", "a-by-ca2.pem", "both-ca.pem", ID_A, HS_SERVER_FAILED,
     "certificate of " ID_A " was issued by a CA that is not in the trust bundle"},
    {"client outside trust domain", "a.pem", "ca.pem", "other-td.pem", "ca.pem", ID_A, HS_SERVER_FAILED,
     "peer presented spiffe://other.org/x, which is outside our trust domain spiffe://example.org"},
    /* X.509-SVID leaf rules (spec 4.1, 4.3), both ways */
    {"client leaf without keyUsage", "a.pem", "ca.pem", "a-no-ku.pem", "ca.pem", ID_A, HS_SERVER_FAILED,
     "peer certificate (" ID_A ") is not a valid X.509-SVID leaf: it has no keyUsage extension"},
    {"server leaf without keyUsage", "a-no-ku.pem", "ca.pem", "b.pem", "ca.pem", ID_A, HS_CLIENT_FAILED,
     "peer certificate (" ID_A ") is not a valid X.509-SVID leaf: it has no keyUsage extension"},
    {"client leaf, keyUsage not critical", "a.pem", "ca.pem", "a-ku-noncritical.pem", "ca.pem", ID_A, HS_SERVER_FAILED,
     "not a valid X.509-SVID leaf: its keyUsage extension is not marked critical"},
    {"client leaf with keyCertSign", "a.pem", "ca.pem", "a-ku-certsign.pem", "ca.pem", ID_A, HS_SERVER_FAILED,
     "not a valid X.509-SVID leaf: its keyUsage has keyCertSign or cRLSign"},
    {"server leaf with cRLSign", "a-ku-crlsign.pem", "ca.pem", "b.pem", "ca.pem", ID_A, HS_CLIENT_FAILED,
     "not a valid X.509-SVID leaf: its keyUsage has keyCertSign or cRLSign"},
    {"client leaf that is a CA", "a.pem", "ca.pem", "a-ca.pem", "ca.pem", ID_A, HS_SERVER_FAILED,
     "not a valid X.509-SVID leaf: it is a CA certificate (basicConstraints CA:TRUE)"},
};

static void test_handshakes(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kHandshakes) / sizeof(kHandshakes[0]); i++) {
    const hs_case *h = &kHandshakes[i];
    print_message("# case %zu: %s\n", i, h->name);
    wisp_tls *st = loaded(h->srv_cert, h->srv_bundle);
    wisp_tls *ct = loaded(h->cli_cert, h->cli_bundle);
    wisp_tls_verify sv, cv;
    memset(&sv, 0, sizeof(sv));
    memset(&cv, 0, sizeof(cv));
    cv.expect_id = h->expect_id;
    SSL *s = wisp_tls_new_ssl(st, true, &sv);
    SSL *c = wisp_tls_new_ssl(ct, false, &cv);
    assert_non_null(s);
    assert_non_null(c);
    int ret = 0;
    int got = handshake(c, s, &ret);
    if (got == HS_CLIENT_FAILED) wisp_tls_describe_failure(&cv, c, ret);
    if (got == HS_SERVER_FAILED) wisp_tls_describe_failure(&sv, s, ret);
    const uint8_t *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(c, &alpn, &alpn_len);
    char alpn_s[8];
    snprintf(alpn_s, sizeof(alpn_s), "%.*s", (int)alpn_len, alpn ? (const char *)alpn : "");
    SSL_free(s);
    SSL_free(c);
    wisp_tls_free(st);
    wisp_tls_free(ct);
    ERR_clear_error();
    print_message("#   got %d; client '%s'; server '%s'\n", got, cv.reason, sv.reason);
    assert_int_equal(got, h->want);
    if (h->want == HS_OK) {
      assert_true(cv.peer_ok);
      assert_true(sv.peer_ok);
      assert_string_equal(cv.reason, "");
      assert_string_equal(sv.reason, "");
      assert_string_equal(cv.peer.id, strcmp(h->srv_cert, "b.pem") == 0 ? ID_B : ID_A);
      assert_string_equal(sv.peer.id, ID_B);
      assert_string_equal(alpn_s, "h2");
    } else {
      const wisp_tls_verify *failed = h->want == HS_CLIENT_FAILED ? &cv : &sv;
      assert_false(failed->peer_ok);
      if (!strstr(failed->reason, h->reason)) fail_msg("reason '%s' lacks '%s'", failed->reason, h->reason);
    }
  }
}

/* A raw BoringSSL client (not wisp): for the failures wisp's own client
 * never causes. */
static SSL *raw_client(SSL_CTX **out_ctx, uint16_t max_version, bool with_cert) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  assert_non_null(ctx);
  SSL_CTX_set_max_proto_version(ctx, max_version);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  if (with_cert) {
    assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, P("b.pem")), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, P("a.key"), SSL_FILETYPE_PEM), 1);
  }
  static const uint8_t h2[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, h2, sizeof(h2));
  *out_ctx = ctx;
  return SSL_new(ctx);
}

static void test_describe_failure(void **state) {
  (void)state;
  wisp_tls *st = loaded("a.pem", "ca.pem");
  struct {
    const char *name;
    uint16_t max_version;
    bool with_cert;
    const char *reason;
  } cases[] = {
      {"client offers TLS 1.2 only", TLS1_2_VERSION, true, "peer does not support TLS 1.3"},
      {"client presents no certificate", TLS1_3_VERSION, false, "peer presented no client certificate"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    SSL_CTX *cctx;
    SSL *c = raw_client(&cctx, cases[i].max_version, cases[i].with_cert);
    wisp_tls_verify sv;
    memset(&sv, 0, sizeof(sv));
    SSL *s = wisp_tls_new_ssl(st, true, &sv);
    int ret = 0;
    int got = handshake(c, s, &ret);
    if (got == HS_SERVER_FAILED) wisp_tls_describe_failure(&sv, s, ret);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    ERR_clear_error();
    print_message("# %s: got %d, '%s'\n", cases[i].name, got, sv.reason);
    assert_int_equal(got, HS_SERVER_FAILED);
    if (!strstr(sv.reason, cases[i].reason)) fail_msg("%s: reason '%s'", cases[i].name, sv.reason);
  }

  /* Plaintext HTTP on the mTLS port. */
  wisp_tls_verify sv;
  memset(&sv, 0, sizeof(sv));
  SSL *s = wisp_tls_new_ssl(st, true, &sv);
  static const char kHttp[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  BIO *rb = BIO_new_mem_buf(kHttp, sizeof(kHttp) - 1);
  BIO *wb = BIO_new(BIO_s_mem());
  SSL_set_bio(s, rb, wb);
  SSL_set_accept_state(s);
  int ret = SSL_do_handshake(s);
  assert_true(ret <= 0);
  wisp_tls_describe_failure(&sv, s, ret);
  assert_string_equal(sv.reason, "peer did not speak TLS (plaintext on an mTLS port?)");
  assert_int_equal(ERR_peek_error(), 0); /* the queue is cleared */
  /* A reason already set is kept. */
  snprintf(sv.reason, sizeof(sv.reason), "first");
  wisp_tls_describe_failure(&sv, s, ret);
  assert_string_equal(sv.reason, "first");
  SSL_free(s);

  /* The peer hung up before saying anything. */
  memset(&sv, 0, sizeof(sv));
  s = wisp_tls_new_ssl(st, true, &sv);
  rb = BIO_new_mem_buf("", 0);
  wb = BIO_new(BIO_s_mem());
  SSL_set_bio(s, rb, wb);
  SSL_set_accept_state(s);
  ret = SSL_do_handshake(s);
  assert_true(ret <= 0);
  wisp_tls_describe_failure(&sv, s, ret);
  print_message("# eof: %d '%s'\n", ret, sv.reason);
  assert_non_null(strstr(sv.reason, "TLS handshake failed"));
  SSL_free(s);
  wisp_tls_free(st);
}

/* require_alpn: a client must say h2 or wisp-l4; without the option (the
 * agent) a client offering no ALPN is still served. */
static void test_require_alpn(void **state) {
  (void)state;
  static const uint8_t kH2[] = {2, 'h', '2'};
  static const uint8_t kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  struct {
    const char *name;
    bool require;
    const uint8_t *alpn;
    size_t alpn_len;
    int want;
    const char *reason;
  } cases[] = {
      {"no ALPN, required", true, NULL, 0, HS_SERVER_FAILED, "peer offered no ALPN protocol"},
      {"http/1.1 only, required", true, kHttp11, sizeof(kHttp11), HS_SERVER_FAILED,
       "peer offered ALPN without h2 or wisp-l4"},
      {"h2, required", true, kH2, sizeof(kH2), HS_OK, ""},
      {"no ALPN, not required", false, NULL, 0, HS_OK, ""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    wisp_tls_opts opts = {.require_alpn = cases[i].require};
    wisp_tls *st = wisp_tls_new(&opts);
    char err[512] = "";
    assert_int_equal(wisp_tls_load_files(st, P("a.pem"), P("a.key"), P("ca.pem"), err, sizeof(err)), WISP_OK);
    SSL_CTX *cctx;
    SSL *c = raw_client(&cctx, TLS1_3_VERSION, true);
    assert_int_equal(SSL_set_alpn_protos(c, cases[i].alpn, cases[i].alpn_len), 0);
    wisp_tls_verify sv;
    memset(&sv, 0, sizeof(sv));
    SSL *s = wisp_tls_new_ssl(st, true, &sv);
    int ret = 0;
    int got = handshake(c, s, &ret);
    if (got == HS_SERVER_FAILED) wisp_tls_describe_failure(&sv, s, ret);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    wisp_tls_free(st);
    ERR_clear_error();
    print_message("# %s: got %d, '%s'\n", cases[i].name, got, sv.reason);
    assert_int_equal(got, cases[i].want);
    if (!strstr(sv.reason, cases[i].reason)) fail_msg("%s: reason '%s'", cases[i].name, sv.reason);
  }
}

/* An SSL handed from one owner to another (the proxy's L4 hand-over) takes
 * its verification state along: the old owner's copy may be freed at once.
 * An SSL left with none refuses its handshake instead of reading freed
 * memory (under ASan this would report it). */
static void test_verify_moves_with_the_ssl(void **state) {
  (void)state;
  wisp_tls *st = loaded("a.pem", "ca.pem");
  wisp_tls *ct = loaded("b.pem", "ca.pem");
  wisp_tls_verify *first = calloc(1, sizeof(*first));
  wisp_tls_verify cv, moved;
  memset(&cv, 0, sizeof(cv));
  SSL *s = wisp_tls_new_ssl(st, true, first);
  SSL *c = wisp_tls_new_ssl(ct, false, &cv);
  assert_ptr_equal(wisp_tls_get0_verify(s), first);
  int ret = 0;
  assert_int_equal(handshake(c, s, &ret), HS_OK);
  assert_true(first->peer_ok);
  moved = *first;
  wisp_tls_set_verify(s, &moved);
  free(first);
  assert_ptr_equal(wisp_tls_get0_verify(s), &moved);
  assert_string_equal(wisp_tls_get0_verify(s)->peer.id, ID_B);
  /* The connection goes on after the hand-over. */
  static const char kMsg[] = "after the hand-over";
  char got[32] = "";
  assert_int_equal(SSL_write(c, kMsg, sizeof(kMsg)), (int)sizeof(kMsg));
  assert_int_equal(SSL_read(s, got, sizeof(got)), (int)sizeof(kMsg));
  assert_string_equal(got, kMsg);
  SSL_free(s);
  SSL_free(c);

  /* No verification state: the handshake is refused, for a server with or
   * without require_alpn, and for a client. */
  for (int i = 0; i < 3; i++) {
    wisp_tls_opts opts = {.require_alpn = i == 1};
    wisp_tls *srv = wisp_tls_new(&opts);
    char err[512] = "";
    assert_int_equal(wisp_tls_load_files(srv, P("a.pem"), P("a.key"), P("ca.pem"), err, sizeof(err)), WISP_OK);
    wisp_tls_verify sv;
    memset(&sv, 0, sizeof(sv));
    memset(&cv, 0, sizeof(cv));
    s = wisp_tls_new_ssl(srv, true, &sv);
    c = wisp_tls_new_ssl(ct, false, &cv);
    wisp_tls_set_verify(i == 2 ? c : s, NULL);
    assert_null(wisp_tls_get0_verify(i == 2 ? c : s));
    int got_hs = handshake(c, s, &ret);
    print_message("# no verify state on the %s (require_alpn %d): %d\n", i == 2 ? "client" : "server", i == 1, got_hs);
    assert_int_equal(got_hs, i == 2 ? HS_CLIENT_FAILED : HS_SERVER_FAILED);
    SSL_free(s);
    SSL_free(c);
    wisp_tls_free(srv);
    ERR_clear_error();
  }
  wisp_tls_free(st);
  wisp_tls_free(ct);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_errors),
      cmocka_unit_test(test_load_success_info),
      cmocka_unit_test(test_load_chain_and_multi_root_bundle),
      cmocka_unit_test(test_failed_load_keeps_old_credentials),
      cmocka_unit_test(test_reload_if_changed),
      cmocka_unit_test(test_new_ssl),
      cmocka_unit_test(test_adopt),
      cmocka_unit_test(test_handshakes),
      cmocka_unit_test(test_describe_failure),
      cmocka_unit_test(test_require_alpn),
      cmocka_unit_test(test_verify_moves_with_the_ssl),
  };
  return WISP_RUN_GROUP_TESTS(tests, group_setup, group_teardown);
}
