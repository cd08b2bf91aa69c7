/* wisp_authz: the per-request side of authorization (issue 4), on the data
 * plane: the decision for one inbound request or L4 stream, from this
 * workload's view of the policy in force. No parsing, no allocation: the
 * policy is compiled and put in force by the control side
 * (proxy/control/wisp_authz_load.h); the view belongs to the data plane. */
#ifndef WISP_AUTHZ_H
#define WISP_AUTHZ_H

#include "lib/wisp_policy.h"
#include "proxy/wisp_dataplane.h"

/* With --agent, nothing inbound is served until the first snapshot (pushed
 * or restored from --svid-cache) is in force: fail closed, since the policy
 * the agent holds may deny what no policy would allow. True while waiting,
 * with |why| ("no policy from the agent yet: <last Watch error>"). */
bool wisp_authz_pending(const wisp_proxy *px, char *why, size_t why_len);
#define WISP_AUTHZ_REASON_PENDING "no policy from the agent yet"

/* The decision for one inbound request (principal NULL: a plaintext caller).
 * Waiting for the agent's first policy: denied (WISP_AUTHZ_REASON_PENDING).
 * No policy in force otherwise (--policy absent): allowed. */
void wisp_authz_check(const wisp_proxy *px, const char *principal, const char *method, const char *path, uint16_t port,
                      wisp_policy_decision *out);
/* What a caller refused by |d| is told: "RBAC: access denied (reason:
 * policy P, rule N)", the same for a request and an L4 stream. */
void wisp_authz_describe(const wisp_policy_decision *d, char *why, size_t why_len);

#endif
