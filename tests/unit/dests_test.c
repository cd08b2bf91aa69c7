/* Unit tests for proxy/dataplane/wisp_dests: which identity a transparent destination
 * must present (exact IP:PORT first, then the IP's every-port entry, else
 * none: any ID in the trust domain), and the entries a map refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy/dataplane/wisp_dests.h"
#include "tests/unit/test_util.h"

#define ORDERS "spiffe://shop.local/ns/shop/sa/orders"
#define ORDERS_ADMIN "spiffe://shop.local/ns/shop/sa/orders-admin"
#define PG "spiffe://shop.local/ns/data/sa/pg"

static const char *lookup(const wisp_dests *d, const char *addr) {
  wisp_addr a;
  assert_int_equal(wisp_addr_parse(&a, addr), WISP_OK);
  return wisp_dests_lookup(d, &a);
}

static void test_lookup(void **state) {
  (void)state;
  static const wisp_policy_destination kMap[] = {
      {"10.0.0.5", ORDERS},
      {"10.0.0.5:9090", ORDERS_ADMIN},
      {"[fd00::9]:5432", PG},
      {"10.0.0.6:5432", PG},
  };
  wisp_dests *d = NULL;
  char err[256];
  assert_int_equal(wisp_dests_new(&d, kMap, 4, err, sizeof(err)), WISP_OK);
  assert_int_equal(wisp_dests_count(d), 4);
  assert_string_equal(lookup(d, "10.0.0.5:8080"), ORDERS);       /* every port of the IP */
  assert_string_equal(lookup(d, "10.0.0.5:9090"), ORDERS_ADMIN); /* the exact entry wins */
  assert_string_equal(lookup(d, "[fd00::9]:5432"), PG);
  assert_null(lookup(d, "[fd00::9]:5433"));
  assert_string_equal(lookup(d, "10.0.0.6:5432"), PG);
  assert_null(lookup(d, "10.0.0.6:5433"));
  assert_null(lookup(d, "10.0.0.7:8080"));
  /* Entries come back in address order, canonical. */
  const char *id;
  assert_string_equal(wisp_dests_entry(d, 0, &id), "10.0.0.5");
  assert_string_equal(id, ORDERS);
  assert_string_equal(wisp_dests_entry(d, 3, &id), "[fd00::9]:5432");
  wisp_dests_free(d);
  /* No map, or an empty one: nothing is named. */
  assert_null(lookup(NULL, "10.0.0.5:8080"));
  assert_int_equal(wisp_dests_count(NULL), 0);
  assert_int_equal(wisp_dests_new(&d, NULL, 0, err, sizeof(err)), WISP_OK);
  assert_null(lookup(d, "10.0.0.5:8080"));
  wisp_dests_free(d);
  wisp_dests_free(NULL);
}

/* A map shared by --workers: each reference is dropped on its own, the
 * last one frees it (ASan sees a use after free if an earlier one did). */
static void test_refs(void **state) {
  (void)state;
  static const wisp_policy_destination kMap[] = {{"10.0.0.5", ORDERS}};
  wisp_dests *d = NULL;
  char err[256];
  assert_int_equal(wisp_dests_new(&d, kMap, 1, err, sizeof(err)), WISP_OK);
  wisp_dests_up_ref(d);
  wisp_dests_up_ref(d);
  wisp_dests_free(d);
  wisp_dests_free(d);
  assert_string_equal(lookup(d, "10.0.0.5:80"), ORDERS); /* one reference left */
  wisp_dests_free(d);
}

static void test_refused(void **state) {
  (void)state;
  static const struct {
    wisp_policy_destination e[2];
    size_t n;
    const char *msg;
  } kBad[] = {
      {{{"orders.shop:80", ORDERS}}, 1, "destination 0: address \"orders.shop:80\" is not IP:PORT or an IP"},
      {{{NULL, ORDERS}}, 1, "destination 0: address \"\" is not IP:PORT or an IP"},
      {{{"10.0.0.5:80", "spiffe://shop.local/ns/shop/sa/"}}, 1, NULL},
      {{{"10.0.0.5:80", NULL}}, 1, NULL},
      {{{"10.0.0.5:80", ORDERS}, {"10.0.0.5:0080", PG}},
       2,
       "destination 10.0.0.5:80 is listed twice (" ORDERS " and " PG ")"},
  };
  for (size_t i = 0; i < sizeof(kBad) / sizeof(kBad[0]); i++) {
    wisp_dests *d = (wisp_dests *)(uintptr_t)1;
    char err[256] = "";
    assert_int_equal(wisp_dests_new(&d, kBad[i].e, kBad[i].n, err, sizeof(err)), WISP_ERR_PARSE);
    assert_ptr_equal(d, (wisp_dests *)(uintptr_t)1);
    if (kBad[i].msg) assert_string_equal(err, kBad[i].msg);
    else assert_non_null(strstr(err, "is not a SPIFFE ID"));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lookup),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_refs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
