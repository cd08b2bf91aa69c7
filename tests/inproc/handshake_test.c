/* In-process tests of proxy/dataplane/wisp_handshake: an inbound mTLS caller is held
 * by the handshake stage until its TLS handshake is done, then handed to
 * exactly one owner by ALPN (h2: a wisp_conn; wisp-l4: the L4 tunnel) with
 * the one connection id it got at accept; a caller that fails the
 * handshake, does not finish it in time, sends nothing or closes before a
 * byte is logged with that id too, and leaves nothing behind (no
 * connection, no tunnel, its connection-limit slot and destination given
 * back; LeakSanitizer under --config=asan checks the memory). Callers are
 * attached over socketpairs, as in conn_test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "proxy/dataplane/internal.h"
#include "tests/inproc/fixture.h"
#include "tests/unit/test_util.h"

#define FRONTEND_ID "spiffe://example.org/ns/shop/sa/frontend"

static bool handshaking(void *arg) { return ((tf_fixture *)arg)->px.nhandshakes != 0; }
static bool no_handshake(void *arg) { return ((tf_fixture *)arg)->px.nhandshakes == 0; }
static bool no_tunnel(void *arg) { return wisp_list_empty(&((tf_fixture *)arg)->px.tunnels); }

/* The inbound caller connections (not the proxy's upstream ones). */
static int inbound_callers(const tf_fixture *f, wisp_conn **last) {
  int n = 0;
  WISP_LIST_FOREACH(it, &f->px.conns) {
    wisp_conn *c = WISP_LIST_ELEM(it, wisp_conn, link);
    if (c->io.upstream || c->dir != WISP_DIR_INBOUND) continue;
    n++;
    if (last) *last = c;
  }
  return n;
}

/* What the stage gives back once a caller is gone: checked after each. */
static void assert_nothing_left(tf_fixture *f) {
  assert_int_equal(f->px.nhandshakes, 0);
  assert_int_equal(inbound_callers(f, NULL), 0);
  assert_true(wisp_list_empty(&f->px.tunnels));
  assert_int_equal(wisp_connlimit_count(f->inbound->limit), 0);
  assert_int_equal(f->inbound->target->users, 0);
}

/* A raw TLS client stepping its handshake between loop iterations. */
typedef struct {
  SSL *ssl;
  int fd;
  int result; /* 1 done, -1 failed, 0 not yet */
} tls_caller;

static bool tls_step(void *arg) {
  tls_caller *c = arg;
  if (c->result) return true;
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    c->result = 1;
  } else {
    int e = SSL_get_error(c->ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) c->result = -1;
  }
  return c->result != 0;
}

static void tls_caller_start(tf_fixture *f, tls_caller *c, unsigned port, const char *id, bool foreign,
                             const char *alpn) {
  c->ssl = tf_client_ssl(f, id, foreign, alpn);
  assert_non_null(c->ssl);
  c->fd = tf_raw_client(f, f->inbound, port);
  assert_true(c->fd >= 0);
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_connect_state(c->ssl);
  c->result = 0;
  assert_true(tp_run_until(f->loop, tls_step, c, TF_WAIT));
}

static void tls_caller_end(tls_caller *c) {
  if (c->result == 1) SSL_shutdown(c->ssl);
  SSL_free(c->ssl);
  close(c->fd);
}

static void id_needle(char *out, size_t len, uint64_t id) {
  snprintf(out, len, "\"conn\":%llu,", (unsigned long long)id);
}

/* ALPN h2: a wisp_conn, with the id the handshake took, serves it. */
static void test_alpn_h2_to_conn(void **state) {
  tf_fixture *f = *state;
  uint64_t id = f->px.next_conn_id + 1;
  tp_peer *c = tf_tls_client(f, f->inbound, 40200, FRONTEND_ID, false);
  assert_non_null(c);
  tp_msg *m = tp_client_request(c, "GET", "/h2", NULL, 0, NULL, 0, true);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  wisp_conn *conn = NULL;
  assert_int_equal(inbound_callers(f, &conn), 1);
  assert_int_equal(conn->id, id);
  assert_non_null(conn->io.h2);
  assert_true(conn->io.verify.peer_ok);
  assert_string_equal(conn->io.verify.peer.id, FRONTEND_ID);
  assert_int_equal(f->px.nhandshakes, 0);
  assert_true(wisp_list_empty(&f->px.tunnels));
  char conn_id[48];
  id_needle(conn_id, sizeof(conn_id), id);
  const char *const kLine[] = {"\"path\":\"/h2\"", conn_id, "\"peer_id\":\"" FRONTEND_ID "\"", NULL};
  assert_true(tf_log_line_has(f, kLine));
}

/* ALPN wisp-l4: the tunnel takes the transport; no wisp_conn is ever made
 * for it, and its line carries the one id the caller got (it used to take
 * two: the connection's, then the tunnel's). */
static void test_alpn_l4_to_tunnel(void **state) {
  tf_fixture *f = *state;
  uint64_t id = f->px.next_conn_id + 1;
  tls_caller c;
  tls_caller_start(f, &c, 40201, FRONTEND_ID, false, "wisp-l4");
  assert_int_equal(c.result, 1);
  const uint8_t *alpn;
  unsigned alpn_len;
  SSL_get0_alpn_selected(c.ssl, &alpn, &alpn_len);
  assert_int_equal(alpn_len, 7);
  assert_memory_equal(alpn, "wisp-l4", 7);
  /* TLS 1.3: the client is done before the proxy has read its Finished */
  assert_true(tp_run_until(f->loop, no_handshake, f, TF_WAIT));
  assert_int_equal(inbound_callers(f, NULL), 0);
  assert_false(wisp_list_empty(&f->px.tunnels));
  assert_int_equal(wisp_connlimit_count(f->inbound->limit), 1); /* the tunnel holds the caller's place */
  tls_caller_end(&c);
  assert_true(tp_run_until(f->loop, no_tunnel, f, TF_WAIT));
  assert_nothing_left(f);
  assert_int_equal(f->px.next_conn_id, id);
  char conn_id[48];
  id_needle(conn_id, sizeof(conn_id), id);
  const char *const kLine[] = {"\"protocol\":\"l4\"", "\"direction\":\"inbound\"", conn_id,
                               "\"peer_id\":\"" FRONTEND_ID "\"", NULL};
  if (!tf_log_line_has(f, kLine)) {
    char *log = tf_log(f);
    fail_msg("no l4 line with %s; log:\n%s", conn_id, log);
  }
}

/* A failed handshake (a caller whose SVID is under another CA, asking for
 * the tunnel) is refused with its reason and id, and nothing is left. */
static void test_failed_handshake_leaves_nothing(void **state) {
  tf_fixture *f = *state;
  uint64_t id = f->px.next_conn_id + 1;
  tls_caller c;
  tls_caller_start(f, &c, 40202, FRONTEND_ID, true, "wisp-l4"); /* TLS 1.3: it may think it is done */
  assert_true(tp_run_until(f->loop, no_handshake, f, TF_WAIT));
  tls_caller_end(&c);
  assert_nothing_left(f);
  assert_int_equal(f->px.stats.conns_refused, 1);
  char conn_id[48];
  id_needle(conn_id, sizeof(conn_id), id);
  const char *const kLine[] = {"\"event\":\"refused\"", conn_id, "\"peer_addr\":\"127.0.0.1:40202\"",
                               "was issued by a CA that is not in the trust bundle", NULL};
  assert_true(tf_log_line_has(f, kLine));
}

/* An HTTP/2 GET of / on stream 1, as a client's first bytes: the preface,
 * an empty SETTINGS, and HEADERS (HPACK: :method GET, :scheme http,
 * :path /, :authority "a") with END_STREAM and END_HEADERS. */
static const uint8_t kFirstRequest[] = {'P', 'R', 'I',  ' ',  '*',  ' ',  'H',  'T',  'T',  'P',  '/',  '2',
                                        '.', '0', '\r', '\n', '\r', '\n', 'S',  'M',  '\r', '\n', '\r', '\n',
                                        0,   0,   0,    4,    0,    0,    0,    0,    0,    0,    0,    6,
                                        1,   5,   0,    0,    0,    1,    0x82, 0x86, 0x84, 0x41, 1,    'a'};

typedef struct {
  tls_caller *c;
  uint8_t in[16384];
  size_t len;
} h2_reader;

/* Whether the caller has read a HEADERS frame on stream 1 (the answer). */
static bool got_headers(void *arg) {
  h2_reader *r = arg;
  if (r->len < sizeof(r->in)) {
    int n = SSL_read(r->c->ssl, r->in + r->len, (int)(sizeof(r->in) - r->len));
    if (n > 0) r->len += (size_t)n;
  }
  for (size_t at = 0; at + 9 <= r->len;) {
    size_t flen = ((size_t)r->in[at] << 16) | ((size_t)r->in[at + 1] << 8) | r->in[at + 2];
    uint32_t sid = ((uint32_t)(r->in[at + 5] & 0x7f) << 24) | ((uint32_t)r->in[at + 6] << 16) |
                   ((uint32_t)r->in[at + 7] << 8) | r->in[at + 8];
    if (r->in[at + 3] == 1 && sid == 1) return true;
    at += 9 + flen;
  }
  return false;
}

/* A client's first bytes sent with its Finished, in one read of the proxy:
 * they are in the transport's buffer when the handshake stage hands the
 * caller over, announced by no socket event, and must be served at once
 * (by the wisp_conn for h2, the tunnel toward the app for wisp-l4). */
static void first_bytes_with_finished(tf_fixture *f, unsigned port, const char *alpn) {
  tls_caller c;
  tls_caller_start(f, &c, port, FRONTEND_ID, false, alpn); /* done before the proxy read its Finished */
  assert_int_equal(c.result, 1);
  assert_true(f->px.nhandshakes == 1);
  assert_int_equal(SSL_write(c.ssl, kFirstRequest, (int)sizeof(kFirstRequest)), (int)sizeof(kFirstRequest));
  h2_reader r = {.c = &c};
  assert_true(tp_run_until(f->loop, got_headers, &r, TF_WAIT));
  tls_caller_end(&c);
}

static void test_h2_first_frames_with_finished(void **state) { first_bytes_with_finished(*state, 40204, "h2"); }

static void test_l4_first_bytes_with_finished(void **state) { first_bytes_with_finished(*state, 40205, "wisp-l4"); }

static int setup_short_handshake(void **state) {
  static const char *const kArgs[] = {"--handshake-timeout", "0.3"};
  static const tf_opts kOpts = {.args = kArgs, .nargs = 2};
  return tf_setup_with(state, &kOpts);
}

/* A caller that starts the handshake and stalls is refused at
 * --handshake-timeout, with the reason it always had. */
static void test_handshake_timeout(void **state) {
  tf_fixture *f = *state;
  int fd = tf_raw_client(f, f->inbound, 40203);
  static const uint8_t kHelloStart[] = {0x16, 0x03, 0x01, 0x00, 0x80, 0x01}; /* a ClientHello record, cut */
  assert_int_equal(send(fd, kHelloStart, sizeof(kHelloStart), MSG_NOSIGNAL), (ssize_t)sizeof(kHelloStart));
  assert_true(tp_run_until(f->loop, handshaking, f, TF_WAIT));
  assert_true(tp_run_until(f->loop, no_handshake, f, TF_WAIT));
  assert_nothing_left(f);
  assert_int_equal(f->px.stats.conns_refused, 1);
  const char *const kLine[] = {"\"event\":\"refused\"", "\"peer_addr\":\"127.0.0.1:40203\"",
                               "TLS handshake not finished within 0.3s", NULL};
  assert_true(tf_log_line_has(f, kLine));
  close(fd);
}

typedef struct {
  tf_fixture *f;
  const char *const *needles;
} log_wait;

static bool logged(void *arg) {
  const log_wait *w = arg;
  return tf_log_line_has(w->f, w->needles);
}

/* A caller that connects and closes before a byte (a TCP probe) is said
 * "closed", with the connection id it got at accept, and leaves nothing. */
static void test_closed_before_a_byte(void **state) {
  tf_fixture *f = *state;
  uint64_t id = f->px.next_conn_id + 1;
  int fd = tf_raw_client(f, f->inbound, 40206);
  assert_true(fd >= 0);
  close(fd);
  char conn_id[48];
  id_needle(conn_id, sizeof(conn_id), id);
  const char *const kLine[] = {"\"event\":\"closed\"", conn_id, "\"peer_addr\":\"127.0.0.1:40206\"",
                               "closed before the TLS handshake (the peer sent nothing)", NULL};
  log_wait w = {f, kLine};
  assert_true(tp_run_until(f->loop, logged, &w, TF_WAIT));
  assert_nothing_left(f);
  assert_int_equal(f->px.stats.conns_closed_early, 1);
  assert_int_equal(f->px.stats.conns_refused, 0);
}

/* A caller that sends nothing is refused at --handshake-timeout, with its
 * connection id and the reason it always had. */
static void test_silent_caller(void **state) {
  tf_fixture *f = *state;
  uint64_t id = f->px.next_conn_id + 1;
  int fd = tf_raw_client(f, f->inbound, 40207);
  assert_true(fd >= 0);
  char conn_id[48];
  id_needle(conn_id, sizeof(conn_id), id);
  const char *const kLine[] = {"\"event\":\"refused\"", conn_id, "\"peer_addr\":\"127.0.0.1:40207\"",
                               "TLS handshake not finished within 0.3s (the peer sent nothing)", NULL};
  log_wait w = {f, kLine};
  assert_true(tp_run_until(f->loop, logged, &w, TF_WAIT));
  assert_nothing_left(f);
  assert_int_equal(f->px.stats.conns_refused, 1);
  close(fd);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* as wisp-proxy's main: the tunnel writes to a caller that went */
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_alpn_h2_to_conn, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_alpn_l4_to_tunnel, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_failed_handshake_leaves_nothing, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_handshake_timeout, setup_short_handshake, tf_teardown),
      cmocka_unit_test_setup_teardown(test_h2_first_frames_with_finished, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_l4_first_bytes_with_finished, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_closed_before_a_byte, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_silent_caller, setup_short_handshake, tf_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
