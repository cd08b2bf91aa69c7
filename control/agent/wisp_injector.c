/* The agent's admission webhook, set up; see wisp_injector.h. */
#include "control/agent/wisp_injector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/mem.h>

#include "control/agent/wisp_webhook.h"
#include "control/wispctl/inject.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"

struct wisp_injector {
  wisp_injector_config cfg;
  char *bundle;              /* the CA's roots as PEM: injected pods verify the agent by it */
  char td[WISP_SPIFFE_TD_MAX + 1];
  wispctl_inject_cfg inject; /* borrows |bundle|, |td| and |cfg|'s strings */
  wisp_webhook *webhook;
};

/* The inject options for |ca|'s bundle; on failure the old ones stay. */
static wisp_err prepare(wisp_injector *inj, wisp_ca *ca, char *err, size_t err_len) {
  char *pem = NULL;
  size_t len = 0;
  WISP_GUARD(wisp_ca_certs_to_pem(&pem, &len, wisp_ca_get0_roots(ca)));
  snprintf(inj->td, sizeof(inj->td), "%s", wisp_ca_get0_trust_domain(ca));
  wispctl_inject_opts o = {.agent = inj->cfg.agent,
                           .trust_domain = inj->td,
                           .image = inj->cfg.image,
                           .proxy_uid = inj->cfg.proxy_uid,
                           .identity = WISPCTL_INJECT_SA_TOKEN,
                           .bundle_pem = pem};
  if (inj->cfg.identity && !strcmp(inj->cfg.identity, "join-token")) {
    o.identity = WISPCTL_INJECT_JOIN_TOKEN;
  } else if (inj->cfg.identity && strcmp(inj->cfg.identity, "sa-token") != 0) {
    snprintf(err, err_len, "--inject-identity %s: want sa-token or join-token", inj->cfg.identity);
    free(pem);
    return WISP_ERR_USAGE;
  }
  wispctl_inject_cfg next;
  char why[512];
  if (wispctl_inject_prepare(&next, &o, why, sizeof(why)) != WISP_OK) {
    /* inject's messages name its own flags: say ours. */
    snprintf(err, err_len, "--inject-*: %s", why);
    free(pem);
    return WISP_ERR_USAGE;
  }
  free(inj->bundle);
  inj->bundle = pem;
  inj->inject = next;
  return WISP_OK;
}

static wisp_err issue_cert(wisp_injector *inj, wisp_ca *ca, char *err, size_t err_len) {
  EVP_PKEY *key = NULL;
  X509 *leaf = NULL;
  WISP_GUARD(wisp_ca_key_new_p256(&key));
  wisp_err rc = wisp_ca_issue_server(ca, &leaf, key, inj->cfg.name, WISP_INJECTOR_CERT_TTL, err, err_len);
  STACK_OF(X509) *chain = sk_X509_new_null();
  if (rc == WISP_OK) {
    sk_X509_push(chain, leaf);
    for (size_t i = 0; i < sk_X509_num(wisp_ca_get0_chain(ca)); i++)
      sk_X509_push(chain, sk_X509_value(wisp_ca_get0_chain(ca), i));
    rc = wisp_webhook_set_cert(inj->webhook, key, chain, err, err_len);
  }
  sk_X509_free(chain);
  X509_free(leaf);
  EVP_PKEY_free(key);
  return rc;
}

wisp_err wisp_injector_refresh(wisp_injector *inj, wisp_ca *ca, char *err, size_t err_len) {
  WISP_GUARD(prepare(inj, ca, err, err_len));
  return issue_cert(inj, ca, err, err_len);
}

wisp_err wisp_injector_new(wisp_injector **out, struct ev_loop *loop, const wisp_injector_config *cfg, wisp_ca *ca,
                           char *err, size_t err_len) {
  *out = NULL;
  if (!cfg->agent) {
    snprintf(err, err_len, "--webhook needs --inject-agent: what injected proxies dial (https://<the agent "
                           "Service's cluster IP>:8443, or unix:///PATH for an agent on every node)");
    return WISP_ERR_USAGE;
  }
  wisp_injector *inj = wisp_calloc(1, sizeof(*inj));
  inj->cfg = *cfg;
  if (!inj->cfg.name) inj->cfg.name = WISP_INJECTOR_DEFAULT_NAME;
  wisp_err rc = prepare(inj, ca, err, err_len);
  wisp_webhook_config wcfg = {cfg->listen, cfg->max_body, cfg->max_connections, &inj->inject};
  if (rc == WISP_OK) rc = wisp_webhook_new(&inj->webhook, loop, &wcfg, err, err_len);
  if (rc == WISP_OK) rc = issue_cert(inj, ca, err, err_len);
  if (rc != WISP_OK) {
    wisp_injector_free(inj);
    return rc;
  }
  WISP_INFO("admission webhook on %s for %s: pods get a sidecar that dials %s", cfg->listen, inj->cfg.name,
            cfg->agent);
  *out = inj;
  return WISP_OK;
}

void wisp_injector_free(wisp_injector *inj) {
  if (!inj) return;
  wisp_webhook_free(inj->webhook);
  free(inj->bundle);
  free(inj);
}
