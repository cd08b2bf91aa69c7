#include "lib/wisp_transport.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "lib/wisp_mem.h"

/* ---- plain TCP ---- */

static ssize_t plain_result(ssize_t n) {
  if (n >= 0) return n;
  return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? WISP_TRANSPORT_AGAIN : WISP_TRANSPORT_ERROR;
}

static ssize_t plain_read(wisp_transport *t, uint8_t *buf, size_t len) {
  ssize_t n = read(t->fd, buf, len);
  t->drained = n > 0 && (size_t)n < len;
  return plain_result(n);
}

static ssize_t plain_write(wisp_transport *t, const uint8_t *buf, size_t len) {
  return plain_result(send(t->fd, buf, len, MSG_NOSIGNAL));
}

static int plain_handshake(wisp_transport *t) { return WISP_TRANSPORT_DONE; }

static void plain_shutdown(wisp_transport *t) { shutdown(t->fd, SHUT_WR); }

static bool plain_has_pending(const wisp_transport *t) { return false; }

static ssize_t plain_read_pending(wisp_transport *t, uint8_t *buf, size_t len) { return WISP_TRANSPORT_AGAIN; }

static const wisp_transport_type kPlain = {
    "tcp", plain_read, plain_write, plain_handshake, plain_shutdown, plain_has_pending, plain_read_pending,
};

/* ---- an in-process pipe (lib/wisp_pipe: the same results) ---- */

_Static_assert((int)WISP_PIPE_AGAIN == (int)WISP_TRANSPORT_AGAIN && (int)WISP_PIPE_ERROR == (int)WISP_TRANSPORT_ERROR,
               "pipe results pass through as transport results");

static ssize_t pipe_read(wisp_transport *t, uint8_t *buf, size_t len) {
  ssize_t n = wisp_pipe_read(t->pipe, buf, len);
  t->drained = n > 0 && t->pipe->drained;
  return n;
}

static ssize_t pipe_write(wisp_transport *t, const uint8_t *buf, size_t len) {
  return wisp_pipe_write(t->pipe, buf, len);
}

static void pipe_shutdown(wisp_transport *t) { wisp_pipe_shutdown(t->pipe); }

static const wisp_transport_type kPipe = {
    "pipe", pipe_read, pipe_write, plain_handshake, pipe_shutdown, plain_has_pending, plain_read_pending,
};

/* ---- TLS: the SSL's BIO, reading through the transport's buffer ---- */

_Static_assert(WISP_TRANSPORT_RBUF_SIZE <= UINT16_MAX, "rpos and rlen are 16 bits");

/* One emptied buffer is kept per thread for the next read (the loop reads
 * many connections in turn; malloc and free of 32 KiB each time would
 * churn the heap); freed when the thread ends. */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_spare_key;
static BIO_METHOD *g_bio_method;

/* Whether a failed read or write of a socket is worth retrying: as
 * BoringSSL's own socket BIO (bio_errno_should_retry), so SSL reports
 * what it reported before. */
static bool should_retry(void) {
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ENOTCONN || errno == EPROTO ||
         errno == EINPROGRESS || errno == EALREADY;
}

static uint8_t *rbuf_take(void) {
  uint8_t *b = pthread_getspecific(g_spare_key);
  if (b) {
    pthread_setspecific(g_spare_key, NULL);
    return b;
  }
  return wisp_malloc(WISP_TRANSPORT_RBUF_SIZE);
}

/* Gives an emptied (or unused) buffer back; errno is kept. */
static void rbuf_give(uint8_t *b) {
  if (!pthread_getspecific(g_spare_key)) {
    int saved = errno;
    pthread_setspecific(g_spare_key, b);
    errno = saved;
    return;
  }
  free(b);
}

/* Drops the bytes |t| holds (a closing transport). */
static void rbuf_drop(wisp_transport *t) {
  if (t->rbuf) rbuf_give(t->rbuf);
  t->rbuf = NULL;
  t->rpos = t->rlen = 0;
}

/* Refills the empty buffer with one read(2): >0 bytes, 0 EOF, -1 errno.
 * Every refill asks the socket, even after a short read: that read is what
 * finds a FIN right behind the bytes in the same wake-up (a caller's
 * requests and its close in one read: none goes upstream). */
static int rbuf_fill(wisp_transport *t) {
  uint8_t *b = rbuf_take();
  ssize_t n = read(t->fd, b, WISP_TRANSPORT_RBUF_SIZE);
  t->drained = n > 0 && n < WISP_TRANSPORT_RBUF_SIZE;
  if (n <= 0) {
    rbuf_give(b);
    return (int)n;
  }
  t->rbuf = b;
  t->rpos = 0;
  t->rlen = (uint16_t)n;
  return (int)n;
}

static int bio_read(BIO *bio, char *out, int len) {
  wisp_transport *t = BIO_get_data(bio);
  BIO_clear_retry_flags(bio);
  if (len <= 0) return 0;
  if (!t->rbuf) {
    if (t->no_refill) {
      errno = EAGAIN;
      BIO_set_retry_read(bio);
      return -1;
    }
    int n = rbuf_fill(t);
    if (n <= 0) {
      if (n < 0 && should_retry()) BIO_set_retry_read(bio);
      return n;
    }
  }
  size_t have = (size_t)(t->rlen - t->rpos);
  size_t n = (size_t)len < have ? (size_t)len : have;
  memcpy(out, t->rbuf + t->rpos, n);
  t->rpos = (uint16_t)(t->rpos + n);
  if (t->rpos == t->rlen) rbuf_drop(t); /* empty: an idle connection holds no buffer */
  return (int)n;
}

static int bio_write(BIO *bio, const char *in, int len) {
  wisp_transport *t = BIO_get_data(bio);
  BIO_clear_retry_flags(bio);
  ssize_t n = send(t->fd, in, (size_t)len, MSG_NOSIGNAL);
  if (n < 0 && should_retry()) BIO_set_retry_write(bio);
  return (int)n;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr) {
  const wisp_transport *t = BIO_get_data(bio);
  switch (cmd) {
    case BIO_CTRL_FLUSH: /* writes are not buffered */
      return 1;
    case BIO_CTRL_PENDING:
      return t->rlen - t->rpos;
    case BIO_C_GET_FD:
      if (ptr) *(int *)ptr = t->fd;
      return t->fd;
    default:
      return 0;
  }
}

static void once_init(void) {
  if (pthread_key_create(&g_spare_key, free) != 0) wisp_oom();
  g_bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "wisp-transport");
  if (!g_bio_method || !BIO_meth_set_read(g_bio_method, bio_read) || !BIO_meth_set_write(g_bio_method, bio_write) ||
      !BIO_meth_set_ctrl(g_bio_method, bio_ctrl))
    wisp_oom();
}

/* Gives |t|'s SSL a BIO on |t| (its fd, its buffer). */
static void set_bio(wisp_transport *t) {
  pthread_once(&g_once, once_init);
  BIO *bio = BIO_new(g_bio_method);
  if (!bio) wisp_oom();
  BIO_set_data(bio, t);
  BIO_set_init(bio, 1);
  SSL_set_bio(t->ssl, bio, bio); /* one reference, for both directions */
}

/* ---- TLS ---- */

static int clamp_int(size_t len) { return len > INT32_MAX ? INT32_MAX : (int)len; }

/* An SSL_read/SSL_write result |r| in the transport's terms; |reading|:
 * what ends the stream is an answer (0, TRUNCATED), not a failure. */
static ssize_t tls_result(wisp_transport *t, int r, bool reading) {
  if (r > 0) return r;
  switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
      return WISP_TRANSPORT_AGAIN;
    case SSL_ERROR_WANT_WRITE:
      t->want_write = true;
      return WISP_TRANSPORT_AGAIN;
    case SSL_ERROR_ZERO_RETURN: /* close_notify: the peer's FIN */
      return reading ? 0 : WISP_TRANSPORT_ERROR;
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      return reading && r == 0 ? WISP_TRANSPORT_TRUNCATED : WISP_TRANSPORT_ERROR;
    default: /* the peer broke TLS (a bad or oversized record, a bad MAC) */
      t->tls_error = ERR_peek_last_error();
      ERR_clear_error();
      errno = EPROTO; /* owners log strerror(errno): not "Success" */
      return WISP_TRANSPORT_ERROR;
  }
}

static ssize_t tls_read(wisp_transport *t, uint8_t *buf, size_t len) {
  return tls_result(t, SSL_read(t->ssl, buf, clamp_int(len)), true);
}

static ssize_t tls_write(wisp_transport *t, const uint8_t *buf, size_t len) {
  return tls_result(t, SSL_write(t->ssl, buf, clamp_int(len)), false);
}

static int tls_handshake(wisp_transport *t) {
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    t->want_write = false;
    return WISP_TRANSPORT_DONE;
  }
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    t->want_write = e == SSL_ERROR_WANT_WRITE;
    return WISP_TRANSPORT_AGAIN;
  }
  wisp_tls_verify *v = wisp_tls_get0_verify(t->ssl);
  if (v) {
    wisp_tls_describe_failure(v, t->ssl, r);
  } else {
    ERR_clear_error();
  }
  return WISP_TRANSPORT_ERROR;
}

static void tls_shutdown(wisp_transport *t) {
  SSL_shutdown(t->ssl); /* close_notify: a half-close, our FIN inside TLS */
  ERR_clear_error();
}

static bool tls_has_pending(const wisp_transport *t) { return t->rbuf || SSL_has_pending(t->ssl); }

static ssize_t tls_read_pending(wisp_transport *t, uint8_t *buf, size_t len) {
  t->no_refill = true;
  ssize_t n = tls_read(t, buf, len);
  t->no_refill = false;
  return n;
}

static const wisp_transport_type kTls = {
    "tls", tls_read, tls_write, tls_handshake, tls_shutdown, tls_has_pending, tls_read_pending,
};

/* ---- lifetime ---- */

void wisp_transport_init(wisp_transport *t, int fd) {
  memset(t, 0, sizeof(*t));
  t->type = &kPlain;
  t->fd = fd;
}

void wisp_transport_init_pipe(wisp_transport *t, wisp_pipe_end *e) {
  wisp_transport_init(t, -1);
  t->type = &kPipe;
  t->pipe = e;
}

/* The BIO reads t->fd at each call: a fd given later needs nothing more. */
void wisp_transport_set_fd(wisp_transport *t, int fd) { t->fd = fd; }

void wisp_transport_set0_tls(wisp_transport *t, SSL *ssl, bool server) {
  t->type = &kTls;
  t->ssl = ssl;
  set_bio(t);
  if (server) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
  }
}

void wisp_transport_move(wisp_transport *dst, wisp_transport *src) {
  *dst = *src;
  if (dst->ssl) BIO_set_data(SSL_get_rbio(dst->ssl), dst); /* its buffer moved with it */
  wisp_transport_init(src, -1);
}

void wisp_transport_close(wisp_transport *t, bool reset) {
  if (t->fd >= 0 && reset) { /* carry a reset: RST, not FIN */
    struct linger l = {1, 0};
    setsockopt(t->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  }
  if (t->ssl) SSL_free(t->ssl);
  if (t->fd >= 0) close(t->fd);
  wisp_pipe_close(t->pipe);
  rbuf_drop(t);
  wisp_transport_init(t, -1);
}

/* ---- what the handshake gave ---- */

void wisp_transport_get_peer(const wisp_transport *t, wisp_transport_peer *out) {
  memset(out, 0, sizeof(*out));
  if (!t->ssl) return;
  const uint8_t *alpn = NULL;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(t->ssl, &alpn, &alpn_len);
  out->alpn = alpn_len ? alpn : NULL;
  out->alpn_len = alpn_len;
  const wisp_tls_verify *v = wisp_tls_get0_verify(t->ssl);
  out->peer_id = v && v->peer_ok ? v->peer.id : NULL;
  out->peer_cert = SSL_get0_peer_certificates(t->ssl) != NULL;
}

bool wisp_transport_alpn_is(const wisp_transport_peer *p, const char *proto) {
  size_t n = strlen(proto);
  return n > 0 && p->alpn_len == n && memcmp(p->alpn, proto, n) == 0;
}

const char *wisp_transport_error_text(const wisp_transport *t, int err, char *out, size_t out_len) {
  const char *reason = err == EPROTO && t->tls_error ? ERR_reason_error_string(t->tls_error) : NULL;
  if (!reason) return strerror(err);
  /* BoringSSL's reasons are identifiers (DECRYPTION_FAILED_OR_BAD_RECORD_MAC):
   * written as words, as the rest of the log line. */
  int n = snprintf(out, out_len, "TLS error: %s", reason);
  if (n < 0) return strerror(err);
  for (char *c = out + sizeof("TLS error: ") - 1; *c; c++) {
    if (*c == '_') *c = ' ';
    else if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
  }
  return out;
}
