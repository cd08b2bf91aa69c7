/* wisp_authz: the authorization policy in force in this proxy (issue 4):
 * the compiled policy (lib/wisp_policy) and this workload's view of it,
 * from --policy FILE (re-read when it changes) or pushed by the agent. A
 * policy that fails to compile is refused whole with the reason, and the
 * last good one stays in force. The request path only evaluates the view:
 * no parsing, no allocation. Owned by the proxy. */
#ifndef WISP_AUTHZ_H
#define WISP_AUTHZ_H

#include "lib/wisp_policy.h"
#include "proxy/internal.h"

/* Compiles |yaml| and puts it in force for requests that start from now on
 * (open connections stay open). |source| and |version| are for the log. On
 * failure |err| names the document, the field and the reason. */
wisp_err wisp_authz_apply(wisp_proxy *px, const char *yaml, size_t len, const char *source, const char *version,
                          char *err, size_t err_len) WISP_MUST_CHECK;
/* Starts watching --policy FILE (if given). */
wisp_err wisp_authz_start(wisp_proxy *px, char *err, size_t err_len) WISP_MUST_CHECK;
void wisp_authz_cleanup(wisp_proxy *px);

/* The decision for one inbound request (principal NULL: a plaintext caller).
 * No policy in force: allowed. */
void wisp_authz_check(const wisp_proxy *px, const char *principal, const char *method, const char *path, uint16_t port,
                      wisp_policy_decision *out);

#endif
