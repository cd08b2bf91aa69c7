/* wisp_h1: HTTP/1.0 and 1.1 callers of an outbound listener, carried as
 * HTTP/2 streams.
 *
 * An accepted HTTP/1 connection gets a gateway that parses its requests
 * (lib/wisp_h1parse: smuggling defences) and speaks them as HTTP/2 client
 * streams over one end of a socketpair; the other end is an ordinary h2c
 * caller of the listener (wisp_conn), so policy, the request log, metrics,
 * limits, the upstream pool and the 502/503 explanations are the HTTP/2
 * path's, unchanged. Responses go back in request order (pipelining), as
 * Content-Length, chunked (HTTP/1.1) or read-to-close (HTTP/1.0) bodies.
 *
 * Memory is bounded per connection: at most WISP_H1_PIPELINE requests in
 * flight; the client socket is not read while the request body waiting to
 * go upstream holds WISP_H1_BODY_HIGH bytes (so a full HTTP/2 window stops
 * reading the socket); response bytes are taken from their stream only as
 * they move to the client's socket buffer.
 *
 * The gateway owns both sockets, its nghttp2 client session and its
 * requests; it frees itself when either end closes. */
#ifndef WISP_H1_H
#define WISP_H1_H

#include "proxy/internal.h"

/* Requests a connection may have in flight (pipelined) before we stop
 * reading it. */
#define WISP_H1_PIPELINE 16
/* Request body bytes held per connection before its socket is not read. */
#define WISP_H1_BODY_HIGH (64 * 1024)

/* Takes |fd| (an accepted caller whose first bytes look like HTTP/1) and
 * the caller's |slot|; |accepted|: when it was accepted (its handshake
 * budget runs from then). */
void wisp_h1_accept(wisp_listener *l, wisp_target *dst, int fd, const char *peer, wisp_connlimit_slot *slot,
                    ev_tstamp accepted);

#endif
