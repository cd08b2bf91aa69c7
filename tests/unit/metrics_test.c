/* Unit tests for proxy/dataplane/wisp_metrics: SPIFFE IDs split into labels, the
 * peer cap and the series cap (overflow labels, counted once), and the
 * rendered histogram; and a micro benchmark of the per-request cost
 * (thread CPU time, as 1 to 4096 distinct callers) that runs only with
 * WISP_METRICS_BENCH=1 (skipped otherwise):
 *   bazel test -c opt //tests/unit:metrics_test --test_env=WISP_METRICS_BENCH=1 \
 *     --test_output=all */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/wisp_spiffe.h"
#include "proxy/dataplane/wisp_metrics.h"
#include "tests/unit/test_util.h"

#define B "spiffe://shop.local/ns/a/sa/b"
#define C "spiffe://shop.local/ns/a/sa/c"
#define ME "spiffe://shop.local/ns/shop/sa/orders"

static void test_split(void **state) {
  (void)state;
  static const struct {
    const char *id, *td, *ns, *sa;
  } kCases[] = {
      {B, "shop.local", "a", "b"},
      {"spiffe://td/ns/x/sa/y/z", "td", "unknown", "unknown"}, /* not exactly /ns/NS/sa/SA */
      {"spiffe://td/workload/7", "td", "unknown", "unknown"},
      {"spiffe://td", "td", "unknown", "unknown"},
      {"spiffe://td/ns//sa/y", "td", "unknown", "unknown"},
      {"https://td/ns/x/sa/y", "unknown", "unknown", "unknown"},
      {NULL, "unknown", "unknown", "unknown"},
  };
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); i++) {
    char td[64], ns[64], sa[64];
    wisp_spiffe_split_names(kCases[i].id, td, sizeof(td), ns, sizeof(ns), sa, sizeof(sa));
    assert_string_equal(td, kCases[i].td);
    assert_string_equal(ns, kCases[i].ns);
    assert_string_equal(sa, kCases[i].sa);
  }
}

static char *render(wisp_metrics *m) {
  static char text[64 << 20];
  wisp_json_writer w;
  wisp_json_writer_init(&w, sizeof(text) - 1, WISP_JSON_ESCAPE_U);
  wisp_metrics_render(&w, m, ME);
  assert_int_equal(w.err, WISP_OK);
  size_t n = wisp_buf_len(&w.out);
  memcpy(text, wisp_buf_rptr(&w.out), n);
  text[n] = 0;
  wisp_json_writer_cleanup(&w);
  return text;
}

static void request(wisp_metrics *m, const char *peer, int status, double ms) {
  wisp_metrics_request r = {.inbound = true,
                            .peer_id = peer,
                            .status = status,
                            .grpc_status = -1,
                            .duration_ms = ms,
                            .bytes_in = 10,
                            .bytes_out = 20};
  wisp_metrics_request_done(m, &r);
}

static void test_peer_cap(void **state) {
  (void)state;
  wisp_metrics *m = wisp_metrics_new(1, 100, WISP_METRICS_MAX_BYTES_DEFAULT);
  request(m, B, 200, 3);
  request(m, B, 200, 3);
  request(m, C, 200, 3); /* the second peer: over the cap */
  request(m, NULL, 200, 3);
  assert_int_equal(wisp_metrics_peers(m), 1);
  assert_int_equal(wisp_metrics_overflowed(m), 1);
  const char *t = render(m);
  assert_non_null(strstr(t, "source_principal=\"" B "\""));
  assert_null(strstr(t, C));
  assert_non_null(strstr(t, "source_principal=\"overflow\",source_trust_domain=\"overflow\""));
  assert_non_null(strstr(t, "source_principal=\"unknown\""));
  assert_non_null(strstr(t, "destination_workload=\"orders\",destination_workload_namespace=\"shop\""));
  /* 3 ms lands in le="5" and above, not le="1" */
  assert_non_null(strstr(t, "le=\"1\"} 0\n"));
  assert_non_null(strstr(t, "le=\"5\"} 2\n"));
  assert_non_null(strstr(t, "le=\"3600000\"} 2\n"));
  assert_null(strstr(t, "e+")); /* no exponents in le labels */
  wisp_metrics_free(m);
}

/* Requests from two peers in turns, and runs from one: each counted under
 * its own peer (peer_slot remembers the last peer it found). */
static void test_peers_in_turn(void **state) {
  (void)state;
  wisp_metrics *m = wisp_metrics_new(10, 100, WISP_METRICS_MAX_BYTES_DEFAULT);
  static const char *const kOrder[] = {B, C, B, C, B, B, B, NULL, C};
  for (size_t i = 0; i < sizeof(kOrder) / sizeof(kOrder[0]); i++) request(m, kOrder[i], 200, 3);
  assert_int_equal(wisp_metrics_peers(m), 2);
  const char *t = render(m);
  /* the request counter's lines come first, a peer's only line each */
  const char *b = strstr(t, "source_principal=\"" B "\""), *c = strstr(t, "source_principal=\"" C "\"");
  const char *u = strstr(t, "source_principal=\"unknown\"");
  assert_non_null(b);
  assert_non_null(c);
  assert_non_null(u);
  assert_non_null(strstr(b, "} 5\n"));
  assert_true(strstr(b, "} 5\n") < strchr(b, '\n') + 1);
  assert_true(strstr(c, "} 3\n") < strchr(c, '\n') + 1);
  assert_true(strstr(u, "} 1\n") < strchr(u, '\n') + 1);
  wisp_metrics_free(m);
}

static void test_series_cap(void **state) {
  (void)state;
  wisp_metrics *m = wisp_metrics_new(10, 2, WISP_METRICS_MAX_BYTES_DEFAULT);
  request(m, B, 200, 1);
  request(m, B, 201, 1);
  request(m, B, 202, 1); /* a third series: over the cap */
  request(m, B, 503, 1);
  assert_int_equal(wisp_metrics_overflowed(m), 2);
  const char *t = render(m);
  assert_non_null(strstr(t, "response_code=\"overflow\",grpc_response_status=\"overflow\",code=\"2xx\""));
  assert_non_null(strstr(t, "response_code=\"overflow\",grpc_response_status=\"overflow\",code=\"5xx\""));
  assert_null(strstr(t, "response_code=\"202\""));
  /* unusual codes are bounded too */
  wisp_metrics_free(m);
  m = wisp_metrics_new(10, 100, WISP_METRICS_MAX_BYTES_DEFAULT);
  request(m, B, 999, 1);
  wisp_metrics_request r = {.inbound = false, .peer_id = B, .status = 200, .grpc_status = 99};
  wisp_metrics_request_done(m, &r);
  t = render(m);
  assert_non_null(strstr(t, "response_code=\"other\",grpc_response_status=\"\",code=\"other\""));
  /* a gRPC status above 16 is UNKNOWN (2), as wisp_grpc_status_parse makes it */
  assert_non_null(strstr(t, "response_code=\"200\",grpc_response_status=\"2\",code=\"2xx\""));
  assert_null(strstr(t, "grpc_response_status=\"other\""));
  wisp_metrics_free(m);
}

/* A label value holding a backslash, a double quote and a newline is
 * escaped as the text format wants: every line stays one sample. */
static void test_label_escape(void **state) {
  (void)state;
  wisp_metrics *m = wisp_metrics_new(10, 100, WISP_METRICS_MAX_BYTES_DEFAULT);
  request(m, "spiffe://shop.local/ns/a\\b/sa/c\"d\ne", 200, 1);
  const char *t = render(m);
  assert_non_null(strstr(t,
                         "source_workload=\"c\\\"d\\ne\",source_workload_namespace=\"a\\\\b\","
                         "source_principal=\"spiffe://shop.local/ns/a\\\\b/sa/c\\\"d\\ne\""));
  for (const char *line = t; *line;) { /* each line a comment or a sample, none split by the ID's newline */
    const char *end = strchr(line, '\n');
    assert_non_null(end);
    assert_true(line[0] == '#' || strncmp(line, "wisp_", 5) == 0);
    line = end + 1;
  }
  const char *out = getenv("WISP_METRICS_ESCAPE_OUT"); /* for promtool check metrics */
  if (out) {
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    fputs(t, f);
    fclose(f);
  }
  wisp_metrics_free(m);
}

static void test_tcp(void **state) {
  (void)state;
  wisp_metrics *m = wisp_metrics_new(4, 16, WISP_METRICS_MAX_BYTES_DEFAULT);
  wisp_metrics_series *s = wisp_metrics_tcp_open(m, false, B, false);
  wisp_metrics_tcp_bytes(s, 5, 7);
  wisp_metrics_tcp_close(s);
  wisp_metrics_tcp_close(wisp_metrics_tcp_open(m, true, NULL, true));
  const char *t = render(m);
  assert_non_null(strstr(t, "wisp_tcp_received_bytes_total{direction=\"outbound\""));
  assert_non_null(
      strstr(t, "destination_principal=\"" B "\",destination_trust_domain=\"shop.local\",decision=\"allow\"} 5\n"));
  assert_non_null(strstr(t, "source_principal=\"unknown\""));
  assert_non_null(strstr(t, "decision=\"deny\"} 1\n"));
  assert_null(wisp_metrics_tcp_open(NULL, true, B, false)); /* no metrics: a no-op */
  wisp_metrics_free(m);
  wisp_metrics_free(NULL);
}

/* wisp_metrics_share (--workers): threads counting into one table at
 * once lose nothing. */
enum { SHARE_THREADS = 4, SHARE_EACH = 200000 };
static pthread_barrier_t g_start;

static void *count_requests(void *arg) {
  wisp_metrics *m = arg;
  pthread_barrier_wait(&g_start); /* all at once */
  for (int i = 0; i < SHARE_EACH; i++) {
    wisp_metrics_request r = {.inbound = true, .peer_id = i % 2 ? B : NULL, .status = 200, .grpc_status = -1};
    wisp_metrics_request_done(m, &r);
    wisp_metrics_series *s = wisp_metrics_tcp_open(m, false, B, false);
    wisp_metrics_tcp_bytes(s, 1, 2);
    wisp_metrics_tcp_close(s);
  }
  return NULL;
}

static void test_shared(void **state) {
  (void)state;
  wisp_metrics *m = wisp_metrics_new(4, 16, WISP_METRICS_MAX_BYTES_DEFAULT);
  wisp_metrics_share(m);
  pthread_barrier_init(&g_start, NULL, SHARE_THREADS);
  pthread_t t[SHARE_THREADS];
  for (int i = 0; i < SHARE_THREADS; i++) assert_int_equal(pthread_create(&t[i], NULL, count_requests, m), 0);
  for (int i = 0; i < SHARE_THREADS; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&g_start);
  const char *text = render(m);
  char want[160];
  snprintf(want, sizeof(want), "decision=\"allow\"} %d\n", SHARE_THREADS * SHARE_EACH);
  assert_non_null(strstr(strstr(text, "wisp_tcp_connections_opened_total{"), want));
  snprintf(want, sizeof(want), "decision=\"allow\"} %d\n", SHARE_THREADS * SHARE_EACH * 2); /* 2 bytes sent each */
  assert_non_null(strstr(strstr(text, "wisp_tcp_sent_bytes_total{"), want));
  assert_int_equal(wisp_metrics_peers(m), 1);
  assert_int_equal(wisp_metrics_overflowed(m), 0);
  wisp_metrics_free(m);
}

/* Kubernetes-maximal names (namespace 63, service account 250 bytes): the
 * byte budget, not the caps, must bound the body (review 13, H1). */
static void make_long_id(char *out, size_t len, int i, int sa_len) {
  char ns[64], sa[256];
  memset(ns, 'n', 63);
  ns[63] = 0;
  memset(sa, 's', (size_t)sa_len);
  snprintf(sa + sa_len - 6, 7, "-%05d", i);
  snprintf(out, len, "spiffe://shop.local/ns/%s/sa/%s", ns, sa);
}

static uint64_t gauge(const char *text, const char *sample) {
  const char *p = strstr(text, sample);
  assert_non_null(p);
  return strtoull(p + strlen(sample), NULL, 10);
}

static void test_byte_budget(void **state) {
  (void)state;
  static const size_t kBudget = 1u << 20;
  wisp_metrics *m = wisp_metrics_new(WISP_METRICS_MAX_PEERS_DEFAULT, WISP_METRICS_MAX_SERIES_DEFAULT, kBudget);
  char id[512], me[512];
  make_long_id(me, sizeof(me), 99999, 250);
  uint64_t total = 0;
  for (int i = 0; i < WISP_METRICS_MAX_PEERS_DEFAULT; i++) { /* every peer with 8 statuses: far past 1 MiB */
    make_long_id(id, sizeof(id), i, 250);
    for (int st = 200; st < 600; st += 50) {
      wisp_metrics_request r = {.inbound = i & 1, .peer_id = id, .status = st, .grpc_status = -1, .duration_ms = i};
      wisp_metrics_request_done(m, &r);
      total++;
    }
  }
  wisp_metrics_tcp_open(m, true, id, false);
  total++;
  /* rendered with our own long ID: what was admitted before the first
   * render assumed a short one, so the render leaves the excess out */
  wisp_json_writer w;
  wisp_json_writer_init(&w, 64u << 20, WISP_JSON_ESCAPE_U);
  wisp_metrics_render(&w, m, me);
  assert_int_equal(w.err, WISP_OK);
  size_t first = wisp_buf_len(&w.out);
  wisp_json_writer_cleanup(&w);
  /* the series plus HELP/TYPE lines and the gauges (a few KB) */
  assert_true(first < kBudget + 8192);
  size_t peers = wisp_metrics_peers(m);
  assert_true(peers > 0 && peers < WISP_METRICS_MAX_PEERS_DEFAULT);
  assert_true(wisp_metrics_overflowed(m) > 0 && wisp_metrics_overflowed(m) < total);
  /* more traffic from new peers: all of it to overflow, none labelled */
  uint64_t before = wisp_metrics_overflowed(m);
  make_long_id(id, sizeof(id), 77777, 250);
  request(m, id, 200, 1);
  assert_int_equal(wisp_metrics_overflowed(m), before + 1);
  const char *t = render(m);
  assert_true(strlen(t) < kBudget + 8192);
  assert_null(strstr(t, "-77777\""));
  assert_non_null(strstr(t, "source_principal=\"overflow\""));
  assert_non_null(strstr(t, "response_code=\"overflow\""));
  assert_int_equal(gauge(t, "wisp_metrics_budget_bytes{kind=\"max\"} "), kBudget);
  /* the estimate is an upper bound of what is rendered */
  assert_true(strlen(t) <= gauge(t, "wisp_metrics_budget_bytes{kind=\"used\"} ") + 8192);
  wisp_metrics_free(m);
}

/* At the default budget, 180 series of short IDs fit, and the estimate
 * bounds the body from above without being wildly pessimistic. */
static void test_budget_estimate(void **state) {
  (void)state;
  wisp_metrics *m =
      wisp_metrics_new(WISP_METRICS_MAX_PEERS_DEFAULT, WISP_METRICS_MAX_SERIES_DEFAULT, WISP_METRICS_MAX_BYTES_DEFAULT);
  (void)render(m); /* our own short ID */
  char id[128];
  for (int i = 0; i < 30; i++) { /* 180 HTTP series, about 2 MB */
    snprintf(id, sizeof(id), "spiffe://shop.local/ns/shop/sa/frontend-%d", i);
    for (int st = 200; st < 206; st++) request(m, id, st, 3);
  }
  assert_int_equal(wisp_metrics_overflowed(m), 0);
  const char *t = render(m);
  uint64_t used = gauge(t, "wisp_metrics_budget_bytes{kind=\"used\"} ");
  assert_true(strlen(t) <= used + 8192);
  assert_true(strlen(t) > used / 2); /* not wildly pessimistic */
  wisp_metrics_free(m);
}

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Timing is the benchmarks' business (bench/); this prints ns/request on
 * request (WISP_METRICS_BENCH=1) and is otherwise reported as skipped. */
static void test_bench(void **state) {
  (void)state;
  const char *on = getenv("WISP_METRICS_BENCH");
  if (!on || on[0] != '1') {
    skip();
    return;
  }
  enum { IDS = 4096, N = 2000000 };
  static char ids[IDS][80];
  for (int i = 0; i < IDS; i++)
    snprintf(ids[i], sizeof(ids[i]), "spiffe://shop.local/ns/team%d/sa/service-%d", i % 17, i);
  static const int kPeers[] = {1, 16, 256, IDS};
  for (size_t k = 0; k < sizeof(kPeers) / sizeof(kPeers[0]); k++) {
    wisp_metrics *m = wisp_metrics_new(WISP_METRICS_MAX_PEERS_DEFAULT, WISP_METRICS_MAX_SERIES_DEFAULT,
                                       WISP_METRICS_MAX_BYTES_DEFAULT);
    double t0 = cpu_now();
    for (int i = 0; i < N; i++) {
      wisp_metrics_request r = {.inbound = i & 1,
                                .peer_id = ids[i % kPeers[k]],
                                .status = (i % 10) ? 200 : 503,
                                .grpc_status = -1,
                                .duration_ms = (i % 1000) * 0.37,
                                .bytes_in = 10,
                                .bytes_out = 100};
      wisp_metrics_request_done(m, &r);
    }
    print_message("# bench: %d distinct callers (cap %d): %.1f ns/request\n", kPeers[k], WISP_METRICS_MAX_PEERS_DEFAULT,
                  (cpu_now() - t0) / N * 1e9);
    wisp_metrics_free(m);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_split),       cmocka_unit_test(test_peer_cap),        cmocka_unit_test(test_peers_in_turn),
      cmocka_unit_test(test_series_cap),  cmocka_unit_test(test_label_escape),    cmocka_unit_test(test_tcp),
      cmocka_unit_test(test_byte_budget), cmocka_unit_test(test_budget_estimate), cmocka_unit_test(test_bench),
      cmocka_unit_test(test_shared),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
