/* Unit tests for proxy/dataplane/wisp_trace: which trace ID a request's log line
 * carries, from W3C traceparent and B3 headers, and what is not one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "proxy/dataplane/wisp_trace.h"
#include "tests/unit/test_util.h"

#define T32 "4bf92f3577b34da6a3ce929d0e0e4736"
#define S16 "00f067aa0ba902b7"
#define T16 "a3ce929d0e0e4736"

static void test_table(void **state) {
  (void)state;
  static const struct {
    const char *traceparent, *b3, *x_b3, *want; /* want NULL: no trace ID */
  } kCases[] = {
      {"00-" T32 "-" S16 "-01", NULL, NULL, T32},
      {"00-" T32 "-" S16 "-00", NULL, NULL, T32},        /* not sampled: still the trace */
      {"01-" T32 "-" S16 "-01-future", NULL, NULL, T32}, /* a later version may add fields */
      {"00-" T32 "-" S16 "-01-extra", NULL, NULL, NULL}, /* version 00 has exactly four */
      {"ff-" T32 "-" S16 "-01", NULL, NULL, NULL},       /* version ff is invalid */
      {"00-00000000000000000000000000000000-" S16 "-01", NULL, NULL, NULL},
      {"00-" T32 "-0000000000000000-01", NULL, NULL, NULL},
      {"00-4BF92F3577B34DA6A3CE929D0E0E4736-" S16 "-01", NULL, NULL, NULL}, /* uppercase */
      {"00-" T32 "-" S16, NULL, NULL, NULL},                                /* no flags */
      {"00-" T32 "-" S16 "-0g", NULL, NULL, NULL},
      {"", NULL, NULL, NULL},
      {"garbage", NULL, T16, T16},         /* a bad traceparent falls back to B3 */
      {NULL, T32 "-" S16 "-1", NULL, T32}, /* B3 single header */
      {NULL, T16 "-" S16, NULL, T16},
      {NULL, T16 "-" S16 "-1-" S16, NULL, T16},
      {NULL, "1", NULL, NULL}, /* sampling only */
      {NULL, T16 "-" S16 "x", NULL, NULL},
      {NULL, T16, NULL, NULL}, /* no span ID */
      {NULL, NULL, T32, T32},
      {NULL, NULL, T16, T16},
      {NULL, NULL, "0000000000000000", NULL},
      {NULL, NULL, T16 "0", NULL},                      /* 17 digits */
      {NULL, NULL, "a3ce929d0e0e473", NULL},            /* 15 digits */
      {"00-" T32 "-" S16 "-01", T16 "-" S16, T16, T32}, /* traceparent first */
      {NULL, NULL, NULL, NULL},
  };
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); i++) {
    char out[WISP_TRACE_ID_MAX + 1] = "unset";
    bool got = wisp_trace_id(kCases[i].traceparent, kCases[i].b3, kCases[i].x_b3, out);
    if (kCases[i].want) {
      assert_true(got);
      assert_string_equal(out, kCases[i].want);
    } else {
      if (got) fail_msg("case %zu: got %s, want none", i, out);
      assert_string_equal(out, "unset");
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
