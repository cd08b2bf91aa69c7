/* Unit tests for proxy/wisp_connlimit: the per-listener and per-source
 * connection counts behind --max-connections and
 * --max-connections-per-source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy/wisp_connlimit.h"
#include "tests/unit/test_util.h"

static wisp_addr addr(const char *s) {
  wisp_addr a;
  assert_int_equal(wisp_addr_parse(&a, s), WISP_OK);
  return a;
}

/* The total cap refuses the connection past it, whatever its source, and a
 * released slot makes room again. */
static void test_total_cap(void **state) {
  (void)state;
  wisp_connlimit *cl = wisp_connlimit_new(3, 0);
  wisp_connlimit_slot s[4];
  char a[32];
  for (int i = 0; i < 3; i++) {
    snprintf(a, sizeof(a), "10.0.0.%d:1000", i + 1);
    wisp_addr peer = addr(a);
    assert_int_equal(wisp_connlimit_take(cl, &peer, &s[i]), WISP_CONNLIMIT_OK);
  }
  wisp_addr other = addr("10.9.9.9:1");
  assert_int_equal(wisp_connlimit_take(cl, &other, &s[3]), WISP_CONNLIMIT_TOTAL);
  assert_null(s[3].cl); /* a refusal holds nothing */
  wisp_connlimit_release(&s[3]); /* harmless */
  assert_int_equal(wisp_connlimit_count(cl), 3);
  assert_int_equal(wisp_connlimit_sources(cl), 0); /* not tracked without a per-source cap */
  wisp_connlimit_release(&s[1]);
  assert_null(s[1].cl);
  wisp_connlimit_release(&s[1]); /* twice: no double count */
  assert_int_equal(wisp_connlimit_count(cl), 2);
  assert_int_equal(wisp_connlimit_take(cl, &other, &s[1]), WISP_CONNLIMIT_OK);
  for (int i = 0; i < 3; i++) wisp_connlimit_release(&s[i]);
  assert_int_equal(wisp_connlimit_count(cl), 0);
  wisp_connlimit_free(cl);
}

/* One source at its cap is refused; another source still gets in. Ports
 * do not make a new source. */
static void test_per_source(void **state) {
  (void)state;
  wisp_connlimit *cl = wisp_connlimit_new(100, 2);
  wisp_connlimit_slot s1, s2, s3, t1;
  wisp_addr a1 = addr("127.0.0.1:5000"), a2 = addr("127.0.0.1:5001"), a3 = addr("127.0.0.1:5002");
  wisp_addr b = addr("127.0.0.2:5000");
  assert_int_equal(wisp_connlimit_take(cl, &a1, &s1), WISP_CONNLIMIT_OK);
  assert_int_equal(wisp_connlimit_take(cl, &a2, &s2), WISP_CONNLIMIT_OK);
  assert_int_equal(wisp_connlimit_take(cl, &a3, &s3), WISP_CONNLIMIT_SOURCE);
  assert_int_equal(wisp_connlimit_take(cl, &b, &t1), WISP_CONNLIMIT_OK);
  assert_int_equal(wisp_connlimit_source_count(cl, &a3), 2);
  assert_int_equal(wisp_connlimit_source_count(cl, &b), 1);
  assert_int_equal(wisp_connlimit_sources(cl), 2);
  assert_int_equal(wisp_connlimit_count(cl), 3);
  wisp_connlimit_release(&s1);
  assert_int_equal(wisp_connlimit_take(cl, &a3, &s3), WISP_CONNLIMIT_OK);
  wisp_connlimit_release(&s2);
  wisp_connlimit_release(&s3);
  assert_int_equal(wisp_connlimit_sources(cl), 1); /* a source with no connections is forgotten */
  assert_int_equal(wisp_connlimit_source_count(cl, &a1), 0);
  wisp_connlimit_release(&t1);
  assert_int_equal(wisp_connlimit_sources(cl), 0);
  wisp_connlimit_free(cl);
}

/* An IPv6 caller is one /64; a v4-mapped address is its IPv4 address. */
static void test_source_keys(void **state) {
  (void)state;
  wisp_connlimit *cl = wisp_connlimit_new(0, 1);
  wisp_connlimit_slot s, t, u, v;
  wisp_addr x = addr("[fd00:1:2:3::5]:1"), y = addr("[fd00:1:2:3:ffff::9]:2"), z = addr("[fd00:1:2:4::5]:1");
  assert_int_equal(wisp_connlimit_take(cl, &x, &s), WISP_CONNLIMIT_OK);
  assert_int_equal(wisp_connlimit_take(cl, &y, &t), WISP_CONNLIMIT_SOURCE);
  assert_int_equal(wisp_connlimit_take(cl, &z, &t), WISP_CONNLIMIT_OK);
  wisp_addr m = addr("[::ffff:10.0.0.1]:7"), p = addr("10.0.0.1:8");
  assert_int_equal(wisp_connlimit_take(cl, &m, &u), WISP_CONNLIMIT_OK);
  assert_int_equal(wisp_connlimit_take(cl, &p, &v), WISP_CONNLIMIT_SOURCE);
  char name[64];
  wisp_connlimit_source_name(&y, name, sizeof(name));
  assert_string_equal(name, "fd00:1:2:3::/64");
  wisp_connlimit_source_name(&m, name, sizeof(name));
  assert_string_equal(name, "10.0.0.1");
  wisp_connlimit_source_name(&p, name, sizeof(name));
  assert_string_equal(name, "10.0.0.1");
  wisp_connlimit_release(&s);
  wisp_connlimit_release(&t);
  wisp_connlimit_release(&u);
  wisp_connlimit_free(cl);
}

/* 0 means no limit. */
static void test_no_limits(void **state) {
  (void)state;
  wisp_connlimit *cl = wisp_connlimit_new(0, 0);
  static wisp_connlimit_slot s[5000];
  wisp_addr a = addr("127.0.0.1:1");
  for (size_t i = 0; i < 5000; i++) assert_int_equal(wisp_connlimit_take(cl, &a, &s[i]), WISP_CONNLIMIT_OK);
  assert_int_equal(wisp_connlimit_count(cl), 5000);
  for (size_t i = 0; i < 5000; i++) wisp_connlimit_release(&s[i]);
  assert_int_equal(wisp_connlimit_count(cl), 0);
  wisp_connlimit_free(cl);
}

/* Many sources, taken and given back in another order: the counts stay
 * exact and every source entry is freed (ASan checks the rest). */
static void test_many_sources(void **state) {
  (void)state;
  enum { N = 3000 };
  wisp_connlimit *cl = wisp_connlimit_new(N * 2, 2);
  static wisp_connlimit_slot s[N * 2];
  char a[48];
  for (size_t i = 0; i < N * 2; i++) {
    snprintf(a, sizeof(a), "[fd00:%zx::1]:%zu", i / 2, 1000 + i);
    wisp_addr peer = addr(a);
    assert_int_equal(wisp_connlimit_take(cl, &peer, &s[i]), WISP_CONNLIMIT_OK);
  }
  assert_int_equal(wisp_connlimit_sources(cl), N);
  wisp_addr extra = addr("[fd00:7::9]:1");
  wisp_connlimit_slot x;
  assert_int_equal(wisp_connlimit_take(cl, &extra, &x), WISP_CONNLIMIT_TOTAL);
  for (size_t i = 0; i < N * 2; i += 2) wisp_connlimit_release(&s[i]);
  assert_int_equal(wisp_connlimit_sources(cl), N);
  for (size_t i = 1; i < N * 2; i += 2) wisp_connlimit_release(&s[i]);
  assert_int_equal(wisp_connlimit_sources(cl), 0);
  assert_int_equal(wisp_connlimit_count(cl), 0);
  wisp_connlimit_free(cl);
}

/* A slot moved to a new holder is released once, by the new holder. */
static void test_move(void **state) {
  (void)state;
  wisp_connlimit *cl = wisp_connlimit_new(1, 1);
  wisp_connlimit_slot a, b;
  wisp_addr p = addr("127.0.0.1:1");
  assert_int_equal(wisp_connlimit_take(cl, &p, &a), WISP_CONNLIMIT_OK);
  wisp_connlimit_move(&b, &a);
  wisp_connlimit_release(&a); /* the old holder has nothing */
  assert_int_equal(wisp_connlimit_count(cl), 1);
  wisp_connlimit_release(&b);
  assert_int_equal(wisp_connlimit_count(cl), 0);
  wisp_connlimit_free(cl);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_total_cap),    cmocka_unit_test(test_per_source),   cmocka_unit_test(test_source_keys),
      cmocka_unit_test(test_no_limits),    cmocka_unit_test(test_many_sources), cmocka_unit_test(test_move),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
