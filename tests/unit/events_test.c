/* Unit tests for proxy/dataplane/wisp_events: refusals by reason and caller host
 * (the port dropped), the cap per family (refusals: the least recently
 * counted series gives way; others: "overflow" labels keeping the reason), denials by policy, rule and decision, upstream failures, and
 * label values escaped as the text format wants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lib/wisp_policy.h"
#include "proxy/dataplane/wisp_events.h"
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

/* The cap of 2 reached, a new refusal takes the place of the series
 * counted least recently; its count moves to the overflow series of its
 * reason, so the sum stays. */
static void test_refused(void **state) {
  (void)state;
  wisp_events *e = wisp_events_new(2);
  wisp_events_refused(e, true, "unknown_ca", "127.0.0.1:40000", ROGUE);
  wisp_events_refused(e, true, "unknown_ca", "127.0.0.1:40001", ROGUE); /* same caller, other port */
  wisp_events_refused(e, true, "expired", "[::1]:5", NULL);
  const char *t = render(e);
  assert_non_null(strstr(t,
                         "wisp_connection_refusals_total{direction=\"inbound\",reason=\"unknown_ca\","
                         "source_address=\"127.0.0.1\",source_principal=\"" ROGUE "\","
                         "destination_workload=\"orders\",destination_workload_namespace=\"shop\","
                         "destination_principal=\"" ME "\"} 2\n"));
  wisp_events_refused(e, true, "expired", "10.0.0.9:5", NULL); /* over the cap: 127.0.0.1 gives way */
  assert_int_equal(wisp_events_overflowed(e), 2);
  wisp_events_refused(e, true, "expired", "[::1]:6", NULL);            /* ::1 counted again */
  wisp_events_refused(e, true, "unknown_ca", "10.0.0.8:5", "x\"y\\z"); /* 10.0.0.9 gives way */
  assert_int_equal(wisp_events_overflowed(e), 3);
  t = render(e);
  assert_null(strstr(t, "127.0.0.1"));
  assert_null(strstr(t, "10.0.0.9"));
  assert_non_null(strstr(t,
                         "reason=\"expired\",source_address=\"::1\",source_principal=\"unknown\",destination_"
                         "workload=\"orders\",destination_workload_namespace=\"shop\",destination_principal=\"" ME
                         "\"} 2\n"));
  assert_non_null(strstr(t, "reason=\"unknown_ca\",source_address=\"10.0.0.8\",source_principal=\"x\\\"y\\\\z\""));
  assert_non_null(strstr(t,
                         "reason=\"unknown_ca\",source_address=\"overflow\",source_principal=\"overflow\","
                         "destination_workload=\"orders\",destination_workload_namespace=\"shop\",destination_"
                         "principal=\"" ME "\"} 2\n"));
  assert_non_null(strstr(t,
                         "reason=\"expired\",source_address=\"overflow\",source_principal=\"overflow\","
                         "destination_workload=\"orders\",destination_workload_namespace=\"shop\",destination_"
                         "principal=\"" ME "\"} 1\n"));
  assert_non_null(strstr(t, "wisp_events_overflowed_total 3\n"));
  wisp_events_free(e);
}

/* Review 13 M1: 256 self-signed certificates with made-up IDs fill the
 * cap, and a workload misconfigured later (another CA) still shows under
 * its own address and ID, not only under "overflow". */
static void test_refused_unverified_cannot_pin(void **state) {
  (void)state;
  wisp_events *e = wisp_events_new(256);
  char id[96];
  for (int i = 0; i < 260; i++) {
    snprintf(id, sizeof(id), "spiffe://shop.local/ns/evil/sa/fake-%d", i);
    wisp_events_refused(e, true, "unknown_ca", "127.0.0.1:1", id);
  }
  wisp_events_refused(e, true, "unknown_ca", "10.1.2.3:4", "spiffe://shop.local/ns/shop/sa/legit-but-misconfigured");
  const char *t = render(e);
  assert_non_null(strstr(t,
                         "reason=\"unknown_ca\",source_address=\"10.1.2.3\",source_principal=\"spiffe://"
                         "shop.local/ns/shop/sa/legit-but-misconfigured\","));
  assert_null(strstr(t, "sa/fake-4\"")); /* the least recent gave way */
  assert_non_null(strstr(t, "sa/fake-259\""));
  /* every refusal still counted: 261 = 255 kept + 1 legit + 5 moved to overflow */
  assert_non_null(strstr(t,
                         "source_address=\"overflow\",source_principal=\"overflow\",destination_workload=\"orders\","
                         "destination_workload_namespace=\"shop\",destination_principal=\"" ME "\"} 5\n"));
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
  assert_non_null(strstr(t,
                         "wisp_policy_denials_total{direction=\"inbound\",decision=\"deny_rule\","
                         "policy=\"shop/no-admin\",rule=\"1\",source_principal=\"" ROGUE "\""));
  assert_non_null(strstr(t, "decision=\"deny_rule\",policy=\"shop/no-admin\",rule=\"1\",source_principal=\"" ROGUE
                            "\",destination_workload=\"orders\",destination_workload_namespace=\"shop\","
                            "destination_principal=\"" ME "\"} 2\n"));
  assert_non_null(strstr(t, "decision=\"no_allow_match\",policy=\"none\",rule=\"none\",source_principal=\"unknown\""));
  assert_non_null(strstr(t, "decision=\"invalid_request\""));
  assert_non_null(strstr(t,
                         "wisp_upstream_verification_failures_total{direction=\"outbound\",reason=\"wrong_identity\","
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
  wisp_events_refused(e, true, "expired", "10.9.9.9:1", NULL); /* 10.0.0.0, the least recent, gives way */
  assert_int_equal(wisp_events_overflowed(e), 2);
  const char *t = render(e);
  assert_null(strstr(t, "source_address=\"10.0.0.0\","));
  assert_non_null(strstr(t, "source_address=\"10.0.0.1\",source_principal=\"unknown\","));
  assert_non_null(strstr(t, "source_address=\"10.0.1.43\","));
  assert_non_null(strstr(t, "source_address=\"10.9.9.9\","));
  size_t twos = 0;
  for (const char *q = t; (q = strstr(q, "} 2\n")) != NULL; q++) twos++;
  assert_int_equal(twos, 300); /* 299 kept, and the overflow series holding 10.0.0.0's 2 */
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
      cmocka_unit_test(test_refused_unverified_cannot_pin),
      cmocka_unit_test(test_denied_and_upstream),
      cmocka_unit_test(test_growth),
      cmocka_unit_test(test_escape),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
