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

typedef struct {
  const char *listen;        /* --webhook HOST:PORT, NULL: no webhook */
  const char *name;          /* --webhook-name: the Service's DNS name in the certificate */
  size_t max_body;
  size_t max_connections;
  const char *agent;         /* --inject-agent: what injected proxies dial */
  const char *image;         /* --inject-image */
  long proxy_uid;            /* --inject-proxy-uid */
  const char *identity;      /* --inject-identity sa-token|join-token */
} wisp_injector_config;

typedef struct wisp_injector wisp_injector;

/* Checks |cfg| against |ca| (WISP_ERR_USAGE with the reason), listens, and
 * serves with a certificate from |ca|. */
wisp_err wisp_injector_new(wisp_injector **out, struct ev_loop *loop, const wisp_injector_config *cfg, wisp_ca *ca,
                           char *err, size_t err_len) WISP_MUST_CHECK;
/* Takes |ca| (borrowed) anew: a fresh serving certificate, and its trust
 * bundle for the pods injected from now on. After a CA rotation and before
 * the certificate expires. */
wisp_err wisp_injector_refresh(wisp_injector *inj, wisp_ca *ca, char *err, size_t err_len) WISP_MUST_CHECK;
void wisp_injector_free(wisp_injector *inj);

#endif
