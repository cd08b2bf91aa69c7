#include "proxy/dataplane/wisp_handshake.h"

#include <stdio.h>
#include <stdlib.h>

#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "proxy/dataplane/wisp_events.h"
#include "proxy/dataplane/wisp_proxy.h"
#include "proxy/dataplane/wisp_tunnel.h"

typedef struct {
  wisp_proxy *px;
  wisp_conn_pending who; /* listener, destination (held), peer, slot, accept time;
                          * who.sniff: TLS or plaintext, while that is being told */
  uint64_t id;
  bool in_tls;            /* its TLS handshake began: counted in px->nhandshakes */
  wisp_transport tp;      /* owned until handed over */
  wisp_tls_verify verify; /* the SSL's, until handed over */
  ev_io rio, wio;
  ev_timer timer; /* --handshake-timeout, from accept */
  wisp_list link; /* px->handshakes */
} handshake;

static void hs_free(handshake *hs) {
  wisp_proxy *px = hs->px;
  if (hs->who.sniff) wisp_sniff_cancel(hs->who.sniff); /* closes its fd */
  ev_io_stop(px->loop, &hs->rio);
  ev_io_stop(px->loop, &hs->wio);
  ev_timer_stop(px->loop, &hs->timer);
  wisp_transport_close(&hs->tp, false); /* nothing left after a hand-over */
  wisp_connlimit_release(&hs->who.slot);
  wisp_proxy_release_target(hs->who.dst);
  wisp_list_unlink(&hs->link);
  if (hs->in_tls) px->nhandshakes--;
  free(hs);
}

/* The line a refused (|event| "refused") or early-closed ("closed")
 * caller's connection always had, as wisp_conn's: rate-limited per
 * listener. */
static void log_unaccepted(const handshake *hs, const char *event, const char *reason) {
  wisp_listener *l = hs->who.l;
  uint64_t dropped = 0;
  if (!wisp_log_limit_pass(&l->refusals, wisp_log_now(), &dropped)) return;
  wisp_json j;
  wisp_json_begin(&j, "conn");
  wisp_json_str(&j, "event", event);
  wisp_json_str(&j, "direction", l->dir == WISP_DIR_INBOUND ? "inbound" : "outbound");
  wisp_json_int(&j, "conn", (int64_t)hs->id);
  wisp_json_str(&j, "peer_addr", hs->who.peer);
  if (hs->verify.peer_ok) wisp_json_str(&j, "peer_id", hs->verify.peer.id);
  wisp_json_str(&j, "reason", reason);
  if (dropped) wisp_json_int(&j, "suppressed", (int64_t)dropped);
  wisp_json_emit(&j);
}

/* Refuses the caller: counted (by kind, for alerts), logged, freed. */
static void fail(handshake *hs, const char *reason) {
  wisp_proxy *px = hs->px;
  const wisp_tls_verify *v = &hs->verify;
  const char *kind = v->failure != WISP_TLS_FAIL_NONE ? wisp_tls_failure_name(v->failure) : WISP_EVENTS_OTHER;
  px->stats.conns_refused++;
  wisp_events_refused(px->events, hs->who.l->dir == WISP_DIR_INBOUND, kind, hs->who.peer,
                      v->peer.id[0] ? v->peer.id : NULL);
  log_unaccepted(hs, "refused", reason);
  hs_free(hs);
}

/* ALPN picks the one owner the transport goes to; |hs| is freed. */
static void hand_over(handshake *hs) {
  wisp_proxy *px = hs->px;
  wisp_transport_peer peer;
  wisp_transport_get_peer(&hs->tp, &peer);
  ev_io_stop(px->loop, &hs->rio);
  ev_io_stop(px->loop, &hs->wio);
  ev_timer_stop(px->loop, &hs->timer);
  if (wisp_transport_alpn_is(&peer, WISP_ALPN_L4)) {
    wisp_tunnel_inbound(px, hs->id, &hs->tp, &hs->verify, hs->who.peer, hs->who.dst, &hs->who.slot);
  } else {
    wisp_conn_accept_tls(&hs->who, hs->id, &hs->tp, &hs->verify);
  }
  hs_free(hs);
}

static void step(handshake *hs) {
  struct ev_loop *loop = hs->px->loop;
  int r = wisp_transport_handshake(&hs->tp);
  if (r == WISP_TRANSPORT_AGAIN) {
    if (hs->tp.want_write) {
      ev_io_start(loop, &hs->wio);
    } else {
      ev_io_stop(loop, &hs->wio);
    }
    return;
  }
  if (r != WISP_TRANSPORT_DONE) {
    fail(hs, hs->verify.reason); /* the transport wrote why */
    return;
  }
  if (!hs->verify.peer_ok) {
    fail(hs, "peer identity was not verified");
    return;
  }
  hand_over(hs);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents) { step(w->data); }

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  handshake *hs = w->data;
  char reason[128];
  hs->verify.failure = WISP_TLS_FAIL_TIMEOUT;
  snprintf(reason, sizeof(reason), "TLS handshake not finished within %gs", hs->px->cfg->handshake_timeout);
  fail(hs, reason);
}

/* The first bytes were a TLS record: the handshake on |fd|. */
static void start_tls(handshake *hs, int fd) {
  wisp_proxy *px = hs->px;
  hs->in_tls = true;
  px->nhandshakes++;
  wisp_transport_init(&hs->tp, fd);
  ev_io_init(&hs->rio, on_io, fd, EV_READ);
  ev_io_init(&hs->wio, on_io, fd, EV_WRITE);
  hs->rio.data = hs->wio.data = hs;
  /* One budget from accept to a usable connection: detection and TLS
   * share it (and the HTTP/2 preface after), so stalling each in turn
   * holds a slot no longer. */
  double left = px->cfg->handshake_timeout - (ev_now(px->loop) - hs->who.accepted);
  ev_timer_init(&hs->timer, on_timeout, left > 0 ? left : 0, 0);
  hs->timer.data = hs;
  SSL *ssl = wisp_tls_new_ssl(px->tls, true, &hs->verify);
  if (!ssl) {
    fail(hs, "no SVID yet: cannot accept mTLS");
    return;
  }
  wisp_transport_set0_tls(&hs->tp, ssl, true);
  ev_timer_start(px->loop, &hs->timer);
  ev_io_start(px->loop, &hs->rio);
  step(hs); /* the ClientHello is already there (detection saw it) */
}

static void on_sniffed(int fd, wisp_sniff_proto proto, void *arg) {
  handshake *hs = arg;
  hs->who.sniff = NULL; /* freed by the sniffer as it calls back */
  if (proto == WISP_SNIFF_CLOSED) {
    /* Connect and close: a TCP health check or a port scan, not a failed
     * handshake. Said as it happens (the sniffer saw the FIN or RST and
     * closed |fd|). */
    hs->px->stats.conns_closed_early++;
    log_unaccepted(hs, "closed", "closed before the TLS handshake (the peer sent nothing)");
    hs_free(hs);
  } else if (proto == WISP_SNIFF_TIMEOUT) {
    wisp_transport_init(&hs->tp, fd); /* closed with |hs| */
    hs->verify.failure = WISP_TLS_FAIL_TIMEOUT;
    char reason[128];
    snprintf(reason, sizeof(reason), "TLS handshake not finished within %gs (the peer sent nothing)",
             hs->px->cfg->handshake_timeout);
    fail(hs, reason);
  } else if (proto == WISP_SNIFF_TLS) {
    start_tls(hs, fd);
  } else {
    wisp_conn_accept_plain(&hs->who, hs->id, fd);
    hs_free(hs);
  }
}

void wisp_handshake_accept(wisp_conn_pending *who, int fd) {
  wisp_proxy *px = who->l->px;
  handshake *hs = wisp_calloc(1, sizeof(*hs));
  hs->px = px;
  hs->who = *who;
  wisp_connlimit_move(&hs->who.slot, &who->slot);
  wisp_proxy_hold_target(hs->who.dst);
  hs->id = ++px->next_conn_id;
  wisp_list_push_front(&px->handshakes, &hs->link);
  wisp_transport_init(&hs->tp, -1); /* the sniffer holds the fd until it decides */
  /* TLS or plaintext? The first bytes say (PeerAuthentication). */
  hs->who.sniff = wisp_sniff_start(px->loop, fd, px->cfg->handshake_timeout, on_sniffed, hs);
}

void wisp_handshake_close_all(wisp_proxy *px) {
  WISP_LIST_FOREACH_SAFE(it, &px->handshakes) hs_free(WISP_LIST_ELEM(it, handshake, link));
}
