#include "proxy/admin/wisp_admin.h"
#include "proxy/admin/wisp_admin_internal.h"
#include "proxy/admin/wisp_admin_status.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_json.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_policy.h"
#include "lib/wisp_spiffe.h"
#include "proxy/control/wisp_agent_client.h"
#include "proxy/dataplane/wisp_dests.h"
#include "proxy/dataplane/wisp_events.h"
#include "proxy/control/wisp_intercept.h"
#include "proxy/dataplane/wisp_metrics.h"

/* ===================================================================== */
/* Readiness (pure)                                                      */
/* ===================================================================== */

bool wisp_admin_ready_check(const wisp_tls_info *info, bool loaded, bool listening, bool draining, int64_t now,
                            char *out_reason, size_t reason_len) {
  if (draining) {
    snprintf(out_reason, reason_len, "draining");
  } else if (!loaded) {
    snprintf(out_reason, reason_len, "no SVID yet");
  } else if (info->not_after_unix <= now) {
    snprintf(out_reason, reason_len, "SVID expired at %s", info->not_after);
  } else if (!listening) {
    snprintf(out_reason, reason_len, "listeners are not up");
  } else {
    snprintf(out_reason, reason_len, "ready");
    return true;
  }
  return false;
}

/* ===================================================================== */
/* Response bodies                                                       */
/* ===================================================================== */

/* Short names for the writer's calls, as the renderers below use them. */
static void sb_add(wisp_json_writer *b, const char *s, size_t n) { wisp_json_writer_raw(b, s, n); }

static void sb_printf(wisp_json_writer *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(wisp_json_writer *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wisp_json_writer_vprintf(b, fmt, ap);
  va_end(ap);
}

/* "key": value (NULL string: null), with a leading comma unless first. */
static void json_key(wisp_json_writer *b, const char *key) { wisp_json_writer_key(b, key); }

static void json_str(wisp_json_writer *b, const char *key, const char *val) {
  if (key) json_key(b, key);
  wisp_json_writer_str(b, val);
}

static void json_int(wisp_json_writer *b, const char *key, int64_t val) {
  json_key(b, key);
  wisp_json_writer_int(b, val);
}

static void json_num(wisp_json_writer *b, const char *key, double val) {
  json_key(b, key);
  wisp_json_writer_double(b, val);
}

static void json_bool(wisp_json_writer *b, const char *key, bool val) {
  json_key(b, key);
  wisp_json_writer_bool(b, val);
}

void wisp_admin_render_certs(wisp_json_writer *b, const wisp_proxy *px) {
  const wisp_tls_info *info = wisp_tls_get0_info(wisp_dataplane_tls(px));
  bool loaded = wisp_tls_ready(wisp_dataplane_tls(px));
  sb_add(b, "{", 1);
  json_str(b, "spiffe_id", loaded ? info->spiffe_id : NULL);
  json_str(b, "serial", loaded ? info->serial : NULL);
  json_str(b, "not_after", loaded ? info->not_after : NULL);
  if (loaded) {
    json_int(b, "not_after_unix", info->not_after_unix);
  } else {
    json_str(b, "not_after_unix", NULL);
  }
  json_int(b, "bundle_roots", info->bundle_roots);
  json_str(b, "bundle_not_after", loaded && info->bundle_not_after[0] ? info->bundle_not_after : NULL);
  json_int(b, "generation", (int64_t)info->generation);
  sb_add(b, "}\n", 2);
}

void wisp_admin_render_config(wisp_json_writer *b, const wisp_proxy *px) {
  const wisp_config *cfg = wisp_dataplane_config(px);
  const struct wisp_dests *dests = wisp_dataplane_dests(px);
  sb_add(b, "{", 1);
  json_key(b, "routes");
  sb_add(b, "[", 1);
  for (size_t i = 0; i < cfg->nroutes; i++) {
    if (i) sb_add(b, ",", 1);
    sb_add(b, "{", 1);
    json_str(b, "listen", cfg->routes[i].listen);
    json_str(b, "peer", cfg->routes[i].peer);
    json_str(b, "expect_id", cfg->routes[i].id);
    sb_add(b, "}", 1);
  }
  sb_add(b, "]", 1);
  json_str(b, "inbound", cfg->app || cfg->transparent ? cfg->inbound : NULL);
  json_bool(b, "transparent", cfg->transparent);
  json_str(b, "outbound", cfg->transparent ? cfg->outbound : NULL);
  json_key(b, "destinations"); /* transparent mode's address -> identity map */
  sb_add(b, "[", 1);
  for (size_t i = 0; i < wisp_dests_count(dests); i++) {
    const char *id;
    const char *addr = wisp_dests_entry(dests, i, &id);
    if (i) sb_add(b, ",", 1);
    sb_add(b, "{", 1);
    json_str(b, "address", addr);
    json_str(b, "spiffe_id", id);
    sb_add(b, "}", 1);
  }
  sb_add(b, "]", 1);
  json_str(b, "app", cfg->app);
  json_str(b, "admin", cfg->admin);
  json_str(b, "metrics", cfg->metrics_listen);
  json_int(b, "metrics_max_peers", cfg->metrics_max_peers);
  json_int(b, "metrics_max_series", cfg->metrics_max_series);
  json_int(b, "metrics_max_bytes", (int64_t)cfg->metrics_max_bytes);
  json_str(b, "cert", cfg->cert);
  json_str(b, "key", cfg->key);
  json_str(b, "bundle", cfg->bundle);
  json_bool(b, "allow_tls12", cfg->allow_tls12);
  json_key(b, "timeouts");
  sb_add(b, "{", 1);
  json_num(b, "connect", cfg->connect_timeout);
  json_num(b, "handshake", cfg->handshake_timeout);
  json_num(b, "idle", cfg->idle_timeout);
  json_num(b, "drain", cfg->drain_timeout);
  sb_add(b, "}", 1);
  json_num(b, "reload_interval", cfg->reload_interval);
  json_int(b, "pool_size", cfg->pool_size);
  json_int(b, "max_destinations", cfg->max_destinations);
  json_str(b, "agent", cfg->agent);
  json_str(b, "spiffe_id", cfg->spiffe_id);
  json_str(b, "policy_file", cfg->policy_file);
  json_key(b, "policy");
  wisp_dataplane_policy_info pol;
  wisp_dataplane_get_policy(px, &pol);
  if (!pol.policy) {
    sb_add(b, "null", 4);
  } else {
    wisp_policy_stats st;
    wisp_policy_view_info vi;
    wisp_policy_get_stats(pol.policy, &st);
    wisp_policy_view_get_info(pol.view, &vi);
    sb_add(b, "{", 1);
    json_str(b, "version", pol.version);
    json_int(b, "documents", (int64_t)st.documents);
    json_int(b, "rules", (int64_t)st.rules);
    json_int(b, "governing_allow_policies", (int64_t)vi.allow_policies);
    json_int(b, "governing_deny_policies", (int64_t)vi.deny_policies);
    json_str(b, "mtls_mode", wisp_mtls_mode_name(vi.mode));
    json_str(b, "mtls_mode_from", vi.mode_from);
    json_str(b, "yaml", pol.yaml);
    sb_add(b, "}", 1);
  }
  sb_add(b, "}\n", 2);
}

static void metric_head(wisp_json_writer *b, const char *name, const char *type, const char *help) {
  sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(wisp_json_writer *b, const char *name, const char *type, const char *help, uint64_t val) {
  metric_head(b, name, type, help);
  sb_printf(b, "%s %" PRIu64 "\n", name, val);
}

static void render_admin_metrics(wisp_json_writer *b, const wisp_admin *a); /* the server's own, below */

typedef enum { LISTENER_CONNECTIONS, LISTENER_PAUSES, LISTENER_FAILURES } listener_value;

/* One sample of family |name| per data listener. */
static void listener_family(wisp_json_writer *b, const wisp_proxy *px, const char *name, listener_value which) {
  for (size_t i = 0; i < wisp_dataplane_listener_count(px); i++) {
    wisp_dataplane_listener l;
    wisp_dataplane_get_listener(px, i, &l);
    uint64_t v = which == LISTENER_CONNECTIONS ? l.connections
                 : which == LISTENER_PAUSES    ? l.accept_pauses
                                               : l.accept_failures;
    sb_printf(b, "%s{listener=\"%s\",direction=\"%s\"} %" PRIu64 "\n", name, l.name,
              l.dir == WISP_DIR_INBOUND ? "inbound" : "outbound", v);
  }
}

/* Connection limits (--max-connections*) and accept pauses (no fds). */
static void render_listener_metrics(wisp_json_writer *b, const wisp_admin_sources *src, const wisp_stats *st) {
  const wisp_proxy *px = src->px;
  static const char *const kReason[2] = {"max_connections", "max_connections_per_source"};
  metric_head(b, "wisp_connections_limited_total", "counter",
              "Downstream connections closed at accept because a connection limit was reached.");
  for (int i = 0; i < 2; i++)
    sb_printf(b, "wisp_connections_limited_total{reason=\"%s\"} %" PRIu64 "\n", kReason[i], st->conns_limited[i]);
  metric_head(b, "wisp_listener_connections", "gauge",
              "Open downstream connections of each listener, as counted against --max-connections.");
  listener_family(b, px, "wisp_listener_connections", LISTENER_CONNECTIONS);
  metric_head(b, "wisp_listener_accept_pauses_total", "counter",
              "Times a listener stopped accepting for a while because accept(2) failed: the process ran out of "
              "descriptors (or memory), or the socket broke.");
  listener_family(b, px, "wisp_listener_accept_pauses_total", LISTENER_PAUSES);
  metric_head(b, "wisp_listener_accept_failures_total", "counter",
              "accept(2) calls of a listener that failed other than routinely (each one pauses accepting).");
  listener_family(b, px, "wisp_listener_accept_failures_total", LISTENER_FAILURES);
  if (src->admin) render_admin_metrics(b, src->admin);
}

/* What the alerting rules (deploy/prometheus/wisp-alerts.rules.yaml) watch
 * beyond the families above: refusals, denials and upstream verification
 * failures by reason (wisp_events), the trust bundle's expiry, and in agent
 * mode whether the agent is reachable and refused pushes. */
static void render_alert_signals(wisp_json_writer *b, const wisp_admin_sources *src, const char *local_id) {
  const wisp_proxy *px = src->px;
  const wisp_tls_info *info = wisp_tls_get0_info(wisp_dataplane_tls(px));
  char td[WISP_SPIFFE_MAX + 1], ns[WISP_SPIFFE_MAX + 1], sa[WISP_SPIFFE_MAX + 1];
  wisp_spiffe_split_names(local_id, td, sizeof(td), ns, sizeof(ns), sa, sizeof(sa));
  /* Alerts on the gauges below join this to name the workload. */
  metric_head(b, "wisp_identity_info", "gauge", "This proxy's own SPIFFE ID and the workload it names; always 1.");
  sb_printf(b, "wisp_identity_info{principal=\"%s\",trust_domain=\"%s\",workload_namespace=\"%s\",workload=\"%s\"} 1\n",
            local_id ? local_id : "unknown", td, ns, sa);
  wisp_events_render(b, wisp_dataplane_events(px), local_id);
  metric_head(b, "wisp_trust_bundle_expiry_timestamp_seconds", "gauge",
              "When the earliest-expiring root CA of the trust bundle expires (unix time; 0: no bundle yet).");
  sb_printf(b, "wisp_trust_bundle_expiry_timestamp_seconds %" PRId64 "\n", info->bundle_not_after_unix);
  const wisp_agent_client *agent = src->agent;
  if (!agent) return;
  wisp_agent_client_health h;
  wisp_agent_client_get_health(agent, &h);
  metric(b, "wisp_agent_connected", "gauge", "1 while the Config.Watch stream to wisp-agent is open and serving.",
         h.connected ? 1 : 0);
  metric_head(b, "wisp_agent_last_contact_timestamp_seconds", "gauge",
              "The last time wisp-agent answered (a snapshot or an SVID; now while connected); 0: never.");
  sb_printf(b, "wisp_agent_last_contact_timestamp_seconds %" PRId64 "\n", h.last_contact_unix);
  metric_head(b, "wisp_agent_unreachable_since_timestamp_seconds", "gauge",
              "Since when the agent has been unreachable (the Watch stream lost, or not yet open); 0 while "
              "connected.");
  sb_printf(b, "wisp_agent_unreachable_since_timestamp_seconds %" PRId64 "\n", h.unreachable_since_unix);
  metric(b, "wisp_policy_nacks_total", "counter",
         "Versions pushed by wisp-agent that this proxy refused (NACKed); the last good one stayed in force.", h.nacks);
  metric(b, "wisp_policy_nacked", "gauge", "1 when the last version pushed by wisp-agent was refused (NACKed).",
         h.nacked ? 1 : 0);
}

/* --workers: how the kernel spread callers over the workers' listeners,
 * and the requests each served (the totals above are their sums). */
static void render_worker_metrics(wisp_json_writer *b, const wisp_proxy *px) {
  size_t n = wisp_dataplane_worker_count(px);
  wisp_dataplane_counters *per = wisp_calloc(n, sizeof(*per));
  for (size_t i = 0; i < n; i++) wisp_dataplane_get_worker_counters(px, i, &per[i]);
  metric_head(b, "wisp_worker_connections_accepted_total", "counter",
              "Downstream connections accepted by each worker (--workers; worker 0 is the main thread).");
  for (size_t i = 0; i < n; i++)
    sb_printf(b, "wisp_worker_connections_accepted_total{worker=\"%zu\"} %" PRIu64 "\n", i,
              per[i].stats.conns_accepted);
  metric_head(b, "wisp_worker_requests_started_total", "counter", "Requests received from callers by each worker.");
  for (size_t i = 0; i < n; i++)
    sb_printf(b, "wisp_worker_requests_started_total{worker=\"%zu\"} %" PRIu64 "\n", i, per[i].stats.requests);
  free(per);
}

void wisp_admin_render_metrics(wisp_json_writer *b, const wisp_admin_sources *src, bool ready) {
  const wisp_proxy *px = src->px;
  wisp_dataplane_counters now;
  wisp_dataplane_get_counters(px, &now);
  const wisp_stats *st = &now.stats;
  const wisp_tls *tls = wisp_dataplane_tls(px);
  const wisp_tls_info *info = wisp_tls_get0_info(tls);
  metric(b, "wisp_connections_accepted_total", "counter", "Downstream connections accepted.", st->conns_accepted);
  render_worker_metrics(b, px);
  metric(b, "wisp_connections_refused_total", "counter",
         "Downstream connections refused before HTTP/2 began (TLS, identity, preface).", st->conns_refused);
  metric(b, "wisp_connections_closed_early_total", "counter",
         "Downstream connections the caller closed before sending a byte (TCP probes, port scans).",
         st->conns_closed_early);
  metric(b, "wisp_upstream_connects_total", "counter", "Upstream connections opened.", st->upstream_connects);
  metric(b, "wisp_upstream_failures_total", "counter",
         "Upstream connections that failed (connect, TLS, identity) or closed with an error.", st->upstream_failures);
  metric(b, "wisp_requests_started_total", "counter", "Requests (HTTP/2 streams) received from callers.", st->requests);
  metric(b, "wisp_upstream_requests_total", "counter",
         "Requests sent on to an upstream (the app or a peer sidecar); a retry counts again.", st->upstream_requests);
  metric(b, "wisp_error_responses_total", "counter",
         "Error responses wisp made itself because the upstream could not be reached or verified.",
         st->responses_error);
  metric(b, "wisp_streams_refused_total", "counter",
         "New streams refused (REFUSED_STREAM): the caller's --conn-buffer-limit or the --buffer-limit was held.",
         st->streams_refused);
  metric(b, "wisp_stream_idle_timeouts_total", "counter",
         "Caller streams on which no byte moved either way for --stream-idle-timeout: answered 408 (gRPC "
         "DEADLINE_EXCEEDED), or reset once their response had started.",
         st->idle_timeouts);
  metric(b, "wisp_tunnel_idle_timeouts_total", "counter",
         "L4 tunnels (Upgrade, CONNECT, wisp-l4, transparent non-HTTP) closed, both ends reset, because no byte "
         "moved either way for --tunnel-idle-timeout.",
         st->tunnel_idle_timeouts);
  metric(b, "wisp_memory_trims_total", "counter",
         "Times a worker gave memory back to the system once calm after a burst (its slab freelists, then "
         "malloc_trim).",
         st->memory_trims);
  metric(b, "wisp_header_bytes_held", "gauge",
         "Decoded header and trailer bytes streams hold (name + value + 32 per field), in the buffer budgets.",
         now.hdr_held);
  /* wisp_requests_total and the rest by identity; its direction and code
   * labels are those this family always had. */
  wisp_metrics_render(b, wisp_dataplane_metrics(px), wisp_tls_ready(tls) ? info->spiffe_id : NULL);
  uint64_t finished = 0;
  for (int d = 0; d < 2; d++) {
    for (int k = 0; k < WISP_STATUS_CLASSES; k++) finished += st->finished[d][k];
  }
  metric_head(b, "wisp_premature_resets_total", "counter",
              "Caller streams ended before their response by the caller's doing: it sent RST_STREAM (peer) or "
              "broke the protocol on the stream (protocol). Counted against --max-resets.");
  sb_printf(b, "wisp_premature_resets_total{by=\"peer\"} %" PRIu64 "\n", st->premature_resets[0]);
  sb_printf(b, "wisp_premature_resets_total{by=\"protocol\"} %" PRIu64 "\n", st->premature_resets[1]);
  metric_head(b, "wisp_reset_limited_total", "counter",
              "Premature resets over --max-resets: the connection cut (GOAWAY), or throttled (a peer sidecar's "
              "connections: 4 upstream streams shared per source).");
  sb_printf(b, "wisp_reset_limited_total{action=\"cut\"} %" PRIu64 "\n", st->reset_limited[0]);
  sb_printf(b, "wisp_reset_limited_total{action=\"throttled\"} %" PRIu64 "\n", st->reset_limited[1]);
  metric_head(b, "wisp_connections_open", "gauge", "Open connections: downstream (callers) and upstream.");
  sb_printf(b, "wisp_connections_open{side=\"downstream\"} %" PRIu64 "\n", now.conns_open[0]);
  sb_printf(b, "wisp_connections_open{side=\"upstream\"} %" PRIu64 "\n", now.conns_open[1]);
  render_listener_metrics(b, src, st);
  metric(b, "wisp_streams_open", "gauge", "Requests in progress.",
         st->requests > finished ? st->requests - finished : 0);
  metric(b, "wisp_requests_queued", "gauge",
         "Requests waiting for an upstream stream (at most --max-queued per upstream, each --queue-timeout).",
         now.requests_queued);
  metric(b, "wisp_destinations", "gauge", "Transparent destinations kept with their pools (--max-destinations).",
         now.destinations);
  metric(b, "wisp_destinations_evicted_total", "counter",
         "Transparent destinations evicted, unused, to make room for a new one.", now.destinations_gone);
  metric_head(b, "wisp_svid_expiry_timestamp_seconds", "gauge", "When the current SVID expires (unix time).");
  sb_printf(b, "wisp_svid_expiry_timestamp_seconds %" PRId64 "\n", info->not_after_unix);
  /* With the expiry it gives the SVID's lifetime: WispSVIDExpiringSoon fires
   * when under a quarter of it is left, whatever the TTL. */
  metric_head(b, "wisp_svid_issued_timestamp_seconds", "gauge",
              "When the current SVID was issued (its notBefore; unix time; 0: none loaded).");
  sb_printf(b, "wisp_svid_issued_timestamp_seconds %" PRId64 "\n", wisp_admin_svid_issued_unix(src));
  metric(b, "wisp_cert_generation", "gauge", "Certificate loads so far; bumps on every reload.", info->generation);
  metric(b, "wisp_bundle_roots", "gauge", "Root CAs in the trust bundle.", (uint64_t)info->bundle_roots);
  metric(b, "wisp_ready", "gauge", "1 when /ready answers 200.", ready ? 1 : 0);
  metric(b, "wisp_draining", "gauge", "1 once a drain (SIGTERM or POST /drain) began.",
         wisp_dataplane_draining(px) ? 1 : 0);
  char why[8];
  metric(b, "wisp_intercept_verified", "gauge",
         "1 when the iptables interception check passes or is not asked for (--transparent).",
         wisp_intercept_ok(src->intercept, why, sizeof(why)) ? 1 : 0);
  render_alert_signals(b, src, wisp_tls_ready(tls) ? info->spiffe_id : NULL);
}

static void render_admin_metrics(wisp_json_writer *b, const wisp_admin *a) {
  metric_head(b, "wisp_admin_connections_dropped_total", "counter",
              "Admin connections turned away (busy: every slot answering) or closed to make room for a new one "
              "(evicted: the longest idle without a whole request).");
  sb_printf(b, "wisp_admin_connections_dropped_total{reason=\"busy\"} %" PRIu64 "\n", a->busy);
  sb_printf(b, "wisp_admin_connections_dropped_total{reason=\"evicted\"} %" PRIu64 "\n", a->evicted);
  metric(b, "wisp_admin_accept_pauses_total", "counter",
         "Times the admin listener stopped accepting for a while because the process ran out of descriptors.",
         a->acc.pauses);
  metric(b, "wisp_admin_accept_failures_total", "counter",
         "accept(2) calls of the admin listener that failed other than routinely (each one pauses accepting).",
         a->acc.failures);
}
