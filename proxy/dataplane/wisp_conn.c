#include "proxy/dataplane/wisp_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_sniff.h"
#include "proxy/dataplane/wisp_events.h"
#include "proxy/dataplane/wisp_h1.h"
#include "proxy/dataplane/wisp_h1app.h"
#include "proxy/dataplane/wisp_h2.h"
#include "proxy/dataplane/wisp_handshake.h"
#include "proxy/dataplane/wisp_pool.h"
#include "proxy/dataplane/wisp_proxy.h"
#include "proxy/dataplane/wisp_stream.h"
#include "proxy/dataplane/wisp_tunnel.h"

static wisp_conn *conn_of(wisp_h2conn *io) { return (wisp_conn *)io; }

/* ---- timers and stream bookkeeping ---- */

/* How long a connection we terminated gets to flush its GOAWAY. */
#define WISP_TERMINATE_GRACE 1.0

void wisp_conn_rearm(wisp_conn *c) {
  const wisp_config *cfg = c->px->cfg;
  double t;
  if (c->io.closing) return;
  if (c->term_reason) {
    if (!ev_is_active(&c->timer)) {
      ev_timer_set(&c->timer, WISP_TERMINATE_GRACE, 0);
      ev_timer_start(c->px->loop, &c->timer);
    }
    return;
  }
  if (c->io.state == WISP_H2CONN_CONNECTING) {
    t = cfg->connect_timeout;
  } else if (c->io.state == WISP_H2CONN_HANDSHAKING || !c->got_preface) {
    /* An upstream peer has it too for its SETTINGS: one that finished TLS
     * and then said nothing held every request sent to it until
     * --stream-idle-timeout (300 s) answered 408. */
    t = cfg->handshake_timeout;
    /* A caller gets one budget from accept to a usable connection:
     * detection, TLS and the preface share it, so stalling each in turn
     * holds a slot no longer. */
    if (!c->io.upstream) t -= ev_now(c->px->loop) - c->started;
    if (t < 0) t = 0;
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

int wisp_conn_fail_status(const wisp_conn *c) { return c->io.state == WISP_H2CONN_CONNECTING ? 503 : 502; }

void wisp_conn_terminate(wisp_conn *c, uint32_t code, const char *reason) {
  if (c->term_reason || c->io.closing) return;
  c->term_reason = reason;
  /* nghttp2 ignores everything the peer sends from now on and closes the
   * session once the GOAWAY is out (on_flushed closes the connection). */
  nghttp2_session_terminate_session2(c->io.h2, nghttp2_session_get_last_proc_stream_id(c->io.h2), code);
  ev_timer_stop(c->px->loop, &c->timer);
  wisp_conn_rearm(c);
  wisp_conn_mark_dirty(c);
}

void wisp_conn_drain(wisp_conn *c) {
  if (c->draining || c->io.closing) return;
  if (c->io.state != WISP_H2CONN_OPEN) {
    wisp_conn_close(c, NULL);
    return;
  }
  c->draining = true;
  nghttp2_submit_goaway(c->io.h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->io.h2),
                        NGHTTP2_NO_ERROR, NULL, 0);
  wisp_conn_mark_dirty(c);
}

/* ---- premature stream resets (--max-resets) ---- */

/* The caller's record, held from its first stream on: who the caller is
 * (its source address) came with its connection-limit slot. */
static wisp_resetlim_caller *caller_of(wisp_conn *c) {
  if (!c->caller) c->caller = wisp_resetlim_hold(c->px->resets, &c->slot.key, ev_now(c->px->loop));
  return c->caller;
}

void wisp_conn_stream_opened(wisp_conn *c) { caller_of(c); }

void wisp_conn_stream_completed(wisp_conn *c) {
  if (c->streams_completed < UINT32_MAX) c->streams_completed++;
  wisp_resetlim_completed(caller_of(c), ev_now(c->px->loop));
}

/* A peer sidecar's mTLS connection is shared by many callers of its own:
 * cutting it for the resets one of them makes would fail every request on
 * it (a good caller beside an attacker got 4 of 200). Over --max-resets it
 * is throttled instead, by its upstream share (below): its requests wait
 * in the queue for a few upstream streams its source's connections share,
 * where the ones reset while waiting never reach the app, and the others
 * are served in turn.
 * Pausing its reading instead starved the good callers on it (4 of 200
 * again): what waits in the socket cannot be told apart. */
#define WISP_THROTTLE_LOG_BURST 10
#define WISP_THROTTLE_LOG_WINDOW 10.0

static bool verified_inbound(const wisp_conn *c) {
  return !c->io.upstream && c->dir == WISP_DIR_INBOUND && wisp_transport_is_tls(&c->io.tp) && c->io.verify.peer_ok;
}

/* A verified mTLS connection alone is no proof: a workload holding a valid
 * SVID may connect straight to --inbound, and was never cut (34,050 resets
 * in 12 s on 2 connections). Only one that carried x-wisp-caller tags of
 * more than one caller is shared by them, and so is every other of the
 * same source once one did: a peer sidecar opens pooled connections as
 * its load grows, and a young one may have carried one caller's requests
 * so far. Any other is a single caller. */
static bool from_peer_sidecar(const wisp_conn *c) {
  return verified_inbound(c) && (c->many_callers || (c->caller && wisp_resetlim_shared(c->caller)));
}

void wisp_conn_caller_tagged(wisp_conn *c, uint64_t tag) {
  if (!c->first_caller_tag) c->first_caller_tag = tag;
  else if (tag != c->first_caller_tag) c->many_callers = true;
  if (c->many_callers && verified_inbound(c)) wisp_resetlim_mark_shared(caller_of(c));
}

static void log_throttled(const wisp_conn *c) {
  static _Thread_local wisp_log_limit lines =
      WISP_LOG_LIMIT_INIT("conn lines of peer sidecars throttled for resets", WISP_THROTTLE_LOG_BURST,
                          WISP_THROTTLE_LOG_WINDOW, WISP_LOG_TO_STDOUT);
  uint64_t suppressed = 0;
  if (!wisp_log_limit_pass(&lines, wisp_log_now(), &suppressed)) return;
  wisp_json j;
  wisp_json_begin(&j, "conn");
  wisp_json_str(&j, "event", "throttled");
  wisp_json_str(&j, "direction", "inbound");
  wisp_json_int(&j, "conn", (int64_t)c->id);
  wisp_json_str(&j, "peer_addr", c->peer_addr);
  wisp_json_str(&j, "peer_id", c->io.verify.peer.id);
  wisp_json_str(&j, "reason", WISP_RESET_THROTTLE_REASON);
  if (suppressed) wisp_json_int(&j, "suppressed", (int64_t)suppressed);
  wisp_json_emit(&j);
}

/* A connection that has not completed more streams than it reset: its
 * caller's --max-resets budget bounds what it sends upstream. One that
 * did has earned its full share back, whatever its address's budget: every
 * local caller of a sidecar comes from one address, and a multiplexing
 * caller beside a resetter went from 60 to 4 req/s when it was throttled
 * with it. */
static bool untrusted(const wisp_conn *c) { return c->caller && c->streams_completed <= c->streams_reset; }

/* Upstream streams an untrusted connection may hold, by its caller's
 * budget (unbounded while most of its recent streams ended complete):
 * - a peer sidecar's shared connections are throttled, not cut: together
 *   they hold at least WISP_RESETLIM_THROTTLE_STREAMS, so the good callers
 *   on them are served in turn. Together, per source: with at least one
 *   each, a workload holding a valid SVID that sent two x-wisp-caller
 *   values (taken for a peer sidecar) got one more stream upstream for
 *   each connection it opened, up to --max-connections-per-source;
 * - any other caller's connections together hold no more upstream streams
 *   than the address may still reset, and once it has no budget left, one
 *   at a time and at most one per WISP_RESET_PROBE_INTERVAL (a probe):
 *   its other requests wait in the queue, where a reset frees them before
 *   the upstream sees them, or --queue-timeout answers them 503.
 * Per connection (at least 1 each), a resetter got a request upstream per
 * new connection: 16 connections ending in connection errors
 * (attack_test conn_errors) put 1,052 requests on the app after their
 * budget was spent, and behind a client sidecar those resets reached the
 * server side, which counted them against the client side, shared by all
 * its callers, and throttled it (attack_test ce_pooled: good callers got
 * 55 of 200). One at a time alone did not bound them: a probe freed by a
 * connection's death went to the next connection about to die. The probe
 * is there so that a good caller's new connection from a spent address
 * (every local caller of a sidecar shares one) gets its first request
 * through, and with it its full share; waiting connections take turns, so
 * it is served within a few probes. */
static uint32_t reset_share(const wisp_conn *c) {
  const wisp_proxy *px = c->px;
  uint32_t share = (uint32_t)px->cfg->max_upstream_per_caller;
  if (!untrusted(c)) return share;
  ev_tstamp now = ev_now(px->loop);
  uint32_t room = from_peer_sidecar(c) ? wisp_resetlim_throttle_room(c->caller, now)
                                       : wisp_resetlim_room(c->caller, now, WISP_RESET_PROBE_INTERVAL);
  if (room >= share) return share;
  uint32_t mine = (uint32_t)c->nupstream + room;
  return mine < share ? mine : share;
}

/* On --inbound, --max-upstream-per-caller counts per source address, over
 * all its connections: per connection, one workload holding a valid SVID
 * opened 30 connections to --inbound and held nearly all the app pool's
 * 400 streams, and a good client got 141 of 200 (attack_test svid_conns).
 * The source address, not the verified identity: the replicas of a
 * service share one SPIFFE ID, and one share for all of them would cap a
 * scaled-out client as one pod; an address is one pod (as
 * --max-connections-per-source and --max-resets count callers). A peer
 * sidecar's pooled connection (verified, its requests tagged with
 * x-wisp-caller) keeps a share of its own: it carries many callers, whose
 * turns its lanes keep fair, and a sidecar opens a new one only when its
 * others are full (counted per source, its young connections, each
 * carrying one caller so far, held a held-streams attacker's 300 streams
 * and starved the good caller beside it: h2_limits_test 2a). The tags are
 * the caller's word: a workload sending them gets per-connection shares,
 * as before. Outbound, every local caller comes from one address: shares
 * stay per connection. */
static bool shares_per_source(const wisp_conn *c) {
  return !c->io.upstream && c->dir == WISP_DIR_INBOUND && c->caller && !(c->first_caller_tag && verified_inbound(c));
}

static uint32_t source_room(const wisp_conn *c) {
  uint32_t limit = (uint32_t)c->px->cfg->max_upstream_per_caller;
  uint32_t held = wisp_resetlim_upstream(c->caller);
  return limit > held ? limit - held : 0;
}

int wisp_conn_upstream_share(const wisp_conn *c) {
  uint32_t share = reset_share(c);
  if (shares_per_source(c)) {
    uint32_t mine = (uint32_t)c->nupstream + source_room(c);
    if (mine < share) share = mine;
  }
  return (int)share;
}

bool wisp_conn_over_resets(const wisp_conn *c) {
  return reset_share(c) < (uint32_t)c->px->cfg->max_upstream_per_caller;
}

/* Lines of wisp's own answers per source: one caller overflowing
 * --max-queued got a 503 and a line for each, 77 MB of log in 8 s
 * (/metrics still counts every answer). Policy denials are bounded apart
 * and more loosely: operators want each, but a denied caller can repeat
 * its request as fast as it likes. */
#define WISP_ANSWER_LOG_BURST 10
#define WISP_DENIAL_LOG_BURST 50
#define WISP_ANSWER_LOG_WINDOW 1.0

bool wisp_conn_answer_line(wisp_conn *c, bool denial, uint64_t *dropped) {
  return wisp_resetlim_line_pass(caller_of(c), denial ? WISP_RESETLIM_LINE_DENIAL : WISP_RESETLIM_LINE_ANSWER,
                                 ev_now(c->px->loop), denial ? WISP_DENIAL_LOG_BURST : WISP_ANSWER_LOG_BURST,
                                 WISP_ANSWER_LOG_WINDOW, dropped);
}

double wisp_conn_probe_wait(const wisp_conn *c) {
  if (!untrusted(c)) return 0;
  ev_tstamp now = ev_now(c->px->loop);
  if (from_peer_sidecar(c)) return wisp_resetlim_throttle_wait(c->caller, now, WISP_RESET_PROBE_INTERVAL);
  return wisp_resetlim_probe_wait(c->caller, now, WISP_RESET_PROBE_INTERVAL);
}

void wisp_conn_upstream_held(wisp_conn *c, wisp_stream *s, bool holds) {
  if (holds && !s->counted_source && shares_per_source(c)) {
    s->counted_source = true;
    wisp_resetlim_upstream_add(c->caller, 1);
  } else if (!holds && s->counted_source) {
    s->counted_source = false;
    wisp_resetlim_upstream_add(c->caller, -1);
  }
  if (holds && !s->counted_untrusted && !s->counted_throttled && untrusted(c)) {
    /* A peer sidecar's streams count apart: its connections are throttled
     * together, not probed (reset_share). */
    bool peer = from_peer_sidecar(c);
    s->counted_untrusted = !peer;
    s->counted_throttled = peer;
    if (peer) wisp_resetlim_throttled_add(c->caller, 1);
    else wisp_resetlim_untrusted_add(c->caller, 1, ev_now(c->px->loop));
  } else if (!holds && s->counted_untrusted) {
    s->counted_untrusted = false;
    wisp_resetlim_untrusted_add(c->caller, -1, ev_now(c->px->loop));
  } else if (!holds && s->counted_throttled) {
    s->counted_throttled = false;
    wisp_resetlim_throttled_add(c->caller, -1);
    if (s->premature) wisp_resetlim_throttled_park(c->caller, ev_now(c->px->loop), WISP_RESET_PROBE_INTERVAL);
  }
}

void wisp_conn_premature_reset(wisp_conn *c, bool by_peer) {
  wisp_proxy *px = c->px;
  px->stats.premature_resets[by_peer ? 0 : 1]++;
  if (c->streams_reset < UINT32_MAX) c->streams_reset++;
  if (c->term_reason || c->io.closing) return;
  ev_tstamp now = ev_now(px->loop);
  if (wisp_resetlim_reset(caller_of(c), now)) return;
  if (from_peer_sidecar(c)) {
    px->stats.reset_limited[1]++;
    log_throttled(c);
    return;
  }
  px->stats.reset_limited[0]++;
  wisp_conn_terminate(c, NGHTTP2_ENHANCE_YOUR_CALM, WISP_RESET_LIMIT_REASON);
}

/* ---- logging at the edge ---- */

/* Callers we terminated for misbehaving, whose connection error ended the
 * session, or that went away with streams open, can come back as fast as
 * they can connect: their lines pass a limiter (the rest counted,
 * "suppressed":N). A DATA-after-END_STREAM flood wrote 1.6 MB of such
 * lines in 6 s unlimited, callers closing each connection with 100
 * requests open 3 MB in 11 s. */
#define WISP_TERM_LOG_BURST 10
#define WISP_TERM_LOG_WINDOW 1.0

/* |suppressed|: lines of this kind a caller's limiter dropped before it. */
static void log_conn_event(const wisp_conn *c, const char *event, uint64_t suppressed) {
  static _Thread_local wisp_log_limit term_lines =
      WISP_LOG_LIMIT_INIT("conn lines of callers terminated for misbehaving", WISP_TERM_LOG_BURST, WISP_TERM_LOG_WINDOW,
                          WISP_LOG_TO_STDOUT);
  uint64_t term_suppressed = 0;
  bool misbehaved = c->term_reason || c->conn_error || (!c->io.upstream && c->nstreams > 0);
  if (misbehaved && !wisp_log_limit_pass(&term_lines, wisp_log_now(), &term_suppressed)) return;
  suppressed += term_suppressed;
  wisp_json j;
  wisp_json_begin(&j, "conn");
  wisp_json_str(&j, "event", event);
  wisp_json_str(&j, "direction", c->dir == WISP_DIR_INBOUND ? "inbound" : "outbound");
  wisp_json_int(&j, "conn", (int64_t)c->id);
  wisp_json_str(&j, c->io.upstream ? "upstream" : "peer_addr", c->io.upstream ? c->target->name : c->peer_addr);
  if (c->io.verify.peer_ok) wisp_json_str(&j, "peer_id", c->io.verify.peer.id);
  wisp_json_str(&j, "reason", c->io.close_reason);
  if (suppressed) wisp_json_int(&j, "suppressed", (int64_t)suppressed);
  wisp_json_emit(&j);
}

/* For GET /status: what could not be reached, and why. */
static void note_upfail(const wisp_target *t, const char *reason) {
  wisp_proxy_note_upfail(t->px, t->name, t->expect_id, !t->tls, reason);
}

/* ---- wisp_h2conn hooks ---- */

static void on_state(wisp_h2conn *io) {
  wisp_conn *c = conn_of(io);
  if (io->upstream && io->state == WISP_H2CONN_OPEN) wisp_proxy_clear_upfail(c->px, c->target->name);
  wisp_conn_rearm(c);
}

static void on_eof(wisp_h2conn *io) {
  wisp_conn *c = conn_of(io);
  if (!io->upstream && !c->got_preface) {
    wisp_conn_close(c, "peer closed the connection before sending an HTTP/2 preface");
  } else if (c->nstreams == 0) {
    wisp_conn_close(c, NULL); /* an orderly close between streams */
  } else {
    wisp_h2conn_closef(io, "%s closed the connection with streams open", io->upstream ? "upstream" : "peer");
  }
}

/* The streams of |c|, ending with it, whose response was not complete (or
 * |only_upstream|: of those, the ones upstream) are premature resets of
 * its caller (|by_peer|: for wisp_premature_resets_total). */
static void count_left_open(wisp_conn *c, bool only_upstream, bool by_peer) {
  wisp_proxy *px = c->px;
  ev_tstamp now = ev_now(px->loop);
  for (wisp_stream *s = c->streams; s; s = s->link[WISP_DOWN].next) {
    if (s->resp_done || (only_upstream && !s->link[WISP_UP].conn)) continue;
    s->premature = true;
    px->stats.premature_resets[by_peer ? 0 : 1]++;
    if (c->streams_reset < UINT32_MAX) c->streams_reset++;
    wisp_resetlim_reset(caller_of(c), now);
  }
}

/* A caller's connection that ends in a connection error (DATA after
 * END_STREAM, ...) resets every stream it had open, and those that went
 * upstream are cancelled there. Behind a client sidecar that upstream is
 * a pooled connection to the server side, which counts the cancels
 * against the client side (one address for all its callers) and
 * throttled it: 37,380 resets throttled in 8 s, and two good callers of
 * the client side got 55 and 61 of 200 (attack_test ce_pooled). So they
 * count here, against the caller that made them, as premature resets by
 * protocol: once its budget is spent its requests no longer go upstream
 * (wisp_conn_upstream_share), and the server side sees no more than its
 * budget's worth. The connection ends anyway: nothing to cut. */
static void count_conn_error(wisp_conn *c) { count_left_open(c, false, false); }

/* A caller that closes its connection (or breaks it: a reset, a failed
 * read or write) with requests upstream cancels them there as RST_STREAM
 * would: a caller could open 100 streams, close the socket, reconnect and
 * do it again without a premature reset counted. They count against it as
 * resets by the peer. Those still waiting in the queue never went up (the
 * pool skips a closing caller) and count as nothing. Not counted: an
 * orderly close (no reason: between streams, drained, the proxy
 * stopping), our own HTTP/1 gateway, a connection whose errors were
 * counted (count_conn_error) or that we cut (already over its budget). */
static void count_abandoned(wisp_conn *c) {
  if (c->io.upstream || c->h1_gateway || c->conn_error || c->term_reason || !c->io.close_reason[0]) return;
  count_left_open(c, true, true);
}

static void on_flushed(wisp_h2conn *io) {
  wisp_conn *c = conn_of(io);
  if (wisp_buf_len(&io->out) != 0) return;
  if (c->term_reason && !nghttp2_session_want_write(io->h2)) {
    wisp_conn_close(c, c->term_reason); /* its GOAWAY went out */
    return;
  }
  /* nghttp2 wants neither to read nor to write: the session is over (e.g.
   * it sent a GOAWAY for the peer's connection error). Streams still open
   * can never finish on it: close now, which fails them (a 502 for a
   * caller waiting on an upstream, a cancel upstream for a gone caller)
   * and takes an upstream out of its pool so the next request reconnects. */
  bool finished = !nghttp2_session_want_read(io->h2) && !nghttp2_session_want_write(io->h2);
  if (finished && c->nstreams != 0) {
    c->conn_error = true;
    if (!io->upstream) count_conn_error(c);
    wisp_h2conn_closef(io, "HTTP/2 session ended (connection error) with %d streams open", c->nstreams);
    return;
  }
  if (c->nstreams != 0) return;
  wisp_buf_cleanup(&io->out); /* an idle connection holds no buffer */
  if (finished || c->goaway || c->draining) wisp_conn_close(c, NULL);
}

/* For alerts: why a connection ended before it was any use, as a label
 * (wisp_events). TLS failures carry their kind; a caller that got through
 * TLS (or came in plaintext) but sent no HTTP/2 preface is "no_preface". */
static void count_failure(const wisp_conn *c) {
  const wisp_h2conn *io = &c->io;
  const wisp_tls_verify *v = &io->verify;
  const char *claimed = v->peer.id[0] ? v->peer.id : NULL;
  const char *kind = v->failure != WISP_TLS_FAIL_NONE ? wisp_tls_failure_name(v->failure) : NULL;
  if (io->upstream) {
    if (kind) wisp_events_upstream_failed(c->px->events, kind, c->target->name, c->expect_id, claimed);
    return;
  }
  if (!kind) kind = io->state == WISP_H2CONN_OPEN ? WISP_EVENTS_NO_PREFACE : WISP_EVENTS_OTHER;
  wisp_events_refused(c->px->events, c->dir == WISP_DIR_INBOUND, kind, c->peer_addr, claimed);
}

static void on_teardown(wisp_h2conn *io) {
  wisp_conn *c = conn_of(io);
  wisp_proxy *px = c->px;
  bool refused = !io->upstream && !c->got_preface;
  if (io->close_reason[0]) {
    if (refused) px->stats.conns_refused++;
    if (io->upstream) {
      px->stats.upstream_failures++;
      note_upfail(c->target, io->close_reason);
    }
    if (refused || io->upstream) count_failure(c);
    uint64_t dropped = 0;
    if (!refused || !c->listener || wisp_log_limit_pass(&c->listener->refusals, wisp_log_now(), &dropped))
      log_conn_event(c, refused ? "refused" : io->upstream ? "upstream_failed" : "closed", dropped);
  }
  ev_timer_stop(px->loop, &c->timer);
  count_abandoned(c);
  wisp_stream_conn_gone(c);
  if (c->caller) wisp_resetlim_release(c->caller, ev_now(px->loop));
  wisp_connlimit_release(&c->slot);
  if (io->upstream) {
    wisp_pool_remove(c->target, c);
    wisp_proxy_reap_target(c->target);
  } else if (c->dst) {
    wisp_proxy_release_target(c->dst);
  }
  wisp_list_unlink(&c->link);
  free(c->expect_id);
  free(c);
}

static const wisp_h2conn_ops kConnOps = {on_state, on_eof, on_flushed, on_teardown};

/* ---- timeouts ---- */

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_conn *c = w->data;
  const wisp_config *cfg = c->px->cfg;
  if (c->term_reason) {
    wisp_conn_close(c, c->term_reason); /* its GOAWAY could not be flushed in time */
  } else if (c->io.state == WISP_H2CONN_CONNECTING) {
    wisp_h2conn_closef(&c->io, "connect to %s timed out after %gs", c->target->name, cfg->connect_timeout);
  } else if (c->io.state == WISP_H2CONN_HANDSHAKING) {
    c->io.verify.failure = WISP_TLS_FAIL_TIMEOUT;
    wisp_h2conn_closef(&c->io, "TLS handshake not finished within %gs", cfg->handshake_timeout);
  } else if (!c->got_preface && c->io.upstream) {
    wisp_h2conn_closef(&c->io, "peer sent no HTTP/2 SETTINGS within %gs of connecting", cfg->handshake_timeout);
  } else if (!c->got_preface) {
    wisp_h2conn_closef(&c->io, "no HTTP/2 preface within %gs", cfg->handshake_timeout);
  } else if (c->nstreams == 0) {
    wisp_conn_drain(c); /* idle */
  }
}

/* ---- construction ---- */

/* A connection on |tp| (taken) with connection id |id|. An inbound TLS
 * caller comes here only once its handshake is done and ALPN chose HTTP/2
 * (wisp_handshake): no HTTP/2 state exists for one that fails it or goes
 * to the L4 tunnel. */
static wisp_conn *conn_new(wisp_proxy *px, wisp_transport *tp, bool upstream, wisp_direction dir,
                           wisp_h2conn_state state, uint64_t id) {
  wisp_conn *c = wisp_calloc(1, sizeof(*c));
  c->px = px;
  c->id = id;
  c->dir = dir;
  c->started = ev_now(px->loop);
  ev_init(&c->timer, on_timeout);
  c->timer.data = c;
  wisp_list_push_front(&px->conns, &c->link);
  wisp_h2conn_init_transport(&c->io, &px->lp, &kConnOps, tp, upstream, state);
  wisp_h2conn_set0_session(&c->io, wisp_h2_session_new(c));
  return c;
}

/* A downstream connection holds its destination (not evicted meanwhile). */
static void set_dst(wisp_conn *c, wisp_target *dst) {
  c->dst = dst;
  wisp_proxy_hold_target(dst);
}

/* A caller's connection on |tp| (taken) from listener |l|, going to |dst|,
 * taking |slot|; |accepted|: when its handshake budget began. */
static wisp_conn *caller_new(wisp_listener *l, wisp_target *dst, wisp_transport *tp, const char *peer,
                             wisp_connlimit_slot *slot, ev_tstamp accepted, uint64_t id) {
  wisp_conn *c = conn_new(l->px, tp, false, l->dir, WISP_H2CONN_OPEN, id);
  wisp_connlimit_move(&c->slot, slot);
  c->started = accepted;
  c->listener = l;
  set_dst(c, dst);
  snprintf(c->peer_addr, sizeof(c->peer_addr), "%s", peer);
  return c;
}

void wisp_conn_accept_plain(wisp_conn_pending *who, uint64_t id, int fd) {
  wisp_transport tp;
  wisp_transport_init(&tp, fd);
  wisp_conn *c = caller_new(who->l, who->dst, &tp, who->peer, &who->slot, who->accepted, id);
  if (!who->l->px->permissive) {
    c->io.verify.failure = WISP_TLS_FAIL_PLAINTEXT;
    wisp_conn_close(c, "peer did not speak TLS: plaintext callers are refused (mTLS mode STRICT)");
    return;
  }
  wisp_conn_rearm(c);
}

void wisp_conn_accept_tls(wisp_conn_pending *who, uint64_t id, wisp_transport *tp, const wisp_tls_verify *v) {
  wisp_conn *c = caller_new(who->l, who->dst, tp, who->peer, &who->slot, who->accepted, id);
  c->io.verify = *v;
  /* The SSL pointed at the handshake's copy, freed after this returns. */
  wisp_tls_set_verify(c->io.tp.ssl, &c->io.verify);
  wisp_conn_rearm(c);
  /* The client's first bytes may have come with the end of the handshake. */
  wisp_h2conn_recv(&c->io);
}

/* A connection's line before it is a wisp_conn: |event| "refused" (we
 * closed it; |limit|: the flag that refused it, or NULL), "closed" (the
 * caller did), "misdirected" or "unavailable" (served by a stand-in that
 * answers 503). Rate-limited per listener: a flood of such connections
 * must not become a flood of log. */
static void log_unaccepted(wisp_listener *l, const char *peer, const char *event, const char *reason,
                           const char *limit) {
  uint64_t dropped;
  if (!wisp_log_limit_pass(&l->refusals, wisp_log_now(), &dropped)) return;
  wisp_json j;
  wisp_json_begin(&j, "conn");
  wisp_json_str(&j, "event", event);
  wisp_json_str(&j, "direction", l->dir == WISP_DIR_INBOUND ? "inbound" : "outbound");
  wisp_json_str(&j, "peer_addr", peer);
  wisp_json_str(&j, "reason", reason);
  wisp_json_str(&j, "limit", limit);
  if (dropped) wisp_json_int(&j, "suppressed", (int64_t)dropped);
  wisp_json_emit(&j);
}

/* |kind|: the reason's label (wisp_events). */
static void log_refused(wisp_listener *l, const char *peer, const char *kind, const char *reason) {
  l->px->stats.conns_refused++;
  wisp_events_refused(l->px->events, l->dir == WISP_DIR_INBOUND, kind, peer, NULL);
  log_unaccepted(l, peer, "refused", reason, NULL);
}

void wisp_conn_pending_sniff(wisp_conn_pending *p, int fd, double timeout, wisp_sniff_classifier classify,
                             size_t peek_max, wisp_sniff_cb cb) {
  wisp_proxy *px = p->l->px;
  wisp_list_push_front(&px->detecting, &p->link);
  p->sniff = classify ? wisp_sniff_start_with(px->loop, fd, timeout, classify, peek_max, cb, p)
                      : wisp_sniff_start(px->loop, fd, timeout, cb, p);
}

void wisp_conn_pending_done(wisp_conn_pending *p) {
  wisp_list_unlink(&p->link);
  p->sniff = NULL; /* freed by the sniffer as it calls back */
}

void wisp_conn_close_detecting(wisp_proxy *px) {
  WISP_LIST_FOREACH_SAFE(it, &px->detecting) {
    wisp_conn_pending *p = WISP_LIST_ELEM(it, wisp_conn_pending, link);
    wisp_sniff_cancel(p->sniff);
    wisp_conn_pending_done(p);
    wisp_connlimit_release(&p->slot);
    wisp_proxy_release_target(p->dst);
    free(p);
  }
}

void wisp_conn_accept_h2c(wisp_listener *l, wisp_target *dst, wisp_transport *tp, const char *peer,
                          wisp_connlimit_slot *slot, ev_tstamp accepted, bool h1_gateway) {
  wisp_conn *c = caller_new(l, dst, tp, peer, slot, accepted, ++l->px->next_conn_id);
  c->h1_gateway = h1_gateway;
  wisp_conn_rearm(c);
  /* What detection peeked at is read now: a refusal then closes with FIN,
   * not the RST a close with unread bytes makes. */
  wisp_h2conn_recv(&c->io);
}

typedef wisp_conn_pending outbound_sniff;

/* The whole HTTP/2 client preface goes to the L7 path, and so does an
 * HTTP/1 request line (wisp_h1_detect); anything else (or silence) is L4.
 * A route listener's callers speak HTTP: HTTP/1 goes
 * through wisp_h1, anything else to the HTTP/2 path, which refuses it as
 * it always did (bad preface, or no preface in time). */
static void on_outbound_sniffed(int fd, wisp_sniff_proto proto, void *arg) {
  outbound_sniff *o = arg;
  wisp_conn_pending_done(o);
  if (o->l->target && proto == WISP_SNIFF_HTTP1) {
    wisp_h1_accept(o->l, o->dst, fd, o->peer, &o->slot, o->accepted);
  } else if (proto == WISP_SNIFF_HTTP1 && o->l->px->cfg->transparent_http1) {
    /* transparent: HTTP/1 only with a whole request line, else L4. The
     * destination's sidecar speaks HTTP/1.1 to its app for it (told by
     * x-wisp-proto); --transparent-http1=false keeps it L4. */
    wisp_h1_detect(o->l, o->dst, fd, o->peer, &o->slot, o->accepted, WISP_DETECT_TIMEOUT);
  } else if (o->l->target && proto == WISP_SNIFF_CLOSED) {
    o->l->px->stats.conns_closed_early++;
    log_unaccepted(o->l, o->peer, "closed", "closed before sending a request (the peer sent nothing)", NULL);
  } else if (proto == WISP_SNIFF_HTTP2 || o->l->target) {
    wisp_transport tp;
    wisp_transport_init(&tp, fd);
    wisp_conn_accept_h2c(o->l, o->dst, &tp, o->peer, &o->slot, o->accepted, false);
  } else if (proto != WISP_SNIFF_CLOSED) {
    wisp_tunnel_outbound(o->l->px, fd, o->peer, o->dst, &o->slot);
  }
  wisp_connlimit_release(&o->slot); /* the caller left during detection */
  wisp_proxy_release_target(o->dst);
  free(o);
}

/* Where a connection's streams go: the listener's fixed target, or in
 * transparent mode its original destination (outbound: that address over
 * mTLS; inbound: the app on that port). A stand-in (wisp_target.refuse)
 * when there is none the caller could mean or no room for it, so it hears
 * why; NULL with |why| when the connection is refused at once. */
static wisp_target *destination(wisp_listener *l, int fd, const wisp_addr *peer, bool *probe, char *why,
                                size_t why_len) {
  if (l->target) return l->target;
  wisp_addr orig, local;
  bool redirected = wisp_net_original_dst(fd, &orig) == WISP_OK;
  if (wisp_net_local_addr(fd, &local) != WISP_OK || (!redirected && l->dir == WISP_DIR_OUTBOUND)) {
    snprintf(why, why_len, "no original destination (is the iptables REDIRECT in place?)");
    return NULL;
  }
  /* Inbound, an original destination that is the listener itself (no NAT
   * happened, or no conntrack entry at all) or another of our ports would
   * map to 127.0.0.1:<our port>: into the proxy again. */
  if (l->dir == WISP_DIR_INBOUND &&
      (!redirected || wisp_addr_equal(&orig, &local) || wisp_proxy_owns_port(l->px, wisp_addr_port(&orig)))) {
    return &l->px->direct;
  }
  const wisp_dataplane_hooks *hk = &l->px->hooks;
  if (l->dir == WISP_DIR_OUTBOUND && hk->probe_arrived && hk->probe_arrived(hk->ctx, &orig, peer)) {
    *probe = true; /* the interception check's own connection: done with */
    return NULL;
  }
  if (l->dir == WISP_DIR_OUTBOUND && wisp_addr_equal(&orig, &local)) {
    snprintf(why, why_len, "connected to the proxy's own port, not redirected: refusing to loop");
    return NULL;
  }
  return wisp_proxy_target_for(l->px, &orig, l->dir == WISP_DIR_OUTBOUND);
}

/* Closes a caller that would go past one of |l|'s connection limits, at
 * once (before any TLS), with a line naming the limit. */
static void refuse_over_limit(wisp_listener *l, int fd, const wisp_connlimit_key *src, const char *peer_str,
                              wisp_connlimit_result why) {
  const wisp_config *cfg = l->px->cfg;
  char reason[192], source[64];
  bool total = why == WISP_CONNLIMIT_TOTAL;
  l->px->stats.conns_limited[total ? 0 : 1]++;
  close(fd);
  if (total) {
    snprintf(reason, sizeof(reason), "the listener holds %d connections already (--max-connections)",
             cfg->max_connections);
  } else {
    wisp_connlimit_key_name(src, source, sizeof(source));
    snprintf(reason, sizeof(reason), "%s holds %d connections already (--max-connections-per-source)", source,
             cfg->max_connections_per_source);
  }
  log_unaccepted(l, peer_str, "refused", reason, total ? "max_connections" : "max_connections_per_source");
}

void wisp_conn_accept(wisp_listener *l, int fd, const wisp_addr *peer) {
  wisp_proxy *px = l->px;
  char peer_str[64], why[128];
  wisp_addr_format(peer, peer_str, sizeof(peer_str));
  wisp_connlimit_key src;
  wisp_connlimit_key_addr(&src, peer, (unsigned)px->cfg->ipv6_source_prefix);
  wisp_connlimit_slot slot;
  wisp_connlimit_result lim = wisp_connlimit_take(l->limit, &src, &slot);
  if (lim != WISP_CONNLIMIT_OK) {
    refuse_over_limit(l, fd, &src, peer_str, lim);
    return;
  }
  px->stats.conns_accepted++;
  bool probe = false;
  wisp_target *dst = destination(l, fd, peer, &probe, why, sizeof(why));
  if (!dst) {
    if (!probe) log_refused(l, peer_str, WISP_EVENTS_NO_DESTINATION, why);
    wisp_connlimit_release(&slot);
    close(fd);
    return;
  }
  if (dst->refuse) log_unaccepted(l, peer_str, dst == &px->direct ? "misdirected" : "unavailable", dst->refuse, NULL);
  if (l->dir == WISP_DIR_INBOUND) {
    wisp_conn_pending who = {.l = l, .dst = dst, .accepted = ev_now(px->loop)};
    wisp_connlimit_move(&who.slot, &slot);
    snprintf(who.peer, sizeof(who.peer), "%s", peer_str);
    wisp_handshake_accept(&who, fd); /* holds |dst| itself */
    return;
  }
  /* Transparent outbound: HTTP/2 goes to the L7 path, anything else is a
   * byte stream; server-first protocols on opaque ports skip detection.
   * A route: HTTP/2 or HTTP/1, told by the first bytes within the
   * handshake budget. */
  if (!l->target && wisp_config_port_opaque(px->cfg, wisp_addr_port(&dst->addr))) {
    wisp_tunnel_outbound(px, fd, peer_str, dst, &slot);
    return;
  }
  outbound_sniff *o = wisp_calloc(1, sizeof(*o));
  o->l = l;
  o->dst = dst;
  o->accepted = ev_now(px->loop);
  wisp_connlimit_move(&o->slot, &slot);
  wisp_proxy_hold_target(dst);
  snprintf(o->peer, sizeof(o->peer), "%s", peer_str);
  wisp_conn_pending_sniff(o, fd, l->target ? px->cfg->handshake_timeout : WISP_DETECT_TIMEOUT, NULL, 0,
                          on_outbound_sniffed);
}

wisp_conn *wisp_conn_connect(wisp_target *t, bool h1app, char *err, size_t err_len) {
  wisp_proxy *px = t->px;
  wisp_transport tp;
  if (h1app) {
    /* An HTTP/1.1 app is reached through a gateway that speaks HTTP/2 to
     * us over an in-process pipe. */
    wisp_transport_init_pipe(&tp, wisp_h1app_open(px, t));
  } else {
    int fd;
    if (wisp_net_connect(&fd, &t->addr) != WISP_OK) {
      snprintf(err, err_len, "cannot connect to %s: %s", t->name, strerror(errno));
      note_upfail(t, err);
      return NULL;
    }
    wisp_transport_init(&tp, fd);
  }
  wisp_conn *c = conn_new(px, &tp, true, t->tls ? WISP_DIR_OUTBOUND : WISP_DIR_INBOUND, WISP_H2CONN_CONNECTING,
                          ++px->next_conn_id);
  c->target = t;
  c->h1app = h1app;
  snprintf(c->peer_addr, sizeof(c->peer_addr), "%s", t->name);
  if (t->tls) {
    c->expect_id = t->expect_id ? wisp_strdup(t->expect_id) : NULL;
    c->io.verify.expect_id = c->expect_id;
    SSL *ssl = wisp_tls_new_ssl(px->tls, false, &c->io.verify);
    if (!ssl) {
      snprintf(err, err_len, "no certificate loaded yet");
      wisp_conn_close(c, NULL);
      return NULL;
    }
    wisp_transport_set0_tls(&c->io.tp, ssl, false);
  }
  px->stats.upstream_connects++;
  wisp_conn_rearm(c);
  return c;
}
