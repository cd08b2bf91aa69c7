/* wisp_conn: one TCP connection, plaintext or TLS behind a small transport
 * table (as valkey's ConnectionType), carrying one nghttp2 session that does
 * no I/O itself (bytes in with mem_recv, out with mem_send). Teardown is
 * deferred out of nghttp2 callbacks: wisp_conn_close marks the connection
 * and wisp_conn_flush_all, run before the loop sleeps, frees it. */
#ifndef WISP_CONN_H
#define WISP_CONN_H

#include "proxy/internal.h"

/* Takes ownership of |fd| (closed on failure). Inbound listeners start a TLS
 * handshake; outbound ones speak h2c at once. */
void wisp_conn_accept(wisp_listener *l, int fd, const wisp_addr *peer);

/* Starts a connection to |t| and returns it (owned by the proxy), or NULL
 * with |err| saying why. */
wisp_conn *wisp_conn_connect(wisp_target *t, char *err, size_t err_len);

/* Schedules teardown; the first reason wins. |reason| NULL: an orderly close
 * that is not logged. */
void wisp_conn_close(wisp_conn *c, const char *reason);
/* Sends GOAWAY and closes once the open streams end. */
void wisp_conn_drain(wisp_conn *c);

/* Asks for a flush of |c| before the loop sleeps. */
void wisp_conn_mark_dirty(wisp_conn *c);
/* Flushes every dirty connection and frees closed ones. */
void wisp_conn_flush_all(wisp_proxy *px);

/* A stream joined or left this connection (idle timer bookkeeping). */
void wisp_conn_stream_added(wisp_conn *c);
void wisp_conn_stream_removed(wisp_conn *c);
/* Re-evaluates which timeout applies now. */
void wisp_conn_rearm(wisp_conn *c);

/* The HTTP status a failed upstream connection maps to: 503 when it could
 * not be reached, 502 when it answered wrongly (TLS, identity, HTTP/2). */
int wisp_conn_fail_status(const wisp_conn *c);

#endif
