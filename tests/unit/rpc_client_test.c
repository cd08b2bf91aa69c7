/* Unit tests for lib/wisp_rpc_client: the pure parts (targets, the
 * response-to-status mapping, grpc-timeout) table-driven, then whole calls
 * against wisp-agent's gRPC server (control/agent/wisp_rpc) in the same
 * libev loop, over a Unix socket in plaintext and in TLS: every way a call
 * ends, each with exactly one on_done. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "control/agent/wisp_rpc.h"
#include "lib/wisp_rpc_client.h"
#include "proto/wisp/v1/admin.pb-c.h"
#include "tests/unit/test_util.h"
#include "tests/unit/test_x509.h"

/* The server's bounds (wisp-agent's flags); far above what a test uses. */
#define TEST_MAX_CONNS 256
#define TEST_CONN_BUFFER (64u * 1024 * 1024)

#define ID_AGENT "spiffe://example.org/agent"
#define ID_PROXY "spiffe://example.org/proxy"

/* ---- pure: targets ---------------------------------------------------------- */

typedef struct {
  const char *in;
  wisp_err want;
  wisp_rpcc_target_kind kind;
  bool tls;
  const char *path_or_authority;
  const char *err_has;
} target_case;

static const target_case kTargets[] = {
    {"unix:/run/wisp/agent.sock", WISP_OK, WISP_RPCC_TARGET_UNIX, false, "/run/wisp/agent.sock", NULL},
    {"unix:///run/wisp/agent.sock", WISP_OK, WISP_RPCC_TARGET_UNIX, false, "/run/wisp/agent.sock", NULL},
    {"unix:agent.sock", WISP_OK, WISP_RPCC_TARGET_UNIX, false, "agent.sock", NULL},
    {"unix://host/agent.sock", WISP_ERR_USAGE, 0, false, NULL, "want unix:///ABSOLUTE/PATH"},
    {"unix:", WISP_ERR_USAGE, 0, false, NULL, "no socket path"},
    {"unix:///", WISP_OK, WISP_RPCC_TARGET_UNIX, false, "/", NULL},
    {"127.0.0.1:15012", WISP_OK, WISP_RPCC_TARGET_TCP, false, "127.0.0.1:15012", NULL},
    {"localhost:15012", WISP_OK, WISP_RPCC_TARGET_TCP, false, "localhost:15012", NULL},
    {"[::1]:15012", WISP_OK, WISP_RPCC_TARGET_TCP, false, "[::1]:15012", NULL},
    {"http://127.0.0.1:80", WISP_OK, WISP_RPCC_TARGET_TCP, false, "127.0.0.1:80", NULL},
    {"https://127.0.0.1:15012", WISP_OK, WISP_RPCC_TARGET_TCP, true, "127.0.0.1:15012", NULL},
    {"https://127.0.0.1:15012/", WISP_OK, WISP_RPCC_TARGET_TCP, true, "127.0.0.1:15012", NULL},
    {"https://127.0.0.1:15012/x", WISP_ERR_USAGE, 0, false, NULL, "want HOST:PORT"},
    {"ftp://127.0.0.1:21", WISP_ERR_USAGE, 0, false, NULL, "unknown scheme"},
    {"", WISP_ERR_USAGE, 0, false, NULL, "empty target"},
    {":15012", WISP_ERR_USAGE, 0, false, NULL, "want HOST:PORT"},
    {"agent.example.org:443", WISP_ERR_USAGE, 0, false, NULL, "literal address"},
    {"127.0.0.1", WISP_ERR_USAGE, 0, false, NULL, "want HOST:PORT"},
    {"https://", WISP_ERR_USAGE, 0, false, NULL, "want HOST:PORT"},
};

static void test_target_parse(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kTargets) / sizeof(kTargets[0]); i++) {
    const target_case *c = &kTargets[i];
    wisp_rpcc_target t;
    char err[256] = "";
    wisp_err rc = wisp_rpcc_target_parse(&t, c->in, err, sizeof(err));
    print_message("# target %s: %d %s\n", c->in, rc, err);
    assert_int_equal(rc, c->want);
    if (rc != WISP_OK) {
      assert_non_null(strstr(err, c->err_has));
      continue;
    }
    assert_int_equal(t.kind, c->kind);
    assert_int_equal(t.tls, c->tls);
    if (c->kind == WISP_RPCC_TARGET_UNIX) {
      assert_string_equal(t.path, c->path_or_authority);
      assert_string_equal(t.authority, "localhost");
    } else {
      assert_string_equal(t.authority, c->path_or_authority);
    }
  }
}

/* A target that does not parse leaves |*out| as it was (an out-parameter
 * changes only on success), whichever check refuses it. */
static void test_target_parse_failure_leaves_out(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kTargets) / sizeof(kTargets[0]); i++) {
    if (kTargets[i].want == WISP_OK) continue;
    wisp_rpcc_target t, before;
    memset(&t, 0xa5, sizeof(t));
    before = t;
    char err[256] = "";
    assert_int_equal(wisp_rpcc_target_parse(&t, kTargets[i].in, err, sizeof(err)), kTargets[i].want);
    assert_true(err[0] != '\0');
    assert_memory_equal(&t, &before, sizeof(t));
  }
}

static void test_target_unix_path_limit(void **state) {
  (void)state;
  char s[300], err[256];
  wisp_rpcc_target t;
  snprintf(s, sizeof(s), "unix:/%0*d", WISP_RPCC_UNIX_PATH_MAX - 1, 0); /* exactly the limit */
  assert_int_equal(wisp_rpcc_target_parse(&t, s, err, sizeof(err)), WISP_OK);
  snprintf(s, sizeof(s), "unix:/%0*d", WISP_RPCC_UNIX_PATH_MAX, 0);
  assert_int_equal(wisp_rpcc_target_parse(&t, s, err, sizeof(err)), WISP_ERR_USAGE);
  assert_non_null(strstr(err, "longer than 107 bytes"));
}

/* ---- pure: response status -------------------------------------------------- */

typedef struct {
  const char *name;
  const char *headers[8]; /* "name: value" */
  wisp_grpc_status want;
  const char *msg_has;
  bool is_grpc;
} status_case;

static const status_case kStatus[] = {
    {"normal trailers", {":status: 200", "content-type: application/grpc", "grpc-status: 0"}, WISP_GRPC_OK, "", true},
    {"trailers-only error, encoded message",
     {":status: 200", "content-type: application/grpc+proto", "grpc-status: 7", "grpc-message: no%20way%3A 100%25"},
     WISP_GRPC_PERMISSION_DENIED,
     "no way: 100%",
     true},
    {"message with UTF-8",
     {":status: 200", "content-type: application/grpc", "grpc-status: 3", "grpc-message: caf%C3%A9"},
     WISP_GRPC_INVALID_ARGUMENT,
     "caf\xc3\xa9",
     true},
    {"bad percent escape kept",
     {":status: 200", "content-type: application/grpc", "grpc-status: 2", "grpc-message: 50%zz"},
     WISP_GRPC_UNKNOWN,
     "50%zz",
     true},
    {"grpc-status out of range",
     {":status: 200", "content-type: application/grpc", "grpc-status: 99"},
     WISP_GRPC_UNKNOWN,
     "",
     true},
    {"grpc-status not a number",
     {":status: 200", "content-type: application/grpc", "grpc-status: seven"},
     WISP_GRPC_INTERNAL,
     "malformed grpc-status",
     true},
    {"no trailers",
     {":status: 200", "content-type: application/grpc"},
     WISP_GRPC_INTERNAL,
     "without a grpc-status",
     true},
    {"HTTP 404", {":status: 404", "content-type: text/plain"}, WISP_GRPC_UNIMPLEMENTED, "HTTP status 404", false},
    {"HTTP 503", {":status: 503"}, WISP_GRPC_UNAVAILABLE, "HTTP status 503", false},
    {"HTTP 401", {":status: 401"}, WISP_GRPC_UNAUTHENTICATED, "HTTP status 401", false},
    {"HTTP 403", {":status: 403"}, WISP_GRPC_PERMISSION_DENIED, "HTTP status 403", false},
    {"HTTP 400", {":status: 400"}, WISP_GRPC_INTERNAL, "HTTP status 400", false},
    {"HTTP 429", {":status: 429"}, WISP_GRPC_UNAVAILABLE, "HTTP status 429", false},
    {"HTTP 500", {":status: 500"}, WISP_GRPC_UNKNOWN, "HTTP status 500", false},
    {"HTTP 415", {":status: 415", "content-type: text/plain"}, WISP_GRPC_UNKNOWN, "HTTP status 415", false},
    {"grpc-status wins over HTTP status",
     {":status: 404", "grpc-status: 5", "grpc-message: gone"},
     WISP_GRPC_NOT_FOUND,
     "gone",
     false},
    {"200 but not gRPC", {":status: 200", "content-type: text/html"}, WISP_GRPC_UNKNOWN, "not application/grpc", false},
    {"200 without content-type", {":status: 200"}, WISP_GRPC_UNKNOWN, "without content-type", false},
    {"grpc+json is not ours",
     {":status: 200", "content-type: application/grpc+json"},
     WISP_GRPC_UNKNOWN,
     "not application/grpc",
     false},
    {"no :status", {"content-type: application/grpc"}, WISP_GRPC_INTERNAL, "without :status", false},
    {"garbage :status",
     {":status: 2x0", "content-type: application/grpc"},
     WISP_GRPC_INTERNAL,
     "HTTP status -1",
     false},
    {"other headers ignored",
     {":status: 200", "content-type: application/grpc", "x-grpc-status: 7", "grpc-status: 0"},
     WISP_GRPC_OK,
     "",
     true},
};

static void feed_header(wisp_rpcc_response *r, const char *line) {
  const char *colon = strchr(line + 1, ':'); /* skip a pseudo-header's own colon */
  const char *value = colon + 2;
  wisp_rpcc_response_header(r, (const uint8_t *)line, (size_t)(colon - line), (const uint8_t *)value, strlen(value));
}

static void test_response_status(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kStatus) / sizeof(kStatus[0]); i++) {
    const status_case *c = &kStatus[i];
    wisp_rpcc_response r;
    memset(&r, 0, sizeof(r));
    for (size_t k = 0; k < 8 && c->headers[k]; k++) feed_header(&r, c->headers[k]);
    char msg[256];
    wisp_grpc_status got = wisp_rpcc_response_status(&r, msg, sizeof(msg));
    print_message("# %s: %s \"%s\"\n", c->name, wisp_grpc_status_name((int)got), msg);
    assert_int_equal(got, c->want);
    assert_int_equal(wisp_rpcc_response_is_grpc(&r), c->is_grpc);
    if (c->msg_has[0]) {
      assert_non_null(strstr(msg, c->msg_has));
    } else {
      assert_string_equal(msg, "");
    }
  }
}

static void test_long_grpc_message_is_cut(void **state) {
  (void)state;
  static char value[3 * WISP_RPCC_MESSAGE_MAX];
  memset(value, 'a', sizeof(value) - 1);
  wisp_rpcc_response r;
  memset(&r, 0, sizeof(r));
  wisp_rpcc_response_header(&r, (const uint8_t *)"grpc-message", 12, (const uint8_t *)value, sizeof(value) - 1);
  assert_int_equal(strlen(r.message), WISP_RPCC_MESSAGE_MAX);
}

static void test_status_from_h2_error(void **state) {
  (void)state;
  static const struct {
    uint32_t code;
    wisp_grpc_status want;
  } cases[] = {
      {NGHTTP2_NO_ERROR, WISP_GRPC_INTERNAL},
      {NGHTTP2_PROTOCOL_ERROR, WISP_GRPC_INTERNAL},
      {NGHTTP2_INTERNAL_ERROR, WISP_GRPC_INTERNAL},
      {NGHTTP2_FLOW_CONTROL_ERROR, WISP_GRPC_INTERNAL},
      {NGHTTP2_REFUSED_STREAM, WISP_GRPC_UNAVAILABLE},
      {NGHTTP2_CANCEL, WISP_GRPC_CANCELLED},
      {NGHTTP2_ENHANCE_YOUR_CALM, WISP_GRPC_RESOURCE_EXHAUSTED},
      {NGHTTP2_INADEQUATE_SECURITY, WISP_GRPC_PERMISSION_DENIED},
      {0xdead, WISP_GRPC_INTERNAL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    assert_int_equal(wisp_rpcc_status_from_h2_error(cases[i].code), cases[i].want);
}

static void test_timeout_format(void **state) {
  (void)state;
  static const struct {
    double s;
    const char *want;
  } cases[] = {
      {10, "10000m"},           {0.25, "250m"},      {0.0001, "1m"},     {0, "1m"},           {1.0005, "1001m"},
      {99999.999, "99999999m"}, {100000, "100000S"}, {1e9, "16666667M"}, {1e11, "27777778H"}, {1e20, "99999999H"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char out[32];
    wisp_rpcc_timeout_format(out, sizeof(out), cases[i].s);
    print_message("# %g s -> %s\n", cases[i].s, out);
    assert_string_equal(out, cases[i].want);
    uint64_t ms = 0;
    assert_int_equal(wisp_grpc_timeout_parse(&ms, out, strlen(out)), WISP_OK);
    if (cases[i].s > 0 && cases[i].s < 1e15) assert_true((double)ms >= cases[i].s * 1000 - 1e-6);
  }
}

/* ---- a server in the same loop ---------------------------------------------- */

static struct {
  char dir[1024];    /* certificates */
  char sock_dir[64]; /* short: Unix socket paths are limited */
  int nsock;
} fx;

typedef struct {
  struct ev_loop *loop;
  wisp_rpc_server *srv;
  wisp_tls *srv_tls, *cli_tls;
  wisp_h2loop lp;
  char sock[128];
  char target[160];
  int server_closes;
  char last_peer[256];
} env;

static const char *P(const char *name) { return test_path(fx.dir, name); }

static void reply(wisp_rpc_call *call, const char *version) {
  Wisp__V1__ApplyPolicyResponse resp = WISP__V1__APPLY_POLICY_RESPONSE__INIT;
  resp.version = (char *)version;
  assert_int_equal(wisp_rpc_send(call, &resp.base), WISP_OK);
}

/* Unary "/t.T/Unary": ApplyPolicyRequest.yaml says what to do. */
static void unary_on_message(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  env *e = wisp_rpc_server_data(wisp_rpc_call_server(call));
  Wisp__V1__ApplyPolicyRequest *req = wisp__v1__apply_policy_request__unpack(NULL, len, msg);
  assert_non_null(req);
  if (strcmp(req->yaml, "fail") == 0) {
    wisp_rpc_finish(call, WISP_GRPC_PERMISSION_DENIED, "no: 100% caf\xc3\xa9");
  } else if (strcmp(req->yaml, "hang") == 0) {
    /* never answers */
  } else if (strcmp(req->yaml, "big") == 0) {
    size_t n = WISP_RPCC_MAX_MSG + 1;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = 0;
    reply(call, big);
    free(big);
    wisp_rpc_finish(call, WISP_GRPC_OK, NULL);
  } else if (strcmp(req->yaml, "peer") == 0) {
    const char *peer = wisp_rpc_call_peer_id(call);
    snprintf(e->last_peer, sizeof(e->last_peer), "%s", peer ? peer : "none");
    reply(call, e->last_peer);
    wisp_rpc_finish(call, WISP_GRPC_OK, NULL);
  } else {
    char out[300];
    snprintf(out, sizeof(out), "echo:%s", req->yaml);
    reply(call, out);
    wisp_rpc_finish(call, WISP_GRPC_OK, NULL);
  }
  wisp__v1__apply_policy_request__free_unpacked(req, NULL);
}

/* Streaming "/t.T/Stream": every message echoed; half-close ends it. */
static void stream_on_message(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  Wisp__V1__ApplyPolicyRequest *req = wisp__v1__apply_policy_request__unpack(NULL, len, msg);
  assert_non_null(req);
  reply(call, req->yaml);
  wisp__v1__apply_policy_request__free_unpacked(req, NULL);
}

static void stream_on_end(wisp_rpc_call *call) { wisp_rpc_finish(call, WISP_GRPC_OK, "bye"); }

static void on_close(wisp_rpc_call *call) {
  env *e = wisp_rpc_server_data(wisp_rpc_call_server(call));
  e->server_closes++;
}

static const wisp_rpc_method kMethods[] = {
    {"/t.T/Unary", false, unary_on_message, NULL, on_close},
    {"/t.T/Stream", true, stream_on_message, stream_on_end, on_close},
};

static wisp_tls *load_tls(const char *name, bool server) {
  wisp_tls_opts o = {.client_cert_optional = server};
  wisp_tls *t = wisp_tls_new(&o);
  char err[512] = "";
  char cert[64], key[64];
  snprintf(cert, sizeof(cert), "%s.pem", name);
  snprintf(key, sizeof(key), "%s.key", name);
  wisp_err rc = wisp_tls_load_files(t, P(cert), P(key), P("ca.pem"), err, sizeof(err));
  if (rc != WISP_OK) print_message("# %s\n", err);
  assert_int_equal(rc, WISP_OK);
  return t;
}

static env *env_new(bool tls) {
  env *e = calloc(1, sizeof(*e));
  e->loop = ev_loop_new(EVFLAG_AUTO);
  /* no per-source or idle limit */
  wisp_rpc_config cfg = {kMethods, sizeof(kMethods) / sizeof(kMethods[0]), e, TEST_MAX_CONNS, TEST_CONN_BUFFER, 0, 0};
  e->srv = wisp_rpc_server_new(e->loop, &cfg);
  if (tls) {
    e->srv_tls = load_tls("agent", true);
    e->cli_tls = load_tls("proxy", false);
    wisp_rpc_server_set_tls(e->srv, e->srv_tls);
  }
  snprintf(e->sock, sizeof(e->sock), "%s/s%d.sock", fx.sock_dir, fx.nsock++);
  snprintf(e->target, sizeof(e->target), "unix://%s", e->sock);
  char err[256] = "";
  assert_int_equal(wisp_rpc_listen_unix(e->srv, e->sock, 0600, err, sizeof(err)), WISP_OK);
  wisp_h2loop_init(&e->lp, e->loop);
  return e;
}

static void spin(env *e, int n) {
  for (int i = 0; i < n; i++) ev_run(e->loop, EVRUN_NOWAIT);
}

static void env_free(env *e) {
  spin(e, 5);
  wisp_h2loop_cleanup(&e->lp);
  wisp_rpc_server_free(e->srv);
  spin(e, 5);
  ev_loop_destroy(e->loop);
  wisp_tls_free(e->srv_tls);
  wisp_tls_free(e->cli_tls);
  unlink(e->sock);
  free(e);
}

/* What a call's handlers saw. */
typedef struct {
  env *e;
  int ndone;
  wisp_grpc_status code;
  char msg[WISP_RPCC_MESSAGE_MAX + 256];
  int nmsgs;
  char msgs[8][64];
  bool cancel_in_message;
  wisp_rpcc *free_in_done;
} rec;

static void rec_on_message(wisp_rpcc_call *call, const uint8_t *msg, size_t len, void *arg) {
  rec *r = arg;
  assert_int_equal(r->ndone, 0);
  Wisp__V1__ApplyPolicyResponse *resp = wisp__v1__apply_policy_response__unpack(NULL, len, msg);
  assert_non_null(resp);
  if (r->nmsgs < 8) snprintf(r->msgs[r->nmsgs], sizeof(r->msgs[0]), "%s", resp->version);
  r->nmsgs++;
  wisp__v1__apply_policy_response__free_unpacked(resp, NULL);
  if (r->cancel_in_message) wisp_rpcc_cancel(call);
}

static void rec_on_done(wisp_rpcc_call *call, wisp_grpc_status code, const char *message, void *arg) {
  rec *r = arg;
  r->ndone++;
  r->code = code;
  snprintf(r->msg, sizeof(r->msg), "%s", message);
  /* on_done may run in the loop's prepare phase (a connection torn down):
   * without a break the loop would go to sleep before we look. */
  ev_break(r->e->loop, EVBREAK_ONE);
  if (r->free_in_done) {
    wisp_rpcc *c = r->free_in_done;
    r->free_in_done = NULL;
    wisp_rpcc_free(c);
  }
}

static const wisp_rpcc_handlers kRec = {rec_on_message, rec_on_done};

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents) { *(bool *)w->data = true; }

/* Runs the loop until every |recs| is done once (or |max_s| passes). */
static void run_until_done(env *e, rec *recs, int n, double max_s) {
  bool expired = false;
  ev_timer guard;
  ev_timer_init(&guard, on_guard, max_s, 0);
  guard.data = &expired;
  ev_timer_start(e->loop, &guard);
  for (int iter = 0; iter < 100000 && !expired; iter++) {
    int done = 0;
    for (int i = 0; i < n; i++) done += recs[i].ndone > 0;
    if (done == n) break;
    ev_run(e->loop, EVRUN_ONCE);
  }
  ev_timer_stop(e->loop, &guard);
}

static wisp_rpcc_call *unary(wisp_rpcc *c, const char *path, const char *yaml, rec *r, double timeout_s) {
  Wisp__V1__ApplyPolicyRequest req = WISP__V1__APPLY_POLICY_REQUEST__INIT;
  req.yaml = (char *)yaml;
  return wisp_rpcc_unary(c, path, &req.base, &kRec, r, timeout_s);
}

static wisp_rpcc *connect_plain(env *e) {
  char err[256] = "";
  wisp_rpcc *c = wisp_rpcc_connect(&e->lp, e->target, NULL, NULL, err, sizeof(err));
  assert_non_null(c);
  return c;
}

/* ---- whole calls ------------------------------------------------------------ */

static void test_unary_ok(void **state) {
  (void)state;
  env *e = env_new(false);
  wisp_rpcc *c = connect_plain(e);
  assert_true(wisp_rpcc_usable(c));
  rec r = {.e = e};
  unary(c, "/t.T/Unary", "hello", &r, 5);
  assert_int_equal(r.ndone, 0);
  run_until_done(e, &r, 1, 5);
  assert_int_equal(r.ndone, 1);
  assert_int_equal(r.code, WISP_GRPC_OK);
  assert_int_equal(r.nmsgs, 1);
  assert_string_equal(r.msgs[0], "echo:hello");
  assert_true(wisp_rpcc_reached(c));
  assert_true(wisp_rpcc_usable(c));
  assert_string_equal(wisp_rpcc_get0_error(c), "");
  /* A second call on the same connection. */
  rec r2 = {.e = e};
  unary(c, "/t.T/Unary", "again", &r2, 0);
  run_until_done(e, &r2, 1, 5);
  assert_int_equal(r2.code, WISP_GRPC_OK);
  assert_string_equal(r2.msgs[0], "echo:again");
  wisp_rpcc_free(c);
  assert_int_equal(r.ndone, 1);
  env_free(e);
}

static void test_error_status_and_message(void **state) {
  (void)state;
  env *e = env_new(false);
  wisp_rpcc *c = connect_plain(e);
  rec r = {.e = e};
  unary(c, "/t.T/Unary", "fail", &r, 5);
  run_until_done(e, &r, 1, 5);
  assert_int_equal(r.ndone, 1);
  assert_int_equal(r.code, WISP_GRPC_PERMISSION_DENIED);
  assert_string_equal(r.msg, "no: 100% caf\xc3\xa9");
  assert_int_equal(r.nmsgs, 0);
  wisp_rpcc_free(c);
  env_free(e);
}

static void test_unknown_method(void **state) {
  (void)state;
  env *e = env_new(false);
  wisp_rpcc *c = connect_plain(e);
  rec r = {.e = e};
  unary(c, "/t.T/Nope", "x", &r, 5);
  run_until_done(e, &r, 1, 5);
  assert_int_equal(r.code, WISP_GRPC_UNIMPLEMENTED);
  assert_non_null(strstr(r.msg, "/t.T/Nope"));
  rec bad = {.e = e};
  unary(c, "no-slash", "x", &bad, 5);
  assert_int_equal(bad.ndone, 0);
  run_until_done(e, &bad, 1, 5);
  assert_int_equal(bad.code, WISP_GRPC_INTERNAL);
  wisp_rpcc_free(c);
  env_free(e);
}

static void test_deadline(void **state) {
  (void)state;
  env *e = env_new(false);
  wisp_rpcc *c = connect_plain(e);
  rec r = {.e = e};
  /* A loaded machine: the call starts 50 ms after the loop last read its
   * clock. The deadline still counts from the call. */
  usleep(50000);
  ev_tstamp t0 = ev_time();
  unary(c, "/t.T/Unary", "hang", &r, 0.2);
  run_until_done(e, &r, 1, 5);
  ev_tstamp took = ev_time() - t0;
  assert_int_equal(r.ndone, 1);
  assert_int_equal(r.code, WISP_GRPC_DEADLINE_EXCEEDED);
  assert_non_null(strstr(r.msg, "0.2s"));
  assert_true(took >= 0.19 && took < 2);
  /* The server hears of it (RST_STREAM CANCEL) and closes its call. */
  for (int i = 0; i < 50 && e->server_closes == 0; i++) ev_run(e->loop, EVRUN_ONCE);
  assert_int_equal(e->server_closes, 1);
  assert_true(wisp_rpcc_usable(c));
  wisp_rpcc_free(c);
  env_free(e);
}

static void test_response_too_big(void **state) {
  (void)state;
  env *e = env_new(false);
  wisp_rpcc *c = connect_plain(e);
  rec r = {.e = e};
  unary(c, "/t.T/Unary", "big", &r, 10);
  run_until_done(e, &r, 1, 10);
  assert_int_equal(r.ndone, 1);
  assert_int_equal(r.code, WISP_GRPC_RESOURCE_EXHAUSTED);
  assert_int_equal(r.nmsgs, 0);
  assert_non_null(strstr(r.msg, "larger than 4194304 bytes"));
  /* The connection is still good for other calls. */
  rec r2 = {.e = e};
  unary(c, "/t.T/Unary", "after", &r2, 5);
  run_until_done(e, &r2, 1, 5);
  assert_int_equal(r2.code, WISP_GRPC_OK);
  wisp_rpcc_free(c);
  env_free(e);
}

static wisp_rpcc_call *stream_send(wisp_rpcc_call *call, const char *text) {
  Wisp__V1__ApplyPolicyRequest req = WISP__V1__APPLY_POLICY_REQUEST__INIT;
  req.yaml = (char *)text;
  assert_int_equal(wisp_rpcc_send(call, &req.base), WISP_OK);
  return call;
}

static void test_streaming(void **state) {
  (void)state;
  env *e = env_new(false);
  wisp_rpcc *c = connect_plain(e);
  rec r = {.e = e};
  wisp_rpcc_call *call = wisp_rpcc_call_start(c, "/t.T/Stream", &kRec, &r, 5);
  stream_send(call, "one");
  stream_send(call, "two");
  for (int i = 0; i < 100 && r.nmsgs < 2; i++) ev_run(e->loop, EVRUN_ONCE);
  assert_int_equal(r.nmsgs, 2);
  assert_int_equal(r.ndone, 0);
  stream_send(call, "three");
  wisp_rpcc_close_send(call);
  Wisp__V1__ApplyPolicyRequest req = WISP__V1__APPLY_POLICY_REQUEST__INIT;
  assert_int_equal(wisp_rpcc_send(call, &req.base), WISP_ERR_CLOSED);
  run_until_done(e, &r, 1, 5);
  assert_int_equal(r.code, WISP_GRPC_OK);
  assert_string_equal(r.msg, "bye");
  assert_int_equal(r.nmsgs, 3);
  assert_string_equal(r.msgs[0], "one");
  assert_string_equal(r.msgs[1], "two");
  assert_string_equal(r.msgs[2], "three");
  wisp_rpcc_free(c);
  env_free(e);
}

static void test_many_calls_one_connection(void **state) {
  (void)state;
  enum { N = 60 };
  env *e = env_new(false);
  wisp_rpcc *c = connect_plain(e);
  static rec r[N];
  memset(r, 0, sizeof(r));
  char text[N][16];
  for (int i = 0; i < N; i++) {
    snprintf(text[i], sizeof(text[i]), "n%d", i);
    r[i].e = e;
    unary(c, "/t.T/Unary", text[i], &r[i], 10);
  }
  run_until_done(e, r, N, 10);
  for (int i = 0; i < N; i++) {
    char want[32];
    snprintf(want, sizeof(want), "echo:n%d", i);
    assert_int_equal(r[i].ndone, 1);
    assert_int_equal(r[i].code, WISP_GRPC_OK);
    assert_string_equal(r[i].msgs[0], want);
  }
  wisp_rpcc_free(c);
  env_free(e);
}

static void test_cancel_from_on_message(void **state) {
  (void)state;
  env *e = env_new(false);
  wisp_rpcc *c = connect_plain(e);
  rec r = {.e = e, .cancel_in_message = true};
  wisp_rpcc_call *call = wisp_rpcc_call_start(c, "/t.T/Stream", &kRec, &r, 5);
  stream_send(call, "one");
  run_until_done(e, &r, 1, 5);
  assert_int_equal(r.ndone, 1);
  assert_int_equal(r.nmsgs, 1);
  assert_int_equal(r.code, WISP_GRPC_CANCELLED);
  for (int i = 0; i < 50 && e->server_closes == 0; i++) ev_run(e->loop, EVRUN_ONCE);
  assert_int_equal(e->server_closes, 1);
  spin(e, 5);
  assert_int_equal(r.ndone, 1);
  wisp_rpcc_free(c);
  env_free(e);
}

static void test_cancel_before_connected(void **state) {
  (void)state;
  env *e = env_new(false);
  wisp_rpcc *c = connect_plain(e);
  rec r = {.e = e};
  wisp_rpcc_call *call = unary(c, "/t.T/Unary", "x", &r, 5);
  wisp_rpcc_cancel(call);
  assert_int_equal(r.ndone, 1);
  assert_int_equal(r.code, WISP_GRPC_CANCELLED);
  rec r2 = {.e = e};
  unary(c, "/t.T/Unary", "y", &r2, 5);
  run_until_done(e, &r2, 1, 5);
  assert_int_equal(r2.code, WISP_GRPC_OK);
  assert_int_equal(r.ndone, 1);
  wisp_rpcc_free(c);
  env_free(e);
}

static void test_free_from_on_done(void **state) {
  (void)state;
  env *e = env_new(false);
  wisp_rpcc *c = connect_plain(e);
  rec hang[2] = {{.e = e}, {.e = e}};
  unary(c, "/t.T/Unary", "hang", &hang[0], 10);
  unary(c, "/t.T/Unary", "hang", &hang[1], 10);
  rec r = {.e = e, .free_in_done = c};
  unary(c, "/t.T/Unary", "fail", &r, 10);
  run_until_done(e, &r, 1, 5);
  assert_int_equal(r.ndone, 1);
  assert_int_equal(r.code, WISP_GRPC_PERMISSION_DENIED);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(hang[i].ndone, 1);
    assert_int_equal(hang[i].code, WISP_GRPC_UNAVAILABLE);
    assert_string_equal(hang[i].msg, "client closed");
  }
  spin(e, 10);
  for (int i = 0; i < 2; i++) assert_int_equal(hang[i].ndone, 1);
  env_free(e);
}

static void test_free_with_calls_pending(void **state) {
  (void)state;
  env *e = env_new(false);
  wisp_rpcc *c = connect_plain(e);
  rec r[2] = {{.e = e}, {.e = e}};
  unary(c, "/t.T/Unary", "a", &r[0], 5);
  unary(c, "/t.T/Unary", "b", &r[1], 5);
  wisp_rpcc_free(c);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(r[i].ndone, 1);
    assert_int_equal(r[i].code, WISP_GRPC_UNAVAILABLE);
  }
  spin(e, 10);
  for (int i = 0; i < 2; i++) assert_int_equal(r[i].ndone, 1);
  wisp_rpcc_free(NULL);
  env_free(e);
}

static void test_no_socket(void **state) {
  (void)state;
  env *e = env_new(false);
  char target[200], err[256] = "";
  snprintf(target, sizeof(target), "unix:%s/missing.sock", fx.sock_dir);
  wisp_rpcc *c = wisp_rpcc_connect(&e->lp, target, NULL, NULL, err, sizeof(err));
  assert_non_null(c);
  assert_false(wisp_rpcc_usable(c));
  rec r[2] = {{.e = e}, {.e = e}};
  unary(c, "/t.T/Unary", "x", &r[0], 5);
  unary(c, "/t.T/Unary", "y", &r[1], 0);
  assert_int_equal(r[0].ndone, 0); /* never from inside call_start */
  run_until_done(e, r, 2, 5);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(r[i].ndone, 1);
    assert_int_equal(r[i].code, WISP_GRPC_UNAVAILABLE);
    assert_string_equal(r[i].msg, "cannot connect: No such file or directory");
  }
  assert_false(wisp_rpcc_reached(c));
  assert_string_equal(wisp_rpcc_get0_error(c), "cannot connect: No such file or directory");
  wisp_rpcc_free(c);
  env_free(e);
}

static void test_connect_refused_tcp(void **state) {
  (void)state;
  env *e = env_new(false);
  /* A port nobody listens on: bind one, note it, close it. */
  wisp_addr a;
  assert_int_equal(wisp_addr_parse(&a, "127.0.0.1:0"), WISP_OK);
  int lfd;
  assert_int_equal(wisp_net_listen(&lfd, &a, 1), WISP_OK);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  getsockname(lfd, (struct sockaddr *)&ss, &sl);
  wisp_addr bound = {.sa = ss, .len = sl};
  char hp[64], err[256];
  wisp_addr_format(&bound, hp, sizeof(hp));
  close(lfd);
  wisp_rpcc *c = wisp_rpcc_connect(&e->lp, hp, NULL, NULL, err, sizeof(err));
  assert_non_null(c);
  rec r = {.e = e};
  unary(c, "/t.T/Unary", "x", &r, 5);
  run_until_done(e, &r, 1, 5);
  assert_int_equal(r.code, WISP_GRPC_UNAVAILABLE);
  assert_string_equal(r.msg, "cannot connect: Connection refused");
  assert_false(wisp_rpcc_reached(c));
  wisp_rpcc_free(c);
  env_free(e);
}

static void test_bad_target(void **state) {
  (void)state;
  env *e = env_new(false);
  char err[256] = "";
  assert_null(wisp_rpcc_connect(&e->lp, "unix://x", NULL, NULL, err, sizeof(err)));
  assert_non_null(strstr(err, "unix://x"));
  assert_null(wisp_rpcc_connect(&e->lp, "https://127.0.0.1:1", NULL, NULL, err, sizeof(err)));
  assert_non_null(strstr(err, "TLS needs credentials"));
  env_free(e);
}

static void test_server_goes_away(void **state) {
  (void)state;
  env *e = env_new(false);
  wisp_rpcc *c = connect_plain(e);
  rec r = {.e = e};
  unary(c, "/t.T/Unary", "hang", &r, 10);
  for (int i = 0; i < 100 && e->server_closes == 0 && !wisp_rpcc_reached(c); i++) ev_run(e->loop, EVRUN_ONCE);
  spin(e, 5);
  wisp_rpc_server_free(e->srv);
  wisp_rpc_config cfg = {kMethods, 2, e, TEST_MAX_CONNS, TEST_CONN_BUFFER, 0, 0}; /* no per-source/idle limit */
  e->srv = wisp_rpc_server_new(e->loop, &cfg);                                    /* for env_free */
  run_until_done(e, &r, 1, 5);
  assert_int_equal(r.ndone, 1);
  assert_int_equal(r.code, WISP_GRPC_UNAVAILABLE);
  print_message("# server gone: %s\n", r.msg);
  assert_true(wisp_rpcc_reached(c));
  assert_false(wisp_rpcc_usable(c));
  /* Calls on a dead client end from the loop, with the reason. */
  rec r2 = {.e = e};
  unary(c, "/t.T/Unary", "x", &r2, 5);
  assert_int_equal(r2.ndone, 0);
  run_until_done(e, &r2, 1, 5);
  assert_int_equal(r2.code, WISP_GRPC_UNAVAILABLE);
  assert_string_equal(r2.msg, r.msg);
  wisp_rpcc_free(c);
  env_free(e);
}

/* A listener past the server's few fails with the reason, not in silence
 * (wisp-agent would log "cannot start: " and nothing after it). */
static void test_listen_past_the_limit_says_why(void **state) {
  (void)state;
  env *e = env_new(false); /* one socket */
  char err[256];
  wisp_err rc = WISP_OK;
  int n = 1;
  for (; n < 16 && rc == WISP_OK; n++) {
    char path[256];
    snprintf(path, sizeof(path), "%s/extra%d.sock", fx.sock_dir, n);
    err[0] = '\0';
    rc = wisp_rpc_listen_unix(e->srv, path, 0600, err, sizeof(err));
  }
  assert_int_equal(rc, WISP_ERR_USAGE);
  print_message("# listener %d: %s\n", n, err);
  assert_non_null(strstr(err, "at most 4 sockets"));
  env_free(e);
}

static void test_tls_over_unix(void **state) {
  (void)state;
  env *e = env_new(true);
  char err[256] = "";
  wisp_rpcc *c = wisp_rpcc_connect(&e->lp, e->target, e->cli_tls, ID_AGENT, err, sizeof(err));
  assert_non_null(c);
  rec r = {.e = e};
  unary(c, "/t.T/Unary", "peer", &r, 5);
  run_until_done(e, &r, 1, 5);
  print_message("# tls: %s %s\n", wisp_grpc_status_name((int)r.code), r.msg);
  assert_int_equal(r.code, WISP_GRPC_OK);
  assert_string_equal(r.msgs[0], ID_PROXY); /* the server verified our SVID */
  assert_true(wisp_rpcc_reached(c));
  wisp_rpcc_free(c);
  env_free(e);
}

static void test_tls_wrong_server_id(void **state) {
  (void)state;
  env *e = env_new(true);
  char err[256] = "";
  wisp_rpcc *c = wisp_rpcc_connect(&e->lp, e->target, e->cli_tls, "spiffe://example.org/impostor", err, sizeof(err));
  assert_non_null(c);
  rec r = {.e = e};
  unary(c, "/t.T/Unary", "peer", &r, 5);
  run_until_done(e, &r, 1, 5);
  print_message("# tls wrong id: %s\n", r.msg);
  assert_int_equal(r.code, WISP_GRPC_UNAVAILABLE);
  assert_non_null(strstr(r.msg, ID_AGENT));
  assert_non_null(strstr(r.msg, "spiffe://example.org/impostor"));
  assert_false(wisp_rpcc_reached(c));
  assert_int_equal(e->server_closes, 0);
  wisp_rpcc_free(c);
  env_free(e);
}

static void test_tls_client_to_plaintext_only_server(void **state) {
  (void)state;
  env *e = env_new(false); /* no TLS credentials on the server side */
  wisp_tls *cli = load_tls("proxy", false);
  char err[256] = "";
  wisp_rpcc *c = wisp_rpcc_connect(&e->lp, e->target, cli, ID_AGENT, err, sizeof(err));
  assert_non_null(c);
  rec r = {.e = e};
  unary(c, "/t.T/Unary", "x", &r, 5);
  run_until_done(e, &r, 1, 5);
  print_message("# tls to a server without credentials: %s\n", r.msg);
  assert_int_equal(r.code, WISP_GRPC_UNAVAILABLE);
  assert_false(wisp_rpcc_reached(c));
  wisp_rpcc_free(c);
  env_free(e);
  wisp_tls_free(cli);
}

/* ---- fixture ---------------------------------------------------------------- */

static bool write_leaf(const char *name, const char *id, EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key, long serial) {
  test_san san = {GEN_URI, id, 0};
  test_cert_spec spec = {
      .cn = "workload", .sans = &san, .nsans = 1, .serial = serial, .not_before_sec = -3600, .not_after_sec = 86400};
  X509 *x = test_new_cert(&spec, key, ca, ca_key);
  char pem[64], kf[64];
  snprintf(pem, sizeof(pem), "%s.pem", name);
  snprintf(kf, sizeof(kf), "%s.key", name);
  bool ok = x && test_write_certs(P(pem), &x, 1) && test_write_key(P(kf), key);
  X509_free(x);
  return ok;
}

static int group_setup(void **state) {
  (void)state;
  if (!test_make_tmpdir(fx.dir, sizeof(fx.dir), "rpc_client_test")) return -1;
  snprintf(fx.sock_dir, sizeof(fx.sock_dir), "/tmp/rpcc.XXXXXX");
  if (!mkdtemp(fx.sock_dir)) return -1;
  EVP_PKEY *ca_key = test_new_key(), *k1 = test_new_key(), *k2 = test_new_key();
  test_cert_spec ca_spec = {.cn = "rpcc test CA", .is_ca = true, .not_before_sec = -3600, .not_after_sec = 864000};
  X509 *ca = test_new_cert(&ca_spec, ca_key, NULL, NULL);
  bool ok = ca && test_write_certs(P("ca.pem"), &ca, 1) && write_leaf("agent", ID_AGENT, k1, ca, ca_key, 10) &&
            write_leaf("proxy", ID_PROXY, k2, ca, ca_key, 11);
  X509_free(ca);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(k1);
  EVP_PKEY_free(k2);
  return ok ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  test_remove_tmpdir(fx.dir);
  test_remove_tmpdir(fx.sock_dir);
  ERR_clear_error();
  return 0;
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_target_parse),
      cmocka_unit_test(test_target_parse_failure_leaves_out),
      cmocka_unit_test(test_listen_past_the_limit_says_why),
      cmocka_unit_test(test_target_unix_path_limit),
      cmocka_unit_test(test_response_status),
      cmocka_unit_test(test_long_grpc_message_is_cut),
      cmocka_unit_test(test_status_from_h2_error),
      cmocka_unit_test(test_timeout_format),
      cmocka_unit_test(test_unary_ok),
      cmocka_unit_test(test_error_status_and_message),
      cmocka_unit_test(test_unknown_method),
      cmocka_unit_test(test_deadline),
      cmocka_unit_test(test_response_too_big),
      cmocka_unit_test(test_streaming),
      cmocka_unit_test(test_many_calls_one_connection),
      cmocka_unit_test(test_cancel_from_on_message),
      cmocka_unit_test(test_cancel_before_connected),
      cmocka_unit_test(test_free_from_on_done),
      cmocka_unit_test(test_free_with_calls_pending),
      cmocka_unit_test(test_no_socket),
      cmocka_unit_test(test_connect_refused_tcp),
      cmocka_unit_test(test_bad_target),
      cmocka_unit_test(test_server_goes_away),
      cmocka_unit_test(test_tls_over_unix),
      cmocka_unit_test(test_tls_wrong_server_id),
      cmocka_unit_test(test_tls_client_to_plaintext_only_server),
  };
  return WISP_RUN_GROUP_TESTS(tests, group_setup, group_teardown);
}
