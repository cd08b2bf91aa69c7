/* In-process test of lib/wisp_h2conn's reading over TLS: an mTLS caller
 * sends more than one wake-up's read budget (64 KiB) in one go, and the
 * request behind it still gets its answer. TLS reads go through the
 * transport's buffer (one read(2) takes several records): bytes left in
 * it when the budget ends are announced by no socket event, so the
 * connection must take them itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tests/inproc/fixture.h"
#include "tests/unit/test_util.h"

#define FRONTEND_ID "spiffe://example.org/ns/shop/sa/frontend"
/* HTTP/2 frames of a type no one knows (ignored, RFC 9113 5.5), one TLS
 * record each: together exactly the 64 KiB budget. */
#define FILLER_FRAMES 4
#define FILLER_FRAME (16 * 1024)
#define FRAME_HEADER 9
#define UNKNOWN_TYPE 0xb0

static bool ready(void *arg) {
  const tp_peer *p = arg;
  return (p->handshaken && p->got_settings && p->settings_acked) || p->eof || p->failed;
}

static void test_request_behind_read_budget(void **state) {
  tf_fixture *f = *state;
  tp_peer *c = tf_tls_client(f, f->inbound, 40030, FRONTEND_ID, false);
  assert_non_null(c);
  assert_true(tp_run_until(f->loop, ready, c, TF_WAIT));
  assert_true(c->handshaken);
  uint8_t *frame = calloc(1, FILLER_FRAME);
  assert_non_null(frame);
  size_t payload = FILLER_FRAME - FRAME_HEADER;
  frame[0] = (uint8_t)(payload >> 16);
  frame[1] = (uint8_t)(payload >> 8);
  frame[2] = (uint8_t)payload;
  frame[3] = UNKNOWN_TYPE;
  for (int i = 0; i < FILLER_FRAMES; i++) tp_peer_write_raw(c, frame, FILLER_FRAME);
  free(frame);
  /* All of it, and the request's HEADERS, is in the proxy's socket before
   * the proxy reads any (one loop, the test's). */
  tp_msg *m = tp_client_request(c, "GET", "/behind", NULL, 0, NULL, 0, true);
  tp_peer_flush(c);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  assert_string_equal(tp_hdr_get(m, ":status"), "200");
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_request_behind_read_budget, tf_setup_echo, tf_teardown),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
