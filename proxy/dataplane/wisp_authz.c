#include "proxy/wisp_authz.h"

#include <stdio.h>
#include <string.h>

#include "proxy/dataplane/internal.h"

bool wisp_authz_pending(const wisp_proxy *px, char *why, size_t why_len) {
  if (!px->cfg->agent || px->policy) return false;
  const wisp_dataplane_hooks *hk = &px->hooks;
  const char *reason = hk->policy_pending_reason ? hk->policy_pending_reason(hk->ctx) : "";
  if (reason && *reason) {
    snprintf(why, why_len, WISP_AUTHZ_REASON_PENDING ": %s", reason);
  } else {
    snprintf(why, why_len, WISP_AUTHZ_REASON_PENDING); /* no reason yet: no dangling ": " */
  }
  return true;
}

void wisp_authz_check(const wisp_proxy *px, const char *principal, const char *method, const char *path, uint16_t port,
                      wisp_policy_decision *out) {
  if (!px->view && px->cfg->agent) {
    *out = (wisp_policy_decision){.allow = false, .policy = NULL, .rule = -1, .reason = WISP_AUTHZ_REASON_PENDING};
    return;
  }
  if (!px->view) {
    *out = (wisp_policy_decision){.allow = true, .policy = NULL, .rule = -1, .reason = WISP_POLICY_REASON_NO_POLICY};
    return;
  }
  wisp_policy_request req = {
      .principal = principal,
      .principal_len = principal ? strlen(principal) : 0,
      .method = method,
      .method_len = method ? strlen(method) : 0,
      .path = path,
      .path_len = path ? strlen(path) : 0,
      .port = port,
  };
  wisp_policy_evaluate(px->view, &req, out);
}

void wisp_authz_describe(const wisp_policy_decision *d, char *why, size_t why_len) {
  if (d->policy) {
    snprintf(why, why_len, "RBAC: access denied (%s: policy %s, rule %d)", d->reason, d->policy, d->rule);
  } else {
    snprintf(why, why_len, "RBAC: access denied (%s)", d->reason);
  }
}
