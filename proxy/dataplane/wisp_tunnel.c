#include "proxy/dataplane/wisp_tunnel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_h1parse.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "proxy/wisp_authz.h"
#include "proxy/dataplane/wisp_events.h"
#include "proxy/dataplane/wisp_h1.h"
#include "proxy/dataplane/wisp_metrics.h"
#include "proxy/dataplane/wisp_proxy.h"

#define TUN_BUF_MAX (64 * 1024) /* bytes buffered toward one end */
#define TUN_READ_CHUNK (16 * 1024)
/* Reads of a refused caller's bytes per event (they are dropped): a loop
 * turn's bound, as for any other caller. */
#define TUN_REFUSE_READS 4
/* Once a refused caller is answered, how long it has to close and how many
 * of its bytes are read and dropped meanwhile. It had --handshake-timeout
 * (10 s) and no cap: a denied caller keeping its end open held its slot of
 * --max-connections-per-source that long, and 100 denied tunnels a second
 * kept every slot of a client sidecar's address full (other callers' tunnels
 * got 503). A second is ample for the answer to be read before the close. */
#define TUN_REFUSE_LINGER 1.0
#define TUN_REFUSE_DRAIN_MAX (64 * 1024)

enum { APP = 0, PEER = 1 }; /* the plaintext end and the mTLS end */

typedef struct {
  wisp_transport tp; /* owned: plain toward the app, TLS toward the peer */
  ev_io rio, wio;
  bool eof;     /* this end sent FIN / close_notify */
  bool shut;    /* we shut our writing toward it */
  wisp_buf out; /* bytes waiting to be written to this end */
} tun_end;

typedef struct tunnel {
  wisp_proxy *px;
  uint64_t id;
  wisp_direction dir;
  wisp_list link; /* in px->tunnels */
  tun_end e[2];
  bool connecting, handshaking, closed, logged;
  wisp_tls_verify verify;
  char *expect_id; /* owned: verify.expect_id points here (the map may change meanwhile) */
  ev_timer timer;
  ev_timer idle;    /* --tunnel-idle-timeout, while relaying (see idle_check) */
  ev_tstamp active; /* when a byte last moved either way */
  char peer_addr[64];
  char upstream[64];
  uint64_t bytes[2]; /* read from each end */
  ev_tstamp started;
  wisp_connlimit_slot slot; /* the caller's place in its listener's limits */
  wisp_metrics_series *ms;  /* borrowed; set once the peer is known (counted opened) */
  bool http_caller;         /* outbound: the app end is an HTTP/1 caller that asked to upgrade (wisp_h1) */
  /* refused before relaying (see refuse()) */
  bool answered, reset_unanswered;
  int ref_end; /* the caller's end */
  int ref_status;
  char ref_why[256];
  wisp_buf sniff; /* inbound: the caller's first bytes, to tell an HTTP/1 request line */
} tunnel;

static void tun_close(tunnel *t, const char *reason, bool reset);
static void setup_failed(tunnel *t, const char *why);

static void log_tunnel(const tunnel *t, const char *event, const char *reason, const wisp_policy_decision *d) {
  wisp_json j;
  wisp_json_begin(&j, "conn");
  wisp_json_str(&j, "event", event);
  wisp_json_str(&j, "protocol", "l4");
  wisp_json_str(&j, "direction", t->dir == WISP_DIR_INBOUND ? "inbound" : "outbound");
  wisp_json_int(&j, "conn", (int64_t)t->id);
  wisp_json_str(&j, "peer_addr", t->peer_addr);
  if (t->verify.peer_ok) wisp_json_str(&j, "peer_id", t->verify.peer.id);
  wisp_json_str(&j, "upstream", t->upstream);
  wisp_json_int(&j, "bytes_in", (int64_t)t->bytes[t->dir == WISP_DIR_INBOUND ? PEER : APP]);
  wisp_json_int(&j, "bytes_out", (int64_t)t->bytes[t->dir == WISP_DIR_INBOUND ? APP : PEER]);
  wisp_json_double(&j, "duration_ms", (ev_time() - t->started) * 1000.0);
  if (d) {
    wisp_json_str(&j, "decision", d->allow ? "allow" : "deny");
    if (d->policy) wisp_json_str(&j, "policy", d->policy);
    wisp_json_str(&j, "policy_reason", d->reason);
  }
  if (t->answered) wisp_json_int(&j, "status", t->ref_status);
  wisp_json_str(&j, "reason", reason);
  wisp_json_emit(&j);
}

/* ---- one end's I/O (lib/wisp_transport): >0 bytes, 0 EOF,
 * WISP_TRANSPORT_AGAIN, WISP_TRANSPORT_ERROR ---- */

static ssize_t end_read(tun_end *e, uint8_t *buf, size_t len) {
  ssize_t n = wisp_transport_read(&e->tp, buf, len);
  /* close_notify is the peer's FIN; a TLS end without it is a reset */
  return n == WISP_TRANSPORT_TRUNCATED ? WISP_TRANSPORT_ERROR : n;
}

static void end_shut(tun_end *e) {
  if (e->shut) return;
  e->shut = true;
  wisp_transport_shutdown(&e->tp); /* FIN, or close_notify: carried as FIN on the far side */
}

/* ---- relaying ---- */

static void update(tunnel *t) {
  struct ev_loop *loop = t->px->loop;
  for (int i = 0; i < 2; i++) {
    tun_end *e = &t->e[i], *other = &t->e[1 - i];
    /* Read from an end only while the other end's buffer has room. */
    if (!e->eof && wisp_buf_len(&other->out) < TUN_BUF_MAX) {
      ev_io_start(loop, &e->rio);
    } else {
      ev_io_stop(loop, &e->rio);
    }
    if (wisp_buf_len(&e->out) > 0) {
      ev_io_start(loop, &e->wio);
    } else {
      ev_io_stop(loop, &e->wio);
    }
  }
}

static void check_done(tunnel *t) {
  for (int i = 0; i < 2; i++) {
    /* The other end finished and everything it sent is delivered. */
    if (t->e[1 - i].eof && wisp_buf_len(&t->e[i].out) == 0) end_shut(&t->e[i]);
  }
  if (t->e[0].eof && t->e[1].eof && t->e[0].shut && t->e[1].shut) tun_close(t, NULL, false);
}

static void flush_end(tunnel *t, int i) {
  tun_end *e = &t->e[i];
  while (wisp_buf_len(&e->out) > 0) {
    ssize_t n = wisp_transport_write(&e->tp, wisp_buf_rptr(&e->out), wisp_buf_len(&e->out));
    if (n == WISP_TRANSPORT_AGAIN) break;
    if (n < 0) {
      tun_close(t, i == APP ? "write to the app failed" : "write to the peer failed", true);
      return;
    }
    wisp_buf_consume(&e->out, (size_t)n);
    t->active = ev_now(t->px->loop);
  }
  check_done(t);
  if (!t->closed) update(t);
}

/* Bytes of |e| already inside its TLS object (decrypted or a whole record
 * read from the socket): no socket event will announce them. */
static bool end_has_buffered(const tun_end *e) { return wisp_transport_has_pending(&e->tp); }

/* Reads from end |from| while the other end's buffer has room, writing as
 * it goes. A TLS record read only in part (the buffer filled) leaves the
 * rest inside the SSL, and the socket may have nothing more to wake us:
 * once writing made room, read again instead of waiting for the socket. */
static void pump(tunnel *t, int from) {
  tun_end *e = &t->e[from], *to = &t->e[1 - from];
  uint8_t buf[TUN_READ_CHUNK];
  for (;;) {
    bool would_block = false;
    while (!e->eof && wisp_buf_len(&to->out) < TUN_BUF_MAX) {
      size_t room = TUN_BUF_MAX - wisp_buf_len(&to->out);
      ssize_t n = end_read(e, buf, room < sizeof(buf) ? room : sizeof(buf));
      if (n == WISP_TRANSPORT_AGAIN) {
        would_block = true;
        break;
      }
      if (n < 0) {
        tun_close(t, from == APP ? "the app reset the connection" : "the peer reset the connection", true);
        return;
      }
      if (n == 0) {
        e->eof = true;
        break;
      }
      t->bytes[from] += (uint64_t)n;
      t->active = ev_now(t->px->loop);
      /* received: from the caller (the peer end inbound, the app outbound) */
      bool from_caller = (from == PEER) == (t->dir == WISP_DIR_INBOUND);
      wisp_metrics_tcp_bytes(t->ms, from_caller ? (uint64_t)n : 0, from_caller ? 0 : (uint64_t)n);
      if (wisp_buf_append(&to->out, buf, (size_t)n, TUN_BUF_MAX) != WISP_OK) abort(); /* room was checked */
    }
    size_t before = wisp_buf_len(&to->out);
    flush_end(t, 1 - from);
    /* Stop when the socket will tell us (it would block), at the end,
     * or when writing made no room (its write watcher calls back). */
    if (t->closed || would_block || e->eof || !end_has_buffered(e) || wisp_buf_len(&to->out) >= before) return;
  }
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents) {
  tunnel *t = w->data;
  int i = w == &t->e[APP].rio ? APP : PEER;
  pump(t, i);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents);

/* ---- --tunnel-idle-timeout ----
 * A relaying tunnel had no timer: a caller that opened one (an HTTP/1
 * Upgrade or CONNECT, a raw TCP flow in transparent mode) and went silent
 * held two descriptors and its --max-connections-per-source slot for good.
 * As Envoy's tcp_proxy idle_timeout, a tunnel on which no byte moved either
 * way (read from or written to either end) for the timeout is closed, both
 * ends reset: a cut, not an end of the stream, for whoever is behind them.
 * One timer per tunnel, not restarted per byte (libev's advice): a byte
 * only notes the time, and an expiry before the timeout has passed since
 * re-arms for what is left. */
static void on_idle(struct ev_loop *loop, ev_timer *w, int revents) {
  tunnel *t = w->data;
  double timeout = t->px->cfg->tunnel_idle_timeout;
  ev_tstamp left = t->active + timeout - ev_now(loop);
  if (left > 0) {
    ev_timer_set(w, left, 0);
    ev_timer_start(loop, w);
    return;
  }
  char why[128];
  snprintf(why, sizeof(why), "tunnel idle: no byte moved either way for --tunnel-idle-timeout (%gs)", timeout);
  t->px->stats.tunnel_idle_timeouts++;
  tun_close(t, why, true);
}

static void idle_start(tunnel *t) {
  double timeout = t->px->cfg->tunnel_idle_timeout;
  if (timeout <= 0) return;
  t->active = ev_now(t->px->loop);
  ev_timer_init(&t->idle, on_idle, timeout, 0);
  t->idle.data = t;
  ev_timer_start(t->px->loop, &t->idle);
}

static void start_relay(tunnel *t) {
  t->connecting = t->handshaking = false;
  wisp_proxy_clear_upfail(t->px, t->upstream);
  ev_timer_stop(t->px->loop, &t->timer);
  idle_start(t);
  for (int i = 0; i < 2; i++) {
    ev_io_init(&t->e[i].rio, on_read, t->e[i].tp.fd, EV_READ);
    ev_io_init(&t->e[i].wio, on_write, t->e[i].tp.fd, EV_WRITE);
    t->e[i].rio.data = t->e[i].wio.data = t;
  }
  update(t);
  pump(t, APP); /* bytes may already be waiting (or buffered inside TLS) */
  if (!t->closed) pump(t, PEER);
}

/* Outbound: the TLS handshake with the peer sidecar, then relay. */
static void handshake(tunnel *t) {
  tun_end *p = &t->e[PEER];
  int r = wisp_transport_handshake(&p->tp);
  if (r != WISP_TRANSPORT_DONE) {
    if (r == WISP_TRANSPORT_AGAIN) {
      ev_io_stop(t->px->loop, &p->rio);
      ev_io_stop(t->px->loop, &p->wio);
      ev_io_start(t->px->loop, p->tp.want_write ? &p->wio : &p->rio);
      return;
    }
    /* the transport wrote why into t->verify (the SSL's) */
    wisp_events_upstream_failed(t->px->events, wisp_tls_failure_name(t->verify.failure), t->upstream, t->expect_id,
                                t->verify.peer.id);
    setup_failed(t, t->verify.reason);
    return;
  }
  if (!t->verify.peer_ok) {
    setup_failed(t, "peer identity was not verified");
    return;
  }
  ev_io_stop(t->px->loop, &p->rio);
  ev_io_stop(t->px->loop, &p->wio);
  t->ms = wisp_metrics_tcp_open(t->px->metrics, false, t->verify.peer.id, false);
  start_relay(t);
}

static void on_setup_io(struct ev_loop *loop, ev_io *w, int revents) {
  tunnel *t = w->data;
  tun_end *p = &t->e[t->dir == WISP_DIR_OUTBOUND ? PEER : APP];
  if (t->connecting) {
    int err = wisp_net_connect_result(p->tp.fd);
    if (err) {
      char why[160];
      snprintf(why, sizeof(why), "cannot connect to %s: %s", t->upstream, strerror(err));
      setup_failed(t, why);
      return;
    }
    t->connecting = false;
    if (t->dir == WISP_DIR_OUTBOUND) {
      t->handshaking = true;
      handshake(t);
    } else {
      ev_io_stop(loop, &p->wio);
      start_relay(t);
    }
    return;
  }
  if (t->handshaking) handshake(t);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents) {
  tunnel *t = w->data;
  if (t->connecting || t->handshaking) {
    on_setup_io(loop, w, revents);
    return;
  }
  int i = w == &t->e[APP].wio ? APP : PEER;
  flush_end(t, i);
  /* Room again toward |i|: what the other end holds inside its TLS object
   * moves now, as no read event will come for it. */
  if (!t->closed && !t->e[1 - i].eof && end_has_buffered(&t->e[1 - i])) pump(t, 1 - i);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  tunnel *t = w->data;
  setup_failed(t, t->connecting ? "connect timed out" : "TLS handshake timed out");
}

static void tun_unlink_free(tunnel *t) {
  wisp_list_unlink(&t->link);
  free(t->expect_id);
  free(t);
}

static void on_free(struct ev_loop *loop, ev_timer *w, int revents) { tun_unlink_free(w->data); }

/* Closes both ends now; the memory goes on the next loop iteration, since
 * callers up the stack still look at |t->closed|. */
/* For GET /status: the upstream (a peer sidecar outbound, the app inbound)
 * could not be reached, or came up. */
static void note_upfail(const tunnel *t, const char *reason) {
  wisp_proxy_note_upfail(t->px, t->upstream, t->expect_id, t->dir == WISP_DIR_INBOUND, reason);
}

static void tun_close(tunnel *t, const char *reason, bool reset) {
  if (t->closed) return;
  t->closed = true;
  if (reason && (t->connecting || (t->handshaking && t->dir == WISP_DIR_OUTBOUND))) note_upfail(t, reason);
  if (!t->logged) log_tunnel(t, reason ? "l4_failed" : "l4", reason, NULL);
  ev_timer_stop(t->px->loop, &t->timer);
  ev_timer_stop(t->px->loop, &t->idle);
  for (int i = 0; i < 2; i++) {
    tun_end *e = &t->e[i];
    ev_io_stop(t->px->loop, &e->rio);
    ev_io_stop(t->px->loop, &e->wio);
    wisp_transport_close(&e->tp, reset); /* a reset is carried: RST, not FIN */
    wisp_buf_cleanup(&e->out);
  }
  wisp_buf_cleanup(&t->sniff);
  wisp_connlimit_release(&t->slot);
  wisp_metrics_tcp_close(t->ms);
  ev_init(&t->timer, on_free);
  ev_timer_set(&t->timer, 0, 0);
  ev_timer_start(t->px->loop, &t->timer);
}

/* ---- refusing a caller with an answer ----
 * A tunnel that cannot relay (policy, an app or peer that cannot be
 * reached) used to close its caller's end at once, so an HTTP/1 caller that
 * had asked to upgrade (or CONNECT) saw a bare close. It gets a response
 * saying why instead. Outbound the caller is known to be one
 * (t->http_caller); inbound the bytes could be any protocol, so the tunnel
 * reads the caller's first line (up to WISP_H1_LINE_MAX bytes) and answers
 * only an HTTP/1 request line; any other connection closes as before. After
 * the answer come a close_notify (FIN), and what the caller still sends is
 * read and dropped until it closes: closing with unread bytes would reset
 * the connection, which can destroy the answer before the caller reads it.
 * The first line must come within --handshake-timeout; after the answer
 * the caller has TUN_REFUSE_LINGER and TUN_REFUSE_DRAIN_MAX bytes. */
static void refuse_step(tunnel *t);

static void on_refuse_io(struct ev_loop *loop, ev_io *w, int revents) { refuse_step(w->data); }

static void on_refuse_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  tunnel *t = w->data;
  tun_close(t, t->ref_why, t->reset_unanswered && !t->answered);
}

static void refuse_answer(tunnel *t) {
  wisp_h1_put_error(&t->e[t->ref_end].out, t->ref_status, t->ref_why);
  t->answered = true;
  wisp_buf_cleanup(&t->sniff);
  double linger = t->px->cfg->handshake_timeout;
  ev_timer_stop(t->px->loop, &t->timer);
  ev_timer_set(&t->timer, linger < TUN_REFUSE_LINGER ? linger : TUN_REFUSE_LINGER, 0);
  ev_timer_start(t->px->loop, &t->timer);
}

/* Whether the first bytes of the caller still may be an HTTP/1 request
 * line: 1 yes, 0 no, -1 not known yet. A method is a token: a first word
 * of other bytes (a TLS ClientHello) is told at once, not after 8 KiB. */
static int sniff_request_line(const wisp_buf *b) {
  const uint8_t *d = wisp_buf_rptr(b);
  size_t len = wisp_buf_len(b);
  for (size_t i = 0; i < len && d[i] != ' '; i++) {
    if (d[i] <= ' ' || d[i] >= 0x7f) return 0;
  }
  return wisp_h1_request_line(d, len);
}

/* Reads what the caller sent (sniffing it, or dropping it once answered)
 * and writes the answer. */
static void refuse_step(tunnel *t) {
  struct ev_loop *loop = t->px->loop;
  tun_end *e = &t->e[t->ref_end];
  uint8_t buf[TUN_READ_CHUNK];
  for (int k = 0; k < TUN_REFUSE_READS && !e->eof; k++) {
    ssize_t n = end_read(e, buf, sizeof(buf));
    if (n == WISP_TRANSPORT_AGAIN) break;
    if (n <= 0) {
      e->eof = true; /* it closed (or reset): nothing more to read */
      break;
    }
    t->bytes[t->ref_end] += (uint64_t)n;
    if (t->answered && t->bytes[t->ref_end] > TUN_REFUSE_DRAIN_MAX) {
      tun_close(t, t->ref_why, false);
      return;
    }
    if (t->answered) continue;
    size_t room = WISP_H1_LINE_MAX - wisp_buf_len(&t->sniff);
    if (wisp_buf_append(&t->sniff, buf, (size_t)n < room ? (size_t)n : room, WISP_H1_LINE_MAX) != WISP_OK) abort();
    int line = sniff_request_line(&t->sniff);
    if (line == 0) {
      tun_close(t, t->ref_why, t->reset_unanswered);
      return;
    }
    if (line > 0) refuse_answer(t);
  }
  if (!t->answered && e->eof) {
    tun_close(t, t->ref_why, t->reset_unanswered);
    return;
  }
  while (wisp_buf_len(&e->out)) {
    ssize_t n = wisp_transport_write(&e->tp, wisp_buf_rptr(&e->out), wisp_buf_len(&e->out));
    if (n == WISP_TRANSPORT_AGAIN) break;
    if (n < 0) {
      tun_close(t, t->ref_why, false); /* the caller is gone */
      return;
    }
    wisp_buf_consume(&e->out, (size_t)n);
  }
  if (t->answered && wisp_buf_len(&e->out) == 0) end_shut(e);
  if (e->shut && e->eof) {
    tun_close(t, t->ref_why, false);
    return;
  }
  if (e->eof) {
    ev_io_stop(loop, &e->rio);
  } else {
    ev_io_start(loop, &e->rio);
  }
  if (wisp_buf_len(&e->out)) {
    ev_io_start(loop, &e->wio);
  } else {
    ev_io_stop(loop, &e->wio);
  }
  if (!e->eof && end_has_buffered(e)) ev_feed_event(loop, &e->rio, EV_READ); /* no socket event will come */
}

/* Refuses the tunnel's caller (end |i|) with |status| and |why|: answered
 * at once if |known_http|, else if its first line is an HTTP/1 request;
 * unanswered, it is closed (reset if |reset|). The other end goes now. */
static void refuse(tunnel *t, int i, int status, const char *why, bool known_http, bool reset) {
  struct ev_loop *loop = t->px->loop;
  t->connecting = t->handshaking = false;
  t->ref_end = i;
  t->ref_status = status;
  t->reset_unanswered = reset;
  snprintf(t->ref_why, sizeof(t->ref_why), "%s", why);
  tun_end *other = &t->e[1 - i], *e = &t->e[i];
  ev_io_stop(loop, &other->rio);
  ev_io_stop(loop, &other->wio);
  wisp_transport_close(&other->tp, false);
  wisp_buf_cleanup(&other->out);
  ev_io_stop(loop, &e->rio);
  ev_io_stop(loop, &e->wio);
  ev_io_init(&e->rio, on_refuse_io, e->tp.fd, EV_READ);
  ev_io_init(&e->wio, on_refuse_io, e->tp.fd, EV_WRITE);
  e->rio.data = e->wio.data = t;
  ev_timer_stop(loop, &t->timer);
  ev_init(&t->timer, on_refuse_timeout);
  ev_timer_set(&t->timer, t->px->cfg->handshake_timeout, 0);
  ev_timer_start(loop, &t->timer);
  if (known_http) refuse_answer(t);
  refuse_step(t);
}

/* Setting up failed before relaying: an HTTP/1 caller gets 503 saying why,
 * any other a reset, as before. */
static void setup_failed(tunnel *t, const char *why) {
  if (t->dir == WISP_DIR_OUTBOUND && !t->http_caller) {
    tun_close(t, why, true);
    return;
  }
  if (t->connecting || (t->handshaking && t->dir == WISP_DIR_OUTBOUND)) note_upfail(t, why);
  refuse(t, t->dir == WISP_DIR_INBOUND ? PEER : APP, 503, why, t->http_caller, true);
}

void wisp_tunnel_close_all(wisp_proxy *px) {
  WISP_LIST_FOREACH(it, &px->tunnels) tun_close(WISP_LIST_ELEM(it, tunnel, link), "proxy stopping", false);
  WISP_LIST_FOREACH_SAFE(it, &px->tunnels) {
    tunnel *t = WISP_LIST_ELEM(it, tunnel, link);
    ev_timer_stop(px->loop, &t->timer);
    tun_unlink_free(t);
  }
}

static tunnel *tun_new(wisp_proxy *px, uint64_t id, wisp_direction dir, const char *peer_addr, const wisp_target *up,
                       wisp_connlimit_slot *slot) {
  tunnel *t = wisp_calloc(1, sizeof(*t));
  wisp_connlimit_move(&t->slot, slot);
  t->px = px;
  wisp_list_push_front(&px->tunnels, &t->link);
  t->id = id;
  t->dir = dir;
  t->started = ev_time();
  wisp_transport_init(&t->e[APP].tp, -1);
  wisp_transport_init(&t->e[PEER].tp, -1);
  snprintf(t->peer_addr, sizeof(t->peer_addr), "%s", peer_addr);
  snprintf(t->upstream, sizeof(t->upstream), "%s", up->name);
  ev_timer_init(&t->timer, on_timeout, px->cfg->connect_timeout + px->cfg->handshake_timeout, 0);
  t->timer.data = t;
  ev_timer_start(px->loop, &t->timer);
  return t;
}

/* Starts the non-blocking connect of end |i| to |up|. */
static bool dial(tunnel *t, int i, const wisp_target *up) {
  int fd;
  if (wisp_net_connect(&fd, &up->addr) != WISP_OK) {
    char why[160];
    snprintf(why, sizeof(why), "cannot connect to %s: %s", up->name, strerror(errno));
    note_upfail(t, why);
    setup_failed(t, why);
    return false;
  }
  wisp_transport_set_fd(&t->e[i].tp, fd);
  t->connecting = true;
  ev_io_init(&t->e[i].wio, on_setup_io, fd, EV_WRITE);
  ev_io_init(&t->e[i].rio, on_setup_io, fd, EV_READ);
  t->e[i].rio.data = t->e[i].wio.data = t;
  ev_io_start(t->px->loop, &t->e[i].wio);
  return true;
}

void wisp_tunnel_outbound(wisp_proxy *px, int app_fd, const char *peer_addr, wisp_target *up,
                          wisp_connlimit_slot *slot) {
  wisp_tunnel_outbound_after(px, app_fd, peer_addr, up, slot, NULL, 0);
}

void wisp_tunnel_outbound_after(wisp_proxy *px, int app_fd, const char *peer_addr, wisp_target *up,
                                wisp_connlimit_slot *slot, const uint8_t *read, size_t len) {
  static const uint8_t kAlpn[] = {7, 'w', 'i', 's', 'p', '-', 'l', '4'};
  tunnel *t = tun_new(px, ++px->next_conn_id, WISP_DIR_OUTBOUND, peer_addr, up, slot);
  wisp_transport_init(&t->e[APP].tp, app_fd);
  t->http_caller = read != NULL;
  if (len) {
    /* already read from the app: first out to the peer (may exceed the
     * usual bound once; reading the app waits until it drains) */
    if (wisp_buf_append(&t->e[PEER].out, read, len, len) != WISP_OK) abort(); /* the buffer is new and empty */
    t->bytes[APP] += len;
  }
  if (up->refuse) { /* a stand-in (wisp_target.refuse): nowhere to dial */
    setup_failed(t, up->refuse);
    return;
  }
  t->expect_id = up->expect_id ? wisp_strdup(up->expect_id) : NULL;
  t->verify.expect_id = t->expect_id;
  SSL *ssl = wisp_tls_new_ssl(px->tls, false, &t->verify);
  if (!ssl) {
    setup_failed(t, "no SVID yet");
    return;
  }
  SSL_set_alpn_protos(ssl, kAlpn, sizeof(kAlpn));
  wisp_transport_set0_tls(&t->e[PEER].tp, ssl, false); /* on the fd dial gives it */
  dial(t, PEER, up);
}

void wisp_tunnel_inbound(wisp_proxy *px, uint64_t id, wisp_transport *tp, const wisp_tls_verify *v,
                         const char *peer_addr, wisp_target *app, wisp_connlimit_slot *slot) {
  tunnel *t = tun_new(px, id, WISP_DIR_INBOUND, peer_addr, app, slot);
  wisp_transport_move(&t->e[PEER].tp, tp);
  t->verify = *v;
  t->verify.expect_id = NULL;
  /* The SSL pointed at the handshake's copy, freed once it hands over:
   * from now on it points at ours, which lives as long as the SSL. */
  wisp_tls_set_verify(t->e[PEER].tp.ssl, &t->verify);
  /* Policy on identity and port: an L4 connection has no method or path. */
  wisp_policy_decision d;
  wisp_authz_check(px, v->peer_ok ? v->peer.id : NULL, NULL, NULL, wisp_addr_port(&app->addr), &d);
  t->ms = wisp_metrics_tcp_open(px->metrics, true, v->peer_ok ? v->peer.id : NULL, !d.allow);
  if (!d.allow) {
    px->stats.requests_denied++;
    wisp_events_denied(px->events, true, d.policy, d.rule, d.reason, v->peer_ok ? v->peer.id : NULL);
    log_tunnel(t, "l4_denied", "denied by policy", &d);
    t->logged = true;
    char why[WISP_TLS_REASON_MAX];
    wisp_authz_describe(&d, why, sizeof(why));
    refuse(t, PEER, 403, why, false, false);
    return;
  }
  if (app->refuse) { /* a stand-in (wisp_target.refuse): no app to dial */
    refuse(t, PEER, 503, app->refuse, false, false);
    return;
  }
  dial(t, APP, app);
}
