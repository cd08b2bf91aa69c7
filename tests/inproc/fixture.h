/* fixture: one wisp-proxy built in-process from flags, as main.c builds it
 * (wisp_config_parse, wisp_sidecar_start), with an SVID made by the test
 * (tests/unit/test_x509), a fake HTTP/2 app (h2peer) behind --app, and
 * a --route whose peer is the proxy's own --inbound: a request from a
 * client on the route goes caller -> outbound (h2c) -> mTLS -> inbound ->
 * app, every hop real (BoringSSL, nghttp2) and in one libev loop that the
 * test runs. Clients are attached with socketpair(AF_UNIX) through
 * wisp_conn_accept, the listeners' own entry point. The proxy's log lines
 * (stdout) are captured for the test to read. Test-only. */
#ifndef WISP_TESTS_FIXTURE_H
#define WISP_TESTS_FIXTURE_H

#include <stdbool.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "proxy/dataplane/internal.h"
#include "proxy/wisp_sidecar.h"
#include "tests/inproc/h2peer.h"

#define TF_SPIFFE_ID "spiffe://example.org/ns/test/sa/proxy"
#define TF_MAX_CLIENTS 8
/* Seconds any one wait may take: a bound, never an expectation. */
#define TF_WAIT 20.0

typedef struct {
  struct ev_loop *loop;
  char dir[256];
  tp_app *app;
  wisp_config cfg;
  wisp_proxy px;
  wisp_sidecar sidecar; /* the control side started on |px| */
  bool px_started;
  wisp_listener *route;   /* outbound: its target is the inbound port over mTLS */
  unsigned route_port;    /* the route's peer instead of the inbound (set by tf_opts.prepare) */
  wisp_listener *inbound; /* inbound: its target is the app */
  X509 *ca;               /* the trust bundle's CA, and its key: callers' SVIDs */
  EVP_PKEY *ca_key;
  tp_peer *clients[TF_MAX_CLIENTS];
  int nclients;
  int saved_stdout; /* -1: not capturing */
  char log_path[300];
} tf_fixture;

typedef struct {
  uint32_t app_max_streams; /* the app's SETTINGS_MAX_CONCURRENT_STREAMS (0: 100) */
  bool app_hold;            /* the app answers only when told */
  const char *const *args;  /* more flags, e.g. {"--pool-size", "2"} */
  int nargs;
  bool no_cert; /* no --cert/--key (the SVID comes from --agent in |args|) */
  /* Run after the PKI and the loop exist, before the proxy is built (e.g.
   * to start a fake agent, or fill --svid-cache); false fails the start. */
  bool (*prepare)(tf_fixture *f, void *arg);
  void *prepare_arg;
} tf_opts;

/* Builds everything; false (with a line on stderr) if any step failed. */
bool tf_start(tf_fixture *f, const tf_opts *o);
/* A client attached to |l| through a socketpair, as if just accepted from
 * 127.0.0.1:|src_port|. */
tp_peer *tf_client(tf_fixture *f, wisp_listener *l, unsigned src_port);
/* An mTLS client attached to |l| the same way, offering ALPN h2, whose
 * certificate is an SVID for |spiffe_id| (NULL: no certificate) issued by
 * the bundle's CA, or by a CA of its own if |foreign|. */
tp_peer *tf_tls_client(tf_fixture *f, wisp_listener *l, unsigned src_port, const char *spiffe_id, bool foreign);
/* A TLS client (unattached) offering ALPN |alpn| (one protocol), with an
 * SVID as tf_tls_client's; NULL if it could not be made. */
SSL *tf_client_ssl(tf_fixture *f, const char *spiffe_id, bool foreign, const char *alpn);
/* A TLS server context (for tp_app_new_tls) whose certificate is an SVID
 * for |spiffe_id| under the bundle's CA, choosing ALPN h2 and asking for
 * the client's SVID; NULL if it could not be made. */
SSL_CTX *tf_server_ctx(tf_fixture *f, const char *spiffe_id);
/* The other end of a socketpair attached to |l|, for raw bytes (closed by
 * the test). */
int tf_raw_client(tf_fixture *f, wisp_listener *l, unsigned src_port);
/* What the proxy logged so far (malloc'd, NUL-terminated). */
char *tf_log(tf_fixture *f);
/* Whether the log holds a line with every one of |needles| (NULL-ended). */
bool tf_log_line_has(tf_fixture *f, const char *const *needles);
/* The same for any file (stdout and stderr flushed first): its text
 * (malloc'd, NUL-terminated; "" if it cannot be read), or whether it has
 * such a line. */
char *tf_read_file(const char *path);
bool tf_file_line_has(const char *path, const char *const *needles);
/* Sends |fd| (STDOUT_FILENO or STDERR_FILENO) to the file |path| (made
 * 0600), the original kept in |*saved| until tf_restore_fd (which does
 * nothing if |*saved| is -1). */
bool tf_capture_fd(int fd, const char *path, int *saved);
void tf_restore_fd(int fd, int *saved);
/* Tears everything down; safe after a failed start. */
void tf_stop(tf_fixture *f);

/* cmocka fixtures: a tf_fixture in |*state| started with |o|, and its end. */
int tf_setup_with(void **state, const tf_opts *o);
int tf_teardown(void **state);
/* With the defaults: an app that echoes; an app that holds requests. */
int tf_setup_echo(void **state);
int tf_setup_hold(void **state);

/* tp_run_until conditions on a fixture. */
typedef struct {
  tf_fixture *f;
  int n;
} tf_count;
/* The app received at least |n| requests. */
bool tf_app_has(void *count);
/* The proxy took (ACKed) the SETTINGS of app connection number |n|: from
 * then on it knows that connection's stream limit. */
bool tf_settings_known(void *count);

#endif
