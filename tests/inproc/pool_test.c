/* In-process tests of proxy/dataplane/wisp_pool: the inbound side's pool of
 * connections to an app that allows one stream per connection
 * (SETTINGS_MAX_CONCURRENT_STREAMS 1), with --pool-size 2. A request past
 * a connection's limit opens a second connection; past --pool-size it
 * waits in the queue (no third connection); a freed stream sends the
 * waiter, on the connection that freed it; one that waits past
 * --queue-timeout is answered 503, saying why. A waiter its caller resets,
 * or whose caller goes away, leaves the queue and never reaches the app.
 * Local callers sharing the route's pooled connection are told apart on
 * the inbound side by x-wisp-caller, and served in turn. Callers come through the
 * route, so every request crosses the proxy's own mTLS hop first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tests/inproc/fixture.h"
#include "tests/unit/test_util.h"

static int setup(void **state) {
  static const char *const kArgs[] = {"--pool-size", "2", "--queue-timeout", "1"};
  static const tf_opts kOpts = {.app_max_streams = 1, .app_hold = true, .args = kArgs, .nargs = 4};
  return tf_setup_with(state, &kOpts);
}

static bool one_waiting(void *arg) { return ((tf_fixture *)arg)->inbound->target->nwaiting == 1; }

static bool none_waiting(void *arg) { return ((tf_fixture *)arg)->inbound->target->nwaiting == 0; }

/* Sends a request from |c| and waits until it is the one in the queue. */
static tp_msg *queue_one(tf_fixture *f, tp_peer *c, const char *path) {
  tp_msg *m = tp_client_request(c, "GET", path, NULL, 0, NULL, 0, true);
  assert_true(tp_run_until(f->loop, one_waiting, f, TF_WAIT));
  return m;
}

/* Fills both app connections (one stream each) from client |c|. */
static void fill_pool(tf_fixture *f, tp_peer *c) {
  tf_count have1 = {f, 1}, conn0 = {f, 0}, have2 = {f, 2}, conn1 = {f, 1};
  tp_client_request(c, "GET", "/busy1", NULL, 0, NULL, 0, true);
  assert_true(tp_run_until(f->loop, tf_app_has, &have1, TF_WAIT));
  assert_true(tp_run_until(f->loop, tf_settings_known, &conn0, TF_WAIT));
  tp_client_request(c, "GET", "/busy2", NULL, 0, NULL, 0, true);
  assert_true(tp_run_until(f->loop, tf_app_has, &have2, TF_WAIT));
  assert_true(tp_run_until(f->loop, tf_settings_known, &conn1, TF_WAIT));
}

static void test_second_conn_then_queue(void **state) {
  tf_fixture *f = *state;
  tp_app *app = f->app;
  tp_peer *c = tf_client(f, f->route, 42001);
  /* The first request: one app connection. */
  tp_msg *r1 = tp_client_request(c, "GET", "/1", NULL, 0, NULL, 0, true);
  tf_count have1 = {f, 1}, conn0 = {f, 0};
  assert_true(tp_run_until(f->loop, tf_app_has, &have1, TF_WAIT));
  assert_true(tp_run_until(f->loop, tf_settings_known, &conn0, TF_WAIT));
  assert_int_equal(app->nconns, 1);
  /* Past that connection's one stream: a second connection. */
  tp_msg *r2 = tp_client_request(c, "GET", "/2", NULL, 0, NULL, 0, true);
  tf_count have2 = {f, 2}, conn1 = {f, 1};
  assert_true(tp_run_until(f->loop, tf_app_has, &have2, TF_WAIT));
  assert_true(tp_run_until(f->loop, tf_settings_known, &conn1, TF_WAIT));
  assert_int_equal(app->nconns, 2);
  assert_int_equal(app->reqs[0]->conn, 0);
  assert_int_equal(app->reqs[1]->conn, 1);
  /* Past --pool-size 2: the third waits in the queue, no third connection. */
  tp_msg *r3 = tp_client_request(c, "POST", "/3", NULL, 0, "body3", 5, true);
  assert_true(tp_run_until(f->loop, one_waiting, f, TF_WAIT));
  assert_int_equal(app->nreqs, 2);
  assert_int_equal(app->nconns, 2);
  assert_int_equal(f->inbound->target->nconns, 2);
  assert_false(r3->headers_done);
  /* A freed stream wakes it: it goes on the connection that freed it,
   * body and all. */
  tp_app_respond(app, app->reqs[0], 200, "one", 3);
  assert_true(tp_run_until(f->loop, tp_msg_closed, r1, TF_WAIT));
  assert_string_equal(tp_hdr_get(r1, ":status"), "200");
  tf_count have3 = {f, 3};
  assert_true(tp_run_until(f->loop, tf_app_has, &have3, TF_WAIT));
  assert_string_equal(tp_hdr_get(app->reqs[2], ":path"), "/3");
  assert_int_equal(app->reqs[2]->conn, 0);
  assert_int_equal(app->nconns, 2);
  assert_int_equal(f->inbound->target->nwaiting, 0);
  tp_app_respond(app, app->reqs[1], 200, "two", 3);
  tp_app_respond(app, app->reqs[2], 201, NULL, 0);
  assert_true(tp_run_until(f->loop, tp_msg_closed, r2, TF_WAIT));
  assert_true(tp_run_until(f->loop, tp_msg_closed, r3, TF_WAIT));
  assert_string_equal(tp_hdr_get(r2, ":status"), "200");
  assert_string_equal(tp_hdr_get(r3, ":status"), "201");
  assert_int_equal(app->reqs[2]->body_len, 5);
  assert_memory_equal(app->reqs[2]->body, "body3", 5);
}

/* Both connections busy: a request that waits past --queue-timeout is
 * answered 503, and says why (in x-wisp-error and the body); it never
 * reaches the app. */
static void test_queue_timeout_503(void **state) {
  tf_fixture *f = *state;
  tp_app *app = f->app;
  tp_peer *c = tf_client(f, f->route, 42002);
  fill_pool(f, c);
  tp_msg *late = queue_one(f, c, "/late");
  assert_true(tp_run_until(f->loop, tp_msg_closed, late, TF_WAIT));
  assert_int_equal(late->close_code, NGHTTP2_NO_ERROR);
  assert_string_equal(tp_hdr_get(late, ":status"), "503");
  const char *why = tp_hdr_get(late, "x-wisp-error");
  assert_non_null(why);
  assert_non_null(strstr(why, "no stream for this request within 1s"));
  assert_non_null(strstr(why, "all streams of its 2 connections are busy (--queue-timeout)"));
  assert_true(late->body_len > 0);
  assert_non_null(memmem(late->body, late->body_len, "(--queue-timeout)", 17));
  assert_int_equal(app->nreqs, 2);
  assert_int_equal(app->nconns, 2);
  assert_int_equal(f->inbound->target->nwaiting, 0);
}

/* A waiting request its caller resets leaves the queue and never reaches
 * the app, even once a stream is free (a rapid reset costs the app
 * nothing); the next one waiting gets that stream. */
static void test_reset_waiter_never_sent(void **state) {
  tf_fixture *f = *state;
  tp_app *app = f->app;
  tp_peer *c = tf_client(f, f->route, 42003);
  fill_pool(f, c);
  tp_msg *gone = queue_one(f, c, "/gone");
  tp_peer_rst(c, gone, NGHTTP2_CANCEL);
  assert_true(tp_run_until(f->loop, none_waiting, f, TF_WAIT));
  tp_msg *kept = queue_one(f, c, "/kept");
  tp_app_respond(app, app->reqs[0], 200, NULL, 0);
  tf_count have3 = {f, 3};
  assert_true(tp_run_until(f->loop, tf_app_has, &have3, TF_WAIT));
  assert_string_equal(tp_hdr_get(app->reqs[2], ":path"), "/kept");
  tp_app_respond(app, app->reqs[2], 200, NULL, 0);
  assert_true(tp_run_until(f->loop, tp_msg_closed, kept, TF_WAIT));
  assert_string_equal(tp_hdr_get(kept, ":status"), "200");
  for (int i = 0; i < app->nreqs; i++) assert_string_not_equal(tp_hdr_get(app->reqs[i], ":path"), "/gone");
}

static bool app_streams_closed(void *arg) {
  const tp_app *a = arg;
  for (int i = 0; i < a->nreqs; i++) {
    if (!a->reqs[i]->closed) return false;
  }
  return true;
}

/* The caller goes away with two requests at the app and one waiting: the
 * waiter leaves the queue, the app's two streams are reset. */
static void test_caller_gone_with_waiter(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 42004);
  fill_pool(f, c);
  queue_one(f, c, "/waiting");
  /* Its socket closes (the fixture forgets it). */
  f->clients[--f->nclients] = NULL;
  tp_peer_free(c);
  assert_true(tp_run_until(f->loop, none_waiting, f, TF_WAIT));
  assert_true(tp_run_until(f->loop, app_streams_closed, f->app, TF_WAIT));
  for (int i = 0; i < f->app->nreqs; i++) assert_int_equal(f->app->reqs[i]->close_code, NGHTTP2_CANCEL);
  assert_int_equal(f->app->nreqs, 2);
}

static bool n_waiting(void *arg) {
  const tf_count *c = arg;
  return c->f->inbound->target->nwaiting == c->n;
}

/* The route's pooled connection carries every local caller's requests to
 * the inbound side, each tagged x-wisp-caller by the caller connection it
 * came from; there they wait in one lane per caller, served in turn. A
 * caller with three requests waiting and one with one: the app gets a1,
 * b1, a2, a3 (not a1, a2, a3, b1 as a plain queue would). */
static void test_callers_served_in_turn(void **state) {
  tf_fixture *f = *state;
  tp_app *app = f->app;
  tp_peer *filler = tf_client(f, f->route, 42005);
  fill_pool(f, filler);
  tp_peer *a = tf_client(f, f->route, 42006), *b = tf_client(f, f->route, 42007);
  const char *const kA[] = {"/a1", "/a2", "/a3"};
  for (int i = 0; i < 3; i++) {
    tp_client_request(a, "GET", kA[i], NULL, 0, NULL, 0, true);
    tf_count waiting = {f, i + 1};
    assert_true(tp_run_until(f->loop, n_waiting, &waiting, TF_WAIT));
  }
  tp_client_request(b, "GET", "/b1", NULL, 0, NULL, 0, true);
  tf_count four = {f, 4};
  assert_true(tp_run_until(f->loop, n_waiting, &four, TF_WAIT));
  /* Free one stream at a time: each sends the next in turn. */
  const char *const kWant[] = {"/a1", "/b1", "/a2", "/a3"};
  for (int k = 0; k < 4; k++) {
    tp_app_respond(app, app->reqs[k], 200, NULL, 0);
    tf_count next = {f, 3 + k};
    assert_true(tp_run_until(f->loop, tf_app_has, &next, TF_WAIT));
    assert_string_equal(tp_hdr_get(app->reqs[2 + k], ":path"), kWant[k]);
  }
  assert_int_equal(app->nconns, 2);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_second_conn_then_queue, setup, tf_teardown),
      cmocka_unit_test_setup_teardown(test_queue_timeout_503, setup, tf_teardown),
      cmocka_unit_test_setup_teardown(test_reset_waiter_never_sent, setup, tf_teardown),
      cmocka_unit_test_setup_teardown(test_caller_gone_with_waiter, setup, tf_teardown),
      cmocka_unit_test_setup_teardown(test_callers_served_in_turn, setup, tf_teardown),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
