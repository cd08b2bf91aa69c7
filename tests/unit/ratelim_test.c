/* Unit tests for lib/wisp_ratelim: the token bucket that decides when a
 * caller has reset too many streams (rapid reset, CVE-2023-44487). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/wisp_ratelim.h"
#include "tests/unit/test_util.h"

/* Counts how many of |n| events at the same instant |now| pass. */
static int take_n(wisp_ratelim *r, int n, double now) {
  int passed = 0;
  for (int i = 0; i < n; i++) passed += wisp_ratelim_take(r, now);
  return passed;
}

static void test_burst_then_refused(void **state) {
  (void)state;
  wisp_ratelim r;
  wisp_ratelim_init(&r, 1000, 100, 50.0);
  assert_int_equal(take_n(&r, 1000, 50.0), 1000);
  assert_false(wisp_ratelim_take(&r, 50.0));
  assert_false(wisp_ratelim_take(&r, 50.0)); /* a refusal takes nothing */
}

static void test_refills_at_rate(void **state) {
  (void)state;
  wisp_ratelim r;
  wisp_ratelim_init(&r, 10, 2, 0.0);
  assert_int_equal(take_n(&r, 10, 0.0), 10);
  assert_false(wisp_ratelim_take(&r, 0.4)); /* 0.8 token: not yet */
  assert_true(wisp_ratelim_take(&r, 0.5));  /* 1 token */
  assert_false(wisp_ratelim_take(&r, 0.5));
  assert_int_equal(take_n(&r, 10, 2.5), 4); /* 2 s later: 4 more */
}

static void test_refill_capped_at_burst(void **state) {
  (void)state;
  wisp_ratelim r;
  wisp_ratelim_init(&r, 5, 100, 0.0);
  assert_int_equal(take_n(&r, 5, 0.0), 5);
  /* An hour idle gives back the burst, not 360,000 tokens. */
  assert_int_equal(take_n(&r, 1000, 3600.0), 5);
}

static void test_sustained_rate_passes(void **state) {
  (void)state;
  /* A caller that stays at the rate is never refused, however long. */
  wisp_ratelim r;
  wisp_ratelim_init(&r, 10, 100, 0.0);
  for (int i = 1; i <= 100000; i++) assert_true(wisp_ratelim_take(&r, i * 0.01));
}

static void test_flood_passes_only_burst_plus_rate(void **state) {
  (void)state;
  /* 20,000 resets per second for 3 s against burst 1000, 100/s: what passes
   * is the burst plus what the rate gave back, about 1300. */
  wisp_ratelim r;
  wisp_ratelim_init(&r, 1000, 100, 0.0);
  int passed = 0;
  for (int i = 0; i < 60000; i++) passed += wisp_ratelim_take(&r, i / 20000.0);
  assert_in_range(passed, 1295, 1301);
}

static void test_time_going_back_refills_nothing(void **state) {
  (void)state;
  wisp_ratelim r;
  wisp_ratelim_init(&r, 2, 1, 100.0);
  assert_int_equal(take_n(&r, 2, 100.0), 2);
  assert_false(wisp_ratelim_take(&r, 50.0));
  assert_false(wisp_ratelim_take(&r, 100.5));
  assert_true(wisp_ratelim_take(&r, 101.0));
}

static void test_zero_rate_is_a_fixed_allowance(void **state) {
  (void)state;
  wisp_ratelim r;
  wisp_ratelim_init(&r, 3, 0, 0.0);
  assert_int_equal(take_n(&r, 10, 1e6), 3);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_burst_then_refused),
      cmocka_unit_test(test_refills_at_rate),
      cmocka_unit_test(test_refill_capped_at_burst),
      cmocka_unit_test(test_sustained_rate_passes),
      cmocka_unit_test(test_flood_passes_only_burst_plus_rate),
      cmocka_unit_test(test_time_going_back_refills_nothing),
      cmocka_unit_test(test_zero_rate_is_a_fixed_allowance),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
