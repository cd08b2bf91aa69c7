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
/* Runs the loop until drained. */
void wisp_proxy_run(wisp_proxy *px);
/* Closes everything; safe on a partly initialised proxy. */
void wisp_proxy_cleanup(wisp_proxy *px);

#endif
