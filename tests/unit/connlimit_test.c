/* Unit tests for lib/wisp_connlimit: the per-listener and per-source
 * connection counts behind --max-connections and
 * --max-connections-per-source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <string.h>

#include "lib/wisp_connlimit.h"
#include "tests/unit/test_util.h"

/* The source key of "HOST:PORT", IPv6 cut to |v6_prefix| bits. */
static wisp_connlimit_key key_p(const char *s, unsigned v6_prefix) {
  wisp_addr a;
  wisp_connlimit_key k;
  assert_int_equal(wisp_addr_parse(&a, s), WISP_OK);
  assert_true(wisp_connlimit_key_addr(&k, &a, v6_prefix));
  return k;
}

/* The same with the default prefix (whole IPv6 addresses). */
static wisp_connlimit_key addr(const char *s) { return key_p(s, WISP_CONNLIMIT_V6_PREFIX_DEFAULT); }

/* The total cap refuses the connection past it, whatever its source, and a
 * released slot makes room again. */
static void test_total_cap(void **state) {
  (void)state;
  wisp_connlimit *cl = wisp_connlimit_new(3, 0);
  wisp_connlimit_slot s[4];
  char a[32];
  for (int i = 0; i < 3; i++) {
    snprintf(a, sizeof(a), "10.0.0.%d:1000", i + 1);
    wisp_connlimit_key peer = addr(a);
    assert_int_equal(wisp_connlimit_take(cl, &peer, &s[i]), WISP_CONNLIMIT_OK);
  }
  wisp_connlimit_key other = addr("10.9.9.9:1");
  assert_int_equal(wisp_connlimit_take(cl, &other, &s[3]), WISP_CONNLIMIT_TOTAL);
  assert_null(s[3].cl);          /* a refusal holds nothing */
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
  wisp_connlimit_key a1 = addr("127.0.0.1:5000"), a2 = addr("127.0.0.1:5001"), a3 = addr("127.0.0.1:5002");
  wisp_connlimit_key b = addr("127.0.0.2:5000");
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

/* Two pods of one Kubernetes node share its /64 of pod addresses: by
 * default they are two sources, so one of them at its cap does not lock
 * out the other. A v4-mapped address is its IPv4 address. */
static void test_source_keys(void **state) {
  (void)state;
  wisp_connlimit *cl = wisp_connlimit_new(0, 1);
  wisp_connlimit_slot s, t, u, v, w;
  wisp_connlimit_key x = addr("[fd00:1:2:3::5]:1"), y = addr("[fd00:1:2:3:ffff::9]:2");
  wisp_connlimit_key x2 = addr("[fd00:1:2:3::5]:9");
  assert_int_equal(wisp_connlimit_take(cl, &x, &s), WISP_CONNLIMIT_OK);
  assert_int_equal(wisp_connlimit_take(cl, &y, &t), WISP_CONNLIMIT_OK);      /* the neighbour in the same /64 */
  assert_int_equal(wisp_connlimit_take(cl, &x2, &w), WISP_CONNLIMIT_SOURCE); /* the same pod, another port */
  assert_int_equal(wisp_connlimit_sources(cl), 2);
  wisp_connlimit_key m = addr("[::ffff:10.0.0.1]:7"), p = addr("10.0.0.1:8");
  assert_true(wisp_connlimit_key_equal(&m, &p));
  assert_int_equal(wisp_connlimit_take(cl, &m, &u), WISP_CONNLIMIT_OK);
  assert_int_equal(wisp_connlimit_take(cl, &p, &v), WISP_CONNLIMIT_SOURCE);
  char name[64];
  wisp_connlimit_key_name(&y, name, sizeof(name));
  assert_string_equal(name, "fd00:1:2:3:ffff::9");
  wisp_connlimit_key_name(&m, name, sizeof(name));
  assert_string_equal(name, "10.0.0.1");
  wisp_connlimit_key_name(&p, name, sizeof(name));
  assert_string_equal(name, "10.0.0.1");
  wisp_connlimit_release(&s);
  wisp_connlimit_release(&t);
  wisp_connlimit_release(&u);
  wisp_connlimit_free(cl);
}

/* A shorter prefix (--ipv6-source-prefix) makes a network one source;
 * the bits past it are ignored, whatever the prefix's alignment. */
static void test_v6_prefix(void **state) {
  (void)state;
  wisp_connlimit_key x = key_p("[fd00:1:2:3::5]:1", 64), y = key_p("[fd00:1:2:3:ffff::9]:2", 64);
  wisp_connlimit_key z = key_p("[fd00:1:2:4::5]:1", 64);
  assert_true(wisp_connlimit_key_equal(&x, &y));
  assert_false(wisp_connlimit_key_equal(&x, &z));
  char name[64];
  wisp_connlimit_key_name(&y, name, sizeof(name));
  assert_string_equal(name, "fd00:1:2:3::/64");
  wisp_connlimit_key a = key_p("[fd00::1f]:1", 123), b = key_p("[fd00::10]:1", 123), c = key_p("[fd00::20]:1", 123);
  assert_true(wisp_connlimit_key_equal(&a, &b)); /* differ in the last 5 bits only */
  assert_false(wisp_connlimit_key_equal(&a, &c));
  wisp_connlimit_key_name(&a, name, sizeof(name));
  assert_string_equal(name, "fd00::/123");
  wisp_connlimit_key whole = key_p("[fd00::1f]:1", 128), whole2 = key_p("[fd00::1e]:1", 128);
  assert_false(wisp_connlimit_key_equal(&whole, &whole2));
  wisp_connlimit_key v4 = key_p("10.1.2.3:1", 64), v4b = key_p("10.1.2.4:1", 64);
  assert_false(wisp_connlimit_key_equal(&v4, &v4b)); /* the prefix is for IPv6 only */
  wisp_connlimit *cl = wisp_connlimit_new(0, 1);
  wisp_connlimit_slot s, t;
  assert_int_equal(wisp_connlimit_take(cl, &x, &s), WISP_CONNLIMIT_OK);
  assert_int_equal(wisp_connlimit_take(cl, &y, &t), WISP_CONNLIMIT_SOURCE);
  wisp_connlimit_release(&s);
  wisp_connlimit_free(cl);
}

/* A local caller is its uid, apart from any address; a key of no kind (a
 * Unix socket without credentials) counts only against the total. */
static void test_uid_keys(void **state) {
  (void)state;
  wisp_connlimit *cl = wisp_connlimit_new(3, 1);
  wisp_connlimit_key u0, u1000, u1000b, none = {0};
  wisp_connlimit_key_uid(&u0, 0);
  wisp_connlimit_key_uid(&u1000, 1000);
  wisp_connlimit_key_uid(&u1000b, 1000);
  wisp_connlimit_key ip = addr("0.0.3.232:1"); /* the same four bytes as uid 1000 */
  assert_true(wisp_connlimit_key_equal(&u1000, &u1000b));
  assert_false(wisp_connlimit_key_equal(&u1000, &ip));
  char name[32];
  wisp_connlimit_key_name(&u1000, name, sizeof(name));
  assert_string_equal(name, "uid 1000");
  wisp_connlimit_key_name(&none, name, sizeof(name));
  assert_string_equal(name, "?");
  wisp_connlimit_slot s[4];
  assert_int_equal(wisp_connlimit_take(cl, &u1000, &s[0]), WISP_CONNLIMIT_OK);
  assert_int_equal(wisp_connlimit_take(cl, &u1000b, &s[1]), WISP_CONNLIMIT_SOURCE);
  assert_int_equal(wisp_connlimit_take(cl, &u0, &s[1]), WISP_CONNLIMIT_OK);
  assert_int_equal(wisp_connlimit_take(cl, &none, &s[2]), WISP_CONNLIMIT_OK);
  assert_int_equal(wisp_connlimit_take(cl, NULL, &s[3]), WISP_CONNLIMIT_TOTAL);
  assert_int_equal(wisp_connlimit_source_count(cl, &u1000), 1);
  assert_int_equal(wisp_connlimit_sources(cl), 2);
  for (int i = 0; i < 3; i++) wisp_connlimit_release(&s[i]);
  assert_int_equal(wisp_connlimit_take(cl, NULL, &s[3]), WISP_CONNLIMIT_OK);
  wisp_connlimit_release(&s[3]);
  wisp_connlimit_free(cl);
}

/* A Unix-socket address has no source key. */
static void test_non_ip_addr(void **state) {
  (void)state;
  wisp_addr a;
  memset(&a, 0, sizeof(a));
  a.sa.ss_family = AF_UNIX;
  wisp_connlimit_key k;
  assert_false(wisp_connlimit_key_addr(&k, &a, 128));
  assert_int_equal(k.kind, WISP_CONNLIMIT_KEY_NONE);
}

/* 0 means no limit. */
static void test_no_limits(void **state) {
  (void)state;
  wisp_connlimit *cl = wisp_connlimit_new(0, 0);
  static wisp_connlimit_slot s[5000];
  wisp_connlimit_key a = addr("127.0.0.1:1");
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
    wisp_connlimit_key peer = addr(a);
    assert_int_equal(wisp_connlimit_take(cl, &peer, &s[i]), WISP_CONNLIMIT_OK);
  }
  assert_int_equal(wisp_connlimit_sources(cl), N);
  wisp_connlimit_key extra = addr("[fd00:7::9]:1");
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
  wisp_connlimit_key p = addr("127.0.0.1:1");
  assert_int_equal(wisp_connlimit_take(cl, &p, &a), WISP_CONNLIMIT_OK);
  wisp_connlimit_move(&b, &a);
  wisp_connlimit_release(&a); /* the old holder has nothing */
  assert_int_equal(wisp_connlimit_count(cl), 1);
  wisp_connlimit_release(&b);
  assert_int_equal(wisp_connlimit_count(cl), 0);
  wisp_connlimit_free(cl);
}

/* A shared table (wisp-proxy --workers) used by several threads at once,
 * from one source: it never lets the threads together hold more than the
 * limit, and slots taken and given back concurrently leave it exact.
 * Without the lock the threads' counts race (lost updates, a source entry
 * freed while another thread counts into it: ASan). Cmocka asserts only on
 * the main thread: the threads report counts. */
enum { SHARE_THREADS = 4, SHARE_LIMIT = 64, SHARE_TRIES = 1000, SHARE_ROUNDS = 20000, SHARE_HOLD = 8 };

typedef struct {
  wisp_connlimit *cl;
  pthread_barrier_t *start;
  wisp_connlimit_slot grabbed[SHARE_TRIES];
  uint32_t taken, refused;
} share_arg;

static void *share_grab(void *p) {
  share_arg *a = p;
  wisp_connlimit_key k = addr("10.0.0.7:1");
  pthread_barrier_wait(a->start);
  for (size_t i = 0; i < SHARE_TRIES; i++) {
    if (wisp_connlimit_take(a->cl, &k, &a->grabbed[a->taken]) == WISP_CONNLIMIT_OK) a->taken++;
  }
  return NULL;
}

static void *share_churn(void *p) {
  share_arg *a = p;
  wisp_connlimit_key k = addr("10.0.0.7:1");
  wisp_connlimit_slot held[SHARE_HOLD];
  pthread_barrier_wait(a->start);
  for (size_t r = 0; r < SHARE_ROUNDS / SHARE_HOLD; r++) {
    for (size_t i = 0; i < SHARE_HOLD; i++) {
      if (wisp_connlimit_take(a->cl, &k, &held[i]) != WISP_CONNLIMIT_OK) a->refused++;
    }
    for (size_t i = 0; i < SHARE_HOLD; i++) wisp_connlimit_release(&held[i]);
  }
  return NULL;
}

static void run_threads(share_arg *args, void *(*fn)(void *)) {
  pthread_t th[SHARE_THREADS];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, SHARE_THREADS);
  for (size_t t = 0; t < SHARE_THREADS; t++) {
    args[t].start = &start;
    assert_int_equal(pthread_create(&th[t], NULL, fn, &args[t]), 0);
  }
  for (size_t t = 0; t < SHARE_THREADS; t++) pthread_join(th[t], NULL);
  pthread_barrier_destroy(&start);
}

static void test_shared_threads(void **state) {
  (void)state;
  static share_arg args[SHARE_THREADS];
  wisp_connlimit *cl = wisp_connlimit_new(SHARE_LIMIT * 2, SHARE_LIMIT);
  wisp_connlimit_share(cl);
  memset(args, 0, sizeof(args));
  for (size_t t = 0; t < SHARE_THREADS; t++) args[t].cl = cl;
  run_threads(args, share_grab);
  uint32_t taken = 0;
  for (size_t t = 0; t < SHARE_THREADS; t++) taken += args[t].taken;
  assert_int_equal(taken, SHARE_LIMIT); /* exactly the limit, over all threads */
  assert_int_equal(wisp_connlimit_count(cl), SHARE_LIMIT);
  /* Given back by another thread than took them (the main one). */
  for (size_t t = 0; t < SHARE_THREADS; t++) {
    for (size_t i = 0; i < args[t].taken; i++) wisp_connlimit_release(&args[t].grabbed[i]);
  }
  assert_int_equal(wisp_connlimit_count(cl), 0);
  assert_int_equal(wisp_connlimit_sources(cl), 0);
  /* Churn: SHARE_THREADS x SHARE_HOLD held at most, within the limit. */
  memset(args, 0, sizeof(args));
  for (size_t t = 0; t < SHARE_THREADS; t++) args[t].cl = cl;
  run_threads(args, share_churn);
  for (size_t t = 0; t < SHARE_THREADS; t++) assert_int_equal(args[t].refused, 0);
  assert_int_equal(wisp_connlimit_count(cl), 0);
  assert_int_equal(wisp_connlimit_sources(cl), 0);
  wisp_connlimit_free(cl);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_total_cap),      cmocka_unit_test(test_per_source),   cmocka_unit_test(test_source_keys),
      cmocka_unit_test(test_v6_prefix),      cmocka_unit_test(test_uid_keys),     cmocka_unit_test(test_non_ip_addr),
      cmocka_unit_test(test_no_limits),      cmocka_unit_test(test_many_sources), cmocka_unit_test(test_move),
      cmocka_unit_test(test_shared_threads),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
