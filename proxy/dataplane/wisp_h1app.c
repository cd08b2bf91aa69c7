#include "proxy/dataplane/wisp_h1app.h"

#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/wisp_h1parse.h"
#include "lib/wisp_mem.h"
#include "proxy/dataplane/wisp_h1.h"

#define APP_READ_CHUNK (16 * 1024)
/* The windows the gateway grants the proxy: the HTTP/2 default per stream;
 * the connection's is returned as bytes arrive (streams bound memory). */
#define APP_STREAM_WINDOW (64 * 1024)
#define APP_MAX_STREAMS 100

typedef struct appreq appreq;
typedef struct appconn appconn;

typedef struct {
  wisp_h1_gw gw; /* first: on the proxy's list */
  wisp_proxy *px;
  struct ev_loop *loop;
  wisp_addr addr;
  char name[64];
  wisp_pipe_end *sp; /* our end of the pipe to the proxy's upstream connection */
  nghttp2_session *h2;
  wisp_buf sout;
  appconn *conns; /* every app connection, busy or idle */
  wisp_list reqs; /* every open stream (appreq.link) */
  bool in_pump;
} h1app;

struct appreq {
  h1app *g;
  wisp_list link; /* in g->reqs */
  int32_t id;
  wisp_hdrs req, trailers;
  bool headers_done;
  bool req_eof;  /* END_STREAM from the proxy */
  wisp_buf body; /* request bytes for the app */
  bool chunked;  /* sent to the app chunked */
  bool sent_end; /* the whole request went to the app connection */
  bool is_head;
  appconn *ac;
  /* response */
  bool resp_started;
  wisp_buf resp;
  bool resp_eof;
  wisp_hdrs resp_trailers;
  const char *local_why; /* answered by the gateway: static reason */
  char why[160];
};

struct appconn {
  h1app *g;
  appconn *next;
  int fd;
  ev_io rio, wio;
  ev_timer connect_timer; /* --connect-timeout while connecting */
  bool connecting;
  bool dead;
  bool keep_alive;
  wisp_buf out;
  wisp_h1parse parser;
  appreq *r; /* the stream it carries; NULL: idle */
};

static void pump(h1app *g);

/* ---- answers of our own ---- */

static ssize_t provide_resp(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                            nghttp2_data_source *src, void *user_data);

/* Answers |r| with |status| saying |why| (when nothing was sent yet), else
 * resets the stream: an HTTP/2 caller learns of a cut-short response. */
static void fail_req(appreq *r, int status, const char *why) {
  h1app *g = r->g;
  if (r->resp_started) {
    nghttp2_submit_rst_stream(g->h2, NGHTTP2_FLAG_NONE, r->id, NGHTTP2_INTERNAL_ERROR);
    return;
  }
  snprintf(r->why, sizeof(r->why), "%s", why);
  char st[8], len[24];
  snprintf(st, sizeof(st), "%d", status);
  snprintf(len, sizeof(len), "%zu", strlen(r->why) + 1);
  nghttp2_nv nv[] = {
      {(uint8_t *)":status", (uint8_t *)st, 7, strlen(st), NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"content-type", (uint8_t *)"text/plain; charset=utf-8", 12, 25, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"content-length", (uint8_t *)len, 14, strlen(len), NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"x-wisp-error", (uint8_t *)r->why, 12, strlen(r->why), NGHTTP2_NV_FLAG_NONE},
  };
  wisp_buf_cleanup(&r->resp);
  if (wisp_buf_printf(&r->resp, WISP_H1_BUF_CAP, "%s\n", r->why) != WISP_OK) return;
  r->resp_eof = true;
  r->resp_started = true;
  nghttp2_data_provider prd = {.source.ptr = r, .read_callback = provide_resp};
  nghttp2_submit_response(g->h2, r->id, nv, 4, &prd);
}

/* ---- app connections ---- */

static void conn_free(appconn *ac) {
  h1app *g = ac->g;
  for (appconn **p = &g->conns; *p; p = &(*p)->next) {
    if (*p == ac) {
      *p = ac->next;
      break;
    }
  }
  ev_io_stop(g->loop, &ac->rio);
  ev_io_stop(g->loop, &ac->wio);
  ev_timer_stop(g->loop, &ac->connect_timer);
  close(ac->fd);
  wisp_buf_cleanup(&ac->out);
  wisp_h1parse_cleanup(&ac->parser);
  free(ac);
}

/* |r|'s app connection is done with it: kept for the next request when
 * the app allows, else closed by the next service_conns (never freed here:
 * this runs inside parser and nghttp2 callbacks). */
static void release_conn(appreq *r, bool reusable) {
  appconn *ac = r->ac;
  if (!ac) return;
  r->ac = NULL;
  ac->r = NULL;
  if (!reusable || !wisp_h1parse_idle(&ac->parser)) ac->dead = true;
}

/* ---- the app's response -> HTTP/2 ---- */

static ssize_t provide_resp(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                            nghttp2_data_source *src, void *user_data) {
  appreq *r = src->ptr;
  return wisp_h1_provide(session, id, &r->resp, r->resp_eof, &r->resp_trailers, buf, len, flags);
}

static void on_resp_head(void *arg, const wisp_h1_head *hd) {
  appconn *ac = arg;
  appreq *r = ac->r;
  if (!r) return;
  if (hd->status == 100 && !r->resp_started) {
    /* The app's answer to Expect: 100-continue, for the caller. */
    nghttp2_nv nv = {(uint8_t *)":status", (uint8_t *)"100", 7, 3, NGHTTP2_NV_FLAG_NONE};
    nghttp2_submit_headers(r->g->h2, NGHTTP2_FLAG_NONE, r->id, NULL, &nv, 1, NULL);
  }
  if (hd->status / 100 == 1) return; /* 1xx: the final response follows */
  wisp_hdrs h = {0};
  char st[8];
  snprintf(st, sizeof(st), "%d", hd->status);
  wisp_err rc = wisp_hdrs_add_str(&h, ":status", st);
  for (size_t i = 0; rc == WISP_OK && i < hd->nfields; i++) {
    const wisp_h1_field *f = &hd->fields[i];
    if (wisp_h1_hop_by_hop(hd, f)) continue;
    rc = wisp_hdrs_add(&h, (const uint8_t *)f->name, f->name_len, (const uint8_t *)f->value, f->value_len,
                       NGHTTP2_NV_FLAG_NONE); /* HTTP/1 has no never-indexed mark */
  }
  ac->keep_alive = hd->keep_alive;
  if (rc != WISP_OK) {
    ac->dead = true;
    fail_req(r, 502, "the app's response header fields are over the proxy's bounds");
  } else {
    r->resp_started = true;
    nghttp2_data_provider prd = {.source.ptr = r, .read_callback = provide_resp};
    nghttp2_submit_response(r->g->h2, r->id, h.nv, h.n, &prd);
  }
  wisp_hdrs_cleanup(&h);
}

static void on_resp_body(void *arg, const uint8_t *data, size_t len) {
  appconn *ac = arg;
  appreq *r = ac->r;
  if (!r || r->local_why) return;
  if (wisp_buf_append(&r->resp, data, len, WISP_H1_BUF_CAP) != WISP_OK) {
    ac->dead = true;
    fail_req(r, 502, "response buffer overflow");
    return;
  }
  nghttp2_session_resume_data(r->g->h2, r->id);
}

static void on_resp_end(void *arg, const wisp_h1_field *t, size_t nt) {
  appconn *ac = arg;
  appreq *r = ac->r;
  if (!r || !r->resp_started) return; /* a 1xx ended */
  for (size_t i = 0; i < nt; i++) {
    if (wisp_hdrs_add(&r->resp_trailers, (const uint8_t *)t[i].name, t[i].name_len, (const uint8_t *)t[i].value,
                      t[i].value_len, NGHTTP2_NV_FLAG_NONE) != WISP_OK)
      break;
  }
  r->resp_eof = true;
  nghttp2_session_resume_data(r->g->h2, r->id);
  /* A response may end before its request did (an early answer): the
   * connection is then in the middle of a request and cannot be reused. */
  release_conn(r, ac->keep_alive && r->sent_end);
}

static const wisp_h1parse_cbs kRespCbs = {on_resp_head, on_resp_body, on_resp_end};

/* ---- HTTP/2 request -> the app ---- */

/* Fields an HTTP/1.1 request to the app does not get from HTTP/2. */
static bool skip_request_field(const nghttp2_nv *nv) {
  if (nv->namelen && nv->name[0] == ':') return true;
  return (nv->namelen == 2 && memcmp(nv->name, "te", 2) == 0) ||
         (nv->namelen == 10 && memcmp(nv->name, "connection", 10) == 0) ||
         (nv->namelen == 4 && memcmp(nv->name, "host", 4) == 0);
}

static void write_request_head(appreq *r, appconn *ac) {
  const char *method = wisp_hdrs_get(&r->req, ":method");
  const char *path = wisp_hdrs_get(&r->req, ":path");
  const char *authority = wisp_hdrs_get(&r->req, ":authority");
  if (!authority) authority = wisp_hdrs_get(&r->req, "host");
  if (!authority) authority = r->g->name;
  /* CONNECT has no :path; its target is the authority (RFC 9113 8.5). */
  const char *target = strcmp(method, "CONNECT") == 0 ? authority : path ? path : "/";
  wisp_h1_printf(&ac->out, "%s %s HTTP/1.1\r\nhost: %s\r\n", method, target, authority);
  for (size_t i = 0; i < r->req.n; i++) {
    const nghttp2_nv *nv = &r->req.nv[i];
    if (skip_request_field(nv)) continue;
    wisp_h1_put_field(&ac->out, nv);
  }
  bool has_length = wisp_hdrs_get(&r->req, "content-length") != NULL;
  if (!has_length && !(r->req_eof && wisp_buf_len(&r->body) == 0)) {
    r->chunked = true;
    WISP_H1_PUT_LIT(&ac->out, "transfer-encoding: chunked\r\n");
  }
  WISP_H1_PUT_LIT(&ac->out, "\r\n");
  r->is_head = strcmp(method, "HEAD") == 0;
  wisp_h1parse_set_no_body(&ac->parser, r->is_head);
}

static appconn *conn_new(h1app *g) {
  int fd;
  if (wisp_net_connect(&fd, &g->addr) != WISP_OK) return NULL;
  appconn *ac = wisp_calloc(1, sizeof(*ac));
  ac->g = g;
  ac->fd = fd;
  ac->connecting = true;
  ac->next = g->conns;
  g->conns = ac;
  wisp_h1parse_init(&ac->parser, HTTP_RESPONSE, &kRespCbs, ac);
  return ac;
}

static void on_app_readable(struct ev_loop *loop, ev_io *w, int revents);
static void on_app_writable(struct ev_loop *loop, ev_io *w, int revents);
static void on_connect_timeout(struct ev_loop *loop, ev_timer *w, int revents);

/* An idle connection to the app, or a new one. */
static appconn *take_conn(h1app *g) {
  appconn *ac = NULL;
  for (appconn *c = g->conns; c; c = c->next) {
    if (!c->r && !c->dead) {
      ac = c;
      break;
    }
  }
  if (!ac) {
    ac = conn_new(g);
    if (!ac) return NULL;
    ev_io_init(&ac->rio, on_app_readable, ac->fd, EV_READ);
    ev_io_init(&ac->wio, on_app_writable, ac->fd, EV_WRITE);
    ev_timer_init(&ac->connect_timer, on_connect_timeout, g->px->cfg->connect_timeout, 0);
    ac->rio.data = ac->wio.data = ac->connect_timer.data = ac;
    ev_timer_start(g->loop, &ac->connect_timer);
  }
  return ac;
}

static void start_request(appreq *r) {
  h1app *g = r->g;
  appconn *ac = take_conn(g);
  if (!ac) {
    char why[160];
    snprintf(why, sizeof(why), "cannot connect to the app at %s: %s", g->name, strerror(errno));
    fail_req(r, 503, why);
    return;
  }
  ac->r = r;
  r->ac = ac;
  write_request_head(r, ac);
}

/* Moves request bytes to the app connection's buffer while it has room,
 * acknowledging them to the stream as they go. */
static void move_request(appreq *r) {
  appconn *ac = r->ac;
  size_t n = wisp_h1_put_body(&ac->out, &r->body, r->chunked);
  if (n) nghttp2_session_consume_stream(r->g->h2, r->id, n);
  if (wisp_buf_len(&r->body) || !r->req_eof || r->sent_end) return;
  if (r->chunked) wisp_h1_put_last_chunk(&ac->out, &r->trailers);
  r->sent_end = true;
}

/* ---- the HTTP/2 server session (the proxy's side) ---- */

static appreq *req_of(nghttp2_session *s, int32_t id) { return nghttp2_session_get_stream_user_data(s, id); }

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  h1app *g = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  appreq *r = wisp_calloc(1, sizeof(*r));
  r->g = g;
  r->id = frame->hd.stream_id;
  wisp_list_push_front(&g->reqs, &r->link);
  nghttp2_session_set_stream_user_data(session, r->id, r);
  return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
  appreq *r = req_of(session, frame->hd.stream_id);
  if (!r || frame->hd.type != NGHTTP2_HEADERS) return 0;
  if (wisp_hdrs_add(r->headers_done ? &r->trailers : &r->req, name, namelen, value, valuelen, flags) != WISP_OK)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  appreq *r = req_of(session, frame->hd.stream_id);
  if (!r) return 0;
  bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (frame->hd.type == NGHTTP2_HEADERS && !r->headers_done) {
    r->headers_done = true;
    r->req_eof = end;
    start_request(r);
  } else if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) && end) {
    r->req_eof = true;
  }
  return 0;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                              void *user_data) {
  appreq *r = req_of(session, id);
  nghttp2_session_consume_connection(session, len); /* streams bound what waits */
  if (!r || !r->ac || r->sent_end || wisp_buf_append(&r->body, data, len, WISP_H1_BUF_CAP) != WISP_OK)
    nghttp2_session_consume_stream(session, id, len); /* nobody will send it */
  return 0;
}

static void req_free(appreq *r) {
  if (r->ac) release_conn(r, false); /* mid-message: the connection cannot carry another */
  wisp_list_unlink(&r->link);
  wisp_hdrs_cleanup(&r->req);
  wisp_hdrs_cleanup(&r->trailers);
  wisp_hdrs_cleanup(&r->resp_trailers);
  wisp_buf_cleanup(&r->body);
  wisp_buf_cleanup(&r->resp);
  free(r);
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t code, void *user_data) {
  appreq *r = req_of(session, id);
  if (!r) return 0;
  nghttp2_session_set_stream_user_data(session, id, NULL);
  req_free(r);
  return 0;
}

/* Built once for every worker thread (--workers): pthread_once, so two
 * workers taking their first connection at once never see it half set. */
static nghttp2_session_callbacks *g_cbs;

static void build_callbacks(void) {
  nghttp2_session_callbacks *cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0) abort();
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  g_cbs = cbs;
}

static nghttp2_session_callbacks *callbacks(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, build_callbacks);
  return g_cbs;
}

static nghttp2_session *session_new(h1app *g) {
  nghttp2_session *s;
  if (nghttp2_session_server_new2(&s, callbacks(), g, wisp_h1_session_option()) != 0) abort();
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, APP_MAX_STREAMS},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, APP_STREAM_WINDOW},
  };
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 2);
  return s;
}

/* ---- sockets ---- */

static void gw_free(h1app *g) {
  wisp_h1_gw_remove(g->px, &g->gw);
  for (wisp_list *n; (n = wisp_list_first(&g->reqs)) != NULL;) req_free(WISP_LIST_ELEM(n, appreq, link));
  nghttp2_session_del(g->h2);
  while (g->conns) conn_free(g->conns);
  wisp_pipe_close(g->sp);
  wisp_buf_cleanup(&g->sout);
  free(g);
}

static void free_gw(wisp_h1_gw *gw) { gw_free((h1app *)gw); }

/* The app's connection ended or broke: its stream learns why. */
static void app_gone(appconn *ac, const char *why) {
  appreq *r = ac->r;
  /* a body read to the close ends here (on_resp_end releases it) */
  if (r && !(wisp_h1parse_eof(&ac->parser) == WISP_H1P_END && r->ac != ac)) {
    char msg[200];
    snprintf(msg, sizeof(msg), "the app at %s %s", ac->g->name, why);
    release_conn(r, false);
    fail_req(r, 502, msg);
  }
  conn_free(ac);
}

/* Parses |n| bytes the app sent on |ac|; false if that ended |ac| (freed). */
static bool parse_app(appconn *ac, const uint8_t *buf, size_t n) {
  if (!ac->r) {
    app_gone(ac, "sent bytes nobody asked for"); /* on an idle connection */
    return false;
  }
  size_t off = 0;
  while (off < n && ac->r) {
    size_t used = 0;
    wisp_h1p_result res = wisp_h1parse_feed(&ac->parser, buf + off, n - off, &used);
    off += used;
    if (res == WISP_H1P_ERROR) {
      char msg[200];
      snprintf(msg, sizeof(msg), "sent a malformed HTTP/1 response: %s", ac->parser.why);
      app_gone(ac, msg);
      return false;
    }
  }
  if (off < n) {
    app_gone(ac, "sent bytes after its response");
    return false;
  }
  return true;
}

static void read_app(appconn *ac) {
  uint8_t buf[APP_READ_CHUNK];
  ssize_t n = recv(ac->fd, buf, sizeof(buf), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) {
    app_gone(ac, n < 0 ? "reset the connection before a complete response"
                       : "closed the connection before a complete response");
    return;
  }
  parse_app(ac, buf, (size_t)n);
}

/* A write to the app found it reset the connection: what it sent before
 * (an early answer, such as a 413 to a body it will not read, then its
 * close with the body unread, which makes the reset) is still readable,
 * queued ahead of the reset. It is parsed, so a complete answer reaches
 * the caller, as lib/wisp_h2conn does for an h2c app; the socket is read
 * to the reset, EOF or while the response has room, at most this many
 * times. False if parsing ended |ac| (freed). */
#define WISP_H1APP_RESET_READS 64

static bool read_before_reset(appconn *ac) {
  uint8_t buf[APP_READ_CHUNK];
  for (int i = 0; i < WISP_H1APP_RESET_READS && ac->r && wisp_buf_len(&ac->r->resp) < WISP_H1APP_RESP_HIGH; i++) {
    ssize_t n = recv(ac->fd, buf, sizeof(buf), 0);
    if (n <= 0) return true;
    if (!parse_app(ac, buf, (size_t)n)) return false;
  }
  return true;
}

static void on_app_readable(struct ev_loop *loop, ev_io *w, int revents) {
  appconn *ac = w->data;
  h1app *g = ac->g;
  read_app(ac);
  pump(g);
}

/* A connection to the app that did not open: its request gets 503 saying
 * why, and the connection goes. */
static void connect_failed(appconn *ac, const char *why) {
  h1app *g = ac->g;
  char msg[200];
  snprintf(msg, sizeof(msg), "cannot connect to the app at %s: %s", g->name, why);
  appreq *r = ac->r;
  if (r) {
    release_conn(r, false);
    fail_req(r, 503, msg);
  }
  conn_free(ac);
  pump(g);
}

/* An app that neither accepts nor refuses (a full accept queue, a
 * firewall dropping SYNs) is given --connect-timeout, as h2c apps are. */
static void on_connect_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  appconn *ac = w->data;
  char why[96];
  snprintf(why, sizeof(why), "no answer within --connect-timeout (%gs)", ac->g->px->cfg->connect_timeout);
  connect_failed(ac, why);
}

static void on_app_writable(struct ev_loop *loop, ev_io *w, int revents) {
  appconn *ac = w->data;
  h1app *g = ac->g;
  if (ac->connecting) {
    int err = wisp_net_connect_result(ac->fd);
    ac->connecting = false;
    ev_timer_stop(loop, &ac->connect_timer);
    if (err) {
      connect_failed(ac, strerror(err));
      return;
    }
  }
  pump(g);
}

/* Moves and writes request bytes on every busy app connection, and sets
 * which sockets are watched. */
static void service_conns(h1app *g) {
  appconn *next;
  int idle = 0;
  for (appconn *ac = g->conns; ac; ac = next) {
    next = ac->next;
    appreq *r = ac->r;
    if (!r && (ac->dead || ++idle > WISP_H1APP_IDLE_MAX)) {
      conn_free(ac);
      continue;
    }
    if (!r) wisp_buf_cleanup(&ac->out);
    if (r && !ac->connecting) {
      move_request(r);
      if (!wisp_h1_flush(ac->fd, &ac->out)) {
        int err = errno;
        if ((err == ECONNRESET || err == EPIPE) && !read_before_reset(ac)) continue;
        app_gone(ac, "reset the connection while we sent the request");
        continue;
      }
    }
    bool want_read = !r || (!ac->connecting && wisp_buf_len(&r->resp) < WISP_H1APP_RESP_HIGH);
    if (want_read) {
      ev_io_start(g->loop, &ac->rio);
    } else {
      ev_io_stop(g->loop, &ac->rio);
    }
    if (ac->connecting || wisp_buf_len(&ac->out)) {
      ev_io_start(g->loop, &ac->wio);
    } else {
      ev_io_stop(g->loop, &ac->wio);
    }
  }
}

static void pump(h1app *g) {
  if (g->in_pump) return;
  g->in_pump = true;
  bool ok = true;
  for (int round = 0; round < 3 && ok; round++) {
    service_conns(g);
    ok = wisp_h1_send(g->h2, g->sp, &g->sout);
  }
  g->in_pump = false;
  if (!ok) {
    gw_free(g);
    return;
  }
  wisp_pipe_want(g->sp, true, wisp_buf_len(&g->sout) > 0);
}

/* The proxy's end is readable or has room (lib/wisp_pipe). */
static void on_h2_pipe(wisp_pipe_end *e, int events, void *arg) {
  h1app *g = arg;
  if (events & WISP_PIPE_READ) {
    uint8_t buf[APP_READ_CHUNK];
    ssize_t n = wisp_pipe_read(g->sp, buf, sizeof(buf));
    if (n == WISP_PIPE_AGAIN) return;
    if (n <= 0 || nghttp2_session_mem_recv(g->h2, buf, (size_t)n) < 0) {
      gw_free(g); /* the proxy closed its upstream connection */
      return;
    }
  }
  pump(g);
}

wisp_pipe_end *wisp_h1app_open(wisp_proxy *px, const wisp_target *t) {
  h1app *g = wisp_calloc(1, sizeof(*g));
  wisp_list_init(&g->reqs);
  g->px = px;
  g->loop = px->loop;
  g->addr = t->addr;
  snprintf(g->name, sizeof(g->name), "%s", t->name);
  wisp_pipe_end *theirs;
  wisp_pipe_new(&px->lp.pipes, &theirs, &g->sp);
  wisp_pipe_set_cb(g->sp, on_h2_pipe, g);
  g->h2 = session_new(g);
  wisp_h1_gw_add(px, &g->gw, free_gw);
  pump(g);
  return theirs;
}
