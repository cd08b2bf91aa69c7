/* Unit tests for lib/wisp_list: order, unlinking from any position, the
 * safe walk that frees as it goes, and a model-based run against an array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/wisp_list.h"
#include "tests/unit/test_util.h"

typedef struct {
  int id;
  wisp_list link;
} item;

/* The ids of |l| from the front into |out|; returns the count. */
static size_t ids(const wisp_list *l, int *out, size_t max) {
  size_t n = 0;
  WISP_LIST_FOREACH(it, l) {
    assert_true(n < max);
    assert_ptr_equal(it->next->prev, it); /* links agree both ways */
    out[n++] = WISP_LIST_ELEM(it, item, link)->id;
  }
  return n;
}

static void test_empty(void **state) {
  (void)state;
  wisp_list l;
  wisp_list_init(&l);
  assert_true(wisp_list_empty(&l));
  assert_null(wisp_list_first(&l));
  item x = {.id = 1};
  assert_false(wisp_list_linked(&x.link)); /* zeroed: unlinked */
  wisp_list_unlink(&x.link);               /* accepted, nothing happens */
  assert_false(wisp_list_linked(&x.link));
}

static void test_order_and_unlink(void **state) {
  (void)state;
  wisp_list l;
  wisp_list_init(&l);
  item it[4] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}};
  wisp_list_push_back(&l, &it[1].link);
  wisp_list_push_front(&l, &it[0].link);
  wisp_list_push_back(&l, &it[3].link);
  wisp_list_insert(&it[3].link, &it[2].link); /* before 3 */
  int got[8];
  assert_int_equal(ids(&l, got, 8), 4);
  for (int i = 0; i < 4; i++) assert_int_equal(got[i], i);
  assert_ptr_equal(wisp_list_first(&l), &it[0].link);
  wisp_list_unlink(&it[2].link); /* middle */
  wisp_list_unlink(&it[0].link); /* front */
  wisp_list_unlink(&it[3].link); /* back */
  assert_false(wisp_list_linked(&it[2].link));
  assert_int_equal(ids(&l, got, 8), 1);
  assert_int_equal(got[0], 1);
  wisp_list_unlink(&it[1].link);
  assert_true(wisp_list_empty(&l));
}

static void test_safe_walk_frees(void **state) {
  (void)state;
  wisp_list l;
  wisp_list_init(&l);
  for (int i = 0; i < 10; i++) {
    item *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->id = i;
    wisp_list_push_back(&l, &x->link);
  }
  /* Free the odd ones while walking, then all. ASan sees any stale read. */
  WISP_LIST_FOREACH_SAFE(it, &l) {
    item *x = WISP_LIST_ELEM(it, item, link);
    if (x->id % 2) {
      wisp_list_unlink(it);
      free(x);
    }
  }
  int got[16];
  assert_int_equal(ids(&l, got, 16), 5);
  for (int i = 0; i < 5; i++) assert_int_equal(got[i], 2 * i);
  WISP_LIST_FOREACH_SAFE(it, &l) {
    wisp_list_unlink(it);
    free(WISP_LIST_ELEM(it, item, link));
  }
  assert_true(wisp_list_empty(&l));
}

/* Random pushes and unlinks against an array that keeps the same order. */
static void test_model(void **state) {
  (void)state;
  enum { N = 64 };
  item pool[N];
  memset(pool, 0, sizeof(pool));
  int model[N];
  size_t mlen = 0;
  wisp_list l;
  wisp_list_init(&l);
  srand(7);
  for (int step = 0; step < 20000; step++) {
    int k = rand() % N;
    item *x = &pool[k];
    x->id = k;
    if (!wisp_list_linked(&x->link)) {
      if (rand() % 2) {
        wisp_list_push_front(&l, &x->link);
        memmove(model + 1, model, mlen * sizeof(int));
        model[0] = k;
      } else {
        wisp_list_push_back(&l, &x->link);
        model[mlen] = k;
      }
      mlen++;
    } else {
      wisp_list_unlink(&x->link);
      size_t i = 0;
      while (model[i] != k) i++;
      memmove(model + i, model + i + 1, (mlen - i - 1) * sizeof(int));
      mlen--;
    }
    int got[N];
    assert_int_equal(ids(&l, got, N), mlen);
    if (mlen) assert_memory_equal(got, model, mlen * sizeof(int));
    assert_int_equal(wisp_list_empty(&l), mlen == 0);
  }
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_order_and_unlink),
      cmocka_unit_test(test_safe_walk_frees),
      cmocka_unit_test(test_model),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
