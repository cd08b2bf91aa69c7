/* wisp_h1: HTTP/1.0 and 1.1 callers of an outbound listener, carried as
 * HTTP/2 streams.
 *
 * An accepted HTTP/1 connection gets a gateway that parses its requests
 * (lib/wisp_h1parse: smuggling defences) and speaks them as HTTP/2 client
 * streams over one end of an in-process pipe (lib/wisp_pipe: no socket, no
 * system calls); the other end is an ordinary h2c caller of the listener
 * (wisp_conn on a pipe transport), so policy, the request log, metrics,
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
 * The gateway owns the client's socket, its end of the pipe, its nghttp2
 * client session and its requests; it frees itself when either end
 * closes. One descriptor per caller: the pipe has none. */
#ifndef WISP_H1_H
#define WISP_H1_H

#include "proxy/dataplane/internal.h"

/* Requests a connection may have in flight (pipelined) before we stop
 * reading it. */
#define WISP_H1_PIPELINE 16
/* Request body bytes held per connection before its socket is not read. */
#define WISP_H1_BODY_HIGH (64 * 1024)

/* Every HTTP/1 gateway (this module's callers, wisp_h1app's apps) is on
 * the proxy's list, so the proxy can free those still open when it exits. */
typedef struct wisp_h1_gw {
  wisp_list link;                         /* in px->h1_gws */
  void (*free_fn)(struct wisp_h1_gw *gw); /* closes its sockets and frees it */
} wisp_h1_gw;
void wisp_h1_gw_add(wisp_proxy *px, wisp_h1_gw *gw, void (*free_fn)(wisp_h1_gw *gw));
void wisp_h1_gw_remove(wisp_proxy *px, wisp_h1_gw *gw);
/* Frees every gateway (proxy shutdown). */
void wisp_h1_close_all(wisp_proxy *px);

/* ---- what both gateways share ---- */

/* Hard cap on a gateway buffer: flow control keeps them far below it; it
 * only guards against a bug. */
#define WISP_H1_BUF_CAP (1024 * 1024)
/* Bytes waiting for a socket before no more are moved into its buffer. */
#define WISP_H1_OUT_HIGH (64 * 1024)

/* Writes |b| to the non-blocking socket |fd| until done or it would block
 * (an emptied buffer releases its storage); false on a hard error. */
bool wisp_h1_flush(int fd, wisp_buf *b);
/* Pulls what the session has to send into |out| (up to about
 * WISP_H1_OUT_HIGH) and writes it to the pipe end |e| (at most
 * WISP_PIPE_CAP waits in the pipe); false: the session failed or the
 * other end closed. */
bool wisp_h1_send(nghttp2_session *s, wisp_pipe_end *e, wisp_buf *out);
/* The option of a gateway's session: windows are returned by hand, as
 * bytes reach the other side's socket. */
nghttp2_option *wisp_h1_session_option(void);
bool wisp_h1_printf(wisp_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The lines of a head, appended without printf (whose format parsing cost
 * more than the rest of a response head, issue 15); each appends all or,
 * past WISP_H1_BUF_CAP, nothing (as wisp_h1_printf). wisp_h1_put_line: the
 * three pieces in a row; wisp_h1_put_field: "name: value\r\n" of |nv|;
 * wisp_h1_put_status_line: "HTTP/1.1 |status| reason\r\n". */
bool wisp_h1_put_line(wisp_buf *out, const char *a, size_t alen, const char *b, size_t blen, const char *c,
                      size_t clen);
bool wisp_h1_put_field(wisp_buf *out, const nghttp2_nv *nv);
bool wisp_h1_put_status_line(wisp_buf *out, int status);
/* Appends the string literal |lit|. */
#define WISP_H1_PUT_LIT(out, lit) wisp_h1_put_line((out), lit, sizeof(lit) - 1, "", 0, "", 0)
/* Writes "name: value" lines of |h| (pseudo-fields never). */
void wisp_h1_put_fields(wisp_buf *out, const wisp_hdrs *h);
/* Moves body bytes from |from| to |out| (as chunks when |chunked|) while
 * |out| holds less than WISP_H1_OUT_HIGH; returns how many it moved. */
size_t wisp_h1_put_body(wisp_buf *out, wisp_buf *from, bool chunked);
/* A data provider's work for stream |id|: up to |len| bytes of |from| into
 * |buf|; at its end (|eof|) the stream ends, with |trailers| if any;
 * NGHTTP2_ERR_DEFERRED while more is to come. */
ssize_t wisp_h1_provide(nghttp2_session *s, int32_t id, wisp_buf *from, bool eof, const wisp_hdrs *trailers,
                        uint8_t *buf, size_t len, uint32_t *flags);
/* An answer the proxy makes itself: |status|, |why| in x-wisp-error and as
 * the body, and "connection: close" (the connection ends after it). */
void wisp_h1_put_error(wisp_buf *out, int status, const char *why);
/* The end of a chunked body: the last chunk and |trailers|. */
void wisp_h1_put_last_chunk(wisp_buf *out, const wisp_hdrs *trailers);

/* Takes |fd| (an accepted caller whose first bytes look like HTTP/1) and
 * the caller's |slot|; |accepted|: when it was accepted (its handshake
 * budget runs from then). */
void wisp_h1_accept(wisp_listener *l, wisp_target *dst, int fd, const char *peer, wisp_connlimit_slot *slot,
                    ev_tstamp accepted);

/* Transparent outbound: a caller whose first word looked like an HTTP/1
 * method. Waits (up to |timeout| s) for its whole first line: a request
 * line goes to wisp_h1_accept, anything else to an L4 tunnel, as before.
 * Takes |fd| and |slot|; holds |dst| meanwhile. */
void wisp_h1_detect(wisp_listener *l, wisp_target *dst, int fd, const char *peer, wisp_connlimit_slot *slot,
                    ev_tstamp accepted, double timeout);

#endif
