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

/* One configuration to put in force: a policy and the transparent-mode
 * address -> identity map (proxy/wisp_dests). */
typedef struct {
  const char *yaml; /* the policy, |len| bytes */
  size_t len;
  /* The map: the agent's (Snapshot.destinations, |ndests| entries), or
   * with |dests_from_policy| the policy's own Destination documents
   * (--policy FILE). */
  const wisp_policy_destination *dests;
  size_t ndests;
  bool dests_from_policy;
  const char *source;  /* for the log: "agent" or the file */
  const char *version; /* NULL: none */
} wisp_authz_update;

/* Compiles the policy and the map and puts both in force for requests and
 * connections that start from now on (open ones stay open). All or
 * nothing: on failure |err| names the document, field or entry and the
 * reason, and the last good configuration stays. */
wisp_err wisp_authz_apply(wisp_proxy *px, const wisp_authz_update *u, char *err, size_t err_len) WISP_MUST_CHECK;
/* Starts watching --policy FILE (if given). */
wisp_err wisp_authz_start(wisp_proxy *px, char *err, size_t err_len) WISP_MUST_CHECK;
void wisp_authz_cleanup(wisp_proxy *px);

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
