/* The admin listener's HTTP server: connections, their bounds and
 * timeouts, the routing of each endpoint to its body (rendered by
 * wisp_admin.c and wisp_admin_status.c) and the /metrics cache; see
 * wisp_admin.h. */
#include "proxy/admin/wisp_admin.h"
#include "proxy/admin/wisp_admin_internal.h"
#include "proxy/admin/wisp_admin_status.h"
#include "proxy/wisp_authz.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/wisp_buf.h"
#include "lib/wisp_connlimit.h"
#include "lib/wisp_h1parse.h"
#include "lib/wisp_json.h"
#include "lib/wisp_list.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_net.h"
#include "proxy/control/wisp_intercept.h"

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

/* Response bodies are bounded by what we render (the config, the policy,
 * a fixed set of metrics), never by a client; this is far above it: the
 * largest part is the policy YAML (at most WISP_POLICY_MAX_INPUT, 4 MiB,
 * escaped at most 6 bytes a byte). */
#define ADMIN_BODY_MAX (64u << 20)
/* The status line and headers in front of a body. */
#define ADMIN_HEAD_MAX 1024

typedef enum { ADMIN_READING, ADMIN_WRITING, ADMIN_LINGERING } admin_state;

/* One rendered /metrics response, status line and headers included,
 * shared by the listener's cache and every connection sending it; the
 * last reference frees it. */
struct metrics_resp {
  int refs;
  size_t len;
  uint8_t data[];
};

typedef struct admin_conn {
  wisp_admin *a;
  int fd;
  admin_state state;
  ev_io io;
  ev_timer timer;
  uint8_t in[WISP_ADMIN_REQUEST_MAX];
  size_t in_len;
  size_t lingered;      /* bytes dropped while lingering */
  wisp_buf out;         /* the whole response; what is still to send */
  metrics_resp *shared; /* instead of |out|: a shared /metrics response (a reference) */
  size_t shared_sent;   /* bytes of it sent */
  bool drain_after;     /* POST /drain: start the drain once the 202 is out */
  char peer[64];
  wisp_connlimit_key src; /* the caller, as the data listeners count callers */
  bool remote;            /* not from loopback: health endpoints only */
  ev_tstamp since;        /* accepted */
  wisp_list link;         /* in wisp_admin.conns, newest first */
} admin_conn;

static void metrics_resp_unref(wisp_admin *a, metrics_resp *r) {
  if (!r || --r->refs > 0) return;
  a->renderings--;
  free(r);
}

static void conn_free(admin_conn *c) {
  wisp_admin *a = c->a;
  struct ev_loop *loop = a->loop;
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
  struct ev_loop *loop = c->a->loop;
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
    wisp_dataplane_start_drain(c->a->px);
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
                         status, wisp_h1_reason_phrase(status), ctype, length, allow ? "Allow: " : "",
                         allow ? allow : "", allow ? "\r\n" : "");
}

static void respond(admin_conn *c, int status, const char *ctype, const char *allow, const char *body, size_t body_len,
                    bool head_only) {
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
  wisp_admin_render_metrics(&body, a->src, ready);
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
  ev_tstamp now = ev_now(a->loop);
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

static bool proxy_ready(const wisp_admin_sources *src, char *reason, size_t reason_len) {
  const wisp_proxy *px = src->px;
  const wisp_tls *tls = wisp_dataplane_tls(px);
  return wisp_admin_ready_check(wisp_tls_get0_info(tls), wisp_tls_ready(tls), wisp_dataplane_listening(px),
                                wisp_dataplane_draining(px), (int64_t)time(NULL), reason, reason_len) &&
         /* fail closed: an unprotected pod is not ready */
         wisp_intercept_ok(src->intercept, reason, reason_len) && !wisp_authz_pending(px, reason, reason_len);
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
    snprintf(text, sizeof(text),
             "no such endpoint: %s (try /healthz /ready /status /certs /config /metrics, POST /drain)", req->path);
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
      ready = proxy_ready(c->a->src, text, sizeof(text));
      respond_text(c, ready ? 200 : 503, NULL, text, head);
      break;
    case WISP_ADMIN_EP_CERTS:
      wisp_admin_render_certs(&body, px);
      respond_body(c, "application/json", &body, head);
      break;
    case WISP_ADMIN_EP_CONFIG:
      wisp_admin_render_config(&body, px);
      respond_body(c, "application/json", &body, head);
      break;
    case WISP_ADMIN_EP_METRICS:
      if (head) {
        respond(c, 200, METRICS_CTYPE, NULL, NULL, SIZE_MAX, true); /* without rendering */
      } else {
        respond_metrics(c, proxy_ready(c->a->src, text, sizeof(text)));
      }
      break;
    case WISP_ADMIN_EP_STATUS:
      ready = proxy_ready(c->a->src, text, sizeof(text));
      wisp_admin_render_status(&body, c->a->src, ready, text);
      respond_body(c, "application/json", &body, head);
      break;
    case WISP_ADMIN_EP_DRAIN:
      c->drain_after = !wisp_dataplane_draining(px);
      respond_text(c, 202, NULL, c->drain_after ? "draining" : "already draining", false);
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

/* Which connections a newcomer competes with for slots. */
typedef enum { ADMIN_POOL_ALL, ADMIN_POOL_REMOTE, ADMIN_POOL_HOST } admin_pool;

static bool in_pool(const admin_conn *c, admin_pool pool, const wisp_connlimit_key *src) {
  return pool == ADMIN_POOL_ALL || (c->remote && (pool == ADMIN_POOL_REMOTE || wisp_connlimit_key_equal(&c->src, src)));
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
  wisp_connlimit_key_addr(&src, peer, (unsigned)wisp_dataplane_config(a->px)->ipv6_source_prefix);
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
  c->since = ev_now(a->loop);
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

static wisp_err admin_listen(wisp_admin **out, const wisp_admin_sources *src, const char *addr, bool metrics_only,
                             char *err, size_t err_len) {
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
  ad->src = src;
  ad->px = src->px;
  ad->loop = wisp_dataplane_loop(src->px);
  ad->fd = fd;
  ad->name = wisp_strdup(addr);
  char name[80];
  ad->metrics_only = metrics_only;
  snprintf(name, sizeof(name), "%s listener %s", metrics_only ? "metrics" : "admin", addr);
  wisp_acceptor_init(&ad->acc, ad->loop, fd, name, ADMIN_ACCEPTS_PER_EVENT, on_accept, ad);
  wisp_acceptor_start(&ad->acc);
  wisp_json j;
  wisp_json_begin(&j, "listener");
  wisp_json_str(&j, "direction", metrics_only ? "metrics" : "admin");
  wisp_json_str(&j, "listen", addr);
  wisp_json_emit_err(&j);
  *out = ad;
  return WISP_OK;
}

wisp_err wisp_admin_new(wisp_admin **out, const wisp_admin_sources *src, const char *addr, char *err, size_t err_len) {
  return admin_listen(out, src, addr, false, err, err_len);
}

wisp_err wisp_admin_new_metrics(wisp_admin **out, const wisp_admin_sources *src, const char *addr, char *err,
                                size_t err_len) {
  return admin_listen(out, src, addr, true, err, err_len);
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
