/* Unit tests for proxy/wisp_events: refusals by reason and caller host
 * (the port dropped), the cap per family with "overflow" labels keeping
 * the reason, denials by policy, rule and decision, upstream failures, and
 * label values escaped as the text format wants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lib/wisp_policy.h"
#include "proxy/wisp_events.h"
#include "tests/unit/test_util.h"

#define ROGUE "spiffe://shop.local/ns/shop/sa/frontend"
#define ME "spiffe://shop.local/ns/shop/sa/orders"

static char *render(const wisp_events *e) {
  static char text[1 << 20];
  wisp_json_writer w;
  wisp_json_writer_init(&w, sizeof(text) - 1, WISP_JSON_ESCAPE_U);
  wisp_events_render(&w, e, ME);
  assert_int_equal(w.err, WISP_OK);
  size_t n = wisp_buf_len(&w.out);
  memcpy(text, wisp_buf_rptr(&w.out), n);
  text[n] = 0;
  wisp_json_writer_cleanup(&w);
  return text;
}

static void test_refused(void **state) {
  (void)state;
  wisp_events *e = wisp_events_new(2);
  wisp_events_refused(e, true, "unknown_ca", "127.0.0.1:40000", ROGUE);
  wisp_events_refused(e, true, "unknown_ca", "127.0.0.1:40001", ROGUE); /* same caller, other port */
  wisp_events_refused(e, true, "expired", "[::1]:5", NULL);
  wisp_events_refused(e, true, "expired", "10.0.0.9:5", NULL); /* a third series: over the cap of 2 */
  wisp_events_refused(e, true, "unknown_ca", "10.0.0.8:5", "x\"y\\z"); /* over the cap too */
  assert_int_equal(wisp_events_overflowed(e), 2);
  const char *t = render(e);
  assert_non_null(strstr(t, "wisp_connection_refusals_total{direction=\"inbound\",reason=\"unknown_ca\","
                            "source_address=\"127.0.0.1\",source_principal=\"" ROGUE "\","
                            "destination_workload=\"orders\",destination_workload_namespace=\"shop\","
                            "destination_principal=\"" ME "\"} 2\n"));
  assert_non_null(strstr(t, "reason=\"expired\",source_address=\"::1\",source_principal=\"unknown\""));
  assert_null(strstr(t, "10.0.0.9"));
  assert_non_null(strstr(t, "reason=\"expired\",source_address=\"overflow\",source_principal=\"overflow\""));
  assert_non_null(strstr(t, "reason=\"unknown_ca\",source_address=\"overflow\""));
  assert_non_null(strstr(t, "wisp_events_overflowed_total 2\n"));
  wisp_events_free(e);
}

static void test_denied_and_upstream(void **state) {
  (void)state;
  wisp_events *e = wisp_events_new(8);
  wisp_events_denied(e, true, "shop/no-admin", 1, WISP_POLICY_REASON_DENY_RULE, ROGUE);
  wisp_events_denied(e, true, "shop/no-admin", 1, WISP_POLICY_REASON_DENY_RULE, ROGUE);
  wisp_events_denied(e, true, NULL, -1, WISP_POLICY_REASON_NO_ALLOW_MATCH, NULL);
  wisp_events_denied(e, true, NULL, -1, NULL, ROGUE);
  wisp_events_upstream_failed(e, "wrong_identity", "127.0.0.1:9", "spiffe://shop.local/ns/a/sa/b", ROGUE);
  wisp_events_upstream_failed(e, "unknown_ca", "127.0.0.1:9", NULL, "s\nn");
  const char *t = render(e);
  assert_non_null(strstr(t, "wisp_policy_denials_total{direction=\"inbound\",decision=\"deny_rule\","
                            "policy=\"shop/no-admin\",rule=\"1\",source_principal=\"" ROGUE "\""));
  assert_non_null(strstr(t, "decision=\"deny_rule\",policy=\"shop/no-admin\",rule=\"1\",source_principal=\"" ROGUE
                            "\",destination_workload=\"orders\",destination_workload_namespace=\"shop\","
                            "destination_principal=\"" ME "\"} 2\n"));
  assert_non_null(strstr(t, "decision=\"no_allow_match\",policy=\"none\",rule=\"none\",source_principal=\"unknown\""));
  assert_non_null(strstr(t, "decision=\"invalid_request\""));
  assert_non_null(strstr(t, "wisp_upstream_verification_failures_total{direction=\"outbound\",reason=\"wrong_identity\","
                            "source_workload=\"orders\",source_workload_namespace=\"shop\",source_principal=\"" ME
                            "\",destination_address=\"127.0.0.1:9\",destination_principal=\"spiffe://shop.local/ns/a/"
                            "sa/b\",presented_principal=\"" ROGUE "\"} 1\n"));
  assert_non_null(strstr(t, "destination_principal=\"any\",presented_principal=\"s\\nn\""));
  assert_int_equal(wisp_events_overflowed(e), 0);
  wisp_events_free(e);
}

/* Tables grow as series come: 300 distinct callers under a cap of 300
 * each keep their count, found again after every growth; the 301st
 * overflows. */
static void test_growth(void **state) {
  (void)state;
  wisp_events *e = wisp_events_new(300);
  char addr[32];
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 300; i++) {
      snprintf(addr, sizeof(addr), "10.0.%d.%d:1", i / 256, i % 256);
      wisp_events_refused(e, true, "expired", addr, NULL);
    }
  }
  assert_int_equal(wisp_events_overflowed(e), 0);
  wisp_events_refused(e, true, "expired", "10.9.9.9:1", NULL);
  assert_int_equal(wisp_events_overflowed(e), 1);
  const char *t = render(e);
  assert_non_null(strstr(t, "source_address=\"10.0.0.0\",source_principal=\"unknown\","));
  assert_non_null(strstr(t, "source_address=\"10.0.1.43\","));
  assert_null(strstr(t, "10.9.9.9"));
  size_t twos = 0;
  for (const char *q = t; (q = strstr(q, "} 2\n")) != NULL; q++) twos++;
  assert_int_equal(twos, 300);
  wisp_events_free(e);
}

static void test_escape(void **state) {
  (void)state;
  wisp_events *e = wisp_events_new(4);
  wisp_events_refused(e, true, "unknown_ca", "127.0.0.1:1", "a\"b\\c");
  const char *t = render(e);
  assert_non_null(strstr(t, "source_principal=\"a\\\"b\\\\c\""));
  assert_string_equal(wisp_events_decision_name("something else"), "other");
  wisp_events_free(e);
  wisp_events_refused(NULL, true, "x", "y", "z"); /* NULL: no-op */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_denied_and_upstream),
      cmocka_unit_test(test_growth),
      cmocka_unit_test(test_escape),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
