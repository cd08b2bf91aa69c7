/* In-process tests of proxy/dataplane/wisp_conn: a caller's connection, accepted
 * through a listener's own entry point (wisp_conn_accept) from a
 * socketpair. A client preface, SETTINGS and HEADERS get an answer (from
 * the app, through the proxy's own mTLS hop); a bad preface, and a
 * plaintext caller on the mTLS port, are refused with the reason in the
 * log; a connection error gets GOAWAY, closes the connection and resets
 * its stream at the app. A caller that closes its connection: what waited
 * in the queue never goes upstream, what was upstream counts as its
 * premature resets. mTLS callers (a real BoringSSL client): one with
 * an SVID of our trust domain is served and named to the app in XFCC; one
 * without a certificate, with a CA outside the bundle or an ID of another
 * trust domain is refused, the log saying which; a caller in its TLS
 * handshake holds no HTTP/2 session yet. Drain: GOAWAY, the request in flight completes, then
 * the close. Upstream: an app that is down gets the caller a
 * 503, a connection lost with a request on it a 502, each naming the
 * upstream and the cause. A throttled peer sidecar's freed place reaches
 * its connection waiting on another target. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/dataplane/internal.h"
#include "proxy/dataplane/wisp_proxy.h"
#include "tests/inproc/fixture.h"
#include "tests/unit/test_util.h"

static bool peer_eof(void *arg) { return ((tp_peer *)arg)->eof; }
static bool peer_goaway(void *arg) { return ((tp_peer *)arg)->goaway; }

static bool read_until_eof(void *arg) {
  tp_peer *p = arg;
  tp_peer_read(p);
  return p->eof;
}

/* A TLS caller refused: its handshake failed, or the socket closed. */
static bool peer_eof_or_closed(void *arg) {
  const tp_peer *p = arg;
  return p->eof || p->failed;
}

/* A raw socket: reads (and drops) whatever comes until EOF. */
typedef struct {
  int fd;
  bool eof;
  size_t got;
} raw_reader;

static bool raw_eof(void *arg) {
  raw_reader *r = arg;
  char buf[4096];
  for (int i = 0; i < 64 && !r->eof; i++) {
    ssize_t n = recv(r->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
    if (n <= 0) {
      r->eof = true;
      break;
    }
    r->got += (size_t)n;
  }
  return r->eof;
}

/* The preface, SETTINGS and HEADERS of a real nghttp2 client: the answer
 * comes back from the app, two proxy hops away. */
static void test_client_preface_answered(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 40001);
  assert_non_null(c);
  tp_msg *m = tp_client_request(c, "GET", "/hello?x=1", NULL, 0, NULL, 0, true);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_int_equal(m->close_code, NGHTTP2_NO_ERROR);
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  assert_string_equal(tp_hdr_get(m, "x-app-conn"), "0");
  assert_int_equal(f->app->nreqs, 1);
  assert_string_equal(tp_hdr_get(f->app->reqs[0], ":path"), "/hello?x=1");
  assert_string_equal(tp_hdr_get(f->app->reqs[0], ":method"), "GET");
  assert_false(c->goaway);
  assert_int_equal(f->px.stats.conns_refused, 0);
  /* The route's upstream connection was verified mTLS to our own inbound. */
  const char *const kLine[] = {"\"direction\":\"outbound\"", "\"status\":200", NULL};
  assert_true(tf_log_line_has(f, kLine));
}

/* Bytes that are no HTTP/2 preface: refused, the log line says so. */
static void test_bad_preface_refused(void **state) {
  tf_fixture *f = *state;
  int fd = tf_raw_client(f, f->route, 40002);
  assert_true(fd >= 0);
  static const char kJunk[] = "\x01\x02 this is not an HTTP/2 preface at all\r\n";
  assert_int_equal(send(fd, kJunk, sizeof(kJunk) - 1, MSG_NOSIGNAL), (ssize_t)(sizeof(kJunk) - 1));
  raw_reader r = {.fd = fd};
  assert_true(tp_run_until(f->loop, raw_eof, &r, TF_WAIT));
  close(fd);
  assert_int_equal(f->px.stats.conns_refused, 1);
  const char *const kLine[] = {"\"event\":\"refused\"", "\"peer_addr\":\"127.0.0.1:40002\"",
                               "not an HTTP/2 client: bad connection preface", NULL};
  assert_true(tf_log_line_has(f, kLine));
}

/* A plaintext HTTP/2 caller on the inbound port (mTLS STRICT): refused. */
static void test_plaintext_on_mtls_port_refused(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->inbound, 40003);
  tp_msg *m = tp_client_request(c, "GET", "/", NULL, 0, NULL, 0, true);
  assert_true(tp_run_until(f->loop, peer_eof, c, TF_WAIT));
  assert_false(m->headers_done);
  assert_int_equal(f->app->nreqs, 0);
  assert_int_equal(f->px.stats.conns_refused, 1);
  const char *const kLine[] = {"\"event\":\"refused\"", "\"direction\":\"inbound\"",
                               "peer did not speak TLS: plaintext callers are refused (mTLS mode STRICT)", NULL};
  assert_true(tf_log_line_has(f, kLine));
}

/* A SETTINGS frame whose length is no multiple of 6 (RFC 9113 6.5). */
static const uint8_t kBadSettings[] = {0x00, 0x00, 0x05, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00};

/* A connection error with no stream open: GOAWAY FRAME_SIZE_ERROR, then
 * the connection is closed. */
static void test_conn_error_closes(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 40004);
  tp_msg *m = tp_client_request(c, "GET", "/first", NULL, 0, NULL, 0, true);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  tp_peer_write_raw(c, kBadSettings, sizeof(kBadSettings));
  assert_true(tp_run_until(f->loop, peer_eof, c, TF_WAIT));
  assert_true(c->goaway);
  assert_int_equal(c->goaway_code, NGHTTP2_FRAME_SIZE_ERROR);
}

/* A connection error with a stream open: the caller gets GOAWAY and is
 * closed, the log says why, and the request held at the app is reset
 * there (through both hops), not left open. */
static void test_conn_error_resets_streams(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 40005);
  tp_msg *m = tp_client_request(c, "POST", "/slow", NULL, 0, "abc", 3, false);
  tf_count one = {f, 1};
  assert_true(tp_run_until(f->loop, tf_app_has, &one, TF_WAIT));
  tp_msg *at_app = f->app->reqs[0];
  tp_peer_write_raw(c, kBadSettings, sizeof(kBadSettings));
  assert_true(tp_run_until(f->loop, peer_eof, c, TF_WAIT));
  assert_true(c->goaway);
  assert_int_equal(c->goaway_code, NGHTTP2_FRAME_SIZE_ERROR);
  assert_false(m->headers_done);
  assert_true(tp_run_until(f->loop, tp_msg_closed, at_app, TF_WAIT));
  assert_int_not_equal(at_app->close_code, NGHTTP2_NO_ERROR);
  assert_false(at_app->answered);
  const char *const kLine[] = {"\"event\":\"closed\"", "\"peer_addr\":\"127.0.0.1:40005\"",
                               "HTTP/2 session ended (connection error) with 1 streams open", NULL};
  assert_true(tf_log_line_has(f, kLine));
}

/* A caller whose requests and close arrive in one read: they were still
 * waiting for an upstream stream when its connection closed, and none
 * goes upstream (the pool sent them, and they were cancelled at once). */
static void test_closed_caller_queue_not_sent(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 40006);
  for (int i = 0; i < 5; i++) tp_client_request(c, "GET", "/never", NULL, 0, NULL, 0, true);
  tp_peer_flush(c);
  assert_int_equal(shutdown(c->fd, SHUT_WR), 0);
  assert_true(tp_run_until(f->loop, peer_eof, c, TF_WAIT));
  assert_int_equal(f->px.stats.upstream_requests, 0);
  assert_int_equal(f->app->nreqs, 0);
  assert_int_equal(f->px.stats.premature_resets[0], 0); /* nothing went up: nothing to count */
}

/* The same for an mTLS caller whose last requests and bare FIN (no
 * close_notify) come in one read: the end is found in that wake-up, so
 * none of them goes upstream and none counts against the caller as a
 * premature reset (it did while a short TLS read(2) ended the wake-up's
 * reads: the FIN was read on the next one, after the pool sent them). */
static void test_closed_tls_caller_queue_not_sent(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_tls_client(f, f->inbound, 40030, "spiffe://example.org/ns/shop/sa/frontend", false);
  assert_non_null(c);
  tp_msg *m = tp_client_request(c, "GET", "/first", NULL, 0, NULL, 0, true);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  uint64_t sent = f->px.stats.upstream_requests;
  for (int i = 0; i < 5; i++) tp_client_request(c, "GET", "/never", NULL, 0, NULL, 0, true);
  tp_peer_flush(c);
  assert_int_equal(shutdown(c->fd, SHUT_WR), 0);
  assert_true(tp_run_until(f->loop, peer_eof, c, TF_WAIT));
  assert_int_equal(f->px.stats.upstream_requests, sent);
  assert_int_equal(f->px.stats.premature_resets[0], 0);
}

/* A caller that closes its TCP connection with requests upstream cancels
 * them there, as RST_STREAM would, and they count against it as premature
 * resets by the peer (--max-resets); a caller could close and reconnect
 * without any counted. The cancels reach the inbound side too (the same
 * proxy here), which counts them against the route's pooled connection. */
static void test_closed_caller_counts_resets(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 40007);
  for (int i = 0; i < 3; i++) tp_client_request(c, "GET", "/held", NULL, 0, NULL, 0, true);
  tf_count three = {f, 3};
  assert_true(tp_run_until(f->loop, tf_app_has, &three, TF_WAIT));
  assert_int_equal(f->px.stats.premature_resets[0], 0);
  assert_int_equal(shutdown(c->fd, SHUT_RDWR), 0);
  for (int i = 0; i < 3; i++) assert_true(tp_run_until(f->loop, tp_msg_closed, f->app->reqs[i], TF_WAIT));
  assert_int_equal(f->px.stats.premature_resets[0], 3 + 3); /* the caller's, and the route's cancels inbound */
  const char *const kLine[] = {"\"event\":\"closed\"", "\"peer_addr\":\"127.0.0.1:40007\"",
                               "peer closed the connection with streams open", NULL};
  assert_true(tf_log_line_has(f, kLine));
}

#define FRONTEND_ID "spiffe://example.org/ns/shop/sa/frontend"

/* An mTLS caller with an SVID of our trust domain, on the inbound port:
 * served, and the app is told who called (XFCC: the proxy vouches). */
static void test_mtls_caller_served(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_tls_client(f, f->inbound, 40010, FRONTEND_ID, false);
  assert_non_null(c);
  const tp_hdr forged[] = {{"x-forwarded-client-cert", "By=x;URI=spiffe://example.org/ns/admin/sa/root"}};
  tp_msg *m = tp_client_request(c, "GET", "/mtls", forged, 1, NULL, 0, true);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_true(c->handshaken);
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  assert_string_equal(tp_hdr_get(f->app->reqs[0], "x-forwarded-client-cert"), "By=" TF_SPIFFE_ID ";URI=" FRONTEND_ID);
  const char *const kLine[] = {"\"direction\":\"inbound\"", "\"peer_id\":\"" FRONTEND_ID "\"", "\"status\":200", NULL};
  assert_true(tf_log_line_has(f, kLine));
}

/* Callers the mTLS port must refuse, each with its reason in the log. */
static void refused_tls(tf_fixture *f, unsigned port, const char *id, bool foreign, const char *reason) {
  tp_peer *c = tf_tls_client(f, f->inbound, port, id, foreign);
  assert_non_null(c);
  tp_msg *m = tp_client_request(c, "GET", "/", NULL, 0, NULL, 0, true);
  assert_true(tp_run_until(f->loop, peer_eof_or_closed, c, TF_WAIT));
  assert_false(m->headers_done);
  assert_int_equal(f->app->nreqs, 0);
  char peer[64];
  snprintf(peer, sizeof(peer), "\"peer_addr\":\"127.0.0.1:%u\"", port);
  const char *const kLine[] = {"\"event\":\"refused\"", peer, reason, NULL};
  if (!tf_log_line_has(f, kLine)) {
    char *log = tf_log(f);
    fail_msg("no refusal line with %s; log:\n%s", reason, log);
  }
}

static void test_mtls_refusals(void **state) {
  tf_fixture *f = *state;
  refused_tls(f, 40011, NULL, false, "peer presented no client certificate");
  refused_tls(f, 40012, FRONTEND_ID, true,
              "certificate of " FRONTEND_ID
              " was issued by a CA that is not in the trust bundle (issuer /CN=another CA)");
  refused_tls(
      f, 40013, "spiffe://other.org/ns/shop/sa/frontend", false,
      "peer presented spiffe://other.org/ns/shop/sa/frontend, which is outside our trust domain spiffe://example.org");
  assert_int_equal(f->px.stats.conns_refused, 3);
}

/* The inbound caller's connection of a given state, or NULL. */
typedef struct {
  tf_fixture *f;
  wisp_h2conn_state state;
  wisp_conn *found;
} conn_query;

static bool caller_in_state(void *arg) {
  conn_query *q = arg;
  q->found = NULL;
  WISP_LIST_FOREACH(it, &q->f->px.conns) {
    wisp_conn *c = WISP_LIST_ELEM(it, wisp_conn, link);
    if (!c->io.upstream && c->dir == WISP_DIR_INBOUND && c->io.state == q->state && !c->io.closing) q->found = c;
  }
  return q->found != NULL;
}

static bool no_inbound_caller(void *arg) {
  conn_query *q = arg;
  WISP_LIST_FOREACH(it, &q->f->px.conns) {
    const wisp_conn *c = WISP_LIST_ELEM(it, wisp_conn, link);
    if (!c->io.upstream && c->dir == WISP_DIR_INBOUND) return false;
  }
  return true;
}

static bool handshaking(void *arg) { return ((tf_fixture *)arg)->px.nhandshakes != 0; }
static bool no_handshake(void *arg) { return ((tf_fixture *)arg)->px.nhandshakes == 0; }

/* A caller in its TLS handshake has no connection yet, let alone an HTTP/2
 * session: ALPN chooses between HTTP/2 and the L4 tunnel first (issue 12,
 * wisp_handshake), and one that never finishes costs none. Its refusal
 * reads as it always did. */
static void test_no_http2_state_during_handshake(void **state) {
  tf_fixture *f = *state;
  int fd = tf_raw_client(f, f->inbound, 40020);
  static const uint8_t kHelloStart[] = {0x16, 0x03, 0x01, 0x00, 0x80, 0x01}; /* a ClientHello record, cut */
  assert_int_equal(send(fd, kHelloStart, sizeof(kHelloStart), MSG_NOSIGNAL), (ssize_t)sizeof(kHelloStart));
  conn_query q = {f, WISP_H2CONN_HANDSHAKING, NULL};
  assert_true(tp_run_until(f->loop, handshaking, f, TF_WAIT));
  assert_true(no_inbound_caller(&q));
  close(fd);
  assert_true(tp_run_until(f->loop, no_handshake, f, TF_WAIT));
  assert_true(no_inbound_caller(&q));
  const char *const kLine[] = {"\"event\":\"refused\"", "\"peer_addr\":\"127.0.0.1:40020\"", "TLS handshake failed",
                               NULL};
  assert_true(tf_log_line_has(f, kLine));

  /* one that finishes it with ALPN h2 gets its session, and an answer */
  tp_peer *c = tf_tls_client(f, f->inbound, 40021, FRONTEND_ID, false);
  assert_non_null(c);
  tp_msg *m = tp_client_request(c, "GET", "/after", NULL, 0, NULL, 0, true);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  q.state = WISP_H2CONN_OPEN;
  assert_true(caller_in_state(&q));
  assert_non_null(q.found->io.h2);
}

/* Drain (SIGTERM, POST /drain): the caller gets GOAWAY NO_ERROR, its
 * request in progress still completes, then its connection is closed. */
static void test_drain_finishes_in_flight(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 40009);
  tp_msg *m = tp_client_request(c, "GET", "/inflight", NULL, 0, NULL, 0, true);
  tf_count one = {f, 1};
  assert_true(tp_run_until(f->loop, tf_app_has, &one, TF_WAIT));
  wisp_dataplane_start_drain(&f->px);
  assert_true(tp_run_until(f->loop, peer_goaway, c, TF_WAIT));
  assert_int_equal(c->goaway_code, NGHTTP2_NO_ERROR);
  assert_false(m->closed);
  tp_app_respond(f->app, f->app->reqs[0], 200, "done", 4);
  /* With no caller left the drained proxy is done and the loop no longer
   * polls (main.c's ev_run returns): the caller reads on its own. */
  assert_true(tp_run_until(f->loop, read_until_eof, c, TF_WAIT));
  assert_int_equal(m->close_code, NGHTTP2_NO_ERROR);
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  assert_int_equal(m->body_len, 4);
  assert_true(m->closed);
}

/* |m| ends with our own answer |status|, whose x-wisp-error and body name
 * the app's address and |cause|. */
static void assert_answer_names_upstream(tf_fixture *f, tp_msg *m, const char *status, const char *cause) {
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_string_equal(tp_hdr_get(m, ":status"), status);
  const char *why = tp_hdr_get(m, "x-wisp-error");
  assert_non_null(why);
  char app[64];
  snprintf(app, sizeof(app), "upstream 127.0.0.1:%u", f->app->port);
  assert_non_null(strstr(why, app));
  assert_non_null(strstr(why, cause));
  assert_non_null(memmem(m->body, m->body_len, cause, strlen(cause)));
}

/* The app is down: the upstream connection fails, and the caller gets a
 * 503 that says which upstream and why, in x-wisp-error and the body. */
static void test_upstream_down_503(void **state) {
  tf_fixture *f = *state;
  tp_app_stop_listening(f->app);
  tp_peer *c = tf_client(f, f->route, 40006);
  tp_msg *m = tp_client_request(c, "GET", "/down", NULL, 0, NULL, 0, true);
  assert_answer_names_upstream(f, m, "503", "Connection refused");
}

/* A gRPC caller gets the same refusal in gRPC's form: HTTP 200,
 * grpc-status 14 (UNAVAILABLE) and the reason in grpc-message. */
static void test_upstream_down_grpc_unavailable(void **state) {
  tf_fixture *f = *state;
  tp_app_stop_listening(f->app);
  tp_peer *c = tf_client(f, f->route, 40008);
  const tp_hdr grpc[] = {{"content-type", "application/grpc"}, {"te", "trailers"}};
  tp_msg *m = tp_client_request(c, "POST", "/pkg.Svc/Call", grpc, 2, "\0\0\0\0\0", 5, true);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_int_equal(m->close_code, NGHTTP2_NO_ERROR);
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  assert_string_equal(tp_hdr_get(m, "grpc-status"), "14");
  const char *msg = tp_hdr_get(m, "grpc-message");
  assert_non_null(msg);
  assert_non_null(strstr(msg, "Connection refused"));
  assert_int_equal(m->body_len, 0);
}

/* The app's connection drops with a request on it: the caller gets a 502
 * naming the upstream and what happened, and its connection goes on. */
static void test_upstream_lost_502(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 40007);
  tp_msg *m = tp_client_request(c, "GET", "/lost", NULL, 0, NULL, 0, true);
  tf_count one = {f, 1};
  assert_true(tp_run_until(f->loop, tf_app_has, &one, TF_WAIT));
  tp_app_drop_conn(f->app, 0);
  assert_answer_names_upstream(f, m, "502", "closed the connection with streams open");
  /* The next request gets a new app connection. */
  tp_msg *next = tp_client_request(c, "GET", "/next", NULL, 0, NULL, 0, true);
  tf_count two = {f, 2};
  assert_true(tp_run_until(f->loop, tf_app_has, &two, TF_WAIT));
  assert_int_equal(f->app->reqs[1]->conn, 1);
  tp_app_respond(f->app, f->app->reqs[1], 200, NULL, 0);
  assert_true(tp_run_until(f->loop, tp_msg_closed, next, TF_WAIT));
  assert_string_equal(tp_hdr_get(next, ":status"), "200");
}

/* A peer sidecar over --max-resets is throttled per source, across all
 * its targets (in --transparent inbound each original port is one): its
 * connections together hold WISP_RESETLIM_THROTTLE_STREAMS upstream. One
 * ending frees a place, but wakes only its own target's queue: a
 * connection of the same source waiting on another target was never told
 * and waited out --queue-timeout (503). Here both targets reach the same
 * app; the second is a transparent destination of the inbound listener. */
static int setup_throttled(void **state) {
  static const char *const kArgs[] = {"--max-resets", "1", "--queue-timeout", "30"};
  static const tf_opts kOpts = {.app_hold = true, .args = kArgs, .nargs = 4};
  return tf_setup_with(state, &kOpts);
}

static bool other_target_waiting(void *arg) {
  wisp_target *t = arg;
  return t->nwaiting == 1;
}

typedef struct {
  tf_fixture *f;
  tp_msg *m;
  int n;
} sent_or_answered;

/* The app has |n| requests, or |m| was answered (by the proxy). */
static bool app_has_or_closed(void *arg) {
  sent_or_answered *w = arg;
  return w->f->app->nreqs >= w->n || tp_msg_closed(w->m);
}

static void test_throttled_source_other_target(void **state) {
  tf_fixture *f = *state;
  tp_peer *a = tf_tls_client(f, f->inbound, 40020, FRONTEND_ID, false);
  assert_non_null(a);
  /* Two callers behind it: a peer sidecar. Its streams reset: throttled. */
  const tp_hdr kCaller[2][1] = {{{"x-wisp-caller", "1"}}, {{"x-wisp-caller", "2"}}};
  tp_msg *reset[3];
  for (int i = 0; i < 3; i++) reset[i] = tp_client_request(a, "GET", "/reset", kCaller[i % 2], 1, NULL, 0, true);
  tf_count three = {f, 3};
  assert_true(tp_run_until(f->loop, tf_app_has, &three, TF_WAIT));
  for (int i = 0; i < 3; i++) tp_peer_rst(a, reset[i], NGHTTP2_CANCEL);
  for (int i = 0; i < 3; i++) assert_true(tp_run_until(f->loop, tp_msg_closed, f->app->reqs[i], TF_WAIT));
  assert_true(f->px.stats.reset_limited[1] > 0);
  /* Its places, all taken on the inbound listener's target. */
  for (int i = 0; i < WISP_RESETLIM_THROTTLE_STREAMS; i++)
    tp_client_request(a, "GET", "/held", kCaller[i % 2], 1, NULL, 0, true);
  tf_count held = {f, 3 + WISP_RESETLIM_THROTTLE_STREAMS};
  assert_true(tp_run_until(f->loop, tf_app_has, &held, TF_WAIT));
  /* The same source, on another target: it waits. */
  wisp_addr app;
  char app_str[32];
  snprintf(app_str, sizeof(app_str), "127.0.0.1:%u", f->app->port);
  assert_int_equal(wisp_addr_parse(&app, app_str), WISP_OK);
  wisp_target *own = f->inbound->target, *other = wisp_proxy_target_for(&f->px, &app, false);
  assert_true(other != own && !other->refuse);
  f->inbound->target = other;
  tp_peer *b = tf_tls_client(f, f->inbound, 40021, FRONTEND_ID, false);
  f->inbound->target = own;
  assert_non_null(b);
  tp_msg *m = tp_client_request(b, "GET", "/other", kCaller[0], 1, NULL, 0, true);
  assert_true(tp_run_until(f->loop, other_target_waiting, other, TF_WAIT));
  /* One of the held streams completes: its place goes to the waiter. */
  tp_app_respond(f->app, f->app->reqs[3], 200, "ok", 2);
  sent_or_answered next = {f, m, held.n + 1};
  assert_true(tp_run_until(f->loop, app_has_or_closed, &next, TF_WAIT));
  assert_int_equal(f->app->nreqs, next.n);
  assert_false(tp_msg_closed(m)); /* not answered 503 by --queue-timeout */
  assert_string_equal(tp_hdr_get(f->app->reqs[held.n], ":path"), "/other");
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_client_preface_answered, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_bad_preface_refused, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_plaintext_on_mtls_port_refused, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_conn_error_closes, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_conn_error_resets_streams, tf_setup_hold, tf_teardown),
      cmocka_unit_test_setup_teardown(test_closed_caller_queue_not_sent, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_closed_tls_caller_queue_not_sent, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_closed_caller_counts_resets, tf_setup_hold, tf_teardown),
      cmocka_unit_test_setup_teardown(test_mtls_caller_served, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_mtls_refusals, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_no_http2_state_during_handshake, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_upstream_down_503, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_upstream_lost_502, tf_setup_hold, tf_teardown),
      cmocka_unit_test_setup_teardown(test_drain_finishes_in_flight, tf_setup_hold, tf_teardown),
      cmocka_unit_test_setup_teardown(test_upstream_down_grpc_unavailable, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_throttled_source_other_target, setup_throttled, tf_teardown),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
