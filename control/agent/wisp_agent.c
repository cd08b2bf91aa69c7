#include "control/agent/wisp_agent.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "control/agent/wisp_rpc.h"
#include "control/agent/wisp_sa.h"
#include "control/agent/wisp_tokens.h"
#include "lib/wisp_ca.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_policy.h"
#include "lib/wisp_spiffe.h"
#include "lib/wisp_state.h"
#include "lib/wisp_tls.h"
#include "wisp/v1/admin.pb-c.h"
#include "wisp/v1/config.pb-c.h"
#include "wisp/v1/identity.pb-c.h"

#define F_CA_CERT "ca.crt"
#define F_CA_KEY "ca.key"
#define F_BUNDLE "bundle.pem"
#define F_AGENT_CERT "agent.crt"
#define F_AGENT_KEY "agent.key"
#define F_TOKENS "tokens"
#define F_NEXT_CERT "next-ca.crt"
#define F_NEXT_KEY "next-ca.key"
#define F_EXTRA_ROOTS "extra-roots.pem" /* roots trusted besides the CA's own */
#define F_OLD_ROOT_UNTIL "old-root-until" /* when the last SVID the old root signed expires */
#define F_POLICY "policy.yaml"
#define F_VERSION "policy.version"
#define STATE_MAX (4 * 1024 * 1024)
#define ROOT_TTL (10LL * 365 * 86400)
#define AGENT_CERT_TTL (24 * 3600)
#define DEFAULT_TOKEN_TTL 3600
#define POLICY_POLL_SECONDS 0.5
/* How often summaries of rate-limited log lines are written. */
#define LOG_FLUSH_SECONDS 1.0
/* Refused Watch streams logged per second; the rest are counted. */
#define WATCH_REFUSED_LOG_BURST 10

/* What the agent knows of one proxy identity; its sidecars (replicas of
 * a Deployment share one) each answer on their own Watch stream (watcher). */
typedef struct {
  char spiffe_id[WISP_SPIFFE_MAX + 1];
  int watchers;              /* open Config.Watch streams: its connected sidecars */
  char acked[32];            /* the last version any of its sidecars ACKed */
  char serial[80];
  int64_t not_after;
  int64_t signed_at;         /* when its last SVID was signed */
  int64_t last_seen;
  size_t status_index;       /* its entry in the Status answer being built */
} proxy_record;

/* One open Config.Watch stream. */
typedef struct watcher {
  wisp_agent *agent;
  wisp_rpc_call *call;
  proxy_record *rec;         /* NULL until admitted (its first request) */
  char nonce[33];            /* of the newest snapshot sent */
  /* This sidecar's own answers: a sibling's ACK does not clear its NACK. */
  char acked[32];
  char nack[256];            /* its last answer's error; "": an ACK, or none yet */
  char nacked[32];           /* the version that NACK refused */
  struct watcher *next, *prev;
} watcher;

struct wisp_agent {
  struct ev_loop *loop;
  wisp_agent_config cfg;
  wisp_ca *ca;
  wisp_ca *next_ca;          /* a prepared rotation, not yet signing */
  wisp_tls *tls;
  wisp_rpc_server *rpc;
  wisp_tokens tokens;
  wisp_sa *sa;               /* service-account token identity */
  wisp_injector *injector;   /* the admission webhook, NULL: none */
  char *policy;              /* owned, NUL-terminated YAML */
  wisp_policy *compiled;     /* owned: |policy| compiled, for its Destinations */
  uint64_t version;
  /* SHA-256 of the --policy-dir files last read: the directory is applied
   * when it changes, so a `wispctl apply` stays until the next edit. */
  uint8_t policy_dir_digest[SHA256_DIGEST_LENGTH];
  watcher *watchers;
  size_t nwatchers;          /* admitted ones */
  wisp_rpc_shared *snapshot; /* the current Snapshot without a nonce, packed once; NULL: to build */
  proxy_record **proxies;    /* owned; records never move (watchers point at them) */
  size_t nproxies;
  ev_timer policy_poll, cert_renew, log_flush;
};

static int64_t now_unix(void) { return (int64_t)time(NULL); }

/* notAfter as Unix time; 0 if it cannot be read (only shown to users). */
static int64_t not_after_of(const X509 *cert) {
  int64_t t = 0;
  if (wisp_ca_cert_not_after(cert, &t) != WISP_OK) return 0;
  return t;
}

/* ---- state dir ---- */

static wisp_err save(wisp_agent *a, const char *name, const void *data, size_t len, char *err, size_t err_len) {
  return wisp_state_write(a->cfg.state_dir, name, data, len, 0600, err, err_len);
}

static wisp_err save_tokens(wisp_agent *a) {
  wisp_buf b = {0};
  char err[256];
  wisp_tokens_prune(&a->tokens, now_unix());
  wisp_err rc = wisp_tokens_serialize(&a->tokens, &b);
  if (rc == WISP_OK) rc = save(a, F_TOKENS, wisp_buf_rptr(&b), wisp_buf_len(&b), err, sizeof(err));
  if (rc != WISP_OK) WISP_ERROR("cannot save join tokens: %s", err);
  wisp_buf_cleanup(&b);
  return rc;
}

/* Reads a state file; WISP_ERR_IO with errno ENOENT when it is not there. */
static wisp_err load(wisp_agent *a, const char *name, char **out, size_t *out_len, char *err, size_t err_len) {
  uint8_t *data = NULL;
  size_t len = 0;
  WISP_GUARD(wisp_state_read(a->cfg.state_dir, name, STATE_MAX, &data, &len, err, err_len));
  *out = wisp_realloc(data, len + 1);
  (*out)[len] = '\0';
  *out_len = len;
  return WISP_OK;
}

static bool state_exists(const wisp_agent *a, const char *name) {
  char path[4096];
  struct stat st;
  snprintf(path, sizeof(path), "%s/%s", a->cfg.state_dir, name);
  return stat(path, &st) == 0;
}

static wisp_err save_ca(wisp_agent *a, char *err, size_t err_len) {
  char *cert = NULL, *key = NULL;
  size_t cert_len = 0, key_len = 0;
  wisp_err rc = wisp_ca_save_pem(a->ca, &cert, &cert_len, &key, &key_len);
  if (rc == WISP_OK) rc = save(a, F_CA_KEY, key, key_len, err, err_len);
  if (rc == WISP_OK) rc = save(a, F_CA_CERT, cert, cert_len, err, err_len);
  if (key) OPENSSL_cleanse(key, key_len);
  free(cert);
  free(key);
  return rc;
}

/* The CA: --ca-cert/--ca-key, else the one in the state dir, else a new
 * root written there. */
static wisp_err load_ca(wisp_agent *a, char *err, size_t err_len) {
  if (a->cfg.ca_cert) {
    return wisp_ca_load_files(&a->ca, a->cfg.trust_domain, a->cfg.ca_cert, NULL, a->cfg.ca_key, err, err_len);
  }
  if (state_exists(a, F_CA_CERT)) {
    char *cert, *key;
    size_t cert_len, key_len;
    WISP_GUARD(load(a, F_CA_CERT, &cert, &cert_len, err, err_len));
    wisp_err rc = load(a, F_CA_KEY, &key, &key_len, err, err_len);
    if (rc == WISP_OK) {
      rc = wisp_ca_load_pem(&a->ca, NULL, cert, cert_len, key, key_len, err, err_len);
      OPENSSL_cleanse(key, key_len);
      free(key);
    }
    free(cert);
    return rc;
  }
  a->ca = wisp_ca_new_root(a->cfg.trust_domain, ROOT_TTL, err, err_len);
  WISP_ENSURE(a->ca, WISP_ERR_USAGE);
  WISP_GUARD(save_ca(a, err, err_len));
  WISP_INFO("generated a new root CA for spiffe://%s in %s", a->cfg.trust_domain, a->cfg.state_dir);
  return WISP_OK;
}

static wisp_err certs_pem(STACK_OF(X509) *certs, char **out, size_t *out_len) {
  return wisp_ca_certs_to_pem(out, out_len, certs);
}

/* ---- CA rotation state ---- */

static wisp_err load_pair(wisp_agent *a, wisp_ca **out, const char *cert_name, const char *key_name, char *err,
                          size_t err_len) {
  char *cert, *key;
  size_t cert_len, key_len;
  WISP_GUARD(load(a, cert_name, &cert, &cert_len, err, err_len));
  wisp_err rc = load(a, key_name, &key, &key_len, err, err_len);
  if (rc == WISP_OK) {
    rc = wisp_ca_load_pem(out, NULL, cert, cert_len, key, key_len, err, err_len);
    OPENSSL_cleanse(key, key_len);
    free(key);
  }
  free(cert);
  return rc;
}

static wisp_err add_roots(wisp_ca *ca, const char *pem, size_t len, char *err, size_t err_len) {
  STACK_OF(X509) *roots = NULL;
  if (len == 0) return WISP_OK;
  WISP_GUARD(wisp_ca_certs_from_pem(&roots, pem, len, err, err_len));
  wisp_err rc = WISP_OK;
  for (size_t i = 0; rc == WISP_OK && i < sk_X509_num(roots); i++)
    rc = wisp_ca_add1_root(ca, sk_X509_value(roots, i), err, err_len);
  sk_X509_pop_free(roots, X509_free);
  return rc;
}

/* Roots of |ca|'s bundle other than its own, as PEM, for F_EXTRA_ROOTS. */
static wisp_err save_extra_roots(wisp_agent *a, char *err, size_t err_len) {
  STACK_OF(X509) *all = wisp_ca_get0_roots(a->ca);
  STACK_OF(X509) *extra = sk_X509_new_null();
  for (size_t i = 1; i < sk_X509_num(all); i++) sk_X509_push(extra, sk_X509_value(all, i));
  char *pem = NULL;
  size_t len = 0;
  wisp_err rc = sk_X509_num(extra) ? wisp_ca_certs_to_pem(&pem, &len, extra) : WISP_OK;
  if (rc == WISP_OK) rc = save(a, F_EXTRA_ROOTS, pem ? pem : "", len, err, err_len);
  free(pem);
  sk_X509_free(extra);
  return rc;
}

static wisp_err load_rotation(wisp_agent *a, char *err, size_t err_len) {
  if (state_exists(a, F_EXTRA_ROOTS)) {
    char *pem;
    size_t len;
    WISP_GUARD(load(a, F_EXTRA_ROOTS, &pem, &len, err, err_len));
    wisp_err rc = add_roots(a->ca, pem, len, err, err_len);
    free(pem);
    WISP_GUARD(rc);
  }
  if (state_exists(a, F_NEXT_CERT)) WISP_GUARD(load_pair(a, &a->next_ca, F_NEXT_CERT, F_NEXT_KEY, err, err_len));
  return WISP_OK;
}

static void remove_state(wisp_agent *a, const char *name) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", a->cfg.state_dir, name);
  unlink(path);
}

/* The agent's own identity: proxies verify the agent by it, so it is
 * never issued to anyone else (see authorize_sign). */
static void agent_id(const wisp_agent *a, char out[WISP_SPIFFE_MAX + 1]) {
  snprintf(out, WISP_SPIFFE_MAX + 1, "spiffe://%s/wisp/agent", wisp_ca_get0_trust_domain(a->ca));
}

/* The agent's own TLS identity, spiffe://<td>/wisp/agent, from its CA. */
static wisp_err issue_agent_cert(wisp_agent *a, char *err, size_t err_len) {
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  char id[WISP_SPIFFE_MAX + 1];
  agent_id(a, id);
  WISP_GUARD(wisp_ca_key_new_p256(&key));
  wisp_err rc = wisp_ca_issue(a->ca, &cert, key, id, AGENT_CERT_TTL, err, err_len);
  STACK_OF(X509) *chain = sk_X509_new_null();
  char *pem = NULL, *key_pem = NULL, *bundle = NULL;
  size_t pem_len = 0, key_len = 0, bundle_len = 0;
  if (rc == WISP_OK) {
    sk_X509_push(chain, cert);
    for (size_t i = 0; i < sk_X509_num(wisp_ca_get0_chain(a->ca)); i++)
      sk_X509_push(chain, sk_X509_value(wisp_ca_get0_chain(a->ca), i));
    rc = certs_pem(chain, &pem, &pem_len);
  }
  if (rc == WISP_OK) rc = wisp_ca_key_to_pem(&key_pem, &key_len, key);
  if (rc == WISP_OK) rc = certs_pem(wisp_ca_get0_roots(a->ca), &bundle, &bundle_len);
  if (rc == WISP_OK) rc = save(a, F_AGENT_KEY, key_pem, key_len, err, err_len);
  if (rc == WISP_OK) rc = save(a, F_AGENT_CERT, pem, pem_len, err, err_len);
  if (rc == WISP_OK) rc = save(a, F_BUNDLE, bundle, bundle_len, err, err_len);
  if (rc == WISP_OK) {
    char path[3][4096];
    snprintf(path[0], sizeof(path[0]), "%s/%s", a->cfg.state_dir, F_AGENT_CERT);
    snprintf(path[1], sizeof(path[1]), "%s/%s", a->cfg.state_dir, F_AGENT_KEY);
    snprintf(path[2], sizeof(path[2]), "%s/%s", a->cfg.state_dir, F_BUNDLE);
    rc = wisp_tls_load_files(a->tls, path[0], path[1], path[2], err, err_len);
  }
  /* The webhook's certificate and the bundle injected pods get follow too. */
  if (rc == WISP_OK && a->injector) rc = wisp_injector_refresh(a->injector, a->ca, err, err_len);
  sk_X509_free(chain);
  X509_free(cert);
  EVP_PKEY_free(key);
  free(pem);
  free(key_pem);
  free(bundle);
  return rc;
}

static void on_log_flush(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_log_limit_flush(wisp_log_now());
  fflush(stdout);
}

static void on_cert_renew(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_agent *a = w->data;
  char err[512];
  if (issue_agent_cert(a, err, sizeof(err)) != WISP_OK) WISP_ERROR("cannot renew the agent's certificate: %s", err);
}

static wisp_err load_policy(wisp_agent *a, char *err, size_t err_len) {
  size_t len;
  if (!state_exists(a, F_POLICY)) {
    a->policy = wisp_strdup("");
    return WISP_OK;
  }
  WISP_GUARD(load(a, F_POLICY, &a->policy, &len, err, err_len));
  if (wisp_policy_compile(&a->compiled, a->policy, len, err, err_len) != WISP_OK) {
    WISP_ERROR("the saved policy no longer compiles (%s); fix it with wispctl apply", err);
    a->compiled = NULL;
  }
  char *v;
  if (load(a, F_VERSION, &v, &len, err, err_len) == WISP_OK) {
    a->version = strtoull(v, NULL, 10);
    free(v);
  }
  return WISP_OK;
}

/* ---- proxies and watchers ---- */

static void log_event(const char *type, const char *k1, const char *v1, const char *k2, const char *v2);

/* Forgets the record idle longest (no Watch open, not seen for
 * --proxy-idle); false if none is. Records with a watcher are pointed at
 * and stay. Without this, identities that signed once would fill the table
 * for good and refuse every new proxy's Watch. */
static bool proxy_evict_idle(wisp_agent *a) {
  int64_t cutoff = now_unix() - a->cfg.proxy_idle;
  size_t victim = a->nproxies;
  for (size_t i = 0; i < a->nproxies; i++) {
    const proxy_record *r = a->proxies[i];
    if (r->watchers == 0 && r->last_seen <= cutoff &&
        (victim == a->nproxies || r->last_seen < a->proxies[victim]->last_seen))
      victim = i;
  }
  if (victim == a->nproxies) return false;
  log_event("proxy_forgotten", "spiffe_id", a->proxies[victim]->spiffe_id, "reason", "idle, to make room");
  free(a->proxies[victim]);
  a->proxies[victim] = a->proxies[--a->nproxies];
  return true;
}

static proxy_record *proxy_get(wisp_agent *a, const char *id) {
  for (size_t i = 0; i < a->nproxies; i++) {
    if (strcmp(a->proxies[i]->spiffe_id, id) == 0) return a->proxies[i];
  }
  if (a->nproxies >= a->cfg.max_proxies && !proxy_evict_idle(a)) return NULL;
  a->proxies = wisp_realloc(a->proxies, (a->nproxies + 1) * sizeof(*a->proxies));
  proxy_record *r = wisp_calloc(1, sizeof(*r));
  snprintf(r->spiffe_id, sizeof(r->spiffe_id), "%s", id);
  r->last_seen = now_unix();
  a->proxies[a->nproxies++] = r;
  return r;
}

static void version_str(const wisp_agent *a, char *out, size_t len) { snprintf(out, len, "%" PRIu64, a->version); }

static void new_nonce(char out[33]) {
  static const char hex[] = "0123456789abcdef";
  uint8_t raw[16];
  RAND_bytes(raw, sizeof(raw));
  for (int i = 0; i < 16; i++) {
    out[2 * i] = hex[raw[i] >> 4];
    out[2 * i + 1] = hex[raw[i] & 15];
  }
  out[32] = '\0';
}

/* DER of every root, for SignResponse.bundle and Snapshot.bundle. */
static ProtobufCBinaryData *bundle_der(const wisp_agent *a, size_t *out_n) {
  STACK_OF(X509) *roots = wisp_ca_get0_roots(a->ca);
  size_t n = sk_X509_num(roots);
  ProtobufCBinaryData *der = wisp_calloc(n, sizeof(*der));
  for (size_t i = 0; i < n; i++) {
    uint8_t *p = NULL;
    int len = i2d_X509(sk_X509_value(roots, i), &p);
    der[i].data = p;
    der[i].len = len > 0 ? (size_t)len : 0;
  }
  *out_n = n;
  return der;
}

static void free_der(ProtobufCBinaryData *der, size_t n) {
  for (size_t i = 0; i < n; i++) OPENSSL_free(der[i].data);
  free(der);
}

/* Snapshot.destinations: the policy's Destination documents, flattened
 * (pointers borrowed from the compiled policy; free the arrays only). */
static Wisp__V1__Destination **destinations(const wisp_agent *a, size_t *out_n) {
  const wisp_policy_destination *d = NULL;
  size_t n = a->compiled ? wisp_policy_get_destinations(a->compiled, &d) : 0;
  *out_n = n;
  if (!n) return NULL;
  Wisp__V1__Destination *msgs = wisp_calloc(n, sizeof(*msgs));
  Wisp__V1__Destination **ptrs = wisp_calloc(n, sizeof(*ptrs));
  for (size_t i = 0; i < n; i++) {
    wisp__v1__destination__init(&msgs[i]);
    msgs[i].address = (char *)d[i].address;
    msgs[i].spiffe_id = (char *)d[i].spiffe_id;
    ptrs[i] = &msgs[i];
  }
  return ptrs;
}

static void free_destinations(Wisp__V1__Destination **ptrs) {
  if (ptrs) free(ptrs[0]);
  free(ptrs);
}

/* A Watch stream refused or ended by the agent: a peer can make these
 * repeat, so they are rate-limited. */
static void log_watch_event(const char *type, wisp_rpc_call *call, const char *id, const char *claim,
                            const char *why) {
  static wisp_log_limit limit = WISP_LOG_LIMIT_INIT("watch refusals", WATCH_REFUSED_LOG_BURST, 1.0, WISP_LOG_TO_STDOUT);
  uint64_t dropped = 0;
  if (!wisp_log_limit_pass(&limit, wisp_log_now(), &dropped)) return;
  wisp_json j;
  wisp_json_begin(&j, type);
  wisp_json_str(&j, "spiffe_id", id);
  wisp_json_str(&j, "claimed", claim[0] ? claim : NULL);
  wisp_json_str(&j, "origin", wisp_rpc_call_origin(call));
  wisp_json_str(&j, "reason", why);
  if (dropped) wisp_json_int(&j, "suppressed", (int64_t)dropped);
  wisp_json_emit(&j);
  fflush(stdout);
}

/* The Snapshot every watcher gets, packed once per change; each watcher's
 * nonce goes in front of it (see wisp_rpc_send_latest). */
static wisp_rpc_shared *current_snapshot(wisp_agent *a) {
  if (a->snapshot) return a->snapshot;
  Wisp__V1__Snapshot snap = WISP__V1__SNAPSHOT__INIT;
  char version[32];
  version_str(a, version, sizeof(version));
  snap.version = version;
  snap.policy_yaml = a->policy;
  snap.bundle = bundle_der(a, &snap.n_bundle);
  snap.destinations = destinations(a, &snap.n_destinations);
  a->snapshot = wisp_rpc_shared_new(&snap.base);
  free_der(snap.bundle, snap.n_bundle);
  free_destinations(snap.destinations);
  return a->snapshot;
}

/* Sends the current snapshot. One the watcher has not started to read is
 * replaced, not queued behind: only the newest matters. */
static void push_snapshot(watcher *w) {
  Wisp__V1__Snapshot own = WISP__V1__SNAPSHOT__INIT;
  new_nonce(w->nonce);
  own.nonce = w->nonce;
  if (wisp_rpc_send_latest(w->call, current_snapshot(w->agent), &own.base) != WISP_OK) {
    static const char why[] = "watcher is not reading its snapshots: its connection holds too much unread output "
                              "(--max-conn-buffer)";
    log_watch_event("watch_ended", w->call, w->rec->spiffe_id, "", why);
    wisp_rpc_finish(w->call, WISP_GRPC_RESOURCE_EXHAUSTED, why);
  }
}

/* The policy or the bundle changed: every watcher gets the new snapshot. */
static void push_all(wisp_agent *a) {
  wisp_rpc_shared_free(a->snapshot);
  a->snapshot = NULL;
  for (watcher *w = a->watchers; w; w = w->next) {
    if (w->rec) push_snapshot(w);
  }
}

/* ---- RPC handlers ---- */

static void log_event(const char *type, const char *k1, const char *v1, const char *k2, const char *v2) {
  wisp_json j;
  wisp_json_begin(&j, type);
  wisp_json_str(&j, k1, v1);
  wisp_json_str(&j, k2, v2);
  wisp_json_emit(&j);
  fflush(stdout);
}

/* Admin: plaintext over the Unix socket, from root or the agent's own user.
 * Proxies may be given the socket (a node's hostPath, a group that can open
 * it) for Identity and Config; that must not let them mint tokens or
 * change the policy. */
static bool admin_allowed(wisp_rpc_call *call) {
  uid_t uid;
  if (!wisp_rpc_call_local(call)) {
    wisp_rpc_finish(call, WISP_GRPC_PERMISSION_DENIED,
                    "the Admin API is only served over the agent's Unix socket without TLS");
    return false;
  }
  if (wisp_rpc_call_local_uid(call, &uid) && (uid == 0 || uid == geteuid())) return true;
  char msg[160];
  snprintf(msg, sizeof(msg), "the Admin API is served to root and to the agent's user (uid %u) only, not to uid %d",
           (unsigned)geteuid(), wisp_rpc_call_local_uid(call, &uid) ? (int)uid : -1);
  wisp_rpc_finish(call, WISP_GRPC_PERMISSION_DENIED, msg);
  return false;
}

static void sign_reply(wisp_rpc_call *call, wisp_agent *a, X509 *leaf, const char *id) {
  Wisp__V1__SignResponse resp = WISP__V1__SIGN_RESPONSE__INIT;
  STACK_OF(X509) *chain = wisp_ca_get0_chain(a->ca);
  size_t n = 1 + sk_X509_num(chain);
  ProtobufCBinaryData *der = wisp_calloc(n, sizeof(*der));
  for (size_t i = 0; i < n; i++) {
    uint8_t *p = NULL;
    int len = i2d_X509(i == 0 ? leaf : sk_X509_value(chain, i - 1), &p);
    der[i].data = p;
    der[i].len = len > 0 ? (size_t)len : 0;
  }
  resp.spiffe_id = (char *)id;
  resp.chain = der;
  resp.n_chain = n;
  resp.bundle = bundle_der(a, &resp.n_bundle);
  resp.not_after_unix = not_after_of(leaf);
  if (wisp_rpc_send(call, &resp.base) == WISP_OK) {
    wisp_rpc_finish(call, WISP_GRPC_OK, NULL);
  } else {
    wisp_rpc_finish(call, WISP_GRPC_INTERNAL, "cannot send the response");
  }
  free_der(der, n);
  free_der(resp.bundle, resp.n_bundle);
}

/* Whether the caller's SVID was issued on a service-account token. */
static bool peer_from_sa_token(const wisp_rpc_call *call) {
  X509 *cert = wisp_rpc_call_get1_peer_cert(call);
  char origin[sizeof(WISP_CA_ORIGIN_SA_TOKEN)];
  bool from_sa = cert && wisp_ca_cert_origin(cert, origin, sizeof(origin)) && !strcmp(origin, WISP_CA_ORIGIN_SA_TOKEN);
  X509_free(cert);
  return from_sa;
}

/* Who may have an SVID for the ID the CSR asks for: the bearer of a join
 * token for it, of a service-account token for it, or a caller already
 * holding a valid SVID for it, unless that SVID came from a service-account
 * token: such an SVID lives no longer than its token, and so does each
 * renewal, which needs a current token (else a stolen SVID key would renew
 * forever). What the caller claims decides nothing. The agent's own ID is
 * never issued: with it a proxy could pose as the agent to every other
 * proxy. |origin| says what the SVID will record of the proof. */
static wisp_grpc_status authorize_sign(wisp_agent *a, wisp_rpc_call *call, const Wisp__V1__SignRequest *req,
                                       const char *id, char *why, size_t why_len, const char **via,
                                       wisp_ca_origin *origin) {
  char own[WISP_SPIFFE_MAX + 1];
  agent_id(a, own);
  if (strcmp(id, own) == 0) {
    snprintf(why, why_len, "%s is the agent's own identity; it is never issued", id);
    return WISP_GRPC_PERMISSION_DENIED;
  }
  if (req->join_token && req->join_token[0]) {
    *via = "join-token";
    wisp_err rc = wisp_tokens_use(&a->tokens, req->join_token, id, now_unix(), why, why_len);
    if (rc == WISP_OK) {
      /* A spent one-use token must stay spent across a restart. */
      if (save_tokens(a) != WISP_OK) {
        snprintf(why, why_len, "cannot record the join token as used; try again");
        return WISP_GRPC_UNAVAILABLE;
      }
      return WISP_GRPC_OK;
    }
    return rc == WISP_ERR_POLICY ? WISP_GRPC_PERMISSION_DENIED : WISP_GRPC_UNAUTHENTICATED;
  }
  if (req->sa_token.len) {
    *via = "service-account";
    origin->name = WISP_CA_ORIGIN_SA_TOKEN;
    return wisp_sa_authorize(a->sa, (const char *)req->sa_token.data, req->sa_token.len, id,
                             wisp_ca_get0_trust_domain(a->ca), &origin->not_after_max, why, why_len);
  }
  *via = "renewal";
  const char *peer = wisp_rpc_call_peer_id(call);
  if (!peer) {
    snprintf(why, why_len, "no join token, and no client certificate to renew: connect with TLS and the current SVID");
    return WISP_GRPC_UNAUTHENTICATED;
  }
  if (strcmp(peer, id) != 0) {
    snprintf(why, why_len, "caller is %s but the CSR asks for %s", peer, id);
    return WISP_GRPC_PERMISSION_DENIED;
  }
  if (peer_from_sa_token(call)) {
    snprintf(why, why_len, "the SVID of %s was issued on a service-account token and lives no longer than it: "
             "renewing it needs a current token (sa_token; the proxy sends its --sa-token-file, which the kubelet "
             "rotates)", id);
    return WISP_GRPC_UNAUTHENTICATED;
  }
  return WISP_GRPC_OK;
}

static void on_sign(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  wisp_agent *a = wisp_rpc_server_data(wisp_rpc_call_server(call));
  Wisp__V1__SignRequest *req = wisp__v1__sign_request__unpack(NULL, len, msg);
  if (!req) {
    wisp_rpc_finish(call, WISP_GRPC_INVALID_ARGUMENT, "malformed SignRequest");
    return;
  }
  wisp_ca_csr_info csr = {0};
  char why[512];
  const char *via = "";
  wisp_ca_origin origin = {NULL, 0};
  X509 *leaf = NULL;
  wisp_err rc = wisp_ca_csr_check(&csr, req->csr.data, req->csr.len, why, sizeof(why));
  if (rc != WISP_OK) {
    wisp_rpc_finishf(call, WISP_GRPC_INVALID_ARGUMENT, "bad CSR: %s", why);
  } else {
    wisp_grpc_status st = authorize_sign(a, call, req, csr.id.id, why, sizeof(why), &via, &origin);
    if (st != WISP_GRPC_OK) {
      wisp_rpc_finish(call, st, why);
    } else if (wisp_ca_issue_from(a->ca, &leaf, csr.pubkey, csr.id.id, origin.name ? &origin : NULL, a->cfg.svid_ttl,
                                  why, sizeof(why)) != WISP_OK) {
      wisp_rpc_finishf(call, WISP_GRPC_FAILED_PRECONDITION, "cannot issue: %s", why);
    } else {
      proxy_record *r = proxy_get(a, csr.id.id);
      if (r) {
        wisp_ca_cert_serial_hex(leaf, r->serial, sizeof(r->serial));
        r->not_after = not_after_of(leaf);
        r->signed_at = r->last_seen = now_unix();
      }
      sign_reply(call, a, leaf, csr.id.id);
      log_event("sign", "spiffe_id", csr.id.id, "via", via);
    }
  }
  if (!leaf && csr.id.id[0]) log_event("sign_refused", "spiffe_id", csr.id.id, "reason", why);
  X509_free(leaf);
  wisp_ca_csr_info_cleanup(&csr);
  wisp__v1__sign_request__free_unpacked(req, NULL);
}

static void on_create_token(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  wisp_agent *a = wisp_rpc_server_data(wisp_rpc_call_server(call));
  if (!admin_allowed(call)) return;
  Wisp__V1__CreateJoinTokenRequest *req = wisp__v1__create_join_token_request__unpack(NULL, len, msg);
  if (!req) {
    wisp_rpc_finish(call, WISP_GRPC_INVALID_ARGUMENT, "malformed CreateJoinTokenRequest");
    return;
  }
  wisp_spiffe_id id;
  char why[256], own[WISP_SPIFFE_MAX + 1];
  const wisp_token *tok = NULL;
  int64_t ttl = req->ttl_seconds > 0 ? req->ttl_seconds : DEFAULT_TOKEN_TTL;
  agent_id(a, own);
  if (wisp_spiffe_parse(&id, req->spiffe_id, strlen(req->spiffe_id), why, sizeof(why)) != WISP_OK) {
    wisp_rpc_finishf(call, WISP_GRPC_INVALID_ARGUMENT, "spiffe_id %s: %s", req->spiffe_id, why);
  } else if (strcmp(id.trust_domain, wisp_ca_get0_trust_domain(a->ca)) != 0) {
    wisp_rpc_finishf(call, WISP_GRPC_INVALID_ARGUMENT, "spiffe_id %s is outside this agent's trust domain %s",
                     req->spiffe_id, wisp_ca_get0_trust_domain(a->ca));
  } else if (strcmp(id.id, own) == 0) {
    wisp_rpc_finishf(call, WISP_GRPC_INVALID_ARGUMENT, "%s is the agent's own identity; no token can be made for it",
                     id.id);
  } else if (wisp_tokens_create(&a->tokens, &tok, id.id, now_unix(), ttl, req->reusable) != WISP_OK ||
             save_tokens(a) != WISP_OK) {
    wisp_rpc_finish(call, WISP_GRPC_INTERNAL, "cannot store the join token");
  } else {
    Wisp__V1__CreateJoinTokenResponse resp = WISP__V1__CREATE_JOIN_TOKEN_RESPONSE__INIT;
    char token[WISP_TOKEN_LEN + 1];
    snprintf(token, sizeof(token), "%s", tok->token);
    resp.token = token;
    resp.expires_unix = tok->expires;
    if (wisp_rpc_send(call, &resp.base) == WISP_OK) wisp_rpc_finish(call, WISP_GRPC_OK, NULL);
    log_event("token_created", "spiffe_id", id.id, "reusable", req->reusable ? "true" : "false");
  }
  wisp__v1__create_join_token_request__free_unpacked(req, NULL);
}

/* Installs |yaml| as the next policy version and pushes it, if it compiles:
 * a bad policy is refused whole and the last good one stays in force. */
static wisp_err apply_policy(wisp_agent *a, const char *yaml, const char *source, char *err, size_t err_len) {
  wisp_policy *check = NULL;
  if (wisp_policy_compile(&check, yaml, strlen(yaml), err, err_len) != WISP_OK) {
    log_event("policy_rejected", "source", source, "error", err);
    return WISP_ERR_POLICY;
  }
  char version[32];
  uint64_t next = a->version + 1;
  snprintf(version, sizeof(version), "%" PRIu64, next);
  wisp_err rc = save(a, F_POLICY, yaml, strlen(yaml), err, err_len);
  if (rc == WISP_OK) rc = save(a, F_VERSION, version, strlen(version), err, err_len);
  if (rc != WISP_OK) {
    wisp_policy_free(check);
    return rc;
  }
  free(a->policy);
  a->policy = wisp_strdup(yaml);
  wisp_policy_free(a->compiled);
  a->compiled = check;
  a->version = next;
  log_event("policy_applied", "version", version, "source", source);
  push_all(a);
  return WISP_OK;
}

static void on_apply_policy(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  wisp_agent *a = wisp_rpc_server_data(wisp_rpc_call_server(call));
  if (!admin_allowed(call)) return;
  Wisp__V1__ApplyPolicyRequest *req = wisp__v1__apply_policy_request__unpack(NULL, len, msg);
  char err[512];
  if (!req) {
    wisp_rpc_finish(call, WISP_GRPC_INVALID_ARGUMENT, "malformed ApplyPolicyRequest");
    return;
  }
  wisp_err rc = apply_policy(a, req->yaml, req->source[0] ? req->source : "api", err, sizeof(err));
  if (rc == WISP_ERR_POLICY) {
    wisp_rpc_finishf(call, WISP_GRPC_INVALID_ARGUMENT, "policy refused, the last good one stays in force: %s", err);
  } else if (rc != WISP_OK) {
    wisp_rpc_finishf(call, WISP_GRPC_INTERNAL, "cannot store the policy: %s", err);
  } else {
    Wisp__V1__ApplyPolicyResponse resp = WISP__V1__APPLY_POLICY_RESPONSE__INIT;
    char version[32];
    version_str(a, version, sizeof(version));
    resp.version = version;
    if (wisp_rpc_send(call, &resp.base) == WISP_OK) wisp_rpc_finish(call, WISP_GRPC_OK, NULL);
  }
  wisp__v1__apply_policy_request__free_unpacked(req, NULL);
}

static int64_t old_root_svids_until(wisp_agent *a); /* CA rotation, below */

/* Each connected sidecar's answer, counted into its identity's entry of
 * |items| (by status_index): how many ACKed |version|, how many refused
 * (their last answer a NACK, shown: the newest such stream's). */
static void sidecar_answers(const wisp_agent *a, Wisp__V1__ProxyStatus *items, const char *version) {
  for (const watcher *w = a->watchers; w; w = w->next) {
    if (!w->rec) continue;
    Wisp__V1__ProxyStatus *p = &items[w->rec->status_index];
    if (strcmp(w->acked, version) == 0 && !w->nack[0]) p->sidecars_acked++;
    if (!w->nack[0]) continue;
    if (p->sidecars_nacked++ == 0) {
      p->last_nack_error = (char *)w->nack;
      p->nacked_version = (char *)w->nacked;
    }
  }
}

static void on_status(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  wisp_agent *a = wisp_rpc_server_data(wisp_rpc_call_server(call));
  if (!admin_allowed(call)) return;
  Wisp__V1__StatusResponse resp = WISP__V1__STATUS_RESPONSE__INIT;
  char version[32];
  version_str(a, version, sizeof(version));
  resp.version = version;
  resp.ca_not_after_unix = not_after_of(wisp_ca_get0_cert(a->ca));
  STACK_OF(X509) *roots = wisp_ca_get0_roots(a->ca);
  resp.bundle_roots = (uint32_t)sk_X509_num(roots);
  /* prepared: the new root waits in the bundle; active: it signs, and the
   * old root stays in the bundle until finish. */
  resp.ca_rotation = (char *)(a->next_ca ? "prepared" : resp.bundle_roots > 1 ? "active" : "none");
  if (!a->next_ca && resp.bundle_roots > 1) resp.ca_rotation_finish_after_unix = old_root_svids_until(a);
  int64_t *root_not_after = wisp_calloc(resp.bundle_roots ? resp.bundle_roots : 1, sizeof(*root_not_after));
  for (size_t i = 0; i < resp.bundle_roots; i++) root_not_after[i] = not_after_of(sk_X509_value(roots, i));
  resp.bundle_not_after_unix = root_not_after;
  resp.n_bundle_not_after_unix = resp.bundle_roots;
  Wisp__V1__ProxyStatus *items = wisp_calloc(a->nproxies, sizeof(*items));
  Wisp__V1__ProxyStatus **ptrs = wisp_calloc(a->nproxies, sizeof(*ptrs));
  for (size_t i = 0; i < a->nproxies; i++) {
    proxy_record *r = a->proxies[i];
    wisp__v1__proxy_status__init(&items[i]);
    items[i].spiffe_id = r->spiffe_id;
    items[i].connected = r->watchers > 0;
    items[i].sidecars_connected = (uint32_t)r->watchers;
    items[i].acked_version = r->acked;
    r->status_index = i;
    items[i].svid_serial = r->serial;
    items[i].svid_not_after_unix = r->not_after;
    items[i].svid_signed_unix = r->signed_at;
    items[i].last_seen_unix = r->last_seen;
    ptrs[i] = &items[i];
  }
  sidecar_answers(a, items, version);
  resp.proxies = ptrs;
  resp.n_proxies = a->nproxies;
  if (wisp_rpc_send(call, &resp.base) == WISP_OK) {
    wisp_rpc_finish(call, WISP_GRPC_OK, NULL);
  } else {
    wisp_rpc_finish(call, WISP_GRPC_INTERNAL, "status too large");
  }
  free(items);
  free(ptrs);
  free(root_not_after);
}

/* Watch streams open for |id| from |origin|. */
static size_t watchers_of(const wisp_agent *a, const char *id, const char *origin) {
  size_t n = 0;
  for (const watcher *w = a->watchers; w; w = w->next) {
    if (w->rec && strcmp(w->rec->spiffe_id, id) == 0 && strcmp(wisp_rpc_call_origin(w->call), origin) == 0) n++;
  }
  return n;
}

/* Admits a new watcher as the identity it proved: the SPIFFE ID of its
 * verified client certificate. What a request claims proves nothing (anyone
 * who can open the socket can claim anything), so a plaintext caller is
 * refused: proxies Watch over mTLS with the SVID they got from Sign. Then
 * the bounds: per caller (that ID from one uid or address) and in all. */
static bool watch_admit(wisp_agent *a, watcher *w, const Wisp__V1__WatchRequest *req) {
  wisp_rpc_call *call = w->call;
  const char *peer = wisp_rpc_call_peer_id(call);
  const char *origin = wisp_rpc_call_origin(call);
  wisp_grpc_status code = WISP_GRPC_OK;
  char why[512];
  if (!peer) {
    code = WISP_GRPC_UNAUTHENTICATED;
    snprintf(why, sizeof(why),
             "Config.Watch needs the proxy's SVID: call over mTLS (the Unix socket takes TLS too); "
             "a caller without a client certificate proves no identity%s%s",
             req->spiffe_id[0] ? ", whatever spiffe_id it claims: " : "", req->spiffe_id);
  } else if (req->spiffe_id[0] && strcmp(peer, req->spiffe_id) != 0) {
    code = WISP_GRPC_PERMISSION_DENIED;
    snprintf(why, sizeof(why), "caller is %s (its client certificate), not %s", peer, req->spiffe_id);
  } else if (a->nwatchers >= a->cfg.max_watchers) {
    code = WISP_GRPC_RESOURCE_EXHAUSTED;
    snprintf(why, sizeof(why), "the agent serves %zu Config.Watch streams, its limit (--max-watchers)",
             a->nwatchers);
  } else if (watchers_of(a, peer, origin) >= a->cfg.max_watchers_per_caller) {
    code = WISP_GRPC_RESOURCE_EXHAUSTED;
    snprintf(why, sizeof(why),
             "%s already has %zu Config.Watch streams open from %s, the limit (--max-watchers-per-caller)", peer,
             a->cfg.max_watchers_per_caller, origin);
  } else if ((w->rec = proxy_get(a, peer)) == NULL) {
    code = WISP_GRPC_RESOURCE_EXHAUSTED;
    snprintf(why, sizeof(why),
             "the agent knows %zu proxies, its limit (--max-proxies), none idle for --proxy-idle to forget",
             a->nproxies);
  }
  if (code != WISP_GRPC_OK) {
    log_watch_event("watch_refused", call, peer, req->spiffe_id, why);
    wisp_rpc_finish(call, code, why);
    return false;
  }
  a->nwatchers++;
  w->rec->watchers++;
  w->rec->last_seen = now_unix();
  return true;
}

/* Config.Watch: the first request opens the stream for the identity the
 * caller proved (watch_admit), then each request ACKs (empty error_detail)
 * or NACKs the snapshot with that nonce. */
static void on_watch_message(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  wisp_agent *a = wisp_rpc_server_data(wisp_rpc_call_server(call));
  watcher *w = wisp_rpc_call_user(call);
  Wisp__V1__WatchRequest *req = wisp__v1__watch_request__unpack(NULL, len, msg);
  if (!req) {
    wisp_rpc_finish(call, WISP_GRPC_INVALID_ARGUMENT, "malformed WatchRequest");
    return;
  }
  if (!w->rec) {
    if (watch_admit(a, w, req)) push_snapshot(w);
  } else if (req->nonce[0] && strcmp(req->nonce, w->nonce) == 0) {
    /* An answer to what we sent last; stale nonces are ignored, as in xDS. */
    w->rec->last_seen = now_unix();
    if (req->error_detail[0]) {
      snprintf(w->nack, sizeof(w->nack), "%s", req->error_detail);
      snprintf(w->nacked, sizeof(w->nacked), "%s", req->version);
      log_event("nack", "spiffe_id", w->rec->spiffe_id, "error", req->error_detail);
    } else {
      snprintf(w->acked, sizeof(w->acked), "%s", req->version);
      snprintf(w->rec->acked, sizeof(w->rec->acked), "%s", req->version);
      w->nack[0] = w->nacked[0] = '\0';
      log_event("ack", "spiffe_id", w->rec->spiffe_id, "version", req->version);
    }
  }
  wisp__v1__watch_request__free_unpacked(req, NULL);
}

static void on_watch_end(wisp_rpc_call *call) { wisp_rpc_finish(call, WISP_GRPC_OK, NULL); }

static void on_watch_close(wisp_rpc_call *call) {
  watcher *w = wisp_rpc_call_user(call);
  if (!w) return;
  if (w->rec) {
    w->rec->watchers--;
    w->agent->nwatchers--;
  }
  if (w->prev) {
    w->prev->next = w->next;
  } else {
    w->agent->watchers = w->next;
  }
  if (w->next) w->next->prev = w->prev;
  free(w);
}

/* The watcher is made when the call opens, before its first message. */
static void on_watch_first(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  if (!wisp_rpc_call_user(call)) {
    wisp_agent *a = wisp_rpc_server_data(wisp_rpc_call_server(call));
    watcher *w = wisp_calloc(1, sizeof(*w));
    w->agent = a;
    w->call = call;
    w->next = a->watchers;
    if (a->watchers) a->watchers->prev = w;
    a->watchers = w;
    wisp_rpc_call_set_user(call, w);
  }
  on_watch_message(call, msg, len);
}

static void root_fingerprint(const wisp_ca *ca, char *out, size_t out_len) {
  uint8_t md[32];
  unsigned md_len = 0;
  out[0] = '\0';
  if (!X509_digest(sk_X509_value(wisp_ca_get0_roots(ca), 0), EVP_sha256(), md, &md_len)) return;
  for (unsigned i = 0; i < md_len && 2 * i + 2 < out_len; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static wisp_err rotate_prepare(wisp_agent *a, char *err, size_t err_len) {
  if (a->next_ca) {
    snprintf(err, err_len, "a rotation is already prepared: activate it");
    return WISP_ERR_USAGE;
  }
  wisp_ca *next = wisp_ca_new_root(wisp_ca_get0_trust_domain(a->ca), ROOT_TTL, err, err_len);
  WISP_ENSURE(next, WISP_ERR_INTERNAL);
  char *cert = NULL, *key = NULL;
  size_t cert_len = 0, key_len = 0;
  wisp_err rc = wisp_ca_save_pem(next, &cert, &cert_len, &key, &key_len);
  if (rc == WISP_OK) rc = save(a, F_NEXT_KEY, key, key_len, err, err_len);
  if (rc == WISP_OK) rc = save(a, F_NEXT_CERT, cert, cert_len, err, err_len);
  if (rc == WISP_OK) rc = wisp_ca_add1_root(a->ca, wisp_ca_get0_cert(next), err, err_len);
  if (rc == WISP_OK) rc = save_extra_roots(a, err, err_len);
  if (key) OPENSSL_cleanse(key, key_len);
  free(cert);
  free(key);
  if (rc != WISP_OK) {
    wisp_ca_free(next);
    return rc;
  }
  a->next_ca = next;
  return WISP_OK;
}

static wisp_err rotate_activate(wisp_agent *a, char *err, size_t err_len) {
  if (!a->next_ca) {
    snprintf(err, err_len, "no rotation is prepared: run prepare first");
    return WISP_ERR_USAGE;
  }
  /* The new root signs; every root trusted so far stays in the bundle. */
  STACK_OF(X509) *old = wisp_ca_get0_roots(a->ca);
  for (size_t i = 0; i < sk_X509_num(old); i++)
    WISP_GUARD(wisp_ca_add1_root(a->next_ca, sk_X509_value(old, i), err, err_len));
  wisp_ca *prev = a->ca;
  a->ca = a->next_ca;
  a->next_ca = NULL;
  wisp_err rc = save_ca(a, err, err_len);
  if (rc == WISP_OK) rc = save_extra_roots(a, err, err_len);
  if (rc != WISP_OK) {
    a->next_ca = a->ca;
    a->ca = prev;
    return rc;
  }
  remove_state(a, F_NEXT_CERT);
  remove_state(a, F_NEXT_KEY);
  wisp_ca_free(prev);
  /* The old root signed its last SVID just now; FINISH waits until that one
   * expired (kept on disk: the agent may restart in between). */
  char until[32];
  int n = snprintf(until, sizeof(until), "%" PRId64 "\n", now_unix() + a->cfg.svid_ttl);
  if (save(a, F_OLD_ROOT_UNTIL, until, (size_t)n, err, err_len) != WISP_OK)
    WISP_ERROR("cannot record when the old root's SVIDs expire: %s", err);
  return WISP_OK;
}

/* When the last SVID signed by a root other than the signing one expires;
 * 0 when none is known to be in use. */
static int64_t old_root_svids_until(wisp_agent *a) {
  char *text = NULL, err[256];
  size_t len = 0;
  if (load(a, F_OLD_ROOT_UNTIL, &text, &len, err, sizeof(err)) != WISP_OK) return 0;
  int64_t until = strtoll(text, NULL, 10);
  free(text);
  return until;
}

/* Identities whose last SVID, still valid, was signed before |since|. */
static size_t proxies_not_renewed(const wisp_agent *a, int64_t since, int64_t now) {
  size_t n = 0;
  for (size_t i = 0; i < a->nproxies; i++) {
    const proxy_record *r = a->proxies[i];
    if (r->not_after > now && r->signed_at < since) n++;
  }
  return n;
}

static wisp_err rotate_finish(wisp_agent *a, bool force, char *err, size_t err_len) {
  if (a->next_ca) {
    snprintf(err, err_len, "the prepared root is not signing yet: activate it first");
    return WISP_ERR_USAGE;
  }
  /* Dropping the old root while SVIDs it signed are in use cuts their
   * holders off from every peer until they renew. */
  int64_t until = old_root_svids_until(a), now = now_unix();
  if (until > now && !force) {
    char when[32];
    time_t t = (time_t)until;
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    snprintf(err, err_len,
             "SVIDs signed by the old root may be in use until %s (one SVID lifetime, %" PRId64
             " s, after ACTIVATE; %zu known identities have not renewed since): finish then, or force it",
             when, a->cfg.svid_ttl, proxies_not_renewed(a, until - a->cfg.svid_ttl, now));
    return WISP_ERR_USAGE;
  }
  /* A fresh copy of the signing CA has only its own root in the bundle. */
  char *cert = NULL, *key = NULL;
  size_t cert_len = 0, key_len = 0;
  wisp_ca *only = NULL;
  wisp_err rc = wisp_ca_save_pem(a->ca, &cert, &cert_len, &key, &key_len);
  if (rc == WISP_OK) rc = wisp_ca_load_pem(&only, NULL, cert, cert_len, key, key_len, err, err_len);
  if (key) OPENSSL_cleanse(key, key_len);
  free(cert);
  free(key);
  WISP_GUARD(rc);
  wisp_ca_free(a->ca);
  a->ca = only;
  WISP_GUARD(save_extra_roots(a, err, err_len));
  remove_state(a, F_OLD_ROOT_UNTIL);
  return WISP_OK;
}

static void on_rotate_ca(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  wisp_agent *a = wisp_rpc_server_data(wisp_rpc_call_server(call));
  if (!admin_allowed(call)) return;
  Wisp__V1__RotateCARequest *req = wisp__v1__rotate_carequest__unpack(NULL, len, msg);
  if (!req) {
    wisp_rpc_finish(call, WISP_GRPC_INVALID_ARGUMENT, "malformed RotateCARequest");
    return;
  }
  char err[512] = "";
  const char *state = NULL;
  wisp_err rc = WISP_ERR_USAGE;
  switch (req->phase) {
    case WISP__V1__CA_ROTATION_PHASE__CA_ROTATION_PREPARE:
      rc = rotate_prepare(a, err, sizeof(err));
      state = "prepared";
      break;
    case WISP__V1__CA_ROTATION_PHASE__CA_ROTATION_ACTIVATE:
      rc = rotate_activate(a, err, sizeof(err));
      state = "active";
      break;
    case WISP__V1__CA_ROTATION_PHASE__CA_ROTATION_FINISH:
      rc = rotate_finish(a, req->force, err, sizeof(err));
      state = "done";
      break;
    default:
      snprintf(err, sizeof(err), "phase must be PREPARE, ACTIVATE or FINISH");
  }
  wisp__v1__rotate_carequest__free_unpacked(req, NULL);
  if (rc != WISP_OK) {
    wisp_rpc_finish(call, rc == WISP_ERR_USAGE ? WISP_GRPC_FAILED_PRECONDITION : WISP_GRPC_INTERNAL, err);
    return;
  }
  /* The agent's own certificate follows the signing root, and every proxy
   * gets the new bundle now. */
  if (issue_agent_cert(a, err, sizeof(err)) != WISP_OK) WISP_ERROR("cannot reissue the agent's certificate: %s", err);
  push_all(a);
  Wisp__V1__RotateCAResponse resp = WISP__V1__ROTATE_CARESPONSE__INIT;
  char fp[65];
  root_fingerprint(a->ca, fp, sizeof(fp));
  resp.state = (char *)state;
  resp.bundle_roots = (uint32_t)sk_X509_num(wisp_ca_get0_roots(a->ca));
  resp.signing_root_sha256 = fp;
  if (wisp_rpc_send(call, &resp.base) == WISP_OK) wisp_rpc_finish(call, WISP_GRPC_OK, NULL);
  log_event("ca_rotation", "state", state, "signing_root_sha256", fp);
}

static const wisp_rpc_method kMethods[] = {
    {"/wisp.v1.Identity/Sign", false, on_sign, NULL, NULL},
    {"/wisp.v1.Config/Watch", true, on_watch_first, on_watch_end, on_watch_close},
    {"/wisp.v1.Admin/ApplyPolicy", false, on_apply_policy, NULL, NULL},
    {"/wisp.v1.Admin/CreateJoinToken", false, on_create_token, NULL, NULL},
    {"/wisp.v1.Admin/Status", false, on_status, NULL, NULL},
    {"/wisp.v1.Admin/RotateCA", false, on_rotate_ca, NULL, NULL},
};

/* ---- --policy-dir ---- */

static int yaml_name(const struct dirent *d) {
  size_t n = strlen(d->d_name);
  return d->d_name[0] != '.' && ((n > 5 && !strcmp(d->d_name + n - 5, ".yaml")) ||
                                 (n > 4 && !strcmp(d->d_name + n - 4, ".yml")));
}

/* The directory's *.yaml files, in name order, joined as one YAML stream
 * (a mounted ConfigMap: its files change by an atomic symlink swap). */
static char *read_policy_dir(const char *dir) {
  struct dirent **names = NULL;
  int n = scandir(dir, &names, yaml_name, alphasort);
  if (n < 0) return NULL;
  wisp_buf b = {0};
  for (int i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
    FILE *f = fopen(path, "r");
    char chunk[4096];
    size_t got;
    if (wisp_buf_len(&b) && wisp_buf_append(&b, "\n---\n", 5, STATE_MAX) != WISP_OK) break;
    while (f && (got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
      if (wisp_buf_append(&b, chunk, got, STATE_MAX) != WISP_OK) break;
    }
    if (f) fclose(f);
    free(names[i]);
  }
  free(names);
  char *out = wisp_strndup((const char *)(wisp_buf_len(&b) ? wisp_buf_rptr(&b) : (const uint8_t *)""),
                           wisp_buf_len(&b));
  wisp_buf_cleanup(&b);
  return out;
}

/* The directory is applied when its files change (and when first read, if
 * they differ from the stored policy), not whenever they differ from the
 * policy in force: a `wispctl apply` in between holds until the next edit
 * of the ConfigMap, and a bad file set is refused (and logged) once. */
static void on_policy_poll(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_agent *a = w->data;
  char *yaml = read_policy_dir(a->cfg.policy_dir);
  if (!yaml) return;
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256((const uint8_t *)yaml, strlen(yaml), digest);
  if (memcmp(digest, a->policy_dir_digest, sizeof(digest)) != 0) {
    memcpy(a->policy_dir_digest, digest, sizeof(digest));
    char err[512];
    if (strcmp(yaml, a->policy) != 0 && apply_policy(a, yaml, a->cfg.policy_dir, err, sizeof(err)) != WISP_OK)
      WISP_ERROR("cannot apply the policy from %s: %s", a->cfg.policy_dir, err);
  }
  free(yaml);
}

/* ---- life ---- */

wisp_err wisp_agent_new(wisp_agent **out, struct ev_loop *loop, const wisp_agent_config *cfg, char *err,
                        size_t err_len) {
  wisp_agent *a = wisp_calloc(1, sizeof(*a));
  *out = a;
  a->loop = loop;
  a->cfg = *cfg;
  wisp_tls_opts topts = {.client_cert_optional = true};
  a->tls = wisp_tls_new(&topts);
  WISP_GUARD(wisp_state_ensure_dir(cfg->state_dir, 0700, err, err_len));
  WISP_GUARD(load_ca(a, err, err_len));
  char *tokens;
  size_t len;
  if (state_exists(a, F_TOKENS)) {
    WISP_GUARD(load(a, F_TOKENS, &tokens, &len, err, err_len));
    wisp_err rc = wisp_tokens_parse(&a->tokens, tokens, len);
    free(tokens);
    if (rc != WISP_OK) {
      snprintf(err, err_len, "%s/%s is corrupt", cfg->state_dir, F_TOKENS);
      return rc;
    }
  }
  WISP_GUARD(load_rotation(a, err, err_len));
  WISP_GUARD(load_policy(a, err, err_len));
  WISP_GUARD(issue_agent_cert(a, err, err_len));
  wisp_sa_config sacfg = {cfg->sa_jwks, cfg->sa_issuer, cfg->kube_api ? cfg->kube_api : "off",
                          cfg->kube_sa_dir ? cfg->kube_sa_dir : "/var/run/secrets/kubernetes.io/serviceaccount",
                          cfg->sa_max_lifetime ? cfg->sa_max_lifetime : WISP_SA_MAX_LIFETIME_DEFAULT};
  WISP_GUARD(wisp_sa_new(&a->sa, loop, &sacfg, err, err_len));
  if (cfg->webhook.listen) WISP_GUARD(wisp_injector_new(&a->injector, loop, &cfg->webhook, a->ca, err, err_len));
  wisp_rpc_config rcfg = {.methods = kMethods,
                          .nmethods = sizeof(kMethods) / sizeof(kMethods[0]),
                          .data = a,
                          .max_connections = cfg->max_connections,
                          .max_conn_buffer = cfg->max_conn_buffer,
                          .max_per_source = cfg->max_connections_per_source,
                          .idle_timeout = cfg->idle_timeout};
  a->rpc = wisp_rpc_server_new(loop, &rcfg);
  wisp_rpc_server_set_tls(a->rpc, a->tls);
  if (cfg->listen_unix) WISP_GUARD(wisp_rpc_listen_unix(a->rpc, cfg->listen_unix, 0660, err, err_len));
  if (cfg->listen_tls) WISP_GUARD(wisp_rpc_listen_tls(a->rpc, cfg->listen_tls, err, err_len));
  ev_timer_init(&a->log_flush, on_log_flush, LOG_FLUSH_SECONDS, LOG_FLUSH_SECONDS);
  ev_timer_start(loop, &a->log_flush);
  ev_timer_init(&a->cert_renew, on_cert_renew, AGENT_CERT_TTL / 2, AGENT_CERT_TTL / 2);
  a->cert_renew.data = a;
  ev_timer_start(loop, &a->cert_renew);
  if (cfg->policy_dir) {
    ev_timer_init(&a->policy_poll, on_policy_poll, 0, POLICY_POLL_SECONDS);
    a->policy_poll.data = a;
    ev_timer_start(loop, &a->policy_poll);
  }
  wisp_json j;
  wisp_json_begin(&j, "agent");
  wisp_json_str(&j, "event", "started");
  wisp_json_str(&j, "trust_domain", wisp_ca_get0_trust_domain(a->ca));
  wisp_json_str(&j, "listen_unix", cfg->listen_unix);
  wisp_json_str(&j, "listen_tls", cfg->listen_tls);
  wisp_json_int(&j, "policy_version", (int64_t)a->version);
  wisp_json_int(&j, "svid_ttl_s", cfg->svid_ttl);
  wisp_json_int(&j, "max_connections", (int64_t)cfg->max_connections);
  wisp_json_int(&j, "max_connections_per_source", (int64_t)cfg->max_connections_per_source);
  wisp_json_double(&j, "idle_timeout_s", cfg->idle_timeout);
  wisp_json_int(&j, "max_watchers", (int64_t)cfg->max_watchers);
  wisp_json_int(&j, "max_proxies", (int64_t)cfg->max_proxies);
  wisp_json_int(&j, "max_watchers_per_caller", (int64_t)cfg->max_watchers_per_caller);
  wisp_json_int(&j, "max_conn_buffer", (int64_t)cfg->max_conn_buffer);
  wisp_json_emit_err(&j);
  return WISP_OK;
}

void wisp_agent_free(wisp_agent *a) {
  if (!a) return;
  ev_timer_stop(a->loop, &a->cert_renew);
  ev_timer_stop(a->loop, &a->policy_poll);
  ev_timer_stop(a->loop, &a->log_flush);
  wisp_rpc_server_free(a->rpc); /* closes watchers through on_watch_close */
  wisp_rpc_shared_free(a->snapshot);
  wisp_sa_free(a->sa);
  wisp_injector_free(a->injector);
  wisp_tls_free(a->tls);
  wisp_ca_free(a->ca);
  wisp_ca_free(a->next_ca);
  wisp_tokens_cleanup(&a->tokens);
  free(a->policy);
  wisp_policy_free(a->compiled);
  for (size_t i = 0; i < a->nproxies; i++) free(a->proxies[i]);
  free(a->proxies);
  free(a);
}
