/* wisp_stream: one proxied request, bridging a downstream HTTP/2 stream to
 * an upstream one. Headers, body and trailers flow through bounded buffers;
 * bytes are acknowledged (nghttp2_session_consume) to the side they came
 * from only when the other side has taken them, so a slow reader slows the
 * writer and memory per stream is bounded by the window we granted. Resets
 * are carried across; an upstream that cannot be reached or verified gets
 * the caller a 502/503 that says why, in words and in x-wisp-error. */
#ifndef WISP_STREAM_H
#define WISP_STREAM_H

#include "proxy/dataplane/internal.h"

/* Between sidecars: which caller connection of the sending sidecar a
 * request came from (an opaque number), for the wait queue's turns on the
 * receiving side (wisp_pool). Never passed on to an app. */
#define WISP_CALLER_HEADER "x-wisp-caller"
/* Between sidecars: the protocol the original caller spoke, when it was
 * HTTP/1 ("http/1.1" or "http/1.0"; absent: HTTP/2). Our HTTP/1 gateway
 * (wisp_h1) sets it on the requests it makes, the sending side passes it
 * to the peer sidecar, and the receiving side uses it to pick the app's
 * protocol per request (--app-protocol auto: HTTP/1.1 for an HTTP/1
 * caller, h2c otherwise). Taken only from our gateway (outbound) or an
 * mTLS peer (inbound); removed from every request, never passed on to an
 * app. A caller that sets it itself picks nothing but that. */
#define WISP_PROTO_HEADER "x-wisp-proto"
/* "h2", "http/1.0", "http/1.1": x-wisp-proto's values and the log's. */
const char *wisp_stream_proto_name(wisp_caller_proto p);
/* An x-wisp-proto value; anything unknown is HTTP/2 (ignored). */
wisp_caller_proto wisp_stream_proto_parse(const uint8_t *v, size_t len);

/* A request began on downstream connection |down|; the stream is attached
 * to it as nghttp2 stream user data and freed by the library's callbacks. */
wisp_stream *wisp_stream_new(wisp_conn *down, int32_t id);

/* Whether downstream connection |down| may start a stream: not while it or
 * the process holds its buffer budget of header and body bytes (the caller
 * then refuses it with REFUSED_STREAM; a rate-limited line says why). */
bool wisp_stream_admit(wisp_conn *down);
/* A header section (request, response or trailers) begins on |side|. */
void wisp_stream_on_begin_headers(wisp_stream *s, wisp_side side);
/* One decoded field, with nghttp2's on_header |flags| (a never-indexed
 * field is passed on never indexed); a section past --max-header-list-size
 * or the buffer budgets is not kept, and is answered when it ends
 * (on_headers_done). */
wisp_err wisp_stream_on_header(wisp_stream *s, wisp_side side, nghttp2_headers_category cat, const uint8_t *name,
                               size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags) WISP_MUST_CHECK;
void wisp_stream_on_headers_done(wisp_stream *s, wisp_side side, bool end_stream);
void wisp_stream_on_data(wisp_stream *s, wisp_side side, const uint8_t *data, size_t len);
void wisp_stream_on_end(wisp_stream *s, wisp_side side);
void wisp_stream_on_close(wisp_stream *s, wisp_side side, uint32_t error_code);
/* The last frame of the response went out downstream. */
void wisp_stream_on_response_sent(wisp_stream *s);

/* wisp_pool's answers for a waiting request: send it on |up| (a
 * connection with a free stream), or answer the caller |status| (gRPC:
 * UNAVAILABLE) with |reason| in words and in x-wisp-error. */
void wisp_stream_send_upstream(wisp_stream *s, wisp_conn *up);
void wisp_stream_unavailable(wisp_stream *s, int status, const char *reason);

/* Logs and frees the streams that ended in the connection flush that just
 * wrote (wisp_h2loop's after_write). */
void wisp_stream_after_write(wisp_proxy *px);

/* |c| is going away: every stream on it lets go of that side. */
void wisp_stream_conn_gone(wisp_conn *c);

/* Ends the callers' streams on which no byte moved either way for
 * --stream-idle-timeout: 408 before a response, else a reset. Visits only
 * those (px->idle_streams is in order of their last byte). */
void wisp_stream_sweep_idle(wisp_proxy *px);

#endif
