/* Unit tests for lib/wisp_jwt: the fixed vectors of tests/unit/jwt/
 * (tokens minted by python3-jwt with openssl-made keys, make_vectors.py),
 * each with the verdict and a phrase of the reason; JWKS parsing; leeway
 * bounds; strict base64url. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/wisp_jwt.h"
#include "tests/unit/test_util.h"

#define VECTORS "tests/unit/jwt/vectors.json"

static json_t *g_vectors;
static wisp_jwks *g_keys;

static int group_setup(void **state) {
  json_error_t je;
  g_vectors = json_load_file(VECTORS, JSON_REJECT_DUPLICATES, &je);
  if (!g_vectors) {
    fprintf(stderr, "%s: %s\n", VECTORS, je.text);
    return -1;
  }
  char *jwks = json_dumps(json_object_get(g_vectors, "jwks"), JSON_COMPACT);
  char err[256];
  size_t skipped = 0;
  wisp_err rc = wisp_jwks_parse(&g_keys, &skipped, jwks, strlen(jwks), err, sizeof(err));
  free(jwks);
  if (rc != WISP_OK) fprintf(stderr, "jwks: %s\n", err);
  return rc == WISP_OK ? 0 : -1;
}

static int group_teardown(void **state) {
  wisp_jwks_free(g_keys);
  json_decref(g_vectors);
  return 0;
}

static wisp_jwt_expect expect_at(int64_t now) {
  return (wisp_jwt_expect){.issuer = json_string_value(json_object_get(g_vectors, "issuer")),
                           .audience = "wisp", .now = now, .leeway = WISP_JWT_DEFAULT_LEEWAY};
}

static int64_t vectors_now(void) { return json_integer_value(json_object_get(g_vectors, "now")); }

/* The set keeps the RSA and P-256 keys and skips the 1024-bit RSA key, the
 * Ed25519 key and the encryption key. */
static void test_jwks_kept_and_skipped(void **state) {
  assert_int_equal(wisp_jwks_count(g_keys), 2);
  char *jwks = json_dumps(json_object_get(g_vectors, "jwks"), JSON_COMPACT);
  wisp_jwks *k = NULL;
  size_t skipped = 0;
  assert_int_equal(wisp_jwks_parse(&k, &skipped, jwks, strlen(jwks), NULL, 0), WISP_OK);
  assert_int_equal(skipped, 3);
  wisp_jwks_free(k);
  free(jwks);
}

static void test_vectors(void **state) {
  json_t *cases = json_object_get(g_vectors, "cases");
  assert_true(json_array_size(cases) >= 30);
  wisp_jwt_expect want = expect_at(vectors_now());
  for (size_t i = 0; i < json_array_size(cases); i++) {
    json_t *c = json_array_get(cases, i);
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *tok = json_string_value(json_object_get(c, "token"));
    const char *verdict = json_string_value(json_object_get(c, "verdict"));
    const char *phrase = json_string_value(json_object_get(c, "why"));
    wisp_jwt_claims got;
    char why[512];
    memset(&got, 0x5a, sizeof(got));
    wisp_jwt_verdict v = wisp_jwt_verify(&got, g_keys, &want, tok, strlen(tok), why, sizeof(why));
    print_message("# %s: %s\n", name, v == WISP_JWT_OK ? "accepted" : why);
    if (strcmp(wisp_jwt_verdict_name(v), verdict) != 0) fail_msg("%s: got %s (%s), want %s", name,
                                                                 wisp_jwt_verdict_name(v), why, verdict);
    if (v == WISP_JWT_OK) {
      assert_string_equal(got.ns, json_string_value(json_object_get(c, "ns")));
      assert_string_equal(got.sa_name, json_string_value(json_object_get(c, "sa")));
      assert_true(got.exp > 0);
      assert_string_equal(why, "");
    } else {
      /* The reason starts with the verdict and names what was wrong. */
      assert_int_equal(strncmp(why, verdict, strlen(verdict)), 0);
      if (!strstr(why, phrase)) fail_msg("%s: reason \"%s\" lacks \"%s\"", name, why, phrase);
      assert_int_equal(got.ns[0], 0x5a); /* |out| untouched on refusal */
    }
  }
}

/* Leeway: the RS256 token (exp = now + 600) is good up to exp + leeway. */
static void test_leeway_bounds(void **state) {
  json_t *c = json_array_get(json_object_get(g_vectors, "cases"), 0);
  const char *tok = json_string_value(json_object_get(c, "token"));
  int64_t exp = vectors_now() + 600;
  wisp_jwt_claims got;
  wisp_jwt_expect at = expect_at(exp + WISP_JWT_DEFAULT_LEEWAY);
  assert_int_equal(wisp_jwt_verify(&got, g_keys, &at, tok, strlen(tok), NULL, 0), WISP_JWT_OK);
  at.now++;
  assert_int_equal(wisp_jwt_verify(&got, g_keys, &at, tok, strlen(tok), NULL, 0), WISP_JWT_EXPIRED);
  at = expect_at(vectors_now() - WISP_JWT_DEFAULT_LEEWAY); /* nbf = iat = now */
  assert_int_equal(wisp_jwt_verify(&got, g_keys, &at, tok, strlen(tok), NULL, 0), WISP_JWT_OK);
  at.now--;
  assert_int_equal(wisp_jwt_verify(&got, g_keys, &at, tok, strlen(tok), NULL, 0), WISP_JWT_NOT_YET_VALID);
  at = expect_at(vectors_now());
  at.audience = "vault";
  assert_int_equal(wisp_jwt_verify(&got, g_keys, &at, tok, strlen(tok), NULL, 0), WISP_JWT_WRONG_AUDIENCE);
  /* No keys at all: unknown key, never a crash. */
  at = expect_at(vectors_now());
  assert_int_equal(wisp_jwt_verify(&got, NULL, &at, tok, strlen(tok), NULL, 0), WISP_JWT_UNKNOWN_KEY);
}

/* An ES256 token naming no kid, against a set of RSA keys only (a usual
 * cluster): refused as an unknown key. It once dereferenced the missing kid
 * while writing the reason, before any signature was checked. */
static void test_no_kid_other_type(void **state) {
  json_t *all = json_object_get(json_object_get(g_vectors, "jwks"), "keys");
  json_t *rsa = json_array();
  for (size_t i = 0; i < json_array_size(all); i++) {
    json_t *k = json_array_get(all, i);
    if (!strcmp(json_string_value(json_object_get(k, "kty")), "RSA")) json_array_append(rsa, k);
  }
  json_t *set = json_pack("{s:o}", "keys", rsa);
  char *txt = json_dumps(set, JSON_COMPACT);
  wisp_jwks *keys = NULL;
  size_t skipped = 0;
  assert_int_equal(wisp_jwks_parse(&keys, &skipped, txt, strlen(txt), NULL, 0), WISP_OK);
  assert_true(wisp_jwks_count(keys) >= 1);
  /* {"alg":"ES256"} . {} . 3 bytes of signature */
  static const char kTok[] = "eyJhbGciOiJFUzI1NiJ9.e30.AAAA";
  wisp_jwt_claims got;
  char why[256];
  wisp_jwt_expect at = expect_at(vectors_now());
  assert_int_equal(wisp_jwt_verify(&got, keys, &at, kTok, strlen(kTok), why, sizeof(why)), WISP_JWT_UNKNOWN_KEY);
  assert_non_null(strstr(why, "is not a key for ES256"));
  wisp_jwks_free(keys);
  free(txt);
  json_decref(set);
}

static void test_token_too_long(void **state) {
  size_t n = WISP_JWT_TOKEN_MAX + 1;
  char *big = malloc(n);
  memset(big, 'a', n);
  big[10] = big[20] = '.';
  wisp_jwt_claims got;
  char why[256];
  wisp_jwt_expect at = expect_at(vectors_now());
  assert_int_equal(wisp_jwt_verify(&got, g_keys, &at, big, n, why, sizeof(why)), WISP_JWT_MALFORMED);
  assert_non_null(strstr(why, "more than"));
  free(big);
}

typedef struct {
  const char *json;
  wisp_err want;
  const char *why;
} jwks_case;

static void test_jwks_errors(void **state) {
  static const jwks_case kCases[] = {
      {"", WISP_ERR_PARSE, "not JSON"},
      {"[]", WISP_ERR_PARSE, "no \"keys\" array"},
      {"{\"keys\":{}}", WISP_ERR_PARSE, "no \"keys\" array"},
      {"{\"keys\":[],\"keys\":[]}", WISP_ERR_PARSE, "not JSON"},
      {"{\"keys\":[]}", WISP_OK, NULL},
      {"{\"keys\":[1]}", WISP_ERR_PARSE, "keys[0] is not an object"},
      {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\"}]}", WISP_ERR_PARSE, "without base64url n and e"},
      {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}", WISP_ERR_PARSE,
       "32-byte"},
      /* (1,1) is not on P-256 */
      {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\","
       "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}",
       WISP_ERR_PARSE, "not on the curve"},
      {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}]}", WISP_OK, NULL},
      {"{\"keys\":[{\"kty\":\"RSA\",\"kid\":7,\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", WISP_ERR_PARSE, "kid"},
  };
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); i++) {
    wisp_jwks *k = NULL;
    char err[256] = "";
    wisp_err rc = wisp_jwks_parse(&k, NULL, kCases[i].json, strlen(kCases[i].json), err, sizeof(err));
    if (rc != kCases[i].want) fail_msg("%s: got %d (%s)", kCases[i].json, rc, err);
    if (kCases[i].why && !strstr(err, kCases[i].why)) fail_msg("%s: \"%s\" lacks \"%s\"", kCases[i].json, err,
                                                               kCases[i].why);
    assert_true(rc == WISP_OK ? k != NULL : k == NULL);
    wisp_jwks_free(k);
  }
  /* Too many keys. */
  char *many = malloc(16 + (WISP_JWKS_KEYS_MAX + 1) * 3);
  strcpy(many, "{\"keys\":[");
  for (int i = 0; i <= WISP_JWKS_KEYS_MAX; i++) strcat(many, i ? ",{}" : "{}");
  strcat(many, "]}");
  wisp_jwks *k = NULL;
  assert_int_equal(wisp_jwks_parse(&k, NULL, many, strlen(many), NULL, 0), WISP_ERR_TOO_BIG);
  free(many);
}

static void test_b64url(void **state) {
  uint8_t out[8];
  size_t n = 0;
  assert_true(wisp_jwt_b64url_decode(out, sizeof(out), &n, "aGk", 3));
  assert_int_equal(n, 2);
  assert_memory_equal(out, "hi", 2);
  assert_true(wisp_jwt_b64url_decode(out, sizeof(out), &n, "", 0));
  assert_int_equal(n, 0);
  assert_true(wisp_jwt_b64url_decode(out, sizeof(out), &n, "-_8", 3));
  assert_false(wisp_jwt_b64url_decode(out, sizeof(out), &n, "aGk=", 4)); /* padding */
  assert_false(wisp_jwt_b64url_decode(out, sizeof(out), &n, "a+/A", 4)); /* standard alphabet */
  assert_false(wisp_jwt_b64url_decode(out, sizeof(out), &n, "a", 1));    /* impossible length */
  assert_false(wisp_jwt_b64url_decode(out, sizeof(out), &n, "aGl", 3));  /* non-zero leftover bits */
  assert_false(wisp_jwt_b64url_decode(out, 1, &n, "aGk", 3));            /* buffer too small */
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jwks_kept_and_skipped),
      cmocka_unit_test(test_vectors),
      cmocka_unit_test(test_leeway_bounds),
      cmocka_unit_test(test_no_kid_other_type),
      cmocka_unit_test(test_token_too_long),
      cmocka_unit_test(test_jwks_errors),
      cmocka_unit_test(test_b64url),
  };
  return WISP_RUN_GROUP_TESTS(tests, group_setup, group_teardown);
}
