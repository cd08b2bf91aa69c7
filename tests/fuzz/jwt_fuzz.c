/* Fuzz target for lib/wisp_jwt: the JWKS parser and token verification,
 * both fed by peers (a ConfigMap or the API server; a proxy's Sign call).
 * Byte 0 picks the parser: even, the rest is a JWKS document; odd, the rest
 * is a token verified against the RSA and P-256 keys of the unit test's
 * vectors (tests/unit/jwt/vectors.json) at the vectors' "now", so the
 * corpus' good tokens reach the claim checks. Invariants: a verdict from
 * the enum with a reason that starts with its name, |out| only on success,
 * and an accepted token's namespace and service account never hold '/';
 * each key left out of a set has its reason, and a set with keys but none
 * usable is refused.
 *
 * Replayed over corpus/jwt/ by //tests/fuzz:jwt_fuzz_replay. To fuzz for
 * real, from the workspace root:
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -I. \
 *     -isystem /usr/include/android tests/fuzz/jwt_fuzz.c lib/wisp_jwt.c lib/wisp_mem.c \
 *     -L/usr/lib/x86_64-linux-gnu/android -Wl,-rpath,/usr/lib/x86_64-linux-gnu/android \
 *     -lcrypto -ljansson -o /tmp/jwt_fuzz && /tmp/jwt_fuzz -max_total_time=60 tests/fuzz/corpus/jwt */
#include <string.h>

#include "lib/wisp_jwt.h"
#include "tests/fuzz/fuzz.h"

#define NOW 1700000000
#define ISSUER "https://kubernetes.default.svc.cluster.local"

static const char kJwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"key_ops\":[\"verify\"],\"n\":\"2Naf2WUHHPk5QTrGyKmZykwEqWTMCroodp04LJAHEJ3a0q0"
    "coox3X2VW20RMt8SpQ6ttSYB_N3Xl0g-opOG7xGbf7BCNO5ZWhyByTMwRkau56zwWziUuQz1CEFzkt0lJnuoKDktdnerrVcqBmOMgzi2elt3"
    "h3POFRqHGtkawem_mDYBP2booFqbcdelgtQVtp3_FHqo-Ulpe0mgEQUif9b7A9DJbWXDsiYnB5qf0UWgkH0vFFjW8DFJFYk3bIrMIkdGEYiq"
    "T06bmz2HnpL9_WcezNK7of3ZhFx2m-OvRLHllVS65N_R83lsZyfANa_Ek1T5In9mpTyVkgFOEhxKJ1w\",\"e\":\"AQAB\",\"kid\":\"r"
    "sa-1\",\"use\":\"sig\",\"alg\":\"RS256\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"3y5JBdcbUuhQdg0g1vlvtlxG"
    "_ipKvfsCmpJsakhhWsQ\",\"y\":\"wTVHMGZ-tG53rA0uWb4qdUIBebnQLNMWPHQ4X58AdfA\",\"kid\":\"ec-1\",\"use\":\"sig\""
    ",\"alg\":\"ES256\"}]}";

static wisp_jwks *keys(void) {
  static wisp_jwks *k;
  if (!k) CHECK(wisp_jwks_parse(&k, NULL, kJwks, strlen(kJwks), NULL, 0) == WISP_OK);
  return k;
}

static void fuzz_jwks(const uint8_t *data, size_t size) {
  wisp_jwks *k = NULL;
  size_t skipped = 0;
  char err[256] = "";
  wisp_err rc = wisp_jwks_parse(&k, &skipped, (const char *)data, size, err, sizeof(err));
  CHECK(rc == WISP_OK || rc == WISP_ERR_PARSE || rc == WISP_ERR_TOO_BIG);
  CHECK((rc == WISP_OK) == (k != NULL));
  CHECK(rc == WISP_OK || err[0]);
  CHECK(wisp_jwks_count(k) + wisp_jwks_skipped(k) <= WISP_JWKS_KEYS_MAX);
  /* Every key left out says which and why; a set of keys none usable is refused. */
  CHECK(rc != WISP_OK || skipped == wisp_jwks_skipped(k));
  CHECK(rc != WISP_OK || !skipped || wisp_jwks_count(k));
  for (size_t i = 0; rc == WISP_OK && i < skipped; i++) CHECK(strncmp(wisp_jwks_skip_reason(k, i), "keys[", 5) == 0);
  CHECK(wisp_jwks_skip_reason(k, skipped) == NULL);
  wisp_jwks_free(k);
}

static void fuzz_token(const uint8_t *data, size_t size) {
  wisp_jwt_expect want = {ISSUER, "wisp", NOW, WISP_JWT_DEFAULT_LEEWAY, 24 * 3600, true};
  wisp_jwt_claims out;
  char why[512];
  memset(&out, 0x5a, sizeof(out));
  wisp_jwt_verdict v = wisp_jwt_verify(&out, keys(), &want, (const char *)data, size, why, sizeof(why));
  CHECK(v >= WISP_JWT_OK && v <= WISP_JWT_VERDICT_LAST);
  if (v == WISP_JWT_OK) {
    CHECK(why[0] == '\0');
    CHECK(out.ns[0] && !strchr(out.ns, '/') && out.sa_name[0] && !strchr(out.sa_name, '/'));
    CHECK(out.pod_name[0]); /* bound to a pod, as asked */
  } else {
    CHECK(strncmp(why, wisp_jwt_verdict_name(v), strlen(wisp_jwt_verdict_name(v))) == 0);
    CHECK(out.ns[0] == 0x5a);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 1) {
    fuzz_token(data + 1, size - 1);
  } else {
    fuzz_jwks(data + 1, size - 1);
  }
  return 0;
}
