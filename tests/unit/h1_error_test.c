/* Unit test for proxy/dataplane/wisp_h1's error answer (wisp_h1_put_error): the
 * reason goes into a header field (x-wisp-error), so a CR, LF or other
 * control byte in it (a peer's reason, an address, a TLS library's text)
 * must not end that field and start others. Also the head writers made
 * without printf (wisp_h1_put_status_line, _put_field, _put_line): the
 * bytes printf wrote, and all or nothing at the buffer's cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lib/wisp_buf.h"
#include "proxy/dataplane/wisp_h1.h"
#include "tests/unit/test_util.h"

static void test_reason_cannot_add_fields(void **state) {
  (void)state;
  wisp_buf out = {0};
  wisp_h1_put_error(&out, 502, "bad\r\nset-cookie: x=1\r\n\r\ninjected\x01\x7f end");
  char text[1024];
  size_t n = wisp_buf_len(&out);
  assert_true(n < sizeof(text));
  memcpy(text, wisp_buf_rptr(&out), n);
  text[n] = '\0';
  const char *body = strstr(text, "\r\n\r\n");
  assert_non_null(body);
  /* the head: the status line and four fields, none of them the reason's */
  assert_null(memmem(text, (size_t)(body - text), "\r\nset-cookie", 12));
  assert_non_null(strstr(text, "x-wisp-error: bad  set-cookie: x=1    injected   end\r\n"));
  for (const char *p = text; p < body; p++) {
    if (*p == '\r') {
      assert_int_equal('\n', p[1]);
    } else if (*p != '\n') {
      assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
    }
  }
  wisp_buf_cleanup(&out);
}

static void assert_buf_is(const wisp_buf *b, const char *want) {
  assert_int_equal(strlen(want), wisp_buf_len(b));
  assert_memory_equal(want, wisp_buf_rptr(b), strlen(want));
}

static void test_status_line(void **state) {
  (void)state;
  wisp_buf out = {0};
  assert_true(wisp_h1_put_status_line(&out, 200));
  assert_true(wisp_h1_put_status_line(&out, 599));
  assert_true(wisp_h1_put_status_line(&out, 999));
  assert_true(wisp_h1_put_status_line(&out, 1000)); /* out of three digits: printed as printf did */
  assert_true(wisp_h1_put_status_line(&out, 42));
  assert_buf_is(&out,
                "HTTP/1.1 200 OK\r\nHTTP/1.1 599 Server Error\r\nHTTP/1.1 999 Unknown\r\n"
                "HTTP/1.1 1000 Unknown\r\nHTTP/1.1 42 Unknown\r\n");
  wisp_buf_cleanup(&out);
}

static void test_field_and_literals(void **state) {
  (void)state;
  wisp_buf out = {0};
  nghttp2_nv nv = {(uint8_t *)"content-length", (uint8_t *)"64", 14, 2, 0};
  nghttp2_nv empty = {(uint8_t *)"x-empty", (uint8_t *)"", 7, 0, 0};
  assert_true(wisp_h1_put_field(&out, &nv));
  assert_true(wisp_h1_put_field(&out, &empty));
  assert_true(WISP_H1_PUT_LIT(&out, "\r\n"));
  assert_buf_is(&out, "content-length: 64\r\nx-empty: \r\n\r\n");
  wisp_buf_cleanup(&out);
}

/* A line that would take the buffer past WISP_H1_BUF_CAP is not written,
 * not even its first part. */
static void test_cap_all_or_nothing(void **state) {
  (void)state;
  wisp_buf out = {0};
  static char fill[WISP_H1_BUF_CAP - 10];
  memset(fill, 'x', sizeof(fill));
  assert_true(wisp_h1_put_line(&out, fill, sizeof(fill), "", 0, "", 0));
  nghttp2_nv nv = {(uint8_t *)"name", (uint8_t *)"value", 4, 5, 0}; /* 13 bytes: 3 too many */
  assert_false(wisp_h1_put_field(&out, &nv));
  assert_false(wisp_h1_put_line(&out, "abcd", 4, "efgh", 4, "ijk", 3));
  assert_int_equal(sizeof(fill), wisp_buf_len(&out));
  assert_true(wisp_h1_put_line(&out, "abcd", 4, "ef", 2, "ghij", 4)); /* 10: fits exactly */
  assert_int_equal(WISP_H1_BUF_CAP, wisp_buf_len(&out));
  assert_false(WISP_H1_PUT_LIT(&out, "\r\n"));
  wisp_buf_cleanup(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reason_cannot_add_fields),
      cmocka_unit_test(test_status_line),
      cmocka_unit_test(test_field_and_literals),
      cmocka_unit_test(test_cap_all_or_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
