#include "control/agent/wisp_agent_state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_state.h"

int64_t wag_now(void) { return (int64_t)time(NULL); }

/* notAfter as Unix time; 0 if it cannot be read (only shown to users). */
int64_t wag_not_after(const X509 *cert) {
  int64_t t = 0;
  if (wisp_ca_cert_not_after(cert, &t) != WISP_OK) return 0;
  return t;
}

void wag_version_str(const wisp_agent *a, char *out, size_t len) { snprintf(out, len, "%" PRIu64, a->version); }

void wag_log_event(const char *type, const char *k1, const char *v1, const char *k2, const char *v2) {
  wisp_json j;
  wisp_json_begin(&j, type);
  wisp_json_str(&j, k1, v1);
  wisp_json_str(&j, k2, v2);
  wisp_json_emit(&j);
  fflush(stdout);
}

/* Admin: plaintext over the Unix socket, from root or the agent's own user.
 * Proxies may be given the socket (a node's hostPath, a group that can open
 * it) for Identity and Config; that must not let them mint tokens or
 * change the policy. */
void wag_encode_failed(char *err, size_t err_len, const char *what, wisp_err rc) {
  snprintf(err, err_len, "cannot encode %s as PEM: %s", what, wisp_err_str(rc));
}

bool wag_admin_allowed(wisp_rpc_call *call) {
  uid_t uid;
  if (!wisp_rpc_call_local(call)) {
    wisp_rpc_finish(call, WISP_GRPC_PERMISSION_DENIED,
                    "the Admin API is only served over the agent's Unix socket without TLS");
    return false;
  }
  if (wisp_rpc_call_local_uid(call, &uid) && (uid == 0 || uid == geteuid())) return true;
  char msg[160];
  snprintf(msg, sizeof(msg), "the Admin API is served to root and to the agent's user (uid %u) only, not to uid %d",
           (unsigned)geteuid(), wisp_rpc_call_local_uid(call, &uid) ? (int)uid : -1);
  wisp_rpc_finish(call, WISP_GRPC_PERMISSION_DENIED, msg);
  return false;
}

/* ---- state dir ---- */

wisp_err wag_save(wisp_agent *a, const char *name, const void *data, size_t len, char *err, size_t err_len) {
  return wisp_state_write(a->cfg.state_dir, name, data, len, 0600, err, err_len);
}

wisp_err wag_save_tokens(wisp_agent *a) {
  wisp_buf b = {0};
  char err[256];
  wisp_tokens_prune(&a->tokens, wag_now());
  wisp_err rc = wisp_tokens_serialize(&a->tokens, &b);
  if (rc == WISP_OK) rc = wag_save(a, F_TOKENS, wisp_buf_rptr(&b), wisp_buf_len(&b), err, sizeof(err));
  if (rc != WISP_OK) WISP_ERROR("cannot save join tokens: %s", err);
  wisp_buf_cleanup(&b);
  return rc;
}

/* Reads a state file; WISP_ERR_IO with errno ENOENT when it is not there. */
wisp_err wag_load(wisp_agent *a, const char *name, char **out, size_t *out_len, char *err, size_t err_len) {
  uint8_t *data = NULL;
  size_t len = 0;
  WISP_GUARD(wisp_state_read(a->cfg.state_dir, name, STATE_MAX, &data, &len, err, err_len));
  *out = wisp_realloc(data, len + 1);
  (*out)[len] = '\0';
  *out_len = len;
  return WISP_OK;
}

bool wag_state_exists(const wisp_agent *a, const char *name) {
  char path[4096];
  struct stat st;
  snprintf(path, sizeof(path), "%s/%s", a->cfg.state_dir, name);
  return stat(path, &st) == 0;
}

wisp_err wag_save_ca(wisp_agent *a, char *err, size_t err_len) {
  char *cert = NULL, *key = NULL;
  size_t cert_len = 0, key_len = 0;
  wisp_err rc = wisp_ca_save_pem(a->ca, &cert, &cert_len, &key, &key_len);
  if (rc != WISP_OK) wag_encode_failed(err, err_len, "the CA's key and certificate", rc);
  if (rc == WISP_OK) rc = wag_save(a, F_CA_KEY, key, key_len, err, err_len);
  if (rc == WISP_OK) rc = wag_save(a, F_CA_CERT, cert, cert_len, err, err_len);
  if (key) OPENSSL_cleanse(key, key_len);
  free(cert);
  free(key);
  return rc;
}

/* The CA: --ca-cert/--ca-key, else the one in the state dir, else a new
 * root written there. */
wisp_err wag_load_ca(wisp_agent *a, char *err, size_t err_len) {
  if (a->cfg.ca_cert) {
    return wisp_ca_load_files(&a->ca, a->cfg.trust_domain, a->cfg.ca_cert, NULL, a->cfg.ca_key, err, err_len);
  }
  if (wag_state_exists(a, F_CA_CERT)) {
    char *cert, *key;
    size_t cert_len, key_len;
    WISP_GUARD(wag_load(a, F_CA_CERT, &cert, &cert_len, err, err_len));
    wisp_err rc = wag_load(a, F_CA_KEY, &key, &key_len, err, err_len);
    if (rc == WISP_OK) {
      rc = wisp_ca_load_pem(&a->ca, NULL, cert, cert_len, key, key_len, err, err_len);
      OPENSSL_cleanse(key, key_len);
      free(key);
    }
    free(cert);
    return rc;
  }
  a->ca = wisp_ca_new_root(a->cfg.trust_domain, ROOT_TTL, err, err_len);
  WISP_ENSURE(a->ca, WISP_ERR_USAGE);
  WISP_GUARD(wag_save_ca(a, err, err_len));
  WISP_INFO("generated a new root CA for spiffe://%s in %s", a->cfg.trust_domain, a->cfg.state_dir);
  return WISP_OK;
}

static wisp_err certs_pem(STACK_OF(X509) * certs, char **out, size_t *out_len) {
  return wisp_ca_certs_to_pem(out, out_len, certs);
}

void wag_remove_state(wisp_agent *a, const char *name) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", a->cfg.state_dir, name);
  unlink(path);
}

/* The agent's own identity: proxies verify the agent by it, so it is
 * never issued to anyone else (see authorize_sign). */
void wag_agent_id(const wisp_agent *a, char out[WISP_SPIFFE_MAX + 1]) {
  snprintf(out, WISP_SPIFFE_MAX + 1, "spiffe://%s/wisp/agent", wisp_ca_get0_trust_domain(a->ca));
}

/* The agent's own TLS identity, spiffe://<td>/wisp/agent, from its CA. */
wisp_err wag_issue_agent_cert(wisp_agent *a, char *err, size_t err_len) {
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  char id[WISP_SPIFFE_MAX + 1];
  wag_agent_id(a, id);
  wisp_err rc = wisp_ca_key_new_p256(&key);
  if (rc != WISP_OK) {
    snprintf(err, err_len, "cannot make a P-256 key for the agent's certificate: %s", wisp_err_str(rc));
    return rc;
  }
  rc = wisp_ca_issue(a->ca, &cert, key, id, AGENT_CERT_TTL, err, err_len);
  STACK_OF(X509) *chain = sk_X509_new_null();
  char *pem = NULL, *key_pem = NULL, *bundle = NULL;
  size_t pem_len = 0, key_len = 0, bundle_len = 0;
  if (rc == WISP_OK) {
    sk_X509_push(chain, cert);
    for (size_t i = 0; i < sk_X509_num(wisp_ca_get0_chain(a->ca)); i++)
      sk_X509_push(chain, sk_X509_value(wisp_ca_get0_chain(a->ca), i));
    rc = certs_pem(chain, &pem, &pem_len);
    if (rc != WISP_OK) wag_encode_failed(err, err_len, "the agent's certificate chain", rc);
  }
  if (rc == WISP_OK && (rc = wisp_ca_key_to_pem(&key_pem, &key_len, key)) != WISP_OK)
    wag_encode_failed(err, err_len, "the agent's key", rc);
  if (rc == WISP_OK && (rc = certs_pem(wisp_ca_get0_roots(a->ca), &bundle, &bundle_len)) != WISP_OK)
    wag_encode_failed(err, err_len, "the trust bundle", rc);
  if (rc == WISP_OK) rc = wag_save(a, F_AGENT_KEY, key_pem, key_len, err, err_len);
  if (rc == WISP_OK) rc = wag_save(a, F_AGENT_CERT, pem, pem_len, err, err_len);
  if (rc == WISP_OK) rc = wag_save(a, F_BUNDLE, bundle, bundle_len, err, err_len);
  if (rc == WISP_OK) {
    char path[3][4096];
    snprintf(path[0], sizeof(path[0]), "%s/%s", a->cfg.state_dir, F_AGENT_CERT);
    snprintf(path[1], sizeof(path[1]), "%s/%s", a->cfg.state_dir, F_AGENT_KEY);
    snprintf(path[2], sizeof(path[2]), "%s/%s", a->cfg.state_dir, F_BUNDLE);
    rc = wisp_tls_load_files(a->tls, path[0], path[1], path[2], err, err_len);
  }
  /* The webhook's certificate and the bundle injected pods get follow too. */
  if (rc == WISP_OK && a->injector) rc = wisp_injector_refresh(a->injector, a->ca, err, err_len);
  sk_X509_free(chain);
  X509_free(cert);
  EVP_PKEY_free(key);
  free(pem);
  free(key_pem);
  free(bundle);
  return rc;
}
