#include "control/agent/wisp_agent_snapshot.h"

#include <stdint.h>
#include <stdlib.h>

#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "lib/wisp_mem.h"
#include "wisp/v1/config.pb-c.h"

/* DER of every root, for SignResponse.bundle and Snapshot.bundle. */
ProtobufCBinaryData *wag_bundle_der(const wisp_ca *ca, size_t *out_n) {
  STACK_OF(X509) *roots = wisp_ca_get0_roots(ca);
  size_t n = sk_X509_num(roots);
  ProtobufCBinaryData *der = wisp_calloc(n, sizeof(*der));
  for (size_t i = 0; i < n; i++) {
    uint8_t *p = NULL;
    int len = i2d_X509(sk_X509_value(roots, i), &p);
    der[i].data = p;
    der[i].len = len > 0 ? (size_t)len : 0;
  }
  *out_n = n;
  return der;
}

void wag_free_der(ProtobufCBinaryData *der, size_t n) {
  for (size_t i = 0; i < n; i++) OPENSSL_free(der[i].data);
  free(der);
}

/* Snapshot.destinations: the policy's Destination documents, flattened
 * (pointers borrowed from the compiled policy; free the arrays only). */
static Wisp__V1__Destination **destinations(const wisp_policy *compiled, size_t *out_n) {
  const wisp_policy_destination *d = NULL;
  size_t n = compiled ? wisp_policy_get_destinations(compiled, &d) : 0;
  *out_n = n;
  if (!n) return NULL;
  Wisp__V1__Destination *msgs = wisp_calloc(n, sizeof(*msgs));
  Wisp__V1__Destination **ptrs = wisp_calloc(n, sizeof(*ptrs));
  for (size_t i = 0; i < n; i++) {
    wisp__v1__destination__init(&msgs[i]);
    msgs[i].address = (char *)d[i].address;
    msgs[i].spiffe_id = (char *)d[i].spiffe_id;
    ptrs[i] = &msgs[i];
  }
  return ptrs;
}

static void free_destinations(Wisp__V1__Destination **ptrs) {
  if (ptrs) free(ptrs[0]);
  free(ptrs);
}

void wag_new_nonce(char out[33]) {
  static const char hex[] = "0123456789abcdef";
  uint8_t raw[16];
  RAND_bytes(raw, sizeof(raw));
  for (int i = 0; i < 16; i++) {
    out[2 * i] = hex[raw[i] >> 4];
    out[2 * i + 1] = hex[raw[i] & 15];
  }
  out[32] = '\0';
}

wisp_rpc_shared *wag_snapshot_pack(const wisp_ca *ca, const wisp_policy *compiled, const char *policy_yaml,
                                   const char *version) {
  Wisp__V1__Snapshot snap = WISP__V1__SNAPSHOT__INIT;
  snap.version = (char *)version;
  snap.policy_yaml = (char *)policy_yaml;
  snap.bundle = wag_bundle_der(ca, &snap.n_bundle);
  snap.destinations = destinations(compiled, &snap.n_destinations);
  wisp_rpc_shared *shared = wisp_rpc_shared_new(&snap.base);
  wag_free_der(snap.bundle, snap.n_bundle);
  free_destinations(snap.destinations);
  return shared;
}
