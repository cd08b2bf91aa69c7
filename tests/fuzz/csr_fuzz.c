/* Fuzz target for the agent's CSR check (lib/wisp_ca wisp_ca_csr_check):
 * every Identity.Sign request carries a CSR from a proxy, or from anyone
 * holding a join token. Input: one mode byte, then the DER.
 *   mode even: the DER is checked as it is;
 *   mode odd:  it is first parsed leniently, given a fixed P-256 key and
 *              signed with it, so that mutations reach the key, extension
 *              and SAN checks behind the signature.
 * Invariants: a refusal is one of the documented codes with a reason, and
 * leaves the output alone; the same bytes give the same answer twice; an
 * accepted CSR asks for a SPIFFE ID with a workload path, holds a key the
 * policy allows (the CSR's own), and the certificate a CA issues for it
 * carries exactly that ID and that key.
 *
 * Replayed over corpus/csr/ by //tests/fuzz:csr_fuzz_replay in the normal
 * suite; tests/fuzz/run_fuzzers.sh fuzzes it for real. */
#include <stdbool.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/x509.h>

#include "lib/wisp_ca.h"
#include "tests/fuzz/fuzz.h"

#define TRUST_DOMAIN "example.org"

/* Made once per process: a signing key for mode odd, and a CA. */
static EVP_PKEY *g_key;
static wisp_ca *g_ca;

static void setup(void) {
  if (g_key) return;
  char err[256];
  CHECK(wisp_ca_key_new_p256(&g_key) == WISP_OK);
  g_ca = wisp_ca_new_root(TRUST_DOMAIN, 86400, err, sizeof(err));
  CHECK(g_ca != NULL);
}

/* The DER's subject and attributes (the extension request among them) in
 * a new CSR for g_key, signed with it (a new buffer), or NULL. A new one:
 * BoringSSL would sign a parsed CSR's cached encoding, old key and all. */
static uint8_t *resign(const uint8_t *der, size_t len, size_t *out_len) {
  const uint8_t *p = der;
  X509_REQ *old = d2i_X509_REQ(NULL, &p, (long)len);
  X509_REQ *req = old ? X509_REQ_new() : NULL;
  bool ok = req && X509_REQ_set_version(req, 0) && X509_REQ_set_subject_name(req, X509_REQ_get_subject_name(old)) &&
            X509_REQ_set_pubkey(req, g_key);
  for (int i = 0; ok && i < X509_REQ_get_attr_count(old); i++) ok = X509_REQ_add1_attr(req, X509_REQ_get_attr(old, i));
  uint8_t *out = NULL;
  if (ok && X509_REQ_sign(req, g_key, EVP_sha256())) {
    int n = i2d_X509_REQ(req, &out);
    *out_len = n > 0 ? (size_t)n : 0;
    if (n <= 0) out = NULL;
  }
  X509_REQ_free(old);
  X509_REQ_free(req);
  ERR_clear_error();
  return out;
}

static bool known_refusal(wisp_err e) {
  return e == WISP_ERR_TOO_BIG || e == WISP_ERR_PARSE || e == WISP_ERR_POLICY || e == WISP_ERR_VERIFY ||
         e == WISP_ERR_IDENTITY;
}

static void check_accepted(const wisp_ca_csr_info *info, const uint8_t *der, size_t len) {
  wisp_spiffe_id id;
  CHECK(wisp_spiffe_parse(&id, info->id.id, strlen(info->id.id), NULL, 0) == WISP_OK);
  CHECK(id.id[id.path_off] == '/');
  CHECK(wisp_ca_key_check_policy(info->pubkey, NULL, 0) == WISP_OK);
  const uint8_t *p = der;
  X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
  CHECK(req != NULL && p == der + len);
  EVP_PKEY *own = X509_REQ_get_pubkey(req);
  CHECK(own != NULL && EVP_PKEY_cmp(own, info->pubkey) == 1);
  EVP_PKEY_free(own);
  X509_REQ_free(req);
  if (strcmp(id.trust_domain, TRUST_DOMAIN) != 0) return;
  X509 *cert = NULL;
  char err[256];
  CHECK(wisp_ca_issue(g_ca, &cert, info->pubkey, info->id.id, 3600, err, sizeof(err)) == WISP_OK);
  wisp_spiffe_id got;
  CHECK(wisp_spiffe_from_cert(&got, cert, NULL, 0) == WISP_OK);
  CHECK(strcmp(got.id, info->id.id) == 0);
  EVP_PKEY *cert_key = X509_get_pubkey(cert);
  CHECK(cert_key != NULL && EVP_PKEY_cmp(cert_key, info->pubkey) == 1);
  EVP_PKEY_free(cert_key);
  X509_free(cert);
}

static void check_der(const uint8_t *der, size_t len) {
  wisp_ca_csr_info info;
  memset(&info, 0x5a, sizeof(info));
  char err[512];
  wisp_err rc = wisp_ca_csr_check(&info, der, len, err, sizeof(err));
  if (rc != WISP_OK) {
    CHECK(known_refusal(rc));
    CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
    for (size_t i = 0; i < sizeof(info); i++) CHECK(((uint8_t *)&info)[i] == 0x5a);
    char tiny[4];
    CHECK(wisp_ca_csr_check(&info, der, len, tiny, sizeof(tiny)) == rc && strlen(tiny) < sizeof(tiny));
    CHECK(wisp_ca_csr_check(&info, der, len, NULL, 0) == rc);
    CHECK(ERR_peek_error() == 0); /* nothing stale left for the next SSL call */
    return;
  }
  CHECK(ERR_peek_error() == 0);
  check_accepted(&info, der, len);
  wisp_ca_csr_info again = {0};
  CHECK(wisp_ca_csr_check(&again, der, len, NULL, 0) == WISP_OK);
  CHECK(strcmp(again.id.id, info.id.id) == 0);
  wisp_ca_csr_info_cleanup(&again);
  wisp_ca_csr_info_cleanup(&info);
  CHECK(info.pubkey == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  setup();
  const uint8_t *der = data + 1;
  size_t len = size - 1;
  if (data[0] % 2 == 0) {
    check_der(der, len);
    return 0;
  }
  size_t signed_len = 0;
  uint8_t *signed_der = resign(der, len, &signed_len);
  if (signed_der) check_der(signed_der, signed_len);
  OPENSSL_free(signed_der);
  return 0;
}
