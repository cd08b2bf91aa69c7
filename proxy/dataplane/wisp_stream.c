#include "proxy/dataplane/wisp_stream.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/wisp_grpc.h"
#include "lib/wisp_json.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_slab.h"
#include "lib/wisp_path.h"
#include "lib/wisp_policy.h"
#include "proxy/dataplane/wisp_conn.h"
#include "proxy/wisp_authz.h"
#include "proxy/dataplane/wisp_events.h"
#include "proxy/dataplane/wisp_metrics.h"
#include "proxy/dataplane/wisp_trace.h"
#include "proxy/dataplane/wisp_pool.h"

/* Flow control keeps a stream's buffer under the window we granted; this
 * hard cap only guards against a bug, never a peer. */
#define WISP_BODY_LIMIT (2 * WISP_H2_STREAM_WINDOW)
/* Request bytes we read and drop after a complete response before asking
 * the client to stop sending. */
#define WISP_DISCARD_BEFORE_RESET (64 * 1024)
/* Seconds between our own answer to an unfinished request and the
 * RST_STREAM(NO_ERROR) that ends it (wisp_stream_on_response_sent). */
#define WISP_STOP_REQUEST_DELAY 0.5

static ssize_t provide_down(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                            nghttp2_data_source *src, void *user_data);
static ssize_t provide_up(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                          nghttp2_data_source *src, void *user_data);
static void dispatch(wisp_stream *s);
static void forget_log_fields(wisp_stream *s, const wisp_hdrs *h);

/* ---- buffer budgets ----
 * Body bytes wait in a stream's buffer until the other side takes them.
 * Per stream that is bounded by the window we granted: 64 KiB to start,
 * 256 KiB once the reader has taken more than 64 KiB (so a stream whose
 * reader never reads, a zero-window reader, holds 64 KiB). The extra
 * windows of a caller's streams, both ways, come out of its
 * --conn-buffer-limit.
 * Bytes a caller sends that wait here count against the same budget: past
 * it, the caller's connection-level window is no longer returned, so it
 * stops sending instead of us buffering. Only the caller's own connection
 * is held back that way. Bytes from a shared upstream connection never hold
 * back its connection window (one slow reader would stall every stream on
 * it: head-of-line blocking across callers); what they can make us buffer
 * is their streams' windows, which the budget already limits. A peer
 * sidecar's pooled connection is a caller too: the default budget (4 MiB)
 * is above what its streams need while they are read (64 KiB each), so it
 * is only held back when the app behind us stops reading many uploads.
 * All of it counts against --buffer-limit: past it, new requests get 503. */

static const wisp_config *cfg_of(const wisp_stream *s) { return s->target->px->cfg; }

/* The caller's connection window held back while it was over budget, once
 * it is back under. */
static void return_owed_window(wisp_conn *caller) {
  if (caller->window_owed == 0 || caller->buffered_in > caller->px->cfg->conn_buffer_limit) return;
  nghttp2_session_consume_connection(caller->io.h2, caller->window_owed);
  caller->window_owed = 0;
  wisp_conn_mark_dirty(caller);
}

/* |delta| more (or fewer) bytes from |side| wait in |s|'s buffer. */
static void account(wisp_stream *s, wisp_side side, ssize_t delta) {
  wisp_conn *caller = s->link[WISP_DOWN].conn;
  s->target->px->buffered += (size_t)delta;
  if (side != WISP_DOWN || !caller) return;
  caller->buffered_in += (size_t)delta;
  if (delta < 0) return_owed_window(caller);
}

/* The connection window for |len| bytes from |side| that now wait in a
 * buffer: returned at once, unless they came from an over-budget caller. */
static void conn_window_for(wisp_stream *s, wisp_side side, size_t len) {
  wisp_conn *in = s->link[side].conn;
  if (!in) return;
  if (side == WISP_DOWN && in->buffered_in > cfg_of(s)->conn_buffer_limit) {
    in->window_owed += len;
    return;
  }
  nghttp2_session_consume_connection(in->io.h2, len);
}

static wisp_err body_append(wisp_stream *s, wisp_side side, const void *data, size_t len) {
  WISP_GUARD(wisp_buf_append(&s->body[side], data, len, WISP_BODY_LIMIT));
  account(s, side, (ssize_t)len);
  return WISP_OK;
}

static size_t body_read(wisp_stream *s, wisp_side side, uint8_t *buf, size_t len) {
  size_t n = wisp_buf_read(&s->body[side], buf, len);
  account(s, side, -(ssize_t)n);
  s->taken[side] += n;
  return n;
}

static void body_drop(wisp_stream *s, wisp_side side) {
  account(s, side, -(ssize_t)wisp_buf_len(&s->body[side]));
  wisp_buf_cleanup(&s->body[side]);
}

#define WISP_WINDOW_EXTRA ((size_t)(WISP_H2_STREAM_WINDOW - WISP_H2_STREAM_WINDOW_MIN))

/* Raises |side|'s window to WISP_H2_STREAM_WINDOW once its reader has
 * taken more than the first window (a peer that buffers without reading
 * takes no more than that), if the caller's budget and the process's have
 * room. */
static void maybe_grow(wisp_stream *s, wisp_side side) {
  wisp_conn *c = s->link[side].conn, *caller = s->link[WISP_DOWN].conn;
  const wisp_config *cfg = cfg_of(s);
  if (s->grown[side] || !c || !caller || s->eof[side] || s->taken[side] <= WISP_H2_STREAM_WINDOW_MIN) return;
  if (caller->granted + WISP_WINDOW_EXTRA > cfg->conn_buffer_limit) return;
  if (s->target->px->buffered + WISP_WINDOW_EXTRA > cfg->buffer_limit) return;
  if (nghttp2_session_set_local_window_size(c->io.h2, NGHTTP2_FLAG_NONE, s->link[side].id, WISP_H2_STREAM_WINDOW) != 0)
    return;
  s->grown[side] = true;
  caller->granted += WISP_WINDOW_EXTRA;
  wisp_conn_mark_dirty(c);
}

static void release_grant(wisp_stream *s, wisp_side side) {
  wisp_conn *caller = s->link[WISP_DOWN].conn;
  if (!s->grown[side]) return;
  s->grown[side] = false;
  if (caller) caller->granted -= WISP_WINDOW_EXTRA;
}

/* |side| of |s| is let go of: its grant ends; when the caller goes, what
 * it sent stops counting against it (the bytes still count for the
 * process until they leave). */
static void budget_unlink(wisp_stream *s, wisp_side side) {
  release_grant(s, WISP_UP);
  if (side != WISP_DOWN) return;
  release_grant(s, WISP_DOWN);
  wisp_conn *caller = s->link[WISP_DOWN].conn;
  caller->buffered_in -= wisp_buf_len(&s->body[WISP_DOWN]);
  caller->hdr_held -= s->hdr_held;
  return_owed_window(caller);
}

/* ---- header budgets ----
 * A decoded header or trailer field costs name + value + 32 bytes (RFC
 * 7541 4.1, as nghttp2 and Envoy count). HPACK lets a few wire bytes
 * decode to a whole --max-header-list-size section, and a stream holds its
 * sections until it is freed, so what streams hold counts against the same
 * budgets as body bytes: the caller's --conn-buffer-limit and the
 * process's --buffer-limit. A caller at either gets no new stream
 * (REFUSED_STREAM: nothing was done, it may retry); a section that would
 * take it past them is dropped and its stream refused too, so memory stops
 * growing instead of being taken from other callers. */
#define WISP_HDR_FIELD_OVERHEAD 32

static void hdr_charge(wisp_stream *s, ssize_t delta) {
  wisp_conn *caller = s->link[WISP_DOWN].conn;
  s->hdr_held += (size_t)delta;
  s->target->px->hdr_held += (size_t)delta;
  if (caller) caller->hdr_held += (size_t)delta;
}

/* Frees |h|, one of |s|'s header lists, and its charge. */
static void hdrs_release(wisp_stream *s, wisp_hdrs *h) {
  size_t cost = h->bytes + h->n * WISP_HDR_FIELD_OVERHEAD;
  hdr_charge(s, -(ssize_t)(cost < s->hdr_held ? cost : s->hdr_held));
  wisp_hdrs_cleanup(h);
  forget_log_fields(s, h);
}

/* Which budget |more| bytes held for |caller| (NULL: gone) would overrun,
 * or NULL. */
static const char *budget_spent(const wisp_proxy *px, const wisp_conn *caller, size_t more) {
  const wisp_config *cfg = px->cfg;
  if (caller && caller->hdr_held + caller->buffered_in + more > cfg->conn_buffer_limit)
    return "the caller's connection holds its --conn-buffer-limit of header and body bytes";
  if (px->hdr_held + px->buffered + more > cfg->buffer_limit)
    return "the proxy holds its --buffer-limit of header and body bytes";
  return NULL;
}

/* Lines of refused streams: a caller can send HEADERS as fast as it likes. */
#define WISP_REFUSED_LOG_BURST 10
#define WISP_REFUSED_LOG_WINDOW 1.0

bool wisp_stream_admit(wisp_conn *down) {
  static _Thread_local wisp_log_limit lines =
      WISP_LOG_LIMIT_INIT("stream_refused lines", WISP_REFUSED_LOG_BURST, WISP_REFUSED_LOG_WINDOW, WISP_LOG_TO_STDOUT);
  const char *why = budget_spent(down->px, down, 1);
  uint64_t suppressed = 0;
  if (!why) return true;
  down->px->stats.streams_refused++;
  if (!wisp_log_limit_pass(&lines, wisp_log_now(), &suppressed)) return false;
  wisp_json j;
  wisp_json_begin(&j, "stream_refused");
  wisp_json_int(&j, "conn", (int64_t)down->id);
  wisp_json_str(&j, "peer_addr", down->peer_addr);
  wisp_json_str(&j, "reason", why);
  if (suppressed) wisp_json_int(&j, "suppressed", (int64_t)suppressed);
  wisp_json_emit(&j);
  return false;
}

/* ---- --stream-idle-timeout ----
 * Only the request head had a deadline: a body trickled at 1 byte / 5 s,
 * a caller that opened streams and sent nothing more, or one that stopped
 * reading held its upstream streams for good (450 such HTTP/1 callers held
 * all 400 pooled streams: a good caller got 70%). As Envoy's
 * stream_idle_timeout, a caller's stream on which no byte moved either way
 * (headers, body, trailers; received or sent on) for the timeout ends: 408
 * (gRPC DEADLINE_EXCEEDED) and its upstream stream cancelled, or, once its
 * response started, reset both ways (CANCEL); a 408 the caller leaves
 * unread for another timeout is reset too. The request log line and
 * wisp_stream_idle_timeouts_total say why.
 * No timer per request: px->idle_streams holds the callers' streams in the
 * order of their last byte (a byte moves its stream to the back), so a
 * sweep a few times per timeout visits only those idle and stops at the
 * first that is not. */

static void idle_touch(wisp_stream *s) {
  wisp_proxy *px = s->target->px;
  if (!wisp_list_linked(&s->idle_link)) return; /* its caller is gone */
  s->progress = ev_now(px->loop);
  if (px->idle_streams.prev == &s->idle_link) return; /* already the last */
  wisp_list_unlink(&s->idle_link);
  wisp_list_push_back(&px->idle_streams, &s->idle_link);
}

static void reset_side(wisp_stream *s, wisp_side side, uint32_t code);
static void respond_error(wisp_stream *s, int status, wisp_grpc_status grpc_code, const char *reason);

/* Why the stream failed, for its log line: allocated only when something
 * fails (a stream held 512 bytes for it, and 2 KiB for a peer ID, before:
 * 50,000 held streams cost 130 MB for those alone). The last reason wins. */
static void set_error(wisp_stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(wisp_stream *s, const char *fmt, ...) {
  char why[WISP_TLS_REASON_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  free(s->error);
  s->error = wisp_strdup(why);
}

static void idle_end(wisp_stream *s, double timeout) {
  char why[WISP_TLS_REASON_MAX];
  snprintf(why, sizeof(why), "stream idle: no byte moved either way for --stream-idle-timeout (%gs)", timeout);
  if (!s->idle_ended) s->target->px->stats.idle_timeouts++;
  s->idle_ended = true;
  if (!s->resp_started) {
    respond_error(s, 408, WISP_GRPC_DEADLINE_EXCEEDED, why);
  } else {
    set_error(s, "%s", why);
    reset_side(s, WISP_DOWN, s->resp_done ? NGHTTP2_NO_ERROR : NGHTTP2_CANCEL);
  }
  reset_side(s, WISP_UP, NGHTTP2_CANCEL);
}

void wisp_stream_sweep_idle(wisp_proxy *px) {
  double timeout = px->cfg->stream_idle_timeout;
  ev_tstamp now = ev_now(px->loop);
  /* Each stream visited goes to the back with a fresh time (its 408 gets a
   * timeout of its own to be read), or is gone: the loop ends within the
   * streams that were idle when it began. Ending one only submits frames
   * (sent, and streams closed, when the loop flushes): none is freed here. */
  while (!wisp_list_empty(&px->idle_streams)) {
    wisp_stream *s = WISP_LIST_ELEM(px->idle_streams.next, wisp_stream, idle_link);
    if (now - s->progress < timeout) break;
    idle_touch(s);
    if (!s->waiting) idle_end(s, timeout); /* a waiting one has --queue-timeout */
  }
}

/* ---- links between a stream and its connections ---- */

/* Its caller's count of upstream streams (--max-upstream-per-caller). */
static void count_up(wisp_stream *s, bool holds) {
  wisp_conn *down = s->link[WISP_DOWN].conn;
  if (!down || s->counted_up == holds) return;
  s->counted_up = holds;
  down->nupstream += holds ? 1 : -1;
  wisp_conn_upstream_held(down, s, holds);
}

static void link_side(wisp_stream *s, wisp_side side, wisp_conn *c, int32_t id) {
  wisp_stream_link *l = &s->link[side];
  l->conn = c;
  l->id = id;
  l->prev = NULL;
  l->next = c->streams;
  if (c->streams) c->streams->link[side].prev = s;
  c->streams = s;
  wisp_conn_stream_added(c);
  if (side == WISP_UP) count_up(s, true);
}

/* The peer ID lives in connection |c|, which the stream leaves now: a copy
 * of its own if it stays linked to the other side (and may outlive |c|).
 * Unlinked from both, it is freed (maybe_free) before |c| is. */
static void keep_peer_id(wisp_stream *s, wisp_side side, const wisp_conn *c) {
  if (s->peer_id != c->io.verify.peer.id || !s->link[WISP_OTHER(side)].conn) return;
  /* Per request outbound (the response outlives its upstream stream): from
   * the freelists, as the stream is. */
  size_t len = strlen(s->peer_id) + 1;
  s->peer_id_copy = memcpy(wisp_slab_alloc(len), s->peer_id, len);
  s->peer_id = s->peer_id_copy;
}

static void unlink_side(wisp_stream *s, wisp_side side) {
  wisp_stream_link *l = &s->link[side];
  wisp_conn *c = l->conn;
  if (!c) return;
  if (side == WISP_DOWN) {
    wisp_pool_dequeue(s);                       /* its caller is gone: it never goes upstream */
    wisp_list_unlink(&s->idle_link);            /* nor is it a caller's stream that may idle */
    ev_timer_stop(c->px->loop, &s->wait_timer); /* nor reset after our answer */
  }
  count_up(s, false);
  budget_unlink(s, side);
  keep_peer_id(s, side, c);
  if (l->prev) {
    l->prev->link[side].next = l->next;
  } else {
    c->streams = l->next;
  }
  if (l->next) l->next->link[side].prev = l->prev;
  memset(l, 0, sizeof(*l));
  if (c->hdr_stream == s) c->hdr_stream = NULL;
  wisp_conn_stream_removed(c);
  if (side == WISP_UP) wisp_pool_wake(s->target); /* a stream slot is free */
}

/* Tells |side|'s peer it may send |n| more bytes on this stream (the
 * connection window: conn_window_for). */
static void ack_bytes(wisp_stream *s, wisp_side side, size_t n) {
  wisp_conn *c = s->link[side].conn;
  if (!c || n == 0) return;
  nghttp2_session_consume_stream(c->io.h2, s->link[side].id, n);
  wisp_conn_mark_dirty(c);
}

/* Drops what |side| sent that nobody will read, returning its window. */
static void discard_body(wisp_stream *s, wisp_side side) {
  ack_bytes(s, side, wisp_buf_len(&s->body[side]));
  body_drop(s, side);
}

static void reset_side(wisp_stream *s, wisp_side side, uint32_t code) {
  wisp_conn *c = s->link[side].conn;
  if (!c) return;
  if (side == WISP_DOWN) s->reset_by_us = true; /* not the caller's doing: not counted against it */
  nghttp2_submit_rst_stream(c->io.h2, NGHTTP2_FLAG_NONE, s->link[side].id, code);
  wisp_conn_mark_dirty(c);
}

static void resume(wisp_stream *s, wisp_side side) {
  wisp_conn *c = s->link[side].conn;
  if (!c) return;
  nghttp2_session_resume_data(c->io.h2, s->link[side].id); /* fails harmlessly if not deferred */
  wisp_conn_mark_dirty(c);
}

/* ---- the log line ----
 * The header fields it reads are noted as they arrive (their place in
 * their list, s->log_field: index + 1), so the line is written without
 * searching the headers again or measuring their values. The request's
 * own handling reads the ones it needs the same way (:method, :path,
 * content-type, expect, the response's :status). */

enum {
  LF_AUTHORITY,
  LF_HOST,
  LF_METHOD,
  LF_PATH,
  LF_TRACEPARENT,
  LF_B3,
  LF_X_B3_TRACEID,
  LF_STATUS,
  LF_GRPC_STATUS,
  LF_GRPC_STATUS_TRAILER,
  LF_CONTENT_TYPE,
  LF_EXPECT,
  LF_COUNT
};
_Static_assert(LF_COUNT == WISP_LOG_FIELDS, "internal.h sizes wisp_stream's log_field");
_Static_assert(WISP_HDRS_MAX_FIELDS < 256, "an index + 1 fits a uint8_t");

static const struct {
  const char *name;
  size_t len;
  wisp_side side;
  bool trailer;
} kLogFields[LF_COUNT] = {
#define LF(name, side, trailer) \
  { name, sizeof(name) - 1, side, trailer }
    [LF_AUTHORITY] = LF(":authority", WISP_DOWN, false),
    [LF_HOST] = LF("host", WISP_DOWN, false),
    [LF_METHOD] = LF(":method", WISP_DOWN, false),
    [LF_PATH] = LF(":path", WISP_DOWN, false),
    [LF_TRACEPARENT] = LF("traceparent", WISP_DOWN, false),
    [LF_B3] = LF("b3", WISP_DOWN, false),
    [LF_X_B3_TRACEID] = LF("x-b3-traceid", WISP_DOWN, false),
    [LF_STATUS] = LF(":status", WISP_UP, false),
    [LF_GRPC_STATUS] = LF("grpc-status", WISP_UP, false),
    [LF_GRPC_STATUS_TRAILER] = LF("grpc-status", WISP_UP, true),
    [LF_CONTENT_TYPE] = LF("content-type", WISP_DOWN, false),
    [LF_EXPECT] = LF("expect", WISP_DOWN, false),
#undef LF
};

static const wisp_hdrs *log_list(const wisp_stream *s, int f) {
  return kLogFields[f].trailer ? &s->trailers[kLogFields[f].side] : &s->hdrs[kLogFields[f].side];
}

/* The field just added as the last of its list: noted if it is the first
 * of its name there (as wisp_hdrs_get finds). Runs for every field: a
 * switch on the length, then names of that length compared at a constant
 * length (the compiler compares words; no call to memcmp). */
static void note_log_field(wisp_stream *s, wisp_side side, bool trailer, const uint8_t *name, size_t len) {
#define IS(lit) (memcmp(name, lit, sizeof(lit) - 1) == 0)
  int f;
  switch (len) {
    case 2:
      f = IS("b3") ? LF_B3 : -1;
      break;
    case 4:
      f = IS("host") ? LF_HOST : -1;
      break;
    case 5:
      f = IS(":path") ? LF_PATH : -1;
      break;
    case 6:
      f = IS("expect") ? LF_EXPECT : -1;
      break;
    case 7:
      f = IS(":method") ? LF_METHOD : IS(":status") ? LF_STATUS : -1;
      break;
    case 10:
      f = IS(":authority") ? LF_AUTHORITY : -1;
      break;
    case 11:
      f = IS("traceparent")    ? LF_TRACEPARENT
          : !IS("grpc-status") ? -1
          : trailer            ? LF_GRPC_STATUS_TRAILER
                               : LF_GRPC_STATUS;
      break;
    case 12:
      f = IS("x-b3-traceid") ? LF_X_B3_TRACEID : IS("content-type") ? LF_CONTENT_TYPE : -1;
      break;
    default:
      return;
  }
#undef IS
  if (f < 0 || kLogFields[f].side != side || kLogFields[f].trailer != trailer) return;
  if (s->log_field[f] == 0) s->log_field[f] = (uint8_t)log_list(s, f)->n;
}

/* |h| was emptied: what was noted in it is gone. */
static void forget_log_fields(wisp_stream *s, const wisp_hdrs *h) {
  for (int f = 0; f < LF_COUNT; f++)
    if (log_list(s, f) == h) s->log_field[f] = 0;
}

/* The noted field |f|, or NULL. wisp_hdrs_set changes a value in place,
 * so what is found is the value now. */
static const nghttp2_nv *log_nv(const wisp_stream *s, int f) {
  const wisp_hdrs *h = log_list(s, f);
  size_t i = s->log_field[f];
  if (i == 0 || i > h->n) return NULL;
  const nghttp2_nv *nv = &h->nv[i - 1];
  assert(nv->namelen == kLogFields[f].len && memcmp(nv->name, kLogFields[f].name, nv->namelen) == 0);
  return nv;
}

static const char *log_value(const wisp_stream *s, int f) {
  const nghttp2_nv *nv = log_nv(s, f);
  return nv ? (const char *)nv->value : NULL;
}

static void log_str(wisp_json *j, const char *key, const wisp_stream *s, int f) {
  const nghttp2_nv *nv = log_nv(s, f);
  if (nv) wisp_json_strn(j, key, (const char *)nv->value, nv->valuelen);
}

static int status_of(const wisp_stream *s) {
  if (s->status) return s->status;
  const char *st = log_value(s, LF_STATUS);
  return st ? atoi(st) : 0;
}

/* The response's gRPC status (trailers, else a trailers-only response's
 * headers), or the one we answered with, or -1. A grpc-status that is not a
 * decimal code is UNKNOWN (as gRPC's C core and grpc-js read it), never 0
 * (OK), and |*junk| points at it for the log. */
static int grpc_status_of(const wisp_stream *s, const char **junk) {
  *junk = NULL;
  const nghttp2_nv *nv = log_nv(s, LF_GRPC_STATUS_TRAILER);
  if (!nv) nv = log_nv(s, LF_GRPC_STATUS);
  if (!nv) return s->grpc_status;
  wisp_grpc_status code;
  if (wisp_grpc_status_parse(&code, (const char *)nv->value, nv->valuelen) == WISP_OK) return (int)code;
  *junk = (const char *)nv->value;
  return WISP_GRPC_UNKNOWN;
}

/* Lines of requests that ended before any response (reset, or their
 * connection gone): a caller can make them as fast as it can send
 * HEADERS+RST_STREAM (rapid reset), or open connections full of requests
 * and have them cut (MadeYouReset), so they pass a limiter; those dropped
 * are counted in the next one ("suppressed":N) or in a summary line.
 * Every request still counts in /metrics. */
#define WISP_RESET_LOG_BURST 20
#define WISP_RESET_LOG_WINDOW 1.0
/* Lines of the answers we make ourselves (503, 408, 4xx refusals; not
 * policy denials), all sources together, beside each source's bound
 * (wisp_conn_answer_line): many sources do not make a flood either. */
#define WISP_ANSWER_LOG_BURST_ALL 100

static void stream_log(const wisp_stream *s) {
  static _Thread_local wisp_log_limit reset_lines =
      WISP_LOG_LIMIT_INIT("request lines of streams ended before a response", WISP_RESET_LOG_BURST,
                          WISP_RESET_LOG_WINDOW, WISP_LOG_TO_STDOUT);
  static _Thread_local wisp_log_limit answer_lines =
      WISP_LOG_LIMIT_INIT("request lines of answers the proxy made itself", WISP_ANSWER_LOG_BURST_ALL,
                          WISP_RESET_LOG_WINDOW, WISP_LOG_TO_STDOUT);
  const char *grpc_junk;
  int grpc = grpc_status_of(s, &grpc_junk);
  int status = status_of(s);
  double ms = (ev_time() - s->started) * 1000.0;
  wisp_stats_finished(&s->target->px->stats, s->dir, status); /* /metrics */
  wisp_metrics_request mr = {.inbound = s->dir == WISP_DIR_INBOUND,
                             .peer_id = s->peer_id,
                             .status = status,
                             .grpc_status = grpc,
                             .denied = s->denied,
                             .duration_ms = ms,
                             .bytes_in = s->bytes[WISP_DOWN],
                             .bytes_out = s->bytes[WISP_UP]};
  wisp_metrics_request_done(s->target->px->metrics, &mr);
  uint64_t suppressed = 0, answers_suppressed = 0;
  if (s->line_dropped) return; /* our own answer, over its source's bound */
  if ((status == 0 || s->hdr_refused[WISP_DOWN]) && !wisp_log_limit_pass(&reset_lines, wisp_log_now(), &suppressed))
    return;
  /* and over all sources (a summary line says how many were dropped) */
  if (s->status && !s->denied && !wisp_log_limit_pass(&answer_lines, wisp_log_now(), &answers_suppressed)) return;
  suppressed += answers_suppressed + s->lines_dropped;
  wisp_json j;
  wisp_json_begin(&j, "request");
  wisp_json_plain(&j, "direction", s->dir == WISP_DIR_INBOUND ? "inbound" : "outbound");
  wisp_json_int(&j, "conn", (int64_t)s->down_conn_id);
  if (s->peer_id[0]) wisp_json_str(&j, "peer_id", s->peer_id);
  char trace_id[WISP_TRACE_ID_MAX + 1];
  if (wisp_trace_id(log_value(s, LF_TRACEPARENT), log_value(s, LF_B3), log_value(s, LF_X_B3_TRACEID), trace_id))
    wisp_json_str(&j, "trace_id", trace_id);
  log_str(&j, "authority", s, log_nv(s, LF_AUTHORITY) ? LF_AUTHORITY : LF_HOST);
  log_str(&j, "method", s, LF_METHOD);
  log_str(&j, "path", s, LF_PATH);
  if (s->path_received) wisp_json_str(&j, "path_received", s->path_received);
  wisp_json_int(&j, "status", status);
  if (grpc >= 0) wisp_json_int(&j, "grpc_status", grpc);
  if (grpc_junk) wisp_json_str(&j, "grpc_status_received", grpc_junk);
  wisp_json_int(&j, "bytes_in", (int64_t)s->bytes[WISP_DOWN]);
  wisp_json_int(&j, "bytes_out", (int64_t)s->bytes[WISP_UP]);
  wisp_json_double(&j, "duration_ms", ms);
  wisp_json_plain(&j, "proto", wisp_stream_proto_name(s->caller_proto));
  if (s->dir == WISP_DIR_INBOUND && !s->denied) wisp_json_plain(&j, "app_proto", s->app_h1 ? "http/1.1" : "h2c");
  wisp_json_str(&j, "upstream", s->target->name);
  wisp_json_plain(&j, "decision", s->denied ? "deny" : "allow");
  if (s->policy_checked) {
    if (s->policy_name[0]) wisp_json_str(&j, "policy", s->policy_name);
    if (s->policy_rule >= 0) wisp_json_int(&j, "rule", s->policy_rule);
    wisp_json_str(&j, "policy_reason", s->policy_reason);
  }
  if (s->error) wisp_json_str(&j, "error", s->error);
  if (s->reset_code) wisp_json_str(&j, "reset", nghttp2_http2_strerror(s->reset_code));
  if (suppressed) wisp_json_int(&j, "suppressed", (int64_t)suppressed);
  wisp_json_emit(&j);
}

static void stream_free(wisp_stream *s) {
  stream_log(s);
  for (int i = 0; i < 2; i++) {
    wisp_hdrs_cleanup(&s->hdrs[i]);
    wisp_hdrs_cleanup(&s->trailers[i]);
    body_drop(s, (wisp_side)i);
  }
  hdr_charge(s, -(ssize_t)s->hdr_held);
  free(s->error);
  wisp_slab_free(s->peer_id_copy);
  wisp_list_unlink(&s->idle_link);
  wisp_slab_free(s);
}

/* A stream that ends while a connection's frames are written (its
 * response's END_STREAM, inside nghttp2_session_mem_send) is logged and
 * freed right after that write (wisp_stream_after_write): the response
 * leaves before its log line is made. What it points at (its target, the
 * connection holding its peer ID) outlives that: teardown comes later. */
static void maybe_free(wisp_stream *s) {
  if (s->link[WISP_DOWN].conn || s->link[WISP_UP].conn || s->finishing) return;
  wisp_proxy *px = s->target->px;
  if (!px->lp.writing) {
    stream_free(s);
    return;
  }
  s->finishing = true;
  s->finished_next = NULL;
  *px->finished_tail = s;
  px->finished_tail = &s->finished_next;
}

void wisp_stream_after_write(wisp_proxy *px) {
  wisp_stream *s = px->finished;
  px->finished = NULL;
  px->finished_tail = &px->finished;
  while (s) { /* in the order they ended */
    wisp_stream *next = s->finished_next;
    stream_free(s);
    s = next;
  }
}

/* ---- answers we make ourselves ---- */

/* Answers the caller with |status| and |reason| (body and x-wisp-error), or
 * for gRPC with |grpc_code| and the reason as grpc-message. */
static void respond_error(wisp_stream *s, int status, wisp_grpc_status grpc_code, const char *reason) {
  wisp_conn *down = s->link[WISP_DOWN].conn;
  if (!down || s->resp_started) return;
  wisp_pool_dequeue(s); /* answered: it never goes upstream */
  set_error(s, "%s", reason);
  s->stop_request = true;
  s->status = s->is_grpc ? 200 : status;
  s->line_dropped = !wisp_conn_answer_line(down, s->denied, &s->lines_dropped);
  discard_body(s, WISP_DOWN);
  s->discard_req = true;
  /* A response to HEAD has no content (RFC 9110 9.3.2; nghttp2 and curl
   * reset a stream that brings some): headers only, content-length kept. */
  const char *method = log_value(s, LF_METHOD);
  bool head = method && strcmp(method, "HEAD") == 0;
  wisp_hdrs h = {0};
  char num[24], msg[3 * WISP_TLS_REASON_MAX];
  wisp_err rc;
  if (s->is_grpc) {
    size_t written = 0;
    if (wisp_grpc_message_encode(msg, sizeof(msg), &written, reason, strlen(reason)) != WISP_OK) msg[written] = 0;
    s->grpc_status = (int)grpc_code;
    snprintf(num, sizeof(num), "%d", (int)grpc_code);
    rc = wisp_hdrs_add_str(&h, ":status", "200");
    if (rc == WISP_OK) rc = wisp_hdrs_add_str(&h, "content-type", "application/grpc");
    if (rc == WISP_OK) rc = wisp_hdrs_add_str(&h, "grpc-status", num);
    if (rc == WISP_OK) rc = wisp_hdrs_add_str(&h, "grpc-message", msg);
  } else {
    snprintf(msg, sizeof(msg), "%s\n", reason);
    snprintf(num, sizeof(num), "%d", status);
    rc = wisp_hdrs_add_str(&h, ":status", num);
    if (rc == WISP_OK) rc = wisp_hdrs_add_str(&h, "content-type", "text/plain; charset=utf-8");
    snprintf(num, sizeof(num), "%zu", strlen(msg));
    if (rc == WISP_OK) rc = wisp_hdrs_add_str(&h, "content-length", num);
    body_drop(s, WISP_UP);
    if (rc == WISP_OK && !head) rc = body_append(s, WISP_UP, msg, strlen(msg));
  }
  if (rc == WISP_OK) rc = wisp_hdrs_add_str(&h, "x-wisp-error", reason);
  s->eof[WISP_UP] = true;
  nghttp2_data_provider prd = {.source.ptr = s, .read_callback = provide_down};
  if (rc != WISP_OK ||
      nghttp2_submit_response(down->io.h2, s->link[WISP_DOWN].id, h.nv, h.n, s->is_grpc || head ? NULL : &prd) != 0) {
    reset_side(s, WISP_DOWN, NGHTTP2_INTERNAL_ERROR);
  }
  wisp_hdrs_cleanup(&h);
  s->resp_started = true;
  down->px->stats.responses_error++;
  wisp_conn_mark_dirty(down);
}

/* The app refused the request (REFUSED_STREAM) and we do not send it
 * again. Our caller is a peer sidecar, which would retry a REFUSED_STREAM
 * of ours: the app would see the request up to four times. A 503 (gRPC
 * UNAVAILABLE) that says what happened is an answer, retried by nobody
 * on the way, as Envoy answers once its retries of a refusal are spent. */
static void app_refused(wisp_stream *s) {
  char why[WISP_TLS_REASON_MAX];
  snprintf(why, sizeof(why), "app %s refused the stream (REFUSED_STREAM) %s: the request was not processed",
           s->target->name, s->retries ? "twice" : "after its body had gone out");
  respond_error(s, 503, WISP_GRPC_UNAVAILABLE, why);
}

/* The upstream side ended before a complete response. |reason| NULL: the
 * upstream reset the stream with |code|, which we carry to the caller. */
static void upstream_failed(wisp_stream *s, uint32_t code, const char *reason, int status) {
  if (!s->link[WISP_DOWN].conn) return;
  if (!s->resp_started) {
    /* Refused (e.g. crossed a GOAWAY) before any body went out: safe to
     * try once more on another connection. */
    if (!reason && code == NGHTTP2_REFUSED_STREAM && s->retries == 0 && s->sent_up == 0) {
      s->retries++;
      hdrs_release(s, &s->hdrs[WISP_UP]); /* whatever the refused attempt got */
      hdrs_release(s, &s->trailers[WISP_UP]);
      dispatch(s);
      return;
    }
    if (!reason && code == NGHTTP2_REFUSED_STREAM && s->dir == WISP_DIR_INBOUND) {
      app_refused(s);
      return;
    }
    if (reason) {
      respond_error(s, status, WISP_GRPC_UNAVAILABLE, reason);
      return;
    }
  }
  if (reason) set_error(s, "%s", reason);
  reset_side(s, WISP_DOWN, code ? code : NGHTTP2_INTERNAL_ERROR);
}

/* ---- request path ---- */

/* Whether the caller speaks gRPC, for the form of our own answers. */
static void note_grpc(wisp_stream *s) {
  const char *ct = log_value(s, LF_CONTENT_TYPE);
  s->is_grpc = ct && strncmp(ct, "application/grpc", 16) == 0;
}

/* Copies |src| to |dst| (room for |cap| bytes with the NUL), cut as
 * snprintf cuts it; returns the length copied. Per request, in place of
 * snprintf("%s"), which costs hundreds of instructions. */
static size_t copy_str(char *dst, size_t cap, const char *src) {
  size_t len = strnlen(src, cap - 1);
  memcpy(dst, src, len);
  dst[len] = '\0';
  return len;
}

wisp_stream *wisp_stream_new(wisp_conn *down, int32_t id) {
  /* Per request: from wisp_slab's freelists, zeroed like calloc (every
   * field, so nothing of the last request it served survives). */
  wisp_stream *s = wisp_slab_calloc(1, sizeof(*s));
  s->dir = down->dir;
  s->target = down->dst;
  s->grpc_status = -1;
  s->started = ev_time();
  s->down_conn_id = down->id;
  s->peer_id = down->io.verify.peer_ok ? down->io.verify.peer.id : "";
  /* Bodies live as long as the request: their buffers come from the
   * freelists too (a first 4 KiB from malloc was most of libc's share). */
  s->body[WISP_DOWN].slab = s->body[WISP_UP].slab = true;
  link_side(s, WISP_DOWN, down, id);
  wisp_list_push_back(&down->px->idle_streams, &s->idle_link);
  idle_touch(s);
  nghttp2_session_set_stream_user_data(down->io.h2, id, s);
  down->px->stats.requests++;
  return s;
}

static bool name_is(const uint8_t *name, size_t len, const char *lit) {
  return len == strlen(lit) && memcmp(name, lit, len) == 0;
}

const char *wisp_stream_proto_name(wisp_caller_proto p) {
  return p == WISP_PROTO_HTTP11 ? "http/1.1" : p == WISP_PROTO_HTTP10 ? "http/1.0" : "h2";
}

wisp_caller_proto wisp_stream_proto_parse(const uint8_t *v, size_t len) {
  if (name_is(v, len, "http/1.1")) return WISP_PROTO_HTTP11;
  if (name_is(v, len, "http/1.0")) return WISP_PROTO_HTTP10;
  return WISP_PROTO_H2;
}

void wisp_stream_on_begin_headers(wisp_stream *s, wisp_side side) { s->section[side] = 0; }

/* The section arriving on |side| is not kept, |why|; with |drop| what was
 * kept of it goes too (no budget). Answered when the section ends. */
static void refuse_section(wisp_stream *s, wisp_side side, const char *why, bool drop) {
  s->hdr_refused[side] = why;
  if (drop) hdrs_release(s, s->headers_done[side] ? &s->trailers[side] : &s->hdrs[side]);
}

static const char kTooLarge[] = "header section larger than --max-header-list-size";

/* A lane in the wait queue per distinct x-wisp-caller value (FNV-1a):
 * nonzero, so it never shares lane 0 with untagged requests. */
static uint64_t caller_tag_of(const uint8_t *value, size_t len) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) h = (h ^ value[i]) * 1099511628211ULL;
  return h ? h : 1;
}

wisp_err wisp_stream_on_header(wisp_stream *s, wisp_side side, nghttp2_headers_category cat, const uint8_t *name,
                               size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags) {
  bool trailer = s->headers_done[side];
  wisp_proxy *px = s->target->px;
  size_t cost = name_len + value_len + WISP_HDR_FIELD_OVERHEAD;
  s->section[side] += cost;
  if (s->hdr_refused[side]) {
    /* Decoded (the HPACK state needs it), not kept. Past twice the limit
     * the section is no longer one a client made by mistake but a bomb (a
     * 16 KB block can decode to 64 MB, each field checked by nghttp2):
     * the stream is reset (INTERNAL_ERROR) and the rest of the block
     * skipped unchecked. */
    if (s->section[side] <= 2 * px->cfg->max_header_list_size) return WISP_OK;
    set_error(s, "%s: over twice --max-header-list-size, reset", s->hdr_refused[side]);
    return WISP_ERR_TOO_BIG;
  }
  if (s->section[side] > px->cfg->max_header_list_size) {
    refuse_section(s, side, kTooLarge, false);
    return WISP_OK;
  }
  /* Only we say who the caller is: a client-supplied XFCC is dropped. */
  if (side == WISP_DOWN && s->dir == WISP_DIR_INBOUND && name_is(name, name_len, "x-forwarded-client-cert"))
    return WISP_OK;
  if (side == WISP_DOWN && name_is(name, name_len, WISP_CALLER_HEADER)) {
    /* Inbound, from a peer sidecar: which of its callers sent this, for
     * the wait queue's turns (wisp_pool); never passed on. Outbound, our
     * own caller's is dropped: we set it. */
    if (s->dir == WISP_DIR_INBOUND) {
      s->caller_tag = caller_tag_of(value, value_len);
      wisp_conn_caller_tagged(s->link[WISP_DOWN].conn, s->caller_tag);
    }
    return WISP_OK;
  }
  if (side == WISP_DOWN && name_is(name, name_len, WISP_PROTO_HEADER)) {
    /* The original caller's protocol (WISP_PROTO_HEADER): believed from a
     * peer sidecar or our own HTTP/1 gateway, in the request's headers;
     * dropped from anyone and anywhere else. Never passed on. */
    const wisp_conn *down = s->link[WISP_DOWN].conn;
    bool trusted = s->dir == WISP_DIR_INBOUND ? down->io.verify.peer_ok : down->h1_gateway;
    if (trusted && !trailer) s->caller_proto = wisp_stream_proto_parse(value, value_len);
    return WISP_OK;
  }
  const char *spent = budget_spent(px, s->link[WISP_DOWN].conn, cost);
  if (spent) {
    refuse_section(s, side, spent, true);
    return WISP_OK;
  }
  /* The field keeps its never-indexed mark (wisp_hdrs): the next hop must
   * not index it either, least of all on a pooled connection that other
   * callers' requests share. */
  if (wisp_hdrs_add(trailer ? &s->trailers[side] : &s->hdrs[side], name, name_len, value, value_len, flags) !=
      WISP_OK) {
    _Static_assert(WISP_HDRS_MAX_FIELDS == 128, "the reason below names it");
    refuse_section(s, side, "header section of more than 128 fields", false);
    return WISP_OK;
  }
  note_log_field(s, side, trailer, name, name_len);
  hdr_charge(s, (ssize_t)cost);
  return WISP_OK;
}

/* Answers a request the policy cannot judge with 400 (gRPC
 * INVALID_ARGUMENT) saying why; it is logged as denied, with
 * |policy_reason|. */
static void refuse_unjudgeable(wisp_stream *s, const char *policy_reason, const char *what, const char *why) {
  char msg[WISP_TLS_REASON_MAX];
  snprintf(msg, sizeof(msg), "%s refused under policy: %s", what, why);
  s->policy_checked = true;
  s->denied = true;
  s->policy_rule = -1;
  s->policy_reason = policy_reason;
  wisp_events_denied(s->target->px->events, s->dir == WISP_DIR_INBOUND, NULL, -1, NULL, s->peer_id);
  respond_error(s, 400, WISP_GRPC_INVALID_ARGUMENT, msg);
}

/* Under a policy a method the rules cannot name (a lower-case letter: some
 * apps upper-case it, so "delete" would pass a DENY on DELETE) is refused.
 * Returns false when it answered. */
static bool method_judgeable(wisp_stream *s) {
  const nghttp2_nv *m = log_nv(s, LF_METHOD);
  const char *why = m ? wisp_policy_method_refused((const char *)m->value, m->valuelen) : "no :method";
  if (!why) return true;
  refuse_unjudgeable(s, "method cannot be judged", "method", why);
  return false;
}

/* Under a policy the request's :path is replaced by its normal form
 * (lib/wisp_path: unreserved escapes decoded, dot segments removed, slashes
 * merged) before the policy judges it, and that is what the app is sent:
 * an app that decodes or cleans paths itself cannot be sent `/%61dmin`
 * past a DENY on /admin*. A path with no safe normal form (%2F, a bad
 * escape, ...) is refused with 400 saying why. Returns false when it
 * answered. */
static bool normalize_path(wisp_stream *s) {
  wisp_hdrs *req = &s->hdrs[WISP_DOWN];
  const nghttp2_nv *nv = log_nv(s, LF_PATH);
  const char *path = nv ? (const char *)nv->value : NULL;
  const char *why = "no :path";
  wisp_err rc = WISP_ERR_PROTO;
  char *norm = NULL;
  size_t len = 0;
  if (path) {
    size_t in_len = nv->valuelen;
    norm = wisp_malloc(in_len + 1);
    rc = wisp_path_normalize(norm, in_len + 1, &len, path, in_len, &why);
    if (rc == WISP_OK && (len != in_len || memcmp(norm, path, len) != 0)) {
      rc = wisp_hdrs_set(req, ":path", (const uint8_t *)norm, len);
      if (rc == WISP_OK) {
        s->path_received = path; /* stays valid: the arena never moves */
      } else {
        why = "cannot store the normalised path";
      }
    }
  }
  free(norm);
  if (rc == WISP_OK) return true;
  refuse_unjudgeable(s, "path cannot be normalised", "path", why);
  return false;
}

/* Inbound requests are judged by the policy in force when they start. */
static bool authorized(wisp_stream *s, wisp_proxy *px) {
  if (s->dir != WISP_DIR_INBOUND || s->retries) return true;
  char why[WISP_TLS_REASON_MAX];
  if (wisp_authz_pending(px, why, sizeof(why))) {
    respond_error(s, 503, WISP_GRPC_UNAVAILABLE, why);
    return false;
  }
  if (px->view && (!method_judgeable(s) || !normalize_path(s))) return false;
  wisp_policy_decision d;
  wisp_authz_check(px, s->peer_id[0] ? s->peer_id : NULL, log_value(s, LF_METHOD), log_value(s, LF_PATH),
                   wisp_addr_port(&s->target->addr), &d);
  s->policy_checked = px->view != NULL;
  s->denied = !d.allow;
  s->policy_rule = d.rule;
  s->policy_reason = d.reason;
  copy_str(s->policy_name, sizeof(s->policy_name), d.policy ? d.policy : "");
  if (d.allow) return true;
  wisp_authz_describe(&d, why, sizeof(why));
  px->stats.requests_denied++;
  wisp_events_denied(px->events, true, d.policy, d.rule, d.reason, s->peer_id);
  respond_error(s, 403, WISP_GRPC_PERMISSION_DENIED, why);
  return false;
}

/* Tells the caller "100 Continue" (once, before the response): the
 * request may send its body. */
static void send_continue(wisp_stream *s) {
  wisp_conn *down = s->link[WISP_DOWN].conn;
  nghttp2_nv nv = {(uint8_t *)":status", (uint8_t *)"100", 7, 3, NGHTTP2_NV_FLAG_NONE};
  if (!down || s->resp_started || s->continue_sent) return;
  if (nghttp2_submit_headers(down->io.h2, NGHTTP2_FLAG_NONE, s->link[WISP_DOWN].id, NULL, &nv, 1, NULL) < 0) return;
  s->continue_sent = true;
  wisp_conn_mark_dirty(down);
}

/* Whether the request carries Expect: 100-continue. */
static bool expects_continue(const wisp_stream *s) {
  const char *e = log_value(s, LF_EXPECT);
  return e && strcasecmp(e, "100-continue") == 0;
}

/* Expect: 100-continue is answered by whoever decides about the body: an
 * HTTP/1.1 app (its 100 comes back through wisp_h1app), a peer sidecar
 * (the request goes on as it is), or, in front of an h2c app (which may
 * not answer it: nghttp2 and Node's core API do not), this sidecar once
 * its policy allowed the request; the field then stops here. */
static bool continue_is_ours(const wisp_stream *s) {
  return s->dir == WISP_DIR_INBOUND && !s->app_h1 && expects_continue(s);
}

/* The request is complete and allowed: it waits for an upstream stream,
 * which the pool gives it once everything read so far was parsed (so a
 * request reset in the same read never goes upstream). */
static void dispatch(wisp_stream *s) {
  note_grpc(s);
  if (!authorized(s, s->target->px)) return;
  wisp_proxy *px = s->target->px;
  /* An app is spoken to as its caller spoke (an HTTP/1 caller's app
   * speaks HTTP/1.1: the caller reached it before the mesh), unless
   * --app-protocol says what the app speaks. */
  s->app_h1 = !s->target->tls && (px->cfg->app_http1 || (!px->cfg->app_h2c && s->caller_proto != WISP_PROTO_H2));
  if (continue_is_ours(s) && !s->eof[WISP_DOWN]) send_continue(s);
  if (px->buffered >= px->cfg->buffer_limit) {
    char why[WISP_TLS_REASON_MAX];
    snprintf(why, sizeof(why),
             "proxy buffer limit reached: %zu KiB of request and response bodies are waiting in the proxy "
             "(--buffer-limit %zu KiB)",
             px->buffered / 1024, px->cfg->buffer_limit / 1024);
    respond_error(s, 503, WISP_GRPC_UNAVAILABLE, why);
    return;
  }
  wisp_pool_enqueue(s);
}

void wisp_stream_unavailable(wisp_stream *s, int status, const char *reason) {
  respond_error(s, status, WISP_GRPC_UNAVAILABLE, reason);
}

/* ---- header sections lent to nghttp2 ----
 * A stream's request and response header sections are handed to
 * nghttp2_submit_request/response with NO_COPY flags: nghttp2 points at
 * their bytes instead of copying every name and value and lower-casing
 * every name (nghttp2_nv_array_copy: ~1,000 instructions per section).
 * - Names are lower case already: each field came from nghttp2's
 *   on_header callback, which refuses an upper-case name (HTTP messaging
 *   is on) before the callback; wisp's HTTP/1 parser lowers what it reads.
 *   lent_name_ok checks it in builds with assertions.
 * - The bytes live in the stream's header lists until the stream is freed
 *   (their arena never moves; a list that was submitted is not released
 *   before: hdrs_release only drops sections still arriving, a refused
 *   attempt's response, or a 1xx). The stream is freed once both its
 *   nghttp2 streams closed or their connections went: a response HEADERS
 *   still queued for a closed stream is dropped before its fields are
 *   read (nghttp2's session_prep_frame checks the stream first); a request
 *   HEADERS still waiting in nghttp2's queue (ob_syn: the upstream's
 *   MAX_CONCURRENT_STREAMS reached, or writes blocked) has no nghttp2
 *   stream yet, so our RST_STREAM for its id only marks it cancelled and
 *   session_prep_frame drops it unread, then closes the stream (our
 *   on_stream_close, which is what frees the wisp stream); a GOAWAY fails
 *   queued requests the same way (REFUSED_STREAM) before the retry lends
 *   the same fields again; a deleted session reads nothing. nghttpx frees its streams' headers
 *   the same way with the same flags.
 * Not lent: trailers (request trailers are released once submitted; they
 * carry their fields' NO_INDEX flags too), our own answers and the fields
 * made on the stack in send_upstream. */
#define WISP_NV_LENT (NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE)

#ifndef NDEBUG
static bool lent_name_ok(const nghttp2_nv *nv) {
  for (size_t i = 0; i < nv->namelen; i++)
    if (nv->name[i] >= 'A' && nv->name[i] <= 'Z') return false;
  return true;
}
#endif

/* |*out| = |*in|, lent (see above); its NO_INDEX flag stays (wisp_hdrs: a
 * field that arrived never indexed leaves never indexed). */
static void lend(nghttp2_nv *out, const nghttp2_nv *in) {
  assert(lent_name_ok(in));
  *out = *in;
  out->flags |= WISP_NV_LENT;
}

void wisp_stream_send_upstream(wisp_stream *s, wisp_conn *up) {
  char err[WISP_TLS_REASON_MAX];
  const wisp_hdrs *req = &s->hdrs[WISP_DOWN];
  nghttp2_nv nv[WISP_HDRS_MAX_FIELDS + 3];
  bool drop_expect = continue_is_ours(s);
  size_t n = 0;
  for (size_t i = 0; i < req->n; i++) {
    if (!(drop_expect && name_is(req->nv[i].name, req->nv[i].namelen, "expect"))) lend(&nv[n++], &req->nv[i]);
  }
  char xfcc[2 * WISP_SPIFFE_MAX + 16];
  if (s->dir == WISP_DIR_INBOUND && s->peer_id[0]) {
    /* "By=<ours>;URI=<the caller's>", both IDs at most WISP_SPIFFE_MAX */
    size_t len = copy_str(xfcc, 4, "By=");
    len += copy_str(xfcc + len, WISP_SPIFFE_MAX + 1, wisp_tls_get0_info(up->px->tls)->spiffe_id);
    len += copy_str(xfcc + len, 6, ";URI=");
    len += copy_str(xfcc + len, sizeof(xfcc) - len, s->peer_id);
    nv[n++] = (nghttp2_nv){(uint8_t *)"x-forwarded-client-cert", (uint8_t *)xfcc, 23, len, NGHTTP2_NV_FLAG_NONE};
  }
  char caller[24];
  if (s->target->tls) {
    /* To a peer sidecar, our requests share pooled connections: say which
     * caller connection each came from, so its queue takes turns between
     * them too. */
    size_t len = wisp_json_fmt_u64(caller, s->down_conn_id);
    nv[n++] = (nghttp2_nv){(uint8_t *)WISP_CALLER_HEADER, (uint8_t *)caller, strlen(WISP_CALLER_HEADER), len,
                           NGHTTP2_NV_FLAG_NONE};
    /* and which protocol its caller spoke, for the app's protocol there */
    const char *proto = wisp_stream_proto_name(s->caller_proto);
    if (s->caller_proto != WISP_PROTO_H2)
      nv[n++] = (nghttp2_nv){(uint8_t *)WISP_PROTO_HEADER, (uint8_t *)proto, strlen(WISP_PROTO_HEADER), strlen(proto),
                             NGHTTP2_NV_FLAG_NONE};
  }
  bool no_body = s->eof[WISP_DOWN] && wisp_buf_len(&s->body[WISP_DOWN]) == 0 && s->trailers[WISP_DOWN].n == 0;
  nghttp2_data_provider prd = {.source.ptr = s, .read_callback = provide_up};
  int32_t id = nghttp2_submit_request(up->io.h2, NULL, nv, n, no_body ? NULL : &prd, s);
  if (id < 0) {
    snprintf(err, sizeof(err), "cannot open a stream to %s: %s", s->target->name, nghttp2_strerror(id));
    respond_error(s, 502, WISP_GRPC_UNAVAILABLE, err);
    return;
  }
  link_side(s, WISP_UP, up, id);
  idle_touch(s); /* its time in the wait queue is --queue-timeout's */
  up->px->stats.upstream_requests++;
  wisp_conn_mark_dirty(up);
}

/* ---- response path ---- */

static void start_response(wisp_stream *s) {
  wisp_conn *up = s->link[WISP_UP].conn;
  wisp_conn *down = s->link[WISP_DOWN].conn;
  if (s->dir == WISP_DIR_OUTBOUND && up && up->io.verify.peer_ok) {
    wisp_slab_free(s->peer_id_copy);
    s->peer_id_copy = NULL;
    s->peer_id = up->io.verify.peer.id;
  }
  if (!down || s->resp_started) return;
  nghttp2_data_provider prd = {.source.ptr = s, .read_callback = provide_down};
  const wisp_hdrs *h = &s->hdrs[WISP_UP];
  nghttp2_nv nv[WISP_HDRS_MAX_FIELDS];
  for (size_t i = 0; i < h->n; i++) lend(&nv[i], &h->nv[i]);
  if (nghttp2_submit_response(down->io.h2, s->link[WISP_DOWN].id, nv, h->n, s->eof[WISP_UP] ? NULL : &prd) != 0) {
    reset_side(s, WISP_DOWN, NGHTTP2_INTERNAL_ERROR);
    reset_side(s, WISP_UP, NGHTTP2_CANCEL);
    return;
  }
  s->resp_started = true;
  wisp_conn_mark_dirty(down);
}

static bool informational(const wisp_stream *s) {
  const nghttp2_nv *st = log_nv(s, LF_STATUS);
  return st && st->value[0] == '1' && st->valuelen == 3;
}

/* A section on |side| ended that was not kept (s->hdr_refused[side]). A
 * request whose headers found no budget is refused (REFUSED_STREAM: it may
 * be retried); one too large gets 431 (RFC 9113 10.5.1), as do too large
 * request trailers while no response started; an upstream's response gets
 * the caller a 502. Otherwise the stream is reset. */
static void section_refused(wisp_stream *s, wisp_side side, bool end_stream) {
  const char *why = s->hdr_refused[side];
  bool budget = why != kTooLarge;
  bool first = !s->headers_done[side];
  char msg[WISP_TLS_REASON_MAX];
  s->headers_done[side] = true;
  s->eof[side] = s->eof[side] || end_stream || !first;
  if (side == WISP_DOWN && first && budget) {
    s->target->px->stats.streams_refused++;
    set_error(s, "%s", why);
    reset_side(s, WISP_DOWN, NGHTTP2_REFUSED_STREAM);
    return;
  }
  if (side == WISP_DOWN) {
    int n = snprintf(msg, sizeof(msg), "request %s refused: %s", first ? "headers" : "trailers", why);
    if (!budget && n > 0 && (size_t)n < sizeof(msg))
      snprintf(msg + n, sizeof(msg) - (size_t)n, " (%zu bytes)", s->target->px->cfg->max_header_list_size);
  } else {
    snprintf(msg, sizeof(msg), "upstream %s: response %s refused: %s", s->target->name, first ? "headers" : "trailers",
             why);
  }
  if (!s->resp_started) {
    note_grpc(s);
    respond_error(s,
                  side == WISP_UP ? 502
                  : budget        ? 503
                                  : 431,
                  side == WISP_UP ? WISP_GRPC_UNAVAILABLE : WISP_GRPC_RESOURCE_EXHAUSTED, msg);
    reset_side(s, WISP_UP, NGHTTP2_CANCEL); /* our answer ended the response (eof[UP]): no reset comes back down */
    return;
  }
  set_error(s, "%s", msg);
  reset_side(s, WISP_UP, NGHTTP2_CANCEL);
  reset_side(s, WISP_DOWN, side == WISP_UP ? NGHTTP2_INTERNAL_ERROR : NGHTTP2_ENHANCE_YOUR_CALM);
}

void wisp_stream_on_headers_done(wisp_stream *s, wisp_side side, bool end_stream) {
  idle_touch(s);
  if (s->hdr_refused[side]) {
    section_refused(s, side, end_stream);
    return;
  }
  if (!s->headers_done[side]) {
    if (side == WISP_UP && informational(s)) {
      const char *st = log_value(s, LF_STATUS);
      if (strcmp(st, "100") == 0) send_continue(s); /* the app's (or its sidecar's) answer to Expect */
      hdrs_release(s, &s->hdrs[WISP_UP]);           /* 1xx: wait for the final response */
      return;
    }
    s->headers_done[side] = true;
    s->eof[side] = end_stream;
    if (side == WISP_DOWN) {
      dispatch(s);
    } else {
      start_response(s);
    }
    return;
  }
  s->eof[side] = true; /* trailers end the stream */
  resume(s, WISP_OTHER(side));
}

/* ---- bodies ---- */

void wisp_stream_on_data(wisp_stream *s, wisp_side side, const uint8_t *data, size_t len) {
  wisp_side out = WISP_OTHER(side);
  wisp_conn *in = s->link[side].conn;
  s->bytes[side] += len;
  idle_touch(s);
  /* A request body is kept while the request waits for an upstream stream. */
  bool wanted =
      (s->link[out].conn != NULL || (side == WISP_DOWN && s->waiting)) && !(side == WISP_DOWN && s->discard_req);
  if (!wanted) {
    if (in) nghttp2_session_consume_connection(in->io.h2, len);
    ack_bytes(s, side, len);
    if (side == WISP_DOWN && s->discard_until && s->bytes[WISP_DOWN] > s->discard_until) {
      s->discard_until = 0;
      reset_side(s, WISP_DOWN, NGHTTP2_NO_ERROR);
    }
    return;
  }
  if (body_append(s, side, data, len) != WISP_OK) {
    if (in) nghttp2_session_consume_connection(in->io.h2, len);
    ack_bytes(s, side, len);
    reset_side(s, side, NGHTTP2_FLOW_CONTROL_ERROR);
    return;
  }
  conn_window_for(s, side, len);
  resume(s, out);
}

void wisp_stream_on_end(wisp_stream *s, wisp_side side) {
  idle_touch(s);
  s->eof[side] = true;
  resume(s, WISP_OTHER(side));
}

/* Moves bytes that arrived on the other side out on side |out|. */
static ssize_t provide(wisp_stream *s, wisp_side out, uint8_t *buf, size_t len, uint32_t *flags) {
  wisp_side in = WISP_OTHER(out);
  size_t n = body_read(s, in, buf, len);
  if (n) idle_touch(s);
  ack_bytes(s, in, n);
  maybe_grow(s, in);
  if (out == WISP_UP) s->sent_up += n;
  if (wisp_buf_len(&s->body[in]) == 0 && s->eof[in]) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    const wisp_hdrs *t = &s->trailers[in];
    wisp_conn *dst = s->link[out].conn;
    if (t->n && dst) {
      /* Ending without them would tell a gRPC caller nothing: nghttp2
       * resets the stream on this return. */
      if (nghttp2_submit_trailer(dst->io.h2, s->link[out].id, t->nv, t->n) != 0) {
        if (out == WISP_DOWN) s->reset_by_us = true;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      }
      if (in == WISP_DOWN)
        hdrs_release(s, &s->trailers[in]); /* nghttp2 has a copy; response trailers stay for the log */
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return (ssize_t)n;
  }
  return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

static ssize_t provide_down(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                            nghttp2_data_source *src, void *user_data) {
  return provide(src->ptr, WISP_DOWN, buf, len, flags);
}

static ssize_t provide_up(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                          nghttp2_data_source *src, void *user_data) {
  return provide(src->ptr, WISP_UP, buf, len, flags);
}

/* ---- endings ---- */

static void on_stop_request(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_stream *s = w->data;
  if (!s->eof[WISP_DOWN]) reset_side(s, WISP_DOWN, NGHTTP2_NO_ERROR);
}

/* The response went out complete and it was our own answer (503 queue
 * full, 403, 408, ...) or the upstream's followed by RST_STREAM(NO_ERROR):
 * the caller's unfinished request ends with RST_STREAM(NO_ERROR) (RFC 9113
 * 8.1), which closes the stream and frees it, where a silent caller's
 * stream was held for --stream-idle-timeout (50,000 silent POSTs answered
 * 503 held 490 MB). Not at once: curl 7.88 fails the transfer (error 92,
 * the answer lost) when the reset comes in the same read as the answer
 * while it still sends, even if its first body byte had not reached us
 * when the answer left. The HTTP/1 gateway's caller gets connection: close
 * instead. */
static void stop_request_soon(wisp_stream *s) {
  wisp_conn *down = s->link[WISP_DOWN].conn;
  if (!down || down->h1_gateway || s->waiting || s->eof[WISP_DOWN] || ev_is_active(&s->wait_timer)) return;
  ev_timer_init(&s->wait_timer, on_stop_request, WISP_STOP_REQUEST_DELAY, 0);
  s->wait_timer.data = s;
  ev_timer_start(down->px->loop, &s->wait_timer);
}

void wisp_stream_on_response_sent(wisp_stream *s) {
  s->resp_done = true;
  body_drop(s, WISP_UP); /* all sent: its storage (4 KiB or more) goes now, not with the stream */
  /* A complete response while the request is still arriving: drop the rest
   * of the request. A small remainder (already in flight) is read and
   * thrown away, since some clients take an immediate RST_STREAM as a
   * failure even with NO_ERROR; a client that keeps uploading past the
   * limit is asked to stop (RFC 9113, 8.1), and one that sends nothing more
   * is asked soon after an answer that said stop (stop_request_soon). */
  if (!s->eof[WISP_DOWN]) {
    s->discard_req = true;
    discard_body(s, WISP_DOWN);
    s->discard_until = s->bytes[WISP_DOWN] + WISP_DISCARD_BEFORE_RESET;
    if (s->stop_request) stop_request_soon(s);
  }
}

/* The downstream stream is gone: nothing more will be read from upstream. */
static void down_gone(wisp_stream *s, uint32_t code) {
  discard_body(s, WISP_UP);
  bool complete = s->eof[WISP_DOWN] && s->eof[WISP_UP] && code == NGHTTP2_NO_ERROR;
  if (!complete) reset_side(s, WISP_UP, code ? code : NGHTTP2_CANCEL);
}

/* Premature resets are counted here, where every ending of a caller's
 * stream passes, whoever reset it: the caller by RST_STREAM (rapid reset),
 * or nghttp2 because the caller broke the protocol on the stream (a
 * content-length its DATA does not match, WINDOW_UPDATE 0 or past 2^31-1,
 * bad trailers: MadeYouReset), which may also have gone upstream already.
 * Not counted: resets we make (an upstream failure carried down), and any
 * reset once the whole response went out: that stream counts as complete. */
static void count_premature(wisp_stream *s, uint32_t error_code) {
  wisp_conn *down = s->link[WISP_DOWN].conn;
  if (!down) return;
  if (s->resp_done) {
    /* The other side of the ratio, when the upstream answered it: a 503
     * of our own (--max-queued, --queue-timeout) earned the caller trust
     * (attackers overflowing the queue got back their full upstream share
     * and sent 4,579 requests to the app in 8 s, not 1,362). */
    if (s->headers_done[WISP_UP]) wisp_conn_stream_completed(down);
  } else if (s->reset_by_peer) {
    s->premature = true;
    wisp_conn_premature_reset(down, true);
  } else if (error_code != NGHTTP2_NO_ERROR && !s->reset_by_us && !down->h1_gateway) {
    /* A protocol error on our own HTTP/1 gateway's stream is the gateway's
     * making, not the caller's: it refuses what HTTP/2 would not take. */
    s->premature = true;
    wisp_conn_premature_reset(down, false);
  }
}

void wisp_stream_on_close(wisp_stream *s, wisp_side side, uint32_t error_code) {
  /* Bytes still buffered from it are forwarded later with nothing to
   * acknowledge: the connection window was returned on arrival. */
  if (error_code) s->reset_code = error_code;
  if (side == WISP_DOWN) count_premature(s, error_code);
  unlink_side(s, side);
  if (side == WISP_UP) {
    if (!s->eof[WISP_UP]) {
      upstream_failed(s, error_code, NULL, 0);
    } else if (error_code == NGHTTP2_NO_ERROR && !s->eof[WISP_DOWN]) {
      /* It answered and asked us to stop sending (a peer sidecar's own
       * answer): so do we, once the answer went out. */
      s->stop_request = true;
      if (s->resp_done) stop_request_soon(s);
    }
  } else {
    down_gone(s, error_code);
  }
  maybe_free(s);
}

void wisp_stream_conn_gone(wisp_conn *c) {
  wisp_side side = c->io.upstream ? WISP_UP : WISP_DOWN;
  char reason[WISP_TLS_REASON_MAX + 64];
  if (c->io.upstream) {
    snprintf(reason, sizeof(reason), "upstream %s: %s", c->target->name,
             c->io.close_reason[0] ? c->io.close_reason : "connection closed");
  }
  wisp_stream *s;
  while ((s = c->streams) != NULL) {
    /* Buffered bytes stay: a complete response is still delivered. */
    unlink_side(s, side);
    if (side == WISP_UP) {
      if (!s->eof[WISP_UP]) upstream_failed(s, NGHTTP2_INTERNAL_ERROR, reason, wisp_conn_fail_status(c));
    } else {
      down_gone(s, NGHTTP2_CANCEL);
    }
    maybe_free(s);
  }
}
