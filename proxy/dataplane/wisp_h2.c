#include "proxy/dataplane/wisp_h2.h"

#include <stdlib.h>

#include "proxy/dataplane/wisp_conn.h"
#include "proxy/dataplane/wisp_pool.h"
#include "proxy/dataplane/wisp_stream.h"

/* nghttp2's reset limit, in multiples of --max-resets. */
#define WISP_H2_RESET_BACKSTOP 100

static wisp_side side_of(const wisp_conn *c) { return c->io.upstream ? WISP_UP : WISP_DOWN; }

static wisp_stream *stream_of(nghttp2_session *session, int32_t id) {
  return nghttp2_session_get_stream_user_data(session, id);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  wisp_conn *c = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  c->hdr_stream = NULL;
  if (c->io.upstream || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    wisp_stream *s = stream_of(session, frame->hd.stream_id);
    if (s) wisp_stream_on_begin_headers(s, side_of(c)); /* a response or trailers */
    c->hdr_stream = s;
    c->hdr_stream_id = frame->hd.stream_id;
    return 0;
  }
  if (c->draining || c->px->draining || !wisp_stream_admit(c)) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  wisp_conn_stream_opened(c);
  c->hdr_stream = wisp_stream_new(c, frame->hd.stream_id);
  c->hdr_stream_id = frame->hd.stream_id;
  return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
  wisp_conn *c = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  /* The block's stream, as on_begin_headers found it (else looked up). */
  wisp_stream *s = c->hdr_stream && c->hdr_stream_id == frame->hd.stream_id ? c->hdr_stream
                                                                            : stream_of(session, frame->hd.stream_id);
  if (!s) return 0;
  if (wisp_stream_on_header(s, side_of(c), frame->headers.cat, name, namelen, value, valuelen, flags) != WISP_OK)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets just this stream */
  return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  wisp_conn *c = user_data;
  bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
  wisp_stream *s;
  switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
      if (!c->got_preface) { /* the peer's first SETTINGS: its preface */
        c->got_preface = true;
        wisp_conn_rearm(c);
      }
      if (c->io.upstream) wisp_pool_wake(c->target); /* its stream limit may have changed */
      break;
    case NGHTTP2_GOAWAY:
      c->goaway = true;
      if (c->io.upstream) wisp_pool_wake(c->target); /* room for another connection */
      wisp_conn_mark_dirty(c);
      break;
    case NGHTTP2_RST_STREAM:
      /* Counted when the stream closes, right after (wisp_stream_on_close),
       * with every other premature reset: the closing says who. */
      if (!c->io.upstream && (s = stream_of(session, frame->hd.stream_id)) != NULL) s->reset_by_peer = true;
      break;
    case NGHTTP2_HEADERS:
      if ((s = stream_of(session, frame->hd.stream_id)) != NULL) wisp_stream_on_headers_done(s, side_of(c), end_stream);
      break;
    case NGHTTP2_DATA:
      if (end_stream && (s = stream_of(session, frame->hd.stream_id)) != NULL) wisp_stream_on_end(s, side_of(c));
      break;
    default:
      break;
  }
  return 0;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
                              size_t len, void *user_data) {
  wisp_conn *c = user_data;
  wisp_stream *s = stream_of(session, stream_id);
  if (s) {
    wisp_stream_on_data(s, side_of(c), data, len);
  } else {
    nghttp2_session_consume(session, stream_id, len); /* nobody wants it: keep the window open */
  }
  return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  wisp_conn *c = user_data;
  if (!c->io.upstream && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
      (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS)) {
    wisp_stream *s = stream_of(session, frame->hd.stream_id);
    if (s) wisp_stream_on_response_sent(s);
  }
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) {
  wisp_conn *c = user_data;
  wisp_stream *s = stream_of(session, stream_id);
  if (s) wisp_stream_on_close(s, side_of(c), error_code);
  return 0;
}

/* Built once for every worker thread (--workers), before the first one
 * starts (wisp_h2_prepare from wisp_proxy_init); read-only after. */
static nghttp2_session_callbacks *g_cbs;
static nghttp2_option *g_opt;

static void build_callbacks(void) {
  nghttp2_session_callbacks *cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0) abort();
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  g_cbs = cbs;
}

static nghttp2_option *build_options(const wisp_config *cfg) {
  nghttp2_option *opt;
  if (nghttp2_option_new(&opt) != 0) abort();
  nghttp2_option_set_no_auto_window_update(opt, 1);
  /* nghttp2's own reset limit (backported to Debian's 1.52) counts only
   * RST_STREAM frames it receives, per connection, and ends the session:
   * wisp counts every premature reset itself, per caller, and throttles a
   * peer sidecar's shared connection instead of cutting it, so nghttp2's is
   * set far above ours, a backstop against a flood no sidecar makes. */
  nghttp2_option_set_stream_reset_rate_limit(
      opt, WISP_H2_RESET_BACKSTOP * (uint64_t)cfg->max_resets,
      WISP_H2_RESET_BACKSTOP * (uint64_t)cfg->max_resets / WISP_RESET_WINDOW + 1);
  return opt;
}

void wisp_h2_prepare(const wisp_config *cfg) {
  if (g_cbs) return;
  build_callbacks();
  g_opt = build_options(cfg);
}

nghttp2_session *wisp_h2_session_new(wisp_conn *c) {
  nghttp2_session *s;
  /* Its streams, frames and header copies come from wisp_slab's freelists. */
  int rv = c->io.upstream ? nghttp2_session_client_new3(&s, g_cbs, c, g_opt, wisp_h2conn_mem())
                          : nghttp2_session_server_new3(&s, g_cbs, c, g_opt, wisp_h2conn_mem());
  if (rv != 0) abort(); /* only fails on out of memory */
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)c->px->cfg->max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WISP_H2_STREAM_WINDOW_MIN},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)c->px->cfg->max_header_list_size},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  /* A server must not send ENABLE_PUSH. */
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, c->io.upstream ? 4 : 3);
  nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, WISP_H2_CONN_WINDOW);
  return s;
}
