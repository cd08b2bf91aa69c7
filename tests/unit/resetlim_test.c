/* Unit tests for lib/wisp_resetlim: premature stream resets per caller
 * (--max-resets; rapid reset and MadeYouReset). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "lib/wisp_resetlim.h"
#include "tests/unit/test_util.h"

static wisp_connlimit_key key_v4(const char *ip) {
  wisp_addr a;
  memset(&a, 0, sizeof(a));
  struct sockaddr_in *sin = (struct sockaddr_in *)&a.sa;
  sin->sin_family = AF_INET;
  inet_pton(AF_INET, ip, &sin->sin_addr);
  a.len = sizeof(*sin);
  wisp_connlimit_key k;
  assert_true(wisp_connlimit_key_addr(&k, &a, 128));
  return k;
}

/* |n| streams reset at |now|: how many were within the limit. */
static int open_and_reset(wisp_resetlim_caller *c, int n, double now) {
  int within = 0;
  for (int i = 0; i < n; i++) within += wisp_resetlim_reset(c, now);
  return within;
}

static void test_budget_then_over(void **state) {
  (void)state;
  wisp_resetlim *rl = wisp_resetlim_new(100, 10);
  wisp_connlimit_key k = key_v4("10.0.0.1");
  wisp_resetlim_caller *c = wisp_resetlim_hold(rl, &k, 0);
  assert_int_equal(wisp_resetlim_left(c, 0), UINT32_MAX); /* no resets yet */
  assert_int_equal(open_and_reset(c, 99, 0), 99);
  assert_int_equal(wisp_resetlim_left(c, 0), 1);
  assert_int_equal(open_and_reset(c, 1, 0), 1);
  assert_int_equal(wisp_resetlim_left(c, 0), 0);
  assert_false(wisp_resetlim_reset(c, 0));
  assert_true(wisp_resetlim_wait(c, 0) > 0);
  wisp_resetlim_release(c, 0);
  wisp_resetlim_free(rl);
}

/* Reconnecting (a new connection holding the caller's record) does not
 * bring a new budget: the record with a debt is kept. */
static void test_reconnect_keeps_debt(void **state) {
  (void)state;
  wisp_resetlim *rl = wisp_resetlim_new(10, 10);
  wisp_connlimit_key k = key_v4("10.0.0.2");
  wisp_resetlim_caller *c = wisp_resetlim_hold(rl, &k, 0);
  assert_int_equal(open_and_reset(c, 20, 0), 10);
  wisp_resetlim_release(c, 0);
  assert_int_equal(wisp_resetlim_callers(rl), 1);
  c = wisp_resetlim_hold(rl, &k, 0.1);
  assert_int_equal(open_and_reset(c, 5, 0.1), 0);
  wisp_resetlim_release(c, 0.1);
  /* Another caller has its own budget. */
  wisp_connlimit_key other = key_v4("10.0.0.3");
  wisp_resetlim_caller *o = wisp_resetlim_hold(rl, &other, 0.1);
  assert_int_equal(open_and_reset(o, 10, 0.1), 10);
  wisp_resetlim_release(o, 0.1);
  wisp_resetlim_free(rl);
}

/* A caller that completes many streams and cancels a few per cent of them
 * is never over, however far past the budget its cancels go. */
static void test_low_ratio_never_over(void **state) {
  (void)state;
  wisp_resetlim *rl = wisp_resetlim_new(10, 10);
  wisp_connlimit_key k = key_v4("10.0.0.4");
  wisp_resetlim_caller *c = wisp_resetlim_hold(rl, &k, 0);
  for (int i = 0; i < 10000; i++) {
    double now = i * 0.001;
    if (i % 20 == 0) {
      assert_true(wisp_resetlim_reset(c, now)); /* 5%: 500 resets in 10 s */
    } else {
      wisp_resetlim_completed(c, now);
    }
  }
  assert_int_equal(wisp_resetlim_left(c, 10), UINT32_MAX);
  wisp_resetlim_release(c, 10);
  wisp_resetlim_free(rl);
}

/* Spent budget comes back at max_resets per window; a reset over the limit
 * is a debt paid first. */
static void test_refills_at_rate(void **state) {
  (void)state;
  wisp_resetlim *rl = wisp_resetlim_new(10, 10); /* 1 per second */
  wisp_connlimit_key k = key_v4("10.0.0.5");
  wisp_resetlim_caller *c = wisp_resetlim_hold(rl, &k, 0);
  assert_int_equal(open_and_reset(c, 10, 0), 10);
  assert_int_equal(open_and_reset(c, 1, 0.5), 0); /* and 1 of debt */
  assert_true(wisp_resetlim_wait(c, 0.5) > 1.0);
  assert_int_equal(wisp_resetlim_left(c, 1.9), 0);
  assert_int_equal(wisp_resetlim_left(c, 2.6), 1);
  assert_int_equal(open_and_reset(c, 1, 2.6), 1);
  assert_int_equal(wisp_resetlim_wait(c, 100), 0);
  wisp_resetlim_release(c, 100);
  wisp_resetlim_free(rl);
}

/* The debt is bounded: a flood of resets over the limit holds the caller
 * back one window at most. */
static void test_debt_bounded(void **state) {
  (void)state;
  wisp_resetlim *rl = wisp_resetlim_new(100, 10);
  wisp_connlimit_key k = key_v4("10.0.0.6");
  wisp_resetlim_caller *c = wisp_resetlim_hold(rl, &k, 0);
  assert_int_equal(open_and_reset(c, 100000, 0), 100);
  assert_true(wisp_resetlim_wait(c, 0) <= 10.0);
  assert_true(wisp_resetlim_wait(c, 0) > 9.0);
  wisp_resetlim_release(c, 0);
  wisp_resetlim_free(rl);
}

/* Unheld records with nothing left to remember are dropped; records with a
 * debt are kept, but never more than WISP_RESETLIM_IDLE_MAX. */
static void test_records_bounded(void **state) {
  (void)state;
  wisp_resetlim *rl = wisp_resetlim_new(1, 10);
  char ip[32];
  for (int i = 0; i < WISP_RESETLIM_IDLE_MAX + 500; i++) {
    snprintf(ip, sizeof(ip), "10.1.%d.%d", i / 250, i % 250);
    wisp_connlimit_key k = key_v4(ip);
    wisp_resetlim_caller *c = wisp_resetlim_hold(rl, &k, 0);
    open_and_reset(c, 2, 0);
    wisp_resetlim_release(c, 0);
  }
  assert_int_equal(wisp_resetlim_callers(rl), WISP_RESETLIM_IDLE_MAX);
  /* Later every debt is paid: holding and releasing sweeps them away. */
  for (int i = 0; i < WISP_RESETLIM_IDLE_MAX; i++) {
    wisp_connlimit_key k = key_v4("10.9.9.9");
    wisp_resetlim_release(wisp_resetlim_hold(rl, &k, 1000), 1000);
  }
  assert_true(wisp_resetlim_callers(rl) <= 1);
  wisp_resetlim_free(rl);
}

/* Two connections of one caller share one record. */
static void test_connections_share(void **state) {
  (void)state;
  wisp_resetlim *rl = wisp_resetlim_new(10, 10);
  wisp_connlimit_key k = key_v4("10.0.0.7");
  wisp_resetlim_caller *a = wisp_resetlim_hold(rl, &k, 0);
  wisp_resetlim_caller *b = wisp_resetlim_hold(rl, &k, 0);
  assert_ptr_equal(a, b);
  assert_int_equal(open_and_reset(a, 10, 0), 10);
  assert_int_equal(open_and_reset(b, 1, 0), 0);
  wisp_resetlim_release(a, 0);
  wisp_resetlim_release(b, 0);
  wisp_resetlim_free(rl);
}

/* A source marked a peer sidecar stays one for every connection of it, and
 * another source is not. */
static void test_shared_is_per_source(void **state) {
  (void)state;
  wisp_resetlim *rl = wisp_resetlim_new(10, 10);
  wisp_connlimit_key k = key_v4("10.0.0.8"), other = key_v4("10.0.0.9");
  wisp_resetlim_caller *a = wisp_resetlim_hold(rl, &k, 0);
  wisp_resetlim_caller *o = wisp_resetlim_hold(rl, &other, 0);
  assert_false(wisp_resetlim_shared(a));
  wisp_resetlim_mark_shared(a);
  wisp_resetlim_caller *b = wisp_resetlim_hold(rl, &k, 1); /* its next connection */
  assert_true(wisp_resetlim_shared(b));
  assert_false(wisp_resetlim_shared(o));
  wisp_resetlim_release(a, 1);
  wisp_resetlim_release(b, 1);
  wisp_resetlim_release(o, 1);
  wisp_resetlim_free(rl);
}

/* Upstream streams of untrusted connections are counted per source, over
 * its connections, never below 0; with no budget left, one probe at a
 * time, at most one per probe interval, and a probe held longer than
 * WISP_RESETLIM_PROBE_HOLD no longer counts as the one. */
static void test_untrusted_room(void **state) {
  (void)state;
  wisp_resetlim *rl = wisp_resetlim_new(10, 10);
  wisp_connlimit_key k = key_v4("10.0.0.8");
  wisp_resetlim_caller *a = wisp_resetlim_hold(rl, &k, 0);
  wisp_resetlim_caller *b = wisp_resetlim_hold(rl, &k, 0);      /* another connection of it */
  assert_int_equal(UINT32_MAX, wisp_resetlim_room(a, 0, 0.05)); /* nothing reset yet */
  open_and_reset(a, 4, 0);
  assert_int_equal(6, wisp_resetlim_room(a, 0, 0.05));
  wisp_resetlim_untrusted_add(a, 1, 0);
  wisp_resetlim_untrusted_add(b, 1, 0);
  assert_int_equal(2, wisp_resetlim_untrusted(a));
  assert_int_equal(4, wisp_resetlim_room(b, 0, 0.05));
  open_and_reset(a, 20, 0); /* spent, and a debt */
  assert_int_equal(0, wisp_resetlim_room(a, 0, 0.05));
  wisp_resetlim_untrusted_add(a, -1, 0);
  wisp_resetlim_untrusted_add(b, -1, 0);
  wisp_resetlim_untrusted_add(b, -1, 0);
  assert_int_equal(0, wisp_resetlim_untrusted(b));
  assert_int_equal(0, wisp_resetlim_room(a, 0.01, 0.05)); /* the last started 10 ms ago */
  assert_true(wisp_resetlim_probe_wait(a, 0.01, 0.05) > 0.03);
  assert_int_equal(1, wisp_resetlim_room(a, 0.05, 0.05)); /* a probe */
  wisp_resetlim_untrusted_add(a, 1, 0.05);
  assert_int_equal(0, wisp_resetlim_room(b, 0.2, 0.05)); /* one at a time */
  /* a probe held long keeps no other connection of its address waiting */
  assert_int_equal(0, wisp_resetlim_room(b, 0.05 + WISP_RESETLIM_PROBE_HOLD - 0.01, 0.05));
  assert_true(wisp_resetlim_probe_wait(b, 0.2, 0.05) > WISP_RESETLIM_PROBE_HOLD - 0.2);
  assert_int_equal(1, wisp_resetlim_room(b, 0.05 + WISP_RESETLIM_PROBE_HOLD, 0.05));
  wisp_resetlim_untrusted_add(b, 1, 0.05 + WISP_RESETLIM_PROBE_HOLD);
  assert_int_equal(0, wisp_resetlim_room(a, 0.1 + WISP_RESETLIM_PROBE_HOLD, 0.05)); /* the next after another */
  wisp_resetlim_untrusted_add(b, -1, 0.2 + WISP_RESETLIM_PROBE_HOLD);
  wisp_resetlim_untrusted_add(a, -1, 0.2);
  assert_int_equal(1, wisp_resetlim_room(b, 0.2 + WISP_RESETLIM_PROBE_HOLD, 0.05));
  wisp_resetlim_release(a, 1);
  wisp_resetlim_release(b, 1);
  wisp_resetlim_free(rl);
}

/* A peer sidecar's throttled connections of one source share
 * max(left, WISP_RESETLIM_THROTTLE_STREAMS) upstream streams, however many
 * connections hold them; a place freed by a premature reset stays taken
 * for the hold given, one freed by a completed stream does not. */
static void test_throttle_room(void **state) {
  (void)state;
  wisp_resetlim *rl = wisp_resetlim_new(10, 10);
  wisp_connlimit_key k = key_v4("10.0.0.8");
  wisp_resetlim_caller *a = wisp_resetlim_hold(rl, &k, 0);
  wisp_resetlim_caller *b = wisp_resetlim_hold(rl, &k, 0);         /* another connection of it */
  assert_int_equal(UINT32_MAX, wisp_resetlim_throttle_room(a, 0)); /* nothing reset yet */
  open_and_reset(a, 4, 0);
  assert_int_equal(6, wisp_resetlim_throttle_room(a, 0)); /* its budget left */
  open_and_reset(a, 20, 0);                               /* spent, and a debt */
  assert_int_equal(WISP_RESETLIM_THROTTLE_STREAMS, wisp_resetlim_throttle_room(b, 0));
  for (int i = 0; i < WISP_RESETLIM_THROTTLE_STREAMS; i++) wisp_resetlim_throttled_add(i % 2 ? a : b, 1);
  assert_int_equal(WISP_RESETLIM_THROTTLE_STREAMS, wisp_resetlim_throttled(a));
  assert_int_equal(0, wisp_resetlim_throttle_room(a, 0)); /* all taken, by both connections */
  assert_int_equal(0, wisp_resetlim_throttle_room(b, 0));
  /* None parked, all held: a stream's end wakes only its own target, so
   * the source's waiters on other targets recheck after the interval. */
  assert_true(wisp_resetlim_throttle_wait(a, 0, 0.1) == 0.1);
  wisp_resetlim_throttled_add(a, -1); /* completed: free at once */
  assert_int_equal(1, wisp_resetlim_throttle_room(b, 0));
  wisp_resetlim_throttled_add(b, -1); /* reset: parked for 0.1 s */
  wisp_resetlim_throttled_park(b, 1, 0.1);
  assert_int_equal(1, wisp_resetlim_throttle_room(a, 1));
  assert_true(wisp_resetlim_throttle_wait(a, 1.05, 0.1) > 0.04 && wisp_resetlim_throttle_wait(a, 1.05, 0.1) < 0.06);
  assert_int_equal(2, wisp_resetlim_throttle_room(a, 1.1));     /* its hold is over */
  assert_true(wisp_resetlim_throttle_wait(a, 1.1, 0.1) == 0.1); /* its hold is over; two still held */
  /* Resets park at most WISP_RESETLIM_THROTTLE_STREAMS places at a time. */
  for (int i = 0; i < 2 * WISP_RESETLIM_THROTTLE_STREAMS; i++) wisp_resetlim_throttled_park(a, 2, 0.1);
  wisp_resetlim_throttled_add(a, -1);
  wisp_resetlim_throttled_add(b, -1);
  assert_int_equal(0, wisp_resetlim_throttled(a));
  assert_int_equal(0, wisp_resetlim_throttle_room(a, 2.05));
  assert_int_equal(WISP_RESETLIM_THROTTLE_STREAMS, wisp_resetlim_throttle_room(a, 2.1));
  assert_true(wisp_resetlim_throttle_wait(a, 2.1, 0.1) == 0); /* none held, none parked */
  wisp_resetlim_throttled_add(a, -1);                         /* never below 0 */
  assert_int_equal(0, wisp_resetlim_throttled(a));
  wisp_resetlim_release(a, 3);
  wisp_resetlim_release(b, 3);
  wisp_resetlim_free(rl);
}

/* Request lines of wisp's own answers: |burst| per window per caller and
 * kind; the dropped are counted for the next line written. */
static void test_line_pass(void **state) {
  (void)state;
  wisp_resetlim *rl = wisp_resetlim_new(10, 10);
  wisp_connlimit_key k = key_v4("10.0.0.9"), other = key_v4("10.0.0.10");
  wisp_resetlim_caller *a = wisp_resetlim_hold(rl, &k, 100), *b = wisp_resetlim_hold(rl, &other, 100);
  uint64_t dropped = 99;
  for (int i = 0; i < 3; i++) {
    assert_true(wisp_resetlim_line_pass(a, WISP_RESETLIM_LINE_ANSWER, 100, 3, 1.0, &dropped));
    assert_int_equal(0, dropped);
  }
  for (int i = 0; i < 5; i++)
    assert_false(wisp_resetlim_line_pass(a, WISP_RESETLIM_LINE_ANSWER, 100.5, 3, 1.0, &dropped));
  /* Another caller, and the same caller's denials, have bounds of their own. */
  assert_true(wisp_resetlim_line_pass(b, WISP_RESETLIM_LINE_ANSWER, 100.5, 3, 1.0, &dropped));
  assert_true(wisp_resetlim_line_pass(a, WISP_RESETLIM_LINE_DENIAL, 100.5, 3, 1.0, &dropped));
  assert_int_equal(0, dropped);
  /* The next window: a line again, saying how many were dropped. */
  assert_true(wisp_resetlim_line_pass(a, WISP_RESETLIM_LINE_ANSWER, 101, 3, 1.0, &dropped));
  assert_int_equal(5, dropped);
  assert_true(wisp_resetlim_line_pass(a, WISP_RESETLIM_LINE_ANSWER, 101, 3, 1.0, &dropped));
  assert_int_equal(0, dropped);
  wisp_resetlim_release(a, 102);
  wisp_resetlim_release(b, 102);
  wisp_resetlim_free(rl);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_budget_then_over),
      cmocka_unit_test(test_reconnect_keeps_debt),
      cmocka_unit_test(test_low_ratio_never_over),
      cmocka_unit_test(test_refills_at_rate),
      cmocka_unit_test(test_debt_bounded),
      cmocka_unit_test(test_records_bounded),
      cmocka_unit_test(test_connections_share),
      cmocka_unit_test(test_shared_is_per_source),
      cmocka_unit_test(test_untrusted_room),
      cmocka_unit_test(test_throttle_room),
      cmocka_unit_test(test_line_pass),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
