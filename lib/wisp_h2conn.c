#include "lib/wisp_h2conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_net.h"
#include "lib/wisp_slab.h"

/* Input handled per readiness event, so one busy peer cannot starve the
 * others, and a peer flooding frames (rapid reset, CVE-2023-44487) is
 * judged on a bounded slice: what a frame triggers (GOAWAY, a new stream
 * going upstream) happens before the loop reads more from anyone. The loop
 * is level-triggered: what is left is read on the next iteration. */
#define WISP_READ_BUDGET (64 * 1024)
#define WISP_READ_CHUNK (64 * 1024)
/* Passes over the dirty list before yielding to the loop. */
#define WISP_FLUSH_PASSES 64

/* One loop runs on one thread: a read buffer shared by its connections,
 * fed straight to nghttp2, means an idle connection holds no read buffer
 * at all. One per thread: wisp-proxy's --workers run a loop each. */
static _Thread_local uint8_t g_scratch[WISP_READ_CHUNK];

/* ---- bookkeeping ---- */

void wisp_h2conn_mark_dirty(wisp_h2conn *c) {
  if (c->dirty) return;
  c->dirty = true;
  c->dirty_next = c->lp->dirty;
  c->lp->dirty = c;
}

void wisp_h2conn_close(wisp_h2conn *c, const char *reason) {
  if (c->closing) return;
  c->closing = true;
  /* No more I/O on a dying connection, even if teardown has to wait a
   * loop iteration (a long dirty list). */
  ev_io_stop(c->lp->loop, &c->rio);
  ev_io_stop(c->lp->loop, &c->wio);
  if (c->tp.pipe) wisp_pipe_want(c->tp.pipe, false, false);
  if (reason) snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
  wisp_h2conn_mark_dirty(c);
}

void wisp_h2conn_closef(wisp_h2conn *c, const char *fmt, ...) {
  char reason[WISP_TLS_REASON_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  wisp_h2conn_close(c, reason);
}

static void update_io(wisp_h2conn *c) {
  struct ev_loop *loop = c->lp->loop;
  if (c->closing) return;
  bool want_write = c->state == WISP_H2CONN_CONNECTING || c->tp.want_write || wisp_buf_len(&c->out) > 0;
  /* Level-triggered: a session that no longer wants input (terminated,
   * its GOAWAY on the way) must not keep a readable socket watched, or
   * unread bytes wake the loop forever. */
  bool done_reading = c->state == WISP_H2CONN_OPEN && c->h2 && !nghttp2_session_want_read(c->h2);
  if (c->tp.pipe) { /* no fd: the pipe calls back (on_pipe) */
    wisp_pipe_want(c->tp.pipe, c->state != WISP_H2CONN_CONNECTING && !done_reading, want_write);
    return;
  }
  if (want_write) {
    ev_io_start(loop, &c->wio);
  } else {
    ev_io_stop(loop, &c->wio);
  }
  if (c->state == WISP_H2CONN_CONNECTING || done_reading) {
    ev_io_stop(loop, &c->rio);
  } else {
    ev_io_start(loop, &c->rio);
  }
}

static void set_state(wisp_h2conn *c, wisp_h2conn_state state) {
  c->state = state;
  update_io(c);
  if (c->ops->on_state) c->ops->on_state(c);
}

static void teardown(wisp_h2conn *c) {
  struct ev_loop *loop = c->lp->loop;
  wisp_transport tp;
  wisp_transport_move(&tp, &c->tp);
  nghttp2_session *h2 = c->h2;
  c->dirty = true; /* never queued again while it dies */
  ev_io_stop(loop, &c->rio);
  ev_io_stop(loop, &c->wio);
  wisp_buf_cleanup(&c->out);
  c->ops->on_teardown(c); /* frees |c| */
  nghttp2_session_del(h2);
  wisp_transport_close(&tp, false);
  /* What the connection's streams left cached goes back, but for a little
   * for the next ones: an idle proxy holds next to nothing. */
  wisp_slab_trim(WISP_SLAB_IDLE_KEEP);
}

/* ---- reading ---- */

void wisp_h2conn_recv(wisp_h2conn *c) {
  /* Past the budget the socket waits for the next wake-up, but what the
   * transport already holds (read from the socket with the last TLS
   * record) is taken now: no socket event would announce it. */
  for (size_t got = 0; !c->closing;) {
    if (!nghttp2_session_want_read(c->h2)) break; /* e.g. terminated: its GOAWAY goes out, nothing more comes in */
    bool over = got >= WISP_READ_BUDGET;
    if (over && !wisp_transport_has_pending(&c->tp)) break;
    ssize_t n = over ? wisp_transport_read_pending(&c->tp, g_scratch, sizeof(g_scratch))
                     : wisp_transport_read(&c->tp, g_scratch, sizeof(g_scratch));
    if (n == WISP_TRANSPORT_AGAIN) break;
    if (n == WISP_TRANSPORT_ERROR) {
      char why[128];
      wisp_h2conn_closef(c, "read failed: %s", wisp_transport_error_text(&c->tp, errno, why, sizeof(why)));
      return;
    }
    if (n == 0 || n == WISP_TRANSPORT_TRUNCATED) { /* an end without close_notify is an end too */
      c->ops->on_eof(c);
      return;
    }
    got += (size_t)n;
    ssize_t rv = nghttp2_session_mem_recv(c->h2, g_scratch, (size_t)n);
    if (rv < 0) {
      if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
        wisp_h2conn_close(c, "not an HTTP/2 client: bad connection preface");
      } else {
        wisp_h2conn_closef(c, "HTTP/2 error from peer: %s", nghttp2_strerror((int)rv));
      }
      return;
    }
    /* An upstream's socket that was empty at the last read(2) gave all it
     * had: the response goes on now, without the read(2) that would say
     * EAGAIN (one per wake-up, on every response's path). Level-triggered:
     * bytes or a FIN that came since wake the loop at once. Callers keep
     * reading to EAGAIN: a FIN right behind their requests must be seen
     * before the pool sends those upstream (README, issue 9). */
    if (c->upstream && c->tp.drained && !wisp_transport_has_pending(&c->tp)) break;
  }
  wisp_h2conn_mark_dirty(c);
}

/* An upstream whose write failed because the peer reset the connection:
 * what the peer sent before its reset is still readable (Linux queues the
 * error behind the data), e.g. the responses and the GOAWAY of a peer
 * sidecar that answered and then crashed. It is read and processed before
 * the connection fails, so the streams it answered are answered and a
 * request its GOAWAY refused is sent again; the rest fail with the write's
 * reason. Only an upstream: what a caller sent before resetting stays
 * unread (its queued requests never go upstream, README, issue 9). Reads
 * until the reset (or EOF, or an empty socket), at most this many. */
#define WISP_RESET_READS 1024

static void recv_before_reset(wisp_h2conn *c) {
  for (int i = 0; i < WISP_RESET_READS && !c->closing && nghttp2_session_want_read(c->h2); i++) {
    ssize_t n = wisp_transport_read(&c->tp, g_scratch, sizeof(g_scratch));
    if (n <= 0) return; /* the reset itself, EOF, or nothing more */
    if (nghttp2_session_mem_recv(c->h2, g_scratch, (size_t)n) < 0) return;
  }
}

/* ---- TLS handshake ---- */

static void handshake(wisp_h2conn *c) {
  int r = wisp_transport_handshake(&c->tp);
  if (r == WISP_TRANSPORT_AGAIN) {
    update_io(c);
    return;
  }
  if (r != WISP_TRANSPORT_DONE) {
    wisp_h2conn_close(c, c->verify.reason);
    return;
  }
  wisp_transport_peer peer;
  wisp_transport_get_peer(&c->tp, &peer);
  if (c->upstream && !wisp_transport_alpn_is(&peer, "h2")) {
    wisp_h2conn_closef(c, "peer %s did not negotiate HTTP/2 (ALPN h2): is it a wisp sidecar?", c->verify.peer.id);
    return;
  }
  bool anonymous_ok = c->peer_optional && !peer.peer_cert;
  if (!c->verify.peer_ok && !anonymous_ok) {
    wisp_h2conn_close(c, "peer identity was not verified");
    return;
  }
  set_state(c, WISP_H2CONN_OPEN);
  wisp_h2conn_mark_dirty(c);
  /* The client's first bytes may already be in the socket, and either
   * peer's in the transport (read with the handshake's last record). */
  if (!c->upstream || wisp_transport_has_pending(&c->tp)) wisp_h2conn_recv(c);
}

/* ---- writing ---- */

/* Pulls frames from nghttp2 (bounded by WISP_H2CONN_OUT_HIGH) and writes. */
static void flush_out(wisp_h2conn *c) {
  if (c->state != WISP_H2CONN_OPEN) return;
  for (;;) {
    while (wisp_buf_len(&c->out) < WISP_H2CONN_OUT_HIGH) {
      const uint8_t *data;
      ssize_t n = nghttp2_session_mem_send(c->h2, &data);
      if (n < 0) {
        wisp_h2conn_closef(c, "HTTP/2 session error: %s", nghttp2_strerror((int)n));
        return;
      }
      if (n == 0) break;
      if (wisp_buf_append(&c->out, data, (size_t)n, SIZE_MAX / 2) != WISP_OK) abort();
    }
    if (c->closing || wisp_buf_len(&c->out) == 0) break;
    ssize_t w = wisp_transport_write(&c->tp, wisp_buf_rptr(&c->out), wisp_buf_len(&c->out));
    if (w == WISP_TRANSPORT_AGAIN) break;
    if (w <= 0) {
      int err = errno;
      if (c->upstream && (err == ECONNRESET || err == EPIPE)) recv_before_reset(c);
      char why[128];
      wisp_h2conn_closef(c, "write failed: %s", wisp_transport_error_text(&c->tp, err, why, sizeof(why)));
      return;
    }
    wisp_buf_consume(&c->out, (size_t)w);
  }
  update_io(c);
  if (c->ops->on_flushed) c->ops->on_flushed(c);
}

/* The owner's work put off during the flush (after_write) comes after the
 * write: a response's last frame ends its stream inside
 * nghttp2_session_mem_send, before the bytes can be written. Nothing is
 * torn down in between (teardown waits for the dirty list's turn). */
static void flush(wisp_h2conn *c) {
  wisp_h2loop *lp = c->lp;
  lp->writing = true;
  flush_out(c);
  lp->writing = false;
  if (lp->after_write) lp->after_write(lp);
}

void wisp_h2loop_flush(wisp_h2loop *lp) {
  bool idle = false;
  for (int pass = 0; pass < WISP_FLUSH_PASSES && !idle; pass++) {
    /* In-process pipe ends that became ready (HTTP/1 gateways and their
     * HTTP/2 sides, lib/wisp_pipe) run before anything is flushed. */
    wisp_pipe_sched_run(&lp->pipes);
    /* The owner's deferred work (wisp-proxy: requests waiting for an
     * upstream stream) runs next, after everything read so far was
     * parsed, and again after each pass, which may have made more. */
    if (lp->before_flush) lp->before_flush(lp);
    idle = lp->dirty == NULL && !wisp_pipe_sched_busy(&lp->pipes);
    wisp_h2conn *list = lp->dirty;
    lp->dirty = NULL;
    while (list) {
      wisp_h2conn *c = list;
      list = c->dirty_next;
      c->dirty = false;
      c->dirty_next = NULL;
      if (c->closing) {
        teardown(c);
      } else {
        flush(c);
      }
    }
  }
  /* Still busy after many passes: keep the loop spinning instead of
   * sleeping on work that is ready. */
  if (!idle) {
    ev_idle_start(lp->loop, &lp->idle);
  } else {
    ev_idle_stop(lp->loop, &lp->idle);
  }
}

/* ---- events ---- */

static void on_readable(struct ev_loop *loop, ev_io *w, int revents) {
  wisp_h2conn *c = w->data;
  if (c->closing) return;
  if (c->state == WISP_H2CONN_HANDSHAKING) {
    handshake(c);
  } else if (c->state == WISP_H2CONN_OPEN) {
    wisp_h2conn_recv(c);
  }
}

static void on_connected(wisp_h2conn *c) {
  int err = c->tp.pipe ? 0 : wisp_net_connect_result(c->tp.fd); /* a pipe is connected from the start */
  if (err) {
    wisp_h2conn_closef(c, "cannot connect: %s", strerror(err));
    return;
  }
  if (wisp_transport_is_tls(&c->tp)) {
    set_state(c, WISP_H2CONN_HANDSHAKING);
    handshake(c);
    return;
  }
  set_state(c, WISP_H2CONN_OPEN);
  wisp_h2conn_mark_dirty(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents) {
  wisp_h2conn *c = w->data;
  if (c->closing) return;
  if (c->state == WISP_H2CONN_CONNECTING) {
    on_connected(c);
  } else if (c->state == WISP_H2CONN_HANDSHAKING) {
    handshake(c);
  } else {
    if (c->tp.want_write) {
      c->tp.want_write = false;
      wisp_h2conn_recv(c);
    }
    wisp_h2conn_mark_dirty(c);
  }
}

/* A pipe end's readiness (no fd, no ev_io): as the watchers would be. */
static void on_pipe(wisp_pipe_end *e, int events, void *arg) {
  wisp_h2conn *c = arg;
  if (events & WISP_PIPE_READ) on_readable(c->lp->loop, &c->rio, EV_READ);
  /* never freed in between: teardown waits for the dirty list's turn */
  if (events & WISP_PIPE_WRITE) on_writable(c->lp->loop, &c->wio, EV_WRITE);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents) {
  wisp_h2loop *lp = w->data;
  wisp_h2loop_flush(lp);
  if (lp->before_sleep) lp->before_sleep(lp);
}

static void on_idle(struct ev_loop *loop, ev_idle *w, int revents) { /* wakes the loop: prepare does the work */
}

void wisp_h2loop_init(wisp_h2loop *lp, struct ev_loop *loop) {
  lp->loop = loop;
  lp->dirty = NULL;
  wisp_pipe_sched_init(&lp->pipes);
  ev_prepare_init(&lp->prepare, on_prepare);
  lp->prepare.data = lp;
  ev_prepare_start(loop, &lp->prepare);
  ev_idle_init(&lp->idle, on_idle);
}

void wisp_h2loop_cleanup(wisp_h2loop *lp) {
  if (!lp->loop) return;
  wisp_h2loop_flush(lp);
  ev_prepare_stop(lp->loop, &lp->prepare);
  ev_idle_stop(lp->loop, &lp->idle);
  wisp_slab_trim(0);
}

static void *mem_malloc(size_t size, void *ud) { return wisp_slab_alloc(size); }
static void mem_free(void *ptr, void *ud) { wisp_slab_free(ptr); }
static void *mem_calloc(size_t n, size_t size, void *ud) { return wisp_slab_calloc(n, size); }
static void *mem_realloc(void *ptr, size_t size, void *ud) { return wisp_slab_realloc(ptr, size); }

nghttp2_mem *wisp_h2conn_mem(void) {
  /* Not const: nghttp2's API takes a mutable pointer (it only reads it). */
  static nghttp2_mem mem = {NULL, mem_malloc, mem_free, mem_calloc, mem_realloc};
  return &mem;
}

void wisp_h2conn_init(wisp_h2conn *c, wisp_h2loop *lp, const wisp_h2conn_ops *ops, int fd, SSL *ssl, bool upstream,
                      wisp_h2conn_state state) {
  wisp_transport tp;
  wisp_transport_init(&tp, fd);
  if (ssl) wisp_transport_set0_tls(&tp, ssl, !upstream);
  wisp_h2conn_init_transport(c, lp, ops, &tp, upstream, state);
}

void wisp_h2conn_init_transport(wisp_h2conn *c, wisp_h2loop *lp, const wisp_h2conn_ops *ops, wisp_transport *tp,
                                bool upstream, wisp_h2conn_state state) {
  c->lp = lp;
  c->ops = ops;
  wisp_transport_move(&c->tp, tp);
  c->upstream = upstream;
  c->state = state;
  ev_io_init(&c->rio, on_readable, c->tp.fd, EV_READ);
  ev_io_init(&c->wio, on_writable, c->tp.fd, EV_WRITE);
  c->rio.data = c->wio.data = c;
  if (c->tp.pipe) wisp_pipe_set_cb(c->tp.pipe, on_pipe, c);
  update_io(c);
}

void wisp_h2conn_set0_session(wisp_h2conn *c, nghttp2_session *session) { c->h2 = session; }
