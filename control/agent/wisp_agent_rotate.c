#include "control/agent/wisp_agent_rotate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/digest.h>
#include <openssl/mem.h>

#include "control/agent/wisp_agent_registry.h"
#include "control/agent/wisp_agent_state.h"
#include "lib/wisp_log.h"
#include "wisp/v1/admin.pb-c.h"

/* ---- CA rotation state ---- */

static wisp_err load_pair(wisp_agent *a, wisp_ca **out, const char *cert_name, const char *key_name, char *err,
                          size_t err_len) {
  char *cert, *key;
  size_t cert_len, key_len;
  WISP_GUARD(wag_load(a, cert_name, &cert, &cert_len, err, err_len));
  wisp_err rc = wag_load(a, key_name, &key, &key_len, err, err_len);
  if (rc == WISP_OK) {
    rc = wisp_ca_load_pem(out, NULL, cert, cert_len, key, key_len, err, err_len);
    OPENSSL_cleanse(key, key_len);
    free(key);
  }
  free(cert);
  return rc;
}

static wisp_err add_roots(wisp_ca *ca, const char *pem, size_t len, char *err, size_t err_len) {
  STACK_OF(X509) *roots = NULL;
  if (len == 0) return WISP_OK;
  WISP_GUARD(wisp_ca_certs_from_pem(&roots, pem, len, err, err_len));
  wisp_err rc = WISP_OK;
  for (size_t i = 0; rc == WISP_OK && i < sk_X509_num(roots); i++)
    rc = wisp_ca_add1_root(ca, sk_X509_value(roots, i), err, err_len);
  sk_X509_pop_free(roots, X509_free);
  return rc;
}

/* Roots of |ca|'s bundle other than its own, as PEM, for F_EXTRA_ROOTS. */
static wisp_err save_extra_roots(wisp_agent *a, char *err, size_t err_len) {
  STACK_OF(X509) *all = wisp_ca_get0_roots(a->ca);
  STACK_OF(X509) *extra = sk_X509_new_null();
  for (size_t i = 1; i < sk_X509_num(all); i++) sk_X509_push(extra, sk_X509_value(all, i));
  char *pem = NULL;
  size_t len = 0;
  wisp_err rc = sk_X509_num(extra) ? wisp_ca_certs_to_pem(&pem, &len, extra) : WISP_OK;
  if (rc == WISP_OK) rc = wag_save(a, F_EXTRA_ROOTS, pem ? pem : "", len, err, err_len);
  free(pem);
  sk_X509_free(extra);
  return rc;
}

wisp_err wag_load_rotation(wisp_agent *a, char *err, size_t err_len) {
  if (wag_state_exists(a, F_EXTRA_ROOTS)) {
    char *pem;
    size_t len;
    WISP_GUARD(wag_load(a, F_EXTRA_ROOTS, &pem, &len, err, err_len));
    wisp_err rc = add_roots(a->ca, pem, len, err, err_len);
    free(pem);
    WISP_GUARD(rc);
  }
  if (wag_state_exists(a, F_NEXT_CERT)) WISP_GUARD(load_pair(a, &a->next_ca, F_NEXT_CERT, F_NEXT_KEY, err, err_len));
  return WISP_OK;
}

static void root_fingerprint(const wisp_ca *ca, char *out, size_t out_len) {
  uint8_t md[32];
  unsigned md_len = 0;
  out[0] = '\0';
  if (!X509_digest(sk_X509_value(wisp_ca_get0_roots(ca), 0), EVP_sha256(), md, &md_len)) return;
  for (unsigned i = 0; i < md_len && 2 * i + 2 < out_len; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static wisp_err rotate_prepare(wisp_agent *a, char *err, size_t err_len) {
  if (a->next_ca) {
    snprintf(err, err_len, "a rotation is already prepared: activate it");
    return WISP_ERR_USAGE;
  }
  wisp_ca *next = wisp_ca_new_root(wisp_ca_get0_trust_domain(a->ca), ROOT_TTL, err, err_len);
  WISP_ENSURE(next, WISP_ERR_INTERNAL);
  char *cert = NULL, *key = NULL;
  size_t cert_len = 0, key_len = 0;
  wisp_err rc = wisp_ca_save_pem(next, &cert, &cert_len, &key, &key_len);
  if (rc != WISP_OK) wag_encode_failed(err, err_len, "the new root's key and certificate", rc);
  if (rc == WISP_OK) rc = wag_save(a, F_NEXT_KEY, key, key_len, err, err_len);
  if (rc == WISP_OK) rc = wag_save(a, F_NEXT_CERT, cert, cert_len, err, err_len);
  if (rc == WISP_OK) rc = wisp_ca_add1_root(a->ca, wisp_ca_get0_cert(next), err, err_len);
  if (rc == WISP_OK) rc = save_extra_roots(a, err, err_len);
  if (key) OPENSSL_cleanse(key, key_len);
  free(cert);
  free(key);
  if (rc != WISP_OK) {
    wisp_ca_free(next);
    return rc;
  }
  a->next_ca = next;
  return WISP_OK;
}

static wisp_err rotate_activate(wisp_agent *a, char *err, size_t err_len) {
  if (!a->next_ca) {
    snprintf(err, err_len, "no rotation is prepared: run prepare first");
    return WISP_ERR_USAGE;
  }
  /* The new root signs; every root trusted so far stays in the bundle. */
  STACK_OF(X509) *old = wisp_ca_get0_roots(a->ca);
  for (size_t i = 0; i < sk_X509_num(old); i++)
    WISP_GUARD(wisp_ca_add1_root(a->next_ca, sk_X509_value(old, i), err, err_len));
  wisp_ca *prev = a->ca;
  a->ca = a->next_ca;
  a->next_ca = NULL;
  wisp_err rc = wag_save_ca(a, err, err_len);
  if (rc == WISP_OK) rc = save_extra_roots(a, err, err_len);
  if (rc != WISP_OK) {
    a->next_ca = a->ca;
    a->ca = prev;
    return rc;
  }
  wag_remove_state(a, F_NEXT_CERT);
  wag_remove_state(a, F_NEXT_KEY);
  wisp_ca_free(prev);
  /* The old root signed its last SVID just now; FINISH waits until that one
   * expired (kept on disk: the agent may restart in between). */
  char until[32];
  int n = snprintf(until, sizeof(until), "%" PRId64 "\n", wag_now() + a->cfg.svid_ttl);
  if (wag_save(a, F_OLD_ROOT_UNTIL, until, (size_t)n, err, err_len) != WISP_OK)
    WISP_ERROR("cannot record when the old root's SVIDs expire: %s", err);
  return WISP_OK;
}

/* When the last SVID signed by a root other than the signing one expires;
 * 0 when none is known to be in use. */
int64_t wag_old_root_svids_until(wisp_agent *a) {
  char *text = NULL, err[256];
  size_t len = 0;
  if (wag_load(a, F_OLD_ROOT_UNTIL, &text, &len, err, sizeof(err)) != WISP_OK) return 0;
  int64_t until = strtoll(text, NULL, 10);
  free(text);
  return until;
}

static wisp_err rotate_finish(wisp_agent *a, bool force, char *err, size_t err_len) {
  if (a->next_ca) {
    snprintf(err, err_len, "the prepared root is not signing yet: activate it first");
    return WISP_ERR_USAGE;
  }
  /* Dropping the old root while SVIDs it signed are in use cuts their
   * holders off from every peer until they renew. */
  int64_t until = wag_old_root_svids_until(a), now = wag_now();
  if (until > now && !force) {
    char when[32];
    time_t t = (time_t)until;
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    snprintf(err, err_len,
             "SVIDs signed by the old root may be in use until %s (one SVID lifetime, %" PRId64
             " s, after ACTIVATE; %zu known identities have not renewed since): finish then, or force it",
             when, a->cfg.svid_ttl, wag_proxies_not_renewed(a, until - a->cfg.svid_ttl, now));
    return WISP_ERR_USAGE;
  }
  /* A fresh copy of the signing CA has only its own root in the bundle. */
  char *cert = NULL, *key = NULL;
  size_t cert_len = 0, key_len = 0;
  wisp_ca *only = NULL;
  wisp_err rc = wisp_ca_save_pem(a->ca, &cert, &cert_len, &key, &key_len);
  if (rc != WISP_OK) wag_encode_failed(err, err_len, "the CA's key and certificate", rc);
  if (rc == WISP_OK) rc = wisp_ca_load_pem(&only, NULL, cert, cert_len, key, key_len, err, err_len);
  if (key) OPENSSL_cleanse(key, key_len);
  free(cert);
  free(key);
  WISP_GUARD(rc);
  wisp_ca_free(a->ca);
  a->ca = only;
  WISP_GUARD(save_extra_roots(a, err, err_len));
  wag_remove_state(a, F_OLD_ROOT_UNTIL);
  return WISP_OK;
}

void wag_on_rotate_ca(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  wisp_agent *a = wisp_rpc_server_data(wisp_rpc_call_server(call));
  if (!wag_admin_allowed(call)) return;
  Wisp__V1__RotateCARequest *req = wisp__v1__rotate_carequest__unpack(NULL, len, msg);
  if (!req) {
    wisp_rpc_finish(call, WISP_GRPC_INVALID_ARGUMENT, "malformed RotateCARequest");
    return;
  }
  char err[512] = "";
  const char *state = NULL;
  wisp_err rc = WISP_ERR_USAGE;
  switch (req->phase) {
    case WISP__V1__CA_ROTATION_PHASE__CA_ROTATION_PREPARE:
      rc = rotate_prepare(a, err, sizeof(err));
      state = "prepared";
      break;
    case WISP__V1__CA_ROTATION_PHASE__CA_ROTATION_ACTIVATE:
      rc = rotate_activate(a, err, sizeof(err));
      state = "active";
      break;
    case WISP__V1__CA_ROTATION_PHASE__CA_ROTATION_FINISH:
      rc = rotate_finish(a, req->force, err, sizeof(err));
      state = "done";
      break;
    default:
      snprintf(err, sizeof(err), "phase must be PREPARE, ACTIVATE or FINISH");
  }
  wisp__v1__rotate_carequest__free_unpacked(req, NULL);
  if (rc != WISP_OK) {
    wisp_rpc_finish(call, rc == WISP_ERR_USAGE ? WISP_GRPC_FAILED_PRECONDITION : WISP_GRPC_INTERNAL, err);
    return;
  }
  /* The agent's own certificate follows the signing root, and every proxy
   * gets the new bundle now. */
  if (wag_issue_agent_cert(a, err, sizeof(err)) != WISP_OK)
    WISP_ERROR("cannot reissue the agent's certificate: %s", err);
  wag_push_all(a);
  Wisp__V1__RotateCAResponse resp = WISP__V1__ROTATE_CARESPONSE__INIT;
  char fp[65];
  root_fingerprint(a->ca, fp, sizeof(fp));
  resp.state = (char *)state;
  resp.bundle_roots = (uint32_t)sk_X509_num(wisp_ca_get0_roots(a->ca));
  resp.signing_root_sha256 = fp;
  if (wisp_rpc_send(call, &resp.base) == WISP_OK) wisp_rpc_finish(call, WISP_GRPC_OK, NULL);
  wag_log_event("ca_rotation", "state", state, "signing_root_sha256", fp);
}
