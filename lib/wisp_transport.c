#include "lib/wisp_transport.h"

#include <errno.h>
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

static ssize_t plain_read(wisp_transport *t, uint8_t *buf, size_t len) { return plain_result(read(t->fd, buf, len)); }

static ssize_t plain_write(wisp_transport *t, const uint8_t *buf, size_t len) {
  return plain_result(send(t->fd, buf, len, MSG_NOSIGNAL));
}

static int plain_handshake(wisp_transport *t) { return WISP_TRANSPORT_DONE; }

static void plain_shutdown(wisp_transport *t) { shutdown(t->fd, SHUT_WR); }

static bool plain_has_pending(const wisp_transport *t) { return false; }

static const wisp_transport_type kPlain = {
    "tcp", plain_read, plain_write, plain_handshake, plain_shutdown, plain_has_pending,
};

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
    default:
      ERR_clear_error();
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

static bool tls_has_pending(const wisp_transport *t) { return SSL_has_pending(t->ssl); }

static const wisp_transport_type kTls = {
    "tls", tls_read, tls_write, tls_handshake, tls_shutdown, tls_has_pending,
};

/* ---- lifetime ---- */

void wisp_transport_init(wisp_transport *t, int fd) {
  t->type = &kPlain;
  t->fd = fd;
  t->ssl = NULL;
  t->want_write = false;
}

/* SSL_set_fd fails only when its socket BIO cannot be allocated. */
static void ssl_set_fd(SSL *ssl, int fd) {
  if (!SSL_set_fd(ssl, fd)) wisp_oom();
}

void wisp_transport_set_fd(wisp_transport *t, int fd) {
  t->fd = fd;
  if (t->ssl) ssl_set_fd(t->ssl, fd);
}

void wisp_transport_set0_tls(wisp_transport *t, SSL *ssl, bool server) {
  t->type = &kTls;
  t->ssl = ssl;
  if (t->fd >= 0) ssl_set_fd(ssl, t->fd);
  if (server) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
  }
}

void wisp_transport_move(wisp_transport *dst, wisp_transport *src) {
  *dst = *src;
  wisp_transport_init(src, -1);
}

void wisp_transport_close(wisp_transport *t, bool reset) {
  if (t->fd >= 0 && reset) { /* carry a reset: RST, not FIN */
    struct linger l = {1, 0};
    setsockopt(t->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  }
  if (t->ssl) SSL_free(t->ssl);
  if (t->fd >= 0) close(t->fd);
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
