/* Unit tests for lib/wisp_slab: size classes, reuse of freed chunks, the
 * caps on what is cached, trim, realloc across classes, a model-based run
 * against plain malloc'd copies, and (under ASan) that a cached chunk is
 * poisoned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/wisp_slab.h"
#include "tests/unit/test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

static void test_classes_cover_each_size(void **state) {
  (void)state;
  size_t prev = 0;
  for (size_t n = 0; n <= WISP_SLAB_MAX; n++) {
    size_t c = wisp_slab_class_size(n);
    assert_true(c >= n);
    assert_true(c >= prev);           /* monotonic */
    assert_true(c % 16 == 0);         /* keeps the next chunk aligned */
    assert_true(c <= n + n / 4 + 16); /* at most a quarter (or 16 bytes) wasted */
    prev = c;
  }
  assert_int_equal(wisp_slab_class_size(WISP_SLAB_MAX), WISP_SLAB_MAX);
  assert_int_equal(wisp_slab_class_size(WISP_SLAB_MAX + 1), WISP_SLAB_MAX + 1);
}

static void test_freed_chunk_is_reused(void **state) {
  (void)state;
  wisp_slab_trim(0);
  char *a = wisp_slab_alloc(100);
  assert_true(((uintptr_t)a & 15) == 0);
  memset(a, 'x', 100);
  wisp_slab_free(a);
  assert_true(wisp_slab_cached() > 0);
  /* Another size in the same class gets the same chunk back. */
  char *b = wisp_slab_alloc(wisp_slab_class_size(100));
  assert_ptr_equal(a, b);
  assert_int_equal(wisp_slab_cached(), 0);
  wisp_slab_free(b);
  wisp_slab_trim(0);
  assert_int_equal(wisp_slab_cached(), 0);
}

static void test_calloc_zeroes_a_reused_chunk(void **state) {
  (void)state;
  wisp_slab_trim(0);
  unsigned char *a = wisp_slab_alloc(64);
  memset(a, 0xab, 64);
  wisp_slab_free(a);
  unsigned char *b = wisp_slab_calloc(8, 8);
  assert_ptr_equal(a, b);
  for (int i = 0; i < 64; i++) assert_int_equal(b[i], 0);
  wisp_slab_free(b);
  wisp_slab_trim(0);
}

static void test_large_sizes_bypass_the_lists(void **state) {
  (void)state;
  wisp_slab_trim(0);
  char *a = wisp_slab_alloc(WISP_SLAB_MAX + 1);
  memset(a, 1, WISP_SLAB_MAX + 1);
  wisp_slab_free(a);
  assert_int_equal(wisp_slab_cached(), 0);
  wisp_slab_free(NULL); /* as free(NULL) */
}

/* Freeing far more than the caps caches no more than them: memory held by
 * a burst of requests goes back to malloc. */
static void test_cache_is_capped(void **state) {
  (void)state;
  enum { N = 2000 };
  static void *p[N];
  wisp_slab_trim(0);
  for (int i = 0; i < N; i++) p[i] = wisp_slab_alloc(256);
  for (int i = 0; i < N; i++) wisp_slab_free(p[i]);
  assert_true(wisp_slab_cached() <= WISP_SLAB_CLASS_KEEP);
  assert_true(wisp_slab_cached() > WISP_SLAB_CLASS_KEEP / 2);
  /* Many classes: the total cap holds. */
  for (int i = 0; i < N; i++) p[i] = wisp_slab_alloc((size_t)(i % 4096) + 1);
  for (int i = 0; i < N; i++) wisp_slab_free(p[i]);
  assert_true(wisp_slab_cached() <= WISP_SLAB_KEEP);
  wisp_slab_trim(WISP_SLAB_IDLE_KEEP);
  assert_true(wisp_slab_cached() <= WISP_SLAB_IDLE_KEEP);
  wisp_slab_trim(0);
  assert_int_equal(wisp_slab_cached(), 0);
}

static void test_realloc_keeps_contents(void **state) {
  (void)state;
  char *p = wisp_slab_realloc(NULL, 10);
  memcpy(p, "0123456789", 10);
  char *same = wisp_slab_realloc(p, 16); /* same class */
  assert_ptr_equal(p, same);
  p = wisp_slab_realloc(same, 1000); /* another class */
  assert_memory_equal(p, "0123456789", 10);
  memset(p + 10, 'y', 990);
  p = wisp_slab_realloc(p, 10000); /* large */
  assert_memory_equal(p, "0123456789", 10);
  assert_int_equal(p[999], 'y');
  p = wisp_slab_realloc(p, 20000); /* large to large */
  assert_memory_equal(p, "0123456789", 10);
  p = wisp_slab_realloc(p, 5); /* back into a class */
  assert_memory_equal(p, "01234", 5);
  wisp_slab_free(p);
  wisp_slab_trim(0);
}

/* Random allocations, reallocations and frees, each chunk filled with a
 * pattern and checked before it changes: no two live chunks overlap and
 * nothing is lost in realloc. */
static void test_model(void **state) {
  (void)state;
  enum { SLOTS = 64, STEPS = 20000 };
  unsigned char *p[SLOTS] = {0};
  size_t len[SLOTS] = {0};
  unsigned char seed[SLOTS] = {0};
  unsigned rnd = 12345;
  for (int step = 0; step < STEPS; step++) {
    rnd = rnd * 1103515245u + 12345u;
    int i = (int)((rnd >> 8) % SLOTS);
    if (p[i]) {
      for (size_t k = 0; k < len[i]; k++) assert_int_equal(p[i][k], (unsigned char)(seed[i] + k));
    }
    size_t n = (rnd >> 16) % 3 == 0 ? (rnd >> 4) % 9000 : (rnd >> 4) % 600;
    switch ((rnd >> 20) % 3) {
      case 0:
        wisp_slab_free(p[i]);
        p[i] = NULL;
        len[i] = 0;
        break;
      case 1:
        wisp_slab_free(p[i]);
        p[i] = wisp_slab_alloc(n);
        len[i] = n;
        break;
      default: {
        p[i] = wisp_slab_realloc(p[i], n);
        size_t kept = len[i] < n ? len[i] : n;
        for (size_t k = 0; k < kept; k++) assert_int_equal(p[i][k], (unsigned char)(seed[i] + k));
        len[i] = n;
      }
    }
    seed[i] = (unsigned char)rnd;
    for (size_t k = 0; k < len[i]; k++) p[i][k] = (unsigned char)(seed[i] + k);
  }
  for (int i = 0; i < SLOTS; i++) wisp_slab_free(p[i]);
  wisp_slab_trim(0);
  assert_int_equal(wisp_slab_cached(), 0);
}

#if defined(__SANITIZE_ADDRESS__)
/* A cached chunk is poisoned (a use after wisp_slab_free is reported), a
 * handed-out one is not, and the class slack past the size asked for is. */
static void test_asan_poisons_cached_chunks(void **state) {
  (void)state;
  wisp_slab_trim(0);
  char *a = wisp_slab_alloc(40);
  assert_false(__asan_address_is_poisoned(a));
  assert_false(__asan_address_is_poisoned(a + 39));
  assert_true(__asan_address_is_poisoned(a + 40)); /* slack of the 48-byte class */
  wisp_slab_free(a);
  assert_true(__asan_address_is_poisoned(a));
  char *b = wisp_slab_alloc(48);
  assert_ptr_equal(a, b);
  assert_false(__asan_address_is_poisoned(b + 47));
  wisp_slab_free(b);
  wisp_slab_trim(0);
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_classes_cover_each_size),
    cmocka_unit_test(test_freed_chunk_is_reused),
    cmocka_unit_test(test_calloc_zeroes_a_reused_chunk),
    cmocka_unit_test(test_large_sizes_bypass_the_lists),
    cmocka_unit_test(test_cache_is_capped),
    cmocka_unit_test(test_realloc_keeps_contents),
    cmocka_unit_test(test_model),
#if defined(__SANITIZE_ADDRESS__)
    cmocka_unit_test(test_asan_poisons_cached_chunks),
#endif
  };
  wisp_slab_set_cache(1); /* off by default under ASan: the cache is what is tested */
  return cmocka_run_group_tests(tests, NULL, NULL);
}
