/* wisp_h1app: the inbound side's HTTP/1.1 apps (requests from HTTP/1
 * callers under --app-protocol auto, every request under http1).
 *
 * A pooled upstream connection to such an app is one end of an in-process
 * pipe (lib/wisp_pipe: no socket, no system calls);
 * on the other end a gateway serves HTTP/2 (nghttp2 server session) and
 * sends each stream to the app as an HTTP/1.1 request on a connection of
 * its own, kept alive and reused for the next stream when the app allows.
 * So the proxy's HTTP/2 path (policy, log, metrics, flow control) is
 * unchanged and the app sees plain HTTP/1.1: `Host` from :authority,
 * Content-Length or chunked bodies, trailers in a chunked body.
 *
 * Memory is bounded per stream: request bytes are acknowledged to the
 * HTTP/2 stream only as they move to the app's socket buffer, and the
 * app's socket is not read while WISP_H1APP_RESP_HIGH bytes of its
 * response wait for the stream's window.
 *
 * The gateway owns its end of the pipe, its session, its app connections
 * and its streams, and frees itself when the proxy closes the other end
 * (or at shutdown, through wisp_h1_close_all). */
#ifndef WISP_H1APP_H
#define WISP_H1APP_H

#include "proxy/dataplane/internal.h"

/* Response bytes held per stream before the app's socket is not read. */
#define WISP_H1APP_RESP_HIGH (64 * 1024)
/* Idle keep-alive connections to the app kept per gateway. */
#define WISP_H1APP_IDLE_MAX 16

/* Opens a gateway to |t|'s address and returns the other end of its pipe,
 * for the proxy's upstream connection (already connected; the caller takes
 * it: wisp_transport_init_pipe). The app itself is connected to per
 * request; that failing is the request's 503. */
wisp_pipe_end *wisp_h1app_open(wisp_proxy *px, const wisp_target *t);

#endif
