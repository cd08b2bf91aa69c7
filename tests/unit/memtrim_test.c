/* Unit tests for lib/wisp_memtrim: when a worker gives memory back after a
 * burst (calm ticks, a trickle after a burst, connections let go), that it
 * does so once per calm spell and never under steady load, and that a
 * give-back empties this thread's slab freelists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/wisp_memtrim.h"
#include "lib/wisp_slab.h"
#include "tests/unit/test_util.h"

/* Ticks with |per_tick| more activity each and |conns| live connections:
 * how many of them were due. */
static int ticks(wisp_memtrim *m, uint64_t *activity, int n, uint64_t per_tick, size_t conns) {
  int due = 0;
  for (int i = 0; i < n; i++) {
    *activity += per_tick;
    due += wisp_memtrim_due(m, *activity, conns);
  }
  return due;
}

static void test_nothing_happened_nothing_due(void **state) {
  (void)state;
  wisp_memtrim m = {0};
  uint64_t a = 0;
  assert_int_equal(ticks(&m, &a, 10, 0, 3), 0);
}

/* What was done before the first tick counts (a warm-up shorter than one). */
static void test_activity_before_the_first_tick(void **state) {
  (void)state;
  wisp_memtrim m = {0};
  assert_false(wisp_memtrim_due(&m, 2000, 10));
  assert_true(wisp_memtrim_due(&m, 2000, 10));
}

static void test_steady_load_is_never_due(void **state) {
  (void)state;
  wisp_memtrim m = {0};
  uint64_t a = 0;
  assert_int_equal(ticks(&m, &a, 60, 20000, 100), 0);
  /* Load that varies within a factor of a few is still load. */
  for (int i = 0; i < 30; i++) assert_false(wisp_memtrim_due(&m, a += (i % 2 ? 20000 : 5000), 100));
}

static void test_once_per_calm_spell(void **state) {
  (void)state;
  wisp_memtrim m = {0};
  uint64_t a = 0;
  assert_int_equal(ticks(&m, &a, 5, 30000, 2000), 0); /* the burst */
  assert_true(wisp_memtrim_due(&m, a, 2000));         /* the first tick without a request */
  assert_int_equal(ticks(&m, &a, 10, 0, 2000), 0);    /* then nothing more to give back */
  assert_int_equal(ticks(&m, &a, 2, 50, 2000), 0);    /* a few requests ... */
  assert_true(wisp_memtrim_due(&m, a, 2000));         /* ... then calm again: once more */
}

/* Never while requests come, however few (a give-back stalls the loop):
 * a trickle after a burst waits for its first calm second. */
static void test_trickle_after_a_burst(void **state) {
  (void)state;
  wisp_memtrim m = {0};
  uint64_t a = 0;
  assert_int_equal(ticks(&m, &a, 3, 40000, 500), 0);
  assert_int_equal(ticks(&m, &a, 20, 1, 20), 0); /* a request a second, 480 callers gone */
  assert_true(wisp_memtrim_due(&m, a, 20));
}

static void test_connections_let_go(void **state) {
  (void)state;
  wisp_memtrim m = {0};
  uint64_t a = 0;
  assert_int_equal(ticks(&m, &a, 3, 3000, 3000), 0); /* 3,000 callers come ... */
  assert_true(wisp_memtrim_due(&m, a, 3000));        /* ... go quiet (due: calm) ... */
  assert_int_equal(ticks(&m, &a, 5, 0, 3000), 0);    /* ... and are held idle */
  assert_int_equal(ticks(&m, &a, 1, 0, 1000), 0);    /* a third of them go: not far enough */
  assert_true(wisp_memtrim_due(&m, a, 10));          /* --idle-timeout took the rest, no request counted */
  assert_int_equal(ticks(&m, &a, 5, 0, 10), 0);
  /* A few connections coming and going are not worth a trim. */
  assert_int_equal(ticks(&m, &a, 1, 0, 40), 0);
  assert_int_equal(ticks(&m, &a, 1, 0, 0), 0);
}

/* What a give-back leaves on this thread's freelists (with caching on, as
 * outside ASan). */
static void test_run_empties_the_freelists(void **state) {
  (void)state;
  void *p[256];
  for (int i = 0; i < 256; i++) p[i] = wisp_slab_alloc((size_t)(i % 64) * 16 + 8);
  for (int i = 0; i < 256; i++) wisp_slab_free(p[i]);
  assert_true(wisp_slab_cached() > 0);
  wisp_memtrim_cost cost = wisp_memtrim_run();
  assert_true(cost.wall_us >= 0 && cost.cpu_us >= 0);
  assert_int_equal(wisp_slab_cached(), WISP_MEMTRIM_SLAB_KEEP);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_nothing_happened_nothing_due), cmocka_unit_test(test_activity_before_the_first_tick),
      cmocka_unit_test(test_steady_load_is_never_due),     cmocka_unit_test(test_once_per_calm_spell),
      cmocka_unit_test(test_trickle_after_a_burst),        cmocka_unit_test(test_connections_let_go),
      cmocka_unit_test(test_run_empties_the_freelists),
  };
  wisp_slab_set_cache(1); /* off by default under ASan: what is cached is what is tested */
  return cmocka_run_group_tests(tests, NULL, NULL);
}
