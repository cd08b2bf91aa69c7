/* Service-account token verification; see wisp_jwt.h. JSON by jansson
 * (duplicate keys refused: two "aud" or "exp" claims must not be read one
 * way here and another way elsewhere); signatures by BoringSSL. */
#include "lib/wisp_jwt.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#ifndef OPENSSL_IS_BORINGSSL
#error "wisp builds against BoringSSL (android-libboringssl-dev)"
#endif

#include "lib/wisp_mem.h"

#define KID_MAX WISP_JWT_UID_MAX
#define P256_COORD 32
#define ES256_SIG (2 * P256_COORD)
#define RSA_BYTES_MAX (WISP_JWT_RSA_MAX_BITS / 8)
#define SHOWN_MAX 64 /* bytes of a peer's value quoted in a reason */
#define SA_SUB_PREFIX "system:serviceaccount:"
#define LEGACY_ISSUER "kubernetes/serviceaccount" /* of Secret-based tokens */

typedef enum { KEY_RSA, KEY_EC } key_type;

typedef struct {
  key_type type;
  char kid[KID_MAX + 1];
  EVP_PKEY *pkey;
} jwk;

struct wisp_jwks {
  jwk *keys;
  size_t n;
  char (*skips)[WISP_JWKS_SKIP_WHY_MAX]; /* why each left-out key was */
  size_t n_skips;
};

/* ---- small helpers ---- */

static void say(char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t why_len, const char *fmt, ...) {
  if (!why || !why_len) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, why_len, fmt, ap);
  va_end(ap);
}

/* A peer's string as it may be quoted in a reason: printable ASCII, cut. */
static const char *shown(const char *s, char out[SHOWN_MAX + 4]) {
  size_t i = 0;
  for (; s[i] && i < SHOWN_MAX; i++) out[i] = s[i] >= ' ' && s[i] <= '~' && s[i] != '"' ? s[i] : '?';
  out[i] = '\0';
  if (s[i]) strcpy(out + i, "...");
  return out;
}

static int8_t b64url_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return (int8_t)(c - 'A');
  if (c >= 'a' && c <= 'z') return (int8_t)(c - 'a' + 26);
  if (c >= '0' && c <= '9') return (int8_t)(c - '0' + 52);
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

bool wisp_jwt_b64url_decode(uint8_t *out, size_t out_cap, size_t *out_len, const char *in, size_t len) {
  if (len % 4 == 1) return false;
  size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
  if (need > out_cap) return false;
  uint32_t acc = 0;
  size_t bits = 0, o = 0;
  for (size_t i = 0; i < len; i++) {
    int8_t v = b64url_value((unsigned char)in[i]);
    if (v < 0) return false;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
    }
  }
  /* Canonical form only: the leftover bits must be zero. */
  if (bits && (acc & ((1u << bits) - 1))) return false;
  *out_len = o;
  return true;
}

/* The base64url string |key| of |obj| decoded into a new buffer. */
static uint8_t *b64_member(const json_t *obj, const char *key, size_t max, size_t *out_len) {
  const char *s = json_string_value(json_object_get(obj, key));
  if (!s) return NULL;
  uint8_t *buf = wisp_malloc(max ? max : 1);
  if (!wisp_jwt_b64url_decode(buf, max, out_len, s, strlen(s)) || *out_len == 0) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* ---- keys ---- */

/* RSA exponents taken: odd, 3 <= e < 2^32 (BoringSSL verifies with e of
 * at most 33 bits; e = 1 makes any "signature" verify). */
#define RSA_E_MAX_BITS 32

static EVP_PKEY *rsa_key(const json_t *k, char *err, size_t err_len) {
  size_t n_len = 0, e_len = 0;
  uint8_t *n = b64_member(k, "n", RSA_BYTES_MAX + 1, &n_len);
  uint8_t *e = b64_member(k, "e", 8, &e_len);
  EVP_PKEY *pkey = NULL;
  BIGNUM *bn_n = n ? BN_bin2bn(n, n_len, NULL) : NULL;
  BIGNUM *bn_e = e ? BN_bin2bn(e, e_len, NULL) : NULL;
  if (!bn_n || !bn_e) {
    say(err, err_len, "an RSA key without base64url n and e");
  } else if (BN_num_bits(bn_n) < WISP_JWT_RSA_MIN_BITS || BN_num_bits(bn_n) > WISP_JWT_RSA_MAX_BITS) {
    say(err, err_len, "an RSA key of %u bits (want %d to %d)", BN_num_bits(bn_n), WISP_JWT_RSA_MIN_BITS,
        WISP_JWT_RSA_MAX_BITS);
  } else if (!BN_is_odd(bn_e) || BN_num_bits(bn_e) < 2 || BN_num_bits(bn_e) > RSA_E_MAX_BITS) {
    say(err, err_len, "an RSA key with an unusable exponent e (want odd, 3 to 2^%d)", RSA_E_MAX_BITS);
  } else {
    RSA *rsa = RSA_new();
    if (rsa && RSA_set0_key(rsa, bn_n, bn_e, NULL)) {
      bn_n = bn_e = NULL;
      pkey = EVP_PKEY_new();
      if (!pkey || !EVP_PKEY_assign_RSA(pkey, rsa)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
        RSA_free(rsa);
      }
    } else {
      RSA_free(rsa);
    }
    if (!pkey) say(err, err_len, "an RSA key BoringSSL cannot use");
  }
  BN_free(bn_n);
  BN_free(bn_e);
  free(n);
  free(e);
  return pkey;
}

static EVP_PKEY *ec_key(const json_t *k, char *err, size_t err_len) {
  size_t x_len = 0, y_len = 0;
  uint8_t *x = b64_member(k, "x", P256_COORD, &x_len);
  uint8_t *y = b64_member(k, "y", P256_COORD, &y_len);
  EVP_PKEY *pkey = NULL;
  EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  /* RFC 7518 wants 32 bytes each; some writers (PyJWT 2.6) drop leading
   * zero bytes. The number is the same: taken. */
  BIGNUM *bx = x ? BN_bin2bn(x, x_len, NULL) : NULL;
  BIGNUM *by = y ? BN_bin2bn(y, y_len, NULL) : NULL;
  if (!bx || !by) {
    say(err, err_len, "a P-256 key without base64url x and y of at most 32 bytes");
  } else if (!ec || !EC_KEY_set_public_key_affine_coordinates(ec, bx, by)) {
    say(err, err_len, "a P-256 key whose point is not on the curve");
  } else {
    pkey = EVP_PKEY_new();
    if (pkey && EVP_PKEY_assign_EC_KEY(pkey, ec)) {
      ec = NULL;
    } else {
      EVP_PKEY_free(pkey);
      pkey = NULL;
      say(err, err_len, "a P-256 key BoringSSL cannot use");
    }
  }
  EC_KEY_free(ec);
  BN_free(bx);
  BN_free(by);
  free(x);
  free(y);
  return pkey;
}

/* Whether |k| is a signing key of a type we verify; if not, why not. */
static bool key_wanted(const json_t *k, key_type *out, char *why, size_t why_len) {
  char s[SHOWN_MAX + 4];
  const char *kty = json_string_value(json_object_get(k, "kty"));
  const char *use = json_string_value(json_object_get(k, "use"));
  const char *alg = json_string_value(json_object_get(k, "alg"));
  const char *crv = json_string_value(json_object_get(k, "crv"));
  if (use && strcmp(use, "sig") != 0) {
    say(why, why_len, "use %s, not sig", shown(use, s));
    return false;
  }
  if (kty && !strcmp(kty, "RSA") && (!alg || !strcmp(alg, "RS256"))) {
    *out = KEY_RSA;
    return true;
  }
  if (kty && !strcmp(kty, "EC") && crv && !strcmp(crv, "P-256") && (!alg || !strcmp(alg, "ES256"))) {
    *out = KEY_EC;
    return true;
  }
  if (alg && strcmp(alg, "RS256") != 0 && strcmp(alg, "ES256") != 0) {
    say(why, why_len, "alg %s; only RS256 and ES256 are verified", shown(alg, s));
  } else if (alg && kty &&
             ((!strcmp(kty, "RSA") && !strcmp(alg, "ES256")) || (!strcmp(kty, "EC") && !strcmp(alg, "RS256")))) {
    say(why, why_len, "alg %s does not fit kty %s", alg, kty);
  } else if (kty && !strcmp(kty, "EC")) {
    say(why, why_len, "curve %s; only P-256 is verified", crv ? shown(crv, s) : "(none)");
  } else {
    say(why, why_len, "kty %s%s%s; only RSA and EC are verified", kty ? shown(kty, s) : "(none)",
        alg ? " with alg " : "", alg ? alg : "");
  }
  return false;
}

/* Remembers why keys[|i|] was left out. */
static void skip(wisp_jwks *s, size_t i, const json_t *kid, const char *why) {
  char shown_kid[SHOWN_MAX + 4];
  const char *k = json_string_value(kid);
  snprintf(s->skips[s->n_skips++], WISP_JWKS_SKIP_WHY_MAX, "keys[%zu]%s%s%s: %s", i, k ? " (kid " : "",
           k ? shown(k, shown_kid) : "", k ? ")" : "", why);
}

/* Keeps keys[|i|] if it is a usable signing key; any other is left out with
 * the reason, so one odd key never costs the issuer's others. */
static void add_key(wisp_jwks *s, const json_t *k, size_t i) {
  key_type type;
  char why[160] = "";
  const json_t *kid = json_object_get(k, "kid");
  if (!json_is_object(k)) {
    skip(s, i, NULL, "not an object");
    return;
  }
  if (!key_wanted(k, &type, why, sizeof(why))) {
    skip(s, i, kid, why);
    return;
  }
  if (kid && (!json_is_string(kid) || json_string_length(kid) > KID_MAX ||
              strlen(json_string_value(kid)) != json_string_length(kid))) {
    snprintf(why, sizeof(why), "kid is not a string of at most %d bytes", KID_MAX);
    skip(s, i, NULL, why);
    return;
  }
  EVP_PKEY *pkey = type == KEY_RSA ? rsa_key(k, why, sizeof(why)) : ec_key(k, why, sizeof(why));
  if (!pkey) {
    skip(s, i, kid, why);
    return;
  }
  jwk *j = &s->keys[s->n++];
  j->type = type;
  j->pkey = pkey;
  snprintf(j->kid, sizeof(j->kid), "%s", kid ? json_string_value(kid) : "");
}

static wisp_err parse_keys(wisp_jwks *s, const json_t *doc, char *err, size_t err_len) {
  const json_t *keys = json_object_get(doc, "keys");
  if (!json_is_array(keys)) {
    say(err, err_len, "not a JWKS: no \"keys\" array");
    return WISP_ERR_PARSE;
  }
  size_t n = json_array_size(keys);
  if (n > WISP_JWKS_KEYS_MAX) {
    say(err, err_len, "%zu keys, more than %d", n, WISP_JWKS_KEYS_MAX);
    return WISP_ERR_TOO_BIG;
  }
  s->keys = wisp_calloc(n ? n : 1, sizeof(*s->keys));
  s->skips = wisp_calloc(n ? n : 1, sizeof(*s->skips));
  for (size_t i = 0; i < n; i++) add_key(s, json_array_get(keys, i), i);
  /* A set that had keys but none we can use would refuse every token: the
   * caller keeps the last good one instead. */
  if (n && !s->n) {
    say(err, err_len, "none of its %zu keys is usable; %s%s", n, s->skips[0], n > 1 ? " (and others)" : "");
    return WISP_ERR_PARSE;
  }
  return WISP_OK;
}

wisp_err wisp_jwks_parse(wisp_jwks **out, size_t *out_skipped, const char *json, size_t len, char *err,
                         size_t err_len) {
  if (len > WISP_JWKS_MAX) {
    say(err, err_len, "the key set is %zu bytes, more than %d", len, WISP_JWKS_MAX);
    return WISP_ERR_TOO_BIG;
  }
  json_error_t je;
  json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
  if (!doc) {
    say(err, err_len, "not JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    return WISP_ERR_PARSE;
  }
  wisp_jwks *s = wisp_calloc(1, sizeof(*s));
  wisp_err rc = parse_keys(s, doc, err, err_len);
  json_decref(doc);
  if (rc != WISP_OK) {
    wisp_jwks_free(s);
    return rc;
  }
  if (out_skipped) *out_skipped = s->n_skips;
  *out = s;
  return WISP_OK;
}

void wisp_jwks_free(wisp_jwks *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) EVP_PKEY_free(s->keys[i].pkey);
  free(s->keys);
  free(s->skips);
  free(s);
}

size_t wisp_jwks_count(const wisp_jwks *s) { return s ? s->n : 0; }

size_t wisp_jwks_skipped(const wisp_jwks *s) { return s ? s->n_skips : 0; }

const char *wisp_jwks_skip_reason(const wisp_jwks *s, size_t i) { return s && i < s->n_skips ? s->skips[i] : NULL; }

/* ---- the token ---- */

const char *wisp_jwt_verdict_name(wisp_jwt_verdict v) {
  switch (v) {
    case WISP_JWT_OK:
      return "ok";
    case WISP_JWT_MALFORMED:
      return "malformed token";
    case WISP_JWT_ALG_REFUSED:
      return "algorithm refused";
    case WISP_JWT_UNKNOWN_KEY:
      return "unknown key";
    case WISP_JWT_BAD_SIGNATURE:
      return "bad signature";
    case WISP_JWT_ISSUER_MISMATCH:
      return "issuer mismatch";
    case WISP_JWT_WRONG_AUDIENCE:
      return "wrong audience";
    case WISP_JWT_EXPIRED:
      return "expired";
    case WISP_JWT_NOT_YET_VALID:
      return "not yet valid";
    case WISP_JWT_NOT_SERVICE_ACCOUNT:
      return "not a service-account token";
    case WISP_JWT_TOO_LONG_LIVED:
      return "lifetime too long";
    case WISP_JWT_NOT_BOUND:
      return "not bound to a pod";
  }
  return "?";
}

/* One verification: the token's parts and what we decided so far. */
typedef struct {
  const char *tok;
  size_t len;
  size_t dot1, dot2; /* offsets of the two dots */
  json_t *header, *claims;
  key_type alg;
  uint8_t sig[RSA_BYTES_MAX];
  size_t sig_len;
  char *why;
  size_t why_len;
} jws;

static wisp_jwt_verdict refuse(jws *j, wisp_jwt_verdict v, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static wisp_jwt_verdict refuse(jws *j, wisp_jwt_verdict v, const char *fmt, ...) {
  char detail[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof(detail), fmt, ap);
  va_end(ap);
  say(j->why, j->why_len, "%s: %s", wisp_jwt_verdict_name(v), detail);
  return v;
}

/* base64url JSON object between |from| and |to| of the token. */
static json_t *json_part(const jws *j, size_t from, size_t to) {
  size_t cap = (to - from) / 4 * 3 + 3, n = 0;
  uint8_t *raw = wisp_malloc(cap);
  json_t *v = NULL;
  if (wisp_jwt_b64url_decode(raw, cap, &n, j->tok + from, to - from))
    v = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
  free(raw);
  if (v && !json_is_object(v)) {
    json_decref(v);
    v = NULL;
  }
  return v;
}

static wisp_jwt_verdict split(jws *j) {
  if (j->len > WISP_JWT_TOKEN_MAX)
    return refuse(j, WISP_JWT_MALFORMED, "%zu bytes, more than %d", j->len, WISP_JWT_TOKEN_MAX);
  /* What a C string would cut there must not decide anything. */
  if (memchr(j->tok, '\0', j->len)) return refuse(j, WISP_JWT_MALFORMED, "the token holds a NUL byte");
  const char *d1 = memchr(j->tok, '.', j->len);
  const char *d2 = d1 ? memchr(d1 + 1, '.', j->len - (size_t)(d1 + 1 - j->tok)) : NULL;
  if (!d1 || !d2 || memchr(d2 + 1, '.', j->len - (size_t)(d2 + 1 - j->tok)))
    return refuse(j, WISP_JWT_MALFORMED, "not three base64url parts joined by dots (a compact JWS)");
  j->dot1 = (size_t)(d1 - j->tok);
  j->dot2 = (size_t)(d2 - j->tok);
  j->header = json_part(j, 0, j->dot1);
  if (!j->header) return refuse(j, WISP_JWT_MALFORMED, "the header is not base64url of a JSON object");
  j->claims = json_part(j, j->dot1 + 1, j->dot2);
  if (!j->claims) return refuse(j, WISP_JWT_MALFORMED, "the claims are not base64url of a JSON object");
  return WISP_JWT_OK;
}

static wisp_jwt_verdict check_header(jws *j) {
  char s[SHOWN_MAX + 4];
  const char *alg = json_string_value(json_object_get(j->header, "alg"));
  if (!alg) return refuse(j, WISP_JWT_MALFORMED, "the header has no alg");
  if (!strcmp(alg, "RS256")) {
    j->alg = KEY_RSA;
  } else if (!strcmp(alg, "ES256")) {
    j->alg = KEY_EC;
  } else {
    return refuse(j, WISP_JWT_ALG_REFUSED, "alg %s; only RS256 and ES256, the service-account issuer's, are taken",
                  shown(alg, s));
  }
  if (json_object_get(j->header, "crit"))
    return refuse(j, WISP_JWT_MALFORMED, "the header has crit extensions, which are not understood here");
  const json_t *kid = json_object_get(j->header, "kid");
  if (kid && (!json_is_string(kid) || json_string_length(kid) > KID_MAX))
    return refuse(j, WISP_JWT_MALFORMED, "kid is not a string of at most %d bytes", KID_MAX);
  size_t sig_chars = j->len - j->dot2 - 1;
  if (!wisp_jwt_b64url_decode(j->sig, sizeof(j->sig), &j->sig_len, j->tok + j->dot2 + 1, sig_chars) || j->sig_len == 0)
    return refuse(j, WISP_JWT_MALFORMED, "the signature is empty or not base64url");
  return WISP_JWT_OK;
}

static bool signature_ok(const jws *j, EVP_PKEY *pkey) {
  uint8_t md[SHA256_DIGEST_LENGTH];
  SHA256((const uint8_t *)j->tok, j->dot2, md);
  if (j->alg == KEY_RSA) {
    RSA *rsa = EVP_PKEY_get0_RSA(pkey);
    return rsa && RSA_verify(NID_sha256, md, sizeof(md), j->sig, j->sig_len, rsa) == 1;
  }
  EC_KEY *ec = EVP_PKEY_get0_EC_KEY(pkey);
  if (!ec || j->sig_len != ES256_SIG) return false;
  ECDSA_SIG *sig = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(j->sig, P256_COORD, NULL), *s = BN_bin2bn(j->sig + P256_COORD, P256_COORD, NULL);
  bool ok = false;
  if (sig && r && s && ECDSA_SIG_set0(sig, r, s)) {
    r = s = NULL;
    ok = ECDSA_do_verify(md, sizeof(md), sig, ec) == 1;
  }
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(sig);
  return ok;
}

static wisp_jwt_verdict check_signature(jws *j, const wisp_jwks *keys, wisp_jwt_claims *out) {
  char s[SHOWN_MAX + 4];
  const char *kid = json_string_value(json_object_get(j->header, "kid"));
  const char *alg = j->alg == KEY_RSA ? "RS256" : "ES256";
  size_t tried = 0, of_alg = 0;
  bool other_type = false;
  for (size_t i = 0; !kid && keys && i < keys->n; i++) of_alg += keys->keys[i].type == j->alg;
  if (!kid && of_alg > 1)
    return refuse(j, WISP_JWT_UNKNOWN_KEY,
                  "the token names no kid and the issuer has %zu %s keys: a kid must "
                  "say which (the API server's tokens always name one)",
                  of_alg, alg);
  for (size_t i = 0; keys && i < keys->n; i++) {
    const jwk *k = &keys->keys[i];
    if (kid && strcmp(k->kid, kid) != 0) continue;
    if (k->type != j->alg) {
      other_type = true;
      continue;
    }
    tried++;
    if (signature_ok(j, k->pkey)) {
      snprintf(out->kid, sizeof(out->kid), "%s", k->kid);
      return WISP_JWT_OK;
    }
  }
  if (tried)
    return refuse(j, WISP_JWT_BAD_SIGNATURE, "the %s signature does not verify with key %s", alg,
                  kid ? shown(kid, s) : "(any; the token names no kid)");
  /* No kid: every key was of the other type (kid is NULL here then). */
  if (other_type)
    return refuse(j, WISP_JWT_UNKNOWN_KEY, "key %s is not a key for %s", kid ? shown(kid, s) : "(none named)", alg);
  if (kid)
    return refuse(j, WISP_JWT_UNKNOWN_KEY, "no key with kid %s among the issuer's %zu keys", shown(kid, s),
                  wisp_jwks_count(keys));
  return refuse(j, WISP_JWT_UNKNOWN_KEY, "the token names no kid and the issuer has no %s key", alg);
}

/* Dates past this (about the year 36800) or before 1970 are refused, so
 * differences with the clock never overflow. */
#define NUMERIC_DATE_MAX ((int64_t)1 << 40)

/* A NumericDate claim: absent (false, no error) or a number of seconds in
 * [0, NUMERIC_DATE_MAX] (else *bad). */
static bool numeric_date(const json_t *claims, const char *key, int64_t *out, bool *bad) {
  const json_t *v = json_object_get(claims, key);
  *bad = false;
  if (!v) return false;
  int64_t t;
  if (json_is_integer(v)) {
    t = (int64_t)json_integer_value(v);
  } else if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) <= (double)NUMERIC_DATE_MAX) {
    t = (int64_t)json_real_value(v);
  } else {
    *bad = true;
    return false;
  }
  if (t < 0 || t > NUMERIC_DATE_MAX) {
    *bad = true;
    return false;
  }
  *out = t;
  return true;
}

static wisp_jwt_verdict check_audience(jws *j, const char *want) {
  const json_t *aud = json_object_get(j->claims, "aud");
  if (json_is_string(aud) && !strcmp(json_string_value(aud), want)) return WISP_JWT_OK;
  for (size_t i = 0; json_is_array(aud) && i < json_array_size(aud); i++) {
    const char *a = json_string_value(json_array_get(aud, i));
    if (a && !strcmp(a, want)) return WISP_JWT_OK;
  }
  /* What it is for, as "a, b" (values cut and made printable). */
  char text[3 * (SHOWN_MAX + 8)] = "", s[SHOWN_MAX + 4];
  const json_t *first = json_is_array(aud) ? json_array_get(aud, 0) : aud;
  for (size_t i = 0; first && json_string_value(first) && i < 3; i++) {
    const json_t *a = json_is_array(aud) ? json_array_get(aud, i) : (i ? NULL : aud);
    if (!json_string_value(a)) break;
    if (i) strcat(text, ", ");
    strcat(text, shown(json_string_value(a), s));
  }
  wisp_jwt_verdict v = refuse(j, WISP_JWT_WRONG_AUDIENCE,
                              "the token is for %s, not %s (a projected token with "
                              "audience %s is needed)",
                              text[0] ? text : "no audience", want, want);
  return v;
}

#define DATE_RANGE " or not a date (seconds since 1970, at most 2^40)"

static wisp_jwt_verdict check_times(jws *j, const wisp_jwt_expect *want, wisp_jwt_claims *out) {
  int64_t exp = 0, nbf = 0, iat = 0;
  bool bad = false;
  if (!numeric_date(j->claims, "exp", &exp, &bad))
    return refuse(j, WISP_JWT_MALFORMED,
                  bad ? "exp is not a number" DATE_RANGE : "the token has no exp: it never expires");
  bool has_nbf = numeric_date(j->claims, "nbf", &nbf, &bad);
  if (bad) return refuse(j, WISP_JWT_MALFORMED, "nbf is not a number" DATE_RANGE);
  bool has_iat = numeric_date(j->claims, "iat", &iat, &bad);
  if (bad) return refuse(j, WISP_JWT_MALFORMED, "iat is not a number" DATE_RANGE);
  if (want->now > exp && want->now - exp > want->leeway)
    return refuse(j, WISP_JWT_EXPIRED, "the token expired %" PRId64 " s ago (exp %" PRId64 ", leeway %" PRId64 " s)",
                  want->now - exp, exp, want->leeway);
  if (has_nbf && nbf > want->now && nbf - want->now > want->leeway)
    return refuse(j, WISP_JWT_NOT_YET_VALID, "nbf is %" PRId64 " s from now (leeway %" PRId64 " s)", nbf - want->now,
                  want->leeway);
  if (has_iat && iat > want->now && iat - want->now > want->leeway)
    return refuse(j, WISP_JWT_NOT_YET_VALID, "issued %" PRId64 " s in the future (iat; leeway %" PRId64 " s)",
                  iat - want->now, want->leeway);
  if (has_iat && iat > exp)
    return refuse(j, WISP_JWT_MALFORMED, "iat %" PRId64 " is after its exp %" PRId64 " (a lifetime of %" PRId64 " s)",
                  iat, exp, exp - iat);
  /* A long-lived token is a long-lived bearer secret: a projected token's
   * life is its expirationSeconds, which the pod spec chooses. */
  if (want->max_lifetime > 0 && !has_iat)
    return refuse(j, WISP_JWT_TOO_LONG_LIVED, "the token has no iat, so its lifetime cannot be bounded");
  if (want->max_lifetime > 0 && exp - iat > want->max_lifetime)
    return refuse(j, WISP_JWT_TOO_LONG_LIVED,
                  "the token lives %" PRId64 " s (exp - iat), more than the %" PRId64
                  " s allowed: a projected token's expirationSeconds must be at most that",
                  exp - iat, want->max_lifetime);
  out->exp = exp;
  return WISP_JWT_OK;
}

/* A DNS-1123 label (namespace) or subdomain (names): [a-z0-9] at both
 * ends, [a-z0-9-] (and '.' for subdomains) inside. Never '/', so a name
 * cannot add segments to the SPIFFE ID built from it. */
static bool k8s_name_ok(const char *s, size_t max, bool dots) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++) {
    bool alnum = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');
    if (!alnum && !(s[i] == '-' || (dots && s[i] == '.'))) return false;
    if (!alnum && (i == 0 || i == n - 1)) return false;
  }
  return true;
}

static bool copy_str(char *out, size_t cap, const json_t *v) {
  const char *s = json_string_value(v);
  if (!s || json_string_length(v) >= cap || strlen(s) != json_string_length(v)) return false;
  memcpy(out, s, json_string_length(v) + 1);
  return true;
}

static wisp_jwt_verdict check_k8s(jws *j, wisp_jwt_claims *out) {
  const json_t *k = json_object_get(j->claims, "kubernetes.io");
  const json_t *sa = json_object_get(k, "serviceaccount");
  const json_t *pod = json_object_get(k, "pod");
  char s[SHOWN_MAX + 4];
  if (!json_is_object(k) || !copy_str(out->ns, sizeof(out->ns), json_object_get(k, "namespace")) ||
      !copy_str(out->sa_name, sizeof(out->sa_name), json_object_get(sa, "name")))
    return refuse(j, WISP_JWT_NOT_SERVICE_ACCOUNT,
                  "no kubernetes.io namespace and serviceaccount name (not a service-account token)");
  if (!k8s_name_ok(out->ns, WISP_JWT_NS_MAX, false))
    return refuse(j, WISP_JWT_NOT_SERVICE_ACCOUNT, "namespace \"%s\" is not a Kubernetes namespace name",
                  shown(out->ns, s));
  if (!k8s_name_ok(out->sa_name, WISP_JWT_NAME_MAX, true))
    return refuse(j, WISP_JWT_NOT_SERVICE_ACCOUNT, "service account \"%s\" is not a Kubernetes name",
                  shown(out->sa_name, s));
  out->sa_uid[0] = out->pod_name[0] = out->pod_uid[0] = '\0';
  if (json_object_get(sa, "uid") && !copy_str(out->sa_uid, sizeof(out->sa_uid), json_object_get(sa, "uid")))
    return refuse(j, WISP_JWT_MALFORMED, "kubernetes.io serviceaccount uid is not a short string");
  if (pod && (!copy_str(out->pod_name, sizeof(out->pod_name), json_object_get(pod, "name")) ||
              !copy_str(out->pod_uid, sizeof(out->pod_uid), json_object_get(pod, "uid"))))
    return refuse(j, WISP_JWT_MALFORMED, "kubernetes.io pod has no name and uid strings");
  /* sub, when present, must say the same as the kubernetes.io claims. */
  const char *sub = json_string_value(json_object_get(j->claims, "sub"));
  char want_sub[sizeof(SA_SUB_PREFIX) + WISP_JWT_NS_MAX + WISP_JWT_NAME_MAX + 2];
  snprintf(want_sub, sizeof(want_sub), SA_SUB_PREFIX "%s:%s", out->ns, out->sa_name);
  if (json_object_get(j->claims, "sub") && (!sub || strcmp(sub, want_sub) != 0))
    return refuse(j, WISP_JWT_NOT_SERVICE_ACCOUNT, "sub \"%s\" is not %s", sub ? shown(sub, s) : "?", want_sub);
  return WISP_JWT_OK;
}

static wisp_jwt_verdict verify(jws *j, wisp_jwt_claims *out, const wisp_jwks *keys, const wisp_jwt_expect *want) {
  wisp_jwt_verdict v;
  char s[SHOWN_MAX + 4], w[SHOWN_MAX + 4];
  if ((v = split(j)) != WISP_JWT_OK || (v = check_header(j)) != WISP_JWT_OK ||
      (v = check_signature(j, keys, out)) != WISP_JWT_OK)
    return v;
  const char *iss = json_string_value(json_object_get(j->claims, "iss"));
  /* The API server signs Secret-based tokens with the same keys; they never
   * expire and are bound to nothing. */
  if (iss && !strcmp(iss, LEGACY_ISSUER))
    return refuse(j, WISP_JWT_NOT_BOUND,
                  "a legacy Secret-based service-account token (iss %s: no expiry, no "
                  "audience, bound to no pod); only a projected token (a serviceAccountToken volume with audience "
                  "%s) is taken",
                  LEGACY_ISSUER, want->audience);
  if (!iss || strcmp(iss, want->issuer) != 0)
    return refuse(j, WISP_JWT_ISSUER_MISMATCH, "the token's issuer is %s, not %s", iss ? shown(iss, s) : "missing",
                  shown(want->issuer, w));
  if ((v = check_audience(j, want->audience)) != WISP_JWT_OK || (v = check_times(j, want, out)) != WISP_JWT_OK ||
      (v = check_k8s(j, out)) != WISP_JWT_OK)
    return v;
  if (want->require_pod && !out->pod_name[0])
    return refuse(j, WISP_JWT_NOT_BOUND,
                  "the token has no kubernetes.io pod (made by kubectl create token or a "
                  "TokenRequest without a pod?): only a projected token, which the kubelet binds to its pod (a "
                  "serviceAccountToken volume with audience %s), is taken",
                  want->audience);
  return WISP_JWT_OK;
}

wisp_jwt_verdict wisp_jwt_verify(wisp_jwt_claims *out, const wisp_jwks *keys, const wisp_jwt_expect *want,
                                 const char *token, size_t len, char *why, size_t why_len) {
  jws j = {.tok = token, .len = len, .why = why, .why_len = why_len};
  wisp_jwt_claims c;
  memset(&c, 0, sizeof(c));
  if (why && why_len) why[0] = '\0';
  wisp_jwt_verdict v = verify(&j, &c, keys, want);
  json_decref(j.header);
  json_decref(j.claims);
  if (v == WISP_JWT_OK) *out = c;
  return v;
}
