/* wisp_h2: nghttp2 sessions for wisp connections. The callbacks only route
 * events to wisp_stream; flow control is manual (no automatic WINDOW_UPDATE):
 * a window opens only when the other side has taken the bytes, which is
 * what makes backpressure end to end. */
#ifndef WISP_H2_H
#define WISP_H2_H

#include "proxy/dataplane/internal.h"

/* Returns a new session for |c| (server for downstream, client for
 * upstream) with our SETTINGS queued. Owned by |c|. */
nghttp2_session *wisp_h2_session_new(wisp_conn *c);

#endif
