/* In-process tests of proxy/dataplane/wisp_tunnel: an outbound L4 tunnel (as from
 * transparent mode, a non-HTTP caller) whose dial to the peer sidecar fails
 * at once is closed, its caller reset and the failure logged, and gives
 * back all it held: its TLS end, made before the dial, had no fd yet and
 * tun_close skipped it, leaking the SSL (LeakSanitizer under
 * --config=asan fails this test at exit without the fix in 7b37874). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/dataplane/internal.h"
#include "proxy/dataplane/wisp_tunnel.h"
#include "tests/inproc/fixture.h"
#include "tests/unit/test_util.h"

/* TCP connect() to a broadcast address fails at once (ENETUNREACH), not
 * later on the socket: the dial fails before the peer end has an fd. */
#define UNREACHABLE_PEER "255.255.255.255:443"

typedef struct {
  int fd;
  bool closed;
} raw_caller;

static bool caller_closed(void *arg) {
  raw_caller *c = arg;
  char buf[256];
  ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
  c->closed = true; /* EOF, or a reset */
  return true;
}

static void test_outbound_dial_fails_at_once(void **state) {
  tf_fixture *f = *state;
  char name[] = UNREACHABLE_PEER, expect_id[] = TF_SPIFFE_ID;
  wisp_target up = {.px = &f->px, .name = name, .tls = true, .expect_id = expect_id};
  assert_int_equal(wisp_addr_parse(&up.addr, UNREACHABLE_PEER), WISP_OK);
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  raw_caller caller = {.fd = sv[0]};
  wisp_connlimit_slot slot = {0};
  wisp_tunnel_outbound(&f->px, sv[1], "127.0.0.1:40100", &up, &slot);
  assert_true(tp_run_until(f->loop, caller_closed, &caller, TF_WAIT));
  const char *const line[] = {"\"event\":\"l4_failed\"", "\"upstream\":\"" UNREACHABLE_PEER "\"",
                              "cannot connect to " UNREACHABLE_PEER, NULL};
  assert_true(tf_log_line_has(f, line));
  close(sv[0]);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_outbound_dial_fails_at_once, tf_setup_echo, tf_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
