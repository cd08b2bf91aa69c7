/* In-process tests of proxy/wisp_dataplane.h, the calls the control side
 * makes: a policy put in force through the loader (wisp_authz_load) is
 * what GET /config reads back and what inbound requests are judged by; a
 * refused one leaves it in force; the counters snapshot counts the denial;
 * the listeners and the drain read as /metrics and /ready read them; the
 * drain hook is called once, and with no hooks the data plane works alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "proxy/control/wisp_authz_load.h"
#include "proxy/wisp_dataplane.h"
#include "tests/inproc/fixture.h"
#include "tests/unit/test_util.h"

/* The fixture's workload (TF_SPIFFE_ID) refuses /secret to every caller. */
static const char kPolicy[] =
    "apiVersion: wisp.dev/v1\n"
    "kind: AuthorizationPolicy\n"
    "metadata: {name: no-secret, namespace: test}\n"
    "spec:\n"
    "  selector: {serviceAccount: proxy}\n"
    "  action: DENY\n"
    "  rules:\n"
    "  - to: [{paths: [\"/secret\"]}]\n";

/* The status of a GET of |path| from a caller of the route (outbound ->
 * mTLS -> inbound, where the policy judges it -> app). */
static const char *get_status(tf_fixture *f, unsigned src_port, const char *path) {
  tp_peer *c = tf_client(f, f->route, src_port);
  tp_msg *m = tp_client_request(c, "GET", path, NULL, 0, NULL, 0, true);
  assert_true(tp_run_until(f->loop, tp_msg_closed, m, TF_WAIT));
  return tp_hdr_get(m, ":status");
}

static void test_policy_put_in_force(void **state) {
  tf_fixture *f = *state;
  wisp_dataplane_policy_info pol;
  wisp_dataplane_get_policy(&f->px, &pol);
  assert_null(pol.policy);
  assert_string_equal(get_status(f, 41001, "/secret"), "200"); /* no policy: all allowed */

  wisp_authz_load_update u = {.yaml = kPolicy, .len = strlen(kPolicy), .source = "test", .version = "v7"};
  char err[512] = "";
  assert_int_equal(wisp_authz_load_apply(&f->px, &u, err, sizeof(err)), WISP_OK);
  wisp_dataplane_get_policy(&f->px, &pol);
  assert_non_null(pol.policy);
  assert_non_null(pol.view);
  assert_string_equal(pol.version, "v7");
  assert_string_equal(pol.yaml, kPolicy);
  assert_string_equal(get_status(f, 41002, "/secret"), "403");
  assert_string_equal(get_status(f, 41003, "/open"), "200");
  wisp_dataplane_counters n;
  wisp_dataplane_get_counters(&f->px, &n);
  assert_int_equal(n.stats.requests_denied, 1);

  /* A policy that does not compile is refused with the reason; the last
   * good one stays in force. */
  static const char kBad[] = "apiVersion: wisp.dev/v1\nkind: NoSuchKind\n";
  wisp_authz_load_update bad = {.yaml = kBad, .len = strlen(kBad), .source = "test", .version = "v8"};
  assert_int_not_equal(wisp_authz_load_apply(&f->px, &bad, err, sizeof(err)), WISP_OK);
  assert_true(err[0] != '\0');
  wisp_dataplane_get_policy(&f->px, &pol);
  assert_string_equal(pol.version, "v7");
  assert_string_equal(get_status(f, 41004, "/secret"), "403");
}

static void test_listeners_and_drain(void **state) {
  tf_fixture *f = *state;
  size_t n = wisp_dataplane_listener_count(&f->px);
  assert_int_equal(n, 2); /* the route and the inbound port */
  bool dirs[2] = {false, false};
  for (size_t i = 0; i < n; i++) {
    wisp_dataplane_listener l;
    wisp_dataplane_get_listener(&f->px, i, &l);
    assert_non_null(l.name);
    dirs[l.dir] = true;
  }
  assert_true(dirs[WISP_DIR_OUTBOUND] && dirs[WISP_DIR_INBOUND]);
  assert_true(wisp_dataplane_listening(&f->px));
  assert_false(wisp_dataplane_draining(&f->px));
  wisp_dataplane_start_drain(&f->px);
  assert_true(wisp_dataplane_draining(&f->px));
  assert_false(wisp_dataplane_listening(&f->px)); /* /ready: not ready */
  wisp_dataplane_start_drain(&f->px);             /* once only: a second call changes nothing */
  assert_true(wisp_dataplane_draining(&f->px));
}

static void count_drain(void *ctx) { (*(int *)ctx)++; }

/* The drain hook is called once per drain, on the loop, with its ctx; with
 * the hooks cleared the data plane drains as if no control side were
 * there. */
static void test_drain_hook(void **state) {
  tf_fixture *f = *state;
  int drains = 0;
  wisp_dataplane_hooks h = {.ctx = &drains, .drain_started = count_drain};
  wisp_dataplane_set_hooks(&f->px, &h);
  wisp_dataplane_start_drain(&f->px);
  wisp_dataplane_start_drain(&f->px);
  assert_int_equal(drains, 1);
}

static void test_no_hooks(void **state) {
  tf_fixture *f = *state;
  int drains = 0;
  wisp_dataplane_hooks h = {.ctx = &drains, .drain_started = count_drain};
  wisp_dataplane_set_hooks(&f->px, &h);
  wisp_dataplane_set_hooks(&f->px, NULL);
  assert_string_equal(get_status(f, 41005, "/open"), "200"); /* no probe hook asked */
  wisp_dataplane_start_drain(&f->px);
  assert_true(wisp_dataplane_draining(&f->px));
  assert_int_equal(drains, 0);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_policy_put_in_force, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_listeners_and_drain, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_drain_hook, tf_setup_echo, tf_teardown),
      cmocka_unit_test_setup_teardown(test_no_hooks, tf_setup_echo, tf_teardown),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
