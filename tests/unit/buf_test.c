/* Unit tests for lib/wisp_buf: cursors, the hard limit, growth, compaction,
 * and a model-based run against a plain array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/wisp_buf.h"
#include "lib/wisp_slab.h"
#include "tests/unit/test_util.h"

static void fill(uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed + i * 7);
}

static void test_zeroed_is_valid_and_empty(void **state) {
  (void)state;
  wisp_buf b = {0};
  uint8_t out[4];
  assert_int_equal(wisp_buf_len(&b), 0);
  assert_int_equal(wisp_buf_read(&b, out, sizeof(out)), 0);
  wisp_buf_consume(&b, 0);
  assert_null(b.data);
  /* An empty append succeeds and allocates nothing. */
  assert_int_equal(wisp_buf_append(&b, "", 0, 16), WISP_OK);
  assert_null(b.data);
  assert_int_equal(b.cap, 0);
  /* Its read pointer is a real one: callers do rptr + 0 and
   * memcpy(dst, rptr, 0), undefined with NULL (clang's UBSan says so; found
   * by fuzzing wispctl inject). */
  assert_non_null(wisp_buf_rptr(&b));
  wisp_buf_cleanup(&b);
  wisp_buf_cleanup(&b); /* idempotent */
  assert_null(b.data);
  assert_non_null(wisp_buf_rptr(&b));
}

static void test_append_read_consume(void **state) {
  (void)state;
  wisp_buf b = {0};
  uint8_t out[16];
  assert_int_equal(wisp_buf_append(&b, "hello", 5, 1024), WISP_OK);
  assert_int_equal(wisp_buf_append(&b, " world", 6, 1024), WISP_OK);
  assert_int_equal(wisp_buf_len(&b), 11);
  assert_memory_equal(wisp_buf_rptr(&b), "hello world", 11);

  wisp_buf_consume(&b, 6);
  assert_int_equal(wisp_buf_len(&b), 5);
  assert_memory_equal(wisp_buf_rptr(&b), "world", 5);

  /* A short read takes what is asked for and leaves the rest. */
  assert_int_equal(wisp_buf_read(&b, out, 3), 3);
  assert_memory_equal(out, "wor", 3);
  assert_int_equal(wisp_buf_len(&b), 2);
  /* A long read takes what there is. */
  assert_int_equal(wisp_buf_read(&b, out, sizeof(out)), 2);
  assert_memory_equal(out, "ld", 2);
  assert_int_equal(wisp_buf_len(&b), 0);
  /* Drained: the cursors rewind; the storage is kept for the next append. */
  assert_non_null(b.data);
  assert_int_equal(b.cap, 4096);
  assert_int_equal(b.rpos, 0);
  assert_int_equal(b.wpos, 0);
  /* Reading zero bytes from a non-empty buffer changes nothing. */
  assert_int_equal(wisp_buf_append(&b, "x", 1, 8), WISP_OK);
  assert_int_equal(wisp_buf_read(&b, out, 0), 0);
  assert_int_equal(wisp_buf_len(&b), 1);
  wisp_buf_cleanup(&b);
}

static void assert_unchanged(const wisp_buf *b, const wisp_buf *before, const uint8_t *want, size_t want_len) {
  assert_ptr_equal(b->data, before->data);
  assert_int_equal(b->cap, before->cap);
  assert_int_equal(b->rpos, before->rpos);
  assert_int_equal(b->wpos, before->wpos);
  assert_int_equal(wisp_buf_len(b), want_len);
  if (want_len) assert_memory_equal(wisp_buf_rptr(b), want, want_len);
}

static void test_limit(void **state) {
  (void)state;
  uint8_t data[100];
  fill(data, sizeof(data), 1);
  struct {
    size_t have;     /* unread bytes already in the buffer */
    size_t consumed; /* of which this many were consumed first (still counted as gone) */
    size_t add;
    size_t limit;
    wisp_err want;
  } cases[] = {
      {0, 0, 10, 10, WISP_OK},          /* exactly the limit */
      {0, 0, 11, 10, WISP_ERR_TOO_BIG}, /* one over */
      {0, 0, 1, 0, WISP_ERR_TOO_BIG},   /* limit 0 */
      {0, 0, 0, 0, WISP_OK},            /* nothing into nothing */
      {6, 0, 4, 10, WISP_OK},
      {6, 0, 5, 10, WISP_ERR_TOO_BIG},
      {10, 0, 1, 10, WISP_ERR_TOO_BIG}, /* full */
      {10, 0, 0, 10, WISP_OK},          /* full, empty append */
      {10, 5, 5, 10, WISP_OK},          /* the limit counts unread bytes only */
      {10, 5, 6, 10, WISP_ERR_TOO_BIG},
      {50, 0, 50, 99, WISP_ERR_TOO_BIG},
      {20, 0, 30, 10, WISP_ERR_TOO_BIG}, /* already over a smaller limit */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    print_message("# case %zu\n", i);
    wisp_buf b = {0};
    assert_int_equal(wisp_buf_append(&b, data, cases[i].have, 1000), WISP_OK);
    wisp_buf_consume(&b, cases[i].consumed);
    wisp_buf before = b;
    size_t unread = cases[i].have - cases[i].consumed;
    assert_int_equal(wisp_buf_append(&b, data + 50, cases[i].add, cases[i].limit), cases[i].want);
    if (cases[i].want == WISP_OK) {
      assert_int_equal(wisp_buf_len(&b), unread + cases[i].add);
      if (unread) assert_memory_equal(wisp_buf_rptr(&b), data + cases[i].consumed, unread);
      if (cases[i].add) assert_memory_equal(wisp_buf_rptr(&b) + unread, data + 50, cases[i].add);
    } else {
      assert_unchanged(&b, &before, data + cases[i].consumed, unread);
    }
    wisp_buf_cleanup(&b);
  }
}

static void test_limit_no_overflow(void **state) {
  (void)state;
  wisp_buf b = {0};
  uint8_t byte = 0;
  assert_int_equal(wisp_buf_append(&b, "abc", 3, 16), WISP_OK);
  wisp_buf before = b;
  /* Lengths near SIZE_MAX must not wrap around the limit check. */
  assert_int_equal(wisp_buf_append(&b, &byte, SIZE_MAX, 16), WISP_ERR_TOO_BIG);
  assert_int_equal(wisp_buf_append(&b, &byte, SIZE_MAX - 1, SIZE_MAX), WISP_ERR_TOO_BIG);
  assert_int_equal(wisp_buf_append(&b, &byte, SIZE_MAX - 2, SIZE_MAX - 1), WISP_ERR_TOO_BIG);
  assert_unchanged(&b, &before, (const uint8_t *)"abc", 3);
  wisp_buf_cleanup(&b);
}

static void test_growth(void **state) {
  (void)state;
  enum { TOTAL = 100000, CHUNK = 999 };
  uint8_t *want = malloc(TOTAL);
  assert_non_null(want);
  fill(want, TOTAL, 3);
  wisp_buf b = {0};
  size_t off = 0;
  while (off < TOTAL) {
    size_t n = TOTAL - off < CHUNK ? TOTAL - off : CHUNK;
    assert_int_equal(wisp_buf_append(&b, want + off, n, TOTAL), WISP_OK);
    off += n;
    assert_true(b.cap >= wisp_buf_len(&b));
  }
  assert_int_equal(wisp_buf_len(&b), TOTAL);
  assert_memory_equal(wisp_buf_rptr(&b), want, TOTAL);
  /* Growth is geometric from a 4 KiB start: a power-of-two multiple. */
  assert_true(b.cap >= TOTAL);
  assert_int_equal(b.cap % 4096, 0);
  assert_int_equal((b.cap / 4096) & (b.cap / 4096 - 1), 0);
  /* One append larger than the current capacity grows it in one go. */
  wisp_buf c = {0};
  assert_int_equal(wisp_buf_append(&c, want, 10000, TOTAL), WISP_OK);
  assert_int_equal(c.cap, 16384);
  assert_memory_equal(wisp_buf_rptr(&c), want, 10000);
  wisp_buf_cleanup(&c);
  wisp_buf_cleanup(&b);
  assert_null(b.data);
  assert_int_equal(wisp_buf_len(&b), 0);
  free(want);
}

static void test_compaction(void **state) {
  (void)state;
  uint8_t data[4096];
  fill(data, sizeof(data), 5);
  wisp_buf b = {0};
  assert_int_equal(wisp_buf_append(&b, data, 4096, 1 << 20), WISP_OK);
  assert_int_equal(b.cap, 4096);
  wisp_buf_consume(&b, 4000);
  assert_int_equal(b.rpos, 4000);
  /* No room at the end, but room at the front: slide instead of growing. */
  assert_int_equal(wisp_buf_append(&b, data, 1000, 1 << 20), WISP_OK);
  assert_int_equal(b.cap, 4096);
  assert_int_equal(b.rpos, 0);
  assert_int_equal(wisp_buf_len(&b), 1096);
  assert_memory_equal(wisp_buf_rptr(&b), data + 4000, 96);
  assert_memory_equal(wisp_buf_rptr(&b) + 96, data, 1000);
  /* Room at the end: no compaction, the read cursor stays. */
  wisp_buf_consume(&b, 50);
  assert_int_equal(wisp_buf_append(&b, data, 10, 1 << 20), WISP_OK);
  assert_int_equal(b.rpos, 50);
  assert_int_equal(wisp_buf_len(&b), 1056);
  /* Compaction and growth together: unread bytes keep their order. */
  assert_int_equal(wisp_buf_append(&b, data, 4096, 1 << 20), WISP_OK);
  assert_int_equal(b.rpos, 0);
  assert_int_equal(b.cap, 8192);
  assert_int_equal(wisp_buf_len(&b), 1056 + 4096);
  assert_memory_equal(wisp_buf_rptr(&b), data + 4050, 46);
  assert_memory_equal(wisp_buf_rptr(&b) + 46, data, 1000);
  assert_memory_equal(wisp_buf_rptr(&b) + 1046, data, 10);
  assert_memory_equal(wisp_buf_rptr(&b) + 1056, data, 4096);
  wisp_buf_cleanup(&b);
}

/* A drained buffer rewinds and reuses its storage: no compaction, no
 * reallocation, no growth on the next append. */
static void test_drained_reuses_storage(void **state) {
  (void)state;
  uint8_t data[3000];
  fill(data, sizeof(data), 9);
  wisp_buf b = {0};
  assert_int_equal(wisp_buf_append(&b, data, 3000, 1 << 20), WISP_OK);
  uint8_t *storage = b.data;
  size_t cap = b.cap;
  for (int round = 0; round < 10; round++) {
    uint8_t out[3000];
    assert_int_equal(wisp_buf_read(&b, out, sizeof(out)), 3000);
    assert_memory_equal(out, data, 3000);
    assert_int_equal(b.rpos, 0);
    assert_int_equal(b.wpos, 0);
    assert_int_equal(wisp_buf_append(&b, data, 3000, 1 << 20), WISP_OK);
    assert_ptr_equal(b.data, storage);
    assert_int_equal(b.cap, cap);
  }
  /* consume() drains the same way. */
  wisp_buf_consume(&b, 3000);
  assert_int_equal(wisp_buf_len(&b), 0);
  assert_int_equal(b.rpos, 0);
  assert_ptr_equal(b.data, storage);
  wisp_buf_cleanup(&b);
  assert_null(b.data);
}

static void test_cleanup_releases(void **state) {
  (void)state;
  wisp_buf b = {0};
  assert_int_equal(wisp_buf_append(&b, "abcdef", 6, 64), WISP_OK);
  wisp_buf_consume(&b, 2);
  wisp_buf_cleanup(&b);
  assert_null(b.data);
  assert_int_equal(b.cap, 0);
  assert_int_equal(b.rpos, 0);
  assert_int_equal(b.wpos, 0);
  /* Usable again after cleanup. */
  assert_int_equal(wisp_buf_append(&b, "xy", 2, 64), WISP_OK);
  assert_memory_equal(wisp_buf_rptr(&b), "xy", 2);
  wisp_buf_cleanup(&b);
}

/* A buffer marked slab takes its storage from wisp_slab's freelists, as it
 * grows too, and hands it back there; it stays marked after cleanup. */
static void test_slab_storage(void **state) {
  (void)state;
  wisp_slab_set_cache(1); /* off under ASan unless asked */
  wisp_slab_trim(0);
  uint8_t big[6000];
  fill(big, sizeof(big), 3);
  wisp_buf b = {.slab = true};
  assert_int_equal(wisp_buf_append(&b, big, 100, sizeof(big)), WISP_OK);
  assert_int_equal(b.cap, 4096);
  wisp_buf_cleanup(&b);
  assert_null(b.data);
  assert_true(b.slab);
  /* The first 4 KiB went to the freelist, and the next buffer takes it. */
  size_t cached = wisp_slab_cached();
  assert_int_equal(cached, wisp_slab_class_size(4096) + 16);
  assert_int_equal(wisp_buf_append(&b, big, 100, sizeof(big)), WISP_OK);
  assert_int_equal(wisp_slab_cached(), 0);
  /* Grown past the freelists' sizes: the bytes move, the 4 KiB goes back. */
  wisp_buf_consume(&b, 40);
  assert_int_equal(wisp_buf_append(&b, big + 100, sizeof(big) - 100, sizeof(big)), WISP_OK);
  assert_int_equal(wisp_buf_len(&b), sizeof(big) - 40);
  assert_memory_equal(wisp_buf_rptr(&b), big + 40, sizeof(big) - 40);
  assert_int_equal(wisp_slab_cached(), cached);
  wisp_buf_cleanup(&b);
  assert_true(b.slab);
  wisp_slab_trim(0);
  wisp_slab_set_cache(0);
}

/* Random appends, reads and consumes against a plain array model. */
/* wisp_buf_extend: the bytes it hands out are written (the caller fills
 * them), it grows like an append, and past the limit it changes nothing. */
static void test_extend(void **state) {
  (void)state;
  wisp_buf b = {0};
  uint8_t *at = wisp_buf_extend(&b, 3, 10);
  assert_non_null(at);
  memcpy(at, "abc", 3);
  at = wisp_buf_extend(&b, 0, 10);
  assert_non_null(at);
  assert_int_equal(3, wisp_buf_len(&b));
  assert_null(wisp_buf_extend(&b, 8, 10)); /* 11 > 10 */
  assert_null(wisp_buf_extend(&b, SIZE_MAX, 10));
  assert_int_equal(3, wisp_buf_len(&b));
  at = wisp_buf_extend(&b, 7, 10); /* exactly the limit */
  assert_non_null(at);
  memcpy(at, "defghij", 7);
  assert_memory_equal("abcdefghij", wisp_buf_rptr(&b), 10);
  wisp_buf_consume(&b, 4);
  at = wisp_buf_extend(&b, 5000, 10000); /* grows past the first 4 KiB */
  assert_non_null(at);
  memset(at, 'z', 5000);
  assert_int_equal(5006, wisp_buf_len(&b));
  assert_memory_equal("efghijzz", wisp_buf_rptr(&b), 8);
  wisp_buf_cleanup(&b);
}

/* Nothing to add to a buffer that has no storage yet (zeroed, or after
 * cleanup): a pointer all the same, the buffer still empty and without
 * storage; past the limit still NULL. */
static void test_extend_zero_on_empty(void **state) {
  (void)state;
  wisp_buf b = {0};
  uint8_t *at = wisp_buf_extend(&b, 0, 10);
  assert_non_null(at);
  memcpy(at, "", 0);
  assert_int_equal(0, wisp_buf_len(&b));
  assert_null(b.data);
  assert_non_null(wisp_buf_extend(&b, 0, 0));
  assert_non_null(wisp_buf_extend(&b, 2, 10));
  wisp_buf_cleanup(&b);
  assert_non_null(wisp_buf_extend(&b, 0, 10)); /* released again */
  assert_int_equal(0, wisp_buf_len(&b));
  wisp_buf_cleanup(&b);
}

static void test_model(void **state) {
  (void)state;
  enum { LIMIT = 20000, OPS = 20000 };
  uint8_t *model = malloc(LIMIT);
  uint8_t src[3000], out[3000];
  assert_non_null(model);
  size_t mlen = 0;
  uint32_t rng = 12345;
  wisp_buf b = {0};
  for (int op = 0; op < OPS; op++) {
    rng = rng * 1103515245u + 12345u;
    size_t n = (rng >> 8) % sizeof(src);
    switch ((rng >> 24) % 3) {
      case 0: {
        fill(src, n, (unsigned)op);
        wisp_err want = mlen + n <= LIMIT ? WISP_OK : WISP_ERR_TOO_BIG;
        assert_int_equal(wisp_buf_append(&b, src, n, LIMIT), want);
        if (want == WISP_OK) {
          memcpy(model + mlen, src, n);
          mlen += n;
        }
        break;
      }
      case 1: {
        size_t got = wisp_buf_read(&b, out, n);
        assert_int_equal(got, n < mlen ? n : mlen);
        if (got) assert_memory_equal(out, model, got);
        memmove(model, model + got, mlen - got);
        mlen -= got;
        break;
      }
      default: {
        size_t k = n < mlen ? n : mlen;
        wisp_buf_consume(&b, k);
        memmove(model, model + k, mlen - k);
        mlen -= k;
      }
    }
    assert_int_equal(wisp_buf_len(&b), mlen);
    if (mlen) assert_memory_equal(wisp_buf_rptr(&b), model, mlen);
    assert_true(b.cap <= 2 * LIMIT);
    if (mlen == 0) {
      assert_int_equal(b.rpos, 0);
      assert_int_equal(b.wpos, 0);
    }
  }
  wisp_buf_cleanup(&b);
  free(model);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_zeroed_is_valid_and_empty),
      cmocka_unit_test(test_append_read_consume),
      cmocka_unit_test(test_limit),
      cmocka_unit_test(test_limit_no_overflow),
      cmocka_unit_test(test_growth),
      cmocka_unit_test(test_compaction),
      cmocka_unit_test(test_drained_reuses_storage),
      cmocka_unit_test(test_cleanup_releases),
      cmocka_unit_test(test_slab_storage),
      cmocka_unit_test(test_extend),
      cmocka_unit_test(test_extend_zero_on_empty),
      cmocka_unit_test(test_model),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
