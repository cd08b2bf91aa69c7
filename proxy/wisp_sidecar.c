#include "proxy/wisp_sidecar.h"

#include <stdio.h>

#include "lib/wisp_log.h"
#include "proxy/control/wisp_agent_client.h"
#include "proxy/control/wisp_authz_load.h"
#include "proxy/control/wisp_intercept.h"

/* ---- the hooks the data plane calls (wisp_dataplane_hooks) ---- */

static bool probe_arrived(void *ctx, const wisp_addr *orig_dst, const wisp_addr *peer) {
  wisp_sidecar *s = ctx;
  return wisp_intercept_arrived(s->intercept, orig_dst, peer);
}

static void drain_started(void *ctx) {
  wisp_sidecar *s = ctx;
  wisp_intercept_stop(s->intercept);
}

static const char *policy_pending_reason(void *ctx) {
  wisp_sidecar *s = ctx;
  return wisp_agent_client_watch_error(s->agent);
}

static void register_hooks(wisp_sidecar *s) {
  wisp_dataplane_hooks h = {
      .ctx = s,
      /* none without a check: the outbound listener asks nothing then */
      .probe_arrived = s->intercept ? probe_arrived : NULL,
      .drain_started = drain_started,
      .policy_pending_reason = policy_pending_reason,
  };
  wisp_dataplane_set_hooks(s->px, &h);
}

/* The admin listener, then --metrics's. An --admin address the user gave
 * must work; the default one may be taken (several proxies on one host):
 * then run without it, and say so. */
static wisp_err start_admin(wisp_sidecar *s, const wisp_config *cfg, char *err, size_t err_len) {
  if (cfg->admin) {
    char aerr[512];
    if (wisp_admin_new(&s->admin, &s->admin_src, cfg->admin, aerr, sizeof(aerr)) != WISP_OK) {
      if (cfg->admin_set) {
        snprintf(err, err_len, "--admin: %s", aerr);
        return WISP_ERR_IO;
      }
      WISP_WARN("no admin listener: %s (give --admin ADDR, or --admin off)", aerr);
    }
    s->admin_src.admin = s->admin;
  }
  if (cfg->metrics_listen) {
    char merr[512];
    if (wisp_admin_new_metrics(&s->metrics_srv, &s->admin_src, cfg->metrics_listen, merr, sizeof(merr)) != WISP_OK) {
      snprintf(err, err_len, "--metrics: %s", merr);
      return WISP_ERR_IO;
    }
  }
  return WISP_OK;
}

wisp_err wisp_sidecar_start(wisp_sidecar *s, wisp_proxy *px, struct ev_loop *loop, const wisp_config *cfg, char *err,
                            size_t err_len) {
  s->px = px;
  WISP_GUARD(wisp_proxy_init(px, loop, cfg, err, err_len));
  if (cfg->agent) WISP_GUARD(wisp_agent_client_start(&s->agent, px, err, err_len));
  WISP_GUARD(wisp_authz_load_start(&s->loader, px, err, err_len));
  WISP_GUARD(wisp_intercept_start(&s->intercept, loop, cfg, err, err_len));
  register_hooks(s);
  /* After the control side's start-up lines (a restored SVID, the policy
   * loaded), before the admin listener's: the order they always had. */
  wisp_proxy_announce(px);
  s->admin_src = (wisp_admin_sources){.px = px, .agent = s->agent, .intercept = s->intercept};
  WISP_GUARD(start_admin(s, cfg, err, err_len));
  return wisp_proxy_start_workers(px, err, err_len);
}

void wisp_sidecar_cleanup(wisp_sidecar *s) {
  if (!s->px) return;
  /* Hooks first: nothing may reach a module while it is being freed. The
   * --metrics server reads the --admin listener's state: it goes first. */
  wisp_dataplane_set_hooks(s->px, NULL);
  wisp_admin_free(s->metrics_srv);
  s->metrics_srv = NULL;
  wisp_admin_free(s->admin);
  s->admin = NULL;
  s->admin_src.admin = NULL;
  wisp_agent_client_free(s->agent);
  s->agent = NULL;
  wisp_authz_load_free(s->loader);
  s->loader = NULL;
  wisp_intercept_free(s->intercept);
  s->intercept = NULL;
  wisp_proxy_cleanup(s->px);
  s->px = NULL; /* a second cleanup does nothing */
}
