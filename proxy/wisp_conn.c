#include "proxy/wisp_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "proxy/wisp_h2.h"
#include "proxy/wisp_pool.h"
#include "proxy/wisp_stream.h"

/* Reads per readiness event, so one busy peer cannot starve the others. */
#define WISP_READS_PER_EVENT 16
#define WISP_READ_CHUNK (64 * 1024)
/* Passes over the dirty list before yielding to the loop. */
#define WISP_FLUSH_PASSES 64

enum { IO_AGAIN = -1, IO_ERROR = -2 };

typedef struct {
  ssize_t (*read)(wisp_conn *c, uint8_t *buf, size_t len);
  ssize_t (*write)(wisp_conn *c, const uint8_t *buf, size_t len);
} wisp_transport;

static uint8_t g_scratch[WISP_READ_CHUNK];

/* ---- transports ---- */

static ssize_t plain_read(wisp_conn *c, uint8_t *buf, size_t len) {
  ssize_t n = read(c->fd, buf, len);
  if (n >= 0) return n;
  return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? IO_AGAIN : IO_ERROR;
}

static ssize_t plain_write(wisp_conn *c, const uint8_t *buf, size_t len) {
  ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
  if (n >= 0) return n;
  return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? IO_AGAIN : IO_ERROR;
}

static ssize_t tls_result(wisp_conn *c, int r) {
  if (r > 0) return r;
  switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
      return IO_AGAIN;
    case SSL_ERROR_WANT_WRITE:
      c->tls_want_write = true;
      return IO_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      return r == 0 ? 0 : IO_ERROR;
    default:
      ERR_clear_error();
      return IO_ERROR;
  }
}

static ssize_t tls_read(wisp_conn *c, uint8_t *buf, size_t len) {
  return tls_result(c, SSL_read(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len)));
}

static ssize_t tls_write(wisp_conn *c, const uint8_t *buf, size_t len) {
  return tls_result(c, SSL_write(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len)));
}

static const wisp_transport kPlain = {plain_read, plain_write};
static const wisp_transport kTls = {tls_read, tls_write};

static const wisp_transport *transport(const wisp_conn *c) { return c->ssl ? &kTls : &kPlain; }

/* ---- bookkeeping ---- */

void wisp_conn_mark_dirty(wisp_conn *c) {
  if (c->dirty) return;
  c->dirty = true;
  c->dirty_next = c->px->dirty;
  c->px->dirty = c;
}

void wisp_conn_close(wisp_conn *c, const char *reason) {
  if (c->closing) return;
  c->closing = true;
  if (reason) snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
  wisp_conn_mark_dirty(c);
}

static void conn_update_io(wisp_conn *c) {
  struct ev_loop *loop = c->px->loop;
  bool want_write = c->state == WISP_CONN_CONNECTING || c->tls_want_write || wisp_buf_len(&c->out) > 0;
  if (want_write) {
    ev_io_start(loop, &c->wio);
  } else {
    ev_io_stop(loop, &c->wio);
  }
  if (c->state == WISP_CONN_CONNECTING) {
    ev_io_stop(loop, &c->rio);
  } else {
    ev_io_start(loop, &c->rio);
  }
}

void wisp_conn_rearm(wisp_conn *c) {
  const wisp_config *cfg = c->px->cfg;
  double t;
  if (c->closing) return;
  if (c->state == WISP_CONN_CONNECTING) {
    t = cfg->connect_timeout;
  } else if (c->state == WISP_CONN_HANDSHAKING || (!c->upstream && !c->got_preface)) {
    t = cfg->handshake_timeout;
  } else if (c->nstreams == 0) {
    t = cfg->idle_timeout;
  } else {
    ev_timer_stop(c->px->loop, &c->timer);
    return;
  }
  ev_timer_stop(c->px->loop, &c->timer);
  ev_timer_set(&c->timer, t, 0);
  ev_timer_start(c->px->loop, &c->timer);
}

void wisp_conn_stream_added(wisp_conn *c) {
  if (c->nstreams++ == 0) wisp_conn_rearm(c);
}

void wisp_conn_stream_removed(wisp_conn *c) {
  if (--c->nstreams == 0) {
    wisp_conn_rearm(c);
    if (c->goaway || c->draining) wisp_conn_mark_dirty(c);
  }
}

int wisp_conn_fail_status(const wisp_conn *c) {
  return c->state == WISP_CONN_CONNECTING ? 503 : 502;
}

void wisp_conn_drain(wisp_conn *c) {
  if (c->draining || c->closing) return;
  if (c->state != WISP_CONN_OPEN) {
    wisp_conn_close(c, NULL);
    return;
  }
  c->draining = true;
  nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
                        NGHTTP2_NO_ERROR, NULL, 0);
  wisp_conn_mark_dirty(c);
}

/* ---- logging at the edge ---- */

static void log_conn_event(const wisp_conn *c, const char *event) {
  wisp_json j;
  wisp_json_begin(&j, "conn");
  wisp_json_str(&j, "event", event);
  wisp_json_str(&j, "direction", c->dir == WISP_DIR_INBOUND ? "inbound" : "outbound");
  wisp_json_int(&j, "conn", (int64_t)c->id);
  wisp_json_str(&j, c->upstream ? "upstream" : "peer_addr", c->upstream ? c->target->name : c->peer_addr);
  if (c->verify.peer_ok) wisp_json_str(&j, "peer_id", c->verify.peer.id);
  wisp_json_str(&j, "reason", c->close_reason);
  wisp_json_emit(&j);
}

/* ---- teardown ---- */

static void conn_unlink(wisp_conn *c) {
  if (c->prev) {
    c->prev->next = c->next;
  } else {
    c->px->conns = c->next;
  }
  if (c->next) c->next->prev = c->prev;
}

static void conn_teardown(wisp_conn *c) {
  wisp_proxy *px = c->px;
  bool refused = !c->upstream && !c->got_preface;
  c->dirty = true; /* never queued again while it dies */
  if (c->close_reason[0]) {
    if (refused) px->stats.conns_refused++;
    if (c->upstream) px->stats.upstream_failures++;
    log_conn_event(c, refused ? "refused" : c->upstream ? "upstream_failed" : "closed");
  }
  ev_io_stop(px->loop, &c->rio);
  ev_io_stop(px->loop, &c->wio);
  ev_timer_stop(px->loop, &c->timer);
  wisp_stream_conn_gone(c);
  if (c->upstream) wisp_pool_remove(c->target, c);
  conn_unlink(c);
  nghttp2_session_del(c->h2);
  if (c->ssl) SSL_free(c->ssl);
  close(c->fd);
  wisp_buf_cleanup(&c->out);
  free(c);
}

/* ---- reading ---- */

static void conn_fail(wisp_conn *c, const char *fmt, const char *arg) {
  char reason[WISP_TLS_REASON_MAX];
  snprintf(reason, sizeof(reason), fmt, arg);
  wisp_conn_close(c, reason);
}

static void conn_recv(wisp_conn *c) {
  const wisp_transport *tp = transport(c);
  for (int i = 0; i < WISP_READS_PER_EVENT && !c->closing; i++) {
    ssize_t n = tp->read(c, g_scratch, sizeof(g_scratch));
    if (n == IO_AGAIN) break;
    if (n == IO_ERROR) {
      conn_fail(c, "read failed: %s", strerror(errno));
      return;
    }
    if (n == 0) {
      if (!c->upstream && !c->got_preface) {
        conn_fail(c, "peer closed the connection before sending an HTTP/2 preface%s", "");
      } else if (c->nstreams == 0) {
        wisp_conn_close(c, NULL); /* an orderly close between streams */
      } else {
        conn_fail(c, "%s closed the connection with streams open", c->upstream ? "upstream" : "peer");
      }
      return;
    }
    ssize_t rv = nghttp2_session_mem_recv(c->h2, g_scratch, (size_t)n);
    if (rv < 0) {
      if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
        conn_fail(c, "not an HTTP/2 client: bad connection preface%s", "");
      } else {
        conn_fail(c, "HTTP/2 error from peer: %s", nghttp2_strerror((int)rv));
      }
      return;
    }
  }
  wisp_conn_mark_dirty(c);
}

/* ---- TLS handshake ---- */

static void conn_handshake(wisp_conn *c) {
  int r = SSL_do_handshake(c->ssl);
  if (r != 1) {
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      c->tls_want_write = e == SSL_ERROR_WANT_WRITE;
      conn_update_io(c);
      return;
    }
    wisp_tls_describe_failure(&c->verify, c->ssl, r);
    wisp_conn_close(c, c->verify.reason);
    return;
  }
  c->tls_want_write = false;
  const uint8_t *alpn = NULL;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
  if (c->upstream && !(alpn_len == 2 && memcmp(alpn, "h2", 2) == 0)) {
    conn_fail(c, "peer %s did not negotiate HTTP/2 (ALPN h2): is it a wisp sidecar?", c->verify.peer.id);
    return;
  }
  if (!c->verify.peer_ok) {
    conn_fail(c, "peer identity was not verified%s", "");
    return;
  }
  c->state = WISP_CONN_OPEN;
  wisp_conn_rearm(c);
  conn_update_io(c);
  wisp_conn_mark_dirty(c);
  if (!c->upstream) conn_recv(c); /* the client's preface may already be buffered */
}

/* ---- writing ---- */

/* Pulls frames from nghttp2 (bounded by WISP_OUT_HIGH) and writes them. */
static void conn_flush(wisp_conn *c) {
  if (c->state != WISP_CONN_OPEN) return;
  const wisp_transport *tp = transport(c);
  for (;;) {
    while (wisp_buf_len(&c->out) < WISP_OUT_HIGH) {
      const uint8_t *data;
      ssize_t n = nghttp2_session_mem_send(c->h2, &data);
      if (n < 0) {
        conn_fail(c, "HTTP/2 session error: %s", nghttp2_strerror((int)n));
        return;
      }
      if (n == 0) break;
      if (wisp_buf_append(&c->out, data, (size_t)n, SIZE_MAX / 2) != WISP_OK) abort();
    }
    if (c->closing || wisp_buf_len(&c->out) == 0) break;
    ssize_t w = tp->write(c, wisp_buf_rptr(&c->out), wisp_buf_len(&c->out));
    if (w == IO_AGAIN) break;
    if (w <= 0) {
      conn_fail(c, "write failed: %s", strerror(errno));
      return;
    }
    wisp_buf_consume(&c->out, (size_t)w);
  }
  conn_update_io(c);
  bool idle = wisp_buf_len(&c->out) == 0 && c->nstreams == 0;
  if (idle) wisp_buf_cleanup(&c->out); /* an idle connection holds no buffer */
  bool finished = !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2);
  if (idle && (finished || c->goaway || c->draining)) wisp_conn_close(c, NULL);
}

void wisp_conn_flush_all(wisp_proxy *px) {
  for (int pass = 0; px->dirty && pass < WISP_FLUSH_PASSES; pass++) {
    wisp_conn *list = px->dirty;
    px->dirty = NULL;
    while (list) {
      wisp_conn *c = list;
      list = c->dirty_next;
      c->dirty = false;
      c->dirty_next = NULL;
      if (c->closing) {
        conn_teardown(c);
      } else {
        conn_flush(c);
      }
    }
  }
  /* Still dirty after many passes: keep the loop spinning instead of
   * sleeping on work that is ready. */
  if (px->dirty) {
    ev_idle_start(px->loop, &px->idle);
  } else {
    ev_idle_stop(px->loop, &px->idle);
  }
}

/* ---- events ---- */

static void on_readable(struct ev_loop *loop, ev_io *w, int revents) {
  wisp_conn *c = w->data;
  if (c->state == WISP_CONN_HANDSHAKING) {
    conn_handshake(c);
  } else if (c->state == WISP_CONN_OPEN) {
    conn_recv(c);
  }
}

static void on_connected(wisp_conn *c) {
  int err = wisp_net_connect_result(c->fd);
  if (err) {
    char reason[WISP_TLS_REASON_MAX];
    snprintf(reason, sizeof(reason), "cannot connect to %s: %s", c->target->name, strerror(err));
    wisp_conn_close(c, reason);
    return;
  }
  if (c->ssl) {
    c->state = WISP_CONN_HANDSHAKING;
    wisp_conn_rearm(c);
    conn_update_io(c);
    conn_handshake(c);
    return;
  }
  c->state = WISP_CONN_OPEN;
  wisp_conn_rearm(c);
  conn_update_io(c);
  wisp_conn_mark_dirty(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents) {
  wisp_conn *c = w->data;
  if (c->state == WISP_CONN_CONNECTING) {
    on_connected(c);
  } else if (c->state == WISP_CONN_HANDSHAKING) {
    conn_handshake(c);
  } else {
    if (c->tls_want_write) {
      c->tls_want_write = false;
      conn_recv(c);
    }
    wisp_conn_mark_dirty(c);
  }
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_conn *c = w->data;
  const wisp_config *cfg = c->px->cfg;
  char secs[32];
  if (c->state == WISP_CONN_CONNECTING) {
    char reason[WISP_TLS_REASON_MAX];
    snprintf(reason, sizeof(reason), "connect to %s timed out after %gs", c->target->name, cfg->connect_timeout);
    wisp_conn_close(c, reason);
  } else if (c->state == WISP_CONN_HANDSHAKING) {
    snprintf(secs, sizeof(secs), "%g", cfg->handshake_timeout);
    conn_fail(c, "TLS handshake not finished within %ss", secs);
  } else if (!c->upstream && !c->got_preface) {
    snprintf(secs, sizeof(secs), "%g", cfg->handshake_timeout);
    conn_fail(c, "no HTTP/2 preface within %ss", secs);
  } else if (c->nstreams == 0) {
    wisp_conn_drain(c); /* idle */
  }
}

static wisp_conn *conn_new(wisp_proxy *px, int fd, bool upstream, wisp_direction dir) {
  wisp_conn *c = wisp_calloc(1, sizeof(*c));
  c->px = px;
  c->id = ++px->next_conn_id;
  c->fd = fd;
  c->upstream = upstream;
  c->dir = dir;
  c->started = ev_now(px->loop);
  ev_io_init(&c->rio, on_readable, fd, EV_READ);
  ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
  ev_init(&c->timer, on_timeout);
  c->rio.data = c->wio.data = c->timer.data = c;
  c->next = px->conns;
  if (px->conns) px->conns->prev = c;
  px->conns = c;
  c->h2 = wisp_h2_session_new(c);
  return c;
}

void wisp_conn_accept(wisp_listener *l, int fd, const wisp_addr *peer) {
  wisp_proxy *px = l->px;
  wisp_conn *c = conn_new(px, fd, false, l->dir);
  c->listener = l;
  wisp_addr_format(peer, c->peer_addr, sizeof(c->peer_addr));
  px->stats.conns_accepted++;
  if (l->dir == WISP_DIR_INBOUND) {
    c->ssl = wisp_tls_new_ssl(px->tls, true, &c->verify);
    if (!c->ssl) {
      wisp_conn_close(c, "no certificate loaded yet");
      return;
    }
    SSL_set_fd(c->ssl, fd);
    SSL_set_accept_state(c->ssl);
    c->state = WISP_CONN_HANDSHAKING;
  } else {
    c->state = WISP_CONN_OPEN;
  }
  wisp_conn_rearm(c);
  conn_update_io(c);
}

wisp_conn *wisp_conn_connect(wisp_target *t, char *err, size_t err_len) {
  wisp_proxy *px = t->px;
  int fd;
  if (wisp_net_connect(&fd, &t->addr) != WISP_OK) {
    snprintf(err, err_len, "cannot connect to %s: %s", t->name, strerror(errno));
    return NULL;
  }
  wisp_conn *c = conn_new(px, fd, true, t->tls ? WISP_DIR_OUTBOUND : WISP_DIR_INBOUND);
  c->target = t;
  snprintf(c->peer_addr, sizeof(c->peer_addr), "%s", t->name);
  c->state = WISP_CONN_CONNECTING;
  if (t->tls) {
    c->verify.expect_id = t->expect_id;
    c->ssl = wisp_tls_new_ssl(px->tls, false, &c->verify);
    if (!c->ssl) {
      snprintf(err, err_len, "no certificate loaded yet");
      wisp_conn_close(c, NULL);
      return NULL;
    }
    SSL_set_fd(c->ssl, fd);
    SSL_set_connect_state(c->ssl);
  }
  px->stats.upstream_connects++;
  wisp_conn_rearm(c);
  conn_update_io(c);
  return c;
}
