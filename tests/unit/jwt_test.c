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
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/nid.h>

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
                           .audience = "wisp",
                           .now = now,
                           .leeway = WISP_JWT_DEFAULT_LEEWAY,
                           .max_lifetime = 24 * 3600,
                           .require_pod = true};
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
    if (strcmp(wisp_jwt_verdict_name(v), verdict) != 0)
      fail_msg("%s: got %s (%s), want %s", name, wisp_jwt_verdict_name(v), why, verdict);
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

/* The vectors' key |kid| with |field| set to |value| (NULL: left out). */
static json_t *vector_key(const char *kid, const char *field, json_t *value) {
  json_t *all = json_object_get(json_object_get(g_vectors, "jwks"), "keys");
  for (size_t i = 0; i < json_array_size(all); i++) {
    json_t *k = json_array_get(all, i);
    if (strcmp(json_string_value(json_object_get(k, "kid")), kid) != 0) continue;
    json_t *copy = json_deep_copy(k);
    if (field && value) json_object_set_new(copy, field, value);
    if (field && !value) json_object_del(copy, field);
    return copy;
  }
  fail_msg("no key %s in the vectors", kid);
  return NULL;
}

static wisp_jwks *parse_set(json_t *keys, size_t *out_skipped) {
  json_t *set = json_pack("{s:o}", "keys", keys);
  char *txt = json_dumps(set, JSON_COMPACT);
  wisp_jwks *k = NULL;
  char err[256] = "";
  if (wisp_jwks_parse(&k, out_skipped, txt, strlen(txt), err, sizeof(err)) != WISP_OK) fail_msg("jwks: %s", err);
  free(txt);
  json_decref(set);
  return k;
}

static const char *vector_token(const char *name) {
  json_t *cases = json_object_get(g_vectors, "cases");
  for (size_t i = 0; i < json_array_size(cases); i++) {
    json_t *c = json_array_get(cases, i);
    if (!strcmp(json_string_value(json_object_get(c, "name")), name))
      return json_string_value(json_object_get(c, "token"));
  }
  fail_msg("no case %s in the vectors", name);
  return NULL;
}

/* One odd key among good ones is left out on its own, with its reason; the
 * others stay and verify. A set with such a key was once refused whole. */
static void test_jwks_odd_keys_skipped(void **state) {
  static const struct {
    const char *kid, *field, *value; /* value: a JSON text */
    const char *why;
  } kOdd[] = {
      {"rsa-1", "e", "\"AQ\"", "keys[2] (kid rsa-1): an RSA key with an unusable exponent e"},      /* e = 1 */
      {"rsa-1", "e", "\"AQAAAAE\"", "keys[3] (kid rsa-1): an RSA key with an unusable exponent e"}, /* 2^32+1 */
      {"rsa-1", "e", "\"AAE\"", "keys[4] (kid rsa-1): an RSA key with an unusable exponent e"},     /* 1 */
      {"rsa-1", "e", "\"Ag\"", "keys[5] (kid rsa-1): an RSA key with an unusable exponent e"},      /* even */
      {"rsa-1", "n", "\"!!\"", "keys[6] (kid rsa-1): an RSA key without base64url n and e"},
      {"rsa-1", "alg", "\"PS256\"", "keys[7] (kid rsa-1): alg PS256; only RS256 and ES256"},
      {"rsa-1", "kid", "7", "keys[8]: kid is not a string"},
      {"ec-1", "crv", "\"P-384\"", "keys[9] (kid ec-1): curve P-384; only P-256"},
      {"ec-1", "x", "\"AAAA\"", "keys[10] (kid ec-1): a P-256 key whose point is not on the curve"},
      {"small-1", NULL, NULL, "keys[11] (kid small-1): an RSA key of 1024 bits"},
      {"ed", NULL, NULL, "keys[12] (kid ed): kty OKP; only RSA and EC"},
      {"enc", NULL, NULL, "keys[13] (kid enc): use enc, not sig"},
      {"rsa-1", "alg", "\"ES256\"", "keys[14] (kid rsa-1): alg ES256 does not fit kty RSA"},
  };
  size_t n_odd = sizeof(kOdd) / sizeof(kOdd[0]);
  json_t *keys = json_array();
  json_array_append_new(keys, vector_key("rsa-1", NULL, NULL));
  json_array_append_new(keys, vector_key("ec-1", NULL, NULL));
  for (size_t i = 0; i < n_odd; i++)
    json_array_append_new(keys, vector_key(kOdd[i].kid, kOdd[i].field,
                                           kOdd[i].value ? json_loads(kOdd[i].value, JSON_DECODE_ANY, NULL) : NULL));
  json_array_append_new(keys, json_integer(5));
  size_t skipped = 0;
  wisp_jwks *k = parse_set(keys, &skipped);
  assert_int_equal(wisp_jwks_count(k), 2);
  assert_int_equal(skipped, n_odd + 1);
  assert_int_equal(wisp_jwks_skipped(k), n_odd + 1);
  for (size_t i = 0; i < n_odd; i++) {
    const char *why = wisp_jwks_skip_reason(k, i);
    if (!why || !strstr(why, kOdd[i].why)) fail_msg("skip %zu: \"%s\" lacks \"%s\"", i, why, kOdd[i].why);
  }
  assert_non_null(strstr(wisp_jwks_skip_reason(k, n_odd), "keys[15]: not an object"));
  assert_null(wisp_jwks_skip_reason(k, n_odd + 1));
  /* The good keys still verify. */
  wisp_jwt_claims got;
  wisp_jwt_expect at = expect_at(vectors_now());
  const char *rs = vector_token("rs256"), *es = vector_token("es256 with aud as a string");
  assert_int_equal(wisp_jwt_verify(&got, k, &at, rs, strlen(rs), NULL, 0), WISP_JWT_OK);
  assert_int_equal(wisp_jwt_verify(&got, k, &at, es, strlen(es), NULL, 0), WISP_JWT_OK);
  wisp_jwks_free(k);
}

/* base64url of |n| bytes, unpadded. */
static void b64url(char *out, const uint8_t *in, size_t n) {
  static const char kAlpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    for (size_t k = 0; k < 4 && k <= (n - i > 3 ? 3 : n - i); k++) out[o++] = kAlpha[(v >> (18 - 6 * k)) & 63];
  }
  out[o] = '\0';
}

/* A P-256 key whose x starts with a zero byte, written without it (as
 * PyJWT 2.6 writes such keys, about 1 in 128): the same point, kept. It
 * was once refused for not being 32 bytes, and the test keys of
 * sa_token_test.sh now and then were such. */
static void test_jwks_ec_short_coordinate(void **state) {
  uint8_t x[32], y[32];
  bool found = false;
  for (int i = 0; i < 20000 && !found; i++) {
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    BIGNUM *bx = BN_new(), *by = BN_new();
    assert_true(EC_KEY_generate_key(ec));
    assert_true(EC_POINT_get_affine_coordinates_GFp(EC_KEY_get0_group(ec), EC_KEY_get0_public_key(ec), bx, by, NULL));
    found = BN_num_bytes(bx) < 32 && BN_bn2bin_padded(x, 32, bx) && BN_bn2bin_padded(y, 32, by);
    BN_free(bx);
    BN_free(by);
    EC_KEY_free(ec);
  }
  assert_true(found);
  char bx[64], by[64], doc[256];
  size_t skip = 0;
  while (x[skip] == 0) skip++;
  b64url(bx, x + skip, 32 - skip);
  b64url(by, y, 32);
  snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}", bx, by);
  wisp_jwks *k = NULL;
  char err[256] = "";
  if (wisp_jwks_parse(&k, NULL, doc, strlen(doc), err, sizeof(err)) != WISP_OK) fail_msg("%s: %s", doc, err);
  assert_int_equal(wisp_jwks_count(k), 1);
  wisp_jwks_free(k);
}

/* RSA exponents: 3 and 2^32-1 are taken, 2^32+1 is not (BoringSSL would
 * fail every signature with it; it once went in the set). */
static void test_jwks_rsa_exponent_bounds(void **state) {
  static const struct {
    const char *e;
    size_t kept;
  } kE[] = {{"Aw", 1}, {"AQAB", 1}, {"_____w", 1}, {"AQAAAAE", 0}, {"AQAAAAAAAAE", 0}, {"AQ", 0}};
  for (size_t i = 0; i < sizeof(kE) / sizeof(kE[0]); i++) {
    json_t *keys = json_array();
    json_array_append_new(keys, vector_key("rsa-1", "e", json_string(kE[i].e)));
    json_array_append_new(keys, vector_key("ec-1", NULL, NULL));
    wisp_jwks *k = parse_set(keys, NULL);
    if (wisp_jwks_count(k) != 1 + kE[i].kept) fail_msg("e %s: %zu keys kept", kE[i].e, wisp_jwks_count(k));
    wisp_jwks_free(k);
  }
}

/* A token naming no kid is tried against a lone key of its alg only: with
 * two RSA keys it is refused before any signature check (it was once tried
 * against each, and taken by the one that verified). */
static void test_no_kid_several_keys(void **state) {
  json_t *keys = json_array();
  json_array_append_new(keys, vector_key("rsa-1", "kid", json_string("rsa-0")));
  json_array_append_new(keys, vector_key("rsa-1", NULL, NULL));
  json_array_append_new(keys, vector_key("ec-1", NULL, NULL));
  wisp_jwks *k = parse_set(keys, NULL);
  assert_int_equal(wisp_jwks_count(k), 3);
  const char *tok = vector_token("no kid: every key of the alg is tried");
  wisp_jwt_claims got;
  char why[256];
  wisp_jwt_expect at = expect_at(vectors_now());
  assert_int_equal(wisp_jwt_verify(&got, k, &at, tok, strlen(tok), why, sizeof(why)), WISP_JWT_UNKNOWN_KEY);
  assert_non_null(strstr(why, "names no kid and the issuer has 2 RS256 keys"));
  /* With a kid it verifies; the lone ES256 key is still tried without. */
  const char *rs = vector_token("rs256");
  assert_int_equal(wisp_jwt_verify(&got, k, &at, rs, strlen(rs), NULL, 0), WISP_JWT_OK);
  wisp_jwks_free(k);
}

/* A NUL inside the token is refused as such, never read up to. */
static void test_token_with_nul(void **state) {
  const char *good = vector_token("rs256");
  size_t n = strlen(good);
  char *tok = malloc(n + 8);
  memcpy(tok, good, n);
  memcpy(tok + n, "\0.x", 3);
  wisp_jwt_claims got;
  char why[256];
  wisp_jwt_expect at = expect_at(vectors_now());
  assert_int_equal(wisp_jwt_verify(&got, g_keys, &at, tok, n + 3, why, sizeof(why)), WISP_JWT_MALFORMED);
  assert_non_null(strstr(why, "NUL byte"));
  free(tok);
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
      {"{\"keys\":[1]}", WISP_ERR_PARSE, "keys[0]: not an object"},
      {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\"}]}", WISP_ERR_PARSE, "without base64url n and e"},
      {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
       "\"y\":\"AAAA\"}]}",
       WISP_ERR_PARSE, "x and y of at most 32 bytes"},
      /* (1,1) is not on P-256 */
      {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\","
       "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}",
       WISP_ERR_PARSE, "not on the curve"},
      {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}]}", WISP_ERR_PARSE,
       "none of its 1 keys is usable; keys[0]: curve P-384"},
      {"{\"keys\":[{\"kty\":\"RSA\",\"kid\":7,\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", WISP_ERR_PARSE, "kid"},
  };
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); i++) {
    wisp_jwks *k = NULL;
    char err[256] = "";
    wisp_err rc = wisp_jwks_parse(&k, NULL, kCases[i].json, strlen(kCases[i].json), err, sizeof(err));
    if (rc != kCases[i].want) fail_msg("%s: got %d (%s)", kCases[i].json, rc, err);
    if (kCases[i].why && !strstr(err, kCases[i].why))
      fail_msg("%s: \"%s\" lacks \"%s\"", kCases[i].json, err, kCases[i].why);
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
      cmocka_unit_test(test_jwks_odd_keys_skipped),
      cmocka_unit_test(test_jwks_rsa_exponent_bounds),
      cmocka_unit_test(test_jwks_ec_short_coordinate),
      cmocka_unit_test(test_no_kid_several_keys),
      cmocka_unit_test(test_token_with_nul),
      cmocka_unit_test(test_b64url),
  };
  return WISP_RUN_GROUP_TESTS(tests, group_setup, group_teardown);
}
