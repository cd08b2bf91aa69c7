/* wisp_h2conn: one TCP connection, plaintext or TLS behind lib/wisp_transport
 * (a table of function pointers, as valkey's ConnectionType), carrying one
 * nghttp2 session that does
 * no I/O itself: bytes in with mem_recv, out with mem_send (nghttp2's fuzz
 * target pattern). Used by wisp-proxy's data plane, wisp-agent's gRPC server
 * and the proxy's agent client alike.
 *
 * A wisp_h2conn is caller-allocated, embedded in its owner's struct, and
 * driven by a wisp_h2loop. Teardown is deferred out of nghttp2 callbacks:
 * wisp_h2conn_close marks the connection, and the loop's flush, run before
 * the loop sleeps, calls ops->on_teardown, after which the owner frees the
 * memory. The connection owns its fd, SSL and session; the owner creates the
 * session (its callbacks, its user_data) and hands it over with set0. */
#ifndef WISP_H2CONN_H
#define WISP_H2CONN_H

#include <stdbool.h>

#include <ev.h>
#include <nghttp2/nghttp2.h>

#include "lib/wisp_buf.h"
#include "lib/wisp_tls.h"
#include "lib/wisp_transport.h"

/* Bytes pulled from nghttp2 ahead of the socket. */
#define WISP_H2CONN_OUT_HIGH (64 * 1024)

typedef struct wisp_h2conn wisp_h2conn;

typedef enum {
  WISP_H2CONN_CONNECTING,
  WISP_H2CONN_HANDSHAKING,
  WISP_H2CONN_OPEN,
} wisp_h2conn_state;

typedef struct {
  /* The state changed (CONNECTING → HANDSHAKING → OPEN): re-arm timers. */
  void (*on_state)(wisp_h2conn *c);
  /* The peer closed the TCP connection in an orderly way. The owner closes
   * with the reason it thinks right (NULL: not worth a log line). */
  void (*on_eof)(wisp_h2conn *c);
  /* After a flush; the owner may decide the connection is done. */
  void (*on_flushed)(wisp_h2conn *c);
  /* |c| is being torn down: detach everything that points at it and free
   * the owner. Watchers are stopped and fd/SSL/session freed afterwards. */
  void (*on_teardown)(wisp_h2conn *c);
} wisp_h2conn_ops;

typedef struct wisp_h2loop {
  struct ev_loop *loop;
  wisp_h2conn *dirty; /* connections to flush before the loop sleeps */
  ev_prepare prepare;
  ev_idle idle;
  void (*before_flush)(struct wisp_h2loop *lp); /* optional, before each flush pass; may mark connections dirty */
  void (*before_sleep)(struct wisp_h2loop *lp); /* optional, after flushing */
  void *data;                                   /* the owner's */
  /* Optional, after each connection's flush wrote what nghttp2 gave: work
   * put off while |writing| (e.g. a stream that ended in that flush, and
   * its request log line) so that the bytes go first. */
  void (*after_write)(struct wisp_h2loop *lp);
  bool writing; /* in a connection's flush: its frames pulled from nghttp2 and written */
  /* In-process pipes on this loop (lib/wisp_pipe: the proxy's HTTP/1
   * gateways and their h2c connections): their due callbacks run in each
   * flush pass, so bytes written to one go through in this iteration. */
  wisp_pipe_sched pipes;
} wisp_h2loop;

struct wisp_h2conn {
  wisp_h2loop *lp;
  const wisp_h2conn_ops *ops;
  wisp_h2conn_state state;
  wisp_transport tp;      /* owned: the fd, and the SSL (NULL for plaintext); or a
                           * pipe end, watched through the pipe (no fd) */
  bool upstream;          /* we are the TLS client (and HTTP/2 client) */
  bool peer_optional;     /* server: a TLS client without a certificate is fine */
  wisp_tls_verify verify; /* borrowed by the transport's SSL during the handshake */
  ev_io rio, wio;
  nghttp2_session *h2; /* owned */
  wisp_buf out;        /* bytes pulled from nghttp2, not yet written */
  bool closing;
  bool dirty;
  wisp_h2conn *dirty_next;
  char close_reason[WISP_TLS_REASON_MAX];
};

/* Starts flushing dirty connections before |loop| sleeps. |lp| must be
 * zeroed first; set its hooks (before_flush, before_sleep, data) after. */
void wisp_h2loop_init(wisp_h2loop *lp, struct ev_loop *loop);
void wisp_h2loop_cleanup(wisp_h2loop *lp);
/* Flushes every dirty connection and tears down closed ones. */
void wisp_h2loop_flush(wisp_h2loop *lp);

/* Sets up |c| on |fd| (taken) with |ssl| (taken; NULL: plaintext), which
 * the transport puts on |fd| as the client if |upstream|, else the server.
 * |state| is CONNECTING for an outgoing connect, HANDSHAKING for an
 * accepted TLS socket, OPEN for accepted plaintext. */
void wisp_h2conn_init(wisp_h2conn *c, wisp_h2loop *lp, const wisp_h2conn_ops *ops, int fd, SSL *ssl, bool upstream,
                      wisp_h2conn_state state);
/* The same on a transport set up already (taken: wisp_transport_move), e.g.
 * a TLS connection whose handshake its previous owner finished (|state|
 * OPEN; the owner points the SSL at |c|'s verify with wisp_tls_set_verify). */
void wisp_h2conn_init_transport(wisp_h2conn *c, wisp_h2loop *lp, const wisp_h2conn_ops *ops, wisp_transport *tp,
                                bool upstream, wisp_h2conn_state state);
/* An allocator for nghttp2_session_*_new3: this thread's wisp_slab
 * freelists, so a session's per-stream allocations stop reaching malloc.
 * Sessions made with it must be freed on the same thread as the loop (as
 * they are: teardown). */
nghttp2_mem *wisp_h2conn_mem(void);
/* Takes ownership of |session|. It may come after init, as late as the
 * on_state that says OPEN; until then the connection reads and writes
 * nothing but its handshake. (wisp-proxy's inbound callers come with their
 * handshake done: proxy/dataplane/wisp_handshake, then init_transport.) */
void wisp_h2conn_set0_session(wisp_h2conn *c, nghttp2_session *session);

/* Schedules teardown; the first reason wins. |reason| NULL: orderly. */
void wisp_h2conn_close(wisp_h2conn *c, const char *reason);
void wisp_h2conn_closef(wisp_h2conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Asks for a flush of |c| before the loop sleeps. */
void wisp_h2conn_mark_dirty(wisp_h2conn *c);
/* Reads what the socket has now (e.g. bytes that arrived with the end of the
 * handshake) and feeds the session. */
void wisp_h2conn_recv(wisp_h2conn *c);

#endif
