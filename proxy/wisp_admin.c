#include "proxy/wisp_admin.h"
#include "proxy/wisp_admin_status.h"
#include "proxy/wisp_authz.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/wisp_buf.h"
#include "lib/wisp_json.h"
#include "lib/wisp_list.h"
#include "lib/wisp_log.h"
#include "lib/wisp_policy.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_net.h"
#include "proxy/internal.h"
#include "proxy/wisp_agent_client.h"
#include "proxy/wisp_dests.h"
#include "proxy/wisp_events.h"
#include "proxy/wisp_intercept.h"
#include "proxy/wisp_metrics.h"

/* At most this many admin connections at once; more are answered 503. */
#define ADMIN_MAX_CONNS 32
#define ADMIN_ACCEPTS_PER_EVENT 16
/* From accept to the response written. */
#define ADMIN_TIMEOUT 5.0
/* Callers beyond loopback (the kubelet's probes) share a few slots, at
 * most a handful from one address, and get a short timeout: other pods
 * must not be able to hold the admin port and starve the probes. */
#define ADMIN_MAX_REMOTE 16
#define ADMIN_MAX_PER_REMOTE_ADDR 4
#define ADMIN_REMOTE_TIMEOUT 1.0
/* After the response: read and drop what the client still sends (so the
 * close does not turn into a RST that eats the response), this long and
 * this much at most. */
#define ADMIN_LINGER_TIME 1.0
#define ADMIN_LINGER_BYTES (64 * 1024)
#define ADMIN_WRITES_PER_EVENT 64
/* /metrics is rendered at most once this often per listener; scrapers in
 * between share that rendering (one buffer, referenced, never copied). */
#define ADMIN_METRICS_REUSE 1.0
/* At most this many renderings alive at once per listener (the newest
 * and those slow readers still hold); past it scrapers get the newest,
 * however old, so readers that do not read cannot pile up bodies. */
#define ADMIN_METRICS_RENDERINGS_MAX 3

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

/* Response bodies are bounded by what we render (the config, the policy,
 * a fixed set of metrics), never by a client; this is far above it: the
 * largest part is the policy YAML (at most WISP_POLICY_MAX_INPUT, 4 MiB,
 * escaped at most 6 bytes a byte). */
#define ADMIN_BODY_MAX (64u << 20)
/* The status line and headers in front of a body. */
#define ADMIN_HEAD_MAX 1024

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

static void render_certs(wisp_json_writer *b, const wisp_proxy *px) {
  const wisp_tls_info *info = wisp_tls_get0_info(px->tls);
  bool loaded = wisp_tls_ready(px->tls);
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

static void render_config(wisp_json_writer *b, const wisp_proxy *px) {
  const wisp_config *cfg = px->cfg;
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
  for (size_t i = 0; i < wisp_dests_count(px->dests); i++) {
    const char *id;
    const char *addr = wisp_dests_entry(px->dests, i, &id);
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
  if (!px->policy) {
    sb_add(b, "null", 4);
  } else {
    wisp_policy_stats st;
    wisp_policy_view_info vi;
    wisp_policy_get_stats(px->policy, &st);
    wisp_policy_view_get_info(px->view, &vi);
    sb_add(b, "{", 1);
    json_str(b, "version", px->policy_version);
    json_int(b, "documents", (int64_t)st.documents);
    json_int(b, "rules", (int64_t)st.rules);
    json_int(b, "governing_allow_policies", (int64_t)vi.allow_policies);
    json_int(b, "governing_deny_policies", (int64_t)vi.deny_policies);
    json_str(b, "mtls_mode", wisp_mtls_mode_name(vi.mode));
    json_str(b, "mtls_mode_from", vi.mode_from);
    json_str(b, "yaml", px->policy_yaml);
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

static void render_admin_metrics(wisp_json_writer *b, const wisp_admin *a); /* with the server, below */

/* Connection limits (--max-connections*) and accept pauses (no fds). */
static void render_listener_metrics(wisp_json_writer *b, const wisp_proxy *px) {
  static const char *const kReason[2] = {"max_connections", "max_connections_per_source"};
  metric_head(b, "wisp_connections_limited_total", "counter",
              "Downstream connections closed at accept because a connection limit was reached.");
  for (int i = 0; i < 2; i++)
    sb_printf(b, "wisp_connections_limited_total{reason=\"%s\"} %" PRIu64 "\n", kReason[i],
              px->stats.conns_limited[i]);
  metric_head(b, "wisp_listener_connections", "gauge",
              "Open downstream connections of each listener, as counted against --max-connections.");
  for (size_t i = 0; i < px->nlisteners; i++) {
    const wisp_listener *l = &px->listeners[i];
    sb_printf(b, "wisp_listener_connections{listener=\"%s\",direction=\"%s\"} %" PRIu32 "\n", l->name,
              l->dir == WISP_DIR_INBOUND ? "inbound" : "outbound", wisp_connlimit_count(l->limit));
  }
  metric_head(b, "wisp_listener_accept_pauses_total", "counter",
              "Times a listener stopped accepting for a while because accept(2) failed: the process ran out of "
              "descriptors (or memory), or the socket broke.");
  for (size_t i = 0; i < px->nlisteners; i++) {
    const wisp_listener *l = &px->listeners[i];
    sb_printf(b, "wisp_listener_accept_pauses_total{listener=\"%s\",direction=\"%s\"} %" PRIu64 "\n", l->name,
              l->dir == WISP_DIR_INBOUND ? "inbound" : "outbound", l->acc.pauses);
  }
  metric_head(b, "wisp_listener_accept_failures_total", "counter",
              "accept(2) calls of a listener that failed other than routinely (each one pauses accepting).");
  for (size_t i = 0; i < px->nlisteners; i++) {
    const wisp_listener *l = &px->listeners[i];
    sb_printf(b, "wisp_listener_accept_failures_total{listener=\"%s\",direction=\"%s\"} %" PRIu64 "\n", l->name,
              l->dir == WISP_DIR_INBOUND ? "inbound" : "outbound", l->acc.failures);
  }
  if (px->admin) render_admin_metrics(b, px->admin);
}

/* What the alerting rules (deploy/prometheus/wisp-alerts.rules.yaml) watch
 * beyond the families above: refusals, denials and upstream verification
 * failures by reason (wisp_events), the trust bundle's expiry, and in agent
 * mode whether the agent is reachable and refused pushes. */
static void render_alert_signals(wisp_json_writer *b, const wisp_proxy *px, const char *local_id) {
  const wisp_tls_info *info = wisp_tls_get0_info(px->tls);
  char td[WISP_SPIFFE_MAX + 1], ns[WISP_SPIFFE_MAX + 1], sa[WISP_SPIFFE_MAX + 1];
  wisp_metrics_split_id(local_id, td, sizeof(td), ns, sizeof(ns), sa, sizeof(sa));
  /* Alerts on the gauges below join this to name the workload. */
  metric_head(b, "wisp_identity_info", "gauge", "This proxy's own SPIFFE ID and the workload it names; always 1.");
  sb_printf(b, "wisp_identity_info{principal=\"%s\",trust_domain=\"%s\",workload_namespace=\"%s\",workload=\"%s\"} 1\n",
            local_id ? local_id : "unknown", td, ns, sa);
  wisp_events_render(b, px->events, local_id);
  metric_head(b, "wisp_trust_bundle_expiry_timestamp_seconds", "gauge",
              "When the earliest-expiring root CA of the trust bundle expires (unix time; 0: no bundle yet).");
  sb_printf(b, "wisp_trust_bundle_expiry_timestamp_seconds %" PRId64 "\n", info->bundle_not_after_unix);
  if (!px->agent) return;
  wisp_agent_client_health h;
  wisp_agent_client_get_health(px->agent, &h);
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
         "Versions pushed by wisp-agent that this proxy refused (NACKed); the last good one stayed in force.",
         h.nacks);
  metric(b, "wisp_policy_nacked", "gauge", "1 when the last version pushed by wisp-agent was refused (NACKed).",
         h.nacked ? 1 : 0);
}

static void render_metrics(wisp_json_writer *b, const wisp_proxy *px, bool ready) {
  const wisp_stats *st = &px->stats;
  const wisp_tls_info *info = wisp_tls_get0_info(px->tls);
  metric(b, "wisp_connections_accepted_total", "counter", "Downstream connections accepted.", st->conns_accepted);
  metric(b, "wisp_connections_refused_total", "counter",
         "Downstream connections refused before HTTP/2 began (TLS, identity, preface).", st->conns_refused);
  metric(b, "wisp_connections_closed_early_total", "counter",
         "Downstream connections the caller closed before sending a byte (TCP probes, port scans).",
         st->conns_closed_early);
  metric(b, "wisp_upstream_connects_total", "counter", "Upstream connections opened.", st->upstream_connects);
  metric(b, "wisp_upstream_failures_total", "counter",
         "Upstream connections that failed (connect, TLS, identity) or closed with an error.",
         st->upstream_failures);
  metric(b, "wisp_requests_started_total", "counter", "Requests (HTTP/2 streams) received from callers.",
         st->requests);
  metric(b, "wisp_upstream_requests_total", "counter",
         "Requests sent on to an upstream (the app or a peer sidecar); a retry counts again.", st->upstream_requests);
  metric(b, "wisp_error_responses_total", "counter",
         "Error responses wisp made itself because the upstream could not be reached or verified.",
         st->responses_error);
  metric(b, "wisp_streams_refused_total", "counter",
         "New streams refused (REFUSED_STREAM): the caller's --conn-buffer-limit or the --buffer-limit was held.",
         st->streams_refused);
  metric(b, "wisp_header_bytes_held", "gauge",
         "Decoded header and trailer bytes streams hold (name + value + 32 per field), in the buffer budgets.",
         (uint64_t)px->hdr_held);
  /* wisp_requests_total and the rest by identity; its direction and code
   * labels are those this family always had. */
  wisp_metrics_render(b, px->metrics, wisp_tls_ready(px->tls) ? info->spiffe_id : NULL);
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
              "shared connection: one upstream stream at a time).");
  sb_printf(b, "wisp_reset_limited_total{action=\"cut\"} %" PRIu64 "\n", st->reset_limited[0]);
  sb_printf(b, "wisp_reset_limited_total{action=\"throttled\"} %" PRIu64 "\n", st->reset_limited[1]);
  uint64_t open[2] = {0, 0}; /* downstream, upstream */
  for (const wisp_conn *c = px->conns; c; c = c->next) open[c->io.upstream ? 1 : 0]++;
  metric_head(b, "wisp_connections_open", "gauge", "Open connections: downstream (callers) and upstream.");
  sb_printf(b, "wisp_connections_open{side=\"downstream\"} %" PRIu64 "\n", open[0]);
  sb_printf(b, "wisp_connections_open{side=\"upstream\"} %" PRIu64 "\n", open[1]);
  render_listener_metrics(b, px);
  metric(b, "wisp_streams_open", "gauge", "Requests in progress.",
         st->requests > finished ? st->requests - finished : 0);
  metric(b, "wisp_destinations", "gauge", "Transparent destinations kept with their pools (--max-destinations).",
         (uint64_t)px->ndyn);
  metric(b, "wisp_destinations_evicted_total", "counter",
         "Transparent destinations evicted, unused, to make room for a new one.", px->dyn_evicted);
  metric_head(b, "wisp_svid_expiry_timestamp_seconds", "gauge", "When the current SVID expires (unix time).");
  sb_printf(b, "wisp_svid_expiry_timestamp_seconds %" PRId64 "\n", info->not_after_unix);
  /* With the expiry it gives the SVID's lifetime: WispSVIDExpiringSoon fires
   * when under a quarter of it is left, whatever the TTL. */
  metric_head(b, "wisp_svid_issued_timestamp_seconds", "gauge",
              "When the current SVID was issued (its notBefore; unix time; 0: none loaded).");
  sb_printf(b, "wisp_svid_issued_timestamp_seconds %" PRId64 "\n", wisp_admin_svid_issued_unix(px));
  metric(b, "wisp_cert_generation", "gauge", "Certificate loads so far; bumps on every reload.", info->generation);
  metric(b, "wisp_bundle_roots", "gauge", "Root CAs in the trust bundle.", (uint64_t)info->bundle_roots);
  metric(b, "wisp_ready", "gauge", "1 when /ready answers 200.", ready ? 1 : 0);
  metric(b, "wisp_draining", "gauge", "1 once a drain (SIGTERM or POST /drain) began.", px->draining ? 1 : 0);
  char why[8];
  metric(b, "wisp_intercept_verified", "gauge",
         "1 when the iptables interception check passes or is not asked for (--transparent).",
         wisp_intercept_ok(px, why, sizeof(why)) ? 1 : 0);
  render_alert_signals(b, px, wisp_tls_ready(px->tls) ? info->spiffe_id : NULL);
}

/* ===================================================================== */
/* The server                                                            */
/* ===================================================================== */

typedef enum { ADMIN_READING, ADMIN_WRITING, ADMIN_LINGERING } admin_state;

/* One rendered /metrics response, status line and headers included,
 * shared by the listener's cache and every connection sending it; the
 * last reference frees it. */
typedef struct metrics_resp {
  int refs;
  size_t len;
  uint8_t data[];
} metrics_resp;

typedef struct admin_conn {
  wisp_admin *a;
  int fd;
  admin_state state;
  ev_io io;
  ev_timer timer;
  uint8_t in[WISP_ADMIN_REQUEST_MAX];
  size_t in_len;
  size_t lingered;     /* bytes dropped while lingering */
  wisp_buf out;        /* the whole response; what is still to send */
  metrics_resp *shared; /* instead of |out|: a shared /metrics response (a reference) */
  size_t shared_sent;  /* bytes of it sent */
  bool drain_after;    /* POST /drain: start the drain once the 202 is out */
  char peer[64];
  wisp_connlimit_key src; /* the caller, as the data listeners count callers */
  bool remote;         /* not from loopback: health endpoints only */
  ev_tstamp since;     /* accepted */
  wisp_list link;       /* in wisp_admin.conns, newest first */
} admin_conn;

struct wisp_admin {
  wisp_proxy *px;
  char *name;  /* owned, HOST:PORT */
  int fd;
  wisp_acceptor acc;
  wisp_list conns;     /* admin_conn.link */
  int nconns;
  uint64_t busy, evicted; /* connections turned away / closed to make room */
  bool metrics_only;   /* --metrics: GET /metrics, nothing else */
  metrics_resp *metrics;  /* the newest /metrics rendering (a reference), or NULL */
  ev_tstamp metrics_at;   /* when it was rendered */
  int renderings;         /* metrics_resp alive, counting those connections hold */
};

static void metrics_resp_unref(wisp_admin *a, metrics_resp *r) {
  if (!r || --r->refs > 0) return;
  a->renderings--;
  free(r);
}

static void conn_free(admin_conn *c) {
  wisp_admin *a = c->a;
  struct ev_loop *loop = a->px->loop;
  ev_io_stop(loop, &c->io);
  ev_timer_stop(loop, &c->timer);
  close(c->fd);
  wisp_list_unlink(&c->link);
  a->nconns--;
  wisp_buf_cleanup(&c->out);
  metrics_resp_unref(a, c->shared);
  free(c);
}

static void conn_watch(admin_conn *c, int events, double timeout) {
  struct ev_loop *loop = c->a->px->loop;
  ev_io_stop(loop, &c->io);
  ev_io_set(&c->io, c->fd, events);
  ev_io_start(loop, &c->io);
  ev_timer_stop(loop, &c->timer);
  ev_timer_set(&c->timer, timeout, 0);
  ev_timer_start(loop, &c->timer);
}

/* The response is out: half-close and wait (bounded) for the client's EOF. */
static void conn_linger(admin_conn *c) {
  wisp_buf_cleanup(&c->out);
  metrics_resp_unref(c->a, c->shared);
  c->shared = NULL;
  c->state = ADMIN_LINGERING;
  if (c->drain_after) {
    c->drain_after = false;
    WISP_INFO("drain requested on the admin listener by %s", c->peer);
    wisp_proxy_start_drain(c->a->px);
  }
  if (shutdown(c->fd, SHUT_WR) != 0) {
    conn_free(c);
    return;
  }
  conn_watch(c, EV_READ, ADMIN_LINGER_TIME);
}

/* What is left to send: of the shared response, else of |out|. */
static size_t conn_pending(const admin_conn *c, const uint8_t **p) {
  if (c->shared) {
    *p = c->shared->data + c->shared_sent;
    return c->shared->len - c->shared_sent;
  }
  *p = wisp_buf_rptr(&c->out);
  return wisp_buf_len(&c->out);
}

static void conn_flush(admin_conn *c) {
  const uint8_t *p;
  for (int i = 0; i < ADMIN_WRITES_PER_EVENT && conn_pending(c, &p) > 0; i++) {
    ssize_t n = send(c->fd, p, conn_pending(c, &p), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      conn_free(c); /* the client went away */
      return;
    }
    if (c->shared) {
      c->shared_sent += (size_t)n;
    } else {
      wisp_buf_consume(&c->out, (size_t)n);
    }
  }
  if (conn_pending(c, &p) > 0) {
    if (!(c->io.events & EV_WRITE)) conn_watch(c, EV_WRITE, ADMIN_TIMEOUT);
    return;
  }
  conn_linger(c);
}

/* Sends the response and closes. |allow|: an Allow header (405). */
/* The status line and headers of a response; |body_len| SIZE_MAX: not
 * known (HEAD /metrics, which does not render), no Content-Length. */
static wisp_err response_head(wisp_buf *o, int status, const char *ctype, const char *allow, size_t body_len) {
  const size_t limit = ADMIN_HEAD_MAX + ADMIN_BODY_MAX;
  char length[48] = "";
  if (body_len != SIZE_MAX) snprintf(length, sizeof(length), "Content-Length: %zu\r\n", body_len);
  return wisp_buf_printf(o, limit,
                         "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s%s%sCache-Control: no-store\r\n"
                         "Connection: close\r\n\r\n",
                         status, wisp_admin_reason_phrase(status), ctype, length, allow ? "Allow: " : "",
                         allow ? allow : "", allow ? "\r\n" : "");
}

static void respond(admin_conn *c, int status, const char *ctype, const char *allow, const char *body,
                    size_t body_len, bool head_only) {
  wisp_buf *o = &c->out;
  wisp_err rc = response_head(o, status, ctype, allow, body_len);
  if (rc == WISP_OK && !head_only) rc = wisp_buf_append(o, body, body_len, ADMIN_HEAD_MAX + ADMIN_BODY_MAX);
  if (rc != WISP_OK) {
    conn_free(c); /* cannot happen: bodies are bounded by ADMIN_BODY_MAX */
    return;
  }
  c->state = ADMIN_WRITING;
  conn_flush(c);
}

static void respond_text(admin_conn *c, int status, const char *allow, const char *text, bool head_only) {
  char body[WISP_TLS_REASON_MAX + 128];
  int n = snprintf(body, sizeof(body), "%s\n", text);
  size_t len = n < 0 ? 0 : (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1;
  respond(c, status, "text/plain; charset=utf-8", allow, body, len, head_only);
}

/* A rendered body, or 500 when it could not be rendered whole. */
static void respond_body(admin_conn *c, const char *ctype, const wisp_json_writer *body, bool head_only) {
  if (body->err != WISP_OK) {
    char text[128];
    snprintf(text, sizeof(text), "cannot render the response: %s", wisp_err_str(body->err));
    respond_text(c, 500, NULL, text, head_only);
    return;
  }
  respond(c, 200, ctype, NULL, (const char *)wisp_buf_rptr(&body->out), wisp_buf_len(&body->out), head_only);
}

#define METRICS_CTYPE "text/plain; version=0.0.4; charset=utf-8"

/* A new rendering of /metrics as a whole response, with one reference;
 * NULL when it could not be rendered whole (|err| says why). */
static metrics_resp *metrics_render_resp(wisp_admin *a, bool ready, wisp_err *err) {
  wisp_json_writer body;
  wisp_json_writer_init(&body, ADMIN_BODY_MAX, WISP_JSON_ESCAPE_U);
  render_metrics(&body, a->px, ready);
  wisp_buf head = {0};
  *err = body.err;
  if (*err == WISP_OK) *err = response_head(&head, 200, METRICS_CTYPE, NULL, wisp_buf_len(&body.out));
  metrics_resp *r = NULL;
  if (*err == WISP_OK) {
    size_t hl = wisp_buf_len(&head), bl = wisp_buf_len(&body.out);
    r = wisp_malloc(sizeof(*r) + hl + bl);
    r->refs = 1;
    r->len = hl + bl;
    memcpy(r->data, wisp_buf_rptr(&head), hl);
    memcpy(r->data + hl, wisp_buf_rptr(&body.out), bl);
    a->renderings++;
  }
  wisp_buf_cleanup(&head);
  wisp_json_writer_cleanup(&body);
  return r;
}

/* GET /metrics: the listener's rendering while it is recent (or while
 * slow readers hold too many older ones), else a new one. The connection
 * points into it. On the admin port (loopback: the pod's own containers
 * and tests that read a counter right after a request) a recent rendering
 * is shared only while another connection still sends it; the --metrics
 * port shares it for ADMIN_METRICS_REUSE whatever happens. */
static void respond_metrics(admin_conn *c, bool ready) {
  wisp_admin *a = c->a;
  ev_tstamp now = ev_now(a->px->loop);
  bool fresh = a->metrics && now - a->metrics_at < ADMIN_METRICS_REUSE && (a->metrics_only || a->metrics->refs > 1);
  if (!fresh && (!a->metrics || a->renderings < ADMIN_METRICS_RENDERINGS_MAX)) {
    wisp_err err;
    metrics_resp *r = metrics_render_resp(a, ready, &err);
    if (!r) {
      char text[128];
      snprintf(text, sizeof(text), "cannot render the response: %s", wisp_err_str(err));
      respond_text(c, 500, NULL, text, false);
      return;
    }
    metrics_resp_unref(a, a->metrics);
    a->metrics = r;
    a->metrics_at = now;
  }
  a->metrics->refs++;
  c->shared = a->metrics;
  c->shared_sent = 0;
  c->state = ADMIN_WRITING;
  conn_flush(c);
}

static bool proxy_listening(const wisp_proxy *px) {
  if (px->nlisteners == 0) return false;
  for (size_t i = 0; i < px->nlisteners; i++) {
    if (px->listeners[i].fd < 0) return false;
  }
  return true;
}

static bool proxy_ready(const wisp_proxy *px, char *reason, size_t reason_len) {
  return wisp_admin_ready_check(wisp_tls_get0_info(px->tls), wisp_tls_ready(px->tls), proxy_listening(px),
                                px->draining, (int64_t)time(NULL), reason, reason_len) &&
         wisp_intercept_ok(px, reason, reason_len) && /* fail closed: an unprotected pod is not ready */
         !wisp_authz_pending(px, reason, reason_len);
}

static void handle(admin_conn *c, const wisp_admin_request *req) {
  wisp_proxy *px = c->a->px;
  wisp_admin_endpoint ep;
  const char *allow;
  int status = wisp_admin_route(req, &ep, &allow);
  bool head = strcmp(req->method, "HEAD") == 0;
  char text[WISP_TLS_REASON_MAX + 64];
  if (c->a->metrics_only && strcmp(req->path, "/metrics") != 0) { /* its 405 (POST /metrics) stays */
    snprintf(text, sizeof(text), "no such endpoint: %s (this port serves GET /metrics only)", req->path);
    respond_text(c, 404, NULL, text, head);
    return;
  }
  if (status == 404) {
    snprintf(text, sizeof(text), "no such endpoint: %s (try /healthz /ready /status /certs /config /metrics, POST /drain)",
             req->path);
    respond_text(c, 404, NULL, text, head);
    return;
  }
  if (status == 405) {
    snprintf(text, sizeof(text), "%s takes %s only", req->path, allow);
    respond_text(c, 405, allow, text, head);
    return;
  }
  if (c->remote && !c->a->metrics_only && ep != WISP_ADMIN_EP_HEALTHZ && ep != WISP_ADMIN_EP_READY) {
    /* The admin port may listen beyond loopback for the kubelet's probes;
     * certificates, configuration and drain stay local. */
    snprintf(text, sizeof(text), "%s is served to loopback callers only (remote: /healthz /ready)", req->path);
    respond_text(c, 403, NULL, text, head);
    return;
  }
  wisp_json_writer body;
  wisp_json_writer_init(&body, ADMIN_BODY_MAX, WISP_JSON_ESCAPE_U);
  bool ready;
  switch (ep) {
    case WISP_ADMIN_EP_HEALTHZ:
      respond_text(c, 200, NULL, "ok", head);
      break;
    case WISP_ADMIN_EP_READY:
      ready = proxy_ready(px, text, sizeof(text));
      respond_text(c, ready ? 200 : 503, NULL, text, head);
      break;
    case WISP_ADMIN_EP_CERTS:
      render_certs(&body, px);
      respond_body(c, "application/json", &body, head);
      break;
    case WISP_ADMIN_EP_CONFIG:
      render_config(&body, px);
      respond_body(c, "application/json", &body, head);
      break;
    case WISP_ADMIN_EP_METRICS:
      if (head) {
        respond(c, 200, METRICS_CTYPE, NULL, NULL, SIZE_MAX, true); /* without rendering */
      } else {
        respond_metrics(c, proxy_ready(px, text, sizeof(text)));
      }
      break;
    case WISP_ADMIN_EP_STATUS:
      ready = proxy_ready(px, text, sizeof(text));
      wisp_admin_render_status(&body, px, ready, text);
      respond_body(c, "application/json", &body, head);
      break;
    case WISP_ADMIN_EP_DRAIN:
      c->drain_after = !px->draining;
      respond_text(c, 202, NULL, px->draining ? "already draining" : "draining", false);
      break;
    case WISP_ADMIN_EP_NONE:
      respond_text(c, 404, NULL, "no such endpoint", head);
      break;
  }
  wisp_json_writer_cleanup(&body);
}

static void on_conn_read(admin_conn *c) {
  uint8_t *dst = c->in;
  size_t room = sizeof(c->in);
  if (c->state == ADMIN_READING) {
    dst += c->in_len;
    room -= c->in_len;
  }
  ssize_t n = read(c->fd, dst, room);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (c->state == ADMIN_LINGERING) {
    c->lingered += n > 0 ? (size_t)n : 0;
    if (n <= 0 || c->lingered > ADMIN_LINGER_BYTES) conn_free(c);
    return;
  }
  if (n < 0) {
    conn_free(c);
    return;
  }
  if (n == 0) {
    if (c->in_len == 0) {
      conn_free(c); /* connected and left: a TCP probe */
    } else {
      respond_text(c, 400, NULL, "bad request: incomplete request", false);
    }
    return;
  }
  c->in_len += (size_t)n;
  wisp_admin_request req;
  wisp_err rc = wisp_admin_parse_request(&req, c->in, c->in_len, sizeof(c->in));
  char text[128];
  switch (rc) {
    case WISP_OK:
      handle(c, &req);
      break;
    case WISP_ERR_AGAIN:
      break;
    case WISP_ERR_TOO_BIG:
      snprintf(text, sizeof(text), "%s (at most %d bytes)", req.reason, WISP_ADMIN_REQUEST_MAX);
      respond_text(c, 413, NULL, text, false);
      break;
    default:
      snprintf(text, sizeof(text), "bad request: %s", req.reason);
      respond_text(c, 400, NULL, text, false);
      break;
  }
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents) {
  admin_conn *c = w->data;
  if (c->state == ADMIN_WRITING) {
    conn_flush(c);
  } else {
    on_conn_read(c);
  }
}

static void on_conn_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  admin_conn *c = w->data;
  if (c->state == ADMIN_READING && c->in_len > 0) {
    respond_text(c, 408, NULL, "request timeout", false);
  } else {
    conn_free(c);
  }
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

/* Which connections a newcomer competes with for slots. */
typedef enum { ADMIN_POOL_ALL, ADMIN_POOL_REMOTE, ADMIN_POOL_HOST } admin_pool;

static bool in_pool(const admin_conn *c, admin_pool pool, const wisp_connlimit_key *src) {
  return pool == ADMIN_POOL_ALL ||
         (c->remote && (pool == ADMIN_POOL_REMOTE || wisp_connlimit_key_equal(&c->src, src)));
}

static int pool_count(const wisp_admin *a, admin_pool pool, const wisp_connlimit_key *src) {
  int n = 0;
  WISP_LIST_FOREACH(it, &a->conns) n += in_pool(WISP_LIST_ELEM(it, admin_conn, link), pool, src);
  return n;
}

/* The connection of |pool| to close for a newcomer: one already answered
 * (lingering), else the oldest that has not sent a whole request yet. A
 * connection that is being answered is never taken. NULL: none. */
static admin_conn *evictable(wisp_admin *a, admin_pool pool, const wisp_connlimit_key *src) {
  admin_conn *best = NULL;
  WISP_LIST_FOREACH(it, &a->conns) {
    admin_conn *c = WISP_LIST_ELEM(it, admin_conn, link);
    if (c->state == ADMIN_WRITING || !in_pool(c, pool, src)) continue;
    bool better = !best || (c->state == ADMIN_LINGERING && best->state != ADMIN_LINGERING) ||
                  (c->state == best->state && c->since < best->since);
    if (better) best = c;
  }
  return best;
}

static void send_busy(int fd) {
  static const char kBusy[] =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 27\r\nConnection: close\r\n\r\n"
      "too many admin connections\n";
  (void)send(fd, kBusy, sizeof(kBusy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Makes room for a newcomer from |src| if its pool is full. Idle
 * connections must not lock out the probes: when the slots are taken, the
 * one that has waited longest without sending a request goes. Loopback
 * callers may take any slot; others only one of their own kind (at most
 * ADMIN_MAX_REMOTE, and ADMIN_MAX_PER_REMOTE_ADDR from one host), so
 * other pods can neither hold the admin port nor evict local callers. */
static bool make_room(wisp_admin *a, bool remote, const wisp_connlimit_key *src) {
  typedef struct {
    admin_pool pool;
    int max;
    admin_pool victims; /* where room is made when |pool| is full */
  } bound;
  static const bound kRemote[] = {{ADMIN_POOL_HOST, ADMIN_MAX_PER_REMOTE_ADDR, ADMIN_POOL_HOST},
                                  {ADMIN_POOL_REMOTE, ADMIN_MAX_REMOTE, ADMIN_POOL_REMOTE},
                                  {ADMIN_POOL_ALL, ADMIN_MAX_CONNS, ADMIN_POOL_REMOTE}};
  static const bound kLocal[] = {{ADMIN_POOL_ALL, ADMIN_MAX_CONNS, ADMIN_POOL_ALL}};
  const bound *b = remote ? kRemote : kLocal;
  size_t n = remote ? sizeof(kRemote) / sizeof(kRemote[0]) : 1;
  for (size_t i = 0; i < n; i++) {
    if (pool_count(a, b[i].pool, src) < b[i].max) continue;
    admin_conn *victim = evictable(a, b[i].victims, src);
    if (!victim) return false;
    if (victim->state == ADMIN_READING) send_busy(victim->fd);
    a->evicted++;
    conn_free(victim);
  }
  return true;
}

static void on_accept(wisp_acceptor *acc, int fd, const wisp_addr *peer) {
  wisp_admin *a = acc->data;
  char peer_str[64];
  wisp_addr_format(peer, peer_str, sizeof(peer_str));
  bool remote = !wisp_addr_is_loopback(peer);
  wisp_connlimit_key src;
  wisp_connlimit_key_addr(&src, peer, (unsigned)a->px->cfg->ipv6_source_prefix);
  if (!make_room(a, remote, &src)) {
    a->busy++;
    send_busy(fd);
    close(fd);
    return;
  }
  admin_conn *c = wisp_calloc(1, sizeof(*c));
  c->a = a;
  c->fd = fd;
  c->state = ADMIN_READING;
  c->since = ev_now(a->px->loop);
  snprintf(c->peer, sizeof(c->peer), "%s", peer_str);
  c->src = src;
  c->remote = remote;
  ev_io_init(&c->io, on_conn_io, fd, EV_READ);
  c->io.data = c;
  ev_init(&c->timer, on_conn_timeout);
  c->timer.data = c;
  wisp_list_push_front(&a->conns, &c->link);
  a->nconns++;
  conn_watch(c, EV_READ, c->remote ? ADMIN_REMOTE_TIMEOUT : ADMIN_TIMEOUT);
}

static wisp_err admin_listen(wisp_admin **out, wisp_proxy *px, const char *addr, bool metrics_only, char *err,
                             size_t err_len) {
  wisp_addr a;
  if (wisp_addr_parse(&a, addr) != WISP_OK) {
    snprintf(err, err_len, "bad admin address %s", addr);
    return WISP_ERR_USAGE;
  }
  int fd;
  if (wisp_net_listen(&fd, &a, 64) != WISP_OK) {
    snprintf(err, err_len, "cannot listen on %s: %s", addr, strerror(errno));
    return WISP_ERR_IO;
  }
  wisp_admin *ad = wisp_calloc(1, sizeof(*ad));
  wisp_list_init(&ad->conns);
  ad->px = px;
  ad->fd = fd;
  ad->name = wisp_strdup(addr);
  char name[80];
  ad->metrics_only = metrics_only;
  snprintf(name, sizeof(name), "%s listener %s", metrics_only ? "metrics" : "admin", addr);
  wisp_acceptor_init(&ad->acc, px->loop, fd, name, ADMIN_ACCEPTS_PER_EVENT, on_accept, ad);
  wisp_acceptor_start(&ad->acc);
  wisp_json j;
  wisp_json_begin(&j, "listener");
  wisp_json_str(&j, "direction", metrics_only ? "metrics" : "admin");
  wisp_json_str(&j, "listen", addr);
  wisp_json_emit_err(&j);
  *out = ad;
  return WISP_OK;
}

wisp_err wisp_admin_new(wisp_admin **out, wisp_proxy *px, const char *addr, char *err, size_t err_len) {
  return admin_listen(out, px, addr, false, err, err_len);
}

wisp_err wisp_admin_new_metrics(wisp_admin **out, wisp_proxy *px, const char *addr, char *err, size_t err_len) {
  return admin_listen(out, px, addr, true, err, err_len);
}

void wisp_admin_free(wisp_admin *a) {
  if (!a) return;
  WISP_LIST_FOREACH_SAFE(it, &a->conns) conn_free(WISP_LIST_ELEM(it, admin_conn, link));
  metrics_resp_unref(a, a->metrics);
  wisp_acceptor_stop(&a->acc);
  close(a->fd);
  free(a->name);
  free(a);
}
