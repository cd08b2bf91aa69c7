/* Unit test for proxy/dataplane/wisp_h1's error answer (wisp_h1_put_error): the
 * reason goes into a header field (x-wisp-error), so a CR, LF or other
 * control byte in it (a peer's reason, an address, a TLS library's text)
 * must not end that field and start others. */
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reason_cannot_add_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
