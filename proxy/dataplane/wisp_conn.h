/* wisp_conn: a proxy connection, downstream (a caller: we are its HTTP/2
 * server) or upstream (a pooled connection to a peer sidecar or the app).
 * The transport, the session and deferred teardown are lib/wisp_h2conn's;
 * this adds timeouts, stream bookkeeping, drain and the connection log. */
#ifndef WISP_CONN_H
#define WISP_CONN_H

#include "lib/wisp_sniff.h"
#include "proxy/dataplane/internal.h"

/* Takes ownership of |fd| (closed on failure). Inbound listeners start a TLS
 * handshake; outbound ones speak h2c at once. */
void wisp_conn_accept(wisp_listener *l, int fd, const wisp_addr *peer);

/* A caller whose protocol is still being detected: what its connection
 * will need once that is decided (the sniffers' argument). */
typedef struct {
  wisp_listener *l;
  wisp_target *dst; /* held while detecting */
  char peer[64];
  wisp_connlimit_slot slot;
  ev_tstamp accepted;
  wisp_sniff *sniff; /* its detection, while it runs */
  wisp_list link;    /* px->detecting, while it runs */
} wisp_conn_pending;

/* Starts telling |p|'s protocol on |fd| (taken) with |classify| (NULL:
 * wisp_sniff_classify), tracked in px->detecting until |cb| runs, which
 * first calls wisp_conn_pending_done. */
void wisp_conn_pending_sniff(wisp_conn_pending *p, int fd, double timeout, wisp_sniff_classifier classify,
                             size_t peek_max, wisp_sniff_cb cb);
/* Its detection ended: no longer tracked. */
void wisp_conn_pending_done(wisp_conn_pending *p);
/* Closes every caller still being detected and frees what it held, not
 * logged (drain, shutdown): none starts a handshake or a connection after. */
void wisp_conn_close_detecting(wisp_proxy *px);

/* Serves |tp| (taken: a plain socket, or a pipe end) as an h2c caller of
 * outbound listener |l| going to |dst|, taking |slot|; |accepted|: when its
 * handshake budget began; |h1_gateway|: |tp| is wisp_h1's pipe, whose
 * x-wisp-proto is trusted. */
void wisp_conn_accept_h2c(wisp_listener *l, wisp_target *dst, wisp_transport *tp, const char *peer,
                          wisp_connlimit_slot *slot, ev_tstamp accepted, bool h1_gateway);

/* Serves an inbound caller whose first bytes were not TLS (wisp_handshake)
 * as h2c, with connection id |id|, taking |fd| and |who->slot|: without a
 * principal in PERMISSIVE mode (policy still decides), refused in STRICT.
 * It holds |who->dst| itself. */
void wisp_conn_accept_plain(wisp_conn_pending *who, uint64_t id, int fd);

/* Serves an inbound mTLS caller whose handshake finished (wisp_handshake)
 * and chose HTTP/2, with connection id |id|: takes |tp| and |who->slot|,
 * holds |who->dst| itself, copies |v| (the peer's identity) and points the
 * SSL at its copy. */
void wisp_conn_accept_tls(wisp_conn_pending *who, uint64_t id, wisp_transport *tp, const wisp_tls_verify *v);

/* Starts a connection to |t| and returns it (owned by the proxy), or NULL
 * with |err| saying why; |h1app|: to an app, through an HTTP/1.1 gateway
 * (wisp_h1app) instead of h2c. */
wisp_conn *wisp_conn_connect(wisp_target *t, bool h1app, char *err, size_t err_len);

/* Schedules teardown; the first reason wins. |reason| NULL: an orderly close
 * that is not logged. */
static inline void wisp_conn_close(wisp_conn *c, const char *reason) { wisp_h2conn_close(&c->io, reason); }
/* Ends |c| at once for misbehaving: GOAWAY with |code|, then the
 * connection is closed and logged with |reason| (static), within a second
 * even if the peer does not read. */
void wisp_conn_terminate(wisp_conn *c, uint32_t code, const char *reason);
/* Sends GOAWAY and closes once the open streams end. */
void wisp_conn_drain(wisp_conn *c);

/* Asks for a flush of |c| before the loop sleeps. */
static inline void wisp_conn_mark_dirty(wisp_conn *c) { wisp_h2conn_mark_dirty(&c->io); }

/* A stream joined or left this connection (idle timer bookkeeping). */
void wisp_conn_stream_added(wisp_conn *c);
void wisp_conn_stream_removed(wisp_conn *c);
/* Downstream: one of the caller's streams ended complete; or early
 * because of it (|by_peer|: it sent RST_STREAM; else it broke the protocol
 * on the stream and nghttp2 reset it). Past its --max-resets the caller's
 * connection is cut, or, if it is a peer sidecar's mTLS connection (shared
 * by many callers), throttled (wisp_conn_upstream_share). */
void wisp_conn_stream_completed(wisp_conn *c);
/* Downstream: the caller opens a stream (its upstream share depends on its
 * record from now on). */
void wisp_conn_stream_opened(wisp_conn *c);
void wisp_conn_premature_reset(wisp_conn *c, bool by_peer);
/* Inbound: a stream of |c| carried x-wisp-caller tag |tag| (nonzero). A
 * connection that carried more than one distinct tag multiplexes callers. */
void wisp_conn_caller_tagged(wisp_conn *c, uint64_t tag);
/* Upstream streams caller connection |c| may hold now: its
 * --max-upstream-per-caller, less once its caller's --max-resets budget
 * runs low (wisp_conn.c). */
int wisp_conn_upstream_share(const wisp_conn *c);
/* A waiting request of |c| is held back by its caller's --max-resets
 * budget, not by --max-upstream-per-caller (for its 503's reason). */
bool wisp_conn_over_resets(const wisp_conn *c);
/* Whether the request line of an answer wisp makes itself to caller |c|
 * (|denial|: a policy refusal) is written: bounded per source address
 * (wisp_resetlim_line_pass). True: |*dropped| of its lines were dropped
 * since the last one. */
bool wisp_conn_answer_line(wisp_conn *c, bool denial, uint64_t *dropped);
/* Seconds until |c|'s address may send a probe upstream (0: now). */
double wisp_conn_probe_wait(const wisp_conn *c);
/* Stream |s| of caller connection |c| starts (|holds|) or stops holding an
 * upstream stream: counted in its source's share (--inbound) and, while
 * |c| is untrusted, in its budget-bound one; |s| remembers which. */
void wisp_conn_upstream_held(wisp_conn *c, wisp_stream *s, bool holds);
/* Re-evaluates which timeout applies now. */
void wisp_conn_rearm(wisp_conn *c);

/* The HTTP status a failed upstream connection maps to: 503 when it could
 * not be reached, 502 when it answered wrongly (TLS, identity, HTTP/2). */
int wisp_conn_fail_status(const wisp_conn *c);

#endif
