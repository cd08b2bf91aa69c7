/* Unit tests for lib/wisp_filewatch: which changes are seen (size, mtime,
 * a rename over the file), that each is reported once, that a file missing
 * mid-rotation is not a change, and that a failed start leaves the watch
 * untouched. Real files in a temp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/wisp_filewatch.h"
#include "tests/unit/test_util.h"

static char g_dir[256];

static int setup(void **state) {
  (void)state;
  snprintf(g_dir, sizeof(g_dir), "%s/filewatch.XXXXXX", getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
  return mkdtemp(g_dir) ? 0 : -1;
}

static const char *path(const char *name) {
  static char p[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof(p[k]), "%s/%s", g_dir, name);
  return p[k];
}

static void write_file(const char *p, const char *text) {
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

/* Sets |p|'s mtime to |sec|.|nsec| (so tests do not wait for the clock). */
static void set_mtime(const char *p, time_t sec, long nsec) {
  struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
  assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static void test_changes_seen_once(void **state) {
  (void)state;
  const char *a = path("a"), *b = path("b");
  write_file(a, "one");
  write_file(b, "two");
  set_mtime(a, 1000, 0);
  set_mtime(b, 1000, 0);
  const char *paths[] = {a, b};
  wisp_filewatch w = {0};
  size_t bad = 99;
  assert_int_equal(wisp_filewatch_init(&w, paths, 2, &bad), WISP_OK);
  assert_int_equal(bad, 99); /* set only on failure */
  assert_string_equal(wisp_filewatch_get0_path(&w, 1), b);
  assert_null(wisp_filewatch_get0_path(&w, 2));
  assert_false(wisp_filewatch_changed(&w));

  /* Size. */
  write_file(b, "two!");
  set_mtime(b, 1000, 0);
  assert_true(wisp_filewatch_changed(&w));
  assert_false(wisp_filewatch_changed(&w)); /* reported once */

  /* mtime alone, to the nanosecond. */
  set_mtime(a, 1000, 1);
  assert_true(wisp_filewatch_changed(&w));
  assert_false(wisp_filewatch_changed(&w));

  /* Replaced by rename: same size and mtime, a new inode (how Kubernetes
   * swaps a mounted secret). */
  const char *tmp = path("a.new");
  write_file(tmp, "one");
  set_mtime(tmp, 1000, 1);
  assert_int_equal(rename(tmp, a), 0);
  assert_true(wisp_filewatch_changed(&w));
  assert_false(wisp_filewatch_changed(&w));
  wisp_filewatch_cleanup(&w);
  assert_int_equal(w.n, 0);
  wisp_filewatch_cleanup(&w); /* idempotent */
}

static void test_missing_is_not_a_change(void **state) {
  (void)state;
  const char *a = path("m");
  write_file(a, "x");
  const char *paths[] = {a};
  wisp_filewatch w = {0};
  size_t bad;
  assert_int_equal(wisp_filewatch_init(&w, paths, 1, &bad), WISP_OK);
  assert_int_equal(unlink(a), 0);
  assert_false(wisp_filewatch_changed(&w)); /* gone mid-rotation */
  assert_false(wisp_filewatch_changed(&w));
  write_file(a, "xy"); /* back, different: now it is a change */
  assert_true(wisp_filewatch_changed(&w));
  assert_false(wisp_filewatch_changed(&w));
  wisp_filewatch_cleanup(&w);
}

static void test_init_failure_leaves_watch(void **state) {
  (void)state;
  const char *ok = path("ok");
  write_file(ok, "x");
  const char *kept[] = {ok};
  wisp_filewatch w = {0};
  size_t bad = 99;
  assert_int_equal(wisp_filewatch_init(&w, kept, 1, &bad), WISP_OK);
  const char *paths[] = {ok, path("nope")};
  errno = 0;
  assert_int_equal(wisp_filewatch_init(&w, paths, 2, &bad), WISP_ERR_IO);
  assert_int_equal(errno, ENOENT);
  assert_int_equal(bad, 1);
  assert_int_equal(w.n, 1); /* the old watch is untouched */
  assert_string_equal(wisp_filewatch_get0_path(&w, 0), ok);
  const char *many[WISP_FILEWATCH_MAX + 1];
  for (size_t i = 0; i <= WISP_FILEWATCH_MAX; i++) many[i] = ok;
  assert_int_equal(wisp_filewatch_init(&w, many, WISP_FILEWATCH_MAX + 1, &bad), WISP_ERR_USAGE);
  assert_int_equal(bad, WISP_FILEWATCH_MAX + 1);
  assert_int_equal(w.n, 1);
  wisp_filewatch_cleanup(&w);
  /* A zeroed watch watches nothing. */
  assert_false(wisp_filewatch_changed(&w));
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_changes_seen_once),
      cmocka_unit_test(test_missing_is_not_a_change),
      cmocka_unit_test(test_init_failure_leaves_watch),
  };
  return WISP_RUN_GROUP_TESTS(tests, setup, NULL);
}
