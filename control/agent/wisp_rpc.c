#include "control/agent/wisp_rpc.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/wisp_accept.h"
#include "lib/wisp_connlimit.h"
#include "lib/wisp_h2conn.h"
#include "lib/wisp_list.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_net.h"
#include "lib/wisp_sniff.h"

#define RPC_HANDSHAKE_TIMEOUT 10.0
#define RPC_MAX_LISTENERS 4
#define RPC_ACCEPTS_PER_EVENT 64
/* An idle connection's GOAWAY gets this long to go out before the close. */
#define RPC_GOAWAY_GRACE 5.0
/* Lines a flood of refused connections may write, per second. */
#define RPC_REFUSAL_LOG_BURST 5

typedef struct rpc_conn rpc_conn;

struct wisp_rpc_shared {
  size_t refs;
  size_t len;
  uint8_t data[];
};

/* One response message waiting for the peer: |head| (the call's own bytes:
 * the gRPC prefix and its own fields, or a plain HTTP body) then |body|
 * (shared, may be NULL). */
typedef struct rpc_msg {
  struct rpc_msg *next;
  wisp_rpc_shared *body; /* a reference, or NULL */
  size_t head_len;
  size_t len;       /* head_len + the body's */
  size_t done;      /* bytes handed to nghttp2 */
  bool latest_only; /* replaced by a newer one while not started */
  uint8_t head[];
} rpc_msg;

typedef struct {
  wisp_rpc_server *srv;
  int fd;
  bool tls_only; /* TCP: TLS; Unix: sniff the first bytes */
  wisp_acceptor acc;
} rpc_listener;

/* A Unix-socket connection whose first bytes are awaited. */
typedef struct {
  wisp_rpc_server *srv;
  wisp_connlimit_slot slot;
} rpc_sniff;

struct wisp_rpc_server {
  struct ev_loop *loop;
  wisp_rpc_config cfg;
  wisp_tls *tls;
  wisp_h2loop lp;
  rpc_listener listeners[RPC_MAX_LISTENERS];
  size_t nlisteners;
  wisp_connlimit *limit; /* connections accepted and not closed, still sniffing ones too */
  wisp_list conns;       /* rpc_conn.link, newest first */
  uint64_t next_id;
};

struct rpc_conn {
  wisp_h2conn io; /* first */
  wisp_rpc_server *srv;
  uint64_t id;
  bool local;          /* plaintext on the Unix socket */
  bool peer_uid_known; /* Unix socket: the connecting process's uid (SO_PEERCRED) */
  uid_t peer_uid;
  char origin[64]; /* "uid N", or the peer's IP address */
  size_t held;     /* bytes held for it: requests in, responses out */
  wisp_connlimit_slot slot;
  ev_timer timer;   /* the handshake, then --idle-timeout while it carries no call */
  bool idle_goaway; /* idle: GOAWAY sent, closing once it is out */
  wisp_list calls;  /* wisp_rpc_call.link, newest first */
  wisp_list link;   /* in wisp_rpc_server.conns */
};

struct wisp_rpc_call {
  rpc_conn *conn;
  int32_t id;
  const wisp_rpc_method *method;
  char path[128];
  bool path_ok;
  bool grpc_ok; /* content-type application/grpc */
  bool post;
  wisp_grpc_reader reader;
  size_t partial; /* bytes of a request message still being received */
  uint8_t *unary; /* the one message of a unary call */
  size_t unary_len;
  size_t in_held; /* partial + unary_len, counted in the conn's |held| */
  int nmsgs;
  rpc_msg *q, *q_tail; /* responses not yet handed to nghttp2 */
  size_t queued;       /* their bytes not handed over, counted in |held| */
  bool headers_sent;
  bool finishing; /* trailers wait for |q| to drain */
  bool finished;
  int code;
  char message[512];
  void *user;
  wisp_list link; /* in rpc_conn.calls */
};

static void conn_rearm(rpc_conn *c);

/* ---- what a connection holds ---- */

static bool has_room(const rpc_conn *conn, size_t held, size_t more) {
  size_t max = conn->srv->cfg.max_conn_buffer;
  return more <= max && held <= max - more;
}

static void set_in_held(wisp_rpc_call *c, size_t n) {
  c->conn->held = c->conn->held - c->in_held + n;
  c->in_held = n;
}

/* The request side of a call that is finishing: nothing more is read. */
static void release_input(wisp_rpc_call *c) {
  wisp_grpc_reader_cleanup(&c->reader);
  free(c->unary);
  c->unary = NULL;
  c->unary_len = c->partial = 0;
  set_in_held(c, 0);
}

/* ---- shared messages and the response queue ---- */

wisp_rpc_shared *wisp_rpc_shared_new(const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  wisp_rpc_shared *sh = wisp_malloc(sizeof(*sh) + len);
  sh->refs = 1;
  sh->len = protobuf_c_message_pack(msg, sh->data);
  return sh;
}

void wisp_rpc_shared_free(wisp_rpc_shared *sh) {
  if (sh && --sh->refs == 0) free(sh);
}

static void msg_free(rpc_msg *m) {
  wisp_rpc_shared_free(m->body);
  free(m);
}

static void queue_push(wisp_rpc_call *c, rpc_msg *m) {
  if (c->q_tail) {
    c->q_tail->next = m;
  } else {
    c->q = m;
  }
  c->q_tail = m;
  c->queued += m->len;
  c->conn->held += m->len;
}

/* Bytes of latest-only messages nobody has started to send. */
static size_t unstarted_latest(const wisp_rpc_call *c) {
  size_t n = 0;
  for (const rpc_msg *m = c->q; m; m = m->next) {
    if (m->latest_only && m->done == 0) n += m->len;
  }
  return n;
}

/* Drops them (|all|: every message, the call is going). */
static void queue_drop(wisp_rpc_call *c, bool all) {
  rpc_msg **pp = &c->q;
  c->q_tail = NULL;
  while (*pp) {
    rpc_msg *m = *pp;
    if (all || (m->latest_only && m->done == 0)) {
      *pp = m->next;
      c->queued -= m->len - m->done;
      c->conn->held -= m->len - m->done;
      msg_free(m);
    } else {
      c->q_tail = m;
      pp = &m->next;
    }
  }
}

/* Copies up to |len| queued bytes into |buf| for nghttp2. */
static size_t queue_read(wisp_rpc_call *c, uint8_t *buf, size_t len) {
  size_t n = 0;
  while (n < len && c->q) {
    rpc_msg *m = c->q;
    const uint8_t *src = m->done < m->head_len ? m->head + m->done : m->body->data + (m->done - m->head_len);
    size_t avail = (m->done < m->head_len ? m->head_len : m->len) - m->done;
    size_t k = avail < len - n ? avail : len - n;
    memcpy(buf + n, src, k);
    n += k;
    m->done += k;
    if (m->done == m->len) {
      c->q = m->next;
      if (!c->q) c->q_tail = NULL;
      msg_free(m);
    }
  }
  c->queued -= n;
  c->conn->held -= n;
  return n;
}

/* ---- calls ---- */

static void call_free(wisp_rpc_call *c) {
  rpc_conn *conn = c->conn;
  if (c->method && c->method->on_close) c->method->on_close(c);
  wisp_list_unlink(&c->link);
  release_input(c);
  queue_drop(c, true);
  free(c);
  if (wisp_list_empty(&conn->calls)) conn_rearm(conn); /* idle from now on */
}

static void status_headers(nghttp2_nv *nv, size_t *n, char *code, size_t code_len, char *msg, size_t msg_len,
                           const wisp_rpc_call *c) {
  size_t written = 0;
  snprintf(code, code_len, "%d", c->code);
  if (wisp_grpc_message_encode(msg, msg_len, &written, c->message, strlen(c->message)) != WISP_OK) msg[written] = 0;
  nv[(*n)++] = (nghttp2_nv){(uint8_t *)"grpc-status", (uint8_t *)code, 11, strlen(code), NGHTTP2_NV_FLAG_NONE};
  if (c->message[0])
    nv[(*n)++] = (nghttp2_nv){(uint8_t *)"grpc-message", (uint8_t *)msg, 12, strlen(msg), NGHTTP2_NV_FLAG_NONE};
}

#define NV_LIT(name, value) \
  (nghttp2_nv) { (uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, sizeof(value) - 1, NGHTTP2_NV_FLAG_NONE }

static ssize_t provide(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *user_data) {
  wisp_rpc_call *c = src->ptr;
  size_t n = queue_read(c, buf, len);
  if (c->queued == 0 && c->finishing) {
    nghttp2_nv nv[2];
    size_t nn = 0;
    char code[16], msg[3 * sizeof(c->message)];
    status_headers(nv, &nn, code, sizeof(code), msg, sizeof(msg), c);
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (nghttp2_submit_trailer(session, id, nv, nn) == 0) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    c->finished = true;
    return (ssize_t)n;
  }
  return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

static void send_headers(wisp_rpc_call *c) {
  nghttp2_nv nv[] = {NV_LIT(":status", "200"), NV_LIT("content-type", "application/grpc")};
  nghttp2_data_provider prd = {.source.ptr = c, .read_callback = provide};
  nghttp2_submit_response(c->conn->io.h2, c->id, nv, 2, &prd);
  c->headers_sent = true;
}

/* Queues |own| then |shared| as one gRPC message. */
static wisp_err send_msg(wisp_rpc_call *c, wisp_rpc_shared *shared, const ProtobufCMessage *own, bool latest_only) {
  if (c->finishing) return WISP_OK;
  size_t own_len = own ? protobuf_c_message_get_packed_size(own) : 0;
  size_t body_len = shared ? shared->len : 0;
  WISP_ENSURE(own_len <= UINT32_MAX - body_len, WISP_ERR_TOO_BIG);
  size_t len = WISP_GRPC_PREFIX_LEN + own_len + body_len;
  size_t replaced = latest_only ? unstarted_latest(c) : 0;
  WISP_ENSURE(has_room(c->conn, c->conn->held - replaced, len), WISP_ERR_TOO_BIG);
  if (latest_only) queue_drop(c, false);
  rpc_msg *m = wisp_calloc(1, sizeof(*m) + WISP_GRPC_PREFIX_LEN + own_len);
  wisp_grpc_prefix_write(m->head, (uint32_t)(own_len + body_len));
  if (own) protobuf_c_message_pack(own, m->head + WISP_GRPC_PREFIX_LEN);
  m->head_len = WISP_GRPC_PREFIX_LEN + own_len;
  m->len = len;
  m->latest_only = latest_only;
  if (shared) {
    shared->refs++;
    m->body = shared;
  }
  queue_push(c, m);
  if (!c->headers_sent) {
    send_headers(c);
  } else {
    nghttp2_session_resume_data(c->conn->io.h2, c->id);
  }
  wisp_h2conn_mark_dirty(&c->conn->io);
  return WISP_OK;
}

wisp_err wisp_rpc_send(wisp_rpc_call *c, const ProtobufCMessage *msg) { return send_msg(c, NULL, msg, false); }

wisp_err wisp_rpc_send_latest(wisp_rpc_call *c, wisp_rpc_shared *shared, const ProtobufCMessage *own) {
  return send_msg(c, shared, own, true);
}

void wisp_rpc_finish(wisp_rpc_call *c, wisp_grpc_status code, const char *message) {
  if (c->finishing) return;
  c->finishing = true;
  c->code = code;
  snprintf(c->message, sizeof(c->message), "%s", message ? message : "");
  if (c->headers_sent) {
    nghttp2_session_resume_data(c->conn->io.h2, c->id);
  } else {
    /* Trailers-only response: one HEADERS frame with END_STREAM. */
    nghttp2_nv nv[4] = {NV_LIT(":status", "200"), NV_LIT("content-type", "application/grpc")};
    size_t n = 2;
    char codebuf[16], msg[3 * sizeof(c->message)];
    status_headers(nv, &n, codebuf, sizeof(codebuf), msg, sizeof(msg), c);
    nghttp2_submit_response(c->conn->io.h2, c->id, nv, n, NULL);
    c->headers_sent = c->finished = true;
  }
  wisp_h2conn_mark_dirty(&c->conn->io);
}

void wisp_rpc_finishf(wisp_rpc_call *c, wisp_grpc_status code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  wisp_rpc_finish(c, code, msg);
}

wisp_rpc_server *wisp_rpc_call_server(const wisp_rpc_call *c) { return c->conn->srv; }
const char *wisp_rpc_call_peer_id(const wisp_rpc_call *c) {
  return c->conn->io.verify.peer_ok ? c->conn->io.verify.peer.id : NULL;
}
X509 *wisp_rpc_call_get1_peer_cert(const wisp_rpc_call *c) {
  return c->conn->io.verify.peer_ok && c->conn->io.tp.ssl ? SSL_get_peer_certificate(c->conn->io.tp.ssl) : NULL;
}
bool wisp_rpc_call_local(const wisp_rpc_call *c) { return c->conn->local; }
bool wisp_rpc_call_local_uid(const wisp_rpc_call *c, uid_t *out) {
  if (!c->conn->local || !c->conn->peer_uid_known) return false;
  *out = c->conn->peer_uid;
  return true;
}
const char *wisp_rpc_call_origin(const wisp_rpc_call *c) { return c->conn->origin; }
uint64_t wisp_rpc_call_conn_id(const wisp_rpc_call *c) { return c->conn->id; }
void *wisp_rpc_call_user(const wisp_rpc_call *c) { return c->user; }
void wisp_rpc_call_set_user(wisp_rpc_call *c, void *user) { c->user = user; }
void *wisp_rpc_server_data(const wisp_rpc_server *s) { return s->cfg.data; }

/* A request that is not gRPC at all gets a plain HTTP answer. */
static void reject_http(wisp_rpc_call *c, const char *status) {
  nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), NGHTTP2_NV_FLAG_NONE},
                     NV_LIT("content-type", "text/plain")};
  static const char body[] = "wisp-agent speaks gRPC: POST with content-type application/grpc\n";
  rpc_msg *m = wisp_calloc(1, sizeof(*m) + sizeof(body) - 1);
  memcpy(m->head, body, sizeof(body) - 1);
  m->head_len = m->len = sizeof(body) - 1;
  queue_push(c, m);
  c->finishing = c->headers_sent = true;
  c->code = -1;
  nghttp2_data_provider prd = {.source.ptr = c, .read_callback = provide};
  nghttp2_submit_response(c->conn->io.h2, c->id, nv, 2, &prd);
}

static const wisp_rpc_method *find_method(const wisp_rpc_server *s, const char *path) {
  for (size_t i = 0; i < s->cfg.nmethods; i++) {
    if (strcmp(s->cfg.methods[i].path, path) == 0) return &s->cfg.methods[i];
  }
  return NULL;
}

/* ---- nghttp2 callbacks ---- */

static wisp_rpc_call *call_of(nghttp2_session *session, int32_t id) {
  return nghttp2_session_get_stream_user_data(session, id);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  rpc_conn *conn = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  wisp_rpc_call *c = wisp_calloc(1, sizeof(*c));
  c->conn = conn;
  c->id = frame->hd.stream_id;
  wisp_grpc_reader_init(&c->reader, WISP_RPC_MAX_MSG);
  bool was_idle = wisp_list_empty(&conn->calls);
  wisp_list_push_front(&conn->calls, &c->link);
  nghttp2_session_set_stream_user_data(session, c->id, c);
  if (was_idle) conn_rearm(conn); /* busy: no idle timeout */
  return 0;
}

static bool is(const uint8_t *s, size_t len, const char *lit) { return len == strlen(lit) && !memcmp(s, lit, len); }

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
  wisp_rpc_call *c = call_of(session, frame->hd.stream_id);
  if (!c || frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  if (is(name, namelen, ":path")) {
    c->path_ok = valuelen < sizeof(c->path);
    if (c->path_ok) {
      memcpy(c->path, value, valuelen);
      c->path[valuelen] = 0;
    }
  } else if (is(name, namelen, ":method")) {
    c->post = is(value, valuelen, "POST");
  } else if (is(name, namelen, "content-type")) {
    c->grpc_ok = wisp_grpc_content_type_ok((const char *)value, valuelen);
  }
  return 0;
}

static void deliver(wisp_rpc_call *c, const uint8_t *msg, size_t len) {
  c->nmsgs++;
  c->partial = 0;
  if (c->method->streaming) {
    c->method->on_message(c, msg, len);
    return;
  }
  if (c->nmsgs > 1) {
    wisp_rpc_finish(c, WISP_GRPC_INVALID_ARGUMENT, "more than one request message on a unary call");
    return;
  }
  c->unary = wisp_malloc(len ? len : 1);
  memcpy(c->unary, msg, len);
  c->unary_len = len;
}

static void feed(wisp_rpc_call *c, const uint8_t *data, size_t len) {
  while (len > 0 && !c->finishing) {
    wisp_grpc_msg msg;
    bool has = false;
    size_t used = 0;
    wisp_err rc = wisp_grpc_reader_feed(&c->reader, &msg, &has, &used, data, len);
    if (rc == WISP_ERR_TOO_BIG) {
      wisp_rpc_finishf(c, WISP_GRPC_RESOURCE_EXHAUSTED, "request message larger than %d bytes", WISP_RPC_MAX_MSG);
      return;
    }
    if (rc != WISP_OK) {
      wisp_rpc_finish(
          c, WISP_GRPC_INTERNAL,
          rc == WISP_ERR_PROTO ? "compressed messages are not supported" : "malformed gRPC message framing");
      return;
    }
    data += used;
    len -= used;
    c->partial += used;
    if (has) deliver(c, msg.data, msg.len);
    if (!c->finishing) set_in_held(c, c->partial + c->unary_len);
  }
}

static void request_ready(wisp_rpc_call *c) {
  if (!c->post || !c->grpc_ok) {
    reject_http(c, c->post ? "415" : "405");
    return;
  }
  c->method = c->path_ok ? find_method(c->conn->srv, c->path) : NULL;
  if (!c->method) wisp_rpc_finishf(c, WISP_GRPC_UNIMPLEMENTED, "unknown method %s", c->path_ok ? c->path : "?");
}

static void request_end(wisp_rpc_call *c) {
  if (c->finishing || !c->method) return;
  if (wisp_grpc_reader_finish(&c->reader) != WISP_OK) {
    wisp_rpc_finish(c, WISP_GRPC_INTERNAL, "request ended inside a message");
  } else if (c->method->streaming) {
    if (c->method->on_end) c->method->on_end(c);
  } else if (c->nmsgs != 1) {
    wisp_rpc_finish(c, WISP_GRPC_INVALID_ARGUMENT, "a unary call needs exactly one request message");
  } else {
    c->method->on_message(c, c->unary, c->unary_len);
  }
  release_input(c); /* the request is complete */
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  wisp_rpc_call *c = call_of(session, frame->hd.stream_id);
  if (!c) return 0;
  bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) request_ready(c);
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) && end) request_end(c);
  return 0;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                              void *user_data) {
  wisp_rpc_call *c = call_of(session, id);
  if (!c || !c->method || c->finishing) return 0;
  if (!has_room(c->conn, c->conn->held, len)) {
    wisp_rpc_finishf(c, WISP_GRPC_RESOURCE_EXHAUSTED,
                     "this connection would hold more than %zu bytes of requests and unread responses "
                     "(--max-conn-buffer)",
                     c->conn->srv->cfg.max_conn_buffer);
  } else {
    feed(c, data, len);
  }
  if (c->finishing) release_input(c); /* handlers are done with its messages */
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *user_data) {
  wisp_rpc_call *c = call_of(session, id);
  if (c) call_free(c);
  return 0;
}

static nghttp2_session *session_new(rpc_conn *conn) {
  static nghttp2_session_callbacks *cbs;
  if (!cbs) {
    if (nghttp2_session_callbacks_new(&cbs) != 0) abort();
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  }
  nghttp2_session *s;
  if (nghttp2_session_server_new(&s, cbs, conn) != 0) abort();
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, WISP_RPC_MAX_STREAMS}};
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 1);
  return s;
}

/* ---- connections ---- */

static void conn_log(const rpc_conn *c, const char *event) {
  wisp_json j;
  wisp_json_begin(&j, "conn");
  wisp_json_str(&j, "event", event);
  wisp_json_int(&j, "conn", (int64_t)c->id);
  wisp_json_str(&j, "transport", c->local ? "unix" : "tls");
  wisp_json_str(&j, "origin", c->origin);
  if (c->io.verify.peer_ok) wisp_json_str(&j, "peer_id", c->io.verify.peer.id);
  wisp_json_str(&j, "reason", c->io.close_reason);
  wisp_json_emit(&j);
}

/* The timer of |c|: the TLS handshake until the connection is open, then
 * --idle-timeout while it carries no call; none while it does. */
static void conn_rearm(rpc_conn *c) {
  wisp_rpc_server *s = c->srv;
  if (c->io.closing || c->idle_goaway) return; /* going: the timer that ends it stays */
  ev_timer_stop(s->loop, &c->timer);
  double t = c->io.state != WISP_H2CONN_OPEN ? RPC_HANDSHAKE_TIMEOUT
             : !wisp_list_empty(&c->calls)   ? 0
                                             : s->cfg.idle_timeout;
  if (t <= 0) return;
  ev_timer_set(&c->timer, t, 0);
  ev_timer_start(s->loop, &c->timer);
}

static void on_state(wisp_h2conn *io) { conn_rearm((rpc_conn *)io); }

static void on_eof(wisp_h2conn *io) { wisp_h2conn_close(io, NULL); }

static void close_idle(rpc_conn *c) {
  wisp_h2conn_closef(&c->io, "no call for %gs (--idle-timeout)", c->srv->cfg.idle_timeout);
}

static void on_flushed(wisp_h2conn *io) {
  rpc_conn *c = (rpc_conn *)io;
  if (nghttp2_session_want_read(io->h2) || nghttp2_session_want_write(io->h2) || wisp_buf_len(&io->out) > 0) return;
  if (c->idle_goaway) {
    close_idle(c);
  } else {
    wisp_h2conn_close(io, NULL);
  }
}

static void on_teardown(wisp_h2conn *io) {
  rpc_conn *c = (rpc_conn *)io;
  if (io->close_reason[0]) conn_log(c, "closed");
  while (!wisp_list_empty(&c->calls)) call_free(WISP_LIST_ELEM(c->calls.next, wisp_rpc_call, link));
  ev_timer_stop(c->srv->loop, &c->timer);
  wisp_list_unlink(&c->link);
  wisp_connlimit_release(&c->slot);
  free(c);
}

static const wisp_h2conn_ops kOps = {on_state, on_eof, on_flushed, on_teardown};

static void on_conn_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  rpc_conn *c = w->data;
  if (c->io.state != WISP_H2CONN_OPEN) {
    wisp_h2conn_closef(&c->io, "TLS handshake not finished within %gs", RPC_HANDSHAKE_TIMEOUT);
  } else if (c->idle_goaway) {
    close_idle(c); /* the peer did not take the GOAWAY in time */
  } else {
    /* Idle: GOAWAY first, so that a client can tell this from a failure
     * (gRPC clients reconnect for their next call without an error). */
    c->idle_goaway = true;
    nghttp2_session_terminate_session(c->io.h2, NGHTTP2_NO_ERROR);
    wisp_h2conn_mark_dirty(&c->io);
    ev_timer_set(&c->timer, RPC_GOAWAY_GRACE, 0);
    ev_timer_start(loop, &c->timer);
  }
}

/* The uid of the process at the other end of the Unix socket |fd|. */
static bool peer_uid(int fd, uid_t *out) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) return false;
  *out = cred.uid;
  return true;
}

/* "uid N" for a Unix socket, the peer's IP address (no port) for TCP. */
static void set_origin(rpc_conn *c, int fd, const wisp_addr *tcp_peer) {
  if (!tcp_peer) {
    c->peer_uid = (uid_t)-1;
    c->peer_uid_known = peer_uid(fd, &c->peer_uid);
    if (c->peer_uid_known) {
      snprintf(c->origin, sizeof(c->origin), "uid %u", (unsigned)c->peer_uid);
    } else {
      snprintf(c->origin, sizeof(c->origin), "unix socket");
    }
    return;
  }
  wisp_addr host = *tcp_peer;
  if (host.sa.ss_family == AF_INET) ((struct sockaddr_in *)&host.sa)->sin_port = 0;
  if (host.sa.ss_family == AF_INET6) ((struct sockaddr_in6 *)&host.sa)->sin6_port = 0;
  wisp_addr_format_dest(&host, c->origin, sizeof(c->origin));
}

/* Takes |fd| and its place in the server's limits, |slot|. |tcp_peer|
 * NULL: the Unix socket. */
static void conn_start(wisp_rpc_server *s, int fd, bool tls, const wisp_addr *tcp_peer, wisp_connlimit_slot *slot) {
  rpc_conn *c = wisp_calloc(1, sizeof(*c));
  c->srv = s;
  wisp_connlimit_move(&c->slot, slot);
  c->id = ++s->next_id;
  c->local = !tls && !tcp_peer;
  set_origin(c, fd, tcp_peer);
  wisp_list_init(&c->calls);
  wisp_list_push_front(&s->conns, &c->link);
  SSL *ssl = NULL;
  if (tls) {
    ssl = s->tls ? wisp_tls_new_ssl(s->tls, true, &c->io.verify) : NULL;
  }
  wisp_h2conn_init(&c->io, &s->lp, &kOps, fd, ssl, false, tls ? WISP_H2CONN_HANDSHAKING : WISP_H2CONN_OPEN);
  c->io.peer_optional = true;
  wisp_h2conn_set0_session(&c->io, session_new(c));
  ev_init(&c->timer, on_conn_timeout);
  c->timer.data = c;
  if (tls && !ssl) {
    wisp_h2conn_close(&c->io, "no TLS credentials");
  } else {
    conn_rearm(c);
  }
}

/* ---- listeners ---- */

static void on_sniffed(int fd, wisp_sniff_proto proto, void *arg) {
  rpc_sniff *p = arg;
  if (proto > WISP_SNIFF_NEED_MORE) {
    conn_start(p->srv, fd, proto == WISP_SNIFF_TLS, NULL, &p->slot);
  } else if (proto == WISP_SNIFF_TIMEOUT) {
    close(fd);
  }
  wisp_connlimit_release(&p->slot);
  free(p);
}

/* Who |fd| counts against: the connecting process's uid on the Unix socket
 * (none if the kernel cannot say: then only the total applies), the peer's
 * IP address over TCP. */
static void source_of(wisp_connlimit_key *out, int fd, const wisp_addr *tcp_peer) {
  uid_t uid;
  if (tcp_peer) {
    wisp_connlimit_key_addr(out, tcp_peer, WISP_CONNLIMIT_V6_PREFIX_DEFAULT);
  } else if (peer_uid(fd, &uid)) {
    wisp_connlimit_key_uid(out, (uint32_t)uid);
  } else {
    memset(out, 0, sizeof(*out));
  }
}

static void refuse(wisp_rpc_server *s, int fd, const wisp_connlimit_key *src, wisp_connlimit_result why) {
  static wisp_log_limit limit =
      WISP_LOG_LIMIT_INIT("refused connections", RPC_REFUSAL_LOG_BURST, 1.0, WISP_LOG_TO_STDERR);
  close(fd);
  if (why == WISP_CONNLIMIT_TOTAL) {
    wisp_log_limited(&limit, WISP_LOG_WARN, "refused a connection: %" PRIu32 " are open, the limit (--max-connections)",
                     wisp_connlimit_count(s->limit));
    return;
  }
  char name[64];
  wisp_connlimit_key_name(src, name, sizeof(name));
  wisp_log_limited(&limit, WISP_LOG_WARN,
                   "refused a connection from %s: it holds %zu already, the limit (--max-connections-per-source)", name,
                   s->cfg.max_per_source);
}

static void on_accept(wisp_acceptor *acc, int fd, const wisp_addr *peer) {
  rpc_listener *l = acc->data;
  wisp_rpc_server *s = l->srv;
  wisp_connlimit_key src;
  source_of(&src, fd, l->tls_only ? peer : NULL);
  wisp_connlimit_slot slot;
  wisp_connlimit_result lim = wisp_connlimit_take(s->limit, &src, &slot);
  if (lim != WISP_CONNLIMIT_OK) {
    refuse(s, fd, &src, lim);
  } else if (l->tls_only) {
    conn_start(s, fd, true, peer, &slot);
  } else {
    rpc_sniff *p = wisp_calloc(1, sizeof(*p));
    p->srv = s;
    wisp_connlimit_move(&p->slot, &slot);
    wisp_sniff_start(s->loop, fd, RPC_HANDSHAKE_TIMEOUT, on_sniffed, p);
  }
}

static wisp_err add_listener(wisp_rpc_server *s, int fd, bool tls_only, const char *name, char *err, size_t err_len) {
  if (s->nlisteners == RPC_MAX_LISTENERS) {
    close(fd);
    snprintf(err, err_len, "cannot listen on %s too: the agent serves at most %d sockets", name, RPC_MAX_LISTENERS);
    return WISP_ERR_USAGE;
  }
  rpc_listener *l = &s->listeners[s->nlisteners++];
  l->srv = s;
  l->fd = fd;
  l->tls_only = tls_only;
  wisp_acceptor_init(&l->acc, s->loop, fd, name, RPC_ACCEPTS_PER_EVENT, on_accept, l);
  wisp_acceptor_start(&l->acc);
  return WISP_OK;
}

wisp_err wisp_rpc_listen_unix(wisp_rpc_server *s, const char *path, unsigned mode, char *err, size_t err_len) {
  int fd;
  if (wisp_net_listen_unix(&fd, path, mode, 128) != WISP_OK) {
    snprintf(err, err_len, "cannot listen on unix:%s: %s", path, strerror(errno));
    return WISP_ERR_IO;
  }
  char name[sizeof(s->listeners[0].acc.name)];
  snprintf(name, sizeof(name), "agent socket unix:%s", path);
  return add_listener(s, fd, false, name, err, err_len);
}

wisp_err wisp_rpc_listen_tls(wisp_rpc_server *s, const char *addr, char *err, size_t err_len) {
  wisp_addr a;
  int fd;
  if (wisp_addr_parse(&a, addr) != WISP_OK) {
    snprintf(err, err_len, "--listen-tls %s: expected HOST:PORT", addr);
    return WISP_ERR_USAGE;
  }
  if (wisp_net_listen(&fd, &a, 128) != WISP_OK) {
    snprintf(err, err_len, "cannot listen on %s: %s", addr, strerror(errno));
    return WISP_ERR_IO;
  }
  char name[sizeof(s->listeners[0].acc.name)];
  snprintf(name, sizeof(name), "agent TLS listener %s", addr);
  return add_listener(s, fd, true, name, err, err_len);
}

void wisp_rpc_server_stop_listening(wisp_rpc_server *s) {
  for (size_t i = 0; i < s->nlisteners; i++) {
    wisp_acceptor_stop(&s->listeners[i].acc);
    close(s->listeners[i].fd);
  }
  s->nlisteners = 0;
}

wisp_rpc_server *wisp_rpc_server_new(struct ev_loop *loop, const wisp_rpc_config *cfg) {
  wisp_rpc_server *s = wisp_calloc(1, sizeof(*s));
  s->loop = loop;
  s->cfg = *cfg;
  wisp_list_init(&s->conns);
  wisp_h2loop_init(&s->lp, loop);
  s->limit = wisp_connlimit_new((uint32_t)cfg->max_connections, (uint32_t)cfg->max_per_source);
  return s;
}

void wisp_rpc_server_set_tls(wisp_rpc_server *s, wisp_tls *tls) { s->tls = tls; }

void wisp_rpc_server_free(wisp_rpc_server *s) {
  if (!s) return;
  wisp_rpc_server_stop_listening(s);
  WISP_LIST_FOREACH_SAFE(it, &s->conns) wisp_h2conn_close(&WISP_LIST_ELEM(it, rpc_conn, link)->io, NULL);
  wisp_h2loop_cleanup(&s->lp); /* tears the connections down: their slots go back */
  wisp_connlimit_free(s->limit);
  free(s);
}
