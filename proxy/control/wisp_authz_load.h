/* wisp_authz_load: the control side of authorization (issue 4): compiles a
 * policy (lib/wisp_policy) and this workload's view of it, with the
 * transparent-mode address -> identity map (proxy/dataplane/wisp_dests), from
 * --policy FILE (re-read when it changes) or pushed by the agent, and puts
 * them in force in the data plane (proxy/wisp_dataplane.h), which judges
 * each request (proxy/wisp_authz.h). A policy that fails to compile is
 * refused whole with the reason, and the last good one stays in force.
 *
 * Ownership: the process (proxy/wisp_sidecar) owns the --policy FILE
 * watcher (NULL without --policy); what is put in force belongs to the
 * data plane. */
#ifndef WISP_AUTHZ_LOAD_H
#define WISP_AUTHZ_LOAD_H

#include "lib/wisp_policy.h"
#include "proxy/wisp_dataplane.h"

/* One configuration to put in force: a policy and the transparent-mode
 * address -> identity map (proxy/dataplane/wisp_dests). */
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
} wisp_authz_load_update;

/* Compiles the policy and the map and puts both in force for requests and
 * connections that start from now on (open ones stay open). All or
 * nothing: on failure |err| names the document, field or entry and the
 * reason, and the last good configuration stays. */
wisp_err wisp_authz_load_apply(wisp_proxy *px, const wisp_authz_load_update *u, char *err,
                               size_t err_len) WISP_MUST_CHECK;

typedef struct wisp_authz_load wisp_authz_load;
/* With --policy FILE: loads it now (a bad file is a start-up error, |err|
 * says why) and watches it; |*out| is the watcher. Without: |*out| NULL. */
wisp_err wisp_authz_load_start(wisp_authz_load **out, wisp_proxy *px, char *err, size_t err_len) WISP_MUST_CHECK;
/* Stops watching. Accepts NULL. */
void wisp_authz_load_free(wisp_authz_load *l);

#endif
