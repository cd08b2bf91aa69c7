/* wisp_proxy: the data plane of the process. Builds listeners and targets
 * from the config, owns the event loop watchers (flush before sleep,
 * certificate reload, signals) and runs until SIGTERM/SIGINT has drained
 * it. The control side is started on it by proxy/wisp_sidecar. */
#ifndef WISP_PROXY_H
#define WISP_PROXY_H

#include "proxy/dataplane/internal.h"

/* |px| must be zeroed; |cfg| is borrowed for px's lifetime. On failure |err|
 * says what (a file, an address) and why. */
wisp_err wisp_proxy_init(wisp_proxy *px, struct ev_loop *loop, const wisp_config *cfg, char *err,
                         size_t err_len) WISP_MUST_CHECK;
/* Logs a line per listener and warns if the open-file limit is below what
 * the connection limits need: once, after init (and after the control
 * side has started, so its start-up lines come first). */
void wisp_proxy_announce(const wisp_proxy *px);
/* --workers N > 1: starts workers 1..N-1 (proxy/dataplane/wisp_workers.h)
 * with what worker 0 has in force now; after the control side has put
 * its first policy in force, so no worker serves a request without it.
 * A worker that cannot start fails the call, saying which and why. */
wisp_err wisp_proxy_start_workers(wisp_proxy *px, char *err, size_t err_len) WISP_MUST_CHECK;
/* The pooled target for a transparent-mode destination |addr|: over mTLS
 * (outbound; the peer must be in our trust domain) or, inbound, the app on
 * 127.0.0.1 at |addr|'s port. Made on first use and kept while there is
 * room: with --max-destinations of them, the least recently used one
 * without users or streams is evicted (its idle pool connections closed).
 * When every one is in use: px->full, a stand-in that answers 503. Owned
 * by the proxy; the caller holds it (below) for as long as it routes a
 * connection there. */
wisp_target *wisp_proxy_target_for(wisp_proxy *px, const wisp_addr *addr, bool outbound);
/* A downstream connection (or an accept being sniffed) routes to |t|:
 * while held, it is not evicted. */
void wisp_proxy_hold_target(wisp_target *t);
void wisp_proxy_release_target(wisp_target *t);
/* |t| lost a pool connection: an evicted destination goes with its last. */
void wisp_proxy_reap_target(wisp_target *t);
/* True if |port| is one of the proxy's own listening ports (data or
 * admin): traffic there was not redirected from an app port. */
bool wisp_proxy_owns_port(const wisp_proxy *px, unsigned port);
/* Worker |index| (> 0) of --workers: a data plane of its own on |loop|
 * (listeners with SO_REUSEPORT on worker 0's ports, its own targets,
 * pools and timers), borrowing from worker 0's |first| the config, the
 * metrics and events, and following its credentials (wisp_tls_adopt). No
 * control side, no signals. Zeroed |px|; wisp_proxy_cleanup either way. */
wisp_err wisp_proxy_init_worker(wisp_proxy *px, struct ev_loop *loop, wisp_proxy *first, unsigned index, char *err,
                                size_t err_len) WISP_MUST_CHECK;
/* GET /status's upstream failures, one table for every worker (worker
 * 0's, under its lock when there are several). */
void wisp_proxy_note_upfail(wisp_proxy *px, const char *upstream, const char *expect_id, bool app, const char *reason);
void wisp_proxy_clear_upfail(wisp_proxy *px, const char *upstream);
/* Runs the loop until drained (and, with --workers, the other workers'
 * too). */
void wisp_proxy_run(wisp_proxy *px);
/* Closes everything; safe on a partly initialised proxy. */
void wisp_proxy_cleanup(wisp_proxy *px);

#endif
