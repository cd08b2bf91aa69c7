/* wisp_agent_client: the proxy's side of wisp-agent (--agent). It makes the
 * proxy's key in process (the key never leaves it), sends a CSR with the
 * join token, installs the SVID once it is valid now, chains to the bundle
 * sent with it, names our --spiffe-id and keeps the leaf and size rules of
 * wisp_ca_svid_check (else keeps the one in force), renews at about
 * half-life with jitter over mTLS with the current SVID, and keeps a Config.Watch stream open for the
 * policy and the trust bundle, ACKing or NACKing each version as in xDS.
 * Fail static: with the agent gone the proxy keeps serving on its last SVID
 * and policy and reconnects with capped backoff. Owned by the process
 * (proxy/wisp_sidecar); it puts SVIDs in force through
 * wisp_dataplane_install_credentials and _roots. */
#ifndef WISP_AGENT_CLIENT_H
#define WISP_AGENT_CLIENT_H

#include "proxy/wisp_dataplane.h"

typedef struct wisp_agent_client wisp_agent_client;

/* Starts asking for an SVID at once. |err| says why not (a token file that
 * cannot be read, a bad agent address). */
wisp_err wisp_agent_client_start(wisp_agent_client **out, wisp_proxy *px, char *err, size_t err_len) WISP_MUST_CHECK;
/* Why no Config.Watch snapshot has been applied yet: the last Watch
 * failure, or what it waits for (for /ready and refused requests). */
const char *wisp_agent_client_watch_error(const wisp_agent_client *ac);
/* Whether the Config.Watch open now has delivered a snapshot (GET /status);
 * when not, wisp_agent_client_watch_error says why. */
bool wisp_agent_client_watching(const wisp_agent_client *ac);
void wisp_agent_client_free(wisp_agent_client *ac);

/* For /metrics and alerts: is the agent reachable, and how did the last
 * pushes fare. Times are unix seconds, 0: never / not now. */
typedef struct {
  bool connected;                 /* a Config.Watch stream is open and has delivered a snapshot */
  int64_t last_contact_unix;      /* the last snapshot or SVID from the agent; while connected: now */
  int64_t unreachable_since_unix; /* when the proxy last lost (or began without) the Watch stream; 0 while connected */
  uint64_t nacks;                 /* pushed versions refused so far */
  bool nacked;                    /* the last pushed version was refused (the last good one stays in force) */
} wisp_agent_client_health;
void wisp_agent_client_get_health(const wisp_agent_client *ac, wisp_agent_client_health *out);

#endif
