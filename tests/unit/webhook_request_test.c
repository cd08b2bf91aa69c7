/* Unit tests for control/agent/wisp_webhook_request: what the admission
 * webhook reads of a request head (pure), table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "control/agent/wisp_webhook_request.h"

typedef struct {
  const char *head; /* without the final blank line */
  bool ok;
  int status; /* when refused */
  const char *method, *path;
  bool http10, has_length, chunked, close, expect_continue;
  size_t length;
} head_case;

static const head_case kCases[] = {
    /* what the API server sends */
    {"POST /mutate?timeout=10s HTTP/1.1\r\nHost: wisp\r\nContent-Type: application/json\r\nContent-Length: 1234", true,
     0, "POST", "/mutate?timeout=10s", false, true, false, false, false, 1234},
    /* names are case-insensitive, values trimmed */
    {"POST /mutate HTTP/1.1\r\ncontent-length:   7  \r\nCONNECTION: close", true, 0, "POST", "/mutate", false, true,
     false, true, false, 7},
    /* HTTP/1.0 closes unless it says otherwise */
    {"GET / HTTP/1.0", true, 0, "GET", "/", true, false, false, true, false, 0},
    {"POST /mutate HTTP/1.1\r\nTransfer-Encoding: chunked", true, 0, "POST", "/mutate", false, false, true, false,
     false, 0},
    {"POST /mutate HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2000000", true, 0, "POST", "/mutate", false,
     true, false, false, true, 2000000},
    {"POST /mutate HTTP/1.1\r\nExpect: something-else", true, 0, "POST", "/mutate", false, false, false, false, false,
     0},
    /* refused: 400 */
    {"POST /mutate HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1", false, 400, NULL, NULL, false, false, false,
     false, false, 0},
    {"POST /mutate HTTP/1.1\r\nContent-Length: 12x", false, 400, NULL, NULL, false, false, false, false, false, 0},
    {"POST /mutate HTTP/1.1\r\nContent-Length: -1", false, 400, NULL, NULL, false, false, false, false, false, 0},
    {"POST /mutate HTTP/1.1\r\nContent-Length:", false, 400, NULL, NULL, false, false, false, false, false, 0},
    {"POST /mutate HTTP/1.1\r\nContent-Length: 123456789012345678901234", false, 400, NULL, NULL, false, false, false,
     false, false, 0},
    {"POST /mutate HTTP/2.0", false, 400, NULL, NULL, false, false, false, false, false, 0},
    {"POST /mutate", false, 400, NULL, NULL, false, false, false, false, false, 0},
    {"", false, 400, NULL, NULL, false, false, false, false, false, 0},
};

static void test_heads(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); i++) {
    const head_case *c = &kCases[i];
    wwr_request q;
    int status = 0;
    bool ok = wwr_parse_head(&q, c->head, strlen(c->head), &status);
    print_message("# case %zu: %s\n", i, ok ? "parsed" : "refused");
    assert_int_equal(ok, c->ok);
    if (!ok) {
      assert_int_equal(status, c->status);
      continue;
    }
    assert_string_equal(q.method, c->method);
    assert_string_equal(q.path, c->path);
    assert_int_equal(q.http10, c->http10);
    assert_int_equal(q.has_length, c->has_length);
    assert_int_equal(q.chunked, c->chunked);
    assert_int_equal(q.close, c->close);
    assert_int_equal(q.expect_continue, c->expect_continue);
    assert_int_equal(q.length, c->length);
  }
}

/* A request line longer than the parser reads is refused, not cut. */
static void test_long_request_line(void **state) {
  (void)state;
  char head[1024];
  int n = snprintf(head, sizeof(head), "POST /");
  while (n < 600) head[n++] = 'a';
  n += snprintf(head + n, sizeof(head) - (size_t)n, " HTTP/1.1");
  wwr_request q;
  int status = 0;
  assert_false(wwr_parse_head(&q, head, (size_t)n, &status));
  assert_int_equal(status, 400);
}

static void test_status_text(void **state) {
  (void)state;
  assert_string_equal(wwr_status_text(200), "OK");
  assert_string_equal(wwr_status_text(411), "Length Required");
  assert_string_equal(wwr_status_text(413), "Content Too Large");
  assert_string_equal(wwr_status_text(431), "Request Header Fields Too Large");
  assert_string_equal(wwr_status_text(599), "Error");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_heads),
      cmocka_unit_test(test_long_request_line),
      cmocka_unit_test(test_status_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
