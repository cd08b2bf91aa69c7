#include "tests/inproc/h2peer.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define TP_READ_CHUNK (16 * 1024)
#define TP_TICK 0.01
/* However fast the loop spins, no wait goes on past this many passes. */
#define TP_MAX_ITERATIONS 200000

static void die(const char *what) {
  fprintf(stderr, "h2peer: %s: %s\n", what, strerror(errno));
  abort();
}

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) die("fcntl");
}

static void copy_str(char *dst, size_t cap, const uint8_t *src, size_t len) {
  if (len >= cap) len = cap - 1;
  memcpy(dst, src, len);
  dst[len] = '\0';
}

static tp_msg *msg_new(tp_peer *p, int32_t id) {
  if (p->nmsgs == TP_MAX_MSGS) die("too many streams for the test peer");
  tp_msg *m = calloc(1, sizeof(*m));
  if (!m) die("calloc");
  m->id = id;
  m->conn = p->index;
  p->msgs[p->nmsgs++] = m;
  return m;
}

/* Appends |len| bytes to the growing buffer |*buf|. */
static void append(uint8_t **buf, size_t *buf_len, size_t *cap, const uint8_t *data, size_t len) {
  if (*buf_len + len > *cap) {
    size_t bigger = *cap ? *cap : 4096;
    while (bigger < *buf_len + len) bigger *= 2;
    *buf = realloc(*buf, bigger);
    if (!*buf) die("realloc");
    *cap = bigger;
  }
  memcpy(*buf + *buf_len, data, len);
  *buf_len += len;
}

bool tp_msg_closed(void *msg) { return ((const tp_msg *)msg)->closed; }

const char *tp_hdr_get(const tp_msg *m, const char *name) {
  for (int i = 0; i < m->nhdrs; i++) {
    if (strcmp(m->hdrs[i].name, name) == 0) return m->hdrs[i].value;
  }
  return NULL;
}

/* ---- session callbacks, both roles ---- */

static tp_msg *msg_of(nghttp2_session *s, int32_t id) { return nghttp2_session_get_stream_user_data(s, id); }

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  tp_peer *p = ud;
  if (f->hd.type != NGHTTP2_HEADERS || !p->server || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  tp_msg *m = msg_new(p, f->hd.stream_id);
  nghttp2_session_set_stream_user_data(s, f->hd.stream_id, m);
  tp_app *a = p->app;
  if (a->nreqs < TP_MAX_MSGS) a->reqs[a->nreqs++] = m;
  return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud) {
  tp_msg *m = msg_of(s, f->hd.stream_id);
  if (!m) return 0;
  bool trailer = m->headers_done;
  tp_hdr *h = NULL;
  if (!trailer && m->nhdrs < TP_MAX_HDRS) h = &m->hdrs[m->nhdrs++];
  if (trailer && m->ntrailers < 8) h = &m->trailers[m->ntrailers++];
  if (!h) return 0;
  copy_str(h->name, sizeof(h->name), name, namelen);
  copy_str(h->value, sizeof(h->value), value, valuelen);
  return 0;
}

static void app_auto_answer(tp_peer *p, tp_msg *m);
static bool handshake(tp_peer *p);

static void msg_ended(tp_peer *p, tp_msg *m) {
  m->ended = true;
  if (p->server && !p->app->hold) app_auto_answer(p, m);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  tp_peer *p = ud;
  tp_msg *m = f->hd.stream_id ? msg_of(s, f->hd.stream_id) : NULL;
  bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
  switch (f->hd.type) {
    case NGHTTP2_SETTINGS:
      if (f->hd.flags & NGHTTP2_FLAG_ACK) {
        p->settings_acked = true;
      } else {
        p->got_settings = true;
      }
      break;
    case NGHTTP2_GOAWAY:
      p->goaway = true;
      p->goaway_code = f->goaway.error_code;
      break;
    case NGHTTP2_HEADERS:
      if (!m) break;
      /* A 1xx is not the response. */
      if (!p->server && !m->headers_done) {
        const char *st = tp_hdr_get(m, ":status");
        if (st && st[0] == '1') {
          m->nhdrs = 0;
          break;
        }
      }
      m->headers_done = true;
      if (end) msg_ended(p, m);
      break;
    case NGHTTP2_DATA:
      if (m && end) msg_ended(p, m);
      break;
    case NGHTTP2_RST_STREAM:
      if (m) m->rst_received = true;
      break;
    default:
      break;
  }
  return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud) {
  tp_msg *m = msg_of(s, id);
  if (m) append(&m->body, &m->body_len, &m->body_cap, data, len);
  return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud) {
  tp_msg *m = msg_of(s, id);
  if (m) {
    m->closed = true;
    m->close_code = code;
  }
  return 0;
}

static nghttp2_session_callbacks *callbacks(void) {
  static nghttp2_session_callbacks *cbs;
  if (cbs) return cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0) die("nghttp2 callbacks");
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  return cbs;
}

/* Moves |m|'s outgoing body into DATA frames; trailers, if any, end it. */
static ssize_t provide(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *ud) {
  tp_msg *m = src->ptr;
  size_t n = m->send_len - m->sent;
  if (n > len) n = len;
  if (n) memcpy(buf, m->send + m->sent, n);
  m->sent += n;
  if (m->sent == m->send_len && m->send_eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (m->nsend_trailers) {
      nghttp2_nv nv[4];
      for (int i = 0; i < m->nsend_trailers; i++) {
        tp_hdr *h = &m->send_trailers[i];
        nv[i] = (nghttp2_nv){(uint8_t *)h->name, (uint8_t *)h->value, strlen(h->name), strlen(h->value),
                             NGHTTP2_NV_FLAG_NONE};
      }
      if (nghttp2_submit_trailer(s, id, nv, (size_t)m->nsend_trailers) == 0) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return (ssize_t)n;
  }
  return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

/* ---- I/O ---- */

static void out_add(tp_peer *p, const uint8_t *data, size_t len) {
  append(&p->out, &p->out_len, &p->out_cap, data, len);
}

/* The socket's transport: plaintext, or TLS once handshaken. Returns
 * bytes moved, 0 at EOF, -1 with errno EAGAIN (try later) or another. */
static ssize_t io_send(tp_peer *p, const uint8_t *data, size_t len) {
  if (!p->ssl) return send(p->fd, data, len, MSG_NOSIGNAL);
  int n = SSL_write(p->ssl, data, (int)len);
  if (n > 0) return n;
  int err = SSL_get_error(p->ssl, n);
  errno = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? EAGAIN : EPIPE;
  return -1;
}

static ssize_t io_recv(tp_peer *p, uint8_t *buf, size_t len) {
  if (!p->ssl) return recv(p->fd, buf, len, 0);
  int n = SSL_read(p->ssl, buf, (int)len);
  if (n > 0) return n;
  int err = SSL_get_error(p->ssl, n);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    errno = EAGAIN;
    return -1;
  }
  return 0; /* close_notify, an alert or a dead socket: the end */
}

/* Drives the TLS handshake; true once it is done. */
static bool handshake(tp_peer *p) {
  if (!p->ssl || p->handshaken) return true;
  int rv = SSL_do_handshake(p->ssl);
  if (rv == 1) {
    p->handshaken = true;
    return true;
  }
  int err = SSL_get_error(p->ssl, rv);
  if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
    p->failed = true;
    p->eof = true;
    ev_io_stop(p->loop, &p->io);
  }
  return false;
}

static void write_out(tp_peer *p) {
  size_t done = 0;
  while (done < p->out_len && !p->eof) {
    ssize_t n = io_send(p, p->out + done, p->out_len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0) { /* the proxy closed it: nothing more will go out */
      p->eof = true;
      done = p->out_len;
      break;
    }
    done += (size_t)n;
  }
  memmove(p->out, p->out + done, p->out_len - done);
  p->out_len -= done;
  int want = p->eof ? 0 : EV_READ | (p->out_len ? EV_WRITE : 0);
  if (want != (p->io.events & (EV_READ | EV_WRITE))) {
    ev_io_stop(p->loop, &p->io);
    if (want) {
      ev_io_set(&p->io, p->fd, want);
      ev_io_start(p->loop, &p->io);
    }
  }
}

void tp_peer_flush(tp_peer *p) {
  if (!handshake(p)) return;
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(p->h2, &data);
    if (n <= 0) break;
    out_add(p, data, (size_t)n);
  }
  write_out(p);
}

void tp_peer_write_raw(tp_peer *p, const void *data, size_t len) {
  tp_peer_flush(p);
  out_add(p, data, len);
  write_out(p);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents) {
  tp_peer *p = w->data;
  if (!handshake(p)) {
    /* The handshake waits for the socket (both ways, to be simple). */
    if (!p->eof) {
      ev_io_stop(loop, &p->io);
      ev_io_set(&p->io, p->fd, EV_READ | (SSL_want_write(p->ssl) ? EV_WRITE : 0));
      ev_io_start(loop, &p->io);
    }
    return;
  }
  if (revents & EV_READ) tp_peer_read(p);
  tp_peer_flush(p);
}

void tp_peer_read(tp_peer *p) {
  uint8_t buf[TP_READ_CHUNK];
  for (int i = 0; i < 64 && !p->eof && handshake(p); i++) {
    ssize_t n = io_recv(p, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      p->eof = true;
      break;
    }
    if (!p->failed && nghttp2_session_mem_recv(p->h2, buf, (size_t)n) < 0) p->failed = true;
  }
}

static tp_peer *peer_new(struct ev_loop *loop, int fd, SSL *ssl, bool server, tp_app *app, int index) {
  tp_peer *p = calloc(1, sizeof(*p));
  if (!p) die("calloc");
  p->loop = loop;
  p->fd = fd;
  p->ssl = ssl;
  if (ssl) {
    SSL_set_fd(ssl, fd);
    if (server) {
      SSL_set_accept_state(ssl);
    } else {
      SSL_set_connect_state(ssl);
    }
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }
  p->server = server;
  p->app = app;
  p->index = index;
  set_nonblock(fd);
  int rv =
      server ? nghttp2_session_server_new(&p->h2, callbacks(), p) : nghttp2_session_client_new(&p->h2, callbacks(), p);
  if (rv != 0) die("nghttp2 session");
  uint32_t streams = app ? app->max_streams : 100;
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, streams}, {NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
  nghttp2_submit_settings(p->h2, NGHTTP2_FLAG_NONE, iv, server ? 1 : 2);
  ev_io_init(&p->io, on_io, fd, EV_READ);
  p->io.data = p;
  ev_io_start(loop, &p->io);
  tp_peer_flush(p);
  return p;
}

void tp_peer_free(tp_peer *p) {
  if (!p) return;
  ev_io_stop(p->loop, &p->io);
  SSL_free(p->ssl);
  if (p->fd >= 0) close(p->fd);
  nghttp2_session_del(p->h2);
  for (int i = 0; i < p->nmsgs; i++) {
    free(p->msgs[i]->body);
    free(p->msgs[i]);
  }
  free(p->out);
  free(p);
}

/* ---- the client ---- */

tp_peer *tp_client_new(struct ev_loop *loop, int fd) { return peer_new(loop, fd, NULL, false, NULL, 0); }

tp_peer *tp_client_new_tls(struct ev_loop *loop, int fd, SSL *ssl) { return peer_new(loop, fd, ssl, false, NULL, 0); }

static void set_trailers(tp_msg *m, const tp_hdr *trailers, int n) {
  if (n > 4) die("at most 4 trailers");
  for (int i = 0; i < n; i++) m->send_trailers[i] = trailers[i];
  m->nsend_trailers = n;
}

static tp_msg *request(tp_peer *p, const char *method, const char *path, const tp_hdr *extra, int nextra,
                       const void *body, size_t len, bool end, const tp_hdr *trailers, int ntrailers) {
  nghttp2_nv nv[TP_MAX_HDRS];
  const char *base[][2] = {{":method", method}, {":scheme", "http"}, {":authority", "app.test"}, {":path", path}};
  int n = 0;
  for (int i = 0; i < 4; i++)
    nv[n++] = (nghttp2_nv){(uint8_t *)base[i][0], (uint8_t *)base[i][1], strlen(base[i][0]), strlen(base[i][1]),
                           NGHTTP2_NV_FLAG_NONE};
  for (int i = 0; i < nextra && n < TP_MAX_HDRS; i++)
    nv[n++] = (nghttp2_nv){(uint8_t *)extra[i].name, (uint8_t *)extra[i].value, strlen(extra[i].name),
                           strlen(extra[i].value), NGHTTP2_NV_FLAG_NONE};
  tp_msg *m = msg_new(p, 0);
  m->send = body;
  m->send_len = body ? len : 0;
  m->send_eof = end;
  set_trailers(m, trailers, ntrailers);
  nghttp2_data_provider prd = {.source.ptr = m, .read_callback = provide};
  bool no_body = end && m->send_len == 0 && ntrailers == 0;
  m->id = nghttp2_submit_request(p->h2, NULL, nv, (size_t)n, no_body ? NULL : &prd, m);
  if (m->id < 0) die("nghttp2_submit_request");
  tp_peer_flush(p);
  return m;
}

tp_msg *tp_client_request(tp_peer *p, const char *method, const char *path, const tp_hdr *extra, int nextra,
                          const void *body, size_t len, bool end) {
  return request(p, method, path, extra, nextra, body, len, end, NULL, 0);
}

tp_msg *tp_client_request_trailers(tp_peer *p, const char *method, const char *path, const void *body, size_t len,
                                   const tp_hdr *trailers, int ntrailers) {
  return request(p, method, path, NULL, 0, body, len, true, trailers, ntrailers);
}

void tp_msg_end(tp_peer *p, tp_msg *m) {
  m->send_eof = true;
  nghttp2_session_resume_data(p->h2, m->id);
  tp_peer_flush(p);
}

void tp_peer_rst(tp_peer *p, tp_msg *m, uint32_t code) {
  nghttp2_submit_rst_stream(p->h2, NGHTTP2_FLAG_NONE, m->id, code);
  tp_peer_flush(p);
}

/* ---- the app ---- */

static tp_peer *app_peer_of(tp_app *a, const tp_msg *m) { return a->conns[m->conn]; }

void tp_app_respond(tp_app *a, tp_msg *m, int status, const void *body, size_t len) {
  tp_app_respond_trailers(a, m, status, body, len, NULL, 0);
}

void tp_app_respond_trailers(tp_app *a, tp_msg *m, int status, const void *body, size_t len, const tp_hdr *trailers,
                             int ntrailers) {
  tp_peer *p = app_peer_of(a, m);
  char st[8], conn[8];
  snprintf(st, sizeof(st), "%d", status);
  snprintf(conn, sizeof(conn), "%d", m->conn);
  nghttp2_nv nv[] = {
      {(uint8_t *)":status", (uint8_t *)st, 7, strlen(st), NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"x-app-conn", (uint8_t *)conn, 10, strlen(conn), NGHTTP2_NV_FLAG_NONE},
  };
  m->send = body;
  m->send_len = body ? len : 0;
  m->sent = 0;
  m->send_eof = ntrailers >= 0;
  set_trailers(m, trailers, ntrailers > 0 ? ntrailers : 0);
  m->answered = true;
  nghttp2_data_provider prd = {.source.ptr = m, .read_callback = provide};
  bool no_body = m->send_eof && m->send_len == 0 && m->nsend_trailers == 0;
  if (nghttp2_submit_response(p->h2, m->id, nv, 2, no_body ? NULL : &prd) != 0) die("nghttp2_submit_response");
  tp_peer_flush(p);
}

static void app_auto_answer(tp_peer *p, tp_msg *m) {
  /* Submitted from inside the session's callback: it goes out with the
   * flush that follows the read. */
  char st[] = "200", conn[8];
  snprintf(conn, sizeof(conn), "%d", m->conn);
  nghttp2_nv nv[] = {
      {(uint8_t *)":status", (uint8_t *)st, 7, 3, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"x-app-conn", (uint8_t *)conn, 10, strlen(conn), NGHTTP2_NV_FLAG_NONE},
  };
  m->send = m->body;
  m->send_len = m->body_len;
  m->send_eof = true;
  m->answered = true;
  nghttp2_data_provider prd = {.source.ptr = m, .read_callback = provide};
  if (nghttp2_submit_response(p->h2, m->id, nv, 2, m->body_len ? &prd : NULL) != 0) die("nghttp2_submit_response");
}

void tp_app_rst(tp_app *a, tp_msg *m, uint32_t code) {
  tp_peer *p = app_peer_of(a, m);
  nghttp2_submit_rst_stream(p->h2, NGHTTP2_FLAG_NONE, m->id, code);
  tp_peer_flush(p);
}

void tp_app_goaway(tp_app *a, int index, int32_t last_stream_id) {
  tp_peer *p = a->conns[index];
  nghttp2_submit_goaway(p->h2, NGHTTP2_FLAG_NONE, last_stream_id, NGHTTP2_NO_ERROR, NULL, 0);
  tp_peer_flush(p);
}

void tp_app_stop_listening(tp_app *a) {
  if (a->lfd < 0) return;
  ev_io_stop(a->loop, &a->accept_io);
  close(a->lfd);
  a->lfd = -1;
}

/* Polls of the send queue while an RST waits for it to empty. */
#define TP_SENT_POLLS 10000
#define TP_SENT_POLL_US 1000

void tp_app_reset_conn(tp_app *a, int index) {
  tp_peer *p = a->conns[index];
  tp_peer_flush(p);
  /* Loopback: acknowledged within moments; an RST drops what is not. */
  int queued = 1;
  for (int i = 0; i < TP_SENT_POLLS && ioctl(p->fd, TIOCOUTQ, &queued) == 0 && queued > 0; i++) usleep(TP_SENT_POLL_US);
  if (queued != 0) die("the reset peer's bytes never left");
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  if (setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0) die("SO_LINGER");
  ev_io_stop(p->loop, &p->io);
  close(p->fd);
  p->fd = -1;
  p->eof = true;
}

void tp_app_drop_conn(tp_app *a, int index) {
  tp_peer *p = a->conns[index];
  ev_io_stop(p->loop, &p->io);
  shutdown(p->fd, SHUT_RDWR);
  p->eof = true;
}

static void on_app_accept(struct ev_loop *loop, ev_io *w, int revents) {
  tp_app *a = w->data;
  for (int i = 0; i < 16; i++) {
    int fd = accept(a->lfd, NULL, NULL);
    if (fd < 0) return;
    if (a->nconns == TP_MAX_CONNS) {
      close(fd);
      continue;
    }
    SSL *ssl = a->tls ? SSL_new(a->tls) : NULL;
    if (a->tls && !ssl) die("SSL_new");
    a->conns[a->nconns] = peer_new(loop, fd, ssl, true, a, a->nconns);
    a->nconns++;
  }
}

tp_app *tp_app_new_tls(struct ev_loop *loop, uint32_t max_streams, bool hold, SSL_CTX *tls) {
  tp_app *a = calloc(1, sizeof(*a));
  if (!a) die("calloc");
  a->loop = loop;
  a->max_streams = max_streams;
  a->hold = hold;
  a->tls = tls;
  a->lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t slen = sizeof(sin);
  if (a->lfd < 0 || bind(a->lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(a->lfd, 64) != 0 ||
      getsockname(a->lfd, (struct sockaddr *)&sin, &slen) != 0)
    die("app listen");
  a->port = ntohs(sin.sin_port);
  set_nonblock(a->lfd);
  ev_io_init(&a->accept_io, on_app_accept, a->lfd, EV_READ);
  a->accept_io.data = a;
  ev_io_start(loop, &a->accept_io);
  return a;
}

tp_app *tp_app_new(struct ev_loop *loop, uint32_t max_streams, bool hold) {
  return tp_app_new_tls(loop, max_streams, hold, NULL);
}

void tp_app_free(tp_app *a) {
  if (!a) return;
  tp_app_stop_listening(a);
  for (int i = 0; i < a->nconns; i++) tp_peer_free(a->conns[i]);
  SSL_CTX_free(a->tls);
  free(a);
}

/* ---- the loop ---- */

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents) {}

bool tp_run_until(struct ev_loop *loop, tp_cond cond, void *arg, double max_seconds) {
  ev_timer tick;
  ev_timer_init(&tick, on_tick, TP_TICK, TP_TICK);
  ev_timer_start(loop, &tick);
  ev_now_update(loop);
  ev_tstamp until = ev_now(loop) + max_seconds;
  bool held = cond(arg);
  for (int i = 0; !held && i < TP_MAX_ITERATIONS && ev_now(loop) < until; i++) {
    ev_run(loop, EVRUN_ONCE);
    held = cond(arg);
  }
  ev_timer_stop(loop, &tick);
  return held;
}

void tp_run_for(struct ev_loop *loop, int iterations) {
  ev_timer tick;
  ev_timer_init(&tick, on_tick, TP_TICK, TP_TICK);
  ev_timer_start(loop, &tick);
  for (int i = 0; i < iterations; i++) ev_run(loop, EVRUN_ONCE);
  ev_timer_stop(loop, &tick);
}
