/* wisp_dataplane: the boundary between wisp-proxy's data plane and its
 * control side.
 *
 *   data plane    (proxy/dataplane, //proxy/dataplane:core) listeners,
 *                 the handshake stage, connections, streams, pools,
 *                 tunnels, the HTTP/1 gateways, the per-request policy
 *                 decision (wisp_authz) and the process's event loop
 *                 watchers (wisp_proxy); their shared types are
 *                 proxy/dataplane/internal.h, private to them.
 *   control side  (proxy/control, proxy/admin) the agent client, the
 *                 policy loader (wisp_authz_load), the interception check
 *                 (wisp_intercept) and the admin API (wisp_admin*). They
 *                 see the proxy through this header only: to them a
 *                 wisp_proxy is opaque, and :core is not visible to them,
 *                 so internal.h is out of reach.
 *   composition   (//proxy:sidecar, wisp_sidecar) builds the data plane,
 *                 starts the control modules on it and registers their
 *                 hooks (below), and frees them before the data plane.
 *
 * The data plane does not call the control side: where it needs it (the
 * interception probe arriving, a drain starting, why no policy came yet)
 * it calls the hooks the control side registered, or does without them
 * when none are.
 *
 * Ownership: the data plane owns everything reached from a wisp_proxy: the
 * policy and address -> identity map in force, the TLS credentials and its
 * counters. The control modules belong to whoever started them (the
 * composition). The control side puts things in force through the calls
 * below, which take ownership where they say so, and reads through
 * accessors whose results are borrowed: for the proxy's lifetime (loop,
 * config, credentials) or until the next call that changes them (policy,
 * map). Every call runs on the proxy's loop; none is on the request path. */
#ifndef WISP_DATAPLANE_H
#define WISP_DATAPLANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_err.h"
#include "lib/wisp_h2conn.h"
#include "lib/wisp_net.h"
#include "lib/wisp_policy.h"
#include "lib/wisp_tls.h"
#include "proxy/wisp_config.h"
#include "proxy/dataplane/wisp_upfail.h"

typedef struct wisp_proxy wisp_proxy;
struct ev_loop;
struct wisp_dests;
struct wisp_events;
struct wisp_metrics;

typedef enum { WISP_DIR_OUTBOUND, WISP_DIR_INBOUND } wisp_direction;

/* ---- counters: written by the data plane, read by the admin API ---- */

/* Finished requests by status class, for /metrics: [0] no status (reset,
 * caller gone), [1..5] 1xx..5xx, [6] anything else. */
#define WISP_STATUS_CLASSES 7

typedef struct {
  uint64_t conns_accepted, conns_refused, upstream_connects, upstream_failures;
  uint64_t conns_closed_early; /* the caller closed before sending a byte (TCP probes) */
  uint64_t requests, responses_error, requests_denied;
  uint64_t streams_refused;                  /* REFUSED_STREAM: the caller or the process held its buffer budget */
  uint64_t upstream_requests;                /* requests sent on an upstream stream (a retry counts again) */
  uint64_t finished[2][WISP_STATUS_CLASSES]; /* [wisp_direction][class] */
  uint64_t conns_limited[2];     /* closed at accept: [0] --max-connections, [1] --max-connections-per-source */
  uint64_t premature_resets[2];  /* streams a caller ended early: [0] by RST_STREAM, [1] by a protocol error */
  uint64_t reset_limited[2];     /* resets over --max-resets: [0] connection cut, [1] throttled (a peer sidecar) */
  uint64_t idle_timeouts;        /* caller streams ended by --stream-idle-timeout */
  uint64_t tunnel_idle_timeouts; /* L4 tunnels closed by --tunnel-idle-timeout */
  uint64_t memory_trims;         /* memory given back after a burst (lib/wisp_memtrim.h) */
} wisp_stats;

/* Counts one finished request (per request: one increment, no allocation). */
static inline void wisp_stats_finished(wisp_stats *st, wisp_direction dir, int status) {
  int cls = status == 0 ? 0 : (status >= 100 && status < 600) ? status / 100 : 6;
  st->finished[dir][cls]++;
}

/* What /metrics and /status read of the data plane at one moment. */
typedef struct {
  wisp_stats stats;
  uint64_t hdr_held;          /* header and trailer bytes streams hold */
  uint64_t conns_open[2];     /* [0] downstream (callers), [1] upstream */
  uint64_t requests_queued;   /* waiting for an upstream stream */
  uint64_t destinations;      /* transparent destinations kept with their pools */
  uint64_t destinations_gone; /* ... evicted to make room */
} wisp_dataplane_counters;
/* Summed over every worker (--workers). */
void wisp_dataplane_get_counters(const wisp_proxy *px, wisp_dataplane_counters *out);
/* Workers (--workers, at least 1) and worker |i|'s own counters (0: the
 * main thread's). Another worker's are read while it is stopped between
 * two loop iterations (proxy/dataplane/wisp_workers.h). */
size_t wisp_dataplane_worker_count(const wisp_proxy *px);
void wisp_dataplane_get_worker_counters(const wisp_proxy *px, size_t i, wisp_dataplane_counters *out);

/* One data listener as /metrics shows it, summed over the workers (each
 * has its own socket on the address). */
typedef struct {
  const char *name; /* HOST:PORT as given */
  wisp_direction dir;
  uint32_t connections; /* open, as counted against --max-connections */
  uint64_t accept_pauses, accept_failures;
} wisp_dataplane_listener;
size_t wisp_dataplane_listener_count(const wisp_proxy *px);
/* |i| below wisp_dataplane_listener_count. */
void wisp_dataplane_get_listener(const wisp_proxy *px, size_t i, wisp_dataplane_listener *out);
/* Every listener is up (none yet, or closed by a drain: false). */
bool wisp_dataplane_listening(const wisp_proxy *px);
bool wisp_dataplane_draining(const wisp_proxy *px);

/* ---- what the process holds ---- */

struct ev_loop *wisp_dataplane_loop(const wisp_proxy *px);
const wisp_config *wisp_dataplane_config(const wisp_proxy *px);
/* The flush-before-sleep hook the agent client's connections join. */
wisp_h2loop *wisp_dataplane_h2loop(wisp_proxy *px);
/* The credentials listeners and upstream dials use (and the agent client
 * dials the agent with), read-only: lib/wisp_tls says what they hold. */
const wisp_tls *wisp_dataplane_tls(const wisp_proxy *px);
/* By identity, refusals and denials, upstreams failing lately. */
struct wisp_metrics *wisp_dataplane_metrics(const wisp_proxy *px);
const struct wisp_events *wisp_dataplane_events(const wisp_proxy *px);
/* A copy: with --workers every worker writes the one table. */
void wisp_dataplane_get_upfails(const wisp_proxy *px, wisp_upfail_table *out);

/* ---- control -> data plane ---- */

/* A policy to put in force. */
typedef struct {
  wisp_policy *policy;    /* owned by the data plane from the call on */
  wisp_policy_view *view; /* the same: this workload's view of |policy| */
  bool permissive;        /* PeerAuthentication PERMISSIVE: plaintext callers allowed inbound */
  const char *yaml;       /* copied: the policy as given, |len| bytes (for GET /config) */
  size_t len;
  const char *version; /* copied; NULL: none */
} wisp_dataplane_policy;
/* Governs requests and connections that start from now on; the policy it
 * replaces is freed (a request judges once, when it starts). */
void wisp_dataplane_apply_policy(wisp_proxy *px, const wisp_dataplane_policy *p);

/* The policy in force, borrowed until the next wisp_dataplane_apply_policy;
 * all NULL ("" version) while there is none. */
typedef struct {
  const wisp_policy *policy;
  const wisp_policy_view *view;
  const char *yaml;
  const char *version;
} wisp_dataplane_policy_info;
void wisp_dataplane_get_policy(const wisp_proxy *px, wisp_dataplane_policy_info *out);

/* Puts the address -> identity map |d| (owned from now on; NULL: none) in
 * force for connections dialled from now on; pooled connections to a
 * destination whose ID changed take no new streams. */
void wisp_dataplane_set_dests(wisp_proxy *px, struct wisp_dests *d);
/* The map in force (NULL: none), borrowed until the next set_dests. */
const struct wisp_dests *wisp_dataplane_dests(const wisp_proxy *px);

/* Puts an SVID in force (the agent client's, from the agent or its
 * --svid-cache): |key|, the chain (leaf first) and the trust bundle
 * |roots| are borrowed, the data plane takes its own references.
 * Handshakes from now on use them; a connection keeps the credentials it
 * started with. On failure |err| says why and the credentials in force
 * stay (lib/wisp_tls: wisp_tls_set_creds). */
wisp_err wisp_dataplane_install_credentials(wisp_proxy *px, EVP_PKEY *key, STACK_OF(X509) * chain,
                                            STACK_OF(X509) * roots, char *err, size_t err_len) WISP_MUST_CHECK;
/* Replaces only the trust bundle of the SVID in force (one the agent
 * pushes, e.g. during CA rotation); |roots| borrowed, as above. */
wisp_err wisp_dataplane_install_roots(wisp_proxy *px, STACK_OF(X509) * roots, char *err,
                                      size_t err_len) WISP_MUST_CHECK;

/* Stops accepting, sends GOAWAY to callers and ends the loop once they are
 * gone (or at --drain-timeout): SIGTERM and POST /drain. Once only. */
void wisp_dataplane_start_drain(wisp_proxy *px);

/* ---- data plane -> control: hooks ---- */

/* What the control side asks to be told. Every member may be NULL (that
 * hook is off: the data plane does as if no control module were there).
 * Each runs on the loop, synchronously, with |ctx|. */
typedef struct {
  void *ctx;
  /* An outbound listener's transparent caller with original destination
   * |orig_dst| and source |peer|: true if it is the interception check's
   * own probe (the data plane then closes it and routes nothing). Asked
   * for outbound transparent callers only, before their target is picked;
   * NULL when there is no check (then no call is made at all). */
  bool (*probe_arrived)(void *ctx, const wisp_addr *orig_dst, const wisp_addr *peer);
  /* A drain started (SIGTERM, POST /drain): the listeners are closed. */
  void (*drain_started)(void *ctx);
  /* Why no policy is in force yet with --agent (for /ready and refused
   * requests); borrowed until the loop runs again. NULL hook: "". */
  const char *(*policy_pending_reason)(void *ctx);
} wisp_dataplane_hooks;
/* Registers |h| (copied; NULL: none): they replace any registered before.
 * Whoever registers them clears them before |ctx| goes. */
void wisp_dataplane_set_hooks(wisp_proxy *px, const wisp_dataplane_hooks *h);

#endif
