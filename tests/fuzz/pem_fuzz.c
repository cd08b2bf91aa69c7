/* Fuzz target for lib/wisp_ca's PEM and DER loaders, which read files a
 * process finds on disk rather than writes itself this run: the proxy's
 * --svid-cache (svid.pem: a key and a chain in one file; bundle.pem), the
 * agent's state dir (ca.crt + ca.key, extra-roots.pem, next-ca.*), and
 * certificate lists from the wire. Input: a mode byte, then the bytes.
 *   0: certificates from PEM    1: certificates from DER
 *   2: a key and a chain from one PEM, as the SVID cache is read
 *   3: a CA: certificate PEM, a 0xff byte, key PEM (wisp_ca_load_pem)
 * Invariants: refusals are documented codes with a reason and leave the
 * output alone; 1 to WISP_CA_CERTS_MAX certificates; what loads re-encodes
 * (PEM, DER, PKCS#8) to something that loads as the same certificates and
 * key; DER input re-encodes to exactly itself; a CA that loads saves to PEM
 * that loads again for the same trust domain, and issues an SVID that its
 * own certificate verifies.
 *
 * Replayed over corpus/pem/ by //tests/fuzz:pem_fuzz_replay in the normal
 * suite; tests/fuzz/run_fuzzers.sh fuzzes it for real. */
#include <stdbool.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "lib/wisp_ca.h"
#include "tests/fuzz/fuzz.h"

#define SENTINEL ((void *)0x1)
#define CA_SEPARATOR 0xff

static bool same_certs(const STACK_OF(X509) * a, const STACK_OF(X509) * b) {
  if (sk_X509_num(a) != sk_X509_num(b)) return false;
  for (size_t i = 0; i < sk_X509_num(a); i++)
    if (X509_cmp(sk_X509_value(a, i), sk_X509_value(b, i)) != 0) return false;
  return true;
}

static void check_refusal(wisp_err rc, const char *err, size_t err_len) {
  CHECK(rc == WISP_ERR_PARSE || rc == WISP_ERR_TOO_BIG);
  CHECK(memchr(err, '\0', err_len) != NULL && err[0] != '\0');
}

/* Certificates re-encode to PEM and DER that load as the same ones. */
static void check_certs(const STACK_OF(X509) * certs) {
  CHECK(sk_X509_num(certs) >= 1 && sk_X509_num(certs) <= WISP_CA_CERTS_MAX);
  char *pem = NULL;
  size_t pem_len = 0;
  CHECK(wisp_ca_certs_to_pem(&pem, &pem_len, certs) == WISP_OK && strlen(pem) == pem_len);
  STACK_OF(X509) *back = NULL;
  CHECK(wisp_ca_certs_from_pem(&back, pem, pem_len, NULL, 0) == WISP_OK && same_certs(certs, back));
  sk_X509_pop_free(back, X509_free);
  free(pem);
  uint8_t *der = NULL;
  size_t der_len = 0;
  CHECK(wisp_ca_certs_to_der(&der, &der_len, certs) == WISP_OK);
  CHECK(wisp_ca_certs_from_der(&back, der, der_len, NULL, 0) == WISP_OK && same_certs(certs, back));
  sk_X509_pop_free(back, X509_free);
  free(der);
  char serial[WISP_CA_SERIAL_HEX_MAX];
  for (size_t i = 0; i < sk_X509_num(certs); i++) {
    wisp_ca_cert_serial_hex(sk_X509_value(certs, i), serial, sizeof(serial));
    CHECK(strlen(serial) > 0 && strlen(serial) < sizeof(serial));
  }
}

static void from_pem(const char *pem, size_t len) {
  STACK_OF(X509) *certs = SENTINEL;
  char err[256];
  wisp_err rc = wisp_ca_certs_from_pem(&certs, pem, len, err, sizeof(err));
  if (rc != WISP_OK) {
    check_refusal(rc, err, sizeof(err));
    CHECK(certs == SENTINEL);
    return;
  }
  check_certs(certs);
  sk_X509_pop_free(certs, X509_free);
}

static void from_der(const uint8_t *der, size_t len) {
  STACK_OF(X509) *certs = SENTINEL;
  char err[256];
  wisp_err rc = wisp_ca_certs_from_der(&certs, der, len, err, sizeof(err));
  if (rc != WISP_OK) {
    check_refusal(rc, err, sizeof(err));
    CHECK(certs == SENTINEL);
    return;
  }
  check_certs(certs);
  uint8_t *again = NULL;
  size_t again_len = 0;
  CHECK(wisp_ca_certs_to_der(&again, &again_len, certs) == WISP_OK);
  CHECK(again_len == len && memcmp(again, der, len) == 0);
  free(again);
  sk_X509_pop_free(certs, X509_free);
}

/* The SVID cache's svid.pem: the key, then the chain, in one file. */
static void key_and_chain(const char *pem, size_t len) {
  EVP_PKEY *key = SENTINEL;
  char err[256];
  wisp_err rc = wisp_ca_key_from_pem(&key, pem, len, err, sizeof(err));
  if (rc != WISP_OK) {
    check_refusal(rc, err, sizeof(err));
    CHECK(key == SENTINEL);
  } else {
    char *out = NULL;
    size_t out_len = 0;
    EVP_PKEY *back = NULL;
    CHECK(wisp_ca_key_to_pem(&out, &out_len, key) == WISP_OK && strlen(out) == out_len);
    CHECK(wisp_ca_key_from_pem(&back, out, out_len, NULL, 0) == WISP_OK && EVP_PKEY_cmp(key, back) == 1);
    wisp_err policy = wisp_ca_key_check_policy(key, err, sizeof(err));
    CHECK(policy == WISP_OK || (policy == WISP_ERR_POLICY && err[0] != '\0'));
    EVP_PKEY_free(back);
    EVP_PKEY_free(key);
    free(out);
  }
  from_pem(pem, len);
}

static void load_ca(const char *in, size_t len) {
  const char *sep = memchr(in, CA_SEPARATOR, len);
  if (!sep) return;
  const char *key = sep + 1;
  size_t cert_len = (size_t)(sep - in), key_len = len - cert_len - 1;
  wisp_ca *ca = SENTINEL;
  char err[512];
  wisp_err rc = wisp_ca_load_pem(&ca, NULL, in, cert_len, key, key_len, err, sizeof(err));
  if (rc != WISP_OK) {
    CHECK(rc == WISP_ERR_PARSE || rc == WISP_ERR_TOO_BIG || rc == WISP_ERR_POLICY || rc == WISP_ERR_USAGE ||
          rc == WISP_ERR_VERIFY || rc == WISP_ERR_IDENTITY);
    CHECK(err[0] != '\0' && ca == SENTINEL);
    return;
  }
  char *cert_pem = NULL, *key_pem = NULL;
  size_t cl = 0, kl = 0;
  CHECK(wisp_ca_save_pem(ca, &cert_pem, &cl, &key_pem, &kl) == WISP_OK);
  wisp_ca *again = NULL;
  CHECK(wisp_ca_load_pem(&again, wisp_ca_get0_trust_domain(ca), cert_pem, cl, key_pem, kl, err, sizeof(err)) ==
        WISP_OK);
  CHECK(strcmp(wisp_ca_get0_trust_domain(again), wisp_ca_get0_trust_domain(ca)) == 0);
  CHECK(X509_cmp(wisp_ca_get0_cert(again), wisp_ca_get0_cert(ca)) == 0);
  /* It signs: an SVID it issues verifies with its certificate's key. */
  char id[WISP_SPIFFE_MAX + 1];
  snprintf(id, sizeof(id), "spiffe://%s/fuzz", wisp_ca_get0_trust_domain(ca));
  EVP_PKEY *leaf_key = NULL;
  X509 *leaf = NULL;
  CHECK(wisp_ca_key_new_p256(&leaf_key) == WISP_OK);
  if (wisp_ca_issue(ca, &leaf, leaf_key, id, 60, err, sizeof(err)) == WISP_OK) {
    EVP_PKEY *ca_pub = X509_get_pubkey(wisp_ca_get0_cert(ca));
    CHECK(ca_pub != NULL && X509_verify(leaf, ca_pub) == 1);
    EVP_PKEY_free(ca_pub);
    X509_free(leaf);
  }
  EVP_PKEY_free(leaf_key);
  free(cert_pem);
  free(key_pem);
  wisp_ca_free(again);
  wisp_ca_free(ca);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *text = (const char *)data + 1;
  switch (data[0] % 4) {
    case 0:
      from_pem(text, size - 1);
      break;
    case 1:
      from_der(data + 1, size - 1);
      break;
    case 2:
      key_and_chain(text, size - 1);
      break;
    default:
      load_ca(text, size - 1);
  }
  CHECK(ERR_peek_error() == 0); /* nothing stale left for the next SSL call */
  return 0;
}
