#include "tests/inproc/fixture.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/wisp_log.h"
#include "proxy/dataplane/wisp_conn.h"
#include "proxy/wisp_sidecar.h"
#include "tests/unit/test_x509.h"

#define DAY (24L * 3600)
#define TF_MAX_ARGS 48

static bool fail(const char *what) {
  fprintf(stderr, "fixture: %s\n", what);
  return false;
}

static X509 *new_ca(EVP_PKEY *key, const char *cn) {
  test_cert_spec spec = {.cn = cn, .is_ca = true, .not_before_sec = -3600, .not_after_sec = DAY};
  return test_new_cert(&spec, key, NULL, NULL);
}

/* An SVID for |id| by |ca|. */
static X509 *new_svid(EVP_PKEY *key, const char *id, X509 *ca, EVP_PKEY *ca_key) {
  static long serial = 100;
  test_san san = {GEN_URI, id, 0};
  test_cert_spec spec = {
      .cn = "workload", .sans = &san, .nsans = 1, .serial = ++serial, .not_before_sec = -3600, .not_after_sec = DAY};
  return test_new_cert(&spec, key, ca, ca_key);
}

/* A CA (kept for callers' SVIDs) and the proxy's SVID under it, as PEM
 * files in |dir|. */
static bool make_pki(tf_fixture *f) {
  EVP_PKEY *key = test_new_key();
  f->ca_key = test_new_key();
  f->ca = new_ca(f->ca_key, "wisp inproc CA");
  X509 *leaf = f->ca ? new_svid(key, TF_SPIFFE_ID, f->ca, f->ca_key) : NULL;
  char path[512];
  bool ok = leaf != NULL;
  snprintf(path, sizeof(path), "%s/ca.pem", f->dir);
  ok = ok && test_write_certs(path, &f->ca, 1);
  snprintf(path, sizeof(path), "%s/svid.pem", f->dir);
  ok = ok && test_write_certs(path, &leaf, 1);
  snprintf(path, sizeof(path), "%s/svid.key", f->dir);
  ok = ok && test_write_key(path, key);
  X509_free(leaf);
  EVP_PKEY_free(key);
  return ok;
}

/* A loopback port free right now, for --inbound: the route must name it
 * before the listener exists. */
static unsigned free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sin);
  unsigned port = 0;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
      getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
    port = ntohs(sin.sin_port);
  if (fd >= 0) close(fd);
  return port;
}

static FILE *stream_of(int fd) { return fd == STDERR_FILENO ? stderr : stdout; }

bool tf_capture_fd(int fd, const char *path, int *saved) {
  int to = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (to < 0) return false;
  fflush(stream_of(fd));
  *saved = dup(fd);
  bool ok = *saved >= 0 && dup2(to, fd) >= 0;
  close(to);
  return ok;
}

void tf_restore_fd(int fd, int *saved) {
  if (*saved < 0) return;
  fflush(stream_of(fd));
  dup2(*saved, fd);
  close(*saved);
  *saved = -1;
}

static bool capture_stdout(tf_fixture *f) {
  snprintf(f->log_path, sizeof(f->log_path), "%s/proxy.log", f->dir);
  return tf_capture_fd(STDOUT_FILENO, f->log_path, &f->saved_stdout);
}

bool tf_start(tf_fixture *f, const tf_opts *o) {
  memset(f, 0, sizeof(*f));
  f->saved_stdout = -1;
  if (!test_make_tmpdir(f->dir, sizeof(f->dir), "inproc")) return fail("no temporary directory");
  if (!make_pki(f)) return fail("cannot make the test PKI");
  if (!capture_stdout(f)) return fail("cannot capture stdout");
  f->loop = ev_loop_new(EVFLAG_AUTO);
  f->app = tp_app_new(f->loop, o->app_max_streams ? o->app_max_streams : 100, o->app_hold);
  unsigned inbound_port = free_port();
  if (!inbound_port) return fail("no free port");
  char cert[512], key[512], bundle[512], route[64], inbound[32], app[32];
  snprintf(cert, sizeof(cert), "%s/svid.pem", f->dir);
  snprintf(key, sizeof(key), "%s/svid.key", f->dir);
  snprintf(bundle, sizeof(bundle), "%s/ca.pem", f->dir);
  snprintf(inbound, sizeof(inbound), "127.0.0.1:%u", inbound_port);
  snprintf(app, sizeof(app), "127.0.0.1:%u", f->app->port);
  const char *argv[TF_MAX_ARGS] = {"wisp-proxy", "--bundle", bundle, "--route", route, "--inbound", inbound, "--app",
                                   app,          "--admin",  "off",  "--cert",  cert,  "--key",     key};
  int argc = o->no_cert ? 11 : 15;
  if (o->prepare && !o->prepare(f, o->prepare_arg)) return fail("prepare failed");
  snprintf(route, sizeof(route), "127.0.0.1:0=127.0.0.1:%u", f->route_port ? f->route_port : inbound_port);
  for (int i = 0; i < o->nargs && argc < TF_MAX_ARGS - 1; i++) argv[argc++] = o->args[i];
  char err[1024];
  if (wisp_config_parse(&f->cfg, argc, (char **)argv, err, sizeof(err)) != WISP_OK) {
    fprintf(stderr, "fixture: flags: %s\n", err);
    return false;
  }
  f->px_started = true;
  if (wisp_sidecar_start(&f->sidecar, &f->px, f->loop, &f->cfg, err, sizeof(err)) != WISP_OK) {
    fprintf(stderr, "fixture: wisp_sidecar_start: %s\n", err);
    return false;
  }
  for (size_t i = 0; i < f->px.nlisteners; i++) {
    wisp_listener *l = &f->px.listeners[i];
    if (l->dir == WISP_DIR_OUTBOUND) f->route = l;
    if (l->dir == WISP_DIR_INBOUND) f->inbound = l;
  }
  if (!f->route || !f->inbound) return fail("the proxy has no route or inbound listener");
  return true;
}

int tf_raw_client(tf_fixture *f, wisp_listener *l, unsigned src_port) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return -1;
  char peer_str[32];
  snprintf(peer_str, sizeof(peer_str), "127.0.0.1:%u", src_port);
  wisp_addr peer;
  if (wisp_addr_parse(&peer, peer_str) != WISP_OK) abort();
  wisp_conn_accept(l, sv[0], &peer); /* takes sv[0] */
  return sv[1];
}

tp_peer *tf_client(tf_fixture *f, wisp_listener *l, unsigned src_port) {
  if (f->nclients == TF_MAX_CLIENTS) return NULL;
  int fd = tf_raw_client(f, l, src_port);
  if (fd < 0) return NULL;
  tp_peer *p = tp_client_new(f->loop, fd);
  f->clients[f->nclients++] = p;
  return p;
}

SSL *tf_client_ssl(tf_fixture *f, const char *spiffe_id, bool foreign, const char *alpn) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  if (!ctx) return NULL;
  /* The caller checks the proxy's chain too (any name: SPIFFE IDs are URIs). */
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), f->ca);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  uint8_t wire[64];
  size_t len = strlen(alpn);
  bool ok = len > 0 && len < sizeof(wire);
  if (ok) {
    wire[0] = (uint8_t)len;
    memcpy(wire + 1, alpn, len);
    ok = SSL_CTX_set_alpn_protos(ctx, wire, len + 1) == 0;
  }
  if (ok && spiffe_id) {
    EVP_PKEY *key = test_new_key(), *other_key = foreign ? test_new_key() : NULL;
    X509 *other = foreign ? new_ca(other_key, "another CA") : NULL;
    X509 *cert = foreign ? new_svid(key, spiffe_id, other, other_key) : new_svid(key, spiffe_id, f->ca, f->ca_key);
    ok = cert && SSL_CTX_use_certificate(ctx, cert) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1;
    X509_free(cert);
    X509_free(other);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other_key);
  }
  SSL *ssl = ok ? SSL_new(ctx) : NULL;
  SSL_CTX_free(ctx); /* |ssl| holds its own reference */
  return ssl;
}

/* Picks "h2" if the client offers it. */
static int select_h2(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in, unsigned in_len, void *arg) {
  static const uint8_t kH2[] = {2, 'h', '2'};
  uint8_t *chosen;
  if (SSL_select_next_proto(&chosen, out_len, kH2, sizeof(kH2), in, in_len) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

SSL_CTX *tf_server_ctx(tf_fixture *f, const char *spiffe_id) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  if (!ctx) return NULL;
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), f->ca);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  SSL_CTX_set_alpn_select_cb(ctx, select_h2, NULL);
  EVP_PKEY *key = test_new_key();
  X509 *cert = new_svid(key, spiffe_id, f->ca, f->ca_key);
  bool ok = cert && SSL_CTX_use_certificate(ctx, cert) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1;
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!ok) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

tp_peer *tf_tls_client(tf_fixture *f, wisp_listener *l, unsigned src_port, const char *spiffe_id, bool foreign) {
  if (f->nclients == TF_MAX_CLIENTS) return NULL;
  SSL *ssl = tf_client_ssl(f, spiffe_id, foreign, "h2");
  int fd = ssl ? tf_raw_client(f, l, src_port) : -1;
  if (fd < 0) {
    SSL_free(ssl);
    return NULL;
  }
  tp_peer *p = tp_client_new_tls(f->loop, fd, ssl);
  f->clients[f->nclients++] = p;
  return p;
}

char *tf_read_file(const char *path) {
  fflush(stdout);
  fflush(stderr);
  FILE *in = fopen(path, "r");
  if (!in) return calloc(1, 1);
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len - 1, in)) > 0) {
    len += n;
    if (cap - len - 1 == 0) {
      cap *= 2;
      char *bigger = realloc(buf, cap);
      if (!bigger) break;
      buf = bigger;
    }
  }
  fclose(in);
  if (buf) buf[len] = '\0';
  return buf;
}

char *tf_log(tf_fixture *f) { return tf_read_file(f->log_path); }

bool tf_file_line_has(const char *path, const char *const *needles) {
  char *log = tf_read_file(path);
  bool found = false;
  for (char *line = log, *next; line && *line && !found; line = next) {
    char *nl = strchr(line, '\n');
    next = nl ? nl + 1 : NULL;
    if (nl) *nl = '\0';
    found = true;
    for (const char *const *n = needles; *n && found; n++) found = strstr(line, *n) != NULL;
  }
  free(log);
  return found;
}

bool tf_log_line_has(tf_fixture *f, const char *const *needles) { return tf_file_line_has(f->log_path, needles); }

void tf_stop(tf_fixture *f) {
  for (int i = 0; i < f->nclients; i++) tp_peer_free(f->clients[i]);
  f->nclients = 0;
  if (f->px_started) {
    wisp_sidecar_cleanup(&f->sidecar);
    /* What main.c leaves to ev_loop_destroy: the loop is ours to reuse. */
    ev_timer_stop(f->loop, &f->px.reload);
    ev_timer_stop(f->loop, &f->px.drain_timer);
    ev_signal_stop(f->loop, &f->px.sigterm);
    ev_signal_stop(f->loop, &f->px.sigint);
  }
  tp_app_free(f->app);
  f->app = NULL;
  X509_free(f->ca);
  f->ca = NULL;
  EVP_PKEY_free(f->ca_key);
  f->ca_key = NULL;
  if (f->loop) ev_loop_destroy(f->loop);
  f->loop = NULL;
  wisp_config_cleanup(&f->cfg);
  tf_restore_fd(STDOUT_FILENO, &f->saved_stdout);
  if (f->dir[0]) test_remove_tmpdir(f->dir);
  f->dir[0] = '\0';
}

/* Starts that fail (the --inbound port found free was taken meanwhile by
 * someone else) are tried again, this many times in all. */
#define TF_START_ATTEMPTS 3

int tf_setup_with(void **state, const tf_opts *o) {
  tf_fixture *f = calloc(1, sizeof(*f));
  *state = f;
  for (int i = 0; f && i < TF_START_ATTEMPTS; i++) {
    if (tf_start(f, o)) return 0;
    tf_stop(f);
  }
  return -1;
}

int tf_setup_echo(void **state) {
  static const tf_opts kEcho = {0};
  return tf_setup_with(state, &kEcho);
}

int tf_setup_hold(void **state) {
  static const tf_opts kHold = {.app_hold = true};
  return tf_setup_with(state, &kHold);
}

int tf_teardown(void **state) {
  tf_stop(*state);
  free(*state);
  return 0;
}

bool tf_app_has(void *count) {
  const tf_count *c = count;
  return c->f->app->nreqs >= c->n;
}

bool tf_settings_known(void *count) {
  const tf_count *c = count;
  return c->f->app->nconns > c->n && c->f->app->conns[c->n]->settings_acked;
}
