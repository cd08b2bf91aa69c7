/* wisp_time: durations as users type them. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lib/wisp_time.h"

typedef struct {
  const char *in;
  wisp_err want;
  double seconds;
} case_t;

static const case_t kCases[] = {
    {"90s", WISP_OK, 90},       {"5m", WISP_OK, 300},       {"24h", WISP_OK, 86400},     {"7d", WISP_OK, 604800},
    {"1h30m", WISP_OK, 5400},   {"1.5h", WISP_OK, 5400},    {"500ms", WISP_OK, 0.5},     {"30", WISP_OK, 30},
    {"1m30s", WISP_OK, 90},     {"", WISP_ERR_PARSE, 0},    {"0s", WISP_ERR_PARSE, 0},   {"-5s", WISP_ERR_PARSE, 0},
    {"5x", WISP_ERR_PARSE, 0},  {"s", WISP_ERR_PARSE, 0},   {"1e3s", WISP_ERR_PARSE, 0}, {"4000d", WISP_ERR_PARSE, 0},
    {"1.s", WISP_ERR_PARSE, 0}, {"5 s", WISP_ERR_PARSE, 0},
};

static void test_seconds(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); i++) {
    double got = -1;
    wisp_err rc = wisp_duration_parse_seconds(&got, kCases[i].in);
    if (rc != kCases[i].want) fail_msg("'%s': rc %d, want %d", kCases[i].in, rc, kCases[i].want);
    if (rc == WISP_OK && got != kCases[i].seconds) fail_msg("'%s': %g, want %g", kCases[i].in, got, kCases[i].seconds);
  }
}

static void test_whole_seconds_round_up(void **state) {
  (void)state;
  int64_t s = 0;
  assert_int_equal(wisp_duration_parse(&s, "500ms"), WISP_OK);
  assert_int_equal(s, 1);
  assert_int_equal(wisp_duration_parse(&s, "24h"), WISP_OK);
  assert_int_equal(s, 86400);
  assert_int_equal(wisp_duration_parse(&s, "nope"), WISP_ERR_PARSE);
}

/* A timed wait on a condition from wisp_time_cond_init counts on the
 * monotonic clock: it waits its time (never less: the lower bound cannot
 * flake on a loaded machine). On a condition left on the wall clock the
 * same deadline lies decades in the past and the wait ends at once, which
 * is what a wall-clock condition does with a monotonic deadline. */
static void test_cond_wait_monotonic(void **state) {
  (void)state;
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cv;
  wisp_time_cond_init(&cv);
  pthread_mutex_lock(&mu);
  double start = wisp_time_monotonic();
  int rc;
  do {
    rc = wisp_time_cond_wait(&cv, &mu, 0.2 - (wisp_time_monotonic() - start)); /* spurious wakeups wait on */
  } while (rc == 0);
  assert_int_equal(rc, ETIMEDOUT);
  assert_true(wisp_time_monotonic() - start >= 0.2);
  pthread_mutex_unlock(&mu);
  pthread_cond_destroy(&cv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seconds),
      cmocka_unit_test(test_whole_seconds_round_up),
      cmocka_unit_test(test_cond_wait_monotonic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
