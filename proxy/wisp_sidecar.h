/* wisp_sidecar: one wisp-proxy process put together: the data plane
 * (proxy/dataplane/wisp_proxy) built from the config, then the control side started
 * on it through proxy/wisp_dataplane.h (the agent client, the policy
 * loader, the interception check, the admin and metrics listeners), with
 * the hooks the data plane calls registered. main.c runs it; the
 * in-process tests build it the same way.
 *
 * Ownership: the caller owns the wisp_sidecar and the data plane |px| it
 * points at (zeroed, for wisp_sidecar_start to build); the sidecar owns the
 * control modules and frees them before the data plane. The hooks and the
 * admin listeners hold pointers into the wisp_sidecar: it must not move
 * or be copied between wisp_sidecar_start and wisp_sidecar_cleanup. */
#ifndef WISP_SIDECAR_H
#define WISP_SIDECAR_H

#include "proxy/admin/wisp_admin.h"
#include "proxy/dataplane/wisp_proxy.h"

typedef struct wisp_sidecar {
  wisp_proxy *px;                   /* the caller's: the data plane */
  struct wisp_agent_client *agent;  /* owned; NULL without --agent */
  struct wisp_authz_load *loader;   /* owned: --policy FILE watched; NULL: none */
  struct wisp_intercept *intercept; /* owned; NULL: no interception check */
  struct wisp_admin *admin;         /* owned; NULL: --admin off (or the default address taken) */
  struct wisp_admin *metrics_srv;   /* owned; --metrics: GET /metrics only; NULL: off */
  wisp_admin_sources admin_src;     /* what the admin listeners report on */
} wisp_sidecar;

/* Builds the data plane |px| (zeroed) on |loop| from |cfg| (borrowed for
 * their lifetime) and starts the control side on it. On failure |err|
 * says what and why; wisp_sidecar_cleanup then frees what was started.
 * |s| must be zeroed. */
wisp_err wisp_sidecar_start(wisp_sidecar *s, wisp_proxy *px, struct ev_loop *loop, const wisp_config *cfg, char *err,
                            size_t err_len) WISP_MUST_CHECK;
/* Frees the control side, then the data plane (wisp_proxy_cleanup); safe
 * on a partly started sidecar. */
void wisp_sidecar_cleanup(wisp_sidecar *s);

#endif
