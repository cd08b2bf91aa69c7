/* The admission webhook's HTTPS/1.1 server; see wisp_webhook.h. Each
 * connection is a small state machine on libev: TLS handshake, then
 * requests (head, Content-Length body) answered in order. Connections are
 * listed oldest first: at the cap, a new one evicts the oldest that holds
 * no request (see make_room).
 *
 * Reviews are decided on the worker thread of wisp_webhook_queue; the
 * request's head is read by wisp_webhook_request. A connection whose job
 * is out reads on but serves nothing more until the answer is back; if it
 * closes first, the job is told (wwq_drop) and its answer dropped. */
#include "control/agent/wisp_webhook.h"

#include <errno.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "control/agent/wisp_admission.h"
#include "control/agent/wisp_webhook_queue.h"
#include "control/agent/wisp_webhook_request.h"
#include "lib/wisp_accept.h"
#include "lib/wisp_buf.h"
#include "lib/wisp_list.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_net.h"

#define READ_CHUNK 16384
#define ACCEPT_BATCH 64
/* A TLS handshake younger than this is not evicted while older idle or
 * stalled connections are there (a real caller's takes milliseconds). */
#define HANDSHAKE_GRACE 1.0

/* What the connection's one timer bounds. */
typedef enum {
  TIMER_HANDSHAKE, /* the TLS handshake, from accept */
  TIMER_HEAD,      /* a request's head, from its first byte */
  TIMER_REQUEST,   /* the whole request, from its first byte */
  TIMER_IDLE,      /* a keep-alive connection between requests */
  TIMER_LINGER,    /* answered and closing: what the peer still sends is read and dropped */
} timer_mode;

/* How long a closing connection reads what its peer still sends. Closing
 * with unread bytes makes the kernel send a reset, which can destroy an
 * answer the peer has not read yet (a 413 to a body still coming). */
#define LINGER_SECONDS 2.0

typedef struct conn {
  wisp_webhook *w;
  int fd;
  SSL *ssl;
  bool handshaken;
  bool close_after; /* close once |out| is sent */
  bool want_write;  /* TLS needs the socket writable to go on */
  bool head_done;   /* the request under way has its whole head */
  bool served;      /* a request was answered in this turn */
  bool lingering;   /* answered and half-closed: reading to the peer's end (TIMER_LINGER) */
  timer_mode mode;
  double req_start; /* ev_now of the first byte of the request under way */
  ev_io io;
  ev_timer timer;
  wisp_buf in, out;
  double born; /* ev_now at accept */
  char peer[64];
  char src[WWQ_SRC_MAX]; /* |peer| without the port: the source's address */
  wwq_job *job;          /* the review out on the worker, NULL: none */
  wisp_list link;        /* in wisp_webhook.conns */
} conn;

struct wisp_webhook {
  struct ev_loop *loop;
  wisp_webhook_config cfg;
  SSL_CTX *ctx; /* for new connections */
  int lfd;
  wisp_acceptor acc; /* pauses when out of descriptors */
  wisp_list conns;   /* conn.link, oldest first */
  size_t nconns;
  wwq_queue queue; /* the reviews and their worker */
};

/* ---- connections ---- */

static void conn_free(conn *c) {
  wisp_webhook *w = c->w;
  ev_io_stop(w->loop, &c->io);
  ev_timer_stop(w->loop, &c->timer);
  wisp_list_unlink(&c->link);
  w->nconns--;
  if (c->job) {
    bool waiting = wwq_drop(&w->queue, c->job);
    WISP_LOG_LIMITED(WISP_LOG_WARN, 5, 1.0, "webhook: the connection from %s closed with its review out: %s", c->peer,
                     waiting ? "dropped undecided" : "its answer is dropped");
  }
  SSL_free(c->ssl);
  close(c->fd);
  wisp_buf_cleanup(&c->in);
  wisp_buf_cleanup(&c->out);
  free(c);
}

static void conn_close(conn *c, const char *why) {
  if (why) WISP_LOG_LIMITED(WISP_LOG_WARN, 5, 1.0, "webhook: connection from %s closed: %s", c->peer, why);
  conn_free(c);
}

static void respond(conn *c, int status, const char *ctype, const void *body, size_t len) {
  char head[256];
  int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
                   wwr_status_text(status), ctype, len, c->close_after ? "Connection: close\r\n" : "");
  if (wisp_buf_append(&c->out, head, (size_t)n, WISP_ADMISSION_OUT_MAX + sizeof(head)) != WISP_OK ||
      wisp_buf_append(&c->out, body, len, WISP_ADMISSION_OUT_MAX + sizeof(head)) != WISP_OK)
    c->close_after = true;
}

static void respond_text(conn *c, int status, const char *text) {
  respond(c, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* A refusal of the request itself: answered, then the connection closes. */
static void refuse(conn *c, int status, const char *text) {
  c->close_after = true;
  respond_text(c, status, text);
}

static void log_review(const conn *c, const wisp_admission_result *r) {
  wisp_json j;
  wisp_json_begin(&j, "admission");
  wisp_json_str(&j, "uid", r->uid);
  wisp_json_str(&j, "namespace", r->ns);
  wisp_json_str(&j, "pod", r->name);
  wisp_json_str(&j, "allowed", r->allowed ? "true" : "false");
  wisp_json_str(&j, "patched", r->patched ? "true" : "false");
  wisp_json_int(&j, "http_status", r->http_status);
  wisp_json_str(&j, "reason", r->reason);
  wisp_json_str(&j, "peer", c->peer);
  wisp_json_emit(&j);
  fflush(stdout);
}

/* ---- reviews ---- */

static void conn_run(conn *c);

/* The answer of |j| to its connection, if it is still there (the
 * queue's wwq_done_cb). */
static void finish_job(wwq_job *j, void *data) {
  conn *c = j->owner;
  if (c) {
    c->job = NULL;
    c->served = true;
    if (j->r.http_status != 200) c->close_after = true;
    respond(c, j->r.http_status, j->r.http_status == 200 ? "application/json" : "text/plain; charset=utf-8",
            wisp_buf_len(&j->out) ? wisp_buf_rptr(&j->out) : (const uint8_t *)"", wisp_buf_len(&j->out));
    log_review(c, &j->r);
  }
  wwq_job_free(j);
  if (c) conn_run(c); /* sends the answer, serves what came meanwhile */
}

/* Hands the review in |body| to the worker; the answer comes in finish_job.
 * Past the queue's budget (all sources together, or this source's share)
 * it is refused at once: an answer now beats one after the API server has
 * given up, and what waits is bounded in memory and in delay. */
static void mutate(conn *c, wisp_admission_scope scope, const char *body, size_t len) {
  wisp_webhook *w = c->w;
  wwq_result rc = wwq_submit(&w->queue, c, c->src, scope, body, len, w->cfg.inject, &c->job);
  if (rc != WWQ_QUEUED) {
    bool source_full = rc == WWQ_SOURCE_FULL;
    char msg[192];
    snprintf(msg, sizeof(msg), "wisp-agent: too many reviews waiting%s (%s %zu bytes); try again\n",
             source_full ? " from this source" : "",
             source_full ? "--webhook-max-queue-per-source" : "--webhook-max-queue",
             source_full ? w->cfg.max_queue_per_source : w->cfg.max_queue);
    WISP_LOG_LIMITED(WISP_LOG_WARN, 5, 1.0, "webhook: review from %s refused: %.*s", c->peer, (int)strlen(msg) - 1,
                     msg);
    respond_text(c, source_full ? 429 : 503, msg);
  }
}

/* ---- requests ---- */

/* Answers the complete requests in |in|; false when the connection is to
 * close (after what is queued is sent). */
static void serve(conn *c) {
  while (!c->close_after && !c->job && wisp_buf_len(&c->in) > 0) {
    const char *p = (const char *)wisp_buf_rptr(&c->in);
    size_t len = wisp_buf_len(&c->in);
    const char *end = memmem(p, len < WISP_WEBHOOK_HEAD_MAX + 4 ? len : WISP_WEBHOOK_HEAD_MAX + 4, "\r\n\r\n", 4);
    if (!end) {
      if (len > WISP_WEBHOOK_HEAD_MAX) refuse(c, 431, "request head too large\n");
      return;
    }
    wwr_request q;
    int status;
    size_t head = (size_t)(end - p) + 4;
    char msg[128];
    if (!wwr_parse_head(&q, p, head - 4, &status)) {
      refuse(c, status, "malformed HTTP request\n");
      return;
    }
    if (q.chunked) {
      refuse(c, 411, "send the body with Content-Length (chunked bodies are not taken)\n");
      return;
    }
    if (q.length > c->w->cfg.max_body) {
      snprintf(msg, sizeof(msg), "the body is larger than %zu bytes (--webhook-max-body)\n", c->w->cfg.max_body);
      refuse(c, 413, msg);
      return;
    }
    if (len < head + q.length) {
      /* The body is on its way; a client that waits for 100 Continue
       * (curl does past 1 MiB) is told to send it. */
      if (q.expect_continue && !c->head_done) {
        static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (wisp_buf_append(&c->out, kContinue, sizeof(kContinue) - 1, WISP_ADMISSION_OUT_MAX) != WISP_OK)
          c->close_after = true;
      }
      c->head_done = true;
      return;
    }
    c->close_after = q.close;
    /* The API server appends a query (POST /mutate?timeout=10s): only the
     * path part names the endpoint. */
    q.path[strcspn(q.path, "?")] = '\0';
    bool annotated_only = !strcmp(q.path, WISP_WEBHOOK_PATH_ANNOTATED);
    if (strcmp(q.path, WISP_WEBHOOK_PATH) != 0 && !annotated_only) {
      respond_text(c, 404,
                   "wisp-agent's webhook serves POST " WISP_WEBHOOK_PATH " and " WISP_WEBHOOK_PATH_ANNOTATED " only\n");
    } else if (strcmp(q.method, "POST") != 0) {
      respond_text(c, 405, "POST an admission.k8s.io/v1 AdmissionReview to " WISP_WEBHOOK_PATH "\n");
    } else if (!q.has_length) {
      refuse(c, 411, "send the body with Content-Length\n");
    } else {
      mutate(c, annotated_only ? WISP_ADMISSION_ANNOTATED : WISP_ADMISSION_ALL, p + head, q.length);
    }
    wisp_buf_consume(&c->in, head + q.length);
    c->head_done = false;
    c->served = true;
  }
}

/* ---- I/O ---- */

/* Runs the timer for |mode| to |after| seconds from now. */
static void set_timer(conn *c, timer_mode mode, double after) {
  c->mode = mode;
  ev_timer_stop(c->w->loop, &c->timer);
  ev_timer_set(&c->timer, after > 0.001 ? after : 0.001, 0);
  ev_timer_start(c->w->loop, &c->timer);
}

/* After a turn of I/O: idle when nothing is buffered, else the request
 * under way has HEAD_TIMEOUT from its first byte for its head and
 * REQUEST_TIMEOUT for all of it. A slow caller cannot stretch either by
 * trickling bytes: the deadlines count from the request's first byte. */
static void arm_timer(conn *c) {
  struct ev_loop *loop = c->w->loop;
  if (c->job) { /* no deadline runs while the webhook itself is the wait */
    ev_timer_stop(loop, &c->timer);
    return;
  }
  bool served = c->served;
  c->served = false;
  if (wisp_buf_len(&c->in) == 0) {
    if (c->mode != TIMER_IDLE || served) set_timer(c, TIMER_IDLE, WISP_WEBHOOK_IDLE_TIMEOUT);
    return;
  }
  if (c->mode == TIMER_IDLE || c->mode == TIMER_HANDSHAKE || served) c->req_start = ev_now(loop);
  timer_mode want = c->head_done ? TIMER_REQUEST : TIMER_HEAD;
  if (c->mode == want && !served) return;
  double limit = want == TIMER_HEAD ? WISP_WEBHOOK_HEAD_TIMEOUT : WISP_WEBHOOK_REQUEST_TIMEOUT;
  set_timer(c, want, c->req_start + limit - ev_now(loop));
}

/* false: the connection is gone. */
static bool tls_error(conn *c, int r, const char *what) {
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ) return true;
  if (e == SSL_ERROR_WANT_WRITE) {
    c->want_write = true;
    return true;
  }
  char reason[160] = "the peer closed the connection";
  if (e == SSL_ERROR_SSL) ERR_error_string_n(ERR_peek_last_error(), reason, sizeof(reason));
  ERR_clear_error();
  conn_close(c, e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !wisp_buf_len(&c->in)) ? NULL : reason);
  (void)what;
  return false;
}

/* How much a connection buffers of what comes in. */
static size_t in_limit(const conn *c) { return WISP_WEBHOOK_HEAD_MAX + 4 + c->w->cfg.max_body; }

/* Whether to read: also while a review is out (even after Connection:
 * close), so that a peer that goes away is noticed and its review dropped
 * before it is decided; what it sends meanwhile waits in |in|. */
static bool wants_read(const conn *c) { return (!c->close_after || c->job) && wisp_buf_len(&c->in) < in_limit(c); }

/* The answer is out: say so (close_notify, FIN) and read what the peer
 * still sends until it closes or LINGER_SECONDS pass. */
static void linger(conn *c) {
  (void)SSL_shutdown(c->ssl);
  ERR_clear_error();
  shutdown(c->fd, SHUT_WR);
  c->lingering = true;
  wisp_buf_cleanup(&c->in);
  ev_io_stop(c->w->loop, &c->io);
  ev_io_set(&c->io, c->fd, EV_READ);
  ev_io_start(c->w->loop, &c->io);
  set_timer(c, TIMER_LINGER, LINGER_SECONDS);
}

/* Reads and drops what a lingering connection's peer sends; frees it at
 * the peer's end. */
static void linger_read(conn *c) {
  char buf[READ_CHUNK];
  for (;;) {
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    conn_free(c);
    return;
  }
}

static bool flush(conn *c) {
  while (wisp_buf_len(&c->out) > 0) {
    size_t n = wisp_buf_len(&c->out);
    int r = SSL_write(c->ssl, wisp_buf_rptr(&c->out), n > READ_CHUNK ? READ_CHUNK : (int)n);
    if (r <= 0) return tls_error(c, r, "write");
    wisp_buf_consume(&c->out, (size_t)r);
  }
  wisp_buf_cleanup(&c->out);
  if (c->close_after && !c->job) { /* after the answer of the review out */
    linger(c);
    return false;
  }
  return true;
}

static bool fill(conn *c) {
  char buf[READ_CHUNK];
  size_t limit = in_limit(c);
  while (wants_read(c)) {
    int r = SSL_read(c->ssl, buf, sizeof(buf));
    if (r <= 0) return tls_error(c, r, "read");
    if (wisp_buf_append(&c->in, buf, (size_t)r, limit + sizeof(buf)) != WISP_OK) {
      refuse(c, 413, "request too large\n");
      break;
    }
  }
  return true;
}

static void conn_run(conn *c) {
  if (c->lingering) {
    linger_read(c);
    return;
  }
  c->want_write = false;
  if (!c->handshaken) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      if (!tls_error(c, r, "handshake")) return;
      ev_io_stop(c->w->loop, &c->io);
      ev_io_set(&c->io, c->fd, c->want_write ? EV_WRITE : EV_READ);
      ev_io_start(c->w->loop, &c->io);
      return;
    }
    c->handshaken = true;
  }
  if (!fill(c)) return;
  serve(c);
  if (!flush(c)) return;
  arm_timer(c);
  /* Once |in| is full, what the peer sends next waits in the kernel (a
   * full buffer would otherwise wake the loop for nothing). */
  int events = (wants_read(c) ? EV_READ : 0) | (c->want_write || wisp_buf_len(&c->out) ? EV_WRITE : 0);
  ev_io_stop(c->w->loop, &c->io);
  ev_io_set(&c->io, c->fd, events);
  if (events) ev_io_start(c->w->loop, &c->io);
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents) { conn_run(io->data); }

static void on_timeout(struct ev_loop *loop, ev_timer *t, int revents) {
  conn *c = t->data;
  if (c->lingering) {
    conn_free(c);
    return;
  }
  static const char *const kWhat[] = {
      [TIMER_HANDSHAKE] = "TLS handshake", [TIMER_HEAD] = "request head", [TIMER_REQUEST] = "request"};
  static const double kLimit[] = {[TIMER_HANDSHAKE] = WISP_WEBHOOK_HANDSHAKE_TIMEOUT,
                                  [TIMER_HEAD] = WISP_WEBHOOK_HEAD_TIMEOUT,
                                  [TIMER_REQUEST] = WISP_WEBHOOK_REQUEST_TIMEOUT};
  char why[96];
  if (c->mode != TIMER_IDLE) snprintf(why, sizeof(why), "no whole %s within %g s", kWhat[c->mode], kLimit[c->mode]);
  conn_close(c, c->mode == TIMER_IDLE ? NULL : why);
}

static void conn_start(wisp_webhook *w, int fd, const wisp_addr *peer) {
  conn *c = wisp_calloc(1, sizeof(*c));
  c->w = w;
  c->fd = fd;
  wisp_addr_format(peer, c->peer, sizeof(c->peer));
  snprintf(c->src, sizeof(c->src), "%s", c->peer);
  char *colon = strrchr(c->src, ':');
  if (colon) *colon = '\0';
  c->born = ev_now(w->loop);
  wisp_list_push_back(&w->conns, &c->link);
  w->nconns++;
  c->ssl = SSL_new(w->ctx);
  ev_io_init(&c->io, on_io, fd, EV_READ);
  c->io.data = c;
  ev_timer_init(&c->timer, on_timeout, WISP_WEBHOOK_HANDSHAKE_TIMEOUT, 0);
  c->timer.data = c;
  if (!c->ssl) {
    conn_close(c, "no TLS credentials");
    return;
  }
  SSL_set_fd(c->ssl, fd);
  SSL_set_accept_state(c->ssl);
  set_timer(c, TIMER_HANDSHAKE, WISP_WEBHOOK_HANDSHAKE_TIMEOUT);
  ev_io_start(w->loop, &c->io);
}

/* Whether |c| holds no request and may go first: idle between requests
 * with nothing to send, or still not through a handshake begun more than
 * HANDSHAKE_GRACE ago (a real caller's takes milliseconds). */
static bool holds_nothing(const conn *c, double now) {
  if (c->lingering) return true; /* answered, closing */
  if (!c->handshaken) return now - c->born >= HANDSHAKE_GRACE;
  return !c->job && wisp_buf_len(&c->in) == 0 && wisp_buf_len(&c->out) == 0;
}

/* How many connections come from |src|. */
static size_t source_conns(const wisp_webhook *w, const char *src) {
  size_t n = 0;
  WISP_LIST_FOREACH(it, &w->conns) n += !strcmp(WISP_LIST_ELEM(it, const conn, link)->src, src);
  return n;
}

/* At the cap, a new caller takes the place of the oldest connection that
 * holds no request; else of the oldest busy one from the source holding
 * the most connections (so one source's flood of requests evicts its own,
 * not a caller in its handshake); else of the oldest of all. Refusing the
 * newcomer instead would let anyone who can reach the port hold every
 * slot and lock the API server out; this way held slots cost an attacker
 * nothing but are worth nothing either. */
static void make_room(wisp_webhook *w) {
  double now = ev_now(w->loop);
  conn *victim = NULL, *busiest = NULL;
  size_t most = 0;
  WISP_LIST_FOREACH(it, &w->conns) {
    if (victim) break;
    conn *c = WISP_LIST_ELEM(it, conn, link);
    if (holds_nothing(c, now)) {
      victim = c;
    } else if (c->handshaken) {
      size_t n = source_conns(w, c->src);
      if (n > most) most = n, busiest = c;
    }
  }
  const char *kind = "idle";
  if (!victim) victim = busiest, kind = "busy";
  if (!victim && !wisp_list_empty(&w->conns)) victim = WISP_LIST_ELEM(w->conns.next, conn, link), kind = "handshaking";
  if (!victim) return;
  WISP_LOG_LIMITED(WISP_LOG_WARN, 5, 1.0,
                   "webhook: --webhook-max-connections (%zu) reached: closed the oldest %s connection, from %s",
                   w->cfg.max_connections, kind, victim->peer);
  conn_free(victim);
}

static void on_accept(wisp_acceptor *acc, int fd, const wisp_addr *peer) {
  wisp_webhook *w = acc->data;
  if (!w->ctx) {
    WISP_LOG_LIMITED(WISP_LOG_WARN, 5, 1.0, "webhook: connection refused: no serving certificate yet");
    close(fd);
    return;
  }
  if (w->nconns >= w->cfg.max_connections) make_room(w);
  conn_start(w, fd, peer);
}

/* ---- life ---- */

/* http/1.1 when the client offers it (the API server offers h2 too). */
static int select_alpn(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in, unsigned in_len, void *arg) {
  static const uint8_t kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  uint8_t *sel = NULL;
  if (SSL_select_next_proto(&sel, out_len, kHttp11, sizeof(kHttp11), in, in_len) == OPENSSL_NPN_NEGOTIATED) {
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

wisp_err wisp_webhook_set_cert(wisp_webhook *w, EVP_PKEY *key, STACK_OF(X509) * chain, char *err, size_t err_len) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  bool ok = ctx && SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) && sk_X509_num(chain) > 0 &&
            SSL_CTX_use_certificate(ctx, sk_X509_value(chain, 0)) && SSL_CTX_use_PrivateKey(ctx, key) &&
            SSL_CTX_check_private_key(ctx);
  for (size_t i = 1; ok && i < sk_X509_num(chain); i++) ok = SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i));
  if (!ok) {
    SSL_CTX_free(ctx);
    snprintf(err, err_len, "cannot set the webhook's serving certificate");
    ERR_clear_error();
    return WISP_ERR_TLS;
  }
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
  SSL_CTX_free(w->ctx); /* open connections hold their own reference */
  w->ctx = ctx;
  return WISP_OK;
}

wisp_err wisp_webhook_new(wisp_webhook **out, struct ev_loop *loop, const wisp_webhook_config *cfg, char *err,
                          size_t err_len) {
  wisp_addr a;
  if (wisp_addr_parse(&a, cfg->listen) != WISP_OK) {
    snprintf(err, err_len, "--webhook %s: expected HOST:PORT", cfg->listen);
    return WISP_ERR_USAGE;
  }
  int fd;
  if (wisp_net_listen(&fd, &a, 128) != WISP_OK) {
    snprintf(err, err_len, "cannot listen on %s: %s", cfg->listen, strerror(errno));
    return WISP_ERR_IO;
  }
  wisp_webhook *w = wisp_calloc(1, sizeof(*w));
  w->loop = loop;
  w->cfg = *cfg;
  w->lfd = fd;
  wisp_list_init(&w->conns);
  wisp_err rc = wwq_start(&w->queue, loop, cfg->max_queue, cfg->max_queue_per_source, finish_job, w, err, err_len);
  if (rc != WISP_OK) {
    close(fd);
    free(w);
    return rc;
  }
  char name[sizeof(w->acc.name)];
  snprintf(name, sizeof(name), "webhook listener %s", cfg->listen);
  wisp_acceptor_init(&w->acc, loop, fd, name, ACCEPT_BATCH, on_accept, w);
  wisp_acceptor_start(&w->acc);
  *out = w;
  return WISP_OK;
}

void wisp_webhook_free(wisp_webhook *w) {
  if (!w) return;
  wisp_acceptor_stop(&w->acc);
  close(w->lfd);
  wwq_stop(&w->queue);
  while (!wisp_list_empty(&w->conns)) conn_free(WISP_LIST_ELEM(w->conns.next, conn, link));
  wwq_cleanup(&w->queue);
  SSL_CTX_free(w->ctx);
  free(w);
}
