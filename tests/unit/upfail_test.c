/* Unit tests for proxy/dataplane/wisp_upfail: the recent upstream failures GET
 * /status lists (and wispctl check --proxy reads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy/dataplane/wisp_upfail.h"
#include "tests/unit/test_util.h"

static void test_note_and_repeat(void **state) {
  wisp_upfail_table t = {0};
  wisp_upfail_note(&t, "127.0.0.1:15006", "spiffe://shop.local/ns/shop/sa/orders", false, "Connection refused", 100);
  wisp_upfail_note(&t, "127.0.0.1:15006", "spiffe://shop.local/ns/shop/sa/orders", false, "handshake failed", 105);
  assert_int_equal(t.n, 1);
  assert_int_equal(t.v[0].count, 2);
  assert_int_equal(t.v[0].first_unix, 100);
  assert_int_equal(t.v[0].last_unix, 105);
  assert_string_equal(t.v[0].reason, "handshake failed"); /* the latest reason */
  assert_false(t.v[0].app);
  wisp_upfail_note(&t, "127.0.0.1:8080", NULL, true, NULL, 106);
  assert_int_equal(t.n, 2);
  assert_string_equal(t.v[1].expect_id, "");
  assert_string_equal(t.v[1].reason, "unknown");
  assert_true(t.v[1].app);
}

static void test_clear_on_success(void **state) {
  wisp_upfail_table t = {0};
  wisp_upfail_note(&t, "a:1", NULL, false, "x", 1);
  wisp_upfail_note(&t, "b:1", NULL, false, "y", 2);
  wisp_upfail_note(&t, "c:1", NULL, false, "z", 3);
  wisp_upfail_clear(&t, "b:1");
  assert_int_equal(t.n, 2);
  assert_string_equal(t.v[0].upstream, "a:1");
  assert_string_equal(t.v[1].upstream, "c:1");
  wisp_upfail_clear(&t, "nothing:1"); /* not listed: no change */
  assert_int_equal(t.n, 2);
  wisp_upfail_note(&t, "b:1", NULL, false, "again", 4);
  assert_int_equal(t.v[2].count, 1); /* counted afresh since it last answered */
}

static void test_bounded(void **state) {
  wisp_upfail_table t = {0};
  char name[32];
  for (int i = 0; i < 3 * WISP_UPFAIL_MAX; i++) {
    snprintf(name, sizeof(name), "10.0.0.%d:15006", i);
    wisp_upfail_note(&t, name, NULL, false, "refused", 1000 + i);
  }
  assert_int_equal(t.n, WISP_UPFAIL_MAX);
  /* The newest are kept: the oldest made room each time. */
  for (size_t i = 0; i < t.n; i++) assert_true(t.v[i].last_unix >= 1000 + 2 * WISP_UPFAIL_MAX);
  char long_reason[2 * WISP_UPFAIL_REASON_MAX];
  memset(long_reason, 'r', sizeof(long_reason) - 1);
  long_reason[sizeof(long_reason) - 1] = 0;
  wisp_upfail_note(&t, "10.0.0.99:1", NULL, false, long_reason, 5000);
  assert_int_equal(t.n, WISP_UPFAIL_MAX);
  bool found = false;
  for (size_t i = 0; i < t.n; i++) {
    if (strcmp(t.v[i].upstream, "10.0.0.99:1") == 0) {
      found = true;
      assert_int_equal(strlen(t.v[i].reason), WISP_UPFAIL_REASON_MAX - 1); /* truncated, terminated */
    }
  }
  assert_true(found);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_note_and_repeat),
      cmocka_unit_test(test_clear_on_success),
      cmocka_unit_test(test_bounded),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
