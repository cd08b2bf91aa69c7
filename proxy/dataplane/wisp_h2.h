/* wisp_h2: nghttp2 sessions for wisp connections. The callbacks only route
 * events to wisp_stream; flow control is manual (no automatic WINDOW_UPDATE):
 * a window opens only when the other side has taken the bytes, which is
 * what makes backpressure end to end. */
#ifndef WISP_H2_H
#define WISP_H2_H

#include "proxy/dataplane/internal.h"

/* Builds the nghttp2 callbacks and options every session of the process
 * shares, from |cfg| (--max-resets): once, on the main thread before any
 * worker starts (wisp_proxy_init); later calls do nothing. */
void wisp_h2_prepare(const wisp_config *cfg);
/* Returns a new session for |c| (server for downstream, client for
 * upstream) with our SETTINGS queued. Owned by |c|. */
nghttp2_session *wisp_h2_session_new(wisp_conn *c);

#endif
