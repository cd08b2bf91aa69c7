/* In-process test of an HTTP/1.1 app (--app-protocol http1, through the
 * proxy's gateway, wisp_h1app) that answers an upload early (413 to a body
 * it will not read) and closes with the body unread, which resets the
 * connection (RST), just as the gateway writes it more of the body. The
 * write fails (ECONNRESET), but the answer is still in the socket, queued
 * ahead of the reset: the caller gets the 413. Before, it got 502 "the app
 * ... reset the connection while we sent the request".
 *
 * The reset is timed with the loop's before_flush: once the end of the
 * request reached the proxy's connection to the gateway, and before the
 * flush hands it on. libev runs a turn's events last-ready first, so the
 * gateway takes the request's end (ready after the reset) before it reads
 * the app's socket, and its write of the last chunk finds the reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/inproc/fixture.h"
#include "tests/unit/test_util.h"

#define ANSWER "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 10\r\nconnection: close\r\n\r\ntoo large\n"

typedef struct {
  tf_fixture *f;
  int lfd;        /* the app's listening socket, on the port the fixture's app had */
  int afd;        /* the gateway's connection to it */
  char got[4096]; /* what the app read */
  size_t got_len;
  void (*before_flush)(wisp_h2loop *lp);
  bool armed; /* reset once the request's end reached the gateway's connection */
  bool reset;
} h1_app;

static h1_app g_app;

/* The fixture's h2 app stops listening; an HTTP/1.1 one of the test's
 * takes its port (read by hand: it is not on the loop). */
static bool start_app(tf_fixture *f, void *arg) {
  h1_app *a = arg;
  tp_app_stop_listening(f->app);
  a->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(a->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->app->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a->lfd >= 0 && bind(a->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(a->lfd, 4) == 0;
}

static int setup(void **state) {
  memset(&g_app, 0, sizeof(g_app));
  g_app.afd = -1;
  static const char *const kArgs[] = {"--app-protocol", "http1"};
  static const tf_opts kOpts = {.args = kArgs, .nargs = 2, .prepare = start_app, .prepare_arg = &g_app};
  int rc = tf_setup_with(state, &kOpts);
  g_app.f = *state;
  return rc;
}

static int teardown(void **state) {
  if (g_app.afd >= 0) close(g_app.afd);
  close(g_app.lfd);
  return tf_teardown(state);
}

/* Accepts and reads what the gateway sent so far. */
static void app_read(h1_app *a) {
  if (a->afd < 0) a->afd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (a->afd < 0) return;
  ssize_t n = recv(a->afd, a->got + a->got_len, sizeof(a->got) - 1 - a->got_len, 0);
  if (n > 0) a->got_len += (size_t)n;
  a->got[a->got_len] = '\0';
}

static bool app_has_body(void *arg) {
  h1_app *a = arg;
  app_read(a);
  return strstr(a->got, "\r\n\r\n") && strstr(a->got, "first");
}

/* Whether the proxy's connection to the gateway holds a stream whose
 * caller ended its request. */
static bool request_end_at_gateway(tf_fixture *f) {
  WISP_LIST_FOREACH(it, &f->px.conns) {
    wisp_conn *c = WISP_LIST_ELEM(it, wisp_conn, link);
    if (!c->io.upstream || !c->h1app) continue;
    for (wisp_stream *s = c->streams; s; s = s->link[WISP_UP].next) {
      if (s->eof[WISP_DOWN]) return true;
    }
  }
  return false;
}

/* The app answers and closes with the body unread: an RST. */
static void app_answer_and_reset(h1_app *a) {
  assert_int_equal(send(a->afd, ANSWER, strlen(ANSWER), MSG_NOSIGNAL), (ssize_t)strlen(ANSWER));
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  assert_int_equal(setsockopt(a->afd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
  close(a->afd);
  a->afd = -1;
  a->reset = true;
}

static void reset_before_flush(wisp_h2loop *lp) {
  h1_app *a = &g_app;
  if (a->armed && request_end_at_gateway(a->f)) {
    a->armed = false;
    app_answer_and_reset(a);
  }
  a->before_flush(lp);
}

static void test_early_answer_then_reset(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_client(f, f->route, 44001);
  assert_non_null(c);
  /* No content-length: the gateway sends the body chunked, and its last
   * chunk when the caller ends it. */
  tp_msg *m = tp_client_request(c, "POST", "/upload", NULL, 0, "first", 5, false);
  assert_true(tp_run_until(f->loop, app_has_body, &g_app, TF_WAIT));
  g_app.before_flush = f->px.lp.before_flush;
  f->px.lp.before_flush = reset_before_flush;
  g_app.armed = true;
  tp_msg_end(c, m);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  f->px.lp.before_flush = g_app.before_flush;
  assert_true(g_app.reset);
  const char *status = tp_hdr_get(m, ":status");
  const char *err = tp_hdr_get(m, "x-wisp-error");
  if (!status || strcmp(status, "413") != 0)
    fail_msg("status %s (%s)", status ? status : "none", err ? err : "no x-wisp-error");
  assert_int_equal(m->body_len, 10);
  assert_memory_equal(m->body, "too large\n", 10);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_early_answer_then_reset, setup, teardown),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
