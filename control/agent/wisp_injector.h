/* wisp_injector: what the agent needs to serve its admission webhook: the
 * inject options pods get (what their proxy dials, the image, the agent's
 * trust domain and bundle), the serving certificate for the webhook
 * Service's name from the agent's CA, and the webhook server itself. The
 * agent owns its injector; the injector owns its webhook, the prepared
 * inject options and the strings they borrow. */
#ifndef WISP_INJECTOR_H
#define WISP_INJECTOR_H

#include <stddef.h>

#include <ev.h>

#include "lib/wisp_ca.h"
#include "lib/wisp_err.h"

#define WISP_INJECTOR_DEFAULT_NAME "wisp-agent.wisp-system.svc"
#define WISP_INJECTOR_CERT_TTL (24 * 3600)
#define WISP_INJECTOR_DEFAULT_CONFIG "wisp-inject"
#define WISP_INJECTOR_PUBLISH_RETRY 10

typedef struct {
  const char *listen; /* --webhook HOST:PORT, NULL: no webhook */
  const char *name;   /* --webhook-name: the Service's DNS name in the certificate */
  size_t max_body;
  size_t max_connections;
  size_t max_queue, max_queue_per_source; /* bytes of reviews waiting, see wisp_webhook.h */
  const char *agent;                      /* --inject-agent: what injected proxies dial */
  const char *image;                      /* --inject-image */
  long proxy_uid;                         /* --inject-proxy-uid */
  const char *identity;                   /* --inject-identity sa-token|join-token */
  /* In a cluster: the MutatingWebhookConfiguration whose caBundle the
   * agent keeps set to its bundle (--webhook-config; NULL or "": none),
   * and how to reach the API server (wisp_kube.h). */
  const char *config_name;
  const char *kube_api;
  const char *kube_sa_dir;
} wisp_injector_config;

typedef struct wisp_injector wisp_injector;

/* Checks |cfg| against |ca| (WISP_ERR_USAGE with the reason), listens, and
 * serves with a certificate from |ca|. */
wisp_err wisp_injector_new(wisp_injector **out, struct ev_loop *loop, const wisp_injector_config *cfg, wisp_ca *ca,
                           char *err, size_t err_len) WISP_MUST_CHECK;
/* Takes |ca| (borrowed) anew: a fresh serving certificate, and its trust
 * bundle for the pods injected from now on and for the webhook's caBundle
 * (published on a thread of its own, retried every
 * WISP_INJECTOR_PUBLISH_RETRY seconds until the API server takes it).
 * After a CA rotation and before the certificate expires. */
wisp_err wisp_injector_refresh(wisp_injector *inj, wisp_ca *ca, char *err, size_t err_len) WISP_MUST_CHECK;
void wisp_injector_free(wisp_injector *inj);

#endif
