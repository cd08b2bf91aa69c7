#include "control/agent/wisp_agent_sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "control/agent/wisp_agent_registry.h"
#include "control/agent/wisp_agent_snapshot.h"
#include "control/agent/wisp_agent_state.h"
#include "lib/wisp_mem.h"
#include "wisp/v1/admin.pb-c.h"
#include "wisp/v1/identity.pb-c.h"

#define DEFAULT_TOKEN_TTL 3600

static void sign_reply(wisp_rpc_call *call, wisp_agent *a, X509 *leaf, const char *id) {
  Wisp__V1__SignResponse resp = WISP__V1__SIGN_RESPONSE__INIT;
  STACK_OF(X509) *chain = wisp_ca_get0_chain(a->ca);
  size_t n = 1 + sk_X509_num(chain);
  ProtobufCBinaryData *der = wisp_calloc(n, sizeof(*der));
  for (size_t i = 0; i < n; i++) {
    uint8_t *p = NULL;
    int len = i2d_X509(i == 0 ? leaf : sk_X509_value(chain, i - 1), &p);
    der[i].data = p;
    der[i].len = len > 0 ? (size_t)len : 0;
  }
  resp.spiffe_id = (char *)id;
  resp.chain = der;
  resp.n_chain = n;
  resp.bundle = wag_bundle_der(a->ca, &resp.n_bundle);
  resp.not_after_unix = wag_not_after(leaf);
  if (wisp_rpc_send(call, &resp.base) == WISP_OK) {
    wisp_rpc_finish(call, WISP_GRPC_OK, NULL);
  } else {
    wisp_rpc_finish(call, WISP_GRPC_INTERNAL, "cannot send the response");
  }
  wag_free_der(der, n);
  wag_free_der(resp.bundle, resp.n_bundle);
}

/* Whether the caller's SVID was issued on a service-account token. */
static bool peer_from_sa_token(const wisp_rpc_call *call) {
  X509 *cert = wisp_rpc_call_get1_peer_cert(call);
  char origin[sizeof(WISP_CA_ORIGIN_SA_TOKEN)];
  bool from_sa = cert && wisp_ca_cert_origin(cert, origin, sizeof(origin)) && !strcmp(origin, WISP_CA_ORIGIN_SA_TOKEN);
  X509_free(cert);
  return from_sa;
}

/* Who may have an SVID for the ID the CSR asks for: the bearer of a join
 * token for it, of a service-account token for it, or a caller already
 * holding a valid SVID for it, unless that SVID came from a service-account
 * token: such an SVID lives no longer than its token, and so does each
 * renewal, which needs a current token (else a stolen SVID key would renew
 * forever). What the caller claims decides nothing. The agent's own ID is
 * never issued: with it a proxy could pose as the agent to every other
 * proxy. |origin| says what the SVID will record of the proof. */
static wisp_grpc_status authorize_sign(wisp_agent *a, wisp_rpc_call *call, const Wisp__V1__SignRequest *req,
                                       const char *id, char *why, size_t why_len, const char **via,
                                       wisp_ca_origin *origin) {
  char own[WISP_SPIFFE_MAX + 1];
  wag_agent_id(a, own);
  if (strcmp(id, own) == 0) {
    snprintf(why, why_len, "%s is the agent's own identity; it is never issued", id);
    return WISP_GRPC_PERMISSION_DENIED;
  }
  if (req->join_token && req->join_token[0]) {
    *via = "join-token";
    wisp_err rc = wisp_tokens_use(&a->tokens, req->join_token, id, wag_now(), why, why_len);
    if (rc == WISP_OK) {
      /* A spent one-use token must stay spent across a restart. */
      if (wag_save_tokens(a) != WISP_OK) {
        snprintf(why, why_len, "cannot record the join token as used; try again");
        return WISP_GRPC_UNAVAILABLE;
      }
      return WISP_GRPC_OK;
    }
    return rc == WISP_ERR_POLICY ? WISP_GRPC_PERMISSION_DENIED : WISP_GRPC_UNAUTHENTICATED;
  }
  if (req->sa_token.len) {
    *via = "service-account";
    origin->name = WISP_CA_ORIGIN_SA_TOKEN;
    return wisp_sa_authorize(a->sa, (const char *)req->sa_token.data, req->sa_token.len, id,
                             wisp_ca_get0_trust_domain(a->ca), &origin->not_after_max, why, why_len);
  }
  *via = "renewal";
  const char *peer = wisp_rpc_call_peer_id(call);
  if (!peer) {
    snprintf(why, why_len, "no join token, and no client certificate to renew: connect with TLS and the current SVID");
    return WISP_GRPC_UNAUTHENTICATED;
  }
  if (strcmp(peer, id) != 0) {
    snprintf(why, why_len, "caller is %s but the CSR asks for %s", peer, id);
    return WISP_GRPC_PERMISSION_DENIED;
  }
  if (peer_from_sa_token(call)) {
    snprintf(why, why_len,
             "the SVID of %s was issued on a service-account token and lives no longer than it: "
             "renewing it needs a current token (sa_token; the proxy sends its --sa-token-file, which the kubelet "
             "rotates)",
             id);
    return WISP_GRPC_UNAUTHENTICATED;
  }
  return WISP_GRPC_OK;
}

void wag_on_sign(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  wisp_agent *a = wisp_rpc_server_data(wisp_rpc_call_server(call));
  Wisp__V1__SignRequest *req = wisp__v1__sign_request__unpack(NULL, len, msg);
  if (!req) {
    wisp_rpc_finish(call, WISP_GRPC_INVALID_ARGUMENT, "malformed SignRequest");
    return;
  }
  wisp_ca_csr_info csr = {0};
  char why[512];
  const char *via = "";
  wisp_ca_origin origin = {NULL, 0};
  X509 *leaf = NULL;
  wisp_err rc = wisp_ca_csr_check(&csr, req->csr.data, req->csr.len, why, sizeof(why));
  if (rc != WISP_OK) {
    wisp_rpc_finishf(call, WISP_GRPC_INVALID_ARGUMENT, "bad CSR: %s", why);
  } else {
    wisp_grpc_status st = authorize_sign(a, call, req, csr.id.id, why, sizeof(why), &via, &origin);
    if (st != WISP_GRPC_OK) {
      wisp_rpc_finish(call, st, why);
    } else if (wisp_ca_issue_from(a->ca, &leaf, csr.pubkey, csr.id.id, origin.name ? &origin : NULL, a->cfg.svid_ttl,
                                  why, sizeof(why)) != WISP_OK) {
      wisp_rpc_finishf(call, WISP_GRPC_FAILED_PRECONDITION, "cannot issue: %s", why);
    } else {
      proxy_record *r = wag_proxy_get(a, csr.id.id);
      if (r) {
        wisp_ca_cert_serial_hex(leaf, r->serial, sizeof(r->serial));
        r->not_after = wag_not_after(leaf);
        r->signed_at = r->last_seen = wag_now();
      }
      sign_reply(call, a, leaf, csr.id.id);
      wag_log_event("sign", "spiffe_id", csr.id.id, "via", via);
    }
  }
  if (!leaf && csr.id.id[0]) wag_log_event("sign_refused", "spiffe_id", csr.id.id, "reason", why);
  X509_free(leaf);
  wisp_ca_csr_info_cleanup(&csr);
  wisp__v1__sign_request__free_unpacked(req, NULL);
}

void wag_on_create_token(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  wisp_agent *a = wisp_rpc_server_data(wisp_rpc_call_server(call));
  if (!wag_admin_allowed(call)) return;
  Wisp__V1__CreateJoinTokenRequest *req = wisp__v1__create_join_token_request__unpack(NULL, len, msg);
  if (!req) {
    wisp_rpc_finish(call, WISP_GRPC_INVALID_ARGUMENT, "malformed CreateJoinTokenRequest");
    return;
  }
  wisp_spiffe_id id;
  char why[256], own[WISP_SPIFFE_MAX + 1];
  const wisp_token *tok = NULL;
  int64_t ttl = req->ttl_seconds > 0 ? req->ttl_seconds : DEFAULT_TOKEN_TTL;
  wag_agent_id(a, own);
  if (wisp_spiffe_parse(&id, req->spiffe_id, strlen(req->spiffe_id), why, sizeof(why)) != WISP_OK) {
    wisp_rpc_finishf(call, WISP_GRPC_INVALID_ARGUMENT, "spiffe_id %s: %s", req->spiffe_id, why);
  } else if (strcmp(id.trust_domain, wisp_ca_get0_trust_domain(a->ca)) != 0) {
    wisp_rpc_finishf(call, WISP_GRPC_INVALID_ARGUMENT, "spiffe_id %s is outside this agent's trust domain %s",
                     req->spiffe_id, wisp_ca_get0_trust_domain(a->ca));
  } else if (strcmp(id.id, own) == 0) {
    wisp_rpc_finishf(call, WISP_GRPC_INVALID_ARGUMENT, "%s is the agent's own identity; no token can be made for it",
                     id.id);
  } else if (wisp_tokens_create(&a->tokens, &tok, id.id, wag_now(), ttl, req->reusable) != WISP_OK ||
             wag_save_tokens(a) != WISP_OK) {
    wisp_rpc_finish(call, WISP_GRPC_INTERNAL, "cannot store the join token");
  } else {
    Wisp__V1__CreateJoinTokenResponse resp = WISP__V1__CREATE_JOIN_TOKEN_RESPONSE__INIT;
    char token[WISP_TOKEN_LEN + 1];
    snprintf(token, sizeof(token), "%s", tok->token);
    resp.token = token;
    resp.expires_unix = tok->expires;
    if (wisp_rpc_send(call, &resp.base) == WISP_OK) wisp_rpc_finish(call, WISP_GRPC_OK, NULL);
    wag_log_event("token_created", "spiffe_id", id.id, "reusable", req->reusable ? "true" : "false");
  }
  wisp__v1__create_join_token_request__free_unpacked(req, NULL);
}
