/* In-process tests of proxy/dataplane/wisp_stream, the bridge between a caller's
 * HTTP/2 stream and an upstream one. Every request crosses two bridges:
 * caller -> route (outbound, h2c) -> mTLS -> inbound -> app (h2c), each a
 * real nghttp2 session. Headers and bodies (larger than every flow-control
 * window) arrive intact both ways; x-wisp-caller and a caller's
 * x-forwarded-client-cert never reach the app, which gets the XFCC the
 * inbound side vouches for; a reset on either end resets the other; a
 * REFUSED_STREAM from the app is retried once, by the inbound bridge, then
 * answered 503 (the app sees it at most twice); trailers cross
 * both ways; a header section past --max-header-list-size gets 431 (past
 * twice that, a reset); a request the app's GOAWAY left unprocessed is
 * sent again on a new connection; an early answer (413 to an upload)
 * reaches the caller whole, the rest of a small body is dropped and the
 * stream ends cleanly, a long one is stopped with RST_STREAM NO_ERROR; a
 * stream silent for --stream-idle-timeout gets 408 (gRPC DEADLINE_EXCEEDED)
 * or, once its response started, a reset both ways, and 0 keeps it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>

#include "proxy/dataplane/wisp_stream.h"
#include "tests/inproc/fixture.h"
#include "tests/unit/test_util.h"

static int count_hdr(const tp_msg *m, const char *name) {
  int n = 0;
  for (int i = 0; i < m->nhdrs; i++) n += strcmp(m->hdrs[i].name, name) == 0;
  return n;
}

/* A body larger than the stream windows (64 KiB at first, 256 KiB grown)
 * and the connection window (1 MiB), so every hop must pass window
 * updates on as its reader takes bytes: 1.5 MiB each way. */
#define BIG (1536 * 1024)

static void test_headers_and_bodies_intact(void **state) {
  tf_fixture *f = *state;
  uint8_t *body = malloc(BIG);
  assert_non_null(body);
  for (size_t i = 0; i < BIG; i++) body[i] = (uint8_t)(i * 7 + i / 4096);
  tp_peer *c = tf_client(f, f->route, 41001);
  const tp_hdr extra[] = {
      {"content-type", "application/octet-stream"}, {"x-test", "abc def"}, {"x-empty", ""}, {"accept", "*/*"}};
  tp_msg *m = tp_client_request(c, "POST", "/upload/a%20b?q=1&r=2", extra, 4, body, BIG, true);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_int_equal(m->close_code, NGHTTP2_NO_ERROR);
  /* What the app got. */
  assert_int_equal(f->app->nreqs, 1);
  const tp_msg *req = f->app->reqs[0];
  assert_string_equal(tp_hdr_get(req, ":method"), "POST");
  assert_string_equal(tp_hdr_get(req, ":path"), "/upload/a%20b?q=1&r=2");
  assert_string_equal(tp_hdr_get(req, ":authority"), "app.test");
  assert_string_equal(tp_hdr_get(req, "x-test"), "abc def");
  assert_string_equal(tp_hdr_get(req, "x-empty"), "");
  assert_string_equal(tp_hdr_get(req, "content-type"), "application/octet-stream");
  assert_int_equal(req->body_len, BIG);
  assert_memory_equal(req->body, body, BIG);
  /* What came back (the app echoes the body). */
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  assert_string_equal(tp_hdr_get(m, "x-app-conn"), "0");
  assert_int_equal(m->body_len, BIG);
  assert_memory_equal(m->body, body, BIG);
  free(body);
}

/* A response leaves before its request is logged (issue 15: nothing but
 * the response on its path): a stream that ends in the flush writing its
 * last frame is logged and freed after that write. Seen from the proxy's
 * after_write hook: the caller's stream it logs there has its response in
 * the caller's socket already. */
static struct {
  int client_fd;
  int after_send; /* the route's streams logged with their response in the caller's socket */
  int before_send;
} g_aw;

static void observe_after_write(wisp_h2loop *lp) {
  wisp_proxy *px = lp->data;
  for (wisp_stream *s = px->finished; s; s = s->finished_next) {
    if (s->dir != WISP_DIR_OUTBOUND) continue; /* the route's caller is the test's client */
    int queued = 0;
    assert_int_equal(ioctl(g_aw.client_fd, FIONREAD, &queued), 0);
    if (queued > 0) {
      g_aw.after_send++;
    } else {
      g_aw.before_send++;
    }
  }
  wisp_stream_after_write(px);
}

static void test_response_before_log_line(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 41050);
  assert_non_null(c);
  g_aw.client_fd = c->fd;
  f->px.lp.after_write = observe_after_write;
  tp_msg *m = tp_client_request(c, "GET", "/logged-after", NULL, 0, NULL, 0, true);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  assert_int_equal(g_aw.after_send, 1);
  assert_int_equal(g_aw.before_send, 0);
  const char *line[] = {"\"direction\":\"outbound\"", "\"path\":\"/logged-after\"", "\"status\":200", NULL};
  assert_true(tf_log_line_has(f, line));
}

/* Several requests at once on one caller connection, each its own body. */
static void test_concurrent_streams_keep_apart(void **state) {
  tf_fixture *f = *state;
  enum { N = 8, LEN = 100 * 1024 };
  static uint8_t bodies[N][LEN];
  tp_peer *c = tf_client(f, f->route, 41002);
  tp_msg *m[N];
  for (int k = 0; k < N; k++) {
    memset(bodies[k], 'a' + k, LEN);
    char path[16];
    snprintf(path, sizeof(path), "/s/%d", k);
    m[k] = tp_client_request(c, "PUT", path, NULL, 0, bodies[k], LEN, true);
  }
  for (int k = 0; k < N; k++) {
    assert_true(tp_run_until(f->loop, tp_msg_closed, m[k], TF_WAIT));
    assert_int_equal(m[k]->close_code, NGHTTP2_NO_ERROR);
    assert_string_equal(tp_hdr_get(m[k], ":status"), "200");
    assert_int_equal(m[k]->body_len, LEN);
    assert_memory_equal(m[k]->body, bodies[k], LEN);
  }
  assert_int_equal(f->app->nreqs, N);
}

/* x-wisp-caller is the sidecars' own (the outbound side sets it, the
 * inbound side takes it off); x-forwarded-client-cert is said by the
 * inbound side only. A caller cannot pass either to the app. */
static void test_internal_headers_stripped(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 41003);
  const tp_hdr extra[] = {
      {"x-wisp-caller", "424242"},
      {"x-forwarded-client-cert", "By=spiffe://example.org/ns/evil/sa/x;URI=spiffe://example.org/ns/admin/sa/root"},
      {"x-keep", "yes"}};
  tp_msg *m = tp_client_request(c, "GET", "/who", extra, 3, NULL, 0, true);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  const tp_msg *req = f->app->reqs[0];
  assert_string_equal(tp_hdr_get(req, "x-keep"), "yes");
  assert_null(tp_hdr_get(req, "x-wisp-caller"));
  assert_int_equal(count_hdr(req, "x-forwarded-client-cert"), 1);
  assert_string_equal(tp_hdr_get(req, "x-forwarded-client-cert"), "By=" TF_SPIFFE_ID ";URI=" TF_SPIFFE_ID);
}

/* The caller resets its stream while the app holds it: the app's stream
 * is reset too (CANCEL carried across both bridges). */
static void test_caller_reset_reaches_app(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 41004);
  tp_msg *m = tp_client_request(c, "POST", "/long", NULL, 0, "part", 4, false);
  tf_count one = {f, 1};
  assert_true(tp_run_until(f->loop, tf_app_has, &one, TF_WAIT));
  tp_msg *at_app = f->app->reqs[0];
  tp_peer_rst(c, m, NGHTTP2_CANCEL);
  assert_true(tp_run_until(f->loop, tp_msg_closed, at_app, TF_WAIT));
  assert_int_equal(at_app->close_code, NGHTTP2_CANCEL);
  assert_false(at_app->ended);
  /* The caller's connection goes on: a new request is answered. */
  tp_msg *next = tp_client_request(c, "GET", "/after", NULL, 0, NULL, 0, true);
  tf_count two = {f, 2};
  assert_true(tp_run_until(f->loop, tf_app_has, &two, TF_WAIT));
  tp_app_respond(f->app, f->app->reqs[1], 204, NULL, 0);
  assert_true(tp_run_until(f->loop, tp_msg_closed, next, TF_WAIT));
  assert_string_equal(tp_hdr_get(next, ":status"), "204");
}

/* The app resets a stream before answering: the caller's stream is reset
 * with the app's code, and gets no response. */
static void test_app_reset_reaches_caller(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 41005);
  tp_msg *m = tp_client_request(c, "GET", "/boom", NULL, 0, NULL, 0, true);
  tf_count one = {f, 1};
  assert_true(tp_run_until(f->loop, tf_app_has, &one, TF_WAIT));
  tp_app_rst(f->app, f->app->reqs[0], NGHTTP2_INTERNAL_ERROR);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_int_equal(m->close_code, NGHTTP2_INTERNAL_ERROR);
  assert_false(m->headers_done);
  assert_int_equal(f->app->nreqs, 1); /* not retried: only REFUSED_STREAM is */
}

/* REFUSED_STREAM means the app did not process the request: it is sent
 * once more, and the caller sees only the answer. */
static void test_refused_stream_retried_once(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 41006);
  tp_msg *m = tp_client_request(c, "GET", "/again", NULL, 0, NULL, 0, true);
  tf_count one = {f, 1}, two = {f, 2};
  assert_true(tp_run_until(f->loop, tf_app_has, &one, TF_WAIT));
  tp_app_rst(f->app, f->app->reqs[0], NGHTTP2_REFUSED_STREAM);
  assert_true(tp_run_until(f->loop, tf_app_has, &two, TF_WAIT));
  assert_string_equal(tp_hdr_get(f->app->reqs[1], ":path"), "/again");
  tp_app_respond(f->app, f->app->reqs[1], 200, "ok\n", 3);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_int_equal(m->close_code, NGHTTP2_NO_ERROR);
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  assert_int_equal(m->body_len, 3);
  assert_memory_equal(m->body, "ok\n", 3);
  assert_int_equal(f->app->nreqs, 2);
}

/* Refuses every request that reaches the app; true once |m| closed. */
typedef struct {
  tf_fixture *f;
  tp_msg *m;
  int refused;
} refuser;

static bool refuse_all(void *arg) {
  refuser *r = arg;
  for (; r->refused < r->f->app->nreqs; r->refused++)
    tp_app_rst(r->f->app, r->f->app->reqs[r->refused], NGHTTP2_REFUSED_STREAM);
  return r->m->closed;
}

/* An app that refuses every time. The inbound bridge, next to the app,
 * sends the request once more and then answers 503 with the reason; the
 * outbound bridge does not retry an answer, so the app sees the request
 * twice, not 2 x 2 = 4 times (a reset REFUSED_STREAM from the inbound
 * bridge would be retried by the outbound one). */
static void test_refused_stream_retries_bounded(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 41007);
  tp_msg *m = tp_client_request(c, "GET", "/never", NULL, 0, NULL, 0, true);
  refuser r = {f, m, 0};
  assert_true(tp_run_until(f->loop, refuse_all, &r, TF_WAIT));
  assert_int_equal(m->close_code, NGHTTP2_NO_ERROR);
  assert_string_equal(tp_hdr_get(m, ":status"), "503");
  const char *why = tp_hdr_get(m, "x-wisp-error");
  assert_non_null(why);
  assert_non_null(strstr(why, "refused the stream (REFUSED_STREAM) twice: the request was not processed"));
  assert_int_equal(f->app->nreqs, 2);
}

static bool msg_ended(void *arg) { return ((tp_msg *)arg)->ended; }

static const char *trailer_of(const tp_msg *m, const char *name) {
  for (int i = 0; i < m->ntrailers; i++) {
    if (strcmp(m->trailers[i].name, name) == 0) return m->trailers[i].value;
  }
  return NULL;
}

/* Trailers cross both bridges both ways (gRPC's grpc-status rides in
 * them): the request's reach the app after its body, the response's reach
 * the caller after the response body. */
static void test_trailers_both_ways(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 41008);
  const tp_hdr req_trailers[] = {{"x-req-trailer", "rt"}, {"x-checksum", "abc123"}};
  tp_msg *m = tp_client_request_trailers(c, "POST", "/pkg.Svc/Call", "hello", 5, req_trailers, 2);
  tf_count one = {f, 1};
  assert_true(tp_run_until(f->loop, tf_app_has, &one, TF_WAIT));
  tp_msg *at_app = f->app->reqs[0];
  assert_true(tp_run_until(f->loop, msg_ended, at_app, TF_WAIT));
  assert_int_equal(at_app->body_len, 5);
  assert_memory_equal(at_app->body, "hello", 5);
  assert_string_equal(trailer_of(at_app, "x-req-trailer"), "rt");
  assert_string_equal(trailer_of(at_app, "x-checksum"), "abc123");
  const tp_hdr resp_trailers[] = {{"grpc-status", "0"}, {"x-resp-trailer", "t2"}};
  tp_app_respond_trailers(f->app, at_app, 200, "world", 5, resp_trailers, 2);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_int_equal(m->close_code, NGHTTP2_NO_ERROR);
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  assert_int_equal(m->body_len, 5);
  assert_memory_equal(m->body, "world", 5);
  assert_string_equal(trailer_of(m, "grpc-status"), "0");
  assert_string_equal(trailer_of(m, "x-resp-trailer"), "t2");
}

static bool got_partial(void *arg) {
  const tp_msg *m = arg;
  return m->headers_done && m->body_len == 7;
}

/* The app resets after its response began: the caller has the headers
 * and the bytes that came, then the reset (not a clean end it would take
 * for a whole response). */
static void test_app_reset_mid_response(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 41009);
  tp_msg *m = tp_client_request(c, "GET", "/partial", NULL, 0, NULL, 0, true);
  tf_count one = {f, 1};
  assert_true(tp_run_until(f->loop, tf_app_has, &one, TF_WAIT));
  tp_app_respond_trailers(f->app, f->app->reqs[0], 200, "partial", 7, NULL, -1);
  assert_true(tp_run_until(f->loop, got_partial, m, TF_WAIT));
  assert_false(m->closed);
  tp_app_rst(f->app, f->app->reqs[0], NGHTTP2_INTERNAL_ERROR);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_int_equal(m->close_code, NGHTTP2_INTERNAL_ERROR);
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  assert_false(m->ended);
  assert_int_equal(m->body_len, 7);
}

/* Whether bytes wait on |fd| (within TF_WAIT): loopback delivery is not
 * always done when the writer's write returns. */
static bool readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, (int)(TF_WAIT * 1000)) == 1;
}

/* A stream's response header fields are lent to nghttp2, not copied
 * (wisp_stream.c): the caller resets its stream in the same turn of the
 * loop as the app's answer arrives, so the stream, and the fields, are
 * freed while that HEADERS frame still waits to go out. nghttp2 drops it
 * without reading it (ASan would see a read of the freed fields), and the
 * caller's connection goes on. */
static void test_caller_reset_while_response_queued(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_tls_client(f, f->inbound, 41060, TF_SPIFFE_ID, false);
  assert_non_null(c);
  tp_msg *m = tp_client_request(c, "GET", "/reset-while-queued", NULL, 0, NULL, 0, true);
  tf_count one = {f, 1};
  assert_true(tp_run_until(f->loop, tf_app_has, &one, TF_WAIT));
  assert_false(wisp_list_empty(&f->px.idle_streams));
  wisp_stream *s = WISP_LIST_ELEM(f->px.idle_streams.next, wisp_stream, idle_link);
  wisp_conn *up = s->link[WISP_UP].conn, *down = s->link[WISP_DOWN].conn;
  assert_non_null(up);
  assert_non_null(down);
  tp_app_respond(f->app, f->app->reqs[0], 204, NULL, 0); /* headers only: the app's stream ends */
  tp_peer_rst(c, m, NGHTTP2_CANCEL);
  /* In this order, as one turn of the loop may take them: the answer is
   * submitted to the caller's session, then the reset frees the stream
   * (logged as it is freed), before any flush. */
  assert_true(readable(up->io.tp.fd));
  assert_true(readable(down->io.tp.fd));
  wisp_h2conn_recv(&up->io);
  assert_null(s->link[WISP_UP].conn); /* its response came whole: the app's side closed */
  wisp_h2conn_recv(&down->io);
  const char *const kFreed[] = {"\"path\":\"/reset-while-queued\"", "\"status\":204", "\"reset\":\"CANCEL\"", NULL};
  fflush(stdout); /* the loop flushes the log before it sleeps */
  assert_true(tf_log_line_has(f, kFreed));
  /* The flush drops the frame; the connection serves the next request. */
  tp_msg *next = tp_client_request(c, "GET", "/after", NULL, 0, NULL, 0, true);
  tf_count two = {f, 2};
  assert_true(tp_run_until(f->loop, tf_app_has, &two, TF_WAIT));
  tp_app_respond(f->app, f->app->reqs[1], 200, "ok", 2);
  assert_true(tp_run_until(f->loop, tp_msg_closed, next, TF_WAIT));
  assert_int_equal(next->close_code, NGHTTP2_NO_ERROR);
  assert_string_equal(tp_hdr_get(next, ":status"), "200");
  assert_int_equal(next->body_len, 2);
}

static int setup_small_headers(void **state) {
  static const char *const kArgs[] = {"--max-header-list-size", "1024"};
  static const tf_opts kOpts = {.args = kArgs, .nargs = 2};
  return tf_setup_with(state, &kOpts);
}

/* A request of |n| 500-byte headers from a new client (the test frees
 * |extra|'s copy at once: nghttp2 copies header values on submit). */
static tp_msg *big_headers_request(tf_fixture *f, tp_peer *c, int n) {
  tp_hdr *extra = calloc((size_t)n, sizeof(*extra));
  for (int i = 0; i < n; i++) {
    snprintf(extra[i].name, sizeof(extra[i].name), "x-big-%d", i);
    memset(extra[i].value, 'h', 500);
  }
  tp_msg *m = tp_client_request(c, "GET", "/big", extra, n, NULL, 0, true);
  free(extra);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  return m;
}

/* A request header section past --max-header-list-size: 431, saying
 * which limit; it never reaches the app; the connection goes on. Past
 * twice the limit it is a bomb, not a mistake: the stream is reset
 * (INTERNAL_ERROR), without decoding the rest for an answer. */
static void test_header_section_too_large(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 41010);
  tp_msg *m = big_headers_request(f, c, 3); /* about 1.6 KB: over 1 KB, under 2 */
  if (!tp_hdr_get(m, ":status")) fail_msg("no response; closed with %u", m->close_code);
  assert_string_equal(tp_hdr_get(m, ":status"), "431");
  assert_string_equal(tp_hdr_get(m, "x-wisp-error"),
                      "request headers refused: header section larger than --max-header-list-size (1024 bytes)");
  tp_msg *bomb = big_headers_request(f, c, 5); /* about 2.6 KB */
  assert_false(bomb->headers_done);
  assert_int_equal(bomb->close_code, NGHTTP2_INTERNAL_ERROR);
  assert_int_equal(f->app->nreqs, 0);
  tp_msg *small = tp_client_request(c, "GET", "/small", NULL, 0, NULL, 0, true);
  assert_true(tp_run_until(f->loop, tp_msg_closed, small, TF_WAIT));
  assert_string_equal(tp_hdr_get(small, ":status"), "200");
}

/* The app restarts gracefully: GOAWAY saying it processed none of the
 * streams on that connection. The request is sent again on a new
 * connection (it was not processed), and the caller sees only the answer. */
static void test_app_goaway_request_retried(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 41011);
  tp_msg *m = tp_client_request(c, "GET", "/restart", NULL, 0, NULL, 0, true);
  tf_count one = {f, 1}, two = {f, 2};
  assert_true(tp_run_until(f->loop, tf_app_has, &one, TF_WAIT));
  tp_app_goaway(f->app, 0, 0);
  assert_true(tp_run_until(f->loop, tf_app_has, &two, TF_WAIT));
  assert_int_equal(f->app->reqs[1]->conn, 1);
  assert_string_equal(tp_hdr_get(f->app->reqs[1], ":path"), "/restart");
  tp_app_respond(f->app, f->app->reqs[1], 200, "new", 3);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_int_equal(m->close_code, NGHTTP2_NO_ERROR);
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  assert_string_equal(tp_hdr_get(m, "x-app-conn"), "1");
}

static bool response_ended(void *arg) {
  const tp_msg *m = arg;
  return m->headers_done && m->ended;
}

/* An upload the app answers 413 before its body ended; returns once the
 * whole answer reached the caller. */
static tp_msg *answered_early(tf_fixture *f, tp_peer *c) {
  tp_msg *m = tp_client_request(c, "POST", "/upload", NULL, 0, "part", 4, false);
  tf_count one = {f, 1};
  assert_true(tp_run_until(f->loop, tf_app_has, &one, TF_WAIT));
  tp_app_respond(f->app, f->app->reqs[0], 413, "too big\n", 8);
  assert_true(tp_run_until(f->loop, response_ended, m, TF_WAIT));
  return m;
}

/* The app answers before the request body is all there (413 to an
 * upload): the caller gets the whole answer, and the rest of its body,
 * still small, is read and dropped: its stream then ends cleanly (some
 * clients take even a RST_STREAM NO_ERROR for a failure). */
static void test_early_response_then_body_end(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 41012);
  tp_msg *m = answered_early(f, c);
  assert_string_equal(tp_hdr_get(m, ":status"), "413");
  static const char kRest[] = "the rest of a small upload";
  m->send = (const uint8_t *)kRest;
  m->send_len = sizeof(kRest) - 1;
  m->sent = 0;
  tp_msg_end(c, m);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_int_equal(m->close_code, NGHTTP2_NO_ERROR);
  assert_false(m->rst_received);
  assert_int_equal(m->body_len, 8);
  assert_memory_equal(m->body, "too big\n", 8);
}

/* ... but one that keeps uploading well past that (here 1 MiB more) is
 * asked to stop: RST_STREAM NO_ERROR (RFC 9113 8.1), after the whole
 * answer. */
static void test_early_response_then_long_upload_stopped(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 41013);
  tp_msg *m = answered_early(f, c);
  enum { REST = 1024 * 1024 };
  uint8_t *rest = calloc(1, REST);
  m->send = rest;
  m->send_len = REST;
  m->sent = 0;
  tp_msg_end(c, m);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_true(m->rst_received);
  assert_int_equal(m->close_code, NGHTTP2_NO_ERROR);
  assert_true(m->sent < REST); /* stopped before the end */
  assert_string_equal(tp_hdr_get(m, ":status"), "413");
  assert_int_equal(m->body_len, 8);
  free(rest);
}

/* Requests in progress (wisp_streams_open). */
static uint64_t streams_open(const tf_fixture *f) {
  uint64_t finished = 0;
  for (int d = 0; d < 2; d++)
    for (int i = 0; i < WISP_STATUS_CLASSES; i++) finished += f->px.stats.finished[d][i];
  return f->px.stats.requests - finished;
}

/* A request the proxy answers itself (431) while its caller has not
 * finished it (HEADERS without END_STREAM, then silence): the whole answer,
 * then RST_STREAM(NO_ERROR) within a few seconds, and the proxy's stream is
 * gone, not held for --stream-idle-timeout (300 s). */
static void test_own_answer_then_stop(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 41014);
  tp_hdr *extra = calloc(3, sizeof(*extra));
  for (int i = 0; i < 3; i++) {
    snprintf(extra[i].name, sizeof(extra[i].name), "x-big-%d", i);
    memset(extra[i].value, 'h', 500);
  }
  tp_msg *m = tp_client_request(c, "POST", "/big", extra, 3, NULL, 0, false);
  free(extra);
  assert_true(tp_run_until(f->loop, response_ended, m, TF_WAIT));
  assert_string_equal(tp_hdr_get(m, ":status"), "431");
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, 3.0));
  assert_true(m->rst_received);
  assert_int_equal(m->close_code, NGHTTP2_NO_ERROR);
  static const char kWhy[] =
      "request headers refused: header section larger than --max-header-list-size (1024 bytes)\n";
  assert_int_equal(m->body_len, sizeof(kWhy) - 1);
  assert_memory_equal(m->body, kWhy, sizeof(kWhy) - 1);
  tp_run_for(f->loop, 2); /* its close reaches the proxy's stream */
  assert_int_equal(streams_open(f), 0);
}

/* ---- --stream-idle-timeout (0.4 s here: a sweep every 0.1 s) ---- */

static int setup_idle(void **state) {
  static const char *const kArgs[] = {"--stream-idle-timeout", "0.4"};
  static const tf_opts kOpts = {.args = kArgs, .nargs = 2, .app_hold = true};
  return tf_setup_with(state, &kOpts);
}

static int setup_idle_off(void **state) {
  static const char *const kArgs[] = {"--stream-idle-timeout", "0"};
  static const tf_opts kOpts = {.args = kArgs, .nargs = 2, .app_hold = true};
  return tf_setup_with(state, &kOpts);
}

#define IDLE_REASON "stream idle: no byte moved either way for --stream-idle-timeout (0.4s)"

/* A request from a new client on the route, once the app has it there
 * (|*at_app|). */
static tp_msg *request_at_app(tf_fixture *f, unsigned port, const char *method, const char *path, const tp_hdr *extra,
                              int nextra, const char *body, bool end, tp_msg **at_app) {
  tp_msg *m =
      tp_client_request(tf_client(f, f->route, port), method, path, extra, nextra, body, body ? strlen(body) : 0, end);
  tf_count one = {f, 1};
  assert_true(tp_run_until(f->loop, tf_app_has, &one, TF_WAIT));
  *at_app = f->app->reqs[0];
  return m;
}

/* A request whose body stopped and whose app is silent: 408 saying why,
 * the app's stream cancelled, logged and counted. The 408 the caller
 * leaves open (its request never ends) is reset after another timeout. */
static void test_idle_request_408(void **state) {
  tf_fixture *f = *state;
  tp_msg *at_app;
  tp_msg *m = request_at_app(f, 41020, "POST", "/upload", NULL, 0, "part", false, &at_app);
  assert_true(tp_run_until(f->loop, tp_msg_closed, at_app, TF_WAIT));
  assert_int_equal(at_app->close_code, NGHTTP2_CANCEL);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_string_equal(tp_hdr_get(m, ":status"), "408");
  assert_string_equal(tp_hdr_get(m, "x-wisp-error"), IDLE_REASON);
  assert_true(f->px.stats.idle_timeouts >= 1);
  static const char *const kLine[] = {"\"status\":408", "\"error\":\"" IDLE_REASON "\"", NULL};
  assert_true(tf_log_line_has(f, kLine));
}

/* gRPC: the caller gets DEADLINE_EXCEEDED (4), as Envoy answers. */
static void test_idle_grpc_deadline(void **state) {
  tf_fixture *f = *state;
  static const tp_hdr kGrpc[] = {{"content-type", "application/grpc"}};
  tp_msg *at_app;
  tp_msg *m = request_at_app(f, 41021, "POST", "/pkg.Svc/Watch", kGrpc, 1, NULL, true, &at_app);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  assert_string_equal(tp_hdr_get(m, "grpc-status"), "4");
  assert_true(tp_run_until(f->loop, tp_msg_closed, at_app, TF_WAIT));
  assert_int_equal(at_app->close_code, NGHTTP2_CANCEL);
}

/* A response that started and went silent (a watch with no event): reset
 * both ways (CANCEL); the caller keeps what came. */
static void test_idle_response_reset(void **state) {
  tf_fixture *f = *state;
  tp_msg *at_app;
  tp_msg *m = request_at_app(f, 41022, "GET", "/watch", NULL, 0, NULL, true, &at_app);
  tp_app_respond_trailers(f->app, at_app, 200, "partial", 7, NULL, -1);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_int_equal(m->close_code, NGHTTP2_CANCEL);
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
  assert_int_equal(m->body_len, 7);
  assert_false(m->ended);
  assert_true(tp_run_until(f->loop, tp_msg_closed, at_app, TF_WAIT));
  assert_int_equal(at_app->close_code, NGHTTP2_CANCEL);
  static const char *const kLine[] = {"\"status\":200", "\"error\":\"" IDLE_REASON "\"", NULL};
  assert_true(tf_log_line_has(f, kLine));
}

/* 0 turns it off: a silent stream stays (100 turns of the loop, about
 * 1 s: 2.5 times the 0.4 s above), then answers normally. */
static void test_idle_off(void **state) {
  tf_fixture *f = *state;
  tp_msg *at_app;
  tp_msg *m = request_at_app(f, 41023, "POST", "/upload", NULL, 0, "part", false, &at_app);
  tp_run_for(f->loop, 100);
  assert_false(m->closed);
  assert_false(at_app->closed);
  tp_app_respond(f->app, at_app, 204, NULL, 0);
  tp_msg_end(f->clients[f->nclients - 1], m);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_string_equal(tp_hdr_get(m, ":status"), "204");
  assert_int_equal(f->px.stats.idle_timeouts, 0);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_headers_and_bodies_intact, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_streams_keep_apart, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_internal_headers_stripped, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_caller_reset_reaches_app, tf_setup_hold, tf_teardown),
      cmocka_unit_test_setup_teardown(test_app_reset_reaches_caller, tf_setup_hold, tf_teardown),
      cmocka_unit_test_setup_teardown(test_refused_stream_retried_once, tf_setup_hold, tf_teardown),
      cmocka_unit_test_setup_teardown(test_refused_stream_retries_bounded, tf_setup_hold, tf_teardown),
      cmocka_unit_test_setup_teardown(test_trailers_both_ways, tf_setup_hold, tf_teardown),
      cmocka_unit_test_setup_teardown(test_app_goaway_request_retried, tf_setup_hold, tf_teardown),
      cmocka_unit_test_setup_teardown(test_early_response_then_body_end, tf_setup_hold, tf_teardown),
      cmocka_unit_test_setup_teardown(test_early_response_then_long_upload_stopped, tf_setup_hold, tf_teardown),
      cmocka_unit_test_setup_teardown(test_app_reset_mid_response, tf_setup_hold, tf_teardown),
      cmocka_unit_test_setup_teardown(test_caller_reset_while_response_queued, tf_setup_hold, tf_teardown),
      cmocka_unit_test_setup_teardown(test_header_section_too_large, setup_small_headers, tf_teardown),
      cmocka_unit_test_setup_teardown(test_own_answer_then_stop, setup_small_headers, tf_teardown),
      cmocka_unit_test_setup_teardown(test_idle_request_408, setup_idle, tf_teardown),
      cmocka_unit_test_setup_teardown(test_idle_grpc_deadline, setup_idle, tf_teardown),
      cmocka_unit_test_setup_teardown(test_idle_response_reset, setup_idle, tf_teardown),
      cmocka_unit_test_setup_teardown(test_idle_off, setup_idle_off, tf_teardown),
      cmocka_unit_test_setup_teardown(test_response_before_log_line, tf_setup_echo, tf_teardown),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
