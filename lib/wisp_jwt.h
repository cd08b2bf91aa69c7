/* wisp_jwt: Kubernetes service-account tokens, verified as the API server
 * issued them. A token is a compact JWS (RFC 7515) signed RS256 or ES256
 * with a key of the cluster's service-account issuer, whose public keys are
 * a JWKS (RFC 7517; what /openid/v1/jwks serves). Pure: bytes in, result
 * out, no I/O, no clock (the caller gives "now"), so it is unit-tested and
 * fuzzed alone.
 *
 * Ownership: a wisp_jwks is the caller's (wisp_jwks_free); verification
 * borrows it and the token, and fills a caller-allocated claims struct. */
#ifndef WISP_JWT_H
#define WISP_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_err.h"

/* Bounds: a peer never decides how much we parse. */
#define WISP_JWT_TOKEN_MAX (16 * 1024)
#define WISP_JWKS_MAX (1024 * 1024)
#define WISP_JWKS_KEYS_MAX 64
/* RSA keys below this many bits are left out of the set. */
#define WISP_JWT_RSA_MIN_BITS 2048
#define WISP_JWT_RSA_MAX_BITS 8192
/* Clock skew allowed on exp, nbf and iat (the API server allows 60 s too). */
#define WISP_JWT_DEFAULT_LEEWAY 60
/* Kubernetes limits: namespace a DNS label, names DNS subdomains. */
#define WISP_JWT_NS_MAX 63
#define WISP_JWT_NAME_MAX 253
#define WISP_JWT_UID_MAX 64
#define WISP_JWT_ISS_MAX 512

typedef struct wisp_jwks wisp_jwks;

/* Room for the reason one key was left out of a set. */
#define WISP_JWKS_SKIP_WHY_MAX 192

/* Parses a JWKS: {"keys": [...]}. RSA keys (n, e) and EC P-256 keys (x, y)
 * for signing are kept. Every other key is left out on its own, with the
 * reason (wisp_jwks_skip_reason) and counted in |*out_skipped| (may be
 * NULL): another type or curve, "use" other than "sig", an "alg" other
 * than RS256/ES256, a bad kid, bad base64url, an RSA modulus outside
 * WISP_JWT_RSA_MIN_BITS..WISP_JWT_RSA_MAX_BITS or an exponent e that is
 * even, below 3 or not below 2^32, a point not on the curve. So one odd key
 * never rejects the issuer's others. WISP_ERR_PARSE when the document is
 * not a JWKS, or has keys but none usable (the reason names the first);
 * WISP_ERR_TOO_BIG past WISP_JWKS_MAX bytes or WISP_JWKS_KEYS_MAX keys. An
 * empty set parses (and verifies nothing). */
wisp_err wisp_jwks_parse(wisp_jwks **out, size_t *out_skipped, const char *json, size_t len, char *err,
                         size_t err_len) WISP_MUST_CHECK;
void wisp_jwks_free(wisp_jwks *keys);
size_t wisp_jwks_count(const wisp_jwks *keys);
/* The keys left out, and why the |i|th was ("keys[3] (kid x): kty OKP;
 * ..."; borrowed; NULL past the end). */
size_t wisp_jwks_skipped(const wisp_jwks *keys);
const char *wisp_jwks_skip_reason(const wisp_jwks *keys, size_t i);

/* Why a token was refused. */
typedef enum {
  WISP_JWT_OK = 0,
  WISP_JWT_MALFORMED,   /* not a compact JWS with a JSON header and claims */
  WISP_JWT_ALG_REFUSED, /* alg none, HS256, ...: only RS256 and ES256 */
  WISP_JWT_UNKNOWN_KEY, /* no key in the set has the token's kid */
  WISP_JWT_BAD_SIGNATURE,
  WISP_JWT_ISSUER_MISMATCH,
  WISP_JWT_WRONG_AUDIENCE,
  WISP_JWT_EXPIRED,
  WISP_JWT_NOT_YET_VALID,       /* nbf or iat in the future */
  WISP_JWT_NOT_SERVICE_ACCOUNT, /* no kubernetes.io namespace and service account */
  WISP_JWT_TOO_LONG_LIVED,      /* exp - iat past wisp_jwt_expect.max_lifetime, or no iat */
  WISP_JWT_NOT_BOUND,           /* not bound to a pod: a legacy Secret token, or a TokenRequest without one */
} wisp_jwt_verdict;
#define WISP_JWT_VERDICT_LAST WISP_JWT_NOT_BOUND

/* A short name for |v|: "expired", "wrong audience", ... */
const char *wisp_jwt_verdict_name(wisp_jwt_verdict v);

/* What the token must say. */
typedef struct {
  const char *issuer;   /* iss, compared exactly */
  const char *audience; /* must be aud, or one of aud's strings */
  int64_t now;          /* Unix seconds */
  int64_t leeway;       /* seconds of clock skew allowed */
  int64_t max_lifetime; /* exp - iat at most this (iat then required); 0: any */
  bool require_pod;     /* the kubernetes.io pod binding (name and uid) is required */
} wisp_jwt_expect;

/* What a verified service-account token says (kubernetes.io claims). */
typedef struct {
  char ns[WISP_JWT_NS_MAX + 1];
  char sa_name[WISP_JWT_NAME_MAX + 1];
  char sa_uid[WISP_JWT_UID_MAX + 1];
  char pod_name[WISP_JWT_NAME_MAX + 1]; /* "" when the token is not bound to a pod */
  char pod_uid[WISP_JWT_UID_MAX + 1];
  char kid[WISP_JWT_UID_MAX + 1]; /* the key that signed it */
  int64_t exp;
} wisp_jwt_claims;

/* Verifies |token| (|len| bytes; surrounding whitespace and NUL bytes are
 * not allowed) against |keys| and |want|, in this order: form, alg, key,
 * signature, legacy Secret token (iss kubernetes/serviceaccount: refused as
 * not bound), issuer, audience, expiry, not-before/issued-at, lifetime,
 * service-account claims, pod binding. A token naming no kid is tried only
 * when the set holds exactly one key for its alg (the API server always
 * names one; without, a token would cost a signature check per key).
 * Returns WISP_JWT_OK and fills |out|, or the first reason it fails with a
 * sentence in |why| naming the values involved (never the signature). */
wisp_jwt_verdict wisp_jwt_verify(wisp_jwt_claims *out, const wisp_jwks *keys, const wisp_jwt_expect *want,
                                 const char *token, size_t len, char *why, size_t why_len) WISP_MUST_CHECK;

/* Decodes unpadded base64url (RFC 4648 section 5) into |out| (|out_cap|
 * bytes). False on any other character, padding, an impossible length or
 * too small a buffer. */
bool wisp_jwt_b64url_decode(uint8_t *out, size_t out_cap, size_t *out_len, const char *in, size_t len);

#endif
