/* wisp_agent: the control agent. It is the CA (issues X.509-SVIDs for CSRs
 * that come with a join token or the caller's current SVID) and the policy
 * source (pushes versioned snapshots over Config.Watch and remembers what
 * each proxy ACKed or NACKed, as in xDS). Everything it must remember lives
 * in --state-dir, written atomically (lib/wisp_state): CA, tokens, policy.
 * The agent owns its CA, its own TLS credentials, the RPC server and every
 * watcher; the process owns the agent. */
#ifndef WISP_AGENT_H
#define WISP_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "control/agent/wisp_injector.h"
#include "lib/wisp_err.h"

typedef struct {
  const char *state_dir;
  const char *listen_unix; /* path, NULL: none */
  const char *listen_tls;  /* HOST:PORT, NULL: none */
  const char *ca_cert;     /* PEM (CA first, then its chain), NULL: own root */
  const char *ca_key;
  const char *trust_domain; /* for a new root; else taken from the CA */
  const char *policy_dir;   /* watched directory of *.yaml, NULL: none */
  int64_t svid_ttl;         /* seconds */
  /* Bounds against callers that open much and read nothing (defaults: main.c). */
  size_t max_connections;            /* on all listeners together */
  size_t max_connections_per_source; /* from one uid (Unix socket) or IP address (TCP) */
  double idle_timeout;               /* seconds a connection may carry no call */
  size_t max_conn_buffer;            /* bytes held per connection, requests and unread responses */
  size_t max_watchers;               /* Config.Watch streams in all */
  size_t max_watchers_per_caller;    /* per SPIFFE ID from one uid (Unix socket) or IP address */
  /* Proxy identities remembered (for status and Watch); when full, the one
   * idle longest (no Watch, not seen for |proxy_idle| s) makes room. */
  size_t max_proxies;
  int64_t proxy_idle;
  /* Service-account token identity (wisp_sa.h). */
  const char *sa_jwks;   /* JWKS file, NULL: none */
  const char *sa_issuer; /* NULL: the API server's */
  const char *kube_api;  /* auto, off, https://IP:PORT */
  const char *kube_sa_dir;
  int64_t sa_max_lifetime;      /* seconds; exp - iat of a service-account token, at most */
  wisp_injector_config webhook; /* the admission webhook; webhook.listen NULL: none */
} wisp_agent_config;

typedef struct wisp_agent wisp_agent;

/* Loads or creates the CA and state, and starts listening. |*out| is set
 * only on success; on failure nothing is left running and |err| says why. */
wisp_err wisp_agent_new(wisp_agent **out, struct ev_loop *loop, const wisp_agent_config *cfg, char *err,
                        size_t err_len) WISP_MUST_CHECK;
void wisp_agent_free(wisp_agent *a);

#endif
