/* Unit tests for lib/wisp_pipe: the bound of a direction, the callbacks a
 * write, a read under the bound, a shutdown and a close make due (and only
 * from the scheduler, never inside the write), EOF both ways, a close with
 * bytes unread (a reset, as a socket's), writes to a closed end (EPIPE),
 * and a large body moved through in pieces in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_pipe.h"
#include "tests/unit/test_util.h"

/* What a callback saw. */
typedef struct {
  int calls;
  int events; /* of the last call */
} seen;

static void record(wisp_pipe_end *e, int events, void *arg) {
  seen *s = arg;
  s->calls++;
  s->events = events;
}

typedef struct {
  wisp_pipe_sched s;
  wisp_pipe_end *a, *b;
  seen sa, sb;
} fixture;

static void setup(fixture *f) {
  memset(f, 0, sizeof(*f));
  wisp_pipe_sched_init(&f->s);
  wisp_pipe_new(&f->s, &f->a, &f->b);
  wisp_pipe_set_cb(f->a, record, &f->sa);
  wisp_pipe_set_cb(f->b, record, &f->sb);
}

static void test_bytes_and_wakeups(void **state) {
  (void)state;
  fixture f;
  setup(&f);
  uint8_t buf[64];
  assert_int_equal(wisp_pipe_read(f.b, buf, sizeof(buf)), WISP_PIPE_AGAIN);
  wisp_pipe_want(f.b, true, false);
  assert_false(wisp_pipe_sched_run(&f.s)); /* nothing to read: not due */
  assert_int_equal(wisp_pipe_write(f.a, "hello", 5), 5);
  assert_int_equal(f.sb.calls, 0); /* never from inside the write */
  assert_true(wisp_pipe_sched_run(&f.s));
  assert_int_equal(f.sb.calls, 1);
  assert_int_equal(f.sb.events, WISP_PIPE_READ);
  /* A read that leaves bytes makes the end due again (level-triggered). */
  assert_int_equal(wisp_pipe_read(f.b, buf, 2), 2);
  assert_memory_equal(buf, "he", 2);
  assert_true(wisp_pipe_sched_run(&f.s)); /* 3 bytes left */
  assert_int_equal(f.sb.calls, 2);
  assert_int_equal(wisp_pipe_read(f.b, buf, sizeof(buf)), 3);
  assert_memory_equal(buf, "llo", 3);
  assert_true(f.b->drained);
  assert_null(f.b->in.data); /* emptied: no buffer held */
  assert_false(wisp_pipe_sched_run(&f.s));
  /* Not wanted: not called, even with bytes there. */
  wisp_pipe_want(f.b, false, false);
  assert_int_equal(wisp_pipe_write(f.a, "x", 1), 1);
  assert_false(wisp_pipe_sched_run(&f.s));
  wisp_pipe_want(f.b, true, false); /* wanted again: due at once */
  assert_true(wisp_pipe_sched_run(&f.s));
  assert_int_equal(f.sb.calls, 3);
  wisp_pipe_close(f.a);
  wisp_pipe_close(f.b);
}

static void test_bound_and_writer_wakeup(void **state) {
  (void)state;
  fixture f;
  setup(&f);
  static uint8_t big[WISP_PIPE_CAP + 100];
  memset(big, 'z', sizeof(big));
  assert_int_equal(wisp_pipe_write(f.a, big, sizeof(big)), WISP_PIPE_CAP);
  assert_int_equal(wisp_pipe_write(f.a, big, 1), WISP_PIPE_AGAIN);
  assert_int_equal(wisp_buf_len(&f.b->in), WISP_PIPE_CAP); /* never past the bound */
  wisp_pipe_want(f.a, false, true);
  assert_false(wisp_pipe_sched_run(&f.s)); /* full: the writer is not due */
  assert_int_equal(f.sa.calls, 0);
  uint8_t buf[1000];
  assert_int_equal(wisp_pipe_read(f.b, buf, sizeof(buf)), sizeof(buf));
  assert_true(wisp_pipe_sched_run(&f.s)); /* room again: the writer is told */
  assert_int_equal(f.sa.calls, 1);
  assert_int_equal(f.sa.events, WISP_PIPE_WRITE);
  assert_int_equal(wisp_pipe_write(f.a, big, sizeof(big)), sizeof(buf));
  assert_int_equal(wisp_pipe_write(f.a, big, 1), WISP_PIPE_AGAIN);
  wisp_pipe_close(f.a);
  wisp_pipe_close(f.b);
}

static void test_eof_both_ways(void **state) {
  (void)state;
  fixture f;
  setup(&f);
  uint8_t buf[16];
  wisp_pipe_want(f.b, true, false);
  assert_int_equal(wisp_pipe_write(f.a, "req", 3), 3);
  wisp_pipe_shutdown(f.a);
  assert_int_equal(wisp_pipe_write(f.a, "x", 1), WISP_PIPE_ERROR); /* shut: no more writes */
  assert_int_equal(errno, EPIPE);
  assert_true(wisp_pipe_sched_run(&f.s));
  assert_int_equal(wisp_pipe_read(f.b, buf, sizeof(buf)), 3); /* the bytes first */
  assert_true(wisp_pipe_sched_run(&f.s));                     /* then EOF is due */
  assert_int_equal(wisp_pipe_read(f.b, buf, sizeof(buf)), 0);
  assert_int_equal(wisp_pipe_read(f.b, buf, sizeof(buf)), 0);
  /* Half-closed: the other direction still works, to its own EOF. */
  wisp_pipe_want(f.a, true, false);
  assert_int_equal(wisp_pipe_write(f.b, "resp", 4), 4);
  assert_true(wisp_pipe_sched_run(&f.s));
  assert_true(f.sa.calls >= 1);
  assert_int_equal(wisp_pipe_read(f.a, buf, sizeof(buf)), 4);
  wisp_pipe_shutdown(f.b);
  assert_int_equal(wisp_pipe_read(f.a, buf, sizeof(buf)), 0);
  wisp_pipe_close(f.a);
  wisp_pipe_close(f.b);
}

static void test_close(void **state) {
  (void)state;
  fixture f;
  setup(&f);
  uint8_t buf[16];
  /* |a| closes with its own bytes read: |b| reads what |a| wrote, then
   * EOF; its writes fail; a writer waiting for room is told. */
  wisp_pipe_want(f.b, true, true);
  assert_int_equal(wisp_pipe_write(f.a, "bye", 3), 3);
  wisp_pipe_close(f.a);
  assert_true(wisp_pipe_sched_run(&f.s));
  assert_int_equal(f.sb.events, WISP_PIPE_READ | WISP_PIPE_WRITE);
  assert_int_equal(wisp_pipe_read(f.b, buf, sizeof(buf)), 3);
  assert_memory_equal(buf, "bye", 3);
  assert_int_equal(wisp_pipe_read(f.b, buf, sizeof(buf)), 0);
  assert_int_equal(wisp_pipe_write(f.b, "x", 1), WISP_PIPE_ERROR);
  assert_int_equal(errno, EPIPE);
  wisp_pipe_close(f.b);

  /* Closed with bytes unread (a caller that left): a reset after the
   * bytes, once, then EOF, as a stream socket. Its end is freed with its
   * bytes (ASan: no leak). */
  setup(&f);
  assert_int_equal(wisp_pipe_write(f.b, "unread", 6), 6);
  assert_int_equal(wisp_pipe_write(f.a, "ok", 2), 2);
  wisp_pipe_want(f.a, true, false);
  assert_true(wisp_pipe_sched_busy(&f.s));
  wisp_pipe_close(f.a); /* due, then closed: taken off the ready list */
  assert_false(wisp_pipe_sched_busy(&f.s));
  assert_int_equal(wisp_pipe_read(f.b, buf, sizeof(buf)), 2);
  assert_int_equal(wisp_pipe_read(f.b, buf, sizeof(buf)), WISP_PIPE_ERROR);
  assert_int_equal(errno, ECONNRESET);
  assert_int_equal(wisp_pipe_read(f.b, buf, sizeof(buf)), 0);
  wisp_pipe_close(f.b);
  wisp_pipe_close(NULL);
}

/* A callback that closes its own end (a gateway that frees itself): the
 * scheduler goes on with the others. */
static void close_self(wisp_pipe_end *e, int events, void *arg) {
  (*(int *)arg)++;
  wisp_pipe_close(e);
}

static void test_close_in_callback(void **state) {
  (void)state;
  wisp_pipe_sched s;
  wisp_pipe_sched_init(&s);
  wisp_pipe_end *a1, *b1, *a2, *b2;
  wisp_pipe_new(&s, &a1, &b1);
  wisp_pipe_new(&s, &a2, &b2);
  int n = 0;
  wisp_pipe_set_cb(b1, close_self, &n);
  wisp_pipe_set_cb(b2, close_self, &n);
  wisp_pipe_want(b1, true, false);
  wisp_pipe_want(b2, true, false);
  wisp_pipe_shutdown(a1);
  wisp_pipe_shutdown(a2);
  assert_true(wisp_pipe_sched_run(&s));
  assert_int_equal(n, 2);
  assert_false(wisp_pipe_sched_busy(&s));
  uint8_t c;
  assert_int_equal(wisp_pipe_read(a1, &c, 1), 0); /* b1 closed */
  assert_int_equal(wisp_pipe_write(a2, "x", 1), WISP_PIPE_ERROR);
  wisp_pipe_close(a1);
  wisp_pipe_close(a2);
}

/* A reader and a writer driven by the scheduler alone move 5 MB through
 * the 64 KiB bound, in order, in uneven pieces. */
typedef struct {
  const uint8_t *src;
  size_t len, sent, got;
  uint8_t *dst;
  bool eof;
  int runs;
} transfer;

static void on_writer(wisp_pipe_end *e, int events, void *arg) {
  transfer *t = arg;
  while (t->sent < t->len) {
    size_t piece = 1 + (t->sent * 7919) % 40000;
    if (piece > t->len - t->sent) piece = t->len - t->sent;
    ssize_t n = wisp_pipe_write(e, t->src + t->sent, piece);
    if (n == WISP_PIPE_AGAIN) return;
    assert_true(n > 0);
    t->sent += (size_t)n;
  }
  wisp_pipe_shutdown(e);
  wisp_pipe_want(e, false, false);
}

static void on_reader(wisp_pipe_end *e, int events, void *arg) {
  transfer *t = arg;
  uint8_t buf[16 * 1024 + 3]; /* one read per call: the rest is due again */
  ssize_t n = wisp_pipe_read(e, buf, sizeof(buf));
  if (n == 0) {
    t->eof = true;
    wisp_pipe_want(e, false, false);
    return;
  }
  assert_true(n > 0);
  memcpy(t->dst + t->got, buf, (size_t)n);
  t->got += (size_t)n;
}

static void test_large_body(void **state) {
  (void)state;
  wisp_pipe_sched s;
  wisp_pipe_sched_init(&s);
  wisp_pipe_end *a, *b;
  wisp_pipe_new(&s, &a, &b);
  transfer t = {.len = 5 * 1000 * 1000};
  uint8_t *src = malloc(t.len);
  t.dst = malloc(t.len);
  for (size_t i = 0; i < t.len; i++) src[i] = (uint8_t)(i * 31 + i / 977);
  t.src = src;
  wisp_pipe_set_cb(a, on_writer, &t);
  wisp_pipe_set_cb(b, on_reader, &t);
  wisp_pipe_want(a, false, true);
  wisp_pipe_want(b, true, false);
  while (wisp_pipe_sched_run(&s)) {
    assert_true(wisp_buf_len(&b->in) <= WISP_PIPE_CAP);
    assert_true(++t.runs < 100000);
  }
  assert_true(t.eof);
  assert_int_equal(t.got, t.len);
  assert_memory_equal(t.dst, src, t.len);
  assert_null(b->in.data);
  wisp_pipe_close(a);
  wisp_pipe_close(b);
  free(src);
  free(t.dst);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bytes_and_wakeups), cmocka_unit_test(test_bound_and_writer_wakeup),
      cmocka_unit_test(test_eof_both_ways),     cmocka_unit_test(test_close),
      cmocka_unit_test(test_close_in_callback), cmocka_unit_test(test_large_body),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
