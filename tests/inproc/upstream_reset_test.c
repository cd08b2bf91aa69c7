/* In-process test of an upstream peer sidecar that answers and then
 * crashes: over mTLS (BoringSSL on loopback TCP) it writes every response
 * whole, a GOAWAY, and resets the connection (RST, no close_notify), just
 * as the proxy writes one more request to it. The write fails
 * (ECONNRESET), but what the peer sent before its reset is still in the
 * socket: the callers it answered get their answers, the request its
 * GOAWAY left unprocessed goes again on a new connection, and the next
 * request is served on that one. Before, every caller got 502 "write
 * failed: Connection reset by peer". A reset that comes while the proxy
 * has nothing to write is found by a read, after the answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/inproc/fixture.h"
#include "tests/unit/test_util.h"

#define PEER_ID "spiffe://example.org/ns/test/sa/peer"
/* Requests the peer answers before it crashes. */
#define ANSWERED 8

typedef struct {
  tf_fixture *f;
  tp_app *peer; /* the upstream peer sidecar (TLS); its first connection crashes */
  void (*before_flush)(wisp_h2loop *lp);
  bool armed; /* crash once the caller's next request is read */
  bool crashed;
} crash_state;

static crash_state g_crash;

static bool start_peer(tf_fixture *f, void *arg) {
  crash_state *cs = arg;
  SSL_CTX *ctx = tf_server_ctx(f, PEER_ID);
  if (!ctx) return false;
  cs->peer = tp_app_new_tls(f->loop, 100, true, ctx);
  f->route_port = cs->peer->port;
  return true;
}

static int setup(void **state) {
  memset(&g_crash, 0, sizeof(g_crash));
  static const tf_opts kOpts = {.prepare = start_peer, .prepare_arg = &g_crash};
  int rc = tf_setup_with(state, &kOpts);
  g_crash.f = *state;
  return rc;
}

static int teardown(void **state) {
  tp_app_free(g_crash.peer); /* before the loop goes */
  g_crash.peer = NULL;
  return tf_teardown(state);
}

/* The route's caller connection (there is one). */
static wisp_conn *caller_conn(tf_fixture *f) {
  WISP_LIST_FOREACH(it, &f->px.conns) {
    wisp_conn *c = WISP_LIST_ELEM(it, wisp_conn, link);
    if (!c->io.upstream && c->listener == f->route) return c;
  }
  return NULL;
}

/* The peer answers every request it has, says GOAWAY (the last of them
 * processed) and crashes. */
static void crash_peer(crash_state *cs) {
  tp_app *peer = cs->peer;
  int32_t last = 0;
  for (int i = 0; i < peer->nreqs; i++) {
    char body[32];
    int len = snprintf(body, sizeof(body), "answer %d", i);
    tp_msg *m = peer->reqs[i];
    /* Borrowed until sent: all of it goes out in the reset's flush. */
    m->body = realloc(m->body, (size_t)len);
    assert_non_null(m->body);
    memcpy(m->body, body, (size_t)len);
    m->body_len = (size_t)len;
    tp_app_respond(peer, m, 200, m->body, m->body_len);
    if (m->id > last) last = m->id;
  }
  tp_app_goaway(peer, 0, last);
  tp_app_reset_conn(peer, 0);
  cs->crashed = true;
}

/* Runs where the proxy is about to send what it read this turn upstream
 * (the loop's before_flush): once the caller's late request is among its
 * streams, the peer answers everything it has, says GOAWAY and crashes
 * (RST). So the proxy's next write to it is the one that finds the reset,
 * with the answers waiting unread in the socket. */
static void crash_before_flush(wisp_h2loop *lp) {
  crash_state *cs = &g_crash;
  wisp_conn *caller = cs->armed ? caller_conn(cs->f) : NULL;
  if (caller && caller->nstreams == ANSWERED + 1) {
    cs->armed = false;
    crash_peer(cs);
  }
  cs->before_flush(lp);
}

typedef struct {
  tp_msg **msgs;
  int n;
} all_closed;

static bool every_closed(void *arg) {
  const all_closed *a = arg;
  for (int i = 0; i < a->n; i++) {
    if (!a->msgs[i]->closed) return false;
  }
  return true;
}

static bool peer_has(void *arg) {
  const tf_count *want = arg;
  return g_crash.peer->nreqs >= want->n;
}

/* Asserts that |m| was answered 200 with |body|. */
static void expect_answer(const tp_msg *m, const char *body) {
  const char *status = tp_hdr_get(m, ":status");
  const char *err = tp_hdr_get(m, "x-wisp-error");
  if (!status || strcmp(status, "200") != 0)
    fail_msg("%s: status %s (%s)", body, status ? status : "none", err ? err : "no x-wisp-error");
  assert_int_equal(m->body_len, strlen(body));
  assert_memory_equal(m->body, body, strlen(body));
}

/* Sends ANSWERED requests from |c| into |msgs| and waits until the peer
 * has them all. */
static void send_requests(tf_fixture *f, tp_peer *c, tp_msg **msgs) {
  for (int i = 0; i < ANSWERED; i++) {
    char path[16];
    snprintf(path, sizeof(path), "/r%d", i);
    msgs[i] = tp_client_request(c, "GET", path, NULL, 0, NULL, 0, true);
  }
  tf_count all_sent = {f, ANSWERED};
  assert_true(tp_run_until(f->loop, peer_has, &all_sent, TF_WAIT));
}

/* Waits for the ANSWERED requests in |msgs| and asserts their answers. */
static void expect_answered(tf_fixture *f, tp_msg **msgs) {
  all_closed answered = {msgs, ANSWERED};
  assert_true(tp_run_until(f->loop, every_closed, &answered, TF_WAIT));
  for (int i = 0; i < ANSWERED; i++) {
    char body[32];
    snprintf(body, sizeof(body), "answer %d", i);
    expect_answer(msgs[i], body);
  }
}

/* The reset comes as the proxy writes: the write fails first. */
static void test_reset_found_by_write(void **state) {
  tf_fixture *f = *state;
  tp_app *peer = g_crash.peer;
  tp_peer *c = tf_client(f, f->route, 43001);
  assert_non_null(c);
  tp_msg *msgs[ANSWERED];
  send_requests(f, c, msgs);
  /* One more request; the peer crashes as the proxy sends it on. */
  g_crash.before_flush = f->px.lp.before_flush;
  f->px.lp.before_flush = crash_before_flush;
  g_crash.armed = true;
  tp_msg *late = tp_client_request(c, "GET", "/late", NULL, 0, NULL, 0, true);
  expect_answered(f, msgs);
  assert_true(g_crash.crashed);
  f->px.lp.before_flush = g_crash.before_flush;
  /* The late request, past the GOAWAY's last stream, was not processed:
   * it goes again, on a new connection, and is answered there. */
  tf_count retried = {f, ANSWERED + 1};
  assert_true(tp_run_until(f->loop, peer_has, &retried, TF_WAIT));
  assert_int_equal(peer->nconns, 2);
  tp_msg *again = peer->reqs[ANSWERED];
  assert_int_equal(again->conn, 1);
  assert_string_equal(tp_hdr_get(again, ":path"), "/late");
  tp_app_respond(peer, again, 200, "late", 4);
  assert_true(tp_run_until(f->loop, tp_msg_closed, late, TF_WAIT));
  expect_answer(late, "late");
  /* The next request is served on that connection; the crashed one is
   * gone from the pool. */
  tp_msg *next = tp_client_request(c, "GET", "/next", NULL, 0, NULL, 0, true);
  tf_count nexted = {f, ANSWERED + 2};
  assert_true(tp_run_until(f->loop, peer_has, &nexted, TF_WAIT));
  tp_app_respond(peer, peer->reqs[ANSWERED + 1], 200, "next", 4);
  assert_true(tp_run_until(f->loop, tp_msg_closed, next, TF_WAIT));
  expect_answer(next, "next");
  assert_int_equal(peer->nconns, 2);
  assert_int_equal(f->route->target->nconns, 1);
  /* Its end is logged with the reason. */
  const char *const kLine[] = {"\"upstream_failed\"", "write failed: Connection reset by peer", NULL};
  assert_true(tf_log_line_has(f, kLine));
}

/* Descriptors open in this process (the proxy's and the test's). */
static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) n += e->d_name[0] != '.';
  closedir(d);
  return n - 1; /* not the one reading the directory */
}

static bool pool_empty(void *arg) { return ((tf_fixture *)arg)->route->target->nconns == 0; }

/* The reset comes while the proxy has nothing to write: its read gets the
 * answers, and the next read the reset. */
static void test_reset_found_by_read(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 43002);
  assert_non_null(c);
  tp_msg *msgs[ANSWERED];
  send_requests(f, c, msgs);
  int fds = open_fds();
  crash_peer(&g_crash);
  expect_answered(f, msgs);
  /* The crashed connection leaves the pool, and its socket is closed (as
   * is the peer's end, by the crash). */
  assert_true(tp_run_until(f->loop, pool_empty, f, TF_WAIT));
  assert_int_equal(open_fds(), fds - 2);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_reset_found_by_write, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reset_found_by_read, setup, teardown),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
