#include "proxy/dataplane/wisp_h1.h"

#include <pthread.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/wisp_h1parse.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_slab.h"
#include "lib/wisp_sniff.h"
#include "proxy/dataplane/wisp_conn.h"
#include "proxy/dataplane/wisp_metrics.h"
#include "proxy/dataplane/wisp_proxy.h"
#include "proxy/dataplane/wisp_stream.h"
#include "proxy/dataplane/wisp_tunnel.h"

/* Bytes read from a socket at a time. */
#define H1_READ_CHUNK (16 * 1024)
/* Bytes read from the client and not parsed yet (requests past the
 * pipeline, a body past its window) before its socket is not read: below
 * it the socket is read, so a caller that leaves is seen at once. */
#define H1_IN_HIGH (16 * 1024)
/* The HTTP/2 windows the gateway grants the proxy. Only the response at
 * the head of the line is written to the client, so only its stream gets a
 * window (H1_STREAM_WINDOW, once it is the head): the responses behind it
 * wait in the proxy's stream buffers, which --conn-buffer-limit and
 * --buffer-limit count, not in the gateway, which they do not (a caller
 * that pipelined 16 large responses and read none made the gateway hold
 * 16 x 64 KiB). The connection has room for every pipelined stream, so
 * bytes of a stream that was the head never stall the next one. */
#define H1_STREAM_WINDOW (64 * 1024)
#define H1_BEHIND_WINDOW 0
#define H1_CONN_WINDOW ((WISP_H1_PIPELINE + 1) * H1_STREAM_WINDOW)

typedef struct h1req h1req;
struct h1req {
  h1req *next;
  int32_t id;   /* its HTTP/2 stream, 0: none (answered here) */
  bool is_head; /* a HEAD request: the response has no body */
  bool upgrade; /* Upgrade or CONNECT: the connection becomes an L4 stream */
  bool http10;
  bool keep_alive; /* the client may send another request after it */
  bool expect_continue, continue_sent;
  bool continue_got; /* the stream brought a 100: the app (or its sidecar) wants the body */
  /* request body, waiting for the stream's window */
  wisp_buf body;
  bool body_eof;
  bool has_body;  /* sent with a data provider (|r| is its source) */
  bool body_done; /* its data provider gave nghttp2 the end: nghttp2 no longer reads |r| */
  wisp_hdrs trailers;
  bool stream_closed;
  bool headers_sent; /* its HEADERS went out: the stream is open on both sides */
  bool window_open;  /* its stream got H1_STREAM_WINDOW (it is the head of the line) */
  /* response */
  int local_status;      /* answered here with this status (0: no) */
  const char *local_why; /* static */
  wisp_hdrs resp, resp_trailers;
  bool resp_head;
  wisp_buf resp_body;
  bool resp_eof;
  bool aborted; /* the stream ended before a complete response */
  bool head_written, end_written, chunked_out, close_after;
};

typedef struct {
  wisp_h1_gw gw; /* first: on the proxy's list */
  wisp_proxy *px;
  struct ev_loop *loop;
  wisp_target *dst; /* borrowed: held by the h2c side's connection */
  char peer[64];
  wisp_connlimit_slot slot; /* the caller's place in its listener's limits */
  wisp_buf upgrade;         /* the head of an Upgrade/CONNECT request, as it came */
  char authority[128];      /* for HTTP/1.0 requests without Host: the route's peer */
  int fd;                   /* the client */
  ev_io rio, wio;
  wisp_pipe_end *sp; /* our end of the pipe to the listener's h2c path */
  bool s_open;       /* the h2c side is there: its end is read (and written) */
  nghttp2_session *h2;
  wisp_buf in, out, sout;
  wisp_h1parse parser;
  h1req *head, *tail; /* in request order */
  int nreqs;
  h1req *cur;      /* the request whose body is being parsed */
  bool client_eof; /* the client sent FIN (or reset) */
  bool eof_seen;   /* ... and the parser was told, once what came before it was parsed */
  bool refused;    /* a request was refused: parse no more */
  bool upgrading;  /* an Upgrade/CONNECT request waits for its turn to go L4 */
  bool goaway;     /* the h2c side will take no new streams */
  bool closing;    /* write out what is there, then close */
  bool dead;
  bool in_pump;
  bool lingering; /* done: waiting for the h2c side to close after our FIN */
  bool draining;  /* done: the client got our FIN; what it still sends is read and dropped */
  size_t drained; /* bytes dropped so far */
  ev_timer linger;
  ev_timer head_timer; /* a request head must arrive whole within --handshake-timeout */
  size_t hdr_held;     /* head and trailer bytes its parser holds, charged to px->hdr_held */
} h1conn;

/* How long a finished gateway waits for the h2c side to close after our
 * FIN (it answers at once; this only bounds a bug). */
#define H1_LINGER 1.0
/* Lingering close of the client (nginx's lingering_close): after our last
 * response, FIN, then what the client still sends (the rest of a refused
 * upload) is read and dropped until its FIN, for at most this long and
 * this many bytes. Closing with its bytes unread would reset the
 * connection, and a reset can reach the client before it has read our
 * response or its "connection: close". */
#define H1_DRAIN_TIME 2.0
#define H1_DRAIN_BYTES (4 * 1024 * 1024)

static void pump(h1conn *h);

/* ---- requests ---- */

/* A request and its body buffers live for one request: their storage
 * comes from wisp_slab's freelists, not malloc (issue 15). */
static h1req *req_new(h1conn *h) {
  h1req *r = wisp_slab_calloc(1, sizeof(*r));
  r->body.slab = r->resp_body.slab = true;
  if (h->tail) {
    h->tail->next = r;
  } else {
    h->head = r;
  }
  h->tail = r;
  h->nreqs++;
  return r;
}

static void req_free(h1req *r) {
  wisp_buf_cleanup(&r->body);
  wisp_buf_cleanup(&r->resp_body);
  wisp_hdrs_cleanup(&r->trailers);
  wisp_hdrs_cleanup(&r->resp);
  wisp_hdrs_cleanup(&r->resp_trailers);
  wisp_slab_free(r);
}

/* Answers |r| here with |status| and |why|; the connection closes after. */
static void answer_local(h1conn *h, h1req *r, int status, const char *why) {
  r->local_status = status;
  r->local_why = why;
  r->close_after = true;
  h->refused = true; /* bytes after a refused request cannot be trusted to be a request */
  if (r->id && !r->stream_closed) nghttp2_submit_rst_stream(h->h2, NGHTTP2_FLAG_NONE, r->id, NGHTTP2_CANCEL);
}

/* ---- HTTP/1 request -> HTTP/2 stream ---- */

ssize_t wisp_h1_provide(nghttp2_session *s, int32_t id, wisp_buf *from, bool eof, const wisp_hdrs *trailers,
                        uint8_t *buf, size_t len, uint32_t *flags) {
  size_t n = wisp_buf_read(from, buf, len);
  if (wisp_buf_len(from) == 0 && eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (trailers->n) {
      if (nghttp2_submit_trailer(s, id, trailers->nv, trailers->n) != 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return (ssize_t)n;
  }
  return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

static ssize_t provide_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                            nghttp2_data_source *src, void *user_data) {
  h1req *r = src->ptr;
  ssize_t n = wisp_h1_provide(session, id, &r->body, r->body_eof, &r->trailers, buf, len, flags);
  if (*flags & NGHTTP2_DATA_FLAG_EOF) r->body_done = true;
  return n;
}

static wisp_err add_pseudo(wisp_hdrs *out, const char *name, const char *v, size_t len) {
  return wisp_hdrs_add(out, (const uint8_t *)name, strlen(name), (const uint8_t *)v, len, NGHTTP2_NV_FLAG_NONE);
}

/* :authority and :path from the request-target (origin-form, absolute-form
 * or "*") and Host. */
static wisp_err target_of(h1conn *h, const wisp_h1_head *hd, wisp_hdrs *out, const char **why) {
  const char *host = NULL;
  size_t host_len = 0;
  for (size_t i = 0; i < hd->nfields; i++) {
    if (hd->fields[i].name_len == 4 && memcmp(hd->fields[i].name, "host", 4) == 0) {
      host = hd->fields[i].value;
      host_len = hd->fields[i].value_len;
    }
  }
  const char *path = hd->target;
  size_t path_len = hd->target_len;
  if (path_len && path[0] != '/' && !(path_len == 1 && path[0] == '*')) {
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(hd->target, hd->target_len, 0, &u) != 0 || !(u.field_set & (1 << UF_HOST))) {
      *why = "bad request-target";
      return WISP_ERR_PROTO;
    }
    /* absolute-form: its authority wins over Host (RFC 9112 3.2.2) */
    host = hd->target + u.field_data[UF_HOST].off;
    host_len = u.field_data[UF_HOST].len;
    if (u.field_set & (1 << UF_PORT))
      host_len = (size_t)(u.field_data[UF_PORT].off + u.field_data[UF_PORT].len - u.field_data[UF_HOST].off);
    if (u.field_set & (1 << UF_PATH)) {
      path = hd->target + u.field_data[UF_PATH].off;
      path_len = hd->target_len - u.field_data[UF_PATH].off;
    } else {
      path = "/";
      path_len = 1;
    }
  }
  if (!host || host_len == 0) {
    host = h->authority;
    host_len = strlen(h->authority);
  }
  /* What the h2c side's nghttp2 would reset as a protocol error is refused
   * here: the reset was counted against the caller's --max-resets budget
   * (a GET * flood spent it at 2,000 a second, one tiny connection each). */
  if (path_len == 1 && path[0] == '*' && strcmp(hd->method, "OPTIONS") != 0) {
    *why = "the asterisk-form request-target (*) is for OPTIONS only";
    return WISP_ERR_PROTO;
  }
  if (!nghttp2_check_method((const uint8_t *)hd->method, strlen(hd->method)) ||
      !nghttp2_check_authority((const uint8_t *)host, host_len) ||
      !nghttp2_check_path((const uint8_t *)path, path_len)) {
    *why = "a method, host or path HTTP/2 does not allow";
    return WISP_ERR_PROTO;
  }
  WISP_GUARD(add_pseudo(out, ":method", hd->method, strlen(hd->method)));
  WISP_GUARD(add_pseudo(out, ":scheme", "http", 4));
  WISP_GUARD(add_pseudo(out, ":authority", host, host_len));
  return add_pseudo(out, ":path", path, path_len);
}

static void open_stream(h1conn *h, h1req *r, const wisp_h1_head *hd) {
  wisp_hdrs req = {0};
  const char *why = "request header fields over the proxy's bounds";
  wisp_err rc = target_of(h, hd, &req, &why);
  /* The caller's protocol, for the app's sidecar; the caller's own copy
   * of the field is not passed on. */
  const char *proto = wisp_stream_proto_name(hd->minor == 0 ? WISP_PROTO_HTTP10 : WISP_PROTO_HTTP11);
  if (rc == WISP_OK) rc = add_pseudo(&req, WISP_PROTO_HEADER, proto, strlen(proto));
  for (size_t i = 0; rc == WISP_OK && i < hd->nfields; i++) {
    const wisp_h1_field *f = &hd->fields[i];
    /* Expect: 100-continue goes on: the app or its sidecar answers 100 (or
     * refuses before the body is sent); HTTP/1.0 has no 100. */
    bool expect = f->name_len == 6 && memcmp(f->name, "expect", 6) == 0;
    if (wisp_h1_hop_by_hop(hd, f) || (expect && !r->expect_continue)) continue;
    if (f->name_len == strlen(WISP_PROTO_HEADER) && memcmp(f->name, WISP_PROTO_HEADER, f->name_len) == 0) continue;
    if (!nghttp2_check_header_name((const uint8_t *)f->name, f->name_len) ||
        !nghttp2_check_header_value_rfc9113((const uint8_t *)f->value, f->value_len)) {
      why = "a header field HTTP/2 does not allow";
      rc = WISP_ERR_PROTO;
      break;
    }
    rc = wisp_hdrs_add(&req, (const uint8_t *)f->name, f->name_len, (const uint8_t *)f->value, f->value_len,
                       NGHTTP2_NV_FLAG_NONE); /* HTTP/1 has no never-indexed mark */
  }
  if (rc != WISP_OK) {
    answer_local(h, r, 400, why);
  } else if (h->goaway) {
    answer_local(h, r, 503, "the proxy is draining this connection: retry on a new one");
  } else {
    nghttp2_data_provider prd = {.source.ptr = r, .read_callback = provide_body};
    int32_t id = nghttp2_submit_request(h->h2, NULL, req.nv, req.n, hd->has_body ? &prd : NULL, r);
    if (id < 0) {
      answer_local(h, r, 503, "cannot open an HTTP/2 stream for the request");
    } else {
      r->id = id;
      r->has_body = hd->has_body;
    }
  }
  wisp_hdrs_cleanup(&req);
}

/* Whether the request asks to upgrade to h2c only (curl --http2 on an
 * http:// URL): the gateway speaks HTTP/1 to it, so it is served as a plain
 * request (Upgrade and HTTP2-Settings are hop-by-hop, named by Connection,
 * and dropped) instead of going L4 to an app that would not expect it. */
static bool upgrade_is_h2c(const wisp_h1_head *hd) {
  for (size_t i = 0; i < hd->nfields; i++) {
    const wisp_h1_field *f = &hd->fields[i];
    if (f->name_len == 7 && strncasecmp(f->name, "upgrade", 7) == 0)
      return f->value_len == 3 && strncasecmp(f->value, "h2c", 3) == 0;
  }
  return false;
}

/* A CONNECT target is host:port and nothing else: one that is not is
 * refused here, not carried to the app for its parser to make sense of. */
static bool connect_target_ok(const wisp_h1_head *hd) {
  struct http_parser_url u;
  http_parser_url_init(&u);
  if (http_parser_parse_url(hd->target, hd->target_len, 1, &u) != 0) return false;
  return (u.field_set & (1 << UF_HOST)) && u.field_data[UF_HOST].len && u.port != 0;
}

static void on_req_head(void *arg, const wisp_h1_head *hd) {
  h1conn *h = arg;
  h1req *r = req_new(h);
  h->cur = r;
  r->is_head = strcmp(hd->method, "HEAD") == 0;
  r->http10 = hd->minor == 0;
  r->keep_alive = hd->keep_alive;
  r->close_after = !hd->keep_alive;
  r->expect_continue = hd->expect_continue && !r->http10;
  if (!hd->has_body) r->body_eof = true;
  bool connect = strcmp(hd->method, "CONNECT") == 0;
  if (connect && !connect_target_ok(hd)) {
    answer_local(h, r, 400, "CONNECT needs host:port (authority-form, RFC 9112 3.2.3) as its target");
    return;
  }
  if (connect || (hd->upgrade && !hd->has_body && !upgrade_is_h2c(hd))) {
    /* Carried as an L4 stream to the same destination, request and all: the
     * app answers it (101, or 200 to CONNECT) and the bytes flow on. The
     * peer's policy judges identity and port, as for any L4 stream. */
    r->upgrade = true;
    h->upgrading = true;
    if (wisp_buf_append(&h->upgrade, wisp_buf_rptr(&h->parser.head), wisp_buf_len(&h->parser.head), WISP_H1_BUF_CAP) !=
        WISP_OK)
      answer_local(h, r, 500, "cannot keep the upgrade request");
    return;
  }
  open_stream(h, r, hd);
}

static void on_req_body(void *arg, const uint8_t *data, size_t len) {
  h1conn *h = arg;
  h1req *r = h->cur;
  if (!r || r->local_status || r->stream_closed) return; /* nobody will read it */
  if (wisp_buf_append(&r->body, data, len, WISP_H1_BUF_CAP) != WISP_OK) {
    answer_local(h, r, 500, "request body buffer overflow");
    return;
  }
  nghttp2_session_resume_data(h->h2, r->id);
}

static void on_req_end(void *arg, const wisp_h1_field *t, size_t nt) {
  h1conn *h = arg;
  h1req *r = h->cur;
  h->cur = NULL;
  if (!r) return;
  r->body_eof = true;
  for (size_t i = 0; i < nt && !r->local_status; i++) {
    if (wisp_hdrs_add(&r->trailers, (const uint8_t *)t[i].name, t[i].name_len, (const uint8_t *)t[i].value,
                      t[i].value_len, NGHTTP2_NV_FLAG_NONE) != WISP_OK)
      answer_local(h, r, 400, "request trailers over the proxy's bounds");
  }
  if (r->id && !r->stream_closed) nghttp2_session_resume_data(h->h2, r->id);
}

static const wisp_h1parse_cbs kReqCbs = {on_req_head, on_req_body, on_req_end};

/* ---- HTTP/2 client session callbacks: the responses ---- */

static h1req *req_of(nghttp2_session *s, int32_t id) { return nghttp2_session_get_stream_user_data(s, id); }

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
  h1req *r = req_of(session, frame->hd.stream_id);
  if (!r || frame->hd.type != NGHTTP2_HEADERS) return 0;
  wisp_hdrs *dst = r->resp_head ? &r->resp_trailers : &r->resp;
  if (wisp_hdrs_add(dst, name, namelen, value, valuelen, flags) != WISP_OK)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  h1conn *h = user_data;
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    h->goaway = true;
    return 0;
  }
  h1req *r = req_of(session, frame->hd.stream_id);
  if (!r) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && !r->resp_head) {
    const char *st = wisp_hdrs_get(&r->resp, ":status");
    if (st && st[0] == '1') {
      if (strcmp(st, "100") == 0 && r->expect_continue) r->continue_got = true; /* written in turn (write_responses) */
      wisp_hdrs_cleanup(&r->resp);                                              /* 1xx: wait for the final response */
      return 0;
    }
    r->resp_head = true;
  }
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
    r->resp_eof = true;
  return 0;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                              void *user_data) {
  h1req *r = req_of(session, id);
  if (!r || r->local_status || r->is_head || wisp_buf_append(&r->resp_body, data, len, WISP_H1_BUF_CAP) != WISP_OK) {
    nghttp2_session_consume(session, id, len); /* nobody wants it */
  }
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t code, void *user_data) {
  h1req *r = req_of(session, id);
  if (!r) return 0;
  r->stream_closed = true;
  if (!r->resp_eof) r->aborted = true;
  wisp_buf_cleanup(&r->body);              /* nobody reads the rest of the request */
  if (!r->body_eof) r->close_after = true; /* the rest of its body will not be read: the connection ends */
  return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  h1req *r = frame->hd.type == NGHTTP2_HEADERS ? req_of(session, frame->hd.stream_id) : NULL;
  if (r) r->headers_sent = true;
  return 0;
}

/* Built once for every worker thread (--workers): pthread_once, so two
 * workers taking their first connection at once never see it half set. */
static nghttp2_session_callbacks *g_cbs;

static void build_callbacks(void) {
  nghttp2_session_callbacks *cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0) abort();
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  g_cbs = cbs;
}

static nghttp2_session_callbacks *callbacks(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, build_callbacks);
  return g_cbs;
}

static nghttp2_option *g_option;

static void build_option(void) {
  if (nghttp2_option_new(&g_option) != 0) abort();
  nghttp2_option_set_no_auto_window_update(g_option, 1);
}

nghttp2_option *wisp_h1_session_option(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, build_option);
  return g_option;
}

static nghttp2_session *session_new(h1conn *h) {
  nghttp2_session *s;
  /* nghttp2's per-stream allocations (about five per request) from this
   * thread's wisp_slab freelists, as the HTTP/2 connections' (issue 15). */
  if (nghttp2_session_client_new3(&s, callbacks(), h, wisp_h1_session_option(), wisp_h2conn_mem()) != 0) abort();
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, WISP_H1_PIPELINE},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H1_BEHIND_WINDOW},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 3);
  nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, H1_CONN_WINDOW);
  return s;
}

/* ---- HTTP/2 response -> HTTP/1 ---- */

bool wisp_h1_printf(wisp_buf *out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wisp_err rc = wisp_buf_vprintf(out, WISP_H1_BUF_CAP, fmt, ap);
  va_end(ap);
  return rc == WISP_OK;
}

bool wisp_h1_put_line(wisp_buf *out, const char *a, size_t alen, const char *b, size_t blen, const char *c,
                      size_t clen) {
  uint8_t *at = wisp_buf_extend(out, alen + blen + clen, WISP_H1_BUF_CAP);
  if (!at) return false;
  if (alen) memcpy(at, a, alen);
  if (blen) memcpy(at + alen, b, blen);
  if (clen) memcpy(at + alen + blen, c, clen);
  return true;
}

bool wisp_h1_put_field(wisp_buf *out, const nghttp2_nv *nv) {
  uint8_t *at = wisp_buf_extend(out, nv->namelen + nv->valuelen + 4, WISP_H1_BUF_CAP);
  if (!at) return false;
  if (nv->namelen) memcpy(at, nv->name, nv->namelen);
  at += nv->namelen;
  *at++ = ':';
  *at++ = ' ';
  if (nv->valuelen) memcpy(at, nv->value, nv->valuelen);
  at += nv->valuelen;
  *at++ = '\r';
  *at = '\n';
  return true;
}

bool wisp_h1_put_status_line(wisp_buf *out, int status) {
  if (status < 100 || status > 999)
    return wisp_h1_printf(out, "HTTP/1.1 %d %s\r\n", status, wisp_h1_reason_phrase(status));
  char head[] = "HTTP/1.1 000 ";
  head[9] = (char)('0' + status / 100);
  head[10] = (char)('0' + status / 10 % 10);
  head[11] = (char)('0' + status % 10);
  const char *reason = wisp_h1_reason_phrase(status);
  return wisp_h1_put_line(out, head, sizeof(head) - 1, reason, strlen(reason), "\r\n", 2);
}

void wisp_h1_put_fields(wisp_buf *out, const wisp_hdrs *h) {
  for (size_t i = 0; i < h->n; i++) {
    const nghttp2_nv *nv = &h->nv[i];
    if (nv->namelen && nv->name[0] == ':') continue;
    wisp_h1_put_field(out, nv);
  }
}

size_t wisp_h1_put_body(wisp_buf *out, wisp_buf *from, bool chunked) {
  size_t moved = 0;
  while (wisp_buf_len(from) && wisp_buf_len(out) < WISP_H1_OUT_HIGH) {
    size_t n = wisp_buf_len(from);
    if (n > H1_READ_CHUNK) n = H1_READ_CHUNK;
    if (chunked) wisp_h1_printf(out, "%zx\r\n", n);
    if (wisp_buf_append(out, wisp_buf_rptr(from), n, WISP_H1_BUF_CAP) != WISP_OK) break;
    if (chunked) WISP_H1_PUT_LIT(out, "\r\n");
    wisp_buf_consume(from, n);
    moved += n;
  }
  return moved;
}

void wisp_h1_put_last_chunk(wisp_buf *out, const wisp_hdrs *trailers) {
  WISP_H1_PUT_LIT(out, "0\r\n");
  wisp_h1_put_fields(out, trailers);
  WISP_H1_PUT_LIT(out, "\r\n");
}

/* Lines of requests the gateway answers itself: a caller can send bad heads
 * as fast as it likes, so they pass a limiter as reset streams' do. */
#define H1_REFUSED_LOG_BURST 20
#define H1_REFUSED_LOG_WINDOW 1.0

/* A request answered here without a stream (400, 408, 417, 431, 501, 505,
 * 503 at the head budget, ...) reaches no request line of the HTTP/2 path:
 * it gets its own, and counts in /metrics, so smuggling attempts and
 * floods are seen. Answers to a request that had a stream are that
 * stream's to log. */
static void log_local(h1conn *h, const h1req *r) {
  static _Thread_local wisp_log_limit lines =
      WISP_LOG_LIMIT_INIT("request lines of HTTP/1 requests the proxy refused", H1_REFUSED_LOG_BURST,
                          H1_REFUSED_LOG_WINDOW, WISP_LOG_TO_STDOUT);
  if (r->id) return;
  wisp_stats_finished(&h->px->stats, WISP_DIR_OUTBOUND, r->local_status);
  wisp_metrics_request mr = {.status = r->local_status, .grpc_status = -1};
  wisp_metrics_request_done(h->px->metrics, &mr);
  uint64_t suppressed = 0;
  if (!wisp_log_limit_pass(&lines, wisp_log_now(), &suppressed)) return;
  wisp_json j;
  wisp_json_begin(&j, "request");
  wisp_json_str(&j, "direction", "outbound");
  wisp_json_str(&j, "protocol", "http1");
  wisp_json_str(&j, "peer_addr", h->peer);
  wisp_json_int(&j, "status", r->local_status);
  wisp_json_str(&j, "upstream", h->dst->name);
  wisp_json_str(&j, "error", r->local_why);
  if (suppressed) wisp_json_int(&j, "suppressed", (int64_t)suppressed);
  wisp_json_emit(&j);
}

/* The reason goes into a header field: a CR or LF in it (a peer's or a
 * library's text) would end the field and start the caller's next ones,
 * so control bytes become spaces, there and in the body alike. */
#define H1_ERROR_REASON_MAX 512 /* a longer reason is cut there */
static void field_safe(char *dst, size_t cap, const char *src) {
  size_t i = 0;
  for (; src[i] && i + 1 < cap; i++) dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? ' ' : src[i];
  dst[i] = '\0';
}

void wisp_h1_put_error(wisp_buf *out, int status, const char *why) {
  char safe[H1_ERROR_REASON_MAX];
  field_safe(safe, sizeof(safe), why);
  wisp_h1_printf(out,
                 "HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %zu\r\n"
                 "x-wisp-error: %s\r\nconnection: close\r\n\r\n%s\n",
                 status, wisp_h1_reason_phrase(status), strlen(safe) + 1, safe, safe);
}

static void write_local(h1conn *h, h1req *r) {
  log_local(h, r);
  wisp_h1_put_error(&h->out, r->local_status, r->local_why);
  r->head_written = r->end_written = true;
}

static bool skip_response_field(const nghttp2_nv *nv) {
  static const char *const kSkip[] = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"};
  if (nv->namelen && nv->name[0] == ':') return true;
  for (size_t i = 0; i < sizeof(kSkip) / sizeof(kSkip[0]); i++) {
    if (nv->namelen == strlen(kSkip[i]) && memcmp(nv->name, kSkip[i], nv->namelen) == 0) return true;
  }
  return false;
}

static void write_head(h1conn *h, h1req *r) {
  const char *st = wisp_hdrs_get(&r->resp, ":status");
  int status = st ? atoi(st) : 502;
  bool bodiless = r->is_head || status == 204 || status == 304 || status / 100 == 1;
  bool has_length = wisp_hdrs_get(&r->resp, "content-length") != NULL;
  if (!bodiless && !has_length) {
    if (r->http10) {
      r->close_after = true; /* the body ends when the connection does */
    } else {
      r->chunked_out = true;
    }
  }
  if (h->goaway && r == h->tail && h->cur == NULL) r->close_after = true;
  /* A response already whole (a refusal) while its request body is still
   * coming: the rest of the body will not be read, so the connection ends
   * after it, and the client must be told, or it sends its next request
   * on a connection we are closing (and gets no answer). */
  if (!r->body_eof && (r->resp_eof || r->stream_closed)) r->close_after = true;
  wisp_h1_put_status_line(&h->out, status);
  for (size_t i = 0; i < r->resp.n; i++) {
    const nghttp2_nv *nv = &r->resp.nv[i];
    if (skip_response_field(nv)) continue;
    wisp_h1_put_field(&h->out, nv);
  }
  if (r->chunked_out) WISP_H1_PUT_LIT(&h->out, "transfer-encoding: chunked\r\n");
  if (r->close_after) {
    WISP_H1_PUT_LIT(&h->out, "connection: close\r\n\r\n");
  } else if (r->http10) {
    WISP_H1_PUT_LIT(&h->out, "connection: keep-alive\r\n\r\n");
  } else {
    WISP_H1_PUT_LIT(&h->out, "\r\n");
  }
  r->head_written = true;
}

/* Moves response bytes of |r| to the client's buffer while it has room,
 * acknowledging them to the stream as they go. */
static void write_body(h1conn *h, h1req *r) {
  size_t n = wisp_h1_put_body(&h->out, &r->resp_body, r->chunked_out);
  if (n) nghttp2_session_consume(h->h2, r->id, n);
  if (wisp_buf_len(&r->resp_body) || !r->resp_eof) return;
  if (r->chunked_out) wisp_h1_put_last_chunk(&h->out, &r->resp_trailers);
  r->end_written = true;
}

/* The Upgrade/CONNECT request's turn came (every earlier response is out):
 * the caller's socket, the request's head and whatever followed it go to an
 * L4 tunnel to the same destination, with the caller's connection slot. */
static void hand_over(h1conn *h) {
  wisp_buf all = {0};
  if (wisp_buf_append(&all, wisp_buf_rptr(&h->upgrade), wisp_buf_len(&h->upgrade), 2 * WISP_H1_BUF_CAP) != WISP_OK ||
      wisp_buf_append(&all, wisp_buf_rptr(&h->in), wisp_buf_len(&h->in), 2 * WISP_H1_BUF_CAP) != WISP_OK) {
    wisp_buf_cleanup(&all);
    h->closing = true;
    return;
  }
  int fd = h->fd;
  h->fd = -1;
  h->dead = true;
  wisp_tunnel_outbound_after(h->px, fd, h->peer, h->dst, &h->slot, wisp_buf_rptr(&all), wisp_buf_len(&all));
  wisp_buf_cleanup(&all);
}

/* Writes what is ready of the responses, in request order. */
static void write_responses(h1conn *h) {
  h1req *r;
  while ((r = h->head) != NULL && !h->closing) {
    if (r->upgrade && !r->local_status) {
      if (wisp_buf_len(&h->out) == 0) hand_over(h);
      return;
    }
    if (r->aborted && !r->resp_head && !r->local_status)
      answer_local(h, r, 502, "the upstream stream ended without a response");
    if (r->continue_got && !r->continue_sent && !r->local_status && !r->head_written) {
      /* the 100 came before the final response: in that order */
      wisp_h1_printf(&h->out, "HTTP/1.1 100 Continue\r\n\r\n");
      r->continue_sent = true;
    }
    if (r->local_status && !r->head_written) {
      write_local(h, r);
    } else if (r->resp_head) {
      if (!r->head_written) write_head(h, r);
      write_body(h, r);
      if (!r->end_written && r->aborted && wisp_buf_len(&r->resp_body) == 0) {
        h->closing = true; /* cut short: only a close tells an HTTP/1 client */
        return;
      }
    }
    if (!r->end_written) return;
    /* A response complete before its request body: the rest of the body
     * is not read, so nothing after it can be either. */
    if (!r->body_eof) r->close_after = true;
    if (r->close_after) h->closing = true;
    /* A stream whose body nghttp2 has not taken whole still holds |r| as
     * its data source: the reset (sent before any DATA) closes it first,
     * so nghttp2 never reads the freed request. */
    if (r->id && !r->stream_closed && (!r->body_eof || (r->has_body && !r->body_done))) {
      nghttp2_submit_rst_stream(h->h2, NGHTTP2_FLAG_NONE, r->id, NGHTTP2_CANCEL);
    }
    if (r->id && !r->stream_closed) {
      nghttp2_session_set_stream_user_data(h->h2, r->id, NULL);
    }
    if (h->cur == r) h->cur = NULL;
    h->head = r->next;
    if (!h->head) h->tail = NULL;
    h->nreqs--;
    req_free(r);
  }
}

/* ---- head budgets ----
 * A head (up to 64 KiB) and a request's trailers are held while they
 * arrive, as HTTP/2 header sections are: they count against the process's
 * --buffer-limit (with body and HTTP/2 header bytes, px->hdr_held) and the
 * caller's --conn-buffer-limit. A caller that finds the budget spent gets
 * 503 and a close instead of memory taken from the other callers. */
static void head_charge(h1conn *h, size_t held) {
  h->px->hdr_held = h->px->hdr_held - h->hdr_held + held;
  h->hdr_held = held;
}

static size_t head_bytes(const h1conn *h) { return wisp_buf_len(&h->parser.head) + wisp_buf_len(&h->parser.tbuf); }

/* A refused or finished gateway parses no more: what its parser holds goes
 * now, not when the h2c side has closed. */
static void head_release(h1conn *h) {
  wisp_h1parse_cleanup(&h->parser);
  wisp_h1parse_init(&h->parser, HTTP_REQUEST, &kReqCbs, h);
  head_charge(h, 0);
}

/* Why |more| bytes of a head cannot be held now, or NULL. */
static const char *head_budget_spent(const h1conn *h, size_t more) {
  const wisp_proxy *px = h->px;
  if (h->hdr_held + more > px->cfg->conn_buffer_limit)
    return "the request head is over --conn-buffer-limit: retry later";
  if (px->hdr_held + px->buffered + more > px->cfg->buffer_limit)
    return "the proxy holds its --buffer-limit of header and body bytes: retry later";
  return NULL;
}

/* ---- sockets ---- */

void wisp_h1_gw_add(wisp_proxy *px, wisp_h1_gw *gw, void (*free_fn)(wisp_h1_gw *gw)) {
  gw->free_fn = free_fn;
  wisp_list_push_front(&px->h1_gws, &gw->link);
}

void wisp_h1_gw_remove(wisp_proxy *px, wisp_h1_gw *gw) { wisp_list_unlink(&gw->link); }

void wisp_h1_close_all(wisp_proxy *px) {
  for (wisp_list *n; (n = wisp_list_first(&px->h1_gws)) != NULL;) {
    wisp_h1_gw *gw = WISP_LIST_ELEM(n, wisp_h1_gw, link);
    gw->free_fn(gw); /* takes it off the list */
  }
}

static void close_all(h1conn *h) {
  wisp_h1_gw_remove(h->px, &h->gw);
  ev_io_stop(h->loop, &h->rio);
  ev_io_stop(h->loop, &h->wio);
  ev_timer_stop(h->loop, &h->linger);
  ev_timer_stop(h->loop, &h->head_timer);
  if (h->fd >= 0) close(h->fd);
  wisp_pipe_close(h->sp);
  wisp_connlimit_release(&h->slot);
  wisp_buf_cleanup(&h->upgrade);
  h1req *r;
  while ((r = h->head) != NULL) {
    h->head = r->next;
    req_free(r);
  }
  nghttp2_session_del(h->h2);
  wisp_h1parse_cleanup(&h->parser);
  head_charge(h, 0);
  wisp_buf_cleanup(&h->in);
  wisp_buf_cleanup(&h->out);
  wisp_buf_cleanup(&h->sout);
  free(h);
}

static void on_linger_end(struct ev_loop *loop, ev_timer *w, int revents) { close_all(w->data); }

/* The gateway is freed once both ends are done with it. */
static void linger_check(h1conn *h) {
  if (!h->lingering && !h->draining) close_all(h);
}

/* The client's part of a lingering close: its bytes are dropped until its
 * FIN, an error, or H1_DRAIN_BYTES; then its socket goes. */
static void drain_client(h1conn *h) {
  uint8_t buf[H1_READ_CHUNK];
  for (;;) {
    ssize_t n = recv(h->fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n > 0 && (h->drained += (size_t)n) < H1_DRAIN_BYTES) continue;
    break;
  }
  ev_io_stop(h->loop, &h->rio);
  close(h->fd);
  h->fd = -1;
  h->draining = false;
  linger_check(h);
}

/* The gateway is done: the client gets our FIN and has its remaining bytes
 * read and dropped (unless it already closed); the h2c side gets our FIN
 * and closes in its own time (closing our end at once would break its
 * pending write and log a failure for an orderly end). */
static void linger(h1conn *h) {
  head_release(h);
  ev_io_stop(h->loop, &h->rio);
  ev_io_stop(h->loop, &h->wio);
  ev_timer_stop(h->loop, &h->head_timer);
  h->draining = h->fd >= 0 && !h->client_eof && shutdown(h->fd, SHUT_WR) == 0;
  if (h->draining) {
    ev_io_start(h->loop, &h->rio);
  } else if (h->fd >= 0) {
    close(h->fd);
    h->fd = -1;
  }
  h->lingering = h->s_open;
  if (h->lingering) wisp_pipe_shutdown(h->sp);
  wisp_pipe_want(h->sp, h->lingering, false); /* its EOF, once it closed */
  if (!h->lingering && !h->draining) {
    close_all(h);
    return;
  }
  ev_timer_init(&h->linger, on_linger_end, h->draining ? H1_DRAIN_TIME : H1_LINGER, 0);
  h->linger.data = h;
  ev_timer_start(h->loop, &h->linger);
}

bool wisp_h1_flush(int fd, wisp_buf *b) {
  while (wisp_buf_len(b)) {
    ssize_t n = send(fd, wisp_buf_rptr(b), wisp_buf_len(b), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) return false;
    wisp_buf_consume(b, (size_t)n);
  }
  wisp_buf_cleanup(b); /* an idle connection holds no buffer */
  return true;
}

/* The client's FIN, once everything it sent before was parsed: a request
 * cut short is cancelled. */
static void client_fin(h1conn *h) {
  h->eof_seen = true;
  if (wisp_h1parse_eof(&h->parser) != WISP_H1P_ERROR) return;
  if (h->cur && h->cur->id && !h->cur->stream_closed)
    nghttp2_submit_rst_stream(h->h2, NGHTTP2_FLAG_NONE, h->cur->id, NGHTTP2_CANCEL);
  h->closing = h->head == NULL || h->cur != NULL;
  h->cur = NULL;
}

/* Parses what was read while the next request may be taken. */
static void parse_input(h1conn *h) {
  while (wisp_buf_len(&h->in) && !h->refused && !h->closing && !h->upgrading) {
    if (h->client_eof && !h->cur && wisp_h1parse_idle(&h->parser)) {
      /* Requests pipelined past those in progress when the caller's FIN
       * came are not taken: a caller that closed its connection (which a
       * FIN cannot be told from) would have them reach the app after it
       * left. Those in progress are answered; then the connection closes
       * (a pipelining client retries what was not answered). */
      wisp_buf_cleanup(&h->in);
      break;
    }
    if (h->nreqs >= WISP_H1_PIPELINE && wisp_h1parse_idle(&h->parser)) return;
    if (h->cur && wisp_buf_len(&h->cur->body) >= WISP_H1_BODY_HIGH) return;
    const char *spent = h->cur ? NULL : head_budget_spent(h, 1);
    if (spent) {
      answer_local(h, req_new(h), 503, spent);
      break;
    }
    size_t used = 0;
    wisp_h1p_result res = wisp_h1parse_feed(&h->parser, wisp_buf_rptr(&h->in), wisp_buf_len(&h->in), &used);
    wisp_buf_consume(&h->in, used);
    head_charge(h, head_bytes(h));
    if (res == WISP_H1P_ERROR) {
      h1req *r = h->cur ? h->cur : req_new(h);
      h->cur = NULL;
      answer_local(h, r, h->parser.status, h->parser.why);
    }
    if (res == WISP_H1P_END && h->tail && h->tail->close_after) h->refused = true; /* nothing after "close" */
  }
  if (h->refused && !h->cur) head_release(h);
  if (wisp_buf_len(&h->in) == 0) wisp_buf_cleanup(&h->in);
  if (h->client_eof && !h->eof_seen && wisp_buf_len(&h->in) == 0) client_fin(h);
}

/* The client is read while what waits to be parsed is small, even with
 * the pipeline full or a body waiting for its window: its FIN or reset is
 * seen at once, not once the requests before it are answered. */
static bool may_read_client(const h1conn *h) {
  if (h->client_eof || h->refused || h->closing || h->upgrading) return false;
  return wisp_buf_len(&h->in) < H1_IN_HIGH;
}

static void read_client(h1conn *h) {
  uint8_t buf[H1_READ_CHUNK];
  size_t room = H1_IN_HIGH - wisp_buf_len(&h->in); /* may_read_client: > 0 */
  ssize_t n = recv(h->fd, buf, room < sizeof(buf) ? room : sizeof(buf), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n < 0) {
    /* A reset: the caller is gone. Closing the h2c side cancels every
     * request it had in progress (wisp_conn), those waiting for an
     * upstream stream too, at once. */
    h->client_eof = h->eof_seen = h->closing = true;
    h->cur = NULL;
    wisp_buf_cleanup(&h->in);
    return;
  }
  if (n == 0) {
    h->client_eof = true;
    parse_input(h); /* told to the parser once what came before is parsed */
    return;
  }
  if (wisp_buf_append(&h->in, buf, (size_t)n, WISP_H1_BUF_CAP) != WISP_OK) h->closing = true;
  parse_input(h);
}

static bool read_h2(h1conn *h) {
  uint8_t buf[H1_READ_CHUNK];
  ssize_t n = wisp_pipe_read(h->sp, buf, sizeof(buf));
  if (n == WISP_PIPE_AGAIN) return true;
  if (n <= 0) return false;
  return nghttp2_session_mem_recv(h->h2, buf, (size_t)n) >= 0;
}

bool wisp_h1_send(nghttp2_session *s, wisp_pipe_end *e, wisp_buf *out) {
  while (wisp_buf_len(out) < WISP_H1_OUT_HIGH) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(s, &data);
    if (n < 0) return false;
    if (n == 0) break;
    if (wisp_buf_append(out, data, (size_t)n, WISP_H1_BUF_CAP) != WISP_OK) return false;
  }
  while (wisp_buf_len(out)) {
    ssize_t n = wisp_pipe_write(e, wisp_buf_rptr(out), wisp_buf_len(out));
    if (n == WISP_PIPE_AGAIN) return true;
    if (n <= 0) return false;
    wisp_buf_consume(out, (size_t)n);
  }
  wisp_buf_cleanup(out); /* an idle connection holds no buffer */
  return true;
}

/* The h2c side is gone: requests without a response get a 502 (written
 * out in order), then the client connection closes. */
static void h2_gone(h1conn *h) {
  for (h1req *r = h->head; r; r = r->next) {
    if (!r->resp_eof) r->aborted = true;
    r->stream_closed = true;
    r->close_after = true;
  }
  h->refused = true;
  h->s_open = false;
  wisp_pipe_want(h->sp, false, false);
}

/* A head that trickles in (slowloris) holds the connection no longer than
 * an HTTP/2 caller may take for its preface: 408, then closed. */
static void on_head_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  h1conn *h = w->data;
  answer_local(h, req_new(h), 408, "the request head did not arrive whole within --handshake-timeout");
  h->cur = NULL;
  pump(h);
}

/* The head timer runs while part of a head is in and more is read. */
static void arm_head_timer(h1conn *h) {
  bool waiting = !h->cur && !wisp_h1parse_idle(&h->parser) && may_read_client(h);
  if (!waiting) {
    ev_timer_stop(h->loop, &h->head_timer);
  } else if (!ev_is_active(&h->head_timer)) {
    ev_timer_set(&h->head_timer, h->px->cfg->handshake_timeout, 0);
    ev_timer_start(h->loop, &h->head_timer);
  }
}

/* The head of the line's response may come: its stream gets its window,
 * once its HEADERS went out (a WINDOW_UPDATE must not precede them). An
 * increment, not a size: the proxy took our SETTINGS (window 0) before the
 * stream, while nghttp2 counts streams opened before their ACK from the
 * default window, so a size would open it by a byte. */
static void open_head_window(h1conn *h) {
  h1req *r = h->head;
  if (!r || !r->headers_sent || r->window_open || r->stream_closed) return;
  if (nghttp2_submit_window_update(h->h2, NGHTTP2_FLAG_NONE, r->id, H1_STREAM_WINDOW) == 0) r->window_open = true;
}

static void pump(h1conn *h) {
  if (h->in_pump) return;
  h->in_pump = true;
  bool h2_ok = h->s_open;
  for (int round = 0; round < 4; round++) {
    parse_input(h);
    open_head_window(h);
    if (h2_ok && !wisp_h1_send(h->h2, h->sp, &h->sout)) {
      h2_gone(h);
      h2_ok = false;
    }
    write_responses(h);
    if (h->dead) break; /* handed over */
    if (!wisp_h1_flush(h->fd, &h->out)) {
      h->dead = true;
      break;
    }
  }
  /* What the last round's writing made nghttp2 owe (window updates, the
   * new head's window) goes now: no event may come for it otherwise. */
  if (!h->dead && h2_ok) {
    open_head_window(h);
    if (!wisp_h1_send(h->h2, h->sp, &h->sout)) {
      h2_gone(h);
      h2_ok = false;
    }
  }
  bool idle = h->head == NULL;
  if (idle && (h->client_eof || h->goaway || h->refused) && !h->dead) h->closing = true;
  if (h->closing && wisp_buf_len(&h->out) == 0) h->dead = true;
  if (!h2_ok && idle) h->dead = true;
  h->in_pump = false;
  if (h->dead) {
    linger(h);
    return;
  }
  arm_head_timer(h);
  if (may_read_client(h)) {
    ev_io_start(h->loop, &h->rio);
  } else {
    ev_io_stop(h->loop, &h->rio);
  }
  if (wisp_buf_len(&h->out)) {
    ev_io_start(h->loop, &h->wio);
  } else {
    ev_io_stop(h->loop, &h->wio);
  }
  if (h2_ok) wisp_pipe_want(h->sp, true, wisp_buf_len(&h->sout) > 0);
}

static void free_gw(wisp_h1_gw *gw) { close_all((h1conn *)gw); }

static void on_client_readable(struct ev_loop *loop, ev_io *w, int revents) {
  h1conn *h = w->data;
  if (h->draining) {
    drain_client(h);
    return;
  }
  read_client(h);
  pump(h);
}

static void on_client_writable(struct ev_loop *loop, ev_io *w, int revents) { pump(w->data); }

/* The h2c side's end is readable or has room (lib/wisp_pipe). */
static void on_h2_pipe(wisp_pipe_end *e, int events, void *arg) {
  h1conn *h = arg;
  if (h->lingering || h->draining) {
    if (!(events & WISP_PIPE_READ)) return;
    uint8_t buf[H1_READ_CHUNK];
    ssize_t n = wisp_pipe_read(h->sp, buf, sizeof(buf));
    if (n == 0 || n == WISP_PIPE_ERROR) {
      wisp_pipe_want(h->sp, false, false);
      h->s_open = h->lingering = false;
      linger_check(h);
    }
    return;
  }
  if ((events & WISP_PIPE_READ) && !read_h2(h)) h2_gone(h);
  pump(h);
}

void wisp_h1_accept(wisp_listener *l, wisp_target *dst, int fd, const char *peer, wisp_connlimit_slot *slot,
                    ev_tstamp accepted) {
  h1conn *h = wisp_calloc(1, sizeof(*h));
  /* Its socket buffers are emptied and released after every request (an
   * idle connection holds none): from wisp_slab, that costs a pointer
   * swap, not malloc and free (issue 15). */
  h->in.slab = h->out.slab = h->sout.slab = true;
  h->px = l->px;
  h->loop = l->px->loop;
  h->fd = fd;
  wisp_pipe_end *theirs;
  wisp_pipe_new(&l->px->lp.pipes, &theirs, &h->sp);
  wisp_pipe_set_cb(h->sp, on_h2_pipe, h);
  h->s_open = true;
  h->dst = dst;
  snprintf(h->peer, sizeof(h->peer), "%s", peer);
  wisp_connlimit_move(&h->slot, slot); /* ours: it moves to a tunnel on Upgrade */
  snprintf(h->authority, sizeof(h->authority), "%s", dst->name);
  h->h2 = session_new(h);
  wisp_h1_gw_add(h->px, &h->gw, free_gw);
  wisp_h1parse_init(&h->parser, HTTP_REQUEST, &kReqCbs, h);
  ev_io_init(&h->rio, on_client_readable, fd, EV_READ);
  ev_io_init(&h->wio, on_client_writable, fd, EV_WRITE);
  h->rio.data = h->wio.data = h;
  ev_init(&h->head_timer, on_head_timeout);
  h->head_timer.data = h;
  wisp_pipe_want(h->sp, true, false);
  /* The listener's HTTP/2 path takes the other end as an h2c caller. It
   * gets the caller's key but no place of its own (ours is the place):
   * with an empty key every HTTP/1 caller shared one --max-resets budget,
   * so one resetter got the HTTP/1 callers of every address refused. */
  wisp_connlimit_slot who = {.key = h->slot.key};
  wisp_transport tp;
  wisp_transport_init_pipe(&tp, theirs);
  wisp_conn_accept_h2c(l, dst, &tp, peer, &who, accepted, true);
  pump(h);
}

/* ---- transparent mode: is it really HTTP/1? ---- */

typedef wisp_conn_pending h1detect;

static wisp_sniff_proto request_line(const uint8_t *d, size_t len) {
  int r = wisp_h1_request_line(d, len);
  return r > 0 ? WISP_SNIFF_HTTP1 : r == 0 ? WISP_SNIFF_OTHER : WISP_SNIFF_NEED_MORE;
}

static void on_detected(int fd, wisp_sniff_proto proto, void *arg) {
  h1detect *d = arg;
  wisp_conn_pending_done(d);
  if (proto == WISP_SNIFF_HTTP1) {
    wisp_h1_accept(d->l, d->dst, fd, d->peer, &d->slot, d->accepted);
  } else if (proto != WISP_SNIFF_CLOSED) {
    wisp_tunnel_outbound(d->l->px, fd, d->peer, d->dst, &d->slot);
  }
  wisp_connlimit_release(&d->slot); /* the caller left meanwhile */
  wisp_proxy_release_target(d->dst);
  free(d);
}

void wisp_h1_detect(wisp_listener *l, wisp_target *dst, int fd, const char *peer, wisp_connlimit_slot *slot,
                    ev_tstamp accepted, double timeout) {
  h1detect *d = wisp_calloc(1, sizeof(*d));
  d->l = l;
  d->dst = dst;
  d->accepted = accepted;
  snprintf(d->peer, sizeof(d->peer), "%s", peer);
  wisp_connlimit_move(&d->slot, slot);
  wisp_proxy_hold_target(dst);
  wisp_conn_pending_sniff(d, fd, timeout, request_line, WISP_H1_LINE_MAX, on_detected);
}
