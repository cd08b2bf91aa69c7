/* In-process tests of proxy/control/wisp_agent_client against a fake wisp-agent:
 * the agent's own gRPC server (control/agent/wisp_rpc, plaintext and TLS
 * on a Unix socket) with a test Identity.Sign that answers each CSR with a
 * certificate the test chose. The proxy starts from --svid-cache holding a
 * valid SVID and renews at once over mTLS. An SVID the agent issues that
 * is expired, not yet valid, under another CA or for another identity is
 * refused with a line that says why, before it is installed or cached:
 * the SVID in force and the cache stay. A cached SVID that is expired,
 * not under the cached bundle or for another identity is not served at
 * start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "control/agent/wisp_rpc.h"
#include "lib/wisp_ca.h"
#include "lib/wisp_state.h"
#include "lib/wisp_tls.h"
#include "tests/inproc/fixture.h"
#include "tests/unit/test_util.h"
#include "tests/unit/test_x509.h"
#include "wisp/v1/config.pb-c.h"
#include "wisp/v1/identity.pb-c.h"

#define DAY (24L * 3600)
#define AGENT_ID "spiffe://example.org/wisp/agent"
#define OTHER_ID "spiffe://example.org/ns/other/sa/other"
#define CACHE_SVID "svid.pem"
#define CACHE_BUNDLE "bundle.pem"
#define CACHE_CONFIG "config.pb"

/* What the fake agent's Sign answers, and what the cache holds. */
/* CERT_OTHER_ID: valid, under our CA, but naming another workload. */
typedef enum { CERT_VALID, CERT_EXPIRED, CERT_EARLY, CERT_FOREIGN, CERT_OTHER_ID } cert_kind;

typedef struct {
  tf_fixture f;
  char dir[256], sockdir[64], sock[96], cache[300], agent_url[128], err_path[300];
  cert_kind cache_kind; /* the SVID put in the cache before start */
  cert_kind answer;     /* the SVID the agent issues */
  wisp_rpc_server *agent;
  wisp_tls *agent_tls;
  EVP_PKEY *foreign_key;
  X509 *foreign_ca;
  int signs;              /* Sign calls answered */
  char cached_serial[80]; /* of the SVID written to the cache */
  int saved_stderr;
} ctx;

static X509 *svid_for(ctx *c, EVP_PKEY *pub, cert_kind kind, const char *id) {
  static long serial = 1000;
  test_san san = {GEN_URI, kind == CERT_OTHER_ID ? OTHER_ID : id, 0};
  test_cert_spec spec = {.cn = "workload", .sans = &san, .nsans = 1, .serial = ++serial};
  spec.not_before_sec = kind == CERT_EXPIRED ? -2 * DAY : kind == CERT_EARLY ? DAY : -60;
  spec.not_after_sec = kind == CERT_EXPIRED ? -DAY : kind == CERT_EARLY ? 2 * DAY : DAY;
  bool foreign = kind == CERT_FOREIGN;
  return test_new_cert(&spec, pub, foreign ? c->foreign_ca : c->f.ca, foreign ? c->foreign_key : c->f.ca_key);
}

static bool push_der(ProtobufCBinaryData *out, X509 *x) {
  uint8_t *der = NULL;
  int n = i2d_X509(x, &der);
  out->data = der;
  out->len = n > 0 ? (size_t)n : 0;
  return n > 0;
}

/* ---- the fake agent ---- */

static void on_sign(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  ctx *c = wisp_rpc_server_data(wisp_rpc_call_server(call));
  Wisp__V1__SignRequest *req = wisp__v1__sign_request__unpack(NULL, len, msg);
  const uint8_t *p = req ? req->csr.data : NULL;
  X509_REQ *csr = p ? d2i_X509_REQ(NULL, &p, (long)req->csr.len) : NULL;
  EVP_PKEY *pub = csr ? X509_REQ_get_pubkey(csr) : NULL;
  X509 *leaf = pub ? svid_for(c, pub, c->answer, TF_SPIFFE_ID) : NULL;
  Wisp__V1__SignResponse resp = WISP__V1__SIGN_RESPONSE__INIT;
  ProtobufCBinaryData chain = {0}, bundle = {0};
  if (leaf && push_der(&chain, leaf) && push_der(&bundle, c->f.ca)) {
    resp.chain = &chain;
    resp.n_chain = 1;
    resp.bundle = &bundle;
    resp.n_bundle = 1;
    if (wisp_ca_cert_not_after(leaf, &resp.not_after_unix) != WISP_OK) resp.not_after_unix = 0;
    c->signs++;
    if (wisp_rpc_send(call, &resp.base) == WISP_OK) wisp_rpc_finish(call, WISP_GRPC_OK, NULL);
    else wisp_rpc_finish(call, WISP_GRPC_INTERNAL, "cannot send");
  } else {
    wisp_rpc_finish(call, WISP_GRPC_INVALID_ARGUMENT, "bad SignRequest");
  }
  OPENSSL_free(chain.data);
  OPENSSL_free(bundle.data);
  X509_free(leaf);
  EVP_PKEY_free(pub);
  X509_REQ_free(csr);
  wisp__v1__sign_request__free_unpacked(req, NULL);
}

static const wisp_rpc_method kMethods[] = {{.path = "/wisp.v1.Identity/Sign", .on_message = on_sign}};

/* The agent's TLS identity, under the fixture's CA (the proxy's bundle). */
static bool start_agent(ctx *c) {
  wisp_tls_opts topts = {.client_cert_optional = true};
  c->agent_tls = wisp_tls_new(&topts);
  EVP_PKEY *key = test_new_key();
  test_san san = {GEN_URI, AGENT_ID, 0};
  test_cert_spec spec = {.cn = "agent", .sans = &san, .nsans = 1, .not_before_sec = -60, .not_after_sec = DAY};
  X509 *cert = test_new_cert(&spec, key, c->f.ca, c->f.ca_key);
  STACK_OF(X509) *chain = sk_X509_new_null(), *roots = sk_X509_new_null();
  X509_up_ref(cert);
  sk_X509_push(chain, cert);
  X509_up_ref(c->f.ca);
  sk_X509_push(roots, c->f.ca);
  char err[512];
  bool ok = wisp_tls_set_creds(c->agent_tls, key, chain, roots, err, sizeof(err)) == WISP_OK;
  sk_X509_pop_free(chain, X509_free);
  sk_X509_pop_free(roots, X509_free);
  X509_free(cert);
  EVP_PKEY_free(key);
  wisp_rpc_config rcfg = {
      .methods = kMethods, .nmethods = 1, .data = c, .max_connections = 16, .max_conn_buffer = 1024 * 1024};
  c->agent = wisp_rpc_server_new(c->f.loop, &rcfg);
  wisp_rpc_server_set_tls(c->agent, c->agent_tls);
  ok = ok && wisp_rpc_listen_unix(c->agent, c->sock, 0600, err, sizeof(err)) == WISP_OK;
  if (!ok) fprintf(stderr, "fake agent: %s\n", err);
  return ok;
}

/* ---- --svid-cache, as the agent client writes it ---- */

static bool write_cache(ctx *c) {
  EVP_PKEY *key = test_new_key();
  X509 *leaf = svid_for(c, key, c->cache_kind, TF_SPIFFE_ID);
  STACK_OF(X509) *chain = sk_X509_new_null(), *roots = sk_X509_new_null();
  X509_up_ref(leaf);
  sk_X509_push(chain, leaf);
  X509_up_ref(c->f.ca);
  sk_X509_push(roots, c->f.ca);
  wisp_ca_cert_serial_hex(leaf, c->cached_serial, sizeof(c->cached_serial));
  char *kp = NULL, *cp = NULL, *rp = NULL, err[512] = "";
  size_t kl = 0, cl = 0, rl = 0;
  bool ok = wisp_ca_key_to_pem(&kp, &kl, key) == WISP_OK && wisp_ca_certs_to_pem(&cp, &cl, chain) == WISP_OK &&
            wisp_ca_certs_to_pem(&rp, &rl, roots) == WISP_OK;
  char *both = ok ? malloc(kl + cl) : NULL;
  if (both) {
    memcpy(both, kp, kl);
    memcpy(both + kl, cp, cl);
  }
  /* The policy in force with it: a cached SVID is served only with one. */
  Wisp__V1__Snapshot snap = WISP__V1__SNAPSHOT__INIT;
  snap.version = (char[]){"1"};
  snap.policy_yaml = (char[]){
      "apiVersion: wisp.dev/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: all\n  "
      "namespace: test\nspec:\n  selector:\n    serviceAccount: proxy\n  rules:\n  - {}\n"};
  size_t sl = wisp__v1__snapshot__get_packed_size(&snap);
  uint8_t *packed = malloc(sl);
  ok = ok && both && packed && wisp__v1__snapshot__pack(&snap, packed) == sl &&
       wisp_state_ensure_dir(c->cache, 0700, err, sizeof(err)) == WISP_OK &&
       wisp_state_write(c->cache, CACHE_SVID, both, kl + cl, 0600, err, sizeof(err)) == WISP_OK &&
       wisp_state_write(c->cache, CACHE_BUNDLE, rp, rl, 0600, err, sizeof(err)) == WISP_OK &&
       wisp_state_write(c->cache, CACHE_CONFIG, packed, sl, 0600, err, sizeof(err)) == WISP_OK;
  if (!ok) fprintf(stderr, "cache: %s\n", err);
  free(packed);
  free(both);
  free(kp);
  free(cp);
  free(rp);
  sk_X509_pop_free(chain, X509_free);
  sk_X509_pop_free(roots, X509_free);
  X509_free(leaf);
  EVP_PKEY_free(key);
  return ok;
}

static char *read_cache(ctx *c, const char *name) {
  char path[600];
  snprintf(path, sizeof(path), "%s/%s", c->cache, name);
  return tf_read_file(path);
}

static bool prepare(tf_fixture *f, void *arg) {
  ctx *c = arg;
  c->foreign_key = test_new_key();
  test_cert_spec spec = {.cn = "another CA", .is_ca = true, .not_before_sec = -3600, .not_after_sec = DAY};
  c->foreign_ca = test_new_cert(&spec, c->foreign_key, NULL, NULL);
  return c->foreign_ca && write_cache(c) && start_agent(c);
}

/* Whether one stderr line (where cert events go) holds every one of
 * |needles| (NULL-ended). */
static bool err_line_has(ctx *c, const char *const *needles) { return tf_file_line_has(c->err_path, needles); }

typedef struct {
  ctx *c;
  const char *const *needles;
} waiting;

static bool logged(void *arg) {
  waiting *w = arg;
  return err_line_has(w->c, w->needles);
}

/* Starts into |*state|, which the teardown stops (also after a failed
 * assertion). */
static ctx *start(void **state, cert_kind cache_kind, cert_kind answer) {
  ctx *c = calloc(1, sizeof(*c));
  *state = c;
  c->saved_stderr = -1;
  c->cache_kind = cache_kind;
  c->answer = answer;
  if (!test_make_tmpdir(c->dir, sizeof(c->dir), "agentc")) return NULL;
  snprintf(c->err_path, sizeof(c->err_path), "%s/stderr.log", c->dir);
  if (!tf_capture_fd(STDERR_FILENO, c->err_path, &c->saved_stderr)) return NULL;
  /* A short directory for the socket: $TEST_TMPDIR can be longer than a
   * socket's path may be (108 bytes). */
  snprintf(c->sockdir, sizeof(c->sockdir), "/tmp/wisp-ac.XXXXXX");
  if (!mkdtemp(c->sockdir)) {
    c->sockdir[0] = '\0';
    return NULL;
  }
  snprintf(c->sock, sizeof(c->sock), "%s/agent.sock", c->sockdir);
  snprintf(c->cache, sizeof(c->cache), "%s/cache", c->dir);
  snprintf(c->agent_url, sizeof(c->agent_url), "unix://%s", c->sock);
  const char *args[] = {"--agent", c->agent_url, "--spiffe-id", TF_SPIFFE_ID, "--svid-cache", c->cache};
  tf_opts o = {.args = args, .nargs = 6, .no_cert = true, .prepare = prepare, .prepare_arg = c};
  if (!tf_start(&c->f, &o)) return NULL;
  return c;
}

static int stop(void **state) {
  ctx *c = *state;
  *state = NULL;
  if (!c) return 0;
  wisp_rpc_server_free(c->agent);
  tf_stop(&c->f);
  wisp_tls_free(c->agent_tls);
  X509_free(c->foreign_ca);
  EVP_PKEY_free(c->foreign_key);
  tf_restore_fd(STDERR_FILENO, &c->saved_stderr);
  test_remove_tmpdir(c->cache);
  test_remove_tmpdir(c->dir);
  if (c->sockdir[0]) test_remove_tmpdir(c->sockdir);
  free(c);
  return 0;
}

static const char *served_serial(ctx *c) { return wisp_tls_get0_info(c->f.px.tls)->serial; }

/* Starts from a valid cached SVID; the renewal brings |answer|, which is
 * refused with |why|: the cached SVID is still served, the cache as it
 * was. */
static void check_refused(void **state, cert_kind answer, const char *why) {
  ctx *c = start(state, CERT_VALID, answer);
  assert_non_null(c);
  const char *restored[] = {"\"event\":\"restored\"", "from --svid-cache", NULL};
  assert_true(err_line_has(c, restored));
  assert_string_equal(served_serial(c), c->cached_serial);
  char *cache_before = read_cache(c, CACHE_SVID);
  assert_non_null(strstr(cache_before, "BEGIN CERTIFICATE"));
  const char *refused[] = {"\"event\":\"install_failed\"", why, "the SVID in force stays", NULL};
  waiting w = {c, refused};
  assert_true(tp_run_until(c->f.loop, logged, &w, TF_WAIT));
  assert_int_equal(c->signs, 1);
  assert_string_equal(served_serial(c), c->cached_serial);
  assert_true(wisp_tls_get0_info(c->f.px.tls)->not_after_unix > (int64_t)time(NULL));
  char *cache_after = read_cache(c, CACHE_SVID);
  assert_non_null(cache_after);
  assert_string_equal(cache_after, cache_before);
  free(cache_before);
  free(cache_after);
}

static void test_expired_svid_refused(void **state) { check_refused(state, CERT_EXPIRED, ") expired at "); }

static void test_early_svid_refused(void **state) { check_refused(state, CERT_EARLY, ") is not valid before "); }

static void test_foreign_svid_refused(void **state) {
  check_refused(state, CERT_FOREIGN, "the SVID does not chain to the trust bundle (1 root): ");
}

/* The same path with a valid SVID: installed, served and cached (so the
 * tests above would see an install). */
static void test_other_id_svid_refused(void **state) {
  check_refused(state, CERT_OTHER_ID, "the SVID is for " OTHER_ID ", not " TF_SPIFFE_ID " (our --spiffe-id)");
}

static void test_valid_svid_installed(void **state) {
  ctx *c = start(state, CERT_VALID, CERT_VALID);
  assert_non_null(c);
  char *cache_before = read_cache(c, CACHE_SVID);
  const char *issued[] = {"\"event\":\"issued\"", NULL};
  waiting w = {c, issued};
  assert_true(tp_run_until(c->f.loop, logged, &w, TF_WAIT));
  assert_int_equal(c->signs, 1);
  assert_string_not_equal(served_serial(c), c->cached_serial);
  char *cache_after = read_cache(c, CACHE_SVID);
  assert_non_null(cache_after);
  assert_string_not_equal(cache_after, cache_before);
  free(cache_before);
  free(cache_after);
}

/* A cached SVID that may not be served is not restored at start: the
 * proxy has no SVID until the agent issues one. */
static void check_cache_unusable(void **state, cert_kind cached, const char *why) {
  ctx *c = start(state, cached, CERT_VALID);
  assert_non_null(c);
  const char *unusable[] = {"\"event\":\"cache_unusable\"", why, NULL};
  assert_true(err_line_has(c, unusable));
  const char *restored[] = {"\"event\":\"restored\"", NULL};
  assert_false(err_line_has(c, restored));
  assert_string_not_equal(served_serial(c), c->cached_serial);
}

static void test_cache_expired(void **state) { check_cache_unusable(state, CERT_EXPIRED, ") expired at "); }

static void test_cache_early(void **state) { check_cache_unusable(state, CERT_EARLY, ") is not valid before "); }

static void test_cache_foreign(void **state) {
  check_cache_unusable(state, CERT_FOREIGN, "the SVID does not chain to the trust bundle (1 root): ");
}

static void test_cache_other_id(void **state) {
  check_cache_unusable(state, CERT_OTHER_ID, "the SVID is for " OTHER_ID ", not " TF_SPIFFE_ID " (our --spiffe-id)");
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_valid_svid_installed, stop),
      cmocka_unit_test_teardown(test_expired_svid_refused, stop),
      cmocka_unit_test_teardown(test_early_svid_refused, stop),
      cmocka_unit_test_teardown(test_foreign_svid_refused, stop),
      cmocka_unit_test_teardown(test_other_id_svid_refused, stop),
      cmocka_unit_test_teardown(test_cache_expired, stop),
      cmocka_unit_test_teardown(test_cache_early, stop),
      cmocka_unit_test_teardown(test_cache_foreign, stop),
      cmocka_unit_test_teardown(test_cache_other_id, stop),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
