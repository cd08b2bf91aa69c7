/* The agent's admission webhook, set up; see wisp_injector.h. */
#include "control/agent/wisp_injector.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/base64.h>
#include <openssl/mem.h>

#include "control/agent/wisp_kube.h"

#include "control/agent/wisp_webhook.h"
#include "control/wispctl/inject.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_time.h"

struct wisp_injector {
  wisp_injector_config cfg;
  char *bundle; /* the CA's roots as PEM: injected pods verify the agent by it */
  char td[WISP_SPIFFE_TD_MAX + 1];
  wispctl_inject_cfg inject; /* borrows |bundle|, |td| and |cfg|'s strings */
  wisp_webhook *webhook;
  /* caBundle publishing, in a cluster */
  bool publish_on;
  wisp_kube kube;
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t mu; /* guards the two below */
  pthread_cond_t cv;
  char *pending; /* base64 bundle to publish, owned; NULL: nothing to do */
  bool stop;
};

/* ---- the webhook's caBundle, kept set in the MutatingWebhookConfiguration ---- */

#define MWC_PATH "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"

/* One attempt: GET the configuration (to count its webhooks), then a JSON
 * Patch setting every webhook's clientConfig.caBundle. */
static bool publish_once(wisp_injector *inj, const char *b64, char *err, size_t err_len) {
  char path[WISP_KUBE_PATH_MAX];
  snprintf(path, sizeof(path), MWC_PATH "%s", inj->cfg.config_name);
  wisp_buf body = {0};
  int status = 0;
  char why[256];
  bool ok = false;
  json_t *doc = NULL, *ops = json_array();
  if (wisp_kube_call(&inj->kube, "GET", path, NULL, NULL, &status, &body, why, sizeof(why)) != WISP_OK) {
    snprintf(err, err_len, "GET %s: %s", path, why);
  } else if (status != 200) {
    snprintf(err, err_len, "GET %s: HTTP %d%s", path, status,
             status == 404 ? " (apply the MutatingWebhookConfiguration)" : "");
  } else if (!(doc = json_loadb((const char *)wisp_buf_rptr(&body), wisp_buf_len(&body), 0, NULL)) ||
             !json_array_size(json_object_get(doc, "webhooks"))) {
    snprintf(err, err_len, "GET %s: no webhooks in the answer", path);
  } else {
    for (size_t i = 0; i < json_array_size(json_object_get(doc, "webhooks")); i++) {
      char p[64];
      snprintf(p, sizeof(p), "/webhooks/%zu/clientConfig/caBundle", i);
      json_array_append_new(ops, json_pack("{s:s, s:s, s:s}", "op", "add", "path", p, "value", b64));
    }
    char *patch = json_dumps(ops, JSON_COMPACT);
    wisp_buf_cleanup(&body);
    if (wisp_kube_call(&inj->kube, "PATCH", path, "application/json-patch+json", patch, &status, &body, why,
                       sizeof(why)) != WISP_OK) {
      snprintf(err, err_len, "PATCH %s: %s", path, why);
    } else if (status != 200) {
      snprintf(err, err_len, "PATCH %s: HTTP %d", path, status);
    } else {
      ok = true;
    }
    free(patch);
  }
  json_decref(doc);
  json_decref(ops);
  wisp_buf_cleanup(&body);
  return ok;
}

static void *publish_main(void *arg) {
  wisp_injector *inj = arg;
  char *b64 = NULL, *failed = NULL;
  pthread_mutex_lock(&inj->mu);
  while (!inj->stop) {
    if (inj->pending) {
      free(b64);
      b64 = inj->pending;
      inj->pending = NULL;
    }
    if (!b64) {
      pthread_cond_wait(&inj->cv, &inj->mu);
      continue;
    }
    pthread_mutex_unlock(&inj->mu);
    char err[384] = "";
    bool ok = publish_once(inj, b64, err, sizeof(err));
    if (ok) {
      WISP_INFO("webhook: caBundle of MutatingWebhookConfiguration %s set to the agent's bundle", inj->cfg.config_name);
      free(b64);
      b64 = NULL;
    } else if (!failed || strcmp(failed, err) != 0) {
      WISP_WARN("webhook: cannot set the caBundle of MutatingWebhookConfiguration %s (retried every %d s): %s",
                inj->cfg.config_name, WISP_INJECTOR_PUBLISH_RETRY, err);
    }
    free(failed);
    failed = ok ? NULL : wisp_strdup(err);
    pthread_mutex_lock(&inj->mu);
    if (!ok && !inj->stop && !inj->pending) wisp_time_cond_wait(&inj->cv, &inj->mu, WISP_INJECTOR_PUBLISH_RETRY);
  }
  pthread_mutex_unlock(&inj->mu);
  free(b64);
  free(failed);
  return NULL;
}

/* Hands the bundle to the publishing thread (started on first use). */
static void publish(wisp_injector *inj) {
  if (!inj->publish_on) return;
  size_t len = strlen(inj->bundle), b64_len = 0;
  EVP_EncodedLength(&b64_len, len);
  char *b64 = wisp_malloc(b64_len);
  EVP_EncodeBlock((uint8_t *)b64, (const uint8_t *)inj->bundle, len);
  pthread_mutex_lock(&inj->mu);
  free(inj->pending);
  inj->pending = b64;
  pthread_cond_signal(&inj->cv);
  pthread_mutex_unlock(&inj->mu);
  if (!inj->thread_started) inj->thread_started = pthread_create(&inj->thread, NULL, publish_main, inj) == 0;
}

/* The inject options for |ca|'s bundle; on failure the old ones stay. */
static wisp_err prepare(wisp_injector *inj, wisp_ca *ca, char *err, size_t err_len) {
  char *pem = NULL;
  size_t len = 0;
  wisp_err rc = wisp_ca_certs_to_pem(&pem, &len, wisp_ca_get0_roots(ca));
  if (rc != WISP_OK) {
    snprintf(err, err_len, "cannot encode the trust bundle as PEM for injected pods: %s", wisp_err_str(rc));
    return rc;
  }
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
  wisp_err rc = wisp_ca_key_new_p256(&key);
  if (rc != WISP_OK) {
    snprintf(err, err_len, "cannot make a P-256 key for the webhook's certificate: %s", wisp_err_str(rc));
    return rc;
  }
  rc = wisp_ca_issue_server(ca, &leaf, key, inj->cfg.name, WISP_INJECTOR_CERT_TTL, err, err_len);
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
  WISP_GUARD(issue_cert(inj, ca, err, err_len));
  publish(inj);
  return WISP_OK;
}

wisp_err wisp_injector_new(wisp_injector **out, struct ev_loop *loop, const wisp_injector_config *cfg, wisp_ca *ca,
                           char *err, size_t err_len) {
  *out = NULL;
  if (!cfg->agent) {
    snprintf(err, err_len,
             "--webhook needs --inject-agent: what injected proxies dial (https://<the agent "
             "Service's cluster IP>:8443, or unix:///PATH for an agent on every node)");
    return WISP_ERR_USAGE;
  }
  wisp_injector *inj = wisp_calloc(1, sizeof(*inj));
  inj->cfg = *cfg;
  if (!inj->cfg.name) inj->cfg.name = WISP_INJECTOR_DEFAULT_NAME;
  pthread_mutex_init(&inj->mu, NULL);
  wisp_time_cond_init(&inj->cv); /* the retry wait, on the monotonic clock */
  char why[320];
  inj->publish_on = cfg->config_name && *cfg->config_name && cfg->kube_api &&
                    wisp_kube_init(&inj->kube, cfg->kube_api, cfg->kube_sa_dir, why, sizeof(why)) == WISP_OK;
  wisp_err rc = prepare(inj, ca, err, err_len);
  wisp_webhook_config wcfg = {
      cfg->listen, cfg->max_body, cfg->max_connections, cfg->max_queue, cfg->max_queue_per_source, &inj->inject};
  if (rc == WISP_OK) rc = wisp_webhook_new(&inj->webhook, loop, &wcfg, err, err_len);
  if (rc == WISP_OK) rc = issue_cert(inj, ca, err, err_len);
  if (rc == WISP_OK) publish(inj);
  if (rc != WISP_OK) {
    wisp_injector_free(inj);
    return rc;
  }
  WISP_INFO("admission webhook on %s for %s: pods get a sidecar that dials %s", cfg->listen, inj->cfg.name, cfg->agent);
  *out = inj;
  return WISP_OK;
}

void wisp_injector_free(wisp_injector *inj) {
  if (!inj) return;
  if (inj->thread_started) {
    pthread_mutex_lock(&inj->mu);
    inj->stop = true;
    pthread_cond_signal(&inj->cv);
    pthread_mutex_unlock(&inj->mu);
    pthread_join(inj->thread, NULL);
  }
  pthread_mutex_destroy(&inj->mu);
  pthread_cond_destroy(&inj->cv);
  free(inj->pending);
  wisp_webhook_free(inj->webhook);
  free(inj->bundle);
  free(inj);
}
