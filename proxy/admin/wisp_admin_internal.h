/* wisp_admin_internal: what the admin listener's files share; private to
 * them (the public API is proxy/admin/wisp_admin.h).
 *   wisp_admin.c         readiness (pure) and the response bodies: /certs,
 *                        /config and the /metrics writer
 *   wisp_admin_status.c  the body of /status
 *   wisp_admin_http.c    the request parser and router (pure)
 *   wisp_admin_server.c  the server: connections, bounds, routing, the
 *                        /metrics cache; it owns struct wisp_admin */
#ifndef WISP_ADMIN_INTERNAL_H
#define WISP_ADMIN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "lib/wisp_accept.h"
#include "lib/wisp_json.h"
#include "lib/wisp_list.h"
#include "proxy/admin/wisp_admin.h"
#include "proxy/wisp_dataplane.h"

/* One rendered /metrics response, shared (wisp_admin_server.c). */
typedef struct metrics_resp metrics_resp;

/* One admin listener; the bodies read its counters for /metrics. */
struct wisp_admin {
  const wisp_admin_sources *src; /* what it reports on (borrowed) */
  wisp_proxy *px;                /* src->px (proxy/wisp_dataplane.h) */
  struct ev_loop *loop;
  char *name; /* owned, HOST:PORT */
  int fd;
  wisp_acceptor acc;
  wisp_list conns; /* admin_conn.link */
  int nconns;
  uint64_t busy, evicted; /* connections turned away / closed to make room */
  bool metrics_only;      /* --metrics: GET /metrics, nothing else */
  metrics_resp *metrics;  /* the newest /metrics rendering (a reference), or NULL */
  ev_tstamp metrics_at;   /* when it was rendered */
  int renderings;         /* metrics_resp alive, counting those connections hold */
};

/* The bodies of GET /certs, /config and /metrics (|ready|: what /ready
 * answers now), appended to |b|; a failure stays in b->err. */
void wisp_admin_render_certs(wisp_json_writer *b, const wisp_proxy *px);
void wisp_admin_render_config(wisp_json_writer *b, const wisp_proxy *px);
void wisp_admin_render_metrics(wisp_json_writer *b, const wisp_admin_sources *src, bool ready);

#endif
