/* wisp_admin: the admin listener (default 127.0.0.1:15000). A small
 * HTTP/1.1 server on the proxy's libev loop: one request per connection,
 * answered with "Connection: close"; non-blocking throughout, with a bounded
 * request size, a bounded number of connections and a timeout, so it never
 * holds up the data plane.
 *
 *   GET  /healthz   200 "ok" while the process runs
 *   GET  /ready     200 while it holds a valid SVID, listens and is not
 *                   draining; else 503 with the reason
 *   GET  /certs     JSON: the current SVID and trust bundle
 *   GET  /config    JSON: routes, inbound, app, timeouts, policy
 *   GET  /metrics   Prometheus text format 0.0.4
 *   POST /drain     202, then the same graceful drain as SIGTERM
 *
 * With --metrics, a second instance serves GET /metrics alone.
 *
 * The request parser and the router are pure functions of their own
 * (proxy/admin/wisp_admin_http.h); wisp_admin_ready_check is pure too. The
 * server is wisp_admin_server.c, the bodies wisp_admin.c and
 * wisp_admin_status.c (proxy/admin/wisp_admin_internal.h says which owns what). */
#ifndef WISP_ADMIN_H
#define WISP_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_err.h"
#include "lib/wisp_tls.h"
#include "proxy/admin/wisp_admin_http.h"

/* Whether a proxy is ready to take traffic: it holds credentials
 * (|loaded|) whose leaf is not expired at |now| (unix seconds), its
 * listeners are up and it is not draining. When not, |out_reason| says why
 * ("no SVID yet", "SVID expired at ...", "draining", ...). */
bool wisp_admin_ready_check(const wisp_tls_info *info, bool loaded, bool listening, bool draining, int64_t now,
                            char *out_reason, size_t reason_len);

/* ---- the server ---- */

typedef struct wisp_admin wisp_admin;
typedef struct wisp_proxy wisp_proxy;
struct wisp_agent_client;
struct wisp_intercept;

/* What an admin server reports on: the data plane and the control modules
 * beside it (NULL: off), all borrowed. The struct itself is borrowed too,
 * for the server's lifetime: whoever starts the process (proxy/wisp_sidecar)
 * owns it and may fill a member in after the server starts (|admin|, once
 * the main listener is up). */
typedef struct {
  wisp_proxy *px;
  const struct wisp_agent_client *agent;
  const struct wisp_intercept *intercept;
  const wisp_admin *admin; /* the --admin listener, whose own counters /metrics shows */
} wisp_admin_sources;

/* Listens on |addr| and serves |src| on the data plane's loop. On failure
 * |err| says what and why. */
wisp_err wisp_admin_new(wisp_admin **out, const wisp_admin_sources *src, const char *addr, char *err,
                        size_t err_len) WISP_MUST_CHECK;
/* The same server on |addr| serving GET (and HEAD) /metrics only, to any
 * caller, and 404 for every other path: --metrics, for scrapers beyond
 * loopback, who must not see certificates, configuration or /drain. */
wisp_err wisp_admin_new_metrics(wisp_admin **out, const wisp_admin_sources *src, const char *addr, char *err,
                                size_t err_len) WISP_MUST_CHECK;
/* Closes the listener and every admin connection. Accepts NULL. */
void wisp_admin_free(wisp_admin *a);

#endif
