/* A small blocking HTTPS/1.0 client for the API server; see wisp_kube.h.
 * HTTP/1.0 with Connection: close, so the body is whatever comes before the
 * server closes (no chunked encoding to undo). The socket stays
 * non-blocking and every wait is a poll(2) against the call's one deadline
 * on the monotonic clock: a server that answers a byte at a time cannot
 * stretch a call past it, as per-read socket timeouts would let it. */
#include "control/agent/wisp_kube.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/wisp_mem.h"
#include "lib/wisp_net.h"
#include "lib/wisp_time.h"

#define TOKEN_MAX (64 * 1024)
#define HEAD_MAX (16 * 1024)

static wisp_err fail(char *err, size_t err_len, wisp_err rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static wisp_err fail(char *err, size_t err_len, wisp_err rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_len, fmt, ap);
  va_end(ap);
  return rc;
}

static bool readable(const char *path) { return access(path, R_OK) == 0; }

wisp_err wisp_kube_init(wisp_kube *out, const char *api, const char *sa_dir, char *err, size_t err_len) {
  memset(out, 0, sizeof(*out));
  snprintf(out->token_file, sizeof(out->token_file), "%s/token", sa_dir);
  snprintf(out->ca_file, sizeof(out->ca_file), "%s/ca.crt", sa_dir);
  if (!strcmp(api, "off")) return fail(err, err_len, WISP_ERR_USAGE, "the API server is not called (--kube-api off)");
  if (!strcmp(api, "auto")) {
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !*host || !port || !*port)
      return fail(err, err_len, WISP_ERR_USAGE, "not in a Kubernetes pod (no KUBERNETES_SERVICE_HOST)");
    snprintf(out->addr, sizeof(out->addr), strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
  } else if (!strncmp(api, "https://", 8)) {
    snprintf(out->addr, sizeof(out->addr), "%s", api + 8);
    out->addr[strcspn(out->addr, "/")] = '\0';
  } else {
    return fail(err, err_len, WISP_ERR_USAGE, "--kube-api %s: want auto, off or https://IP:PORT", api);
  }
  wisp_addr a;
  if (wisp_addr_parse(&a, out->addr) != WISP_OK)
    return fail(err, err_len, WISP_ERR_USAGE, "API server %s: want IP:PORT (wisp does no DNS)", out->addr);
  if (!readable(out->token_file) || !readable(out->ca_file))
    return fail(err, err_len, WISP_ERR_USAGE, "no service-account token and CA in %s to call the API server with",
                sa_dir);
  return WISP_OK;
}

/* Waits until |fd| is ready for |events| or |deadline| (monotonic
 * seconds) passes: 1 ready, 0 past the deadline, -1 an error. */
static int wait_fd(int fd, short events, double deadline) {
  for (;;) {
    double left = deadline - wisp_time_monotonic();
    if (left <= 0) return 0;
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, (int)(left * 1000) + 1);
    if (r > 0) return 1;
    if (r < 0 && errno != EINTR) return -1;
  }
}

/* After an SSL call returned |r|: waits for what it needs to go on. True
 * to retry it; false on an error, or past the deadline (|*late| set). */
static bool ssl_wait(SSL *ssl, int fd, int r, double deadline, bool *late) {
  int e = SSL_get_error(ssl, r);
  if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return false;
  int w = wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
  *late = w == 0;
  return w == 1;
}

/* Connects (the socket stays non-blocking) by |deadline|. */
static wisp_err dial(const wisp_kube *k, int *out_fd, double deadline, char *err, size_t err_len) {
  wisp_addr a;
  int fd = -1;
  if (wisp_addr_parse(&a, k->addr) != WISP_OK || wisp_net_connect(&fd, &a) != WISP_OK)
    return fail(err, err_len, WISP_ERR_IO, "cannot connect to %s: %s", k->addr, strerror(errno));
  int r = wait_fd(fd, POLLOUT, deadline);
  int e = r == 1 ? wisp_net_connect_result(fd) : r == 0 ? ETIMEDOUT : errno;
  if (e != 0) {
    close(fd);
    return fail(err, err_len, WISP_ERR_IO, "cannot connect to %s: %s", k->addr, strerror(e));
  }
  *out_fd = fd;
  return WISP_OK;
}

static SSL *tls_client(const wisp_kube *k, int fd, double deadline, char *err, size_t err_len) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  SSL *ssl = NULL;
  if (!ctx || !SSL_CTX_load_verify_locations(ctx, k->ca_file, NULL)) {
    fail(err, err_len, WISP_ERR_TLS, "cannot load the API server's CA %s", k->ca_file);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    ssl = SSL_new(ctx);
  }
  SSL_CTX_free(ctx); /* the SSL holds its own reference */
  if (!ssl) return NULL;
  X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), WISP_KUBE_TLS_NAME, strlen(WISP_KUBE_TLS_NAME));
  SSL_set_tlsext_host_name(ssl, WISP_KUBE_TLS_NAME);
  SSL_set_fd(ssl, fd);
  int r;
  bool late = false;
  while ((r = SSL_connect(ssl)) != 1 && ssl_wait(ssl, fd, r, deadline, &late)) {
  }
  if (r != 1 && late) {
    fail(err, err_len, WISP_ERR_IO, "no TLS handshake with the API server %s within %d s", k->addr, WISP_KUBE_DEADLINE);
    SSL_free(ssl);
    return NULL;
  }
  if (r != 1) {
    long v = SSL_get_verify_result(ssl);
    char reason[128];
    ERR_error_string_n(ERR_peek_last_error(), reason, sizeof(reason));
    /* A failed verification says why; before it, BoringSSL's own reason. */
    bool verified = v != X509_V_OK && v != X509_V_ERR_INVALID_CALL;
    fail(err, err_len, WISP_ERR_TLS, "TLS with the API server %s failed: %s", k->addr,
         verified ? X509_verify_cert_error_string(v) : reason);
    SSL_free(ssl);
    return NULL;
  }
  return ssl;
}

static wisp_err read_token(const wisp_kube *k, char *out, size_t cap, char *err, size_t err_len) {
  FILE *f = fopen(k->token_file, "r");
  if (!f) return fail(err, err_len, WISP_ERR_IO, "cannot read %s: %s", k->token_file, strerror(errno));
  size_t n = fread(out, 1, cap - 1, f);
  fclose(f);
  out[n] = '\0';
  out[strcspn(out, " \t\r\n")] = '\0';
  if (!out[0]) return fail(err, err_len, WISP_ERR_IO, "%s is empty", k->token_file);
  return WISP_OK;
}

static wisp_err send_all(SSL *ssl, int fd, const char *data, size_t len, double deadline, char *err, size_t err_len) {
  bool late = false;
  while (len > 0) {
    int n = SSL_write(ssl, data, len > 65536 ? 65536 : (int)len);
    if (n <= 0) {
      if (ssl_wait(ssl, fd, n, deadline, &late)) continue;
      return fail(err, err_len, WISP_ERR_IO, "cannot send the request to the API server%s",
                  late ? " within the deadline" : "");
    }
    data += n;
    len -= (size_t)n;
  }
  return WISP_OK;
}

static wisp_err recv_all(SSL *ssl, int fd, wisp_buf *resp, double deadline, char *err, size_t err_len) {
  char chunk[16384];
  bool late = false;
  for (;;) {
    int n = SSL_read(ssl, chunk, sizeof(chunk));
    if (n <= 0) {
      int e = SSL_get_error(ssl, n);
      if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && wisp_buf_len(resp) > 0)) return WISP_OK;
      if (ssl_wait(ssl, fd, n, deadline, &late)) continue;
      if (late)
        return fail(err, err_len, WISP_ERR_IO, "no complete answer from the API server within %d s (%zu bytes so far)",
                    WISP_KUBE_DEADLINE, wisp_buf_len(resp));
      return fail(err, err_len, WISP_ERR_IO, "no complete answer from the API server (connection lost)");
    }
    if (wisp_buf_append(resp, chunk, (size_t)n, WISP_KUBE_BODY_MAX + HEAD_MAX) != WISP_OK)
      return fail(err, err_len, WISP_ERR_TOO_BIG, "the API server's answer is larger than %d bytes",
                  WISP_KUBE_BODY_MAX);
  }
}

/* "HTTP/1.x NNN ...", headers, blank line, body. */
static wisp_err parse_response(const wisp_buf *resp, int *out_status, wisp_buf *out, char *err, size_t err_len) {
  const char *p = (const char *)wisp_buf_rptr(resp);
  size_t len = wisp_buf_len(resp);
  const char *end = memmem(p, len, "\r\n\r\n", 4);
  int status = 0;
  if (!end || sscanf(p, "HTTP/1.%*1[01] %3d", &status) != 1 || status < 100)
    return fail(err, err_len, WISP_ERR_PROTO, "the API server's answer is not HTTP");
  end += 4;
  *out_status = status;
  return wisp_buf_append(out, end, len - (size_t)(end - p), WISP_KUBE_BODY_MAX);
}

wisp_err wisp_kube_call(const wisp_kube *k, const char *method, const char *path, const char *content_type,
                        const char *body, int *out_status, wisp_buf *out, char *err, size_t err_len) {
  double deadline = wisp_time_monotonic() + WISP_KUBE_DEADLINE;
  char *token = wisp_malloc(TOKEN_MAX);
  wisp_err rc = read_token(k, token, TOKEN_MAX, err, err_len);
  int fd = -1;
  SSL *ssl = NULL;
  wisp_buf req = {0}, resp = {0};
  if (rc == WISP_OK) rc = dial(k, &fd, deadline, err, err_len);
  if (rc == WISP_OK && !(ssl = tls_client(k, fd, deadline, err, err_len))) rc = WISP_ERR_TLS;
  if (rc == WISP_OK) {
    char head[HEAD_MAX];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.0\r\nHost: " WISP_KUBE_TLS_NAME
                     "\r\nAccept: application/json\r\n"
                     "User-Agent: wisp-agent\r\nConnection: close\r\n",
                     method, path);
    if (body)
      n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Type: %s\r\nContent-Length: %zu\r\n", content_type,
                    blen);
    rc = wisp_buf_append(&req, head, (size_t)n, SIZE_MAX / 2);
    if (rc == WISP_OK) rc = wisp_buf_append(&req, "Authorization: Bearer ", 22, SIZE_MAX / 2);
    if (rc == WISP_OK) rc = wisp_buf_append(&req, token, strlen(token), SIZE_MAX / 2);
    if (rc == WISP_OK) rc = wisp_buf_append(&req, "\r\n\r\n", 4, SIZE_MAX / 2);
    if (rc == WISP_OK && body) rc = wisp_buf_append(&req, body, blen, SIZE_MAX / 2);
    if (rc == WISP_OK)
      rc = send_all(ssl, fd, (const char *)wisp_buf_rptr(&req), wisp_buf_len(&req), deadline, err, err_len);
  }
  if (rc == WISP_OK) rc = recv_all(ssl, fd, &resp, deadline, err, err_len);
  if (rc == WISP_OK) rc = parse_response(&resp, out_status, out, err, err_len);
  OPENSSL_cleanse(token, TOKEN_MAX);
  free(token);
  if (wisp_buf_len(&req)) OPENSSL_cleanse((void *)wisp_buf_rptr(&req), wisp_buf_len(&req));
  wisp_buf_cleanup(&req);
  wisp_buf_cleanup(&resp);
  if (ssl) SSL_shutdown(ssl); /* non-blocking: sends close_notify if it can, never waits */
  SSL_free(ssl);
  if (fd >= 0) close(fd);
  ERR_clear_error();
  return rc;
}
