#include "lib/wisp_rpc_client.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/wisp_list.h"
#include "lib/wisp_mem.h"

/* Flow control: nghttp2 sends WINDOW_UPDATE as we consume (we deliver every
 * message at once, so memory stays bounded by the message limit); larger
 * windows than the default 64 KiB let a 4 MiB response arrive briskly. */
#define RPCC_STREAM_WINDOW (1 << 20)
#define RPCC_CONN_WINDOW (4 << 20)

/* The connection, apart from the client: teardown is deferred (see
 * lib/wisp_h2conn.h), so the connection may outlive a client freed in the
 * meantime; then |owner| is NULL and it only waits to be torn down. */
typedef struct {
  wisp_h2conn io; /* first */
  wisp_rpcc *owner;
  char expect_id[WISP_SPIFFE_MAX + 1]; /* io.verify.expect_id points here */
} rpcc_conn;

struct wisp_rpcc {
  wisp_h2loop *lp;
  wisp_rpcc_target target;
  rpcc_conn *conn; /* NULL once the connection failed or closed */
  bool reached;
  bool goaway;
  char error[WISP_TLS_REASON_MAX];
  wisp_list calls;   /* open, newest first (wisp_rpcc_call.link) */
  wisp_list zombies; /* done, freed when no handler is on the stack */
  int depth;         /* handlers (and our code around them) on the stack */
  bool free_pending;
  ev_timer kick; /* ends calls that cannot start, from the loop */
};

struct wisp_rpcc_call {
  wisp_rpcc *c;
  int32_t stream_id; /* 0: not submitted */
  wisp_rpcc_handlers h;
  void *arg;
  wisp_rpcc_response resp;
  wisp_grpc_reader reader;
  wisp_buf out;     /* framed request messages not yet sent */
  bool half_closed; /* wisp_rpcc_close_send was called */
  bool eof_sent;    /* END_STREAM went to nghttp2 */
  bool done;
  bool fail_pending; /* end from the kick timer with fail_code/fail_msg */
  wisp_grpc_status fail_code;
  char fail_msg[WISP_TLS_REASON_MAX];
  ev_timer deadline;
  double timeout_s;
  wisp_list link; /* in its client's calls, then zombies */
};

static wisp_rpcc_call *call_of(wisp_list *node) { return node ? WISP_LIST_ELEM(node, wisp_rpcc_call, link) : NULL; }

/* ---- pure parts ---- */

static bool has_prefix(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

wisp_err wisp_rpcc_target_parse(wisp_rpcc_target *out, const char *s, char *err, size_t err_len) {
  wisp_rpcc_target t; /* |*out| changes only on success */
  memset(&t, 0, sizeof(t));
  if (!s || !*s) {
    snprintf(err, err_len, "empty target (want unix:PATH, unix:///PATH, HOST:PORT or https://HOST:PORT)");
    return WISP_ERR_USAGE;
  }
  if (has_prefix(s, "unix:")) {
    const char *path = s + 5;
    if (has_prefix(path, "//")) {
      /* unix://AUTHORITY/PATH: only an empty authority is meaningful here. */
      if (path[2] != '/') {
        snprintf(err, err_len, "%s: want unix:///ABSOLUTE/PATH or unix:PATH", s);
        return WISP_ERR_USAGE;
      }
      path += 2;
    }
    if (!*path) {
      snprintf(err, err_len, "%s: no socket path", s);
      return WISP_ERR_USAGE;
    }
    if (strlen(path) > WISP_RPCC_UNIX_PATH_MAX) {
      snprintf(err, err_len, "%s: socket path longer than %d bytes", s, WISP_RPCC_UNIX_PATH_MAX);
      return WISP_ERR_USAGE;
    }
    t.kind = WISP_RPCC_TARGET_UNIX;
    snprintf(t.path, sizeof(t.path), "%s", path);
    snprintf(t.authority, sizeof(t.authority), "localhost");
    *out = t;
    return WISP_OK;
  }
  const char *hostport = s;
  if (has_prefix(s, "https://")) {
    t.tls = true;
    hostport = s + 8;
  } else if (has_prefix(s, "http://")) {
    hostport = s + 7;
  } else if (strstr(s, "://")) {
    snprintf(err, err_len, "%s: unknown scheme (want unix:, http:// or https://)", s);
    return WISP_ERR_USAGE;
  }
  size_t len = strlen(hostport);
  if (len > 0 && hostport[len - 1] == '/') len--; /* https://host:port/ */
  if (len == 0 || len >= sizeof(t.authority)) {
    snprintf(err, err_len, "%s: want HOST:PORT", s);
    return WISP_ERR_USAGE;
  }
  char hp[sizeof(t.authority)];
  memcpy(hp, hostport, len);
  hp[len] = 0;
  if (hp[0] == ':' || strchr(hp, '/') || wisp_addr_parse(&t.addr, hp) != WISP_OK) {
    snprintf(err, err_len, "%s: want HOST:PORT with a literal address or localhost", s);
    return WISP_ERR_USAGE;
  }
  t.kind = WISP_RPCC_TARGET_TCP;
  snprintf(t.authority, sizeof(t.authority), "%s", hp);
  *out = t;
  return WISP_OK;
}

static bool name_is(const uint8_t *s, size_t len, const char *lit) {
  return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

void wisp_rpcc_response_header(wisp_rpcc_response *r, const uint8_t *name, size_t name_len, const uint8_t *value,
                               size_t value_len) {
  if (name_is(name, name_len, ":status")) {
    int st = 0;
    bool ok = value_len == 3;
    for (size_t i = 0; ok && i < 3; i++) {
      ok = value[i] >= '0' && value[i] <= '9';
      st = st * 10 + (value[i] - '0');
    }
    r->http_status = ok ? st : -1;
  } else if (name_is(name, name_len, "content-type")) {
    r->has_content_type = true;
    r->grpc_content_type = wisp_grpc_content_type_ok((const char *)value, value_len);
  } else if (name_is(name, name_len, "grpc-status")) {
    r->has_grpc_status = true;
    r->bad_grpc_status = wisp_grpc_status_parse(&r->grpc_status, (const char *)value, value_len) != WISP_OK;
  } else if (name_is(name, name_len, "grpc-message")) {
    size_t written = 0;
    /* Too long: keep the prefix that fits (decode writes it, NUL-ended). */
    if (wisp_grpc_message_decode(r->message, sizeof(r->message), &written, (const char *)value, value_len) != WISP_OK)
      r->message[written] = 0;
  }
}

bool wisp_rpcc_response_is_grpc(const wisp_rpcc_response *r) { return r->http_status == 200 && r->grpc_content_type; }

wisp_grpc_status wisp_rpcc_status_from_http(int http_status) {
  switch (http_status) {
    case 400:
      return WISP_GRPC_INTERNAL;
    case 401:
      return WISP_GRPC_UNAUTHENTICATED;
    case 403:
      return WISP_GRPC_PERMISSION_DENIED;
    case 404:
      return WISP_GRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return WISP_GRPC_UNAVAILABLE;
    default:
      return WISP_GRPC_UNKNOWN;
  }
}

wisp_grpc_status wisp_rpcc_status_from_h2_error(uint32_t code) {
  switch (code) {
    case NGHTTP2_REFUSED_STREAM:
      return WISP_GRPC_UNAVAILABLE;
    case NGHTTP2_CANCEL:
      return WISP_GRPC_CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return WISP_GRPC_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY:
      return WISP_GRPC_PERMISSION_DENIED;
    default:
      return WISP_GRPC_INTERNAL;
  }
}

wisp_grpc_status wisp_rpcc_response_status(const wisp_rpcc_response *r, char *out_msg, size_t out_msg_len) {
  if (r->has_grpc_status && r->bad_grpc_status) {
    snprintf(out_msg, out_msg_len, "malformed grpc-status from the server");
    return WISP_GRPC_INTERNAL;
  }
  if (r->has_grpc_status) {
    snprintf(out_msg, out_msg_len, "%s", r->message);
    return r->grpc_status;
  }
  if (r->http_status == 0) {
    snprintf(out_msg, out_msg_len, "response without :status");
    return WISP_GRPC_INTERNAL;
  }
  if (r->http_status != 200) {
    snprintf(out_msg, out_msg_len, "HTTP status %d from the server, not a gRPC response", r->http_status);
    return r->http_status < 0 ? WISP_GRPC_INTERNAL : wisp_rpcc_status_from_http(r->http_status);
  }
  if (!r->grpc_content_type) {
    snprintf(out_msg, out_msg_len, "%s",
             r->has_content_type ? "response content-type is not application/grpc" : "response without content-type");
    return WISP_GRPC_UNKNOWN;
  }
  snprintf(out_msg, out_msg_len, "server closed the stream without a grpc-status");
  return WISP_GRPC_INTERNAL;
}

void wisp_rpcc_timeout_format(char *out, size_t out_len, double seconds) {
  static const struct {
    double per_sec; /* units per second */
    char unit;
  } units[] = {{1000.0, 'm'}, {1.0, 'S'}, {1.0 / 60, 'M'}, {1.0 / 3600, 'H'}};
  if (!(seconds > 0)) seconds = 0.001;
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    double v = ceil(seconds * units[i].per_sec);
    if (v <= 99999999.0) {
      snprintf(out, out_len, "%.0f%c", v < 1 ? 1 : v, units[i].unit);
      return;
    }
  }
  snprintf(out, out_len, "99999999H");
}

/* ---- handler re-entry ----
 * Calls end (and clients are freed) while handlers run; memory is released
 * only when the outermost entry into this file returns. */

static void call_release(wisp_rpcc_call *call) {
  wisp_grpc_reader_cleanup(&call->reader);
  wisp_buf_cleanup(&call->out);
  free(call);
}

static void enter(wisp_rpcc *c) { c->depth++; }

/* The last thing an entry point does: |c| may be gone afterwards. */
static void end_all(wisp_rpcc *c, wisp_grpc_status code, const char *msg);

static void leave(wisp_rpcc *c) {
  if (c->depth > 1) {
    c->depth--;
    return;
  }
  /* Outermost: a client being freed also ends what its handlers started
   * meanwhile (bounded: a handler that keeps starting calls is cut off). */
  for (int i = 0; c->free_pending && !wisp_list_empty(&c->calls) && i < 16; i++)
    end_all(c, WISP_GRPC_UNAVAILABLE, "client closed");
  c->depth = 0;
  WISP_LIST_FOREACH_SAFE(it, &c->zombies) {
    wisp_list_unlink(it);
    call_release(call_of(it));
  }
  if (c->free_pending) {
    WISP_LIST_FOREACH_SAFE(it, &c->calls) { /* only after the bound above: no on_done for these */
      wisp_rpcc_call *x = call_of(it);
      wisp_list_unlink(it);
      ev_timer_stop(c->lp->loop, &x->deadline);
      call_release(x);
    }
    ev_timer_stop(c->lp->loop, &c->kick);
    free(c);
  }
}

static wisp_rpcc_call *find_call(const wisp_rpcc *c, int32_t stream_id) {
  if (stream_id <= 0) return NULL;
  WISP_LIST_FOREACH(it, &c->calls) {
    if (call_of(it)->stream_id == stream_id) return call_of(it);
  }
  return NULL;
}

static nghttp2_session *session_of(const wisp_rpcc *c) {
  return c->conn && !c->conn->io.closing ? c->conn->io.h2 : NULL;
}

static void mark_dirty(wisp_rpcc *c) {
  if (c->conn) wisp_h2conn_mark_dirty(&c->conn->io);
}

/* Ends |call| with |code|: on_done, then the call waits in |zombies|. Only
 * from inside enter/leave. */
static void call_end(wisp_rpcc_call *call, wisp_grpc_status code, const char *msg) {
  if (call->done) return;
  wisp_rpcc *c = call->c;
  call->done = true;
  ev_timer_stop(c->lp->loop, &call->deadline);
  wisp_list_unlink(&call->link);
  wisp_list_push_front(&c->zombies, &call->link);
  call->h.on_done(call, code, msg ? msg : "", call->arg);
}

/* Resets the call's stream, if it has one on a live connection. */
static void call_reset(wisp_rpcc_call *call, uint32_t h2_code) {
  nghttp2_session *s = session_of(call->c);
  if (!s || call->stream_id <= 0) return;
  nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, call->stream_id, h2_code);
  mark_dirty(call->c);
}

static void end_all(wisp_rpcc *c, wisp_grpc_status code, const char *msg) {
  /* Bounded: every pass ends one call, and handlers that start new calls
   * on a dead client get them ended by the kick timer, not here. */
  size_t n = 0;
  WISP_LIST_FOREACH(it, &c->calls) n++;
  for (size_t i = 0; i < n && !wisp_list_empty(&c->calls); i++)
    call_end(call_of(wisp_list_first(&c->calls)), code, msg);
}

/* ---- nghttp2 callbacks ---- */

static wisp_rpcc *owner_of(void *user_data) { return ((rpcc_conn *)user_data)->owner; }

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
  wisp_rpcc *c = owner_of(user_data);
  wisp_rpcc_call *call = c ? find_call(c, frame->hd.stream_id) : NULL;
  if (call && frame->hd.type == NGHTTP2_HEADERS) wisp_rpcc_response_header(&call->resp, name, namelen, value, valuelen);
  return 0;
}

/* The server ended its side: the call's status is known. */
static void response_end(wisp_rpcc_call *call) {
  char msg[WISP_RPCC_MESSAGE_MAX + 128];
  wisp_grpc_status code = wisp_rpcc_response_status(&call->resp, msg, sizeof(msg));
  if (code == WISP_GRPC_OK && wisp_grpc_reader_finish(&call->reader) != WISP_OK) {
    code = WISP_GRPC_INTERNAL;
    snprintf(msg, sizeof(msg), "response ended inside a message");
  }
  /* Our side still open (a server that answered early): let it go. */
  if (!call->eof_sent) call_reset(call, NGHTTP2_NO_ERROR);
  call_end(call, code, msg);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  wisp_rpcc *c = owner_of(user_data);
  if (!c) return 0;
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    c->goaway = true;
    snprintf(c->error, sizeof(c->error), "the server is going away (GOAWAY %s)",
             nghttp2_http2_strerror(frame->goaway.error_code));
    return 0;
  }
  if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  wisp_rpcc_call *call = find_call(c, frame->hd.stream_id);
  if (!call) return 0;
  enter(c);
  response_end(call);
  leave(c);
  return 0;
}

static void feed(wisp_rpcc_call *call, const uint8_t *data, size_t len) {
  while (len > 0 && !call->done) {
    wisp_grpc_msg msg;
    bool has = false;
    size_t used = 0;
    wisp_err rc = wisp_grpc_reader_feed(&call->reader, &msg, &has, &used, data, len);
    if (rc != WISP_OK) {
      call_reset(call, NGHTTP2_CANCEL);
      if (rc == WISP_ERR_TOO_BIG) {
        char m[96];
        snprintf(m, sizeof(m), "response message larger than %u bytes", (unsigned)WISP_RPCC_MAX_MSG);
        call_end(call, WISP_GRPC_RESOURCE_EXHAUSTED, m);
      } else {
        call_end(call, WISP_GRPC_INTERNAL,
                 rc == WISP_ERR_PROTO ? "compressed response messages are not supported"
                                      : "malformed gRPC message framing in the response");
      }
      return;
    }
    data += used;
    len -= used;
    if (has && call->h.on_message) call->h.on_message(call, msg.data, msg.len, call->arg);
  }
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                              void *user_data) {
  wisp_rpcc *c = owner_of(user_data);
  wisp_rpcc_call *call = c ? find_call(c, id) : NULL;
  /* The body of a response that is not gRPC (an HTTP error page) is not
   * messages: the status comes from the headers. */
  if (!call || !wisp_rpcc_response_is_grpc(&call->resp)) return 0;
  enter(c);
  feed(call, data, len);
  leave(c);
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *user_data) {
  wisp_rpcc *c = owner_of(user_data);
  wisp_rpcc_call *call = c ? find_call(c, id) : NULL;
  if (!call) return 0;
  /* Closed before the server ended it: a reset (ours are ended already). */
  char msg[160];
  if (error_code == NGHTTP2_REFUSED_STREAM) {
    snprintf(msg, sizeof(msg), "the server refused the stream (REFUSED_STREAM): retry on a new connection");
  } else {
    snprintf(msg, sizeof(msg), "stream reset by the server (RST_STREAM %s)", nghttp2_http2_strerror(error_code));
  }
  enter(c);
  call_end(call, wisp_rpcc_status_from_h2_error(error_code), msg);
  leave(c);
  return 0;
}

static int on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame, int lib_error_code,
                             void *user_data) {
  wisp_rpcc *c = owner_of(user_data);
  if (!c || frame->hd.type != NGHTTP2_HEADERS) return 0;
  wisp_rpcc_call *call = find_call(c, frame->hd.stream_id);
  if (!call) return 0;
  char msg[160];
  snprintf(msg, sizeof(msg), "cannot start the call: %s", c->goaway ? c->error : nghttp2_strerror(lib_error_code));
  enter(c);
  call_end(call, WISP_GRPC_UNAVAILABLE, msg);
  leave(c);
  return 0;
}

static ssize_t provide(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *user_data) {
  wisp_rpcc *c = owner_of(user_data);
  wisp_rpcc_call *call = c ? find_call(c, id) : NULL;
  if (!call) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
  size_t n = wisp_buf_read(&call->out, buf, len);
  if (wisp_buf_len(&call->out) == 0 && call->half_closed) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    call->eof_sent = true;
    return (ssize_t)n;
  }
  return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

static nghttp2_session *session_new(rpcc_conn *conn) {
  static nghttp2_session_callbacks *cbs;
  if (!cbs) {
    if (nghttp2_session_callbacks_new(&cbs) != 0) abort();
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
  }
  nghttp2_session *s;
  if (nghttp2_session_client_new(&s, cbs, conn) != 0) abort();
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, RPCC_STREAM_WINDOW},
  };
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
  nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, RPCC_CONN_WINDOW);
  return s;
}

/* ---- the connection ---- */

static void on_state(wisp_h2conn *io) {
  rpcc_conn *conn = (rpcc_conn *)io;
  if (conn->owner && io->state == WISP_H2CONN_OPEN) conn->owner->reached = true;
}

static void on_eof(wisp_h2conn *io) { wisp_h2conn_close(io, "connection closed by the server"); }

static void on_flushed(wisp_h2conn *io) {
  if (!nghttp2_session_want_read(io->h2) && !nghttp2_session_want_write(io->h2) && wisp_buf_len(&io->out) == 0)
    wisp_h2conn_close(io, NULL);
}

static void on_teardown(wisp_h2conn *io) {
  rpcc_conn *conn = (rpcc_conn *)io;
  wisp_rpcc *c = conn->owner;
  if (c) {
    c->conn = NULL;
    if (io->close_reason[0]) {
      snprintf(c->error, sizeof(c->error), "%s", io->close_reason);
    } else if (!c->error[0]) {
      snprintf(c->error, sizeof(c->error), "connection closed");
    }
    enter(c);
    end_all(c, WISP_GRPC_UNAVAILABLE, c->error);
    leave(c);
  }
  free(conn);
}

static const wisp_h2conn_ops kOps = {on_state, on_eof, on_flushed, on_teardown};

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_rpcc *c = w->data;
  enter(c);
  size_t n = 0;
  WISP_LIST_FOREACH(it, &c->calls) n++;
  /* Walk a bounded number of times; ending a call unlinks it. */
  for (size_t i = 0; i < n; i++) {
    wisp_rpcc_call *call = NULL;
    WISP_LIST_FOREACH(it, &c->calls) {
      if (call_of(it)->fail_pending || !c->conn) {
        call = call_of(it);
        break;
      }
    }
    if (!call) break;
    if (call->fail_pending) {
      call_end(call, call->fail_code, call->fail_msg);
    } else {
      call_end(call, WISP_GRPC_UNAVAILABLE, c->error);
    }
  }
  leave(c);
}

static void kick(wisp_rpcc *c) {
  if (!ev_is_active(&c->kick)) {
    ev_timer_set(&c->kick, 0, 0);
    ev_timer_start(c->lp->loop, &c->kick);
  }
}

wisp_rpcc *wisp_rpcc_connect(wisp_h2loop *lp, const char *target, const wisp_tls *tls, const char *expect_id, char *err,
                             size_t err_len) {
  wisp_rpcc_target t;
  if (wisp_rpcc_target_parse(&t, target, err, err_len) != WISP_OK) return NULL;
  if (t.tls && !tls) {
    snprintf(err, err_len, "%s: TLS needs credentials (a certificate and trust bundle)", target);
    return NULL;
  }
  if (expect_id && strlen(expect_id) > WISP_SPIFFE_MAX) {
    snprintf(err, err_len, "expected SPIFFE ID longer than %d bytes", WISP_SPIFFE_MAX);
    return NULL;
  }
  wisp_rpcc *c = wisp_calloc(1, sizeof(*c));
  wisp_list_init(&c->calls);
  wisp_list_init(&c->zombies);
  c->lp = lp;
  c->target = t;
  ev_timer_init(&c->kick, on_kick, 0, 0);
  c->kick.data = c;

  int fd;
  wisp_err rc = t.kind == WISP_RPCC_TARGET_UNIX ? wisp_net_connect_unix(&fd, t.path) : wisp_net_connect(&fd, &t.addr);
  if (rc != WISP_OK) {
    snprintf(c->error, sizeof(c->error), "cannot connect: %s", strerror(errno));
    return c;
  }
  rpcc_conn *conn = wisp_calloc(1, sizeof(*conn));
  SSL *ssl = NULL;
  if (tls) {
    if (expect_id) snprintf(conn->expect_id, sizeof(conn->expect_id), "%s", expect_id);
    conn->io.verify.expect_id = expect_id ? conn->expect_id : NULL;
    ssl = wisp_tls_new_ssl(tls, false, &conn->io.verify);
    if (!ssl) {
      snprintf(err, err_len, "no TLS credentials loaded");
      close(fd);
      free(conn);
      free(c);
      return NULL;
    }
  }
  conn->owner = c;
  c->conn = conn;
  wisp_h2conn_init(&conn->io, lp, &kOps, fd, ssl, true, WISP_H2CONN_CONNECTING);
  wisp_h2conn_set0_session(&conn->io, session_new(conn));
  return c;
}

void wisp_rpcc_free(wisp_rpcc *c) {
  if (!c || c->free_pending) return;
  enter(c);
  c->free_pending = true;
  if (c->conn) {
    rpcc_conn *conn = c->conn;
    c->conn = NULL;
    conn->owner = NULL;
    wisp_h2conn_close(&conn->io, NULL);
  }
  snprintf(c->error, sizeof(c->error), "client closed");
  end_all(c, WISP_GRPC_UNAVAILABLE, c->error);
  leave(c);
}

bool wisp_rpcc_usable(const wisp_rpcc *c) { return c && session_of(c) && !c->goaway && !c->free_pending; }

bool wisp_rpcc_reached(const wisp_rpcc *c) { return c->reached; }

const char *wisp_rpcc_get0_error(const wisp_rpcc *c) {
  if (wisp_rpcc_usable(c)) return "";
  if (c->conn && c->conn->io.closing) return c->conn->io.close_reason[0] ? c->conn->io.close_reason : "closing";
  return c->error;
}

/* ---- calls ---- */

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_rpcc_call *call = w->data;
  wisp_rpcc *c = call->c;
  char msg[96];
  snprintf(msg, sizeof(msg), "deadline exceeded: no answer within %gs", call->timeout_s);
  enter(c);
  call_reset(call, NGHTTP2_CANCEL);
  call_end(call, WISP_GRPC_DEADLINE_EXCEEDED, msg);
  leave(c);
}

static void fail_later(wisp_rpcc_call *call, wisp_grpc_status code, const char *msg) {
  call->fail_pending = true;
  call->fail_code = code;
  snprintf(call->fail_msg, sizeof(call->fail_msg), "%s", msg);
  kick(call->c);
}

#define NV(name, value, value_len) \
  (nghttp2_nv) { (uint8_t *)(name), (uint8_t *)(value), strlen(name), (value_len), NGHTTP2_NV_FLAG_NONE }

static void submit(wisp_rpcc_call *call, const char *path) {
  wisp_rpcc *c = call->c;
  nghttp2_session *s = session_of(c);
  if (!s || c->goaway) {
    fail_later(call, WISP_GRPC_UNAVAILABLE, wisp_rpcc_get0_error(c));
    return;
  }
  char timeout[16];
  nghttp2_nv nv[8];
  size_t n = 0;
  const char *scheme = wisp_transport_is_tls(&c->conn->io.tp) ? "https" : "http";
  nv[n++] = NV(":method", "POST", 4);
  nv[n++] = NV(":scheme", scheme, strlen(scheme));
  nv[n++] = NV(":path", path, strlen(path));
  nv[n++] = NV(":authority", c->target.authority, strlen(c->target.authority));
  nv[n++] = NV("te", "trailers", 8);
  nv[n++] = NV("content-type", "application/grpc", 16);
  nv[n++] = NV("user-agent", "wisp-rpcc/0.1", 13);
  if (call->timeout_s > 0) {
    wisp_rpcc_timeout_format(timeout, sizeof(timeout), call->timeout_s);
    nv[n++] = NV("grpc-timeout", timeout, strlen(timeout));
  }
  nghttp2_data_provider prd = {.source.ptr = NULL, .read_callback = provide};
  int32_t id = nghttp2_submit_request(s, NULL, nv, n, &prd, NULL);
  if (id < 0) {
    char msg[128];
    snprintf(msg, sizeof(msg), "cannot start the call: %s", nghttp2_strerror(id));
    fail_later(call, WISP_GRPC_UNAVAILABLE, msg);
    return;
  }
  call->stream_id = id;
  mark_dirty(c);
}

wisp_rpcc_call *wisp_rpcc_call_start(wisp_rpcc *c, const char *path, const wisp_rpcc_handlers *h, void *arg,
                                     double timeout_s) {
  wisp_rpcc_call *call = wisp_calloc(1, sizeof(*call));
  call->c = c;
  call->h = *h;
  call->arg = arg;
  call->timeout_s = timeout_s;
  wisp_grpc_reader_init(&call->reader, WISP_RPCC_MAX_MSG);
  ev_timer_init(&call->deadline, on_deadline, timeout_s > 0 ? timeout_s : 0, 0);
  call->deadline.data = call;
  wisp_list_push_front(&c->calls, &call->link);
  if (timeout_s > 0) {
    /* A timer counts from the loop's clock, read when the loop last woke:
     * on a busy machine that can be long before this call, and the deadline
     * would fire early. Count it from now. */
    ev_now_update(c->lp->loop);
    ev_timer_start(c->lp->loop, &call->deadline);
  }
  if (!path || path[0] != '/') {
    fail_later(call, WISP_GRPC_INTERNAL, "method path must start with '/'");
  } else if (c->free_pending) {
    fail_later(call, WISP_GRPC_UNAVAILABLE, "client closed");
  } else {
    submit(call, path);
  }
  return call;
}

wisp_err wisp_rpcc_send(wisp_rpcc_call *call, const ProtobufCMessage *msg) {
  WISP_ENSURE(!call->half_closed && !call->done, WISP_ERR_CLOSED);
  size_t len = protobuf_c_message_get_packed_size(msg);
  WISP_ENSURE(len <= WISP_RPCC_OUT_LIMIT, WISP_ERR_TOO_BIG);
  uint8_t *tmp = wisp_malloc(len ? len : 1);
  protobuf_c_message_pack(msg, tmp);
  wisp_err rc = wisp_grpc_write_msg(&call->out, tmp, len, WISP_RPCC_OUT_LIMIT);
  free(tmp);
  WISP_GUARD(rc);
  nghttp2_session *s = session_of(call->c);
  if (s && call->stream_id > 0) {
    nghttp2_session_resume_data(s, call->stream_id); /* fails harmlessly before HEADERS went out */
    mark_dirty(call->c);
  }
  return WISP_OK;
}

void wisp_rpcc_close_send(wisp_rpcc_call *call) {
  if (call->half_closed || call->done) return;
  call->half_closed = true;
  nghttp2_session *s = session_of(call->c);
  if (s && call->stream_id > 0) {
    nghttp2_session_resume_data(s, call->stream_id);
    mark_dirty(call->c);
  }
}

void wisp_rpcc_cancel(wisp_rpcc_call *call) {
  if (call->done) return;
  wisp_rpcc *c = call->c;
  enter(c);
  call_reset(call, NGHTTP2_CANCEL);
  call_end(call, WISP_GRPC_CANCELLED, "cancelled by the client");
  leave(c);
}

wisp_rpcc_call *wisp_rpcc_unary(wisp_rpcc *c, const char *path, const ProtobufCMessage *req,
                                const wisp_rpcc_handlers *h, void *arg, double timeout_s) {
  wisp_rpcc_call *call = wisp_rpcc_call_start(c, path, h, arg, timeout_s);
  if (wisp_rpcc_send(call, req) != WISP_OK) {
    fail_later(call, WISP_GRPC_RESOURCE_EXHAUSTED, "request message too large");
  }
  wisp_rpcc_close_send(call);
  return call;
}
