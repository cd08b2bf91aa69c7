/* Unit tests for lib/wisp_spiffe: the SPIFFE ID parser (table from the
 * SPIFFE ID spec) and X.509-SVID identity extraction from certificates built
 * in-test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/x509v3.h>

#include "lib/wisp_spiffe.h"
#include "tests/unit/test_x509.h"
#include "tests/unit/test_util.h"

/* ---- wisp_spiffe_parse ---------------------------------------------------- */

typedef struct {
  const char *in;
  size_t len; /* 0: strlen(in) */
  wisp_err want;
  const char *td;   /* expected trust domain (valid cases) */
  const char *path; /* expected path, "" for none (valid cases) */
  const char *why;  /* substring of the error message (invalid cases) */
} parse_case;

static const parse_case kParseCases[] = {
    /* valid */
    {"spiffe://example.org", 0, WISP_OK, "example.org", "", NULL},
    {"spiffe://example.org/workload", 0, WISP_OK, "example.org", "/workload", NULL},
    {"spiffe://example.org/ns/default/sa/web", 0, WISP_OK, "example.org", "/ns/default/sa/web", NULL},
    {"spiffe://a-b_c.d0/x", 0, WISP_OK, "a-b_c.d0", "/x", NULL},
    {"spiffe://example.org/AZaz09.-_", 0, WISP_OK, "example.org", "/AZaz09.-_", NULL},
    {"spiffe://example.org/.../a", 0, WISP_OK, "example.org", "/.../a", NULL},
    {"spiffe://example.org/.hidden/..x", 0, WISP_OK, "example.org", "/.hidden/..x", NULL},
    {"spiffe://10.0.0.1/x", 0, WISP_OK, "10.0.0.1", "/x", NULL},
    {"spiffe://x", 0, WISP_OK, "x", "", NULL},
    /* |len| bounds the input: only the first 20 bytes are the ID */
    {"spiffe://example.org/ignored", 20, WISP_OK, "example.org", "", NULL},
    /* scheme */
    {"", 0, WISP_ERR_IDENTITY, NULL, NULL, "spiffe://"},
    {"spiffe:", 0, WISP_ERR_IDENTITY, NULL, NULL, "spiffe://"},
    {"http://example.org/x", 0, WISP_ERR_IDENTITY, NULL, NULL, "spiffe://"},
    {"SPIFFE://example.org/x", 0, WISP_ERR_IDENTITY, NULL, NULL, "spiffe://"},
    {"spiffe:/example.org/x", 0, WISP_ERR_IDENTITY, NULL, NULL, "spiffe://"},
    {"example.org/x", 0, WISP_ERR_IDENTITY, NULL, NULL, "spiffe://"},
    {"spiffe://example.org/x", 9, WISP_ERR_IDENTITY, NULL, NULL, "trust domain is empty"},
    /* trust domain */
    {"spiffe://", 0, WISP_ERR_IDENTITY, NULL, NULL, "trust domain is empty"},
    {"spiffe:///path", 0, WISP_ERR_IDENTITY, NULL, NULL, "trust domain is empty"},
    {"spiffe://Example.org/x", 0, WISP_ERR_IDENTITY, NULL, NULL, "trust domain contains"},
    {"spiffe://EXAMPLE.ORG", 0, WISP_ERR_IDENTITY, NULL, NULL, "trust domain contains"},
    {"spiffe://example.org:8080/x", 0, WISP_ERR_IDENTITY, NULL, NULL, "trust domain contains"},
    {"spiffe://example.org:/x", 0, WISP_ERR_IDENTITY, NULL, NULL, "trust domain contains"},
    {"spiffe://user@example.org/x", 0, WISP_ERR_IDENTITY, NULL, NULL, "trust domain contains"},
    {"spiffe://user:pw@example.org/x", 0, WISP_ERR_IDENTITY, NULL, NULL, "trust domain contains"},
    {"spiffe://exa%6dple.org/x", 0, WISP_ERR_IDENTITY, NULL, NULL, "trust domain contains"},
    {"spiffe://exa mple.org/x", 0, WISP_ERR_IDENTITY, NULL, NULL, "trust domain contains"},
    {"spiffe://[::1]/x", 0, WISP_ERR_IDENTITY, NULL, NULL, "trust domain contains"},
    {"spiffe://example.org?q=1", 0, WISP_ERR_IDENTITY, NULL, NULL, "trust domain contains"},
    {"spiffe://example.org#frag", 0, WISP_ERR_IDENTITY, NULL, NULL, "trust domain contains"},
    {"spiffe://ex\xc3\xa4mple.org/x", 0, WISP_ERR_IDENTITY, NULL, NULL, "trust domain contains"},
    /* path */
    {"spiffe://example.org/", 0, WISP_ERR_IDENTITY, NULL, NULL, "empty segment"},
    {"spiffe://example.org/x/", 0, WISP_ERR_IDENTITY, NULL, NULL, "empty segment"},
    {"spiffe://example.org//x", 0, WISP_ERR_IDENTITY, NULL, NULL, "empty segment"},
    {"spiffe://example.org/x//y", 0, WISP_ERR_IDENTITY, NULL, NULL, "empty segment"},
    {"spiffe://example.org/.", 0, WISP_ERR_IDENTITY, NULL, NULL, "'.' or '..'"},
    {"spiffe://example.org/./x", 0, WISP_ERR_IDENTITY, NULL, NULL, "'.' or '..'"},
    {"spiffe://example.org/x/..", 0, WISP_ERR_IDENTITY, NULL, NULL, "'.' or '..'"},
    {"spiffe://example.org/../x", 0, WISP_ERR_IDENTITY, NULL, NULL, "'.' or '..'"},
    {"spiffe://example.org/x?q=1", 0, WISP_ERR_IDENTITY, NULL, NULL, "path contains"},
    {"spiffe://example.org/x#frag", 0, WISP_ERR_IDENTITY, NULL, NULL, "path contains"},
    {"spiffe://example.org/%41", 0, WISP_ERR_IDENTITY, NULL, NULL, "path contains"},
    {"spiffe://example.org/a%2Fb", 0, WISP_ERR_IDENTITY, NULL, NULL, "path contains"},
    {"spiffe://example.org/x y", 0, WISP_ERR_IDENTITY, NULL, NULL, "path contains"},
    {"spiffe://example.org/caf\xc3\xa9", 0, WISP_ERR_IDENTITY, NULL, NULL, "path contains"},
    {"spiffe://example.org/a:b", 0, WISP_ERR_IDENTITY, NULL, NULL, "path contains"},
    {"spiffe://example.org/a\\b", 0, WISP_ERR_IDENTITY, NULL, NULL, "path contains"},
    /* an embedded NUL is a byte like any other, not the end of the ID */
    {"spiffe://example.org/a\0b", 24, WISP_ERR_IDENTITY, NULL, NULL, "path contains"},
    {"spiffe://exam\0ple.org", 21, WISP_ERR_IDENTITY, NULL, NULL, "trust domain contains"},
};

static void test_parse_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kParseCases) / sizeof(kParseCases[0]); i++) {
    const parse_case *c = &kParseCases[i];
    size_t len = c->len ? c->len : strlen(c->in);
    wisp_spiffe_id id;
    char why[256] = "";
    memset(&id, 0x5a, sizeof(id));
    wisp_err rc = wisp_spiffe_parse(&id, c->in, len, why, sizeof(why));
    print_message("# case %zu: %.*s -> %d (%s)\n", i, (int)len, c->in, rc, why);
    assert_int_equal(rc, c->want);
    if (c->want == WISP_OK) {
      assert_int_equal(strlen(id.id), len);
      assert_memory_equal(id.id, c->in, len);
      assert_string_equal(id.trust_domain, c->td);
      assert_int_equal(id.path_off, strlen("spiffe://") + strlen(c->td));
      assert_string_equal(id.id + id.path_off, c->path);
    } else {
      assert_non_null(strstr(why, c->why));
    }
  }
}

/* Builds "spiffe://" + td_len 'a's + path of total length |total|. */
static char *make_id(size_t td_len, size_t total) {
  char *s = malloc(total + 1);
  assert_non_null(s);
  memcpy(s, "spiffe://", 9);
  memset(s + 9, 'a', td_len);
  size_t o = 9 + td_len;
  if (o < total) {
    s[o++] = '/';
    memset(s + o, 'p', total - o);
  }
  s[total] = '\0';
  return s;
}

static void test_parse_length_limits(void **state) {
  (void)state;
  struct {
    size_t td_len, total;
    wisp_err want;
    const char *why;
  } cases[] = {
      {255, 9 + 255, WISP_OK, NULL},
      {256, 9 + 256, WISP_ERR_IDENTITY, "255"},
      {1000, 9 + 1000 + 10, WISP_ERR_IDENTITY, "255"},
      {11, WISP_SPIFFE_MAX, WISP_OK, NULL},
      {11, WISP_SPIFFE_MAX + 1, WISP_ERR_IDENTITY, "2048"},
      {11, 100000, WISP_ERR_IDENTITY, "2048"},
      {255, WISP_SPIFFE_MAX, WISP_OK, NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *s = make_id(cases[i].td_len, cases[i].total);
    wisp_spiffe_id id;
    char why[128] = "";
    assert_int_equal(wisp_spiffe_parse(&id, s, cases[i].total, why, sizeof(why)), cases[i].want);
    if (cases[i].want == WISP_OK) {
      assert_int_equal(strlen(id.id), cases[i].total);
      assert_int_equal(strlen(id.trust_domain), cases[i].td_len);
      assert_int_equal(id.path_off, 9 + cases[i].td_len);
    } else {
      assert_non_null(strstr(why, cases[i].why));
    }
    free(s);
  }
}

static void test_parse_err_buf_optional_and_bounded(void **state) {
  (void)state;
  wisp_spiffe_id id;
  /* No error buffer at all. */
  assert_int_equal(wisp_spiffe_parse(&id, "bogus", 5, NULL, 0), WISP_ERR_IDENTITY);
  assert_int_equal(wisp_spiffe_parse(&id, "bogus", 5, NULL, 100), WISP_ERR_IDENTITY);
  /* A tiny buffer is truncated, NUL-terminated, and nothing beyond it is written. */
  char small[8];
  memset(small, 'X', sizeof(small));
  char guard = small[7];
  assert_int_equal(wisp_spiffe_parse(&id, "bogus", 5, small, 4), WISP_ERR_IDENTITY);
  assert_int_equal(strlen(small), 3);
  assert_int_equal(small[4], 'X');
  assert_int_equal(guard, 'X');
  /* Success leaves the error buffer alone. */
  char why[16] = "untouched";
  assert_int_equal(wisp_spiffe_parse(&id, "spiffe://td/x", 13, why, sizeof(why)), WISP_OK);
  assert_string_equal(why, "untouched");
}

/* ---- wisp_spiffe_from_cert ------------------------------------------------ */

static EVP_PKEY *g_key;

static int group_setup(void **state) {
  (void)state;
  g_key = test_new_key();
  return g_key ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  EVP_PKEY_free(g_key);
  return 0;
}

typedef struct {
  const char *name;
  test_san sans[3];
  size_t nsans;
  bool no_san_ext;
  wisp_err want;
  const char *id;  /* valid */
  const char *why; /* invalid */
} cert_case;

static const cert_case kCertCases[] = {
    {"no SAN extension", {{0}}, 0, true, WISP_ERR_IDENTITY, NULL, "no URI SAN"},
    {"empty SAN extension", {{0}}, 0, false, WISP_ERR_IDENTITY, NULL, "no URI SAN"},
    {"DNS SAN only", {{GEN_DNS, "web.example.org", 0}}, 1, false, WISP_ERR_IDENTITY, NULL, "no URI SAN"},
    {"one SPIFFE URI", {{GEN_URI, "spiffe://example.org/web", 0}}, 1, false, WISP_OK, "spiffe://example.org/web", NULL},
    {"SPIFFE URI and DNS",
     {{GEN_DNS, "web.example.org", 0}, {GEN_URI, "spiffe://example.org/web", 0}},
     2,
     false,
     WISP_OK,
     "spiffe://example.org/web",
     NULL},
    {"two URI SANs",
     {{GEN_URI, "spiffe://example.org/a", 0}, {GEN_URI, "spiffe://example.org/b", 0}},
     2,
     false,
     WISP_ERR_IDENTITY,
     NULL,
     "more than one URI SAN"},
    {"SPIFFE and https URIs",
     {{GEN_URI, "spiffe://example.org/a", 0}, {GEN_URI, "https://example.org/", 0}},
     2,
     false,
     WISP_ERR_IDENTITY,
     NULL,
     "more than one URI SAN"},
    {"non-SPIFFE URI",
     {{GEN_URI, "https://example.org/web", 0}},
     1,
     false,
     WISP_ERR_IDENTITY,
     NULL,
     "URI SAN is not a SPIFFE ID: does not start with spiffe://"},
    {"invalid SPIFFE URI",
     {{GEN_URI, "spiffe://Example.org/web", 0}},
     1,
     false,
     WISP_ERR_IDENTITY,
     NULL,
     "URI SAN is not a SPIFFE ID: trust domain"},
    {"URI SAN with NUL",
     {{GEN_URI, "spiffe://example.org/a\0b", 24}},
     1,
     false,
     WISP_ERR_IDENTITY,
     NULL,
     "URI SAN is not a SPIFFE ID: path contains"},
};

static X509 *cert_with(const test_san *sans, size_t n, bool no_ext, const char *cn) {
  test_cert_spec spec = {.cn = cn, .sans = no_ext ? NULL : sans, .nsans = n};
  static const test_san none[1];
  if (!no_ext && n == 0) spec.sans = none; /* extension present, zero names */
  X509 *x = test_new_cert(&spec, g_key, NULL, NULL);
  assert_non_null(x);
  return x;
}

static void test_from_cert_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kCertCases) / sizeof(kCertCases[0]); i++) {
    const cert_case *c = &kCertCases[i];
    print_message("# case %zu: %s\n", i, c->name);
    X509 *x = cert_with(c->sans, c->nsans, c->no_san_ext, "workload");
    wisp_spiffe_id id;
    char why[256] = "";
    assert_int_equal(wisp_spiffe_from_cert(&id, x, why, sizeof(why)), c->want);
    if (c->want == WISP_OK) {
      assert_string_equal(id.id, c->id);
      assert_string_equal(id.trust_domain, "example.org");
      assert_string_equal(id.id + id.path_off, "/web");
    } else {
      assert_non_null(strstr(why, c->why));
    }
    /* A NULL error buffer is fine too. */
    assert_int_equal(wisp_spiffe_from_cert(&id, x, NULL, 0), c->want);
    X509_free(x);
  }
}

/* The URI SAN's tag turned into a constructed otherName ([0]) that does not
 * decode: refused as such, and no BoringSSL error is left queued for a
 * later SSL call on this thread (found by fuzzing, tests/fuzz/pem_fuzz). */
static void test_from_cert_undecodable_san(void **state) {
  (void)state;
  test_san san = {GEN_URI, "spiffe://example.org/web", 0};
  X509 *x = cert_with(&san, 1, false, "workload");
  uint8_t *der = NULL;
  int len = i2d_X509(x, &der);
  assert_true(len > 0);
  X509_free(x);
  static const char kUri[] = "spiffe://example.org/web";
  uint8_t *at = NULL;
  for (int i = 2; i + (int)sizeof(kUri) - 1 <= len; i++)
    if (der[i - 2] == 0x86 && memcmp(der + i, kUri, sizeof(kUri) - 1) == 0) at = der + i - 2;
  assert_non_null(at);
  *at = 0xa0; /* [0] constructed: an otherName holding "spiffe://..." */
  const uint8_t *p = der;
  x = d2i_X509(NULL, &p, len);
  assert_non_null(x);
  ERR_clear_error();
  wisp_spiffe_id id;
  char why[256] = "";
  assert_int_equal(wisp_spiffe_from_cert(&id, x, why, sizeof(why)), WISP_ERR_IDENTITY);
  assert_string_equal(why, "certificate's subjectAltName does not decode");
  assert_int_equal(ERR_peek_error(), 0);
  char who[300];
  wisp_spiffe_describe_cert(x, who, sizeof(who));
  assert_string_equal(who, "subject /CN=workload");
  assert_int_equal(ERR_peek_error(), 0);
  X509_free(x);
  OPENSSL_free(der);
}

static void test_from_cert_long_uri(void **state) {
  (void)state;
  char *uri = make_id(11, 3000);
  test_san san = {GEN_URI, uri, 0};
  X509 *x = cert_with(&san, 1, false, NULL);
  wisp_spiffe_id id;
  char why[256] = "";
  assert_int_equal(wisp_spiffe_from_cert(&id, x, why, sizeof(why)), WISP_ERR_IDENTITY);
  assert_non_null(strstr(why, "2048"));
  X509_free(x);
  free(uri);
}

/* X.509-SVID leaf rules (spec 4.1, 4.3): each broken one named. */
typedef struct {
  const char *name;
  bool is_ca, not_ca, noncritical;
  long key_usage;
  const char *why; /* NULL: a valid leaf */
} leaf_case;

static const leaf_case kLeafCases[] = {
    {"digitalSignature, critical", false, true, false, KU_DIGITAL_SIGNATURE, NULL},
    {"no basicConstraints", false, false, false, KU_DIGITAL_SIGNATURE, NULL},
    {"digitalSignature and keyAgreement", false, true, false, KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT, NULL},
    {"no keyUsage", false, true, false, TEST_KU_NONE, "it has no keyUsage extension"},
    {"keyUsage not critical", false, true, true, KU_DIGITAL_SIGNATURE, "its keyUsage extension is not marked critical"},
    {"keyEncipherment only", false, true, false, KU_KEY_ENCIPHERMENT, "its keyUsage lacks digitalSignature"},
    {"keyCertSign", false, true, false, KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN, "keyCertSign or cRLSign"},
    {"cRLSign", false, true, false, KU_DIGITAL_SIGNATURE | KU_CRL_SIGN, "keyCertSign or cRLSign"},
    {"keyCertSign, no basicConstraints", false, false, false, KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN,
     "keyCertSign or cRLSign"},
    {"CA:TRUE", true, false, false, KU_DIGITAL_SIGNATURE, "it is a CA certificate (basicConstraints CA:TRUE)"},
};

static void test_leaf_refused(void **state) {
  (void)state;
  test_san san = {GEN_URI, "spiffe://example.org/web", 0};
  for (size_t i = 0; i < sizeof(kLeafCases) / sizeof(kLeafCases[0]); i++) {
    const leaf_case *c = &kLeafCases[i];
    print_message("# case %zu: %s\n", i, c->name);
    test_cert_spec spec = {.cn = "workload",
                           .sans = &san,
                           .nsans = 1,
                           .is_ca = c->is_ca,
                           .not_ca = c->not_ca,
                           .key_usage = c->key_usage,
                           .key_usage_noncritical = c->noncritical};
    X509 *x = test_new_cert(&spec, g_key, NULL, NULL);
    assert_non_null(x);
    const char *why = wisp_spiffe_leaf_refused(x);
    if (!c->why) {
      if (why) fail_msg("refused: %s", why);
    } else if (!why || !strstr(why, c->why)) {
      fail_msg("got '%s', want '%s'", why ? why : "(accepted)", c->why);
    }
    assert_int_equal(ERR_peek_error(), 0);
    X509_free(x);
  }
}

static void test_describe_cert(void **state) {
  (void)state;
  test_san svid = {GEN_URI, "spiffe://example.org/web", 0};
  test_san dns = {GEN_DNS, "web.example.org", 0};
  X509 *a = cert_with(&svid, 1, false, "ignored");
  X509 *b = cert_with(&dns, 1, false, "legacy-web");
  char out[256];
  wisp_spiffe_describe_cert(a, out, sizeof(out));
  assert_string_equal(out, "spiffe://example.org/web");
  wisp_spiffe_describe_cert(b, out, sizeof(out));
  assert_non_null(strstr(out, "subject"));
  assert_non_null(strstr(out, "CN=legacy-web"));
  /* Always NUL-terminated, even when cut. */
  char tiny[6];
  wisp_spiffe_describe_cert(a, tiny, sizeof(tiny));
  assert_string_equal(tiny, "spiff");
  X509_free(a);
  X509_free(b);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_table),
      cmocka_unit_test(test_parse_length_limits),
      cmocka_unit_test(test_parse_err_buf_optional_and_bounded),
      cmocka_unit_test(test_from_cert_table),
      cmocka_unit_test(test_from_cert_undecodable_san),
      cmocka_unit_test(test_from_cert_long_uri),
      cmocka_unit_test(test_describe_cert),
      cmocka_unit_test(test_leaf_refused),
  };
  return WISP_RUN_GROUP_TESTS(tests, group_setup, group_teardown);
}
